"""Case directories: ingest once, determinism, incremental ingest, atomic commits, verify, cache."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from test_case_fixtures import (
    ROOT,
    SAMPLE,
    copy_case,
    correlate_cli,
    invoke,
    sample_case,
    scratch,
)

import correlate
import correlate.case as case_module
import correlate.cli
from correlate.case import CaseError, ingest, open_case, verify
from correlate.cli import cli
from correlate.pipeline import RunOptions

CASE_FILES = (
    "events.parquet",
    "calls.parquet",
    "hosts.parquet",
    "enrichment.parquet",
    "rejects.jsonl",
)


def test_ingest_writes_tables_and_a_manifest_without_clock_time_or_absolute_paths() -> None:
    case = sample_case()
    manifest = json.loads((case / "manifest.json").read_text())
    assert manifest["format"] == "correlate-case"
    assert manifest["created_by"]["version"] == correlate.__version__
    assert manifest["counts"]["network_events"] == 844
    assert manifest["counts"]["tool_calls"] == 2199
    inputs = {Path(i["path"]).name: i for i in manifest["inputs"]}
    traces = inputs["traces.jsonl"]
    assert traces["format"] == "otlp_json"
    assert traces["read"] == traces["loaded"] + traces["rejected"] + sum(traces["skipped"].values())
    assert len(traces["sha256"]) == 64 and traces["size"] > 0
    assert inputs["README.md"]["skipped_reason"] == "not a known log format"
    for name in CASE_FILES:
        recorded = manifest["files"][name]
        assert (case / name).is_file()
        if name.endswith(".parquet"):
            assert pq.ParquetFile(case / name).metadata.num_rows == recorded["rows"]
    text = (case / "manifest.json").read_text()
    assert str(ROOT) not in text and "/tmp" not in text
    assert not re.search(r"20\d\d-\d\d-\d\dT", text), "no wall-clock time in the manifest"


def test_analysing_a_case_gives_the_answer_of_correlate_run() -> None:
    with contextlib.chdir(ROOT):
        expected = correlate.run([SAMPLE])
    got = open_case(sample_case()).analyse(RunOptions(), cache=False)
    for table in ("findings", "attributions", "candidates", "violations"):
        assert getattr(got, table).equals(getattr(expected, table)), table
    assert got.provenance()["inputs"] == expected.provenance()["inputs"]
    assert got.provenance()["case"]["ingests"][0]["number"] == 1


def _digests(case: Path) -> dict[str, bytes]:
    return {name: (case / name).read_bytes() for name in (*CASE_FILES, "manifest.json")}


def test_the_same_inputs_give_the_same_bytes_whatever_the_order_or_the_number_of_ingests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(ROOT)
    parts = [f"{SAMPLE}/traces", f"{SAMPLE}/firewall", f"{SAMPLE}/inventory.csv"]
    one, two, split = (scratch(n) / "case" for n in ("one", "two", "split"))
    ingest(one, parts, RunOptions())
    monkeypatch.setenv("TZ", "Asia/Shanghai")  # the machine's zone must not matter
    time.tzset()
    ingest(two, list(reversed(parts)), RunOptions())
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    ingest(split, parts[:1], RunOptions())
    report = ingest(split, parts, RunOptions())
    assert [Path(f.path).name for f in report.added] == [
        "cfw_internet_log.jsonl",
        "cfw_vpc_log.csv",
        "inventory.csv",
    ]
    assert [Path(p).name for p, _ in report.already_present] == ["traces.jsonl"]
    monkeypatch.delenv("TZ")
    time.tzset()
    assert _digests(one) == _digests(two)
    a, b = _digests(one), _digests(split)
    for name in CASE_FILES:
        assert a[name] == b[name], f"{name} differs between one ingest and two"
    assert json.loads(b["manifest.json"])["ingests"][1]["already_present"] == [
        f"{SAMPLE}/traces/traces.jsonl"
    ]


def test_ingesting_the_same_files_again_changes_nothing() -> None:
    case = copy_case(sample_case(), "again")
    before = _digests(case)
    result = invoke("ingest", str(case), SAMPLE, "--json", "--no-prepare")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["added"] == [] and len(summary["already_present"]) == 7
    assert _digests(case) == before


def test_an_input_that_changed_since_it_was_ingested_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    work = scratch("changed")
    monkeypatch.chdir(work)
    shutil.copytree(ROOT / SAMPLE, "logs")
    ingest("case", ["logs"], RunOptions())
    with open("logs/inventory.csv", "a") as fh:
        fh.write("sbx-99,192.168.10.99\n")
    with pytest.raises(
        CaseError, match=r"logs/inventory.csv: already in the case with different content"
    ):
        ingest("case", ["logs"], RunOptions())


def test_verify_passes_then_names_each_problem_in_one_sentence(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    work = scratch("verify")
    monkeypatch.chdir(work)
    shutil.copytree(ROOT / SAMPLE, "logs")
    ingest("case", ["logs"], RunOptions())
    ok = invoke("verify", str(work / "case"))
    assert ok.exit_code == 0 and "OK, 5 case files and 7 inputs match" in ok.stdout
    with open("logs/firewall/cfw_vpc_log.csv", "a") as fh:
        fh.write("\n")
    Path("logs/README.md").unlink()
    events = work / "case" / "events.parquet"
    events.write_bytes(events.read_bytes()[:-10] + b"0123456789")
    rows = work / "case" / "rejects.jsonl"
    rows.write_text('{"path": "x", "line": 1, "reason": "r", "raw": ""}\n')
    result = invoke("verify", str(work / "case"))
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert any(
        line.startswith("events.parquet has SHA-256") and line.endswith(".") for line in lines
    )
    assert any(line.startswith("events.parquet cannot be read") for line in lines)
    assert "rejects.jsonl holds 1 rows, the manifest recorded 0." in lines
    assert any(
        line.startswith("input logs/firewall/cfw_vpc_log.csv has changed since it was ingested")
        for line in lines
    )
    summary = json.loads(invoke("verify", str(work / "case"), "--json").stdout)
    assert summary["ok"] is False and summary["missing_inputs"] == ["logs/README.md"]


def test_an_interrupted_ingest_leaves_the_previous_case_and_ingesting_again_adds_the_files(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(ROOT)
    case = copy_case(sample_case(), "interrupted")
    before = (case / "manifest.json").read_bytes()
    real_replace = os.replace

    def failing_replace(src: object, dst: object) -> None:
        if Path(str(dst)) == case / "manifest.json":  # the commit
            raise KeyboardInterrupt
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(case_module.os, "replace", failing_replace)
    with pytest.raises(KeyboardInterrupt):
        ingest(case, ["tests/data/case/hostile"], RunOptions())
    monkeypatch.setattr(case_module.os, "replace", real_replace)
    assert (case / "manifest.json").read_bytes() == before
    assert verify(case).ok, verify(case).problems  # nothing left over either
    assert invoke("findings", str(case)).exit_code == 0
    again = ingest(case, ["tests/data/case/hostile"], RunOptions())
    assert not again.created and again.added
    assert verify(case).ok
    assert sorted(p.name for p in (case / "generations").iterdir()) == ["2"]


def test_the_analysis_cache_is_reused_and_a_tampered_entry_is_recomputed() -> None:
    case = open_case(copy_case(sample_case(), "cache"))
    first = case.analyse(RunOptions())
    second = case.analyse(RunOptions())
    assert not first.cached and second.cached
    assert second.findings.equals(first.findings)
    assert second.provenance() == first.provenance()
    entry = second.cache_dir
    assert entry is not None
    findings = entry / "findings.parquet"
    findings.write_bytes(findings.read_bytes() + b"x")
    third = case.analyse(RunOptions())
    assert not third.cached and third.findings.equals(first.findings)


def test_analysis_options_given_to_ingest_become_the_case_defaults() -> None:
    case = scratch("defaults") / "case"
    result = invoke("ingest", str(case), SAMPLE, "--offset", "auto", "--no-prepare", "-q")
    assert result.exit_code == 0, result.output
    assert json.loads((case / "manifest.json").read_text())["analysis_defaults"] == {
        "offset": ["auto"]
    }
    aligned = json.loads(invoke("findings", str(case), "--json").stdout)["findings"]
    assert abs(aligned[0]["lag_s"]) < 0.2  # the 4 s clock offset is estimated and applied
    raw = json.loads(invoke("findings", str(case), "--json", "--offset", "alibaba_cfw=0s").stdout)
    assert raw["findings"][0]["lag_s"] == pytest.approx(-4.1)


def test_lease_grace_given_to_ingest_is_the_cases_default_as_its_help_says() -> None:
    case = scratch("lease") / "case"
    result = invoke("ingest", str(case), SAMPLE, "--lease-grace", "30m", "--no-prepare", "-q")
    assert result.exit_code == 0, result.output
    manifest = json.loads((case / "manifest.json").read_text())
    assert manifest["analysis_defaults"] == {"lease_grace": "30m"}

    def lease(*flags: str) -> str:
        out = case.parent / f"report{len(flags)}.parquet"
        assert invoke("export", str(case), "-o", str(out), "-q", *flags).exit_code == 0
        provenance = json.loads(pq.read_schema(out).metadata[b"correlate.provenance"])
        return str(provenance["parameters"]["lease_grace"])

    assert lease() == "1800s"
    assert lease("--lease-grace", "5m") == "300s"


def test_register_adds_the_commands_once() -> None:
    group = correlate_cli()
    before = dict(group.commands)
    correlate_cli()
    assert group.commands == before
    assert {"ingest", "verify", "findings", "query", "timeline", "export", "report"} <= set(
        cli.commands
    )
    for name in ("ingest", "verify", "findings", "query", "timeline", "export", "report"):
        assert group.commands[name].help, f"{name} has no help text"


def test_commands_on_something_that_is_not_a_case_say_so() -> None:
    result = invoke("query", "sample_logs")
    assert result.exit_code == 1
    assert result.stderr.strip() == ("error: sample_logs: not a case directory, no manifest.json")
    missing = invoke("findings", "no/such/case")
    assert missing.exit_code == 1 and "create it with correlate ingest" in missing.stderr


def test_ingest_is_silent_on_stderr_with_quiet_and_prints_a_summary() -> None:
    case = scratch("quiet") / "case"
    result = invoke("ingest", str(case), f"{SAMPLE}/firewall", "-q", "--no-prepare")
    assert result.exit_code == 0
    assert result.stderr == ""
    assert "created; 2 input(s) added" in result.stdout
    noisy = invoke("ingest", str(case), f"{SAMPLE}/traces", "--no-prepare")
    assert "traces.jsonl: otlp_json (detected" in noisy.stderr
    assert "warning" not in noisy.stderr
    assert "\x1b" not in noisy.stderr  # no progress bar or colour when not on a terminal


def test_commands_that_take_paths_can_take_a_case_through_load_case_or_inputs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``stats CASE`` (like run and offset) analyses the stored tables without re-parsing the logs."""
    monkeypatch.setattr(case_module, "load_inputs", None)  # a case must not be re-parsed
    result = invoke("stats", str(sample_case()), "--permutations", "19", "-q")
    assert result.exit_code == 0, result.output
    assert "Violation onsets in call windows vs chance" in result.stdout
    assert "run_shell_command" in result.stdout


def test_strict_ingest_of_a_rejected_row_writes_nothing() -> None:
    case = scratch("strict") / "case"
    result = invoke("ingest", str(case), "tests/data/cfw_malformed.jsonl", "--strict", "-q")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: tests/data/cfw_malformed.jsonl:2:")
    assert not (case / "manifest.json").exists()
    assert not any(p.suffix == ".parquet" for p in case.iterdir())
