"""Palo Alto Networks PAN-OS traffic (and threat) logs: syslog CSV, or a CSV export with a header.

Syslog form: fields in PAN-OS's fixed order, optionally behind a syslog header; export form: a
header row naming the columns (web UI or docs names, case-insensitive). Field positions:
``COMMON_POSITIONS``, ``TRAFFIC_POSITIONS``, ``THREAT_POSITIONS``.

Time: Generated/Start Time are the firewall's local time without offset: read at the High
Resolution Timestamp's offset when the record has one (noted), else in ``--tz panos_traffic=ZONE``
(UTC), noted. TRAFFIC ``ts`` = Start Time (Generated Time when missing or implausible, noted),
``ts_end`` = Generated Time; THREAT ``ts`` = Generated Time. Verdict: allow -> allowed;
deny/drop/reset-*/block-*/sinkhole... -> denied; THREAT alert/allow/continue... -> alerted;
else unknown (``action_raw`` = ``subtype/action``). Mapping: NAT Source IP -> ``src_nat_ip``;
sent/received -> ``*_out``/``*_in``; Rule Name -> rule; Device Name and vsys -> observer; pod,
container, VM or hostname -> ``host_hint``; Session ID -> ``flow_key``.

Ambiguity default (see ``OPTIONS``): zone ``untrust`` is the internet side (into it -> outbound,
out of it -> inbound, else unknown). Other log types are skipped. Field reference and sources:
``tests/data/panos_traffic/README.md``.
"""

from __future__ import annotations

import csv
import ipaddress
import re
from collections.abc import Iterator
from datetime import timedelta, timezone, tzinfo
from typing import Any

from ..schema import NETWORK_EVENTS
from ..sources import Source, decode_line
from ..timeparse import TimeParseError, parse_iso
from . import fields
from .base import FileLoad, LoadOptions, LoadResult
from .records import csv_records, first_line, marked_lines

name = "panos_traffic"
kind = "network"
description = "Palo Alto PAN-OS traffic/threat logs: syslog CSV or a CSV export with a header row"

OPTIONS = {
    "untrust_zones": "comma-separated zone names facing the internet (default: untrust)",
}
"""``--option panos_traffic.KEY=VALUE`` settings."""

COMMON_POSITIONS = {
    "receive_time": 1,
    "serial": 2,
    "type": 3,
    "subtype": 4,
    "time_generated": 6,
    "src": 7,
    "dst": 8,
    "natsrc": 9,
    "natdst": 10,
    "rule": 11,
    "srcuser": 12,
    "app": 14,
    "vsys": 15,
    "from": 16,
    "to": 17,
    "inbound_if": 18,
    "outbound_if": 19,
    "sessionid": 22,
    "sport": 24,
    "dport": 25,
    "natsport": 26,
    "proto": 29,
    "action": 30,
}
TRAFFIC_POSITIONS = {
    **COMMON_POSITIONS,
    "bytes": 31,
    "bytes_sent": 32,
    "bytes_received": 33,
    "packets": 34,
    "start": 35,
    "elapsed": 36,
    "category": 37,
    "pkts_sent": 44,
    "pkts_received": 45,
    "session_end_reason": 46,
    "vsys_name": 51,
    "device_name": 52,
    "src_uuid": 54,
    "src_host": 82,
    "container_id": 92,
    "pod_namespace": 93,
    "pod_name": 94,
}
THREAT_POSITIONS = {
    **COMMON_POSITIONS,
    "misc": 31,
    "threatid": 32,
    "category": 33,
    "severity": 34,
    "vsys_name": 58,
    "device_name": 59,
    "src_uuid": 61,
}
MIN_FIELDS = COMMON_POSITIONS["action"] + 1
HIGH_RES_FROM = 75
"""High Resolution Timestamp lies after Dynamic User Group Name (74) in every version that has it."""

