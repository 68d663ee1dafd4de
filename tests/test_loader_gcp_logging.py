"""GCP Cloud Logging loader: firewall rules logs and VPC Flow Logs, golden rows, traps, sniffing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from loader_helpers import rows

from correlate.errors import FormatMismatch, OptionError, StrictRejection, UnknownFormat
from correlate.loaders import MIN_SCORE, REGISTRY, LoadOptions, LoadResult, detect
from correlate.sources import Source

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "gcp_logging"
EXTRA = ROOT / "tests" / "data" / "gcp_logging_extra"
LOADER = REGISTRY["gcp_logging"]

FIREWALL = DATA / "firewall_sink_egress_denied.jsonl"
FLOWS = DATA / "vpc_flows_gcloud_array.json"
MALFORMED = DATA / "malformed_entries.jsonl"
AUDIT_ONLY = EXTRA / "cloud_audit_only.jsonl"
SAMPLES = [FIREWALL, FLOWS, MALFORMED]

S = 1_000_000_000
T_06_11_19 = 1_764_655_879 * S  # 2025-12-02T06:11:19Z


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def load(path: Path, options: LoadOptions | None = None, forced: str | None = None) -> LoadResult:
    source = Source(path, shown(path))
    return detect(source, forced).loader.read(source, options or LoadOptions())


def by_line(result: LoadResult) -> dict[int, dict[str, Any]]:
    return {row["source_line"]: row for row in rows(result.table)}


def rejects(result: LoadResult) -> dict[int, str]:
    found = {r.location.line: r.reason for r in result.rejects}
    assert len(found) == len(result.rejects)
    return found


def assert_balanced(result: LoadResult) -> None:
    stats = result.stats
    assert stats.read == stats.loaded + stats.rejected + sum(stats.skipped.values())
    assert stats.loaded == result.table.num_rows
    assert stats.rejected == len(result.rejects)


# --- golden rows -----------------------------------------------------------------------------------


def test_egress_denied_firewall_entry_is_exact():
    result = load(FIREWALL)
    assert by_line(result)[1] == {
        "event_id": None,
        "ts": T_06_11_19 + 123_456_789,
        "ts_end": None,
        "src_ip": "10.128.0.7",
        "src_port": 40001,
        "src_nat_ip": None,
        "dst_ip": "198.51.100.77",
        "dst_port": 3333,
        "protocol": "tcp",
        "direction": "outbound",
        "action": "denied",
        "action_raw": "DENIED",
        "rule": "network:agents/firewall:deny-all-egress",
        "signature": None,
        "category": None,
        "dst_domain": None,
        "app": None,
        "bytes_out": None,
        "bytes_in": None,
        "packets_out": None,
        "packets_in": None,
        "observer": "gcp-firewall/agents",
        "host_hint": "sbx-runner-07",
        "flow_key": None,
        "ts_note": None,
        "source_format": "gcp_logging",
        "source_path": "tests/data/gcp_logging/firewall_sink_egress_denied.jsonl",
        "source_line": 1,
    }


def test_firewall_direction_verdict_and_rule_per_entry():
    got = by_line(load(FIREWALL))
    summary = {
        line: (r["direction"], r["action"], r["action_raw"], r["host_hint"], r["protocol"])
        for line, r in got.items()
    }
    assert summary == {
        1: ("outbound", "denied", "DENIED", "sbx-runner-07", "tcp"),
        2: ("inbound", "allowed", "ALLOWED", "sbx-runner-07", "tcp"),
        # INGRESS deny on sbx-runner-09 whose remote end is another VM: the probe is internal.
        3: ("internal", "denied", "DENIED", "sbx-runner-09", "tcp"),
        4: ("outbound", "unknown", "INTERCEPTED", "sbx-runner-07", "tcp"),
        # No disposition: rule_details.action decides; "udp" given as a name.
        5: ("outbound", "denied", "DENY", "sbx-runner-07", "udp"),
    }
    assert got[3]["src_ip"] == "10.128.0.7"
    assert got[3]["ts"] == 1_764_655_923 * S + 1_000  # microsecond fraction .000001
    assert got[4]["ts"] == 1_764_655_934 * S + 250_000_000
    assert got[4]["rule"] == "network:agents/firewallPolicy:5208846722218836811"
    assert (got[5]["src_ip"], got[5]["dst_ip"]) == ("2600:1900:4000::7", "2001:db8::53")
    assert got[5]["observer"] == "gcp-firewall"


def test_audit_entry_in_a_firewall_export_is_skipped_with_its_log_id():
    result = load(FIREWALL)
    assert result.stats.unit == "entries"
    assert (result.stats.read, result.stats.loaded, result.stats.rejected) == (6, 5, 0)
    assert dict(result.stats.skipped) == {
        "not a firewall or VPC flow log entry (cloudaudit.googleapis.com/activity)": 1
    }
    assert_balanced(result)


@pytest.mark.parametrize(
    ("value", "action"),
    [("alerted", "alerted"), ("ALLOWED", "allowed"), ("denied", "denied"), ("unknown", "unknown")],
)
def test_intercepted_option_sets_the_action_of_intercepted_entries_only(value, action):
    options = LoadOptions(format_options={"gcp_logging": {"intercepted": value}})
    got = by_line(load(FIREWALL, options))
    assert got[4]["action"] == action
    assert got[4]["action_raw"] == "INTERCEPTED"
    assert got[1]["action"] == "denied"


def test_intercepted_option_rejects_an_unknown_value():
    options = LoadOptions(format_options={"gcp_logging": {"intercepted": "blocked"}})
    with pytest.raises(OptionError, match=r"gcp_logging\.intercepted='blocked'"):
        load(FIREWALL, options)


def test_reporter_src_flow_from_gcloud_array_is_exact():
    result = load(FLOWS)
    assert result.stats.read == result.stats.loaded == 5
    assert by_line(result)[1] == {
        "event_id": None,
        "ts": 1_764_656_100 * S + 123_456_789,
        "ts_end": 1_764_656_104 * S + 987_654_321,
        "src_ip": "10.128.0.7",
        "src_port": 40001,
        "src_nat_ip": None,
        "dst_ip": "198.51.100.77",
        "dst_port": 3333,
        "protocol": "tcp",
        "direction": "outbound",
        "action": "allowed",
        "action_raw": None,
        "rule": None,
        "signature": None,
        "category": None,
        "dst_domain": None,
        "app": None,
        "bytes_out": 5120,
        "bytes_in": None,
        "packets_out": 40,
        "packets_in": None,
        "observer": "gcp-vpc-flows/agents",
        "host_hint": "sbx-runner-07",
        "flow_key": None,
        "ts_note": None,
        "source_format": "gcp_logging",
        "source_path": "tests/data/gcp_logging/vpc_flows_gcloud_array.json",
        "source_line": 1,
    }


def test_flow_reporter_decides_direction_counters_and_host():
    got = by_line(load(FLOWS))
    summary = {
        line: (r["direction"], r["bytes_out"], r["bytes_in"], r["packets_in"], r["host_hint"])
        for line, r in got.items()
    }
    assert summary == {
        1: ("outbound", 5120, None, None, "sbx-runner-07"),
        2: ("inbound", None, 912, 12, "sbx-runner-07"),  # reporter DEST: the VM received
        3: ("internal", 1224, None, None, "sbx-runner-07"),  # both ends are VMs
        4: ("outbound", 64000, None, None, "sandbox-ep-42-7f9c"),  # GKE pod beats the node VM
        5: ("unknown", 2048, None, None, None),  # SRC_GATEWAY: no reporting VM
    }
    assert {r["action"] for r in got.values()} == {"allowed"}
    assert got[2]["ts"] == 1_764_656_100 * S + 200_000_000


# --- malformed entries ---------------------------------------------------------------------------


def test_malformed_entries_reject_exactly_the_bad_lines_with_reasons():
    result = load(MALFORMED)
    expected = {
        2: "not valid JSON",
        3: "not a JSON object but a JSON list",
        4: "firewall entry: jsonPayload.connection is missing",
        5: "connection.dest_ip is not an IP address: '10.128.0.300'",
        7: "firewall entry: timestamp: not an ISO 8601 time: 'yesterday'",
        9: "flow entry: bytes_sent is not an integer: '12kB'",
        12: "flow entry: connection.src_port out of range: 70000",
        13: "firewall entry: jsonPayload is missing or not an object",
    }
    got = rejects(result)
    assert sorted(got) == sorted(expected)
    for line, fragment in expected.items():
        assert fragment in got[line], (line, got[line])
    assert dict(result.stats.skipped) == {
        "blank line": 1,
        "not a firewall or VPC flow log entry (no logName)": 1,
    }
    assert sorted(by_line(result)) == [1, 8, 10, 11, 14, 16]
    assert (result.stats.read, result.stats.loaded, result.stats.rejected) == (16, 6, 8)
    assert_balanced(result)


def test_malformed_entries_notes_say_what_was_assumed():
    got = by_line(load(MALFORMED))
    assert got[1]["ts_note"] is None
    assert got[8]["ts"] == 1_764_656_405 * S  # receiveTimestamp 06:20:05Z
    assert got[8]["ts_note"] == (
        "timestamp missing: used receiveTimestamp (when Cloud Logging received it)"
    )
    assert got[10]["ts"] == 1_764_656_460 * S  # naive 06:21:00 read as UTC
    assert got[10]["ts_end"] == 1_764_656_465 * S
    assert got[10]["ts_note"] == "no zone: assumed UTC"
    assert got[11]["ts_end"] is None
    assert got[11]["ts_note"] == "end_time before start_time: end ignored"
    assert got[14]["action"] == "denied"  # no logName: recognised by its payload
    assert got[16]["ts"] == 1_764_656_465 * S
    assert got[16]["ts_note"] == "start_time missing: used end_time"


def test_naive_times_follow_the_zone_override():
    from zoneinfo import ZoneInfo

    options = LoadOptions(zones={"gcp_logging": ZoneInfo("Asia/Shanghai")})
    got = by_line(load(MALFORMED, options))
    assert got[10]["ts"] == (1_764_656_460 - 8 * 3600) * S
    assert got[10]["ts_note"] == "no zone: assumed Asia/Shanghai"
    assert got[1]["ts"] == 1_764_656_400 * S  # a Z time is not moved


def test_strict_mode_stops_at_the_first_rejected_entry():
    with pytest.raises(StrictRejection, match=r"malformed_entries.jsonl:2: not valid JSON"):
        load(MALFORMED, LoadOptions(strict=True))


def test_strict_mode_accepts_a_clean_file():
    result = load(FLOWS, LoadOptions(strict=True))
    assert result.stats.rejected == 0


# --- compressed and reshaped inputs --------------------------------------------------------------


def test_json_lines_and_gcloud_array_of_the_same_entries_agree(tmp_path):
    entries = json.loads(FLOWS.read_text())
    lines = tmp_path / "flows.jsonl"
    lines.write_text("\n".join(json.dumps(e) for e in entries) + "\n")
    strip = ["source_path"]
    assert load(lines).table.drop_columns(strip).equals(load(FLOWS).table.drop_columns(strip))


def test_snake_case_log_entry_keys_are_read(tmp_path):
    entry = json.loads(FIREWALL.read_text().splitlines()[0])
    entry["json_payload"] = entry.pop("jsonPayload")
    entry["log_name"] = entry.pop("logName")
    path = tmp_path / "snake.jsonl"
    path.write_text(json.dumps(entry) + "\n")
    assert rows(load(path).table)[0]["action"] == "denied"


# --- sniffing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_samples_sniff_as_unmistakable(path):
    source = Source(path, path.name)
    assert LOADER.sniff(source.head(), source.name) >= 0.9


def test_cloud_audit_export_is_not_detected_but_can_be_forced():
    source = Source(AUDIT_ONLY, AUDIT_ONLY.name)
    score = LOADER.sniff(source.head(), source.name)
    assert 0 < score < MIN_SCORE
    with pytest.raises(UnknownFormat):
        detect(source)
    result = load(AUDIT_ONLY, forced="gcp_logging")
    assert result.table.num_rows == 0
    assert dict(result.stats.skipped) == {
        "not a firewall or VPC flow log entry (cloudaudit.googleapis.com/activity)": 9,
        "not a firewall or VPC flow log entry (testlog)": 2,
    }
    assert_balanced(result)


@pytest.mark.parametrize(
    "content",
    [
        b'{"textPayload": "firewall denied 10.0.0.1 -> 8.8.8.8", "severity": "INFO"}\n',
        b'{"connection": {"src_ip": "10.0.0.1", "dest_ip": "8.8.8.8"}, "disposition": "DENIED"}\n',
        b'{"insertId": "a", "timestamp": "2025-01-01T00:00:00Z"}\n',
        b"projects/p/logs/compute.googleapis.com%2Ffirewall DENIED 10.0.0.1\n",
        b"\x00\xff\xfe garbage \x80",
        b"",
    ],
    ids=["text-payload", "bare-payload", "no-log-name", "plain-text", "binary", "empty"],
)
def test_near_misses_do_not_sniff(content):
    assert LOADER.sniff(content, "x.json") == 0.0


def test_forcing_gcp_logging_on_an_azure_flow_log_is_a_format_mismatch():
    path = ROOT / "tests" / "data" / "azure_nsg_flow" / "vnet_flow_v4_epoch_ms.json"
    with pytest.raises(FormatMismatch, match="does not look like gcp_logging"):
        detect(Source(path, path.name), "gcp_logging")
