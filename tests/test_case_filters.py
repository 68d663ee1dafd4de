"""Case commands refuse what cannot be answered: filter values that could never match, bare times
of day that name no single day, a case whose files fail their hashes; and never print "None"."""

from __future__ import annotations

import io
import json
import os
import re
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.console import Console
from test_case_fixtures import (
    MINER_EPISODE,
    SAMPLE,
    TUNNEL_IP,
    copy_case,
    invoke,
    sample_case,
    scratch,
)

import correlate.case as case_module
from correlate.case import IntegrityError, check_integrity, integrity_problems, open_case
from correlate.classify import LABELS
from correlate.errors import OptionError
from correlate.pipeline import RunOptions
from correlate.query import (
    AddressPattern,
    Filters,
    parse_bounds,
    select_events,
    select_findings,
)
from correlate.reports.tables import events_table, findings_table
from correlate.reports.timeline_view import timeline_table, timeline_text
from correlate.timeline import TIMELINE, _violation_link, build_timeline
from correlate.timeparse import parse_iso

DAY = "2025-12-02"


def ns(text: str) -> int:
    return parse_iso(text)[0]


def answer(*args: str) -> dict[str, object]:
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


# --- (a) filter values that could never match are usage errors --------------------------------


@pytest.mark.parametrize("command", ["query", "findings"])
def test_an_unknown_label_is_a_usage_error_that_names_the_labels(command: str) -> None:
    result = invoke(command, str(sample_case()), "--label", "minig")
    assert result.exit_code == 2
    assert "Invalid value for --label: not a label: 'minig' (did you mean mining?)" in result.stderr
    assert ", ".join(LABELS) in result.stderr
    assert result.stdout == ""


def test_labels_are_read_whatever_their_case_or_dash() -> None:
    mining = answer("query", str(sample_case()), "--label", "mining")
    assert answer("query", str(sample_case()), "--label", "Mining") == mining
    assert mining["rows"] == 40
    tunnel = answer("findings", str(sample_case()), "--label", "reverse-tunnel")
    assert [f["labels"] for f in tunnel["findings"]] == ["reverse_tunnel"]  # type: ignore[index]
    with pytest.raises(
        OptionError,
        match=r"not a label: 'exfil' \(did you mean exfiltration\?\); the labels are mining",
    ):
        Filters.build(label=["exfil"])


@pytest.mark.parametrize("command", ["query", "findings"])
@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--dst", "999.1.1.1", "not a valid IP address or network: '999.1.1.1'"),
        ("--dst", "10.0.0", "not a valid IP address or network: '10.0.0'"),
        ("--dst", "10.0.0.0/33", "not a valid IP address or network: '10.0.0.0/33'"),
        ("--dst", "pool..supportxmr.com", "not an IP address, a CIDR or a domain: 'pool.."),
        ("--src", "999.1.1.1", "not a valid IP address or network: '999.1.1.1'"),
        ("--src", "sbx-03", "not an IP address or a CIDR: 'sbx-03'"),
    ],
)
def test_an_invalid_address_is_a_usage_error_that_says_what_is_valid(
    command: str, flag: str, value: str, message: str
) -> None:
    result = invoke(command, str(sample_case()), flag, value)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for {flag}: {message}" in result.stderr
    assert "e.g. 203.0.113.7, 10.0.0.0/8" in result.stderr  # what a valid value looks like


def test_valid_addresses_networks_and_domains_still_match() -> None:
    case = str(sample_case())
    assert answer("query", case, "--dst", TUNNEL_IP)["rows"] == 3
    assert answer("query", case, "--dst", "203.0.113.0/24")["rows"] == 3
    assert answer("query", case, "--dst", "supportxmr.com")["rows"] == 40
    assert answer("query", case, "--src", "192.168.50.0/24")["rows"] == 2
    assert AddressPattern.parse("10.0.0.1/8", "--dst").matches("10.9.9.9")
    with pytest.raises(
        OptionError, match=r"--src: not an IP address or a CIDR: 'pool\.supportxmr\.com'.*--host"
    ):
        AddressPattern.parse("pool.supportxmr.com", "--src", domains=False)


