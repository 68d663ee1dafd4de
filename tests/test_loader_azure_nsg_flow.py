"""Azure NSG (v1/v2) and VNet (v4) flow-log loader: the docs' samples, traps, layouts, sniffing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from loader_helpers import rows

from correlate.errors import FormatMismatch, StrictRejection
from correlate.loaders import MIN_SCORE, REGISTRY, LoadOptions, LoadResult, detect
from correlate.loaders.azure_nsg_flow import mac_address
from correlate.sources import Source

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "azure_nsg_flow"
LOADER = REGISTRY["azure_nsg_flow"]

V1_NESTED = DATA / "nsg_flow_v1_nested_records.json"
V2 = DATA / "nsg_flow_v2_leading_space.json"
V4 = DATA / "vnet_flow_v4_epoch_ms.json"
V4_MALFORMED = DATA / "vnet_flow_v4_malformed_tuples.json"
PER_LINE = DATA / "nsg_flow_v2_records_per_line.jsonl"
SAMPLES = [V1_NESTED, V2, V4, V4_MALFORMED, PER_LINE]

S = 1_000_000_000
MS = 1_000_000


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def load(path: Path, options: LoadOptions | None = None, forced: str | None = None) -> LoadResult:
    source = Source(path, shown(path))
    return detect(source, forced).loader.read(source, options or LoadOptions())


def by_port(result: LoadResult) -> dict[int, dict[str, Any]]:
    """Rows keyed by source port (unique within each fixture's loaded tuples)."""
    found = {row["src_port"]: row for row in rows(result.table)}
    assert len(found) == result.table.num_rows
    return found


def reject_list(result: LoadResult) -> list[tuple[int, str]]:
    return [(r.location.line, r.reason) for r in result.rejects]


def assert_rejects(result: LoadResult, expected: list[tuple[int, str]]) -> None:
    """Exactly these rejects, in order: (line, a fragment of the reason)."""
    got = reject_list(result)
    assert len(got) == len(expected), got
    for (line, reason), (want_line, fragment) in zip(got, expected, strict=True):
        assert line == want_line, (line, reason)
        assert fragment in reason, (fragment, reason)


def assert_balanced(result: LoadResult) -> None:
    stats = result.stats
    assert stats.read == stats.loaded + stats.rejected + sum(stats.skipped.values())
    assert stats.loaded == result.table.num_rows
    assert stats.rejected == len(result.rejects)


# --- the documentation's samples ------------------------------------------------------------------


def test_nsg_v2_outbound_continuing_tuple_is_exact():
    result = load(V2)
    assert by_port(result)[44931] == {
        "event_id": None,
        "ts": 1_542_110_379 * S,
        "ts_end": None,
        "src_ip": "10.5.16.4",
        "src_port": 44931,
        "src_nat_ip": None,
        "dst_ip": "203.0.113.115",
        "dst_port": 443,
        "protocol": "tcp",
        "direction": "outbound",
        "action": "allowed",
        "action_raw": "A",
        "rule": "DefaultRule_AllowInternetOutBound",
        "signature": None,
        "category": None,
        "dst_domain": None,
        "app": None,
        "bytes_out": 16978,
        "bytes_in": 14008,
        "packets_out": 30,
        "packets_in": 24,
        "observer": "azure-nsg/FABRIAKMVM1-NSG",
        "host_hint": "00:0d:3a:f8:78:56",
        "flow_key": None,
        "ts_note": None,
        "source_format": "azure_nsg_flow",
        "source_path": "tests/data/azure_nsg_flow/nsg_flow_v2_leading_space.json",
        "source_line": 1,
    }


def test_nsg_v2_inbound_deny_begin_tuple_has_no_counters_and_record_index_as_line():
    result = load(V2)
    assert result.stats.unit == "tuples"
    assert (result.stats.read, result.stats.loaded, result.stats.rejected) == (11, 11, 0)
    got = by_port(result)
    udp = got[28746]
    assert (udp["ts"], udp["protocol"], udp["direction"], udp["action"]) == (
        1_542_110_402 * S,
        "udp",
        "inbound",
        "denied",
    )
    assert (udp["bytes_in"], udp["bytes_out"], udp["packets_in"], udp["packets_out"]) == (
        (None,) * 4
    )
    assert got[57067]["source_line"] == 2  # second record of the blob
    assert_balanced(result)


def test_vnet_v4_millisecond_deny_tuple_is_exact():
    result = load(V4)
    assert (result.stats.read, result.stats.loaded) == (19, 19)
    denied = [r for r in rows(result.table) if r["src_port"] == 55188]
    assert denied == [
        {
            "event_id": None,
            "ts": 1_663_145_998_065 * MS,
            "ts_end": None,
            "src_ip": "101.33.218.153",
            "src_port": 55188,
            "src_nat_ip": None,
            "dst_ip": "10.0.0.6",
            "dst_port": 22,
            "protocol": "tcp",
            "direction": "inbound",
            "action": "denied",
            "action_raw": "D",
            "rule": "BlockHighRiskTCPPortsFromInternet",
            "signature": None,
            "category": None,
            "dst_domain": None,
            "app": None,
            "bytes_out": 0,
            "bytes_in": 0,
            "packets_out": 0,
            "packets_in": 0,
            "observer": "azure-vnet-flow/myVNet",
            "host_hint": "00:22:48:71:c2:05",
            "flow_key": None,
            "ts_note": None,
            "source_format": "azure_nsg_flow",
            "source_path": "tests/data/azure_nsg_flow/vnet_flow_v4_epoch_ms.json",
            "source_line": 1,
        }
    ]
    assert result.stats.notes == {}  # ms is the documented sample's unit: nothing to note
    assert_balanced(result)


def test_vnet_v4_end_tuple_counters_are_from_the_vm():
    table = rows(load(V4).table)
    end = next(r for r in table if r["ts"] == 1_663_146_022_793 * MS)
    assert (end["src_port"], end["action"], end["action_raw"]) == (36776, "allowed", "E")
    assert (end["packets_out"], end["bytes_out"], end["packets_in"], end["bytes_in"]) == (
        22,
        2217,
        33,
        32466,
    )
    assert sum(1 for r in table if r["action"] == "denied") == 9
    assert {r["direction"] for r in table if r["action"] == "allowed"} == {"outbound"}


def test_v1_nested_records_element_is_rejected_once_not_read_twice():
    result = load(V1_NESTED)
    assert_rejects(result, [(3, "record 3: holds a nested records list")])
    assert (result.stats.read, result.stats.loaded, result.stats.rejected) == (10, 9, 1)
    table = rows(result.table)
    assert sorted({r["source_line"] for r in table}) == [1, 2]
    first = next(r for r in table if r["src_port"] == 51529)
    assert (first["ts"], first["action"], first["action_raw"], first["direction"]) == (
        1_487_282_421 * S,
        "denied",
        "D",
        "inbound",
    )
    assert first["bytes_in"] is None  # v1 has no counters
    assert_balanced(result)


# --- malformed tuples ----------------------------------------------------------------------------


def test_malformed_v4_tuples_are_rejected_with_record_rule_and_tuple_index():
    result = load(V4_MALFORMED)
    mining = "record 1, rule 'UserRule_DenyOutboundMiningPorts', tuple"
    allow = "record 1, rule 'DefaultRule_AllowInternetOutBound', tuple"
    assert_rejects(
        result,
        [
            (1, f"{mining} 3: destination IP is not an IP address: '198.51.100.300'"),
            (1, f"{mining} 4: 9 fields where VNet (v4) tuples have 13"),
            (1, f"{mining} 5: flow state 'X' is not B, C, E or D"),
            (1, f"{mining} 6: timestamp: not an epoch time: 'soon'"),
            (1, f"{mining} 7: destination port out of range: 70000"),
            (1, f"{mining} 8: not a string but a JSON int"),
            (1, f"{mining} 9: direction 'X' is not I or O"),
            (1, f"{allow} 2: bytes sent out of range: -5"),
            (3, "record 3: not a JSON object but a JSON str"),
            (4, "record 4: flowRecords.flows is not a list"),
            (5, "record 5, rule 'UserRule_DenyOutboundMiningPorts': flowTuples is not a list"),
        ],
    )
    assert dict(result.stats.skipped) == {
        "not a flow log record (category NetworkSecurityGroupRuleCounter)": 1
    }
    assert (result.stats.read, result.stats.loaded, result.stats.rejected) == (18, 6, 11)
    assert_balanced(result)


def test_malformed_v4_loaded_tuples_are_exact_where_it_matters():
    got = by_port(load(V4_MALFORMED))
    assert sorted(got) == [2222, 40001, 40002, 40011, 40013, 40021]
    assert got[40001]["ts"] == 1_764_656_000_123 * MS
    assert (got[40001]["action"], got[40001]["direction"]) == ("denied", "outbound")
    # A 10-digit time in a v4 log: seconds by magnitude, and the row says so.
    assert got[40002]["ts"] == 1_764_656_001 * S
    assert got[40002]["ts_note"] == "epoch unit s by magnitude (format documents ms)"
    assert got[40002]["bytes_out"] is None  # empty counters stay unknown, not 0
    # An encryption status that drops the packet is a deny, whatever the state letter says.
    assert (got[40013]["action"], got[40013]["action_raw"]) == ("denied", "B/NX_NOT_ACCEPTED")
    # Inbound tuple: source-to-destination counts are what the VM received.
    udp = got[2222]
    assert (udp["protocol"], udp["direction"], udp["action_raw"]) == ("udp", "inbound", "C")
    assert (udp["packets_in"], udp["bytes_in"], udp["packets_out"], udp["bytes_out"]) == (
        3,
        300,
        5,
        2500,
    )
    assert got[40021]["source_line"] == 5
    assert got[40021]["observer"] == "azure-vnet-flow"  # record 5 has no targetResourceID
    assert got[40001]["observer"] == "azure-vnet-flow/agents-vnet"


def test_records_per_line_use_the_json_line_as_source_line():
    result = load(PER_LINE)
    assert_rejects(
        result,
        [
            (2, "not valid JSON"),
            (4, "record 1, rule 'DefaultRule_DenyAllInBound', tuple 2: flow state 'Q'"),
            (4, "tuple 3: 11 fields where NSG tuples have 8 (v1) or 13 (v2)"),
            (6, "not a JSON object but a JSON list"),
        ],
    )
    assert dict(result.stats.skipped) == {
        "blank line": 1,
        "not a flow log record (category NetworkSecurityGroupEvent)": 1,
    }
    got = by_port(result)
    assert {port: r["source_line"] for port, r in got.items()} == {
        40951: 1,
        40952: 1,
        40953: 1,
        51529: 4,
        28746: 5,
    }
    assert got[40951]["ts"] == 1_764_655_879 * S
    assert (got[40951]["action"], got[40951]["direction"]) == ("denied", "outbound")
    assert got[28746]["observer"] == "azure-nsg/SANDBOX-NSG"  # lower-case resourceid
    assert got[51529]["observer"] == "azure-nsg"  # record without a resource id
    assert (result.stats.read, result.stats.loaded, result.stats.rejected) == (11, 5, 4)
    assert_balanced(result)


def test_strict_mode_stops_at_the_first_bad_tuple():
    with pytest.raises(StrictRejection, match=r"vnet_flow_v4_malformed_tuples.json:1: record 1"):
        load(V4_MALFORMED, LoadOptions(strict=True))


def test_strict_mode_accepts_the_clean_samples():
    for path in (V2, V4):
        assert load(path, LoadOptions(strict=True)).stats.rejected == 0


def test_epoch_unit_option_overrides_magnitude():
    got = by_port(load(V4_MALFORMED, LoadOptions(epoch_unit="ms")))
    assert got[40002]["ts"] == 1_764_656_001 * MS  # read as ms because the user said so
    assert got[40002]["ts_note"] is None


# --- layouts and compression ---------------------------------------------------------------------


def test_minified_blob_and_array_of_records_match_the_pretty_document(tmp_path):
    document = json.loads(V4.read_text())
    minified = tmp_path / "PT1H.json"
    minified.write_text(json.dumps(document, separators=(",", ":")))
    array = tmp_path / "records.json"
    array.write_text(json.dumps(document["records"], indent=2))
    strip = ["source_path"]
    expected = load(V4).table.drop_columns(strip)
    assert load(minified).table.drop_columns(strip).equals(expected)
    assert load(array).table.drop_columns(strip).equals(expected)  # one record: item 1


def test_two_blobs_concatenated_as_json_lines_number_rows_by_line(tmp_path):
    document = json.loads(V2.read_text())
    path = tmp_path / "two.jsonl"
    path.write_text(json.dumps(document) + "\n" + json.dumps(document) + "\n")
    result = load(path)
    assert result.stats.loaded == 22
    assert sorted({r["source_line"] for r in rows(result.table)}) == [1, 2]


def test_a_json_object_that_is_not_a_flow_log_is_rejected(tmp_path):
    path = tmp_path / "odd.json"
    path.write_text('{"flowTuples": [], "value": 1}\n')
    result = load(path, forced="azure_nsg_flow")
    assert_rejects(result, [(1, "not an Azure flow log document")])
    assert_balanced(result)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("000D3AF87856", "00:0d:3a:f8:78:56"),
        ("00-0D-3A-F8-78-56", "00:0d:3a:f8:78:56"),
        ("not-a-mac", "not-a-mac"),
        ("", None),
        (None, None),
    ],
)
def test_mac_addresses_are_written_in_colon_form(value, expected):
    assert mac_address(value) == expected


