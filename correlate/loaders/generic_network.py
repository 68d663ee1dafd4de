"""Generic network events: an in-house JSON lines, JSON array, CSV or Parquet log, read through a mapping.

For whatever firewall, proxy or flow export no other loader knows. Detected by file name alone
(``*.events.jsonl``/``.json``/``.csv``/``.parquet``, score 0.6); any other file must be forced
(its sniff scores 0.3; 0 when another loader claims it). ``mapping`` / ``columns`` (see
``OPTIONS``) name the source of each ``network_events`` column (``TARGETS``): a key, else a dotted
path into nested JSON or Parquet structs (the ``generic`` loader's lookup); unnamed targets are
read from same-named columns. ``ts``, ``src_ip`` and ``dst_ip`` are required per row.

Ambiguity defaults (mapping settings): naive times are UTC (``time_zone``), epoch units by
magnitude (``epoch_unit``), durations in seconds; verdict words allow/accept/pass/permit ->
allowed, deny/drop/block/reject -> denied, alert -> alerted, else unknown (``actions`` adds
more); direction words out/in/internal (``directions`` adds more), else unknown and the policy
decides by CIDR; ``flow_key_prefix`` ``generic_network:``. A JSON key given twice loads its last
value, noted. ``.parquet.gz`` is refused. JSON lines, CSV and Parquet are read column-wise, with
the per-record reader as the reference (property-tested). Field reference and sources:
``tests/data/generic_network/README.md``.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timezone, tzinfo
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import InputError, OptionError
from ..same_events import add_note, duplicate_key_note
from ..schema import NETWORK_EVENTS
from ..sources import Source, decode_line
from ..timeparse import (
    NS_PER_UNIT,
    TimeParseError,
    ns_to_iso,
    parse_iso,
    parse_time,
    resolve_zone,
    zone_name,
)
from . import fields
from .alibaba_vpc_flow import CSV_FIELD_LIMIT, CsvLines, csv_odd
from .base import BATCH_ROWS, FileLoad, LoadOptions, LoadResult, LoadStats, RejectSink
from .columnar import BAD, IPV4, PLAIN_TEXT, mapped
from .generic import forced_only_score, head_shape, lookup, read_mapping_document
from .records import Record, csv_records, first_line, json_documents, json_line_record
from .zeek_conn import (
    Checked,
    Spans,
    exact_ns,
    per_combination,
    plain_ints,
    read_json_runs,
    settle_records,
)

name = "generic_network"
kind = "network"
description = (
    "Network events in JSON lines, a JSON array, CSV or Parquet through a column mapping "
    "(--option generic_network.mapping=PATH)"
)

OPTIONS = {
    "mapping": "path to a JSON mapping (or inline JSON): normalised column -> dotted source path, plus time_zone, epoch_unit, duration_unit, actions, directions, flow_key_prefix",
    "columns": "inline mapping: ts=time,src_ip=src,dst_ip=dst,...",
}
"""``--option generic_network.KEY=VALUE`` settings (see the module docstring)."""

TARGETS = (
    "ts",
    "ts_end",
    "duration",
    "src_ip",
    "src_port",
    "src_nat_ip",
    "dst_ip",
    "dst_port",
    "protocol",
    "direction",
    "action",
    "rule",
    "signature",
    "category",
    "dst_domain",
    "app",
    "bytes_out",
    "bytes_in",
    "packets_out",
    "packets_in",
    "observer",
    "host_hint",
    "flow_key",
)
TEXT_SETTINGS = ("time_zone", "epoch_unit", "duration_unit", "flow_key_prefix")
TABLE_SETTINGS = ("actions", "directions")
REQUIRED = ("ts", "src_ip", "dst_ip")
EVENTS_SUFFIXES = (".events.jsonl", ".events.json", ".events.csv", ".events.parquet")
MAPPING_SUFFIXES = EVENTS_SUFFIXES
"""File names this mapping loader claims (see ``generic.forced_only_score``)."""
ACTION_VALUES = ("allowed", "denied", "alerted", "unknown")
DIRECTION_VALUES = ("outbound", "inbound", "internal", "unknown")
DEFAULT_ACTIONS = {
    **dict.fromkeys(
        ("allow", "allowed", "accept", "accepted", "pass", "passed", "permit", "permitted"),
        "allowed",
    ),
    **dict.fromkeys(
        ("deny", "denied", "drop", "dropped", "block", "blocked", "reject", "rejected"), "denied"
    ),
    **dict.fromkeys(("alert", "alerted"), "alerted"),
}
DEFAULT_DIRECTIONS = {
    **dict.fromkeys(("out", "outbound", "egress", "outgoing"), "outbound"),
    **dict.fromkeys(("in", "inbound", "ingress", "incoming"), "inbound"),
    **dict.fromkeys(("internal", "lateral", "east-west"), "internal"),
}
DEFAULT_FLOW_KEY_PREFIX = f"{name}:"
_INTEGRAL_FLOAT = re.compile(r"^\s*([+-]?\d+)\.0*\s*$")


@dataclass(frozen=True)
class NetworkMapping:
    """Where each normalised column comes from, how to read times, and the verdict vocabularies."""

    paths: dict[str, str]
    zone: tzinfo | None = None
    epoch_unit: str | None = None
    duration_unit: str = "s"
    actions: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ACTIONS))
    directions: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_DIRECTIONS))
    flow_key_prefix: str = DEFAULT_FLOW_KEY_PREFIX
    context: tuple[str, ...] = ()


# --- sniffing ------------------------------------------------------------------------------------


def sniff(head: bytes, filename: str) -> float:
    """Score: 0.6 for ``*.events.{jsonl,json,csv,parquet}``, 0.3 for other JSON/CSV/Parquet, else 0.

    A file another loader recognises scores 0, so forcing ``generic_network`` on a known format
    fails; a hosts-kind loader's guess below 0.9 does not count (flow logs name addresses too).
    """
    global _sniffing
    try:
        if head_shape(head, tables=True) is None:
            return 0.0
    except Exception:  # sniffing must never raise on odd bytes
        return 0.0
    return forced_only_score(name, head, filename, EVENTS_SUFFIXES)


# --- the mapping -----------------------------------------------------------------------------------


def load_mapping(options: LoadOptions) -> NetworkMapping:
    """The mapping from ``generic_network.mapping`` and ``.columns`` (OptionError when invalid)."""
    spec, context = read_mapping_document(options, name)
    columns = options.option(name, "columns")
    if columns and columns.strip():
        for pair in columns.split(","):
            target, sep, source_field = pair.partition("=")
            target = target.strip()
            if not sep or not target or (not source_field.strip() and target != "flow_key_prefix"):
                raise OptionError(
                    f"--option {name}.columns: expected TARGET=FIELD pairs separated by commas, got {pair!r}"
                )
            if target in TABLE_SETTINGS:
                raise OptionError(
                    f"--option {name}.columns: {target} is a JSON object; give it in {name}.mapping"
                )
            spec[target] = source_field.strip()
    unknown = sorted(set(spec) - set(TARGETS) - set(TEXT_SETTINGS) - set(TABLE_SETTINGS))
    if unknown:
        raise OptionError(
            f"{name} mapping: unknown key(s) {', '.join(unknown)}; columns are "
            f"{', '.join(TARGETS)}; settings are {', '.join(TEXT_SETTINGS + TABLE_SETTINGS)}"
        )
    paths = {t: t for t in TARGETS}
    for target in TARGETS:
        if target not in spec:
            continue
        value = spec[target]
        if value is None:
            if target in REQUIRED:
                raise OptionError(f"{name} mapping: {target} is required and cannot be null")
            del paths[target]
        elif isinstance(value, str) and value.strip():
            paths[target] = value.strip()
        else:
            raise OptionError(
                f"{name} mapping: {target} must be a source field name or null, got {value!r}"
            )
    for key in TEXT_SETTINGS:
        if key in spec and not isinstance(spec[key], str):
            raise OptionError(f"{name} mapping: {key} must be a string, got {spec[key]!r}")
    unit = spec.get("epoch_unit")
    if unit is not None and unit not in NS_PER_UNIT:
        raise OptionError(f"{name} mapping: epoch_unit must be one of {', '.join(NS_PER_UNIT)}")
    duration_unit = spec.get("duration_unit", "s")
    if duration_unit not in NS_PER_UNIT:
        raise OptionError(f"{name} mapping: duration_unit must be one of {', '.join(NS_PER_UNIT)}")
    zone = resolve_zone(spec["time_zone"]) if "time_zone" in spec else None
    return NetworkMapping(
        paths=paths,
        zone=zone,
        epoch_unit=unit,
        duration_unit=duration_unit,
        actions={**DEFAULT_ACTIONS, **_vocabulary(spec, "actions", ACTION_VALUES)},
        directions={**DEFAULT_DIRECTIONS, **_vocabulary(spec, "directions", DIRECTION_VALUES)},
        flow_key_prefix=spec.get("flow_key_prefix", DEFAULT_FLOW_KEY_PREFIX),
        context=tuple(context),
    )


def _vocabulary(spec: dict[str, Any], key: str, allowed: tuple[str, ...]) -> dict[str, str]:
    """A ``{source word: normalised value}`` setting, keys lower-cased; OptionError when invalid."""
    table = spec.get(key, {})
    if not isinstance(table, dict):
        raise OptionError(f"{name} mapping: {key} must be a JSON object of word: value")
    out: dict[str, str] = {}
    for word, value in table.items():
        if not isinstance(value, str) or value.strip().lower() not in allowed:
            raise OptionError(
                f"{name} mapping: {key}[{word!r}] must be one of {', '.join(allowed)}, got {value!r}"
            )
        out[str(word).strip().lower()] = value.strip().lower()
    return out


# --- reading ---------------------------------------------------------------------------------------


def read(source: Source, options: LoadOptions, *, fast: bool = True) -> LoadResult:
    """Read mapped JSON lines / JSON array / CSV / Parquet records into ``network_events`` rows
    (column-wise where the mapping and the file allow it; ``fast=False``: every record by the
    per-record reader, the reference)."""
    mapping = load_mapping(options)
    convert = _Converter(mapping, options)
    load = FileLoad(source, options, name, kind, NETWORK_EVENTS)
    head = source.head()
    if head.startswith(b"PAR1"):
        _read_parquet(load, convert, fast=fast)
    elif first_line(head).startswith((b"{", b"[")):
        plan = _json_plan(source, mapping) if fast and _json_lines(source) else None
        if plan is None:
            for line, record, raw in json_documents(source, load.stats, load.sink):
                convert.record(line, record, raw, load)
        else:
            read_json_runs(
                load,
                plan.schema,
                convert.columns,
                convert.line,
                flat=plan.flat,
                guard=plan.guard,
            )
    else:
        try:
            if not fast:
                raise _Restart
            _CsvRecords(load, convert, mapping).read()
        except _Restart:  # a record over several lines, or odd quoting: the streaming reader
            load = FileLoad(source, options, name, kind, NETWORK_EVENTS)
            for line, record, raw in _checked_csv_rows(source, mapping, load.stats, load.sink):
                convert.record(line, record, raw, load)
    return load.result(context=list(mapping.context))


class _Converter:
    """``_convert`` for one mapping and its time settings: per record (the reference) and
    column-wise (``columns``)."""

    def __init__(self, mapping: NetworkMapping, options: LoadOptions) -> None:
        self.mapping = mapping
        # --tz generic_network=ZONE beats the mapping's time_zone, which beats --tz *=ZONE and UTC.
        zone = options.zones.get(name)
        if zone is None:
            zone = mapping.zone if mapping.zone is not None else options.zone_for(name)
        self.zone: tzinfo = zone
        self.unit = (
            options.epoch_unit if options.epoch_unit != "auto" else mapping.epoch_unit or "auto"
        )
        self.expected = mapping.epoch_unit or "s"
        # the keys a mapped path goes through: one of them given twice changes the row (noted)
        self.read = frozenset(
            part for path in mapping.paths.values() for part in [path, *path.split(".")]
        )

    def record(self, line: int, record: dict[str, Any], raw: str, load: FileLoad) -> None:
        """One record: converted and emitted, or rejected with its reason; a JSON record (``raw``
        an object's text) giving a mapped key twice is noted."""
        try:
            row = _convert(record, self.mapping, self.zone, self.unit, self.expected)
        except fields.RowError as exc:
            load.reject(line, str(exc), raw)
            return
        if raw.startswith("{"):
            add_note(row, duplicate_key_note(raw, record, self.read))
        load.emit(row, line)

    def line(self, line: int, raw: bytes, load: FileLoad) -> None:
        """One JSON line through the per-record reader (where every line holding a mapped key
        twice comes: pyarrow refuses them)."""
        found = json_line_record(line, raw, load)
        if found is not None:
            self.record(line, found[0], found[1], load)

    def columns(self, col: dict[str, pa.Array], ok: np.ndarray) -> Checked:
        """``_convert`` column-wise (``col``: each target's source values)."""
        return _columns(self, col, ok)


class _Restart(Exception):
    """The column-wise CSV reader cannot vouch for the file: read it with the streaming one."""


def _missing_required(names: set[str], mapping: NetworkMapping, nested: bool) -> list[str]:
    """Required targets whose source column is not among ``names`` (``nested``: struct paths)."""
    missing = []
    for target in REQUIRED:
        path = mapping.paths[target]
        if path in names or (nested and path.split(".", 1)[0] in names):
            continue
        missing.append(target if path == target else f"{target} ({path})")
    return missing


def _missing_message(source: Source, kind_of: str, missing: list[str]) -> str:
    return (
        f"{source.display}: the {kind_of} has no column for {', '.join(missing)}; map it with "
        f"--option {name}.columns=TARGET=COLUMN or {name}.mapping=PATH"
    )


def _checked_csv_rows(
    source: Source, mapping: NetworkMapping, stats: LoadStats, sink: RejectSink
) -> Iterator[Record]:
    """CSV rows (streamed by the ``generic`` reader); a header without a required column stops."""
    checked = False
    for line, record, raw in csv_records(source, stats, sink):
        if not checked:
            missing = _missing_required(set(record), mapping, nested=False)
            if missing:
                raise InputError(_missing_message(source, "CSV header", missing))
            checked = True
        yield line, record, raw


def _parquet_records(source: Source, mapping: NetworkMapping) -> Iterator[Record]:
    """Rows of a Parquet file as dicts (structs as dicts), reading only the mapped columns."""
    parquet, columns = _parquet_file(source, mapping)
    number = 0
    try:
        for record_batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns):
            cells = {
                f.name: _cells(f.type, column)
                for f, column in zip(record_batch.schema, record_batch.columns, strict=True)
            }
            for index in range(record_batch.num_rows):
                number += 1
                row = {column: values[index] for column, values in cells.items()}
                yield number, row, json.dumps(row, default=str, sort_keys=True)[:4096]
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{source.display}: cannot read Parquet row {number + 1}: {exc}") from exc


