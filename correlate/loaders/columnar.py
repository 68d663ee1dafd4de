"""Column-wise reading of JSON-lines formats, and the vectorised checks loaders build it from.

A format describes itself as a ``JsonLines``: the fields that decide whether a row loads (and
its verdict), all the fields it reads, a column-wise ``check`` and ``normalise``, and its per-line
reader. ``read_json_lines`` then does the rest the same way for every format:

1. the file is cut into runs of object lines (``blocks.line_runs``), each parsed by pyarrow with
   the check schema (``blocks.json_pieces``: a refused run is halved down to lines);
2. ``check`` marks the rows a vectorised test cannot vouch for; they go through the per-line
   reader, which gives exactly the rows, notes and rejects it always gave;
3. of the good rows, those kept (all, or in ``run`` the violations and the anchor sample) are
   parsed again with every field and normalised; the others are only counted.

The helpers below (``mapped``, ``plain_int``, ``epoch_seconds``) are the vectorised checks:
each gives a converted column and clears ``ok`` for the rows it cannot vouch for.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..keep import ALL, line_hashes
from ..schema import NETWORK_EVENTS
from ..sources import Source
from . import fields
from .base import FileLoad
from .blocks import ahead, json_pieces, line_runs_spans, line_spans, numbered_lines

TEXT = pa.string()
NULL_TEXT = pa.scalar(None, TEXT)
NULL_INT = pa.scalar(None, pa.int64())
MAX_EPOCH_S = (2**63 - 1) // 1_000_000_000
"""Epoch seconds above this are out of the timestamp[ns] range (the per-line reader rejects)."""


@dataclass(frozen=True)
class JsonLines:
    """How a JSON-lines format is read column-wise (see the module docstring)."""

    check_schema: pa.Schema
    schema: pa.Schema
    check: Callable[[pa.Table, np.ndarray], pa.Array]
    """Clears ``ok`` for rows the per-line reader must read; returns the normalised verdict."""
    normalise: Callable[[pa.Table, np.ndarray, Source], pa.Table]
    """Checked rows parsed with ``schema`` to rows of the loader's table, given their lines."""
    per_line: Callable[[int, bytes, FileLoad], None]
    """The per-line reader: one line (without its end of line) into the load."""
    output: pa.Schema = NETWORK_EVENTS


def read_json_lines(load: FileLoad, spec: JsonLines, *, fast: bool = True) -> None:
    """Every line of ``load.source`` into ``load``, column-wise where ``fast``.

    When every good row is kept (no sampling), runs are parsed once with every field; when
    ``run`` samples, with the check fields, and the kept rows again with every field. The next
    runs are read, cut and parsed in a second thread (``blocks.ahead``) while this one is checked.
    """
    policy = load.options.keep
    later = Deferred(policy.anchors) if load.keeper is not None and policy is not None else None
    schema = spec.schema if later is None else spec.check_schema
    runs = ahead(_parsed_runs(load.source, schema, fast), load.name)
    try:
        for first, blob, count, pieces in runs:
            if pieces is None:
                for line, raw in numbered_lines(first, blob, count):
                    spec.per_line(line, raw, load)
                continue
            for piece in pieces:
                if piece.table is None:
                    for line, raw in numbered_lines(piece.first, piece.blob):
                        spec.per_line(line, raw, load)
                else:
                    _checked(piece, load, spec, later)
        if later is not None:
            later.finish(load, spec)
    finally:
        runs.close()


@dataclass(frozen=True)
class Piece:
    """Lines pyarrow parsed at once (``table``; None: refused, to be read line by line), with
    their offsets in ``blob`` and the lines Python's json may refuse (``beyond_python``)."""

    first: int
    blob: bytes
    table: pa.Table | None
    starts: np.ndarray
    ends: np.ndarray
    beyond: np.ndarray


def _parsed_runs(
    source: Source, schema: pa.Schema, fast: bool
) -> Iterator[tuple[int, bytes, int, list[Piece] | None]]:
    """``line_runs`` of object lines, each run parsed into pieces (None: line by line)."""
    empty = np.zeros(0, dtype=np.int64)
    for first, blob, count, starts, ends in line_runs_spans(source, b"{", b"}"):
        if count == 0 or not fast:
            yield first, blob, count, None
            continue
        pieces = []
        for at, piece, m, table in json_pieces(blob, first, count, schema):
            if table is None:
                pieces.append(Piece(at, piece, None, empty, empty, empty.astype(bool)))
                continue
            spans = (starts, ends) if m == count else line_spans(piece)
            pieces.append(Piece(at, piece, table, *spans, beyond_python(piece, *spans)))
        yield first, blob, count, pieces


