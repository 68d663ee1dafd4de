"""Command line: a thin layer that parses flags, calls the library and renders its answer."""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource
from rich.console import Console

from . import __version__
from .atomic import atomic_path, refuse_overwrite
from .case import CaseResult, check_integrity, is_case, open_case
from .case_cli import register
from .cli_common import (
    EXIT_DATA,
    analysis_options,
    apply_color,
    clock_line,
    engine_joiner,
    engine_options,
    errors_as_exit_codes,
    examples,
    file_format,
    legacy_format_option,
    legacy_input_formats,
    make_console,
    os_condition,
    permutations_option,
    progress_bar,
    run_options,
    stdout_console,
)
from .distributed import engine_session
from .errors import CorrelateError, OptionError, write_rejects
from .loaders import MIN_SCORE, REGISTRY
from .pipeline import Loaded, Result, RunOptions, analyse
from .reports.export import FORMATS as FILE_FORMATS
from .reports.export import export, table_records
from .reports.overview import print_report
from .reports.parquet import findings_table
from .reports.terminal import (
    offsets_renderable,
    rejects_renderable,
    statistics_renderable,
)
from .sources import expand_paths
from .stats import Association, Baseline
from .textsafe import inert

# --- run's --format: the format of -o, or (deprecated) an input format ------------------------


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


register(cli)  # the commands over a case (case_cli)


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
        with progress_bar(err, not quiet) as progress:
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
            with atomic_path(rejects_path) as tmp:
                write_rejects(tmp, loaded.rejects)
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
@permutations_option(
    "Circular shifts per episode for the statistics written with -o (0 skips them)."
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
    legacy_input_formats(analysis, quiet)
    engine = _engine_args(analysis)
    err = make_console(stderr=True, highlight=False, soft_wrap=True)
    with errors_as_exit_codes(err):
        if fmt and not output:
            raise OptionError(f"--format {fmt} is the format of -o FILE: give -o FILE too")
        file_fmt = file_format(output, fmt, FILE_FORMATS, default="parquet") if output else None
        _case_defaults(paths, inventory, analysis)
        options = run_options(**analysis)
        result = _load_and_analyse(
            paths, inventory, options, err, quiet, rejects_path, verbose=verbose, **engine
        )
        if as_json:
            findings = table_records(findings_table(result))
            document = {"provenance": result.provenance(), "findings": findings}
            # ASCII-only: log text cannot act on the terminal; times ISO 8601 UTC as in every export.
            click.echo(json.dumps(document, indent=2, sort_keys=True, ensure_ascii=True))
        else:
            print_report(result, stdout_console(), top=top, details=details, verbose=verbose)
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
    legacy_input_formats(analysis, quiet)
    engine = _engine_args(analysis)
    err = make_console(stderr=True, highlight=False, soft_wrap=True)
    with errors_as_exit_codes(err):
        _case_defaults(paths, inventory, analysis)
        options = run_options(**analysis)
        result = _load_and_analyse(paths, inventory, options, err, quiet, **engine)
        out = stdout_console()
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
@permutations_option("Circular shifts per episode for the null.", shown=True)
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
    legacy_input_formats(analysis, quiet)
    engine = _engine_args(analysis)
    err = make_console(stderr=True, highlight=False, soft_wrap=True)
    with errors_as_exit_codes(err):
        _case_defaults(paths, inventory, analysis)
        options = run_options(**analysis)
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
        out = stdout_console()
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
    console = stdout_console()
    err = make_console(stderr=True, highlight=False, soft_wrap=True)
    with errors_as_exit_codes(err):
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
