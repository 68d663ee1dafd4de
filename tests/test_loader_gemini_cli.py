"""gemini_cli loader: bracket times from the recording order, last-record-wins, rewinds, the legacy
document, exact reject accounting, strict mode, gzip, subagents and negative sniffs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from loader_helpers import ns, rows

from correlate.errors import StrictRejection
from correlate.loaders import REGISTRY, LoadOptions, LoadResult, detect
from correlate.sources import Source

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data" / "gemini_cli"
SESSION_FILE = DATA / "session-2025-12-02T06-10-5e1f2a3b.jsonl"
MALFORMED = DATA / "malformed.jsonl"
LEGACY = DATA / "session-2025-09-18T02-45-3b44bc68.json"
SESSION = "5e1f2a3b-7c4d-4e8f-9a0b-1c2d3e4f5a6b"
CALL_A = "run_shell_command-1764655815500-a1"
CALL_B = "run_shell_command-1764655831000-b2"
CALL_C = "web_fetch-1764655839990-c3"
CALL_D = "run_shell_command-1764655880000-d4"
loader = REGISTRY["gemini_cli"]


def display(path: Path) -> str:
    try:
        return str(path.relative_to(TESTS.parent))
    except ValueError:
        return path.name


def load(path: Path, options: LoadOptions | None = None) -> LoadResult:
    source = Source(path, display(path))
    detection = detect(source)
    assert detection.name == "gemini_cli"
    return detection.loader.read(source, options or LoadOptions())


def by_call(result: LoadResult) -> dict[str, dict[str, Any]]:
    return {row["call_id"]: row for row in rows(result.table)}


def assert_balanced(result: LoadResult) -> None:
    stats = result.stats
    assert stats.read == stats.loaded + stats.rejected + sum(stats.skipped.values())
    assert stats.loaded == result.table.num_rows
    assert stats.rejected == len(result.rejects)


# --- golden rows --------------------------------------------------------------------------------


def test_first_shell_call_row_is_exact():
    row = by_call(load(SESSION_FILE))[CALL_A]
    assert row == {
        "call_id": CALL_A,
        "run_id": None,
        "episode_id": SESSION,
        "step": None,
        # Start: the text message recorded before the tools ran; end: when the call was recorded.
        "ts_start": ns("2025-12-02T06:10:09.250Z"),
        "ts_end": ns("2025-12-02T06:10:15.500Z"),
        "ts_kind": "bracket",
        "tool": "run_shell_command",
        "command": "curl -s http://141.94.96.144:3333/ -m 5",
        "arguments": '{"command": "curl -s http://141.94.96.144:3333/ -m 5", "description": "Probe the pool"}',
        "output": "Output: (empty)\nExit Code: 28\nProcess Group PGID: 4242",
        "exit_code": 28,
        "is_error": True,  # status "success" (the tool ran), but the command failed
        "host": None,
        "host_ip": None,
        "model": "gemini-2.5-pro",
        "train_step": None,
        "ts_note": None,
        "source_format": "gemini_cli",
        "source_path": "tests/data/gemini_cli/session-2025-12-02T06-10-5e1f2a3b.jsonl",
        "source_line": 8,  # the last record of the call wins
    }


def test_later_batches_start_after_the_previous_batch_was_recorded():
    calls = by_call(load(SESSION_FILE))
    background = calls[CALL_B]
    assert (background["ts_start"], background["ts_end"]) == (
        ns("2025-12-02T06:10:15.500Z"),
        ns("2025-12-02T06:10:31Z"),
    )
    assert background["ts_note"] == "ran in the background: the process may outlive ts_end"
    assert (background["exit_code"], background["is_error"]) == (None, False)
    fetch = calls[CALL_C]  # its own message is stamped after it: not a lower bound
    assert (fetch["ts_start"], fetch["ts_end"]) == (
        ns("2025-12-02T06:10:31Z"),
        ns("2025-12-02T06:10:39.99Z"),
    )
    assert (fetch["is_error"], fetch["output"]) == (
        True,
        "fetch failed: getaddrinfo ENOTFOUND pool.supportxmr.com",
    )
    assert fetch["source_line"] == 9


def test_cancelled_call_of_a_rewound_message_is_kept_and_noted():
    result = load(SESSION_FILE)
    ssh = by_call(result)[CALL_D]
    assert (ssh["ts_start"], ssh["ts_end"]) == (
        ns("2025-12-02T06:11:00Z"),
        ns("2025-12-02T06:11:20Z"),
    )
    assert (ssh["is_error"], ssh["model"]) == (None, "gemini-2.5-flash")
    assert ssh["ts_note"] == "cancelled: it may not have run to the end"
    assert (
        result.stats.notes["tool calls of messages removed by a later $rewindTo (kept: they ran)"]
        == 1
    )


def test_session_file_accounting():
    result = load(SESSION_FILE)
    assert result.stats.skipped == {
        "session metadata": 1,
        "user message without tool calls": 2,
        "metadata update ($set)": 2,
        "gemini message without tool calls": 2,
        "earlier record of a tool call replaced by a later one": 1,
        "info message without tool calls": 1,
        "$rewindTo marker": 1,
    }
    assert (result.stats.read, result.stats.loaded, result.stats.unit) == (14, 4, "records")
    assert result.rejects == []
    assert_balanced(result)


def test_legacy_document_reads_messages_by_index_and_siblings_do_not_bound_each_other():
    result = load(LEGACY)
    assert [
        (r["call_id"], r["ts_start"], r["ts_end"], r["exit_code"], r["source_line"])
        for r in rows(result.table)
    ] == [
        (
            "list_directory-1758163515000-1",
            ns("2025-09-18T02:45:14Z"),
            ns("2025-09-18T02:45:15Z"),
            None,
            2,
        ),
        (
            "run_shell_command-1758163515001-2",
            ns("2025-09-18T02:45:14Z"),
            ns("2025-09-18T02:45:15.001Z"),
            4,
            2,
        ),
    ]
    assert rows(result.table)[1]["episode_id"] == "3b44bc68-2f1e-4d3c-9b8a-7f6e5d4c3b2a"
    assert result.stats.skipped == {
        "session metadata": 1,
        "user message without tool calls": 1,
        "gemini message without tool calls": 1,
    }
    assert_balanced(result)


# --- malformed ----------------------------------------------------------------------------------


def test_malformed_rejects_exactly_the_bad_records():
    result = load(MALFORMED)
    assert [(r.location.line, r.reason) for r in result.rejects][1:] == [
        (4, "tool call without an id"),
        (4, "tool call t-4 without a name"),
        (4, "tool call t-5: timestamp: not an ISO 8601 time: 'yesterday'"),
        (4, "tool call entry is not an object but str"),
        (5, "toolCalls is not a list"),
        (6, "$set is not an object"),
        (7, "not a Gemini CLI record (no id, sessionId, $set or $rewindTo)"),
        (8, "not a JSON object but a JSON list"),
    ]
    assert result.rejects[0].location.line == 3
    assert result.rejects[0].reason.startswith("not valid JSON")
    assert result.stats.skipped == {
        "session metadata": 1,
        "blank line": 1,
        "metadata update ($set)": 1,
    }
    assert_balanced(result)


def test_malformed_loaded_calls_inferred_start_naive_time_and_session_change():
    calls = by_call(load(MALFORMED))
    first = calls["run_shell_command-1764658800000-t1"]
    assert (first["ts_start"], first["ts_end"], first["ts_kind"]) == (
        ns("2025-12-02T07:00:00Z"),
        ns("2025-12-02T07:00:00Z"),
        "inferred",
    )
    assert first["ts_note"] == (
        "no earlier record: start unknown, ts_start = when the completed call was recorded"
    )
    untimed = calls["t-6"]  # no timestamp of its own: its message's, as the step's time
    assert (untimed["ts_start"], untimed["ts_end"], untimed["ts_kind"]) == (
        ns("2025-12-02T07:00:05Z"),
        None,
        "step",
    )
    naive = calls["t-7"]
    assert (naive["ts_start"], naive["ts_end"]) == (
        ns("2025-12-02T07:00:05Z"),
        ns("2025-12-02T07:00:07Z"),
    )
    assert naive["ts_note"] == "no zone: assumed UTC"
    moved = calls["t-9"]
    assert moved["episode_id"] == "aaaabbbb-cccc-4ddd-8eee-ffff00001111"  # after the $set sessionId
    assert (moved["output"], moved["exit_code"], moved["is_error"]) == (
        "Command exited with code: 3",
        None,
        True,
    )
    assert first["episode_id"] == "0d0e0f10-1112-4314-9516-171819202122"


def test_strict_stops_at_the_first_rejected_line():
    with pytest.raises(StrictRejection, match=r"^tests/data/gemini_cli/malformed\.jsonl:3: "):
        load(MALFORMED, LoadOptions(strict=True))


def test_subagent_recording_joins_the_parent_session_folder(tmp_path):
    lines = SESSION_FILE.read_text().splitlines()
    meta = json.loads(lines[0])
    meta.update(sessionId="sub-0042", kind="subagent")
    folder = tmp_path / "chats" / SESSION
    folder.mkdir(parents=True)
    path = folder / "sub-0042.jsonl"
    path.write_text("\n".join([json.dumps(meta), *lines[1:]]) + "\n")
    row = by_call(load(path))[CALL_A]
    assert (row["run_id"], row["episode_id"]) == ("sub-0042", SESSION)
    flat = tmp_path / "chats" / "sub-0042.jsonl"
    shutil.copy(path, flat)
    row = by_call(load(flat))[CALL_A]
    assert (row["run_id"], row["episode_id"]) == ("sub-0042", "sub-0042")


def test_host_options_fill_rows_and_identity():
    options = LoadOptions(
        format_options={"gemini_cli": {"host": "ws-12", "host_ip": "172.16.4.12"}}
    )
    result = load(SESSION_FILE, options)
    [host] = rows(result.hosts)
    assert (host["host"], host["ip"], host["valid_from"]) == (
        "ws-12",
        "172.16.4.12",
        ns("2025-12-02T06:10:09.250Z"),
    )
    assert {(r["host"], r["host_ip"]) for r in rows(result.table)} == {("ws-12", "172.16.4.12")}


# --- sniffing -----------------------------------------------------------------------------------


def _jsonl(*records: Any) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


NEAR_MISSES = {
    # Gemini CLI's checkpoint/history files: role/parts Content, no MessageRecord envelope.
    "checkpoint": _jsonl({"role": "user", "parts": [{"text": "hi"}]}),
    # A generic chat export with id/timestamp/content but a role instead of a Gemini type.
    "chat_export": _jsonl(
        {"id": "1", "timestamp": "2025-01-01T00:00:00Z", "role": "user", "content": "x"}
    ),
    "claude": _jsonl(
        {"type": "user", "sessionId": "s", "uuid": "u", "message": {}, "timestamp": "x"}
    ),
    "pretty_other_json": b'{\n  "sessionId": "x",\n  "steps": []\n}\n',
}


@pytest.mark.parametrize("name", sorted(NEAR_MISSES))
def test_near_misses_do_not_sniff_as_gemini_cli(name):
    assert loader.sniff(NEAR_MISSES[name], f"{name}.jsonl") == 0.0


def test_sniff_scores_metadata_messages_and_the_legacy_document():
    assert loader.sniff(SESSION_FILE.read_bytes(), SESSION_FILE.name) == 0.95
    message_only = SESSION_FILE.read_text().splitlines()[3].encode()
    assert loader.sniff(message_only, "x.jsonl") == 0.9
    assert loader.sniff(LEGACY.read_bytes(), LEGACY.name) == 0.9
