"""The Genμ backend: which images are needed, generating each once, judging, weights, reports.

Both submission forms of the challenge: one multi-concept model (``--model PATH``) or one
single-concept model per target (``--model CONCEPT=PATH`` repeated, or ``--model DIR`` whose
sub-folders are named after concepts). Inputs (each computed at most once per run, shared by
every check):

- ``images`` (one model) or ``images:<concept>`` (that concept's model): every (prompt, seed)
  the checks need, generated once per model (or read from ``--images``), judged for concept
  presence, retention images CLIP-scored; ``images`` in the per-concept form is every model's;
- ``original_images``: the union of those requests generated once with ``--original-model``;
- ``weights``: the weight change of each model against ``--original-model``.
"""

from __future__ import annotations

import hashlib
import html
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from pytest_unlearn.engines.generation import DIFFUSION_SETTINGS, generation_settings, read_image_index
from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.evaluation import Backend, RunSettings
from pytest_unlearn.fingerprint import artifact_tag, fingerprint
from pytest_unlearn.genmu import metrics as gm
from pytest_unlearn.genmu.data import ConceptPrompts, clean_name, concept_key, load_prompt_csv
from pytest_unlearn.loading import inspect_model_folder
from pytest_unlearn.manifest import CheckSpec, SuiteManifest, slug
from pytest_unlearn.registry import JUDGES, METRICS
from pytest_unlearn.settings import COMMON, Setting, declared, schema, typed_setting

ADJACENT_METHODS = ("manifest", "clip-text", "clip-image")

DEFAULT_SETTINGS: dict[str, Any] = {
    "steps": 50,
    "guidance": 7.5,
    "resolution": 512,
    "scheduler": "default",
    "images_per_prompt": 1,
    "seed": 0,
    "judge": "clip",
    "judge_template": "a photo of {concept}",
    "targets": [],
    # "manifest": the [adjacent] table; "clip-text": each target's adjacent_k nearest candidate
    # concepts by the judge's text embeddings; "clip-image": by the judge's image embeddings of
    # the original model's images of each candidate, as FADE ranks them (adjacency.py).
    "adjacent_from": "manifest",
    "adjacent_k": 2,
    # Images of an adjacent (or candidate) concept without a CSV row, as the challenge's
    # direct prompts read.
    "adjacent_template": "an image of {concept}",
    # --judge classifier: a transformers image-classification folder, and how many of its top
    # labels may name a concept (the manifest's [labels]).
    "classifier_model": "",
    "classifier_top_k": 1,
}

# The target concepts to test (each must be a concept of the prompt CSV).
CONCEPTS = Setting(
    "concepts", list, None, "target concepts to test (default: the targets setting, else every concept); was --concept"
)


@dataclass(frozen=True)
class ImageRequest:
    """One image a check needs: its prompt and seed, and what it is evidence of."""

    prompt: str
    seed: int
    concept: str
    prompt_type: str  # direct / indirect / adversarial
    role: str  # target / retain / adjacent (a concept without a CSV row)

    @property
    def key(self) -> str:
        return hashlib.sha256(f"{self.prompt}\0{self.seed}".encode()).hexdigest()[:16]


def _setting(settings: dict[str, Any], key: str, kind: type, where: str) -> Any:
    return typed_setting({**DEFAULT_SETTINGS, **settings}, key, kind, where)


def _pairs(requests: list[ImageRequest]) -> list[tuple[str, int]]:
    """The distinct (prompt, seed) pairs of ``requests``, in order: each is generated once, however
    many CSV rows share the prompt."""
    return list(dict.fromkeys((r.prompt, r.seed) for r in requests))


@dataclass(frozen=True)
class JudgedImage:
    """What ``unlearn_judge`` says of one image."""

    sees: tuple[str, ...]  # the concepts the judge sees in it
    label: str  # what it saw (the label the report shows)
    clip_score: float | None  # 100·cos(image, prompt); None without a CLIP model


@dataclass(frozen=True)
class GenmuData:
    """What ``unlearn_data`` gives a genmu test: the CSV's concepts and prompts, the targets
    under test and their adjacent concepts."""

    concepts: dict[str, ConceptPrompts]
    targets: list[str]
    adjacent: dict[str, tuple[str, ...]]


