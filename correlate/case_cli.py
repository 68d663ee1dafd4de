"""Commands over a case directory: ingest once, then findings, query, timeline, export, report.

Thin: each command parses its flags, calls ``correlate.case`` / ``query`` / ``timeline`` /
``reports``, and renders. ``register(cli)`` adds them to the ``correlate`` group (idempotent).
Data goes to stdout; progress and announcements to stderr, only on a terminal and never with
``--quiet``; ``--json`` prints one JSON document for scripts.
"""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import tzinfo
from pathlib import Path
from typing import Any

import click
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from rich.console import Console, RenderableType
from rich.status import Status

from .atomic import atomic_path, refuse_overwrite
from .case import (
    ANALYSIS_DEFAULT_KEYS,
    CaseResult,
    IngestReport,
    case_files,
    check_integrity,
    ingest,
    open_case,
    sha256_file,
    verify,
)
from .classify import LABELS
from .cli_common import (
    EXIT_DATA,
    analysis_options,
    apply_decorators,
    case_analysis_options,
    clock_line,
    clock_summary,
    deprecated,
    engine_joiner,
    errors_as_exit_codes,
    examples,
    file_format,
    legacy_format_option,
    legacy_input_formats,
    make_console,
    permutations_option,
    progress_bar,
    run_options,
    stdout_console,
)
from .errors import CorrelateError, OptionError
from .options import case_values
from .query import (
    CONFIDENCE_ORDER,
    GROUP_KEYS,
    AddressPattern,
    Filters,
    candidate_rows,
    conversation_range,
    display_zone,
    format_time,
    group_findings,
    parse_conversations,
    parse_labels,
    select_events,
    select_findings,
    violation_rows,
)
from .reports.export import FORMATS, export, formats_help, table_csv, table_jsonl
from .reports.html import write_html
from .reports.parquet import protected_files, write_table
from .reports.tables import events_table, findings_table, groups_table
from .reports.terminal import finding_renderable, rejects_renderable
from .reports.timeline_view import timeline_table, timeline_text
from .schema import plain_rows
from .stats import Association, Baseline
from .textsafe import inert
from .timeline import build_timeline


def register(group: click.Group) -> None:
    """Add the case commands to ``group`` (the ``correlate`` CLI); commands present are kept."""
    for command in COMMANDS:
        if command.name not in group.commands:
            group.add_command(command)


ROW_FORMATS = ("table", "csv", "jsonl", "parquet")
SCREEN_FORMATS = ("table", "text")
"""Row formats for the terminal only; the others go to stdout or to ``-o FILE``."""


def _err() -> Console:
    return make_console(stderr=True, highlight=False, soft_wrap=True)


@contextmanager
def _working(err: Console, quiet: bool, text: str) -> Iterator[None]:
    """A spinner on stderr while something slow runs: only on a terminal and never with -q."""
    if quiet or not err.is_terminal:
        yield
        return
    with Status(text, console=err):
        yield


# --- shared options -------------------------------------------------------------------------


def _checked(
    parse: Callable[[tuple[str, ...], str], tuple[Any, ...]],
) -> Callable[[click.Context, click.Parameter, tuple[str, ...]], tuple[Any, ...]]:
    """A click callback: ``parse(values, flag)``'s OptionError becomes click.BadParameter (exit 2)."""

    def callback(
        ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
    ) -> tuple[Any, ...]:
        flag = param.opts[0] if param.opts else str(param.name)
        try:
            return parse(values, flag)
        except OptionError as exc:
            message = str(exc).removeprefix(f"{flag}: ")
            raise click.BadParameter(message, ctx, param, param_hint=flag) from None

    return callback


def _addresses(*, domains: bool) -> Callable[[tuple[str, ...], str], tuple[str, ...]]:
    def parse(values: tuple[str, ...], flag: str) -> tuple[str, ...]:
        for value in values:
            AddressPattern.parse(value, flag, domains=domains)
        return values

    return parse


SINCE_HELP = (
    "ISO 8601, a time of day as the tables show it (06:40, 06:40:12: on the case's day), "
    "epoch, or -DURATION before --until."
)
UNTIL_HELP = (
    "ISO 8601, a time of day as the tables show it (06:40, 06:40:12: on the case's day), "
    "epoch, or +DURATION after --since."
)


CONFIDENCE_CHOICES = tuple(sorted(CONFIDENCE_ORDER, key=CONFIDENCE_ORDER.__getitem__, reverse=True))


