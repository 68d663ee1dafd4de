"""Terminal report: findings with their ranked calls and reasons, then the load summary.

Every value that came from a log goes through ``inert`` into a ``rich.text.Text``: no markup is
ever built from log text, and control characters show as visible escapes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..errors import Reject
from ..pipeline import Result
from ..schema import plain_rows
from ..stats import ALPHA, POWER, Association, Baseline
from ..textsafe import inert
from ..timeparse import ns_to_iso
from .styles import CONFIDENCE_STYLE, evidence_flags

COMMAND_CHARS = 90


def _t(value: object, limit: int | None = None, style: str = "") -> Text:
    return Text(inert(value, limit), style=style)


def _time(ns: object) -> str:
    return ns_to_iso(int(ns)).replace("T", " ") if ns is not None else ""  # type: ignore[call-overload]


def _destination(row: dict[str, object]) -> str:
    port = f":{row['dst_port']}" if row["dst_port"] is not None else ""
    proto = f"/{row['protocol']}" if row["protocol"] else ""
    domain = f" ({row['dst_domain']})" if row["dst_domain"] else ""
    return f"{row['dst_ip']}{port}{proto}{domain}"


def _source(row: dict[str, object]) -> str:
    holders = row.get("address_holders") or 0
    shared = f"shared by {holders} hosts" if isinstance(holders, int) and holders > 1 else None
    host = row["src_host"] or shared or "unknown host"
    nat = f" via {row['src_nat_ip']}" if row["src_nat_ip"] else ""
    return f"{host} ({row['src_ip']}{nat})"


def findings_renderable(result: Result, top: int = 3) -> RenderableType:
    """Each violation conversation, its attributed call, the reasons and the top candidates."""
    findings = plain_rows(result.findings)
    if not findings:
        return Text("No violations: no denied or alerted outbound traffic in the network logs.")
    anchors = {
        row["conversation_id"]: row["event_id"]
        for row in plain_rows(result.attributions)
        if row["how"] == "direct"
    }
    by_event: dict[object, list[dict[str, object]]] = defaultdict(list)
    for row in plain_rows(result.candidates):
        by_event[row["event_id"]].append(row)
    parts: list[RenderableType] = [
        Text(
            f"{len(findings)} violation conversation(s) from {result.violations.num_rows} violation event(s)",
            style="bold",
        )
    ]
    for f in findings:
        parts.append(
            finding_renderable(f, by_event.get(anchors.get(f["conversation_id"]), []), top)
        )
    return Group(*parts)


def finding_renderable(
    f: dict[str, object], candidates: list[dict[str, object]], top: int
) -> RenderableType:
    """One finding with its top candidates (the detail block of ``run -d`` and ``show``)."""
    head = Text()
    head.append(f"\n#{f['conversation_id']} ", style="bold")
    head.append_text(_t(_source(f), style="bold"))
    head.append(" -> ")
    head.append_text(_t(_destination(f), style="bold"))
    head.append(f"  [{inert(f['actions'])} x{f['event_count']}]")
    if f["labels"]:
        head.append(f"  {inert(f['labels'])}", style="bold magenta")
    lines = [head]
    span = f"  {_time(f['first_ts'])}"
    if f["last_ts"] != f["first_ts"]:
        span += f" .. {_time(f['last_ts'])}"
    lines.append(Text(span))
    rule_bits = [x for x in (f["signature"], f"rule {f['rule']}" if f["rule"] else None) if x]
    where = Text("  ")
    where.append_text(_t(f"{f['first_source_path']}:{f['first_source_line']}", style="dim"))
    if rule_bits:
        where.append("  ")
        where.append_text(_t("; ".join(str(b) for b in rule_bits)))
    lines.append(where)
    verdict = Text("  attributed to: ")
    if f["call_id"] is None and f.get("tied_calls"):
        verdict.append("ambiguous between ", style="bold")
        verdict.append_text(_t(f["tied_calls"], 300))
    elif f["call_id"] is None:
        verdict.append("nothing", style="bold")
    else:
        verdict.append_text(_t(f["tool"], style="bold"))
        verdict.append(" ")
        verdict.append_text(_t(f["call_id"], style="dim"))
        place = [
            f"{name} {inert(f[key])}"
            for name, key in (("run", "run_id"), ("episode", "episode_id"), ("step", "step"))
            if f[key] is not None
        ]
        if place:
            verdict.append("  " + " ".join(place))
        if f["lag_s"] is not None:
            verdict.append(f"  lag {f['lag_s']:+.3f}s {inert(f['relation'])}".rstrip())
    verdict.append("  confidence ")
    verdict.append(str(f["confidence"]), style=CONFIDENCE_STYLE.get(str(f["confidence"]), ""))
    lines.append(verdict)
    if f["command"]:
        command = Text("  command: ")
        command.append_text(_t(f["command"], 200, style="green"))
        lines.append(command)
    lines.append(Text("  why:"))
    for reason in str(f["reasons"] or "").split("; "):
        lines.append(_t(f"    - {reason}"))
    if candidates:
        title = Text(f"  candidates for the first event: {len(candidates)}")
        if len(candidates) > top:
            title.append(f" (top {top} shown; all in the Parquet report)")
        lines.append(title)
        for c in candidates[:top]:
            line = Text(
                f"  {c['rank']:>4}. {c['lag_s']:+9.3f}s {c['relation']:<6} "
                f"{evidence_flags(c):<16} {c['score']:5.2f}  "
            )
            who = " ".join(
                str(x)
                for x in (
                    c["host"],
                    c["episode_id"],
                    None if c["step"] is None else f"step {c['step']}",
                )
                if x is not None
            )
            line.append_text(_t(f"{who}  {c['tool'] or 'call'}: "))
            line.append_text(_t(c["command"] or "", COMMAND_CHARS, style="green"))
            line.no_wrap = True
            line.overflow = "ellipsis"
            lines.append(line)
    return Group(*lines)


def offsets_renderable(result: Result) -> RenderableType:
    """Clock offsets: what was applied, and each estimate with its interval and evidence."""
    lines: list[Text] = []
    for source, offset in sorted(result.applied_offsets.items()):
        lines.append(
            _t(
                f"clock offset applied: {source} {offset:+.3f}s (its times are shown on the trajectories' clock)"
            )
        )
    for e in result.offset_estimates:
        if e.offset_s is None:
            lines.append(
                _t(
                    f"clock: {e.network_source} vs {e.agent_source}: {e.note} ({e.pairs} pairs)",
                    style="dim",
                )
            )
            continue
        text = (
            f"clock: {e.network_source} runs {e.offset_s:+.2f}s [{e.ci_low_s:+.2f}, {e.ci_high_s:+.2f}] against "
            f"{e.agent_source} ({e.peak_pairs} of {e.pairs} pairs in the peak"
        )
        if e.drift_ppm is not None:
            text += f"; drift {e.drift_ppm:+.0f} ppm"
        text += ")"
        if e.network_source not in result.applied_offsets:
            text += "; not applied: --offset auto applies it"
        lines.append(_t(text))
    return Group(*lines)


def statistics_renderable(
    associations: list[Association], baselines: list[Baseline], top: int = 10
) -> RenderableType:
    """Association with chance (run, tool, episodes), its power, and the in-flight baseline.

    A result whose test cannot tell association from chance (``Association.cannot_tell``) shows
    "cannot tell" instead of its p-value, and a plain sentence below the table says why.
    """
    table = Table(
        title="Violation onsets in call windows vs chance (circular shift within each episode)",
        box=box.SIMPLE_HEAD,
        title_justify="left",
        pad_edge=False,
        padding=(0, 0),
    )
    # Numbers never truncate; at 80 columns headers wrap, keys fold and "cannot tell" wraps.
    table.add_column("scope", no_wrap=True)
    table.add_column("key", overflow="fold", min_width=8, ratio=1)
    for column in ("calls", "onsets", "in\nwindows", "expected", "lift", "in\nflight", "min\nlift"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("p", justify="right", min_width=6)
    table.add_column("q\n(BH)", justify="right", no_wrap=True)
    episodes = [a for a in associations if a.scope == "episode"]
    shown = [a for a in associations if a.scope != "episode"] + sorted(
        episodes, key=lambda a: (a.p_value, a.key)
    )[:top]
    for a in shown:
        table.add_row(
            a.scope,
            _t(a.key if a.host is None else f"{a.key} ({a.host})", 60),
            str(a.calls),
            str(a.violations),
            str(a.observed),
            f"{a.expected:.2f}",
            "-" if a.lift is None else f"{a.lift:.2f}",
            "-" if a.in_flight_fraction is None else f"{a.in_flight_fraction:.0%}",
            "-" if a.min_detectable_lift is None else f"{a.min_detectable_lift:.2f}",
            Text("cannot tell", style="yellow") if a.cannot_tell else f"{a.p_value:.3g}",
            "" if a.q_value is None or a.cannot_tell else f"{a.q_value:.3g}",
        )
    parts: list[RenderableType] = [table]
    if len(episodes) > top:
        parts.append(
            Text(
                f"  {len(episodes) - top} more episodes with onsets (all in the Parquet report)",
                style="dim",
            )
        )
    parts.extend(_power_notes(associations))
    base = Table(
        title="Onset rate while a call is in flight vs while none is",
        box=box.SIMPLE_HEAD,
        title_justify="left",
        pad_edge=False,
    )
    for column in (
        "tool",
        "in flight h",
        "idle h",
        "onsets in flight",
        "onsets idle",
        "rate in flight /h",
        "rate idle /h",
        "ratio",
    ):
        base.add_column(column, justify="left" if column == "tool" else "right")
    for b in baselines:
        base.add_row(
            _t(b.tool),
            f"{b.in_flight_s / 3600:.2f}",
            f"{b.idle_s / 3600:.2f}",
            str(b.violations_in_flight),
            str(b.violations_idle),
            "-" if b.rate_in_flight_per_h is None else f"{b.rate_in_flight_per_h:.3f}",
            "-" if b.rate_idle_per_h is None else f"{b.rate_idle_per_h:.3f}",
            "-" if b.ratio is None else f"{b.ratio:.2f}",
        )
    parts.append(base)
    return Group(*parts)


def _power_notes(associations: list[Association]) -> list[RenderableType]:
    """Why a "cannot tell" is no "not above chance": one sentence per run or tool that cannot
    tell, one for the episodes that cannot on their own; then what the power columns mean."""
    notes: list[RenderableType] = []
    for a in associations:
        if a.scope != "episode" and a.power_note:
            notes.append(_t(f"  {a.scope} {a.key}: {a.power_note}.", style="yellow"))
    episodes = [a for a in associations if a.scope == "episode"]
    mute = [a for a in episodes if a.cannot_tell]
    if mute:
        shares = sorted(round(100 * (a.in_flight_fraction or 0.0)) for a in mute)
        onsets = sorted(a.violations for a in mute)
        notes.append(
            _t(
                f"  {len(mute)} of {len(episodes)} episodes with onsets cannot tell association "
                f"from chance on their own (calls in flight {_span(shares, '%')} of the time, "
                f"{_span(onsets, '')} onset(s) each); the run and tool rows pool their onsets.",
                style="yellow",
            )
        )
    if any(a.in_flight_fraction is not None for a in associations):
        notes.append(
            Text(
                f"  in flight: share of the span covered by call windows; min lift: the smallest "
                f"lift found {POWER:.0%} of the time at p <= {ALPHA:g} (at most 1 / in flight)",
                style="dim",
            )
        )
    return notes


def _span(values: list[int], unit: str) -> str:
    """``3%`` or ``3-41%`` for sorted values."""
    low, high = values[0], values[-1]
    return f"{low}{unit}" if low == high else f"{low}-{high}{unit}"


def load_summary_renderable(result: Result) -> RenderableType:
    """Per input file: format, rows read, loaded, rejected, skipped; then skip reasons and notes."""
    table = Table(title="Inputs", box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    table.add_column("file", overflow="fold")
    table.add_column("format", no_wrap=True)
    for column in ("read", "loaded", "rejected", "skipped"):
        table.add_column(column, justify="right", no_wrap=True)
    details: list[Text] = []
    for f in result.loaded.inputs:
        if f.stats is None or f.skipped_reason:
            table.add_row(_t(f.path), "skipped", "", "", "", "")
            details.append(_t(f"  {f.path}: skipped, {f.skipped_reason}", style="dim"))
            continue
        s = f.stats
        table.add_row(
            _t(f.path),
            f"{f.format}{' (forced)' if f.forced else ''}",
            f"{s.read} {s.unit}",
            str(s.loaded),
            Text(str(s.rejected), style="bold red" if s.rejected else ""),
            str(s.skipped_total),
        )
        for reason, n in sorted(s.skipped.items()):
            details.append(_t(f"  {f.path}: skipped {n}: {reason}", style="dim"))
        for note, n in sorted(s.notes.items()):
            details.append(_t(f"  {f.path}: note on {n} row(s): {note}", style="dim"))
    counts = result.provenance()["counts"]
    footer = Text(
        f"{counts['network_events']} network events, {counts['tool_calls']} tool calls, "
        f"{counts['identity_rows']} identity rows ({result.identity_mode} join), "
        f"{counts['violations']} violations in {counts['conversations']} conversations"
    )
    return Group(table, *details, footer)


def rejects_renderable(rejects: Iterable[Reject], limit: int = 10) -> RenderableType:
    """The first ``limit`` rejected rows as ``path:line: reason``."""
    items = list(rejects)
    lines = [_t(str(r), 300, style="yellow") for r in items[:limit]]
    if len(items) > limit:
        lines.append(
            Text(
                f"... and {len(items) - limit} more (use --rejects FILE to keep them all)",
                style="yellow",
            )
        )
    return Group(*lines)


__all__ = [
    "findings_renderable",
    "load_summary_renderable",
    "offsets_renderable",
    "rejects_renderable",
    "statistics_renderable",
]
