"""Google Cloud Logging entries of VPC firewall rules logging and VPC Flow Logs, as JSON.

``LogEntry`` objects one per line (a log sink) or as one JSON array (``gcloud logging read``),
told apart by ``logName`` or the ``jsonPayload`` shape; entries of other logs are skipped with
their log id. One row per entry; camelCase and snake_case keys are read.

Firewall entries: ``ts`` = ``timestamp`` (``receiveTimestamp`` stands in, noted); ``disposition``
ALLOWED -> allowed, DENIED -> denied, INTERCEPTED -> the ``intercepted`` option (default
unknown: the outcome is logged by Cloud NGFW elsewhere); ``direction`` internal when the other end
is a VM, else the rule's; ``rule`` = ``rule_details.reference``; ``host_hint`` = the VM name.
Flow records: one direction each; ``ts``/``ts_end`` = ``start_time``/``end_time``; ``action`` =
allowed unless a ``disposition`` says otherwise; SRC reporter -> outbound and ``*_out``, DEST ->
inbound and ``*_in``; ``host_hint`` = the reporter's pod, else VM. Naive times are UTC
(``--tz gcp_logging=ZONE``), noted. JSON lines are read column-wise, every note and reject through
the per-line reader (property-tested). Field reference and sources:
``tests/data/gcp_logging/README.md``.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import OptionError
from ..schema import NETWORK_EVENTS
from ..sources import Source
from ..timeparse import TimeParseError, parse_iso
from . import fields
from .base import FileLoad, LoadOptions, LoadResult
from .columnar import NULL_INT, NULL_TEXT, blank, constant, mapped, plain_int, table_of, text
from .records import first_line, json_documents, json_line_record
from .suricata_eve import (
    Checked,
    Columns,
    Leaves,
    Values,
    addresses,
    in_range,
    iso_ns,
    read_columns,
)

name = "gcp_logging"
kind = "network"
description = "Google Cloud Logging JSON: VPC firewall rules logs and VPC Flow Logs"

OPTIONS = {
    "intercepted": "the verdict for disposition INTERCEPTED: unknown (default), alerted, allowed or denied",
}
"""``--option gcp_logging.KEY=VALUE`` settings."""

FIREWALL_LOG = "compute.googleapis.com/firewall"
FLOWS_LOG = "compute.googleapis.com/vpc_flows"
DISPOSITIONS = {"ALLOWED": "allowed", "DENIED": "denied", "DROPPED": "denied"}
RULE_ACTIONS = {"ALLOW": "allowed", "DENY": "denied"}
RULE_DIRECTIONS = {"EGRESS": "outbound", "INGRESS": "inbound"}
REPORTER_DIRECTIONS = {"SRC": "outbound", "DEST": "inbound"}
INTERCEPTED_CHOICES = ("unknown", "alerted", "allowed", "denied")
_STRONG = tuple(
    marker.encode()
    for log in (FIREWALL_LOG, FLOWS_LOG)
    for marker in (log.replace("/", "%2F"), log.replace("/", "%2f"), log)
)


def sniff(head: bytes, filename: str) -> float:
    """Score: Cloud Logging JSON naming the firewall or vpc_flows log, or shaped like them.

    Other Cloud Logging exports score 0.3: not chosen on their own, but ``--format gcp_logging``
    is accepted for a file whose first entries are other logs.
    """
    sample = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not sample.startswith((b"{", b"[")):
        return 0.0
    if any(marker in sample for marker in _STRONG):
        return 0.95
    payload = b'"jsonPayload"' in sample or b'"json_payload"' in sample
    if (
        payload
        and b'"connection"' in sample
        and b'"src_ip"' in sample
        and any(k in sample for k in (b'"disposition"', b'"rule_details"', b'"reporter"'))
    ):
        return 0.8
    log_name = b'"logName"' in sample or b'"log_name"' in sample
    if log_name and any(
        k in sample for k in (b'"insertId"', b'"receiveTimestamp"', b'"insert_id"')
    ):
        return 0.3
    return 0.0


def read(source: Source, options: LoadOptions) -> LoadResult:
    """Read Cloud Logging entries into ``network_events`` rows (firewall and flow entries only)."""
    intercepted = (options.option(name, "intercepted", "unknown") or "unknown").strip().lower()
    if intercepted not in INTERCEPTED_CHOICES:
        raise OptionError(
            f"--option {name}.intercepted={intercepted!r}: use one of {', '.join(INTERCEPTED_CHOICES)}"
        )
    load = FileLoad(source, options, name, kind, NETWORK_EVENTS, unit="entries")
    reader = Reader(load, intercepted)
    if _json_lines(source):
        read_columns(load, reader.columns)
    else:
        for line, entry, raw in json_documents(source, load.stats, load.sink):
            reader.record(line, entry, raw, load)
    return load.result()


def _json_lines(source: Source) -> bool:
    """Whether ``records.json_documents`` reads the file as JSON lines (its own test)."""
    first = first_line(source.head())
    try:
        return not isinstance(json.loads(first), list)
    except (ValueError, RecursionError):
        return not first.startswith((b"{", b"["))


class Reader:
    """One file's read: the per-line (per-record) reader and the column-wise check."""

    def __init__(self, load: FileLoad, intercepted: str) -> None:
        self.load = load
        self.intercepted = intercepted
        self.columns = Columns(
            schema=SCHEMA, check=self._check, normalise=_normalise, per_line=self.line
        )

    def line(self, line: int, raw: bytes, load: FileLoad) -> None:
        """One JSON line through the per-line reader."""
        found = json_line_record(line, raw, load)
        if found is not None:
            self.record(line, found[0], found[1], load)

    def record(self, line: int, entry: dict[str, Any], raw: str, load: FileLoad) -> None:
        """One entry: a row, or a reject or skip with the reason."""
        log_id = _log_id(entry)
        payload = _get(entry, "jsonPayload", "json_payload")
        entry_kind = _entry_kind(log_id, payload)
        if entry_kind is None:
            load.skip(_skip_reason(log_id))
            return
        try:
            if not isinstance(payload, dict):
                raise fields.RowError("jsonPayload is missing or not an object")
            if entry_kind == "firewall":
                row = _firewall(entry, payload, load.options, self.intercepted)
            else:
                row = _flow(entry, payload, load.options)
        except fields.RowError as exc:
            load.reject(line, f"{entry_kind} entry: {exc}", raw)
            return
        load.emit(row, line)

    def _check(self, table: pa.Table, ok: np.ndarray, lines: np.ndarray) -> Checked:
        """Clear ``ok`` for entries the per-line reader must read; the verdicts, the skip
        reasons and the values ``_normalise`` reads."""
        return _check(table, ok, self.intercepted)


