"""What every loader shares: options, load accounting, reject handling and batched table building."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from ..errors import FormatMismatch, Reject, SourceLocation, StrictRejection
from ..keep import Keeper, KeepPolicy
from ..schema import concat
from ..sources import LongLine, Source
from .fields import without_surrogates

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
    spill: Callable[[pa.Table], None] | None = None
    """For network loaders: hand rows to this as they are read instead of keeping them (``ingest``
    writes them to disk, so memory does not grow with the file); the result's table is empty."""

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


def read_counting_long_lines(
    read: Callable[[Source, LoadOptions], LoadResult], source: Source, options: LoadOptions
) -> LoadResult:
    """``read(source, options)``, with each line the reader skipped for being longer than
    ``--max-line-bytes`` counted as a read and rejected row with its ``path:line`` (the reader
    never held it), so one long line costs that line, not its file. Under ``strict`` the first
    rejected row by line stops the load, a long line included."""
    try:
        result = read(source, options)
    except StrictRejection as exc:
        first = min(source.oversize, key=lambda x: x.line, default=None)
        if first is not None and (exc.line is None or first.line < exc.line):
            raise StrictRejection(
                f"{_long_reject(source, first)} (--strict stops at the first rejected row)",
                first.line,
            ) from None
        raise
    if not source.oversize:
        return result
    for long in sorted(source.oversize, key=lambda x: x.line):
        item = _long_reject(source, long)
        if options.strict:
            raise StrictRejection(f"{item} (--strict stops at the first rejected row)", long.line)
        result.stats.read += 1
        result.stats.rejected += 1
        result.rejects.append(item)
    result.rejects.sort(key=lambda r: r.location.line or 0)
    source.oversize.clear()
    return result


def _long_reject(source: Source, long: LongLine) -> Reject:
    start = long.start.decode("utf-8", errors="replace")
    return Reject(
        SourceLocation(source.display, long.line),
        f"a line of {long.length:,} bytes, longer than {source.limits.max_line_bytes:,} "
        "(--max-line-bytes): skipped",
        f"{start}... [{long.length - len(long.start):,} more bytes]",
    )


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
            raise StrictRejection(
                f"{item} (--strict stops at the first rejected row)", item.location.line
            )
        if self.stats.loaded == 0 and self.stats.rejected >= EARLY_STOP_REJECTS:
            fmt = self.stats.format
            raise FormatMismatch(
                f"{self.source.display}: the first {self.stats.rejected} records all failed as {fmt} "
                f"(first: {self.rejects[0].reason}); this does not look like {fmt}; "
                f"try --input-format or `correlate sniff {self.source.display}`"
            )


class Batcher:
    """Accumulates rows as dicts and turns every ``BATCH_ROWS`` of them into an Arrow table.

    With a ``keeper``, each table goes through it (``run`` keeps violations and anchors only), and
    column-wise loaders hand it their tables with ``add_table`` so rows stay in line order.
    """

    def __init__(self, schema: pa.Schema, keeper: Keeper | Spill | None = None) -> None:
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
            arrays = [_array(self._columns[f.name], f.type) for f in self.schema]
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


class Counts:
    """A file's accounting as readers report to it: notes, and records read and then rejected or
    skipped (``FileLoad`` adds records read and loaded). Loaders and the ``records`` helpers
    count through it, never ``stats.read`` by hand."""

    def __init__(self, stats: LoadStats, sink: RejectSink) -> None:
        self.stats, self.sink = stats, sink

    def reject(self, line: int, reason: str, raw: bytes | str, count: int = 1) -> None:
        """``count`` records of line ``line`` that cannot be loaded, with the reason."""
        self.stats.read += count
        self.sink.reject(line, reason, raw, count)

    def skip(self, reason: str, count: int = 1) -> None:
        """``count`` records read and deliberately not loaded (a header, a blank line, ...)."""
        self.stats.read += count
        self.stats.skipped[reason] += count

    def note(self, text: str, count: int = 1) -> None:
        """Something assumed or repaired while reading (counted in the load summary)."""
        self.stats.notes[text] += count


