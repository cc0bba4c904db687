"""Concept judges: "is concept c in image x", and CLIP scores.

The default judge is CLIP zero-shot classification of each image among the candidate concepts
("a photo of {concept}"), with two backends: transformers ``CLIPModel`` from a local folder
(``--setting clip_model=DIR``) and open_clip (``--setting clip_model=open_clip:MODEL_NAME:WEIGHTS_FILE``). Other
judges (a fine-tuned classifier, say) register under ``pytest_unlearn.judges``: a factory
``(spec: str, device: str) -> Judge``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pytest_unlearn.errors import UnlearnError


class Judge(Protocol):
    """What the diffusion suites need from a judge."""

    name: str

    def embed_images(self, images: list[Any]) -> np.ndarray: ...

    def embed_texts(self, texts: list[str]) -> np.ndarray: ...


def clip_score(image_embeddings: np.ndarray, text_embeddings: np.ndarray) -> np.ndarray:
    """100 · cosine similarity of each image with its own prompt (rows paired), no clamp at 0."""
    a = image_embeddings / np.linalg.norm(image_embeddings, axis=-1, keepdims=True)
    b = text_embeddings / np.linalg.norm(text_embeddings, axis=-1, keepdims=True)
    return 100.0 * np.sum(a * b, axis=-1)


def _refuse_non_finite(values: np.ndarray, judge: str, what: str) -> None:
    """A judge's numbers for one batch must be finite: NaN embeddings or logits have an argmax
    (the first concept) and a cosine (NaN, then a mean that hides it), so a broken judge would
    decide forget checks. One line naming the judge and how many rows, like the models' own."""
    rows = np.asarray(values, dtype=np.float64)
    rows = rows.reshape(len(rows), -1) if rows.ndim else rows.reshape(1, 1)
    bad = ~np.isfinite(rows).all(axis=1)
    if bad.any():
        raise UnlearnError(
            f"judge {judge}: non-finite {what} for {int(bad.sum())} of {len(rows)} inputs (first: input "
            f"{int(np.flatnonzero(bad)[0])}); the check cannot be scored (check the judge's weights, the dtype or "
            "--setting device)"
        )


class FiniteJudge:
    """Any registered judge, its embeddings checked finite before a suite uses them (the suites
    open judges through ``open_judge``, so a third-party judge gets the check too)."""

    def __init__(self, judge: Any, label: str) -> None:
        self._judge = judge
        self._label = label

    def __getattr__(self, name: str) -> Any:
        return getattr(self._judge, name)

    def embed_images(self, images: list[Any]) -> np.ndarray:
        out = self._judge.embed_images(images)
        _refuse_non_finite(out, self._label, "image embeddings")
        return out

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        out = self._judge.embed_texts(texts)
        _refuse_non_finite(out, self._label, "text embeddings")
        return out


def open_judge(name: str, spec: str, device: str) -> FiniteJudge:
    """The registered judge ``name`` made from ``spec`` (its model) on ``device``, checked."""
    from pytest_unlearn.registry import JUDGES

    return FiniteJudge(JUDGES.get(name)(spec, device), f"{name} ({spec})" if spec else name)


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def classify(judge: Judge, images: list[Any], labels: list[str], template: str) -> np.ndarray:
    """Index of the most similar label prompt for each image (CLIP zero-shot)."""
    texts = _normalise(judge.embed_texts([template.format(concept=label) for label in labels]))
    pictures = _normalise(judge.embed_images(images))
    return np.argmax(pictures @ texts.T, axis=-1)


