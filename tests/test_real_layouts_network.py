"""Network logs as real deployments write them (issue #15): forced formats, Zeek variants,
EdgeOS/VyOS firewall prefixes, Suricata flow/netflow twins and engine-only files, and
IPv4-mapped IPv6 addresses. Each test failed before its fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from loader_helpers import display, rows

from correlate.errors import FormatMismatch
from correlate.loaders import REGISTRY, LoadOptions, detect
from correlate.pipeline import InputFile, RunOptions, load_file
from correlate.sources import Source

DATA = Path(__file__).resolve().parent / "data"
CONN_LONG = DATA / "zeek_conn_extra" / "zeek_cut_conn_long.log"


def source(path: Path, *, explicit: bool = True) -> Source:
    return Source(path, display(path), explicit=explicit)


def forced_load(path: Path, forced: str, *, explicit: bool = True):
    record = InputFile(path=display(path), format=None, kind=None, sha256="", size=0)
    result = load_file(source(path, explicit=explicit), forced, RunOptions(), record)
    return record, result


# --- 1. --format uses the loader even when its sniff scores 0 ----------------------------------


def test_a_zeek_cut_conn_long_log_sniffs_zero_but_loads_when_forced():
    conn_long = source(CONN_LONG)
    assert REGISTRY["zeek_conn"].sniff(conn_long.head(), conn_long.name) == 0.0
    record, result = forced_load(CONN_LONG, "zeek_conn")
    assert (record.format, record.forced, record.score) == ("zeek_conn", True, 0.0)
    assert result is not None and record.skipped_reason is None
    stats = result.stats
    assert (stats.read, stats.loaded, stats.rejected, stats.skipped_total) == (12, 4, 0, 8)
    assert stats.notes == {"Zeek #path conn_long read as conn (--format forced it)": 1}
    got = rows(result.table)
    assert [r["source_line"] for r in got] == [9, 10, 11, 12]
    assert {(r["src_ip"], r["dst_ip"], r["dst_port"]) for r in got} == {
        ("192.168.10.13", "203.0.113.7", 22),
        ("192.168.10.17", "141.94.96.144", 3333),
    }
    assert got[3]["flow_key"] == "zeek:CvVq3e2HJpZt1mN7Yb"
    assert got[3]["bytes_out"] == 262004 and got[3]["app"] == "ssh"


def test_a_forced_zeek_read_is_the_same_line_by_line():
    options = LoadOptions()
    fast = REGISTRY["zeek_conn"].read(source(CONN_LONG), options)
    slow = REGISTRY["zeek_conn"].read(source(CONN_LONG), options, fast=False)
    assert fast.table.equals(slow.table) and fast.stats == slow.stats


def test_detect_still_answers_would_it_fit():
    with pytest.raises(FormatMismatch, match="does not look like zeek_conn"):
        detect(source(CONN_LONG), "zeek_conn")
    assert detect(source(CONN_LONG), "zeek_conn", check=False).score == 0.0


@pytest.mark.parametrize("explicit", [True, False], ids=["named", "walked"])
def test_a_forced_loader_that_cannot_read_the_file_says_so_in_one_sentence(explicit):
    cef = DATA / "cef" / next(p.name for p in sorted((DATA / "cef").glob("*.log")))
    with pytest.raises(FormatMismatch) as caught:
        forced_load(cef, "zeek_conn", explicit=explicit)
    message = str(caught.value)
    assert message.startswith(f"{display(cef)}: does not look like zeek_conn (Zeek conn.log")
    assert ", and reading it as zeek_conn failed: " in message
    assert "\n" not in message and "Traceback" not in message


# --- 2. Zeek written with scope_sep "_", and Zeek cut to a bare header line ----------------------

SCOPED_TSV = DATA / "zeek_conn" / "scope_sep_underscore.log"
SCOPED_JSON = DATA / "zeek_conn" / "scope_sep_underscore.json.log"
BARE_CONN = DATA / "zeek_conn" / "zeek_cut_bare_header.log"
BARE_SSL = DATA / "zeek_ssl" / "zeek_cut_bare_header_scope_sep.log"
SCOPED_DNS = DATA / "zeek_dns" / "zeek_scope_sep_underscore.json.log"
BARE_HTTP = DATA / "zeek_http" / "zeek_cut_bare_header.log"
NEW_ZEEK = {
    SCOPED_TSV: "zeek_conn",
    SCOPED_JSON: "zeek_conn",
    BARE_CONN: "zeek_conn",
    BARE_SSL: "zeek_ssl",
    SCOPED_DNS: "zeek_dns",
    BARE_HTTP: "zeek_http",
}


def detected(path: Path, fast: bool = True):
    found = detect(source(path))
    return found.name, found.loader.read(source(path), LoadOptions(), fast=fast)


def tuples(result) -> list[tuple]:
    return [
        (r["source_line"], r["src_ip"], r["src_port"], r["dst_ip"], r["dst_port"], r["direction"])
        for r in rows(result.table)
    ]


SANDBOX_CONNS = [
    ("192.168.10.13", 51522, "203.0.113.7", 22, "outbound"),
    ("192.168.10.17", 40210, "141.94.96.144", 3333, "outbound"),
    ("192.168.10.22", 43188, "100.100.100.200", 80, "internal"),
]


def test_a_conn_log_written_with_scope_sep_underscore_loads_its_addresses():
    name, result = detected(SCOPED_TSV)
    assert name == "zeek_conn" and result.rejects == []
    assert (result.stats.loaded, result.stats.skipped_total) == (5, 9)
    got = tuples(result)
    assert [g[1:] for g in got[:3]] == SANDBOX_CONNS
    assert got[4][1:] == ("2001:db8:10::13", None, "2001:db8:ff::1", None, "outbound")  # ICMP


def test_a_json_conn_log_with_scope_sep_underscore_and_extension_fields_is_recognised():
    name, result = detected(SCOPED_JSON)
    assert name == "zeek_conn" and result.rejects == []
    assert [g[1:] for g in tuples(result)[:3]] == SANDBOX_CONNS
    assert rows(result.table)[0]["app"] == "ssh"


def test_a_conn_log_cut_to_a_bare_header_line_is_recognised():
    name, result = detected(BARE_CONN)
    assert name == "zeek_conn"
    assert dict(result.stats.skipped) == {"Zeek header line": 1}
    assert [(r.location.line, r.reason) for r in result.rejects] == [
        (5, "id.orig_h is not an IP address: '192.168.10.300'")
    ]
    got = tuples(result)
    assert [g[0] for g in got] == [2, 3, 4, 6]
    assert [g[1:] for g in got[:3]] == SANDBOX_CONNS
    last = rows(result.table)[3]
    assert last["app"] is None and last["bytes_out"] == 0  # (empty) and 0 as zeek-cut keeps them


def test_side_logs_cut_to_a_bare_header_or_with_scope_sep_underscore_enrich():
    name, ssl = detected(BARE_SSL)
    assert name == "zeek_ssl"
    assert [(r["flow_key"], r["dst_domain"]) for r in rows(ssl.table)] == [
        ("zeek:CsslPool000000001", "pool.supportxmr.com")
    ]
    name, http = detected(BARE_HTTP)
    assert name == "zeek_http"
    assert [r["dst_domain"] for r in rows(http.table)] == ["downloads.example.net"]
    name, dns = detected(SCOPED_DNS)
    assert name == "zeek_dns"
    assert [r["flow_key"] for r in rows(dns.table)] == [
        "zeek:CdnsPool000000001",
        "ip:141.94.96.144",
    ]


@pytest.mark.parametrize("path", list(NEW_ZEEK), ids=lambda p: p.name)
def test_new_zeek_layouts_read_the_same_column_wise_and_line_by_line(path):
    name, fast = detected(path)
    _, slow = detected(path, fast=False)
    assert name == NEW_ZEEK[path]
    assert fast.table.equals(slow.table) and fast.stats == slow.stats
    assert fast.rejects == slow.rejects


def test_a_bare_header_needs_ts_and_uid_and_field_names():
    from correlate.loaders.zeek_conn import bare_names

    assert bare_names(b"ts\tuid\tid.orig_h") == ["ts", "uid", "id.orig_h"]
    assert bare_names(b"\xef\xbb\xbfts\tuid\tid_orig_h\r") == ["ts", "uid", "id_orig_h"]
    assert bare_names(b"ts\tuid") is None  # too few
    assert bare_names(b"time\tuid\tsrc") is None  # no ts
    assert bare_names(b"ts\tuid\tsource ip") is None  # not a field name
    assert bare_names(b"1764655500.1\tCx\t10.0.0.1") is None  # a data line


# --- 5. EdgeOS/USG and VyOS rule tags in the iptables log prefix ---------------------------------

EDGEOS = DATA / "iptables" / "edgeos_vyos_rule_prefixes.log"


def test_edgeos_and_vyos_rule_tags_give_the_verdict():
    options = LoadOptions(reference_ns=1_767_312_000_000_000_000)  # 2026-01-02
    result = REGISTRY["iptables"].read(source(EDGEOS), options)
    assert result.rejects == [] and result.stats.loaded == 10
    got = {r["source_line"]: (r["action_raw"], r["action"]) for r in rows(result.table)}
    assert got == {
        1: ("[LAN_IN-2000-D]", "denied"),
        2: ("[WAN_LOCAL-default-D]", "denied"),
        3: ("[LAN_IN-2001-A]", "allowed"),
        4: ("[WAN_OUT-3000-R]", "denied"),  # reject
        5: ("[RULE-123-D]", "denied"),
        6: ("[RULE-123-A]", "allowed"),
        7: ("[ipv4-FWD-filter-20-D]", "denied"),  # VyOS 1.4+
        8: ("[WAN_IN-10-A]", "allowed"),  # VyOS 1.3, after the kernel's uptime stamp
        9: ("[BLOCKLIST_OUT-10-A]", "allowed"),  # the tag's letter, not the word BLOCK
        10: ("[LAN_IN-30-J]", "unknown"),  # jump: no verdict yet
    }


def test_a_prefix_map_option_still_replaces_the_rule_tag_convention():
    options = LoadOptions(
        reference_ns=1_767_312_000_000_000_000,
        format_options={"iptables": {"prefix_map": "WAN_LOCAL=alerted"}},
    )
    result = REGISTRY["iptables"].read(source(EDGEOS), options)
    actions = {r["source_line"]: r["action"] for r in rows(result.table)}
    assert actions[2] == "alerted" and actions[1] == "unknown"


# --- 8. an eve.json of engine (or stats) events only ---------------------------------------------

ENGINE_ONLY = DATA / "suricata_eve" / "suricata_engine_events_only.json.log"


@pytest.mark.parametrize("explicit", [True, False], ids=["named", "walked"])
def test_an_eve_file_of_engine_events_only_loads_no_rows_and_skips_every_line(explicit):
    record = InputFile(path=display(ENGINE_ONLY), format=None, kind=None, sha256="", size=0)
    result = load_file(source(ENGINE_ONLY, explicit=explicit), None, RunOptions(), record)
    assert (record.format, record.skipped_reason) == ("suricata_eve", None)
    assert result is not None and result.table.num_rows == 0 and result.rejects == []
    stats = result.stats
    assert (stats.read, stats.loaded) == (5, 0)
    assert dict(stats.skipped) == {"engine event (not traffic)": 5}


def test_an_eve_file_of_stats_events_only_loads_no_rows(tmp_path):
    path = tmp_path / "eve.json"
    stats = (
        '{"timestamp":"2025-12-02T06:00:08.000000+0000","event_type":"stats","stats":{"uptime":8}}'
    )
    path.write_text(f"{stats}\n{stats}\n")
    found = detect(source(path))
    result = found.loader.read(source(path), LoadOptions())
    assert found.name == "suricata_eve" and result.stats.loaded == 0
    assert dict(result.stats.skipped) == {"stats event (not traffic)": 2}


# --- 7. Suricata flow and netflow records of one flow count once ---------------------------------

TWINS = DATA / "suricata_eve" / "suricata_flow_and_netflow_twins.json.log"
TWIN = "netflow record of a flow logged as a flow event (counted once, as the flow)"


def eve_reference(path: Path, options: LoadOptions):
    """The per-line reader over every line (as tests/test_fast_path_suricata_eve.py does)."""
    from correlate.loaders import suricata_eve
    from correlate.loaders.base import FileLoad
    from correlate.schema import NETWORK_EVENTS
    from correlate.sources import iter_lines

    src = source(path)
    load = FileLoad(src, options, "suricata_eve", "network", NETWORK_EVENTS, unit="events")
    reader = suricata_eve.Reader(load)
    for line, raw in iter_lines(src):
        reader.line(line, raw, load)
    return reader.result()


def test_flow_and_netflow_records_of_one_flow_are_one_event():
    found = detect(source(TWINS))
    result = found.loader.read(source(TWINS), LoadOptions())
    assert found.name == "suricata_eve" and result.rejects == []
    stats = result.stats
    assert (stats.read, stats.loaded) == (10, 5)
    assert dict(stats.skipped) == {TWIN: 4, "tls event used for enrichment": 1}
    got = [
        (r["source_line"], r["flow_key"].split(":")[1], r["action"], r["bytes_out"], r["bytes_in"])
        for r in rows(result.table)
    ]
    assert got == [
        (1, "1452859245318416", "alerted", 214, 74),  # an alert is not a twin
        (3, "884219033415762", "allowed", 65, None),  # netflow without a flow event: kept,
        (4, "884219033415762", "allowed", 81, None),  # one row per direction, as before
        (5, "2071145629817310", "allowed", 5120, 2048),  # flow before its netflow records
        (10, "1452859245318416", "allowed", 481214, 779011),  # flow after its netflow records
    ]
    assert rows(result.table)[3]["dst_domain"] == "pool.supportxmr.com"


@pytest.mark.parametrize("anchors", [None, 1, 1000])
def test_flow_and_netflow_twins_read_alike_line_by_line_and_under_a_keep_policy(anchors):
    from loader_helpers import same

    from correlate.keep import KeepPolicy

    keep = None if anchors is None else KeepPolicy(actions=("denied", "alerted"), anchors=anchors)
    options = LoadOptions(keep=keep)
    fast = REGISTRY["suricata_eve"].read(source(TWINS), options)
    same(fast, eve_reference(TWINS, options))
    assert fast.stats.skipped[TWIN] == 4 and fast.stats.loaded == 5


def test_the_flow_event_scan_reads_real_spellings(tmp_path):
    from correlate.loaders.suricata_eve import flow_event_keys

    path = tmp_path / "eve.json"
    path.write_text(
        '{"timestamp":"2025-12-02T06:00:00Z","flow_id":12,"event_type":"flow"}\n'
        '{"timestamp": "2025-12-02T06:00:00Z", "event_type": "flow", "flow_id": "34"}\n'
        '{"timestamp":"2025-12-02T06:00:00Z","flow_id":56,"event_type":"netflow"}\n'
        '{"timestamp":"2025-12-02T06:00:00Z","flow_id":"78x","event_type":"flow"}\n'
        '{"timestamp":"2025-12-02T06:00:00Z","flow_id":90,"event_type":"flowbits"}\n'
    )
    assert flow_event_keys(Source(path, "eve.json")) == {"suricata:12", "suricata:34"}


# --- 19. IPv4-mapped IPv6 addresses are stored in their IPv4 form, noted -------------------------

MAPPED_ZEEK = DATA / "zeek_conn" / "zeek_ipv4_mapped_addresses.json.log"
MAPPED_EVE = DATA / "suricata_eve" / "suricata_ipv4_mapped_addresses.json.log"
SAMPLE = Path(__file__).resolve().parent.parent / "sample_logs" / "rome_incident"


@pytest.mark.parametrize(
    ("text", "stored", "mapped"),
    [
        ("::ffff:192.168.10.13", "192.168.10.13", True),
        ("::FFFF:192.168.10.13", "192.168.10.13", True),
        ("0:0:0:0:0:ffff:c0a8:0a0d", "192.168.10.13", True),
        (" ::ffff:c0a8:a0d ", "192.168.10.13", True),
        ("::192.168.10.13", "::c0a8:a0d", False),  # IPv4-compatible (deprecated): not mapped
        ("64:ff9b::cb00:7109", "64:ff9b::cb00:7109", False),  # NAT64: another host
        ("192.168.10.13", "192.168.10.13", False),
        ("2001:DB8::13", "2001:db8::13", False),
    ],
)
def test_the_shared_normaliser_stores_ipv4_mapped_addresses_as_ipv4(text, stored, mapped):
    from correlate.loaders import columnar, fields

    assert fields.ip(text, "src_ip") == stored
    assert fields.is_ipv4_mapped(text) is mapped
    note = "src_ip: IPv4-mapped IPv6 address stored as IPv4"
    assert fields.ip_note(text, "src_ip") == (note if mapped else None)
    # column-wise paths leave a mapped address to the per-line reader, which writes the note
    assert (columnar.ip_or_bad(text) is columnar.BAD) is mapped


def test_zeek_stores_mapped_addresses_as_ipv4_with_a_note_on_the_row():
    result = REGISTRY["zeek_conn"].read(source(MAPPED_ZEEK), LoadOptions())
    assert result.rejects == [] and result.stats.loaded == 5
    got = [(r["src_ip"], r["dst_ip"], r["ts_note"]) for r in rows(result.table)]
    orig, resp = (
        f"{k}: IPv4-mapped IPv6 address stored as IPv4" for k in ("id.orig_h", "id.resp_h")
    )
    assert got == [
        ("192.168.10.13", "203.0.113.7", orig),
        ("192.168.10.17", "141.94.96.144", f"{orig}; {resp}"),
        ("192.168.10.22", "100.100.100.200", None),
        ("2001:db8:10::13", "64:ff9b::cb00:7109", None),
        ("192.168.10.13", "198.51.100.23", orig),
    ]
    assert result.stats.notes == {orig: 2, f"{orig}; {resp}": 1}  # counted per row's note
    slow = REGISTRY["zeek_conn"].read(source(MAPPED_ZEEK), LoadOptions(), fast=False)
    assert result.table.equals(slow.table) and result.stats == slow.stats


def test_suricata_stores_mapped_addresses_as_ipv4_with_a_note_on_the_row():
    from loader_helpers import same

    result = REGISTRY["suricata_eve"].read(source(MAPPED_EVE), LoadOptions())
    got = [(r["src_ip"], r["dst_ip"], r["action"], r["ts_note"]) for r in rows(result.table)]
    src, dst = (f"{k}: IPv4-mapped IPv6 address stored as IPv4" for k in ("src_ip", "dest_ip"))
    assert got == [
        ("192.168.10.13", "203.0.113.7", "denied", src),
        ("192.168.10.17", "141.94.96.144", "allowed", f"{src}; {dst}"),
        ("192.168.10.22", "192.0.2.53", "allowed", None),
    ]
    same(result, eve_reference(MAPPED_EVE, LoadOptions()))


def test_iptables_stores_mapped_addresses_as_ipv4_with_a_note_on_the_row(tmp_path):
    path = tmp_path / "kern.log"
    path.write_text(
        "2025-12-02T06:05:21.000000+00:00 gw kernel: [LAN_IN-2000-D]IN=eth1 OUT=eth0 "
        "SRC=::ffff:192.168.10.13 DST=203.0.113.7 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF "
        "PROTO=TCP SPT=51522 DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0\n"
    )
    [row] = rows(REGISTRY["iptables"].read(Source(path, "kern.log"), LoadOptions()).table)
    assert (row["src_ip"], row["action"]) == ("192.168.10.13", "denied")
    assert row["ts_note"] == "SRC: IPv4-mapped IPv6 address stored as IPv4"


def test_a_firewall_log_writing_the_sandbox_ipv4_mapped_still_attributes_the_tunnel(tmp_path):
    """The issue's case: the sample's CFW log with 192.168.10.13 written ::ffff:192.168.10.13
    (column-wise path) gives the same high-confidence finding for the reverse tunnel."""
    import shutil

    from correlate.pipeline import analyse, load_inputs

    for part in ("firewall", "traces"):
        shutil.copytree(SAMPLE / part, tmp_path / part)
    shutil.copy(SAMPLE / "inventory.csv", tmp_path / "inventory.csv")
    cfw = tmp_path / "firewall" / "cfw_internet_log.jsonl"
    text = cfw.read_text()
    assert text.count('"192.168.10.13"')
    cfw.write_text(text.replace('"192.168.10.13"', '"::ffff:192.168.10.13"'))
    options = RunOptions()
    findings = analyse(load_inputs([str(tmp_path)], options), options).findings.to_pylist()
    [tunnel] = [f for f in findings if (f["dst_ip"], f["dst_port"]) == ("203.0.113.7", 22)]
    assert (tunnel["src_ip"], tunnel["identity"], tunnel["confidence"]) == (
        "192.168.10.13",
        "mapped",
        "high",
    )
    assert tunnel["call_id"] is not None
