"""Record readers shared by loaders: JSON lines and header-driven CSV, with exact line numbers.

Each yields ``(line, record, raw text)``; blank lines are counted as skipped and unreadable ones
rejected here, so a loader only sees records it can try to convert.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from typing import Any

from ..errors import InputError
from ..sources import Source, decode_line, iter_lines
from . import fields
from .base import Counts, LoadStats, RejectSink

Record = tuple[int, dict[str, Any], str]


def json_line_records(source: Source, stats: LoadStats, sink: RejectSink) -> Iterator[Record]:
    """One JSON object per line. Invalid UTF-8 is read as U+FFFD and counted in the file's notes."""
    counts = Counts(stats, sink)
    for line, raw_bytes in iter_lines(source):
        found = json_line_record(line, raw_bytes, counts)
        if found is not None:
            yield line, found[0], found[1]


def text_lines(source: Source, load: Counts) -> Iterator[tuple[int, str]]:
    """The file's lines as text, blank lines counted as skipped (see ``text_line``)."""
    for line, raw_bytes in iter_lines(source):
        text = text_line(line, raw_bytes, load)
        if text is not None:
            yield line, text


def marked_lines(
    source: Source, load: Counts, marker: re.Pattern[str], unmarked: str
) -> Iterator[tuple[int, str, re.Match[str]]]:
    """The file's non-blank lines in which ``marker`` is found, with its match; the others are
    counted as skipped with the reason ``unmarked`` (syslog-borne records after their header)."""
    for line, text in text_lines(source, load):
        match = marker.search(text)
        if match is None:
            load.skip(unmarked)
            continue
        yield line, text, match


def text_line(line: int, raw_bytes: bytes, load: Counts) -> str | None:
    """One line as text (invalid UTF-8 as U+FFFD, noted; a BOM on line 1 dropped); None when it
    was blank, counted as skipped here. The caller counts the record it makes of the text."""
    raw, note = decode_line(raw_bytes)
    if note:
        load.note(note)
    if line == 1:
        raw = raw.removeprefix("\ufeff")
    if not raw.strip():
        load.skip("blank line")
        return None
    return raw


def json_line_record(
    line: int, raw_bytes: bytes, load: Counts
) -> tuple[dict[str, Any], str] | None:
    """One line of a JSON-lines file as (object, text); None when it was counted as skipped or
    rejected here (blank, not JSON, not an object). The caller counts the object it converts."""
    raw = text_line(line, raw_bytes, load)
    if raw is None:
        return None
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # ValueError: bad JSON, an int of 4,300+ digits
        load.reject(line, f"not valid JSON ({exc.__class__.__name__}: {str(exc)[:80]})", raw)
        return None
    if not isinstance(record, dict):
        load.reject(line, f"not a JSON object but a JSON {type(record).__name__}", raw)
        return None
    if fields.may_hold_surrogates(raw):
        record, changed = fields.without_surrogates(record)
        if changed:
            load.note(fields.SURROGATE_NOTE)
    return record, raw


def csv_records(source: Source, stats: LoadStats, sink: RejectSink) -> Iterator[Record]:
    """Rows of a CSV file with a header row, as dicts keyed by the header's names.

    Streamed line by line (memory grows with one record, not the file); quoted fields may span
    lines, and each record carries the number of its first physical line and its raw text.
    """
    counts = Counts(stats, sink)
    consumed: list[str] = []

    def physical_lines() -> Iterator[str]:
        for number, raw_bytes in iter_lines(source):
            text, note = decode_line(raw_bytes)
            if note:
                counts.note(note)
            if number == 1:
                text = text.removeprefix("\ufeff")
            consumed.append(text)
            yield text + "\n"

    reader = csv.reader(physical_lines())
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return
    except csv.Error as exc:
        counts.reject(1, f"unreadable CSV header: {exc}", "\n".join(consumed))
        return
    counts.skip("CSV header")
    previous_end = reader.line_num
    while True:
        consumed.clear()
        start = previous_end + 1
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            counts.reject(start, f"unreadable CSV row: {exc}", "\n".join(consumed))
            previous_end = reader.line_num
            continue
        previous_end = reader.line_num
        raw = "\n".join(consumed)
        if not values or all(not v.strip() for v in values):
            counts.skip("blank line")
            continue
        if len(values) != len(header):
            counts.reject(start, f"{len(values)} columns where the header has {len(header)}", raw)
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


def read_document(
    source: Source, stats: LoadStats, sink: RejectSink, *, too_big: str
) -> tuple[Any, str] | None:
    """A whole-file JSON document and its text, or None after rejecting record 1 as invalid JSON.

    Files are read whole only up to ``WHOLE_DOCUMENT_LIMIT`` (uncompressed); ``too_big`` ends the
    sentence that stops a larger one (e.g. "an ATIF trajectory over 256 MiB is not read whole").
    """
    if source.size() > WHOLE_DOCUMENT_LIMIT and not source.compression:
        raise InputError(f"{source.display}: {too_big}")
    text = read_text(source, stats).removeprefix("\ufeff")
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:  # ValueError: bad JSON, an int of 4,300+ digits
        Counts(stats, sink).reject(
            1, f"not valid JSON ({exc.__class__.__name__}: {str(exc)[:80]})", text
        )
        return None
    if fields.may_hold_surrogates(text):
        document, changed = fields.without_surrogates(document)
        if changed:
            stats.notes[fields.SURROGATE_NOTE] += 1
    return document, text


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
    found = read_document(
        source,
        stats,
        sink,
        too_big=f"a multi-line JSON document over {WHOLE_DOCUMENT_LIMIT >> 20} MiB; write it as JSON lines",
    )
    if found is None:
        return
    document, _ = found
    items = document if isinstance(document, list) else [document]
    for index, item in enumerate(items, start=1):
        line = index if isinstance(document, list) else 1
        if isinstance(item, dict):
            yield line, item, json.dumps(item, ensure_ascii=False)[:4096]
        else:
            Counts(stats, sink).reject(
                line, f"not a JSON object but a JSON {type(item).__name__}", json.dumps(item)[:4096]
            )
