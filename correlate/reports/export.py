"""Exports for analysts' tools: Parquet, spreadsheet-safe CSV, JSON lines, OCSF and Timesketch.

* ``parquet``: the Parquet report of ``correlate run -o`` (attributions, findings, candidates,
  stats), each file carrying ``correlate.provenance`` in its key-value metadata.
* ``csv`` / ``jsonl``: the same four tables with the same columns (``reports.parquet``'s
  ``REPORT_SCHEMAS``): ``OUTPUT`` holds the attributions (one row per violation event),
  ``<stem>.findings``, ``<stem>.candidates`` and ``<stem>.stats`` sit beside it and
  ``<stem>.provenance.json`` holds the provenance. Times are ISO 8601 in UTC (``Z``, as many
  fraction digits as the nanoseconds need); list columns are JSON arrays in JSON lines and joined
  with ``"; "`` (``LIST_DELIMITER``) in CSV.
* ``ocsf``: one OCSF 1.4.0 Network Activity event (class_uid 4001) per violation event, JSON
  lines, with the attributed call in ``enrichments`` and correlate's own fields in ``unmapped``.
* ``timesketch``: Timesketch JSON lines (``message``, ``datetime``, ``timestamp_desc``, ``tag``),
  one line per violation event and one per tool call of every episode involved.

OCSF and Timesketch share one clock: the aligned one (the trajectories' clock: a violation's time
as its firewall logged it minus the clock offset applied, ``clock_offset_s``), which is the clock
the attribution used; the logged time is kept beside it (``metadata.original_time``,
``logged_time``).

CSV text cells are inert in a terminal and in a spreadsheet (``textsafe.csv_text``): control
characters, escape sequences and bidi overrides are shown escaped as on the terminal (``\\x1b``,
``\\u202e``), and a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
(or their fullwidth forms, U+FF1D...) gets a leading apostrophe (``'``) so that no spreadsheet
reads it as a formula; numbers are written as numbers. JSON is written ASCII-only (every other
character, and DEL, as a ``\\u`` escape), so control characters and bidi overrides cannot act in
a terminal or an editor. Every file is written to a temporary name and renamed; the same case and
flags give the same bytes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .. import __version__
from ..atomic import file_set, set_manifest_path
from ..pipeline import Result
from ..query import format_time
from ..schema import CALL_KEY, plain_rows
from ..textsafe import FORMULA_PREFIXES, csv_text, inert, inert_json
from .parquet import (
    attribution_rows,
    protected_files,
    report_tables,
    write_report,
)


@dataclass(frozen=True)
class Exporter:
    """One export format: how ``export`` writes it and what ``--help`` says of it.

    ``tables``: the four report tables as files (``render`` turns one table into text; None:
    Parquet, written by ``write_report``); otherwise one file of event records (``records``)."""

    name: str
    help: str
    tables: bool
    render: Callable[[pa.Table], str] | None = None
    records: Callable[[Result], Iterable[dict[str, Any]]] | None = None


EXPORTERS: dict[str, Exporter] = {}
"""Every export format, in the order ``--help`` lists them (filled below, once the writers exist)."""

LIST_DELIMITER = "; "
"""How a CSV cell joins the values of a list column (``labels``, ``actions``, ``reasons``)."""
OCSF_VERSION = "1.4.0"
"""The OCSF schema version the ``ocsf`` export follows (attributes and enums checked against it)."""
CLOCK = "aligned"
"""The clock of the OCSF and Timesketch times: the trajectories' (logged time - clock_offset_s)."""
CLOCK_NOTE = (
    "aligned: the trajectories' clock, i.e. each violation's time as its firewall logged it minus "
    "the clock offset applied to its source (clock_offset_s); the clock the attribution used"
)


# --- CSV and JSON lines ---------------------------------------------------------------------


def csv_cell(text: str) -> str:
    """A text cell inert in a terminal and a spreadsheet (``textsafe.csv_text``): controls and
    bidi shown escaped, formula-like starts (fullwidth too) behind a leading ``'``."""
    return csv_text(text)


def _value(value: Any, kind: pa.DataType, zone: tzinfo) -> Any:
    """A cell as a plain value: timestamps as ISO 8601 in ``zone`` (exact), others unchanged."""
    if value is None:
        return None
    if pa.types.is_timestamp(kind):
        return format_time(int(value), zone)
    return value