def _checked(piece: Piece, load: FileLoad, spec: JsonLines, later: Deferred | None) -> None:
    """A parsed run: checked rows counted and the kept ones normalised; the rest line by line.

    Without sampling (``later`` None) the run was parsed with every field and every good row is
    kept. When ``run`` samples, the run was parsed with the check fields: violations are parsed
    in full now, and the allowed rows the sample may keep are put off (``later``) until the
    file's end, when the sample's bound is known."""
    table, first, blob = piece.table, piece.first, piece.blob
    assert table is not None
    starts, ends = piece.starts, piece.ends
    n = table.num_rows
    ok = np.ones(n, dtype=bool)
    verdict = spec.check(table, ok)
    ok &= ~piece.beyond  # the per-line reader decides (rejects) those
    keep = ok.copy()
    keeper, policy = load.keeper, load.options.keep
    put_off = 0
    if later is not None:
        assert keeper is not None and policy is not None, "sampling needs run's keeper"
        chosen = pc.fill_null(pc.is_in(verdict, value_set=pa.array(list(policy.actions))), False)
        keep &= np.asarray(chosen.to_numpy(zero_copy_only=False), dtype=bool)  # violations
        lines = np.arange(first, first + n, dtype=np.int64)
        hashes = line_hashes(load.source.display, lines)
        bound = min(keeper.bound(load.name), later.bound)
        rows = np.flatnonzero(ok & ~keep & (hashes <= bound))
        later.add(hashes, lines, blob, starts, ends, rows)
        put_off = len(rows)
    # The kept rows, parsed with every field; a row whose other fields pyarrow refuses (a key
    # twice, an object where text was expected) is read line by line like a refused check.
    kept = np.flatnonzero(keep)
    full: list[pa.Table] = []
    if len(kept) and later is None:
        rows_kept = table if len(kept) == n else table.filter(pa.array(keep))
        full.append(spec.normalise(rows_kept, kept + first, load.source))
    elif len(kept):
        whole = blob if len(kept) == n else b"\n".join(blob[starts[i] : ends[i]] for i in kept)
        for at, _, m, parsed in json_pieces(whole, 0, len(kept), spec.schema):
            rows = kept[at : at + m]
            if parsed is None:
                ok[rows] = False
            else:
                full.append(spec.normalise(parsed, rows + first, load.source))
    # Refused rows before the run's first good one are read first, so the early stop on a file
    # whose first records all fail sees them in line order; their rows are merged back by line.
    bad = np.flatnonzero(~ok)
    first_good = int(np.argmax(ok)) if ok.any() else n
    side = load.apart()

    def per_line(indices: np.ndarray) -> None:
        for i in indices.tolist():
            spec.per_line(first + i, blob[starts[i] : ends[i]].rstrip(b"\r"), side)

    per_line(bad[bad < first_good])
    loaded = int(ok.sum())
    load.count_loaded(loaded)
    per_line(bad[bad >= first_good])
    parts = [t for t in (*full, side.rows.table()) if t.num_rows]
    if not parts:
        load.keep_rows(spec.output.empty_table(), unkept=loaded - put_off)
        return
    merged = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
    if len(parts) > 1:
        merged = merged.sort_by([("source_line", "ascending")])
    load.keep_rows(merged, unkept=loaded - put_off - sum(t.num_rows for t in full))


FINISH_ROWS = 8192
"""Rows held back are parsed this many at a time at the file's end."""