def _parquet_file(source: Source, mapping: NetworkMapping) -> tuple[pq.ParquetFile, list[str]]:
    """The Parquet file and the columns the mapping reads (an InputError when unreadable or
    without a required column)."""
    if source.compression:
        raise InputError(
            f"{source.display}: a {source.compression}-compressed Parquet file; decompress it "
            "first (Parquet compresses its own pages)"
        )
    try:
        parquet = pq.ParquetFile(str(source.path))
        names = list(parquet.schema_arrow.names)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{source.display}: cannot read Parquet: {exc}") from exc
    missing = _missing_required(set(names), mapping, nested=True)
    if missing:
        raise InputError(_missing_message(source, "Parquet schema", missing))
    wanted = set()
    for path in mapping.paths.values():
        if path in names:
            wanted.add(path)
        elif path.split(".", 1)[0] in names:
            wanted.add(path.split(".", 1)[0])
    return parquet, [n for n in names if n in wanted]


def _cells(kind_of: pa.DataType, column: pa.Array) -> list[Any]:
    """A column as Python values; a timestamp column becomes exact ISO 8601 text (naive if zone-less)."""
    if not pa.types.is_timestamp(kind_of):
        return list(column.to_pylist())
    factor = NS_PER_UNIT[kind_of.unit]
    zoned = kind_of.tz is not None
    out: list[Any] = []
    for value in column.cast(pa.int64()).to_pylist():
        if value is None:
            out.append(None)
            continue
        try:
            text = ns_to_iso(value * factor)
        except (OverflowError, ValueError):
            out.append(f"timestamp out of range ({value} {kind_of.unit})")
            continue
        out.append(text if zoned else text.removesuffix("Z"))
    return out


