"""Inspect AI eval logs (UK AISI): ``.eval`` zip archives and ``.json`` logs; one row per tool call.

A ``ToolEvent`` is one row: ``id`` -> ``call_id``, ``function`` -> ``tool``, ``arguments`` (and
``command``: ``cmd``/``code``/``input``), ``timestamp``/``completed`` -> ``ts_start``/``ts_end``
(``exact``), ``result`` -> ``output``, ``error`` -> ``is_error``. A sandbox ``exec`` inside the
call gives its ``exit_code`` (left empty and noted when several ran); an exec outside every tool
call is a row of its own (``tool`` = ``sandbox_exec``). ``attachment://`` strings are resolved
from the sample's attachments. ``run_id`` = ``eval.eval_id``, ``episode_id`` =
``<sample id>#<epoch>``, ``step`` = model calls so far, ``model`` = ``eval.model``.

``host`` stays empty (a log never names its container): join by time (``--unmapped time``).
Naive timestamps are read as UTC, as Inspect does (``--tz inspect_ai=ZONE``). Records are events
(``source_line`` = the event's 1-based index in the file); the header is one more record,
skipped; a sample without events is one reject. Not column-wise, by measurement; each call's
span is found by bisection (``read(..., fast=False)`` keeps the reference scan). No ``--option``
keys. Layout reference and sources: ``tests/data/inspect_ai/README.md``.
"""

from __future__ import annotations

import bisect
import io
import json
import re
import zipfile
import zlib
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, tzinfo
from functools import partial
from typing import Any

from ..errors import FormatMismatch, InputError
from ..schema import TOOL_CALLS
from ..sources import Source
from ..timeparse import TimeParseError, parse_iso
from . import fields
from .base import FileLoad, LoadOptions, LoadResult
from .calls import command_from, truncate
from .records import WHOLE_DOCUMENT_LIMIT, read_document

name = "inspect_ai"
kind = "agent"
description = "Inspect AI eval log (.eval zip or .json): tool calls with start and end times"

ZIP_MAGIC = b"PK\x03\x04"
EVAL_LIMIT = 4 * 1024 * 1024 * 1024
"""A compressed ``.eval`` (``x.eval.gz``) is unpacked into memory only up to this size."""

_SAMPLE_MEMBER = re.compile(r"^samples/.+\.json$")
_HEADER_MEMBERS = ("header.json", "_journal/start.json", "start.json")
_EVAL_MARKERS = (b"_journal/start.json", b"header.json", b"samples/")
_REFERENCE_PREFIXES = ("attachment://", "tc://")
HEADER = "eval log header (spec, plan, results; no tool calls)"


def sniff(head: bytes, filename: str) -> float:
    """Score: an ``.eval`` zip (its member names show in the head) or an ``EvalLog`` JSON object."""
    if head.startswith(ZIP_MAGIC):
        if any(marker in head[:65536] for marker in _EVAL_MARKERS):
            return 0.95
        return 0.6 if filename.lower().endswith(".eval") else 0.0
    sample = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not sample.startswith(b"{"):
        return 0.0
    needed = (b'"eval"', b'"task_id"', b'"run_id"', b'"version"')
    if all(token in sample for token in needed):
        return 0.95 if b'"task"' in sample else 0.8
    return 0.0


def read(source: Source, options: LoadOptions, *, fast: bool = True) -> LoadResult:
    """Read one Inspect log into ``tool_calls`` rows (see the module docstring for the mapping).

    With ``fast`` (the default) tool events find their tool span by bisection (``_Claims``);
    ``fast=False`` scans every span for each (``_claim_span``), the reference ``_Claims`` is
    tested against. Either way events are converted one by one (see the module docstring).
    """
    load = FileLoad(source, options, name, kind, TOOL_CALLS, unit="events")
    reader = _Reader(load, fast)
    if source.head(4).startswith(ZIP_MAGIC):
        reader.read_eval()
    else:
        reader.read_json()
    if reader.ambiguous_exit:
        load.note(
            f"exit code left empty on {reader.ambiguous_exit} tool call(s) that ran several sandbox commands"
        )
    return load.result()


