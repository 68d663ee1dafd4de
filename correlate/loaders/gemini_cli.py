"""Gemini CLI chat recordings: ``~/.gemini/tmp/<projectHash>/chats/session-*.jsonl`` (and ``.json``).

A metadata line, then appended MessageRecords, ``$set`` updates and ``$rewindTo`` markers; the
last record of a message id wins, as in Gemini CLI's own loader. The legacy ``session-*.json``
document is read the same way (record number = message index).

One row per ToolCallRecord: ``call_id`` = ``id``, ``tool`` = ``name``, ``arguments`` = ``args``,
``command`` = ``args.command``, ``episode_id`` = the session id (a subagent recording: the parent
folder's, with ``run_id`` its own). The call's ``timestamp`` is taken at completion, so it is
``ts_end``; ``ts_start`` = the latest time written before the call (``bracket``), else
``ts_end`` (``inferred``, noted); a call without its own time takes its message's (``step``,
noted). ``exit_code`` from the shell tool's ``Exit Code: N`` (written only when non-zero).
Calls later removed by ``$rewindTo`` are kept (they ran) and noted. Naive times are UTC unless
``--tz gemini_cli=ZONE``; ``host``/``host_ip`` come from ``OPTIONS``. Field reference and
sources: ``tests/data/gemini_cli/README.md``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..schema import TOOL_CALLS
from ..sources import Source
from . import fields
from .base import FileLoad, LoadOptions, LoadResult
from .calls import (
    command_from,
    emit_calls,
    head_objects,
    host_options,
    iso_time,
    truncate_output,
)
from .records import first_line, json_documents

name = "gemini_cli"
kind = "agent"
description = "Gemini CLI chat recordings (~/.gemini/tmp/<hash>/chats/session-*.jsonl or .json)"

OPTIONS = {
    "host": "the machine the session was recorded on",
    "host_ip": "its IP address (adds an identity row)",
}
"""``--option gemini_cli.KEY=VALUE`` settings."""

MESSAGE_TYPES = ("user", "gemini", "info", "error", "warning")
REWOUND = "tool calls of messages removed by a later $rewindTo (kept: they ran)"
SUPERSEDED = "earlier record of a tool call replaced by a later one"
MESSAGE_TIME = (
    "no timestamp of its own: its message's timestamp (recorded before the call ran, or when it "
    "completed), no end"
)
_EXIT = re.compile(r"^Exit Code: (-?\d{1,10})$", re.MULTILINE)
_BACKGROUND = re.compile(
    r"^(Command moved to background \(PID: \d+\)|Background PIDs: (?!\(none\)))", re.M
)


def sniff(head: bytes, filename: str) -> float:
    """Score: the session metadata line/document, or Gemini CLI message records."""
    score = 0.0
    for record in head_objects(head):
        if isinstance(record.get("sessionId"), str) and isinstance(record.get("projectHash"), str):
            return 0.95
        if (
            isinstance(record.get("id"), str)
            and isinstance(record.get("timestamp"), str)
            and "content" in record
            and record.get("type") in MESSAGE_TYPES
        ):
            score = max(score, 0.9 if record.get("type") == "gemini" else 0.6)
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:8192]
    # The legacy document, pretty-printed or on one line longer than the head.
    legacy = b'"sessionId"' in text and b'"projectHash"' in text and b'"messages"' in head
    if score == 0.0 and text.startswith(b"{") and legacy:
        return 0.9
    return score


@dataclass
class _Tool:
    """The latest record of one tool call and what was known when it first appeared."""

    line: int
    record: dict[str, Any]
    ts_end: int
    """When the completed call was recorded; the message's time for a call without its own."""
    notes: list[str]
    bound: int | None
    message_id: str | None
    model: str | None
    session: str | None
    from_message: bool = False
    """The call had no timestamp of its own: ``ts_end`` is its message's (ts_kind ``step``)."""


