"""The generic_network loader's column-wise paths (JSON lines through the mapped paths, CSV runs,
Parquet record batches) give exactly the per-record reader's rows, rejects and stats, whatever the
records and the mapping's time settings (property tests); with ``run``'s keep policy they keep
exactly the violations and the anchor sample.
``python tests/test_fast_path_generic_network.py DIR`` measures them on ~200k records."""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from datetime import UTC, date, datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loader_helpers import changed
from test_fast_path_zeek_conn import json_lines, measure, raw_json, same, write

from correlate.errors import CorrelateError, StrictRejection
from correlate.keep import KeepPolicy, cut_sample
from correlate.loaders import LoadOptions, LoadResult, blocks, generic_network
from correlate.loaders.base import FileLoad
from correlate.loaders.records import json_documents
from correlate.schema import NETWORK_EVENTS
from correlate.sources import Limits, Source

NESTED = {
    "ts": "@timestamp",
    "duration": "dur_ms",
    "duration_unit": "ms",
    "src_ip": "flow.src.ip",
    "src_port": "flow.src.port",
    "src_nat_ip": "flow.src.nat",
    "dst_ip": "flow.dst.ip",
    "dst_port": "flow.dst.port",
    "protocol": "flow.proto",
    "direction": "dir",
    "action": "verdict",
    "rule": "policy",
    "signature": "sig",
    "dst_domain": "sni",
    "app": "l7",
    "bytes_out": "bytes.tx",
    "bytes_in": "bytes.rx",
    "observer": "gw",
    "host_hint": "vm",
    "flow_key": "flow.id",
    "actions": {"QUARANTINE": "denied"},
}
GOOD: dict[str, Any] = {
    "@timestamp": "2025-12-02T06:11:19.250Z",
    "gw": "egw-hz-1",
    "vm": "sbx-03",
    "flow": {
        "id": "CkT1a9",
        "src": {"ip": "192.168.10.13", "port": 40951, "nat": "47.96.180.21"},
        "dst": {"ip": "203.0.113.7", "port": 22},
        "proto": 6,
    },
    "verdict": "BLOCK",
    "dir": "egress",
    "policy": "deny-ssh-out",
    "l7": "ssh",
    "sni": "PyPI.org.",
    "bytes": {"tx": 60, "rx": 0},
}


def record(**changes: Any) -> dict[str, Any]:
    """GOOD with changes; ``a__b`` sets a nested value, ``...`` removes one."""
    return changed(GOOD, **changes)


TIMES = [
    "2025-12-02T06:11:19Z",
    "2025-12-02T14:11:19.250+08:00",
    "2025-12-02T14:11:19,5+0800",
    "2025-12-02T14:11:19-02",
    "2025-12-02 14:12:00.5",  # no zone: the mapping's (or --tz) zone, noted
    "2025-12-02t14:12:00",
    "2025-12-02T14:12",  # no seconds: the per-value reader
    "2025-02-30T00:00:00Z",
    "2025-12-02T06:11:19+24:00",
    "2025-12-02T06:11:19 UTC",
    1764656221,
    1764656221123,  # milliseconds by magnitude: a note
    1764656221123456,
    1764656221.25,
    "1764656221",
    "1764656221123",
    "1764656221.5",
    "1e9",
    -5,
    "soon",
    "",
    " ",
    "-",
    None,
    True,
]
CHANGES: list[dict[str, Any]] = [
    {},
    *({"@timestamp": t} for t in TIMES),
    {"@timestamp": ...},
    {"dur_ms": 1500},
    {"dur_ms": 1.5},
    {"dur_ms": "250"},
    {"dur_ms": "443.0"},
    {"dur_ms": -1},
    {"dur_ms": "long"},
    {"dur_ms": True},
    {"dur_ms": 1e13},
    {"dur_ms": 9007199254740993},  # not a float exactly
    {"dur_ms": "900719925474099"},
    {"dur_ms": ""},
    {"dur_ms": "\u00a0"},  # blank to Python, not to ASCII
    {"@timestamp": "\x1c"},
    {"flow__src__ip": "192.168.XX.XX"},
    {"flow__src__ip": "2001:DB8::1"},
    {"flow__src__ip": ...},
    {"flow__src__nat": "192.168.10.13"},  # the source itself: dropped
    {"flow__src__nat": "bad"},
    {"flow__src__port": 70000},
    {"flow__src__port": "443"},
    {"flow__src__port": "443.0"},
    {"flow__src__port": 443.0},
    {"flow__src__port": -1},
    {"flow__src__port": True},
    {"flow__dst__port": None},
    {"flow__proto": "TCP"},
    {"flow__proto": "17.0"},
    {"flow__proto": True},
    {"flow__proto": 58},
    {"dir": "INGRESS"},
    {"dir": "sideways"},
    {"dir": ...},
    {"verdict": "quarantine"},
    {"verdict": " Allow "},
    {"verdict": ""},
    {"sni": ""},
    {"sni": "Example.COM"},
    {"sni": 5},
    {"l7": 443},
    {"l7": True},
    {"bytes__tx": -5},
    {"bytes__tx": 2.5},
    {"bytes__tx": "12"},
    {"bytes__tx": "12.0"},
    {"bytes": None},
    {"flow__id": 17},
    {"flow__id": ""},
    {"flow": "not an object"},
    {"flow": None},
    {"gw": {"nested": 1}},
    {"policy": "  padded  "},
]