def filter_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Filters shared by ``findings``, ``query``, ``export`` and ``report`` (AND across filters,
    OR within one).

    A value that could never match (an unknown label, an address that is not one) is a usage
    error naming what is valid, not an empty answer.
    """
    return apply_decorators(
        function,
        [
            click.option(
                "--dst",
                multiple=True,
                metavar="IP|CIDR|DOMAIN",
                callback=_checked(_addresses(domains=True)),
                help="Destination (subdomains too).",
            ),
            click.option(
                "--src",
                multiple=True,
                metavar="IP|CIDR",
                callback=_checked(_addresses(domains=False)),
                help="Source (or its NAT IP).",
            ),
            click.option(
                "--host",
                multiple=True,
                metavar="NAME",
                help="Sandbox of the source or of the call (glob).",
            ),
            click.option("--run", multiple=True, metavar="ID", help="Run of the call (glob)."),
            click.option("--episode", multiple=True, metavar="ID", help="Episode (glob)."),
            click.option("--tool", multiple=True, metavar="NAME", help="Tool of the call (glob)."),
            click.option(
                "--label",
                multiple=True,
                metavar="LABEL",
                callback=_checked(parse_labels),
                help=f"Conversation label: {', '.join(LABELS)}.",
            ),
            click.option("--since", metavar="TIME", help=SINCE_HELP),
            click.option("--until", metavar="TIME", help=UNTIL_HELP),
            click.option(
                "--min-confidence",
                type=click.Choice([c for c in CONFIDENCE_CHOICES if c != "none"]),
                help="Only attributions at least this sure.",
            ),
            click.option(
                "--confidence",
                multiple=True,
                type=click.Choice(CONFIDENCE_CHOICES, case_sensitive=False),
                help="Only attributions of exactly this confidence (repeatable).",
            ),
            click.option("--grep", metavar="REGEX", help="Regular expression on the command."),
            click.option(
                "--conversation",
                multiple=True,
                metavar="N",
                callback=_checked(parse_conversations),
                help="Conversation number as the findings show it (#2 or 2; repeatable).",
            ),
        ],
    )


def _output_file(help_text: str) -> list[Callable[[Callable[..., Any]], Callable[..., Any]]]:
    """``-o/--output FILE`` and its old spelling ``--out FILE`` (hidden)."""
    return [
        click.option(
            "-o",
            "--output",
            "out_path",
            metavar="FILE",
            type=click.Path(dir_okay=False),
            help=help_text,
        ),
        click.option("--out", "legacy_out", hidden=True, type=click.Path(dir_okay=False)),
    ]


def output_options(formats: Sequence[str]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--format FORMAT``, ``-o/--output FILE``, ``--json``, ``--display-tz``, ``-q``, ``-v``.

    The spellings before them stay for one release, with a note on stderr: ``--output FORMAT``
    (a row format's name given to ``--output`` is taken as one) and ``--out FILE`` (hidden).
    """

    def wrap(function: Callable[..., Any]) -> Callable[..., Any]:
        return apply_decorators(
            function,
            [
                click.option(
                    "--format",
                    "output_format",
                    type=click.Choice(list(formats)),
                    help="Row format (default: as -o's suffix says, else a table on a terminal).",
                ),
                *_output_file("Write the rows to this file (atomically) instead of stdout."),
                common_options,
            ],
        )

    return wrap


def file_options(
    formats: Sequence[str], format_help: str | None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``-o/--output FILE`` (required) and, when ``format_help``, ``--format``; ``--out`` hidden."""

    def wrap(function: Callable[..., Any]) -> Callable[..., Any]:
        options = _output_file("The file to write (required); sibling files are written beside it.")
        if format_help:
            options.append(
                click.option("--format", "fmt", type=click.Choice(list(formats)), help=format_help)
            )
        return apply_decorators(function, options)

    return wrap


def _legacy_out(values: dict[str, Any], out_path: str | None, *, quiet: bool) -> str | None:
    """``-o FILE``, or the hidden ``--out FILE`` (its old spelling, with a note on stderr)."""
    legacy_out: str | None = values.pop("legacy_out", None)
    if not legacy_out:
        return out_path
    if out_path:
        raise OptionError("give -o/--output FILE once (--out is its old spelling)")
    deprecated("--out FILE", "-o/--output FILE", quiet)
    return legacy_out


def _target(
    values: dict[str, Any], fmt: str | None, out_path: str | None, *, quiet: bool
) -> tuple[str | None, str | None]:
    """``(--format, -o FILE)`` with the old spellings folded in (and a note on stderr):
    ``--out FILE``, and ``--output FORMAT`` (one of this command's row formats given where a
    file is expected)."""
    out_path = _legacy_out(values, out_path, quiet=quiet)
    param = next(p for p in click.get_current_context().command.params if p.name == "output_format")
    if out_path in getattr(param.type, "choices", ()):
        if fmt:
            raise OptionError(
                f"--output {out_path} --format {fmt}: -o/--output names a file "
                f"(write -o ./{out_path} for a file of that name)"
            )
        deprecated(
            f"--output {out_path} for a row format",
            f"--format {out_path} (-o/--output now names a file)",
            quiet,
        )
        return out_path, None
    return fmt, out_path


def common_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """``--json``, ``--display-tz``, ``-q``, ``-v``."""
    return apply_decorators(
        function,
        [
            click.option(
                "--json", "as_json", is_flag=True, help="Print one JSON document for scripts."
            ),
            click.option(
                "--display-tz",
                metavar="ZONE",
                help="Show times in this zone (IANA name or +08:00); default UTC.",
            ),
            click.option("-q", "--quiet", is_flag=True, help="Nothing on stderr but errors."),
            click.option(
                "-v", "--verbose", is_flag=True, help="Details on stderr (timings, cache)."
            ),
        ],
    )


# --- helpers --------------------------------------------------------------------------------


def _analyse(
    case_path: str,
    given: dict[str, Any],
    err: Console,
    *,
    quiet: bool,
    verbose: bool,
) -> CaseResult:
    """Open the case and analyse it with the options given (falling back on the case's)."""
    no_cache = bool(given.pop("no_cache", False))
    ignore_integrity = bool(given.pop("ignore_integrity", False))
    engine = given.pop("engine", None) or "local"
    scheduler = given.pop("scheduler", None)
    case = open_case(case_path)
    PROTECTED[:] = case_files(case.path, case.inputs)  # -o never replaces evidence
    checked = time.perf_counter()
    problems = check_integrity(case, ignore=ignore_integrity)
    for problem in problems:  # even with -q: the answer that follows may be wrong
        err.print(
            f"warning: {inert(case_path)}: {inert(problem)} Answering anyway (--ignore-integrity).",
            markup=False,
        )
    if verbose and not quiet:
        err.print(
            f"integrity of the case's files checked in {time.perf_counter() - checked:.3f}s",
            markup=False,
        )
    kinds = case.kinds()
    if "network" not in kinds:
        raise CorrelateError("no firewall or flow log in the case; nothing to attribute")
    if "agent" not in kinds:
        raise CorrelateError("no agent trajectory in the case; nothing to attribute violations to")
    # each option as given, else the case's default, else the built-in one; the clock policy
    # follows: offsets only when --offset is given or the case's ingest recorded one
    values = case_values(given, case.analysis_defaults)
    options = run_options(**values)
    started = time.perf_counter()
    with engine_joiner(engine, scheduler) as joiner, _working(err, quiet, "analysing the case"):
        result = case.analyse(options, cache=not no_cache, joiner=joiner)
    if verbose and not quiet:
        source = "read from the case's cache" if result.cached else "computed"
        err.print(
            f"{inert(case_path)}: {len(case.inputs)} inputs; analysis {source} in "
            f"{time.perf_counter() - started:.3f}s; options: "
            + inert(json.dumps({k: v for k, v in values.items() if v not in (None, ())})),
            markup=False,
        )
    return result


def _zone(name: str | None) -> tzinfo:
    return display_zone(name)


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=True, default=str))


