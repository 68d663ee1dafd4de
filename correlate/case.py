"""Case directory: load and normalise the evidence once, then ask it many questions.

``ingest`` reads input files (detecting formats, counting every row, exactly as ``correlate run``
does) and stores the normalised tables under the case directory::

    CASE/manifest.json       tool version, options, every input with SHA-256, size, format and
                             load counts, and each stored file's row count and SHA-256
    CASE/events.parquet      network events (numbered by time, then file and line)
    CASE/calls.parquet       tool calls
    CASE/hosts.parquet       identity rows (inventories and addresses named by trajectories)
    CASE/enrichment.parquet  facts about flows logged elsewhere (Zeek dns/ssl, Suricata dns/tls);
                             they fill events' empty domain/app when the case is opened
    CASE/rejects.jsonl       every rejected row: path, line, reason, raw text

Nothing in these files depends on the time of day, the machine's zone or the order of the paths
on the command line: ingesting the same files gives byte-identical tables, whether at once or in
several ingests (event ids are renumbered by time, file and line over the whole case). The
manifest also lists each ingest's options and files, so it differs between those two routes.

Ingest streams network events: loaders hand their rows to a ``merge.RunWriter`` as they read,
which writes them as sorted runs in the staging directory; ``merge.merge_runs`` merges the case's
events with the runs into the new events.parquet, byte for byte the file sorting everything in
memory would give. Memory stays flat however much traffic is ingested (the other tables are small
and handled in memory). Analyses read events.parquet a batch at a time through ``run``'s keeper
(``Case.loaded``), so they hold what ``run`` would hold: violations and the anchor sample.

Files are written to a staging directory first; the old manifest is removed before the new tables
are moved in and the new manifest is moved in last, so an interrupted ingest leaves either the
previous case or a directory without a manifest (which no command accepts as a case), never a
valid-looking partial case. ``verify`` re-checks the stored files and the inputs still present.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import __version__
from .atomic import atomic_path
from .errors import CorrelateError, InputError, Reject, SourceLocation
from .join import band_join
from .keep import Keeper, KeepPolicy, sample_bounds
from .loaders import LoadStats
from .loaders.base import BATCH_ROWS
from .merge import RunWriter, merge_runs
from .pipeline import (
    InputFile,
    Joiner,
    Loaded,
    ProgressCallback,
    Result,
    RunOptions,
    analyse,
    fill_from_enrichment,
    forced_format,
    load_file,
    load_inputs,
)
from .reports.parquet import write_table
from .schema import ENRICHMENT, HOSTS, NETWORK_EVENTS, TOOL_CALLS, concat
from .sources import Source, expand_paths
from .stats import Association, Baseline, OffsetEstimate
from .timeparse import ns_to_iso

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CASE_FORMAT = "correlate-case"
CASE_VERSION = 1
MANIFEST = "manifest.json"
REJECTS = "rejects.jsonl"
LOCK = ".lock"
RUNS = "runs"
"""Under an ingest's staging directory: the sorted runs of new network events (merge.py)."""
TABLES: dict[str, tuple[str, pa.Schema]] = {
    "events": ("events.parquet", NETWORK_EVENTS),
    "calls": ("calls.parquet", TOOL_CALLS),
    "hosts": ("hosts.parquet", HOSTS),
    "enrichment": ("enrichment.parquet", ENRICHMENT),
}
ANALYSIS_PARAMETERS = frozenset(
    (
        "before",
        "after",
        "gap",
        "violation_actions",
        "internal_cidrs",
        "unmapped",
        "rules",
        "offsets",
        "offset_auto",
        "permutations",
    )
)
"""Keys of ``RunOptions.parameters()`` that change the analysis; every other key changes loading."""
ANALYSIS_DEFAULT_KEYS = (
    "before",
    "after",
    "gap",
    "internal_cidr",
    "actions",
    "unmapped",
    "offset",
    "rules",
)
"""Analysis options an ingest may record as the case's defaults (CLI spelling, as given)."""


class CaseError(CorrelateError):
    """A case directory is missing, incomplete or inconsistent."""


