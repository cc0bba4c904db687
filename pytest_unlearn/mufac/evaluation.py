"""The MUFAC / MUCAC backend: per-image outputs of a face classifier on the test, forget and
unseen images (from the model itself, or from an earlier run's per-image file with
``--predictions``), and the original model's test outputs (``--original-model``: a model folder
or such a file).

Inputs (each computed at most once per run, shared by every check):
- ``scores``: the model's loss and correctness per image of the test, forget and unseen splits;
- ``original``: the same for the original model's test split (the accuracy ratio).
Per-image logits and losses are cached by content (model digest, image digests, labels,
preprocessing). Torch is imported only when a model pass is needed.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.evaluation import Backend, RunSettings
from pytest_unlearn.fingerprint import fingerprint
from pytest_unlearn.integrity import match_ids, read_text
from pytest_unlearn.loading import PICKLE_SUFFIXES, inspect_model_folder
from pytest_unlearn.manifest import SuiteManifest
from pytest_unlearn.mufac import metrics as mm
from pytest_unlearn.mufac.data import SCORED, FaceData, Sample, load_mucac, load_mufac
from pytest_unlearn.settings import COMMON, Setting, declared, schema

PREDICTIONS_FORMAT = "pytest-unlearn/face-predictions"
PREDICTIONS_FILE = "predictions.json"
ARTIFACT = "face_predictions"
ORIGINAL_ARTIFACT = "face_original_predictions"
LAYOUTS = ("mufac", "mucac")
MODEL_DEFAULTS: dict[str, Any] = {
    "layout": "mufac",
    "classes": ["a", "b", "c", "d", "e", "f", "g", "h"],
    "forget_size": 1500,
    "attributes": ["Male", "Smiling", "Young"],
    "train_index": 190,
    "retain_index": 1250,
    "unseen_index": 4855,
    "preprocess": "auto",
    "model_loader": "transformers",
    "mia_seed": mm.MIA_SEED,
    "mia_splits": mm.MIA_SPLITS,
    "mia_random_state": mm.MIA_RANDOM_STATE,
}


def _is_model_folder(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


class FaceBackend(Backend):
    """Backend ``mufac`` of the suites mufac, mucac and their -mini twins (``layout`` setting)."""

    SETTINGS = schema(
        *COMMON,
        *declared(MODEL_DEFAULTS),
        Setting("transform", dict, None, "resize and normalisation when the model has no processor", own_check=True),
    )
    USER_API = ("model", "original", "data")

    def __init__(self, manifest: SuiteManifest, settings: RunSettings) -> None:
        super().__init__(manifest, settings)
        from pytest_unlearn.settings import typed_setting

        s = {**MODEL_DEFAULTS, **manifest.settings}
        where = f"suite {manifest.name} (manifest or --setting)"
        self.layout = typed_setting(s, "layout", str, where)
        if self.layout not in LAYOUTS:
            raise UnlearnError(f"--setting layout={self.layout}: expected mufac or mucac")
        self.preprocess = typed_setting(s, "preprocess", str, where)
        if self.preprocess not in ("auto", "manifest"):
            raise UnlearnError(
                f"--setting preprocess={self.preprocess}: expected auto (the model's image processor when it has "
                "one) or manifest (the manifest's [settings.transform])"
            )
        self.transform = self._transform(s.get("transform") or {}, where)
        self.model_loader = typed_setting(s, "model_loader", str, where)
        self.inputs = mm.FaceInputs(
            mia={
                "seed": typed_setting(s, "mia_seed", int, where),
                "n_splits": typed_setting(s, "mia_splits", int, where),
                "random_state": typed_setting(s, "mia_random_state", int, where),
            }
        )
        if self.inputs.mia["n_splits"] < 1:
            raise UnlearnError(
                f"--setting mia_splits={self.inputs.mia['n_splits']}: the attack needs at least one split"
            )
        self._models: dict[Path, tuple[Any, Any, str]] = {}
        self._digests: dict[Path, str] = {}
        self._fingerprint: str | None = None
        self._resolved_device: str | None = None

        self.data_dir = settings.data if settings.data is not None else manifest.data.get(self.layout)
        if self.data_dir is None:
            raise UnlearnError(
                f"suite manifest {manifest.path}: no bundled {self.layout.upper()} data; pass --data DIR"
            )
        flag = "--data" if settings.data is not None else "bundled data"
        if self.layout == "mufac":
            classes = tuple(typed_setting(s, "classes", list, where))
            self.data: FaceData = load_mufac(
                self.data_dir, classes=classes, forget_size=typed_setting(s, "forget_size", int, where), flag=flag,
                warn=self.warn,
            )  # fmt: skip
        else:
            self.data = load_mucac(
                self.data_dir,
                attributes=tuple(typed_setting(s, "attributes", list, where)),
                train_index=typed_setting(s, "train_index", int, where),
                retain_index=typed_setting(s, "retain_index", int, where),
                unseen_index=typed_setting(s, "unseen_index", int, where),
                flag=flag,
                warn=self.warn,
            )

        # Per-image files are read now, so a malformed one stops the run before any model loads.
        self._prediction_scores: dict[str, mm.SplitScores] | None = None
        self._original_scores: dict[str, mm.SplitScores] | None = None
        if settings.model is not None:
            self._check_model_path(settings.model, "--model")
        elif settings.predictions is None:
            raise UnlearnError(
                f"--suite {manifest.name} needs --model PATH (a face classifier) or --predictions FILE "
                f"(the {PREDICTIONS_FILE} of an earlier run)"
            )
        else:
            self._prediction_scores = self._read_predictions(settings.predictions, "--predictions", SCORED)
        original = settings.original_model
        if original is not None:
            if not original.exists():
                raise UnlearnError(
                    f"--original-model {original}: no such file or folder; pass the model before unlearning "
                    f"or the {PREDICTIONS_FILE} of its run"
                )
            if original.is_dir():
                self._check_model_path(original, "--original-model")
            else:
                self._original_scores = self._read_predictions(original, "--original-model", ("test",))

    # -- settings ------------------------------------------------------------------------------
    @staticmethod
    def _transform(raw: Any, where: str) -> dict[str, Any]:
        """The manifest's preprocessing for models without an image processor (MUFAC's
        ``Resize(128)`` + ``ToTensor()``: size 128, mean 0, std 1)."""
        if not isinstance(raw, dict):
            raise UnlearnError(f"{where}: [settings.transform] must be a table (size, mean, std)")
        out = {"size": raw.get("size", 128), "mean": raw.get("mean", [0.0, 0.0, 0.0]), "std": raw.get("std", [1.0] * 3)}
        if not isinstance(out["size"], int) or isinstance(out["size"], bool) or out["size"] < 1:
            raise UnlearnError(f"{where}: transform size must be a positive integer, got {out['size']!r}")
        for key in ("mean", "std"):
            value = out[key]
            if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, (int, float)) for v in value)):
                raise UnlearnError(f"{where}: transform {key} must be three numbers (R, G, B), got {value!r}")
        if any(v <= 0 for v in out["std"]):
            raise UnlearnError(f"{where}: transform std must be positive, got {out['std']!r}")
        return out

    def _check_model_path(self, path: Path, flag: str) -> None:
        if self.model_loader == "transformers":
            inspect_model_folder(path, allow_pickle=self.settings.allow_pickle, flag=flag)
            return
        if not path.exists():
            raise UnlearnError(f"{flag} {path}: no such file or folder")
        # A registered loader reads what it likes; pickle files still need the user's consent.
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        pickles = [p.name for p in files if p.suffix in PICKLE_SUFFIXES]
        if pickles and not self.settings.allow_pickle:
            raise UnlearnError(
                f"{flag} {path}: pickle weights ({', '.join(pickles[:3])}), which can run code when loaded; "
                f"convert them to safetensors or pass --allow-pickle (loader {self.model_loader} then reads them "
                "with torch.load(weights_only=True))"
            )

    # -- models --------------------------------------------------------------------------------
    def _model(self, path: Path, flag: str) -> tuple[Any, Any, str]:
        """(model, image processor or None, device); the model maps pixel_values to logits."""
        if path not in self._models:
            from pytest_unlearn.engines.image_classifier import load_classifier
            from pytest_unlearn.loading import check_finite, resolve_device
            from pytest_unlearn.workers import split_cpu_threads

            device = resolve_device(self.settings.device)
            model, processor = load_classifier(
                path, loader=self.model_loader, device=device, allow_pickle=self.settings.allow_pickle,
                where=f"{flag} {path}",
            )  # fmt: skip
            if self.preprocess == "manifest":
                processor = None
            import torch

            check_finite(model, path, torch.float32, flag)
            split_cpu_threads(device)
            self._models[path] = (model, processor, device)
        return self._models[path]

    def _outputs(self, path: Path, flag: str, splits: tuple[str, ...]) -> dict[str, dict[str, list[Any]]]:
        """Per-image logits and loss of every image of ``splits``, through the artifact cache."""
        from pytest_unlearn.cache import make_key, model_digest

        if path not in self._digests:
            self._digests[path] = model_digest(path)
        samples = {k: self.data.splits[k] for k in splits}
        preprocessing = "model" if self.preprocess == "auto" and (path / "preprocessor_config.json").is_file() else None
        key = make_key(
            "mufac.outputs",
            model=self._digests[path],
            loader=self.model_loader,
            device=self._device_kind(),
            # Batch composition can move the last bits of a batched forward pass.
            batch_size=self.settings.batch_size,
            task=self.data.task,
            preprocessing=preprocessing or self.transform,
            images={k: [(s.digest, s.labels) for s in v] for k, v in samples.items()},
        )

        def produce() -> dict[str, dict[str, list[Any]]]:
            model, processor, device = self._model(path, flag)
            out = {}
            for name, rows in samples.items():
                self.progress(f"unlearn: {self.manifest.name}: scoring {len(rows)} {name} images with {path}")
                out[name] = self._forward(model, processor, device, rows, path, flag)
            return out

        return self.cache.get_or_create_json("mufac-outputs", key, produce)

    def _device_kind(self) -> str:
        from pytest_unlearn.loading import resolve_device

        if self._resolved_device is None:
            self._resolved_device = resolve_device(self.settings.device)
        return self._resolved_device.split(":")[0]

    def _forward(
        self, model: Any, processor: Any, device: str, rows: list[Sample], path: Path, flag: str
    ) -> dict[str, list[Any]]:
        import torch
        import torch.nn.functional as F

        from pytest_unlearn.engines.image_classifier import batched_logits

        logits_all: list[list[float]] = []
        losses: list[float] = []
        width = len(self.data.label_names)
        files = [(sample.path, f"{sample.source}:{sample.line}") for sample in rows]
        batches = batched_logits(
            model, processor, device, files, batch_size=self.settings.batch_size,
            transform=self.transform if processor is None else None,
            keyword_call=self.model_loader == "transformers",
        )  # fmt: skip
        for start, logits in batches:
            chunk = rows[start : start + len(logits)]
            if logits.ndim != 2 or logits.shape[1] != width:
                kind = "classes" if self.data.task == "multiclass" else "attributes"
                raise UnlearnError(
                    f"{flag} {path}: the classifier has {logits.shape[-1]} outputs, the {self.layout} data "
                    f"{width} {kind} ({', '.join(self.data.label_names)}); pass a classifier of this task"
                )
            labels = torch.tensor([s.labels for s in chunk], device=logits.device)
            with torch.no_grad():
                if self.data.task == "multiclass":
                    loss = F.cross_entropy(logits, labels[:, 0], reduction="none")
                else:
                    loss = F.binary_cross_entropy_with_logits(logits, labels.float(), reduction="none").mean(dim=1)
            logits_all.extend(logits.cpu().tolist())
            losses.extend(loss.cpu().tolist())
        from pytest_unlearn import domains

        # NaN logits give a NaN loss and an argmax of 0: neither may be scored.
        ids = [s.id for s in rows]
        domains.require_finite(logits_all, ids, what="logits", unit="images", source=f"{flag} {path}")
        domains.require_finite(losses, ids, what="losses", unit="images", source=f"{flag} {path}")
        return {"ids": [s.id for s in rows], "logits": logits_all, "losses": losses}

    # -- per-image records -----------------------------------------------------------------------
    def _scores(self, outputs: dict[str, dict[str, list[Any]]]) -> dict[str, mm.SplitScores]:
        out = {}
        for split, rows in outputs.items():
            labels = np.array([s.labels for s in self.data.splits[split]])
            logits = np.asarray(rows["logits"], dtype=np.float64)
            out[split] = mm.SplitScores(tuple(rows["ids"]), np.asarray(rows["losses"]), self._correct(logits, labels))
        return out

    def _correct(self, logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
        if self.data.task == "multiclass":
            return logits.argmax(axis=1) == labels[:, 0]
        # sigmoid(x) > 0.5 exactly when x > 0.
        return (logits > 0).astype(int) == labels

    def _read_predictions(self, path: Path, flag: str, splits: tuple[str, ...]) -> dict[str, mm.SplitScores]:
        """An earlier run's per-image file: the logits and losses of every image, keyed by id."""
        if not path.exists():
            raise UnlearnError(f"{flag} {path}: no such file or folder")
        if path.is_dir():
            path = path / PREDICTIONS_FILE
        try:
            doc = json.loads(read_text(path, flag))
        except json.JSONDecodeError as exc:
            raise UnlearnError(f"{flag} {path}: not JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(doc, dict) or doc.get("format") != PREDICTIONS_FORMAT:
            raise UnlearnError(
                f"{flag} {path}: not a per-image file of the face suites (format {PREDICTIONS_FORMAT!r}); "
                f"pass the {PREDICTIONS_FILE} a run with --model wrote under its artifacts"
            )
        if doc.get("task") != self.data.task or list(doc.get("label_names") or []) != list(self.data.label_names):
            raise UnlearnError(
                f"{flag} {path}: it scores {doc.get('task')} labels {doc.get('label_names')}, the data "
                f"{self.data.task} labels {list(self.data.label_names)}; pass the file of a run on this data"
            )
        outputs = {}
        for split in splits:
            entry = doc["splits"].get(split) if isinstance(doc.get("splits"), dict) else None
            if not isinstance(entry, dict) or not all(
                isinstance(entry.get(k), list) for k in ("ids", "logits", "losses")
            ):
                raise UnlearnError(f"{flag} {path}: no {split} split with ids, logits and losses")
            ids, logits, losses = entry["ids"], entry["logits"], entry["losses"]
            if not len(ids) == len(logits) == len(losses):
                raise UnlearnError(f"{flag} {path}: the {split} split has {len(ids)} ids but {len(logits)} logits "
                                   f"and {len(losses)} losses")  # fmt: skip
            rows = {str(i): k for k, i in enumerate(ids)}
            expected = self.data.ids(split)
            self.warn(match_ids(rows, expected, source=path, flag=flag))
            lacking = [i for i in expected if i not in rows]
            if lacking:
                raise UnlearnError(
                    f"{flag} {path}: {len(lacking)} {split} image(s) of the data have no prediction "
                    f"(e.g. {lacking[0]!r}); score the same data"
                )
            order = [rows[i] for i in expected]
            outputs[split] = {
                "ids": expected,
                "logits": [logits[k] for k in order],
                "losses": [losses[k] for k in order],
            }
            width = len(self.data.label_names)
            try:
                logits_ok = np.asarray(outputs[split]["logits"], dtype=np.float64).shape == (len(expected), width)
                arr = np.asarray(outputs[split]["losses"], dtype=np.float64)
            except (TypeError, ValueError):  # ragged lists, strings, nulls
                logits_ok, arr = False, np.array([np.nan])
            if not logits_ok or arr.ndim != 1 or not np.all(np.isfinite(arr)):
                raise UnlearnError(
                    f"{flag} {path}: the {split} split needs {len(self.data.label_names)} logits and a finite loss "
                    "per image"
                )
            self._check_domains(path, flag, split, outputs[split])
        return self._scores(outputs)

    def _check_domains(self, path: Path, flag: str, split: str, rows: dict[str, list[Any]]) -> None:
        """Each image's logits finite and its loss >= 0 and the loss of its logits (the
        cross-entropy, or the mean binary cross-entropy of MUCAC's attributes): a loss that does
        not match them was not produced by this model's outputs and would move the attack."""
        from pytest_unlearn import domains

        samples = self.data.splits[split]
        for image, logits, loss, sample in zip(rows["ids"], rows["logits"], rows["losses"], samples):
            where = f"{flag} {path} {split} image {image!r}"
            record = domains.validate(domains.ImagePrediction, {"logits": logits, "loss": loss}, where)
            x = np.asarray(record.logits, dtype=np.float64)
            if self.data.task == "multiclass":
                top = x.max()
                expected = float(top + np.log(np.exp(x - top).sum()) - x[sample.labels[0]])
                how = f"the cross-entropy of its logits for label {self.data.label_names[sample.labels[0]]!r}"
            else:
                y = np.asarray(sample.labels, dtype=np.float64)
                expected = float(np.mean(np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))))
                how = "the mean binary cross-entropy of its logits and labels"
            if abs(record.loss - expected) > 1e-3 + 1e-3 * expected:
                raise UnlearnError(
                    f'{where}: field "loss" = {domains.show(loss)} is not {how} ({expected:.6g}); {domains.FIX}'
                )

    def _write(self, name: str, folder: str, outputs: dict[str, dict[str, list[Any]]]) -> None:
        doc: dict[str, Any] = {
            "format": PREDICTIONS_FORMAT,
            "version": 1,
            "suite": self.manifest.name,
            "task": self.data.task,
            "label_names": list(self.data.label_names),
            "splits": {},
        }
        for split, rows in outputs.items():
            samples = self.data.splits[split]
            logits = np.asarray(rows["logits"])
            predictions = logits.argmax(axis=1)[:, None] if self.data.task == "multiclass" else (logits > 0).astype(int)
            doc["splits"][split] = {
                "ids": rows["ids"],
                "labels": [list(s.labels) for s in samples],
                "predictions": predictions.tolist(),
                "losses": rows["losses"],
                "logits": rows["logits"],
            }
        data = (json.dumps(doc) + "\n").encode("utf-8")
        self.write_artifact(name, f"{folder}/{PREDICTIONS_FILE}", data, "per-image predictions")

    # -- inputs ----------------------------------------------------------------------------------
    def compute(self, name: str) -> None:
        if name == "scores":
            if self._prediction_scores is not None:
                scores = self._prediction_scores
            else:
                outputs = self._outputs(self.settings.model, "--model", SCORED)  # type: ignore[arg-type]
                self._write(ARTIFACT, self.manifest.name, outputs)
                scores = self._scores(outputs)
            self.inputs = replace(self.inputs, scores=scores)
        elif name == "original":
            path = self.settings.original_model
            if path is None:
                raise UnlearnError(
                    "the accuracy ratio needs the model before unlearning: pass --original-model PATH "
                    f"(a model folder or the {PREDICTIONS_FILE} of its run)"
                )
            if self._original_scores is not None:
                scores = self._original_scores
            else:
                outputs = self._outputs(path, "--original-model", ("test",))
                self._write(ORIGINAL_ARTIFACT, f"{self.manifest.name}-original", outputs)
                scores = self._scores(outputs)
            self.inputs = replace(self.inputs, original=scores)
        else:
            raise UnlearnError(f"the {self.manifest.backend} backend cannot compute {name!r}")

    #: Metrics whose bootstrap refits the attack on every replicate.
    ATTACK_METRICS = ("mufac.forgetting_score", "mufac.nomus")

    def _interval(self, metric: Any, inputs: Any, spec: Any) -> tuple[float, float] | None:
        """The attack is refitted on every bootstrap replicate. All replicates are fitted first in
        one vectorised pass (:func:`mm.mia_accuracies`, the exact optimum of the same objective)
        into the inputs' memo, which the replicates the base class then draws (the same seed,
        the same draws) read back."""
        samples = int(self.manifest.settings.get("bootstrap_samples", 1000))
        if metric.name in self.ATTACK_METRICS and metric.sampled and samples > 0 and inputs.scores is not None:
            rng = np.random.default_rng(int(self.manifest.settings.get("seed", 0)))
            replicates = [inputs.resample(rng, metric.requires) for _ in range(samples)]
            keys = [r.rows["forget"].tobytes() + b"|" + r.rows["unseen"].tobytes() for r in replicates]
            todo = [i for i, key in enumerate(keys) if key not in inputs.memo]
            if todo:
                forget = np.stack([replicates[i].scores["forget"].losses for i in todo])
                unseen = np.stack([replicates[i].scores["unseen"].losses for i in todo])
                for i, value in zip(todo, mm.mia_accuracies(forget, unseen, **inputs.mia)):
                    inputs.memo[keys[i]] = float(value)
        return super()._interval(metric, inputs, spec)

    def metric_inputs(self) -> mm.FaceInputs:
        return self.inputs

    def aggregates(self) -> dict[str, Any]:
        return mm.aggregates(self.inputs)

    # -- the user's own tests --------------------------------------------------------------------
    def user_model(self, role: str = "model") -> Any:
        path = self.settings.model if role == "model" else self.settings.original_model if role == "original" else None
        flag = "--model" if role == "model" else "--original-model"
        if path is None or not path.is_dir():
            raise UnlearnError(f"unlearn_{role} needs {flag} PATH, a model folder")
        return self._model(path, flag)[0]

    def user_data(self) -> FaceData:
        return self.data

    # -- records ---------------------------------------------------------------------------------
    def model_record(self) -> dict[str, Any]:
        original = str(self.settings.original_model) if self.settings.original_model else None
        if self.settings.model is None:
            return {"path": None, "fingerprint": None, "predictions": str(self.settings.predictions),
                    "original_model": original}  # fmt: skip
        if self._fingerprint is None:
            self._fingerprint = fingerprint(self.settings.model)
        return {"path": str(self.settings.model), "fingerprint": self._fingerprint, "original_model": original}

    def device(self) -> str | None:
        for _, _, device in self._models.values():
            return device
        return self._resolved_device

    def artifacts(self) -> dict[str, str]:
        return dict(self._artifact_files)

    def header_lines(self) -> list[str]:
        source = str(self.settings.model) if self.settings.model else f"predictions {self.settings.predictions}"
        sizes = " ".join(f"{k}={len(v)}" for k, v in self.data.splits.items())
        mia = self.inputs.mia
        return [
            f"unlearn: {self.layout} {sizes}, model={source}, original={self.settings.original_model}, "
            f"attack: logistic regression, {mia['n_splits']} stratified splits (random_state={mia['random_state']}), "
            f"forget shuffle seed {mia['seed']}"
        ]

    def settings_record(self) -> dict[str, Any]:
        record = {k: self.manifest.settings.get(k, v) for k, v in MODEL_DEFAULTS.items()}
        record.update({"transform": self.transform, "data": str(self.data_dir), "batch_size": self.settings.batch_size,
                       "device": self.settings.device})  # fmt: skip
        return record

    def report_sections(self, card: dict[str, Any], report: Path) -> list[str]:
        """The per-image losses of the forget and unseen images, which the attack separates."""
        from pytest_unlearn.report import E, histogram_svg

        if self.inputs.scores is None:
            return []
        forget, unseen = self.inputs.scores["forget"].losses, self.inputs.scores["unseen"].losses
        score = card.get("aggregates", {}).get("forgetting_score")
        return [
            "<h2>Forget and unseen losses</h2><p>Per-image loss of the forget images (trained on, then to be "
            "forgotten) and of the unseen images (people never trained on); the attack is a logistic regression "
            f"on these values. Forgetting score {E('n/a' if score is None else f'{score:.3f}')}.</p>"
            + histogram_svg({"forget": forget.tolist(), "unseen": unseen.tolist()}, label="loss")
        ]
