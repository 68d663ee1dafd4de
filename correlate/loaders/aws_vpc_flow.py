"""AWS VPC Flow Logs as space-separated text: the v2 default format or any custom format (v3-v8).

Field order: a header line in the file (a later one switches the format), else
``--option aws_vpc_flow.fields``, else the v2 default. A format without ``start`` is rejected.
Also read: Athena-style CSV exports (``_`` names, header naming ``start``) and JSON objects keyed
by the field names (Data Prepper arrays or JSON lines).

Mapping: ``ts``/``ts_end`` = ``start``/``end`` (Unix seconds); ACCEPT -> allowed, REJECT ->
denied; ``flow-direction`` ingress -> inbound, egress -> outbound, else unknown; ``pkt-srcaddr``/
``pkt-dstaddr`` win over ``srcaddr``/``dstaddr`` (the interface address goes to ``src_nat_ip``);
``rule`` = ``reject-reason``; ``host_hint`` = instance, ECS task, ECS container, else interface
id. A record's one counter pair goes to ``*_in`` for ingress and ``*_out`` otherwise.
NODATA/SKIPDATA records, headers and blank lines are skipped. Plain rows are read column-wise.
Field reference and sources: ``tests/data/aws_vpc_flow/README.md``.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv

from ..errors import OptionError
from ..schema import NETWORK_EVENTS
from ..sources import Source
from ..timeparse import TimeParseError, parse_epoch
from . import fields
from .base import FileLoad, LoadOptions, LoadResult
from .blocks import DIGITS, line_runs
from .records import first_line, json_documents, text_line

name = "aws_vpc_flow"
kind = "network"
description = "AWS VPC Flow Logs, space-separated text (v2 default or custom format with header)"

OPTIONS = {
    "fields": "the custom format's field names in order, space-separated (default: the v2 default format; a header line in the file wins)",
}
"""``--option aws_vpc_flow.KEY=VALUE`` settings."""

DEFAULT_FIELDS = (
    *("version", "account-id", "interface-id", "srcaddr", "dstaddr", "srcport", "dstport"),
    *("protocol", "packets", "bytes", "start", "end", "action", "log-status"),
)
KNOWN_FIELDS = frozenset(
    (
        *DEFAULT_FIELDS,
        # v3
        *("vpc-id", "subnet-id", "instance-id", "tcp-flags", "type", "pkt-srcaddr", "pkt-dstaddr"),
        # v4
        *("region", "az-id", "sublocation-type", "sublocation-id"),
        # v5
        *("pkt-src-aws-service", "pkt-dst-aws-service", "flow-direction", "traffic-path"),
        # v7
        *("ecs-cluster-arn", "ecs-cluster-name", "ecs-container-instance-arn"),
        *("ecs-container-instance-id", "ecs-container-id", "ecs-second-container-id"),
        *("ecs-service-name", "ecs-task-definition-arn", "ecs-task-arn", "ecs-task-id"),
        # v8
        "reject-reason",
    )
)
# Field names that could be ordinary words; a header needs at least two names beyond these.
_GENERIC_FIELDS = frozenset(
    ("version", "start", "end", "action", "protocol", "bytes", "packets", "type", "region")
)
_NAME_RE = re.compile(r"^[a-z][a-z0-9-]*$")
_ENI_RE = re.compile(r"^eni-[0-9a-f]{8,17}$")

ACTIONS = {"ACCEPT": "allowed", "REJECT": "denied"}
DIRECTIONS = {"ingress": "inbound", "egress": "outbound"}
NO_DATA = ("NODATA", "SKIPDATA")
_DEFAULT_TAIL = {"ACCEPT", "REJECT", "-"}


def field_names(text: str) -> list[str]:
    """Field names from a header line or a LogFormat: ``${a} ${b}``, ``a b`` or ``a_b`` spellings."""
    return [
        token.removeprefix("${").removesuffix("}").lower().replace("_", "-")
        for token in text.split()
    ]


def _is_header(names: list[str]) -> bool:
    """True when a line's tokens read as flow-log field names rather than a record."""
    if len(names) < 2 or not all(_NAME_RE.match(n) for n in names):
        return False
    known = [n for n in names if n in KNOWN_FIELDS]
    specific = [n for n in known if n not in _GENERIC_FIELDS]
    return len(specific) >= 2 and len(known) >= 0.8 * len(names)