def table_records(table: pa.Table, zone: tzinfo = UTC) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts in column order: times ISO 8601 in ``zone``, lists as lists."""
    kinds = [f.type for f in table.schema]
    return [
        {k: _value(v, kind, zone) for (k, v), kind in zip(row.items(), kinds, strict=True)}
        for row in plain_rows(table)
    ]


def table_csv(table: pa.Table, zone: tzinfo = UTC, *, terminal: bool = False) -> str:
    """``table`` as CSV (header, ``\\n`` line ends); every text cell is ``csv_cell``: inert for a
    terminal (wherever the CSV goes: a file or a pipe reaches one through ``cat``) and for a
    spreadsheet.

    A list cell joins its values with ``LIST_DELIMITER``. ``terminal`` is accepted for callers
    that tell an interactive terminal apart; the cells are the same either way.
    """
    del terminal
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.column_names)
    kinds = [f.type for f in table.schema]
    for row in plain_rows(table):
        cells = []
        for value, kind in zip(row.values(), kinds, strict=True):
            plain = _value(value, kind, zone)
            if isinstance(plain, list):
                plain = LIST_DELIMITER.join(str(v) for v in plain if v is not None)
            if plain is None:
                cells.append("")
            elif isinstance(plain, str):
                cells.append(csv_cell(plain))
            elif isinstance(plain, bool):
                cells.append("true" if plain else "false")
            else:
                cells.append(repr(plain) if isinstance(plain, float) else str(plain))
        writer.writerow(cells)
    return buffer.getvalue()


def _json_line(record: Any) -> str:
    return inert_json(record, ascii_only=True, sort_keys=True, separators=(",", ":")) + "\n"


def table_jsonl(table: pa.Table, zone: tzinfo = UTC) -> str:
    """``table`` as JSON lines, one object per row in column order (times ISO 8601 in ``zone``)."""
    return "".join(
        inert_json(record, ascii_only=True, separators=(",", ":")) + "\n"
        for record in table_records(table, zone)
    )


# --- rows shared by OCSF and Timesketch -------------------------------------------------------


def _events(result: Result) -> tuple[list[dict[str, Any]], dict[Any, dict[str, Any]]]:
    """Violation rows (the attributions columns over the raw event fields), and findings by id."""
    details = {r["event_id"]: r for r in plain_rows(result.violations)}
    findings = {r["conversation_id"]: r for r in plain_rows(result.findings)}
    rows = []
    for row in attribution_rows(result):
        event = details.get(row["event_id"], {})
        labels = [x for x in str(row.get("labels") or "").split(",") if x]
        rows.append({**event, **row, "labels": labels})
    return rows, findings


def _logged(row: dict[str, Any]) -> int:
    """The event's time as its firewall logged it (the aligned time plus the offset applied)."""
    return int(row["ts"]) + int(row.get("clock_offset_ns") or 0)


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None and v != {} and v != []}


def _message(row: dict[str, Any]) -> str:
    port = f":{row['dst_port']}" if row.get("dst_port") is not None else ""
    domain = f" ({row['dst_domain']})" if row.get("dst_domain") else ""
    source = f"{row['src_ip']}" + (f" ({row['src_host']})" if row.get("src_host") else "")
    labels = f" [{','.join(row['labels'])}]" if row.get("labels") else ""
    protocol = f" {row['protocol']}" if row.get("protocol") else ""
    text = f"{row['action']}{protocol} {source} -> {row['dst_ip']}{port}{domain}{labels}"
    if row.get("call_id"):
        step = f" step {row['step']}" if row.get("step") is not None else ""
        text += (
            f"; {row['how']} from {row['tool']} call {row['call_id']} (episode "
            f"{row['episode_id']}{step}, confidence {row['confidence']})"
        )
    else:
        text += "; not attributed"
    return inert(text)


def _reasons(finding: dict[str, Any]) -> list[str]:
    return [r for r in str(finding.get("reasons") or "").split("; ") if r]


# --- OCSF -----------------------------------------------------------------------------------

