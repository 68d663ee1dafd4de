"""Generic network events: an in-house JSON lines, JSON array, CSV or Parquet log, read through a mapping.

For whatever firewall, proxy or flow export no other loader knows: the user says which source
field holds which ``network_events`` column. It never wins detection on a file another loader
recognises. Naming convention: files called ``*.events.jsonl``, ``*.events.json``, ``*.events.csv``
or ``*.events.parquet`` are detected as generic network events by that name alone (score 0.6),
read with the default or given mapping; any other JSON/CSV/Parquet file must be forced with
``--format generic_network`` or ``--format 'GLOB=generic_network'`` (its sniff score is 0.3, enough
to force but below detection; a file another loader claims scores 0, so forcing it fails).

Options (``--option generic_network.KEY=VALUE``):

* ``mapping=PATH`` - a JSON object: normalised column -> source field, plus settings, e.g.
  ``{"ts": "@timestamp", "src_ip": "flow.src.ip", "dst_ip": "flow.dst.ip", "dst_port":
  "flow.dst.port", "action": "verdict", "direction": "dir", "time_zone": "Asia/Shanghai",
  "actions": {"QUARANTINE": "denied"}, "directions": {"O": "outbound", "I": "inbound"}}``. The
  value may also be the JSON object itself (``mapping={...}``). The file is reported as read
  context (so it is not loaded as an input when it lies beside the data).
* ``columns=TARGET=SOURCE,...`` - the same inline (``columns=ts=time,src_ip=src,dst_ip=dst``);
  entries override ``mapping``. Only columns and the text settings fit here (not ``actions`` or
  ``directions``, which are JSON objects).

Mapping targets: ``ts ts_end duration src_ip src_port src_nat_ip dst_ip dst_port protocol direction
action rule signature category dst_domain app bytes_out bytes_in packets_out packets_in observer
host_hint flow_key``. Every target is read from the same-named column unless the mapping names
another source for it (``null`` turns a target off). A source is tried first as one key (CSV
headers, flat JSON, Parquet column names), then as a dotted path into nested JSON or Parquet
structs (``flow.src.ip``, ``hops.0.ip``); the lookup is the ``generic`` loader's. Required per row:
``ts``, ``src_ip`` and ``dst_ip`` (a CSV header or Parquet schema without them is a whole-file
error naming the missing column).

Settings (in the mapping, not paths):

* ``time_zone`` - zone of naive times (default UTC, noted on the row; ``--tz generic_network=``
  overrides it). ``epoch_unit`` - unit of numeric times, taken as given (``--epoch-unit``
  overrides it; with neither the magnitude decides and a unit other than seconds is noted).
* ``duration_unit`` (default ``s``): ``ts_end = ts + duration`` when there is no ``ts_end``.
* ``actions`` - source verdict word -> allowed | denied | alerted | unknown, case-insensitive, on
  top of the defaults: allow(ed)/accept(ed)/pass(ed)/permit(ted) -> allowed,
  deny/denied/drop(ped)/block(ed)/reject(ed) -> denied, alert(ed) -> alerted. Other words ->
  ``unknown``; the source value is always kept in ``action_raw``.
* ``directions`` - source word -> outbound | inbound | internal | unknown, on top of the defaults:
  out/outbound/egress/outgoing, in/inbound/ingress/incoming, internal/lateral/east-west. Without a
  direction field (or an unknown word) the direction is ``unknown`` and the policy decides by CIDR.
* ``flow_key_prefix`` (default ``generic_network:``) - namespace of ``flow_key``; set it to
  ``zeek:`` for a Zeek ``uid`` column (so zeek_dns/zeek_ssl enrich the rows) or ``""`` for none.

Values: ports and counters accept integers, digit strings and integral floats (``"443.0"``, as a
pandas CSV export writes them); ``protocol`` numbers become names (6 -> tcp); ``dst_domain`` is
lower-cased without a trailing dot; ``src_nat_ip`` equal to ``src_ip`` is dropped. Times are ISO
8601 / RFC 3339 text or epoch numbers (``correlate.timeparse``); Parquet ``timestamp`` columns are
exact (a zone-less one is read in ``time_zone`` and noted), ``date`` columns are midnight.

Record numbers: JSON lines and CSV rows carry their physical line, JSON array items their 1-based
index, Parquet rows their 1-based row number (read in record batches of the needed columns only).
Accounting: blank lines and the CSV header are skipped (counted); everything else loads or is
rejected with its reason. Limitations: a multi-line JSON document is read whole (up to 256 MiB;
write large logs as JSON lines); a compressed ``.parquet.gz`` is refused (Parquet compresses its own
pages, and it needs random access); Parquet ``decimal``/``binary`` cells are not converted.

Checked against: the ``generic`` (agent) loader's mapping conventions, reused here (``lookup``,
CSV streaming, shape sniff); Apache Arrow ``pyarrow.parquet.ParquetFile.iter_batches`` (column
projection, ``batch_size``) and the Parquet ``TIMESTAMP`` logical type (apache/parquet-format
``LogicalTypes.md#timestamp``: ``isAdjustedToUTC`` false = zone-less "local" time, as Spark writes
``TIMESTAMP_NTZ``; pyarrow reads it as a timestamp without ``tz``, read as naive here). Real sample: msticpy ``tests/testdata/az_net_flows.csv``
(Azure Traffic Analytics export with a pandas index column and ``443.0`` ports), read through a
mapping in the tests.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InputError, OptionError
from ..schema import NETWORK_EVENTS
from ..sources import Source, decode_line
from ..timeparse import NS_PER_UNIT, TimeParseError, ns_to_iso, parse_iso, parse_time, resolve_zone
from . import fields
from .base import BATCH_ROWS, Batcher, LoadOptions, LoadResult, LoadStats, RejectSink
from .generic import _HEADER_NAME, forced_only_score, lookup, read_mapping_document
from .records import Record, csv_records, first_line, json_documents

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


def _shape(head: bytes) -> str | None:
    """``parquet``, ``json`` (lines or an array), ``csv`` (a plausible header row), else None.

    Unlike ``generic``'s check, a CSV header may have blank names (a pandas index column).
    """
    if head.startswith(b"PAR1"):
        return "parquet"
    first = first_line(head)
    if first.startswith(b"["):
        return "json"
    if first.startswith(b"{"):
        try:
            return "json" if isinstance(json.loads(first), dict) else None
        except (ValueError, RecursionError):
            # A pretty-printed object's first line is just "{".
            return "json" if first == b"{" else None
    text, _ = decode_line(first)
    names = [n.strip() for n in _split_header(text)]
    named = [n for n in names if n]
    if len(named) >= 2 and all(_HEADER_NAME.match(n) for n in named):
        return "csv"
    return None


def _split_header(text: str) -> list[str]:
    try:
        return next(csv.reader([text]))
    except (csv.Error, StopIteration):
        return []


def sniff(head: bytes, filename: str) -> float:
    """Score: 0.6 for ``*.events.{jsonl,json,csv,parquet}``, 0.3 for other JSON/CSV/Parquet, else 0.

    A file another loader recognises scores 0, so forcing ``generic_network`` on a known format
    fails; a hosts-kind loader's guess below 0.9 does not count (flow logs name addresses too).
    """
    global _sniffing
    try:
        if _shape(head) is None:
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


def read(source: Source, options: LoadOptions) -> LoadResult:
    """Read mapped JSON lines / JSON array / CSV / Parquet records into ``network_events`` rows."""
    mapping = load_mapping(options)
    stats = LoadStats(path=source.display, format=name, kind=kind)
    sink = RejectSink(source, stats, options.strict)
    batch = Batcher(NETWORK_EVENTS)
    # --tz generic_network=ZONE beats the mapping's time_zone, which beats --tz *=ZONE and UTC.
    zone = options.zones.get(name)
    if zone is None:
        zone = mapping.zone if mapping.zone is not None else options.zone_for(name)
    unit = options.epoch_unit if options.epoch_unit != "auto" else mapping.epoch_unit or "auto"
    expected = mapping.epoch_unit or "s"
    head = source.head()
    records: Iterator[Record]
    if head.startswith(b"PAR1"):
        records = _parquet_records(source, mapping)
    elif first_line(head).startswith((b"{", b"[")):
        records = json_documents(source, stats, sink)
    else:
        records = _checked_csv_rows(source, mapping, stats, sink)
    for line, record, raw in records:
        stats.read += 1
        try:
            row = _convert(record, mapping, zone, unit, expected)
        except fields.RowError as exc:
            sink.reject(line, str(exc), raw)
            continue
        row.update(source_format=name, source_path=source.display, source_line=line)
        batch.add(row)
        stats.loaded += 1
        if row["ts_note"]:
            stats.notes[row["ts_note"]] += 1
    return LoadResult(
        kind=kind,
        table=batch.table(),
        stats=stats,
        rejects=sink.rejects,
        context=list(mapping.context),
    )


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
    columns = [n for n in names if n in wanted]
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
