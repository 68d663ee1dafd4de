"""SWE-agent ``.traj`` trajectories: one row per executed step, timed from an anchor you give.

A .traj holds no wall-clock time, so it loads only with ``--option swe_agent.start`` (a naive
time in ``--tz swe_agent=ZONE``, UTC, noted); without it the loader raises an InputError naming
it. Step *k* starts at the anchor plus the ``execution_time`` of the steps before it and ends
``execution_time`` later (``inferred``; model time is not in the file, so times are a lower
bound). A trajectory without ``execution_time`` is spread evenly up to ``swe_agent.end`` when
given, else ordered 1 ns apart with no end (``step``), noted.

Mapping: ``command`` = ``action`` stripped; ``output`` = ``observation``; ``step`` = the step
number (also ``source_line``); ``call_id``/``tool``/``arguments`` from the matching ``history``
tool call, else ``<episode>#step-<n>`` and the action's first word when it is a SWE-agent command
(``SWE_AGENT_COMMANDS``), else ``bash``; ``episode_id`` = the problem statement id, else the file
name; ``model`` from the replay config. No exit code, host or run id. A history-only file's
messages are skipped. Layout reference and sources: ``tests/data/swe_agent/README.md``.
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
from .base import FileLoad, LoadOptions, LoadResult
from .calls import truncate
from .records import WHOLE_DOCUMENT_LIMIT, read_document

name = "swe_agent"
kind = "agent"
description = "SWE-agent .traj trajectory (durations only: needs --option swe_agent.start=ISO)"

OPTIONS = {
    "start": "ISO 8601 time the first step started (required: a .traj holds no wall clock)",
    "end": "ISO 8601 time the last step ended: spreads the steps of a trajectory without "
    "execution_time evenly between start and end",
}

SWE_AGENT_COMMANDS = frozenset(
    {
        # tools/defaults, windowed, search, edit_* bundles (and 0.x config/commands)
        *("open", "goto", "scroll_up", "scroll_down", "create"),
        *("find_file", "search_dir", "search_file", "edit", "insert", "str_replace_editor"),
        *("submit", "exit_forfeit", "filemap", "view_image"),
        # 0.x actions written when a limit ended the run
        *("exit_cost", "exit_context", "exit_api", "exit_format", "exit_error", "skip"),
        # EnIGMA (CTF) tools
        *("decompile", "disassemble", "debug_start", "debug_add_breakpoint", "debug_continue"),
        *("debug_step", "debug_exec", "debug_stop", "connect_start", "connect_sendline"),
        *("connect_exec", "connect_stop"),
        # tools/web_browser
        *("open_site", "close_site", "screenshot_site", "click_mouse", "double_click_mouse"),
        *("move_mouse", "drag_mouse", "type_text", "scroll_on_page", "execute_script_on_page"),
        *("navigate_back", "navigate_forward", "reload_page", "wait_time", "press_keys_on_page"),
        *("get_console_output", "set_browser_window_size"),
    }
)
"""Actions whose first word names SWE-agent's own tool; any other action runs in ``bash``."""

