"""OCSF Network Activity loader: JSON lines/documents and Parquet (Security Lake), verdicts, times."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from loader_helpers import ns, rows

from correlate.errors import FormatMismatch, InputError, StrictRejection
from correlate.loaders import REGISTRY, LoadOptions, LoadResult, detect, ocsf_network
from correlate.sources import Source

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "ocsf_network"
LAKE = DATA / "security_lake_vpc_flow.jsonl"
PRETTY = DATA / "pretty_array_time_dt_and_captions.json"
BAD = DATA / "bad_events_missing_ip_bad_time.jsonl"
PARQUET = DATA / "network_activity_security_lake.parquet"
JSON_FILES = [LAKE, PRETTY, BAD]
T = 1_764_655_201_000  # 2025-12-02T06:00:01Z in ms


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def load(path: Path, options: LoadOptions | None = None, display: str | None = None) -> LoadResult:
    source = Source(path, display or shown(path))
    return ocsf_network.read(source, options or LoadOptions())


def by_line(result: LoadResult) -> dict[int, dict[str, Any]]:
    return {row["source_line"]: row for row in rows(result.table)}


ENDPOINT = pa.struct(
    [
        ("ip", pa.string()),
        ("port", pa.int32()),
        ("hostname", pa.string()),
        ("instance_uid", pa.string()),
        ("interface_uid", pa.string()),
    ]
)
SECURITY_LAKE_SCHEMA = pa.schema(
    [
        ("class_name", pa.string()),
        ("class_uid", pa.int32()),
        ("category_uid", pa.int32()),
        ("activity_id", pa.int32()),
        ("time", pa.int64()),
        ("start_time", pa.int64()),
        ("end_time", pa.int64()),
        ("src_endpoint", ENDPOINT),
        ("dst_endpoint", ENDPOINT),
        (
            "connection_info",
            pa.struct(
                [
                    ("protocol_num", pa.int32()),
                    ("protocol_name", pa.string()),
                    ("direction", pa.string()),
                    ("direction_id", pa.int32()),
                    ("uid", pa.string()),
                ]
            ),
        ),
        (
            "traffic",
            pa.struct(
                [
                    (k, pa.int64())
                    for k in ("bytes", "bytes_out", "bytes_in", "packets_out", "packets_in")
                ]
            ),
        ),
        ("action", pa.string()),
        ("action_id", pa.int32()),
        ("disposition", pa.string()),
        ("disposition_id", pa.int32()),
        ("firewall_rule", pa.struct([("uid", pa.string()), ("name", pa.string())])),
        (
            "metadata",
            pa.struct(
                [
                    (
                        "product",
                        pa.struct(
                            [
                                ("name", pa.string()),
                                ("vendor_name", pa.string()),
                                ("feature", pa.struct([("name", pa.string())])),
                            ]
                        ),
                    ),
                    ("version", pa.string()),
                ]
            ),
        ),
        ("unmapped", pa.map_(pa.string(), pa.string())),
    ]
)


def security_lake_rows() -> list[dict[str, Any]]:
    """The events of the committed Parquet fixture (and of the tests that write their own)."""
    product = {
        "product": {"name": "Amazon VPC", "vendor_name": "AWS", "feature": {"name": "Flowlogs"}},
        "version": "1.1.0",
    }
    sandbox = {
        "ip": "192.168.10.13",
        "port": 40951,
        "hostname": "sbx-03.sandbox.internal",
        "instance_uid": "i-0a1b2c3d4e5f60013",
        "interface_uid": "eni-0f1e2d3c4b5a60013",
    }
    return [
        {
            "class_name": "Network Activity",
            "class_uid": 4001,
            "category_uid": 4,
            "activity_id": 5,
            "time": T + 678_000,
            "start_time": T + 678_000,
            "end_time": T + 679_000,
            "src_endpoint": sandbox,
            "dst_endpoint": {
                "ip": "203.0.113.7",
                "port": 22,
                "hostname": None,
                "instance_uid": None,
                "interface_uid": None,
            },
            "connection_info": {
                "protocol_num": 6,
                "protocol_name": None,
                "direction": "Outbound",
                "direction_id": 2,
                "uid": None,
            },
            "traffic": {
                "bytes": 60,
                "bytes_out": None,
                "bytes_in": None,
                "packets_out": None,
                "packets_in": None,
            },
            "action": "Denied",
            "action_id": 2,
            "disposition": "Blocked",
            "disposition_id": 2,
            "firewall_rule": None,
            "metadata": product,
            "unmapped": [("log-status", "OK")],
        },
        {
            "class_name": "DNS Activity",
            "class_uid": 4003,
            "category_uid": 4,
            "activity_id": 1,
            "time": T + 1_118_000,
            "start_time": None,
            "end_time": None,
            "src_endpoint": {**sandbox, "port": 53211},
            "dst_endpoint": None,
            "connection_info": None,
            "traffic": None,
            "action": None,
            "action_id": None,
            "disposition": None,
            "disposition_id": None,
            "firewall_rule": None,
            "metadata": product,
            "unmapped": None,
        },
        {
            "class_name": "Network Activity",
            "class_uid": 4001,
            "category_uid": 4,
            "activity_id": 6,
            "time": T + 1_123_000,
            "start_time": T + 1_123_000,
            "end_time": T + 8_323_000,
            "src_endpoint": {
                **sandbox,
                "ip": "192.168.10.17",
                "port": 45810,
                "hostname": None,
                "instance_uid": None,
            },
            "dst_endpoint": {
                "ip": "141.94.96.144",
                "port": 3333,
                "hostname": "Pool.SupportXMR.com.",
                "instance_uid": None,
                "interface_uid": None,
            },
            "connection_info": {
                "protocol_num": 6,
                "protocol_name": "tcp",
                "direction": "Outbound",
                "direction_id": 2,
                "uid": "1587920340651328",
            },
            "traffic": {
                "bytes": 1049,
                "bytes_out": 328,
                "bytes_in": 721,
                "packets_out": 3,
                "packets_in": 2,
            },
            "action": "Allowed",
            "action_id": 1,
            "disposition": "Alert",
            "disposition_id": 19,
            "firewall_rule": {"uid": "2210051", "name": "ET POLICY Cryptocurrency Miner Checkin"},
            "metadata": {
                "product": {"name": "AWS Network Firewall", "vendor_name": "AWS", "feature": None},
                "version": "1.1.0",
            },
            "unmapped": None,
        },
        {
            "class_name": "Network Activity",
            "class_uid": 4001,
            "category_uid": 4,
            "activity_id": 6,
            "time": T,
            "start_time": T,
            "end_time": T + 59_000,
            "src_endpoint": {**sandbox, "ip": None},
            "dst_endpoint": {
                "ip": "151.101.0.223",
                "port": 443,
                "hostname": None,
                "instance_uid": None,
                "interface_uid": None,
            },
            "connection_info": None,
            "traffic": None,
            "action": "Allowed",
            "action_id": 1,
            "disposition": None,
            "disposition_id": None,
            "firewall_rule": None,
            "metadata": product,
            "unmapped": None,
        },
    ]


def many_rows(repeat: int) -> list[dict[str, Any]]:
    """``repeat`` copies of the fixture's events, each copy at other times and ports."""
    out = []
    for k in range(repeat):
        for event in security_lake_rows():
            event = json.loads(json.dumps(event))
            for key in ("time", "start_time", "end_time"):
                if event[key] is not None:
                    event[key] += k * 1_013
            event["src_endpoint"]["port"] = 1024 + (k * 7_919) % 60_000
            event["unmapped"] = [("copy", str(k * 104_729))]
            out.append(event)
    return out


