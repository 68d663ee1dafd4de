"""Alibaba Cloud VPC flow logs exported from Log Service (SLS): JSON lines, or CSV with a header.

Sources: SLS "VPC flow log fields" (alibabacloud.com/help/en/sls/vpc and the older
/help/en/sls/flowlog-field-details; Chinese original help.aliyun.com/zh/sls/vpc): ``__topic__``
``flow_log``, ``version``, ``vswitch-id``, ``vm-id`` (the ECS instance the ENI is bound to),
``vpc-id``, ``account-id``, ``eni-id``, ``region``, ``srcaddr``/``srcport``/``dstaddr``/``dstport``,
``protocol`` (IANA number), ``direction`` (``in`` = into the ENI, ``out`` = out of the ENI),
``packets``, ``bytes``, ``start`` (first packet in the capture window, Unix seconds), ``end``
(end of the window, or the close of a short connection, Unix seconds), ``log-status``
(OK/NODATA/SKIPDATA), ``action`` (ACCEPT/REJECT by security group or network ACL), ``tcp-flags``.
The Microsoft Sentinel table ``AlibabaCloudVPCFlowLogs`` documents the same values. Through SLS
every value arrives as a string; epoch values are zone-free.

Mapping: ``ts``/``ts_end`` = ``start``/``end`` (``__time__``, when SLS stored the record, stands in
for a missing ``start``, noted); ``direction`` out -> outbound, in -> inbound (relative to the
ENI), else unknown; ``action`` ACCEPT -> allowed, REJECT -> denied (``action_raw`` keeps it);
``protocol`` number -> name; ``host_hint`` = ``vm-id``, else ``eni-id``; ``observer`` =
``alibaba-vpc-flow``. A record has one counter pair (``bytes``/``packets``, one direction on one
ENI): it goes to ``bytes_in``/``packets_in`` for ``in`` records and to ``bytes_out``/``packets_out``
otherwise. NODATA/SKIPDATA records are counted as skipped. Cloud Firewall records (with
``rule_result``) belong to the ``alibaba_cfw`` loader.

CSV is read line by line (one record per line; a flow log has no multi-line values). No
``--option`` keys.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any

from ..schema import NETWORK_EVENTS
from ..sources import Source, decode_line, iter_lines
from ..timeparse import TimeParseError, parse_epoch
from . import fields
from .base import Batcher, LoadOptions, LoadResult, LoadStats, RejectSink
from .records import Record, first_line, json_line_records

name = "alibaba_vpc_flow"
kind = "network"
description = "Alibaba Cloud VPC flow log (SLS export, JSON lines or CSV)"

ACTIONS = {"ACCEPT": "allowed", "REJECT": "denied"}
DIRECTIONS = {"out": "outbound", "in": "inbound"}
NO_DATA = ("NODATA", "SKIPDATA")
_IDENTITY_KEYS = {"eni-id", "vm-id", "vswitch-id"}


def _keys(first: bytes) -> set[str] | None:
    """The field names of a file's first record: JSON keys or CSV header names."""
    if first.startswith(b"{"):
        try:
            record = json.loads(first)
        except (ValueError, RecursionError):
            return None
        return set(record) if isinstance(record, dict) else None
    try:
        header = next(csv.reader([first.decode("utf-8", "replace")]))
    except (csv.Error, StopIteration):
        return None
    return {h.strip() for h in header}


def sniff(head: bytes, filename: str) -> float:
    """Score: ``srcaddr``/``dstaddr`` beside an ENI/VM/vSwitch id, and no Cloud Firewall verdict."""
    keys = _keys(first_line(head))
    if not keys or "rule_result" in keys or not {"srcaddr", "dstaddr"} <= keys:
        return 0.0
    if not keys & _IDENTITY_KEYS:
        return 0.0
    return 0.95 if keys & {"eni-id", "__topic__"} and "direction" in keys else 0.8


