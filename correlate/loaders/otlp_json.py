"""OpenTelemetry traces as OTLP/JSON lines (the Collector file exporter): ``execute_tool`` spans.

Per the OTLP JSON encoding, each line is one ``ExportTraceServiceRequest``; 64-bit times are
decimal strings of Unix nanoseconds (UTC); ids are hex. A span is a tool call when its
``gen_ai.operation.name`` is ``execute_tool`` (GenAI semantic conventions) or, failing that
attribute, its name starts with ``execute_tool``. Other spans are counted as skipped.

Mapping: ``call_id`` = ``gen_ai.tool.call.id`` (else the span id); ``episode_id`` =
``gen_ai.conversation.id`` on the span or anywhere in its trace (else the trace id); ``run_id`` =
resource ``service.namespace`` (else ``service.name``); ``host`` = resource ``host.name`` (else
``container.name``, ``container.id``); ``host_ip`` = resource ``host.ip``; ``exit_code`` =
``process.exit.code``; ``step``/``train_step`` from span attributes of those names.
"""

from __future__ import annotations

import base64
from typing import Any

import pyarrow as pa

from ..schema import HOSTS, TOOL_CALLS, from_columns
from ..sources import Source
from ..timeparse import TimeParseError, parse_epoch
from . import fields
from .base import Batcher, LoadOptions, LoadResult, LoadStats, RejectSink
from .calls import command_from, truncate
from .records import json_documents

name = "otlp_json"
kind = "agent"
description = "OpenTelemetry OTLP/JSON trace lines with GenAI execute_tool spans"


def sniff(head: bytes, filename: str) -> float:
    """Score: OTLP trace JSON (``resourceSpans``), higher when GenAI tool spans are visible."""
    sample = head.lstrip()
    if not sample.startswith(b"{") or (
        b'"resourceSpans"' not in sample and b'"resource_spans"' not in sample
    ):
        return 0.0
    return 0.95 if b"execute_tool" in sample or b"gen_ai." in sample else 0.8


def attribute_value(value: Any) -> Any:
    """Decode an OTLP ``AnyValue`` (``stringValue``, ``intValue`` as string, arrays, ...)."""
    if not isinstance(value, dict):
        return value
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        try:
            return int(value["intValue"])
        except (TypeError, ValueError):
            return value["intValue"]
    if "doubleValue" in value:
        return value["doubleValue"]
    if "boolValue" in value:
        return value["boolValue"]
    if "arrayValue" in value:
        items = (value["arrayValue"] or {}).get("values") or []
        return [attribute_value(v) for v in items]
    if "kvlistValue" in value:
        return attributes((value["kvlistValue"] or {}).get("values"))
    if "bytesValue" in value:
        try:
            return base64.b64decode(value["bytesValue"]).hex()
        except (ValueError, TypeError):
            return value["bytesValue"]
    return None


def attributes(items: Any) -> dict[str, Any]:
    """OTLP ``[{"key": ..., "value": AnyValue}]`` to a dict (later duplicates win)."""
    out: dict[str, Any] = {}
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("key"), str):
                out[item["key"]] = attribute_value(item.get("value"))
    return out


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    return obj.get(camel, obj.get(snake))


def _is_tool_span(span: dict[str, Any], attrs: dict[str, Any]) -> bool:
    operation = attrs.get("gen_ai.operation.name")
    if operation is not None:
        return operation == "execute_tool"
    return str(span.get("name", "")).startswith("execute_tool")


def _is_error(status: Any) -> bool | None:
    """True for ERROR, False for OK, None for UNSET or absent (then the exit code decides)."""
    if not isinstance(status, dict):
        return None
    # Accept the enum as an integer or, as some exporters write it, as its name.
    code = status.get("code", 0)
    if code in (2, "2", "STATUS_CODE_ERROR", "ERROR"):
        return True
    if code in (1, "1", "STATUS_CODE_OK", "OK"):
        return False
    return None


