"""The Zeek conn.log loader's column-wise path gives exactly the per-line reader's rows, rejects and
stats, whatever the lines (property tests over TSV with changing header blocks and over JSON
lines); with ``run``'s keep policy it keeps exactly the violations and the anchor sample.

The helpers here (``reference``, ``same``, ``outcomes``, ``write``) are shared by the zeek_dns,
zeek_ssl and zeek_http fast-path tests. ``python tests/test_fast_path_zeek_conn.py DIR`` writes
~200k realistic lines and prints the loader's rate beside pyarrow's raw parse of the same file.
"""

from __future__ import annotations

import gzip
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loader_helpers import same, write

from correlate.errors import CorrelateError, StrictRejection
from correlate.keep import KeepPolicy, cut_sample
from correlate.loaders import LoadOptions, LoadResult, blocks, zeek_conn
from correlate.loaders.base import FileLoad
from correlate.sources import Limits, Source, iter_lines

# --- shared helpers -----------------------------------------------------------------------------


def reference(log: zeek_conn.ZeekLog, source: Source, options: LoadOptions) -> LoadResult:
    """Every line of ``iter_lines`` through the per-line reader: the loader as it read before the
    column-wise path existed."""
    load = FileLoad(source, options, log.name, log.kind, log.output, unit=log.unit)
    reader = zeek_conn.ZeekReader(load, log)
    for line, raw in iter_lines(source):
        reader.line(line, raw)
    return load.result()


def outcomes(
    read: Callable[[Source, LoadOptions], LoadResult],
    log: Callable[[LoadOptions], zeek_conn.ZeekLog],
    path: Path,
    /,
    **options: object,
) -> None:
    """The loader and the per-line reference on one file: the same result, or the same error
    (``cap``: the --max-line-bytes limit)."""
    cap = int(options.pop("cap", 1 << 24))  # type: ignore[call-overload]
    source = Source(path, path.name, limits=Limits(max_line_bytes=cap))
    opts = LoadOptions(**options)  # type: ignore[arg-type]
    found: list[LoadResult | str] = []
    for fast in (True, False):
        try:
            found.append(read(source, opts) if fast else reference(log(opts), source, opts))
        except CorrelateError as exc:  # early stop, --strict, a too-long line: the same sentence
            found.append(f"{type(exc).__name__}: {exc}")
    if isinstance(found[0], str) or isinstance(found[1], str):
        assert found[0] == found[1]
    else:
        same(found[0], found[1])


def header(path: str, fields: list[str], types: list[str], *, separator: str = "\t") -> list[bytes]:
    sep = separator
    escaped = "".join(f"\\x{ord(c):02x}" for c in sep)
    return [
        f"#separator {escaped}".encode(),
        f"#set_separator{sep},".encode(),
        f"#empty_field{sep}(empty)".encode(),
        f"#unset_field{sep}-".encode(),
        f"#path{sep}{path}".encode(),
        f"#open{sep}2025-12-02-06-00-00".encode(),
        ("#fields" + sep + sep.join(fields)).encode(),
        ("#types" + sep + sep.join(types)).encode(),
    ]


# --- conn.log variants --------------------------------------------------------------------------

FIELDS = [
    "uid",
    "ts",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "proto",
    "service",
    "duration",
    "orig_bytes",
    "resp_bytes",
    "conn_state",
    "local_orig",
    "local_resp",
    "missed_bytes",
    "history",
    "orig_pkts",
    "orig_ip_bytes",
    "resp_pkts",
    "resp_ip_bytes",
    "tunnel_parents",
    "ip_proto",
]
TYPES = [
    "string",
    "time",
    "addr",
    "port",
    "addr",
    "port",
    "enum",
    "string",
    "interval",
    "count",
    "count",
    "string",
    "bool",
    "bool",
    "count",
    "string",
    "count",
    "count",
    "count",
    "count",
    "set[string]",
    "count",
]
OLD_FIELDS = [f for f in FIELDS if f not in ("local_resp", "ip_proto")]
OLD_FIELDS.remove("ts")
OLD_FIELDS.insert(0, "ts")  # the zat layout: ts first, no local_resp
OLD_TYPES = [TYPES[FIELDS.index(f)] for f in OLD_FIELDS]
GOOD = {
    "uid": "CValid00000000009",
    "ts": "1764655960.000001",
    "id.orig_h": "192.168.10.14",
    "id.orig_p": "40500",
    "id.resp_h": "45.9.148.117",
    "id.resp_p": "3333",
    "proto": "tcp",
    "service": "-",
    "duration": "10.000000",
    "orig_bytes": "100",
    "resp_bytes": "200",
    "conn_state": "SF",
    "local_orig": "T",
    "local_resp": "F",
    "missed_bytes": "0",
    "history": "ShADadfF",
    "orig_pkts": "5",
    "orig_ip_bytes": "0",
    "resp_pkts": "5",
    "resp_ip_bytes": "0",
    "tunnel_parents": "(empty)",
    "ip_proto": "6",
}


