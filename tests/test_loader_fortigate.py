"""FortiGate key=value loader: golden rows, verdict/direction mapping, time rules, bad rows, sniffing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from loader_helpers import ns, rows

from correlate.errors import OptionError, StrictRejection
from correlate.loaders import REGISTRY, LoadOptions, LoadResult, detect, fortigate
from correlate.sources import Source

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "fortigate"
TRAFFIC = DATA / "traffic_syslog_tz_plus0800.log"
UTM = DATA / "utm_ips_webfilter_dns.log"
OLD = DATA / "fortios5_no_eventtime_no_tz.log"
UNITS = DATA / "eventtime_units_and_tz_mismatch.log"
BAD = DATA / "bad_rows_unterminated_quote_bad_ip.log"
ALL = sorted(DATA.glob("*.log"))


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def load(path: Path, options: LoadOptions | None = None, display: str | None = None) -> LoadResult:
    source = Source(path, display or shown(path))
    return fortigate.read(source, options or LoadOptions())


def by_line(result: LoadResult) -> dict[int, dict[str, Any]]:
    return {row["source_line"]: row for row in rows(result.table)}


# --- golden rows ---------------------------------------------------------------------------------


def test_allowed_https_session_row_is_exact():
    row = by_line(load(TRAFFIC))[1]
    assert row == {
        "event_id": None,
        "ts": 1_764_655_201_123_456_789,  # eventtime in ns, as logged
        "ts_end": None,
        "src_ip": "192.168.10.13",
        "src_port": 51544,
        "src_nat_ip": "47.96.180.21",  # trandisp=snat transip=
        "dst_ip": "151.101.0.223",
        "dst_port": 443,
        "protocol": "tcp",
        "direction": "outbound",  # srcintfrole lan -> dstintfrole wan
        "action": "allowed",
        "action_raw": "close",
        "rule": "sandbox-egress-web (12)",
        "signature": None,
        "category": "Web.Client",
        "dst_domain": None,
        "app": "HTTPS.BROWSER",
        "bytes_out": 2140,
        "bytes_in": 58120,
        "packets_out": 18,
        "packets_in": 44,
        "observer": "fortigate/FGT-EDGE-01/root",
        "host_hint": "sbx-03",
        "flow_key": "fortigate:FG100FTK19000001:1203",
        "ts_note": None,
        "source_format": "fortigate",
        "source_path": "tests/data/fortigate/traffic_syslog_tz_plus0800.log",
        "source_line": 1,
    }


def test_denied_ssh_behind_an_rfc3164_header():
    row = by_line(load(TRAFFIC))[2]
    assert row["ts"] == ns("2025-12-02T06:11:19.402113877Z")
    assert (row["src_ip"], row["dst_ip"], row["dst_port"]) == ("192.168.10.13", "203.0.113.7", 22)
    assert (row["action"], row["action_raw"], row["rule"]) == ("denied", "deny", "0")
    assert row["direction"] == "outbound"
    assert row["src_nat_ip"] is None  # trandisp=noop
    assert row["category"] is None  # appcat="unscanned" is no category
    assert row["app"] == "SSH"  # no app=: the service name


@pytest.mark.parametrize(
    ("line", "direction", "action", "action_raw"),
    [
        (3, "internal", "allowed", "server-rst"),  # lan -> dmz
        (4, "inbound", "allowed", "close"),  # wan -> lan
        (6, "unknown", "denied", "deny"),  # local-in: dstintfrole undefined
        (7, "outbound", "allowed", "timeout"),  # behind an RFC 5424 header
        (8, "outbound", "allowed", "accept"),
    ],
)
def test_direction_and_verdict_per_line(line, direction, action, action_raw):
    row = by_line(load(TRAFFIC))[line]
    assert (row["direction"], row["action"], row["action_raw"]) == (direction, action, action_raw)


def test_dnat_session_keeps_the_logged_destination_and_no_source_nat():
    row = by_line(load(TRAFFIC))[4]
    assert (row["src_ip"], row["dst_ip"], row["src_nat_ip"]) == ("192.0.2.44", "47.96.180.21", None)
    assert row["ts"] == ns("2025-12-02T06:05:30.5Z")


def test_utmaction_block_turns_an_allowed_session_into_denied_and_lowercases_the_host():
    row = by_line(load(TRAFFIC))[5]
    assert (row["action"], row["action_raw"]) == ("denied", "close (utmaction=block)")
    assert row["dst_domain"] == "raw.githubusercontent.com"


def test_ipv6_addresses_are_canonical_and_udp_from_the_protocol_number():
    row = by_line(load(TRAFFIC))[8]
    assert (row["src_ip"], row["dst_ip"], row["protocol"]) == (
        "fd00:10::13",
        "2606:4700::6810:84e5",
        "udp",
    )


def test_local_subtype_row_is_udp_snmp_to_the_firewall():
    row = by_line(load(TRAFFIC))[6]
    assert (row["dst_ip"], row["dst_port"], row["protocol"]) == ("192.168.10.1", 161, "udp")


def test_clean_file_accounting():
    result = load(TRAFFIC)
    assert (result.stats.read, result.stats.loaded, result.stats.rejected) == (8, 8, 0)
    assert result.stats.notes == {}
    assert result.kind == "network"


# --- UTM records ----------------------------------------------------------------------------------


def test_ips_drop_is_denied_with_the_attack_as_signature_and_the_hostname_as_domain():
    row = by_line(load(UTM))[1]
    assert row["ts"] == 1_764_656_380_111_222_333
    assert (row["action"], row["action_raw"]) == ("denied", "dropped")
    assert row["signature"] == "Cryptocurrency.Mining.Pool.Stratum"
    assert row["dst_domain"] == "pool.supportxmr.com"
    assert (row["dst_ip"], row["dst_port"], row["direction"]) == ("141.94.96.144", 3333, "outbound")
    assert row["flow_key"] == "fortigate:FG100FTK19000001:1617"


def test_ips_detected_is_alerted_and_an_ip_hostname_is_no_domain():
    row = by_line(load(UTM))[2]
    assert (row["action"], row["signature"]) == ("alerted", "SSH.Reverse.Port.Forwarding")
    assert row["dst_domain"] is None  # hostname="203.0.113.7"


@pytest.mark.parametrize(
    ("line", "action", "action_raw", "domain", "category", "app"),
    [
        (3, "denied", "blocked", "xmrig.com", "Potentially Unwanted Program", "HTTPS"),
        (4, "alerted", "passthrough", "files.pythonhosted.org", "Information Technology", "HTTPS"),
        (5, "denied", "block", "pool.supportxmr.com", None, None),  # DNS filter: qname, dot gone
        (6, "denied", "block", "tunnel.us.ngrok.com", "Proxy", "Ngrok"),  # app-ctrl
    ],
)
def test_webfilter_dns_and_app_control_records(line, action, action_raw, domain, category, app):
    row = by_line(load(UTM))[line]
    assert (row["action"], row["action_raw"], row["dst_domain"]) == (action, action_raw, domain)
    assert (row["category"], row["app"]) == (category, app)


def test_dns_filter_record_has_no_direction_toward_the_firewall_itself():
    row = by_line(load(UTM))[5]
    assert (row["dst_ip"], row["dst_port"], row["protocol"], row["direction"]) == (
        "192.168.10.1",
        53,
        "udp",
        "unknown",
    )


def test_quoted_values_keep_spaces_and_unescape_quotes_and_backslashes():
    line = UTM.read_text().splitlines()[2]
    record = fortigate.parse_pairs(line)
    assert record["msg"] == 'URL belongs to a denied category in policy "sandbox-web" (C:\\rules)'
    assert record["catdesc"] == "Potentially Unwanted Program"
    assert record["eventtime"] == "1764656465000000001"


def test_parse_pairs_keeps_the_first_of_duplicate_keys_and_empty_values():
    assert fortigate.parse_pairs('a=1 b="" c= a=2') == {"a": "1", "b": "", "c": ""}


# --- time ---------------------------------------------------------------------------------------


def test_without_eventtime_or_tz_date_time_are_utc_with_a_note():
    result = load(OLD)
    first = by_line(result)[1]
    assert first["ts"] == ns("2025-12-02T14:00:05Z")
    assert first["ts_note"] == "no zone: assumed UTC"
    assert result.stats.notes == {"no zone: assumed UTC": 2}


@pytest.mark.parametrize("key", ["fortigate", "*"])
def test_zone_option_reads_naive_date_time_in_that_zone(key):
    result = load(OLD, LoadOptions(zones={key: ZoneInfo("Asia/Shanghai")}))
    row = by_line(result)[2]
    assert row["ts"] == ns("2025-12-02T06:00:03Z")
    assert row["ts_note"] == "no zone: assumed Asia/Shanghai"


def test_zone_option_does_not_override_eventtime_or_tz():
    options = LoadOptions(zones={"fortigate": ZoneInfo("America/New_York")})
    assert load(TRAFFIC, options).table.equals(load(TRAFFIC).table)


def test_zone_for_another_format_is_ignored():
    result = load(OLD, LoadOptions(zones={"panos_traffic": ZoneInfo("Asia/Shanghai")}))
    assert by_line(result)[2]["ts"] == ns("2025-12-02T14:00:03Z")


def test_eventtime_units_by_magnitude_and_a_tz_mismatch_are_noted():
    result = load(UNITS)
    table = by_line(result)
    assert table[1]["ts"] == ns("2025-12-02T06:00:03Z")  # FortiOS 6.0: seconds
    assert table[1]["ts_note"] == "epoch unit s by magnitude (format documents ns)"
    assert table[2]["ts"] == ns("2025-12-02T06:00:05.25Z")
    assert table[2]["ts_note"] == "epoch unit ms by magnitude (format documents ns)"
    # date=06:00:01 with tz=+0800 is 22:00:01Z the day before: eventtime wins, the gap is noted.
    assert table[3]["ts"] == ns("2025-12-02T06:00:01Z")
    assert table[3]["ts_note"] == "date/time/tz differ from eventtime by -480 min: eventtime used"


def test_explicit_epoch_unit_option_is_used_without_a_note():
    result = load(UNITS, LoadOptions(epoch_unit="s"))
    row = by_line(result)[1]
    assert (row["ts"], row["ts_note"]) == (ns("2025-12-02T06:00:03Z"), None)


def test_session_start_option_moves_ts_back_by_the_duration():
    options = LoadOptions(format_options={"fortigate": {"session_start": "duration"}})
    table = by_line(load(TRAFFIC, options))
    miner = table[7]
    assert miner["ts"] == ns("2025-12-02T06:19:44.7Z")  # 08:19:44.7Z - 7200 s
    assert miner["ts_end"] == ns("2025-12-02T08:19:44.7Z")
    assert miner["ts_note"] == "ts = eventtime - duration (session start)"
    denied = table[2]  # duration=0: nothing to move
    assert (denied["ts_end"], denied["ts_note"]) == (None, None)


def test_session_start_option_rejects_an_unknown_mode():
    options = LoadOptions(format_options={"fortigate": {"session_start": "begin"}})
    with pytest.raises(OptionError, match="session_start"):
        load(TRAFFIC, options)


def test_wan_interfaces_option_gives_direction_to_logs_without_interface_roles():
    assert {row["direction"] for row in rows(load(OLD).table)} == {"unknown"}  # FortiOS 5: no roles
    options = LoadOptions(format_options={"fortigate": {"wan_interfaces": "wan1, wan2"}})
    assert [row["direction"] for row in rows(load(OLD, options).table)] == ["outbound", "outbound"]
    options = LoadOptions(format_options={"fortigate": {"wan_interfaces": "internal"}})
    assert [row["direction"] for row in rows(load(OLD, options).table)] == ["inbound", "inbound"]


def test_wan_interfaces_option_overrides_a_declared_role():
    options = LoadOptions(format_options={"fortigate": {"wan_interfaces": "port3"}})
    assert by_line(load(TRAFFIC, options))[3]["direction"] == "outbound"  # lan -> port3 (dmz)


# --- bad rows -------------------------------------------------------------------------------------


def test_bad_rows_are_rejected_with_precise_reasons():
    result = load(BAD)
    got = {r.location.line: r.reason for r in result.rejects}
    expected = {
        2: "unbalanced quotes in the value of app",
        3: "srcip is not an IP address: '192.168.10.300'",
        4: "dstport out of range: 70000",
        5: "eventtime: not an epoch time: '17646558840OO'",
        10: "no type= field",
        11: "not key=value: 'truncated-here policyid=0'",
        12: "no eventtime and no date/time",
        13: "date/time/tz: not a valid time: 2025-12-02 25:12:06",
    }
    assert sorted(got) == sorted(expected)
    for line, fragment in expected.items():
        assert fragment in got[line], (line, got[line])
    assert len(result.rejects) == len(expected)


def test_bad_rows_skips_are_counted_by_reason():
    result = load(BAD)
    assert result.stats.skipped == {
        "blank line": 1,
        "not a FortiOS key=value record": 1,  # sshd's line in the same syslog file
        "event log (not traffic or utm)": 1,
        "utm virus record without srcip/dstip": 1,
    }
    assert sorted(by_line(result)) == [1, 14]
    assert by_line(result)[14]["action"] == "denied"  # IPS reset


def test_reject_keeps_the_whole_raw_line_including_the_syslog_header(tmp_path):
    line = (
        'Dec  2 14:11:19 fgt-edge-01 date=2025-12-02 time=14:11:19 logid="0000000013" '
        'type="traffic" eventtime=1764655879000000000 srcip=192.168.10.300 dstip=203.0.113.7'
    )
    path = tmp_path / "fgt.log"
    path.write_text(line + "\n")
    [reject] = load(path).rejects
    assert (reject.location.line, reject.raw) == (1, line)
    assert reject.reason == "srcip is not an IP address: '192.168.10.300'"


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_every_line_is_loaded_rejected_or_skipped(path):
    result = load(path)
    lines = len(path.read_bytes().splitlines())
    assert result.stats.read == lines
    assert result.stats.balanced
    assert result.stats.loaded == result.table.num_rows
    assert result.stats.rejected == len(result.rejects)


def test_strict_mode_stops_at_the_first_bad_row():
    with pytest.raises(
        StrictRejection, match=r"^tests/data/fortigate/bad_rows_\S+\.log:2: unbalanced"
    ):
        load(BAD, LoadOptions(strict=True))


def test_invalid_utf8_is_replaced_and_noted(tmp_path):
    path = tmp_path / "fgt.log"
    path.write_bytes(UTM.read_bytes().replace(b'app="Ngrok"', b'app="Ngr\xffok"'))
    result = load(path)
    assert result.stats.notes["invalid UTF-8 replaced by U+FFFD"] == 1
    assert by_line(result)[6]["app"] == "Ngr\ufffdok"


# --- sniffing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_sniff_is_sure_of_every_fixture_and_detect_picks_fortigate(path):
    source = Source(path, path.name)
    assert fortigate.sniff(source.head(), source.name) >= 0.9
    assert detect(source).name == "fortigate"


NEAR_MISSES = {
    "fortiweb": b'date=2016-02-19 time=11:23:45 log_id=20000010 msg_id=000139289631 device_id=FV-1KD3A15800072 vd="root" type=attack subtype="waf_signature_detection" pri=alert src=10.0.0.1 dst=10.0.0.2\n',
    "fortigate_cef": b"Dec 27 11:07:55 FGT-A-LOG CEF: 0|Fortinet|Fortigate|v6.0.3|00013|traffic:forward close|3|deviceExternalId=FGT5HD3915800610 FTNTFGTlogid=0000000013 cat=traffic:forward FTNTFGTsubtype=forward FTNTFGTeventtime=1545937675 src=10.1.100.11 dst=52.53.140.235 FTNTFGTtype=traffic act=close\n",
    "sophos_utm": b'2014:09:30-12:06:15 utm ulogd[11342]: id="2001" severity="info" sys="SecureNet" sub="packetfilter" name="Packet dropped" action="drop" srcip="192.168.1.28" dstip="144.76.96.172" proto="6"\n',
    "kv_without_logid": b'date=2025-12-02 time=14:00:01 type="traffic" srcip=10.0.0.1 dstip=10.0.0.2 action="deny"\n',
    "panos": b"Nov 30 16:09:08 PA-220 1,2018/11/30 16:09:07,012801096514,TRAFFIC,end,2049,2018/11/30 16:09:07,192.168.15.207,175.16.199.1\n",
    "json": b'{"date": "2025-12-02", "time": "14:00:01", "logid": "0000000013", "type": "traffic"}\n',
    "csv_export": b"date,time,logid,type,srcip,dstip\n2025-12-02,14:00:01,0000000013,traffic,10.0.0.1,10.0.0.2\n",
}


@pytest.mark.parametrize("name", sorted(NEAR_MISSES))
def test_sniff_rejects_near_misses(name):
    assert fortigate.sniff(NEAR_MISSES[name], "fortigate.log") == 0.0


@pytest.mark.parametrize(
    "head",
    [b"", b"\x00\xff\xfe" * 100, b"PAR1\x00\x01", "date=\u2028time=é logid=".encode(), b"\n" * 10],
    ids=["empty", "binary", "parquet", "unicode", "newlines"],
)
def test_sniff_never_raises_and_scores_noise_zero(head):
    assert fortigate.sniff(head, "x.log") == 0.0


def test_sniff_finds_fortios_lines_after_foreign_syslog_lines():
    head = b"Dec  2 14:12:00 host sshd[1]: hello\n" * 3 + TRAFFIC.read_bytes()
    assert fortigate.sniff(head, "messages") == 0.95


def test_registered_under_its_name():
    assert REGISTRY["fortigate"] is fortigate
    assert re.fullmatch(r"[a-z_]+", fortigate.name)
