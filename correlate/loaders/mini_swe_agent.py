"""mini-swe-agent trajectories (``*.traj.json``); commands are timed in ``trajectory_format``
``mini-swe-agent-1.1`` (mini-swe-agent v2), earlier files are recognised but hold no times.

One row per assistant action: ``ts_start``/``ts_end`` = the assistant message's and its
observation's ``extra.timestamp`` (``bracket``; Unix seconds are zone-free); ``command`` = the
action's ``command``; ``exit_code`` = ``returncode``; ``is_error`` = non-zero exit or an
``exception_info``; ``output`` = ``raw_output``; ``call_id`` = ``tool_call_id``; ``step`` = the
model turn; ``episode_id`` = ``instance_id``, else the file name; ``model`` from the config.
Observations pair with actions by ``tool_call_id``, else in order. ``host`` is empty (the
container name is never saved). Older formats have no timestamps: every message is skipped with
that reason. Records are messages (``source_line`` = the message index). No ``--option`` keys.
Layout reference and sources: ``tests/data/mini_swe_agent/README.md``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..schema import TOOL_CALLS
from ..sources import Source
from ..timeparse import TimeParseError, parse_epoch
from . import fields
from .base import FileLoad, LoadOptions, LoadResult
from .calls import truncate
from .records import WHOLE_DOCUMENT_LIMIT, read_document

name = "mini_swe_agent"
kind = "agent"
description = "mini-swe-agent .traj.json (v2 'mini-swe-agent-1.1': per-command brackets)"

NO_TIMES = "no timestamps in this trajectory format (only mini-swe-agent-1.1 files have them)"


def sniff(head: bytes, filename: str) -> float:
    """Score: ``mini_version``/``trajectory_format`` in a trajectory object, or a bare message list
    with mini-swe-agent's ``<returncode>`` observations in a ``.traj.json`` file."""
    sample = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if sample.startswith(b"{"):
        if b'"messages"' not in sample and b'"trajectory_format"' not in sample:
            return 0.0
        if b'"mini-swe-agent' in sample or b'"mini_version"' in sample:
            return 0.95
        if b"minisweagent." in sample:
            return 0.9
        return 0.0
    if (
        sample.startswith(b"[")
        and filename.lower().endswith(".traj.json")
        and b'"role"' in sample
        and (b"<returncode>" in sample or b"mswea_bash_command" in sample)
    ):
        return 0.6
    return 0.0


@dataclass
class _Action:
    """One command an assistant message asked for, waiting for its observation."""

    line: int
    step: int
    command: Any
    call_id: str | None
    tool: str | None
    arguments: str | None
    start: Any
    model: str | None
    end: Any = None
    observation: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def read(source: Source, options: LoadOptions) -> LoadResult:
    """Read one mini-swe-agent trajectory into ``tool_calls`` rows."""
    load = FileLoad(source, options, name, kind, TOOL_CALLS, unit="messages")
    parsed = read_document(
        source,
        load.stats,
        load.sink,
        too_big=f"a trajectory over {WHOLE_DOCUMENT_LIMIT >> 20} MiB is not read whole",
    )
    if parsed is None:
        return load.result()
    document, text = parsed
    if isinstance(document, list):
        messages: Any = document
        info: dict[str, Any] = {}
        timed = False
    elif isinstance(document, dict) and isinstance(document.get("messages"), list):
        messages = document["messages"]
        info = _object(document.get("info"))
        timed = _has_times(messages)
    else:
        load.reject(1, "not a mini-swe-agent trajectory (no messages list)", text[:4096])
        return load.result()
    if not timed:
        load.skip(NO_TIMES, len(messages))
        return load.result()
    episode = fields.text(document.get("instance_id")) or source.name.removesuffix(
        ".json"
    ).removesuffix(".traj")
    model = _config_model(info)
    actions: list[_Action] = []
    pending: list[_Action] = []
    turn = 0
    for line, message in enumerate(messages, start=1):
        if not isinstance(message, dict):
            load.reject(
                line, f"message is not an object but {type(message).__name__}", str(message)[:4096]
            )
            continue
        role = message.get("role")
        extra = _object(message.get("extra"))
        if role == "assistant":
            turn += 1
            found = _actions(message, extra)
            if not found:
                load.skip("assistant message without an action")
                continue
            pending = []
            response = _object(extra.get("response"))
            for command, call_id, tool, arguments in found:
                action = _Action(
                    line=line,
                    step=turn,
                    command=command,
                    call_id=call_id,
                    tool=tool,
                    arguments=arguments,
                    start=extra.get("timestamp"),
                    model=model or fields.text(response.get("model")),
                )
                actions.append(action)
                pending.append(action)
        elif _is_observation(message, extra):
            target = _match(pending, fields.text(message.get("tool_call_id")))
            if target is None:
                load.skip("observation without a pending action")
                continue
            target.observation = message
            target.end = extra.get("timestamp")
            load.skip("observation (folded into its action's row)")
        else:
            load.skip(f"{role or 'untyped'} message (not a command)")
    for action in actions:
        try:
            row = _row(action, options)
        except fields.RowError as exc:
            load.reject(action.line, str(exc), _raw(action))
            continue
        row["episode_id"] = episode
        load.emit(row, action.line)
    return load.result()


