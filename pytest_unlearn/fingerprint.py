"""Content fingerprints of model folders: sha256 over the weight files.

The fingerprint identifies *which weights* were evaluated (the scorecard records it, and the
artifact cache keys on it); file names are part of the hash so a renamed shard changes it.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")
_CHUNK = 1 << 20


def weight_files(path: Path) -> list[Path]:
    """The weight files of a model folder (recursively, sorted), or the file itself."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)


def _file_digest(file: Path) -> bytes:
    inner = hashlib.sha256()
    with file.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            inner.update(chunk)
    return inner.digest()


# A run asks for the same folder's fingerprint several times (the scorecard, cache keys, the
# same-weights test of a baseline run); reading 4 GB of SD weights once is enough. The memo is
# keyed on each file's inode, size and change times, so a rewritten file is hashed again.
@functools.lru_cache(maxsize=64)
def _cached_file_digest(file: str, inode: int, size: int, mtime_ns: int, ctime_ns: int) -> bytes:
    return _file_digest(Path(file))


def fingerprint(path: str | Path) -> str:
    """``sha256:<hex>`` over (relative name, content digest) of every weight file."""
    root = Path(path)
    outer = hashlib.sha256()
    for file in weight_files(root):
        stat = file.stat()
        digest = _cached_file_digest(str(file.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
        name = file.name if root.is_file() else file.relative_to(root).as_posix()
        outer.update(name.encode("utf-8") + b"\0" + digest)
    return "sha256:" + outer.hexdigest()


def file_digests(path: str | Path) -> dict[str, str]:
    """Each weight file's sha256 by its name relative to ``path``: what a changed model folder
    is compared by, so the error can name the file that changed."""
    root = Path(path)
    found = {}
    for file in weight_files(root):
        stat = file.stat()
        digest = _cached_file_digest(str(file.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
        found[file.name if root.is_file() else file.relative_to(root).as_posix()] = digest.hex()
    return found


def artifact_tag(model: str | Path | None) -> str:
    """The first 12 hex digits of a model's fingerprint, for artifact file names (``images``
    when the images came from --images, not from a model)."""
    if model is None or Path(model) == Path() or not Path(model).exists():
        return "images"
    return fingerprint(model).split(":", 1)[1][:12]
