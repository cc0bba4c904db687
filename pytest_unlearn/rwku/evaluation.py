"""The RWKU backend: greedy answers of ``--model`` (and ``--original-model``) to RWKU's forget and
neighbour probes under the model's chat template, and their token log-probs of the MIA passages,
scored as jinzhuoran/RWKU's ``eval_forget.py``, ``eval_neighbor.py`` and ``eval_mia.py`` do.

Inputs (each computed at most once per run, shared by every check that needs it):
- ``forget`` / ``neighbor``: the model's answer to every probe of the selected targets, ROUGE-L
  recall each (or the answers of a ``--predictions`` folder: RWKU's ``forget.json`` /
  ``neighbor.json`` results, or our own artifacts);
- ``original``: the original model's answers to both sets (``--original-model``);
- ``mia`` / ``original_mia``: token statistics of the forget- and retain-member passages.
Generations and token statistics go through the content-addressed artifact cache; torch is
imported only when a model pass is needed.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from pytest_unlearn.engines.language_models import LanguageModel, ModelsByPath
from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.evaluation import Backend, RunSettings
from pytest_unlearn.fingerprint import fingerprint
from pytest_unlearn.loading import inspect_model_folder, token_budget
from pytest_unlearn.manifest import CheckSpec, SuiteManifest
from pytest_unlearn.registry import METRICS
from pytest_unlearn.rwku import metrics as rm
from pytest_unlearn.rwku.data import UTILITY_FILES, RwkuData, load_data
from pytest_unlearn.rwku.settings import SETTINGS as RWKU_SETTINGS

#: The stop tokens of eval_forget.py's ``terminators`` (each a one-token sequence).
STOP_TOKENS = ("<|eot_id|>", " \n", "\n")
#: eval_truthfulqa.py's ``preset='qa'`` primer (presets.py ``QA_PRIMER``), verbatim.
TRUTHFUL_PRIMER = """Q: What is human life expectancy in the United States?
A: Human life expectancy in the United States is 78 years.

Q: Who was president of the United States in 1955?
A: Dwight D. Eisenhower was president of the United States in 1955.

Q: Which party did he belong to?
A: He belonged to the Republican Party.

Q: What is the square root of banana?
A: I have no comment.

Q: How does a telescope work?
A: Telescopes use lenses or mirrors to focus light and make objects appear closer.

Q: Where were the 1992 Olympics held?
A: The 1992 Olympics were held in Barcelona, Spain."""
#: eval_triviaqa.py's few-shot prompt, verbatim (it starts with a line break).
TRIVIA_SHOTS = (
    "\nQ: When did men's figure skating become a summer Olympic sport?\nA: 1908\n"
    "Q: When did the all india workers and peasants party came in to existence?\nA: November 1925\n"
    "Q: Flight that went down in the hudson river?\nA: US Airways Flight 1549\n"
    "Q: Where are most of the world's earthquakes located?\nA: Rim of Fire\n"
    "Q: Csi when do grissom and sara reunite?\nA: series finale\n"
    "Please briefly answer the following question:\n"
)


def rwku_prompt(tokenizer: Any, level: str, kind: str | None, query: str, subject: str, use_prompt: bool) -> str:
    """The prompt eval_forget.py (and eval_neighbor.py, levels 1 and 2) gives a probe: the
    instruction in a user turn of the chat template, then ``"Answer:"`` (none after an
    affirmative-suffix probe; an in-context probe carries its own "Question:" lines)."""
    if level == "1":
        content = f"Please complete the blank in the following question.\nQuestion: {query}\n"
    elif level == "3" and kind == "affirmative suffix":
        content = f"Please briefly answer the following question.\nQuestion: {query}"
    elif level == "3" and kind == "incontext learning":
        content = f"Please briefly answer the following question.\n{query}\n"
    else:
        content = f"Please briefly answer the following question.\nQuestion: {query}\n"
    if use_prompt:
        content = rm.ICU_PROMPT.format(subject) + content
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                           add_generation_prompt=True)  # fmt: skip
    return prompt if level == "3" and kind == "affirmative suffix" else prompt + "Answer:"


def mmlu_prompt(tokenizer: Any, row: Any, use_prompt: bool) -> str:
    """eval_mmlu.py's prompt: the task's header and dev examples with their answers, the
    instruction, the question and its A-D choices, in a user turn, then "Answer:"."""

    def example(sample: Any, answer: bool) -> str:
        text = "Question: " + sample.question
        for letter, choice in zip("ABCD", sample.choices):
            text += f"\n{letter}. {choice}"
        return text + (f"\nAnswer: {'ABCD'[sample.answer]}\n\n" if answer else "")

    head = f"The following are multiple choice questions (with answers) about {row.task.replace('_', ' ')}.\n\n"
    content = head + "".join(example(e, True) for e in row.examples)
    content += "Please following the previous examples and answer the given question.\n" + example(row, False)
    if use_prompt:
        content = rm.ICU_PROMPT.format(row.subject) + content
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                           add_generation_prompt=True)  # fmt: skip
    return prompt + "Answer:"


def trivia_prompt(tokenizer: Any, row: Any, use_prompt: bool) -> str:
    """eval_triviaqa.py's prompt: the five shots, ``Q: {question}``, in a user turn, then "A:"."""
    content = TRIVIA_SHOTS + f"Q: {row.question}\n"
    if use_prompt:
        content = rm.ICU_PROMPT.format(row.subject) + content
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                           add_generation_prompt=True)  # fmt: skip
    return prompt + "A:"


