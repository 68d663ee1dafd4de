"""One row per network record when a log holds the same record twice, and duplicate JSON keys.

An exported log concatenated twice, two exports of overlapping time ranges, or one file given
under two names would otherwise count every violation twice (and tilt the statistics). Rows
identical in every normalised field but their provenance (``event_id``, ``source_format``,
``source_path``, ``source_line``) are one record, within a file or across files: the first by
(path, line) is kept, its ``ts_note`` says where the copies were, the copies are dropped and
counted (``Loaded.merged_events``, the provenance's ``network_event_copies_merged``), and each
file holding a dropped copy gets a note naming the row kept ("duplicate of PATH:LINE"). The load
accounting is untouched: a copy was read and loaded, so ``read = loaded + rejected + skipped``
still holds; the analysis counts it once.

``run`` keeps every violation but only a sample of allowed traffic (``keep``): duplicates are
looked for among the events an analysis holds, so every violation's copies are found, and an
allowed record's only when both copies are in the sample.

Vectorised: each key column becomes integers (dictionary codes for text, the values for times and
numbers), mixed into one 64-bit hash per row; only rows whose hash repeats are compared exactly
(sorted by every key column), so a table without copies costs one pass per column.

Duplicate keys in one JSON record (``{"action": "drop", "action": "accept"}``) parse last-wins
in Python; ``duplicate_key_note`` makes that a noted choice for the loaders that call it (a
quick count rules out almost every line before any second parse).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .keep import _mix
from .same_calls import merge_same_calls

if TYPE_CHECKING:
    from .pipeline import InputFile, Loaded

PROVENANCE_COLUMNS = ("event_id", "source_format", "source_path", "source_line")
"""Columns that say where a row came from, not what it says: not compared."""
_NULL = np.uint64(0x6A09E667F3BCC908)
_COLUMN_SEED = np.uint64(0x9E3779B97F4A7C15)


def merge_copies(loaded: Loaded) -> Loaded:
    """``loaded`` with calls recorded by several agent logs merged (``same_calls``) and network
    records held more than once kept once: what ``pipeline.prepare`` starts with, and what a
    cached analysis of a case must be given so that its provenance counts them the same way.
    It runs once: a second call returns ``loaded`` as it is (``copies_merged``)."""
    if loaded.copies_merged:
        return loaded
    calls, merged = merge_same_calls(loaded.calls)
    if merged:
        loaded = replace(loaded, calls=calls, merged_calls=merged)
    return replace(merge_same_events(loaded), copies_merged=True)


def merge_same_events(loaded: Loaded) -> Loaded:
    """``loaded`` with each network record held more than once kept once (see the module);
    returned as it is when there is no copy."""
    events, dropped, notes = drop_same_events(loaded.events)
    if not dropped:
        return loaded
    rows = None if loaded.network_rows is None else loaded.network_rows - dropped
    return replace(
        loaded,
        events=events,
        merged_events=dropped,
        network_rows=rows,
        inputs=_noted(loaded.inputs, notes),
    )


def drop_same_events(events: pa.Table) -> tuple[pa.Table, int, dict[str, Counter[str]]]:
    """(events with every copy of a record but the first dropped, how many were dropped, the
    notes per file of the dropped copies). Row order is kept."""
    if events.num_rows < 2:
        return events, 0, {}
    keys = [c for c in events.column_names if c not in PROVENANCE_COLUMNS]
    dropped, kept = _copies(events, keys)
    if not len(dropped):
        return events, 0, {}
    paths = events.column("source_path").combine_chunks()
    lines = events.column("source_line").combine_chunks()
    # per kept row: its copies and the first of them (by path and line: ``_copies``' order)
    rows, at, count = np.unique(kept, return_index=True, return_counts=True)
    second = pa.array(dropped[at])
    more = count - 1
    note = pc.binary_join_element_wise(
        "same record also at ",
        pc.fill_null(paths.take(second), "?"),
        ":",
        pc.fill_null(pc.cast(lines.take(second), pa.string()), "?"),
        pc.if_else(
            pa.array(more > 0),
            pc.binary_join_element_wise(" and ", pc.cast(pa.array(more), pa.string()), " more", ""),
            "",
        ),
        ": counted once",
        "",
    )
    notes = _file_notes(paths, lines, dropped, kept)
    keep = np.ones(events.num_rows, dtype=bool)
    keep[dropped] = False
    events = _append_notes(events, rows, note)
    return events.filter(pa.array(keep)), len(dropped), notes


MAX_ROUNDS = 8
"""Hash rounds for rows whose hash collided with another record's (each round a new seed)."""


