"""Alibaba Cloud VPC flow logs exported from Log Service (SLS): JSON lines, or CSV with a header.

Mapping: ``ts``/``ts_end`` = ``start``/``end`` (Unix seconds; ``__time__``, when SLS stored the
record, stands in for a missing ``start``, noted); ``direction`` out -> outbound, in -> inbound
(relative to the ENI), else unknown; ``action`` ACCEPT -> allowed, REJECT -> denied;
``protocol`` number -> name; ``host_hint`` = ``vm-id``, else ``eni-id``. A record's one counter
pair goes to ``*_in`` for ``in`` records and to ``*_out`` otherwise. NODATA/SKIPDATA records are
skipped; Cloud Firewall records (with ``rule_result``) belong to ``alibaba_cfw``.

Reading: runs of lines are parsed column-wise by pyarrow; a row the vectorised checks do not
vouch for goes through the per-line reader, so rows, rejects and stats are the same either way.
No ``--option`` keys. Field reference and sources: ``tests/data/alibaba_vpc_flow/README.md``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv

from ..schema import NETWORK_EVENTS
from ..sources import Source
from ..timeparse import TimeParseError, parse_epoch
from . import fields
from .base import FileLoad, LoadOptions, LoadResult
from .blocks import line_runs, valid_utf8
from .columnar import (
    IPV4,
    constant,
    epoch_seconds,
    ip_or_bad,
    mapped,
    text,
)
from .records import first_line, json_line_record, text_line
from .zeek_conn import (
    Checked,
    Spans,
    long_line_possible,
    plain_ints,
    read_json_runs,
    settle_run,
)

name = "alibaba_vpc_flow"
kind = "network"
description = "Alibaba Cloud VPC flow log (SLS export, JSON lines or CSV)"

ACTIONS = {"ACCEPT": "allowed", "REJECT": "denied"}
DIRECTIONS = {"out": "outbound", "in": "inbound"}
NO_DATA = ("NODATA", "SKIPDATA")
_IDENTITY_KEYS = {"eni-id", "vm-id", "vswitch-id"}


def _keys(first: bytes) -> set[str] | None:
    """The field names of a file's first record: JSON keys or CSV header names."""
    if first.startswith(b"{"):
        try:
            record = json.loads(first)
        except (ValueError, RecursionError):
            return None
        return set(record) if isinstance(record, dict) else None
    try:
        header = next(csv.reader([first.decode("utf-8", "replace")]))
    except (csv.Error, StopIteration):
        return None
    return {h.strip() for h in header}


def sniff(head: bytes, filename: str) -> float:
    """Score: ``srcaddr``/``dstaddr`` beside an ENI/VM/vSwitch id, and no Cloud Firewall verdict."""
    keys = _keys(first_line(head))
    if not keys or "rule_result" in keys or not {"srcaddr", "dstaddr"} <= keys:
        return 0.0
    if not keys & _IDENTITY_KEYS:
        return 0.0
    return 0.95 if keys & {"eni-id", "__topic__"} and "direction" in keys else 0.8


def read(source: Source, options: LoadOptions, *, fast: bool = True) -> LoadResult:
    """Read one SLS export of VPC flow logs into ``network_events`` rows (column-wise;
    ``fast=False``: every line by the per-line reader, the reference)."""
    load = FileLoad(source, options, name, kind, NETWORK_EVENTS)
    fast = fast and options.epoch_unit in ("auto", "s")
    if first_line(source.head(4096)).startswith(b"{"):
        read_json_runs(load, JSON_FIELDS, _columns, _line, fast=fast)
    else:
        CsvLines(load, _record, _columns, _FIELDS).read(fast=fast)
    return load.result()


def _line(line: int, raw: bytes, load: FileLoad) -> None:
    """One JSON line through the per-line reader."""
    found = json_line_record(line, raw, load)
    if found is not None:
        _record(line, found[0], found[1], load)


def _record(line: int, record: dict[str, Any], raw: str, load: FileLoad) -> None:
    """One record: skipped (no data), converted and emitted, or rejected with its reason."""
    status = fields.text(record.get("log-status"))
    if status in NO_DATA:
        load.skip(f"log-status {status}")
        return
    try:
        row = _convert(record, load.options)
    except fields.RowError as exc:
        load.reject(line, str(exc), raw)
        return
    load.emit(row, line)


# --- CSV, one physical line at a time, and column-wise in runs ----------------------------------

CSV_FIELD_LIMIT = csv.field_size_limit()
"""Python's csv refuses a field longer than this; a line that long is read line by line."""


