"""Alibaba Cloud Firewall traffic logs exported from Log Service (SLS): JSON lines or CSV.

Fields per the Cloud Firewall "Log field descriptions" page (see ../shared/formats, section 1a).
Every value may arrive as a string. ``start_time``/``end_time`` are the session's Unix seconds
(zone-free); when ``start_time`` is missing, ``__time__`` (when SLS stored the record) stands in
and the row's note says so. ``src_private_ip`` is the sender's own address behind the EIP/NAT.
"""

from __future__ import annotations

import json
from typing import Any

from ..schema import NETWORK_EVENTS
from ..sources import Source
from ..timeparse import TimeParseError, parse_time
from . import fields
from .base import Batcher, LoadOptions, LoadResult, LoadStats, RejectSink
from .records import csv_records, first_line, json_line_records

name = "alibaba_cfw"
kind = "network"
description = "Alibaba Cloud Firewall traffic log (SLS export, JSON lines or CSV)"

ACTIONS = {
    "pass": "allowed",
    "alert": "alerted",
    "drop": "denied",
    "deny": "denied",
    "block": "denied",
}
DIRECTIONS = {"out": "outbound", "in": "inbound"}
NO_ACL = "00000000-0000-0000-0000-000000000000"
_MARKERS = (b"rule_result", b"start_time", b"src_ip", b"dst_ip")
_STRONG = (
    b"cloudfirewall",
    b"internet_log",
    b"vpc_firewall_log",
    b"nat_firewall_log",
    b"src_private_ip",
)


def sniff(head: bytes, filename: str) -> float:
    """Score: the first record (a JSON line or a CSV header) carries the CFW field names."""
    first = first_line(head)
    if first.startswith(b"{"):
        try:
            keys = set(json.loads(first))
        except (ValueError, TypeError, RecursionError):
            return 0.0
    else:
        keys = {k.strip().strip('"') for k in first.decode("utf-8", "replace").split(",")}
    if not {"src_ip", "dst_ip", "rule_result"} <= keys or not keys & {"start_time", "__time__"}:
        return 0.0
    strong = keys & {"src_private_ip", "log_type", "__topic__", "acl_rule_id"}
    return 0.95 if strong else 0.7


def read(source: Source, options: LoadOptions) -> LoadResult:
    """Read one CFW export into ``network_events`` rows."""
    stats = LoadStats(path=source.display, format=name, kind=kind)
    sink = RejectSink(source, stats, options.strict)
    batch = Batcher(NETWORK_EVENTS)
    head = source.head(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith((b"{", b"[")):
        records = json_line_records(source, stats, sink)
    else:
        records = csv_records(source, stats, sink)
    for line, record, raw in records:
        stats.read += 1
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


def _convert(record: dict[str, Any], options: LoadOptions) -> dict[str, Any]:
    """One CFW record to a ``network_events`` row (without provenance)."""
    zone = options.zone_for(name)
    notes: list[str] = []
    start: Any = record.get("start_time")
    if fields.is_blank(start):
        start = record.get("__time__")
        if fields.is_blank(start):
            raise fields.RowError("no start_time and no __time__")
        notes.append("start_time missing: used __time__ (when SLS stored the record)")
    try:
        ts, note = parse_time(
            start, default_tz=zone, epoch_unit=options.epoch_unit, expected_unit="s"
        )
    except TimeParseError as exc:
        raise fields.RowError(f"start_time: {exc}") from None
    if note:
        notes.append(note)
    ts_end = None
    if not fields.is_blank(record.get("end_time")):
        try:
            ts_end, note = parse_time(
                record["end_time"],
                default_tz=zone,
                epoch_unit=options.epoch_unit,
                expected_unit="s",
            )
        except TimeParseError as exc:
            raise fields.RowError(f"end_time: {exc}") from None
        if ts_end < ts:
            notes.append("end_time before start_time: end ignored")
            ts_end = None
    observed_src = fields.ip(record.get("src_ip"), "src_ip")
    private_src = fields.ip(record.get("src_private_ip"), "src_private_ip")
    src = private_src or observed_src
    if src is None:
        raise fields.RowError("src_ip is missing")
    dst = fields.ip(record.get("dst_ip"), "dst_ip", required=True)
    direction_raw = (fields.text(record.get("direction")) or "").lower()
    action_raw = fields.text(record.get("rule_result"))
    rule = fields.text(record.get("acl_rule_id"))
    log_type = fields.text(record.get("log_type"))
    return {
        "ts": ts,
        "ts_end": ts_end,
        "src_ip": src,
        "src_port": fields.port(record.get("src_port"), "src_port"),
        "src_nat_ip": observed_src if private_src and observed_src != private_src else None,
        "dst_ip": dst,
        "dst_port": fields.port(record.get("dst_port"), "dst_port"),
        "protocol": fields.protocol(record.get("ip_protocol") or record.get("proto")),
        "direction": DIRECTIONS.get(direction_raw, "unknown"),
        "action": ACTIONS.get((action_raw or "").lower(), "unknown"),
        "action_raw": action_raw,
        "rule": None if rule == NO_ACL else rule,
        "signature": fields.text(record.get("ips_rule_name_en"))
        or fields.text(record.get("ips_rule_name")),
        "category": fields.text(record.get("attack_type_name_en"))
        or fields.text(record.get("attack_type_name")),
        "dst_domain": (fields.text(record.get("domain")) or "").lower() or None,
        "app": fields.text(record.get("app_name")),
        # Counters as the log names them (out = sent by the cloud-side host).
        "bytes_out": fields.counter(record.get("out_packet_bytes"), "out_packet_bytes"),
        "bytes_in": fields.counter(record.get("in_packet_bytes"), "in_packet_bytes"),
        "packets_out": fields.counter(record.get("out_packet_count"), "out_packet_count"),
        "packets_in": fields.counter(record.get("in_packet_count"), "in_packet_count"),
        "observer": f"alibaba-cfw/{log_type}" if log_type else "alibaba-cfw",
        "host_hint": fields.text(record.get("cloud_instance_id"))
        or fields.text(record.get("src_instance_id")),
        "ts_note": "; ".join(notes) or None,
    }