class Deferred:
    """Allowed rows the anchor sample may keep, put off until the file's end: their hashes,
    lines and bytes, never more than 1.25 times the sample (``keep.py``).

    While a file is read the sample's bound only falls, so most rows that pass it early are cut
    later: parsing them in full as they come costs ~5x the rows finally kept (370k for 79k on
    2.9M records). Held back, only the survivors are parsed, once. The bound here is the sample
    bound of the rows held (never above the true one: they are a subset of the allowed rows).
    The bytes are held as runs of lines joined by ``\\n`` (one object per run, not per line),
    cut run by run.
    """

    def __init__(self, anchors: int) -> None:
        self.anchors = max(anchors, 1)
        self.bound = ALL
        self.hashes: list[np.ndarray] = []
        self.lines: list[np.ndarray] = []
        self.runs: list[tuple[bytes, np.ndarray, np.ndarray]] = []
        """(lines joined, their starts, their ends), in the order of ``hashes``/``lines``."""
        self.held = 0
        self.taken = 0
        """Rows put off in all (counted loaded when checked; the ones cut count as unkept)."""

    def add(
        self,
        hashes: np.ndarray,
        lines: np.ndarray,
        blob: bytes,
        starts: np.ndarray,
        ends: np.ndarray,
        rows: np.ndarray,
    ) -> None:
        """Rows ``rows`` of a run (``blob`` with its line ``starts``/``ends``)."""
        if not len(rows):
            return
        self.hashes.append(hashes[rows])
        self.lines.append(lines[rows])
        self.runs.append(_joined(blob, starts[rows], ends[rows]))
        self.held += len(rows)
        self.taken += len(rows)
        if self.held > self.anchors + self.anchors // 4:
            self._cut()

    def _cut(self) -> None:
        if not self.hashes:
            return
        hashes, lines = np.concatenate(self.hashes), np.concatenate(self.lines)
        if len(hashes) > self.anchors:
            bound = np.partition(hashes, self.anchors - 1)[self.anchors - 1]
            self.bound = min(self.bound, bound)
        held = hashes <= self.bound
        self.hashes, self.lines = [hashes[held]], [lines[held]]
        runs, at = [], 0
        for blob, starts, ends in self.runs:  # run by run: a run's copy at most at a time
            mine = np.flatnonzero(held[at : at + len(starts)])
            at += len(starts)
            if len(mine) == len(starts):
                runs.append((blob, starts, ends))
            elif len(mine):
                runs.append(_joined(blob, starts[mine], ends[mine]))
        self.runs = runs
        self.held = int(held.sum())

    def finish(self, load: FileLoad, spec: JsonLines) -> None:
        """The rows still held, parsed with every field and kept (in line order); a row whose
        other fields pyarrow refuses is read line by line in its place, as ``_checked`` does."""
        self._cut()
        full: list[pa.Table] = []
        side = load.apart()
        refused = 0
        lines = self.lines[0] if self.lines else np.zeros(0, dtype=np.int64)
        done = 0  # rows of the runs before this one
        for whole, starts, ends in self.runs:
            for a in range(0, len(starts), FINISH_ROWS):  # in parts sliced from the run
                b = min(a + FINISH_ROWS, len(starts))
                piece = whole[starts[a] : ends[b - 1]]
                for at, _, m, parsed in json_pieces(piece, a, b - a, spec.schema):
                    rows = lines[done + at : done + at + m]
                    if parsed is not None:
                        full.append(spec.normalise(parsed, rows, load.source))
                        continue
                    refused += m
                    load.count_loaded(-m)  # counted when checked; the per-line reader decides
                    for i, line in zip(range(at, at + m), rows.tolist(), strict=True):
                        spec.per_line(line, whole[starts[i] : ends[i]].rstrip(b"\r"), side)
            done += len(starts)
        parts = [t for t in (*full, side.rows.table()) if t.num_rows]
        merged = pa.concat_tables(parts) if parts else spec.output.empty_table()
        if len(parts) > 1:
            merged = merged.sort_by([("source_line", "ascending")])
        # the rows read again line by line were counted there, kept or rejected
        load.keep_rows(merged, unkept=self.taken - refused - sum(t.num_rows for t in full))
        load.out_of_order = load.out_of_order or merged.num_rows > 0
        self.hashes, self.lines, self.runs, self.held, self.taken = [], [], [], 0, 0


def _joined(
    blob: bytes, starts: np.ndarray, ends: np.ndarray
) -> tuple[bytes, np.ndarray, np.ndarray]:
    """Lines ``starts``/``ends`` of ``blob`` joined by ``\\n``, with their spans in the result."""
    if len(starts) and ends[-1] - starts[0] == int((ends - starts).sum()) + len(starts) - 1:
        whole = blob[starts[0] : ends[-1]]  # consecutive lines: one slice
    else:
        whole = b"\n".join(blob[a:b] for a, b in zip(starts.tolist(), ends.tolist(), strict=True))
    lengths = ends - starts
    new_starts = np.concatenate(([0], np.cumsum(lengths[:-1] + 1))).astype(np.int64)
    return whole, new_starts, new_starts + lengths


