"""Multi-file outputs (``run -o``, ``export``) are written as one set, and never over the evidence.

A set is complete when ``OUTPUT.files.json`` is there and every file matches it. Faults are
injected at every change to the disk of the commit (``killed_at`` from test_crash_safety): after
each, the set either checks out and is the old or the new one, byte for byte, or it does not
check out (never a mix that does); writing it again gives the new set and removes the leftovers.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from test_case_fixtures import ROOT, SAMPLE, invoke, sample_case, scratch
from test_crash_safety import Killed, killed_at

from correlate.atomic import OutputConflict, check_file_set, set_manifest_path
from correlate.case import CaseResult, open_case, verify
from correlate.pipeline import RunOptions
from correlate.reports.export import export


def _result() -> CaseResult:
    return open_case(sample_case()).analyse(RunOptions())


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


@pytest.mark.parametrize(
    ("fmt", "name"),
    [("parquet", "report.parquet"), ("csv", "incident.csv"), ("ocsf", "incident.ocsf.jsonl")],
)
def test_a_kill_at_any_step_of_writing_a_set_never_leaves_a_mix_that_checks_out(
    fmt: str, name: str
) -> None:
    result = _result()
    old_dir, new_dir = scratch(f"old-{fmt}"), scratch(f"new-{fmt}")
    export(result, fmt, old_dir / name, permutations=19)
    export(result, fmt, new_dir / name, permutations=0)
    old, new = _files(old_dir), _files(new_dir)
    assert old != new
    if fmt != "ocsf":  # the new set has no stats: the old one's must go
        assert set(old) - set(new)
    outcomes = set()
    k = 0
    while True:
        k += 1
        work = scratch(f"kill-{fmt}-{k}")
        for file, data in old.items():
            (work / file).write_bytes(data)
        with killed_at(k) as calls:
            try:
                export(result, fmt, work / name, permutations=0)
                finished = True
            except Killed:
                finished = False
        if finished:
            assert len(calls) < k
            break
        problems, _ = check_file_set(work / name)
        if not problems:
            state = _files(work)
            assert state in (old, new), (k, calls[-1])
            outcomes.add("old" if state == old else "new")
        else:
            outcomes.add("incomplete")
        again = export(result, fmt, work / name, permutations=0)
        assert check_file_set(work / name) == ([], len(again) - 1)
        assert _files(work) == new, k
        assert not [p for p in work.iterdir() if p.name.startswith(".")]
    assert outcomes == {"old", "incomplete"}, outcomes  # the manifest goes last: never "new" early
    assert k > 5


def test_a_full_disk_while_writing_leaves_the_previous_set_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    result = _result()
    work = scratch("enospc")
    export(result, "csv", work / "r.csv", permutations=19)
    before = _files(work)
    written: list[str] = []
    real = Path.write_bytes

    def full(self: Path, data: Any) -> int:
        written.append(self.name)
        if len(written) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(OSError, match="No space left"):
        export(result, "csv", work / "r.csv", permutations=0)
    monkeypatch.undo()
    assert _files(work) == before
    assert check_file_set(work / "r.csv")[0] == []
    assert not [p for p in work.iterdir() if p.name.startswith(".")]


def test_permutations_0_removes_the_stats_of_the_previous_run() -> None:
    work = scratch("stale-stats")
    out = work / "report.parquet"
    assert invoke("run", "-q", SAMPLE, "-o", str(out), "--permutations", "19").exit_code == 0
    assert (work / "report.stats.parquet").exists()
    assert invoke("run", "-q", SAMPLE, "-o", str(out), "--permutations", "0").exit_code == 0
    assert not (work / "report.stats.parquet").exists()
    record = json.loads(set_manifest_path(out).read_text())
    assert record["absent"] == ["report.stats.parquet"]
    assert set(record["files"]) == {"attributions", "findings", "candidates"}
    assert verify(out).ok and verify(set_manifest_path(out)).ok


def test_verify_names_what_is_wrong_with_a_set() -> None:
    work = scratch("set-verify")
    out = work / "r.jsonl"
    export(_result(), "jsonl", out, permutations=19)
    assert verify(out).ok and verify(out).checked_files == 5
    (work / "r.findings.jsonl").write_text("{}\n")
    (work / ".r.jsonl.abc.set.tmp").mkdir()
    problems = verify(out).problems
    assert any(p.startswith("r.findings.jsonl (findings) has SHA-256") for p in problems)
    assert any(
        p.startswith(".r.jsonl.abc.set.tmp was left by an interrupted write") for p in problems
    )
    set_manifest_path(out).unlink()
    assert "r.jsonl.files.json is missing" in verify(out).problems[0]
    export(_result(), "jsonl", out, permutations=19)
    assert verify(out).ok


def test_an_output_never_replaces_an_input(monkeypatch: pytest.MonkeyPatch) -> None:
    work = scratch("no-overwrite")
    logs = work / "logs"
    shutil.copytree(ROOT / SAMPLE, logs)
    before = _files(logs)
    monkeypatch.chdir(work)
    os.link(logs / "inventory.csv", work / "hard-link.csv")  # the same file under another name
    for target, fmt in (
        ("logs/inventory.csv", "csv"),
        ("logs/traces/traces.jsonl", "jsonl"),
        ("logs/./firewall/../README.md", "csv"),
        ("hard-link.csv", "csv"),
    ):
        result = invoke("run", "-q", str(logs), "-o", str(work / target), "--format", fmt)
        assert result.exit_code == 2, (target, result.output)
        assert "which is an input of this analysis" in result.stderr
        assert "outputs never replace the evidence" in result.stderr
    # a sibling file of the set (findings) that is an input is refused too
    (logs / "x.findings.csv").write_text("host,ip\nsbx-01,10.0.0.1\n")
    result = invoke("run", "-q", str(logs), "-o", str(logs / "x.csv"))
    assert result.exit_code == 2 and "x.findings.csv" in result.stderr
    (logs / "x.findings.csv").unlink()
    assert _files(logs) == before
    with contextlib.suppress(FileNotFoundError):
        assert not [p for p in logs.iterdir() if p.name.startswith(".")]


def test_an_output_never_replaces_a_file_of_the_case() -> None:
    case = sample_case()
    before = (case / "manifest.json").read_bytes(), (case / "calls.parquet").read_bytes()
    for target, fmt in (
        (case / "events.parquet", "parquet"),
        (case / "calls.parquet", "parquet"),
        (case / "manifest.json", "jsonl"),
        (case / "generations" / "1" / "out.csv", "csv"),
        (case / "cache" / "out.csv", "csv"),
        (ROOT / SAMPLE / "traces" / "traces.jsonl", "jsonl"),
    ):
        result = invoke("export", str(case), "--format", fmt, "-o", str(target))
        assert result.exit_code == 2, (target, result.output)
        assert "outputs never replace the evidence" in result.stderr
    assert ((case / "manifest.json").read_bytes(), (case / "calls.parquet").read_bytes()) == before
    with pytest.raises(OutputConflict):
        export(_result(), "ocsf", case / "hosts.parquet")
    report = invoke("export", str(case), "--format", "csv", "-o", str(case / "report.csv"))
    assert report.exit_code == 0  # beside the case's files is fine
    for path in case.glob("report*"):
        path.unlink()


def test_a_set_manifest_name_is_not_an_output() -> None:
    result = invoke(
        "export", str(sample_case()), "--format", "jsonl", "-o", str(scratch("m") / "x.files.json")
    )
    assert result.exit_code == 2 and "manifest of a set" in result.stderr