def tsv(fields: list[str] = FIELDS, /, sep: str = "\t", **changes: str) -> bytes:
    record = {**GOOD, **{k.replace("__", "."): v for k, v in changes.items()}}
    return sep.join(record[f] for f in fields).encode()


CHANGES: list[dict[str, str]] = [
    {},
    {"ts": "1764655960"},
    {"ts": "1764655960.5", "duration": "0.25"},
    {"ts": "0.000001"},
    {"ts": "1764655966500"},  # milliseconds by magnitude: a note
    {"ts": "-"},  # missing: a reject
    {"ts": "yesterday"},
    {"ts": "2025-12-02T06:12:46.5Z"},  # ISO with Z: no note
    {"ts": "2025-12-02T06:12:46"},  # naive ISO: a note
    {"ts": "2025-02-30T00:00:00Z"},  # not a date: a reject
    {"ts": " 1764655960.0"},
    {"ts": "9999999999.999999"},  # ten digits: in range
    {"ts": "9223372036.9"},  # out of timestamp[ns]: a reject
    {"ts": "1764655960.1234567891234567891"},  # more digits than ns: truncated
    {"ts": "1e9"},
    {"ts": ".5"},
    {"ts": "+1764655960"},
    {"ts": ".000001"},  # the same places as the others: Python refuses it
    {"ts": "17646559660.000001"},  # eleven whole digits
    {"duration": ".000001"},  # Decimal reads it
    {"ts": "0"},
    {"ts": "(empty)"},
    {"uid": "-"},
    {"uid": " Cpadded "},
    {"uid": "(empty)"},
    {"uid": "C\\x41B"},  # an escape
    {"uid": "Cwith-dash.dot"},
    {"id__orig_h": "10.0.0.300"},
    {"id__orig_h": "2001:0db8:0000::0001"},
    {"id__resp_h": "-"},
    {"id__resp_h": " 10.0.0.1"},
    {"id__orig_p": "70000"},
    {"id__orig_p": "-"},
    {"id__orig_p": "0443"},
    {"id__resp_p": "+80"},
    {"id__resp_p": "(empty)"},
    {"proto": "icmp", "id__orig_p": "8", "id__resp_p": "x"},  # ICMP: ports not read
    {"proto": "udp", "conn_state": "S0"},
    {"proto": "TCP", "conn_state": "REJ"},
    {"proto": "-"},
    {"proto": "58"},
    {"duration": "-"},
    {"duration": "-1.0"},  # negative: a note
    {"duration": "0.000001"},
    {"duration": "1e3"},
    {"duration": "long"},
    {"duration": "(empty)"},
    {"duration": "9999999999.0", "ts": "9000000000.0"},  # end out of range: a reject
    {"duration": "0.0012309551239013672"},
    {"orig_bytes": "-5"},
    {"orig_bytes": "99999999999999999999"},
    {"resp_pkts": "123456789012345678"},
    {"resp_pkts": "(empty)"},
    {"local_orig": "X"},
    {"local_orig": "true", "local_resp": "T"},
    {"local_orig": "F", "local_resp": "T"},
    {"local_orig": "(empty)"},
    {"local_orig": "-", "local_resp": "-"},
    {"conn_state": "S0"},
    {"conn_state": "(empty)"},
    {"conn_state": " RSTO "},
    {"service": "(empty)"},
    {"service": "dns,http"},
    {"service": "caf\u00e9"},
    {"history": "\x00"},
    {"tunnel_parents": "CxYz,CaBc"},
]
OTHER_LINES = [
    b"",
    b"   ",
    b"\t\t",
    b"# a comment",
    b"#close\t2025-12-02-07-00-00",
    b"#types\ttime\tstring",
    tsv() + b"\r",
    tsv() + b"\r\r",
    tsv().replace(b"\t", b"\r", 1),
    tsv().replace(b"tcp", b"t\xffp"),
    tsv() + b"\textra",
    b"CTooFew0000000010\t1764655961.000000\t192.168.10.14",
    b"\xef\xbb\xbf" + tsv(),
    tsv(OLD_FIELDS),
    tsv(OLD_FIELDS, ts="-"),
    b"-\t" + tsv()[tsv().index(b"\t") + 1 :],
]
DATA_LINES = [tsv(**c) for c in CHANGES] + OTHER_LINES
HEADERS = [
    header("conn", FIELDS, TYPES),
    header("conn", OLD_FIELDS, OLD_TYPES),
    header("dns", ["ts", "uid", "query"], ["time", "string", "string"]),
    [line for line in header("conn", FIELDS, TYPES) if not line.startswith(b"#types")],
    [*header("conn", FIELDS, TYPES)[:-2], b"#fields\t" + b"\t".join(f.encode() for f in FIELDS)],
    [
        b"#separator \\x09",
        b"#unset_field\tNULL",
        b"#empty_field\tEMPTY",
        *header("conn", FIELDS, TYPES)[4:],
    ],
    header("conn", [*FIELDS[:-1], "uid"], TYPES),  # a name twice: the last one counts
    header("conn", FIELDS, [t if t != "string" else "set[string]" for t in TYPES]),
]
ITEMS = st.one_of(
    st.sampled_from(DATA_LINES).map(lambda line: [line]),
    st.sampled_from(HEADERS),
    st.integers(1, 40).map(lambda n: [tsv()] * n),
    st.sampled_from(CHANGES).map(lambda c: [tsv(**c)] * 3),
)