def is_case(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a directory holding a case manifest."""
    return (Path(path) / MANIFEST).is_file()


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def load_parameters(options: RunOptions) -> dict[str, Any]:
    """The options that change how files are read, as plain values (recorded per ingest)."""
    params = options.parameters()
    reference = options.load.reference_ns
    return {
        # ``anchors`` only thins what ``run`` keeps in memory; a case stores every event
        **{
            k: v
            for k, v in sorted(params.items())
            if k not in ANALYSIS_PARAMETERS and k != "anchors"
        },
        "format_options": {
            k: dict(sorted(v.items())) for k, v in sorted(options.load.format_options.items())
        },
        "reference_date": None if reference is None else ns_to_iso(reference),
    }


# --- reading a case -------------------------------------------------------------------------


@dataclass
class CaseResult(Result):
    """A Result analysed from a case: its provenance names the case's ingests; statistics are cached."""

    case: dict[str, Any] = field(default_factory=dict)
    cache_dir: Path | None = None
    cached: bool = False
    """True when the analysis was read from the case's cache rather than computed."""

    def provenance(self) -> dict[str, Any]:
        """As ``Result.provenance``, with the loading options the case was ingested with."""
        data = super().provenance()
        ingests = self.case.get("ingests", [])
        options = [i["options"] for i in ingests]
        for key in sorted({k for o in options for k in o}):
            values = [o.get(key) for o in options]
            if values and all(v == values[0] for v in values):
                data["parameters"][key] = values[0]
            elif values:
                data["parameters"][key] = "per ingest: see case.ingests"
        data["case"] = self.case
        return data

    def statistics(self, permutations: int = 999) -> tuple[list[Association], list[Baseline]]:
        """As ``Result.statistics``, kept in the case's cache (the permutations take seconds)."""
        path = None if self.cache_dir is None else self.cache_dir / f"stats-v2-{permutations}.json"
        if path is not None and path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                return (
                    [Association(**a) for a in data["associations"]],
                    [Baseline(**b) for b in data["baselines"]],
                )
            except (OSError, ValueError, KeyError, TypeError):
                pass
        associations, baselines = super().statistics(permutations)
        if path is not None:
            data = {
                "associations": [asdict(a) for a in associations],
                "baselines": [asdict(b) for b in baselines],
            }
            with contextlib.suppress(OSError), atomic_path(path) as tmp:
                tmp.write_bytes(_json_bytes(data))
        return associations, baselines


@dataclass
class Case:
    """An opened case directory: its manifest, and its tables on demand."""

    path: Path
    manifest: dict[str, Any]

    @property
    def inputs(self) -> list[dict[str, Any]]:
        return list(self.manifest.get("inputs", []))

    @property
    def analysis_defaults(self) -> dict[str, Any]:
        """Analysis options recorded at ingest, used when a command does not give them."""
        return dict(self.manifest.get("analysis_defaults", {}))

    def table(self, name: str) -> pa.Table:
        """One stored table, whole (events are as loaded, before enrichment fills their domains).

        The events table grows with the traffic: ``loaded`` reads it with flat memory, and
        ``pyarrow.parquet.read_table(case.path / "events.parquet", filters=...)`` reads a slice.
        """
        filename, schema = TABLES[name]
        path = self.path / filename
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as exc:
            raise CaseError(
                f"{self.path}: cannot read {filename} ({exc}); run correlate verify"
            ) from None
        table = table.replace_schema_metadata(None)
        if table.schema != schema:
            raise CaseError(
                f"{self.path}: {filename} does not have the {name} schema of this correlate version"
            )
        return table

    def rejects(self) -> list[Reject]:
        """Every rejected row recorded by the ingests."""
        path = self.path / REJECTS
        if not path.exists():
            return []
        out = []
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    r = json.loads(line)
                    out.append(Reject(SourceLocation(r["path"], r["line"]), r["reason"], r["raw"]))
        return out

    def loaded(self, options: RunOptions | None = None, *, cache: bool = True) -> Loaded:
        """The case's tables as ``load_inputs`` would have returned them (no re-parsing).

        Network events go through ``run``'s keeper as ``load_inputs`` sends them: every event
        whose verdict is one of ``options.policy.actions`` and, of the others, the anchor sample
        of ``options.anchors`` rows per format (None keeps every event); ``network_rows`` and
        ``sample_bounds`` are filled as ``run`` fills them. ``events.parquet`` is read a batch at
        a time, so memory grows with what is kept, not with the traffic. Events keep the case's
        ids. With ``cache``, the kept rows are stored under ``CASE/cache/`` (keyed by the case's
        content, the actions and the anchors), so the next analysis does not read the table again.
        """
        options = options if options is not None else RunOptions()
        events, rows, bounds = self._kept_events(options, cache)
        return Loaded(
            events=events,
            calls=self.table("calls"),
            hosts=self.table("hosts"),
            inputs=[_input_file(r) for r in self.inputs],
            rejects=self.rejects(),
            network_rows=rows,
            sample_bounds=bounds,
        )

    def event_batches(self, rows: int = BATCH_ROWS) -> Iterator[pa.Table]:
        """``events.parquet`` as tables of up to ``rows`` rows, in the stored order."""
        path, filename = self._events_file()
        try:
            with pq.ParquetFile(path, pre_buffer=False) as source:  # no row group read ahead
                for batch in source.iter_batches(batch_size=rows):
                    yield pa.Table.from_batches([batch]).replace_schema_metadata(None)
        except (OSError, pa.ArrowException) as exc:
            raise CaseError(
                f"{self.path}: cannot read {filename} ({exc}); run correlate verify"
            ) from None

    def _events_file(self) -> tuple[Path, str]:
        """The events table's path, once its schema is checked."""
        filename = TABLES["events"][0]
        path = self.path / filename
        try:
            schema = pq.read_schema(path).remove_metadata()
        except (OSError, pa.ArrowException) as exc:
            raise CaseError(
                f"{self.path}: cannot read {filename} ({exc}); run correlate verify"
            ) from None
        if schema != NETWORK_EVENTS:
            raise CaseError(
                f"{self.path}: {filename} does not have the events schema of this correlate version"
            )
        return path, filename

    def _kept_events(
        self, options: RunOptions, cache: bool
    ) -> tuple[pa.Table, int, dict[str, int]]:
        """The events ``run`` would keep (enrichment applied), all events' count, sample bounds."""
        if options.anchors is None:
            events = self.table("events")
            return fill_from_enrichment(events, self.table("enrichment")), events.num_rows, {}
        policy = KeepPolicy(options.policy.actions, options.anchors)
        where = None
        if cache:
            key = _kept_key(sha256_file(self.path / MANIFEST), policy)
            where = self.path / CACHE / f"kept-{key}"
            found = _read_kept(where)
            if found is not None:
                return found
        keeper = Keeper(policy)
        rows = 0
        for batch in self.event_batches():
            rows += batch.num_rows
            keeper.add(batch)
        kept = concat(keeper.tables(), NETWORK_EVENTS)
        # the keeper bounds a format as soon as it leaves out any of its rows: those were sampled
        bounds = sample_bounds(kept, policy, set(keeper.bounds))
        events = fill_from_enrichment(kept, self.table("enrichment"))
        if where is not None:
            with contextlib.suppress(OSError):
                _write_kept(where, events, rows, bounds)
        return events, rows, bounds

    def analyse(
        self, options: RunOptions, *, cache: bool = True, joiner: Joiner = band_join
    ) -> CaseResult:
        """``analyse`` over the stored tables with the given analysis options.

        The answer is kept under ``CASE/cache/`` keyed by the manifest and the options (a derived
        copy, safe to delete; checked by SHA-256 when read back). A read-only case still works.
        """
        summary = {
            "format": CASE_FORMAT,
            "manifest_sha256": sha256_file(self.path / MANIFEST),
            "ingests": self.manifest.get("ingests", []),
            "analysis_defaults": self.analysis_defaults,
        }
        key = _analysis_key(summary["manifest_sha256"], options)
        where = self.path / CACHE / key
        loaded = self.loaded(options, cache=cache)
        if cache:
            found = _read_cached(where, loaded, options, summary)
            if found is not None:
                return found
        result = analyse(loaded, options, joiner=joiner)
        values = {f.name: getattr(result, f.name) for f in fields(Result)}
        out = CaseResult(**values, case=summary, cache_dir=where if cache else None)
        if cache:
            with contextlib.suppress(OSError):
                _write_cached(where, out)
        return out

    def kinds(self) -> set[str]:
        """Which kinds of input (network, agent, hosts, enrichment) the case holds."""
        return {r["kind"] for r in self.inputs if r.get("kind")}

    def time_span(self) -> tuple[int, int] | None:
        """The first and last time (ns) of the case's network events and tool calls, or None.

        Read from the Parquet statistics of ``events.ts`` and ``calls.ts_start``/``ts_end``
        (microsecond precision, enough to tell the days a case covers), scanning the column only
        for a row group without them.
        """
        lows: list[int] = []
        highs: list[int] = []
        for name, columns in (("events", ("ts",)), ("calls", ("ts_start", "ts_end"))):
            path = self.path / TABLES[name][0]
            try:
                for column in columns:
                    found = _column_span(path, column)
                    if found is not None:
                        lows.append(found[0])
                        highs.append(found[1])
            except (OSError, pa.ArrowException) as exc:
                raise CaseError(
                    f"{self.path}: cannot read {path.name} ({exc}); run correlate verify"
                ) from None
        return (min(lows), max(highs)) if lows else None


def _column_span(path: Path, column: str) -> tuple[int, int] | None:
    """Min and max (ns) of a timestamp column, from row-group statistics where present."""
    source = pq.ParquetFile(path)
    metadata = source.metadata
    index = source.schema_arrow.get_field_index(column)
    lows: list[int] = []
    highs: list[int] = []
    for group in range(metadata.num_row_groups):
        stats = metadata.row_group(group).column(index).statistics
        if stats is not None and stats.has_min_max:
            lows.append(_as_ns(stats.min))
            highs.append(_as_ns(stats.max))
        elif metadata.row_group(group).num_rows:
            values = source.read_row_group(group, columns=[column]).column(0)
            low, high = pc.min_max(values.cast(pa.int64())).values()
            if low.is_valid:
                lows.append(low.as_py())
                highs.append(high.as_py())
    return (min(lows), max(highs)) if lows else None


def _as_ns(value: Any) -> int:
    """A Parquet statistic of a timestamp column (a datetime, or an int in the column's unit)."""
    if hasattr(value, "timestamp"):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        delta = moment - EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
    return int(value)


def _input_file(record: dict[str, Any]) -> InputFile:
    stats = None
    if record.get("format") and "read" in record:
        stats = LoadStats(
            path=record["path"],
            format=record["format"],
            kind=record.get("kind") or "",
            read=record["read"],
            loaded=record["loaded"],
            rejected=record["rejected"],
            skipped=Counter(record.get("skipped", {})),
            notes=Counter(record.get("notes", {})),
            unit=record.get("unit", "rows"),
        )
    return InputFile(
        path=record["path"],
        format=record.get("format"),
        kind=record.get("kind"),
        sha256=record["sha256"],
        size=record["size"],
        score=record.get("score"),
        forced=bool(record.get("forced")),
        stats=stats,
        skipped_reason=record.get("skipped_reason"),
    )


def open_case(path: str | os.PathLike[str]) -> Case:
    """Open a case directory (its manifest only; tables are read when asked for)."""
    root = Path(path)
    if not root.exists():
        raise CaseError(f"{path}: no such case directory; create it with correlate ingest")
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        hint = (
            " (case files without a manifest: an ingest was interrupted; ingest again)"
            if any((root / f).exists() for f, _ in TABLES.values())
            else ""
        )
        raise CaseError(f"{path}: not a case directory, no {MANIFEST}{hint}")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CaseError(f"{path}: {MANIFEST} is not readable JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != CASE_FORMAT:
        raise CaseError(f"{path}: {MANIFEST} is not a correlate case manifest")
    if manifest.get("case_version") != CASE_VERSION:
        raise CaseError(
            f"{path}: case version {manifest.get('case_version')!r} is not {CASE_VERSION}; "
            "ingest the inputs again with this correlate"
        )
    return Case(root, manifest)


def load_case_or_inputs(
    paths: Sequence[str],
    options: RunOptions,
    *,
    inventories: Sequence[str] = (),
    progress: ProgressCallback | None = None,
    ignore_integrity: bool = False,
) -> Loaded:
    """``load_inputs``, except that a single case directory is opened instead of walked.

    Lets every command that takes PATHS (``run``, ``offset``, ``stats``) take a CASE too; the
    loading options are then the ones the case was ingested with. A case whose stored files do
    not match its manifest raises IntegrityError unless ``ignore_integrity``.
    """
    if len(paths) == 1 and not inventories and is_case(paths[0]):
        case = open_case(paths[0])
        check_integrity(case, ignore=ignore_integrity)
        return case.loaded(options)
    return load_inputs(paths, options, inventories=inventories, progress=progress)


# --- ingesting ------------------------------------------------------------------------------


@dataclass
class IngestReport:
    """What one ingest did: files added (with accounting), files already present, totals."""

    case: Path
    created: bool
    added: list[InputFile]
    already_present: list[tuple[str, str]]
    """(path given now, path it was ingested as) for inputs whose SHA-256 the case holds."""
    counts: dict[str, int]
    warnings: list[str]
    rejects: list[Reject]

    def summary(self) -> dict[str, Any]:
        """Plain values for ``--json``."""
        return {
            "case": str(self.case),
            "created": self.created,
            "added": [
                {
                    "path": f.path,
                    "format": f.format,
                    "sha256": f.sha256,
                    "read": f.stats.read if f.stats else None,
                    "loaded": f.stats.loaded if f.stats else None,
                    "rejected": f.stats.rejected if f.stats else None,
                    "skipped": f.stats.skipped_total if f.stats else None,
                    "skipped_reason": f.skipped_reason,
                }
                for f in self.added
            ],
            "already_present": [{"path": p, "as": a} for p, a in self.already_present],
            "counts": self.counts,
            "warnings": self.warnings,
        }


def ingest(
    case_dir: str | os.PathLike[str],
    paths: Sequence[str],
    options: RunOptions,
    *,
    inventories: Sequence[str] = (),
    analysis_defaults: dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
) -> IngestReport:
    """Load the files under ``paths`` into the case at ``case_dir`` (created if needed).

    Inputs whose SHA-256 the case already holds are not read again; a path ingested before whose
    content has changed is an error (the case keeps what it read). ``analysis_defaults`` (CLI
    option values, e.g. ``{"offset": ["auto"]}``) are recorded for later commands.
    """
    root = Path(case_dir)
    if root.exists() and not root.is_dir():
        raise CaseError(f"{case_dir}: exists and is not a directory")
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root):
        for stale in root.glob(".staging-*"):  # left by an ingest that was killed (its runs)
            shutil.rmtree(stale, ignore_errors=True)
        previous = open_case(root) if is_case(root) else None
        return _ingest_locked(
            root, previous, paths, options, inventories, analysis_defaults or {}, progress
        )


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One ingest at a time per case (an advisory lock on CASE/.lock)."""
    with open(root / LOCK, "a+b") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CaseError(f"{root}: another ingest is writing this case") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _ingest_locked(
    root: Path,
    previous: Case | None,
    paths: Sequence[str],
    options: RunOptions,
    inventories: Sequence[str],
    analysis_defaults: dict[str, Any],
    progress: ProgressCallback | None,
) -> IngestReport:
    case_root = root.resolve()
    sources = [
        s
        for s in expand_paths(paths, options.limits)
        if s.problem is not None or not s.path.resolve().is_relative_to(case_root)
    ]
    inventory_sources = expand_paths(inventories, options.limits) if inventories else []
    inventory_paths = {s.path.resolve() for s in inventory_sources if s.problem is None}
    sources = [
        s for s in sources if s.problem is not None or s.path.resolve() not in inventory_paths
    ]
    jobs = [(s, forced_format(s, options.formats)) for s in sources] + [
        (s, "inventory") for s in inventory_sources
    ]
    if not jobs:
        raise InputError("no input files found under " + ", ".join(str(p) for p in paths))
    old_inputs = previous.inputs if previous else []
    by_sha = {r["sha256"]: r["path"] for r in old_inputs}
    by_path = {r["path"]: r["sha256"] for r in old_inputs}
    new_jobs: list[tuple[Source, str | None, str]] = []
    present: list[tuple[str, str]] = []
    for source, forced in jobs:
        digest = source.sha256()
        if digest in by_sha:
            present.append((source.display, by_sha[digest]))
            continue
        if source.display in by_path:
            raise CaseError(
                f"{source.display}: already in the case with different content (ingested "
                f"sha256 {by_path[source.display][:12]}…, now {digest[:12]}…); the case keeps "
                "what it ingested: ingest the new version into a new case"
            )
        by_sha[digest] = source.display
        new_jobs.append((source, forced, digest))
    batch = len(previous.manifest.get("ingests", [])) + 1 if previous else 1
    # Network events go to disk as they are read (sorted runs under the staging directory) and
    # are merged with the case's events into the new events.parquet; the other tables are small.
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    try:
        runs = RunWriter(staging / RUNS, NETWORK_EVENTS)
        added, tables, rejects = _load(new_jobs, options, progress, runs)
        warnings: list[str] = []
        if previous is not None and not added:
            counts = previous.manifest.get("counts", {})
            return IngestReport(root, False, [], present, counts, warnings, [])
        old_events = [previous._events_file()[0]] if previous else []
        event_rows = merge_runs(
            old_events + runs.finish(),
            staging / TABLES["events"][0],
            NETWORK_EVENTS,
            _table_metadata("events"),
            workdir=staging / RUNS,
        )
        shutil.rmtree(staging / RUNS, ignore_errors=True)  # what is left: not moved into the case
        report = _finish_ingest(
            root,
            staging,
            previous,
            options,
            analysis_defaults,
            batch,
            added,
            present,
            tables,
            event_rows,
            rejects,
            warnings,
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(root / CACHE, ignore_errors=True)  # analyses of the previous content
    return report


def _finish_ingest(
    root: Path,
    staging: Path,
    previous: Case | None,
    options: RunOptions,
    analysis_defaults: dict[str, Any],
    batch: int,
    added: list[InputFile],
    present: list[tuple[str, str]],
    tables: dict[str, pa.Table],
    event_rows: int,
    rejects: list[Reject],
    warnings: list[str],
) -> IngestReport:
    """The other tables merged with the case's, the manifest, and the commit."""
    old_inputs = previous.inputs if previous else []
    old = {name: previous.table(name) if previous else None for name in tables}
    merged = {
        name: _canonical(
            name, concat([t for t in (old[name], tables[name]) if t is not None], schema)
        )
        for name, (_, schema) in TABLES.items()
        if name in tables
    }
    all_rejects = (previous.rejects() if previous else []) + rejects
    all_rejects.sort(key=lambda r: (r.location.path, r.location.line))
    all_inputs = sorted(old_inputs + [_input_record(f, root, batch) for f in added], key=_input_key)
    kinds = {r["kind"] for r in all_inputs if r.get("kind")}
    if "network" not in kinds:
        warnings.append("no firewall or flow log in the case yet; add one with correlate ingest")
    if "agent" not in kinds:
        warnings.append("no agent trajectory in the case yet; add one with correlate ingest")
    defaults = dict(previous.analysis_defaults) if previous else {}
    defaults.update({k: v for k, v in analysis_defaults.items() if k in ANALYSIS_DEFAULT_KEYS})
    ingests = list(previous.manifest.get("ingests", [])) if previous else []
    ingests.append(
        {
            "number": batch,
            "options": load_parameters(options),
            "added": sorted(f.path for f in added),
            "already_present": sorted(p for p, _ in present),
        }
    )
    counts = {
        "network_events": event_rows,
        "tool_calls": merged["calls"].num_rows,
        "identity_rows": merged["hosts"].num_rows,
        "enrichment_rows": merged["enrichment"].num_rows,
        "rejected": len(all_rejects),
        "inputs": len(all_inputs),
    }
    manifest: dict[str, Any] = {
        "format": CASE_FORMAT,
        "case_version": CASE_VERSION,
        "created_by": {
            "tool": "correlate",
            "version": __version__,
            "pyarrow": pa.__version__,
            "command": "correlate ingest",
        },
        "analysis_defaults": dict(sorted(defaults.items())),
        "ingests": ingests,
        "inputs": all_inputs,
        "counts": counts,
        "files": {},
    }
    _commit(root, staging, merged, event_rows, all_rejects, manifest)
    return IngestReport(root, previous is None, added, present, counts, warnings, rejects)


def _table_metadata(name: str) -> dict[str, str]:
    return {"correlate.table": name, "correlate.case": CASE_FORMAT}


def _load(
    jobs: list[tuple[Source, str | None, str]],
    options: RunOptions,
    progress: ProgressCallback | None,
    runs: RunWriter,
) -> tuple[list[InputFile], dict[str, pa.Table], list[Reject]]:
    """Read each new file as ``load_inputs`` does, keeping the tables apart by kind.

    Network rows go to ``runs`` (loaders hand them over as they read, through the spill; those
    that return their rows have them handed over here); the other tables are returned.
    """
    parts: dict[str, list[pa.Table]] = {name: [] for name in TABLES if name != "events"}
    inputs: list[InputFile] = []
    rejects: list[Reject] = []
    context: dict[str, str] = {}
    kinds = {"agent": "calls", "hosts": "hosts", "enrichment": "enrichment"}
    spilling = replace(options, load=replace(options.load, spill=runs.add))
    for done, (source, forced, digest) in enumerate(jobs):
        if progress:
            progress(source.display, done, len(jobs))
        record = InputFile(
            path=source.display, format=None, kind=None, sha256=digest, size=source.size()
        )
        inputs.append(record)
        result = load_file(source, forced, spilling, record)
        if result is None:
            runs.discard()  # rows a skipped file spilled before it was given up
            continue
        rejects.extend(result.rejects)
        if result.kind == "network":
            runs.add(result.table)
        elif result.kind in kinds:
            parts[kinds[result.kind]].append(result.table)
        runs.commit()
        if result.hosts is not None:
            parts["hosts"].append(result.hosts)
        for path in result.context:
            context.setdefault(path, source.display)
    if progress:
        progress("", len(jobs), len(jobs))
    for record, (source, _, _) in zip(inputs, jobs, strict=True):
        if source.problem is not None:
            continue
        reader = context.get(str(source.path.resolve()))
        if record.format is None and reader is not None:
            record.skipped_reason = f"read as context by {reader}"
    tables = {name: concat(parts[name], TABLES[name][1]) for name in parts}
    return inputs, tables, rejects


def _canonical(name: str, table: pa.Table) -> pa.Table:
    """A stored table in an order that depends only on its rows (events numbered in that order)."""
    if name == "events":
        ordered = table.sort_by(
            [("ts", "ascending"), ("source_path", "ascending"), ("source_line", "ascending")]
        )
        ids = pa.array(range(1, ordered.num_rows + 1), pa.int64())
        return ordered.set_column(ordered.schema.get_field_index("event_id"), "event_id", ids)
    keys = {
        "calls": ["ts_start", "source_path", "source_line"],
        "hosts": ["source_path", "source_line", "host", "ip", "valid_from"],
        "enrichment": ["ts", "source_path", "source_line"],
    }[name]
    return table.sort_by([(k, "ascending") for k in keys])


def _input_key(record: dict[str, Any]) -> tuple[str, str]:
    return (record["path"], record["sha256"])


def _input_record(f: InputFile, root: Path, batch: int) -> dict[str, Any]:
    """An input as the manifest keeps it: where, what, its hash and its accounting."""
    record: dict[str, Any] = {
        "path": f.path,
        "path_from_case": _path_from_case(f.path, root),
        "sha256": f.sha256,
        "size": f.size,
        "format": f.format,
        "kind": f.kind,
        "score": f.score,
        "forced": f.forced,
        "ingest": batch,
    }
    if f.stats is not None:
        record.update(
            unit=f.stats.unit,
            read=f.stats.read,
            loaded=f.stats.loaded,
            rejected=f.stats.rejected,
            skipped=dict(sorted(f.stats.skipped.items())),
            notes=dict(sorted(f.stats.notes.items())),
        )
    if f.skipped_reason:
        record["skipped_reason"] = f.skipped_reason
    return record


def _path_from_case(path: str, root: Path) -> str | None:
    """Where an input is seen from the case, when both were named relative to one directory.

    Purely lexical, so the manifest holds no absolute path and does not depend on where the
    work directory is; None when either path is absolute or climbs out of the work directory.
    """
    given, case = os.path.normpath(path), os.path.normpath(root)
    if os.path.isabs(given) or os.path.isabs(case):
        return None
    if given.split(os.sep)[0] == os.pardir or case.split(os.sep)[0] == os.pardir:
        return None
    return os.path.relpath(given, case)


def _write_rejects(path: Path, rejects: Sequence[Reject]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for r in rejects:
            record = {
                "path": r.location.path,
                "line": r.location.line,
                "reason": r.reason,
                "raw": r.raw,
            }
            fh.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")


def _commit(
    root: Path,
    staging: Path,
    tables: dict[str, pa.Table],
    event_rows: int,
    rejects: Sequence[Reject],
    manifest: dict[str, Any],
) -> None:
    """Write the rest to the staging directory (which holds events.parquet with ``event_rows``
    rows already), then move it all in with the manifest last."""
    files: dict[str, dict[str, Any]] = {}
    for name, (filename, _) in TABLES.items():
        path = staging / filename
        if name == "events":
            rows = event_rows
        else:
            write_table(tables[name], path, _table_metadata(name))
            rows = tables[name].num_rows
        files[filename] = {"rows": rows, "sha256": sha256_file(path)}
    _write_rejects(staging / REJECTS, rejects)
    files[REJECTS] = {"rows": len(rejects), "sha256": sha256_file(staging / REJECTS)}
    manifest["files"] = files
    (staging / MANIFEST).write_bytes(_json_bytes(manifest))
    mode = (staging / MANIFEST).stat().st_mode & 0o777  # what the umask allows
    for path in staging.iterdir():
        path.chmod(mode)
        _fsync(path)
    # The commit: without a manifest the directory is not a case, so no reader ever sees new
    # tables under an old manifest or the reverse.
    (root / MANIFEST).unlink(missing_ok=True)
    for filename in [*files]:
        os.replace(staging / filename, root / filename)
    os.replace(staging / MANIFEST, root / MANIFEST)
    _fsync(root)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- verifying ------------------------------------------------------------------------------


@dataclass
class Verification:
    """What ``verify`` found: problems (each one sentence) and what it checked."""

    case: Path
    problems: list[str]
    checked_files: int
    checked_inputs: int
    missing_inputs: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> dict[str, Any]:
        return {
            "case": str(self.case),
            "ok": self.ok,
            "problems": self.problems,
            "checked_files": self.checked_files,
            "checked_inputs": self.checked_inputs,
            "missing_inputs": self.missing_inputs,
        }


def verify(case_dir: str | os.PathLike[str]) -> Verification:
    """Re-check the stored files (rows, SHA-256) and re-hash the inputs that are still present."""
    case = open_case(case_dir)
    problems, checked_files = _stored_file_problems(case, remembered=None)
    checked_inputs = 0
    missing: list[str] = []
    for record in case.inputs:
        found = _locate(case.path, record)
        if found is None:
            missing.append(record["path"])
            continue
        checked_inputs += 1
        size = found.stat().st_size
        digest = sha256_file(found)
        if digest != record["sha256"] or size != record["size"]:
            problems.append(
                f"input {record['path']} has changed since it was ingested (SHA-256 {digest[:12]}…, "
                f"{size} bytes; ingested {record['sha256'][:12]}…, {record['size']} bytes)."
            )
    return Verification(case.path, problems, checked_files, checked_inputs, missing)


def _stored_file_problems(
    case: Case, remembered: dict[str, dict[str, Any]] | None
) -> tuple[list[str], int]:
    """Problems with the case's own files (one sentence each) and how many were checked.

    With ``remembered`` (filename -> {"stat", "sha256", "rows"}), a file whose stat is unchanged
    is not hashed again; the entries of files hashed now are put in it.
    """
    problems: list[str] = []
    checked = 0
    for filename, expected in sorted(case.manifest.get("files", {}).items()):
        path = case.path / filename
        try:
            stat = path.stat()
        except OSError:
            stat = None
        if stat is None or not path.is_file():
            problems.append(f"{filename} is missing from the case.")
            continue
        checked += 1
        key = _stat_key(stat)
        known = remembered.get(filename) if remembered is not None else None
        if known is not None and known.get("stat") == key:
            digest, rows = known["sha256"], known["rows"]
        else:
            digest, rows = sha256_file(path), _row_count(path)
            if remembered is not None:
                remembered[filename] = {"stat": key, "sha256": digest, "rows": rows}
        if digest != expected["sha256"]:
            problems.append(
                f"{filename} has SHA-256 {digest[:12]}…, the manifest recorded {expected['sha256'][:12]}…."
            )
        if rows is None:
            problems.append(f"{filename} cannot be read.")
        elif rows != expected["rows"]:
            problems.append(
                f"{filename} holds {rows} rows, the manifest recorded {expected['rows']}."
            )
    for filename, _ in TABLES.values():
        if filename not in case.manifest.get("files", {}):
            problems.append(f"the manifest does not list {filename}.")
    return problems, checked


# --- integrity before answering -------------------------------------------------------------

INTEGRITY = "integrity.json"
"""Under ``CASE/cache/``: each stored file's SHA-256 and row count, keyed by its stat."""
RACY_NS = 2_000_000_000
"""A file modified this recently when hashed is hashed again next time (a change within the
filesystem's timestamp granularity would not show in its stat)."""


class IntegrityError(CaseError):
    """The case's stored files do not match its manifest: its answers cannot be trusted."""

    def __init__(self, case: Path, problems: Sequence[str]) -> None:
        self.case = case
        self.problems = list(problems)
        others = len(problems) - 1
        more = f" (and {others} more problem{'s' if others > 1 else ''})" if others else ""
        super().__init__(
            f"{case}: {problems[0].rstrip('.')}{more}. The case's files no longer match its "
            "manifest, so its answers cannot be trusted: correlate verify lists every problem; "
            "ingest the inputs again into a new case, or give --ignore-integrity to answer anyway"
        )


def _stamp_entry(value: object) -> bool:
    """True for a well-formed remembered entry: {"stat": [5 ints], "sha256": str, "rows": ...}."""
    if not isinstance(value, dict) or not isinstance(value.get("sha256"), str):
        return False
    stat = value.get("stat")
    rows = value.get("rows")
    return (
        isinstance(stat, list)
        and len(stat) == 5
        and all(isinstance(x, int) for x in stat)
        and (rows is None or isinstance(rows, int))
    )


def _stat_key(stat: os.stat_result) -> list[int]:
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev]


def integrity_problems(case: Case) -> list[str]:
    """What ``verify`` finds wrong with the case's stored files (not its inputs), cheaply.

    Each file's SHA-256 and row count are remembered in ``CASE/cache/integrity.json`` keyed by
    its size, mtime, ctime, inode and device, so a file is hashed again only when one of those
    changed (or it was modified within ``RACY_NS`` of being hashed). ``verify`` always re-hashes.
    A read-only case is hashed every time.
    """
    path = case.path / CACHE / INTEGRITY
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        remembered = {str(k): v for k, v in data["files"].items() if _stamp_entry(v)}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        remembered = {}
    before = json.dumps(remembered, sort_keys=True)
    problems, _ = _stored_file_problems(case, remembered)
    now = time.time_ns()
    keep = {
        name: entry
        for name, entry in remembered.items()
        if name in case.manifest.get("files", {}) and now - entry["stat"][1] >= RACY_NS
    }
    if json.dumps(keep, sort_keys=True) != before:
        with contextlib.suppress(OSError):
            path.parent.mkdir(exist_ok=True)
            with atomic_path(path) as tmp:
                tmp.write_bytes(_json_bytes({"files": keep}))
    return problems


def check_integrity(case: Case, *, ignore: bool = False) -> list[str]:
    """``integrity_problems``, raising IntegrityError (exit code 1) unless ``ignore``.

    With ``ignore`` the problems are returned for the caller to warn about.
    """
    problems = integrity_problems(case)
    if problems and not ignore:
        raise IntegrityError(case.path, problems)
    return problems


def _row_count(path: Path) -> int | None:
    try:
        if path.suffix == ".parquet":
            return int(pq.ParquetFile(path).metadata.num_rows)
        with open(path, "rb") as fh:
            return sum(1 for line in fh if line.strip())
    except (OSError, pa.ArrowException):
        return None


def _locate(root: Path, record: dict[str, Any]) -> Path | None:
    """An input's file: relative to the case as recorded, else as its path was given."""
    relative = record.get("path_from_case")
    candidates = [root / relative] if relative else []
    for candidate in [*candidates, Path(record["path"])]:
        if candidate.is_file():
            return candidate
    return None


# --- the analysis cache ---------------------------------------------------------------------

CACHE = "cache"
CACHE_KEEP = 16
_CACHED_TABLES = ("identity", "violations", "candidates", "attributions", "findings")


def _analysis_key(manifest_sha256: str, options: RunOptions) -> str:
    """What the analysis depends on: the case's content, the options and the rules, the version."""
    material = {
        "manifest": manifest_sha256,
        "parameters": options.parameters(),
        "rules": options.rules.data,
        "version": __version__,
    }
    text = json.dumps(material, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _kept_key(manifest_sha256: str, policy: KeepPolicy) -> str:
    """What the kept events depend on: the case's content, the actions, the anchors, the version."""
    material = {
        "manifest": manifest_sha256,
        "actions": sorted(policy.actions),
        "anchors": policy.anchors,
        "version": __version__,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:32]


def _write_kept(where: Path, events: pa.Table, rows: int, bounds: dict[str, int]) -> None:
    """Store the events an analysis keeps under ``where`` (a temporary directory renamed)."""
    where.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=where.parent))
    try:
        path = staging / "events.parquet"
        write_table(events, path, {"correlate.table": "kept events"})
        meta = {"network_rows": rows, "sample_bounds": bounds, "sha256": sha256_file(path)}
        (staging / "kept.json").write_bytes(_json_bytes(meta))
        os.replace(staging, where)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _prune(where.parent)


