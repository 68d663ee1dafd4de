"""Suricata EVE JSON (``eve.json``): flow, netflow, alert and drop events as network events.

One row per event: ``alert`` -> alerted for ``alert.action`` allowed, denied for blocked or a
``verdict.action`` drop (src/dst oriented initiator -> responder); ``drop`` -> denied; ``flow`` ->
``ts``/``ts_end`` = the flow's start/end, denied when ``flow.action`` is drop, else allowed,
toserver -> ``*_out``, toclient -> ``*_in``; ``netflow`` (one direction) -> allowed, counters to
``*_out``, skipped when its flow is also logged as a ``flow`` event (counted once). ``dns``,
``tls``, ``http``, ``quic``, ``http2`` events make no row: their name fills ``dst_domain`` of the
same flow's rows (skipped, counted). Other types are skipped; a file of only stats/engine events
loads no rows.

Every row: direction unknown (EVE has no network-boundary field; the policy decides by address),
``app`` = ``app_proto``, ``host_hint`` = ``in_iface``, ``flow_key`` = ``suricata:<flow_id>``.
Zone-less timestamps are read in ``--tz suricata_eve=ZONE`` (UTC), noted. Read column-wise
(``read_columns``), every other line through the per-line reader (property-tested). No
``--option`` keys. Field reference and sources: ``tests/data/suricata_eve/README.md``.
"""

from __future__ import annotations

import io
import ipaddress
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import InputError
from ..keep import line_hashes
from ..schema import NETWORK_EVENTS
from ..sources import Source
from ..timeparse import TimeParseError, parse_iso
from . import fields
from .base import FileLoad, LoadOptions, LoadResult
from .blocks import ahead, json_pieces, line_runs, line_spans, numbered_lines
from .columnar import (
    BAD,
    NULL_INT,
    NULL_TEXT,
    beyond_python,
    blank,
    constant,
    ip_or_bad,
    mapped,
    table_of,
    text,
)
from .records import first_line, json_line_record

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
        "engine",
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
TWIN = "netflow record of a flow logged as a flow event (counted once, as the flow)"
TRAFFIC = ("alert", "drop", "flow", "netflow")
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
    if event_type == "engine" and isinstance(record.get("engine"), dict):
        return 0.95  # Suricata's own log as EVE (util-debug.c SCLogMessageJSON)
    return 0.6


def read(source: Source, options: LoadOptions) -> LoadResult:
    """Read EVE lines into ``network_events`` rows, naming flows from their dns/tls/http events."""
    load = FileLoad(source, options, name, kind, NETWORK_EVENTS, unit="events")
    reader = Reader(load)
    read_columns(load, reader.columns)
    return reader.result()


