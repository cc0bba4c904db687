"""The Genμ backend: which images are needed, generating each once, judging, weights, reports.

Inputs (each computed at most once per run, shared by every check):
- ``images``: every (prompt, seed) the checks need, generated with ``--model`` (or read from
  ``--images``), judged for concept presence, retention images CLIP-scored;
- ``original_images``: the same requests generated with ``--original-model``;
- ``weights``: the weight change of ``--model`` against ``--original-model``.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.evaluation import Backend, RunSettings
from pytest_unlearn.fingerprint import fingerprint
from pytest_unlearn.genmu import metrics as gm
from pytest_unlearn.genmu.data import ConceptPrompts, load_prompt_csv
from pytest_unlearn.genmu.generation import generation_settings, read_image_index, typed_setting
from pytest_unlearn.loading import inspect_model_folder
from pytest_unlearn.manifest import SuiteManifest, slug
from pytest_unlearn.registry import JUDGES

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
    # "manifest": the [adjacent] table; "clip": each target's adjacent_k nearest non-target
    # concepts by the judge's text embeddings (how the FADE baseline picks them).
    "adjacent_from": "manifest",
    "adjacent_k": 2,
}


@dataclass(frozen=True)
class ImageRequest:
    """One image a check needs: its prompt and seed, and what it is evidence of."""

    prompt: str
    seed: int
    concept: str
    prompt_type: str  # direct / indirect / adversarial
    role: str  # target / retain

    @property
    def key(self) -> str:
        return hashlib.sha256(f"{self.prompt}\0{self.seed}".encode()).hexdigest()[:16]


def _setting(settings: dict[str, Any], key: str, kind: type, where: str) -> Any:
    return typed_setting({**DEFAULT_SETTINGS, **settings}, key, kind, where)


class GenmuBackend(Backend):
    #: What --setting may override (besides the manifest's own [settings]).
    SETTINGS = (*DEFAULT_SETTINGS, "seed", "bootstrap_samples")

    def __init__(self, manifest: SuiteManifest, settings: RunSettings) -> None:
        super().__init__(manifest, settings)
        where = f"suite manifest {manifest.path}"
        merged = {**DEFAULT_SETTINGS, **manifest.settings, **settings.overrides}
        self.generation = generation_settings(merged, where)
        self.images_per_prompt = _setting(merged, "images_per_prompt", int, where)
        self.seed = _setting(merged, "seed", int, where)
        self.judge_name = _setting(merged, "judge", str, where)
        self.template = _setting(merged, "judge_template", str, where)
        try:
            JUDGES.get(self.judge_name)  # an unknown judge is a usage error, before any image
        except UnlearnError as exc:
            raise UnlearnError(f"--judge: {exc}") from None

        csv_path = self._prompt_csv()
        self.concept_prompts: dict[str, ConceptPrompts] = load_prompt_csv(csv_path, manifest.columns)
        self.data_files = {"prompts": str(csv_path)}
        self.targets = self._targets(merged.get("targets") or [])
        self.adjacent_from = _setting(merged, "adjacent_from", str, where)
        self.adjacent_k = _setting(merged, "adjacent_k", int, where)
        if self.adjacent_from not in ("manifest", "clip"):
            raise UnlearnError(f"{where}: adjacent_from must be manifest or clip, got {self.adjacent_from!r}")
        if self.adjacent_k < 1:
            raise UnlearnError(f"{where}: adjacent_k must be at least 1, got {self.adjacent_k}")
        # With "clip" the neighbours are chosen once the judge is loaded (see _nearest_adjacency).
        self.adjacent = self._adjacency() if self.adjacent_from == "manifest" else {}

        if settings.images is None and settings.model is None:
            raise UnlearnError("--suite genmu needs --model PATH (or --images DIR with images made elsewhere)")
        if settings.model is not None and settings.model.is_dir():
            inspect_model_folder(settings.model, allow_pickle=settings.allow_pickle)
        elif settings.model is not None and not settings.model.is_file():
            raise UnlearnError(
                f"--model {settings.model}: no such file or folder; pass a diffusers folder or checkpoint"
            )
        if settings.original_model is not None and settings.original_model.is_dir():
            inspect_model_folder(settings.original_model, allow_pickle=settings.allow_pickle, flag="--original-model")
        elif settings.original_model is not None and not settings.original_model.is_file():
            raise UnlearnError(f"--original-model {settings.original_model}: no such file or folder")
        if settings.clip_model is None and self.judge_name == "clip":
            raise UnlearnError(
                "--suite genmu needs a CLIP judge: pass --clip-model DIR (a transformers CLIP folder) "
                "or --clip-model open_clip:MODEL:WEIGHTS"
            )
        if self.judge_name == "clip" and settings.clip_model.startswith("open_clip:"):
            from pytest_unlearn.genmu.judges import parse_open_clip_spec

            parse_open_clip_spec(settings.clip_model)  # its form and files, before any image is made
        self.image_index = self._read_image_index() if settings.images else None

        self.requests = self._requests()
        self.inputs = gm.GenmuInputs(targets=tuple(self.targets), adjacent=self.adjacent)
        self._pipes: dict[str, Any] = {}
        self._judge: Any = None
        self._records: dict[str, list[dict[str, Any]]] = {}
        self._images: dict[str, list[Any]] = {}
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

    def _targets(self, manifest_targets: list[str]) -> list[str]:
        requested = self.settings.concepts or manifest_targets or list(self.concept_prompts)
        by_lower = {name.lower(): name for name in self.concept_prompts}
        targets = []
        for name in requested:
            if name.lower() not in by_lower:
                import difflib

                close = difflib.get_close_matches(name, list(self.concept_prompts), n=1, cutoff=0.5)
                hint = f" Did you mean: {close[0]}?" if close else ""
                raise UnlearnError(f"--concept {name!r} is not a concept of {self.data_files['prompts']}.{hint}")
            targets.append(by_lower[name.lower()])
        return targets

    def _nearest_adjacency(self) -> dict[str, tuple[str, ...]]:
        from pytest_unlearn.genmu.adjacency import nearest_concepts

        concepts = list(self.concept_prompts)
        if len(concepts) - len(self.targets) < 1:
            raise UnlearnError("adjacent_from = clip: every concept of the prompt CSV is a target, none is adjacent")
        texts = self.judge().embed_texts([self.template.format(concept=c) for c in concepts])
        return nearest_concepts(self.targets, concepts, texts, self.adjacent_k)

    def _adjacency(self) -> dict[str, tuple[str, ...]]:
        table = self.manifest.adjacent
        adjacency = {}
        for concept, neighbours in table.items():
            for neighbour in neighbours:
                if neighbour not in self.concept_prompts:
                    raise UnlearnError(
                        f"suite manifest {self.manifest.path}: adjacent concept {neighbour!r} of {concept!r} "
                        f"has no prompts in {self.data_files['prompts']}"
                    )
            adjacency[concept] = tuple(neighbours)
        return adjacency

    def _requests(self) -> list[ImageRequest]:
        seeds = [self.seed + i for i in range(self.images_per_prompt)]
        requests: dict[tuple[str, int], ImageRequest] = {}
        for concept in self.targets:
            for prompt_type, prompts in self.concept_prompts[concept].prompts.items():
                for prompt in prompts:
                    for seed in seeds:
                        requests.setdefault((prompt, seed), ImageRequest(prompt, seed, concept, prompt_type, "target"))
        for concept, entry in self.concept_prompts.items():
            if concept in self.targets:
                continue
            for prompt in entry.prompts["direct"]:
                for seed in seeds:
                    requests.setdefault((prompt, seed), ImageRequest(prompt, seed, concept, "direct", "retain"))
        return list(requests.values())

    def _read_image_index(self) -> dict[tuple[str, int], Path]:
        return read_image_index(self.settings.images, self.warn)

    def concepts(self) -> list[str] | None:  # type: ignore[override]
        return self.targets

    # -- models ------------------------------------------------------------------------------------
    def pipeline(self, which: str) -> Any:
        if which not in self._pipes:
            from pytest_unlearn.genmu.diffusion import load_pipeline

            path = self.settings.model if which == "unlearned" else self.settings.original_model
            flag = "--model" if which == "unlearned" else "--original-model"
            if path is None:
                raise UnlearnError(f"this check needs {flag} PATH")
            from pytest_unlearn.workers import split_cpu_threads

            self._pipes[which] = load_pipeline(
                path,
                device=self.settings.device,
                dtype=self.settings.dtype,
                allow_pickle=self.settings.allow_pickle,
                model_config=self.settings.model_config,
                flag=flag,
            )
            split_cpu_threads(str(self._pipes[which].device))
            self.pipeline_loads += 1
        return self._pipes[which]

    def judge(self) -> Any:
        if self._judge is None:
            # The factory resolves the device itself: a judge that needs no torch imports none.
            factory = JUDGES.get(self.judge_name)
            self._judge = factory(self.settings.clip_model or "", self.settings.device)
        return self._judge

    def device(self) -> str | None:
        pipe = self._pipes.get("unlearned") or self._pipes.get("original")
        return str(pipe.device) if pipe is not None else self._resolved_device

    def model_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"path": str(self.settings.model) if self.settings.model else None}
        record["fingerprint"] = fingerprint(self.settings.model) if self.settings.model else None
        if self.settings.images is not None:
            record["images"] = str(self.settings.images)
        if self.settings.original_model is not None:
            record["original"] = {
                "path": str(self.settings.original_model),
                "fingerprint": fingerprint(self.settings.original_model),
            }
        return record

    # -- inputs --------------------------------------------------------------------------------------
    def compute(self, name: str) -> None:
        if name == "images":
            images = self._images_for("unlearned")
            presence, scores = self._judge_images("unlearned", images)
            self.inputs = replace(self.inputs, presence=presence, clip_scores=scores)
            if self.adjacent_from == "clip":
                self.adjacent = self._nearest_adjacency()
                self.inputs = replace(self.inputs, adjacent=self.adjacent)
        elif name == "original_images":
            if self.settings.original_model is None:
                raise UnlearnError("the CLIP-score drop needs the original model: pass --original-model PATH")
            images = self._images_for("original")
            _, scores = self._judge_images("original", images)
            self.inputs = replace(self.inputs, original_clip_scores=scores)
        elif name == "weights":
            if self.settings.original_model is None:
                raise UnlearnError("the weight-change ratio needs the original model: pass --original-model PATH")
            if self.settings.model is None:
                raise UnlearnError("the weight-change ratio needs the model itself: pass --model PATH")
            from pytest_unlearn.cache import make_key, model_digest

            def produce() -> dict[str, Any]:
                from pytest_unlearn.genmu.diffusion import named_parameters, weight_change

                change = weight_change(
                    named_parameters(self.pipeline("original")), named_parameters(self.pipeline("unlearned"))
                )
                return {
                    "l2": change.l2,
                    "parameters": change.parameters,
                    "per_component": change.per_component,
                    "per_layer": change.per_layer,
                }

            key = make_key(
                "genmu.weight_change",
                original=model_digest(self.settings.original_model),
                model=model_digest(self.settings.model),
            )
            raw = self.cache.get_or_create_json("genmu-weights", key, produce)
            change = gm.WeightChange(
                l2=raw["l2"],
                parameters=raw["parameters"],
                per_component={k: (v[0], v[1]) for k, v in raw["per_component"].items()},
                per_layer={k: (v[0], v[1]) for k, v in raw["per_layer"].items()},
            )
            self.inputs = replace(self.inputs, weight_change=change)
        else:
            raise UnlearnError(f"the genmu backend cannot compute {name!r}")

    def _same_weights(self) -> bool:
        """Whether --model and --original-model hold the same weight files (a baseline run)."""
        model, original = self.settings.model, self.settings.original_model
        if model is None or original is None or self.image_index is not None:
            return False
        return model.resolve() == original.resolve() or fingerprint(model) == fingerprint(original)

    def _images_for(self, which: str) -> list[Any]:
        other = "original" if which == "unlearned" else "unlearned"
        if which == "unlearned" and self.image_index is not None:
            images = self._load_external_images()
        elif other in self._images and self._same_weights():
            # Same weights, same (prompt, seed) requests, same settings: the images would be
            # generated again bit for bit, so the run reuses them (checking a model against itself).
            images = self._images[other]
        else:
            images = self._generate_cached(which)
        self._images[which] = images
        return images

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
            path = self.settings.model if which == "unlearned" else self.settings.original_model
            if path is None:
                flag = "--model" if which == "unlearned" else "--original-model"
                raise UnlearnError(f"this check needs {flag} PATH")
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

    def _generate_cached(self, which: str) -> list[Any]:
        """Generate batch by batch, each batch a cache entry: a rerun reuses every finished
        batch (also of a run killed midway) and regenerates the rest with the same batching."""
        import time

        from PIL import Image

        from pytest_unlearn.cache import decode_arrays, encode_arrays

        pairs = [(r.prompt, r.seed) for r in self.requests]
        size = self.settings.batch_size
        spent = {"load": 0.0, "generate": 0.0}

        def produce(batch: list[tuple[str, int]]) -> bytes:
            from pytest_unlearn.genmu.diffusion import generate

            started = time.perf_counter()
            pipe = self.pipeline(which)
            spent["load"] += time.perf_counter() - started
            started = time.perf_counter()
            made = generate(pipe, batch, self.generation, batch_size=size)
            self.generated_images += len(made)
            spent["generate"] += time.perf_counter() - started
            return encode_arrays([np.asarray(image.convert("RGB")) for image in made])

        images: list[Any] = []
        reported, generated_before = -1, self.generated_images
        for start in range(0, len(pairs), size):
            batch = pairs[start : start + size]
            key = self._generation_key(which, batch)
            data = self.cache.get_or_create("genmu-images", key, ".npz", lambda batch=batch: produce(batch))
            # Cached or not, images go through the same uint8 arrays: a warm run sees the same pixels.
            images.extend(Image.fromarray(array) for array in decode_arrays(data))
            tenth = 10 * len(images) // len(pairs)
            if tenth > reported:  # a line per tenth of the way, not per batch
                reported = tenth
                self.progress(
                    f"unlearn: {which} images {len(images)}/{len(pairs)} "
                    f"({self.generated_images - generated_before} generated, the rest from the cache)"
                )
        self.timings[f"load_{which}"] = spent["load"]
        self.timings[f"generate_{which}"] = spent["generate"]
        return images

    def _load_external_images(self) -> list[Any]:
        from PIL import Image, UnidentifiedImageError

        missing = [r for r in self.requests if (r.prompt, r.seed) not in self.image_index]
        if missing:
            raise UnlearnError(
                f"--images {self.settings.images}: no image for {len(missing)} of {len(self.requests)} "
                f"(prompt, seed) pairs, e.g. ({missing[0].prompt!r}, {missing[0].seed}); generate them all"
            )
        images = []
        for request in self.requests:
            path = self.image_index[(request.prompt, request.seed)]
            try:
                with Image.open(path) as handle:
                    images.append(handle.convert("RGB"))
            except (OSError, UnidentifiedImageError) as exc:
                raise UnlearnError(f"--images: cannot read {path} ({exc}); replace the file or regenerate it") from None
        return images

    def _judge_images(self, which: str, images: list[Any]) -> tuple[dict[tuple[str, str], np.ndarray], np.ndarray]:
        labels = list(self.concept_prompts)
        predicted, scores = self._judged(images, labels)
        presence: dict[tuple[str, str], list[float]] = {}
        records = []
        for request, label, score in zip(self.requests, predicted, scores):
            present = labels[int(label)] == request.concept
            presence.setdefault((request.concept, request.prompt_type), []).append(float(present))
            records.append(
                {
                    # Relative to the index, so the folder is a valid --images DIR as it is.
                    "file": f"{slug(request.concept)}-{request.prompt_type}-{request.key}.png",
                    "prompt": request.prompt,
                    "seed": request.seed,
                    "concept": request.concept,
                    "role": request.role,
                    "prompt_type": request.prompt_type,
                    "model": which,
                    "judge": {"predicted": labels[int(label)], "present": present, "clip_score": float(score)},
                }
            )
        self._write_images(which, images, records)
        retain = np.array([r.role == "retain" for r in self.requests], dtype=bool)
        return {k: np.asarray(v) for k, v in presence.items()}, np.asarray(scores)[retain]

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

    def _judged(self, images: list[Any], labels: list[str]) -> tuple[list[int], np.ndarray]:
        """The judge's verdict (index into ``labels``) and CLIP score for each image, cached.

        The key is the pixels, the judge and its weights, the labels, template and prompts: a
        warm rerun neither loads nor runs the judge. Cached or not, results go through the same
        JSON round trip, so a warm run sees the same numbers.
        """
        from pytest_unlearn.cache import make_key, model_digest

        pixels = hashlib.sha256()
        for image in images:
            array = np.asarray(image.convert("RGB"))
            pixels.update(str(array.shape).encode() + array.tobytes())
        spec = self.settings.clip_model or ""
        spec_path = Path(spec.split(":")[-1]) if spec else None
        weights = model_digest(spec_path) if spec_path is not None and spec_path.exists() else None
        extra = {}
        # open_clip:CONFIG.json:WEIGHTS: the architecture (and tokenizer) the weights are read as.
        config = Path(spec.split(":")[1]) if spec.startswith("open_clip:") and spec.count(":") >= 2 else None
        if config is not None and config.suffix == ".json" and config.is_file():
            extra["model_config"] = hashlib.sha256(config.read_bytes()).hexdigest()
        key = make_key(
            "genmu.judge",
            pixels=pixels.hexdigest(),
            judge=self.judge_name,
            spec=spec,
            weights=weights,
            labels=labels,
            template=self.template,
            prompts=[r.prompt for r in self.requests],
            device=self._device_kind(),
            **extra,
        )

        def produce() -> dict[str, list[Any]]:
            from pytest_unlearn.genmu.judges import classify

            judge = self.judge()
            predicted = classify(judge, images, labels, self.template)
            scores = gm.clip_score(judge.embed_images(images), judge.embed_texts([r.prompt for r in self.requests]))
            return {"predicted": [int(x) for x in predicted], "scores": [float(x) for x in scores]}

        judged = self.cache.get_or_create_json("genmu-judge", key, produce)
        return judged["predicted"], np.asarray(judged["scores"], dtype=np.float64)

    def export_extra(self) -> dict[str, Any]:
        return {"records": self._records}

    def import_extra(self, extra: dict[str, Any]) -> None:
        self._records.update(extra.get("records", {}))

    def metric_inputs(self) -> gm.GenmuInputs:
        return self.inputs

    def aggregates(self) -> dict[str, Any]:
        return gm.aggregates(self.inputs)

    def artifacts(self) -> dict[str, str]:
        return dict(self._artifact_files)

    def header_lines(self) -> list[str]:
        g = self.generation
        return [
            f"unlearn: concepts {len(self.concept_prompts)}, targets {', '.join(self.targets)}; "
            f"{len(self.requests)} images ({self.images_per_prompt} per prompt, seeds from {self.seed}); "
            f"steps={g.steps} guidance={g.guidance:g} resolution={g.resolution} scheduler={g.scheduler}; "
            f"judge={self.judge_name}",
        ]

    def settings_record(self) -> dict[str, Any]:
        return {
            **self.generation.record(),
            "images_per_prompt": self.images_per_prompt,
            "image_seed": self.seed,
            "judge": self.judge_name,
            "judge_template": self.template,
            "adjacent_from": self.adjacent_from,
            "adjacent_k": self.adjacent_k if self.adjacent_from == "clip" else None,
            "clip_model": str(self.settings.clip_model),
            "clip_score_convention": "100*cos(image, prompt), not clamped at 0",
            "targets": self.targets,
            "data": self.data_files,
            "batch_size": self.settings.batch_size,
            "device": self.settings.device,
            "dtype": self.settings.dtype,
        }

    # -- report ----------------------------------------------------------------------------------------
    def write_reports(self, scorecard: Path) -> dict[str, str]:
        """An HTML page of image grids per concept: prompt kind × seed, original beside unlearned."""
        if "unlearned" not in self._records:
            return {}
        path = scorecard.with_suffix(".html")
        root = self.settings.artifacts
        original = {(r["prompt"], r["seed"]): r for r in self._records.get("original", [])}
        parts = [
            "<!doctype html><meta charset=utf-8><title>pytest-unlearn: genmu</title>",
            "<style>body{font-family:sans-serif}img{width:128px;image-rendering:pixelated}"
            "td{vertical-align:top;padding:4px;font-size:12px}.absent{outline:3px solid #2a2}"
            ".present{outline:3px solid #c22}</style>",
            f"<h1>genmu: {html.escape(', '.join(self.targets))}</h1>",
        ]
        for concept in list(self.targets) + [c for c in self.concept_prompts if c not in self.targets]:
            rows = [r for r in self._records["unlearned"] if r["concept"] == concept]
            if not rows:
                continue
            role = "target (should be absent)" if concept in self.targets else "retained (should be present)"
            parts.append(f"<h2>{html.escape(concept)} — {role}</h2><table>")
            for row in rows:
                cells = []
                for label, record in (("original", original.get((row["prompt"], row["seed"]))), ("unlearned", row)):
                    if record is None:
                        continue
                    # Relative to the report, so the folder can be moved or uploaded whole.
                    image = Path(root, "images", label, record["file"])
                    src = html.escape(os.path.relpath(image, path.parent))
                    css = "present" if record["judge"]["present"] else "absent"
                    cells.append(
                        f"<td><img class={css} src='{src}'><br>{label}: judge sees "
                        f"{html.escape(record['judge']['predicted'])}</td>"
                    )
                parts.append(
                    f"<tr><td>{html.escape(row['prompt_type'])}<br>seed {row['seed']}<br>"
                    f"<i>{html.escape(row['prompt'])}</i></td>{''.join(cells)}</tr>"
                )
            parts.append("</table>")
        try:
            path.write_text("\n".join(parts), encoding="utf-8")
        except OSError:
            return {}
        return {"report": str(path)}
