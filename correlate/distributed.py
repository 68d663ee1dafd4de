"""Loading and the band join on a Dask cluster (``dask.distributed``), with the local engine's answer.

**Loading** (``dask_load_inputs``, the last section): the client plans the inputs as
``load_inputs`` does; workers run the same ``load_file`` per input file, or the same loader per
byte range of a big plain file of a line-independent format (``SPLITTABLE``), keeping violations
and their own anchor sample; the client combines them through ``Gathered`` in file order.

**The join**: the same pure ``band_join`` per partition.

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

import json
import os
import shutil
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from .errors import CorrelateError, OptionError
from .join import band_join
from .keep import KeepPolicy, is_kept_verdict, line_hashes, row_hashes
from .loaders import Detection, LoadOptions, LoadResult, LoadStats, detect, get_loader
from .loaders.base import read_counting_long_lines
from .loaders.records import first_line
from .pipeline import (
    Gathered,
    InputFile,
    Job,
    Loaded,
    ProgressCallback,
    RunOptions,
    load_file,
    plan_inputs,
)
from .sources import Source

STRATEGIES = ("auto", "key", "time")
ENGINES = ("local", "dask")
_I64 = np.iinfo(np.int64)
MMAP_BYTES = 32 << 20
"""glibc's ``MALLOC_MMAP_THRESHOLD_`` for the workers of the LocalCluster ``make_client`` starts."""
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
    import dask

    # Dask sets MALLOC_TRIM_THRESHOLD_ in its workers, which also pins glibc's mmap threshold at
    # 128 KiB: every 8 MiB block a loader reads is then a fresh mapping, page-faulted in (about a
    # third more CPU to parse a large file). Blocks below 32 MiB come from the heap again.
    with dask.config.set(
        {"distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": MMAP_BYTES}
    ):
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

    Returns (call keys, call starts, call ends, violation keys, violation times, keyed); a
    violation has one key per host holding its address (``pipeline.keyed_join_keys``). The
    identity map, clock offsets and violation selection are ``pipeline.prepare``'s (they need the
    whole case: a small table and a scan, done where this runs). The second join that
    ``--unmapped time`` adds is not included.
    """
    from .case import open_case
    from .pipeline import keyed_join_keys, prepare
    from .schema import int_ns

    loaded = open_case(case_dir).loaded(options)
    prepared = prepare(loaded, options)
    keyed, violations, calls = prepared.keyed, prepared.violations, prepared.loaded.calls
    ts = int_ns(violations.column("ts"), 0)
    call_start = int_ns(calls.column("ts_start"), 0)
    call_end = np.maximum(int_ns(calls.column("ts_end"), _I64.min), call_start)
    if keyed:
        call_keys, event_keys, rows = keyed_join_keys(violations, calls, prepared.identity)
        ts = ts[rows]
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


# -- Loading on the cluster ----------------------------------------------------------------------

SPLIT_BYTES = 128 << 20
"""A plain file of a ``SPLITTABLE`` format larger than this is read in byte ranges of about this
size, each by its own task (``split_bytes=0`` never splits)."""

COUNT_BLOCK = 8 << 20


def _cfw_json_lines(head: bytes) -> bool:
    # alibaba_cfw.read: JSON lines when the head starts with an object (else CSV with a header)
    return head[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")


def _object_lines(head: bytes) -> bool:
    # alibaba_vpc_flow.read: JSON lines when the first line is an object (else CSV with a header)
    return first_line(head[:4096]).startswith(b"{")


def _json_documents_as_lines(head: bytes) -> bool:
    # records.json_documents: one JSON value per line unless the first line is an array or does not
    # parse on its own (a document spanning lines); ocsf_network also reads Parquet ("PAR1")
    if head.startswith(b"PAR1"):
        return False
    first = first_line(head)
    try:
        return isinstance(json.loads(first), dict)
    except (ValueError, RecursionError):
        return False


SPLITTABLE: dict[str, Callable[[bytes], bool]] = {
    "alibaba_cfw": _cfw_json_lines,
    "alibaba_vpc_flow": _object_lines,
    "gcp_logging": _json_documents_as_lines,
    "ocsf_network": _json_documents_as_lines,
}
"""Formats (and, from the file's head, layouts) whose records are independent lines: every line is
read the same way whatever came before it, so a byte range starting at a line start, numbered from
its true first line, gives exactly that part of the whole file's rows, rejects and counts. Not
here: a header that sets the layout (AWS VPC text, Zeek TSV, CSV), rows filled from other lines
of the file (aws_nfw and suricata_eve name flows from their dns/tls/http records), a year inferred
across lines (syslog-based formats), whole-file JSON documents, and compressed files (never split).
Zeek JSON lines qualify in principle; zeek_conn joins once its column-wise reader is settled
(``tests/test_byte_ranges.py`` checks each entry against whole-file reads of its samples).
"""


def splittable(detection: Detection, head: bytes) -> bool:
    """Whether a file detected as ``detection`` with this head may be read by byte ranges."""
    check = SPLITTABLE.get(detection.name)
    return check is not None and check(head)


def line_start(source: Source, at: int) -> int | None:
    """The first line start at or after byte ``at`` (the file's size past the last line); None
    when the line around ``at`` is longer than ``--max-line-bytes`` (the whole-file load then
    stops with its usual message)."""
    if at == 0:
        return 0
    window = source.limits.max_line_bytes + 2
    seen = 0
    with source.ranged(at - 1, None, 1).open() as stream:
        while seen < window:
            block = stream.read(min(1 << 20, window - seen))
            if not block:
                return at - 1 + seen
            found = block.find(b"\n")
            if found >= 0:
                return at - 1 + seen + found + 1
            seen += len(block)
    return None


def count_range(source: Source, lo: int, hi: int) -> tuple[int | None, int]:
    """On a worker: ``(line_start(lo), newlines in bytes [lo, hi))`` of ``source``'s file."""
    count = 0
    block = bytearray(COUNT_BLOCK)
    with source.ranged(lo, hi, 1).open() as stream:
        while n := stream.readinto(block):
            count += block.count(b"\n", 0, n)
    return line_start(source, lo), count


def nominal_cuts(size: int, split_bytes: int) -> list[int]:
    """Evenly spaced byte offsets ``0 = c0 < c1 < ... < cK = size``, pieces <= ``split_bytes``."""
    pieces = max(1, -(-size // max(1, split_bytes)))
    return [size * k // pieces for k in range(pieces + 1)]


def byte_ranges(
    source: Source, cuts: Sequence[int], counted: Sequence[tuple[int | None, int]]
) -> list[Source]:
    """The byte-range sources of a file from ``count_range`` of each ``[cuts[k], cuts[k+1])``:
    each starts at a line start, with its true first line number; empty ranges are dropped.

    Lines before a line start ``b >= c`` number the newlines before ``c`` (the counts of the
    earlier pieces) plus one when ``b > c`` (the newline ending at ``b - 1`` is the first at or
    after ``c``).
    """
    starts = [b for b, _ in counted]
    if any(b is None for b in starts):
        raise ValueError("a line longer than the limit")
    bounds = [int(b) for b in starts if b is not None] + [cuts[-1]]
    ranges = []
    before = 0
    for k, (_, count) in enumerate(counted):
        lo, hi = bounds[k], bounds[k + 1]
        if lo < hi:
            line = 1 + before + (1 if lo > cuts[k] else 0)
            ranges.append(source.ranged(lo, hi, line))
        before += count
    return ranges


def combine_results(parts: Sequence[LoadResult]) -> LoadResult:
    """One file's ``LoadResult`` from those of its byte ranges, in file order: rows and rejects
    concatenated, counts summed, skipped and notes added."""
    first = parts[0]
    stats = LoadStats(
        path=first.stats.path,
        format=first.stats.format,
        kind=first.stats.kind,
        unit=first.stats.unit,
        skipped=Counter(),
        notes=Counter(),
    )
    rejects = []
    hosts = []
    context: dict[str, None] = {}
    for part in parts:
        s = part.stats
        stats.read += s.read
        stats.loaded += s.loaded
        stats.rejected += s.rejected
        stats.unkept += s.unkept
        stats.skipped.update(s.skipped)
        stats.notes.update(s.notes)
        rejects.extend(part.rejects)
        if part.hosts is not None:
            hosts.append(part.hosts)
        context.update(dict.fromkeys(part.context))
    tables = [p.table for p in parts]
    return LoadResult(
        kind=first.kind,
        table=pa.concat_tables(tables) if len(tables) > 1 else tables[0],
        stats=stats,
        rejects=rejects,
        hosts=(pa.concat_tables(hosts) if len(hosts) > 1 else hosts[0]) if hosts else None,
        context=list(context),
    )


def load_whole(
    source: Source, forced: str | None, options: RunOptions, keep: KeepPolicy | None
) -> tuple[InputFile, LoadResult | None]:
    """On a worker: ``load_file`` on one whole file, and its SHA-256 (as ``load_inputs`` does)."""
    record = InputFile(path=source.display, format=None, kind=None, sha256="", size=source.size())
    result = load_file(source, forced, options, record, keep=keep)
    record.sha256 = source.sha256()
    return record, result


def load_range(source: Source, format_name: str, load: LoadOptions) -> LoadResult | str:
    """On a worker: one byte range through its format's loader; a problem is returned as its
    message (the client then reads the whole file, which reports it as a local run does)."""
    try:
        result: LoadResult = read_counting_long_lines(get_loader(format_name).read, source, load)
    except CorrelateError as exc:
        return str(exc) or type(exc).__name__
    return result


def file_sha256(source: Source) -> str:
    """On a worker: the SHA-256 of a file (for a file read by byte ranges)."""
    return source.sha256()


@dataclass
class _Plan:
    """One input file: read whole by one task, or by byte ranges."""

    source: Source
    forced: str | None
    size: int
    detection: Detection | None = None
    cuts: list[int] = field(default_factory=list)
    counts: list[Any] = field(default_factory=list)
    ranges: list[Source] = field(default_factory=list)
    bound: int | None = None
    parts: list[Any] = field(default_factory=list)
    sha: Any = None
    whole: Any = None
    again: bool = False
    """Read whole again (its ranges could not give the whole file's outcome)."""
    unbound: bool = False
    """Its ranges read again without the sample bound (the bound was too tight)."""

    def how(self) -> str:
        """How the file was read, for ``dask_load_inputs(trace=...)``."""
        if self.detection is None:
            return "whole"
        ranges = f"{len(self.ranges)} ranges"
        if self.again:
            return ranges + ", then whole"
        return ranges + (", again without the sample bound" if self.unbound else "")


def _split_plan(source: Source, forced: str | None, split_bytes: int) -> _Plan:
    """Decide on the client whether a file is read by ranges (detection here, on its head)."""
    plan = _Plan(source, forced, source.size())
    if split_bytes <= 0 or source.compression or plan.size <= split_bytes:
        return plan
    try:
        detection = detect(source, forced)
    except CorrelateError:
        return plan  # the whole-file task reports it as load_file does
    if splittable(detection, source.head()):
        plan.detection = detection
        plan.cuts = nominal_cuts(plan.size, split_bytes)
    return plan


SAMPLE_HEADROOM = 4
"""A split file's ranges keep allowed rows whose line hash is among the file's
``SAMPLE_HEADROOM x anchors`` smallest (see ``line_bound``)."""

_HASH_BLOCK = 1 << 23


def line_bound(display: str, lines: int, rank: int) -> int | None:
    """The ``rank``-th smallest sample hash over lines ``1..lines`` of the file shown as
    ``display`` (None when it has no more lines than that): computable before reading a row,
    since the hash depends only on (path, line).

    Handed to a split file's ranges as the known bound, it spares them normalising (and shipping)
    the allowed rows that cannot be in the sample. It is a guess that ``anchors`` of the lines
    below it are allowed rows; ``bound_held`` checks that after loading (else the ranges are read
    again without it), so the sample stays exact.
    """
    if lines <= rank or rank <= 0:
        return None
    best = np.empty(0, np.uint64)
    for lo in range(1, lines + 1, _HASH_BLOCK):
        hashes = line_hashes(display, np.arange(lo, min(lines, lo + _HASH_BLOCK - 1) + 1))
        both = np.concatenate((best, hashes))
        best = np.partition(both, rank - 1)[:rank] if len(both) > rank else both
    return int(np.max(best))


def bound_held(result: LoadResult, policy: KeepPolicy, bound: int) -> bool:
    """Whether a file loaded with the sample bound ``bound`` still has its exact sample: the bound
    dropped nothing, or at least ``anchors`` allowed rows hash below it (then the file's bottom-k
    allowed rows all do, and were kept)."""
    if result.stats.unkept == 0:
        return True
    table = result.table
    below = row_hashes(table) <= np.uint64(bound)
    allowed = ~is_kept_verdict(table, policy)
    return int((below & allowed).sum()) >= policy.anchors


def dask_load_inputs(
    paths: Sequence[str],
    options: RunOptions,
    *,
    client: Any,
    inventories: Sequence[str] = (),
    split_bytes: int = SPLIT_BYTES,
    progress: ProgressCallback | None = None,
    trace: dict[str, str] | None = None,
) -> Loaded:
    """``load_inputs`` on a Dask cluster: the same ``Loaded`` (tables, inputs and their stats,
    rejects in the same order, sample bounds).

    The client plans the files (``plan_inputs``) and detects the format of each big plain file;
    each file is read by a worker with ``load_file`` (and hashed there), or, when it is larger
    than ``split_bytes`` and its format reads independent lines (``SPLITTABLE``), cut into byte
    ranges at line starts: one pass counts each piece's newlines (the line numbers of the ranges
    are their prefix sums), then each range is read by the format's loader and the parts are
    combined into one file's result. Workers keep every violation and their own bottom-k anchor
    sample (the bottom-k of a union is the bottom-k of the parts' bottom-ks; a split file's
    ranges also skip rows above ``line_bound``, checked by ``bound_held``), and the client
    gathers the files in plan order through ``Gathered``, as ``load_inputs`` does.

    A file whose first range loads nothing (the "first 100 records all rejected" stop could
    depend on later ranges), or whose range fails (a rejected row under ``--strict``, a line over
    the limit), is read again whole, so its outcome and message are a local run's. Only
    ``LoadStats.unkept`` (rows a loader left out of memory; not in any report) may differ: it
    depends on the sample bounds the loader knew, which the local loop carries from file to file.

    Every worker must see each path as the client does (a shared file system, or URLs that
    fsspec reads on every worker). ``trace``, when given, receives how each file was read:
    ``whole``, ``N ranges``, ``N ranges, again without the sample bound`` or ``N ranges, then
    whole``.
    """
    jobs: list[Job] = plan_inputs(paths, options, inventories=inventories)
    plans = [_split_plan(source, forced, split_bytes) for source, forced in jobs]
    gathered = Gathered(options)
    run = _Run(client, options, gathered.keep_policy())
    try:
        for plan in plans:  # the cheap counting pass first: ranges can start once it is done
            if plan.detection is not None:
                plan.counts = [
                    run.submit(count_range, plan.source, lo, hi) for lo, hi in pairwise(plan.cuts)
                ]
        for plan in plans:
            if plan.detection is None:
                run.read_whole(plan)
        for plan in plans:
            if plan.detection is not None:
                run.read_ranges(plan)
        for done, plan in enumerate(plans):
            if progress:
                progress(plan.source.display, done, len(plans))
            record, result = run.collect(plan)
            if trace is not None:
                trace[plan.source.display] = plan.how()
            gathered.add(plan.source, record, result)
            plan.parts, plan.sha, plan.whole = [], None, None  # results leave the cluster
    except BaseException:
        run.cancel()  # a failed load does not wait for the other files
        raise
    if progress:
        progress("", len(plans), len(plans))
    return gathered.loaded()


class _Run:
    """The client side of one ``dask_load_inputs``: its tasks, and each file's outcome."""

    def __init__(self, client: Any, options: RunOptions, keep: KeepPolicy | None) -> None:
        self.client = client
        self.keep = keep
        self.load = options.load if keep is None else replace(options.load, keep=keep)
        self.futures: list[Any] = []
        self.options = client.scatter(options, hash=False)  # once, not with every task
        self.futures.append(self.options)

    def submit(self, function: Callable[..., Any], *args: Any) -> Any:
        future = self.client.submit(function, *args, pure=False)
        self.futures.append(future)
        return future

    def cancel(self) -> None:
        self.client.cancel([f for f in self.futures if not f.done()])

    def read_whole(self, plan: _Plan) -> None:
        plan.whole = self.submit(load_whole, plan.source, plan.forced, self.options, self.keep)

    def read_ranges(self, plan: _Plan) -> None:
        """The ranges of a split file from its counts (or the whole file, past a long line)."""
        assert plan.detection is not None
        counted = self.client.gather(plan.counts)
        plan.counts = []
        try:
            plan.ranges = byte_ranges(plan.source, plan.cuts, counted)
        except ValueError:  # a line longer than --max-line-bytes: the whole load says so
            plan.detection = None
            self.read_whole(plan)
            return
        name, load = plan.detection.name, self.load
        if self.keep is not None:
            lines = sum(n for _, n in counted) + 1  # (+1: a last line without a newline)
            plan.bound = line_bound(plan.source.display, lines, SAMPLE_HEADROOM * self.keep.anchors)
            if plan.bound is not None:
                below = {**self.keep.below, name: plan.bound}
                load = replace(load, keep=replace(self.keep, below=below))
        plan.sha = self.submit(file_sha256, plan.source)
        plan.parts = [self.submit(load_range, r, name, load) for r in plan.ranges]

    def collect(self, plan: _Plan) -> tuple[InputFile, LoadResult | None]:
        """A file's record and result from its task(s); a split file that needs it is read
        again: whole, or by ranges without the sample bound."""
        detection = plan.detection
        if detection is not None:
            result = self._combined(plan)
            bound, keep = plan.bound, self.keep
            held = (
                result is None or bound is None or keep is None or bound_held(result, keep, bound)
            )
            if not held:  # the bound was a guess too tight: the ranges again without it
                plan.bound, plan.unbound = None, True
                plan.parts = [
                    self.submit(load_range, r, detection.name, self.load) for r in plan.ranges
                ]
                result = self._combined(plan)
            if result is not None:
                record = InputFile(
                    path=plan.source.display,
                    format=detection.name,
                    kind=detection.loader.kind,
                    sha256=plan.sha.result(),
                    size=plan.size,
                    score=detection.score,
                    forced=detection.forced,
                    stats=result.stats,
                )
                return record, result
            plan.again = True
            self.read_whole(plan)
        whole: tuple[InputFile, LoadResult | None] = plan.whole.result()
        return whole

    @staticmethod
    def _combined(plan: _Plan) -> LoadResult | None:
        parts = [future.result() for future in plan.parts]
        if all(isinstance(p, LoadResult) for p in parts) and parts[0].stats.loaded > 0:
            return combine_results(parts)
        return None


@dataclass
class EngineSession:
    """Where a command loads its inputs and runs its join: ``load`` has ``load_case_or_inputs``'s
    signature, ``joiner`` ``band_join``'s."""

    engine: str
    load: Callable[..., Loaded]
    joiner: Callable[..., tuple[np.ndarray, np.ndarray]]
    client: Any = None


@contextmanager
def engine_session(
    engine: str = "local", scheduler: str | None = None, *, split_bytes: int = SPLIT_BYTES
) -> Iterator[EngineSession]:
    """``local``: ``load_case_or_inputs`` and ``band_join`` here. ``dask``: one client (to
    ``scheduler``, else a LocalCluster, closed after) that loads the inputs
    (``dask_load_inputs``; a case directory is opened here) and runs the join (``DaskJoiner``)."""
    from .case import check_integrity, is_case, load_case_or_inputs, open_case

    if engine not in ENGINES:
        raise OptionError(f"unknown engine {engine!r} (known: {', '.join(ENGINES)})")
    if engine == "local":
        if scheduler:
            raise OptionError("--scheduler needs --engine dask")
        yield EngineSession("local", load_case_or_inputs, band_join)
        return
    client = make_client(scheduler)

    def load(
        paths: Sequence[str],
        options: RunOptions,
        *,
        inventories: Sequence[str] = (),
        progress: ProgressCallback | None = None,
        ignore_integrity: bool = False,
    ) -> Loaded:
        if len(paths) == 1 and not inventories and is_case(paths[0]):
            case = open_case(paths[0])
            check_integrity(case, ignore=ignore_integrity)
            return case.loaded(options)
        return dask_load_inputs(
            paths,
            options,
            client=client,
            inventories=inventories,
            split_bytes=split_bytes,
            progress=progress,
        )

    try:
        yield EngineSession("dask", load, DaskJoiner(client), client)
    finally:
        close_client(client)


__all__ = [
    "ENGINES",
    "SPLITTABLE",
    "SPLIT_BYTES",
    "STRATEGIES",
    "DaskJoiner",
    "EngineSession",
    "StagedCase",
    "byte_ranges",
    "case_join_inputs",
    "close_client",
    "combine_results",
    "count_range",
    "dask_joiner",
    "dask_load_inputs",
    "engine_session",
    "join_staged",
    "make_client",
    "partition",
    "stage_case",
    "write_staged",
]
