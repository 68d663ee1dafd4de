"""One vocabulary across commands (#13): ``-o/--output FILE`` is always a file whose format is
``--format``'s or its suffix's; ``--format`` is always the row/file format (``--input-format``
forces how inputs are read); the old spellings still work for one release with a note on
stderr. One clock policy: times as logged unless ``--offset`` is given or the case's ingest
recorded one. Every ``--help`` ends with examples that parse and run; shell completion works;
the development extra pins the linters the README's development command runs."""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import tomllib
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import click
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result
from test_case_fixtures import ROOT, SAMPLE, TUNNEL_IP, correlate_cli, sample_case, scratch

CLI = correlate_cli()


def run_cli(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> Result:
    with contextlib.chdir(cwd):
        return CliRunner().invoke(CLI, list(args), catch_exceptions=False, env=env)


# --- -o/--output is a file, --format its format --------------------------------------------


def test_run_o_report_csv_writes_csv_not_parquet_named_csv(tmp_path: Path) -> None:
    out = tmp_path / "report.csv"
    result = run_cli("run", "-q", SAMPLE, "-o", str(out), "--permutations", "0")
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("event_id,")  # text, not Parquet's PAR1
    assert (tmp_path / "report.findings.csv").is_file()
    assert not list(tmp_path.glob("*.parquet"))


def test_run_o_without_suffix_is_the_parquet_report_and_format_may_say_otherwise(
    tmp_path: Path,
) -> None:
    bare = tmp_path / "report"
    assert run_cli("run", "-q", SAMPLE, "-o", str(bare), "--permutations", "0").exit_code == 0
    assert pq.read_schema(bare).metadata[b"correlate.table"] == b"attributions"
    ocsf = tmp_path / "events.json"
    result = run_cli("run", "-q", SAMPLE, "-o", str(ocsf), "--format", "ocsf")
    assert result.exit_code == 0, result.output
    assert json.loads(ocsf.read_text().splitlines()[0])["class_uid"] == 4001


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-o", "r.csv", "--format", "parquet"), "a .csv file holds csv, not parquet"),
        (("-o", "r.parquet", "--format", "jsonl"), "a .parquet file holds parquet, not jsonl"),
        (("--format", "csv"), "--format csv is the format of -o FILE"),
        (("-o", "r.txt"), "say which format with --format"),
        (("-o", "r.html"), "does not write html"),
        (("--format", "nosuch"), "an input format goes in --input-format"),
        (("--input-format", "nosuch"), "unknown format 'nosuch'"),
    ],
)
def test_run_refuses_a_file_format_it_cannot_honour(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    result = run_cli("run", "-q", str(ROOT / SAMPLE), *args, cwd=tmp_path)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert not [p for p in tmp_path.iterdir()]  # refused before anything was written


def test_input_format_forces_and_the_old_format_spelling_still_does_with_a_note() -> None:
    forced = "cfw_*=alibaba_cfw"
    new = run_cli("run", SAMPLE, "--input-format", forced)
    old = run_cli("run", SAMPLE, "--format", forced)
    assert new.exit_code == old.exit_code == 0
    assert "cfw_vpc_log.csv: alibaba_cfw (forced)" in new.stderr
    assert new.stdout == old.stdout
    assert "note" not in new.stderr
    assert "note: --format [GLOB=]NAME for an input format is deprecated" in old.stderr
    assert "use --input-format" in old.stderr
    quiet = run_cli("run", "-q", SAMPLE, "--format", forced)
    assert quiet.stderr == ""
    for command in ("offset", "stats"):
        extra = ("--permutations", "19") if command == "stats" else ()
        legacy = run_cli(command, SAMPLE, "--format", forced, *extra)
        assert legacy.exit_code == 0 and "use --input-format" in legacy.stderr


def test_case_commands_take_format_and_o_file_and_the_old_spellings_with_a_note() -> None:
    case = str(sample_case())
    work = scratch("vocabulary")
    new = run_cli("query", case, "--dst", TUNNEL_IP, "--format", "csv")
    old = run_cli("query", case, "--dst", TUNNEL_IP, "--output", "csv")
    assert new.exit_code == old.exit_code == 0
    assert new.stdout == old.stdout and new.stdout.startswith("event_id,")
    assert new.stderr == ""
    assert "note: --output csv for a row format is deprecated" in old.stderr
    assert "use --format csv" in old.stderr
    for flag in ("-o", "--output", "--out"):
        path = work / f"q{flag.strip('-')}.jsonl"
        result = run_cli("query", case, "--dst", TUNNEL_IP, flag, str(path))
        assert result.exit_code == 0 and result.stdout == ""
        assert len(path.read_text().splitlines()) == 3
        assert ("deprecated" in result.stderr) == (flag == "--out")
    timeline = run_cli("timeline", case, "--host", "sbx-03", "--format", "jsonl")
    assert timeline.exit_code == 0 and json.loads(timeline.stdout.splitlines()[0])["kind"]
    grouped = work / "by-label.csv"
    assert run_cli("findings", case, "--by", "label", "-o", str(grouped)).exit_code == 0
    assert "reverse_tunnel" in grouped.read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("query", "-o", "q.jsonl", "--format", "csv"), "a .jsonl file holds jsonl"),
        (("query", "-o", "q.txt"), "say which format with --format (csv, jsonl, parquet)"),
        (("query", "--format", "table", "-o", "q.csv"), "--format table goes to the screen"),
        (("query", "--output", "csv", "--format", "csv"), "-o/--output names a file"),
        (("export", "-o", "x.parquet", "--format", "csv"), "a .parquet file holds parquet"),
        (("export", "-o", "x.txt"), "say which format with --format"),
        (("export", "--format", "csv"), "Missing option '-o' / '--output'"),
        (("report", "-o", "r.csv"), "writes html, not csv"),
    ],
)
def test_case_commands_refuse_a_file_that_cannot_hold_the_format(
    args: tuple[str, ...], message: str
) -> None:
    work = scratch("refused-format")
    command, *rest = args
    extra = ("--permutations", "0") if command in ("export", "report") else ()
    result = run_cli(command, str(sample_case()), *rest, *extra, cwd=work)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert not list(work.iterdir())