# Export column names (web UI and syslog-doc spellings), normalised to lower case, to our keys.
HEADER_ALIASES = {
    "receive time": "receive_time",
    "serial #": "serial",
    "serial number": "serial",
    "serial": "serial",
    "type": "type",
    "threat/content type": "subtype",
    "subtype": "subtype",
    "generate time": "time_generated",
    "generated time": "time_generated",
    "time generated": "time_generated",
    "source address": "src",
    "source ip": "src",
    "destination address": "dst",
    "destination ip": "dst",
    "nat source ip": "natsrc",
    "nat destination ip": "natdst",
    "rule": "rule",
    "rule name": "rule",
    "source user": "srcuser",
    "application": "app",
    "virtual system": "vsys",
    "source zone": "from",
    "destination zone": "to",
    "inbound interface": "inbound_if",
    "outbound interface": "outbound_if",
    "session id": "sessionid",
    "source port": "sport",
    "destination port": "dport",
    "nat source port": "natsport",
    "ip protocol": "proto",
    "protocol": "proto",
    "action": "action",
    "bytes": "bytes",
    "bytes sent": "bytes_sent",
    "bytes received": "bytes_received",
    "packets": "packets",
    "start time": "start",
    "elapsed time (sec)": "elapsed",
    "elapsed time": "elapsed",
    "category": "category",
    "url category": "category",
    "packets sent": "pkts_sent",
    "pkts_sent": "pkts_sent",
    "packets received": "pkts_received",
    "pkts_received": "pkts_received",
    "session end reason": "session_end_reason",
    "session_end_reason": "session_end_reason",
    "virtual system name": "vsys_name",
    "device name": "device_name",
    "source vm uuid": "src_uuid",
    "source hostname": "src_host",
    "container id": "container_id",
    "pod namespace": "pod_namespace",
    "pod name": "pod_name",
    "url/filename": "misc",
    "threat id": "threatid",
    "threat/content name": "threatid",
    "severity": "severity",
    "high resolution timestamp": "high_res",
    "high res timestamp": "high_res",
}

TRAFFIC_ACTIONS = {
    "allow": "allowed",
    "deny": "denied",
    "drop": "denied",
    "drop-icmp": "denied",
    "reset-client": "denied",
    "reset-server": "denied",
    "reset-both": "denied",
}
THREAT_ACTIONS = {
    **{v: "alerted" for v in ("alert", "allow", "continue", "override", "syncookie-sent")},
    **{
        v: "denied"
        for v in (
            "deny",
            "drop",
            "drop-all-packets",
            "drop-icmp",
            "reset-client",
            "reset-server",
            "reset-both",
            "block-url",
            "block-ip",
            "block-continue",
            "block-override",
            "override-lockout",
            "random-drop",
            "sinkhole",
        )
    },
}
DENY_SUBTYPES = ("deny", "drop")

# A syslog-form record: [FUTURE_USE,]Receive Time,Serial Number,Type, after a header or not.
_RECORD_RE = re.compile(
    r"(?:^|(?<=[\s>]))(?:(\d*),)?\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2},[^,]*,([A-Z][A-Z-]*),"
)
_PAN_TIME_RE = re.compile(r"^(\d{4})/(\d{2})/(\d{2}) (\d{2}:\d{2}:\d{2})$")
_HIGH_RES_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?([+-]\d{2}):?(\d{2})$")
_BARE_ID_RE = re.compile(r"^\(\d+\)$")


def _normalise_header(text: str) -> str:
    return " ".join(text.strip().strip('"').lstrip("\ufeff").lower().split())


def _header_keys(line: str) -> list[str] | None:
    """Our keys for an export header row, or None when the row is not a PAN-OS header."""
    try:
        names = next(csv.reader([line]))
    except (csv.Error, StopIteration):
        return None
    normalised = [_normalise_header(n) for n in names]
    if "receive time" not in normalised or "action" not in normalised:
        return None
    if not {"source address", "source ip"} & set(normalised):
        return None
    return [HEADER_ALIASES.get(n, f"?{n}") for n in normalised]


def sniff(head: bytes, filename: str) -> float:
    """Score: a TRAFFIC/THREAT record in PAN-OS field order, or an export header row."""
    text, _ = decode_line(head[:65536])
    lines = [line for line in text.splitlines()[:50] if line.strip()]
    if not lines:
        return 0.0
    if _header_keys(lines[0].lstrip("\ufeff")) is not None:
        lowered = lines[0].lower()
        return 0.95 if "threat/content type" in lowered else 0.8
    best = 0.0
    for line in lines:
        if "CEF:" in line or "LEEF:" in line:
            continue
        match = _RECORD_RE.search(line)
        if match is None:
            continue
        if match.group(2) in ("TRAFFIC", "THREAT") and line.count(",") >= MIN_FIELDS - 1:
            return 0.95
        best = max(best, 0.6)
    return best


def read(source: Source, options: LoadOptions) -> LoadResult:
    """Read PAN-OS syslog lines or a CSV export into ``network_events`` rows."""
    load = FileLoad(source, options, name, kind, NETWORK_EVENTS)
    untrust = _untrust_zones(options)
    header = _header_keys(first_line(source.head()).decode("utf-8", "replace"))
    records = _export_records(source, load) if header else _syslog_records(source, load)
    for line, record, raw in records:
        log_type = (record.get("type") or "TRAFFIC").strip().upper()
        if log_type not in ("TRAFFIC", "THREAT"):
            load.skip(f"{log_type} log (not TRAFFIC or THREAT)")
            continue
        try:
            row = _convert(record, log_type, options, untrust)
        except fields.RowError as exc:
            load.reject(line, str(exc), raw)
            continue
        load.emit(row, line)
    return load.result()


