"""The Alibaba VPC flow-log loader's column-wise paths (JSON lines and CSV) give exactly the
per-line reader's rows, rejects and stats, whatever the lines (property tests); with ``run``'s
keep policy they keep exactly the violations and the anchor sample.
``python tests/test_fast_path_alibaba_vpc_flow.py DIR`` measures them on ~200k lines."""

from __future__ import annotations

import csv
import gzip
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fast_path_zeek_conn import json_lines, measure, raw_json, same, write

from correlate.errors import CorrelateError, StrictRejection
from correlate.keep import KeepPolicy, cut_sample
from correlate.loaders import LoadOptions, LoadResult, alibaba_vpc_flow, blocks
from correlate.loaders.base import FileLoad
from correlate.schema import NETWORK_EVENTS
from correlate.sources import Limits, Source, iter_lines

GOOD = {
    "__time__": "1764655945",
    "__topic__": "flow_log",
    "version": "1",
    "vpc-id": "vpc-bp1rome0423sbx7k2q",
    "vm-id": "i-bp1sbx13rome0423a7f",
    "eni-id": "eni-bp1sbx13rome0423k2d",
    "srcaddr": "192.168.10.13",
    "srcport": "40951",
    "dstaddr": "203.0.113.7",
    "dstport": "22",
    "protocol": "6",
    "direction": "out",
    "packets": "1",
    "bytes": "60",
    "start": "1764655879",
    "end": "1764655880",
    "action": "REJECT",
    "log-status": "OK",
    "tcp-flags": "2",
}
FIELDS = list(GOOD)
CHANGES: list[dict[str, object]] = [
    {},
    {"action": "ACCEPT", "direction": "in"},
    {"action": "accept", "direction": "OUT", "protocol": "17"},
    {"action": "DROP", "direction": "sideways"},
    {"vm-id": "", "eni-id": "eni-x"},
    {"vm-id": "-", "eni-id": " eni-y "},
    {"log-status": "NODATA", "srcaddr": "-", "action": "-"},
    {"log-status": "SKIPDATA"},
    {"log-status": " NODATA "},
    {"start": "", "__time__": "1764655947"},  # __time__ stands in: a note
    {"start": "-", "__time__": "-"},  # no time: a reject
    {"start": "1764655879250"},  # milliseconds: a note
    {"start": "2025-12-02T06:11:19Z"},  # not an epoch: a reject
    {"end": ""},
    {"end": "1764655800"},  # end before start: a note
    {"end": "1764655880000"},
    {"srcaddr": "192.168.XX.XX"},
    {"srcaddr": "2001:DB8::1", "dstaddr": "2001:db8::2"},
    {"srcaddr": "010.1.1.1"},
    {"dstaddr": ""},
    {"dstport": "99999"},
    {"dstport": "-"},
    {"srcport": "0443"},
    {"bytes": "abc"},
    {"bytes": "-5"},
    {"bytes": "+60"},
    {"packets": ""},
    {"protocol": "icmp"},
    {"action": ""},
]


def jline(**changes: object) -> bytes:
    record = {**GOOD, **changes}
    return json.dumps({k: v for k, v in record.items() if v is not ...}).encode()


JSON_VARIANTS = (
    [jline(**c) for c in CHANGES]
    + [
        jline(srcport=40951),  # a number where SLS writes strings
        jline(start=...),
        jline(start=None),
        jline(**{"bytes": {"n": 1}}),
        b'{"srcaddr":"1.2.3.4","srcaddr":"5.6.7.8","dstaddr":"9.9.9.9","start":"1764655879"}',
        b'{"broken": ',
        b"[1, 2]",
        b"",
        b"   ",
        jline() + b"\r",
        jline(vm_id="caf\u00e9"),
        b'{"srcaddr":"1.2.3.4","x":"\xff"}',
        b"\xef\xbb\xbf" + jline(),
        jline(**{"vm-id": "i-\ud800"}),  # a lone surrogate escape
        jline()[:-1] + b',"deep":' + b"[" * 600 + b"]" * 600 + b"}",  # too deep for Python's json
        jline()[:-1] + b',"big":' + b"7" * 4400 + b"}",  # too long an integer for Python's json
    ]
)


def csv_line(values: list[str], quoted: bool = True) -> bytes:
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL if quoted else csv.QUOTE_MINIMAL).writerow(values)
    return out.getvalue().rstrip("\r\n").encode()


