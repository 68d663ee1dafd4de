"""OpenHands (V0) event streams: a trajectory export (a JSON list of events, or
``{"trajectory": [...]}``) or an evaluation ``output.jsonl``; one row per tool action.

Each action that does something in the runtime is one row, its observation (matched by
``cause``) folded in; other actions are skipped. ``ts_start``/``ts_end`` = the action's and the
observation's ``timestamp`` (``bracket``); ``call_id`` = ``tool_call_id``, else ``event-<id>``;
``step`` = the event ``id``; ``command`` = ``args.command``/``args.code``; ``exit_code`` from the
observation's metadata, except ``-1`` (OpenHands stopped waiting: left empty and noted, the
command may still run); ``host`` = the runtime's hostname, else the nearest one seen in the file;
``episode_id`` = the ``episode`` option, else the file name (an ``output.jsonl`` line: its
``instance_id``; ``run_id`` from ``metadata.eval_output_dir``).

Timestamps have no zone (the server's local time). ``model_response.created`` (Unix seconds)
reveals the offset: when at least two actions agree on it within sane delays it is applied and
noted, else it is only suggested (times stay UTC, with a warning). ``--tz openhands=ZONE`` always
wins. Records are events (``source_line`` = the index in the list). Field reference and sources:
``tests/data/openhands/README.md``.
"""

from __future__ import annotations

import json
import re
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import PurePosixPath
from typing import Any

from ..schema import TOOL_CALLS
from ..sources import Source
from ..timeparse import TimeParseError, parse_epoch, parse_iso, zone_name
from . import fields
from .base import FileLoad, LoadOptions, LoadResult
from .calls import truncate
from .records import WHOLE_DOCUMENT_LIMIT, json_line_records, read_document

name = "openhands"
kind = "agent"
description = (
    "OpenHands V0 trajectory (JSON list of events) or evaluation output.jsonl: "
    "action/observation brackets"
)

OPTIONS = {
    "episode": "episode id for a trajectory export's rows (default: the file name without "
    ".json; an output.jsonl names each instance)",
}
"""``--option openhands.KEY=VALUE`` settings (see the module docstring)."""

NOT_TOOL_ACTIONS = frozenset(
    {
        "message",
        "system",
        "start",
        "think",
        "finish",
        "reject",
        "recall",
        "change_agent_state",
        "null",
        "pause",
        "resume",
        "stop",
        "summarize",
        "condensation",
        "condensation_request",
        "delegate",
        "push",
        "send_pr",
    }
)
COMMAND_ARGS = {"run": "command", "run_ipython": "code"}
STILL_RUNNING = "exit_code -1: command still running when OpenHands stopped waiting (ts_end)"


_EVAL_OUTPUT = re.compile(rb'^\{\s*"instance_id"\s*:')


def sniff(head: bytes, filename: str) -> float:
    """Score: a JSON list (or ``{"trajectory": [...]}``) of events with OpenHands' keys, or an
    evaluation ``output.jsonl`` (a line per instance starting with ``instance_id``)."""
    sample = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if _EVAL_OUTPUT.match(sample):
        first, newline, _ = sample.partition(b"\n")
        if b'"test_result"' not in first:
            return 0.0
        if b'"history"' in first or b'"agent_class"' in first or b'"instruction"' in first:
            return 0.9
        # A long git_patch can push the rest of the first instance past the head.
        return 0.0 if newline else 0.7
    if sample.startswith(b"{"):
        if not sample[1:].lstrip().startswith(b'"trajectory"'):
            return 0.0
    elif not sample.startswith(b"["):
        return 0.0
    keys = (b'"id"', b'"timestamp"', b'"source"')
    if not all(key in sample for key in keys):
        return 0.0
    if not (b'"action"' in sample or b'"observation"' in sample):
        return 0.0
    if b'"args"' in sample or b'"extras"' in sample:
        return 0.9 if b'"tool_call_metadata"' in sample or b'"cause"' in sample else 0.8
    return 0.0


