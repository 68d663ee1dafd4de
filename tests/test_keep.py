"""What ``run`` keeps of the network events: every violation and an exact, order-independent
anchor sample; answers on the sample incident do not change."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import correlate
from correlate.keep import Keeper, KeepPolicy, cut_sample, row_hashes, sample_rows
from correlate.pipeline import RunOptions, analyse, load_inputs
from correlate.schema import NETWORK_EVENTS, from_columns

SAMPLE = ["sample_logs/rome_incident"]
INVENTORY = ["sample_logs/rome_incident/inventory.csv"]
POLICY = KeepPolicy(("denied", "alerted"), anchors=5)


def events(rows: list[tuple[str, int, str, str]]) -> pa.Table:
    """(path, line, format, action) rows as network events."""
    return from_columns(
        {
            "source_path": [r[0] for r in rows],
            "source_line": [r[1] for r in rows],
            "source_format": [r[2] for r in rows],
            "action": [r[3] for r in rows],
            "ts": [r[1] for r in rows],
        },
        NETWORK_EVENTS,
    )


ROWS = st.lists(
    st.tuples(
        st.sampled_from(["a.log", "b.log", "c.log"]),
        st.integers(1, 60),
        st.sampled_from(["zeek_conn", "alibaba_cfw"]),
        st.sampled_from(["allowed", "allowed", "allowed", "denied", "unknown"]),
    ),
    max_size=200,
    unique_by=lambda r: (r[0], r[1]),
)


def keys(table: pa.Table) -> set[tuple[str, int]]:
    return set(
        zip(
            table.column("source_path").to_pylist(),
            table.column("source_line").to_pylist(),
            strict=True,
        )
    )


@settings(max_examples=80, deadline=None)
@given(rows=ROWS, seed=st.integers(0, 1000), pieces=st.integers(1, 6))
def test_the_sample_is_the_same_whatever_the_order_and_split(rows, seed, pieces):
    """Keeping piece by piece, in any order, gives the exact bottom-k sample of the whole."""
    whole, _ = cut_sample(events(rows), POLICY, {})
    shuffled = rows[:]
    random.Random(seed).shuffle(shuffled)
    keeper = Keeper(POLICY)
    for part in np.array_split(np.arange(len(shuffled)), pieces):
        # each piece reduced on its own first, with the bounds known so far (as a loader does)
        local = Keeper(replace(POLICY, below=dict(keeper.bounds)))
        local.add(events([shuffled[i] for i in part]))
        for table in local.tables():
            keeper.add(table)
    kept = pa.concat_tables([events([]), *keeper.tables()])
    assert keys(kept) == keys(whole)
    # every violation-capable row is kept, and at most 5 others per format
    for path, line, _fmt, action in rows:
        if action in POLICY.actions:
            assert (path, line) in keys(kept)
    allowed = [r for r in rows if r[3] not in POLICY.actions]
    for fmt in ("zeek_conn", "alibaba_cfw"):
        n = sum(1 for r in allowed if r[2] == fmt)
        got = sum(
            1
            for r in kept.to_pylist()
            if r["source_format"] == fmt and r["action"] not in POLICY.actions
        )
        assert got == min(n, 5)


def test_hashes_depend_only_on_where_a_row_came_from():
    table = events([("a.log", 1, "x", "allowed"), ("b.log", 1, "x", "denied")])
    again = events([("b.log", 1, "y", "allowed"), ("a.log", 1, "z", "denied")])
    assert list(row_hashes(table)) == list(reversed(row_hashes(again)))


@pytest.fixture(scope="module")
def full() -> correlate.Loaded:
    return load_inputs(SAMPLE, RunOptions(anchors=None), inventories=INVENTORY)


def test_small_runs_keep_every_event(full):
    kept = load_inputs(SAMPLE, RunOptions(), inventories=INVENTORY)
    assert kept.events.equals(full.events)
    assert kept.network_rows == full.events.num_rows and kept.sample_bounds == {}


def test_a_tiny_sample_keeps_every_violation_and_the_same_answers(full):
    options = RunOptions(anchors=3)
    kept = load_inputs(SAMPLE, options, inventories=INVENTORY)
    assert kept.network_rows == full.events.num_rows
    assert set(kept.sample_bounds) == {"alibaba_cfw"}
    actions = kept.events.column("action").to_pylist()
    formats = kept.events.column("source_format").to_pylist()
    assert sum(1 for a, f in zip(actions, formats, strict=True) if a == "allowed") <= 3 * len(
        set(formats)
    )
    a, b = analyse(full, RunOptions(anchors=None)), analyse(kept, options)
    assert b.violations.num_rows == a.violations.num_rows
    for table in ("findings", "attributions"):
        left = getattr(a, table).drop_columns(["event_id"] if table == "attributions" else [])
        right = getattr(b, table).drop_columns(["event_id"] if table == "attributions" else [])
        assert left.equals(right), table
    assert b.provenance()["counts"]["network_events"] == full.events.num_rows
    # the bytes norm reads the uniform sample: every kept allowed row, and violations inside it
    sample = sample_rows(kept.events, kept.sample_bounds)
    assert 0 < sample.num_rows < kept.events.num_rows


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 4), st.sampled_from(["a", "b"]), st.integers(1, 4), st.booleans()),
        max_size=12,
    )
)
def test_the_already_sorted_shortcut_equals_a_stable_sort(rows):
    """Tables already in (time, path, line) order come back as they are; others are sorted; either
    way the result is the stable sort's."""
    from correlate.pipeline import _sorted_by

    table = from_columns(
        {
            "ts_start": [None if missing and t == 0 else t for t, _, _, missing in rows],
            "source_path": [p for _, p, _, _ in rows],
            "source_line": [line for _, _, line, _ in rows],
            "call_id": [str(i) for i in range(len(rows))],
        },
        correlate.schema.TOOL_CALLS,
    )
    keys = [("ts_start", "ascending"), ("source_path", "ascending"), ("source_line", "ascending")]
    assert _sorted_by(table, "ts_start").equals(table.sort_by(keys))
    ordered = table.sort_by(keys)
    assert _sorted_by(ordered, "ts_start").equals(ordered)
