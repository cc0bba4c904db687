"""The HTML report a person opens after a failed gate: ``<scorecard>.html``. Pure Python.

One file that renders the same from anywhere, offline (inline CSS, inline SVG plots made here,
images embedded as downscaled data-URI thumbnails, nothing from the network): at the top the
verdict, the number of failed checks and each failing check's distance from its threshold; then
the check table (failing checks first) with each value, threshold, 95% interval drawn as a bar,
verdict and baseline delta; then the suite's own sections (the worst examples of each failing
check, loss histograms, per-subject accuracy, image grids).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_unlearn.files import write_bytes_atomic
from pytest_unlearn.scorecard import format_number, threshold_text

CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}"
    "td,th{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;font-size:13px;vertical-align:top}"
    ".PASS{color:#1a7f37;font-weight:bold}.FAIL,.ERROR{color:#c62828;font-weight:bold}"
    ".regressed{color:#c62828}pre{white-space:pre-wrap;margin:0;max-width:40em}h2{margin-top:2em}"
    "svg text{font-size:11px;font-family:system-ui,sans-serif}"
    # genmu's grids: the judge sees the concept (red outline) or not (green).
    "img{width:128px;image-rendering:pixelated}.absent{outline:3px solid #2a2}.present{outline:3px solid #c22}"
    ".summary li{margin:2px 0}.legend{color:#555;font-size:12px}.errorrow td{border-bottom:1px solid #ddd;"
    "color:#c62828;font-size:12px;max-width:60em;overflow-wrap:anywhere}"
)
E = html.escape
LEGEND = (
    "Bar: grey is the range shown, green the passing side of the threshold (the vertical line), "
    "blue the 95% interval (line) and the value (dot)."
)
#: A thumbnail's longest side, in pixels (the grids show images at 128 px).
THUMBNAIL_PX = 160
#: The images embedded in one page, base64 included: past it, an image is a link to its file.
IMAGE_BUDGET_BYTES = 4 * 1024 * 1024
STATUS_TEXT = {"running": "interrupted (the run did not finish)"}


def status_text(status: str) -> str:
    """A card's status for people: a card left ``running`` is one whose run was killed."""
    return STATUS_TEXT.get(status, status)


def margin(check: dict[str, Any]) -> float | None:
    """How far the value is on the passing side of the threshold (negative: how far it misses)."""
    value = check.get("value")
    if value is None or not math.isfinite(value):
        return None
    return value - check["threshold"] if check["op"] == ">=" else check["threshold"] - value


def _margin_text(check: dict[str, Any]) -> str:
    gap = margin(check)
    if gap is None:
        return "no value"
    return f"{format_number(abs(gap))} {'short of' if gap < 0 else 'inside'} the threshold"


class Thumbnails:
    """Images embedded in one page as downscaled PNG/JPEG data URIs, each a link to its
    full-size file (relative to the page, so it works where the artifacts travel with it).
    Past ``budget`` bytes an image is only that link, and the page says how many were left out."""

    def __init__(self, report: Path, budget: int = IMAGE_BUDGET_BYTES, size: int = THUMBNAIL_PX) -> None:
        self.report = report
        self.budget = budget
        self.size = size
        self.used = 0
        self.left_out = 0

    def data_uri(self, file: Path) -> str:
        from PIL import Image  # the image suites have it; the report module must not need it

        with Image.open(file) as opened:
            image = opened.convert("RGB")
        image.thumbnail((self.size, self.size))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=True)
        kind = "png"
        if buffer.tell() > 24_000:  # a photo: JPEG is a fifth of the size at this scale
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=85)
            kind = "jpeg"
        return f"data:image/{kind};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")

    def img(self, file: Path, css: str = "", alt: str = "") -> str:
        href = E(os.path.relpath(file, self.report.parent), quote=True)
        try:
            uri = self.data_uri(file)
        except (OSError, ValueError):
            return f"<a href='{href}'>(image missing: {E(file.name)})</a>"
        if self.used + len(uri) > self.budget:
            self.left_out += 1
            return f"<a href='{href}'>full-size image (not embedded: page image cap reached)</a>"
        self.used += len(uri)
        klass = f" class={css}" if css else ""
        return f"<a href='{href}' title='full size: {href}'><img{klass} alt='{E(alt, quote=True)}' src='{uri}'></a>"

    def note(self) -> str:
        """A line for the end of a section when images were left out, else nothing."""
        if not self.left_out:
            return ""
        cap = self.budget / (1024 * 1024)
        return (
            f"<p>{self.left_out} images not embedded (the page keeps under {cap:g} MiB of thumbnails); "
            "each links to its full-size file among the artifacts.</p>"
        )


