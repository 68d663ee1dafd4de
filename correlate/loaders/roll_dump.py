"""ROLL agentic rollout dumps (``rollout_dump_dir``): ``rollout_dump_data.step_<N>.jsonl``.

One JSON line whose values are columns (``trajectory_data``, ``messages``, ``tools``,
``exp_name``, ``global_step``); element *i* of each is trajectory *i*, and ``trajectory_data[i]``
and ``messages[i]`` are JSON strings. ROLL stamps only a trajectory's end, with the trainer's
naive local time, so each tool call gets the trajectory's window ``[save time - total time,
save time]`` (``inferred``, noted); naive times are read in ``--tz roll_dump=ZONE`` (UTC), noted.
Per-call brackets come from the sandbox's ``LLMService.log`` (``rock_llmservice``).

Mapping: ``call_id`` = ``tool_calls[].id``; ``episode_id`` = ``trajectory_id``; ``run_id`` =
``exp_name``; ``step`` = the assistant turn; ``train_step`` = ``N`` of the file name (else
``global_step``, ``current_step``); ``host``/``host_ip`` = ``env_info.sandbox_id``/``sandbox_ip``
(a trajectory naming both yields a HOSTS row). ``source_line`` is the trajectory's 1-based
position across the file. Rows without ``trajectory_data`` (RLVR dumps) are skipped. Read line by
line, by measurement. Format reference and sources: ``tests/data/roll_dump/README.md``.
"""

from __future__ import annotations

import json
import re
from datetime import tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa

from ..schema import HOSTS, TOOL_CALLS, from_columns
from ..sources import Source, iter_lines
from ..timeparse import TimeParseError, parse_iso
from . import fields
from .base import FileLoad, LoadOptions, LoadResult
from .calls import truncate
from .records import first_line, text_line
from .rock_llmservice import content_text, convert_tool_call

name = "roll_dump"
kind = "agent"
description = (
    "ROLL agentic rollout dump (rollout_dump_data.step_N.jsonl): tool calls per trajectory"
)

_FILE_STEP = re.compile(r"step_(\d+)")
_COMPACT_TIME = re.compile(r"(\d{4})(\d{2})(\d{2})_(\d{2})(\d{2})(\d{2})_(\d{1,6})$")
DURATION_KEYS = ("trajectory.total_time", "traj_time_env_total")
ZONE_HINT = "ROLL writes the trainer's local time; use --tz roll_dump=ZONE"
HOST_NOTE = (
    "env_info.sandbox_ip of a ROLL trajectory (ROCK host_ip: pod IP on Kubernetes, "
    "Docker host IP shared by its sandboxes on Ray/Docker)"
)


def sniff(head: bytes, filename: str) -> float:
    """Score: a column-oriented JSON line starting with ``trajectory_data``, or the dump's name."""
    first = first_line(head)
    if not first.startswith(b"{"):
        return 0.0
    if re.match(rb'\{\s*"trajectory_data"\s*:\s*\[', first):
        return 0.95
    if filename.startswith("rollout_dump_data.step_") and b'"global_step"' in head:
        return 0.7
    return 0.0


def read(source: Source, options: LoadOptions) -> LoadResult:
    """Read one rollout dump into ``tool_calls`` rows and the sandbox identities it names."""
    load = FileLoad(source, options, name, kind, TOOL_CALLS, unit="records")
    reader = _Reader(load)
    for line, raw in iter_lines(source):
        reader.line(line, raw)
    return load.result(hosts=_hosts(reader.hosts, source))


