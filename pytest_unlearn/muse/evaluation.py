"""The MUSE backend: greedy generations and token log-probs of ``--model`` (and of
``--original-model`` / ``--reference`` where a check needs them), scored as muse_bench does.

Inputs (each computed at most once per run, shared by every check that needs it):
- ``verbmem``: the model's continuation of every forget prompt, ROUGE-L F1 per prompt;
- ``knowmem``: its in-context answers to the forget and retain questions, ROUGE-L F1 each;
- ``original``: the original (target) model's retain answers (``--original-model``), or the
  value of ``--setting knowmem_retain_target``;
- ``privleak``: Min-K% scores of the forget and holdout texts;
- ``reference``: the retrained model's (``--reference``), else PrivLeak's published AUC_retrain.
Generations and token log-probs go through the content-addressed artifact cache; torch is
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
from pytest_unlearn.files import jsonl_bytes
from pytest_unlearn.fingerprint import fingerprint
from pytest_unlearn.loading import inspect_model_folder, token_budget
from pytest_unlearn.manifest import SuiteManifest
from pytest_unlearn.muse import metrics as mm
from pytest_unlearn.muse.data import MuseData, load_data
from pytest_unlearn.muse.settings import SETTINGS as MUSE_SETTINGS

ROLES = {"model": "--model", "original": "--original-model", "reference": "--reference"}
DEFAULTS: dict[str, Any] = {
    "corpus": "news",
    "muse_variant": "muse",
    "verbmem_max_new_tokens": 128,
    "knowmem_max_new_tokens": 32,
    "mink_k": mm.MIN_K,
}


class MuseBackend(ModelsByPath, Backend):
    #: What --setting may override besides the manifest's [settings].
    SETTINGS = MUSE_SETTINGS
    USER_API = ("model", "original", "reference", "generate", "nll", "data")

    def __init__(self, manifest: SuiteManifest, settings: RunSettings) -> None:
        super().__init__(manifest, settings)
        from pytest_unlearn.settings import typed_setting

        s = {**DEFAULTS, **manifest.settings}
        where = f"suite {manifest.name} (manifest or --setting)"
        self.corpus = str(s["corpus"])
        if self.corpus not in mm.CORPORA:
            raise UnlearnError(f"--setting corpus={self.corpus}: unknown MUSE corpus; use news or books")
        self.variant = str(s["muse_variant"])
        if self.variant not in mm.VARIANTS:
            raise UnlearnError(
                f"--setting muse_variant={self.variant}: unknown variant; use muse (muse_bench's scoring) "
                "or open-unlearning"
            )
        self.verbmem_tokens = typed_setting(s, "verbmem_max_new_tokens", int, where)
        self.knowmem_tokens = typed_setting(s, "knowmem_max_new_tokens", int, where)
        for key, value in (
            ("verbmem_max_new_tokens", self.verbmem_tokens),
            ("knowmem_max_new_tokens", self.knowmem_tokens),
        ):
            if value < 1:
                raise UnlearnError(f"{where}: setting {key!r} must be at least 1, got {value!r}")
        self.k = typed_setting(s, "mink_k", float, where)
        if not 0 < self.k <= 1:
            raise UnlearnError(f"--setting mink_k={self.k}: the Min-K% fraction must be in (0, 1] (MUSE: 0.4)")
        self.retain_target = self._optional_fraction(s, "knowmem_retain_target", 100.0, "its KnowMem on retain, x 100")
        self.auc_retrain = self._optional_fraction(s, "auc_retrain", 1.0, "an AUC")
        # open-unlearning's MUSE_EVAL.json / MUSE_SUMMARY.json beside our records (issue 27).
        self.write_openunlearning = typed_setting(
            {"write_openunlearning": False, **s}, "write_openunlearning", bool, where
        )
        self._openunlearning_written = False
        self.max_batch_tokens, self.token_budget_source = token_budget(s, settings)
        self.inputs = mm.MuseInputs(variant=self.variant)
        self._models: dict[Path, tuple[Any, Any, str]] = {}
        self._tokenizers: dict[Path, Any] = {}
        self._digests: dict[Path, str] = {}
        self._fingerprint: str | None = None
        self._resolved_device: str | None = None
        self.model_loads = 0

        data_dir = settings.data if settings.data is not None else manifest.data.get("muse")
        if data_dir is None:
            raise UnlearnError(
                f"--suite {manifest.name} needs MUSE's data: pass --data DIR (muse_bench's data folder or one "
                "corpus folder in it)"
            )
        flag = "--data" if settings.data is not None else f"suite {manifest.name}'s bundled data"
        self.data: MuseData = load_data(Path(data_dir), self.corpus, flag, self.warn)

        # open-unlearning's MUSE_EVAL.json as the model's (--predictions) or the retrained
        # model's (--reference) per-sample values: read now, so a bad file stops the run first.
        from pytest_unlearn.muse.openunlearning_files import MuseLog, is_summary, load_muse_eval, summary_auc_retrain

        self._prediction_log: MuseLog | None = None
        self._reference_log: MuseLog | None = None
        # The retrained model's MUSE_SUMMARY.json as --reference: its AUC alone (PrivLeak's denominator).
        self._reference_summary_auc: float | None = None
        if settings.predictions is not None:
            self._prediction_log = load_muse_eval(settings.predictions, "--predictions")
        elif settings.model is None:
            raise UnlearnError(
                f"--suite {manifest.name} needs --model PATH (the unlearned model's folder) or --predictions FILE "
                "(open-unlearning's MUSE_EVAL.json)"
            )
        if settings.model is not None:
            inspect_model_folder(settings.model, allow_pickle=settings.allow_pickle)
        if settings.reference is not None and settings.reference.is_file() and is_summary(settings.reference):
            self._reference_summary_auc = summary_auc_retrain(settings.reference, "--reference")
        elif (
            settings.reference is not None
            and not (settings.reference / "config.json").is_file()
            and (settings.reference.is_file() or (settings.reference / "MUSE_EVAL.json").is_file())
        ):
            self._reference_log = load_muse_eval(settings.reference, "--reference")
            self._check_reference_sizes()
        for role in ("original", "reference"):
            path = self._role_path(role)
            from_file = self._reference_log is not None or self._reference_summary_auc is not None
            if path is not None and not (role == "reference" and from_file):
                what = (
                    "the folder of the model before unlearning"
                    if role == "original"
                    else "the retrained model's folder"
                )
                if not path.exists():
                    raise UnlearnError(f"{ROLES[role]} {path}: no such file or folder; pass {what}")
                inspect_model_folder(path, allow_pickle=settings.allow_pickle, flag=ROLES[role])

        self._check_mia_checks()

    def _check_mia_checks(self) -> None:
        """``muse.mia_auc`` checks scored from the weights: an unknown attack, no model, or the
        reference attack without a reference model folder is one line now, not a failed pass."""
        from pytest_unlearn.attacks import get_attack

        # Each such check with its attack, in manifest order.
        self.mia_checks = [
            (c, get_attack(str(c.params.get("attack", "min_k")), f"check {c.id}: attack"))
            for c in self.manifest.checks
            if c.metric == "muse.mia_auc"
        ]
        if not self.mia_checks:
            return
        if self.settings.model is None:
            from pytest_unlearn.attacks import OPEN_UNLEARNING_METRICS

            log = self._prediction_log
            for spec, attack in self.mia_checks:
                if log is None or attack.name not in log.mia:
                    raise UnlearnError(
                        f"check {spec.id} (muse.mia_auc, {attack.name}) scores the model's token log-probs: pass "
                        f"--model PATH, or a MUSE_EVAL.json with its {OPEN_UNLEARNING_METRICS[attack.name]} as "
                        "--predictions"
                    )
            return
        reference = self.settings.reference
        if any(a.needs_reference for _, a in self.mia_checks) and (
            reference is None or not (reference / "config.json").is_file()
        ):
            raise UnlearnError("the reference attack needs a reference model: pass --reference PATH (a model folder)")

    def _check_reference_sizes(self) -> None:
        """The retrained model's texts are drawn with the model's in a bootstrap replicate:
        their MUSE_EVAL.json must score as many forget and holdout texts."""
        assert self._reference_log is not None
        ref = self._reference_log.privleak
        own = self._prediction_log.privleak if self._prediction_log is not None else None
        sizes = {s: len(v) for s, v in (own or {k: self.data.privleak[k] for k in ("forget", "holdout")}).items()}
        if ref is not None and {s: len(v) for s, v in ref.items()} != sizes:
            raise UnlearnError(
                f"--reference {self._reference_log.path}: its mia_min_k scores {len(ref['forget'])} forget and "
                f"{len(ref['holdout'])} holdout texts, the model {sizes['forget']} and {sizes['holdout']}; pass the "
                "retrained model's MUSE_EVAL.json of the same data"
            )

    def _optional_fraction(self, s: dict[str, Any], key: str, top: float, what: str) -> float | None:
        value = s.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= top:
            raise UnlearnError(f"--setting {key}={value}: expected a number in (0, {top:g}] ({what})")
        return float(value)

    def _role_path(self, role: str) -> Path | None:
        return {
            "model": self.settings.model,
            "original": self.settings.original_model,
            "reference": self.settings.reference,
        }[role]

    # -- models ----------------------------------------------------------------------------------
    def _tokenizer(self, path: Path) -> Any:
        """The model's tokenizer, without loading the weights (cached generations need none)."""
        if path in self._models:
            return self._models[path][1]
        if path not in self._tokenizers:
            from transformers import AutoTokenizer

            self._tokenizers[path] = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
        return self._tokenizers[path]

    def _generate(self, path: Path, prompts: list[str], max_new_tokens: int) -> list[str]:
        """Greedy continuations (muse_bench: ``generate(do_sample=False)``, new tokens decoded
        with ``skip_special_tokens``), batched with left padding, through the cache."""
        from pytest_unlearn.engines.causal_lm import generate_greedy

        def produce() -> list[str]:
            from pytest_unlearn.progress import PhaseProgress

            model, tokenizer, device = self._model(path)
            label = f"muse generations of {max_new_tokens} tokens ({path.name})"
            progress = PhaseProgress(self.progress, label, len(prompts))
            return generate_greedy(
                model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=self.settings.batch_size,
                device=device, max_tokens=self.max_batch_tokens, progress=progress.advance, source=str(path),
            )  # fmt: skip

        key = self._cache_key(path, "muse.generations", prompts=prompts, max_new_tokens=max_new_tokens)
        return self.cache.get_or_create_json("muse-generations", key, produce)

    def _context(self, path: Path, texts: list[str]) -> int | None:
        """The model's context when a text is longer (said once), else None."""
        from pytest_unlearn.loading import model_config

        limit = model_config(path).get("max_position_embeddings")
        if not limit:
            return None
        tokenizer = self._tokenizer(path)
        longest = max(len(tokenizer(t).input_ids) for t in texts)
        if longest <= limit:
            return None
        self.warn(
            f"PrivLeak: texts up to {longest} tokens, {path.name} reads {limit}: "
            f"each is cut to its first {limit} tokens"
        )
        return int(limit)

    def _token_stats(self, path: Path, texts: list[str]) -> list[list[float]]:
        """Log-prob of every token after the first given its prefix (muse_bench's ``all_prob``
        of ``compute_ppl``: ``tokenizer.encode(text)``, special tokens included), cached."""
        from pytest_unlearn.engines.causal_lm import token_statistics

        context = self._context(path, texts)

        def produce() -> list[list[float]]:
            from pytest_unlearn.progress import PhaseProgress

            model, tokenizer, device = self._model(path)
            progress = PhaseProgress(self.progress, f"muse token log-probs ({path.name})", len(texts))
            rows = token_statistics(
                model, tokenizer, texts, batch_size=self.settings.batch_size, device=device,
                max_tokens=self.max_batch_tokens, truncate=context, progress=progress.advance,
            )  # fmt: skip
            return [row["logprobs"] for row in rows]

        key = self._cache_key(path, "muse.token_logprobs", texts=texts, truncate=context)
        return self.cache.get_or_create_json("muse-logprobs", key, produce)

    # -- scoring ---------------------------------------------------------------------------------
    def verbmem_reference(self, path: Path, gt: str) -> str:
        """What a continuation is scored against: muse_bench cuts the reference to its first
        ``max_new_tokens`` tokens (special tokens counted: Llama's BOS is one of the 128) and
        decodes them; open-unlearning keeps the whole reference."""
        if self.variant == "open-unlearning":
            return gt.strip()
        tokenizer = self._tokenizer(path)
        ids = tokenizer(gt, add_special_tokens=True).input_ids[: self.verbmem_tokens]
        return tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=True)

    def _stem(self) -> bool:
        return self.variant == "open-unlearning"

    def knowmem_prompts(self, split: str) -> list[str]:
        shots = [(q.question, q.answer) for q in self.data.icl[split]]
        return [mm.knowmem_prompt(shots, q.question) for q in self.data.knowmem[split]]

    def _knowmem_scores(
        self, path: Path, splits: tuple[str, ...]
    ) -> dict[str, tuple[np.ndarray, list[dict[str, Any]]]]:
        out = {}
        for split in splits:
            # One cache entry per split: the original model's retain answers (the utility ratio's
            # denominator) are then the same entry as when that model is itself --model.
            outputs = self._generate(path, self.knowmem_prompts(split), self.knowmem_tokens)
            rows = []
            for qa, raw in zip(self.data.knowmem[split], outputs):
                answer = mm.cut_answer(raw, self.variant)
                score = mm.rouge_l_f1(qa.answer, answer, stem=self._stem())
                rows.append({"index": qa.index, "question": qa.question, "answer": qa.answer,
                             "generation": raw, "scored": answer, "rougeL_f1": score})  # fmt: skip
            out[split] = (np.array([r["rougeL_f1"] for r in rows]), rows)
        return out

    def _compute_from_log(self, name: str) -> bool:
        """Input ``name`` from the --predictions MUSE_EVAL.json; False when it comes from a model."""
        log = self._prediction_log
        if log is None or name not in ("verbmem", "knowmem", "privleak", "memorization", "mia"):
            return False
        if name == "mia":
            if self.settings.model is not None:
                return False  # the weights are given: the attacks run on them
            self.inputs = replace(self.inputs, mia_scores=dict(log.mia))
            return True
        flag = "--predictions"
        if name == "verbmem":
            self.inputs = replace(self.inputs, verbmem=log.require_rouge("verbmem", flag))
        elif name == "knowmem":
            knowmem = {split: log.require_rouge(f"knowmem_{split}", flag) for split in ("forget", "retain")}
            self.inputs = replace(self.inputs, knowmem=knowmem)
        elif name == "privleak":
            self.inputs = replace(self.inputs, privleak=log.require_privleak(flag))
        elif name == "memorization":
            self.inputs = replace(self.inputs, memorization_scores=log.memorization)
        return True

    def compute(self, name: str) -> None:
        if self._compute_from_log(name):
            return
        if name == "reference" and self._reference_summary_auc is not None:
            source = f"--reference {self.settings.reference} (its mia_min_k AUC)"
            self.inputs = replace(self.inputs, auc_retrain=self._reference_summary_auc, auc_retrain_source=source)
            return
        if name == "reference" and self._reference_log is not None:
            ref = self._reference_log.require_privleak("--reference")
            source = f"--reference {self._reference_log.path}"
            self.inputs = replace(self.inputs, reference_privleak=ref, auc_retrain_source=source)
            return
        model = self.settings.model
        if model is None and name in ("verbmem", "knowmem", "privleak", "memorization", "mia"):
            raise UnlearnError(f"internal: the muse input {name!r} has no model to come from")
        if name == "verbmem":
            prompts = [p.prompt for p in self.data.verbmem]
            outputs = self._generate(model, prompts, self.verbmem_tokens)
            rows = []
            for passage, output in zip(self.data.verbmem, outputs):
                reference = self.verbmem_reference(model, passage.gt)
                candidate = output.strip() if self.variant == "open-unlearning" else output
                rows.append({"index": passage.index, "prompt": passage.prompt, "gt": reference, "generation": output,
                             "rougeL_f1": mm.rouge_l_f1(reference, candidate, stem=self._stem())})  # fmt: skip
            self.inputs = replace(self.inputs, verbmem=np.array([r["rougeL_f1"] for r in rows]))
            self._write("verbmem", rows)
        elif name == "knowmem":
            scored = self._knowmem_scores(model, ("forget", "retain"))
            self.inputs = replace(self.inputs, knowmem={split: scores for split, (scores, _) in scored.items()})
            for split, (_, rows) in scored.items():
                self._write(f"knowmem_{split}", rows)
        elif name == "original":
            path = self.settings.original_model
            if path is not None:
                scores, rows = self._knowmem_scores(path, ("retain",))["retain"]
                self._write("original_knowmem_retain", rows)
                source = f"--original-model {path}"
            elif self.retain_target is not None:
                scores, source = (
                    np.array([self.retain_target / 100]),
                    f"--setting knowmem_retain_target={self.retain_target:g}",
                )
            else:
                raise UnlearnError(
                    "the KnowMem-retain ratio needs the original (target) model: pass --original-model PATH, or "
                    "--setting knowmem_retain_target=VALUE (its KnowMem on retain, x 100)"
                )
            self.inputs = replace(self.inputs, original_retain=scores, original_source=source)
        elif name == "privleak":
            scores = self._privleak_scores(model)
            self.inputs = replace(self.inputs, privleak=scores)
            self._write("privleak", [
                {"set": split, "index": i, "min_k": float(v), "text": self.data.privleak[split][i]}
                for split, values in scores.items() for i, v in enumerate(values)
            ])  # fmt: skip
        elif name == "reference":
            path = self.settings.reference
            if path is not None:
                ref = self._privleak_scores(path)
                self.inputs = replace(self.inputs, reference_privleak=ref, auc_retrain_source=f"--reference {path}")
            else:
                value, source = self.fixed_auc_retrain()
                self.inputs = replace(self.inputs, auc_retrain=value, auc_retrain_source=source)
        elif name == "memorization":
            self._compute_memorization(model)
        elif name == "mia":
            self._compute_mia(model)
        else:
            raise UnlearnError(f"the muse backend cannot compute {name!r}")

    def _compute_mia(self, path: Path) -> None:
        """Token statistics of the PrivLeak forget and holdout texts for the ``muse.mia_auc``
        checks' attacks: the vocabulary statistics (Min-K%++), the gradient norms (GradNorm) and
        the reference model's log-probs (Reference) only when an attack asks for them."""
        from pytest_unlearn import domains
        from pytest_unlearn.attacks import TokenStats
        from pytest_unlearn.engines.causal_lm import token_statistics

        sets = self.data.privleak
        texts = sets["forget"] + sets["holdout"]
        names = [f"{split} text {i + 1}" for split in ("forget", "holdout") for i in range(len(sets[split]))]
        attacks = [attack for _, attack in self.mia_checks]
        context = self._context(path, texts)
        if any(a.needs_vocab for a in attacks):

            def produce() -> list[dict[str, list[float]]]:
                from pytest_unlearn.progress import PhaseProgress

                model, tokenizer, device = self._model(path)
                progress = PhaseProgress(self.progress, f"muse MIA token statistics ({path.name})", len(texts))
                return token_statistics(
                    model, tokenizer, texts, batch_size=self.settings.batch_size, device=device, vocabulary=True,
                    max_tokens=self.max_batch_tokens, truncate=context, progress=progress.advance,
                )  # fmt: skip

            key = self._cache_key(path, "muse.token_statistics_vocab", texts=texts, truncate=context)
            rows = self.cache.get_or_create_json("muse-mia-vocab", key, produce)
        else:
            rows = [{"logprobs": lp} for lp in self._token_stats(path, texts)]
        domains.require_finite(
            [r["logprobs"] for r in rows], names, what="token log-probabilities", unit="MIA texts", source=str(path)
        )
        norms = self._gradient_norms(path, texts, context) if any(a.needs_gradient for a in attacks) else None
        reference = None
        if any(a.needs_reference for a in attacks):
            ref_path = self.settings.reference
            assert ref_path is not None  # refused in __init__ otherwise
            reference = self._token_stats(ref_path, texts)
            domains.require_finite(
                reference, names, what="token log-probabilities", unit="MIA texts", source=str(ref_path)
            )
        stats: list[TokenStats] = []
        for i, (text, row) in enumerate(zip(texts, rows)):
            if not row["logprobs"]:
                raise UnlearnError(f"MIA {names[i]}: a single token, nothing to score; remove it")
            stats.append(
                TokenStats(
                    text,
                    np.asarray(row["logprobs"], dtype=float),
                    np.asarray(row["mu"]) if "mu" in row else None,
                    np.asarray(row["sigma2"]) if "sigma2" in row else None,
                    reference_logprobs=None if reference is None else np.asarray(reference[i], dtype=float),
                    grad_norm=None if norms is None else norms[i],
                )
            )
        n_forget = len(sets["forget"])
        self.inputs = replace(self.inputs, mia={"forget": stats[:n_forget], "holdout": stats[n_forget:]})

    def _mia_scores(self) -> dict[str, dict[str, np.ndarray]] | None:
        """Per attack of the ``muse.mia_auc`` checks, the forget and holdout scores, for
        open-unlearning's ``mia_*`` entries (each check's own ``k``)."""
        import inspect

        if self.inputs.mia is None:
            return None
        out: dict[str, dict[str, np.ndarray]] = {}
        for spec, attack in self.mia_checks:
            k = float(spec.params.get("k", mm.MIN_K))
            params = {"k": k} if "k" in inspect.signature(attack.fn).parameters else {}
            out[attack.name] = {
                split: np.array([attack.score(r, **params) for r in rows]) for split, rows in self.inputs.mia.items()
            }
        return out

    def _gradient_norms(self, path: Path, texts: list[str], context: int | None) -> list[float]:
        """GradNorm's per-text gradient norm (open-unlearning ``mia/gradnorm.py``), one text at a
        time, cached; ``gradnorm_p`` (default 2) is the norm's p."""
        p = float(self.manifest.settings.get("gradnorm_p", 2.0))

        def produce() -> list[float]:
            from pytest_unlearn.engines.open_unlearning import document_gradient_norms
            from pytest_unlearn.progress import PhaseProgress

            model, tokenizer, device = self._model(path)
            progress = PhaseProgress(self.progress, f"muse MIA gradient norms ({path.name})", len(texts))
            return document_gradient_norms(
                model, tokenizer, texts, p=p, device=device, truncate=context, progress=progress.advance
            )

        key = self._cache_key(path, "muse.gradient_norms", texts=texts, p=p, truncate=context)
        return self.cache.get_or_create_json("muse-gradnorm", key, produce)

    #: open-unlearning's ``MUSE_forget_verbmem`` dataset: ``max_length: 2048`` answer tokens.
    MEMORIZATION_MAX_LENGTH = 2048

    def _compute_memorization(self, path: Path) -> None:
        """Argmax predictions over every verbmem forget passage, labelled as open-unlearning's
        ``CompletionDataset`` labels it (``configs/eval/muse_metrics/exact_memorization.yaml``,
        ``extraction_strength.yaml``), one pass per passage, cached."""
        from pytest_unlearn.engines.open_unlearning import completion_predictions

        pairs = [(p.prompt, p.gt) for p in self.data.verbmem]
        limit = self.MEMORIZATION_MAX_LENGTH

        def produce() -> list[list[list[int]]]:
            model, tokenizer, device = self._model(path)
            return [[p, lab] for p, lab in completion_predictions(model, tokenizer, pairs, max_length=limit,
                                                                  device=device)]  # fmt: skip

        key = self._cache_key(path, "muse.completion_argmax", pairs=pairs, max_length=limit)
        rows = self.cache.get_or_create_json("muse-argmax", key, produce)
        self.inputs = replace(self.inputs, memorization=[(list(p), list(lab)) for p, lab in rows])

    def fixed_auc_retrain(self) -> tuple[float, str]:
        """PrivLeak's denominator without a retrained model, and where it comes from."""
        if self.auc_retrain is not None:
            return self.auc_retrain, f"--setting auc_retrain={self.auc_retrain:g}"
        if self.variant == "open-unlearning":
            return mm.OPEN_UNLEARNING_AUC_RETRAIN, "open-unlearning's default ref_value 0.5 (no --reference)"
        return mm.PUBLISHED_AUC_RETRAIN[
            self.corpus
        ], f"published: muse_bench constants.py, {self.corpus} (no --reference)"

    def _privleak_scores(self, path: Path) -> dict[str, np.ndarray]:
        from pytest_unlearn import domains
        from pytest_unlearn.attacks import TokenStats

        sets = self.data.privleak
        texts = sets["forget"] + sets["holdout"]
        table = self._token_stats(path, texts)
        names = [f"{split} text {i + 1}" for split in ("forget", "holdout") for i in range(len(sets[split]))]
        # A NaN log-prob sorts anywhere in Min-K%: the AUC would be scored from noise.
        domains.require_finite(table, names, what="token log-probabilities", unit="PrivLeak texts", source=str(path))
        rows = iter(table)
        out = {}
        for split in ("forget", "holdout"):
            stats = []
            for i, text in enumerate(sets[split]):
                logprobs = next(rows)
                if not logprobs:
                    raise UnlearnError(f"PrivLeak {split} text {i + 1}: a single token, nothing to score; remove it")
                stats.append(TokenStats(text, np.asarray(logprobs, dtype=float)))
            out[split] = mm.min_k_scores(stats, self.k)
        return out

    def metric_inputs(self) -> mm.MuseInputs:
        return self.inputs

    def aggregates(self) -> dict[str, Any]:
        return mm.aggregates(self.inputs)

    # -- the user's own tests ----------------------------------------------------------------------
    def _user_path(self, role: str) -> Path:
        if role not in ROLES:
            raise UnlearnError(f"the muse suite loads no {role}: its models are model, original and reference")
        path = self._role_path(role)
        if path is None:
            raise UnlearnError(f"unlearn_{role}: pass {ROLES[role]} PATH")
        return path

    def stress_texts(self, part: str) -> list[tuple[str, str]]:
        # forget: the VerbMem excerpts (prompt and continuation: the forget corpus's own text) and
        # the KnowMem forget questions with their answers; retain: the retain questions with their
        # answers (the retain corpus is not read).
        if part == "forget":
            return [(f"verbmem-{p.index}", f"{p.prompt}{p.gt}") for p in self.data.verbmem] + [
                (f"knowmem-forget-{qa.index}", f"{qa.question} {qa.answer}") for qa in self.data.knowmem["forget"]
            ]
        return [(f"knowmem-{qa.index}", f"{qa.question} {qa.answer}") for qa in self.data.knowmem["retain"]]

    def hold_out(self, ids: set[str]) -> None:
        # Deeb & Roger's protocol: VerbMem and KnowMem score the excerpts and questions not trained
        # on, and PrivLeak's forget texts that hold a trained excerpt leave its member set (they
        # would be members twice over), the reference's scores of them too.
        verbmem = [p for p in self.data.verbmem if f"verbmem-{p.index}" in ids]
        forget = [qa for qa in self.data.knowmem["forget"] if f"knowmem-forget-{qa.index}" in ids]
        for name, kept, whole in (("VerbMem", verbmem, self.data.verbmem), ("KnowMem", forget, self.data.forget)):
            if whole and not kept:
                raise UnlearnError(
                    f"--stress relearn:data=forget-half: the held-out half has no {name} forget item "
                    f"({len(whole)} in all); choose another seed or relearn:data=PATH"
                )
        trained = [p for p in self.data.verbmem if f"verbmem-{p.index}" not in ids]
        keep = [
            i
            for i, text in enumerate(self.data.privleak["forget"])
            if not any(p.prompt.strip() in text or p.gt.strip() in text for p in trained)
        ]
        if not keep:
            raise UnlearnError(
                "--stress relearn:data=forget-half: every PrivLeak forget text holds a trained VerbMem excerpt; "
                "choose another seed or relearn:data=PATH"
            )
        privleak = {**self.data.privleak, "forget": [self.data.privleak["forget"][i] for i in keep]}
        knowmem = {**self.data.knowmem, "forget": forget}
        self.data = replace(self.data, verbmem=verbmem, knowmem=knowmem, privleak=privleak)
        log = self._reference_log
        if log is not None:
            rows = np.array(keep, dtype=int)
            self._reference_log = replace(
                log,
                privleak=None if log.privleak is None else {**log.privleak, "forget": log.privleak["forget"][rows]},
                mia={attack: {**sets, "forget": sets["forget"][rows]} for attack, sets in log.mia.items()},
            )

    def user_model(self, role: str = "model") -> Any:
        path = self._user_path(role)
        model, tokenizer, device = self._model(path)
        return LanguageModel(model, tokenizer, device, path)

    def user_generate(self, prompts: list[str], **overrides: Any) -> list[str]:
        """Greedy continuations of raw prompts by the model, VerbMem's length unless
        ``max_new_tokens`` is given, through the cache the suite's checks use."""
        unknown = sorted(set(overrides) - {"max_new_tokens"})
        if unknown:
            raise UnlearnError(f"unlearn_generate: unknown setting(s) {', '.join(unknown)}; it takes max_new_tokens")
        tokens = int(overrides.get("max_new_tokens", self.verbmem_tokens))
        return self._generate(self._user_path("model"), list(prompts), tokens)

    def user_nll(self, texts: list[str]) -> list[float]:
        """Mean token NLL of each text under the model (from the token log-probs PrivLeak uses)."""
        rows = self._token_stats(self._user_path("model"), list(texts))
        return [float(-np.mean(r)) if r else float("nan") for r in rows]

    def user_data(self) -> MuseData:
        return self.data

    # -- records ---------------------------------------------------------------------------------
    def _write(self, name: str, rows: list[dict[str, Any]]) -> None:
        self.write_artifact(f"muse_{name}", f"muse/{name}.jsonl", jsonl_bytes(rows), "per-sample records")

    def artifacts(self) -> dict[str, str]:
        if self.write_openunlearning and not self._openunlearning_written:
            # Written last, once every input is computed (PrivLeak needs the reference's AUC).
            self._openunlearning_written = True
            self._write_openunlearning()
        return dict(self._artifact_files)

    def _write_openunlearning(self) -> None:
        from pytest_unlearn import openunlearning as ou
        from pytest_unlearn.muse import openunlearning_files as files

        i = self.inputs
        rouge: dict[str, np.ndarray] = {}
        if i.verbmem is not None:
            rouge["verbmem"] = i.verbmem
        if i.knowmem is not None:
            rouge.update({f"knowmem_{split}": values for split, values in i.knowmem.items()})
        memorization: dict[str, list[float]] = {}
        if i.memorization is not None:
            rows = [ou.answer_tokens(p, lab) for p, lab in i.memorization]
            memorization = {
                "exact_memorization": [v for p, lab in rows if (v := ou.exact_memorization(p, lab)) is not None],
                "extraction_strength": [ou.extraction_strength(p, lab) for p, lab in rows],
            }
        elif i.memorization_scores:
            memorization = dict(i.memorization_scores)
        signed = mm.aggregates(i).get("privleak")
        evals = files.dump_muse_eval(rouge, i.privleak, signed, memorization, self._mia_scores())
        if not evals:
            return
        self.write_artifact(
            "openunlearning_eval", f"muse/{files.EVAL_FILE}", files.encode(evals), "open-unlearning results"
        )
        self.write_artifact(
            "openunlearning_summary", f"muse/{files.SUMMARY_FILE}", files.encode(files.summary(evals)),
            "open-unlearning summary",
        )  # fmt: skip

    def device(self) -> str | None:
        for _, _, device in self._models.values():
            return device
        return self._resolved_device

    def model_record(self) -> dict[str, Any]:
        if self.settings.model is None:
            return {
                "path": None,
                "fingerprint": None,
                "predictions": str(self.settings.predictions),
                "original": str(self.settings.original_model) if self.settings.original_model else None,
                "reference": str(self.settings.reference) if self.settings.reference else None,
            }
        if self._fingerprint is None:
            self._fingerprint = fingerprint(self.settings.model)  # type: ignore[arg-type]
        return {
            "path": str(self.settings.model),
            "fingerprint": self._fingerprint,
            "original": str(self.settings.original_model) if self.settings.original_model else None,
            "reference": str(self.settings.reference) if self.settings.reference else None,
        }

    def header_lines(self) -> list[str]:
        d = self.data
        sizes = (
            f"verbmem={len(d.verbmem)} knowmem forget={len(d.knowmem['forget'])} retain={len(d.knowmem['retain'])} "
            f"privleak forget={len(d.privleak['forget'])} holdout={len(d.privleak['holdout'])}"
        )
        return [
            f"unlearn: muse corpus={self.corpus} muse_variant={self.variant} {sizes}, model={self.settings.model}, "
            f"original={self.settings.original_model}, reference={self.settings.reference}, greedy (no seed)"
        ]

    def settings_record(self) -> dict[str, Any]:
        return {
            "corpus": self.corpus,
            "muse_variant": self.variant,
            "verbmem_max_new_tokens": self.verbmem_tokens,
            "knowmem_max_new_tokens": self.knowmem_tokens,
            "mink_k": self.k,
            "knowmem_retain_target": self.retain_target,
            "auc_retrain": self.auc_retrain,
            "write_openunlearning": self.write_openunlearning,
            "rouge": "ROUGE-L F1, Porter stemmer" if self._stem() else "ROUGE-L F1, no stemmer",
            "batch_size": self.settings.batch_size,
            "device": self.settings.device,
            "dtype": self.settings.dtype,
            "data": str(self.data.folder),
        }

    #: Examples shown per failing check in the HTML report.
    REPORT_EXAMPLES = 5

    def report_sections(self, card: dict[str, Any], report: Path) -> list[str]:
        """The forget items the model still reproduces (highest ROUGE) for a failing VerbMem or
        KnowMem-forget check, the retain questions it lost for a failing utility check, and the
        Min-K% scores of the forget and holdout texts behind PrivLeak."""
        from pytest_unlearn.report import E, histogram_svg

        def read(name: str) -> list[dict[str, Any]]:
            path = card.get("artifacts", {}).get(f"muse_{name}")
            try:
                text = Path(path).read_text(encoding="utf-8") if path else ""
            except OSError:
                return []
            return [json.loads(line) for line in text.splitlines() if line.strip()]

        failing = {c["metric"] for c in card["checks"] if not c["passed"]}
        sections = []

        def table(rows: list[dict[str, Any]], first: str, title: str, most: bool) -> str:
            rows = sorted(rows, key=lambda r: (-r["rougeL_f1"] if most else r["rougeL_f1"], r["index"]))
            body = "".join(
                f"<tr><td><pre>{E(r[first])}</pre></td><td><pre>{E(r.get('gt', r.get('answer', '')))}</pre></td>"
                f"<td><pre>{E(r['generation'])}</pre></td><td>{r['rougeL_f1']:.3f}</td></tr>"
                for r in rows[: self.REPORT_EXAMPLES]
            )
            return (
                f"<h2>{E(title)}</h2><table><tr><th>{first}</th><th>reference</th><th>generated</th>"
                f"<th>ROUGE-L F1</th></tr>{body}</table>"
            )

        if "muse.verbmem" in failing and (rows := read("verbmem")):
            sections.append(table(rows, "prompt", "VerbMem: forget passages the model still reproduces", True))
        if "muse.knowmem_forget" in failing and (rows := read("knowmem_forget")):
            sections.append(table(rows, "question", "KnowMem: forget questions the model still answers", True))
        if failing & {"muse.knowmem_retain", "muse.knowmem_retain_ratio"} and (rows := read("knowmem_retain")):
            sections.append(table(rows, "question", "Utility: retain questions the model lost", False))
        if rows := read("privleak"):
            series = {s: [r["min_k"] for r in rows if r["set"] == s] for s in ("forget", "holdout")}
            aggregates = card.get("aggregates", {})
            sections.append(
                "<h2>PrivLeak: Min-K% scores</h2><p>minus the mean of the lowest "
                f"{self.k:.0%} token log-probs per text; AUC {aggregates.get('auc', float('nan')):.3f}, "
                f"AUC_retrain {aggregates.get('auc_retrain', float('nan')):.3f} "
                f"({E(str(aggregates.get('auc_retrain_source')))})</p>" + histogram_svg(series, label="Min-K% score")
            )
        return sections
