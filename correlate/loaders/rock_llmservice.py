"""ROCK ModelService hand-off files from inside a sandbox: ``LLMService.log`` and ``LLMTraj.jsonl``.

No file records a tool's own start or end, but every tool call of response *N* ran after it was
written and before request *N+1* (which carries the results): each call is one ``bracket`` row,
``ts_start`` = response *N*'s time, ``ts_end`` = request *N+1*'s (null and noted when the session
or file ends first). Stamps are the sandbox's clock, zone-free. ``LLMService.log`` records are
``LLM_REQUEST_START...``/``LLM_RESPONSE_START...`` lines split at the *last* end marker (agent text
cannot forge one) and ``SESSION_END``; ``LLMTraj.jsonl`` records carry start/end times (the
old ``{"request", "response"}`` shape has none: its calls are rejected).

Mapping: ``call_id``/``tool``/``arguments`` from ``tool_calls[]``; ``command`` from the
arguments; ``output`` = the next request's ``role: "tool"`` message; ``step`` = the response
index; ``exit_code``/``is_error`` null. ``host`` = the ``sandbox`` option, else a ``sandbox_id``
in the records, else the folder name (generic names skipped); ``episode_id`` =
``<sandbox>#<session>``; ``run_id`` = the ``run`` option. Read line by line, by measurement.
Format reference and sources: ``tests/data/rock_llmservice/README.md``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..schema import TOOL_CALLS
from ..sources import Source, iter_lines
from ..timeparse import TimeParseError, parse_epoch
from . import fields
from .base import FileLoad, LoadOptions, LoadResult
from .calls import truncate
from .records import first_line, json_line_record, text_line

name = "rock_llmservice"
kind = "agent"
description = (
    "ROCK ModelService LLMService.log / LLMTraj.jsonl: iFlow tool calls bracketed by LLM turns"
)

OPTIONS = {
    "sandbox": "the sandbox id for every call (default: one named in the records, else the folder name)",
    "run": "the run id (default none)",
}
"""``--option rock_llmservice.KEY=VALUE`` settings."""

REQUEST_START, REQUEST_END = "LLM_REQUEST_START", "LLM_REQUEST_END"
RESPONSE_START, RESPONSE_END = "LLM_RESPONSE_START", "LLM_RESPONSE_END"
SESSION_END = "SESSION_END"

GENERIC_FOLDERS = frozenset(
    {"", ".", "..", "logs", "log", "data", "model", "model_service", "tmp", "tmp_model_service"}
)
"""Folder names that are not a sandbox id (the container's ``/data/logs`` copied as is)."""

COMMAND_KEYS = ("command", "cmd", "commands", "script")
EDITOR_SUBCOMMANDS = frozenset({"view", "create", "str_replace", "insert", "undo_edit"})
EDITOR_TOOLS = frozenset({"str_replace_editor", "str_replace_based_edit_tool", "edit_file"})

SKIP_REQUEST = "request (ends the previous response's tool-call window)"
SKIP_NO_TOOLS = "response without tool calls"
SKIP_SESSION_END = "SESSION_END marker"


# --- helpers shared with roll_dump (OpenAI chat tool calls) ---------------------------------------


def shell_command(tool: str | None, arguments: Any) -> str | None:
    """The shell text in a tool call's arguments (``{"command": ...}`` and similar), if any.

    A file-editor tool's ``command`` (``view``, ``create``, ...) is a sub-command, not shell text.
    """
    value = arguments
    if isinstance(arguments, str):
        try:
            value = json.loads(arguments)
        except (ValueError, RecursionError):
            return None
    if not isinstance(value, dict):
        return None
    if tool in EDITOR_TOOLS:
        return None
    for key in COMMAND_KEYS:
        found = value.get(key)
        if isinstance(found, str) and found.strip():
            if found.strip() in EDITOR_SUBCOMMANDS and "path" in value:
                return None
            return found
        if isinstance(found, list) and found and all(isinstance(x, str) for x in found):
            return "; ".join(found) if key == "commands" else " ".join(found)
    return None


def content_text(content: Any) -> str | None:
    """A chat message's content as text (string, or the text parts of a list of parts)."""
    if isinstance(content, list):
        parts = [
            str(part.get("text"))
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        ]
        if parts:
            return "\n".join(parts)
    return fields.text(content)


def tool_results(messages: Any) -> dict[str, str | None]:
    """``tool_call_id`` -> text of the ``role: "tool"`` messages in a chat message list."""
    out: dict[str, str | None] = {}
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict) and message.get("role") == "tool":
                call_id = fields.text(message.get("tool_call_id"))
                if call_id is not None:
                    out.setdefault(call_id, content_text(message.get("content")))
    return out


