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

Commits are crash-safe at every step. A case's tables live in a generation directory,
``CASE/generations/N`` (N: the ingest that wrote it), and ``CASE/manifest.json`` names the
current one: it is the one pointer, replaced last with a single atomic rename. An ingest writes
and syncs the whole new generation in ``CASE/.staging-*``, renames it to ``generations/N``, and
then replaces the manifest; only after that are the convenience links at the top of the case
(``CASE/events.parquet -> generations/N/events.parquet``, ...) pointed at it and the previous
generation and the analysis cache removed. A kill before the manifest's rename leaves the
previous case as it was (plus leftovers); a kill after it leaves the new case. The next ingest
removes the leftovers (``.staging-*``, generations that are not current, temporary files,
links still at the previous generation) and ``verify`` names them. A directory that holds case
files but no manifest is refused with a sentence, never silently started over.

The manifest carries a seal (the SHA-256 of its canonical JSON) and the SHA-256 and row count of
each of its generation's files; ``integrity_problems`` checks them (and that the counts, inputs and
tables agree with each other) before any answer, and ``verify`` re-hashes everything, the inputs,
the analysis cache and the leftovers. Cache entries are bound to the hashes of the tables they
were computed from and authenticated with a key kept outside the case (``cache_key_path``), so an
entry forged in the case directory, even with its own hashes updated, is never used.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
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
from .atomic import SET_SUFFIX, atomic_path, check_file_set, fsync_path, sha256_file
from .errors import CorrelateError, InputError, Reject, SourceLocation, write_rejects
from .join import band_join
from .keep import Keeper, KeepPolicy, sample_bounds
from .loaders import LoadStats
from .loaders.base import BATCH_ROWS
from .merge import RunWriter, merge_runs
from .options import ANALYSIS_OPTIONS, PERMUTATIONS, RECORDED_KEYS
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
from .reports.parquet import write_parquet
from .same_events import merge_copies
from .schema import ENRICHMENT, HOSTS, NETWORK_EVENTS, TOOL_CALLS, concat
from .sources import Source, expand_paths
from .stats import Association, Baseline, OffsetEstimate
from .timeparse import ns_to_iso

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CASE_FORMAT = "correlate-case"
CASE_VERSION = 2
"""2: tables in ``generations/N`` named by the manifest, which is sealed (version 1 was flat)."""
MANIFEST = "manifest.json"
REJECTS = "rejects.jsonl"
LOCK = ".lock"
GENERATIONS = "generations"
"""Under the case: one directory per committed version of its tables (only the current one stays)."""
STAGING = ".staging-"
"""Prefix of the directory an ingest writes its generation in before the commit."""
RUNS = "runs"
"""Under an ingest's staging directory: the sorted runs of new network events (merge.py)."""
TABLES: dict[str, tuple[str, pa.Schema]] = {
    "events": ("events.parquet", NETWORK_EVENTS),
    "calls": ("calls.parquet", TOOL_CALLS),
    "hosts": ("hosts.parquet", HOSTS),
    "enrichment": ("enrichment.parquet", ENRICHMENT),
}
LINKED = (*(filename for filename, _ in TABLES.values()), REJECTS)
"""The files a generation holds besides its manifest, each linked from the top of the case."""
ANALYSIS_PARAMETERS = frozenset(
    key
    for option in (*ANALYSIS_OPTIONS, PERMUTATIONS)
    if not option.per_ingest
    for key in option.provenance
)
"""Keys of ``RunOptions.parameters()`` an ingest does not record with how it read the files: they
change the analysis (or, ``anchors``, only what ``run`` keeps in memory; a case keeps every event)."""
ANALYSIS_DEFAULT_KEYS = RECORDED_KEYS
"""Analysis options an ingest may record as the case's defaults (CLI spelling, as given)."""


class CaseError(CorrelateError):
    """A case directory is missing, incomplete or inconsistent."""


