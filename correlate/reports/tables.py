"""Terminal tables of the case commands: ``findings`` (and ``--by``), ``query`` (and
``--candidates``), and the ``FitTable`` that ``timeline`` shares.

Each table fits the console width: it drops its least important columns when narrow and every
cell is one line. Every value that came from a log goes through ``inert`` into a ``Text``, never
into markup. The rows are ``query``'s (``query.py`` selects them; this module only shows them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import Any

import pyarrow as pa
from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.table import Table
from rich.text import Text

from ..query import Row, format_time
from ..schema import plain_rows
from ..textsafe import inert
from ..timeparse import zone_name
from .overview import rank_key
from .styles import CONFIDENCE_STYLE, evidence_flags


def clock(
    values: Sequence[int | None], zone: tzinfo = UTC, digits: int | None = None
) -> tuple[Callable[[int | None], str], str | None]:
    """A formatter for a column of times, and a caption: the date once when all share it."""
    dates = {format_time(v, zone)[:10] for v in values if v is not None}
    if len(dates) == 1:
        label = "UTC" if zone is UTC else zone_name(zone)
        return (
            lambda ns: format_time(ns, zone, " ", digits)[11:],
            f"times on {dates.pop()} ({label})",
        )
    return (lambda ns: format_time(ns, zone, " ", digits)), None


def shown(value: object, empty: str = "") -> str:
    """A value as table text: ``empty`` for a missing one, never the string "None"."""
    return empty if value is None else str(value)


def words(*parts: object) -> str:
    """The parts that are present, joined by spaces (a missing step or tool leaves no "None")."""
    return " ".join(str(p) for p in parts if p is not None and str(p) != "")


def _dest(row: Row) -> str:
    port = f":{row['dst_port']}" if row.get("dst_port") is not None else ""
    domain = f" {row['dst_domain']}" if row.get("dst_domain") else ""
    return f"{shown(row.get('dst_ip'), '-')}{port}{domain}"


def _call(row: Row) -> str:
    if not row.get("call_id") and row.get("tied_calls"):
        tied = str(row["tied_calls"]).split(", ")
        return f"ambiguous: {len(tied)} calls" if len(tied) > 1 else "ambiguous"
    if not row.get("call_id"):
        return "nothing"
    step = f"step {row['step']}" if row.get("step") is not None else None
    return words(row.get("tool"), row.get("episode_id"), step) or shown(row["call_id"])


def _call_and_command(row: Row) -> str:
    """The attributed call (step, tool) and its command, or what stands instead of one."""
    if not row.get("call_id"):
        return _call(row)
    step = f"step {row['step']}:" if row.get("step") is not None else None
    command = " ".join(str(row.get("command") or "").split())
    return words(step, command or row.get("tool"), row.get("episode_id") if not command else None)


def _source_host(row: dict[str, Any]) -> str:
    """The finding's source host, "shared(N)" when N hosts held the address, else "unknown"."""
    holders = row.get("address_holders") or 0
    return str(row["src_host"] or (f"shared({holders})" if holders > 1 else "unknown"))


@dataclass(frozen=True)
class Column:
    """A column of a table that fits the console: lower ``priority`` is kept longer."""

    name: str
    priority: int = 1
    right: bool = False
    max_width: int | None = None
    flexible: bool = False
    """The column that takes the remaining width (one line, cut with an ellipsis)."""
    least: int = 20
    """A flexible column's smallest width before it is dropped."""


