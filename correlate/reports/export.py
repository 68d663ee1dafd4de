"""Exports for analysts' tools: Parquet, spreadsheet-safe CSV, JSON lines, OCSF and Timesketch.

* ``parquet``: the Parquet report of ``correlate run -o`` (attributions, findings, candidates,
  stats), each file carrying ``correlate.provenance`` in its key-value metadata.
* ``csv`` / ``jsonl``: ``OUTPUT`` holds one row per violation event with its attributed call and
  command (the ``correlate query`` columns); ``<stem>.findings``, ``<stem>.candidates`` and
  ``<stem>.stats`` beside it; ``<stem>.provenance.json`` holds the provenance.
* ``ocsf``: one OCSF Network Activity event (class_uid 4001) per violation event, JSON lines,
  with the attributed call in ``enrichments`` and correlate's own fields in ``unmapped``.
* ``timesketch``: Timesketch JSON lines (``message``, ``datetime``, ``timestamp_desc``), one line
  per violation event and one per tool call involved (attributed or candidate), all on the
  trajectories' clock (a violation's time as its firewall logged it is in ``logged_time``).

CSV cells are made safe for spreadsheets: a text cell that starts with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return gets a leading apostrophe (``'``) so that no spreadsheet reads
it as a formula; numbers are written as numbers. JSON is written ASCII-only (every other
character as a ``\\u`` escape), so control characters and bidi overrides cannot act in a terminal
or an editor. Every file is written to a temporary name and renamed; the same case and flags give
the same bytes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

import pyarrow as pa

from .. import __version__
from ..atomic import atomic_path
from ..pipeline import Result
from ..query import CANDIDATE_ROWS, QUERY, candidate_rows, format_time, violation_rows
from ..schema import plain_rows
from ..textsafe import inert
from .parquet import ASSOCIATION_SCHEMA, write_report

FORMATS = ("parquet", "csv", "jsonl", "ocsf", "timesketch")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
OCSF_VERSION = "1.3.0"
"""The OCSF schema version the ``ocsf`` export follows (attributes and enums checked against it)."""


# --- CSV and JSON lines ---------------------------------------------------------------------


def csv_cell(text: str) -> str:
    """A text cell a spreadsheet will not evaluate: formula-like starts get a leading ``'``."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def _value(value: Any, kind: pa.DataType, zone: tzinfo) -> Any:
    """A cell as a plain value: timestamps as ISO 8601 in ``zone`` (exact), others unchanged."""
    if value is None:
        return None
    if pa.types.is_timestamp(kind):
        return format_time(int(value), zone)
    return value


