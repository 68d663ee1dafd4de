"""-o and --rejects never replace evidence; verify checks an output set (issue 15)."""

from __future__ import annotations

from pathlib import Path

from test_case_fixtures import copy_case, invoke, sample_case, scratch

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_logs" / "rome_incident"


def test_query_findings_and_report_outputs_cannot_replace_case_files() -> None:
    case = copy_case(sample_case(), "guarded")
    events = case / "events.parquet"
    before = events.resolve().read_bytes()
    for args in (
        ("query", str(case), "--format", "parquet", "-o", str(events)),
        ("findings", str(case), "--format", "csv", "-o", str(case / "manifest.json")),
        ("report", str(case), "-o", str(case / "calls.parquet"), "--permutations", "0"),
    ):
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert "error:" in result.stderr
    assert events.resolve().read_bytes() == before


def test_rejects_cannot_replace_an_input(tmp_path: Path) -> None:
    fw = tmp_path / "fw.jsonl"
    fw.write_bytes((SAMPLE / "firewall" / "cfw_internet_log.jsonl").read_bytes())
    traces = SAMPLE / "traces" / "traces.jsonl"
    before = fw.read_bytes()
    result = invoke("run", "-q", str(fw), str(traces), "--rejects", str(fw))
    assert result.exit_code == 2 and "--rejects" in result.stderr
    assert fw.read_bytes() == before


def test_verify_checks_an_output_set_and_ingest_prints_the_manifest_digest() -> None:
    out = scratch("set") / "report.parquet"
    assert invoke("run", "-q", str(SAMPLE), "-o", str(out), "--permutations", "0").exit_code == 0
    checked = invoke("verify", str(out))
    assert checked.exit_code == 0 and "files match their set manifest" in checked.stdout
    case = scratch("digest") / "case"
    ingested = invoke("ingest", str(case), str(SAMPLE), "--no-prepare")
    assert ingested.exit_code == 0 and "manifest SHA-256 " in ingested.stderr
    verified = invoke("verify", str(case))
    assert verified.exit_code == 0 and "manifest SHA-256 " in verified.stdout