def write_security_lake_parquet(path: Path) -> None:
    pq.write_table(pa.Table.from_pylist(security_lake_rows(), schema=SECURITY_LAKE_SCHEMA), path)


# --- JSON golden rows -----------------------------------------------------------------------------


def test_denied_flow_row_is_exact():
    row = by_line(load(LAKE))[2]
    assert row == {
        "event_id": None,
        "ts": ns("2025-12-02T06:11:19Z"),  # start_time, epoch ms
        "ts_end": ns("2025-12-02T06:11:19Z"),
        "src_ip": "192.168.10.13",
        "src_port": 40951,
        "src_nat_ip": None,
        "dst_ip": "203.0.113.7",
        "dst_port": 22,
        "protocol": "tcp",  # protocol_num 6
        "direction": "outbound",  # direction_id 2
        "action": "denied",
        "action_raw": "Denied/Blocked",
        "rule": None,
        "signature": None,
        "category": None,
        "dst_domain": None,
        "app": None,
        "bytes_out": None,  # only the total traffic.bytes: not split
        "bytes_in": None,
        "packets_out": None,
        "packets_in": None,
        "observer": "Amazon VPC/Flowlogs",
        "host_hint": "i-0a1b2c3d4e5f60013",
        "flow_key": None,
        "ts_note": None,
        "source_format": "ocsf_network",
        "source_path": "tests/data/ocsf_network/security_lake_vpc_flow.jsonl",
        "source_line": 2,
    }