@pytest.mark.parametrize(
    ("flag", "value"), [("--confidence", "hihg"), ("--min-confidence", "sure")]
)
def test_an_unknown_confidence_is_a_usage_error_that_names_the_levels(
    flag: str, value: str
) -> None:
    for command in ("query", "findings"):
        result = invoke(command, str(sample_case()), flag, value)
        assert result.exit_code == 2
        assert f"Invalid value for '{flag}'" in result.stderr
        assert "'high', 'medium', 'low'" in result.stderr


def test_confidence_selects_exactly_that_level() -> None:
    case = str(sample_case())
    everything = answer("findings", case)
    high = answer("findings", case, "--confidence", "high")
    none = answer("findings", case, "--confidence", "NONE")
    assert high["conversations"] == everything["by_confidence"]["high"]  # type: ignore[index]
    assert none["conversations"] == everything["by_confidence"]["none"]  # type: ignore[index]
    assert {f["confidence"] for f in none["findings"]} == {"none"}  # type: ignore[attr-defined]
    both = answer("findings", case, "--confidence", "high", "--confidence", "none")
    assert both["conversations"] == high["conversations"] + none["conversations"]  # type: ignore[operator]
    assert high["filters"] == {"confidence": ["high"]}
    with pytest.raises(
        OptionError, match="not a confidence: 'sure'; choose from high, medium, low, none"
    ):
        Filters.build(confidence=["sure"])


def test_bad_filter_values_are_refused_before_the_case_is_read() -> None:
    missing = str(scratch("no-case") / "nothing-here")
    result = invoke("query", missing, "--label", "minig")
    assert result.exit_code == 2 and "Invalid value for --label" in result.stderr


# --- (b) the time of day the tables show --------------------------------------------------------


def test_since_and_until_take_the_time_of_day_the_tables_show() -> None:
    case = str(sample_case())
    bare = answer("query", case, "--since", "06:40", "--until", "06:41")
    iso = answer("query", case, "--since", f"{DAY}T06:40:00Z", "--until", f"{DAY}T06:41:00Z")
    assert bare == iso and bare["rows"] == 1
    assert bare["filters"] == {"since": f"{DAY}T06:40:00Z", "until": f"{DAY}T06:41:00Z"}
    # a time copied from the query table (06:11:19Z) reads back as the event it was shown for
    table = invoke("query", case, "--dst", TUNNEL_IP).stdout.splitlines()
    assert table[0] == f"times on {DAY} (UTC)"
    row = next(line.split() for line in table if line.strip().startswith("165 "))
    shown = row[1]
    assert re.fullmatch(r"\d\d:\d\d:\d\d(\.\d+)?Z", shown)
    one = answer("query", case, "--since", shown, "--until", shown.removesuffix("Z"))
    assert [e["event_id"] for e in one["events"]] == [165]  # type: ignore[attr-defined]
    conversations = answer("findings", case, "--since", "06:40:12", "--until", "+10m")
    assert conversations["filters"] == {"since": f"{DAY}T06:40:12Z", "until": f"{DAY}T06:50:12Z"}
    assert conversations["conversations"] == 1


def test_a_timeline_takes_the_time_of_day_too() -> None:
    case = str(sample_case())
    args = ("timeline", case, "--episode", MINER_EPISODE)
    bare = answer(*args, "--since", "06:19", "--until", "06:19:50")
    iso = answer(*args, "--since", f"{DAY}T06:19:00Z", "--until", f"{DAY}T06:19:50Z")
    assert bare == iso
    assert [e["kind"] for e in bare["entries"]] == ["call", "violation", "call"]  # type: ignore[attr-defined]
    # the timeline's own times (06:19:44.000Z) read back as they are shown
    text = invoke(*args, "--since", "06:19:44.000Z", "--until", "+1s").stdout
    assert text.startswith(f"{DAY} 06:19:44.000Z") and len(text.splitlines()) == 1


