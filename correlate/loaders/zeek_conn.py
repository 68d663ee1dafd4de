"""Zeek ``conn.log``: the ASCII writer's header-driven TSV, or the JSON writer's lines.

Sources checked (field names and meanings):

- ``Conn::Info`` in ``base/protocols/conn/main.zeek`` (docs.zeek.org, v4.0 to v8.2 pages):
  ``ts`` "time of the first packet"; ``uid``; ``id`` (the 4-tuple, logged as ``id.orig_h``,
  ``id.orig_p``, ``id.resp_h``, ``id.resp_p``); ``proto``; ``service`` ("comma-separated list
  of confirmed protocols"); ``duration``; ``orig_bytes``/``resp_bytes`` (payload bytes);
  ``conn_state``; ``local_orig``/``local_resp`` (only set when ``Site::local_nets`` is
  configured); ``orig_pkts``/``resp_pkts``. ``conn_state`` values: S0 "connection attempt seen,
  no reply", REJ "connection attempt rejected", RSTOS0 "originator sent a SYN followed by a RST,
  we never saw a SYN-ACK", SH "originator sent a SYN followed by a FIN, we never saw a SYN ACK".
- zeek-docs ``logs/conn.rst`` and ``log-formats.rst``: the TSV header (``#separator \\x09``,
  ``#set_separator``, ``#empty_field (empty)``, ``#unset_field -``, ``#path``, ``#open``,
  ``#fields``, ``#types``, trailing ``#close``); non-printable bytes and the separator inside a
  value are written as ``\\xHH``; the JSON writer keeps the dotted ``id.*`` keys and omits unset
  fields; ``ts`` is epoch seconds (or ISO 8601 with ``LogAscii::json_timestamps``).
- Real files: SuperCowPowers/zat ``data/conn.log`` and ``data/json/conn.log`` (tests/data).

Every column is read by its name in ``#fields`` (never by position; old files lack
``local_resp``); a file may hold several header blocks (rotated logs concatenated), each one
replacing the previous. Lines are not in time order (Zeek writes a connection when it ends).

Mapping: ``ts`` -> ts (exact decimal seconds); ts + ``duration`` -> ts_end; ``id.orig_h``/
``id.orig_p`` -> src; ``id.resp_h``/``id.resp_p`` -> dst (ICMP "ports" are type/code and are
not stored); ``proto`` -> protocol; ``service`` -> app; ``orig_bytes``/``resp_bytes`` ->
bytes_out/bytes_in; ``orig_pkts``/``resp_pkts`` -> packets_out/packets_in; ``conn_state`` ->
action_raw; ``uid`` -> flow_key ``zeek:<uid>`` (dns/ssl/http logs enrich it by that key).
Direction from ``local_orig``/``local_resp``: T/F outbound, F/T inbound, T/T internal, else
unknown (the policy then decides by address).

Verdict: Zeek only watches; it blocks nothing, so every connection's action is ``unknown``
(pass ``--actions unknown`` to treat every connection as a violation candidate). Option
``--option zeek_conn.unanswered=denied`` maps TCP attempts that were never answered
(``conn_state`` S0, REJ, RSTOS0, SH) to ``denied``: right when the sensor sits inside an egress
firewall that drops or resets what it blocks, wrong on an open network (dead hosts and scans
look the same), hence not the default.

The TSV/JSON record reader here is shared by the ``zeek_dns``, ``zeek_ssl`` and ``zeek_http``
enrichment loaders.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from ..errors import OptionError
from ..schema import ENRICHMENT, NETWORK_EVENTS
from ..sources import Source, decode_line, iter_lines
from ..timeparse import TimeParseError, parse_time
from . import fields
from .base import Batcher, LoadOptions, LoadResult, LoadStats, RejectSink
from .records import first_line, json_line_records

name = "zeek_conn"
kind = "network"
description = "Zeek conn.log (TSV with #fields header, or JSON lines)"

OPTIONS = {
    "unanswered": "unknown (default) or denied: map unanswered TCP (S0, REJ, RSTOS0, SH) to denied",
}
"""``--option zeek_conn.KEY=VALUE`` settings."""

UNANSWERED_STATES = frozenset({"S0", "REJ", "RSTOS0", "SH"})
"""TCP connection states in which the responder never accepted the originator's SYN."""
UNANSWERED_CHOICES = ("unknown", "denied")