def _has_times(messages: list[Any]) -> bool:
    """True when any message carries ``extra.timestamp`` (mini-swe-agent-1.1)."""
    return any(
        isinstance(m, dict)
        and isinstance(m.get("extra"), dict)
        and not fields.is_blank(m["extra"].get("timestamp"))
        for m in messages
    )


def _config_model(info: dict[str, Any]) -> str | None:
    config = info.get("config")
    model = config.get("model") if isinstance(config, dict) else None
    return fields.text(model.get("model_name")) if isinstance(model, dict) else None


def _actions(
    message: dict[str, Any], extra: dict[str, Any]
) -> list[tuple[Any, str | None, str | None, str | None]]:
    """(command, call id, tool, arguments JSON) for each action of an assistant message."""
    tool_calls = message.get("tool_calls")
    if not isinstance(tool_calls, list):
        tool_calls = []
    by_id = {
        call.get("id"): call
        for call in tool_calls
        if isinstance(call, dict) and isinstance(call.get("id"), str)
    }
    found: list[tuple[Any, str | None, str | None, str | None]] = []
    actions = extra.get("actions")
    for action in actions if isinstance(actions, list) else []:
        if not isinstance(action, dict):
            found.append((action, None, None, None))
            continue
        call_id = fields.text(action.get("tool_call_id"))
        call = by_id.get(call_id) if call_id else None
        function = call.get("function") if isinstance(call, dict) else None
        tool = fields.text(function.get("name")) if isinstance(function, dict) else None
        arguments = function.get("arguments") if isinstance(function, dict) else None
        if arguments is not None and not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False)
        if arguments is None and isinstance(action.get("command"), str):
            arguments = json.dumps({"command": action["command"]}, ensure_ascii=False)
        found.append((action.get("command"), call_id, tool or "bash", arguments))
    return found


def _is_observation(message: dict[str, Any], extra: dict[str, Any]) -> bool:
    if message.get("role") == "tool":
        return True
    return message.get("role") == "user" and ("returncode" in extra or "raw_output" in extra)


def _match(pending: list[_Action], call_id: str | None) -> _Action | None:
    """The action an observation answers: the one with its tool_call_id, else the first open one."""
    open_actions = [a for a in pending if a.observation is None]
    if call_id is not None:
        for action in open_actions:
            if action.call_id == call_id:
                return action
        open_actions = [a for a in open_actions if a.call_id is None]
    return open_actions[0] if open_actions else None


def _row(action: _Action, options: LoadOptions) -> dict[str, Any]:
    if not isinstance(action.command, str) or not action.command.strip():
        raise fields.RowError(f"action has no command: {action.command!r}"[:200])
    if fields.is_blank(action.start):
        raise fields.RowError("assistant message has no extra.timestamp")
    notes: list[str] = []
    try:
        start, note = parse_epoch(action.start, unit=options.epoch_unit, expected="s")
    except TimeParseError as exc:
        raise fields.RowError(f"assistant extra.timestamp: {exc}") from None
    if note:
        notes.append(note)
    end = None
    observation = action.observation
    extra = _object(observation.get("extra")) if observation else {}
    if observation is None:
        notes.append("no observation (not run, or the run stopped)")
    elif fields.is_blank(action.end):
        notes.append("observation has no timestamp")
    else:
        try:
            end, note = parse_epoch(action.end, unit=options.epoch_unit, expected="s")
        except TimeParseError as exc:
            raise fields.RowError(f"observation extra.timestamp: {exc}") from None
        if note and note not in notes:
            notes.append(note)
        if end < start:
            notes.append("end before start: end ignored")
            end = None
    exit_code = fields.integer(extra.get("returncode"), "returncode")
    exception = fields.text(extra.get("exception_info"))
    is_error = None
    if observation is not None:
        is_error = bool(exception) or (exit_code is not None and exit_code != 0)
    output = extra.get("raw_output")
    if output is None and observation is not None:
        output = observation.get("content")
    return {
        "call_id": action.call_id,
        "run_id": None,
        "step": action.step,
        "ts_start": start,
        "ts_end": end,
        "ts_kind": "bracket",
        "tool": action.tool,
        "command": action.command,
        "arguments": action.arguments,
        "output": truncate(_content(output)),
        "exit_code": exit_code,
        "is_error": is_error,
        "host": None,
        "host_ip": None,
        "model": action.model,
        "train_step": None,
        "ts_note": "; ".join(notes) or None,
    }


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _content(value: Any) -> str | None:
    if isinstance(value, list):
        return "\n".join(
            str(item.get("text")) if isinstance(item, dict) and "text" in item else str(item)
            for item in value
        )
    return value if isinstance(value, str) else fields.text(value)


def _raw(action: _Action) -> str:
    value = {"command": action.command, "tool_call_id": action.call_id, "timestamp": action.start}
    try:
        return json.dumps(value, ensure_ascii=False)[:4096]
    except (TypeError, ValueError, RecursionError):
        return str(value)[:4096]