def jline(**changes: Any) -> bytes:
    return json.dumps(record(**changes), separators=(",", ":")).encode()


JSON_VARIANTS = (
    [jline(**c) for c in CHANGES]
    + [
        jline()[:-1] + b',"flow.src.ip":"10.9.9.9"}',  # a dotted key: lookup takes it first
        jline()[:-1] + b',"@timestamp":"2025-12-02T06:11:19Z"}',  # a key twice
        b'{"broken": ',
        b"[1, 2]",
        b"",
        jline() + b"\r",
        b"\xef\xbb\xbf" + jline(),
        jline(vm="s\ud800"),  # a lone surrogate escape
        jline()[:-1] + b',"x":"\xff"}',
        jline()[:-1] + b',"deep":' + b"[" * 600 + b"]" * 600 + b"}",
    ]
)
SETTINGS = [
    {},
    {"time_zone": "UTC"},
    {"time_zone": "+08:00"},
    {"time_zone": "Asia/Shanghai"},
    {"epoch_unit": "ms"},
    {"epoch_unit": "s", "time_zone": "-05:30"},
]


def mapping(**settings: Any) -> LoadOptions:
    spec = {**NESTED, **settings}
    return LoadOptions(format_options={"generic_network": {"mapping": json.dumps(spec)}})


def reference(source: Source, options: LoadOptions) -> LoadResult:
    """The per-record reader on every record: the loader before the column-wise paths."""
    spec = generic_network.load_mapping(options)
    convert = generic_network._Converter(spec, options)
    load = FileLoad(source, options, generic_network.name, generic_network.kind, NETWORK_EVENTS)
    head = source.head()
    if head.startswith(b"PAR1"):
        records = generic_network._parquet_records(source, spec)
    elif generic_network.first_line(head).startswith((b"{", b"[")):
        records = json_documents(source, load.stats, load.sink)
    else:
        records = generic_network._checked_csv_rows(source, spec, load.stats, load.sink)
    for line, row, raw in records:
        convert.record(line, row, raw, load)
    return load.result(context=list(spec.context))


def check(path: Path, options: LoadOptions, cap: int = 1 << 24) -> None:
    source = Source(path, path.name, limits=Limits(max_line_bytes=cap))
    found: list[LoadResult | str] = []
    for fast in (True, False):
        try:
            found.append(
                generic_network.read(source, options) if fast else reference(source, options)
            )
        except CorrelateError as exc:
            found.append(f"{type(exc).__name__}: {exc}")
    if isinstance(found[0], str) or isinstance(found[1], str):
        assert found[0] == found[1]
    else:
        same(found[0], found[1])
        assert found[0].context == found[1].context