def test_export_takes_its_format_from_the_suffix_and_accepts_out() -> None:
    work = scratch("export-suffix")
    case = str(sample_case())
    result = run_cli("export", case, "-o", str(work / "x.csv"), "--permutations", "0")
    assert result.exit_code == 0, result.output
    assert (work / "x.findings.csv").is_file()
    old = run_cli("export", case, "--format", "jsonl", "--out", str(work / "y.jsonl"))
    assert old.exit_code == 0 and "--out FILE is deprecated" in old.stderr
    assert (work / "y.findings.jsonl").is_file()
    report = run_cli("report", case, "--out", str(work / "r.html"), "--permutations", "0")
    assert report.exit_code == 0 and (work / "r.html").read_text().startswith("<!DOCTYPE html>")


# --- one clock policy ------------------------------------------------------------------------


def _in_windows(stdout: str) -> str:
    """The run-level "in windows" cell of ``stats`` (``12/12``)."""
    return re.search(r"^\s*run\s+\S+\s+\d+\s+\d+\s+(\d+)", stdout, flags=re.M).group(1)  # type: ignore[union-attr]


def _by_tool(stdout: str) -> str:
    return re.search(r"run_shell_command[\s\d]*?\s(\d+)/\d+", stdout).group(1)  # type: ignore[union-attr]


def test_every_command_is_on_the_clock_offset_says_and_stats_and_by_say_which() -> None:
    case = str(sample_case())  # ingested without --offset: no default
    run_raw = run_cli("run", SAMPLE)
    run_aligned = run_cli("run", SAMPLE, "--offset", "auto")
    assert "not applied: --offset auto applies it" in run_raw.stdout
    assert "clock offset applied: alibaba_cfw" in run_aligned.stdout
    stats = {
        name: run_cli("stats", target, "--permutations", "19", "-q", *extra)
        for name, target, extra in (
            ("raw", SAMPLE, ()),
            ("aligned", SAMPLE, ("--offset", "auto")),
            ("case raw", case, ()),
        )
    }
    by = {
        name: run_cli("findings", case, "--by", "tool", "--permutations", "19", *extra)
        for name, extra in (("raw", ()), ("aligned", ("--offset", "auto")))
    }
    for name in ("raw", "case raw"):
        assert "clocks: as logged, not aligned (estimated: alibaba_cfw -4.05s" in stats[name].stdout
    assert (
        "clocks: aligned on the trajectories' clock: alibaba_cfw offset -4.050s removed (estimated)"
        in (stats["aligned"].stdout)
    )
    assert by["raw"].stdout.startswith("clocks: as logged, not aligned")
    assert by["aligned"].stdout.startswith("clocks: aligned on the trajectories' clock")
    # the same clock gives the same count in stats and findings --by
    assert _in_windows(stats["raw"].stdout) == _in_windows(stats["case raw"].stdout)
    assert _in_windows(stats["raw"].stdout) == _by_tool(by["raw"].stdout)
    assert _in_windows(stats["aligned"].stdout) == _by_tool(by["aligned"].stdout) == "12"
    assert _in_windows(stats["raw"].stdout) != "12"
    document = json.loads(
        run_cli("findings", case, "--by", "tool", "--permutations", "19", "--json").stdout
    )
    assert document["clock"]["aligned"] is False and document["clock"]["applied_s"] == {}