_PROTOCOL_NUMBERS = {
    "icmp": 1,
    "tcp": 6,
    "udp": 17,
    "gre": 47,
    "esp": 50,
    "icmpv6": 58,
    "sctp": 132,
}
_ACTION = {
    # verdict: (action_id, action, disposition_id, disposition)
    "allowed": (1, "Allowed", 1, "Allowed"),
    "alerted": (1, "Allowed", 19, "Alert"),
    "denied": (2, "Denied", 2, "Blocked"),
    "unknown": (0, "Unknown", 0, "Unknown"),
}
_STATUS = {
    # verdict: (status_id, status): did the connection go through?
    "allowed": (1, "Success"),
    "alerted": (1, "Success"),
    "denied": (2, "Failure"),
    "unknown": (0, "Unknown"),
}
_DIRECTION = {"inbound": (1, "Inbound"), "outbound": (2, "Outbound"), "internal": (3, "Lateral")}
_BOUNDARY = {"internal": (2, "Internal"), "metadata": (2, "Internal"), "external": (3, "External")}
OCSF_ACTIVITY_ID, OCSF_ACTIVITY = 6, "Traffic"

OCSF_SEVERITIES = {
    0: "Unknown",
    1: "Informational",
    2: "Low",
    3: "Medium",
    4: "High",
    5: "Critical",
}
LABEL_SEVERITY = {"exfiltration": 5, "reverse_tunnel": 4, "mining": 4, "internal_probe": 3}
"""OCSF ``severity_id`` of a conversation label attributed with high confidence (no label: 2)."""
CONFIDENCE_STEPS_DOWN = {"high": 0, "medium": 1, "low": 2, "none": 2}
"""How many severity steps a lower attribution confidence takes off (never below 1)."""


def ocsf_severity(labels: Iterable[str], confidence: str | None) -> tuple[int, str]:
    """(``severity_id``, ``severity``) of a violation from its labels and attribution confidence.

    The worst label gives the level (exfiltration 5 Critical; reverse_tunnel and mining 4 High;
    internal_probe 3 Medium; no label 2 Low); a medium-confidence attribution is one step lower,
    a low-confidence one or none two steps, never below 1 (Informational). So an attributed
    tunnel is High, the same tunnel unattributed Low, an unlabelled unattributed denial
    Informational.
    """
    level = max((LABEL_SEVERITY.get(label, 2) for label in labels), default=2)
    level -= CONFIDENCE_STEPS_DOWN.get(str(confidence), 2)
    level = max(level, 1)
    return level, OCSF_SEVERITIES[level]


def _ms(ns: int | None) -> int | None:
    return None if ns is None else int(ns) // 1_000_000


def _event_uid(row: dict[str, Any]) -> str:
    """A stable id for an event: its file, line and logged time (not the renumbered event_id)."""
    text = f"{row['source_path']}\x00{row['source_line']}\x00{_logged(row)}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _observables(row: dict[str, Any]) -> list[dict[str, Any]]:
    """OCSF observables for the event's addresses, destination domain and sandbox."""
    found = [
        ("src_endpoint.ip", 2, "IP Address", row.get("src_ip")),
        ("src_endpoint.intermediate_ips", 2, "IP Address", row.get("src_nat_ip")),
        ("src_endpoint.hostname", 1, "Hostname", row.get("src_host")),
        ("dst_endpoint.ip", 2, "IP Address", row.get("dst_ip")),
        ("dst_endpoint.hostname", 1, "Hostname", row.get("dst_domain")),
    ]
    return [
        {"name": name, "type_id": type_id, "type": kind, "value": str(value)}
        for name, type_id, kind, value in found
        if value
    ]