def _read_kept(where: Path) -> tuple[pa.Table, int, dict[str, int]] | None:
    """Kept events stored by ``_write_kept``, or None when absent or they do not check out."""
    try:
        meta = json.loads((where / "kept.json").read_text(encoding="utf-8"))
        path = where / "events.parquet"
        if sha256_file(path) != meta["sha256"]:
            return None
        events = pq.read_table(path).replace_schema_metadata(None)
        if events.schema != NETWORK_EVENTS:
            return None
        os.utime(where)
        bounds = {str(k): int(v) for k, v in meta["sample_bounds"].items()}
        return events, int(meta["network_rows"]), bounds
    except (OSError, ValueError, KeyError, TypeError, AttributeError, pa.ArrowException):
        return None


def _write_cached(where: Path, result: CaseResult) -> None:
    """Store an analysis under ``where`` (a temporary directory renamed into place)."""
    where.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=where.parent))
    try:
        hashes = {}
        for name in _CACHED_TABLES:
            path = staging / f"{name}.parquet"
            write_table(getattr(result, name), path, {"correlate.table": name})
            hashes[name] = sha256_file(path)
        meta = {
            "identity_mode": result.identity_mode,
            "applied_offsets": result.applied_offsets,
            "offset_estimates": [asdict(e) for e in result.offset_estimates],
            "sha256": hashes,
        }
        (staging / "result.json").write_bytes(_json_bytes(meta))
        os.replace(staging, where)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _prune(where.parent)


