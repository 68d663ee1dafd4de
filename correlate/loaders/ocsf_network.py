"""OCSF Network Activity events (class_uid 4001): JSON lines/documents, or Parquet (AWS Security Lake).

Events of other classes are skipped; a ``.parquet.gz`` is refused (Parquet compresses its own
pages). Mapping: ``start_time`` (else ``time``, else ``*_dt``) -> ``ts`` (epoch ms, noted when the
magnitude says otherwise; zone-less times in ``--tz ocsf_network=ZONE``, UTC, noted),
``end_time`` -> ``ts_end``; endpoints -> the 5-tuple; ``connection_info.uid`` -> ``flow_key``;
``direction_id`` 1 -> inbound, 2 -> outbound, 3/4 -> internal, else unknown; verdict: ``action_id``
Denied or a blocking ``disposition_id`` -> denied, else Detected/Alert -> alerted, else Allowed ->
allowed, else unknown (``action_raw`` = ``<action>/<disposition>``); ``traffic.*_out``/``*_in`` ->
counters (totals are not split); ``firewall_rule`` -> rule; ``dst_endpoint.hostname`` ->
``dst_domain``; the product -> observer; ``src_endpoint.instance_uid`` -> ``host_hint``.

Rejected: no ``class_uid``, no source or destination IP, unreadable values. JSON lines and Parquet
are read column-wise, every other event through the per-event reader (same rows, rejects and
stats). No ``--option`` keys. Field reference and sources: ``tests/data/ocsf_network/README.md``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import FormatMismatch, InputError
from ..schema import NETWORK_EVENTS
from ..sources import HEAD_BYTES, Source
from ..timeparse import TimeParseError, ns_to_iso, parse_epoch, parse_iso, parse_time
from . import fields
from .base import BATCH_ROWS, FileLoad, LoadOptions, LoadResult
from .columnar import IPV4, ip_or_bad, mapped, text
from .records import first_line, json_documents, json_line_record
from .zeek_conn import Checked, iso_z_ns, per_combination, read_json_runs, settle_records

name = "ocsf_network"
kind = "network"
description = "OCSF Network Activity (class_uid 4001) events: JSON lines, JSON, or Parquet"

NETWORK_ACTIVITY = 4001
DIRECTION_IDS = {
    0: "unknown",
    1: "inbound",
    2: "outbound",
    3: "internal",
    4: "internal",
    99: "unknown",
}
DIRECTION_NAMES = {"inbound": 1, "outbound": 2, "lateral": 3, "local": 4, "unknown": 0, "other": 99}
ACTION_CAPTIONS = {
    0: "Unknown",
    1: "Allowed",
    2: "Denied",
    3: "Observed",
    4: "Modified",
    99: "Other",
}
DISPOSITION_CAPTIONS = {
    0: "Unknown",
    1: "Allowed",
    2: "Blocked",
    3: "Quarantined",
    4: "Isolated",
    5: "Deleted",
    6: "Dropped",
    7: "Custom Action",
    8: "Approved",
    9: "Restored",
    10: "Exonerated",
    11: "Corrected",
    12: "Partially Corrected",
    13: "Uncorrected",
    14: "Delayed",
    15: "Detected",
    16: "No Action",
    17: "Logged",
    18: "Tagged",
    19: "Alert",
    20: "Count",
    21: "Reset",
    22: "Captcha",
    23: "Challenge",
    24: "Access Revoked",
    25: "Rejected",
    26: "Unauthorized",
    27: "Error",
    99: "Other",
}
DISPOSITION_DENIED = frozenset({2, 6, 21, 24, 25, 26})
DISPOSITION_ALERTED = frozenset({15, 19})
DISPOSITION_ALLOWED = frozenset({1, 8})
PARQUET_COLUMNS = (
    "class_uid",
    "time",
    "time_dt",
    "start_time",
    "start_time_dt",
    "end_time",
    "end_time_dt",
    "src_endpoint",
    "dst_endpoint",
    "connection_info",
    "traffic",
    "action",
    "action_id",
    "disposition",
    "disposition_id",
    "is_alert",
    "firewall_rule",
    "app_name",
    "metadata",
    "device",
)
_CLASS_RE = re.compile(rb'"class_uid"\s*:\s*"?4001"?(?![0-9])')
_ENDPOINT_RE = re.compile(rb'"(?:src_endpoint|dst_endpoint|connection_info)"\s*:')


@dataclass(frozen=True)
class _Stamp:
    """A Parquet timestamp cell: the raw integer in its column's unit, and whether it has a zone."""

    value: int
    unit: str
    zoned: bool


