"""Generic tool calls: an in-house RL framework's JSON lines or CSV, read through a column mapping.

Forced with ``--input-format generic`` (or ``GLOB=generic``), or detected by file name alone
(``*.calls.jsonl``, ``*.calls.json``, ``*.calls.csv``); it refuses files another loader
recognises. ``mapping`` / ``columns`` (see ``OPTIONS``) name the source field of each target
(``call_id run_id episode_id step ts_start ts_end duration tool command arguments output exit_code
is_error host host_ip model train_step``): a key, else a dotted path into nested JSON. Without a
mapping each target is read from its same-named column. Mapping settings: ``time_zone`` (default
UTC), ``epoch_unit`` (default: by magnitude, noted unless seconds), ``duration_unit`` (s),
``ts_kind`` (exact) and ``records`` (a path to a list of calls per line).

``command`` may be text or argv; without one it is taken from ``arguments``. A call naming both
``host`` and ``host_ip`` yields an identity row. JSON lines are read column-wise when the
mapping allows, else (and with ``read(..., fast=False)``) record by record; the two are
property-tested equal. Also here: small helpers shared by the coding-agent loaders. Details:
``tests/data/generic/README.md``.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from datetime import UTC, timezone, tzinfo
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import OptionError
from ..schema import TOOL_CALLS
from ..sources import Source, decode_line
from ..timeparse import NS_PER_UNIT, TimeParseError, parse_time, resolve_zone, zone_name
from . import fields
from .base import FileLoad, LoadOptions, LoadResult
from .blocks import json_pieces, line_runs, line_spans, numbered_lines
from .calls import OUTPUT_CHARS, FirstSeen, command_from, shell_text, truncate_output
from .columnar import BAD, IPV4, beyond_python, constant, mapped, table_of
from .records import csv_records, first_line, json_documents, json_line_record

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


def head_shape(head: bytes, *, tables: bool = False) -> str | None:
    """``json`` for JSON lines or an array, ``csv`` for a plausible header row, else None: the
    gate of the mapping loaders' sniff. With ``tables`` (``generic_network``) also ``parquet``,
    a pretty-printed object (a first line of just ``{``) and header names left blank (a pandas
    index column)."""
    if tables and head.startswith(b"PAR1"):
        return "parquet"
    first = first_line(head)
    if first.startswith(b"["):
        return "json"
    if first.startswith(b"{"):
        try:
            return "json" if isinstance(json.loads(first), dict) else None
        except (ValueError, RecursionError):
            return "json" if tables and first == b"{" else None
    text, _ = decode_line(first)
    try:
        header = next(csv.reader([text]))
    except (csv.Error, StopIteration):
        return None
    names = [h.strip() for h in header]
    if tables:
        names = [n for n in names if n]
    if len(names) >= 2 and all(_HEADER_NAME.match(n) for n in names):
        return "csv"
    return None


def sniff(head: bytes, filename: str) -> float:
    """Score: 0.6 for ``*.calls.jsonl``/``*.calls.csv``, 0.3 for other JSON/CSV (force it), else 0.

    A file another loader recognises scores 0, so forcing ``generic`` on a known format fails;
    a hosts-kind loader's guess below 0.9 does not count (host/IP fields are common in calls).
    """
    if head_shape(head) is None:
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


def read(source: Source, options: LoadOptions, *, fast: bool = True) -> LoadResult:
    """Read mapped JSON lines / CSV rows into ``tool_calls`` rows and the hosts they name.

    With ``fast`` (the default) JSON lines are read column-wise when the mapping and the file's
    head allow it (``_Plan``); ``fast=False`` reads every record with the per-record reader, the
    reference the column-wise path is tested against. CSV and whole-file JSON documents are read
    record by record.
    """
    mapping = load_mapping(options)
    load = FileLoad(
        source, options, name, kind, TOOL_CALLS, unit="records" if mapping.records else "rows"
    )
    reader = _Reader(load, mapping)
    if first_line(source.head()).startswith((b"{", b"[")):
        plan = _Plan.of(source, mapping, reader) if fast and _json_lines(source) else None
        if plan is None:
            for line, record, raw in json_documents(source, load.stats, load.sink):
                reader.record(line, record, raw)
        else:
            plan.read()
    else:
        for line, row, raw in csv_records(source, load.stats, load.sink):
            reader.call(line, row, None, raw)
    hosts = FirstSeen(name, "first seen in a tool call's host_ip", reader.hosts)
    return load.result(hosts=hosts.table(source), context=list(mapping.context))


class _Reader:
    """The per-record reader: one file's mapping, time settings and the hosts seen so far."""

    def __init__(self, load: FileLoad, mapping: Mapping) -> None:
        self.load = load
        self.mapping = mapping
        options = load.options
        # --tz generic=ZONE beats the mapping's time_zone, which beats --tz *=ZONE and UTC.
        zone = options.zones.get(name)
        if zone is None:
            zone = mapping.zone if mapping.zone is not None else options.zone_for(name)
        self.zone: tzinfo = zone
        self.unit = (
            options.epoch_unit if options.epoch_unit != "auto" else mapping.epoch_unit or "auto"
        )
        self.expected = mapping.epoch_unit or "s"
        self.hosts: dict[tuple[str, str], tuple[int, int]] = {}

    def line(self, line: int, raw_bytes: bytes) -> None:
        """One JSON line through the per-line reader."""
        found = json_line_record(line, raw_bytes, self.load)
        if found is not None:
            self.record(line, found[0], found[1])

    def record(self, line: int, record: dict[str, Any], raw: str) -> None:
        """A JSON record: one call, or (with ``records``) each item of its call list."""
        records = self.mapping.records
        if records is None:
            self.call(line, record, None, raw)
            return
        items = lookup(record, records)
        if not isinstance(items, list):
            self.load.reject(line, f"no list of calls at {records!r}", raw)
            return
        if not items:
            self.load.skip(f"no calls in {records!r}")
            return
        for item in items:
            self.call(line, item, record, raw)

    def call(self, line: int, record: Any, parent: dict[str, Any] | None, raw: str) -> None:
        if not isinstance(record, dict):
            self.load.reject(line, f"call entry is not an object but {type(record).__name__}", raw)
            return
        try:
            row = _convert(record, parent, self.mapping, self.zone, self.unit, self.expected)
        except fields.RowError as exc:
            self.load.reject(line, str(exc), raw)
            return
        self.seen(row["host"], row["host_ip"], row["ts_start"], line)
        self.load.emit(row, line)

    def seen(self, host: str | None, address: str | None, ts: int, line: int) -> None:
        """``FirstSeen.add`` in any order: the earliest time, then the first line."""
        if host and address:
            first = self.hosts.get((host, address))
            if first is None or (ts, line) < first:
                self.hosts[(host, address)] = (ts, line)


def _json_lines(source: Source) -> bool:
    """Whether ``json_documents`` reads the file as JSON lines (not one whole-file document)."""
    first = first_line(source.head())
    try:
        return not isinstance(json.loads(first), list)
    except (ValueError, RecursionError):
        return not first.startswith((b"{", b"["))


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


# --- the column-wise path -------------------------------------------------------------------------

TEXT = pa.string()
PY_WHITESPACE = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())
"""What ``str.strip()`` strips (every ``isspace`` character is below U+3001)."""


