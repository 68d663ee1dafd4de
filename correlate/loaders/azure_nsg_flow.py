"""Azure Network Watcher flow logs: NSG flow logs (v1, v2) and VNet flow logs (v4), as JSON.

The blob ``PT1H.json`` holds one document ``{"records": [...]}``; a file of such documents, a
JSON array of records, or one bare record per line (an Event Hub or diagnostic-settings dump)
reads the same. One normalised row per flow tuple (``stats.unit = "tuples"``).

Field mapping, per the Azure docs (MicrosoftDocs/azure-docs ``articles/network-watcher/``
``nsg-flow-logs-overview.md`` "Log format" @ 03464f2b and ``vnet-flow-logs-overview.md`` "Log
format" @ 010d565d, both read for this module; CC BY 4.0):

* NSG v1/v2 record: ``time``, ``category`` ``NetworkSecurityGroupFlowEvent``, ``resourceId`` (the
  NSG; the docs' property list spells it ``resourceid``: both are read), ``properties.Version``,
  ``properties.flows[].rule`` -> ``.flows[].mac`` -> ``.flowTuples[]``. Tuple
  ``ts,src,dst,sport,dport,proto(T|U),dir(I|O),decision(A|D)`` (v1, 8 fields), plus
  ``state(B|C|E),pkts_s2d,bytes_s2d,pkts_d2s,bytes_d2s`` (v2, 13 fields; B leaves them empty).
* VNet v4 record: ``time``, ``flowLogVersion`` 4, ``category`` ``FlowLogFlowEvent``,
  ``macAddress``, ``targetResourceID``, ``flowRecords.flows[].aclID`` -> ``.flowGroups[].rule`` ->
  ``.flowTuples[]``. Tuple ``ts,src,dst,sport,dport,proto(IANA number),dir(I|O),
  state(B|C|E|D),encryption,pkts_s2d,bytes_s2d,pkts_d2s,bytes_d2s``; no decision field.

Normalisation:

* ``ts`` = the tuple's own time ("when the flow occurred"), not the record ``time`` (when it was
  logged). The docs say only "UNIX epoch"; NSG samples use seconds, the v4 sample 13-digit
  milliseconds, the v4 bandwidth example seconds. The unit is taken by magnitude; a note is set
  when it is not the documented sample's unit (s for v1/v2, ms for v4).
* ``action``: NSG decision A -> allowed, D -> denied; v4 state D -> denied, B/C/E -> allowed, and
  an encryption status the docs say drops the packet (``NX_SW_NOT_READY``, ``NX_NOT_ACCEPTED``,
  ``NX_NOT_SUPPORTED``) -> denied. ``action_raw`` = the decision (v1/v2) or state (v4) letter,
  ``"<state>/<encryption>"`` for an encryption drop.
* ``direction``: I -> inbound, O -> outbound (relative to the NIC); protocol T/U -> tcp/udp,
  numbers -> names.
* Counters are the NIC's view: ``bytes_out``/``packets_out`` are what the VM sent (s2d for an O
  tuple, d2s for an I tuple). C and E tuples carry deltas since the previous tuple of the flow.
* ``rule`` = the rule name; ``host_hint`` = the NIC's MAC as ``00:0d:3a:f8:78:56``; ``observer``
  = ``azure-nsg/<NSG name>`` (v1/v2, from the resource id) or ``azure-vnet-flow/<target name>``
  (v4, from ``targetResourceID``). The v4 ``aclID`` is not kept.
* ``source_line``: the record's 1-based index in ``records`` when the file is one document (a
  ``PT1H.json`` blob); otherwise the JSON line (or array item) of the record's document. Rejects
  name the record, the rule and the tuple's 1-based index.

Records of another ``category`` (NSG event or rule-counter logs share the layout) are skipped,
one count per record. A record that cannot be walked counts as one rejected item. No
``--option`` keys.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from ..schema import NETWORK_EVENTS
from ..sources import Source, iter_lines
from ..timeparse import TimeParseError, parse_epoch
from . import fields
from .base import Batcher, LoadOptions, LoadResult, LoadStats, RejectSink
from .records import first_line, json_documents

name = "azure_nsg_flow"
kind = "network"
description = "Azure NSG flow logs (v1/v2) and VNet flow logs (v4), {records: [...]} JSON"

FLOW_CATEGORIES = ("NetworkSecurityGroupFlowEvent", "FlowLogFlowEvent")
DIRECTIONS = {"I": "inbound", "O": "outbound"}
DECISIONS = {"A": "allowed", "D": "denied"}
NSG_STATES = ("B", "C", "E")
VNET_STATES = {"B": "allowed", "C": "allowed", "E": "allowed", "D": "denied"}
ENCRYPTION_DROPS = ("NX_SW_NOT_READY", "NX_NOT_ACCEPTED", "NX_NOT_SUPPORTED")
NSG_PROTOCOLS = {"T": "tcp", "U": "udp"}
_MAC_RE = re.compile(r"^[0-9A-Fa-f]{12}$")
_CATEGORY_MARKERS = tuple(f'"{c}"'.encode() for c in FLOW_CATEGORIES)


def sniff(head: bytes, filename: str) -> float:
    """Score: JSON holding ``flowTuples`` strings, sure when a flow-log category is named."""
    sample = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not sample.startswith((b"{", b"[")):
        return 0.0
    tuples = b'"flowTuples"' in sample
    category = any(marker in sample for marker in _CATEGORY_MARKERS)
    if tuples and category:
        return 0.95
    if tuples and (b'"macAddress"' in sample or b'"mac"' in sample):
        return 0.9
    if category and (b'"flowRecords"' in sample or b'"properties"' in sample):
        return 0.8
    return 0.6 if tuples else 0.0


class _Group:
    """One list of tuples with what its enclosing objects say about them."""

    __slots__ = ("layout", "mac", "observer", "rule", "tuples")

    def __init__(self, layout: str, rule: str | None, mac: Any, observer: str, tuples: Any):
        self.layout = layout
        self.rule = rule
        self.mac = mac
        self.observer = observer
        self.tuples = tuples


def read(source: Source, options: LoadOptions) -> LoadResult:
    """Read one flow-log file into ``network_events`` rows, one per flow tuple."""
    stats = LoadStats(path=source.display, format=name, kind=kind, unit="tuples")
    sink = RejectSink(source, stats, options.strict)
    batch = Batcher(NETWORK_EVENTS)
    single = _one_document(source)
    for line, document, raw in json_documents(source, stats, sink):
        records = document.get("records")
        if isinstance(records, list):
            items = list(enumerate(records, start=1))
            by_index = single
        elif _looks_like_record(document):
            items = [(1, document)]
            by_index = False
        else:
            stats.read += 1
            sink.reject(line, "not an Azure flow log document: no records list and no flows", raw)
            continue
        for index, record in items:
            row_line = index if by_index else line
            _read_record(record, index, row_line, source, options, stats, sink, batch)
    return LoadResult(kind=kind, table=batch.table(), stats=stats, rejects=sink.rejects)


def _one_document(source: Source) -> bool:
    """True when the file is a single JSON object (a blob), as ``json_documents`` will read it.

    A pretty-printed object is one document; an array or several JSON lines are not; a file of
    JSON lines is one document only when it has a single non-blank line (a minified blob).
    """
    first = first_line(source.head())
    try:
        parsed = json.loads(first)
    except (ValueError, RecursionError):
        return first.startswith(b"{")
    if not isinstance(parsed, dict):
        return False
    seen = 0
    for _, raw in iter_lines(source):
        if raw.strip():
            seen += 1
            if seen > 1:
                return False
    return True


def _looks_like_record(document: dict[str, Any]) -> bool:
    return isinstance(document.get("properties"), dict) or isinstance(
        document.get("flowRecords"), dict
    )


def _raw(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value


def _read_record(
    record: Any,
    index: int,
    line: int,
    source: Source,
    options: LoadOptions,
    stats: LoadStats,
    sink: RejectSink,
    batch: Batcher,
) -> None:
    """Walk one record's flows and add a row per tuple (or reject / skip what does not fit)."""
    if not isinstance(record, dict):
        stats.read += 1
        sink.reject(
            line,
            f"record {index}: not a JSON object but a JSON {type(record).__name__}",
            _raw(record),
        )
        return
    category = record.get("category")
    if isinstance(category, str) and category not in FLOW_CATEGORIES:
        stats.read += 1
        stats.skipped[f"not a flow log record (category {category[:60]})"] += 1
        return
    try:
        groups = list(_groups(record))
    except fields.RowError as exc:
        stats.read += 1
        sink.reject(line, f"record {index}: {exc}", _raw(record))
        return
    for group in groups:
        where = f"record {index}, rule {group.rule!r}"
        if not isinstance(group.tuples, list):
            stats.read += 1
            sink.reject(line, f"{where}: flowTuples is not a list", _raw(group.tuples))
            continue
        for number, text in enumerate(group.tuples, start=1):
            stats.read += 1
            try:
                row = _convert(text, group, options)
            except fields.RowError as exc:
                sink.reject(line, f"{where}, tuple {number}: {exc}", _raw(text))
                continue
            row["source_format"] = name
            row["source_path"] = source.display
            row["source_line"] = line
            batch.add(row)
            stats.loaded += 1
            if row["ts_note"]:
                stats.notes[row["ts_note"]] += 1


