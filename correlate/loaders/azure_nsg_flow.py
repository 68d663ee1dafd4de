"""Azure Network Watcher flow logs: NSG flow logs (v1, v2) and VNet flow logs (v4), as JSON.

A ``PT1H.json`` blob (``{"records": [...]}``), a file of such documents, a JSON array of records
or one record per line. One row per flow tuple (``stats.unit = "tuples"``).

Mapping: ``ts`` = the tuple's own time (unit by magnitude; noted when it is not the documented
sample's: s for v1/v2, ms for v4); NSG decision A -> allowed, D -> denied; v4 state D or an
encryption status that drops the packet -> denied, else allowed; I/O -> inbound/outbound
(relative to the NIC); counters are the NIC's view (``*_out`` = what the VM sent); ``rule`` = the
rule name; ``host_hint`` = the NIC's MAC; ``observer`` = ``azure-nsg/<NSG>`` or
``azure-vnet-flow/<target>``. ``source_line`` = the record's index in a blob, else its line.
Records of another ``category`` are skipped. Large documents' tuples are converted column-wise
(property-tested against the tuple-by-tuple reader). No ``--option`` keys. Field reference and
sources: ``tests/data/azure_nsg_flow/README.md``.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..schema import NETWORK_EVENTS
from ..sources import Source, iter_lines
from ..timeparse import NS_PER_UNIT, TimeParseError, parse_epoch
from . import fields
from .base import FileLoad, LoadOptions, LoadResult
from .columnar import NULL_INT, NULL_TEXT, constant, mapped, plain_int, table_of
from .records import first_line, json_documents
from .suricata_eve import addresses

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
    load = FileLoad(source, options, name, kind, NETWORK_EVENTS, unit="tuples")
    single = _one_document(source)
    for line, document, raw in json_documents(source, load.stats, load.sink):
        records = document.get("records")
        if isinstance(records, list):
            items = list(enumerate(records, start=1))
            by_index = single
        elif _looks_like_record(document):
            items = [(1, document)]
            by_index = False
        else:
            load.reject(line, "not an Azure flow log document: no records list and no flows", raw)
            continue
        lines = [index if by_index else line for index, _ in items]
        if not _read_columns(items, lines, load):
            for (index, record), row_line in zip(items, lines, strict=True):
                _read_record(record, index, row_line, load)
    return load.result()


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


def _read_record(record: Any, index: int, line: int, load: FileLoad) -> None:
    """Walk one record's flows and emit a row per tuple (or reject / skip what does not fit)."""
    if not isinstance(record, dict):
        kind_of = type(record).__name__
        load.reject(line, f"record {index}: not a JSON object but a JSON {kind_of}", _raw(record))
        return
    category = record.get("category")
    if isinstance(category, str) and category not in FLOW_CATEGORIES:
        load.skip(f"not a flow log record (category {category[:60]})")
        return
    try:
        groups = list(_groups(record))
    except fields.RowError as exc:
        load.reject(line, f"record {index}: {exc}", _raw(record))
        return
    for group in groups:
        where = f"record {index}, rule {group.rule!r}"
        if not isinstance(group.tuples, list):
            load.reject(line, f"{where}: flowTuples is not a list", _raw(group.tuples))
            continue
        for number, text in enumerate(group.tuples, start=1):
            try:
                row = _convert(text, group, load.options)
            except fields.RowError as exc:
                load.reject(line, f"{where}, tuple {number}: {exc}", _raw(text))
                continue
            load.emit(row, line)


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


# --- the column-wise tuple path ------------------------------------------------------------------

TUPLES_COLUMN_WISE = 64
"""Documents with fewer tuples (a record per line) are read tuple by tuple."""

TEXT = pa.string()
INT = pa.int64()


@dataclass
class _Tuples:
    """A group's tuples in the document's order: where they start among all tuples."""

    line: int
    where: str
    group: _Group
    start: int
    count: int


Step = tuple[str, int, str, Any] | _Tuples
"""What the tuple-by-tuple reader does next: ``("reject", line, reason, raw)``,
``("skip", 0, reason, None)``, or a group's tuples."""


def _walk(items: list[tuple[int, Any]], lines: list[int]) -> tuple[list[Step], list[Any]]:
    """``_read_record``'s walk without converting tuples: its steps, and every tuple in order."""
    steps: list[Step] = []
    texts: list[Any] = []
    for (index, record), line in zip(items, lines, strict=True):
        if not isinstance(record, dict):
            reason = f"record {index}: not a JSON object but a JSON {type(record).__name__}"
            steps.append(("reject", line, reason, _raw(record)))
            continue
        category = record.get("category")
        if isinstance(category, str) and category not in FLOW_CATEGORIES:
            steps.append(("skip", 0, f"not a flow log record (category {category[:60]})", None))
            continue
        try:
            groups = list(_groups(record))
        except fields.RowError as exc:
            steps.append(("reject", line, f"record {index}: {exc}", _raw(record)))
            continue
        for group in groups:
            where = f"record {index}, rule {group.rule!r}"
            if not isinstance(group.tuples, list):
                reason = f"{where}: flowTuples is not a list"
                steps.append(("reject", line, reason, _raw(group.tuples)))
                continue
            steps.append(_Tuples(line, where, group, len(texts), len(group.tuples)))
            texts.extend(group.tuples)
    return steps, texts


