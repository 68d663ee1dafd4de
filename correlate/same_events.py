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

if TYPE_CHECKING:
    from .pipeline import InputFile, Loaded

PROVENANCE_COLUMNS = ("event_id", "source_format", "source_path", "source_line")
"""Columns that say where a row came from, not what it says: not compared."""
_NULL = np.uint64(0x6A09E667F3BCC908)
_COLUMN_SEED = np.uint64(0x9E3779B97F4A7C15)


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
    n = events.num_rows
    if n < 2:
        return events, 0, {}
    keys = [c for c in events.column_names if c not in PROVENANCE_COLUMNS]
    hashes = row_hashes(events, keys)
    order = np.argsort(hashes, kind="stable")
    repeated = hashes[order][1:] == hashes[order][:-1]
    if not repeated.any():
        return events, 0, {}
    flagged = np.zeros(n, dtype=bool)
    flagged[order[1:][repeated]] = True
    flagged[order[:-1][repeated]] = True
    candidates = np.flatnonzero(flagged)
    sub = events.select([*keys, "source_path", "source_line"]).take(pa.array(candidates))
    sub = sub.append_column("__hash", pa.array(hashes[candidates]))
    sort_keys = [("__hash", "ascending"), *((k, "ascending") for k in keys)]
    sort_keys += [("source_path", "ascending"), ("source_line", "ascending")]
    sorted_at = pc.sort_indices(sub, sort_keys=sort_keys).to_numpy()
    ordered = sub.take(pa.array(sorted_at))
    same = np.ones(len(candidates) - 1, dtype=bool)
    for name in ("__hash", *keys):
        same &= _equal_to_previous(ordered.column(name).combine_chunks())
    starts = np.concatenate([[True], ~same])
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    sizes = np.diff(np.append(first, len(starts)))
    copies = sizes > 1
    if not copies.any():
        return events, 0, {}
    rows = candidates[sorted_at]  # row of each ordered candidate in ``events``
    dropped = ~starts & copies[group]
    keep = np.ones(n, dtype=bool)
    keep[rows[dropped]] = False
    paths = ordered.column("source_path").combine_chunks()
    lines = ordered.column("source_line").combine_chunks()
    # the kept row's note: where the (first) other copy was, and how many more there were
    kept_at = first[copies]
    second = pa.array(kept_at + 1)
    more = sizes[copies] - 2
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
    events = _append_notes(events, rows[kept_at], note)
    return (
        events.filter(pa.array(keep)),
        int((~keep).sum()),
        _file_notes(paths, lines, group, first, dropped),
    )


def row_hashes(table: pa.Table, columns: Sequence[str]) -> np.ndarray:
    """A 64-bit hash of each row's values in ``columns`` (equal rows, equal hashes; nulls count)."""
    acc = np.zeros(table.num_rows, dtype=np.uint64)
    for index, name in enumerate(columns):
        values = _as_integers(table.column(name))
        with np.errstate(over="ignore"):
            acc = _mix(acc ^ _mix(values + _COLUMN_SEED * np.uint64(index + 1)))
    return acc


def _as_integers(column: pa.ChunkedArray) -> np.ndarray:
    """Integers equal where the values are equal: dictionary codes for text, values for times
    and numbers; a null is ``_NULL`` (a value it collides with is told apart exactly later)."""
    array = column.combine_chunks()
    kind = array.type
    if pa.types.is_timestamp(kind) or pa.types.is_integer(kind):
        ints = pc.fill_null(array.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
        out = np.asarray(ints, dtype=np.int64).view(np.uint64).copy()
    else:
        codes = pc.dictionary_encode(array).indices
        out = np.asarray(pc.fill_null(codes, 0).to_numpy(zero_copy_only=False), dtype=np.uint64)
    if array.null_count:
        out[np.asarray(array.is_null().to_numpy(zero_copy_only=False), dtype=bool)] = _NULL
    return out


def _equal_to_previous(values: pa.Array) -> np.ndarray:
    """For rows 1..n-1: equal to the row before (two nulls are equal)."""
    here, before = values.slice(1), values.slice(0, len(values) - 1)
    equal = pc.fill_null(pc.equal(here, before), False)
    both_null = pc.and_(pc.is_null(here), pc.is_null(before))
    return np.asarray(pc.or_(equal, both_null).to_numpy(zero_copy_only=False), dtype=bool)


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
    paths: pa.Array, lines: pa.Array, group: np.ndarray, first: np.ndarray, dropped: np.ndarray
) -> dict[str, Counter[str]]:
    """Per file holding dropped copies: "duplicate of PATH:LINE" (the row kept) and how many."""
    at = np.flatnonzero(dropped)
    kept = first[group[at]]
    pairs = pa.table(
        {
            "path": paths.take(pa.array(at)),
            "kept_path": paths.take(pa.array(kept)),
            "kept_line": lines.take(pa.array(kept)),
        }
    )
    summary = pairs.group_by(["path", "kept_path"], use_threads=False).aggregate(
        [("kept_line", "min"), ("kept_line", "count"), ("kept_line", "count_distinct")]
    )
    notes: dict[str, Counter[str]] = {}
    for row in summary.to_pylist():
        where = f"{row['kept_path']}:{row['kept_line_min']}"
        if row["kept_line_count_distinct"] > 1:
            where = f"rows of {row['kept_path']} (the first: line {row['kept_line_min']})"
        text = f"duplicate of {where}: the same record, counted once in the analysis"
        notes.setdefault(row["path"] or "", Counter())[text] += int(row["kept_line_count"])
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
    parsed = _key_count(record)
    if raw.count(":") <= parsed or len(_KEY.findall(raw)) <= parsed:
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
    "merge_same_events",
    "row_hashes",
]