def read(source: Source, options: LoadOptions) -> LoadResult:
    """Read OTLP/JSON lines into ``tool_calls`` rows and the hosts they name."""
    stats = LoadStats(path=source.display, format=name, kind=kind, unit="spans")
    sink = RejectSink(source, stats, options.strict)
    batch = Batcher(TOOL_CALLS)
    conversations: dict[str, str] = {}
    pending_trace: list[str | None] = []
    host_seen: dict[tuple[str, str], tuple[int, int]] = {}
    for line, document, raw in json_documents(source, stats, sink):
        resource_spans = _get(document, "resourceSpans", "resource_spans")
        if not isinstance(resource_spans, list):
            stats.read += 1
            sink.reject(line, "not an OTLP trace request (no resourceSpans list)", raw)
            continue
        for resource_span in resource_spans:
            if not isinstance(resource_span, dict):
                stats.read += 1
                sink.reject(line, "resourceSpans entry is not an object", raw)
                continue
            resource = attributes((resource_span.get("resource") or {}).get("attributes"))
            # What the resource says about every span under it, worked out once.
            resource["_host"] = (
                fields.text(resource.get("host.name"))
                or fields.text(resource.get("container.name"))
                or fields.text(resource.get("container.id"))
            )
            resource["_ips"] = _ips(resource.get("host.ip"))
            resource["_run"] = fields.text(resource.get("service.namespace")) or fields.text(
                resource.get("service.name")
            )
            scopes = _get(resource_span, "scopeSpans", "scope_spans")
            if scopes is None:
                scopes = _get(
                    resource_span, "instrumentationLibrarySpans", "instrumentation_library_spans"
                )
            for scope in scopes if isinstance(scopes, list) else []:
                spans = scope.get("spans") if isinstance(scope, dict) else None
                for span in spans if isinstance(spans, list) else []:
                    stats.read += 1
                    if not isinstance(span, dict):
                        sink.reject(line, "span is not an object", raw)
                        continue
                    attrs = attributes(span.get("attributes"))
                    trace_id = _hex_id(_get(span, "traceId", "trace_id"))
                    conversation = attrs.get("gen_ai.conversation.id")
                    if conversation is not None and trace_id:
                        conversations.setdefault(trace_id, str(conversation))
                    if not _is_tool_span(span, attrs):
                        kind_name = attrs.get("gen_ai.operation.name") or "no gen_ai.operation.name"
                        stats.skipped[f"span is not a tool call ({kind_name})"] += 1
                        continue
                    try:
                        row = _convert(span, attrs, resource, options)
                    except fields.RowError as exc:
                        sink.reject(line, f"span {span.get('spanId', '?')}: {exc}", raw)
                        continue
                    row["source_format"] = name
                    row["source_path"] = source.display
                    row["source_line"] = line
                    pending_trace.append(trace_id if row["episode_id"] is None else None)
                    batch.add(row)
                    stats.loaded += 1
                    if row["ts_note"]:
                        stats.notes[row["ts_note"]] += 1
                    for address in resource["_ips"]:
                        if row["host"]:
                            key = (row["host"], address)
                            first = host_seen.get(key)
                            if first is None or row["ts_start"] < first[0]:
                                host_seen[key] = (row["ts_start"], line)
    table = batch.table()
    if any(pending_trace):
        episodes = table.column("episode_id").to_pylist()
        for i, trace_id in enumerate(pending_trace):
            if trace_id is not None:
                episodes[i] = conversations.get(trace_id, trace_id)
        table = table.set_column(
            table.schema.get_field_index("episode_id"),
            "episode_id",
            pa.array(episodes, pa.string()),
        )
    return LoadResult(
        kind=kind, table=table, stats=stats, rejects=sink.rejects, hosts=_hosts(host_seen, source)
    )


def _hex_id(value: Any) -> str | None:
    return value.lower() if isinstance(value, str) and value else None


