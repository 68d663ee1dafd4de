"""Timelines: one episode's or host's calls and violations interleaved, with attribution links."""

from __future__ import annotations

import csv
import io
import json

import pytest
from rich.console import Console
from test_case_fixtures import MINER_CALL, MINER_EPISODE, TUNNEL_CALL, invoke, sample_case

from correlate.case import open_case
from correlate.errors import CorrelateError, OptionError
from correlate.pipeline import RunOptions
from correlate.query import parse_bounds
from correlate.reports.timeline_view import timeline_table, timeline_text
from correlate.timeline import build_timeline

FIRST_ALERT = "2025-12-02T06:19:44Z"


def test_the_minute_before_the_first_alert_on_aligned_clocks_shows_the_miner_being_started() -> (
    None
):
    result = open_case(sample_case()).analyse(RunOptions(offset_auto=True))
    first_alert = min(
        r["ts"] for r in result.attributions.to_pylist() if r["episode_id"] == MINER_EPISODE
    )
    lo, hi = parse_bounds("-1m", str(first_alert.timestamp()))
    rows = build_timeline(result, episode=[MINER_EPISODE], since_ns=lo, until_ns=hi).to_pylist()
    kinds = [(r["kind"], r["step"] or r["attributed_step"]) for r in rows]
    assert kinds == [("call", 8), ("call", 9), ("call", 10), ("violation", 10)]
    _, wget, xmrig, alert = rows
    assert "xmrig-6.21.0" in wget["command"] and "stratum+tcp://" in xmrig["command"]
    assert xmrig["link"] == "→ 40 violation(s) attributed, conversation(s) #2 (mining)"
    assert alert["attributed_call_id"] == MINER_CALL and alert["labels"] == "mining"
    assert alert["link"].startswith(f"← attributed to {MINER_CALL} (step 10), +0.")
    assert alert["delta_s"] == pytest.approx((alert["ts"] - xmrig["ts"]).total_seconds())


def test_an_episode_timeline_keeps_late_inherited_violations() -> None:
    result = open_case(sample_case()).analyse(RunOptions())
    rows = build_timeline(result, episode=[MINER_EPISODE]).to_pylist()
    violations = [r for r in rows if r["kind"] == "violation"]
    assert len(violations) == 40
    assert [r["how"] for r in violations].count("inherited") == 39
    assert rows == sorted(rows, key=lambda r: r["ts"])


def test_a_host_timeline_holds_its_calls_and_the_violations_from_it() -> None:
    result = open_case(sample_case()).analyse(RunOptions())
    rows = build_timeline(result, host=["sbx-03"]).to_pylist()
    assert {r["host"] for r in rows} == {"sbx-03"}
    tunnel = [r for r in rows if r["kind"] == "violation"]
    assert len(tunnel) == 3 and {r["attributed_call_id"] for r in tunnel} == {TUNNEL_CALL}


def test_timeline_errors_name_what_is_missing() -> None:
    result = open_case(sample_case()).analyse(RunOptions())
    with pytest.raises(OptionError, match="--episode or --host"):
        build_timeline(result)
    with pytest.raises(CorrelateError, match=r"no calls or violations for episode nope .*ep-0423"):
        build_timeline(result, episode=["nope"])
    usage = invoke("timeline", str(sample_case()))
    assert usage.exit_code == 2 and "timeline needs --episode ID or --host NAME" in usage.stderr
    missing = invoke("timeline", str(sample_case()), "--episode", "nope")
    assert missing.exit_code == 1 and missing.stderr.startswith("error: no calls or violations")


def test_piped_timeline_is_plain_text_and_other_formats_parse() -> None:
    case = str(sample_case())
    args = ("timeline", case, "--episode", MINER_EPISODE, "--since", "-1m", "--until", FIRST_ALERT)
    text = invoke(*args)
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    assert len(lines) == 3 and "\x1b" not in text.stdout
    assert lines[-1].startswith("2025-12-02 06:19:44.000Z")
    assert "violation" in lines[-1] and "← attributed to call_6U9V8oHYd0X71BklQW0XCSPL" in lines[-1]
    records = [json.loads(x) for x in invoke(*args, "--output", "jsonl").stdout.splitlines()]
    assert [r["kind"] for r in records] == ["call", "call", "violation"]
    table = list(csv.DictReader(io.StringIO(invoke(*args, "--output", "csv").stdout)))
    assert table[-1]["ts"] == "2025-12-02T06:19:44Z" and table[-1]["labels"] == "mining"
    summary = json.loads(invoke(*args, "--json").stdout)
    assert summary["calls"] == 2 and summary["violations"] == 1


def test_the_timeline_table_fits_and_shows_the_link() -> None:
    result = open_case(sample_case()).analyse(RunOptions())
    rows = build_timeline(
        result, episode=[MINER_EPISODE], until_ns=parse_bounds(None, FIRST_ALERT)[1]
    )
    for width in (80, 200):
        out = io.StringIO()
        Console(file=out, width=width, color_system=None).print(timeline_table(rows))
        assert all(len(line) <= width for line in out.getvalue().splitlines())
    out = io.StringIO()
    Console(file=out, width=250, color_system=None).print(timeline_table(rows))
    assert "← attributed to step 10, -3.2s, high: call_6U9V8oHYd0X71BklQW0XCSPL" in out.getvalue()
    assert timeline_text(rows).count("\n") == rows.num_rows


def test_since_and_until_can_be_the_first_or_last_violation_of_the_timeline() -> None:
    case = str(sample_case())
    args = ("timeline", case, "--episode", MINER_EPISODE, "--offset", "auto", "--json")
    answer = json.loads(invoke(*args, "--until", "first", "--since", "-1m").stdout)
    steps = [(e["kind"], e["step"] or e["attributed_step"]) for e in answer["entries"]]
    assert steps == [("call", 8), ("call", 9), ("call", 10), ("violation", 10)]
    assert answer["entries"][-1]["ts"] == "2025-12-02T06:19:48.05Z"
    tail = json.loads(invoke(*args, "--since", "last").stdout)
    kinds = [e["kind"] for e in tail["entries"]]
    assert kinds[0] == "violation" and "violation" not in kinds[1:]  # then the calls after it
    none = invoke("timeline", case, "--host", "sbx-01", "--until", "first")
    assert none.exit_code == 1 and "no violation on this timeline" in none.stderr
