"""The band join on a Dask cluster (``dask.distributed``): the same pure ``band_join`` per partition.

``DaskJoiner(client)`` has ``join.band_join``'s signature, so ``analyse(loaded, options,
joiner=DaskJoiner(client))`` runs the only step whose cost grows with both tables on a cluster
and everything else where it ran before. How the work is split:

- **by key** (the identity-keyed join): every row goes to partition ``crc32(key) % n``. Pairs only
  form within a key, so each pair is found in exactly one partition. ``None`` keys never match
  and are dropped before anything is shipped.
- **by time** (the time-only join, a single key, or fewer keys than partitions): events are cut
  into ``n`` time ranges at their quantiles; each event belongs to exactly one range, and each call
  is copied into every range its window ``[start - before, end + after]`` overlaps (the padding at
  partition edges). An event near an edge therefore meets the calls of the neighbouring range,
  and since events are never copied, no pair is emitted twice.

Inside each task ``band_join`` runs on the partition's rows; its local indices are mapped back to
global row numbers, and the client sorts the union by (event, call): exactly ``band_join``'s pairs
in its order (``tests/test_distributed.py`` checks this against ``band_join`` itself).

What travels: with ``staging=None`` the client ships each partition's rows (int64 row numbers,
int64 key codes, times: 24-32 bytes a row) to the workers with ``client.scatter``. With
``staging=DIR`` (a directory every worker can read, e.g. a shared file system) the client writes
the partitions as one hive-partitioned Parquet dataset (``DIR/join-<uuid>/calls/part=K``,
``DIR/join-<uuid>/events/part=K``, removed after the join) and each task reads only its own
partition with ``pyarrow.dataset``; then only paths, partition numbers and the window are shipped.
``stage_case`` builds that dataset straight from a case directory's Parquet tables, and
``join_staged`` joins it; only the index pairs come back to the client. Rows in the returned pairs
are always global row numbers of the arrays given (or, for ``stage_case``, of the case's
violations and calls as ``analyse`` orders them).
"""

from __future__ import annotations

import os
import shutil
import uuid
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from .errors import OptionError
from .join import band_join

STRATEGIES = ("auto", "key", "time")
ENGINES = ("local", "dask")
_I64 = np.iinfo(np.int64)
_OWNED: dict[int, Any] = {}
"""LocalClusters started by ``make_client``, by the id of their client."""