_CONN_KEYS = frozenset(
    {"conn_state", "history", "orig_pkts", "resp_pkts", "orig_ip_bytes", "missed_bytes"}
)
_ESCAPES = re.compile(r"(?:\\x[0-9a-fA-F]{2})+")
_CONTAINER_PREFIXES = ("set[", "vector[", "table[")
_HEADER = "Zeek header line"

ZeekRecord = tuple[int, dict[str, Any], str]


# --- the shared Zeek reader ---------------------------------------------------------------------


def unescape(text: str) -> str:
    """Undo the ASCII writer's ``\\xHH`` escapes (runs of them are UTF-8 bytes)."""
    if "\\x" not in text:
        return text
    return _ESCAPES.sub(
        lambda m: bytes.fromhex(m.group(0).replace("\\x", "")).decode("utf-8", "replace"), text
    )


@dataclass
class ZeekHeader:
    """The directives of one TSV header block (defaults as the ASCII writer documents them)."""

    separator: str = "\t"
    set_separator: str = ","
    empty_field: str = "(empty)"
    unset_field: str = "-"
    path: str | None = None
    fields: list[str] | None = None
    types: list[str] | None = None
    containers: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class ZeekHead:
    """What a file's head says about it: TSV or JSON, its ``#path`` and its field names."""

    tsv: bool
    path: str | None
    keys: frozenset[str]


def sniff_head(head: bytes) -> ZeekHead | None:
    """Read the first header block (TSV) or the first record (JSON) of a Zeek log; None if neither."""
    first = first_line(head)
    if first.startswith(b"#separator"):
        path: str | None = None
        keys: frozenset[str] = frozenset()
        separator = "\t"
        for raw in head.lstrip(b"\xef\xbb\xbf").splitlines():
            line = raw.decode("utf-8", "replace").rstrip("\r")
            if not line.startswith("#"):
                break
            if line.startswith("#separator"):
                separator = unescape(line[len("#separator") :].strip()) or "\t"
                continue
            directive, _, value = line[1:].partition(separator)
            if directive == "path":
                path = value.strip()
            elif directive == "fields":
                keys = frozenset(value.split(separator))
        return ZeekHead(tsv=True, path=path, keys=keys)
    if first.startswith(b"{"):
        try:
            record = json.loads(first)
        except (ValueError, RecursionError):
            return None
        if not isinstance(record, dict):
            return None
        record = _flatten_id(record)
        if "ts" not in record or "uid" not in record:
            return None
        path_value = record.get("_path")
        return ZeekHead(
            tsv=False,
            path=path_value if isinstance(path_value, str) else None,
            keys=frozenset(record),
        )
    return None


def zeek_records(
    source: Source, stats: LoadStats, sink: RejectSink, expected_path: str
) -> Iterator[ZeekRecord]:
    """Records of a Zeek TSV or JSON log as dicts keyed by field name, with exact line numbers.

    TSV values are text (``\\xHH`` undone), None when unset, ``""`` for an empty field, and lists
    for set/vector/table columns. Header lines, blank lines and records of another ``#path`` are
    counted here (read and skipped); the caller counts each record it is given as read.
    """
    head = first_line(source.head(4096))
    if head.startswith(b"#"):
        yield from _tsv_records(source, stats, sink, expected_path)
        return
    for line, record, raw in json_line_records(source, stats, sink):
        record = _flatten_id(record)
        path = record.get("_path")
        if isinstance(path, str) and path != expected_path:
            stats.read += 1
            stats.skipped[f"Zeek {path} record (not {expected_path})"] += 1
            continue
        yield line, record, raw