class Reader:
    """One file's read: the per-line reader, the column-wise check, and the flows' names."""

    def __init__(self, load: FileLoad) -> None:
        self.load = load
        self.domains = FirstByLine()
        self._flow_events: frozenset[str] | None = None
        self._flow_array = pa.array([], TEXT)
        self.columns = Columns(
            schema=SCHEMA,
            check=self._check,
            normalise=_normalise,
            per_line=self.line,
        )

    def line(self, line: int, raw: bytes, load: FileLoad) -> None:
        """One line through the per-line reader."""
        found = json_line_record(line, raw, load)
        if found is not None:
            self.record(line, found[0], found[1], load)

    def record(self, line: int, record: dict[str, Any], raw: str, load: FileLoad) -> None:
        """One parsed event: a row, a name for its flow, or a reject or skip with the reason."""
        event_type = record.get("event_type")
        if fields.is_blank(event_type):
            load.reject(line, "no event_type", raw)
            return
        if not isinstance(event_type, str):
            load.reject(line, f"event_type is not text: {event_type!r}", raw)
            return
        flow_key = _flow_key(record.get("flow_id"))
        domain = _app_layer_domain(record)
        if event_type in ENRICHING:
            if flow_key and domain:
                self.domains.offer(flow_key, line, domain)
            load.skip(f"{event_type} event used for enrichment")
            return
        if event_type not in TRAFFIC:
            load.skip(f"{event_type} event (not traffic)")
            return
        if event_type == "netflow" and flow_key in self.flow_events():
            load.skip(TWIN)
            return
        try:
            row = _convert(event_type, record, load.options)
        except fields.RowError as exc:
            load.reject(line, f"{event_type}: {exc}", raw)
            return
        row["flow_key"] = flow_key
        row["dst_domain"] = domain
        if flow_key and domain:
            self.domains.offer(flow_key, line, domain)
        load.emit(row, line)

    def flow_events(self) -> frozenset[str]:
        """The flow keys of the file's ``flow`` events (scanned when first asked for)."""
        if self._flow_events is None:
            self._flow_events = frozenset(flow_event_keys(self.load.source))
            self._flow_array = pa.array(sorted(self._flow_events), TEXT)
        return self._flow_events

    def _twins(self, keys: pa.Array, netflow: np.ndarray) -> np.ndarray:
        """The netflow rows whose flow has a ``flow`` event in the file."""
        if not netflow.any() or not self.flow_events():
            return np.zeros(len(netflow), dtype=bool)
        return netflow & _np(pc.is_in(keys, value_set=self._flow_array))

    def result(self) -> LoadResult:
        """The load's result, rows without a name given the first one their flow's events named."""
        result = self.load.result()
        result.table, _ = self.domains.fill(result.table)
        return result

    def _check(self, table: pa.Table, ok: np.ndarray, lines: np.ndarray) -> Checked:
        """Clear ``ok`` for events the per-line reader must read; the verdicts, the skip reasons,
        the values ``_normalise`` reads; and the names of flows (offered in line order)."""
        col = Leaves(table)
        event_type = col["event_type"]
        kinds = _kinds(event_type, ok)
        traffic, pointed = kinds.traffic, kinds.alert | kinds.drop
        good = np.ones(table.num_rows, dtype=bool)
        src, dst = _addresses(col, good)
        for key in ("src_port", "dest_port"):
            good &= in_range(col[key], 0, 65535)
        start, end, has_end = _span_times(col, kinds, good)
        event_ts = iso_ns(col["timestamp"], pointed)
        good &= event_ts.valid | ~pointed
        for key in _FLOW_COUNTERS:
            good &= in_range(col[f"flow.{key}"], 0) | ~(kinds.flow | pointed)
        for key in ("bytes", "pkts"):
            good &= in_range(col[f"netflow.{key}"], 0) | ~kinds.netflow
        said = pc.or_(pc.is_valid(col["alert.action"]), pc.is_valid(col["alert.signature_id"]))
        good &= _np(said) | ~kinds.alert  # an empty alert object is rejected (ambiguous: per line)
        given, flow_src, flow_dst = _orientation(col, good, pointed)
        keys, names = _flow_keys(col["flow_id"]), _domains(col)
        twin = self._twins(keys, kinds.netflow)  # skipped before their values are read
        ok &= good | ~traffic | twin
        skip = mapped(event_type, _skip_reason)
        if twin.any():
            skip = pc.if_else(pa.array(twin), TWIN, skip)
        ok &= traffic | _np(pc.is_valid(skip))  # no type: the per-line reader rejects
        self.domains.offer_many(keys, lines, names, ok & (traffic | kinds.enriching) & ~twin)
        verdict = _verdicts(col, kinds)
        values = {
            **{k: col[k] for k in _PASSED},
            **{f"is_{k}": getattr(kinds, k) for k in TRAFFIC},
            "ts": np.where(kinds.flow | kinds.netflow, start, event_ts.ns),
            **{"ts_end": end, "has_end": has_end, "src": src, "dst": dst, "given": given},
            **{"flow_src": flow_src, "flow_dst": flow_dst, "action": verdict},
            **{"flow_key": keys, "dst_domain": names},
        }
        return Checked(verdict, skip, values)


# --- the per-line converter ----------------------------------------------------------------------


def _address(value: Any, label: str) -> str:
    """A required address in canonical form."""
    result = fields.ip(value, label, required=True)
    assert result is not None
    return result


def _flow_key(flow_id: Any) -> str | None:
    if isinstance(flow_id, bool) or flow_id is None:
        return None
    if isinstance(flow_id, int) or (isinstance(flow_id, str) and flow_id.strip().isdecimal()):
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
    notes += [n for n in (fields.ip_note(record.get(k), k) for k in ("src_ip", "dest_ip")) if n]
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
        "app": _app(app),
        "bytes_out": bytes_out,
        "bytes_in": bytes_in,
        "packets_out": packets_out,
        "packets_in": packets_in,
        "observer": _observer(sensor),
        "host_hint": fields.text(record.get("in_iface")),
        "ts_note": "; ".join(notes) or None,
    }


