"""generic_network loader: mapped nested JSON, same-named CSV, JSON arrays, Parquet, a real Azure
export, option errors, exact reject accounting, strict mode, gzip and the sniff rules."""

from __future__ import annotations

import gzip
import json
import re
from datetime import UTC
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from loader_helpers import ns, rows

from correlate.errors import InputError, OptionError, StrictRejection, UnknownFormat
from correlate.loaders import MIN_SCORE, REGISTRY, LoadOptions, LoadResult, detect
from correlate.pipeline import RunOptions, load_inputs
from correlate.sources import Source

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data" / "generic_network"
EXTRA = TESTS / "data" / "generic_network_extra"
GATEWAY = DATA / "egress_gateway.events.jsonl"
GATEWAY_MAPPING = EXTRA / "egress_gateway.mapping.json"
SAME_NAMED = DATA / "same_named_columns.events.csv"
BAD_CSV = DATA / "malformed_rows_ragged_bad_ip_no_ts.events.csv"
BAD_JSONL = DATA / "malformed_lines_bad_json_and_values.events.jsonl"
ARRAY = DATA / "pretty_array.events.json"
PARQUET = DATA / "flows_same_named.events.parquet"
AZURE = DATA / "msticpy_az_net_flows.events.csv"
AZURE_MAPPING = EXTRA / "msticpy_az_net_flows.mapping.json"
loader = REGISTRY["generic_network"]


def display(path: Path) -> str:
    try:
        return str(path.relative_to(TESTS.parent))
    except ValueError:
        return path.name


def options(**settings: str) -> LoadOptions:
    return LoadOptions(format_options={"generic_network": settings})


def load(path: Path, opts: LoadOptions | None = None, shown: str | None = None) -> LoadResult:
    source = Source(path, shown or display(path))
    detection = detect(source)
    assert detection.name == "generic_network"
    return detection.loader.read(source, opts or LoadOptions())


def gateway(opts: LoadOptions | None = None) -> LoadResult:
    return load(GATEWAY, opts or options(mapping=str(GATEWAY_MAPPING)))


def by_line(table: pa.Table) -> dict[int, dict[str, Any]]:
    return {row["source_line"]: row for row in rows(table)}


def assert_rejects(result: LoadResult, expected: dict[int, str]) -> None:
    got = {r.location.line: r.reason for r in result.rejects}
    assert sorted(got) == sorted(expected), got
    for line, fragment in expected.items():
        assert fragment in got[line], (line, got[line])
    assert len(result.rejects) == len(got)


def assert_balanced(result: LoadResult) -> None:
    stats = result.stats
    assert stats.read == stats.loaded + stats.rejected + stats.skipped_total
    assert stats.loaded == result.table.num_rows
    assert stats.rejected == len(result.rejects)


# --- a mapped in-house gateway log (nested JSON lines) ------------------------------------------


def test_gateway_first_row_is_exact():
    assert by_line(gateway().table)[1] == {
        "event_id": None,
        "ts": ns("2025-12-02T06:11:19.250Z"),  # +08:00 in the log
        "ts_end": None,
        "src_ip": "192.168.10.13",
        "src_port": 40951,
        "src_nat_ip": "47.96.180.21",
        "dst_ip": "203.0.113.7",
        "dst_port": 22,
        "protocol": "tcp",  # 6
        "direction": "outbound",  # egress
        "action": "denied",
        "action_raw": "BLOCK",
        "rule": "deny-ssh-out",
        "signature": None,
        "category": None,
        "dst_domain": None,
        "app": "ssh",
        "bytes_out": 60,
        "bytes_in": 0,
        "packets_out": 1,
        "packets_in": 0,
        "observer": "egw-hz-1",
        "host_hint": "sbx-03",
        "flow_key": "generic_network:CkT1a9",
        "ts_note": None,
        "source_format": "generic_network",
        "source_path": "tests/data/generic_network/egress_gateway.events.jsonl",
        "source_line": 1,
    }


