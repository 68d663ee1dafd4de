"""Case commands that explain and narrow (#13 item 6): ``show CASE N`` explains one conversation
as ``run -d`` does; ``export`` and ``report`` take the filters of ``query``/``findings`` and record
them in each file's provenance; ``timeline --all-traffic`` shows the sandbox's allowed flows from
every stored event; ``stats -v`` says how long the statistics took and whether they came from the
case's cache."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from functools import cache
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from test_case_fixtures import (
    HOSTILE,
    MINER_CALL,
    MINER_EPISODE,
    ROOT,
    TUNNEL_CALL,
    TUNNEL_IP,
    copy_case,
    correlate_cli,
    invoke,
    sample_case,
    scratch,
)

from correlate.case import open_case
from correlate.pipeline import RunOptions
from correlate.timeline import build_timeline

MINER = 2
"""The miner's conversation in the sample (``findings`` numbers it #2)."""


@cache
def _case() -> str:
    """A private copy of the sample case: these tests fill its cache, not the shared one's."""
    return str(copy_case(sample_case(), "show-and-narrowing"))


def _lose_a_row(case: Path) -> None:
    events = case / "events.parquet"
    table = pq.read_table(events)
    pq.write_table(table.slice(1), events)


# --- show CASE N -----------------------------------------------------------------------------


def test_show_prints_the_block_run_details_prints_for_that_conversation() -> None:
    case = _case()
    shown = invoke("show", case, str(MINER))
    assert shown.exit_code == 0, shown.output
    clock, block = shown.stdout.split("\n", 1)
    assert clock.startswith("clocks: as logged")
    assert block.lstrip("\n").startswith(
        "#2 sbx-07 (192.168.10.17 via 47.96.180.21) -> 141.94.96.144:3333/tcp (pool.supportxmr.com)"
    )
    details = invoke("run", case, "-d", "-q")
    assert details.exit_code == 0, details.output
    assert block.strip() in details.stdout  # the same block, line for line
    for part in (
        f"attributed to: run_shell_command {MINER_CALL}",
        "command: nohup ./xmrig",
        "why:",
        "    - mining: firewall signature 'Mining behavior on the host'",
        "candidates for the first event: 1",
    ):
        assert part in block
    assert "None" not in block


def test_show_lists_top_candidates_and_says_how_many_more() -> None:
    case = _case()
    probe = invoke("show", case, "3", "--top", "1")  # the metadata probe: two candidates
    assert probe.exit_code == 0, probe.output
    assert "candidates for the first event: 2 (top 1 shown" in probe.stdout
    assert len(re.findall(r"^\s+\d+\.\s+[+-]", probe.stdout, re.M)) == 1
    both = invoke("show", case, "#3")
    assert len(re.findall(r"^\s+\d+\.\s+[+-]", both.stdout, re.M)) == 2


@pytest.mark.parametrize(
    ("number", "message"),
    [
        ("99", "no conversation 99 in this analysis; the conversations are numbered 1 to 13"),
        ("0", "not a conversation number: '0'"),
        ("x", "not a conversation number: 'x'"),
    ],
)
def test_show_of_an_unknown_conversation_is_a_usage_error_naming_the_range(
    number: str, message: str
) -> None:
    result = invoke("show", _case(), number)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and result.stdout == ""