def make_client(scheduler: str | None = None, *, n_workers: int | None = None) -> Any:
    """A ``distributed.Client``: connected to ``scheduler`` (``tcp://host:port``), else to a new
    ``LocalCluster`` on loopback (one single-threaded worker process per core, no dashboard).

    A client that started its own cluster closes it when the client is closed.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise OptionError(
            "the dask engine needs dask.distributed: pip install 'agent-correlate[dask]'"
        ) from None
    if scheduler:
        try:
            return Client(scheduler, timeout="30s")
        except (OSError, TimeoutError) as exc:
            raise OptionError(f"cannot reach the Dask scheduler at {scheduler} ({exc})") from None
    cluster = LocalCluster(
        n_workers=n_workers or max(1, min(os.cpu_count() or 1, 8)),
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    client = Client(cluster)
    _OWNED[id(client)] = cluster  # closed with the client, below
    return client


def close_client(client: Any) -> None:
    """Close a client from ``make_client`` (and the LocalCluster it started, if any)."""
    cluster = _OWNED.pop(id(client), None)
    client.close()
    if cluster is not None:
        cluster.close()


@contextmanager
def dask_joiner(scheduler: str | None = None, **options: Any) -> Iterator[DaskJoiner]:
    """``with dask_joiner("tcp://host:8786") as joiner: analyse(loaded, opts, joiner=joiner)``."""
    client = make_client(scheduler)
    try:
        yield DaskJoiner(client, **options)
    finally:
        close_client(client)


@dataclass
class Partitions:
    """Rows of both sides split into partitions: per partition, global row numbers (and key codes)."""

    strategy: str
    calls: list[np.ndarray]
    events: list[np.ndarray]


def key_codes(keys: Sequence[object]) -> tuple[np.ndarray, np.ndarray]:
    """(codes, hashes): equal keys share a code >= 1 (``None`` is 0) and a stable crc32 hash.

    Python's ``hash`` of a string differs between processes; crc32 of the key's text does not,
    so the client and every worker agree on where a key lives.
    """
    mapping: dict[object, int] = {None: 0}
    hashes = [0]
    codes = np.empty(len(keys), dtype=np.int64)
    for i, key in enumerate(keys):
        code = mapping.get(key)
        if code is None:
            code = mapping[key] = len(mapping)
            hashes.append(zlib.crc32(f"{type(key).__name__}:{key}".encode()))
        codes[i] = code
    return codes, np.asarray(hashes, dtype=np.int64)


def partition(
    call_codes: np.ndarray,
    call_lo: np.ndarray,
    call_hi: np.ndarray,
    event_codes: np.ndarray,
    event_ts: np.ndarray,
    hashes: np.ndarray,
    n: int,
    *,
    strategy: str = "auto",
    bounds: Sequence[int] | None = None,
) -> Partitions:
    """Split rows (``None`` keys, code 0, dropped) by key hash or by event time ranges.

    ``call_lo``/``call_hi`` are each call's window ends (start - before, end + after). ``bounds``
    (sorted, ``n - 1`` of them) overrides the time cut points: range ``p`` holds events with
    ``bounds[p-1] <= ts < bounds[p]``.
    """
    if strategy not in STRATEGIES:
        raise OptionError(
            f"unknown partition strategy {strategy!r} (known: {', '.join(STRATEGIES)})"
        )
    calls_live = np.flatnonzero(call_codes != 0)
    events_live = np.flatnonzero(event_codes != 0)
    if strategy == "auto":
        distinct = len(np.unique(event_codes[events_live]))
        strategy = "key" if distinct >= n and bounds is None else "time"
    if strategy == "key":
        call_part = hashes[call_codes[calls_live]] % n
        event_part = hashes[event_codes[events_live]] % n
        return Partitions(
            "key",
            [calls_live[call_part == p] for p in range(n)],
            [events_live[event_part == p] for p in range(n)],
        )
    if bounds is None:
        ts = np.sort(event_ts[events_live])
        cuts = np.unique(ts[(np.arange(1, n) * len(ts)) // n]) if len(ts) else np.empty(0, np.int64)
    else:
        cuts = np.unique(np.asarray(bounds, dtype=np.int64))
    parts = len(cuts) + 1
    event_part = np.searchsorted(cuts, event_ts[events_live], side="right")
    # A call is copied to every range its window overlaps: from the range of its window's start
    # to the range of its window's end.
    first = np.searchsorted(cuts, call_lo[calls_live], side="right")
    last = np.searchsorted(cuts, call_hi[calls_live], side="right")
    span = last - first + 1
    rows = np.repeat(calls_live, span)
    offsets = np.arange(len(rows)) - np.repeat(np.cumsum(span) - span, span)
    call_part = np.repeat(first, span) + offsets
    order = np.argsort(call_part, kind="stable")
    rows, call_part = rows[order], call_part[order]
    edges = np.searchsorted(call_part, np.arange(parts + 1))
    event_order = np.argsort(event_part, kind="stable")
    event_rows, event_part = events_live[event_order], event_part[event_order]
    event_edges = np.searchsorted(event_part, np.arange(parts + 1))
    return Partitions(
        "time",
        [rows[edges[p] : edges[p + 1]] for p in range(parts)],
        [event_rows[event_edges[p] : event_edges[p + 1]] for p in range(parts)],
    )


def join_part(
    call_rows: np.ndarray,
    call_codes: np.ndarray,
    call_start: np.ndarray,
    call_end: np.ndarray,
    event_rows: np.ndarray,
    event_codes: np.ndarray,
    event_ts: np.ndarray,
    before_ns: int,
    after_ns: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``band_join`` on one partition; returns global (call, event) row numbers, unsorted."""
    if len(call_rows) == 0 or len(event_rows) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    c, e = band_join(
        call_codes.tolist(),
        call_start,
        call_end,
        event_codes.tolist(),
        event_ts,
        before_ns=before_ns,
        after_ns=after_ns,
    )
    return np.asarray(call_rows, np.int64)[c], np.asarray(event_rows, np.int64)[e]


