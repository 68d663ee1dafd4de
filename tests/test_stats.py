"""Clock offsets, association with chance, and attribution accuracy on synthetic incidents."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import astuple
from pathlib import Path
from unittest.mock import patch

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from correlate import stats
from correlate.identity import holders
from correlate.join import band_join
from correlate.pipeline import Result, RunOptions, analyse, run
from correlate.schema import HOSTS as HOSTS_SCHEMA
from correlate.schema import NETWORK_EVENTS, TOOL_CALLS, from_columns, int_ns
from correlate.stats import apply_offsets, estimate_offset
from correlate.synthetic import incident, measure

NS = 1_000_000_000


def test_offset_is_the_onset_of_the_lag_peak_over_a_flat_background() -> None:
    rng = np.random.default_rng(1)
    background = rng.integers(-120 * NS, 120 * NS, 4000)
    caused = (
        -6.3 + rng.uniform(0.05, 0.8, 800)
    ) * NS  # clock -6.3 s, effects 50-800 ms after the call
    offset, low, high, peak, z, _, note = estimate_offset(
        np.concatenate([background, caused.astype(np.int64)])
    )
    assert offset is not None and abs(offset - -6.3) < 0.3, note
    assert low is not None and high is not None and low <= offset <= high
    assert peak > 500 and z is not None and z > 10


def test_no_peak_means_no_offset() -> None:
    rng = np.random.default_rng(2)
    offset, *_, note = estimate_offset(rng.integers(-120 * NS, 120 * NS, 3000))
    assert offset is None
    assert "no clear peak" in note


def test_too_few_pairs_means_no_offset() -> None:
    offset, *_, note = estimate_offset(np.array([0, NS, 2 * NS]))
    assert offset is None and "too few pairs" in note


def test_applying_an_offset_moves_only_that_source_and_records_it() -> None:
    loaded, _ = incident(seed=3, sandboxes=4, hours=0.2, plants=4, strays=0)
    shifted = apply_offsets(loaded.events, {"synthetic_firewall": -4.0, "other": 99.0})
    before = loaded.events.column("ts").cast("int64").to_numpy()
    after = shifted.column("ts").cast("int64").to_numpy()
    assert (after - before == 4 * NS).all()
    assert set(shifted.column("clock_offset_ns").to_pylist()) == {-4 * NS}


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_with_identity_every_planted_conversation_is_attributed_right_and_the_clock_found(
    seed: int,
) -> None:
    loaded, truth = incident(
        seed=seed, sandboxes=24, hours=0.75, offset_s=-3.0 + seed % 3 * 2.5, plants=16
    )
    result = analyse(loaded, RunOptions(offset_auto=True))
    accuracy = measure(
        result.findings,
        result.candidates,
        result.attributions,
        truth,
        result.applied_offsets.get("synthetic_firewall"),
    )
    assert accuracy.precision >= 0.99 and accuracy.recall >= 0.99, accuracy
    assert accuracy.offset_error_s is not None and accuracy.offset_error_s < 0.5, accuracy


@pytest.mark.parametrize("seed", [21, 22])
def test_without_identity_a_call_naming_the_destination_ranks_first(seed: int) -> None:
    loaded, truth = incident(seed=seed, sandboxes=24, hours=0.75, plants=16, identity=False)
    result = analyse(loaded, RunOptions(offset_auto=True))
    assert result.identity_mode == "time-only"
    accuracy = measure(result.findings, result.candidates, result.attributions, truth, None)
    assert accuracy.named_top1 is not None and accuracy.named_top1 >= 0.9, accuracy


def test_stray_hosts_are_never_attributed() -> None:
    loaded, _ = incident(seed=5, sandboxes=12, hours=0.5, plants=8, strays=6)
    result = analyse(loaded, RunOptions(offset_auto=True))
    strays = [f for f in result.findings.to_pylist() if f["src_ip"].startswith("10.99.")]
    assert strays and all(f["call_id"] is None and f["confidence"] == "none" for f in strays)


def test_association_is_far_above_chance_with_a_causal_link_and_absent_without() -> None:
    loaded, _ = incident(seed=7, sandboxes=24, hours=1.0, plants=24)
    causal = analyse(loaded, RunOptions(offset_auto=True))
    run = next(a for a in causal.statistics(199)[0] if a.scope == "run")
    assert run.p_value <= 0.01 and run.lift is not None and run.lift > 1.5
    loaded, _ = incident(seed=7, sandboxes=24, hours=1.0, plants=24, causal=False)
    null = analyse(loaded, RunOptions(offsets=(("synthetic_firewall", -4.0),)))
    run = next(a for a in null.statistics(199)[0] if a.scope == "run")
    assert run.p_value > 0.05
    assert run.lift is not None and 0.5 < run.lift < 1.6


def test_association_q_values_are_benjamini_hochberg() -> None:
    loaded, _ = incident(seed=8, sandboxes=12, hours=1.0, plants=12)
    associations, baselines = analyse(loaded, RunOptions(offset_auto=True)).statistics(99)
    episodes = sorted((a for a in associations if a.scope == "episode"), key=lambda a: a.p_value)
    m = len(episodes)
    assert m > 1
    for rank, a in enumerate(episodes, start=1):
        assert a.q_value is not None and a.q_value >= a.p_value - 1e-9
        assert a.q_value <= min(1.0, a.p_value * m / rank) + 1e-9
    overall = next(b for b in baselines if b.tool == "(any)")
    assert overall.violations_in_flight + overall.violations_idle > 0


# --- pinned on the sample incident ------------------------------------------------------------
# Computed with the per-episode loops (before the statistics were vectorised): the vectorised code
# must give exactly these, as ``correlate stats`` (--offset auto) and the Parquet report (clocks
# as given) compute them.

SAMPLE = Path(__file__).resolve().parent.parent / "sample_logs" / "rome_incident"

SAMPLE_OFFSET = (
    "alibaba_cfw",
    "otlp_json",
    -4.05,
    -4.15,
    -4.05,
    7475,
    687,
    45.90564092627897,
    None,
    "onset of the lag-histogram peak",
)

SAMPLE_STATISTICS = {
    "auto": (
        [
            ("run", "rome-rl-0423", None, 2199, 12, 12, 4.462462, 2.689098, 0.003, None),
            ("tool", "read_file", None, 236, 12, 0, 0.258258, 0.0, 1.0, 1.0),
            ("tool", "run_shell_command", None, 1790, 12, 12, 4.042042, 2.968796, 0.003, 0.009),
            ("tool", "write_file", None, 173, 12, 0, 0.17017, 0.0, 1.0, 1.0),
            ("episode", "ep-0423-sbx-03-1", "sbx-03", 37, 1, 1, 0.426426, 2.34507, 0.427, 0.427),
            ("episode", "ep-0423-sbx-07-2", "sbx-07", 103, 1, 1, 0.406406, 2.460591, 0.407, 0.427),
            ("episode", "ep-0423-sbx-12-3", "sbx-12", 38, 10, 10, 3.62963, 2.755102, 0.026, 0.078),
        ],
        [
            ("(any)", 22692.434, 33496.763, 12, 0, 1.903718, 0.0, None),
            ("read_file", 1732.796, 54456.401, 0, 12, 0.0, 0.793295, 0.0),
            ("run_shell_command", 19705.892, 36483.305, 12, 0, 2.192238, 0.0, None),
            ("write_file", 1281.658, 54907.539, 0, 12, 0.0, 0.786777, 0.0),
        ],
    ),
    "report": (
        [
            ("run", "rome-rl-0423", None, 2199, 12, 6, 4.395395, 1.365065, 0.37, None),
            ("tool", "read_file", None, 236, 12, 0, 0.291291, 0.0, 1.0, 1.0),
            ("tool", "run_shell_command", None, 1790, 12, 6, 3.920921, 1.530253, 0.321, 0.963),
            ("tool", "write_file", None, 173, 12, 0, 0.196196, 0.0, 1.0, 1.0),
            ("episode", "ep-0423-sbx-03-1", "sbx-03", 37, 1, 0, 0.446446, 0.0, 1.0, 1.0),
            ("episode", "ep-0423-sbx-07-2", "sbx-07", 103, 1, 0, 0.408408, 0.0, 1.0, 1.0),
            ("episode", "ep-0423-sbx-12-3", "sbx-12", 38, 10, 6, 3.540541, 1.694656, 0.315, 0.945),
        ],
        [
            ("(any)", 22692.434, 33496.763, 6, 6, 0.951859, 0.644838, 1.47612),
            ("read_file", 1732.796, 54456.401, 0, 12, 0.0, 0.793295, 0.0),
            ("run_shell_command", 19705.892, 36483.305, 6, 6, 1.096119, 0.592052, 1.851391),
            ("write_file", 1281.658, 54907.539, 0, 12, 0.0, 0.786777, 0.0),
        ],
    ),
}


@pytest.fixture(scope="module")
def sample_results() -> dict[str, Result]:
    return {
        "auto": run([str(SAMPLE)], RunOptions(offset_auto=True)),
        "report": run([str(SAMPLE)], RunOptions()),
    }


@pytest.mark.parametrize("options", ["auto", "report"])
def test_sample_statistics_are_pinned(options: str, sample_results: dict[str, Result]) -> None:
    result = sample_results[options]
    associations, baselines = result.statistics(999)
    expected_associations, expected_baselines = SAMPLE_STATISTICS[options]
    # the first ten fields; the test's power (in flight, min lift) is pinned in test_stats_power
    assert [astuple(a)[:10] for a in associations] == expected_associations
    assert [astuple(b) for b in baselines] == expected_baselines


def test_sample_offset_estimate_is_pinned(sample_results: dict[str, Result]) -> None:
    for result in sample_results.values():
        assert [astuple(e) for e in result.offset_estimates] == [SAMPLE_OFFSET]
    assert sample_results["auto"].applied_offsets == {"alibaba_cfw": -4.05}


# --- the oracle: the loops the vectorised statistics replaced, verbatim -----------------------


def old_covered(points: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
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


def old_association(
    violations: pa.Table,
    calls: pa.Table,
    *,
    before_ns: int = stats.ASSOC_BEFORE_NS,
    after_ns: int = stats.ASSOC_AFTER_NS,
    permutations: int = 999,
) -> list[stats.Association]:
    violations = stats.onsets(violations)
    if violations.num_rows == 0 or calls.num_rows == 0:
        return []
    v_host = np.array(violations.column("src_host").to_pylist(), dtype=object)
    v_ts = int_ns(violations.column("ts"), 0)
    c = {name: calls.column(name).to_pylist() for name in ("episode_id", "run_id", "tool", "host")}
    start = int_ns(calls.column("ts_start"), 0)
    end = np.maximum(int_ns(calls.column("ts_end"), np.iinfo(np.int64).min), start)
    episodes: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, (ep, host) in enumerate(zip(c["episode_id"], c["host"], strict=True)):
        if host is not None:
            episodes[(str(ep), str(host))].append(i)
    per_episode: list[stats.Association] = []
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
            draws[k, 0] = old_covered(points, s2 - before_ns, e2 + after_ns).sum()
            for t in tool_draws:
                m = tools == t
                tool_draws[t][k] = old_covered(points, s2[m] - before_ns, e2[m] + after_ns).sum()
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
                stats._summarise("episode", episode, host, len(rows), len(points), observed, null)
            )
    stats._benjamini_hochberg(per_episode)
    runs = [
        stats._summarise("run", r, None, m[0], m[1], int(run_obs[r][0]), run_obs[r][1:])
        for r, m in sorted(run_meta.items())
    ]
    tools_out = [
        stats._summarise("tool", t, None, m[0], m[1], int(tool_obs[t][0]), tool_obs[t][1:])
        for t, m in sorted(tool_meta.items())
    ]
    stats._benjamini_hochberg(tools_out)
    return runs + tools_out + per_episode


def old_union_length(lo: np.ndarray, hi: np.ndarray) -> int:
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


def old_baseline(
    violations: pa.Table,
    calls: pa.Table,
    *,
    before_ns: int = stats.ASSOC_BEFORE_NS,
    after_ns: int = stats.ASSOC_AFTER_NS,
) -> list[stats.Baseline]:
    violations = stats.onsets(violations)
    if violations.num_rows == 0 or calls.num_rows == 0:
        return []
    v_host = np.array(violations.column("src_host").to_pylist(), dtype=object)
    v_ts = int_ns(violations.column("ts"), 0)
    hosts = np.array(calls.column("host").to_pylist(), dtype=object)
    tools = np.array([t or "?" for t in calls.column("tool").to_pylist()], dtype=object)
    call_start = int_ns(calls.column("ts_start"), 0)
    end = np.maximum(int_ns(calls.column("ts_end"), np.iinfo(np.int64).min), call_start) + after_ns
    start = call_start - before_ns
    acc: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0, 0])
    for host in sorted({h for h in hosts if h is not None}):
        m = hosts == host
        span_lo, span_hi = int(start[m].min()), int(end[m].max())
        points = v_ts[(v_host == host) & (v_ts >= span_lo) & (v_ts <= span_hi)]
        span = span_hi - span_lo
        for tool in ["(any)", *sorted(set(tools[m]))]:
            mt = m if tool == "(any)" else m & (tools == tool)
            busy = old_union_length(start[mt], end[mt])
            inside = int(old_covered(points, start[mt], end[mt]).sum())
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
            stats.Baseline(
                tool,
                round(busy_s, 3),
                round(idle, 3),
                int(vin),
                int(vout),
                stats._r(rin),
                stats._r(rout),
                stats._r(ratio),
            )
        )
    return out


def old_onset(
    lags: np.ndarray, max_lag: int, weights: np.ndarray | None = None, noise: float = 0.0
) -> tuple[float, int, float] | None:
    edges = np.arange(-max_lag, max_lag + stats.BIN_NS, stats.BIN_NS, dtype=np.int64)
    counts, _ = np.histogram(lags, bins=edges, weights=weights)
    if counts.sum() == 0:
        return None
    width = max(int(NS // stats.BIN_NS), 1)
    smooth = np.convolve(counts, np.ones(width), mode="same")
    peak = int(np.argmax(smooth))
    background = float(np.median(counts))
    half = int(stats.PEAK_HALF_WIDTH_NS // stats.BIN_NS)
    lo, hi = max(peak - half, 0), min(peak + half + 1, len(counts))
    window = counts[lo:hi].astype(float)
    if noise:  # shared addresses: at least the mean bin outside the window
        outside = (counts.sum() - window.sum()) / max(len(counts) - len(window), 1)
        background = max(background, float(outside))
    expected = background * len(window)
    excess = np.clip(window - background, 0, None)
    total = float(excess.sum())
    z = (float(window.sum()) - expected) / np.sqrt(max(expected, 1.0))
    if total <= 0:
        return None
    # shared addresses: the onset counts only the excess beyond the background's noise
    above = np.clip(window - (background + noise * np.sqrt(background)), 0, None)
    if above.sum() <= 0:
        return None
    cumulative = np.cumsum(above)
    first = int(np.searchsorted(cumulative, stats.ONSET_SHARE * float(above.sum())))
    onset = float(edges[lo + first]) + stats.BIN_NS / 2
    return onset, round(total), float(z)


def old_weights(shared_by: np.ndarray | None) -> tuple[np.ndarray | None, float]:
    """Pair weights (1/k, scaled to effective pairs; None when all equal) and the noise level."""
    if shared_by is None or not (np.asarray(shared_by) > 1).any():
        return None, 0.0
    k = np.asarray(shared_by)
    if (k == k[0]).all():
        return None, stats.SHARED_NOISE_SIGMAS
    w = 1.0 / k
    w = w * (w.sum() / np.square(w).sum())
    return np.round(w * stats.WEIGHT_QUANTUM) / stats.WEIGHT_QUANTUM, stats.SHARED_NOISE_SIGMAS


def old_estimate_offset(
    lags_ns: np.ndarray,
    times_ns: np.ndarray | None = None,
    *,
    max_lag_ns: int = stats.MAX_LAG_NS,
    seed: int = 0,
    bootstrap: bool = True,
    shared_by: np.ndarray | None = None,
) -> tuple[float | None, float | None, float | None, int, float | None, float | None, str]:
    lags = np.asarray(lags_ns, dtype=np.int64)
    near = np.abs(lags) <= max_lag_ns
    lags = lags[near]
    if len(lags) < 10:
        return None, None, None, 0, None, None, f"too few pairs ({len(lags)}) to estimate"
    w, noise = old_weights(None if shared_by is None else np.asarray(shared_by)[near])
    found = old_onset(lags, max_lag_ns, w, noise)
    if found is None or found[2] < stats.MIN_PEAK_Z:
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
    for _ in range(stats.BOOTSTRAP if bootstrap else 0):
        pick = rng.integers(0, len(lags), len(lags))
        again = old_onset(lags[pick], max_lag_ns, None if w is None else w[pick], noise)
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
            got = old_onset(lags[part], max_lag_ns, None if w is None else w[part], noise)
            if got is not None and got[2] >= stats.MIN_PEAK_Z:
                xs.append(float(np.median(times[part])))
                ys.append(got[0])
        if len(xs) >= 3 and max(xs) > min(xs):
            slope = float(np.polyfit(np.array(xs) - xs[0], np.array(ys), 1)[0])
            if abs(slope) * (max(xs) - min(xs)) >= stats.DRIFT_MIN_NS:
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


def old_shared_pairs(
    events: pa.Table,
    calls: pa.Table,
    identity: pa.Table,
    *,
    max_lag_ns: int = stats.MAX_LAG_NS,
    max_events: int = 200_000,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(event rows, call rows, lags, hosts the event pairs with): the band join on every host
    holding the event's address (with calls), one join key per holder, by (event, call)."""
    n = events.num_rows
    rows = np.arange(n) if n <= max_events else np.linspace(0, n - 1, max_events).astype(np.int64)
    picked = events.take(pa.array(rows))
    ts = int_ns(picked.column("ts"), 0)
    if identity.num_rows:
        call_hosts = calls.column("host").to_pylist()
        with_calls = {h for h in call_hosts if h is not None}
        held = [
            [h for h in names if h in with_calls]
            for names in holders(identity, picked.column("src_ip").to_pylist(), ts)
        ]
        # at most max_events (event, holder) rows: thin the events evenly until they fit
        while sum(len(h) for h in held) > max_events and len(ts) > 1:
            total = sum(len(h) for h in held)
            keep = np.unique(
                np.linspace(0, len(ts) - 1, max(len(ts) * max_events // total, 1)).astype(np.int64)
            )
            rows, ts, held = rows[keep], ts[keep], [held[i] for i in keep]
    else:
        held = [["*"] for _ in ts]
        call_hosts = ["*"] * calls.num_rows
    event_of = np.array([i for i, names in enumerate(held) for _ in names], dtype=np.int64)
    keys = [h for names in held for h in names]
    start = int_ns(calls.column("ts_start"), 0)
    c, e = band_join(
        call_hosts, start, start, keys, ts[event_of], before_ns=max_lag_ns, after_ns=max_lag_ns
    )
    e = event_of[e]
    order = np.lexsort((c, e))
    c, e = c[order], e[order]
    shared_by = np.array([len(held[i]) for i in e], dtype=np.int64)
    return rows[e], c, ts[e] - start[c], shared_by


def old_offset_pairs(
    events: pa.Table,
    calls: pa.Table,
    identity: pa.Table,
    *,
    max_lag_ns: int = stats.MAX_LAG_NS,
    max_events: int = 200_000,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ev_rows, call_rows, lags, _ = old_shared_pairs(
        events, calls, identity, max_lag_ns=max_lag_ns, max_events=max_events
    )
    return ev_rows, call_rows, lags


def old_estimate_offsets(
    events: pa.Table, calls: pa.Table, identity: pa.Table, *, max_lag_ns: int = stats.MAX_LAG_NS
) -> list[stats.OffsetEstimate]:
    if events.num_rows == 0 or calls.num_rows == 0:
        return []
    ev_rows, call_rows, lags, shared_by = old_shared_pairs(
        events, calls, identity, max_lag_ns=max_lag_ns
    )
    ev_fmt = np.array(events.column("source_format").to_pylist(), dtype=object)
    call_fmt = np.array(calls.column("source_format").to_pylist(), dtype=object)
    ev_ts = int_ns(events.column("ts"), 0)
    out = []
    for net in sorted(set(ev_fmt[ev_rows])) if len(ev_rows) else []:
        for agent in sorted(set(call_fmt[call_rows])):
            mask = (ev_fmt[ev_rows] == net) & (call_fmt[call_rows] == agent)
            seed = int(hashlib.sha256(f"{net}|{agent}".encode()).hexdigest()[:8], 16)
            offset, low, high, peak, z, drift, note = old_estimate_offset(
                lags[mask],
                ev_ts[ev_rows[mask]],
                max_lag_ns=max_lag_ns,
                seed=seed,
                shared_by=shared_by[mask],
            )
            out.append(
                stats.OffsetEstimate(
                    net, agent, offset, low, high, int(mask.sum()), peak, z, drift, note
                )
            )
    return out


# --- the vectorised statistics against the oracle ---------------------------------------------

HOSTS = ["h1", "h2", "h3", None]
NAMES = ["e1", "e2", "None", "", None]  # "None" and null are the same episode/run (str(None))
TOOLS = ["a", "b", "?", "", None]  # "", null and "?" are the same tool


@st.composite
def incidents(draw: st.DrawFn) -> tuple[pa.Table, pa.Table]:
    """Calls and violation onsets on a coarse clock: ties, wrap-arounds, nulls, shared hosts."""
    n = draw(st.integers(1, 24))
    starts = draw(st.lists(st.integers(-1, 60), min_size=n, max_size=n))
    lengths = draw(st.lists(st.integers(-4, 15), min_size=n, max_size=n))
    start = [None if s < 0 else s for s in starts]
    end = [None if d < -3 else (s or 0) + d for s, d in zip(start, lengths, strict=True)]
    calls = from_columns(
        {
            "ts_start": start,
            "ts_end": end,
            "host": draw(st.lists(st.sampled_from(HOSTS), min_size=n, max_size=n)),
            "episode_id": draw(st.lists(st.sampled_from(NAMES[:3]), min_size=n, max_size=n)),
            "run_id": draw(st.lists(st.sampled_from(NAMES), min_size=n, max_size=n)),
            "tool": draw(st.lists(st.sampled_from(TOOLS), min_size=n, max_size=n)),
        },
        TOOL_CALLS,
    )
    if draw(st.booleans()):  # as the pipeline hands them: by start
        calls = calls.sort_by([("ts_start", "ascending")])
    m = draw(st.integers(0, 12))
    violations = from_columns(
        {"ts": draw(st.lists(st.integers(-5, 75), min_size=m, max_size=m))}, NETWORK_EVENTS
    )
    violations = violations.append_column(
        "src_host",
        pa.array(
            draw(st.lists(st.sampled_from(["h1", "h2", "h4", None]), min_size=m, max_size=m)),
            pa.string(),
        ),
    )
    if draw(st.booleans()):
        seq = draw(st.lists(st.sampled_from([1, 1, 2]), min_size=m, max_size=m))
        violations = violations.append_column("conversation_seq", pa.array(seq, pa.int64()))
    return violations, calls


@settings(max_examples=300)
@given(
    incidents(),
    st.integers(0, 6),
    st.integers(0, 6),
    st.integers(0, 40),
    st.sampled_from([1, 7, 1 << 20]),
)
def test_association_is_exactly_the_per_shift_loop(
    incident: tuple[pa.Table, pa.Table], before: int, after: int, permutations: int, chunk: int
) -> None:
    violations, calls = incident
    window = dict(before_ns=before, after_ns=after, permutations=permutations)
    with patch.object(stats, "CHUNK_CELLS", chunk):
        got = stats.association(violations, calls, **window)
    assert [astuple(a) for a in got] == [
        astuple(a) for a in old_association(violations, calls, **window)
    ]


@settings(max_examples=300)
@given(incidents(), st.integers(0, 6), st.integers(0, 6))
def test_baseline_is_exactly_the_per_host_loop(
    incident: tuple[pa.Table, pa.Table], before: int, after: int
) -> None:
    violations, calls = incident
    window = dict(before_ns=before, after_ns=after)
    assert [astuple(b) for b in stats.baseline(violations, calls, **window)] == [
        astuple(b) for b in old_baseline(violations, calls, **window)
    ]


def lag_sample(seed: int, background: int, caused: int, offset_s: float) -> np.ndarray:
    """Flat background, a causal peak after ``offset_s``, some lags out of range, some on edges."""
    rng = np.random.default_rng(seed)
    lags = np.concatenate(
        [
            rng.integers(-120 * NS, 120 * NS, background),
            ((offset_s + rng.uniform(0.05, 0.8, caused)) * NS).astype(np.int64),
            rng.integers(-13, 13, background // 50) * 10 * NS,  # on bin edges, +-120 s included
            rng.integers(121 * NS, 200 * NS, background // 50),  # dropped
        ]
    )
    return rng.permutation(lags)


@settings(max_examples=25)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(0, 3000),
    st.integers(0, 600),
    st.floats(-10, 10),
    st.sampled_from(["none", "sorted", "shuffled", "coarse"]),
)
def test_offset_estimate_is_exactly_the_histogram_loop_up_to_the_exact_bootstrap_size(
    seed: int, background: int, caused: int, offset_s: float, clock: str
) -> None:
    lags = lag_sample(seed, background, caused, offset_s)
    times = None
    if clock != "none":
        times = np.random.default_rng(seed + 1).integers(0, 3600 * NS, len(lags))
        times = {"sorted": np.sort(times), "shuffled": times, "coarse": times // (600 * NS)}[clock]
    assert len(lags) <= stats.EXACT_BOOTSTRAP_PAIRS
    assert stats.estimate_offset(lags, times, seed=seed) == old_estimate_offset(
        lags, times, seed=seed
    )


def test_above_the_exact_bootstrap_size_only_the_bootstrap_draws_differ() -> None:
    lags = lag_sample(4, 30_000, 3_000, -2.7)
    times = np.sort(np.random.default_rng(5).integers(0, 3600 * NS, len(lags)))
    assert len(lags) > stats.EXACT_BOOTSTRAP_PAIRS
    offset, low, high, *rest = stats.estimate_offset(lags, times, seed=9)
    old_offset, _, _, *old_rest = old_estimate_offset(lags, times, seed=9, bootstrap=False)
    assert (offset, rest) == (old_offset, old_rest)
    assert offset is not None and low is not None and high is not None
    assert low <= offset <= high and high - low < 0.5


@settings(max_examples=25)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(0, 3000),
    st.integers(0, 600),
    st.floats(-10, 10),
    st.sampled_from(["alone", "uniform", "mixed"]),
)
def test_shared_offset_estimate_is_exactly_the_weighted_histogram_loop(
    seed: int, background: int, caused: int, offset_s: float, sharing: str
) -> None:
    """Pairs from addresses k hosts share weigh 1/k, and the onset discounts the noise."""
    lags = lag_sample(seed, background, caused, offset_s)
    rng = np.random.default_rng(seed + 2)
    times = np.sort(rng.integers(0, 3600 * NS, len(lags)))
    shared_by = {
        "alone": np.ones(len(lags), dtype=np.int64),
        "uniform": np.full(len(lags), 4, dtype=np.int64),
        "mixed": rng.choice(np.array([1, 2, 4, 16]), len(lags)),
    }[sharing]
    got = stats.estimate_offset(lags, times, seed=seed, shared_by=shared_by)
    assert got == old_estimate_offset(lags, times, seed=seed, shared_by=shared_by)
    if sharing == "alone":
        assert got == stats.estimate_offset(lags, times, seed=seed)


def test_shared_above_the_exact_bootstrap_size_only_the_bootstrap_draws_differ() -> None:
    lags = lag_sample(4, 30_000, 3_000, -2.7)
    rng = np.random.default_rng(5)
    times = np.sort(rng.integers(0, 3600 * NS, len(lags)))
    shared_by = rng.choice(np.array([1, 4, 8]), len(lags))
    assert len(lags) > stats.EXACT_BOOTSTRAP_PAIRS
    offset, low, high, *rest = stats.estimate_offset(lags, times, seed=9, shared_by=shared_by)
    old_offset, _, _, *old_rest = old_estimate_offset(
        lags, times, seed=9, bootstrap=False, shared_by=shared_by
    )
    assert (offset, rest) == (old_offset, old_rest)
    assert offset is not None and low is not None and high is not None
    assert low <= offset <= high and high - low < 0.5


@st.composite
def offset_inputs(draw: st.DrawFn) -> tuple[pa.Table, pa.Table, pa.Table]:
    """Calls, events partly caused by them (after a clock offset), and an identity map with
    leases that change owner, overlap (a shared address: both hosts' calls pair) or are
    missing."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_calls = draw(st.integers(1, 40))
    start = rng.integers(0, 40, n_calls) * 5 * NS  # ties
    call_host = rng.choice(np.array(["s1", "s2", "s3", "s4"], dtype=object), n_calls)
    call_host[rng.random(n_calls) < 0.1] = None
    calls = from_columns(
        {
            "ts_start": start.tolist(),
            "host": call_host.tolist(),
            "source_format": rng.choice(["otlp_json", "codex"][: draw(st.integers(1, 2))], n_calls),
        },
        TOOL_CALLS,
    )
    if draw(st.booleans()):
        calls = calls.sort_by([("ts_start", "ascending")])
    offset = int(draw(st.floats(-5, 5)) * NS)
    caused = rng.integers(0, n_calls, draw(st.integers(0, 250)))
    ips = {"s1": "10.0.0.1", "s2": "10.0.0.2", "s3": "10.0.0.3", "s4": "10.0.0.4"}
    caused_ip = [ips.get(h or "", "10.0.0.9") for h in call_host[caused]]
    n_bg = draw(st.integers(0, 150))
    bg_ip = rng.choice(["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.9", "x"], n_bg).tolist()
    ts = np.concatenate(
        [
            start[caused] + offset + rng.integers(50_000_000, 800_000_000, len(caused)),
            rng.integers(-60 * NS, 260 * NS, n_bg),
        ]
    )
    src = caused_ip + bg_ip
    order = np.argsort(ts, kind="stable") if draw(st.booleans()) else np.arange(len(ts))
    events = from_columns(
        {
            "ts": ts[order].tolist(),
            "src_ip": [src[i] if rng.random() > 0.03 else None for i in order],
            "source_format": rng.choice(["fw", "zeek"][: draw(st.integers(1, 2))], len(ts)),
        },
        NETWORK_EVENTS,
    )
    t = 100 * NS
    leases = [
        ("s1", "10.0.0.1", None, None),
        ("s2", "10.0.0.2", None, t),
        ("s3", "10.0.0.2", t, None),  # 10.0.0.2 changes owner at 100 s
        ("s3", "10.0.0.3", None, None),
        ("s4", "10.0.0.3", 50 * NS, 150 * NS),  # shared while both hold it
    ]
    keep = draw(st.lists(st.booleans(), min_size=len(leases), max_size=len(leases)))
    rows = [lease for lease, k in zip(leases, keep, strict=True) if k]
    identity = from_columns(
        {
            "host": [r[0] for r in rows],
            "ip": [r[1] for r in rows],
            "valid_from": [r[2] for r in rows],
            "valid_to": [r[3] for r in rows],
        },
        HOSTS_SCHEMA,
    )
    return events, calls, identity


@settings(max_examples=60)
@given(offset_inputs(), st.sampled_from([3, 50, 200_000]))
def test_offset_pairs_are_exactly_the_band_join_on_every_holder(
    inputs: tuple[pa.Table, pa.Table, pa.Table], max_events: int
) -> None:
    events, calls, identity = inputs
    got = stats.offset_pairs(events, calls, identity, max_events=max_events)
    want = old_offset_pairs(events, calls, identity, max_events=max_events)
    for a, b in zip(got, want, strict=True):
        assert a.tolist() == b.tolist()


@settings(max_examples=40)
@given(offset_inputs())
def test_offset_estimates_are_exactly_the_per_format_loop(
    inputs: tuple[pa.Table, pa.Table, pa.Table],
) -> None:
    events, calls, identity = inputs
    got = stats.estimate_offsets(events, calls, identity)
    assert [astuple(e) for e in got] == [
        astuple(e) for e in old_estimate_offsets(events, calls, identity)
    ]


@pytest.mark.parametrize("in_time_order", [True, False])
def test_drift_is_exactly_the_quarterly_loop(in_time_order: bool) -> None:
    rng = np.random.default_rng(6)
    times = rng.integers(0, 3600 * NS, 8000)
    lags = rng.integers(-120 * NS, 120 * NS, 8000)
    caused = rng.random(8000) < 0.25  # a clock drifting 2 s over the hour
    lags[caused] = (
        (-3 + 2 * times[caused] / (3600 * NS) + rng.uniform(0.05, 0.8, caused.sum())) * NS
    ).astype(np.int64)
    if in_time_order:
        order = np.argsort(times, kind="stable")
        times, lags = times[order], lags[order]
    got = stats.estimate_offset(lags, times, seed=3)
    assert got == old_estimate_offset(lags, times, seed=3)
    assert got[5] is not None and 300 < got[5] < 800


def test_offsets_apply_per_format_row_by_row() -> None:
    formats = ["fw", None, "zeek", "fw", "other"]
    events = from_columns(
        {"ts": [1, 2, 3, 4, 5], "ts_end": [10, None, 30, None, 50], "source_format": formats},
        NETWORK_EVENTS,
    )
    offsets = {"fw": -4.05, "zeek": 0.3333333333}
    shifted = apply_offsets(events, offsets)
    shift = [round(offsets.get(f or "", 0.0) * NS) for f in formats]
    assert shifted.column("clock_offset_ns").to_pylist() == shift
    assert shifted.column("ts").cast("int64").to_pylist() == [
        t - s for t, s in zip([1, 2, 3, 4, 5], shift, strict=True)
    ]
    assert shifted.column("ts_end").cast("int64").to_pylist() == [
        None if t is None else t - s for t, s in zip([10, None, 30, None, 50], shift, strict=True)
    ]
    assert apply_offsets(events.slice(0, 0), offsets).num_rows == 0
