"""The terminal tables (``reports/tables.py``, ``reports/timeline_view.py``) rendered on a
``StringIO`` console from small hand-made rows: what they keep, drop and cut at each width, and
that log text in them stays inert."""

from __future__ import annotations

import io

import pytest
from rich.console import Console, RenderableType
from rich.text import Text

from correlate.query import CANDIDATE_ROWS, GROUPS, QUERY
from correlate.reports.tables import (
    Column,
    FitTable,
    clock,
    events_table,
    findings_table,
    groups_table,
)
from correlate.reports.timeline_view import timeline_table, timeline_text
from correlate.schema import FINDINGS, from_columns
from correlate.timeline import TIMELINE
from correlate.timeparse import parse_iso

T0 = parse_iso("2025-12-02T06:19:44Z")[0]
HOSTILE = "\x1b[31mRED [bold red]markup[/] \u202egnp.exe"


def render(renderable: RenderableType, width: int) -> list[str]:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(renderable)
    return out.getvalue().splitlines()


def fit_table() -> FitTable:
    columns = [
        Column("id", 1, right=True),
        Column("sandbox", 1, max_width=24),
        Column("detail", 5),
        Column("command", 2, flexible=True),
    ]
    cells = ("7", "sbx-03-" + "x" * 30, "d" * 12, "curl " + "a" * 200)
    rows = [[Text(c, no_wrap=True, overflow="ellipsis") for c in cells]]  # as the tables make them
    return FitTable(columns, rows, caption="times on 2025-12-02 (UTC)")


def test_a_fit_table_shows_every_column_when_there_is_room() -> None:
    lines = render(fit_table(), 300)
    assert lines[0] == "times on 2025-12-02 (UTC)"
    assert all(name in lines[1] for name in ("id", "sandbox", "detail", "command"))
    assert not any("not shown at this width" in line for line in lines)


def test_a_narrow_fit_table_drops_its_least_important_column_and_says_so() -> None:
    lines = render(fit_table(), 60)
    assert all(len(line) <= 60 for line in lines)
    assert "detail" not in lines[1] and "command" in lines[1]
    note = " ".join(line.strip() for line in lines[4:])
    assert note == "(not shown at this width: detail; widen the terminal or use --format csv)"


def test_a_fit_table_cell_is_one_line_cut_with_an_ellipsis() -> None:
    lines = render(fit_table(), 80)
    body = [line for line in lines if "curl" in line]
    assert len(body) == 1 and body[0].rstrip().endswith("…")
    assert "sbx-03-xxx" in body[0]


def test_a_column_with_a_max_width_is_cut_down_rather_than_dropped() -> None:
    table = FitTable(
        [Column("first", 1), Column("wide", 2, max_width=40)],
        [[Text("a" * 30), Text("b" * 40)]],
    )
    lines = render(table, 60)
    assert "wide" in lines[0] and all(len(line) <= 60 for line in lines)
    assert not any("not shown" in line for line in lines)


def test_a_clock_gives_the_date_once_when_every_time_shares_it() -> None:
    when, caption = clock([T0, T0 + 1_500_000_000])
    assert caption == "times on 2025-12-02 (UTC)" and when(T0) == "06:19:44Z"
    when, caption = clock([T0, T0 + 86_400 * 10**9])
    assert caption is None and when(T0) == "2025-12-02 06:19:44Z"


def findings(**values: object) -> dict[str, list[object]]:
    row = {
        "conversation_id": 1,
        "first_ts": T0,
        "last_ts": T0,
        "src_ip": "192.168.10.13",
        "src_host": None,
        "address_holders": 4,
        "dst_ip": "203.0.113.7",
        "dst_port": 22,
        "event_count": 3,
        "actions": "denied",
        "labels": "reverse_tunnel",
        "confidence": "low",
        "call_id": "call-1",
        "step": 27,
        "tool": "bash",
        "command": HOSTILE,
        "lag_s": -4.1,
    }
    row.update(values)
    return {k: [v] for k, v in row.items()}