def test_network_firewall_alert_keeps_rule_domain_counters_and_connection_uid():
    row = by_line(load(LAKE))[6]
    assert (row["action"], row["action_raw"]) == ("alerted", "Allowed/Alert")
    assert row["rule"] == "ET POLICY Cryptocurrency Miner Checkin (2210051)"
    assert row["dst_domain"] == "pool.supportxmr.com"  # dst_endpoint.domain, lower case
    assert (row["bytes_out"], row["bytes_in"], row["packets_out"], row["packets_in"]) == (
        328,
        721,
        3,
        2,
    )
    assert row["flow_key"] == "ocsf:1587920340651328"
    assert row["observer"] == "AWS Network Firewall/Alert logs"
    assert (row["ts"], row["ts_end"]) == (ns("2025-12-02T06:18:44Z"), None)


@pytest.mark.parametrize(
    ("line", "direction", "action"),
    [(1, "outbound", "allowed"), (3, "inbound", "allowed"), (5, "internal", "allowed")],
)
def test_direction_ids_map_to_our_directions(line, direction, action):
    row = by_line(load(LAKE))[line]
    assert (row["direction"], row["action"]) == (direction, action)


def test_host_hint_falls_back_to_the_interface_and_ipv6_is_canonical():
    table = by_line(load(LAKE))
    assert table[3]["host_hint"] == "eni-0f1e2d3c4b5a60005"  # instance_uid null
    assert (table[7]["src_ip"], table[7]["dst_ip"], table[7]["protocol"]) == (
        "2001:db8:10::13",
        "2606:4700::6810:84e5",
        "udp",
    )
    assert table[7]["action_raw"] == "Allowed"  # no disposition


def test_other_classes_are_skipped_by_class_uid():
    result = load(LAKE)
    assert result.stats.skipped == {"class_uid 4003 (not Network Activity 4001)": 1}
    assert (result.stats.read, result.stats.loaded, result.stats.unit) == (7, 6, "events")


def test_pretty_printed_array_with_captions_and_iso_time():
    result = load(PRETTY)
    first, second = rows(result.table)
    assert first["source_line"] == 1 and second["source_line"] == 2  # array item numbers
    assert (first["ts"], first["direction"], first["action"]) == (
        ns("2025-12-02T06:40:01Z"),
        "outbound",  # direction caption without direction_id
        "denied",  # disposition "Rejected"
    )
    assert (first["app"], first["host_hint"], first["observer"]) == (
        "https-alt",
        "sbx-03",
        "Sandbox Egress Proxy",
    )
    assert second["ts"] == ns("2025-12-02T06:41:00.25Z")  # time_dt with an offset: no note
    assert (second["direction"], second["action"], second["action_raw"]) == (
        "unknown",
        "unknown",
        "Logged-only",
    )
    assert second["ts_note"] is None


# --- bad events -----------------------------------------------------------------------------------


def test_bad_events_are_rejected_with_precise_reasons():
    result = load(BAD)
    got = {r.location.line: r.reason for r in result.rejects}
    expected = {
        2: "not valid JSON",
        3: "not a JSON object but a JSON list",
        4: "no class_uid (not an OCSF event)",
        5: "class_uid is not an integer: 'network'",
        6: "src_endpoint.ip is missing",
        7: "dst_endpoint.ip is not an IP address: '203.0.113.300'",
        8: "start_time: not an ISO 8601 time: 'yesterday'",
        9: "dst_endpoint.port out of range: 70000",
        10: "src_endpoint is not an object",
        11: "connection_info.direction_id is not an integer: 'sideways'",
        16: "no time, start_time or time_dt",
    }
    assert sorted(got) == sorted(expected)
    for line, fragment in expected.items():
        assert fragment in got[line], (line, got[line])
    assert len(result.rejects) == len(expected)


def test_bad_events_time_notes():
    result = load(BAD)
    table = by_line(result)
    assert sorted(table) == [1, 13, 14, 15]
    assert table[13]["ts"] == ns("2025-12-02T06:11:19Z")
    assert table[13]["ts_note"] == "epoch unit s by magnitude (format documents ms)"
    assert (table[14]["ts_end"], table[14]["ts_note"]) == (
        None,
        "end_time before start_time: end ignored",
    )
    assert (table[15]["ts"], table[15]["ts_note"]) == (
        ns("2025-12-02T14:11:18Z"),
        "no zone: assumed UTC",
    )
    assert result.stats.skipped == {"blank line": 1}


def test_zone_option_applies_to_naive_iso_times():
    result = load(BAD, LoadOptions(zones={"ocsf_network": ZoneInfo("Asia/Shanghai")}))
    row = by_line(result)[15]
    assert (row["ts"], row["ts_note"]) == (
        ns("2025-12-02T06:11:18Z"),
        "no zone: assumed Asia/Shanghai",
    )


