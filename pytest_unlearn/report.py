"""The HTML report a person opens after a failed gate: ``<scorecard>.html``. Pure Python.

Self-contained (inline CSS, inline SVG plots made here, images by relative path, nothing from
the network): the check table with each value, threshold, 95% interval drawn as a bar, verdict
and baseline delta, then the suite's own sections (the worst examples of each failing check,
loss histograms, per-subject accuracy).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_unlearn.files import write_bytes_atomic
from pytest_unlearn.scorecard import format_number

CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}"
    "td,th{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;font-size:13px;vertical-align:top}"
    ".PASS{color:#1a7f37;font-weight:bold}.FAIL,.ERROR{color:#c62828;font-weight:bold}"
    ".regressed{color:#c62828}pre{white-space:pre-wrap;margin:0;max-width:40em}h2{margin-top:2em}"
    "svg text{font-size:11px;font-family:system-ui,sans-serif}"
    # genmu's grids: the judge sees the concept (red outline) or not (green).
    "img{width:128px;image-rendering:pixelated}.absent{outline:3px solid #2a2}.present{outline:3px solid #c22}"
)
E = html.escape


def interval_svg(value: float | None, threshold: float, ci: Sequence[float] | None, op: str) -> str:
    """A small bar: the passing side of the threshold shaded, the interval as a line, the value a dot."""
    points = [p for p in (value, threshold, *(ci or ())) if p is not None and math.isfinite(p)]
    low, high = (0.0, 1.0) if all(0.0 <= p <= 1.0 for p in points) else (min(points), max(points))
    if high <= low:
        low, high = low - 1.0, high + 1.0
    width, pad = 160, 6

    def x(v: float) -> float:
        return pad + (width - 2 * pad) * (v - low) / (high - low)

    t = x(threshold)
    passing = (t, width - pad - t) if op == ">=" else (pad, t - pad)
    parts = [
        f'<svg width="{width}" height="18" role="img" aria-label="interval">',
        f'<rect x="{pad}" y="7" width="{width - 2 * pad}" height="4" fill="#eee"/>',
        f'<rect x="{passing[0]:.1f}" y="7" width="{max(passing[1], 0):.1f}" height="4" fill="#c8e6c9"/>',
        f'<line x1="{t:.1f}" x2="{t:.1f}" y1="2" y2="16" stroke="#555"/>',
    ]
    if ci:
        parts.append(f'<line x1="{x(ci[0]):.1f}" x2="{x(ci[1]):.1f}" y1="9" y2="9" stroke="#1565c0" stroke-width="2"/>')
    if value is not None and math.isfinite(value):
        parts.append(f'<circle cx="{x(value):.1f}" cy="9" r="3.5" fill="#1565c0"/>')
    return "".join(parts) + "</svg>"


def check_table(checks: list[dict[str, Any]]) -> str:
    with_baseline = any("baseline" in c.get("details", {}) for c in checks)
    head = ["check", "value", "threshold", "95% interval", "", "n", "verdict"] + (
        ["vs baseline"] if with_baseline else []
    )
    rows = ["<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for c in checks:
        verdict = "ERROR" if c.get("error") else "PASS" if c["passed"] else "FAIL"
        ci = c.get("ci95")
        cells = [
            E(c["id"]) + (f"<br><small>{E(c['error'])}</small>" if c.get("error") else ""),
            format_number(c.get("value")),
            f"{E(c['op'])} {format_number(c['threshold'])}",
            f"{ci[0]:.3f}–{ci[1]:.3f}" if ci else "",
            interval_svg(c.get("value"), c["threshold"], ci, c["op"]),
            "" if c.get("n") is None else str(c["n"]),
            f'<span class="{verdict}">{verdict}</span>',
        ]
        if with_baseline:
            compared = c.get("details", {}).get("baseline", {})
            text = f"{compared['delta']:+.4g}" if "delta" in compared else E(compared.get("note", ""))
            cells.append(f'<span class="regressed">{text} REGRESSION</span>' if compared.get("regressed") else text)
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    return "".join(rows) + "</table>"


def histogram_svg(series: dict[str, Sequence[float]], *, bins: int = 20, label: str = "") -> str:
    """Overlaid histograms of a few named series (e.g. member and non-member losses)."""
    values = [v for vs in series.values() for v in vs if math.isfinite(v)]
    if not values:
        return ""
    low, high = min(values), max(values)
    if high <= low:
        high = low + 1.0
    width, height, pad = 420, 160, 24
    colours = ("#1565c0", "#ef6c00", "#2e7d32", "#6a1b9a")
    counts = {}
    for name, vs in series.items():
        c = [0] * bins
        for v in vs:
            if math.isfinite(v):
                c[min(int((v - low) / (high - low) * bins), bins - 1)] += 1
        counts[name] = c
    top = max(max(c) for c in counts.values()) or 1
    bar = (width - 2 * pad) / bins
    parts = [f'<svg width="{width}" height="{height + 30}" role="img" aria-label="{E(label)}">']
    for k, (name, c) in enumerate(counts.items()):
        colour = colours[k % len(colours)]
        for i, n in enumerate(c):
            h = (height - pad) * n / top
            parts.append(
                f'<rect x="{pad + i * bar:.1f}" y="{height - h:.1f}" width="{bar - 1:.1f}" height="{h:.1f}" '
                f'fill="{colour}" fill-opacity="0.5"/>'
            )
        parts.append(
            f'<text x="{pad + 150 * k}" y="{height + 26}" fill="{colour}">■ {E(name)} ({len(series[name])})</text>'
        )
    parts.append(f'<text x="{pad}" y="{height + 12}">{low:.3g}</text>')
    parts.append(f'<text x="{width - pad}" y="{height + 12}" text-anchor="end">{high:.3g}</text>')
    parts.append(f'<text x="{pad}" y="12">{E(label)}</text>')
    return "".join(parts) + "</svg>"


def page(card: dict[str, Any], sections: list[str]) -> str:
    suite = card["suite"]
    status = "PASSED" if card["passed"] else "FAILED"
    model = (card.get("model") or {}).get("path") or (card.get("model") or {}).get("predictions") or ""
    warnings = "".join(f"<li>{E(w)}</li>" for w in card.get("warnings", []))
    head = (
        f"<!doctype html><html lang=en><meta charset=utf-8><title>pytest-unlearn: {E(suite['name'])}</title>"
        f"<style>{CSS}</style><h1>{E(suite['name'])} {E(str(suite['version']))}: "
        f'<span class="{"PASS" if card["passed"] else "FAIL"}">{status}</span></h1>'
        f"<p>model {E(str(model))} · status {E(card['status'])}</p>"
    )
    if card.get("baseline"):
        head += f"<p>baseline {E(card['baseline']['path'])} ({E(str(card['baseline'].get('created')))})</p>"
    if warnings:
        head += f"<h2>Warnings</h2><ul>{warnings}</ul>"
    return head + "<h2>Checks</h2>" + check_table(card["checks"]) + "".join(sections) + "</html>\n"


def write_report(path: Path, card: dict[str, Any], sections: list[str]) -> dict[str, str]:
    """Write the page; a folder that cannot be written loses the page, never the scorecard."""
    try:
        # Atomically, as the scorecard: a reader (a CI upload step) never sees half a page.
        write_bytes_atomic(path, page(card, sections).encode("utf-8"))
    except OSError:
        return {}
    return {"report": str(path)}
