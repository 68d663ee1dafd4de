"""The OCSF loader's column-wise paths (JSON lines with nested objects as struct columns, Parquet
record batches) give exactly the per-event reader's rows, rejects and stats, whatever the events
(property tests); with ``run``'s keep policy they keep exactly the violations and the anchor
sample. ``python tests/test_fast_path_ocsf_network.py DIR`` measures them on ~200k events."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

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
from correlate.loaders import LoadOptions, LoadResult, blocks, ocsf_network
from correlate.loaders.base import FileLoad
from correlate.loaders.records import json_documents
from correlate.schema import NETWORK_EVENTS
from correlate.sources import Limits, Source, iter_lines

T = 1_764_655_201_000
GOOD: dict[str, Any] = {
    "metadata": {
        "product": {"name": "Amazon VPC", "vendor_name": "AWS", "feature": {"name": "Flowlogs"}},
        "version": "1.1.0",
    },
    "src_endpoint": {
        "port": 51544,
        "ip": "192.168.10.13",
        "instance_uid": "i-0a1b2c3d4e5f60013",
        "interface_uid": "eni-0f1e2d3c4b5a60013",
        "vpc_uid": "vpc-0123456789abcdef0",
    },
    "dst_endpoint": {"port": 443, "ip": "151.101.0.223"},
    "connection_info": {"protocol_num": 6, "direction": "Outbound", "direction_id": 2},
    "traffic": {"packets": 18, "bytes": 2140, "bytes_out": 2000, "packets_out": 9},
    "time": T,
    "start_time": T,
    "end_time": T + 59_000,
    "class_uid": 4001,
    "action": "Allowed",
    "action_id": 1,
    "disposition": "Allowed",
    "disposition_id": 1,
}


def event(**changes: Any) -> dict[str, Any]:
    """GOOD with changes; ``a__b`` sets a nested attribute, ``...`` removes one."""
    return changed(GOOD, **changes)


CHANGES: list[dict[str, Any]] = [
    {},
    {"action_id": 2, "action": "Denied", "disposition_id": 2, "disposition": "Blocked"},
    {"disposition_id": 6, "disposition": ...},
    {"action_id": ..., "action": "Denied", "disposition_id": ..., "disposition": ...},
    {"action_id": ..., "action": "weird", "disposition_id": 15, "disposition": ...},
    {"is_alert": True},
    {"is_alert": False, "action_id": 99, "action": ...},
    {"class_uid": 4003},
    {"class_uid": ...},
    {"class_uid": None},
    {"class_uid": "4001"},
    {"class_uid": 4001.0},
    {"start_time": 1_764_655_201},  # seconds by magnitude: a note
    {"start_time": 1_764_655_201_000_000},  # microseconds: a note
    {"start_time": -5},
    {"start_time": ..., "start_time_dt": "2025-12-02T06:00:01.250Z"},
    {"start_time": ..., "start_time_dt": "2025-12-02T06:00:01"},  # naive: a note
    {"start_time": ..., "start_time_dt": "2025-12-02T06:00:01+08:00"},
    {"start_time": ..., "start_time_dt": "   "},  # blank: time stands in
    {"start_time": ..., "start_time_dt": "soon"},
    {"start_time": None},
    {"start_time": ..., "time": ...},  # no time: a reject
    {"start_time": ..., "time": ..., "time_dt": "2025-12-02T06:00:01Z"},
    {"start_time": ..., "time": 1_764_655_201},
    {"end_time": T - 1},  # end before start: a note
    {"end_time": ...},
    {"end_time": ..., "end_time_dt": "2025-12-02T06:01:00Z"},
    {"end_time": ..., "end_time_dt": "2025-12-02T05:00:00Z"},
    {"end_time": 1_764_655_260},  # seconds: a note
    {"start_time": 1.5e12},
    {"src_endpoint__ip": ...},
    {"src_endpoint__ip": "192.168.XX.XX"},
    {"src_endpoint__ip": "2001:DB8::1"},
    {"src_endpoint__port": 70000},
    {"src_endpoint__port": -1},
    {"src_endpoint__port": "443"},
    {"dst_endpoint": None},
    {"dst_endpoint__hostname": "Pool.SupportXMR.com.", "dst_endpoint__svc_name": "stratum"},
    {"dst_endpoint__hostname": "10.0.0.1", "dst_endpoint__domain": "example.org"},
    {"app_name": "ssh"},
    {"connection_info__protocol_name": "TCP"},
    {"connection_info__protocol_num": ..., "connection_info__protocol_name": ""},
    {"connection_info__protocol_num": 17, "connection_info__uid": "1587920340651328"},
    {"connection_info__direction_id": 1, "connection_info__direction": "Inbound"},
    {"connection_info__direction_id": 3},
    {"connection_info__direction_id": 99},
    {"connection_info__direction_id": ..., "connection_info__direction": "Lateral"},
    {"connection_info__direction_id": ..., "connection_info__direction": "sideways"},
    {"connection_info": None},
    {"traffic__bytes_out": -5},
    {"traffic__bytes_in": 2.5},
    {"traffic": ...},
    {"firewall_rule": {"name": "Block SSH", "uid": "r-1"}},
    {"firewall_rule": {"name": "same", "uid": "same"}},
    {"firewall_rule": {"uid": "r-2"}},
    {"firewall_rule": {"uid": 17}},
    {"metadata__product__feature": None},
    {"metadata": ..., "device": {"hostname": "fw-1"}},
    {"metadata": ..., "device": {"name": "fw-2"}},
    {"metadata": ...},
    {"metadata": "x"},
    {"src_endpoint": None},
    {"src_endpoint": [1]},
    {"src_endpoint__hostname": "sbx-03", "src_endpoint__instance_uid": ...},
    {"src_endpoint__instance_uid": " ", "src_endpoint__interface_uid": ...},
]


def jline(**changes: Any) -> bytes:
    return json.dumps(event(**changes), separators=(",", ":")).encode()


JSON_VARIANTS = (
    [jline(**c) for c in CHANGES]
    + [
        b'{"class_uid":4001,"class_uid":4001,"time":1764655201000}',
        b'{"broken": ',
        b"[1, 2]",
        b"",
        jline() + b"\r",
        b"\xef\xbb\xbf" + jline(),
        jline(app_name="a\ud800"),  # a lone surrogate escape
        jline()[:-1] + b',"x":"\xff"}',
        jline()[:-1] + b',"deep":' + b"[" * 600 + b"]" * 600 + b"}",
        jline()[:-1] + b',"big":' + b"7" * 4400 + b"}",
    ]
)


def reference(source: Source, options: LoadOptions) -> LoadResult:
    """The per-event reader on every record: the loader before the column-wise paths."""
    load = FileLoad(source, options, ocsf_network.name, ocsf_network.kind, NETWORK_EVENTS)
    load.stats.unit = "events"
    if source.head(4) == b"PAR1":
        for number, row, text in ocsf_network._parquet_records(source):
            ocsf_network._record(number, row, text, load)
    elif ocsf_network._json_lines(source):
        for line, raw_bytes in iter_lines(source):
            ocsf_network._line(line, raw_bytes, load)
    else:
        for line, record, raw in json_documents(source, load.stats, load.sink):
            ocsf_network._record(line, record, raw, load)
    return load.result()


def check(path: Path, cap: int = 1 << 24, **options: object) -> None:
    source = Source(path, path.name, limits=Limits(max_line_bytes=cap))
    opts = LoadOptions(**options)  # type: ignore[arg-type]
    found: list[LoadResult | str] = []
    for fast in (True, False):
        try:
            found.append(ocsf_network.read(source, opts) if fast else reference(source, opts))
        except CorrelateError as exc:
            found.append(f"{type(exc).__name__}: {exc}")
    if isinstance(found[0], str) or isinstance(found[1], str):
        assert found[0] == found[1]
    else:
        same(found[0], found[1])


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=json_lines(JSON_VARIANTS, ocsf_network.JSON_SCHEMA),
    piece=st.integers(1, 20),
    unit=st.sampled_from(["auto", "auto", "ms", "s"]),
)
def test_json_column_wise_equals_event_by_event(tmp_path_factory, monkeypatch, lines, piece, unit):
    monkeypatch.setattr(blocks, "SMALLEST_PIECE", piece)
    check(write(tmp_path_factory.mktemp("ocsf") / "events.jsonl", lines), epoch_unit=unit)


@pytest.mark.parametrize("unit", ["auto", "ms"])
def test_each_json_variant_inside_a_run_of_good_lines(tmp_path, unit):
    for index, line in enumerate(JSON_VARIANTS):
        lines = [jline()] * 5 + [line] + [jline()] * 5
        check(write(tmp_path / f"e{index}.jsonl", lines), epoch_unit=unit)


# --- Parquet ------------------------------------------------------------------------------------

ENDPOINT = pa.struct(
    [
        ("ip", pa.string()),
        ("port", pa.int32()),
        ("hostname", pa.string()),
        ("domain", pa.string()),
        ("svc_name", pa.string()),
        ("instance_uid", pa.string()),
        ("interface_uid", pa.string()),
        ("name", pa.string()),
    ]
)
SCHEMA = pa.schema(
    [
        ("class_uid", pa.int32()),
        ("time", pa.int64()),
        ("start_time", pa.int64()),
        ("end_time", pa.int64()),
        ("start_time_dt", pa.string()),
        ("src_endpoint", ENDPOINT),
        ("dst_endpoint", ENDPOINT),
        (
            "connection_info",
            pa.struct(
                [
                    ("protocol_num", pa.int32()),
                    ("protocol_name", pa.string()),
                    ("direction", pa.string()),
                    ("direction_id", pa.int32()),
                    ("uid", pa.string()),
                ]
            ),
        ),
        (
            "traffic",
            pa.struct(
                [(k, pa.int64()) for k in ("bytes_out", "bytes_in", "packets_out", "packets_in")]
            ),
        ),
        ("action", pa.string()),
        ("action_id", pa.int32()),
        ("disposition", pa.string()),
        ("disposition_id", pa.int32()),
        ("is_alert", pa.bool_()),
        ("app_name", pa.string()),
        ("firewall_rule", pa.struct([("uid", pa.string()), ("name", pa.string())])),
        (
            "metadata",
            pa.struct(
                [
                    (
                        "product",
                        pa.struct(
                            [("name", pa.string()), ("feature", pa.struct([("name", pa.string())]))]
                        ),
                    )
                ]
            ),
        ),
        ("device", pa.struct([("hostname", pa.string()), ("name", pa.string())])),
    ]
)


def parquet_rows(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events that fit SCHEMA (values of other types dropped: they do not fit a column)."""
    out = []
    for change in changes:
        row = event(**change)
        row.pop("unused", None)
        out.append(row)
    return out