def py_strip(values: pa.Array) -> pa.Array:
    """``str.strip()`` of each value (nulls stay null).

    ASCII whitespace is trimmed byte-wise (fast); only values that then still start or end with
    a non-ASCII character are trimmed again, from the original, with every ``isspace`` character.
    """
    first, last = _end_bytes(values)
    if not (_SPACE_BYTE[first] | _SPACE_BYTE[last]).any():
        return values  # nothing to strip: no copy
    trimmed = pc.ascii_trim(values, characters=_ASCII_WHITESPACE)
    first, last = _end_bytes(trimmed)
    again = np.flatnonzero((first >= 0x80) | (last >= 0x80))
    if not len(again):
        return trimmed
    exact = pc.utf8_trim(values.take(again), characters=PY_WHITESPACE)
    chosen = np.zeros(len(values), dtype=bool)
    chosen[again] = True
    return pc.replace_with_mask(trimmed, pa.array(chosen), exact)


_ASCII_WHITESPACE = "".join(c for c in PY_WHITESPACE if c.isascii())
_SPACE_BYTE = np.zeros(256, dtype=bool)
_SPACE_BYTE[[ord(c) for c in _ASCII_WHITESPACE]] = True
_SPACE_BYTE[0x80:] = True  # a non-ASCII character may be whitespace