def table_csv(table: pa.Table, zone: tzinfo = UTC, *, terminal: bool = False) -> str:
    """``table`` as CSV (header, ``\\n`` line ends); text cells neutralised for spreadsheets.

    With ``terminal`` (CSV printed to an interactive terminal) control characters are shown
    escaped, as in the tables.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.column_names)
    kinds = [f.type for f in table.schema]
    for row in plain_rows(table):
        cells = []
        for value, kind in zip(row.values(), kinds, strict=True):
            plain = _value(value, kind, zone)
            if plain is None:
                cells.append("")
            elif isinstance(plain, str):
                cells.append(csv_cell(inert(plain) if terminal else plain))
            elif isinstance(plain, bool):
                cells.append("true" if plain else "false")
            else:
                cells.append(repr(plain) if isinstance(plain, float) else str(plain))
        writer.writerow(cells)
    return buffer.getvalue()


def _json_line(record: Any) -> str:
    return json.dumps(record, ensure_ascii=True, sort_keys=True, separators=(",", ":")) + "\n"


def table_jsonl(table: pa.Table, zone: tzinfo = UTC) -> str:
    """``table`` as JSON lines, one object per row in column order (times ISO 8601 in ``zone``)."""
    kinds = [f.type for f in table.schema]
    out = []
    for row in plain_rows(table):
        record = {k: _value(v, kind, zone) for (k, v), kind in zip(row.items(), kinds, strict=True)}
        out.append(json.dumps(record, ensure_ascii=True, separators=(",", ":")) + "\n")
    return "".join(out)


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(text.encode("utf-8"))


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
_DIRECTION = {"inbound": (1, "Inbound"), "outbound": (2, "Outbound"), "internal": (3, "Lateral")}
OCSF_ACTIVITY_ID, OCSF_ACTIVITY = 6, "Traffic"


def _ms(ns: int | None) -> int | None:
    return None if ns is None else int(ns) // 1_000_000


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None and v != {} and v != []}


def _event_uid(row: dict[str, Any]) -> str:
    """A stable id for an event: its file, line and time (not the renumbered event_id)."""
    text = f"{row['source_path']}\x00{row['source_line']}\x00{row['ts']}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _message(row: dict[str, Any]) -> str:
    port = f":{row['dst_port']}" if row.get("dst_port") is not None else ""
    domain = f" ({row['dst_domain']})" if row.get("dst_domain") else ""
    source = f"{row['src_ip']}" + (f" ({row['src_host']})" if row.get("src_host") else "")
    labels = f" [{row['labels']}]" if row.get("labels") else ""
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


def _events(result: Result) -> tuple[list[dict[str, Any]], dict[Any, dict[str, Any]]]:
    """Violation rows (the ``query`` columns) with the raw event fields, and findings by id."""
    details = {r["event_id"]: r for r in plain_rows(result.violations)}
    findings = {r["conversation_id"]: r for r in plain_rows(result.findings)}
    rows = []
    for row in violation_rows(result):
        event = details.get(row["event_id"], {})
        rows.append({**event, **row})
    return rows, findings


def ocsf_records(result: Result) -> list[dict[str, Any]]:
    """One OCSF 1.x Network Activity event per violation event, with the attributed call.

    Attributes follow the OCSF schema (ocsf/ocsf-schema): ``events/network/network_activity.json``
    (class 4001, activity 6 Traffic), ``events/network/network.json`` (src/dst endpoints,
    connection_info, traffic) and ``profiles/security_control.json`` (action_id 1 Allowed,
    2 Denied; disposition_id 1 Allowed, 2 Blocked, 19 Alert).

    ``time`` is the event's time as its firewall logged it (SIEMs join it with that firewall's
    other records); ``unmapped.correlate.aligned_time_ns`` is the time on the trajectories' clock
    that the attribution used, ``clock_offset_s`` the difference.
    """
    rows, findings = _events(result)
    out = []
    for row in rows:
        offset = int(row.get("clock_offset_ns") or 0)
        logged = row["ts"] + offset
        logged_end = None if row.get("ts_end") is None else row["ts_end"] + offset
        action_id, action, disposition_id, disposition = _ACTION.get(
            str(row.get("action")), _ACTION["unknown"]
        )
        direction = _DIRECTION.get(str(row.get("direction")))
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
            "how": row.get("how"),
            "lag_s": row.get("lag_s"),
            "confidence": row.get("confidence"),
            "reasons": [r for r in str(finding.get("reasons") or "").split("; ") if r],
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
            "severity_id": 3,
            "severity": "Medium",
            "action_id": action_id,
            "action": action,
            "disposition_id": disposition_id,
            "disposition": disposition,
            "is_alert": row.get("action") in ("alerted", "denied"),
            "time": _ms(logged),
            "start_time": _ms(logged),
            "end_time": _ms(logged_end),
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
                }
            ),
            "traffic": traffic or None,
            "firewall_rule": _drop_none({"uid": row.get("rule"), "name": row.get("signature")})
            or None,
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
                    "log_name": row.get("source_format"),
                    "original_time": format_time(logged),
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
                        "labels": row.get("labels"),
                        "how": row.get("how"),
                        "confidence": row.get("confidence"),
                        "candidates": row.get("candidates"),
                        "time_ns": logged,
                        "aligned_time_ns": row["ts"],
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


def timesketch_time(ns: int) -> tuple[str, int]:
    """(ISO 8601 with microseconds and offset, microseconds since the epoch) for Timesketch."""
    micros = int(ns) // 1000
    moment = datetime.fromtimestamp(micros // 1_000_000, tz=UTC).replace(
        microsecond=micros % 1_000_000
    )
    return moment.isoformat(timespec="microseconds"), micros


def timesketch_records(result: Result) -> list[dict[str, Any]]:
    """Timesketch JSON lines: one per violation event, one per tool call involved."""
    rows, _ = _events(result)
    records: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    for row in rows:
        when, micros = timesketch_time(row["ts"])
        record = {
            "message": _message(row),
            "datetime": when,
            "timestamp": micros,
            "timestamp_desc": "Firewall violation",
            "data_type": "correlate:violation",
            "logged_time": format_time(row["ts"] + int(row.get("clock_offset_ns") or 0)),
            "clock_offset_s": row.get("clock_offset_s"),
            **{
                k: row.get(k)
                for k in (
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
                    "labels",
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
                    "source_path",
                    "source_line",
                )
            },
            "time_ns": row["ts"],
        }
        records.append(((row["ts"], 1, row["event_id"], ""), _drop_none(record)))
    involved: dict[tuple[Any, ...], dict[str, Any]] = {}
    attributed: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for row in rows:
        if row.get("call_id"):
            attributed[(row["call_id"], row["run_id"])].append(row["event_id"])
    for c in candidate_rows(result):
        involved.setdefault((c["call_id"], c["run_id"]), c)
    calls = {
        (r["call_id"], r["run_id"]): r
        for r in plain_rows(result.loaded.calls)
        if (r["call_id"], r["run_id"]) in involved or (r["call_id"], r["run_id"]) in attributed
    }
    for key, call in sorted(calls.items(), key=lambda kv: (kv[1]["ts_start"] or 0, str(kv[0]))):
        if call["ts_start"] is None:
            continue
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
            **{
                k: call.get(k)
                for k in (
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
            },
            "ts_end": format_time(call["ts_end"]) if call["ts_end"] is not None else None,
            "attributed_events": events or None,
            "time_ns": call["ts_start"],
        }
        records.append(((call["ts_start"], 0, 0, str(key)), _drop_none(record)))
    records.sort(key=lambda item: item[0])
    return [r for _, r in records]


# --- writing --------------------------------------------------------------------------------


def export_paths(output: str | os.PathLike[str], fmt: str) -> dict[str, Path]:
    """The files ``export`` writes for ``-o OUTPUT`` in format ``fmt``, by table name."""
    path = Path(output)
    if fmt in ("ocsf", "timesketch"):
        return {
            fmt: path,
            "provenance": path.with_name(f"{_stem(path.name, '.jsonl')}.provenance.json"),
        }
    suffix = f".{fmt}"
    stem = _stem(path.name, suffix)
    return {
        "events": path,
        "findings": path.with_name(f"{stem}.findings{suffix}"),
        "candidates": path.with_name(f"{stem}.candidates{suffix}"),
        "stats": path.with_name(f"{stem}.stats{suffix}"),
        "provenance": path.with_name(f"{stem}.provenance.json"),
    }


def _stem(name: str, suffix: str) -> str:
    return name[: -len(suffix)] if name.endswith(suffix) and len(name) > len(suffix) else name


def _provenance(result: Result, fmt: str, permutations: int) -> str:
    data = result.provenance()
    data["parameters"]["permutations"] = permutations
    data["export"] = {"format": fmt}
    if fmt == "ocsf":
        data["export"]["ocsf_version"] = OCSF_VERSION
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=True) + "\n"


def export(
    result: Result,
    fmt: str,
    output: str | os.PathLike[str],
    *,
    permutations: int = 999,
    zone: tzinfo = UTC,
) -> dict[str, Path]:
    """Write ``result`` in ``fmt`` to ``output`` (and its sibling files); returns them by name."""
    if fmt == "parquet":
        return write_report(result, output, permutations=permutations)
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}")
    paths = export_paths(output, fmt)
    if fmt in ("ocsf", "timesketch"):
        records = ocsf_records(result) if fmt == "ocsf" else timesketch_records(result)
        _write_text(paths[fmt], "".join(_json_line(r) for r in records))
    else:
        tables = {
            "events": pa.Table.from_pylist(
                [{f.name: r.get(f.name) for f in QUERY} for r in violation_rows(result)],
                schema=QUERY,
            ),
            "findings": result.findings,
            "candidates": pa.Table.from_pylist(
                [{f.name: r.get(f.name) for f in CANDIDATE_ROWS} for r in candidate_rows(result)],
                schema=CANDIDATE_ROWS,
            ),
        }
        if permutations:
            associations, _ = result.statistics(permutations)
            tables["stats"] = pa.Table.from_pylist(
                [asdict(a) for a in associations], schema=ASSOCIATION_SCHEMA
            )
        else:
            paths.pop("stats")
        for name, table in tables.items():
            text = table_csv(table, zone) if fmt == "csv" else table_jsonl(table, zone)
            _write_text(paths[name], text)
    _write_text(paths["provenance"], _provenance(result, fmt, permutations))
    return paths


def records_jsonl(records: Iterable[dict[str, Any]]) -> str:
    """Records as deterministic ASCII JSON lines (sorted keys)."""
    return "".join(_json_line(r) for r in records)


__all__ = [
    "FORMATS",
    "FORMULA_PREFIXES",
    "OCSF_VERSION",
    "csv_cell",
    "export",
    "export_paths",
    "ocsf_records",
    "records_jsonl",
    "table_csv",
    "table_jsonl",
    "timesketch_records",
]
