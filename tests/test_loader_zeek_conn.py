"""zeek_conn: golden rows from real zat/zeek-docs samples, header-block traps, rejects, options."""

from __future__ import annotations

import itertools
import re
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
from loader_helpers import ns, rows

from correlate.errors import OptionError, StrictRejection
from correlate.loaders import REGISTRY, LoadOptions, LoadResult, detect
from correlate.pipeline import RunOptions, load_inputs
from correlate.sources import Source

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data" / "zeek_conn"
ZAT = DATA / "zat_conn.log"
ZAT_NO_CLOSE = DATA / "zat_no_close_tab_after_separator.log"
ZAT_JSON = DATA / "zat_conn.json.log"
DOCS_JSON = DATA / "zeek_docs_conn_example.json.log"
ROTATED = DATA / "rotated_concatenated_blocks.log"
MALFORMED = DATA / "malformed_rows.log"
JSON_TRAPS = DATA / "json_timestamps_and_traps.json.log"
ZAT_DNS = TESTS / "data" / "zeek_dns" / "zat_dns.log"
SAMPLES = sorted(p for p in DATA.glob("*.log"))

loader = REGISTRY["zeek_conn"]


def display(path: Path) -> str:
    try:
        return str(path.relative_to(TESTS.parent))
    except ValueError:
        return path.name


def load(path: Path, options: LoadOptions | None = None, shown: str | None = None) -> LoadResult:
    source = Source(path, shown or display(path))
    detection = detect(source)
    assert detection.name == "zeek_conn"
    return detection.loader.read(source, options or LoadOptions())


def by_line(table: pa.Table) -> dict[int, dict[str, Any]]:
    return {row["source_line"]: row for row in rows(table)}


def reject_map(result: LoadResult) -> dict[int, str]:
    return {r.location.line: r.reason for r in result.rejects}


def unanswered(value: str) -> LoadOptions:
    return LoadOptions(format_options={"zeek_conn": {"unanswered": value}})


# --- golden rows --------------------------------------------------------------------------------


def test_zat_tsv_first_record_in_full():
    result = load(ZAT)
    assert result.kind == "network"
    assert by_line(result.table)[9] == {
        "event_id": None,
        "ts": 1_379_288_667_706_265_000,
        "ts_end": 1_379_288_667_706_265_000 + 447_460_000,
        "src_ip": "192.168.33.10",
        "src_port": 1032,
        "src_nat_ip": None,
        "dst_ip": "54.245.228.191",
        "dst_port": 80,
        "protocol": "tcp",
        "direction": "unknown",  # no local_resp column in this old field set
        "action": "unknown",
        "action_raw": "RSTO",
        "rule": None,
        "signature": None,
        "category": None,
        "dst_domain": None,
        "app": "http",
        "bytes_out": 601,
        "bytes_in": 38393,
        "packets_out": 22,
        "packets_in": 31,
        "observer": "zeek",
        "host_hint": None,
        "flow_key": "zeek:CoyZrY2g74UvMMgp4a",
        "ts_note": None,
        "source_format": "zeek_conn",
        "source_path": "tests/data/zeek_conn/zat_conn.log",
        "source_line": 9,
    }


def test_zat_tsv_counts_header_lines_and_keeps_file_order():
    result = load(ZAT)
    assert (result.stats.read, result.stats.loaded, result.stats.rejected) == (369, 360, 0)
    assert result.stats.skipped == {"Zeek header line": 9}  # 8 header lines and #close
    assert result.stats.unit == "connections"
    lines = [r["source_line"] for r in rows(result.table)]
    assert lines == sorted(lines)
    ts = [r["ts"] for r in rows(result.table)]
    assert sum(1 for a, b in itertools.pairwise(ts) if b < a) == 89  # not time-sorted


def test_zat_icmp_keeps_no_ports_and_unset_counters_are_null():
    row = by_line(load(ZAT).table)[368]
    assert (row["protocol"], row["src_port"], row["dst_port"]) == ("icmp", None, None)
    assert (row["ts_end"], row["bytes_out"], row["packets_out"]) == (None, None, 1)
    assert row["action_raw"] == "OTH"


def test_tab_after_separator_and_missing_close_trailer():
    result = load(ZAT_NO_CLOSE)
    assert result.stats.skipped == {"Zeek header line": 8}
    table = by_line(result.table)
    assert sorted(table) == [9, 10, 11]
    assert (table[9]["action_raw"], table[9]["app"], table[9]["ts_end"]) == ("SH", None, None)
    assert table[11]["ts_end"] - table[11]["ts"] == 1_235_504_000


def test_zat_json_float_duration_is_added_exactly():
    row = by_line(load(ZAT_JSON).table)[1]
    assert row["ts"] == 1_575_413_096_052_279_000
    assert row["ts_end"] == row["ts"] + int(Decimal("0.0012309551239013672") * 10**9)
    assert (row["src_ip"], row["dst_port"], row["app"], row["action_raw"]) == (
        "10.18.20.97",
        88,
        "krb_tcp",
        "RSTR",
    )
    assert row["flow_key"] == "zeek:CH53301MTU21BMj2Bj"


