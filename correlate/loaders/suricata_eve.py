"""Suricata EVE JSON (``eve.json``): flow, netflow, alert and drop events as network events.

Sources checked:

- OISF/suricata ``doc/userguide/output/eve/eve-json-format.rst`` (docs.suricata.io 6.0 to
  8.0): the common envelope ``timestamp``, ``flow_id`` ("correlates ... all logs of a
  flow"), ``in_iface``, ``event_type``, ``src_ip``/``src_port``/``dest_ip``/``dest_port``,
  ``proto``, ``app_proto``; alert ``action`` "allowed" or "blocked" ("allowed unless a rule used
  the drop action and Suricata is in IPS mode, or when the rule used the reject action"),
  ``signature_id``, ``signature``, ``category``; flow ``pkts_toserver``/``pkts_toclient``,
  ``bytes_toserver``/``bytes_toclient``, ``start``, ``end`` ("last seen packet"); DNS
  ``rrname`` (v1/v2 top level, v3 ``queries[]``), TLS ``sni``, HTTP ``hostname``.
- OISF/suricata ``src/output-json-alert.c``: alerts carry ``direction`` ``to_server`` |
  ``to_client`` (the packet's side of the flow) and, with flow metadata, ``flow.src_ip``/
  ``flow.dest_ip`` oriented as the flow's initiator; ``verdict.action`` (Suricata 7+, PR #8318)
  is the engine's final verdict on the packet: ``drop`` | ``accept`` | ``pass`` | ``alert``.
- OISF/suricata flow logger: ``flow.action`` is ``drop`` or ``pass`` when the whole flow was.
- Real files: crowdsecurity/hub ``.tests/suricata-*`` EVE logs (tests/data/suricata_eve).

Rows (``network_events``), one per event:

- ``alert``: action ``alerted`` for ``alert.action`` allowed, ``denied`` for blocked or when
  ``verdict.action`` is drop; action_raw the vendor value (``allowed (verdict drop)`` when the
  two differ); rule = ``signature_id``, signature, category; ts = ``timestamp`` (the packet).
  src/dst are oriented as the flow's initiator -> responder: from ``flow.src_ip``/``dest_ip``
  when logged, else swapped when ``direction`` is ``to_client``.
- ``drop`` (IPS mode): action ``denied``, action_raw ``drop`` (with ``drop.reason``).
- ``flow``: ts = ``flow.start``, ts_end = ``flow.end``; action ``denied`` when ``flow.action``
  is drop, else ``allowed`` (Suricata saw the traffic pass); counters toserver -> out,
  toclient -> in.
- ``netflow`` (one direction of a flow): ts/ts_end from ``netflow.start``/``end``, ``pkts``/
  ``bytes`` -> out; action ``allowed``.
- ``dns``, ``tls``, ``http``, ``quic``, ``http2``: no row; their name (first one seen per
  ``flow_id``: DNS query, TLS SNI, HTTP hostname) fills ``dst_domain`` of the rows of the same
  flow in this file; counted as skipped ("<type> event used for enrichment"). Alerts carrying
  app-layer metadata name their own domain the same way.
- Any other event type (stats, anomaly, fileinfo, ...) is skipped with its type.

Every row: direction ``unknown`` (EVE has no network-boundary field; to_server/to_client are
relative to the flow), app = ``app_proto`` (``failed`` dropped), host_hint = ``in_iface``,
observer ``suricata`` (``suricata/<host>`` when ``sensor-name`` is set), flow_key
``suricata:<flow_id>``. Timestamps carry an offset (``+0000``, ``-0800``); one without is read in
``--tz suricata_eve=ZONE`` (default UTC) and noted. No ``--option`` keys. AWS Network Firewall
logs (EVE wrapped in ``{"firewall_name", "event"}``) are not this format.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pyarrow as pa

from ..schema import NETWORK_EVENTS
from ..sources import Source
from ..timeparse import TimeParseError, parse_iso
from . import fields
from .base import Batcher, LoadOptions, LoadResult, LoadStats, RejectSink
from .records import first_line, json_line_records

name = "suricata_eve"
kind = "network"
description = "Suricata EVE JSON lines (alert, drop, flow, netflow; dns/tls/http name flows)"

EVENT_TYPES = frozenset(
    {
        "alert",
        "anomaly",
        "dcerpc",
        "dhcp",
        "dnp3",
        "dns",
        "drop",
        "fileinfo",
        "flow",
        "ftp",
        "ftp_data",
        "http",
        "http2",
        "ike",
        "krb5",
        "mqtt",
        "netflow",
        "nfs",
        "quic",
        "rdp",
        "rfb",
        "sip",
        "smb",
        "smtp",
        "snmp",
        "ssh",
        "stats",
        "tftp",
        "tls",
    }
)
ENRICHING = frozenset({"dns", "tls", "http", "http2", "quic"})
ALERT_ACTIONS = {"allowed": "alerted", "blocked": "denied"}


def sniff(head: bytes, filename: str) -> float:
    """Score: the first line is an EVE event (``timestamp`` and a known top-level ``event_type``)."""
    first = first_line(head)
    if not first.startswith(b"{") or b'"event_type"' not in first:
        return 0.0
    try:
        record = json.loads(first)
    except (ValueError, RecursionError):
        return 0.0
    if not isinstance(record, dict) or "timestamp" not in record:
        return 0.0
    event_type = record.get("event_type")
    if event_type not in EVENT_TYPES:
        return 0.0
    if "flow_id" in record or "src_ip" in record or event_type == "stats":
        return 0.95
    return 0.6


def read(source: Source, options: LoadOptions) -> LoadResult:
    """Read EVE lines into ``network_events`` rows, naming flows from their dns/tls/http events."""
    stats = LoadStats(path=source.display, format=name, kind=kind, unit="events")
    sink = RejectSink(source, stats, options.strict)
    batch = Batcher(NETWORK_EVENTS)
    domains: dict[str, str] = {}
    for line, record, raw in json_line_records(source, stats, sink):
        stats.read += 1
        event_type = record.get("event_type")
        if fields.is_blank(event_type):
            sink.reject(line, "no event_type", raw)
            continue
        if not isinstance(event_type, str):
            sink.reject(line, f"event_type is not text: {event_type!r}", raw)
            continue
        flow_key = _flow_key(record.get("flow_id"))
        domain = _app_layer_domain(record)
        if event_type in ENRICHING:
            if flow_key and domain:
                domains.setdefault(flow_key, domain)
            stats.skipped[f"{event_type} event used for enrichment"] += 1
            continue
        if event_type not in ("alert", "drop", "flow", "netflow"):
            stats.skipped[f"{event_type} event (not traffic)"] += 1
            continue
        try:
            row = _convert(event_type, record, options)
        except fields.RowError as exc:
            sink.reject(line, f"{event_type}: {exc}", raw)
            continue
        row["flow_key"] = flow_key
        row["dst_domain"] = domain
        if flow_key and domain:
            domains.setdefault(flow_key, domain)
        row["source_format"] = name
        row["source_path"] = source.display
        row["source_line"] = line
        batch.add(row)
        stats.loaded += 1
        if row["ts_note"]:
            stats.notes[row["ts_note"]] += 1
    table = _fill_domains(batch.table(), domains)
    return LoadResult(kind=kind, table=table, stats=stats, rejects=sink.rejects)


def _address(value: Any, label: str) -> str:
    """A required address in canonical form."""
    result = fields.ip(value, label, required=True)
    assert result is not None
    return result


def _flow_key(flow_id: Any) -> str | None:
    if isinstance(flow_id, bool) or flow_id is None:
        return None
    if isinstance(flow_id, int) or (isinstance(flow_id, str) and flow_id.strip().isdigit()):
        return f"suricata:{int(flow_id)}"
    return None


def _domain(value: Any) -> str | None:
    """A host name as stored: lower case, no trailing dot; None for blanks and IP literals."""
    if not isinstance(value, str):
        return None
    text = value.strip().rstrip(".").lower()
    if not text:
        return None
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return text
    return None


def _app_layer_domain(record: dict[str, Any]) -> str | None:
    """The name an event's app-layer object gives: TLS SNI, HTTP hostname, DNS query name."""
    for key, attr in (("tls", "sni"), ("quic", "sni"), ("http", "hostname")):
        obj = record.get(key)
        if isinstance(obj, dict):
            found = _domain(obj.get(attr))
            if found:
                return found
    dns = record.get("dns")
    if isinstance(dns, dict):
        found = _domain(dns.get("rrname"))
        if found:
            return found
        for key in ("queries", "answers"):  # v3 requests, then v2 "detailed" answers
            items = dns.get(key)
            for item in items if isinstance(items, list) else []:
                if isinstance(item, dict) and (found := _domain(item.get("rrname"))):
                    return found
    return None