def json_schema() -> pa.Schema:
    path = Path("/tmp") / "generic-network-head.jsonl"
    write(path, [jline()])
    plan = generic_network._json_plan(
        Source(path, path.name), generic_network.load_mapping(mapping())
    )
    assert plan is not None
    return plan.schema


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=json_lines(JSON_VARIANTS, json_schema()),
    piece=st.integers(1, 20),
    spec=st.sampled_from(SETTINGS),
    unit=st.sampled_from(["auto", "auto", "s", "ms"]),
)
def test_json_column_wise_equals_record_by_record(
    tmp_path_factory, monkeypatch, lines, piece, spec, unit
):
    monkeypatch.setattr(blocks, "SMALLEST_PIECE", piece)
    path = write(tmp_path_factory.mktemp("gn") / "flows.events.jsonl", lines)
    options = mapping(**spec)
    check(path, LoadOptions(epoch_unit=unit, format_options=options.format_options))


@pytest.mark.parametrize("spec", SETTINGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_each_json_variant_inside_a_run_of_good_lines(tmp_path, spec):
    for index, line in enumerate(JSON_VARIANTS):
        lines = [jline()] * 5 + [line] + [jline()] * 5
        check(write(tmp_path / f"v{index}.events.jsonl", lines), mapping(**spec))


def test_a_file_whose_types_change_line_by_line_reads_the_same(tmp_path):
    lines = [jline(flow__src__port=str(i) if i % 2 else i) for i in range(3000)]
    check(write(tmp_path / "mixed.events.jsonl", lines), mapping())


@pytest.mark.parametrize(
    "columns",
    [
        "ts=@timestamp,src_ip=flow.src.ip,dst_ip=flow.dst.ip,action=verdict",
        "ts=@timestamp,src_ip=flow.src.ip,dst_ip=flow.dst.ip,src_port=flow,dst_port=flow.src",
        "ts=@timestamp,src_ip=flow.src.ip,dst_ip=flow.dst.ip,rule=flow.src.ip",
        "ts=@timestamp,src_ip=flow.src.ip,dst_ip=hops.0.ip",
    ],
)
def test_other_mappings_read_the_same(tmp_path, columns):
    options = LoadOptions(format_options={"generic_network": {"columns": columns}})
    lines = [jline(**c) for c in CHANGES[:20]] + [jline()] * 10
    lines.append(json.dumps({**GOOD, "hops": [{"ip": "1.1.1.1"}]}).encode())
    check(write(tmp_path / "m.events.jsonl", lines), options)


ISO_TEXT = st.builds(
    lambda y, mo, d, h, mi, sec, sep, frac, zone: (
        f"{y:04d}-{mo:02d}-{d:02d}{sep}{h:02d}:{mi:02d}:{sec:02d}{frac}{zone}"
    ),
    st.integers(1899, 2100),
    st.integers(0, 13),
    st.integers(0, 32),
    st.integers(0, 24),
    st.integers(0, 60),
    st.integers(0, 60),
    st.sampled_from(["T", "t", " ", "_"]),
    st.sampled_from(["", ".5", ",25", ".123456789", ".1234567891234", "."]),
    st.sampled_from(["", "Z", "z", "+08:00", "-0530", "+05", "+24:00", "+08:60", " UTC", "+8"]),
)


@settings(max_examples=500, deadline=None)
@given(
    texts=st.lists(ISO_TEXT, min_size=1, max_size=20),
    zone=st.sampled_from([UTC, generic_network.resolve_zone("+08:00"), ZoneInfo("Asia/Shanghai")]),
)
def test_iso_text_is_read_as_parse_iso_reads_it(texts, zone):
    ns, read, naive = generic_network.iso_ns(pa.array(texts), zone)
    for text, value, good, bare in zip(texts, ns.to_pylist(), read, naive, strict=True):
        if not good:
            try:
                _, note = generic_network.parse_iso(text, default_tz=zone)
            except generic_network.TimeParseError:
                continue
            shaped = re.match(generic_network._ISO, text)
            assert not shaped or (note and not isinstance(zone, timezone)), text  # missed one
            continue
        expected, note = generic_network.parse_iso(text, default_tz=zone)
        assert value == expected, text
        assert bool(bare) == (note is not None), text


# --- CSV ------------------------------------------------------------------------------------------

CSV_FIELDS = [
    "ts",
    "ts_end",
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "protocol",
    "direction",
    "action",
    "bytes_out",
    "rule",
    "flow_key",
]
CSV_GOOD = {
    "ts": "2025-12-02 06:11:19.250",
    "ts_end": "2025-12-02 06:11:20",
    "src_ip": "192.168.10.13",
    "src_port": "40951",
    "dst_ip": "203.0.113.7",
    "dst_port": "443.0",
    "protocol": "6",
    "direction": "O",
    "action": "allow",
    "bytes_out": "60",
    "rule": "r-1",
    "flow_key": "f1",
}


def csv_line(values: list[str], quote_all: bool = False) -> bytes:
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL).writerow(values)
    return out.getvalue().rstrip("\r\n").encode()


