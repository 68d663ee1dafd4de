"""Claude Code session transcripts: ``~/.claude/projects/<cwd>/<sessionId>.jsonl`` (and subagents).

One row per ``tool_use`` block of an assistant line: ``call_id`` = its ``id``, ``tool`` = ``name``,
``arguments`` = ``input``, ``command`` = ``input.command`` (Bash), ``model`` = ``message.model``.
``ts_start``/``ts_end`` = the tool_use line's and its ``tool_result`` line's ``timestamp``
(``bracket``; no result: end null, noted). ``episode_id`` = ``sessionId``; ``run_id`` = ``agentId``
on subagent transcripts. ``output``/``is_error`` from the tool_result; ``exit_code`` from a Bash
error starting ``Exit code N``.

Skipped (counted): other record types, lines without tool_use, tool results (merged), duplicate
ids, and tool uses the user rejected. Background Bash calls are noted (they may outlive
``ts_end``). Naive times are UTC unless ``--tz claude_code=ZONE``, noted. The transcript does not
name its machine: ``host``/``host_ip`` come from ``OPTIONS`` (both give an identity row). Field
reference and sources: ``tests/data/claude_code/README.md``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..schema import TOOL_CALLS
from ..sources import Source
from . import fields
from .base import FileLoad, LoadOptions, LoadResult
from .calls import (
    PendingCall,
    bracket_end,
    command_from,
    emit_calls,
    head_objects,
    host_options,
    iso_time,
    truncate_output,
)
from .records import json_line_records

name = "claude_code"
kind = "agent"
description = "Claude Code session transcripts (~/.claude/projects/*/<session>.jsonl, subagents)"

OPTIONS = {
    "host": "the machine the transcript was recorded on",
    "host_ip": "its IP address (adds an identity row)",
}
"""``--option claude_code.KEY=VALUE`` settings."""

RECORD_TYPES = (
    "user",
    "assistant",
    "system",
    "summary",
    "progress",
    "file-history-snapshot",
    "queue-operation",
)
REJECTED_BY_USER = "tool use rejected by the user (never ran)"
_EXIT_CODE = re.compile(r"^(?:Error: )?Exit code (-?\d{1,10})\b")
_REJECTED_TEXT = "The user doesn't want to proceed with this tool use"


def sniff(head: bytes, filename: str) -> float:
    """Score: JSON lines with Claude Code's envelope (``type`` + ``sessionId`` + ``uuid``)."""
    score = 0.0
    for record in head_objects(head):
        kind_ = record.get("type")
        if (
            kind_ in ("user", "assistant")
            and isinstance(record.get("message"), dict)
            and isinstance(record.get("sessionId"), str)
            and "uuid" in record
            and isinstance(record.get("timestamp"), str)
        ):
            return 0.95
        if kind_ in RECORD_TYPES and (
            ("sessionId" in record and ("uuid" in record or "leafUuid" in record))
            or ("messageId" in record and "snapshot" in record)
        ):
            score = 0.9
    return score


@dataclass(kw_only=True)
class _Call(PendingCall):
    """A tool_use block waiting for (or matched with) its tool_result."""

    arguments: Any
    agent: str | None
    background: bool = False
    rejected: bool = False


