"""Sorted runs on disk and their streaming k-way merge: how ``ingest`` keeps its memory flat.

``ingest`` hands network loaders a ``RunWriter`` as their spill. It holds at most ``RUN_ROWS``
rows: when they are full it sorts them by (ts, source_path, source_line) and writes them as one
Parquet *run*. ``merge_runs`` then merges the case's old ``events.parquet`` (already in that
order) and the new runs into the new ``events.parquet``, numbering ``event_id`` 1..N as it writes
row groups of the size ``pyarrow.parquet.write_table`` would have cut. The result is the file
that sorting every row in memory and writing it with ``write_table`` gives, byte for byte:
Arrow's sort is stable, a stable sort of a concatenation is a merge of its stably sorted parts
that breaks ties by part, and the runs are merged in the order their rows were loaded.

Memory: ``RUN_ROWS`` rows while loading (twice that while a run is sorted); while merging, a read
buffer of about ``READ_ROWS`` rows shared by the runs being merged (``FAN_IN`` at most: more are
merged in passes) and one run row group being written; then, while ``rewrite`` writes the
result, one output row group and one of its columns. None of it grows with the input. Disk: the
runs (LZ4 Parquet, about 22 bytes a flow record), and one merged copy of them at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .schema import conform

SORT_KEYS = [("ts", "ascending"), ("source_path", "ascending"), ("source_line", "ascending")]
"""The order of a case's events (nulls last, as Arrow sorts them)."""

RUN_ROWS = 1 << 18
"""Rows held in memory while loading, before they are sorted and written as one run."""
RUN_ROW_GROUP = 1 << 16
"""Row group size of run files (what one open run costs while merging is about one of them)."""
RUN_COMPRESSION = "lz4"
"""Runs are temporary: fast compression."""
FAN_IN = 64
"""Runs merged at once; more are merged in passes."""
READ_ROWS = 1 << 18
"""Rows buffered across the runs being merged (each reads batches of READ_ROWS / runs)."""
MIN_BATCH = 1024
ROW_GROUP_ROWS = 1 << 20
"""Where ``pyarrow.parquet.write_table`` cuts a table into row groups when not told (1024 * 1024,
as its documentation says)."""

Key = tuple[bool, int, bool, str, bool, int]
"""A row's sort key: (ts is null, ts, path is null, path, line is null, line)."""


class RunWriter:
    """The spill ``ingest`` gives network loaders: rows become sorted run files on disk.

    Rows of the file being read are kept apart from those of files already read, so a file that
    turns out to be skipped (``discard``) takes its rows with it; ``commit`` accepts them. The
    runs are listed in the order their rows were loaded: rows of earlier files still held are
    written before the file being read writes a run of its own, and its runs are listed when it
    commits.
    """

    def __init__(self, directory: Path, schema: pa.Schema, run_rows: int | None = None) -> None:
        self.directory = directory
        self.schema = schema
        self.run_rows = max(1, run_rows or RUN_ROWS)
        self.runs: list[Path] = []
        self.rows = 0
        """Rows accepted so far (in runs or pending)."""
        self.peak_rows = 0
        """The most rows held in memory at once (not counting the table being handed over)."""
        self._file: list[pa.Table] = []
        self._file_rows = 0
        self._file_runs: list[Path] = []
        self._file_run_rows = 0
        self._done: list[pa.Table] = []
        self._done_rows = 0
        self._count = 0
        directory.mkdir(parents=True, exist_ok=True)

    def add(self, table: pa.Table) -> None:
        """Rows of the file being read (any number: they are cut to fit)."""
        if table.num_rows == 0:
            return
        if table.schema != self.schema:
            table = conform(table, self.schema)
        offset = 0
        while offset < table.num_rows:
            if self._file_rows + self._done_rows >= self.run_rows:
                if self._done_rows:
                    self._flush_done()
                else:
                    self._file_runs.append(self._write(self._file))
                    self._file_run_rows += self._file_rows
                    self._file, self._file_rows = [], 0
            room = self.run_rows - self._file_rows - self._done_rows
            piece = table.slice(offset, room)
            self._file.append(piece)
            self._file_rows += piece.num_rows
            offset += piece.num_rows
            self.peak_rows = max(self.peak_rows, self._file_rows + self._done_rows)

    def commit(self) -> None:
        """The file was loaded: its rows are part of the case."""
        self.runs += self._file_runs
        self.rows += self._file_run_rows + self._file_rows
        self._done += self._file
        self._done_rows += self._file_rows
        self._forget_file()

    def discard(self) -> None:
        """The file was skipped: forget its rows."""
        for path in self._file_runs:
            path.unlink(missing_ok=True)
        self._forget_file()

    def _forget_file(self) -> None:
        self._file, self._file_rows, self._file_runs, self._file_run_rows = [], 0, [], 0

    def finish(self) -> list[Path]:
        """Write what is pending; the runs, in order."""
        self.discard()
        if self._done_rows:
            self._flush_done()
        return list(self.runs)

    def _flush_done(self) -> None:
        path = self._write(self._done)
        self._done, self._done_rows = [], 0
        self.runs.append(path)  # before the runs of the file being read (listed when it commits)

    def _write(self, parts: list[pa.Table]) -> Path:
        table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
        path = self.directory / f"run-{self._count:06d}.parquet"
        self._count += 1
        pq.write_table(
            table.sort_by(SORT_KEYS),
            path,
            row_group_size=RUN_ROW_GROUP,
            compression=RUN_COMPRESSION,
        )
        return path


