"""Every documented ``pytest ... --suite X`` command on a bundled world runs as its page says.

The commands are parsed out of README.md and docs/**/*.md (code blocks, with ``\\`` continuations
joined, and inline code spans). A command whose model, data and other paths are all under
``fixtures/`` (or bundled with the repository, such as ``examples/``) uses a bundled world: it must
end with the verdict it prints, ``# passes`` or ``# fails: CHECK, CHECK``, and is run here, its
``python -m fixtures.build WORLD`` step included, in a fresh folder. Commands over user paths
(``./my-model``) cannot run here; the real-model line is in ``SKIP``. Like the option table's drift
test, this keeps the docs from drifting away from the code.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
#: Bundled-world commands that cannot run here, with the reason (kept small and explicit).
SKIP = {
    "fixtures/models/real/": "needs the real model and data that `python -m fixtures.real_env` downloads",
    # The same two runs, their verdicts and their figures are asserted by
    # tests/suites/unlearncanvas/test_pipelines.py: running them twice cost CI 47 s.
    "fixtures/models/unlearncanvas-pipelines/": "run with the same arguments by tests/suites/unlearncanvas/test_pipelines.py",
}
#: Options whose value is a path (the generic roles and the suites' data flags).
PATH_OPTIONS = (
    "--model", "--original-model", "--reference", "--clip-model", "--data", "--mmlu", "--mia-data",
    "--images", "--predictions", "--model-config",
)  # fmt: skip
#: Suites that generate images: their commands take minutes of CPU each.
DIFFUSION = ("genmu", "evallearn")
VERDICT = re.compile(r"\s+#\s*(passes|fails)(?::\s*([\w\-, ]+))?\s*$")


@dataclass(frozen=True)
class DocCommand:
    """One documented command line: where it is, its text and the verdict it claims."""

    where: str
    text: str

    @property
    def command(self) -> str:
        return VERDICT.sub("", self.text).strip()

    @property
    def verdict(self) -> tuple[str, tuple[str, ...]] | None:
        found = VERDICT.search(self.text)
        if found is None:
            return None
        failing = tuple(sorted(c.strip() for c in (found.group(2) or "").split(",") if c.strip()))
        return found.group(1), failing

    def pytest_args(self) -> list[str]:
        part = next(p for p in self.command.split("&&") if re.match(r"\s*pytest\s", p))
        try:
            return shlex.split(part)[1:]
        except ValueError:  # not shell syntax (a template line): no paths this test could run
            return []

    def builds(self) -> list[str]:
        """The worlds whose models the command names (``fixtures/models/WORLD/...``)."""
        return sorted(set(re.findall(r"fixtures/models/([\w-]+)/", self.command)))

    def paths(self) -> list[str]:
        """The values of the path options and the positional paths (test folders)."""
        args, out, i = self.pytest_args(), [], 0
        while i < len(args):
            name, eq, value = args[i].partition("=")
            if name in PATH_OPTIONS or name == "--setting":
                value = value if eq else (args[i + 1] if i + 1 < len(args) else "")
                # --data ROLE=DIR names a role's folder; --setting KEY=VALUE a path when it has a "/".
                role, has_role, folder = value.partition("=")
                if has_role and re.fullmatch(r"[\w-]+", role):
                    value = folder
                if name != "--setting" or "/" in value:
                    out.append(value)
                i += 1 if eq else 2
            elif args[i].startswith("-"):
                i += 1 if eq or not args[i].startswith("--") else 2  # another option and its value
            else:
                out.append(args[i])
                i += 1
        return out

    def bundled(self) -> bool:
        """Every path is the repository's own (fixtures/, examples/, ...), none a user's."""
        paths = self.paths()
        return bool(paths) and all(
            p and not p.startswith(("./", "/", "~", "$")) and (REPO / p.split("/")[0]).exists() for p in paths
        )

    @property
    def suite(self) -> str:
        args = self.pytest_args()
        for a, b in zip(args, [*args[1:], ""]):
            if a.startswith("--suite="):
                return a.split("=", 1)[1]
            if a == "--suite":
                return b
        return ""


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(line number, command) of code-block lines (continuations joined) and inline code spans."""
    out: list[tuple[int, str]] = []
    in_block, pending, start = False, "", 0
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            in_block = not in_block
            continue
        if in_block:
            if not pending:
                start = number
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1].strip() + " "
                continue
            out.append((start, pending + line.strip()))
            pending = ""
        else:
            out.extend((number, span) for span in re.findall(r"`([^`]+)`", line))
    return out


def doc_commands() -> list[DocCommand]:
    commands = []
    for page in PAGES:
        for number, line in _logical_lines(page.read_text(encoding="utf-8")):
            if re.search(r"(^|&&\s*)pytest\s", line) and "--suite" in line:
                commands.append(DocCommand(f"{page.relative_to(REPO)}:{number}", line))
    return commands