def convert_tool_call(item: Any, position: int) -> dict[str, Any]:
    """``call_id``, ``tool``, ``arguments`` and ``command`` of one OpenAI ``tool_calls`` entry."""
    if not isinstance(item, dict):
        raise fields.RowError(f"tool call {position} is not an object")
    function = item.get("function")
    if not isinstance(function, dict):
        raise fields.RowError(f"tool call {position} has no function object")
    tool = fields.text(function.get("name"))
    if tool is None:
        raise fields.RowError(f"tool call {position} has no function.name")
    arguments = function.get("arguments")
    if isinstance(arguments, (dict, list)):
        arguments_text: str | None = json.dumps(arguments, ensure_ascii=False)
    else:
        arguments_text = None if arguments is None else str(arguments)
    return {
        "call_id": fields.text(item.get("id")),
        "tool": tool,
        "arguments": arguments_text,
        "command": shell_command(tool, arguments),
    }


def response_tool_calls(response: dict[str, Any]) -> list[Any]:
    """The ``tool_calls`` entries of a chat completion (every choice), in order."""
    found: list[Any] = []
    choices = response.get("choices")
    messages: list[Any] = []
    if isinstance(choices, list):
        messages = [c.get("message") for c in choices if isinstance(c, dict)]
    elif isinstance(response.get("message"), dict):
        messages = [response["message"]]
    else:
        messages = [response]
    for message in messages:
        if not isinstance(message, dict):
            continue
        calls = message.get("tool_calls")
        if calls is None:
            continue
        if not isinstance(calls, list):
            raise fields.RowError("tool_calls is not a list")
        found.extend(calls)
    return found


# --- sniffing -------------------------------------------------------------------------------------


def sniff(head: bytes, filename: str) -> float:
    """Score: LLMService.log markers at line starts, or LLMTraj.jsonl request/response records."""
    first = first_line(head)
    if first.startswith((REQUEST_START.encode(), RESPONSE_START.encode())):
        return 0.95
    if first == SESSION_END.encode():
        return 0.9
    if not first.startswith(b"{"):
        return 0.0
    traj_name = filename.lower().startswith("llmtraj")
    has_pair = b'"request"' in first and b'"response"' in first
    if has_pair and b'"start_time"' in first and b'"end_time"' in first:
        return 0.95 if traj_name or b'"response_time"' in first else 0.8
    if traj_name and (has_pair or (b'"startTime"' in first and b'"messages"' in first)):
        return 0.85
    return 0.0


# --- reading --------------------------------------------------------------------------------------


def read(source: Source, options: LoadOptions) -> LoadResult:
    """Read ``LLMService.log`` or ``LLMTraj.jsonl`` into bracketed ``tool_calls`` rows."""
    load = FileLoad(source, options, name, kind, TOOL_CALLS, unit="records")
    reader = _Reader(load)
    if first_line(source.head()).startswith(b"{"):
        reader.read_traj()
    else:
        reader.read_service()
    return load.result()


@dataclass
class _Context:
    """What every row of one file shares."""

    source: Source
    options: LoadOptions
    folder_host: str | None
    run_id: str | None
    forced_host: str | None
    session: int = 1
    named_host: str | None = None

    @property
    def host(self) -> str | None:
        return self.forced_host or self.named_host or self.folder_host

    @property
    def episode(self) -> str:
        return f"{self.host or Path(self.source.name).stem}#{self.session}"


def _context(source: Source, options: LoadOptions) -> _Context:
    return _Context(
        source=source,
        options=options,
        folder_host=host_from_path(source.path),
        run_id=options.option(name, "run"),
        forced_host=options.option(name, "sandbox"),
    )


def host_from_path(path: Path) -> str | None:
    """The nearest enclosing folder name that is not a generic one (``logs``, ``data``, ...)."""
    for parent in path.absolute().parents:
        if parent.name.lower() not in GENERIC_FOLDERS:
            return parent.name
    return None


def _named_sandbox(*records: Any) -> str | None:
    for record in records:
        if not isinstance(record, dict):
            continue
        metadata = record.get("metadata")
        for value in (
            record.get("sandbox_id"),
            metadata.get("sandbox_id") if isinstance(metadata, dict) else None,
        ):
            found = fields.text(value)
            if found:
                return found
    return None


def _split(raw: str, start: str, end: str) -> tuple[str, str]:
    cut = raw.rfind(end)
    if cut < len(start):
        raise fields.RowError(f"no {end} marker (record truncated or split over lines)")
    return raw[len(start) : cut], raw[cut + len(end) :]