class FileLoad(Counts):
    """One file's load: every record read is emitted, rejected or skipped through it.

    It counts ``read`` itself, so ``read = loaded + rejected + skipped`` holds by construction; it
    stamps each row's provenance (format, path, line) and counts its ``ts_note``; it keeps rows
    in a ``Batcher`` (through ``run``'s keeper for network rows); ``result`` gives the
    ``LoadResult``. Under ``--strict`` the first reject stops the load.
    """

    def __init__(
        self,
        source: Source,
        options: LoadOptions,
        name: str,
        kind: str,
        schema: pa.Schema,
        *,
        unit: str = "rows",
    ) -> None:
        self.source = source
        self.options = options
        self.name = name
        self.kind = kind
        stats = LoadStats(path=source.display, format=name, kind=kind, unit=unit)
        super().__init__(stats, RejectSink(source, stats, options.strict))
        self.rows = Batcher(schema, keeper_for(options) if kind == "network" else None)
        self.out_of_order = False
        """Rows were kept out of line order (``columnar.Deferred``): ``result`` sorts them."""

    @property
    def keeper(self) -> Keeper | None:
        """``run``'s keeper, when rows are sampled as they are read."""
        keeper = self.rows.keeper
        return keeper if isinstance(keeper, Keeper) else None

    def emit(self, row: dict[str, Any], line: int) -> None:
        """A converted row from line ``line``."""
        row["source_format"] = self.name
        row["source_path"] = self.source.display
        row["source_line"] = line
        self.rows.add(row)
        self.stats.read += 1
        self.stats.loaded += 1
        note = row.get("ts_note")
        if note:
            self.stats.notes[note] += 1

    def emit_table(self, table: pa.Table, *, loaded: int | None = None) -> None:
        """Rows converted column-wise (provenance stamped, without notes); ``loaded`` (default:
        the table's rows) counts the rows checked and loaded, some of them not kept."""
        count = table.num_rows if loaded is None else loaded
        self.count_loaded(count)
        self.keep_rows(table, unkept=count - table.num_rows)

    def count_loaded(self, count: int) -> None:
        """``count`` records read and loaded column-wise (their rows follow in ``keep_rows``);
        negative: records counted so far that were handed to the per-line reader after all."""
        self.stats.read += count
        self.stats.loaded += count

    def keep_rows(self, table: pa.Table, *, unkept: int = 0) -> None:
        """Rows already counted; ``unkept`` loaded rows were left out of memory."""
        self.stats.unkept += unkept
        if table.num_rows:
            self.rows.add_table(table)

    def apart(self) -> FileLoad:
        """A load sharing this one's accounting whose rows are kept apart (and all kept), for
        rows read line by line that are merged back in line order."""
        other = FileLoad.__new__(FileLoad)
        other.source, other.options, other.name, other.kind = (
            self.source,
            self.options,
            self.name,
            self.kind,
        )
        other.stats, other.sink = self.stats, self.sink
        other.rows = Batcher(self.rows.schema)
        other.out_of_order = False
        return other

    def result(
        self, *, hosts: pa.Table | None = None, context: list[str] | None = None
    ) -> LoadResult:
        """The rows kept, the accounting and the rejects."""
        table = self.rows.table()
        if self.out_of_order:
            table = table.sort_by([("source_line", "ascending")])  # stable: a line's rows stay
        self.stats.unkept += self.rows.unkept
        return LoadResult(
            kind=self.kind,
            table=table,
            stats=self.stats,
            rejects=self.sink.rejects,
            hosts=hosts,
            context=context or [],
        )


class Spill:
    """Hands every table to a writer as it comes (rows counted as kept: they are, on disk)."""

    def __init__(self, write: Callable[[pa.Table], None]) -> None:
        self.write = write
        self.rows_in = 0

    def add(self, table: pa.Table) -> None:
        self.rows_in += table.num_rows
        if table.num_rows:
            self.write(table)

    def tables(self) -> list[pa.Table]:
        return []

    @property
    def rows_kept(self) -> int:
        return self.rows_in


def _array(values: list[Any], type: pa.DataType) -> pa.Array:
    """``pa.array``, with lone surrogates (from JSON escapes a loader parsed itself) replaced by
    U+FFFD rather than failing the whole load (loaders reading through ``records`` note them)."""
    try:
        return pa.array(values, type=type)
    except UnicodeEncodeError:
        return pa.array([without_surrogates(v)[0] for v in values], type=type)


def keeper_for(options: LoadOptions) -> Keeper | Spill | None:
    """Where a network loader's rows go: a spill (``ingest``), ``run``'s keeper, or nowhere
    special (kept in memory)."""
    if options.spill is not None:
        return Spill(options.spill)
    return None if options.keep is None else Keeper(options.keep)


@runtime_checkable
class Loader(Protocol):
    """A format module (the registry's values): what it is, a score for a file's head, a reader.

    Modules may also define ``OPTIONS``: ``{key: help}`` for the ``--option <name>.KEY=VALUE``
    settings they read through ``LoadOptions.option``; the CLI refuses keys not listed there.
    """

    name: str
    kind: str
    """network | agent | hosts | enrichment"""
    description: str

    def sniff(self, head: bytes, filename: str) -> float:
        """How likely (0..1) a file with this head and name is this format."""
        ...

    def read(self, source: Source, options: LoadOptions) -> LoadResult:
        """The file's rows, accounting and rejects."""
        ...
