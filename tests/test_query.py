"""Queries over a case: filters, the rows they select, output formats, zones and table widths."""

from __future__ import annotations

import io
import json
from datetime import timedelta, timezone

import pyarrow.parquet as pq
import pytest
from rich.console import Console
from test_case_fixtures import (
    MINER_CALL,
    MINER_EPISODE,
    TUNNEL_CALL,
    TUNNEL_IP,
    hostile_case,
    invoke,
    sample_case,
    scratch,
)

from correlate.case import open_case
from correlate.errors import OptionError
from correlate.pipeline import RunOptions
from correlate.query import (
    AddressPattern,
    Filters,
    format_time,
    parse_bounds,
    select_events,
    select_findings,
)
from correlate.reports.tables import events_table, findings_table
from correlate.timeparse import parse_iso

FIRST_ALERT = "2025-12-02T06:19:44Z"


def ns(text: str) -> int:
    return parse_iso(text)[0]


@pytest.mark.parametrize(
    ("pattern", "ip", "domain", "expected"),
    [
        ("203.0.113.7", "203.0.113.7", None, True),
        ("203.0.113.7", "203.0.113.70", None, False),
        ("203.0.113.0/24", "203.0.113.70", None, True),
        ("supportxmr.com", "141.94.96.144", "pool.supportxmr.com", True),
        ("supportxmr.com", "141.94.96.144", "notsupportxmr.com", False),
        ("POOL.supportxmr.com", None, "pool.SUPPORTXMR.com.", True),
        ("2001:db8::/32", "2001:db8::1", None, True),
        ("10.0.0.0/8", "not-an-ip", None, False),
    ],
)
def test_an_address_pattern_matches_ips_networks_and_domains_with_subdomains(
    pattern: str, ip: str | None, domain: str | None, expected: bool
) -> None:
    assert AddressPattern.parse(pattern, "--dst").matches(ip, domain) is expected


@pytest.mark.parametrize("bad", ["", "a b", "http://x/", "1.2.3.4:80"])
def test_a_bad_address_pattern_is_a_usage_error(bad: str) -> None:
    with pytest.raises(OptionError, match="--dst"):
        AddressPattern.parse(bad, "--dst")


def test_bounds_accept_iso_epoch_and_a_duration_relative_to_the_other_bound() -> None:
    assert parse_bounds("-1m", FIRST_ALERT) == (ns(FIRST_ALERT) - 60 * 10**9, ns(FIRST_ALERT))
    assert parse_bounds(FIRST_ALERT, "+30s") == (ns(FIRST_ALERT), ns(FIRST_ALERT) + 30 * 10**9)
    assert parse_bounds("1764656384", None) == (ns(FIRST_ALERT), None)
    shanghai = timezone(timedelta(hours=8))
    assert parse_bounds("2025-12-02T14:19:44", None, shanghai) == (ns(FIRST_ALERT), None)
    for since, until, message in [
        ("-1m", "+1m", "cannot both be relative"),
        ("-1m", None, "needs an absolute --until"),
        ("yesterday", None, "--since: not a time"),
        ("2025-12-03T00:00:00Z", FIRST_ALERT, "--since is after --until"),
    ]:
        with pytest.raises(OptionError, match=message):
            parse_bounds(since, until)


def test_format_time_is_exact_and_shows_the_zone() -> None:
    t = ns("2025-12-02T06:19:44.1234Z")
    assert format_time(t) == "2025-12-02T06:19:44.1234Z"
    assert format_time(t, timezone(timedelta(hours=8)), " ") == "2025-12-02 14:19:44.1234+08:00"
    assert format_time(t, digits=3) == "2025-12-02T06:19:44.123Z"


def test_everything_near_the_tunnel_address_is_its_three_events_and_the_ssh_call() -> None:
    result = invoke("query", str(sample_case()), "--dst", TUNNEL_IP, "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert (
        answer["rows"] == 3 and answer["conversations"] == [1] and answer["calls"] == [TUNNEL_CALL]
    )
    first = answer["events"][0]
    assert first["how"] == "direct" and first["confidence"] == "high"
    assert first["command"].startswith("ssh -fNR 2222:localhost:22")
    assert first["labels"] == "reverse_tunnel" and first["candidates"] == 1
    assert [e["how"] for e in answer["events"]] == ["direct", "inherited", "inherited"]