class CsvLines:
    """A CSV file whose first non-blank line is its header, one record per physical line.

    ``line`` is the per-line reader (the reference): blank lines skipped, the header taken,
    ragged or unreadable rows rejected, the others handed to ``record``. ``read`` hands runs of
    lines to ``pyarrow.csv`` (only the ``used`` columns, as text) and the rows to ``columns``,
    the column-wise check of ``record``; lines whose quoting pyarrow might read otherwise (a
    field partly quoted, a quote inside, NUL, a CR inside, invalid UTF-8, a huge field) and
    rows the check refuses go through ``line``.
    """

    def __init__(
        self,
        load: FileLoad,
        record: Callable[[int, dict[str, Any], str, FileLoad], None],
        columns: Callable[[dict[str, pa.Array], np.ndarray], Checked],
        used: tuple[str, ...],
    ) -> None:
        self.load, self.record, self.columns, self.used = load, record, columns, used
        self.header: list[str] | None = None

    def read(self, *, fast: bool = True) -> None:
        for first, blob, count in line_runs(self.load.source, _CSV_FIRST):
            if count == 0:
                self.line(first, blob)
                continue
            offset = 0
            if self.header is None:  # the header line starts the first run
                spans = Spans(blob, count)
                while self.header is None and offset < count:
                    self.line(first + offset, spans.line(offset).rstrip(b"\r"))
                    offset += 1
                if offset == count:
                    continue
                blob = blob[spans.starts[offset] :]
            if fast:
                self._run(first + offset, blob, count - offset)
            else:
                for index, raw in enumerate(blob.split(b"\n")):
                    self.line(first + offset + index, raw.rstrip(b"\r"))

    def line(self, line: int, raw_bytes: bytes, load: FileLoad | None = None) -> None:
        """One physical line (without its end of line) through the per-line reader."""
        load = load or self.load
        raw = text_line(line, raw_bytes, load)
        if raw is None:
            return
        try:
            values = next(csv.reader([raw]))
        except csv.Error as exc:
            load.reject(line, f"unreadable CSV row: {exc}", raw)
            return
        if self.header is None:
            self.header = [v.strip() for v in values]
            load.skip("CSV header")
            return
        if len(values) != len(self.header):
            load.reject(line, f"{len(values)} columns where the header has {len(self.header)}", raw)
            return
        self.record(line, dict(zip(self.header, values, strict=True)), raw, load)

    def odd(self, spans: Spans) -> np.ndarray:
        """Lines of a run pyarrow may read otherwise than ``line`` (read line by line)."""
        return csv_odd(spans)

    def _run(self, first: int, blob: bytes, count: int) -> None:
        assert self.header is not None
        n = len(self.header)
        spans = Spans(blob, count)
        odd = self.odd(spans)
        index = {key: i for i, key in enumerate(self.header)}  # a name twice: the last one
        wanted = {key: index[key] for key in self.used if key in index}
        include = sorted(set(wanted.values())) or [0]
        names = [f"c{i}" for i in range(n)]
        table = None
        for attempt in range(2):
            data = spans.stand_in(odd, ",".join(['""'] * n).encode())
            try:
                table = pv.read_csv(
                    pa.py_buffer(data),
                    read_options=pv.ReadOptions(column_names=names, block_size=1 << 20),
                    parse_options=pv.ParseOptions(
                        delimiter=",",
                        quote_char='"',
                        double_quote=True,
                        escape_char=False,
                        newlines_in_values=False,
                        ignore_empty_lines=False,
                    ),
                    convert_options=pv.ConvertOptions(
                        column_types={names[i]: pa.string() for i in include},
                        include_columns=[names[i] for i in include],
                        null_values=[],
                        strings_can_be_null=False,
                        quoted_strings_can_be_null=False,
                    ),
                )
                break
            except pa.ArrowInvalid:  # a line of another field count: find them, try once more
                if attempt:
                    table = None
                    break
                odd |= _field_counts(spans) != n
        if table is None or table.num_rows != count:
            for index_, raw in enumerate(blob.split(b"\n")):
                self.line(first + index_, raw.rstrip(b"\r"))
            return
        cols = {
            key: (
                table.column(names[wanted[key]]).combine_chunks()
                if key in wanted
                else pa.nulls(count, pa.string())
            )
            for key in self.used
        }
        ok = ~odd
        settle_run(self.load, first, spans, ok, self.columns(cols, ok), self.line, NETWORK_EVENTS)


