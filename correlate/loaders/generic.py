"""Generic tool calls: an in-house RL framework's JSON lines or CSV, read through a column mapping.

RL frameworks dump rollouts in their own shapes (trajectory_formats.md §8: verl, OpenRLHF, SkyRL,
rLLM, AReaL, ROLL); this loader reads any of them that has one record per tool call (or a list of
calls per line, see ``records``) once the user says which field holds what. It never wins format
detection on a file another loader recognises: it is meant to be forced with ``--format generic``
(or ``--format 'GLOB=generic'``), and refuses files another loader recognises (except an
inventory-looking file that the inventory sniff is not sure of, < 0.9). Files named
``*.calls.jsonl``, ``*.calls.json`` or ``*.calls.csv`` are detected as generic tool calls by that
naming convention alone (read with the default or given mapping).

Options (``--option generic.KEY=VALUE``):

* ``mapping=PATH`` - a JSON object mapping normalised columns to source fields, e.g.
  ``{"ts_start": "start_time", "ts_end": "end_time", "command": "action.cmd",
  "host": "env.sandbox_id", "host_ip": "env.sandbox_ip", "episode_id": "traj_id",
  "step": "turn", "call_id": "id", "tool": "tool_name", "time_zone": "Asia/Shanghai",
  "epoch_unit": "ms"}``. The value may also be the JSON object itself (``mapping={...}``). The file
  is reported as read context, so it is not loaded as an input when it lies beside the data.
* ``columns=TARGET=SOURCE,...`` - the same mapping inline (``columns=ts_start=t0,command=cmd``);
  entries override ``mapping``.

Mapping targets: ``call_id run_id episode_id step ts_start ts_end duration tool command arguments
output exit_code is_error host host_ip model train_step``. A source is a field name, tried first as
one key (CSV headers, flat JSON), then as a dotted path into nested JSON (``env.sandbox_ip``,
``calls.0.cmd``). Without any mapping every target is read from the same-named column; with a
mapping only the targets it names are read, and ``ts_start`` must be one of them.
Settings in the mapping (not paths): ``time_zone`` for naive times (default UTC; ``--tz generic=``
overrides it), ``epoch_unit`` the unit of numeric times, taken as given (``--epoch-unit``
overrides it; with neither, the magnitude decides and a unit other than seconds is noted),
``duration_unit`` for ``duration`` (default ``s``; ``ts_end = ts_start + duration`` when there is no
``ts_end``), ``ts_kind`` (default ``exact``) and ``records``: a dotted path to a list of call
objects inside each JSON line (one trajectory per line); targets are looked up in each call object
first, then in its line.

Values: ``command`` may be text or a list of words (``["bash", "-lc", "X"]`` gives ``X``); without a
``command`` the shell text is taken from ``arguments`` (keys ``command``/``cmd``/...). ``is_error``
accepts booleans and true/false/yes/no/1/0; when absent a non-zero ``exit_code`` means an error.
``output`` is cut to 2,000 characters. When a call names both ``host`` and ``host_ip`` the file
also yields an identity row (origin ``trajectory``, valid from the first call seen with the pair).

Also here: small helpers shared by the coding-agent loaders (claude_code, codex, gemini_cli).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from typing import Any

from ..errors import OptionError
from ..schema import TOOL_CALLS
from ..sources import Source, decode_line
from ..timeparse import NS_PER_UNIT, TimeParseError, parse_time, resolve_zone
from . import fields
from .base import Batcher, LoadOptions, LoadResult, LoadStats, RejectSink
from .calls import FirstSeen, add_row, command_from, shell_text, truncate_output
from .records import Record, csv_records, first_line, json_documents

name = "generic"
kind = "agent"
description = (
    "Tool calls in JSON lines or CSV through a column mapping (--option generic.mapping=PATH)"
)

OPTIONS = {
    "mapping": "path to a JSON mapping (or inline JSON): normalised column -> dotted source path, plus time_zone, epoch_unit, duration_unit, ts_kind, records",
    "columns": "inline mapping: ts_start=start,command=cmd,...",
    "host": "the sandbox/host name for every call (files that name none)",
    "host_ip": "that host's IP (adds an identity row)",
}
"""``--option generic.KEY=VALUE`` settings."""

TARGETS = (
    "call_id",
    "run_id",
    "episode_id",
    "step",
    "ts_start",
    "ts_end",
    "duration",
    "tool",
    "command",
    "arguments",
    "output",
    "exit_code",
    "is_error",
    "host",
    "host_ip",
    "model",
    "train_step",
)
SETTINGS = ("time_zone", "epoch_unit", "duration_unit", "ts_kind", "records")
TS_KINDS = ("exact", "bracket", "step", "inferred")
CALLS_SUFFIXES = (".calls.jsonl", ".calls.json", ".calls.csv")
MAPPING_SUFFIXES = CALLS_SUFFIXES
"""File names this mapping loader claims (see ``forced_only_score``)."""
_HEADER_NAME = re.compile(r"^[A-Za-z_][\w .:/@()\[\]-]{0,99}$")
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}
_sniffing = False


@dataclass(frozen=True)
class Mapping:
    """Where each normalised column comes from, and how to read times."""

    paths: dict[str, str]
    zone: tzinfo | None = None
    epoch_unit: str | None = None
    duration_unit: str = "s"
    ts_kind: str = "exact"
    records: str | None = None
    context: tuple[str, ...] = ()


def _shape(head: bytes) -> str | None:
    """``json`` for JSON lines or an array, ``csv`` for a plausible header row, else None."""
    first = first_line(head)
    if first.startswith(b"["):
        return "json"
    if first.startswith(b"{"):
        try:
            return "json" if isinstance(json.loads(first), dict) else None
        except (ValueError, RecursionError):
            return None
    text, _ = decode_line(first)
    try:
        header = next(csv.reader([text]))
    except (csv.Error, StopIteration):
        return None
    names = [h.strip() for h in header]
    if len(names) >= 2 and all(_HEADER_NAME.match(n) for n in names):
        return "csv"
    return None


def sniff(head: bytes, filename: str) -> float:
    """Score: 0.6 for ``*.calls.jsonl``/``*.calls.csv``, 0.3 for other JSON/CSV (force it), else 0.

    A file another loader recognises scores 0, so forcing ``generic`` on a known format fails;
    a hosts-kind loader's guess below 0.9 does not count (host/IP fields are common in calls).
    """
    if _shape(head) is None:
        return 0.0
    return forced_only_score(name, head, filename, CALLS_SUFFIXES)


def forced_only_score(own: str, head: bytes, filename: str, suffixes: tuple[str, ...]) -> float:
    """The score of a mapping loader (``generic``, ``generic_network``) that must never win by content.

    0 when any other loader recognises the file (so forcing a mapping loader on a known format
    fails), 0.6 for the file names of the loader's convention, else 0.3 (enough to be forced). A
    hosts-kind loader's guess below 0.9 does not count (host and IP fields are common in calls).
    One flag, shared by the mapping loaders, stops them re-sniffing each other.
    """
    global _sniffing
    if _sniffing:
        return 0.0
    from . import MIN_SCORE, REGISTRY  # the registry imports this module: look it up late

    _sniffing = True
    try:
        for other, module in REGISTRY.items():
            if other == own:
                continue
            convention = getattr(module, "MAPPING_SUFFIXES", None)
            if convention is not None:  # another mapping loader: its file names are its claim
                if filename.lower().endswith(convention):
                    return 0.0
                continue
            try:
                score = float(module.sniff(head, filename))
            except Exception:  # another loader's bug must not break detection
                score = 0.0
            if score >= 0.9 or (score >= MIN_SCORE and getattr(module, "kind", "") != "hosts"):
                return 0.0
    finally:
        _sniffing = False
    return 0.6 if filename.lower().endswith(suffixes) else 0.3


def read_mapping_document(options: LoadOptions, fmt: str) -> tuple[dict[str, Any], list[str]]:
    """``--option FMT.mapping``: inline JSON or a path to a JSON file; (mapping, files read)."""
    spec: dict[str, Any] = {}
    context: list[str] = []
    given = options.option(fmt, "mapping")
    if given and given.strip():
        text = given.strip()
        if not text.startswith(("{", "[")):
            path = Path(text).expanduser()
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise OptionError(f"--option {fmt}.mapping: cannot read {given}: {exc}") from None
            context.append(str(path.resolve()))
        try:
            document = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise OptionError(f"--option {fmt}.mapping: not valid JSON ({exc})") from None
        if not isinstance(document, dict):
            raise OptionError(f"--option {fmt}.mapping: expected a JSON object of column: field")
        spec.update(document)
    return spec, context


def load_mapping(options: LoadOptions) -> Mapping:
    """The mapping from ``generic.mapping`` and ``generic.columns`` (OptionError when invalid)."""
    spec, context = read_mapping_document(options, name)
    columns = options.option(name, "columns")
    if columns and columns.strip():
        for pair in columns.split(","):
            target, sep, source_field = pair.partition("=")
            if not sep or not target.strip() or not source_field.strip():
                raise OptionError(
                    f"--option generic.columns: expected TARGET=FIELD pairs separated by commas, got {pair!r}"
                )
            spec[target.strip()] = source_field.strip()
    unknown = sorted(set(spec) - set(TARGETS) - set(SETTINGS))
    if unknown:
        raise OptionError(
            f"generic mapping: unknown key(s) {', '.join(unknown)}; "
            f"columns are {', '.join(TARGETS)}; settings are {', '.join(SETTINGS)}"
        )
    for key, value in spec.items():
        if not isinstance(value, str) or not value.strip():
            raise OptionError(f"generic mapping: {key} must be a non-empty string, got {value!r}")
    paths = {t: spec[t].strip() for t in TARGETS if t in spec}
    if not paths:
        paths = {t: t for t in TARGETS}
    elif "ts_start" not in paths:
        raise OptionError("generic mapping: name the field that holds ts_start (the call's time)")
    unit = spec.get("epoch_unit")
    if unit is not None and unit not in NS_PER_UNIT:
        raise OptionError(f"generic mapping: epoch_unit must be one of {', '.join(NS_PER_UNIT)}")
    duration_unit = spec.get("duration_unit", "s")
    if duration_unit not in NS_PER_UNIT:
        raise OptionError(f"generic mapping: duration_unit must be one of {', '.join(NS_PER_UNIT)}")
    ts_kind = spec.get("ts_kind", "exact")
    if ts_kind not in TS_KINDS:
        raise OptionError(f"generic mapping: ts_kind must be one of {', '.join(TS_KINDS)}")
    zone = resolve_zone(spec["time_zone"]) if "time_zone" in spec else None
    return Mapping(
        paths=paths,
        zone=zone,
        epoch_unit=unit,
        duration_unit=duration_unit,
        ts_kind=ts_kind,
        records=spec.get("records"),
        context=tuple(context),
    )


def lookup(record: Any, path: str) -> Any:
    """A field by exact key, else by dotted path (dict keys and list indices); None if absent."""
    if isinstance(record, dict) and path in record:
        return record[path]
    current = record
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
    return current


def read(source: Source, options: LoadOptions) -> LoadResult:
    """Read mapped JSON lines / CSV rows into ``tool_calls`` rows and the hosts they name."""
    mapping = load_mapping(options)
    stats = LoadStats(
        path=source.display, format=name, kind=kind, unit="records" if mapping.records else "rows"
    )
    sink = RejectSink(source, stats, options.strict)
    batch = Batcher(TOOL_CALLS)
    hosts = FirstSeen(name, "first seen in a tool call's host_ip")
    # --tz generic=ZONE beats the mapping's time_zone, which beats --tz *=ZONE and UTC.
    zone = options.zones.get(name)
    if zone is None:
        zone = mapping.zone if mapping.zone is not None else options.zone_for(name)
    unit = options.epoch_unit if options.epoch_unit != "auto" else mapping.epoch_unit or "auto"
    expected = mapping.epoch_unit or "s"
    if first_line(source.head()).startswith((b"{", b"[")):
        records: Iterator[tuple[int, Any, dict[str, Any] | None, str]] = _json_calls(
            json_documents(source, stats, sink), mapping, stats, sink
        )
    else:
        records = ((line, row, None, raw) for line, row, raw in csv_records(source, stats, sink))
    for line, record, parent, raw in records:
        stats.read += 1
        if not isinstance(record, dict):
            sink.reject(line, f"call entry is not an object but {type(record).__name__}", raw)
            continue
        try:
            row = _convert(record, parent, mapping, zone, unit, expected)
        except fields.RowError as exc:
            sink.reject(line, str(exc), raw)
            continue
        hosts.add(row["host"], row["host_ip"], row["ts_start"], line)
        add_row(batch, stats, row, source, name, line)
    return LoadResult(
        kind=kind,
        table=batch.table(),
        stats=stats,
        rejects=sink.rejects,
        hosts=hosts.table(source),
        context=list(mapping.context),
    )


def _json_calls(
    lines: Iterator[Record], mapping: Mapping, stats: LoadStats, sink: RejectSink
) -> Iterator[tuple[int, Any, dict[str, Any] | None, str]]:
    """Each JSON record, or with ``records`` each item of its call list (a line of 0 is skipped)."""
    for line, record, raw in lines:
        if mapping.records is None:
            yield line, record, None, raw
            continue
        items = lookup(record, mapping.records)
        if not isinstance(items, list):
            stats.read += 1
            sink.reject(line, f"no list of calls at {mapping.records!r}", raw)
            continue
        if not items:
            stats.read += 1
            stats.skipped[f"no calls in {mapping.records!r}"] += 1
            continue
        for item in items:
            yield line, item, record, raw


def _boolean(value: Any, what: str) -> bool | None:
    if fields.is_blank(value):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise fields.RowError(f"{what} is not a boolean: {value!r}")


def _convert(
    record: dict[str, Any],
    parent: dict[str, Any] | None,
    mapping: Mapping,
    zone: tzinfo,
    unit: str,
    expected: str,
) -> dict[str, Any]:
    """One mapped record to a ``tool_calls`` row (without provenance)."""

    def get(target: str) -> Any:
        path = mapping.paths.get(target)
        if path is None:
            return None
        value = lookup(record, path)
        if value is None and parent is not None:
            value = lookup(parent, path)
        return value

    def label(target: str) -> str:
        path = mapping.paths[target]
        return target if path == target else f"{target} ({path})"

    def timestamp(target: str) -> tuple[int, str | None]:
        value = get(target)
        if isinstance(value, (bool, dict, list)):
            raise fields.RowError(f"{label(target)} is not a time: {value!r}")
        try:
            return parse_time(value, default_tz=zone, epoch_unit=unit, expected_unit=expected)
        except TimeParseError as exc:
            raise fields.RowError(f"{label(target)}: {exc}") from None

    notes: list[str] = []
    if fields.is_blank(get("ts_start")):
        raise fields.RowError(f"{label('ts_start')} is missing")
    ts_start, note = timestamp("ts_start")
    if note:
        notes.append(note)
    ts_end = None
    if not fields.is_blank(get("ts_end")):
        ts_end, note = timestamp("ts_end")
        if note and note not in notes:
            notes.append(note)
    elif not fields.is_blank(get("duration")):
        duration = get("duration")
        if isinstance(duration, bool):
            raise fields.RowError(f"{label('duration')} is not a number: {duration!r}")
        try:
            seconds = float(duration)
        except (TypeError, ValueError):
            raise fields.RowError(f"{label('duration')} is not a number: {duration!r}") from None
        if seconds != seconds or seconds < 0 or seconds > 1e12:
            raise fields.RowError(f"{label('duration')} out of range: {duration!r}")
        ts_end = ts_start + int(seconds * NS_PER_UNIT[mapping.duration_unit])
    if ts_end is not None and ts_end < ts_start:
        notes.append("ts_end before ts_start: end ignored")
        ts_end = None
    exit_code = (
        fields.integer(get("exit_code"), label("exit_code"))
        if "exit_code" in mapping.paths
        else None
    )
    is_error = _boolean(get("is_error"), label("is_error")) if "is_error" in mapping.paths else None
    if is_error is None and exit_code is not None:
        is_error = exit_code != 0
    arguments = get("arguments")
    command_value = get("command")
    command = shell_text(command_value) if not isinstance(command_value, dict) else None
    if command is None:
        command = command_from(command_value) or command_from(arguments)
    host_ip = fields.ip(get("host_ip"), label("host_ip")) if "host_ip" in mapping.paths else None

    def integer(target: str) -> int | None:
        return fields.integer(get(target), label(target)) if target in mapping.paths else None

    return {
        "call_id": fields.text(get("call_id")),
        "run_id": fields.text(get("run_id")),
        "episode_id": fields.text(get("episode_id")),
        "step": integer("step"),
        "ts_start": ts_start,
        "ts_end": ts_end,
        "ts_kind": mapping.ts_kind,
        "tool": fields.text(get("tool")),
        "command": command,
        "arguments": fields.text(arguments),
        "output": truncate_output(get("output")),
        "exit_code": exit_code,
        "is_error": is_error,
        "host": fields.text(get("host")),
        "host_ip": host_ip,
        "model": fields.text(get("model")),
        "train_step": integer("train_step"),
        "ts_note": "; ".join(notes) or None,
    }
