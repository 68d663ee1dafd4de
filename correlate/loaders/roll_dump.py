"""ROLL agentic rollout dumps (``rollout_dump_dir``): ``rollout_dump_data.step_<N>.jsonl``.

Writer: ``roll/pipeline/agentic/utils.py`` ``dump_rollout_trajectories`` (drops rows holding a
None via ``remove_nan_items``, appends ``global_step``) -> ``roll/pipeline/rlvr/utils.py``
``write_to_json_process``, which opens the file with mode ``"w"`` and writes **one JSON line whose
values are columns**: ``{"trajectory_data": [...], "messages": [...], "tools": [...],
"exp_name": [...], "global_step": [...]}`` (element *i* of each list is trajectory *i*; the
column list is ``COLUMMNS_CONFIG`` in ``agent_native_env_manager.py`` ``formulate_rollouts``).

``trajectory_data[i]`` is a JSON string (``formulate_rollouts``; ``trajectory_formats.md`` §1.1):
``trajectory_id``, ``timestamp`` (``%Y%m%d_%H%M%S_%f``), ``current_step``, ``env_info`` (``env_id``,
``group_id``, ``tag``, ``seed``, ``episode_id``, ... plus ``RockTBNativeEnv.env_info``: ``task_id``,
``task_name``, ``sandbox_image``, ``sandbox_ip``, ``sandbox_id`` — ``rock_tb_native_env.py``
``env_info``), ``timing_info`` (``traj_save_time`` = ``datetime.now().isoformat()`` and the
trajectory timings in seconds: ``trajectory.total_time`` = now - ``traj_start_time`` in current
ROLL, ``traj_time_env_total`` in older ROLL), ``length_info``, ``reward_info``, ``failure_info``.
``messages[i]`` is a JSON string of a list of OpenAI chat message lists (iFlow's last request:
assistant ``tool_calls[].id/function.name/function.arguments``, ``role: "tool"`` results with
``tool_call_id``); a flat message list is read too.

Times: ROLL stamps only the trajectory's end, with ``datetime.now()`` — **naive local time of the
trainer** — so there is no per-call time. Each tool call gets the trajectory's window
``[traj_save_time - trajectory.total_time, traj_save_time]`` with ``ts_kind = "inferred"`` and a
note (only the save time when no duration is recorded). Naive times are read in
``--tz roll_dump=ZONE`` (default UTC, noted). For per-call brackets use the sandbox's
``LLMService.log`` (``rock_llmservice``).

Mapping: ``call_id`` = ``tool_calls[].id``; ``episode_id`` = ``trajectory_id``; ``run_id`` =
``exp_name``; ``step`` = the assistant turn (1-based) holding the call; ``train_step`` = ``N`` of
the file name (else ``global_step``, else ``current_step``); ``host`` = ``env_info.sandbox_id``;
``host_ip`` = ``env_info.sandbox_ip`` (ROCK's ``host_ip``: the pod IP on Kubernetes, the Docker
host's IP — shared by its sandboxes — on Ray/Docker; ``trajectory_formats.md`` §1.3);
``tool``/``arguments``/``command``/``output`` as in ``rock_llmservice``. Each trajectory naming
both ``sandbox_id`` and ``sandbox_ip`` yields a HOSTS row (origin ``trajectory``, valid from the
trajectory's start).

``source_line`` (and a reject's location) is the trajectory's 1-based position in the file, counted
across lines (ROLL writes one physical line); a line that cannot be split into trajectories is
reported at the position its first trajectory would have, its line number in the reason.
A record is one tool call, or one trajectory without tool calls (``stats.unit = "records"``).
Rows of a dump without ``trajectory_data`` (ROLL's RLVR dumps share the file name) are skipped.

Reading is column-wise: a dump line (often hundreds of MB: every trajectory's whole conversation,
JSON text inside JSON) is parsed by pyarrow into its columns, then every trajectory's ``messages``
text at once into Arrow lists of messages; turns, repeated calls, outputs and the calls
themselves (``rock_llmservice.call_columns``) are found in columns, and what a trajectory shares
is read per trajectory by ``_trajectory_fields``. A line pyarrow refuses, or a trajectory a step
cannot vouch for (a ``content`` of parts, a call that would be rejected, an unreadable time), goes
through the per-line (per-trajectory) reader, which ``read(..., fast=False)`` uses for everything:
the reference the column-wise path is property-tested against (``tests/test_fast_path_roll_dump.py``).
"""

