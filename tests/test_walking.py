"""Directory walking lists what it cannot read and never blocks (issue 15, item 21)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from correlate.cli import cli
from correlate.sources import expand_paths

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_logs" / "rome_incident"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    top = tmp_path / "logs"
    shutil.copytree(SAMPLE, top)
    os.mkfifo(top / "pipe.jsonl")  # reading it would block forever
    (top / "loop1").symlink_to(top / "loop2")
    (top / "loop2").symlink_to(top / "loop1")
    (top / "broken.jsonl").symlink_to(tmp_path / "nowhere")
    (top / "again").symlink_to(top)  # a directory loop if followed
    (top / "sub").mkdir()
    (top / "sub" / "secret.jsonl").write_text("{}\n")
    return top


def test_entries_that_cannot_be_read_are_listed_with_their_reason(tree: Path) -> None:
    problems = {Path(s.display).name: s.problem for s in expand_paths([tree]) if s.problem}
    assert problems == {
        "pipe.jsonl": "a FIFO (named pipe), not read",
        "loop1": "a symbolic link loop",
        "loop2": "a symbolic link loop",
        "broken.jsonl": "a broken symbolic link",
        "again": "a symbolic link to a directory, not followed (name it to read it)",
    }


def test_a_run_over_them_answers_and_says_what_it_skipped(tree: Path) -> None:
    result = CliRunner().invoke(cli, ["run", "-v", str(tree)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "13 violation conversations" in result.stdout
    for name, reason in (
        ("pipe.jsonl", "a FIFO (named pipe), not read"),
        ("loop1", "a symbolic link loop"),
        ("broken.jsonl", "a broken symbolic link"),
    ):
        assert f"{tree / name}: skipped, {reason}" in result.stderr
    case = tree.parent / "case"
    ingested = CliRunner().invoke(cli, ["ingest", str(case), str(tree), "-q"])
    assert ingested.exit_code == 0, ingested.output


def test_unreadable_files_and_directories_are_listed_not_dropped(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root reads everything, so permission is denied by hand here."""
    real_access, real_scandir = os.access, os.scandir
    secret = tree / "sub" / "secret.jsonl"
    locked = tree / "firewall"

    def access(path, mode, *args, **kwargs):
        return False if Path(path) == secret else real_access(path, mode, *args, **kwargs)

    def scandir(path=".", *args, **kwargs):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(os, "scandir", scandir)
    problems = {s.display: s.problem for s in expand_paths([tree]) if s.problem}
    assert problems[str(secret)] == "permission denied"
    assert problems[str(locked)] == "directory not read: Permission denied"


def test_a_truncated_gzip_found_by_walking_is_skipped_not_fatal(tree: Path) -> None:
    import gzip

    data = gzip.compress((SAMPLE / "firewall" / "cfw_internet_log.jsonl").read_bytes())
    (tree / "firewall" / "extra.jsonl.gz").write_bytes(data[:20_000])
    result = CliRunner().invoke(cli, ["run", "-v", str(tree)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "extra.jsonl.gz: skipped, cannot read" in result.stderr
    named = CliRunner().invoke(cli, ["run", str(tree / "firewall" / "extra.jsonl.gz"), str(tree)])
    assert named.exit_code == 1 and "Truncated" in named.stderr
