"""pytest-unlearn: every threshold of an unlearning challenge becomes a test case.

This module is deliberately thin: options, hooks and items. The work lives in pytest-free
modules (``session``, ``evaluation``, ``manifest``, ``scorecard`` and the suite packages), and
nothing heavy (torch, transformers) is imported until a check needs a model.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.options import OPTIONS, OPTIONS_BY_DEST, as_path, resolve, suite_inputs
from pytest_unlearn.scorecard import CheckResult, format_number, render_table

STATE_KEY = pytest.StashKey["RunState"]()
RESULT_KEY = pytest.StashKey[list]()  # the check results a test produced (a suite check: one)
CARD_KEY = pytest.StashKey[dict]()
WRITE_ERROR_KEY = pytest.StashKey[str]()
NO_CARD_KEY = pytest.StashKey[str]()
NOTICES_KEY = pytest.StashKey[list]()  # one line per deprecated flag used, with its new spelling
CPU_POLICY_KEY = pytest.StashKey[str]()  # the OpenMP wait policy of the run, as the header says it
# Report attribute carrying a test's check results; pytest serializes extra report attributes,
# so the results also reach the pytest-xdist controller from its workers.
REPORT_ATTR = "unlearn_results"
# config.workeroutput key of what a worker's backend computed (merged by the controller).
WORKER_STATE = "unlearn_state"
DEFAULT_CACHE_DIR = ".unlearn-cache"
LOADGROUP_INPUT = "unlearn_loadgroup"  # workerinput key


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("unlearn", "certify unlearned models (pytest-unlearn)")
    for spec in OPTIONS:
        # argparse %-formats help strings (%(default)s): a literal % must be doubled, or
        # `pytest --help` crashes for every project that has the plugin installed.
        kwargs: dict[str, Any] = {"dest": spec.dest, "help": spec.help.replace("%", "%%"), "default": None}
        if spec.flag_only:
            kwargs["action"] = "store_true"
        elif spec.multiple:
            kwargs["action"] = "append"
        if spec.metavar and not spec.flag_only:
            kwargs["metavar"] = spec.metavar
        group.addoption(*spec.flags, **kwargs)
        parser.addini(
            spec.ini,
            help=spec.help,
            type="linelist" if spec.multiple else "string",
            default=[] if spec.multiple else "",
        )


def _resolved_options(config: pytest.Config) -> dict[str, tuple[Any, str]]:
    """Each option's value and where it came from (a flag, an environment variable, ini)."""
    return {
        spec.dest: resolve(spec, config.getoption(spec.dest), os.environ, config.getini(spec.ini)) for spec in OPTIONS
    }


def _path_sources(resolved: dict[str, tuple[Any, str]]) -> dict[str, dict[str, Any]]:
    """The scorecard's record of where every path given came from (so a path left in a CI
    environment, PYTEST_UNLEARN_PREDICTIONS say, shows as such)."""
    from pytest_unlearn.session import PATH_OPTIONS

    found = {}
    for dest in PATH_OPTIONS:
        value, source = resolved[dest]
        if value in (None, "", []) or source == "default":
            continue
        found[dest] = {"flag": OPTIONS_BY_DEST[dest].flag, "value": value, "from": source}
    return found


#: Marks that would keep a suite check from producing its value (or turn a fail into a pass).
REFUSED_MARKS = ("skip", "skipif", "xfail")
#: Where a mark applied from outside comes from: the first frame outside these.
_OWN_CODE = (os.sep + "_pytest" + os.sep, os.sep + "pluggy" + os.sep, os.sep + "pytest_unlearn" + os.sep)


def _shown_path(filename: str) -> str:
    try:
        return os.path.relpath(filename)
    except ValueError:  # another drive (Windows)
        return filename


def _applied_by() -> str:
    """``conftest.py:12 (pytest_collection_modifyitems)``: who called add_marker."""
    import inspect

    frame = inspect.currentframe()
    while frame is not None:
        filename = frame.f_code.co_filename
        if not any(part in filename for part in _OWN_CODE) and not filename.endswith(os.sep + "pytest.py"):
            return f"{_shown_path(filename)}:{frame.f_lineno} ({frame.f_code.co_name})"
        frame = frame.f_back
    return "a plugin"