def cline(quoted: bool = True, /, **changes: object) -> bytes:
    record = {**GOOD, **changes}
    return csv_line([str(record[f]) for f in FIELDS], quoted)


HEADER = csv_line(FIELDS)
CSV_VARIANTS = (
    [cline(**c) for c in CHANGES]
    + [
        cline(False),
        cline(False, srcaddr="10.0.0.1"),
        cline(**{"vpc-id": 'vpc "quoted"'}),  # a quote inside: doubled
        cline(**{"vpc-id": "a,b"}),  # a comma inside quotes
        cline(**{"vpc-id": ","}),  # "," between "," s: overlapping separators
        cline(**{"vpc-id": '","'}),
        cline(**{"vpc-id": ""}),
        HEADER.replace(b'"vpc-id"', b'"vpc-id"x'),
        cline().replace(b'"6"', b'"6"x'),  # text after a closing quote
        cline().replace(b'"6"', b'6"x"'),  # a quote inside an unquoted field
        cline().replace(b'"6"', b' "6"'),  # a space before the quote
        cline().replace(b'"6"', b'"6'),  # an unclosed quote
        cline().replace(b'"22"', b'"2\x002"'),  # NUL
        cline().replace(b'"22"', b'"2\r2"'),  # a CR inside
        cline() + b"\r",
        cline().replace(b'"out"', b'"o\xffut"'),  # invalid UTF-8
        cline(**{"vpc-id": "caf\u00e9"}),
        cline(**{"vpc-id": "x" * 140_000}),  # longer than Python's csv field limit
        cline()[: cline().rindex(b",")],  # a field short
        cline() + b',"extra"',
        b"",
        b"  ",
        b",,,",
        HEADER,
    ]
)


def reference(source: Source, options: LoadOptions) -> LoadResult:
    """Every line of ``iter_lines`` through the per-line reader (the loader before the
    column-wise paths existed)."""
    load = FileLoad(source, options, alibaba_vpc_flow.name, alibaba_vpc_flow.kind, NETWORK_EVENTS)
    if alibaba_vpc_flow.first_line(source.head(4096)).startswith(b"{"):
        for line, raw in iter_lines(source):
            alibaba_vpc_flow._line(line, raw, load)
    else:
        reader = alibaba_vpc_flow.CsvLines(
            load, alibaba_vpc_flow._record, alibaba_vpc_flow._columns, alibaba_vpc_flow._FIELDS
        )
        for line, raw in iter_lines(source):
            reader.line(line, raw)
    return load.result()


def check(path: Path, cap: int = 1 << 24, **options: object) -> None:
    source = Source(path, path.name, limits=Limits(max_line_bytes=cap))
    opts = LoadOptions(**options)  # type: ignore[arg-type]
    found: list[LoadResult | str] = []
    for fast in (True, False):
        try:
            found.append(alibaba_vpc_flow.read(source, opts) if fast else reference(source, opts))
        except CorrelateError as exc:
            found.append(f"{type(exc).__name__}: {exc}")
    if isinstance(found[0], str) or isinstance(found[1], str):
        assert found[0] == found[1]
    else:
        same(found[0], found[1])


JSON_SCHEMA = alibaba_vpc_flow.JSON_FIELDS


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=json_lines(JSON_VARIANTS, JSON_SCHEMA),
    trailing_newline=st.booleans(),
    piece=st.integers(1, 20),
    unit=st.sampled_from(["auto", "s", "ms"]),
)
def test_json_column_wise_equals_line_by_line(
    tmp_path_factory, monkeypatch, lines, trailing_newline, piece, unit
):
    monkeypatch.setattr(blocks, "SMALLEST_PIECE", piece)
    path = write(tmp_path_factory.mktemp("vpc") / "flow.jsonl", lines, trailing_newline)
    check(path, epoch_unit=unit)


CSV_ITEMS = st.one_of(
    st.sampled_from(CSV_VARIANTS).map(lambda line: [line]),
    st.sampled_from(CSV_VARIANTS[: len(CHANGES)]).map(lambda line: [line] * 3),
    st.integers(1, 30).map(lambda n: [cline()] * n),
    st.integers(1, 10).map(lambda n: [cline(False)] * n),
)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    items=st.lists(CSV_ITEMS, min_size=1, max_size=20),
    lead=st.sampled_from([[HEADER], [b"", HEADER], [b"\xef\xbb\xbf" + HEADER], []]),
    trailing_newline=st.booleans(),
)
def test_csv_column_wise_equals_line_by_line(tmp_path_factory, items, lead, trailing_newline):
    lines = list(lead)
    for item in items:
        lines.extend(item)
    check(write(tmp_path_factory.mktemp("vpc") / "flow.csv", lines, trailing_newline))


