"""A file as runs of lines for column-wise parsing, with exact line numbers.

Column-wise loaders hand a run of well-shaped lines to one of pyarrow's readers at once and send
every other line (a header, a blank line, a BOM, a line of another shape) to their per-line
reader. ``line_runs`` does the cutting with numpy over large blocks, so the per-line Python work is
only for the lines that need it; line numbering, end-of-line stripping and the
``--max-line-bytes`` stop are exactly those of ``sources.iter_lines``.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.json as pj

from ..errors import InputError
from ..sources import LONG_LINE_PREFIX, LongLine, Source, skip_long_line

CHUNK_BYTES = 8 << 20
"""How much is read at a time (a run never spans two reads)."""

DIGITS = b"0123456789"

T = TypeVar("T")


def _table(values: bytes) -> np.ndarray:
    table = np.zeros(256, dtype=bool)
    table[list(values)] = True
    return table


def line_runs(
    source: Source, first: bytes, last: bytes | None = None, *, chunk_bytes: int | None = None
) -> Iterator[tuple[int, bytes, int]]:
    """The file as ``(first line number, bytes, count)``.

    ``count`` > 0: a run of ``count`` consecutive lines joined by ``\\n`` whose first byte is one of
    ``first`` and, when ``last`` is given, whose last byte (before a ``\\r``) is one of ``last``.
    ``count`` == 0: one line that needs the per-line reader, without its end of line.
    Lines are numbered from ``source.first_line`` (1 unless the source is a byte range).
    """
    for number, blob, count, _, _ in line_runs_spans(source, first, last, chunk_bytes=chunk_bytes):
        yield number, blob, count


def line_runs_spans(
    source: Source, first: bytes, last: bytes | None = None, *, chunk_bytes: int | None = None
) -> Iterator[tuple[int, bytes, int, np.ndarray, np.ndarray]]:
    """``line_runs`` with each run's ``line_spans`` (empty for a single line), found while
    cutting, so a column-wise loader does not look for the line ends a second time."""
    empty = np.zeros(0, dtype=np.int64)
    cap = source.limits.max_line_bytes
    size = chunk_bytes or CHUNK_BYTES
    first_ok, last_ok = _table(first), None if last is None else _table(last)
    number = source.first_line - 1  # lines before the next one (a byte range starts later)
    try:
        with source.open() as stream:
            rest = b""
            while True:
                block = stream.read(size)
                data = rest + block
                if not data:
                    break
                if block:
                    cut = data.rfind(b"\n") + 1
                    if cut == 0:
                        if len(data) > cap:  # skip the rest of the line without holding it
                            length, ended = skip_long_line(stream, data, size)
                            number += 1
                            source.oversize.append(
                                LongLine(number, length, data[:LONG_LINE_PREFIX])
                            )
                            if ended:
                                break
                            rest = b""
                            continue
                        rest = data
                        continue
                    data, rest = data[: cut - 1], data[cut:]
                else:
                    rest = b""
                view = np.frombuffer(data, dtype=np.uint8)
                breaks = np.flatnonzero(view == 0x0A)
                starts = np.empty(len(breaks) + 1, dtype=np.int64)
                starts[0], starts[1:] = 0, breaks + 1
                ends = np.empty(len(breaks) + 1, dtype=np.int64)
                ends[:-1], ends[-1] = breaks, len(data)
                stop = len(starts)
                too_long: set[int] = set()
                if len(data) > cap:
                    too_long = set(np.flatnonzero(ends - starts > cap).tolist())
                nonempty = starts < ends
                if not len(data):
                    good = nonempty
                else:
                    good = first_ok[view[np.minimum(starts, len(data) - 1)]] & nonempty
                    if last_ok is not None:
                        tail = np.maximum(ends - 1, 0)
                        tail = tail - ((view[tail] == 0x0D) & (tail > starts))
                        good &= last_ok[view[tail]] & nonempty
                if too_long:
                    good[sorted(too_long)] = False
                odd = np.flatnonzero(~good[:stop])
                at = 0
                for index in [*odd.tolist(), stop]:
                    if index > at:
                        base = starts[at]
                        yield (
                            number + at + 1,
                            data[base : ends[index - 1]],
                            index - at,
                            starts[at:index] - base,
                            ends[at:index] - base,
                        )
                    if index == stop:
                        break
                    line = data[starts[index] : ends[index]].rstrip(b"\r\n")
                    if index in too_long:
                        source.oversize.append(
                            LongLine(number + index + 1, len(line), line[:LONG_LINE_PREFIX])
                        )
                    else:
                        yield number + index + 1, line, 0, empty, empty
                    at = index + 1
                number += len(starts)
                if not block:
                    break
    except (OSError, EOFError, pa.ArrowException) as exc:
        raise InputError(f"{source.display}: cannot read further: {exc}") from exc


def numbered_lines(first: int, blob: bytes, count: int = 1) -> Iterator[tuple[int, bytes]]:
    """``(line number, line)`` of a run from ``line_runs`` (``count`` 0: one line as it is), each
    without its ``\\r``: what a per-line reader is handed."""
    for offset, raw in enumerate(blob.split(b"\n") if count else [blob]):
        yield first + offset, raw.rstrip(b"\r")


def line_spans(blob: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Start and end offsets of each ``\\n``-separated line of a run (ends exclude the ``\\n``)."""
    view = np.frombuffer(blob, dtype=np.uint8)
    ends = np.flatnonzero(view == 0x0A)
    starts = np.concatenate(([0], ends + 1))
    return starts, np.concatenate((ends, [len(blob)]))


