"""Click helpers shared by ``cli.py`` and ``case_cli.py``: consoles, the option decorators built
from the analysis-options table, the file-format vocabulary, and library errors as exit codes.

The commands themselves live in ``cli`` (over inputs) and ``case_cli`` (over a case); neither
imports the other's helpers, so the package's imports have no cycle.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .errors import CorrelateError, OptionError
from .join import band_join
from .loaders import REGISTRY
from .options import (
    ANALYSIS_OPTIONS,
    CASE_OPTIONS,
    PERMUTATIONS,
    SHOWN_PERMUTATIONS,
    AnalysisOption,
    FlagError,
)
from .pipeline import Joiner, Result, RunOptions
from .textsafe import inert

EXIT_DATA, EXIT_USAGE = 1, 2
PIPED_WIDTH = 160

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


def legacy_input_formats(analysis: dict[str, Any], quiet: bool) -> None:
    """Fold the hidden ``--format [GLOB=]NAME`` (the input-format spelling before
    ``--input-format``) into ``formats``, with a deprecation note."""
    legacy = tuple(analysis.pop("legacy_formats", ()) or ())
    if legacy:
        deprecated("--format [GLOB=]NAME for an input format", "--input-format", quiet)
        analysis["formats"] = tuple(analysis.get("formats") or ()) + legacy


# --- one clock policy -----------------------------------------------------------------------


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


# --- consoles: colour, progress, data on stdout ---------------------------------------------


@contextmanager
def progress_bar(console: Console, enabled: bool) -> Iterator[Any]:
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


def stdout_console() -> Console:
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


# --- the analysis options, from the one table in options.py -------------------------------


def apply_decorators(function: Callable[..., Any], decorators: Sequence[Any]) -> Callable[..., Any]:
    """``function`` under ``decorators``, the first listed outermost (as if written above it)."""
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def _click_type(option: AnalysisOption) -> Any:
    """The click type that checks an option's kind, choices and range."""
    if option.kind == "choice":
        return click.Choice(option.choices)
    if option.kind == "path":
        return click.Path()
    if option.kind == "file":
        return click.Path(dir_okay=False)
    if option.kind == "int":
        return click.IntRange(option.minimum, option.maximum)  # type: ignore[arg-type]
    if option.kind == "float":
        return click.FloatRange(option.minimum, option.maximum)
    return None


def _click_option(option: AnalysisOption) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The option as the analysing commands spell it, with its default shown."""
    if option.kind == "flag":
        return click.option(option.flag, option.name, is_flag=True, help=option.help)
    settings: dict[str, Any] = {"multiple": option.multiple, "help": option.help}
    if option.metavar:
        settings["metavar"] = option.metavar
    kind = _click_type(option)
    if kind is not None:
        settings["type"] = kind
    if option.default is not None and not option.multiple:
        settings.update(default=option.default, show_default=True)
    if option.complete == "formats":
        settings["shell_complete"] = _complete_input_format
    return click.option(option.flag, option.name, **settings)


def _case_option(option: AnalysisOption) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The option as case commands spell it: no default, so one not given is the case's."""
    assert option.case is not None
    settings: dict[str, Any] = {"multiple": option.multiple, "help": option.case_help}
    if option.case.metavar:
        settings["metavar"] = option.case.metavar
    kind = _click_type(option)
    if kind is not None:
        settings["type"] = kind
    return click.option(option.flag, option.name, **settings)


def analysis_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The options that change what is loaded and how it is joined, shared by every analysing command."""
    return apply_decorators(function, [_click_option(o) for o in ANALYSIS_OPTIONS])


def case_analysis_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Options that change the analysis of a case (loading options belong to ``ingest``)."""
    return apply_decorators(
        function,
        [
            *(_case_option(o) for o in CASE_OPTIONS),
            click.option(
                "--no-cache",
                is_flag=True,
                help="Analyse afresh instead of reading CASE/cache (nothing is written there).",
            ),
            click.option(
                "--ignore-integrity",
                is_flag=True,
                help="Answer even when the case's files fail their hashes (with a warning).",
            ),
            engine_options,
        ],
    )


def permutations_option(
    help_text: str, *, shown: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--permutations``: shifts for statistics written to a file (0 skips them), or, ``shown``,
    for statistics that are the answer (at least ``SHOWN_PERMUTATIONS``)."""
    least = SHOWN_PERMUTATIONS if shown else PERMUTATIONS.minimum
    return click.option(
        PERMUTATIONS.flag,
        PERMUTATIONS.name,
        default=PERMUTATIONS.default,
        show_default=True,
        type=click.IntRange(least, PERMUTATIONS.maximum),  # type: ignore[arg-type]
        help=help_text,
    )


def run_options(**flags: Any) -> RunOptions:
    """``RunOptions.from_flags``, an invalid value being click's usage error naming the flag."""
    try:
        return RunOptions.from_flags(**flags)
    except FlagError as exc:
        raise click.BadParameter(exc.message, param_hint=exc.flag) from None


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


# --- where the join runs, and library errors as exit codes ------------------------------------

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
def errors_as_exit_codes(err: Console) -> Iterator[None]:
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
