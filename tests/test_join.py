"""band_join against a brute-force oracle (cross join + filter), plus explicit edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from correlate.join import band_join, window_counts

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# A small key alphabet (None included, and a non-string key) so collisions are common.
KEYS = st.sampled_from([None, "a", "b", "c", 7])


def oracle(call_keys, call_start, call_end, event_keys, event_ts, before, after):
    """Every (event, call) pair in the closed window, by cross join + filter, in (event, call) order."""
    return sorted(
        (e, c)
        for e, (ek, ts) in enumerate(zip(event_keys, event_ts, strict=True))
        for c, (ck, start, end) in enumerate(zip(call_keys, call_start, call_end, strict=True))
        if ck is not None and ck == ek and start - before <= ts <= end + after
    )


def run(call_keys, call_start, call_end, event_keys, event_ts, before, after):
    """band_join's answer as a list of (event, call) pairs, in the order it returned them."""
    call_idx, event_idx = band_join(
        call_keys,
        np.array(call_start, dtype=np.int64),
        np.array(call_end, dtype=np.int64),
        event_keys,
        np.array(event_ts, dtype=np.int64),
        before_ns=before,
        after_ns=after,
    )
    assert call_idx.dtype.kind == "i"
    assert event_idx.dtype.kind == "i"
    assert len(call_idx) == len(event_idx)
    return list(zip(event_idx.tolist(), call_idx.tolist(), strict=True))


@st.composite
def join_inputs(draw, times, durations, windows):
    n_calls = draw(st.integers(0, 6))
    n_events = draw(st.integers(0, 6))
    call_keys = draw(st.lists(KEYS, min_size=n_calls, max_size=n_calls))
    call_start = draw(st.lists(times, min_size=n_calls, max_size=n_calls))
    # call_end >= call_start, as band_join requires.
    call_end = [min(start + draw(durations), INT64_MAX) for start in call_start]
    event_keys = draw(st.lists(KEYS, min_size=n_events, max_size=n_events))
    event_ts = draw(st.lists(times, min_size=n_events, max_size=n_events))
    before = draw(windows)
    after = draw(windows)
    return call_keys, call_start, call_end, event_keys, event_ts, before, after


SMALL = join_inputs(st.integers(-5, 5), st.integers(0, 4), st.integers(0, 4))

# Times and windows at the ends of int64: pairs must neither be lost nor invented by wrap-around.
EXTREME_TIMES = st.one_of(
    st.integers(-3, 3),
    st.integers(INT64_MAX - 6, INT64_MAX),
    st.integers(INT64_MIN, INT64_MIN + 6),
)
EXTREME_WINDOWS = st.one_of(
    st.integers(0, 4),
    st.just(INT64_MAX),
    st.integers(2**62, INT64_MAX),
    st.integers(2**63 - 8, INT64_MAX),
)
EXTREME = join_inputs(
    EXTREME_TIMES, st.one_of(st.integers(0, 4), st.just(INT64_MAX)), EXTREME_WINDOWS
)


@settings(max_examples=400, deadline=None)
@given(SMALL)
def test_band_join_returns_exactly_the_oracle_pairs_in_event_call_order(args):
    assert run(*args) == oracle(*args)


@settings(max_examples=200, deadline=None)
@given(SMALL)
def test_band_join_output_is_sorted_by_event_then_call_without_duplicates(args):
    pairs = run(*args)
    assert pairs == sorted(set(pairs))


@settings(max_examples=300, deadline=None)
@given(EXTREME)
def test_band_join_matches_oracle_for_times_and_windows_at_int64_limits(args):
    assert run(*args) == oracle(*args)


