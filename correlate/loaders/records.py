"""Record readers shared by loaders: JSON lines and header-driven CSV, with exact line numbers.

Each yields ``(line, record, raw text)``; blank lines are counted as skipped and unreadable ones
rejected here, so a loader only sees records it can try to convert.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from ..errors import InputError
from ..sources import Source, decode_line, iter_lines
from .base import LoadStats, RejectSink

Record = tuple[int, dict[str, Any], str]


def json_line_records(source: Source, stats: LoadStats, sink: RejectSink) -> Iterator[Record]:
    """One JSON object per line. Invalid UTF-8 is read as U+FFFD and counted in the file's notes."""
    for line, raw_bytes in iter_lines(source):
        raw, note = decode_line(raw_bytes)
        if note:
            stats.notes[note] += 1
        if line == 1:
            raw = raw.removeprefix("\ufeff")
        if not raw.strip():
            stats.read += 1
            stats.skipped["blank line"] += 1
            continue
        try:
            record = json.loads(raw)
        except (json.JSONDecodeError, RecursionError) as exc:
            stats.read += 1
            sink.reject(line, f"not valid JSON ({exc.__class__.__name__}: {str(exc)[:80]})", raw)
            continue
        if not isinstance(record, dict):
            stats.read += 1
            sink.reject(line, f"not a JSON object but a JSON {type(record).__name__}", raw)
            continue
        yield line, record, raw


def csv_records(text: str, stats: LoadStats, sink: RejectSink) -> Iterator[Record]:
    """Rows of a CSV text with a header row, as dicts keyed by the header's names."""
    # Physical lines as csv counts them: only \n (and \r\n) end a line, not \x0c or \u2028.
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lstrip("\ufeff") for h in next(reader)]
    except StopIteration:
        return
    except csv.Error as exc:
        stats.read += 1
        sink.reject(1, f"unreadable CSV header: {exc}", lines[0] if lines else "")
        return
    stats.read += 1
    stats.skipped["CSV header"] += 1
    previous_end = reader.line_num
    while True:
        start = previous_end + 1
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            stats.read += 1
            sink.reject(
                start, f"unreadable CSV row: {exc}", lines[start - 1] if start <= len(lines) else ""
            )
            previous_end = reader.line_num
            continue
        previous_end = reader.line_num
        raw = "\n".join(lines[start - 1 : previous_end])
        if not values or all(not v.strip() for v in values):
            stats.read += 1
            stats.skipped["blank line"] += 1
            continue
        if len(values) != len(header):
            stats.read += 1
            sink.reject(start, f"{len(values)} columns where the header has {len(header)}", raw)
            continue
        yield start, dict(zip(header, values, strict=True)), raw


def read_text(source: Source, stats: LoadStats) -> str:
    """The whole decompressed file as text (for small files such as inventories and CSV exports)."""
    with source.open() as stream:
        text, note = decode_line(stream.read())
    if note:
        stats.notes[note] += 1
    return text


def first_line(head: bytes) -> bytes:
    """The first non-blank line of a file's head (without a UTF-8 BOM), for sniffing."""
    for line in head.lstrip(b"\xef\xbb\xbf").splitlines():
        if line.strip():
            return line.strip()
    return b""


WHOLE_DOCUMENT_LIMIT = 256 * 1024 * 1024
"""A pretty-printed (multi-line) JSON file is parsed whole only up to this size."""


def json_documents(source: Source, stats: LoadStats, sink: RejectSink) -> Iterator[Record]:
    """JSON lines, or one JSON document (an object, or an array of them) that may span many lines.

    The file is one document when its first line does not parse on its own or is an array; records
    from an object carry line 1, an array's items their 1-based index.
    """
    first = first_line(source.head())
    try:
        # An array on the first line is a whole-file document too (``[{...}, {...}]``).
        multi_line = isinstance(json.loads(first), list)
    except (ValueError, RecursionError):
        multi_line = first.startswith((b"{", b"["))
    if not multi_line:
        yield from json_line_records(source, stats, sink)
        return
    if source.size() > WHOLE_DOCUMENT_LIMIT and not source.compression:
        raise InputError(
            f"{source.display}: a multi-line JSON document over {WHOLE_DOCUMENT_LIMIT >> 20} MiB; write it as JSON lines"
        )
    text = read_text(source, stats).removeprefix("\ufeff")
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        stats.read += 1
        sink.reject(1, f"not valid JSON ({exc.__class__.__name__}: {str(exc)[:80]})", text)
        return
    items = document if isinstance(document, list) else [document]
    for index, item in enumerate(items, start=1):
        line = index if isinstance(document, list) else 1
        if isinstance(item, dict):
            yield line, item, json.dumps(item, ensure_ascii=False)[:4096]
        else:
            stats.read += 1
            sink.reject(
                line, f"not a JSON object but a JSON {type(item).__name__}", json.dumps(item)[:4096]
            )
