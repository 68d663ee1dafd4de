"""Command line: a thin layer that parses flags, calls the library and renders its answer."""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from . import __version__
from .atomic import atomic_path, refuse_overwrite
from .case import CaseResult, check_integrity, is_case, open_case
from .classify import load_rules
from .distributed import engine_session
from .errors import CorrelateError, OptionError, Reject
from .join import band_join
from .keep import DEFAULT_ANCHORS
from .loaders import MIN_SCORE, REGISTRY, LoadOptions
from .pipeline import (
    DEFAULT_AFTER_NS,
    DEFAULT_BEFORE_NS,
    UNMAPPED_CHOICES,
    Joiner,
    Loaded,
    Result,
    RunOptions,
    analyse,
)
from .policy import DEFAULT_ACTIONS, ViolationPolicy
from .reports.export import FORMATS as FILE_FORMATS
from .reports.export import export, table_records
from .reports.overview import print_report
from .reports.parquet import findings_table
from .reports.terminal import (
    offsets_renderable,
    rejects_renderable,
    statistics_renderable,
)
from .sources import DEFAULT_LIMITS, Limits, expand_paths
from .stats import Association, Baseline
from .textsafe import inert, inert_json
from .timeparse import (
    EPOCH_UNITS,
    TimeParseError,
    format_duration,
    parse_duration,
    parse_time,
    resolve_zone,
)

EXIT_DATA, EXIT_USAGE = 1, 2
PIPED_WIDTH = 160
ACTIONS = ("allowed", "alerted", "denied", "unknown")

# --- one vocabulary: -o/--output FILE, --format FORMAT, --input-format [GLOB=]NAME -----------

SUFFIX_FORMATS: dict[str, tuple[str, ...]] = {
    ".parquet": ("parquet",),
    ".pq": ("parquet",),
    ".csv": ("csv",),
    ".jsonl": ("jsonl", "ocsf", "timesketch"),
    ".ndjson": ("jsonl", "ocsf", "timesketch"),
    ".json": ("jsonl", "ocsf", "timesketch"),
    ".html": ("html",),
    ".htm": ("html",),
}
"""The formats a file's suffix can hold; the first is the one the suffix implies (``.json``
implies none: it may hold JSON lines, OCSF or Timesketch, so ``--format`` says which)."""
IMPLIED_BY_SUFFIX = {s: f[0] for s, f in SUFFIX_FORMATS.items() if s != ".json"}


def file_format(
    path: str,
    fmt: str | None,
    formats: Sequence[str],
    *,
    default: str | None = None,
    any_suffix: bool = False,
) -> str:
    """The format of ``-o PATH``: ``--format`` when given, else the one its suffix implies.

    A suffix that cannot hold the format asked for (``-o report.csv --format parquet``) is a
    usage error, as is a suffix that implies a format this command does not write. ``default``
    applies to a name without a suffix (and to any suffix it does not know with ``any_suffix``);
    otherwise ``--format`` must say. Raises OptionError (exit 2).
    """
    suffix = Path(path).suffix.lower()
    holds = SUFFIX_FORMATS.get(suffix)
    if fmt:
        if holds is not None and fmt not in holds:
            raise OptionError(
                f"-o {path}: a {suffix} file holds {' or '.join(holds)}, not {fmt} "
                f"(--format {fmt}); rename the file or change --format"
            )
        return fmt
    implied = IMPLIED_BY_SUFFIX.get(suffix)
    if implied is not None and implied in formats:
        return implied
    if implied is not None and default is not None and any_suffix:
        raise OptionError(f"-o {path}: this command writes {default}, not {implied}")
    if implied is not None:
        raise OptionError(
            f"-o {path}: this command does not write {implied} (its formats: {', '.join(formats)})"
        )
    if default is not None and (not suffix or any_suffix):
        return default
    raise OptionError(f"-o {path}: say which format with --format ({', '.join(formats)})")


def deprecated(old: str, new: str, quiet: bool = False) -> None:
    """One line on stderr for a spelling kept for one release (not with -q)."""
    if not quiet:
        click.echo(f"note: {old} is deprecated and goes after this release; use {new}", err=True)


def _legacy_input_formats(analysis: dict[str, Any], quiet: bool) -> None:
    """Fold the hidden ``--format [GLOB=]NAME`` (the input-format spelling before
    ``--input-format``) into ``formats``, with a deprecation note."""
    legacy = tuple(analysis.pop("legacy_formats", ()) or ())
    if legacy:
        deprecated("--format [GLOB=]NAME for an input format", "--input-format", quiet)
        analysis["formats"] = tuple(analysis.get("formats") or ()) + legacy


def _run_format(values: Sequence[str]) -> tuple[str | None, tuple[str, ...]]:
    """``run --format``: the file format of ``-o``, or (deprecated) an input format to force."""
    chosen: str | None = None
    legacy: list[str] = []
    for value in values:
        name = value.strip()
        if name in FILE_FORMATS:
            if chosen not in (None, name):
                raise click.BadParameter(f"given twice: {chosen} and {name}", param_hint="--format")
            chosen = name
        elif "=" in name or name in REGISTRY:
            legacy.append(value)
        else:
            raise click.BadParameter(
                f"unknown format {name!r}: -o writes {', '.join(FILE_FORMATS)}; "
                f"an input format goes in --input-format (known: {', '.join(sorted(REGISTRY))})",
                param_hint="--format",
            )
    return chosen, tuple(legacy)


