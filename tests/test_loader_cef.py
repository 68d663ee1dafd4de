"""CEF loader: header/extension parsing with escapes, vendor verdicts (Fortinet, Palo Alto, Check
Point, UniFi), CEF time formats and zones, malformed lines, options, accounting, strict mode,
compressed copies and near-miss sniffing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from loader_helpers import ns, rows

from correlate.errors import OptionError, StrictRejection
from correlate.loaders import MIN_SCORE, LoadOptions, LoadResult, detect
from correlate.loaders import cef as loader
from correlate.sources import Source

DATA = Path(__file__).resolve().parent / "data"
FOLDER = DATA / "cef"
EXTRA = DATA / "cef_extra"
VENDORS = FOLDER / "vendor_traffic.log"
ZONES = FOLDER / "escapes_and_zones.log"
BAD = FOLDER / "bad_records.log"
UNIFI = FOLDER / "crowdsec_unifi_cef_logs.log"
CROWDSEC = FOLDER / "crowdsec_cef_logs.log"
FIXTURES = [VENDORS, ZONES, BAD, UNIFI, CROWDSEC]


REF = ns("2025-12-02T12:00:00Z")
OPTIONS = LoadOptions(reference_ns=REF)
UTC_NOTE = "no zone: assumed UTC"


def by_line(result: LoadResult) -> dict[int, dict[str, Any]]:
    return {row["source_line"]: row for row in rows(result.table)}


def load(path: Path, options: LoadOptions = OPTIONS, shown: str | None = None) -> LoadResult:
    source = Source(path, shown or path.name)
    detection = detect(source)
    assert detection.name == "cef"
    return detection.loader.read(source, options)


def with_options(**format_options: str) -> LoadOptions:
    return LoadOptions(reference_ns=REF, format_options={"cef": format_options})


def rejects(result: LoadResult) -> dict[int, str]:
    return {r.location.line: r.reason for r in result.rejects}


# --- parsing ----------------------------------------------------------------------------------------


def test_header_and_extension_escapes():
    record = loader.parse_cef(ZONES.read_text().splitlines()[0].removeprefix("CEF:0|"))
    assert (record.vendor, record.product, record.event_name, record.severity) == (
        "Example",
        "Edge|Gateway",
        "Blocked a\\b | c",
        "5",
    )
    assert record.extension == {
        "rt": "1764655885000",
        "src": "192.168.10.13",
        "dst": "198.51.100.1",
        "dpt": "80",
        "act": "deny",
        "msg": "line one\nline two with = sign and \\ backslash",
        "cs1Label": "Rule",
        "cs1": "r=1",
    }


def test_values_with_spaces_and_empty_values_end_at_the_next_key():
    ext = loader.parse_extension(
        r"suser= duser= cs4Label=Source Zone cs4=sandbox msg=a b: c product=VPN-1 & FireWall-1"
    )
    assert ext == {
        "suser": "",
        "duser": "",
        "cs4Label": "Source Zone",
        "cs4": "sandbox",
        "msg": "a b: c",
        "product": "VPN-1 & FireWall-1",
    }


@pytest.mark.parametrize(
    ("word", "action"),
    [
        ("Accept", "allowed"),  # Check Point
        ("Drop", "denied"),
        ("Reject", "denied"),
        ("Bypass", "allowed"),
        ("Prevent", "denied"),
        ("Detect", "alerted"),
        ("allow", "allowed"),  # PAN-OS
        ("deny", "denied"),
        ("drop", "denied"),
        ("reset-both", "denied"),
        ("block-url", "denied"),
        ("close", "allowed"),  # FortiOS: allowed, then closed
        ("server-rst", "allowed"),
        ("timeout", "allowed"),
        ("blocked", "denied"),  # generic
        ("permit", "allowed"),
        ("alert", "alerted"),
        ("monitor", None),
        ("success", None),
    ],
)
def test_vendor_action_words(word, action):
    assert loader.map_action(word, {}) == action


# --- golden rows ----------------------------------------------------------------------------------


def test_fortinet_traffic_row_is_exact():
    row = by_line(load(VENDORS))[1]
    assert row == {
        "event_id": None,
        "ts": 1_764_655_879_512_345_678,  # FTNTFGTeventtime in ns (FortiOS >= 6.2)
        "ts_end": None,
        "src_ip": "192.168.10.13",
        "src_port": 40951,
        "src_nat_ip": "203.0.113.200",  # sourceTranslatedAddress
        "dst_ip": "198.51.100.80",
        "dst_port": 443,
        "protocol": "tcp",
        "direction": "unknown",
        "action": "allowed",
        "action_raw": "close",
        "rule": "7",
        "signature": "traffic:forward close",
        "category": "traffic:forward",
        "dst_domain": None,
        "app": "HTTPS",
        "bytes_out": 3652,  # out = sentbyte
        "bytes_in": 146668,
        "packets_out": 58,
        "packets_in": 105,
        "observer": "Fortinet Fortigate@FGT-EDGE-1",
        "host_hint": None,
        "flow_key": None,
        "ts_note": None,
        "source_format": "cef",
        "source_path": "vendor_traffic.log",
        "source_line": 1,
    }


def test_check_point_drop_row_is_exact():
    row = by_line(load(VENDORS))[4]
    assert row == {
        "event_id": None,
        "ts": 1_764_655_882_250_000_000,  # rt in ms
        "ts_end": None,
        "src_ip": "192.168.10.17",
        "src_port": 40953,
        "src_nat_ip": "203.0.113.201",
        "dst_ip": "198.51.100.90",
        "dst_port": 3333,
        "protocol": "tcp",
        "direction": "unknown",  # deviceDirection=0 ("inbound") is not trusted
        "action": "denied",
        "action_raw": "Drop",
        "rule": "Block mining pools",  # cs2Label=Rule Name
        "signature": "Drop",
        "category": None,
        "dst_domain": None,
        "app": None,
        "bytes_out": None,
        "bytes_in": None,
        "packets_out": None,
        "packets_in": None,
        "observer": "Check Point VPN-1 & FireWall-1",
        "host_hint": None,
        "flow_key": None,
        "ts_note": None,
        "source_format": "cef",
        "source_path": "vendor_traffic.log",
        "source_line": 4,
    }


def test_other_vendor_rows():
    table = by_line(load(VENDORS))
    web = table[2]  # FortiOS 6.0 webfilter: "CEF:0", seconds in FTNTFGTeventtime
    assert (web["ts"], web["ts_note"]) == (
        ns("2025-12-02T06:11:20Z"),
        "epoch unit s by magnitude (format documents ns)",
    )
    assert (web["action"], web["dst_domain"], web["bytes_out"], web["rule"]) == (
        "denied",
        "pool.minerxmr.example",  # dhost lower-cased, trailing dot dropped
        96,
        "9",
    )
    pan = table[3]  # RFC 5424 header, start before rt, dtz=UTC
    assert (pan["ts"], pan["ts_note"]) == (ns("2025-12-02T06:11:20Z"), None)
    assert (pan["action"], pan["rule"], pan["src_nat_ip"], pan["bytes_out"]) == (
        "denied",
        "deny-sandbox-ssh",
        None,  # 0.0.0.0 means no translation
        74,
    )
    assert pan["observer"] == "Palo Alto Networks PAN-OS@pa-fw-01"
    proxy = table[5]
    assert (proxy["ts"], proxy["action_raw"], proxy["action"]) == (
        ns("2025-12-02T06:11:23.5Z"),
        "blocked",  # from outcome
        "denied",
    )
    assert (proxy["dst_domain"], proxy["host_hint"]) == (
        "repo.mirror.example",  # host of the request URL
        "sbx-04.sandbox.internal",  # shost
    )
    ids = table[6]
    assert (ids["action"], ids["observer"], ids["category"]) == (
        "alerted",
        "Example NIDS@nids-01",
        "Potentially Bad Traffic",
    )


def test_unifi_sample():
    result = load(UNIFI)
    assert rejects(result) == {2: "CEF header without its 'CEF:' marker (truncated line?)"}
    assert result.stats.skipped == {
        "CEF event without a destination (no dst, dpt, dhost or request)": 1  # admin login
    }
    row = by_line(result)[3]
    assert row["ts"] == ns("2025-10-26T19:01:31.807Z")  # UNIFIutcTime, not the local header
    assert (row["src_ip"], row["dst_ip"], row["dst_port"], row["protocol"]) == (
        "198.51.100.10",
        None,
        80,
        "tcp",
    )
    assert (row["action"], row["action_raw"], row["rule"]) == (
        "denied",
        "blocked",
        "DShield Block List",
    )
    assert row["signature"] == "ET DROP Dshield Block Listed Source group 1"
    assert row["observer"] == "Ubiquiti UniFi Network@Express-7"


def test_crowdsec_cef_sample_uses_the_name_when_there_is_no_act():
    result = load(CROWDSEC)
    assert rejects(result) == {3: "CEF header without its 'CEF:' marker (truncated line?)"}
    assert result.stats.skipped == {
        "CEF event without a destination (no dst, dpt, dhost or request)": 2
    }
    row = by_line(result)[4]  # "CEF: 0" after an RFC 3164 header
    assert (row["action"], row["action_raw"]) == ("denied", "Threat Detected and Blocked")
    assert row["ts"] == ns("2025-09-08T06:32:20.613Z")


# --- times and zones ----------------------------------------------------------------------------


def test_cef_time_formats_and_zones():
    result = load(ZONES)
    table = by_line(result)
    assert result.rejects == []
    no_year = f"no year: assumed 2025 (from --reference-date); {UTC_NOTE}"
    expected = {
        1: (ns("2025-12-02T06:11:25Z"), None),  # rt in ms
        2: (ns("2025-12-02T06:11:26Z"), no_year),  # MMM dd HH:mm:ss
        3: (ns("2025-12-02T06:11:27Z"), None),  # PST
        4: (ns("2025-12-02T06:11:28Z"), None),  # IANA name
        5: (ns("2025-12-02T06:11:29.125Z"), None),  # GMT+08:00 with millis, one-digit day
        6: (ns("2025-12-02T06:11:30Z"), None),  # dtz=Asia/Shanghai
        7: (ns("2025-12-02T06:11:31Z"), UTC_NOTE),  # naive
        8: (ns("2025-12-02T06:11:32.5Z"), None),  # ISO
        9: (ns("2025-12-02T06:11:33Z"), "epoch unit s by magnitude (format documents ms)"),
        10: (ns("2025-12-02T06:11:34Z"), "end before start: end ignored"),
        11: (ns("2025-12-02T06:11:35Z"), None),
        12: (ns("2025-12-02T06:11:36Z"), "time from the syslog header"),
        13: (ns("2025-12-02T06:11:37Z"), f"time from the syslog header; {no_year}"),
        14: (ns("2025-12-02T06:11:38Z"), None),
    }
    assert {n: (r["ts"], r["ts_note"]) for n, r in table.items()} == expected
    assert table[11]["ts_end"] == ns("2025-12-02T06:11:45Z")
    assert table[10]["ts_end"] is None
    assert table[12]["observer"] == "Example FW@fw-relay"
    assert table[1]["rule"] == "r=1"


def test_zone_option_applies_only_to_zone_less_times():
    table = by_line(
        load(ZONES, LoadOptions(reference_ns=REF, zones={"cef": ZoneInfo("Asia/Tokyo")}))
    )
    assert table[7]["ts"] == ns("2025-12-01T21:11:31Z")
    assert table[7]["ts_note"] == "no zone: assumed Asia/Tokyo"
    assert table[3]["ts"] == ns("2025-12-02T06:11:27Z")  # PST
    assert table[6]["ts"] == ns("2025-12-02T06:11:30Z")  # dtz


# --- malformed lines ------------------------------------------------------------------------------


def test_bad_records_rejects_exactly_the_bad_lines():
    result = load(BAD)
    expected = {
        1: "CEF header has 4 of the 6 '|'-separated fields",
        2: "CEF header without its 'CEF:' marker",
        3: "src is not an IP address: '192.168.10.999'",
        4: "dpt out of range: 70000",
        5: "rt: not an ISO 8601 time: 'yesterday'",
        6: "rt: ambiguous time zone 'CST'",
        7: "dtz: unknown time zone 'Mars/Olympus_Mons'",
        8: "no time",
        12: "not a CEF line",
        13: "in out of range: -5",
    }
    got = rejects(result)
    assert sorted(got) == sorted(expected)
    for line, fragment in expected.items():
        assert fragment in got[line], (line, got[line])
    assert result.stats.skipped == {
        "syslog line without CEF": 1,
        "CEF event without a destination (no dst, dpt, dhost or request)": 1,
        "blank line": 1,
    }
    table = by_line(result)
    assert sorted(table) == [14, 15]
    assert (table[15]["action"], table[15]["action_raw"]) == ("unknown", "quarantine")


def test_rejects_keep_the_raw_line_and_the_path_as_given():
    lines = BAD.read_text().splitlines()
    for reject in load(BAD, shown="relay/cef.log").rejects:
        assert reject.location.path == "relay/cef.log"
        assert reject.raw == lines[reject.location.line - 1]


# --- options --------------------------------------------------------------------------------------


def test_trusting_device_direction_shows_why_it_is_off_by_default():
    table = by_line(load(VENDORS, with_options(device_direction="trust")))
    assert table[4]["direction"] == "inbound"  # Check Point: Internal -> External said "0"
    assert table[2]["direction"] == "outbound"  # FortiOS webfilter deviceDirection=1
    assert table[1]["direction"] == "unknown"  # no deviceDirection


def test_byte_direction_spec_swaps_in_and_out():
    plain = by_line(load(ZONES))[14]
    spec = by_line(load(ZONES, with_options(byte_direction="spec")))[14]
    assert (plain["bytes_out"], plain["bytes_in"]) == (120, 60)
    assert (spec["bytes_out"], spec["bytes_in"]) == (60, 120)


def test_action_map_adds_exact_values_first():
    table = by_line(load(BAD, with_options(action_map="Quarantine=denied,drop=alerted")))
    assert (table[15]["action"], table[14]["action"]) == ("denied", "alerted")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("device_direction", "sometimes"),
        ("byte_direction", "both"),
        ("action_map", "quarantine"),
        ("action_map", "quarantine=jailed"),
    ],
)
def test_invalid_options_are_option_errors(key, value):
    with pytest.raises(OptionError, match=re.escape(f"cef.{key}")):
        load(VENDORS, with_options(**{key: value}))


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


@pytest.mark.parametrize(("path", "line"), [(BAD, 1), (UNIFI, 2)])
def test_strict_stops_at_the_first_rejected_line(path, line):
    with pytest.raises(StrictRejection, match=rf"^{path.name}:{line}: "):
        load(path, LoadOptions(reference_ns=REF, strict=True))


# --- sniffing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_own_files_sniff_high(path):
    assert loader.sniff(Source(path, path.name).head(), path.name) >= 0.8


@pytest.mark.parametrize("path", sorted(EXTRA.iterdir()), ids=lambda p: p.name)
def test_near_misses_do_not_sniff(path):
    source = Source(path, path.name)
    assert loader.sniff(source.head(), source.name) == 0.0


@pytest.mark.parametrize(
    "head",
    [b"", b"\xff\xfe\x00\x01CEF:" * 50, b"CEF:x|a|b|c|d|e|f|g\n", b"[CEF:0|a|b|c|d|e|f|g]\n"],
    ids=["empty", "binary", "bad-version", "json-array"],
)
def test_sniff_never_raises_and_refuses_odd_heads(head):
    assert loader.sniff(head, "x.log") < MIN_SCORE