class _Reader:
    """One file's state: the trajectory ordinal and the sandboxes named so far."""

    def __init__(self, load: FileLoad) -> None:
        self.load = load
        self.zone = load.options.zone_for(name)
        self.hinted = name not in load.options.zones and "*" not in load.options.zones
        match = _FILE_STEP.search(load.source.name)
        self.file_step = int(match.group(1)) if match else None
        self.hosts: dict[tuple[str, str], tuple[int, int]] = {}
        self.ordinal = 0  # trajectories seen so far: locations are trajectory positions

    def line(self, line: int, raw_bytes: bytes) -> None:
        """One line of the dump: its trajectories, or why it has none."""
        load = self.load
        raw = text_line(line, raw_bytes, load)
        if raw is None:
            return
        at = self.ordinal + 1
        try:
            record = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            reason = f"not valid JSON ({exc.__class__.__name__}: {str(exc)[:80]})"
            load.reject(at, f"line {line}: {reason}", raw)
            return
        if not isinstance(record, dict):
            load.reject(at, f"line {line}: not a JSON object", raw)
            return
        trajectories = record.get("trajectory_data")
        lengths = {k: len(v) for k, v in record.items() if isinstance(v, list)}
        if trajectories is None:
            load.skip(
                "not an agentic rollout (no trajectory_data column)",
                max(lengths.values(), default=1),
            )
            return
        if not isinstance(trajectories, list):
            reason = "trajectory_data is not a list (expected ROLL's column dump)"
            load.reject(at, f"line {line}: {reason}", raw)
            return
        if len(set(lengths.values())) > 1:
            described = ", ".join(f"{k} {n}" for k, n in lengths.items())
            reason = f"columns differ in length ({described}): trajectories cannot be paired"
            load.reject(at, f"line {line}: {reason}", raw, count=len(trajectories) or 1)
            self.ordinal += len(trajectories)
            return
        for i, data in enumerate(trajectories):
            self.ordinal += 1
            column = {k: v[i] for k, v in record.items() if isinstance(v, list)}
            self.trajectory(self.ordinal, data, column, load)

    def trajectory(
        self, ordinal: int, raw_data: Any, column: dict[str, Any], load: FileLoad
    ) -> None:
        """One trajectory through the per-trajectory reader (rows into ``load``)."""
        raw = raw_data if isinstance(raw_data, str) else json.dumps(raw_data, ensure_ascii=False)
        try:
            data = _json_value(raw_data, "trajectory_data")
            if not isinstance(data, dict):
                raise fields.RowError("trajectory_data is not a JSON object")
            lists = _message_lists(_json_value(column.get("messages"), "messages"))
        except fields.RowError as exc:
            load.reject(ordinal, f"trajectory {ordinal}: {exc}", raw)
            return
        calls, results, repeated = _calls(lists)
        if repeated:
            load.skip(REPEATED, repeated)
        try:
            shared = _trajectory_fields(data, column, self.file_step, self.zone, self.hinted)
        except fields.RowError as exc:
            load.reject(ordinal, f"trajectory {ordinal}: {exc}", raw, count=max(len(calls), 1))
            return
        self._sandbox(shared, ordinal)
        if not calls:
            load.skip(NO_CALLS)
            return
        for position, (turn, item) in enumerate(calls, start=1):
            try:
                call = convert_tool_call(item, position)
            except fields.RowError as exc:
                load.reject(ordinal, f"trajectory {ordinal}: {exc}", raw)
                continue
            output = results.get(call["call_id"]) if call["call_id"] else None
            row = {**shared, **call, "step": turn, "output": truncate(content_text(output))}
            load.emit(row, ordinal)

    def _sandbox(self, shared: dict[str, Any], ordinal: int) -> None:
        if shared["host"] and shared["host_ip"]:
            key = (shared["host"], shared["host_ip"])
            first = self.hosts.get(key)
            if first is None or shared["ts_start"] < first[0]:
                self.hosts[key] = (shared["ts_start"], ordinal)


REPEATED = "tool call repeated in another message list of the trajectory"
NO_CALLS = "trajectory without tool calls"


def _json_value(value: Any, what: str) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except (ValueError, RecursionError) as exc:
            raise fields.RowError(
                f"{what} is not valid JSON ({exc.__class__.__name__}: {str(exc)[:60]})"
            ) from None
    return value


def _message_lists(messages: Any) -> list[list[Any]]:
    if messages is None:
        return []
    if not isinstance(messages, list):
        raise fields.RowError("messages is not a list")
    if messages and all(isinstance(m, dict) for m in messages):
        return [messages]
    return [m for m in messages if isinstance(m, list)]


def _calls(lists: list[list[Any]]) -> tuple[list[tuple[int, Any]], dict[str, Any], int]:
    """(assistant turn, tool call) pairs, tool results by id, and calls repeated across lists."""
    seen: set[str] = set()
    found: list[tuple[int, Any]] = []
    results: dict[str, Any] = {}
    repeated = 0
    for messages in lists:
        turn = 0
        for message in messages:
            if not isinstance(message, dict):
                continue
            if message.get("role") == "tool":
                call_id = fields.text(message.get("tool_call_id"))
                if call_id is not None:
                    results.setdefault(call_id, message.get("content"))
            if message.get("role") != "assistant":
                continue
            turn += 1
            calls = message.get("tool_calls")
            if not isinstance(calls, list):
                continue
            for call in calls:
                call_id = fields.text(call.get("id")) if isinstance(call, dict) else None
                if call_id is not None and call_id in seen:
                    repeated += 1
                    continue
                if call_id is not None:
                    seen.add(call_id)
                found.append((turn, call))
    return found, results, repeated