# --- one clock policy -----------------------------------------------------------------------

CLOCK_POLICY = (
    "Times are compared as each source logged them unless --offset is given (auto: the "
    "estimated offsets) or the case's ingest recorded one as its default; --offset none "
    "overrides a case's default."
)


def clock_line(result: Result) -> str:
    """Which clock an answer is on, in one sentence (``stats`` and ``findings --by`` print it)."""
    applied = result.applied_offsets
    if not applied:
        estimates = sorted(
            {
                f"{e.network_source} {e.offset_s:+.2f}s"
                for e in result.offset_estimates
                if e.offset_s is not None
            }
        )
        if not estimates:
            return "clocks: as logged, not aligned (no offset given or estimated)"
        return (
            f"clocks: as logged, not aligned (estimated: {', '.join(estimates)}; "
            "--offset auto applies it)"
        )
    given = dict(result.options.offsets)
    shifts = ", ".join(
        f"{source} offset {offset:+.3f}s removed ({'given' if source in given else 'estimated'})"
        for source, offset in sorted(applied.items())
    )
    return f"clocks: aligned on the trajectories' clock: {shifts}"


def clock_summary(result: Result) -> dict[str, Any]:
    """``clock_line`` for JSON: whether offsets were applied, which, and the sentence."""
    return {
        "aligned": bool(result.applied_offsets),
        "applied_s": dict(sorted(result.applied_offsets.items())),
        "text": clock_line(result),
    }


# --- examples at the end of every --help ----------------------------------------------------


def examples(*lines: str) -> str:
    """A command's epilog: ``# what`` comment lines and ``correlate ...`` lines, kept as written.

    ``tests/test_cli_vocabulary.py`` parses every ``correlate`` line through click and runs it.
    """
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


def _duration(name: str, text: str, *, allow_negative: bool = False) -> int:
    try:
        ns = parse_duration(text)
    except OptionError as exc:
        raise click.BadParameter(str(exc), param_hint=name) from None
    if ns < 0 and not allow_negative:
        raise click.BadParameter(f"must not be negative: {text!r}", param_hint=name)
    return ns


def _pairs(values: Sequence[str], flag: str, default_key: str) -> list[tuple[str, str]]:
    """``KEY=VALUE`` or a bare ``VALUE`` (keyed ``default_key``) for repeatable options."""
    out = []
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep:
            key, rest = default_key, value
        if not key.strip() or not rest.strip():
            raise click.BadParameter(f"expected [KEY=]VALUE, got {value!r}", param_hint=flag)
        out.append((key.strip(), rest.strip()))
    return out


def _run_options(
    before: str,
    after: str,
    gap: str,
    tz: Sequence[str],
    epoch_unit: str,
    internal_cidr: Sequence[str],
    actions: str,
    unmapped: str,
    formats: Sequence[str],
    strict: bool,
    format_option: Sequence[str] = (),
    reference_date: str | None = None,
    offset: Sequence[str] = (),
    rules: str | None = None,
    max_line_bytes: int = DEFAULT_LIMITS.max_line_bytes,
    max_expansion: float = DEFAULT_LIMITS.max_expansion,
    anchors: str = str(DEFAULT_ANCHORS),
    lease_grace: str = "10m",
) -> RunOptions:
    zones = {}
    for key, value in _pairs(tz, "--tz", "*"):
        if key != "*" and key not in REGISTRY:
            raise click.BadParameter(
                f"unknown format {key!r} (known: {', '.join(sorted(REGISTRY))})", param_hint="--tz"
            )
        try:
            zones[key] = resolve_zone(value)
        except OptionError as exc:
            raise click.BadParameter(str(exc), param_hint="--tz") from None
    forced = _pairs(formats, "--format", "*")
    for _, name in forced:
        if name not in REGISTRY:
            raise click.BadParameter(
                f"unknown format {name!r} (known: {', '.join(sorted(REGISTRY))})",
                param_hint="--format",
            )
    chosen = tuple(a.strip() for a in actions.split(",") if a.strip())
    bad = [a for a in chosen if a not in ACTIONS]
    if bad or not chosen:
        raise click.BadParameter(f"choose from {', '.join(ACTIONS)}", param_hint="--actions")
    try:
        policy = ViolationPolicy.with_internal(internal_cidr, actions=chosen)
    except OptionError as exc:
        raise click.BadParameter(str(exc), param_hint="--internal-cidr") from None
    per_format: dict[str, dict[str, str]] = {}
    for key, value in _pairs(format_option, "--option", ""):
        fmt, dot, name = key.partition(".")
        if not dot or not name or fmt not in REGISTRY:
            raise click.BadParameter(
                f"expected FORMAT.KEY=VALUE with a known format, got {key!r} (known: {', '.join(sorted(REGISTRY))})",
                param_hint="--option",
            )
        allowed = getattr(REGISTRY[fmt], "OPTIONS", {})
        if name not in allowed:
            keys = ", ".join(sorted(allowed)) or "none"
            raise click.BadParameter(
                f"{fmt} has no setting {name!r} (its settings: {keys})", param_hint="--option"
            )
        per_format.setdefault(fmt, {})[name] = value
    reference_ns = None
    if reference_date:
        try:
            reference_ns, _ = parse_time(
                reference_date if "T" in reference_date else reference_date + "T00:00:00"
            )
        except TimeParseError:
            raise click.BadParameter(
                f"not a date: {reference_date!r} (write e.g. 2025-12-02)",
                param_hint="--reference-date",
            ) from None
    known: list[tuple[str, float]] = []
    auto = False
    if "none" in (v.strip() for v in offset) and len(offset) > 1:
        raise click.BadParameter(
            "none cannot be combined with other offsets", param_hint="--offset"
        )
    for value in offset:
        if value.strip() == "none":  # times as logged (overrides a case's default)
            continue
        if value.strip() == "auto":
            auto = True
            continue
        source, sep, amount = value.partition("=")
        if not sep or source.strip() not in REGISTRY:
            raise click.BadParameter(
                f"expected auto, none or FORMAT=DURATION with a known format, got {value!r}",
                param_hint="--offset",
            )
        known.append((source.strip(), _duration("--offset", amount, allow_negative=True) / 1e9))
    try:
        loaded_rules = load_rules(rules)
    except OptionError as exc:
        raise click.BadParameter(str(exc), param_hint="--rules") from None
    return RunOptions(
        limits=Limits(max_line_bytes=max_line_bytes, max_expansion=max_expansion),
        rules=loaded_rules,
        rules_path=rules,
        offsets=tuple(known),
        offset_auto=auto,
        before_ns=_duration("--before", before),
        after_ns=_duration("--after", after),
        gap_ns=_duration("--gap", gap),
        policy=policy,
        unmapped=unmapped,
        lease_grace_ns=_duration("--lease-grace", lease_grace),
        load=LoadOptions(
            zones=zones,
            epoch_unit=epoch_unit,
            strict=strict,
            reference_ns=reference_ns,
            format_options=per_format,
        ),
        formats=tuple(forced),
        anchors=_anchors(anchors),
    )