def _gpu_count() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count()


def _pin_devices(config: pytest.Config, devices: tuple[int, ...] | None, suite_selected: bool) -> None:
    """Before anything touches CUDA: one GPU per xdist worker (CUDA_VISIBLE_DEVICES)."""
    from pytest_unlearn import workers

    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        if not devices:
            return
        workers.check_devices(devices, os.environ, _gpu_count)
        if getattr(config.option, "dist", "no") != "no":
            return  # the controller evaluates nothing; its workers inherit its environment
        pin = workers.pinned_device(0, devices, os.environ)
    elif devices or suite_selected:
        pin = workers.pinned_device(workers.worker_number(workerinput["workerid"]), devices, os.environ)
    else:
        return
    if pin is not None:
        os.environ[workers.CUDA_ENV] = pin


def _prefer_loadgroup(config: pytest.Config) -> None:
    """``-n N`` means ``--dist load``; make it ``loadgroup`` (checks sharing an input share a
    worker) unless the user chose a mode. Runs after xdist's pytest_cmdline_main set it."""
    chosen = getattr(config.known_args_namespace, "dist", "no")
    if getattr(config.option, "dist", "no") == "load" and chosen == "no" and not config.option.distload:
        config.option.dist = "loadgroup"


def _cache_dir(config: pytest.Config, values: dict[str, Any]) -> Path | None:
    if values["unlearn_no_cache"]:
        return None
    return as_path(values["unlearn_cache_dir"]) or config.rootpath / DEFAULT_CACHE_DIR


def _pytest_strict(config: pytest.Config) -> bool:
    """pytest's own ``--strict`` / ``strict = true`` (pytest >= 9) enables every strictness
    option, ours included."""
    if config.getoption("strict", False):
        return True
    try:
        return bool(config.getini("strict"))
    except ValueError:  # pytest < 9 has no such ini option
        return False


def pytest_configure(config: pytest.Config) -> None:
    try:
        resolved = _resolved_options(config)
        values = {dest: value for dest, (value, _) in resolved.items()}
        _pin_devices(config, values["unlearn_devices"], bool(values["unlearn_suite"]))
        if not values["unlearn_suite"] or config.getoption("help", False):
            return  # --help with --suite lists the suite's settings (pytest_cmdline_main), nothing runs
        if config.pluginmanager.hasplugin("xdist"):
            if not hasattr(config, "workerinput"):
                _prefer_loadgroup(config)
            elif config.workerinput.get(LOADGROUP_INPUT):
                # Workers parse the original arguments (-n N, no --dist): xdist tags nodeids
                # with their group only where this is set.
                config.option.loadgroup = True
        from pytest_unlearn.evaluation import RunSettings
        from pytest_unlearn.noise import silence_third_party_noise
        from pytest_unlearn.session import RunState, default_artifacts_dir
        from pytest_unlearn.stress import parse_stresses

        silence_third_party_noise()  # never inside a check's captured output
        if not hasattr(config, "workerinput"):
            from pytest_unlearn.workers import choose_wait_policy

            # Before any torch import of the run: libgomp reads the policy once, when torch loads
            # it. Decided once, here: xdist workers inherit this environment (sampling again
            # there would see their siblings starting up as "other processes").
            config.stash[CPU_POLICY_KEY] = choose_wait_policy(os.environ, torch_loaded="torch" in sys.modules)

        scorecard = Path(values["unlearn_scorecard"]).expanduser()
        suite = suite_inputs(resolved)
        settings = RunSettings(
            model=as_path(values["unlearn_model"][0]) if len(values["unlearn_model"]) == 1 else None,
            models=tuple(values["unlearn_model"]),
            data=suite.data,
            data_paths=suite.data_paths,
            artifacts=as_path(values["unlearn_artifacts"]) or default_artifacts_dir(scorecard),
            device=values["unlearn_device"],
            dtype=values["unlearn_dtype"],
            batch_size=values["unlearn_batch_size"],
            predictions=as_path(values["unlearn_predictions"]),
            allow_pickle=bool(values["unlearn_allow_pickle"]),
            thresholds=dict(values["unlearn_threshold"]),
            original_model=as_path(values["unlearn_original_model"]),
            reference=as_path(values["unlearn_reference"]),
            overrides=suite.overrides,
            setting_sources=suite.sources,
            ignorable_settings=suite.ignorable,
            cache_dir=_cache_dir(config, values),
            strict=bool(values["unlearn_strict"]) or _pytest_strict(config),
            stresses=parse_stresses(values["unlearn_stress"]),
        )
        config.stash[NOTICES_KEY] = suite.notices
        _export_input_cap(config, values["unlearn_max_input_mib"])
        state = RunState.start(
            values["unlearn_suite"],
            settings,
            scorecard,
            baseline=as_path(values["unlearn_baseline"]),
            baseline_tolerance=values["unlearn_baseline_tolerance"],
            partial_ok=bool(values["unlearn_partial"]),
            option_sources=_path_sources(resolved),
            own_outputs=not hasattr(config, "workerinput"),
        )
    except UnlearnError as exc:
        _restore_input_cap(config)
        raise pytest.UsageError(str(exc)) from None
    config.stash[STATE_KEY] = state
    if not hasattr(config, "workerinput"):  # xdist workers have no terminal of their own
        progress = _ProgressLines(config)
        config.pluginmanager.register(progress, "unlearn-progress")
        state.backend.progress = progress


