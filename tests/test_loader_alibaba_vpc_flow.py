"""Alibaba Cloud VPC flow-log loader: SLS JSON lines and CSV exports, traps, and the line it draws
against Cloud Firewall records."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from loader_helpers import ns, rows

from correlate.errors import StrictRejection
from correlate.loaders import REGISTRY, LoadOptions, LoadResult, detect
from correlate.sources import Source

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "alibaba_vpc_flow"
LOADER = REGISTRY["alibaba_vpc_flow"]
CFW = REGISTRY["alibaba_cfw"]

JSONL = DATA / "sls_flow_log.jsonl"
CSV = DATA / "sls_export_ragged.csv"
MALFORMED = DATA / "malformed.jsonl"

SBX13 = "i-bp1sbx13rome0423a7f"


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


def test_rejected_outbound_ssh_row_is_exact():
    assert by_line(load(JSONL))[1] == {
        "event_id": None,
        "ts": ns("2025-12-02T06:11:19Z"),
        "ts_end": ns("2025-12-02T06:11:19Z"),
        "src_ip": "192.168.10.13",
        "src_port": 40951,
        "src_nat_ip": None,
        "dst_ip": "203.0.113.7",
        "dst_port": 22,
        "protocol": "tcp",
        "direction": "outbound",
        "action": "denied",
        "action_raw": "REJECT",
        "rule": None,
        "signature": None,
        "category": None,
        "dst_domain": None,
        "app": None,
        "bytes_out": 60,
        "bytes_in": None,
        "packets_out": 1,
        "packets_in": None,
        "observer": "alibaba-vpc-flow",
        "host_hint": SBX13,  # vm-id
        "flow_key": None,
        "ts_note": None,
        "source_format": "alibaba_vpc_flow",
        "source_path": "tests/data/alibaba_vpc_flow/sls_flow_log.jsonl",
        "source_line": 1,
    }


def test_inbound_record_fills_the_in_counters():
    row = by_line(load(JSONL))[3]
    assert (row["direction"], row["src_ip"], row["dst_ip"]) == (
        "inbound",
        "141.94.96.144",
        "192.168.10.17",
    )
    assert (row["bytes_in"], row["packets_in"], row["bytes_out"]) == (3352, 10, None)
    assert (row["ts"], row["ts_end"]) == (ns("2025-12-02T06:11:24Z"), ns("2025-12-02T06:12:20Z"))


def test_empty_vm_id_falls_back_to_the_eni_and_protocol_numbers_become_names():
    table = by_line(load(JSONL))
    assert (table[5]["host_hint"], table[5]["protocol"]) == ("eni-bp1natgw0shared7q1", "udp")
    assert (table[6]["protocol"], table[6]["dst_ip"], table[6]["action"]) == (
        "icmp",
        "100.100.100.200",
        "denied",
    )


def test_nodata_record_is_skipped():
    result = load(JSONL)
    assert result.stats.skipped == {"log-status NODATA": 1}
    assert sorted(by_line(result)) == [1, 2, 3, 5, 6]
    assert result.rejects == []


def test_csv_export_reads_like_the_json_lines():
    csv_rows = by_line(load(CSV))
    json_rows = by_line(load(JSONL))
    drop = ("source_path", "source_line")
    for csv_line, json_line in ((2, 1), (3, 2), (5, 3), (8, 6)):
        got = {k: v for k, v in csv_rows[csv_line].items() if k not in drop}
        want = {k: v for k, v in json_rows[json_line].items() if k not in drop}
        assert got == want, csv_line


def test_csv_export_rejects_the_ragged_row_and_skips_header_blank_and_nodata():
    result = load(CSV)
    assert_rejects(result, {6: "10 columns where the header has 22"})
    assert result.stats.skipped == {"CSV header": 1, "blank line": 1, "log-status NODATA": 1}
    assert sorted(by_line(result)) == [2, 3, 5, 8]


# --- malformed records --------------------------------------------------------------------------


def test_malformed_file_rejects_exactly_the_bad_lines():
    result = load(MALFORMED)
    assert_rejects(
        result,
        {
            2: "not valid JSON",
            3: "srcaddr is not an IP address: '192.168.XX.XX'",
            4: "dstaddr is missing",
            5: "no start and no __time__",
            8: "dstport out of range: 99999",
            12: "bytes is not an integer: 'abc'",
        },
    )
    assert result.stats.skipped == {"log-status SKIPDATA": 1, "blank line": 1}
    assert sorted(by_line(result)) == [1, 6, 7, 11, 13]


def test_malformed_time_traps_load_with_notes():
    table = by_line(load(MALFORMED))
    assert table[6]["ts"] == ns("2025-12-02T06:12:28Z")
    assert table[6]["ts_note"] == "start missing: used __time__ (when SLS stored the record)"
    assert table[7]["ts"] == ns("2025-12-02T06:11:31.25Z")
    assert table[7]["ts_note"] == "epoch unit ms by magnitude (format documents s)"
    assert (table[11]["ts_end"], table[11]["ts_note"]) == (None, "end before start: end ignored")


def test_value_case_is_ignored_and_unknown_values_stay_unknown():
    table = by_line(load(MALFORMED))
    assert (table[11]["direction"], table[11]["action"], table[11]["action_raw"]) == (
        "outbound",
        "denied",
        "reject",
    )
    assert (table[13]["direction"], table[13]["action"], table[13]["action_raw"]) == (
        "unknown",
        "unknown",
        "DROP",
    )
    assert table[13]["bytes_out"] == 60  # direction unknown: the counters go to *_out


@pytest.mark.parametrize("path", [JSONL, CSV, MALFORMED], ids=lambda p: p.name)
def test_every_record_is_loaded_rejected_or_skipped(path):
    stats = load(path).stats
    assert stats.balanced
    assert stats.read == len(path.read_bytes().splitlines())


def test_strict_stops_at_the_first_rejected_line():
    with pytest.raises(StrictRejection, match=re.escape(f"{shown(MALFORMED)}:2: not valid JSON")):
        load(MALFORMED, LoadOptions(strict=True))


# --- sniffing: VPC flow logs versus Cloud Firewall ------------------------------------------------

FLOW = json.loads(JSONL.read_text().splitlines()[0])
CFW_RECORD = {
    "__topic__": "cloudfirewall_access_log",
    "log_type": "vpc_firewall_log",
    "start_time": "1764655879",
    "src_ip": "192.168.10.13",
    "dst_ip": "203.0.113.7",
    "direction": "out",
    "rule_result": "drop",
}


@pytest.mark.parametrize(
    "record",
    [
        CFW_RECORD,
        {**FLOW, "rule_result": "drop"},  # a verdict of Cloud Firewall's: not a flow log
        {k: v for k, v in FLOW.items() if k not in ("eni-id", "vm-id", "vswitch-id")},
        {"srcaddr": "10.0.0.1", "dstaddr": "10.0.0.2", "interface-id": "eni-0a1b2c3d"},  # AWS-ish
    ],
    ids=["cfw", "flow-with-rule_result", "no-identity", "aws-json"],
)
def test_near_misses_do_not_sniff_as_vpc_flow_logs(record):
    assert LOADER.sniff(json.dumps(record).encode() + b"\n", "flow.jsonl") == 0.0


def test_cloud_firewall_does_not_claim_vpc_flow_logs_and_vice_versa():
    flow_line = JSONL.read_bytes()
    cfw_line = json.dumps(CFW_RECORD).encode() + b"\n"
    assert CFW.sniff(flow_line, JSONL.name) == 0.0
    assert CFW.sniff(CSV.read_bytes(), CSV.name) == 0.0
    assert LOADER.sniff(cfw_line, "cfw.jsonl") == 0.0
    assert CFW.sniff(cfw_line, "cfw.jsonl") > 0


@pytest.mark.parametrize("head", [b"", b"\xff\xfe\x00\x01", b'{"srcaddr": ', b'"unclosed,quote\n'])
def test_sniff_never_raises_on_odd_bytes(head):
    assert LOADER.sniff(head, "x") == 0.0