def _skip_reason(log_id: str | None) -> str:
    return f"not a firewall or VPC flow log entry ({log_id or 'no logName'})"


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    return obj.get(camel, obj.get(snake))


def _log_id(entry: dict[str, Any]) -> str | None:
    """The log id of ``projects/P/logs/<URL-encoded id>``, decoded and shortened for a reason."""
    log_name = _get(entry, "logName", "log_name")
    if not isinstance(log_name, str) or not log_name.strip():
        return None
    return unquote(log_name.rsplit("/logs/", 1)[-1])[:80]


def _entry_kind(log_id: str | None, payload: Any) -> str | None:
    """``firewall``, ``flow`` or None (not ours), by log id, else by the payload's keys."""
    if log_id == FIREWALL_LOG:
        return "firewall"
    if log_id == FLOWS_LOG:
        return "flow"
    if log_id is None and isinstance(payload, dict) and isinstance(payload.get("connection"), dict):
        if "disposition" in payload or "rule_details" in payload:
            return "firewall"
        if "reporter" in payload or "bytes_sent" in payload:
            return "flow"
    return None


def _time(value: Any, what: str, options: LoadOptions) -> tuple[int, str | None]:
    if not isinstance(value, str):
        raise fields.RowError(f"{what} is not an RFC 3339 time: {value!r}")
    try:
        return parse_iso(value, default_tz=options.zone_for(name))
    except TimeParseError as exc:
        raise fields.RowError(f"{what}: {exc}") from None


