"""Issue 15 item 12: real layouts the AWS VPC and Zeek conn loaders did not read.

(a) AWS VPC flow logs exported as CSV with ``_`` column names (Athena and other CSV exports),
(b) AWS VPC flow logs as a JSON array of objects (Amazon OpenSearch Data Prepper output, keys with
``-`` or ``_``), (c) one pretty-printed Corelight/Zeek JSON conn record (an object over many
lines). Field names: the AWS "Flow log records" page (``version account-id interface-id srcaddr
dstaddr srcport dstport protocol packets bytes start end action log-status``; OpenSearch's
``vpcflow`` log type spells them ``account_id``, ``az_id``, ``tcp_flags``); Zeek ``Conn::Info``
as the JSON writer names it (``id.orig_h`` ...)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loader_helpers import same

from correlate.loaders import LoadOptions, LoadResult, aws_vpc_flow, detect, zeek_conn
from correlate.sources import Limits, Source, iter_lines

DATA = Path(__file__).resolve().parent / "data"
AWS = DATA / "aws_vpc_flow"
ZEEK = DATA / "zeek_conn"


def read(module, path: Path, **options) -> LoadResult:
    return module.read(Source(path, path.name), LoadOptions(**options))


def reasons(result: LoadResult) -> list[str]:
    return [str(r) for r in result.rejects]


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        (AWS / "zz_athena_csv_underscore_names.csv", "aws_vpc_flow"),
        (AWS / "zz_athena_csv_without_version.csv", "aws_vpc_flow"),
        (AWS / "zz_data_prepper_json_array.json", "aws_vpc_flow"),
        (ZEEK / "zz_corelight_pretty_single_object.json", "zeek_conn"),
        (ZEEK / "zz_corelight_pretty_two_objects.json", "zeek_conn"),
    ],
)
def test_the_new_layouts_are_detected(path: Path, fmt: str) -> None:
    assert detect(Source(path, path.name)).loader.name == fmt


def test_csv_with_underscore_names_loads() -> None:
    result = read(aws_vpc_flow, AWS / "zz_athena_csv_underscore_names.csv")
    assert result.rejects == []
    assert result.stats.read == 5
    assert result.stats.loaded == 3
    assert dict(result.stats.skipped) == {"header line": 1, "log-status NODATA": 1}
    rows = result.table.to_pylist()
    assert [(r["src_ip"], r["dst_port"], r["action"], r["source_line"]) for r in rows] == [
        ("172.31.16.139", 22, "allowed", 2),
        ("172.31.9.69", 3389, "denied", 3),
        ("203.0.113.12", 0, "allowed", 5),  # a quoted CSV row
    ]
    assert rows[0]["host_hint"] == "eni-1235b8ca123456789"
    assert rows[0]["bytes_out"] == 4249


def test_csv_without_version_loads_and_rejects_by_line() -> None:
    result = read(aws_vpc_flow, AWS / "zz_athena_csv_without_version.csv")
    assert result.stats.loaded == 2
    assert reasons(result) == [
        "zz_athena_csv_without_version.csv:4: srcport is not an integer: 'notaport'"
    ]


def test_json_array_with_dash_and_underscore_keys_loads() -> None:
    result = read(aws_vpc_flow, AWS / "zz_data_prepper_json_array.json")
    assert result.stats.read == 5
    assert result.stats.loaded == 2
    assert dict(result.stats.skipped) == {"log-status NODATA": 1}
    assert reasons(result) == [
        "zz_data_prepper_json_array.json:4: start is missing",
        "zz_data_prepper_json_array.json:5: not a JSON object but a JSON str",
    ]
    first, second = result.table.to_pylist()
    assert (first["action"], first["direction"], first["bytes_out"]) == ("denied", "unknown", 5060)
    assert (second["action"], second["direction"], second["bytes_in"]) == (
        "allowed",
        "inbound",
        4120,
    )
    assert second["host_hint"] == "i-0f00376"  # instance_id
    assert (second["src_port"], second["dst_port"]) == (443, 60411)  # numbers written as text


def test_json_lines_of_flow_records_load_too(tmp_path: Path) -> None:
    path = tmp_path / "flows.jsonl"
    path.write_text(
        '{"account_id":"1","interface_id":"eni-1","srcaddr":"10.0.0.1","dstaddr":"10.0.0.2",'
        '"srcport":1,"dstport":2,"protocol":17,"start":1764633600,"end":1764633601,'
        '"action":"REJECT","log_status":"OK"}\n'
    )
    assert aws_vpc_flow.sniff(path.read_bytes(), path.name) > 0.5
    result = read(aws_vpc_flow, path)
    assert result.rejects == []
    assert [(r["protocol"], r["action"]) for r in result.table.to_pylist()] == [("udp", "denied")]


def test_other_json_is_not_taken_for_flow_logs() -> None:
    assert aws_vpc_flow.sniff(b'[{"src": "10.0.0.1", "start": 1}]', "x.json") == 0.0
    assert aws_vpc_flow.sniff(b"a,b,c\n1,2,3\n", "x.csv") == 0.0


def test_pretty_printed_corelight_object_loads() -> None:
    result = read(zeek_conn, ZEEK / "zz_corelight_pretty_single_object.json")
    assert result.rejects == []
    assert result.stats.read == 1
    (row,) = result.table.to_pylist()
    assert (row["src_ip"], row["dst_ip"], row["dst_port"], row["app"]) == (
        "10.20.1.186",
        "203.160.229.55",
        443,
        "ssl",
    )
    assert (row["direction"], row["bytes_out"], row["bytes_in"]) == ("outbound", 517, 4120)
    assert row["flow_key"] == "zeek:CHhAvVGS1DHFjwGM9"
    assert row["source_line"] == 1


def test_pretty_printed_objects_reject_at_the_line_of_their_brace() -> None:
    result = read(zeek_conn, ZEEK / "zz_corelight_pretty_two_objects.json")
    assert result.stats.read == 2
    assert result.stats.loaded == 1
    assert [r.split(":")[:2] for r in reasons(result)] == [
        ["zz_corelight_pretty_two_objects.json", "15"]
    ]
    assert result.table.to_pylist()[0]["source_line"] == 1


def test_pretty_printed_invalid_json_is_one_reject(tmp_path: Path) -> None:
    path = tmp_path / "conn.json"
    path.write_text('\n{\n  "ts": 1764633600,\n  "uid": "C1",\n')
    result = read(zeek_conn, path)
    assert result.stats.loaded == 0
    assert [r.split(":")[1] for r in reasons(result)] == ["2"]
    assert reasons(result)[0].split(": ", 1)[1].startswith("not valid JSON")


# --- CSV: the column-wise fast path equals the per-line reader -----------------------------------

CSV_HEADER = (
    "version,account_id,interface_id,srcaddr,dstaddr,srcport,dstport,protocol,packets,bytes,"
    "start,end,action,log_status,flow_direction,pkt_srcaddr,reject_reason"
)
CSV_GOOD = (
    "5,123456789012,eni-0a1b2c3d4e0000376,10.20.1.186,203.160.229.55,60411,80,6,80,117440,"
    "1764633600,1764633609,ACCEPT,OK,egress,-,-"
)
CSV_VARIANTS = [
    CSV_GOOD,
    CSV_GOOD.replace("ACCEPT", "REJECT").replace("-,-", "10.9.9.9,BPA"),
    CSV_GOOD.replace("egress", "ingress"),
    CSV_GOOD.replace("egress", ""),
    CSV_GOOD.replace("egress,-,-", ",,"),
    CSV_GOOD.replace("ACCEPT,OK", "-,NODATA"),
    CSV_GOOD.replace("10.20.1.186", "2001:DB8::1"),
    CSV_GOOD.replace("1764633609", "1764633500"),
    CSV_GOOD.replace("1764633600", "1764633600000"),
    CSV_GOOD.replace("1764633600", ""),
    CSV_GOOD.replace("60411", "70000"),
    CSV_GOOD.replace("60411", " 60411"),
    CSV_GOOD.replace("117440", '"117440"'),
    '"' + CSV_GOOD.replace(",", '","') + '"',
    CSV_GOOD + ",extra",
    CSV_GOOD + "\r",
    CSV_GOOD.replace("10.20.1.186", '"10.20.1.186'),
    "",
    " ",
    CSV_HEADER,
    "version srcaddr dstaddr srcport dstport start action log-status",
    "9" * 40,
]


def load_csv(path: Path, *, fast: bool) -> LoadResult:
    source = Source(path, path.name, limits=Limits())
    if fast:
        return aws_vpc_flow.read(source, LoadOptions())
    reader = aws_vpc_flow._Reader(source, LoadOptions())
    for line, raw in iter_lines(source):
        reader.line(line, raw)
    return reader.result()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(st.sampled_from(CSV_VARIANTS), min_size=0, max_size=30),
    trailing_newline=st.booleans(),
)
def test_csv_fast_path_equals_line_by_line(tmp_path_factory, lines, trailing_newline):
    path = tmp_path_factory.mktemp("vpc") / "flows.csv"
    body = "\n".join([CSV_HEADER, *lines])
    path.write_bytes((body + ("\n" if trailing_newline else "")).encode())
    same(load_csv(path, fast=True), load_csv(path, fast=False))


def test_csv_fast_path_is_taken_for_plain_rows(tmp_path, monkeypatch):
    path = tmp_path / "flows.csv"
    path.write_text("\n".join([CSV_HEADER] + [CSV_GOOD] * 500) + "\n")
    calls = []
    real = aws_vpc_flow._fast

    def spy(*args):
        table = real(*args)
        calls.append(table is not None)
        return table

    monkeypatch.setattr(aws_vpc_flow, "_fast", spy)
    result = aws_vpc_flow.read(Source(path, path.name), LoadOptions())
    assert calls and all(calls)
    assert result.stats.loaded == 500
    same(result, load_csv(path, fast=False))