def _epoch_ns(raw: Any, unit: str) -> tuple[int, str | None]:
    """``parse_epoch(raw, unit=unit, expected="ns")``, with a shortcut for the usual plain string
    of 18-19 digits (nanoseconds by magnitude, so no note): the same value, no Decimal."""
    if (
        unit in ("auto", "ns")
        and type(raw) is str
        and 18 <= len(raw) <= 19
        and raw.isascii()
        and raw.isdigit()
    ):
        number = int(raw)
        if 10**17 <= number < 2**63 - 1:
            return number, None
    return parse_epoch(raw, unit=unit, expected="ns")


def _ips(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    out = []
    for item in values:
        try:
            address = fields.ip(item, "host.ip")
        except fields.RowError:
            continue
        if address:
            out.append(address)
    return out


def _convert(
    span: dict[str, Any], attrs: dict[str, Any], resource: dict[str, Any], options: LoadOptions
) -> dict[str, Any]:
    notes: list[str] = []
    start_raw = _get(span, "startTimeUnixNano", "start_time_unix_nano")
    if fields.is_blank(start_raw) or str(start_raw).strip() == "0":
        raise fields.RowError("startTimeUnixNano is missing")
    try:
        ts_start, note = _epoch_ns(start_raw, options.epoch_unit)
    except TimeParseError as exc:
        raise fields.RowError(f"startTimeUnixNano: {exc}") from None
    if note:
        notes.append(note)
    ts_end = None
    end_raw = _get(span, "endTimeUnixNano", "end_time_unix_nano")
    if not fields.is_blank(end_raw) and str(end_raw).strip() != "0":
        try:
            ts_end, _ = _epoch_ns(end_raw, options.epoch_unit)
        except TimeParseError as exc:
            raise fields.RowError(f"endTimeUnixNano: {exc}") from None
        if ts_end < ts_start:
            notes.append("end before start: end ignored")
            ts_end = None
    arguments = attrs.get("gen_ai.tool.call.arguments")
    output = fields.text(attrs.get("gen_ai.tool.call.result"))
    output = truncate(output)
    exit_code = fields.integer(attrs.get("process.exit.code"), "process.exit.code")
    is_error = _is_error(span.get("status"))
    if attrs.get("error.type") is not None:
        is_error = True
    if is_error is None and exit_code is not None:
        is_error = exit_code != 0
    host = resource["_host"] or fields.text(attrs.get("host.name"))
    host_ips = resource["_ips"]
    episode = attrs.get("gen_ai.conversation.id")
    return {
        "call_id": fields.text(attrs.get("gen_ai.tool.call.id"))
        or _hex_id(_get(span, "spanId", "span_id")),
        "run_id": resource["_run"],
        "episode_id": fields.text(episode),
        "step": fields.integer(attrs.get("step"), "step"),
        "ts_start": ts_start,
        "ts_end": ts_end,
        "ts_kind": "exact",
        "tool": fields.text(attrs.get("gen_ai.tool.name"))
        or str(span.get("name", "")).removeprefix("execute_tool ").strip()
        or None,
        "command": command_from(arguments),
        "arguments": fields.text(arguments),
        "output": output,
        "exit_code": exit_code,
        "is_error": is_error,
        "host": host,
        "host_ip": host_ips[0] if host_ips else None,
        "model": fields.text(attrs.get("gen_ai.request.model"))
        or fields.text(attrs.get("gen_ai.response.model")),
        "train_step": fields.integer(attrs.get("train_step"), "train_step"),
        "ts_note": "; ".join(notes) or None,
    }


def _hosts(seen: dict[tuple[str, str], tuple[int, int]], source: Source) -> pa.Table:
    keys = sorted(seen, key=lambda k: (seen[k][0], k))
    return from_columns(
        {
            "host": [k[0] for k in keys],
            "ip": [k[1] for k in keys],
            "valid_from": [seen[k][0] for k in keys],
            "valid_to": [None] * len(keys),
            "origin": ["trajectory"] * len(keys),
            "note": ["first seen in a tool call's resource host.ip"] * len(keys),
            "source_format": [name] * len(keys),
            "source_path": [source.display] * len(keys),
            "source_line": [seen[k][1] for k in keys],
        },
        HOSTS,
    )