def _cell_names(cells: list[str]) -> list[str]:
    """Field names from the cells of a CSV header row (``account_id`` -> ``account-id``)."""
    return [c.strip().removeprefix("${").removesuffix("}").lower().replace("_", "-") for c in cells]


def _csv_cells(text: str) -> list[str] | None:
    """The cells of one CSV line (quotes as CSV writes them), or None when it is not one."""
    try:
        return next(csv.reader([text]), [])
    except csv.Error:
        return None


def _is_csv_header(text: str) -> bool:
    """True for a CSV header row of flow-log field names (Athena and other CSV exports) that
    names ``start`` (without it no record could be placed in time)."""
    if "," not in text:
        return False
    cells = _csv_cells(text)
    if cells is None:
        return False
    names = _cell_names(cells)
    return _is_header(names) and "start" in names


_JSON_KEY = re.compile(r'"([A-Za-z][A-Za-z0-9_-]{0,40})"\s*:')


def _is_json_records(text: str) -> bool:
    """True for JSON objects (an array, or lines) keyed by flow-log field names (``-`` or ``_``),
    as Data Prepper and similar pipelines write them. ``interface-id`` is required: Alibaba
    Cloud's flow logs share most other names (with ``eni-id``) and have a loader of their own."""
    names = {k.lower().replace("_", "-") for k in _JSON_KEY.findall(text)}
    return {"srcaddr", "dstaddr", "start", "interface-id"} <= names and "eni-id" not in names


def _is_default_record(tokens: list[str]) -> bool:
    """True for a record of the v2 default format (14 fields, version 2, an ENI id, known tail)."""
    return (
        len(tokens) == 14
        and tokens[0] == "2"
        and bool(_ENI_RE.match(tokens[2]))
        and tokens[12] in _DEFAULT_TAIL
        and tokens[13] in ("OK", *NO_DATA)
    )


def sniff(head: bytes, filename: str) -> float:
    """Score: a header of flow-log field names, or v2 default records; headerless custom records
    with an ENI id and a verdict score low (loadable with ``--format``, never auto-detected)."""
    text = head.lstrip(b"\xef\xbb\xbf").decode("utf-8", "replace")
    first = first_line(head).decode("utf-8", "replace")
    if _is_csv_header(first):
        return 0.95
    if first.startswith(("[", "{")):
        return 0.9 if _is_json_records(text[:8192]) else 0.0
    lines = [line.split() for line in text.splitlines()[:20] if line.strip()]
    if not lines or any(c in text[:4096] for c in '{",\t'):
        return 0.0
    if _is_header(field_names(" ".join(lines[0]))):
        return 0.95
    records = lines[:-1] if len(lines) > 1 else lines  # the head may cut its last line short
    if any(_is_default_record(tokens) for tokens in records):
        return 0.95
    for tokens in records:
        if (
            len(tokens) >= 4
            and any(_ENI_RE.match(t) for t in tokens)
            and any(t in ACTIONS or t in ("OK", *NO_DATA) for t in tokens)
        ):
            return 0.3
    return 0.0


NO_START = "so its records cannot be placed in time"


def _format_problem(names: list[str]) -> str | None:
    """Why records of this field list cannot be read (a name twice, no ``start``), else None."""
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        return f"names {', '.join(duplicates)} more than once"
    if "start" not in names:
        return f"has no start field, {NO_START}"
    return None