def _number(value: Any) -> Any:
    """Integral float text (``"443.0"``, as pandas writes integer columns with gaps) as digits."""
    if isinstance(value, str):
        match = _INTEGRAL_FLOAT.match(value)
        if match:
            return match.group(1)
    return value


def _convert(
    record: dict[str, Any], mapping: NetworkMapping, zone: tzinfo, unit: str, expected: str
) -> dict[str, Any]:
    """One mapped record to a ``network_events`` row (without provenance)."""

    def get(target: str) -> Any:
        path = mapping.paths.get(target)
        return None if path is None else lookup(record, path)

    def label(target: str) -> str:
        path = mapping.paths.get(target, target)
        return target if path == target else f"{target} ({path})"

    def timestamp(target: str) -> tuple[int, str | None]:
        value = get(target)
        try:
            if isinstance(value, datetime):
                return parse_iso(value.isoformat(), default_tz=zone)
            if isinstance(value, date):
                return parse_iso(f"{value.isoformat()}T00:00:00", default_tz=zone)
            if isinstance(value, (bool, dict, list)):
                raise TimeParseError(f"not a time: {value!r}")
            return parse_time(value, default_tz=zone, epoch_unit=unit, expected_unit=expected)
        except TimeParseError as exc:
            raise fields.RowError(f"{label(target)}: {exc}") from None

    def integer(target: str, maximum: int | None = None) -> int | None:
        return fields.integer(_number(get(target)), label(target), minimum=0, maximum=maximum)

    def text(target: str) -> str | None:
        return fields.text(get(target))

    notes: list[str] = []
    if fields.is_blank(get("ts")):
        raise fields.RowError(f"{label('ts')} is missing")
    ts, note = timestamp("ts")
    if note:
        notes.append(note)
    ts_end = None
    if not fields.is_blank(get("ts_end")):
        ts_end, note = timestamp("ts_end")
        if note and note not in notes:
            notes.append(note)
    elif not fields.is_blank(get("duration")):
        duration = _number(get("duration"))
        if isinstance(duration, (bool, dict, list)):
            raise fields.RowError(f"{label('duration')} is not a number: {duration!r}")
        try:
            seconds = float(duration)
        except (TypeError, ValueError):
            raise fields.RowError(f"{label('duration')} is not a number: {duration!r}") from None
        if seconds != seconds or seconds < 0 or seconds > 1e12:
            raise fields.RowError(f"{label('duration')} out of range: {duration!r}")
        ts_end = ts + int(seconds * NS_PER_UNIT[mapping.duration_unit])
        if not -(2**63) < ts_end < 2**63 - 1:  # past timestamp[ns]: was a crash building Arrow
            raise fields.RowError(f"{label('duration')} out of range: {duration!r}")
    if ts_end is not None and ts_end < ts:
        notes.append("ts_end before ts: end ignored")
        ts_end = None
    src_ip = fields.ip(get("src_ip"), label("src_ip"), required=True)
    dst_ip = fields.ip(get("dst_ip"), label("dst_ip"), required=True)
    nat_ip = fields.ip(get("src_nat_ip"), label("src_nat_ip"))
    action_raw = text("action")
    direction_raw = text("direction")
    domain = text("dst_domain")
    flow_key = text("flow_key")
    protocol = get("protocol")
    return {
        "ts": ts,
        "ts_end": ts_end,
        "src_ip": src_ip,
        "src_port": integer("src_port", 65535),
        "src_nat_ip": nat_ip if nat_ip != src_ip else None,
        "dst_ip": dst_ip,
        "dst_port": integer("dst_port", 65535),
        "protocol": None if isinstance(protocol, bool) else fields.protocol(_number(protocol)),
        "direction": mapping.directions.get((direction_raw or "").lower(), "unknown"),
        "action": mapping.actions.get((action_raw or "").lower(), "unknown"),
        "action_raw": action_raw,
        "rule": text("rule"),
        "signature": text("signature"),
        "category": text("category"),
        "dst_domain": (domain.lower().rstrip(".") or None) if domain else None,
        "app": text("app"),
        "bytes_out": integer("bytes_out"),
        "bytes_in": integer("bytes_in"),
        "packets_out": integer("packets_out"),
        "packets_in": integer("packets_in"),
        "observer": text("observer"),
        "host_hint": text("host_hint"),
        "flow_key": f"{mapping.flow_key_prefix}{flow_key}" if flow_key else None,
        "ts_note": "; ".join(notes) or None,
    }