def read(source: Source, options: LoadOptions) -> LoadResult:
    """Read one SLS export of VPC flow logs into ``network_events`` rows."""
    stats = LoadStats(path=source.display, format=name, kind=kind)
    sink = RejectSink(source, stats, options.strict)
    batch = Batcher(NETWORK_EVENTS)
    if first_line(source.head(4096)).startswith(b"{"):
        records = json_line_records(source, stats, sink)
    else:
        records = _csv_lines(source, stats, sink)
    for line, record, raw in records:
        stats.read += 1
        status = fields.text(record.get("log-status"))
        if status in NO_DATA:
            stats.skipped[f"log-status {status}"] += 1
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


def _csv_lines(source: Source, stats: LoadStats, sink: RejectSink) -> Iterator[Record]:
    """CSV rows keyed by the header, streamed one physical line at a time."""
    header: list[str] | None = None
    for line, raw_bytes in iter_lines(source):
        raw, note = decode_line(raw_bytes)
        if note:
            stats.notes[note] += 1
        if line == 1:
            raw = raw.removeprefix("\ufeff")
        if not raw.strip():
            stats.read += 1
            stats.skipped["blank line"] += 1
            continue
        try:
            values = next(csv.reader([raw]))
        except csv.Error as exc:
            stats.read += 1
            sink.reject(line, f"unreadable CSV row: {exc}", raw)
            continue
        if header is None:
            header = [v.strip() for v in values]
            stats.read += 1
            stats.skipped["CSV header"] += 1
            continue
        if len(values) != len(header):
            stats.read += 1
            sink.reject(line, f"{len(values)} columns where the header has {len(header)}", raw)
            continue
        yield line, dict(zip(header, values, strict=True)), raw


def _epoch(value: Any, key: str, options: LoadOptions) -> tuple[int, str | None]:
    try:
        return parse_epoch(value, unit=options.epoch_unit, expected="s")
    except TimeParseError as exc:
        raise fields.RowError(f"{key}: {exc}") from None


def _convert(record: dict[str, Any], options: LoadOptions) -> dict[str, Any]:
    """One flow record to a ``network_events`` row (without provenance)."""
    notes: list[str] = []
    start: Any = record.get("start")
    key = "start"
    if fields.is_blank(start):
        start, key = record.get("__time__"), "__time__"
        if fields.is_blank(start):
            raise fields.RowError("no start and no __time__")
        notes.append("start missing: used __time__ (when SLS stored the record)")
    ts, note = _epoch(start, key, options)
    if note:
        notes.append(note)
    ts_end = None
    if not fields.is_blank(record.get("end")):
        ts_end, _ = _epoch(record["end"], "end", options)
        if ts_end < ts:
            notes.append("end before start: end ignored")
            ts_end = None
    direction = DIRECTIONS.get((fields.text(record.get("direction")) or "").lower(), "unknown")
    action_raw = fields.text(record.get("action"))
    octets = fields.counter(record.get("bytes"), "bytes")
    packets = fields.counter(record.get("packets"), "packets")
    inbound = direction == "inbound"
    return {
        "ts": ts,
        "ts_end": ts_end,
        "src_ip": fields.ip(record.get("srcaddr"), "srcaddr", required=True),
        "src_port": fields.port(record.get("srcport"), "srcport"),
        "dst_ip": fields.ip(record.get("dstaddr"), "dstaddr", required=True),
        "dst_port": fields.port(record.get("dstport"), "dstport"),
        "protocol": fields.protocol(record.get("protocol")),
        "direction": direction,
        "action": ACTIONS.get((action_raw or "").upper(), "unknown"),
        "action_raw": action_raw,
        "bytes_out": None if inbound else octets,
        "bytes_in": octets if inbound else None,
        "packets_out": None if inbound else packets,
        "packets_in": packets if inbound else None,
        "observer": "alibaba-vpc-flow",
        "host_hint": fields.text(record.get("vm-id")) or fields.text(record.get("eni-id")),
        "ts_note": "; ".join(notes) or None,
    }
