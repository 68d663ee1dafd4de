"""OpenTelemetry traces as OTLP/JSON lines (the Collector file exporter): ``execute_tool`` spans.

Each line is one ``ExportTraceServiceRequest``; times are Unix nanoseconds (UTC), ids hex. A span
is a tool call when ``gen_ai.operation.name`` is ``execute_tool`` or, without that attribute, its
name starts with ``execute_tool``; other spans are skipped.

Mapping: ``call_id`` = ``gen_ai.tool.call.id`` (else the span id); ``episode_id`` =
``gen_ai.conversation.id`` on the span or anywhere in its trace (else the trace id); ``run_id`` =
resource ``service.namespace`` (else ``service.name``); ``host`` = resource ``host.name`` (else
``container.name``, ``container.id``); ``host_ip`` = resource ``host.ip``; ``exit_code`` =
``process.exit.code``; ``step``/``train_step`` from span attributes of those names.

Reading: runs of lines are parsed by Arrow with a schema of the fields used and converted
column-wise; every line a check does not vouch for goes to the per-line reader
(``read_per_line``), whose rows, hosts, stats and rejects (in order) are the answer. Details and
the known differences: ``tests/data/otlp_json/README.md``.
"""

from __future__ import annotations

import base64
import codecs
import functools
import json
import re
from collections.abc import Callable, Generator, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from ..schema import HOSTS, TOOL_CALLS, concat, from_columns
from ..sources import Source, decode_line
from ..timeparse import TimeParseError, parse_epoch
from . import fields
from .base import Batcher, FileLoad, LoadOptions, LoadResult
from .blocks import ahead, line_runs, line_spans
from .calls import OUTPUT_CHARS, command_from, truncate
from .records import first_line, json_documents

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
    """Read OTLP/JSON lines into ``tool_calls`` rows and the hosts they name.

    Runs of lines that start with ``{`` and end with ``}`` are parsed column-wise with Arrow
    (``_Reader.run``); every other line, and every line the column-wise checks do not vouch for,
    goes through the per-line reader (``_Reader.line``), so rows, rejects and stats are the same
    either way (``read_per_line`` is that per-line reader alone).
    """
    if options.epoch_unit not in ("auto", "ns") or _whole_document(source):
        return read_per_line(source, options)
    reader = _Reader(source, options)
    runs = _prefetched(source, reader)
    try:
        for first, data, count, parsed in runs:
            if count:
                reader.run(first, data, count, parsed)
            else:
                reader.line(first, data)
    finally:
        runs.close()
    return reader.result()


def _prefetched(source: Source, reader: _Reader) -> Generator[_Run, None, None]:
    """``line_runs`` with each run of plain ASCII already parsed by Arrow, one run ahead, in a
    thread (``blocks.ahead``): the next run is read and parsed while this one is converted."""

    def runs() -> Iterator[_Run]:
        for first, data, count in line_runs(source, b"{", b"}"):
            parsed = None
            if count and data.isascii():
                parsed = _arrow(memoryview(data), count, True, reader.choice)
            yield first, data, count, parsed

    return ahead(runs(), name)


def read_per_line(source: Source, options: LoadOptions) -> LoadResult:
    """Every record through the per-line reader (``json.loads`` and a dict per span)."""
    reader = _Reader(source, options)
    for line, document, raw in json_documents(source, reader.stats, reader.sink):
        reader.document(line, document, raw)
    return reader.result()


def _whole_document(source: Source) -> bool:
    """True when ``json_documents`` reads the file as one multi-line document (its test, as is)."""
    first = first_line(source.head())
    try:
        return isinstance(json.loads(first), list)
    except (ValueError, RecursionError):
        return first.startswith((b"{", b"["))


