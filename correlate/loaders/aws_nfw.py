"""AWS Network Firewall alert, flow and TLS logs: JSON lines wrapping Suricata EVE records.

Sources: "Contents of a AWS Network Firewall log" (docs.aws.amazon.com/network-firewall/latest/
developerguide/firewall-logging-contents.html): outer ``firewall_name``, ``availability_zone``,
``event_timestamp`` ("the time that the log was created, written in epoch seconds at UTC"; a
string in the samples, a number in the TLS-log example), ``aws_category``, and ``event`` = a
Suricata EVE record (flow logs use ``event_type`` ``netflow``, which is unidirectional; alerts use
``alert``); "Logging for TLS inspection" (same guide, tls-inspection-logging.html): TLS logs carry
``event.sni`` and ``event.tls_error`` (connection resets) or ``event.revocation_check`` and no
``event_type``. The sample records in the IBM QRadar / Juniper JSA "AWS Network Firewall sample
event messages" pages show ``event.timestamp`` as ISO 8601 with a ``+0000`` offset.

Mapping: ``ts`` = ``event.timestamp`` (else ``event_timestamp``, noted), except for ``netflow`` and
``flow`` records, whose ``ts``/``ts_end`` are the flow's own ``start``/``end`` (when the flow
began, which is what a tool call caused; ``event.timestamp`` is when the record was written).
``action``: alert ``allowed`` -> alerted, ``blocked`` (or drop/reject spellings) -> denied;
``netflow``/``flow`` records -> allowed (they are flow records: the traffic passed the stateless
and stateful engines far enough to be counted; a blocked flow also shows as an alert);
TLS ``tls_error`` -> denied (Network Firewall reset the connection), ``revocation_check`` by its
``action``. ``action_raw`` = the vendor value (``alert.action``, the event type, or
``tls_error``). ``rule`` = ``alert.signature_id``, ``signature``/``category`` = ``alert.*``;
``dst_domain`` = ``tls.sni`` or ``http.hostname`` (or the TLS log's ``sni``), lower-case, not when
it is an IP address; ``app`` = ``app_proto``; ``observer`` = ``aws-nfw/<firewall_name>``;
``flow_key`` = ``aws_nfw:<firewall_name>:<flow_id>``. A record without a domain gets one seen in
another record of the same flow in the same file (e.g. a netflow record from its TLS alert).
``direction`` is ``unknown``: Network Firewall does not say (the policy decides by address).
Counters: a ``netflow`` record counts one direction, sent by its ``src_ip``, so its
``bytes``/``pkts`` go to ``bytes_out``/``packets_out``; EVE ``flow`` objects (``flow`` records and
alerts that carry them) give ``*_toserver`` -> out and ``*_toclient`` -> in. Other event types
(``tls``, ``http``, ``dns``, ...) are protocol metadata: counted as skipped, their domain still
fills the flow's rows. Naive times are read as UTC (``--tz aws_nfw=ZONE`` overrides), noted.

No ``--option`` keys.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pyarrow as pa

from ..schema import NETWORK_EVENTS
from ..sources import Source
from ..timeparse import TimeParseError, parse_time
from . import fields
from .base import Batcher, LoadOptions, LoadResult, LoadStats, RejectSink
from .records import first_line, json_line_records

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
    stats = LoadStats(path=source.display, format=name, kind=kind)
    sink = RejectSink(source, stats, options.strict)
    batch = Batcher(NETWORK_EVENTS)
    domains: dict[str, str] = {}
    for line, record, raw in json_line_records(source, stats, sink):
        stats.read += 1
        event = record.get("event")
        if not isinstance(event, dict):
            sink.reject(line, "no event object (not a Network Firewall log record)", raw)
            continue
        firewall = fields.text(record.get("firewall_name"))
        flow_id = fields.text(event.get("flow_id"))
        flow_key = f"{name}:{firewall or ''}:{flow_id}" if flow_id else None
        domain = _domain(event)
        if flow_key and domain:
            domains.setdefault(flow_key, domain)
        event_type = fields.text(event.get("event_type"))
        if event_type is None and not ("tls_error" in event or "revocation_check" in event):
            sink.reject(line, "event has no event_type (and is not a TLS log record)", raw)
            continue
        if event_type is not None and event_type not in (*FLOW_TYPES, "alert"):
            stats.skipped[
                f"event_type {event_type[:40]} (protocol metadata, not a flow or alert)"
            ] += 1
            continue
        try:
            row = _convert(record, event, event_type, options)
        except fields.RowError as exc:
            sink.reject(line, str(exc), raw)
            continue
        row["dst_domain"] = domain
        row["flow_key"] = flow_key
        row["observer"] = f"aws-nfw/{firewall}" if firewall else "aws-nfw"
        row["source_format"] = name
        row["source_path"] = source.display
        row["source_line"] = line
        batch.add(row)
        stats.loaded += 1
        if row["ts_note"]:
            stats.notes[row["ts_note"]] += 1
    table = _fill_domains(batch.table(), domains, stats)
    return LoadResult(kind=kind, table=table, stats=stats, rejects=sink.rejects)


def _domain(event: dict[str, Any]) -> str | None:
    """The destination name an event carries (SNI, HTTP Host, TLS-log SNI), not an IP address."""
    for parent, key in (("tls", "sni"), ("http", "hostname")):
        value = fields.text(_object(event.get(parent)).get(key))
        if value:
            break
    else:
        value = fields.text(event.get("sni"))
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


def _fill_domains(table: pa.Table, domains: dict[str, str], stats: LoadStats) -> pa.Table:
    """Give rows without a domain the one another record of the same flow named."""
    if not domains or table.num_rows == 0:
        return table
    current = table.column("dst_domain").to_pylist()
    keys = table.column("flow_key").to_pylist()
    filled = 0
    for i, (domain, key) in enumerate(zip(current, keys, strict=True)):
        if domain is None and key in domains:
            current[i] = domains[key]
            filled += 1
    if not filled:
        return table
    stats.notes["dst_domain taken from another record of the same flow"] += filled
    index = table.schema.get_field_index("dst_domain")
    return table.set_column(index, "dst_domain", pa.array(current, pa.string()))


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