def _meta(text: str, options: LoadOptions) -> tuple[int, int | None, str | None, dict[str, Any]]:
    """(time ns, index, epoch note, meta) from a record's meta JSON."""
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError):
        raise fields.RowError(f"meta is not valid JSON: {text.strip()[:80]!r}") from None
    if not isinstance(meta, dict):
        raise fields.RowError("meta is not a JSON object")
    stamp = meta.get("timestamp")
    if fields.is_blank(stamp):
        raise fields.RowError("meta has no timestamp")
    if not isinstance(stamp, (str, int, float)):
        raise fields.RowError(f"meta timestamp is not a number: {stamp!r}")
    try:
        ts, note = parse_epoch(stamp, unit=options.epoch_unit, expected="ms")
    except TimeParseError as exc:
        raise fields.RowError(f"meta timestamp: {exc}") from None
    index = fields.integer(meta.get("index"), "meta index")
    return ts, index, note, meta


def _body(text: str, what: str) -> dict[str, Any]:
    try:
        body = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise fields.RowError(
            f"{what} body is not valid JSON ({exc.__class__.__name__}: {str(exc)[:60]})"
        ) from None
    if not isinstance(body, dict):
        raise fields.RowError(f"{what} body is not a JSON object")
    return body


def _traj_time(record: dict[str, Any], keys: tuple[str, str], options: LoadOptions) -> int | None:
    for key in keys:
        value = record.get(key)
        if not fields.is_blank(value):
            if not isinstance(value, (str, int, float)):
                raise fields.RowError(f"{key} is not a number: {value!r}")
            try:
                return parse_epoch(value, unit=options.epoch_unit, expected="s")[0]
            except TimeParseError as exc:
                raise fields.RowError(f"{key}: {exc}") from None
    return None


@dataclass
class _Brackets:
    """Tool-call rows of the latest response, waiting for the next request to close their window."""

    load: FileLoad
    pending: list[dict[str, Any]] = field(default_factory=list)
    pending_index: int | None = None

    def open(self, rows: list[dict[str, Any]], index: int | None) -> None:
        """Hold a response's rows; an unclosed earlier response is flushed first."""
        self.flush("no request before the next response: end unknown")
        self.pending = rows
        self.pending_index = index

    def close(self, ts_ns: int, index: int | None, outputs: dict[str, str | None]) -> None:
        """Close the pending window at a request's time and attach the tool results it carries."""
        for row in self.pending:
            notes = [row["ts_note"]] if row["ts_note"] else []
            if ts_ns < row["ts_start"]:
                notes.append("next request is earlier than the response: end unknown")
            else:
                row["ts_end"] = ts_ns
            if (
                index is not None
                and self.pending_index is not None
                and index != self.pending_index + 1
            ):
                notes.append(f"next request has index {index}, not {self.pending_index + 1}")
            if row["call_id"] is not None and row["call_id"] in outputs:
                row["output"] = truncate(outputs[row["call_id"]])
            row["ts_note"] = "; ".join(notes) or None
        self._emit()

    def flush(self, note: str) -> None:
        """Emit the pending rows with an open end, saying why."""
        for row in self.pending:
            row["ts_note"] = "; ".join(filter(None, [row["ts_note"], note]))
        self._emit()

    def _emit(self) -> None:
        for row in self.pending:
            self.load.emit(row, row["source_line"])
        self.pending = []
        self.pending_index = None