class _Reader:
    """The per-line reader and its state, plus the column-wise parts, kept in line order."""

    def __init__(self, source: Source, options: LoadOptions) -> None:
        self.source = source
        self.options = options
        self.load = FileLoad(source, options, name, kind, TOOL_CALLS, unit="spans")
        """Counts every span read and keeps the per-line reader's rows (until ``_flush``)."""
        self.stats, self.sink = self.load.stats, self.load.sink
        self.pending: list[str | None] = []
        """For each row kept by ``load``: its trace id when its episode is still to be looked up."""
        self.parts: list[tuple[pa.Table, pa.Array]] = []
        """Finished tables, in line order, each with its rows' pending trace ids."""
        self.conversations: dict[str, str] = {}
        """First ``gen_ai.conversation.id`` per trace id seen by the per-line reader since the
        last column-wise part."""
        self.conversation_parts: list[dict[str, str] | tuple[pa.Array, pa.Array]] = []
        """(trace ids, conversation ids) of every span, in line order, by part."""
        self.host_seen: dict[tuple[str, str], tuple[int, int]] = {}
        self.choice = _DEFAULT_CHOICE
        """The Arrow types of the fields OTLP writers spell two ways (the last that parsed)."""
        self.spent = 0
        """Bytes Arrow parsed in vain (pieces it refused), against ``budget``: past it, a refused
        piece goes line by line without being split further."""
        self.budget = 64 << 20
        """64 MiB and three times the bytes of the runs so far."""

    # --- the per-line reader ---------------------------------------------------------------------

    def line(self, line: int, raw_bytes: bytes) -> None:
        """One line as ``records.json_line_records`` reads it, then its document."""
        load = self.load
        raw, note = decode_line(raw_bytes)
        if note:
            load.note(note)
        if line == 1:
            raw = raw.removeprefix("\ufeff")
        if not raw.strip():
            load.skip("blank line")
            return
        try:
            record = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # ValueError: bad JSON, an int of 4,300+ digits
            load.reject(line, f"not valid JSON ({exc.__class__.__name__}: {str(exc)[:80]})", raw)
            return
        if not isinstance(record, dict):
            load.reject(line, f"not a JSON object but a JSON {type(record).__name__}", raw)
            return
        self.document(line, record, raw)

    def document(self, line: int, document: dict[str, Any], raw: str) -> None:
        """The spans of one ``ExportTraceServiceRequest``."""
        load = self.load
        resource_spans = _get(document, "resourceSpans", "resource_spans")
        if not isinstance(resource_spans, list):
            load.reject(line, "not an OTLP trace request (no resourceSpans list)", raw)
            return
        for resource_span in resource_spans:
            if not isinstance(resource_span, dict):
                load.reject(line, "resourceSpans entry is not an object", raw)
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
                    if not isinstance(span, dict):
                        load.reject(line, "span is not an object", raw)
                        continue
                    attrs = attributes(span.get("attributes"))
                    trace_id = _hex_id(_get(span, "traceId", "trace_id"))
                    conversation = attrs.get("gen_ai.conversation.id")
                    if conversation is not None and trace_id:
                        self.conversations.setdefault(trace_id, str(conversation))
                    if not _is_tool_span(span, attrs):
                        kind_name = attrs.get("gen_ai.operation.name") or "no gen_ai.operation.name"
                        load.skip(f"span is not a tool call ({kind_name})")
                        continue
                    try:
                        row = _convert(span, attrs, resource, self.options)
                    except fields.RowError as exc:
                        load.reject(line, f"span {span.get('spanId', '?')}: {exc}", raw)
                        continue
                    self.pending.append(trace_id if row["episode_id"] is None else None)
                    load.emit(row, line)
                    if row["host"]:
                        for address in resource["_ips"]:
                            self._seen(row["host"], address, row["ts_start"], line)

    def _seen(self, host: str, address: str, ts: int, line: int) -> None:
        """The earliest (time, line) naming each (host, address) pair; the same in any order."""
        key = (host, address)
        first = self.host_seen.get(key)
        if first is None or (ts, line) < first:
            self.host_seen[key] = (ts, line)

    def _flush(self) -> None:
        """Close the per-line reader's current part (before a column-wise one)."""
        table = self.load.rows.table()
        if table.num_rows:
            self.parts.append((table, pa.array(self.pending, pa.string())))
        self.load.rows = Batcher(TOOL_CALLS)
        self.pending = []
        if self.conversations:
            self.conversation_parts.append(self.conversations)
            self.conversations = {}

    def result(self) -> LoadResult:
        self._flush()
        tables = [t for t, _ in self.parts]
        table = pa.concat_tables(tables) if tables else concat([], TOOL_CALLS)
        pending = pa.chunked_array([p for _, p in self.parts], pa.string())
        if pending.null_count < len(pending):
            table = self._episodes(table, pending)
        return LoadResult(
            kind=kind,
            table=table,
            stats=self.stats,
            rejects=self.sink.rejects,
            hosts=_hosts(self.host_seen, self.source),
        )

    def _episodes(self, table: pa.Table, pending: pa.ChunkedArray) -> pa.Table:
        """Rows without a conversation id take the first one their trace carries anywhere in the
        file, else the trace id."""
        encoded = pc.dictionary_encode(pending).combine_chunks()
        wanted = encoded.dictionary
        wanted_ids = set(wanted.to_pylist())
        found: dict[str, str] = {}
        for part in self.conversation_parts:
            if isinstance(part, dict):
                for trace_id in wanted_ids if len(wanted_ids) < len(part) else list(part):
                    if trace_id in part and trace_id in wanted_ids:
                        found.setdefault(trace_id, part[trace_id])
            else:
                keep = pc.is_in(part[0], value_set=wanted)
                traces = pc.filter(part[0], keep).to_pylist()
                values = pc.filter(part[1], keep).to_pylist()
                for trace_id, value in zip(traces, values, strict=True):
                    found.setdefault(trace_id, value)
        mapped = pa.array([found.get(t, t) for t in wanted.to_pylist()], pa.string())
        looked_up = pc.take(mapped, encoded.indices)
        index = table.schema.get_field_index("episode_id")
        episodes = pc.if_else(pc.is_valid(encoded.indices), looked_up, table.column(index))
        return table.set_column(index, "episode_id", episodes)

    # --- the column-wise reader ------------------------------------------------------------------

    def run(self, first: int, blob: bytes, count: int, parsed: _Parsed | None = None) -> None:
        """``count`` lines from line ``first`` that start with ``{`` and end with ``}``: parsed by
        Arrow at once (``parsed``, when that was done already); when Arrow refuses them, in
        pieces around the lines it refuses."""
        self.budget += 3 * len(blob)
        lines = _Lines(blob)
        todo: list[tuple[int, int, str]] = []  # (first, stop, how), done from the end
        if parsed is not None:
            table, _, spent, choice = parsed
            self.spent += spent
            if table is None:
                todo.append((0, count, "pieces"))
            else:
                self.choice = choice
                self._columns(first, lines, 0, table)
        elif blob.isascii():
            todo.append((0, count, "run"))
        else:
            at = count
            for i in np.flatnonzero(_invalid_utf8(blob, *lines.spans))[::-1].tolist():
                todo += [(i + 1, at, "run"), (i, i + 1, "line")]
                at = i
            todo.append((0, at, "run"))
        while todo:
            lo, hi, how = todo.pop()
            if hi <= lo:
                continue
            if how == "line":
                self.line(first + lo, lines.text(lo))
                continue
            if how == "pieces":  # of about a block, each parsed as one block
                starts = lines.spans[0][lo:hi]
                offsets = starts - starts[0]
                cuts = np.searchsorted(offsets, np.arange(BLOCK_BYTES, offsets[-1], BLOCK_BYTES))
                bounds = [lo, *sorted({lo + int(c) for c in cuts} - {lo, hi}), hi]
                pairs = zip(bounds[-2::-1], bounds[:0:-1], strict=True)
                todo += [(a, b, "piece") for a, b in pairs]
                continue
            table, row = self._parse(lines.view(lo, hi, count), hi - lo, whole=how == "run")
            if table is not None:
                self._columns(first, lines, lo, table)
            elif hi - lo == 1 or self.spent > self.budget:
                todo += [(i, i + 1, "line") for i in range(hi - 1, lo - 1, -1)]
            elif how == "run":
                todo.append((lo, hi, "pieces"))
            elif row is not None and row < hi - lo:  # the first line Arrow refused, alone
                todo += [(lo + row + 1, hi, "piece"), (lo + row, lo + row + 1, "piece")]
                todo += [(lo, lo + row, "piece")]
            else:
                half = (lo + hi) // 2
                todo += [(half, hi, "piece"), (lo, half, "piece")]

    def _parse(
        self, data: memoryview, count: int, whole: bool
    ) -> tuple[pa.Table | None, int | None]:
        """``_arrow`` with this file's schema choice, counting the bytes parsed in vain."""
        table, row, spent, choice = _arrow(data, count, whole, self.choice)
        self.spent += spent
        if table is not None:
            self.choice = choice
        return table, row

    def _columns(self, first: int, lines: _Lines, lo: int, table: pa.Table) -> None:
        """The lines of a parsed piece (from line ``lo`` of a run): rows column-wise for the lines
        every check passes, the per-line reader for the others, in line order."""
        spans = _Spans(table, lines, lo)
        fast = spans.fast
        if fast.any():
            rows = _Rows(spans, self.source, first + lo)
            self._hosts_seen(spans, rows, first + lo)
        at = 0
        count = len(fast)
        while at < count:
            stop = at + 1
            while stop < count and fast[stop] == fast[at]:
                stop += 1
            if fast[at]:
                self._add_fast(spans, rows, at, stop)
            else:
                for i in range(lo + at, lo + stop):
                    self.line(first + i, lines.text(i))
            at = stop

    def _add_fast(self, spans: _Spans, rows: _Rows, lo: int, hi: int) -> None:
        """Lines ``lo``..``hi`` of a piece, all vouched for: their rows, counts and conversations."""
        self._flush()
        a, b = np.searchsorted(spans.line, [lo, hi])
        if rows.count:
            r0, r1 = np.searchsorted(rows.line, [lo, hi])
            if r1 > r0:
                self.parts.append((rows.table.slice(r0, r1 - r0), rows.pending.slice(r0, r1 - r0)))
                self.load.count_loaded(int(r1 - r0))
        codes = spans.skip_codes[a:b]
        codes = codes[codes >= 0]
        if len(codes):
            for code, number in enumerate(np.bincount(codes).tolist()):
                if number:
                    self.load.skip(spans.skip_reasons[code], number)
        c0, c1 = np.searchsorted(spans.conversation_span, [a, b])
        if c1 > c0:
            self.conversation_parts.append(
                (
                    spans.conversation_trace.slice(c0, c1 - c0),
                    spans.conversation_value.slice(c0, c1 - c0),
                )
            )

    def _hosts_seen(self, spans: _Spans, rows: _Rows, first: int) -> None:
        """The earliest (time, line) of each (host, address) pair among a piece's rows."""
        if not rows.count or not len(spans.ip_resource):
            return
        host = rows.table.column("host").combine_chunks()
        has = np.flatnonzero(_valid(host))
        lo = np.searchsorted(spans.ip_resource, rows.resource[has], "left")
        width = np.searchsorted(spans.ip_resource, rows.resource[has], "right") - lo
        total = int(width.sum())
        if not total:
            return
        row = np.repeat(has, width)
        ip_at = np.repeat(lo - np.cumsum(width) + width, width) + np.arange(total)
        hosts = pc.dictionary_encode(host.take(pa.array(row)))
        addresses = pc.dictionary_encode(spans.ip_value.take(pa.array(ip_at)))
        host_code, ip_code = _np(hosts.indices), _np(addresses.indices)
        ts, line = rows.ts_start[row], rows.line[row] + first
        order = np.lexsort((line, ts, ip_code, host_code))
        host_code, ip_code, ts, line = host_code[order], ip_code[order], ts[order], line[order]
        new = np.append(True, (host_code[1:] != host_code[:-1]) | (ip_code[1:] != ip_code[:-1]))
        host_names = hosts.dictionary.to_pylist()
        ip_texts = addresses.dictionary.to_pylist()
        for i in np.flatnonzero(new).tolist():
            self._seen(host_names[host_code[i]], ip_texts[ip_code[i]], int(ts[i]), int(line[i]))


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


