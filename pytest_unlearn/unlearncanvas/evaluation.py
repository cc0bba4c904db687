"""The UnlearnCanvas backend: answer sets drawn (or read) once per model, judged by the style and
object classifiers, scored as UA / IRA / CRA.

Submissions, as the benchmark evaluates them: one unlearned model per target (``--model DIR``
whose sub-folders are named after styles or objects, matched ignoring case, spaces, ``_`` and
``-``), or one model that unlearned several targets (``--model PATH`` with ``--setting
targets=...``). Pre-generated answer sets come through ``--setting images=DIR`` in the
benchmark's layout: ``DIR/<target>/<style>_<object>_seed<seed>.jpg`` (one folder per target), or
the files directly in ``DIR`` for one model. Each model's answer set is one input
(``answers:<target>``, or ``answers`` for one model), so its checks share one xdist group.
"""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from pytest_unlearn.engines.generation import DIFFUSION_SETTINGS, generation_settings
from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.evaluation import Backend, RunSettings
from pytest_unlearn.fingerprint import fingerprint
from pytest_unlearn.loading import inspect_model_folder
from pytest_unlearn.manifest import CheckSpec, SuiteManifest, slug
from pytest_unlearn.progress import PhaseProgress
from pytest_unlearn.registry import METRICS
from pytest_unlearn.settings import COMMON, Setting, schema
from pytest_unlearn.unlearncanvas import data as ucd
from pytest_unlearn.unlearncanvas import metrics as ucm

#: The sampling scripts' defaults (``sampling_unlearned_models/*.py``: 100 steps, guidance 9.0,
#: 512 px; the scheduler is each method's, so the pipeline's own by default).
GENERATION_DEFAULTS: dict[str, Any] = {"steps": 100, "guidance": 9.0, "resolution": 512, "scheduler": "default"}
JUDGES = ("classifier", "clip")
#: accuracy.py's ``Resize((224, 224)), ToTensor(), Normalize([0.5], [0.5])``, for a classifier
#: folder without an image processor (a timm folder); the size is the model's (224 for ViT-L/16).
ACCURACY_TRANSFORM = {"size": None, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
OWN_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "images",
        str,
        None,
        "score answer sets made elsewhere: DIR/<target>/<style>_<object>_seed<seed>.jpg (or the files in DIR for "
        "one model); was --images",
        path=True,
    ),
    Setting("targets", list, None, "targets to test (styles or objects); default: every per-target model folder"),
    Setting(
        "seeds",
        str,
        ucd.SEEDS,
        "sampling seeds, one image per prompt and seed (accuracy.py's --seed): '188 288', a list or one integer",
        own_check=True,
    ),
    Setting("template", str, ucd.TEMPLATE, "prompt of each (style, object); {style} has its '_' read as spaces"),
    Setting("judge", str, "classifier", "classifier (the benchmark's) or clip (zero-shot fallback)", choices=JUDGES),
    Setting(
        "style_classifier",
        str,
        None,
        "style classifier: a transformers (or timm ViT) image-classification folder",
        path=True,
    ),
    Setting(
        "object_classifier",
        str,
        None,
        "object classifier: a transformers (or timm ViT) image-classification folder",
        path=True,
    ),
    Setting(
        "style_labels", str, None, "the style classifier's label order, one a line (default: styles.txt)", path=True
    ),
    Setting(
        "object_labels", str, None, "the object classifier's label order, one a line (default: objects.txt)", path=True
    ),
    Setting("style_template", str, "an image in {concept} style", "clip judge: the zero-shot text of a style"),
    Setting("object_template", str, "a photo of {concept}", "clip judge: the zero-shot text of an object"),
    Setting("jpeg", bool, True, "judge generated images after a JPEG round trip, as the benchmark saves .jpg"),
    Setting(
        "fid_reference",
        str,
        None,
        "FID: the original model's answer set (<style>_<object>_seed<seed>.jpg); off when not given",
        path=True,
    ),
    Setting("fid_extractor", str, "inception", "FID: the registered feature extractor (pytest_unlearn.extractors)"),
    Setting("inception_weights", str, "", "FID: the extractor's weights file (inception: torchvision Inception v3)"),
)
_DEFAULTS = {s.name: s.default for s in OWN_SETTINGS}