def test_gateway_verdicts_directions_and_notes_follow_the_mapping():
    table = by_line(gateway().table)
    got = {
        line: (row["action"], row["action_raw"], row["direction"], row["ts_note"])
        for line, row in table.items()
    }
    assert got == {
        1: ("denied", "BLOCK", "outbound", None),
        2: ("allowed", "ALLOW", "outbound", "no zone: assumed Asia/Shanghai"),
        3: ("alerted", "Alert", "outbound", None),
        4: ("denied", "QUARANTINE", "internal", "epoch unit ms by magnitude (format documents s)"),
        5: ("allowed", "accept", "inbound", None),
        6: ("unknown", "shadow", "unknown", None),
    }


def test_gateway_naive_time_uses_the_mapping_zone_and_duration_its_unit():
    row = by_line(gateway().table)[2]
    assert row["ts"] == ns("2025-12-02T06:12:00.5Z")  # 14:12:00.5 Asia/Shanghai
    assert row["ts_end"] == ns("2025-12-02T06:12:02Z")  # + 1500 ms
    assert row["dst_domain"] == "pypi.org"  # lower case, trailing dot dropped


def test_gateway_epoch_milliseconds_and_nat_equal_to_source():
    row = by_line(gateway().table)[4]
    assert row["ts"] == 1_764_656_221_123_000_000
    assert row["src_nat_ip"] is None  # the "NAT" address is the source itself


def test_gateway_alert_keeps_signature_and_category():
    row = by_line(gateway().table)[3]
    assert (row["signature"], row["category"]) == ("Mining behavior on the host", "Mining Behavior")
    assert row["dst_domain"] == "pool.supportxmr.com"


def test_tz_option_beats_the_mapping_zone():
    opts = LoadOptions(
        zones={"generic_network": UTC},
        format_options={"generic_network": {"mapping": str(GATEWAY_MAPPING)}},
    )
    row = by_line(gateway(opts).table)[2]
    assert row["ts"] == ns("2025-12-02T14:12:00.5Z")
    assert row["ts_note"] == "no zone: assumed UTC"


def test_gateway_without_a_mapping_rejects_every_line_for_its_missing_ts():
    result = load(GATEWAY)
    assert_rejects(result, dict.fromkeys(range(1, 7), "ts is missing"))
    assert_balanced(result)


def test_inline_columns_override_the_mapping_file():
    opts = options(mapping=str(GATEWAY_MAPPING), columns="action=dir,rule=vm")
    row = by_line(gateway(opts).table)[1]
    assert (row["action"], row["action_raw"], row["rule"]) == ("unknown", "egress", "sbx-03")


def test_inline_columns_alone_read_nested_paths():
    opts = options(columns="ts=@timestamp,src_ip=flow.src.ip,dst_ip=flow.dst.ip,action=verdict")
    result = gateway(opts)
    assert result.stats.loaded == 6
    row = by_line(result.table)[6]
    assert (row["src_ip"], row["dst_ip"], row["action_raw"]) == (
        "192.168.10.13",
        "198.51.100.9",
        "shadow",
    )
    assert row["dst_port"] is None  # not mapped, and no same-named column


def test_inline_json_mapping_with_custom_vocabularies():
    mapping = json.loads(GATEWAY_MAPPING.read_text())
    mapping["actions"] = {"block": "alerted", "shadow": "denied"}
    mapping["directions"] = {"sideways": "internal"}
    result = gateway(options(mapping=json.dumps(mapping)))
    table = by_line(result.table)
    assert (table[1]["action"], table[6]["action"], table[6]["direction"]) == (
        "alerted",  # user words beat the defaults
        "denied",
        "internal",
    )
    assert table[4]["action"] == "unknown"  # QUARANTINE is only in the file's mapping
    assert result.context == []  # inline JSON is not a file


@pytest.mark.parametrize(("prefix", "expected"), [("zeek:", "zeek:CkT1a9"), ("", "CkT1a9")])
def test_flow_key_prefix_setting(prefix, expected):
    opts = options(mapping=str(GATEWAY_MAPPING), columns=f"flow_key_prefix={prefix}")
    assert by_line(gateway(opts).table)[1]["flow_key"] == expected


def test_mapping_file_is_reported_as_context():
    assert gateway().context == [str(GATEWAY_MAPPING.resolve())]


