"""The AWS VPC loader's column-wise fast path gives exactly the per-line reader's rows, rejects and
stats, whatever the lines (property test), and the benchmark generator's tiny incident agrees."""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loader_helpers import same

from correlate.errors import InputError
from correlate.loaders import LoadOptions, LoadResult, aws_vpc_flow, blocks
from correlate.sources import Limits, Source, iter_lines

HEADER = (
    "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes "
    "start end action log-status vpc-id instance-id flow-direction pkt-srcaddr reject-reason"
)
GOOD = (
    "5 123456789012 eni-0a1b2c3d4e0000376 10.20.1.186 203.160.229.55 60411 80 6 80 117440 "
    "1764633600 1764633609 ACCEPT OK vpc-0123 i-0f00376 egress - -"
)
VARIANTS = [
    GOOD,
    GOOD.replace("ACCEPT", "REJECT").replace("- -", "10.9.9.9 BPA"),
    GOOD.replace("egress", "ingress"),
    GOOD.replace("egress", "-").replace(" 6 ", " 17 "),
    GOOD.replace("ACCEPT OK", "- NODATA"),
    GOOD.replace("ACCEPT OK", "- SKIPDATA"),
    GOOD.replace(" 6 ", " 06 ").replace("60411", "0"),
    GOOD.replace("10.20.1.186", "2001:DB8::1"),
    GOOD.replace("1764633609", "1764633500"),  # end before start: a note
    GOOD.replace("1764633600", "1764633600000"),  # milliseconds by magnitude: a note
    GOOD.replace("1764633600", "-"),  # start missing: a reject
    GOOD.replace("10.20.1.186", "10.20.1.999"),  # bad address: a reject
    GOOD.replace("60411", "70000"),  # port out of range: a reject
    GOOD.replace("117440", "+117440"),
    GOOD.replace("117440", "-5"),
    GOOD.replace(" 80 117440", " 80  117440"),  # double space: split() still finds 19 fields
    GOOD + " extra",
    GOOD.replace("egress", "EGRESS").replace("ACCEPT", "accept"),
    GOOD.replace("10.20.1.186 ", "10.20.1.186\t"),
    GOOD.replace("i-0f00376", "i-0f00376\u00a0x"),
    GOOD + "\r",
    "",
    "   ",
    "# a comment",
    HEADER,
    "version srcaddr dstaddr srcport dstport start action log-status",
    "5 10.0.0.1 10.0.0.2 1 2 1764633600 ACCEPT OK",
    "version srcaddr srcaddr start",
    "9" * 40,
]


def load(path: Path, *, fast: bool, monkeypatch: pytest.MonkeyPatch, **options) -> LoadResult:
    """The loader as it is (fast), or the reference: every line of ``iter_lines`` through the
    per-line reader, as the loader read before the fast path existed."""
    source = Source(path, path.name, limits=Limits(max_line_bytes=options.pop("cap", 1 << 24)))
    if fast:
        return aws_vpc_flow.read(source, LoadOptions(**options))
    reader = aws_vpc_flow._Reader(source, LoadOptions(**options))
    for line, raw in iter_lines(source):
        reader.line(line, raw)
    return reader.result()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(st.sampled_from(VARIANTS), min_size=0, max_size=40),
    header=st.booleans(),
    trailing_newline=st.booleans(),
)
def test_fast_path_equals_line_by_line(
    tmp_path_factory, monkeypatch, lines, header, trailing_newline
):
    path = tmp_path_factory.mktemp("vpc") / "flows.log"
    body = "\n".join(([HEADER] if header else []) + lines)
    path.write_bytes((body + ("\n" if trailing_newline and body else "")).encode())
    same(
        load(path, fast=True, monkeypatch=monkeypatch),
        load(path, fast=False, monkeypatch=monkeypatch),
    )


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(st.sampled_from(VARIANTS), min_size=1, max_size=30),
    chunk=st.integers(1, 400),
    cap=st.integers(1024, 1100),
    long_at=st.none() | st.integers(0, 29),
)
def test_chunk_boundaries_and_long_lines(tmp_path_factory, monkeypatch, lines, chunk, cap, long_at):
    """Lines split across read chunks, and the max-line-bytes stop at the same line."""
    if long_at is not None and long_at < len(lines):
        lines = [*lines[:long_at], "1" * 1090, *lines[long_at:]]
    path = tmp_path_factory.mktemp("vpc") / "flows.log"
    path.write_bytes(("\n".join([HEADER, *lines])).encode())
    monkeypatch.setattr(blocks, "CHUNK_BYTES", chunk)
    outcomes = []
    for fast in (True, False):
        try:
            outcomes.append(load(path, fast=fast, monkeypatch=monkeypatch, cap=cap))
        except InputError as exc:
            outcomes.append(str(exc))
    if isinstance(outcomes[0], str) or isinstance(outcomes[1], str):
        assert outcomes[0] == outcomes[1]
    else:
        same(*outcomes)


@pytest.mark.parametrize("unit", ["auto", "s", "ms"])
def test_fast_path_equals_line_by_line_big_and_compressed(tmp_path, monkeypatch, unit):
    lines = [HEADER] + [VARIANTS[i % 4] for i in range(5000)] + [VARIANTS[11]] + [GOOD] * 100
    path = tmp_path / "flows.log.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    fast = load(path, fast=True, monkeypatch=monkeypatch, epoch_unit=unit)
    slow = load(path, fast=False, monkeypatch=monkeypatch, epoch_unit=unit)
    same(fast, slow)
    assert fast.stats.read == 5102


def test_fast_path_is_taken_for_plain_records(tmp_path, monkeypatch):
    path = tmp_path / "flows.log"
    path.write_text("\n".join([HEADER] + [GOOD] * 1000) + "\n")
    calls = []
    real = aws_vpc_flow._fast

    def spy(*args):
        table = real(*args)
        calls.append(table is not None)
        return table

    monkeypatch.setattr(aws_vpc_flow, "_fast", spy)
    result = aws_vpc_flow.read(Source(path, path.name), LoadOptions())
    assert calls == [True]
    assert result.table.num_rows == 1000
    assert isinstance(result.table, pa.Table)
