"""Harbor / Terminal-Bench ATIF ``trajectory.json`` (``schema_version`` ATIF-v1.0 ... v1.8).

One row per step tool call: ``call_id`` = ``tool_call_id``, ``tool`` = ``function_name``,
``command`` = ``arguments.keystrokes`` (Terminus-2) or ``command``/``cmd``/..., ``output`` = the
result whose ``source_call_id`` is the call (or the step's only unlabelled result), ``step`` =
``step_id``, ``run_id`` = ``session_id``. ATIF has no exit code. ``source_line`` is the 1-based
step number (main trajectory, then embedded subagent trajectories).

Times, in order of preference: ``exact`` from NeMo invocation start/end; ``bracket`` for
Terminus-2, which stamps a step after its commands ran (previous step's time to this one's);
else ``step`` (``ts_end`` empty). Naive times are read in ``--tz atif=ZONE`` (default UTC), noted.
A sibling Harbor ``result.json`` is read as context for ``episode_id`` (``trial_name``), ``host``
(``<trial_name>__env`` as Harbor sanitises it) and the ``agent_execution`` window. No
``--option`` keys. Field reference and sources: ``tests/data/atif/README.md``.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any

from ..schema import TOOL_CALLS
from ..sources import Source
from ..timeparse import TimeParseError, parse_epoch, parse_iso
from . import fields
from .base import FileLoad, LoadOptions, LoadResult, LoadStats
from .calls import command_from, truncate
from .records import WHOLE_DOCUMENT_LIMIT, read_document

name = "atif"
kind = "agent"
description = "Harbor/Terminal-Bench ATIF trajectory.json (per-step times; result.json as context)"

TERMINUS = ("terminus-2", "terminus")
_SCHEMA = re.compile(rb'"schema_version"\s*:\s*"ATIF-v\d')
_TRIAL_NAME = re.compile(r"^.+__[A-Za-z0-9]{7}$")
RESULT_LIMIT = 64 * 1024 * 1024


def sniff(head: bytes, filename: str) -> float:
    """Score: a JSON object whose head carries ``"schema_version": "ATIF-v…"``."""
    sample = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not sample.startswith(b"{") or not _SCHEMA.search(sample):
        return 0.0
    return 0.95 if b'"steps"' in sample else 0.8


@dataclass
class _Trial:
    """What ``result.json`` (or the folder layout) says about the trial a trajectory belongs to."""

    name: str | None = None
    window: tuple[int, int | None] | None = None
    window_note: str | None = None
    path: str | None = None


def read(source: Source, options: LoadOptions) -> LoadResult:
    """Read one ATIF trajectory into ``tool_calls`` rows (see the module docstring)."""
    load = FileLoad(source, options, name, kind, TOOL_CALLS, unit="tool calls")
    zone = options.zone_for(name, UTC)
    context: list[str] = []
    parsed = read_document(
        source,
        load.stats,
        load.sink,
        too_big=f"an ATIF trajectory over {WHOLE_DOCUMENT_LIMIT >> 20} MiB is not read whole",
    )
    if parsed is None:
        return load.result()
    document, text = parsed
    if not isinstance(document, dict) or not isinstance(document.get("steps"), list):
        load.reject(1, "not an ATIF trajectory (no steps list)", text[:4096])
        return load.result()
    version = fields.text(document.get("schema_version")) or ""
    if not re.fullmatch(r"ATIF-v1\.\d+", version):
        load.note(f"schema_version {version or 'missing'!r}: read as ATIF v1")
    trial = _trial(source, load.stats, zone)
    if trial.path:
        context.append(trial.path)
    reader = _Reader(load, zone, trial)
    reader.trajectory(document, None, None)
    return load.result(context=context)


class _Reader:
    def __init__(self, load: FileLoad, zone: tzinfo, trial: _Trial) -> None:
        self.load = load
        self.zone = zone
        self.trial = trial
        self.record = 0
        self.host = compose_project(trial.name) if trial.name else None

    def trajectory(
        self, document: dict[str, Any], parent_episode: str | None, parent_run: str | None
    ) -> None:
        """Rows for one trajectory's steps, then for its embedded subagent trajectories (which
        ran in the same sandbox: they keep the parent's episode, run and host)."""
        agent = _object(document.get("agent"))
        agent_name = (fields.text(agent.get("name")) or "").lower()
        terminus = agent_name in TERMINUS
        run_id = parent_run or fields.text(document.get("session_id"))
        episode = (
            self.trial.name
            or parent_episode
            or fields.text(document.get("trajectory_id"))
            or run_id
        )
        model = fields.text(agent.get("model_name"))
        previous_ts: int | None = None
        steps = document.get("steps")
        for position, step in enumerate(steps if isinstance(steps, list) else [], start=1):
            self.record += 1
            if not isinstance(step, dict):
                self.load.reject(
                    self.record, f"step {position} is not an object", json.dumps(step)[:4096]
                )
                continue
            calls = step.get("tool_calls")
            step_ts, step_note = self._step_time(step)
            if not calls:
                self.load.skip(f"{step.get('source') or 'untyped'} step without tool calls")
            elif step.get("is_copied_context") is True:
                count = len(calls) if isinstance(calls, list) else 1
                self.load.skip("step copied from an earlier context (is_copied_context)", count)
            elif not isinstance(calls, list):
                self.load.reject(self.record, "tool_calls is not a list", _raw(step))
            else:
                self._calls(
                    step, calls, step_ts, step_note, previous_ts, terminus, run_id, episode, model
                )
            if step_ts is not None:
                previous_ts = step_ts
        subagents = document.get("subagent_trajectories")
        for sub in subagents if isinstance(subagents, list) else []:
            if isinstance(sub, dict):
                self.trajectory(sub, episode, run_id)
            else:
                self.record += 1
                self.load.reject(
                    self.record, "subagent trajectory is not an object", str(sub)[:4096]
                )

    def _step_time(self, step: dict[str, Any]) -> tuple[int | None, str | None]:
        """The step's timestamp and its note; (None, reason) when absent or unreadable."""
        value = step.get("timestamp")
        if fields.is_blank(value):
            return None, "step has no timestamp"
        if not isinstance(value, str):
            return None, f"timestamp is not an ISO 8601 time: {value!r}"
        try:
            return parse_iso(value, default_tz=self.zone)
        except TimeParseError as exc:
            return None, f"timestamp: {exc}"

    def _calls(
        self,
        step: dict[str, Any],
        calls: list[Any],
        step_ts: int | None,
        step_note: str | None,
        previous_ts: int | None,
        terminus: bool,
        run_id: str | None,
        episode: str | None,
        model: str | None,
    ) -> None:
        results = _results(step.get("observation"))
        unlabelled = [r for r in results if fields.is_blank(r.get("source_call_id"))]
        extra = _object(step.get("extra"))
        invocations = extra.get("tool_invocations")
        for index, call in enumerate(calls):
            if not isinstance(call, dict):
                self.load.reject(self.record, f"tool call {index + 1} is not an object", _raw(step))
                continue
            invocation = _invocation(call, invocations, index)
            try:
                times = self._times(step_ts, step_note, previous_ts, terminus, invocation)
                row = self._row(call, results, unlabelled, times)
            except fields.RowError as exc:
                label = fields.text(call.get("tool_call_id")) or f"#{index + 1}"
                self.load.reject(
                    self.record, f"step {step.get('step_id')} call {label}: {exc}", _raw(step)
                )
                continue
            row.update(
                run_id=run_id,
                episode_id=episode,
                step=_step_id(step.get("step_id")),
                host=self.host,
                model=fields.text(step.get("model_name")) or model,
            )
            self.load.emit(row, self.record)

    def _times(
        self,
        step_ts: int | None,
        step_note: str | None,
        previous_ts: int | None,
        terminus: bool,
        invocation: dict[str, Any] | None,
    ) -> tuple[int, int | None, str, list[str]]:
        """(start, end, ts_kind, notes) for one call."""
        notes: list[str] = []
        if invocation is not None:
            start = _epoch(invocation.get("start_timestamp"), "invocation start_timestamp")
            end = _epoch(invocation.get("end_timestamp"), "invocation end_timestamp")
            if start is not None:
                notes.append("start/end from the call's invocation record")
                if end is not None and end < start:
                    notes.append("end before start: end ignored")
                    end = None
                return start, end, "exact", notes
        window = self.trial.window
        if step_ts is None:
            if window is not None:
                notes.append(f"{step_note}: agent_execution window from result.json")
                if self.trial.window_note:
                    notes.append(self.trial.window_note)
                return window[0], window[1], "bracket", notes
            raise fields.RowError(f"{step_note} (and no result.json agent_execution window)")
        if step_note:
            notes.append(step_note)
        if window is not None and (
            step_ts < window[0] or (window[1] is not None and step_ts > window[1])
        ):
            notes.append("step time outside result.json agent_execution window")
        if terminus:
            if previous_ts is not None and previous_ts <= step_ts:
                notes.append("terminus-2: ran between the previous step and this step's time")
                return previous_ts, step_ts, "bracket", notes
            notes.append(
                "terminus-2 stamps a step after its commands ran: ts_start is about their end"
            )
        return step_ts, None, "step", notes

    def _row(
        self,
        call: dict[str, Any],
        results: list[dict[str, Any]],
        unlabelled: list[dict[str, Any]],
        times: tuple[int, int | None, str, list[str]],
    ) -> dict[str, Any]:
        start, end, ts_kind, notes = times
        function = fields.text(call.get("function_name"))
        if function is None:
            raise fields.RowError("function_name is missing")
        call_id = fields.text(call.get("tool_call_id"))
        arguments = call.get("arguments")
        if isinstance(arguments, str):
            with contextlib.suppress(json.JSONDecodeError, RecursionError):
                arguments = json.loads(arguments)
        output = None
        matched = [
            r for r in results if call_id and fields.text(r.get("source_call_id")) == call_id
        ]
        if matched:
            output = "\n".join(t for t in (_content(r.get("content")) for r in matched) if t)
        elif len(unlabelled) == 1:
            output = _content(unlabelled[0].get("content"))
        return {
            "call_id": call_id,
            "ts_start": start,
            "ts_end": end,
            "ts_kind": ts_kind,
            "tool": function,
            "command": _command(arguments),
            "arguments": _json_text(arguments),
            "output": truncate(output),
            "exit_code": None,
            "is_error": None,
            "ts_note": "; ".join(notes) or None,
        }