def fits(row: dict[str, Any]) -> bool:
    try:
        pa.Table.from_pylist([row], schema=SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        return False
    return True


PARQUET_CHANGES = [c for c in CHANGES if fits(event(**c))]


def write_parquet(path: Path, rows: list[dict[str, Any]], schema: pa.Schema = SCHEMA) -> Path:
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, row_group_size=7)
    return path


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    changes=st.lists(
        st.one_of(st.just({}), st.sampled_from(PARQUET_CHANGES)), min_size=1, max_size=40
    ),
    batch=st.integers(1, 20),
    unit=st.sampled_from(["auto", "ms", "us"]),
)
def test_parquet_column_wise_equals_event_by_event(
    tmp_path_factory, monkeypatch, changes, batch, unit
):
    monkeypatch.setattr(ocsf_network, "BATCH_ROWS", batch)
    path = write_parquet(tmp_path_factory.mktemp("ocsf") / "events.parquet", parquet_rows(changes))
    check(path, epoch_unit=unit)


def test_each_parquet_variant_inside_a_batch_of_good_events(tmp_path):
    for index, change in enumerate(PARQUET_CHANGES):
        rows = parquet_rows([{}] * 5 + [change] + [{}] * 5)
        check(write_parquet(tmp_path / f"e{index}.parquet", rows))


