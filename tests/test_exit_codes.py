"""Ordinary conditions of the machine end in one sentence with the right exit code (issue 15)."""

from __future__ import annotations

import errno
import sys
from pathlib import Path

import pytest

import correlate.cli as cli_module
from correlate.cli import main

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = str(ROOT / "sample_logs" / "rome_incident")


def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str):
    monkeypatch.setattr(sys, "argv", ["correlate", *args])
    try:
        main()
    except SystemExit as exc:
        return exc.code, capsys.readouterr()
    return 0, capsys.readouterr()


@pytest.mark.parametrize(
    ("raised", "said"),
    [
        (OSError(errno.ENOSPC, "No space left on device", "/out/report.parquet"), "No space left"),
        (PermissionError(errno.EACCES, "Permission denied", "/ro/report.parquet"), "Permission"),
        (OSError(errno.EFBIG, "File too large", "/out/x"), "File too large"),
        (MemoryError(), "out of memory"),
    ],
)
def test_os_conditions_are_one_sentence_not_an_internal_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], raised, said
) -> None:
    def fail(*args, **kwargs):
        raise raised

    monkeypatch.setattr(cli_module, "analyse", fail)
    code, out = run_main(monkeypatch, capsys, "run", "-q", SAMPLE)
    assert code == 1
    assert out.err.startswith("error: ") and said in out.err
    assert "internal error" not in out.err and "Traceback" not in out.err


def test_an_interrupt_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_module, "analyse", interrupt)
    code, out = run_main(monkeypatch, capsys, "run", "-q", SAMPLE)
    assert code == 130 and "interrupted" in out.err


def test_usage_errors_help_and_version_keep_their_codes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_main(monkeypatch, capsys, "run", "--bogus", SAMPLE)[0] == 2
    assert run_main(monkeypatch, capsys, "--help")[0] == 0
    code, out = run_main(monkeypatch, capsys, "--version")
    assert code == 0 and "correlate" in out.out
    code, out = run_main(monkeypatch, capsys, "run", "/no/such/path")
    assert code == 1 and "no such file or directory" in out.err


def test_a_real_bug_is_still_reported_as_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def bug(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli_module, "analyse", bug)
    monkeypatch.delenv("CORRELATE_DEBUG", raising=False)
    code, out = run_main(monkeypatch, capsys, "run", "-q", SAMPLE)
    assert code == 1 and "internal error: ZeroDivisionError" in out.err