def compose_project(trial_name: str) -> str:
    """Harbor's Docker compose project for a trial: ``<trial_name>__env``, sanitised like Harbor."""
    project = f"{trial_name}__env".lower()
    if not re.match(r"^[a-z0-9]", project):
        project = "0" + project
    return re.sub(r"[^a-z0-9_-]", "-", project)


def _trial(source: Source, stats: LoadStats, zone: tzinfo) -> _Trial:
    """The trial this trajectory belongs to, from a sibling ``result.json`` or the folder names."""
    path = source.path.resolve()
    candidates = [path.parent / "result.json"]
    if path.parent.name == "agent":
        candidates.insert(0, path.parent.parent / "result.json")
        if len(path.parents) > 3 and path.parents[2].name == "steps":
            candidates.append(path.parents[3] / "result.json")
    trial = _Trial()
    for candidate in candidates:
        if candidate.is_file():
            trial = _read_result(candidate, stats, zone)
            break
    if trial.name is None and path.parent.name == "agent":
        folder = path.parent.parent.name
        if _TRIAL_NAME.match(folder):
            trial.name = folder
    return trial


def _read_result(path: Path, stats: LoadStats, zone: tzinfo) -> _Trial:
    trial = _Trial(path=str(path))
    try:
        if path.stat().st_size > RESULT_LIMIT:
            raise ValueError("too big")
        result = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError, RecursionError) as exc:
        stats.notes[f"result.json beside the trajectory unreadable ({exc.__class__.__name__})"] += 1
        return trial
    if not isinstance(result, dict):
        stats.notes["result.json beside the trajectory is not an object"] += 1
        return trial
    trial.name = fields.text(result.get("trial_name"))
    phase = result.get("agent_execution")
    if isinstance(phase, dict):
        try:
            start, start_note = _iso(phase.get("started_at"), zone)
            end, _ = _iso(phase.get("finished_at"), zone)
        except (TimeParseError, TypeError):
            stats.notes["result.json agent_execution times unreadable"] += 1
        else:
            if start is not None:
                trial.window = (start, end if end is not None and end >= start else None)
                if start_note:
                    trial.window_note = f"result.json {start_note}"
    return trial