def read(source: Source, options: LoadOptions) -> LoadResult:
    """Read one OpenHands trajectory (or evaluation output) into ``tool_calls`` rows."""
    load = FileLoad(source, options, name, kind, TOOL_CALLS, unit="events")
    zone = options.zone_for(name, UTC)
    given = name in options.zones or "*" in options.zones
    if _EVAL_OUTPUT.match(source.head().lstrip(b"\xef\xbb\xbf \t\r\n")):
        for line, record, raw in json_line_records(source, load.stats, load.sink):
            _instance(record, line, raw, _Count(load, line), zone, given)
        return load.result()
    parsed = read_document(
        source,
        load.stats,
        load.sink,
        too_big=f"a trajectory over {WHOLE_DOCUMENT_LIMIT >> 20} MiB is not read whole",
    )
    if parsed is None:
        return load.result()
    document, text = parsed
    if isinstance(document, dict) and isinstance(document.get("trajectory"), list):
        document = document["trajectory"]
    if not isinstance(document, list):
        load.reject(1, "not an OpenHands event list", text[:4096])
        return load.result()
    episode = options.option(name, "episode") or source.name.removesuffix(".json")
    for line, row in _episode(document, zone, given, _Count(load)):
        row["episode_id"] = episode
        load.emit(row, line)
    return load.result()


class _Count:
    """Where an episode's events are counted: the event's own number (a trajectory export), or
    the instance's line with the event's index in the reason (an evaluation ``output.jsonl``)."""

    def __init__(self, load: FileLoad, line: int | None = None) -> None:
        self.load, self.line = load, line
        self.prefix = ""

    def warn(self, text: str) -> None:
        """A warning for the load summary, counted once per file."""
        if text not in self.load.stats.notes:
            self.load.note(text)

    def at(self, index: int) -> int:
        return self.line if self.line is not None else index

    def skip(self, reason: str) -> None:
        self.load.skip(reason)

    def reject(self, index: int, reason: str, raw: str) -> None:
        where = f"{self.prefix}event {index}: " if self.line is not None else ""
        self.load.reject(self.at(index), f"{where}{reason}", raw)


def _instance(
    record: dict[str, Any],
    line: int,
    raw: str,
    count: _Count,
    zone: tzinfo,
    given: bool,
) -> None:
    """One line of an evaluation ``output.jsonl``: an instance and its history (one episode)."""
    instance = fields.text(record.get("instance_id"))
    if instance is None or isinstance(record.get("instance_id"), (dict, list)):
        count.load.reject(line, "not an OpenHands evaluation instance (no instance_id)", raw)
        return
    history = record.get("history")
    if history is None or history == []:
        count.skip("instance with an empty history (the run failed before the agent started)")
        return
    if not isinstance(history, list):
        count.load.reject(line, f"instance {instance}: history is not a list", raw)
        return
    events = _flatten_pairs(history)
    if _is_v1(events):
        count.load.reject(
            line,
            f"instance {instance}: OpenHands V1 (software-agent-sdk) events are not read "
            "(this loader reads V0 actions and observations)",
            raw,
        )
        return
    count.prefix = f"instance {instance}, "
    metadata = record.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    run_id = _run_id(metadata.get("eval_output_dir"))
    llm = metadata.get("llm_config")
    model = fields.text(llm.get("model")) if isinstance(llm, dict) else None
    for at, row in _episode(events, zone, given, count):
        if row["call_id"].startswith("event-"):
            row["call_id"] = f"{instance}#{row['call_id']}"
        row.update(episode_id=instance, run_id=run_id, model=row["model"] or model)
        count.load.emit(row, at)