_Parsed = tuple[pa.Table | None, int | None, int, tuple[pa.DataType, ...]]
"""What ``_arrow`` gives: table, refused row, bytes parsed in vain, schema choice."""
_Run = tuple[int, bytes, int, _Parsed | None]
"""A run of ``line_runs`` (first line, bytes, count) and, when done already, its parse."""


def _arrow(data: memoryview, count: int, whole: bool, choice: tuple[pa.DataType, ...]) -> _Parsed:
    """``count`` lines parsed by Arrow with the schema of the fields this loader reads (one row
    per line), else None and, for a piece parsed as one block (not ``whole``), the row Arrow
    refused. A field of the other JSON type (``"intValue": 5``) switches the schema ``choice``."""
    if whole:  # Arrow's blocks in parallel
        read_options = pj.ReadOptions(block_size=BLOCK_BYTES)
    else:  # one block, so that the row of an error is the line's
        read_options = pj.ReadOptions(block_size=len(data) + 2, use_threads=False)
    tried = {choice}
    row = None  # the most rows one of the schemas took before an error
    spent = 0
    while True:
        try:
            table = pj.read_json(
                pa.py_buffer(data),
                read_options=read_options,
                parse_options=pj.ParseOptions(
                    explicit_schema=_schema(*choice), unexpected_field_behavior="ignore"
                ),
            )
        except (pa.ArrowException, ValueError) as exc:  # ArrowInvalid, UnicodeDecodeError
            spent += len(data)
            message = str(exc)
            if "straddl" in message and read_options.block_size <= len(data):
                read_options = pj.ReadOptions(block_size=len(data) + 2)  # a line > a block
                continue
            found = None if whole else _ROW.search(message)
            if found:
                row = max(row or 0, int(found.group(1)))
            flipped = _flip(choice, message)
            if flipped is None or flipped in tried:
                return None, row, spent, choice
            tried.add(flipped)
            choice = flipped
            continue
        if table.num_rows != count:  # two documents on a line
            return None, None, spent + len(data), choice
        return table, None, spent, choice


