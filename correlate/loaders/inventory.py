"""Inventory of sandboxes/hosts and their addresses, CSV or JSON, with optional validity times.

Columns (case-insensitive; first match wins): host = ``host`` | ``hostname`` | ``sandbox`` |
``sandbox_id`` | ``container`` | ``name``; ip = ``ip`` | ``ip_address`` | ``address`` |
``private_ip`` | ``sandbox_ip`` | ``host_ip``; optional ``valid_from``, ``valid_to`` (ISO 8601 or
epoch; naive times are UTC unless ``--tz inventory=ZONE``) and ``note``. JSON may be an array of
objects, ``{"hosts": [...]}``, or one object per line.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any

from ..schema import HOSTS
from ..sources import Source, decode_line
from ..timeparse import TimeParseError, parse_time
from . import fields
from .base import Batcher, LoadOptions, LoadResult, LoadStats, RejectSink
from .records import Record, csv_records, first_line, json_documents

name = "inventory"
kind = "hosts"
description = "Host/sandbox to IP inventory (CSV or JSON), optional valid_from/valid_to"

HOST_KEYS = ("host", "hostname", "sandbox", "sandbox_id", "container", "name")
IP_KEYS = ("ip", "ip_address", "address", "private_ip", "sandbox_ip", "host_ip")


def _pick(record: dict[str, Any], keys: tuple[str, ...]) -> Any:
    lowered = {str(k).strip().lower(): v for k, v in record.items()}
    for key in keys:
        if key in lowered and not fields.is_blank(lowered[key]):
            return lowered[key]
    return None


def _has_columns(names: list[str]) -> bool:
    lowered = {n.strip().lower().lstrip("\ufeff") for n in names}
    return bool(lowered & set(HOST_KEYS)) and bool(lowered & set(IP_KEYS))


def _first_record(head: bytes) -> dict[str, Any] | None:
    """The first JSON object of a head: a whole small document, else the first line."""
    text, _ = decode_line(head)
    candidates = [text, first_line(head).decode("utf-8", "replace")]
    for candidate in candidates:
        try:
            document = json.loads(candidate)
        except (ValueError, RecursionError):
            continue
        if isinstance(document, dict) and isinstance(document.get("hosts"), list):
            document = document["hosts"]
        if isinstance(document, list):
            document = document[0] if document else None
        return document if isinstance(document, dict) else None
    return None


def sniff(head: bytes, filename: str) -> float:
    """Score: a CSV header, or the first JSON record's own keys, naming a host and an IP column.

    Only top-level keys with plain values count, so a trajectory or a flow record that nests a
    ``sandbox_ip`` or an endpoint's ``hostname`` is not mistaken for an inventory.
    """
    sample = head.lstrip()
    if sample.startswith((b"{", b"[")):
        record = _first_record(head)
        if record is None:
            return 0.0
        plain = {
            k.lower()
            for k, v in record.items()
            if isinstance(k, str) and not isinstance(v, (dict, list))
        }
        if not (plain & set(HOST_KEYS) and plain & set(IP_KEYS)) or len(record) > 12:
            return 0.0
        return 0.9 if "valid_from" in plain else 0.6
    text, _ = decode_line(sample[:8192])
    first = text.split("\n", 1)[0]
    try:
        header = next(csv.reader([first]))
    except (csv.Error, StopIteration):
        return 0.0
    if not _has_columns(header) or len(header) > 12:
        return 0.0
    return (
        0.9
        if "valid_from" in first.lower() or filename.lower().startswith(("inventory", "hosts"))
        else 0.6
    )


def read(source: Source, options: LoadOptions) -> LoadResult:
    """Read an inventory into ``hosts`` rows (origin ``inventory``)."""
    stats = LoadStats(path=source.display, format=name, kind=kind)
    sink = RejectSink(source, stats, options.strict)
    batch = Batcher(HOSTS)
    if first_line(source.head()).startswith((b"{", b"[")):
        records = _expand_hosts(json_documents(source, stats, sink), stats, sink)
    else:
        records = csv_records(source, stats, sink)
    zone = options.zone_for(name)
    for line, record, raw in records:
        stats.read += 1
        try:
            row = _convert(record, options, zone)
        except fields.RowError as exc:
            sink.reject(line, str(exc), raw)
            continue
        row.update(source_format=name, source_path=source.display, source_line=line)
        batch.add(row)
        stats.loaded += 1
        for note in row.pop("_time_notes"):
            stats.notes[note] += 1
    return LoadResult(kind=kind, table=batch.table(), stats=stats, rejects=sink.rejects)


def _convert(record: dict[str, Any], options: LoadOptions, zone: Any) -> dict[str, Any]:
    host = fields.text(_pick(record, HOST_KEYS))
    if host is None:
        raise fields.RowError("no host/sandbox name")
    address = fields.ip(_pick(record, IP_KEYS), "ip", required=True)
    bounds: list[int | None] = []
    notes: list[str] = []
    for key in ("valid_from", "valid_to"):
        value = _pick(record, (key,))
        if value is None:
            bounds.append(None)
            continue
        try:
            ns, note = parse_time(
                value, default_tz=zone, epoch_unit=options.epoch_unit, expected_unit="s"
            )
        except TimeParseError as exc:
            raise fields.RowError(f"{key}: {exc}") from None
        bounds.append(ns)
        if note and note not in notes:
            notes.append(note)
    if bounds[0] is not None and bounds[1] is not None and bounds[1] <= bounds[0]:
        raise fields.RowError("valid_to is not after valid_from")
    user_note = fields.text(_pick(record, ("note", "comment", "description")))
    return {
        "host": host,
        "ip": address,
        "valid_from": bounds[0],
        "valid_to": bounds[1],
        "origin": "inventory",
        "note": "; ".join(filter(None, [*notes, user_note])) or None,
        "_time_notes": notes,
    }


def _expand_hosts(
    records: Iterator[Record], stats: LoadStats, sink: RejectSink
) -> Iterator[Record]:
    """Records as they come, except that ``{"hosts": [...]}`` gives one record per entry."""
    for line, record, raw in records:
        hosts = record.get("hosts")
        if not isinstance(hosts, list):
            yield line, record, raw
            continue
        for index, item in enumerate(hosts, start=1):
            if isinstance(item, dict):
                yield index, item, json.dumps(item, ensure_ascii=False)
            else:
                stats.read += 1
                sink.reject(index, f"inventory entry {index} is not an object", json.dumps(item))