NOTE = "inferred: swe_agent.start + execution_time of earlier steps"
NO_DURATION = "no execution_time: end unknown, the next step placed 1 ns after its start"
IN_ORDER = (
    "no execution_time in the file: steps placed 1 ns apart from swe_agent.start, in order "
    "(not timed; --option swe_agent.end=ISO spreads them over the run)"
)
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
    load = FileLoad(source, options, name, kind, TOOL_CALLS, unit="steps")
    parsed = read_document(
        source,
        load.stats,
        load.sink,
        too_big=f"a .traj over {WHOLE_DOCUMENT_LIMIT >> 20} MiB is not read whole",
    )
    if parsed is None:
        return load.result()
    document, text = parsed
    steps = document.get("trajectory") if isinstance(document, dict) else None
    history = document.get("history") if isinstance(document, dict) else None
    if not isinstance(steps, list):
        if isinstance(history, list):
            load.stats.unit = "messages"
            load.skip("history-only .traj: no trajectory steps with durations", len(history))
        else:
            load.reject(
                1, "not a SWE-agent trajectory (no trajectory or history list)", text[:4096]
            )
        return load.result()
    anchor, anchor_note = _anchor(source, options, bool(steps))
    actioned = [
        step
        for step in steps
        if isinstance(step, dict) and isinstance(step.get("action"), str) and step["action"].strip()
    ]
    timed = any(not fields.is_blank(step.get("execution_time")) for step in actioned)
    finish = _end(options, anchor) if actioned else None
    spread: tuple[int, str] | None = None
    if finish is not None and timed:
        load.note("swe_agent.end not used: the steps have execution_time")
    elif finish is not None:
        span = finish[0] - anchor
        spread = (
            span,
            f"inferred: no execution_time in the file; swe_agent.start to swe_agent.end divided "
            f"evenly among its {len(actioned)} steps{anchor_note}{finish[1]}",
        )
    actions = _history_actions(history)
    replay = _replay_config(document.get("replay_config"))
    episode = _episode(source, replay)
    model = _model(replay)
    elapsed = 0
    previous: int | None = None
    index = 0
    for number, step in enumerate(steps, start=1):
        if not isinstance(step, dict):
            load.reject(
                number, f"step is not an object but {type(step).__name__}", str(step)[:4096]
            )
            continue
        action = step.get("action")
        if not isinstance(action, str) or not action.strip():
            load.skip("step without an action")
            continue
        index += 1
        command = action.strip()
        try:
            duration = _duration(step.get("execution_time"))
        except fields.RowError as exc:
            load.reject(number, str(exc), _raw(step))
            continue
        end = None
        ts_kind = "inferred"
        if spread is not None:
            start = anchor + spread[0] * (index - 1) // len(actioned)
            end = anchor + spread[0] * index // len(actioned)
            notes = [spread[1]]
        elif not timed:
            start = anchor + index - 1
            ts_kind = "step"
            notes = [f"{IN_ORDER}{anchor_note}"]
        else:
            start = anchor + elapsed
            if previous is not None and start <= previous:
                start = previous + 1
                elapsed = start - anchor
            notes = [f"{NOTE}{anchor_note}"]
            if duration is None:
                notes.append(NO_DURATION)
                elapsed += 1
            else:
                end = start + duration
                elapsed += duration
        previous = start
        call = actions[number - 1] if number - 1 < len(actions) else None
        call_id = tool = arguments = None
        if call is not None and _same_action(call.get("action"), command):
            call_id, tool, arguments = _tool_call(call)
        row = {
            "call_id": call_id or f"{episode}#step-{number}",
            "run_id": None,
            "episode_id": episode,
            "step": number,
            "ts_start": start,
            "ts_end": end,
            "ts_kind": ts_kind,
            "tool": tool or _tool_of(command),
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
        }
        load.emit(row, number)
    return load.result()


def _same_action(value: Any, command: str) -> bool:
    return isinstance(value, str) and value.strip() == command


def _tool_of(command: str) -> str:
    """SWE-agent's own command named by the action's first word, else ``bash``."""
    words = command.split(None, 1)
    return words[0] if words and words[0] in SWE_AGENT_COMMANDS else "bash"


def _option_time(options: LoadOptions, key: str, example: str) -> tuple[int, str] | None:
    """The ``swe_agent.<key>`` option as ns and the note suffix for an assumed zone (None: not
    given)."""
    value = options.option(name, key)
    if value is None or not value.strip():
        return None
    try:
        ns, note = parse_iso(value, default_tz=options.zone_for(name, UTC))
    except TimeParseError:
        raise OptionError(
            f"swe_agent.{key}: not an ISO 8601 time: {value!r} (e.g. {example})"
        ) from None
    return ns, f"; swe_agent.{key} had {note}" if note else ""


def _end(options: LoadOptions, anchor: int) -> tuple[int, str] | None:
    """The ``swe_agent.end`` option, after ``swe_agent.start``."""
    end = _option_time(options, "end", "2025-12-02T06:40:00Z")
    if end is not None and end[0] <= anchor:
        raise OptionError(
            f"swe_agent.end ({options.option(name, 'end')}) is not after swe_agent.start"
        )
    return end


def _anchor(source: Source, options: LoadOptions, needed: bool) -> tuple[int, str]:
    """The ``swe_agent.start`` option (0 when not needed and not given)."""
    start = _option_time(options, "start", "2025-12-02T06:10:00Z")
    if start is not None:
        return start
    if not needed:
        return 0, ""
    raise InputError(
        f"{source.display}: SWE-agent .traj files carry no timestamps; pass "
        "--option swe_agent.start=<ISO time of the first step> to anchor them"
    )


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