def cline(quote_all: bool = False, /, **changes: str) -> bytes:
    row = {**CSV_GOOD, **changes}
    return csv_line([row[f] for f in CSV_FIELDS], quote_all)


CSV_HEADER = csv_line(CSV_FIELDS)
CSV_CHANGES: list[dict[str, str]] = [
    {},
    *({"ts": t} for t in TIMES if isinstance(t, str)),
    *({"ts": str(t)} for t in TIMES if isinstance(t, (int, float)) and not isinstance(t, bool)),
    {"ts_end": ""},
    {"ts_end": "2025-12-02 06:00:00"},  # before ts: a note
    {"ts_end": "soon"},
    {"ts_end": "\x1c"},
    {"ts_end": " - "},
    {"src_ip": "bad"},
    {"dst_ip": ""},
    {"dst_port": "70000"},
    {"dst_port": "443.5"},
    {"dst_port": ""},
    {"src_port": "-"},
    {"protocol": "TCP"},
    {"direction": "I"},
    {"action": "DENY"},
    {"bytes_out": "-5"},
    {"bytes_out": "1e3"},
    {"rule": "a, b"},  # quoted
    {"rule": 'say "hi"'},  # doubled quotes
    {"flow_key": ""},
]
CSV_VARIANTS = (
    [cline(**c) for c in CSV_CHANGES]
    + [
        cline(True),
        cline(True, rule=","),
        cline().replace(b"r-1", b'r"1'),  # a quote inside an unquoted field
        cline().replace(b"r-1", b'"r-1"x'),  # text after a closing quote
        cline() + b",extra",
        cline()[: cline().rindex(b",")],
        b"",
        b"  ,  ,",
        cline() + b"\r",
        cline().replace(b"allow", b"al\xfflow"),
        cline().replace(b"allow", b"al\x00low"),
        cline(rule="x" * 140_000),
    ]
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(
        st.one_of(
            st.sampled_from(CSV_VARIANTS),
            st.integers(1, 20).map(lambda n: [cline()] * n),
            st.sampled_from(CSV_VARIANTS[: len(CSV_CHANGES)]).map(lambda line: [line] * 3),
        ),
        min_size=1,
        max_size=15,
    ),
    lead=st.sampled_from([[CSV_HEADER], [b"\xef\xbb\xbf" + CSV_HEADER], [b"", CSV_HEADER]]),
    zone=st.sampled_from([None, "UTC", "+08:00", "Asia/Shanghai"]),
)
def test_csv_column_wise_equals_record_by_record(tmp_path_factory, lines, lead, zone):
    body = list(lead)
    for item in lines:
        body.extend(item if isinstance(item, list) else [item])
    spec: dict[str, Any] = {"directions": {"O": "outbound", "I": "inbound"}}
    if zone:
        spec["time_zone"] = zone
    options = LoadOptions(format_options={"generic_network": {"mapping": json.dumps(spec)}})
    check(write(tmp_path_factory.mktemp("gn") / "flows.events.csv", body), options)


def test_each_csv_variant_inside_a_run_of_good_lines(tmp_path):
    for index, line in enumerate(CSV_VARIANTS):
        lines = [CSV_HEADER, *[cline()] * 5, line, *[cline()] * 5]
        check(write(tmp_path / f"v{index}.events.csv", lines), LoadOptions())