def _join_payload(payload: tuple[np.ndarray, ...], before_ns: int, after_ns: int) -> Any:
    c, c_key, c_start, c_end, e, e_key, e_ts = payload
    return join_part(c, c_key, c_start, c_end, e, e_key, e_ts, before_ns, after_ns)


def _merge(results: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """The union of the partitions' pairs in band_join's order: by event, then call."""
    if not results:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    call_idx = np.concatenate([np.asarray(r[0], np.int64) for r in results])
    event_idx = np.concatenate([np.asarray(r[1], np.int64) for r in results])
    order = np.lexsort((call_idx, event_idx))
    return call_idx[order], event_idx[order]


def _saturating(values: np.ndarray, delta: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        shifted = values + np.int64(delta)
    if delta > 0:
        return np.where(values > _I64.max - delta, _I64.max, shifted)
    if delta < 0:
        return np.where(values < _I64.min - delta, _I64.min, shifted)
    return shifted


class DaskJoiner:
    """A band join with ``band_join``'s signature and answer, computed on a Dask cluster.

    ``partitions``: how many pieces (default: twice the cluster's worker threads). ``strategy``:
    ``key``, ``time`` or ``auto`` (by key when there are at least as many keys as partitions).
    ``bounds``: explicit time cut points (tests use them to put edges inside windows).
    ``staging``: a directory every worker can read; partitions go through Parquet there instead
    of being shipped from the client (see the module docstring).
    """

    def __init__(
        self,
        client: Any,
        *,
        partitions: int | None = None,
        strategy: str = "auto",
        bounds: Sequence[int] | None = None,
        staging: str | os.PathLike[str] | None = None,
    ) -> None:
        if strategy not in STRATEGIES:
            raise OptionError(f"unknown partition strategy {strategy!r}")
        self.client = client
        self.partitions = partitions
        self.strategy = strategy
        self.bounds = bounds
        self.staging = None if staging is None else Path(staging)
        self.last: Partitions | None = None
        """How the last call was split (for tests and diagnostics)."""

    def _n(self) -> int:
        if self.partitions:
            return max(1, int(self.partitions))
        threads = sum(self.client.nthreads().values()) or 1
        return 2 * threads

    def __call__(
        self,
        call_keys: Sequence[object],
        call_start: np.ndarray,
        call_end: np.ndarray,
        event_keys: Sequence[object],
        event_ts: np.ndarray,
        *,
        before_ns: int,
        after_ns: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        if before_ns < 0 or after_ns < 0:
            raise ValueError("window sides must be >= 0")
        call_start = np.asarray(call_start, dtype=np.int64)
        call_end = np.asarray(call_end, dtype=np.int64)
        event_ts = np.asarray(event_ts, dtype=np.int64)
        if len(call_keys) == 0 or len(event_keys) == 0:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        codes, hashes = key_codes(list(call_keys) + list(event_keys))
        call_codes, event_codes = codes[: len(call_keys)], codes[len(call_keys) :]
        parts = partition(
            call_codes,
            _saturating(call_start, -before_ns),
            _saturating(call_end, after_ns),
            event_codes,
            event_ts,
            hashes,
            self._n(),
            strategy=self.strategy,
            bounds=self.bounds,
        )
        self.last = parts
        live = [p for p in range(len(parts.calls)) if len(parts.calls[p]) and len(parts.events[p])]
        if not live:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        sides = (call_codes, call_start, call_end, event_codes, event_ts)
        if self.staging is not None:
            root = self.staging / f"join-{uuid.uuid4().hex}"
            try:
                write_staged(root, parts, *sides)
                return join_staged(self.client, root, before_ns, after_ns)
            finally:
                shutil.rmtree(root, ignore_errors=True)
        payloads = []
        for p in live:
            c, e = parts.calls[p], parts.events[p]
            payloads.append(
                (c, call_codes[c], call_start[c], call_end[c], e, event_codes[e], event_ts[e])
            )
        # hash=False: equal payloads from two joins must not share (and release) one key.
        futures = self.client.scatter(payloads, hash=False)
        results = self.client.gather(
            [self.client.submit(_join_payload, f, before_ns, after_ns, pure=False) for f in futures]
        )
        return _merge(results)


# -- Staged Parquet: the workers read their partitions themselves ---------------------------------

CALLS_SCHEMA = pa.schema(
    [
        ("part", pa.int32()),
        ("row", pa.int64()),
        ("key", pa.int64()),
        ("start", pa.int64()),
        ("end", pa.int64()),
    ]
)
EVENTS_SCHEMA = pa.schema(
    [("part", pa.int32()), ("row", pa.int64()), ("key", pa.int64()), ("ts", pa.int64())]
)
_HIVE = ds.partitioning(pa.schema([("part", pa.int32())]), flavor="hive")


def write_staged(
    root: str | os.PathLike[str],
    parts: Partitions,
    call_codes: np.ndarray,
    call_start: np.ndarray,
    call_end: np.ndarray,
    event_codes: np.ndarray,
    event_ts: np.ndarray,
) -> None:
    """Write the partitions as ``root/calls/part=K/*.parquet`` and ``root/events/part=K/*.parquet``."""
    root = Path(root)
    c_part = np.concatenate(
        [np.full(len(r), p, np.int32) for p, r in enumerate(parts.calls)] or [np.empty(0, np.int32)]
    )
    c_rows = np.concatenate(parts.calls or [np.empty(0, np.int64)])
    e_part = np.concatenate(
        [np.full(len(r), p, np.int32) for p, r in enumerate(parts.events)]
        or [np.empty(0, np.int32)]
    )
    e_rows = np.concatenate(parts.events or [np.empty(0, np.int64)])
    calls = pa.table(
        [c_part, c_rows, call_codes[c_rows], call_start[c_rows], call_end[c_rows]],
        schema=CALLS_SCHEMA,
    )
    events = pa.table([e_part, e_rows, event_codes[e_rows], event_ts[e_rows]], schema=EVENTS_SCHEMA)
    for name, table in (("calls", calls), ("events", events)):
        ds.write_dataset(
            table,
            root / name,
            format="parquet",
            partitioning=_HIVE,
            existing_data_behavior="overwrite_or_ignore",
        )


def staged_parts(root: str | os.PathLike[str]) -> list[int]:
    """Partition numbers that have both calls and events under ``root``."""
    found = []
    for name in ("calls", "events"):
        where = Path(root) / name
        found.append(
            {int(d.name.split("=", 1)[1]) for d in where.glob("part=*")}
            if where.is_dir()
            else set()
        )
    return sorted(found[0] & found[1])


def read_part(root: str, part: int, before_ns: int, after_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """On a worker: read one partition of both sides from Parquet and join it."""
    tables = {}
    for name in ("calls", "events"):
        dataset = ds.dataset(Path(root) / name, format="parquet", partitioning=_HIVE)
        tables[name] = dataset.to_table(filter=ds.field("part") == part)
    calls, events = tables["calls"], tables["events"]

    def col(table: pa.Table, name: str) -> np.ndarray:
        return table.column(name).to_numpy().astype(np.int64, copy=False)

    return join_part(
        col(calls, "row"),
        col(calls, "key"),
        col(calls, "start"),
        col(calls, "end"),
        col(events, "row"),
        col(events, "key"),
        col(events, "ts"),
        before_ns,
        after_ns,
    )


def join_staged(
    client: Any, root: str | os.PathLike[str], before_ns: int, after_ns: int
) -> tuple[np.ndarray, np.ndarray]:
    """Join a staged dataset on the cluster: one task per partition, each reading its own files.

    ``root`` must be the same path on the client and the workers (a shared file system).
    """
    futures = [
        client.submit(read_part, str(root), p, before_ns, after_ns, pure=False)
        for p in staged_parts(root)
    ]
    return _merge(client.gather(futures))


@dataclass
class StagedCase:
    """A case's join inputs written as partitioned Parquet, ready for ``join_staged``."""

    root: Path
    before_ns: int
    after_ns: int
    keyed: bool
    strategy: str
    partitions: int


def case_join_inputs(
    case_dir: str | os.PathLike[str], options: Any
) -> tuple[list[object], np.ndarray, np.ndarray, list[object], np.ndarray, bool]:
    """The arrays ``analyse`` hands its joiner for the case's main join, read from its Parquet.

    Returns (call keys, call starts, call ends, violation keys, violation times, keyed). The
    identity map, clock offsets and violation selection are computed as ``analyse`` computes them
    (they need the whole case: a small table and a scan, done where this runs). The second join
    that ``--unmapped time`` adds is not included.
    """
    from .case import open_case
    from .conversations import assign_conversations
    from .identity import build_identity, ns_or, resolve
    from .pipeline import _call_keys
    from .policy import select_violations
    from .stats import apply_offsets, choose_offsets, estimate_offsets

    loaded = open_case(case_dir).loaded()
    identity = build_identity([loaded.hosts])
    keyed = identity.num_rows > 0
    applied: dict[str, float] = {}
    if options.offset_auto:
        applied = choose_offsets(estimate_offsets(loaded.events, loaded.calls, identity))
    applied.update(dict(options.offsets))
    violations = select_violations(apply_offsets(loaded.events, applied), options.policy)
    ts = ns_or(violations.column("ts"), 0)
    src_hosts, _ = resolve(identity, violations.column("src_ip").to_pylist(), ts)
    violations = violations.append_column("src_host", pa.array(src_hosts, pa.string()))
    # Conversations reorder the violations; the joiner sees them in that order.
    violations = assign_conversations(violations, options.gap_ns)
    ts = ns_or(violations.column("ts"), 0)
    calls = loaded.calls
    call_start = ns_or(calls.column("ts_start"), 0)
    call_end = np.maximum(ns_or(calls.column("ts_end"), _I64.min), call_start)
    if keyed:
        event_keys = violations.column("src_host").to_pylist()
        call_keys = _call_keys(calls, identity)
    else:
        event_keys, call_keys = ["*"] * len(ts), ["*"] * calls.num_rows
    return list(call_keys), call_start, call_end, list(event_keys), ts, keyed


def stage_case(
    case_dir: str | os.PathLike[str],
    staging: str | os.PathLike[str],
    options: Any,
    *,
    partitions: int = 8,
    strategy: str = "auto",
) -> StagedCase:
    """Write a case's join inputs as partitioned Parquet under ``staging`` for ``join_staged``."""
    call_keys, call_start, call_end, event_keys, ts, keyed = case_join_inputs(case_dir, options)
    codes, hashes = key_codes(call_keys + event_keys)
    call_codes, event_codes = codes[: len(call_keys)], codes[len(call_keys) :]
    before, after = options.before_ns, options.after_ns
    parts = partition(
        call_codes,
        _saturating(call_start, -before),
        _saturating(call_end, after),
        event_codes,
        ts,
        hashes,
        partitions,
        strategy=strategy,
    )
    root = Path(staging)
    write_staged(root, parts, call_codes, call_start, call_end, event_codes, ts)
    return StagedCase(root, before, after, keyed, parts.strategy, len(parts.calls))


__all__ = [
    "ENGINES",
    "STRATEGIES",
    "DaskJoiner",
    "StagedCase",
    "case_join_inputs",
    "close_client",
    "dask_joiner",
    "join_staged",
    "make_client",
    "partition",
    "stage_case",
    "write_staged",
]