def conn_file(items: list[list[bytes]], first_header: bool) -> list[bytes]:
    lines = header("conn", FIELDS, TYPES) if first_header else []
    for item in items:
        lines.extend(item)
    return lines


def check(path: Path, **options: object) -> None:
    outcomes(zeek_conn.read, zeek_conn.conn_log, path, **options)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    items=st.lists(ITEMS, min_size=1, max_size=25),
    first_header=st.booleans(),
    trailing_newline=st.booleans(),
    denied=st.booleans(),
    unit=st.sampled_from(["auto", "auto", "s", "ms"]),
)
def test_tsv_column_wise_equals_line_by_line(
    tmp_path_factory, items, first_header, trailing_newline, denied, unit
):
    path = write(
        tmp_path_factory.mktemp("zeek") / "conn.log",
        conn_file(items, first_header),
        trailing_newline,
    )
    options = {"unanswered": "denied" if denied else "unknown"}
    check(path, epoch_unit=unit, format_options={"zeek_conn": options})


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    items=st.lists(ITEMS, min_size=1, max_size=12),
    chunk=st.integers(1, 3000),
    long_at=st.none() | st.integers(0, 11),
)
def test_tsv_chunk_boundaries_and_long_lines(tmp_path_factory, monkeypatch, items, chunk, long_at):
    """Lines split across read chunks, and the --max-line-bytes stop at the same line."""
    if long_at is not None and long_at < len(items):
        items = [*items[:long_at], [tsv(history="h" * 3000)], *items[long_at:]]
    path = write(tmp_path_factory.mktemp("zeek") / "conn.log", conn_file(items, True))
    monkeypatch.setattr(blocks, "CHUNK_BYTES", chunk)
    check(path, cap=2048)


@pytest.mark.parametrize("denied", [False, True])
def test_each_tsv_variant_inside_a_run_of_good_lines(tmp_path, denied):
    """Every variant once where the column-wise path reads it (between good lines)."""
    options = {"zeek_conn": {"unanswered": "denied" if denied else "unknown"}}
    for index, line in enumerate(DATA_LINES):
        lines = header("conn", FIELDS, TYPES) + [tsv()] * 5 + [line] + [tsv()] * 5
        check(write(tmp_path / f"conn{index}.log", lines), format_options=options)


def test_a_space_separated_file_reads_the_same(tmp_path):
    lines = header("conn", FIELDS, TYPES, separator=" ")
    lines += [tsv(sep=" ")] * 50 + [tsv(sep=" ", ts="-")] + [tsv(sep=" ", proto="udp")] * 50
    check(write(tmp_path / "conn.log", lines))


