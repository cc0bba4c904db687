"""Writing files so that readers (and crashes) never see half of one, and locking across processes.

Shared by the scorecard, the artifact cache and the fixture builders. Pure Python.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

try:  # POSIX; elsewhere callers work without cross-process locking
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, flush it to disk, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:24]}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def file_lock(lock_path: Path) -> Iterator[None]:
    """An exclusive lock held on ``lock_path`` (created if needed) while the block runs.

    The kernel drops the lock when its process dies, even by SIGKILL, so a killed run never
    leaves a stale lock behind.
    """
    if fcntl is None:
        yield
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def jsonl_bytes(rows: Iterable[Any]) -> bytes:
    """One JSON object per line (UTF-8, non-ASCII kept as is), as the artifact files hold them."""
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")


#: The environment twin of ``--unlearn-max-input-mib``: loaders deep in a suite read the cap
#: from here (the plugin exports the resolved option), so every reader applies the same one.
MAX_INPUT_ENV = "PYTEST_UNLEARN_MAX_INPUT_MIB"
DEFAULT_MAX_INPUT_MIB = 1024


def max_input_bytes(environ: dict[str, str] | None = None) -> int:
    raw = (os.environ if environ is None else environ).get(MAX_INPUT_ENV, "")
    mib = int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_MAX_INPUT_MIB
    return mib << 20


def input_file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as an input file (a folder, a symlink loop, too large), as the
    tail of a one-line error; None when it is a readable-looking regular file or is missing
    (the caller's own "no such file" applies then)."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symlink loop (a link that points back to itself); point it at a real file"
        return None
    import stat as stat_module

    if stat_module.S_ISDIR(stat.st_mode):
        return "is a folder, not a file; pass the file inside it"
    if not stat_module.S_ISREG(stat.st_mode):
        return "is not a regular file (a pipe, socket or device); pass a file"
    cap = max_input_bytes()
    if stat.st_size > cap:
        return (
            f"is {stat.st_size / (1 << 20):.0f} MiB, over the {cap >> 20} MiB input cap; raise it with "
            f"--unlearn-max-input-mib N (or {MAX_INPUT_ENV}) if the file is really that large"
        )
    return None


class LockBusy(Exception):
    """Another process holds the lock; ``holder`` is what it wrote into the lock file."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


class OwnedLock:
    """A non-blocking exclusive lock on ``path`` held until :meth:`release` (or the process
    dies: the kernel drops it, so a killed run leaves no stale lock). The holder's description
    is written into the file, so a refused run can name the run that holds it."""

    def __init__(self, path: Path, holder: str) -> None:
        self.path = path
        self._handle: Any = None
        if fcntl is None:
            return
        while True:
            handle = open(path, "a+b")  # noqa: SIM115  (held open for the whole run)
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.seek(0)
                text = handle.read().decode("utf-8", "replace").strip()
                handle.close()
                raise LockBusy(text or "another run") from None
            # The holder before us may have removed the file after we opened it: a lock on an
            # unlinked inode excludes nobody, so lock the file the path names now.
            try:
                same = os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            handle.close()
        handle.seek(0)
        handle.truncate()
        handle.write(holder.encode("utf-8"))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is None:
            return
        # Unlink while still holding it: a run waiting on the old inode sees it gone and retries.
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
        self._handle.close()
        self._handle = None