def read(source: Source, options: LoadOptions) -> LoadResult:
    """Read one flow-log text file into ``network_events`` rows.

    Runs of plain records (lines that start with a digit, printable ASCII separated by single
    spaces, every value of the plain shape) are converted column-wise with Arrow (``_fast``);
    anything else (headers, blank lines, odd bytes, a value that would be rejected or noted) goes
    line by line through ``_Reader.line``, so rows, rejects and stats are the same either way.
    """
    reader = _Reader(source, options)
    if reader.json:
        reader.json_records()
        return reader.result()
    for first, data, count in line_runs(source, DIGITS):
        if count == 0:
            reader.line(first, data)
            continue
        table = _fast(reader, first, data, count) if not reader.layout_problem else None
        if table is None:
            for offset, raw_bytes in enumerate(data.split(b"\n")):
                reader.line(first + offset, raw_bytes.rstrip(b"\r"))
        else:
            reader.add_table(table)
    return reader.result()


class _Reader:
    """The per-line reader and its state (the current layout), plus the fast tables in order."""

    def __init__(self, source: Source, options: LoadOptions) -> None:
        self.source = source
        self.options = options
        self.load = FileLoad(source, options, name, kind, NETWORK_EVENTS)
        option = options.option(name, "fields")
        self.layout = list(DEFAULT_FIELDS)
        self.layout_problem: str | None = None
        first = first_line(source.head(4096)).decode("utf-8", "replace")
        self.csv = _is_csv_header(first)
        """The file is CSV with a header row (``account_id,interface_id,...``), not space-separated."""
        self.json = first.startswith(("[", "{"))
        """The file holds JSON objects (an array of them, or JSON lines), keyed by field names."""
        if option is not None:
            self.layout = field_names(option)
            if not any(n in KNOWN_FIELDS for n in self.layout):
                raise OptionError(
                    f"--option {name}.fields: no flow-log field names in {option!r} "
                    "(write e.g. 'version account-id interface-id srcaddr ...')"
                )
            problem = _format_problem(self.layout)
            if problem:
                raise OptionError(f"--option {name}.fields {problem}")

    def add_table(self, table: pa.Table) -> None:
        """Rows ``_fast`` converted (and counted)."""
        self.load.keep_rows(table)

    def result(self) -> LoadResult:
        return self.load.result()

    def line(self, line: int, raw_bytes: bytes) -> None:
        load = self.load
        raw = text_line(line, raw_bytes, load)
        if raw is None:
            return
        if self.csv:
            cells = _csv_cells(raw)
            if cells is None:
                load.reject(line, "not a CSV line", raw)
                return
            tokens = [c.strip() for c in cells]
            names = _cell_names(cells) if tokens[0][:1].isalpha() else []
        else:
            tokens = raw.split()
            names = field_names(raw) if tokens[0][0].isalpha() else []  # records start with digits
        if _is_header(names):
            self.layout = names
            problem = _format_problem(names)
            self.layout_problem = f"the header line {line} {problem}" if problem else None
            load.skip("header line")
            return
        layout = self.layout
        if len(tokens) != len(layout):
            load.reject(line, f"{len(tokens)} fields where the format has {len(layout)}", raw)
            return
        if self.layout_problem:
            if self.layout_problem.endswith(NO_START):
                # Valid records of a format without times (AWS's NAT and transit-gateway examples):
                # useless for a time join, not malformed, so counted as skipped.
                load.skip(f"format without a start field: {NO_START}")
            else:
                load.reject(line, self.layout_problem, raw)
            return
        values = {
            key: None if value in ("-", "") else value
            for key, value in zip(layout, tokens, strict=True)
        }
        self.record(line, values, raw)

    def json_records(self) -> None:
        """Every object of a JSON file (an array, one object, or JSON lines) as one record; keys
        spelled with ``-`` or ``_`` in any case, numbers as their text."""
        for line, record, raw in json_documents(self.source, self.load.stats, self.load.sink):
            values: dict[str, str | None] = {}
            for key, value in record.items():
                name_ = str(key).lower().replace("_", "-")
                if value is None or value in ("-", "") or name_ in values:
                    values.setdefault(name_, None)
                    continue
                if isinstance(value, bool):
                    text = str(value).lower()
                elif isinstance(value, (str, int, float)):
                    text = str(value)
                else:
                    text = json.dumps(value)
                values[name_] = text
            self.record(line, values, raw)

    def record(self, line: int, values: dict[str, str | None], raw: str) -> None:
        """One record (field name -> value, ``-`` already None) counted as read: a row, a reject
        or a skip."""
        status = values.get("log-status")
        if status in NO_DATA:
            self.load.skip(f"log-status {status}")
            return
        try:
            row = _convert(values, self.options)
        except fields.RowError as exc:
            self.load.reject(line, str(exc), raw)
            return
        self.load.emit(row, line)