# --- JSON lines ---------------------------------------------------------------------------------

JSON_GOOD = {
    "ts": 1764655970.25,
    "uid": "CJsonValid0000001",
    "id.orig_h": "192.168.10.15",
    "id.orig_p": 40600,
    "id.resp_h": "45.9.148.117",
    "id.resp_p": 3333,
    "proto": "tcp",
    "service": "ssl",
    "conn_state": "SF",
    "duration": 0.0012309551239013672,
    "orig_bytes": 10,
    "resp_bytes": 20,
    "orig_pkts": 3,
    "resp_pkts": 2,
    "local_orig": True,
    "local_resp": False,
}


def jline(**changes: object) -> bytes:
    record = {**JSON_GOOD, **{k.replace("__", "."): v for k, v in changes.items()}}
    record = {k: v for k, v in record.items() if v is not ...}
    return json.dumps(record, separators=(",", ":")).encode()


JSON_VARIANTS = [
    jline(),
    jline(ts=1764655970),
    jline(ts=1764655970.123456789),
    jline(ts=1764655966500),  # milliseconds: a note
    jline(ts=1e16),
    jline(ts=-5.5),
    jline(ts="2025-12-02T06:06:13.123456Z"),
    jline(ts="2025-12-02T06:06:14.5"),  # naive: a note
    jline(ts="1764655970.5"),
    jline(ts="soon"),
    jline(ts=None),
    jline(ts=...),
    jline(duration=1e-7),
    jline(duration=5e-6),
    jline(duration=12.5),
    jline(duration=-1.0),
    jline(duration=...),
    jline(duration="0.5"),
    jline(uid=...),
    jline(uid=" Cx "),
    jline(uid=17),
    jline(id__orig_h=...),
    jline(id__orig_h="2001:DB8::1"),
    jline(id__orig_h="10.0.0.300"),
    jline(id__orig_p=70000),
    jline(id__orig_p=443.0),
    jline(id__orig_p="443"),
    jline(proto="icmp", id__orig_p=8, id__resp_p=0),
    jline(proto="udp", conn_state="S0"),
    jline(conn_state="REJ"),
    jline(local_orig="yes"),
    jline(local_orig="T"),
    jline(local_orig=None, local_resp=True),
    jline(orig_bytes=-5),
    jline(orig_bytes=2**70),
    jline(service=["dns"]),
    jline(service=""),
    jline(_path="dns"),
    jline(_path="conn"),
    jline(_path=3),
    jline(id=...)[:-1]
    + b',"id":{"orig_h":"192.168.10.15","orig_p":1,"resp_h":"1.1.1.1","resp_p":2}}',
    json.dumps(
        {k: v for k, v in JSON_GOOD.items() if not k.startswith("id.")}
        | {"id": {"orig_h": "10.0.0.1", "orig_p": 1, "resp_h": "1.1.1.1", "resp_p": 2}}
    ).encode(),
    b'{"ts":1.5,"ts":2.5,"uid":"C","id.orig_h":"1.2.3.4","id.resp_h":"5.6.7.8"}',
    b'{"broken": ',
    b"[1, 2]",
    b"",
    b"   ",
    jline() + b"\r",
    jline(service="caf\u00e9"),
    jline(service="ca\\u0000fe"),
    b'{"uid":"C1","ts":1.5,"id.orig_h":"1.2.3.4","id.resp_h":"5.6.7.8","x":"\xff"}',
    b"\xef\xbb\xbf" + jline(),
    jline(uid="C\ud800x"),  # a lone surrogate escape
    jline()[:-1] + b',"deep":' + b"[" * 600 + b"]" * 600 + b"}",  # too deep for Python's json
    jline()[:-1] + b',"big":' + b"7" * 4400 + b"}",  # too long an integer for Python's json
]


def parsed_whole(line: bytes, schema: pa.Schema) -> bool:
    """Whether pyarrow parses ``line`` alone with ``schema`` (else a run holding it is halved)."""
    return next(blocks.json_pieces(line, 1, 1, schema))[3] is not None