@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config: pytest.Config) -> Any:
    """``pytest --help --suite NAME``: after pytest's help, the suite's settings."""
    code = yield
    if config.getoption("help", False):
        tw = config.get_terminal_writer()
        suite = resolve(OPTIONS_BY_DEST["unlearn_suite"], config.getoption("unlearn_suite"), os.environ, "")[0]
        tw.line()
        if not suite:
            tw.line("unlearn: pass --suite NAME with --help to list that suite's settings (--setting KEY=VALUE)")
            return code
        from pytest_unlearn.evaluation import settings_table

        try:
            for line in settings_table(suite):
                tw.line(line)
        except UnlearnError as exc:
            tw.line(f"unlearn: {exc}")
    return code


INPUT_CAP_KEY = pytest.StashKey[tuple]()


def _export_input_cap(config: pytest.Config, mib: int) -> None:
    """The loaders read the input cap from its environment twin; restored at unconfigure, so
    an in-process run (pytester) leaves the environment as it found it."""
    from pytest_unlearn.files import MAX_INPUT_ENV

    config.stash[INPUT_CAP_KEY] = (MAX_INPUT_ENV, os.environ.get(MAX_INPUT_ENV))
    os.environ[MAX_INPUT_ENV] = str(mib)


def _restore_input_cap(config: pytest.Config) -> None:
    saved = config.stash.get(INPUT_CAP_KEY, None)
    if saved is None:
        return
    name, before = saved
    if before is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = before
    del config.stash[INPUT_CAP_KEY]


def pytest_unconfigure(config: pytest.Config) -> None:
    state = _state(config)
    if state is not None:
        state.release()
    _restore_input_cap(config)


