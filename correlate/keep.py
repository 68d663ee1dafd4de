"""What ``run`` keeps of the network events it reads: every violation, and a bounded anchor sample.

Violations are a tiny share of traffic, but allowed flows matter to two steps: the clock-offset
estimate (a flow a call caused is an anchor) and the run's norm of bytes sent (exfiltration
labels). Both work from a sample. So ``run`` keeps every event whose verdict could make it a
violation, and of the others only a uniform sample of at most ``anchors`` rows per network source
format: the rows with the smallest hashes of (file, line). The hash depends only on where a row
came from, so the sample is the same whatever the order of files, the engine, or how files are
split among workers; and below ``anchors`` allowed rows per format everything is kept, so small
runs see exactly the events they always saw. Memory grows with violations, not with traffic.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

DEFAULT_ANCHORS = 50_000
"""Allowed events kept per network source format (the offset estimator reads at most this many)."""

ALL = np.uint64(2**64 - 1)


@dataclass(frozen=True)
class KeepPolicy:
    """Which loaded network rows stay in memory: these verdicts, plus the anchor sample."""

    actions: tuple[str, ...]
    anchors: int = DEFAULT_ANCHORS
    below: Mapping[str, int] = field(default_factory=dict)
    """Per source format, the hash bound already known from earlier files (rows above it can
    never enter the sample); formats not listed keep every row the per-file sample allows."""


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser over uint64 values (wrapping arithmetic, vectorised)."""
    z = values.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        z += np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def path_seed(path: str) -> np.uint64:
    """A 64-bit number for a file's displayed path (the first half of the hash)."""
    return np.uint64(int(hashlib.sha256(path.encode("utf-8")).hexdigest()[:16], 16))


def line_hashes(path: str, lines: np.ndarray) -> np.ndarray:
    """The sample hash of rows ``lines`` of the file shown as ``path``."""
    return _mix(np.asarray(lines, dtype=np.uint64) ^ path_seed(path))


def row_hashes(table: pa.Table) -> np.ndarray:
    """The sample hash of every row of a ``network_events`` table (from its provenance)."""
    out = np.empty(table.num_rows, dtype=np.uint64)
    if table.num_rows == 0:
        return out
    paths = pc.dictionary_encode(table.column("source_path")).combine_chunks()
    lines = np.asarray(pc.fill_null(table.column("source_line"), 0).to_numpy(), dtype=np.int64)
    codes = np.asarray(paths.indices.to_numpy(zero_copy_only=False))
    for code, path in enumerate(paths.dictionary.to_pylist()):
        rows = codes == code
        out[rows] = line_hashes(path or "", lines[rows])
    return out


def is_kept_verdict(table: pa.Table, policy: KeepPolicy) -> np.ndarray:
    """Rows whose verdict could make them violations (kept whatever the sample says)."""
    chosen = pc.is_in(table.column("action"), value_set=pa.array(list(policy.actions)))
    return np.asarray(pc.fill_null(chosen, False).to_numpy(zero_copy_only=False), dtype=bool)


def cut_sample(
    table: pa.Table, policy: KeepPolicy, bounds: Mapping[str, int]
) -> tuple[pa.Table, dict[str, int]]:
    """``table`` less the allowed rows outside the bottom-``anchors`` sample of their format.

    ``bounds`` are hash bounds already known (rows above them can never be in the sample).
    Returns the kept rows and the updated bounds (the largest kept hash of each full sample).
    """
    bounds = dict(bounds)
    if table.num_rows == 0:
        return table, bounds
    verdict = is_kept_verdict(table, policy)
    hashes = row_hashes(table)
    formats = pc.dictionary_encode(table.column("source_format")).combine_chunks()
    codes = np.asarray(formats.indices.to_numpy(zero_copy_only=False))
    keep = verdict.copy()
    for code, fmt in enumerate(formats.dictionary.to_pylist()):
        name = fmt or ""
        limit = np.uint64(bounds.get(name, int(ALL)))
        rows = np.flatnonzero((codes == code) & ~verdict & (hashes <= limit))
        if len(rows) > policy.anchors:
            bound = np.partition(hashes[rows], policy.anchors - 1)[policy.anchors - 1]
            rows = rows[hashes[rows] <= bound]
            bounds[name] = int(bound)
        keep[rows] = True
    if keep.all():
        return table, bounds
    return table.filter(pa.array(keep)), bounds


class Keeper:
    """Gathers network tables, keeping violations and the anchor sample as they come.

    Memory stays near ``2 x anchors`` allowed rows per format plus the violations: the sample is
    cut again whenever the allowed rows gathered reach twice its size.
    """

    def __init__(self, policy: KeepPolicy) -> None:
        self.policy = policy
        self.bounds: dict[str, int] = dict(policy.below)
        self.parts: list[pa.Table] = []
        self.rows_in = 0
        self._allowed = 0

    def bound(self, format_name: str) -> np.uint64:
        """Rows of ``format_name`` hashing above this are outside the sample already."""
        return np.uint64(self.bounds.get(format_name, int(ALL)))

    def add(self, table: pa.Table) -> None:
        """Take a table of loaded rows (already normalised)."""
        self.rows_in += table.num_rows
        kept, self.bounds = cut_sample(table, self.policy, self.bounds)
        if kept.num_rows:
            self.parts.append(kept)
            self._allowed += kept.num_rows - int(is_kept_verdict(kept, self.policy).sum())
        if self._allowed > 2 * self.policy.anchors:
            self._compact()

    def _compact(self) -> None:
        combined = pa.concat_tables(self.parts) if len(self.parts) > 1 else self.parts[0]
        kept, self.bounds = cut_sample(combined, self.policy, self.bounds)
        self.parts = [kept]
        self._allowed = kept.num_rows - int(is_kept_verdict(kept, self.policy).sum())

    def tables(self) -> list[pa.Table]:
        """The kept rows (the exact sample over everything added)."""
        if self.parts:
            self._compact()
        return [t for t in self.parts if t.num_rows]

    @property
    def rows_kept(self) -> int:
        return sum(t.num_rows for t in self.parts)


def sample_rows(table: pa.Table, bounds: Mapping[str, int]) -> pa.Table:
    """The rows of ``table`` inside the uniform sample (all rows when nothing was sampled).

    A statistic over every flow (the bytes norm) must not mix all violations with sampled
    allowed rows: it reads the sample, which covers every verdict alike.
    """
    if not bounds or table.num_rows == 0:
        return table
    hashes = row_hashes(table)
    formats = np.array(table.column("source_format").to_pylist(), dtype=object)
    keep = np.ones(table.num_rows, dtype=bool)
    for fmt, bound in bounds.items():
        rows = formats == fmt
        keep[rows] = hashes[rows] <= np.uint64(bound)
    return table.filter(pa.array(keep))


def sample_bounds(table: pa.Table, policy: KeepPolicy, formats: set[str]) -> dict[str, int]:
    """For each of ``formats`` (those whose allowed rows were sampled), the largest hash among its
    kept allowed rows: the bound ``sample_rows`` reads the uniform sample by."""
    if not formats or table.num_rows == 0:
        return {f: 0 for f in sorted(formats)}
    hashes = row_hashes(table)
    allowed = ~is_kept_verdict(table, policy)
    names = np.array(table.column("source_format").to_pylist(), dtype=object)
    bounds = {}
    for fmt in sorted(formats):
        rows = allowed & (names == fmt)
        bounds[fmt] = int(hashes[rows].max()) if rows.any() else 0
    return bounds