# --- column-wise ----------------------------------------------------------------------------------

_TEXT, _INT, _FLOAT, _BOOL = pa.string(), pa.int64(), pa.float64(), pa.bool_()
_NULL_TEXT, _NULL_INT = pa.scalar(None, _TEXT), pa.scalar(None, _INT)
_HEAD_RECORDS = 50
_INT_TARGETS = {
    "src_port": 65535,
    "dst_port": 65535,
    "bytes_out": None,
    "bytes_in": None,
    "packets_out": None,
    "packets_in": None,
}
_TEXT_TARGETS = ("rule", "signature", "category", "app", "observer", "host_hint")


def _mask(values: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)


def _json_lines(source: Source) -> bool:
    """Whether ``json_documents`` reads the file as JSON lines (not one document)."""
    first = first_line(source.head())
    try:
        return not isinstance(json.loads(first), list)
    except (ValueError, RecursionError):
        return not first.startswith((b"{", b"["))


@dataclass(frozen=True)
class _JsonPlan:
    """How JSON lines are parsed: the mapped paths as nested struct columns, typed as the head
    of the file shows them; a line naming a dotted path as one key is read line by line
    (``lookup`` tries the whole key first)."""

    schema: pa.Schema
    paths: dict[str, str]
    literal: tuple[bytes, ...]

    def flat(self, table: pa.Table) -> dict[str, pa.Array]:
        top = {name: table.column(name).combine_chunks() for name in table.column_names}
        out = {}
        for target, path in self.paths.items():
            head, *rest = path.split(".")
            values = top[head]
            for part in rest:
                values = pc.struct_field(values, part)
            out[target] = values
        return out

    def guard(self, spans: Spans, ok: np.ndarray) -> None:
        blob = spans.blob
        for prefix in {literal.split(b".", 1)[0] + b"." for literal in self.literal}:
            if blob.find(prefix) < 0:  # one scan for all the paths under one top-level key
                continue
            for literal in self.literal:
                if not literal.startswith(prefix):
                    continue
                at = blob.find(literal)
                while at >= 0:
                    ok[spans.line_of(np.array([at]))[0]] = False
                    at = blob.find(literal, at + 1)


def _json_plan(source: Source, mapping: NetworkMapping) -> _JsonPlan | None:
    """The plan, or None when the file is read record by record: a path through a list index,
    paths that overlap, no record in the head, or a mapped value that is an object or a list."""
    paths = dict(mapping.paths)
    if any(part.isdigit() for p in paths.values() for part in p.split(".")):
        return None
    seen: dict[str, list[type]] = {p: [] for p in paths.values()}
    records = 0
    for raw in source.head().split(b"\n")[:_HEAD_RECORDS]:
        try:
            record = json.loads(raw)
        except (ValueError, RecursionError):
            continue
        if not isinstance(record, dict):
            continue
        records += 1
        for path in seen:
            value = lookup(record, path)
            if value is not None:
                seen[path].append(type(value))
    if not records:
        return None
    kinds = {str: _TEXT, int: _INT, float: _FLOAT, bool: _BOOL}
    tree: dict[str, Any] = {}
    for path, types in seen.items():
        common = max(set(types), key=types.count) if types else str
        if common not in kinds:  # an object or a list: _convert reads it whole
            return None
        node = tree
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                return None
        if leaf in node and (isinstance(node[leaf], dict) or node[leaf] != kinds[common]):
            return None
        node[leaf] = kinds[common]

    def struct(node: dict[str, Any]) -> list[pa.Field]:
        return [
            pa.field(k, pa.struct(struct(v)) if isinstance(v, dict) else v) for k, v in node.items()
        ]

    literal = tuple(json.dumps(p).encode() for p in seen if "." in p)
    return _JsonPlan(pa.schema(struct(tree)), paths, literal)