class FitTable:
    """A table that fits the console width: it drops its least important columns when narrow.

    Every cell is one line (untrusted text inert, cut with an ellipsis), so rows never turn into
    towers of folded characters; the flexible column (a command) takes what width is left.
    """

    GAP = 3

    def __init__(
        self,
        columns: Sequence[Column],
        rows: Sequence[Sequence[Text]],
        caption: str | None = None,
    ) -> None:
        self.columns = list(columns)
        self.rows = [list(r) for r in rows]
        self.caption = caption

    def _widths(self) -> list[int]:
        out = []
        for i, c in enumerate(self.columns):
            width = max([len(c.name), *(self.rows[r][i].cell_len for r in range(len(self.rows)))])
            out.append(min(width, c.max_width) if c.max_width else width)
        return out

    SHRINK_TO = 18
    """A column with a ``max_width`` may be cut down to this many characters rather than dropped."""

    def shown(self, width: int) -> dict[int, int | None]:
        """The columns that fit in ``width`` characters: index -> forced width (None: natural)."""
        widths = self._widths()
        order = sorted(range(len(self.columns)), key=lambda i: (self.columns[i].priority, i))
        used, chosen = 0, dict[int, int | None]()
        for i in order:
            column = self.columns[i]
            need = (min(widths[i], column.least) if column.flexible else widths[i]) + self.GAP
            if used + need <= width or not chosen:
                chosen[i] = None
                used += need
                continue
            room = width - used - self.GAP
            if column.max_width and not column.flexible and room >= self.SHRINK_TO:
                chosen[i] = room
                used += room + self.GAP
        return dict(sorted(chosen.items()))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        keep = self.shown(options.max_width)
        if self.caption:
            yield Text(self.caption, style="dim")
        table = Table(
            box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, padding=(0, 1), expand=False
        )
        for i, forced in keep.items():
            c = self.columns[i]
            table.add_column(
                c.name,
                justify="right" if c.right else "left",
                no_wrap=not c.flexible,
                overflow="ellipsis",
                width=forced,
                max_width=c.max_width,
                min_width=min(10, c.least) if c.flexible else None,
            )
        for row in self.rows:
            table.add_row(*(row[i] for i in keep))
        yield table
        hidden = [self.columns[i].name for i in range(len(self.columns)) if i not in keep]
        if hidden:
            yield Text(
                f"(not shown at this width: {', '.join(hidden)}; widen the terminal or use --format csv)",
                style="dim",
            )


def _cell(value: object, style: str = "", limit: int = 1000) -> Text:
    """Untrusted text as one inert line, cut with an ellipsis when its column is narrow."""
    return Text(inert(value, limit), style=style, no_wrap=True, overflow="ellipsis")


def _confidence(value: object) -> Text:
    return Text(shown(value, "-"), style=CONFIDENCE_STYLE.get(str(value), ""), no_wrap=True)


def _lag(value: float | None) -> Text:
    return Text("" if value is None else f"{value:+.1f}s", no_wrap=True)


def findings_table(findings: pa.Table, zone: tzinfo = UTC) -> RenderableType:
    """Conversations, one line each, fitted to the console, ranked as ``run``'s overview ranks
    them (what needs attention first); at 80 columns the sandbox, destination, label, call and
    confidence stay and the time, event count, lag and command give way."""
    columns = [
        Column("#", 1, right=True),
        Column("conf.", 1),
        Column("sandbox", 1, max_width=13),
        Column("destination", 1, max_width=19),
        Column("label", 1, max_width=14),
        Column("events", 3, right=True),
        Column("lag", 3, right=True),
        Column("first", 4),
        Column("source", 5, max_width=18),
        Column("call", 1, flexible=True, least=10),
    ]
    rows = []
    records = sorted(plain_rows(findings), key=rank_key)
    when, caption = clock([r["first_ts"] for r in records], zone)
    for r in records:
        rows.append(
            [
                _cell(r["conversation_id"]),
                _confidence(r["confidence"]),
                _cell(r.get("host") or _source_host(r)),
                _cell(_dest(r)),
                _cell(r["labels"] or ""),
                _cell(words(r["event_count"], r["actions"])),
                _lag(r["lag_s"]),
                _cell(when(r["first_ts"])),
                _cell(words(_source_host(r), r["src_ip"])),
                _cell(_call_and_command(r), "green" if r.get("call_id") else ""),
            ]
        )
    return FitTable(columns, rows, caption)