def _end_bytes(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The first and last byte of each string (0 for null or empty ones)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    values = values.cast(pa.large_string())
    _, offsets_buffer, data_buffer = values.buffers()
    n = len(values)
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[values.offset : values.offset + n + 1]
    data = np.zeros(1, dtype=np.uint8)
    if data_buffer is not None and data_buffer.size:
        data = np.frombuffer(data_buffer, dtype=np.uint8)
    starts, ends = offsets[:-1], offsets[1:]
    filled = (ends > starts) & np.asarray(values.is_valid())
    first = np.where(filled, data[np.where(filled, starts, 0)], 0)
    last = np.where(filled, data[np.where(filled, ends - 1, 0)], 0)
    return first, last


def text_of(values: pa.Array) -> pa.Array:
    """``fields.text`` of each string: stripped, null when blank or ``-``."""
    stripped = py_strip(values)
    length = pc.binary_length(stripped)
    blank = pc.or_(pc.equal(length, 0), pc.and_(pc.equal(length, 1), pc.equal(stripped, "-")))
    return nulled(stripped, mask(blank))


def nulled(values: pa.Array, drop: np.ndarray) -> pa.Array:
    """``values`` with the entries ``drop`` marks set to null (the strings are not copied)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not drop.any():
        return values
    if values.offset:
        return pc.if_else(pa.array(drop), pa.scalar(None, values.type), values)
    keep = np.asarray(values.is_valid()) & ~drop
    validity = pa.py_buffer(np.packbits(keep, bitorder="little"))
    return pa.Array.from_buffers(values.type, len(values), [validity, *values.buffers()[1:]])


def truncated(values: pa.Array) -> pa.Array:
    """``truncate`` of each text: over ``OUTPUT_CHARS`` characters, cut with the same marker."""
    if not mask(pc.greater(pc.binary_length(values), OUTPUT_CHARS)).any():
        return values  # no text is that long in bytes, so none is in characters
    length = pc.utf8_length(values)
    long = pc.fill_null(pc.greater(length, OUTPUT_CHARS), False)
    if not mask(long).any():
        return values
    marker = pc.binary_join_element_wise(
        pa.scalar("... ["),
        pc.cast(pc.subtract(length, OUTPUT_CHARS), TEXT),
        pa.scalar(" more characters]"),
        pa.scalar(""),
    )
    marker = pc.if_else(long, marker, pa.scalar(""))
    head = pc.utf8_slice_codeunits(values, 0, OUTPUT_CHARS)  # shorter texts stay whole
    return pc.binary_join_element_wise(head, marker, pa.scalar(""))


def mask(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean array (nulls false) as numpy."""
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)


_TEXT_TARGETS = ("call_id", "run_id", "episode_id", "tool", "host", "model")
_INTEGER_TARGETS = ("step", "train_step", "exit_code")
_NUMERIC_TARGETS = frozenset({"ts_start", "ts_end", "duration", *_INTEGER_TARGETS})
"""Targets whose reading gives the same for an integer and the equal double (an int64 column
may hold a JSON number with a fraction as a double instead: ``_types``)."""
_EXACT = 2**53
_HEAD_RECORDS = 200
_GIVE_UP_LINES = 4096
"""After this many refused lines, outnumbering the parsed ones, the file goes line by line."""
ISO = (
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2})"
    r"(?::([0-9]{2})(?:[.,]([0-9]{1,9})[0-9]*)?)?(Z|z|[+-][0-9]{2}(?::?[0-9]{2})?)?$"
)
"""The ISO 8601 spellings ``parse_iso`` reads, in ASCII digits and without padding or a zone
name: vectorised (``iso_ns``); any other spelling goes to ``parse_time`` per distinct value."""