from __future__ import annotations

import json
import re
from datetime import tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from ..schema import HOSTS, TOOL_CALLS, from_columns
from ..sources import Source, decode_line, iter_lines
from ..timeparse import TimeParseError, parse_iso
from . import fields
from .base import FileLoad, LoadOptions, LoadResult
from .blocks import json_pieces, line_spans, valid_utf8
from .calls import truncate
from .columnar import constant, table_of
from .records import first_line
from .rock_llmservice import (
    CALLS,
    beyond_python,
    call_columns,
    content_text,
    convert_tool_call,
    lines_blob,
    mask,
    text_of,
    truncated,
)

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


def read(source: Source, options: LoadOptions, *, fast: bool = True) -> LoadResult:
    """Read one rollout dump into ``tool_calls`` rows and the sandbox identities it names.

    With ``fast`` (the default) dump lines are read column-wise (``_Reader.fast_line``);
    ``fast=False`` reads every line with the per-line reader, the reference the column-wise
    path is tested against.
    """
    load = FileLoad(source, options, name, kind, TOOL_CALLS, unit="records")
    reader = _Reader(load)
    for line, raw in iter_lines(source):
        if fast and raw[:1] == b"{" and raw[-1:] == b"}":
            reader.fast_line(line, raw)
        else:
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

    # --- the per-line reader --------------------------------------------------------------------

    def line(self, line: int, raw_bytes: bytes) -> None:
        """One line of the dump: its trajectories, or why it has none."""
        load = self.load
        raw, note = decode_line(raw_bytes)
        if note:
            load.note(note)
        if line == 1:
            raw = raw.removeprefix("\ufeff")
        if not raw.strip():
            load.skip("blank line")
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

    # --- the column-wise path -------------------------------------------------------------------

    def fast_line(self, line: int, raw: bytes) -> None:
        """A dump line read column-wise, else by ``line``.

        pyarrow parses the line's columns (``_DUMP``: the five ROLL writes, as lists of text;
        any other key or type sends the line to ``line``), then every trajectory's ``messages``
        text at once (``_conversations``); tool calls, turns, repeats and outputs are found in
        those columns (``_TrajectoryCalls``). What a trajectory shares (times, sandbox, run,
        step) is read per trajectory by the per-line reader's own ``_trajectory_fields``. A
        trajectory that any step cannot vouch for goes through ``trajectory``, its rows kept
        apart and merged back in trajectory order.
        """
        table = _parse_dump(raw)
        if table is None:
            self.line(line, raw)
            return
        columns = {
            key: table.column(key)[0].values if table.column(key)[0].is_valid else None
            for key in _DUMP.names
        }
        trajectories = columns["trajectory_data"]
        lengths = {len(v) for v in columns.values() if v is not None}
        if trajectories is None or len(lengths) > 1:
            self.line(line, raw)  # a skip or a reject: the reader words it
            return
        n = len(trajectories)
        first = self.ordinal + 1
        self.ordinal += n
        data = trajectories.to_pylist()
        present = {k: v for k, v in columns.items() if v is not None}
        small = {k: present[k].to_pylist() for k in ("exp_name", "global_step") if k in present}
        shared = [
            self._shared(text, {k: v[i] for k, v in small.items()}) for i, text in enumerate(data)
        ]
        messages = columns["messages"]
        found = _TrajectoryCalls.of(messages if messages is not None else pa.nulls(n, TEXT), shared)
        side = self.load.apart()
        load = self.load
        for i in range(n):
            ordinal = first + i
            fields_of = shared[i]
            if fields_of is None or not found.vouched[i]:
                column = {k: v[i].as_py() for k, v in present.items()}
                self.trajectory(ordinal, data[i], column, side)
                continue
            if found.repeated[i]:
                load.skip(REPEATED, int(found.repeated[i]))
            self._sandbox(fields_of, ordinal)
            count = int(found.counts[i])
            if not count:
                load.skip(NO_CALLS)
                continue
            load.count_loaded(count)
            if fields_of["ts_note"]:
                load.note(fields_of["ts_note"], count)
        rows = found.table(shared, first, self.load.source)
        parts = [t for t in (rows, side.rows.table()) if t.num_rows]
        if len(parts) > 1:
            merged = pa.concat_tables(parts).sort_by([("source_line", "ascending")])
            load.keep_rows(merged)
        elif parts:
            load.keep_rows(parts[0])

    def _shared(self, text: Any, column: dict[str, Any]) -> dict[str, Any] | None:
        """What a trajectory's rows share, or None when the per-trajectory reader must decide."""
        if not isinstance(text, str) or fields.may_hold_surrogates(text):
            return None  # (a lone surrogate escape: the reader's rows replace it)
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            return None
        if not isinstance(data, dict):
            return None
        try:
            return _trajectory_fields(data, column, self.file_step, self.zone, self.hinted)
        except fields.RowError:
            return None


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