class _Reader:
    """One file's state: context, open brackets, the last request's model, the record ordinal."""

    def __init__(self, load: FileLoad) -> None:
        self.load = load
        self.options = load.options
        self.ctx = _context(load.source, load.options)
        self.brackets = _Brackets(load)
        self.last_model: str | None = None
        self.ordinal = 0

    # --- LLMService.log -------------------------------------------------------------------------

    def read_service(self) -> None:
        for line, raw in iter_lines(self.load.source):
            self.service_line(line, raw)
        self.brackets.flush("file ends before a next request: end unknown")

    def service_line(self, line: int, raw_bytes: bytes) -> None:
        """One line through the per-line reader."""
        load = self.load
        raw = text_line(line, raw_bytes, load)
        if raw is None:
            return
        text = raw.strip()
        if text == SESSION_END:
            load.skip(SKIP_SESSION_END)
            self.brackets.flush("session ended before a next request: end unknown")
            self.ctx.session += 1
            return
        if text.startswith(REQUEST_START):
            try:
                body_text, meta_text = _split(text, REQUEST_START, REQUEST_END)
                ts, index, _note, meta = _meta(meta_text, self.options)
            except fields.RowError as exc:
                load.reject(line, f"request: {exc}", raw)
                return
            try:
                request = _body(body_text, "request")
            except fields.RowError as exc:
                self.brackets.close(ts, index, {})
                load.reject(line, f"{exc} (its timestamp still ends the previous window)", raw)
                return
            named = _named_sandbox(meta, request)
            model = fields.text(request.get("model"))
            self._request(ts, index, named, model, tool_results(request.get("messages")))
            return
        if text.startswith(RESPONSE_START):
            self._response(line, raw, text)
            return
        load.reject(
            line,
            "not an LLMService.log record (expected LLM_REQUEST_START, LLM_RESPONSE_START or SESSION_END)",
            raw,
        )

    def _request(
        self,
        ts: int,
        index: int | None,
        named: str | None,
        model: str | None,
        outputs: dict[str, str | None],
    ) -> None:
        """A readable request: it names the sandbox and model and closes the pending window."""
        self.ctx.named_host = named or self.ctx.named_host
        self.last_model = model or self.last_model
        self.brackets.close(ts, index, outputs)
        self.load.skip(SKIP_REQUEST)

    def _response(self, line: int, raw: str, text: str) -> None:
        load = self.load
        try:
            body_text, meta_text = _split(text, RESPONSE_START, RESPONSE_END)
            response = _body(body_text, "response")
            calls = response_tool_calls(response)
        except fields.RowError as exc:
            load.reject(line, f"response: {exc}", raw)
            return
        if not calls:
            # A plain answer still ends any earlier window only at the next request.
            load.skip(SKIP_NO_TOOLS)
            return
        try:
            ts, index, note, meta = _meta(meta_text, self.options)
        except fields.RowError as exc:
            load.reject(
                line, f"response with {len(calls)} tool call(s): {exc}", raw, count=len(calls)
            )
            return
        self.ctx.named_host = _named_sandbox(meta) or self.ctx.named_host
        model = fields.text(response.get("model")) or self.last_model
        rows = []
        for position, item in enumerate(calls, start=1):
            try:
                call = convert_tool_call(item, position)
            except fields.RowError as exc:
                load.reject(line, str(exc), raw)
                continue
            rows.append(self._row(call, index, ts, note, model, line))
        self.brackets.open(rows, index)

    # --- LLMTraj.jsonl --------------------------------------------------------------------------

    def read_traj(self) -> None:
        for line, raw in iter_lines(self.load.source):
            self.traj_line(line, raw)
        self.brackets.flush("file ends before a next call: end unknown")

    def traj_line(self, line: int, raw_bytes: bytes) -> None:
        """One line through the per-line reader."""
        found = json_line_record(line, raw_bytes, self.load)
        if found is not None:
            self.traj_record(line, found[0], found[1])

    def traj_record(self, line: int, record: dict[str, Any], raw: str) -> None:
        load = self.load
        self.ordinal += 1
        request = record.get("request")
        request = request if isinstance(request, dict) else {}
        messages = request.get("messages", record.get("messages"))
        try:
            start = _traj_time(record, ("start_time", "startTime"), self.options)
            end = _traj_time(record, ("end_time", "endTime"), self.options)
        except fields.RowError as exc:
            start = end = None
            time_error: str | None = str(exc)
        else:
            time_error = None
        if start is not None:
            self.brackets.close(start, None, tool_results(messages))
        self.ctx.named_host = _named_sandbox(record, request) or self.ctx.named_host
        response = record.get("response")
        if not isinstance(response, dict):
            status = fields.text(record.get("status")) or "no status"
            load.skip(f"call without a response ({status})")
            return
        try:
            calls = response_tool_calls(response)
        except fields.RowError as exc:
            load.reject(line, f"response: {exc}", raw)
            return
        if not calls:
            load.skip(SKIP_NO_TOOLS)
            return
        if end is None:
            reason = time_error or (
                "no end_time/endTime (the older LLMTraj.jsonl shape {request, response} has no times)"
            )
            load.reject(line, f"response with {len(calls)} tool call(s): {reason}", raw, len(calls))
            return
        model = (
            fields.text(response.get("model"))
            or fields.text(request.get("model"))
            or fields.text(record.get("model"))
        )
        rows = []
        for position, item in enumerate(calls, start=1):
            try:
                call = convert_tool_call(item, position)
            except fields.RowError as exc:
                load.reject(line, str(exc), raw)
                continue
            rows.append(self._row(call, self.ordinal, end, None, model, line))
        self.brackets.open(rows, None)

    # --- rows -----------------------------------------------------------------------------------

    def _row(
        self,
        call: dict[str, Any],
        step: int | None,
        ts_start: int,
        note: str | None,
        model: str | None,
        line: int,
    ) -> dict[str, Any]:
        ctx = self.ctx
        return {
            **call,
            "run_id": ctx.run_id,
            "episode_id": ctx.episode,
            "step": step,
            "ts_start": ts_start,
            "ts_end": None,
            "ts_kind": "bracket",
            "output": None,
            "exit_code": None,
            "is_error": None,
            "host": ctx.host,
            "host_ip": None,
            "model": model,
            "train_step": None,
            "ts_note": note,
            "source_format": name,
            "source_path": ctx.source.display,
            "source_line": line,
        }