def _row_format(output_format: str | None, out_path: str | None, default: str = "table") -> str:
    """``--format``, else what ``-o FILE``'s suffix says (refusing a mismatch), else ``default``."""
    if out_path:
        if output_format in SCREEN_FORMATS:
            raise OptionError(
                f"--format {output_format} goes to the screen; use csv, jsonl or parquet with -o"
            )
        files = [f for f in ROW_FORMATS if f not in SCREEN_FORMATS]
        return file_format(out_path, output_format, files)
    return output_format or default


PROTECTED: list[tuple[Path, str]] = []
"""The files of the case this command answers from, and its inputs: what ``-o`` may not replace."""


def _emit(
    table: pa.Table,
    fmt: str,
    out_path: str | None,
    zone: tzinfo,
    renderable: Callable[[], RenderableType],
    metadata: dict[str, str],
    text: Callable[[], str] | None = None,
) -> None:
    """Rows to stdout or a file, as a table, text, CSV, JSON lines or Parquet."""
    terminal = sys.stdout.isatty() and out_path is None
    if out_path:
        refuse_overwrite([out_path], PROTECTED)
    if fmt in SCREEN_FORMATS:
        if out_path:
            raise OptionError(
                f"--format {fmt} goes to the screen; use csv, jsonl or parquet with -o"
            )
        if fmt == "text" and text is not None:
            click.echo(text(), nl=False)
        else:
            stdout_console().print(renderable())
        return
    if fmt == "parquet":
        if out_path:
            write_table(table, Path(out_path), metadata)
            return
        if terminal:
            raise OptionError("Parquet is binary: give -o FILE or pipe the output")
        merged = dict(table.schema.metadata or {})
        merged.update({k.encode(): v.encode() for k, v in metadata.items()})
        buffer = io.BytesIO()
        pq.write_table(table.replace_schema_metadata(merged), buffer, compression="zstd")
        sys.stdout.buffer.write(buffer.getvalue())
        sys.stdout.buffer.flush()
        return
    body = table_csv(table, zone, terminal=terminal) if fmt == "csv" else table_jsonl(table, zone)
    if out_path:
        with atomic_path(out_path) as tmp:
            tmp.write_bytes(body.encode("utf-8"))
    else:
        click.echo(body, nl=False)


def _metadata(result: CaseResult, table: str, filters: Filters) -> dict[str, str]:
    return {
        "correlate.table": table,
        "correlate.provenance": json.dumps(result.provenance(), sort_keys=True, ensure_ascii=False),
        "correlate.filters": json.dumps(filters.describe(), sort_keys=True, ensure_ascii=False),
    }


def _case_span(case: str) -> Callable[[], tuple[int, int] | None]:
    """The case's first and last time, read only when a bare time of day needs its date."""
    return lambda: open_case(case).time_span()


def _filters(values: dict[str, Any], zone: tzinfo, case: str) -> Filters:
    return Filters.build(
        dst=values.pop("dst"),
        src=values.pop("src"),
        host=values.pop("host"),
        run=values.pop("run"),
        episode=values.pop("episode"),
        tool=values.pop("tool"),
        label=values.pop("label"),
        since=values.pop("since"),
        until=values.pop("until"),
        min_confidence=values.pop("min_confidence"),
        confidence=values.pop("confidence"),
        grep=values.pop("grep"),
        conversation=values.pop("conversation"),
        zone=zone,
        span=_case_span(case),
    )


def _known_conversations(filters: Filters, result: CaseResult) -> None:
    """``--conversation N`` that the analysis does not have is a usage error naming the range."""
    if filters.conversations:
        problem = filters.unknown_conversations(
            result.findings.column("conversation_id").to_pylist()
        )
        if problem is not None:
            raise problem