class _Reader:
    """State for one file: the eval spec and the running event number."""

    def __init__(self, load: FileLoad, fast: bool) -> None:
        self.load = load
        self.source = load.source
        self.zone: tzinfo = load.options.zone_for(name, UTC)
        self.record = 0
        self.run_id: str | None = None
        self.model: str | None = None
        self.ambiguous_exit = 0
        self.fast = fast

    # --- containers -------------------------------------------------------------------------

    def read_json(self) -> None:
        parsed = read_document(
            self.source,
            self.load.stats,
            self.load.sink,
            too_big=f"an Inspect JSON log over {WHOLE_DOCUMENT_LIMIT >> 20} MiB; "
            "convert it to .eval (inspect log convert --to eval) to read it sample by sample",
        )
        if parsed is None:
            return
        log, _ = parsed
        if not isinstance(log, dict) or not isinstance(log.get("eval"), dict):
            raise FormatMismatch(
                f"{self.source.display}: not an Inspect AI eval log (no 'eval' spec object)"
            )
        self._header(log)
        samples = log.get("samples")
        for sample in samples if isinstance(samples, list) else []:
            self._sample(sample, None)

    def read_eval(self) -> None:
        try:
            archive = self._open_zip()
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
            raise InputError(
                f"{self.source.display}: not a readable .eval zip archive ({exc})"
            ) from None
        with archive:
            header = None
            for member in _HEADER_MEMBERS:
                header = self._member_json(archive, member)
                if isinstance(header, dict) and isinstance(header.get("eval"), dict):
                    break
            if isinstance(header, dict) and isinstance(header.get("eval"), dict):
                self._header(header)
            else:
                self.load.note(
                    "no readable header.json or _journal/start.json: run and model unknown"
                )
            latest: dict[str, zipfile.ZipInfo] = {}
            members = [info for info in archive.infolist() if _SAMPLE_MEMBER.match(info.filename)]
            for info in members:
                latest[info.filename] = info
            for info in members:
                if latest[info.filename] is not info:
                    self.record += 1
                    self.load.skip("sample rewritten later in the archive (last copy read)")
                    continue
                try:
                    sample = json.loads(archive.read(info))
                except (
                    zipfile.BadZipFile,
                    NotImplementedError,
                    OSError,
                    EOFError,
                    zlib.error,
                    RuntimeError,
                    ValueError,
                    RecursionError,
                ) as exc:
                    self.record += 1
                    self.load.reject(
                        self.record,
                        f"{info.filename}: unreadable sample ({exc.__class__.__name__}: {str(exc)[:80]})",
                        info.filename,
                    )
                    continue
                self._sample(sample, info.filename)

    def _open_zip(self) -> zipfile.ZipFile:
        if not self.source.compression:
            return zipfile.ZipFile(self.source.path)
        with self.source.open() as stream:
            data = stream.read(EVAL_LIMIT + 1)
        if len(data) > EVAL_LIMIT:
            raise InputError(
                f"{self.source.display}: a compressed .eval over {EVAL_LIMIT >> 30} GiB; unpack it first"
            )
        return zipfile.ZipFile(io.BytesIO(data))

    def _member_json(self, archive: zipfile.ZipFile, member: str) -> Any:
        try:
            return json.loads(archive.read(member))
        except KeyError:
            return None
        except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError, zlib.error) as exc:
            self.load.note(f"{member} unreadable: {exc.__class__.__name__}")
        except (ValueError, RecursionError):
            self.load.note(f"{member} is not valid JSON")
        return None

    def _header(self, log: dict[str, Any]) -> None:
        self.load.skip(HEADER)
        spec = log["eval"]
        self.run_id = fields.text(spec.get("eval_id")) or fields.text(spec.get("run_id"))
        self.model = fields.text(spec.get("model"))

    # --- samples and events -----------------------------------------------------------------

    def _sample(self, sample: Any, member: str | None) -> None:
        where = f"{member}: " if member else ""
        if not isinstance(sample, dict):
            self.record += 1
            self.load.reject(
                self.record, f"{where}sample is not an object", json.dumps(sample)[:4096]
            )
            return
        events = sample.get("events")
        references: dict[str, Any] = {}
        transcript = sample.get("transcript")
        if isinstance(transcript, dict):
            if events is None:
                events = transcript.get("events")
            if isinstance(transcript.get("content"), dict):
                references.update(transcript["content"])
        if isinstance(sample.get("attachments"), dict):
            references.update(sample["attachments"])
        if not isinstance(events, list):
            self.record += 1
            epoch = sample.get("epoch")
            self.load.reject(
                self.record,
                f"{where}sample {sample.get('id')!r}"
                f"{f' epoch {epoch}' if isinstance(epoch, int) else ''} has no events list "
                "(its calls have no times): sample not read",
                json.dumps({k: sample.get(k) for k in ("id", "epoch")}),
            )
            return
        episode = f"{fields.text(sample.get('id'))}#{fields.text(sample.get('epoch')) or '1'}"
        tool_spans, inside_tool = _tool_spans(events)
        execs_by_span: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        for event in events:
            if isinstance(event, dict) and _is_exec(event):
                execs_by_span[_span_of(event)].append(event)
        claim = _Claims(tool_spans) if self.fast else None
        claimed: set[str] = set()
        model_calls = 0
        for index, event in enumerate(events):
            self.record += 1
            if not isinstance(event, dict):
                reason = f"event is not an object but {type(event).__name__}"
                self.load.reject(self.record, reason, str(event))
                continue
            kind_name = event.get("event")
            if kind_name == "model":
                model_calls += 1
            if kind_name == "tool":
                if claim is not None:
                    span = claim(index, event)
                else:
                    span = _claim_span(events, index, event, tool_spans, claimed)
                nested = event.get("events")
                execs = (
                    execs_by_span.get(span, [])
                    if span
                    else [e for e in nested if isinstance(e, dict) and _is_exec(e)]
                    if isinstance(nested, list)
                    else []
                )
                convert = partial(self._tool_row, event, execs, references)
                self._emit(convert, event, episode, model_calls)
            elif kind_name == "sandbox" and _is_exec(event) and _span_of(event) not in inside_tool:
                self._emit(partial(self._exec_row, event, references), event, episode, model_calls)
            elif kind_name == "sandbox":
                action = event.get("action")
                reason = (
                    "sandbox exec inside a tool call (folded into its row)"
                    if action == "exec"
                    else f"sandbox {action} (not a command)"
                )
                self.load.skip(reason)
            else:
                self.load.skip(f"{kind_name or 'untyped'} event (not a tool call)")

    def _emit(
        self,
        convert: Callable[[], dict[str, Any]],
        event: dict[str, Any],
        episode: str,
        model_calls: int,
    ) -> None:
        try:
            row = convert()
        except fields.RowError as exc:
            label = event.get("id") or event.get("uuid") or event.get("event")
            self.load.reject(self.record, f"{event.get('event')} event {label}: {exc}", _raw(event))
            return
        row.update(
            run_id=self.run_id,
            episode_id=episode,
            step=model_calls or None,
            model=self.model,
        )
        self.load.emit(row, self.record)

    def _times(self, event: dict[str, Any]) -> tuple[int, int | None, list[str]]:
        notes: list[str] = []
        start, note = _parse_time(event.get("timestamp"), "timestamp", self.zone)
        if note:
            notes.append(note)
        end = None
        if fields.is_blank(event.get("completed")):
            notes.append(NO_COMPLETED)
        else:
            end, note = _parse_time(event.get("completed"), "completed", self.zone)
            if note and note not in notes:
                notes.append(note)
            if end < start:
                notes.append(END_BEFORE_START)
                end = None
        return start, end, notes

    def _tool_row(
        self, event: dict[str, Any], execs: list[dict[str, Any]], references: dict[str, Any]
    ) -> dict[str, Any]:
        function = fields.text(event.get("function"))
        if function is None:
            raise fields.RowError("function is missing")
        start, end, notes = self._times(event)
        arguments = _resolve(event.get("arguments"), references)
        if arguments is not None and not isinstance(arguments, dict):
            raise fields.RowError(f"arguments is not an object: {arguments!r}"[:200])
        exit_code, ambiguous = _exit_of(execs)
        self.ambiguous_exit += ambiguous
        return {
            "ts_start": start,
            "ts_end": end,
            "ts_kind": "exact",
            **_tool_fields(event, function, arguments, exit_code, references),
            "ts_note": "; ".join(notes) or None,
        }

    def _exec_row(self, event: dict[str, Any], references: dict[str, Any]) -> dict[str, Any]:
        start, end, notes = self._times(event)
        return {
            "ts_start": start,
            "ts_end": end,
            "ts_kind": "exact",
            **_exec_fields(event, references),
            "ts_note": "; ".join(notes) or None,
        }


