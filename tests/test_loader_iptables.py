"""iptables/nftables LOG loader: golden rows per envelope (RFC 3164 with year inference, RFC 5424,
ISO, journald JSON, dmesg -T, pve-firewall.log), malformed fixtures, options, accounting, strict
mode, compressed copies and near-miss sniffing."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from loader_helpers import ns, rows

from correlate.errors import OptionError, StrictRejection
from correlate.loaders import MIN_SCORE, LoadOptions, LoadResult, detect
from correlate.loaders import iptables as loader
from correlate.sources import Source

DATA = Path(__file__).resolve().parent / "data"
FOLDER = DATA / "iptables"
EXTRA = DATA / "iptables_extra"
ROLLOVER = FOLDER / "no_year_rollover_sandbox_egress.log"
STAMPS = FOLDER / "stamps_with_year_and_zone.log"
JOURNAL = FOLDER / "journalctl_json_export.json"
DAMAGED = FOLDER / "damaged_fields.log"
CROWDSEC = FOLDER / "crowdsec_iptables_logs.log"
SCAN = FOLDER / "crowdsec_iptables_scan_multi_port.log"
PROXMOX = FOLDER / "crowdsec_proxmox_iptables.log"
FIXTURES = [ROLLOVER, STAMPS, JOURNAL, DAMAGED, CROWDSEC, SCAN, PROXMOX]


REF = ns("2026-01-02T00:00:00Z")
OPTIONS = LoadOptions(reference_ns=REF)
UTC_NOTE = "no zone: assumed UTC"
FIRST_YEAR = f"no year: assumed 2025 (from --reference-date); {UTC_NOTE}"
ROLLED = f"no year: assumed 2026 (from --reference-date; year rollover in file order); {UTC_NOTE}"


def by_line(result: LoadResult) -> dict[int, dict[str, Any]]:
    return {row["source_line"]: row for row in rows(result.table)}


def load(path: Path, options: LoadOptions = OPTIONS, shown: str | None = None) -> LoadResult:
    source = Source(path, shown or path.name)
    detection = detect(source)
    assert detection.name == "iptables"
    return detection.loader.read(source, options)


def with_options(**format_options: str) -> LoadOptions:
    return LoadOptions(reference_ns=REF, format_options={"iptables": format_options})


def rejects(result: LoadResult) -> dict[int, str]:
    return {r.location.line: r.reason for r in result.rejects}


def write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "kern.log"
    path.write_text("\n".join(lines) + "\n")
    return path


EGRESS = (
    "SRC=192.168.10.13 DST=203.0.113.7 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=TCP "
    "SPT=40951 DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0"
)


# --- RFC 3164 and the year ----------------------------------------------------------------------


def test_first_rfc3164_line_is_exact():
    row = by_line(load(ROLLOVER))[1]
    assert row == {
        "event_id": None,
        "ts": ns("2025-12-31T23:59:58Z"),  # Dec 31 2026 would lie after the reference
        "ts_end": None,
        "src_ip": "192.168.10.13",
        "src_port": 40951,
        "src_nat_ip": None,
        "dst_ip": "203.0.113.7",
        "dst_port": 22,
        "protocol": "tcp",
        "direction": "outbound",  # IN= empty, OUT=eth0: locally generated
        "action": "denied",
        "action_raw": "SBX-EGRESS-DROP",
        "rule": "SBX-EGRESS-DROP",
        "signature": None,
        "category": None,
        "dst_domain": None,
        "app": None,
        "bytes_out": 60,
        "bytes_in": None,
        "packets_out": 1,
        "packets_in": None,
        "observer": "netfilter@sbx-node-3",
        "host_hint": "host=sbx-node-3 OUT=eth0 UID=1000",
        "flow_key": None,
        "ts_note": FIRST_YEAR,
        "source_format": "iptables",
        "source_path": "no_year_rollover_sandbox_egress.log",
        "source_line": 1,
    }


def test_year_rolls_over_when_the_month_goes_back_and_a_stray_december_line_stays_in_2025():
    result = load(ROLLOVER)
    table = by_line(result)
    assert sorted(table) == [1, 3, 4, 5, 6, 7]
    assert result.stats.skipped == {"not a netfilter LOG line": 1}  # the systemd line
    assert table[3]["ts"] == ns("2026-01-01T00:00:01Z")
    assert table[3]["ts_note"] == ROLLED
    assert table[4]["ts"] == ns("2025-12-31T23:59:59Z")
    assert table[4]["ts_note"] == (
        f"no year: assumed 2025 (from --reference-date; out of order across New Year); {UTC_NOTE}"
    )
    assert [table[n]["ts"] for n in (5, 6, 7)] == [
        ns("2026-01-01T00:00:02Z"),
        ns("2026-01-01T00:00:03Z"),  # <4> PRI before the stamp
        ns("2026-01-01T00:00:04Z"),
    ]
    assert {table[n]["ts_note"] for n in (5, 6, 7)} == {ROLLED}
    assert result.stats.notes[ROLLED] == 4


def test_glued_prefix_and_forwarded_packet_without_inside_interfaces_are_unknown():
    row = by_line(load(ROLLOVER))[3]
    assert (row["action_raw"], row["action"]) == ("[sbx-fwd-D]", "unknown")
    assert row["direction"] == "unknown"  # IN=docker0 OUT=eth0: forwarded
    assert row["host_hint"] == "host=sbx-node-3 IN=docker0 OUT=eth0 PHYSIN=veth3f2a9c1"
    assert (row["src_ip"], row["dst_ip"], row["dst_port"]) == ("172.17.0.2", "198.51.100.23", 3333)


def test_ipv6_icmpv6_and_icmp_error_with_inner_header():
    table = by_line(load(ROLLOVER))
    v6 = table[5]
    assert (v6["src_ip"], v6["dst_ip"], v6["protocol"]) == (
        "2001:db8:10::13",
        "2001:db8:ffff::7",
        "ipv6-icmp",
    )
    assert (v6["src_port"], v6["dst_port"], v6["action"]) == (None, None, "denied")
    icmp = table[7]  # the bracketed inner UDP header must not leak into the row
    assert (icmp["src_ip"], icmp["dst_ip"], icmp["protocol"]) == (
        "203.0.113.99",
        "192.168.10.13",
        "icmp",
    )
    assert (icmp["src_port"], icmp["dst_port"]) == (None, None)
    assert (icmp["direction"], icmp["bytes_in"], icmp["packets_in"], icmp["bytes_out"]) == (
        "inbound",
        576,
        1,
        None,
    )


def test_udp_line_counts_the_ip_length_not_the_udp_length():
    row = by_line(load(ROLLOVER))[4]
    assert (row["protocol"], row["bytes_out"], row["action"]) == ("udp", 73, "allowed")


def test_year_comes_from_the_file_mtime_without_a_reference(tmp_path):
    copy = tmp_path / ROLLOVER.name
    copy.write_bytes(ROLLOVER.read_bytes())
    mtime = ns("2026-01-01T06:00:00Z")
    os.utime(copy, ns=(mtime, mtime))
    table = by_line(load(copy, LoadOptions()))
    assert table[1]["ts"] == ns("2025-12-31T23:59:58Z")
    assert table[1]["ts_note"] == f"no year: assumed 2025 (from the file's mtime); {UTC_NOTE}"
    assert table[6]["ts"] == ns("2026-01-01T00:00:03Z")


def test_reference_months_before_the_log_takes_the_previous_year():
    table = by_line(load(ROLLOVER, LoadOptions(reference_ns=ns("2025-06-01T00:00:00Z"))))
    assert table[1]["ts"] == ns("2024-12-31T23:59:58Z")
    assert table[3]["ts"] == ns("2025-01-01T00:00:01Z")


def test_month_one_step_back_is_not_a_rollover_and_feb_29_falls_back_a_year(tmp_path):
    path = write(
        tmp_path,
        f"Feb 29 10:00:00 h kernel: X-DROP: IN= OUT=eth0 {EGRESS}",
        f"Nov  1 00:00:01 h kernel: X-DROP: IN= OUT=eth0 {EGRESS}",
        f"Oct 31 23:59:59 h kernel: X-DROP: IN= OUT=eth0 {EGRESS}",
        f"Nov  1 00:00:02 h kernel: X-DROP: IN= OUT=eth0 {EGRESS}",
    )
    table = by_line(load(path, LoadOptions(reference_ns=ns("2025-03-01T00:00:00Z"))))
    assert table[1]["ts"] == ns("2024-02-29T10:00:00Z")  # 2025 has no Feb 29
    assert [table[n]["ts"] for n in (2, 3, 4)] == [
        ns("2024-11-01T00:00:01Z"),
        ns("2024-10-31T23:59:59Z"),
        ns("2024-11-01T00:00:02Z"),
    ]


@pytest.mark.parametrize("key", ["iptables", "*"])
def test_zone_option_reads_naive_syslog_times_in_that_zone(key):
    options = LoadOptions(reference_ns=REF, zones={key: ZoneInfo("Asia/Shanghai")})
    row = by_line(load(ROLLOVER, options))[1]
    assert row["ts"] == ns("2025-12-31T15:59:58Z")
    assert row["ts_note"] == (
        "no year: assumed 2025 (from --reference-date); no zone: assumed Asia/Shanghai"
    )


def test_zone_for_another_format_is_ignored():
    options = LoadOptions(reference_ns=REF, zones={"cef": ZoneInfo("Asia/Shanghai")})
    assert by_line(load(ROLLOVER, options))[1]["ts"] == ns("2025-12-31T23:59:58Z")


# --- stamps with a year: RFC 5424, ISO, dmesg -T ------------------------------------------------


def test_stamps_with_year_and_zone_are_exact():
    result = load(STAMPS)
    table = by_line(result)
    assert result.stats.skipped == {"not a netfilter LOG line": 1}  # sshd via RFC 5424
    assert result.rejects == []
    expected = {
        1: (ns("2025-12-02T06:11:19.123456Z"), None),  # RFC 5424, +08:00
        3: (ns("2025-12-02T06:11:21Z"), None),  # ISO with Z and no version digit
        4: (ns("2025-12-02T06:11:22.5Z"), None),  # journalctl short-iso, +0800
        5: (ns("2025-12-02T06:11:23Z"), UTC_NOTE),  # ISO without offset
        6: (ns("2025-12-02T06:11:24Z"), None),  # RFC 5424 with structured data
        7: (ns("2025-12-02T06:11:25Z"), UTC_NOTE),  # RFC 3164 with a year
        8: (
            ns("2025-12-02T06:11:26Z"),
            f"{UTC_NOTE}; dmesg -T time (local time of the reading host)",
        ),
    }
    assert {n: (r["ts"], r["ts_note"]) for n, r in table.items()} == expected
    assert {r["host_hint"] for n, r in table.items() if n != 8} == {"host=sbx-node-4 OUT=ens5"}
    assert table[8]["observer"] == "netfilter"
    assert table[6]["src_port"] == 40004  # SD with a quoted "]" did not swallow the message


def test_naive_iso_stamp_honours_the_zone_option():
    options = LoadOptions(zones={"iptables": ZoneInfo("Asia/Shanghai")})
    table = by_line(load(STAMPS, options))
    assert table[5]["ts"] == ns("2025-12-01T22:11:23Z")
    assert table[1]["ts"] == ns("2025-12-02T06:11:19.123456Z")  # has an offset: unchanged


# --- journald -------------------------------------------------------------------------------------


def test_journald_export_rows_rejects_and_skips():
    result = load(JOURNAL)
    table = by_line(result)
    assert sorted(table) == [1, 3, 4, 8]
    assert result.stats.skipped == {"not a netfilter LOG line": 1}
    got = rejects(result)
    assert sorted(got) == [5, 6, 7]
    assert "MESSAGE is missing or null" in got[5]
    assert "__REALTIME_TIMESTAMP: not an epoch time: 'soon'" in got[6]
    assert "not valid JSON" in got[7]
    assert table[1]["ts"] == 1_764_655_879_123_456_000  # microseconds, exactly
    assert table[1]["observer"] == "netfilter@sbx-node-5"
    assert table[1]["host_hint"] == "host=sbx-node-5 OUT=eth0"
    assert table[3]["ts"] == 1_764_655_881_000_001_000  # _SOURCE_REALTIME_TIMESTAMP wins
    assert table[4]["action_raw"] == "SBX-\ufffd-DROP"  # MESSAGE as a byte array, invalid UTF-8
    assert table[4]["action"] == "denied"
    assert table[8]["ts"] == ns("2025-12-02T06:11:25Z")
    assert table[8]["ts_note"] == "epoch unit s by magnitude (format documents us)"


# --- Proxmox and the crowdsec samples -------------------------------------------------------------


def test_proxmox_vm_out_chain_row_is_exact():
    row = by_line(load(PROXMOX))[7]
    assert row == {
        "event_id": None,
        "ts": ns("2022-06-20T11:15:19Z"),  # 13:15:19 +0200
        "ts_end": None,
        "src_ip": "10.3.95.200",
        "src_port": 51348,
        "src_nat_ip": None,
        "dst_ip": "10.3.95.10",
        "dst_port": 22,
        "protocol": "tcp",
        "direction": "outbound",  # chain tap101i0-OUT: leaving VM 101
        "action": "denied",
        "action_raw": "REJECT",
        "rule": "tap101i0-OUT",
        "signature": None,
        "category": None,
        "dst_domain": None,
        "app": None,
        "bytes_out": 60,
        "bytes_in": None,
        "packets_out": 1,
        "packets_in": None,
        "observer": "pve-firewall",
        "host_hint": "vmid=101 IN=fwbr101i0 OUT=fwbr101i0 PHYSIN=tap101i0 PHYSOUT=fwln101i0",
        "flow_key": None,
        "ts_note": None,
        "source_format": "iptables",
        "source_path": "crowdsec_proxmox_iptables.log",
        "source_line": 7,
    }


def test_proxmox_verdicts_directions_and_optional_in_out():
    table = by_line(load(PROXMOX))
    assert len(table) == 10
    assert {n: (r["action"], r["action_raw"]) for n, r in table.items()} == {
        1: ("denied", "policy DROP"),
        2: ("allowed", "ACCEPT"),
        3: ("denied", "REJECT"),
        4: ("denied", "REJECT"),
        5: ("allowed", "ACCEPT"),
        6: ("denied", "PVEFW-reject"),
        7: ("denied", "REJECT"),
        8: ("denied", "REJECT"),
        9: ("unknown", None),  # no action word in the prefix
        10: ("denied", "DROP"),
    }
    assert table[8]["direction"] == "outbound"  # PVEFW-HOST-OUT, only OUT= logged
    assert table[8]["host_hint"] == "vmid=0 OUT=vmbr0.94"
    assert table[1]["direction"] == "inbound"  # PVEFW-HOST-IN
    assert table[6]["src_ip"] == "2a0a:1580::a"


def test_crowdsec_iptables_sample():
    result = load(CROWDSEC)
    table = by_line(result)
    assert rejects(result) == {3: "netfilter fields (SRC=, DST=) without the IN=/OUT= pair"}
    assert table[1]["ts"] == ns("2025-06-08T14:34:33Z")
    assert (table[1]["direction"], table[1]["action"], table[1]["bytes_in"]) == (
        "inbound",
        "unknown",
        40,
    )
    assert table[2]["host_hint"] == "host=sd-126005 IN=enp.1s0"  # a dotted name is valid
    assert (table[4]["direction"], table[4]["action_raw"], table[4]["bytes_out"]) == (
        "internal",  # IN=lo
        "IPTABLES-DROP",
        76,  # the IP LEN, not the later UDP LEN=56
    )


def test_crowdsec_scan_sample_reads_every_line():
    result = load(SCAN)
    assert (result.stats.read, result.stats.loaded) == (49, 49)
    actions = Counter((r["observer"], r["action_raw"], r["action"]) for r in rows(result.table))
    assert actions == {
        ("netfilter@scw-d95986", None, "unknown"): 17,  # no prefix at all
        ("netfilter@vm-1", "[UFW BLOCK]", "denied"): 16,
        ("netfilter@vm-1", "[UFW AUDIT]", "unknown"): 16,
    }


# --- malformed lines ------------------------------------------------------------------------------


def test_damaged_fields_rejects_exactly_the_bad_lines():
    result = load(DAMAGED, LoadOptions(reference_ns=ns("2025-12-02T12:00:00Z")))
    expected = {
        1: "SRC is not an IP address: '192.168.10.300'",
        2: "DST is missing",
        3: "DPT out of range: 70000",
        4: "LEN is not an integer: 'sixty'",
        5: "without the IN=/OUT= pair",
        6: "not a valid date: month 2 day 30",
        7: "kernel uptime stamp only, no wall-clock time",
        8: "netfilter LOG line without a syslog header",
        10: "not a syslog, journald or pve-firewall line",
    }
    got = rejects(result)
    assert sorted(got) == sorted(expected)
    for line, fragment in expected.items():
        assert fragment in got[line], (line, got[line])
    assert result.stats.skipped == {
        "blank line": 1,
        "netfilter LOG line without SRC=/DST= (not an IP packet)": 1,
    }
    table = by_line(result)
    assert sorted(table) == [12]
    assert table[12]["ts"] == ns("2025-12-02T06:11:31Z")  # the Feb 30 line moved no year


def test_rejects_keep_the_raw_line_and_the_path_as_given():
    lines = DAMAGED.read_text().splitlines()
    for reject in load(DAMAGED, shown="logs/kern.log").rejects:
        assert reject.location.path == "logs/kern.log"
        assert reject.raw == lines[reject.location.line - 1]


# --- options --------------------------------------------------------------------------------------


def test_prefix_map_option_replaces_the_default_map():
    table = by_line(load(ROLLOVER, with_options(prefix_map="-D]=denied, egress-drop=alerted")))
    assert table[3]["action"] == "denied"  # [sbx-fwd-D]
    assert table[1]["action"] == "alerted"  # case-insensitive substring
    assert table[4]["action"] == "unknown"  # ACCEPT is no longer in the map


@pytest.mark.parametrize("bad", ["DROP", "DROP=blocked", "=denied", " , "])
def test_invalid_prefix_map_is_an_option_error(bad):
    with pytest.raises(OptionError, match=r"iptables\.prefix_map"):
        load(ROLLOVER, with_options(prefix_map=bad))


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ("IN=docker0 OUT=eth0", "outbound"),
        ("IN=eth0 OUT=docker0", "inbound"),
        ("IN=docker0 OUT=br-1a2b", "internal"),
        ("IN=eth0 OUT=eth1", "unknown"),
        ("IN=br0 OUT=br0 PHYSIN=veth9 PHYSOUT=eth1", "outbound"),
        ("IN=br0 OUT=br0 PHYSIN=eth1 PHYSOUT=veth9", "inbound"),
    ],
)
def test_inside_interfaces_classify_forwarded_packets(tmp_path, fields, expected):
    path = write(tmp_path, f"Dec  2 06:11:19 h kernel: FWD-DROP: {fields} {EGRESS}")
    options = with_options(inside_interfaces="docker0, br-*,veth*")
    assert rows(load(path, options).table)[0]["direction"] == expected
    assert rows(load(path).table)[0]["direction"] == "unknown"


@pytest.mark.parametrize(
    ("line", "prefix", "host"),
    [
        (f"Dec  2 06:11:19 h IPTABLES-DROP: IN= OUT=eth0 {EGRESS}", "IPTABLES-DROP", "h"),
        (f"Dec  2 06:11:19 h ulogd[9]: FW-DROP: IN= OUT=eth0 {EGRESS}", "FW-DROP", "h"),
        (f"Dec  2 06:11:19 h kernel: IN= OUT=eth0 {EGRESS}", None, "h"),
        (f"Jan  8 03:37:09 DENY: IN= OUT=eth0 {EGRESS}", "DENY", None),
    ],
    ids=["ulogd-no-tag", "other-tag", "no-prefix", "no-host"],
)
def test_prefix_and_host_around_the_tag(tmp_path, line, prefix, host):
    row = rows(load(write(tmp_path, line)).table)[0]
    assert row["action_raw"] == prefix
    assert row["observer"] == (f"netfilter@{host}" if host else "netfilter")


# --- accounting, strict mode, compression -----------------------------------------------------------


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_every_line_is_loaded_rejected_or_skipped(path):
    result = load(path)
    stats = result.stats
    assert stats.read == len(path.read_bytes().splitlines())
    assert stats.read == stats.loaded + stats.rejected + sum(stats.skipped.values())
    assert stats.balanced
    assert stats.loaded == result.table.num_rows
    assert stats.rejected == len(result.rejects)
    assert (stats.unit, result.kind, result.hosts) == ("lines", "network", None)


@pytest.mark.parametrize(("path", "line"), [(DAMAGED, 1), (JOURNAL, 5), (CROWDSEC, 3)])
def test_strict_stops_at_the_first_rejected_line(path, line):
    with pytest.raises(StrictRejection, match=rf"^{path.name}:{line}: "):
        load(path, LoadOptions(reference_ns=REF, strict=True))


# --- sniffing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_own_files_sniff_high(path):
    assert loader.sniff(Source(path, path.name).head(), path.name) >= 0.75


@pytest.mark.parametrize("path", sorted(EXTRA.iterdir()), ids=lambda p: p.name)
def test_near_misses_do_not_sniff(path):
    source = Source(path, path.name)
    assert loader.sniff(source.head(), source.name) == 0.0


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"\xff\xfe\x00\x01\x02" * 100,
        b"{not json IN= OUT= SRC= DST=\n",
        b'{"MESSAGE": 5, "__REALTIME_TIMESTAMP": "1"}\n',
        b"IN=eth0 OUT=eth1\n",
        b"CEF:0|Example|FW|1.0|1|conn|3|src=192.168.10.13 dst=203.0.113.7 dpt=22\n",
    ],
    ids=["empty", "binary", "broken-json", "json-non-text", "no-addresses", "cef"],
)
def test_sniff_never_raises_and_refuses_odd_heads(head):
    assert loader.sniff(head, "x.log") < MIN_SCORE