def test_zeek_docs_json_example():
    table = by_line(load(DOCS_JSON).table)
    row = table[2]
    assert (row["ts"], row["src_ip"], row["dst_ip"], row["dst_port"]) == (
        1_591_367_999_430_166_000,
        "192.168.4.76",
        "31.3.245.133",
        80,
    )
    assert (row["bytes_out"], row["bytes_in"], row["packets_out"], row["packets_in"]) == (
        77,
        295,
        6,
        4,
    )
    assert table[1]["app"] == "dns"


# --- header blocks and direction ----------------------------------------------------------------


def test_rotated_blocks_are_read_by_their_own_fields():
    result = load(ROTATED)
    table = by_line(result.table)
    assert sorted(table) == [9, 19, 20, 21, 22, 23, 24, 25, 26, 27]
    old = table[9]  # first block: ts is the first column
    assert (old["flow_key"], old["ts"]) == ("zeek:CAoldBlock0000001", 1_764_654_000_123_456_000)
    assert old["ts_end"] == 1_764_654_120_623_456_000
    miner = table[19]  # second block: uid first, then ts
    assert (miner["flow_key"], miner["ts"], miner["ts_end"]) == (
        "zeek:CMinerOutbound001",
        ns("2025-12-02T06:12:01.000001Z"),
        ns("2025-12-02T07:12:01.000002Z"),
    )
    assert result.stats.skipped == {"Zeek header line": 27, "Zeek dns record (not conn)": 1}


@pytest.mark.parametrize(
    ("line", "direction"),
    [(9, "unknown"), (19, "outbound"), (20, "inbound"), (21, "internal"), (22, "unknown")],
)
def test_direction_from_local_orig_and_local_resp(line, direction):
    assert by_line(load(ROTATED).table)[line]["direction"] == direction


def test_ipv6_addresses_are_canonical():
    row = by_line(load(ROTATED).table)[27]
    assert (row["src_ip"], row["dst_ip"], row["app"]) == (
        "2001:db8:10::13",
        "2606:4700::1111",
        "ssl",
    )


def test_every_connection_is_unknown_by_default():
    table = rows(load(ROTATED).table)
    assert {r["action"] for r in table} == {"unknown"}
    assert by_line(load(ROTATED).table)[23]["action_raw"] == "S0"


def test_unanswered_tcp_attempts_become_denied_when_asked():
    table = by_line(load(ROTATED, unanswered("denied")).table)
    assert {line: r["action"] for line, r in table.items() if r["action"] != "unknown"} == {
        23: "denied",  # tcp S0
        24: "denied",  # tcp REJ
    }
    assert (table[25]["protocol"], table[25]["action"]) == ("udp", "unknown")  # udp S0 is normal


def test_unanswered_option_rejects_an_unknown_value():
    with pytest.raises(
        OptionError, match=r"zeek_conn\.unanswered=blocked: use one of unknown, denied"
    ):
        load(ROTATED, unanswered("blocked"))


# --- malformed rows -----------------------------------------------------------------------------


def test_malformed_tsv_rejects_exactly_the_bad_lines():
    result = load(MALFORMED)
    assert reject_map(result) == {
        10: "3 fields where #fields has 22",
        11: "ts is missing",
        12: "id.resp_h is not an IP address: '10.0.0.300'",
        13: "id.orig_p out of range: 70000",
        14: "ts: not an ISO 8601 time: 'yesterday'",
        16: "local_orig is not a bool (T or F): 'X'",
        20: "uid is missing",
        21: "orig_bytes out of range: -5",
        22: "duration is not a number: 'long'",
        23: "#types has 2 entries where there are 22 #fields",
    }
    assert result.rejects[0].raw == "CTooFew0000000010\t1764655961.000000\t192.168.10.14"
    assert result.stats.skipped == {"Zeek header line": 9, "blank line": 1, "comment line": 1}
    assert sorted(by_line(result.table)) == [9, 17, 18]


def test_malformed_tsv_negative_duration_and_millisecond_ts_load_with_notes():
    table = by_line(load(MALFORMED).table)
    assert (table[17]["ts_end"], table[17]["ts_note"]) == (None, "negative duration: end ignored")
    assert table[18]["ts"] == ns("2025-12-02T06:12:46.5Z")
    assert table[18]["ts_end"] == ns("2025-12-02T06:12:46.75Z")
    assert table[18]["ts_note"] == "epoch unit ms by magnitude (format documents s)"


def test_json_traps_rejects_and_skips():
    result = load(JSON_TRAPS)
    reasons = reject_map(result)
    assert sorted(reasons) == [2, 3, 4, 9, 11]
    assert reasons[2].startswith("not valid JSON")
    assert reasons[3] == "not a JSON object but a JSON list"
    assert reasons[4] == "id.orig_h is missing"
    assert reasons[9] == "ts: not an ISO 8601 time: 'soon'"
    assert reasons[11] == "local_orig is not a bool (T or F): 'yes'"
    assert result.stats.skipped == {"Zeek dns record (not conn)": 1, "blank line": 1}
    assert sorted(by_line(result.table)) == [1, 5, 6, 8]