def test_a_time_of_day_is_read_in_the_zone_the_tables_display() -> None:
    case = str(sample_case())
    shanghai = answer("query", case, "--display-tz", "+08:00", "--since", "14:40", "--until", "+1m")
    assert shanghai["filters"] == {"since": f"{DAY}T06:40:00Z", "until": f"{DAY}T06:41:00Z"}
    named = answer("query", case, "--display-tz", "+08:00", "--since", "06:40Z", "--until", "+1m")
    assert named["filters"] == shanghai["filters"]  # a zone written with the time wins


def test_a_bare_time_is_refused_when_the_case_spans_several_days() -> None:
    # at UTC-06:30 the sample (06:00-07:00 UTC) runs from 23:30 on Dec 1 to 00:30 on Dec 2
    case = str(sample_case())
    for command in ("query", "findings"):
        result = invoke(command, case, "--display-tz", "-06:30", "--since", "23:40")
        assert result.exit_code == 2
        assert "--since 23:40: the case spans 2 days (2025-12-01 to 2025-12-02" in result.stderr
        assert "give the date too: 2025-12-01T23:40" in result.stderr
    timeline = invoke(
        "timeline", case, "--host", "sbx-03", "--display-tz", "-06:30", "--until", "00:10"
    )
    assert timeline.exit_code == 2 and "give the date too: 2025-12-02T00:10" in timeline.stderr
    dated = answer(
        "query", case, "--display-tz", "-06:30", "--since", "2025-12-02T00:10", "--until", "+1m"
    )
    assert dated["filters"] == {"since": f"{DAY}T06:40:00Z", "until": f"{DAY}T06:41:00Z"}


def test_parse_bounds_dates_a_time_of_day_from_the_span() -> None:
    span = (ns(f"{DAY}T06:00:00Z"), ns(f"{DAY}T07:00:00Z"))
    assert parse_bounds("06:40", None, span=span) == (ns(f"{DAY}T06:40:00Z"), None)
    assert parse_bounds("6:40:12.5", None, span=lambda: span)[0] == ns(f"{DAY}T06:40:12.5Z")
    two_days = (ns("2025-12-01T05:00:00Z"), ns(f"{DAY}T07:00:00Z"))
    with pytest.raises(OptionError, match=r"spans 2 days .* 2025-12-01T06:40 or 2025-12-02T06:40$"):
        parse_bounds("06:40", None, span=two_days)
    with pytest.raises(OptionError, match=r"give the date too: 2025-12-02T06:40$"):
        parse_bounds(None, "06:40", span=(ns("2025-12-01T22:00:00Z"), span[1]))
    with pytest.raises(OptionError, match="a time of day needs a date here"):
        parse_bounds(None, "06:40")
    with pytest.raises(OptionError, match="not a time of day: '24:61'"):
        parse_bounds("24:61", None, span=span)
    called = []
    parse_bounds(f"{DAY}T06:40:00Z", "+1m", span=lambda: called.append(1) or span)
    assert not called  # the span is read only for a time of day


def test_a_bad_time_of_day_is_a_usage_error() -> None:
    result = invoke("query", str(sample_case()), "--since", "25:00")
    assert result.exit_code == 2 and "not a time of day: '25:00'" in result.stderr


# --- (c) a case that fails its hashes refuses to answer -----------------------------------------


def _lose_a_row(case: Path) -> None:
    events = case / "events.parquet"
    pq.write_table(pq.read_table(events).slice(1), events)


def _commands(case: Path) -> list[tuple[str, ...]]:
    out = scratch("refused")
    return [
        ("findings", str(case)),
        ("query", str(case), "--dst", TUNNEL_IP),
        ("timeline", str(case), "--host", "sbx-03"),
        ("export", str(case), "--format", "csv", "-o", str(out / "x.csv"), "--permutations", "0"),
        ("report", str(case), "-o", str(out / "x.html"), "--permutations", "0"),
    ]