def test_mapping_file_beside_the_data_is_read_as_context_by_the_pipeline(tmp_path):
    (tmp_path / "gateway.jsonl").write_bytes(GATEWAY.read_bytes())
    mapping = tmp_path / "gateway.mapping.json"
    mapping.write_bytes(GATEWAY_MAPPING.read_bytes())
    run = RunOptions(
        formats=(("*.jsonl", "generic_network"),),
        load=LoadOptions(format_options={"generic_network": {"mapping": str(mapping)}}),
    )
    loaded = load_inputs([str(tmp_path)], run)
    assert loaded.events.num_rows == 6
    reasons = {Path(f.path).name: f.skipped_reason for f in loaded.inputs}
    assert reasons["gateway.mapping.json"].startswith("read as context by ")


# --- same-named columns, CSV ------------------------------------------------------------------


def test_same_named_csv_rows():
    result = load(SAME_NAMED)
    table = by_line(result.table)
    assert table[2]["ts"] == ns("2025-12-02T06:19:44Z")
    assert table[2]["ts_end"] == ns("2025-12-02T06:20:44Z")
    assert table[2]["dst_domain"] == "pool.supportxmr.com"
    assert (table[2]["flow_key"], table[2]["observer"]) == ("generic_network:C1a2b3", "edge-fw")
    assert (table[2]["bytes_out"], table[2]["bytes_in"]) == (328, 721)
    assert table[3]["ts"] == 1_764_656_221_000_000_000
    assert (table[3]["protocol"], table[3]["direction"], table[3]["flow_key"]) == (
        "udp",
        "unknown",
        None,
    )
    assert (table[3]["action"], table[3]["action_raw"]) == ("denied", "Drop")
    assert table[4]["ts"] == ns("2025-12-02T06:40:00Z")
    assert table[4]["ts_note"] == "no zone: assumed UTC"
    assert (table[4]["direction"], table[4]["action"]) == ("outbound", "denied")
    assert table[5]["ts"] == 1_764_656_400_500_000_000
    assert table[5]["action"] == "allowed"
    assert (table[6]["src_ip"], table[6]["dst_ip"]) == ("2001:db8::1", "2001:db8:ffff::a")
    assert result.stats.skipped == {"CSV header": 1}
    assert result.stats.notes == {
        "no zone: assumed UTC": 1,
        "epoch unit ms by magnitude (format documents s)": 1,
    }
    assert_balanced(result)


def test_epoch_unit_setting_is_taken_as_given(tmp_path):
    path = tmp_path / "ms.events.csv"
    path.write_text("t,s,d\n1764656400500,192.168.10.13,203.0.113.7\n")
    result = load(path, options(columns="ts=t,src_ip=s,dst_ip=d,epoch_unit=ms"))
    [row] = rows(result.table)
    assert (row["ts"], row["ts_note"]) == (1_764_656_400_500_000_000, None)


def test_malformed_csv_rejects_exactly_the_bad_rows():
    result = load(BAD_CSV)
    assert_rejects(
        result,
        {
            3: "4 columns where the header has 10",
            4: "src_ip is not an IP address: '192.168.10.300'",
            6: "ts is missing",
            7: "dst_port out of range: 70000",
            8: "bytes_out out of range: -5",
            9: "ts: not an ISO 8601 time: 'yesterday'",
            10: "dst_ip is missing",
            15: "bytes_out is not an integer: '1.2e3'",
        },
    )
    assert sorted(by_line(result.table)) == [2, 11, 12, 14]
    assert result.stats.skipped == {"CSV header": 1, "blank line": 1}
    assert result.stats.read == 14  # 15 lines, the rule on 12-13 is one record
    assert_balanced(result)


def test_malformed_csv_loaded_rows_keep_their_quirks():
    table = by_line(load(BAD_CSV).table)
    assert (table[11]["ts_end"], table[11]["ts_note"]) == (None, "ts_end before ts: end ignored")
    assert table[12]["rule"] == "deny-ssh-out\n(legacy)"  # a quoted two-line field, first line
    assert (table[14]["dst_port"], table[14]["protocol"]) == (443, "tcp")  # "443.0", "6.0"
    assert table[14]["bytes_out"] == 1200


def test_csv_header_without_the_required_columns_is_one_input_error():
    with pytest.raises(InputError, match=r"the CSV header has no column for ts, src_ip, dst_ip"):
        load(AZURE)