# --- the column-wise fast path ------------------------------------------------------------------

_USED = frozenset(
    (
        *("start", "end", "bytes", "packets", "srcport", "dstport", "protocol", "log-status"),
        *("srcaddr", "pkt-srcaddr", "dstaddr", "pkt-dstaddr", "flow-direction", "action"),
        *("reject-reason", "instance-id", "ecs-task-id", "ecs-container-id", "interface-id"),
    )
)
_PLAIN_INT = 18
_PLAIN_PORT = 5
_PLAIN_EPOCH_S = 10  # < 1e11: seconds by magnitude, no note under --epoch-unit auto


def _fast(reader: _Reader, first: int, blob: bytes, count: int) -> pa.Table | None:
    """The rows of a run of lines, converted column-wise; None when any line needs the per-line
    reader (then the caller reads the run line by line, so the answer is the same)."""
    if reader.options.epoch_unit not in ("auto", "s"):
        return None
    # printable ASCII and single spaces only: str.split() and a one-space CSV split then agree
    view = np.frombuffer(blob, dtype=np.uint8)
    if ((view < 0x20) & (view != 0x0A)).any() or (view > 0x7E).any() or blob[-1] == 0x20:
        return None
    space = view == 0x20
    if reader.csv:
        # no spaces and no quotes: the per-line reader's csv.reader and a plain comma split agree
        if space.any() or (view == 0x22).any():
            return None
    else:
        edge = space[1:] & ((view[:-1] == 0x20) | (view[:-1] == 0x0A))
        if edge.any() or (space[:-1] & (view[1:] == 0x0A)).any():
            return None  # two spaces in a row, or a space at a line's start or end
    layout = reader.layout
    if len(set(layout)) != len(layout):
        return None
    try:
        table = pv.read_csv(
            pa.py_buffer(blob),
            read_options=pv.ReadOptions(
                column_names=[f"c{i}" for i in range(len(layout))],
                block_size=1 << 20,
            ),
            parse_options=pv.ParseOptions(
                delimiter="," if reader.csv else " ",
                quote_char=False,
                double_quote=False,
                escape_char=False,
                newlines_in_values=False,
                ignore_empty_lines=False,
            ),
            convert_options=pv.ConvertOptions(
                column_types={f"c{i}": pa.string() for i in range(len(layout))},
                include_columns=[f"c{i}" for i, n in enumerate(layout) if n in _USED],
                null_values=["-", ""] if reader.csv else ["-"],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid:  # a line with another number of fields
        return None
    if table.num_rows != count:
        return None
    cols: dict[str, pa.ChunkedArray] = {
        n: table.column(f"c{i}") for i, n in enumerate(layout) if n in _USED
    }
    n = table.num_rows

    def col(key: str) -> pa.ChunkedArray:
        return cols[key] if key in cols else pa.chunked_array([pa.nulls(n, pa.string())])

    def plain(key: str, digits: int) -> bool:
        """Every value is 1..digits ASCII decimal digits (or null)."""
        values = col(key)
        if values.null_count == n:
            return True
        ok = pc.and_(pc.ascii_is_decimal(values), pc.less_equal(pc.binary_length(values), digits))
        return pc.all(ok, skip_nulls=True).as_py() is not False

    status = col("log-status")
    keep = pc.invert(pc.fill_null(pc.is_in(status, value_set=pa.array(NO_DATA)), False))
    kept = int(pc.sum(keep).as_py() or 0)
    skipped = {s: int(pc.sum(pc.equal(status, s)).as_py() or 0) for s in NO_DATA}
    lines_no = pa.array(np.arange(first, first + n, dtype=np.int64))
    if kept < n:
        cols = {k: pc.filter(v, keep) for k, v in cols.items()}
        lines_no = pc.filter(lines_no, keep)
        n = kept
    if col("start").null_count or not plain("start", _PLAIN_EPOCH_S):
        return None
    if not plain("end", _PLAIN_EPOCH_S):
        return None
    for key in ("bytes", "packets"):
        if not plain(key, _PLAIN_INT):
            return None
    for key in ("srcport", "dstport"):
        if not plain(key, _PLAIN_PORT):
            return None
        if col(key).null_count < n and pc.max(pc.cast(col(key), pa.int64())).as_py() > 65535:
            return None
    ts = pc.multiply(pc.cast(col("start"), pa.int64()), 1_000_000_000)
    ts_end = pc.multiply(pc.cast(col("end"), pa.int64()), 1_000_000_000)
    if pc.any(pc.less(ts_end, ts)).as_py():
        return None  # "end before start" notes: the per-line reader writes them
    addresses = {}
    for key in ("srcaddr", "pkt-srcaddr", "dstaddr", "pkt-dstaddr"):
        mapped = _mapped(col(key), partial(fields.ip, name=key))
        if mapped is None:
            return None
        addresses[key] = mapped
    src = pc.coalesce(addresses["pkt-srcaddr"], addresses["srcaddr"])
    dst = pc.coalesce(addresses["pkt-dstaddr"], addresses["dstaddr"])
    if src.null_count or dst.null_count:
        return None  # "srcaddr/dstaddr is missing" rejects
    srcaddr, packet_src = addresses["srcaddr"], addresses["pkt-srcaddr"]
    nat = pc.if_else(
        pc.fill_null(pc.not_equal(srcaddr, packet_src), False),
        srcaddr,
        pa.scalar(None, pa.string()),
    )
    direction = _mapped(
        col("flow-direction"), lambda v: DIRECTIONS.get((v or "").lower(), "unknown"), fill=True
    )
    action_raw = col("action")
    action = _mapped(action_raw, lambda v: ACTIONS.get((v or "").upper(), "unknown"), fill=True)
    protocol = _mapped(col("protocol"), fields.protocol)
    assert direction is not None and action is not None and protocol is not None
    inbound = pc.equal(direction, "inbound")
    octets = pc.cast(col("bytes"), pa.int64())
    packets = pc.cast(col("packets"), pa.int64())
    null64 = pa.scalar(None, pa.int64())
    host_hint = pc.coalesce(
        col("instance-id"), col("ecs-task-id"), col("ecs-container-id"), col("interface-id")
    )

    def const(value: str) -> pa.Array:
        return pa.repeat(pa.scalar(value, pa.string()), n)

    values: dict[str, Any] = {
        "event_id": pa.nulls(n, pa.int64()),
        "ts": ts,
        "ts_end": ts_end,
        "src_ip": src,
        "src_port": pc.cast(col("srcport"), pa.int32()),
        "src_nat_ip": nat,
        "dst_ip": dst,
        "dst_port": pc.cast(col("dstport"), pa.int32()),
        "protocol": protocol,
        "direction": direction,
        "action": action,
        "action_raw": action_raw,
        "rule": col("reject-reason"),
        "bytes_out": pc.if_else(inbound, null64, octets),
        "bytes_in": pc.if_else(inbound, octets, null64),
        "packets_out": pc.if_else(inbound, null64, packets),
        "packets_in": pc.if_else(inbound, packets, null64),
        "observer": const("aws-vpc-flow"),
        "host_hint": host_hint,
        "source_format": const(name),
        "source_path": const(reader.source.display),
        "source_line": lines_no,
    }
    arrays = []
    for f in NETWORK_EVENTS:
        value = values.get(f.name)
        if value is None:
            value = pa.nulls(n, f.type)
        if isinstance(value, pa.ChunkedArray):
            value = value.combine_chunks()
        arrays.append(value.cast(f.type))
    out = pa.Table.from_arrays(arrays, schema=NETWORK_EVENTS)
    reader.load.count_loaded(n)
    for status_name, skips in skipped.items():
        if skips:
            reader.load.skip(f"log-status {status_name}", skips)
    return out


def _mapped(
    values: pa.ChunkedArray, convert: Callable[[str | None], str | None], fill: bool = False
) -> pa.Array | None:
    """``convert`` applied once per distinct value (None when it raises a RowError); with
    ``fill``, nulls are converted too (``convert(None)``)."""
    encoded = pc.dictionary_encode(values).combine_chunks()
    try:
        converted = [convert(v) for v in encoded.dictionary.to_pylist()]
        null_value = convert(None) if fill else None
    except fields.RowError:
        return None
    result = pc.take(pa.array(converted, pa.string()), encoded.indices)
    if fill and null_value is not None and result.null_count:
        result = pc.fill_null(result, null_value)
    return result


def _epoch(values: dict[str, str | None], key: str, options: LoadOptions) -> tuple[int, str | None]:
    try:
        return parse_epoch(values[key] or "", unit=options.epoch_unit, expected="s")
    except TimeParseError as exc:
        raise fields.RowError(f"{key}: {exc}") from None


def _convert(values: dict[str, str | None], options: LoadOptions) -> dict[str, Any]:
    """One record (field name -> value, ``-`` already None) to a ``network_events`` row."""
    notes: list[str] = []
    if values.get("start") is None:
        raise fields.RowError("start is missing")
    ts, note = _epoch(values, "start", options)
    if note:
        notes.append(note)
    ts_end = None
    if values.get("end") is not None:
        ts_end, _ = _epoch(values, "end", options)
        if ts_end < ts:
            notes.append("end before start: end ignored")
            ts_end = None
    srcaddr = fields.ip(values.get("srcaddr"), "srcaddr")
    packet_src = fields.ip(values.get("pkt-srcaddr"), "pkt-srcaddr")
    src = packet_src or srcaddr
    if src is None:
        raise fields.RowError("srcaddr is missing")
    dst = fields.ip(values.get("pkt-dstaddr"), "pkt-dstaddr") or fields.ip(
        values.get("dstaddr"), "dstaddr"
    )
    if dst is None:
        raise fields.RowError("dstaddr is missing")
    direction = DIRECTIONS.get((values.get("flow-direction") or "").lower(), "unknown")
    action_raw = values.get("action")
    octets = fields.counter(values.get("bytes"), "bytes")
    packets = fields.counter(values.get("packets"), "packets")
    inbound = direction == "inbound"
    return {
        "ts": ts,
        "ts_end": ts_end,
        "src_ip": src,
        "src_port": fields.port(values.get("srcport"), "srcport"),
        "src_nat_ip": srcaddr if packet_src and srcaddr and srcaddr != packet_src else None,
        "dst_ip": dst,
        "dst_port": fields.port(values.get("dstport"), "dstport"),
        "protocol": fields.protocol(values.get("protocol")),
        "direction": direction,
        "action": ACTIONS.get((action_raw or "").upper(), "unknown"),
        "action_raw": action_raw,
        "rule": values.get("reject-reason"),
        "bytes_out": None if inbound else octets,
        "bytes_in": octets if inbound else None,
        "packets_out": None if inbound else packets,
        "packets_in": packets if inbound else None,
        "observer": "aws-vpc-flow",
        "host_hint": values.get("instance-id")
        or values.get("ecs-task-id")
        or values.get("ecs-container-id")
        or values.get("interface-id"),
        "ts_note": "; ".join(notes) or None,
    }