def events_table(rows: pa.Table, zone: tzinfo = UTC) -> RenderableType:
    """``query`` rows (violation events, or event x candidate pairs with their rank, score and
    evidence), fitted to the console."""
    candidates = "rank" in rows.column_names
    columns = [
        Column("event", 2, right=True),
        Column("time", 1),
        Column("source", 2, max_width=24),
        Column("destination", 1, max_width=36),
        Column("action", 3),
        Column("labels", 2, max_width=16),
    ]
    if candidates:
        columns += [
            Column("rank", 1, right=True),
            Column("score", 3, right=True),
            Column("evidence", 3, max_width=24),
        ]
    else:
        columns += [Column("how", 4)]
    columns += [
        Column("call", 1, max_width=44),
        Column("lag", 2, right=True),
        Column("conf.", 1),
        Column("command", 2, flexible=True),
    ]
    out = []
    records = plain_rows(rows)
    when, caption = clock([r["ts"] for r in records], zone)
    for r in records:
        middle = (
            [
                _cell(f"{shown(r['rank'], '-')}{'*' if r['attributed'] else ''}"),
                _cell("-" if r["score"] is None else f"{r['score']:.2f}"),
                _cell(evidence_flags(r)),
            ]
            if candidates
            else [_cell(r["how"])]
        )
        out.append(
            [
                _cell(r["event_id"]),
                _cell(when(r["ts"])),
                _cell(words(r["src_host"] or "unknown", r["src_ip"])),
                _cell(_dest(r)),
                _cell(r["action"]),
                _cell(r["labels"] or ""),
                *middle,
                _cell(_call(r)),
                _lag(r["lag_s"]),
                _confidence(r["confidence"]),
                _cell(r["command"] or "", "green"),
            ]
        )
    return FitTable(columns, out, caption)


def groups_table(groups: pa.Table) -> RenderableType:
    """``findings --by``: counts, confidence mix and association with chance, fitted."""
    rows = plain_rows(groups)
    by = rows[0]["by"] if rows else "key"
    stats = any(r["calls"] is not None for r in rows)
    columns = [Column(by, 1, max_width=40), Column("conv.", 1, right=True)]
    columns += [Column("events", 2, right=True)]
    columns += [Column(c, 3, right=True) for c in ("high", "med.", "low", "none")]
    if stats:
        columns += [
            Column("calls", 2, right=True),
            Column("in windows", 1, right=True),
            Column("expected", 1, right=True),
            Column("lift", 1, right=True),
            Column("in flight", 2, right=True),
            Column("min lift", 2, right=True),
            Column("p", 1, right=True),
            Column("q (BH)", 2, right=True),
        ]
    columns.append(Column("labels", 2, flexible=True))
    out = []
    for r in rows:
        cells = [_cell(r["key"])] + [
            _cell(r[k]) for k in ("conversations", "events", "high", "medium", "low", "none")
        ]
        if stats:
            if r["calls"] is None:
                cells += [_cell("")] * 8
            else:
                fraction, least = r["in_flight_fraction"], r["min_detectable_lift"]
                cannot = r["power_note"] is not None
                cells += [
                    _cell(r["calls"]),
                    _cell(f"{shown(r['in_windows'], '-')}/{shown(r['onsets'], '-')}"),
                    _cell("-" if r["expected"] is None else f"{r['expected']:.2f}"),
                    _cell("-" if r["lift"] is None else f"{r['lift']:.2f}"),
                    _cell("-" if fraction is None else f"{fraction:.0%}"),
                    _cell("-" if least is None else f"{least:.2f}"),
                    _cell(
                        "cannot tell"
                        if cannot
                        else "-"
                        if r["p_value"] is None
                        else f"{r['p_value']:.3g}"
                    ),
                    _cell("" if r["q_value"] is None or cannot else f"{r['q_value']:.3g}"),
                ]
        cells.append(_cell(r["labels"] or ""))
        out.append(cells)
    notes = [
        Text(inert(f"{r['key']}: {r['power_note']}"), style="dim") for r in rows if r["power_note"]
    ]
    if len(notes) > 5:
        notes = [*notes[:5], Text(f"... and {len(notes) - 5} more that cannot tell", style="dim")]
    return Group(FitTable(columns, out), *notes) if notes else FitTable(columns, out)


__all__ = [
    "Column",
    "FitTable",
    "clock",
    "events_table",
    "findings_table",
    "groups_table",
    "shown",
    "words",
]
