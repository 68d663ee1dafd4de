"""Command line: a thin layer that parses flags, calls the library and renders its answer."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from . import __version__
from .atomic import atomic_path
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
    Result,
    RunOptions,
    analyse,
)
from .policy import DEFAULT_ACTIONS, ViolationPolicy
from .reports.overview import print_report
from .reports.parquet import write_report
from .reports.terminal import (
    offsets_renderable,
    rejects_renderable,
    statistics_renderable,
)
from .schema import plain_rows
from .sources import DEFAULT_LIMITS, Limits, expand_paths
from .textsafe import inert
from .timeparse import (
    EPOCH_UNITS,
    TimeParseError,
    format_duration,
    parse_duration,
    parse_time,
    resolve_zone,
)

EXIT_OK, EXIT_DATA, EXIT_USAGE = 0, 1, 2
PIPED_WIDTH = 160
ACTIONS = ("allowed", "alerted", "denied", "unknown")


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
    for value in offset:
        if value.strip() == "auto":
            auto = True
            continue
        source, sep, amount = value.partition("=")
        if not sep or source.strip() not in REGISTRY:
            raise click.BadParameter(
                f"expected auto or FORMAT=DURATION with a known format, got {value!r}",
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
            fh.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="correlate")
def cli() -> None:
    """Attribute outbound firewall violations to the AI-agent tool calls that caused them."""


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
            "--format",
            "formats",
            multiple=True,
            metavar="[GLOB=]NAME",
            help="Force a format for all files or those matching GLOB (see `correlate formats`).",
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
            metavar="auto|FORMAT=DURATION",
            help="Clock offset of a network source (its clock minus the trajectories', e.g. alibaba_cfw=-4s), or auto to estimate and apply.",
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
            help="A longer line stops its file (untrusted input must not exhaust memory).",
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


ENGINES = ("local", "dask")


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
) -> Result:
    """Load (with progress and format announcements), report rejects, analyse, check both sides.

    ``verbose`` lists every rejected row (not only the first ten) and the time each stage took.
    """
    started = time.perf_counter()
    with engine_session(engine, scheduler) as session:  # one cluster loads and joins
        with _progress(err, not quiet) as progress:
            loaded = session.load(paths, options, inventories=inventory, progress=progress)
        loaded_at = time.perf_counter()
        if not quiet:
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
        if loaded.rejects:
            err.print(f"{len(loaded.rejects)} row(s) rejected:", markup=False)
            err.print(
                rejects_renderable(loaded.rejects, limit=len(loaded.rejects) if verbose else 10)
            )
        if rejects_path:
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


@cli.command("run")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@analysis_options
@engine_options
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
    help="Write the Parquet report (OUTPUT, OUTPUT-stem.findings.parquet, .candidates.parquet).",
)
@click.option(
    "-q", "--quiet", is_flag=True, help="No progress and no format announcements on stderr."
)
@click.option(
    "--permutations",
    default=999,
    show_default=True,
    type=click.IntRange(0, 100_000),
    help="Circular shifts per episode for the statistics in the Parquet report (0 skips them).",
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
    quiet: bool,
    permutations: int,
    as_json: bool,
    verbose: bool,
    **analysis: Any,
) -> None:
    """Read firewall and agent logs under PATHS and report which tool calls caused the violations."""
    engine = {"engine": analysis.pop("engine"), "scheduler": analysis.pop("scheduler")}
    options = _run_options(**analysis)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    with _errors_as_exit_codes(err):
        result = _load_and_analyse(
            paths, inventory, options, err, quiet, rejects_path, verbose=verbose, **engine
        )
        if as_json:
            document = {"provenance": result.provenance(), "findings": plain_rows(result.findings)}
            # ASCII-only: log text cannot act on the terminal; times are int ns since the epoch, UTC.
            click.echo(json.dumps(document, indent=2, sort_keys=True, ensure_ascii=True))
        else:
            print_report(result, _stdout_console(), top=top, details=details, verbose=verbose)
        if output:
            written = write_report(result, output, permutations=permutations)
            if not quiet:
                err.print(
                    "report: " + ", ".join(inert(str(p)) for p in written.values()), markup=False
                )


@cli.command("offset")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@analysis_options
@engine_options
@click.option(
    "-q", "--quiet", is_flag=True, help="No progress and no format announcements on stderr."
)
def offset_command(
    paths: tuple[str, ...], inventory: tuple[str, ...], quiet: bool, **analysis: Any
) -> None:
    """Estimate the clock offset of each network source against each trajectory source."""
    engine = {"engine": analysis.pop("engine"), "scheduler": analysis.pop("scheduler")}
    options = _run_options(**analysis)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    with _errors_as_exit_codes(err):
        result = _load_and_analyse(paths, inventory, options, err, quiet, **engine)
        out = _stdout_console()
        out.print(offsets_renderable(result))
        if not result.offset_estimates:
            out.print(
                "no (network event, tool call) pairs of the same sandbox within 120s: nothing to estimate",
                markup=False,
            )


@cli.command("stats")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@analysis_options
@engine_options
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
def stats_command(
    paths: tuple[str, ...],
    inventory: tuple[str, ...],
    permutations: int,
    top: int,
    quiet: bool,
    **analysis: Any,
) -> None:
    """Are violations associated with tool calls more than chance? Clocks are aligned first.

    Unless --offset is given, the estimated offsets are applied (as with --offset auto).
    """
    if not analysis.get("offset"):
        analysis["offset"] = ("auto",)
    engine = {"engine": analysis.pop("engine"), "scheduler": analysis.pop("scheduler")}
    options = _run_options(**analysis)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    with _errors_as_exit_codes(err):
        result = _load_and_analyse(paths, inventory, options, err, quiet, **engine)
        associations, baselines = result.statistics(permutations)
        out = _stdout_console()
        out.print(offsets_renderable(result))
        out.print(statistics_renderable(associations, baselines, top))


def _stdout_console() -> Console:
    """Data on stdout: the terminal's width on a terminal; piped, ``COLUMNS`` when set, else a
    fixed wide layout that never wraps (one finding per line for grep and awk)."""
    console = Console(highlight=False)
    if not console.is_terminal:
        columns = os.environ.get("COLUMNS", "")
        if columns.isdigit() and int(columns) >= 40:  # the width the user asked for, wrapped
            console = Console(highlight=False, width=int(columns))
        else:
            console = Console(highlight=False, width=PIPED_WIDTH, soft_wrap=True)
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


@cli.command("sniff")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
def sniff_command(paths: tuple[str, ...]) -> None:
    """Print every format's sniff score for each file under PATHS (the best one is chosen)."""
    console = _stdout_console()
    err = Console(stderr=True, highlight=False, soft_wrap=True)
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


@cli.command("formats")
def formats_command() -> None:
    """List the log formats correlate reads, with their --option settings."""
    console = Console(highlight=False, soft_wrap=True)
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
        cli.main(standalone_mode=True)
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted", markup=False)
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("CORRELATE_DEBUG") == "1":
            raise
        Console(stderr=True, soft_wrap=True).print(
            f"internal error: {type(exc).__name__}: {inert(exc, 300)} "
            "(a bug in correlate; CORRELATE_DEBUG=1 shows the traceback; please report it)",
            markup=False,
        )
        sys.exit(EXIT_DATA)


from .case_cli import register  # noqa: E402

register(cli)
