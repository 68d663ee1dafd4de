"""SWE-agent ``.traj`` trajectories: one row per executed step, timed from an anchor you give.

Layout per SWE-agent ``sweagent/types.py`` (``TrajectoryStep``, ``HistoryItem``) and
``docs/usage/trajectories.md``: a JSON object with ``environment``, ``trajectory[]``,
``history[]``, ``info`` and ``replay_config``. Each trajectory step has ``action`` (the command
as executed in the container's shell, where SWE-agent's tools are installed as commands),
``observation``, ``thought``, ``state`` and ``execution_time`` (float seconds, a
``time.perf_counter()`` difference around the execution in ``agents/agents.py``).

**A .traj holds no wall-clock time at all**, so it is loaded only with an anchor:
``--option swe_agent.start=<ISO 8601 time when the first step started>`` (a naive time is read in
``--tz swe_agent=ZONE``, default UTC, and noted). Step *k* then starts at the anchor plus the
``execution_time`` of steps 1…k-1 and ends ``execution_time`` later (ts_kind ``inferred``; model
time between steps is not in the file, so later steps drift early: treat the times as a lower
bound and widen the join window). Without the option the loader raises an InputError naming it.
The wall clock can be read off the run's ``*.info.log``/``*.debug.log`` lines (naive local time).

Mapping: ``command`` = ``action``; ``output`` = ``observation`` (first 2000 characters);
``step`` = the 1-based step number (also ``source_line``: records are trajectory steps,
``stats.unit`` = ``steps``); ``call_id``, ``tool`` and ``arguments`` come from the matching
``history`` action message's ``tool_calls[0]`` (function-calling agents; the n-th action message
belongs to the n-th step when their ``action`` texts agree); ``episode_id`` =
``replay_config.problem_statement.id``, else the file name without ``.traj`` (SWE-agent names the
file after the instance); ``model`` = ``replay_config.agent.model.name``. No exit code, host or
run id is recorded in a .traj. A history-only file (demonstrations) has no steps to time: its
messages are counted as skipped.
"""

from __future__ import annotations

import json
from datetime import UTC
from decimal import Decimal, InvalidOperation
from typing import Any

from ..errors import InputError, OptionError
from ..schema import TOOL_CALLS
from ..sources import Source
from ..timeparse import TimeParseError, parse_iso
from . import fields
from .base import Batcher, LoadOptions, LoadResult, LoadStats, RejectSink
from .calls import truncate
from .records import WHOLE_DOCUMENT_LIMIT, read_document

name = "swe_agent"
kind = "agent"
description = "SWE-agent .traj trajectory (durations only: needs --option swe_agent.start=ISO)"

OPTIONS = {
    "start": "ISO 8601 time the first step started (required: a .traj holds no wall clock)",
}
"""``--option swe_agent.KEY=VALUE`` settings (see the module docstring)."""


def sniff(head: bytes, filename: str) -> float:
    """Score: a JSON object with SWE-agent's ``trajectory``/``history`` keys and step fields."""
    sample = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not sample.startswith(b"{"):
        return 0.0
    if b'"tool_call_metadata"' in sample or b'"extras"' in sample:  # OpenHands events
        return 0.0
    steps = (
        b'"trajectory"' in sample
        and b'"response"' in sample
        and b'"thought"' in sample
        and (b'"execution_time"' in sample or b'"state"' in sample)
    )
    history = b'"history"' in sample and b'"message_type"' in sample and b'"agent"' in sample
    if not (steps or history):
        return 0.0
    if filename.lower().endswith(".traj"):
        return 0.95
    return 0.8 if steps else 0.6


