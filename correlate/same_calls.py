"""One row per tool call when several agent logs record the same call.

The ROME stack writes each call more than once: a ROLL rollout dump holds the whole trajectory
(one window for all its calls) and the sandbox's ROCK ``LLMService.log`` holds the same calls with
their own times. Joined as two calls, the copy with the vaguer window wins or ties with itself and
the answer names the wrong step. Rows with the same ``call_id`` and ``host`` from different files
are one call: the row with the most precise times is kept (``ts_kind`` exact, then bracket, step,
inferred; then the first by path and line), its empty fields are filled from the other copies
(run, episode, step, train step, model, address...), and its ``ts_note`` says where the copies were.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .schema import plain_rows

PRECISION = {"exact": 0, "bracket": 1, "step": 2, "inferred": 3}
FILLED = (
    "run_id",
    "episode_id",
    "step",
    "ts_end",
    "tool",
    "command",
    "arguments",
    "output",
    "exit_code",
    "is_error",
    "host_ip",
    "model",
    "train_step",
)


def merge_same_calls(calls: pa.Table) -> tuple[pa.Table, int]:
    """(calls with each recorded-twice call once, how many copies were merged away).

    Row order is kept (the kept copy stays where it was); a table without such copies is
    returned as it is.
    """
    if calls.num_rows < 2 or calls.column("call_id").null_count == calls.num_rows:
        return calls, 0
    keyed = pa.table(
        {
            "call_id": calls.column("call_id"),
            "host": pc.fill_null(calls.column("host"), ""),
            "source_path": pc.fill_null(calls.column("source_path"), ""),
        }
    ).append_column("row", pa.array(np.arange(calls.num_rows, dtype=np.int64)))
    keyed = keyed.filter(pc.is_valid(keyed.column("call_id")))
    groups = keyed.group_by(["call_id", "host"]).aggregate(
        [("source_path", "count_distinct"), ("row", "list")]
    )
    groups = groups.filter(pc.greater(groups.column("source_path_count_distinct"), 1))
    if groups.num_rows == 0:
        return calls, 0
    drop: list[int] = []
    patches: dict[int, dict[str, object]] = {}
    for members in groups.column("row_list").to_pylist():
        rows = plain_rows(calls.take(pa.array(members, pa.int64())))
        order = sorted(
            range(len(rows)),
            key=lambda i: (
                PRECISION.get(str(rows[i]["ts_kind"] or "exact"), 4),
                rows[i]["source_path"] or "",
                rows[i]["source_line"] or 0,
            ),
        )
        kept = rows[order[0]]
        others = [rows[i] for i in order[1:]]
        patch = {
            name: next((o[name] for o in others if o[name] is not None), None)
            for name in FILLED
            if kept[name] is None
        }
        patch = {k: v for k, v in patch.items() if v is not None}
        places = ", ".join(
            f"{o['source_path']}:{o['source_line']} ({o['source_format']})" for o in others
        )
        note = f"same call also recorded at {places}: merged, these times kept"
        patch["ts_note"] = "; ".join(x for x in (kept["ts_note"], note) if x)
        patches[members[order[0]]] = patch
        drop.extend(members[i] for i in order[1:])
    merged = _patched(calls, patches)
    keep = np.ones(calls.num_rows, dtype=bool)
    keep[drop] = False
    return merged.filter(pa.array(keep)), len(drop)


def _patched(calls: pa.Table, patches: dict[int, dict[str, object]]) -> pa.Table:
    """``calls`` with some cells replaced (patches[row][column] = value), column-wise."""
    columns = sorted({name for patch in patches.values() for name in patch})
    for name in columns:
        index = calls.schema.get_field_index(name)
        field = calls.schema.field(index)
        rows = sorted(row for row, patch in patches.items() if name in patch)
        mask = np.zeros(calls.num_rows, dtype=bool)
        mask[rows] = True
        values = pa.array([patches[row][name] for row in rows], field.type)
        column = pc.replace_with_mask(calls.column(name).combine_chunks(), pa.array(mask), values)
        calls = calls.set_column(index, field, column)
    return calls
