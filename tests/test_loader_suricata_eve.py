"""suricata_eve: golden rows from real crowdsec samples, IPS verdicts, in-file domain enrichment."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
from loader_helpers import ns, rows

from correlate.errors import StrictRejection
from correlate.loaders import REGISTRY, LoadOptions, LoadResult, detect
from correlate.sources import Source

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data" / "suricata_eve"
DETECT = DATA / "crowdsec_eve_detect.json.log"
EVELOG = DATA / "crowdsec_evelog_repeated_day_later.json.log"
IPS = DATA / "ips_verdicts_and_app_layer_names.json.log"
MALFORMED = DATA / "malformed_events.json.log"
SAMPLES = sorted(DATA.glob("*.json.log"))

loader = REGISTRY["suricata_eve"]


def display(path: Path) -> str:
    try:
        return str(path.relative_to(TESTS.parent))
    except ValueError:
        return path.name


def load(path: Path, options: LoadOptions | None = None, shown: str | None = None) -> LoadResult:
    source = Source(path, shown or display(path))
    detection = detect(source)
    assert detection.name == "suricata_eve"
    return detection.loader.read(source, options or LoadOptions())


def by_line(table: pa.Table) -> dict[int, dict[str, Any]]:
    return {row["source_line"]: row for row in rows(table)}


# --- golden rows from the real samples ----------------------------------------------------------


def test_crowdsec_alert_in_full():
    result = load(DETECT)
    assert result.kind == "network"
    assert by_line(result.table)[1] == {
        "event_id": None,
        "ts": ns("2022-07-12T06:22:33.415742Z"),
        "ts_end": None,
        "src_ip": "1.2.3.4",
        "src_port": 33270,
        "src_nat_ip": None,
        "dst_ip": "1.2.3.5",
        "dst_port": 80,
        "protocol": "tcp",
        "direction": "unknown",
        "action": "alerted",
        "action_raw": "allowed",
        "rule": "2034125",
        "signature": "ET EXPLOIT Apache HTTP Server 2.4.49 - Path Traversal Attempt "
        "(CVE-2021-41773) M2",
        "category": "Attempted Administrator Privilege Gain",
        "dst_domain": None,  # http.hostname is the IP literal 34.245.178.108
        "app": "http",
        "bytes_out": 623,
        "bytes_in": 599,
        "packets_out": 4,
        "packets_in": 4,
        "observer": "suricata",
        "host_hint": "eth0",
        "flow_key": "suricata:1398609176796675",
        "ts_note": None,
        "source_format": "suricata_eve",
        "source_path": "tests/data/suricata_eve/crowdsec_eve_detect.json.log",
        "source_line": 1,
    }


def test_crowdsec_alerts_one_second_apart_share_a_flow():
    table = rows(load(DETECT).table)
    assert [r["ts"] - table[1]["ts"] for r in table[1:]] == [0, 1_000_000_000, 2_000_000_000]
    assert {r["flow_key"] for r in table[1:]} == {"suricata:274125657094473"}
    assert [r["rule"] for r in table[1:]] == ["2011716", "2011717", "2011718"]


def test_crowdsec_evelog_flow_event_uses_flow_start_and_end():
    row = by_line(load(EVELOG).table)[3]
    assert (row["ts"], row["ts_end"]) == (
        ns("2022-07-11T05:48:21.714860Z"),
        ns("2022-07-11T05:48:21.733121Z"),
    )
    assert (row["action"], row["action_raw"], row["app"]) == ("allowed", None, None)
    assert (row["bytes_out"], row["bytes_in"], row["packets_out"], row["packets_in"]) == (
        108,
        54,
        2,
        1,
    )


def test_crowdsec_evelog_minus_zero_offset_and_end_before_start():
    result = load(EVELOG)
    row = by_line(result.table)[6]  # "-0000", and end is a day before start
    assert (row["ts"], row["ts_end"]) == (ns("2022-07-12T05:48:21.714860Z"), None)
    assert row["ts_note"] == "flow.end before flow.start: end ignored"
    assert result.stats.skipped == {"stats event (not traffic)": 2}
    assert sorted(by_line(result.table)) == [1, 2, 3, 5, 6, 8]


# --- verdicts, orientation, enrichment ----------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "action", "action_raw"),
    [
        (1, "allowed", None),  # flow, no flow.action
        (3, "denied", "blocked"),  # alert.action blocked (IPS drop rule)
        (4, "denied", "allowed (verdict drop)"),  # allowed alert, but the packet was dropped
        (5, "denied", "drop (rules)"),  # drop event
        (6, "denied", "drop"),  # flow.action drop
        (7, "alerted", "allowed"),
        (9, "allowed", None),  # netflow
    ],
)
def test_verdicts(line, action, action_raw):
    row = by_line(load(IPS).table)[line]
    assert (row["action"], row["action_raw"]) == (action, action_raw)


def test_blocked_alert_in_full_with_a_local_offset():
    row = by_line(load(IPS).table)[3]
    assert row["ts"] == ns("2025-12-02T06:05:50.25Z")  # written +0800
    assert (row["rule"], row["signature"], row["category"]) == (
        "9000001",
        "LOCAL block reverse shell port 4444",
        "Policy Violation",
    )
    assert (row["src_ip"], row["dst_ip"], row["dst_port"]) == (
        "192.168.10.13",
        "198.51.100.7",
        4444,
    )


@pytest.mark.parametrize("line", [7, 8], ids=["flow-src-ip", "direction-only"])
def test_alert_on_a_reply_packet_is_oriented_initiator_to_responder(line):
    row = by_line(load(IPS).table)[line]
    assert (row["src_ip"], row["dst_port"]) == ("192.168.10.13", 3333)
    assert row["src_port"] in (40400, 40401)
    assert row["dst_ip"].startswith("45.9.148.")


def test_domains_from_tls_dns_and_http_events_fill_their_flows():
    table = by_line(load(IPS).table)
    assert {line: r["dst_domain"] for line, r in table.items() if r["dst_domain"]} == {
        1: "pool.supportxmr.com",  # tls.sni on line 2 (after the flow event)
        11: "pool.supportxmr.com",  # dns v2 answer on line 10
        13: "xmr.pool.minexmr.com",  # dns v3 request (queries[]) on line 12
        15: "get.example.org",  # the alert's own http metadata
        16: "downloads.example.net",  # http event on line 14, without the :8080
    }
    assert all(r["flow_key"] for r in table.values())


def test_app_proto_sensor_name_and_interface():
    table = by_line(load(IPS).table)
    assert (table[1]["app"], table[7]["app"], table[9]["app"]) == ("tls", None, None)
    assert (table[15]["observer"], table[1]["observer"]) == ("suricata/sbx-gw-1", "suricata")
    assert (table[1]["host_hint"], table[9]["host_hint"]) == ("veth-sbx03", None)


def test_netflow_counts_one_direction():
    row = by_line(load(IPS).table)[9]
    assert (row["ts"], row["ts_end"]) == (ns("2025-12-02T06:09:00Z"), ns("2025-12-02T06:09:09Z"))
    assert (row["bytes_out"], row["packets_out"], row["bytes_in"]) == (1800, 12, None)


def test_app_layer_events_are_counted_as_enrichment():
    stats = load(IPS).stats
    assert stats.skipped == {
        "dns event used for enrichment": 2,
        "tls event used for enrichment": 1,
        "http event used for enrichment": 1,
    }
    assert (stats.read, stats.loaded, stats.rejected, stats.unit) == (16, 12, 0, "events")


# --- malformed events ---------------------------------------------------------------------------


def test_malformed_events_are_rejected_with_reasons():
    result = load(MALFORMED)
    reasons = {r.location.line: r.reason for r in result.rejects}
    assert sorted(reasons) == [2, 3, 4, 5, 6, 7, 11, 16, 17]
    assert reasons[2].startswith("not valid JSON")
    assert reasons[3] == "not a JSON object but a JSON list"
    assert reasons[4] == "no event_type"
    assert reasons[5] == "alert: no alert object"
    assert reasons[6] == "alert: timestamp: not a valid time: '2025-13-45T06:20:05.000000+0000'"
    assert reasons[7] == "flow: src_ip is missing"
    assert reasons[11] == "alert: dest_port out of range: 70000"
    assert reasons[16] == "flow: flow.bytes_toserver out of range: -1"
    assert reasons[17] == "event_type is not text: 42"
    assert result.stats.skipped == {
        "stats event (not traffic)": 1,
        "anomaly event (not traffic)": 1,
        "fileinfo event (not traffic)": 1,
        "blank line": 1,
    }
    assert sorted(by_line(result.table)) == [1, 8, 12, 14]


def test_malformed_loaded_rows_carry_their_notes():
    table = by_line(load(MALFORMED).table)
    assert (table[8]["ts"], table[8]["ts_note"]) == (
        ns("2025-12-02T06:20:07.123456Z"),
        "no zone: assumed UTC",
    )
    assert (table[12]["ts"], table[12]["ts_note"]) == (
        ns("2025-12-02T06:20:11Z"),
        "flow.start missing: used the event timestamp (when it was logged)",
    )
    assert (table[14]["action"], table[14]["action_raw"]) == ("unknown", "logged")


def test_naive_timestamp_honours_the_zone_option():
    result = load(MALFORMED, LoadOptions(zones={"suricata_eve": ZoneInfo("Asia/Shanghai")}))
    row = by_line(result.table)[8]
    assert (row["ts"], row["ts_note"]) == (
        ns("2025-12-01T22:20:07.123456Z"),
        "no zone: assumed Asia/Shanghai",
    )
    assert by_line(result.table)[1]["ts"] == ns("2025-12-02T06:19:00Z")  # offset given: unchanged


# --- accounting, strict mode, compression -------------------------------------------------------


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_every_line_is_loaded_rejected_or_skipped(path):
    result = load(path)
    stats = result.stats
    assert stats.read == stats.loaded + stats.rejected + stats.skipped_total
    assert stats.read == len(path.read_bytes().splitlines())
    assert stats.loaded == result.table.num_rows


def test_strict_stops_at_the_first_rejected_line():
    with pytest.raises(
        StrictRejection, match=rf"^{re.escape(display(MALFORMED))}:2: not valid JSON"
    ):
        load(MALFORMED, LoadOptions(strict=True))


# --- sniffing -----------------------------------------------------------------------------------

AWS_NFW = {
    "firewall_name": "fw",
    "availability_zone": "us-east-2a",
    "event_timestamp": "1636395643",
    "event": {"timestamp": "2021-11-08T18:20:43.324542+0000", "event_type": "netflow"},
}
NEAR_MISSES = {
    "aws_nfw": json.dumps(AWS_NFW).encode(),
    "unknown_event_type": b'{"timestamp":"2025-12-02T06:00:00Z","event_type":"login","user":"a"}',
    "no_timestamp": b'{"event_type":"alert","src_ip":"10.0.0.1","flow_id":1}',
    "zeek_json": b'{"ts":1.5,"uid":"C","id.orig_h":"10.0.0.1","id.resp_h":"10.0.0.2","conn_state":"S0"}',
    "fast_log": b"12/02/2025-06:00:00.000000  [**] [1:2024792:4] ET COINMINER [**] {TCP} "
    b"10.0.0.1:40000 -> 45.9.148.117:3333",
    "event_type_in_text": b'timestamp event_type "event_type" alert',
    "binary": bytes(range(256)),
}


@pytest.mark.parametrize("name", sorted(NEAR_MISSES))
def test_near_misses_do_not_sniff_as_suricata_eve(name):
    assert loader.sniff(NEAR_MISSES[name], name) == 0.0


def test_sniff_scores():
    assert loader.sniff(DETECT.read_bytes(), "eve.json") == 0.95
    stats_only = b'{"timestamp":"2025-12-02T06:00:00+0000","event_type":"stats","stats":{}}\n'
    assert loader.sniff(stats_only, "eve.json") == 0.95