class TransformersClip:
    """CLIP through transformers' ``CLIPModel`` and ``CLIPProcessor`` from a local folder."""

    name = "clip"

    def __init__(self, path: Path, device: str, batch_size: int = 32) -> None:
        import torch
        from transformers import CLIPModel, CLIPProcessor

        from pytest_unlearn.loading import strict_from_pretrained

        if not (path / "config.json").is_file():
            raise UnlearnError(f"--setting clip_model={path}: not a CLIP model folder (no config.json)")
        try:
            model = strict_from_pretrained(CLIPModel, path, where=f"--setting clip_model={path}", local_files_only=True)
            self.model = model.to(device).eval()
            self.processor = CLIPProcessor.from_pretrained(path, local_files_only=True)
        except UnlearnError:
            raise
        except Exception as exc:
            raise UnlearnError(f"--setting clip_model={path}: cannot load CLIP ({type(exc).__name__}: {exc})") from None
        self.device = device
        self.batch_size = batch_size
        self._torch = torch

    def _features(self, output: Any) -> Any:
        # transformers 5 returns a model output for get_*_features; older ones a tensor.
        return getattr(output, "pooler_output", output)

    def embed_images(self, images: list[Any]) -> np.ndarray:
        chunks = []
        with self._torch.no_grad():
            for start in range(0, len(images), self.batch_size):
                batch = self.processor(images=images[start : start + self.batch_size], return_tensors="pt")
                out = self.model.get_image_features(pixel_values=batch["pixel_values"].to(self.device))
                chunks.append(self._features(out).float().cpu().numpy())
        return np.concatenate(chunks)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        chunks = []
        with self._torch.no_grad():
            for start in range(0, len(texts), self.batch_size):
                batch = self.processor(
                    text=texts[start : start + self.batch_size], return_tensors="pt", padding=True, truncation=True
                )
                out = self.model.get_text_features(
                    input_ids=batch["input_ids"].to(self.device), attention_mask=batch["attention_mask"].to(self.device)
                )
                chunks.append(self._features(out).float().cpu().numpy())
        return np.concatenate(chunks)


def _one_line(exc: BaseException, limit: int = 300) -> str:
    """The exception as one line: torch's state-dict errors list every key over many lines."""
    text = " ".join(str(exc).split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def parse_open_clip_spec(spec: str) -> tuple[str, Path, Path | None]:
    """``open_clip:MODEL:WEIGHTS_FILE`` as (model name, weights file, model config JSON or None).

    Checks the form and that the files exist, without importing open_clip, so that a mistyped
    path is a usage error before any image is generated.
    """
    parts = spec.split(":", 2)
    if len(parts) != 3 or not parts[1] or not parts[2]:
        raise UnlearnError(f"--setting clip_model={spec}: expected open_clip:MODEL:WEIGHTS_FILE")
    model_name, weights = parts[1], Path(parts[2])
    if not weights.is_file():
        raise UnlearnError(f"--setting clip_model={spec}: no weights file {weights}")
    if not model_name.endswith(".json"):
        return model_name, weights, None
    config = Path(model_name)
    if not config.is_file():
        raise UnlearnError(f"--setting clip_model={spec}: no model config file {config}")
    # open_clip.add_model_config registers a config file under its stem.
    return config.stem, weights, config


class OpenClip:
    """CLIP through open_clip: ``open_clip:MODEL:WEIGHTS_FILE`` (local weights only).

    ``MODEL`` is a model name open_clip knows (built in, or registered with
    ``open_clip.add_model_config``) or the path of a model config JSON, which is registered under
    its file's stem, as ``add_model_config`` does.
    """

    name = "open_clip"

    def __init__(self, spec: str, device: str, batch_size: int = 32) -> None:
        model_name, weights, config = parse_open_clip_spec(spec)
        try:
            import open_clip
            import torch
        except Exception as exc:  # ImportError, or a torchvision build that does not match torch
            raise UnlearnError(
                f"--setting clip_model={spec}: cannot import open_clip ({_one_line(exc)}); "
                "pip install 'pytest-unlearn[open-clip]' with a torchvision built for your torch"
            ) from None
        if config is not None:
            open_clip.add_model_config(config)
        if model_name not in open_clip.list_models():
            raise UnlearnError(
                f"--setting clip_model={spec}: open_clip knows no model {model_name!r}; pass a model config JSON "
                "as MODEL, or register it with open_clip.add_model_config in a conftest.py"
            )
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=str(weights), device=device
            )
            self.tokenizer = open_clip.get_tokenizer(model_name)
        except Exception as exc:
            raise UnlearnError(
                f"--setting clip_model={spec}: cannot load open_clip {model_name} from {weights} ({_one_line(exc)})"
            ) from None
        self.model = model.eval()
        self.preprocess = preprocess
        self.device = device
        self.batch_size = batch_size
        self._torch = torch

    def embed_images(self, images: list[Any]) -> np.ndarray:
        chunks = []
        with self._torch.no_grad():
            for start in range(0, len(images), self.batch_size):
                pixels = self._torch.stack([self.preprocess(im) for im in images[start : start + self.batch_size]])
                chunks.append(self.model.encode_image(pixels.to(self.device)).float().cpu().numpy())
        return np.concatenate(chunks)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        chunks = []
        with self._torch.no_grad():
            for start in range(0, len(texts), self.batch_size):
                tokens = self.tokenizer(texts[start : start + self.batch_size])
                chunks.append(self.model.encode_text(tokens.to(self.device)).float().cpu().numpy())
        return np.concatenate(chunks)