@dataclass
class NarrowedResult(CaseResult):
    """A case's answer cut to the conversations that match filters, for ``export`` and ``report``.

    The findings are the matching conversations; the attributions, violations and candidates are
    their events' (a matching conversation keeps every one of its events). The statistics stay
    those of the whole case (``whole.statistics``: the association with chance needs every onset),
    and the provenance says so, with the filters and what they kept.
    """

    whole: CaseResult | None = None
    filters: dict[str, Any] = field(default_factory=dict)

    def statistics(self, permutations: int = 999) -> tuple[list[Association], list[Baseline]]:
        assert self.whole is not None
        return self.whole.statistics(permutations)

    def provenance(self) -> dict[str, Any]:
        data = super().provenance()
        assert self.whole is not None
        whole = self.whole
        data["filters"] = self.filters
        data["narrowed"] = {
            "filters": self.filters,
            "conversations": self.findings.num_rows,
            "of_conversations": whole.findings.num_rows,
            "violations": self.violations.num_rows,
            "of_violations": whole.violations.num_rows,
            "candidates": self.candidates.num_rows,
            "of_candidates": whole.candidates.num_rows,
            "kept": "the conversations that match every filter, each with all its events "
            "(a time range keeps the conversations that overlap it) and their candidates",
            "stats": "not narrowed: the association with chance and the in-flight baseline are "
            "computed over the whole case (every violation onset), whatever the filters",
        }
        return data


def narrow(result: CaseResult, filters: Filters) -> CaseResult:
    """``result`` cut to the conversations ``filters`` select (``NarrowedResult``); ``result``
    itself when no filter is given, so an unfiltered export is what it always was."""
    if not filters.active:
        return result
    findings = select_findings(result, filters)
    kept = pa.array(findings.column("conversation_id").to_pylist(), pa.int64())
    attributions = result.attributions.filter(
        pc.is_in(result.attributions.column("conversation_id"), value_set=kept)
    )
    events = pa.array(attributions.column("event_id").to_pylist(), pa.int64())
    values = {f.name: getattr(result, f.name) for f in fields(CaseResult)}
    values.update(
        findings=findings,
        attributions=attributions,
        violations=result.violations.filter(
            pc.is_in(result.violations.column("event_id"), value_set=events)
        ),
        candidates=result.candidates.filter(
            pc.is_in(result.candidates.column("event_id"), value_set=events)
        ),
    )
    return NarrowedResult(**values, whole=result, filters=filters.describe())


def _narrowed_note(result: CaseResult, err: Console, quiet: bool) -> None:
    """On stderr: what the filters kept of the case (nothing when there are none)."""
    if quiet or not isinstance(result, NarrowedResult) or result.whole is None:
        return
    whole = result.whole
    err.print(
        f"narrowed to {result.findings.num_rows} of {whole.findings.num_rows} conversations "
        f"({result.violations.num_rows} of {whole.violations.num_rows} violation events); "
        "statistics over the whole case",
        markup=False,
    )
    if result.findings.num_rows == 0:
        err.print("no conversation matches the filters", markup=False)


def _plain(
    rows: list[dict[str, Any]], zone: tzinfo, timestamps: Sequence[str]
) -> list[dict[str, Any]]:
    for row in rows:
        for key in timestamps:
            if key in row and row[key] is not None:
                row[key] = format_time(row[key], zone)
    return rows


# --- commands -------------------------------------------------------------------------------


@click.command(
    "ingest",
    epilog=examples(
        "# the case's default clock: the estimated offsets applied",
        "correlate ingest case/ sample_logs/rome_incident --offset auto",
        "# ROLL/ROCK logs in naive trainer-local time",
        "correlate ingest rock/ sample_logs/rock_shared_hosts --tz Asia/Shanghai --offset auto",
    ),
)
@click.argument("case", type=click.Path(file_okay=False))
@click.argument("paths", nargs=-1, type=click.Path())
@analysis_options
@legacy_format_option
@click.option(
    "--no-prepare",
    is_flag=True,
    help="Do not analyse after loading (the first query then analyses and caches).",
)
@common_options
@click.pass_context
def ingest_command(
    ctx: click.Context,
    case: str,
    paths: tuple[str, ...],
    inventory: tuple[str, ...],
    no_prepare: bool,
    as_json: bool,
    display_tz: str | None,
    quiet: bool,
    verbose: bool,
    **analysis: Any,
) -> None:
    """Load PATHS into the case directory CASE once (normalised Parquet plus a manifest).

    Run it again to add files: inputs the case already holds (same SHA-256) are not read twice.
    Analysis options given here (--offset, --before, ...) become the case's defaults.
    """
    err = _err()
    if not paths and not inventory:
        raise click.UsageError("give PATHS to ingest (or --inventory FILE)")
    legacy_input_formats(analysis, quiet)
    options = run_options(**analysis)
    given = {
        key: analysis[key]
        for key in ANALYSIS_DEFAULT_KEYS
        if key in analysis
        and ctx.get_parameter_source(key) is click.core.ParameterSource.COMMANDLINE
        and analysis[key] not in (None, ())
    }
    with errors_as_exit_codes(err):
        _zone(display_tz)
        started = time.perf_counter()
        with progress_bar(err, not quiet) as progress:
            report = ingest(
                case,
                paths,
                options,
                inventories=inventory,
                analysis_defaults={
                    k: list(v) if isinstance(v, tuple) else v for k, v in given.items()
                },
                progress=progress,
            )
        loaded_s = time.perf_counter() - started
        if not quiet:
            for name in report.leftovers_removed:
                err.print(f"removed {inert(name)} (left by an interrupted ingest)", markup=False)
            if report.digest:
                err.print(
                    f"manifest SHA-256 {report.digest}: record it to check the case later",
                    markup=False,
                )
            _announce(report, err)
        if report.rejects:
            err.print(
                f"{len(report.rejects)} row(s) rejected (kept in CASE/rejects.jsonl):", markup=False
            )
            err.print(rejects_renderable(report.rejects))
        prepared = None
        if not no_prepare and (report.added or report.created):
            prepared = _prepare(case, err, quiet)
        if as_json:
            summary = report.summary()
            summary["prepared_s"] = prepared
            _print_json(summary)
            return
        out = stdout_console()
        counts = report.counts
        verb = "created" if report.created else ("updated" if report.added else "unchanged")
        out.print(
            f"{inert(case)}: {verb}; {len(report.added)} input(s) added, "
            f"{len(report.already_present)} already present; {counts.get('network_events', 0)} "
            f"network events, {counts.get('tool_calls', 0)} tool calls, "
            f"{counts.get('identity_rows', 0)} identity rows, {counts.get('rejected', 0)} rejected",
            markup=False,
            highlight=False,
        )
        if verbose and not quiet:
            err.print(f"loaded in {loaded_s:.2f}s", markup=False)


