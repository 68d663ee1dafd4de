"""AWS Network Firewall alert, flow and TLS logs: JSON lines wrapping Suricata EVE records.

Mapping: ``ts`` = ``event.timestamp`` (else ``event_timestamp``, noted), except ``netflow``/``flow``
records, whose ``ts``/``ts_end`` are the flow's ``start``/``end``. ``action``: alert allowed ->
alerted, blocked/drop/reject -> denied; netflow/flow records -> allowed; TLS ``tls_error`` ->
denied. ``rule`` = ``alert.signature_id``; ``dst_domain`` = SNI or HTTP host, lower-case, also
lent to the other records of the same flow; ``observer`` = ``aws-nfw/<firewall_name>``.
``direction`` is unknown (the policy decides by address). A ``netflow`` record counts one
direction (``*_out``); EVE ``flow`` objects give toserver -> out, toclient -> in. Other event types
are protocol metadata, skipped. Naive times are UTC (``--tz aws_nfw=ZONE``), noted.

Reading: column-wise through ``suricata_eve.read_columns``, every note and reject through the
per-line reader (property-tested equal). No ``--option`` keys. Field reference and sources:
``tests/data/aws_nfw/README.md``.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..schema import NETWORK_EVENTS
from ..sources import Source
from ..timeparse import TimeParseError, parse_time
from . import fields
from .base import FileLoad, LoadOptions, LoadResult
from .columnar import NULL_INT, NULL_TEXT, blank, constant, mapped, table_of, text
from .records import first_line, json_line_record
from .suricata_eve import (
    Checked,
    Columns,
    FirstByLine,
    Leaves,
    Values,
    addresses,
    in_range,
    iso_ns,
    read_columns,
)

name = "aws_nfw"
kind = "network"
description = "AWS Network Firewall alert/flow/TLS logs (JSON lines with a Suricata EVE event)"

ALERT_ACTIONS = {
    "allowed": "alerted",
    "alert": "alerted",
    "blocked": "denied",
    "drop": "denied",
    "dropped": "denied",
    "reject": "denied",
    "rejected": "denied",
}
REVOCATION_ACTIONS = {"pass": "allowed", "drop": "denied", "reject": "denied"}
FLOW_TYPES = ("netflow", "flow")
FILLED = "dst_domain taken from another record of the same flow"


def sniff(head: bytes, filename: str) -> float:
    """Score: the first JSON line has Network Firewall's outer keys around an ``event`` object."""
    first = first_line(head)
    if not first.startswith(b"{"):
        return 0.0
    try:
        record = json.loads(first)
    except (ValueError, RecursionError):
        # A first line longer than the head: judge by its opening bytes.
        return 0.6 if b'"firewall_name"' in first and b'"event"' in first else 0.0
    if not isinstance(record, dict) or "firewall_name" not in record:
        return 0.0
    if isinstance(record.get("event"), dict) and (
        "event_timestamp" in record or "availability_zone" in record
    ):
        return 0.95
    return 0.3  # a firewall_name alone: loadable with --format, never auto-detected


def read(source: Source, options: LoadOptions) -> LoadResult:
    """Read Network Firewall log lines into ``network_events`` rows."""
    load = FileLoad(source, options, name, kind, NETWORK_EVENTS)
    reader = Reader(load)
    read_columns(load, reader.columns, fast=not _tls_log(source))
    return reader.result()


def _tls_log(source: Source) -> bool:
    """Whether the file's first record is a TLS-log record (an event without ``event_type``)."""
    try:
        record = json.loads(first_line(source.head()))
    except (ValueError, RecursionError):
        return False
    event = record.get("event") if isinstance(record, dict) else None
    return isinstance(event, dict) and "event_type" not in event