def test_the_findings_table_shows_a_shared_source_and_the_call_with_its_command() -> None:
    text = "\n".join(render(findings_table(from_columns(findings(), FINDINGS)), 200))
    assert "shared(4)" in text and "203.0.113.7:22" in text and "step 27:" in text
    assert "\\x1b[31mRED [bold red]markup[/] \\u202egnp.exe" in text
    assert "\x1b" not in text and "\u202e" not in text


def test_an_ambiguous_finding_says_how_many_calls_tie() -> None:
    row = findings(call_id=None, command=None, tied_calls="c1 (sbx-01), c2 (sbx-02)")
    text = "\n".join(render(findings_table(from_columns(row, FINDINGS)), 200))
    assert "ambiguous: 2 calls" in text


@pytest.mark.parametrize("candidates", [False, True])
def test_the_events_table_shows_how_or_the_rank_and_score(candidates: bool) -> None:
    row = {
        "event_id": [165],
        "ts": [T0],
        "src_ip": ["192.168.10.13"],
        "src_host": ["sbx-03"],
        "dst_ip": ["203.0.113.7"],
        "action": ["denied"],
        "how": ["direct"],
        "call_id": ["call-1"],
        "tool": ["bash"],
        "command": [HOSTILE],
        "lag_s": [-4.1],
        "confidence": ["high"],
    }
    schema = CANDIDATE_ROWS if candidates else QUERY
    if candidates:
        row.update(rank=[1], attributed=[True], score=[7.59])
    text = "\n".join(render(events_table(from_columns(row, schema)), 250))
    assert ("1*" in text and "7.59" in text) if candidates else "direct" in text
    assert "times on 2025-12-02 (UTC)" in text and "06:19:44Z" in text and "-4.1s" in text
    assert "[bold red]markup[/]" in text and "\x1b" not in text


def test_the_groups_table_says_cannot_tell_instead_of_a_p_value_and_why() -> None:
    row = {
        "by": ["tool"],
        "key": ["bash"],
        "conversations": [2],
        "events": [5],
        "high": [1],
        "medium": [0],
        "low": [1],
        "none": [0],
        "first_ts": [T0],
        "last_ts": [T0],
        "calls": [10],
        "onsets": [2],
        "in_windows": [1],
        "expected": [0.5],
        "lift": [2.0],
        "p_value": [0.4],
        "power_note": ["too few onsets to tell"],
    }
    text = "\n".join(render(groups_table(from_columns(row, GROUPS)), 200))
    assert "cannot tell" in text and "0.4" not in text
    assert "bash: too few onsets to tell" in text


def timeline() -> dict[str, list[object]]:
    return {
        "ts": [T0 - 4_100_000_000, T0],
        "kind": ["call", "violation"],
        "delta_s": [None, 4.1],
        "episode_id": ["ep-1", None],
        "step": [27, None],
        "tool": ["bash", None],
        "call_id": ["call-1", None],
        "command": [HOSTILE, None],
        "action": [None, "denied"],
        "dst_ip": [None, "203.0.113.7"],
        "dst_port": [None, 22],
        "labels": [None, "reverse_tunnel"],
        "link": [None, "← attributed to call-1"],
    }


def test_the_timeline_table_and_text_show_each_entry_inert() -> None:
    rows = from_columns(timeline(), TIMELINE)
    text = "\n".join(render(timeline_table(rows), 200))
    assert "step 27 bash" in text and "denied → 203.0.113.7:22" in text and "+4.1s" in text
    assert "[bold red]markup[/]" in text and "\x1b" not in text
    plain = timeline_text(rows).splitlines()
    assert len(plain) == 2 and plain[1].startswith("2025-12-02 06:19:44.000Z")
    assert "← attributed to call-1" in plain[1] and "\x1b" not in plain[0]
