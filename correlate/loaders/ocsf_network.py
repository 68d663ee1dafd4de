"""OCSF Network Activity events (class_uid 4001): JSON lines/documents, or Parquet (AWS Security Lake).

JSON: one event object per line, or one pretty-printed object or array of objects. Parquet: the
OCSF attributes as (nested struct) columns, as Security Lake stores them, read in record batches;
a record number is the 1-based row in the file. Events of other classes are skipped with their
class_uid. Parquet compresses its own pages, so a ``.parquet.gz`` is refused with a clear error.

Sources (OCSF 1.x, schema.ocsf.io; ocsf/ocsf-schema ``events/network/network_activity.json``,
``objects/_endpoint.json``, ``objects/network_endpoint.json``, ``objects/network_connection_info.json``,
``objects/network_traffic.json``; the enum captions as generated in mcm/typescript-ocsf
``src/v1_6/enums/{direction_id,action_id,disposition_id}.ts`` and mcm/pydantic-ocsf
``src/ocsf/v1_7_0/enums/direction_id.py``; Security Lake storing OCSF as Parquet per
docs.aws.amazon.com/security-lake/latest/userguide/open-cybersecurity-schema-framework.html as
cited in ../shared/formats/firewall_formats.md section 10a). Mapping (``direction_id`` is
1 Inbound, 2 Outbound in every OCSF 1.x version checked: 1.1, 1.5, 1.6, 1.7):

- time: ``start_time`` (else ``time``; else the ``*_dt`` ISO strings) -> ``ts``; ``end_time`` ->
  ``ts_end``. ``timestamp_t`` is epoch milliseconds; the unit is checked by magnitude and noted
  when it is not ms. Parquet timestamp columns are exact; a zone-less one (and a zone-less
  ``*_dt`` string) is read in ``--tz ocsf_network=ZONE`` (default UTC), noted.
- ``src_endpoint.ip``/``port``, ``dst_endpoint.ip``/``port``; ``connection_info.protocol_name``
  (else ``protocol_num``) -> protocol; ``connection_info.uid`` -> ``flow_key`` (``ocsf:<uid>``).
- direction: ``connection_info.direction_id`` 1 Inbound -> inbound, 2 Outbound -> outbound,
  3 Lateral and 4 Local -> internal, 0 Unknown/99 Other -> unknown (else the ``direction`` text).
- verdict: ``action_id`` 2 Denied, or ``disposition_id`` 2 Blocked/6 Dropped/21 Reset/
  24 Access Revoked/25 Rejected/26 Unauthorized -> denied; else ``disposition_id`` 15 Detected/
  19 Alert or ``is_alert`` true -> alerted; else ``action_id`` 1 Allowed or ``disposition_id``
  1 Allowed/8 Approved -> allowed; else unknown. The captions (``action``, ``disposition``) are
  read when the ids are missing; ``action_raw`` is ``<action>/<disposition>``.
- ``traffic.bytes_out``/``bytes_in``/``packets_out``/``packets_in`` -> counters (out = from the
  source, per the OCSF dictionary); the totals ``traffic.bytes``/``packets`` are not split.
- ``firewall_rule.name``/``uid`` -> rule (``name (uid)`` when both); ``dst_endpoint.hostname``
  (else ``domain``) -> ``dst_domain`` unless it is an IP; ``app_name`` (else
  ``dst_endpoint.svc_name``) -> app; ``metadata.product.name`` (+ ``feature.name``) -> observer
  (else ``device.hostname``/``device.name``, else ``ocsf``); ``src_endpoint.instance_uid``
  (else ``interface_uid``, ``hostname``, ``name``) -> ``host_hint``.

Rejected: records without ``class_uid``, without a source or destination IP, or with unreadable
values. No per-format options.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import FormatMismatch, InputError
from ..schema import NETWORK_EVENTS
from ..sources import HEAD_BYTES, Source
from ..timeparse import TimeParseError, ns_to_iso, parse_epoch, parse_iso, parse_time
from . import fields
from .base import BATCH_ROWS, Batcher, LoadOptions, LoadResult, LoadStats, RejectSink
from .records import json_documents

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


def read(source: Source, options: LoadOptions) -> LoadResult:
    """Read OCSF events (JSON or Parquet) into ``network_events`` rows."""
    stats = LoadStats(path=source.display, format=name, kind=kind, unit="events")
    sink = RejectSink(source, stats, options.strict)
    batch = Batcher(NETWORK_EVENTS)
    if source.head(4) == b"PAR1":
        records = _parquet_records(source)
    else:
        records = json_documents(source, stats, sink)
    for line, record, raw in records:
        stats.read += 1
        class_uid = record.get("class_uid")
        if fields.is_blank(class_uid):
            sink.reject(line, "no class_uid (not an OCSF event)", raw)
            continue
        try:
            class_number = fields.integer(class_uid, "class_uid")
        except fields.RowError as exc:
            sink.reject(line, str(exc), raw)
            continue
        if class_number != NETWORK_ACTIVITY:
            stats.skipped[f"class_uid {class_number} (not Network Activity 4001)"] += 1
            continue
        try:
            row = _convert(record, options)
        except fields.RowError as exc:
            sink.reject(line, str(exc), raw)
            continue
        row["source_format"] = name
        row["source_path"] = source.display
        row["source_line"] = line
        batch.add(row)
        stats.loaded += 1
        if row["ts_note"]:
            stats.notes[row["ts_note"]] += 1
    return LoadResult(kind=kind, table=batch.table(), stats=stats, rejects=sink.rejects)


def _parquet_records(source: Source) -> Iterator[tuple[int, dict[str, Any], str]]:
    """Rows of a Parquet file as dicts (nested structs as dicts), in record batches."""
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
    columns = [c for c in PARQUET_COLUMNS if c in names]
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
    rule_name = fields.text(rule_object.get("name"))
    rule_uid = fields.text(rule_object.get("uid"))
    rule = f"{rule_name} ({rule_uid})" if rule_name and rule_uid and rule_name != rule_uid else None
    observer = "/".join(
        p
        for p in (
            fields.text(product.get("name")),
            fields.text(_object(product, "feature").get("name")),
        )
        if p
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
        "rule": rule or rule_name or rule_uid,
        "signature": None,
        "category": None,
        "dst_domain": _domain(dst.get("hostname")) or _domain(dst.get("domain")),
        "app": fields.text(record.get("app_name")) or fields.text(dst.get("svc_name")),
        "bytes_out": fields.counter(traffic.get("bytes_out"), "traffic.bytes_out"),
        "bytes_in": fields.counter(traffic.get("bytes_in"), "traffic.bytes_in"),
        "packets_out": fields.counter(traffic.get("packets_out"), "traffic.packets_out"),
        "packets_in": fields.counter(traffic.get("packets_in"), "traffic.packets_in"),
        "observer": observer
        or fields.text(device.get("hostname"))
        or fields.text(device.get("name"))
        or "ocsf",
        "host_hint": fields.text(src.get("instance_uid"))
        or fields.text(src.get("interface_uid"))
        or fields.text(src.get("hostname"))
        or fields.text(src.get("name")),
        "flow_key": f"ocsf:{connection_uid}" if connection_uid else None,
        "ts_note": "; ".join(notes) or None,
    }