class Reader:
    """One file's read: the per-line reader, the column-wise check, and the flows' domains."""

    def __init__(self, load: FileLoad) -> None:
        self.load = load
        self.domains = FirstByLine()
        self.columns = Columns(
            schema=SCHEMA, check=self._check, normalise=_normalise, per_line=self.line
        )

    def line(self, line: int, raw: bytes, load: FileLoad) -> None:
        """One line through the per-line reader."""
        found = json_line_record(line, raw, load)
        if found is not None:
            self.record(line, found[0], found[1], load)

    def record(self, line: int, record: dict[str, Any], raw: str, load: FileLoad) -> None:
        """One parsed record: a row, or a reject or skip with the reason (its domain named)."""
        event = record.get("event")
        if not isinstance(event, dict):
            load.reject(line, "no event object (not a Network Firewall log record)", raw)
            return
        firewall = fields.text(record.get("firewall_name"))
        flow_id = fields.text(event.get("flow_id"))
        flow_key = f"{name}:{firewall or ''}:{flow_id}" if flow_id else None
        domain = _domain(event)
        if flow_key and domain:
            self.domains.offer(flow_key, line, domain)
        event_type = fields.text(event.get("event_type"))
        if event_type is None and not ("tls_error" in event or "revocation_check" in event):
            load.reject(line, "event has no event_type (and is not a TLS log record)", raw)
            return
        if event_type is not None and event_type not in (*FLOW_TYPES, "alert"):
            load.skip(_skip_reason(event_type))
            return
        try:
            row = _convert(record, event, event_type, load.options)
        except fields.RowError as exc:
            load.reject(line, str(exc), raw)
            return
        row["dst_domain"] = domain
        row["flow_key"] = flow_key
        row["observer"] = _observer(firewall)
        load.emit(row, line)

    def result(self) -> LoadResult:
        """The load's result, rows without a domain given the first one their flow named."""
        result = self.load.result()
        result.table, filled = self.domains.fill(result.table)
        if filled:
            result.stats.notes[FILLED] += filled
        return result

    def _check(self, table: pa.Table, ok: np.ndarray, lines: np.ndarray) -> Checked:
        """Clear ``ok`` for records the per-line reader must read; the verdicts, the skip reasons,
        the values ``_normalise`` reads; and the flows' domains (offered in line order)."""
        col = Leaves(table)
        present = _np(pc.is_valid(col["event"]))
        keys, domains = _flow_keys(col), _domains(col)
        self.domains.offer_many(keys, lines, domains, present)
        types = text(col["event.event_type"])
        alert = _np(pc.equal(types, "alert"))
        netflow = _np(pc.equal(types, "netflow"))
        flow = _np(pc.equal(types, "flow"))
        loads = alert | netflow | flow
        skip = mapped(pc.if_else(pa.array(loads), NULL_TEXT, types), _skip_reason)
        ok &= present & (loads | _np(pc.is_valid(skip)))  # no event or no type: per line
        good = np.ones(table.num_rows, dtype=bool)
        ts, end, has_end = _times(col, alert, netflow, flow, good)
        src = addresses(col["event.src_ip"], good)
        dst = addresses(col["event.dest_ip"], good)
        good &= _np(pc.and_(pc.is_valid(src), pc.is_valid(dst)))
        for key in ("src_port", "dest_port"):
            good &= in_range(col[f"event.{key}"], 0, 65535)
        for key in ("bytes", "pkts"):
            good &= in_range(col[f"event.netflow.{key}"], 0) | ~netflow
        for key in _FLOW_COUNTERS:
            good &= in_range(col[f"event.flow.{key}"], 0) | netflow
        ok &= good | ~loads
        alert_raw = text(col["event.alert.action"])
        verdict = pc.if_else(pa.array(alert), _alert_actions(alert_raw), "allowed")
        values = {
            **{k: col[f"event.{k}"] for k in _PASSED},
            **{"firewall_name": col["firewall_name"], "types": types, "is_alert": alert},
            **{"is_netflow": netflow, "ts": ts, "ts_end": end, "has_end": has_end},
            **{"src": src, "dst": dst, "action": verdict, "alert_raw": alert_raw},
            **{"flow_key": keys, "dst_domain": domains},
        }
        return Checked(verdict, skip, values)


