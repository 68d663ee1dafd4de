"""Codex CLI rollout files: ``$CODEX_HOME/sessions/YYYY/MM/DD/rollout-<local time>-<uuid>.jsonl``.

One row per ``function_call``, ``custom_tool_call`` or ``local_shell_call`` response item:
``call_id``; ``tool`` = ``name`` (``local_shell``); ``arguments`` as written; ``command`` = ``cmd``,
``command`` or argv (``bash -lc X`` reduced to ``X``); ``model`` = the latest
``turn_context.model``; ``episode_id`` = the session id, else the file name's UUID (noted).
``ts_start``/``ts_end`` = the call's and its output's line ``timestamp`` (``bracket``; no output:
end null, noted). ``exit_code`` is read from the output's header (structured metadata,
``Exit code: N`` or ``Process exited with code N``), never from the command's own output; a
still-running process is noted.

Skipped (counted): session_meta, turn_context, event_msg and compacted lines, outputs (merged),
other response items, duplicate call ids and hosted ``web_search_call`` items. ``host``/``host_ip``
come from ``OPTIONS``. Field reference and sources: ``tests/data/codex/README.md``.
"""

from __future__ import annotations

import json
import re
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
    shell_text,
    truncate_output,
)
from .records import json_line_records

name = "codex"
kind = "agent"
description = "Codex CLI rollout JSONL (~/.codex/sessions/**/rollout-*.jsonl)"

OPTIONS = {
    "host": "the machine the rollout was recorded on",
    "host_ip": "its IP address (adds an identity row)",
}
"""``--option codex.KEY=VALUE`` settings."""

LINE_TYPES = ("session_meta", "turn_context", "response_item", "event_msg", "compacted")
CALL_TYPES = ("function_call", "custom_tool_call", "local_shell_call")
OUTPUT_TYPES = ("function_call_output", "custom_tool_call_output")
OTHER_ITEMS = ("message", "reasoning", "ghost_snapshot", "compaction", "compaction_summary")
_SESSION_IN_NAME = re.compile(
    r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.jsonl$", re.IGNORECASE
)
_HEADER_LINE = re.compile(
    r"^(Exit code: -?\d+|Process exited with code -?\d+|Process running with session ID \d+"
    r"|Wall time: .*|Chunk ID: .*|Total output lines: .*|Original token count: .*)$"
)
_EXIT = re.compile(r"^(?:Exit code: |Process exited with code )(-?\d{1,10})$")
_RUNNING = re.compile(r"^Process running with session ID (\d{1,20})$")


def sniff(head: bytes, filename: str) -> float:
    """Score: JSON lines of ``{timestamp, type, payload}`` with Codex line types."""
    score = 0.0
    for record in head_objects(head):
        line_type = record.get("type")
        if (
            line_type in LINE_TYPES
            and isinstance(record.get("payload"), dict)
            and isinstance(record.get("timestamp"), str)
        ):
            if line_type == "session_meta":
                return 0.95
            score = 0.9
    return score


@dataclass(kw_only=True)
class _Call(PendingCall):
    """A call item waiting for (or matched with) its output."""

    arguments: str | None
    command: str | None


def read(source: Source, options: LoadOptions) -> LoadResult:
    """Read one rollout into ``tool_calls`` rows (and, with the host options, an identity row)."""
    load = FileLoad(source, options, name, kind, TOOL_CALLS, unit="lines")
    zone = options.zone_for(name)
    host, host_ip = host_options(options, name)
    from_name = _SESSION_IN_NAME.search(source.name)
    session: str | None = None
    model: str | None = None
    calls: dict[str, _Call] = {}
    for line, record, raw in json_line_records(source, load.stats, load.sink):
        line_type = record.get("type")
        payload = record.get("payload")
        if not isinstance(line_type, str) or not isinstance(payload, dict):
            load.reject(line, "not a Codex rollout line (needs a type and a payload object)", raw)
            continue
        if line_type == "session_meta":
            load.skip("session_meta line")
            session = (
                session or fields.text(payload.get("id")) or fields.text(payload.get("session_id"))
            )
            continue
        if line_type == "turn_context":
            load.skip("turn_context line")
            model = fields.text(payload.get("model")) or model
            continue
        if line_type != "response_item":
            known = line_type in LINE_TYPES
            load.skip(f"{line_type} line" if known else "line of another type")
            continue
        item_type = payload.get("type")
        if item_type in CALL_TYPES:
            note = None
            episode = session
            if episode is None and from_name:
                episode = from_name.group(1).lower()
                note = "session id from the file name (no session_meta line before the call)"
            try:
                call = _call(payload, str(item_type), record, zone, episode, model)
            except fields.RowError as exc:
                load.reject(line, str(exc), raw)
                continue
            if call.call_id in calls:
                load.skip("duplicate call_id (first one kept)")
                continue
            call.line = line
            if note:
                call.notes.append(note)
            calls[call.call_id] = call
        elif item_type in OUTPUT_TYPES:
            load.skip("tool output (merged into its call)")
            _answer(payload, record, line, zone, calls, load)
        elif item_type == "web_search_call":
            load.skip("web_search_call (hosted tool: runs on OpenAI's servers)")
        elif item_type in OTHER_ITEMS:
            load.skip(f"response_item {item_type}")
        else:
            load.skip("response_item of another type")
    rows = ((call.line, _row(call, host, host_ip)) for call in calls.values())
    return emit_calls(load, rows, host, host_ip)