def test_csv_header_error_names_the_mapped_column():
    with pytest.raises(InputError, match=re.escape("no column for ts (when)")):
        load(SAME_NAMED, options(columns="ts=when"))


# --- JSON lines with bad values, JSON arrays --------------------------------------------------


def test_malformed_jsonl_rejects_exactly_the_bad_lines():
    result = load(BAD_JSONL)
    assert_rejects(
        result,
        {
            2: "not valid JSON",
            3: "not a JSON object but a JSON list",
            4: "ts: not a time: True",
            6: "src_ip is not an IP address: {'ip': '192.168.10.13'}",
            7: "ts: not a time: {'sec': 1764658205}",
            9: "duration out of range: -1",
            10: "src_port is not an integer: 'abc'",
        },
    )
    assert result.stats.skipped == {"blank line": 1}
    assert result.stats.read == 11
    assert_balanced(result)


def test_malformed_jsonl_loaded_rows():
    table = by_line(load(BAD_JSONL).table)
    assert sorted(table) == [1, 8, 11]
    assert table[1]["action"] == "denied"
    assert table[8]["ts"] == 1_764_658_207_250_000_000
    assert table[8]["ts_end"] == 1_764_658_208_750_000_000  # + 1.5 s
    assert (table[8]["protocol"], table[8]["action"]) == ("tcp", "denied")
    assert (table[11]["action"], table[11]["action_raw"]) == ("unknown", "True")
    assert table[11]["direction"] == "outbound"  # OUT


def test_pretty_printed_array_items_are_numbered_by_index():
    result = load(ARRAY)
    assert_rejects(result, {2: "dst_ip is missing", 3: "not a JSON object but a JSON str"})
    table = by_line(result.table)
    assert sorted(table) == [1, 4]
    assert table[1]["ts"] == ns("2025-12-01T23:00:00Z")
    assert (table[1]["action"], table[1]["action_raw"]) == ("denied", "reject")
    assert (table[4]["action"], table[4]["direction"]) == ("allowed", "inbound")
    assert_balanced(result)


# --- Parquet ----------------------------------------------------------------------------------


def test_parquet_same_named_columns():
    result = load(PARQUET)
    assert_rejects(result, {3: "ts is missing"})
    table = by_line(result.table)
    assert table[1]["ts"] == 1_764_656_221_123_456_000
    assert table[1]["ts_end"] == 1_764_656_222_000_000_000  # zone-less ms timestamp, read as UTC
    assert table[1]["ts_note"] == "no zone: assumed UTC"
    assert (table[1]["protocol"], table[1]["dst_port"], table[1]["action"]) == ("tcp", 22, "denied")
    assert (table[2]["ts_end"], table[2]["ts_note"], table[2]["action"]) == (None, None, "alerted")
    assert result.stats.notes == {"no zone: assumed UTC": 1}
    assert_balanced(result)


def test_parquet_nested_struct_through_a_mapping_in_a_zone(tmp_path):
    path = tmp_path / "gw.parquet"
    table = pa.table(
        {
            "when": pa.array([1_764_684_679_000_000_000], pa.timestamp("ns")),  # naive local
            "flow": pa.array(
                [{"src": "192.168.10.13", "dst": "203.0.113.7", "dport": 22}],
                pa.struct([("src", pa.string()), ("dst", pa.string()), ("dport", pa.int32())]),
            ),
            "verdict": ["drop"],
            "unused": ["x"],
        }
    )
    pq.write_table(table, path)
    mapping = {
        "ts": "when",
        "src_ip": "flow.src",
        "dst_ip": "flow.dst",
        "dst_port": "flow.dport",
        "action": "verdict",
        "time_zone": "Asia/Shanghai",
    }
    source = Source(path, "gw.parquet")
    assert detect(source, forced="generic_network").score == 0.3
    result = loader.read(source, options(mapping=json.dumps(mapping)))
    [row] = rows(result.table)
    assert row["ts"] == ns("2025-12-02T06:11:19Z")  # 14:11:19 in Asia/Shanghai
    assert row["ts_note"] == "no zone: assumed Asia/Shanghai"
    assert (row["src_ip"], row["dst_ip"], row["dst_port"]) == ("192.168.10.13", "203.0.113.7", 22)
    assert row["action"] == "denied"