def _read_columns(items: list[tuple[int, Any]], lines: list[int], load: FileLoad) -> bool:
    """One document's records, their tuples converted column-wise; False (nothing read) when
    it has too few tuples, or a tuple the vectorised checks refuse converts alone after all."""
    unit = load.options.epoch_unit
    if unit != "auto" and unit not in NS_PER_UNIT:
        return False  # the tuple-by-tuple reader says why
    steps, texts = _walk(items, lines)
    if len(texts) < TUPLES_COLUMN_WISE:
        return False
    runs = [s for s in steps if isinstance(s, _Tuples)]
    group_of = np.repeat(np.arange(len(runs)), [r.count for r in runs])
    table, good = _convert_columns(texts, [r.group for r in runs], group_of, unit)
    # the tuples refused: their reasons, from the tuple-by-tuple converter
    reasons: dict[int, str] = {}
    for i in np.flatnonzero(~good).tolist():
        try:
            _convert(texts[i], runs[group_of[i]].group, load.options)
        except fields.RowError as exc:
            reasons[i] = str(exc)
        else:
            return False
    row_lines = np.repeat(np.array([r.line for r in runs], dtype=np.int64), [r.count for r in runs])
    refused = sorted(reasons)
    for step in steps:
        if isinstance(step, _Tuples):
            at = step.start
            low = bisect_left(refused, step.start)
            for i in refused[low : bisect_left(refused, step.start + step.count)]:
                load.count_loaded(i - at)
                number = i - step.start + 1
                load.reject(
                    step.line, f"{step.where}, tuple {number}: {reasons[i]}", _raw(texts[i])
                )
                at = i + 1
            load.count_loaded(step.start + step.count - at)
        elif step[0] == "reject":
            load.reject(step[1], step[2], step[3])
        else:
            load.skip(step[2])
    rows = table.filter(pa.array(good))
    source = load.source
    n = rows.num_rows
    rows = rows.append_column("source_format", constant(name, n))
    rows = rows.append_column("source_path", constant(source.display, n))
    rows = rows.append_column("source_line", pa.array(row_lines[good], INT))
    notes = pc.value_counts(rows.column("ts_note").drop_null())
    for note, count in zip(
        notes.field("values").to_pylist(), notes.field("counts").to_pylist(), strict=True
    ):
        load.note(note, count)
    load.keep_rows(table_of({c: rows.column(c) for c in rows.column_names}, n))
    return True