def _groups(record: dict[str, Any]) -> Iterator[_Group]:
    """The tuple lists of an NSG (v1/v2) or VNet (v4) record; RowError when the shape is wrong."""
    flow_records = record.get("flowRecords")
    properties = record.get("properties")
    if isinstance(flow_records, dict):
        observer = _observer("azure-vnet-flow", record.get("targetResourceID"))
        mac = record.get("macAddress")
        for flow in _list(flow_records.get("flows"), "flowRecords.flows"):
            for group in _list(
                _object(flow, "flowRecords.flows[]").get("flowGroups"), "flowGroups"
            ):
                group = _object(group, "flowGroups[]")
                yield _Group(
                    "v4", fields.text(group.get("rule")), mac, observer, group.get("flowTuples")
                )
    elif isinstance(properties, dict):
        resource = record.get("resourceId", record.get("resourceid"))
        observer = _observer("azure-nsg", resource)
        for entry in _list(properties.get("flows"), "properties.flows"):
            entry = _object(entry, "properties.flows[]")
            rule = fields.text(entry.get("rule"))
            for flow in _list(entry.get("flows"), "properties.flows[].flows"):
                flow = _object(flow, "properties.flows[].flows[]")
                yield _Group("nsg", rule, flow.get("mac"), observer, flow.get("flowTuples"))
    elif isinstance(record.get("records"), list):
        raise fields.RowError(
            "holds a nested records list instead of flows (not a flow record; not read twice)"
        )
    else:
        raise fields.RowError("neither properties.flows (NSG) nor flowRecords.flows (VNet)")


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise fields.RowError(f"{what} is not a list")
    return value


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fields.RowError(f"{what} is not an object")
    return value