def sniff(head: bytes, filename: str) -> float:
    """Score: JSON naming ``"class_uid": 4001``, or Parquet whose schema has ``class_uid``."""
    if head.startswith(b"PAR1"):
        return _sniff_parquet(head)
    sample = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not sample.startswith((b"{", b"[")) or not _CLASS_RE.search(sample):
        return 0.0
    return 0.95 if _ENDPOINT_RE.search(sample) else 0.7


def _sniff_parquet(head: bytes) -> float:
    """Whole small files are judged by their schema; for larger ones the head holds no footer."""
    if len(head) < HEAD_BYTES and head.endswith(b"PAR1"):
        try:
            names = set(pq.read_schema(pa.BufferReader(head)).names)
        except Exception:  # any unreadable bytes simply are not ours
            return 0.0
        if "class_uid" not in names:
            return 0.0
        return 0.95 if names & {"src_endpoint", "dst_endpoint", "connection_info"} else 0.7
    # The schema is in the footer, past the head: judge by column chunks seen so far. A tiny
    # positive score lets --format ocsf_network force such a file.
    return 0.6 if b"class_uid" in head or b"Network Activity" in head else 0.05


def read(source: Source, options: LoadOptions, *, fast: bool = True) -> LoadResult:
    """Read OCSF events (JSON or Parquet) into ``network_events`` rows (column-wise;
    ``fast=False``: every event by the per-event reader, the reference)."""
    load = FileLoad(source, options, name, kind, NETWORK_EVENTS, unit="events")
    fast = fast and options.epoch_unit in ("auto", "ms")
    if source.head(4) == b"PAR1":
        _read_parquet(load, fast=fast)
    elif _json_lines(source):
        read_json_runs(load, JSON_SCHEMA, _columns(options), _line, fast=fast, flat=_flat)
    else:
        for line, record, raw in json_documents(source, load.stats, load.sink):
            _record(line, record, raw, load)
    return load.result()


def _json_lines(source: Source) -> bool:
    """Whether ``json_documents`` would read the file as JSON lines (not one document)."""
    first = first_line(source.head())
    try:
        return not isinstance(json.loads(first), list)
    except (ValueError, RecursionError):
        return not first.startswith((b"{", b"["))


def _line(line: int, raw: bytes, load: FileLoad) -> None:
    """One JSON line through the per-event reader."""
    found = json_line_record(line, raw, load)
    if found is not None:
        _record(line, found[0], found[1], load)


def _record(line: int, record: dict[str, Any], raw: str, load: FileLoad) -> None:
    """One event: skipped (another class), converted and emitted, or rejected with its reason."""
    class_uid = record.get("class_uid")
    if fields.is_blank(class_uid):
        load.reject(line, "no class_uid (not an OCSF event)", raw)
        return
    try:
        class_number = fields.integer(class_uid, "class_uid")
    except fields.RowError as exc:
        load.reject(line, str(exc), raw)
        return
    if class_number != NETWORK_ACTIVITY:
        load.skip(f"class_uid {class_number} (not Network Activity 4001)")
        return
    try:
        row = _convert(record, load.options)
    except fields.RowError as exc:
        load.reject(line, str(exc), raw)
        return
    load.emit(row, line)


def _parquet_file(source: Source) -> tuple[pq.ParquetFile, list[str]]:
    """The Parquet file and the columns read (an InputError or FormatMismatch when unreadable)."""
    if source.compression:
        raise InputError(
            f"{source.display}: a {source.compression}-compressed Parquet file; decompress it "
            "first (Parquet compresses its own pages)"
        )
    try:
        parquet = pq.ParquetFile(str(source.path))
        names = parquet.schema_arrow.names
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{source.display}: cannot read Parquet: {exc}") from exc
    if "class_uid" not in names:
        raise FormatMismatch(f"{source.display}: Parquet without a class_uid column is not OCSF")
    return parquet, [c for c in PARQUET_COLUMNS if c in names]