def read(source: Source, options: LoadOptions) -> LoadResult:
    """Read one transcript into ``tool_calls`` rows (and, with the host options, an identity row)."""
    load = FileLoad(source, options, name, kind, TOOL_CALLS, unit="records")
    zone = options.zone_for(name)
    host, host_ip = host_options(options, name)
    calls: dict[str, _Call] = {}
    for line, record, raw in json_line_records(source, load.stats, load.sink):
        record_type = record.get("type")
        if not isinstance(record_type, str) or not record_type:
            load.reject(line, "no record type (not a Claude Code transcript line)", raw)
            continue
        message = record.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        blocks = [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []
        uses = [b for b in blocks if b.get("type") == "tool_use"]
        results = [b for b in blocks if b.get("type") == "tool_result"]
        if record_type == "assistant" and uses:
            _add_uses(uses, record, line, raw, zone, calls, load)
            continue
        if record_type == "user" and results:
            load.skip("tool results (merged into their tool_use)")
            _add_results(results, record, line, zone, calls, load)
        elif record_type == "assistant":
            load.skip("assistant message without tool_use")
        elif record_type in RECORD_TYPES:
            load.skip(f"{record_type} record")
        else:
            load.skip("record of another type")
    return emit_calls(load, _rows(calls, load, host, host_ip), host, host_ip)


def _rows(
    calls: dict[str, _Call], load: FileLoad, host: str | None, host_ip: str | None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """The finished rows, in call order; a call the user rejected is skipped."""
    for call in calls.values():
        if call.rejected:
            load.skip(REJECTED_BY_USER)
            continue
        yield call.line, _row(call, host, host_ip)


def _add_uses(
    uses: list[dict[str, Any]],
    record: dict[str, Any],
    line: int,
    raw: str,
    zone: Any,
    calls: dict[str, _Call],
    load: FileLoad,
) -> None:
    """Each tool_use block of an assistant line: a pending call (counted when its row is made),
    a duplicate, or a reject."""
    message = record.get("message") or {}
    for block in uses:
        call_id = fields.text(block.get("id"))
        if call_id is None:
            load.reject(line, "tool_use without an id", raw)
            continue
        tool = fields.text(block.get("name"))
        if tool is None:
            load.reject(line, f"tool_use {call_id} without a name", raw)
            continue
        try:
            ts_start, note = iso_time(record.get("timestamp"), "timestamp", zone)
        except fields.RowError as exc:
            load.reject(line, f"tool_use {call_id}: {exc}", raw)
            continue
        if call_id in calls:
            load.skip("duplicate tool_use id (first one kept)")
            continue
        arguments = block.get("input")
        calls[call_id] = _Call(
            line=line,
            call_id=call_id,
            tool=tool,
            arguments=arguments,
            ts_start=ts_start,
            notes=[note] if note else [],
            session=fields.text(record.get("sessionId")),
            agent=fields.text(record.get("agentId")),
            model=fields.text(message.get("model")),
            background=isinstance(arguments, dict) and arguments.get("run_in_background") is True,
        )


def _add_results(
    results: list[dict[str, Any]],
    record: dict[str, Any],
    line: int,
    zone: Any,
    calls: dict[str, _Call],
    load: FileLoad,
) -> None:
    """Match tool_result blocks to their calls: end time, output, error flag, exit code."""
    # toolUseResult belongs to the line, so it is only unambiguous with one result on it.
    extra = record.get("toolUseResult") if len(results) == 1 else None
    for block in results:
        call = calls.get(str(block.get("tool_use_id")))
        if call is None:
            load.note("tool_result without a matching tool_use in this file")
            continue
        if call.answered:
            load.note("second tool_result for one tool_use (ignored)")
            continue
        call.answered = True
        ts_end, why = bracket_end(
            record.get("timestamp"), zone, call.ts_start, line, "tool_result", "tool_use"
        )
        if why:
            call.extra.append(why)
        else:
            call.ts_end = ts_end
        text = _result_text(block.get("content"))
        call.output = truncate_output(text)
        flag = block.get("is_error")
        call.is_error = flag if isinstance(flag, bool) else False
        if call.is_error and text:
            match = _EXIT_CODE.match(text)
            if match:
                call.exit_code = fields.integer(match.group(1), "exit code")
        if extra == "User rejected tool use" or (
            call.is_error and (text or "").startswith(_REJECTED_TEXT)
        ):
            call.rejected = True
        if isinstance(extra, dict):
            if extra.get("backgroundTaskId"):
                call.background = True
            if extra.get("interrupted") is True:
                call.extra.append("interrupted by the user")


def _result_text(content: Any) -> str | None:
    """A tool_result's content as text: a string, or the text of its content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for item in content:
            if isinstance(item, dict) and isinstance(item.get("text"), str):
                parts.append(item["text"])
            elif isinstance(item, dict) and item.get("type") == "image":
                parts.append("[image]")
        return "\n".join(parts)
    return fields.text(content)


def _row(call: _Call, host: str | None, host_ip: str | None) -> dict[str, Any]:
    notes = list(call.notes)
    if not call.answered:
        notes.append("no tool_result in this file: end unknown")
    notes.extend(call.extra)
    if call.background:
        notes.append("ran in the background: the process may outlive ts_end")
    return {
        "call_id": call.call_id,
        "run_id": call.agent,
        "episode_id": call.session,
        "step": None,
        "ts_start": call.ts_start,
        "ts_end": call.ts_end,
        "ts_kind": "bracket",
        "tool": call.tool,
        "command": command_from(call.arguments),
        "arguments": fields.text(call.arguments),
        "output": call.output,
        "exit_code": call.exit_code,
        "is_error": call.is_error,
        "host": host,
        "host_ip": host_ip,
        "model": call.model,
        "train_step": None,
        "ts_note": "; ".join(notes) or None,
    }