_CSV_FIRST = bytes(range(0x21, 0x7F))
"""First bytes of CSV lines read column-wise (printable, not a space: never blank)."""


def csv_odd(spans: Spans) -> np.ndarray:
    """Lines pyarrow would read otherwise than Python's csv module: a CR before the end (pyarrow
    ends the row there), invalid UTF-8 (when the run has any; pyarrow refuses it, the per-line
    reader notes it), longer than csv's field limit (csv refuses it). Quoting needs no check:
    where pyarrow reads a line into the header's number of fields, csv reads the same values
    (tests/test_fast_path_alibaba_vpc_flow.py fuzzes it); other lines make pyarrow refuse."""
    view = spans.view
    odd = np.zeros(spans.count, dtype=bool)
    if long_line_possible(spans.blob, CSV_FIELD_LIMIT):
        odd |= (spans.ends - spans.starts) > CSV_FIELD_LIMIT
    if b"\r" in spans.blob:
        ends = spans.ends
        cr = np.flatnonzero(view == 0x0D)
        rows = spans.line_of(cr)
        odd[rows[cr != ends[rows] - 1]] = True
    if not valid_utf8(spans.blob):
        odd[spans.line_of(np.flatnonzero(view >= 0x80))] = True
    return odd


def _per_line(spans: Spans, positions: np.ndarray) -> np.ndarray:
    """How many of the (sorted) offsets fall in each line."""
    return np.searchsorted(positions, spans.ends) - np.searchsorted(positions, spans.starts)


def _field_counts(spans: Spans) -> np.ndarray:
    """Fields per line counting every comma (right for lines without quoted commas; a line it
    miscounts makes pyarrow refuse the run again, which is then read line by line)."""
    return _per_line(spans, spans.positions(0x2C)) + 1


# --- the column-wise checks -------------------------------------------------------------------

_FIELDS = (
    *("start", "end", "srcaddr", "srcport", "dstaddr", "dstport", "protocol"),
    *("direction", "packets", "bytes", "action", "log-status", "vm-id", "eni-id"),
)


def _no_data(value: str | None) -> str | None:
    """The skip reason of a record without data (``_record``'s), else None."""
    status = fields.text(value)
    return f"log-status {status}" if status in NO_DATA else None


def _action(value: str | None) -> str:
    return ACTIONS.get((fields.text(value) or "").upper(), "unknown")


def _direction(value: str | None) -> str:
    return DIRECTIONS.get((fields.text(value) or "").lower(), "unknown")


def _check(
    col: dict[str, pa.Array], ok: np.ndarray
) -> tuple[pa.Array, pa.Array | None, dict[str, pa.Array]]:
    """Clear ``ok`` for rows the per-line reader must read (rejects, notes); the normalised
    verdict, the skip reason of NODATA/SKIPDATA records (skipped whatever else they hold) and
    the checked values."""
    reasons: pa.Array | None = mapped(col["log-status"], _no_data)
    skipped = np.asarray(pc.is_valid(reasons).to_numpy(zero_copy_only=False), dtype=bool)
    if not skipped.any():
        reasons = None
    start = epoch_seconds(col["start"], ok)  # missing: __time__ stands in, with a note
    end = epoch_seconds(col["end"], ok, blank_ok=True)
    before = pc.fill_null(pc.less(end, start), False)  # "end before start": a note
    ok &= ~np.asarray(before.to_numpy(zero_copy_only=False), dtype=bool)
    src = mapped(col["srcaddr"], ip_or_bad, ok, same=IPV4)
    dst = mapped(col["dstaddr"], ip_or_bad, ok, same=IPV4)
    ok &= np.asarray(pc.and_(pc.is_valid(src), pc.is_valid(dst)).to_numpy(zero_copy_only=False))
    values = {
        "ts": pc.multiply(start, 1_000_000_000),
        "ts_end": pc.multiply(end, 1_000_000_000),
        "src_ip": src,
        "dst_ip": dst,
        "src_port": plain_ints(col["srcport"], ok, 5, 65535),
        "dst_port": plain_ints(col["dstport"], ok, 5, 65535),
        "bytes": plain_ints(col["bytes"], ok, 18),
        "packets": plain_ints(col["packets"], ok, 18),
    }
    ok |= skipped
    return mapped(col["action"], _action, fill=True), reasons, values


