"""cache: a cached generation replaced, an entry cut short or copied under another key, a read-only or full cache folder: the entry is discarded with one warning and computed again, the finished pass kept, every verdict as a clean run's.

Issue 23, items 5 and 7.

Each case runs the real plugin over a committed world with an artifact cache that was tampered
with (a cached generation replaced by " ", an entry cut short), a read-only cache folder, or a
full one. Each asserts the one warning line, that the entry was computed again (the cache's
hit/miss counts, written by ``-p tests.test_cache_probe``), and that every verdict and value is
the one a clean run gives.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_unlearn.cache import decode_entry

pytestmark = pytest.mark.slow

DISCARDED = "warning: cache entry {path}: {problem}; discarded, the {kind} result is computed again"
NOT_WRITABLE = (
    "warning: --cache-dir {root}: cannot write the cache ({reason}); the run goes on without it: results are "
    "computed and kept, not stored (free space or pass a writable --cache-dir)"
)


def outcome(card: dict) -> dict[str, tuple]:
    """What a run decided, check by check (and whether the gate passed)."""
    checks = {c["id"]: (c["passed"], c["value"], c.get("ci95"), c.get("error")) for c in card["checks"]}
    return {"passed": card["passed"], "status": card["status"], **checks}


def run(pytester: pytest.Pytester, cache: Path, *args: str) -> tuple[pytest.RunResult, dict, dict]:
    """One run of the plugin with ``cache``; (result, card, the cache's hits and misses)."""
    probe = pytester.path / "probe.json"
    probe.unlink(missing_ok=True)
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-p", "tests.test_cache_probe", f"--cache-dir={cache}", "--scorecard=card.json",
        *args,
    )  # fmt: skip
    card = json.loads((pytester.path / "card.json").read_text())
    return result, card, json.loads(probe.read_text())


def entries(cache: Path, kind: str = "") -> list[Path]:
    return sorted(p for p in cache.rglob(f"{kind}*/*/*") if p.is_file() and p.parent.parent.name != "locks")


def split_entry(path: Path) -> tuple[bytes, dict, bytes]:
    magic, header, content = path.read_bytes().split(b"\n", 2)
    return magic + b"\n", json.loads(header), content


def assert_output_is_clean(result: pytest.RunResult) -> None:
    output = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in output and "INTERNALERROR" not in output


# --- semeval: a cached generation replaced by " " -------------------------------------------------


def test_a_generation_replaced_by_a_blank_is_discarded_and_generated_again(pytester, semeval_models, tmp_path):
    """ " " as every cached continuation would make every forget check pass for the target, which
    regurgitates its forget set. The entry's checksum no longer matches: it is generated again."""
    cache = tmp_path / "cache"
    args = ("--suite=semeval", "--batch-size=64", f"--model={semeval_models['target']}")
    _, clean, first = run(pytester, cache, *args)
    assert clean["passed"] is False and first["hits"] == 0
    generations = entries(cache, "semeval-generations")
    assert len(generations) == 2  # the forget and the retain continuations
    forget = generations[0]
    magic, header, content = split_entry(forget)
    blank = json.dumps([" " for _ in json.loads(content)]).encode()
    # The attacker even fixes the size; only the checksum over key and content tells.
    header["size"] = len(blank)
    forget.write_bytes(magic + json.dumps(header).encode() + b"\n" + blank)

    result, again, counts = run(pytester, cache, *args)
    assert_output_is_clean(result)
    line = DISCARDED.format(
        path=forget,
        problem="its content does not match its checksum (it was changed after it was written)",
        kind="semeval-generations",
    )
    assert [w for w in again["warnings"] if w.startswith("cache entry")] == [line.removeprefix("warning: ")]
    result.stdout.fnmatch_lines([line])
    assert counts == {"hits": first["misses"] - 1, "misses": 1}  # only the tampered entry was computed again
    assert outcome(again) == outcome(clean) and result.ret == pytest.ExitCode.TESTS_FAILED
    assert decode_entry("semeval-generations", forget.name.split(".")[0], forget.read_bytes())[0] == content


# --- mufac: a truncated entry, a read-only folder, a full disk -------------------------------------


@pytest.fixture(scope="module")
def mufac_args(mufac_models) -> tuple[str, ...]:
    return (
        "--suite=mufac-mini",
        "--batch-size=64",
        f"--model={mufac_models['retrained']}",
        f"--original-model={mufac_models['target']}",
    )


@pytest.fixture(scope="module")
def warm(tmp_path_factory, mufac_args) -> tuple[Path, dict, dict]:
    """A cache filled by a clean run, that run's card and its counts (copied by each test)."""
    pytester_dir = tmp_path_factory.mktemp("warm-run")
    cache = pytester_dir / "cache"
    result = subprocess.run(
        ["python", "-m", "pytest", "-p", "no:cacheprovider", "-p", "tests.test_cache_probe", *mufac_args,
         f"--cache-dir={cache}", "--scorecard=card.json", f"--rootdir={pytester_dir}", "-c", os.devnull],
        cwd=pytester_dir, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parent.parent),
                                                          os.environ.get("PYTHONPATH", "")])},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    card = json.loads((pytester_dir / "card.json").read_text())
    counts = json.loads((pytester_dir / "probe.json").read_text())
    assert counts == {"hits": 0, "misses": 2} and card["passed"] is True
    return cache, card, counts


