"""The overview an investigator reads first: one ranked row per violation conversation.

Ranked by what needs attention: attributed (medium or high) before low or ambiguous before
unattributed; within each, the labels that mean an intrusion-like act (tunnel, mining,
exfiltration) before probes before unlabelled traffic; then confidence, then time. The columns
that answer the question — sandbox, destination, label, the call and how sure — never drop at 80
columns: long text folds instead.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pyarrow as pa
from rich.console import Console, Group, RenderableType
from rich.text import Text

from ..pipeline import Result
from ..schema import plain_rows
from ..textsafe import inert
from .styles import CONFIDENCE_STYLE
from .terminal import findings_renderable, load_summary_renderable, offsets_renderable

SEVERITY = {"reverse_tunnel": 3, "mining": 3, "exfiltration": 3, "internal_probe": 2}
CONFIDENCE_RANK = {"high": 3, "medium": 2, "low": 1, "none": 0}


def rank_key(row: dict[str, Any]) -> tuple[int, int, int, int, int]:
    """Sort key of a finding: attention bucket, label severity, confidence, time, id."""
    confidence = CONFIDENCE_RANK.get(str(row.get("confidence")), 0)
    bucket = 0 if confidence >= 2 else 1 if confidence == 1 else 2
    labels = str(row.get("labels") or "").split(",")
    severity = max((SEVERITY.get(label, 1) for label in labels if label), default=0)
    return (
        bucket,
        -severity,
        -confidence,
        int(row.get("first_ts") or 0),
        int(row.get("conversation_id") or 0),
    )


def ranked(findings: pa.Table) -> list[dict[str, Any]]:
    """The findings as rows, in overview order."""
    return sorted(plain_rows(findings), key=rank_key)


def headline(findings: pa.Table, violations: int) -> Text:
    """One line of totals: conversations, events, and how many at each confidence."""
    rows = plain_rows(findings)
    if not rows:
        return Text("No violations: no denied or alerted outbound traffic in the network logs.")
    counts = Counter(str(r["confidence"]) for r in rows)
    ambiguous = sum(1 for r in rows if r.get("tied_calls") and not r.get("call_id"))
    parts = [f"{counts.get(c, 0)} {c}" for c in ("high", "medium", "low")]
    text = (
        f"{len(rows)} violation conversation{'s' if len(rows) != 1 else ''} from {violations} "
        f"event{'s' if violations != 1 else ''}: attributed {', '.join(parts)}"
    )
    if ambiguous:
        text += f" ({ambiguous} of the low ambiguous between sandboxes)"
    text += f"; {counts.get('none', 0)} not attributed"
    return Text(text, style="bold")


def sandbox_cell(row: dict[str, Any]) -> str:
    """Who: the attributed call's sandbox, else the source's host, else how it is held."""
    holders = row.get("address_holders") or 0
    who = row.get("host") or row.get("src_host")
    if not who:
        who = f"shared by {holders}" if holders > 1 else "unknown host"
    return f"{who} {row['src_ip']}"


def destination_cell(row: dict[str, Any]) -> str:
    port = f":{row['dst_port']}" if row.get("dst_port") is not None else ""
    domain = f" {row['dst_domain']}" if row.get("dst_domain") else ""
    return f"{row['dst_ip']}{port}{domain}"


def call_cell(row: dict[str, Any]) -> str:
    """The attributed call as tool and short command; an ambiguous finding's tied calls."""
    if row.get("call_id"):
        command = " ".join(str(row.get("command") or "").split())
        step = f" step {row['step']}" if row.get("step") is not None else ""
        return (
            f"{row.get('tool') or 'call'}{step}: {command}"
            if command
            else f"{row.get('tool')}{step}"
        )
    if row.get("tied_calls"):
        return f"ambiguous: {row['tied_calls']}"
    why = [
        r
        for r in str(row.get("reasons") or "").split("; ")
        if "not attributed" in r or "no tool call" in r
    ]
    return f"not attributed: {why[0].removesuffix(': not attributed')}" if why else "not attributed"


def lag_cell(row: dict[str, Any]) -> str:
    return "" if row.get("lag_s") is None else f"{float(row['lag_s']):+.1f}s"


NARROW = 110
"""Below this width the overview puts each call on its own line under its finding."""


def overview_renderable(
    findings: pa.Table, violations: int, width: int = 200, *, whole: bool = False
) -> RenderableType:
    """Totals, then one row per conversation in rank order (see the module docstring).

    ``whole``: nothing is cut to a width (piped output without ``COLUMNS``: one finding per
    line, every cell whole, for grep and awk)."""
    rows = ranked(findings)
    title = headline(findings, violations)
    if not rows:
        return title
    cap = 10**6 if whole else 1
    sandbox_w = min(max(len(sandbox_cell(r)) for r in rows), 30 * cap)
    dest_w = min(max(len(destination_cell(r)) for r in rows), 36 * cap)
    label_w = max(min(max(len(r.get("labels") or "-") for r in rows), 30 * cap), 5)
    fixed = 3 + 1 + 6 + 1 + sandbox_w + 1 + dest_w + 1 + label_w + 1 + 6 + 1 + 7 + 1
    if not whole and (width < NARROW or width - fixed < 30):
        return Group(title, *_narrow(rows, width))
    call_w = 10**9 if whole else width - fixed
    lines = [_header(sandbox_w, dest_w, label_w, f" {'lag':>7} attributed call")]
    for row in rows:
        line = _lead(row, sandbox_cell(row), sandbox_w, dest_w, label_w)
        line.append(f" {lag_cell(row):>7} ")
        line.append(
            _fit(inert(call_cell(row)), call_w), style="green" if row.get("call_id") else "dim"
        )
        lines.append(line)
    return Group(title, *lines)