def _flatten_pairs(history: list[Any]) -> list[Any]:
    """The old ``[[action, observation], ...]`` history as one event list (each observation
    answering its pair's action); an event list as it is."""
    if not any(isinstance(item, list) for item in history):
        return history
    events: list[Any] = []
    for item in history:
        if not (isinstance(item, list) and len(item) == 2):
            events.append(item)
            continue
        action, observation = item
        if (
            isinstance(action, dict)
            and isinstance(observation, dict)
            and observation.get("cause") is None
            and action.get("id") is not None
        ):
            observation = {**observation, "cause": action.get("id")}
        events.extend((action, observation))
    return events


def _is_v1(events: list[Any]) -> bool:
    """Every event a software-agent-sdk event (``kind``), none a V0 action or observation."""
    dicts = [e for e in events if isinstance(e, dict)]
    return bool(dicts) and all(
        "kind" in e and "action" not in e and "observation" not in e for e in dicts
    )


def _run_id(value: Any) -> str | None:
    """``<dataset>/<agent>/<model>_maxiter_<n>...``: the run's name from ``eval_output_dir``."""
    text = fields.text(value)
    if text is None:
        return None
    parts = [part for part in PurePosixPath(text.replace("\\", "/")).parts if part != "/"]
    return "/".join(parts[-3:]) or None


def _episode(
    events: list[Any], zone: tzinfo, given: bool, count: _Count
) -> list[tuple[int, dict[str, Any]]]:
    """The rows of one conversation's events (without episode or provenance), with their lines;
    the caller emits them (a row is counted read then)."""
    actions: dict[Any, tuple[int, dict[str, Any]]] = {}
    order: list[tuple[int, dict[str, Any]]] = []
    observations: dict[Any, dict[str, Any]] = {}
    hostnames: list[tuple[int, str]] = []
    other: set[Any] = set()
    for index, event in enumerate(events, start=1):
        if not isinstance(event, dict):
            count.reject(
                index, f"event is not an object but {type(event).__name__}", str(event)[:4096]
            )
            continue
        host = _hostname(event)
        if host:
            hostnames.append((index, host))
        if "action" in event:
            action = event.get("action")
            if isinstance(action, str) and action in NOT_TOOL_ACTIONS:
                count.skip(f"{action} action (not a tool call)")
                other.add(_key(event.get("id")))
                continue
            order.append((index, event))  # counted once converted (loaded or rejected)
            if event.get("id") is not None:
                actions.setdefault(_key(event.get("id")), (index, event))
        elif "observation" in event:
            cause = _key(event.get("cause"))
            kind_name = event.get("observation") or "untyped"
            if cause is not None and cause in actions and cause not in observations:
                observations[cause] = event
                count.skip("observation (folded into its action's row)")
            elif cause is None:
                count.skip(f"{kind_name} observation (no cause: not a tool result)")
            elif cause in other:
                count.skip(f"{kind_name} observation of a non-tool action")
            else:
                count.skip(f"{kind_name} observation of an unknown or already answered action")
        else:
            count.reject(index, "neither an action nor an observation", _raw(event))
    clock = _clock(events, zone, given)
    if clock.warning and order:
        count.warn(clock.warning)
    rows: list[tuple[int, dict[str, Any]]] = []
    for index, event in order:
        observation = observations.get(_key(event.get("id")))
        try:
            row = _row(event, observation, clock)
        except fields.RowError as exc:
            action = event.get("action")
            label = f"{action if isinstance(action, str) and action else 'untyped'} action {event.get('id')}"
            count.reject(index, f"{label}: {exc}", _raw(event))
            continue
        row["host"] = row["host"] or _nearest_host(hostnames, index)
        rows.append((count.at(index), row))
    return rows


def _key(value: Any) -> Any:
    """Event ids and causes compare as text (``7`` and ``"7"`` are the same event)."""
    return None if value is None or isinstance(value, (dict, list)) else str(value)


def _metadata(observation: dict[str, Any] | None) -> dict[str, Any]:
    extras = observation.get("extras") if observation else None
    metadata = extras.get("metadata") if isinstance(extras, dict) else None
    return metadata if isinstance(metadata, dict) else {}