@settings(max_examples=100, deadline=None)
@given(SMALL)
def test_band_join_does_not_depend_on_input_order(args):
    call_keys, call_start, call_end, event_keys, event_ts, before, after = args
    rev = slice(None, None, -1)
    n_calls, n_events = len(call_keys), len(event_keys)
    reversed_pairs = run(
        call_keys[rev],
        call_start[rev],
        call_end[rev],
        event_keys[rev],
        event_ts[rev],
        before,
        after,
    )
    mapped_back = sorted((n_events - 1 - e, n_calls - 1 - c) for e, c in reversed_pairs)
    assert mapped_back == run(*args)


def test_window_edges_are_inclusive_on_both_sides():
    # Call runs 100..200; window is [100 - 10, 200 + 20] = [90, 220].
    ts = [89, 90, 91, 150, 219, 220, 221]
    pairs = run(["h"], [100], [200], ["h"] * len(ts), ts, 10, 20)
    assert [ts[e] for e, _ in pairs] == [90, 91, 150, 219, 220]


def test_zero_windows_match_exactly_the_call_interval():
    ts = [99, 100, 200, 201]
    pairs = run(["h"], [100], [200], ["h"] * 4, ts, 0, 0)
    assert [ts[e] for e, _ in pairs] == [100, 200]


def test_instant_call_with_zero_window_matches_only_its_own_timestamp():
    pairs = run(["h"], [100], [100], ["h"] * 3, [99, 100, 101], 0, 0)
    assert pairs == [(1, 0)]


def test_asymmetric_window_after_only():
    ts = [95, 100, 250, 251]
    pairs = run(["h"], [100], [200], ["h"] * 4, ts, 0, 50)
    assert [ts[e] for e, _ in pairs] == [100, 250]


def test_asymmetric_window_before_only():
    ts = [49, 50, 200, 201]
    pairs = run(["h"], [100], [200], ["h"] * 4, ts, 50, 0)
    assert [ts[e] for e, _ in pairs] == [50, 200]


def test_time_only_join_with_one_constant_key_pairs_every_call_in_range():
    # Three calls; one event in the overlap of calls 0 and 2, one only in call 1's window.
    pairs = run(
        ["*"] * 3, [0, 1000, 10], [100, 1100, 50], ["*", "*"], [1050, 20], before=0, after=0
    )
    assert pairs == [(0, 1), (1, 0), (1, 2)]


def test_keys_must_be_equal_to_match():
    pairs = run(["sbx-03", "sbx-11"], [0, 0], [10, 10], ["sbx-11"], [5], 0, 0)
    assert pairs == [(0, 1)]


def test_none_keys_never_match_even_each_other():
    pairs = run([None, None], [0, 0], [10, 10], [None, None], [5, 5], 100, 100)
    assert pairs == []


def test_none_event_key_does_not_match_a_keyed_call():
    pairs = run(["h"], [0], [10], [None, "h"], [5, 5], 0, 0)
    assert pairs == [(1, 0)]


def test_many_calls_and_events_come_back_sorted_by_event_then_call():
    # Events given in descending time order; several calls overlap each event.
    call_keys = ["h", "h", "g", "h"]
    pairs = run(call_keys, [30, 0, 0, 10], [40, 100, 100, 20], ["h", "g", "h"], [35, 15, 15], 0, 0)
    assert pairs == [(0, 0), (0, 1), (1, 2), (2, 1), (2, 3)]


def test_empty_calls_or_events_give_empty_int_arrays():
    for args in (
        ([], [], [], ["h"], [1]),
        (["h"], [1], [1], [], []),
        ([], [], [], [], []),
    ):
        call_idx, event_idx = band_join(
            args[0],
            np.array(args[1], dtype=np.int64),
            np.array(args[2], dtype=np.int64),
            args[3],
            np.array(args[4], dtype=np.int64),
            before_ns=5,
            after_ns=5,
        )
        assert call_idx.dtype == np.int64
        assert event_idx.dtype == np.int64
        assert len(call_idx) == len(event_idx) == 0


@pytest.mark.parametrize(("before", "after"), [(-1, 0), (0, -1), (-5, -5)])
def test_negative_window_raises_value_error(before, after):
    with pytest.raises(ValueError, match="window"):
        run(["h"], [0], [0], ["h"], [0], before, after)