class _Reader:
    """State while reading one recording: times seen so far, tool calls, message order."""

    def __init__(self, source: Source, options: LoadOptions) -> None:
        self.source = source
        self.load = FileLoad(source, options, name, kind, TOOL_CALLS, unit="records")
        self.zone = options.zone_for(name)
        self.watermark: int | None = None
        """The latest time written on earlier records: a lower bound for later tool starts."""
        self.pending: list[int] = []
        self.tools: dict[str, _Tool] = {}
        self.messages: list[str] = []
        self.message_tools: dict[str, set[str]] = {}
        self.rewound: set[str] = set()
        self.session: str | None = None
        self.subagent = False

    def time(self, value: Any) -> int | None:
        """A time written in the file, remembered as an event; None when unreadable."""
        try:
            ns, _ = iso_time(value, "timestamp", self.zone)
        except fields.RowError:
            return None
        self.pending.append(ns)
        return ns

    def settle(self) -> None:
        """End of a record: its times become a lower bound for what comes next."""
        if self.pending:
            latest = max(self.pending)
            self.watermark = latest if self.watermark is None else max(self.watermark, latest)
            self.pending.clear()

    def metadata(self, record: dict[str, Any]) -> None:
        self.session = fields.text(record.get("sessionId")) or self.session
        if record.get("kind") == "subagent":
            self.subagent = True
        for key in ("startTime", "lastUpdated"):
            self.time(record.get(key))

    def message(self, msg: dict[str, Any], line: int, raw: str, plain: bool) -> int:
        """One message record; returns how many tool-call entries it held (each counted read)."""
        msg_id = fields.text(msg.get("id"))
        if msg_id and msg_id not in self.message_tools:
            self.messages.append(msg_id)
            self.message_tools[msg_id] = set()
        msg_ts = self.time(msg.get("timestamp"))
        thoughts = msg.get("thoughts")
        thought_times = (
            [
                t
                for t in (self.time(x.get("timestamp")) for x in thoughts if isinstance(x, dict))
                if t is not None
            ]
            if isinstance(thoughts, list)
            else []
        )
        calls = msg.get("toolCalls") if msg.get("type") == "gemini" else None
        if calls is None or calls == []:
            if plain:
                kind_ = msg.get("type")
                label = f"{kind_} message" if kind_ in MESSAGE_TYPES else "message of another type"
                self.load.skip(f"{label} without tool calls")
            return 0
        if not isinstance(calls, list):
            self.load.reject(line, "toolCalls is not a list", raw)
            return 1
        for entry in calls:
            try:
                self.tool(entry, msg, msg_id, msg_ts, thought_times, line)
            except fields.RowError as exc:
                self.load.reject(line, str(exc), raw)
        return len(calls)

    def tool(
        self,
        entry: Any,
        msg: dict[str, Any],
        msg_id: str | None,
        msg_ts: int | None,
        thought_times: list[int],
        line: int,
    ) -> None:
        """One ToolCallRecord: a new call, or a newer record replacing an earlier one."""
        if not isinstance(entry, dict):
            raise fields.RowError(f"tool call entry is not an object but {type(entry).__name__}")
        call_id = fields.text(entry.get("id"))
        if call_id is None:
            raise fields.RowError("tool call without an id")
        if fields.text(entry.get("name")) is None:
            raise fields.RowError(f"tool call {call_id} without a name")
        from_message = fields.is_blank(entry.get("timestamp")) and msg_ts is not None
        if fields.is_blank(entry.get("timestamp")) and msg_ts is None:
            raise fields.RowError(
                f"tool call {call_id}: timestamp is missing, and its message has none to use"
            )
        if from_message:
            ts_end, note = iso_time(msg.get("timestamp"), "message timestamp", self.zone)
        else:
            ts_end, note = iso_time(
                entry.get("timestamp"), f"tool call {call_id}: timestamp", self.zone
            )
            self.pending.append(ts_end)
        previous = self.tools.get(call_id)
        if previous is not None:
            self.load.skip(SUPERSEDED)
            bound = previous.bound
        elif from_message:
            bound = None
        else:
            earlier = [t for t in (self.watermark, msg_ts, *thought_times) if t is not None]
            bound = max((t for t in earlier if t < ts_end), default=None)
        self.tools[call_id] = _Tool(
            line=line,
            record=entry,
            ts_end=ts_end,
            notes=[note] if note else [],
            bound=bound if bound is None or bound < ts_end else None,
            message_id=msg_id,
            model=fields.text(msg.get("model")),
            session=self.session,
            from_message=from_message,
        )
        if msg_id:
            self.message_tools.setdefault(msg_id, set()).add(call_id)

    def rewind(self, target: Any) -> None:
        """``$rewindTo``: the messages from ``target`` on leave the conversation (all if unknown)."""
        index = self.messages.index(target) if target in self.messages else 0
        for msg_id in self.messages[index:]:
            self.rewound.update(self.message_tools.get(msg_id, ()))
        del self.messages[index:]