# --- sniffing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_samples_sniff_as_unmistakable(path):
    source = Source(path, path.name)
    assert LOADER.sniff(source.head(), source.name) >= 0.9


@pytest.mark.parametrize(
    "content",
    [
        # Azure Activity Log export: the same {"records": [...]} wrapper, no flows.
        b'{"records": [{"time": "2025-01-01T00:00:00Z", "category": "Administrative",'
        b' "operationName": "MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/WRITE"}]}',
        # The docs' bare tuple strings, one per line (not the JSON log).
        b"1542110377,10.5.16.4,203.0.113.118,59831,443,T,O,A,B,,,,\n",
        # Traffic Analytics CSV export.
        b"TimeGenerated,FlowType_s,SrcIP_s,DestIP_s\n2019-02-12 14:22:40.697,AzurePublic,,\n",
        b"\x00\xff\xfe garbage \x80",
        b"",
    ],
    ids=["activity-log", "bare-tuples", "traffic-analytics-csv", "binary", "empty"],
)
def test_near_misses_do_not_sniff(content):
    assert LOADER.sniff(content, "PT1H.json") == 0.0


def test_forcing_azure_on_a_gcp_log_is_a_format_mismatch():
    path = ROOT / "tests" / "data" / "gcp_logging" / "firewall_sink_egress_denied.jsonl"
    with pytest.raises(FormatMismatch, match="does not look like azure_nsg_flow"):
        detect(Source(path, path.name), "azure_nsg_flow")


def test_category_alone_is_enough_to_detect_a_document_without_tuples(tmp_path):
    path = tmp_path / "PT1H.json"
    path.write_text(
        '{"records": [{"time": "2025-12-02T06:00:00Z", "category": "FlowLogFlowEvent",'
        ' "flowRecords": {"flows": []}}]}'
    )
    source = Source(path, path.name)
    assert LOADER.sniff(source.head(), source.name) >= MIN_SCORE
    result = load(path)
    assert (result.stats.read, result.table.num_rows) == (0, 0)