def test_json_bools_iso_timestamps_and_nested_id():
    table = by_line(load(JSON_TRAPS).table)
    assert (table[1]["direction"], table[1]["ts_end"]) == (
        "outbound",
        ns("2025-12-02T06:12:50.75Z"),
    )
    assert (table[5]["ts"], table[5]["ts_note"]) == (ns("2025-12-02T06:06:13.123456Z"), None)
    assert (table[6]["ts"], table[6]["ts_note"]) == (
        ns("2025-12-02T06:06:14.5Z"),
        "no zone: assumed UTC",
    )
    assert (table[8]["src_ip"], table[8]["src_port"], table[8]["direction"]) == (
        "192.168.10.15",
        40601,
        "outbound",
    )


@pytest.mark.parametrize("key", ["zeek_conn", "*"])
def test_naive_iso_ts_honours_the_zone_option(key):
    result = load(JSON_TRAPS, LoadOptions(zones={key: ZoneInfo("Asia/Shanghai")}))
    row = by_line(result.table)[6]
    assert (row["ts"], row["ts_note"]) == (
        ns("2025-12-01T22:06:14.5Z"),
        "no zone: assumed Asia/Shanghai",
    )
    assert by_line(result.table)[1]["ts"] == 1_764_655_970_250_000_000  # epoch: zone-free


# --- accounting, strict mode, compression -------------------------------------------------------


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_every_line_is_loaded_rejected_or_skipped(path):
    result = load(path)
    stats = result.stats
    assert stats.read == stats.loaded + stats.rejected + stats.skipped_total
    assert stats.read == len(path.read_bytes().splitlines())
    assert stats.loaded == result.table.num_rows
    assert stats.rejected == len(result.rejects)


@pytest.mark.parametrize(("path", "line"), [(MALFORMED, 10), (JSON_TRAPS, 2)], ids=lambda v: str(v))
def test_strict_stops_at_the_first_rejected_line(path, line):
    with pytest.raises(StrictRejection, match=rf"^{re.escape(display(path))}:{line}: "):
        load(path, LoadOptions(strict=True))


# --- sniffing -----------------------------------------------------------------------------------

NEAR_MISSES = {
    "zeek_files_log.log": b"#separator \\x09\n#set_separator\t,\n#path\tfiles\n"
    b"#fields\tts\tfuid\ttx_hosts\trx_hosts\tconn_uids\n",
    "zeek_dns_json.log": b'{"ts":1.5,"uid":"Cx","id.orig_h":"10.0.0.1","id.resp_h":"10.0.0.2",'
    b'"query":"example.com","qtype_name":"A"}\n',
    "no_conn_fields.json": b'{"ts":1.5,"uid":"Cx","id.orig_h":"10.0.0.1","id.resp_h":"10.0.0.2"}\n',
    "fields_without_separator.tsv": b"#fields\tts\tuid\tid.orig_h\tid.resp_h\tconn_state\n1\tC\t1\t2\tS0\n",
    "eve.json": b'{"timestamp":"2025-12-02T06:00:00+0000","event_type":"flow","src_ip":"10.0.0.1",'
    b'"dest_ip":"10.0.0.2","flow_id":1}\n',
    "conn_state.csv": b"ts,uid,id.orig_h,id.resp_h,conn_state\n1,C,10.0.0.1,10.0.0.2,S0\n",
    "binary.bin": bytes(range(256)) * 4,
    "bad_json.log": b'{"ts": 1.5, "uid": \n',
}


@pytest.mark.parametrize("name", sorted(NEAR_MISSES))
def test_near_misses_do_not_sniff_as_zeek_conn(name):
    assert loader.sniff(NEAR_MISSES[name], name) == 0.0


def test_sniff_scores():
    assert loader.sniff(ZAT.read_bytes()[:65536], "conn.log") == 0.95
    assert loader.sniff(ZAT_JSON.read_bytes(), "conn.log") == 0.9
    assert loader.sniff(ZAT_DNS.read_bytes(), "dns.log") == 0.0


# --- with the pipeline: enrichment by uid -------------------------------------------------------


def test_dns_log_names_the_dns_connection_by_uid(tmp_path):
    shutil.copy(ZAT, tmp_path / "conn.log")
    shutil.copy(ZAT_DNS, tmp_path / "dns.log")
    loaded = load_inputs([str(tmp_path)], RunOptions())
    events = {r["flow_key"]: r for r in rows(loaded.events)}
    # Many queries share this UDP 5-tuple; the earliest names the connection.
    assert events["zeek:CZGShC2znK1sV7jdI7"]["dst_domain"] == "guyspy.com"
    assert events["zeek:CZGShC2znK1sV7jdI7"]["app"] == "dns"
    assert events["zeek:CoyZrY2g74UvMMgp4a"]["dst_domain"] is None  # an HTTP flow: no uid match
