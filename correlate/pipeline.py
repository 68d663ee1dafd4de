"""The main job as library calls: load inputs, then analyse them into findings.

``load_inputs`` reads and normalises every file (detecting formats, counting every row);
``analyse`` is a pure function of the loaded tables and the options. The CLI and notebooks call
the same two functions.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import __version__
from .attribute import Context, Window, attribute, score_candidates
from .classify import Rules, classify, load_rules
from .conversations import DEFAULT_GAP_NS, assign_conversations
from .errors import CorrelateError, FormatMismatch, InputError, Reject, UnknownFormat
from .identity import DEFAULT_LEASE_GRACE_NS, build_identity, holders, kinds_of, resolve
from .join import band_join, window_counts
from .keep import DEFAULT_ANCHORS, Keeper, KeepPolicy, sample_bounds, sample_rows
from .loaders import LoadOptions, LoadResult, LoadStats, detect, mismatch
from .loaders.base import read_counting_long_lines
from .options import DEFAULT_AFTER_NS, DEFAULT_BEFORE_NS, UNMAPPED_CHOICES, run_option_values
from .policy import ViolationPolicy, select_violations
from .same_events import merge_copies
from .schema import (
    ATTRIBUTIONS,
    CANDIDATES,
    ENRICHMENT,
    FINDINGS,
    HOSTS,
    NETWORK_EVENTS,
    TOOL_CALLS,
    concat,
    int_ns,
)
from .sources import Limits, Source, expand_paths
from .stats import (
    Association,
    Baseline,
    OffsetEstimate,
    apply_offsets,
    association,
    baseline,
    choose_offsets,
    estimate_offsets,
)
from .timeparse import format_duration, zone_name


@dataclass(frozen=True)
class RunOptions:
    """Everything that changes the answer; recorded in every report."""

    before_ns: int = DEFAULT_BEFORE_NS
    after_ns: int = DEFAULT_AFTER_NS
    gap_ns: int = DEFAULT_GAP_NS
    policy: ViolationPolicy = field(default_factory=ViolationPolicy)
    rules: Rules = field(default_factory=load_rules)
    rules_path: str | None = None
    offsets: tuple[tuple[str, float], ...] = ()
    """Known clock offsets (network source format, seconds: its clock minus the trajectories')."""
    offset_auto: bool = False
    """Estimate each network source's offset and apply it (known offsets take precedence)."""
    limits: Limits = field(default_factory=Limits)
    """Resource limits on untrusted input (``--max-line-bytes``, ``--max-expansion``)."""
    unmapped: str = "skip"
    lease_grace_ns: int = DEFAULT_LEASE_GRACE_NS
    """How long a trajectory's lease on a shared or re-used address outlives its last call."""
    load: LoadOptions = field(default_factory=LoadOptions)
    formats: tuple[tuple[str, str], ...] = ()
    """(glob, format) pairs forcing a format; glob ``*`` forces it for every file."""
    anchors: int | None = DEFAULT_ANCHORS
    """Allowed events kept per network format as a uniform sample (clock anchors, the bytes
    norm); every violation is kept. None keeps every event (``keep.py``)."""

    @classmethod
    def from_flags(cls, **flags: Any) -> RunOptions:
        """The options as the command line spells them (``before="10s"``, ``offset=("auto",)``;
        the table in ``options.py``); raises FlagError, an OptionError naming the flag."""
        return cls(**run_option_values(**flags))

    def parameters(self) -> dict[str, Any]:
        """The options as plain JSON-able values, for provenance."""
        return {
            "before": format_duration(self.before_ns),
            "after": format_duration(self.after_ns),
            "gap": format_duration(self.gap_ns),
            "violation_actions": list(self.policy.actions),
            "internal_cidrs": list(self.policy.internal_cidrs),
            "unmapped": self.unmapped,
            "lease_grace": format_duration(self.lease_grace_ns),
            "rules": self.rules_path,
            "offsets": {k: v for k, v in self.offsets},
            "offset_auto": self.offset_auto,
            "tz": {k: zone_name(z) for k, z in sorted(self.load.zones.items())},
            "epoch_unit": self.load.epoch_unit,
            "strict": self.load.strict,
            "formats": [f"{g}={n}" for g, n in self.formats],
            "max_line_bytes": self.limits.max_line_bytes,
            "max_expansion": self.limits.max_expansion,
            "anchors": self.anchors,
        }


@dataclass
class InputFile:
    """One input as read: where, what format, its hash, and its load accounting."""

    path: str
    format: str | None
    kind: str | None
    sha256: str
    size: int
    score: float | None = None
    forced: bool = False
    stats: LoadStats | None = None
    skipped_reason: str | None = None

    def record(self) -> dict[str, Any]:
        """The input as provenance records it: where, what, its hash and its accounting."""
        record: dict[str, Any] = {
            "path": self.path,
            "sha256": self.sha256,
            "size": self.size,
            "format": self.format,
        }
        if self.stats is not None:
            record.update(
                unit=self.stats.unit,
                read=self.stats.read,
                loaded=self.stats.loaded,
                rejected=self.stats.rejected,
                skipped=dict(sorted(self.stats.skipped.items())),
                notes=dict(sorted(self.stats.notes.items())),
            )
        if self.skipped_reason:
            record["skipped_reason"] = self.skipped_reason
        return record


@dataclass
class Loaded:
    """Normalised tables from all inputs, with accounting."""

    events: pa.Table
    calls: pa.Table
    hosts: pa.Table
    inputs: list[InputFile]
    rejects: list[Reject]
    network_rows: int | None = None
    """Network events loaded, kept or not (None: ``events`` holds all of them)."""
    sample_bounds: dict[str, int] = field(default_factory=dict)
    """Per network format whose allowed events were sampled, the sample's hash bound."""
    merged_calls: int = 0
    """Copies of calls recorded by several agent logs, merged into one row (``same_calls``)."""
    merged_events: int = 0
    """Copies of network records (every field the same but the place) kept once (``same_events``)."""
    copies_merged: bool = False
    """Whether ``same_events.merge_copies`` has run (with or without copies to merge)."""


@dataclass
class Result:
    """Everything ``correlate run`` answers, as tables, plus what it read and how."""

    loaded: Loaded
    identity: pa.Table
    violations: pa.Table
    candidates: pa.Table
    attributions: pa.Table
    findings: pa.Table
    options: RunOptions
    identity_mode: str
    offset_estimates: list[OffsetEstimate] = field(default_factory=list)
    applied_offsets: dict[str, float] = field(default_factory=dict)

    def statistics(self, permutations: int = 999) -> tuple[list[Association], list[Baseline]]:
        """Association with chance and the in-flight baseline (on the clocks as aligned here)."""
        return (
            association(self.violations, self.loaded.calls, permutations=permutations),
            baseline(self.violations, self.loaded.calls),
        )

    def provenance(self) -> dict[str, Any]:
        """Tool version, parameters, inputs with SHA-256 and load counts: for report metadata."""
        return {
            "tool": "correlate",
            "version": __version__,
            "parameters": self.options.parameters(),
            "identity_mode": self.identity_mode,
            "clock_offsets": {
                "applied_s": dict(sorted(self.applied_offsets.items())),
                "estimates": [asdict(e) for e in self.offset_estimates],
            },
            "inputs": [f.record() for f in self.loaded.inputs],
            "counts": {
                "network_events": self.loaded.events.num_rows
                if self.loaded.network_rows is None
                else self.loaded.network_rows,
                "tool_calls": self.loaded.calls.num_rows,
                "identity_rows": self.identity.num_rows,
                "violations": self.violations.num_rows,
                "conversations": self.findings.num_rows,
                "candidates": self.candidates.num_rows,
                "rejected": sum(f.stats.rejected for f in self.loaded.inputs if f.stats),
                **(
                    {"tool_call_copies_merged": self.loaded.merged_calls}
                    if self.loaded.merged_calls
                    else {}
                ),
                **(
                    {"network_event_copies_merged": self.loaded.merged_events}
                    if self.loaded.merged_events
                    else {}
                ),
            },
        }


ProgressCallback = Callable[[str, int, int], None]
"""Called as (path, files done, files total) before each file is read."""


def forced_format(source: Source, formats: Sequence[tuple[str, str]]) -> str | None:
    """The format the user forced for ``source``, if a glob matches its path or name."""
    for pattern, name in formats:
        if (
            pattern == "*"
            or fnmatch.fnmatch(source.display, pattern)
            or fnmatch.fnmatch(source.path.name, pattern)
        ):
            return name
    return None


Job = tuple[Source, str | None]
"""A file to read and the format forced for it (None: detect)."""


def plan_inputs(
    paths: Sequence[str], options: RunOptions, *, inventories: Sequence[str] = ()
) -> list[Job]:
    """Every file under ``paths`` with its forced format, then the inventory files."""
    sources = expand_paths(paths, options.limits)
    inventory_sources = expand_paths(inventories, options.limits) if inventories else []
    inventory_paths = {s.path.resolve() for s in inventory_sources if s.problem is None}
    sources = [
        s for s in sources if s.problem is not None or s.path.resolve() not in inventory_paths
    ]
    jobs: list[Job] = [(s, forced_format(s, options.formats)) for s in sources]
    jobs += [(s, "inventory") for s in inventory_sources]
    if not jobs:
        raise InputError("no input files found under " + ", ".join(str(p) for p in paths))
    return jobs


class Gathered:
    """Combines what each file's load gave into ``Loaded``, in the order files are added.

    Network rows go through ``run``'s keeper (violations and the anchor sample, cut across
    files); ``keep_policy`` is what the next file's loader should keep. The local loop and the
    Dask engine both read files with ``load_file`` and gather them here.
    """

    def __init__(self, options: RunOptions) -> None:
        policy = (
            None if options.anchors is None else KeepPolicy(options.policy.actions, options.anchors)
        )
        self.events = Keeper(policy) if policy else None
        self.every_event: list[pa.Table] = []
        self.calls: list[pa.Table] = []
        self.hosts: list[pa.Table] = []
        self.enrichment: list[pa.Table] = []
        self.network_rows = 0
        self.sampled: set[str] = set()
        self.context: dict[str, str] = {}
        self.inputs: list[InputFile] = []
        self.sources: list[Source] = []
        self.rejects: list[Reject] = []

    def keep_policy(self) -> KeepPolicy | None:
        """What a loader should keep of the next file (the sample bounds known so far)."""
        if self.events is None:
            return None
        return replace(self.events.policy, below=dict(self.events.bounds))

    def add(self, source: Source, record: InputFile, result: LoadResult | None) -> None:
        """One file's record and load result (None when the file was skipped)."""
        self.inputs.append(record)
        self.sources.append(source)
        if result is None:
            return
        self.rejects.extend(result.rejects)
        if result.kind == "network":
            self.network_rows += result.table.num_rows + result.stats.unkept
            if result.stats.unkept:
                self.sampled.add(result.stats.format)
            if self.events is None:
                self.every_event.append(result.table)
            else:
                self.events.add(result.table)
        elif result.kind == "agent":
            self.calls.append(result.table)
        elif result.kind == "hosts":
            self.hosts.append(result.table)
        elif result.kind == "enrichment":
            self.enrichment.append(result.table)
        if result.hosts is not None:
            self.hosts.append(result.hosts)
        for path in result.context:
            self.context.setdefault(path, source.display)

    def loaded(self) -> Loaded:
        """Everything gathered, as ``load_inputs`` returns it."""
        for record, source in zip(self.inputs, self.sources, strict=True):
            if source.problem is not None:
                continue
            reader = self.context.get(str(source.path.resolve()))
            if record.format is None and reader is not None:
                record.skipped_reason = f"read as context by {reader}"
        events = self.events
        kept = concat(self.every_event if events is None else events.tables(), NETWORK_EVENTS)
        bounds: dict[str, int] = {}
        if events is not None:
            bounds = sample_bounds(kept, events.policy, self.sampled | set(events.bounds))
        network = fill_from_enrichment(kept, concat(self.enrichment, ENRICHMENT))
        return Loaded(
            events=_number_events(network),
            calls=_order_calls(concat(self.calls, TOOL_CALLS)),
            hosts=concat(self.hosts, HOSTS),
            inputs=self.inputs,
            rejects=self.rejects,
            network_rows=self.network_rows,
            sample_bounds=bounds,
        )


def load_inputs(
    paths: Sequence[str],
    options: RunOptions,
    *,
    inventories: Sequence[str] = (),
    progress: ProgressCallback | None = None,
) -> Loaded:
    """Detect and read every file under ``paths`` (plus inventory files) into normalised tables.

    A file the user named that no loader recognises is an error; one found by walking a directory
    is listed as skipped. Every read row is loaded, rejected (kept with path:line and reason) or
    skipped with a reason. Files are hashed (SHA-256, for provenance) on a second thread while
    they are parsed.
    """
    jobs = plan_inputs(paths, options, inventories=inventories)
    gathered = Gathered(options)
    hasher = ThreadPoolExecutor(max_workers=1)
    try:
        digests = [hasher.submit(source.sha256) for source, _ in jobs]
        for done, (source, forced) in enumerate(jobs):
            if progress:
                progress(source.display, done, len(jobs))
            record = InputFile(
                path=source.display, format=None, kind=None, sha256="", size=source.size()
            )
            result = load_file(source, forced, options, record, keep=gathered.keep_policy())
            gathered.add(source, record, result)
        for record, digest in zip(gathered.inputs, digests, strict=True):
            record.sha256 = digest.result()
    finally:
        hasher.shutdown(cancel_futures=True)  # a failed load does not wait for every hash
    if progress:
        progress("", len(jobs), len(jobs))
    return gathered.loaded()


def load_file(
    source: Source,
    forced: str | None,
    options: RunOptions,
    record: InputFile,
    *,
    keep: KeepPolicy | None = None,
) -> LoadResult | None:
    """Detect and read one file, filling ``record``; None when the file is skipped.

    A file the user named (or forced), or any file under ``--strict``, must load: its problems
    are errors. One found by walking a directory that matches no format, does not fit its format,
    or hits a limit is listed as skipped with the reason, so the rest can still be read.
    """
    must_load = source.explicit or forced is not None
    if source.problem is not None:  # found by walking; never opened
        record.skipped_reason = source.problem
        return None
    try:
        detection = detect(source, forced, check=False)  # a forced format is used even at score 0
    except UnknownFormat as exc:
        if must_load:
            raise
        record.skipped_reason = str(exc).removeprefix(f"{source.display}: ").split(";")[0]
        return None
    except InputError as exc:  # its head cannot be read (a truncated .gz, an I/O error)
        if must_load or options.load.strict:
            raise
        record.skipped_reason = _reason_without_path(str(exc), source.display)
        return None
    record.format, record.kind = detection.name, detection.loader.kind
    record.score, record.forced = detection.score, detection.forced
    doubted = detection.forced and detection.score <= 0
    try:
        load = options.load if keep is None else replace(options.load, keep=keep)
        result: LoadResult = read_counting_long_lines(detection.loader.read, source, load)
    except (InputError, FormatMismatch) as exc:
        if doubted:  # forced although its sniff said no: say both in one sentence
            why = _reason_without_path(str(exc), source.display).split("; this does not look")[0]
            exc = FormatMismatch(mismatch(source, detection.loader, why))
        if must_load or options.load.strict:
            raise exc from None
        record.skipped_reason = _reason_without_path(str(exc), source.display)
        return None
    record.stats = result.stats
    stats = result.stats
    if doubted and stats.loaded == 0 and stats.rejected:  # forced, so it must load
        why = f"no row loaded, {stats.rejected} rejected (first: {result.rejects[0].reason})"
        raise FormatMismatch(mismatch(source, detection.loader, why))
    if must_load and 0 < result.stats.read == result.stats.rejected:
        raise CorrelateError(
            f"{source.display}: every one of {result.stats.read} rows was rejected as {detection.name} "
            f"(first: {result.rejects[0].reason}); is --format right? (`correlate sniff` shows the scores)"
        )
    return result


def _reason_without_path(message: str, display: str) -> str:
    """``path:12: text`` -> ``line 12: text``; ``path: text`` -> ``text``."""
    if not message.startswith(display + ":"):
        return message
    rest = message[len(display) + 1 :].lstrip()
    number, sep, text = rest.partition(": ")
    return f"line {number}: {text}" if sep and number.isdigit() else rest


def fill_from_enrichment(events: pa.Table, enrichment: pa.Table) -> pa.Table:
    """Fill events' empty ``dst_domain``/``app`` from enrichment rows with the same ``flow_key``.

    When several rows name one flow, the earliest (then the first by file and line) wins.
    """
    if enrichment.num_rows == 0 or events.num_rows == 0:
        return events
    ordered = enrichment.sort_by(
        [("ts", "ascending"), ("source_path", "ascending"), ("source_line", "ascending")]
    )
    facts: dict[str, dict[str, str]] = {}
    for key, domain, app in zip(
        *(ordered.column(c).to_pylist() for c in ("flow_key", "dst_domain", "app")), strict=True
    ):
        if key is None:
            continue
        entry = facts.setdefault(key, {})
        if domain and "dst_domain" not in entry:
            entry["dst_domain"] = domain
        if app and "app" not in entry:
            entry["app"] = app
    keys = events.column("flow_key").to_pylist()
    for column in ("dst_domain", "app"):
        values = events.column(column).to_pylist()
        filled = [
            v if v is not None or k is None else facts.get(k, {}).get(column)
            for v, k in zip(values, keys, strict=True)
        ]
        events = events.set_column(
            events.schema.get_field_index(column), column, pa.array(filled, pa.string())
        )
    return events


def _number_events(events: pa.Table) -> pa.Table:
    """Sort events by (time, path, line) and number them from 1: stable ids whatever the input order."""
    ordered = _sorted_by(events, "ts")
    ids = pa.array(np.arange(1, ordered.num_rows + 1, dtype=np.int64))
    return ordered.set_column(ordered.schema.get_field_index("event_id"), "event_id", ids)


def _order_calls(calls: pa.Table) -> pa.Table:
    return _sorted_by(calls, "ts_start")


def _sorted_by(table: pa.Table, time: str) -> pa.Table:
    """``table`` stably sorted by (time, source_path, source_line); returned as it is when it
    already is in that order (loaders mostly give rows in time order: no copy of the text)."""
    keys = [(time, "ascending"), ("source_path", "ascending"), ("source_line", "ascending")]
    if table.num_rows < 2 or table.column(time).null_count:
        return table.sort_by(keys)
    ts = table.column(time).cast(pa.int64()).to_numpy()
    step = np.diff(ts)
    if (step < 0).any():
        return table.sort_by(keys)
    ties = np.flatnonzero(step == 0)
    if len(ties):
        paths, lines = table.column("source_path"), table.column("source_line")
        here, after = pa.array(ties), pa.array(ties + 1)
        same_path = pc.equal(paths.take(here), paths.take(after))
        later_path = pc.less(paths.take(here), paths.take(after))
        line_order = pc.less_equal(lines.take(here), lines.take(after))
        fine = pc.or_(later_path, pc.and_(same_path, line_order))
        if not pc.all(pc.fill_null(fine, False)).as_py():
            return table.sort_by(keys)
    return table


Joiner = Callable[..., tuple[np.ndarray, np.ndarray]]
"""A band join with ``join.band_join``'s signature; the Dask engine supplies a distributed one."""


def analyse(loaded: Loaded, options: RunOptions, *, joiner: Joiner = band_join) -> Result:
    """Violations, conversations, candidates, attributions and findings from loaded tables.

    ``joiner`` computes the keyed band join (the only step whose cost grows with both tables);
    any replacement must return exactly ``join.band_join``'s pairs, in its order.
    """
    prepared = prepare(loaded, options)
    loaded = prepared.loaded
    identity, keyed, estimates, applied = (
        prepared.identity,
        prepared.keyed,
        prepared.estimates,
        prepared.applied,
    )
    events, violations = prepared.events, prepared.violations
    labels = classify(violations, sample_rows(events, loaded.sample_bounds), options.rules)
    ts = int_ns(violations.column("ts"), 0)
    status = violations.column("identity_status").to_pylist()
    held_by = [
        tuple(h.split("\n")) if h else () for h in violations.column("src_hosts").to_pylist()
    ]
    calls = loaded.calls
    call_start = int_ns(calls.column("ts_start"), 0)
    call_end = np.maximum(int_ns(calls.column("ts_end"), np.iinfo(np.int64).min), call_start)
    window = Window(options.before_ns, options.after_ns)
    join = dict(before_ns=options.before_ns, after_ns=options.after_ns)
    everyone = ["*"] * calls.num_rows
    if keyed:
        call_keys, spread_keys, spread = keyed_join_keys(violations, calls, identity)
        call_idx, spread_idx = joiner(
            call_keys, call_start, call_end, spread_keys, ts[spread], **join
        )
        event_idx = spread[spread_idx]
        order = np.lexsort((call_idx, event_idx))
        call_idx, event_idx = call_idx[order], event_idx[order]
        shared = np.array([len(h) > 1 for h in held_by], dtype=bool)
        identity_col = np.where(shared[event_idx], "shared", "match").astype(object)
        if options.unmapped == "time":
            loose = ["*" if s == "unmapped" else None for s in status]
            extra_c, extra_e = joiner(everyone, call_start, call_end, loose, ts, **join)
            call_idx = np.concatenate([call_idx, extra_c])
            event_idx = np.concatenate([event_idx, extra_e])
            identity_col = np.concatenate(
                [identity_col, np.full(len(extra_c), "time-only", dtype=object)]
            )
            status = ["unmapped (time-only)" if s == "unmapped" else s for s in status]
        # How many calls of other sandboxes fell in each event's window (what identity excluded).
        in_window = window_counts(call_start, call_end, ts, **join)
        keyed_pair = identity_col != "time-only"
        own = np.bincount(event_idx[keyed_pair], minlength=len(ts)) if len(event_idx) else 0
        other = in_window - own
        other_hosts = {i: int(n) for i, n in enumerate(other) if status[i] in ("mapped", "shared")}
    else:
        call_idx, event_idx = joiner(everyone, call_start, call_end, ["*"] * len(ts), ts, **join)
        identity_col = np.full(len(call_idx), "time-only", dtype=object)
        other_hosts = {}
    holders_of = np.array([len(h) for h in held_by], dtype=np.int64)
    scored = score_candidates(
        violations, calls, call_idx, event_idx, identity_col, window, labels, holders_of
    )
    known = len(set(identity.column("host").to_pylist()))
    candidates, attributions, findings = attribute(
        violations,
        calls,
        scored,
        Context(
            other_hosts=other_hosts,
            identity_status=status,
            identity_mode="keyed" if keyed else "time",
            known_hosts=known,
            labels=labels or {},
            kinds=kinds_of(identity),
        ),
    )

    return Result(
        loaded=loaded,
        identity=identity,
        violations=violations,
        candidates=candidates,
        attributions=attributions,
        findings=findings,
        options=options,
        identity_mode="keyed" if keyed else "time-only",
        offset_estimates=estimates,
        applied_offsets=applied,
    )


@dataclass
class Prepared:
    """What the join needs from loaded tables: the identity map, the clock offsets estimated and
    applied, the events as corrected, and the violations with their holders and conversations."""

    loaded: Loaded
    identity: pa.Table
    keyed: bool
    estimates: list[OffsetEstimate]
    applied: dict[str, float]
    events: pa.Table
    violations: pa.Table


def prepare(loaded: Loaded, options: RunOptions) -> Prepared:
    """Calls and network records recorded twice merged, identity, offsets, violations and
    conversations: ``analyse`` up to the join."""
    loaded = merge_copies(loaded)
    identity = build_identity([loaded.hosts], loaded.calls, grace_ns=options.lease_grace_ns)
    estimates = estimate_offsets(loaded.events, loaded.calls, identity)
    applied = choose_offsets(estimates) if options.offset_auto else {}
    applied.update(dict(options.offsets))
    events = apply_offsets(loaded.events, applied)
    violations = select_violations(events, options.policy)
    violations = _with_holders(violations, identity)
    violations = assign_conversations(violations, options.gap_ns)
    return Prepared(loaded, identity, identity.num_rows > 0, estimates, applied, events, violations)


def keyed_join_keys(
    violations: pa.Table, calls: pa.Table, identity: pa.Table
) -> tuple[list[str | None], list[str], np.ndarray]:
    """(call keys, event keys, event rows): the keyed join's inputs.

    One event key per (violation, host holding its address then), so that every host on a shared
    address is a candidate, plus the address itself for calls known only by it; ``event rows``
    maps each event key back to its violation's row.
    """
    held = violations.column("src_hosts").to_pylist()
    via = violations.column("identity_via").to_pylist()
    keys_of = [
        (*h.split("\n"), ADDRESS_KEY + str(v)) if h else () for h, v in zip(held, via, strict=True)
    ]
    rows = np.repeat(np.arange(len(keys_of), dtype=np.int64), [len(k) for k in keys_of])
    return _call_keys(calls, identity), [k for keys in keys_of for k in keys], rows


def _with_holders(violations: pa.Table, identity: pa.Table) -> pa.Table:
    """Add ``src_host`` (the one host holding the source address, else empty), ``src_hosts``
    (every host holding it at the event's time, newline-separated), ``identity_status``
    (mapped | shared | unmapped) and ``identity_via`` (the address that keyed identity).

    The source address keys identity; when no host holds it and the log gives a translated
    address (``src_nat_ip``) that hosts hold, e.g. a NAT gateway's EIP listed in the inventory,
    every host behind that address is a candidate.
    """
    ts = int_ns(violations.column("ts"), 0)
    src = violations.column("src_ip").to_pylist()
    found = holders(identity, src, ts)
    via = [s if names else None for s, names in zip(src, found, strict=True)]
    nat = violations.column("src_nat_ip").to_pylist()
    retry = [i for i, names in enumerate(found) if not names and nat[i]]
    if retry:
        behind = holders(identity, [nat[i] for i in retry], ts[retry])
        for i, names in zip(retry, behind, strict=True):
            if names:
                found[i], via[i] = names, nat[i]
    columns = {
        "src_host": [names[0] if len(names) == 1 else None for names in found],
        "src_hosts": ["\n".join(names) or None for names in found],
        "identity_status": [
            "mapped" if len(n) == 1 else "shared" if n else "unmapped" for n in found
        ],
        "identity_via": via,
    }
    for name, values in columns.items():
        violations = violations.append_column(name, pa.array(values, pa.string()))
    return violations


def _call_keys(calls: pa.Table, identity: pa.Table) -> list[str | None]:
    """Each call's join key: its host, else the one host holding its host_ip at its start time,
    else (several hosts hold that address) the address itself, which events from it also carry."""
    hosts = calls.column("host").to_pylist()
    missing = [i for i, h in enumerate(hosts) if h is None]
    if missing and identity.num_rows:
        ips = calls.column("host_ip").to_pylist()
        starts = int_ns(calls.column("ts_start"), 0)
        found, status = resolve(identity, [ips[i] for i in missing], starts[missing])
        for i, host, state in zip(missing, found, status, strict=True):
            hosts[i] = ADDRESS_KEY + ips[i] if state == "shared" else host
    return hosts


ADDRESS_KEY = "\x00address "
"""Prefix of the join key of a call known only by a shared address (never a host name)."""


def run(
    paths: Sequence[str],
    options: RunOptions | None = None,
    *,
    inventories: Sequence[str] = (),
    progress: ProgressCallback | None = None,
) -> Result:
    """Load and analyse in one call (what ``correlate run`` does)."""
    options = options or RunOptions()
    return analyse(load_inputs(paths, options, inventories=inventories, progress=progress), options)


__all__ = [
    "ATTRIBUTIONS",
    "CANDIDATES",
    "FINDINGS",
    "UNMAPPED_CHOICES",
    "Gathered",
    "InputFile",
    "Job",
    "Loaded",
    "Result",
    "RunOptions",
    "analyse",
    "load_file",
    "load_inputs",
    "plan_inputs",
    "run",
]