def _end_time(data: dict[str, Any], zone: tzinfo) -> tuple[int, str | None]:
    """The trajectory's end (ns) and the zone note: ``traj_save_time``, else ``timestamp``."""
    timing = data.get("timing_info")
    candidates: list[tuple[str, Any]] = [
        (
            "timing_info.traj_save_time",
            timing.get("traj_save_time") if isinstance(timing, dict) else None,
        ),
        ("timestamp", data.get("timestamp")),
    ]
    trajectory_id = fields.text(data.get("trajectory_id"))
    embedded = _COMPACT_TIME.search(trajectory_id) if trajectory_id else None
    if embedded:
        candidates.append(("trajectory_id", embedded.group(0)))
    for key, value in candidates:
        if fields.is_blank(value):
            continue
        text = str(value).strip()
        compact = _COMPACT_TIME.fullmatch(text)
        if compact:
            y, mo, d, h, mi, s, frac = compact.groups()
            text = f"{y}-{mo}-{d}T{h}:{mi}:{s}.{frac}"
        try:
            return parse_iso(text, default_tz=zone)
        except TimeParseError as exc:
            raise fields.RowError(f"{key}: {exc}") from None
    raise fields.RowError("no trajectory time (timing_info.traj_save_time, timestamp)")


def _duration_ns(data: dict[str, Any]) -> tuple[int | None, str | None]:
    """The trajectory's duration in ns (exact for decimal seconds) and the key it came from."""
    timing = data.get("timing_info")
    if not isinstance(timing, dict):
        return None, None
    for key in DURATION_KEYS:
        value = timing.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            return None, key
        try:
            seconds = Decimal(str(value).strip())
        except InvalidOperation:
            return None, key
        if not seconds.is_finite() or seconds < 0:
            return None, key
        return int(seconds * 1_000_000_000), key
    return None, None


def _trajectory_fields(
    data: dict[str, Any],
    column: dict[str, Any],
    file_step: int | None,
    zone: tzinfo,
    hinted: bool,
) -> dict[str, Any]:
    env_info = data.get("env_info")
    env_info = env_info if isinstance(env_info, dict) else {}
    end, zone_note = _end_time(data, zone)
    duration, duration_key = _duration_ns(data)
    notes = []
    if duration is not None:
        start = end - duration
        notes.append(
            f"inferred: the trajectory's window (traj_save_time - {duration_key}); "
            "ROLL dumps have no per-call times"
        )
    else:
        start = end
        why = f"{duration_key} unreadable" if duration_key else "no trajectory duration"
        notes.append(f"inferred: the trajectory's save time only ({why}; the calls ran before it)")
    if zone_note:
        notes.append(f"{zone_note} ({ZONE_HINT})" if hinted else zone_note)
    train_step = file_step
    if train_step is None:
        train_step = fields.integer(column.get("global_step"), "global_step")
    if train_step is None:
        train_step = fields.integer(data.get("current_step"), "current_step")
    episode = fields.text(data.get("trajectory_id"))
    if episode is None and env_info.get("episode_id") is not None:
        episode = "_".join(
            str(env_info.get(k)) for k in ("tag", "group_id", "episode_id", "seed", "env_id")
        )
    return {
        "run_id": fields.text(column.get("exp_name")),
        "episode_id": episode,
        "ts_start": start,
        "ts_end": end,
        "ts_kind": "inferred",
        "exit_code": None,
        "is_error": None,
        "host": fields.text(env_info.get("sandbox_id")),
        "host_ip": fields.ip(env_info.get("sandbox_ip"), "env_info.sandbox_ip"),
        "model": None,
        "train_step": train_step,
        "ts_note": "; ".join(notes),
    }


def _hosts(seen: dict[tuple[str, str], tuple[int, int]], source: Source) -> pa.Table:
    keys = sorted(seen, key=lambda k: (seen[k][0], k))
    return from_columns(
        {
            # a lone surrogate escape in a sandbox id becomes U+FFFD, as in the rows
            "host": [fields.without_surrogates(k[0])[0] for k in keys],
            "ip": [k[1] for k in keys],
            "valid_from": [seen[k][0] for k in keys],
            "valid_to": [None] * len(keys),
            "origin": ["trajectory"] * len(keys),
            "note": [HOST_NOTE] * len(keys),
            "source_format": [name] * len(keys),
            "source_path": [source.display] * len(keys),
            "source_line": [seen[k][1] for k in keys],
        },
        HOSTS,
    )