def enrichment_lines(
    variants: list[bytes], spec: zeek_conn.Enrichment
) -> st.SearchStrategy[list[bytes]]:
    """``json_lines`` of an enrichment log, with the columns its loader parses JSON lines with."""
    schema = pa.schema(
        [("uid", pa.string()), ("ts", pa.float64()), *spec.json_fields, ("_path", pa.string())]
    )
    return json_lines(variants, schema)


def json_lines(variants: list[bytes], schema: pa.Schema) -> st.SearchStrategy[list[bytes]]:
    """Mostly lines pyarrow parses (so runs are read column-wise), some it refuses."""
    whole = [v for v in variants if parsed_whole(v, schema)]
    return st.lists(
        st.one_of(
            st.sampled_from(whole),
            st.sampled_from(whole),
            st.sampled_from(whole),
            st.sampled_from(variants),
        ),
        min_size=1,
        max_size=80,
    )


CONN_JSON_SCHEMA = pa.schema([*zeek_conn._CONN_JSON, pa.field("_path", pa.string())])


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=json_lines(JSON_VARIANTS, CONN_JSON_SCHEMA),
    trailing_newline=st.booleans(),
    piece=st.integers(1, 20),
    unit=st.sampled_from(["auto", "s", "us"]),
)
def test_json_column_wise_equals_line_by_line(
    tmp_path_factory, monkeypatch, lines, trailing_newline, piece, unit
):
    monkeypatch.setattr(blocks, "SMALLEST_PIECE", piece)
    path = write(tmp_path_factory.mktemp("zeek") / "conn.json.log", lines, trailing_newline)
    check(path, epoch_unit=unit)


@pytest.mark.parametrize("unit", ["auto", "s"])
def test_each_json_variant_inside_a_run_of_good_lines(tmp_path, unit):
    for index, line in enumerate(JSON_VARIANTS):
        lines = [jline()] * 5 + [line] + [jline()] * 5
        check(write(tmp_path / f"conn{index}.json.log", lines), epoch_unit=unit)


# --- whole files: compression, strict, early stop, keep policy ----------------------------------


@pytest.mark.parametrize("kind", ["tsv", "json"])
def test_big_compressed_file_with_bad_lines_among_good(tmp_path, kind):
    """A run mixing good and bad rows loses none of the good ones (gzip streams the same way)."""
    if kind == "tsv":
        lines = header("conn", FIELDS, TYPES) + [tsv(**CHANGES[i % 4]) for i in range(20_000)]
        lines[7_777] = tsv(ts="yesterday")
        lines[12_345] = tsv(id__resp_h="10.0.0.300")
    else:
        lines = [JSON_VARIANTS[i % 3] for i in range(20_000)]
        lines[7_777] = jline(ts="soon")
        lines[12_345] = b'{"broken": '
    path = tmp_path / "conn.log.gz"
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    check(path)
    result = zeek_conn.read(Source(path, path.name), LoadOptions())
    assert result.stats.rejected == 2 and result.stats.loaded == 19_998


def test_strict_stops_at_the_same_first_reject(tmp_path):
    lines = header("conn", FIELDS, TYPES) + [tsv()] * 50 + [tsv(ts="-")] + [tsv()] * 50
    path = write(tmp_path / "conn.log", lines)
    check(path, strict=True)
    with pytest.raises(StrictRejection, match=r"conn\.log:59: ts is missing"):
        zeek_conn.read(Source(path, path.name), LoadOptions(strict=True))


def test_a_file_of_rejects_stops_early_the_same_way(tmp_path):
    lines = header("conn", FIELDS, TYPES) + [tsv(ts="-")] * 150 + [tsv()] * 10
    check(write(tmp_path / "conn.log", lines))


def test_the_column_wise_path_is_taken(tmp_path, monkeypatch):
    lines = header("conn", FIELDS, TYPES) + [tsv()] * 1000
    path = write(tmp_path / "conn.log", lines)
    calls: list[int] = []
    real = zeek_conn.ZeekReader.line

    def spy(self, line, raw, load=None):
        calls.append(line)
        return real(self, line, raw, load)

    monkeypatch.setattr(zeek_conn.ZeekReader, "line", spy)
    result = zeek_conn.read(Source(path, path.name), LoadOptions())
    assert result.stats.loaded == 1000 and calls == list(range(1, 9))  # the header only