# --- the column-wise path -------------------------------------------------------------------------

TEXT = pa.string()
_DUMP = pa.schema(
    [
        *[(key, pa.list_(TEXT)) for key in ("trajectory_data", "messages", "tools", "exp_name")],
        ("global_step", pa.list_(pa.int64())),
    ]
)
"""The columns ``write_to_json_process`` writes (``COLUMMNS_CONFIG``), as ROLL fills them."""
_MESSAGE = pa.struct(
    [("role", TEXT), ("tool_call_id", TEXT), ("content", TEXT), ("tool_calls", CALLS)]
)
_CONVERSATIONS = pa.schema([("m", pa.list_(pa.list_(pa.list_(_MESSAGE))))])
"""A trajectory's ``messages`` text wrapped as ``{"m": [<lists of messages>]}`` (a flat message
list twice, ``{"m": [[<messages>]]}``): wrapping in a list lets a text holding more than one
JSON value show (a second element), which ``json.loads`` refuses. A ``content`` of parts, a
number for an id, arguments as an object, ... fail the parse (the trajectory goes to the
per-trajectory reader)."""
_NESTED = r"^[ \t]*\[[ \t]*[\[\]]"
_FLAT = r"^[ \t]*\[[ \t]*\{"


def _parse_dump(raw: bytes) -> pa.Table | None:
    """A dump line's columns, or None when pyarrow refuses it (another key, another type, bad
    JSON, invalid UTF-8, more than one object)."""
    if not valid_utf8(raw):
        return None
    try:
        table = pj.read_json(
            pa.BufferReader(raw),
            read_options=pj.ReadOptions(block_size=len(raw) + 1),
            parse_options=pj.ParseOptions(
                explicit_schema=_DUMP,
                unexpected_field_behavior="error",
                newlines_in_values=False,
            ),
        )
    except pa.ArrowInvalid:
        return None
    return table if table.num_rows == 1 else None


def _wrapped(text: pa.Array, flat: np.ndarray) -> bytes:
    """Conversations as ``_CONVERSATIONS`` lines (a flat list of messages wrapped twice)."""
    before = pa.array(np.where(flat, '{"m":[[', '{"m":['), TEXT)
    after = pa.array(np.where(flat, "]]}", "]}"), TEXT)
    return lines_blob(text, before, after)