@pytest.mark.parametrize("path", [*JSON_FILES, PARQUET], ids=lambda p: p.name)
def test_every_record_is_loaded_rejected_or_skipped(path):
    result = load(path)
    assert result.stats.balanced
    assert result.stats.loaded == result.table.num_rows
    assert result.stats.rejected == len(result.rejects)


def test_strict_mode_stops_at_the_first_bad_event():
    with pytest.raises(
        StrictRejection, match=r"bad_events_missing_ip_bad_time\.jsonl:2: not valid JSON"
    ):
        load(BAD, LoadOptions(strict=True))


def test_json_events_with_hostnames_are_still_ocsf_not_an_inventory(tmp_path):
    path = tmp_path / "events.jsonl"
    event = json.loads(LAKE.read_text().splitlines()[1])
    event["src_endpoint"]["hostname"] = "sbx-03"
    event["dst_endpoint"]["hostname"] = "tunnel.example.net"
    path.write_text(json.dumps(event) + "\n")
    detection = detect(Source(path, "events.jsonl"))
    assert detection.name == "ocsf_network"
    row = rows(detection.loader.read(Source(path, "events.jsonl"), LoadOptions()).table)[0]
    assert (row["dst_domain"], row["host_hint"]) == ("tunnel.example.net", "i-0a1b2c3d4e5f60013")


# --- Parquet --------------------------------------------------------------------------------------


def test_committed_parquet_fixture_is_the_documented_table():
    expected = pa.Table.from_pylist(security_lake_rows(), schema=SECURITY_LAKE_SCHEMA)
    assert pq.read_table(PARQUET).equals(expected)


def test_parquet_rows_load_with_row_numbers_and_nested_fields():
    result = load(PARQUET)
    table = by_line(result)
    assert sorted(table) == [1, 3]
    denied = table[1]
    assert (denied["ts"], denied["ts_end"]) == (
        ns("2025-12-02T06:11:19Z"),
        ns("2025-12-02T06:11:20Z"),
    )
    assert (denied["action"], denied["direction"], denied["host_hint"]) == (
        "denied",
        "outbound",
        "i-0a1b2c3d4e5f60013",
    )
    assert denied["source_path"] == "tests/data/ocsf_network/network_activity_security_lake.parquet"
    alert = table[3]
    assert (alert["dst_domain"], alert["action"], alert["bytes_in"]) == (
        "pool.supportxmr.com",
        "alerted",
        721,
    )
    assert alert["host_hint"] == "eni-0f1e2d3c4b5a60013"
    assert alert["ts_end"] == ns("2025-12-02T08:18:44Z")
    assert [(r.location.line, r.reason) for r in result.rejects] == [
        (4, "src_endpoint.ip is missing")
    ]
    assert result.stats.skipped == {"class_uid 4003 (not Network Activity 4001)": 1}
    assert (result.stats.read, result.stats.unit) == (4, "events")


def test_parquet_reject_raw_is_the_row_as_json():
    [reject] = load(PARQUET).rejects
    raw = json.loads(reject.raw)
    assert raw["src_endpoint"]["ip"] is None
    assert raw["dst_endpoint"]["ip"] == "151.101.0.223"