def _flatten_id(record: dict[str, Any]) -> dict[str, Any]:
    """Turn a nested ``"id": {"orig_h": ...}`` (some JSON pipelines) into Zeek's dotted keys."""
    nested = record.get("id")
    if isinstance(nested, dict):
        record = {k: v for k, v in record.items() if k != "id"}
        for key, value in nested.items():
            record.setdefault(f"id.{key}", value)
    return record


def _tsv_records(
    source: Source, stats: LoadStats, sink: RejectSink, expected_path: str
) -> Iterator[ZeekRecord]:
    header = ZeekHeader()
    for line, raw_bytes in iter_lines(source):
        text, note = decode_line(raw_bytes)
        if note:
            stats.notes[note] += 1
        if line == 1:
            text = text.removeprefix("\ufeff")
        if text.startswith("#"):
            stats.read += 1
            header = _header_line(text, header, line, stats, sink)
            continue
        if not text.strip():
            stats.read += 1
            stats.skipped["blank line"] += 1
            continue
        if header.fields is None:
            stats.read += 1
            sink.reject(line, "data line before any #fields header", text)
            continue
        if header.path is not None and header.path != expected_path:
            stats.read += 1
            stats.skipped[f"Zeek {header.path} record (not {expected_path})"] += 1
            continue
        values = text.split(header.separator)
        if len(values) != len(header.fields):
            stats.read += 1
            sink.reject(line, f"{len(values)} fields where #fields has {len(header.fields)}", text)
            continue
        yield line, _tsv_record(header, values), text


def _header_line(
    text: str, header: ZeekHeader, line: int, stats: LoadStats, sink: RejectSink
) -> ZeekHeader:
    """Apply one ``#`` line; ``#separator`` starts a new header block (rotated logs concatenated)."""
    if text.startswith("#separator"):
        stats.skipped[_HEADER] += 1
        value = unescape(text[len("#separator") :].strip())
        return ZeekHeader(separator=value or "\t")
    directive, found, value = text[1:].partition(header.separator)
    if not found:
        directive, _, value = text[1:].partition(" ")
    if directive == "fields":
        header.fields = value.split(header.separator)
        header.types = None
        header.containers = set()
    elif directive == "types":
        types = value.split(header.separator)
        if header.fields is None or len(types) != len(header.fields):
            expected = "no #fields" if header.fields is None else f"{len(header.fields)} #fields"
            sink.reject(line, f"#types has {len(types)} entries where there are {expected}", text)
            return header
        header.types = types
        header.containers = {
            f
            for f, t in zip(header.fields, types, strict=True)
            if t.startswith(_CONTAINER_PREFIXES)
        }
    elif directive == "set_separator":
        header.set_separator = unescape(value) or ","
    elif directive == "empty_field":
        header.empty_field = value
    elif directive == "unset_field":
        header.unset_field = value
    elif directive == "path":
        header.path = value.strip() or None
    elif directive not in ("open", "close"):
        stats.skipped["comment line"] += 1
        return header
    stats.skipped[_HEADER] += 1
    return header