def _normalise(
    col: dict[str, pa.Array], checked: dict[str, pa.Array], n: int
) -> dict[str, pa.Array]:
    """The ``network_events`` columns of checked rows (``_convert``'s values)."""
    direction = mapped(col["direction"], _direction, fill=True)
    inbound = pc.equal(direction, "inbound")
    none = pa.scalar(None, pa.int64())
    action_raw = text(col["action"])
    octets, packets = checked["bytes"], checked["packets"]
    return {
        "ts": checked["ts"],
        "ts_end": checked["ts_end"],
        "src_ip": checked["src_ip"],
        "src_port": checked["src_port"],
        "dst_ip": checked["dst_ip"],
        "dst_port": checked["dst_port"],
        "protocol": mapped(col["protocol"], fields.protocol),
        "direction": direction,
        "action": mapped(
            action_raw, lambda v: ACTIONS.get((v or "").upper(), "unknown"), fill=True
        ),
        "action_raw": action_raw,
        "bytes_out": pc.if_else(inbound, none, octets),
        "bytes_in": pc.if_else(inbound, octets, none),
        "packets_out": pc.if_else(inbound, none, packets),
        "packets_in": pc.if_else(inbound, packets, none),
        "observer": constant("alibaba-vpc-flow", n),
        "host_hint": pc.coalesce(text(col["vm-id"]), text(col["eni-id"])),
    }


def _columns(cols: dict[str, pa.Array], ok: np.ndarray) -> Checked:
    """``_record`` column-wise: the verdict, and the rows of the records it vouches for."""
    verdict, reasons, checked = _check(cols, ok)
    n = len(ok)

    def build(indices: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
        m = len(indices)
        if m == n:
            return _normalise(cols, checked, n), np.arange(n)
        if m > n // 4:  # most rows: normalise them all, then pick the output columns
            picks = pa.array(indices)
            values = {k: v.take(picks) for k, v in _normalise(cols, checked, n).items()}
            return values, np.arange(m)
        picks = pa.array(indices)
        part = {k: v.take(picks) for k, v in cols.items()}
        values = {k: v.take(picks) for k, v in checked.items()}
        return _normalise(part, values, m), np.arange(m)

    return verdict, reasons, build


JSON_FIELDS = pa.schema([(f, pa.string()) for f in _FIELDS])
"""SLS exports every value as a string; a file that writes numbers instead fails the schema and
is read line by line."""


def _epoch(value: Any, key: str, options: LoadOptions) -> tuple[int, str | None]:
    try:
        return parse_epoch(value, unit=options.epoch_unit, expected="s")
    except TimeParseError as exc:
        raise fields.RowError(f"{key}: {exc}") from None


def _convert(record: dict[str, Any], options: LoadOptions) -> dict[str, Any]:
    """One flow record to a ``network_events`` row (without provenance)."""
    notes: list[str] = []
    start: Any = record.get("start")
    key = "start"
    if fields.is_blank(start):
        start, key = record.get("__time__"), "__time__"
        if fields.is_blank(start):
            raise fields.RowError("no start and no __time__")
        notes.append("start missing: used __time__ (when SLS stored the record)")
    ts, note = _epoch(start, key, options)
    if note:
        notes.append(note)
    ts_end = None
    if not fields.is_blank(record.get("end")):
        ts_end, _ = _epoch(record["end"], "end", options)
        if ts_end < ts:
            notes.append("end before start: end ignored")
            ts_end = None
    direction = DIRECTIONS.get((fields.text(record.get("direction")) or "").lower(), "unknown")
    action_raw = fields.text(record.get("action"))
    octets = fields.counter(record.get("bytes"), "bytes")
    packets = fields.counter(record.get("packets"), "packets")
    inbound = direction == "inbound"
    return {
        "ts": ts,
        "ts_end": ts_end,
        "src_ip": fields.ip(record.get("srcaddr"), "srcaddr", required=True),
        "src_port": fields.port(record.get("srcport"), "srcport"),
        "dst_ip": fields.ip(record.get("dstaddr"), "dstaddr", required=True),
        "dst_port": fields.port(record.get("dstport"), "dstport"),
        "protocol": fields.protocol(record.get("protocol")),
        "direction": direction,
        "action": ACTIONS.get((action_raw or "").upper(), "unknown"),
        "action_raw": action_raw,
        "bytes_out": None if inbound else octets,
        "bytes_in": octets if inbound else None,
        "packets_out": None if inbound else packets,
        "packets_in": packets if inbound else None,
        "observer": "alibaba-vpc-flow",
        "host_hint": fields.text(record.get("vm-id")) or fields.text(record.get("eni-id")),
        "ts_note": "; ".join(notes) or None,
    }