def _iso(value: Any, zone: tzinfo) -> tuple[int | None, str | None]:
    if fields.is_blank(value):
        return None, None
    if not isinstance(value, str):
        raise TypeError(value)
    return parse_iso(value, default_tz=zone)


def _invocation(call: dict[str, Any], invocations: Any, index: int) -> dict[str, Any] | None:
    extra = call.get("extra")
    if isinstance(extra, dict) and isinstance(extra.get("invocation"), dict):
        return dict(extra["invocation"])
    if isinstance(invocations, list) and index < len(invocations):
        item = invocations[index]
        return dict(item) if isinstance(item, dict) else None
    return None


def _epoch(value: Any, field: str) -> int | None:
    if fields.is_blank(value):
        return None
    try:
        ns, _ = parse_epoch(value, unit="s", expected="s")
    except TimeParseError as exc:
        raise fields.RowError(f"{field}: {exc}") from None
    return ns


def _results(observation: Any) -> list[dict[str, Any]]:
    if not isinstance(observation, dict) or not isinstance(observation.get("results"), list):
        return []
    return [r for r in observation["results"] if isinstance(r, dict)]


def _content(value: Any) -> str | None:
    """Observation content: text, or the text parts of a ContentPart list (v1.6)."""
    if isinstance(value, list):
        parts = []
        for item in value:
            if isinstance(item, dict):
                text = item.get("text")
                parts.append(text if isinstance(text, str) else f"[{item.get('type', 'content')}]")
            else:
                parts.append(str(item))
        return "\n".join(parts)
    return fields.text(value) if not isinstance(value, str) else value


def _command(arguments: Any) -> str | None:
    if isinstance(arguments, dict):
        keystrokes = arguments.get("keystrokes")
        if isinstance(keystrokes, str) and keystrokes.strip():
            return keystrokes.rstrip("\n")
    return command_from(arguments)


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _json_text(value: Any) -> str | None:
    """Arguments as JSON text in their original key order (a string is kept as written)."""
    if value is None or isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return str(value)


def _step_id(value: Any) -> int | None:
    try:
        return fields.integer(value, "step_id")
    except fields.RowError:
        return None


def _raw(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)[:4096]
    except (TypeError, ValueError, RecursionError):
        return str(value)[:4096]