class _Plan:
    """How a JSON-lines file is read column-wise under its mapping.

    pyarrow parses each run of lines with the schema of the mapped paths (``_schema``: dotted
    paths as nested structs, with ``records`` the call list as a list of structs), typed as the
    file's head shows them (``_types``); then every target is converted in columns with
    ``_convert``'s rules (``_Columns``), distinct values the vectorised rules do not cover going
    through ``_convert``'s own helpers once each. A line pyarrow refuses (another type, a key
    twice, bad JSON), a value a rule does not vouch for (a reject, an unusual spelling) and a line
    that names a dotted path as one key (``lookup`` tries the key first) go through
    ``_Reader.line``; their rows are merged back in line order.
    """

    def __init__(self, reader: _Reader, schema: pa.Schema, types: dict[str, pa.DataType]) -> None:
        self.reader = reader
        self.load = reader.load
        self.mapping = reader.mapping
        self.schema = schema
        self.types = types
        dotted = [p for p in (*self.mapping.paths.values(), self.mapping.records or "") if "." in p]
        self.literal = [p.encode() for p in dotted]

    @classmethod
    def of(cls, source: Source, mapping: Mapping, reader: _Reader) -> _Plan | None:
        """The plan, or None when the file is read record by record: a path through a list
        index, paths that overlap, or a mapped value the head shows as an object or a list."""
        paths = set(mapping.paths.values())
        if any(part.isdigit() for p in paths for part in p.split(".")):
            return None
        if mapping.records and any(part.isdigit() for part in mapping.records.split(".")):
            return None
        types = _types(source, mapping)
        if types is None:
            return None
        schema = _schema(types, mapping.records)
        return None if schema is None else cls(reader, schema, types)

    def read(self) -> None:
        """Every line into the load; when most lines of the first runs are refused (a field whose
        type changes from line to line), the rest of the file goes line by line at once."""
        reader = self.reader
        parsed = refused = 0
        for first, blob, count in line_runs(self.load.source, b"{", b"}"):
            if count == 0 or (refused > _GIVE_UP_LINES and refused > parsed):
                for line, raw in numbered_lines(first, blob, count):
                    reader.line(line, raw)
                continue
            for at, piece, m, table in json_pieces(blob, first, count, self.schema):
                if table is None:
                    refused += m
                    for line, raw in numbered_lines(at, piece):
                        reader.line(line, raw)
                else:
                    parsed += m
                    self._checked(table, at, piece, m)

    def _checked(self, table: pa.Table, first: int, blob: bytes, n: int) -> None:
        """A parsed piece: vouched lines become rows column-wise, the others go line by line."""
        load = self.load
        starts, ends = line_spans(blob)
        ok = ~beyond_python(blob, starts, ends)  # lines Python's json may refuse: line by line
        for literal in self.literal:
            at = blob.find(literal)
            while at >= 0:
                ok[int(np.searchsorted(starts, at, side="right")) - 1] = False
                at = blob.find(literal, at + 1)
        columns = _Columns(self, table, ok)
        rows, calls_per_line, empty = columns.rows(first)
        side = load.apart()
        bad = np.flatnonzero(~ok)
        first_good = int(np.argmax(ok)) if ok.any() else n

        def per_line(indices: np.ndarray) -> None:
            for i in indices.tolist():
                self.reader.line(first + i, blob[starts[i] : ends[i]].rstrip(b"\r"))

        # the lines read one by one keep their place for the early stop (as columnar._checked)
        self.reader.load = side
        per_line(bad[bad < first_good])
        good_empty = int((empty & ok).sum())
        if good_empty:
            load.skip(f"no calls in {self.mapping.records!r}", good_empty)
        loaded = int(calls_per_line[ok].sum())
        load.count_loaded(loaded)
        per_line(bad[bad >= first_good])
        self.reader.load = load
        notes = rows.column("ts_note").drop_null().value_counts()
        for item in notes.to_pylist():
            load.note(item["values"], item["counts"])
        for host, address, ts, line in columns.hosts(rows):
            self.reader.seen(host, address, ts, line)
        parts = [t for t in (rows, side.rows.table()) if t.num_rows]
        if len(parts) > 1:
            load.keep_rows(pa.concat_tables(parts).sort_by([("source_line", "ascending")]))
        elif parts:
            load.keep_rows(parts[0])


