"""The Alibaba CFW loader's column-wise path gives exactly the per-line reader's rows, rejects and
stats, whatever the lines (property test); with ``run``'s keep policy it keeps exactly the
violations and the anchor sample the full table would give."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loader_helpers import raised, same, write

from correlate.errors import InputError
from correlate.keep import KeepPolicy, cut_sample
from correlate.loaders import LoadOptions, LoadResult, alibaba_cfw, blocks, columnar
from correlate.loaders.base import FileLoad
from correlate.schema import NETWORK_EVENTS
from correlate.sources import Limits, Source, iter_lines

GOOD = {
    "__topic__": "cloudfirewall_access_log",
    "__time__": "1764748801",
    "log_type": "internet_log",
    "start_time": "1764748800",
    "end_time": "1764748803",
    "src_ip": "47.96.1.2",
    "src_private_ip": "10.0.3.7",
    "src_port": "51234",
    "dst_ip": "203.0.113.7",
    "dst_port": "443",
    "ip_protocol": "tcp",
    "direction": "out",
    "rule_result": "pass",
    "acl_rule_id": "00000000-0000-0000-0000-000000000000",
    "app_name": "HTTPS",
    "domain": "Example.COM",
    "in_packet_bytes": "5120",
    "out_packet_bytes": "812",
    "in_packet_count": "9",
    "out_packet_count": "7",
    "cloud_instance_id": "i-bp1sandbox07",
}


def variant(**changes: object) -> str:
    record = {**GOOD, **changes}
    return json.dumps({k: v for k, v in record.items() if v is not ...}, separators=(",", ":"))


VARIANTS = [
    variant(),
    variant(rule_result="drop", acl_rule_id="acl-9", ips_rule_name_en="Mining pool"),
    variant(rule_result="alert", attack_type_name="\u6316\u77ff", domain=""),
    variant(direction="in", src_private_ip="", ip_protocol="", proto="UDP"),
    variant(src_private_ip=..., src_ip="2001:DB8::1", dst_ip="2001:db8::2"),
    variant(end_time="", src_port="-", out_packet_bytes=""),
    variant(end_time="1764748700"),  # end before start: a note
    variant(start_time="1764748800000"),  # milliseconds by magnitude: a note
    variant(start_time="", __time__="1764748805"),  # __time__ stands in: a note
    variant(start_time=..., __time__=...),  # no time: a reject
    variant(start_time="2025-12-03T08:00:00Z"),  # ISO: read line by line
    variant(start_time="99999999999"),  # out of range: a reject
    variant(src_ip="10.20.1.999", src_private_ip=...),  # bad address: a reject
    variant(dst_ip=...),  # no destination: a reject
    variant(dst_port="70000"),  # port out of range: a reject
    variant(out_packet_bytes="+812"),
    variant(out_packet_bytes="-5"),
    variant(src_port=443),  # a number where the export writes strings
    variant(domain={"nested": 1}),
    variant(cloud_instance_id=" i-bp1  ", rule_result=" DROP "),
    variant(start_time=" 1764748800"),
    '{"src_ip":"1.2.3.4","src_ip":"5.6.7.8","dst_ip":"9.9.9.9","start_time":"1764748800"}',
    '{"a":1}{"b":2}',
    '{"broken": ',
    "[1, 2]",
    "",
    "   ",
    variant() + "\r",
    variant().replace("HTTPS", "HT\\u0000TPS"),
    variant(app_name="caf\u00e9"),
    variant(start_time="1e1000000"),
    variant(
        app_name="\ud800x", domain="ok\ud83d\ude00.example"
    ),  # a lone surrogate: noted  # an exponent Decimal overflows on: a reject
    variant()[:-1] + ',"extra":' + "[" * 1200 + "]" * 1200 + "}",  # too deep for Python's json
    variant()[:-1] + ',"extra":' + "7" * 5000 + "}",  # an int over Python's 4,300 digits
]
RAW_VARIANTS = [
    *(v.encode() for v in VARIANTS),
    b'{"src_ip":"1.2.3.4","x":"\xff"}',
    b"\xef\xbb\xbf",
]


def reference(source: Source, options: LoadOptions) -> LoadResult:
    """Every line of ``iter_lines`` through the per-line reader: the loader before the column-wise
    path existed (CSV exports are read as they always were)."""
    if not source.head(4096).lstrip(b"\xef\xbb\xbf \t\r\n").startswith((b"{", b"[")):
        return alibaba_cfw.read(source, options)
    load = FileLoad(source, options, alibaba_cfw.name, alibaba_cfw.kind, NETWORK_EVENTS)
    for line, raw in iter_lines(source):
        alibaba_cfw._line(line, raw, load)
    return load.result()


def load(path: Path, *, fast: bool, cap: int = 1 << 24, **options: object) -> LoadResult:
    source = Source(path, path.name, limits=Limits(max_line_bytes=cap))
    opts = LoadOptions(**options)  # type: ignore[arg-type]
    return alibaba_cfw.read(source, opts) if fast else reference(source, opts)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(st.sampled_from(RAW_VARIANTS), min_size=1, max_size=60),
    trailing_newline=st.booleans(),
    piece=st.integers(1, 20),
)
def test_column_wise_equals_line_by_line(
    tmp_path_factory, monkeypatch, lines, trailing_newline, piece
):
    monkeypatch.setattr(blocks, "SMALLEST_PIECE", piece)
    path = write(tmp_path_factory.mktemp("cfw") / "cfw.json", lines, trailing_newline)
    outcomes = []
    for fast in (True, False):
        try:
            outcomes.append(load(path, fast=fast))
        except InputError as exc:  # every record of the first 100 failing stops both alike
            outcomes.append(str(exc))
    if isinstance(outcomes[0], str) or isinstance(outcomes[1], str):
        assert outcomes[0] == outcomes[1]
    else:
        same(*outcomes)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(st.sampled_from(RAW_VARIANTS[:5]), min_size=1, max_size=30),
    chunk=st.integers(1, 2000),
    long_at=st.none() | st.integers(0, 29),
)
def test_chunk_boundaries_and_long_lines(tmp_path_factory, monkeypatch, lines, chunk, long_at):
    """Lines split across read chunks, and the --max-line-bytes stop at the same line."""
    if long_at is not None and long_at < len(lines):
        lines = [*lines[:long_at], variant(app_name="x" * 2000).encode(), *lines[long_at:]]
    path = write(tmp_path_factory.mktemp("cfw") / "cfw.json", lines)
    monkeypatch.setattr(blocks, "CHUNK_BYTES", chunk)
    outcomes = []
    for fast in (True, False):
        try:
            outcomes.append(load(path, fast=fast, cap=2048))
        except InputError as exc:
            outcomes.append(str(exc))
    if isinstance(outcomes[0], str) or isinstance(outcomes[1], str):
        assert outcomes[0] == outcomes[1]
    else:
        same(*outcomes)


@pytest.mark.parametrize("unit", ["auto", "s", "ms"])
def test_big_compressed_file_with_bad_lines_among_good(tmp_path, unit):
    """A run mixing good and bad rows loses none of the good ones (gzip streams the same way)."""
    lines = [VARIANTS[i % 5].encode() for i in range(20_000)]
    lines[7_777] = VARIANTS[12].encode()
    lines[12_345] = b'{"broken": '
    path = write(tmp_path / "cfw.json.gz", [])
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    fast, slow = load(path, fast=True, epoch_unit=unit), load(path, fast=False, epoch_unit=unit)
    same(fast, slow)
    assert fast.stats.read == 20_000 and fast.stats.rejected == 2
    assert fast.stats.loaded == 19_998


def test_strict_stops_at_the_same_first_reject(tmp_path):
    lines = [VARIANTS[0].encode()] * 50 + [VARIANTS[13].encode()] + [VARIANTS[0].encode()] * 50
    path = write(tmp_path / "cfw.json", lines)
    messages = raised(lambda fast: load(path, fast=fast, strict=True))
    assert messages[0] == messages[1] and "cfw.json:51" in messages[0]


@pytest.mark.parametrize("anchors", [1, 7, 1000])
def test_keep_policy_keeps_violations_and_the_exact_anchor_sample(tmp_path, anchors):
    lines = [VARIANTS[i % 5].encode() for i in range(3_000)] + [VARIANTS[12].encode()]
    path = write(tmp_path / "cfw.json", lines)
    policy = KeepPolicy(actions=("denied", "alerted"), anchors=anchors)
    full = load(path, fast=True)
    kept = load(path, fast=True, keep=policy)
    expected, _ = cut_sample(full.table, policy, {})
    assert kept.table.sort_by("source_line").equals(expected.sort_by("source_line"))
    denied = sum(1 for a in full.table.column("action").to_pylist() if a != "allowed")
    assert denied == 1_200  # every violation is kept, whatever the sample size
    assert kept.table.num_rows == denied + min(anchors, 1_800)
    assert kept.stats.read == full.stats.read and kept.stats.loaded == full.stats.loaded
    assert kept.stats.unkept == full.stats.loaded - kept.table.num_rows
    assert kept.rejects == full.rejects


def test_a_spill_receives_every_row_as_it_is_read_and_memory_keeps_none(tmp_path):
    lines = [VARIANTS[i % 5].encode() for i in range(3_000)] + [VARIANTS[12].encode()]
    path = write(tmp_path / "cfw.json", lines)
    spilled: list = []
    full = load(path, fast=True)
    out = load(path, fast=True, spill=spilled.append)
    assert out.table.num_rows == 0 and len(spilled) >= 1
    assert pa.concat_tables(spilled).equals(full.table)
    assert out.stats == full.stats and out.rejects == full.rejects


def test_a_lone_surrogate_escape_is_replaced_and_noted_not_a_crash(tmp_path):
    path = write(tmp_path / "cfw.json", [variant(app_name="a\ud800b").encode()])
    for fast in (True, False):
        result = load(path, fast=fast)
        assert result.table.column("app").to_pylist() == ["a\ufffdb"]
        assert result.stats.notes == {
            "lone surrogate escape (\\ud800-\\udfff) replaced by U+FFFD": 1
        }


def test_rows_with_lone_surrogates_do_not_fail_a_batch():
    from correlate.loaders.base import Batcher

    batch = Batcher(NETWORK_EVENTS)
    batch.add({"src_ip": "10.0.0.1", "app": "x\ud800"})
    assert batch.table().column("app").to_pylist() == ["x\ufffd"]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(st.sampled_from(RAW_VARIANTS), min_size=1, max_size=120),
    anchors=st.integers(1, 12),
)
def test_the_put_off_sample_is_the_sample_of_the_full_table(tmp_path_factory, lines, anchors):
    """Allowed rows are held back until the file's end (``columnar.Deferred``); what is kept,
    counted and rejected is what loading everything and cutting the sample gives, including
    rows whose other fields only the per-line reader reads (a nested ``domain``)."""
    path = write(tmp_path_factory.mktemp("cfw") / "cfw.json", lines)
    policy = KeepPolicy(actions=("denied", "alerted"), anchors=anchors)
    full = load(path, fast=True)
    kept = load(path, fast=True, keep=policy)
    expected, _ = cut_sample(full.table, policy, {})
    assert kept.table.equals(expected)  # in line order, as every loader gives its rows
    for field in ("read", "loaded", "rejected", "skipped", "notes"):
        assert getattr(kept.stats, field) == getattr(full.stats, field), field
    assert kept.stats.unkept == full.stats.loaded - kept.table.num_rows
    assert kept.rejects == full.rejects


@pytest.mark.parametrize("finish_rows", [2, 8192])
def test_a_put_off_row_pyarrow_refuses_in_full_is_read_line_by_line_once(
    tmp_path, monkeypatch, finish_rows
):
    monkeypatch.setattr(columnar, "FINISH_ROWS", finish_rows)  # parsed in parts at the end
    nested = variant(domain={"nested": 1}).encode()
    lines = [VARIANTS[0].encode(), nested, VARIANTS[1].encode(), nested, VARIANTS[0].encode()]
    path = write(tmp_path / "cfw.json", [*lines, b""] * 3)  # blank lines: three runs
    policy = KeepPolicy(actions=("denied", "alerted"), anchors=1000)
    full = load(path, fast=True)
    kept = load(path, fast=True, keep=policy)
    assert kept.table.equals(full.table)
    assert '{"nested": 1}' in kept.table.column("dst_domain").to_pylist()
    assert (kept.stats.read, kept.stats.loaded, kept.stats.unkept) == (18, 15, 0)
    assert kept.stats.skipped == full.stats.skipped
