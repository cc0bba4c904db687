"""The TOFU backend: per-sample logs of the model (from the model itself, or from TOFU /
open-unlearning logs given with ``--predictions``) and of the reference (retain) model
(``--reference``: a model folder or its logs).

Inputs (each computed at most once per run, shared by every check):
- ``tofu``: the model's four task logs (answer, paraphrased and perturbed answer losses, greedy
  answers and their ROUGE-L recall);
- ``reference``: the same logs of the reference model.
Torch is imported only when a model pass is needed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from pytest_unlearn.engines.language_models import LanguageModel, ModelsByPath
from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.evaluation import Backend, RunSettings
from pytest_unlearn.fingerprint import fingerprint
from pytest_unlearn.loading import inspect_model_folder, token_budget
from pytest_unlearn.manifest import SuiteManifest
from pytest_unlearn.tofu import metrics as tm
from pytest_unlearn.tofu.data import FORGET_SPLIT, Question, Tags, family_tags, holdout_path, load_data, load_holdout
from pytest_unlearn.tofu.logs import AGGREGATED, encode_logs, load_logs
from pytest_unlearn.tofu.settings import SETTINGS as TOFU_SETTINGS


@dataclass(frozen=True)
class TofuData:
    """What ``unlearn_data`` gives a tofu test: the questions of each task ("forget", "retain",
    "real_authors", "world_facts") and the model family's prompt tags."""

    tasks: dict[str, list[Question]]
    tags: Tags

    @property
    def forget(self) -> list[Question]:
        return self.tasks.get("forget", [])

    @property
    def retain(self) -> list[Question]:
        return self.tasks.get("retain", [])


LOG_ARTIFACT = "tofu_logs"
REFERENCE_ARTIFACT = "tofu_reference_logs"