def _read_parquet(load: FileLoad, *, fast: bool) -> None:
    """Record batches of a Parquet file: column-wise where ``fast`` (rows the checks do not
    vouch for by the per-event reader), else every row by it."""
    parquet, columns = _parquet_file(load.source)
    check = _columns(load.options)
    number = 0
    try:
        for record_batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns):
            first, number = number + 1, number + record_batch.num_rows

            def read_row(
                index: int, into: FileLoad, batch: pa.RecordBatch = record_batch, at: int = first
            ) -> None:
                cells = _batch_columns(batch.slice(index, 1))
                row = {column: values[0] for column, values in cells.items()}
                raw = json.dumps(row, default=str, sort_keys=True)[:4096]
                _record(at + index, row, raw, into)

            cols = _flat(record_batch) if fast else None
            if cols is None:
                for index in range(record_batch.num_rows):
                    read_row(index, load)
                continue
            ok = np.ones(record_batch.num_rows, dtype=bool)
            settle_records(load, first, ok, check(cols, ok), read_row, NETWORK_EVENTS)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(
            f"{load.source.display}: cannot read Parquet row {number + 1}: {exc}"
        ) from exc


def _parquet_records(source: Source) -> Iterator[tuple[int, dict[str, Any], str]]:
    """Rows of a Parquet file as dicts (nested structs as dicts), in record batches: the
    per-event reader's view of a Parquet file."""
    parquet, columns = _parquet_file(source)
    number = 0
    try:
        for record_batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns):
            cells = _batch_columns(record_batch)
            for index in range(record_batch.num_rows):
                number += 1
                row = {column: values[index] for column, values in cells.items()}
                yield number, row, json.dumps(row, default=str, sort_keys=True)[:4096]
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{source.display}: cannot read Parquet row {number + 1}: {exc}") from exc


def _batch_columns(record_batch: pa.RecordBatch) -> dict[str, list[Any]]:
    """A record batch as Python lists; top-level timestamp columns become exact ``_Stamp`` cells."""
    out: dict[str, list[Any]] = {}
    for field, column in zip(record_batch.schema, record_batch.columns, strict=True):
        if pa.types.is_timestamp(field.type):
            unit, zoned = field.type.unit, field.type.tz is not None
            out[field.name] = [
                None if v is None else _Stamp(v, unit, zoned)
                for v in column.cast(pa.int64()).to_pylist()
            ]
        else:
            out[field.name] = column.to_pylist()
    return out


def _object(parent: dict[str, Any], key: str) -> dict[str, Any]:
    """A nested OCSF object, ``{}`` when absent; a non-object value is a bad row."""
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fields.RowError(f"{key} is not an object")
    return value


def _time(record: dict[str, Any], key: str, options: LoadOptions) -> tuple[int, str | None] | None:
    """``key`` (epoch ms, a Parquet timestamp) or ``key_dt`` (ISO 8601) as ns; None when absent."""
    value = record.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        text = record.get(f"{key}_dt")
        if not isinstance(text, str) or not text.strip():
            return None
        key, value = f"{key}_dt", text
    zone = options.zone_for(name)
    try:
        if isinstance(value, _Stamp):
            ns, _ = parse_epoch(value.value, unit=value.unit, expected=value.unit)
            if value.zoned:
                return ns, None
            return parse_iso(ns_to_iso(ns).removesuffix("Z"), default_tz=zone)
        if isinstance(value, (dict, list, bool)):
            raise TimeParseError(f"not a time: {value!r}")
        return parse_time(value, default_tz=zone, epoch_unit=options.epoch_unit, expected_unit="ms")
    except TimeParseError as exc:
        raise fields.RowError(f"{key}: {exc}") from None


def _enum(value: Any, caption: Any, names: dict[str, int], label: str) -> int | None:
    """An OCSF enum id from its ``*_id`` attribute, else from its caption."""
    if not fields.is_blank(value):
        return fields.integer(value, label)
    text = fields.text(caption)
    return names.get(text.lower()) if text else None