class _CsvRecords(CsvLines):
    """``csv_records`` for files whose records are one line each: the first line is the header;
    a line that may continue on the next (an open quote) or is quoted oddly stops the reader
    (``_Restart``: the streaming reader then reads the whole file), and so does a header without
    a required column (the streaming reader refuses it at the first record)."""

    def __init__(self, load: FileLoad, convert: _Converter, mapping: NetworkMapping) -> None:
        used = tuple(dict.fromkeys(mapping.paths.values()))

        def columns(cols: dict[str, pa.Array], ok: np.ndarray) -> Checked:
            return convert.columns({t: cols[p] for t, p in mapping.paths.items()}, ok)

        super().__init__(load, convert.record, columns, used)
        self.mapping = mapping

    def line(self, line: int, raw_bytes: bytes, load: FileLoad | None = None) -> None:
        load = load or self.load
        text, note = decode_line(raw_bytes)
        if note:
            load.note(note)
        if line == 1:
            text = text.removeprefix("\ufeff")
        if '"' in text or len(text) > CSV_FIELD_LIMIT:
            try:
                next(csv.reader([text + "\n"], strict=True))
            except csv.Error:
                raise _Restart from None
        try:
            values = next(csv.reader([text + "\n"]))
        except csv.Error:
            raise _Restart from None
        if self.header is None:
            self.header = [h.strip() for h in values]
            load.skip("CSV header")
            if _missing_required(set(self.header), self.mapping, nested=False):
                raise _Restart
            return
        if not values or all(not v.strip() for v in values):
            load.skip("blank line")
            return
        if len(values) != len(self.header):
            load.reject(
                line, f"{len(values)} columns where the header has {len(self.header)}", text
            )
            return
        self.record(line, dict(zip(self.header, values, strict=True)), text, load)

    def odd(self, spans: Spans) -> np.ndarray:
        odd = csv_odd(spans)
        if b'"' not in spans.blob:
            return odd
        view, starts, ends = spans.view, spans.starts, spans.ends
        quotes = np.flatnonzero(view == 0x22)
        quoted = _per_line(spans, quotes) > 0
        # the common shape "a","b",...: every quote opens or closes a field
        opening = (quotes == starts[spans.line_of(quotes)]) | (
            view[np.maximum(quotes - 1, 0)] == 0x2C
        )
        last = np.minimum(quotes + 1, len(view) - 1)
        closing = (
            (quotes == ends[spans.line_of(quotes)] - 1)
            | (view[last] == 0x2C)
            | ((view[last] == 0x0D) & (quotes + 2 == ends[spans.line_of(quotes)]))
        )
        lines = spans.line_of(quotes)
        within = np.arange(len(quotes)) - np.searchsorted(lines, lines)
        good = np.where(within % 2 == 0, opening, closing)
        odd_quotes = _per_line(spans, quotes[~good]) > 0
        uneven = _per_line(spans, quotes) % 2 == 1
        for index in np.flatnonzero(quoted & (odd_quotes | uneven)).tolist():
            text = spans.line(index).rstrip(b"\r").decode("utf-8", "replace")
            try:
                next(csv.reader([text + "\n"], strict=True))
            except csv.Error:
                raise _Restart from None
        return odd


def _per_line(spans: Spans, positions: np.ndarray) -> np.ndarray:
    return np.searchsorted(positions, spans.ends) - np.searchsorted(positions, spans.starts)


# --- Parquet, column-wise -------------------------------------------------------------------------


def _read_parquet(load: FileLoad, convert: _Converter, *, fast: bool) -> None:
    parquet, columns = _parquet_file(load.source, convert.mapping)
    number = 0
    try:
        for record_batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns):
            first, number = number + 1, number + record_batch.num_rows

            def read_row(
                index: int, into: FileLoad, batch: pa.RecordBatch = record_batch, at: int = first
            ) -> None:
                one = batch.slice(index, 1)
                row = {
                    f.name: _cells(f.type, column)[0]
                    for f, column in zip(one.schema, one.columns, strict=True)
                }
                raw = json.dumps(row, default=str, sort_keys=True)[:4096]
                convert.record(at + index, row, raw, into)

            cols = _parquet_flat(record_batch, convert.mapping) if fast else None
            if cols is None:
                for index in range(record_batch.num_rows):
                    read_row(index, load)
                continue
            ok = np.ones(record_batch.num_rows, dtype=bool)
            settle_records(load, first, ok, convert.columns(cols, ok), read_row, NETWORK_EVENTS)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(
            f"{load.source.display}: cannot read Parquet row {number + 1}: {exc}"
        ) from exc


def _parquet_flat(batch: pa.RecordBatch, mapping: NetworkMapping) -> dict[str, pa.Array] | None:
    """Each target's values from a record batch (a column by its name, else a path into struct
    columns), as text, int64, float64, bool, timestamp or date; None when a value needs the
    per-record reader (a list, a nested timestamp, a decimal...)."""
    names = batch.schema.names
    out: dict[str, pa.Array] = {}
    for target, path in mapping.paths.items():
        if path in names:
            values: pa.Array | None = batch.column(path)
        else:
            head, *rest = path.split(".")
            values = batch.column(head) if head in names else None
            for part in rest:
                if values is None:
                    break
                if not pa.types.is_struct(values.type):
                    return None
                if values.type.get_field_index(part) < 0:
                    values = None
                    break
                values = pc.struct_field(values, part)
            if values is not None and rest and pa.types.is_timestamp(values.type):
                return None  # a nested timestamp is a datetime to _convert
        if values is None:
            out[target] = pa.nulls(batch.num_rows, _TEXT)
            continue
        if pa.types.is_dictionary(values.type):
            values = values.dictionary_decode()
        kind = values.type
        if pa.types.is_timestamp(kind) and target not in ("ts", "ts_end"):
            return None  # _cells' ISO text: the per-record reader
        if pa.types.is_timestamp(kind) or pa.types.is_date(kind) or kind in (_TEXT, _INT, _BOOL):
            out[target] = values
        elif pa.types.is_integer(kind) and kind != pa.uint64():
            out[target] = values.cast(_INT)
        elif pa.types.is_floating(kind) and kind != pa.float16():
            out[target] = values.cast(_FLOAT)
        elif pa.types.is_large_string(kind):
            out[target] = values.cast(_TEXT)
        elif pa.types.is_null(kind):
            out[target] = pa.nulls(batch.num_rows, _TEXT)
        else:
            return None
    return out


# --- the column-wise conversion (``_convert``'s rules) -------------------------------------------


def _blank(values: pa.Array) -> np.ndarray:
    """``fields.is_blank`` of each value, or a little less: text blank but for non-ASCII white
    space counts as not blank (its time or number then fails, and the per-record reader
    decides)."""
    blank = _mask(pc.is_null(values))
    if pa.types.is_string(values.type):
        blank |= _mask(pc.is_in(pc.ascii_trim_whitespace(values), value_set=_BLANKS))
    return blank