def _tsv_record(header: ZeekHeader, values: list[str]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    assert header.fields is not None
    for key, value in zip(header.fields, values, strict=True):
        if value == header.unset_field:
            record[key] = None
        elif key in header.containers:
            record[key] = (
                []
                if value == header.empty_field
                else [unescape(v) for v in value.split(header.set_separator)]
            )
        elif value == header.empty_field:
            record[key] = ""
        else:
            record[key] = unescape(value)
    return record


def zeek_time(
    value: Any, label: str, format_name: str, options: LoadOptions
) -> tuple[int, str | None]:
    """A Zeek ``time`` value (epoch seconds, or ISO 8601 from the JSON writer) to ns and a note."""
    if fields.is_blank(value):
        raise fields.RowError(f"{label} is missing")
    if isinstance(value, (list, dict)):
        raise fields.RowError(f"{label} is not a time: {value!r}")
    try:
        return parse_time(
            value,
            default_tz=options.zone_for(format_name),
            epoch_unit=options.epoch_unit,
            expected_unit="s",
        )
    except TimeParseError as exc:
        raise fields.RowError(f"{label}: {exc}") from None


def zeek_bool(value: Any, label: str) -> bool | None:
    """A Zeek ``bool``: ``T``/``F`` in TSV, true/false in JSON; None when unset."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text in ("T", "true"):
            return True
        if text in ("F", "false"):
            return False
        if text in ("", "-"):
            return None
    raise fields.RowError(f"{label} is not a bool (T or F): {value!r}")


def address(value: Any, label: str) -> str:
    """A required address in canonical form."""
    result = fields.ip(value, label, required=True)
    assert result is not None
    return result


def zeek_uid(record: dict[str, Any]) -> str:
    """The connection ``uid`` (required: it is what other Zeek logs join on)."""
    uid = fields.text(record.get("uid"))
    if uid is None:
        raise fields.RowError("uid is missing")
    return uid


def interval_ns(value: Any, label: str) -> int | None:
    """A Zeek ``interval`` (decimal seconds) to integer ns, exactly; None when unset."""
    if fields.is_blank(value):
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise fields.RowError(f"{label} is not a number: {value!r}")
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip())
    except InvalidOperation:
        raise fields.RowError(f"{label} is not a number: {value!r}") from None
    if not number.is_finite():
        raise fields.RowError(f"{label} is not a number: {value!r}")
    return int(number * 1_000_000_000)


def domain_name(value: Any) -> str | None:
    """A DNS name as enrichment stores it: lower case, no trailing dot; None for blanks and IPs."""
    text = fields.text(value)
    if text is None or isinstance(value, (list, dict)):
        return None
    text = text.strip().rstrip(".").lower()
    if not text:
        return None
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return text
    return None


Fact = tuple[str, str | None, str | None]
"""An enrichment fact: (flow_key, dst_domain, app)."""
FactsOrSkip = list[Fact] | str
"""The facts a record gives, or the reason it gives none (counted as skipped)."""


def read_zeek_enrichment(
    source: Source,
    options: LoadOptions,
    format_name: str,
    path: str,
    facts: Callable[[dict[str, Any], str], FactsOrSkip],
) -> LoadResult:
    """Read a Zeek dns/ssl/http log into ``enrichment`` rows; ``facts(record, uid)`` says which.

    A record that gives several facts (a DNS answer naming several addresses) is loaded once and
    gives several rows, all at the record's ``ts``.
    """
    stats = LoadStats(path=source.display, format=format_name, kind="enrichment", unit="records")
    sink = RejectSink(source, stats, options.strict)
    batch = Batcher(ENRICHMENT)
    for line, record, raw in zeek_records(source, stats, sink, path):
        stats.read += 1
        try:
            uid = zeek_uid(record)
            ts, note = zeek_time(record.get("ts"), "ts", format_name, options)
            found = facts(record, uid)
        except fields.RowError as exc:
            sink.reject(line, str(exc), raw)
            continue
        if isinstance(found, str):
            stats.skipped[found] += 1
            continue
        for flow_key, domain, app in found:
            batch.add(
                {
                    "flow_key": flow_key,
                    "ts": ts,
                    "dst_domain": domain,
                    "app": app,
                    "source_format": format_name,
                    "source_path": source.display,
                    "source_line": line,
                }
            )
        stats.loaded += 1
        if note:
            stats.notes[note] += 1
    return LoadResult(kind="enrichment", table=batch.table(), stats=stats, rejects=sink.rejects)


def sniff_enrichment(head: bytes, path: str, required: set[str], any_of: set[str]) -> float:
    """Score for a Zeek side log: its ``#path``, else its field names (``required`` and one of ``any_of``)."""
    zeek = sniff_head(head)
    if zeek is None:
        return 0.0
    if zeek.path is not None:
        return 0.95 if zeek.path == path else 0.0
    if required <= zeek.keys and zeek.keys & any_of and not zeek.keys & _CONN_KEYS:
        return 0.9
    return 0.0


# --- conn.log -----------------------------------------------------------------------------------


def sniff(head: bytes, filename: str) -> float:
    """Score: a Zeek TSV header with ``#path conn``, or conn fields in the header or first record."""
    zeek = sniff_head(head)
    if zeek is None:
        return 0.0
    if zeek.path is not None:
        return 0.95 if zeek.path == "conn" else 0.0
    if {"uid", "id.orig_h", "id.resp_h"} <= zeek.keys and zeek.keys & _CONN_KEYS:
        return 0.9
    return 0.0


def read(source: Source, options: LoadOptions) -> LoadResult:
    """Read a Zeek conn.log (TSV or JSON) into ``network_events`` rows."""
    unanswered = options.option(name, "unanswered", "unknown") or "unknown"
    if unanswered not in UNANSWERED_CHOICES:
        raise OptionError(
            f"--option {name}.unanswered={unanswered}: use one of {', '.join(UNANSWERED_CHOICES)}"
        )
    stats = LoadStats(path=source.display, format=name, kind=kind, unit="connections")
    sink = RejectSink(source, stats, options.strict)
    batch = Batcher(NETWORK_EVENTS)
    for line, record, raw in zeek_records(source, stats, sink, "conn"):
        stats.read += 1
        try:
            row = _convert(record, options, unanswered == "denied")
        except fields.RowError as exc:
            sink.reject(line, str(exc), raw)
            continue
        row["source_format"] = name
        row["source_path"] = source.display
        row["source_line"] = line
        batch.add(row)
        stats.loaded += 1
        if row["ts_note"]:
            stats.notes[row["ts_note"]] += 1
    return LoadResult(kind=kind, table=batch.table(), stats=stats, rejects=sink.rejects)


def _direction(local_orig: bool | None, local_resp: bool | None) -> str:
    if local_orig is True and local_resp is False:
        return "outbound"
    if local_orig is False and local_resp is True:
        return "inbound"
    if local_orig is True and local_resp is True:
        return "internal"
    return "unknown"


def _convert(
    record: dict[str, Any], options: LoadOptions, unanswered_denied: bool
) -> dict[str, Any]:
    """One conn record to a ``network_events`` row (without provenance)."""
    uid = zeek_uid(record)
    ts, note = zeek_time(record.get("ts"), "ts", name, options)
    notes = [note] if note else []
    ts_end = None
    duration = interval_ns(record.get("duration"), "duration")
    if duration is not None:
        if duration < 0:
            notes.append("negative duration: end ignored")
        elif ts + duration >= 2**63 - 1:
            raise fields.RowError(f"duration out of range: {record.get('duration')!r}")
        else:
            ts_end = ts + duration
    protocol = fields.protocol(record.get("proto"))
    icmp = protocol in ("icmp", "ipv6-icmp", "icmp6")
    state = fields.text(record.get("conn_state"))
    action = "unknown"
    if unanswered_denied and protocol == "tcp" and state in UNANSWERED_STATES:
        action = "denied"
    return {
        "ts": ts,
        "ts_end": ts_end,
        "src_ip": address(record.get("id.orig_h"), "id.orig_h"),
        "src_port": None if icmp else fields.port(record.get("id.orig_p"), "id.orig_p"),
        "src_nat_ip": None,
        "dst_ip": address(record.get("id.resp_h"), "id.resp_h"),
        "dst_port": None if icmp else fields.port(record.get("id.resp_p"), "id.resp_p"),
        "protocol": protocol,
        "direction": _direction(
            zeek_bool(record.get("local_orig"), "local_orig"),
            zeek_bool(record.get("local_resp"), "local_resp"),
        ),
        "action": action,
        "action_raw": state,
        "rule": None,
        "signature": None,
        "category": None,
        "dst_domain": None,
        "app": fields.text(record.get("service")) or None,
        "bytes_out": fields.counter(record.get("orig_bytes"), "orig_bytes"),
        "bytes_in": fields.counter(record.get("resp_bytes"), "resp_bytes"),
        "packets_out": fields.counter(record.get("orig_pkts"), "orig_pkts"),
        "packets_in": fields.counter(record.get("resp_pkts"), "resp_pkts"),
        "observer": "zeek",
        "host_hint": None,
        "flow_key": f"zeek:{uid}",
        "ts_note": "; ".join(notes) or None,
    }