def _verdict(record: dict[str, Any]) -> tuple[str, str | None]:
    """Normalised action from ``action_id``/``disposition_id``/``is_alert`` and the raw captions."""
    action_names = {v.lower(): k for k, v in ACTION_CAPTIONS.items()}
    disposition_names = {v.lower(): k for k, v in DISPOSITION_CAPTIONS.items()}
    action_id = _enum(record.get("action_id"), record.get("action"), action_names, "action_id")
    disposition_id = _enum(
        record.get("disposition_id"), record.get("disposition"), disposition_names, "disposition_id"
    )
    if action_id == 2 or disposition_id in DISPOSITION_DENIED:
        verdict = "denied"
    elif disposition_id in DISPOSITION_ALERTED or record.get("is_alert") is True:
        verdict = "alerted"
    elif action_id == 1 or disposition_id in DISPOSITION_ALLOWED:
        verdict = "allowed"
    else:
        verdict = "unknown"
    action_text = fields.text(record.get("action")) or (
        ACTION_CAPTIONS.get(action_id) if action_id is not None else None
    )
    disposition_text = fields.text(record.get("disposition")) or (
        DISPOSITION_CAPTIONS.get(disposition_id) if disposition_id is not None else None
    )
    raw = "/".join(part for part in (action_text, disposition_text) if part) or None
    return verdict, raw


def _direction(connection: dict[str, Any]) -> str:
    """Our direction from ``direction_id`` (else the ``direction`` caption)."""
    direction_id = _enum(
        connection.get("direction_id"),
        connection.get("direction"),
        DIRECTION_NAMES,
        "connection_info.direction_id",
    )
    return DIRECTION_IDS.get(direction_id, "unknown") if direction_id is not None else "unknown"


def _domain(value: Any) -> str | None:
    """A host name as ``dst_domain`` (lower case, no trailing dot); None for IP literals."""
    text = fields.text(value)
    if text is None or isinstance(value, (dict, list)):
        return None
    text = text.lower().rstrip(".")
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return text or None
    return None


def _convert(record: dict[str, Any], options: LoadOptions) -> dict[str, Any]:
    """One OCSF Network Activity event to a ``network_events`` row (without provenance)."""
    notes: list[str] = []
    start = _time(record, "start_time", options) or _time(record, "time", options)
    if start is None:
        raise fields.RowError("no time, start_time or time_dt")
    ts, note = start
    if note:
        notes.append(note)
    ts_end = None
    end = _time(record, "end_time", options)
    if end is not None:
        if end[0] < ts:
            notes.append("end_time before start_time: end ignored")
        else:
            ts_end = end[0]
            if end[1] and end[1] not in notes:
                notes.append(end[1])
    src = _object(record, "src_endpoint")
    dst = _object(record, "dst_endpoint")
    connection = _object(record, "connection_info")
    traffic = _object(record, "traffic")
    rule_object = _object(record, "firewall_rule")
    metadata = _object(record, "metadata")
    product = _object(metadata, "product")
    device = _object(record, "device")
    verdict, action_raw = _verdict(record)
    observer = _observer(
        product.get("name"),
        _object(product, "feature").get("name"),
        device.get("hostname"),
        device.get("name"),
    )
    connection_uid = fields.text(connection.get("uid"))
    return {
        "ts": ts,
        "ts_end": ts_end,
        "src_ip": fields.ip(src.get("ip"), "src_endpoint.ip", required=True),
        "src_port": fields.port(src.get("port"), "src_endpoint.port"),
        "src_nat_ip": None,
        "dst_ip": fields.ip(dst.get("ip"), "dst_endpoint.ip", required=True),
        "dst_port": fields.port(dst.get("port"), "dst_endpoint.port"),
        "protocol": fields.protocol(connection.get("protocol_name"))
        or fields.protocol(connection.get("protocol_num")),
        "direction": _direction(connection),
        "action": verdict,
        "action_raw": action_raw,
        "rule": _rule(rule_object),
        "signature": None,
        "category": None,
        "dst_domain": _domain(dst.get("hostname")) or _domain(dst.get("domain")),
        "app": fields.text(record.get("app_name")) or fields.text(dst.get("svc_name")),
        "bytes_out": fields.counter(traffic.get("bytes_out"), "traffic.bytes_out"),
        "bytes_in": fields.counter(traffic.get("bytes_in"), "traffic.bytes_in"),
        "packets_out": fields.counter(traffic.get("packets_out"), "traffic.packets_out"),
        "packets_in": fields.counter(traffic.get("packets_in"), "traffic.packets_in"),
        "observer": observer,
        "host_hint": fields.text(src.get("instance_uid"))
        or fields.text(src.get("interface_uid"))
        or fields.text(src.get("hostname"))
        or fields.text(src.get("name")),
        "flow_key": f"ocsf:{connection_uid}" if connection_uid else None,
        "ts_note": "; ".join(notes) or None,
    }