_BLANKS = pa.array(["", "-"])


def _py_time(convert: _Converter, value: Any) -> Any:
    """``_convert``'s ``timestamp`` of one value: (ns, note), or BAD."""
    zone = convert.zone
    try:
        if isinstance(value, datetime):
            return parse_iso(value.isoformat(), default_tz=zone)
        if isinstance(value, date):
            return parse_iso(f"{value.isoformat()}T00:00:00", default_tz=zone)
        if isinstance(value, (bool, dict, list)):
            return BAD
        return parse_time(
            value, default_tz=zone, epoch_unit=convert.unit, expected_unit=convert.expected
        )
    except TimeParseError:
        return BAD


def _per_value_time(
    convert: _Converter,
    values: pa.Array,
    ok: np.ndarray,
    to_python: Callable[[Any], Any] | None = None,
) -> tuple[pa.Array, pa.Array]:
    """(ns, note) of each value through ``_py_time``, once per distinct value; BAD clears ``ok``."""
    encoded = pc.dictionary_encode(values)
    distinct = encoded.dictionary.to_pylist()
    results = [_py_time(convert, to_python(v) if to_python else v) for v in distinct]
    bad = [i for i, r in enumerate(results) if r is BAD]
    indices = encoded.indices
    if bad:
        hit = pc.is_in(indices, value_set=pa.array(bad, indices.type))
        ok &= ~_mask(hit)
    ns = pa.array([None if r is BAD else r[0] for r in results], _INT).take(indices)
    notes = pa.array([None if r is BAD else r[1] for r in results], _TEXT).take(indices)
    return ns, notes


_MAGNITUDES = ((10**11, "s"), (10**14, "ms"), (10**17, "us"))