def _entry_time(entry: dict[str, Any], options: LoadOptions, notes: list[str]) -> int:
    """The entry's ``timestamp``, else its ``receiveTimestamp`` (noted)."""
    stamp = entry.get("timestamp")
    if not fields.is_blank(stamp):
        ts, note = _time(stamp, "timestamp", options)
    else:
        received = _get(entry, "receiveTimestamp", "receive_timestamp")
        if fields.is_blank(received):
            raise fields.RowError("no timestamp and no receiveTimestamp")
        ts, note = _time(received, "receiveTimestamp", options)
        notes.append("timestamp missing: used receiveTimestamp (when Cloud Logging received it)")
    if note:
        notes.append(note)
    return ts


def _connection(payload: dict[str, Any]) -> dict[str, Any]:
    """The 5-tuple of ``jsonPayload.connection``, checked."""
    connection = payload.get("connection")
    if not isinstance(connection, dict):
        raise fields.RowError("jsonPayload.connection is missing")
    return {
        "src_ip": fields.ip(connection.get("src_ip"), "connection.src_ip", required=True),
        "src_port": fields.port(connection.get("src_port"), "connection.src_port"),
        "dst_ip": fields.ip(connection.get("dest_ip"), "connection.dest_ip", required=True),
        "dst_port": fields.port(connection.get("dest_port"), "connection.dest_port"),
        "protocol": fields.protocol(connection.get("protocol")),
    }


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _observer(prefix: str, vpc: Any) -> str:
    vpc_name = fields.text(_obj(vpc).get("vpc_name"))
    return f"{prefix}/{vpc_name}" if vpc_name else prefix


def _firewall(
    entry: dict[str, Any], payload: dict[str, Any], options: LoadOptions, intercepted: str
) -> dict[str, Any]:
    """One firewall rules logging entry to a ``network_events`` row (without provenance)."""
    notes: list[str] = []
    ts = _entry_time(entry, options, notes)
    row = _connection(payload)
    rule_details = _obj(payload.get("rule_details"))
    disposition = fields.text(payload.get("disposition"))
    if disposition is not None:
        upper = disposition.upper()
        action = intercepted if upper == "INTERCEPTED" else DISPOSITIONS.get(upper, "unknown")
        action_raw: str | None = disposition
    else:
        action_raw = fields.text(rule_details.get("action"))
        action = RULE_ACTIONS.get((action_raw or "").upper(), "unknown")
    if payload.get("remote_instance") or payload.get("remote_vpc"):
        direction = "internal"
    else:
        rule_direction = (fields.text(rule_details.get("direction")) or "").upper()
        direction = RULE_DIRECTIONS.get(rule_direction, "unknown")
    row.update(
        {
            "ts": ts,
            "ts_end": None,
            "src_nat_ip": None,
            "direction": direction,
            "action": action,
            "action_raw": action_raw,
            "rule": fields.text(rule_details.get("reference")),
            "signature": None,
            "category": None,
            "dst_domain": None,
            "app": None,
            "bytes_out": None,
            "bytes_in": None,
            "packets_out": None,
            "packets_in": None,
            "observer": _observer("gcp-firewall", payload.get("vpc")),
            "host_hint": fields.text(_obj(payload.get("instance")).get("vm_name")),
            "flow_key": None,
            "ts_note": "; ".join(notes) or None,
        }
    )
    return row