NO_COMPLETED = "no completed time (call pending or interrupted)"
END_BEFORE_START = "end before start: end ignored"


def _exit_of(execs: list[dict[str, Any]]) -> tuple[int | None, int]:
    """The call's exit code (its one exec's), and 1 when several execs leave it empty."""
    if len(execs) == 1:
        return _exit_code(execs[0].get("result")), 0
    return None, int(len(execs) > 1)


def _tool_fields(
    event: dict[str, Any],
    function: str,
    arguments: dict[str, Any] | None,
    exit_code: int | None,
    references: dict[str, Any],
) -> dict[str, Any]:
    """A ToolEvent's row fields other than its times (none of them can reject)."""
    error = event.get("error")
    output = _text(_resolve(event.get("result"), references))
    if not output and isinstance(error, dict):
        output = ": ".join(
            x for x in (fields.text(error.get("type")), fields.text(error.get("message"))) if x
        )
    is_error: bool | None = bool(error) or event.get("failed") is True
    if not is_error:
        if exit_code is not None:
            is_error = exit_code != 0
        elif fields.is_blank(event.get("completed")):
            is_error = None  # still pending or interrupted: outcome unknown
    return {
        "call_id": fields.text(event.get("id")),
        "tool": function,
        "command": _command(function, arguments),
        "arguments": json.dumps(arguments, ensure_ascii=False) if arguments is not None else None,
        "output": truncate(output),
        "exit_code": exit_code,
        "is_error": is_error,
    }