def test_parquet_loads_like_the_same_events_as_json_lines(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(
        "".join(
            json.dumps({k: v for k, v in r.items() if k != "unmapped"}) + "\n"
            for r in security_lake_rows()
        )
    )
    as_json = load(path, display="x")
    as_parquet = load(PARQUET, display="x")
    assert as_json.table.equals(as_parquet.table)


def test_parquet_timestamp_columns_are_exact_and_naive_ones_noted(tmp_path):
    base = pa.Table.from_pylist(security_lake_rows(), schema=SECURITY_LAKE_SCHEMA).select(
        ["class_uid", "src_endpoint", "dst_endpoint", "action_id"]
    )
    zoned = pa.array([(T + 678_000) * 1000 + 7] * 4, pa.timestamp("us", tz="UTC"))
    naive = pa.array([T + 678_000] * 4, pa.timestamp("ms"))
    path = tmp_path / "stamps.parquet"
    pq.write_table(base.append_column("start_time", zoned).append_column("end_time", naive), path)
    first = by_line(load(path))[1]
    assert first["ts"] == ns("2025-12-02T06:11:19.000007Z")  # microseconds kept, no magnitude guess
    assert first["ts_end"] is None  # naive end read as UTC lies before the start
    shanghai = LoadOptions(zones={"ocsf_network": ZoneInfo("Asia/Shanghai")})
    pq.write_table(base.append_column("time", naive), path)
    row = by_line(load(path, shanghai))[1]
    assert (row["ts"], row["ts_note"]) == (
        ns("2025-12-01T22:11:19Z"),
        "no zone: assumed Asia/Shanghai",
    )


def test_large_parquet_is_detected_from_its_head_and_read_in_full(tmp_path):
    path = tmp_path / "part-00000.gz.parquet"
    pq.write_table(pa.Table.from_pylist(many_rows(3000), schema=SECURITY_LAKE_SCHEMA), path)
    assert path.stat().st_size > 64 * 1024  # the footer is out of the sniffed head
    source = Source(path, path.name)
    assert detect(source).name == "ocsf_network"
    result = ocsf_network.read(source, LoadOptions())
    assert (result.stats.read, result.stats.loaded, result.stats.rejected) == (12000, 6000, 3000)
    assert result.rejects[-1].location.line == 12000


def test_large_parquet_without_evidence_in_its_head_can_be_forced(tmp_path):
    path = tmp_path / "big.parquet"
    table = pa.Table.from_pylist(many_rows(3000), schema=SECURITY_LAKE_SCHEMA)
    names = ["time", *(c for c in table.column_names if c not in ("time", "class_name"))]
    pq.write_table(table.select(names), path)
    assert path.stat().st_size > 64 * 1024
    source = Source(path, path.name)
    assert b"Network Activity" not in source.head() and b"class_uid" not in source.head()
    assert ocsf_network.sniff(source.head(), source.name) > 0
    assert detect(source, forced="ocsf_network").forced


def test_parquet_without_class_uid_is_a_format_mismatch(tmp_path):
    path = tmp_path / "flows.parquet"
    pq.write_table(
        pa.table({"srcaddr": ["10.0.0.1"], "dstaddr": ["10.0.0.2"], "action": ["ACCEPT"]}), path
    )
    source = Source(path, path.name)
    assert ocsf_network.sniff(source.head(), source.name) == 0.0
    with pytest.raises(FormatMismatch, match="without a class_uid column"):
        ocsf_network.read(source, LoadOptions())


def test_compressed_parquet_is_refused_with_a_clear_error(tmp_path):
    copy = tmp_path / "events.parquet.gz"
    copy.write_bytes(gzip.compress(PARQUET.read_bytes()))
    with pytest.raises(InputError, match="compressed Parquet file; decompress it first"):
        ocsf_network.read(Source(copy, copy.name), LoadOptions())


def test_truncated_parquet_is_an_input_error(tmp_path):
    path = tmp_path / "cut.parquet"
    path.write_bytes(PARQUET.read_bytes()[:-20])
    with pytest.raises(InputError, match="cannot read Parquet"):
        ocsf_network.read(Source(path, path.name), LoadOptions())


# --- sniffing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [*JSON_FILES, PARQUET], ids=lambda p: p.name)
def test_sniff_is_sure_of_every_fixture_and_detect_picks_ocsf(path):
    source = Source(path, path.name)
    assert ocsf_network.sniff(source.head(), source.name) >= 0.9
    assert detect(source).name == "ocsf_network"


NEAR_MISSES = {
    "dns_activity": b'{"class_uid": 4003, "src_endpoint": {"ip": "10.0.0.1"}}\n',
    "other_class_number": b'{"class_uid": 40010, "src_endpoint": {"ip": "10.0.0.1"}}\n',
    "otlp": b'{"resourceSpans": [{"scopeSpans": []}]}\n',
    "csv": b"class_uid,src_ip\n4001,10.0.0.1\n",
    "text": b'class_uid: 4001 "class_uid": 4001\n',
    "parquet_garbage": b"PAR1" + b"\x00" * 64 + b"PAR1",
}


@pytest.mark.parametrize("name", sorted(NEAR_MISSES))
def test_sniff_rejects_near_misses(name):
    assert ocsf_network.sniff(NEAR_MISSES[name], "events.json") == 0.0


def test_sniff_is_less_sure_without_endpoint_objects():
    assert ocsf_network.sniff(b'{"class_uid": 4001, "time": 1}\n', "e.jsonl") == 0.7


@pytest.mark.parametrize(
    "head",
    [b"", b"\x00\xff\xfe" * 100, b"[" * 5000, b"\n" * 10],
    ids=["empty", "binary", "brackets", "newlines"],
)
def test_sniff_never_raises_and_scores_noise_zero(head):
    assert ocsf_network.sniff(head, "x.json") == 0.0


def test_registered_under_its_name():
    assert REGISTRY["ocsf_network"] is ocsf_network