# --- the column-wise checks and conversions -----------------------------------------------------

BLOCK_BYTES = 1 << 20
"""Arrow's JSON block size (blocks are parsed in parallel); a block holds at least one line."""

_VARIANTS = (
    *("stringValue", "intValue", "doubleValue", "boolValue"),
    *("arrayValue", "kvlistValue", "bytesValue"),
)
"""``AnyValue``'s variants, in the order ``attribute_value`` tries them."""
_SPAN_VARIANTS = ("stringValue", "intValue")
"""The variants the schema reads of span attributes (of resource attributes: all)."""
_RESOURCE_KEYS = (
    *("host.name", "container.name", "container.id", "host.ip"),
    *("service.namespace", "service.name"),
)
_SPAN_KEYS = (
    *("gen_ai.operation.name", "gen_ai.conversation.id", "gen_ai.tool.call.id"),
    *("gen_ai.tool.name", "gen_ai.tool.call.arguments", "gen_ai.tool.call.result"),
    *("process.exit.code", "error.type", "host.name", "gen_ai.request.model"),
    *("gen_ai.response.model", "step", "train_step"),
)
_TEXT_KEYS = (
    *("gen_ai.tool.call.id", "gen_ai.tool.name", "gen_ai.tool.call.arguments"),
    *("gen_ai.tool.call.result", "host.name", "gen_ai.request.model", "gen_ai.response.model"),
)
_INTEGER_KEYS = ("process.exit.code", "step", "train_step")
_STRING = ("stringValue",)

_AXES = ("intValue", "code", "startTimeUnixNano", "endTimeUnixNano")
"""Fields whose JSON type varies between writers (string or number); the schema follows them."""
_DEFAULT_CHOICE: tuple[pa.DataType, ...] = (pa.string(), pa.int64(), pa.string(), pa.string())
_CHANGED = re.compile(r"Column\(([^)]*)\) changed from \w+ to (\w+)")
_ROW = re.compile(r" in row (\d+)$")
_TYPES = {"number": pa.int64(), "string": pa.string()}

_NULL_KEYS = frozenset(v.encode() for v in (*_VARIANTS, "name"))
"""Keys whose explicit ``null`` the per-line code reads differently from a missing key."""
_PY_SPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
"""What ``str.strip()`` strips: ``utf8_trim`` with these is exactly ``fields.text``'s trim."""
_BLANK = pa.array(["", "-"])
_NULL_STRING = pa.scalar(None, pa.string())
_NULL_BOOL = pa.scalar(None, pa.bool_())
_MAX_NS = "9223372036854775806"  # the largest time _epoch_ns takes without parse_epoch


@functools.cache
def _schema(
    int_value: pa.DataType = _DEFAULT_CHOICE[0],
    code: pa.DataType = _DEFAULT_CHOICE[1],
    start: pa.DataType = _DEFAULT_CHOICE[2],
    end: pa.DataType = _DEFAULT_CHOICE[3],
) -> pa.Schema:
    """The fields the loader reads, for Arrow's JSON reader (everything else is skipped).

    Spellings the column-wise path does not convert (snake_case keys, the pre-1.0
    ``instrumentationLibrarySpans``) are read only to see that they are there: their lines go
    through the per-line reader. Of span attributes only ``stringValue`` and ``intValue`` are read
    (the only ones the column-wise path converts; a value of another variant shows as an object
    with neither, and goes to the per-line reader); of resource attributes all variants are read,
    ``kvlistValue`` for its presence only."""
    string, nothing = pa.string(), pa.struct([])
    element = pa.struct([("stringValue", string), ("intValue", int_value), ("bytesValue", string)])
    any_value = pa.struct(
        [
            ("stringValue", string),
            ("intValue", int_value),
            ("doubleValue", pa.float64()),
            ("boolValue", pa.bool_()),
            ("arrayValue", pa.struct([("values", pa.list_(element))])),
            ("kvlistValue", nothing),
            ("bytesValue", string),
        ]
    )
    attrs = pa.list_(pa.struct([("key", string), ("value", any_value)]))
    lean_value = pa.struct([("stringValue", string), ("intValue", int_value)])
    span_attrs = pa.list_(pa.struct([("key", string), ("value", lean_value)]))
    span = pa.struct(
        [
            ("traceId", string),
            ("spanId", string),
            ("name", string),
            ("startTimeUnixNano", start),
            ("endTimeUnixNano", end),
            ("status", pa.struct([("code", code)])),
            ("attributes", span_attrs),
            *((key, string) for key in ("trace_id", "span_id")),
            *((key, string) for key in ("start_time_unix_nano", "end_time_unix_nano")),
        ]
    )
    legacy = ("scope_spans", "instrumentationLibrarySpans", "instrumentation_library_spans")
    resource_span = pa.struct(
        [
            ("resource", pa.struct([("attributes", attrs)])),
            ("scopeSpans", pa.list_(pa.struct([("spans", pa.list_(span))]))),
            *((key, pa.list_(nothing)) for key in legacy),
        ]
    )
    return pa.schema(
        [("resourceSpans", pa.list_(resource_span)), ("resource_spans", pa.list_(nothing))]
    )


