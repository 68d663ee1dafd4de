"""blocks: the spans found while cutting are the runs' own, and ``ahead`` keeps order and errors."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from correlate.loaders.blocks import ahead, line_runs, line_runs_spans, line_spans
from correlate.sources import Limits, Source

LINES = st.lists(
    st.sampled_from([b"{}", b'{"a":1}', b"x", b"", b"{\r", b'{"b":2}\r', b"}", b"{" + b"y" * 30]),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(LINES, st.sampled_from([b"\n", b"\r\n"]), st.booleans(), st.integers(3, 64))
def test_spans_found_while_cutting_are_line_spans_of_each_run(lines, eol, final_eol, chunk):
    data = eol.join(lines) + (eol if final_eol and lines else b"")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.jsonl"
        path.write_bytes(data)
        source = Source(path, "t.jsonl", limits=Limits(max_line_bytes=20))
        with_spans = list(line_runs_spans(source, b"{", b"}", chunk_bytes=chunk))
        plain = list(line_runs(source, b"{", b"}", chunk_bytes=chunk))
    assert [(a, b, c) for a, b, c, _, _ in with_spans] == plain
    for _, blob, count, starts, ends in with_spans:
        if count:
            expected = line_spans(blob)
            assert starts.tolist() == expected[0].tolist()
            assert ends.tolist() == expected[1].tolist()
            assert len(starts) == count
        else:
            assert len(starts) == len(ends) == 0


def test_ahead_gives_every_item_in_order():
    assert list(ahead(iter(range(1000)), "t", depth=2)) == list(range(1000))


def test_ahead_raises_an_error_after_the_items_before_it():
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("cut at line 3")

    got = []
    with pytest.raises(ValueError, match="cut at line 3"):
        for item in ahead(items(), "t"):
            got.append(item)
    assert got == [1, 2]


def test_ahead_stops_and_closes_the_producer_when_the_consumer_stops():
    closed = threading.Event()

    def items() -> Iterator[int]:
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.set()

    runs = ahead(items(), "t", depth=1)
    with pytest.raises(RuntimeError):
        for item in runs:
            if item == 3:
                raise RuntimeError("strict: first reject")
    runs.close()
    assert closed.wait(5)
    assert not any(t.name == "t-ahead" for t in threading.enumerate())