def _skip_reason(command: DocCommand) -> str | None:
    return next((reason for prefix, reason in SKIP.items() if prefix in command.command), None)


def runnable() -> list[DocCommand]:
    """The bundled-world commands to run, each distinct command once."""
    seen: dict[str, DocCommand] = {}
    for command in doc_commands():
        if command.bundled() and _skip_reason(command) is None:
            seen.setdefault(" ".join(command.pytest_args()), command)
    return list(seen.values())


def test_the_docs_hold_the_bundled_commands_and_each_states_its_verdict():
    commands = doc_commands()
    bundled = [c for c in commands if c.bundled()]
    skipped = [c for c in bundled if _skip_reason(c)]
    # The parser finds what the pages hold: every suite's bundled example, and the real-model line.
    assert {c.suite for c in bundled} >= {
        "semeval", "genmu-mini", "evallearn-mini", "tofu-mini", "wmdp-mini", "mufac-mini", "mucac-mini", "muse-mini",
        "rwku-mini",
    }  # fmt: skip
    # Skipped: the real-model line, and the two pipeline commands test_pipelines.py runs.
    assert len(skipped) == 3 and "--model=fixtures/models/real/model" in skipped[0].command
    assert all("fixtures/models/unlearncanvas-pipelines/" in c.command and c.verdict for c in skipped[1:])
    missing = [c.where for c in bundled if c not in skipped and c.verdict is None]
    assert not missing, f"bundled commands without '# passes' or '# fails: CHECK, ...': {missing}"
    # A user-path command is never mistaken for a bundled one.
    assert not any(c.bundled() for c in commands if "./" in c.command)


def test_the_suite_help_lists_every_builtin_suite():
    """`--suite`'s help (and the README's option table) names every bundled suite, from the folders."""
    from pytest_unlearn import builtins  # noqa: F401  (registers the built-in suites)
    from pytest_unlearn.options import OPTIONS, builtin_suites
    from pytest_unlearn.registry import SUITES

    help_text = next(o.help for o in OPTIONS if o.flag == "--suite")
    assert set(builtin_suites()) <= set(SUITES.names())
    assert len(builtin_suites()) >= 15
    listed = re.search(r"a built-in name \(([^)]*)\)", help_text)
    assert listed is not None and listed.group(1).split(", ") == builtin_suites()
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert f"a built-in name ({', '.join(builtin_suites())})" in readme


def _params() -> list:
    params = []
    for command in runnable():
        # unlearncanvas generates images only from a --model (its --setting images= runs are cheap).
        generates = command.suite.startswith("unlearncanvas") and any(
            a.startswith("--model") for a in command.pytest_args()
        )
        marks = [pytest.mark.slow] if generates or any(command.suite.startswith(d) for d in DIFFUSION) else []
        model = next((p.rstrip("/").rsplit("/", 1)[-1] for p in command.paths() if "models/" in p), "")
        extra = "+" + "+".join(p.rstrip("/") for p in command.paths() if not p.startswith("fixtures/"))
        name = f"{command.where.split(':')[0]}:{command.suite}:{model}{extra if extra != '+' else ''}"
        params.append(pytest.param(command, id=name, marks=marks))
    return params


@pytest.mark.parametrize("command", _params())
def test_a_documented_command_runs_as_documented(command: DocCommand, tmp_path: Path, request: pytest.FixtureRequest):
    assert command.verdict is not None, f"{command.where}: no '# passes' / '# fails: ...' verdict"
    claimed, failing = command.verdict
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    if command.suite.startswith(DIFFUSION):
        # The image cache the world tests share (content-addressed: same verdict, images made once).
        env["PYTEST_UNLEARN_CACHE_DIR"] = str(request.getfixturevalue("genmu_cache"))
    # Links to the bundled worlds, as the command's (or the page's) `python -m fixtures.build` makes them.
    for world in command.builds():
        built = subprocess.run(
            [sys.executable, "-m", "fixtures.build", world], cwd=REPO, env=env, capture_output=True, text=True
        )
        assert built.returncode == 0, built.stderr
    # A fresh folder that sees the repository's relative paths (fixtures/, examples/) as the repo root does.
    for name in {p.split("/")[0] for p in command.paths()}:
        (tmp_path / name).symlink_to(REPO / name)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *command.pytest_args()],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    output = result.stdout + result.stderr
    card_path = tmp_path / "unlearn-scorecard.json"
    assert card_path.is_file(), f"{command.where}: no scorecard\n{output[-3000:]}"
    card = json.loads(card_path.read_text())
    failed = tuple(sorted(c["id"] for c in card["checks"] if not c["passed"]))
    if claimed == "passes":
        assert (result.returncode, card["passed"], failed) == (0, True, ()), f"{command.where}\n{output[-3000:]}"
    else:
        assert result.returncode == 1 and card["passed"] is False, f"{command.where}\n{output[-3000:]}"
        assert failed == failing, f"{command.where}: the page says it fails {failing}, it failed {failed}"
