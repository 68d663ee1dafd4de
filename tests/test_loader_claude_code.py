"""claude_code loader: golden rows from real and synthetic transcripts, exact reject accounting,
strict mode, gzip, the host options and negative sniffs on near-miss files."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from loader_helpers import ns, rows

from correlate.errors import OptionError, StrictRejection
from correlate.loaders import REGISTRY, LoadOptions, LoadResult, detect
from correlate.sources import Source

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data" / "claude_code"
TOOL_HEAVY = DATA / "spotter_tool_heavy_out_of_order.jsonl"
SHORT = DATA / "spotter_short_user_rejected_both_calls.jsonl"
SUBAGENT_COMPACT = DATA / "spotter_subagent_agent-acompact-fffbd0.jsonl"
CHRONICLE = DATA / "sessions_chronicle_no_tool_calls.jsonl"
MALFORMED = DATA / "malformed.jsonl"
UNANSWERED = DATA / "unanswered_orphan_reversed.jsonl"
BACKGROUND = DATA / "background_and_rejected.jsonl"
SIDECHAIN = DATA / "sidechain_agent-a91f03c.jsonl"
SESSION = "7c1d2e3f-4a5b-4c6d-8e7f-90a1b2c3d4e5"
loader = REGISTRY["claude_code"]


def display(path: Path) -> str:
    try:
        return str(path.relative_to(TESTS.parent))
    except ValueError:
        return path.name


def load(path: Path, options: LoadOptions | None = None) -> LoadResult:
    source = Source(path, display(path))
    detection = detect(source)
    assert detection.name == "claude_code"
    return detection.loader.read(source, options or LoadOptions())


def by_call(result: LoadResult) -> dict[str, dict[str, Any]]:
    return {row["call_id"]: row for row in rows(result.table)}


def rejects(result: LoadResult) -> list[tuple[int, str]]:
    return [(r.location.line, r.reason) for r in result.rejects]


def assert_balanced(result: LoadResult) -> None:
    stats = result.stats
    assert stats.read == stats.loaded + stats.rejected + sum(stats.skipped.values())
    assert stats.loaded == result.table.num_rows
    assert stats.rejected == len(result.rejects)


# --- golden rows --------------------------------------------------------------------------------


def test_real_tool_heavy_session_background_bash_row_is_exact():
    result = load(TOOL_HEAVY)
    assert rows(result.table)[0] == {
        "call_id": "toolu_018GZVh9ymkrdx1TnR8reg5Y",
        "run_id": None,
        "episode_id": "d6e0bada-1959-4eec-a9d2-0bfade768d8f",
        "step": None,
        "ts_start": ns("2026-02-10T22:57:57.941Z"),
        "ts_end": ns(
            "2026-02-10T22:57:59.113Z"
        ),  # the tool_result line, not the later-stamped line 10
        "ts_kind": "bracket",
        "tool": "Bash",
        "command": "mix phx.server",
        "arguments": '{"command": "mix phx.server", "description": "Start Phoenix server in background", '
        '"run_in_background": true}',
        "output": "Command running in background with ID: bae407b. Output is being written to: "
        "/tmp/claude-1000/-home-marco-projects-spotter/tasks/bae407b.output",
        "exit_code": None,
        "is_error": False,
        "host": None,
        "host_ip": None,
        "model": "claude-opus-4-6",
        "train_step": None,
        "ts_note": "ran in the background: the process may outlive ts_end",
        "source_format": "claude_code",
        "source_path": "tests/data/claude_code/spotter_tool_heavy_out_of_order.jsonl",
        "source_line": 5,
    }


def test_real_tool_heavy_session_loads_six_calls_in_file_order_and_skips_the_rest():
    result = load(TOOL_HEAVY)
    table = rows(result.table)
    assert [(r["source_line"], r["tool"]) for r in table] == [
        (5, "Bash"),
        (13, "Bash"),
        (29, "WebSearch"),
        (30, "Glob"),
        (34, "Read"),
        (37, "WebFetch"),
    ]
    # WebSearch (line 29) is answered on line 33, after the Glob answered on line 32.
    assert (table[2]["ts_start"], table[2]["ts_end"]) == (
        ns("2026-02-10T22:59:26.854Z"),
        ns("2026-02-10T22:59:33.333Z"),
    )
    assert table[3]["is_error"] is False  # Glob's tool_result has no is_error: false by default
    assert result.stats.skipped == {
        "progress record": 10,
        "user record": 7,
        "tool results (merged into their tool_use)": 6,
        "file-history-snapshot record": 3,
        "assistant message without tool_use": 3,
        "queue-operation record": 2,
        "system record": 2,
    }
    assert result.rejects == []
    assert_balanced(result)


def test_real_short_session_skips_both_calls_the_user_rejected():
    result = load(SHORT)
    assert result.table.num_rows == 0
    assert result.stats.skipped["tool use rejected by the user (never ran)"] == 2
    assert result.stats.read == 15
    assert_balanced(result)


@pytest.mark.parametrize(
    ("path", "read"), [(SUBAGENT_COMPACT, 4), (CHRONICLE, 5)], ids=lambda v: getattr(v, "name", v)
)
def test_transcripts_without_tool_calls_load_nothing_and_skip_every_line(path, read):
    result = load(path)
    assert result.table.num_rows == 0
    assert result.rejects == []
    assert result.stats.read == read == sum(result.stats.skipped.values())


def test_subagent_call_joins_the_parent_session_with_its_agent_id_as_run():
    [row] = rows(load(SIDECHAIN).table)
    assert (row["run_id"], row["episode_id"]) == ("a91f03c", SESSION)
    assert row["model"] == "claude-haiku-4-5-20251001"
    assert (row["ts_start"], row["ts_end"]) == (
        ns("2025-12-02T06:40:03Z"),
        ns("2025-12-02T06:40:04.2Z"),
    )


def test_background_miner_and_interrupted_long_output():
    result = load(BACKGROUND)
    calls = by_call(result)
    miner = calls["toolu_01MinerBackground00001"]
    assert miner["command"].startswith("nohup ./xmrig -o stratum+tcp://pool.supportxmr.com:3333")
    assert miner["ts_note"] == "ran in the background: the process may outlive ts_end"
    long = calls["toolu_01LongOutput00000000001"]
    assert long["output"] == "A" * 2000 + "... [500 more characters]"
    assert long["ts_note"] == "interrupted by the user"
    assert "toolu_01RejectedByUser000001" not in calls  # "rm -rf ~/.ssh" never ran
    assert result.stats.skipped == {
        "tool results (merged into their tool_use)": 3,
        "tool use rejected by the user (never ran)": 1,
    }
    assert_balanced(result)


# --- malformed fixtures ---------------------------------------------------------------------------


def test_malformed_rejects_exactly_the_bad_lines_and_blocks():
    result = load(MALFORMED)
    got = rejects(result)
    expected = [
        (2, "not valid JSON"),
        (3, "not a JSON object but a JSON list"),
        (4, "no record type"),
        (5, "tool_use toolu_01NoTimestamp0000000001: timestamp is missing"),
        (6, "tool_use toolu_01BadTimestamp000000001: timestamp: not an ISO 8601 time: 'yesterday'"),
        (7, "tool_use without an id"),
        (7, "tool_use toolu_01NoName00000000000001 without a name"),
    ]
    assert [line for line, _ in got] == [line for line, _ in expected]
    for (_, reason), (_, fragment) in zip(got, expected, strict=True):
        assert fragment in reason
    assert result.stats.skipped == {
        "user record": 1,
        "blank line": 1,
        "tool results (merged into their tool_use)": 2,
        "summary record": 1,
    }
    assert result.stats.read == 14  # 13 lines, line 7 holding two tool_use blocks
    assert_balanced(result)


def test_malformed_error_result_gives_exit_code_and_naive_time_is_noted():
    calls = by_call(load(MALFORMED))
    curl = calls["toolu_01CurlInstall0000000001"]
    assert (curl["exit_code"], curl["is_error"]) == (6, True)
    assert (curl["ts_start"], curl["ts_end"]) == (
        ns("2025-12-02T06:12:00Z"),
        ns("2025-12-02T06:12:02.5Z"),
    )
    assert curl["source_line"] == 8
    fetch = calls["toolu_01NaiveTime000000000001"]
    assert fetch["ts_start"] == ns("2025-12-02T06:12:05Z")
    assert fetch["ts_note"] == "no zone: assumed UTC"
    assert fetch["output"] == "A Monero mining pool front page."  # from content blocks
    assert fetch["command"] is None
    assert (
        fetch["arguments"]
        == '{"prompt": "What is this page?", "url": "https://pool.supportxmr.com/"}'
    )


def test_naive_time_honours_the_zone_option():
    result = load(MALFORMED, LoadOptions(zones={"claude_code": ZoneInfo("Asia/Shanghai")}))
    fetch = by_call(result)["toolu_01NaiveTime000000000001"]
    assert fetch["ts_start"] == ns("2025-12-01T22:12:05Z")
    assert fetch["ts_note"] == "no zone: assumed Asia/Shanghai"


def test_unanswered_orphan_reversed_and_duplicate_are_noted_not_lost():
    result = load(UNANSWERED)
    calls = by_call(result)
    tunnel = calls["toolu_01TunnelNeverAnswered001"]
    assert (tunnel["ts_start"], tunnel["ts_end"]) == (ns("2025-12-02T06:20:00Z"), None)
    assert tunnel["ts_note"] == "no tool_result in this file: end unknown"
    reversed_clock = calls["toolu_01ReversedClock0000001"]
    assert (reversed_clock["ts_end"], reversed_clock["source_line"]) == (None, 3)
    assert reversed_clock["ts_note"] == "tool_result stamped before its tool_use: end ignored"
    assert reversed_clock["output"] == "Connection to 141.94.96.144 3333 port [tcp/*] succeeded!"
    first, second = calls["toolu_01PairFirst0000000000001"], calls["toolu_01PairSecond000000000001"]
    assert first["source_line"] == second["source_line"] == 7
    assert (first["exit_code"], first["is_error"]) == (None, False)
    assert (second["exit_code"], second["is_error"]) == (255, True)
    assert first["ts_note"] is None  # the line's toolUseResult is ambiguous with two results
    no_time = calls["toolu_01ResultNoTime0000000001"]
    assert no_time["ts_end"] is None
    assert no_time["ts_note"] == "tool_result on line 10 has no valid timestamp: end unknown"
    assert result.stats.skipped == {
        "tool results (merged into their tool_use)": 5,
        "duplicate tool_use id (first one kept)": 1,
    }
    assert result.stats.notes["tool_result without a matching tool_use in this file"] == 1
    assert result.stats.notes["second tool_result for one tool_use (ignored)"] == 1
    assert result.stats.read == 11
    assert_balanced(result)


# --- strict mode, compression, options ------------------------------------------------------------


def test_strict_stops_at_the_first_rejected_line():
    with pytest.raises(StrictRejection, match=r"^tests/data/claude_code/malformed\.jsonl:2: "):
        load(MALFORMED, LoadOptions(strict=True))


def test_host_options_fill_every_row_and_give_one_identity_row():
    options = LoadOptions(
        format_options={"claude_code": {"host": "dev-laptop-7", "host_ip": "10.20.0.7"}}
    )
    result = load(UNANSWERED, options)
    assert {(r["host"], r["host_ip"]) for r in rows(result.table)} == {
        ("dev-laptop-7", "10.20.0.7")
    }
    assert rows(result.hosts) == [
        {
            "host": "dev-laptop-7",
            "ip": "10.20.0.7",
            "valid_from": ns("2025-12-02T06:20:00Z"),
            "valid_to": None,
            "kind": None,
            "origin": "trajectory",
            "note": "given by --option claude_code.host_ip",
            "source_format": "claude_code",
            "source_path": "tests/data/claude_code/unanswered_orphan_reversed.jsonl",
            "source_line": 1,
        }
    ]
    assert load(UNANSWERED).hosts.num_rows == 0


def test_bad_host_ip_option_is_an_option_error():
    options = LoadOptions(format_options={"claude_code": {"host_ip": "laptop"}})
    with pytest.raises(OptionError, match=re.escape("--option claude_code.host_ip")):
        load(SIDECHAIN, options)


# --- sniffing -----------------------------------------------------------------------------------


def _jsonl(*records: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


NEAR_MISSES = {
    # `claude -p --output-format stream-json`: snake_case session_id, no timestamps, no uuid.
    "stream_json": _jsonl(
        {
            "type": "system",
            "subtype": "init",
            "session_id": "s1",
            "cwd": "/repo",
            "tools": ["Bash"],
        },
        {"type": "assistant", "session_id": "s1", "message": {"role": "assistant", "content": []}},
    ),
    # An Anthropic Messages API log: tool_use blocks but no transcript envelope.
    "messages_api": _jsonl(
        {"id": "msg_1", "type": "message", "role": "assistant", "content": [{"type": "tool_use"}]}
    ),
    # A Gemini CLI metadata line and a Codex line.
    "gemini": _jsonl(
        {"sessionId": "abc", "projectHash": "f00", "startTime": "2025-01-01T00:00:00Z"}
    ),
    "codex": _jsonl({"timestamp": "2025-01-01T00:00:00Z", "type": "event_msg", "payload": {}}),
    "binary": bytes(range(256)) * 4,
    "empty_lines": b"\n\n\n",
}


@pytest.mark.parametrize("name", sorted(NEAR_MISSES))
def test_near_misses_do_not_sniff_as_claude_code(name):
    assert loader.sniff(NEAR_MISSES[name], f"{name}.jsonl") == 0.0


def test_sniff_is_sure_on_a_transcript_and_sees_past_a_leading_snapshot_line():
    head = TOOL_HEAVY.read_bytes()
    assert loader.sniff(head, TOOL_HEAVY.name) == 0.95
    assert loader.sniff(head.split(b"\n", 1)[0], TOOL_HEAVY.name) == 0.9  # snapshot line only