@pytest.mark.parametrize(
    "column",
    [
        pa.array([T, None, T + 5, T - 10], pa.timestamp("ms", tz="UTC")),
        pa.array([T * 1000 + 7, None, T * 1000, 5], pa.timestamp("us", tz="Asia/Shanghai")),
        pa.array([T, T, T, T], pa.timestamp("ms")),  # naive: read in the zone option, noted
        pa.array([T, T, 2 * T, None], pa.int64()),
        pa.array([1.5e12, None, 2.5, 1e12], pa.float64()),  # floats: the per-event reader
        pa.array(["2025-12-02T06:00:01Z", "x", None, ""], pa.large_string()),
        pa.array([T, T, T, T], pa.uint64()),
    ],
    ids=["ms-utc", "us-zoned", "naive", "int", "float", "large-text", "uint64"],
)
@pytest.mark.parametrize("key", ["start_time", "end_time", "time"])
def test_parquet_time_columns_of_other_types(tmp_path, column, key):
    base = pa.Table.from_pylist(parquet_rows([{}, {}, {"start_time": None}, {}]), schema=SCHEMA)
    table = base.drop_columns([key]).append_column(key, column)
    path = tmp_path / "stamps.parquet"
    pq.write_table(table, path)
    check(path)
    check(path, epoch_unit="ms")