def _time(value: Any, label: str, options: LoadOptions) -> tuple[int, str | None]:
    if fields.is_blank(value):
        raise fields.RowError(f"{label} is missing")
    if not isinstance(value, str):
        raise fields.RowError(f"{label} is not an ISO 8601 time: {value!r}")
    try:
        return parse_iso(value, default_tz=options.zone_for(name))
    except TimeParseError as exc:
        raise fields.RowError(f"{label}: {exc}") from None


def _obj(record: dict[str, Any], key: str) -> dict[str, Any]:
    value = record.get(key)
    return value if isinstance(value, dict) else {}


def _convert(event_type: str, record: dict[str, Any], options: LoadOptions) -> dict[str, Any]:
    """One alert/drop/flow/netflow event to a ``network_events`` row (without provenance)."""
    notes: list[str] = []
    flow = _obj(record, "flow")
    netflow = _obj(record, "netflow")
    src = _address(record.get("src_ip"), "src_ip")
    dst = _address(record.get("dest_ip"), "dest_ip")
    src_port = fields.port(record.get("src_port"), "src_port")
    dst_port = fields.port(record.get("dest_port"), "dest_port")
    ts_end = None
    action, action_raw = "allowed", None
    rule = signature = category = None
    bytes_out = bytes_in = packets_out = packets_in = None
    if event_type in ("flow", "netflow"):
        span = flow if event_type == "flow" else netflow
        if fields.is_blank(span.get("start")):
            ts, note = _time(record.get("timestamp"), "timestamp", options)
            notes.append(
                f"{event_type}.start missing: used the event timestamp (when it was logged)"
            )
        else:
            ts, note = _time(span.get("start"), f"{event_type}.start", options)
        if note:
            notes.append(note)
        if not fields.is_blank(span.get("end")):
            ts_end, _ = _time(span.get("end"), f"{event_type}.end", options)
            if ts_end < ts:
                notes.append(f"{event_type}.end before {event_type}.start: end ignored")
                ts_end = None
        if event_type == "flow":
            action_raw = fields.text(flow.get("action"))
            if (action_raw or "").lower() == "drop":
                action = "denied"
            bytes_out = fields.counter(flow.get("bytes_toserver"), "flow.bytes_toserver")
            bytes_in = fields.counter(flow.get("bytes_toclient"), "flow.bytes_toclient")
            packets_out = fields.counter(flow.get("pkts_toserver"), "flow.pkts_toserver")
            packets_in = fields.counter(flow.get("pkts_toclient"), "flow.pkts_toclient")
        else:
            bytes_out = fields.counter(netflow.get("bytes"), "netflow.bytes")
            packets_out = fields.counter(netflow.get("pkts"), "netflow.pkts")
    else:
        ts, note = _time(record.get("timestamp"), "timestamp", options)
        if note:
            notes.append(note)
        alert = _obj(record, "alert")
        if event_type == "alert" and not alert:
            raise fields.RowError("no alert object")
        verdict = fields.text(_obj(record, "verdict").get("action"))
        if event_type == "alert":
            action_raw = fields.text(alert.get("action"))
            action = ALERT_ACTIONS.get((action_raw or "").lower(), "unknown")
            if (verdict or "").lower() == "drop":
                action = "denied"
                if (action_raw or "").lower() != "blocked":
                    action_raw = f"{action_raw or 'no action'} (verdict drop)"
        else:
            reason = fields.text(_obj(record, "drop").get("reason"))
            action, action_raw = "denied", f"drop ({reason})" if reason else "drop"
        if alert:
            rule = fields.text(alert.get("signature_id"))
            signature = fields.text(alert.get("signature"))
            category = fields.text(alert.get("category"))
        if flow:
            bytes_out = fields.counter(flow.get("bytes_toserver"), "flow.bytes_toserver")
            bytes_in = fields.counter(flow.get("bytes_toclient"), "flow.bytes_toclient")
            packets_out = fields.counter(flow.get("pkts_toserver"), "flow.pkts_toserver")
            packets_in = fields.counter(flow.get("pkts_toclient"), "flow.pkts_toclient")
        if not fields.is_blank(flow.get("src_ip")) and not fields.is_blank(flow.get("dest_ip")):
            # The alerting packet may be the responder's: keep the flow's initiator as the source.
            flow_src = fields.ip(flow.get("src_ip"), "flow.src_ip", required=True)
            flow_dst = fields.ip(flow.get("dest_ip"), "flow.dest_ip", required=True)
            if (flow_src, flow_dst) == (dst, src):
                src, dst, src_port, dst_port = dst, src, dst_port, src_port
        elif record.get("direction") == "to_client":
            src, dst, src_port, dst_port = dst, src, dst_port, src_port
    app = fields.text(record.get("app_proto"))
    sensor = fields.text(record.get("host"))
    return {
        "ts": ts,
        "ts_end": ts_end,
        "src_ip": src,
        "src_port": src_port,
        "src_nat_ip": None,
        "dst_ip": dst,
        "dst_port": dst_port,
        "protocol": fields.protocol(record.get("proto")),
        "direction": "unknown",
        "action": action,
        "action_raw": action_raw,
        "rule": rule,
        "signature": signature,
        "category": category,
        "app": None if app in (None, "failed", "unknown") else app.lower(),
        "bytes_out": bytes_out,
        "bytes_in": bytes_in,
        "packets_out": packets_out,
        "packets_in": packets_in,
        "observer": f"suricata/{sensor}" if sensor else "suricata",
        "host_hint": fields.text(record.get("in_iface")),
        "ts_note": "; ".join(notes) or None,
    }


def _fill_domains(table: pa.Table, domains: dict[str, str]) -> pa.Table:
    """Give rows without a domain the name another event of the same flow carried."""
    if not domains or table.num_rows == 0:
        return table
    keys = table.column("flow_key").to_pylist()
    values = table.column("dst_domain").to_pylist()
    filled = [
        v if v is not None or k is None else domains.get(k)
        for v, k in zip(values, keys, strict=True)
    ]
    index = table.schema.get_field_index("dst_domain")
    return table.set_column(index, "dst_domain", pa.array(filled, pa.string()))
