"""The SemEval-2025 Task 4 backend: data resolution, the three expensive inputs, artifacts.

Inputs (each computed at most once per run, shared by every check):
- ``text``: greedy generations of every forget/retain prompt (or ``--predictions``), scored;
- ``mia``: mean token NLL of every member and non-member document;
- ``mmlu``: 5-shot next-token predictions of every MMLU test question.
Torch is imported only when a model pass is needed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from pytest_unlearn.engines.language_models import LanguageModel
from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.evaluation import Backend, RunSettings
from pytest_unlearn.files import jsonl_bytes
from pytest_unlearn.fingerprint import fingerprint
from pytest_unlearn.integrity import match_ids, require_disjoint
from pytest_unlearn.loading import inspect_model_folder, token_budget
from pytest_unlearn.manifest import SuiteManifest
from pytest_unlearn.mmlu import MMLUData, load_mmlu
from pytest_unlearn.semeval import metrics as sm
from pytest_unlearn.semeval.data import (
    MIADocument,
    PromptRow,
    document_id,
    find_split_file,
    load_mia,
    load_predictions,
    load_prompts,
)
from pytest_unlearn.semeval.settings import SETTINGS as SEMEVAL_SETTINGS


def _read_jsonl(path: str | None) -> list[dict[str, Any]]:
    """An artifact file of this run (absent, or unreadable: nothing to show)."""
    if not path:
        return []
    try:
        return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line]
    except (OSError, ValueError):
        return []


def _optional_dir(
    explicit: Path | None, data_dir: Path | None, names: tuple[str, ...], bundled: Path | None
) -> Path | None:
    """An explicit flag wins; with --data, a conventional subfolder of it; else the bundled one."""
    if explicit is not None:
        return explicit
    if data_dir is not None:
        for name in names:
            if (data_dir / name).is_dir():
                return data_dir / name
        return None  # never mix a user's data with our bundled sample sets
    return bundled


@dataclass(frozen=True)
class SemevalData:
    """What ``unlearn_data`` gives a test: the prompt rows by split, the MIA sets, MMLU."""

    forget: list[PromptRow]
    retain: list[PromptRow]
    mia: tuple[list[MIADocument], list[MIADocument]] | None
    mmlu: MMLUData | None


class SemevalBackend(Backend):
    #: What --setting may override.
    SETTINGS = SEMEVAL_SETTINGS
    DATA_ENTRIES = ("mia", "mmlu")
    #: --predictions replaces the generations only; MIA and MMLU always come from the weights.
    PREDICTED_INPUTS = ("text",)

    def __init__(self, manifest: SuiteManifest, settings: RunSettings) -> None:
        super().__init__(manifest, settings)
        from pytest_unlearn.attacks import get_attack

        self.shots = int(manifest.settings.get("mmlu_shots", 5))
        # The official scorer's attack is LOSS; --setting mia_attack=min_k (zlib, min_k_plus_plus)
        # scores the same documents with another attack of the registry.
        self.mia_attack = get_attack(str(manifest.settings.get("mia_attack", "loss")))
        # The reference attack scores the model's loss against a second model's on the same
        # documents: without one it would fail mid-run, so it is one line now.
        if self.mia_attack.needs_reference:
            if settings.reference is None or not (settings.reference / "config.json").is_file():
                raise UnlearnError(
                    f"--setting mia_attack={self.mia_attack.name}: the reference attack needs a reference "
                    "model: pass --reference PATH (a model folder)"
                )
            inspect_model_folder(settings.reference, allow_pickle=settings.allow_pickle)
        self.gradnorm_p = float(manifest.settings.get("gradnorm_p", 2.0))
        try:
            self.mia_k = float(manifest.settings.get("mia_k", 0.4))
        except (TypeError, ValueError):
            raise UnlearnError(f"--setting mia_k={manifest.settings.get('mia_k')!r}: must be a number") from None
        self.max_new_tokens = int(manifest.settings.get("max_new_tokens", 256))
        # Padded tokens per batch (--batch-size still bounds the rows): a long document goes
        # alone, short ones pack together. Default from the device's memory (the header says).
        self.max_batch_tokens, self.token_budget_source = token_budget(manifest.settings, settings)
        # Off for parity: the reference scorer extrapolates past the model's context (we warn).
        self.truncate_to_context = bool(manifest.settings.get("truncate_to_context", False))
        data_dir = settings.data
        if data_dir is not None and not data_dir.is_dir():
            raise UnlearnError(f"--data {data_dir}: no such folder; pass the folder with forget/retain files")
        if data_dir is not None:
            forget_path = find_split_file(data_dir, "forget")
            retain_path = find_split_file(data_dir, "retain")
        else:
            forget_path, retain_path = self._bundled("forget"), self._bundled("retain")
        forget = load_prompts(forget_path, "forget", self.warn)
        retain = load_prompts(retain_path, "retain", self.warn)
        require_disjoint(
            {r.id: r.line for r in forget},
            {r.id: r.line for r in retain},
            first_source=forget_path,
            second_source=retain_path,
            what="id",
            belongs="a prompt belongs to one split: remove it from one file",
        )
        self.rows: list[PromptRow] = forget + retain
        self.data_files = {"forget": str(forget_path), "retain": str(retain_path)}

        mia_dir = _optional_dir(settings.data_paths.get("mia"), data_dir, ("mia_data", "mia"), manifest.data.get("mia"))
        self.mia: tuple[list[MIADocument], list[MIADocument]] | None = None
        if mia_dir is not None:
            self.mia = load_mia(mia_dir, "--mia-data" if "mia" in settings.data_paths else "MIA data", self.warn)
            self.data_files["mia"] = str(mia_dir)

        mmlu_dir = _optional_dir(settings.data_paths.get("mmlu"), data_dir, ("mmlu",), manifest.data.get("mmlu"))
        self.mmlu_data: MMLUData | None = None
        if mmlu_dir is not None:
            self.mmlu_data = load_mmlu(mmlu_dir, self.warn)
            self.data_files["mmlu"] = str(mmlu_dir)

        self.predictions: dict[str, str] | None = None
        if settings.predictions:
            predictions = load_predictions(settings.predictions, self.warn)
            self.warn(
                match_ids(
                    predictions.lines, (r.id for r in self.rows), source=settings.predictions, flag="--predictions"
                )
            )
            self.predictions = predictions.outputs
        if settings.model is not None:
            inspect_model_folder(settings.model, allow_pickle=settings.allow_pickle)
        elif self.predictions is None:
            raise UnlearnError("--suite semeval needs --model PATH (or --predictions FILE for the text checks)")
        memorization = [
            c.id for c in manifest.checks if c.metric in ("semeval.exact_memorization", "semeval.extraction_strength")
        ]
        if memorization and settings.model is None:
            raise UnlearnError(
                f"check {memorization[0]} (open-unlearning's memorization) reads the model's next-token "
                "predictions: pass --model PATH (a predictions file holds generations only)"
            )

        self.inputs = sm.SemevalInputs()
        self._model: tuple[Any, Any, str] | None = None
        self._fingerprint: str | None = None
        self._model_digest: str | None = None
        self._resolved_device: str | None = None  # where the (cached) passes ran or would run
        self.model_loads = 0  # models loaded in this run (tests read it: a warm rerun loads none)
        self._original: tuple[Any, Any, str] | None = None  # --original-model, for the user's tests

    # -- the user's own tests ---------------------------------------------------------------
    USER_API = ("model", "original", "generate", "nll", "data")

    def user_model(self, role: str = "model") -> Any:
        if role == "model":
            model, tokenizer, device = self.require_model("unlearn_model")
            return LanguageModel(model, tokenizer, device, self.settings.model)  # type: ignore[arg-type]
        path = self.settings.original_model
        if path is None:
            raise UnlearnError("unlearn_original_model needs --original-model PATH")
        if self._original is None:
            from pytest_unlearn.loading import load_causal_lm

            self._original = load_causal_lm(
                path, device=self.settings.device, dtype=self.settings.dtype, allow_pickle=self.settings.allow_pickle
            )
        model, tokenizer, device = self._original
        return LanguageModel(model, tokenizer, device, path)

    def user_generate(self, prompts: list[str], **overrides: Any) -> list[str]:
        """Greedy continuations with the suite's settings (``max_new_tokens`` may be overridden),
        batched and through the artifact cache, under the same key as the suite's own."""
        unknown = sorted(set(overrides) - {"max_new_tokens"})
        if unknown:
            raise UnlearnError(f"unlearn_generate: unknown setting(s) {', '.join(unknown)}; it takes max_new_tokens")
        if self.settings.model is None:
            self.require_model("unlearn_generate")
        return self._generations(list(prompts), int(overrides.get("max_new_tokens", self.max_new_tokens)))

    def user_nll(self, texts: list[str]) -> list[float]:
        """Mean token NLL of each text (as the MIA check scores documents), through the cache."""
        if self.settings.model is None:
            self.require_model("unlearn_nll")
        return self._document_losses(list(texts))

    def user_data(self) -> SemevalData:
        rows = self.rows
        return SemevalData(
            forget=[r for r in rows if r.split == "forget"],
            retain=[r for r in rows if r.split == "retain"],
            mia=self.mia,
            mmlu=self.mmlu_data,
        )

    def _context(self, texts: list[str], what: str) -> int | None:
        """The model's context when the texts must be cut to it, else None; texts longer than
        the context are one warning (an error under --unlearn-strict) either way."""
        from pytest_unlearn.loading import model_config

        limit = model_config(self.settings.model).get("max_position_embeddings")
        if not limit:
            return None
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(self.settings.model, local_files_only=True, trust_remote_code=False)
        lengths = [len(tokenizer(t).input_ids) for t in texts]
        longer = [n for n in lengths if n > limit]
        if longer:
            done = "cut to it (--setting truncate_to_context)" if self.truncate_to_context else (
                "scored whole, positions past it extrapolated as the reference scorer does; "
                "--setting truncate_to_context=true cuts them"
            )  # fmt: skip
            self.warn(
                f"{what}: {len(longer)} of {len(texts)} texts are longer than the model's context (longest "
                f"{max(longer)} tokens, max_position_embeddings {limit}): {done}"
            )
        return int(limit) if self.truncate_to_context else None

    def _bundled(self, key: str) -> Path:
        path = self.manifest.data.get(key)
        if path is None:
            raise UnlearnError(f"suite manifest {self.manifest.path}: no bundled {key} data; pass --data DIR")
        return path

    # -- --stress ------------------------------------------------------------------------------
    def stress_texts(self, part: str) -> list[tuple[str, str]]:
        # One text per document (its prompts with their completions): a held-out half must not
        # share a document with the trained half, whose text would give its answers away.
        documents: dict[str, list[str]] = {}
        for row in self.rows:
            if row.split == part:
                documents.setdefault(document_id(row.id), []).append(f"{row.input}{row.output}")
        return [(doc, "\n".join(texts)) for doc, texts in documents.items()]

    def hold_out(self, ids: set[str]) -> None:
        forget = {document_id(r.id) for r in self.rows if r.split == "forget"}
        self.rows = [r for r in self.rows if r.split != "forget" or document_id(r.id) in ids]
        if self.mia is not None:
            # The MIA members are the forget documents: those trained on would be members twice over.
            members, nonmembers = self.mia
            self.mia = ([m for m in members if m.id not in forget or m.id in ids], nonmembers)

    # -- model ---------------------------------------------------------------------------------
    def require_model(self, what: str) -> tuple[Any, Any, str]:
        if self.settings.model is None:
            raise UnlearnError(f"{what} needs the model itself: pass --model PATH")
        if self._model is None:
            from pytest_unlearn.loading import load_causal_lm
            from pytest_unlearn.workers import split_cpu_threads

            self._model = load_causal_lm(
                self.settings.model,
                device=self.settings.device,
                dtype=self.settings.dtype,
                allow_pickle=self.settings.allow_pickle,
            )
            split_cpu_threads(self._model[2])
            self.model_loads += 1
        return self._model

    def _cache_key(self, kind: str, **parts: Any) -> str:
        """What a model pass's output depends on: the model's content (weights, configs,
        tokenizer), the device kind and dtype (bf16 on CUDA by default), the batching, the inputs."""
        from pytest_unlearn.cache import make_key, model_digest
        from pytest_unlearn.loading import resolve_device

        if self._model_digest is None:
            self._model_digest = model_digest(self.settings.model)  # type: ignore[arg-type]
        device = resolve_device(self.settings.device)
        self._resolved_device = device
        device = device.split(":")[0]
        return make_key(
            kind,
            model=self._model_digest,
            device=device,
            dtype=self.settings.dtype,
            batch_size=self.settings.batch_size,
            # Batch composition moves the last bits of batched passes, as the batch size does.
            **({"max_batch_tokens": self.max_batch_tokens} if self.max_batch_tokens else {}),
            **parts,
        )

    def device(self) -> str | None:
        return self._model[2] if self._model else self._resolved_device

    def model_record(self) -> dict[str, Any]:
        if self.settings.model is None:
            return {"path": None, "fingerprint": None, "predictions": str(self.settings.predictions)}
        if self._fingerprint is None:
            self._fingerprint = fingerprint(self.settings.model)
        return {"path": str(self.settings.model), "fingerprint": self._fingerprint}

    # -- inputs ----------------------------------------------------------------------------------
    def compute(self, name: str) -> None:
        if name == "text":
            self._compute_text()
        elif name == "mia":
            self._compute_mia()
        elif name == "mmlu":
            self._compute_mmlu()
        elif name == "memorization":
            self._compute_memorization()
        else:
            raise UnlearnError(f"the semeval backend cannot compute {name!r}")

    def _compute_text(self) -> None:
        if self.predictions is not None:
            missing = [r.id for r in self.rows if r.id not in self.predictions]
            if missing:
                raise UnlearnError(
                    f"--predictions {self.settings.predictions}: no output for {len(missing)} "
                    f"prompt(s), e.g. {missing[:3]}; generate every forget and retain prompt"
                )
            outputs = [self.predictions[r.id] for r in self.rows]
        else:
            if self.settings.model is None:
                self.require_model("generation")  # the one-line error
            generated: dict[str, str] = {}
            # One cache entry per split: a run stopped after the forget set keeps it.
            for split in ("forget", "retain"):
                rows = [r for r in self.rows if r.split == split]
                if not rows:
                    continue
                texts = self._generations([r.input for r in rows], self.max_new_tokens)
                generated.update(zip((r.id for r in rows), texts))
            outputs = [generated[r.id] for r in self.rows]
        scores = [sm.prompt_score(r.kind, r.output, out) for r, out in zip(self.rows, outputs)]
        groups: dict[sm.GroupKey, list[float]] = {}
        for row, score in zip(self.rows, scores):
            groups.setdefault((row.split, row.task, row.kind), []).append(score)
        self.inputs = replace(self.inputs, text={k: np.asarray(v, dtype=float) for k, v in groups.items()})
        self._write_jsonl(
            "generations",
            [
                {
                    "id": r.id,
                    "task": r.task,
                    "kind": r.kind,
                    "split": r.split,
                    "input": r.input,
                    "expected": r.output,
                    "output": out,
                    "score": score,
                }
                for r, out, score in zip(self.rows, outputs, scores)
            ],
        )

    def _compute_mia(self) -> None:
        if self.mia is None:
            raise UnlearnError("no membership-inference data: pass --mia-data DIR (member.jsonl, nonmember.jsonl)")
        if self.settings.model is None:
            self.require_model("the membership-inference check")
        members, nonmembers = self.mia
        documents = [d.document for d in members + nonmembers]
        if self.mia_attack.name == "loss":
            names = [f"MIA document {d.id!r}" for d in members + nonmembers]
            losses = self._document_losses(documents, names, self._context(documents, "MIA data"))
        else:
            losses = self._attack_scores(documents)
        bad = [d.id for d, loss in zip(members + nonmembers, losses) if not np.isfinite(loss)]
        if bad:
            raise UnlearnError(
                f"MIA data: documents {bad[:3]} give no finite loss (empty or one token, or the "
                "model outputs NaN); remove them or check the weights"
            )
        self.inputs = replace(
            self.inputs,
            member_nll=np.asarray(losses[: len(members)]),
            nonmember_nll=np.asarray(losses[len(members) :]),
        )
        self._write_jsonl(
            "mia_losses",
            [
                {
                    "id": d.id,
                    "set": "member" if i < len(members) else "nonmember",
                    **(
                        {"nll": loss}
                        if self.mia_attack.name == "loss"
                        else {"attack": self.mia_attack.name, "score": loss}
                    ),
                }
                for i, (d, loss) in enumerate(zip(members + nonmembers, losses))
            ],
        )

    def _document_losses(
        self, documents: list[str], names: list[str] | None = None, context: int | None = None
    ) -> list[float]:
        """Mean token NLL of each document (cut to ``context`` tokens when given), one cache entry
        (the MIA check and the user's ``unlearn_nll`` share the mechanism and the key)."""
        from pytest_unlearn.engines.causal_lm import document_nll

        def produce() -> list[float]:
            from pytest_unlearn.progress import PhaseProgress

            model, tokenizer, device = self.require_model("the membership-inference check")
            progress = PhaseProgress(self.progress, "semeval document losses", len(documents))
            return document_nll(
                model, tokenizer, documents, batch_size=self.settings.batch_size, device=device,
                max_tokens=self.max_batch_tokens, names=names, truncate=context, progress=progress.advance,
            )  # fmt: skip

        key = self._cache_key("semeval.mia_losses", documents=documents, **({"truncate": context} if context else {}))
        return self.cache.get_or_create_json("semeval-mia", key, produce)

    def _attack_scores(self, documents: list[str]) -> list[float]:
        """The selected attack's score of every document (higher: less member-like), from the
        token statistics of one cached model pass."""
        import inspect

        from pytest_unlearn.attacks import TokenStats
        from pytest_unlearn.engines.causal_lm import token_statistics

        vocabulary = self.mia_attack.needs_vocab
        context = self._context(documents, "MIA data")

        def produce() -> list[dict[str, list[float]]]:
            from pytest_unlearn.progress import PhaseProgress

            model, tokenizer, device = self.require_model("the membership-inference check")
            progress = PhaseProgress(self.progress, "semeval MIA token statistics", len(documents))
            return token_statistics(
                model, tokenizer, documents, batch_size=self.settings.batch_size, device=device,
                vocabulary=vocabulary, max_tokens=self.max_batch_tokens, truncate=context,
                progress=progress.advance,
            )  # fmt: skip

        key = self._cache_key("semeval.mia_token_stats", documents=documents, vocabulary=vocabulary)
        stats = self.cache.get_or_create_json("semeval-mia-tokens", key, produce)
        norms = self._gradient_norms(documents, context) if self.mia_attack.needs_gradient else None
        reference = self._reference_logprobs(documents, context) if self.mia_attack.needs_reference else None
        params = {"k": self.mia_k} if "k" in inspect.signature(self.mia_attack.fn).parameters else {}
        scores = []
        for i, (doc, row) in enumerate(zip(documents, stats)):
            if not row["logprobs"] or (reference is not None and not reference[i]):
                scores.append(float("nan"))  # reported below with the document ids
                continue
            token_stats = TokenStats(
                text=doc,
                logprobs=np.asarray(row["logprobs"]),
                mu=np.asarray(row["mu"]) if "mu" in row else None,
                sigma2=np.asarray(row["sigma2"]) if "sigma2" in row else None,
                reference_logprobs=None if reference is None else np.asarray(reference[i]),
                grad_norm=None if norms is None else norms[i],
            )
            scores.append(self.mia_attack.score(token_stats, **params))
        return scores

    def _gradient_norms(self, documents: list[str], context: int | None) -> list[float]:
        """The gradnorm attack's per-document gradient norm (open-unlearning ``mia/gradnorm.py``),
        one document at a time (a gradient per sample), cached like the other passes."""

        def produce() -> list[float]:
            from pytest_unlearn.engines.open_unlearning import document_gradient_norms
            from pytest_unlearn.progress import PhaseProgress

            model, tokenizer, device = self.require_model("the membership-inference check")
            progress = PhaseProgress(self.progress, "semeval MIA gradient norms", len(documents))
            return document_gradient_norms(
                model, tokenizer, documents, p=self.gradnorm_p, device=device, truncate=context,
                progress=progress.advance,
            )  # fmt: skip

        key = self._cache_key(
            "semeval.mia_gradnorm", documents=documents, p=self.gradnorm_p, **({"truncate": context} if context else {})
        )
        return self.cache.get_or_create_json("semeval-mia-gradnorm", key, produce)

    def _reference_logprobs(self, documents: list[str], context: int | None) -> list[list[float]]:
        """The reference model's token log-probs of the same documents, cut at the same length
        (the reference attack: the model's mean token NLL minus the reference's)."""
        from pytest_unlearn.cache import make_key, model_digest
        from pytest_unlearn.engines.causal_lm import token_statistics
        from pytest_unlearn.loading import load_causal_lm, resolve_device

        path = self.settings.reference
        assert path is not None  # refused in __init__ otherwise

        def produce() -> list[list[float]]:
            from pytest_unlearn.progress import PhaseProgress

            model, tokenizer, device = load_causal_lm(
                path, device=self.settings.device, dtype=self.settings.dtype, allow_pickle=self.settings.allow_pickle
            )
            self.model_loads += 1
            progress = PhaseProgress(self.progress, "semeval MIA reference log-probs", len(documents))
            rows = token_statistics(
                model, tokenizer, documents, batch_size=self.settings.batch_size, device=device,
                vocabulary=False, max_tokens=self.max_batch_tokens, truncate=context, progress=progress.advance,
            )  # fmt: skip
            return [row["logprobs"] for row in rows]

        # Keyed by the reference's own content, not the model's: one reference serves every model.
        key = make_key(
            "semeval.mia_reference_logprobs",
            reference=model_digest(path),
            device=resolve_device(self.settings.device).split(":")[0],
            dtype=self.settings.dtype,
            batch_size=self.settings.batch_size,
            max_batch_tokens=self.max_batch_tokens,
            documents=documents,
            truncate=context,
        )
        return self.cache.get_or_create_json("semeval-mia-reference", key, produce)

    #: Tokens of input + output a memorization pass reads (TOFU's QA length in open-unlearning).
    MEMORIZATION_MAX_LENGTH = 512

    def _compute_memorization(self) -> None:
        """Argmax predictions over every row's expected output given its input (open-unlearning's
        exact memorization and extraction strength, TOFU's encoding: input + output tokenized
        together, the output's tokens and EOS labelled), one pass per row, cached."""
        from pytest_unlearn.engines.open_unlearning import answer_predictions

        if self.settings.model is None:
            self.require_model("exact memorization and extraction strength")  # its one line
        pairs = [(r.input, r.output) for r in self.rows]
        limit = self.MEMORIZATION_MAX_LENGTH

        def produce() -> list[list[list[int]]]:
            model, tokenizer, device = self.require_model("exact memorization and extraction strength")
            return [[p, lab] for p, lab in answer_predictions(model, tokenizer, pairs, max_length=limit, device=device)]

        key = self._cache_key("semeval.answer_argmax", pairs=pairs, max_length=limit)
        rows = self.cache.get_or_create_json("semeval-argmax", key, produce)
        self.inputs = replace(
            self.inputs,
            memorization=[(r.split, r.task, list(p), list(lab)) for r, (p, lab) in zip(self.rows, rows)],
        )

    def _compute_mmlu(self) -> None:
        if self.mmlu_data is None:
            raise UnlearnError("no MMLU data: pass --mmlu DIR (dev/ and test/ CSVs)")
        from pytest_unlearn.engines.causal_lm import mmlu_predict, mmlu_prefixes, mmlu_prompts

        if self.settings.model is None:
            self.require_model("the MMLU gate")
        data = self.mmlu_data

        def produce() -> list[Any]:
            model, tokenizer, device = self.require_model("the MMLU gate")
            prompts = mmlu_prompts(tokenizer, data, self.shots)
            from pytest_unlearn.progress import PhaseProgress

            progress = PhaseProgress(self.progress, "semeval MMLU questions", len(prompts))
            # Each subject's header and shots are run once (the letters and probabilities equal
            # the unshared pass: tests/suites/semeval/test_backend.py).
            predictions = mmlu_predict(
                model, tokenizer, [p for _, _, p in prompts], batch_size=self.settings.batch_size, device=device,
                max_tokens=self.max_batch_tokens, prefixes=mmlu_prefixes(data, prompts),
                progress=progress.advance,
            )  # fmt: skip
            pairs = zip(prompts, predictions)
            return [[subject, index, letter, probs] for (subject, index, _), (letter, probs) in pairs]

        # The prompts are a function of the questions, the shots and the tokenizer (in the model
        # digest), so the key needs no tokenizer: a warm rerun loads nothing.
        questions = json.dumps(asdict(data), sort_keys=True, ensure_ascii=False)
        digest = hashlib.sha256(questions.encode()).hexdigest()
        key = self._cache_key("semeval.mmlu", questions=digest, shots=self.shots)
        from pytest_unlearn import domains

        predicted = self.cache.get_or_create_json("semeval-mmlu", key, produce)
        # The letter is the argmax of these probabilities: over NaN it is "A" whatever the model knows.
        domains.require_finite(
            [probs for _, _, _, probs in predicted],
            [f"{subject}:{index}" for subject, index, _, _ in predicted],
            what="MMLU letter probabilities",
            unit="questions",
            source=str(self.settings.model),
        )
        rows = []
        correct = []
        for subject, index, letter, probs in predicted:
            answer = self.mmlu_data.test[subject][index].answer
            correct.append(float(letter == answer))
            rows.append(
                {
                    "subject": subject,
                    "index": index,
                    "answer": answer,
                    "prediction": letter,
                    "correct": letter == answer,
                    "probs": dict(zip("ABCD", probs)),
                }
            )
        self.inputs = replace(self.inputs, mmlu_correct=np.asarray(correct))
        self._write_jsonl("mmlu_predictions", rows)

    def _generations(self, prompts: list[str], max_new_tokens: int) -> list[str]:
        """Greedy continuations of ``prompts``, one artifact-cache entry per call (the suite's
        splits and the user's tests share the mechanism and the key)."""
        from pytest_unlearn.engines.causal_lm import generate_greedy

        def produce() -> list[str]:
            from pytest_unlearn.progress import PhaseProgress

            model, tokenizer, device = self.require_model("generation")
            progress = PhaseProgress(self.progress, "semeval generations", len(prompts))
            return generate_greedy(
                model, tokenizer, prompts, max_new_tokens=max_new_tokens,
                batch_size=self.settings.batch_size, device=device, max_tokens=self.max_batch_tokens,
                progress=progress.advance, source=str(self.settings.model),
            )  # fmt: skip

        key = self._cache_key("semeval.generations", inputs=prompts, max_new_tokens=max_new_tokens)
        return self.cache.get_or_create_json("semeval-generations", key, produce)

    def metric_inputs(self) -> sm.SemevalInputs:
        return self.inputs

    def aggregates(self) -> dict[str, Any]:
        return sm.aggregates(self.inputs)

    # -- records -------------------------------------------------------------------------------
    def _write_jsonl(self, name: str, rows: list[dict[str, Any]]) -> None:
        self.write_artifact(name, f"{name}.jsonl", jsonl_bytes(rows), "per-prompt records")

    def report_sections(self, card: dict[str, Any], report: Path) -> list[str]:
        """The worst examples of each failing subtask check, the MIA loss histograms with the
        AUC, and MMLU accuracy per subject, from this run's artifact files."""
        from pytest_unlearn.report import E, generated_cell, histogram_svg

        files = card.get("artifacts", {})
        sections = []
        generations = _read_jsonl(files.get("generations"))
        failing = [c for c in card["checks"] if not c["passed"] and c["metric"] == "semeval.subtask"]
        if generations and failing:
            parts = ["<h2>Worst examples of the failing checks</h2>"]
            for check in failing:
                if check["id"].count("-") != 2:
                    continue  # a check of a custom manifest, named otherwise
                task, kind, split = check["id"].split("-")
                rows = [g for g in generations if (g["task"].lower(), g["kind"], g["split"]) == (task, kind, split)]
                # Forget: the outputs closest to the answer; retain: the furthest from it.
                rows.sort(key=lambda g: -g["score"] if split == "forget" else g["score"])
                parts.append(f"<h3>{E(check['id'])}</h3><table><tr><th>input</th><th>expected</th>"
                             "<th>generated</th><th>score</th></tr>")  # fmt: skip
                for g in rows[: self.REPORT_EXAMPLES]:
                    parts.append(
                        f"<tr><td><pre>{E(g['input'])}</pre></td><td><pre>{E(g['expected'])}</pre></td>"
                        f"<td>{generated_cell(g['output'])}</td><td>{g['score']:.3f}</td></tr>"
                    )
                parts.append("</table>")
            sections.append("".join(parts))
        losses = _read_jsonl(files.get("mia_losses"))
        if losses:
            # LOSS writes each document's mean token NLL; another attack its score.
            field = "nll" if "nll" in losses[0] else "score"
            what = "mean token NLL" if field == "nll" else f"{losses[0].get('attack', 'attack')} score"
            series = {
                "members": [r[field] for r in losses if r["set"] == "member"],
                "non-members": [r[field] for r in losses if r["set"] == "nonmember"],
            }
            auc = card.get("aggregates", {}).get("mia_auc")
            sections.append(
                f"<h2>Membership inference</h2><p>{E(what)} per document; ROC AUC "
                f"{'n/a' if auc is None else f'{auc:.4f}'} (0.5: members look like non-members)</p>"
                + histogram_svg(series, label=what)
            )
        mmlu = _read_jsonl(files.get("mmlu_predictions"))
        if mmlu:
            by_subject: dict[str, list[bool]] = {}
            for row in mmlu:
                by_subject.setdefault(row["subject"], []).append(bool(row["correct"]))
            rows = "".join(
                f"<tr><td>{E(s)}</td><td>{sum(v)}/{len(v)}</td><td>{sum(v) / len(v):.3f}</td></tr>"
                for s, v in sorted(by_subject.items())
            )
            sections.append(
                "<h2>MMLU per subject</h2><table><tr><th>subject</th><th>correct</th><th>accuracy</th></tr>"
                + rows + "</table>"
            )  # fmt: skip
        return sections

    #: Examples shown per failing check in the HTML report.
    REPORT_EXAMPLES = 5

    def artifacts(self) -> dict[str, str]:
        return dict(self._artifact_files)

    def header_lines(self) -> list[str]:
        counts = {}
        for r in self.rows:
            counts[r.split] = counts.get(r.split, 0) + 1
        source = str(self.settings.predictions) if self.settings.model is None else str(self.settings.model)
        return [
            f"unlearn: prompts forget={counts.get('forget', 0)} retain={counts.get('retain', 0)}, "
            f"max_new_tokens={self.max_new_tokens}, mmlu_shots={self.shots}, model={source}, "
            "generation=greedy (no sampling, no seed)",
            f"unlearn: max_batch_tokens={self.max_batch_tokens} ({self.token_budget_source}), at most "
            f"--batch-size={self.settings.batch_size} rows",
        ]

    def settings_record(self) -> dict[str, Any]:
        return {
            "max_new_tokens": self.max_new_tokens,
            "mmlu_shots": self.shots,
            "mia_attack": self.mia_attack.name,
            "batch_size": self.settings.batch_size,
            "device": self.settings.device,
            "dtype": self.settings.dtype,
            "data": self.data_files,
        }
