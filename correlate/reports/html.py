"""A self-contained HTML report: the ranked overview, each finding, timelines, statistics, provenance.

It opens as ``correlate run`` does: the totals and one row per conversation ranked by what needs
attention (``overview.py``'s ranking and cells, not a copy), each row linking to the conversation's
detail; then a timeline chart per affected episode, the association with chance, and last the
provenance (counts, inputs with SHA-256, clock offsets, parameters), collapsed.

One file that opens offline: no external scripts, styles, fonts or images, and no script at all.
The charts are inline SVG (calls as spans, violations as marks, attribution links as lines) with
native ``<title>`` tooltips. The agent under investigation wrote the commands and outputs shown
here, so every piece of log text is made inert (control characters and bidi overrides shown
escaped) and then HTML-escaped with ``quote=True``; no log text ever becomes a tag, an attribute
name, a URL or an element id (ids are numbered). A strict Content-Security-Policy ``<meta>``
allows nothing but the report's own stylesheet (by its SHA-256) and ``data:`` images, so even a
missed escape could not run a script or fetch anything. The same result gives the same bytes.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import html
import json
import os
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any

from .. import __version__
from ..atomic import atomic_path
from ..pipeline import Result
from ..query import format_time
from ..schema import plain_rows
from ..textsafe import inert
from ..timeline import build_timeline
from ..timeparse import zone_name
from .overview import call_cell, destination_cell, headline, lag_cell, ranked, sandbox_cell

CSS = """
:root { --ink: #1d2330; --muted: #5d6675; --line: #d8dce3; --denied: #c62828;
  --alerted: #e07b00; --allowed: #7d8590; --call: #3f6fb5; --blamed: #7b2fbf; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink);
  margin: 0 auto; max-width: 1280px; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 8px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 20px 0 6px; }