def test_a_cases_default_offset_holds_for_every_command_and_none_overrides_it() -> None:
    case = scratch("clock-default") / "case"
    ingest = run_cli("ingest", str(case), SAMPLE, "--offset", "auto", "--no-prepare", "-q")
    assert ingest.exit_code == 0, ingest.output
    aligned = {
        "run": run_cli("run", str(case), "-q").stdout,
        "stats": run_cli("stats", str(case), "--permutations", "19", "-q").stdout,
        "by": run_cli("findings", str(case), "--by", "tool", "--permutations", "19").stdout,
    }
    assert "clock offset applied: alibaba_cfw -4.050s" in aligned["run"]
    assert "clock offset applied: alibaba_cfw -4.050s" in aligned["stats"]
    assert aligned["by"].startswith("clocks: aligned on the trajectories' clock")
    lags = json.loads(run_cli("query", str(case), "--dst", TUNNEL_IP, "--json").stdout)
    assert abs(lags["events"][0]["lag_s"]) < 0.2
    raw_run = run_cli("run", str(case), "-q", "--offset", "none").stdout
    raw_by = run_cli(
        "findings", str(case), "--by", "tool", "--permutations", "19", "--offset", "none"
    )
    raw_query = json.loads(
        run_cli("query", str(case), "--dst", TUNNEL_IP, "--json", "--offset", "none").stdout
    )
    assert "not applied: --offset auto applies it" in raw_run
    assert raw_by.stdout.startswith("clocks: as logged, not aligned")
    assert raw_query["events"][0]["lag_s"] == pytest.approx(-4.1)
    bad = run_cli("run", SAMPLE, "--offset", "none", "--offset", "auto")
    assert bad.exit_code == 2 and "none cannot be combined" in bad.stderr


# --- examples at the end of every --help -----------------------------------------------------


def _commands() -> list[tuple[str, click.Command]]:
    return [("", CLI), *sorted(CLI.commands.items())]


def _examples(name: str) -> list[str]:
    """The ``correlate ...`` lines of the Examples block that ends ``correlate NAME --help``."""
    result = run_cli(*([name] if name else []), "--help")
    assert result.exit_code == 0
    text = result.stdout.rstrip("\n")
    _head, sep, block = text.rpartition("\n  Examples:\n")
    assert sep, f"correlate {name} --help has no Examples block"
    lines = [line.strip() for line in block.splitlines()]
    assert all(line.startswith(("correlate ", "# ")) for line in lines), lines
    return [line for line in lines if line.startswith("correlate ")]


@pytest.mark.parametrize("name", [n for n, _ in _commands()], ids=lambda n: n or "correlate")
def test_every_help_ends_with_two_or_three_examples_that_parse(name: str) -> None:
    commands = _examples(name)
    assert 2 <= len(commands) <= 3, commands
    for line in commands:
        words = shlex.split(line)[1:]
        group = CLI.make_context("correlate", list(words), resilient_parsing=False)
        sub, command, rest = CLI.resolve_command(group, group._protected_args + group.args)
        assert command is not None and sub is not None
        with command.make_context(sub, rest, parent=group):  # types, choices and callbacks
            pass
        if name:  # a command's examples show that command (sniff/formats: and how to use it)
            assert sub == name or name in ("sniff", "formats"), line


@pytest.fixture(scope="module")
def workspace() -> Iterator[Path]:
    """A directory with ``sample_logs`` as in the repository, where the examples run."""
    here = scratch("examples")
    (here / "sample_logs").symlink_to(ROOT / "sample_logs")
    yield here


def test_every_example_runs_on_the_samples(workspace: Path) -> None:
    """Ingest examples first (they make ``case/``), then every other, as written."""
    lines = [line for name, _ in _commands() for line in _examples(name)]
    ordered = sorted(dict.fromkeys(lines), key=lambda line: " ingest " not in line)
    for line in ordered:
        result = run_cli(*shlex.split(line)[1:], cwd=workspace)
        assert result.exit_code == 0, (line, result.output[-2000:])
    assert (workspace / "report.html").is_file() and (workspace / "incident.ocsf.jsonl").is_file()


# --- shell completion and the development extra ----------------------------------------------


def _complete(words: str) -> list[str]:
    env = {
        "_CORRELATE_COMPLETE": "bash_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
    }
    with contextlib.chdir(ROOT):
        result = CliRunner().invoke(CLI, [], env=env, prog_name="correlate")
    return [line.split(",", 1)[1] for line in result.stdout.splitlines()]


def test_shell_completion_as_the_readme_documents() -> None:
    with contextlib.chdir(ROOT):
        script = CliRunner().invoke(
            CLI, [], env={"_CORRELATE_COMPLETE": "bash_source"}, prog_name="correlate"
        )
    assert "_correlate_completion" in script.stdout and "complete " in script.stdout
    assert _complete("correlate fin") == ["findings"]
    assert _complete("correlate export case/ --format ") == [
        "parquet",
        "csv",
        "jsonl",
        "ocsf",
        "timesketch",
    ]
    assert _complete("correlate run x --input-format alibaba_v") == ["alibaba_vpc_flow"]
    assert _complete("correlate run x --input-format '*.log=zeek_c'") == ["*.log=zeek_conn"]


def test_the_dev_extra_pins_the_linters_the_development_command_runs() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    dev = pyproject["project"]["optional-dependencies"]["dev"]
    pins = dict(re.fullmatch(r"([\w-]+)==([\w.]+)", spec).groups() for spec in dev)  # type: ignore[union-attr]
    assert {"ruff", "mypy"} <= set(pins)
    for name, version in pins.items():
        with contextlib.suppress(metadata.PackageNotFoundError):  # installed: the same version
            assert metadata.version(name) == version, name