class _ProgressLines:
    """Progress lines on the terminal, past output capturing (generation takes minutes), quiet
    under -q. Each is a line of its own; pytest's result line it interrupted (``genmu ..``, or
    ``genmu::check`` under -v) is started again with its prefix before the next result, so
    the results never continue on a progress line."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.prefix: Path | str | None = None  # the result line interrupted, to write again

    def __call__(self, message: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None or self.config.get_verbosity() < 0:
            return
        interrupted = reporter.currentfspath
        if isinstance(interrupted, (Path, str)):
            self.prefix = interrupted
        # The check runs with output captured: the terminal's stream is the captured one then.
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            reporter.ensure_newline()
            reporter.write_line(message, flush=True)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if self.prefix is None or reporter is None:
            return
        prefix, self.prefix = self.prefix, None
        if isinstance(prefix, Path) and prefix != self.config.rootpath / report.nodeid.split("::")[0]:
            return  # another file's result: pytest starts its own line
        text = os.path.relpath(prefix, reporter.startpath) + " " if isinstance(prefix, Path) else prefix
        reporter.write(text)
        reporter.currentfspath = prefix  # pytest goes on writing on this line


def _state(config: pytest.Config) -> Any:
    return config.stash.get(STATE_KEY, None)


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    state = _state(config)
    if state is None:
        return None
    manifest = state.manifest
    lines = [
        f"unlearn: suite {manifest.name} {manifest.version} ({manifest.path}), "
        f"{len(manifest.checks)} checks, bootstrap_seed={manifest.settings.get('seed', 0)} "
        f"bootstrap_samples={manifest.settings.get('bootstrap_samples', 1000)}",
    ]
    lines += state.backend.header_lines()
    if CPU_POLICY_KEY in config.stash and not str(state.settings.device or "").startswith("cuda"):
        from pytest_unlearn.workers import cpu_rule

        workers = getattr(config.option, "numprocesses", 0)
        lines.append(cpu_rule(workers if isinstance(workers, int) else 0, config.stash[CPU_POLICY_KEY]))
    if state.settings.thresholds:
        overrides = " ".join(f"--threshold {k}={v:g}" for k, v in state.settings.thresholds.items())
        lines.append(f"unlearn: overrides {overrides}")
    cache = state.settings.cache_dir
    lines.append(f"unlearn: artifact cache {cache} (--no-cache to bypass)" if cache else "unlearn: artifact cache off")
    if getattr(config.option, "dist", "no") == "loadgroup":
        lines.append("unlearn: --dist loadgroup, checks that share an input run on one worker")
    return lines


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # `pytest --model M --suite S` runs the suite's checks only; name paths on the command
    # line to run your own tests beside them. Directories are still walked (ignoring them
    # would make pytest report the test paths as not found), their files are not collected.
    if _state(config) is None or config.args_source == pytest.Config.ArgsSource.ARGS:
        return None
    return True if collection_path.is_file() else None


class SuiteCollector(pytest.Collector):
    """One node per suite; its children are the checks of the manifest."""

    def collect(self) -> list[pytest.Item]:
        state = _state(self.config)
        return [
            CheckItem.from_parent(self, name=f"{spec.id}[{spec.op}{spec.threshold:g}]", spec=spec)
            for spec in state.manifest.checks
        ]


class CheckFailed(Exception):
    """A check ran and its value missed the threshold (or could not be computed)."""

    def __init__(self, result: CheckResult) -> None:
        super().__init__(result.sentence())
        self.result = result


def _keep_result(item: pytest.Item, result: CheckResult) -> None:
    """A check's result travels with the test's report (to the xdist controller too) and its
    numbers become JUnit properties."""
    item.stash.setdefault(RESULT_KEY, []).append(result)
    item.user_properties.extend(
        [
            ("unlearn.metric", result.metric),
            ("unlearn.value", "" if result.value is None else repr(result.value)),
            ("unlearn.op", result.op),
            ("unlearn.threshold", repr(result.threshold)),
            ("unlearn.passed", str(result.passed).lower()),
            ("unlearn.n", "" if result.n is None else str(result.n)),
            ("unlearn.ci95", "" if result.ci95 is None else f"{result.ci95[0]!r},{result.ci95[1]!r}"),
        ]
    )


class CheckItem(pytest.Item):
    def __init__(self, *, spec: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec

    def add_marker(self, marker: Any, append: bool = True) -> None:
        """A skip/skipif/xfail from outside the suite (a conftest, a plugin) is refused: the mark
        is dropped, so the check still runs, and the gate fails with a line naming who applied it."""
        name = marker if isinstance(marker, str) else getattr(marker, "name", None)
        if name in REFUSED_MARKS:
            _refuse(self.config, f"pytest.mark.{name} applied to {{checks}} by {_applied_by()}", self.nodeid)
            return
        super().add_marker(marker, append=append)

    def runtest(self) -> None:
        result = _state(self.config).evaluate(self.spec)
        _keep_result(self, result)
        if not result.passed:
            raise CheckFailed(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, CheckFailed):
            return excinfo.value.result.sentence()
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.parent.name}::{self.name}"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    # tryfirst: the suite's items must exist before -k/-m/--deselect filter the list.
    state = _state(config)
    if state is None:
        return
    collector = SuiteCollector.from_parent(session, name=state.manifest.name, nodeid=state.manifest.name)
    checks = collector.collect()
    # Report them as collected, so "collected N items" and the selected count include them.
    session.ihook.pytest_collectreport(report=pytest.CollectReport(collector.nodeid, "passed", None, checks))
    items.extend(checks)


@pytest.hookimpl(trylast=True, specname="pytest_collection_modifyitems")
def pytest_unlearn_group_checks(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """After -k/-m/--deselect: group the selected checks by the inputs they share (xdist)."""
    if _state(config) is None or not config.pluginmanager.hasplugin("xdist"):
        return
    from pytest_unlearn.evaluation import check_groups
    from pytest_unlearn.stress import stress_groups

    checks = [item for item in items if isinstance(item, CheckItem)]
    manifest = _state(config).manifest
    groups = check_groups(manifest, [item.spec for item in checks if not item.spec.stress], _state(config).backend)
    groups |= stress_groups(manifest.name, [item.spec for item in checks])
    # A loadgroup worker reports nodeids ending in @group, which xdist's scheduler groups by.
    # xdist 3.8 appends it by assigning item._nodeid, which pytest 9.2 no longer reads (nodeids
    # live in item._id), so the checks are made again with the suffix in their nodeid.
    suffix = hasattr(config, "workerinput") and config.getvalue("loadgroup")
    for index, item in enumerate(items):
        if not isinstance(item, CheckItem):
            continue
        group = groups[item.spec.id]
        if suffix:
            item = CheckItem.from_parent(item.parent, name=item.name, spec=item.spec, nodeid=f"{item.nodeid}@{group}")
            items[index] = item
        item.add_marker(pytest.mark.xdist_group(group))


def _refuse(config: pytest.Config, line: str, nodeid: str) -> None:
    state = _state(config)
    if state is not None:
        state.refuse(line, nodeid)


def pytest_collection_finish(session: pytest.Session) -> None:
    state = _state(session.config)
    if state is not None:
        state.selected = [item.spec.id for item in session.items if isinstance(item, CheckItem)]
        for item in session.items:
            if not isinstance(item, CheckItem):
                continue
            # Marks that bypassed add_marker (own_markers edited, a mark on the session) are
            # dropped too; who put them there is not known.
            for node in item.listchain():
                for mark in [m for m in node.own_markers if m.name in REFUSED_MARKS]:
                    where = node.nodeid or "the session"
                    _refuse(session.config, f"pytest.mark.{mark.name} put on {{checks}} by a conftest or plugin", where)
                    node.own_markers.remove(mark)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if call.when == "call" and RESULT_KEY in item.stash:
        setattr(report, REPORT_ATTR, [result.to_json() for result in item.stash[RESULT_KEY]])
    return report


class _ResultSink:
    """Receives check results from reports (in this process or from xdist workers)."""

    def __init__(self, state: Any, controller: bool) -> None:
        self.state = state
        self.controller = controller

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        payload = getattr(report, REPORT_ATTR, None)
        if payload is not None and report.when == "call":
            for result in payload:
                self.state.record(CheckResult.from_json(result))
                if self.controller:
                    self.state.start_checks()  # a user's check counts as a check that ran
        if self.controller and report.nodeid.startswith(f"{self.state.manifest.name}::"):
            # A suite check never skips or xfails itself: one that did was made to by a hook or
            # fixture from outside (pytest.skip/xfail); its value is missing, and the gate says who.
            if hasattr(report, "wasxfail"):
                self.state.refuse(
                    "{checks} turned into an expected failure from outside the suite "
                    f"({report.wasxfail or 'pytest.xfail'}); a suite check cannot be xfailed",
                    report.nodeid,
                )
            elif report.skipped:
                where = ""
                if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
                    path, lineno, reason = report.longrepr
                    where = f" at {_shown_path(str(path))}:{lineno} ({reason})"
                self.state.refuse(f"{{checks}} skipped{where}; a suite check cannot be skipped", report.nodeid)


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    state = _state(session.config)
    if state is not None:
        controller = not hasattr(session.config, "workerinput")
        session.config.pluginmanager.register(_ResultSink(state, controller), "unlearn-result-sink")
        if not hasattr(session.config, "workerinput"):
            session.config.pluginmanager.register(_StartWatcher(state), "unlearn-start-watcher")
            reporter = session.config.pluginmanager.get_plugin("terminalreporter")
            for notice in session.config.stash.get(NOTICES_KEY, []):
                if reporter is not None:
                    reporter.write_line(f"warning: {notice}", yellow=True)


class _StartWatcher:
    """On the controller (xdist relays its workers' starts): the first check to start marks the
    scorecard running, so a run killed outright never leaves the previous card in place."""

    def __init__(self, state: Any) -> None:
        self.state = state
        self.prefix = f"{state.manifest.name}::"

    @pytest.hookimpl
    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        if not self.state.checks_started and nodeid.startswith(self.prefix):
            self.state.start_checks()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = _state(session.config)
    if state is None:
        return
    if hasattr(session.config, "workerinput"):
        # Check results travel in the reports; what the scorecard needs besides them (the
        # inputs behind the aggregates, artifacts, reports) goes once, at the end.
        session.config.workeroutput[WORKER_STATE] = {
            "selected": list(state.selected),
            "backend": state.backend.export_state(),
            "weights": state.weights,
            "refused": {k: list(v) for k, v in state.refused.items()},
        }
        return
    if not state.checks_started:
        why = "--collect-only" if session.config.option.collectonly else "no check selected"
        kept = f"{state.scorecard_path} left as it was" if state.scorecard_path.exists() else "none written"
        session.config.stash[NO_CARD_KEY] = f"unlearn: no check ran ({why}); scorecard {kept}"
        if not session.config.option.collectonly and not state.partial_ok:
            # Only the user's own tests ran (-k, paths): they must not pass for the suite.
            session.config.stash[GATE_LINES_KEY] = [state.gate_line(state.missing())]
            _fail_gate(session)
        return
    card = state.scorecard(interrupted=exitstatus == pytest.ExitCode.INTERRUPTED)
    error = state.write(card)
    session.config.stash[CARD_KEY] = card
    lines = []
    if card["missing_checks"] and card["status"] == "partial":
        lines.append(state.gate_line(card["missing_checks"]))
    lines += [f"ERROR: unlearn: {line}" for line in card["gate"]["refused_marks"]]
    lines += [f"ERROR: {line}" for line in card["gate"]["weights_changed"]]
    failed = [c["id"] for c in card["checks"] if not c["passed"]]
    if failed and session.exitstatus == pytest.ExitCode.OK:
        # pytest counted them as passed (a hook swallowed the failure, an xfail turned into a
        # pass): the card's verdict is the gate's.
        lines.append(
            f"ERROR: unlearn: {len(failed)} check(s) failed but pytest reported no failure ({', '.join(failed[:5])}); "
            "a hook or plugin changed their outcome: the exit status follows the scorecard"
        )
    session.config.stash[GATE_LINES_KEY] = lines
    if (
        (card["missing_checks"] and not state.partial_ok)
        or card["gate"]["refused_marks"]
        or card["gate"]["weights_changed"]
        or failed
    ):
        _fail_gate(session)
    if error is not None:
        session.config.stash[WRITE_ERROR_KEY] = error
        if session.exitstatus == pytest.ExitCode.OK:
            # A gate whose scorecard is not where the pipeline looks for it has not passed.
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


GATE_LINES_KEY = pytest.StashKey[list]()
#: The exit status of a gate that did not pass for a reason pytest does not count as a failure
#: (a check missing, a refused mark, weights changed during the run): that of failed tests.
GATE_EXIT = pytest.ExitCode.TESTS_FAILED


def _fail_gate(session: pytest.Session) -> None:
    if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = GATE_EXIT


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist, on the controller: tell a new worker that the run switched to loadgroup."""
    if _state(node.config) is not None and getattr(node.config.option, "dist", "no") == "loadgroup":
        node.workerinput[LOADGROUP_INPUT] = True


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist: a worker finished; merge what it computed into the controller's state."""
    state = _state(node.config)
    payload = getattr(node, "workeroutput", {}).get(WORKER_STATE)
    if state is None or payload is None:
        return
    state.backend.import_state(payload["backend"])
    state.merge_weights(payload.get("weights", {}))
    for template, nodeids in payload.get("refused", {}).items():
        for nodeid in nodeids:
            state.refuse(template, nodeid)
    if not state.selected:  # the controller does not collect: every worker collects all checks
        state.selected = list(payload["selected"])


# -- fixtures for the user's own tests -------------------------------------------------------------
NO_SUITE = "the unlearn_* fixtures need a suite: pass --suite NAME and --model PATH (see --help, group unlearn)"


def _offered(request: pytest.FixtureRequest, capability: str) -> Any:
    """The run's state when its suite offers ``capability`` to the user's tests, else a skip."""
    state = _state(request.config)
    if state is None:
        pytest.skip(NO_SUITE)
    if capability not in state.backend.USER_API:
        pytest.skip(f"{request.fixturename}: the {state.manifest.name} suite does not offer it")
    return state


def _needs_model(request: pytest.FixtureRequest, state: Any, flag: str = "--model", attr: str = "model") -> None:
    if getattr(state.settings, attr, None) is None:
        pytest.skip(f"{request.fixturename} needs the model: pass {flag} PATH")


def _fail_clearly(call: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return call(*args, **kwargs)
    except UnlearnError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def unlearn_model(request: pytest.FixtureRequest) -> Any:
    """The run's loaded model (--model), loaded once and shared with the suite's own checks."""
    state = _offered(request, "model")
    _needs_model(request, state)
    return _fail_clearly(state.backend.user_model, "model")


@pytest.fixture(scope="session")
def unlearn_original_model(request: pytest.FixtureRequest) -> Any:
    """The model before unlearning (--original-model), loaded once."""
    state = _offered(request, "original")
    _needs_model(request, state, "--original-model", "original_model")
    return _fail_clearly(state.backend.user_model, "original")


@pytest.fixture(scope="session")
def unlearn_reference(request: pytest.FixtureRequest) -> Any:
    """The reference model trained without the forget set (--reference), loaded once."""
    state = _offered(request, "reference")
    _needs_model(request, state, "--reference", "reference")
    return _fail_clearly(state.backend.user_model, "reference")


@pytest.fixture(scope="session")
def unlearn_images(request: pytest.FixtureRequest) -> Any:
    """``unlearn_images(prompts, seeds, model=None)``: one image per (prompt, seed) with the
    suite's generation settings, through the cache (``model``: "original" or a concept's model)."""
    state = _offered(request, "images")
    if state.settings.model is None and state.manifest.settings.get("images") is None:
        pytest.skip(f"{request.fixturename} needs the model: pass --model PATH")
    return lambda prompts, seeds, model=None: _fail_clearly(
        state.backend.user_images, list(prompts), [int(s) for s in seeds], model
    )


@pytest.fixture(scope="session")
def unlearn_judge(request: pytest.FixtureRequest) -> Any:
    """``unlearn_judge(images, prompts)``: what the suite's judge sees in each image (``.sees``,
    ``.label``) and its CLIP score with its prompt (``.clip_score``), through the cache."""
    state = _offered(request, "judge")
    return lambda images, prompts: _fail_clearly(state.backend.user_judge, list(images), list(prompts))


@pytest.fixture(scope="session")
def unlearn_generate(request: pytest.FixtureRequest) -> Any:
    """``unlearn_generate(prompts, **overrides)``: greedy continuations with the suite's settings,
    batched, through the artifact cache."""
    state = _offered(request, "generate")
    _needs_model(request, state)
    return lambda prompts, **overrides: _fail_clearly(state.backend.user_generate, list(prompts), **overrides)


@pytest.fixture(scope="session")
def unlearn_nll(request: pytest.FixtureRequest) -> Any:
    """``unlearn_nll(texts)``: each text's mean token NLL under the model, through the cache."""
    state = _offered(request, "nll")
    _needs_model(request, state)
    return lambda texts: _fail_clearly(state.backend.user_nll, list(texts))


@pytest.fixture(scope="session")
def unlearn_data(request: pytest.FixtureRequest) -> Any:
    """The suite's parsed data: forget/retain rows, MIA sets, MMLU (semeval); concepts (genmu)."""
    state = _offered(request, "data")
    return state.backend.user_data()


@pytest.fixture
def unlearn_check(request: pytest.FixtureRequest) -> Any:
    """``unlearn_check(id, value, op, threshold, n=None, samples=None)``: a check of your own in
    the scorecard, the table and JUnit; the test fails when it misses."""
    state = _state(request.config)
    if state is None:
        pytest.skip(NO_SUITE)
    from pytest_unlearn.user import user_check

    def check(check_id: str, value: float, op: str, threshold: float, n: int | None = None, samples: Any = None):
        settings = state.manifest.settings
        owner = state.user_checks.setdefault(check_id, request.node.nodeid)
        if owner != request.node.nodeid:
            pytest.fail(
                f"unlearn_check({check_id!r}): {owner} records a check of that id already; ids must be unique",
                pytrace=False,
            )
        result = _fail_clearly(
            user_check,
            check_id,
            value,
            op,
            threshold,
            n=n,
            samples=samples,
            nodeid=request.node.nodeid,
            suite_checks=[spec.id for spec in state.manifest.checks],
            seed=int(settings.get("seed", 0)),
            bootstrap_samples=int(settings.get("bootstrap_samples", 1000)),
        )
        _keep_result(request.node, result)
        if not result.passed:
            pytest.fail(result.sentence(), pytrace=False)
        return result

    return check


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = _state(config)
    card = config.stash.get(CARD_KEY, None)
    if NO_CARD_KEY in config.stash:
        terminalreporter.write_line(config.stash[NO_CARD_KEY])
    if state is None or card is None:
        for line in config.stash.get(GATE_LINES_KEY, []):
            terminalreporter.write_line(line, red=not state or not state.partial_ok)
        return
    tr = terminalreporter
    tr.write_sep("=", f"unlearn scorecard: {state.manifest.name} {state.manifest.version}")
    results = state.ordered_results()
    stress_of = {spec.id: spec.stress for spec in state.manifest.checks if spec.stress}
    for line in render_table([r for r in results if r.id not in stress_of]):
        tr.write_line(line)
    for stress in state.settings.stresses:
        # Each stress's checks under a heading that says what made the copy.
        copy = (card.get("stress", {}).get(stress.name) or {}).get("copy") or {}
        library = ", ".join(
            f"{k} {v}" for k, v in (copy.get("library") or {}).items() if k not in ("torch", "transformers")
        )
        # A relearned copy is made by its parameters: say them, as the card does.
        params = " ".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in stress.params.items())
        what = ", ".join(part for part in (stress.kind, params if stress.kind == "relearn" else "", library) if part)
        tr.write_line(f"-- under --stress {stress.name} ({what})")
        for line in render_table([r for r in results if stress_of.get(r.id) == stress.name]):
            tr.write_line(line)
    # Breakdowns (per concept, per layer) stay in the JSON; the terminal shows the numbers.
    aggregates = ", ".join(
        f"{k}={format_number(v)}" for k, v in card["aggregates"].items() if v is None or isinstance(v, (int, float))
    )
    tr.write_line(f"aggregates: {aggregates}")
    status = card["status"]
    if status not in ("complete", "partial"):
        missing = ", ".join(card["missing_checks"]) or "none"
        tr.write_line(f"status: incomplete (checks not run: {missing})")
    for warning in card.get("warnings", []):
        tr.write_line(f"warning: {warning}", yellow=True)
    error = config.stash.get(WRITE_ERROR_KEY, None)
    if error is not None:
        tr.write_line(f"ERROR: {error}", red=True)
    for line in config.stash.get(GATE_LINES_KEY, []):
        tr.write_line(line, red=line.startswith("ERROR") or not state.partial_ok)
    replaced = f" (replaced the earlier {state.replaced})" if state.replaced else ""
    tr.write_line(f"scorecard: {state.scorecard_path}{replaced}")
    _write_where_and_ci_lines(tr, card, state.scorecard_path)


def _write_where_and_ci_lines(tr: Any, card: dict[str, Any], scorecard: Path) -> None:
    """The HTML report's path beside the scorecard's, the GitHub job summary when running
    there, and last a one-line result any CI log can grep."""
    from pytest_unlearn import ci_summary

    report = card["artifacts"].get("report")
    if report:
        tr.write_line(f"report: {report} (one self-contained page: open it anywhere)")
    problem = ci_summary.write_step_summary(card, scorecard, report, os.environ)
    if problem is not None:
        tr.write_line(f"warning: {problem}", yellow=True)
    tr.write_line(ci_summary.one_line(card, scorecard, report))
