"""A content-addressed cache of expensive artifacts (generations, losses, predictions, images).

An entry's key is the sha256 of everything that determines its content: the kind of artifact,
the producing code's version (:data:`CODE_VERSION`, bumped by hand when a producer changes its
output, plus the package version), the model's content digest and the inputs and settings
(see :func:`make_key`). A changed model, prompt or setting is a different key: entries are
never invalidated, only missed.

Writes are atomic (a temporary file in the same folder, then ``os.replace``) and each key has
an ``fcntl`` lock, so concurrent workers (pytest-xdist, or two runs sharing a folder) neither
corrupt an entry nor produce it twice: a second worker waits for the first, then reads.

An entry is never used as found. Its file starts with a header line holding its kind, its key,
its size and the sha256 of (kind, key, content); an entry whose header, size or checksum does not
match (a truncated file, a disk error, a cached generation edited to ``" "``, an entry copied
under another key) is discarded with one warning and recomputed. The checksum has no secret: it
catches corruption and edits of the content, not someone who rewrites the header too; a release
gate does not restore a cache it does not trust (README, "The artifact cache"). A folder that
cannot be written (full, read-only) costs the cache, with one warning, never the result just
computed. Cache findings are warnings even under ``--unlearn-strict``: what they report was
recomputed, so no verdict rests on it. Pure Python; no pytest, no torch.
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
# for the same inputs, or the entry format changes, so old entries are no longer found.
# 2: entries carry a header with their key and a checksum.
CODE_VERSION = 2
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


_MAGIC = b"pytest-unlearn cache entry\n"


def entry_checksum(kind: str, key: str, content: bytes) -> str:
    """sha256 of an entry's kind, key and content: an entry moved to another key fails it too."""
    digest = hashlib.sha256(kind.encode("utf-8") + b"\0" + key.encode("ascii", "replace") + b"\0")
    digest.update(content)
    return digest.hexdigest()


def encode_entry(kind: str, key: str, content: bytes) -> bytes:
    """The bytes of an entry file: magic line, JSON header line, content."""
    header = {"kind": kind, "key": key, "size": len(content), "sha256": entry_checksum(kind, key, content)}
    return _MAGIC + json.dumps(header, sort_keys=True).encode("utf-8") + b"\n" + content


def decode_entry(kind: str, key: str, data: bytes) -> tuple[bytes | None, str | None]:
    """(content, None) of a sound entry file, else (None, what is wrong with it)."""
    if not data.startswith(_MAGIC):
        return None, "it is not a pytest-unlearn cache entry (no header)"
    line, newline, content = data[len(_MAGIC) :].partition(b"\n")
    if not newline:
        return None, "it is truncated (the header is cut)"
    try:
        header = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None, "its header is not JSON"
    if not isinstance(header, dict):
        return None, "its header is not a JSON object"
    if header.get("kind") != kind or header.get("key") != key:
        return None, f"its header names another entry ({header.get('kind')!r}, {str(header.get('key'))[:12]}...)"
    size = header.get("size")
    if not isinstance(size, int) or len(content) != size:
        return None, f"it is truncated or padded ({len(content)} bytes of content, the header says {size})"
    if header.get("sha256") != entry_checksum(kind, key, content):
        return None, "its content does not match its checksum (it was changed after it was written)"
    return content, None


class ArtifactCache:
    """Entries are files ``<root>/<kind>/<key[:2]>/<key><suffix>``; locks live in ``<root>/locks``.

    ``warn`` receives each finding (an entry discarded, the folder not writable) once; without
    one they are kept in :attr:`warnings`.
    """

    def __init__(self, root: Path, warn: Callable[[str], None] | None = None) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0
        self.discarded = 0
        self.warnings: list[str] = []
        self._warn = warn
        # Set when the folder cannot be written: the run goes on producing without storing.
        self.write_error: str | None = None

    def path(self, kind: str, key: str, suffix: str) -> Path:
        return self.root / kind / key[:2] / f"{key}{suffix}"

    def _lock(self, key: str) -> contextlib.AbstractContextManager[None]:
        # Blocks while another process produces this entry.
        return file_lock(self.root / "locks" / f"{key}.lock")

    def _report(self, message: str) -> None:
        if message in self.warnings:
            return
        self.warnings.append(message)
        if self._warn is not None:
            self._warn(message)

    def read(self, kind: str, key: str, suffix: str) -> bytes | None:
        """The verified content of an entry; None when it is absent or unsound (then discarded,
        with one warning, and recomputed by the caller)."""
        path = self.path(kind, key, suffix)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            problem = f"it cannot be read ({exc.strerror or exc})"
        else:
            content, problem = decode_entry(kind, key, data)
            if content is not None:
                return content
        self.discarded += 1
        self._report(f"cache entry {path}: {problem}; discarded, the {kind} result is computed again")
        return None

    def write(self, kind: str, key: str, suffix: str, data: bytes) -> Path:
        """Atomically store ``data`` (readers see the old state or the whole new file)."""
        target = self.path(kind, key, suffix)
        self._ensure_gitignore()
        write_bytes_atomic(target, encode_entry(kind, key, data))
        return target

    def _cannot_write(self, exc: OSError) -> None:
        if self.write_error is None:
            self.write_error = exc.strerror or str(exc)
            self._report(
                f"--cache-dir {self.root}: cannot write the cache ({self.write_error}); the run goes on without "
                "it: results are computed and kept, not stored (free space or pass a writable --cache-dir)"
            )

    def get_or_create(self, kind: str, key: str, suffix: str, produce: Callable[[], bytes]) -> bytes:
        """The stored bytes of ``key``, produced (once across processes) when missing or unsound."""
        data = self.read(kind, key, suffix)
        if data is not None:
            self.hits += 1
            return data
        with contextlib.ExitStack() as stack:
            if self.write_error is None:
                try:
                    stack.enter_context(self._lock(key))
                except OSError as exc:  # the locks folder cannot be made: a full or read-only cache
                    self._cannot_write(exc)
                else:
                    data = self.read(kind, key, suffix)  # made by another worker while we waited
                    if data is not None:
                        self.hits += 1
                        return data
            self.misses += 1
            data = produce()
            if self.write_error is None:
                try:
                    self.write(kind, key, suffix, data)
                except OSError as exc:  # the result is kept: only storing it failed
                    self._cannot_write(exc)
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
    discarded = 0
    write_error = None

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def get_or_create(self, kind: str, key: str, suffix: str, produce: Callable[[], bytes]) -> bytes:
        return produce()

    def get_or_create_json(self, kind: str, key: str, produce: Callable[[], Any]) -> Any:
        # Round-trip through JSON anyway, so a cached and an uncached run see the same values.
        return json.loads(json.dumps(produce(), ensure_ascii=False, allow_nan=True))


def open_cache(root: Path | None, warn: Callable[[str], None] | None = None) -> ArtifactCache | NoCache:
    return NoCache() if root is None else ArtifactCache(root, warn)


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