def test_huge_timestamps_near_int64_max_do_not_overflow():
    # call_end + after would wrap to a negative number without saturation.
    pairs = run(
        ["h"],
        [INT64_MAX - 10],
        [INT64_MAX - 5],
        ["h", "h", "h"],
        [INT64_MAX, INT64_MIN, 0],
        before=0,
        after=INT64_MAX,
    )
    assert pairs == [(0, 0)]


def test_huge_timestamps_near_int64_min_do_not_overflow():
    # call_start - before would wrap to a positive number without saturation.
    pairs = run(
        ["h"],
        [INT64_MIN + 5],
        [INT64_MIN + 10],
        ["h", "h", "h"],
        [INT64_MIN, INT64_MAX, 0],
        before=INT64_MAX,
        after=0,
    )
    assert pairs == [(0, 0)]


def test_int64_wide_windows_saturate_instead_of_wrapping():
    # MIN + MAX == -1 and MAX - MAX == 0: the two calls' windows are [MIN, -1] and [0, MAX].
    pairs = run(
        ["h", "h"],
        [INT64_MIN, INT64_MAX],
        [INT64_MIN, INT64_MAX],
        ["h", "h"],
        [INT64_MAX, INT64_MIN],
        before=INT64_MAX,
        after=INT64_MAX,
    )
    assert pairs == [(0, 1), (1, 0)]


def test_accepts_plain_python_lists_for_times():
    call_idx, event_idx = band_join(["h"], [100], [200], ["h"], [150], before_ns=0, after_ns=0)
    assert call_idx.tolist() == [0]
    assert event_idx.tolist() == [0]


# --- window_counts: per-event number of calls (any key) whose window holds the event -------------


def count_oracle(call_start, call_end, event_ts, before, after):
    return [
        sum(
            1
            for start, end in zip(call_start, call_end, strict=True)
            if start - before <= ts <= end + after
        )
        for ts in event_ts
    ]


def counts(call_start, call_end, event_ts, before, after):
    got = window_counts(
        np.array(call_start, dtype=np.int64),
        np.array(call_end, dtype=np.int64),
        np.array(event_ts, dtype=np.int64),
        before_ns=before,
        after_ns=after,
    )
    assert got.dtype == np.int64
    return got.tolist()


@settings(max_examples=300, deadline=None)
@given(st.one_of(SMALL, EXTREME))
def test_window_counts_match_the_oracle_ignoring_keys(args):
    _, call_start, call_end, _, event_ts, before, after = args
    assert counts(call_start, call_end, event_ts, before, after) == count_oracle(
        call_start, call_end, event_ts, before, after
    )


@settings(max_examples=200, deadline=None)
@given(SMALL)
def test_window_counts_equal_the_time_only_band_join_pair_counts(args):
    _, call_start, call_end, _, event_ts, before, after = args
    n = len(event_ts)
    pairs = run(["*"] * len(call_start), call_start, call_end, ["*"] * n, event_ts, before, after)
    per_event = [sum(1 for e, _ in pairs if e == i) for i in range(n)]
    assert counts(call_start, call_end, event_ts, before, after) == per_event


def test_window_counts_edges_are_inclusive():
    # Two calls: [100, 200] and [150, 150]; window -10/+20.
    got = counts([100, 150], [200, 150], [89, 90, 140, 170, 171, 220, 221], 10, 20)
    assert got == [0, 1, 2, 2, 1, 1, 0]


def test_window_counts_with_no_calls_are_zero():
    assert counts([], [], [1, 2, 3], 5, 5) == [0, 0, 0]


@pytest.mark.parametrize(("before", "after"), [(-1, -1), (-5, 0)])
def test_window_counts_negative_window_raises_value_error(before, after):
    with pytest.raises(ValueError, match="window"):
        counts([0], [0], [0], before, after)