_FLOW_EVENT = re.compile(rb'"event_type"\s*:\s*"flow"')
_FLOW_ID = re.compile(rb'"flow_id"\s*:\s*(?:([0-9]+)|"\s*([0-9]+)\s*")\s*[,}]')
_SCAN_BYTES = 8 << 20


def flow_event_keys(source: Source) -> set[str]:
    """``suricata:<flow_id>`` of every line of ``source`` that is a ``flow`` event, by a scan of
    its bytes (no JSON parse): a line holding ``"event_type":"flow"`` and a decimal ``flow_id``.
    Lines longer than ``--max-line-bytes`` are left out; a read error ends the scan (the reader
    meets it in its turn)."""
    cap = source.limits.max_line_bytes
    keys: set[str] = set()
    try:
        with source.open() as stream:
            for block in _whole_lines(stream, cap):
                for match in _FLOW_EVENT.finditer(block):
                    start = block.rfind(b"\n", 0, match.start()) + 1
                    end = block.find(b"\n", match.end())
                    end = len(block) if end < 0 else end
                    if end - start > cap:
                        continue
                    found = _FLOW_ID.search(block, start, end)
                    if found:
                        keys.add(f"suricata:{int(found.group(1) or found.group(2))}")
    except (OSError, EOFError, pa.ArrowException, InputError):
        pass
    return keys


def _whole_lines(stream: io.BufferedReader, cap: int) -> Iterator[bytes]:
    """Blocks of whole lines read from ``stream`` (a line longer than ``cap`` may be dropped)."""
    rest = b""
    dropping = False  # inside a line already longer than cap: skip to its end
    while block := stream.read(_SCAN_BYTES):
        if dropping:
            end = block.find(b"\n")
            if end < 0:
                continue
            block, dropping = block[end + 1 :], False
        data = rest + block
        cut = data.rfind(b"\n") + 1
        done, rest = data[:cut], data[cut:]
        if len(rest) > cap:
            rest, dropping = b"", True
        if done:
            yield done
    if rest and not dropping:
        yield rest


def _app(app: str | None) -> str | None:
    return None if app in (None, "failed", "unknown") else app.lower()


def _observer(sensor: str | None) -> str:
    return f"suricata/{sensor}" if sensor else "suricata"


# --- the column-wise path ------------------------------------------------------------------------

TEXT = pa.string()
INT = pa.int64()
_FLOW_COUNTERS = ("bytes_toserver", "bytes_toclient", "pkts_toserver", "pkts_toclient")
_NAMED = pa.struct([("rrname", TEXT)])


def _struct(*children: tuple[str, pa.DataType]) -> pa.DataType:
    return pa.struct(list(children))


_FLOW = (
    *(("start", TEXT), ("end", TEXT), ("action", TEXT), ("src_ip", TEXT), ("dest_ip", TEXT)),
    *((key, INT) for key in _FLOW_COUNTERS),
)
_FIELDS = [
    ("event_type", TEXT),
    ("flow_id", INT),
    ("timestamp", TEXT),
    ("src_ip", TEXT),
    ("src_port", INT),
    ("dest_ip", TEXT),
    ("dest_port", INT),
    ("direction", TEXT),
    ("flow", _struct(*_FLOW)),
    ("netflow", _struct(("start", TEXT), ("end", TEXT), ("bytes", INT), ("pkts", INT))),
    ("verdict", _struct(("action", TEXT))),
    ("tls", _struct(("sni", TEXT))),
    ("quic", _struct(("sni", TEXT))),
    ("http", _struct(("hostname", TEXT))),
    (
        "dns",
        _struct(("rrname", TEXT), ("queries", pa.list_(_NAMED)), ("answers", pa.list_(_NAMED))),
    ),
]
SCHEMA = pa.schema(
    [
        *_FIELDS,
        (
            "alert",
            _struct(
                ("action", TEXT), ("signature_id", INT), ("signature", TEXT), ("category", TEXT)
            ),
        ),
        ("drop", _struct(("reason", TEXT))),
        *((key, TEXT) for key in ("proto", "app_proto", "host", "in_iface")),
    ]
)
"""Every field the per-line reader reads. EVE writes numbers as JSON numbers (ports, counters,
``flow_id``, ``signature_id``) and the rest as strings; a line that does otherwise makes pyarrow
refuse its piece, which is then read line by line. Other fields are not parsed."""