def _hostname(event: dict[str, Any]) -> str | None:
    return fields.text(_metadata(event).get("hostname"))


def _nearest_host(hostnames: list[tuple[int, str]], line: int) -> str | None:
    before = [host for at, host in hostnames if at <= line]
    if before:
        return before[-1]
    return hostnames[0][1] if hostnames else None


def _model_response(event: dict[str, Any]) -> dict[str, Any]:
    metadata = event.get("tool_call_metadata")
    response = metadata.get("model_response") if isinstance(metadata, dict) else None
    return response if isinstance(response, dict) else {}


FIX_MIN_ACTIONS = 2
"""Actions whose ``created`` must agree on one offset for it to be fixed."""
FIX_DELAY_S = (-5.0, 300.0)
"""Seconds from ``model_response.created`` to the action's timestamp that still fix an offset."""
MAX_OFFSET_MIN = 14 * 60
"""The largest UTC offset a zone has (UTC+14:00)."""


@dataclass(frozen=True)
class _Clock:
    """How one episode's naive times are read: the zone, and what the row note says."""

    zone: tzinfo
    naive_note: str | None = None
    """Replaces the parser's "no zone: assumed ..." note (an offset fixed by the file)."""
    hint: str | None = None
    """Added to the note: an offset the file implies that differs from the zone in use."""
    warning: str | None = None
    """For the file's load notes: an offset suggested but not fixed."""


def _offset_text(minutes: int) -> str:
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours:02d}:{rest:02d}"


def _clock(events: list[Any], zone: tzinfo, given: bool) -> _Clock:
    """The zone for one episode's naive times from ``--tz`` and ``model_response.created``."""
    differences = []  # naive time read as UTC minus created, in seconds
    zone_offsets = []  # the offset of ``zone`` at each created time, in minutes
    for event in events:
        if not isinstance(event, dict) or "action" not in event:
            continue
        created = _model_response(event).get("created")
        stamp = event.get("timestamp")
        if created is None or not isinstance(stamp, str):
            continue
        try:
            naive_utc, note = parse_iso(stamp, default_tz=UTC)
            created_ns, _ = parse_epoch(created, unit="s", expected="s")
        except TimeParseError:
            continue
        if note is None:  # the timestamp has its own offset: nothing to infer
            return _Clock(zone)
        differences.append((naive_utc - created_ns) / 1e9)
        local = datetime.fromtimestamp(created_ns / 1e9, UTC).astimezone(zone)
        zone_offsets.append((local.utcoffset() or timedelta()).total_seconds() / 60)
    if not differences:
        return _Clock(zone)
    quarters = [round(d / 900) for d in differences]
    delays = [d - q * 900 for d, q in zip(differences, quarters, strict=True)]
    fixed = (
        len(differences) >= FIX_MIN_ACTIONS
        and len(set(quarters)) == 1
        and all(FIX_DELAY_S[0] <= delay <= FIX_DELAY_S[1] for delay in delays)
    )
    median = statistics.median(differences) / 60
    minutes = quarters[0] * 15 if fixed else round(median / 15) * 15
    if abs(minutes) > MAX_OFFSET_MIN or (not fixed and abs(median - minutes) > 5):
        return _Clock(zone)  # not near any offset a zone can have: no evidence either way
    offset = _offset_text(minutes)
    differs = minutes != round(statistics.median(zone_offsets))
    if given:
        verb = "fixes" if fixed else "suggests"
        return _Clock(zone, hint=f"model_response.created {verb} {offset}" if differs else None)
    if fixed:
        return _Clock(
            timezone(timedelta(minutes=minutes)),
            naive_note=f"no zone: read at {offset}, fixed by model_response.created on "
            f"{len(differences)} actions",
        )
    if not differs:
        return _Clock(zone)
    why = (
        "one action"
        if len(differences) == 1
        else "actions disagree"
        if len(set(quarters)) > 1
        else "response-to-action delays out of range"
    )
    return _Clock(
        zone,
        hint=f"model_response.created suggests {offset}",
        warning=f"WARNING: model_response.created suggests {offset} without fixing it ({why}): "
        f"naive times left in {zone_name(zone)}; pass --tz openhands=ZONE if that is the "
        "server's zone",
    )