@pytest.mark.parametrize("anchors", [1, 7, 1000])
def test_keep_policy_keeps_violations_and_the_exact_anchor_sample(tmp_path, anchors):
    lines = header("conn", FIELDS, TYPES)
    lines += [tsv(conn_state="S0" if i % 5 == 0 else "SF") for i in range(3_000)]
    lines += [tsv(ts="yesterday")]
    path = write(tmp_path / "conn.log", lines)
    policy = KeepPolicy(actions=("denied", "alerted"), anchors=anchors)
    options = {"zeek_conn": {"unanswered": "denied"}}
    source = Source(path, path.name)
    full = zeek_conn.read(source, LoadOptions(format_options=options))
    kept = zeek_conn.read(source, LoadOptions(format_options=options, keep=policy))
    expected, _ = cut_sample(full.table, policy, {})
    assert kept.table.sort_by("source_line").equals(expected.sort_by("source_line"))
    assert kept.table.num_rows == 600 + min(anchors, 2_400)
    assert kept.stats.read == full.stats.read and kept.stats.loaded == full.stats.loaded
    assert kept.stats.unkept == full.stats.loaded - kept.table.num_rows
    assert kept.rejects == full.rejects
    outcomes(
        zeek_conn.read,
        zeek_conn.conn_log,
        path,
        format_options=options,
        keep=policy,
    )


def test_json_numbers_read_exactly_as_python_reads_them():
    """A JSON number's seconds come from pyarrow's shortest digits, which are ``repr``'s."""
    rng = np.random.default_rng(11)
    values = np.concatenate(
        [
            rng.uniform(1e9, 2e9, 20_000),
            rng.uniform(0, 100, 20_000),
            rng.uniform(0, 1e-3, 20_000),
            10.0 ** rng.uniform(-9, 10, 20_000),
        ]
    )
    ok = np.ones(len(values), dtype=bool)
    got = zeek_conn.exact_ns(pa.array(values), ok, required=True).to_pylist()
    for value, ns, good in zip(values.tolist(), got, ok.tolist(), strict=True):
        if good:
            assert ns == zeek_conn.interval_ns(value, "x"), value


# --- the measurement (not a test) ---------------------------------------------------------------


def measure(module: ModuleType, path: Path, floor: Callable[[], object], rounds: int = 5) -> str:
    """Best-of-``rounds`` wall and CPU times, interleaved: pyarrow's raw parse vs the loader."""
    source = Source(path, str(path))
    lines = module.read(source, LoadOptions()).stats.read
    wall = {"raw": 1e9, "loader": 1e9}
    cpu = dict(wall)
    for _ in range(rounds):
        for what, run in (("raw", floor), ("loader", lambda: module.read(source, LoadOptions()))):
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            wall[what] = min(wall[what], time.perf_counter() - start)
            cpu[what] = min(cpu[what], time.process_time() - start_cpu)
    return (
        f"{path.name}: {lines:,} lines, raw parse {lines / wall['raw']:,.0f}/s, loader "
        f"{lines / wall['loader']:,.0f}/s ({wall['raw'] / wall['loader']:.0%} of raw; CPU "
        f"{cpu['raw']:.2f}s vs {cpu['loader']:.2f}s, {cpu['raw'] / cpu['loader']:.0%})"
    )


def raw_tsv(path: Path) -> Callable[[], object]:
    """pyarrow.csv.read_csv of a Zeek TSV file (header skipped, types inferred)."""
    import pyarrow.csv as pv

    head = path.read_bytes()[:65536].decode("utf-8", "replace").splitlines()
    names = next(h for h in head if h.startswith("#fields")).split("\t")[1:]
    skip = sum(1 for h in head[:12] if h.startswith("#"))
    return lambda: pv.read_csv(
        path,
        read_options=pv.ReadOptions(skip_rows=skip, column_names=names, block_size=1 << 24),
        parse_options=pv.ParseOptions(
            delimiter="\t", quote_char=False, invalid_row_handler=lambda row: "skip"
        ),
        convert_options=pv.ConvertOptions(null_values=["-"]),
    )


def raw_json(path: Path, schema: pa.Schema) -> Callable[[], object]:
    """pyarrow.json.read_json with an explicit schema of the fields the loader reads."""
    import pyarrow.json as pj

    return lambda: pj.read_json(
        path,
        read_options=pj.ReadOptions(block_size=1 << 24),
        parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
    )