@dataclass(frozen=True)
class _Kinds:
    """Which rows are which event types (numpy masks)."""

    alert: np.ndarray
    drop: np.ndarray
    flow: np.ndarray
    netflow: np.ndarray
    enriching: np.ndarray

    @property
    def traffic(self) -> np.ndarray:
        return self.alert | self.drop | self.flow | self.netflow


def _kind(value: str | None) -> Any:
    if fields.is_blank(value):
        return BAD
    assert value is not None
    if value in TRAFFIC:
        return value
    return "enriching" if value in ENRICHING else "other"


def _skip_reason(value: str | None) -> str | None:
    if fields.is_blank(value) or value in TRAFFIC:
        return None
    if value in ENRICHING:
        return f"{value} event used for enrichment"
    return f"{value} event (not traffic)"


def _kinds(event_type: pa.Array, ok: np.ndarray) -> _Kinds:
    """The rows' event types; a blank type clears ``ok`` (the per-line reader rejects it)."""
    kinds = mapped(event_type, _kind, ok)
    masks = {k: _np(pc.equal(kinds, k)) for k in (*TRAFFIC, "enriching")}
    return _Kinds(**masks)


def _addresses(col: dict[str, pa.Array], good: np.ndarray) -> tuple[pa.Array, pa.Array]:
    """Canonical source and destination; ``good`` cleared where either is missing or bad."""
    src = addresses(col["src_ip"], good)
    dst = addresses(col["dest_ip"], good)
    good &= _np(pc.and_(pc.is_valid(src), pc.is_valid(dst)))
    return src, dst


