"""Alibaba Cloud Firewall traffic logs exported from Log Service (SLS): JSON lines or CSV.

Fields per the Cloud Firewall "Log field descriptions" page (see ../shared/formats, section 1a).
Every value may arrive as a string. ``start_time``/``end_time`` are the session's Unix seconds
(zone-free); when ``start_time`` is missing, ``__time__`` (when SLS stored the record) stands in
and the row's note says so. ``src_private_ip`` is the sender's own address behind the EIP/NAT.
A JSON line giving a key the loader reads twice (``"rule_result": "drop", "rule_result": "pass"``)
loads with the last value, as JSON parsers do, and its note says so (pyarrow refuses such a line,
so it always reaches the per-line reader, which checks it).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..same_events import add_note, duplicate_key_note
from ..schema import NETWORK_EVENTS
from ..sources import Source
from ..timeparse import TimeParseError, parse_time
from . import fields
from .base import FileLoad, LoadOptions, LoadResult
from .columnar import (
    IPV4,
    LOWER_NAME,
    NULL_TEXT,
    JsonLines,
    blank,
    constant,
    epoch_seconds,
    ip,
    ip_or_bad,
    mapped,
    plain_int,
    read_json_lines,
    table_of,
    text,
)
from .records import csv_records, first_line, json_line_record

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
    """Read one CFW export into ``network_events`` rows.

    JSON lines are read column-wise (``columnar.read_json_lines``); a line pyarrow refuses, or a
    row a vectorised check does not vouch for, goes through the per-line converter, so rows,
    rejects and notes are the same either way. CSV exports are read row by row.
    """
    load = FileLoad(source, options, name, kind, NETWORK_EVENTS)
    head = source.head(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith((b"{", b"[")):
        read_json_lines(load, JSON_LINES, fast=options.epoch_unit in ("auto", "s"))
    else:
        for line, record, text in csv_records(source, load.stats, load.sink):
            _record(line, record, text, load)
    return load.result()


def _line(line: int, raw: bytes, load: FileLoad) -> None:
    """One JSON line through the per-line reader (where every line holding a key twice comes:
    pyarrow refuses them), a key given twice among those read noted on the row."""
    found = json_line_record(line, raw, load)
    if found is not None:
        _record(line, found[0], found[1], load)


def _record(line: int, record: dict[str, Any], raw: str, load: FileLoad) -> None:
    """One parsed record: converted and emitted, or rejected with its reason; a JSON line (not
    a CSV row) giving a key read twice is noted."""
    try:
        row = _convert(record, load.options)
    except fields.RowError as exc:
        load.reject(line, str(exc), raw)
        return
    if raw.startswith("{"):
        add_note(row, duplicate_key_note(raw, record, _READ))
    load.emit(row, line)


# --- the column-wise path -----------------------------------------------------------------------

_TEXT_FIELDS = (
    *("start_time", "end_time", "__time__", "src_ip", "src_private_ip", "dst_ip", "src_port"),
    *("dst_port", "ip_protocol", "proto", "direction", "rule_result", "acl_rule_id", "log_type"),
    *("ips_rule_name_en", "ips_rule_name", "attack_type_name_en", "attack_type_name", "domain"),
    *("app_name", "out_packet_bytes", "in_packet_bytes", "out_packet_count", "in_packet_count"),
    *("cloud_instance_id", "src_instance_id"),
)
_READ = frozenset(_TEXT_FIELDS)
"""Every key ``_convert`` reads (a key given twice among them changes the row: noted)."""
_CHECKED_FIELDS = (
    *("start_time", "end_time", "src_ip", "src_private_ip", "dst_ip", "src_port", "dst_port"),
    *("out_packet_bytes", "in_packet_bytes", "out_packet_count", "in_packet_count", "rule_result"),
)
_COUNTERS = ("out_packet_bytes", "in_packet_bytes", "out_packet_count", "in_packet_count")


def _check(table: pa.Table, ok: np.ndarray) -> pa.Array:
    """Clear ``ok`` for rows the per-line reader must read (or reject); the normalised verdict."""
    col = {f: table.column(f).combine_chunks() for f in _CHECKED_FIELDS}
    start = epoch_seconds(col["start_time"], ok)  # missing: __time__ stands in, with a note
    end = epoch_seconds(col["end_time"], ok, blank_ok=True)
    before = pc.fill_null(pc.less(end, start), False)  # "end before start": a note
    ok &= ~np.asarray(before.to_numpy(zero_copy_only=False), dtype=bool)
    observed = mapped(col["src_ip"], ip_or_bad, ok, same=IPV4)
    private = mapped(col["src_private_ip"], ip_or_bad, ok, same=IPV4)
    src = pc.coalesce(private, observed)  # neither: a reject
    dst = mapped(col["dst_ip"], ip_or_bad, ok, same=IPV4)
    ok &= np.asarray(pc.and_(pc.is_valid(src), pc.is_valid(dst)).to_numpy(zero_copy_only=False))
    for key in ("src_port", "dst_port"):
        plain_int(col[key], ok, 5, 65535)
    for key in _COUNTERS:
        plain_int(col[key], ok, 18)
    return mapped(col["rule_result"], _action, fill=True)


def _action(value: str | None) -> str:
    return ACTIONS.get((fields.text(value) or "").lower(), "unknown")


def _normalise(table: pa.Table, lines: np.ndarray, source: Source) -> pa.Table:
    """Checked rows parsed with every field as ``network_events`` rows (``_convert``'s values)."""
    n = table.num_rows
    col = {f: table.column(f).combine_chunks() for f in _TEXT_FIELDS}
    end = pc.if_else(blank(col["end_time"]), NULL_TEXT, col["end_time"])
    observed = mapped(col["src_ip"], ip, same=IPV4)
    private = mapped(col["src_private_ip"], ip, same=IPV4)
    protocol = pc.if_else(
        pc.fill_null(pc.equal(col["ip_protocol"], ""), True), col["proto"], col["ip_protocol"]
    )
    action_raw = text(col["rule_result"])
    log_type = text(col["log_type"])
    values: dict[str, Any] = {
        "ts": pc.multiply(pc.cast(col["start_time"], pa.int64()), 1_000_000_000),
        "ts_end": pc.multiply(pc.cast(end, pa.int64()), 1_000_000_000),
        "src_ip": pc.coalesce(private, observed),
        "src_port": plain_int(col["src_port"], None, 5),
        "src_nat_ip": pc.if_else(
            pc.fill_null(pc.not_equal(observed, private), False), observed, NULL_TEXT
        ),
        "dst_ip": mapped(col["dst_ip"], ip, same=IPV4),
        "dst_port": plain_int(col["dst_port"], None, 5),
        "protocol": mapped(protocol, fields.protocol),
        "direction": mapped(
            col["direction"],
            lambda v: DIRECTIONS.get((fields.text(v) or "").lower(), "unknown"),
            fill=True,
        ),
        "action": mapped(
            action_raw, lambda v: ACTIONS.get((v or "").lower(), "unknown"), fill=True
        ),
        "action_raw": action_raw,
        "rule": mapped(
            col["acl_rule_id"], lambda v: None if fields.text(v) == NO_ACL else fields.text(v)
        ),
        "signature": pc.coalesce(text(col["ips_rule_name_en"]), text(col["ips_rule_name"])),
        "category": pc.coalesce(text(col["attack_type_name_en"]), text(col["attack_type_name"])),
        "dst_domain": mapped(
            col["domain"], lambda v: (fields.text(v) or "").lower() or None, same=LOWER_NAME
        ),
        "app": text(col["app_name"]),
        "bytes_out": plain_int(col["out_packet_bytes"], None, 18),
        "bytes_in": plain_int(col["in_packet_bytes"], None, 18),
        "packets_out": plain_int(col["out_packet_count"], None, 18),
        "packets_in": plain_int(col["in_packet_count"], None, 18),
        "observer": mapped(
            log_type, lambda v: f"alibaba-cfw/{v}" if v else "alibaba-cfw", fill=True
        ),
        "host_hint": pc.coalesce(text(col["cloud_instance_id"]), text(col["src_instance_id"])),
        "source_format": constant(name, n),
        "source_path": constant(source.display, n),
        "source_line": pa.array(lines, pa.int64()),
    }
    return table_of(values, n)


JSON_LINES = JsonLines(
    check_schema=pa.schema([(f, pa.string()) for f in _CHECKED_FIELDS]),
    schema=pa.schema([(f, pa.string()) for f in _TEXT_FIELDS]),
    check=_check,
    normalise=_normalise,
    per_line=_line,
)
"""SLS exports every value as a string; a file that writes numbers instead fails the schemas and
is read line by line. The check fields (half of them) parse about three times faster than all."""


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
