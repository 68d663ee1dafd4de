"""AWS VPC Flow Logs loader: the AWS guide's examples, custom formats by header or option, traps."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from loader_helpers import ns, rows

from correlate.errors import OptionError, StrictRejection
from correlate.loaders import MIN_SCORE, REGISTRY, LoadOptions, LoadResult, detect
from correlate.sources import Source

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "aws_vpc_flow"
LOADER = REGISTRY["aws_vpc_flow"]

ACCEPT_REJECT = DATA / "awsdocs_01_default_accept_reject.log"
NODATA = DATA / "awsdocs_02_default_nodata_skipdata.log"
IPV6 = DATA / "awsdocs_04_default_ipv6.log"
TCP_FLAGS = DATA / "awsdocs_05_v3_header_double_space.log"
NAT_NO_START = DATA / "awsdocs_06_nat_header_without_start.log"
TGW_ELISION = DATA / "awsdocs_07_v3_header_elision_line.log"
V5 = DATA / "awsdocs_08_v5_header_flow_direction.log"
SANDBOX = DATA / "v8_header_sandbox_nat_ecs.log"
MALFORMED = DATA / "v2_headerless_malformed.log"
CONCATENATED = DATA / "concatenated_two_formats_repeated_header.log"
SAMPLES = sorted(p for p in DATA.glob("*.log"))

TASK = "3f2a9c1e5b7d4e6f8a0b1c2d3e4f5a6b"


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT))


def load(path: Path, options: LoadOptions | None = None, forced: str | None = None) -> LoadResult:
    source = Source(path, shown(path) if path.is_relative_to(ROOT) else path.name)
    return detect(source, forced).loader.read(source, options or LoadOptions())


def by_line(result: LoadResult) -> dict[int, dict[str, Any]]:
    return {row["source_line"]: row for row in rows(result.table)}


def assert_rejects(result: LoadResult, expected: dict[int, str]) -> None:
    """Exactly these lines are rejected, each once, with a reason containing the given text."""
    got = {r.location.line: r.reason for r in result.rejects}
    assert sorted(got) == sorted(expected), got
    assert len(result.rejects) == len(got)
    for line, fragment in expected.items():
        assert fragment in got[line], (line, got[line])


# --- the AWS guide's examples (CC BY-SA 4.0) --------------------------------------------------


def test_default_format_accepted_record_is_exact():
    assert by_line(load(ACCEPT_REJECT))[1] == {
        "event_id": None,
        "ts": 1_418_530_010_000_000_000,
        "ts_end": 1_418_530_070_000_000_000,
        "src_ip": "172.31.16.139",
        "src_port": 20641,
        "src_nat_ip": None,
        "dst_ip": "172.31.16.21",
        "dst_port": 22,
        "protocol": "tcp",
        "direction": "unknown",  # v2 has no flow-direction
        "action": "allowed",
        "action_raw": "ACCEPT",
        "rule": None,
        "signature": None,
        "category": None,
        "dst_domain": None,
        "app": None,
        "bytes_out": 4249,  # direction unknown: the one counter pair goes to *_out
        "bytes_in": None,
        "packets_out": 20,
        "packets_in": None,
        "observer": "aws-vpc-flow",
        "host_hint": "eni-1235b8ca123456789",  # no instance-id in v2: the interface
        "flow_key": None,
        "ts_note": None,
        "source_format": "aws_vpc_flow",
        "source_path": "tests/data/aws_vpc_flow/awsdocs_01_default_accept_reject.log",
        "source_line": 1,
    }


def test_default_format_rejected_record_is_denied():
    row = by_line(load(ACCEPT_REJECT))[2]
    assert (row["action"], row["action_raw"]) == ("denied", "REJECT")
    assert (row["src_ip"], row["dst_ip"], row["dst_port"]) == ("172.31.9.69", "172.31.9.12", 3389)
    assert row["ts"] == ns("2014-12-14T04:06:50Z")


def test_nodata_and_skipdata_records_are_skipped_with_their_status():
    result = load(NODATA)
    assert result.table.num_rows == 0
    assert result.rejects == []
    assert result.stats.skipped == {"log-status NODATA": 1, "log-status SKIPDATA": 1}
    assert result.stats.read == 2


def test_ipv6_addresses_are_canonical():
    row = by_line(load(IPV6))[1]
    assert row["src_ip"] == "2001:db8:1234:a100:8d6e:3477:df66:f105"
    assert row["dst_ip"] == "2001:db8:1234:a102:3304:8879:34cf:4071"
    assert (row["bytes_out"], row["packets_out"]) == (8855, 54)


def test_v3_header_sets_the_order_and_a_double_space_is_one_separator():
    result = load(TCP_FLAGS)
    assert result.stats.skipped == {"header line": 1}
    assert sorted(by_line(result)) == list(range(2, 10))
    row = by_line(result)[9]  # the doc's record with two spaces between fields
    assert (row["src_ip"], row["src_port"], row["dst_ip"], row["dst_port"]) == (
        "10.0.0.62",
        5001,
        "52.213.180.42",
        43638,
    )
    assert (row["bytes_out"], row["packets_out"]) == (967, 14)  # bytes before packets here
    assert row["host_hint"] == "i-01234567890123456"
    assert row["src_nat_ip"] is None  # pkt-srcaddr equals srcaddr


def test_v5_flow_direction_sets_direction_and_which_counters_are_filled():
    table = by_line(load(V5))
    ingress, egress = table[2], table[3]
    assert (ingress["direction"], ingress["bytes_in"], ingress["packets_in"]) == (
        "inbound",
        15044,
        14,
    )
    assert (ingress["bytes_out"], ingress["packets_out"]) == (None, None)
    assert (egress["direction"], egress["bytes_out"], egress["packets_out"]) == ("outbound", 471, 7)
    assert (egress["bytes_in"], egress["packets_in"]) == (None, None)
    assert egress["ts"] == ns("2021-03-26T03:28:12Z")
    assert egress["host_hint"] == "i-0c50d5961bcb2d47b"


def test_header_without_start_skips_its_records_with_the_reason():
    result = load(NAT_NO_START)
    assert_rejects(
        result,
        {
            6: "16 fields where the format has 6",  # the doc's trailing "#..." comments
            7: "17 fields where the format has 6",
        },
    )
    assert result.stats.skipped == {
        "header line": 1,
        "format without a start field: so its records cannot be placed in time": 4,
    }


def test_elision_line_in_the_transit_gateway_example_is_rejected_for_its_field_count():
    result = load(TGW_ELISION)
    reasons = {r.location.line: r.reason for r in result.rejects}
    assert reasons[3] == "1 fields where the format has 17"
    assert sorted(reasons) == [3]  # the other records: a format without start, skipped
    assert (
        result.stats.skipped[
            "format without a start field: so its records cannot be placed in time"
        ]
        == 4
    )


# --- our own fixtures -----------------------------------------------------------------------------


def test_eks_pod_behind_its_node_address_is_the_source_and_the_node_the_nat_address():
    assert by_line(load(SANDBOX))[3] == {
        "event_id": None,
        "ts": ns("2025-12-02T06:11:41Z"),
        "ts_end": ns("2025-12-02T06:12:40Z"),
        "src_ip": "10.0.5.88",  # pkt-srcaddr: the pod
        "src_port": 40288,
        "src_nat_ip": "10.0.1.10",  # srcaddr: the node's interface
        "dst_ip": "203.0.113.7",
        "dst_port": 22,
        "protocol": "tcp",
        "direction": "outbound",
        "action": "allowed",
        "action_raw": "ACCEPT",
        "rule": None,
        "signature": None,
        "category": None,
        "dst_domain": None,
        "app": None,
        "bytes_out": 6183,
        "bytes_in": None,
        "packets_out": 41,
        "packets_in": None,
        "observer": "aws-vpc-flow",
        "host_hint": "i-0123456789abcdef0",
        "flow_key": None,
        "ts_note": None,
        "source_format": "aws_vpc_flow",
        "source_path": "tests/data/aws_vpc_flow/v8_header_sandbox_nat_ecs.log",
        "source_line": 3,
    }


def test_ingress_reply_goes_to_the_pod_named_by_pkt_dstaddr():
    row = by_line(load(SANDBOX))[4]
    assert (row["src_ip"], row["src_nat_ip"], row["dst_ip"]) == ("203.0.113.7", None, "10.0.5.88")
    assert (row["direction"], row["bytes_in"], row["packets_in"]) == ("inbound", 8841, 37)


def test_fargate_task_without_instance_is_named_by_its_ecs_task_id():
    table = by_line(load(SANDBOX))
    mining = table[2]
    assert mining["host_hint"] == TASK
    assert (mining["action"], mining["direction"]) == ("denied", "outbound")
    assert (mining["dst_ip"], mining["dst_port"]) == ("141.94.96.144", 3333)
    assert mining["ts"] == ns("2025-12-02T06:11:19Z")
    assert table[7]["host_hint"] == TASK
    assert table[7]["protocol"] == "udp"


def test_v8_reject_reason_becomes_the_rule():
    row = by_line(load(SANDBOX))[6]
    assert (row["action"], row["rule"]) == ("denied", "BPA")


def test_sandbox_file_skips_its_header_and_nodata_record():
    result = load(SANDBOX)
    assert result.stats.skipped == {"header line": 1, "log-status NODATA": 1}
    assert sorted(by_line(result)) == [2, 3, 4, 6, 7]
    assert result.rejects == []


def test_headerless_malformed_file_rejects_exactly_the_bad_lines():
    result = load(MALFORMED)
    assert_rejects(
        result,
        {
            2: "13 fields where the format has 14",
            3: "srcport is not an integer: 'http'",
            4: "srcaddr is not an IP address: '10.0.5.300'",
            5: "start is missing",
            10: "start: not an epoch time: 'soon'",
            11: "dstport out of range: 70000",
            13: "bytes out of range: -1",
        },
    )
    assert result.stats.skipped == {
        "blank line": 1,
        "log-status NODATA": 1,
        "log-status SKIPDATA": 1,
    }
    assert sorted(by_line(result)) == [1, 8, 9, 12, 15]
    assert result.stats.notes == {
        "end before start: end ignored": 1,
        "epoch unit ms by magnitude (format documents s)": 1,
    }


def test_malformed_time_traps_load_with_notes():
    table = by_line(load(MALFORMED))
    assert (table[8]["ts"], table[8]["ts_end"]) == (ns("2025-12-02T06:11:30Z"), None)
    assert table[8]["ts_note"] == "end before start: end ignored"
    assert table[9]["ts"] == ns("2025-12-02T06:11:31.5Z")
    assert table[9]["ts_end"] == ns("2025-12-02T06:11:32Z")
    assert table[9]["ts_note"] == "epoch unit ms by magnitude (format documents s)"


def test_gre_record_without_ports_or_action_loads_as_unknown():
    row = by_line(load(MALFORMED))[12]
    assert (row["protocol"], row["src_port"], row["dst_port"]) == ("gre", None, None)
    assert (row["action"], row["action_raw"]) == ("unknown", None)


def test_crlf_line_end_loads_like_lf():
    row = by_line(load(MALFORMED))[15]
    assert (row["action_raw"], row["src_port"]) == ("REJECT", 40960)


def test_a_later_header_switches_the_format_mid_file():
    result = load(CONCATENATED)
    assert result.stats.skipped == {"header line": 3}
    assert result.rejects == []
    table = by_line(result)
    assert (table[2]["src_port"], table[2]["dst_port"], table[2]["direction"]) == (
        40961,
        3333,
        "unknown",
    )
    custom = table[4]  # start end srcaddr dstaddr dstport protocol action flow-direction ...
    assert (custom["ts"], custom["ts_end"]) == (
        ns("2025-12-02T06:12:00Z"),
        ns("2025-12-02T06:12:10Z"),
    )
    assert (custom["dst_ip"], custom["dst_port"], custom["src_port"]) == (
        "198.51.100.77",
        4444,
        None,
    )
    assert (custom["action"], custom["direction"], custom["host_hint"]) == (
        "denied",
        "outbound",
        "eni-0a1b2c3d4e5f60718",
    )
    assert table[6]["direction"] == "inbound"


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_every_record_is_loaded_rejected_or_skipped(path):
    stats = load(path).stats
    assert stats.balanced
    assert stats.read == len(path.read_bytes().splitlines())


def test_strict_stops_at_the_first_rejected_line():
    with pytest.raises(StrictRejection, match=re.escape(f"{shown(MALFORMED)}:2: 13 fields")):
        load(MALFORMED, LoadOptions(strict=True))


# --- custom formats given by --option ---------------------------------------------------------

HEADERLESS = (
    "5 10.0.5.23 141.94.96.144 3333 6 1764655879 1764655890 REJECT egress eni-0a1b2c3d4e5f60718\n"
    "5 141.94.96.144 10.0.5.23 40951 6 1764655879 1764655890 ACCEPT ingress eni-0a1b2c3d4e5f60718\n"
)


@pytest.mark.parametrize(
    "spelling",
    [
        "version srcaddr dstaddr dstport protocol start end action flow-direction interface-id",
        "${version} ${srcaddr} ${dstaddr} ${dstport} ${protocol} ${start} ${end} ${action} "
        "${flow-direction} ${interface-id}",
        "version srcaddr dstaddr dstport protocol start end action flow_direction interface_id",
    ],
    ids=["plain", "log-format", "underscores"],
)
def test_headerless_custom_format_reads_with_the_fields_option(tmp_path, spelling):
    path = tmp_path / "flows.log"
    path.write_text(HEADERLESS)
    options = LoadOptions(format_options={"aws_vpc_flow": {"fields": spelling}})
    result = load(path, options, forced="aws_vpc_flow")
    first, second = rows(result.table)
    assert (first["dst_ip"], first["dst_port"], first["action"]) == (
        "141.94.96.144",
        3333,
        "denied",
    )
    assert (first["direction"], first["host_hint"]) == ("outbound", "eni-0a1b2c3d4e5f60718")
    assert second["direction"] == "inbound"
    assert result.stats.balanced and result.rejects == []


def test_headerless_custom_format_without_the_option_is_rejected_for_its_field_count(tmp_path):
    path = tmp_path / "flows.log"
    path.write_text(HEADERLESS)
    result = load(path, forced="aws_vpc_flow")
    assert [r.reason for r in result.rejects] == ["10 fields where the format has 14"] * 2


def test_a_header_in_the_file_wins_over_the_fields_option():
    options = LoadOptions(format_options={"aws_vpc_flow": {"fields": "start end srcaddr dstaddr"}})
    assert load(SANDBOX, options).table.equals(load(SANDBOX).table)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("foo bar baz", "no flow-log field names"),
        ("srcaddr dstaddr action", "has no start field"),
        ("start srcaddr srcaddr", "names srcaddr more than once"),
    ],
)
def test_a_bad_fields_option_is_an_option_error(value, message):
    options = LoadOptions(format_options={"aws_vpc_flow": {"fields": value}})
    with pytest.raises(OptionError, match=message):
        load(ACCEPT_REJECT, options)


# --- sniffing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        b"#separator \\x09\n#fields\tts\tuid\tid.orig_h\n",  # Zeek TSV
        b"Dec  2 06:11:19 sbx-03 kernel: [UFW BLOCK] IN=eth0 OUT= SRC=10.0.5.23 DST=141.94.96.144\n",
        b"The version and start and end and action of each flow\n",
        b'{"version": "2", "interface-id": "eni-0a1b2c3d4e5f60718", "srcaddr": "10.0.5.23"}\n',
        b"version,account-id,interface-id,srcaddr,dstaddr,srcport,dstport,protocol\n",
        b"start end action protocol bytes packets\n",  # only generic words
        b"\xff\xfe\x00garbage\x00\n",
    ],
    ids=["zeek", "syslog", "prose", "json", "csv", "generic-words", "binary"],
)
def test_near_misses_do_not_sniff_as_flow_logs(text):
    assert LOADER.sniff(text, "flows.log") == 0.0


def test_headerless_custom_records_score_below_detection_but_can_be_forced():
    score = LOADER.sniff(HEADERLESS.encode(), "flows.log")
    assert 0 < score < MIN_SCORE


@pytest.mark.parametrize("path", [ACCEPT_REJECT, TCP_FLAGS, NAT_NO_START], ids=lambda p: p.name)
def test_samples_sniff_as_unmistakable(path):
    assert LOADER.sniff(path.read_bytes(), path.name) >= 0.9