def _skip_reason(event_type: str) -> str:
    return f"event_type {event_type[:40]} (protocol metadata, not a flow or alert)"


def _observer(firewall: str | None) -> str:
    return f"aws-nfw/{firewall}" if firewall else "aws-nfw"


# --- the per-line converter ----------------------------------------------------------------------


def _domain(event: dict[str, Any]) -> str | None:
    """The destination name an event carries (SNI, HTTP Host, TLS-log SNI), not an IP address."""
    for parent, key in (("tls", "sni"), ("http", "hostname")):
        value = fields.text(_object(event.get(parent)).get(key))
        if value:
            break
    else:
        value = fields.text(event.get("sni"))
    return _host(value)


def _host(value: str | None) -> str | None:
    """A name as the domain of a row: lower case, no port or trailing dot, not an IP address."""
    if not value:
        return None
    host = value.lower().rstrip(".")
    if host.startswith("["):  # an IPv6 Host header, with or without a port
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:  # a Host header's port
        host = host.rsplit(":", 1)[0]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host or None
    return None


def _object(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one (a log may put anything anywhere)."""
    return value if isinstance(value, dict) else {}


def _time(value: Any, what: str, options: LoadOptions) -> tuple[int, str | None]:
    """An EVE ISO time or epoch seconds; naive times in the format's zone (UTC unless --tz)."""
    try:
        return parse_time(
            value,
            default_tz=options.zone_for(name),
            epoch_unit=options.epoch_unit,
            expected_unit="s",
        )
    except TimeParseError as exc:
        raise fields.RowError(f"{what}: {exc}") from None


def _convert(
    record: dict[str, Any], event: dict[str, Any], event_type: str | None, options: LoadOptions
) -> dict[str, Any]:
    """One Network Firewall record to a ``network_events`` row (without domain and provenance)."""
    notes: list[str] = []
    flow = _object(event.get(event_type)) if event_type in FLOW_TYPES else {}
    ts_end = None
    if not fields.is_blank(flow.get("start")):
        ts, note = _time(flow["start"], f"{event_type}.start", options)
        if not fields.is_blank(flow.get("end")):
            ts_end, _ = _time(flow["end"], f"{event_type}.end", options)
    elif not fields.is_blank(event.get("timestamp")):
        ts, note = _time(event["timestamp"], "event.timestamp", options)
        if event_type in FLOW_TYPES:
            notes.append(
                f"no {event_type}.start: used event.timestamp (when the record was written)"
            )
    elif not fields.is_blank(record.get("event_timestamp")):
        ts, note = _time(record["event_timestamp"], "event_timestamp", options)
        notes.append("no event.timestamp: used event_timestamp (when the log was written)")
    else:
        raise fields.RowError("no event.timestamp and no event_timestamp")
    if note:
        notes.append(note)
    if ts_end is not None and ts_end < ts:
        notes.append("end before start: end ignored")
        ts_end = None
    src = fields.ip(event.get("src_ip"), "src_ip", required=True)
    dst = fields.ip(event.get("dest_ip"), "dest_ip", required=True)
    alert = _object(event.get("alert"))
    if event_type == "alert":
        action_raw = fields.text(alert.get("action"))
        action = ALERT_ACTIONS.get((action_raw or "").lower(), "unknown")
    elif event_type in FLOW_TYPES:
        action_raw, action = event_type, "allowed"
    elif "tls_error" in event:
        action_raw, action = "tls_error", "denied"
    else:
        action_raw = fields.text(_object(event.get("revocation_check")).get("action"))
        action = REVOCATION_ACTIONS.get((action_raw or "").lower(), "unknown")
    counts = _counters(event, event_type, flow)
    return {
        "ts": ts,
        "ts_end": ts_end,
        "src_ip": src,
        "src_port": fields.port(event.get("src_port"), "src_port"),
        "dst_ip": dst,
        "dst_port": fields.port(event.get("dest_port"), "dest_port"),
        "protocol": fields.protocol(event.get("proto")),
        "direction": "unknown",
        "action": action,
        "action_raw": action_raw,
        "rule": fields.text(alert.get("signature_id")),
        "signature": fields.text(alert.get("signature"))
        or fields.text(_object(event.get("tls_error")).get("error_message")),
        "category": fields.text(alert.get("category")),
        "app": fields.text(event.get("app_proto")),
        **counts,
        "ts_note": "; ".join(notes) or None,
    }


def _counters(
    event: dict[str, Any], event_type: str | None, flow: dict[str, Any]
) -> dict[str, Any]:
    """Byte/packet counters: a netflow record's one direction, or an EVE flow's two."""
    if event_type == "netflow":
        return {
            "bytes_out": fields.counter(flow.get("bytes"), "netflow.bytes"),
            "packets_out": fields.counter(flow.get("pkts"), "netflow.pkts"),
        }
    both = _object(event.get("flow"))
    if not both:
        return {}
    return {
        "bytes_out": fields.counter(both.get("bytes_toserver"), "flow.bytes_toserver"),
        "bytes_in": fields.counter(both.get("bytes_toclient"), "flow.bytes_toclient"),
        "packets_out": fields.counter(both.get("pkts_toserver"), "flow.pkts_toserver"),
        "packets_in": fields.counter(both.get("pkts_toclient"), "flow.pkts_toclient"),
    }


# --- the column-wise path ------------------------------------------------------------------------

TEXT = pa.string()
INT = pa.int64()
_FLOW_COUNTERS = ("bytes_toserver", "bytes_toclient", "pkts_toserver", "pkts_toclient")


def _struct(*children: tuple[str, pa.DataType]) -> pa.DataType:
    return pa.struct(list(children))


_EVENT = _struct(
    *(("timestamp", TEXT), ("flow_id", INT), ("event_type", TEXT)),
    *(("src_ip", TEXT), ("src_port", INT), ("dest_ip", TEXT), ("dest_port", INT)),
    *(("proto", TEXT), ("app_proto", TEXT), ("sni", TEXT)),
    ("netflow", _struct(("start", TEXT), ("end", TEXT), ("bytes", INT), ("pkts", INT))),
    ("flow", _struct(("start", TEXT), ("end", TEXT), *((k, INT) for k in _FLOW_COUNTERS))),
    (
        "alert",
        _struct(
            *(("action", TEXT), ("signature_id", INT), ("signature", TEXT), ("category", TEXT))
        ),
    ),
    ("tls", _struct(("sni", TEXT))),
    ("http", _struct(("hostname", TEXT))),
    ("tls_error", _struct(("error_message", TEXT))),
)
SCHEMA = pa.schema([("firewall_name", TEXT), ("event", _EVENT)])
"""Every field the per-line reader reads of netflow, flow and alert records (``event_timestamp``
only stands in for a missing ``event.timestamp``, with a note: read line by line). Numbers are
JSON numbers in these records (ports, counters, ``flow_id``, ``signature_id``), the rest
strings; a line that does otherwise makes pyarrow refuse its piece (then read line by line)."""


def _np(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean column as a numpy mask (null is False)."""
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)


def _times(
    col: dict[str, pa.Array],
    alert: np.ndarray,
    netflow: np.ndarray,
    flow: np.ndarray,
    good: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's ``ts`` and ``ts_end`` (ns) as ``_convert`` reads them, and where it has an end;
    ``good`` cleared where that needs a note or is not a plain zoned ISO time."""
    n = len(good)
    ts = np.zeros(n, dtype=np.int64)
    end = np.zeros(n, dtype=np.int64)
    has_end = np.zeros(n, dtype=bool)
    for kind, rows in (("netflow", netflow), ("flow", flow)):
        if rows.any():
            began = iso_ns(col[f"event.{kind}.start"], rows)
            ended = iso_ns(col[f"event.{kind}.end"], rows)
            no_end = _np(blank(col[f"event.{kind}.end"]))
            fine = began.valid & (no_end | (ended.valid & (ended.ns >= began.ns)))
            good &= fine | ~rows
            ts = np.where(rows, began.ns, ts)
            end = np.where(rows, ended.ns, end)
            has_end |= rows & ~no_end
    if alert.any():
        stamp = iso_ns(col["event.timestamp"], alert)
        good &= stamp.valid | ~alert
        ts = np.where(alert, stamp.ns, ts)
    return ts, end, has_end


def _flow_keys(col: dict[str, pa.Array]) -> pa.Array:
    firewall = mapped(col["firewall_name"], lambda v: fields.text(v) or "", fill=True)
    flow_id = pc.cast(col["event.flow_id"], TEXT)
    return pc.binary_join_element_wise(f"{name}:", firewall, ":", flow_id, "")


def _domains(col: dict[str, pa.Array]) -> pa.Array:
    """``_domain`` of each event."""
    named = pc.coalesce(
        text(col["event.tls.sni"]), text(col["event.http.hostname"]), text(col["event.sni"])
    )
    return mapped(named, _host)


_PASSED = (
    *("src_port", "dest_port", "proto", "app_proto", "netflow.bytes", "netflow.pkts"),
    *("alert.signature_id", "alert.signature", "alert.category", "tls_error.error_message"),
    *(f"flow.{key}" for key in _FLOW_COUNTERS),
)
"""The event's columns ``_normalise`` reads as they were parsed."""


def _normalise(col: Values, lines: np.ndarray, source: Source) -> pa.Table:
    """Checked netflow, flow and alert records as ``network_events`` rows (``_convert``'s)."""
    n = len(lines)
    net = pa.array(col["is_netflow"])
    both = {k: pc.if_else(net, NULL_INT, col[f"flow.{k}"]) for k in _FLOW_COUNTERS}
    values: dict[str, Any] = {
        "ts": pa.array(col["ts"], INT),
        "ts_end": pa.array(col["ts_end"], INT, mask=~col["has_end"]),
        "src_ip": col["src"],
        "src_port": col["src_port"],
        "dst_ip": col["dst"],
        "dst_port": col["dest_port"],
        "protocol": mapped(col["proto"], fields.protocol),
        "direction": constant("unknown", n),
        "action": col["action"],
        "action_raw": pc.if_else(pa.array(col["is_alert"]), col["alert_raw"], col["types"]),
        "rule": text(pc.cast(col["alert.signature_id"], TEXT)),
        "signature": pc.coalesce(
            text(col["alert.signature"]), text(col["tls_error.error_message"])
        ),
        "category": text(col["alert.category"]),
        "dst_domain": col["dst_domain"],
        "app": text(col["app_proto"]),
        "bytes_out": pc.if_else(net, col["netflow.bytes"], both["bytes_toserver"]),
        "bytes_in": both["bytes_toclient"],
        "packets_out": pc.if_else(net, col["netflow.pkts"], both["pkts_toserver"]),
        "packets_in": both["pkts_toclient"],
        "observer": mapped(col["firewall_name"], lambda v: _observer(fields.text(v)), fill=True),
        "flow_key": col["flow_key"],
        "source_format": constant(name, n),
        "source_path": constant(source.display, n),
        "source_line": pa.array(lines, INT),
    }
    return table_of(values, n)


def _alert_actions(raw: pa.Array) -> pa.Array:
    return mapped(raw, lambda v: ALERT_ACTIONS.get((v or "").lower(), "unknown"), fill=True)