def generate_conn(out: Path, n: int = 200_000) -> tuple[Path, Path]:
    """A conn.log (TSV) and its JSON twin: a day of a sandbox fleet's connections."""
    rng = np.random.default_rng(7)
    ts = 1764633600 + np.sort(rng.uniform(0, 86400, n))
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))
    uids = ["C" + "".join(u) for u in alphabet[rng.integers(0, 62, (n, 17))]]
    src = np.array([f"10.20.{i // 250}.{i % 250 + 1}" for i in range(2000)])[
        rng.integers(0, 2000, n)
    ]
    pool = [f"{a}.{b}.{c}.{d}" for a, b, c, d in rng.integers(1, 255, (5000, 4))]
    dst = np.array([*pool, "2606:4700::1111"])[rng.integers(0, 5001, n)]
    proto = rng.choice(["tcp", "udp", "icmp"], n, p=[0.7, 0.27, 0.03])
    service = np.where(proto == "tcp", rng.choice(["ssl", "http", "-", "ssh"], n), "dns")
    state = rng.choice(["SF", "S0", "REJ", "RSTO", "SH"], n, p=[0.7, 0.1, 0.05, 0.12, 0.03])
    sport, dport = rng.integers(32768, 61000, n), rng.choice([443, 80, 53, 22, 3333], n)
    dur, ob, rb = rng.exponential(3, n), rng.integers(0, 50000, n), rng.integers(0, 500000, n)
    op, rp = rng.integers(1, 200, n), rng.integers(0, 400, n)
    tsv_lines, json_lines = [], []
    for i in range(n):
        unset = state[i] == "S0"
        sp, dp = (8, 0) if proto[i] == "icmp" else (int(sport[i]), int(dport[i]))
        row = [
            f"{ts[i]:.6f}",
            uids[i],
            src[i],
            str(sp),
            dst[i],
            str(dp),
            proto[i],
            service[i],
            "-" if unset else f"{dur[i]:.6f}",
            "-" if unset else str(ob[i]),
            "-" if unset else str(rb[i]),
            state[i],
            "T",
            "F",
            "0",
            "ShADadFf",
            str(op[i]),
            str(op[i] * 40 + ob[i]),
            str(rp[i]),
            str(rp[i] * 40 + rb[i]),
            "-",
        ]
        tsv_lines.append("\t".join(row))
        record = {
            "ts": round(float(ts[i]), 6),
            "uid": uids[i],
            "id.orig_h": src[i],
            "id.orig_p": sp,
            "id.resp_h": dst[i],
            "id.resp_p": dp,
            "proto": proto[i],
            **({} if service[i] == "-" else {"service": service[i]}),
            **(
                {}
                if unset
                else {
                    "duration": float(dur[i]),
                    "orig_bytes": int(ob[i]),
                    "resp_bytes": int(rb[i]),
                }
            ),
            "conn_state": state[i],
            "local_orig": True,
            "local_resp": False,
            "missed_bytes": 0,
            "history": "ShADadFf",
            "orig_pkts": int(op[i]),
            "resp_pkts": int(rp[i]),
        }
        json_lines.append(json.dumps(record, separators=(",", ":")))
    fields = [
        "ts",
        "uid",
        "id.orig_h",
        "id.orig_p",
        "id.resp_h",
        "id.resp_p",
        "proto",
        "service",
        "duration",
        "orig_bytes",
        "resp_bytes",
        "conn_state",
        "local_orig",
        "local_resp",
        "missed_bytes",
        "history",
        "orig_pkts",
        "orig_ip_bytes",
        "resp_pkts",
        "resp_ip_bytes",
        "tunnel_parents",
    ]
    types = [TYPES[FIELDS.index(f)] for f in fields]
    out.mkdir(parents=True, exist_ok=True)
    conn, conn_json = out / "conn.log", out / "conn.json.log"
    head = b"\n".join(header("conn", fields, types)).decode()
    conn.write_text(f"{head}\n" + "\n".join(tsv_lines) + "\n#close\t2025-12-03-00-00-00\n")
    conn_json.write_text("\n".join(json_lines) + "\n")
    return conn, conn_json


if __name__ == "__main__":
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/zeek-bench")
    conn, conn_json = generate_conn(folder)
    print(measure(zeek_conn, conn, raw_tsv(conn)))
    print(measure(zeek_conn, conn_json, raw_json(conn_json, zeek_conn._CONN_JSON)))