def _flow(entry: dict[str, Any], payload: dict[str, Any], options: LoadOptions) -> dict[str, Any]:
    """One VPC Flow Logs entry to a ``network_events`` row (without provenance)."""
    notes: list[str] = []
    start = payload.get("start_time")
    end = payload.get("end_time")
    if fields.is_blank(start) and fields.is_blank(end):
        ts = _entry_time(entry, options, notes)
        notes.insert(0, "no start_time or end_time: used the entry timestamp")
    else:
        start_key = "start_time"
        if fields.is_blank(start):
            start_key, start = "end_time", end
            notes.append("start_time missing: used end_time")
        ts, note = _time(start, start_key, options)
        if note:
            notes.append(note)
    ts_end = None
    if not fields.is_blank(end):
        ts_end, note = _time(end, "end_time", options)
        if note and note not in notes:
            notes.append(note)
        if ts_end < ts:
            notes.append("end_time before start_time: end ignored")
            ts_end = None
    row = _connection(payload)
    reporter = (fields.text(payload.get("reporter")) or "").upper()
    disposition = fields.text(payload.get("disposition"))
    action = DISPOSITIONS.get(disposition.upper(), "unknown") if disposition else "allowed"
    both_vms = bool(payload.get("src_instance") and payload.get("dest_instance")) or bool(
        payload.get("src_vpc") and payload.get("dest_vpc")
    )
    direction = "internal" if both_vms else REPORTER_DIRECTIONS.get(reporter, "unknown")
    sent_bytes = fields.counter(payload.get("bytes_sent"), "bytes_sent")
    sent_packets = fields.counter(payload.get("packets_sent"), "packets_sent")
    received = reporter == "DEST"
    side = "dest" if received else "src"
    pod = _obj(_obj(payload.get(f"{side}_gke_details")).get("pod")).get("pod_name")
    vm = _obj(payload.get(f"{side}_instance")).get("vm_name")
    host_hint = (fields.text(pod) or fields.text(vm)) if reporter in ("SRC", "DEST") else None
    row.update(
        {
            "ts": ts,
            "ts_end": ts_end,
            "src_nat_ip": None,
            "direction": direction,
            "action": action,
            "action_raw": disposition,
            "rule": None,
            "signature": None,
            "category": None,
            "dst_domain": None,
            "app": None,
            "bytes_out": None if received else sent_bytes,
            "bytes_in": sent_bytes if received else None,
            "packets_out": None if received else sent_packets,
            "packets_in": sent_packets if received else None,
            "observer": _observer("gcp-vpc-flows", payload.get(f"{side}_vpc")),
            "host_hint": host_hint,
            "flow_key": None,
            "ts_note": "; ".join(notes) or None,
        }
    )
    return row


# --- the column-wise path ------------------------------------------------------------------------

TEXT = pa.string()
INT = pa.int64()


def _struct(*children: tuple[str, pa.DataType]) -> pa.DataType:
    return pa.struct(list(children))


_VM = _struct(*((k, TEXT) for k in ("vm_name", "project_id", "region", "zone")))
_VPC = _struct(*((k, TEXT) for k in ("vpc_name", "project_id", "subnetwork_name")))
_GKE = _struct(("pod", _struct(("pod_name", TEXT))))
_PAYLOAD = _struct(
    (
        "connection",
        _struct(
            *(("src_ip", TEXT), ("src_port", INT), ("dest_ip", TEXT), ("dest_port", INT)),
            ("protocol", INT),
        ),
    ),
    ("disposition", TEXT),
    ("rule_details", _struct(("reference", TEXT), ("action", TEXT), ("direction", TEXT))),
    *(("instance", _VM), ("vpc", _VPC), ("remote_instance", _VM), ("remote_vpc", _VPC)),
    *(("reporter", TEXT), ("start_time", TEXT), ("end_time", TEXT)),
    *(("bytes_sent", TEXT), ("packets_sent", TEXT)),
    *(("src_instance", _VM), ("dest_instance", _VM), ("src_vpc", _VPC), ("dest_vpc", _VPC)),
    *(("src_gke_details", _GKE), ("dest_gke_details", _GKE)),
)
SCHEMA = pa.schema([("logName", TEXT), ("timestamp", TEXT), ("jsonPayload", _PAYLOAD)])
"""What the per-line reader reads of a firewall or flow entry written in camelCase (snake_case
keys, ``receiveTimestamp`` standing in for a missing time: line by line). Ports and the protocol
are JSON numbers, counters int64 strings (proto3 JSON); a line that does otherwise (a protocol
written ``"udp"``) makes pyarrow refuse its piece, which is then read line by line."""


