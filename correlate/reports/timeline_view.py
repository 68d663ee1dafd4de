"""The timeline (``timeline.build_timeline``'s rows) on a terminal and in a pipe.

On a terminal a ``FitTable`` (violations in red, other traffic dim); in a pipe plain lines. Every
value that came from a log goes through ``inert``.
"""

from __future__ import annotations

from datetime import UTC, tzinfo
from typing import Any

import pyarrow as pa
from rich.console import RenderableType
from rich.text import Text

from ..query import format_time
from ..schema import plain_rows
from ..textsafe import inert
from .tables import Column, FitTable, clock, shown, words


def _bytes(n: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def _what(r: dict[str, Any]) -> str:
    if r["kind"] == "call":
        step = f"step {r['step']}" if r["step"] is not None else None
        return words(step, r["tool"])
    port = f":{r['dst_port']}" if r["dst_port"] is not None else ""
    domain = f" {r['dst_domain']}" if r["dst_domain"] else ""
    return f"{shown(r['action'], '-')} → {shown(r['dst_ip'], '-')}{port}{domain}"


def _detail(r: dict[str, Any]) -> str:
    if r["kind"] == "call":
        bits = []
        if r["duration_s"] is not None:
            bits.append(f"{r['duration_s']:.1f}s")
        if r["exit_code"] is not None:
            bits.append(f"exit {r['exit_code']}")
        head = f"({', '.join(bits)}) " if bits else ""
        return head + str(r["command"] or "")
    if r["kind"] == "traffic":
        sizes = [
            f"{_bytes(r[key])} {way}"
            for key, way in (("bytes_out", "out"), ("bytes_in", "in"))
            if r.get(key) is not None
        ]
        return ", ".join(x for x in (r.get("app"), *sizes) if x)
    return str(r["labels"] or "")


def _short_link(r: dict[str, Any]) -> str:
    """The link for a narrow column: step, lag and confidence first, the long call id last."""
    if r["kind"] != "violation" or not r["attributed_call_id"]:
        return str(r["link"] or "")
    verb = "inherited from" if r["how"] == "inherited" else "attributed to"
    bits = [
        f"step {r['attributed_step']}" if r["attributed_step"] is not None else None,
        f"{r['lag_s']:+.1f}s" if r["lag_s"] is not None else None,
        r["confidence"] or None,
    ]
    head = ", ".join(b for b in bits if b)
    return (
        f"← {verb} {head}: {r['attributed_call_id']}"
        if head
        else f"← {verb} {r['attributed_call_id']}"
    )


def _delta(value: float | None) -> str:
    return "" if value is None else f"+{value:.1f}s"


def timeline_table(timeline: pa.Table, zone: tzinfo = UTC) -> RenderableType:
    """The timeline as a table fitted to the console (violations in red, other traffic dim)."""
    columns = [
        Column("time", 1),
        Column("+Δ", 1, right=True),
        Column("episode", 4, max_width=24),
        Column("what", 1, max_width=48),
        Column("link", 1, max_width=72),
        Column("command / labels", 2, flexible=True),
    ]
    rows = []
    records = plain_rows(timeline)
    when, caption = clock([r["ts"] for r in records], zone, digits=3)
    for r in records:
        style = {"violation": "bold red", "traffic": "dim"}.get(str(r["kind"]), "")
        rows.append(
            [
                Text(when(r["ts"]), style=style, no_wrap=True),
                Text(_delta(r["delta_s"]), no_wrap=True),
                Text(inert(r["episode_id"] or ""), no_wrap=True, overflow="ellipsis"),
                Text(inert(_what(r)), style=style, no_wrap=True, overflow="ellipsis"),
                Text(
                    inert(_short_link(r)),
                    style="dim" if r["kind"] == "traffic" else "magenta",
                    no_wrap=True,
                    overflow="ellipsis",
                ),
                Text(
                    inert(_detail(r), 400),
                    style={"call": "green", "traffic": "dim"}.get(str(r["kind"]), "magenta"),
                    no_wrap=True,
                    overflow="ellipsis",
                ),
            ]
        )
    return FitTable(columns, rows, caption)


def timeline_text(timeline: pa.Table, zone: tzinfo = UTC) -> str:
    """The timeline as plain lines for pipes: time, +delta, kind, what, link, command/labels."""
    lines = []
    for r in plain_rows(timeline):
        parts = [
            format_time(r["ts"], zone, " ", digits=3),
            _delta(r["delta_s"]).rjust(9) if r["delta_s"] is not None else " " * 9,
            shown(r["kind"], "-").ljust(9),
            inert(r["episode_id"] or "-"),
            inert(_what(r)),
        ]
        if r["link"]:
            parts.append(inert(r["link"]))
        detail = _detail(r)
        if detail:
            parts.append(inert(detail))
        lines.append("  ".join(parts))
    return "\n".join(lines) + ("\n" if lines else "")


__all__ = ["timeline_table", "timeline_text"]