def test_a_case_that_lost_a_row_refuses_to_answer_naming_the_file() -> None:
    case = copy_case(sample_case(), "lost-row")
    _lose_a_row(case)
    for args in [*_commands(case), ("stats", str(case))]:
        result = invoke(*args)
        assert result.exit_code == 1, (args, result.output)
        assert result.stdout == ""
        assert f"error: {case}: events.parquet has SHA-256" in result.stderr
        assert "(and 1 more problem)" in result.stderr  # its row count
        assert "--ignore-integrity" in result.stderr
    verified = invoke("verify", str(case))
    assert verified.exit_code == 1 and "events.parquet holds 843 rows" in verified.stdout


def test_ignore_integrity_answers_with_a_warning_on_stderr() -> None:
    case = copy_case(sample_case(), "ignored")
    _lose_a_row(case)
    for args in _commands(case):
        result = invoke(*args, "--ignore-integrity", "-q")
        assert result.exit_code == 0, (args, result.output)
        warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
        assert any("events.parquet has SHA-256" in w for w in warnings), result.stderr
        assert any("events.parquet holds 843 rows" in w for w in warnings)
        assert all("(--ignore-integrity)" in w for w in warnings)
    tunnel = invoke("query", str(case), "--dst", TUNNEL_IP, "--ignore-integrity", "--json")
    assert json.loads(tunnel.stdout)["rows"] == 3


def test_a_missing_case_file_is_named_too() -> None:
    case = copy_case(sample_case(), "missing-file")
    (case / "hosts.parquet").unlink()
    result = invoke("findings", str(case))
    assert result.exit_code == 1
    assert f"error: {case}: hosts.parquet is missing from the case" in result.stderr


def _age(case: Path, seconds: int = 3600) -> None:
    past = time.time() - seconds
    for name in open_case(case).manifest["files"]:
        os.utime(case / name, (past, past))


