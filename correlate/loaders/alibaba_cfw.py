"""Alibaba Cloud Firewall traffic logs exported from Log Service (SLS): JSON lines or CSV.

Fields per the Cloud Firewall "Log field descriptions" page (see ../shared/formats, section 1a).
Every value may arrive as a string. ``start_time``/``end_time`` are the session's Unix seconds
(zone-free); when ``start_time`` is missing, ``__time__`` (when SLS stored the record) stands in
and the row's note says so. ``src_private_ip`` is the sender's own address behind the EIP/NAT.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..keep import line_hashes
from ..schema import NETWORK_EVENTS
from ..sources import Source
from ..timeparse import TimeParseError, parse_time
from . import fields
from .base import Batcher, LoadOptions, LoadResult, LoadStats, RejectSink, keeper_for
from .blocks import json_pieces, line_runs, line_spans
from .records import csv_records, first_line, json_line_record

name = "alibaba_cfw"
kind = "network"
description = "Alibaba Cloud Firewall traffic log (SLS export, JSON lines or CSV)"

ACTIONS = {
    "pass": "allowed",
    "alert": "alerted",
    "drop": "denied",
    "deny": "denied",
    "block": "denied",
}
DIRECTIONS = {"out": "outbound", "in": "inbound"}
NO_ACL = "00000000-0000-0000-0000-000000000000"
_MARKERS = (b"rule_result", b"start_time", b"src_ip", b"dst_ip")
_STRONG = (
    b"cloudfirewall",
    b"internet_log",
    b"vpc_firewall_log",
    b"nat_firewall_log",
    b"src_private_ip",
)


def sniff(head: bytes, filename: str) -> float:
    """Score: the first record (a JSON line or a CSV header) carries the CFW field names."""
    first = first_line(head)
    if first.startswith(b"{"):
        try:
            keys = set(json.loads(first))
        except (ValueError, TypeError, RecursionError):
            return 0.0
    else:
        keys = {k.strip().strip('"') for k in first.decode("utf-8", "replace").split(",")}
    if not {"src_ip", "dst_ip", "rule_result"} <= keys or not keys & {"start_time", "__time__"}:
        return 0.0
    strong = keys & {"src_private_ip", "log_type", "__topic__", "acl_rule_id"}
    return 0.95 if strong else 0.7


def read(source: Source, options: LoadOptions) -> LoadResult:
    """Read one CFW export into ``network_events`` rows.

    JSON lines are parsed column-wise (``_fast``) in runs of object lines; a line pyarrow refuses,
    or a row a vectorised check does not pass, goes through the per-line converter, so rows,
    rejects and notes are the same either way. CSV exports are read row by row.
    """
    stats = LoadStats(path=source.display, format=name, kind=kind)
    sink = RejectSink(source, stats, options.strict)
    batch = Batcher(NETWORK_EVENTS, keeper_for(options))
    head = source.head(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith((b"{", b"[")):
        fast = options.epoch_unit in ("auto", "s")
        for first, blob, count in line_runs(source, b"{", b"}"):
            if count == 0 or not fast:
                for offset, raw in enumerate(blob.split(b"\n") if count else [blob]):
                    _line(first + offset, raw.rstrip(b"\r"), source, options, stats, sink, batch)
                continue
            for at, piece, _count, table in json_pieces(blob, first, count, CHECK_SCHEMA):
                if table is None:
                    for offset, raw in enumerate(piece.split(b"\n")):
                        _line(at + offset, raw.rstrip(b"\r"), source, options, stats, sink, batch)
                else:
                    _fast(table, at, piece, source, options, stats, sink, batch)
    else:
        for line, record, text in csv_records(source, stats, sink):
            _record(line, record, text, source, options, stats, sink, batch)
    table = batch.table()
    stats.unkept += batch.unkept
    return LoadResult(kind=kind, table=table, stats=stats, rejects=sink.rejects)


def _line(
    line: int,
    raw: bytes,
    source: Source,
    options: LoadOptions,
    stats: LoadStats,
    sink: RejectSink,
    batch: Batcher,
) -> None:
    """One JSON line through the per-line reader."""
    found = json_line_record(line, raw, stats, sink)
    if found is not None:
        _record(line, found[0], found[1], source, options, stats, sink, batch)


def _record(
    line: int,
    record: dict[str, Any],
    raw: str,
    source: Source,
    options: LoadOptions,
    stats: LoadStats,
    sink: RejectSink,
    batch: Batcher,
) -> None:
    """One parsed record: converted and added, or rejected with its reason."""
    stats.read += 1
    try:
        row = _convert(record, options)
    except fields.RowError as exc:
        sink.reject(line, str(exc), raw)
        return
    row["source_format"] = name
    row["source_path"] = source.display
    row["source_line"] = line
    batch.add(row)
    stats.loaded += 1
    if row["ts_note"]:
        stats.notes[row["ts_note"]] += 1


# --- the column-wise path -----------------------------------------------------------------------

_TEXT_FIELDS = (
    "start_time",
    "end_time",
    "__time__",
    "src_ip",
    "src_private_ip",
    "dst_ip",
    "src_port",
    "dst_port",
    "ip_protocol",
    "proto",
    "direction",
    "rule_result",
    "acl_rule_id",
    "log_type",
    "ips_rule_name_en",
    "ips_rule_name",
    "attack_type_name_en",
    "attack_type_name",
    "domain",
    "app_name",
    "out_packet_bytes",
    "in_packet_bytes",
    "out_packet_count",
    "in_packet_count",
    "cloud_instance_id",
    "src_instance_id",
)
_CHECKED_FIELDS = (
    *("start_time", "end_time", "src_ip", "src_private_ip", "dst_ip", "src_port", "dst_port"),
    *("out_packet_bytes", "in_packet_bytes", "out_packet_count", "in_packet_count", "rule_result"),
)
SCHEMA = pa.schema([(f, pa.string()) for f in _TEXT_FIELDS])
"""The fields the loader reads, all as strings (SLS exports every value as a string); a file
that writes numbers instead fails this schema and is read line by line."""
CHECK_SCHEMA = pa.schema([(f, pa.string()) for f in _CHECKED_FIELDS])
"""What decides whether a row loads or is rejected, and its verdict: parsed for every row (half
the fields parse about three times faster); the rest only for the rows that are kept."""

_MAX_EPOCH_S = (2**63 - 1) // 1_000_000_000  # above: out of the timestamp[ns] range (a reject)
_NULL = pa.scalar(None, pa.string())


def _fast(
    table: pa.Table,
    first: int,
    blob: bytes,
    source: Source,
    options: LoadOptions,
    stats: LoadStats,
    sink: RejectSink,
    batch: Batcher,
) -> None:
    """Rows of a parsed run (``CHECK_SCHEMA``), converted column-wise; rows a check refuses go
    line by line.

    Every row is checked for what would reject it (times, addresses, ports, counters); only the
    rows kept (all of them, or in ``run`` the violations and the anchor sample) are parsed again
    with every field and normalised.
    """
    n = table.num_rows
    col = {f: table.column(f).combine_chunks() for f in _CHECKED_FIELDS}
    ok = np.ones(n, dtype=bool)
    start = _epoch_seconds(col["start_time"], ok)
    end = _epoch_seconds(col["end_time"], ok, blank_ok=True)
    ok &= np.asarray(
        pc.fill_null(pc.greater_equal(end, start), True).to_numpy(zero_copy_only=False)
    )
    observed = _mapped(col["src_ip"], _ip_or_bad, ok)
    private = _mapped(col["src_private_ip"], _ip_or_bad, ok)
    dst = _mapped(col["dst_ip"], _ip_or_bad, ok)
    src = pc.coalesce(private, observed)  # the per-line reader rejects rows with neither
    ok &= np.asarray(src.is_valid().to_numpy(zero_copy_only=False))
    ok &= np.asarray(dst.is_valid().to_numpy(zero_copy_only=False))
    for key in ("src_port", "dst_port"):
        _plain_int(col[key], ok, 5, 65535)
    for key in ("out_packet_bytes", "in_packet_bytes", "out_packet_count", "in_packet_count"):
        _plain_int(col[key], ok, 18, None)
    keep = ok.copy()
    if options.keep is not None and batch.keeper is not None:
        action = _mapped(col["rule_result"], _action, fill=True)
        verdict = np.asarray(
            pc.fill_null(
                pc.is_in(action, value_set=pa.array(list(options.keep.actions))), False
            ).to_numpy(zero_copy_only=False),
            dtype=bool,
        )
        lines = np.arange(first, first + n, dtype=np.int64)
        sampled = line_hashes(source.display, lines) <= batch.keeper.bound(name)
        keep &= verdict | sampled
    # The kept rows, parsed with every field; a row whose other fields pyarrow refuses (a key
    # twice, an object where text was expected) goes line by line like a refused check.
    starts, ends = line_spans(blob)
    kept = np.flatnonzero(keep)
    full: list[pa.Table] = []
    if len(kept):
        every = len(kept) == n
        lines_blob = blob if every else b"\n".join(blob[starts[i] : ends[i]] for i in kept)
        for at, _piece, m, parsed in json_pieces(lines_blob, 0, len(kept), SCHEMA):
            rows = kept[at : at + m]
            if parsed is None:
                ok[rows] = False
            else:
                full.append(_normalised(parsed, rows + first, source))
    # Rows a check refused go through the per-line reader (rows, notes or rejects as it gives
    # them). Those before the run's first good row go first, so the early stop on a file whose
    # first records all fail sees them in line order.
    bad = np.flatnonzero(~ok)
    first_good = int(np.argmax(ok)) if ok.any() else n
    side = Batcher(NETWORK_EVENTS)

    def per_line(indices: np.ndarray) -> None:
        for i in indices.tolist():
            raw = blob[starts[i] : ends[i]].rstrip(b"\r")
            _line(first + i, raw, source, options, stats, sink, side)

    per_line(bad[bad < first_good])
    loaded = int(ok.sum())
    stats.read += loaded
    stats.loaded += loaded
    per_line(bad[bad >= first_good])
    parts = [t for t in (*full, side.table()) if t.num_rows]
    stats.unkept += loaded - sum(t.num_rows for t in full)
    if parts:
        merged = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
        if len(parts) > 1:
            merged = merged.sort_by([("source_line", "ascending")])
        batch.add_table(merged)


def _action(value: str | None) -> str:
    return ACTIONS.get((fields.text(value) or "").lower(), "unknown")


def _normalised(table: pa.Table, lines: np.ndarray, source: Source) -> pa.Table:
    """Checked rows parsed with every field (``SCHEMA``) as ``network_events`` rows."""
    n = table.num_rows
    col = {f: table.column(f).combine_chunks() for f in _TEXT_FIELDS}
    start = pc.cast(col["start_time"], pa.int64())
    end_text = pc.if_else(
        pc.is_in(col["end_time"], value_set=pa.array(["", "-"])), _NULL, col["end_time"]
    )
    observed = _mapped(col["src_ip"], _ip)
    private = _mapped(col["src_private_ip"], _ip)
    protocol_raw = pc.if_else(
        pc.fill_null(pc.equal(col["ip_protocol"], ""), True), col["proto"], col["ip_protocol"]
    )
    action_raw = _mapped(col["rule_result"], fields.text)
    log_type = _mapped(col["log_type"], fields.text)
    values: dict[str, Any] = {
        "ts": pc.multiply(start, 1_000_000_000),
        "ts_end": pc.multiply(pc.cast(end_text, pa.int64()), 1_000_000_000),
        "src_ip": pc.coalesce(private, observed),
        "src_port": _plain_int(col["src_port"], None, 5, 65535),
        "src_nat_ip": pc.if_else(
            pc.fill_null(pc.not_equal(observed, private), False), observed, _NULL
        ),
        "dst_ip": _mapped(col["dst_ip"], _ip),
        "dst_port": _plain_int(col["dst_port"], None, 5, 65535),
        "protocol": _mapped(protocol_raw, fields.protocol),
        "direction": _mapped(
            col["direction"],
            lambda v: DIRECTIONS.get((fields.text(v) or "").lower(), "unknown"),
            fill=True,
        ),
        "action": _mapped(
            action_raw, lambda v: ACTIONS.get((v or "").lower(), "unknown"), fill=True
        ),
        "action_raw": action_raw,
        "rule": _mapped(
            col["acl_rule_id"], lambda v: None if fields.text(v) == NO_ACL else fields.text(v)
        ),
        "signature": pc.coalesce(
            _mapped(col["ips_rule_name_en"], fields.text),
            _mapped(col["ips_rule_name"], fields.text),
        ),
        "category": pc.coalesce(
            _mapped(col["attack_type_name_en"], fields.text),
            _mapped(col["attack_type_name"], fields.text),
        ),
        "dst_domain": _mapped(col["domain"], lambda v: (fields.text(v) or "").lower() or None),
        "app": _mapped(col["app_name"], fields.text),
        "bytes_out": _plain_int(col["out_packet_bytes"], None, 18, None),
        "bytes_in": _plain_int(col["in_packet_bytes"], None, 18, None),
        "packets_out": _plain_int(col["out_packet_count"], None, 18, None),
        "packets_in": _plain_int(col["in_packet_count"], None, 18, None),
        "observer": _mapped(
            log_type, lambda v: f"alibaba-cfw/{v}" if v else "alibaba-cfw", fill=True
        ),
        "host_hint": pc.coalesce(
            _mapped(col["cloud_instance_id"], fields.text),
            _mapped(col["src_instance_id"], fields.text),
        ),
        "source_format": pa.repeat(pa.scalar(name, pa.string()), n),
        "source_path": pa.repeat(pa.scalar(source.display, pa.string()), n),
        "source_line": pa.array(lines, pa.int64()),
    }
    arrays = []
    for f in NETWORK_EVENTS:
        value = values.get(f.name)
        arrays.append(pa.nulls(n, f.type) if value is None else value.cast(f.type))
    return pa.Table.from_arrays(arrays, schema=NETWORK_EVENTS)


def _epoch_seconds(values: pa.Array, ok: np.ndarray, *, blank_ok: bool = False) -> pa.Array:
    """Plain epoch seconds (1-10 ASCII digits, in range) as int64; other values clear ``ok``
    (``blank_ok``: null, empty and ``-`` are null, as the per-line reader reads them)."""
    blank = pc.or_(pc.is_null(values), pc.is_in(values, value_set=pa.array(["", "-"])))
    plain = pc.and_(
        pc.ascii_is_decimal(values),
        pc.and_(
            pc.greater(pc.binary_length(values), 0), pc.less_equal(pc.binary_length(values), 10)
        ),
    )
    plain = pc.fill_null(plain, False)
    number = pc.cast(pc.if_else(plain, values, _NULL), pa.int64())
    plain = pc.and_(plain, pc.fill_null(pc.less_equal(number, _MAX_EPOCH_S), False))
    good = pc.or_(plain, blank) if blank_ok else plain
    ok &= np.asarray(pc.fill_null(good, False).to_numpy(zero_copy_only=False), dtype=bool)
    return pc.if_else(plain, number, pa.scalar(None, pa.int64()))


def _plain_int(
    values: pa.Array, ok: np.ndarray | None, digits: int, maximum: int | None
) -> pa.Array:
    """Counters and ports: plain ASCII digits (at most ``digits``, at most ``maximum``) as int64;
    null, empty and ``-`` are null; anything else clears ``ok`` (the per-line reader decides)."""
    blank = pc.or_(pc.is_null(values), pc.is_in(values, value_set=pa.array(["", "-"])))
    length = pc.binary_length(values)
    plain = pc.fill_null(
        pc.and_(
            pc.ascii_is_decimal(values),
            pc.and_(pc.greater(length, 0), pc.less_equal(length, digits)),
        ),
        False,
    )
    number = pc.cast(pc.if_else(plain, values, _NULL), pa.int64())
    if maximum is not None:
        plain = pc.and_(plain, pc.fill_null(pc.less_equal(number, maximum), False))
    if ok is not None:
        good = pc.fill_null(pc.or_(plain, blank), False)
        ok &= np.asarray(good.to_numpy(zero_copy_only=False), dtype=bool)
    return pc.if_else(plain, number, pa.scalar(None, pa.int64()))


class _Bad:
    """Marks a value the per-line reader would reject."""


_BAD = _Bad()


def _ip(value: str | None) -> str | None:
    return fields.ip(value, "address")


def _ip_or_bad(value: str | None) -> Any:
    try:
        return fields.ip(value, "address")
    except fields.RowError:
        return _BAD


def _mapped(
    values: pa.Array,
    convert: Callable[[Any], Any],
    ok: np.ndarray | None = None,
    *,
    fill: bool = False,
) -> pa.Array:
    """``convert`` applied once per distinct value; values it maps to ``_BAD`` clear ``ok``.

    With ``fill``, nulls are converted too (``convert(None)``); otherwise they stay null.
    """
    encoded = pc.dictionary_encode(values)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    converted = [convert(v) for v in encoded.dictionary.to_pylist()]
    bad = [i for i, v in enumerate(converted) if v is _BAD]
    if bad:
        assert ok is not None
        indices = encoded.indices
        hit = pc.fill_null(pc.is_in(indices, value_set=pa.array(bad, indices.type)), False)
        ok &= ~np.asarray(hit.to_numpy(zero_copy_only=False), dtype=bool)
        converted = [None if v is _BAD else v for v in converted]
    dictionary = pa.array(converted, pa.string())
    out = pc.take(dictionary, encoded.indices)
    if fill and out.null_count:
        out = pc.fill_null(out, pa.scalar(convert(None), pa.string()))
    return out


def _convert(record: dict[str, Any], options: LoadOptions) -> dict[str, Any]:
    """One CFW record to a ``network_events`` row (without provenance)."""
    zone = options.zone_for(name)
    notes: list[str] = []
    start: Any = record.get("start_time")
    if fields.is_blank(start):
        start = record.get("__time__")
        if fields.is_blank(start):
            raise fields.RowError("no start_time and no __time__")
        notes.append("start_time missing: used __time__ (when SLS stored the record)")
    try:
        ts, note = parse_time(
            start, default_tz=zone, epoch_unit=options.epoch_unit, expected_unit="s"
        )
    except TimeParseError as exc:
        raise fields.RowError(f"start_time: {exc}") from None
    if note:
        notes.append(note)
    ts_end = None
    if not fields.is_blank(record.get("end_time")):
        try:
            ts_end, note = parse_time(
                record["end_time"],
                default_tz=zone,
                epoch_unit=options.epoch_unit,
                expected_unit="s",
            )
        except TimeParseError as exc:
            raise fields.RowError(f"end_time: {exc}") from None
        if ts_end < ts:
            notes.append("end_time before start_time: end ignored")
            ts_end = None
    observed_src = fields.ip(record.get("src_ip"), "src_ip")
    private_src = fields.ip(record.get("src_private_ip"), "src_private_ip")
    src = private_src or observed_src
    if src is None:
        raise fields.RowError("src_ip is missing")
    dst = fields.ip(record.get("dst_ip"), "dst_ip", required=True)
    direction_raw = (fields.text(record.get("direction")) or "").lower()
    action_raw = fields.text(record.get("rule_result"))
    rule = fields.text(record.get("acl_rule_id"))
    log_type = fields.text(record.get("log_type"))
    return {
        "ts": ts,
        "ts_end": ts_end,
        "src_ip": src,
        "src_port": fields.port(record.get("src_port"), "src_port"),
        "src_nat_ip": observed_src if private_src and observed_src != private_src else None,
        "dst_ip": dst,
        "dst_port": fields.port(record.get("dst_port"), "dst_port"),
        "protocol": fields.protocol(record.get("ip_protocol") or record.get("proto")),
        "direction": DIRECTIONS.get(direction_raw, "unknown"),
        "action": ACTIONS.get((action_raw or "").lower(), "unknown"),
        "action_raw": action_raw,
        "rule": None if rule == NO_ACL else rule,
        "signature": fields.text(record.get("ips_rule_name_en"))
        or fields.text(record.get("ips_rule_name")),
        "category": fields.text(record.get("attack_type_name_en"))
        or fields.text(record.get("attack_type_name")),
        "dst_domain": (fields.text(record.get("domain")) or "").lower() or None,
        "app": fields.text(record.get("app_name")),
        # Counters as the log names them (out = sent by the cloud-side host).
        "bytes_out": fields.counter(record.get("out_packet_bytes"), "out_packet_bytes"),
        "bytes_in": fields.counter(record.get("in_packet_bytes"), "in_packet_bytes"),
        "packets_out": fields.counter(record.get("out_packet_count"), "out_packet_count"),
        "packets_in": fields.counter(record.get("in_packet_count"), "in_packet_count"),
        "observer": f"alibaba-cfw/{log_type}" if log_type else "alibaba-cfw",
        "host_hint": fields.text(record.get("cloud_instance_id"))
        or fields.text(record.get("src_instance_id")),
        "ts_note": "; ".join(notes) or None,
    }