def _announce(report: IngestReport, err: Console) -> None:
    for f in report.added:
        if f.format:
            how = "forced" if f.forced else f"detected, score {f.score:.2f}"
            err.print(f"{inert(f.path)}: {f.format} ({how})", markup=False, highlight=False)
        else:
            err.print(f"{inert(f.path)}: skipped, {inert(f.skipped_reason)}", markup=False)
    for given, known in report.already_present:
        same = "" if given == known else f" (as {inert(known)})"
        err.print(f"{inert(given)}: already in the case{same}", markup=False, highlight=False)
    for warning in report.warnings:
        err.print(f"warning: {inert(warning)}", markup=False)


def _prepare(case: str, err: Console, quiet: bool) -> float | None:
    """Analyse once with the case's defaults, and its statistics for --by, to fill the cache."""
    opened = open_case(case)
    if not {"network", "agent"} <= opened.kinds():
        return None
    started = time.perf_counter()
    with _working(err, quiet, "preparing the analysis for quick questions"):
        _analyse(case, {}, err, quiet=True, verbose=False).statistics(999)
    return round(time.perf_counter() - started, 3)


@click.command(
    "verify",
    epilog=examples(
        "correlate verify case/",
        "# for scripts: exit 1 and a JSON list of problems on any mismatch",
        "correlate verify case/ --json",
    ),
)
@click.argument("case", type=click.Path())  # a case directory, or an output file or its .files.json
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document for scripts.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing when the case checks out.")
def verify_command(case: str, as_json: bool, quiet: bool) -> None:
    """Re-check a case (its sealed manifest, stored files, inputs, cache and leftovers) or a set
    of output files (a report or export, or its .files.json); exit 1 on any problem."""
    err = _err()
    with errors_as_exit_codes(err):
        result = verify(case)
    if as_json:
        _print_json(result.summary())
    else:
        for problem in result.problems:
            click.echo(inert(problem))
        for note in result.notes:
            click.echo("note: " + inert(note), err=True)
        if result.ok and not quiet and result.kind == "files":
            click.echo(f"{inert(case)}: OK, {result.checked_files} files match their set manifest")
        elif result.ok and not quiet:
            missing = (
                f"; {len(result.missing_inputs)} input(s) not present, not checked"
                if result.missing_inputs
                else ""
            )
            click.echo(
                f"{inert(case)}: OK, {result.checked_files} case files and "
                f"{result.checked_inputs} inputs match the manifest{missing}; "
                f"manifest SHA-256 {result.digest}"
            )
    if not result.ok:
        sys.exit(EXIT_DATA)


@click.command(
    "findings",
    epilog=examples(
        "correlate findings case/ --min-confidence medium",
        "# which tools are over-represented (says which clock the statistics used)",
        "correlate findings case/ --by tool --offset auto",
        "correlate findings case/ --label mining -o mining.csv",
    ),
)
@click.argument("case", type=click.Path(file_okay=False))
@filter_options
@click.option(
    "--by",
    type=click.Choice(GROUP_KEYS),
    help="One row per tool, run, episode, host, label or confidence, with association with chance.",
)
@permutations_option("Circular shifts per episode for --by's statistics.", shown=True)
@case_analysis_options
@output_options(ROW_FORMATS)
def findings_command(
    case: str,
    by: str | None,
    permutations: int,
    output_format: str | None,
    out_path: str | None,
    as_json: bool,
    display_tz: str | None,
    quiet: bool,
    verbose: bool,
    **values: Any,
) -> None:
    """One row per violation conversation of CASE, with its attributed call and confidence.

    --by tool (run, episode, ...) groups them and adds the association with chance, on the
    clocks every command uses (as logged unless --offset or the case's default says otherwise);
    the first line says which.
    """
    err = _err()
    with errors_as_exit_codes(err):
        output_format, out_path = _target(values, output_format, out_path, quiet=quiet)
        zone = _zone(display_tz)
        filters = _filters(values, zone, case)
        fmt = _row_format(output_format, out_path)
        result = _analyse(case, values, err, quiet=quiet, verbose=verbose)
        _known_conversations(filters, result)
        findings = select_findings(result, filters)
        if by:
            with _working(err, quiet, f"association with chance ({permutations} shifts)"):
                associations, _ = result.statistics(permutations)
            groups = group_findings(findings, by, associations)
            if as_json:
                _print_json(
                    {
                        "case": case,
                        "by": by,
                        "clock": clock_summary(result),
                        "filters": filters.describe(),
                        "groups": _plain(plain_rows(groups), zone, ("first_ts", "last_ts")),
                    }
                )
                return
            if fmt in SCREEN_FORMATS and not out_path:
                stdout_console().print(clock_line(result), markup=False)
            elif not quiet:
                err.print(clock_line(result), markup=False)
            _emit(
                groups,
                fmt,
                out_path,
                zone,
                lambda: groups_table(groups),
                _metadata(result, f"findings_by_{by}", filters),
            )
            return
        if as_json:
            rows = plain_rows(findings)
            _print_json(
                {
                    "case": case,
                    "filters": filters.describe(),
                    "conversations": len(rows),
                    "events": sum(int(r["event_count"]) for r in rows),
                    "by_confidence": {
                        c: sum(1 for r in rows if r["confidence"] == c) for c in CONFIDENCE_ORDER
                    },
                    "findings": _plain(rows, zone, ("first_ts", "last_ts")),
                }
            )
            return
        _emit(
            findings,
            fmt,
            out_path,
            zone,
            lambda: findings_table(findings, zone),
            _metadata(result, "findings", filters),
        )
        if not quiet and fmt == "table" and findings.num_rows == 0 and filters.active:
            err.print("no conversation matches the filters", markup=False)


