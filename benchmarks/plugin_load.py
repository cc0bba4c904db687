"""What loading the plugin costs when no suite is selected.

Checks in a subprocess that ``pytest --co`` with the plugin loaded and no ``--suite`` imports
none of torch, transformers, diffusers, open_clip or numpy-heavy suite modules, then times
``pytest --version`` with the plugin against ``pytest -p no:unlearn --version`` (median of
several runs each, interleaved). Prints the added milliseconds and the ratio.

    python benchmarks/plugin_load.py [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("torch", "transformers", "diffusers", "open_clip", "pytest_unlearn.evaluation")
PROBE = """
import json, sys
def pytest_sessionfinish(session):
    heavy = {heavy!r}
    with open("modules.json", "w") as handle:
        json.dump(sorted(m for m in sys.modules if m.split(".")[0] in heavy or m in heavy), handle)
"""


def timed(args: list[str], cwd: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pytest", *args], cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "conftest.py").write_text(PROBE.format(heavy=HEAVY))
        subprocess.run([sys.executable, "-m", "pytest", "-q", "--co", "-p", "no:cacheprovider"], cwd=tmp)
        imported = json.loads(Path(tmp, "modules.json").read_text())
        with_plugin, without = [], []
        for _ in range(args.runs):
            with_plugin.append(timed(["--version"], tmp))
            without.append(timed(["-p", "no:unlearn", "--version"], tmp))
    a, b = statistics.median(with_plugin), statistics.median(without)
    print(f"heavy modules imported with no suite selected: {imported or 'none'}")
    print(f"pytest --version, median of {args.runs}: with plugin {a * 1000:.0f} ms, -p no:unlearn {b * 1000:.0f} ms")
    print(f"added by the plugin: {(a - b) * 1000:+.0f} ms ({a / b:.3f}x)")
    return 1 if imported else 0


if __name__ == "__main__":
    raise SystemExit(main())