def test_each_variant_inside_a_run_of_good_lines(tmp_path):
    for index, line in enumerate(JSON_VARIANTS):
        check(write(tmp_path / f"v{index}.jsonl", [jline()] * 5 + [line] + [jline()] * 5))
    for index, line in enumerate(CSV_VARIANTS):
        lines = [HEADER, *[cline()] * 5, line, *[cline()] * 5]
        check(write(tmp_path / f"v{index}.csv", lines))


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    items=st.lists(CSV_ITEMS, min_size=1, max_size=10),
    chunk=st.integers(1, 2000),
    long_at=st.none() | st.integers(0, 9),
)
def test_csv_chunk_boundaries_and_long_lines(tmp_path_factory, monkeypatch, items, chunk, long_at):
    lines = [HEADER]
    for item in items:
        lines.extend(item)
    if long_at is not None and long_at < len(lines):
        lines.insert(long_at, cline(**{"vpc-id": "v" * 3000}))
    monkeypatch.setattr(blocks, "CHUNK_BYTES", chunk)
    check(write(tmp_path_factory.mktemp("vpc") / "flow.csv", lines), cap=2048)


@pytest.mark.parametrize("kind", ["json", "csv"])
def test_big_compressed_file_with_bad_lines_among_good(tmp_path, kind):
    make = jline if kind == "json" else cline
    lines = [make(**CHANGES[i % 3]) for i in range(20_000)]
    lines[7_777] = make(srcaddr="192.168.XX.XX")
    lines[12_345] = make(dstport="99999")
    if kind == "csv":
        lines.insert(0, HEADER)
    path = tmp_path / f"flow.{kind}.gz"
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    check(path)
    result = alibaba_vpc_flow.read(Source(path, path.name), LoadOptions())
    assert result.stats.rejected == 2 and result.stats.loaded == 19_998


@pytest.mark.parametrize("kind", ["json", "csv"])
def test_strict_stops_at_the_same_first_reject(tmp_path, kind):
    make = jline if kind == "json" else cline
    lines = [make()] * 50 + [make(dstaddr="")] + [make()] * 50
    if kind == "csv":
        lines.insert(0, HEADER)
    path = write(tmp_path / f"flow.{kind}", lines)
    check(path, strict=True)
    with pytest.raises(StrictRejection, match="dstaddr is missing"):
        alibaba_vpc_flow.read(Source(path, path.name), LoadOptions(strict=True))


@pytest.mark.parametrize("kind", ["json", "csv"])
def test_a_file_of_rejects_stops_early_the_same_way(tmp_path, kind):
    make = jline if kind == "json" else cline
    lines = [make(dstaddr="")] * 150 + [make()] * 10
    if kind == "csv":
        lines.insert(0, HEADER)
    check(write(tmp_path / f"flow.{kind}", lines))


@pytest.mark.parametrize(("kind", "anchors"), [("json", 7), ("csv", 1), ("csv", 7), ("csv", 1000)])
def test_keep_policy_keeps_violations_and_the_exact_anchor_sample(tmp_path, kind, anchors):
    make = jline if kind == "json" else cline
    lines = [make(action="REJECT" if i % 5 == 0 else "ACCEPT") for i in range(3_000)]
    lines.append(make(srcaddr="bad"))
    if kind == "csv":
        lines.insert(0, HEADER)
    path = write(tmp_path / f"flow.{kind}", lines)
    policy = KeepPolicy(actions=("denied", "alerted"), anchors=anchors)
    source = Source(path, path.name)
    full = alibaba_vpc_flow.read(source, LoadOptions())
    kept = alibaba_vpc_flow.read(source, LoadOptions(keep=policy))
    expected, _ = cut_sample(full.table, policy, {})
    assert kept.table.sort_by("source_line").equals(expected.sort_by("source_line"))
    assert kept.table.num_rows == 600 + min(anchors, 2_400)
    assert kept.stats.read == full.stats.read and kept.stats.loaded == full.stats.loaded
    assert kept.stats.unkept == full.stats.loaded - kept.table.num_rows
    assert kept.rejects == full.rejects
    check(path, keep=policy)