Record = tuple[int, dict[str, str], str]


def _syslog_records(source: Source, load: FileLoad) -> Iterator[Record]:
    """Syslog-form lines as dicts keyed by our field names (the caller counts what it yields)."""
    for line, raw, match in marked_lines(source, load, _RECORD_RE, "not a PAN-OS log record"):
        try:
            values = next(csv.reader([raw[match.start() :]], strict=True))
        except csv.Error as exc:
            load.reject(line, f"unreadable CSV: {exc}", raw)
            continue
        if match.group(1) is None:
            values.insert(0, "")  # the leading FUTURE_USE field was left out
        log_type = values[3].strip().upper()
        if log_type not in ("TRAFFIC", "THREAT"):
            yield line, {"type": log_type}, raw
            continue
        if len(values) < MIN_FIELDS:
            load.reject(
                line,
                f"{len(values)} fields; a PAN-OS {log_type} record has at least {MIN_FIELDS}",
                raw,
            )
            continue
        positions = TRAFFIC_POSITIONS if log_type == "TRAFFIC" else THREAT_POSITIONS
        record = {key: values[i] for key, i in positions.items() if i < len(values)}
        high_res = next((v for v in values[HIGH_RES_FROM:] if _HIGH_RES_RE.match(v.strip())), None)
        if high_res is not None:
            record["high_res"] = high_res
        yield line, record, raw


def _export_records(source: Source, load: FileLoad) -> Iterator[Record]:
    """Rows of a CSV export as dicts keyed by our field names (the caller counts what it yields)."""
    for line, row, raw in csv_records(source, load.stats, load.sink):
        record: dict[str, str] = {}
        for column, value in row.items():
            key = HEADER_ALIASES.get(_normalise_header(column))
            if key is not None and key not in record:
                record[key] = value
        yield line, record, raw


def _untrust_zones(options: LoadOptions) -> frozenset[str]:
    text = options.option(name, "untrust_zones", "untrust")
    return frozenset(z.strip().lower() for z in (text or "").split(",") if z.strip())


def _record_zone(record: dict[str, str]) -> tzinfo | None:
    """The fixed offset of the record's High Resolution Timestamp, if it has one."""
    match = _HIGH_RES_RE.match((record.get("high_res") or "").strip())
    if match is None:
        return None
    sign = -1 if match.group(1).startswith("-") else 1
    return timezone(sign * timedelta(hours=int(match.group(1)[1:]), minutes=int(match.group(2))))


def _pan_time(value: str | None, label: str, zone: tzinfo) -> tuple[int, str | None] | None:
    """A PAN-OS ``YYYY/MM/DD HH:MM:SS`` in ``zone`` as ns and the parse note; None when blank."""
    if fields.is_blank(value):
        return None
    match = _PAN_TIME_RE.match((value or "").strip())
    if match is None:
        raise fields.RowError(f"{label}: not a PAN-OS time (YYYY/MM/DD HH:MM:SS): {value!r}")
    year, month, day, clock = match.groups()
    try:
        return parse_iso(f"{year}-{month}-{day}T{clock}", default_tz=zone)
    except TimeParseError:
        raise fields.RowError(f"{label}: not a valid time: {value!r}") from None


def _times(
    record: dict[str, str], log_type: str, options: LoadOptions, notes: list[str]
) -> tuple[int, int | None]:
    """``ts`` and ``ts_end`` of a record (see the module docstring)."""
    zone = _record_zone(record)
    if zone is not None:
        offset = str(zone).removeprefix("UTC") or "+00:00"
        notes.append(f"zone {offset} from the record's High Resolution Timestamp")
    generated = _pan_time(
        record.get("time_generated"), "Generated Time", zone or options.zone_for(name)
    )
    if generated is None:
        raise fields.RowError("Generated Time is missing")
    generated_ns, zone_note = generated
    if zone_note and zone is None:
        notes.append(zone_note)
    if log_type != "TRAFFIC":
        return generated_ns, None
    start = _pan_time(record.get("start"), "Start Time", zone or options.zone_for(name))
    if start is None:
        notes.append("no Start Time: ts = Generated Time")
        return generated_ns, None
    start_ns = start[0]
    if start_ns < 946_684_800_000_000_000:  # 2000-01-01: an unset start (1970/01/01 ...)
        notes.append("Start Time unset: ts = Generated Time")
        return generated_ns, None
    if start_ns > generated_ns:
        notes.append("Start Time after Generated Time: ts = Generated Time")
        return generated_ns, None
    return start_ns, generated_ns