def test_show_json_gives_the_finding_its_events_and_candidates_with_iso_times() -> None:
    result = invoke("show", _case(), "1", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    finding = doc["finding"]
    assert doc["conversation"] == finding["conversation_id"] == 1
    assert finding["call_id"] == TUNNEL_CALL and finding["dst_ip"] == TUNNEL_IP
    assert re.fullmatch(r"2025-12-02T06:11:\d\d(\.\d+)?Z", finding["first_ts"])
    assert len(doc["attributions"]) == doc["events"] == finding["event_count"] == 3
    assert [a["how"] for a in doc["attributions"]] == ["direct", "inherited", "inherited"]
    assert all(a["ts"].endswith("Z") for a in doc["attributions"])
    assert doc["first_event"] == doc["attributions"][0]["event_id"]
    first = [c for c in doc["candidates"] if c["event_id"] == doc["first_event"]]
    assert first[0]["attributed"] and first[0]["call_id"] == TUNNEL_CALL
    assert first[0]["call_ts_start"].endswith("Z")
    assert doc["clock"]["aligned"] is False


def test_show_json_top_limits_the_candidates_of_each_event() -> None:
    case = _case()
    every = json.loads(invoke("show", case, "3", "--json", "--top", "100").stdout)
    one = json.loads(invoke("show", case, "3", "--json", "--top", "1").stdout)
    assert every["candidates_total"] == len(every["candidates"]) == 2
    assert len(one["candidates"]) == 1 and one["candidates"][0]["rank"] == 1
    assert one["candidates_top"] == 1 and one["candidates_total"] == 2


def test_show_honours_offset_and_the_display_zone() -> None:
    case = _case()
    logged = json.loads(invoke("show", case, "1", "--json").stdout)
    aligned = json.loads(invoke("show", case, "1", "--json", "--offset", "auto").stdout)
    assert logged["finding"]["lag_s"] == pytest.approx(-4.1)
    assert abs(aligned["finding"]["lag_s"]) < 0.5
    assert aligned["clock"]["aligned"] is True
    text = invoke("show", case, "1", "--offset", "auto")
    assert text.stdout.startswith("clocks: aligned on the trajectories' clock")
    zoned = json.loads(invoke("show", case, "1", "--json", "--display-tz", "+08:00").stdout)
    assert zoned["finding"]["first_ts"].startswith("2025-12-02T14:11:")
    assert zoned["finding"]["first_ts"].endswith("+08:00")


def test_show_honours_the_case_defaults() -> None:
    work = scratch("show-defaults")
    case = work / "case"
    made = invoke("ingest", str(case), "sample_logs/rome_incident", "--offset", "auto", "-q")
    assert made.exit_code == 0, made.output
    doc = json.loads(invoke("show", str(case), "1", "--json").stdout)
    assert doc["clock"]["aligned"] is True and abs(doc["finding"]["lag_s"]) < 0.5


def test_show_on_a_case_that_fails_its_hashes_refuses_unless_told_to_ignore() -> None:
    case = copy_case(Path(_case()), "show-damaged")
    _lose_a_row(case)
    refused = invoke("show", str(case), "1")
    assert refused.exit_code == 1 and refused.stdout == ""
    assert "events.parquet has SHA-256" in refused.stderr and "--ignore-integrity" in refused.stderr
    answered = invoke("show", str(case), "1", "--ignore-integrity", "-q")
    assert answered.exit_code == 0, answered.output
    assert "warning: " in answered.stderr and "#1 " in answered.stdout


# --- --conversation, and filters that narrow export and report -------------------------------


def test_conversation_filter_in_findings_and_query() -> None:
    case = _case()
    found = json.loads(invoke("findings", case, "--conversation", "2", "--json").stdout)
    assert [f["conversation_id"] for f in found["findings"]] == [MINER]
    assert found["filters"] == {"conversation": [MINER]}
    events = json.loads(invoke("query", case, "--conversation", "#1", "--json").stdout)
    assert events["rows"] == 3 and events["conversations"] == [1]
    unknown = invoke("query", case, "--conversation", "14")
    assert unknown.exit_code == 2
    assert "no conversation 14 in this analysis; the conversations are numbered 1 to 13" in (
        unknown.stderr
    )
    bad = invoke("findings", case, "--conversation", "two")
    assert bad.exit_code == 2 and "not a conversation number" in bad.stderr


def _provenance(path: Path) -> dict[str, object]:
    metadata = pq.read_schema(path).metadata
    return json.loads(metadata[b"correlate.provenance"])


def test_export_with_filters_keeps_the_matching_conversations_and_records_the_filters() -> None:
    case = _case()
    out = scratch("narrowed-export")
    whole = invoke("export", case, "-o", str(out / "all.parquet"), "--permutations", "19", "-q")
    mined = invoke(
        "export",
        case,
        "--label",
        "mining",
        "-o",
        str(out / "mining.parquet"),
        "--permutations",
        "19",
    )
    assert whole.exit_code == mined.exit_code == 0, mined.output
    assert "narrowed to 1 of 13 conversations (40 of 55 violation events)" in mined.stderr
    findings = pq.read_table(out / "mining.findings.parquet")
    attributions = pq.read_table(out / "mining.parquet")
    candidates = pq.read_table(out / "mining.candidates.parquet")
    assert findings.column("conversation_id").to_pylist() == [MINER]
    assert set(attributions.column("conversation_id").to_pylist()) == {MINER}
    assert attributions.num_rows == 40
    assert set(candidates.column("event_id").to_pylist()) <= set(
        attributions.column("event_id").to_pylist()
    )
    assert 0 < candidates.num_rows < pq.read_table(out / "all.candidates.parquet").num_rows
    # the statistics stay the whole case's, and say so
    assert pq.read_table(out / "mining.stats.parquet").equals(
        pq.read_table(out / "all.stats.parquet")
    )
    for name in ("mining.parquet", "mining.findings.parquet", "mining.stats.parquet"):
        provenance = _provenance(out / name)
        assert provenance["filters"] == {"label": ["mining"]}
        narrowed = provenance["narrowed"]
        assert isinstance(narrowed, dict)
        assert narrowed["conversations"] == 1 and narrowed["of_conversations"] == 13
        assert narrowed["violations"] == 40 and narrowed["of_violations"] == 55
        assert "whole case" in narrowed["stats"]
    assert "filters" not in _provenance(out / "all.parquet")  # unfiltered: as it always was


def test_export_filters_reach_every_format_and_their_provenance_file() -> None:
    case = _case()
    out = scratch("narrowed-formats")
    args = ("--host", "sbx-03", "--since", "06:00", "--until", "06:30", "--permutations", "0")
    csv = invoke("export", case, "-o", str(out / "t.csv"), *args, "-q")
    assert csv.exit_code == 0, csv.output
    lines = (out / "t.csv").read_text().splitlines()
    assert len(lines) == 1 + 3 and all(TUNNEL_IP in line for line in lines[1:])
    provenance = json.loads((out / "t.provenance.json").read_text())
    assert provenance["filters"]["host"] == ["sbx-03"]
    assert provenance["filters"]["since"] == "2025-12-02T06:00:00Z"
    assert provenance["counts"]["conversations"] == 1
    ocsf = invoke("export", case, "--format", "ocsf", "-o", str(out / "t.ocsf.jsonl"), *args)
    assert ocsf.exit_code == 0, ocsf.output
    events = [json.loads(line) for line in (out / "t.ocsf.jsonl").read_text().splitlines()]
    assert len(events) == 3 and {e["dst_endpoint"]["ip"] for e in events} == {TUNNEL_IP}
    assert json.loads((out / "t.ocsf.provenance.json").read_text())["filters"]["host"] == ["sbx-03"]
    sketch = invoke("export", case, "--format", "timesketch", "-o", str(out / "s.jsonl"), *args)
    assert sketch.exit_code == 0, sketch.output
    rows = [json.loads(line) for line in (out / "s.jsonl").read_text().splitlines()]
    violations = [r for r in rows if r["data_type"] == "correlate:violation"]
    calls = [r for r in rows if r["data_type"] == "correlate:tool_call"]
    assert len(violations) == 3 and calls
    assert all("sbx-03" in r["message"] for r in calls)  # only the tunnel's episode


def test_export_json_reports_what_the_filters_kept() -> None:
    out = scratch("narrowed-json")
    result = invoke(
        "export",
        _case(),
        "--conversation",
        "1",
        "--conversation",
        "2",
        "-o",
        str(out / "x.jsonl"),
        "--permutations",
        "0",
        "--json",
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["narrowed"]["filters"] == {"conversation": [1, 2]}
    assert doc["narrowed"]["conversations"] == 2 and doc["narrowed"]["violations"] == 43


def test_export_and_report_refuse_filters_that_cannot_match_before_writing() -> None:
    case = _case()
    out = scratch("narrowed-refused")
    for args in (
        ("export", case, "-o", str(out / "x.csv"), "--label", "minig"),
        ("export", case, "-o", str(out / "x.csv"), "--dst", "999.1.1.1"),
        ("export", case, "-o", str(out / "x.csv"), "--conversation", "14"),
        ("report", case, "-o", str(out / "x.html"), "--conversation", "14"),
        ("report", case, "-o", str(out / "x.html"), "--min-confidence", "certain"),
    ):
        result = invoke(*args, "--permutations", "0")
        assert result.exit_code == 2, (args, result.output)
    assert not list(out.iterdir())


def test_an_export_that_matches_nothing_is_written_empty_and_says_so() -> None:
    out = scratch("narrowed-empty")
    result = invoke(
        "export",
        _case(),
        "--dst",
        "10.9.9.9",
        "--format",
        "jsonl",
        "-o",
        str(out / "none.jsonl"),
        "--permutations",
        "0",
    )
    assert result.exit_code == 0, result.output
    assert "no conversation matches the filters" in result.stderr
    assert (out / "none.jsonl").read_text() == ""
    assert json.loads((out / "none.provenance.json").read_text())["counts"]["violations"] == 0


def test_report_with_filters_holds_only_the_matching_conversations() -> None:
    case = _case()
    out = scratch("narrowed-report")
    result = invoke(
        "report", case, "--host", "sbx-03", "-o", str(out / "r.html"), "--permutations", "19"
    )
    assert result.exit_code == 0, result.output
    html = (out / "r.html").read_text()
    assert TUNNEL_IP in html and "pool.supportxmr.com" not in html
    assert "<title>correlate report (narrowed: host sbx-03)</title>" in html
    assert "&quot;filters&quot;" in html or '"filters"' in html  # in the provenance section
    titled = invoke(
        "report", case, "--label", "mining", "--title", "Miner", "-o", str(out / "m.html")
    )
    assert titled.exit_code == 0 and "<title>Miner</title>" in (out / "m.html").read_text()


# --- timeline --all-traffic ------------------------------------------------------------------


def test_all_traffic_shows_the_miners_download_next_to_its_wget_call() -> None:
    case = _case()
    args = ("timeline", case, "--episode", MINER_EPISODE, "--until", "first", "--since", "-1m")
    plain = invoke(*args, "--offset", "auto")
    traffic = invoke(*args, "--offset", "auto", "--all-traffic")
    assert plain.exit_code == traffic.exit_code == 0, traffic.output
    assert "140.82.112.3" not in plain.stdout and "traffic" not in plain.stdout
    lines = traffic.stdout.splitlines()
    kinds = [re.search(r"\s(call|violation|traffic)\s", line).group(1) for line in lines]  # type: ignore[union-attr]
    assert kinds == ["call", "call", "traffic", "traffic", "call", "violation"]
    wget, download = lines[1], lines[3]
    assert "wget -q https://github.com/xmrig" in wget
    assert "allowed → 140.82.112.3:443 github.com" in download
    assert "not a violation" in download and "2.4 MB in" in download
    assert "06:19:05.050Z" in download  # on the aligned clock, like the violations (-4.05 s)


def test_all_traffic_json_and_rows_are_marked_and_never_attributed() -> None:
    result = invoke("timeline", _case(), "--host", "sbx-07", "--all-traffic", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    traffic = [e for e in doc["entries"] if e["kind"] == "traffic"]
    assert doc["traffic"] == len(traffic) > 0 and doc["violations"] == 40
    assert {e["action"] for e in traffic} == {"allowed"}
    assert all(e["attributed_call_id"] is None and e["host"] == "sbx-07" for e in traffic)
    assert all(e["ts"].endswith("Z") for e in traffic)
    without = json.loads(invoke("timeline", _case(), "--host", "sbx-07", "--json").stdout)
    assert "traffic" not in without
    assert len(doc["entries"]) == len(without["entries"]) + len(traffic)


def test_all_traffic_reads_every_stored_event_not_the_analysis_sample() -> None:
    case = open_case(_case())
    result = case.analyse(RunOptions(anchors=3), cache=False)  # keeps 3 allowed rows a format
    sampled = set(result.loaded.events.column("event_id").to_pylist())
    rows = build_timeline(
        result,
        host=["sbx-07"],
        traffic=case.event_batches(rows=100),
        enrichment=case.table("enrichment"),
    ).to_pylist()
    flows = [r for r in rows if r["kind"] == "traffic"]
    assert len(flows) > 10 and not {r["event_id"] for r in flows} <= sampled
    assert [r["ts"] for r in rows] == sorted(r["ts"] for r in rows)


def test_all_traffic_fits_80_and_200_columns() -> None:
    case = _case()
    for width in (80, 200):
        with contextlib.chdir(ROOT):
            result = CliRunner().invoke(
                correlate_cli(),
                [
                    *("timeline", case, "--episode", MINER_EPISODE, "--until", "first"),
                    *("--all-traffic", "--format", "table"),
                ],
                env={"COLUMNS": str(width)},
                catch_exceptions=False,
            )
        assert result.exit_code == 0, result.output
        assert all(len(line) <= width for line in result.stdout.splitlines()), width
        assert "allowed → 140.82.112.3:443 github.com" in result.stdout, width


def test_all_traffic_text_from_the_logs_is_inert() -> None:
    work = scratch("hostile-traffic")
    logs = work / "logs"
    shutil.copytree(ROOT / HOSTILE, logs)
    allowed = {
        "__topic__": "cloudfirewall_access_log",
        "log_type": "internet_log",
        "start_time": "1764655141",
        "end_time": "1764655142",
        "src_ip": "47.96.180.21",
        "src_private_ip": "10.1.0.5",
        "src_port": "40001",
        "dst_ip": "198.51.100.80",
        "dst_port": "443",
        "ip_protocol": "tcp",
        "direction": "out",
        "rule_result": "pass",
        "domain": "x\x1b[2J\u202eevil.example",
        "acl_rule_id": "11111111-2222-3333-4444-555555555555",
    }
    with open(logs / "firewall.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(allowed) + "\n")
    case = work / "case"
    assert invoke("ingest", str(case), str(logs), "-q").exit_code == 0
    for fmt in ("text", "table"):
        result = invoke("timeline", str(case), "--host", "sbx-*", "--all-traffic", "--format", fmt)
        assert result.exit_code == 0, result.output
        assert "198.51.100.80" in result.stdout, fmt
        assert "\x1b" not in result.stdout and "\u202e" not in result.stdout, fmt


# --- stats -v --------------------------------------------------------------------------------


def test_stats_verbose_times_the_statistics_and_says_whether_they_came_from_the_cache() -> None:
    case = copy_case(Path(_case()), "stats-cache")
    shutil.rmtree(case / "cache", ignore_errors=True)
    first = invoke("stats", str(case), "--permutations", "19", "-v", "-q")
    again = invoke("stats", str(case), "--permutations", "19", "-v", "-q")
    assert first.exit_code == again.exit_code == 0, first.output
    assert re.search(
        r"statistics \(19 shifts per episode\) computed \(kept in the case's cache for the next "
        r"time\) in \d+\.\d{3}s",
        first.stderr,
    )
    assert re.search(
        r"statistics \(19 shifts per episode\) read from the case's cache in \d+\.\d{3}s",
        again.stderr,
    )
    assert "analysis read from the case's cache" in again.stderr
    assert first.stdout == again.stdout
    inputs = invoke("stats", "sample_logs/rome_incident", "--permutations", "19", "-v", "-q")
    assert "computed (inputs, not a case: nothing to cache them in)" in inputs.stderr
    quiet = invoke("stats", str(case), "--permutations", "19", "-q")
    assert quiet.stderr == ""


def test_stats_of_a_case_reads_what_ingest_prepared() -> None:
    work = scratch("stats-prepared")
    case = work / "case"
    assert invoke("ingest", str(case), "sample_logs/rome_incident", "-q").exit_code == 0
    result = invoke("stats", str(case), "-v", "-q")  # 999 shifts: what ingest computed
    assert result.exit_code == 0, result.output
    assert "statistics (999 shifts per episode) read from the case's cache" in result.stderr