def _exec_fields(event: dict[str, Any], references: dict[str, Any]) -> dict[str, Any]:
    """A SandboxEvent exec's row fields other than its times."""
    command = _text(_resolve(event.get("cmd"), references))
    exit_code = _exit_code(event.get("result"))
    arguments = {"cmd": command, "options": event.get("options") or {}}
    return {
        "call_id": fields.text(event.get("uuid")),
        "tool": "sandbox_exec",
        "command": command,
        "arguments": json.dumps(arguments, ensure_ascii=False),
        "output": truncate(_text(_resolve(event.get("output"), references))),
        "exit_code": exit_code,
        "is_error": None if exit_code is None else exit_code != 0,
    }


def _span_of(event: dict[str, Any]) -> str | None:
    """The event's span id, or None when it is missing or not text."""
    span = event.get("span_id")
    return span if isinstance(span, str) else None


def _is_exec(event: dict[str, Any]) -> bool:
    return event.get("event") == "sandbox" and event.get("action") == "exec"


def _tool_spans(events: list[Any]) -> tuple[dict[str, tuple[int, Any, Any]], set[str]]:
    """Tool spans by id (index, name, parent id), and every span id at or under a tool span."""
    spans: dict[str, tuple[int, Any, Any, Any]] = {}
    for index, event in enumerate(events):
        if isinstance(event, dict) and event.get("event") == "span_begin":
            span_id = event.get("id")
            if isinstance(span_id, str):
                spans[span_id] = (
                    index,
                    event.get("type"),
                    event.get("parent_id"),
                    event.get("name"),
                )
    tools = {
        span_id: (index, span_name, parent)
        for span_id, (index, span_type, parent, span_name) in spans.items()
        if span_type == "tool"
    }
    inside: set[str] = set()
    for span_id in spans:
        current: Any = span_id
        seen: set[str] = set()
        while isinstance(current, str) and current not in seen:
            seen.add(current)
            if current in tools:
                inside.add(span_id)
                break
            parent = spans.get(current)
            current = parent[2] if parent else None
    return tools, inside


def _claim_span(
    events: list[Any],
    index: int,
    event: dict[str, Any],
    tool_spans: dict[str, tuple[int, Any, Any]],
    claimed: set[str],
) -> str | None:
    """The tool span this ToolEvent was emitted in: the nearest unclaimed ``span_begin`` of type
    tool with the call's function as name and the event's span as parent, looking back first."""
    function = event.get("function")
    parent = _span_of(event)
    candidates = [
        (abs(span_index - index) + (0 if span_index < index else 0.5), span_id)
        for span_id, (span_index, span_name, span_parent) in tool_spans.items()
        if span_id not in claimed
        and span_name == function
        and (span_parent == parent or span_parent is None)
    ]
    if not candidates:
        return None
    _, best = min(candidates)
    claimed.add(best)
    return best