def _span_times(
    col: dict[str, pa.Array], kinds: _Kinds, good: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A flow or netflow event's start and end (ns) and where it has an end; ``good`` cleared
    for those whose start is missing or not a plain zoned ISO time (a note, or a reject), and
    whose end is such or before the start (a note)."""
    start = np.zeros(len(good), dtype=np.int64)
    end = np.zeros(len(good), dtype=np.int64)
    has_end = np.zeros(len(good), dtype=bool)
    for kind, rows in (("flow", kinds.flow), ("netflow", kinds.netflow)):
        if not rows.any():
            continue
        began = iso_ns(col[f"{kind}.start"], rows)
        ended = iso_ns(col[f"{kind}.end"], rows)
        no_end = _np(blank(col[f"{kind}.end"]))
        fine = began.valid & (no_end | (ended.valid & (ended.ns >= began.ns)))
        good &= fine | ~rows
        start = np.where(rows, began.ns, start)
        end = np.where(rows, ended.ns, end)
        has_end |= rows & ~no_end
    return start, end, has_end


def _orientation(
    col: dict[str, pa.Array], good: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, pa.Array, pa.Array]:
    """Where the flow's addresses are both given (not blank), and them in canonical form (null
    when not addresses); ``good`` cleared for ``rows`` where both are given and one is bad."""
    src_ok = np.ones(len(good), dtype=bool)
    dst_ok = np.ones(len(good), dtype=bool)
    flow_src = addresses(col["flow.src_ip"], src_ok)
    flow_dst = addresses(col["flow.dest_ip"], dst_ok)
    # blank gives None, a bad address BAD: either way the value was not blank when not None
    given = (_np(pc.is_valid(flow_src)) | ~src_ok) & (_np(pc.is_valid(flow_dst)) | ~dst_ok)
    good &= ~(rows & given & ~(src_ok & dst_ok))
    return given, flow_src, flow_dst


def _verdicts(col: dict[str, pa.Array], kinds: _Kinds) -> pa.Array:
    """The normalised action of traffic rows (null for the others)."""
    alert_raw = text(col["alert.action"])
    verdict_drop = _np(_is_drop(col["verdict.action"]))
    alert = mapped(alert_raw, lambda v: ALERT_ACTIONS.get((v or "").lower(), "unknown"), fill=True)
    flow_drop = _np(_is_drop(col["flow.action"]))
    out = np.full(len(verdict_drop), None, dtype=object)
    out[kinds.alert] = np.asarray(alert.to_numpy(zero_copy_only=False), dtype=object)[kinds.alert]
    out[kinds.alert & verdict_drop] = "denied"
    out[kinds.drop] = "denied"
    out[kinds.flow] = "allowed"
    out[kinds.flow & flow_drop] = "denied"
    out[kinds.netflow] = "allowed"
    return pa.array(out, TEXT)


def _is_drop(values: pa.Array) -> pa.Array:
    return mapped(values, lambda v: (fields.text(v) or "").lower() == "drop", type=pa.bool_())


def _flow_keys(flow_id: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise("suricata:", pc.cast(flow_id, TEXT), "")


def _domains(col: dict[str, pa.Array]) -> pa.Array:
    """``_app_layer_domain`` of each row."""
    found = [
        mapped(col[key], _domain) for key in ("tls.sni", "quic.sni", "http.hostname", "dns.rrname")
    ]
    found += [
        first_of_lists(col[f"dns.{key}"], "rrname", _domain) for key in ("queries", "answers")
    ]
    return pc.coalesce(*found)


_PASSED = (
    *("src_port", "dest_port", "direction", "proto", "app_proto", "host", "in_iface"),
    *("alert.action", "alert.signature_id", "alert.signature", "alert.category"),
    *("verdict.action", "drop.reason", "flow.action", "netflow.bytes", "netflow.pkts"),
    *(f"flow.{key}" for key in _FLOW_COUNTERS),
)
"""The columns ``_normalise`` reads as they were parsed."""


def _normalise(col: Values, lines: np.ndarray, source: Source) -> pa.Table:
    """Checked traffic rows as ``network_events`` rows (``_convert``'s values)."""
    n = len(lines)
    alert, drop, flow, netflow = (col[f"is_{k}"] for k in TRAFFIC)
    pointed = alert | drop
    src, dst, sport, dport = col["src"], col["dst"], col["src_port"], col["dest_port"]
    # the initiator as the source: by the flow's addresses when both are given, else direction
    same_flow = pc.and_(pc.equal(col["flow_src"], dst), pc.equal(col["flow_dst"], src))
    to_client = _np(pc.equal(col["direction"], "to_client"))
    swap = pa.array(pointed & np.where(col["given"], _np(same_flow), to_client))
    alert_raw = text(col["alert.action"])
    dropped_alert = mapped(
        alert_raw,
        lambda v: v if (v or "").lower() == "blocked" else f"{v or 'no action'} (verdict drop)",
        fill=True,
    )
    drop_raw = mapped(
        col["drop.reason"],
        lambda v: f"drop ({r})" if (r := fields.text(v)) else "drop",
        fill=True,
    )
    raw = _pick(
        n,
        (alert & _np(_is_drop(col["verdict.action"])), dropped_alert),
        (alert, alert_raw),
        (drop, drop_raw),
        (flow, text(col["flow.action"])),
    )
    both = pa.array(flow | pointed)
    counters = {k: pc.if_else(both, col[f"flow.{k}"], NULL_INT) for k in _FLOW_COUNTERS}
    net = pa.array(netflow)
    values: dict[str, Any] = {
        "ts": pa.array(col["ts"], INT),
        "ts_end": pa.array(col["ts_end"], INT, mask=~col["has_end"]),
        "src_ip": pc.if_else(swap, dst, src),
        "src_port": pc.if_else(swap, dport, sport),
        "dst_ip": pc.if_else(swap, src, dst),
        "dst_port": pc.if_else(swap, sport, dport),
        "protocol": mapped(col["proto"], fields.protocol),
        "direction": constant("unknown", n),
        "action": col["action"],
        "action_raw": raw,
        "rule": _only(pointed, text(pc.cast(col["alert.signature_id"], TEXT))),
        "signature": _only(pointed, text(col["alert.signature"])),
        "category": _only(pointed, text(col["alert.category"])),
        "dst_domain": col["dst_domain"],
        "app": mapped(col["app_proto"], lambda v: _app(fields.text(v))),
        "bytes_out": pc.if_else(net, col["netflow.bytes"], counters["bytes_toserver"]),
        "bytes_in": counters["bytes_toclient"],
        "packets_out": pc.if_else(net, col["netflow.pkts"], counters["pkts_toserver"]),
        "packets_in": counters["pkts_toclient"],
        "observer": mapped(col["host"], lambda v: _observer(fields.text(v)), fill=True),
        "host_hint": text(col["in_iface"]),
        "flow_key": col["flow_key"],
        "source_format": constant(name, n),
        "source_path": constant(source.display, n),
        "source_line": pa.array(lines, INT),
    }
    return table_of(values, n)


def _only(rows: np.ndarray, values: pa.Array) -> pa.Array:
    return pc.if_else(pa.array(rows), values, NULL_TEXT)


def _pick(n: int, *choices: tuple[np.ndarray, pa.Array]) -> pa.Array:
    """Per row, the value of the first choice whose mask is set (null when none is)."""
    out = pa.nulls(n, TEXT)
    for rows, values in reversed(choices):
        out = pc.if_else(pa.array(rows), values, out)
    return out


def _np(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean column as a numpy mask (null is False)."""
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)


# --- generic column-wise helpers (candidates for columnar.py) -------------------------------------


Values = dict[str, Any]
"""Columns of a run's rows by name: ``pa.Array`` or numpy arrays, all of the same length."""


class Checked(NamedTuple):
    """What a ``Columns.check`` gives for a run: the rows' normalised verdicts; a reason per row
    to count it as skipped (null: not skipped), or None when no row is; and the columns it
    read and computed, which ``normalise`` is given (for the kept rows) to make the output."""

    verdict: pa.Array
    skip: pa.Array | None
    values: Values


@dataclass(frozen=True)
class Columns:
    """``columnar.JsonLines`` with one schema and three more things: ``check`` is given the rows'
    line numbers (for state kept across lines in line order, such as the name a flow's first
    event gives); it may count rows as skipped column-wise (events the per-line reader skips by
    their type); and what it computed (times, addresses) is handed to ``normalise`` instead of
    being computed again. Runs are parsed once: for EVE-like records the fields that decide a
    row are nearly all it reads, and a second parse of the kept rows cost more than it saved."""

    schema: pa.Schema
    check: Callable[[pa.Table, np.ndarray, np.ndarray], Checked]
    """``(table, ok, lines)``: clears ``ok`` for rows the per-line reader must read."""
    normalise: Callable[[Values, np.ndarray, Source], pa.Table]
    """The check's values of the checked, kept rows to rows of the output, given their lines."""
    per_line: Callable[[int, bytes, FileLoad], None]
    output: pa.Schema = NETWORK_EVENTS


def read_columns(load: FileLoad, spec: Columns, *, fast: bool = True) -> None:
    """Every line of ``load.source`` into ``load``, column-wise where ``fast`` (as
    ``columnar.read_json_lines``). The next runs are cut and parsed in a second thread
    (``blocks.ahead``) while this one is checked; runs are still taken in line order, and an
    error cutting the file (``--max-line-bytes``) is raised after the runs before it are read."""

    def parsed() -> Iterator[tuple[int, bytes, int, list[Piece] | None]]:
        for first, blob, count in line_runs(load.source, b"{", b"}"):
            if count == 0 or not fast:
                yield first, blob, count, None
            else:
                yield first, blob, count, _pieces(blob, first, count, spec.schema)

    runs = ahead(parsed(), name)
    try:
        for first, blob, count, pieces in runs:
            if pieces is None:
                for line, raw in numbered_lines(first, blob, count):
                    spec.per_line(line, raw, load)
                continue
            for at, piece, _, table in pieces:
                if table is None:
                    for line, raw in numbered_lines(at, piece):
                        spec.per_line(line, raw, load)
                else:
                    _checked(table, at, piece, load, spec)
    finally:
        runs.close()


Piece = tuple[int, bytes, int, "pa.Table | None"]


def _pieces(blob: bytes, first: int, count: int, schema: pa.Schema) -> list[Piece]:
    return list(json_pieces(blob, first, count, schema))


def _checked(table: pa.Table, first: int, blob: bytes, load: FileLoad, spec: Columns) -> None:
    """A parsed run: skipped rows counted, loaded rows counted and the kept ones normalised,
    the rest line by line, merged in line order (``columnar._checked`` plus skips)."""
    n = table.num_rows
    lines = np.arange(first, first + n, dtype=np.int64)
    starts, ends = line_spans(blob)
    ok = np.ones(n, dtype=bool)
    ok &= ~beyond_python(blob, starts, ends)  # nested too deep or a number too long for json
    verdict, reasons, values = spec.check(table, ok, lines)
    skipped = ok & _np(pc.is_valid(reasons)) if reasons is not None else np.zeros(n, dtype=bool)
    loads = ok & ~skipped
    keep = loads.copy()
    keeper, policy = load.keeper, load.options.keep
    if keeper is not None and policy is not None:
        violation = _np(pc.is_in(verdict, value_set=pa.array(list(policy.actions))))
        sampled = line_hashes(load.source.display, lines) <= keeper.bound(load.name)
        keep &= violation | sampled
    kept = np.flatnonzero(keep)
    full = None
    if len(kept):
        if len(kept) < n:
            chosen = pa.array(keep)
            values = {
                k: v[keep] if isinstance(v, np.ndarray) else v.filter(chosen)
                for k, v in values.items()
            }
        full = spec.normalise(values, lines[kept], load.source)
    bad = np.flatnonzero(~ok)
    first_good = int(np.argmax(loads)) if loads.any() else n
    side = load.apart()

    def per_line(indices: np.ndarray) -> None:
        for i in indices.tolist():
            spec.per_line(first + i, blob[starts[i] : ends[i]].rstrip(b"\r"), side)

    # refused rows before the first loaded one first: the early stop sees them in line order
    per_line(bad[bad < first_good])
    if reasons is not None and skipped.any():
        counts = pc.value_counts(reasons.filter(pa.array(skipped)))
        for reason, count in zip(
            counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True
        ):
            load.skip(reason, count)
    loaded = int(loads.sum())
    load.count_loaded(loaded)
    per_line(bad[bad >= first_good])
    parts = [t for t in (full, side.rows.table()) if t is not None and t.num_rows]
    if not parts:
        load.keep_rows(spec.output.empty_table(), unkept=loaded)
        return
    merged = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
    if len(parts) > 1:
        merged = merged.sort_by([("source_line", "ascending")])
    load.keep_rows(merged, unkept=loaded - (0 if full is None else full.num_rows))


_IPV4 = r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$"
"""A dotted quad already in canonical form (no leading zeros): ``fields.ip`` gives it back."""


def addresses(values: pa.Array, good: np.ndarray | None = None) -> pa.Array:
    """``fields.ip`` of each value (blank: null); ``good`` cleared where it refuses one.

    Canonical dotted quads are taken as they are; only other spellings (IPv6, spaces, leading
    zeros, garbage) are converted one distinct value at a time."""
    plain = pc.fill_null(pc.match_substring_regex(values, _IPV4), False)
    if pc.all(plain).as_py() is not False:
        return values
    rest = mapped(pc.if_else(plain, NULL_TEXT, values), ip_or_bad, good)
    return pc.if_else(plain, values, rest)


@dataclass(frozen=True)
class Times:
    """Times read column-wise: ns since the epoch, and where they were read."""

    ns: np.ndarray
    valid: np.ndarray


class Leaves(dict[str, pa.Array]):
    """The columns of a parsed table at every depth by path (``event.netflow.start``), each
    combined into one array when first asked for."""

    def __init__(self, table: pa.Table) -> None:
        super().__init__()
        self.table = table

    def __missing__(self, path: str) -> pa.Array:
        parent, _, child = path.rpartition(".")
        if parent:
            column = pc.struct_field(self[parent], child)
        else:
            column = self.table.column(path).combine_chunks()
        self[path] = column
        return column


_YEAR = r"(?:16(?:7[89]|[89][0-9])|1[7-9][0-9]{2}|2[01][0-9]{2}|22[0-5][0-9]|226[01])"
_LEAP_YEAR = (
    r"(?:16(?:8[048]|9[26])|(?:1[7-9]|2[01])(?:0[48]|[2468][048]|[13579][26])|2000"
    r"|22(?:0[48]|1[26]|2[048]|3[26]|4[048]|5[26]|60))"
)
_MONTH_DAY = (
    r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    r"|02-(?:0[1-9]|1[0-9]|2[0-8]))"
)
_ISO = (
    rf"^(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(?:\.[0-9]{1,9})?(?:Z|[+-](?:[01][0-9]|2[0-3]):?[0-5][0-9])$"
)
"""A valid time ``parse_iso`` reads without a note, of the years 1678-2261 (in range for ns
whatever the offset): date, ``T``, time, 1-9 fraction digits, ``Z`` or a numeric offset."""


def iso_ns(values: pa.Array, rows: np.ndarray | None = None) -> Times:
    """``timeparse.parse_iso`` of each value (of ``rows`` only, when given) where it is plain
    (``_ISO``: Arrow's ISO 8601 cast reads those exactly as ``parse_iso`` does); anything else
    (naive, other spellings, blank, invalid) is not read: the per-line reader decides."""
    n = len(values)
    ns = np.zeros(n, dtype=np.int64)
    valid = _np(pc.match_substring_regex(values, _ISO))
    if rows is not None:
        valid &= rows
    if valid.any():
        try:
            stamps = pc.cast(values.filter(pa.array(valid)), pa.timestamp("ns", "UTC"))
        except pa.ArrowInvalid:  # not expected: the per-line reader decides
            valid[:] = False
        else:
            ns[valid] = stamps.cast(INT).to_numpy()
    return Times(ns, valid)


def in_range(values: pa.Array, low: int, high: int | None = None) -> np.ndarray:
    """Null, or an integer from ``low`` to ``high`` (what ``fields.integer`` accepts as is)."""
    fine = pc.greater_equal(values, low)
    if high is not None:
        fine = pc.and_(fine, pc.less_equal(values, high))
    return _np(pc.or_kleene(pc.is_null(values), fine))


def first_of_lists(lists: pa.Array, child: str, convert: Callable[[Any], Any]) -> pa.Array:
    """Per row, the first non-null ``convert(item[child])`` of a list of objects (null if none)."""
    n = len(lists)
    flat = pc.list_flatten(lists)
    if len(flat) == 0:
        return pa.nulls(n, TEXT)
    parents = np.asarray(pc.list_parent_indices(lists).to_numpy(zero_copy_only=False))
    found = mapped(pc.struct_field(flat, child), convert)
    where = np.flatnonzero(_np(pc.is_valid(found)))
    rows, first = np.unique(parents[where], return_index=True)
    out = np.full(n, None, dtype=object)
    out[rows] = np.asarray(found.take(pa.array(where[first])).to_pylist(), dtype=object)
    return pa.array(out, TEXT)


class FirstByLine:
    """Per key, the value offered by the earliest line: what a per-line reader keeps with
    ``setdefault`` in line order, whatever order the lines are offered in. Offers are kept in
    columns and reduced to one per key now and then (memory grows with the keys)."""

    COMPACT_ROWS = 1 << 20

    def __init__(self) -> None:
        self._parts: list[pa.Table] = []
        self._pending = 0
        self._one: list[tuple[str, int, str]] = []

    def offer(self, key: str, line: int, value: str) -> None:
        self._one.append((key, line, value))
        if len(self._one) >= 4096:
            self._add(self._table_of_ones())

    def offer_many(
        self, keys: pa.Array, lines: np.ndarray, values: pa.Array, rows: np.ndarray
    ) -> None:
        """Rows ``rows`` (a mask) of a run; those with a key and a value."""
        rows = rows & _np(pc.and_(pc.is_valid(keys), pc.is_valid(values)))
        if rows.any():
            where = pa.array(np.flatnonzero(rows))
            columns = [keys.take(where), pa.array(lines[rows], INT), values.take(where)]
            self._add(_first_per_key(pa.table(columns, names=["key", "line", "value"])))

    def _table_of_ones(self) -> pa.Table:
        keys, lines, values = zip(*self._one, strict=True) if self._one else ((), (), ())
        self._one = []
        columns = [pa.array(keys, TEXT), pa.array(lines, INT), pa.array(values, TEXT)]
        return pa.table(columns, names=["key", "line", "value"])

    def _add(self, table: pa.Table) -> None:
        self._parts.append(table)
        self._pending += table.num_rows
        if self._pending >= self.COMPACT_ROWS:
            self._compact()

    def _compact(self) -> pa.Table:
        if self._one:
            self._parts.append(self._table_of_ones())
        if not self._parts:
            return pa.table([pa.array([], t) for t in (TEXT, INT, TEXT)], ["key", "line", "value"])
        whole = pa.concat_tables(self._parts).combine_chunks()
        whole = _first_per_key(whole.sort_by([("line", "ascending")]))
        self._parts, self._pending = [whole], 0
        return whole

    def fill(
        self, table: pa.Table, key: str = "flow_key", column: str = "dst_domain"
    ) -> tuple[pa.Table, int]:
        """``table`` with null ``column`` values filled by their ``key``'s value; how many."""
        found = self._compact()
        if not found.num_rows or not table.num_rows:
            return table, 0
        current = table.column(column).combine_chunks()
        where = pc.index_in(table.column(key).combine_chunks(), value_set=found.column("key"))
        taken = pc.take(found.column("value"), where)
        filled = int(_np(pc.and_(pc.is_null(current), pc.is_valid(taken))).sum())
        if not filled:
            return table, 0
        index = table.schema.get_field_index(column)
        return table.set_column(index, column, pc.coalesce(current, taken)), filled


def _first_per_key(table: pa.Table) -> pa.Table:
    """The first row of each key (rows in line order)."""
    encoded = pc.dictionary_encode(table.column("key").combine_chunks())
    codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False))
    _, first = np.unique(codes, return_index=True)
    return table if len(first) == table.num_rows else table.take(pa.array(np.sort(first)))