# --- column-wise --------------------------------------------------------------------------------

_TEXT, _INT, _BOOL = pa.string(), pa.int64(), pa.bool_()
PATHS: dict[str, pa.DataType] = {
    "class_uid": _INT,
    **{key: _INT for key in ("time", "start_time", "end_time")},
    **{f"{key}_dt": _TEXT for key in ("time", "start_time", "end_time")},
    "action": _TEXT,
    "action_id": _INT,
    "disposition": _TEXT,
    "disposition_id": _INT,
    "is_alert": _BOOL,
    "app_name": _TEXT,
    **{
        f"src_endpoint.{key}": _TEXT
        for key in ("ip", "instance_uid", "interface_uid", "hostname", "name")
    },
    "src_endpoint.port": _INT,
    **{f"dst_endpoint.{key}": _TEXT for key in ("ip", "hostname", "domain", "svc_name")},
    "dst_endpoint.port": _INT,
    "connection_info.protocol_name": _TEXT,
    "connection_info.protocol_num": _INT,
    "connection_info.uid": _TEXT,
    "connection_info.direction_id": _INT,
    "connection_info.direction": _TEXT,
    **{f"traffic.{key}": _INT for key in ("bytes_out", "bytes_in", "packets_out", "packets_in")},
    "firewall_rule.name": _TEXT,
    "firewall_rule.uid": _TEXT,
    "metadata.product.name": _TEXT,
    "metadata.product.feature.name": _TEXT,
    "device.hostname": _TEXT,
    "device.name": _TEXT,
}
"""Every attribute ``_convert`` reads, by dotted path, typed as OCSF JSON writes it."""


def _nested(paths: dict[str, pa.DataType]) -> pa.Schema:
    """The dotted paths as a schema of struct columns."""
    tree: dict[str, Any] = {}
    for path, type_ in paths.items():
        node = tree
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = type_

    def fields_of(node: dict[str, Any]) -> list[pa.Field]:
        return [
            pa.field(key, pa.struct(fields_of(value)) if isinstance(value, dict) else value)
            for key, value in node.items()
        ]

    return pa.schema(fields_of(tree))


JSON_SCHEMA = _nested(PATHS)
"""What pyarrow parses of a JSON line (other attributes are not parsed; a value of another type
makes it refuse the line, which the per-event reader then reads)."""
_TIMES = ("time", "start_time", "end_time")


def _flat(data: pa.Table | pa.RecordBatch) -> dict[str, pa.Array] | None:
    """Every path of ``PATHS`` as a column (null where absent); top-level time columns that are
    Parquet timestamps stay timestamps. None when a column has a type the checks do not read
    (the per-event reader then reads every row)."""
    n = data.num_rows
    out: dict[str, pa.Array] = {}
    for path, type_ in PATHS.items():
        head, *rest = path.split(".")
        if head not in data.schema.names:
            out[path] = pa.nulls(n, type_)
            continue
        values: pa.Array | None = data.column(head)
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        for part in rest:
            assert values is not None
            if not pa.types.is_struct(values.type):
                return None
            if values.type.get_field_index(part) < 0:
                values = None
                break
            values = pc.struct_field(values, part)
        if values is None:
            out[path] = pa.nulls(n, type_)
        elif path in _TIMES and pa.types.is_timestamp(values.type):
            out[path] = values
        else:
            converted = _as(values, type_)
            if converted is None:
                return None
            out[path] = converted
    return out