PARSE_BLOCK = 2 << 20
"""pyarrow parses a run in blocks of this size, in parallel (``read_json`` of 8 MiB runs in 2 MiB
blocks: ~690 MB/s of CFW lines on 2 cores, against ~460 with ``open_json`` and 1 MiB blocks).
Bigger runs parse a little faster but cost more in page faults than they save."""

SMALLEST_PIECE = 16
"""A refused run is halved until its pieces are this many lines; those go line by line."""


def json_pieces(
    blob: bytes, first: int, count: int, schema: pa.Schema
) -> Iterator[tuple[int, bytes, int, pa.Table | None]]:
    """Parse a run of JSON-object lines with ``pyarrow.json`` into ``schema``'s columns.

    Yields ``(first line, bytes, count, table)`` in line order; ``table`` is None for a piece
    pyarrow refused (bad JSON, a key twice, a value of another type, invalid UTF-8, or a row count
    that is not the line count) and that is small enough to read line by line. A refused run is
    halved and retried, so one bad line costs a few retries, not the run.
    """
    pending = [(first, blob, count)]
    while pending:
        at, data, n = pending.pop()
        table = _parse_json(data, n, schema)
        if table is not None or n <= SMALLEST_PIECE:
            yield at, data, n, table
            continue
        starts, ends = line_spans(data)
        half = n // 2
        # last in, first out: push the second half first so pieces come out in line order
        pending.append((at + half, data[starts[half] :], n - half))
        pending.append((at, data[: ends[half - 1]], half))


def valid_utf8(data: bytes) -> bool:
    """Whether ``data`` is valid UTF-8 (Arrow's check: fast, no copy)."""
    if data.isascii():
        return True
    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int64).tobytes())
    whole = pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, pa.py_buffer(data)])
    try:
        whole.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _parse_json(data: bytes, count: int, schema: pa.Schema) -> pa.Table | None:
    # pyarrow does not check the bytes of strings; the per-line reader notes invalid UTF-8
    if not valid_utf8(data):
        return None
    # Blocks of 2 MiB let pyarrow parse on every core; a line longer than that needs one block.
    sizes = (PARSE_BLOCK, len(data) + 1) if len(data) >= PARSE_BLOCK else (len(data) + 1,)
    for block_size in sizes:
        try:
            table = pj.read_json(
                pa.py_buffer(data),
                read_options=pj.ReadOptions(block_size=block_size),
                parse_options=pj.ParseOptions(
                    explicit_schema=schema,
                    unexpected_field_behavior="ignore",
                    newlines_in_values=False,
                ),
            )
        except pa.ArrowInvalid:
            continue
        return table if table.num_rows == count else None
    return None


def ahead(items: Iterator[T], name: str, depth: int = 2) -> Generator[T, None, None]:
    """``items`` produced in a thread, up to ``depth`` ahead of the consumer.

    Column-wise loaders read, cut and parse the next run (pyarrow and numpy work without the GIL)
    while the current one is checked in Python, so both cores are busy. Items come in order; an
    error raised producing one is raised here at its place, after the items before it. Closing
    the generator (or an error in the consumer) stops the thread and closes ``items``.
    """
    done: queue.Queue[tuple[bool, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[bool, object]) -> bool:
        while not stop.is_set():
            try:
                done.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
            put((False, None))
        except BaseException as exc:  # raised in the reading thread, at its place in the file
            put((False, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=work, name=f"{name}-ahead", daemon=True)
    thread.start()
    try:
        while True:
            more, item = done.get()
            if not more:
                if item is not None:
                    raise item  # type: ignore[misc]
                return
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()
