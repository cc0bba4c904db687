"""A content-addressed cache of expensive artifacts (generations, losses, predictions, images).

An entry's key is the sha256 of everything that determines its content: the kind of artifact,
the producing code's version (:data:`CODE_VERSION`, bumped by hand when a producer changes its
output, plus the package version), the model's content digest and the inputs and settings
(see :func:`make_key`). A changed model, prompt or setting is a different key: entries are
never invalidated, only missed.

Writes are atomic (a temporary file in the same folder, then ``os.replace``) and each key has
an ``fcntl`` lock, so concurrent workers (pytest-xdist, or two runs sharing a folder) neither
corrupt an entry nor produce it twice: a second worker waits for the first, then reads.
Pure Python; no pytest, no torch.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from pytest_unlearn.files import file_lock, write_bytes_atomic
from pytest_unlearn.fingerprint import WEIGHT_SUFFIXES, fingerprint

# Bump when any producer (generation, losses, MMLU, image generation) changes what it writes
# for the same inputs, so old entries are no longer found.
CODE_VERSION = 1
DEFAULT_DIR_NAME = ".unlearn-cache"
_SMALL_FILE = 32 << 20  # non-weight files (configs, tokenizers) hashed into the model digest


def package_version() -> str:
    try:
        return version("pytest-unlearn")
    except PackageNotFoundError:
        return "unknown"


def model_digest(path: str | Path) -> str:
    """The weights' fingerprint plus every other small file of a model folder (configs,
    tokenizer, scheduler): outputs depend on those too, the fingerprint covers weights only."""
    root = Path(path)
    outer = hashlib.sha256(fingerprint(root).encode())
    if root.is_dir():
        for file in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix not in WEIGHT_SUFFIXES):
            if file.stat().st_size > _SMALL_FILE:
                continue
            outer.update(file.relative_to(root).as_posix().encode() + b"\0")
            outer.update(hashlib.sha256(file.read_bytes()).digest())
    return "sha256:" + outer.hexdigest()


def make_key(kind: str, **parts: Any) -> str:
    """sha256 of the kind, the code version and the parts (JSON, keys sorted)."""
    payload = {"kind": kind, "code": [CODE_VERSION, package_version()], "parts": parts}
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ArtifactCache:
    """Entries are files ``<root>/<kind>/<key[:2]>/<key><suffix>``; locks live in ``<root>/locks``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def path(self, kind: str, key: str, suffix: str) -> Path:
        return self.root / kind / key[:2] / f"{key}{suffix}"

    def _lock(self, key: str) -> contextlib.AbstractContextManager[None]:
        # Blocks while another process produces this entry.
        return file_lock(self.root / "locks" / f"{key}.lock")

    def read(self, kind: str, key: str, suffix: str) -> bytes | None:
        try:
            return self.path(kind, key, suffix).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, kind: str, key: str, suffix: str, data: bytes) -> Path:
        """Atomically store ``data`` (readers see the old state or the whole new file)."""
        target = self.path(kind, key, suffix)
        self._ensure_gitignore()
        write_bytes_atomic(target, data)
        return target

    def get_or_create(self, kind: str, key: str, suffix: str, produce: Callable[[], bytes]) -> bytes:
        """The stored bytes of ``key``, produced (once across processes) when missing."""
        data = self.read(kind, key, suffix)
        if data is not None:
            self.hits += 1
            return data
        with self._lock(key):
            data = self.read(kind, key, suffix)  # made by another worker while we waited
            if data is not None:
                self.hits += 1
                return data
            self.misses += 1
            data = produce()
            self.write(kind, key, suffix, data)
            return data

    def get_or_create_json(self, kind: str, key: str, produce: Callable[[], Any]) -> Any:
        raw = self.get_or_create(
            kind, key, ".json", lambda: json.dumps(produce(), ensure_ascii=False, allow_nan=True).encode("utf-8")
        )
        return json.loads(raw)

    def _ensure_gitignore(self) -> None:
        marker = self.root / ".gitignore"
        if not marker.exists():
            with contextlib.suppress(OSError):
                marker.write_text("# created by pytest-unlearn: cached artifacts, safe to delete\n*\n")


class NoCache:
    """``--no-cache``: the same interface, producing every time and storing nothing."""

    root = None
    hits = 0
    misses = 0

    def get_or_create(self, kind: str, key: str, suffix: str, produce: Callable[[], bytes]) -> bytes:
        return produce()

    def get_or_create_json(self, kind: str, key: str, produce: Callable[[], Any]) -> Any:
        # Round-trip through JSON anyway, so a cached and an uncached run see the same values.
        return json.loads(json.dumps(produce(), ensure_ascii=False, allow_nan=True))


def open_cache(root: Path | None) -> ArtifactCache | NoCache:
    return NoCache() if root is None else ArtifactCache(root)


def encode_arrays(arrays: list[Any]) -> bytes:
    """A list of numpy arrays as one ``.npz`` blob (numpy is imported by the caller's backend)."""
    import numpy as np

    buffer = io.BytesIO()
    np.savez(buffer, *arrays)
    return buffer.getvalue()


def decode_arrays(data: bytes) -> list[Any]:
    import numpy as np

    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return [archive[f"arr_{i}"] for i in range(len(archive.files))]