def test_parquet_without_a_required_column_is_one_input_error(tmp_path):
    path = tmp_path / "x.events.parquet"
    pq.write_table(pa.table({"ts": [1], "src_ip": ["192.168.10.13"]}), path)
    with pytest.raises(InputError, match=r"Parquet schema has no column for dst_ip"):
        loader.read(Source(path, "x.events.parquet"), LoadOptions())


def test_compressed_parquet_is_refused_with_a_clear_error(tmp_path):
    path = tmp_path / "flows.events.parquet.gz"
    path.write_bytes(gzip.compress(PARQUET.read_bytes()))
    with pytest.raises(InputError, match="decompress it first"):
        loader.read(Source(path, path.name), LoadOptions())


# --- a real export: msticpy's Azure Traffic Analytics CSV ---------------------------------------


def test_msticpy_azure_export_through_a_mapping():
    result = load(AZURE, options(mapping=str(AZURE_MAPPING)))
    row = by_line(result.table)[2]
    assert {k: row[k] for k in ("ts", "ts_end", "src_ip", "dst_ip", "dst_port", "direction")} == {
        "ts": ns("2019-02-12T13:00:07Z"),
        "ts_end": ns("2019-02-12T13:45:08Z"),
        "src_ip": "10.0.3.5",
        "dst_ip": "65.55.44.109",
        "dst_port": 443,  # "443.0" in the export
        "direction": "outbound",  # FlowDirection O
    }
    assert (row["app"], row["observer"], row["host_hint"]) == (
        "https",
        "AzurePublic",
        "msticalertswin1",
    )
    assert (row["action"], row["action_raw"]) == ("unknown", None)  # no verdict column
    assert row["ts_note"] == "no zone: assumed UTC"
    assert_rejects(
        result,
        dict.fromkeys([36, 37, 115, 116, 117, 131, 146, 147], "src_ip (VMIPAddress) is missing"),
    )
    assert (result.stats.read, result.stats.loaded) == (461, 452)
    assert result.stats.skipped == {"CSV header": 1}
    directions = {r["direction"] for r in rows(result.table)}
    assert directions == {"outbound", "inbound"}
    assert_balanced(result)


# --- accounting, strict mode, compression -------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "mapping"),
    [
        (GATEWAY, GATEWAY_MAPPING),
        (SAME_NAMED, None),
        (BAD_CSV, None),
        (BAD_JSONL, None),
        (ARRAY, None),
        (PARQUET, None),
        (AZURE, AZURE_MAPPING),
    ],
    ids=lambda v: v.name if isinstance(v, Path) else str(v),
)
def test_every_fixture_balances(path, mapping):
    result = load(path, options(mapping=str(mapping)) if mapping else None)
    assert_balanced(result)
    assert set(r["source_format"] for r in rows(result.table)) <= {"generic_network"}


@pytest.mark.parametrize(("path", "first_bad"), [(BAD_CSV, 3), (BAD_JSONL, 2), (ARRAY, 2)])
def test_strict_stops_at_the_first_rejected_row(path, first_bad):
    with pytest.raises(StrictRejection, match=rf"^{re.escape(display(path))}:{first_bad}: "):
        load(path, LoadOptions(strict=True))


