"""Clock offsets between sources, and whether violations follow tool calls more than chance.

Offsets: every (network event, call) pair of the same sandbox within ``max_lag`` contributes its
lag (event time minus call start). Traffic caused by calls piles up just after the calls start,
so the lag histogram (the cross-correlogram) has a peak; its onset — the earliest lag at which the
peak's excess over the flat background reaches 10% — is the offset of the network clock against
the trajectory clock (a causal delay can only add to it). An event from an address k sandboxes
share at its time (a Docker host, a node's SNAT, a NAT gateway) pairs with the calls of all k:
only the causing sandbox's calls line up, the others add to the background, so such pairs weigh
1/k and the onset discounts the background's noise. A bootstrap over pairs gives the
interval: up to ``EXACT_BOOTSTRAP_PAIRS`` pairs it resamples the pairs themselves; above, it draws
each resampled histogram from the multinomial that resampling n pairs follows (the same
distribution, at a cost independent of the number of pairs). Allowed traffic counts too: every
flow a call causes is an anchor, and any subset of the events (a thinned sample) may be given.

Chance: the unit is a violation conversation's onset (its first event: later events of a miner
or a tunnel are not independent draws). For each episode, the number of its sandbox's onsets
inside its calls' windows (narrow: ``ASSOC_BEFORE_NS`` before the start to ``ASSOC_AFTER_NS``
after the end, on clocks already aligned) is compared with the same count after circularly
shifting the episode's calls within the episode's own active span (shifting across idle gaps
would fake an association), giving a lift and a permutation p-value, with Benjamini-Hochberg
across episodes. An episode without an onset in its span counts zero in every shift, so only its
calls are counted; the shifts of the others are evaluated all at once. A baseline table compares
the onset rate while a call is in flight with the rate while none is.

Power: when call windows cover most of the span, an onset lands in one by chance nearly always,
and no count in windows can be significant however strong the association. Each result says how
much the windows cover (the in-flight fraction: expected / onsets, what the shifts measure), the
fewest onsets in windows that would be significant at ``ALPHA`` (read off the same shifts), and
the smallest lift the test detects with probability ``POWER`` (binomial approximation); without
such a count the test cannot tell association from chance, and ``Association.power_note`` says
so in one sentence (see ``Association``).
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .identity import NS_MAX, NS_MIN, holders
from .schema import int_ns

NS = 1_000_000_000
BIN_NS = 100_000_000
MAX_LAG_NS = 120 * NS
MAX_EVENTS = 200_000
"""Events the offset estimate pairs at most (evenly thinned beyond)."""
PEAK_HALF_WIDTH_NS = 3 * NS
WEIGHT_QUANTUM = float(1 << 24)
"""Pair weights are rounded to multiples of 1 / WEIGHT_QUANTUM (sums exact in float64)."""
SHARED_NOISE_SIGMAS = 3.0
"""With pairs from shared addresses, the onset counts the excess above the background plus this
many of its standard deviations (see ``_onsets``)."""
ONSET_SHARE = 0.10
MIN_PEAK_Z = 4.0
BOOTSTRAP = 200
EXACT_BOOTSTRAP_PAIRS = 20_000
"""Up to this many pairs the bootstrap resamples pairs; above, it draws histograms directly."""
DRIFT_MIN_NS = NS // 2
ASSOC_BEFORE_NS = 2 * NS
ASSOC_AFTER_NS = 5 * NS
CHUNK_CELLS = 1 << 20
"""Cells (shifts x calls) evaluated per numpy step of the association: bounds its memory."""
ALPHA = 0.05
"""The association test's size: a p-value at most this is significant (``critical_count``)."""
POWER = 0.8
"""The probability of detection the minimum detectable lift is computed for."""


@dataclass(frozen=True)
class OffsetEstimate:
    """The offset of a network source's clock against a trajectory source's: event - call, seconds."""

    network_source: str
    agent_source: str
    offset_s: float | None
    ci_low_s: float | None
    ci_high_s: float | None
    pairs: int
    peak_pairs: int
    peak_z: float | None
    drift_ppm: float | None
    note: str


def _edges(max_lag: int) -> np.ndarray:
    return np.arange(-max_lag, max_lag + BIN_NS, BIN_NS, dtype=np.int64)