def _jpeg_bytes(image: Any) -> bytes:
    """The image as the sampling scripts save it: ``img.save("….jpg")``, PIL's default quality."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    return buffer.getvalue()


def _decode(data: bytes) -> Any:
    """What accuracy.py reads back from the .jpg: the judged pixels are the JPEG's."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as handle:
        return handle.convert("RGB")


def _check_answer_set(folder: Path, pairs: list[tuple[str, str, int]], flag: str) -> None:
    """Every image of ``pairs`` is in the answer-set folder (accuracy.py's file names), before any
    is judged; ``flag`` names the input in the error."""
    missing = [name for name in (ucd.image_name(*pair) for pair in pairs) if not (folder / name).is_file()]
    if missing:
        raise UnlearnError(
            f"{flag}: {len(missing)} of {len(pairs)} images missing in {folder}, e.g. {missing[0]}; an answer set "
            "has every <style>_<object>_seed<seed>.jpg"
        )


def _read_answer_set(folder: Path, pairs: list[tuple[str, str, int]], flag: str) -> list[Any]:
    """The images of ``pairs`` in an answer-set folder; ``flag`` names the input in errors."""
    from PIL import Image, UnidentifiedImageError

    files = [folder / ucd.image_name(*pair) for pair in pairs]
    images = []
    for file in files:
        try:
            with Image.open(file) as handle:
                images.append(handle.convert("RGB"))
        except (OSError, UnidentifiedImageError) as exc:
            raise UnlearnError(f"{flag}: cannot read {file} ({exc}); replace it or regenerate it") from None
    return images