def _as(values: pa.Array, type_: pa.DataType) -> pa.Array | None:
    """``values`` as ``type_`` when Python would see the same values (ints widened, large or
    dictionary text decoded); None otherwise."""
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if values.type == type_:
        return values
    if pa.types.is_null(values.type):
        return pa.nulls(len(values), type_)
    if type_ == _INT and pa.types.is_integer(values.type) and values.type != pa.uint64():
        return values.cast(_INT)
    if type_ == _TEXT and pa.types.is_large_string(values.type):
        return values.cast(_TEXT)
    return None


def _mask(values: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)


_MS_BAND = (10**11, 10**14)
"""Epoch values read as milliseconds by magnitude (the unit OCSF documents: no note)."""
_MAX_MS = (2**63 - 2) // 1_000_000


def _epoch(values: pa.Array, explicit_ms: bool) -> tuple[pa.Array, np.ndarray]:
    """An OCSF time column as ns and the rows read without a note: epoch ms (by magnitude, or
    any under ``--epoch-unit ms``), a zoned Parquet timestamp (exact)."""
    n = len(values)
    if pa.types.is_timestamp(values.type):
        if values.type.tz is None:  # read in the zone option, noted: the per-event reader
            return pa.nulls(n, _INT), np.zeros(n, dtype=bool)
        try:
            ns = values.cast(pa.timestamp("ns", tz=values.type.tz)).cast(_INT)
        except pa.ArrowInvalid:  # out of timestamp[ns]: the per-event reader rejects it
            return pa.nulls(n, _INT), np.zeros(n, dtype=bool)
        return ns, _mask(pc.is_valid(ns))
    low, high = (0, _MAX_MS + 1) if explicit_ms else _MS_BAND
    inside = pc.and_(pc.greater_equal(values, low), pc.less(values, high))
    good = _mask(inside)
    ns = pc.multiply(pc.if_else(pa.array(good), values, pa.scalar(0, _INT)), 1_000_000)
    return ns, good


def _when(col: dict[str, pa.Array], key: str, explicit_ms: bool) -> tuple[pa.Array, ...]:
    """``_time(record, key)`` column-wise: (ns, rows giving a time read without a note, rows
    giving no time at all)."""
    value, dt = col[key], col[f"{key}_dt"]
    n = len(value)
    number, number_ok = _epoch(value, explicit_ms)
    has_value = _mask(pc.is_valid(value))
    if dt.null_count == n:  # the usual file: no *_dt text at all
        return number, number_ok, ~has_value
    has_dt = _mask(pc.greater(pc.binary_length(dt), 0))  # blank text: the per-event reader
    iso, iso_ok = iso_z_ns(dt)
    ns = pc.if_else(pa.array(has_value), number, iso)
    good = np.where(has_value, number_ok, has_dt & iso_ok)
    return ns, good, ~has_value & ~has_dt


@lru_cache(maxsize=1 << 16)
def _address(value: str) -> Any:
    return ip_or_bad(value)