def _header(sandbox_w: int, dest_w: int, label_w: int, tail: str) -> Text:
    return Text(
        f"{'#':>3} {'conf.':<6} {'sandbox':<{sandbox_w}} {'destination':<{dest_w}} "
        f"{'label':<{label_w}} {'events':>6}{tail}",
        style="bold",
    )


def _lead(row: dict[str, Any], who: str, sandbox_w: int, dest_w: int, label_w: int) -> Text:
    """A finding's id, confidence, sandbox, destination, label and events, in fixed widths."""
    confidence = str(row["confidence"])
    line = Text(f"{row['conversation_id']:>3} ")
    line.append(f"{confidence:<6}", style=CONFIDENCE_STYLE.get(confidence, ""))
    line.append(f" {_fit(inert(who), sandbox_w):<{sandbox_w}} ")
    line.append(f"{_fit(inert(destination_cell(row)), dest_w):<{dest_w}} ")
    line.append(f"{_fit(inert(row.get('labels') or '-'), label_w):<{label_w}}", style="magenta")
    line.append(f" {row['event_count']:>6}")
    return line


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def _narrow(rows: list[dict[str, Any]], width: int) -> list[Text]:
    """Two lines per finding: who, where, what and how sure; then the call, indented."""
    label_w, sandbox_w = 15, 16
    dest_w = max(width - (4 + 6 + 1 + sandbox_w + 1 + 1 + label_w + 1 + 6), 12)
    lines = [_header(sandbox_w, dest_w, label_w, "")]
    for row in rows:
        who = row.get("host") or row.get("src_host") or row["src_ip"]
        holders = row.get("address_holders") or 0
        if not (row.get("host") or row.get("src_host")) and holders > 1:
            who = f"shared by {holders}"
        lines.append(_lead(row, str(who), sandbox_w, dest_w, label_w))
        call = call_cell(row)
        lag = lag_cell(row)
        detail = f"{call} ({lag})" if lag else call
        lines.append(
            Text(
                "    ↳ " + _fit(inert(detail), max(width - 6, 20)),
                style="green" if row.get("call_id") else "dim",
            )
        )
    return lines


def inputs_renderable(result: Result) -> RenderableType:
    """Load accounting per format: files, rows read, loaded, rejected, skipped; then each skip
    reason and note summed over the format's files (``-v`` gives them per file)."""
    per_format: dict[str, dict[str, Any]] = {}
    skipped_files: Counter[str] = Counter()
    for f in result.loaded.inputs:
        if f.stats is None or f.skipped_reason:
            skipped_files[str(f.skipped_reason)] += 1
            continue
        entry = per_format.setdefault(
            f"{f.format}{' (forced)' if f.forced else ''}",
            {"files": 0, "read": 0, "loaded": 0, "rejected": 0, "skipped": 0, "unit": set()},
        )
        entry["files"] += 1
        entry["read"] += f.stats.read
        entry["loaded"] += f.stats.loaded
        entry["rejected"] += f.stats.rejected
        entry["skipped"] += f.stats.skipped_total
        entry["unit"].add(f.stats.unit)
        entry.setdefault("reasons", Counter()).update(f.stats.skipped)
        entry.setdefault("notes", Counter()).update(f.stats.notes)
    lines: list[Text] = [Text("Inputs", style="bold")]
    header = (
        f"  {'format':<24} {'files':>5} {'read':>10} {'':<7} {'loaded':>10} {'rejected':>9} "
        f"{'skipped':>9}"
    )
    lines.append(Text(header, style="bold"))
    for name in sorted(per_format):
        e = per_format[name]
        unit = next(iter(e["unit"])) if len(e["unit"]) == 1 else "rows"
        row = Text(f"  {name:<24} {e['files']:>5} {e['read']:>10,} {unit:<7} {e['loaded']:>10,} ")
        row.append(f"{e['rejected']:>9,}", style="bold red" if e["rejected"] else "")
        row.append(f" {e['skipped']:>9,}")
        lines.append(row)
    for name in sorted(per_format):
        e = per_format[name]
        files = f"{e['files']} file{'s' if e['files'] != 1 else ''}"
        for reason, n in sorted(e.get("reasons", Counter()).items()):
            lines.append(Text(f"  {name}, {files}: skipped {n:,}: {inert(reason)}", style="dim"))
        for note, n in sorted(e.get("notes", Counter()).items()):
            lines.append(
                Text(f"  {name}, {files}: note on {n:,} row(s): {inert(note)}", style="dim")
            )
    for reason, n in sorted(skipped_files.items()):
        lines.append(
            Text(f"  {n} file{'s' if n != 1 else ''} skipped: {inert(reason)}", style="dim")
        )
    counts = result.provenance()["counts"]
    lines.append(
        Text(
            f"{counts['network_events']} network events, {counts['tool_calls']} tool calls, "
            f"{counts['identity_rows']} identity rows ({result.identity_mode} join), "
            f"{counts['violations']} violations in {counts['conversations']} conversations"
        )
    )
    return Group(*lines)


def print_report(
    result: Result, console: Console, top: int = 3, *, details: bool = False, verbose: bool = False
) -> None:
    """The terminal report: clocks, the ranked overview, details on request, then the inputs."""
    console.print(offsets_renderable(result))
    whole = console.soft_wrap  # piped without COLUMNS: nothing cut
    console.print(
        overview_renderable(result.findings, result.violations.num_rows, console.width, whole=whole)
    )
    if details:
        console.print(findings_renderable(result, top))
    console.print()
    console.print(load_summary_renderable(result) if verbose else inputs_renderable(result))