def test_query_filters_combine_with_and_and_repeat_with_or() -> None:
    result = open_case(sample_case()).analyse(RunOptions())
    miner = select_events(result, Filters.build(dst=["supportxmr.com"]))
    assert miner.num_rows == 40 and set(miner.column("call_id").to_pylist()) == {MINER_CALL}
    both = select_events(result, Filters.build(dst=["supportxmr.com", TUNNEL_IP]))
    assert both.num_rows == 43
    assert select_events(result, Filters.build(dst=[TUNNEL_IP], label=["mining"])).num_rows == 0
    late = Filters.build(dst=["supportxmr.com"], since="2025-12-02T06:50:00Z")
    assert select_events(result, late).num_rows == 9
    grep = select_events(result, Filters.build(grep=r"xmrig\b.*stratum"))
    assert grep.num_rows == 40
    assert select_events(result, Filters.build(episode=["ep-0423-sbx-12-*"])).num_rows == 10
    assert select_events(result, Filters.build(min_confidence="high")).num_rows == 53
    assert select_events(result, Filters.build(src=["192.168.50.0/24"])).num_rows == 2
    assert select_events(result, Filters.build(src=["47.96.180.21"])).num_rows > 40  # NAT address


def test_candidate_rows_mark_the_attributed_call() -> None:
    result = open_case(sample_case()).analyse(RunOptions())
    rows = select_events(result, Filters.build(dst=["100.100.100.200"]), candidates=True)
    assert rows.num_rows == 2
    assert rows.column("attributed").to_pylist() == [True, False]
    assert rows.column("rank").to_pylist() == [1, 2]


def test_findings_filters_and_the_json_summary() -> None:
    case = str(sample_case())
    answer = json.loads(invoke("findings", case, "--json").stdout)
    assert answer["conversations"] == 13 and answer["events"] == 55
    assert answer["by_confidence"] == {"none": 1, "low": 0, "medium": 0, "high": 12}
    mining = json.loads(invoke("findings", case, "--label", "mining", "--json").stdout)
    assert [f["episode_id"] for f in mining["findings"]] == [MINER_EPISODE]
    window = json.loads(
        invoke(
            "findings", case, "--since", "2025-12-02T06:30:00Z", "--until", "+10m", "--json"
        ).stdout
    )
    assert window["conversations"] == 11  # overlapping: the miner (06:19-06:58) and ten probes
    assert (
        json.loads(invoke("findings", case, "--host", "sbx-12", "--json").stdout)["conversations"]
        == 10
    )


def test_findings_by_tool_answers_which_tools_are_over_represented() -> None:
    result = invoke(
        "findings",
        str(sample_case()),
        "--by",
        "tool",
        "--offset",
        "auto",
        "--permutations",
        "99",
        "--json",
    )
    assert result.exit_code == 0, result.output
    groups = {g["key"]: g for g in json.loads(result.stdout)["groups"]}
    shell = groups["run_shell_command"]
    assert shell["conversations"] == 12 and shell["in_windows"] == 12
    assert shell["lift"] > 2 and shell["p_value"] < 0.05
    assert groups["(none)"]["none"] == 1
    table = invoke("findings", str(sample_case()), "--by", "label", "--permutations", "99")
    assert "reverse_tunnel" in table.stdout and "mining" in table.stdout


