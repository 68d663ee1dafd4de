"""Clock offsets between sources, and whether violations follow tool calls more than chance.

Offsets: every (network event, call) pair of the same sandbox within ``max_lag`` contributes its
lag (event time minus call start). Traffic caused by calls piles up just after the calls start,
so the lag histogram (the cross-correlogram) has a peak; its onset — the earliest lag at which the
peak's excess over the flat background reaches 10% — is the offset of the network clock against
the trajectory clock (a causal delay can only add to it). A bootstrap over pairs gives the
interval. Allowed traffic counts too: every flow a call causes is an anchor.

Chance: the unit is a violation conversation's onset (its first event: later events of a miner
or a tunnel are not independent draws). For each episode, the number of its sandbox's onsets
inside its calls' windows (narrow: ``ASSOC_BEFORE_NS`` before the start to ``ASSOC_AFTER_NS``
after the end, on clocks already aligned) is compared with the same count after circularly
shifting the episode's calls within the episode's own active span (shifting across idle gaps
would fake an association), giving a lift and a permutation p-value, with Benjamini-Hochberg
across episodes. A baseline table compares the onset rate while a call is in flight with the
rate while none is.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .identity import ns_or, resolve
from .join import band_join

NS = 1_000_000_000
BIN_NS = 100_000_000
MAX_LAG_NS = 120 * NS
PEAK_HALF_WIDTH_NS = 3 * NS
ONSET_SHARE = 0.10
MIN_PEAK_Z = 4.0
BOOTSTRAP = 200
DRIFT_MIN_NS = NS // 2
ASSOC_BEFORE_NS = 2 * NS
ASSOC_AFTER_NS = 5 * NS


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


def _onset(lags: np.ndarray, max_lag: int) -> tuple[float, int, float] | None:
    """(onset ns, pairs in the peak's excess, peak z-score), or None without a clear peak."""
    edges = np.arange(-max_lag, max_lag + BIN_NS, BIN_NS, dtype=np.int64)
    counts, _ = np.histogram(lags, bins=edges)
    if counts.sum() == 0:
        return None
    width = max(int(NS // BIN_NS), 1)
    smooth = np.convolve(counts, np.ones(width), mode="same")
    peak = int(np.argmax(smooth))
    background = float(np.median(counts))
    half = int(PEAK_HALF_WIDTH_NS // BIN_NS)
    lo, hi = max(peak - half, 0), min(peak + half + 1, len(counts))
    window = counts[lo:hi].astype(float)
    expected = background * len(window)
    excess = np.clip(window - background, 0, None)
    total = float(excess.sum())
    z = (float(window.sum()) - expected) / np.sqrt(max(expected, 1.0))
    if total <= 0:
        return None
    cumulative = np.cumsum(excess)
    first = int(np.searchsorted(cumulative, ONSET_SHARE * total))
    onset = float(edges[lo + first]) + BIN_NS / 2
    return onset, round(total), float(z)


def estimate_offset(
    lags_ns: np.ndarray,
    times_ns: np.ndarray | None = None,
    *,
    max_lag_ns: int = MAX_LAG_NS,
    seed: int = 0,
) -> tuple[float | None, float | None, float | None, int, float | None, float | None, str]:
    """Offset (s), CI low/high (s), peak pairs, peak z, drift (ppm) and a note, from pair lags."""
    lags = np.asarray(lags_ns, dtype=np.int64)
    lags = lags[np.abs(lags) <= max_lag_ns]
    if len(lags) < 10:
        return None, None, None, 0, None, None, f"too few pairs ({len(lags)}) to estimate"
    found = _onset(lags, max_lag_ns)
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
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(BOOTSTRAP):
        sample = lags[rng.integers(0, len(lags), len(lags))]
        again = _onset(sample, max_lag_ns)
        if again is not None:
            boots.append(again[0])
    low, high = (np.percentile(boots, [2.5, 97.5]) / NS) if boots else (None, None)
    drift = None
    if times_ns is not None and len(lags) >= 200:
        times = np.asarray(times_ns, dtype=np.int64)[
            np.abs(np.asarray(lags_ns, dtype=np.int64)) <= max_lag_ns
        ]
        order = np.argsort(times, kind="stable")
        xs, ys = [], []
        for part in np.array_split(order, 4):
            got = _onset(lags[part], max_lag_ns)
            if got is not None and got[2] >= MIN_PEAK_Z:
                xs.append(float(np.median(times[part])))
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


def offset_pairs(
    events: pa.Table,
    calls: pa.Table,
    identity: pa.Table,
    *,
    max_lag_ns: int = MAX_LAG_NS,
    max_events: int = 200_000,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(event rows, call rows, lags) for same-sandbox pairs within ``max_lag_ns``.

    Events are all network events (allowed traffic included), evenly thinned to ``max_events``.
    Without an identity map every pair within the window counts (much noisier).
    """
    n = events.num_rows
    rows = np.arange(n) if n <= max_events else np.linspace(0, n - 1, max_events).astype(np.int64)
    picked = events.take(pa.array(rows))
    ts = ns_or(picked.column("ts"), 0)
    if identity.num_rows:
        hosts, _ = resolve(identity, picked.column("src_ip").to_pylist(), ts)
        call_hosts = calls.column("host").to_pylist()
    else:
        hosts = ["*"] * len(ts)
        call_hosts = ["*"] * calls.num_rows
    start = ns_or(calls.column("ts_start"), 0)
    c, e = band_join(call_hosts, start, start, hosts, ts, before_ns=max_lag_ns, after_ns=max_lag_ns)
    return rows[e], c, ts[e] - start[c]


def estimate_offsets(
    events: pa.Table, calls: pa.Table, identity: pa.Table, *, max_lag_ns: int = MAX_LAG_NS
) -> list[OffsetEstimate]:
    """One estimate per (network source format, trajectory source format) with pairs."""
    if events.num_rows == 0 or calls.num_rows == 0:
        return []
    ev_rows, call_rows, lags = offset_pairs(events, calls, identity, max_lag_ns=max_lag_ns)
    ev_fmt = np.array(events.column("source_format").to_pylist(), dtype=object)
    call_fmt = np.array(calls.column("source_format").to_pylist(), dtype=object)
    ev_ts = ns_or(events.column("ts"), 0)
    out = []
    for net in sorted(set(ev_fmt[ev_rows])) if len(ev_rows) else []:
        for agent in sorted(set(call_fmt[call_rows])):
            mask = (ev_fmt[ev_rows] == net) & (call_fmt[call_rows] == agent)
            seed = int(hashlib.sha256(f"{net}|{agent}".encode()).hexdigest()[:8], 16)
            offset, low, high, peak, z, drift, note = estimate_offset(
                lags[mask], ev_ts[ev_rows[mask]], max_lag_ns=max_lag_ns, seed=seed
            )
            out.append(
                OffsetEstimate(net, agent, offset, low, high, int(mask.sum()), peak, z, drift, note)
            )
    return out


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
    formats = events.column("source_format").to_pylist()
    shift = np.array([round(offsets_s.get(f, 0.0) * NS) for f in formats], dtype=np.int64)
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
    """Observed violations inside call windows versus a circular-shift null."""

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


def _covered(points: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Which points fall inside any [lo, hi] interval."""
    if len(lo) == 0 or len(points) == 0:
        return np.zeros(len(points), dtype=bool)
    order = np.argsort(lo, kind="stable")
    lo, hi = lo[order], hi[order]
    running = np.maximum.accumulate(hi)
    idx = np.searchsorted(lo, points, side="right") - 1
    ok = idx >= 0
    result = np.zeros(len(points), dtype=bool)
    result[ok] = running[idx[ok]] >= points[ok]
    return result


def onsets(violations: pa.Table) -> pa.Table:
    """The first event of each conversation (all rows when there are no conversations)."""
    if "conversation_seq" not in violations.column_names:
        return violations
    return violations.filter(pc.equal(violations.column("conversation_seq"), 1))


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
    v_host = np.array(violations.column("src_host").to_pylist(), dtype=object)
    v_ts = ns_or(violations.column("ts"), 0)
    c = {name: calls.column(name).to_pylist() for name in ("episode_id", "run_id", "tool", "host")}
    start = ns_or(calls.column("ts_start"), 0)
    end = np.maximum(ns_or(calls.column("ts_end"), np.iinfo(np.int64).min), start)
    episodes: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, (ep, host) in enumerate(zip(c["episode_id"], c["host"], strict=True)):
        if host is not None:
            episodes[(str(ep), str(host))].append(i)
    per_episode: list[Association] = []
    run_obs: dict[str, np.ndarray] = {}
    tool_obs: dict[str, np.ndarray] = {}
    run_meta: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    tool_meta: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for (episode, host), rows in sorted(episodes.items()):
        idx = np.array(rows)
        s, e = start[idx], end[idx]
        span_lo, span_hi = int(s.min()), int(e.max())
        length = max(span_hi - span_lo, 1)
        in_span = (v_host == host) & (v_ts >= span_lo) & (v_ts <= span_hi)
        points = v_ts[in_span]
        seed = int(hashlib.sha256(f"{episode}|{host}".encode()).hexdigest()[:8], 16)
        shifts = np.random.default_rng(seed).integers(0, length, permutations)
        draws = np.zeros((permutations + 1, 1), dtype=np.int64)
        tools = np.array([c["tool"][r] or "?" for r in rows], dtype=object)
        tool_draws = {t: np.zeros(permutations + 1, dtype=np.int64) for t in set(tools)}
        for k in range(permutations + 1):
            delta = 0 if k == 0 else int(shifts[k - 1])
            s2 = span_lo + (s - span_lo + delta) % length
            e2 = s2 + (e - s)
            draws[k, 0] = _covered(points, s2 - before_ns, e2 + after_ns).sum()
            for t in tool_draws:
                m = tools == t
                tool_draws[t][k] = _covered(points, s2[m] - before_ns, e2[m] + after_ns).sum()
        observed, null = int(draws[0, 0]), draws[1:, 0]
        run = str(c["run_id"][rows[0]])
        run_obs[run] = run_obs.get(run, np.zeros(permutations + 1, dtype=np.int64)) + draws[:, 0]
        run_meta[run][0] += len(rows)
        run_meta[run][1] += len(points)
        for t, values in tool_draws.items():
            tool_obs[t] = tool_obs.get(t, np.zeros(permutations + 1, dtype=np.int64)) + values
            tool_meta[t][0] += int((tools == t).sum())
            tool_meta[t][1] += len(points)
        if len(points):
            per_episode.append(
                _summarise("episode", episode, host, len(rows), len(points), observed, null)
            )
    _benjamini_hochberg(per_episode)
    runs = [
        _summarise("run", r, None, m[0], m[1], int(run_obs[r][0]), run_obs[r][1:])
        for r, m in sorted(run_meta.items())
    ]
    tools_out = [
        _summarise("tool", t, None, m[0], m[1], int(tool_obs[t][0]), tool_obs[t][1:])
        for t, m in sorted(tool_meta.items())
    ]
    _benjamini_hochberg(tools_out)
    return runs + tools_out + per_episode


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
    )


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


def _union_length(lo: np.ndarray, hi: np.ndarray) -> int:
    if len(lo) == 0:
        return 0
    order = np.argsort(lo, kind="stable")
    total, cur_lo, cur_hi = 0, int(lo[order[0]]), int(hi[order[0]])
    for i in order[1:]:
        a, b = int(lo[i]), int(hi[i])
        if a > cur_hi:
            total += cur_hi - cur_lo
            cur_lo, cur_hi = a, b
        else:
            cur_hi = max(cur_hi, b)
    return total + cur_hi - cur_lo


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
    v_host = np.array(violations.column("src_host").to_pylist(), dtype=object)
    v_ts = ns_or(violations.column("ts"), 0)
    hosts = np.array(calls.column("host").to_pylist(), dtype=object)
    tools = np.array([t or "?" for t in calls.column("tool").to_pylist()], dtype=object)
    call_start = ns_or(calls.column("ts_start"), 0)
    end = np.maximum(ns_or(calls.column("ts_end"), np.iinfo(np.int64).min), call_start) + after_ns
    start = call_start - before_ns
    acc: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0, 0])
    for host in sorted({h for h in hosts if h is not None}):
        m = hosts == host
        span_lo, span_hi = int(start[m].min()), int(end[m].max())
        points = v_ts[(v_host == host) & (v_ts >= span_lo) & (v_ts <= span_hi)]
        span = span_hi - span_lo
        for tool in ["(any)", *sorted(set(tools[m]))]:
            mt = m if tool == "(any)" else m & (tools == tool)
            busy = _union_length(start[mt], end[mt])
            inside = int(_covered(points, start[mt], end[mt]).sum())
            a = acc[tool]
            a[0] += busy / NS
            a[1] += (span - busy) / NS
            a[2] += inside
            a[3] += len(points) - inside
    out = []
    for tool, (busy_s, idle, vin, vout) in sorted(acc.items()):
        rin = vin / busy_s * 3600 if busy_s > 0 else None
        rout = vout / idle * 3600 if idle > 0 else None
        ratio = rin / rout if rin is not None and rout else None
        out.append(
            Baseline(
                tool,
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


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
