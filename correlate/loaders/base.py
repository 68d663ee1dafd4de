"""What every loader shares: options, load accounting, reject handling and batched table building."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from typing import Any, Protocol

import pyarrow as pa

from ..errors import FormatMismatch, Reject, SourceLocation, StrictRejection
from ..keep import Keeper, KeepPolicy
from ..schema import concat
from ..sources import Source

MAX_RAW_CHARS = 4096
"""How much of a rejected line is kept for ``--rejects``."""

EARLY_STOP_REJECTS = 100
"""When this many records were read and every one was rejected, the file is not this format."""

BATCH_ROWS = 65_536


@dataclass(frozen=True)
class LoadOptions:
    """Options that change how rows are read (not which rows are violations)."""

    zones: dict[str, tzinfo] = field(default_factory=dict)
    """Zone for naive times, per format name; key ``*`` applies to every format."""
    epoch_unit: str = "auto"
    strict: bool = False
    reference_ns: int | None = None
    """Reference time for logs without a year (RFC 3164 syslog); None = the file's mtime, noted."""
    format_options: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Per-format settings from ``--option FORMAT.KEY=VALUE`` (e.g. ``aws_vpc_flow.fields``)."""
    keep: KeepPolicy | None = None
    """For network loaders: keep only violations and the anchor sample (``run``); None keeps all."""

    def option(self, format_name: str, key: str, default: str | None = None) -> str | None:
        """A per-format setting, or ``default``."""
        return self.format_options.get(format_name, {}).get(key, default)

    def zone_for(self, format_name: str, default: tzinfo = UTC) -> tzinfo:
        """The zone naive times of ``format_name`` are read in: its override, ``*``, or the default."""
        return self.zones.get(format_name, self.zones.get("*", default))


@dataclass
class LoadStats:
    """Per-file accounting: every record read is loaded, rejected or skipped (with a reason)."""

    path: str
    format: str
    kind: str
    read: int = 0
    loaded: int = 0
    rejected: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)
    unit: str = "rows"
    unkept: int = 0
    """Loaded rows not kept in memory (allowed traffic outside ``run``'s anchor sample)."""

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    @property
    def balanced(self) -> bool:
        return self.read == self.loaded + self.rejected + self.skipped_total


@dataclass
class LoadResult:
    """What a loader returns: its normalised rows, identity rows it found, and the accounting."""

    kind: str
    """network | agent | hosts | enrichment: which table ``table`` belongs to."""
    table: pa.Table
    stats: LoadStats
    rejects: list[Reject]
    hosts: pa.Table | None = None
    """Identity rows the file revealed (e.g. a trajectory naming its sandbox's address)."""
    context: list[str] = field(default_factory=list)
    """Other files this loader read as context (resolved paths), e.g. a sibling ``result.json``."""


class RejectSink:
    """Collects rejected rows for one file; under ``strict`` the first one stops the load."""

    def __init__(self, source: Source, stats: LoadStats, strict: bool) -> None:
        self.source = source
        self.stats = stats
        self.strict = strict
        self.rejects: list[Reject] = []

    def reject(self, line: int, reason: str, raw: bytes | str, count: int = 1) -> None:
        """Record a rejected row (``count`` > 1 when one line held several records)."""
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
        if len(text) > MAX_RAW_CHARS:
            text = text[:MAX_RAW_CHARS] + f"... [{len(text) - MAX_RAW_CHARS} more characters]"
        item = Reject(SourceLocation(self.source.display, line), reason, text)
        self.stats.rejected += count
        self.rejects.append(item)
        if self.strict:
            raise StrictRejection(f"{item} (--strict stops at the first rejected row)")
        if self.stats.loaded == 0 and self.stats.rejected >= EARLY_STOP_REJECTS:
            fmt = self.stats.format
            raise FormatMismatch(
                f"{self.source.display}: the first {self.stats.rejected} records all failed as {fmt} "
                f"(first: {self.rejects[0].reason}); this does not look like {fmt}; "
                f"try --format or `correlate sniff {self.source.display}`"
            )


class Batcher:
    """Accumulates rows as dicts and turns every ``BATCH_ROWS`` of them into an Arrow table.

    With a ``keeper``, each table goes through it (``run`` keeps violations and anchors only), and
    column-wise loaders hand it their tables with ``add_table`` so rows stay in line order.
    """

    def __init__(self, schema: pa.Schema, keeper: Keeper | None = None) -> None:
        self.schema = schema
        self.keeper = keeper
        self._names = schema.names
        self._columns: dict[str, list[Any]] = {n: [] for n in self._names}
        self._tables: list[pa.Table] = []
        self._pending = 0

    def add(self, row: dict[str, Any]) -> None:
        for name in self._names:
            self._columns[name].append(row.get(name))
        self._pending += 1
        if self._pending >= BATCH_ROWS:
            self._flush()

    def add_table(self, table: pa.Table) -> None:
        """Rows already in the schema (after the rows added before them)."""
        self._flush()
        self._keep(table)

    def _keep(self, table: pa.Table) -> None:
        if self.keeper is not None:
            self.keeper.add(table)
        elif table.num_rows:
            self._tables.append(table)

    def _flush(self) -> None:
        if self._pending:
            arrays = [pa.array(self._columns[f.name], type=f.type) for f in self.schema]
            self._keep(pa.Table.from_arrays(arrays, schema=self.schema))
            self._columns = {n: [] for n in self._names}
            self._pending = 0

    def table(self) -> pa.Table:
        self._flush()
        if self.keeper is not None:
            return concat(self.keeper.tables(), self.schema)
        return concat(self._tables, self.schema)

    @property
    def unkept(self) -> int:
        """Rows handed to the keeper that it did not keep."""
        return 0 if self.keeper is None else self.keeper.rows_in - self.keeper.rows_kept


def keeper_for(options: LoadOptions) -> Keeper | None:
    """A keeper for a network loader when ``run`` keeps only violations and anchors."""
    return None if options.keep is None else Keeper(options.keep)


class Loader(Protocol):
    """A format module: it says what it is, scores a file's head, and reads the file.

    Modules may also define ``OPTIONS``: ``{key: help}`` for the ``--option <name>.KEY=VALUE``
    settings they read through ``LoadOptions.option``; the CLI refuses keys not listed there.
    """

    name: str
    kind: str
    description: str
    sniff: Callable[[bytes, str], float]
    read: Callable[[Source, LoadOptions], LoadResult]