def test_a_record_over_two_lines_is_read_by_the_streaming_reader(tmp_path):
    lines = [CSV_HEADER, *[cline()] * 5, cline(rule="two\nlines"), *[cline()] * 5]
    body = b"\n".join(lines) + b"\n"
    path = tmp_path / "multi.events.csv"
    path.write_bytes(body)
    check(path, LoadOptions())
    result = generic_network.read(Source(path, path.name), LoadOptions())
    assert result.stats.loaded == 11


def test_a_header_without_a_required_column_stops_at_the_same_record(tmp_path):
    lines = [csv_line(["ts", "src_ip"]), b"1,2,3", csv_line(["1764656221", "10.0.0.1"])]
    check(write(tmp_path / "missing.events.csv", lines), LoadOptions())
    check(write(tmp_path / "strict.events.csv", lines), LoadOptions(strict=True))


# --- Parquet --------------------------------------------------------------------------------------

PARQUET_SCHEMA = pa.schema(
    [
        ("ts", pa.string()),
        ("src_ip", pa.string()),
        ("dst_ip", pa.string()),
        ("dst_port", pa.int32()),
        ("protocol", pa.int64()),
        ("action", pa.string()),
        ("bytes_out", pa.int64()),
        ("flow", pa.struct([("id", pa.string()), ("proto", pa.string())])),
    ]
)
PARQUET_ROW = {
    "ts": "2025-12-02T06:11:19Z",
    "src_ip": "192.168.10.13",
    "dst_ip": "203.0.113.7",
    "dst_port": 443,
    "protocol": 6,
    "action": "deny",
    "bytes_out": 60,
    "flow": {"id": "f1", "proto": "tcp"},
}
PARQUET_CHANGES = [
    {},
    {"ts": "2025-12-02 14:11:19"},
    {"ts": "1764656221"},
    {"ts": "soon"},
    {"ts": None},
    {"src_ip": "bad"},
    {"dst_port": 70000},
    {"dst_port": -1},
    {"bytes_out": -5},
    {"protocol": None},
    {"flow": None},
    {"action": "ALLOW"},
]


def parquet_table(changes: list[dict[str, Any]], schema: pa.Schema = PARQUET_SCHEMA) -> pa.Table:
    return pa.Table.from_pylist([{**PARQUET_ROW, **c} for c in changes], schema=schema)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    changes=st.lists(st.sampled_from(PARQUET_CHANGES), min_size=1, max_size=30),
    batch=st.integers(1, 12),
    zone=st.sampled_from([None, "+08:00", "Asia/Shanghai"]),
)
def test_parquet_column_wise_equals_record_by_record(
    tmp_path_factory, monkeypatch, changes, batch, zone
):
    monkeypatch.setattr(generic_network, "BATCH_ROWS", batch)
    path = tmp_path_factory.mktemp("gn") / "flows.events.parquet"
    pq.write_table(parquet_table(changes), path)
    spec: dict[str, Any] = {"flow_key": "flow.id"}
    if zone:
        spec["time_zone"] = zone
    check(path, LoadOptions(format_options={"generic_network": {"mapping": json.dumps(spec)}}))


T = 1_764_656_221_000


