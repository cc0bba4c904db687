"""pytest-unlearn: every threshold of an unlearning challenge becomes a test case.

This module is deliberately thin: options, hooks and items. The work lives in pytest-free
modules (``session``, ``evaluation``, ``manifest``, ``scorecard`` and the suite packages), and
nothing heavy (torch, transformers) is imported until a check needs a model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.options import OPTIONS, as_path, resolve
from pytest_unlearn.scorecard import CheckResult, format_number, render_table

STATE_KEY = pytest.StashKey["RunState"]()
RESULT_KEY = pytest.StashKey[CheckResult]()
CARD_KEY = pytest.StashKey[dict]()
# Report attribute carrying a check's result; pytest serializes extra report attributes, so
# the result also reaches the pytest-xdist controller from its workers.
REPORT_ATTR = "unlearn_result"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("unlearn", "certify unlearned models (pytest-unlearn)")
    for spec in OPTIONS:
        kwargs: dict[str, Any] = {"dest": spec.dest, "help": spec.help, "default": None}
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


def _resolved_options(config: pytest.Config) -> dict[str, Any]:
    return {
        spec.dest: resolve(spec, config.getoption(spec.dest), os.environ, config.getini(spec.ini))[0]
        for spec in OPTIONS
    }


def pytest_configure(config: pytest.Config) -> None:
    try:
        values = _resolved_options(config)
        if not values["unlearn_suite"]:
            return
        from pytest_unlearn.evaluation import RunSettings
        from pytest_unlearn.session import RunState, default_artifacts_dir

        scorecard = Path(values["unlearn_scorecard"]).expanduser()
        thresholds = dict(values["unlearn_threshold"])
        overrides = dict(values["unlearn_setting"])
        if values["unlearn_judge"]:
            overrides["judge"] = values["unlearn_judge"]
        settings = RunSettings(
            model=as_path(values["unlearn_model"]),
            data=as_path(values["unlearn_data"]),
            artifacts=as_path(values["unlearn_artifacts"]) or default_artifacts_dir(scorecard),
            device=values["unlearn_device"],
            dtype=values["unlearn_dtype"],
            batch_size=values["unlearn_batch_size"],
            max_new_tokens=values["unlearn_max_new_tokens"],
            predictions=as_path(values["unlearn_predictions"]),
            mmlu=as_path(values["unlearn_mmlu"]),
            mia_data=as_path(values["unlearn_mia_data"]),
            allow_pickle=bool(values["unlearn_allow_pickle"]),
            thresholds=thresholds,
            original_model=as_path(values["unlearn_original_model"]),
            model_config=as_path(values["unlearn_model_config"]),
            clip_model=values["unlearn_clip_model"],
            concepts=tuple(values["unlearn_concept"]),
            images=as_path(values["unlearn_images"]),
            overrides=overrides,
        )
        state = RunState.start(values["unlearn_suite"], settings, scorecard)
    except UnlearnError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[STATE_KEY] = state


def _state(config: pytest.Config) -> Any:
    return config.stash.get(STATE_KEY, None)


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    state = _state(config)
    if state is None:
        return None
    manifest = state.manifest
    lines = [
        f"unlearn: suite {manifest.name} {manifest.version} ({manifest.path}), "
        f"{len(manifest.checks)} checks, seed={manifest.settings.get('seed', 0)}, "
        f"bootstrap_samples={manifest.settings.get('bootstrap_samples', 1000)}",
    ]
    lines += state.backend.header_lines()
    if state.settings.thresholds:
        overrides = " ".join(f"--threshold {k}={v:g}" for k, v in state.settings.thresholds.items())
        lines.append(f"unlearn: overrides {overrides}")
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


class CheckItem(pytest.Item):
    def __init__(self, *, spec: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec

    def runtest(self) -> None:
        result = _state(self.config).backend.evaluate(self.spec)
        self.stash[RESULT_KEY] = result
        self.user_properties.extend(
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


def pytest_collection_finish(session: pytest.Session) -> None:
    state = _state(session.config)
    if state is not None:
        state.selected = [item.spec.id for item in session.items if isinstance(item, CheckItem)]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if call.when == "call" and RESULT_KEY in item.stash:
        setattr(report, REPORT_ATTR, item.stash[RESULT_KEY].to_json())
    return report


class _ResultSink:
    """Receives check results from reports (in this process or from xdist workers)."""

    def __init__(self, state: Any) -> None:
        self.state = state

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        payload = getattr(report, REPORT_ATTR, None)
        if payload is not None and report.when == "call":
            self.state.record(CheckResult.from_json(payload))


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    state = _state(session.config)
    if state is not None:
        session.config.pluginmanager.register(_ResultSink(state), "unlearn-result-sink")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = _state(session.config)
    if state is None or hasattr(session.config, "workerinput"):
        return  # xdist workers send results through their reports; the controller writes
    card = state.scorecard(interrupted=exitstatus == pytest.ExitCode.INTERRUPTED)
    state.write(card)
    session.config.stash[CARD_KEY] = card


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = _state(config)
    card = config.stash.get(CARD_KEY, None)
    if state is None or card is None:
        return
    tr = terminalreporter
    tr.write_sep("=", f"unlearn scorecard: {state.manifest.name} {state.manifest.version}")
    for line in render_table(state.ordered_results()):
        tr.write_line(line)
    # Breakdowns (per concept, per layer) stay in the JSON; the terminal shows the numbers.
    aggregates = ", ".join(
        f"{k}={format_number(v)}" for k, v in card["aggregates"].items() if v is None or isinstance(v, (int, float))
    )
    tr.write_line(f"aggregates: {aggregates}")
    status = card["status"]
    if status != "complete":
        missing = ", ".join(card["missing_checks"]) or "none"
        tr.write_line(f"status: incomplete (checks not run: {missing})")
    tr.write_line(f"scorecard: {state.scorecard_path}")