def test_a_truncated_entry_is_discarded_and_computed_again(pytester, warm, mufac_args, tmp_path):
    source, clean, _ = warm
    cache = tmp_path / "cache"
    shutil.copytree(source, cache)
    entry = entries(cache, "mufac-outputs")[0]
    data = entry.read_bytes()
    entry.write_bytes(data[: len(data) // 2])  # a disk that filled up, a copy that stopped

    result, card, counts = run(pytester, cache, *mufac_args)
    assert_output_is_clean(result)
    _, header, _ = split_entry(Path(source) / entry.relative_to(cache))
    content_size = header["size"]
    held = len(data) // 2 - (len(data) - content_size)
    line = DISCARDED.format(
        path=entry,
        problem=f"it is truncated or padded ({held} bytes of content, the header says {content_size})",
        kind="mufac-outputs",
    )
    result.stdout.fnmatch_lines([line])
    assert counts == {"hits": 1, "misses": 1}
    assert outcome(card) == outcome(clean) and result.ret == pytest.ExitCode.OK
    assert entry.read_bytes() == data  # stored again, whole


def test_an_entry_copied_under_another_key_is_discarded(pytester, warm, mufac_args, tmp_path):
    """The original model's outputs served as the model's: the header names another key."""
    source, clean, _ = warm
    cache = tmp_path / "cache"
    shutil.copytree(source, cache)
    first, second = entries(cache, "mufac-outputs")
    first.write_bytes(second.read_bytes())

    result, card, counts = run(pytester, cache, *mufac_args)
    _, header, _ = split_entry(second)
    result.stdout.fnmatch_lines(
        [
            DISCARDED.format(
                path=first,
                problem=f"its header names another entry ('mufac-outputs', {header['key'][:12]}...)",
                kind="mufac-outputs",
            )
        ]
    )
    assert counts == {"hits": 1, "misses": 1}
    assert outcome(card) == outcome(clean)


@pytest.fixture
def read_only_dir(tmp_path) -> Iterator[Path]:
    """An empty folder this process cannot write to: a read-only mount for root (who ignores
    permission bits), the permission bits for anyone else."""
    folder = tmp_path / "ro-cache"
    folder.mkdir()
    mounted = False
    if os.geteuid() == 0:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"root cannot mount a read-only tmpfs here ({done.stderr.decode().strip()})")
        mounted = True
    else:
        folder.chmod(0o555)
    try:
        yield folder
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], check=False)
        else:
            folder.chmod(0o755)


def test_a_read_only_cache_folder_runs_without_the_cache(pytester, read_only_dir, warm, mufac_args):
    _, clean, _ = warm
    result, card, counts = run(pytester, read_only_dir, *mufac_args)
    assert_output_is_clean(result)
    line = NOT_WRITABLE.format(root=read_only_dir, reason=os.strerror(errno.EROFS) if os.geteuid() == 0 else "*")
    result.stdout.fnmatch_lines([line])
    assert len([w for w in card["warnings"] if w.startswith("--cache-dir")]) == 1
    assert counts == {"hits": 0, "misses": 2}
    assert outcome(card) == outcome(clean) and result.ret == pytest.ExitCode.OK


@pytest.fixture
def full_dir(tmp_path) -> Iterator[Path]:
    """A 16 KiB tmpfs: the first entry (37 KB) does not fit (ENOSPC from the kernel)."""
    folder = tmp_path / "full-cache"
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tiny tmpfs here ({done.stderr.decode().strip()}); the patched case still runs")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_a_full_disk_keeps_the_finished_pass(pytester, full_dir, warm, mufac_args):
    _, clean, _ = warm
    result, card, counts = run(pytester, full_dir, *mufac_args)
    assert_output_is_clean(result)
    result.stdout.fnmatch_lines([NOT_WRITABLE.format(root=full_dir, reason=os.strerror(errno.ENOSPC))])
    assert counts["misses"] == 2
    assert outcome(card) == outcome(clean) and result.ret == pytest.ExitCode.OK
    assert not [p for p in full_dir.rglob("*.tmp")]  # no half-written entry left behind


def test_a_full_disk_simulated_by_a_failing_write(pytester, warm, mufac_args, tmp_path, monkeypatch):
    """The same as above where no tmpfs can be mounted: every cache write fails with ENOSPC."""
    _, clean, _ = warm
    import pytest_unlearn.cache

    calls: list[Path] = []

    def no_space(path: Path, data: bytes) -> None:
        calls.append(path)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(pytest_unlearn.cache, "write_bytes_atomic", no_space)
    cache = tmp_path / "cache"
    result, card, counts = run(pytester, cache, *mufac_args)
    result.stdout.fnmatch_lines([NOT_WRITABLE.format(root=cache, reason=os.strerror(errno.ENOSPC))])
    assert len(calls) == 1  # after the first failure the run stops trying
    assert counts == {"hits": 0, "misses": 2}
    assert outcome(card) == outcome(clean) and result.ret == pytest.ExitCode.OK
