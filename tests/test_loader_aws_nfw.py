"""AWS Network Firewall loader: alert, netflow and TLS-log records, flow keys, traps."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from loader_helpers import ns, rows

from correlate.errors import StrictRejection
from correlate.loaders import MIN_SCORE, REGISTRY, LoadOptions, LoadResult, detect
from correlate.sources import Source

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "aws_nfw"
LOADER = REGISTRY["aws_nfw"]

SANDBOX = DATA / "sandbox_alert_netflow_tls.jsonl"
MALFORMED = DATA / "malformed.jsonl"

MINING_FLOW = "aws_nfw:egress-fw:1182365120917450"
TLS_FLOW = "aws_nfw:egress-fw:2090112317004136"


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT))


def load(path: Path, options: LoadOptions | None = None) -> LoadResult:
    source = Source(path, shown(path) if path.is_relative_to(ROOT) else path.name)
    return detect(source).loader.read(source, options or LoadOptions())


def by_line(result: LoadResult) -> dict[int, dict[str, Any]]:
    return {row["source_line"]: row for row in rows(result.table)}


def assert_rejects(result: LoadResult, expected: dict[int, str]) -> None:
    """Exactly these lines are rejected, each once, with a reason containing the given text."""
    got = {r.location.line: r.reason for r in result.rejects}
    assert sorted(got) == sorted(expected), got
    assert len(result.rejects) == len(got)
    for line, fragment in expected.items():
        assert fragment in got[line], (line, got[line])


# --- golden rows --------------------------------------------------------------------------------


def test_blocked_mining_alert_row_is_exact():
    assert by_line(load(SANDBOX))[2] == {
        "event_id": None,
        "ts": ns("2025-12-02T06:11:19.512044Z"),  # event.timestamp, offset +0000
        "ts_end": None,
        "src_ip": "10.0.3.17",
        "src_port": 40951,
        "src_nat_ip": None,
        "dst_ip": "141.94.96.144",
        "dst_port": 3333,
        "protocol": "tcp",
        "direction": "unknown",
        "action": "denied",
        "action_raw": "blocked",
        "rule": "2022886",
        "signature": "ET COINMINER Crypto Coin Miner Login",
        "category": "Crypto Currency Mining Activity Detected",
        "dst_domain": None,
        "app": None,
        "bytes_out": None,
        "bytes_in": None,
        "packets_out": None,
        "packets_in": None,
        "observer": "aws-nfw/egress-fw",
        "host_hint": None,
        "flow_key": MINING_FLOW,
        "ts_note": None,
        "source_format": "aws_nfw",
        "source_path": "tests/data/aws_nfw/sandbox_alert_netflow_tls.jsonl",
        "source_line": 2,
    }


def test_netflow_record_is_an_allowed_flow_timed_by_its_own_start_and_end():
    row = by_line(load(SANDBOX))[1]
    assert (row["ts"], row["ts_end"]) == (
        ns("2025-12-02T06:11:19.512044Z"),  # netflow.start, not event.timestamp (06:13:20)
        ns("2025-12-02T06:11:25.930120Z"),
    )
    assert (row["action"], row["action_raw"]) == ("allowed", "netflow")
    assert (row["bytes_out"], row["packets_out"], row["bytes_in"]) == (180, 3, None)
    assert (row["app"], row["flow_key"]) == ("failed", MINING_FLOW)


def test_allowed_alert_with_sni_is_alerted_with_a_lower_case_domain_and_both_counters():
    row = by_line(load(SANDBOX))[3]
    assert (row["action"], row["action_raw"]) == ("alerted", "allowed")
    assert row["dst_domain"] == "pool.supportxmr.com"
    assert (row["bytes_out"], row["bytes_in"], row["packets_out"], row["packets_in"]) == (
        782,
        4301,
        4,
        3,
    )
    assert row["app"] == "tls"


def test_netflow_without_sni_takes_the_domain_of_its_flows_alert():
    row = by_line(load(SANDBOX))[4]
    assert (row["flow_key"], row["dst_domain"]) == (TLS_FLOW, "pool.supportxmr.com")


def test_tls_event_is_skipped_but_names_the_domain_of_its_netflow():
    result = load(SANDBOX)
    assert result.stats.skipped == {"event_type tls (protocol metadata, not a flow or alert)": 1}
    assert 5 not in by_line(result)
    assert by_line(result)[6]["dst_domain"] == "tunnel.us.ngrok.com"
    assert result.stats.notes == {"dst_domain taken from another record of the same flow": 2}


def test_http_host_that_is_an_ip_address_is_not_a_domain():
    row = by_line(load(SANDBOX))[7]
    assert row["dst_domain"] is None
    assert (row["action"], row["rule"], row["category"]) == ("denied", "1000003", None)


def test_tls_log_error_is_a_denied_connection_with_its_sni_and_message():
    row = by_line(load(SANDBOX))[8]
    assert row["ts"] == ns("2025-12-02T06:13:51.412778Z")
    assert (row["src_port"], row["dst_port"]) == (59844, 443)  # written as strings
    assert (row["action"], row["action_raw"]) == ("denied", "tls_error")
    assert (row["dst_domain"], row["signature"]) == ("updates.example.net", "Server name mismatch")
    assert (row["flow_key"], row["protocol"]) == (None, None)


def test_alert_with_empty_signature_and_category_keeps_them_null():
    row = by_line(load(SANDBOX))[9]
    assert (row["signature"], row["category"], row["rule"]) == (None, None, "2")
    assert (row["protocol"], row["action"]) == ("udp", "alerted")


def test_sandbox_file_loads_every_flow_and_alert():
    result = load(SANDBOX)
    assert sorted(by_line(result)) == [1, 2, 3, 4, 6, 7, 8, 9]
    assert result.rejects == []


# --- malformed records --------------------------------------------------------------------------


def test_malformed_file_rejects_exactly_the_bad_lines():
    result = load(MALFORMED)
    assert_rejects(
        result,
        {
            2: "not valid JSON",
            3: "no event object",
            4: "event has no event_type (and is not a TLS log record)",
            6: "src_ip is not an IP address: '10.0.3.999'",
            8: "event.timestamp: not an ISO 8601 time: 'yesterday'",
            11: "dest_port out of range: 70000",
            13: "no event.timestamp and no event_timestamp",
            14: "not a JSON object but a JSON list",
        },
    )
    assert result.stats.skipped == {
        "event_type dns (protocol metadata, not a flow or alert)": 1,
        "blank line": 1,
    }
    assert sorted(by_line(result)) == [1, 9, 10, 12, 15, 16, 17]


def test_malformed_time_traps_load_with_notes():
    table = by_line(load(MALFORMED))
    assert table[9]["ts"] == ns("2025-12-02T06:11:26Z")
    assert (
        table[9]["ts_note"] == "no event.timestamp: used event_timestamp (when the log was written)"
    )
    assert table[10]["ts"] == ns("2025-12-02T06:11:27.5Z")
    assert table[10]["ts_note"] == "no zone: assumed UTC"
    assert (table[12]["ts"], table[12]["ts_end"]) == (ns("2025-12-02T06:11:29Z"), None)
    assert table[12]["ts_note"] == "end before start: end ignored"
    assert table[15]["ts"] == ns("2025-12-02T06:11:30.25Z")
    assert table[15]["ts_note"] == (
        "no netflow.start: used event.timestamp (when the record was written)"
    )
    assert table[17]["ts"] == ns("2025-12-02T06:11:32Z")  # an epoch string in event.timestamp


def test_naive_event_time_honours_the_zone_option():
    options = LoadOptions(zones={"aws_nfw": ZoneInfo("Asia/Shanghai")})
    row = by_line(load(MALFORMED, options))[10]
    assert row["ts"] == ns("2025-12-01T22:11:27.5Z")
    assert row["ts_note"] == "no zone: assumed Asia/Shanghai"


def test_vendor_action_spellings_map_or_stay_unknown():
    table = by_line(load(MALFORMED))
    assert (table[10]["action"], table[10]["action_raw"]) == ("denied", "Blocked")
    assert (table[16]["action"], table[16]["action_raw"]) == ("denied", "DROP")  # revocation
    assert (table[17]["action"], table[17]["action_raw"]) == ("unknown", "shrug")


@pytest.mark.parametrize("path", [SANDBOX, MALFORMED], ids=lambda p: p.name)
def test_every_record_is_loaded_rejected_or_skipped(path):
    stats = load(path).stats
    assert stats.balanced
    assert stats.read == len(path.read_bytes().splitlines())


def test_strict_stops_at_the_first_rejected_line():
    with pytest.raises(StrictRejection, match=re.escape(f"{shown(MALFORMED)}:2: not valid JSON")):
        load(MALFORMED, LoadOptions(strict=True))


# --- sniffing -----------------------------------------------------------------------------------

SURICATA_EVE = {
    "timestamp": "2025-12-02T06:11:19.512044+0000",
    "flow_id": 1,
    "event_type": "alert",
    "src_ip": "10.0.3.17",
    "dest_ip": "141.94.96.144",
    "alert": {"action": "blocked"},
}


@pytest.mark.parametrize(
    "line",
    [
        json.dumps(SURICATA_EVE),  # plain Suricata EVE: the suricata loader's
        json.dumps({"event": SURICATA_EVE, "host": "sensor-1"}),  # wrapped, but not by NFW
        '["firewall_name", "event"]',
        "firewall_name=egress-fw event=alert",
        "",
    ],
    ids=["suricata-eve", "other-wrapper", "json-array", "key-value", "empty"],
)
def test_near_misses_do_not_sniff_as_network_firewall(line):
    assert LOADER.sniff(line.encode() + b"\n", "eve.json") == 0.0


def test_firewall_name_without_the_outer_keys_can_only_be_forced():
    line = json.dumps({"firewall_name": "egress-fw", "event": "alert"})
    assert 0 < LOADER.sniff(line.encode(), "x.json") < MIN_SCORE


def test_a_first_line_longer_than_the_head_still_sniffs():
    head = SANDBOX.read_bytes().splitlines()[0][:120]  # cut inside the record
    assert LOADER.sniff(head, "x.jsonl") >= MIN_SCORE


@pytest.mark.parametrize(
    ("hostname", "domain"),
    [
        ("Evil.COM:8443", "evil.com"),  # a Host header's port is dropped
        ("pool.example.net.", "pool.example.net"),
        ("[2001:db8::1]:8080", None),  # an address, not a name
        ("2001:db8::1", None),
        ("-", None),
    ],
)
def test_http_host_header_spellings(tmp_path, hostname, domain):
    event = {
        "timestamp": "2025-12-02T06:13:40+0000",
        "event_type": "alert",
        "src_ip": "10.0.3.17",
        "dest_ip": "203.0.113.7",
        "alert": {"action": "blocked"},
        "http": {"hostname": hostname},
    }
    path = tmp_path / "nfw.jsonl"
    path.write_text(json.dumps({"firewall_name": "fw", "event_timestamp": "1", "event": event}))
    [row] = rows(load(path).table)
    assert row["dst_domain"] == domain