def test_rows_go_to_csv_jsonl_and_parquet_files_and_the_format_follows_the_extension() -> None:
    work = scratch("outputs")
    case = str(sample_case())
    for name in ("q.csv", "q.jsonl", "q.parquet"):
        result = invoke("query", case, "--dst", TUNNEL_IP, "-o", str(work / name))
        assert result.exit_code == 0, result.output
        assert result.stdout == ""
    csv_lines = (work / "q.csv").read_text().splitlines()
    assert csv_lines[0].startswith("event_id,ts,conversation_id,") and len(csv_lines) == 4
    assert ",2025-12-02T06:11:19Z," in csv_lines[1]
    rows = [json.loads(line) for line in (work / "q.jsonl").read_text().splitlines()]
    assert [r["event_id"] for r in rows] == [165, 167, 170] and rows[0]["call_id"] == TUNNEL_CALL
    table = pq.read_table(work / "q.parquet")
    assert table.num_rows == 3 and str(table.schema.field("ts").type) == "timestamp[ns, tz=UTC]"
    meta = table.schema.metadata
    assert json.loads(meta[b"correlate.filters"]) == {"dst": [TUNNEL_IP]}
    assert json.loads(meta[b"correlate.provenance"])["counts"]["violations"] == 55
    bad = invoke("query", case, "-o", str(work / "q.txt"))
    assert bad.exit_code == 2 and "say which format with --format" in bad.stderr


def test_display_tz_changes_what_is_shown_not_what_is_stored() -> None:
    case = str(sample_case())
    shown = invoke(
        "query", case, "--dst", TUNNEL_IP, "--output", "csv", "--display-tz", "Asia/Shanghai"
    )
    assert ",2025-12-02T14:11:19+08:00," in shown.stdout
    naive = invoke(
        "query", case, "--since", "2025-12-02T14:11:20", "--display-tz", "+08:00", "--json"
    )
    assert [e["event_id"] for e in json.loads(naive.stdout)["events"]][:2] == [167, 170]
    work = scratch("tz")
    invoke(
        "query",
        case,
        "--dst",
        TUNNEL_IP,
        "--display-tz",
        "Asia/Shanghai",
        "-o",
        str(work / "a.parquet"),
    )
    assert str(pq.read_table(work / "a.parquet").schema.field("ts").type) == "timestamp[ns, tz=UTC]"
    for args, message in [
        (("--display-tz", "Mars/Olympus"), "unknown time zone"),
        (("--grep", "("), "--grep: not a regular expression"),
        (("--dst", "a b"), "--dst: not an IP"),
    ]:
        result = invoke("query", case, *args)
        assert result.exit_code == 2 and message in result.stderr


@pytest.mark.parametrize("width", [60, 80, 120, 200])
def test_tables_fit_the_terminal_width(width: int) -> None:
    result = open_case(sample_case()).analyse(RunOptions())
    # what must stay: a finding's sandbox, destination, label, call and confidence; an event's time
    for renderable, kept in (
        (findings_table(select_findings(result, Filters())), ("sbx-03", "203.0.113.7", "high")),
        (
            events_table(select_events(result, Filters.build(dst=["supportxmr.com"]))),
            ("06:19:44Z",),
        ),
    ):
        out = io.StringIO()
        Console(file=out, width=width, color_system=None).print(renderable)
        lines = out.getvalue().splitlines()
        assert all(len(line) <= width for line in lines), width
        for part in kept:
            assert any(part in line for line in lines), (part, width)
        if width >= 80 and "sbx-03" in kept:
            assert any("step 27: ssh" in line for line in lines), width


def test_hostile_text_is_inert_in_tables_and_json() -> None:
    result = open_case(hostile_case()).analyse(RunOptions())
    out = io.StringIO()
    console = Console(file=out, width=1500, color_system=None)
    console.print(findings_table(select_findings(result, Filters())))
    console.print(events_table(select_events(result, Filters())))
    text = out.getvalue()
    for raw in ("\x1b", "\r", "\b", "\u202e"):
        assert raw not in text
    assert "\\x1b[31mRED" in text and "\\u202egnp.exe" in text and "[bold red]markup[/]" in text
    answer = invoke("query", str(hostile_case()), "--json").stdout
    assert answer.isascii() and "\x1b" not in answer
    assert json.loads(answer)["events"][1]["command"].startswith("=HYPERLINK(")


def test_query_candidates_carry_every_evidence_kind() -> None:
    result = invoke("query", str(sample_case()), "--candidates", "--json")
    rows = json.loads(result.stdout)["events"]
    assert {"identity", "indicator", "agreement", "relation", "score"} <= set(rows[0])
    assert any(r["agreement"] == "ssh_tunnel call, reverse_tunnel traffic" for r in rows)