@click.command(
    "query",
    epilog=examples(
        "correlate query case/ --dst 203.0.113.7",
        "# a time of day as the tables show it, on the case's day",
        "correlate query case/ --host 'sbx-1*' --since 06:30 --until 06:45",
        "correlate query case/ --candidates --format jsonl -o pairs.jsonl",
    ),
)
@click.argument("case", type=click.Path(file_okay=False))
@filter_options
@click.option(
    "--candidates",
    is_flag=True,
    help="One row per (violation event, candidate call) pair instead of per event.",
)
@case_analysis_options
@output_options(ROW_FORMATS)
def query_command(
    case: str,
    candidates: bool,
    output_format: str | None,
    out_path: str | None,
    as_json: bool,
    display_tz: str | None,
    quiet: bool,
    verbose: bool,
    **values: Any,
) -> None:
    """Violation events of CASE that match the filters, each with its attributed call.

    One row per violation event: when, from where to where, its verdict and its conversation's
    labels, the call it is attributed to (directly or inherited from its conversation), the lag,
    the confidence, the command and how many candidate calls its window held.
    """
    err = _err()
    with errors_as_exit_codes(err):
        output_format, out_path = _target(values, output_format, out_path, quiet=quiet)
        zone = _zone(display_tz)
        filters = _filters(values, zone, case)
        fmt = _row_format(output_format, out_path)
        result = _analyse(case, values, err, quiet=quiet, verbose=verbose)
        _known_conversations(filters, result)
        rows = select_events(result, filters, candidates=candidates)
        if as_json:
            plain = plain_rows(rows)
            _print_json(
                {
                    "case": case,
                    "filters": filters.describe(),
                    "rows": len(plain),
                    "conversations": sorted({r["conversation_id"] for r in plain}),
                    "calls": sorted({r["call_id"] for r in plain if r["call_id"]}),
                    "events": _plain(plain, zone, ("ts", "call_ts_start", "call_ts_end")),
                }
            )
            return
        _emit(
            rows,
            fmt,
            out_path,
            zone,
            lambda: events_table(rows, zone),
            _metadata(result, "query_candidates" if candidates else "query", filters),
        )
        if not quiet and fmt == "table" and rows.num_rows == 0 and filters.active:
            err.print("no violation event matches the filters", markup=False)


@click.command(
    "show",
    epilog=examples(
        "# the miner: its call, command, reasons and candidate calls",
        "correlate show case/ 2",
        "correlate show case/ 1 --top 5 --json",
    ),
)
@click.argument("case", type=click.Path(file_okay=False))
@click.argument("number", metavar="N")
@click.option(
    "--top",
    default=3,
    show_default=True,
    type=click.IntRange(0, 100_000),
    help="Candidate calls listed (for the first event; with --json, for each event).",
)
@case_analysis_options
@common_options
def show_command(
    case: str,
    number: str,
    top: int,
    as_json: bool,
    display_tz: str | None,
    quiet: bool,
    verbose: bool,
    **values: Any,
) -> None:
    """One violation conversation of CASE in detail: conversation N as findings numbers it.

    The block `correlate run -d` prints for it: its time span, source and destination, the call
    it is attributed to (or "ambiguous between ..."), the command, the reasons, and the top
    candidate calls of its first event; --json gives the finding, its events with their
    attributions, and the candidates of each event. Times are UTC in the block (as run -d
    prints them) and in --display-tz's zone in --json.
    """
    err = _err()
    with errors_as_exit_codes(err):
        (wanted,) = parse_conversations([number], "N")
        zone = _zone(display_tz)
        result = _analyse(case, values, err, quiet=quiet, verbose=verbose)
        findings = [r for r in plain_rows(result.findings) if r["conversation_id"] == wanted]
        if not findings:
            raise OptionError(
                f"N: no conversation {wanted} in this analysis; "
                + conversation_range(result.findings.column("conversation_id").to_pylist())
            )
        finding = findings[0]
        anchor = next(
            (
                r["event_id"]
                for r in plain_rows(result.attributions)
                if r["conversation_id"] == wanted and r["how"] == "direct"
            ),
            None,
        )
        if as_json:
            _print_json(_shown_conversation(case, result, finding, anchor, top, zone))
            return
        out = stdout_console()
        out.print(clock_line(result), markup=False)
        first = [r for r in plain_rows(result.candidates) if r["event_id"] == anchor]
        out.print(finding_renderable(finding, first, top))