DEEP = 500
"""Python's json refuses nesting about 1,000 deep (less under a deep stack); a line nested deeper
than this is left to the per-line reader."""
LONG_INTEGER = 4300
"""Python's json refuses an integer of more digits (CPython's int conversion limit)."""


def beyond_python(blob: bytes, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Lines of ``blob`` Python's json may refuse while pyarrow reads them: nested deeper than
    ``DEEP`` (brackets in strings do not count) or holding ``LONG_INTEGER`` digits in a row.

    Only lines with more than ``DEEP`` opening brackets (counted by ``bytes.count``) can nest that
    deep; for those the depth is measured (``_depth``: chat logs hold thousands of brackets at a
    depth of five, so a bracket count alone would refuse them all). Only lines that
    long can hold such an integer (``_LONG_DIGITS``).
    """
    out = np.zeros(len(starts), dtype=bool)
    # a line pyarrow read is valid JSON: nesting DEEP levels takes 2 * DEEP brackets
    for i in np.flatnonzero(ends - starts > 2 * DEEP).tolist():
        start, end = int(starts[i]), int(ends[i])
        if blob.count(b"{", start, end) + blob.count(b"[", start, end) > DEEP:
            out[i] = (
                _depth(np.frombuffer(blob, dtype=np.uint8, count=end - start, offset=start)) > DEEP
            )
        if not out[i] and end - start >= LONG_INTEGER:
            out[i] = _LONG_DIGITS.search(blob, start, end) is not None
    return out


_LONG_DIGITS = re.compile(rb"[0-9]{%d}" % LONG_INTEGER)
_BRACKET = np.zeros(256, dtype=np.int8)
_BRACKET[[ord("{"), ord("[")]] = 1
_BRACKET[[ord("}"), ord("]")]] = -1


def _depth(v: np.ndarray) -> int:
    """The deepest nesting of one JSON line's containers (brackets in strings do not count)."""
    quotes = np.flatnonzero(v == 0x22)
    if len(quotes):
        # a quote after an odd run of backslashes is escaped (runs are short: a few rounds)
        run = np.zeros(len(quotes), dtype=np.int64)
        active = np.arange(len(quotes))
        back = 1
        while len(active):
            at = quotes[active] - back
            active = active[(at >= 0) & (v[np.maximum(at, 0)] == 0x5C)]
            run[active] += 1
            back += 1
        quotes = quotes[run % 2 == 0]
    step = _BRACKET[v]
    brackets = np.flatnonzero(step)
    if not len(brackets):
        return 0
    outside = np.searchsorted(quotes, brackets) % 2 == 0
    depth = np.cumsum(step[brackets[outside]], dtype=np.int64)
    return int(depth.max()) if len(depth) else 0


# --- vectorised checks ------------------------------------------------------------------------


class _Bad:
    """Marks a value the per-line reader would reject."""


BAD: Any = _Bad()


IPV4 = r"^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$"
"""Dotted quads in canonical form: ``fields.ip`` gives them back unchanged."""
PLAIN_TEXT = r"^(?:[\x21-\x2c\x2e-\x7e]|[\x21-\x7e][\s\S]*[\x21-\x7e])$"
"""Text that starts and ends with a visible ASCII character and is not ``-``: ``fields.text``
gives it back unchanged (nothing to strip, not blank)."""
LOWER_NAME = r"^[a-z0-9_.]+(?:-[a-z0-9_.]+)*$"
"""Lower-case ASCII names (domains, keywords) that ``.lower()`` and ``fields.text`` keep."""


def mapped(
    values: pa.Array | pa.ChunkedArray,
    convert: Callable[[Any], Any],
    ok: np.ndarray | None = None,
    *,
    fill: bool = False,
    type: pa.DataType = TEXT,
    same: str | None = None,
) -> pa.Array:
    """``convert`` applied once per distinct value; values it maps to ``BAD`` clear ``ok``.

    With ``fill``, nulls are converted too (``convert(None)``); otherwise they stay null.
    ``same``: a regex of values ``convert`` returns unchanged (checked in bulk, so only the other
    distinct values cost a Python call; the tests hold the regexes to ``convert``).
    """
    encoded = pc.dictionary_encode(values)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    dictionary = encoded.dictionary
    if same is not None and len(dictionary):
        kept = pc.fill_null(pc.match_substring_regex(dictionary, same), False)
        others = np.flatnonzero(~np.asarray(kept.to_numpy(zero_copy_only=False), dtype=bool))
        converted = dictionary.to_pylist() if len(others) else None
        if converted is not None:
            for i in others.tolist():
                converted[i] = convert(converted[i])
    else:
        converted = [convert(v) for v in dictionary.to_pylist()]
    if converted is None:
        out = pc.take(dictionary.cast(type), encoded.indices)
    else:
        bad = [i for i, v in enumerate(converted) if v is BAD]
        if bad:
            assert ok is not None, "a conversion that can refuse needs an ok mask"
            indices = encoded.indices
            hit = pc.fill_null(pc.is_in(indices, value_set=pa.array(bad, indices.type)), False)
            ok &= ~np.asarray(hit.to_numpy(zero_copy_only=False), dtype=bool)
            converted = [None if v is BAD else v for v in converted]
        out = pc.take(pa.array(converted, type), encoded.indices)
    if fill and out.null_count:
        out = pc.fill_null(out, pa.scalar(convert(None), type))
    return out


def blank(values: pa.Array) -> pa.Array:
    """Null, empty or ``-``: what ``fields.is_blank`` calls nothing (whitespace aside)."""
    return pc.or_(pc.is_null(values), pc.is_in(values, value_set=pa.array(["", "-"])))


def plain_int(
    values: pa.Array, ok: np.ndarray | None, digits: int, maximum: int | None = None
) -> pa.Array:
    """1..``digits`` ASCII digits (at most ``maximum``) as int64; blank is null; anything else
    clears ``ok`` (the per-line reader decides)."""
    length = pc.binary_length(values)
    plain = pc.fill_null(
        pc.and_(
            pc.ascii_is_decimal(values),
            pc.and_(pc.greater(length, 0), pc.less_equal(length, digits)),
        ),
        False,
    )
    number = pc.cast(pc.if_else(plain, values, NULL_TEXT), pa.int64())
    if maximum is not None:
        plain = pc.and_(plain, pc.fill_null(pc.less_equal(number, maximum), False))
    if ok is not None:
        good = pc.fill_null(pc.or_(plain, blank(values)), False)
        ok &= np.asarray(good.to_numpy(zero_copy_only=False), dtype=bool)
    return pc.if_else(plain, number, NULL_INT)


def epoch_seconds(values: pa.Array, ok: np.ndarray, *, blank_ok: bool = False) -> pa.Array:
    """Plain epoch seconds (1-10 digits, in range: no note under ``--epoch-unit auto|s``) as
    int64; with ``blank_ok`` blank is null; anything else clears ``ok``."""
    number = plain_int(values, None, 10, MAX_EPOCH_S)
    good = pc.is_valid(number)
    if blank_ok:
        good = pc.or_(good, blank(values))
    ok &= np.asarray(pc.fill_null(good, False).to_numpy(zero_copy_only=False), dtype=bool)
    return number


def ip_or_bad(value: str | None) -> Any:
    """``fields.ip``, with ``BAD`` for what it refuses and for an IPv4-mapped IPv6 address: that
    row goes to the per-line reader, which stores the IPv4 form with its note (``fields.ip_note``),
    so the column-wise path never has to write notes for it."""
    if fields.is_ipv4_mapped(value):
        return BAD
    try:
        return fields.ip(value, "address")
    except fields.RowError:
        return BAD


def ip(value: str | None) -> str | None:
    return fields.ip(value, "address")


def text(values: pa.Array) -> pa.Array:
    """``fields.text`` of each value."""
    return mapped(values, fields.text, same=PLAIN_TEXT)


def constant(value: Any, n: int, type: pa.DataType = TEXT) -> pa.Array:
    return pa.repeat(pa.scalar(value, type), n)


def table_of(values: dict[str, Any], n: int, schema: pa.Schema = NETWORK_EVENTS) -> pa.Table:
    """A table of ``schema`` from the columns given (the others null)."""
    arrays = []
    for f in schema:
        value = values.get(f.name)
        arrays.append(pa.nulls(n, f.type) if value is None else value.cast(f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


__all__ = [
    "BAD",
    "DEEP",
    "IPV4",
    "LOWER_NAME",
    "PLAIN_TEXT",
    "JsonLines",
    "beyond_python",
    "blank",
    "constant",
    "epoch_seconds",
    "ip",
    "ip_or_bad",
    "mapped",
    "plain_int",
    "read_json_lines",
    "table_of",
    "text",
]
