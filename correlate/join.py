"""Exhaustive keyed band join: every (call, event) pair with call.start - before <= event.ts <= call.end + after.

Per key, events are sorted by time and each call's window is found with two binary searches
(numpy ``searchsorted``); the pairs are the ranges between. O((n + m) log m + k) for k pairs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def band_join(
    call_keys: Sequence[object],
    call_start: np.ndarray,
    call_end: np.ndarray,
    event_keys: Sequence[object],
    event_ts: np.ndarray,
    *,
    before_ns: int,
    after_ns: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (call_idx, event_idx) of every pair in the window, sorted by (event, call).

    Both window ends are closed. A key of ``None`` never matches (an unmapped source or a call
    without a host); pass the same constant key on both sides for a time-only join. ``call_end``
    must be >= ``call_start`` (use the start when a call has no end).
    """
    call_start = np.asarray(call_start, dtype=np.int64)
    call_end = np.asarray(call_end, dtype=np.int64)
    event_ts = np.asarray(event_ts, dtype=np.int64)
    if before_ns < 0 or after_ns < 0:
        raise ValueError("window sides must be >= 0")
    empty = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64))
    if len(call_keys) == 0 or len(event_keys) == 0:
        return empty
    codes, uniques = _codes(list(call_keys) + list(event_keys))
    call_codes, event_codes = codes[: len(call_keys)], codes[len(call_keys) :]
    lo_t = _saturating_add(call_start, -before_ns)
    hi_t = _saturating_add(call_end, after_ns)
    event_order = np.lexsort((event_ts, event_codes))
    sorted_codes = event_codes[event_order]
    sorted_ts = event_ts[event_order]
    call_order = np.argsort(call_codes, kind="stable")
    sorted_call_codes = call_codes[call_order]
    calls_out: list[np.ndarray] = []
    events_out: list[np.ndarray] = []
    for code in range(uniques):
        if code == 0:  # the None key
            continue
        first = np.searchsorted(sorted_codes, code, side="left")
        last = np.searchsorted(sorted_codes, code, side="right")
        if first == last:
            continue
        calls = call_order[
            np.searchsorted(sorted_call_codes, code, side="left") : np.searchsorted(
                sorted_call_codes, code, side="right"
            )
        ]
        if len(calls) == 0:
            continue
        block = sorted_ts[first:last]
        lo = np.searchsorted(block, lo_t[calls], side="left") + first
        hi = np.searchsorted(block, hi_t[calls], side="right") + first
        counts = hi - lo
        total = int(counts.sum())
        if total == 0:
            continue
        calls_out.append(np.repeat(calls, counts))
        # Expand each [lo, hi) into positions: a running index offset per call.
        starts = np.repeat(lo - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
        events_out.append(event_order[starts + np.arange(total)])
    if not calls_out:
        return empty
    call_idx = np.concatenate(calls_out)
    event_idx = np.concatenate(events_out)
    order = np.lexsort((call_idx, event_idx))
    return call_idx[order], event_idx[order]


def _codes(keys: list[object]) -> tuple[np.ndarray, int]:
    """Integer codes for keys with ``None`` as code 0; returns (codes, number of codes).

    Codes follow first appearance (``pandas.factorize``, vectorised); the join's output does not
    depend on which code a key gets.
    """
    found, uniques = pd.factorize(pd.Series(keys, dtype=object), use_na_sentinel=True)
    return found.astype(np.int64) + 1, len(uniques) + 1


def _saturating_add(values: np.ndarray, delta: int) -> np.ndarray:
    """values + delta without int64 wrap-around."""
    info = np.iinfo(np.int64)
    with np.errstate(over="ignore"):
        shifted = values + np.int64(delta)
    if delta > 0:
        return np.where(values > info.max - delta, info.max, shifted)
    if delta < 0:
        return np.where(values < info.min - delta, info.min, shifted)
    return shifted


def window_counts(
    call_start: np.ndarray,
    call_end: np.ndarray,
    event_ts: np.ndarray,
    *,
    before_ns: int,
    after_ns: int,
) -> np.ndarray:
    """For each event, how many calls (of any key) have it in their window; no pairs materialised.

    A call covers t when start - before <= t <= end + after. Since start <= end, the calls with
    end + after < t are a subset of those with start - before <= t, so the count is a difference
    of two binary searches.
    """
    if before_ns < 0 or after_ns < 0:
        raise ValueError("window sides must be >= 0")
    lo = np.sort(_saturating_add(np.asarray(call_start, dtype=np.int64), -before_ns))
    hi = np.sort(_saturating_add(np.asarray(call_end, dtype=np.int64), after_ns))
    t = np.asarray(event_ts, dtype=np.int64)
    return (np.searchsorted(lo, t, side="right") - np.searchsorted(hi, t, side="left")).astype(
        np.int64
    )
