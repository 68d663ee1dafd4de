"""The keyed band join alone: 1M calls x 100k violations over 2,000 sandboxes in 24 h (not a test).

python benchmarks/join_micro.py
"""

from __future__ import annotations

import time

import numpy as np

from correlate.join import band_join

rng = np.random.default_rng(7)
N_CALLS, N_EVENTS, KEYS, SPAN_NS = 1_000_000, 100_000, 2_000, 24 * 3600 * 10**9
hosts = np.array([f"sbx-{i:04d}" for i in range(KEYS)], dtype=object)
call_start = np.sort(rng.integers(0, SPAN_NS, N_CALLS))
call_end = call_start + (rng.exponential(3.0, N_CALLS) * 1e9).astype(np.int64)
call_keys = list(hosts[rng.integers(0, KEYS, N_CALLS)])
event_ts = rng.integers(0, SPAN_NS, N_EVENTS)
event_keys = list(hosts[rng.integers(0, KEYS, N_EVENTS)])
t = time.perf_counter()
c, e = band_join(
    call_keys, call_start, call_end, event_keys, event_ts, before_ns=10 * 10**9, after_ns=30 * 10**9
)
print(
    f"band_join: {N_CALLS:,} calls x {N_EVENTS:,} events, {len(c):,} pairs in {time.perf_counter() - t:.2f}s"
)