class UnlearnCanvasBackend(Backend):
    #: What --setting may override (besides the manifest's own [settings]).
    # Our own "images" (the benchmark's layout, not images.jsonl) is declared first, so it wins.
    SETTINGS = schema(*COMMON, *OWN_SETTINGS, *(s for s in DIFFUSION_SETTINGS if s.name != "images_per_prompt"))

    def __init__(self, manifest: SuiteManifest, settings: RunSettings) -> None:
        super().__init__(manifest, settings)
        where = f"suite manifest {manifest.path}"
        self.generation = generation_settings({**GENERATION_DEFAULTS, **manifest.settings}, where)
        self.styles, self.objects = self._names()
        both = set(self.styles) & set(self.objects)
        if both:
            raise UnlearnError(f"{self._data_where()}: {sorted(both)[0]!r} is both a style and an object; rename one")
        self.style_labels = self._labels("style_labels", self.styles, "styles")
        self.object_labels = self._labels("object_labels", self.objects, "objects")
        try:
            self.seeds = ucd.parse_seeds(self._get("seeds"))  # --setting seeds=188 arrives as an integer
        except ValueError as exc:
            raise UnlearnError(f"--setting seeds: {exc}") from None
        self.template = self._get("template")
        if "{style}" not in self.template or "{object}" not in self.template:
            raise UnlearnError(f"--setting template: must contain {{style}} and {{object}}, got {self.template!r}")
        self.judge_name = self._get("judge")
        self.jpeg = self._get("jpeg")
        self._check_judge()
        self.model_paths, self.per_target, self.model_line = self._models(settings)
        self.targets = self._targets()
        if self.per_target:
            self.model_paths = {t: p for t, p in self.model_paths.items() if t in self.targets}
        self._by_slug = {slug(t): t for t in self.model_paths if t}
        self.fid_reference = self._get("fid_reference")
        if self.fid_reference is not None and not Path(self.fid_reference).is_dir():
            raise UnlearnError(
                f"--setting fid_reference={self.fid_reference}: no such folder; pass the original model's answer set"
            )
        if self.fid_reference is not None:
            from pytest_unlearn.registry import EXTRACTORS

            try:
                EXTRACTORS.get(self._get("fid_extractor"))
            except UnlearnError as exc:
                raise UnlearnError(f"--setting fid_extractor: {exc}") from None
        self._extractor: Any = None
        self.inputs = ucm.CanvasInputs(
            styles=self.styles, objects=self.objects, targets=tuple(self.targets), seeds=self.seeds
        )
        self._judges: dict[str, Any] = {}
        self._pipe: Any = None  # the pipeline of the model being drawn, dropped after it
        self._digests: dict[str, str] = {}
        self.generated_images = 0  # drawn by a pipeline in this run (the cache serves the rest)

    # -- configuration ---------------------------------------------------------------------------
    def _get(self, name: str) -> Any:
        return self.setting(name, _DEFAULTS.get(name))

    def _data_where(self) -> str:
        return f"--data {self.settings.data}" if self.settings.data is not None else f"suite {self.manifest.name}"

    def _names(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """styles.txt and objects.txt: from --data DIR, else the manifest's [data]."""
        if self.settings.data is not None:
            folder = self.settings.data
            if not folder.is_dir():
                raise UnlearnError(f"--data {folder}: no such folder; pass a folder with styles.txt and objects.txt")
            files = {"styles": folder / "styles.txt", "objects": folder / "objects.txt"}
            flag = "--data"
        else:
            files = {name: self.manifest.data.get(name) for name in ("styles", "objects")}
            missing = [name for name, path in files.items() if path is None]
            if missing:
                raise UnlearnError(
                    f"suite manifest {self.manifest.path}: no [data] {missing[0]} list; pass --data DIR "
                    "with styles.txt and objects.txt"
                )
            flag = "suite data"
        return ucd.read_names(files["styles"], flag), ucd.read_names(files["objects"], flag)

    def _labels(self, name: str, names: tuple[str, ...], what: str) -> tuple[str, ...]:
        path = self._get(name)
        if path is None:
            return names
        labels = ucd.read_names(Path(path), f"--setting {name}=")
        missing = [n for n in names if n not in labels]
        if missing:
            raise UnlearnError(
                f"--setting {name}={path}: {missing[0]!r} of the {what} is not a label of the classifier; "
                f"list every one of the {what} in the classifier's order"
            )
        return labels

    def _check_judge(self) -> None:
        if self.judge_name == "clip":
            if self.setting("clip_model") is None:
                raise UnlearnError("--setting judge=clip needs --setting clip_model=DIR (a transformers CLIP folder)")
            # Never silent: the benchmark's numbers are its fine-tuned classifiers'.
            self.warn(
                "judge clip: CLIP zero-shot stands in for UnlearnCanvas' style and object classifiers; UA, IRA and "
                "CRA are not comparable to the benchmark's (pass --setting style_classifier= and object_classifier=)"
            )
            return
        for kind in ucm.KINDS:
            path = self._get(f"{kind}_classifier")
            if path is None:
                raise UnlearnError(
                    f"--suite {self.manifest.name} needs --setting {kind}_classifier=DIR (a transformers or timm "
                    "ViT image-classification folder), or --setting judge=clip with clip_model=DIR as a fallback"
                )
            if not (Path(path) / "config.json").is_file():
                raise UnlearnError(
                    f"--setting {kind}_classifier={path}: not an image-classification folder (no config.json)"
                )

    def _match(self, name: str) -> str | None:
        key = ucd.name_key(name)
        return next((n for n in (*self.styles, *self.objects) if ucd.name_key(n) == key), None)

    def _models(self, settings: RunSettings) -> tuple[dict[str, Path], bool, str | None]:
        """``{target: source}`` (``""``: one model for every target), whether per target, and how
        a folder of per-target folders was matched."""
        images = self.setting("images")
        if images is not None and settings.model is not None:
            raise UnlearnError("--setting images scores answer sets made elsewhere: drop --model, or drop images")
        if images is not None:
            folder = Path(images)
            if not folder.is_dir():
                raise UnlearnError(f"--setting images={folder}: no such folder; pass the answer sets' folder")
            found = self._target_folders(folder, "--setting images=")
            return found if found is not None else ({"": folder}, False, None)
        if settings.model is None:
            raise UnlearnError(
                f"--suite {self.manifest.name} needs --model PATH (a diffusers model, or a folder of one model per "
                "target), or --setting images=DIR (answer sets made elsewhere)"
            )
        path = settings.model
        if path.is_dir() and not (path / "model_index.json").is_file():
            found = self._target_folders(path, "--model ")
            if found is not None:
                for sub in found[0].values():
                    self._check_model(sub, f"--model {path}: {sub.name}")
                return found
        self._check_model(path, "--model")
        return {"": path}, False, None

    def _check_model(self, path: Path, flag: str) -> None:
        if path.is_dir():
            inspect_model_folder(path, allow_pickle=self.settings.allow_pickle, flag=flag)
        elif not path.is_file():
            raise UnlearnError(f"{flag} {path}: no such file or folder; pass a diffusers folder or checkpoint")

    def _target_folders(self, folder: Path, flag: str) -> tuple[dict[str, Path], bool, str] | None:
        """Sub-folders named after styles or objects (None when none is)."""
        matched: dict[str, Path] = {}
        ignored = []
        for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            name = self._match(sub.name)
            if name is None or name in matched:
                ignored.append(sub.name)
            else:
                matched[name] = sub
        if not matched:
            return None
        order = [*self.styles, *self.objects]
        matched = dict(sorted(matched.items(), key=lambda item: order.index(item[0])))
        line = (
            f"{flag}{folder}: {len(matched)} per-target folders ("
            + ", ".join(f"{p.name} = {t}" for t, p in matched.items())
            + ")"
            + (f"; ignored folders: {', '.join(ignored)}" if ignored else "")
        )
        return matched, True, line

    def _targets(self) -> list[str]:
        """``--setting targets`` (each a style or object, with a model when per target); else
        every per-target folder; one model needs them named."""
        given = self._get("targets")
        if not given:
            if not self.per_target:
                raise UnlearnError(
                    "one model for every target: name what it unlearned with --setting targets=NAME (a style or "
                    "object of styles.txt / objects.txt; a list for several)"
                )
            return list(self.model_paths)
        targets = []
        for name in given:
            target = self._match(name)
            if target is None:
                import difflib

                close = difflib.get_close_matches(name, [*self.styles, *self.objects], n=1)
                hint = f" Did you mean: {close[0]}?" if close else ""
                raise UnlearnError(f"--setting targets: {name!r} is not a style or object of the suite's lists.{hint}")
            if self.per_target and target not in self.model_paths:
                raise UnlearnError(f"--setting targets: {target!r} has no model folder ({self.model_line})")
            targets.append(target)
        return list(dict.fromkeys(targets))

    # -- checks and inputs -------------------------------------------------------------------------
    def concepts(self) -> list[str] | None:  # type: ignore[override]
        return list(self.targets)

    def _input(self, model: str) -> str:
        return "answers" if model == "" else f"answers:{slug(model)}"

    def requires(self, spec: CheckSpec) -> tuple[str, ...]:
        """A target's checks need its own model's answer set (one xdist group per model); the
        averaged checks every model's."""
        needed = METRICS.get(spec.metric).requires
        target = spec.params.get("target")
        if not self.per_target or target not in self.model_paths:
            # "answers" of per-target models is every model's (computed one after the other):
            # naming it apart keeps the averaged checks from merging the per-model groups.
            return needed
        return tuple(self._input(target) if name == "answers" else name for name in needed)

    def compute(self, name: str) -> None:
        if name == "answers" and self.per_target:
            self.ensure(tuple(self._input(m) for m in self.model_paths))
            return
        model = "" if name == "answers" else self._by_slug.get(name.split(":", 1)[1] if ":" in name else "")
        if model is None:
            raise UnlearnError(f"the unlearncanvas backend cannot compute {name!r}")
        pairs = [(style, obj, seed) for style in self.styles for obj in self.objects for seed in self.seeds]
        # Chunk by chunk: the benchmark's answer set is 5,100 images of 512 px per model, too many
        # to hold at once; each chunk is drawn (or read), judged and featurised, then dropped.
        predicted: dict[str, list[str]] = {kind: [] for kind in ucm.KINDS}
        features: list[np.ndarray] = []
        chunk = max(1, self.settings.batch_size)
        progress = PhaseProgress(self.progress, f"{self.manifest.name} {model or 'model'} images", len(pairs))
        if self.setting("images") is not None:
            _check_answer_set(self.model_paths[model], pairs, f"--setting images={self.setting('images')}")
        try:
            for start in range(0, len(pairs), chunk):
                part = pairs[start : start + chunk]
                if self.setting("images") is not None:
                    images = _read_answer_set(
                        self.model_paths[model], part, f"--setting images={self.setting('images')}"
                    )
                else:
                    images = self._generate(model, part)
                for kind in ucm.KINDS:
                    predicted[kind].extend(self._classify(kind, images))
                if self.fid_reference is not None:
                    features.append(np.asarray(self._fid_extractor().features(images), dtype=np.float64))
                progress.advance(len(part))
        finally:
            self._pipe = None  # one model after the other: per-target pipelines do not all fit at once
        index = {pair: i for i, pair in enumerate(pairs)}
        # accuracy.py's two tasks: a style's images over every object and seed, an object's over
        # every style and seed; 1 where the classifier named the image's own style (object).
        style_rows = {
            s: np.array([predicted["style"][index[(s, o, seed)]] == s for o in self.objects for seed in self.seeds])
            for s in self.styles
        }
        object_rows = {
            o: np.array([predicted["object"][index[(s, o, seed)]] == o for s in self.styles for seed in self.seeds])
            for o in self.objects
        }
        served = [model] if model else list(self.targets)
        correct = dict(self.inputs.correct)
        for target in served:
            correct[target] = {"style": style_rows, "object": object_rows}
        self.inputs = replace(self.inputs, correct=correct)
        if self.fid_reference is not None:
            reference = self.inputs.reference_features
            if reference is None:
                folder, flag = Path(self.fid_reference), f"--setting fid_reference={self.fid_reference}"
                _check_answer_set(folder, pairs, flag)
                reference = np.concatenate(
                    [
                        np.asarray(
                            self._fid_extractor().features(_read_answer_set(folder, part, flag)), dtype=np.float64
                        )
                        for part in (pairs[i : i + chunk] for i in range(0, len(pairs), chunk))
                    ]
                )
            self.inputs = replace(
                self.inputs,
                features={**self.inputs.features, **{target: np.concatenate(features) for target in served}},
                reference_features=reference,
                extractor=f"{self._get('fid_extractor')} ({getattr(self._fid_extractor(), 'name', '')})",
            )
        self._write_records(model, pairs, predicted)

    def _fid_extractor(self) -> Any:
        if self._extractor is None:
            from pytest_unlearn.registry import EXTRACTORS

            name = self._get("fid_extractor")
            spec = str(self.setting("clip_model") or "") if name == "clip" else str(self._get("inception_weights"))
            self._extractor = EXTRACTORS.get(name)(spec, self.settings.device)
        return self._extractor

    # -- images --------------------------------------------------------------------------------------
    def _pipeline(self, model: str) -> Any:
        from pytest_unlearn.engines.diffusion import load_pipeline
        from pytest_unlearn.workers import split_cpu_threads

        path = self.model_paths[model]
        flag = f"--model {self.settings.model}: {path.name}" if model else "--model"
        pipe = load_pipeline(
            path,
            device=self.settings.device,
            dtype=self.settings.dtype,
            allow_pickle=self.settings.allow_pickle,
            model_config=self.setting("model_config"),
            flag=flag,
        )
        split_cpu_threads(str(pipe.device))
        return pipe

    def _generate(self, model: str, pairs: list[tuple[str, str, int]]) -> list[Any]:
        """The images of ``pairs`` drawn by one model, each batch an entry of the artifact cache,
        written to the artifacts as the benchmark's .jpg files and read back as it reads them."""
        from PIL import Image

        from pytest_unlearn.cache import decode_arrays, encode_arrays, make_key, model_digest
        from pytest_unlearn.loading import resolve_device

        requests = [(ucd.prompt(self.template, style, obj), seed) for style, obj, seed in pairs]
        size = self.settings.batch_size
        if model not in self._digests:
            self._digests[model] = model_digest(self.model_paths[model])

        def produce(batch: list[tuple[str, int]]) -> bytes:
            from pytest_unlearn.engines.diffusion import generate

            if self._pipe is None:
                self._pipe = self._pipeline(model)
            made = generate(self._pipe, batch, self.generation, batch_size=size, source=self.model_paths[model])
            self.generated_images += len(made)
            return encode_arrays([np.asarray(image.convert("RGB")) for image in made])

        images: list[Any] = []
        for start in range(0, len(requests), size):
            batch = requests[start : start + size]
            key = make_key(
                "unlearncanvas.images",
                model=self._digests[model],
                batch=[list(pair) for pair in batch],
                settings=self.generation.record(),
                device=resolve_device(self.settings.device).split(":")[0],
                dtype=self.settings.dtype,
            )
            data = self.cache.get_or_create("unlearncanvas-images", key, ".npz", lambda batch=batch: produce(batch))
            images.extend(Image.fromarray(array) for array in decode_arrays(data))
        encoded = [_jpeg_bytes(image) for image in images]
        self._write_answers(model, pairs, encoded)
        return [_decode(data) for data in encoded] if self.jpeg else images

    def _write_answers(self, model: str, pairs: list[tuple[str, str, int]], encoded: list[bytes]) -> None:
        """The answer set in the benchmark's layout (one artifact: its folder), so the benchmark's
        own scripts can read it too. A folder that cannot be written costs the files, not the checks."""
        from pytest_unlearn.files import write_bytes_atomic

        folder = self.settings.artifacts / "answers" / (model or "model")
        try:
            for pair, data in zip(pairs, encoded):
                write_bytes_atomic(folder / ucd.image_name(*pair), data)
        except OSError as exc:
            self.warn(
                f"--artifacts {self.settings.artifacts}: cannot write the answer set ({exc.strerror or exc}); the "
                "scores are kept, the images are not: pass a writable folder to keep them"
            )
            return
        self._artifact_files[f"answers/{model or 'model'}"] = str(folder)

    # -- judges --------------------------------------------------------------------------------------
    def _judge(self, kind: str) -> Any:
        if kind not in self._judges:
            from pytest_unlearn.engines.judges import open_judge

            if self.judge_name == "clip":
                self._judges[kind] = open_judge("clip", str(self.setting("clip_model")), self.settings.device)
            else:
                from pytest_unlearn.engines.judges import FiniteJudge, ImageClassifier
                from pytest_unlearn.loading import resolve_device

                path = str(self._get(f"{kind}_classifier"))
                model = ImageClassifier(
                    Path(path),
                    resolve_device(self.settings.device),
                    transform=ACCURACY_TRANSFORM,
                    where=f"--setting {kind}_classifier={path}",
                )
                self._judges[kind] = FiniteJudge(model, f"classifier ({path})")
        return self._judges[kind]

    def _classify(self, kind: str, images: list[Any]) -> list[str]:
        """The name each image is classified as, by the ``kind`` classifier (or CLIP zero-shot)."""
        judge = self._judge(kind)
        if self.judge_name == "clip":
            from pytest_unlearn.engines.judges import classify

            names = self.styles if kind == "style" else self.objects
            shown = [n.replace("_", " ") for n in names]
            return [names[i] for i in classify(judge, images, shown, self._get(f"{kind}_template"))]
        labels = self.style_labels if kind == "style" else self.object_labels
        logits = judge.logits(images)
        if logits.shape[1] != len(labels):
            flag = f"{kind}_labels" if self._get(f"{kind}_labels") is not None else "data"
            raise UnlearnError(
                f"--setting {kind}_classifier={self._get(f'{kind}_classifier')}: {logits.shape[1]} outputs, but its "
                f"label order ({flag}) lists {len(labels)} names; pass --setting {kind}_labels=FILE in its order"
            )
        return [labels[i] for i in np.argmax(logits, axis=1)]

    def _write_records(self, model: str, pairs: list[tuple[str, str, int]], predicted: dict[str, list[str]]) -> None:
        rows = [
            {
                "style": s,
                "object": o,
                "seed": seed,
                "style_pred": predicted["style"][i],
                "object_pred": predicted["object"][i],
            }
            for i, (s, o, seed) in enumerate(pairs)
        ]
        text = "".join(json.dumps(row) + "\n" for row in rows)
        name = f"predictions/{model or 'model'}.jsonl"
        self.write_artifact(name, name, text.encode(), "per-image predictions")

    # -- the scorecard -----------------------------------------------------------------------------
    def metric_inputs(self) -> ucm.CanvasInputs:
        return self.inputs

    def aggregates(self) -> dict[str, Any]:
        per = {t: ucm.scores(self.inputs, t) for t in self.targets if t in self.inputs.correct}
        out: dict[str, Any] = {"targets": list(self.targets), "per_target": per, "judge": self.judge_name}
        for which in ("ua", "ira", "cra"):
            out[which] = float(np.mean([s[which] for s in per.values()])) if per else None
        if self.inputs.reference_features is not None:
            fids = {t: ucm.fid_of(self.inputs, t) for t in self.targets if t in self.inputs.features}
            out["fid"] = float(np.mean(list(fids.values()))) if fids else None
            out["fid_per_target"] = fids
            out["fid_extractor"] = self.inputs.extractor
        return out

    def artifacts(self) -> dict[str, str]:
        return dict(self._artifact_files)

    def header_lines(self) -> list[str]:
        lines = [
            f"unlearncanvas: {len(self.styles)} styles x {len(self.objects)} objects x {len(self.seeds)} seeds; "
            f"targets: {', '.join(self.targets)}; judge: {self.judge_name}"
        ]
        return lines + ([self.model_line] if self.model_line else [])

    def settings_record(self) -> dict[str, Any]:
        return {
            **self.generation.record(),
            "seeds": list(self.seeds),
            "template": self.template,
            "judge": self.judge_name,
            "jpeg": self.jpeg,
            "targets": list(self.targets),
        }

    def model_record(self) -> dict[str, Any]:
        source = "images" if self.setting("images") is not None else "model"
        if self.per_target:
            record: dict[str, Any] = {"path": None, "models": {}}
            for target, path in self.model_paths.items():
                record["models"][target] = {"path": str(path)}
                if source == "model":
                    record["models"][target]["fingerprint"] = fingerprint(path)
            if self.model_line:
                record["matched"] = self.model_line
            return record
        path = self.model_paths[""]
        return {"path": str(path), source: str(path), "fingerprint": fingerprint(path) if source == "model" else None}