def ocsf_records(result: Result) -> list[dict[str, Any]]:
    """One OCSF 1.4.0 Network Activity event per violation event, with the attributed call.

    Attributes follow the OCSF schema 1.4.0 (ocsf/ocsf-schema): ``events/base_event.json``,
    ``events/network/network.json`` and ``network_activity.json`` (class 4001, activity 6
    Traffic) and ``profiles/security_control.json`` (action_id 1 Allowed, 2 Denied;
    disposition_id 1 Allowed, 2 Blocked, 19 Alert; ``is_alert``, set only for alerted events).

    ``time`` (and ``start_time``/``end_time``) is on the aligned clock, the trajectories' one
    that the attribution used and that the Timesketch export uses too; the time as the firewall
    logged it is ``metadata.original_time`` (ISO 8601) and ``unmapped.correlate.logged_time_ns``.
    ``severity_id`` comes from the labels and the confidence (``ocsf_severity``); ``status_id`` is
    1 Success for a connection that went through (allowed, alerted), 2 Failure for a denied one.
    """
    rows, findings = _events(result)
    out = []
    for row in rows:
        verdict = str(row.get("action"))
        action_id, action, disposition_id, disposition = _ACTION.get(verdict, _ACTION["unknown"])
        status_id, status = _STATUS.get(verdict, _STATUS["unknown"])
        severity_id, severity = ocsf_severity(row["labels"], row.get("confidence"))
        direction = _DIRECTION.get(str(row.get("direction")))
        boundary = _BOUNDARY.get(str(row.get("dst_scope")))
        protocol = (row.get("protocol") or "").lower() or None
        finding = findings.get(row["conversation_id"], {})
        traffic = _drop_none(
            {
                "bytes_out": row.get("bytes_out"),
                "bytes_in": row.get("bytes_in"),
                "packets_out": row.get("packets_out"),
                "packets_in": row.get("packets_in"),
            }
        )
        if "bytes_out" in traffic or "bytes_in" in traffic:
            traffic["bytes"] = (traffic.get("bytes_out") or 0) + (traffic.get("bytes_in") or 0)
        if "packets_out" in traffic or "packets_in" in traffic:
            traffic["packets"] = (traffic.get("packets_out") or 0) + (
                traffic.get("packets_in") or 0
            )
        call = {
            "call_id": row.get("call_id"),
            "run": row.get("run_id"),
            "episode": row.get("episode_id"),
            "step": row.get("step"),
            "host": row.get("host"),
            "tool": row.get("tool"),
            "command": row.get("command"),
            "call_start": format_time(row["call_ts_start"])
            if row.get("call_ts_start") is not None
            else None,
            "how": row.get("how"),
            "lag_s": row.get("lag_s"),
            "confidence": row.get("confidence"),
            "candidates": row.get("candidates"),
            "reasons": _reasons(finding),
        }
        record = {
            "activity_id": OCSF_ACTIVITY_ID,
            "activity_name": OCSF_ACTIVITY,
            "category_uid": 4,
            "category_name": "Network Activity",
            "class_uid": 4001,
            "class_name": "Network Activity",
            "type_uid": 4001 * 100 + OCSF_ACTIVITY_ID,
            "type_name": f"Network Activity: {OCSF_ACTIVITY}",
            "severity_id": severity_id,
            "severity": severity,
            "status_id": status_id,
            "status": status,
            "action_id": action_id,
            "action": action,
            "disposition_id": disposition_id,
            "disposition": disposition,
            "is_alert": True if verdict == "alerted" else None,
            "time": _ms(row["ts"]),
            "start_time": _ms(row["ts"]),
            "end_time": _ms(row.get("ts_end")),
            "timezone_offset": 0,
            "count": 1,
            "message": _message(row),
            "app_name": row.get("app"),
            "src_endpoint": _drop_none(
                {
                    "ip": row.get("src_ip"),
                    "port": row.get("src_port"),
                    "hostname": row.get("src_host"),
                    "intermediate_ips": [row["src_nat_ip"]] if row.get("src_nat_ip") else None,
                }
            ),
            "dst_endpoint": _drop_none(
                {
                    "ip": row.get("dst_ip"),
                    "port": row.get("dst_port"),
                    "hostname": row.get("dst_domain"),
                }
            ),
            "connection_info": _drop_none(
                {
                    "protocol_name": protocol,
                    "protocol_num": _PROTOCOL_NUMBERS.get(protocol or ""),
                    "direction_id": direction[0] if direction else 0,
                    "direction": direction[1] if direction else "Unknown",
                    "boundary_id": boundary[0] if boundary else None,
                    "boundary": boundary[1] if boundary else None,
                }
            ),
            "traffic": traffic or None,
            "firewall_rule": _drop_none({"uid": row.get("rule"), "name": row.get("signature")})
            or None,
            "observables": _observables(row),
            "metadata": _drop_none(
                {
                    "version": OCSF_VERSION,
                    "product": {
                        "name": "correlate",
                        "vendor_name": "correlate",
                        "version": __version__,
                    },
                    "profiles": ["security_control"],
                    "uid": _event_uid(row),
                    "correlation_uid": f"conversation-{row['conversation_id']}",
                    "labels": row["labels"],
                    "log_name": row.get("source_format"),
                    "original_time": format_time(_logged(row)),
                }
            ),
            "enrichments": [
                {
                    "name": "attributed_tool_call",
                    "value": row.get("call_id") or "none",
                    "type": "correlate.attribution",
                    "provider": "correlate",
                    "data": call,
                }
            ],
            "unmapped": {
                "correlate": _drop_none(
                    {
                        "event_id": row["event_id"],
                        "conversation_id": row["conversation_id"],
                        "labels": row["labels"],
                        "how": row.get("how"),
                        "confidence": row.get("confidence"),
                        "candidates": row.get("candidates"),
                        "clock": CLOCK,
                        "time_ns": row["ts"],
                        "logged_time_ns": _logged(row),
                        "clock_offset_s": row.get("clock_offset_s"),
                        "source_format": row.get("source_format"),
                        "source_path": row.get("source_path"),
                        "source_line": row.get("source_line"),
                    }
                )
            },
        }
        out.append(_drop_none(record))
    return out