def _read_cached(
    where: Path, loaded: Loaded, options: RunOptions, summary: dict[str, Any]
) -> CaseResult | None:
    """A cached analysis, or None when there is none or it does not check out."""
    try:
        meta = json.loads((where / "result.json").read_text(encoding="utf-8"))
        tables = {}
        for name in _CACHED_TABLES:
            path = where / f"{name}.parquet"
            if sha256_file(path) != meta["sha256"][name]:
                return None
            tables[name] = pq.read_table(path).replace_schema_metadata(None)
        estimates = [OffsetEstimate(**e) for e in meta["offset_estimates"]]
        os.utime(where)
        return CaseResult(
            loaded=loaded,
            options=options,
            identity_mode=meta["identity_mode"],
            offset_estimates=estimates,
            applied_offsets={k: float(v) for k, v in meta["applied_offsets"].items()},
            case=summary,
            cache_dir=where,
            cached=True,
            **tables,
        )
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException):
        return None


def _prune(cache: Path) -> None:
    """Keep the most recently used analyses only."""
    entries = sorted(
        (p for p in cache.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in entries[CACHE_KEEP:]:
        shutil.rmtree(old, ignore_errors=True)


__all__ = [
    "CASE_FORMAT",
    "Case",
    "CaseError",
    "CaseResult",
    "IngestReport",
    "IntegrityError",
    "Verification",
    "check_integrity",
    "ingest",
    "integrity_problems",
    "is_case",
    "load_case_or_inputs",
    "open_case",
    "verify",
]