def _parse_time(value: Any, field: str, zone: tzinfo) -> tuple[int, str | None]:
    if fields.is_blank(value):
        raise fields.RowError(f"{field} is missing")
    if not isinstance(value, str):
        raise fields.RowError(f"{field} is not an ISO 8601 time: {value!r}")
    try:
        return parse_iso(value, default_tz=zone)
    except TimeParseError as exc:
        raise fields.RowError(f"{field}: {exc}") from None


def _resolve(value: Any, references: dict[str, Any]) -> Any:
    """``value`` with ``attachment://`` / ``tc://`` references replaced by the stored text."""
    if isinstance(value, str):
        for prefix in _REFERENCE_PREFIXES:
            if value.startswith(prefix):
                return references.get(value[len(prefix) :], value)
        return value
    if isinstance(value, list):
        return [_resolve(v, references) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, references) for k, v in value.items()}
    return value


def _text(value: Any) -> str | None:
    """Tool output as text: a string, or the text parts of a content list (others as [type])."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = []
        for item in value:
            if isinstance(item, dict):
                text = item.get("text")
                parts.append(text if isinstance(text, str) else f"[{item.get('type', 'content')}]")
            else:
                parts.append(str(item))
        return "\n".join(parts)
    return fields.text(value)


def _command(function: str, arguments: dict[str, Any] | None) -> str | None:
    if arguments is None:
        return None
    found = command_from(arguments)
    if found is None and function.rsplit("/", 1)[-1].startswith("bash_session"):
        value = arguments.get("input")
        if isinstance(value, str) and value.strip():
            return value
    return found


def _exit_code(value: Any) -> int | None:
    """A sandbox exec ``result`` as an exit code (it may also be a string such as a timeout)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if -(2**63) <= value < 2**63 else None


def _raw(event: dict[str, Any]) -> str:
    try:
        return json.dumps(event, ensure_ascii=False)[:4096]
    except (TypeError, ValueError, RecursionError):
        return str(event)[:4096]


# --- claiming tool spans fast ---------------------------------------------------------------------


class _Claims:
    """``_claim_span`` for one sample's tool events in order, without scanning every span: the
    unclaimed tool spans are kept per (name, parent) in index order, and the nearest one before
    or after the event is found by bisection (distances differ, so the choice is the same)."""

    def __init__(self, tool_spans: dict[str, tuple[int, Any, Any]]) -> None:
        self.buckets: dict[tuple[Any, Any], list[tuple[int, str]]] = defaultdict(list)
        self.hashable = True
        for span_id, (index, span_name, parent) in tool_spans.items():
            try:
                self.buckets[(span_name, parent)].append((index, span_id))
            except TypeError:
                self.hashable = False
        for spans in self.buckets.values():
            spans.sort()
        self.tool_spans = tool_spans
        self.claimed: set[str] = set()

    def __call__(self, index: int, event: dict[str, Any]) -> str | None:
        function = event.get("function")
        parent = _span_of(event)
        if not self.hashable:
            return _claim_span([], index, event, self.tool_spans, self.claimed)
        keys = [(function, parent), (function, None)] if parent is not None else [(function, None)]
        best: tuple[float, int, list[tuple[int, str]]] | None = None
        for key in keys:
            try:
                spans = self.buckets.get(key)
            except TypeError:  # an unhashable function matches no span name the slow way either
                return _claim_span([], index, event, self.tool_spans, self.claimed)
            if not spans:
                continue
            at = bisect.bisect_left(spans, (index, ""))
            for i, distance in (
                (at - 1, index - spans[at - 1][0] if at > 0 else None),
                (at, spans[at][0] - index + 0.5 if at < len(spans) else None),
            ):
                if distance is not None and (best is None or distance < best[0]):
                    best = (distance, i, spans)
        if best is None:
            return None
        _, i, spans = best
        _, span_id = spans.pop(i)
        self.claimed.add(span_id)
        return span_id
