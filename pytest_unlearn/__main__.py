"""Command-line helpers: ``python -m pytest_unlearn options-table``, ``settings``, ``benchscore`` and ``compare``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pytest_unlearn.options import OPTIONS, OptionSpec


def _default(spec: OptionSpec) -> str:
    if spec.flag_only:
        return "off"
    if spec.default in (None, [], ""):
        return ""
    return f"`{spec.default}`"


def options_table() -> str:
    """The README's option table, generated from the plugin's own option definitions."""
    lines = [
        "| flag | ini / environment | default | meaning |",
        "| --- | --- | --- | --- |",
    ]
    for spec in OPTIONS:
        flags = ", ".join(f"`{f}{'' if spec.flag_only else ' ' + (spec.metavar or 'VALUE')}`" for f in spec.flags)
        repeat = " (repeatable)" if spec.multiple else ""
        row = f"| {flags} | `{spec.ini}` / `{spec.env}` | {_default(spec)} | {spec.help}{repeat} |"
        lines.append(row.replace("NAME|PATH", "NAME\\|PATH").replace("DIR|SPEC", "DIR\\|SPEC"))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_unlearn")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("options-table", help="print the README's option table (Markdown)")
    listing = commands.add_parser("settings", help="list a suite's settings: types, ranges, defaults")
    listing.add_argument("suite", metavar="SUITE", help="a registered suite name or a manifest path")
    bench = commands.add_parser(
        "benchscore", help="rank evallearn scorecards (one per technique) by eval-learn's BenchScore"
    )
    bench.add_argument("scorecards", nargs="+", type=Path, metavar="SCORECARD", help="evallearn scorecard JSON files")
    bench.add_argument(
        "--corrected-ua",
        action="store_true",
        help="count UA as norm(UA) under safety (eval-learn uses 1 - norm(UA) although UA is higher-is-better)",
    )
    bench.add_argument(
        "--json", type=Path, default=Path("benchscore.json"), metavar="OUT", help="where to write the leaderboard"
    )
    compare = commands.add_parser(
        "compare", help="checks and aggregates of scorecards side by side; exit 1 on a regression against the first"
    )
    compare.add_argument("scorecards", nargs="+", type=Path, metavar="SCORECARD", help="OLD.json NEW.json [...]")
    compare.add_argument("--markdown", action="store_true", help="a Markdown table (e.g. for a CI job summary)")
    args = parser.parse_args(argv)
    if args.command == "compare":
        from pytest_unlearn.baseline import compare_main

        return compare_main(args.scorecards, markdown=args.markdown)
    if args.command == "settings":
        from pytest_unlearn.errors import UnlearnError

        try:
            from pytest_unlearn.evaluation import settings_table

            sys.stdout.write("\n".join(settings_table(args.suite)) + "\n")
        except UnlearnError as exc:
            sys.stderr.write(f"error: {exc}\n")
            return 2
        return 0
    if args.command == "options-table":
        sys.stdout.write(options_table())
    elif args.command == "benchscore":
        from pytest_unlearn.evallearn.benchscore import main as benchscore_main

        return benchscore_main(args.scorecards, corrected_ua=args.corrected_ua, json_path=args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