@pytest.mark.parametrize(
    "schema_change",
    ["large_string", "dictionary", "uint16_ports", "float_ports", "missing_child", "extra_child"],
)
def test_parquet_columns_of_other_types(tmp_path, schema_change):
    rows = parquet_rows([{}, {"action_id": 2}, {"src_endpoint__ip": None}, {"class_uid": 4003}])
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    if schema_change == "large_string":
        table = table.set_column(
            table.schema.get_field_index("action"),
            "action",
            table.column("action").cast(pa.large_string()),
        )
    elif schema_change == "dictionary":
        table = table.set_column(
            table.schema.get_field_index("action"),
            "action",
            table.column("action").dictionary_encode(),
        )
    else:
        endpoint = [f for f in ENDPOINT]
        if schema_change == "uint16_ports":
            endpoint[1] = pa.field("port", pa.uint16())
        elif schema_change == "float_ports":
            endpoint[1] = pa.field("port", pa.float64())
        elif schema_change == "missing_child":
            endpoint = [f for f in endpoint if f.name != "ip"]
        else:
            endpoint.append(pa.field("extra", pa.list_(pa.int64())))
        kind = pa.struct(endpoint)
        src = pa.array(
            [{k: v for k, v in (r["src_endpoint"] or {}).items() if k in kind.names} for r in rows],
            kind,
        )
        table = table.set_column(table.schema.get_field_index("src_endpoint"), "src_endpoint", src)
    path = tmp_path / "types.parquet"
    pq.write_table(table, path)
    check(path)


# --- whole files: strict, early stop, keep policy -----------------------------------------------


@pytest.mark.parametrize("kind", ["jsonl", "parquet"])
def test_strict_stops_at_the_same_first_reject(tmp_path, kind):
    changes = [{}] * 50 + [{"src_endpoint__ip": ...}] + [{}] * 50
    if kind == "jsonl":
        path = write(tmp_path / "events.jsonl", [jline(**c) for c in changes])
    else:
        path = write_parquet(tmp_path / "events.parquet", parquet_rows(changes))
    check(path, strict=True)
    with pytest.raises(StrictRejection, match=r":51: src_endpoint\.ip is missing"):
        ocsf_network.read(Source(path, path.name), LoadOptions(strict=True))


@pytest.mark.parametrize("kind", ["jsonl", "parquet"])
def test_a_file_of_rejects_stops_early_the_same_way(tmp_path, kind):
    changes = [{"src_endpoint__ip": ...}] * 150 + [{}] * 10
    if kind == "jsonl":
        path = write(tmp_path / "events.jsonl", [jline(**c) for c in changes])
    else:
        path = write_parquet(tmp_path / "events.parquet", parquet_rows(changes))
    check(path)