# --- merging --------------------------------------------------------------------------------


def read_batches(path: Path, rows: int) -> Iterator[pa.Table]:
    """A Parquet file as tables of up to ``rows`` rows (schema metadata dropped)."""
    # without pre-buffering, an open file costs about one page per column (it would read ahead
    # whole row groups: several MB for each of up to FAN_IN files)
    with pq.ParquetFile(path, pre_buffer=False) as source:
        for batch in source.iter_batches(batch_size=max(1, rows), use_threads=False):
            yield pa.Table.from_batches([batch]).replace_schema_metadata(None)


class _Cursor:
    """A sorted input read batch by batch: the rows read and not yet merged, with their keys."""

    def __init__(self, batches: Iterator[pa.Table]) -> None:
        self._batches = batches
        self.table: pa.Table | None = None
        self.start = 0
        self.exhausted = False
        self.last: Key | None = None
        self._n = 0
        self.pull()

    @property
    def held(self) -> int:
        return 0 if self.table is None else self.table.num_rows - self.start

    def pull(self) -> None:
        """Add the next non-empty batch to the rows held, or note that there is none."""
        for batch in self._batches:
            if batch.num_rows == 0:
                continue
            if self.held:
                assert self.table is not None
                batch = pa.concat_tables([self.table.slice(self.start), batch])
            self.table, self.start = batch, 0
            self._index()
            return
        self.exhausted = True

    def _index(self) -> None:
        assert self.table is not None
        ts = self.table.column("ts")
        lines = self.table.column("source_line")
        self._n = self.table.num_rows
        self._valid = self._n - ts.null_count  # nulls sort last
        self._ts = np.asarray(pc.fill_null(ts.cast(pa.int64()), 0).to_numpy())
        self._lines = np.asarray(pc.fill_null(lines, 0).to_numpy())
        self._line_valid = np.asarray(lines.is_valid().to_numpy(zero_copy_only=False))
        self._paths = self.table.column("source_path").combine_chunks()
        self.last = self.key(self._n - 1)

    def key(self, i: int) -> Key:
        path = self._paths[i].as_py()
        return (
            i >= self._valid,
            int(self._ts[i]) if i < self._valid else 0,
            path is None,
            "" if path is None else path,
            not self._line_valid[i],
            int(self._lines[i]),
        )

    def below(self, bound: Key) -> int:
        """How many held rows sort strictly before ``bound``."""
        lo, hi = self.start, self._n
        if lo >= hi:
            return 0
        if bound[0]:
            lo = max(lo, self._valid)
        else:
            head = self._ts[lo : self._valid] if lo < self._valid else self._ts[:0]
            lo, hi = (
                lo + int(np.searchsorted(head, bound[1], "left")),
                lo + int(np.searchsorted(head, bound[1], "right")),
            )
        rest = bound[2:]
        while lo < hi:  # rows [lo, hi) share the bound's ts (or lack one): compare path and line
            mid = (lo + hi) // 2
            if self.key(mid)[2:] < rest:
                lo = mid + 1
            else:
                hi = mid
        return lo - self.start

    def take(self, count: int) -> pa.Table | None:
        """The next ``count`` held rows (they leave the cursor)."""
        if count <= 0 or self.table is None:
            return None
        piece = self.table.slice(self.start, count)
        self.start += count
        return piece