def read(source: Source, options: LoadOptions) -> LoadResult:
    """Read one chat recording into ``tool_calls`` rows (and, with the host options, an identity row)."""
    state = _Reader(source, options)
    load = state.load
    host, host_ip = host_options(options, name)
    legacy_document = not first_line(source.head()).endswith(b"}")
    for line, record, raw in json_documents(source, load.stats, load.sink):
        if isinstance(record.get("messages"), list) and "projectHash" in record:
            state.metadata(record)
            load.skip("session metadata")
            state.settle()
            for index, msg in enumerate(record["messages"], start=1):
                number = index if legacy_document else line
                if isinstance(msg, dict):
                    state.message(msg, number, json.dumps(msg, ensure_ascii=False)[:4096], True)
                else:
                    load.reject(number, "message is not an object", json.dumps(msg)[:4096])
                state.settle()
            continue
        if "$rewindTo" in record:
            load.skip("$rewindTo marker")
            state.rewind(record.get("$rewindTo"))
        elif "$set" in record:
            update = record["$set"]
            if not isinstance(update, dict):
                load.reject(line, "$set is not an object", raw)
                continue
            state.metadata(update)
            messages = update.get("messages")
            held = 0
            for msg in messages if isinstance(messages, list) else []:
                if isinstance(msg, dict):
                    held += state.message(msg, line, raw, False)
            if not held:
                load.skip("metadata update ($set)")
        elif isinstance(record.get("id"), str):
            state.message(record, line, raw, True)
        elif isinstance(record.get("sessionId"), str) and "projectHash" in record:
            load.skip("session metadata")
            state.metadata(record)
        else:
            load.reject(line, "not a Gemini CLI record (no id, sessionId, $set or $rewindTo)", raw)
        state.settle()
    return emit_calls(load, _rows(state, source, host, host_ip), host, host_ip)


def _rows(
    state: _Reader, source: Source, host: str | None, host_ip: str | None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """The finished rows, in call order; a call a rewind took back is noted."""
    parent = source.path.parent.name
    for call_id, tool in state.tools.items():
        row = _row(call_id, tool, state, parent, host, host_ip)
        if call_id in state.rewound:
            state.load.note(REWOUND)
        yield tool.line, row


def _result_text(result: Any) -> str | None:
    """The text of a tool's function response parts (``output``, else ``error``, else the JSON)."""
    parts = result if isinstance(result, list) else [result] if isinstance(result, dict) else []
    texts = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        response = (part.get("functionResponse") or {}).get("response")
        if isinstance(response, dict):
            for key in ("output", "error"):
                if isinstance(response.get(key), str):
                    texts.append(response[key])
                    break
            else:
                texts.append(json.dumps(response, ensure_ascii=False, sort_keys=True))
        elif isinstance(part.get("text"), str):
            texts.append(part["text"])
    return "\n".join(texts) if texts else None


def _row(
    call_id: str,
    tool: _Tool,
    state: _Reader,
    parent: str,
    host: str | None,
    host_ip: str | None,
) -> dict[str, Any]:
    entry = tool.record
    notes = list(tool.notes)
    if tool.from_message:
        notes.append(MESSAGE_TIME)
    elif tool.bound is None:
        notes.append(
            "no earlier record: start unknown, ts_start = when the completed call was recorded"
        )
    text = _result_text(entry.get("result"))
    if text is None and isinstance(entry.get("resultDisplay"), str):
        text = entry["resultDisplay"]
    exit_codes = _EXIT.findall(text or "")
    exit_code = int(exit_codes[-1]) if exit_codes else None
    status = entry.get("status")
    if exit_code is not None:
        is_error: bool | None = exit_code != 0
    else:
        is_error = (
            {"error": True, "success": False}.get(status) if isinstance(status, str) else None
        )
    if status == "cancelled":
        notes.append("cancelled: it may not have run to the end")
    if text and _BACKGROUND.search(text):
        notes.append("ran in the background: the process may outlive ts_end")
    run_id = fields.text(entry.get("agentId"))
    episode = tool.session
    if state.subagent:
        run_id = run_id or tool.session
        if parent and parent != "chats":
            episode = parent
    arguments = entry.get("args")
    return {
        "call_id": call_id,
        "run_id": run_id,
        "episode_id": episode,
        "step": None,
        "ts_start": tool.bound if tool.bound is not None else tool.ts_end,
        "ts_end": None if tool.from_message else tool.ts_end,
        "ts_kind": "step"
        if tool.from_message
        else "bracket"
        if tool.bound is not None
        else "inferred",
        "tool": fields.text(entry.get("name")),
        "command": command_from(arguments),
        "arguments": fields.text(arguments),
        "output": truncate_output(text),
        "exit_code": exit_code,
        "is_error": is_error,
        "host": host,
        "host_ip": host_ip,
        "model": tool.model,
        "train_step": None,
        "ts_note": "; ".join(notes) or None,
    }