def _epoch_ints(convert: _Converter, values: pa.Array) -> tuple[pa.Array, pa.Array, np.ndarray]:
    """Integer epochs as ``parse_epoch`` reads them (the unit given, or by magnitude with a note
    when it is not the documented one): (ns, note, rows read); negative ones are not read."""
    number = np.asarray(pc.fill_null(values, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
    good = number >= 0
    if convert.unit == "auto":
        chosen = np.select(
            [number < bound for bound, _ in _MAGNITUDES], [u for _, u in _MAGNITUDES], "ns"
        )
    else:
        chosen = np.full(len(number), convert.unit)
    scale = np.ones(len(number), dtype=np.int64)
    for unit, size in NS_PER_UNIT.items():
        scale[chosen == unit] = size
    good &= number <= (2**63 - 2) // scale
    ns = pa.array(np.where(good, number * np.where(good, scale, 1), 0), _INT)
    note = np.full(len(number), None, dtype=object)
    if convert.unit == "auto":
        other = good & (chosen != convert.expected)
        for unit in set(chosen[other].tolist()):
            note[other & (chosen == unit)] = (
                f"epoch unit {unit} by magnitude (format documents {convert.expected})"
            )
    return ns, pa.array(note, _TEXT), good


_ISO = (
    r"^(?P<d>(?:19|20)\d\d-\d\d-\d\d)[Tt ](?P<t>(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d)"
    r"(?:[.,](?P<f>\d+))?(?P<z>Z|z|(?P<s>[+-])(?P<h>\d\d)(?::?(?P<m>\d\d))?)?$"
)


def iso_ns(values: pa.Array, zone: tzinfo) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """``YYYY-MM-DD[T ]HH:MM:SS[.,fraction][Z|±HH[:MM]]`` text as ``parse_iso`` reads it:
    (ns, rows read, rows without a zone). Zone-less rows are read only in a fixed-offset zone
    (``parse_iso`` notes them); the others go to the per-value reader. The regex vouches for the
    shape; the numbers are read from the text's bytes at their places (numpy), dates checked."""
    n = len(values)
    matched = _mask(pc.match_substring_regex(values, _ISO))
    none = np.zeros(n, dtype=bool)
    if not matched.any():
        return pa.nulls(n, _INT), none, none
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int32)
    offsets = offsets[values.offset : values.offset + n + 1]
    data = np.frombuffer(values.buffers()[2], dtype=np.uint8)
    rows = np.flatnonzero(matched)
    start = offsets[rows].astype(np.int64)
    length = offsets[rows + 1].astype(np.int64) - start

    def byte(at: np.ndarray | int) -> np.ndarray:
        return data[start + np.clip(at, 0, length - 1)].astype(np.int64)

    def number(at: np.ndarray | int, count: int) -> np.ndarray:
        out = np.zeros(len(rows), dtype=np.int64)
        for j in range(count):
            out = out * 10 + byte(np.asarray(at) + j) - 48
        return out

    # the fixed part (YYYY-MM-DD?HH:MM:SS) in one gather
    fixed_part = data[start[:, None] + np.arange(19)].astype(np.int64) - 48

    def field(at: int, count: int) -> np.ndarray:
        out = fixed_part[:, at]
        for j in range(1, count):
            out = out * 10 + fixed_part[:, at + j]
        return out

    year, month, day = field(0, 4), field(5, 2), field(8, 2)
    seconds = field(11, 2) * 3600 + field(14, 2) * 60 + field(17, 2)
    last = byte(length - 1)
    z = (last == 0x5A) | (last == 0x7A)
    sign_at = np.full(len(rows), -1, dtype=np.int64)
    for back in (6, 5, 3):
        at = length - back
        char = byte(at)
        hit = (sign_at < 0) & (at >= 19) & ((char == 0x2B) | (char == 0x2D))
        sign_at = np.where(hit, at, sign_at)
    signed = sign_at >= 0
    zone_start = np.where(z, length - 1, np.where(signed, sign_at, length))
    fractional = (length > 19) & np.isin(byte(19), (0x2E, 0x2C))
    places = np.where(fractional, zone_start - 20, 0)
    fraction = np.zeros(len(rows), dtype=np.int64)
    for j in range(9):
        fraction += np.where(places > j, byte(20 + j) - 48, 0) * 10 ** (8 - j)
    tail = length - sign_at
    hours = np.where(signed, number(sign_at + 1, 2), 0)
    minutes = np.where(
        signed & (tail == 6),
        number(sign_at + 4, 2),
        np.where(signed & (tail == 5), number(sign_at + 3, 2), 0),
    )
    sign = np.where(byte(sign_at) == 0x2D, -1, 1)
    offset = np.where(signed, sign * (hours * 3600 + minutes * 60), 0)
    good = ~signed | ((minutes < 60) & (hours * 60 + minutes < 24 * 60))
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_days = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
    last_day = month_days[np.clip(month, 0, 12)] + ((month == 2) & leap)
    good &= (month >= 1) & (month <= 12) & (day >= 1) & (day <= last_day)
    naive = ~z & ~signed
    if naive.any():
        fixed = isinstance(zone, timezone)
        shift = zone.utcoffset(None) if fixed else None
        offset = np.where(naive, int(shift.total_seconds()) if shift is not None else 0, offset)
        good &= ~naive | fixed
    # days from the civil date (Howard Hinnant's algorithm; the regex keeps years in 1900-2099)
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    ns = np.zeros(n, dtype=np.int64)
    ns[rows] = (days * 86400 + seconds - offset) * 1_000_000_000 + fraction
    read = np.zeros(n, dtype=bool)
    read[rows] = good
    zone_less = np.zeros(n, dtype=bool)
    zone_less[rows] = naive & good
    return pa.array(ns, _INT), read, zone_less


def _times(convert: _Converter, values: pa.Array, ok: np.ndarray) -> tuple[pa.Array, pa.Array]:
    """``timestamp`` column-wise: (ns, note) of each non-blank value; values no vectorised rule
    reads go through ``_py_time`` once per distinct value; unreadable ones clear ``ok``."""
    n = len(values)
    kind = values.type
    if pa.types.is_timestamp(kind):
        factor = NS_PER_UNIT[kind.unit]
        raw = values.cast(_INT)
        if kind.tz is not None:  # exact, no note (as _cells' ISO text with Z)
            inside = pc.and_(
                pc.greater_equal(raw, -((2**63 - 2) // factor)),
                pc.less_equal(raw, (2**63 - 2) // factor),
            )
            ok &= _mask(inside) | _mask(pc.is_null(raw))
            safe = pc.if_else(inside, raw, pa.scalar(0, _INT))
            return pc.multiply(safe, factor), pa.nulls(n, _TEXT)

        def naive_text(v: int) -> str:
            try:
                return ns_to_iso(v * factor).removesuffix("Z")
            except (OverflowError, ValueError):
                return f"timestamp out of range ({v} {kind.unit})"

        return _per_value_time(convert, raw, ok, naive_text)
    if pa.types.is_date(kind):
        return _per_value_time(convert, values, ok)
    ns = pa.nulls(n, _INT)
    notes = pa.nulls(n, _TEXT)
    done = np.zeros(n, dtype=bool)
    if kind == _INT:
        ns, notes, done = _epoch_ints(convert, values)
    elif kind in (_TEXT, _FLOAT):
        seconds = convert.unit == "s" or (convert.unit == "auto" and convert.expected == "s")
        if seconds and kind == _TEXT and _looks_iso(values):
            seconds = False  # ISO text: the decimal-seconds attempt would only cost time
        if seconds:
            attempt = np.ones(n, dtype=bool)
            ns = exact_ns(values, attempt, required=True)
            done = attempt.copy()
        if kind == _TEXT:
            digits = _mask(pc.ascii_is_decimal(values)) & _mask(
                pc.less_equal(pc.binary_length(values), 18)
            )
            if digits.any():
                number = pc.cast(pc.if_else(pa.array(digits), values, _NULL_TEXT), _INT)
                e_ns, e_note, e_ok = _epoch_ints(convert, number)
                take = digits & e_ok & ~done
                ns = pc.if_else(pa.array(take), e_ns, ns)
                notes = pc.if_else(pa.array(take), e_note, notes)
                done |= take
            if not done.all():
                i_ns, i_ok, naive = iso_ns(values, convert.zone)
                take = i_ok & ~done
                if take.any():
                    ns = pc.if_else(pa.array(take), i_ns, ns)
                    note = f"no zone: assumed {zone_name(convert.zone)}"
                    notes = pc.if_else(pa.array(take & naive), pa.scalar(note, _TEXT), notes)
                    done |= take
    rest = np.flatnonzero(~done & _mask(pc.is_valid(values)))
    if len(rest):
        picks = pa.array(rest)
        part_ok = np.ones(len(rest), dtype=bool)
        p_ns, p_note = _per_value_time(convert, values.take(picks), part_ok)
        ok[rest[~part_ok]] = False
        full_ns = np.array(pc.fill_null(ns, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
        full_ns[rest] = np.asarray(pc.fill_null(p_ns, 0).to_numpy(zero_copy_only=False))
        note_list = notes.to_pylist()
        for i, note in zip(rest.tolist(), p_note.to_pylist(), strict=True):
            note_list[i] = note
        ns = pa.array(full_ns, _INT)
        notes = pa.array(note_list, _TEXT)
    return ns, notes


def _looks_iso(values: pa.Array) -> bool:
    """Whether the first value is ``YYYY-...`` (text times are usually all of one spelling)."""
    first = pc.drop_null(values)
    return len(first) > 0 and bool(re.match(r"\d{4}-", first[0].as_py()))


def _py_duration(unit: str, value: Any) -> Any:
    """``_convert``'s duration in ns (int), or BAD."""
    duration = _number(value)
    if isinstance(duration, (bool, dict, list)):
        return BAD
    try:
        seconds = float(duration)
    except (TypeError, ValueError):
        return BAD
    if seconds != seconds or seconds < 0 or seconds > 1e12:
        return BAD
    return int(seconds * NS_PER_UNIT[unit])


def _durations(values: pa.Array, unit: str, ok: np.ndarray) -> pa.Array:
    """``_py_duration`` column-wise: numbers (and plain digit text) as ``int(float(v) * ns per
    unit)`` in numpy (the same IEEE arithmetic), other values once per distinct value."""
    plain = values.type in (_INT, _FLOAT)
    if values.type == _TEXT:
        digits = pc.and_(pc.ascii_is_decimal(values), pc.less_equal(pc.binary_length(values), 15))
        plain = bool(_all(digits))
    if not plain:
        return mapped(values, lambda v: _py_duration(unit, v), ok, type=_INT)
    numbers = pc.cast(values, _INT) if values.type == _TEXT else values
    zero = pa.scalar(0, numbers.type)
    # numpy's int -> float conversion rounds as Python's float() does (Arrow's safe cast refuses)
    seconds = np.asarray(pc.fill_null(numbers, zero).to_numpy(zero_copy_only=False)).astype(
        np.float64
    )
    with np.errstate(invalid="ignore", over="ignore"):
        product = seconds * NS_PER_UNIT[unit]
        good = (seconds >= 0) & (seconds <= 1e12) & (product < 2.0**63)
        span = np.where(good, product, 0).astype(np.int64)
    present = _mask(pc.is_valid(values))
    ok &= good | ~present  # NaN, negative, huge: the per-record reader (rejects or overflows)
    return pa.array(span, _INT, mask=~present)


def _all(values: pa.Array) -> bool:
    return pc.all(values).as_py() is not False


def _py_int(maximum: int | None, value: Any) -> Any:
    try:
        return fields.integer(_number(value), "value", minimum=0, maximum=maximum)
    except fields.RowError:
        return BAD


def _ints(values: pa.Array, ok: np.ndarray, maximum: int | None) -> pa.Array:
    """``integer(target, maximum)`` column-wise."""
    if values.type == _INT:
        inside = pc.greater_equal(values, 0)
        if maximum is not None:
            inside = pc.and_(inside, pc.less_equal(values, maximum))
        ok &= _mask(inside) | _mask(pc.is_null(values))
        return values
    plain = values.type == _TEXT and _mask(pc.ascii_is_decimal(values)).all()
    if plain and (pc.max(pc.binary_length(values)).as_py() or 0) <= 18:
        number = plain_ints(values, ok, 18, maximum)
        if maximum is None or (pc.max(number).as_py() or 0) <= maximum:
            return number
    return mapped(values, lambda v: _py_int(maximum, v), ok, type=_INT)


def _ip(value: Any) -> Any:
    try:
        return fields.ip(value, "address")
    except fields.RowError:
        return BAD


def _addresses(values: pa.Array, ok: np.ndarray) -> pa.Array:
    """``fields.ip`` once per distinct value (dotted quads in canonical form skip Python)."""
    return mapped(values, _ip, ok, same=IPV4 if values.type == _TEXT else None)


def _text(values: pa.Array) -> pa.Array:
    if values.type == _INT:
        return pc.cast(values, _TEXT)
    return mapped(values, fields.text, same=PLAIN_TEXT if values.type == _TEXT else None)


def _notes(ts_note: Any, end_note: Any, before: Any) -> tuple[str | None]:
    notes = [ts_note] if ts_note else []
    if end_note and end_note not in notes:
        notes.append(end_note)
    if before:
        notes.append("ts_end before ts: end ignored")
    return ("; ".join(notes) or None,)


def _columns(convert: _Converter, col: dict[str, pa.Array], ok: np.ndarray) -> Checked:
    """``_convert`` column-wise for the records it would load; ``col``: each mapped target's
    values (null when the mapping turned it off)."""
    mapping = convert.mapping
    n = len(ok)

    def get(target: str) -> pa.Array:
        return col.get(target) if target in col else pa.nulls(n, _TEXT)

    ts_values = get("ts")
    ok &= ~_blank(ts_values)  # missing: a reject
    ts, ts_note = _times(convert, ts_values, ok)
    end_values, duration = get("ts_end"), get("duration")
    end_given = ~_blank(end_values)
    ts_end = pa.nulls(n, _INT)
    end_note = pa.nulls(n, _TEXT)
    if end_given.any():
        end_ok = np.ones(n, dtype=bool)
        given_end, given_note = _times(convert, end_values, end_ok)
        ok &= end_ok | ~end_given
        ts_end = pc.if_else(pa.array(end_given), given_end, _NULL_INT)
        end_note = pc.if_else(pa.array(end_given), given_note, _NULL_TEXT)
    by_duration = ~end_given & ~_blank(duration)
    if by_duration.any():
        span = _durations(duration, mapping.duration_unit, ok)
        limit = pc.subtract(pa.scalar(2**63 - 2, _INT), pc.fill_null(span, 0))
        ok &= ~(by_duration & _mask(pc.greater(ts, limit)))  # past timestamp[ns]
        ts_end = pc.if_else(pa.array(by_duration), pc.add(ts, span), ts_end)
    before = pc.fill_null(pc.less(ts_end, ts), False)
    ts_end = pc.if_else(before, _NULL_INT, ts_end)
    (notes,) = per_combination(
        {"ts": ts_note, "end": end_note, "before": before},
        lambda row: _notes(row["ts"], row["end"], row["before"]),
        (_TEXT,),
    )
    src = _addresses(get("src_ip"), ok)
    dst = _addresses(get("dst_ip"), ok)
    ok &= _mask(pc.and_(pc.is_valid(src), pc.is_valid(dst)))  # missing: a reject
    nat = _addresses(get("src_nat_ip"), ok)
    ints = {target: _ints(get(target), ok, top) for target, top in _INT_TARGETS.items()}
    action_raw = _text(get("action"))
    verdict = mapped(
        action_raw, lambda v: mapping.actions.get((v or "").lower(), "unknown"), fill=True
    )

    def build(indices: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
        picks = None if len(indices) == n else pa.array(indices)

        def at(values: pa.Array) -> pa.Array:
            return values if picks is None else values.take(picks)

        def source(target: str) -> pa.Array:
            return at(get(target))

        nat_at, src_at = at(nat), at(src)
        domain = _text(source("dst_domain"))
        flow_key = _text(source("flow_key"))
        values: dict[str, Any] = {
            "ts": at(ts),
            "ts_end": at(ts_end),
            "src_ip": src_at,
            "src_nat_ip": pc.if_else(
                pc.fill_null(pc.equal(nat_at, src_at), False), _NULL_TEXT, nat_at
            ),
            "dst_ip": at(dst),
            "protocol": mapped(source("protocol"), _py_protocol),
            "direction": mapped(
                _text(source("direction")),
                lambda v: mapping.directions.get((v or "").lower(), "unknown"),
                fill=True,
            ),
            "action": at(verdict),
            "action_raw": at(action_raw),
            "dst_domain": mapped(domain, lambda v: (v.lower().rstrip(".") or None) if v else None),
            "flow_key": pc.binary_join_element_wise(mapping.flow_key_prefix, flow_key, ""),
            "ts_note": at(notes),
            **{target: at(v) for target, v in ints.items()},
            **{target: _text(source(target)) for target in _TEXT_TARGETS},
        }
        return values, np.arange(len(indices))

    return verdict, None, build, notes


def _py_protocol(value: Any) -> str | None:
    return None if isinstance(value, bool) else fields.protocol(_number(value))