def test_the_csv_column_wise_path_is_taken(tmp_path, monkeypatch):
    path = write(tmp_path / "flow.csv", [HEADER] + [cline()] * 1000)
    calls: list[int] = []
    real = alibaba_vpc_flow.CsvLines.line

    def spy(self, line, raw, load=None):
        calls.append(line)
        return real(self, line, raw, load)

    monkeypatch.setattr(alibaba_vpc_flow.CsvLines, "line", spy)
    result = alibaba_vpc_flow.read(Source(path, path.name), LoadOptions())
    assert result.stats.loaded == 1000 and calls == [1]  # the header only


@settings(max_examples=300, deadline=None)
@given(
    line=st.text(alphabet='",a \t\\x\x00;', max_size=12),
    width=st.integers(1, 6),
)
def test_pyarrow_reads_a_line_as_pythons_csv_does_when_the_field_count_fits(line, width):
    """What ``csv_odd`` relies on: a line pyarrow reads into ``width`` fields is one Python's csv
    module reads into the same ``width`` values (or pyarrow refuses it)."""
    import pyarrow as pa
    import pyarrow.csv as pv

    names = [f"c{i}" for i in range(width)]
    try:
        table = pv.read_csv(
            pa.py_buffer(line.encode()),
            read_options=pv.ReadOptions(column_names=names),
            parse_options=pv.ParseOptions(
                quote_char='"', double_quote=True, escape_char=False, newlines_in_values=False
            ),
            convert_options=pv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                null_values=[],
                strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid:
        return
    if table.num_rows == 1:
        assert [table.column(n)[0].as_py() for n in names] == next(csv.reader([line]))


@settings(max_examples=300, deadline=None)
@given(lengths=st.lists(st.integers(0, 90), min_size=1, max_size=12), limit=st.integers(1, 40))
def test_the_long_line_screen_never_misses_a_long_line(lengths, limit):
    blob = b"\n".join(b"x" * n for n in lengths)
    if max(lengths) > limit:
        assert alibaba_vpc_flow.long_line_possible(blob, limit)


# --- the measurement (not a test) ---------------------------------------------------------------


def generate(out: Path, n: int = 200_000) -> tuple[Path, Path]:
    """A VPC flow-log SLS export (JSON lines and CSV) of a sandbox fleet."""
    rng = np.random.default_rng(12)
    hosts = [f"192.168.{i // 250}.{i % 250 + 1}" for i in range(2000)]
    pool = [f"{a}.{b}.{c}.{d}" for a, b, c, d in rng.integers(1, 255, (5000, 4))]
    records = []
    for i in range(n):
        start = 1764633600 + i // 3
        host = int(rng.integers(0, len(hosts)))
        inbound = rng.random() < 0.4
        src, dst = (pool[rng.integers(0, len(pool))], hosts[host])
        if not inbound:
            src, dst = dst, src
        records.append(
            {
                **GOOD,
                "__time__": str(start + 60),
                "vm-id": f"i-bp1sbx{host:05d}",
                "eni-id": f"eni-bp1sbx{host:05d}",
                "srcaddr": src,
                "srcport": str(rng.integers(1024, 65535)),
                "dstaddr": dst,
                "dstport": str(rng.choice([443, 80, 53, 22, 3333])),
                "protocol": str(rng.choice([6, 17])),
                "direction": "in" if inbound else "out",
                "packets": str(rng.integers(1, 200)),
                "bytes": str(rng.integers(40, 200_000)),
                "start": str(start),
                "end": str(start + int(rng.integers(0, 60))),
                "action": "REJECT" if rng.random() < 0.05 else "ACCEPT",
                "log-status": "NODATA" if rng.random() < 0.01 else "OK",
            }
        )
    out.mkdir(parents=True, exist_ok=True)
    jsonl, csv_path = out / "vpc_flow.jsonl", out / "vpc_flow.csv"
    jsonl.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    write(csv_path, [HEADER] + [csv_line([r[f] for f in FIELDS]) for r in records])
    return jsonl, csv_path


def raw_csv(path: Path):
    import pyarrow.csv as pv

    return lambda: pv.read_csv(path, read_options=pv.ReadOptions(block_size=1 << 24))


if __name__ == "__main__":
    jsonl, csv_path = generate(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/vpc-bench"))
    print(measure(alibaba_vpc_flow, jsonl, raw_json(jsonl, alibaba_vpc_flow.JSON_FIELDS)))
    print(measure(alibaba_vpc_flow, csv_path, raw_csv(csv_path)))
