"""Command-line helpers: ``python -m pytest_unlearn options-table``."""

from __future__ import annotations

import argparse
import sys

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
    args = parser.parse_args(argv)
    if args.command == "options-table":
        sys.stdout.write(options_table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