def _np(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean column as a numpy mask (null is False)."""
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)


def _kind_of(log_name: str | None) -> str | None:
    """``firewall``, ``flow`` or ``other`` for a ``logName`` (None: blank, read line by line)."""
    if log_name is None or not log_name.strip():
        return None
    log_id = unquote(log_name.rsplit("/logs/", 1)[-1])[:80]
    return {FIREWALL_LOG: "firewall", FLOWS_LOG: "flow"}.get(log_id, "other")


def _given(col: dict[str, pa.Array], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Where object ``key`` is truthy (non-empty), and where that cannot be told (an object
    whose known members are all missing may hold others: read line by line)."""
    column = col[f"jsonPayload.{key}"]
    children = [col[f"jsonPayload.{key}.{c.name}"] for c in column.type]
    some = np.zeros(len(column), dtype=bool)
    for child in children:
        some |= _np(pc.is_valid(child))
    present = _np(pc.is_valid(column))
    return some, present & ~some


def _check(table: pa.Table, ok: np.ndarray, intercepted: str) -> Checked:
    col = Leaves(table)
    n = table.num_rows
    kinds = mapped(col["logName"], _kind_of)
    firewall = _np(pc.equal(kinds, "firewall"))
    flow = _np(pc.equal(kinds, "flow"))
    ours = firewall | flow
    skip = mapped(
        pc.if_else(pc.equal(kinds, "other"), col["logName"], NULL_TEXT),
        lambda v: _skip_reason(_log_id({"logName": v})),
    )
    payload = _np(pc.is_valid(col["jsonPayload"]))
    ok &= (ours & payload) | _np(pc.is_valid(skip))  # no logName or payload: per line
    good = np.ones(n, dtype=bool)
    src = addresses(col["jsonPayload.connection.src_ip"], good)
    dst = addresses(col["jsonPayload.connection.dest_ip"], good)
    good &= _np(pc.and_(pc.is_valid(src), pc.is_valid(dst)))
    good &= _np(pc.is_valid(col["jsonPayload.connection"]))
    for key in ("src_port", "dest_port"):
        good &= in_range(col[f"jsonPayload.connection.{key}"], 0, 65535)
    # firewall entries: the entry's time; flow entries: start and end (an end alone, a naive
    # time, an end before the start: notes)
    stamp = iso_ns(col["timestamp"], firewall)
    start = iso_ns(col["jsonPayload.start_time"], flow)
    end = iso_ns(col["jsonPayload.end_time"], flow)
    no_end = _np(blank(col["jsonPayload.end_time"]))
    good &= ~firewall | stamp.valid
    good &= ~flow | (start.valid & (no_end | (end.valid & (end.ns >= start.ns))))
    sent = {k: plain_int(col[f"jsonPayload.{k}"], None, 18) for k in ("bytes_sent", "packets_sent")}
    for key, number in sent.items():
        good &= ~flow | _np(pc.or_(pc.is_valid(number), blank(col[f"jsonPayload.{key}"])))
    remote = [_given(col, key) for key in ("remote_instance", "remote_vpc")]
    ends = {
        key: _given(col, key) for key in ("src_instance", "dest_instance", "src_vpc", "dest_vpc")
    }
    for _, unclear in remote:
        good &= ~firewall | ~unclear
    for _, unclear in ends.values():
        good &= ~flow | ~unclear
    ok &= good | ~ours
    # verdicts and directions
    disposition = text(col["jsonPayload.disposition"])
    rule_action = text(col["jsonPayload.rule_details.action"])
    by_disposition = mapped(
        disposition,
        lambda v: (
            intercepted if v.upper() == "INTERCEPTED" else DISPOSITIONS.get(v.upper(), "unknown")
        ),
    )
    by_rule = mapped(
        rule_action, lambda v: RULE_ACTIONS.get((v or "").upper(), "unknown"), fill=True
    )
    flow_action = mapped(disposition, lambda v: DISPOSITIONS.get(v.upper(), "unknown"))
    verdict = pc.if_else(
        pa.array(firewall),
        pc.coalesce(by_disposition, by_rule),
        pc.coalesce(flow_action, pa.scalar("allowed")),
    )
    reporter = mapped(
        col["jsonPayload.reporter"], lambda v: (fields.text(v) or "").upper(), fill=True
    )
    rule_direction = mapped(
        col["jsonPayload.rule_details.direction"],
        lambda v: RULE_DIRECTIONS.get((fields.text(v) or "").upper(), "unknown"),
        fill=True,
    )
    internal_fw = remote[0][0] | remote[1][0]
    internal_flow = (ends["src_instance"][0] & ends["dest_instance"][0]) | (
        ends["src_vpc"][0] & ends["dest_vpc"][0]
    )
    direction = pc.if_else(
        pa.array(firewall),
        pc.if_else(pa.array(internal_fw), "internal", rule_direction),
        pc.if_else(
            pa.array(internal_flow),
            "internal",
            mapped(reporter, lambda v: REPORTER_DIRECTIONS.get(v, "unknown")),
        ),
    )
    values = {
        **{k: col[f"jsonPayload.{k}"] for k in _PASSED},
        **{"is_firewall": firewall, "reporter": reporter, "src": src, "dst": dst},
        **{"ts": np.where(firewall, stamp.ns, start.ns), "ts_end": end.ns},
        **{"has_end": flow & ~no_end, "action": verdict, "direction": direction},
        **{
            "action_raw": pc.coalesce(
                disposition, pc.if_else(pa.array(firewall), rule_action, NULL_TEXT)
            )
        },
        **sent,
    }
    return Checked(verdict, skip, values)


_PASSED = (
    *("connection.src_port", "connection.dest_port", "connection.protocol"),
    *("rule_details.reference", "instance.vm_name", "vpc.vpc_name"),
    *("src_vpc.vpc_name", "dest_vpc.vpc_name", "src_instance.vm_name", "dest_instance.vm_name"),
    *("src_gke_details.pod.pod_name", "dest_gke_details.pod.pod_name"),
)
"""The payload's columns ``_normalise`` reads as they were parsed."""


def _normalise(col: Values, lines: np.ndarray, source: Source) -> pa.Table:
    """Checked firewall and flow entries as ``network_events`` rows (``_firewall``/``_flow``'s)."""
    n = len(lines)
    firewall = pa.array(col["is_firewall"])
    reporter = col["reporter"]
    received = _np(pc.equal(reporter, "DEST"))
    reporting = _np(pc.is_in(reporter, value_set=pa.array(["SRC", "DEST"])))
    dest = pa.array(received)
    pod = pc.if_else(
        dest, col["dest_gke_details.pod.pod_name"], col["src_gke_details.pod.pod_name"]
    )
    vm = pc.if_else(dest, col["dest_instance.vm_name"], col["src_instance.vm_name"])
    flow_host = pc.if_else(pa.array(reporting), pc.coalesce(text(pod), text(vm)), NULL_TEXT)
    flow_vpc = pc.if_else(dest, col["dest_vpc.vpc_name"], col["src_vpc.vpc_name"])
    into = pa.array(~col["is_firewall"] & received)
    out = pa.array(~col["is_firewall"] & ~received)
    values: dict[str, Any] = {
        "ts": pa.array(col["ts"], INT),
        "ts_end": pa.array(col["ts_end"], INT, mask=~col["has_end"]),
        "src_ip": col["src"],
        "src_port": col["connection.src_port"],
        "dst_ip": col["dst"],
        "dst_port": col["connection.dest_port"],
        "protocol": mapped(col["connection.protocol"], fields.protocol),
        "direction": col["direction"],
        "action": col["action"],
        "action_raw": col["action_raw"],
        "rule": pc.if_else(firewall, text(col["rule_details.reference"]), NULL_TEXT),
        "bytes_out": pc.if_else(out, col["bytes_sent"], NULL_INT),
        "bytes_in": pc.if_else(into, col["bytes_sent"], NULL_INT),
        "packets_out": pc.if_else(out, col["packets_sent"], NULL_INT),
        "packets_in": pc.if_else(into, col["packets_sent"], NULL_INT),
        "observer": pc.if_else(
            firewall,
            mapped(
                col["vpc.vpc_name"], lambda v: _observer("gcp-firewall", {"vpc_name": v}), fill=True
            ),
            mapped(flow_vpc, lambda v: _observer("gcp-vpc-flows", {"vpc_name": v}), fill=True),
        ),
        "host_hint": pc.if_else(firewall, text(col["instance.vm_name"]), flow_host),
        "source_format": constant(name, n),
        "source_path": constant(source.display, n),
        "source_line": pa.array(lines, INT),
    }
    return table_of(values, n)