def _types(source: Source, mapping: Mapping) -> dict[str, pa.DataType] | None:
    """The Arrow type of each mapped path, as the records on the file's head hold it (text when
    none does), or None when one holds an object or a list (``_convert`` reads those whole)."""
    seen: dict[str, list[type]] = {p: [] for p in mapping.paths.values()}
    records = 0
    for raw in source.head().split(b"\n")[:_HEAD_RECORDS]:
        try:
            record = json.loads(raw)
        except (ValueError, RecursionError):
            continue
        if not isinstance(record, dict):
            continue
        records += 1
        holders: list[Any] = [record]
        if mapping.records is not None:
            items = lookup(record, mapping.records)
            holders += [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []
        for holder in holders:
            for path in seen:
                value = lookup(holder, path)
                if value is not None:
                    seen[path].append(type(value))
    if not records:
        return None
    numeric = {mapping.paths[t] for t in _NUMERIC_TARGETS if t in mapping.paths}
    out: dict[str, pa.DataType] = {}
    for path, kinds in seen.items():
        if dict in kinds or list in kinds:
            return None
        common = max(set(kinds), key=kinds.count) if kinds else str
        if common in (int, float) and path in numeric and float in kinds:
            common = float
        out[path] = {str: TEXT, int: pa.int64(), float: pa.float64(), bool: pa.bool_()}[common]
    return out


def _schema(types: dict[str, pa.DataType], records: str | None) -> pa.Schema | None:
    """The parse schema: each path as nested structs (twice with ``records``: in the call list's
    items and beside it); None when a path is both a value and a parent of another."""
    tree: dict[str, Any] = {}

    def place(node: dict[str, Any], parts: list[str], leaf: Any) -> bool:
        *parents, last = parts
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                return False
            node = child
        if last in node and (isinstance(node[last], dict) or node[last] != leaf):
            return False
        node[last] = leaf
        return True

    for path, type_ in types.items():
        if not place(tree, path.split("."), type_):
            return None
    if records is not None:
        items: dict[str, Any] = {}
        for path, type_ in types.items():
            place(items, path.split("."), type_)
        if not place(tree, records.split("."), pa.list_(_struct(items))):
            return None
    return pa.schema([(key, _arrow(value)) for key, value in tree.items()])


def _struct(node: dict[str, Any]) -> pa.DataType:
    return pa.struct([(key, _arrow(value)) for key, value in node.items()])


def _arrow(node: Any) -> pa.DataType:
    return _struct(node) if isinstance(node, dict) else node


def _leaf(array: pa.Array, path: str) -> pa.Array:
    """The values at a dotted path of a struct array (a null parent makes them null)."""
    for part in path.split("."):
        array = dict(zip([f.name for f in array.type], array.flatten(), strict=True))[part]
    return array


class _Columns:
    """One parsed piece's calls converted in columns (``_convert``'s rules); ``ok`` (per line)
    is cleared for lines a rule does not vouch for."""

    def __init__(self, plan: _Plan, table: pa.Table, ok: np.ndarray) -> None:
        self.plan = plan
        self.mapping = plan.mapping
        self.reader = plan.reader
        self.ok = ok
        n = table.num_rows
        top = pa.StructArray.from_arrays(
            [table.column(c).combine_chunks() for c in table.column_names], table.column_names
        )
        self.empty = np.zeros(n, dtype=bool)
        if self.mapping.records is None:
            self.line = np.arange(n, dtype=np.int64)
            self.item: pa.StructArray | None = None
        else:
            items = _leaf(top, self.mapping.records)
            ok &= mask(pc.is_valid(items))  # no list there: the reader rejects the line
            sizes = np.asarray(pc.fill_null(pc.list_value_length(items), 0), dtype=np.int64)
            self.empty = mask(pc.is_valid(items)) & (sizes == 0)
            self.item = pc.list_flatten(items)
            self.line = np.asarray(pc.list_parent_indices(items), dtype=np.int64)
            null_item = mask(pc.is_null(self.item))
            ok[self.line[null_item]] = False  # not an object: rejected
        self.top = top
        self.call_ok = np.ones(len(self.line), dtype=bool)

    def value(self, target: str) -> pa.Array | None:
        """The mapped value of each call (the call item's, else its line's), or None."""
        path = self.mapping.paths.get(target)
        if path is None:
            return None
        outer = _leaf(self.top, path)
        if self.item is None:
            return outer
        inner = _leaf(self.item, path)
        return pc.coalesce(inner, outer.take(pa.array(self.line)))

    def rows(self, first: int) -> tuple[pa.Table, np.ndarray, np.ndarray]:
        """The vouched lines' calls as ``tool_calls`` rows, calls per line, empty lists."""
        reader = self.reader
        n_calls = len(self.line)
        good = self.call_ok
        values: dict[str, Any] = {}
        for target in _TEXT_TARGETS:
            values[target] = self._text(self.value(target))
        start, start_note = self._time("ts_start", required=True)
        end, end_note = self._end(start)
        repeated = pc.fill_null(pc.equal(end_note, start_note), False)
        notes = _joined(start_note, pc.if_else(repeated, pa.scalar(None, TEXT), end_note))
        before = (end != _NO_TIME) & (end < start)
        if before.any():
            notes = _joined(notes, _where(before, "ts_end before ts_start: end ignored"))
        exit_code = self._integer("exit_code")
        is_error = self._map("is_error", _boolean_or_bad, pa.bool_())
        derived = pc.not_equal(exit_code, 0)
        is_error = pc.if_else(pc.is_valid(is_error), is_error, derived)
        arguments_value = self.value("arguments")
        values.update(
            step=self._integer("step"),
            train_step=self._integer("train_step"),
            ts_start=pa.array(start, pa.int64()),
            ts_end=pa.array(np.where(before, 0, end), pa.int64(), mask=(end == _NO_TIME) | before),
            ts_kind=constant(self.mapping.ts_kind, n_calls),
            command=self._command(self.value("command"), arguments_value),
            arguments=self._text(arguments_value),
            output=truncated(self._text(self.value("output"))),
            exit_code=exit_code,
            is_error=is_error,
            host_ip=self._map("host_ip", _ip_or_bad, TEXT, same=IPV4),
            ts_note=notes,
        )
        # a line is vouched when every call of it is
        bad_calls = np.bincount(self.line[~good], minlength=len(self.ok))
        self.ok &= bad_calls == 0
        keep = np.flatnonzero(self.ok[self.line])
        source = reader.load.source
        m = len(keep)
        every = m == n_calls
        columns = {k: v if every else v.take(pa.array(keep)) for k, v in values.items()}
        columns.update(
            source_format=constant(name, m),
            source_path=constant(source.display, m),
            source_line=pa.array(self.line[keep] + first, pa.int64()),
        )
        calls_per_line = np.bincount(self.line, minlength=len(self.ok))
        return table_of(columns, m, TOOL_CALLS), calls_per_line, self.empty

    @staticmethod
    def hosts(rows: pa.Table) -> list[tuple[str, str, int, int]]:
        """(host, address, time, line) of the first call naming each pair in ``rows``."""
        named = rows.filter(pc.and_(pc.is_valid(rows["host"]), pc.is_valid(rows["host_ip"])))
        if not named.num_rows:
            return []
        named = named.select(["host", "host_ip", "ts_start", "source_line"]).set_column(
            2, "ts_start", named["ts_start"].cast(pa.int64())
        )
        named = named.sort_by([("ts_start", "ascending"), ("source_line", "ascending")])
        first = named.group_by(["host", "host_ip"], use_threads=False).aggregate(
            [("ts_start", "first"), ("source_line", "first")]
        )
        return list(
            zip(
                first["host"].to_pylist(),
                first["host_ip"].to_pylist(),
                first["ts_start_first"].to_pylist(),
                first["source_line_first"].to_pylist(),
                strict=True,
            )
        )

    # --- targets ------------------------------------------------------------------------------

    def _label(self, target: str) -> str:
        path = self.mapping.paths[target]
        return target if path == target else f"{target} ({path})"

    def _null(self, type_: pa.DataType) -> pa.Array:
        return pa.nulls(len(self.line), type_)

    def _text(self, values: pa.Array | None) -> pa.Array:
        """``fields.text``."""
        if values is None:
            return self._null(TEXT)
        if pa.types.is_string(values.type):
            return text_of(values)
        return mapped(values, fields.text)

    def _map(
        self, target: str, convert: Any, type_: pa.DataType, same: str | None = None
    ) -> pa.Array:
        """A target read by ``convert(value, label)`` per distinct value (BAD: not vouched)."""
        values = self.value(target)
        if values is None:
            return self._null(type_)
        label = self._label(target)
        regex = same if pa.types.is_string(values.type) else None
        return mapped(values, lambda v: convert(v, label), self.call_ok, type=type_, same=regex)

    def _integer(self, target: str) -> pa.Array:
        values = self.value(target)
        if values is not None and pa.types.is_integer(values.type):
            return values  # an int64 column holds what fields.integer gives back
        return self._map(target, _integer_or_bad, pa.int64())

    def _time(self, target: str, *, required: bool = False) -> tuple[np.ndarray, pa.Array]:
        """ns (``_NO_TIME`` where blank) and note of a time target."""
        values = self.value(target)
        n = len(self.line)
        if values is None:
            if required:
                self.call_ok[:] = False
            return np.full(n, _NO_TIME, dtype=np.int64), self._null(TEXT)
        blank = _blank(values)
        if required:
            self.call_ok &= ~blank
        reader = self.reader
        ns, note, ok = _times(values, reader.zone, reader.unit, reader.expected)
        self.call_ok &= ok | blank
        return np.where(blank, _NO_TIME, ns), nulled(note, blank)

    def _end(self, start: np.ndarray) -> tuple[np.ndarray, pa.Array]:
        """ts_end: its own target, else ts_start + duration."""
        end, note = self._time("ts_end")
        duration = self.value("duration")
        missing = end == _NO_TIME
        if duration is None or not missing.any():
            return end, note
        unit = NS_PER_UNIT[self.mapping.duration_unit]
        label = self._label("duration")
        offset = mapped(
            duration, lambda v: _duration_or_bad(v, label, unit), self.call_ok, type=pa.int64()
        )
        used = missing & ~_blank(duration) & (start != _NO_TIME)
        offsets = np.asarray(pc.fill_null(offset, 0), dtype=np.int64)
        return np.where(used, start + offsets, end), note

    def _command(self, command: pa.Array | None, arguments: pa.Array | None) -> pa.Array:
        """``shell_text`` of the command, else ``command_from`` of the arguments."""
        found = self._null(TEXT)
        if command is not None and pa.types.is_string(command.type):
            # (a number or a boolean holds no shell text)
            stripped = py_strip(command)
            found = nulled(stripped, mask(pc.equal(pc.binary_length(stripped), 0)))
        if arguments is None:
            return found
        missing = np.flatnonzero(mask(pc.is_null(found)))
        if not len(missing):
            return found
        from_arguments = mapped(arguments.take(pa.array(missing)), command_from)
        chosen = np.zeros(len(found), dtype=bool)
        chosen[missing] = True
        return pc.replace_with_mask(found, pa.array(chosen), from_arguments)


_NO_TIME = np.iinfo(np.int64).min
"""Marks a blank time in an int64 column (no real time is that early)."""


def _blank(values: pa.Array) -> np.ndarray:
    """``fields.is_blank`` of each value."""
    if not pa.types.is_string(values.type):
        return mask(pc.is_null(values))
    stripped = py_strip(values)
    return mask(pc.is_in(stripped, value_set=pa.array(["", "-"]))) | mask(pc.is_null(values))


def _times(
    values: pa.Array, zone: tzinfo, unit: str, expected: str
) -> tuple[np.ndarray, pa.Array, np.ndarray]:
    """``parse_time`` of each value: ns, note, and whether it reads (blank values: not)."""
    n = len(values)
    ns = np.zeros(n, dtype=np.int64)
    note = pa.nulls(n, TEXT)
    ok = np.zeros(n, dtype=bool)
    rest = mask(pc.is_valid(values))
    if pa.types.is_boolean(values.type):
        return ns, note, ok  # "not a time": rejected
    if pa.types.is_integer(values.type):
        ns, note, ok = _epoch_ns(np.asarray(pc.fill_null(values, 0)), unit, expected)
        ok &= rest
        rest &= ~ok
    elif pa.types.is_string(values.type):
        digits = mask(pc.match_substring_regex(values, r"^[0-9]{1,15}$"))
        if digits.any():
            numbers = np.asarray(pc.fill_null(pc.cast(nulled(values, ~digits), pa.int64()), 0))
            got, notes, fine = _epoch_ns(numbers, unit, expected)
            fine &= digits
            ns, note, ok = np.where(fine, got, ns), pc.if_else(pa.array(fine), notes, note), fine
            rest &= ~fine
        iso = rest & mask(pc.match_substring_regex(values, ISO))
        if iso.any():
            got, notes, fine = iso_ns(nulled(values, ~iso), zone)
            fine &= iso
            ns = np.where(fine, got, ns)
            note = pc.if_else(pa.array(fine), notes, note)
            ok |= fine
            rest &= ~fine
    elif pa.types.is_floating(values.type):
        # a double beyond 2**53 may be an integer that lost digits: the reader decides
        rest &= mask(pc.less(pc.abs(values), _EXACT))
    if rest.any():
        rows = np.flatnonzero(rest)
        subset = values.take(pa.array(rows))
        memo: dict[Any, Any] = {}

        def parse(value: Any) -> Any:
            if value not in memo:
                try:
                    memo[value] = parse_time(
                        value, default_tz=zone, epoch_unit=unit, expected_unit=expected
                    )
                except TimeParseError:
                    memo[value] = BAD
            return memo[value]

        fine = np.ones(len(rows), dtype=bool)
        got = mapped(subset, lambda v: _part(parse(v), 0), fine, type=pa.int64())
        notes = mapped(subset, lambda v: _part(parse(v), 1), fine)
        ns[rows] = np.asarray(pc.fill_null(got, 0))
        ok[rows] = fine
        chosen = np.zeros(n, dtype=bool)
        chosen[rows] = True
        note = pc.replace_with_mask(note, pa.array(chosen), notes)
    return ns, note, ok


def _joined(first: pa.Array, second: pa.Array) -> pa.Array:
    """``"; ".join`` of the non-null texts of each row (null when both are null).

    (``binary_join_element_wise(..., null_handling="skip")`` drops all-null rows in pyarrow 26.)
    """
    both = pc.and_(pc.is_valid(first), pc.is_valid(second))
    return pc.if_else(
        both, pc.binary_join_element_wise(first, second, "; "), pc.coalesce(first, second)
    )


def _where(chosen: np.ndarray, text: str) -> pa.Array:
    """``text`` where ``chosen``, else null."""
    return pc.if_else(pa.array(chosen), pa.scalar(text), pa.scalar(None, TEXT))


def _part(parsed: Any, index: int) -> Any:
    return BAD if parsed is BAD else parsed[index]


_BANDS = ((1e11, "s"), (1e14, "ms"), (1e17, "us"))


def _epoch_ns(
    numbers: np.ndarray, unit: str, expected: str
) -> tuple[np.ndarray, pa.Array, np.ndarray]:
    """``parse_epoch`` of integers: ns, note, and whether it is exact and in range."""
    magnitude = np.abs(numbers.astype(np.float64))
    if unit == "auto":
        chosen = np.full(len(numbers), "ns", dtype=object)
        for bound, name_ in reversed(_BANDS):
            chosen[magnitude < bound] = name_
    else:
        chosen = np.full(len(numbers), unit, dtype=object)
    factor = (
        np.array([NS_PER_UNIT[c] for c in chosen], dtype=np.int64)
        if len(numbers)
        else np.zeros(0, np.int64)
    )
    ok = (magnitude < _EXACT) & (magnitude * factor < 2.0**62)
    ns = np.where(ok, numbers * np.where(ok, factor, 0), 0)
    notes = [
        None
        if unit != "auto" or c == expected
        else f"epoch unit {c} by magnitude (format documents {expected})"
        for c in chosen
    ]
    return ns, pa.array(notes, TEXT), ok


def iso_ns(values: pa.Array, zone: tzinfo) -> tuple[np.ndarray, pa.Array, np.ndarray]:
    """``parse_iso`` of text matching ``ISO``: ns, note, and whether it is vouched (a real
    date and time, a valid offset, a naive time only in a zone without DST)."""
    n = len(values)
    named = ISO.replace("([0-9]{4})", "(?P<y>[0-9]{4})", 1)
    for group, key in (
        ("-([0-9]{2})-", "-(?P<mo>[0-9]{2})-"),
        ("-([0-9]{2})[Tt ]", "-(?P<d>[0-9]{2})[Tt ]"),
        ("[Tt ]([0-9]{2}):", "[Tt ](?P<h>[0-9]{2}):"),
        (":([0-9]{2})(?::", ":(?P<mi>[0-9]{2})(?::"),
        ("(?::([0-9]{2})", "(?::(?P<s>[0-9]{2})"),
        ("[.,]([0-9]{1,9})", "[.,](?P<f>[0-9]{1,9})"),
        ("(Z|z|", "(?P<z>Z|z|"),
    ):
        named = named.replace(group, key, 1)
    parts = pc.extract_regex(values, named)
    got = {f.name: parts.field(f.name) for f in parts.type}

    def number(key: str) -> np.ndarray:
        text = pc.if_else(pc.equal(got[key], ""), "0", got[key])
        return np.asarray(pc.fill_null(pc.cast(text, pa.int64()), 0), dtype=np.int64)

    y, mo, d, h, mi, s = (number(k) for k in ("y", "mo", "d", "h", "mi", "s"))
    frac = np.asarray(
        pc.fill_null(
            pc.cast(
                pc.utf8_rpad(pc.if_else(pc.equal(got["f"], ""), "0", got["f"]), 9, "0"), pa.int64()
            ),
            0,
        ),
        dtype=np.int64,
    )
    leap = ((y % 4 == 0) & (y % 100 != 0)) | (y % 400 == 0)
    days_in = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])[np.clip(mo - 1, 0, 11)] + (
        leap & (mo == 2)
    )
    ok = mask(pc.is_valid(parts)) & (y >= 1700) & (y <= 2200) & (mo >= 1) & (mo <= 12)
    ok &= (d >= 1) & (d <= days_in) & (h <= 23) & (mi <= 59) & (s <= 59)
    # offsets: Z, +HH, +HHMM, +HH:MM; none: the zone for naive times (fixed offsets only)
    z = got["z"]
    sign = np.where(mask(pc.starts_with(z, "-")), -1, 1)
    digits = pc.replace_substring(pc.utf8_slice_codeunits(z, 1), ":", "")
    hours = np.asarray(
        pc.fill_null(
            pc.cast(
                pc.if_else(
                    pc.greater_equal(pc.binary_length(digits), 2),
                    pc.utf8_slice_codeunits(digits, 0, 2),
                    "0",
                ),
                pa.int64(),
                safe=False,
            ),
            0,
        )
    )
    minutes = np.asarray(
        pc.fill_null(
            pc.cast(
                pc.if_else(
                    pc.equal(pc.binary_length(digits), 4),
                    pc.utf8_slice_codeunits(digits, 2, 4),
                    "0",
                ),
                pa.int64(),
                safe=False,
            ),
            0,
        )
    )
    naive = mask(pc.equal(z, ""))
    letter = mask(pc.is_in(z, value_set=pa.array(["Z", "z"])))
    ok &= naive | letter | ((minutes < 60) & (hours * 60 + minutes < 24 * 60))
    offset = np.where(letter, 0, sign * (hours * 3600 + minutes * 60))
    note = pa.nulls(n, TEXT)
    if naive.any():
        fixed = zone.utcoffset(None) if zone is UTC or isinstance(zone, timezone) else None
        if fixed is None:
            ok &= ~naive  # a zone with DST: parse_iso decides each
        else:
            offset = np.where(naive, int(fixed.total_seconds()), offset)
            note = _where(naive, f"no zone: assumed {zone_name(zone)}")
    yy = y - (mo <= 2)
    era = np.where(yy >= 0, yy, yy - 399) // 400
    yoe = yy - era * 400
    doy = (153 * (mo + np.where(mo > 2, -3, 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146097 + doe - 719468
    seconds = days * 86400 + h * 3600 + mi * 60 + s - offset
    return np.where(ok, seconds * 1_000_000_000 + frac, 0), note, ok


def _integer_or_bad(value: Any, label: str) -> Any:
    try:
        return fields.integer(value, label)
    except fields.RowError:
        return BAD


def _boolean_or_bad(value: Any, label: str) -> Any:
    try:
        return _boolean(value, label)
    except fields.RowError:
        return BAD


def _ip_or_bad(value: Any, label: str) -> Any:
    try:
        return fields.ip(value, label)
    except fields.RowError:
        return BAD


def _duration_or_bad(value: Any, label: str, unit: int) -> Any:
    """``_convert``'s duration in ns, or BAD where it rejects."""
    if fields.is_blank(value):
        return None
    if isinstance(value, bool):
        return BAD
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return BAD
    if seconds != seconds or seconds < 0 or seconds > 1e12:
        return BAD
    return int(seconds * unit)