def merge(sources: Sequence[Iterator[pa.Table]]) -> Iterator[pa.Table]:
    """Merge inputs each sorted by ``SORT_KEYS`` into one stream in that order.

    Rows with equal keys come out in the order of their inputs, then of their rows: what a
    stable sort of the inputs' concatenation gives. Each step emits every held row that sorts
    before the smallest last key held by an input not yet exhausted, then reads on from the
    inputs holding that key.
    """
    cursors = [_Cursor(iter(s)) for s in sources]
    while True:
        active = [c for c in cursors if not c.exhausted]
        if not active:
            pieces = [p for c in cursors if (p := c.take(c.held)) is not None]
            if pieces:
                yield _sorted(pieces)
            return
        bound = min(c.last for c in active if c.last is not None)
        pieces = [p for c in cursors if (p := c.take(c.below(bound))) is not None]
        if pieces:
            yield _sorted(pieces)
        for c in active:
            if c.last == bound:
                c.pull()


def _sorted(pieces: list[pa.Table]) -> pa.Table:
    if len(pieces) == 1:
        return pieces[0]
    return pa.concat_tables(pieces).sort_by(SORT_KEYS)


def regroup(tables: Iterable[pa.Table], rows: int) -> Iterator[pa.Table]:
    """The rows of ``tables`` as tables of exactly ``rows`` rows (the last may be shorter), each
    column one contiguous array (so a Parquet writer encodes them as it would slices of one
    table). Columns are joined one at a time, letting the pieces go as they are copied."""
    pending: list[list[pa.ChunkedArray | None]] = []
    count = 0
    schema: pa.Schema | None = None
    for table in tables:
        schema = table.schema
        offset = 0
        while offset < table.num_rows:
            piece = table.slice(offset, rows - count)
            pending.append(list(piece.columns))
            count += piece.num_rows
            offset += piece.num_rows
            if count == rows:
                yield _joined(pending, schema)
                pending, count = [], 0
    if count and schema is not None:
        yield _joined(pending, schema)


def _joined(pending: list[list[pa.ChunkedArray | None]], schema: pa.Schema) -> pa.Table:
    columns = []
    for i in range(len(schema)):
        chunks = []
        for part in pending:
            column = part[i]
            assert column is not None
            chunks += column.chunks
            part[i] = None
        columns.append(pa.concat_arrays(chunks) if len(chunks) != 1 else chunks[0])
    pending.clear()
    return pa.Table.from_arrays(columns, schema=schema)