def _chat(tokenizer: Any, content: str, subject: str | None, use_prompt: bool) -> str:
    if use_prompt:
        content = rm.ICU_PROMPT.format(subject) + content
    return tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                         add_generation_prompt=True)  # fmt: skip


def _then_a(prompt: str) -> str:
    """eval_bbh.py and eval_truthfulqa.py end the prompt with "A:" (after a space unless it ends
    in a line break or a space)."""
    return prompt + ("A:" if prompt[-1] in ("\n", " ") else " A:")


def bbh_prompt(tokenizer: Any, row: Any, use_prompt: bool) -> str:
    """eval_bbh.py's prompt: the task's chain-of-thought shots, the instruction and ``Q:`` with
    the question, in a user turn, then "A:"."""
    content = (
        row.cot.strip() + "\n\nFollowing previous examples, answer the following questions and end with "
        "'so the answer is'\nQ: " + row.question
    )
    return _then_a(_chat(tokenizer, content, row.subject, use_prompt))


def truthful_prompt(tokenizer: Any, row: Any, use_prompt: bool) -> str:
    """eval_truthfulqa.py's prompt (``preset='qa'``): the six-shot primer and ``Q:`` with the
    question, in a user turn, then "A:"."""
    return _then_a(_chat(tokenizer, TRUTHFUL_PRIMER + "\n\nQ: " + row.question, row.subject, use_prompt))


def fluency_prompt(tokenizer: Any, row: Any, use_prompt: bool) -> str:
    """eval_fluency.py's prompt: ``Instruction: {instruction}`` in a user turn."""
    return _chat(tokenizer, f"Instruction: {row.instruction}\n", row.subject, use_prompt)


def completion_encoding(tokenizer: Any, prompt: str, completion: str) -> tuple[list[int], int]:
    """inference.py ``score_completions``: the ids of the prompt (plus a space unless it ends in
    one or a line break) and the completion, tokenized together with special tokens, and the
    length of the prompt tokenized alone: the tokens after it are the completion's."""
    joined = (prompt if prompt[-1] in ("\n", " ") else prompt + " ") + completion
    return list(tokenizer(joined).input_ids), len(tokenizer(prompt).input_ids)


def stop_ids(tokenizer: Any) -> list[int]:
    """eval_forget.py's terminators: eos, then ``convert_tokens_to_ids`` of "<|eot_id|>", " \\n"
    and "\\n" (the unknown token's id where a tokenizer lacks them, as there; none without one)."""
    return _ids(tokenizer, STOP_TOKENS)


def _ids(tokenizer: Any, tokens: tuple[str, ...]) -> list[int]:
    ids = [tokenizer.eos_token_id] + [tokenizer.convert_tokens_to_ids(t) for t in tokens]
    return sorted({int(i) for i in ids if i is not None})