# --- option errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"mapping": '{"timestamp": "t"}'}, "unknown key(s) timestamp"),
        ({"mapping": '{"actions": {"drop": "blocked"}}'}, "actions['drop'] must be one of"),
        ({"mapping": '{"directions": ["out"]}'}, "directions must be a JSON object"),
        ({"mapping": '{"epoch_unit": "min"}'}, "epoch_unit must be one of"),
        ({"mapping": '{"duration_unit": "h"}'}, "duration_unit must be one of"),
        ({"mapping": '{"time_zone": "Mars/Olympus"}'}, "unknown time zone"),
        ({"mapping": '{"src_ip": null}'}, "src_ip is required and cannot be null"),
        ({"mapping": '{"dst_port": 5}'}, "dst_port must be a source field name or null"),
        ({"mapping": '{"ts": "t"'}, "not valid JSON"),
        ({"mapping": '["ts"]'}, "expected a JSON object"),
        ({"mapping": "/nonexistent/map.json"}, "cannot read /nonexistent/map.json"),
        ({"columns": "ts"}, "expected TARGET=FIELD pairs"),
        ({"columns": "actions=drop"}, "actions is a JSON object"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_invalid_mappings_are_option_errors(settings, message):
    with pytest.raises(OptionError, match=re.escape(message)):
        loader.read(Source(SAME_NAMED, "x"), options(**settings))


def test_null_turns_a_same_named_column_off():
    row = by_line(load(SAME_NAMED, options(mapping='{"dst_port": null}')).table)[2]
    assert row["dst_port"] is None


def test_options_table_lists_the_keys_read():
    assert set(loader.OPTIONS) == {"mapping", "columns"}


# --- sniffing ---------------------------------------------------------------------------------


def test_sniff_scores_by_name_and_shape():
    head = SAME_NAMED.read_bytes()
    assert loader.sniff(head, "same_named_columns.events.csv") == 0.6
    assert loader.sniff(head, "same_named_columns.csv") == 0.3  # forceable, never chosen
    assert loader.sniff(head, "events.csv") == 0.3  # the convention needs *.events.csv
    assert loader.sniff(GATEWAY.read_bytes(), "x.EVENTS.JSONL") == 0.6
    assert loader.sniff(PARQUET.read_bytes(), "flows.parquet") == 0.3
    assert loader.sniff(PARQUET.read_bytes(), "flows.events.parquet") == 0.6


def test_unconventional_name_is_not_detected_but_can_be_forced(tmp_path):
    path = tmp_path / "gateway.jsonl"
    path.write_bytes(GATEWAY.read_bytes())
    source = Source(path, "gateway.jsonl")
    with pytest.raises(UnknownFormat):
        detect(source)
    detection = detect(source, forced="generic_network")
    assert (detection.name, detection.forced, detection.score) == ("generic_network", True, 0.3)


@pytest.mark.parametrize(
    ("filename", "head"),
    [
        ("cfw.events.jsonl", (TESTS / "data" / "cfw_malformed.jsonl").read_bytes()),
        ("tools.calls.jsonl", GATEWAY.read_bytes()),
        ("notes.events.csv", b"# a markdown title, with a comma\n"),
        ("junk.events.json", b"\x00\x01\x02 not json"),
        ("numbers.events.csv", b"1,2,3\n4,5,6\n"),
        ("empty.events.jsonl", b""),
        ("not_json.events.jsonl", b"{not json at all\n"),
    ],
)
def test_sniff_is_zero_or_below_detection_on_near_misses(filename, head):
    score = loader.sniff(head, filename)
    if filename.startswith(("cfw", "tools")):
        assert score == 0.0  # another loader claims it: forcing generic_network must fail
    else:
        assert score < MIN_SCORE


def test_sniff_gives_way_to_any_confident_loader():
    cfw = (TESTS / "data" / "cfw_malformed.jsonl").read_bytes()
    assert REGISTRY["alibaba_cfw"].sniff(cfw, "cfw.events.jsonl") >= MIN_SCORE
    assert loader.sniff(cfw, "cfw.events.jsonl") == 0.0


def test_the_agent_generic_loader_does_not_claim_events_files():
    head = GATEWAY.read_bytes()
    assert REGISTRY["generic"].sniff(head, GATEWAY.name) == 0.0
    assert loader.sniff(head, "gateway.calls.jsonl") == 0.0  # and vice versa


@pytest.mark.parametrize("seed", range(8))
def test_sniff_never_raises_on_random_bytes(seed):
    import random

    rng = random.Random(seed)
    head = bytes(rng.randrange(256) for _ in range(512))
    for prefix in (b"", b"{", b"[", b"PAR1", b"a,b\n"):
        assert 0.0 <= loader.sniff(prefix + head, "x.events.jsonl") <= 1.0


def test_a_duration_past_the_timestamp_range_is_a_reject_not_a_crash(tmp_path):
    path = tmp_path / "late.events.jsonl"
    good = '{"ts": "2200-01-01T00:00:00Z", "src_ip": "10.0.0.1", "dst_ip": "203.0.113.7"'
    path.write_text(good + ', "duration": 1}\n' + good + ', "duration": 999999999999}\n')
    result = load(path)
    assert_rejects(result, {2: "duration out of range: 999999999999"})
    assert result.table.num_rows == 1
    assert_balanced(result)