@pytest.mark.parametrize(
    "column",
    [
        pa.array([T, None, T + 5, -T], pa.timestamp("ms", tz="UTC")),
        pa.array([T // 1000, None, 2**40, 5], pa.timestamp("s", tz="UTC")),  # out of range
        pa.array([T * 1000 + 7, None, 5, T], pa.timestamp("us", tz="Asia/Shanghai")),
        pa.array([T, T + 1, None, 2**62], pa.timestamp("ms")),  # naive (and out of range)
        pa.array([date(2025, 12, 2), None, date(1999, 1, 1), date(2025, 3, 30)], pa.date32()),
        pa.array([T, T, None, 1], pa.int64()),
        pa.array([1764656221.5, None, 2.5, 1e12], pa.float64()),
        pa.array(["2025-12-02T06:11:19Z", "x", None, ""], pa.large_string()),
        pa.array([1, 2, 3, 4], pa.uint64()),
        pa.array([[1], [2], None, []], pa.list_(pa.int64())),
    ],
    ids=["ms-utc", "s-far", "us-zoned", "naive", "date", "int", "float", "large", "uint64", "list"],
)
@pytest.mark.parametrize("zone", [None, "UTC", "Asia/Shanghai"])
def test_parquet_time_columns_of_other_types(tmp_path, column, zone):
    base = parquet_table([{}, {}, {}, {"src_ip": "bad"}])
    table = base.drop_columns(["ts"]).append_column("ts", column)
    path = tmp_path / "stamps.events.parquet"
    pq.write_table(table, path)
    spec: dict[str, Any] = {"ts_end": "ts"}
    if zone:
        spec["time_zone"] = zone
    check(path, LoadOptions(format_options={"generic_network": {"mapping": json.dumps(spec)}}))


def test_parquet_other_column_types_read_the_same(tmp_path):
    table = parquet_table([{}, {"dst_port": 70000}, {}])
    table = table.append_column("observer", pa.array([True, None, False]))
    table = table.append_column("host_hint", pa.array([1.5, 2.0, None]))
    table = table.append_column(
        "app", pa.array([datetime(2025, 1, 1, tzinfo=UTC), None, None], pa.timestamp("s"))
    )
    table = table.set_column(
        table.schema.get_field_index("action"), "action", table.column("action").dictionary_encode()
    )
    path = tmp_path / "types.events.parquet"
    pq.write_table(table, path)
    check(path, LoadOptions())


# --- whole files: strict, early stop, keep policy -------------------------------------------------


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_strict_and_early_stop_are_the_same(tmp_path, kind):
    if kind == "jsonl":
        good, bad = jline(), jline(flow__src__ip=...)
        options = mapping()
    else:
        good, bad = cline(), cline(src_ip="")
        options = LoadOptions()
    head = [CSV_HEADER] if kind == "csv" else []
    path = write(tmp_path / f"s.events.{kind}", [*head, *[good] * 50, bad, *[good] * 50])
    check(path, LoadOptions(strict=True, format_options=options.format_options))
    with pytest.raises(StrictRejection):
        generic_network.read(
            Source(path, path.name), LoadOptions(strict=True, format_options=options.format_options)
        )
    path = write(tmp_path / f"e.events.{kind}", [*head, *[bad] * 150, *[good] * 10])
    check(path, options)


@pytest.mark.parametrize(("kind", "anchors"), [("jsonl", 7), ("csv", 1), ("csv", 1000)])
def test_keep_policy_keeps_violations_and_the_exact_anchor_sample(tmp_path, kind, anchors):
    if kind == "jsonl":
        lines = [jline(verdict="BLOCK" if i % 5 == 0 else "ALLOW") for i in range(3000)]
        options = mapping()
    else:
        lines = [CSV_HEADER] + [
            cline(action="deny" if i % 5 == 0 else "allow") for i in range(3000)
        ]
        options = LoadOptions()
    path = write(tmp_path / f"k.events.{kind}", lines)
    policy = KeepPolicy(actions=("denied", "alerted"), anchors=anchors)
    source = Source(path, path.name)
    full = generic_network.read(source, options)
    kept = generic_network.read(
        source, LoadOptions(keep=policy, format_options=options.format_options)
    )
    expected, _ = cut_sample(full.table, policy, {})
    assert kept.table.sort_by("source_line").equals(expected.sort_by("source_line"))
    assert kept.table.num_rows == 600 + min(anchors, 2_400)
    assert kept.stats.unkept == full.stats.loaded - kept.table.num_rows
    check(path, LoadOptions(keep=policy, format_options=options.format_options))


def test_naive_iso_in_a_fixed_zone_is_read_column_wise(tmp_path, monkeypatch):
    lines = [jline(**{"@timestamp": f"2025-12-02 14:11:{i % 60:02d}"}) for i in range(500)]
    path = write(tmp_path / "naive.events.jsonl", lines)
    calls: list[int] = []
    real = generic_network._Converter.record

    def spy(self, line, row, raw, load):
        calls.append(line)
        return real(self, line, row, raw, load)

    monkeypatch.setattr(generic_network._Converter, "record", spy)
    result = generic_network.read(Source(path, path.name), mapping(time_zone="+08:00"))
    assert result.stats.loaded == 500 and calls == []
    assert result.stats.notes == {"no zone: assumed UTC+08:00": 500}
    shanghai = generic_network.read(Source(path, path.name), mapping(time_zone="Asia/Shanghai"))
    assert shanghai.table.column("ts").equals(result.table.column("ts"))
    assert ZoneInfo("Asia/Shanghai")  # the named zone went through the per-value reader


# --- the measurement (not a test) -----------------------------------------------------------------


def generate(out: Path, n: int = 200_000) -> tuple[Path, Path, Path]:
    """An in-house egress gateway's log: JSON lines (nested), CSV (flat), Parquet (flat)."""
    rng = np.random.default_rng(14)
    pool = [f"{a}.{b}.{c}.{d}" for a, b, c, d in rng.integers(1, 255, (5000, 4))]
    records, rows = [], []
    for i in range(n):
        host = int(rng.integers(0, 2000))
        stamp = datetime.fromtimestamp(1764633600 + i * 0.4, UTC)
        ts = stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"
        blocked = rng.random() < 0.05
        src, dst = f"192.168.{host // 250}.{host % 250 + 1}", pool[int(rng.integers(0, 5000))]
        sport, dport = int(rng.integers(1024, 65535)), int(rng.choice([443, 80, 53, 22, 3333]))
        tx, rx = int(rng.integers(40, 100_000)), int(rng.integers(0, 900_000))
        records.append(
            record(
                **{"@timestamp": ts},
                vm=f"sbx-{host:04d}",
                flow__id=f"F{i:09d}",
                flow__src__ip=src,
                flow__src__port=sport,
                flow__src__nat="47.96.180.21",
                flow__dst__ip=dst,
                flow__dst__port=dport,
                verdict="BLOCK" if blocked else "ALLOW",
                dur_ms=int(rng.integers(0, 60_000)),
                bytes__tx=tx,
                bytes__rx=rx,
            )
        )
        rows.append(
            {
                **CSV_GOOD,
                "ts": ts.replace("T", " ").removesuffix("Z"),
                "ts_end": "",
                "src_ip": src,
                "src_port": str(sport),
                "dst_ip": dst,
                "dst_port": str(dport),
                "action": "deny" if blocked else "allow",
                "bytes_out": str(tx),
                "flow_key": f"F{i:09d}",
            }
        )
    out.mkdir(parents=True, exist_ok=True)
    jsonl, csv_path, parquet = (
        out / "gateway.events.jsonl",
        out / "gateway.events.csv",
        out / "gateway.events.parquet",
    )
    jsonl.write_text("\n".join(json.dumps(r, separators=(",", ":")) for r in records) + "\n")
    write(csv_path, [CSV_HEADER] + [csv_line([r[f] for f in CSV_FIELDS]) for r in rows])
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    return jsonl, csv_path, parquet


if __name__ == "__main__":
    import pyarrow.csv as pv

    jsonl, csv_path, parquet = generate(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/gn-bench"))
    nested = generic_network._json_plan(
        Source(jsonl, jsonl.name), generic_network.load_mapping(mapping())
    )
    assert nested is not None
    spec = json.dumps({"directions": {"O": "outbound", "I": "inbound"}})
    flat = LoadOptions(format_options={"generic_network": {"mapping": spec}})

    class Nested:
        @staticmethod
        def read(source: Source, options: LoadOptions) -> LoadResult:
            return generic_network.read(source, mapping())

    class Flat:
        @staticmethod
        def read(source: Source, options: LoadOptions) -> LoadResult:
            return generic_network.read(source, flat)

    print(measure(Nested, jsonl, raw_json(jsonl, nested.schema)))  # type: ignore[arg-type]
    raw = lambda: pv.read_csv(csv_path, read_options=pv.ReadOptions(block_size=1 << 24))  # noqa: E731
    print(measure(Flat, csv_path, raw))  # type: ignore[arg-type]
    print(measure(Flat, parquet, lambda: pq.read_table(parquet)))  # type: ignore[arg-type]