def merge_runs(
    inputs: Sequence[Path],
    output: Path,
    schema: pa.Schema,
    metadata: dict[str, str],
    *,
    workdir: Path,
    number: str | None = "event_id",
) -> int:
    """Merge sorted Parquet files into ``output``; returns its rows.

    ``output`` is what ``reports.parquet.write_table`` writes for the rows sorted in memory
    (``number`` set to 1..N) with ``metadata``. While there are more than ``FAN_IN`` inputs, the
    adjacent ones with the fewest rows are merged into one, just enough of them for ``FAN_IN`` to
    be left (so most rows are merged once, and a large old table is not copied an extra time);
    those are merged into one sorted file under ``workdir``, which is rewritten a row group at a
    time (``rewrite``). Inputs under ``workdir`` are deleted once merged; others (the case's old
    table) are only read.
    """
    level = list(inputs)
    merged = 0
    while len(level) > 1:
        take = min(FAN_IN, len(level) - FAN_IN + 1) if len(level) > FAN_IN else len(level)
        sizes = [pq.ParquetFile(p).metadata.num_rows for p in level]
        at = min(range(len(level) - take + 1), key=lambda i: sum(sizes[i : i + take]))
        group = level[at : at + take]
        path = workdir / f"merged-{merged:06d}.parquet"
        merged += 1
        with pq.ParquetWriter(path, schema, compression=RUN_COMPRESSION) as writer:
            for table in regroup(merge(_readers(group)), RUN_ROW_GROUP):
                writer.write_table(table)
                del table
        for done in group:
            if done.parent == workdir:
                done.unlink()
        level[at : at + take] = [path]  # in place: ties still break by input order
    rows = rewrite(level[0] if level else None, output, schema, metadata, number=number)
    if level and level[0].parent == workdir:
        level[0].unlink()
    return rows


def rewrite(
    source: Path | None,
    output: Path,
    schema: pa.Schema,
    metadata: dict[str, str],
    *,
    number: str | None = "event_id",
) -> int:
    """Write the rows of the sorted file ``source`` (None: no rows) as ``write_table`` would.

    Each output row group is gathered a column at a time from the row groups of ``source`` that
    hold its rows, as one contiguous array (what a slice of one in-memory table is): the writer
    then cuts pages and falls back from dictionaries exactly where it would have. Memory: one
    output row group plus one of its columns. (Gathering the row group from the merge's pieces
    instead held about twice that: the pieces and their copy.)
    """
    stored = schema.with_metadata({k.encode(): v.encode() for k, v in metadata.items()})
    rows = 0
    # the settings of ``reports.parquet.write_table``, which writes a case's other files
    with pq.ParquetWriter(
        output, stored, compression="zstd", write_statistics=True, store_schema=True
    ) as writer:
        if source is not None:
            with pq.ParquetFile(source, pre_buffer=False) as reader:
                starts = np.cumsum(
                    [0]
                    + [reader.metadata.row_group(i).num_rows for i in range(reader.num_row_groups)]
                )
                total = int(starts[-1])
                for first in range(0, total, ROW_GROUP_ROWS):
                    last = min(first + ROW_GROUP_ROWS, total)
                    groups = [
                        i
                        for i in range(reader.num_row_groups)
                        if starts[i] < last and starts[i + 1] > first
                    ]
                    offset = first - int(starts[groups[0]])
                    columns: list[pa.Array] = []
                    for field in schema:
                        if field.name == number:
                            ids = np.arange(first + 1, last + 1, dtype=np.int64)
                            columns.append(pa.array(ids))
                            continue
                        read = reader.read_row_groups(
                            groups, columns=[field.name], use_threads=False
                        )
                        column = read.column(0).slice(offset, last - first)
                        del read
                        chunks = column.chunks
                        columns.append(pa.concat_arrays(chunks) if len(chunks) != 1 else chunks[0])
                        del column, chunks
                    writer.write_table(pa.Table.from_arrays(columns, schema=schema))
                    rows += last - first
                    del columns
        if rows == 0:
            writer.write_table(schema.empty_table())  # as write_table writes an empty table
    return rows


def _readers(paths: Sequence[Path]) -> list[Iterator[pa.Table]]:
    batch = max(MIN_BATCH, READ_ROWS // max(1, len(paths)))
    return [read_batches(p, batch) for p in paths]


__all__ = [
    "FAN_IN",
    "READ_ROWS",
    "ROW_GROUP_ROWS",
    "RUN_ROWS",
    "SORT_KEYS",
    "RunWriter",
    "merge",
    "merge_runs",
    "read_batches",
    "regroup",
]