def _direction(record: dict[str, str], untrust: frozenset[str]) -> str:
    """outbound | inbound | unknown from the zones (see ``untrust_zones``)."""
    src = (record.get("from") or "").strip().lower()
    dst = (record.get("to") or "").strip().lower()
    if not src or not dst:
        return "unknown"
    if dst in untrust and src not in untrust:
        return "outbound"
    if src in untrust and dst not in untrust:
        return "inbound"
    return "unknown"


def _host(url: str | None) -> str | None:
    """The host part of a PAN-OS URL/Filename (``example.com/path``), lower case; None for IPs."""
    text = fields.text(url)
    if text is None:
        return None
    text = re.sub(r"^[a-z][a-z0-9+.-]*://", "", text, flags=re.IGNORECASE)
    host = re.split(r"[/?#]", text, maxsplit=1)[0].rsplit("@", 1)[-1]
    host = re.sub(r":\d+$", "", host).strip("[]").lower().rstrip(".")
    if not host:
        return None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host
    return None


def _verdict(record: dict[str, str], log_type: str, notes: list[str]) -> tuple[str, str | None]:
    """The normalised action and the vendor ``subtype/action`` text."""
    action_text = fields.text(record.get("action"))
    subtype = fields.text(record.get("subtype"))
    action = (action_text or "").lower().replace(" ", "-")
    raw = "/".join(part for part in (subtype, action_text) if part) or None
    if log_type == "THREAT":
        return THREAT_ACTIONS.get(action, "unknown"), raw
    verdict = TRAFFIC_ACTIONS.get(action, "unknown")
    if (subtype or "").lower() in DENY_SUBTYPES and verdict != "denied":
        notes.append(f"subtype {subtype} with Action {action_text or '-'}: taken as denied")
        verdict = "denied"
    return verdict, raw


def _convert(
    record: dict[str, str], log_type: str, options: LoadOptions, untrust: frozenset[str]
) -> dict[str, Any]:
    """One PAN-OS record to a ``network_events`` row (without provenance)."""
    notes: list[str] = []
    ts, ts_end = _times(record, log_type, options, notes)
    src = fields.ip(record.get("src"), "Source Address", required=True)
    dst = fields.ip(record.get("dst"), "Destination Address", required=True)
    nat = fields.ip(record.get("natsrc"), "NAT Source IP")
    if nat in ("0.0.0.0", "::", src):
        nat = None
    verdict, action_raw = _verdict(record, log_type, notes)
    signature = None
    dst_domain = None
    if log_type == "THREAT":
        signature = fields.text(record.get("threatid"))
        if signature and _BARE_ID_RE.match(signature):
            signature = None
        if (record.get("subtype") or "").strip().lower() == "url":
            dst_domain = _host(record.get("misc"))
    serial = fields.text(record.get("serial"))
    device = fields.text(record.get("device_name")) or serial
    vsys = fields.text(record.get("vsys"))
    pod = "/".join(
        p
        for p in (fields.text(record.get("pod_namespace")), fields.text(record.get("pod_name")))
        if p
    )
    session = fields.text(record.get("sessionid"))
    category = fields.text(record.get("category"))
    return {
        "ts": ts,
        "ts_end": ts_end,
        "src_ip": src,
        "src_port": fields.port(record.get("sport"), "Source Port"),
        "src_nat_ip": nat,
        "dst_ip": dst,
        "dst_port": fields.port(record.get("dport"), "Destination Port"),
        "protocol": fields.protocol(record.get("proto")),
        "direction": _direction(record, untrust),
        "action": verdict,
        "action_raw": action_raw,
        "rule": fields.text(record.get("rule")),
        "signature": signature,
        "category": None if category == "any" else category,
        "dst_domain": dst_domain,
        "app": fields.text(record.get("app")),
        "bytes_out": fields.counter(record.get("bytes_sent"), "Bytes Sent"),
        "bytes_in": fields.counter(record.get("bytes_received"), "Bytes Received"),
        "packets_out": fields.counter(record.get("pkts_sent"), "Packets Sent"),
        "packets_in": fields.counter(record.get("pkts_received"), "Packets Received"),
        "observer": "/".join(p for p in ("panos", device, vsys) if p),
        "host_hint": pod
        or fields.text(record.get("container_id"))
        or fields.text(record.get("src_uuid"))
        or fields.text(record.get("src_host")),
        "flow_key": f"panos:{serial or '-'}:{session}" if session and session != "0" else None,
        "ts_note": "; ".join(notes) or None,
    }
