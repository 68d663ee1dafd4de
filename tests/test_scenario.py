"""The sample incident end to end: correlate must give the answers its README promises."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import correlate
from correlate.schema import plain_rows
from correlate.timeparse import parse_iso

SCENARIO = Path(__file__).resolve().parent.parent / "sample_logs" / "rome_incident"
EXPECTED = json.loads((SCENARIO / "expected.json").read_text())


@pytest.fixture(scope="module")
def result() -> correlate.Result:
    return correlate.run([str(SCENARIO)])


@pytest.fixture(scope="module")
def findings(result: correlate.Result) -> dict[tuple[str, str, int], dict[str, object]]:
    return {(f["src_ip"], f["dst_ip"], f["dst_port"]): f for f in plain_rows(result.findings)}


def test_every_planted_conversation_is_found_once_and_nothing_else(findings: dict) -> None:
    expected = {(v["src_ip"], v["dst_ip"], v["dst_port"]) for v in EXPECTED["violations"]}
    assert set(findings) == expected


@pytest.mark.parametrize(
    "planted", EXPECTED["violations"], ids=lambda v: f"{v['label']}-{v['dst_ip']}:{v['dst_port']}"
)
def test_each_conversation_is_attributed_to_the_call_that_caused_it(
    planted: dict, findings: dict
) -> None:
    f = findings[(planted["src_ip"], planted["dst_ip"], planted["dst_port"])]
    assert f["call_id"] == planted["call_id"]
    assert f["host"] == planted["host"]
    assert f["episode_id"] == planted["episode_id"]
    assert f["step"] == planted["step"]
    assert f["event_count"] == planted["event_count"]
    assert f["first_ts"] == parse_iso(planted["first_ts_firewall"])[0]
    if planted["call_id"] is None:
        assert f["confidence"] == "none"
        assert "not in the identity map" in f["reasons"]
    else:
        assert f["confidence"] == "high"
        assert f["src_host"] == planted["host"]


def test_late_miner_flows_inherit_the_call_that_started_the_miner(result: correlate.Result) -> None:
    miner = EXPECTED["planted_calls"]["mining"]["call_id"]
    rows = [r for r in plain_rows(result.attributions) if r["dst_port"] == 3333]
    assert len(rows) == 40
    assert {r["call_id"] for r in rows} == {miner}
    assert [r["how"] for r in rows] == ["direct"] + ["inherited"] * 39
    # The last flow is almost 40 minutes after the call, far outside any window.
    assert max(r["lag_s"] for r in rows) > 2000


def test_the_calm_call_at_the_same_second_as_the_tunnel_is_never_blamed(
    result: correlate.Result,
) -> None:
    calm = EXPECTED["calm_call_id"]
    assert calm not in {r["call_id"] for r in plain_rows(result.attributions)}
    assert calm not in {r["call_id"] for r in plain_rows(result.candidates)}
    tunnel = next(
        f
        for f in plain_rows(result.findings)
        if f["dst_port"] == 22 and f["dst_ip"] == "203.0.113.7"
    )
    assert tunnel["other_hosts_calls"] > 0  # the calm call was in the window but in another sandbox


def test_the_non_sandbox_host_gets_no_candidates(result: correlate.Result) -> None:
    src = EXPECTED["non_sandbox_src_ip"]
    rows = [r for r in plain_rows(result.attributions) if r["src_ip"] == src]
    assert len(rows) == 2
    assert all(r["how"] == "none" and r["call_id"] is None for r in rows)


def test_every_row_of_every_input_is_accounted_for(result: correlate.Result) -> None:
    counts = EXPECTED["counts"]
    by_format = {f.path.rsplit("/", 1)[-1]: f.stats for f in result.loaded.inputs if f.stats}
    assert by_format["cfw_internet_log.jsonl"].loaded == counts["internet_log_records"]
    assert by_format["cfw_vpc_log.csv"].loaded == counts["vpc_log_records"]
    assert by_format["traces.jsonl"].loaded == counts["tool_calls"]
    assert by_format["traces.jsonl"].read == counts["spans"]
    assert by_format["inventory.csv"].loaded == counts["inventory_rows"]
    for stats in by_format.values():
        assert stats.rejected == 0
        assert stats.balanced


def test_the_generator_reproduces_the_committed_files(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(SCENARIO / "generate.py"), str(tmp_path)], check=True)
    for produced in sorted(p for p in tmp_path.rglob("*") if p.is_file()):
        committed = SCENARIO / produced.relative_to(tmp_path)
        assert produced.read_bytes() == committed.read_bytes(), committed