def _anchors(text: str) -> int | None:
    """``--anchors``: a count of allowed events to keep per network format, or ``all``."""
    if text.strip().lower() == "all":
        return None
    if not text.strip().isdigit():
        raise click.BadParameter(f"expected a count or all, got {text!r}", param_hint="--anchors")
    return int(text)


@contextmanager
def _progress(console: Console, enabled: bool) -> Iterator[Any]:
    """A file-level progress bar on a terminal; nothing when piped or quiet."""
    if not enabled or not console.is_terminal:
        yield None
        return
    with Progress(
        TextColumn("reading {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("", total=None)

        def update(path: str, done: int, total: int) -> None:
            progress.update(task, description=inert(path, 60), completed=done, total=total)

        yield update


def _write_rejects(path: str, rejects: Sequence[Reject]) -> None:
    """Rejected rows as JSON lines: path, line, reason and the raw text."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for r in rejects:
            record = {
                "path": r.location.path,
                "line": r.location.line,
                "reason": r.reason,
                "raw": r.raw,
            }
            fh.write(inert_json(record, sort_keys=True) + "\n")


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=examples(
        "correlate run sample_logs/rome_incident",
        "# load once into a case, then ask many questions",
        "correlate ingest case/ sample_logs/rome_incident --offset auto",
        "correlate findings case/ --by tool",
    ),
)
@click.version_option(__version__, prog_name="correlate")
@click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Colour on stdout and stderr: auto (on a terminal, unless NO_COLOR is set), always, never.",
)
def cli(color: str) -> None:
    """Attribute outbound firewall violations to the AI-agent tool calls that caused them.

    -o/--output FILE always names a file, written in --format (else as its suffix says);
    --input-format forces how an input is read. Clocks: as logged unless --offset is given
    (auto: the estimated offsets) or a case's ingest recorded one as its default.
    """
    apply_color(color)


COLOR = {"choice": "auto"}
"""``--color`` of this invocation (every console of the CLI is made by ``make_console``)."""


def apply_color(choice: str) -> None:
    """Remember ``--color`` for ``make_console`` (never mutates the environment)."""
    COLOR["choice"] = choice


def make_console(**options: Any) -> Console:
    """A console that honours ``--color``: ``never`` (or ``NO_COLOR`` set, under ``auto``)
    writes no escape sequence at all, ``always`` styles even when piped."""
    choice = COLOR["choice"]
    if choice == "never" or (choice == "auto" and os.environ.get("NO_COLOR")):
        options.setdefault("color_system", None)
        stream = sys.stderr if options.get("stderr") else sys.stdout
        options.setdefault("force_terminal", bool(getattr(stream, "isatty", bool)()))
    elif choice == "always":
        options.setdefault("force_terminal", True)
    return Console(**options)


def analysis_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The options that change what is loaded and how it is joined, shared by every analysing command."""
    decorators = [
        click.option(
            "--before",
            default=format_duration(DEFAULT_BEFORE_NS),
            show_default=True,
            help="Window before a call's start (firewall clock behind, event logged early).",
        ),
        click.option(
            "--after",
            default=format_duration(DEFAULT_AFTER_NS),
            show_default=True,
            help="Window after a call's end (background processes, flow-log delay).",
        ),
        click.option(
            "--gap",
            default="10m",
            show_default=True,
            help="Idle gap that ends a conversation (src, dst, dport, proto).",
        ),
        click.option(
            "--tz",
            multiple=True,
            metavar="[FORMAT=]ZONE",
            help="Zone for naive times, for all formats or one (e.g. inventory=Asia/Shanghai). Default UTC.",
        ),
        click.option(
            "--epoch-unit",
            type=click.Choice(EPOCH_UNITS),
            default="auto",
            show_default=True,
            help="Unit of epoch numbers; auto picks by magnitude and notes it when unexpected.",
        ),
        click.option(
            "--inventory",
            multiple=True,
            type=click.Path(),
            help="Host/sandbox to IP inventory (CSV or JSON); repeatable.",
        ),
        click.option(
            "--internal-cidr",
            multiple=True,
            metavar="CIDR",
            help="Extra internal network (added to RFC 1918, 100.64/10, link-local); repeatable.",
        ),
        click.option(
            "--actions",
            default=",".join(DEFAULT_ACTIONS),
            show_default=True,
            help="Verdicts that make an outbound event a violation.",
        ),
        click.option(
            "--unmapped",
            type=click.Choice(UNMAPPED_CHOICES),
            default="skip",
            show_default=True,
            help="Sources not in the identity map: skip them, or join them by time alone.",
        ),
        click.option(
            "--lease-grace",
            default="10m",
            show_default=True,
            metavar="DURATION",
            help="How long a trajectory's hold on a shared address outlives its last call.",
        ),
        click.option(
            "--input-format",
            "formats",
            multiple=True,
            metavar="[GLOB=]NAME",
            shell_complete=_complete_input_format,
            help="Force an input format for all files or those matching GLOB (see `correlate formats`).",
        ),
        click.option(
            "--option",
            "format_option",
            multiple=True,
            metavar="FORMAT.KEY=VALUE",
            help="A setting for one format, e.g. aws_vpc_flow.fields='version account-id ...'.",
        ),
        click.option(
            "--reference-date",
            metavar="DATE",
            help="Reference date for logs without a year (RFC 3164 syslog); default: each file's mtime.",
        ),
        click.option(
            "--offset",
            multiple=True,
            metavar="auto|none|FORMAT=DURATION",
            help="Clock offset of a network source (its clock minus the trajectories', e.g. alibaba_cfw=-4s), auto to estimate and apply it, or none. Without it times are compared as logged (a case's default applies to a case).",
        ),
        click.option(
            "--rules",
            type=click.Path(dir_okay=False),
            help="JSON file extending the labelling rules (pool domains, ports, thresholds).",
        ),
        click.option(
            "--max-line-bytes",
            type=click.IntRange(1024),
            default=DEFAULT_LIMITS.max_line_bytes,
            show_default=True,
            help="A longer line is one rejected row, read past without being held in memory.",
        ),
        click.option(
            "--max-expansion",
            type=click.FloatRange(1.0),
            default=DEFAULT_LIMITS.max_expansion,
            show_default=True,
            help="How many times its size a compressed file may expand (beyond 64 MiB).",
        ),
        click.option(
            "--anchors",
            default=str(DEFAULT_ANCHORS),
            show_default=True,
            metavar="N|all",
            help="Allowed events kept per network format, as a uniform sample for clock anchors and the bytes norm; every violation is kept whatever N (all: keep every event).",
        ),
        click.option(
            "--strict", is_flag=True, help="Stop with exit code 1 at the first rejected row."
        ),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def _complete_input_format(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[str]:
    """Shell completion of ``--input-format``: the format names (after ``GLOB=`` too)."""
    glob, sep, name = incomplete.rpartition("=")
    return [f"{glob}{sep}{n}" for n in sorted(REGISTRY) if n.startswith(name)]


def legacy_format_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """The hidden ``--format [GLOB=]NAME`` of ``offset``/``stats``/``ingest``: ``--input-format``'s
    old spelling, kept for one release (``--format`` now always names a row or file format)."""
    return click.option("--format", "legacy_formats", multiple=True, hidden=True)(function)


def _case_defaults(
    paths: Sequence[str], inventory: Sequence[str], analysis: dict[str, Any]
) -> None:
    """PATHS that are one case directory: analysis options not given on the command line take
    the case's defaults (``ingest --offset auto`` aligns ``run CASE`` as it aligns ``findings``)."""
    from .case import is_case, open_case

    if len(paths) != 1 or inventory or not is_case(paths[0]):
        return
    ctx = click.get_current_context()
    for key, value in open_case(paths[0]).analysis_defaults.items():
        if key in analysis and ctx.get_parameter_source(key) is not ParameterSource.COMMANDLINE:
            analysis[key] = tuple(value) if isinstance(value, list) else value


ENGINES = ("local", "dask")


def _engine_args(analysis: dict[str, Any]) -> dict[str, Any]:
    """Where the command runs and whether it answers from a damaged case: popped from the
    analysis flags for ``_load_and_analyse``."""
    return {
        "engine": analysis.pop("engine"),
        "scheduler": analysis.pop("scheduler"),
        "ignore_integrity": analysis.pop("ignore_integrity"),
    }


def integrity_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """--ignore-integrity for commands that take PATHS or a CASE (run, offset, stats)."""
    return click.option(
        "--ignore-integrity",
        is_flag=True,
        help="Given a case whose stored files fail their hashes, answer anyway (with a warning).",
    )(function)


def engine_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--engine and --scheduler: where the band join runs (the answer is the same either way)."""
    function = click.option(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        help="Dask scheduler of an existing cluster for --engine dask (default: a local cluster).",
    )(function)
    return click.option(
        "--engine",
        type=click.Choice(ENGINES),
        default="local",
        show_default=True,
        help="Run the call-event join in this process, or on Dask (pip install 'agent-correlate[dask]').",
    )(function)


@contextmanager
def engine_joiner(engine: str = "local", scheduler: str | None = None) -> Iterator[Joiner]:
    """The joiner for ``analyse``: band_join here, or a DaskJoiner on the cluster (closed after)."""
    if engine == "local":
        if scheduler:
            raise OptionError("--scheduler needs --engine dask")
        yield band_join
        return
    from .distributed import dask_joiner

    with dask_joiner(scheduler) as joiner:
        yield joiner


@contextmanager
def _errors_as_exit_codes(err: Console) -> Iterator[None]:
    """Library errors become one sentence on stderr and exit code 1 (2 for option errors)."""
    try:
        yield
    except OptionError as exc:
        err.print(f"error: {inert(exc)}", markup=False)
        sys.exit(EXIT_USAGE)
    except CorrelateError as exc:
        err.print(f"error: {inert(exc)}", markup=False)
        sys.exit(EXIT_DATA)
    except (OSError, MemoryError) as exc:
        err.print(f"error: {inert(os_condition(exc))}", markup=False)
        sys.exit(EXIT_DATA)


def os_condition(exc: BaseException) -> str:
    """An ordinary condition of the machine (disk full, read-only output, permission denied, a
    file too large, out of memory) in one sentence: not a bug in correlate."""
    if isinstance(exc, MemoryError):
        return (
            "out of memory; keep fewer allowed events (--anchors), use a case (correlate "
            "ingest) or --engine dask"
        )
    if isinstance(exc, OSError):
        where = exc.filename if exc.filename is not None else ""
        what = exc.strerror or type(exc).__name__
        return f"{where}: {what}" if where else str(what)
    return str(exc)


ANNOUNCED_FILES = 12
"""Up to this many inputs are announced one per line; more are summed per format (-v: each)."""


def _announce_inputs(err: Console, loaded: Loaded, verbose: bool) -> None:
    """Which format each input was read as, on stderr: per file for a few inputs (or -v),
    else per format and per skip reason, so 64 sandbox folders do not bury the answer."""
    if verbose or len(loaded.inputs) <= ANNOUNCED_FILES:
        for f in loaded.inputs:
            if f.format and not f.skipped_reason:
                how = "forced" if f.forced else f"detected, score {f.score:.2f}"
                err.print(f"{inert(f.path)}: {f.format} ({how})", markup=False, highlight=False)
            else:
                err.print(
                    f"{inert(f.path)}: skipped, {inert(f.skipped_reason)}",
                    markup=False,
                    highlight=False,
                )
        return
    formats: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    for f in loaded.inputs:
        if f.format and not f.skipped_reason:
            formats[f"{f.format}{' (forced)' if f.forced else ''}"] += 1
        else:
            skipped[str(f.skipped_reason)] += 1
    for name, n in sorted(formats.items()):
        err.print(f"{n} file{'s' if n != 1 else ''}: {name}", markup=False, highlight=False)
    for reason, n in sorted(skipped.items()):
        err.print(
            f"{n} file{'s' if n != 1 else ''} skipped: {inert(reason)}",
            markup=False,
            highlight=False,
        )
    err.print("(-v lists each file)", markup=False, highlight=False)


def _load_and_analyse(
    paths: Sequence[str],
    inventory: Sequence[str],
    options: RunOptions,
    err: Console,
    quiet: bool,
    rejects_path: str | None = None,
    *,
    engine: str = "local",
    scheduler: str | None = None,
    verbose: bool = False,
    ignore_integrity: bool = False,
) -> Result:
    """Load (with progress and format announcements), report rejects, analyse, check both sides.

    ``verbose`` lists every rejected row (not only the first ten) and the time each stage took.
    """
    started = time.perf_counter()
    with engine_session(engine, scheduler) as session:  # one cluster loads and joins
        with _progress(err, not quiet) as progress:
            if ignore_integrity and len(paths) == 1 and not inventory and is_case(paths[0]):
                for problem in check_integrity(open_case(paths[0]), ignore=True):
                    err.print(f"warning: {inert(problem)} (--ignore-integrity)", markup=False)
            loaded = session.load(
                paths,
                options,
                inventories=inventory,
                progress=progress,
                ignore_integrity=ignore_integrity,
            )
        loaded_at = time.perf_counter()
        if not quiet:
            _announce_inputs(err, loaded, verbose)
        if loaded.rejects:
            err.print(f"{len(loaded.rejects)} row(s) rejected:", markup=False)
            err.print(
                rejects_renderable(loaded.rejects, limit=len(loaded.rejects) if verbose else 10)
            )
        if rejects_path:
            inputs = [(Path(f.path), "an input of this analysis") for f in loaded.inputs]
            refuse_overwrite([rejects_path], inputs, option="--rejects")
            _write_rejects(rejects_path, loaded.rejects)
        result = analyse(loaded, options, joiner=session.joiner)
    if verbose:
        err.print(
            f"loaded {len(loaded.inputs)} input(s) in {loaded_at - started:.2f}s, "
            f"analysed in {time.perf_counter() - loaded_at:.2f}s ({engine} join)",
            markup=False,
        )
    _check_inputs(result)
    return result


RUN_EXAMPLES = examples(
    "# the ranked overview, then each finding's reasons and top candidates",
    "correlate run sample_logs/rome_incident -d",
    "# on the trajectories' clock (the estimated firewall offset applied)",
    "correlate run sample_logs/rome_incident --offset auto",
    "# the report as files: Parquet here (report.csv would write CSV; or say --format)",
    "correlate run sample_logs/rome_incident -q -o report.parquet",
)


@cli.command("run", epilog=RUN_EXAMPLES)
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@analysis_options
@engine_options
@integrity_option
@click.option(
    "-d",
    "--details",
    is_flag=True,
    help="After the overview, each conversation in detail: reasons and top candidates.",
)
@click.option(
    "--top",
    default=3,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Candidates shown per finding with --details.",
)
@click.option(
    "--rejects",
    "rejects_path",
    type=click.Path(dir_okay=False),
    help="Write every rejected row (path, line, reason, raw text) to this JSON-lines file.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Also write the report to this file, and its tables beside it, in --format (by default "
    "as the suffix says: .parquet, .csv, .jsonl; Parquet without a suffix).",
)
@click.option(
    "--format",
    "format_values",
    multiple=True,
    metavar="|".join(FILE_FORMATS),
    shell_complete=lambda ctx, param, incomplete: [
        f for f in FILE_FORMATS if f.startswith(incomplete)
    ],
    help="Format of -o: parquet (OUTPUT, STEM.findings/.candidates/.stats.parquet), csv or "
    "jsonl (the tables of `correlate export`), ocsf, timesketch.",
)
@click.option(
    "-q", "--quiet", is_flag=True, help="No progress and no format announcements on stderr."
)
@click.option(
    "--permutations",
    default=999,
    show_default=True,
    type=click.IntRange(0, 100_000),
    help="Circular shifts per episode for the statistics written with -o (0 skips them).",
)
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Every rejected row (not only the first ten) and stage timings.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON document (provenance and findings) instead of the report, for scripts.",
)
def run_command(
    paths: tuple[str, ...],
    inventory: tuple[str, ...],
    details: bool,
    top: int,
    rejects_path: str | None,
    output: str | None,
    format_values: tuple[str, ...],
    quiet: bool,
    permutations: int,
    as_json: bool,
    verbose: bool,
    **analysis: Any,
) -> None:
    """Read firewall and agent logs under PATHS and report which tool calls caused the violations.

    PATHS may be one case directory (`correlate ingest`): its stored tables are analysed with
    its defaults. Clocks: as logged unless --offset says otherwise (or the case's default).
    """
    fmt, legacy = _run_format(format_values)
    if legacy:
        analysis["legacy_formats"] = legacy
    _legacy_input_formats(analysis, quiet)
    engine = _engine_args(analysis)
    err = make_console(stderr=True, highlight=False, soft_wrap=True)
    with _errors_as_exit_codes(err):
        if fmt and not output:
            raise OptionError(f"--format {fmt} is the format of -o FILE: give -o FILE too")
        file_fmt = file_format(output, fmt, FILE_FORMATS, default="parquet") if output else None
        _case_defaults(paths, inventory, analysis)
        options = _run_options(**analysis)
        result = _load_and_analyse(
            paths, inventory, options, err, quiet, rejects_path, verbose=verbose, **engine
        )
        if as_json:
            findings = table_records(findings_table(result))
            document = {"provenance": result.provenance(), "findings": findings}
            # ASCII-only: log text cannot act on the terminal; times ISO 8601 UTC as in every export.
            click.echo(json.dumps(document, indent=2, sort_keys=True, ensure_ascii=True))
        else:
            print_report(result, _stdout_console(), top=top, details=details, verbose=verbose)
        if output and file_fmt:
            written = export(result, file_fmt, output, permutations=permutations)
            if not quiet:
                err.print(
                    "report: " + ", ".join(inert(str(p)) for p in written.values()), markup=False
                )


@cli.command(
    "offset",
    epilog=examples(
        "correlate offset sample_logs/rome_incident",
        "# ROLL and ROCK logs in naive trainer-local time",
        "correlate offset sample_logs/rock_shared_hosts --tz Asia/Shanghai",
    ),
)
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@analysis_options
@legacy_format_option
@engine_options
@integrity_option
@click.option(
    "-q", "--quiet", is_flag=True, help="No progress and no format announcements on stderr."
)
def offset_command(
    paths: tuple[str, ...], inventory: tuple[str, ...], quiet: bool, **analysis: Any
) -> None:
    """Estimate the clock offset of each network source against each trajectory source."""
    _legacy_input_formats(analysis, quiet)
    engine = _engine_args(analysis)
    err = make_console(stderr=True, highlight=False, soft_wrap=True)
    with _errors_as_exit_codes(err):
        _case_defaults(paths, inventory, analysis)
        options = _run_options(**analysis)
        result = _load_and_analyse(paths, inventory, options, err, quiet, **engine)
        out = _stdout_console()
        out.print(offsets_renderable(result))
        if not result.offset_estimates:
            out.print(
                "no (network event, tool call) pairs of the same sandbox within 120s: nothing to estimate",
                markup=False,
            )


@cli.command(
    "stats",
    epilog=examples(
        "# on the trajectories' clock: the estimated offsets applied",
        "correlate stats sample_logs/rome_incident --offset auto",
        "# a case (its ingest's --offset is the default); fewer shifts, five episodes",
        "correlate stats case/ --permutations 199 --episodes 5",
    ),
)
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@analysis_options
@legacy_format_option
@engine_options
@integrity_option
@click.option(
    "--permutations",
    default=999,
    show_default=True,
    type=click.IntRange(19, 100_000),
    help="Circular shifts per episode for the null.",
)
@click.option(
    "--episodes",
    "top",
    default=10,
    show_default=True,
    type=click.IntRange(0, 100_000),
    help="Episodes listed (lowest p-values first).",
)
@click.option(
    "-q", "--quiet", is_flag=True, help="No progress and no format announcements on stderr."
)
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Timings on stderr: loading, the analysis, and the statistics (and whether they were "
    "read from the case's cache).",
)
def stats_command(
    paths: tuple[str, ...],
    inventory: tuple[str, ...],
    permutations: int,
    top: int,
    quiet: bool,
    verbose: bool,
    **analysis: Any,
) -> None:
    """Are violations associated with tool calls more than chance?

    On the clocks every command uses: as logged unless --offset is given (auto: the estimated
    offsets; a case's default applies to a case). The first lines say which. Given a case,
    the analysis and the statistics are read from its cache when they are there (and kept
    there when they are not), as findings --by reads them.
    """
    _legacy_input_formats(analysis, quiet)
    engine = _engine_args(analysis)
    err = make_console(stderr=True, highlight=False, soft_wrap=True)
    with _errors_as_exit_codes(err):
        _case_defaults(paths, inventory, analysis)
        options = _run_options(**analysis)
        if len(paths) == 1 and not inventory and is_case(paths[0]):
            result = _analyse_case(paths[0], options, err, quiet, verbose=verbose, **engine)
        else:
            result = _load_and_analyse(
                paths, inventory, options, err, quiet, verbose=verbose, **engine
            )
        started = time.perf_counter()
        associations, baselines, source = timed_statistics(result, permutations)
        if verbose:
            err.print(
                f"statistics ({permutations} shifts per episode) {source} in "
                f"{time.perf_counter() - started:.3f}s",
                markup=False,
            )
        out = _stdout_console()
        out.print(offsets_renderable(result))
        out.print(clock_line(result), markup=False)
        out.print(statistics_renderable(associations, baselines, top))


def _analyse_case(
    path: str,
    options: RunOptions,
    err: Console,
    quiet: bool,
    *,
    engine: str = "local",
    scheduler: str | None = None,
    verbose: bool = False,
    ignore_integrity: bool = False,
) -> Result:
    """``_load_and_analyse`` for one case directory, through ``Case.analyse``: the analysis
    comes from (or goes to) the case's cache, and the result caches its statistics there."""
    started = time.perf_counter()
    case = open_case(path)
    for problem in check_integrity(case, ignore=ignore_integrity):
        err.print(f"warning: {inert(problem)} (--ignore-integrity)", markup=False)
    with engine_joiner(engine, scheduler) as joiner:
        result = case.analyse(options, joiner=joiner)
    if not quiet:
        _announce_inputs(err, result.loaded, verbose)
    rejects = result.loaded.rejects
    if rejects:
        err.print(f"{len(rejects)} row(s) rejected:", markup=False)
        err.print(rejects_renderable(rejects, limit=len(rejects) if verbose else 10))
    if verbose:
        source = "read from the case's cache" if result.cached else "computed"
        err.print(
            f"case {inert(path)}: {len(result.loaded.inputs)} input(s); analysis {source} in "
            f"{time.perf_counter() - started:.2f}s ({engine} join)",
            markup=False,
        )
    _check_inputs(result)
    return result


def timed_statistics(
    result: Result, permutations: int
) -> tuple[list[Association], list[Baseline], str]:
    """``result.statistics(permutations)`` and where they came from, in words: "read from the
    case's cache", or "computed" and why nothing was cached.

    ``CaseResult.statistics`` computes (through ``Result.statistics``) only when its cache has no
    valid entry; a probe class slotted between the two in the method order sees that call.
    """
    if not isinstance(result, CaseResult):
        associations, baselines = result.statistics(permutations)
        return associations, baselines, "computed (inputs, not a case: nothing to cache them in)"
    probe = _StatisticsProbe(**{f.name: getattr(result, f.name) for f in fields(CaseResult)})
    associations, baselines = probe.statistics(permutations)
    if not probe.computed:
        return associations, baselines, "read from the case's cache"
    if result.cache_dir is None:
        return associations, baselines, "computed (not cached: --no-cache or a damaged case)"
    return associations, baselines, "computed (kept in the case's cache for the next time)"


class _ComputedMark(Result):
    """Marks a result whose statistics were computed, not read (see ``timed_statistics``)."""

    computed: bool = False

    def statistics(self, permutations: int = 999) -> tuple[list[Association], list[Baseline]]:
        self.computed = True
        return super().statistics(permutations)


class _StatisticsProbe(CaseResult, _ComputedMark):
    """A CaseResult whose ``super().statistics`` (the computation) marks it computed."""


def _stdout_console() -> Console:
    """Data on stdout: the terminal's width on a terminal; piped, ``COLUMNS`` when set, else a
    fixed wide layout that never wraps (one finding per line for grep and awk)."""
    console = make_console(highlight=False)
    stream = sys.stdout
    if not (hasattr(stream, "isatty") and stream.isatty()):  # piped (--color always too)
        columns = os.environ.get("COLUMNS", "")
        if columns.isdigit() and int(columns) >= 40:  # the width the user asked for, wrapped
            console = make_console(highlight=False, width=int(columns))
        else:
            console = make_console(highlight=False, width=PIPED_WIDTH, soft_wrap=True)
    return console


def _check_inputs(result: Result) -> None:
    """One clear sentence when a side of the join is missing altogether."""
    kinds = {f.kind for f in result.loaded.inputs if f.kind}
    if "network" not in kinds:
        raise CorrelateError("no firewall or flow log among the inputs; nothing to attribute")
    if "agent" not in kinds:
        raise CorrelateError(
            "no agent trajectory among the inputs; nothing to attribute violations to"
        )


@cli.command(
    "sniff",
    epilog=examples(
        "correlate sniff sample_logs/rome_incident",
        "# then force the right one where detection chose wrong",
        "correlate run sample_logs/rome_incident --input-format 'cfw_*.csv=alibaba_cfw'",
    ),
)
@click.argument("paths", nargs=-1, required=True, type=click.Path())
def sniff_command(paths: tuple[str, ...]) -> None:
    """Print every format's sniff score for each file under PATHS (the best one is chosen)."""
    console = _stdout_console()
    err = make_console(stderr=True, highlight=False, soft_wrap=True)
    with _errors_as_exit_codes(err):
        for source in expand_paths(paths):
            head = source.head()
            scores = sorted(
                (
                    (float(module.sniff(head, source.name)), name)
                    for name, module in REGISTRY.items()
                ),
                key=lambda pair: (-pair[0], pair[1]),
            )
            best_score, best = scores[0]
            verdict = best if best_score >= MIN_SCORE else "no format (all below 0.5)"
            console.print(f"{inert(source.display)}: {verdict}", markup=False)
            for score, name in scores:
                if score > 0:
                    console.print(f"  {score:4.2f}  {name}", markup=False)


@cli.command(
    "formats",
    epilog=examples(
        "correlate formats",
        "# a setting of one format, from the list",
        "correlate run sample_logs/rome_incident --option aws_vpc_flow.fields='version srcaddr'",
    ),
)
def formats_command() -> None:
    """List the log formats correlate reads, with their --option settings."""
    console = make_console(highlight=False, soft_wrap=True)
    for name in sorted(REGISTRY):
        module = REGISTRY[name]
        console.print(f"{name:<18} {module.kind:<10} {module.description}", markup=False)
        for key, help_text in sorted(getattr(module, "OPTIONS", {}).items()):
            console.print(f"{'':<18} --option {name}.{key}=...  {help_text}", markup=False)


def main() -> None:
    """Entry point of the ``correlate`` command.

    An unexpected exception is a bug in correlate, not in the input: it is reported in one line
    (exit code 1) unless CORRELATE_DEBUG=1 asks for the traceback.
    """
    try:
        code = cli.main(standalone_mode=False)  # --help, --version: click returns their code
        if isinstance(code, int) and code:
            sys.exit(code)
    except (KeyboardInterrupt, click.exceptions.Abort):
        make_console(stderr=True).print("interrupted", markup=False)
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (OSError, MemoryError) as exc:
        make_console(stderr=True, soft_wrap=True).print(
            f"error: {inert(os_condition(exc), 300)}", markup=False
        )
        sys.exit(EXIT_DATA)
    except Exception as exc:
        if os.environ.get("CORRELATE_DEBUG") == "1":
            raise
        make_console(stderr=True, soft_wrap=True).print(
            f"internal error: {type(exc).__name__}: {inert(exc, 300)} "
            "(a bug in correlate; CORRELATE_DEBUG=1 shows the traceback; please report it)",
            markup=False,
        )
        sys.exit(EXIT_DATA)


from .case_cli import register  # noqa: E402

register(cli)
