"""AWS VPC Flow Logs as space-separated text: the v2 default format or any custom format (v3-v8).

Sources: "Flow log records" (docs.aws.amazon.com/vpc/latest/userguide/flow-log-records.html:
available fields with the version that introduced each, ``-`` for "not applicable", start/end in
Unix seconds, log-status OK/NODATA/SKIPDATA) and "Flow log record examples" (same guide,
flow-logs-records-examples.html: default records, NAT gateway with ``pkt-srcaddr``/``pkt-dstaddr``,
v5 with ``flow-direction``); v7 ECS fields per the AWS blog "Introducing VPC Flow Logs for Elastic
Container Services" and the CDK ``LogFormat`` enum. ``reject-reason`` (v8, e.g. ``BPA``) is taken
from ../shared/formats/firewall_formats.md section 2a, not re-verified against the AWS page.

The field order comes from, in this order of precedence: a header line of field names in the file
(what S3 delivery writes; any later header line switches the format, so concatenated objects of
different flow logs read right), ``--option aws_vpc_flow.fields="version account-id ..."`` (the
flow log's ``LogFormat``; ``${field}`` and ``field_name`` spellings are accepted), else the v2
default order. A format without ``start`` cannot place records in time: its records are rejected
with that reason. Parquet flow logs are out of scope (convert them to text first); a line with
anything added before its first field (say, a shipper's own timestamp) is rejected for its field
count.

Mapping: ``ts``/``ts_end`` = ``start``/``end`` (Unix seconds: the first/last packet within the
aggregation window, so up to a minute late); ``action`` ACCEPT -> allowed, REJECT -> denied
(``action_raw`` keeps it); ``direction`` from ``flow-direction`` ingress -> inbound, egress ->
outbound, else unknown (the policy decides by address); ``src_ip`` = ``pkt-srcaddr`` when present
and different from ``srcaddr``, with ``srcaddr`` (the interface's address) in ``src_nat_ip``;
``dst_ip`` = ``pkt-dstaddr`` when present (the real destination behind a NAT gateway), else
``dstaddr``; ``protocol`` IANA number -> name; ``rule`` = ``reject-reason``; ``host_hint`` =
``instance-id``, else ``ecs-task-id``, else ``ecs-container-id``, else ``interface-id``. A record
has one counter pair (``bytes``/``packets``, one direction on one interface): it goes to
``bytes_in``/``packets_in`` for ingress records and to ``bytes_out``/``packets_out`` otherwise
(egress, and when the direction is unknown). NODATA and SKIPDATA records are counted as skipped;
header lines and blank lines too.

Options: ``--option aws_vpc_flow.fields="..."`` (default: the v2 default format) as above.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from ..errors import OptionError
from ..schema import NETWORK_EVENTS
from ..sources import Source, decode_line, iter_lines
from ..timeparse import TimeParseError, parse_epoch
from . import fields
from .base import Batcher, LoadOptions, LoadResult, LoadStats, RejectSink

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

# Flow logs repeat the same few addresses millions of times: parse each once.
_ip = lru_cache(maxsize=1 << 16)(fields.ip)

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


def _format_problem(names: list[str]) -> str | None:
    """Why records of this field list cannot be read (a name twice, no ``start``), else None."""
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        return f"names {', '.join(duplicates)} more than once"
    if "start" not in names:
        return "has no start field, so its records cannot be placed in time"
    return None


def read(source: Source, options: LoadOptions) -> LoadResult:
    """Read one flow-log text file into ``network_events`` rows, line by line."""
    stats = LoadStats(path=source.display, format=name, kind=kind)
    sink = RejectSink(source, stats, options.strict)
    batch = Batcher(NETWORK_EVENTS)
    option = options.option(name, "fields")
    layout = list(DEFAULT_FIELDS)
    layout_problem: str | None = None
    if option is not None:
        layout = field_names(option)
        if not any(n in KNOWN_FIELDS for n in layout):
            raise OptionError(
                f"--option {name}.fields: no flow-log field names in {option!r} "
                "(write e.g. 'version account-id interface-id srcaddr ...')"
            )
        problem = _format_problem(layout)
        if problem:
            raise OptionError(f"--option {name}.fields {problem}")
    for line, raw_bytes in iter_lines(source):
        raw, note = decode_line(raw_bytes)
        if note:
            stats.notes[note] += 1
        if line == 1:
            raw = raw.removeprefix("\ufeff")
        stats.read += 1
        tokens = raw.split()
        if not tokens:
            stats.skipped["blank line"] += 1
            continue
        names = field_names(raw) if tokens[0][0].isalpha() else []  # records start with digits
        if _is_header(names):
            layout = names
            problem = _format_problem(names)
            layout_problem = f"the header line {line} {problem}" if problem else None
            stats.skipped["header line"] += 1
            continue
        if len(tokens) != len(layout):
            sink.reject(line, f"{len(tokens)} fields where the format has {len(layout)}", raw)
            continue
        if layout_problem:
            sink.reject(line, layout_problem, raw)
            continue
        values = {
            key: None if value == "-" else value for key, value in zip(layout, tokens, strict=True)
        }
        status = values.get("log-status")
        if status in NO_DATA:
            stats.skipped[f"log-status {status}"] += 1
            continue
        try:
            row = _convert(values, options)
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
    srcaddr = _ip(values.get("srcaddr"), "srcaddr")
    packet_src = _ip(values.get("pkt-srcaddr"), "pkt-srcaddr")
    src = packet_src or srcaddr
    if src is None:
        raise fields.RowError("srcaddr is missing")
    dst = _ip(values.get("pkt-dstaddr"), "pkt-dstaddr") or _ip(values.get("dstaddr"), "dstaddr")
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