p.meta, .muted { color: var(--muted); }
nav a { margin-right: 14px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 12px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { background: #f4f6f9; font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; white-space: nowrap; }
td.time { white-space: nowrap; }
code, pre { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
  font-size: 12.5px; }
p.headline { font-size: 15px; font-weight: 600; margin: 4px 0; }
ul.clocks { list-style: none; padding: 0; margin: 0 0 6px; font-size: 13px; }
table.overview td.call { width: 45%; min-width: 14em; overflow-wrap: anywhere; }
table.overview .attributed { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas,
  monospace; font-size: 12.5px; color: #1b5e20; }
table.overview .unattributed { color: var(--muted); }
@media (max-width: 1000px) {
  table.overview, table.overview thead, table.overview tbody { display: block; }
  table.overview tr { display: grid; border-bottom: 1px solid var(--line);
    grid-template-columns: 3.2em 7.8em minmax(0, 1fr) minmax(0, 1.2fr) 9.4em 5em 5.2em; }
  table.overview thead tr { background: #f4f6f9; }
  table.overview th, table.overview td { border-bottom: 0; overflow-wrap: anywhere; }
  table.overview .call { grid-row: 2; grid-column: 3 / -1; width: auto; min-width: 0;
    padding-top: 0; }
}
article.finding { border-top: 1px solid var(--line); padding: 4px 0 8px; }
article.finding h3 { margin: 6px 0; overflow-wrap: anywhere; }
dl.facts { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 2px 12px;
  margin: 4px 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
p.why { margin: 6px 0 0; color: var(--muted); }
ul.reasons { margin: 2px 0 4px; padding-left: 20px; overflow-wrap: anywhere; }
p.back { margin: 2px 0; font-size: 12px; }
td.path code, td.value code { overflow-wrap: anywhere; }
table.associations th, table.baselines th, table.inputs th { white-space: normal; }
code.cmd { display: block; margin: 4px 0; padding: 4px 6px; background: #f4f6f9;
  white-space: pre-wrap; overflow-wrap: anywhere; color: #1b5e20; }
div.wide { overflow-x: auto; }
pre { background: #f4f6f9; padding: 10px; overflow-x: auto; white-space: pre-wrap;
  overflow-wrap: anywhere; }
.conf-high { color: var(--denied); font-weight: 600; }
.conf-medium { color: var(--alerted); font-weight: 600; }
.conf-low { color: var(--call); }
.conf-none { color: var(--muted); }
figure { margin: 12px 0 24px; }
figcaption { font-weight: 600; margin-bottom: 4px; }
svg.timeline { width: 100%; height: auto; background: #fbfcfd; border: 1px solid var(--line); }
svg .lane { font-size: 12px; fill: var(--muted); }
svg .tick { stroke: var(--line); stroke-width: 1; }
svg .ticklabel { font-size: 11px; fill: var(--muted); }
svg .call { fill: var(--call); opacity: 0.55; }
svg .call.blamed { fill: var(--blamed); opacity: 0.95; }
svg .violation { stroke: #ffffff; stroke-width: 0.5; }
svg .violation.denied { fill: var(--denied); }
svg .violation.alerted { fill: var(--alerted); }
svg .violation.allowed, svg .violation.unknown { fill: var(--allowed); }
svg .link { stroke: var(--blamed); stroke-width: 1; opacity: 0.6; }
svg .link.inherited { stroke-dasharray: 3 3; opacity: 0.35; }
svg .steplabel { font-size: 10px; fill: var(--ink); }
ul.legend { list-style: none; padding: 0; margin: 4px 0; color: var(--muted); }
ul.legend li { display: inline-block; margin-right: 16px; }
""".strip()

WIDTH = 1200
LEFT = 110
RIGHT = 20
CALL_Y, CALL_H = 30, 22
VIOLATION_Y = 96
HEIGHT = 150
TICK_SIZE, LABEL_SIZE = 11, 10
"""Font sizes of the time axis and of the step and conversation labels (as in the CSS)."""
TICK_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)


def h(value: object, limit: int | None = None) -> str:
    """Untrusted text for HTML: control and bidi characters shown escaped, then HTML-escaped."""
    return html.escape(inert(value, limit), quote=True)


def csp(css: str = CSS) -> str:
    """The Content-Security-Policy: nothing but this stylesheet (by hash) and data: images."""
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    return (
        f"default-src 'none'; style-src 'sha256-{digest}'; img-src data:; "
        "base-uri 'none'; form-action 'none'"
    )


def _time(ns: int | None, zone: tzinfo) -> str:
    return format_time(ns, zone, " ")


def _table(headers: list[tuple[str, str]], rows: list[list[str]], cls: str = "") -> str:
    """An HTML table; cells must already be escaped. Header items are (text, css class)."""
    head = "".join(f'<th class="{c}">{t}</th>' if c else f"<th>{t}</th>" for t, c in headers)
    body = []
    for row in rows:
        cells = []
        for (_, c), cell in zip(headers, row, strict=True):
            cells.append(f'<td class="{c}">{cell}</td>' if c else f"<td>{cell}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    klass = f' class="{cls}"' if cls else ""
    return (
        f'<div class="wide"><table{klass}><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


CONFIDENCES = ("high", "medium", "low", "none")


def _confidence(value: object) -> str:
    """A confidence as a styled word; the class comes from a fixed list, never from log text."""
    level = str(value) if str(value) in CONFIDENCES else "none"
    return f'<span class="conf-{level}">{h(value)}</span>'


def _labels(value: object) -> str:
    return h(", ".join(x for x in str(value or "").split(",") if x) or "-")


def _clock_notes(result: Result) -> list[str]:
    """One escaped sentence per clock offset applied or estimated (they explain the lags)."""
    notes = []
    applied = result.applied_offsets
    estimated = {e.network_source for e in result.offset_estimates if e.offset_s is not None}
    for source, offset in sorted(applied.items()):
        if source not in estimated:
            notes.append(
                f"{h(source)}: offset {offset:+.3f} s applied (its times are shown on the "
                "trajectories' clock)"
            )
    for e in result.offset_estimates:
        if e.offset_s is None:
            notes.append(f"{h(e.network_source)} vs {h(e.agent_source)}: {h(e.note)}")
            continue
        text = (
            f"{h(e.network_source)} runs {e.offset_s:+.2f} s [{(e.ci_low_s or 0):+.2f}, "
            f"{(e.ci_high_s or 0):+.2f}] against {h(e.agent_source)} ({e.peak_pairs} of {e.pairs} "
            "pairs in the peak)"
        )
        if e.network_source in applied:
            text += f"; applied ({applied[e.network_source]:+.3f} s): its times are shown on the "
            text += "trajectories' clock"
        else:
            text += "; not applied"
        notes.append(text)
    if not notes:
        notes.append("no offsets applied or estimated")
    return notes


def _overview(result: Result) -> str:
    """The headline and one ranked row per conversation, as ``run`` prints them (overview.py)."""
    rows = ranked(result.findings)
    total = headline(result.findings, result.violations.num_rows).plain
    clocks = "".join(f"<li>clock: {note}</li>" for note in _clock_notes(result))
    parts = [
        '<section id="overview"><h2>Overview</h2>',
        f'<p class="headline">{h(total)}</p><ul class="clocks muted">{clocks}</ul>',
    ]
    body = []
    for row in rows:
        number = int(row["conversation_id"])
        attributed = "attributed" if row.get("call_id") else "unattributed"
        body.append(
            [
                f'<a href="#finding-{number}">#{number}</a>',
                _confidence(row["confidence"]),
                h(sandbox_cell(row)),
                h(destination_cell(row)),
                _labels(row.get("labels")),
                str(int(row["event_count"])),
                f'<span class="{attributed}">{h(call_cell(row), 240)}</span>',
                h(lag_cell(row)),
            ]
        )
    if body:
        parts.append(
            _table(
                [
                    ("#", "num"),
                    ("confidence", ""),
                    ("sandbox", "who"),
                    ("destination", "where"),
                    ("label", ""),
                    ("events", "num"),
                    ("attributed call", "call"),
                    ("lag", "num"),
                ],
                body,
                "overview",
            )
        )
    parts.append("</section>")
    return "".join(parts)


def _provenance(result: Result, provenance: dict[str, Any]) -> str:
    """Counts, inputs with SHA-256 and load counts, parameters, and all of it as JSON: collapsed."""
    counts = provenance["counts"]
    parts = [
        '<section id="provenance"><h2>Provenance</h2><details class="provenance">'
        "<summary>Counts, inputs with SHA-256 and load counts, clock offsets, parameters"
        "</summary><h3>Counts</h3>"
    ]
    parts.append(
        _table(
            [("what", ""), ("count", "num")],
            [
                ["network events", str(counts["network_events"])],
                ["tool calls", str(counts["tool_calls"])],
                ["identity rows", f"{counts['identity_rows']} ({h(result.identity_mode)} join)"],
                ["violation events", str(counts["violations"])],
                ["violation conversations", str(counts["conversations"])],
                ["candidate (event, call) pairs", str(counts["candidates"])],
                ["rejected rows", str(counts["rejected"])],
            ],
            "counts",
        )
    )
    parts.append("<h3>Inputs</h3>")
    rows = []
    for f in provenance["inputs"]:
        rows.append(
            [
                f"<code>{h(f['path'])}</code>",
                h(f.get("format") or "skipped"),
                f"<code>{h(f['sha256'][:16])}…</code>",
                str(f["size"]),
                "" if "read" not in f else f"{f['read']} {h(f.get('unit', 'rows'))}",
                str(f.get("loaded", "")),
                str(f.get("rejected", "")),
                str(sum(f.get("skipped", {}).values())) if "read" in f else "",
                h(f.get("skipped_reason") or ""),
            ]
        )
    parts.append(
        _table(
            [
                ("file", "path"),
                ("format", ""),
                ("SHA-256", ""),
                ("bytes", "num"),
                ("read", "num"),
                ("loaded", "num"),
                ("rejected", "num"),
                ("skipped", "num"),
                ("note", ""),
            ],
            rows,
            "inputs",
        )
    )
    parts.append("<h3>Clocks</h3><ul>")
    parts.extend(f"<li>{note}</li>" for note in _clock_notes(result))
    parts.append("</ul><h3>Parameters</h3>")
    params = provenance["parameters"]
    parts.append(
        _table(
            [("parameter", ""), ("value", "value")],
            [
                [h(k), f"<code>{h(json.dumps(v, sort_keys=True, ensure_ascii=True))}</code>"]
                for k, v in sorted(params.items())
            ],
            "parameters",
        )
    )
    provenance_json = json.dumps(provenance, sort_keys=True, indent=2, ensure_ascii=True)
    parts.append(
        "<details><summary>Tool version, parameters, inputs with SHA-256 and load counts (JSON)"
        f"</summary><pre>{html.escape(provenance_json, quote=True)}</pre></details>"
        "</details></section>"
    )
    return "".join(parts)


def _details(result: Result, charts: dict[int, int], zone: tzinfo) -> str:
    """Each conversation in overview order: when, who, where, what, the call and why."""
    articles = []
    for f in ranked(result.findings):
        number = int(f["conversation_id"])
        facts: list[tuple[str, str]] = []
        span = _time(f["first_ts"], zone)
        if f["last_ts"] != f["first_ts"]:
            span += f" to {_time(f['last_ts'], zone)}"
        facts.append(("time", span))
        holders = int(f.get("address_holders") or 0)
        who = f["src_host"] or (f"shared by {holders} hosts" if holders > 1 else "unknown host")
        source = f"{h(who)} <code>{h(f['src_ip'])}</code>"
        if f.get("src_nat_ip"):
            source += f" via NAT <code>{h(f['src_nat_ip'])}</code>"
        if holders > 1:
            source += f"; the address's holders then: {h(f.get('src_hosts'))}"
        facts.append(("source", source))
        port = f":{f['dst_port']}" if f["dst_port"] is not None else ""
        protocol = f"/{f['protocol']}" if f.get("protocol") else ""
        where = f"<code>{h(f['dst_ip'])}{h(port)}{h(protocol)}</code>"
        if f["dst_domain"]:
            where += f" {h(f['dst_domain'])}"
        if f.get("dst_scope"):
            where += f" ({h(f['dst_scope'])})"
        facts.append(("destination", where))
        events = f"{int(f['event_count'])} {h(f['actions'])}"
        if f.get("rule"):
            events += f"; rule <code>{h(f['rule'])}</code>"
        if f.get("signature"):
            events += f"; signature {h(f['signature'])}"
        facts.append(("events", events))
        if f["call_id"]:
            step = f" step {h(f['step'])}" if f["step"] is not None else ""
            call = f"{h(f['tool'])}{step} · episode {h(f['episode_id'])}"
            if f.get("run_id"):
                call += f" · run {h(f['run_id'])}"
            call += f" · <code>{h(f['call_id'])}</code>"
            if f["lag_s"] is not None:
                call += f" · lag {f['lag_s']:+.2f} s"
        elif f.get("tied_calls"):
            call = f"nothing: ambiguous between {h(f['tied_calls'])}"
        else:
            call = "nothing"
        facts.append(("attributed to", call))
        chart = charts.get(number)
        if chart is not None:
            facts.append(("timeline", f'<a href="#timeline-{chart}">chart {chart}</a>'))
        dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
        command = f'<code class="cmd">{h(f["command"], 600)}</code>' if f["command"] else ""
        reasons = "".join(f"<li>{h(r)}</li>" for r in str(f["reasons"] or "").split("; ") if r)
        articles.append(
            f'<article id="finding-{number}" class="finding"><h3>'
            f'<a href="#finding-{number}">#{number}</a> {_confidence(f["confidence"])} · '
            f"{_labels(f['labels']) + ' · ' if f['labels'] else ''}{h(sandbox_cell(f))} → "
            f"{h(destination_cell(f))}</h3>"
            f'<dl class="facts">{dl}</dl>{command}'
            f'<p class="why">why:</p><ul class="reasons">{reasons}</ul>'
            '<p class="back"><a href="#overview">back to the overview</a></p></article>'
        )
    body = "".join(articles) or (
        "<p>No violations: no denied or alerted outbound traffic in the network logs.</p>"
    )
    return f'<section id="findings"><h2>Findings in detail</h2>{body}</section>'


def _ticks(t0: int, t1: int) -> tuple[int, list[int]]:
    span_s = max((t1 - t0) / 1e9, 1e-9)
    step = next((s for s in TICK_STEPS_S if span_s / s <= 10), TICK_STEPS_S[-1])
    step_ns = step * 1_000_000_000
    first = -(-t0 // step_ns) * step_ns
    return step, list(range(first, t1 + 1, step_ns))


CHAR_EM = 0.64
"""A character's advance in em, estimated generously (digits are 0.64 em in DejaVu Sans): chart
labels are placed so that their estimated boxes keep apart; the browser test measures the real
ones."""
LABEL_GAP = 6


def _text_width(text: str, size: float) -> float:
    return len(text) * size * CHAR_EM


def _place_labels(
    marks: list[tuple[float, str]], size: float, join: Callable[[list[str]], str]
) -> list[tuple[float, str]]:
    """Labels (x, plain text) kept inside the chart and apart: neighbours that would touch
    become one label (``join`` of their texts) at the first one's place."""
    groups = [(x, [text]) for x, text in sorted(marks)]

    def placed(group: tuple[float, list[str]]) -> tuple[float, float, str]:
        text = join(group[1])
        width = _text_width(text, size)
        return max(LABEL_GAP, min(group[0], WIDTH - LABEL_GAP - width)), width, text

    i = 0
    while i + 1 < len(groups):
        left, width, _ = placed(groups[i])
        if placed(groups[i + 1])[0] < left + width + LABEL_GAP:
            groups[i] = (groups[i][0], groups[i][1] + groups[i + 1][1])
            del groups[i + 1]
            i = max(i - 1, 0)
        else:
            i += 1
    return [(left, text) for left, _, text in map(placed, groups)]


def _steps(steps: list[str]) -> str:
    """One step label for blamed calls too close to label apart (at most 8 steps, then "…")."""
    unique = list(dict.fromkeys(steps))
    if len(unique) == 1:
        return f"step {unique[0]}"
    shown = ", ".join(unique[:8]) + (f", … ({len(unique)} calls)" if len(unique) > 8 else "")
    return f"steps {shown}"


def _chart(number: int, title: str, caption: str, rows: list[dict[str, Any]], zone: tzinfo) -> str:
    """One SVG timeline: calls as spans, violations as marks, attribution links as lines."""
    times = [r["ts"] for r in rows] + [r["ts_end"] for r in rows if r["ts_end"] is not None]
    t0, t1 = min(times), max(times)
    pad = max((t1 - t0) // 50, 500_000_000)
    t0, t1 = t0 - pad, t1 + pad
    plot = WIDTH - LEFT - RIGHT

    def x(ns: int) -> float:
        return LEFT + (ns - t0) / (t1 - t0) * plot

    parts = [
        f'<svg class="timeline" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" aria-labelledby="timeline-{number}-title">',
        f'<title id="timeline-{number}-title">{title}</title>',
        f'<text class="lane" x="8" y="{CALL_Y + 15}">tool calls</text>',
        f'<text class="lane" x="8" y="{VIOLATION_Y + 12}">violations</text>',
    ]
    step, ticks = _ticks(t0, t1)
    shown_to = 0.0
    for i, tick in enumerate(ticks):
        parts.append(
            f'<line class="tick" x1="{x(tick):.1f}" y1="20" x2="{x(tick):.1f}" y2="{HEIGHT - 22}"/>'
        )
        label = format_time(tick, zone, " ")
        label = inert(label if i == 0 else label[11:])
        width = _text_width(label, TICK_SIZE)
        left = max(LABEL_GAP, min(x(tick) - width / 2, WIDTH - LABEL_GAP - width))
        if i and left < shown_to + LABEL_GAP:
            continue  # the grid line stays; its time would run into the previous one
        shown_to = left + width
        parts.append(
            f'<text class="ticklabel" x="{left:.1f}" y="{HEIGHT - 8}">{html.escape(label)}</text>'
        )
    step_marks: list[tuple[float, str]] = []
    call_x: dict[tuple[Any, Any], float] = {}
    for r in rows:
        if r["kind"] != "call":
            continue
        start = x(r["ts"])
        end = x(r["ts_end"]) if r["ts_end"] is not None else start
        blamed = " blamed" if r["link"] else ""
        call_x[(r["call_id"], r["run_id"])] = start
        step_text = f"step {r['step']} " if r["step"] is not None else ""
        tip = [
            h(f"{step_text}{r['tool'] or ''} {r['call_id']}"),
            h(
                f"{_time(r['ts'], zone)} ({(r['duration_s'] or 0):.1f} s"
                + (f", exit {r['exit_code']})" if r["exit_code"] is not None else ")")
            ),
            h(r["command"] or "", 600),
        ]
        if r["link"]:
            tip.append(h(r["link"]))
        parts.append(
            f'<rect class="call{blamed}" data-kind="call" x="{start:.1f}" y="{CALL_Y}" '
            f'width="{max(end - start, 2.0):.1f}" height="{CALL_H}"><title>'
            + "\n".join(tip)
            + "</title></rect>"
        )
        if blamed and r["step"] is not None:
            step_marks.append((start, inert(r["step"])))
    for left, text in _place_labels(step_marks, LABEL_SIZE, _steps):
        parts.append(
            f'<text class="steplabel" x="{left:.1f}" y="{CALL_Y - 4}">{html.escape(text)}</text>'
        )
    for r in rows:
        if r["kind"] != "violation":
            continue
        vx = x(r["ts"])
        target = call_x.get((r["attributed_call_id"], r["run_id"]))
        if target is not None:
            how = " inherited" if r["how"] == "inherited" else ""
            parts.append(
                f'<line class="link{how}" x1="{vx:.1f}" y1="{VIOLATION_Y}" '
                f'x2="{target:.1f}" y2="{CALL_Y + CALL_H}"/>'
            )
    conversations = sorted({r["conversation_id"] for r in rows if r["kind"] == "violation"})
    labelled: set[int] = set()
    violation_marks: list[tuple[float, str]] = []
    for r in rows:
        if r["kind"] != "violation":
            continue
        vx = x(r["ts"])
        if len(conversations) <= 3 and r["conversation_id"] not in labelled:
            labelled.add(r["conversation_id"])
            port = f":{r['dst_port']}" if r["dst_port"] is not None else ""
            violation_marks.append(
                (vx, inert(f"#{r['conversation_id']} {r['dst_ip']}{port} {r['labels'] or ''}", 56))
            )
        action = r["action"] if r["action"] in ("denied", "alerted", "allowed") else "unknown"
        port = f":{r['dst_port']}" if r["dst_port"] is not None else ""
        domain = f" ({r['dst_domain']})" if r["dst_domain"] else ""
        tip = [
            h(f"{r['action']} -> {r['dst_ip']}{port}{domain} {r['labels'] or ''}"),
            h(
                f"{_time(r['ts'], zone)} event {r['event_id']}, conversation #{r['conversation_id']}"
            ),
            h(r["link"] or ""),
        ]
        parts.append(
            f'<path class="violation {action}" data-kind="violation" '
            f'data-labels="{h(r["labels"] or "")}" '
            f'd="M{vx:.1f} {VIOLATION_Y} l6 12 l-12 0 z"><title>'
            + "\n".join(tip)
            + "</title></path>"
        )
    for left, text in _place_labels(violation_marks, LABEL_SIZE, " · ".join):
        parts.append(
            f'<text class="steplabel" x="{left:.1f}" y="{VIOLATION_Y + 26}">'
            f"{html.escape(text)}</text>"
        )
    parts.append("</svg>")
    legend = (
        '<ul class="legend"><li>bars: tool calls (purple: a violation is attributed to it)</li>'
        "<li>triangles: violations (red denied, orange alerted)</li>"
        "<li>lines: attribution (dashed: inherited by a later event of the conversation)</li>"
        f"<li>grid every {step} s</li></ul>"
    )
    return (
        f'<figure id="timeline-{number}" class="chart"><figcaption>{caption}</figcaption>'
        f"{''.join(parts)}{legend}</figure>"
    )


def _timelines(result: Result, zone: tzinfo) -> tuple[str, dict[int, int]]:
    """A chart per episode with an attributed finding, and per sandbox with unattributed ones."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for f in plain_rows(result.findings):
        if f["call_id"] and f["episode_id"]:
            groups[("episode", f["host"] or "", f["episode_id"])].append(f)
        elif f["src_host"]:
            groups[("host", f["src_host"], "")].append(f)
    charts: dict[int, int] = {}
    parts = ['<section id="timelines"><h2>Timelines</h2>']
    if not groups:
        parts.append("<p>No attributed findings and no violations from a known sandbox.</p>")
    ordered = sorted(groups.items(), key=lambda kv: (min(f["first_ts"] for f in kv[1]), kv[0]))
    for number, ((kind, host, episode), findings) in enumerate(ordered, start=1):
        conversations = sorted(int(f["conversation_id"]) for f in findings)
        labels = sorted({x for f in findings for x in str(f["labels"] or "").split(",") if x})
        if kind == "episode":
            rows = plain_rows(
                build_timeline(result, episode=[glob.escape(episode)], host=[glob.escape(host)])
                if host
                else build_timeline(result, episode=[glob.escape(episode)])
            )
            run = next((f["run_id"] for f in findings if f["run_id"]), None)
            title = f"{h(host or 'unknown sandbox')} · episode {h(episode)}"
            if run:
                title += f" · run {h(run)}"
        else:
            lo = min(f["first_ts"] for f in findings) - result.options.before_ns
            hi = max(f["last_ts"] for f in findings) + result.options.after_ns
            rows = plain_rows(
                build_timeline(result, host=[glob.escape(host)], since_ns=lo, until_ns=hi)
            )
            title = f"{h(host)} · no attributed call"
        if not rows:
            continue
        caption = (
            title + " — " + ", ".join(f'<a href="#finding-{c}">#{c}</a>' for c in conversations)
        )
        title += " — " + ", ".join(f"#{c}" for c in conversations)
        if labels:
            title += f" ({h(', '.join(labels))})"
            caption += f" ({h(', '.join(labels))})"
        for c in conversations:
            charts[c] = number
        parts.append(_chart(number, title, caption, rows, zone))
    parts.append("</section>")
    return "".join(parts), charts


def _statistics(result: Result, permutations: int, episodes: int = 15) -> str:
    parts = ['<section id="statistics"><h2>Association with chance</h2>']
    if not permutations:
        parts.append("<p>Skipped (--permutations 0).</p></section>")
        return "".join(parts)
    associations, baselines = result.statistics(permutations)
    parts.append(
        "<p class=\"muted\">Violation onsets (a conversation's first event) inside the calls' "
        "windows, against circular shifts of each episode's calls within the episode "
        f"({permutations} shifts); q-values by Benjamini-Hochberg.</p>"
    )
    shown = [a for a in associations if a.scope != "episode"] + sorted(
        (a for a in associations if a.scope == "episode"), key=lambda a: (a.p_value, a.key)
    )[:episodes]
    rows = [
        [
            h(a.scope),
            h(a.key if a.host is None else f"{a.key} ({a.host})"),
            str(a.calls),
            str(a.violations),
            str(a.observed),
            f"{a.expected:.2f}",
            "-" if a.lift is None else f"{a.lift:.2f}",
            f"{a.p_value:.3g}",
            "" if a.q_value is None else f"{a.q_value:.3g}",
        ]
        for a in shown
    ]
    num = "num"
    parts.append(
        _table(
            [
                ("scope", ""),
                ("key", ""),
                ("calls", num),
                ("onsets", num),
                ("in windows", num),
                ("expected", num),
                ("lift", num),
                ("p", num),
                ("q (BH)", num),
            ],
            rows,
            "associations",
        )
    )
    parts.append("<h3>Onset rate while a call is in flight vs while none is</h3>")
    rows = [
        [
            h(b.tool),
            f"{b.in_flight_s / 3600:.2f}",
            f"{b.idle_s / 3600:.2f}",
            str(b.violations_in_flight),
            str(b.violations_idle),
            "-" if b.rate_in_flight_per_h is None else f"{b.rate_in_flight_per_h:.3f}",
            "-" if b.rate_idle_per_h is None else f"{b.rate_idle_per_h:.3f}",
            "-" if b.ratio is None else f"{b.ratio:.2f}",
        ]
        for b in baselines
    ]
    parts.append(
        _table(
            [
                ("tool", ""),
                ("in flight h", num),
                ("idle h", num),
                ("onsets in flight", num),
                ("onsets idle", num),
                ("rate in flight /h", num),
                ("rate idle /h", num),
                ("ratio", num),
            ],
            rows,
            "baselines",
        )
    )
    parts.append("</section>")
    return "".join(parts)


def render_html(
    result: Result,
    *,
    title: str = "correlate report",
    permutations: int = 999,
    zone: tzinfo = UTC,
) -> str:
    """The whole report as one HTML document (no script; strict CSP; all log text escaped)."""
    provenance = result.provenance()
    provenance["parameters"]["permutations"] = permutations
    timelines, charts = _timelines(result, zone)
    zone_label = h(zone_name(zone))
    counts = provenance["counts"]
    head = (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp()}">'
        '<meta name="referrer" content="no-referrer">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{h(title)}</title><style>{CSS}</style></head>"
    )
    header = (
        f"<header><h1>{h(title)}</h1>"
        f'<p class="meta">correlate {h(__version__)} · {counts["network_events"]} network events · '
        f"{counts['tool_calls']} tool calls · {len(provenance['inputs'])} inputs · times in "
        f"{zone_label}</p>"
        '<nav><a href="#overview">Overview</a><a href="#findings">Details</a>'
        '<a href="#timelines">Timelines</a><a href="#statistics">Statistics</a>'
        '<a href="#provenance">Provenance</a></nav></header>'
    )
    body = (
        "<body>"
        + header
        + _overview(result)
        + _details(result, charts, zone)
        + timelines
        + _statistics(result, permutations)
        + _provenance(result, provenance)
        + "</body></html>\n"
    )
    return head + body


def write_html(
    result: Result,
    output: str | os.PathLike[str],
    *,
    title: str = "correlate report",
    permutations: int = 999,
    zone: tzinfo = UTC,
) -> Path:
    """Write the report atomically (temporary file, then rename)."""
    text = render_html(result, title=title, permutations=permutations, zone=zone)
    path = Path(output)
    with atomic_path(path) as tmp:
        tmp.write_bytes(text.encode("utf-8"))
    return path


__all__ = ["CSS", "csp", "h", "render_html", "write_html"]
