"""The multiple-choice backend (``backend = "mcq"`` or ``"wmdp"``): WMDP and any MCQ set a
manifest declares, scored zero-shot as lm-evaluation-harness scores them, with lm-eval's MMLU
as the utility gate.

Inputs (each computed at most once per run, cached by content, shared by every check):
- ``subsets``: the log-likelihoods of every choice of every question of the subsets found;
- ``mmlu``: the same for every MMLU test question (``--mmlu``), in lm-eval's MMLU prompt;
- ``original_mmlu``: MMLU of ``--original-model``, for the ratio gate.
Torch is imported only when a model pass is needed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from pytest_unlearn.engines.language_models import LanguageModel, ModelsByPath
from pytest_unlearn.engines.lmeval import LM_EVAL_VERSION
from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.evaluation import Backend, RunSettings
from pytest_unlearn.files import jsonl_bytes
from pytest_unlearn.fingerprint import fingerprint
from pytest_unlearn.integrity import match_ids
from pytest_unlearn.loading import inspect_model_folder, token_budget
from pytest_unlearn.manifest import CheckSpec, SuiteManifest
from pytest_unlearn.mcq import metrics as mm
from pytest_unlearn.mcq.data import (
    LM_EVAL_LABELS,
    LM_EVAL_TEMPLATE,
    MCQData,
    Question,
    ScoredRow,
    Subset,
    Template,
    find_subset_file,
    load_loglikelihoods,
    load_subset,
    mmlu_context,
)
from pytest_unlearn.mcq.settings import SETTINGS as MCQ_SETTINGS
from pytest_unlearn.mmlu import MMLUData, load_mmlu

SUBSET_ARTIFACT = "mcq_predictions"
MMLU_ARTIFACT = "mmlu_predictions"
SUBSET_ARTIFACT_FILE = f"{SUBSET_ARTIFACT}.jsonl"
MMLU_ARTIFACT_FILE = f"{MMLU_ARTIFACT}.jsonl"
ORIGINAL_MMLU_ARTIFACT = "original_mmlu_predictions"


def _subsets(settings: dict[str, Any], where: str) -> dict[str, Subset]:
    table = settings.get("subsets")
    if not isinstance(table, dict) or not table:
        raise UnlearnError(
            f"{where}: [settings.subsets] must declare at least one subset "
            '(e.g. [settings.subsets.bio] file = "wmdp-bio")'
        )
    out = {}
    for name, entry in table.items():
        if not isinstance(entry, dict):
            raise UnlearnError(f"{where}: [settings.subsets.{name}] must be a table with file and description")
        unknown = sorted(set(entry) - {"file", "description"})
        if unknown:
            raise UnlearnError(
                f"{where}: [settings.subsets.{name}] has unknown keys {unknown}; it takes file, description"
            )
        file = entry.get("file", name)
        description = entry.get("description", "")
        if not isinstance(file, str) or not file or "/" in file or "\\" in file:
            raise UnlearnError(f"{where}: [settings.subsets.{name}] file must be a file name in --data, got {file!r}")
        if not isinstance(description, str):
            raise UnlearnError(f"{where}: [settings.subsets.{name}] description must be a string")
        out[name] = Subset(name, file, description)
    return out


def _template(settings: dict[str, Any], where: str) -> Template:
    text = settings.get("template", LM_EVAL_TEMPLATE)
    labels = settings.get("labels", list(LM_EVAL_LABELS))
    delimiter = settings.get("target_delimiter", " ")
    strip = settings.get("strip_question", True)
    if not isinstance(text, str):
        raise UnlearnError(f"{where}: setting 'template' must be a string")
    if not isinstance(labels, list) or not all(isinstance(x, str) and x for x in labels):
        raise UnlearnError(f"{where}: setting 'labels' must be a list of non-empty strings, got {labels!r}")
    if not isinstance(delimiter, str):
        raise UnlearnError(f"{where}: setting 'target_delimiter' must be a string")
    if not isinstance(strip, bool):
        raise UnlearnError(f"{where}: setting 'strip_question' must be true or false")
    template = Template(text, tuple(labels), delimiter, strip)
    template.validate(where)
    return template


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()


class MCQBackend(ModelsByPath, Backend):
    #: What --setting may override besides the manifest's [settings].
    SETTINGS = MCQ_SETTINGS
    DATA_ENTRIES = ("mmlu",)
    USER_API = ("model", "original", "data")

    def __init__(self, manifest: SuiteManifest, settings: RunSettings) -> None:
        super().__init__(manifest, settings)
        from pytest_unlearn.settings import typed_setting

        where = f"suite manifest {manifest.path}"
        s = {"mmlu_shots": 0, **manifest.settings}
        self.subset_specs = _subsets(s, where)
        self.template = _template(s, where)
        self.shots = typed_setting(s, "mmlu_shots", int, f"suite {manifest.name} (manifest or --setting)")
        self.max_batch_tokens, self.token_budget_source = token_budget(s, settings)
        from pytest_unlearn.engines.lmeval import parse_add_bos_token

        where_bos = f"suite {manifest.name} (manifest or --setting)"
        self.add_bos_token = parse_add_bos_token(s.get("add_bos_token"), where_bos)

        # The questions: --data, else the manifest's bundled folder.
        data_dir = settings.data if settings.data is not None else manifest.data.get("questions")
        flag = "--data" if settings.data is not None else "bundled data"
        expected = ", ".join(f"{spec.file}.jsonl" for spec in self.subset_specs.values())
        if data_dir is None:
            raise UnlearnError(f"--suite {manifest.name} needs --data DIR: the folder with {expected} (or .parquet)")
        if not data_dir.is_dir():
            raise UnlearnError(f"{flag} {data_dir}: no such folder; pass the folder with {expected} (or .parquet)")
        self.data_dir = data_dir
        self.files: dict[str, Path] = {}
        self.skipped: list[str] = []
        for name, spec in self.subset_specs.items():
            path = find_subset_file(data_dir, spec)
            if path is None:
                self.skipped.append(name)
            else:
                self.files[name] = path
        if not self.files:
            raise UnlearnError(
                f"{flag} {data_dir}: no question file of any subset of suite {manifest.name} "
                f"(expected {expected}, .json, .parquet or a folder of that name)"
            )
        n_choices = len(self.template.labels)
        self.questions: dict[str, list[Question]] = {
            name: load_subset(path, name, n_choices, self.warn) for name, path in self.files.items()
        }

        # MMLU (lm-eval's form): --mmlu, else an mmlu/ folder beside the questions, else the bundled one.
        mmlu_dir = settings.data_paths.get("mmlu")
        if mmlu_dir is None and (data_dir / "mmlu").is_dir():
            mmlu_dir = data_dir / "mmlu"
        if mmlu_dir is None and settings.data is None:
            mmlu_dir = manifest.data.get("mmlu")
        self.mmlu_dir = mmlu_dir
        self.mmlu_data: MMLUData | None = load_mmlu(mmlu_dir, self.warn) if mmlu_dir is not None else None

        # --predictions: the log-likelihoods of an earlier run, rescored against this data.
        self.scored: dict[str, ScoredRow] | None = None
        self.scored_mmlu: dict[str, ScoredRow] | None = None
        if settings.predictions is not None:
            self._load_predictions(settings.predictions)
        if settings.model is not None:
            inspect_model_folder(settings.model, allow_pickle=settings.allow_pickle)
        elif settings.predictions is None:
            raise UnlearnError(
                f"--suite {manifest.name} needs --model PATH (or --predictions FILE: the mcq_predictions.jsonl "
                "of an earlier run)"
            )
        if settings.original_model is not None:
            inspect_model_folder(settings.original_model, allow_pickle=settings.allow_pickle, flag="--original-model")

        self.inputs = mm.MCQInputs()
        self.dropped: list[str] = []
        self._models: dict[Path, tuple[Any, Any, str]] = {}
        self._digests: dict[Path, str] = {}
        self._fingerprint: str | None = None
        self._resolved_device: str | None = None
        self.model_loads = 0

    def _load_predictions(self, path: Path) -> None:
        if path.is_dir():
            subset_file, mmlu_file = path / SUBSET_ARTIFACT_FILE, path / MMLU_ARTIFACT_FILE
            if not subset_file.is_file() and not mmlu_file.is_file():
                raise UnlearnError(
                    f"--predictions {path}: neither {SUBSET_ARTIFACT_FILE} nor {MMLU_ARTIFACT_FILE} in the folder; "
                    "pass an artifacts folder of an earlier run (or one of its files)"
                )
            subset_file = subset_file if subset_file.is_file() else None
            mmlu_file = mmlu_file if mmlu_file.is_file() else None
        elif path.is_file():
            subset_file, mmlu_file = path, None
        else:
            raise UnlearnError(f"--predictions {path}: no such file or folder")
        if subset_file is not None:
            known = {f"{q.subset}:{q.index}": q.question for rows in self.questions.values() for q in rows}
            self.scored = self._matched(subset_file, ("subset", "index"), self.template.labels, known)
        if mmlu_file is not None and self.mmlu_data is not None:
            data = self.mmlu_data
            known = {f"{s}:{i}": q.question for s in data.subjects for i, q in enumerate(data.test[s])}
            self.scored_mmlu = self._matched(mmlu_file, ("subject", "index"), LM_EVAL_LABELS, known)

    def _matched(
        self, path: Path, key_fields: tuple[str, str], labels: tuple[str, ...], known: dict[str, str]
    ) -> dict[str, ScoredRow]:
        """The rows of ``path``, every question of the data among them and each the same question."""
        rows = load_loglikelihoods(path, key_fields, labels, self.warn)
        self.warn(match_ids({k: r.line for k, r in rows.items()}, known, source=path, flag="--predictions"))
        missing = [k for k in known if k not in rows]
        if missing:
            examples = ", ".join(repr(k) for k in missing[:3]) + (", ..." if len(missing) > 3 else "")
            raise UnlearnError(
                f"--predictions {path}: no prediction for {len(missing)} of the {len(known)} questions ({examples}); "
                "pass the predictions of this data, or --model PATH"
            )
        for key, question in known.items():
            row = rows[key]
            if row.question and row.question != question:
                raise UnlearnError(
                    f"--predictions {path}:{row.line}: {key} is {row.question!r} there but {question!r} in the data; "
                    "pass the predictions of this data"
                )
        return rows

    # -- checks ----------------------------------------------------------------------------------
    def expand_checks(self, checks: tuple[CheckSpec, ...]) -> tuple[CheckSpec, ...]:
        """A subset check whose subset has no file is left out (one header line says so), as is
        the MMLU ratio without ``--original-model``; a check naming an undeclared subset is an error."""
        kept = []
        for spec in checks:
            if spec.metric == "mcq.accuracy":
                subset = spec.params.get("subset")
                if subset not in self.subset_specs:
                    raise UnlearnError(
                        f"suite manifest {self.manifest.path}: check {spec.id!r}: subset {subset!r} is not declared "
                        f"in [settings.subsets] (declared: {', '.join(self.subset_specs)})"
                    )
                if subset in self.skipped:
                    spec_file = self.subset_specs[subset].file
                    self.dropped.append(
                        f"{spec.id} skipped: no {spec_file}.jsonl (.json, .parquet or {spec_file}/) in {self.data_dir}"
                    )
                    continue
            if spec.metric == "mcq.mmlu_ratio" and self.settings.original_model is None:
                self.dropped.append(
                    f"{spec.id} skipped: it compares with the original model; pass --original-model PATH"
                )
                continue
            kept.append(spec)
        return super().expand_checks(tuple(kept))

    # -- the user's own tests ---------------------------------------------------------------
    def user_model(self, role: str = "model") -> Any:
        path = self.settings.model if role == "model" else self.settings.original_model if role == "original" else None
        if path is None and role == "original":
            raise UnlearnError("unlearn_original_model needs --original-model PATH")
        if path is None:
            raise UnlearnError(f"the {self.manifest.name} suite loads no {role}: pass --model PATH")
        model, tokenizer, device = self._model(path)
        return LanguageModel(model, tokenizer, device, path)

    def user_data(self) -> MCQData:
        return MCQData(
            subsets={k: list(v) for k, v in self.questions.items()},
            skipped=tuple(self.skipped),
            template=self.template,
            descriptions={k: spec.description for k, spec in self.subset_specs.items()},
            mmlu=self.mmlu_data,
        )

    # -- --stress ------------------------------------------------------------------------------
    def stress_texts(self, part: str) -> list[tuple[str, str]]:
        """A question with its right answer, as lm-eval scores it (context, delimiter, label):
        the forget side is every subset's questions; the retain side is MMLU's dev questions, the
        few-shot pool no check scores (its test questions are the MMLU gate's)."""
        if part == "forget":
            return [
                (f"{name}:{q.index}", self._context(q) + self.template.delimiter + self.template.labels[q.answer])
                for name, rows in self.questions.items()
                for q in rows
            ]
        dev = self.mmlu_data.dev if self.mmlu_data is not None else {}
        texts = [
            (f"mmlu-dev:{subject}:{i}", mmlu_context([], subject, q, 0) + " " + q.answer)
            for subject in sorted(dev)
            for i, q in enumerate(dev[subject])
        ]
        if not texts:
            raise UnlearnError(
                f"--stress relearn:data=retain: the {self.manifest.name} suite relearns on MMLU's dev questions and "
                "this run has none: pass --data=mmlu=DIR with a dev/ folder, or relearn:data=PATH"
            )
        return texts

    def hold_out(self, ids: set[str]) -> None:
        # Deeb & Roger's protocol: the subset checks score the held-out questions only.
        held = {name: [q for q in rows if f"{name}:{q.index}" in ids] for name, rows in self.questions.items()}
        empty = [name for name, rows in held.items() if not rows]
        if empty:
            raise UnlearnError(
                f"--stress relearn:data=forget-half: the held-out half has no question of subset {empty[0]} "
                f"({len(self.questions[empty[0]])} in all); choose another seed or relearn:data=PATH"
            )
        self.questions = held

    def _context(self, question: Question) -> str:
        return self.subset_specs[question.subset].description + self.template.doc_to_text(
            question.question, question.choices
        )

    # -- models ----------------------------------------------------------------------------------
    def _loglikelihoods(self, path: Path, contexts: list[str], continuations: list[str]) -> list[list[float]]:
        from pytest_unlearn.engines.multiple_choice import choice_loglikelihoods

        def produce() -> list[list[float]]:
            model, tokenizer, device = self._model(path)
            return choice_loglikelihoods(
                model, tokenizer, contexts, continuations, batch_size=self.settings.batch_size, device=device,
                max_tokens=self.max_batch_tokens, add_bos_token=self.add_bos_token, on_truncate=self._truncated,
            )  # fmt: skip

        key = self._cache_key(
            path, "mcq.loglikelihoods", contexts=_digest(contexts), continuations=continuations,
            lm_eval=LM_EVAL_VERSION, add_bos_token=self.add_bos_token,
        )  # fmt: skip
        return self.cache.get_or_create_json("mcq-loglikelihoods", key, produce)

    def _truncated(self, rows: int, max_length: int) -> None:
        from pytest_unlearn.engines.lmeval import truncation_warning

        self.warn(truncation_warning(self.manifest.name, rows, max_length))

    def device(self) -> str | None:
        for _, _, device in self._models.values():
            return device
        return self._resolved_device

    def model_record(self) -> dict[str, Any]:
        if self.settings.model is None:
            return {"path": None, "fingerprint": None, "predictions": str(self.settings.predictions)}
        if self._fingerprint is None:
            self._fingerprint = fingerprint(self.settings.model)  # type: ignore[arg-type]
        original = str(self.settings.original_model) if self.settings.original_model else None
        return {"path": str(self.settings.model), "fingerprint": self._fingerprint, "original_model": original}

    # -- inputs ----------------------------------------------------------------------------------
    def compute(self, name: str) -> None:
        if name == "subsets":
            self._compute_subsets()
        elif name == "mmlu":
            # --predictions with its MMLU file rescores it; else the model's own pass.
            path = None if self.scored_mmlu is not None else self.settings.model
            self.inputs = replace(self.inputs, mmlu_correct=self._mmlu(path, MMLU_ARTIFACT))
        elif name == "original_mmlu":
            path = self.settings.original_model
            if path is None:
                raise UnlearnError("the MMLU ratio needs the original model: pass --original-model PATH")
            self.inputs = replace(self.inputs, original_mmlu_correct=self._mmlu(path, ORIGINAL_MMLU_ARTIFACT))
        else:
            raise UnlearnError(f"the {self.manifest.backend} backend cannot compute {name!r}")

    def _compute_subsets(self) -> None:
        import numpy as np

        questions = [q for rows in self.questions.values() for q in rows]
        contexts = [self._context(q) for q in questions]
        if self.scored is not None:
            tables = [list(self.scored[f"{q.subset}:{q.index}"].loglikelihoods) for q in questions]
        elif self.settings.model is None:
            raise UnlearnError(
                "the subset checks need the model itself: pass --model PATH "
                f"(or --predictions with {SUBSET_ARTIFACT_FILE})"
            )
        else:
            tables = self._loglikelihoods(self.settings.model, contexts, self.template.continuations())  # type: ignore[arg-type]
            self._require_finite(tables, [f"{q.subset}:{q.index}" for q in questions], self.settings.model)
        outcomes = mm.correct(tables, [q.answer for q in questions])
        correct: dict[str, np.ndarray] = {}
        start = 0
        for name, rows in self.questions.items():
            correct[name] = outcomes[start : start + len(rows)]
            start += len(rows)
        self.inputs = replace(self.inputs, correct=correct)
        labels = self.template.labels
        self._write_jsonl(
            SUBSET_ARTIFACT,
            [
                {
                    "subset": q.subset,
                    "index": q.index,
                    "file": q.source,
                    "line": q.line,
                    "question": q.question,
                    "answer": labels[q.answer],
                    "loglikelihoods": dict(zip(labels, lls)),
                    "prediction": labels[mm.predict(lls)],
                    "correct": bool(ok),
                }
                for q, lls, ok in zip(questions, tables, outcomes)
            ],
        )

    def _mmlu(self, path: Path | None, artifact: str) -> Any:
        import numpy as np

        if self.mmlu_data is None:
            raise UnlearnError("no MMLU data: pass --mmlu DIR (the Hendrycks CSV layout: dev/ and test/)")
        data = self.mmlu_data
        rows = [(subject, i, q) for subject in data.subjects for i, q in enumerate(data.test[subject])]
        if path is None and self.scored_mmlu is not None:
            tables = [list(self.scored_mmlu[f"{subject}:{i}"].loglikelihoods) for subject, i, _ in rows]
        elif path is None:
            raise UnlearnError(
                "the MMLU gate needs the model itself: pass --model PATH "
                f"(or --predictions DIR with {MMLU_ARTIFACT_FILE})"
            )
        else:
            contexts = [mmlu_context(data.dev.get(subject, []), subject, q, self.shots) for subject, _, q in rows]
            tables = self._loglikelihoods(path, contexts, [" " + letter for letter in LM_EVAL_LABELS])
            self._require_finite(tables, [f"{subject}:{i}" for subject, i, _ in rows], path)
        answers = [LM_EVAL_LABELS.index(q.answer) for _, _, q in rows]
        outcomes = mm.correct(tables, answers)
        self._write_jsonl(
            artifact,
            [
                {
                    "subject": subject,
                    "index": i,
                    "answer": q.answer,
                    "loglikelihoods": dict(zip(LM_EVAL_LABELS, lls)),
                    "prediction": LM_EVAL_LABELS[mm.predict(lls)],
                    "correct": bool(ok),
                }
                for (subject, i, q), lls, ok in zip(rows, tables, outcomes)
            ],
        )
        return np.asarray(outcomes)

    @staticmethod
    def _require_finite(tables: list[list[float]], names: list[str], path: Path | None) -> None:
        """NaN log-likelihoods (from finite weights that overflow) would be scored: the argmax of
        NaN is the first choice, right a quarter of the time, which reads as forgotten."""
        from pytest_unlearn import domains

        domains.require_finite(tables, names, what="log-likelihoods", unit="questions", source=str(path))

    def metric_inputs(self) -> mm.MCQInputs:
        return self.inputs

    def aggregates(self) -> dict[str, Any]:
        return mm.aggregates(self.inputs)

    # -- records -------------------------------------------------------------------------------
    def _write_jsonl(self, name: str, rows: list[dict[str, Any]]) -> None:
        self.write_artifact(name, f"{name}.jsonl", jsonl_bytes(rows), "per-question records")

    #: Questions shown per failing subset check in the HTML report.
    REPORT_EXAMPLES = 5

    def report_sections(self, card: dict[str, Any], report: Path) -> list[str]:
        """Per failing subset check, the questions the model still answers most confidently
        (the margin of the answer's log-likelihood over the best other choice); MMLU per subject
        for the model and the original. From this run's artifact files."""
        from pytest_unlearn.report import E

        def read(name: str) -> list[dict[str, Any]]:
            path = card.get("artifacts", {}).get(name)
            try:
                return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line]
            except (OSError, TypeError, ValueError):
                return []

        sections = []
        rows = read(SUBSET_ARTIFACT)
        failing = [c for c in card["checks"] if not c["passed"] and c["metric"] == "mcq.accuracy"]
        if rows and failing:
            parts = ["<h2>Hazardous questions the model still answers</h2>"]
            for check in failing:
                subset = next(
                    (spec.params.get("subset") for spec in self.manifest.checks if spec.id == check["id"]), None
                )
                kept = [r for r in rows if r["subset"] == subset and r["correct"]]

                def margin(row: dict[str, Any]) -> float:
                    lls = row["loglikelihoods"]
                    return lls[row["answer"]] - max(v for k, v in lls.items() if k != row["answer"])

                kept.sort(key=lambda r: -margin(r))
                parts.append(
                    f"<h3>{E(check['id'])}: {len(kept)} right</h3><table><tr><th>line</th><th>question</th>"
                    "<th>answer</th><th>margin (log-likelihood over the next choice)</th></tr>"
                )
                parts += [
                    f"<tr><td>{r['line']}</td><td><pre>{E(r['question'])}</pre></td><td>{E(r['answer'])}</td>"
                    f"<td>{margin(r):.3f}</td></tr>"
                    for r in kept[: self.REPORT_EXAMPLES]
                ]
                parts.append("</table>")
            sections.append("".join(parts))
        model, original = read(MMLU_ARTIFACT), read(ORIGINAL_MMLU_ARTIFACT)
        if model:

            def per_subject(rows: list[dict[str, Any]]) -> dict[str, list[bool]]:
                out: dict[str, list[bool]] = {}
                for row in rows:
                    out.setdefault(row["subject"], []).append(bool(row["correct"]))
                return out

            ours, theirs = per_subject(model), per_subject(original)
            cells = "".join(
                f"<tr><td>{E(s)}</td><td>{sum(v)}/{len(v)}</td>"
                + (f"<td>{sum(theirs[s])}/{len(theirs[s])}</td>" if s in theirs else "<td></td>")
                + "</tr>"
                for s, v in sorted(ours.items())
            )
            sections.append(
                "<h2>MMLU per subject</h2><table><tr><th>subject</th><th>model</th><th>original</th></tr>"
                + cells + "</table>"
            )  # fmt: skip
        return sections

    def artifacts(self) -> dict[str, str]:
        return dict(self._artifact_files)

    def header_lines(self) -> list[str]:
        sizes = " ".join(f"{name}={len(rows)}" for name, rows in self.questions.items())
        source = self.settings.model if self.settings.model else f"predictions {self.settings.predictions}"
        mmlu = f"mmlu={self.mmlu_data.n_questions()} ({self.shots}-shot)" if self.mmlu_data else "mmlu=none"
        lines = [
            f"unlearn: {self.manifest.name} {sizes} {mmlu}, lm-eval multiple-choice acc, model={source}, "
            f"original={self.settings.original_model}"
        ]
        bos = "tokenizer's default" if self.add_bos_token is None else str(self.add_bos_token).lower()
        lines.append(f"unlearn: scoring as lm-eval {LM_EVAL_VERSION} (add_bos_token={bos}, left truncation)")
        lines.append(
            f"unlearn: max_batch_tokens={self.max_batch_tokens} ({self.token_budget_source}), at most "
            f"--batch-size={self.settings.batch_size} rows"
        )
        lines += [f"unlearn: {self.manifest.name}: {line}" for line in self.dropped]
        return lines

    def settings_record(self) -> dict[str, Any]:
        return {
            "template": self.template.text,
            "labels": list(self.template.labels),
            "target_delimiter": self.template.delimiter,
            "strip_question": self.template.strip_question,
            "subsets": {
                name: {
                    "file": str(self.files[name]) if name in self.files else None,
                    "description": spec.description,
                    "n": len(self.questions.get(name, [])),
                }
                for name, spec in self.subset_specs.items()
            },
            "skipped": list(self.skipped),
            "mmlu": str(self.mmlu_dir) if self.mmlu_dir else None,
            "mmlu_shots": self.shots,
            # The scoring rules followed (BOS, left truncation): lm-eval's HFLM of this release.
            "lm_eval_version": LM_EVAL_VERSION,
            "add_bos_token": "auto (the tokenizer decides)" if self.add_bos_token is None else self.add_bos_token,
            "batch_size": self.settings.batch_size,
            "device": self.settings.device,
            "dtype": self.settings.dtype,
        }