def _call(
    payload: dict[str, Any],
    item_type: str,
    record: dict[str, Any],
    zone: Any,
    session: str | None,
    model: str | None,
) -> _Call:
    """A call item as a pending call; RowError when it cannot be timed or matched."""
    call_id = fields.text(payload.get("call_id"))
    if call_id is None and item_type == "local_shell_call":
        call_id = fields.text(payload.get("id"))
    if call_id is None:
        raise fields.RowError(f"{item_type} without a call_id")
    tool: str | None
    if item_type == "local_shell_call":
        action = payload.get("action")
        argv = action.get("command") if isinstance(action, dict) else None
        tool, arguments, command = "local_shell", fields.text(action), shell_text(argv)
    else:
        tool = fields.text(payload.get("name"))
        if tool is None:
            raise fields.RowError(f"{item_type} {call_id} without a name")
        raw_arguments = payload.get("arguments" if item_type == "function_call" else "input")
        arguments = raw_arguments if isinstance(raw_arguments, str) else fields.text(raw_arguments)
        command = command_from(raw_arguments) if item_type == "function_call" else None
    ts_start, note = iso_time(record.get("timestamp"), f"{item_type} {call_id}: timestamp", zone)
    return _Call(
        line=0,
        call_id=call_id,
        tool=tool or "local_shell",
        arguments=arguments if arguments and arguments.strip() else None,
        command=command,
        ts_start=ts_start,
        notes=[note] if note else [],
        session=session,
        model=model,
    )


def _answer(
    payload: dict[str, Any],
    record: dict[str, Any],
    line: int,
    zone: Any,
    calls: dict[str, _Call],
    load: FileLoad,
) -> None:
    """Match an output item to its call: end time, output text, exit code, error flag."""
    call = calls.get(str(payload.get("call_id")))
    if call is None:
        load.note("tool output without a matching call in this file")
        return
    if call.answered:
        load.note("second output for one call (ignored)")
        return
    call.answered = True
    ts_end, why = bracket_end(record.get("timestamp"), zone, call.ts_start, line, "output", "call")
    if why:
        call.extra.append(why)
    else:
        call.ts_end = ts_end
    text, exit_code, failed, running = parse_output(payload.get("output"))
    call.output = truncate_output(text)
    call.exit_code = exit_code
    call.is_error = exit_code != 0 if exit_code is not None else failed
    if running is not None:
        call.extra.append(
            f"process still running when the output was written (session {running}): "
            "it may outlive ts_end"
        )


def parse_output(value: Any) -> tuple[str | None, int | None, bool | None, str | None]:
    """An output payload as (text, exit code, failed flag, running session id)."""
    failed = None
    if isinstance(value, dict):  # the old {content, success} payload
        success = value.get("success")
        failed = (not success) if isinstance(success, bool) else None
        value = value.get("content")
    if isinstance(value, list):  # content items: [{"type": "input_text", "text": ...}, ...]
        value = "\n".join(
            item["text"]
            for item in value
            if isinstance(item, dict) and isinstance(item.get("text"), str)
        )
    if not isinstance(value, str):
        return fields.text(value), None, failed, None
    if value.lstrip().startswith("{"):
        try:
            document = json.loads(value)
        except (ValueError, RecursionError):
            document = None
        if isinstance(document, dict) and isinstance(document.get("metadata"), dict):
            code = document["metadata"].get("exit_code")
            exit_code = code if isinstance(code, int) and not isinstance(code, bool) else None
            return fields.text(document.get("output")), exit_code, failed, None
    exit_code, running = None, None
    lines = value.split("\n")
    header = lines[: lines.index("Output:")] if "Output:" in lines else lines[:1]
    if all(_HEADER_LINE.match(h) for h in header):
        for item in header:
            match = _EXIT.match(item)
            if match:
                exit_code = int(match.group(1))
            match = _RUNNING.match(item)
            if match:
                running = match.group(1)
    return value, exit_code, failed, running


def _row(call: _Call, host: str | None, host_ip: str | None) -> dict[str, Any]:
    notes = list(call.notes)
    if not call.answered:
        notes.append("no output in this file: end unknown")
    notes.extend(call.extra)
    return {
        "call_id": call.call_id,
        "run_id": None,
        "episode_id": call.session,
        "step": None,
        "ts_start": call.ts_start,
        "ts_end": call.ts_end,
        "ts_kind": "bracket",
        "tool": call.tool,
        "command": call.command,
        "arguments": call.arguments,
        "output": call.output,
        "exit_code": call.exit_code,
        "is_error": call.is_error,
        "host": host,
        "host_ip": host_ip,
        "model": call.model,
        "train_step": None,
        "ts_note": "; ".join(notes) or None,
    }