def clip_judge(spec: str, device: str) -> Judge:
    """The built-in "clip" judge: open_clip when the spec starts with ``open_clip:``."""
    from pytest_unlearn.loading import resolve_device

    device = resolve_device(device)
    if spec.startswith("open_clip:"):
        return OpenClip(spec, device)
    return TransformersClip(Path(spec), device)


def logit_scale(judge: Judge) -> float:
    """CLIP's learned temperature ``exp(logit_scale)`` of a judge (1.0 for a judge without one)."""
    value = getattr(judge, "logit_scale", None)
    if value is None:
        value = getattr(getattr(judge, "model", None), "logit_scale", None)
        if value is None:
            return 1.0
        value = value.exp()
    return float(value.item() if hasattr(value, "item") else value)


class ImageClassifier:
    """A transformers image classifier as the concept judge (``--judge classifier --setting
    classifier_model=DIR``): ``AutoModelForImageClassification`` and its image processor from a
    local folder, safetensors only. A concept is present when one of its labels (the manifest's
    ``[labels]``) is among the image's top-k predicted labels, as UnlearnDiffAtk and FADE judge
    objects with an ImageNet ResNet-50."""

    name = "classifier"

    def __init__(
        self,
        path: Path,
        device: str,
        batch_size: int = 32,
        *,
        transform: dict[str, Any] | None = None,
        where: str | None = None,
    ) -> None:
        """``transform`` (``size``, ``mean``, ``std``; a ``size`` of None: the model's
        ``image_size``, else 224) is used when the folder has no image processor (a timm folder):
        a suite's own preprocessing. ``where`` starts errors."""
        import torch

        from pytest_unlearn.loading import load_image_classifier

        where = where or f"--setting classifier_model={path}"
        if not (path / "config.json").is_file():
            raise UnlearnError(f"{where}: not an image-classification folder (no config.json)")
        self.model, self.processor = load_image_classifier(
            path, device=device, where=where, need_processor=transform is None
        )
        self.transform = None
        if self.processor is None and transform is not None:
            size = transform.get("size") or getattr(self.model.config, "image_size", None) or 224
            self.transform = {**transform, "size": int(size)}
        self.path = path
        self.device = device
        self.batch_size = batch_size
        self._torch = torch

    def _batches(self, images: list[Any]) -> Any:
        """The float logits of each batch of images, checked finite."""
        from pytest_unlearn.engines.image_classifier import pixel_batch

        with self._torch.no_grad():
            for start in range(0, len(images), self.batch_size):
                pixels = pixel_batch(images[start : start + self.batch_size], self.processor, self.transform)
                logits = self.model(pixel_values=pixels.to(self.device)).logits.float()
                _refuse_non_finite(logits.cpu().numpy(), f"classifier ({self.path})", "logits")
                yield logits

    def top_labels(self, images: list[Any], k: int) -> list[list[str]]:
        """The ``k`` most probable label names of each image, most probable first."""
        names = self.model.config.id2label
        out: list[list[str]] = []
        for logits in self._batches(images):
            top = logits.topk(min(k, logits.shape[-1]), dim=-1).indices.cpu().tolist()
            out.extend([str(names[i]) for i in row] for row in top)
        return out

    def logits(self, images: list[Any]) -> np.ndarray:
        """The logits [images, labels] of each image: for a suite whose label order comes from a
        file rather than the model's ``id2label`` (UnlearnCanvas' heads are indexed by its lists)."""
        return np.concatenate([logits.cpu().numpy() for logits in self._batches(images)])


def classifier_judge(spec: str, device: str) -> ImageClassifier:
    """The built-in "classifier" judge; ``spec`` is the classifier's folder."""
    from pytest_unlearn.loading import resolve_device

    if not spec:
        raise UnlearnError("--judge classifier needs --setting classifier_model=DIR (a transformers image classifier)")
    return ImageClassifier(Path(spec), resolve_device(device))


def present_concepts(top: list[str], concepts: list[str], labels: dict[str, tuple[str, ...]]) -> list[str]:
    """The concepts one of whose labels is among ``top`` (case-insensitive)."""
    seen = {label.casefold() for label in top}
    return [c for c in concepts if any(label.casefold() in seen for label in labels.get(c, ()))]
