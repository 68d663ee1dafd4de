"""The ROME-stack sample with shared Docker-host addresses (issue #12 item 4), end to end.

``sample_logs/rock_shared_hosts`` holds ROLL rollout dumps, ROCK ``LLMService.log`` folders, ROLL
env-manager logs with naive Asia/Shanghai times and Alibaba Cloud Firewall logs. Four sandboxes
share each Docker host's address. correlate must give the answers its README promises.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

import correlate
from correlate.cli import cli
from correlate.loaders import LoadOptions
from correlate.pipeline import load_inputs
from correlate.schema import plain_rows
from correlate.timeparse import parse_iso, resolve_zone

SAMPLE = Path(__file__).resolve().parent.parent / "sample_logs" / "rock_shared_hosts"
EXPECTED = json.loads((SAMPLE / "expected.json").read_text())
COMMAND = shlex.split(EXPECTED["command"])  # correlate run sample_logs/rock_shared_hosts --tz ...
OPTIONS = correlate.RunOptions(
    load=LoadOptions(zones={"*": resolve_zone(EXPECTED["naive_time_zone"])})
)
CONFIDENT = ("medium", "high")
ATTRIBUTED = [v for v in EXPECTED["violations"] if v["call_id"]]
HOST_PROCESS = [v for v in EXPECTED["violations"] if not v["call_id"]]
SANDBOXES = EXPECTED["sandboxes"]


def key(row: dict) -> tuple[str, str, int]:
    return (row["src_ip"], row["dst_ip"], row["dst_port"])


def label(v: dict) -> str:
    return f"{v['label']}-{v['dst_ip']}:{v['dst_port']}"


def format_of(path: str) -> str | None:
    """The loader each file of the sample is meant for (None: not a log, skipped)."""
    relative = Path(path).resolve().relative_to(SAMPLE).as_posix()
    if relative.startswith("firewall/"):
        return "alibaba_cfw"
    if relative.startswith("llmservice/"):
        return "rock_llmservice"
    if relative.startswith("roll/logs/"):
        return "roll_rock_textlog"
    if relative.startswith("roll/rollout_dump/"):
        return "roll_dump"
    return None


@pytest.fixture(scope="module")
def result() -> correlate.Result:
    return correlate.run([str(SAMPLE)], OPTIONS)


@pytest.fixture(scope="module")
def findings(result: correlate.Result) -> dict[tuple[str, str, int], dict]:
    return {key(f): f for f in plain_rows(result.findings)}


# --- loading --------------------------------------------------------------------------------------


def test_every_file_is_read_as_its_format_with_no_rejects(result: correlate.Result) -> None:
    loaded = result.loaded
    assert loaded.rejects == []
    seen = Counter()
    for f in loaded.inputs:
        assert f.format == format_of(f.path), f.path
        seen[f.format] += 1
        if f.format is None:
            continue
        assert f.stats is not None and f.stats.rejected == 0 and f.stats.balanced, f.path
        if f.format == "alibaba_cfw":
            assert f.stats.loaded == EXPECTED["counts"]["firewall_records"]
        elif f.format == "rock_llmservice":
            sandbox = Path(f.path).parent.name
            assert f.stats.loaded == SANDBOXES[sandbox]["tool_calls"], f.path
        elif f.format == "roll_dump":
            assert f.stats.loaded == EXPECTED["counts"]["tool_calls"]
    assert seen == {
        "alibaba_cfw": 1,
        "rock_llmservice": EXPECTED["counts"]["sandboxes"],
        "roll_rock_textlog": 2,
        "roll_dump": 1,
        None: 3,  # README.md, expected.json, generate.py
    }


def test_calls_carry_the_sandbox_ids_that_the_identity_lines_name(
    result: correlate.Result,
) -> None:
    # Every call is in both the ROLL dump and its sandbox's LLMService.log: analyse keeps one row
    # per call, the LLMService.log copy (its own times), and says where the other copy was.
    calls = Counter((c["source_format"], c["host"]) for c in plain_rows(result.loaded.calls))
    for sandbox, facts in SANDBOXES.items():
        assert calls[("rock_llmservice", sandbox)] == facts["tool_calls"]
        assert calls[("roll_dump", sandbox)] == 0
    assert sum(calls.values()) == EXPECTED["counts"]["tool_calls"]
    assert result.loaded.merged_calls == EXPECTED["counts"]["tool_calls"]
    assert result.provenance()["counts"]["tool_call_copies_merged"] == result.loaded.merged_calls
    notes = result.loaded.calls.column("ts_note").to_pylist()
    assert all(
        "rollout_dump_data.step_57.jsonl:" in n and "(roll_dump): merged" in n for n in notes
    )
    loaded = load_inputs([str(SAMPLE)], result.options)
    raw = Counter(c["source_format"] for c in plain_rows(loaded.calls))
    assert raw == {"rock_llmservice": sum(calls.values()), "roll_dump": sum(calls.values())}
    for source in ("roll_rock_textlog", "roll_dump"):
        held: dict[str, set[str]] = {}
        for row in plain_rows(result.loaded.hosts):
            if row["source_format"] == source:
                held.setdefault(row["ip"], set()).add(row["host"])
        assert held == {ip: set(d["sandboxes"]) for ip, d in EXPECTED["docker_hosts"].items()}


def test_naive_roll_times_are_read_in_shanghai_and_say_so(result: correlate.Result) -> None:
    note = EXPECTED["naive_time_note"]
    for f in result.loaded.inputs:
        if f.format in ("roll_rock_textlog", "roll_dump"):
            assert any(note in text for text in f.stats.notes), f.path
    # The first identity line of each sandbox is its [SANDBOX_START] Success! line, logged in
    # whole seconds of Shanghai wall time: read in the right zone it is the true start, floored.
    first: dict[str, int] = {}
    for row in plain_rows(result.loaded.hosts):
        if row["source_format"] == "roll_rock_textlog":
            first[row["host"]] = min(first.get(row["host"], row["valid_from"]), row["valid_from"])
    for sandbox, facts in SANDBOXES.items():
        true_ns = parse_iso(facts["sandbox_start_true"])[0]
        assert first[sandbox] == true_ns - true_ns % 1_000_000_000, sandbox


# --- answers --------------------------------------------------------------------------------------


def test_every_planted_conversation_is_found_once_and_nothing_else(findings: dict) -> None:
    assert set(findings) == {key(v) for v in EXPECTED["violations"]}


@pytest.mark.parametrize("planted", ATTRIBUTED, ids=label)
def test_each_conversation_is_attributed_to_the_call_that_caused_it(
    planted: dict, findings: dict
) -> None:
    f = findings[key(planted)]
    assert f["event_count"] == planted["event_count"]
    assert f["first_ts"] == parse_iso(planted["first_ts_firewall"])[0]
    assert (f["call_id"], f["host"], f["step"]) == (
        planted["call_id"],
        planted["host"],
        planted["step"],
    ), f["reasons"]
    # The same call is in the sandbox's LLMService.log and in the ROLL dump: either name is right.
    assert f["episode_id"] in (planted["episode_id"], planted["trajectory_id"])
    assert f["confidence"] in CONFIDENT, f["reasons"]


@pytest.mark.parametrize("planted", HOST_PROCESS, ids=label)
def test_the_docker_host_s_own_process_is_not_pinned_on_a_sandbox(
    planted: dict, findings: dict
) -> None:
    f = findings[key(planted)]
    assert f["event_count"] == planted["event_count"]
    assert f["confidence"] not in CONFIDENT, (f["call_id"], f["host"], f["reasons"])


def test_later_miner_sessions_inherit_the_call_that_started_the_miner(
    result: correlate.Result,
) -> None:
    miner = EXPECTED["planted_calls"]["mining"]
    rows = [r for r in plain_rows(result.attributions) if r["dst_port"] == 14444]
    assert len(rows) == next(v["event_count"] for v in ATTRIBUTED if v["label"] == "mining")
    assert {r["call_id"] for r in rows} == {miner["call_id"]}
    assert [r["how"] for r in rows] == ["direct"] + ["inherited"] * (len(rows) - 1)
    assert {r["confidence"] for r in rows} <= set(CONFIDENT)


def test_no_benign_neighbour_on_the_same_docker_host_is_blamed(result: correlate.Result) -> None:
    calm = set(EXPECTED["calm_call_ids"])
    blamed = {r["call_id"] for r in plain_rows(result.attributions) if r["confidence"] in CONFIDENT}
    assert not calm & blamed


# --- the README command ---------------------------------------------------------------------------


def test_the_readme_command_gives_the_same_answers(tmp_path: Path) -> None:
    assert EXPECTED["command"] in (SAMPLE / "README.md").read_text()
    assert COMMAND[:3] == ["correlate", "run", "sample_logs/rock_shared_hosts"]
    rejects = tmp_path / "rejects.jsonl"
    args = [*COMMAND[1:2], str(SAMPLE), *COMMAND[3:], "--json", "--rejects", str(rejects)]
    run = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert run.exit_code == 0, run.stderr
    assert rejects.read_text() == ""
    document = json.loads(run.stdout)
    provenance = document["provenance"]
    assert provenance["counts"]["rejected"] == 0
    noted = {
        i["format"]
        for i in provenance["inputs"]
        if any(EXPECTED["naive_time_note"] in text for text in i.get("notes", {}))
    }
    assert noted == {"roll_rock_textlog", "roll_dump"}
    found = {key(f): f for f in document["findings"]}
    assert set(found) == {key(v) for v in EXPECTED["violations"]}
    for planted in EXPECTED["violations"]:
        f = found[key(planted)]
        if planted["call_id"]:
            assert (f["call_id"], f["confidence"] in CONFIDENT) == (planted["call_id"], True)
        else:
            assert f["confidence"] not in CONFIDENT


def test_the_generator_reproduces_the_committed_files(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(SAMPLE / "generate.py"), str(tmp_path)], check=True)
    produced = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert produced
    for path in produced:
        committed = SAMPLE / path.relative_to(tmp_path)
        assert path.read_bytes() == committed.read_bytes(), committed


def test_without_the_zone_the_answers_stay_right() -> None:
    """Forgetting --tz shifts the ROLL identity lines 8 h; the calls' own times keep the leases."""
    result = correlate.run([str(SAMPLE)], correlate.RunOptions())
    calls = {row["call_id"] for row in plain_rows(result.findings) if row["confidence"] == "high"}
    assert calls == {v["call_id"] for v in ATTRIBUTED}
