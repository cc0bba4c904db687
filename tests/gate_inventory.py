"""What the release gate has been tried against, counted from the tests themselves.

``python -m tests.gate_inventory`` prints the README's inventory block; ``--write`` rewrites it in
place. ``tests/test_gate_integrity.py`` fails when the README and the tests disagree, as the option
table's drift test does.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
START = "<!-- gate-inventory:start (generated: python -m tests.gate_inventory --write) -->"
END = "<!-- gate-inventory:end -->"

# (module, what its cases try)
MATRIX = (
    (
        "tests.test_bad_input",
        "bad input: one `ERROR:` line naming the flag or file (or one failing check), no traceback",
    ),
    ("tests.test_hostile_checkpoints", "hostile checkpoints: malicious pickles, remote code"),
    (
        "tests.test_gate_integrity",
        "duplicates, conflicts, stray ids, overlapping sets, `--unlearn-strict`, no-check runs",
    ),
    ("tests.test_determinism", "determinism: byte-identical scorecards and artifacts across runs"),
    ("tests.test_baseline", "regressions against the last release (`--baseline`, `compare`)"),
)


def cases(function: Any) -> int:
    """How many test items a test function makes (its parametrize grid)."""
    marks = [m for m in getattr(function, "pytestmark", []) if m.name == "parametrize"]
    return math.prod(len(list(m.args[1])) for m in marks) if marks else 1


def tests_of(module: Any) -> list[tuple[str, int]]:
    return [
        (name[len("test_") :].replace("_", " "), cases(value))
        for name, value in vars(module).items()
        if name.startswith("test_") and callable(value)
    ]


def render() -> str:
    lines = ["| what | file | cases |", "| --- | --- | --- |"]
    details = []
    for module_name, what in MATRIX:
        module = importlib.import_module(module_name)
        found = tests_of(module)
        path = module_name.replace(".", "/") + ".py"
        lines.append(f"| {what} | `{path}` | {sum(n for _, n in found)} |")
        names = "; ".join(f"{name} (×{n})" if n > 1 else name for name, n in found)
        details.append(f"- `{path}`: {names}.")
    # Each suite's own bad-input file (tests/suites/<suite>/test_bad_input.py), found by name so a
    # new suite's cases are counted without editing this table.
    suite_files = sorted((REPO / "tests" / "suites").glob("*/test_bad_input.py"))
    per_suite = []
    for path in suite_files:
        module = importlib.import_module(f"tests.suites.{path.parent.name}.test_bad_input")
        per_suite.append((path.parent.name, sum(n for _, n in tests_of(module))))
    if per_suite:
        counts = ", ".join(f"{suite} {n}" for suite, n in per_suite)
        lines.append(
            f"| each suite's own data, models and settings ({counts}): one `ERROR:` line each "
            f"| `tests/suites/<suite>/test_bad_input.py` | {sum(n for _, n in per_suite)} |"
        )
    fuzz = importlib.import_module("tests.test_fuzz_inputs")
    n_fuzz = len(fuzz.TARGETS) * len(fuzz.DAMAGES)
    lines.append(
        f"| fuzzing through the plugin: {len(fuzz.TARGETS)} files × {len(fuzz.DAMAGES)} kinds of damage, "
        f"{fuzz.CI_EXAMPLES} examples each in CI (40 with `--hypothesis-profile=unlearn-fuzz`) "
        f"| `tests/test_fuzz_inputs.py` | {n_fuzz} |"
    )
    details.append(
        f"- `tests/test_fuzz_inputs.py`: files {', '.join(fuzz.TARGETS)}; damage that must keep every verdict: "
        f"{', '.join(fuzz.NEUTRAL)}; damage that must end in one error line or a scorecard whose moved verdicts "
        f"carry a warning: {', '.join(fuzz.DESTRUCTIVE)}."
    )
    faults = importlib.import_module("tests.test_faults")
    lines.append(
        f"| SIGKILL during each cached pass and the scorecard write, then rerun to the clean scorecard "
        f"| `tests/test_faults.py`, `tests/test_cache.py` | {len(faults.SUITES)} suites + genmu |"
    )
    details.append(
        f"- `tests/test_faults.py`: {', '.join(sorted(faults.SUITES))} killed after 0, 1, ... finished cached "
        f"inputs (semeval: {', '.join(faults.ENTRIES)}; tofu: the model's and the reference's answer losses and "
        "generations) and halfway through the scorecard write; `tests/test_cache.py`: genmu killed between "
        "image batches."
    )
    return "\n".join(lines + [""] + details + [""] + attack_table()) + "\n"


def attack_classes() -> list[tuple[str, str, str, int]]:
    """(class, what its cases try, file, cases) of every ``tests/test_attack_*.py``, found by name:
    a module's docstring opens with ``class: what is tried``, so a new attack module is listed by
    ``--write`` without editing this file."""
    found = []
    for path in sorted((REPO / "tests").glob("test_attack_*.py")):
        module = importlib.import_module(f"tests.{path.stem}")
        first = (module.__doc__ or path.stem).strip().splitlines()[0].rstrip(".")
        name, _, what = first.partition(":")
        if not what:
            name, what = path.stem[len("test_attack_") :].replace("_", " "), first
        found.append((name.strip(), what.strip(), f"tests/{path.name}", sum(n for _, n in tests_of(module))))
    return found


def attack_table() -> list[str]:
    """The attack classes of the release gate (issue 23): each tried through the real plugin."""
    classes = attack_classes()
    if not classes:
        return []
    total = sum(n for *_, n in classes)
    lines = [
        f"Attack classes ({len(classes)} classes, {total} cases; each case runs the plugin and asserts the exit "
        "status, the scorecard's status and the one line):",
        "",
        "| class | what is tried | file | cases |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {name} | {what} | `{path}` | {n} |" for name, what, path, n in classes]
    return lines


def replace_block(readme: str, block: str) -> str:
    start = readme.index(START) + len(START) + 1
    end = readme.index(END)
    return readme[:start] + block + readme[end:]


def current_block(readme: str) -> str:
    start = readme.index(START) + len(START) + 1
    return readme[start : readme.index(END)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite the README block in place")
    args = parser.parse_args(argv)
    block = render()
    if args.write:
        README.write_text(replace_block(README.read_text(), block))
    else:
        sys.stdout.write(block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