def _flip(choice: tuple[pa.DataType, ...], message: str) -> tuple[pa.DataType, ...] | None:
    """The schema choice with the field Arrow found of the other JSON type switched, or None."""
    found = _CHANGED.search(message)
    if not found:
        return None
    field = found.group(1).rsplit("/", 1)[-1]
    wanted = _TYPES.get(found.group(2))
    if field not in _AXES or wanted is None:
        return None
    i = _AXES.index(field)
    return None if choice[i] == wanted else (*choice[:i], wanted, *choice[i + 1 :])


def _invalid_utf8(blob: bytes, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Lines that are not valid UTF-8 (the per-line reader reads them with U+FFFD and a note)."""
    bad = np.zeros(len(starts), dtype=bool)
    if blob.isascii():
        return bad
    view, at, misses = memoryview(blob), 0, 0
    while at < len(blob):
        if misses > 8:  # many bad lines: one decode per line from here on
            for i in range(int(np.searchsorted(starts, at)), len(starts)):
                try:
                    codecs.utf_8_decode(view[starts[i] : ends[i]], "strict", True)
                except UnicodeDecodeError:
                    bad[i] = True
            break
        try:
            codecs.utf_8_decode(view[at:], "strict", True)
            break
        except UnicodeDecodeError as exc:
            i = int(np.searchsorted(starts, at + exc.start, "right")) - 1
            bad[i] = True
            at = int(ends[i]) + 1
            misses += 1
    return bad


def _explicit_null(blob: bytes, start: int, end: int) -> bool:
    """True when ``blob[start:end]`` may hold ``"<AnyValue variant>": null`` or ``"name": null``
    outside a string (Python tells such a null from a missing key; Arrow does not)."""
    at = blob.find(b"null", start, end)
    while at >= 0:
        j = at - 1
        while j >= start and blob[j] in b" \t\r":
            j -= 1
        if j >= start and blob[j] == 0x3A:  # ':' before it: a value, if outside a string
            j -= 1
            while j >= start and blob[j] in b" \t\r":
                j -= 1
            if j >= start and blob[j] == 0x22:
                key = blob[blob.rfind(b'"', start, j) + 1 : j]
                if key in _NULL_KEYS or b"\\" in key:  # a backslash: maybe an escaped name
                    return True
        at = blob.find(b"null", at + 4, end)
    return False


def _np(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(array.to_numpy(zero_copy_only=False))


def _valid(array: pa.Array) -> np.ndarray:
    """True where ``array`` has a value."""
    return _np(pc.is_valid(array))


def _true(array: pa.Array) -> np.ndarray:
    """A boolean array as numpy, null as False."""
    return _np(pc.fill_null(array, False))


def _indices(at: np.ndarray) -> pa.Array:
    """Positions for ``take``, -1 as null."""
    return pa.array(at, mask=at < 0)


def _text(values: pa.Array) -> pa.Array:
    """``fields.text`` of strings: trimmed as ``str.strip()`` does, blank or ``-`` as null."""
    if values.null_count == len(values):
        return values
    trimmed = pc.utf8_trim(values, characters=_PY_SPACE)
    return pc.if_else(pc.is_in(trimmed, value_set=_BLANK), _NULL_STRING, trimmed)


def _per_distinct(values: pa.Array, convert: Callable[[Any], Any], type_: pa.DataType) -> pa.Array:
    """``convert`` applied once per distinct value (nulls stay null)."""
    encoded = pc.dictionary_encode(values)
    converted = pa.array([convert(v) for v in encoded.dictionary.to_pylist()], type_)
    return pc.take(converted, encoded.indices)


def _ip_or_none(value: str) -> str | None:
    try:
        return fields.ip(value, "host.ip")
    except fields.RowError:
        return None


def _plain_integers(values: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Strings of 1-18 ASCII digits, maybe after a ``-``, as int64, and where a value is another
    string (null there); int64 values as they are."""
    if pa.types.is_integer(values.type) or values.null_count == len(values):
        return values.cast(pa.int64()), np.zeros(len(values), dtype=bool)
    negative = pc.fill_null(pc.starts_with(values, pattern="-"), False)
    digits = pc.if_else(negative, pc.utf8_slice_codeunits(values, 1), values)
    plain = pc.and_(
        pc.fill_null(pc.ascii_is_decimal(digits), False),
        pc.less_equal(pc.binary_length(digits), 18),
    )
    plain = pc.fill_null(plain, False)
    numbers = pc.cast(pc.if_else(plain, values, _NULL_STRING), pa.int64())
    return numbers, _valid(values) & ~_np(plain)


def _nanoseconds(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """OTLP times as int64 ns where ``_epoch_ns`` takes them as they are, without a note (18-19
    digits, at least 1e17), and where that is so."""
    if pa.types.is_integer(values.type) or values.null_count == len(values):
        numbers = _np(pc.fill_null(values.cast(pa.int64()), 0))
        return numbers, _valid(values) & (numbers >= 10**17) & (numbers < 2**63 - 1)
    length = pc.binary_length(values)
    ok = pc.and_(
        pc.ascii_is_decimal(values),
        pc.or_(
            pc.equal(length, 18),
            pc.and_(pc.equal(length, 19), pc.less_equal(values, _MAX_NS)),
        ),
    )
    ok = pc.fill_null(ok, False)
    numbers = _np(pc.fill_null(pc.cast(pc.if_else(ok, values, _NULL_STRING), pa.int64()), 0))
    return numbers, _np(ok) & (numbers >= 10**17)


class _Lines:
    """A run's lines (the bytes of ``line_runs``), their offsets worked out when first needed."""

    def __init__(self, blob: bytes) -> None:
        self.blob = blob
        self._spans: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def spans(self) -> tuple[np.ndarray, np.ndarray]:
        """Start and end offsets of each line."""
        if self._spans is None:
            self._spans = line_spans(self.blob)
        return self._spans

    def view(self, lo: int, hi: int, count: int) -> memoryview:
        """Lines ``lo``..``hi`` (of ``count``) joined by their newlines, without a copy."""
        if lo == 0 and hi == count:
            return memoryview(self.blob)
        starts, ends = self.spans
        return memoryview(self.blob)[starts[lo] : ends[hi - 1]]

    def text(self, i: int) -> bytes:
        """Line ``i`` as ``iter_lines`` gives it (no end of line)."""
        starts, ends = self.spans
        return self.blob[starts[i] : ends[i]].rstrip(b"\r")

    def explicit_null(self, i: int) -> bool:
        starts, ends = self.spans
        return _explicit_null(self.blob, int(starts[i]), int(ends[i]))


class _Attributes:
    """Some keys of OTLP attribute lists: per owner, the position of the key's (last) item, and
    which of the ``AnyValue`` variants the schema reads each value has."""

    def __init__(
        self, lists: pa.Array, owners: int, keys: tuple[str, ...], variants: tuple[str, ...]
    ) -> None:
        items = pc.list_flatten(lists)
        parents = _np(pc.list_parent_indices(lists))
        keys_at = pc.index_in(pc.struct_field(items, "key"), value_set=pa.array(keys))
        index = _np(pc.fill_null(keys_at, -1))
        self.values = pc.struct_field(items, "value")
        self.valid = _valid(self.values)
        self.present = {v: _valid(pc.struct_field(self.values, v)) for v in variants}
        self.at: dict[str, np.ndarray] = {}
        for k, key in enumerate(keys):
            at = np.full(owners, -1, dtype=np.int64)
            found = np.flatnonzero(index == k)
            if len(found):
                owner = parents[found]
                last = np.append(owner[1:] != owner[:-1], True)  # a later duplicate wins
                at[owner[last]] = found[last]
            self.at[key] = at

    def _per_owner(self, key: str, flags: np.ndarray) -> np.ndarray:
        at = self.at[key]
        out = np.zeros(len(at), dtype=bool)
        some = at >= 0
        out[some] = flags[at[some]]
        return out

    def has(self, key: str, variant: str) -> np.ndarray:
        """True where the owner's value of ``key`` has ``variant``."""
        return self._per_owner(key, self.present[variant])

    def odd(self, key: str, allowed: tuple[str, ...]) -> np.ndarray:
        """True where ``key`` has a value (``"value"`` not null) that is not exactly one of the
        ``allowed`` variants: another variant, two of them, an empty object, or a variant the
        schema does not read (then ``attribute_value`` may give something, Arrow shows nothing)."""
        count = np.zeros(len(self.valid), dtype=np.int8)
        good = np.zeros(len(self.valid), dtype=bool)
        for variant, present in self.present.items():
            count += present
            if variant in allowed:
                good |= present
        return self._per_owner(key, self.valid & ~(good & (count == 1)))

    def get(
        self, key: str, variant: str = "stringValue", rows: np.ndarray | None = None
    ) -> pa.Array:
        """The ``variant`` values of ``key`` (of the owners ``rows``), null where absent."""
        at = self.at[key] if rows is None else self.at[key][rows]
        values = pc.struct_field(self.values, variant)
        if not (at >= 0).any():
            return pa.nulls(len(at), values.type)
        return values.take(_indices(at))


class _Spans:
    """Every span of a parsed piece, flattened, with the checks that send a line to the per-line
    reader: the lines that pass them all (``fast``) are read column-wise (``rows``)."""

    def __init__(self, table: pa.Table, lines: _Lines, lo: int) -> None:
        doc = table.column("resourceSpans").combine_chunks()
        slow = ~_valid(doc)  # not an OTLP request: a reject
        slow |= _valid(table.column("resource_spans").combine_chunks())
        resource_spans = pc.list_flatten(doc)
        rs_line = _np(pc.list_parent_indices(doc))
        slow[rs_line[~_valid(resource_spans)]] = True  # an entry that is not an object: a reject
        for key in ("scope_spans", "instrumentationLibrarySpans", "instrumentation_library_spans"):
            slow[rs_line[_valid(pc.struct_field(resource_spans, key))]] = True
        scopes = pc.struct_field(resource_spans, "scopeSpans")
        scope = pc.list_flatten(scopes)
        scope_rs = _np(pc.list_parent_indices(scopes))
        span_lists = pc.struct_field(scope, "spans")
        spans = pc.list_flatten(span_lists)
        self.resource = scope_rs[_np(pc.list_parent_indices(span_lists))]
        self.line = rs_line[self.resource]
        n = len(spans)
        # Lines where an explicit null would change what Python reads: scanned for one.
        maybe_null = np.zeros(table.num_rows, dtype=bool)

        # What each resource says about its spans.
        resource = _Attributes(
            pc.struct_field(pc.struct_field(resource_spans, "resource"), "attributes"),
            len(resource_spans),
            _RESOURCE_KEYS,
            _VARIANTS,
        )
        rs_slow = resource.odd("host.ip", ("stringValue", "arrayValue"))
        for key in _RESOURCE_KEYS:
            if key != "host.ip":
                rs_slow |= resource.odd(key, _STRING)
        self.rs_host = pc.coalesce(
            *(_text(resource.get(k)) for k in ("host.name", "container.name", "container.id"))
        )
        self.rs_run = pc.coalesce(
            *(_text(resource.get(k)) for k in ("service.namespace", "service.name"))
        )
        rs_slow |= self._addresses(resource)
        slow[rs_line[rs_slow]] = True
        maybe_null[rs_line[resource.has("host.ip", "arrayValue")]] = True

        # Span checks: anything that a note, a reject or a subtle conversion would come of.
        span_slow = ~_valid(spans)  # a span that is not an object: a reject
        for key in ("trace_id", "span_id", "start_time_unix_nano", "end_time_unix_nano"):
            span_slow |= _valid(pc.struct_field(spans, key))
        attrs = _Attributes(pc.struct_field(spans, "attributes"), n, _SPAN_KEYS, _SPAN_VARIANTS)
        self.attrs = attrs
        for key in ("gen_ai.operation.name", "gen_ai.conversation.id"):
            span_slow |= attrs.odd(key, _STRING)
        self.trace = pc.struct_field(spans, "traceId")
        self.span_id = pc.struct_field(spans, "spanId")
        for ids in (self.trace, self.span_id):  # str.lower() and ascii_lower agree on ASCII
            span_slow |= ~_true(pc.or_kleene(pc.string_is_ascii(ids), pc.is_null(ids)))
        operation = attrs.get("gen_ai.operation.name")
        self.name = pc.struct_field(spans, "name")
        tool = _true(
            pc.if_else(
                pc.is_valid(operation),
                pc.equal(operation, "execute_tool"),
                pc.starts_with(self.name, pattern="execute_tool"),
            )
        )
        self.tool = tool
        call_slow = np.zeros(n, dtype=bool)
        call_null = ~attrs.has("gen_ai.tool.name", "stringValue") & ~_valid(self.name)
        for key in _TEXT_KEYS:
            call_slow |= attrs.odd(key, _STRING)
        self.integers: dict[str, pa.Array] = {}
        for key in _INTEGER_KEYS:
            call_slow |= attrs.odd(key, ("intValue", "stringValue"))
            from_int, bad_int = _plain_integers(attrs.get(key, "intValue"))
            from_text, bad_text = _plain_integers(attrs.get(key))
            call_slow |= bad_int | bad_text
            call_null |= ~_valid(from_text) & _valid(from_int)
            self.integers[key] = pc.coalesce(from_int, from_text)
        call_slow |= attrs.odd("error.type", _SPAN_VARIANTS)
        self.error_type = attrs.has("error.type", "stringValue") | attrs.has(
            "error.type", "intValue"
        )
        call_null |= self.error_type & ~attrs.has("error.type", "stringValue")
        self.code = pc.struct_field(pc.struct_field(spans, "status"), "code")
        self.start, start_ok = _nanoseconds(pc.struct_field(spans, "startTimeUnixNano"))
        end_values = pc.struct_field(spans, "endTimeUnixNano")
        self.end, end_ok = _nanoseconds(end_values)
        self.has_end = _valid(end_values)
        call_slow |= ~start_ok
        call_slow |= self.has_end & (~end_ok | (self.end < self.start))
        span_slow |= tool & call_slow
        slow[self.line[span_slow]] = True
        maybe_null[self.line[tool & call_null]] = True
        for i in np.flatnonzero(maybe_null & ~slow).tolist():
            slow[i] = lines.explicit_null(lo + i)
        self.fast = ~slow

        # Spans that are not tool calls are counted under their operation name.
        fast_span = self.fast[self.line]
        self.skip_codes = np.full(n, -1, dtype=np.int64)
        skipped = np.flatnonzero(fast_span & ~tool)
        self.skip_reasons: list[str] = []
        if len(skipped):
            labels = pc.take(operation, pa.array(skipped))
            labels = pc.if_else(
                pc.fill_null(pc.not_equal(labels, ""), False), labels, "no gen_ai.operation.name"
            )
            encoded = pc.dictionary_encode(labels)
            self.skip_reasons = [
                f"span is not a tool call ({label})" for label in encoded.dictionary.to_pylist()
            ]
            self.skip_codes[skipped] = _np(encoded.indices)

        # Every span's conversation id, for calls (on any line) that lack one.
        conversation = attrs.get("gen_ai.conversation.id")
        has = fast_span & _valid(conversation) & _true(pc.not_equal(self.trace, ""))
        self.conversation_span = np.flatnonzero(has)
        where = pa.array(self.conversation_span)
        self.conversation_trace = pc.ascii_lower(pc.take(self.trace, where))
        self.conversation_value = pc.take(conversation, where)

    def _addresses(self, resource: _Attributes) -> np.ndarray:
        """Each resource's ``host.ip`` addresses (a string or an array of them) as ``_ips`` reads
        them: ``ip_resource``/``ip_value`` pairs by resource, ``rs_ip`` the first; True for a
        resource whose array holds a value of another kind that ``_ips`` might take for one."""
        n = len(resource.at["host.ip"])
        single = resource.get("host.ip")
        lists = pc.struct_field(resource.get("host.ip", "arrayValue"), "values")
        items = pc.list_flatten(lists)
        item_rs = _np(pc.list_parent_indices(lists))
        item_text = pc.struct_field(items, "stringValue")
        odd_item = ~_valid(item_text) & (
            _valid(pc.struct_field(items, "intValue"))
            | _valid(pc.struct_field(items, "bytesValue"))
        )
        slow = np.zeros(n, dtype=bool)
        slow[item_rs[odd_item]] = True
        single_rs = np.flatnonzero(_valid(single))
        owner = np.concatenate([single_rs, item_rs])
        text = pa.concat_arrays([single.take(pa.array(single_rs)), item_text])
        order = np.argsort(owner, kind="stable")
        owner, text = owner[order], text.take(pa.array(order))
        address = _per_distinct(text, _ip_or_none, pa.string())
        keep = _valid(address)
        self.ip_resource = owner[keep]
        self.ip_value = address.filter(pa.array(keep))
        firsts = np.flatnonzero(np.append(True, self.ip_resource[1:] != self.ip_resource[:-1]))
        at = np.full(n, -1, dtype=np.int64)
        if len(self.ip_resource):
            at[self.ip_resource[firsts]] = firsts
        self.rs_ip = self.ip_value.take(_indices(at))
        return slow


class _Rows:
    """A piece's ``tool_calls`` rows (of the lines read column-wise), with per-row extras."""

    def __init__(self, spans: _Spans, source: Source, first: int) -> None:
        picked = np.flatnonzero(spans.tool & spans.fast[spans.line])
        self.count = n = len(picked)
        self.line = spans.line[picked]
        self.resource = spans.resource[picked]
        self.ts_start = spans.start[picked]
        where = pa.array(picked)
        attrs = spans.attrs

        def take(values: pa.Array) -> pa.Array:
            return pc.take(values, where)

        def text(key: str) -> pa.Array:
            return _text(attrs.get(key, rows=picked))

        rs = pa.array(self.resource)
        span_id = take(spans.span_id)
        call_id = pc.coalesce(
            text("gen_ai.tool.call.id"),
            pc.if_else(pc.equal(span_id, ""), _NULL_STRING, pc.ascii_lower(span_id)),
        )
        episode = text("gen_ai.conversation.id")
        trace = take(spans.trace)
        trace = pc.if_else(pc.equal(trace, ""), _NULL_STRING, pc.ascii_lower(trace))
        self.pending = pc.if_else(pc.is_null(episode), trace, _NULL_STRING)
        span_name = pc.fill_null(take(spans.name), "")
        bare = pc.if_else(
            pc.starts_with(span_name, pattern="execute_tool "),
            pc.utf8_slice_codeunits(span_name, 13),
            span_name,
        )
        bare = pc.utf8_trim(bare, characters=_PY_SPACE)
        tool = pc.coalesce(
            text("gen_ai.tool.name"), pc.if_else(pc.equal(bare, ""), _NULL_STRING, bare)
        )
        arguments = attrs.get("gen_ai.tool.call.arguments", rows=picked)
        output = text("gen_ai.tool.call.result")
        length = pc.utf8_length(output)
        long = pc.fill_null(pc.greater(length, OUTPUT_CHARS), False)
        if pc.any(long).as_py():
            cut = pc.binary_join_element_wise(
                pc.utf8_slice_codeunits(output, 0, OUTPUT_CHARS),
                "... [",
                pc.cast(pc.subtract(length, OUTPUT_CHARS), pa.string()),
                " more characters]",
                "",
            )
            output = pc.if_else(long, cut, output)
        exit_code = take(spans.integers["process.exit.code"])
        code = take(spans.code)
        if pa.types.is_integer(code.type):
            error_status, ok_status = pc.equal(code, 2), pc.equal(code, 1)
        else:
            error_status = pc.is_in(code, value_set=pa.array(["2", "STATUS_CODE_ERROR", "ERROR"]))
            ok_status = pc.is_in(code, value_set=pa.array(["1", "STATUS_CODE_OK", "OK"]))
        by_exit = pc.if_else(pc.is_valid(exit_code), pc.not_equal(exit_code, 0), _NULL_BOOL)
        by_status = pc.if_else(
            pc.fill_null(error_status, False),
            True,
            pc.if_else(pc.fill_null(ok_status, False), False, by_exit),
        )
        is_error = pc.if_else(pa.array(spans.error_type[picked]), True, by_status)
        ts_end = pa.array(spans.end[picked], pa.int64(), mask=~spans.has_end[picked])

        def const(value: str) -> pa.Array:
            return pa.repeat(pa.scalar(value, pa.string()), n)

        values: dict[str, Any] = {
            "call_id": call_id,
            "run_id": pc.take(spans.rs_run, rs),
            "episode_id": episode,
            "step": take(spans.integers["step"]),
            "ts_start": pa.array(self.ts_start, pa.int64()),
            "ts_end": ts_end,
            "ts_kind": const("exact"),
            "tool": tool,
            "command": _per_distinct(arguments, command_from, pa.string()),
            "arguments": _text(arguments),
            "output": output,
            "exit_code": exit_code,
            "is_error": is_error,
            "host": pc.coalesce(pc.take(spans.rs_host, rs), text("host.name")),
            "host_ip": pc.take(spans.rs_ip, rs),
            "model": pc.coalesce(text("gen_ai.request.model"), text("gen_ai.response.model")),
            "train_step": take(spans.integers["train_step"]),
            "source_format": const(name),
            "source_path": const(source.display),
            "source_line": pa.array(self.line + first, pa.int64()),
        }
        arrays = []
        for field in TOOL_CALLS:
            value = values.get(field.name)
            arrays.append(pa.nulls(n, field.type) if value is None else value.cast(field.type))
        self.table = pa.Table.from_arrays(arrays, schema=TOOL_CALLS)