# --- Timesketch -----------------------------------------------------------------------------

_VIOLATION_FIELDS = (
    "event_id",
    "conversation_id",
    "src_ip",
    "src_nat_ip",
    "src_port",
    "src_host",
    "dst_ip",
    "dst_port",
    "protocol",
    "dst_domain",
    "action",
    "rule",
    "signature",
    "how",
    "call_id",
    "run_id",
    "episode_id",
    "step",
    "host",
    "tool",
    "command",
    "lag_s",
    "confidence",
    "candidates",
    "source_format",
    "source_path",
    "source_line",
)
_CALL_FIELDS = (
    "call_id",
    "run_id",
    "episode_id",
    "step",
    "host",
    "host_ip",
    "tool",
    "command",
    "exit_code",
    "source_path",
    "source_line",
)


def timesketch_time(ns: int) -> tuple[str, int]:
    """(ISO 8601 with microseconds and offset, microseconds since the epoch) for Timesketch."""
    micros = int(ns) // 1000
    moment = datetime.fromtimestamp(micros // 1_000_000, tz=UTC).replace(
        microsecond=micros % 1_000_000
    )
    return moment.isoformat(timespec="microseconds"), micros


def involved_episodes(result: Result) -> set[tuple[Any, Any]]:
    """(run_id, episode_id) of every episode involved in a finding.

    An episode is involved when one of its calls is a violation's candidate or attributed call,
    or when it ran on a violation's source sandbox at the violation's time (its first call's
    start to its last call's end).
    """
    involved: set[tuple[Any, Any]] = set()
    for table in (result.candidates, result.attributions):
        for r in plain_rows(table.select(["run_id", "episode_id", "call_id"])):
            if r["call_id"] is not None:
                involved.add((r["run_id"], r["episode_id"]))
    calls = result.loaded.calls.select(["run_id", "episode_id", "host", "ts_start", "ts_end"])
    calls = calls.filter(pc.and_(pc.is_valid(calls["ts_start"]), pc.is_valid(calls["host"])))
    start = pc.cast(calls["ts_start"], pa.int64())
    end = pc.max_element_wise(pc.fill_null(pc.cast(calls["ts_end"], pa.int64()), start), start)
    calls = calls.set_column(calls.schema.get_field_index("ts_start"), "ts_start", start)
    calls = calls.set_column(calls.schema.get_field_index("ts_end"), "ts_end", end)
    spans = calls.group_by(["run_id", "episode_id"], use_threads=False).aggregate(
        [("host", "first"), ("ts_start", "min"), ("ts_end", "max")]
    )
    by_host: dict[str, list[tuple[int, int, tuple[Any, Any]]]] = defaultdict(list)
    for span in plain_rows(spans):
        key = (span["run_id"], span["episode_id"])
        by_host[span["host_first"]].append((span["ts_start_min"], span["ts_end_max"], key))
    for v in plain_rows(result.violations.select(["src_host", "ts"])):
        for first, last, key in by_host.get(v["src_host"], []):
            if first <= v["ts"] <= last:
                involved.add(key)
    return involved