def read(source: Source, options: LoadOptions) -> LoadResult:
    """Read one .traj into ``tool_calls`` rows anchored at ``--option swe_agent.start``."""
    stats = LoadStats(path=source.display, format=name, kind=kind, unit="steps")
    sink = RejectSink(source, stats, options.strict)
    batch = Batcher(TOOL_CALLS)
    parsed = read_document(
        source,
        stats,
        sink,
        too_big=f"a .traj over {WHOLE_DOCUMENT_LIMIT >> 20} MiB is not read whole",
    )
    if parsed is None:
        return LoadResult(kind=kind, table=batch.table(), stats=stats, rejects=sink.rejects)
    document, text = parsed
    steps = document.get("trajectory") if isinstance(document, dict) else None
    history = document.get("history") if isinstance(document, dict) else None
    if not isinstance(steps, list):
        if isinstance(history, list):
            stats.unit = "messages"
            stats.read += len(history)
            stats.skipped["history-only .traj: no trajectory steps with durations"] += len(history)
        else:
            stats.read += 1
            sink.reject(
                1, "not a SWE-agent trajectory (no trajectory or history list)", text[:4096]
            )
        return LoadResult(kind=kind, table=batch.table(), stats=stats, rejects=sink.rejects)
    anchor, anchor_note = _anchor(source, options, bool(steps))
    actions = _history_actions(history)
    replay = _replay_config(document.get("replay_config"))
    episode = _episode(source, replay)
    model = _model(replay)
    elapsed = 0
    for number, step in enumerate(steps, start=1):
        stats.read += 1
        if not isinstance(step, dict):
            sink.reject(
                number, f"step is not an object but {type(step).__name__}", str(step)[:4096]
            )
            continue
        command = step.get("action")
        if not isinstance(command, str) or not command.strip():
            stats.skipped["step without an action"] += 1
            continue
        notes = [f"inferred: swe_agent.start + execution_time of earlier steps{anchor_note}"]
        try:
            duration = _duration(step.get("execution_time"))
        except fields.RowError as exc:
            sink.reject(number, str(exc), _raw(step))
            continue
        start = anchor + elapsed
        end = None
        if duration is None:
            notes.append("no execution_time: duration unknown, 0 assumed for later steps")
        else:
            end = start + duration
            elapsed += duration
        call = actions[number - 1] if number - 1 < len(actions) else None
        call_id = tool = arguments = None
        if call is not None and call.get("action") == command:
            call_id, tool, arguments = _tool_call(call)
        row = {
            "call_id": call_id,
            "run_id": None,
            "episode_id": episode,
            "step": number,
            "ts_start": start,
            "ts_end": end,
            "ts_kind": "inferred",
            "tool": tool,
            "command": command,
            "arguments": arguments,
            "output": truncate(fields.text(step.get("observation"))),
            "exit_code": None,
            "is_error": None,
            "host": None,
            "host_ip": None,
            "model": model,
            "train_step": None,
            "ts_note": "; ".join(notes),
            "source_format": name,
            "source_path": source.display,
            "source_line": number,
        }
        batch.add(row)
        stats.loaded += 1
        stats.notes[str(row["ts_note"])] += 1
    return LoadResult(kind=kind, table=batch.table(), stats=stats, rejects=sink.rejects)


def _anchor(source: Source, options: LoadOptions, needed: bool) -> tuple[int, str]:
    """The ``swe_agent.start`` option as ns and the note suffix for an assumed zone."""
    value = options.option(name, "start")
    if value is None or not value.strip():
        if not needed:
            return 0, ""
        raise InputError(
            f"{source.display}: SWE-agent .traj files carry no timestamps; pass "
            "--option swe_agent.start=<ISO time of the first step> to anchor them"
        )
    try:
        ns, note = parse_iso(value, default_tz=options.zone_for(name, UTC))
    except TimeParseError:
        raise OptionError(
            f"swe_agent.start: not an ISO 8601 time: {value!r} (e.g. 2025-12-02T06:10:00Z)"
        ) from None
    return ns, f"; swe_agent.start had {note}" if note else ""


def _duration(value: Any) -> int | None:
    """``execution_time`` seconds as ns (exact for the decimal text of the float)."""
    if fields.is_blank(value):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise fields.RowError(f"execution_time is not a number of seconds: {value!r}")
    try:
        seconds = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
    except InvalidOperation:
        raise fields.RowError(f"execution_time is not a number of seconds: {value!r}") from None
    if not seconds.is_finite() or seconds < 0 or seconds > 10**7:
        raise fields.RowError(f"execution_time out of range: {value!r}")
    return int(seconds * 1_000_000_000)


def _history_actions(history: Any) -> list[dict[str, Any]]:
    """History messages that carry an action, in order (one per executed step)."""
    if not isinstance(history, list):
        return []
    return [
        item
        for item in history
        if isinstance(item, dict)
        and (
            item.get("message_type") == "action"
            or (item.get("role") == "assistant" and "action" in item)
        )
    ]


def _tool_call(message: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    calls = message.get("tool_calls")
    if not isinstance(calls, list) or not calls or not isinstance(calls[0], dict):
        return None, None, None
    function = calls[0].get("function")
    if not isinstance(function, dict):
        function = {}
    arguments = function.get("arguments")
    if arguments is not None and not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    return fields.text(calls[0].get("id")), fields.text(function.get("name")), arguments


def _replay_config(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):  # ValueError: bad JSON, an int of 4,300+ digits
            return {}
    return value if isinstance(value, dict) else {}


def _episode(source: Source, replay: dict[str, Any]) -> str:
    problem = replay.get("problem_statement")
    if isinstance(problem, dict) and fields.text(problem.get("id")):
        return str(fields.text(problem.get("id")))
    return source.name.removesuffix(".traj")


def _model(replay: dict[str, Any]) -> str | None:
    agent = replay.get("agent")
    model = agent.get("model") if isinstance(agent, dict) else None
    return fields.text(model.get("name")) if isinstance(model, dict) else None


def _raw(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)[:4096]
    except (TypeError, ValueError, RecursionError):
        return str(value)[:4096]