def is_case(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a directory holding a case manifest."""
    return (Path(path) / MANIFEST).is_file()


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def _canonical_json(data: Any) -> bytes:
    """The one serialisation a seal or an authentication code is computed over."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def manifest_seal(manifest: dict[str, Any]) -> str:
    """SHA-256 of the manifest's canonical JSON without its ``seal``."""
    return hashlib.sha256(
        _canonical_json({k: v for k, v in manifest.items() if k != "seal"})
    ).hexdigest()


def load_parameters(options: RunOptions) -> dict[str, Any]:
    """The options that change how files are read, as plain values (recorded per ingest)."""
    params = options.parameters()
    reference = options.load.reference_ns
    return {
        **{k: v for k, v in sorted(params.items()) if k not in ANALYSIS_PARAMETERS},
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
    case_root: Path | None = None
    """The case directory (its files and inputs are never replaced by an output)."""

    def provenance(self) -> dict[str, Any]:
        """As ``Result.provenance``, with the loading options the case was ingested with."""
        data = super().provenance()
        ingests = self.case.get("ingests", [])
        options = [i["options"] for i in ingests]
        # an older case may have recorded an analysis option per ingest: the value used wins
        for key in sorted({k for o in options for k in o} - ANALYSIS_PARAMETERS):
            values = [o.get(key) for o in options]
            if values and all(v == values[0] for v in values):
                data["parameters"][key] = values[0]
            elif values:
                data["parameters"][key] = "per ingest: see case.ingests"
        data["case"] = self.case
        return data

    def protected_files(self) -> list[tuple[Path, str]]:
        """The paths an output must never replace: the case's own files and its inputs."""
        if self.case_root is None:
            return [(Path(f.path), "an input of this analysis") for f in self.loaded.inputs]
        return case_files(self.case_root, [asdict(f) for f in self.loaded.inputs])

    def statistics(self, permutations: int = 999) -> tuple[list[Association], list[Baseline]]:
        """As ``Result.statistics``, kept in the case's cache (the permutations take seconds).

        The cached file is authenticated (``_sign``) and bound to its analysis' cache entry.
        """
        path = None if self.cache_dir is None else self.cache_dir / f"stats-v2-{permutations}.json"
        entry = None if self.cache_dir is None else self.cache_dir.name
        if path is not None and path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                if _authentic(data) and data.get("entry") == entry:
                    return (
                        [Association(**a) for a in data["associations"]],
                        [Baseline(**b) for b in data["baselines"]],
                    )
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                pass
        associations, baselines = super().statistics(permutations)
        if path is not None:
            data = _sign(
                {
                    "associations": [asdict(a) for a in associations],
                    "baselines": [asdict(b) for b in baselines],
                    "entry": entry,
                }
            )
            with contextlib.suppress(OSError), atomic_path(path) as tmp:
                tmp.write_bytes(_json_bytes(data))
        return associations, baselines


def case_files(root: Path, inputs: Sequence[dict[str, Any]]) -> list[tuple[Path, str]]:
    """A case's own files (manifest, links, generations, cache, lock) and its inputs as found."""
    own = [root / MANIFEST, root / LOCK, *(root / name for name in LINKED)]
    out = [(path, "a file of the case " + str(root)) for path in own]
    out += [(root / GENERATIONS, "inside the case " + str(root))]
    out += [(root / CACHE, "inside the case " + str(root))]
    for record in inputs:
        found = _locate(root, record) if "path" in record else None
        for path in {Path(record["path"]), *([found] if found else [])}:
            out.append((path, "an input of the case " + str(root)))
    return out


@dataclass
class Case:
    """An opened case directory: its manifest, and its tables on demand.

    ``path`` is the case directory; ``data`` the generation directory its manifest names, where
    every table is read from (resolved once, when the case is opened).
    """

    path: Path
    manifest: dict[str, Any]
    data: Path = field(default=Path())
    digest: str = ""
    """SHA-256 of the manifest's bytes as read (the case's digest: record it to check it later)."""

    def __post_init__(self) -> None:
        if self.data == Path():
            self.data = self.path / generation_dir(self.manifest)

    @property
    def inputs(self) -> list[dict[str, Any]]:
        return list(self.manifest.get("inputs", []))

    @property
    def analysis_defaults(self) -> dict[str, Any]:
        """Analysis options recorded at ingest, used when a command does not give them."""
        return dict(self.manifest.get("analysis_defaults", {}))

    def cache_binding(self) -> dict[str, Any] | None:
        """What a cache entry of this case must be bound to: the manifest's seal and the hashes
        of the tables as they are now, or None when they do not match the manifest (a damaged
        case is analysed from its tables, never answered from the cache)."""
        problems, digests = _integrity(self)
        return None if problems else _binding(self, digests)

    def table(self, name: str) -> pa.Table:
        """One stored table, whole (events are as loaded, before enrichment fills their domains).

        The events table grows with the traffic: ``loaded`` reads it with flat memory, and
        ``pyarrow.parquet.read_table(case.path / "events.parquet", filters=...)`` reads a slice.
        """
        filename, schema = TABLES[name]
        path = self.data / filename
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
        path = self.data / REJECTS
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
        path = self.data / filename
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
        binding = self.cache_binding() if cache else None
        if binding is not None:
            key = _kept_key(binding, policy)
            where = self.path / CACHE / f"kept-{key}"
            found = _read_kept(where, binding)
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
        if where is not None and binding is not None:
            with contextlib.suppress(OSError):
                _write_kept(where, events, rows, bounds, binding)
        return events, rows, bounds

    def analyse(
        self, options: RunOptions, *, cache: bool = True, joiner: Joiner = band_join
    ) -> CaseResult:
        """``analyse`` over the stored tables with the given analysis options.

        The answer is kept under ``CASE/cache/`` keyed by the hashes of the tables, the options
        and the version (a derived copy, safe to delete; authenticated and checked by SHA-256
        when read back, see ``_sign``). A case whose files do not match its manifest is analysed
        from its tables as they are and never from or into the cache. A read-only case still works.
        """
        summary = {
            "format": CASE_FORMAT,
            "manifest_sha256": self.manifest_sha256(),
            "ingests": self.manifest.get("ingests", []),
            "analysis_defaults": self.analysis_defaults,
        }
        binding = self.cache_binding() if cache else None
        where = None
        if binding is not None:
            where = self.path / CACHE / _analysis_key(binding, options)
        loaded = merge_copies(self.loaded(options, cache=cache))  # once, cached or not
        if where is not None and binding is not None:
            found = _read_cached(where, binding, loaded, options, summary)
            if found is not None:
                found.case_root = self.path
                return found
        result = analyse(loaded, options, joiner=joiner)
        values = {f.name: getattr(result, f.name) for f in fields(Result)}
        out = CaseResult(**values, case=summary, cache_dir=where, case_root=self.path)
        if where is not None and binding is not None:
            with contextlib.suppress(OSError):
                _write_cached(where, out, binding)
        return out

    def manifest_sha256(self) -> str:
        """SHA-256 of the manifest file as it was read when the case was opened."""
        if not self.digest:
            self.digest = sha256_file(self.path / MANIFEST)
        return self.digest

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
            path = self.data / TABLES[name][0]
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


def generation_dir(manifest: dict[str, Any]) -> str:
    """``generations/N``: where the tables of the manifest's version are (relative to the case)."""
    number = manifest.get("generation")
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise CaseError(f"{MANIFEST} names no generation of tables (generation {number!r})")
    return f"{GENERATIONS}/{number}"


def _without_manifest(root: Path) -> str | None:
    """Why a directory without a manifest must not be started over as a new case, or None.

    Under crashes the manifest is never lost (it is replaced by one rename), so a directory
    without one never had a committed case, except: tables at its top (an ingest by a correlate
    that committed file by file was interrupted), or a complete generation (an ingest was killed
    between moving its generation in and the commit, or the manifest was removed).
    """
    flat = [name for name in LINKED if (root / name).is_file() and not (root / name).is_symlink()]
    if flat:
        return (
            f"holds {flat[0]} but no {MANIFEST}: an ingest by an earlier correlate was interrupted "
            "while committing, so what the case held cannot be trusted; ingest the inputs into "
            "a new case directory"
        )
    generations = root / GENERATIONS
    complete = (
        sorted(
            (g for g in generations.iterdir() if (g / MANIFEST).is_file()),
            key=lambda g: (len(g.name), g.name),
        )
        if generations.is_dir()
        else []
    )
    if complete:
        found = complete[-1]
        return (
            f"has no {MANIFEST} but {found.relative_to(root)} holds a complete case (an ingest "
            f"was interrupted just before its commit, or {MANIFEST} was removed); to keep it, copy "
            f"{found / MANIFEST} to {root / MANIFEST} and run correlate verify; to start over, "
            "remove the directory"
        )
    return None


def open_case(path: str | os.PathLike[str]) -> Case:
    """Open a case directory (its manifest only; tables are read when asked for)."""
    root = Path(path)
    if not root.exists():
        raise CaseError(f"{path}: no such case directory; create it with correlate ingest")
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        reason = _without_manifest(root) if root.is_dir() else None
        if reason is not None:
            raise CaseError(f"{path}: not a case directory: it {reason}")
        started = root.is_dir() and (any(root.glob(STAGING + "*")) or (root / GENERATIONS).is_dir())
        hint = (
            " (an ingest into it was interrupted before its first commit; ingest again)"
            if started
            else ""
        )
        raise CaseError(f"{path}: not a case directory, no {MANIFEST}{hint}")
    try:
        raw = manifest_path.read_bytes()
        manifest = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise CaseError(f"{path}: {MANIFEST} is not readable JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != CASE_FORMAT:
        raise CaseError(f"{path}: {MANIFEST} is not a correlate case manifest")
    if manifest.get("case_version") != CASE_VERSION:
        raise CaseError(
            f"{path}: case version {manifest.get('case_version')!r} is not {CASE_VERSION}; "
            "ingest the inputs again with this correlate"
        )
    try:
        data = generation_dir(manifest)
    except CaseError as exc:
        raise CaseError(f"{path}: {exc}; the case is damaged") from None
    if not (root / data).is_dir():
        raise CaseError(
            f"{path}: {MANIFEST} names {data}, which is missing: the case is damaged (its tables "
            "are gone); ingest the inputs again into a new case"
        )
    return Case(root, manifest, root / data, hashlib.sha256(raw).hexdigest())


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
    digest: str = ""
    """SHA-256 of the case's manifest after this ingest: record it to check the case later."""
    leftovers_removed: list[str] = field(default_factory=list)
    """What interrupted ingests had left in the case, removed by this one."""

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
            "manifest_sha256": self.digest,
            "leftovers_removed": self.leftovers_removed,
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
        if is_case(root):
            previous: Case | None = open_case(root)
        else:
            reason = _without_manifest(root)
            if reason is not None:
                raise CaseError(f"{case_dir}: nothing was ingested: the directory {reason}")
            previous = None
        removed = _remove_leftovers(root, previous)
        report = _ingest_locked(
            root, previous, paths, options, inventories, analysis_defaults or {}, progress
        )
        report.leftovers_removed = removed
        return report


def _remove_leftovers(root: Path, previous: Case | None) -> list[str]:
    """Remove what interrupted ingests left (under the lock); returns the names removed.

    Staging directories, generations other than the current one, temporary files at the top and
    links still pointing at an earlier generation (pointed at the current one again).
    """
    removed: list[str] = []
    for stale in sorted(root.glob(STAGING + "*")):
        shutil.rmtree(stale, ignore_errors=True)
        removed.append(stale.name)
    for tmp in sorted(root.glob(".*.tmp")):
        _remove(tmp)
        removed.append(tmp.name)
    generations = root / GENERATIONS
    if generations.is_dir():
        current = previous.data.name if previous is not None else None
        for old in sorted(generations.iterdir()):
            if old.name != current:
                _discard(old)
                removed.append(f"{GENERATIONS}/{old.name}")
    cache = root / CACHE
    for tmp in sorted(cache.glob(".*")) if cache.is_dir() else []:  # interrupted cache writes
        _remove(tmp)
        removed.append(f"{CACHE}/{tmp.name}")
    if previous is not None:
        for entry in _stale_entries(previous):  # an ingest was killed before clearing them
            _discard(entry)
            removed.append(f"{CACHE}/{entry.name}")
        with contextlib.suppress(
            OSError
        ):  # convenience only: the case is read through its manifest
            _point_links(root, previous.data)
    return removed


def _stale_entries(case: Case) -> list[Path]:
    """Authentic cache entries computed from an earlier content of the case (another seal)."""
    cache = case.path / CACHE
    seal = case.manifest.get("seal")
    current = seal.get("sha256") if isinstance(seal, dict) else None
    out = []
    for entry in sorted(cache.iterdir()) if cache.is_dir() else []:
        if entry.is_dir() and _KEY_NAME.fullmatch(entry.name):
            meta_name = "kept.json" if entry.name.startswith("kept-") else "result.json"
            meta = _entry_meta(entry, meta_name, None)
            binding = meta.get("binding") if meta is not None else None
            if isinstance(binding, dict) and binding.get("seal") != current:
                out.append(entry)
    return out


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _discard(path: Path) -> None:
    """Remove a directory in one step: it is renamed to a hidden temporary name, then deleted,
    so a kill while deleting leaves that name (a leftover), never a half-deleted entry."""
    if not path.is_dir() or path.is_symlink():
        _remove(path)
        return
    hidden = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        os.rename(path, hidden)
    except FileNotFoundError:
        return
    shutil.rmtree(hidden, ignore_errors=True)


def _point_links(root: Path, data: Path) -> None:
    """Point each file's link at the top of the case at ``data``'s file (one rename each).

    Readers never go through these links (they read the generation the manifest names); they are
    there so ``CASE/events.parquet`` can be read directly. Without symbolic links (some file
    systems) there are none.
    """
    relative = data.relative_to(root).as_posix()
    for name in LINKED:
        link = root / name
        want = f"{relative}/{name}"
        if link.is_symlink() and os.readlink(link) == want:
            continue
        tmp = root / f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            os.symlink(want, tmp)
        except OSError:
            return
        try:
            os.replace(tmp, link)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise


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
    new_jobs: list[tuple[Source, str | None, str, _Stamp | None]] = []
    present: list[tuple[str, str]] = []
    for source, forced in jobs:
        stamp = _file_stamp(source)  # before the hash: a change while it is read shows in it
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
        new_jobs.append((source, forced, digest, stamp))
    batch = len(previous.manifest.get("ingests", [])) + 1 if previous else 1
    # Network events go to disk as they are read (sorted runs under the staging directory) and
    # are merged with the case's events into the new events.parquet; the other tables are small.
    staging = Path(tempfile.mkdtemp(prefix=STAGING, dir=root))
    try:
        runs = RunWriter(staging / RUNS, NETWORK_EVENTS)
        added, tables, rejects = _load(new_jobs, options, progress, runs)
        warnings: list[str] = []
        if previous is not None and not added:
            counts = previous.manifest.get("counts", {})
            digest = previous.manifest_sha256()
            return IngestReport(root, False, [], present, counts, warnings, [], digest=digest)
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
        shutil.rmtree(staging, ignore_errors=True)  # gone when committed: moved into the case
    report.warnings.extend(_after_commit(root, previous))
    return report


def _after_commit(root: Path, previous: Case | None) -> list[str]:
    """Point the links at the new generation, remove the previous one and the analysis cache.

    The case is committed already: a failure here is a warning (and a leftover the next ingest
    removes), never a failed ingest.
    """
    manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    data = root / generation_dir(manifest)
    warnings = []
    try:
        _point_links(root, data)
    except OSError as exc:
        warnings.append(f"the links at the top of the case were not updated ({exc})")
    for old in sorted((root / GENERATIONS).iterdir()):
        if old.name != data.name:
            _discard(old)
    _discard(root / CACHE)  # analyses of the previous content
    if previous is not None and previous.data.exists():
        warnings.append(f"{previous.data} could not be removed; the next ingest removes it")
    return warnings


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
        "generation": batch,
        "files": {},
    }
    digest = _commit(
        root, staging, merged, event_rows, all_rejects, manifest, first=previous is None
    )
    return IngestReport(
        root, previous is None, added, present, counts, warnings, rejects, digest=digest
    )


def _table_metadata(name: str) -> dict[str, str]:
    return {"correlate.table": name, "correlate.case": CASE_FORMAT}


_Stamp = tuple[int, int, int, int, int]


def _file_stamp(source: Source) -> _Stamp | None:
    """Size, mtime, ctime, inode and device of a local input (None for a URL or a problem)."""
    if source.problem is not None or source.url is not None:
        return None
    try:
        stat = os.stat(source.path)
    except OSError:
        return None
    return (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev)


def _unchanged(source: Source, digest: str, stamp: _Stamp | None) -> None:
    """Refuse an input that changed while it was ingested (its hash, size and rows would then
    come from different reads): its stat must be what it was before it was hashed, and its
    SHA-256 the one recorded."""
    if source.problem is not None:
        return
    now = _file_stamp(source)
    again = source.sha256()
    if now != stamp or again != digest:
        raise CaseError(
            f"{source.display}: changed while it was being ingested (SHA-256 {digest[:12]}… when "
            f"first read, {again[:12]}… after loading, or its size or times changed); nothing was "
            "added to the case: ingest again once the file is no longer being written"
        )


def _load(
    jobs: list[tuple[Source, str | None, str, _Stamp | None]],
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
    for done, (source, forced, digest, stamp) in enumerate(jobs):
        if progress:
            progress(source.display, done, len(jobs))
        size = stamp[0] if stamp is not None else source.size()
        record = InputFile(path=source.display, format=None, kind=None, sha256=digest, size=size)
        inputs.append(record)
        result = load_file(source, forced, spilling, record)
        _unchanged(source, digest, stamp)
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
    for record, (source, _, _, _) in zip(inputs, jobs, strict=True):
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
    """An input as the manifest keeps it: provenance's record (``InputFile.record``), where it
    is from the case, how it was chosen and in which ingest (the manifest sorts its keys)."""
    record = f.record()
    record.update(
        path_from_case=_path_from_case(f.path, root),
        kind=f.kind,
        score=f.score,
        forced=f.forced,
        ingest=batch,
    )
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


def _commit(
    root: Path,
    staging: Path,
    tables: dict[str, pa.Table],
    event_rows: int,
    rejects: Sequence[Reject],
    manifest: dict[str, Any],
    *,
    first: bool,
) -> str:
    """Write the rest of the new generation to ``staging`` (which holds events.parquet with
    ``event_rows`` rows already), move it in as ``generations/N`` and commit it by replacing the
    manifest, the one pointer to the current generation. Returns the manifest's SHA-256.

    Every step before the manifest's rename leaves the previous case as it was (the new
    generation is not named by its manifest); the rename switches to the new one at once.
    """
    files: dict[str, dict[str, Any]] = {}
    for name, (filename, _) in TABLES.items():
        path = staging / filename
        if name == "events":
            rows = event_rows
        else:
            write_parquet(tables[name], path, _table_metadata(name))
            rows = tables[name].num_rows
        files[filename] = {"rows": rows, "sha256": sha256_file(path)}
    write_rejects(staging / REJECTS, rejects)
    files[REJECTS] = {"rows": len(rejects), "sha256": sha256_file(staging / REJECTS)}
    manifest["files"] = files
    manifest["seal"] = {"sha256": manifest_seal(manifest)}
    data = _json_bytes(manifest)
    (staging / MANIFEST).write_bytes(data)  # the generation's own copy (verify compares them)
    mode = (staging / MANIFEST).stat().st_mode & 0o777  # what the umask allows
    for path in staging.iterdir():
        path.chmod(mode)
        fsync_path(path)
    staging.chmod(0o777 & ~_umask())  # mkdtemp made it 0700
    fsync_path(staging)
    generations = root / GENERATIONS
    generations.mkdir(exist_ok=True)
    target = generations / str(manifest["generation"])
    _remove(target)  # an earlier attempt at this ingest, never committed
    if first:  # no manifest yet, so not a case: the links are made first (dangling until the
        _point_links(root, target)  # rename), leaving one step between the rename and the commit
    os.rename(staging, target)
    try:
        fsync_path(generations)
        fsync_path(root)
        # The commit: one rename.
        with atomic_path(root / MANIFEST, durable=True) as tmp:
            tmp.write_bytes(data)
    except BaseException:
        if _read_or_empty(root / MANIFEST) != data:
            _remove(target)  # not committed: the case is the previous one (an interrupt)
        raise
    return hashlib.sha256(data).hexdigest()


def _read_or_empty(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


# --- verifying ------------------------------------------------------------------------------


@dataclass
class Verification:
    """What ``verify`` found: problems (each one sentence) and what it checked.

    ``leftovers`` (what interrupted ingests left; also among the problems) and ``notes`` (what
    could not be checked, not a problem) are listed apart for scripts.
    """

    case: Path
    problems: list[str]
    checked_files: int
    checked_inputs: int
    missing_inputs: list[str]
    leftovers: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    digest: str = ""
    """SHA-256 of the case's manifest (compare it with the one ``ingest`` printed)."""
    kind: str = "case"
    """``case``, or ``files`` for a set of output files (``correlate verify report.parquet``)."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> dict[str, Any]:
        return {
            "case": str(self.case),
            "kind": self.kind,
            "ok": self.ok,
            "problems": self.problems,
            "leftovers": self.leftovers,
            "notes": self.notes,
            "manifest_sha256": self.digest,
            "checked_files": self.checked_files,
            "checked_inputs": self.checked_inputs,
            "missing_inputs": self.missing_inputs,
        }


def verify(case_dir: str | os.PathLike[str]) -> Verification:
    """Re-check everything a case holds, or a set of output files.

    For a case: the manifest (its seal, and its counts, ingests and inputs against each other and
    the tables), every stored file (rows and SHA-256, re-hashed), the links at the top, the
    inputs still present (re-hashed), the analysis cache (each entry authenticated, bound to the
    current tables and re-hashed) and what interrupted ingests left. Given a file (a report or
    an export: its main file or its ``.files.json``), the set of files it belongs to.
    """
    target = Path(case_dir)
    if target.is_file() or target.name.endswith(SET_SUFFIX):
        problems, checked = check_file_set(target)
        return Verification(target, problems, checked, 0, [], kind="files")
    case = open_case(case_dir)
    problems, checked_files, digests = _stored_file_problems(case, remembered=None)
    problems = _manifest_problems(case) + problems
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
    notes: list[str] = []
    if _ingest_running(case.path):
        leftovers: list[str] = []
        notes.append("an ingest is writing this case now: what it is staging was not checked")
    else:
        leftovers = _leftovers(case)
    binding = None if problems else _binding(case, digests)
    if not notes:  # no ingest running
        stale = _stale_entries(case)
        leftovers += [
            f"{CACHE}/{entry.name} was computed from an earlier content of the case (an ingest "
            "was interrupted before clearing the cache); it is never used; the next ingest "
            "removes it."
            for entry in stale
        ]
    cache_problems, cache_notes = _cache_problems(case, binding)
    return Verification(
        case.path,
        problems + leftovers + cache_problems,
        checked_files,
        checked_inputs,
        missing,
        leftovers=leftovers,
        notes=notes + cache_notes,
        digest=case.manifest_sha256(),
    )


def _manifest_problems(case: Case) -> list[str]:
    """What is wrong with the manifest itself: its seal, and its parts against each other."""
    manifest = case.manifest
    problems: list[str] = []
    seal = manifest.get("seal")
    recorded = seal.get("sha256") if isinstance(seal, dict) else None
    if recorded != manifest_seal(manifest):
        problems.append(
            f"{MANIFEST} does not match its seal: its content (analysis defaults, ingests, "
            "inputs, counts or file hashes) was changed after ingest."
        )
    copy = case.data / MANIFEST
    try:
        same = hashlib.sha256(copy.read_bytes()).hexdigest() == case.manifest_sha256()
    except OSError:
        same = False
    if not same:
        problems.append(
            f"{copy.relative_to(case.path)} (the manifest its ingest wrote) is missing or "
            f"differs from {MANIFEST}: one of them was changed after ingest."
        )
    counts = manifest.get("counts", {})
    files = manifest.get("files", {})
    if not isinstance(counts, dict) or not isinstance(files, dict):
        return [*problems, f"{MANIFEST} has no counts or no files."]
    for count, filename in (
        ("network_events", TABLES["events"][0]),
        ("tool_calls", TABLES["calls"][0]),
        ("identity_rows", TABLES["hosts"][0]),
        ("enrichment_rows", TABLES["enrichment"][0]),
        ("rejected", REJECTS),
    ):
        rows = (
            files.get(filename, {}).get("rows") if isinstance(files.get(filename), dict) else None
        )
        if counts.get(count) != rows:
            problems.append(
                f"{MANIFEST} counts {counts.get(count)} {count.replace('_', ' ')} but records "
                f"{rows} rows in {filename}."
            )
    inputs = case.inputs
    if counts.get("inputs") != len(inputs):
        problems.append(f"{MANIFEST} counts {counts.get('inputs')} inputs but lists {len(inputs)}.")
    listed = {r.get("path") for r in inputs if isinstance(r, dict)}
    ingests = manifest.get("ingests", [])
    for number, record in enumerate(ingests, start=1):
        if not isinstance(record, dict) or record.get("number") != number:
            problems.append(f"{MANIFEST} lists its ingests out of order (at {number}).")
            break
        for path in record.get("added", []):
            if path not in listed:
                problems.append(
                    f"{MANIFEST} says ingest {number} added {path}, which its inputs do not list."
                )
    if manifest.get("generation") != len(ingests):
        problems.append(
            f"{MANIFEST} names generation {manifest.get('generation')} after {len(ingests)} ingests."
        )
    unknown = sorted(set(case.analysis_defaults) - set(ANALYSIS_DEFAULT_KEYS))
    if unknown:
        problems.append(
            f"{MANIFEST} holds analysis defaults an ingest never records: {', '.join(unknown)}."
        )
    return problems


def _from_inputs(sources: Sequence[str], inputs: set[str]) -> list[str]:
    """The row sources that name no input (a row's source is its input's path as given)."""
    return [
        s
        for s in sources
        if s not in inputs and not any(s.startswith(p + sep) for p in inputs for sep in "#!:")
    ]


def _stored_file_problems(
    case: Case, remembered: dict[str, dict[str, Any]] | None
) -> tuple[list[str], int, dict[str, str]]:
    """Problems with the case's own files (one sentence each), how many were checked, and the
    SHA-256 of each file as it is now.

    With ``remembered`` (filename -> {"stat", "sha256", "rows", "sources"}), a file whose stat
    is unchanged is not hashed again; the entries of files hashed now are put in it.
    """
    problems: list[str] = []
    checked = 0
    digests: dict[str, str] = {}
    inputs = {str(r.get("path")) for r in case.inputs}
    files = case.manifest.get("files", {})
    links = [name for name in LINKED if os.path.lexists(case.path / name)]
    for filename, expected in sorted(files.items()):
        path = case.data / filename
        where = path.relative_to(case.path)
        try:
            stat = path.stat()
        except OSError:
            stat = None
        if stat is None or not path.is_file():
            problems.append(f"{filename} is missing from the case ({where}).")
            continue
        checked += 1
        found = _hashed(path, filename, stat, remembered)
        digests[filename] = found["sha256"]
        problems += _expected_problems(filename, found, expected)
        strangers = _from_inputs(found.get("sources") or [], inputs)
        if strangers:
            more = f" (and {len(strangers) - 1} more)" if len(strangers) > 1 else ""
            problems.append(
                f"{filename} holds rows from {strangers[0]}{more}, which the manifest does not "
                "list as an input."
            )
        if links and filename in LINKED:
            problems += _link_problems(case, filename, stat, expected, remembered)
    for filename, _ in TABLES.values():
        if filename not in files:
            problems.append(f"the manifest does not list {filename}.")
    return problems, checked, digests


def _hashed(
    path: Path, key: str, stat: os.stat_result, remembered: dict[str, dict[str, Any]] | None
) -> dict[str, Any]:
    """A file's SHA-256, rows and row sources: remembered under its stat, else read now."""
    stamp = _stat_key(stat)
    known = remembered.get(key) if remembered is not None else None
    if known is not None and known.get("stat") == stamp and "sources" in known:
        return known
    entry = {
        "stat": stamp,
        "sha256": sha256_file(path),
        "rows": _row_count(path),
        "sources": _row_sources(path),
    }
    if remembered is not None:
        remembered[key] = entry
    return entry


def _expected_problems(filename: str, found: dict[str, Any], expected: Any) -> list[str]:
    problems = []
    expected = expected if isinstance(expected, dict) else {}
    digest, rows = found["sha256"], found["rows"]
    if digest != expected.get("sha256"):
        problems.append(
            f"{filename} has SHA-256 {digest[:12]}…, the manifest recorded "
            f"{str(expected.get('sha256'))[:12]}…."
        )
    if rows is None:
        problems.append(f"{filename} cannot be read.")
    elif rows != expected.get("rows"):
        problems.append(
            f"{filename} holds {rows} rows, the manifest recorded {expected.get('rows')}."
        )
    return problems


def _link_problems(
    case: Case,
    filename: str,
    stat: os.stat_result,
    expected: Any,
    remembered: dict[str, dict[str, Any]] | None,
) -> list[str]:
    """The name at the top of the case: a link to the current generation's file (or, in a copy
    made without links, a file with its content). A link to an earlier generation that is still
    there is a leftover (``_leftovers``), not a problem here."""
    top = case.path / filename
    if top.is_symlink():
        target = os.readlink(top)
        if _stale_link(case, filename, target) is not None:
            return []
        try:
            same = os.path.samestat(os.stat(top), stat)
        except OSError:
            same = False
        if same:
            return []
        return [f"{filename} at the top of the case links to {target}, not to the case's file."]
    if not top.exists():
        return [f"{filename} is missing from the case ({filename})."]
    if not top.is_file():
        return [f"{filename} at the top of the case is not a file."]
    found = _hashed(top, f"top:{filename}", top.stat(), remembered)
    return [
        f"{problem[:-1]} (the copy at the top of the case)."
        for problem in _expected_problems(filename, found, expected)
    ]


def _stale_link(case: Case, filename: str, target: str) -> str | None:
    """The earlier generation a top link still names (kept until the next ingest), or None."""
    match = re.fullmatch(rf"{GENERATIONS}/(\d+)/{re.escape(filename)}", target)
    if match is None or match.group(1) == case.data.name:
        return None
    older = case.path / GENERATIONS / match.group(1)
    return older.name if (older / filename).is_file() else None


def _leftovers(case: Case) -> list[str]:
    """What interrupted ingests left in the case (one sentence each); the next ingest removes it."""
    root = case.path
    out: list[str] = []
    for stale in sorted(root.glob(STAGING + "*")):
        out.append(
            f"{stale.name} was left by an interrupted ingest (what it was adding is not in the "
            "case); the next ingest removes it."
        )
    for tmp in sorted(root.glob(".*.tmp")):
        out.append(
            f"{tmp.name} was left by an interrupted ingest (a temporary name); the next ingest "
            "removes it."
        )
    generations = root / GENERATIONS
    for old in sorted(generations.iterdir()) if generations.is_dir() else []:
        if old.name != case.data.name:
            out.append(
                f"{GENERATIONS}/{old.name} is left from an interrupted or earlier ingest (the "
                "case does not use it); the next ingest removes it."
            )
    for name in LINKED:
        top = root / name
        older = _stale_link(case, name, os.readlink(top)) if top.is_symlink() else None
        if older is not None:
            out.append(
                f"{name} at the top of the case still links to {GENERATIONS}/{older} (an ingest "
                f"was interrupted after its commit; the case reads {GENERATIONS}/"
                f"{case.data.name}); the next ingest points it at the current one."
            )
    cache = root / CACHE
    for tmp in sorted(cache.glob(".*")) if cache.is_dir() else []:
        out.append(
            f"{CACHE}/{tmp.name} was left by an interrupted analysis; it is never read (remove "
            f"{CACHE}/ to clear it)."
        )
    return out


def _ingest_running(root: Path) -> bool:
    """Whether an ingest holds the case's lock now."""
    try:
        fh = open(root / LOCK, "rb")  # noqa: SIM115 (closed below, after the lock test)
    except OSError:
        return False
    try:
        fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        fh.close()
    return False


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
    sources = value.get("sources")
    return (
        isinstance(stat, list)
        and len(stat) == 5
        and all(isinstance(x, int) for x in stat)
        and (rows is None or isinstance(rows, int))
        and (
            sources is None
            or (isinstance(sources, list) and all(isinstance(x, str) for x in sources))
        )
    )


def _stat_key(stat: os.stat_result) -> list[int]:
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev]


def _integrity(case: Case) -> tuple[list[str], dict[str, str]]:
    """``integrity_problems`` and the SHA-256 of each stored file as it is now."""
    path = case.path / CACHE / INTEGRITY
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not _authentic(data):
            raise ValueError("not authenticated")
        remembered = {str(k): v for k, v in data["files"].items() if _stamp_entry(v)}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        remembered = {}
    before = json.dumps(remembered, sort_keys=True)
    problems, _, digests = _stored_file_problems(case, remembered)
    problems = _manifest_problems(case) + problems
    now = time.time_ns()
    files = case.manifest.get("files", {})
    keep = {
        name: entry
        for name, entry in remembered.items()
        if name.removeprefix("top:") in files and now - entry["stat"][1] >= RACY_NS
    }
    if json.dumps(keep, sort_keys=True) != before:
        with contextlib.suppress(OSError):
            path.parent.mkdir(exist_ok=True)
            with atomic_path(path) as tmp:
                tmp.write_bytes(_json_bytes(_sign({"files": keep})))
    return problems, digests


def integrity_problems(case: Case) -> list[str]:
    """What ``verify`` finds wrong with the case's manifest and stored files (not its inputs,
    cache or leftovers), cheaply.

    Each file's SHA-256, row count and row sources are remembered in ``CASE/cache/integrity.json``
    (authenticated, see ``_sign``) keyed by its size, mtime, ctime, inode and device, so a file
    is hashed again only when one of those changed (or it was modified within ``RACY_NS`` of
    being hashed). ``verify`` always re-hashes. A read-only case is hashed every time.
    """
    return _integrity(case)[0]


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


def _row_sources(path: Path) -> list[str] | None:
    """The distinct sources of a stored file's rows (``source_path``; a reject's ``path``).

    Read a row group at a time as a dictionary, so memory holds one group's indices.
    """
    found: set[str] = set()
    try:
        if path.suffix == ".parquet":
            source = pq.ParquetFile(path, read_dictionary=["source_path"])
            if "source_path" not in source.schema_arrow.names:
                return None
            for group in range(source.metadata.num_row_groups):
                column = source.read_row_group(group, columns=["source_path"]).column(0)
                for chunk in column.chunks:
                    values = chunk.dictionary if pa.types.is_dictionary(chunk.type) else chunk
                    found.update(v for v in pc.unique(values).to_pylist() if v is not None)
        else:
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    if line.strip():
                        found.add(str(json.loads(line).get("path")))
    except (OSError, ValueError, AttributeError, pa.ArrowException):
        return None
    return sorted(found)


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
_KEY_NAME = re.compile(r"(kept-)?[0-9a-f]{32}")
_PROCESS_KEY = secrets.token_bytes(32)
_KEYS: dict[str, bytes] = {}


def cache_key_path() -> Path | None:
    """Where this user's key for authenticating cache entries is kept (outside every case):
    ``$XDG_STATE_HOME/correlate/cache.key``, by default ``~/.local/state/correlate/cache.key``."""
    base = os.environ.get("XDG_STATE_HOME")
    if not base:
        try:
            base = str(Path.home() / ".local" / "state")
        except RuntimeError:
            return None
    return Path(base) / "correlate" / "cache.key"


def _read_key(path: Path) -> bytes | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return bytes.fromhex(text) if re.fullmatch(r"[0-9a-f]{64}", text) else None


def _cache_key() -> tuple[bytes, bool]:
    """This user's cache key and True, or a key for this process only and False (when no key
    can be kept: entries written then are not used by later processes).

    Created on first use (32 random bytes, mode 0600); a key another process created first wins.
    """
    path = cache_key_path()
    if path is None:
        return _PROCESS_KEY, False
    known = _KEYS.get(str(path))
    if known is not None:
        return known, True
    key = _read_key(path)
    if key is None:
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(prefix=".cache.key.", dir=path.parent)  # mode 0600
            try:
                os.write(fd, secrets.token_hex(32).encode() + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                if path.exists():  # damaged: replaced
                    os.replace(tmp, path)
                else:
                    os.link(tmp, path)  # never replaces a key another process just made
            finally:
                Path(tmp).unlink(missing_ok=True)
        key = _read_key(path)
    if key is None:
        return _PROCESS_KEY, False
    _KEYS[str(path)] = key
    return key, True


def _mac(data: dict[str, Any]) -> str:
    body = {k: v for k, v in data.items() if k != "mac"}
    return hmac.new(_cache_key()[0], _canonical_json(body), hashlib.sha256).hexdigest()


def _sign(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with its authentication code (``mac``: HMAC-SHA256 under this user's key)."""
    return {**data, "mac": _mac(data)}


def _authentic(data: object) -> bool:
    """Whether ``data`` carries a valid authentication code (``_sign``)."""
    if not isinstance(data, dict) or not isinstance(data.get("mac"), str):
        return False
    return hmac.compare_digest(str(data["mac"]), _mac(data))


def _binding(case: Case, digests: dict[str, str]) -> dict[str, Any]:
    """What a cache entry is bound to: the manifest's seal and the tables' SHA-256."""
    seal = case.manifest.get("seal")
    return {
        "seal": seal.get("sha256") if isinstance(seal, dict) else None,
        "tables": dict(sorted(digests.items())),
    }


def _analysis_key(binding: dict[str, Any], options: RunOptions) -> str:
    """What the analysis depends on: the case's tables, the options and the rules, the version."""
    material = {
        "binding": binding,
        "parameters": options.parameters(),
        "rules": options.rules.data,
        "version": __version__,
    }
    text = json.dumps(material, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _kept_key(binding: dict[str, Any], policy: KeepPolicy) -> str:
    """What the kept events depend on: the case's tables, the actions, the anchors, the version."""
    material = {
        "binding": binding,
        "actions": sorted(policy.actions),
        "anchors": policy.anchors,
        "version": __version__,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:32]


def _write_kept(
    where: Path, events: pa.Table, rows: int, bounds: dict[str, int], binding: dict[str, Any]
) -> None:
    """Store the events an analysis keeps under ``where`` (a temporary directory renamed)."""
    where.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=where.parent))
    try:
        path = staging / "events.parquet"
        write_parquet(events, path, {"correlate.table": "kept events"})
        meta = {
            "network_rows": rows,
            "sample_bounds": bounds,
            "sha256": sha256_file(path),
            "binding": binding,
            "key": where.name,
        }
        (staging / "kept.json").write_bytes(_json_bytes(_sign(meta)))
        os.replace(staging, where)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _prune(where.parent)


def _entry_meta(where: Path, name: str, binding: dict[str, Any] | None) -> dict[str, Any] | None:
    """An entry's metadata when it is authentic, names its own directory and (given one) is
    bound to ``binding``; else None."""
    try:
        meta = json.loads((where / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not _authentic(meta) or meta.get("key") != where.name:
        return None
    if binding is not None and meta.get("binding") != binding:
        return None
    return dict(meta)


def _read_kept(where: Path, binding: dict[str, Any]) -> tuple[pa.Table, int, dict[str, int]] | None:
    """Kept events stored by ``_write_kept``, or None when absent or they do not check out."""
    try:
        meta = _entry_meta(where, "kept.json", binding)
        if meta is None:
            return None
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


def _write_cached(where: Path, result: CaseResult, binding: dict[str, Any]) -> None:
    """Store an analysis under ``where`` (a temporary directory renamed into place)."""
    where.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=where.parent))
    try:
        hashes = {}
        for name in _CACHED_TABLES:
            path = staging / f"{name}.parquet"
            write_parquet(getattr(result, name), path, {"correlate.table": name})
            hashes[name] = sha256_file(path)
        meta = {
            "identity_mode": result.identity_mode,
            "applied_offsets": result.applied_offsets,
            "offset_estimates": [asdict(e) for e in result.offset_estimates],
            "sha256": hashes,
            "binding": binding,
            "key": where.name,
        }
        (staging / "result.json").write_bytes(_json_bytes(_sign(meta)))
        os.replace(staging, where)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _prune(where.parent)


def _read_cached(
    where: Path,
    binding: dict[str, Any],
    loaded: Loaded,
    options: RunOptions,
    summary: dict[str, Any],
) -> CaseResult | None:
    """A cached analysis, or None when there is none or it does not check out."""
    try:
        meta = _entry_meta(where, "result.json", binding)
        if meta is None:
            return None
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
    except (OSError, ValueError, KeyError, TypeError, AttributeError, pa.ArrowException):
        return None


def _cache_problems(case: Case, binding: dict[str, Any] | None) -> tuple[list[str], list[str]]:
    """``verify`` on the analysis cache: problems (one sentence each) and notes.

    Every entry must be authentic (written by correlate under this user's key), name its own
    directory, be bound to the case's current tables and match the hashes it recorded; an entry
    bound to an earlier content is a leftover (never read). ``binding`` None: the case itself
    failed its checks, so entries are not compared with it.
    """
    cache = case.path / CACHE
    if not cache.is_dir():
        return [], []
    persistent = _cache_key()[1]
    problems: list[str] = []
    unverifiable = 0
    forged = "was altered, or written by another user or machine (its authentication code does not match)"
    advice = f"it is never used; remove {CACHE}/ to clear it"
    for entry in sorted(cache.iterdir()):
        name = f"{CACHE}/{entry.name}"
        if entry.name.startswith("."):
            continue  # a leftover of an interrupted write (``_leftovers``)
        if entry.name == INTEGRITY:
            try:
                authentic = _authentic(json.loads(entry.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                authentic = False
            if not authentic and persistent:
                problems.append(f"{name} {forged}; {advice}.")
            unverifiable += not authentic and not persistent
            continue
        if not entry.is_dir() or _KEY_NAME.fullmatch(entry.name) is None:
            problems.append(f"{name} is not something correlate keeps in its cache; {advice}.")
            continue
        kept = entry.name.startswith("kept-")
        meta_name = "kept.json" if kept else "result.json"
        meta = _entry_meta(entry, meta_name, None)
        if meta is None:
            if persistent:
                problems.append(f"{name} {forged}; {advice}.")
            unverifiable += not persistent
            continue
        bound = meta.get("binding")
        if isinstance(bound, dict) and bound.get("seal") != (binding or {}).get("seal"):
            continue  # an earlier content's: a leftover (``_stale_entries``), or the case failed
        if binding is not None and bound != binding:
            problems.append(f"{name} is bound to tables the case does not hold; {advice}.")
            continue
        recorded = (
            {"events.parquet": meta.get("sha256")}
            if kept
            else {f"{t}.parquet": (meta.get("sha256") or {}).get(t) for t in _CACHED_TABLES}
        )
        for filename, digest in sorted(recorded.items()):
            path = entry / filename
            if not path.is_file() or sha256_file(path) != digest:
                problems.append(
                    f"{name}/{filename} does not match the hash its entry recorded; {advice}."
                )
        for stats in sorted(entry.glob("stats-*.json")):
            try:
                data = json.loads(stats.read_text(encoding="utf-8"))
                ok = _authentic(data) and data.get("entry") == entry.name
            except (OSError, ValueError):
                ok = False
            if not ok and persistent:
                problems.append(f"{name}/{stats.name} {forged}; {advice}.")
            unverifiable += not ok and not persistent
    notes = []
    if unverifiable:
        notes.append(
            f"{unverifiable} cache entries cannot be authenticated here (no key can be kept at "
            f"{cache_key_path()}); they are not used"
        )
    return problems, notes


def _prune(cache: Path) -> None:
    """Keep the most recently used analyses only."""
    entries = sorted(
        (p for p in cache.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in entries[CACHE_KEEP:]:
        with contextlib.suppress(OSError):
            _discard(old)


__all__ = [
    "CASE_FORMAT",
    "GENERATIONS",
    "Case",
    "CaseError",
    "CaseResult",
    "IngestReport",
    "IntegrityError",
    "Verification",
    "cache_key_path",
    "case_files",
    "check_integrity",
    "ingest",
    "integrity_problems",
    "is_case",
    "load_case_or_inputs",
    "manifest_seal",
    "open_case",
    "verify",
]