def timesketch_records(result: Result) -> list[dict[str, Any]]:
    """Timesketch JSON lines: one per violation event, one per call of every involved episode.

    Every time is on the aligned clock (``clock``: the trajectories' one, as in the OCSF export);
    a violation's time as its firewall logged it is in ``logged_time``. ``tag`` lists the
    conversation's labels (for a call: the labels of the violations attributed to it).
    """
    rows, _ = _events(result)
    records: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    attributed: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    call_labels: dict[tuple[Any, ...], set[str]] = defaultdict(set)
    for row in rows:
        when, micros = timesketch_time(row["ts"])
        record = {
            "message": _message(row),
            "datetime": when,
            "timestamp": micros,
            "timestamp_desc": "Firewall violation",
            "data_type": "correlate:violation",
            "clock": CLOCK,
            "logged_time": format_time(_logged(row)),
            "clock_offset_s": row.get("clock_offset_s"),
            **{k: row.get(k) for k in _VIOLATION_FIELDS},
            "call_start": format_time(row["call_ts_start"])
            if row.get("call_ts_start") is not None
            else None,
            "time_ns": row["ts"],
        }
        records.append(
            ((row["ts"], 1, row["event_id"], ""), {**_drop_none(record), "tag": row["labels"]})
        )
        if row.get("call_id"):
            key = tuple(row[k] for k in CALL_KEY)
            attributed[key].append(row["event_id"])
            call_labels[key].update(row["labels"])
    candidate_of: dict[tuple[Any, ...], set[int]] = defaultdict(set)
    for c in plain_rows(result.candidates.select([*CALL_KEY, "event_id"])):
        candidate_of[tuple(c[k] for k in CALL_KEY)].add(c["event_id"])
    episodes = involved_episodes(result)
    calls = result.loaded.calls
    named = pa.array(sorted({e for _, e in episodes if e is not None}), pa.string())
    chosen = pc.is_in(calls["episode_id"], value_set=named)
    if any(e is None for _, e in episodes):
        chosen = pc.or_(pc.fill_null(chosen, False), pc.is_null(calls["episode_id"]))
    for call in plain_rows(calls.filter(pc.fill_null(chosen, False))):
        if (call["run_id"], call["episode_id"]) not in episodes or call["ts_start"] is None:
            continue
        key = tuple(call[k] for k in CALL_KEY)
        when, micros = timesketch_time(call["ts_start"])
        events = attributed.get(key, [])
        step = f" step {call['step']}" if call["step"] is not None else ""
        message = (
            f"{call['tool']} call {call['call_id']} (episode {call['episode_id']}{step}, "
            f"host {call['host']}): {call['command'] or call['arguments'] or ''}"
        )
        if events:
            message += f" -> {len(events)} violation(s) attributed"
        record = {
            "message": inert(message, 2000),
            "datetime": when,
            "timestamp": micros,
            "timestamp_desc": "Tool call start",
            "data_type": "correlate:tool_call",
            "clock": CLOCK,
            **{k: call.get(k) for k in _CALL_FIELDS},
            "ts_end": format_time(call["ts_end"]) if call["ts_end"] is not None else None,
            "attributed_events": events or None,
            "candidate_of": sorted(candidate_of.get(key, ())) or None,
            "time_ns": call["ts_start"],
        }
        order = (call["ts_start"], 0, 0, f"{call['source_path']}\x00{call['source_line']}")
        records.append((order, {**_drop_none(record), "tag": sorted(call_labels.get(key, ()))}))
    records.sort(key=lambda item: item[0])
    return [r for _, r in records]


# --- writing --------------------------------------------------------------------------------


def export_paths(output: str | os.PathLike[str], fmt: str) -> dict[str, Path]:
    """The files ``export`` writes for ``-o OUTPUT`` in format ``fmt``, by table name."""
    path = Path(output)
    if not EXPORTERS[fmt].tables:
        return {
            fmt: path,
            "provenance": path.with_name(f"{_stem(path.name, '.jsonl')}.provenance.json"),
        }
    suffix = f".{fmt}"
    stem = _stem(path.name, suffix)
    return {
        "attributions": path,
        "findings": path.with_name(f"{stem}.findings{suffix}"),
        "candidates": path.with_name(f"{stem}.candidates{suffix}"),
        "stats": path.with_name(f"{stem}.stats{suffix}"),
        "provenance": path.with_name(f"{stem}.provenance.json"),
    }