def _shown_conversation(
    case: str,
    result: CaseResult,
    finding: dict[str, Any],
    anchor: int | None,
    top: int,
    zone: tzinfo,
) -> dict[str, Any]:
    """``show --json``: the finding row, its events (QUERY columns: each with the call it is
    attributed to, directly or inherited) and each event's top candidates, times ISO 8601."""
    number = finding["conversation_id"]
    events = [r for r in violation_rows(result) if r["conversation_id"] == number]
    ids = {r["event_id"] for r in events}
    pairs = [r for r in candidate_rows(result) if r["event_id"] in ids]
    ranked: dict[int, list[dict[str, Any]]] = {}
    for pair in sorted(pairs, key=lambda r: (r["event_id"], r["rank"] is None, r["rank"] or 0)):
        ranked.setdefault(pair["event_id"], []).append(pair)
    shown = [pair for each in ranked.values() for pair in each[:top]]
    return {
        "case": case,
        "conversation": number,
        "clock": clock_summary(result),
        "first_event": anchor,
        "finding": _plain([dict(finding)], zone, ("first_ts", "last_ts"))[0],
        "events": len(events),
        "attributions": _plain(events, zone, ("ts", "call_ts_start", "call_ts_end")),
        "candidates_top": top,
        "candidates_total": len(pairs),
        "candidates": _plain(shown, zone, ("ts", "call_ts_start", "call_ts_end")),
    }


ANCHORS = ("first", "last")
"""--since/--until keywords of ``timeline``: the first or last violation on the timeline."""


def _anchor(value: str | None, rows: list[dict[str, Any]]) -> str | None:
    """``first``/``last`` as the time of the first/last violation among ``rows`` (ISO, exact)."""
    if value not in ANCHORS:
        return value
    times = [r["ts"] for r in rows if r["kind"] == "violation"]
    if not times:
        raise CorrelateError(f"--since/--until {value}: no violation on this timeline")
    return format_time(min(times) if value == "first" else max(times))


@click.command(
    "timeline",
    epilog=examples(
        "# the minute before the miner's first alert",
        "correlate timeline case/ --episode ep-0423-sbx-07-2 --until first --since -1m",
        "correlate timeline case/ --host sbx-12 -o sbx-12.csv",
        "# the miner's download (allowed traffic) beside its wget call",
        "correlate timeline case/ --episode ep-0423-sbx-07-2 --all-traffic --until first",
    ),
)
@click.argument("case", type=click.Path(file_okay=False))
@click.option("--episode", multiple=True, metavar="ID", help="Episode(s) to show (glob).")
@click.option("--host", multiple=True, metavar="NAME", help="Sandbox/host(s) to show (glob).")
@click.option(
    "--since",
    metavar="TIME",
    help=SINCE_HELP.rstrip(".") + ", or first/last (violation on the timeline).",
)
@click.option(
    "--until",
    metavar="TIME",
    help=UNTIL_HELP.rstrip(".") + ", or first/last (violation on the timeline).",
)
@click.option(
    "--all-traffic",
    is_flag=True,
    help="Also the sandbox's other traffic in the time range (allowed flows, from every event "
    "the case stores), marked with its verdict.",
)
@case_analysis_options
@output_options(("table", "text", "csv", "jsonl", "parquet"))
def timeline_command(
    case: str,
    episode: tuple[str, ...],
    host: tuple[str, ...],
    since: str | None,
    until: str | None,
    all_traffic: bool,
    output_format: str | None,
    out_path: str | None,
    as_json: bool,
    display_tz: str | None,
    quiet: bool,
    verbose: bool,
    **values: Any,
) -> None:
    """Calls and violations of one episode or host interleaved in time, with attribution links.

    Each violation says which call it is attributed to and its lag ("<- attributed to call X
    (step 10), -3.2s"); each call how many violations are attributed to it. --all-traffic adds
    the sandbox's other traffic in the same span (allowed flows: never attributed, shown dim).
    A table on a terminal, plain lines when piped.
    """
    err = _err()
    with errors_as_exit_codes(err):
        output_format, out_path = _target(values, output_format, out_path, quiet=quiet)
        if not episode and not host:
            raise OptionError("timeline needs --episode ID or --host NAME")
        zone = _zone(display_tz)
        default = "table" if sys.stdout.isatty() else "text"
        fmt = _row_format(output_format, out_path, default)
        result = _analyse(case, values, err, quiet=quiet, verbose=verbose)
        if {since, until} & set(ANCHORS):
            everything = plain_rows(build_timeline(result, episode=episode, host=host))
            since, until = (_anchor(v, everything) for v in (since, until))
        filters = Filters.build(since=since, until=until, zone=zone, span=_case_span(case))
        stored = open_case(case) if all_traffic else None
        rows = build_timeline(
            result,
            episode=episode,
            host=host,
            since_ns=filters.since_ns,
            until_ns=filters.until_ns,
            traffic=stored.event_batches() if stored is not None else None,
            enrichment=stored.table("enrichment") if stored is not None else None,
        )
        if as_json:
            plain = plain_rows(rows)
            document = {
                "case": case,
                "episode": list(episode),
                "host": list(host),
                "filters": filters.describe(),
                "calls": sum(1 for r in plain if r["kind"] == "call"),
                "violations": sum(1 for r in plain if r["kind"] == "violation"),
            }
            if all_traffic:
                document["traffic"] = sum(1 for r in plain if r["kind"] == "traffic")
            document["entries"] = _plain(plain, zone, ("ts", "ts_end"))
            _print_json(document)
            return
        _emit(
            rows,
            fmt,
            out_path,
            zone,
            lambda: timeline_table(rows, zone),
            _metadata(result, "timeline_all_traffic" if all_traffic else "timeline", filters),
            text=lambda: timeline_text(rows, zone),
        )