@pytest.mark.parametrize(("kind", "anchors"), [("jsonl", 7), ("parquet", 1), ("parquet", 1000)])
def test_keep_policy_keeps_violations_and_the_exact_anchor_sample(tmp_path, kind, anchors):
    denied = {"action_id": 2, "action": "Denied"}
    changes = [denied if i % 5 == 0 else {} for i in range(3_000)] + [{"src_endpoint__ip": "x"}]
    if kind == "jsonl":
        path = write(tmp_path / "events.jsonl", [jline(**c) for c in changes])
    else:
        path = write_parquet(tmp_path / "events.parquet", parquet_rows(changes))
    policy = KeepPolicy(actions=("denied", "alerted"), anchors=anchors)
    source = Source(path, path.name)
    full = ocsf_network.read(source, LoadOptions())
    kept = ocsf_network.read(source, LoadOptions(keep=policy))
    expected, _ = cut_sample(full.table, policy, {})
    assert kept.table.sort_by("source_line").equals(expected.sort_by("source_line"))
    assert kept.table.num_rows == 600 + min(anchors, 2_400)
    assert kept.stats.unkept == full.stats.loaded - kept.table.num_rows
    check(path, keep=policy)


def test_the_parquet_column_wise_path_is_taken(tmp_path, monkeypatch):
    path = write_parquet(tmp_path / "events.parquet", parquet_rows([{}] * 500))
    calls: list[int] = []
    real = ocsf_network._record

    def spy(line, record, raw, load):
        calls.append(line)
        return real(line, record, raw, load)

    monkeypatch.setattr(ocsf_network, "_record", spy)
    result = ocsf_network.read(Source(path, path.name), LoadOptions())
    assert result.stats.loaded == 500 and calls == []


# --- the measurement (not a test) ---------------------------------------------------------------


def generate(out: Path, n: int = 200_000) -> tuple[Path, Path]:
    """Security Lake-shaped VPC flow events (JSON lines and Parquet) of a sandbox fleet."""
    rng = np.random.default_rng(13)
    pool = [f"{a}.{b}.{c}.{d}" for a, b, c, d in rng.integers(1, 255, (5000, 4))]
    rows = []
    for i in range(n):
        host = int(rng.integers(0, 2000))
        start = T + i * 300
        denied = rng.random() < 0.05
        rows.append(
            event(
                time=start,
                start_time=start,
                end_time=start + int(rng.integers(0, 60_000)),
                src_endpoint__ip=f"192.168.{host // 250}.{host % 250 + 1}",
                src_endpoint__port=int(rng.integers(1024, 65535)),
                src_endpoint__instance_uid=f"i-0a1b2c3d{host:09d}",
                dst_endpoint__ip=pool[int(rng.integers(0, len(pool)))],
                dst_endpoint__port=int(rng.choice([443, 80, 53, 22, 3333])),
                traffic__bytes_out=int(rng.integers(40, 100_000)),
                traffic__packets_out=int(rng.integers(1, 100)),
                action_id=2 if denied else 1,
                action="Denied" if denied else "Allowed",
                disposition_id=2 if denied else 1,
                disposition="Blocked" if denied else "Allowed",
            )
        )
    out.mkdir(parents=True, exist_ok=True)
    jsonl, parquet = out / "ocsf.jsonl", out / "ocsf.parquet"
    jsonl.write_text("\n".join(json.dumps(r, separators=(",", ":")) for r in rows) + "\n")
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), parquet)
    return jsonl, parquet


if __name__ == "__main__":
    jsonl, parquet = generate(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/ocsf-bench"))
    print(measure(ocsf_network, jsonl, raw_json(jsonl, ocsf_network.JSON_SCHEMA)))
    columns = [c for c in ocsf_network.PARQUET_COLUMNS if c in SCHEMA.names]
    print(measure(ocsf_network, parquet, lambda: pq.read_table(parquet, columns=columns)))