def _bins(lags: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Each lag's bin, as ``np.histogram(lags, edges)`` assigns it (its last bin is closed).

    The lags must lie within the edges.
    """
    return np.minimum((lags - edges[0]) // BIN_NS, len(edges) - 2)


def _onsets(
    counts: np.ndarray, edges: np.ndarray, noise: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row of lag histograms: onset (ns), the peak's excess, its z-score, and "no peak".

    The onset is the earliest lag at which the excess over the background (the median bin)
    within ``PEAK_HALF_WIDTH_NS`` of the smoothed maximum reaches ``ONSET_SHARE`` of it.

    ``noise`` > 0 (pairs from shared addresses, see ``estimate_offset``): the background is at
    least the mean bin outside that window (the median bin is 0 in a sparse histogram however
    many pairs fall around the peak), and the onset counts only the excess above the background
    plus ``noise`` standard deviations (Poisson), so that the background's chance bumps before
    the peak do not pull the onset early.
    """
    nbins = counts.shape[1]
    width = max(int(NS // BIN_NS), 1)
    smooth = np.array([np.convolve(row, np.ones(width), mode="same") for row in counts])
    peak = np.argmax(smooth, axis=1)
    background = np.median(counts, axis=1)
    half = int(PEAK_HALF_WIDTH_NS // BIN_NS)
    lo, hi = np.maximum(peak - half, 0), np.minimum(peak + half + 1, nbins)
    at = lo[:, None] + np.arange(2 * half + 1)
    valid = at < hi[:, None]
    window = np.where(valid, np.take_along_axis(counts, np.minimum(at, nbins - 1), axis=1), 0)
    window = window.astype(float)
    if noise:
        outside = (counts.sum(axis=1) - window.sum(axis=1)) / np.maximum(nbins - (hi - lo), 1)
        background = np.maximum(background, outside)
    expected = background * (hi - lo)
    excess = np.where(valid, np.clip(window - background[:, None], 0, None), 0.0)
    total = excess.sum(axis=1)
    z = (window.sum(axis=1) - expected) / np.sqrt(np.maximum(expected, 1.0))
    above, share = excess, total
    if noise:
        floor = background + noise * np.sqrt(background)
        above = np.where(valid, np.clip(window - floor[:, None], 0, None), 0.0)
        share = above.sum(axis=1)
    first = np.argmax(np.cumsum(above, axis=1) >= ONSET_SHARE * share[:, None], axis=1)
    onset = edges[lo + first].astype(float) + BIN_NS / 2
    return onset, total, z, (counts.sum(axis=1) == 0) | (total <= 0) | (share <= 0)


def _onset(
    counts: np.ndarray, edges: np.ndarray, noise: float = 0.0
) -> tuple[float, int, float] | None:
    """(onset ns, pairs in the peak's excess, peak z-score) of a lag histogram, or None."""
    onset, total, z, none = _onsets(counts[None, :], edges, noise)
    if none[0]:
        return None
    return float(onset[0]), round(float(total[0])), float(z[0])


def _bootstrap(
    bins: np.ndarray,
    counts: np.ndarray,
    edges: np.ndarray,
    seed: int,
    weights: np.ndarray | None = None,
    noise: float = 0.0,
) -> list[float]:
    """Onsets of ``BOOTSTRAP`` resampled histograms (see the module docstring)."""
    rng = np.random.default_rng(seed)
    n, nbins = len(bins), len(edges) - 1
    if weights is None:
        if n <= EXACT_BOOTSTRAP_PAIRS:
            draws = np.array(
                [
                    np.bincount(bins[rng.integers(0, n, n)], minlength=nbins)
                    for _ in range(BOOTSTRAP)
                ]
            )
        else:
            draws = rng.multinomial(n, counts / n, size=BOOTSTRAP)
    elif n <= EXACT_BOOTSTRAP_PAIRS:
        picks = (rng.integers(0, n, n) for _ in range(BOOTSTRAP))
        draws = np.array([np.bincount(bins[p], weights[p], minlength=nbins) for p in picks])
    else:  # resampling n pairs draws each (bin, weight) cell from a multinomial
        values, level = np.unique(weights, return_inverse=True)
        cells = np.bincount(bins * len(values) + level.reshape(-1), minlength=nbins * len(values))
        drawn = rng.multinomial(n, cells / n, size=BOOTSTRAP).reshape(BOOTSTRAP, nbins, -1)
        draws = drawn @ values
    onset, _, _, none = _onsets(draws, edges, noise)
    return [float(x) for x in onset[~none]]


def _quarters(n: int) -> list[tuple[int, int]]:
    """The bounds ``np.array_split(range(n), 4)`` cuts at."""
    size, extra = divmod(n, 4)
    cuts = [0]
    for i in range(4):
        cuts.append(cuts[-1] + size + (1 if i < extra else 0))
    return list(pairwise(cuts))


def _median_sorted(values: np.ndarray) -> float:
    """``np.median`` of an already sorted array (its middle one or two values)."""
    n = len(values)
    return float(np.median(values[(n - 1) // 2 : n // 2 + 1]))


def estimate_offset(
    lags_ns: np.ndarray,
    times_ns: np.ndarray | None = None,
    *,
    max_lag_ns: int = MAX_LAG_NS,
    seed: int = 0,
    shared_by: np.ndarray | None = None,
) -> tuple[float | None, float | None, float | None, int, float | None, float | None, str]:
    """Offset (s), CI low/high (s), peak pairs, peak z, drift (ppm) and a note, from pair lags.

    ``shared_by``: per pair, how many hosts held its event's address (None: one each). An event
    on an address k hosts share pairs with the calls of all k, and only the causing host's line
    up, so its pairs weigh 1/k: every event then weighs the same, and an address shared by many
    does not drown the others. The weights are scaled to effective pairs (their sum over the sum
    of their squares), so that counts and the z-score stay in pairs, and rounded to multiples of
    ``1 / WEIGHT_QUANTUM`` so that the histogram does not depend on the order of summation; with
    equal weights the histogram is the unweighted one. With any shared pair, the onset also discounts the
    background's noise (``_onsets``, ``SHARED_NOISE_SIGMAS``): k hosts' calls bring k times the
    background. Without shared pairs the estimate is the unweighted one, exactly.
    """
    all_lags = np.asarray(lags_ns, dtype=np.int64)
    near = np.abs(all_lags) <= max_lag_ns
    every = bool(near.all())
    lags = all_lags if every else all_lags[near]
    if len(lags) < 10:
        return None, None, None, 0, None, None, f"too few pairs ({len(lags)}) to estimate"
    noise, weights = 0.0, None
    if shared_by is not None:
        k = np.asarray(shared_by, dtype=np.int64)
        k = k if every else k[near]
        if bool(np.any(k > 1)):
            noise = SHARED_NOISE_SIGMAS
            if not bool(np.all(k == k[0])):
                weights = 1.0 / np.maximum(k, 1)
                weights *= weights.sum() / np.square(weights).sum()
                # multiples of 2^-24: every sum of them is exact, in any order
                weights = np.round(weights * WEIGHT_QUANTUM) / WEIGHT_QUANTUM
    edges = _edges(max_lag_ns)
    nbins = len(edges) - 1
    bins = _bins(lags, edges)
    counts = np.bincount(bins, weights, minlength=nbins)
    found = _onset(counts, edges, noise)
    if found is None or found[2] < MIN_PEAK_Z:
        z = None if found is None else found[2]
        return (
            None,
            None,
            None,
            0 if found is None else found[1],
            z,
            None,
            "no clear peak in the lag histogram: no offset estimated",
        )
    onset, peak_pairs, z = found
    boots = _bootstrap(bins, counts, edges, seed, weights, noise)
    low, high = (np.percentile(boots, [2.5, 97.5]) / NS) if boots else (None, None)
    drift = None
    if times_ns is not None and len(lags) >= 200:
        times = np.asarray(times_ns, dtype=np.int64)
        times = times if every else times[near]
        # Pairs by time (stable); the pipeline's events are in time order already.
        order = None if np.all(times[1:] >= times[:-1]) else np.argsort(times, kind="stable")
        xs, ys = [], []
        for a, b in _quarters(len(times)):
            part = slice(a, b) if order is None else order[a:b]
            part_weights = None if weights is None else weights[part]
            got = _onset(np.bincount(bins[part], part_weights, minlength=nbins), edges, noise)
            if got is not None and got[2] >= MIN_PEAK_Z:
                xs.append(_median_sorted(times[part]))
                ys.append(got[0])
        if len(xs) >= 3 and max(xs) > min(xs):
            slope = float(np.polyfit(np.array(xs) - xs[0], np.array(ys), 1)[0])
            # Report drift only when it moves the clock by more than the estimator's precision.
            if abs(slope) * (max(xs) - min(xs)) >= DRIFT_MIN_NS:
                drift = slope * 1e6
    return (
        onset / NS,
        float(low) if low is not None else None,
        float(high) if high is not None else None,
        peak_pairs,
        z,
        drift,
        "onset of the lag-histogram peak",
    )


def _saturating(values: np.ndarray, delta: int) -> np.ndarray:
    """values + delta clipped to int64 (no wrap-around)."""
    with np.errstate(over="ignore"):
        shifted = values + np.int64(delta)
    if delta > 0:
        return np.where(values > NS_MAX - delta, NS_MAX, shifted)
    if delta < 0:
        return np.where(values < NS_MIN - delta, NS_MIN, shifted)
    return shifted


def _ranks(
    column: pa.ChunkedArray | pa.Array, name: Callable[[str | None], str | None]
) -> tuple[np.ndarray, list[str]]:
    """Each row's rank among the sorted distinct ``name(value)``s, and those names.

    Rows whose name is None get -1. A dictionary encoding: one Python call per distinct value.
    """
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    encoded = pc.dictionary_encode(array, null_encoding="encode")
    names = [name(v) for v in encoded.dictionary.to_pylist()]
    distinct = sorted({n for n in names if n is not None})
    rank = {n: i for i, n in enumerate(distinct)}
    lookup = np.array([-1 if n is None else rank[n] for n in names], dtype=np.int64)
    return lookup[encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)], distinct


def _rank_in(column: pa.ChunkedArray | pa.Array, names: list[str]) -> np.ndarray:
    """Each row's index in the sorted ``names`` (exact string match), -1 when absent or null."""
    found = pc.index_in(column.cast(pa.string()), value_set=pa.array(names, pa.string()))
    return pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def _holder_codes(
    identity: pa.Table, ips: pa.Array, ts: np.ndarray, hosts: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Every (event, host) with the host holding the event's (ip, time) and listed in ``hosts``.

    Returns (event index, index into ``hosts``), ordered by event then host: one row per event
    its address's only holder, k rows where k listed hosts share it, none where no listed host
    holds it. Which identity rows hold for an address changes only at their validity bounds, so
    ``holders`` runs once per (address, interval between bounds) present and is broadcast from
    there.
    """
    if len(ts) == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    encoded = pc.dictionary_encode(ips, null_encoding="encode")
    ip_code = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    bounds = np.unique(
        np.concatenate(
            [
                int_ns(identity.column("valid_from"), NS_MIN),
                int_ns(identity.column("valid_to"), NS_MAX),
            ]
        )
    )
    key = ip_code * (len(bounds) + 1) + np.searchsorted(bounds, ts, side="right")
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    addresses = encoded.dictionary.to_pylist()
    held = holders(identity, [addresses[ip_code[i]] for i in first], ts[first])
    index = {h: i for i, h in enumerate(hosts)}
    # per distinct key, its listed holders' codes (ascending, as ``holders`` sorts by name and
    # ``hosts`` is sorted), flattened: key j's are flat[start[j] : start[j] + count[j]]
    listed = [[index[h] for h in names if h in index] for names in held]
    count = np.array([len(c) for c in listed], dtype=np.int64)
    flat = np.array([c for codes in listed for c in codes], dtype=np.int64)
    start = np.cumsum(count) - count
    per_event = count[inverse]
    event = np.repeat(np.arange(len(ts), dtype=np.int64), per_event)
    within = np.arange(len(event), dtype=np.int64) - np.repeat(
        np.cumsum(per_event) - per_event, per_event
    )
    return event, flat[np.repeat(start[inverse], per_event) + within]


@dataclass
class _Pairs:
    """(event, call) pairs of the same sandbox within the lag window, ordered by (event, call).

    An event pairs with the calls of every host holding its address at its time: one host for
    an address held alone, all k for an address k hosts share. Event i (of the thinned events)
    has ``counts[i]`` pairs, consecutive; a pair's call is ``by_call[position]`` (calls sorted
    by sandbox and start); ``held_by[i]`` is how many hosts with calls event i pairs with.
    """

    rows: np.ndarray  # the thinned events' rows in the table given
    ts: np.ndarray  # their times
    counts: np.ndarray
    by_call: np.ndarray
    position: np.ndarray
    held_by: np.ndarray

    def events(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.ts), dtype=np.int64), self.counts)

    def shared_by(self) -> np.ndarray | None:
        """Per pair, how many hosts its event pairs with (None: one for every pair)."""
        if not bool(np.any(self.held_by[self.counts > 0] > 1)):
            return None
        return np.repeat(self.held_by, self.counts)


def _keyed_pairs(
    call_key: np.ndarray, call_ts: np.ndarray, event_key: np.ndarray, event_ts: np.ndarray, lag: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(counts, by_call, position) of the pairs with the same key (>= 0) and |event - call| <= lag.

    The pairs ``join.band_join`` gives with a window of ``lag`` each side, in its order.
    """
    by_call = np.lexsort((call_ts, call_key))
    by_call = by_call[call_key[by_call] >= 0]
    keys, times = call_key[by_call], call_ts[by_call]
    lo = np.zeros(len(event_ts), dtype=np.int64)
    hi = np.zeros(len(event_ts), dtype=np.int64)
    low, high = _saturating(event_ts, -lag), _saturating(event_ts, lag)
    by_event = np.argsort(event_key, kind="stable")
    cuts = np.flatnonzero(np.diff(event_key[by_event])) + 1
    for group in np.split(by_event, cuts):
        key = event_key[group[0]] if len(group) else -1
        a, b = np.searchsorted(keys, key, side="left"), np.searchsorted(keys, key, side="right")
        if key < 0 or a == b:
            continue
        block = times[a:b]
        lo[group] = np.searchsorted(block, low[group], side="left") + a
        hi[group] = np.searchsorted(block, high[group], side="right") + a
    counts = hi - lo
    position = np.repeat(lo - (np.cumsum(counts) - counts), counts)
    position += np.arange(len(position), dtype=np.int64)
    # An event's calls come in start order; that is row order when the calls are sorted by time.
    same_key = keys[1:] == keys[:-1]
    if not bool(np.all(by_call[1:][same_key] > by_call[:-1][same_key])):
        events = np.repeat(np.arange(len(event_ts), dtype=np.int64), counts)
        position = position[np.lexsort((by_call[position], events))]
    return counts, by_call, position


def _pairs(
    events: pa.Table, calls: pa.Table, identity: pa.Table, max_lag_ns: int, max_events: int
) -> _Pairs:
    """The pairs of ``max_events`` events evenly thinned, with at most ``max_events`` (event,
    holder) rows: events on shared addresses thin the events further, evenly."""
    n = events.num_rows
    rows = np.arange(n) if n <= max_events else np.linspace(0, n - 1, max_events).astype(np.int64)
    picked = events.select(["ts", "src_ip"])
    if n > max_events:
        picked = picked.take(pa.array(rows))
    ts = int_ns(picked.column("ts"), 0)
    start = int_ns(calls.column("ts_start"), 0)
    if not identity.num_rows:
        call_key = np.zeros(calls.num_rows, dtype=np.int64)
        key = np.zeros(len(ts), dtype=np.int64)
        counts, by_call, position = _keyed_pairs(call_key, start, key, ts, max_lag_ns)
        return _Pairs(rows, ts, counts, by_call, position, np.ones(len(ts), dtype=np.int64))
    call_key, hosts = _ranks(calls.column("host"), lambda h: h)
    event, key = _holder_codes(identity, picked.column("src_ip").combine_chunks(), ts, hosts)
    while len(event) > max_events and len(ts) > 1:  # shared: fewer events, as many rows
        keep = np.linspace(0, len(ts) - 1, max(len(ts) * max_events // len(event), 1))
        keep = np.unique(keep.astype(np.int64))
        new = np.full(len(ts), -1, dtype=np.int64)
        new[keep] = np.arange(len(keep), dtype=np.int64)
        kept = new[event] >= 0
        rows, ts, event, key = rows[keep], ts[keep], new[event[kept]], key[kept]
    held = np.bincount(event, minlength=len(ts))
    expanded, by_call, position = _keyed_pairs(call_key, start, key, ts[event], max_lag_ns)
    counts = np.bincount(event, weights=expanded, minlength=len(ts)).astype(np.int64)
    if bool(np.any(held[counts > 0] > 1)):  # an event's pairs by call, not by holder then call
        pair_event = np.repeat(np.arange(len(ts), dtype=np.int64), counts)
        position = position[np.lexsort((by_call[position], pair_event))]
    return _Pairs(rows, ts, counts, by_call, position, held)


def offset_pairs(
    events: pa.Table,
    calls: pa.Table,
    identity: pa.Table,
    *,
    max_lag_ns: int = MAX_LAG_NS,
    max_events: int = MAX_EVENTS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(event rows, call rows, lags) for same-sandbox pairs within ``max_lag_ns``.

    Events are the network events given (allowed traffic included, or a sample of it), evenly
    thinned to ``max_events``. Without an identity map every pair within the window counts (much
    noisier). Pairs are ordered by (event, call).
    """
    pairs = _pairs(events, calls, identity, max_lag_ns, max_events)
    e, c = pairs.events(), pairs.by_call[pairs.position]
    return pairs.rows[e], c, pairs.ts[e] - int_ns(calls.column("ts_start"), 0)[c]


def estimate_offsets(
    events: pa.Table, calls: pa.Table, identity: pa.Table, *, max_lag_ns: int = MAX_LAG_NS
) -> list[OffsetEstimate]:
    """One estimate per (network source format, trajectory source format) with pairs."""
    if events.num_rows == 0 or calls.num_rows == 0:
        return []
    pairs = _pairs(events, calls, identity, max_lag_ns, MAX_EVENTS)
    if len(pairs.position) == 0:
        return []
    times = np.repeat(pairs.ts, pairs.counts)
    lags = times - int_ns(calls.column("ts_start"), 0)[pairs.by_call][pairs.position]
    shared_by = pairs.shared_by()
    net_code, net_names = _codes(events.column("source_format").take(pa.array(pairs.rows)))
    agent_code, agent_names = _codes(calls.column("source_format"))
    agent_code = agent_code[pairs.by_call]
    used = np.zeros(len(pairs.by_call), dtype=bool)
    used[pairs.position] = True
    nets = {net_names[k]: k for k in np.unique(net_code[pairs.counts > 0]).tolist()}
    agents = {agent_names[k]: k for k in np.unique(agent_code[used]).tolist()}
    mixed = len(nets) > 1 or len(agents) > 1
    if mixed:  # per pair, only when there is more than one combination
        net_code = np.repeat(net_code, pairs.counts)
        agent_code = agent_code[pairs.position]
    out = []
    for net in sorted(nets):
        for agent in sorted(agents):
            mine = (net_code == nets[net]) & (agent_code == agents[agent]) if mixed else slice(None)
            seed = int(hashlib.sha256(f"{net}|{agent}".encode()).hexdigest()[:8], 16)
            selected = lags[mine]
            offset, low, high, peak, z, drift, note = estimate_offset(
                selected,
                times[mine],
                max_lag_ns=max_lag_ns,
                seed=seed,
                shared_by=None if shared_by is None else shared_by[mine],
            )
            out.append(
                OffsetEstimate(net, agent, offset, low, high, len(selected), peak, z, drift, note)
            )
    return out


def _codes(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, list[Any]]:
    """Each row's index into the column's distinct values (null included), and those values."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    encoded = pc.dictionary_encode(array, null_encoding="encode")
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, encoded.dictionary.to_pylist()


def choose_offsets(estimates: Sequence[OffsetEstimate]) -> dict[str, float]:
    """Per network source, the estimate against the trajectory source with the most pairs."""
    best: dict[str, OffsetEstimate] = {}
    for est in estimates:
        if est.offset_s is None:
            continue
        if est.network_source not in best or est.pairs > best[est.network_source].pairs:
            best[est.network_source] = est
    return {k: v.offset_s for k, v in best.items() if v.offset_s is not None}


def apply_offsets(events: pa.Table, offsets_s: dict[str, float]) -> pa.Table:
    """Shift each network source's times by minus its offset (onto the trajectories' clock).

    Adds ``clock_offset_ns`` (what was subtracted) so original times stay recoverable.
    """
    codes, formats = _codes(events.column("source_format"))
    per_format = [round(offsets_s.get(f, 0.0) * NS) for f in formats]
    shift = np.array(per_format, dtype=np.int64)[codes]
    out = events
    for column in ("ts", "ts_end"):
        values = out.column(column).cast(pa.int64()).to_numpy(zero_copy_only=False)
        if out.column(column).null_count:
            mask = np.asarray(out.column(column).is_null().to_numpy(zero_copy_only=False))
            arr = pa.array(
                np.where(mask, 0, np.nan_to_num(values).astype(np.int64) - shift), mask=mask
            )
        else:
            arr = pa.array(values.astype(np.int64) - shift)
        out = out.set_column(
            out.schema.get_field_index(column), column, arr.cast(events.schema.field(column).type)
        )
    if "clock_offset_ns" in out.column_names:
        out = out.drop_columns(["clock_offset_ns"])
    return out.append_column("clock_offset_ns", pa.array(shift))


# --- association with chance ---------------------------------------------------------------


@dataclass(frozen=True)
class Association:
    """Observed violations inside call windows versus a circular-shift null, with its power.

    ``violations`` are the onsets, ``observed`` those inside call windows, ``expected`` the mean
    of that count over the N shifts, ``p_value`` = (1 + #shifts counting >= observed) / (N + 1).

    Power, from the same shifts (None without onsets or shifts, and in results cached before
    these fields existed):

    - ``in_flight_fraction`` f = expected / violations: the share of the active span the call
      windows cover where the onsets are (for one onset and shift d uniform on the span, the
      chance that a window covers it; for a run or a tool, averaged over their onsets). 1.0 when
      windows cover the whole span.
    - ``critical_count`` c: the fewest onsets in windows whose p-value, computed as above from
      the same shifts, is at most ``ALPHA``; None when not even all ``violations`` would be (the
      shifts put every onset in a window too often, or there are too few onsets or shifts): the
      test cannot tell association from chance, whatever the data.
    - ``min_detectable_lift``: the smallest lift L the test detects with probability ``POWER``,
      with the count in windows under lift L approximated by Binomial(n, L f) (n = violations):
      L = p1 / f, p1 the least p with P(Binomial(n, p) >= c) >= POWER, by Newton's method in a
      bisection bracket (for c = n, p1 = POWER ** (1 / n)). At most the largest possible lift 1 / f (every onset in a
      window); None when the test cannot tell, or when f = 0 (any onset in a window is then
      significant and lift is undefined).
    """

    scope: str  # run | episode | tool
    key: str
    host: str | None
    calls: int
    violations: int
    observed: int
    expected: float
    lift: float | None
    p_value: float
    q_value: float | None = None
    in_flight_fraction: float | None = None
    critical_count: int | None = None
    min_detectable_lift: float | None = None

    @property
    def cannot_tell(self) -> bool:
        """True when no count in windows could be significant (power known, onsets present)."""
        return self.in_flight_fraction is not None and self.critical_count is None

    @property
    def max_lift(self) -> float | None:
        """The lift if every onset fell in a call window: 1 / in-flight fraction."""
        if self.in_flight_fraction is None or self.expected <= 0:
            return None
        return round(self.violations / self.expected, 6)

    @property
    def power_note(self) -> str | None:
        """One plain sentence when the test cannot tell association from chance, else None."""
        if not self.cannot_tell:
            return None
        share = f"{self.in_flight_fraction:.0%}"
        n = self.violations
        onsets = "its one onset in a call window" if n == 1 else f"all {n} onsets in call windows"
        return (
            f"calls were in flight {share} of the time: this test cannot tell association from "
            f"chance here (even {onsets} would not be significant at {ALPHA:g})"
        )


def onsets(violations: pa.Table) -> pa.Table:
    """The first event of each conversation (all rows when there are no conversations)."""
    if "conversation_seq" not in violations.column_names:
        return violations
    return violations.filter(pc.equal(violations.column("conversation_seq"), 1))


def _shifted_counts(
    offset: np.ndarray,
    duration: np.ndarray,
    points: np.ndarray,
    shifts: np.ndarray,
    length: int,
    before_ns: int,
    after_ns: int,
) -> np.ndarray:
    """Per shift d: how many points some call window covers once the calls are moved by d.

    Times are relative to the episode's span start. A call at ``offset`` (in [0, length)) moves to
    ``(offset + d) % length`` and keeps its ``duration``; its window is [start - before, end +
    after]. The moved calls in start order are a rotation of the calls sorted by offset (those
    that wrap come first), so two binary searches in the offsets give how many moved calls start
    by ``point + before``, and the point is covered when the running maximum of those calls'
    window ends reaches it. ``CHUNK_CELLS`` bounds the (shift, call) cells evaluated at once.
    """
    order = np.argsort(offset, kind="stable")
    offset, duration = offset[order], duration[order]
    n, m = len(offset), len(points)
    out = np.empty(len(shifts), dtype=np.int64)
    step = max(1, CHUNK_CELLS // (n + m))
    lane = np.arange(n, dtype=np.int64)
    for a in range(0, len(shifts), step):
        d = shifts[a : a + step, None]
        cut = np.searchsorted(offset, length - d, side="left")  # calls from ``cut`` on wrap
        rotated = (cut + lane) % n
        start = offset[rotated] + d - np.where(rotated >= cut, length, 0)
        reach = np.maximum.accumulate(start + duration[rotated] + after_ns, axis=1)
        limit = points[None, :] + before_ns - d  # a call's offset must be <= limit (unwrapped)
        unwrapped = np.minimum(np.searchsorted(offset, limit, side="right"), cut)
        wrapped = np.maximum(np.searchsorted(offset, limit + length, side="right") - cut, 0)
        prefix = unwrapped + wrapped
        last = np.take_along_axis(reach, np.maximum(prefix - 1, 0), axis=1)
        out[a : a + step] = ((prefix > 0) & (last >= points[None, :])).sum(axis=1)
    return out


@dataclass
class _Episodes:
    """Calls with a host grouped by (episode, host), groups in sorted (episode, host) order."""

    rows: np.ndarray  # call rows, grouped; ascending within a group
    bounds: np.ndarray  # group g is rows[bounds[g]:bounds[g + 1]]
    episode: np.ndarray  # per group: rank in ``episodes``
    host: np.ndarray  # per group: rank in ``hosts``
    span_lo: np.ndarray
    span_hi: np.ndarray
    episodes: list[str]
    hosts: list[str]


def _episodes(calls: pa.Table, start: np.ndarray, end: np.ndarray) -> _Episodes:
    host, hosts = _ranks(calls.column("host"), lambda h: h)
    episode, episodes = _ranks(calls.column("episode_id"), str)
    rows = np.flatnonzero(host >= 0)
    key = episode[rows] * max(len(hosts), 1) + host[rows]
    order = np.argsort(key, kind="stable")
    rows, key = rows[order], key[order]
    first = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1]))) if len(rows) else rows
    return _Episodes(
        rows=rows,
        bounds=np.append(first, len(rows)),
        episode=episode[rows[first]],
        host=host[rows[first]],
        span_lo=np.minimum.reduceat(start[rows], first) if len(rows) else rows,
        span_hi=np.maximum.reduceat(end[rows], first) if len(rows) else rows,
        episodes=episodes,
        hosts=hosts,
    )


def association(
    violations: pa.Table,
    calls: pa.Table,
    *,
    before_ns: int = ASSOC_BEFORE_NS,
    after_ns: int = ASSOC_AFTER_NS,
    permutations: int = 999,
) -> list[Association]:
    """Per episode, per tool and per run: observed vs circular-shift null (see the module docstring)."""
    violations = onsets(violations)
    if violations.num_rows == 0 or calls.num_rows == 0:
        return []
    start = int_ns(calls.column("ts_start"), 0)
    end = np.maximum(int_ns(calls.column("ts_end"), NS_MIN), start)
    eps = _episodes(calls, start, end)
    run, runs = _ranks(calls.column("run_id"), str)
    tool, tools = _ranks(calls.column("tool"), lambda t: t or "?")
    sizes = np.diff(eps.bounds)
    # Every episode's calls count (under its first call's run); only episodes with onsets shift.
    episode_run = run[eps.rows[eps.bounds[:-1]]]
    run_calls = np.bincount(np.repeat(episode_run, sizes), minlength=len(runs))
    tool_calls = np.bincount(tool[eps.rows], minlength=len(tools))
    run_points = np.zeros(len(runs), dtype=np.int64)
    tool_points = np.zeros(len(tools), dtype=np.int64)
    zeros = np.zeros(permutations + 1, dtype=np.int64)
    run_draws: dict[int, np.ndarray] = {}
    tool_draws: dict[int, np.ndarray] = {}
    v_host = _rank_in(violations.column("src_host"), eps.hosts)
    v_ts = int_ns(violations.column("ts"), 0)
    per_episode: list[Association] = []
    for g, points in _points_in_spans(eps, v_host, v_ts):
        rows = eps.rows[eps.bounds[g] : eps.bounds[g + 1]]
        episode, host = eps.episodes[eps.episode[g]], eps.hosts[eps.host[g]]
        span_lo = int(eps.span_lo[g])
        length = max(int(eps.span_hi[g]) - span_lo, 1)
        seed = int(hashlib.sha256(f"{episode}|{host}".encode()).hexdigest()[:8], 16)
        shifts = np.random.default_rng(seed).integers(0, length, permutations)
        deltas = np.concatenate(([0], shifts)).astype(np.int64)
        offset = (start[rows] - span_lo) % length
        duration = end[rows] - start[rows]
        relative = points - span_lo
        window = (length, before_ns, after_ns)
        draws = _shifted_counts(offset, duration, relative, deltas, *window)
        r = int(episode_run[g])
        run_draws[r] = run_draws.get(r, zeros) + draws
        run_points[r] += len(points)
        episode_tools = tool[rows]
        for t in np.unique(episode_tools).tolist():
            m = episode_tools == t
            more = _shifted_counts(offset[m], duration[m], relative, deltas, *window)
            tool_draws[t] = tool_draws.get(t, zeros) + more
            tool_points[t] += len(points)
        per_episode.append(
            _summarise("episode", episode, host, len(rows), len(points), int(draws[0]), draws[1:])
        )
    _benjamini_hochberg(per_episode)
    out_runs = []
    for r in np.flatnonzero(run_calls).tolist():
        d = run_draws.get(r, zeros)
        calls_, points_ = int(run_calls[r]), int(run_points[r])
        out_runs.append(_summarise("run", runs[r], None, calls_, points_, int(d[0]), d[1:]))
    out_tools = []
    for t in np.flatnonzero(tool_calls).tolist():
        d = tool_draws.get(t, zeros)
        calls_, points_ = int(tool_calls[t]), int(tool_points[t])
        out_tools.append(_summarise("tool", tools[t], None, calls_, points_, int(d[0]), d[1:]))
    _benjamini_hochberg(out_tools)
    return out_runs + out_tools + per_episode


def _points_in_spans(
    eps: _Episodes, v_host: np.ndarray, v_ts: np.ndarray
) -> list[tuple[int, np.ndarray]]:
    """(group, its host's onset times within its span, sorted) for groups with at least one."""
    found: list[tuple[int, np.ndarray]] = []
    for h in np.unique(v_host[v_host >= 0]):
        times = np.sort(v_ts[v_host == h])
        groups = np.flatnonzero(eps.host == h)
        lo = np.searchsorted(times, eps.span_lo[groups], side="left")
        hi = np.searchsorted(times, eps.span_hi[groups], side="right")
        found.extend((int(g), times[a:b]) for g, a, b in zip(groups, lo, hi, strict=True) if b > a)
    return sorted(found, key=lambda item: item[0])


def _summarise(
    scope: str,
    key: str,
    host: str | None,
    calls: int,
    violations: int,
    observed: int,
    null: np.ndarray,
) -> Association:
    expected = float(null.mean()) if len(null) else 0.0
    p = (1 + int((null >= observed).sum())) / (len(null) + 1)
    lift = observed / expected if expected > 0 else None
    fraction: float | None = None
    critical: int | None = None
    detectable: float | None = None
    if violations > 0 and len(null):
        fraction = expected / violations
        critical = _critical_count(null, violations)
        if critical is not None and fraction > 0:
            detectable = _least_binomial_p(violations, critical, POWER) / fraction
    return Association(
        scope,
        key,
        host,
        calls,
        violations,
        observed,
        round(expected, 6),
        None if lift is None else round(lift, 6),
        round(p, 6),
        q_value=None,
        in_flight_fraction=None if fraction is None else round(fraction, 6),
        critical_count=critical,
        min_detectable_lift=None if detectable is None else round(detectable, 6),
    )


def _critical_count(null: np.ndarray, n: int) -> int | None:
    """The fewest of ``n`` onsets in windows whose p-value (as ``_summarise`` computes it from
    the shifts' counts ``null``) is at most ``ALPHA``; None when not even ``n`` would be."""
    counts = np.arange(1, n + 1)
    at_least = len(null) - np.searchsorted(np.sort(null), counts, side="left")
    significant = np.round((1 + at_least) / (len(null) + 1), 6) <= ALPHA
    return int(counts[np.argmax(significant)]) if bool(significant.any()) else None


@functools.lru_cache(maxsize=4096)
def _least_binomial_p(n: int, c: int, power: float) -> float:
    """The least p with P(Binomial(n, p) >= c) >= ``power`` (1 <= c <= n).

    Newton's method on the tail (its derivative is c C(n, c) p^(c-1) (1-p)^(n-c)), kept inside a
    bisection bracket; results are cached (episodes share their few (n, c) pairs).
    """
    if c == n:
        return float(power ** (1 / n))
    k = np.arange(c, n + 1)
    j = np.arange(1, n + 1)
    log_choose = np.concatenate(([0.0], np.cumsum(np.log((n - j + 1) / j))))
    log_density = math.log(c) + float(log_choose[c])
    log_choose = log_choose[k]
    lo, hi, p = 0.0, 1.0, c / n
    for _ in range(100):
        log_p, log_q = math.log(p), math.log1p(-p)
        excess = float(np.exp(log_choose + k * log_p + (n - k) * log_q).sum()) - power
        if excess >= 0:
            hi = p
        else:
            lo = p
        slope = math.exp(log_density + (c - 1) * log_p + (n - c) * log_q)
        step = p - excess / slope if slope > 0 else -1.0
        if abs(step - p) <= 1e-13:
            return p
        if hi - lo <= 1e-12:
            break
        p = step if lo < step < hi else (lo + hi) / 2
    return hi


def _benjamini_hochberg(items: list[Association]) -> None:
    """Fill q-values in place (BH step-up over the items' p-values)."""
    if not items:
        return
    p = np.array([a.p_value for a in items])
    order = np.argsort(p, kind="stable")
    m = len(p)
    q = np.empty(m)
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, p[i] * m / rank)
        q[i] = running
    for i, a in enumerate(items):
        object.__setattr__(a, "q_value", round(float(q[i]), 6))


@dataclass(frozen=True)
class Baseline:
    """Violation rate while a call is in flight versus while none is (per tool, and overall)."""

    tool: str
    in_flight_s: float
    idle_s: float
    violations_in_flight: int
    violations_idle: int
    rate_in_flight_per_h: float | None
    rate_idle_per_h: float | None
    ratio: float | None


def _merged(
    group: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Union of closed intervals per group: (segment group, segment lo, segment hi, group length).

    Rows must be sorted by (group, lo); segments come out the same way, disjoint within a group.
    """
    reach = pd.Series(hi).groupby(group, sort=False).cummax().to_numpy()
    new_group = np.concatenate(([True], group[1:] != group[:-1]))
    before = np.concatenate(([0], reach[:-1]))
    opens = new_group | (lo > before)  # touching intervals merge
    starts = np.flatnonzero(opens)
    seg_hi = reach[np.append(starts[1:], len(lo)) - 1]
    seg_group, seg_lo = group[starts], lo[starts]
    ends = np.flatnonzero(np.append(seg_group[1:] != seg_group[:-1], True))
    lengths = np.add.reduceat(seg_hi - seg_lo, np.append(0, ends[:-1] + 1))
    return seg_group, seg_lo, seg_hi, lengths


def baseline(
    violations: pa.Table,
    calls: pa.Table,
    *,
    before_ns: int = ASSOC_BEFORE_NS,
    after_ns: int = ASSOC_AFTER_NS,
) -> list[Baseline]:
    """Per host's active span: onsets while a call is in flight (start - before .. end + after) or not."""
    violations = onsets(violations)
    if violations.num_rows == 0 or calls.num_rows == 0:
        return []
    host, hosts = _ranks(calls.column("host"), lambda h: h)
    tool, tools = _ranks(calls.column("tool"), lambda t: t or "?")
    call_start = int_ns(calls.column("ts_start"), 0)
    end = np.maximum(int_ns(calls.column("ts_end"), NS_MIN), call_start) + after_ns
    start = call_start - before_ns
    rows = np.flatnonzero(host >= 0)
    if len(rows) == 0:
        return []
    # Interval groups: per host (in name order) "(any)" first, then each of its tools by name.
    width = len(tools) + 1
    if not bool(np.all(start[rows][1:] >= start[rows][:-1])):  # the pipeline's calls are sorted
        rows = rows[np.argsort(start[rows], kind="stable")]
    both = np.concatenate([rows, rows])
    group = np.concatenate([host[rows] * width, host[rows] * width + 1 + tool[rows]])
    order = np.argsort(group, kind="stable")
    group, both = group[order], both[order]
    firsts = _firsts(group)
    keys = group[firsts]
    span_lo = np.minimum.reduceat(start[both], firsts)
    span_hi = np.maximum.reduceat(end[both], firsts)
    seg_group, seg_lo, seg_hi, busy = _merged(group, start[both], end[both])
    seg_bounds = np.append(_firsts(seg_group), len(seg_group))
    v_host = _rank_in(violations.column("src_host"), hosts)
    v_ts = int_ns(violations.column("ts"), 0)
    acc: dict[str, list[float]] = {}
    points, span = v_ts[:0], 0
    for i, key in enumerate(keys.tolist()):
        h, t = divmod(key, width)
        if t == 0:  # a new host: its span is its "(any)" group's
            lo, hi = int(span_lo[i]), int(span_hi[i])
            mine = v_ts[v_host == h]
            points, span = mine[(mine >= lo) & (mine <= hi)], hi - lo
        inside = 0
        if len(points):
            a, b = seg_bounds[i], seg_bounds[i + 1]
            at = np.searchsorted(seg_lo[a:b], points, side="right") - 1
            inside = int(((at >= 0) & (seg_hi[a:b][np.maximum(at, 0)] >= points)).sum())
        sums = acc.setdefault("(any)" if t == 0 else tools[t - 1], [0.0, 0.0, 0, 0])
        sums[0] += int(busy[i]) / NS
        sums[1] += (span - int(busy[i])) / NS
        sums[2] += inside
        sums[3] += len(points) - inside
    out = []
    for name, (busy_s, idle, vin, vout) in sorted(acc.items()):
        rin = vin / busy_s * 3600 if busy_s > 0 else None
        rout = vout / idle * 3600 if idle > 0 else None
        ratio = rin / rout if rin is not None and rout else None
        out.append(
            Baseline(
                name,
                round(busy_s, 3),
                round(idle, 3),
                int(vin),
                int(vout),
                _r(rin),
                _r(rout),
                _r(ratio),
            )
        )
    return out


def _firsts(sorted_keys: np.ndarray) -> np.ndarray:
    """Where each run of equal values starts in a sorted array."""
    return np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])))


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
