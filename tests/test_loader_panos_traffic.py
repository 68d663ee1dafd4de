"""PAN-OS traffic/threat loader: syslog CSV and web-UI exports, zones, NAT, times, bad rows, sniffing."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from loader_helpers import ns, rows

from correlate.errors import StrictRejection
from correlate.loaders import REGISTRY, LoadOptions, LoadResult, detect, panos_traffic
from correlate.sources import Source

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "panos_traffic"
SYSLOG = DATA / "syslog_traffic_threat_bsd_header.log"
HIGH_RES = DATA / "pan10_high_res_timestamp_plus0800.log"
EXPORT = DATA / "export_web_ui_header.csv"
BAD = DATA / "bad_rows_short_record_bad_time.log"
ALL = sorted(p for p in DATA.iterdir() if p.is_file() and p.name != "README.md")


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def load(path: Path, options: LoadOptions | None = None, display: str | None = None) -> LoadResult:
    source = Source(path, display or shown(path))
    return panos_traffic.read(source, options or LoadOptions())


def by_line(result: LoadResult) -> dict[int, dict[str, Any]]:
    return {row["source_line"]: row for row in rows(result.table)}


def zones(text: str) -> LoadOptions:
    return LoadOptions(format_options={"panos_traffic": {"untrust_zones": text}})


# --- golden rows ---------------------------------------------------------------------------------


def test_allowed_session_end_row_is_exact():
    row = by_line(load(SYSLOG))[1]
    assert row == {
        "event_id": None,
        "ts": ns("2025-12-02T05:59:58Z"),  # Start Time, naive, read as UTC
        "ts_end": ns("2025-12-02T06:00:01Z"),  # Generated Time
        "src_ip": "192.168.10.13",
        "src_port": 51544,
        "src_nat_ip": "47.96.180.21",  # NAT Source IP
        "dst_ip": "151.101.0.223",
        "dst_port": 443,
        "protocol": "tcp",
        "direction": "outbound",  # sandbox -> untrust
        "action": "allowed",
        "action_raw": "end/allow",
        "rule": "sandbox-egress-web",
        "signature": None,
        "category": "computer-and-internet-info",
        "dst_domain": None,
        "app": "ssl",
        "bytes_out": 2140,
        "bytes_in": 58120,
        "packets_out": 18,
        "packets_in": 44,
        "observer": "panos/PA-3220/vsys1",
        "host_hint": None,
        "flow_key": "panos:013201001234:31337",
        "ts_note": "no zone: assumed UTC",
        "source_format": "panos_traffic",
        "source_path": "tests/data/panos_traffic/syslog_traffic_threat_bsd_header.log",
        "source_line": 1,
    }


def test_policy_deny_row():
    row = by_line(load(SYSLOG))[2]
    assert (row["ts"], row["ts_end"]) == (ns("2025-12-02T06:11:19Z"), ns("2025-12-02T06:11:19Z"))
    assert (row["action"], row["action_raw"], row["rule"]) == (
        "denied",
        "deny/deny",
        "sandbox-deny-ssh",
    )
    assert (row["src_nat_ip"], row["category"]) == (None, None)  # 0.0.0.0 and "any"
    assert (row["bytes_out"], row["bytes_in"]) == (74, 0)


def test_drop_subtype_with_action_allow_is_denied_and_noted():
    row = by_line(load(SYSLOG))[3]
    assert (row["action"], row["action_raw"]) == ("denied", "drop/allow")
    assert row["ts_note"] == "no zone: assumed UTC; subtype drop with Action allow: taken as denied"
    assert row["flow_key"] is None  # Session ID 0


def test_threat_spyware_record_is_denied_with_the_threat_name():
    row = by_line(load(SYSLOG))[4]
    assert (row["ts"], row["ts_end"]) == (ns("2025-12-02T06:19:44Z"), None)  # Generated Time
    assert (row["action"], row["action_raw"]) == ("denied", "spyware/reset-both")
    assert row["signature"] == "XMRig Miner Stratum Traffic(86654)"
    assert (row["dst_ip"], row["dst_port"], row["src_nat_ip"]) == (
        "141.94.96.144",
        3333,
        "47.96.180.21",
    )
    assert (row["bytes_out"], row["packets_in"]) == (None, None)  # THREAT logs carry no counters
    assert row["category"] is None  # "any"


def test_threat_url_alert_is_alerted_with_the_url_host_and_no_bare_threat_id():
    row = by_line(load(SYSLOG))[5]
    assert (row["action"], row["action_raw"]) == ("alerted", "url/alert")
    assert row["dst_domain"] == "raw.githubusercontent.com"
    assert row["signature"] is None  # "(9999)"
    assert row["category"] == "computer-and-internet-info"


def test_threat_url_block_without_the_leading_future_use_field():
    row = by_line(load(SYSLOG))[6]
    assert (row["action"], row["dst_domain"], row["category"]) == (
        "denied",
        "xmrig.com",
        "grayware",
    )
    assert (row["src_ip"], row["dst_ip"], row["dst_port"]) == ("192.168.10.13", "104.21.32.1", 443)
    assert row["ts"] == ns("2025-12-02T06:21:05Z")


def test_inbound_and_unknown_directions_from_zones():
    table = by_line(load(SYSLOG))
    assert (table[7]["direction"], table[7]["src_ip"], table[7]["src_nat_ip"]) == (
        "inbound",
        "192.0.2.44",
        None,
    )
    assert table[9]["direction"] == "unknown"  # sandbox -> dmz, behind an RFC 5424 header


def test_system_log_is_skipped_and_every_line_accounted():
    result = load(SYSLOG)
    assert result.stats.skipped == {"SYSTEM log (not TRAFFIC or THREAT)": 1}
    assert (result.stats.read, result.stats.loaded, result.stats.rejected) == (9, 8, 0)
    assert sorted(by_line(result)) == [1, 2, 3, 4, 5, 6, 7, 9]


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("untrust,dmz", {1: "outbound", 7: "inbound", 9: "outbound"}),
        ("dmz", {1: "unknown", 7: "unknown", 9: "outbound"}),
        ("", {1: "unknown", 7: "unknown", 9: "unknown"}),
        ("UNTRUST", {1: "outbound", 7: "inbound", 9: "unknown"}),
    ],
)
def test_untrust_zones_option(setting, expected):
    table = by_line(load(SYSLOG, zones(setting)))
    assert {line: table[line]["direction"] for line in expected} == expected


# --- time zones -----------------------------------------------------------------------------------


def test_zone_option_reads_naive_times_in_that_zone():
    options = LoadOptions(zones={"panos_traffic": ZoneInfo("Asia/Shanghai")})
    row = by_line(load(SYSLOG, options))[1]
    assert (row["ts"], row["ts_end"]) == (ns("2025-12-01T21:59:58Z"), ns("2025-12-01T22:00:01Z"))
    assert row["ts_note"] == "no zone: assumed Asia/Shanghai"


def test_high_resolution_timestamp_offset_is_the_zone_of_the_record():
    result = load(HIGH_RES)
    first, miner = by_line(result)[1], by_line(result)[2]
    assert first["ts"] == ns("2025-12-02T06:11:19Z")  # 14:11:19 at +08:00
    assert first["ts_note"] == "zone +08:00 from the record's High Resolution Timestamp"
    assert (miner["ts"], miner["ts_end"]) == (
        ns("2025-12-02T06:19:44Z"),
        ns("2025-12-02T08:19:44Z"),
    )
    assert result.stats.notes == {"zone +08:00 from the record's High Resolution Timestamp": 2}


def test_high_resolution_offset_wins_over_the_zone_option():
    options = LoadOptions(zones={"*": ZoneInfo("America/New_York")})
    assert load(HIGH_RES, options).table.equals(load(HIGH_RES).table)


def test_pan10_container_fields_feed_host_hint():
    table = by_line(load(HIGH_RES))
    assert table[1]["host_hint"] == "rl-sandboxes/sbx-03-7d9f8"  # POD Namespace/POD Name
    assert table[2]["host_hint"] == "containerd://9b2e5d0c11aa"  # Container ID
    assert (table[1]["action"], table[1]["action_raw"]) == ("denied", "deny/reset-both")
    assert table[1]["observer"] == "panos/pa-edge-02/vsys1"
    assert (table[2]["src_nat_ip"], table[2]["bytes_in"]) == ("47.96.180.22", 721886)


# --- CSV export -----------------------------------------------------------------------------------


def test_web_ui_export_with_a_header_row_loads_like_syslog():
    result = load(EXPORT)
    table = by_line(result)
    assert sorted(table) == [2, 3]
    syslog_row = by_line(load(SYSLOG))[1]
    export_row = table[3]
    for key in ("ts", "ts_end", "src_ip", "src_nat_ip", "dst_ip", "dst_port", "protocol"):
        assert export_row[key] == syslog_row[key], key
    for key in ("direction", "action", "action_raw", "rule", "app", "bytes_out", "packets_in"):
        assert export_row[key] == syslog_row[key], key
    assert table[2]["action"] == "denied"
    assert result.stats.skipped == {"CSV header": 1}


def test_export_rejects_a_bad_address_with_its_line():
    result = load(EXPORT)
    assert [(r.location.line, r.reason) for r in result.rejects] == [
        (4, "Destination Address is not an IP address: 'not-an-ip'")
    ]
    assert result.stats.balanced and result.stats.read == 4


def test_export_with_syslog_field_names_as_header(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(
        "Receive Time,Type,Threat/Content Type,Generated Time,Source Address,Destination Address,"
        "Source Zone,Destination Zone,Source Port,Destination Port,Protocol,Action\n"
        "2025/12/02 06:11:19,TRAFFIC,deny,2025/12/02 06:11:19,192.168.10.13,203.0.113.7,"
        "sandbox,untrust,40951,22,tcp,deny\n"
    )
    [row] = rows(load(path).table)
    assert (row["ts"], row["action"], row["direction"]) == (
        ns("2025-12-02T06:11:19Z"),
        "denied",
        "outbound",
    )
    assert row["ts_note"] == "no zone: assumed UTC; no Start Time: ts = Generated Time"


# --- bad rows -------------------------------------------------------------------------------------


def test_bad_rows_are_rejected_with_precise_reasons():
    result = load(BAD)
    got = {r.location.line: r.reason for r in result.rejects}
    expected = {
        2: "20 fields; a PAN-OS TRAFFIC record has at least 31",
        3: "Source Address is not an IP address: '192.168.10.256'",
        4: "Generated Time: not a valid time: '2025/13/02 06:11:22'",
        5: "Generated Time: not a PAN-OS time (YYYY/MM/DD HH:MM:SS): '2025-12-02T06:11:23'",
        6: "Destination Port out of range: 65536",
        12: "unreadable CSV:",
        13: "Bytes Sent out of range: -5",
        15: "Generated Time is missing",
    }
    assert sorted(got) == sorted(expected)
    for line, fragment in expected.items():
        assert fragment in got[line], (line, got[line])
    assert len(result.rejects) == len(expected)


def test_bad_rows_skips_and_start_time_fallbacks():
    result = load(BAD)
    assert result.stats.skipped == {
        "blank line": 1,
        "not a PAN-OS log record": 1,
        "CONFIG log (not TRAFFIC or THREAT)": 1,
    }
    table = by_line(result)
    assert sorted(table) == [1, 10, 11, 14]
    assert table[10]["ts"] == ns("2025-12-02T06:11:27Z")
    assert table[10]["ts_note"].endswith("Start Time after Generated Time: ts = Generated Time")
    assert table[11]["ts_note"].endswith("Start Time unset: ts = Generated Time")
    assert (table[14]["action"], table[14]["action_raw"]) == ("unknown", "end/quarantine")


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_every_line_is_loaded_rejected_or_skipped(path):
    result = load(path)
    assert result.stats.read == len(path.read_bytes().splitlines())
    assert result.stats.balanced
    assert result.stats.loaded == result.table.num_rows
    assert result.stats.rejected == len(result.rejects)


def test_strict_mode_stops_at_the_first_bad_row():
    with pytest.raises(StrictRejection, match=r"bad_rows_short_record_bad_time\.log:2: 20 fields"):
        load(BAD, LoadOptions(strict=True))


# --- sniffing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_sniff_is_sure_of_every_fixture_and_detect_picks_panos(path):
    source = Source(path, path.name)
    assert panos_traffic.sniff(source.head(), source.name) >= 0.9
    assert detect(source).name == "panos_traffic"


NEAR_MISSES = {
    "panos_cef": b"Mar  1 20:46:50 host CEF:0|Palo Alto Networks|PAN-OS|10.1|TRAFFIC|end|3|rt=Feb 27 2021 20:16:21 src=10.0.0.1 dst=10.0.0.2 act=allow cs1=1,2025/12/02 06:00:01,x,TRAFFIC,end\n",
    "panos_leef": b"<14>1 2021-09-21T01:47:21.059Z host - - - LEEF:2.0|Palo Alto Networks|Next Generation Firewall|10.1|drop-reset| |cat=traffic devTime=2021-09-21T01:47:18Z src=1.2.3.4\n",
    "fortigate": b'date=2025-12-02 time=14:00:01 logid="0000000013" type="traffic" srcip=10.0.0.1 dstip=10.0.0.2\n',
    "other_csv": b"time,src_ip,dst_ip,action\n2025/12/02 06:00:01,10.0.0.1,10.0.0.2,allow\n",
    "date_without_type": b"1,2025/12/02 06:00:01,013201001234,traffic,end\n",
    "json": b'{"receive_time": "2025/12/02 06:00:01", "type": "TRAFFIC"}\n',
}


@pytest.mark.parametrize("name", sorted(NEAR_MISSES))
def test_sniff_rejects_near_misses(name):
    assert panos_traffic.sniff(NEAR_MISSES[name], "panos.log") == 0.0


def test_sniff_is_unsure_of_other_panos_log_types():
    head = b"1,2025/12/02 06:30:00,013201001234,SYSTEM,general,0,2025/12/02 06:30:00,,general\n"
    assert panos_traffic.sniff(head, "system.log") == 0.6


def test_sniff_wants_a_whole_record_not_a_truncated_line():
    head = b"1,2025/12/02 06:00:01,013201001234,TRAFFIC,end,2561,2025/12/02 06:00:01,10.0.0.1\n"
    assert panos_traffic.sniff(head, "pan.log") == 0.6


@pytest.mark.parametrize(
    "head",
    [b"", b"\x00\xff\xfe" * 100, b"PAR1\x00\x01", b'"unterminated,quote\n', b"\n" * 10],
    ids=["empty", "binary", "parquet", "quote", "newlines"],
)
def test_sniff_never_raises_and_scores_noise_zero(head):
    assert panos_traffic.sniff(head, "x.log") == 0.0


def test_registered_under_its_name():
    assert REGISTRY["panos_traffic"] is panos_traffic