def _columns(options: LoadOptions) -> Callable[[dict[str, pa.Array], np.ndarray], Checked]:
    """``_record`` column-wise, for the events it would load without a note or skip by class."""
    explicit_ms = options.epoch_unit == "ms"

    def columns(col: dict[str, pa.Array], ok: np.ndarray) -> Checked:
        n = len(ok)
        class_uid = col["class_uid"]
        ok &= _mask(pc.is_valid(class_uid))  # none: a reject
        other = _mask(pc.not_equal(class_uid, NETWORK_ACTIVITY))
        reasons = None
        if other.any():
            reasons = pc.if_else(
                pa.array(other),
                pc.binary_join_element_wise(
                    "class_uid ", pc.cast(class_uid, _TEXT), " (not Network Activity 4001)", ""
                ),
                pa.scalar(None, _TEXT),
            )
        start, start_ok, no_start = _when(col, "start_time", explicit_ms)
        time, time_ok, _ = _when(col, "time", explicit_ms)
        ts = pc.if_else(pa.array(no_start), time, start)
        ok &= np.where(no_start, time_ok, start_ok)  # neither: "no time..." (a reject)
        end, end_ok, no_end = _when(col, "end_time", explicit_ms)
        ok &= no_end | (end_ok & _mask(pc.greater_equal(end, ts)))  # end before start: a note
        ts_end = pc.if_else(pa.array(no_end), pa.scalar(None, _INT), end)
        src = mapped(col["src_endpoint.ip"], _address, ok, same=IPV4)
        dst = mapped(col["dst_endpoint.ip"], _address, ok, same=IPV4)
        ok &= _mask(pc.and_(pc.is_valid(src), pc.is_valid(dst)))  # missing: a reject
        ports = {}
        for side in ("src", "dst"):
            port = col[f"{side}_endpoint.port"]
            inside = pc.and_(pc.greater_equal(port, 0), pc.less_equal(port, 65535))
            ok &= _mask(inside) | _mask(pc.is_null(port))
            ports[f"{side}_port"] = port
        counts = {}
        for key in ("bytes_out", "bytes_in", "packets_out", "packets_in"):
            count = col[f"traffic.{key}"]
            ok &= _mask(pc.greater_equal(count, 0)) | _mask(pc.is_null(count))
            counts[key] = count
        verdict, action_raw = per_combination(
            {k: col[k] for k in ("action_id", "action", "disposition_id", "disposition")}
            | {"is_alert": col["is_alert"]},
            _verdict,
            (_TEXT, _TEXT),
        )
        ok |= other  # another class: skipped whatever else it holds

        def build(indices: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
            picks = None if len(indices) == n else pa.array(indices)

            def at(values: pa.Array) -> pa.Array:
                return values if picks is None else values.take(picks)

            c = {k: at(v) for k, v in col.items()}
            m = len(indices)
            (direction,) = per_combination(
                {
                    "direction_id": c["connection_info.direction_id"],
                    "direction": c["connection_info.direction"],
                },
                lambda row: (_direction(row),),
                (_TEXT,),
            )
            (rule,) = per_combination(
                {"name": c["firewall_rule.name"], "uid": c["firewall_rule.uid"]},
                lambda row: (_rule(row),),
                (_TEXT,),
            )
            (observer,) = per_combination(
                {
                    "product": c["metadata.product.name"],
                    "feature": c["metadata.product.feature.name"],
                    "hostname": c["device.hostname"],
                    "name": c["device.name"],
                },
                lambda row: (
                    _observer(row["product"], row["feature"], row["hostname"], row["name"]),
                ),
                (_TEXT,),
            )
            uid = text(c["connection_info.uid"])
            values = {
                "ts": at(ts),
                "ts_end": at(ts_end),
                "src_ip": at(src),
                "src_port": at(ports["src_port"]),
                "dst_ip": at(dst),
                "dst_port": at(ports["dst_port"]),
                "protocol": pc.coalesce(
                    mapped(c["connection_info.protocol_name"], fields.protocol),
                    mapped(pc.cast(c["connection_info.protocol_num"], _TEXT), fields.protocol),
                ),
                "direction": direction,
                "action": at(verdict),
                "action_raw": at(action_raw),
                "rule": rule,
                "dst_domain": pc.coalesce(
                    mapped(c["dst_endpoint.hostname"], _domain),
                    mapped(c["dst_endpoint.domain"], _domain),
                ),
                "app": pc.coalesce(text(c["app_name"]), text(c["dst_endpoint.svc_name"])),
                **{k: at(v) for k, v in counts.items()},
                "observer": observer,
                "host_hint": pc.coalesce(
                    *(
                        text(c[f"src_endpoint.{k}"])
                        for k in ("instance_uid", "interface_uid", "hostname", "name")
                    )
                ),
                "flow_key": pc.binary_join_element_wise("ocsf:", uid, ""),
            }
            return values, np.arange(m)

        return verdict, reasons, build

    return columns


def _rule(rule_object: dict[str, Any]) -> str | None:
    """``firewall_rule`` as ``rule``: ``name (uid)`` when both differ, else whichever is set."""
    rule_name = fields.text(rule_object.get("name"))
    rule_uid = fields.text(rule_object.get("uid"))
    rule = f"{rule_name} ({rule_uid})" if rule_name and rule_uid and rule_name != rule_uid else None
    return rule or rule_name or rule_uid


def _observer(product: Any, feature: Any, hostname: Any, device_name: Any) -> str:
    """``metadata.product.name`` (+ ``feature.name``), else the device's name, else ``ocsf``."""
    observer = "/".join(p for p in (fields.text(product), fields.text(feature)) if p)
    return observer or fields.text(hostname) or fields.text(device_name) or "ocsf"