def _time(value: Any, field: str, zone: tzinfo) -> tuple[int, str | None]:
    if fields.is_blank(value):
        raise fields.RowError(f"{field} is missing")
    if not isinstance(value, str):
        raise fields.RowError(f"{field} is not an ISO 8601 time: {value!r}")
    try:
        return parse_iso(value, default_tz=zone)
    except TimeParseError as exc:
        raise fields.RowError(f"{field}: {exc}") from None


def _row(
    event: dict[str, Any], observation: dict[str, Any] | None, clock: _Clock
) -> dict[str, Any]:
    action = event.get("action")
    if not isinstance(action, str) or not action.strip():
        raise fields.RowError(f"action is not a name: {action!r}"[:200])
    notes: list[str] = []
    start, note = _time(event.get("timestamp"), "timestamp", clock.zone)
    if note:
        note = clock.naive_note or note
        notes.append(f"{note} ({clock.hint})" if clock.hint else note)
    end = None
    if observation is None:
        notes.append("no observation (not run, or the run stopped)")
    else:
        try:
            end, _ = _time(observation.get("timestamp"), "observation timestamp", clock.zone)
        except fields.RowError as exc:
            notes.append(f"{exc}: end unknown")
        if end is not None and end < start:
            notes.append("end before start: end ignored")
            end = None
    args = event.get("args")
    if not isinstance(args, dict):
        args = {}
    metadata = _metadata(observation)
    code = metadata.get("exit_code")
    extras = observation.get("extras") if observation else None
    if code is None and isinstance(extras, dict):
        code = extras.get("exit_code")  # before CmdOutputMetadata (2024): extras.exit_code
    exit_code = fields.integer(code, "exit_code")
    if exit_code == -1:
        notes.append(STILL_RUNNING)
        exit_code = None
    is_error: bool | None = None
    if observation is not None:
        if observation.get("observation") == "error":
            is_error = True
        elif exit_code is not None:
            is_error = exit_code != 0
        elif isinstance(observation.get("success"), bool) and STILL_RUNNING not in notes:
            is_error = not observation["success"]
    tool_meta = event.get("tool_call_metadata")
    tool_meta = tool_meta if isinstance(tool_meta, dict) else {}
    command = args.get(COMMAND_ARGS.get(action, ""))
    arguments = {k: v for k, v in args.items() if k != "thought"}
    output = observation.get("content") if observation else None
    return {
        "call_id": fields.text(tool_meta.get("tool_call_id")) or f"event-{event.get('id')}",
        "run_id": None,
        "step": _event_id(event.get("id")),
        "ts_start": start,
        "ts_end": end,
        "ts_kind": "bracket",
        "tool": fields.text(tool_meta.get("function_name")) or action,
        "command": command if isinstance(command, str) and command.strip() else None,
        "arguments": json.dumps(arguments, ensure_ascii=False) if arguments else None,
        "output": truncate(output if isinstance(output, str) else fields.text(output)),
        "exit_code": exit_code,
        "is_error": is_error,
        "host": fields.text(metadata.get("hostname")),
        "host_ip": None,
        "model": fields.text(_model_response(event).get("model")),
        "train_step": None,
        "ts_note": "; ".join(notes) or None,
    }


def _event_id(value: Any) -> int | None:
    try:
        return fields.integer(value, "id")
    except fields.RowError:
        return None


def _raw(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)[:4096]
    except (TypeError, ValueError, RecursionError):
        return str(value)[:4096]