def _observer(prefix: str, resource: Any) -> str:
    """``prefix/<last segment of the Azure resource id>``, or the prefix alone."""
    text = fields.text(resource)
    if not text:
        return prefix
    return f"{prefix}/{text.rstrip('/').rsplit('/', 1)[-1]}"


def mac_address(value: Any) -> str | None:
    """A MAC as Azure writes it (``000D3AF87856``) in colon form (``00:0d:3a:f8:78:56``)."""
    text = fields.text(value)
    if text is None:
        return None
    digits = text.replace("-", "").replace(":", "")
    if not _MAC_RE.match(digits):
        return text
    digits = digits.lower()
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def _convert(text: Any, group: _Group, options: LoadOptions) -> dict[str, Any]:
    """One tuple string to a ``network_events`` row (without provenance)."""
    if not isinstance(text, str):
        raise fields.RowError(f"not a string but a JSON {type(text).__name__}")
    parts = [p.strip() for p in text.split(",")]
    if group.layout == "v4":
        if len(parts) != 13:
            raise fields.RowError(f"{len(parts)} fields where VNet (v4) tuples have 13")
        expected = "ms"
    else:
        if len(parts) not in (8, 13):
            raise fields.RowError(f"{len(parts)} fields where NSG tuples have 8 (v1) or 13 (v2)")
        expected = "s"
    if not parts[0]:
        raise fields.RowError("no timestamp")
    try:
        ts, note = parse_epoch(parts[0], unit=options.epoch_unit, expected=expected)
    except TimeParseError as exc:
        raise fields.RowError(f"timestamp: {exc}") from None
    direction = DIRECTIONS.get(parts[6])
    if direction is None:
        raise fields.RowError(f"direction {parts[6]!r} is not I or O")
    if group.layout == "v4":
        state, encryption = parts[7], parts[8]
        action = VNET_STATES.get(state)
        if action is None:
            raise fields.RowError(f"flow state {state!r} is not B, C, E or D")
        action_raw = state
        if encryption in ENCRYPTION_DROPS:
            action, action_raw = "denied", f"{state}/{encryption}"
    else:
        decision = parts[7]
        action = DECISIONS.get(decision)
        if action is None:
            raise fields.RowError(f"decision {decision!r} is not A or D")
        action_raw = decision
        if len(parts) == 13 and parts[8] not in NSG_STATES:
            raise fields.RowError(f"flow state {parts[8]!r} is not B, C or E")
    counts = [None] * 4 if len(parts) == 8 else _counters(parts[9:13])
    sent, received = (
        (counts[0:2], counts[2:4]) if direction == "outbound" else (counts[2:4], counts[0:2])
    )
    proto = parts[5]
    return {
        "ts": ts,
        "ts_end": None,
        "src_ip": fields.ip(parts[1], "source IP", required=True),
        "src_port": fields.port(parts[3], "source port"),
        "src_nat_ip": None,
        "dst_ip": fields.ip(parts[2], "destination IP", required=True),
        "dst_port": fields.port(parts[4], "destination port"),
        "protocol": NSG_PROTOCOLS.get(proto.upper()) or fields.protocol(proto),
        "direction": direction,
        "action": action,
        "action_raw": action_raw,
        "rule": group.rule,
        "signature": None,
        "category": None,
        "dst_domain": None,
        "app": None,
        "packets_out": sent[0],
        "bytes_out": sent[1],
        "packets_in": received[0],
        "bytes_in": received[1],
        "observer": group.observer,
        "host_hint": mac_address(group.mac),
        "flow_key": None,
        "ts_note": note,
    }


def _counters(values: list[str]) -> list[int | None]:
    names = ("packets sent", "bytes sent", "packets received", "bytes received")
    return [fields.counter(v, n) for v, n in zip(values, names, strict=True)]
