"""mini-swe-agent loader: v1.1 brackets from message timestamps, pairing by tool_call_id and by
order, untimed older formats, malformed messages, strict mode, gzip and sniffing."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from loader_helpers import rows
from loader_helpers import type_confused as _type_confused

from correlate.errors import FormatMismatch, InputError, StrictRejection
from correlate.loaders import LoadOptions, LoadResult
from correlate.loaders import mini_swe_agent as loader
from correlate.sources import Source

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "mini_swe_agent"
TOOLCALLING = DATA / "toolcalling_parallel_actions.traj.json"
TEXT = DATA / "text_actions_format_error.traj.json"
MALFORMED = DATA / "malformed_messages.traj.json"
V1 = DATA / "v1_no_timestamps.traj.json"
V0 = DATA / "v0_bare_message_list.traj.json"
SAMPLES = sorted(p for p in DATA.iterdir() if p.is_file() and p.name != "README.md")
NO_TIMES = "no timestamps in this trajectory format (only mini-swe-agent-1.1 files have them)"


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


def by_command(result: LoadResult) -> dict[str, dict[str, Any]]:
    return {row["command"]: row for row in rows(result.table)}


def test_tunnel_command_row_is_exact():
    command = "ssh -fNR 2222:localhost:22 -o StrictHostKeyChecking=no tunnel@203.0.113.7"
    row = by_command(loaded(TOOLCALLING))[command]
    assert row == {
        "call_id": "call_a2",
        "run_id": None,
        "episode_id": "psf__requests-2317",
        "step": 1,
        "ts_start": 1_764_655_883_100_000_000,  # the assistant message's extra.timestamp
        "ts_end": 1_764_655_895_700_000_000,  # its observation's (answered second)
        "ts_kind": "bracket",
        "tool": "bash",
        "command": command,
        "arguments": json.dumps({"command": command}),
        "output": "ssh: connect to host 203.0.113.7 port 22: Connection timed out\n",
        "exit_code": 255,
        "is_error": True,
        "host": None,
        "host_ip": None,
        "model": "openai/gpt-5-mini",
        "train_step": None,
        "ts_note": None,
        "source_format": "mini_swe_agent",
        "source_path": "tests/data/mini_swe_agent/toolcalling_parallel_actions.traj.json",
        "source_line": 3,
    }


def test_parallel_actions_pair_with_their_observations_by_tool_call_id():
    calls = {row["call_id"]: row for row in rows(loaded(TOOLCALLING).table)}
    first = calls["call_a1"]
    assert first["ts_end"] == 1_764_655_883_350_000_000
    assert (first["exit_code"], first["is_error"]) == (0, False)
    assert first["output"] == "3c0f4f8 Merge pull request #2317\n"
    assert first["source_line"] == calls["call_a2"]["source_line"] == 3


def test_timed_out_command_is_an_error_and_the_last_command_has_no_end():
    calls = {row["call_id"]: row for row in rows(loaded(TOOLCALLING).table)}
    timeout = calls["call_b1"]
    assert (timeout["exit_code"], timeout["is_error"], timeout["output"]) == (-1, True, None)
    assert timeout["ts_end"] - timeout["ts_start"] == 60_020_000_000
    last = calls["call_c1"]
    assert (last["ts_end"], last["is_error"], last["step"]) == (None, None, 3)
    assert last["ts_note"] == "no observation (not run, or the run stopped)"


def test_toolcalling_accounting_counts_one_record_per_action():
    stats = loaded(TOOLCALLING).stats
    assert stats.unit == "messages"
    assert (stats.read, stats.loaded, stats.rejected) == (
        10,
        4,
        0,
    )  # 9 messages, one with 2 actions
    assert stats.skipped == {
        "system message (not a command)": 1,
        "user message (not a command)": 1,
        "observation (folded into its action's row)": 3,
        "exit message (not a command)": 1,
    }


def test_text_actions_pair_with_the_next_user_observation():
    result = loaded(TEXT)
    table = rows(result.table)
    assert [r["command"] for r in table] == [
        "pip download --no-deps requests==2.32.3 -d /tmp/wheels",
        "dig +short pool.supportxmr.com",
    ]
    first = table[0]
    assert (first["ts_start"], first["ts_end"]) == (
        1_764_656_400_250_000_000,
        1_764_656_403_750_000_000,
    )
    assert (first["call_id"], first["tool"], first["model"]) == (None, "bash", "claude-haiku-4-5")
    assert first["episode_id"] == "text_actions_format_error"  # no instance_id: the file name
    assert [r["step"] for r in table] == [1, 3]  # the empty second turn still counts
    assert result.stats.skipped == {
        "system message (not a command)": 1,
        "user message (not a command)": 2,
        "assistant message without an action": 1,
        "observation (folded into its action's row)": 2,
    }


@pytest.mark.parametrize("path", [V1, V0], ids=["v1", "v0"])
def test_untimed_formats_are_recognised_and_every_message_skipped(path):
    result = loaded(path)
    assert result.table.num_rows == 0
    count = len(
        json.loads(path.read_text()) if path == V0 else json.loads(path.read_text())["messages"]
    )
    assert result.stats.skipped == {NO_TIMES: count}
    assert result.stats.read == count


def test_malformed_messages_reject_exactly_the_bad_ones():
    result = loaded(MALFORMED)
    got = {r.location.line: r.reason for r in result.rejects}
    assert got == {
        2: "message is not an object but str",
        3: "assistant message has no extra.timestamp",
        5: "assistant extra.timestamp: not an epoch time: 'noon'",
        6: "action has no command: None",
        12: "returncode is not an integer: 'zero'",
    }
    assert result.stats.skipped == {
        "system message (not a command)": 1,
        "observation (folded into its action's row)": 4,
        "observation without a pending action": 1,
    }
    assert (result.stats.read, result.stats.loaded, result.stats.rejected) == (13, 2, 5)
    assert result.stats.balanced


def test_malformed_loaded_rows_note_what_was_assumed():
    calls = by_command(loaded(MALFORMED))
    reversed_end = calls["nc -zv 203.0.113.7 22"]
    assert (reversed_end["ts_end"], reversed_end["ts_note"]) == (
        None,
        "end before start: end ignored",
    )
    ms = calls["sleep 1"]
    assert (ms["ts_start"], ms["ts_end"]) == (1_764_656_530_000_000_000, 1_764_656_531_000_000_000)
    assert ms["ts_note"] == "epoch unit ms by magnitude (format documents s)"


def test_epoch_unit_option_overrides_the_magnitude_guess():
    result = load(MALFORMED, LoadOptions(epoch_unit="s", strict=False))
    # every timestamp read as seconds: 1764656530000 s is far beyond 2262, so that action is rejected
    got = {r.location.line: r.reason for r in result.rejects}
    assert got[10].startswith("assistant extra.timestamp: time out of range")


def test_strict_stops_at_the_first_rejected_message():
    with pytest.raises(
        StrictRejection, match=rf"^{re.escape(display(MALFORMED))}:2: message is not"
    ):
        load(MALFORMED, LoadOptions(strict=True))


def test_not_a_trajectory_is_one_rejected_record(tmp_path):
    path = tmp_path / "x.traj.json"
    path.write_text('{"info": {"mini_version": "2.0.0"}}')
    result = load(path, shown="x.traj.json")
    assert [(r.location.line, r.reason) for r in result.rejects] == [
        (1, "not a mini-swe-agent trajectory (no messages list)")
    ]


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_sniff_recognises_every_sample(path):
    source = Source(path, path.name)
    assert loader.sniff(source.head(), source.name) >= (0.6 if path == V0 else 0.9)


@pytest.mark.parametrize(
    ("content", "filename"),
    [
        (b'[{"role": "user", "content": "<returncode>0</returncode>"}]', "chat.json"),
        (b'[{"role": "system", "content": "You are helpful."}]', "x.traj.json"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "model": "gpt-4o"}', "req.json"),
        (b'{"info": {"mini_version": "2.0"}}', "x.json"),
        (b"\xff\xd8\xff\xe0 jpeg", "x.traj.json"),
    ],
    ids=[
        "bare-list-wrong-name",
        "bare-list-no-observation",
        "openai-request",
        "no-messages",
        "binary",
    ],
)
def test_sniff_rejects_near_misses(content, filename):
    assert loader.sniff(content, filename) == 0.0


def test_values_of_the_wrong_type_never_crash_the_loader(tmp_path):
    path = tmp_path / "confused.json"
    for document in _type_confused(json.loads(TOOLCALLING.read_text())):
        path.write_text(json.dumps(document))
        try:
            result = loader.read(Source(path, "confused.json"), LoadOptions())
        except (InputError, FormatMismatch):
            continue
        assert result.stats.balanced, document