def _convert_columns(
    texts: list[Any], groups: list[_Group], group_of: np.ndarray, unit: str
) -> tuple[pa.Table, np.ndarray]:
    """``_convert`` of every tuple in columns (without provenance), and where it holds."""
    n = len(texts)
    strings = pa.array([t if type(t) is str else None for t in texts], TEXT)
    # printable ASCII and spaces only, where Python's strip and Arrow's trim agree
    good = _mask(pc.match_substring_regex(strings, r"^[ -~]*$"))
    v4 = np.array([g.layout == "v4" for g in groups], dtype=bool)[group_of]
    parts = pc.split_pattern(strings, ",")
    count = np.asarray(pc.fill_null(pc.list_value_length(parts), 0).to_numpy(), dtype=np.int64)
    thirteen = count == 13
    good &= thirteen | (~v4 & (count == 8))
    flat = pc.list_flatten(parts)
    starts = np.asarray(parts.offsets.to_numpy(), dtype=np.int64)[:-1]
    field = []
    for k in range(13):
        here = k < count
        taken = flat.take(pa.array(np.where(here, starts + k, 0))) if len(flat) else None
        value = pc.if_else(pa.array(here), taken, NULL_TEXT) if taken is not None else None
        field.append(pc.utf8_trim(value, " ") if value is not None else pa.nulls(n, TEXT))
    ts, note = _epochs(field[0], v4, unit, good)
    src = addresses(field[1], good)
    dst = addresses(field[2], good)
    good &= _mask(pc.and_(pc.is_valid(src), pc.is_valid(dst)))
    ports = [plain_int(field[k], good, 5, 65535) for k in (3, 4)]
    outbound = _mask(pc.equal(field[6], "O"))
    good &= outbound | _mask(pc.equal(field[6], "I"))
    state, encryption, decision = field[7], field[8], field[7]
    vnet_action = mapped(state, lambda v: VNET_STATES.get(v))
    dropped = _mask(pc.is_in(encryption, value_set=pa.array(list(ENCRYPTION_DROPS))))
    nsg_action = mapped(decision, lambda v: DECISIONS.get(v))
    good &= np.where(v4, _mask(pc.is_valid(vnet_action)), _mask(pc.is_valid(nsg_action)))
    good &= v4 | ~thirteen | _mask(pc.is_in(field[8], value_set=pa.array(list(NSG_STATES))))
    action = pc.if_else(
        pa.array(v4), pc.if_else(pa.array(dropped), "denied", vnet_action), nsg_action
    )
    action_raw = pc.if_else(
        pa.array(v4 & dropped), pc.binary_join_element_wise(state, encryption, "/"), field[7]
    )
    counters = []
    for k in range(9, 13):
        counted = np.ones(n, dtype=bool)
        counters.append(pc.if_else(pa.array(thirteen), plain_int(field[k], counted, 18), NULL_INT))
        good &= counted | ~thirteen
    out = pa.array(outbound)
    proto = mapped(field[5], lambda v: NSG_PROTOCOLS.get(v.upper()) or fields.protocol(v))
    per_group = pa.array(group_of)
    values = {
        "ts": pa.array(ts, INT),
        "src_ip": src,
        "src_port": ports[0],
        "dst_ip": dst,
        "dst_port": ports[1],
        "protocol": proto,
        "direction": pc.if_else(out, "outbound", "inbound"),
        "action": action,
        "action_raw": action_raw,
        "rule": pa.array([g.rule for g in groups], TEXT).take(per_group),
        "packets_out": pc.if_else(out, counters[0], counters[2]),
        "bytes_out": pc.if_else(out, counters[1], counters[3]),
        "packets_in": pc.if_else(out, counters[2], counters[0]),
        "bytes_in": pc.if_else(out, counters[3], counters[1]),
        "observer": pa.array([g.observer for g in groups], TEXT).take(per_group),
        "host_hint": pa.array(_macs(groups), TEXT).take(per_group),
        "ts_note": note,
    }
    names = [f.name for f in NETWORK_EVENTS if not f.name.startswith("source_")]
    table = table_of(values, n, pa.schema([NETWORK_EVENTS.field(c) for c in names]))
    return table, good


def _macs(groups: list[_Group]) -> list[str | None]:
    """``mac_address`` of each group's MAC (converted once per distinct value)."""
    seen: dict[Any, str | None] = {}
    out = []
    for group in groups:
        key = (type(group.mac), group.mac) if isinstance(group.mac, (str, int, float)) else None
        if key is None:
            out.append(mac_address(group.mac))
            continue
        if key not in seen:
            seen[key] = mac_address(group.mac)
        out.append(seen[key])
    return out


def _epochs(
    values: pa.Array, v4: np.ndarray, unit: str, good: np.ndarray
) -> tuple[np.ndarray, pa.Array]:
    """``parse_epoch`` of plain digit strings (ns and the note), the rest clearing ``good``."""
    n = len(values)
    # 1-19 ASCII digits, at most the largest ns parse_epoch takes (same length: text order)
    size = pc.binary_length(values)
    plain = _mask(
        pc.and_(
            pc.and_(pc.ascii_is_decimal(values), pc.greater(size, 0)),
            pc.or_(
                pc.less(size, 19),
                pc.and_(pc.equal(size, 19), pc.less_equal(values, str(2**63 - 2))),
            ),
        )
    )
    number = pc.cast(pc.if_else(pa.array(plain), values, NULL_TEXT), INT)
    good &= plain
    value = np.asarray(pc.fill_null(number, 0).to_numpy(), dtype=np.int64)
    if unit == "auto":
        magnitude = value.astype(np.float64)  # as parse_epoch: float(number)
        chosen = np.where(
            magnitude < 1e11, 0, np.where(magnitude < 1e14, 1, np.where(magnitude < 1e17, 2, 3))
        )
    else:
        chosen = np.full(n, ("s", "ms", "us", "ns").index(unit))
    scale = np.array([NS_PER_UNIT[u] for u in ("s", "ms", "us", "ns")], dtype=np.int64)[chosen]
    good &= value <= (2**63 - 2) // scale  # else "time out of range"
    ns = np.where(good, value, 0) * scale
    expected = np.where(v4, 1, 0)
    notes = np.full(n, None, dtype=object)
    if unit == "auto":
        for unit_index, name_ in enumerate(("s", "ms", "us", "ns")):
            for wanted, documented in ((0, "s"), (1, "ms")):
                rows = (
                    plain & (chosen == unit_index) & (expected == wanted) & (unit_index != wanted)
                )
                notes[rows] = f"epoch unit {name_} by magnitude (format documents {documented})"
    return ns, pa.array(notes, TEXT)


def _mask(values: pa.Array) -> np.ndarray:
    """A boolean column as a numpy mask (null is False)."""
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)