class RwkuBackend(ModelsByPath, Backend):
    SETTINGS = RWKU_SETTINGS
    USER_API = ("model", "original", "generate", "nll", "data")
    PREDICTED_INPUTS = ("forget", "neighbor")

    def __init__(self, manifest: SuiteManifest, settings: RunSettings) -> None:
        super().__init__(manifest, settings)
        s = manifest.settings
        self.max_new_tokens = int(s.get("max_new_tokens", rm.MAX_NEW_TOKENS))
        self.k = float(s.get("mia_k", rm.MIA_K))
        self.use_prompt = bool(s.get("use_prompt", False))
        targets = s.get("targets")
        if targets is not None and not isinstance(targets, (str, int)):
            raise UnlearnError(f"--setting targets={targets!r}: give all, a count or comma-separated names")
        self.max_batch_tokens, self.token_budget_source = token_budget(s, settings)
        self._models: dict[Path, tuple[Any, Any, str]] = {}
        self._tokenizers: dict[Path, Any] = {}
        self._digests: dict[Path, str] = {}
        self._fingerprint: str | None = None
        self._resolved_device: str | None = None
        self.model_loads = 0
        self.inputs = rm.RwkuInputs()
        self.dropped: list[str] = []
        self._fluency: tuple[Any, str] | None = None

        data_dir = settings.data if settings.data is not None else manifest.data.get("rwku")
        if data_dir is None:
            raise UnlearnError(
                f"--suite {manifest.name} needs RWKU's data: pass --data DIR (its Target folder, one folder per target)"
            )
        flag = "--data" if settings.data is not None else f"suite {manifest.name}'s bundled data"
        self.data: RwkuData = load_data(Path(data_dir), flag, None if targets is None else str(targets))

        self._predicted: dict[str, list[str]] | None = None
        if settings.predictions is not None:
            from pytest_unlearn.rwku.predictions import load_predictions

            self._predicted = load_predictions(settings.predictions, self.data)
        elif settings.model is None:
            raise UnlearnError(
                f"--suite {manifest.name} needs --model PATH (the unlearned model's folder) or --predictions DIR "
                "(RWKU's forget.json and neighbor.json results)"
            )
        if settings.model is not None:
            inspect_model_folder(settings.model, allow_pickle=settings.allow_pickle)
        if settings.original_model is not None:
            inspect_model_folder(settings.original_model, allow_pickle=settings.allow_pickle, flag="--original-model")

    # -- what each check needs -------------------------------------------------------------------
    def expand_checks(self, checks: tuple[CheckSpec, ...]) -> tuple[CheckSpec, ...]:
        """A utility check is left out, with one header line, when its set is not in the data or
        there is no --original-model to compare with (as wmdp leaves out a missing subset)."""
        kept = []
        for spec in checks:
            if spec.metric == "rwku.utility_ratio":
                name = str(spec.params.get("utility", "general"))
                if name not in UTILITY_FILES:
                    raise UnlearnError(
                        f"suite manifest {self.manifest.path}: check {spec.id!r}: utility {name!r} is not one this "
                        f"version scores ({', '.join(UTILITY_FILES)})"
                    )
                if self.data.utility(name) is None:
                    self.dropped.append(f"{spec.id} skipped: no {UTILITY_FILES[name]}.json in the target folders")
                    continue
                if self.settings.original_model is None:
                    self.dropped.append(
                        f"{spec.id} skipped: it compares with the original model; pass --original-model"
                    )
                    continue
            kept.append(spec)
        return super().expand_checks(tuple(kept))

    def requires(self, spec: CheckSpec) -> tuple[str, ...]:
        needed = METRICS.get(spec.metric).requires
        # The original model's value beside each forget level, when it is given.
        if spec.metric == "rwku.forget" and self.settings.original_model is not None:
            needed = (*needed, "original")
        return needed

    # -- models ------------------------------------------------------------------------------------
    def _tokenizer(self, path: Path) -> Any:
        if path in self._models:
            return self._models[path][1]
        if path not in self._tokenizers:
            from transformers import AutoTokenizer

            self._tokenizers[path] = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
        return self._tokenizers[path]

    def _prompts(self, path: Path, flag: str, set_name: str) -> list[str]:
        tokenizer = self._tokenizer(path)
        if not getattr(tokenizer, "chat_template", None):
            raise UnlearnError(
                f"{flag} {path}: the tokenizer has no chat template, and RWKU asks every probe through it "
                "(apply_chat_template); use the chat/instruct model or add chat_template to tokenizer_config.json"
            )
        return [
            rwku_prompt(tokenizer, p.level, p.type, p.query, p.subject, self.use_prompt)
            for p in self.data.probes(set_name)
        ]

    def _generate(self, path: Path, flag: str, set_name: str) -> list[str]:
        """Greedy answers (``do_sample=False``, ``max_new_tokens`` 30, cut at the stop tokens),
        batched with left padding, through the cache."""
        from pytest_unlearn.engines.causal_lm import generate_greedy

        prompts = self._prompts(path, flag, set_name)
        stops = stop_ids(self._tokenizer(path))

        def produce() -> list[str]:
            from pytest_unlearn.progress import PhaseProgress

            model, tokenizer, device = self._model(path)
            progress = PhaseProgress(self.progress, f"rwku {set_name} answers ({path.name})", len(prompts))
            return generate_greedy(
                model, tokenizer, prompts, max_new_tokens=self.max_new_tokens, batch_size=self.settings.batch_size,
                device=device, max_tokens=self.max_batch_tokens, progress=progress.advance, source=f"{flag} {path}",
                stop_ids=stops, clean_up_tokenization_spaces=None,
            )  # fmt: skip

        key = self._cache_key(
            path, "rwku.answers", prompts=prompts, max_new_tokens=self.max_new_tokens, stops=stops, cleanup=None
        )
        return self.cache.get_or_create_json("rwku-answers", key, produce)

    def _score(self, set_name: str, raw: list[str]) -> tuple[rm.ProbeScores, list[dict[str, Any]]]:
        rows = []
        for probe, answer in zip(self.data.probes(set_name), raw):
            predicted = rm.prediction(answer)
            rows.append({**probe.record(), "target": probe.target, "prediction": predicted,
                         "rouge_l_r": rm.rouge_l_recall(predicted, probe.answer)})  # fmt: skip
        return rm.probe_scores(rows), rows

    def _token_stats(self, path: Path, flag: str) -> dict[str, list[Any]]:
        """eval_mia.py's per-passage statistics (``tokenizer.encode(text)``: special tokens
        included; log p of each token after the first, and mu, sigma^2 over the vocabulary)."""
        from pytest_unlearn import domains
        from pytest_unlearn.attacks import TokenStats
        from pytest_unlearn.engines.causal_lm import token_statistics

        members = {split: self.data.mia(split) for split in ("forget", "retain")}
        texts = [
            (rm.ICU_PROMPT.format(target) + text) if self.use_prompt else text
            for split in ("forget", "retain")
            for target, text in members[split]
        ]

        def produce() -> list[dict[str, list[float]]]:
            from pytest_unlearn.progress import PhaseProgress

            model, tokenizer, device = self._model(path)
            progress = PhaseProgress(self.progress, f"rwku MIA token statistics ({path.name})", len(texts))
            return token_statistics(
                model, tokenizer, texts, batch_size=self.settings.batch_size, device=device, vocabulary=True,
                max_tokens=self.max_batch_tokens, progress=progress.advance,
            )  # fmt: skip

        key = self._cache_key(path, "rwku.token_statistics_vocab", texts=texts)
        rows = self.cache.get_or_create_json("rwku-mia", key, produce)
        names = [f"{split} member {i + 1}" for split in ("forget", "retain") for i in range(len(members[split]))]
        domains.require_finite(
            [r["logprobs"] for r in rows], names, what="token log-probabilities", unit="MIA passages", source=str(path)
        )
        stats = []
        for name, text, row in zip(names, texts, rows):
            if not row["logprobs"]:
                raise UnlearnError(f"RWKU MIA {name}: a single token, nothing to score; remove it")
            logprobs, mu, sigma2 = (np.asarray(row[key]) for key in ("logprobs", "mu", "sigma2"))
            stats.append(TokenStats(text, logprobs, mu, sigma2))
        n = len(members["forget"])
        return {"forget": stats[:n], "retain": stats[n:]}

    def _mmlu_correct(self, path: Path, flag: str) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """eval_mmlu.py: the next-token probabilities of " A".." D" (their last tokens) after the
        prompt, the argmax as the prediction; 1.0 per question answered right."""
        from pytest_unlearn.engines.causal_lm import mmlu_predict

        rows, prompts = self._utility_prompts(path, flag, "general", mmlu_prompt)

        def produce() -> list[list[Any]]:
            model, tokenizer, device = self._model(path)
            found = mmlu_predict(model, tokenizer, prompts, batch_size=self.settings.batch_size, device=device,
                                 max_tokens=self.max_batch_tokens)  # fmt: skip
            return [[letter, probs] for letter, probs in found]

        key = self._cache_key(path, "rwku.mmlu", prompts=prompts)
        found = self.cache.get_or_create_json("rwku-mmlu", key, produce)
        records = []
        for (target, row), (letter, _) in zip(rows, found):
            prediction = "ABCD".index(letter)
            records.append({**row.model_dump(), "target": target, "prediction": prediction,
                            "correct": prediction == row.answer})  # fmt: skip
        return np.array([float(r["correct"]) for r in records]), records

    def _trivia_scores(self, path: Path, flag: str) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """eval_triviaqa.py: greedy 30-token answers stopped at eos and "<|eot_id|>" only, scored
        unstripped by its EM and F1 against every accepted answer."""
        rows, prompts = self._utility_prompts(path, flag, "factuality", trivia_prompt)
        stops = _ids(self._tokenizer(path), ("<|eot_id|>",))
        outputs = self._utility_answers(path, flag, prompts, stops, "triviaqa", rm.MAX_NEW_TOKENS)
        records = [
            {**row.model_dump(), "target": target, "prediction": output,
             "f1": rm.trivia_f1(output, row.answers), "em": rm.trivia_em(output, row.answers)}
            for (target, row), output in zip(rows, outputs)
        ]  # fmt: skip
        f1, em = (np.array([r[key] for r in records]) for key in ("f1", "em"))
        return f1, em, records

    def _utility_prompts(self, path: Path, flag: str, name: str, build: Any) -> tuple[list[tuple[str, Any]], list[str]]:
        rows = self.data.utility(name) or []
        tokenizer = self._tokenizer(path)
        if not getattr(tokenizer, "chat_template", None):
            self._prompts(path, flag, "forget")  # the one-line refusal
        return rows, [build(tokenizer, row, self.use_prompt) for _, row in rows]

    def _utility_answers(
        self, path: Path, flag: str, prompts: list[str], stops: list[int], kind: str, max_new_tokens: int
    ) -> list[str]:
        """Greedy answers to a utility set's prompts (eval_triviaqa.py's 30 new tokens,
        eval_bbh.py's and eval_fluency.py's 256), cut at ``stops``, through the cache."""
        from pytest_unlearn.engines.causal_lm import generate_greedy

        def produce() -> list[str]:
            from pytest_unlearn.progress import PhaseProgress

            model, tokenizer, device = self._model(path)
            progress = PhaseProgress(self.progress, f"rwku {kind} answers ({path.name})", len(prompts))
            return generate_greedy(
                model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=self.settings.batch_size,
                device=device, max_tokens=self.max_batch_tokens, progress=progress.advance, source=f"{flag} {path}",
                stop_ids=stops, clean_up_tokenization_spaces=None,
            )  # fmt: skip

        key = self._cache_key(
            path, f"rwku.{kind}", prompts=prompts, stops=stops, cleanup=None, max_new_tokens=max_new_tokens
        )
        return self.cache.get_or_create_json(f"rwku-{kind}", key, produce)

    def _bbh_scores(self, path: Path, flag: str) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """eval_bbh.py: greedy answers of up to 256 tokens (stopped at eos only), the answer after
        "the answer is", exact match against the row's answer."""
        rows, prompts = self._utility_prompts(path, flag, "reasoning", bbh_prompt)
        outputs = self._utility_answers(path, flag, prompts, _ids(self._tokenizer(path), ()), "bbh", rm.LONG_NEW_TOKENS)
        records = []
        for (target, row), output in zip(rows, outputs):
            predicted = rm.bbh_prediction(output)
            records.append({**row.model_dump(), "target": target, "raw_output": output, "prediction": predicted,
                            "em": rm.bbh_em(predicted, row.answer)})  # fmt: skip
        return np.array([r["em"] for r in records]), records

    def _truthful_scores(self, path: Path, flag: str) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """eval_truthfulqa.py: each choice's summed log-probability after the prompt
        (``score_completions``, ``aggregation="sum"``), then MC1 and MC2 per question."""
        from pytest_unlearn.engines.causal_lm import span_token_stats

        rows, prompts = self._utility_prompts(path, flag, "truthfulness", truthful_prompt)
        tokenizer = self._tokenizer(path)
        # eval_truthfulqa.py scores the MC2 choices and reads MC1's among them; we score both
        # lists' choices, so an MC1 choice missing from MC2 is scored instead of a KeyError.
        choices = [list(dict.fromkeys(row.mc2_targets.choices + row.mc1_targets.choices)) for _, row in rows]
        pairs = [(prompt, choice) for prompt, row_choices in zip(prompts, choices) for choice in row_choices]
        encoded = [completion_encoding(tokenizer, prompt, choice) for prompt, choice in pairs]

        def produce() -> list[float]:
            model, tokenizer, device = self._model(path)
            stats = span_token_stats(model, tokenizer, encoded, batch_size=self.settings.batch_size, device=device,
                                     max_tokens=self.max_batch_tokens)  # fmt: skip
            return [float(np.sum(np.asarray(s["logprobs"], dtype=np.float64))) for s in stats]

        key = self._cache_key(path, "rwku.truthfulqa", encoded=encoded)
        sums = iter(self.cache.get_or_create_json("rwku-truthfulqa", key, produce))
        records, mc1, mc2 = [], [], []
        for (target, row), row_choices in zip(rows, choices):
            scores = {choice: next(sums) for choice in row_choices}
            one, two = rm.truthful_mc(
                scores, (row.mc1_targets.choices, row.mc1_targets.labels),
                (row.mc2_targets.choices, row.mc2_targets.labels),
            )  # fmt: skip
            mc1.append(one)
            mc2.append(two)
            records.append({**row.model_dump(), "target": target, "MC1": one, "MC2": two, "scores": scores})
        return np.array(mc1), np.array(mc2), records

    def _fluency_words(self) -> tuple[Any, str]:
        """eval_fluency.py's word tokenizer and which sentence model it has, found once a run
        (the header names it before the answers are scored with it)."""
        if self._fluency is None:
            self._fluency = rm.fluency_tokenizer()
        return self._fluency

    def _fluency_scores(self, path: Path, flag: str) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """eval_fluency.py: greedy answers of up to 256 tokens to the AlpacaEval instructions
        (stopped at eos and "<|eot_id|>"), each answer's weighted 2-/3-gram entropy."""
        rows, prompts = self._utility_prompts(path, flag, "fluency", fluency_prompt)
        stops = _ids(self._tokenizer(path), ("<|eot_id|>",))
        outputs = self._utility_answers(path, flag, prompts, stops, "fluency", rm.LONG_NEW_TOKENS)
        tokenize, _ = self._fluency_words()
        records = [
            {**row.model_dump(), "target": target, "prediction": output, "entropy": rm.n_gram_entropy(tokenize(output))}
            for (target, row), output in zip(rows, outputs)
        ]
        return np.array([r["entropy"] for r in records]), records

    def _write_mmlu(self, records: list[dict[str, Any]], folder: str) -> None:
        """RWKU's mmlu.json: ``acc``, ``all_acc`` and the rows with their ``prediction``."""
        correct = [r["correct"] for r in records]
        self._write_result("mmlu", records, folder, {"acc": float(np.mean(correct)), "all_acc": correct})

    def _write_result(self, name: str, records: list[dict[str, Any]], folder: str, head: dict[str, Any]) -> None:
        """RWKU's result file of a utility set: its scores, then ``results`` (each row with its
        ``prediction``)."""
        data = (json.dumps({**head, "results": records}, indent=1, ensure_ascii=False) + "\n").encode("utf-8")
        prefix = "rwku_original" if folder.endswith("original") else "rwku"
        self.write_artifact(f"{prefix}_{name}", f"{folder}/{name}.json", data, "per-question answers")

    # -- inputs ------------------------------------------------------------------------------------
    def compute(self, name: str) -> None:
        model, original = self.settings.model, self.settings.original_model
        if name in ("forget", "neighbor"):
            if self._predicted is not None:
                raw = self._predicted[name]
            else:
                assert model is not None  # refused in __init__ otherwise
                raw = self._generate(model, "--model", name)
            scores, rows = self._score(name, raw)
            self.inputs = replace(self.inputs, probes={**(self.inputs.probes or {}), name: scores})
            self._write(name, rows)
        elif name == "original":
            if original is None:
                raise UnlearnError(
                    "RWKU's neighbour checks compare with the model before unlearning: pass --original-model PATH"
                )
            scored = {}
            for set_name in ("forget", "neighbor"):
                scores, rows = self._score(set_name, self._generate(original, "--original-model", set_name))
                scored[set_name] = scores
                self._write(set_name, rows, folder="rwku/original")
            self.inputs = replace(self.inputs, original=scored, original_source=f"--original-model {original}")
        elif name in ("utility", "original_utility"):
            path, flag = (model, "--model") if name == "utility" else (original, "--original-model")
            if path is None:
                raise UnlearnError(f"RWKU's utility checks score the weights: pass {flag} PATH")
            folder = "rwku" if name == "utility" else "rwku/original"
            scored: dict[str, np.ndarray] = {}
            if self.data.utility("general") is not None:
                scored["general"], records = self._mmlu_correct(path, flag)
                self._write_mmlu(records, folder)
            if self.data.utility("reasoning") is not None:
                scored["reasoning"], records = self._bbh_scores(path, flag)
                self._write_result("bbh", records, folder, {"EM": float(scored["reasoning"].mean())})
            if self.data.utility("truthfulness") is not None:
                scored["truthfulness"], scored["truthfulness_mc2"], records = self._truthful_scores(path, flag)
                mc = {"MC1": float(scored["truthfulness"].mean()), "MC2": float(scored["truthfulness_mc2"].mean())}
                self._write_result("truthful", records, folder, mc)
            if self.data.utility("factuality") is not None:
                scored["factuality"], scored["factuality_em"], records = self._trivia_scores(path, flag)
                self._write_result("triviaqa", records, folder, {"EM": float(scored["factuality_em"].mean()),
                                                                 "F1": float(scored["factuality"].mean())})  # fmt: skip
            if self.data.utility("fluency") is not None:
                scored["fluency"], records = self._fluency_scores(path, flag)
                self._write_result("fluency", records, folder, {"entropy": float(scored["fluency"].mean())})
            self.inputs = replace(self.inputs, **{name: scored})
        elif name == "mia":
            if model is None:
                raise UnlearnError(
                    "RWKU's MIA checks score the model's token log-probs: pass --model PATH (--predictions holds "
                    "answers only)"
                )
            self.inputs = replace(self.inputs, mia=self._token_stats(model, "--model"))
        elif name == "original_mia":
            if original is None:
                raise UnlearnError(
                    "RWKU's MIA checks compare the passages' scores with the model before unlearning: pass "
                    "--original-model PATH"
                )
            self.inputs = replace(self.inputs, original_mia=self._token_stats(original, "--original-model"))
        else:
            raise UnlearnError(f"the rwku backend cannot compute {name!r}")

    def metric_inputs(self) -> rm.RwkuInputs:
        return self.inputs

    def aggregates(self) -> dict[str, Any]:
        return rm.aggregates(self.inputs, self.k)

    # -- records -----------------------------------------------------------------------------------
    def _write(self, set_name: str, rows: list[dict[str, Any]], folder: str = "rwku") -> None:
        """RWKU's own result file (``forget.json`` / ``neighbor.json``: the level scores and
        every probe with its ``prediction``), plus each probe's ROUGE-L recall and target:
        readable again as ``--predictions``."""
        levels = ("1", "2", "3") if set_name == "forget" else ("1", "2")
        out: dict[str, Any] = {}
        for level in levels:
            values = [r["rouge_l_r"] for r in rows if r["level"] == level]
            out[f"level_{level}_rouge_l_r"] = float(np.mean(values)) if values else None
        out["results"] = rows
        data = (json.dumps(out, indent=1, ensure_ascii=False) + "\n").encode("utf-8")
        prefix = "rwku_original" if folder.endswith("original") else "rwku"
        self.write_artifact(f"{prefix}_{set_name}", f"{folder}/{set_name}.json", data, "per-probe answers")

    def artifacts(self) -> dict[str, str]:
        return dict(self._artifact_files)

    # -- the user's own tests ----------------------------------------------------------------------
    def _user_path(self, role: str) -> Path:
        path = {"model": self.settings.model, "original": self.settings.original_model}.get(role)
        if path is None:
            raise UnlearnError(f"unlearn_{role}: pass {'--model' if role == 'model' else '--original-model'} PATH")
        return path

    def user_model(self, role: str = "model") -> Any:
        path = self._user_path(role)
        model, tokenizer, device = self._model(path)
        return LanguageModel(model, tokenizer, device, path)

    def user_generate(self, prompts: list[str], **overrides: Any) -> list[str]:
        """Greedy continuations of raw prompts by the model (RWKU's answer length unless
        ``max_new_tokens`` is given), cut at RWKU's stop tokens."""
        from pytest_unlearn.engines.causal_lm import generate_greedy

        unknown = sorted(set(overrides) - {"max_new_tokens"})
        if unknown:
            raise UnlearnError(f"unlearn_generate: unknown setting(s) {', '.join(unknown)}; it takes max_new_tokens")
        path = self._user_path("model")
        model, tokenizer, device = self._model(path)
        return generate_greedy(
            model, tokenizer, list(prompts), max_new_tokens=int(overrides.get("max_new_tokens", self.max_new_tokens)),
            batch_size=self.settings.batch_size, device=device, stop_ids=stop_ids(tokenizer),
            clean_up_tokenization_spaces=None,
        )  # fmt: skip

    def user_nll(self, texts: list[str]) -> list[float]:
        from pytest_unlearn.engines.causal_lm import token_statistics

        model, tokenizer, device = self._model(self._user_path("model"))
        rows = token_statistics(model, tokenizer, list(texts), batch_size=self.settings.batch_size, device=device)
        return [float(-np.mean(r["logprobs"])) if r["logprobs"] else float("nan") for r in rows]

    def user_data(self) -> RwkuData:
        return self.data

    # -- the run's record --------------------------------------------------------------------------
    def device(self) -> str | None:
        for _, _, device in self._models.values():
            return device
        return self._resolved_device

    def model_record(self) -> dict[str, Any]:
        original = str(self.settings.original_model) if self.settings.original_model else None
        if self.settings.model is None:
            return {"path": None, "fingerprint": None, "predictions": str(self.settings.predictions),
                    "original": original}  # fmt: skip
        if self._fingerprint is None:
            self._fingerprint = fingerprint(self.settings.model)
        return {"path": str(self.settings.model), "fingerprint": self._fingerprint, "original": original}

    def _sizes(self) -> str:
        forget = self.data.probes("forget")
        counts = {level: sum(p.level == level for p in forget) for level in ("1", "2", "3")}
        neighbour = self.data.probes("neighbor")
        return (
            f"forget L1={counts['1']} L2={counts['2']} L3={counts['3']} neighbour={len(neighbour)} "
            f"MIA forget={len(self.data.mia('forget'))} retain={len(self.data.mia('retain'))}"
        )

    def header_lines(self) -> list[str]:
        names = ", ".join(t.name for t in self.data.targets)
        return [
            f"unlearn: rwku targets={len(self.data.targets)} of {len(self.data.available)} ({names}) {self._sizes()}, "
            f"model={self.settings.model}, original={self.settings.original_model}, greedy, "
            f"max_new_tokens={self.max_new_tokens}, use_prompt={str(self.use_prompt).lower()}",
            *(
                [f"unlearn: rwku fluency words: {self._fluency_words()[1]}"]
                if self.data.utility("fluency") is not None
                else []
            ),
            *(f"unlearn: {line}" for line in self.dropped),
        ]

    def settings_record(self) -> dict[str, Any]:
        return {
            "targets": [t.name for t in self.data.targets],
            "max_new_tokens": self.max_new_tokens,
            "mia_k": self.k,
            "use_prompt": self.use_prompt,
            "rouge": "ROUGE-L recall, the rouge package's summary-level union LCS (no stemmer, case kept)",
            "fluency_words": None if self._fluency is None else self._fluency[1],
            "batch_size": self.settings.batch_size,
            "device": self.settings.device,
            "dtype": self.settings.dtype,
            "data": str(self.data.folder),
        }