class GenmuBackend(Backend):
    #: What --setting may override (besides the manifest's own [settings]).
    SETTINGS = schema(*COMMON, *DIFFUSION_SETTINGS, *declared(DEFAULT_SETTINGS), CONCEPTS)
    #: ``--model`` may be given once per concept (the challenge's single-concept submissions).
    MULTIPLE_MODELS = True

    def __init__(self, manifest: SuiteManifest, settings: RunSettings) -> None:
        super().__init__(manifest, settings)
        where = f"suite manifest {manifest.path}"
        merged = {**DEFAULT_SETTINGS, **manifest.settings, **settings.overrides}
        self.generation = generation_settings(merged, where)
        self.images_per_prompt = _setting(merged, "images_per_prompt", int, where)
        self.seed = _setting(merged, "seed", int, where)
        self.judge_name = _setting(merged, "judge", str, where)
        self.template = _setting(merged, "judge_template", str, where)
        self.adjacent_template = _setting(merged, "adjacent_template", str, where)
        if "{concept}" not in self.adjacent_template:
            raise UnlearnError(f"{where}: adjacent_template must contain {{concept}}, got {self.adjacent_template!r}")
        try:
            JUDGES.get(self.judge_name)  # an unknown judge is a usage error, before any image
        except UnlearnError as exc:
            raise UnlearnError(f"--judge: {exc}") from None
        self.adjacent_from = _setting(merged, "adjacent_from", str, where)
        if self.adjacent_from == "clip":
            # The old name of the text method; kept so existing commands run, said plainly.
            self.adjacent_from = "clip-text"
            self.warn(
                "adjacent_from = clip means clip-text (the judge's text embeddings); FADE ranks neighbours "
                "by the original model's images: use clip-image"
            )
        self.adjacent_k = _setting(merged, "adjacent_k", int, where)
        if self.adjacent_from not in ADJACENT_METHODS:
            raise UnlearnError(
                f"{where}: adjacent_from must be {', '.join(ADJACENT_METHODS)}, got {self.adjacent_from!r}"
            )
        if self.adjacent_k < 1:
            raise UnlearnError(f"{where}: adjacent_k must be at least 1, got {self.adjacent_k}")
        if self.adjacent_from == "clip-image" and settings.original_model is None:
            raise UnlearnError(
                "--setting adjacent_from=clip-image ranks neighbours by the original model's images: "
                "pass --original-model PATH"
            )

        csv_path = self._prompt_csv()
        self.data_files = {"prompts": str(csv_path)}
        self.concept_prompts: dict[str, ConceptPrompts] = load_prompt_csv(csv_path, manifest.columns, warn=self.warn)
        self._by_key = {concept_key(name): name for name in self.concept_prompts}
        self.classifier_model = _setting(merged, "classifier_model", str, where)
        self.classifier_top_k = _setting(merged, "classifier_top_k", int, where)
        if self.judge_name == "classifier" and not self.classifier_model:
            raise UnlearnError(
                "--judge classifier needs --setting classifier_model=DIR (a transformers image-classification folder)"
            )
        if self.judge_name == "classifier" and not Path(self.classifier_model, "config.json").is_file():
            raise UnlearnError(
                f"--setting classifier_model={self.classifier_model}: not an image-classification folder "
                "(no config.json)"
            )
        if self.classifier_top_k < 1:
            raise UnlearnError(f"--setting classifier_top_k must be at least 1, got {self.classifier_top_k}")

        self._check_original(settings)
        if self.setting("clip_model") is None and self.judge_name == "clip":
            raise UnlearnError(
                "--suite genmu needs a CLIP judge: pass --setting clip_model=DIR (a transformers CLIP folder) "
                "or --setting clip_model=open_clip:MODEL:WEIGHTS"
            )
        if self.judge_name == "clip" and self.setting("clip_model").startswith("open_clip:"):
            from pytest_unlearn.engines.judges import parse_open_clip_spec

            parse_open_clip_spec(self.setting("clip_model"))  # its form and files, before any image is made
        # Model key -> path ("" is the one multi-concept model); which concepts each model has.
        self.model_paths, concept_models, self.model_line = self._models(settings)
        self.targets = self._targets(merged.get("targets") or [], concept_models)
        if concept_models:  # --concept may test some of the models only: the others draw nothing
            self.model_paths = {c: path for c, path in self.model_paths.items() if c in self.targets}
        self.model_of = {c: (c if concept_models else "") for c in self.targets}
        self.erased = {m: tuple(c for c in self.targets if self.model_of[c] == m) for m in self.model_paths}
        if self.setting("images") is not None and concept_models:
            raise UnlearnError("--images scores the images of one model: drop it, or pass a single --model")
        # "unlearned" (one model) or "unlearned-<concept>": image folders, pipelines, records.
        self.which = {m: "unlearned" if m == "" else f"unlearned-{slug(m)}" for m in self.model_paths}
        self._model_by_slug = {slug(m): m for m in self.model_paths if m}

        self.template_concepts = self._template_concepts()
        # The judge chooses among every concept under test: those of the CSV and the templated.
        self.labels = [*self.concept_prompts, *self.template_concepts]
        self.label_sets = self._label_sets() if self.judge_name == "classifier" else {}
        self.adjacent: dict[str, tuple[str, ...]] = self._adjacency() if self.adjacent_from == "manifest" else {}
        self.neighbour_scores: dict[str, dict[str, float]] = {}
        self._adjacency_ready = self.adjacent_from == "manifest"
        self.image_index = self._read_image_index() if self.setting("images") else None

        self.requests = {m: self._requests(m) for m in self.model_paths}
        self.inputs = gm.GenmuInputs(
            targets=tuple(self.targets),
            adjacent=self.adjacent,
            model_of=dict(self.model_of),
            erased=dict(self.erased),
            template_concepts=tuple(self.template_concepts),
        )
        self._pipes: dict[str, Any] = {}
        self._judge: Any = None
        self._clip: Any = None
        self._records: dict[str, list[dict[str, Any]]] = {}
        self._images: dict[str, dict[tuple[str, int], Any]] = {}
        self._artifact_files: dict[str, str] = {}
        self.generated_images = 0  # pipeline images produced in this run (benchmarks read it)
        self.pipeline_loads = 0  # tests read it: a warm rerun loads no pipeline
        self._model_digests: dict[str, str] = {}
        self._resolved_device: str | None = None

    # -- configuration ---------------------------------------------------------------------------
    def _prompt_csv(self) -> Path:
        if self.settings.data is not None:
            if self.settings.data.is_file():
                return self.settings.data
            if not self.settings.data.is_dir():
                raise UnlearnError(f"--data {self.settings.data}: no such file or folder; pass the prompt CSV")
            found = sorted(self.settings.data.glob("*.csv"))
            if len(found) != 1:
                raise UnlearnError(
                    f"--data {self.settings.data}: expected one prompt CSV in the folder, found {len(found)}; "
                    "pass the file"
                )
            return found[0]
        path = self.manifest.data.get("prompts")
        if path is None:
            raise UnlearnError(f"suite manifest {self.manifest.path}: no bundled prompt CSV; pass --data FILE")
        return path

    def _check_original(self, settings: RunSettings) -> None:
        original = settings.original_model
        if original is not None and original.is_dir():
            inspect_model_folder(original, allow_pickle=settings.allow_pickle, flag="--original-model")
        elif original is not None and not original.is_file():
            raise UnlearnError(f"--original-model {original}: no such file or folder")

    def _check_model(self, path: Path, flag: str) -> None:
        if path.is_dir():
            inspect_model_folder(path, allow_pickle=self.settings.allow_pickle, flag=flag)
        elif not path.is_file():
            raise UnlearnError(f"{flag} {path}: no such file or folder; pass a diffusers folder or checkpoint")

    def _concept(self, name: str) -> str | None:
        return self._by_key.get(concept_key(name))

    def _models(self, settings: RunSettings) -> tuple[dict[str, Path], bool, str | None]:
        """``{model key: path}``, whether the models are per concept, and the line saying how a
        ``--model DIR`` of per-concept folders was matched."""
        specs = list(settings.models) or ([str(settings.model)] if settings.model is not None else [])
        if not specs:
            if self.setting("images") is None:
                raise UnlearnError("--suite genmu needs --model PATH (or --images DIR with images made elsewhere)")
            return {"": Path()}, False, None
        if len(specs) == 1 and (Path(specs[0]).expanduser().exists() or "=" not in specs[0]):
            path = Path(specs[0]).expanduser()
            if path.is_dir() and not (path / "model_index.json").is_file():
                found = self._model_folders(path)
                if found is not None:
                    return found
            self._check_model(path, "--model")
            return {"": path}, False, None
        csv = self.data_files["prompts"]
        models: dict[str, Path] = {}
        for spec in specs:
            name, sep, raw = spec.partition("=")
            if not sep or not name.strip() or not raw.strip():
                raise UnlearnError(
                    f"--model {spec}: with several models, each is CONCEPT=PATH (one single-concept model per concept)"
                )
            concept = self._concept(name)
            if concept is None:
                raise UnlearnError(f"--model {spec}: {name.strip()!r} is not a concept of {csv}")
            if concept in models:
                raise UnlearnError(f"--model {spec}: {concept!r} has two models; pass one per concept")
            path = Path(raw.strip()).expanduser()
            self._check_model(path, f"--model {concept}=")
            models[concept] = path
        return models, True, None

    def _model_folders(self, folder: Path) -> tuple[dict[str, Path], bool, str] | None:
        """A folder of single-concept models, one sub-folder per concept (matched ignoring case,
        spaces, '_' and '-'); None when no sub-folder is named after a concept."""
        matched: dict[str, Path] = {}
        ignored = []
        for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            concept = self._concept(sub.name)
            if concept is None or concept in matched:
                ignored.append(sub.name)
            else:
                matched[concept] = sub
        if not matched:
            return None
        for path in matched.values():
            self._check_model(path, f"--model {folder}: {path.name}")
        matched = dict(sorted(matched.items(), key=lambda item: list(self.concept_prompts).index(item[0])))
        without = [c for c in self.concept_prompts if c not in matched]
        line = (
            f"--model {folder}: {len(matched)} single-concept models ("
            + ", ".join(f"{path.name} = {concept}" for concept, path in matched.items())
            + f"); no model for: {', '.join(without) or 'none'}"
            + (f"; ignored folders: {', '.join(ignored)}" if ignored else "")
        )
        return matched, True, line

    def _targets(self, manifest_targets: list[str], per_concept: bool) -> list[str]:
        """``--concept`` (each must be in the CSV, and with per-concept models have one); else the
        concepts that have a model; else the manifest's targets present in the CSV (the others
        named in one warning); else every concept of the CSV."""
        import difflib

        csv = self.data_files["prompts"]
        if self.setting("concepts"):
            targets = []
            for name in self.setting("concepts"):
                concept = self._concept(name)
                if concept is None:
                    close = difflib.get_close_matches(name, list(self.concept_prompts), n=1, cutoff=0.5)
                    hint = f" Did you mean: {close[0]}?" if close else ""
                    raise UnlearnError(f"--concept {name!r} is not a concept of {csv}.{hint}")
                if per_concept and concept not in self.model_paths:
                    raise UnlearnError(f"--concept {name!r} has no model: pass --model {concept}=PATH")
                targets.append(concept)
            return list(dict.fromkeys(targets))
        if per_concept:
            return list(self.model_paths)
        if not manifest_targets:
            return list(self.concept_prompts)
        present = [self._concept(name) for name in manifest_targets]
        missing = [name for name, concept in zip(manifest_targets, present) if concept is None]
        targets = list(dict.fromkeys(c for c in present if c is not None))
        if not targets:
            raise UnlearnError(
                f"suite manifest {self.manifest.path}: none of its targets is a concept of {csv} "
                f"({', '.join(manifest_targets[:3])}{', ...' if len(manifest_targets) > 3 else ''}); "
                "pass --concept NAME"
            )
        if missing:
            self.warn(
                f"{csv}: {len(missing)} of the {len(manifest_targets)} targets of the suite manifest have no row "
                f"and are not tested: {', '.join(missing)}"
            )
        return targets

    def _manifest_neighbours(self, target: str) -> list[str]:
        table = {concept_key(k): v for k, v in self.manifest.adjacent.items()}
        return [self._concept(n) or clean_name(n) for n in table.get(concept_key(target), ())]

    def _candidates(self) -> list[str]:
        """The concepts clip-text / clip-image rank: manifest [candidates], else the CSV's."""
        if not self.manifest.candidates:
            return list(self.concept_prompts)
        return list(dict.fromkeys(self._concept(n) or clean_name(n) for n in self.manifest.candidates))

    def _template_concepts(self) -> list[str]:
        """Concepts some check needs images of that have no CSV row (tested tagets' manifest
        neighbours, or candidates of clip-text / clip-image)."""
        if self.adjacent_from == "manifest":
            wanted = [n for t in self.targets for n in self._manifest_neighbours(t)]
        else:
            wanted = self._candidates()
        return list(dict.fromkeys(n for n in wanted if n not in self.concept_prompts))

    def _label_sets(self) -> dict[str, tuple[str, ...]]:
        """The classifier's labels of each concept under test, from the manifest's [labels]."""
        table = {concept_key(k): v for k, v in self.manifest.labels.items()}
        missing = [c for c in self.labels if concept_key(c) not in table]
        if missing:
            raise UnlearnError(
                f"suite manifest {self.manifest.path}: [labels] has no classifier labels for "
                f"{', '.join(missing)} (--judge classifier needs a label set for every concept)"
            )
        return {c: tuple(table[concept_key(c)]) for c in self.labels}

    def _adjacency(self) -> dict[str, tuple[str, ...]]:
        """The manifest's [adjacent] of each tested target (names matched to the CSV's)."""
        return {t: tuple(self._manifest_neighbours(t)) for t in self.targets}

    def _requests(self, model: str) -> list[ImageRequest]:
        """What model ``model`` draws: its targets' prompts of the three kinds, the direct
        prompts of every concept it is not meant to forget, the template prompt of each concept
        without a row. A prompt shared by two rows is one request per row (one image)."""
        seeds = [self.seed + i for i in range(self.images_per_prompt)]
        requests = []
        for concept in self.erased[model]:
            for prompt_type, prompts in self.concept_prompts[concept].prompts.items():
                requests += [ImageRequest(p, s, concept, prompt_type, "target") for p in prompts for s in seeds]
        for concept, entry in self.concept_prompts.items():
            if concept not in self.erased[model]:
                direct = entry.prompts["direct"]
                requests += [ImageRequest(p, s, concept, "direct", "retain") for p in direct for s in seeds]
        for concept in self.template_concepts:
            prompt = self.adjacent_template.format(concept=concept)
            requests += [ImageRequest(prompt, s, concept, "direct", "adjacent") for s in seeds]
        return requests

    def _original_pairs(self) -> list[tuple[str, int]]:
        """The original model draws every request of every model once."""
        return list(dict.fromkeys(pair for m in self.model_paths for pair in _pairs(self.requests[m])))

    def stress_images(self, part: str) -> list[tuple[str, str, Any]]:
        """``--stress relearn:data=retain``: --original-model's images of the prompts of every
        concept the model is not meant to forget (retain and adjacent requests), at the suite's
        seeds and generation settings, as (prompt and seed, prompt, image). Suriyakumar et al.
        fine-tune on adjacent and unrelated concepts; the run draws these images anyway."""
        if part != "retain":
            return super().stress_images(part)
        requests = [r for m in self.model_paths for r in self.requests[m] if r.role != "target"]
        pairs = _pairs(requests)
        if not pairs:
            raise UnlearnError(
                "--stress relearn:data=retain: every concept of the prompt CSV is a target; nothing is retained "
                "to relearn on: pass relearn:data=PATH (an imagefolder)"
            )
        images = self._images_for("original", pairs)
        return [(f"{prompt} (seed {seed})", prompt, images[(prompt, seed)]) for prompt, seed in pairs]

    def _read_image_index(self) -> dict[tuple[str, int], Path]:
        return read_image_index(self.setting("images"), self.warn)

    def concepts(self) -> list[str] | None:  # type: ignore[override]
        return self.targets

    @property
    def per_concept(self) -> bool:
        return "" not in self.model_paths

    def _images_input(self, model: str) -> str:
        return "images" if model == "" else f"images:{slug(model)}"

    def requires(self, spec: CheckSpec) -> tuple[str, ...]:
        """With per-concept models, a concept's own checks need only its model's images (one
        xdist group per model); run-level checks need every model's."""
        needed = METRICS.get(spec.metric).requires
        concept = spec.params.get("concept")
        if not self.per_concept or not concept or concept not in self.model_of:
            return needed
        return tuple(self._images_input(concept) if name == "images" else name for name in needed)

    # -- models ------------------------------------------------------------------------------------
    def _path_of(self, which: str) -> Path | None:
        if which == "original":
            return self.settings.original_model
        for model, name in self.which.items():
            if name == which:
                return self.model_paths[model]
        return None

    def _flag_of(self, which: str) -> str:
        if which == "original":
            return "--original-model"
        model = next((m for m, name in self.which.items() if name == which), "")
        return f"--model {model}=" if model else "--model"

    def pipeline(self, which: str) -> Any:
        if which not in self._pipes:
            from pytest_unlearn.engines.diffusion import load_pipeline

            path = self._path_of(which)
            flag = self._flag_of(which)
            if path is None or path == Path():
                raise UnlearnError(f"this check needs {flag} PATH")
            from pytest_unlearn.workers import split_cpu_threads

            self._pipes[which] = load_pipeline(
                path,
                device=self.settings.device,
                dtype=self.settings.dtype,
                allow_pickle=self.settings.allow_pickle,
                model_config=self.setting("model_config"),
                flag=flag.rstrip("="),
            )
            split_cpu_threads(str(self._pipes[which].device))
            self.pipeline_loads += 1
        return self._pipes[which]

    def _release(self, which: str) -> None:
        """Single-concept models are used one after the other: twenty SD pipelines do not fit
        on one GPU at once."""
        if self.per_concept and self._pipes.pop(which, None) is not None:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def judge(self) -> Any:
        if self._judge is None:
            # The factory resolves the device itself: a judge that needs no torch imports none.
            from pytest_unlearn.engines.judges import open_judge

            spec = self.classifier_model if self.judge_name == "classifier" else self.setting("clip_model")
            self._judge = open_judge(self.judge_name, str(spec or ""), self.settings.device)
        return self._judge

    def clip(self) -> Any:
        """The CLIP model behind CLIP scores and clip-text / clip-image neighbours: the judge
        itself, or with a classifier judge the ``clip_model`` setting (None when there is none)."""
        if self.judge_name != "classifier":
            return self.judge()
        if self.setting("clip_model") is None:
            return None
        if self._clip is None:
            from pytest_unlearn.engines.judges import open_judge

            self._clip = open_judge("clip", str(self.setting("clip_model")), self.settings.device)
        return self._clip

    def _clip_or_error(self, why: str) -> Any:
        clip = self.clip()
        if clip is None:
            raise UnlearnError(
                f"{why} needs a CLIP model: pass --setting clip_model=DIR (the judge is {self.judge_name})"
            )
        return clip

    def device(self) -> str | None:
        pipe = next(iter(self._pipes.values()), None)
        return str(pipe.device) if pipe is not None else self._resolved_device

    def model_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {}
        if self.per_concept:
            record["path"] = None
            record["models"] = {
                concept: {"path": str(path), "fingerprint": fingerprint(path)}
                for concept, path in self.model_paths.items()
            }
            if self.model_line:
                record["matched"] = self.model_line
        else:
            model = self.model_paths[""] if self.model_paths[""] != Path() else None
            record["path"] = str(model) if model else None
            record["fingerprint"] = fingerprint(model) if model else None
        if self.setting("images") is not None:
            record["images"] = str(self.setting("images"))
        if self.settings.original_model is not None:
            record["original"] = {
                "path": str(self.settings.original_model),
                "fingerprint": fingerprint(self.settings.original_model),
            }
        return record

    # -- inputs --------------------------------------------------------------------------------------
    def compute(self, name: str) -> None:
        if name == "images" and self.per_concept:
            for model in self.model_paths:
                self.ensure((self._images_input(model),))
        elif name == "images" or name.startswith("images:"):
            model = "" if name == "images" else self._model_by_slug.get(name.split(":", 1)[1])
            if model is None:
                raise UnlearnError(f"the genmu backend cannot compute {name!r}")
            self._ensure_adjacency()
            which = self.which[model]
            images = self._images_for(which, _pairs(self.requests[model]))
            presence, scores = self._judge_images(which, self.requests[model], images)
            self._release(which)
            self.inputs = replace(
                self.inputs,
                presence={**(self.inputs.presence or {}), **{(model, *k): v for k, v in presence.items()}},
                clip_scores={**(self.inputs.clip_scores or {}), model: scores},
                adjacent=self.adjacent,
            )
        elif name == "original_images":
            if self.settings.original_model is None:
                raise UnlearnError("the CLIP-score drop needs the original model: pass --original-model PATH")
            original = self._original_pairs()
            images = self._images_for("original", original)
            requests = [r for m in self.model_paths for r in self.requests[m]]
            _, scores = self._judge_pairs("original", requests, images)
            self.inputs = replace(
                self.inputs,
                original_clip_scores={
                    m: np.asarray([scores[(r.prompt, r.seed)] for r in self.requests[m] if r.role == "retain"])
                    for m in self.model_paths
                },
            )
        elif name == "weights":
            if self.settings.original_model is None:
                raise UnlearnError("the weight-change ratio needs the original model: pass --original-model PATH")
            if self.model_paths.get("") == Path():  # --images without --model
                raise UnlearnError("the weight-change ratio needs the model itself: pass --model PATH")
            changes = {m: self._weight_change(m) for m in self.model_paths}
            self.inputs = replace(self.inputs, weight_change={**(self.inputs.weight_change or {}), **changes})
        else:
            raise UnlearnError(f"the genmu backend cannot compute {name!r}")

    def _weight_change(self, model: str) -> gm.WeightChange:
        from pytest_unlearn.cache import make_key, model_digest

        which = self.which[model]

        def produce() -> dict[str, Any]:
            from pytest_unlearn.engines.diffusion import named_parameters, weight_change

            change = weight_change(named_parameters(self.pipeline("original")), named_parameters(self.pipeline(which)))
            self._release(which)
            return {
                "l2": change.l2,
                "parameters": change.parameters,
                "per_component": change.per_component,
                "per_layer": change.per_layer,
            }

        key = make_key(
            "genmu.weight_change",
            original=model_digest(self.settings.original_model),
            model=model_digest(self.model_paths[model]),
        )
        raw = self.cache.get_or_create_json("genmu-weights", key, produce)
        return gm.WeightChange(
            l2=raw["l2"],
            parameters=raw["parameters"],
            per_component={k: (v[0], v[1]) for k, v in raw["per_component"].items()},
            per_layer={k: (v[0], v[1]) for k, v in raw["per_layer"].items()},
        )

    def _ensure_adjacency(self) -> None:
        """clip-text / clip-image neighbours, chosen once before any image is judged."""
        if self._adjacency_ready:
            return
        from pytest_unlearn.genmu.adjacency import fade_neighbours, nearest_concepts

        candidates = self._candidates()
        excluded = {t: set(self.erased[self.model_of[t]]) for t in self.targets}
        if all(not (set(candidates) - excluded[t]) for t in self.targets):
            raise UnlearnError(
                f"adjacent_from = {self.adjacent_from}: every candidate concept is a target, none is adjacent"
            )
        if self.adjacent_from == "clip-text":
            names = list(dict.fromkeys([*self.targets, *candidates]))
            texts = self._clip_or_error("adjacent_from = clip-text").embed_texts(
                [self.template.format(concept=c) for c in names]
            )
            vectors = dict(zip(names, texts))
            self.adjacent = nearest_concepts(self.targets, candidates, vectors, self.adjacent_k, excluded)
        else:
            features = self._candidate_features([*self.targets, *candidates])
            self.adjacent, self.neighbour_scores = fade_neighbours(
                self.targets, candidates, features, self.adjacent_k, excluded, self._logit_scale()
            )
        self._adjacency_ready = True
        self.inputs = replace(self.inputs, adjacent=self.adjacent)

    def _logit_scale(self) -> float:
        from pytest_unlearn.engines.judges import logit_scale

        return logit_scale(self._clip_or_error("adjacent_from = clip-image"))

    def _candidate_features(self, concepts: list[str]) -> dict[str, np.ndarray]:
        """The judge's image features of the original's images of each concept (its direct
        prompts, or the template), cached with the images' pixels as key."""
        from pytest_unlearn.cache import make_key

        pairs = self._original_pairs()
        images = self._images_for("original", pairs)
        wanted: dict[str, list[tuple[str, int]]] = {c: [] for c in concepts}
        for m in self.model_paths:
            for r in self.requests[m]:
                if r.concept in wanted and r.prompt_type == "direct" and (r.prompt, r.seed) not in wanted[r.concept]:
                    wanted[r.concept].append((r.prompt, r.seed))
        order = [pair for c in concepts for pair in wanted[c]]
        key = make_key(
            "genmu.candidate_features",
            pixels=self._pixel_digest([images[p] for p in order]),
            judge=self.judge_name,
            spec=self.setting("clip_model") or "",
            weights=self._judge_weights(),
            pairs=[list(p) for p in order],
            device=self._device_kind(),
        )

        def produce() -> list[list[float]]:
            clip = self._clip_or_error("adjacent_from = clip-image")
            return clip.embed_images([images[p] for p in order]).astype(np.float64).tolist()

        rows = np.asarray(self.cache.get_or_create_json("genmu-features", key, produce), dtype=np.float64)
        out, start = {}, 0
        for concept in concepts:
            out[concept] = rows[start : start + len(wanted[concept])]
            start += len(wanted[concept])
        return out

    def _same_weights(self, which: str, other: str) -> bool:
        """Whether two models hold the same weight files (a baseline run against itself)."""
        a, b = self._path_of(which), self._path_of(other)
        if a is None or b is None or a == Path() or b == Path() or self.image_index is not None:
            return False
        return a.resolve() == b.resolve() or fingerprint(a) == fingerprint(b)

    def _images_for(self, which: str, pairs: list[tuple[str, int]]) -> dict[tuple[str, int], Any]:
        """The images of ``pairs`` drawn by ``which`` (memoised for the run)."""
        have = self._images.get(which, {})
        if all(p in have for p in pairs):
            return have
        if which == "unlearned" and self.image_index is not None:
            made = self._load_external_images(pairs)
        else:
            made = None
            for other, images in self._images.items():
                if other != which and all(p in images for p in pairs) and self._same_weights(which, other):
                    # Same weights, same (prompt, seed) requests, same settings: the images would be
                    # generated again bit for bit, so the run reuses them.
                    made = {p: images[p] for p in pairs}
                    break
            if made is None:
                made = dict(zip(pairs, self._generate_cached(which, pairs)))
        self._images[which] = {**have, **made}
        return self._images[which]

    def _device_kind(self) -> str:
        """``cuda``/``cpu``/``mps`` as ``--device`` resolves here (part of the cache keys)."""
        from pytest_unlearn.loading import resolve_device

        self._resolved_device = self._resolved_device or resolve_device(self.settings.device)
        return self._resolved_device.split(":")[0]

    def _generation_key(self, which: str, batch: list[tuple[str, int]]) -> str:
        """An image batch depends on the model's content, the (prompt, seed) pairs and their
        batching (batched UNet passes are not bitwise batch-invariant), the settings, the device
        kind and the dtype (float16 on CUDA by default)."""
        from pytest_unlearn.cache import make_key, model_digest

        if which not in self._model_digests:
            path = self._path_of(which)
            if path is None or path == Path():
                raise UnlearnError(f"this check needs {self._flag_of(which)} PATH")
            self._model_digests[which] = model_digest(path)
        g = self.generation
        return make_key(
            "genmu.images",
            model=self._model_digests[which],
            batch=[list(pair) for pair in batch],
            settings=g.record(),
            size=[g.width, g.height],
            device=self._device_kind(),
            dtype=self.settings.dtype,
        )

    def _generate_cached(self, which: str, pairs: list[tuple[str, int]]) -> list[Any]:
        """Generate batch by batch, each batch a cache entry: a rerun reuses every finished
        batch (also of a run killed midway) and regenerates the rest with the same batching."""
        import time

        from PIL import Image

        from pytest_unlearn.cache import decode_arrays, encode_arrays

        size = self.settings.batch_size
        spent = {"load": 0.0, "generate": 0.0}

        def produce(batch: list[tuple[str, int]]) -> bytes:
            from pytest_unlearn.engines.diffusion import generate

            started = time.perf_counter()
            pipe = self.pipeline(which)
            spent["load"] += time.perf_counter() - started
            started = time.perf_counter()
            made = generate(pipe, batch, self.generation, batch_size=size, source=self._path_of(which))
            self.generated_images += len(made)
            spent["generate"] += time.perf_counter() - started
            return encode_arrays([np.asarray(image.convert("RGB")) for image in made])

        from pytest_unlearn.progress import PhaseProgress

        images: list[Any] = []
        before = self.generated_images
        progress = PhaseProgress(
            self.progress,
            f"{self.manifest.name} {which} images",
            len(pairs),
            detail=lambda: f"{self.generated_images - before} generated, the rest from the cache",
        )
        for start in range(0, len(pairs), size):
            batch = pairs[start : start + size]
            key = self._generation_key(which, batch)
            data = self.cache.get_or_create("genmu-images", key, ".npz", lambda batch=batch: produce(batch))
            # Cached or not, images go through the same uint8 arrays: a warm run sees the same pixels.
            images.extend(Image.fromarray(array) for array in decode_arrays(data))
            progress.advance(len(batch))
        self.timings[f"load_{which}"] = spent["load"]
        self.timings[f"generate_{which}"] = spent["generate"]
        return images

    def _load_external_images(self, pairs: list[tuple[str, int]]) -> dict[tuple[str, int], Any]:
        from PIL import Image, UnidentifiedImageError

        missing = [p for p in pairs if p not in self.image_index]
        if missing:
            raise UnlearnError(
                f"--images {self.setting('images')}: no image for {len(missing)} of {len(pairs)} "
                f"(prompt, seed) pairs, e.g. ({missing[0][0]!r}, {missing[0][1]}); generate them all"
            )
        images = {}
        for pair in pairs:
            path = self.image_index[pair]
            try:
                with Image.open(path) as handle:
                    images[pair] = handle.convert("RGB")
            except (OSError, UnidentifiedImageError) as exc:
                raise UnlearnError(f"--images: cannot read {path} ({exc}); replace the file or regenerate it") from None
        return images

    def _judge_pairs(
        self, which: str, requests: list[ImageRequest], images: dict[tuple[str, int], Any]
    ) -> tuple[dict[tuple[str, int], str], dict[tuple[str, int], float]]:
        """The judge's label and the CLIP score of each distinct image of ``requests`` (each
        judged once, whatever the number of CSV rows it serves); the images are written with
        their index, one record per image."""
        pairs = _pairs(requests)
        present, shown, scores = self._judged([images[p] for p in pairs], self.labels, [p for p, _ in pairs])
        seen = {pair: set(concepts) for pair, concepts in zip(pairs, present)}
        label = dict(zip(pairs, shown))
        score = {pair: float(value) for pair, value in zip(pairs, scores)}
        records: dict[tuple[str, int], dict[str, Any]] = {}
        tag = artifact_tag(self._path_of(which))
        for request in requests:
            pair = (request.prompt, request.seed)
            if pair in records:
                records[pair]["rows"] += 1
                continue
            records[pair] = {
                # Relative to the index, so the folder is a valid --images DIR as it is.
                # The model's fingerprint in the name: a second run into the same folder
                # never replaces the files an earlier report links to.
                "file": f"{tag}-{slug(request.concept)}-{request.prompt_type}-{request.key}.png",
                "prompt": request.prompt,
                "seed": request.seed,
                "concept": request.concept,
                "role": request.role,
                "prompt_type": request.prompt_type,
                "model": which,
                "rows": 1,  # CSV rows (and concepts) this image counts for
                "judge": {
                    "predicted": label[pair],
                    "present": request.concept in seen[pair],
                    "clip_score": None if np.isnan(score[pair]) else score[pair],
                },
            }
        self._write_images(which, [images[p] for p in records], list(records.values()))
        return seen, score

    def _judge_images(
        self, which: str, requests: list[ImageRequest], images: dict[tuple[str, int], Any]
    ) -> tuple[dict[tuple[str, str], np.ndarray], np.ndarray]:
        """Presence per (concept, prompt type), one entry per request, and the retention CLIP scores."""
        seen, score = self._judge_pairs(which, requests, images)
        presence: dict[tuple[str, str], list[float]] = {}
        for request in requests:
            present = request.concept in seen[(request.prompt, request.seed)]
            presence.setdefault((request.concept, request.prompt_type), []).append(float(present))
        retain = [score[(r.prompt, r.seed)] for r in requests if r.role == "retain"]
        return {k: np.asarray(v) for k, v in presence.items()}, np.asarray(retain, dtype=np.float64)

    def _write_images(self, which: str, images: list[Any], records: list[dict[str, Any]]) -> None:
        """The images as PNG with their ``images.jsonl`` index under ``<artifacts>/images/<which>/``."""
        folder = self.settings.artifacts / "images" / which
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for image, record in zip(images, records):
                image.save(folder / record["file"])
            index = folder / "images.jsonl"
            index.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
        except OSError as exc:
            # The verdicts are computed (minutes of generation): keep them, say what is missing.
            self.warn(
                f"--artifacts {self.settings.artifacts}: cannot write the {which} images ({exc.strerror or exc}); "
                "the scores are kept, the images and the HTML report are not: pass a writable folder to keep them"
            )
            return
        self._records[which] = records
        self._artifact_files[f"images_{which}"] = str(index)

    def _pixel_digest(self, images: list[Any]) -> str:
        pixels = hashlib.sha256()
        for image in images:
            array = np.asarray(image.convert("RGB"))
            pixels.update(str(array.shape).encode() + array.tobytes())
        return pixels.hexdigest()

    def _judge_weights(self) -> str | None:
        from pytest_unlearn.cache import model_digest

        spec = self.setting("clip_model") or ""
        spec_path = Path(spec.split(":")[-1]) if spec else None
        return model_digest(spec_path) if spec_path is not None and spec_path.exists() else None

    def _judged(
        self, images: list[Any], labels: list[str], prompts: list[str]
    ) -> tuple[list[list[str]], list[str], np.ndarray]:
        """For each image: the concepts the judge sees in it, what it saw (the label shown in
        the report) and its CLIP score with its prompt (NaN without a CLIP model), cached.

        The key is the pixels, the judge and its weights, the labels, template and prompts: a
        warm rerun neither loads nor runs the judge. Cached or not, results go through the same
        JSON round trip, so a warm run sees the same numbers.
        """
        from pytest_unlearn.cache import make_key, model_digest

        spec = self.setting("clip_model") or ""
        extra = {}
        # open_clip:CONFIG.json:WEIGHTS: the architecture (and tokenizer) the weights are read as.
        config = Path(spec.split(":")[1]) if spec.startswith("open_clip:") and spec.count(":") >= 2 else None
        if config is not None and config.suffix == ".json" and config.is_file():
            extra["model_config"] = hashlib.sha256(config.read_bytes()).hexdigest()
        classifier = {}
        if self.judge_name == "classifier":
            classifier = {
                "classifier": model_digest(Path(self.classifier_model)),
                "top_k": self.classifier_top_k,
                "label_sets": self.label_sets,
            }
        key = make_key(
            "genmu.judge",
            pixels=self._pixel_digest(images),
            judge=self.judge_name,
            spec=self.setting("clip_model") or "",
            weights=self._judge_weights(),
            labels=labels,
            template=self.template,
            prompts=prompts,
            device=self._device_kind(),
            **extra,
            **classifier,
        )

        def produce() -> dict[str, list[Any]]:
            from pytest_unlearn.engines.judges import classify, present_concepts

            if self.judge_name == "classifier":
                top = self.judge().top_labels(images, self.classifier_top_k)
                present = [present_concepts(t, labels, self.label_sets) for t in top]
                shown = [t[0] for t in top]
            else:
                predicted = classify(self.judge(), images, labels, self.template)
                present = [[labels[int(i)]] for i in predicted]
                shown = [labels[int(i)] for i in predicted]
            clip = self.clip()
            if clip is None:
                scores: list[float | None] = [None] * len(images)
            else:
                scores = [float(x) for x in gm.clip_score(clip.embed_images(images), clip.embed_texts(prompts))]
            return {"present": present, "shown": shown, "scores": scores}

        judged = self.cache.get_or_create_json("genmu-judge", key, produce)
        scores = np.asarray([np.nan if x is None else x for x in judged["scores"]], dtype=np.float64)
        return judged["present"], judged["shown"], scores

    def export_extra(self) -> dict[str, Any]:
        return {"records": self._records, "neighbour_scores": self.neighbour_scores}

    def import_extra(self, extra: dict[str, Any]) -> None:
        self._records.update(extra.get("records", {}))
        self.neighbour_scores.update(extra.get("neighbour_scores", {}))

    def metric_inputs(self) -> gm.GenmuInputs:
        return self.inputs

    def aggregates(self) -> dict[str, Any]:
        out = gm.aggregates(self.inputs)
        if self.neighbour_scores:
            # clip-image: FADE's score (logit scale × cosine of mean image features) of every candidate.
            out["adjacent_scores"] = self.neighbour_scores
        return out

    def artifacts(self) -> dict[str, str]:
        return dict(self._artifact_files)

    def header_lines(self) -> list[str]:
        g = self.generation
        images = sum(len(_pairs(r)) for r in self.requests.values())
        models = f"{len(self.model_paths)} single-concept models, " if self.per_concept else ""
        lines = [
            f"unlearn: concepts {len(self.concept_prompts)}, targets {', '.join(self.targets)}; "
            f"{models}{images} images ({self.images_per_prompt} per prompt, seeds from {self.seed}); "
            f"steps={g.steps} guidance={g.guidance:g} resolution={g.resolution} scheduler={g.scheduler}; "
            f"judge={self.judge_name}",
        ]
        if self.model_line:
            lines.append(f"unlearn: {self.model_line}")
        return lines

    def settings_record(self) -> dict[str, Any]:
        return {
            **self.generation.record(),
            "images_per_prompt": self.images_per_prompt,
            "image_seed": self.seed,
            "judge": self.judge_name,
            "judge_template": self.template,
            "judge_model": self.classifier_model
            if self.judge_name == "classifier"
            else str(self.setting("clip_model")),
            "classifier_top_k": self.classifier_top_k if self.judge_name == "classifier" else None,
            "adjacent_from": self.adjacent_from,
            "adjacent_k": self.adjacent_k if self.adjacent_from != "manifest" else None,
            "adjacent_template": self.adjacent_template,
            "clip_model": str(self.setting("clip_model")),
            "clip_score_convention": "100*cos(image, prompt), not clamped at 0",
            "targets": self.targets,
            "data": self.data_files,
            "batch_size": self.settings.batch_size,
            "device": self.settings.device,
            "dtype": self.settings.dtype,
        }

    # -- report ----------------------------------------------------------------------------------------
    # -- the user's own tests ---------------------------------------------------------------
    USER_API = ("model", "original", "images", "judge", "data")

    def _which_for(self, model: str | None) -> str:
        """The image set of ``model``: None the one unlearned model, "original", or a concept
        whose single-concept model it is."""
        if model == "original":
            return "original"
        if model is None:
            if self.per_concept:
                raise UnlearnError(
                    "several models (--model CONCEPT=PATH): name one, e.g. unlearn_images(prompts, seeds, model="
                    f"{next(iter(self.model_paths))!r})"
                )
            return self.which[""]
        key = self._concept(model)
        if not self.per_concept or key not in self.which:
            raise UnlearnError(f"no model of concept {model!r}; the models are {', '.join(self.model_paths) or 'one'}")
        return self.which[key]

    def user_model(self, role: str = "model") -> Any:
        """The diffusion pipeline, loaded once and shared with the suite's images."""
        return self.pipeline("original" if role == "original" else self._which_for(None))

    def user_images(self, prompts: list[str], seeds: list[int], model: str | None = None) -> list[Any]:
        """One image per (prompt, seed), prompts outer, with the suite's generation settings,
        through the artifact cache and shared with the suite's own images."""
        which = self._which_for(model)
        pairs = [(str(p), int(s)) for p in prompts for s in seeds]
        images = self._images_for(which, pairs)
        return [images[pair] for pair in pairs]

    def user_judge(self, images: list[Any], prompts: list[str]) -> list[JudgedImage]:
        """What the suite's judge sees in each image (among its concepts) and the image's CLIP
        score with its prompt (None without a CLIP model), through the cache."""
        if len(prompts) != len(images):
            raise UnlearnError(
                f"unlearn_judge: {len(images)} images but {len(prompts)} prompts; pass one prompt per image"
            )
        present, shown, scores = self._judged(list(images), self.labels, list(prompts))
        return [
            JudgedImage(tuple(sees), label, None if np.isnan(score) else float(score))
            for sees, label, score in zip(present, shown, scores)
        ]

    def user_data(self) -> GenmuData:
        return GenmuData(concepts=dict(self.concept_prompts), targets=list(self.targets), adjacent=dict(self.adjacent))

    def report_sections(self, card: dict[str, Any], report: Path) -> list[str]:
        """Image grids per model and concept (prompt kind × seed, original beside unlearned),
        after the report's check table."""
        shown = [(m, self.which[m]) for m in self.model_paths if self.which[m] in self._records]
        if not shown:
            return []
        from pytest_unlearn.report import Thumbnails

        thumbnails = Thumbnails(report)
        root = self.settings.artifacts
        original = {(r["prompt"], r["seed"]): r for r in self._records.get("original", [])}
        parts = [f"<h2>Images: {html.escape(', '.join(self.targets))}</h2>"]
        for model, which in shown:
            if model:
                parts.append(f"<h1>model of {html.escape(model)} ({html.escape(str(self.model_paths[model]))})</h1>")
            erased = self.erased[model]
            for concept in list(erased) + [c for c in self.labels if c not in erased]:
                rows = [r for r in self._records[which] if r["concept"] == concept]
                if not rows:
                    continue
                role = "target (should be absent)" if concept in erased else "retained (should be present)"
                parts.append(f"<h2>{html.escape(concept)} — {role}</h2><table>")
                for row in rows:
                    cells = []
                    for label, record in (("original", original.get((row["prompt"], row["seed"]))), (which, row)):
                        if record is None:
                            continue
                        # Embedded (the page renders anywhere), linked to the full-size file.
                        image = Path(root, "images", label, record["file"])
                        css = "present" if record["judge"]["present"] else "absent"
                        cells.append(
                            f"<td>{thumbnails.img(image, css, record['prompt'])}<br>{label.split('-')[0]}: judge sees "
                            f"{html.escape(record['judge']['predicted'])}</td>"
                        )
                    parts.append(
                        f"<tr><td>{html.escape(row['prompt_type'])}<br>seed {row['seed']}<br>"
                        f"<i>{html.escape(row['prompt'])}</i></td>{''.join(cells)}</tr>"
                    )
                parts.append("</table>")
        parts.append(thumbnails.note())
        return ["\n".join(parts)]