def _is_model_folder(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


class TofuBackend(ModelsByPath, Backend):
    #: What --setting may override besides the manifest's [settings].
    SETTINGS = TOFU_SETTINGS

    def __init__(self, manifest: SuiteManifest, settings: RunSettings) -> None:
        super().__init__(manifest, settings)
        from pytest_unlearn.settings import typed_setting

        s = {"forget_split": "forget10", "max_new_tokens": 200, "max_length": 200, "ds_size": 300, **manifest.settings}
        where = f"suite {manifest.name} (manifest or --setting)"
        self.forget_split = typed_setting(s, "forget_split", str, where)
        self.max_new_tokens = typed_setting(s, "max_new_tokens", int, where)
        self.max_batch_tokens, self.token_budget_source = token_budget(s, settings)
        self.max_length = typed_setting(s, "max_length", int, where)
        self.ds_size = typed_setting(s, "ds_size", int, where)
        # open-unlearning's TOFU_EVAL.json / TOFU_SUMMARY.json beside our logs (issue 27).
        self.write_openunlearning = typed_setting(
            {"write_openunlearning": False, **s}, "write_openunlearning", bool, where
        )
        self._openunlearning_written = False
        if not FORGET_SPLIT.match(self.forget_split):
            raise UnlearnError(f"--setting forget_split={self.forget_split}: expected forget01, forget05 or forget10")
        for key, value in (("max_new_tokens", self.max_new_tokens), ("max_length", self.max_length)):
            if value < 1:
                raise UnlearnError(f"{where}: setting {key!r} must be at least 1, got {value!r}")
        self.tags: Tags = family_tags(s)
        self.inputs = tm.TofuInputs()
        self._models: dict[Path, tuple[Any, Any, str]] = {}
        self._digests: dict[Path, str] = {}
        self._fingerprint: str | None = None
        self._resolved_device: str | None = None
        self.model_loads = 0

        reference_is_model = settings.reference is not None and _is_model_folder(settings.reference)
        needs_data = settings.model is not None or reference_is_model
        self.data: dict[str, list[Question]] | None = None
        self.data_dir: Path | None = None
        self.holdout: list[Question] | None = None
        self.holdout_file: Path | None = None
        if settings.data is not None or needs_data:
            self.data_dir = settings.data if settings.data is not None else manifest.data.get("tofu")
            if self.data_dir is None:
                raise UnlearnError(f"suite manifest {manifest.path}: no bundled TOFU data; pass --data DIR")
            flag = "--data" if settings.data is not None else "bundled data"
            found: list[str] = []
            self.data = load_data(self.data_dir, self.forget_split, self.ds_size, flag, found)
            for message in found:
                self.warn(message)
            # TOFU's holdout split (authors no model saw), for the optional MIA checks.
            self.holdout_file = holdout_path(self.data_dir, self.forget_split)
            if self.holdout_file.is_file():
                self.holdout = load_holdout(self.holdout_file, self.ds_size)

        # Logs are read now, so a malformed one stops the run before any model loads.
        self._prediction_logs: dict[str, tm.TaskLog] | None = None
        self._prediction_scores: dict[str, list[float]] = {}
        self._prediction_mia: dict[str, dict[str, list[float]]] = {}
        self._reference_logs: dict[str, tm.TaskLog] | None = None
        if settings.model is not None:
            inspect_model_folder(settings.model, allow_pickle=settings.allow_pickle)
        elif settings.predictions is None:
            raise UnlearnError(f"--suite {manifest.name} needs --model PATH (or --predictions FILE with TOFU logs)")
        elif not settings.predictions.exists():
            raise UnlearnError(f"--predictions {settings.predictions}: no such file or folder")
        else:
            self._prediction_logs = load_logs(settings.predictions, "--predictions")
            from pytest_unlearn.tofu.logs import load_open_unlearning_scores

            self._prediction_scores = load_open_unlearning_scores(settings.predictions, "--predictions")
            from pytest_unlearn.tofu.logs import load_open_unlearning_mia

            self._prediction_mia = load_open_unlearning_mia(settings.predictions, "--predictions")
            self._check_against_data(self._prediction_logs, "--predictions", settings.predictions)
        if settings.reference is not None:
            if not settings.reference.exists():
                raise UnlearnError(
                    f"--reference {settings.reference}: no such file or folder; pass the retain model or its logs"
                )
            if reference_is_model:
                inspect_model_folder(settings.reference, allow_pickle=settings.allow_pickle)
            else:
                self._reference_logs = load_logs(settings.reference, "--reference")
                self._check_scorecard_split(settings.reference)
                own = self._prediction_logs or {}
                forget_n = own["forget"].n if "forget" in own else len((self.data or {}).get("forget", [])) or None
                self._check_reference(self._reference_logs, forget_n)

    # -- models --------------------------------------------------------------------------------
    # -- the user's own tests ---------------------------------------------------------------
    USER_API = ("model", "reference", "generate", "data")

    def _user_path(self, role: str) -> Path:
        path = self.settings.model if role == "model" else self.settings.reference if role == "reference" else None
        if role not in ("model", "reference"):
            raise UnlearnError(f"the tofu suite loads no {role}: its second model is --reference PATH")
        if path is None or not _is_model_folder(path):
            raise UnlearnError(f"unlearn_{role} needs --{role} PATH, a model folder (not logs)")
        return path

    def stress_texts(self, part: str) -> list[tuple[str, str]]:
        # A question and its answer, as the model was fine-tuned on them (TOFU's QA format).
        questions = (self.data or {}).get(part)
        if not questions:
            return super().stress_texts(part)
        return [(q.index, f"{q.question} {q.answer}") for q in questions]

    def hold_out(self, ids: set[str]) -> None:
        # Deeb & Roger's protocol: every forget-side value (answer losses, truth ratios and forget
        # quality, ROUGE, the forget answers of the MIA and memorization checks) is measured on
        # the held-out questions only, the reference's too, so the KS test compares like with like.
        forget = (self.data or {}).get("forget")
        if not forget:
            super().hold_out(ids)
            return
        self.data["forget"] = [q for q in forget if q.index in ids]  # type: ignore[index]
        logs = self._reference_logs
        if logs is not None and "forget" in logs:
            rows = np.array([i for i, index in enumerate(logs["forget"].indices) if index in ids], dtype=int)
            if len(rows) != len(self.data["forget"]):  # type: ignore[index]
                raise UnlearnError(
                    f"--reference {self.settings.reference}: its forget log does not number the samples as the "
                    "forget questions are (0, 1, ...), so the held-out half of --stress relearn:data=forget-half "
                    "cannot be taken from it; pass the reference model folder, or relearn:data=retain"
                )
            self._reference_logs = {**logs, "forget": logs["forget"].take(rows)}

    def user_model(self, role: str = "model") -> Any:
        path = self._user_path(role)
        model, tokenizer, device = self._model(path)
        return LanguageModel(model, tokenizer, device, path)

    def user_generate(self, prompts: list[str], **overrides: Any) -> list[str]:
        """Greedy answers of the model to raw prompts (format them with the family's tags,
        ``unlearn_data.tags``), the suite's ``max_new_tokens`` unless overridden, through the cache."""
        unknown = sorted(set(overrides) - {"max_new_tokens"})
        if unknown:
            raise UnlearnError(f"unlearn_generate: unknown setting(s) {', '.join(unknown)}; it takes max_new_tokens")
        max_new_tokens = int(overrides.get("max_new_tokens", self.max_new_tokens))
        return self._generate(self._user_path("model"), list(prompts), max_new_tokens)

    def user_data(self) -> TofuData:
        data = self.data or {}
        return TofuData(tasks={task: list(rows) for task, rows in data.items()}, tags=self.tags)

    def device(self) -> str | None:
        for _, _, device in self._models.values():
            return device
        return self._resolved_device

    def model_record(self) -> dict[str, Any]:
        reference = str(self.settings.reference) if self.settings.reference else None
        if self.settings.model is None:
            return {
                "path": None,
                "fingerprint": None,
                "predictions": str(self.settings.predictions),
                "reference": reference,
            }
        if self._fingerprint is None:
            self._fingerprint = fingerprint(self.settings.model)
        return {"path": str(self.settings.model), "fingerprint": self._fingerprint, "reference": reference}

    # -- inputs ----------------------------------------------------------------------------------
    def compute(self, name: str) -> None:
        if name == "tofu":
            if self._prediction_logs is not None:
                logs = self._prediction_logs
            else:
                logs = self._evaluate_model(self.settings.model, "the model")  # type: ignore[arg-type]
            self.inputs = replace(self.inputs, logs=logs)
            self._write(LOG_ARTIFACT, "tofu", logs)
        elif name == "reference":
            path = self.settings.reference
            if path is None:
                raise UnlearnError("forget quality needs the retain model: pass --reference PATH (a model or its logs)")
            if self._reference_logs is not None:
                logs = self._reference_logs
            else:
                logs = self._evaluate_model(path, "the reference")
                self._write(REFERENCE_ARTIFACT, "tofu-reference", logs)
                self.ensure(("tofu",))
                own = self.inputs.logs or {}
                self._check_reference(logs, own["forget"].n if "forget" in own else None)
            self.inputs = replace(self.inputs, reference=logs)
        elif name == "mia":
            self._compute_mia()
        elif name == "memorization":
            self._compute_memorization()
        else:
            raise UnlearnError(f"the tofu backend cannot compute {name!r}")

    def _compute_memorization(self) -> None:
        """Argmax predictions over every forget answer (open-unlearning's exact memorization and
        extraction strength), one pass per question, cached; or the per-sample scores of an
        open-unlearning TOFU_EVAL.json given as --predictions."""
        if self.settings.model is None and self._prediction_scores:
            self.inputs = replace(self.inputs, memorization_scores=self._prediction_scores)
            return
        if self.settings.model is None:
            raise UnlearnError("exact memorization and extraction strength need the model itself: pass --model PATH")
        assert self.data is not None
        from pytest_unlearn.engines.open_unlearning import answer_predictions

        pairs = [(self.tags.prompt(q.question), self.tags.answer_text(q.answer)) for q in self.data["forget"]]
        path = self.settings.model

        def produce() -> list[list[list[int]]]:
            model, tokenizer, device = self._model(path)
            rows = answer_predictions(model, tokenizer, pairs, max_length=self.max_length, device=device)
            return [[p, lab] for p, lab in rows]

        key = self._cache_key(path, "tofu.answer_argmax", pairs=pairs, max_length=self.max_length)
        rows = self.cache.get_or_create_json("tofu-argmax", key, produce)
        self.inputs = replace(self.inputs, memorization=[(list(p), list(lab)) for p, lab in rows])

    def _compute_mia(self) -> None:
        """Token statistics of every forget answer and every holdout answer, for the attacks; or
        the per-sample attack scores of an open-unlearning TOFU_EVAL.json given as --predictions."""
        if self.settings.model is None and self._prediction_mia:
            self.inputs = replace(self.inputs, mia_scores=self._prediction_mia)
            return
        if self.settings.model is None:
            raise UnlearnError(
                "the membership-inference check needs the model itself (or a TOFU_EVAL.json with its mia_* "
                "entries as --predictions): pass --model PATH"
            )
        if self.holdout is None:
            raise UnlearnError(
                f"no {self.holdout_file.name if self.holdout_file else 'holdout file'} in {self.data_dir}: the "
                "membership-inference check compares the forget answers with TOFU's holdout split"
            )
        assert self.data is not None
        from pytest_unlearn.attacks import TokenStats
        from pytest_unlearn.engines.causal_lm import answer_span_token_stats

        sets = {"forget": self.data["forget"], "holdout": self.holdout}
        pairs = [(self.tags.prompt(q.question), self.tags.answer_text(q.answer)) for qs in sets.values() for q in qs]
        path = self.settings.model

        def produce() -> list[dict[str, list[float]]]:
            model, tokenizer, device = self._model(path)
            return answer_span_token_stats(
                model, tokenizer, pairs, max_length=self.max_length, batch_size=self.settings.batch_size, device=device,
                max_tokens=self.max_batch_tokens,
            )  # fmt: skip

        key = self._cache_key(path, "tofu.mia_token_stats", pairs=pairs, max_length=self.max_length)
        rows = iter(self.cache.get_or_create_json("tofu-mia", key, produce))
        stats = {}
        for name, questions in sets.items():
            stats[name] = []
            for q in questions:
                row = next(rows)
                if not row["logprobs"]:
                    raise UnlearnError(f"TOFU {name} question {q.index}: no answer token to score (over max_length?)")
                stats[name].append(
                    TokenStats(q.answer, np.asarray(row["logprobs"]), np.asarray(row["mu"]), np.asarray(row["sigma2"]))
                )
        stats = self._openunlearning_attack_inputs(stats, pairs)
        self.inputs = replace(self.inputs, mia=stats)

    def _openunlearning_attack_inputs(
        self, stats: dict[str, list[Any]], pairs: list[tuple[str, str]]
    ) -> dict[str, list[Any]]:
        """The gradient norms (``gradnorm``) and the reference model's log-probs (``reference``)
        of the same answers, computed only when a check asks for those attacks."""
        from dataclasses import replace as with_fields

        from pytest_unlearn.engines.causal_lm import answer_span_token_stats

        wanted = {c.params.get("attack") for c in self.manifest.checks if c.metric == "tofu.mia_auc"}
        order = [(name, i) for name, rows in stats.items() for i in range(len(rows))]
        if "gradnorm" in wanted:
            p = float(self.manifest.settings.get("gradnorm_p", 2))
            path = self.settings.model

            def norms() -> list[float]:
                from pytest_unlearn.engines.open_unlearning import answer_gradient_norms

                model, tokenizer, device = self._model(path)  # type: ignore[arg-type]
                return answer_gradient_norms(model, tokenizer, pairs, max_length=self.max_length, p=p, device=device)

            key = self._cache_key(
                path,
                "tofu.mia_gradnorm",
                pairs=pairs,
                max_length=self.max_length,
                p=p,  # type: ignore[arg-type]
            )
            for (name, i), value in zip(order, self.cache.get_or_create_json("tofu-gradnorm", key, norms)):
                stats[name][i] = with_fields(stats[name][i], grad_norm=value)
        if "reference" in wanted:
            ref = self.settings.reference
            if ref is None or not _is_model_folder(ref):
                raise UnlearnError(
                    "the reference attack needs a reference model: pass --reference PATH (a model folder)"
                )

            def ref_stats() -> list[dict[str, list[float]]]:
                model, tokenizer, device = self._model(ref)
                return answer_span_token_stats(
                    model, tokenizer, pairs, max_length=self.max_length, batch_size=self.settings.batch_size,
                    device=device, max_tokens=self.max_batch_tokens,
                )  # fmt: skip

            key = self._cache_key(ref, "tofu.mia_token_stats", pairs=pairs, max_length=self.max_length)
            for (name, i), row in zip(order, self.cache.get_or_create_json("tofu-mia", key, ref_stats)):
                stats[name][i] = with_fields(stats[name][i], reference_logprobs=np.asarray(row["logprobs"]))
        return stats

    def _check_against_data(self, logs: dict[str, tm.TaskLog], flag: str, path: Path) -> None:
        if self.data is None:
            return
        for task, log in logs.items():
            expected = len(self.data[task])
            if log.n != expected:
                raise UnlearnError(
                    f"{flag} {path}: the {task} log has {log.n} samples, the data {expected} "
                    f"(forget_split={self.forget_split}, ds_size={self.ds_size}); evaluate the same questions"
                )

    def _check_scorecard_split(self, path: Path) -> None:
        """A pytest-unlearn scorecard says which forget split its logs are of: it must be ours."""
        if not path.is_file():
            return
        import json

        try:
            card = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return  # load_logs has read it already; nothing more to learn
        split = (card.get("settings") or {}).get("forget_split") if isinstance(card, dict) else None
        if split is not None and split != self.forget_split:
            raise UnlearnError(
                f"--reference {path}: a scorecard of forget_split={split}, this run is forget_split="
                f"{self.forget_split}; evaluate the reference on the same forget split"
            )

    def _check_reference(self, reference: dict[str, tm.TaskLog], forget_n: int | None) -> None:
        """The reference must be evaluated on the same forget questions as the model."""
        if "forget" not in reference:
            raise UnlearnError(
                f"--reference {self.settings.reference}: no forget log (eval_log_forget.json); "
                f"evaluate the reference on the forget split too (forget_split={self.forget_split})"
            )
        theirs = reference["forget"].n
        if forget_n is not None and theirs != forget_n:
            raise UnlearnError(
                f"--reference {self.settings.reference}: its forget log has {theirs} samples, the model's {forget_n}; "
                f"evaluate the reference on the same forget split (forget_split={self.forget_split})"
            )

    def _evaluate_model(self, path: Path, what: str) -> dict[str, tm.TaskLog]:
        assert self.data is not None  # loaded in __init__ whenever a model is evaluated
        from pytest_unlearn.rouge import rouge_l_recall

        # One pass over every task's texts (fewer, fuller batches than one pass per task).
        prompts: list[str] = []
        pairs: list[tuple[str, str]] = []
        for task in tm.TASKS:
            for q in self.data[task]:
                prompt = self.tags.prompt(q.question)
                prompts.append(prompt)
                pairs.append((prompt, self.tags.answer_text(q.answer)))
                pairs.append((prompt, self.tags.answer_text(q.base_answer)))
                pairs.extend((prompt, self.tags.answer_text(p)) for p in q.perturbed)
        losses = self._losses(path, pairs)
        answers = self._generate(path, prompts)
        logs = {}
        for task in tm.TASKS:
            questions = self.data[task]
            k = 2 + len(questions[0].perturbed)
            per_q = [losses[i * k : (i + 1) * k] for i in range(len(questions))]
            task_answers, losses, answers = (
                answers[: len(questions)],
                losses[len(questions) * k :],
                answers[len(questions) :],
            )
            bad = [q.index for q, row in zip(questions, per_q) if not all(np.isfinite(row))]
            if bad:
                raise UnlearnError(
                    f"{what}: TOFU {task} questions {bad[:3]} give no finite answer loss (an empty answer, a "
                    "prompt over max_length, or NaN outputs); fix the data or raise --setting max_length"
                )
            logs[task] = tm.TaskLog(
                task=task,
                indices=tuple(q.index for q in questions),
                gt_loss=np.array([row[0] for row in per_q]),
                paraphrased_loss=np.array([row[1] for row in per_q]),
                perturbed_loss=np.array([row[2:] for row in per_q]),
                rouge=np.array([rouge_l_recall(q.answer, a) for q, a in zip(questions, task_answers)]),
                generations=tuple(task_answers),
            )
        return logs

    def _losses(self, path: Path, pairs: list[tuple[str, str]]) -> list[float]:
        """Mean NLL per answer token of every (prompt, answer), TOFU's avg_*_loss."""
        from pytest_unlearn.engines.causal_lm import answer_span_nll

        def produce() -> list[float]:
            model, tokenizer, device = self._model(path)
            sums = answer_span_nll(
                model, tokenizer, pairs, max_length=self.max_length, batch_size=self.settings.batch_size, device=device,
                max_tokens=self.max_batch_tokens,
            )  # fmt: skip
            return [total / count if count else float("nan") for total, count in sums]

        key = self._cache_key(path, "tofu.answer_losses", pairs=pairs, max_length=self.max_length)
        return self.cache.get_or_create_json("tofu-losses", key, produce)

    def _generate(self, path: Path, prompts: list[str], max_new_tokens: int | None = None) -> list[str]:
        from pytest_unlearn.engines.causal_lm import generate_greedy

        max_new_tokens = self.max_new_tokens if max_new_tokens is None else max_new_tokens

        def produce() -> list[str]:
            from pytest_unlearn.progress import PhaseProgress

            model, tokenizer, device = self._model(path)
            progress = PhaseProgress(self.progress, f"tofu generations ({path.name})", len(prompts))
            return generate_greedy(
                model,
                tokenizer,
                prompts,
                max_new_tokens=max_new_tokens,
                batch_size=self.settings.batch_size,
                device=device,
                max_tokens=self.max_batch_tokens,
                progress=progress.advance,
                source=str(path),
            )

        key = self._cache_key(path, "tofu.generations", prompts=prompts, max_new_tokens=max_new_tokens)
        return self.cache.get_or_create_json("tofu-generations", key, produce)

    def metric_inputs(self) -> tm.TofuInputs:
        return self.inputs

    def aggregates(self) -> dict[str, Any]:
        return tm.aggregates(self.inputs)

    # -- records -------------------------------------------------------------------------------
    def _write(self, name: str, folder: str, logs: dict[str, tm.TaskLog]) -> None:
        extra: dict[str, list[str]] = {}
        if self.data is not None:
            for task, questions in self.data.items():
                extra[task] = [self.tags.prompt(q.question) for q in questions]
                extra[f"{task}:answers"] = [q.answer for q in questions]
        self.write_artifact(name, f"{folder}/{AGGREGATED}", encode_logs(logs, extra), "per-sample logs")

    #: Questions shown per failing check in the HTML report.
    REPORT_EXAMPLES = 5

    def report_sections(self, card: dict[str, Any], report: Path) -> list[str]:
        """Worst examples of the failing checks (forget questions the model still answers;
        retain questions it lost) and the forget truth ratios of model and reference, whose
        KS test is the forget quality, from this run's logs."""
        import json
        import math

        from pytest_unlearn.report import E, histogram_svg

        def read(name: str) -> dict[str, Any]:
            path = card.get("artifacts", {}).get(name)
            try:
                return json.loads(Path(path).read_text(encoding="utf-8")) if path else {}
            except (OSError, ValueError):
                return {}

        logs, reference = read(LOG_ARTIFACT), read(REFERENCE_ARTIFACT)
        failing = {c["id"] for c in card["checks"] if not c["passed"]}
        sections = []

        def worst(task: str, title: str, most_answered: bool) -> str:
            entry = logs.get(tm.TOFU_FILES[task], {})
            texts = entry.get("generated_text", {})
            rouge = entry.get("rougeL_recall", {})
            loss = entry.get("avg_gt_loss", {})
            order = sorted(texts, key=lambda i: (-rouge[i] if most_answered else rouge[i], i))
            rows = "".join(
                f"<tr><td><pre>{E(texts[i][0])}</pre></td><td><pre>{E(texts[i][2])}</pre></td>"
                f"<td><pre>{E(texts[i][1])}</pre></td><td>{rouge[i]:.3f}</td><td>{math.exp(-loss[i]):.3f}</td></tr>"
                for i in order[: self.REPORT_EXAMPLES]
            )
            return (
                f"<h3>{E(title)}</h3><table><tr><th>question</th><th>answer</th><th>generated</th>"
                f"<th>ROUGE-L recall</th><th>probability</th></tr>{rows}</table>"
            )

        forget_checks = {c["id"] for c in card["checks"] if c["metric"] in ("tofu.rouge", "tofu.probability",
                         "tofu.forget_quality") and c["id"] in failing}  # fmt: skip
        if logs and forget_checks:
            sections.append(
                f"<h2>Worst examples of the failing checks ({E(', '.join(sorted(forget_checks)))})</h2>"
                + worst("forget", "forget questions the model still answers", True)
            )
        utility = {
            c["id"] for c in card["checks"] if c["metric"].startswith("tofu.model_utility") and c["id"] in failing
        }
        if logs and utility:
            sections.append(
                f"<h2>Worst examples of the failing checks ({E(', '.join(sorted(utility)))})</h2>"
                + worst("retain", "retain questions the model lost", False)
            )

        def forget_ratios(log: dict[str, Any]) -> list[float]:
            entry = log.get(tm.TOFU_FILES["forget"], {})
            para, pert = entry.get("avg_paraphrased_loss", {}), entry.get("average_perturb_loss", {})
            out = []
            for i in para:
                r = math.exp(sum(pert[i]) / len(pert[i]) - para[i])
                out.append(min(r, 1 / r))
            return out

        if logs and reference:
            quality = card.get("aggregates", {}).get("forget_quality")
            sections.append(
                "<h2>Forget truth ratios</h2><p>min(R, 1/R) per forget question for the model and the reference; "
                f"forget quality (KS p-value) {'n/a' if quality is None else f'{quality:.3g}'}</p>"
                + histogram_svg(
                    {"model": forget_ratios(logs), "reference": forget_ratios(reference)}, label="truth ratio"
                )
            )
        return sections

    def artifacts(self) -> dict[str, str]:
        if self.write_openunlearning and not self._openunlearning_written and self.inputs.logs is not None:
            # Written last, once every input is computed: forget quality needs the reference's log.
            self._openunlearning_written = True
            self._write_openunlearning()
        return dict(self._artifact_files)

    def _write_openunlearning(self) -> None:
        from pytest_unlearn import openunlearning as ou
        from pytest_unlearn.tofu import openunlearning_files as files

        memorization = None
        if self.inputs.memorization is not None:
            rows = [ou.answer_tokens(p, lab) for p, lab in self.inputs.memorization]
            memorization = {
                "exact_memorization": [ou.exact_memorization(p, lab) or 0.0 for p, lab in rows],
                "extraction_strength": [ou.extraction_strength(p, lab) for p, lab in rows],
            }
        evals = files.dump_tofu_eval(self.inputs.logs or {}, self.inputs.reference, memorization, self._mia_scores())
        self.write_artifact(
            "openunlearning_eval", f"tofu/{files.EVAL_FILE}", files.encode(evals), "open-unlearning results"
        )
        self.write_artifact(
            "openunlearning_summary", f"tofu/{files.SUMMARY_FILE}", files.encode(files.summary(evals)),
            "open-unlearning summary",
        )  # fmt: skip

    def _mia_scores(self) -> dict[str, dict[str, list[float]]] | None:
        """Per attack that the computed statistics can score (the four token attacks always;
        gradnorm and reference when a check computed their inputs), the per-sample score of the
        forget and holdout answers, for open-unlearning's ``mia_*`` entries (k = 0.4, theirs)."""
        import inspect

        from pytest_unlearn.attacks import OPEN_UNLEARNING_METRICS, get_attack

        if self.inputs.mia is None:
            return None
        out: dict[str, dict[str, list[float]]] = {}
        rows = self.inputs.mia["forget"] + self.inputs.mia["holdout"]
        for name in OPEN_UNLEARNING_METRICS:
            attack = get_attack(name)
            if attack.needs_vocab and any(r.mu is None for r in rows):
                continue
            if attack.needs_gradient and any(r.grad_norm is None for r in rows):
                continue
            if attack.needs_reference and any(r.reference_logprobs is None for r in rows):
                continue
            params = {"k": 0.4} if "k" in inspect.signature(attack.fn).parameters else {}
            out[name] = {
                split: [attack.score(r, **params) for r in self.inputs.mia[split]] for split in ("forget", "holdout")
            }
        return out

    def header_lines(self) -> list[str]:
        source = str(self.settings.model) if self.settings.model else f"logs {self.settings.predictions}"
        sizes = ""
        if self.data is not None:
            sizes = " " + " ".join(f"{t}={len(q)}" for t, q in self.data.items())
        return [
            f"unlearn: tofu forget_split={self.forget_split}{sizes}, model={source}, "
            f"reference={self.settings.reference}, max_new_tokens={self.max_new_tokens}, greedy (no seed)",
        ]

    def settings_record(self) -> dict[str, Any]:
        return {
            "forget_split": self.forget_split,
            "model_family": self.manifest.settings.get("model_family"),
            "tags": {
                "question_start_tag": self.tags.question_start,
                "question_end_tag": self.tags.question_end,
                "answer_tag": self.tags.answer,
            },
            "max_new_tokens": self.max_new_tokens,
            "max_length": self.max_length,
            "ds_size": self.ds_size,
            "batch_size": self.settings.batch_size,
            "device": self.settings.device,
            "dtype": self.settings.dtype,
            "data": str(self.data_dir) if self.data_dir else None,
        }