def test_the_hashes_are_remembered_by_stat_and_a_change_is_still_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case = copy_case(sample_case(), "stamp")
    _age(case)
    hashed: list[str] = []
    real = case_module.sha256_file

    def counting(path: Path) -> str:
        hashed.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(case_module, "sha256_file", counting)
    assert integrity_problems(open_case(case)) == []
    assert sorted(hashed) == sorted(open_case(case).manifest["files"])
    stamp = json.loads((case / "cache" / "integrity.json").read_text())
    assert set(stamp["files"]) == set(open_case(case).manifest["files"])
    hashed.clear()
    assert check_integrity(open_case(case)) == []
    assert hashed == []  # nothing changed: stat only
    # the same size, an old mtime put back: the ctime still tells
    calls = case / "calls.parquet"
    data = bytearray(calls.read_bytes())
    data[100] ^= 0xFF
    before = calls.stat()
    calls.write_bytes(bytes(data))
    os.utime(calls, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(IntegrityError, match=r"calls\.parquet has SHA-256"):
        check_integrity(open_case(case))
    assert hashed == ["calls.parquet"]
    assert check_integrity(open_case(case), ignore=True)[0].startswith("calls.parquet has SHA-256")


def test_a_damaged_stamp_is_ignored() -> None:
    case = copy_case(sample_case(), "bad-stamp")
    _age(case)
    stamp = case / "cache" / "integrity.json"
    for text in ("not json", '{"files": []}', '{"files": {"events.parquet": {"stat": "x"}}}'):
        stamp.write_text(text)
        assert integrity_problems(open_case(case)) == []
    signed = json.loads(stamp.read_text())
    entries = signed["files"]
    entries["events.parquet"]["sha256"] = "0" * 64  # forged under the file's own stat
    for forged in ({"files": entries}, {"files": entries, "mac": signed["mac"]}):
        stamp.write_text(json.dumps(forged))
        assert check_integrity(open_case(case)) == []  # not authentic: the file is hashed again


def test_files_modified_just_now_are_hashed_again_next_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case = copy_case(sample_case(), "racy")
    (case / "cache" / "integrity.json").unlink(missing_ok=True)
    _age(case, 60)
    monkeypatch.setattr(case_module, "RACY_NS", 3600 * 10**9)  # a minute ago is "just now"
    assert integrity_problems(open_case(case)) == []
    assert not (case / "cache" / "integrity.json").exists()
    monkeypatch.undo()
    assert integrity_problems(open_case(case)) == []
    assert (case / "cache" / "integrity.json").exists()


def test_a_case_that_cannot_be_written_is_checked_all_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case = copy_case(sample_case(), "read-only")
    _age(case)
    (case / "cache" / "integrity.json").unlink(missing_ok=True)

    def refused(path: object) -> object:
        raise PermissionError(f"read-only: {path}")

    monkeypatch.setattr(case_module, "atomic_path", refused)
    assert integrity_problems(open_case(case)) == []
    assert not (case / "cache" / "integrity.json").exists()
    _lose_a_row(case)
    assert integrity_problems(open_case(case))[0].startswith("events.parquet has SHA-256")


# --- (d) never "None" on a terminal -------------------------------------------------------------


def _blank(table: pa.Table, keep: set[str]) -> pa.Table:
    """``table`` with every column but ``keep`` null (as a sparse trajectory format gives)."""
    columns = [
        table.column(f.name) if f.name in keep else pa.nulls(table.num_rows, f.type)
        for f in table.schema
    ]
    return pa.Table.from_arrays(columns, schema=table.schema)


def _render(renderable: object, width: int = 250) -> str:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(renderable)
    return out.getvalue()


def test_missing_values_never_print_as_none() -> None:
    result = open_case(sample_case()).analyse(RunOptions())
    timeline = build_timeline(result, episode=[MINER_EPISODE])
    sparse = _blank(timeline, {"ts", "kind", "call_id", "attributed_call_id", "how"})
    for width in (80, 250):
        shown = _render(timeline_table(sparse), width)
        assert "None" not in shown and "step" not in shown and "exit" not in shown
    text = timeline_text(sparse)
    assert "None" not in text and "violation  -  - → -" in text
    bare = {"call_id": "call_1", "how": None, "step": None, "lag_s": None, "confidence": None}
    assert _violation_link(bare) == "← attributed to call_1"
    events = select_events(result, Filters.build(dst=[TUNNEL_IP]))
    candidates = select_events(result, Filters.build(dst=[TUNNEL_IP]), candidates=True)
    findings = select_findings(result, Filters.build())
    for table, render in (
        (_blank(events, {"ts", "call_id"}), events_table),
        (_blank(candidates, {"ts", "call_id"}), events_table),
        (_blank(findings, {"first_ts", "call_id"}), findings_table),
    ):
        for width in (80, 250):
            assert "None" not in _render(render(table), width)
    assert timeline.schema == TIMELINE


def test_case_commands_print_no_none_on_the_sample() -> None:
    case = str(sample_case())
    for args in (
        ("findings", case),
        ("findings", case, "--by", "host"),
        ("query", case),
        ("query", case, "--candidates"),
        ("timeline", case, "--host", "sbx-*"),
        ("timeline", case, "--host", "sbx-*", "--format", "table"),
    ):
        result = invoke(*args)
        assert result.exit_code == 0, result.output
        assert "None" not in result.stdout, args


def test_run_offset_and_stats_on_a_damaged_case_refuse_unless_told_to_ignore() -> None:
    case = copy_case(sample_case(), "run-ignored")
    _lose_a_row(case)
    for command in ("run", "offset", "stats"):
        refused = invoke(command, str(case), "-q")
        assert refused.exit_code == 1, (command, refused.output)
        assert "events.parquet has SHA-256" in refused.stderr
        answered = invoke(command, str(case), "-q", "--ignore-integrity")
        assert answered.exit_code == 0, (command, answered.output)
        assert "warning: " in answered.stderr and "(--ignore-integrity)" in answered.stderr


def test_run_json_gives_iso_times_like_every_export() -> None:
    document = json.loads(invoke("run", str(SAMPLE), "--json", "-q").stdout)
    first = document["findings"][0]["first_ts"]
    assert isinstance(first, str) and first.endswith("Z") and first.startswith("2025-12-02T")
    assert isinstance(document["findings"][0]["labels"], list)
