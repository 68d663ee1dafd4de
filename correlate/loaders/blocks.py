"""A file as runs of lines for column-wise parsing, with exact line numbers.

Column-wise loaders hand a run of well-shaped lines to one of pyarrow's readers at once and send
every other line (a header, a blank line, a BOM, a line of another shape) to their per-line
reader. ``line_runs`` does the cutting with numpy over large blocks, so the per-line Python work is
only for the lines that need it; line numbering, end-of-line stripping and the
``--max-line-bytes`` stop are exactly those of ``sources.iter_lines``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from ..errors import InputError
from ..sources import Source

CHUNK_BYTES = 8 << 20
"""How much is read at a time (a run never spans two reads)."""

DIGITS = b"0123456789"


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
    """
    cap = source.limits.max_line_bytes
    size = chunk_bytes or CHUNK_BYTES
    first_ok, last_ok = _table(first), None if last is None else _table(last)
    number = 0  # lines yielded so far
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
                        if len(data) > cap:
                            raise InputError(
                                f"{source.display}:{number + 1}: a line longer than {cap:,} bytes; "
                                "if the file is genuine, raise --max-line-bytes"
                            )
                        rest = data
                        continue
                    data, rest = data[: cut - 1], data[cut:]
                else:
                    rest = b""
                view = np.frombuffer(data, dtype=np.uint8)
                ends = np.flatnonzero(view == 0x0A)
                starts = np.concatenate(([0], ends + 1))
                ends = np.concatenate((ends, [len(data)]))
                too_long = np.flatnonzero(ends - starts > cap)
                stop = int(too_long[0]) if len(too_long) else len(starts)
                padded = np.append(view, np.uint8(0))
                good = first_ok[padded[starts]] & (starts < ends)
                if last_ok is not None:
                    tail = np.maximum(ends - 1, starts)
                    tail = tail - ((padded[tail] == 0x0D) & (tail > starts))
                    good &= last_ok[padded[tail]]
                odd = np.flatnonzero(~good[:stop])
                at = 0
                for index in [*odd.tolist(), stop]:
                    if index > at:
                        yield number + at + 1, data[starts[at] : ends[index - 1]], index - at
                    if index == stop:
                        break
                    yield number + index + 1, data[starts[index] : ends[index]].rstrip(b"\r\n"), 0
                    at = index + 1
                if stop < len(starts):
                    raise InputError(
                        f"{source.display}:{number + stop + 1}: a line longer than {cap:,} bytes; "
                        "if the file is genuine, raise --max-line-bytes"
                    )
                number += len(starts)
                if not block:
                    break
    except (OSError, EOFError, pa.ArrowException) as exc:
        raise InputError(f"{source.display}: cannot read further: {exc}") from exc


def line_spans(blob: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Start and end offsets of each ``\\n``-separated line of a run (ends exclude the ``\\n``)."""
    view = np.frombuffer(blob, dtype=np.uint8)
    ends = np.flatnonzero(view == 0x0A)
    starts = np.concatenate(([0], ends + 1))
    return starts, np.concatenate((ends, [len(blob)]))