@click.command(
    "export",
    epilog=examples(
        "correlate export case/ -o incident.csv",
        "# OCSF Network Activity events (a .jsonl file could hold jsonl or timesketch too)",
        "correlate export case/ --format ocsf -o incident.ocsf.jsonl",
        "# only the miner's conversation (its events and candidates; stats stay whole)",
        "correlate export case/ --label mining -o mining.parquet --permutations 199",
    ),
)
@click.argument("case", type=click.Path(file_okay=False))
@filter_options
@file_options(
    FORMATS,
    f"{formats_help()} (default: as -o's suffix says).",
)
@permutations_option("Circular shifts per episode for the statistics table (0 skips it).")
@case_analysis_options
@common_options
def export_command(
    case: str,
    fmt: str | None,
    out_path: str | None,
    permutations: int,
    as_json: bool,
    display_tz: str | None,
    quiet: bool,
    verbose: bool,
    **values: Any,
) -> None:
    """Export CASE's answer for other tools: Parquet, CSV, JSON lines, OCSF or Timesketch.

    The format is --format's, else the one -o's suffix says (.parquet, .csv, .jsonl); a suffix
    that cannot hold --format's format is refused. Filters (as in query and findings) keep the
    conversations that match, with all their events and candidates; the statistics stay the
    whole case's, and each file's provenance records the filters.
    """
    err = _err()
    with errors_as_exit_codes(err):
        fmt, out_path = _required_file(values, fmt, out_path, FORMATS, quiet=quiet)
        zone = _zone(display_tz)
        filters = _filters(values, zone, case)
        result = _analyse(case, values, err, quiet=quiet, verbose=verbose)
        _known_conversations(filters, result)
        narrowed = narrow(result, filters)
        _narrowed_note(narrowed, err, quiet)
        with _working(err, quiet, f"writing {fmt}"):
            written = export(narrowed, fmt, out_path, permutations=permutations, zone=zone)
        _report_written(written, as_json, quiet, err, fmt, narrowed)


def _required_file(
    values: dict[str, Any],
    fmt: str | None,
    out_path: str | None,
    formats: Sequence[str],
    *,
    quiet: bool,
) -> tuple[str, str]:
    """``export``/``report``: -o FILE is required (``--out`` accepted); its format is checked
    against its suffix. ``report`` passes ``fmt="html"``: any suffix but another format's."""
    out_path = _legacy_out(values, out_path, quiet=quiet)
    if not out_path:
        raise click.UsageError("Missing option '-o' / '--output' (the file to write).")
    if formats == ("html",):
        file_format(out_path, None, formats, default="html", any_suffix=True)
        return "html", out_path
    return file_format(out_path, fmt, formats), out_path


def _report_written(
    written: dict[str, Path],
    as_json: bool,
    quiet: bool,
    err: Console,
    fmt: str,
    result: CaseResult | None = None,
) -> None:
    if as_json:
        document: dict[str, Any] = {
            "format": fmt,
            "files": {
                name: {
                    "path": str(p),
                    "bytes": p.stat().st_size,
                    "sha256": sha256_file(p),
                }
                for name, p in written.items()
            },
        }
        if isinstance(result, NarrowedResult):
            document["narrowed"] = result.provenance()["narrowed"]
        _print_json(document)
    elif not quiet:
        err.print("wrote: " + ", ".join(inert(str(p)) for p in written.values()), markup=False)


@click.command(
    "report",
    epilog=examples(
        "correlate report case/ -o report.html",
        "correlate report case/ -o report.html --title 'ROME incident' --display-tz Asia/Shanghai",
        "correlate report case/ --host sbx-07 --since 06:15 -o sbx-07.html",
    ),
)
@click.argument("case", type=click.Path(file_okay=False))
@filter_options
@file_options(("html",), None)
@click.option(
    "--title",
    help="The report's title (default: correlate report, naming the filters when there are any).",
)
@permutations_option("Circular shifts per episode for the statistics section (0 skips it).")
@case_analysis_options
@common_options
def report_command(
    case: str,
    out_path: str | None,
    title: str | None,
    permutations: int,
    as_json: bool,
    display_tz: str | None,
    quiet: bool,
    verbose: bool,
    **values: Any,
) -> None:
    """Write a self-contained HTML report of CASE: summary, findings, timelines, statistics.

    It opens offline (no external files, no script) and escapes all log text; a strict
    Content-Security-Policy forbids scripts, network access and foreign styles. Filters (as in
    query and findings) keep the conversations that match; the statistics stay the whole
    case's, and the provenance records the filters.
    """
    err = _err()
    with errors_as_exit_codes(err):
        _, out_path = _required_file(values, "html", out_path, ("html",), quiet=quiet)
        zone = _zone(display_tz)
        filters = _filters(values, zone, case)
        result = _analyse(case, values, err, quiet=quiet, verbose=verbose)
        _known_conversations(filters, result)
        narrowed = narrow(result, filters)
        _narrowed_note(narrowed, err, quiet)
        if title is None:
            title = "correlate report"
            if filters.active:
                title += " (narrowed: " + _filter_words(filters) + ")"
        with _working(err, quiet, "writing the report"):
            refuse_overwrite([out_path], protected_files(narrowed))
            path = write_html(narrowed, out_path, title=title, permutations=permutations, zone=zone)
        _report_written({"html": path}, as_json, quiet, err, "html", narrowed)


def _filter_words(filters: Filters) -> str:
    """The filters in a few words: ``label mining; host sbx-07``."""
    return "; ".join(
        f"{name} {', '.join(map(str, value)) if isinstance(value, list) else value}"
        for name, value in filters.describe().items()
    )


COMMANDS: tuple[click.Command, ...] = (
    ingest_command,
    verify_command,
    findings_command,
    query_command,
    show_command,
    timeline_command,
    export_command,
    report_command,
)


__all__ = ["COMMANDS", "register"]