def generated_cell(text: str) -> str:
    """A model's output in a table: a blank cell would read as a missing value, so an empty (or
    whitespace-only) generation says so."""
    if not text.strip():
        return f"<i>(empty generation{', whitespace only' if text else ''})</i>"
    return f"<pre>{E(text)}</pre>"


def summary_block(card: dict[str, Any]) -> str:
    """The top of the page: the verdict, how many checks failed, each failing check's distance
    from its threshold, and what the interval bar shows."""
    checks = card["checks"]
    failing = [c for c in checks if not c["passed"]]
    missing = card.get("missing_checks") or []
    status = "PASSED" if card["passed"] else "FAILED"
    counts = f"{len(failing)} of {len(checks)} checks failed" + (f", {len(missing)} not run" if missing else "")
    items = "".join(
        f"<li>{E(c['id'])}: {E(format_number(c.get('value')))}, needs "
        f"{E(threshold_text(c['op'], c['threshold'], c.get('unit') or ''))} — "
        f"{E(c['error']) if c.get('error') else E(_margin_text(c))}</li>"
        for c in failing
    )
    return (
        f'<p class=summary><b class="{"PASS" if card["passed"] else "FAIL"}">{status}</b>: {E(counts)}</p>'
        + (f"<ul class=summary>{items}</ul>" if items else "")
        + f"<p class=legend>{E(LEGEND)}</p>"
    )


def _threshold_axis(
    points: Sequence[float | None], threshold: float, op: str, *, width: int, pad: int, height: int, label: str
) -> tuple[Any, list[str]]:
    """A bar's scale (0-1 when every point is a share, else their range) and its opening marks:
    the axis, the threshold's passing side shaded green, the threshold line."""
    finite = [p for p in (*points, threshold) if p is not None and math.isfinite(p)]
    low, high = (0.0, 1.0) if all(0.0 <= p <= 1.0 for p in finite) else (min(finite), max(finite))
    if high <= low:
        low, high = low - 1.0, high + 1.0

    def x(v: float) -> float:
        return pad + (width - 2 * pad) * (v - low) / (high - low)

    t, y = x(threshold), height // 2 - 2
    passing = (t, width - pad - t) if op == ">=" else (pad, t - pad)
    return x, [
        f'<svg width="{width}" height="{height}" role="img" aria-label="{label}">',
        f'<rect x="{pad}" y="{y}" width="{width - 2 * pad}" height="4" fill="#eee"/>',
        f'<rect x="{passing[0]:.1f}" y="{y}" width="{max(passing[1], 0):.1f}" height="4" fill="#c8e6c9"/>',
        f'<line x1="{t:.1f}" x2="{t:.1f}" y1="2" y2="{height - 2}" stroke="#555"/>',
    ]


def interval_svg(value: float | None, threshold: float, ci: Sequence[float] | None, op: str) -> str:
    """A small bar: the passing side of the threshold shaded, the interval as a line, the value a dot."""
    x, parts = _threshold_axis((value, *(ci or ())), threshold, op, width=160, pad=6, height=18, label="interval")
    if ci:
        parts.append(f'<line x1="{x(ci[0]):.1f}" x2="{x(ci[1]):.1f}" y1="9" y2="9" stroke="#1565c0" stroke-width="2"/>')
    if value is not None and math.isfinite(value):
        parts.append(f'<circle cx="{x(value):.1f}" cy="9" r="3.5" fill="#1565c0"/>')
    return "".join(parts) + "</svg>"