class _TrajectoryCalls:
    """The tool calls of a dump line's trajectories, found in columns (``_calls`` column-wise).

    ``vouched[i]``: trajectory ``i`` is read here (its conversation parsed, every call converts,
    what it shares read); ``repeated[i]`` and ``counts[i]``: its repeated and kept calls.
    """

    def __init__(self, n: int) -> None:
        self.vouched = np.zeros(n, dtype=bool)
        self.repeated = np.zeros(n, dtype=np.int64)
        self.counts = np.zeros(n, dtype=np.int64)
        self.row = np.zeros(0, dtype=np.int64)
        self.turn = np.zeros(0, dtype=np.int64)
        self.columns: dict[str, pa.Array] = {}

    @classmethod
    def of(cls, messages: pa.Array, shared: list[dict[str, Any] | None]) -> _TrajectoryCalls:
        n = len(messages)
        found = cls(n)
        readable = np.array([s is not None for s in shared], dtype=bool)
        absent = mask(pc.is_null(messages))
        found.vouched = readable & absent  # no conversation: no calls (the reader's way too)
        flat = mask(pc.match_substring_regex(messages, _FLAT))
        candidate = readable & (mask(pc.match_substring_regex(messages, _NESTED)) | flat)
        rows = np.flatnonzero(candidate)
        if not len(rows):
            return found
        blob = _wrapped(messages.take(rows), flat[rows])
        if blob.count(b"\n") != len(rows) - 1:
            # a text holding a line break (JSON written with indent) is read by the reader
            broken = mask(pc.match_substring(messages.take(rows), "\n"))
            rows = rows[~broken]
            blob = _wrapped(messages.take(rows), flat[rows])
        deep = rows[beyond_python(blob, *line_spans(blob))]  # the per-trajectory reader decides
        parsed_rows: list[np.ndarray] = []
        parsed: list[pa.Array] = []
        for at, _, m, table in json_pieces(blob, 0, len(rows), _CONVERSATIONS):
            if table is not None:
                parsed_rows.append(rows[at : at + m])
                parsed.append(table.column("m").combine_chunks())
        if not parsed:
            return found
        found._calls(np.concatenate(parsed_rows), pa.concat_arrays(parsed), flat, n, deep)
        return found

    def _calls(
        self, rows: np.ndarray, m: pa.Array, flat: np.ndarray, n: int, deep: np.ndarray
    ) -> None:
        ok = np.zeros(n, dtype=bool)
        ok[rows] = True
        ok[deep] = False
        # one JSON value per text (the wrapping list has one element)
        one = mask(pc.equal(pc.list_value_length(m), 1))
        ok[rows[~one]] = False
        values = pc.list_flatten(m)  # per trajectory: its lists of messages
        value_row = rows[np.asarray(pc.list_parent_indices(m), dtype=np.int64)]
        lists = pc.list_flatten(values)  # null lists dropped, as the reader drops non-lists
        list_row = value_row[np.asarray(pc.list_parent_indices(values), dtype=np.int64)]
        sizes = np.asarray(pc.fill_null(pc.list_value_length(lists), 0), dtype=np.int64)
        messages = pc.list_flatten(lists)
        message_list = np.asarray(pc.list_parent_indices(lists), dtype=np.int64)
        message_row = list_row[message_list]
        role, tool_call_id, content, tool_calls = messages.flatten()
        if flat.any():
            # a flat list holds only objects (else the reader finds no list of messages)
            lists_per_row = np.bincount(list_row, minlength=n)
            null_message = mask(pc.is_null(messages))
            bad = np.bincount(message_row[null_message], minlength=n) > 0
            ok &= ~(flat & ((lists_per_row != 1) | bad))
        # turns: assistant messages counted within each list
        assistant = mask(pc.equal(role, "assistant"))
        counted = np.cumsum(assistant)
        before = np.concatenate(([0], counted))[np.cumsum(sizes) - sizes]
        turn = counted - before[message_list]
        # tool calls of assistant messages, in order; a null entry is rejected by the reader
        speakers = np.flatnonzero(assistant)
        entries_of = tool_calls.take(speakers)
        entries = pc.list_flatten(entries_of)
        entry_message = speakers[np.asarray(pc.list_parent_indices(entries_of), dtype=np.int64)]
        entry_row = message_row[entry_message]
        null_entry = mask(pc.is_null(entries))
        ok[entry_row[null_entry]] = False
        entry_id, _ = entries.flatten()
        call_ids = text_of(entry_id)
        unique = pc.unique(call_ids.drop_null())
        width = max(len(unique), 1)
        code = pc.index_in(call_ids, value_set=unique)
        has_id = mask(code.is_valid())
        key = entry_row * width + np.asarray(pc.fill_null(code, 0), dtype=np.int64)
        # a call id seen before in its trajectory is a repeat (null ids never are)
        _, first = np.unique(key[has_id], return_index=True)
        with_id = np.flatnonzero(has_id)
        repeat = has_id.copy()
        repeat[with_id[first]] = False
        self.repeated = np.bincount(entry_row[repeat], minlength=n)
        kept = np.flatnonzero(~repeat)
        columns, converts = call_columns(entries.take(kept))
        ok[entry_row[kept][~converts]] = False
        # outputs: the first tool message of the trajectory answering the call id
        tools = np.flatnonzero(mask(pc.and_(pc.equal(role, "tool"), pc.is_valid(tool_call_id))))
        answer_code = pc.index_in(text_of(tool_call_id.take(tools)), value_set=unique)
        answered = mask(answer_code.is_valid())
        answer_key = message_row[tools[answered]] * width + np.asarray(
            answer_code.drop_null(), dtype=np.int64
        )
        asked = pa.array(np.where(has_id[kept], key[kept], -1))
        position = pc.index_in(asked, value_set=pa.array(answer_key, pa.int64()))
        output = pa.nulls(len(kept), TEXT)
        if len(answer_key):
            message = tools[answered][np.asarray(pc.fill_null(position, 0), dtype=np.int64)]
            output = content.take(pa.array(message, pa.int64(), mask=~mask(position.is_valid())))
        columns["output"] = truncated(text_of(output))
        self.vouched |= ok
        keep = np.flatnonzero(ok[entry_row[kept]])
        self.row = entry_row[kept][keep]
        self.turn = turn[entry_message[kept][keep]]
        self.columns = {k: v.take(keep) for k, v in columns.items()}
        self.counts = np.bincount(self.row, minlength=n)

    def table(self, shared: list[dict[str, Any] | None], first: int, source: Source) -> pa.Table:
        """The vouched trajectories' calls as ``tool_calls`` rows (trajectory order)."""
        m = len(self.row)
        values: dict[str, Any] = dict(self.columns)
        for f in TOOL_CALLS:
            if f.name in _SHARED:
                per = [s[f.name] if s is not None else None for s in shared]
                values[f.name] = pa.array(per, _SHARED[f.name]).take(self.row)
        values["step"] = pa.array(self.turn, pa.int64())
        values["source_format"] = constant(name, m)
        values["source_path"] = constant(source.display, m)
        values["source_line"] = pa.array(self.row + first, pa.int64())
        return table_of(values, m, TOOL_CALLS)


_SHARED = {
    "run_id": TEXT,
    "episode_id": TEXT,
    "ts_start": pa.int64(),
    "ts_end": pa.int64(),
    "ts_kind": TEXT,
    "exit_code": pa.int64(),
    "is_error": pa.bool_(),
    "host": TEXT,
    "host_ip": TEXT,
    "model": TEXT,
    "train_step": pa.int64(),
    "ts_note": TEXT,
}
"""What ``_trajectory_fields`` gives every call of a trajectory."""