def _stem(name: str, suffix: str) -> str:
    return name[: -len(suffix)] if name.endswith(suffix) and len(name) > len(suffix) else name


def _provenance(
    result: Result, fmt: str, permutations: int, baseline: list[dict[str, Any]] | None = None
) -> str:
    """The provenance file's JSON: ``Result.provenance`` with the export's format and conventions
    (and, beside a stats table, the in-flight baseline the Parquet keeps in its metadata)."""
    data = result.provenance()
    data["parameters"]["permutations"] = permutations
    if baseline is not None:
        data["baseline"] = baseline
    data["export"] = {"format": fmt}
    if EXPORTERS[fmt].render is not None:
        data["export"]["times"] = "ISO 8601, UTC"
        if fmt == "csv":
            data["export"]["list_delimiter"] = LIST_DELIMITER
    if not EXPORTERS[fmt].tables:
        data["export"]["clock"] = CLOCK_NOTE
    if fmt == "ocsf":
        data["export"]["ocsf_version"] = OCSF_VERSION
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=True) + "\n"


def export(
    result: Result,
    fmt: str,
    output: str | os.PathLike[str],
    *,
    permutations: int = 999,
    zone: tzinfo | None = None,
) -> dict[str, Path]:
    """Write ``result`` in ``fmt`` to ``output`` and its sibling files, as one set; returns them
    by name, with the set's manifest as ``files``.

    CSV and JSON lines carry the Parquet report's tables, column for column, with times in UTC
    whatever ``zone`` (accepted for callers that pass the display zone; files are always UTC).
    """
    del zone  # files are UTC: the same bytes whatever the display zone
    exporter = EXPORTERS.get(fmt)
    if exporter is None:
        raise ValueError(f"unknown export format {fmt!r}")
    if exporter.tables and exporter.render is None:
        return write_report(result, output, permutations=permutations)
    every = export_paths(output, fmt)
    texts: dict[str, str] = {}
    baseline = None
    if exporter.records is not None:
        texts[fmt] = records_jsonl(exporter.records(result))
    else:
        assert exporter.render is not None
        tables, baselines = report_tables(result, permutations)
        if "stats" in tables:
            baseline = [asdict(b) for b in baselines]
        for name, table in tables.items():
            texts[name] = exporter.render(table)
    texts["provenance"] = _provenance(result, fmt, permutations, baseline)
    paths = {name: path for name, path in every.items() if name in texts}
    main = "attributions" if exporter.tables else fmt
    with file_set(
        paths, kind=fmt, main=main, stale=every.values(), protected=protected_files(result)
    ) as temps:
        for name, tmp in temps.items():
            tmp.write_bytes(texts[name].encode("utf-8"))
    return {**paths, "files": set_manifest_path(paths[main])}


EXPORTERS.update(
    {
        "parquet": Exporter("parquet", "report with provenance", tables=True),
        "csv": Exporter("csv", "spreadsheet-safe", tables=True, render=table_csv),
        "jsonl": Exporter("jsonl", "JSON lines", tables=True, render=table_jsonl),
        "ocsf": Exporter("ocsf", f"OCSF {OCSF_VERSION} events", tables=False, records=ocsf_records),
        "timesketch": Exporter(
            "timesketch", "Timesketch events", tables=False, records=timesketch_records
        ),
    }
)
FORMATS = tuple(EXPORTERS)
"""The export formats' names, in ``--help``'s order."""


def formats_help() -> str:
    """``--format``'s help for ``export``: every format with what it is, from ``EXPORTERS``."""
    return ", ".join(f"{e.name} ({e.help})" for e in EXPORTERS.values())


def records_jsonl(records: Iterable[dict[str, Any]]) -> str:
    """Records as deterministic ASCII JSON lines (sorted keys)."""
    return "".join(_json_line(r) for r in records)


__all__ = [
    "CLOCK",
    "EXPORTERS",
    "FORMATS",
    "FORMULA_PREFIXES",
    "LIST_DELIMITER",
    "OCSF_VERSION",
    "Exporter",
    "csv_cell",
    "export",
    "export_paths",
    "involved_episodes",
    "ocsf_records",
    "ocsf_severity",
    "records_jsonl",
    "table_csv",
    "table_jsonl",
    "table_records",
    "timesketch_records",
]