def check_table(checks: list[dict[str, Any]]) -> str:
    with_baseline = any("baseline" in c.get("details", {}) for c in checks)
    head = ["check", "value", "threshold", "to threshold", "95% interval", "", "n", "verdict"] + (
        ["vs baseline"] if with_baseline else []
    )
    rows = ["<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    # Failing checks first (stable: manifest order within each group): what a reader came for.
    for c in sorted(checks, key=lambda c: bool(c["passed"])):
        verdict = "ERROR" if c.get("error") else "PASS" if c["passed"] else "FAIL"
        ci = c.get("ci95")
        gap = margin(c)
        cells = [
            E(c["id"]),
            format_number(c.get("value")),
            E(threshold_text(c["op"], c["threshold"], c.get("unit") or "")),
            "" if gap is None else f"{gap:+.4g}",
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
        if c.get("error"):
            # Its own row across the table: a long error must not widen the check column.
            rows.append(f"<tr class=errorrow><td colspan={len(head)}>{E(c['error'])}</td></tr>")
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


def before_after_svg(plain: float | None, stressed: float | None, threshold: float, op: str) -> str:
    """One forget check under a stress: the model's value (hollow dot), the stressed copy's
    (filled), a line between them, over the threshold's passing side."""
    x, parts = _threshold_axis((plain, stressed), threshold, op, width=200, pad=8, height=20, label="before and after")
    finite = [v is not None and math.isfinite(v) for v in (plain, stressed)]
    if all(finite):
        parts.append(
            f'<line x1="{x(plain):.1f}" x2="{x(stressed):.1f}" y1="10" y2="10" stroke="#c62828" stroke-width="2"/>'
        )
    if finite[0]:
        parts.append(f'<circle cx="{x(plain):.1f}" cy="10" r="4" fill="white" stroke="#1565c0" stroke-width="2"/>')
    if finite[1]:
        parts.append(f'<circle cx="{x(stressed):.1f}" cy="10" r="3.5" fill="#c62828"/>')
    return "".join(parts) + "</svg>"


def stress_sections(card: dict[str, Any]) -> list[str]:
    """Per ``--stress``: what made the copy, then each forget check before and after it."""
    sections = []
    for name, stress in (card.get("stress") or {}).items():
        copy = stress.get("copy") or {}
        library = ", ".join(f"{k} {v}" for k, v in (copy.get("library") or {}).items())
        made = f"{E(json.dumps(stress['transform']))}; {E(library)}"
        if copy.get("seconds") is not None:
            made += f"; made in {copy['seconds']:.1f} s, peak {copy.get('peak_rss_mib', 0):.0f} MiB"
        rows = ["<table><tr><th>check</th><th>model</th><th>stressed copy</th><th></th><th>verdict</th></tr>"]
        for check, row in stress["checks"].items():
            verdict = "PASS" if row["passed_stressed"] else "FAIL"
            rows.append(
                f"<tr><td>{E(check)}</td><td>{format_number(row['plain'])}</td><td>{format_number(row['stressed'])}</td>"
                f"<td>{before_after_svg(row['plain'], row['stressed'], row['threshold'], row['op'])}</td>"
                f'<td><span class="{verdict}">{verdict}</span></td></tr>'
            )
        recovered = "" if stress.get("recovery") is None else f"<p>recovery {format_number(stress['recovery'])}</p>"
        holdout = f"<p>{E(copy['holdout'])}</p>" if copy.get("holdout") else ""
        sections.append(
            f"<h2>Under --stress {E(name)}</h2><p>{made}</p>{holdout}{recovered}"
            "<p class=legend>hollow dot: the model as given; filled: its stressed copy; green: the passing side</p>"
            + "".join(rows)
            + "</table>"
        )
    return sections


def page(card: dict[str, Any], sections: list[str]) -> str:
    suite = card["suite"]
    status = "PASSED" if card["passed"] else "FAILED"
    model = (card.get("model") or {}).get("path") or (card.get("model") or {}).get("predictions") or ""
    warnings = "".join(f"<li>{E(w)}</li>" for w in card.get("warnings", []))
    head = (
        f"<!doctype html><html lang=en><meta charset=utf-8><title>pytest-unlearn: {E(suite['name'])}</title>"
        f"<style>{CSS}</style><h1>{E(suite['name'])} {E(str(suite['version']))}: "
        f'<span class="{"PASS" if card["passed"] else "FAIL"}">{status}</span></h1>'
        f"<p>model {E(str(model))} · status {E(status_text(card['status']))}</p>"
    ) + summary_block(card)
    if card.get("baseline"):
        head += f"<p>baseline {E(card['baseline']['path'])} ({E(str(card['baseline'].get('created')))})</p>"
    if warnings:
        head += f"<h2>Warnings</h2><ul>{warnings}</ul>"
    sections = [*stress_sections(card), *sections]
    return head + "<h2>Checks</h2>" + check_table(card["checks"]) + "".join(sections) + "</html>\n"


def write_report(path: Path, card: dict[str, Any], sections: list[str]) -> dict[str, str]:
    """Write the page; a folder that cannot be written loses the page, never the scorecard."""
    try:
        # Atomically, as the scorecard: a reader (a CI upload step) never sees half a page.
        write_bytes_atomic(path, page(card, sections).encode("utf-8"))
    except OSError:
        return {}
    return {"report": str(path)}