def _copies(table: pa.Table, keys: Sequence[str], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(rows that copy an earlier row, the row each copies): rows equal in every ``keys`` column;
    of each set the first by (source_path, source_line) is the one copied. Copies of one record
    come out together, in (path, line) order.

    Rows whose hash repeats are sorted by (hash, path, line) and compared exactly with the first
    row of their hash; a row that differs from it (a 64-bit collision) goes round again with
    another seed.
    """
    none = np.zeros(0, dtype=np.int64)
    hashes = row_hashes(table, keys, seed)
    order = np.argsort(hashes, kind="stable")
    repeated = hashes[order][1:] == hashes[order][:-1]
    if not repeated.any():
        return none, none
    flagged = np.zeros(table.num_rows, dtype=bool)
    flagged[order[1:][repeated]] = True
    flagged[order[:-1][repeated]] = True
    rows = np.flatnonzero(flagged)
    where = pa.table(
        {
            "hash": pa.array(hashes[rows]),
            "path": table.column("source_path").take(pa.array(rows)),
            "line": table.column("source_line").take(pa.array(rows)),
        }
    )
    by = [("hash", "ascending"), ("path", "ascending"), ("line", "ascending")]
    rows = rows[pc.sort_indices(where, sort_keys=by).to_numpy()]
    group_hash = hashes[rows]
    starts = np.concatenate([[True], group_hash[1:] != group_hash[:-1]])
    first = rows[np.flatnonzero(starts)[np.cumsum(starts) - 1]]
    same = np.ones(len(rows), dtype=bool)
    for name in keys:
        values, nulls = _as_integers(table.column(name))
        same &= values[rows] == values[first]
        if nulls is not None:
            same &= nulls[rows] == nulls[first]
    copy = same & ~starts
    dropped, kept = rows[copy], first[copy]
    other = rows[~same]
    if len(other) > 1 and seed + 1 < MAX_ROUNDS:
        more_dropped, more_kept = _copies(table.take(pa.array(other)), keys, seed + 1)
        dropped = np.concatenate([dropped, other[more_dropped]])
        kept = np.concatenate([kept, other[more_kept]])
    return dropped, kept


def row_hashes(table: pa.Table, columns: Sequence[str], seed: int = 0) -> np.ndarray:
    """A 64-bit hash of each row's values in ``columns`` (equal rows, equal hashes; nulls count)."""
    acc = np.full(table.num_rows, np.uint64(seed), dtype=np.uint64)
    for index, name in enumerate(columns):
        values, nulls = _as_integers(table.column(name))
        if nulls is not None:
            values[nulls] = _NULL
        with np.errstate(over="ignore"):
            acc = _mix(acc ^ _mix(values + _COLUMN_SEED * np.uint64(index + 1)))
    return acc


def _as_integers(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray | None]:
    """(integers equal where the values are equal: dictionary codes for text, the values for
    times and numbers; where the values are null, or None when none is)."""
    array = column.combine_chunks()
    kind = array.type
    if pa.types.is_timestamp(kind) or pa.types.is_integer(kind):
        ints = pc.fill_null(array.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
        values = np.asarray(ints, dtype=np.int64).view(np.uint64).copy()
    else:
        codes = pc.fill_null(pc.dictionary_encode(array).indices, 0)
        values = np.asarray(codes.to_numpy(zero_copy_only=False), dtype=np.uint64)
    if not array.null_count:
        return values, None
    return values, np.asarray(array.is_null().to_numpy(zero_copy_only=False), dtype=bool)


def _append_notes(events: pa.Table, rows: np.ndarray, note: pa.Array) -> pa.Table:
    """``events`` with ``note`` added to the ``ts_note`` of ``rows`` (after any note there)."""
    index = events.schema.get_field_index("ts_note")
    column = events.column(index).combine_chunks()
    order = np.argsort(rows)
    rows, note = rows[order], note.take(pa.array(order))
    before = column.take(pa.array(rows))
    joined = pc.if_else(pc.is_null(before), note, pc.binary_join_element_wise(before, note, "; "))
    mask = np.zeros(events.num_rows, dtype=bool)
    mask[rows] = True
    column = pc.replace_with_mask(column, pa.array(mask), joined.cast(column.type))
    return events.set_column(index, events.schema.field(index), column)


def _file_notes(
    paths: pa.Array, lines: pa.Array, dropped: np.ndarray, kept: np.ndarray
) -> dict[str, Counter[str]]:
    """Per file holding dropped copies: "duplicate of PATH:LINE" (the row kept) and how many."""
    pairs = pa.table(
        {
            "path": paths.take(pa.array(dropped)),
            "kept_path": paths.take(pa.array(kept)),
            "kept_line": lines.take(pa.array(kept)),
            "copies": pa.array(np.ones(len(dropped), dtype=np.int64)),
        }
    )
    summary = pairs.group_by(["path", "kept_path"], use_threads=False).aggregate(
        [("kept_line", "min"), ("kept_line", "count_distinct"), ("copies", "sum")]
    )
    notes: dict[str, Counter[str]] = {}
    for row in summary.to_pylist():
        where = f"{row['kept_path']}:{row['kept_line_min']}"
        if row["kept_line_count_distinct"] > 1:
            where = f"rows of {row['kept_path']} (the first: line {row['kept_line_min']})"
        text = f"duplicate of {where}: the same record, counted once in the analysis"
        notes.setdefault(row["path"] or "", Counter())[text] += int(row["copies_sum"])
    return notes


def _noted(inputs: list[InputFile], notes: dict[str, Counter[str]]) -> list[InputFile]:
    """Copies of ``inputs`` whose network files carry their duplicate notes."""
    out = []
    for record in inputs:
        extra = notes.get(record.path)
        if extra and record.stats is not None and record.kind == "network":
            stats = replace(record.stats, notes=Counter(record.stats.notes) + extra)
            record = replace(record, stats=stats)
        out.append(record)
    return out


# --- duplicate keys in one JSON record -----------------------------------------------------------

_KEY = re.compile(r'"\s*:')
"""What ends a key in JSON text (also matched inside strings: an upper bound on the keys)."""


def duplicate_keys(raw: str, record: dict[str, Any]) -> list[str]:
    """Keys that ``raw`` (one JSON object, parsed as ``record``) gives more than once, at any
    depth, in the order they repeat; [] without a second parse for almost every line.

    A key given twice leaves the parsed objects one key short of the keys written; the colons,
    then the ``":`` tokens, bound the keys written, so a line whose bound is not above the parsed
    key count holds no repeat.
    """
    colons = raw.count(":")
    if colons <= len(record):  # a flat record, as most logs write them: no nested keys to count
        return []
    parsed = _key_count(record)
    if colons <= parsed or len(_KEY.findall(raw)) <= parsed:
        return []
    repeated: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in items:
            if key in seen and key not in repeated:
                repeated.append(key)
            seen.add(key)
        return dict(items)

    try:
        json.loads(raw, object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return []
    return repeated


def _key_count(value: Any) -> int:
    count = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            count += len(item)
            stack.extend(v for v in item.values() if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            stack.extend(v for v in item if isinstance(v, (dict, list)))
    return count


def duplicate_key_note(raw: str, record: dict[str, Any], read: Collection[str]) -> str | None:
    """The row note for keys given twice among those a loader ``read`` (other repeats change
    nothing it loads): "duplicate key 'action' in the record: the last value was used"."""
    keys = [k for k in duplicate_keys(raw, record) if k in read]
    if not keys:
        return None
    if len(keys) == 1:
        return f"duplicate key {keys[0]!r} in the record: the last value was used"
    names = ", ".join(repr(k) for k in keys)
    return f"duplicate keys {names} in the record: the last value of each was used"


def add_note(row: dict[str, Any], note: str | None) -> None:
    """``note`` added to the row's ``ts_note`` (after any note there)."""
    if note:
        row["ts_note"] = f"{row['ts_note']}; {note}" if row.get("ts_note") else note


__all__ = [
    "PROVENANCE_COLUMNS",
    "add_note",
    "drop_same_events",
    "duplicate_key_note",
    "duplicate_keys",
    "merge_copies",
    "merge_same_events",
    "row_hashes",
]
