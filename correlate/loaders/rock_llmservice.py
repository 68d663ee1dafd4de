"""ROCK ModelService hand-off files from inside a sandbox: ``LLMService.log`` and ``LLMTraj.jsonl``.

In the ROME stack iFlow CLI runs the tools itself inside the ROCK sandbox and talks to the local
ModelService (OpenAI-compatible, ``localhost:8080/v1``); ROLL reads each request from, and writes
each policy response to, ``$ROCK_MODEL_SERVICE_DATA_DIR/LLMService.log`` (default ``/data/logs``).
No file records a tool's own start or end, but every tool call of response *N* ran after response
*N* was written and before iFlow sent request *N+1* (which carries the ``role: "tool"`` results).
So each tool call becomes one row with ``ts_kind = "bracket"``: ``ts_start`` = response *N*'s time,
``ts_end`` = request *N+1*'s time (null, with a note, when the session ended or the file stops
first). Both stamps come from the sandbox's clock, zone-free.

``LLMService.log`` lines (markers: alibaba/ROCK ``rock/sdk/model/server/config.py``; writers:
``rock/sdk/model/server/file_handler.py`` ``write_request`` L28-L40 and ``write_session_end``,
read in the zhongwen666/ROCK mirror because the alibaba/ROCK snapshot lacks the file, and
``rock/sdk/model/client.py`` ``_construct_response``, L124-L131 per ``trajectory_formats.md``
§1.4; the response stamp is taken by ``rock model-service anti-call-llm`` inside the sandbox)::

    LLM_REQUEST_START{request json}LLM_REQUEST_END{"timestamp": <epoch ms>, "index": N}
    LLM_RESPONSE_START{response json}LLM_RESPONSE_END{"timestamp": <epoch ms>, "index": N}
    SESSION_END

The body is split from the meta at the *last* end marker, so a marker inside agent-written text
cannot cut a record short. Requests are OpenAI chat requests (``model``, ``messages``, ``tools``);
responses are chat completions (``choices[].message.tool_calls[]`` with ``id``,
``function.name``, ``function.arguments`` as a JSON string), per ROLL's anti-call protocol.

``LLMTraj.jsonl`` (recording proxy, one JSON object per call): ``{"model", "stream", "status",
"response_time", "start_time", "end_time", "request", "response", "error"}`` with ``time.time()``
floats (``rock/sdk/model/server/traj.py`` ``TrajectoryRecorder.record``; ``api/proxy.py`` takes
``start`` before the upstream call and ``end_time`` after it), or litellm's
``StandardLoggingPayload`` (``startTime``/``endTime`` floats, ``messages``, ``response``;
``rock/sdk/model/server/integrations/traj_recorder.py``; field list checked against
https://docs.litellm.ai/docs/proxy/logging_spec). Tool calls of record *N* ran between its
``end_time`` and record *N+1*'s ``start_time``. The older shape ``{"request", "response"}``
(``rock/sdk/model/server/utils.py`` ``record_traj``; it also rewrote the file on every call unless
``ROCK_MODEL_SERVICE_TRAJ_APPEND_MODE``) has no times: its tool calls are rejected, saying so.

Mapping: ``call_id`` = ``tool_calls[].id``; ``tool`` = ``function.name``; ``arguments`` = the
arguments text; ``command`` = ``command``/``cmd``/``commands``/``script`` from the arguments (not
the ``view``/``create``/... sub-command of a file-editor tool); ``output`` = the matching
``role: "tool"`` message of the next request (first 2000 characters); ``step`` = the response's
meta ``index`` (for ``LLMTraj.jsonl``, the record's ordinal among readable records); ``model`` =
the response's, else the request's ``model``; ``exit_code``/``is_error`` stay null (iFlow
reports results only as text).

Sandbox (``host``): ``--option rock_llmservice.sandbox=ID``; else a ``sandbox_id`` named in a
record's meta or request (``sandbox_id``, ``metadata.sandbox_id``); else the name of the folder
holding the file, skipping generic folder names (``logs``, ``data``, ...). The file lives inside
the container, so copy each sandbox's ``/data/logs`` out as ``<root>/<sandbox_id>/LLMService.log``
(or ``<root>/<sandbox_id>/data/logs/LLMService.log``), named by the ROCK ``sandbox_id`` that ROLL
logs (``roll_rock_textlog``) and dumps (``roll_dump``). ``episode_id`` = ``<sandbox>#<session>``,
sessions counted by ``SESSION_END``. ``run_id`` = ``--option rock_llmservice.run=ID`` (else null).

A record is a request line, ``SESSION_END``, a response without tool calls, or one tool call of
a response (``stats.unit = "records"``).

Reading is column-wise: each request carries the whole conversation so far (the files grow with
the square of a session's turns), so pyarrow parses runs of records with explicit schemas of the
fields read, the conversations stay in Arrow (only the outputs the closed windows need are looked
up), tool calls are converted in columns (``call_columns``), and the bracket state machine sees one
small tuple per line. Every record pyarrow refuses or a check does not vouch for goes through the
per-line reader (``read(..., fast=False)`` reads every line so: the reference the column-wise
path is property-tested against in ``tests/test_fast_path_rock_llmservice.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..schema import TOOL_CALLS
from ..sources import Source, decode_line, iter_lines
from ..timeparse import TimeParseError, parse_epoch
from . import fields
from .base import BATCH_ROWS, Batcher, FileLoad, LoadOptions, LoadResult
from .blocks import json_pieces, line_runs, line_spans
from .calls import OUTPUT_CHARS, truncate
from .records import first_line, json_line_record

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


# --- the same helpers column-wise (shared with roll_dump) -----------------------------------------

PY_WHITESPACE = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())
"""What ``str.strip()`` strips (every ``isspace`` character is below U+3001)."""

TEXT = pa.string()
CALLS = pa.list_(
    pa.struct([("id", TEXT), ("function", pa.struct([("name", TEXT), ("arguments", TEXT)]))])
)
"""OpenAI ``tool_calls`` as ``convert_tool_call`` reads them; an ``id`` or a ``name`` that is not
text, or ``arguments`` given as an object, fails the parse (the per-line reader decides)."""
_ARGUMENTS = pa.schema(
    [("command", TEXT), ("cmd", TEXT), ("commands", pa.list_(TEXT)), ("script", TEXT)]
)
"""``COMMAND_KEYS`` as text (``commands``: a list of words); other types go to ``shell_command``."""


def py_strip(values: pa.Array) -> pa.Array:
    """``str.strip()`` of each value (nulls stay null).

    ASCII whitespace is trimmed byte-wise (fast); only values that then still start or end with
    a non-ASCII character are trimmed again, from the original, with every ``isspace`` character.
    """
    first, last = _end_bytes(values)
    if not (_SPACE_BYTE[first] | _SPACE_BYTE[last]).any():
        return values  # nothing to strip: no copy
    trimmed = pc.ascii_trim(values, characters=_ASCII_WHITESPACE)
    first, last = _end_bytes(trimmed)
    again = np.flatnonzero((first >= 0x80) | (last >= 0x80))
    if not len(again):
        return trimmed
    exact = pc.utf8_trim(values.take(again), characters=PY_WHITESPACE)
    chosen = np.zeros(len(values), dtype=bool)
    chosen[again] = True
    return pc.replace_with_mask(trimmed, pa.array(chosen), exact)


_ASCII_WHITESPACE = "".join(c for c in PY_WHITESPACE if c.isascii())
_SPACE_BYTE = np.zeros(256, dtype=bool)
_SPACE_BYTE[[ord(c) for c in _ASCII_WHITESPACE]] = True
_SPACE_BYTE[0x80:] = True  # a non-ASCII character may be whitespace


def _end_bytes(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The first and last byte of each string (0 for null or empty ones)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    values = values.cast(pa.large_string())
    _, offsets_buffer, data_buffer = values.buffers()
    n = len(values)
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[values.offset : values.offset + n + 1]
    data = np.zeros(1, dtype=np.uint8)
    if data_buffer is not None and data_buffer.size:
        data = np.frombuffer(data_buffer, dtype=np.uint8)
    starts, ends = offsets[:-1], offsets[1:]
    filled = (ends > starts) & np.asarray(values.is_valid())
    first = np.where(filled, data[np.where(filled, starts, 0)], 0)
    last = np.where(filled, data[np.where(filled, ends - 1, 0)], 0)
    return first, last


def text_of(values: pa.Array) -> pa.Array:
    """``fields.text`` of each string: stripped, null when blank or ``-``."""
    stripped = py_strip(values)
    length = pc.binary_length(stripped)
    blank = pc.or_(pc.equal(length, 0), pc.and_(pc.equal(length, 1), pc.equal(stripped, "-")))
    return nulled(stripped, mask(blank))


def nulled(values: pa.Array, drop: np.ndarray) -> pa.Array:
    """``values`` with the entries ``drop`` marks set to null (the strings are not copied)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not drop.any():
        return values
    if values.offset:
        return pc.if_else(pa.array(drop), pa.scalar(None, values.type), values)
    keep = np.asarray(values.is_valid()) & ~drop
    validity = pa.py_buffer(np.packbits(keep, bitorder="little"))
    return pa.Array.from_buffers(values.type, len(values), [validity, *values.buffers()[1:]])


def truncated(values: pa.Array) -> pa.Array:
    """``truncate`` of each text: over ``OUTPUT_CHARS`` characters, cut with the same marker."""
    if not mask(pc.greater(pc.binary_length(values), OUTPUT_CHARS)).any():
        return values  # no text is that long in bytes, so none is in characters
    length = pc.utf8_length(values)
    long = pc.fill_null(pc.greater(length, OUTPUT_CHARS), False)
    if not mask(long).any():
        return values
    marker = pc.binary_join_element_wise(
        pa.scalar("... ["),
        pc.cast(pc.subtract(length, OUTPUT_CHARS), TEXT),
        pa.scalar(" more characters]"),
        pa.scalar(""),
    )
    marker = pc.if_else(long, marker, pa.scalar(""))
    head = pc.utf8_slice_codeunits(values, 0, OUTPUT_CHARS)  # shorter texts stay whole
    return pc.binary_join_element_wise(head, marker, pa.scalar(""))


def mask(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean array (nulls false) as numpy."""
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)


def lines_blob(values: pa.Array, before: str | pa.Array = "", after: str | pa.Array = "") -> bytes:
    """Non-null strings as ``\\n``-separated lines, each between ``before`` and ``after`` (text,
    or an array of it per value): one copy, no Python per value."""
    large = pa.large_string()

    def part(value: str | pa.Array, end: str = "") -> Any:
        if isinstance(value, str):
            return pa.scalar(value + end, large)
        value = value.cast(large)
        return pc.binary_join_element_wise(value, pa.scalar(end, large), pa.scalar("", large))

    joined = pc.binary_join_element_wise(
        part(before), values.cast(large), part(after, "\n"), pa.scalar("", large)
    )
    offsets = np.frombuffer(joined.buffers()[1], dtype=np.int64)[joined.offset :]
    start, end = int(offsets[0]), int(offsets[len(joined)])
    return joined.buffers()[2].slice(start, max(end - start - 1, 0)).to_pybytes()


DEEP = 500
"""Python's json refuses nesting about 1,000 deep (less under a deep stack); a line nested deeper
than this is left to the per-line reader (``columnar.DEEP_BRACKETS``, measured exactly here)."""
LONG_INTEGER = 4300
"""Python's json refuses an integer of more digits (CPython's int conversion limit)."""


def beyond_python(blob: bytes, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Lines of ``blob`` Python's json may refuse while pyarrow reads them: nested deeper than
    ``DEEP`` (brackets in strings do not count) or holding ``LONG_INTEGER`` digits in a row.

    Lines whose bracket count stays under ``DEEP`` need no more; for the others the depth is
    found in numpy from the unescaped quotes and the brackets outside strings.
    """
    n = len(starts)
    out = np.zeros(n, dtype=bool)
    if not n or len(blob) <= DEEP:
        return out
    v = np.frombuffer(blob, dtype=np.uint8)
    if len(blob) >= LONG_INTEGER:
        digit = np.concatenate(([False], (v >= 0x30) & (v <= 0x39), [False]))
        edges = np.flatnonzero(digit[1:] != digit[:-1])
        run_start, run_end = edges[0::2], edges[1::2]
        long_runs = run_start[run_end - run_start >= LONG_INTEGER]
        out[np.searchsorted(starts, long_runs, side="right") - 1] = True
    opening = (v == 0x7B) | (v == 0x5B)
    counted = np.concatenate(([0], np.cumsum(opening)))
    many = (counted[ends] - counted[starts]) > DEEP
    if not many.any():
        return out
    quotes = np.flatnonzero(v == 0x22)
    escaped = quotes[(quotes > 0) & (v[np.maximum(quotes - 1, 0)] == 0x5C)]
    if len(escaped):
        plain = np.flatnonzero(v != 0x5C)
        last = plain[np.maximum(np.searchsorted(plain, escaped) - 1, 0)]
        last = np.where(last < escaped, last, -1)
        odd = (escaped - 1 - last) % 2 == 1  # an odd run of backslashes escapes the quote
        quotes = np.setdiff1d(quotes, escaped[odd], assume_unique=True)
    brackets = np.flatnonzero(opening | (v == 0x7D) | (v == 0x5D))
    line = np.searchsorted(starts, brackets, side="right") - 1
    before = np.searchsorted(quotes, brackets) - np.searchsorted(quotes, starts)[line]
    outside = before % 2 == 0
    brackets, line = brackets[outside], line[outside]
    if not len(brackets):
        return out
    depth = np.cumsum(np.where(opening[brackets], 1, -1))
    first = np.searchsorted(line, np.arange(n))
    has = first < np.searchsorted(line, np.arange(n), side="right")
    base = np.where(first > 0, depth[np.maximum(first - 1, 0)], 0)
    # each line's brackets are depth[first[i] : first[i + 1]]; a sentinel ends the last one
    peak = np.maximum.reduceat(np.append(depth, np.iinfo(np.int64).min), first)
    out |= has & many & (peak - base > DEEP)
    return out


def shell_commands(tools: pa.Array, arguments: pa.Array) -> pa.Array:
    """``shell_command(tool, arguments)`` of each call, for text ``arguments``.

    Arguments that are one JSON object on one line are parsed by pyarrow with ``_ARGUMENTS``;
    the others, those pyarrow refuses, and those whose command is an editor sub-command (whether
    a ``path`` key is there decides) go through ``shell_command``.
    """
    n = len(arguments)
    out: list[Any] = [None] * n
    editor = mask(pc.is_in(tools, value_set=pa.array(sorted(EDITOR_TOOLS), TEXT)))
    candidate = mask(pc.match_substring_regex(arguments, r"^\{[^\n\r]*\}$")) & ~editor
    # an editor tool never has shell text, whatever its arguments hold
    python = mask(pc.is_valid(arguments)) & ~candidate & ~editor
    rows = np.flatnonzero(candidate)
    if len(rows):
        blob = lines_blob(arguments.take(rows))
        python[rows[beyond_python(blob, *line_spans(blob))]] = True
        for at, _, m, table in json_pieces(blob, 0, len(rows), _ARGUMENTS):
            chunk = rows[at : at + m]
            if table is None:
                python[chunk] = True
                continue
            found, ask = _command_columns(table)
            python[chunk[ask]] = True
            for i, value in zip(chunk.tolist(), found.to_pylist(), strict=True):
                out[i] = value
    if python.any():
        tool_list, argument_list = tools.to_pylist(), arguments.to_pylist()
        for i in np.flatnonzero(python).tolist():
            out[i] = shell_command(tool_list[i], argument_list[i])
    return pa.array(out, TEXT)


def _command_columns(table: pa.Table) -> tuple[pa.Array, np.ndarray]:
    """The command ``shell_command`` picks from parsed arguments, and the rows it must decide."""
    n = table.num_rows
    chosen = pa.nulls(n, TEXT)
    decided = np.zeros(n, dtype=bool)
    ask = np.zeros(n, dtype=bool)
    for key in COMMAND_KEYS:
        column = table.column(key).combine_chunks()
        if key == "commands":
            # a non-empty list of strings only (a null item makes the join null)
            value = pc.binary_join(column, "; ")
            hit = mask(pc.and_(pc.greater(pc.list_value_length(column), 0), pc.is_valid(value)))
            editor = np.zeros(n, dtype=bool)
        else:
            stripped = py_strip(column)
            hit = mask(pc.not_equal(stripped, ""))
            editor = mask(pc.is_in(stripped, value_set=pa.array(sorted(EDITOR_SUBCOMMANDS), TEXT)))
            value = column
        take = hit & ~decided
        ask |= take & editor
        chosen = pc.if_else(pa.array(take), value, chosen)
        decided |= hit
    return chosen, ask


def response_calls(responses: pa.StructArray) -> tuple[np.ndarray, pa.Array]:
    """``response_tool_calls`` of each chat completion: (its response per entry, the entries), in
    order. ``responses`` has ``choices``, ``message`` and ``tool_calls`` as in ``_RESPONSE``."""
    parts: list[tuple[np.ndarray, pa.Array]] = []
    children = dict(zip([f.name for f in responses.type], responses.flatten(), strict=True))
    choices = children["choices"]
    has_choices = mask(pc.is_valid(choices))
    # every choice's message (a null choice or message has no calls)
    flat = pc.list_flatten(choices)
    owner = np.asarray(pc.list_parent_indices(choices), dtype=np.int64)
    if len(flat):
        (message,) = flat.flatten()
        parts.append(_message_calls(message, owner))
    # no choices: the response's message, else the response itself
    message = children["message"]
    use_message = ~has_choices & mask(pc.is_valid(message))
    rows = np.flatnonzero(use_message)
    if len(rows):
        parts.append(_message_calls(message.take(rows), rows))
    rows = np.flatnonzero(~has_choices & ~use_message)
    if len(rows):
        parts.append(_calls_of(children["tool_calls"].take(rows), rows))
    if not parts:
        return np.zeros(0, dtype=np.int64), pa.array([], CALLS.value_type)
    owners = np.concatenate([p[0] for p in parts])
    entries = pa.concat_arrays([p[1] for p in parts])
    order = np.argsort(owners, kind="stable")  # each response takes one of the three ways
    return owners[order], entries.take(order)


def _message_calls(messages: pa.Array, owner: np.ndarray) -> tuple[np.ndarray, pa.Array]:
    (calls,) = messages.flatten()
    return _calls_of(calls, owner)


def _calls_of(calls: pa.Array, owner: np.ndarray) -> tuple[np.ndarray, pa.Array]:
    entries = pc.list_flatten(calls)
    parents = np.asarray(pc.list_parent_indices(calls), dtype=np.int64)
    return owner[parents], entries


def call_columns(entries: pa.Array) -> tuple[dict[str, pa.Array], np.ndarray]:
    """``convert_tool_call`` of each ``tool_calls`` entry as columns (``call_id``, ``tool``,
    ``arguments``, ``command``), and which entries it converts (the others it rejects)."""
    ident, function = entries.flatten()
    name_, arguments = function.flatten()
    tool = text_of(name_)
    ok = mask(pc.is_valid(tool))
    columns = {
        "call_id": text_of(ident),
        "tool": tool,
        "arguments": arguments,
        "command": shell_commands(tool, arguments),
    }
    return columns, ok


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


def read(source: Source, options: LoadOptions, *, fast: bool = True) -> LoadResult:
    """Read ``LLMService.log`` or ``LLMTraj.jsonl`` into bracketed ``tool_calls`` rows.

    With ``fast`` (the default) requests are parsed column-wise (see ``_Reader.service_run`` and
    ``_Reader.traj_run``); ``fast=False`` reads every line with the per-line reader, the
    reference the column-wise path is tested against.
    """
    load = FileLoad(source, options, name, kind, TOOL_CALLS, unit="records")
    reader = _Reader(load)
    if first_line(source.head()).startswith(b"{"):
        reader.read_traj(fast)
    else:
        reader.read_service(fast)
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


Outputs = dict[str, str | None] | int
"""A request's tool results: ``tool_results`` of its messages, or (column-wise) the request's
index in the run whose parsed messages hold them."""


@dataclass
class _Brackets:
    """Tool-call rows of the latest response, waiting for the next request to close their window.

    Emitted rows are counted at once (``FileLoad.count_loaded``: the early stop sees them) and
    kept in order by ``keep``, after the outputs a column-wise run still owes them are filled.
    """

    load: FileLoad
    pending: list[dict[str, Any]] = field(default_factory=list)
    pending_index: int | None = None
    ready: list[dict[str, Any]] = field(default_factory=list)
    wanted: list[tuple[dict[str, Any], int, str]] = field(default_factory=list)
    """(row, request, call id): outputs to look up in a parsed run's tool messages."""

    def open(self, rows: list[dict[str, Any]], index: int | None) -> None:
        """Hold a response's rows; an unclosed earlier response is flushed first."""
        self.flush("no request before the next response: end unknown")
        self.pending = rows
        self.pending_index = index

    def close(self, ts_ns: int, index: int | None, outputs: Outputs) -> None:
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
            call_id = row["call_id"]
            if call_id is not None:
                if isinstance(outputs, int):
                    self.wanted.append((row, outputs, call_id))
                elif call_id in outputs:
                    row["output"] = truncate(outputs[call_id])
            row["ts_note"] = "; ".join(notes) or None
        self._emit()

    def flush(self, note: str) -> None:
        """Emit the pending rows with an open end, saying why."""
        for row in self.pending:
            row["ts_note"] = "; ".join(filter(None, [row["ts_note"], note]))
        self._emit()

    def _emit(self) -> None:
        for row in self.pending:
            self.load.count_loaded(1)
            if row["ts_note"]:
                self.load.note(row["ts_note"])
            self.ready.append(row)
        self.pending = []
        self.pending_index = None
        if len(self.ready) >= BATCH_ROWS and not self.wanted:
            self.keep()

    def keep(self, parsed: _Parsed | None = None) -> None:
        """Fill the outputs ``parsed`` holds, then keep the emitted rows (in emission order)."""
        if self.wanted:
            assert parsed is not None, "outputs owed by a parsed run"
            parsed.fill(self.wanted)
            self.wanted = []
        if self.ready:
            rows = Batcher(TOOL_CALLS)  # (lone surrogates a request held become U+FFFD there)
            for row in self.ready:
                rows.add(row)
            self.load.keep_rows(rows.table())
            self.ready = []


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

    def read_service(self, fast: bool) -> None:
        source = self.load.source
        if fast:
            for first, blob, count in line_runs(source, b"LS", b"}D"):
                if count:
                    self.service_run(first, blob)
                else:
                    self.service_line(first, blob)
        else:
            for line, raw in iter_lines(source):
                self.service_line(line, raw)
        self.brackets.flush("file ends before a next request: end unknown")
        self.brackets.keep()

    def service_line(self, line: int, raw_bytes: bytes) -> None:
        """One line through the per-line reader."""
        load = self.load
        raw, note = decode_line(raw_bytes)
        if note:
            load.note(note)
        if line == 1:
            raw = raw.removeprefix("\ufeff")
        text = raw.strip()
        if not text:
            load.skip("blank line")
            return
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
        self, ts: int, index: int | None, named: str | None, model: str | None, outputs: Outputs
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

    def service_run(self, first: int, blob: bytes) -> None:
        """A run of lines that may be records, read column-wise.

        The heavy part of a request is its body (the whole conversation so far): pyarrow parses
        the run's request bodies and metas (``_REQUEST_BODY``, ``_META``), the tool messages stay
        in Arrow and only the outputs the closed windows need are looked up (``_Parsed.fill``).
        Responses are parsed the same way (``_RESPONSE``) and their tool calls converted in
        columns (``call_columns``). What the state machine needs of each record then comes to
        Python per line; a record pyarrow refuses (a list ``content``, a time as text, bad JSON)
        or a check does not vouch for (a call that would be rejected, an unreadable timestamp)
        goes through ``service_line``, as do ``SESSION_END`` and any other line.
        """
        lines = [raw.rstrip(b"\r") for raw in blob.split(b"\n")]
        kinds: dict[int, tuple[bool, int]] = {}
        parts: dict[bool, tuple[list[bytes], list[bytes]]] = {True: ([], []), False: ([], [])}
        for i, raw in enumerate(lines):
            for is_request, (start, end) in _MARKERS.items():
                if raw.startswith(start):
                    cut = raw.rfind(end)
                    if cut >= len(start):
                        bodies, metas = parts[is_request]
                        kinds[i] = (is_request, len(bodies))
                        bodies.append(raw[len(start) : cut])
                        metas.append(raw[cut + len(end) :])
                    break
        parsed = _Parsed.service(*parts[True], self.options)
        responses = _responses(*parts[False], self.options)
        for i, raw in enumerate(lines):
            is_request, k = kinds.get(i, (False, -1))
            if k < 0:
                self.service_line(first + i, raw)
            elif is_request:
                request = parsed.found[k]
                if request is None:
                    self.service_line(first + i, raw)
                else:
                    ts, index, named, model = request
                    self._request(ts, index, named, model, k)
            else:
                response = responses[k]
                if response is None:
                    self.service_line(first + i, raw)
                else:
                    self._response_parsed(first + i, *response)
        self.brackets.keep(parsed)

    def _response_parsed(
        self,
        line: int,
        calls: list[dict[str, Any]],
        ts: int,
        index: int | None,
        note: str | None,
        named: str | None,
        model: str | None,
    ) -> None:
        """``_response`` for a response parsed column-wise whose calls all convert."""
        if not calls:
            self.load.skip(SKIP_NO_TOOLS)
            return
        self.ctx.named_host = named or self.ctx.named_host
        model = model or self.last_model
        self.brackets.open([self._row(c, index, ts, note, model, line) for c in calls], index)

    # --- LLMTraj.jsonl --------------------------------------------------------------------------

    def read_traj(self, fast: bool) -> None:
        source = self.load.source
        if fast:
            for first, blob, count in line_runs(source, b"{", b"}"):
                if count:
                    self.traj_run(first, blob, count)
                else:
                    self.traj_line(first, blob)
        else:
            for line, raw in iter_lines(source):
                self.traj_line(line, raw)
        self.brackets.flush("file ends before a next call: end unknown")
        self.brackets.keep()

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

    def traj_run(self, first: int, blob: bytes, count: int) -> None:
        """A run of JSON lines parsed column-wise with ``_TRAJ``.

        pyarrow parses every field the per-line reader uses; the conversation (``messages``) stays
        in Arrow and only the outputs the open windows need are looked up, the response's tool
        calls are converted in columns, and the other fields come to Python per record for the
        state machine. A record a check cannot vouch for (a time pyarrow read as a double that
        may have lost digits or that ``parse_epoch`` refuses, a call that would be rejected, a
        null ``request.messages`` beside a top-level ``messages``) is read by ``traj_line``
        instead, before any state moved.
        """
        parsed = _Parsed()
        for at, piece, _, table in json_pieces(blob, first, count, _TRAJ):
            lines = piece.split(b"\n")
            if table is None:
                for offset, raw in enumerate(lines):
                    self.traj_line(at + offset, raw.rstrip(b"\r"))
                continue
            k0 = parsed.add_traj(table)
            refused = beyond_python(piece, *line_spans(piece))
            for offset, record in enumerate(_traj_records(table)):
                if refused[offset] or not self._traj_fast(at + offset, record, k0 + offset):
                    self.traj_line(at + offset, lines[offset].rstrip(b"\r"))
        self.brackets.keep(parsed)

    def _traj_fast(self, line: int, record: dict[str, Any], k: int) -> bool:
        """``traj_record`` for a record parsed column-wise; False (nothing done) when the per-line
        reader must read it."""
        if record["ambiguous"]:
            return False
        for key in ("start_time", "startTime", "end_time", "endTime"):
            value = record[key]
            if value is not None and not abs(value) < _EXACT_FLOAT:
                return False  # an integer beyond 2**53 would have lost digits as a double
        try:
            start = _traj_time(record, ("start_time", "startTime"), self.options)
            end = _traj_time(record, ("end_time", "endTime"), self.options)
        except fields.RowError:
            return False
        calls = record["calls"]
        if calls is None or (calls and end is None):
            return False
        self.ordinal += 1
        if start is not None:
            self.brackets.close(start, None, k)
        self.ctx.named_host = record["named"] or self.ctx.named_host
        if not record["response"]:
            status = fields.text(record["status"]) or "no status"
            self.load.skip(f"call without a response ({status})")
            return True
        if not calls:
            self.load.skip(SKIP_NO_TOOLS)
            return True
        assert end is not None
        model = record["model"]
        rows = [self._row(call, self.ordinal, end, None, model, line) for call in calls]
        self.brackets.open(rows, None)
        return True

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


# --- the column-wise path -------------------------------------------------------------------------

_MARKERS = {
    True: (REQUEST_START.encode(), REQUEST_END.encode()),
    False: (RESPONSE_START.encode(), RESPONSE_END.encode()),
}
_EXACT_FLOAT = 2.0**53
"""Integers below this survive pyarrow's float64 column unchanged (``parse_epoch`` gives the same)."""

_MESSAGES = pa.list_(pa.struct([("role", TEXT), ("tool_call_id", TEXT), ("content", TEXT)]))
"""A chat conversation as far as tool results go (``tool_results``): a ``content`` of parts, or
any other type, fails the parse and sends its line to the per-line reader."""
_SANDBOX = [("sandbox_id", TEXT), ("metadata", pa.struct([("sandbox_id", TEXT)]))]
_MESSAGE = pa.struct([("tool_calls", CALLS)])
_RESPONSE = [
    ("model", TEXT),
    ("choices", pa.list_(pa.struct([("message", _MESSAGE)]))),
    ("message", _MESSAGE),
    ("tool_calls", CALLS),
]
"""What ``response_tool_calls`` and the model read of a chat completion."""
_REQUEST_BODY = pa.schema([("model", TEXT), *_SANDBOX, ("messages", _MESSAGES)])
_RESPONSE_BODY = pa.schema(_RESPONSE)
_META = pa.schema([("timestamp", pa.int64()), ("index", pa.int64()), *_SANDBOX])
"""A record's meta as ROCK writes it (epoch ms and index as integers)."""
_TRAJ = pa.schema(
    [
        *[(key, pa.float64()) for key in ("start_time", "startTime", "end_time", "endTime")],
        ("status", TEXT),
        ("model", TEXT),
        *_SANDBOX,
        ("messages", _MESSAGES),
        ("request", pa.struct([("model", TEXT), *_SANDBOX, ("messages", _MESSAGES)])),
        ("response", pa.struct(_RESPONSE)),
    ]
)
"""Every field of an ``LLMTraj.jsonl`` record the per-line reader reads, typed as the recorders
write them; any other type (a time as text, arguments as an object) fails the parse."""


def _parse(lines: list[bytes], schema: pa.Schema) -> tuple[list[tuple[int, pa.Table]], list[int]]:
    """``lines`` parsed with ``schema``: (first line, table) of each piece pyarrow read, and the
    lines Python's json may refuse (``beyond_python``: the per-line reader decides them)."""
    if not lines:
        return [], []
    blob = b"\n".join(lines)
    pieces = json_pieces(blob, 0, len(lines), schema)
    parsed = [(at, table) for at, _, _, table in pieces if table is not None]
    return parsed, np.flatnonzero(beyond_python(blob, *line_spans(blob))).tolist()


def _converted_calls(
    responses: pa.StructArray,
) -> list[list[dict[str, Any]] | None]:
    """Each response's tool calls converted (``convert_tool_call``), or None when one of them
    would be rejected."""
    owners, entries = response_calls(responses)
    out: list[list[dict[str, Any]] | None] = [[] for _ in range(len(responses))]
    if not len(entries):
        return out
    columns, ok = call_columns(entries)
    values = {key: column.to_pylist() for key, column in columns.items()}
    keys = list(values)
    for owner, good, *row in zip(owners.tolist(), ok.tolist(), *values.values(), strict=True):
        calls = out[owner]
        if calls is None:
            continue
        if not good:
            out[owner] = None
            continue
        calls.append(dict(zip(keys, row, strict=True)))
    return out


def _responses(
    bodies: list[bytes], metas: list[bytes], options: LoadOptions
) -> list[tuple[Any, ...] | None]:
    """``LLMService.log`` responses: (calls, time, index, note, named sandbox, model) of each one
    the column-wise path vouches for, else None."""
    n = len(bodies)
    out: list[tuple[Any, ...] | None] = [None] * n
    meta: list[dict[str, Any] | None] = [None] * n
    pieces, refused = _parse(metas, _META)
    for at, table in pieces:
        meta[at : at + table.num_rows] = table.to_pylist()
    for k in refused:
        meta[k] = None
    pieces, refused = _parse(bodies, _RESPONSE_BODY)
    for at, table in pieces:
        responses = pa.StructArray.from_arrays(
            [table.column(f).combine_chunks() for f in table.column_names], table.column_names
        )
        models = text_of(table.column("model").combine_chunks()).to_pylist()
        for offset, calls in enumerate(_converted_calls(responses)):
            k = at + offset
            if calls is None:
                continue
            if not calls:
                out[k] = ([], 0, None, None, None, None)
                continue
            stamp = meta[k]
            if stamp is None or stamp["timestamp"] is None:
                continue
            try:
                ts, note = parse_epoch(stamp["timestamp"], unit=options.epoch_unit, expected="ms")
            except TimeParseError:
                continue
            out[k] = (calls, ts, stamp["index"], note, _named_sandbox(stamp), models[offset])
    for k in refused:
        out[k] = None
    return out


def _traj_records(table: pa.Table) -> list[dict[str, Any]]:
    """The records of a parsed ``LLMTraj.jsonl`` piece, without their conversations, as the
    state machine needs them: times, status, the sandbox named, the model, whether there is a
    response, its converted calls (None when one would be rejected), and ``ambiguous`` when a
    null ``request.messages`` hides a top-level list (the per-line reader tells them apart)."""
    column = {name_: table.column(name_).combine_chunks() for name_ in table.column_names}
    request, response = column["request"], column["response"]
    req = dict(zip([f.name for f in request.type], request.flatten(), strict=True))
    resp = dict(zip([f.name for f in response.type], response.flatten(), strict=True))
    ambiguous = mask(
        pc.and_(
            pc.and_(request.is_valid(), pc.is_null(req["messages"])),
            pc.is_valid(column["messages"]),
        )
    )
    model = pc.coalesce(text_of(resp["model"]), text_of(req["model"]), text_of(column["model"]))
    named = _named_column(
        column["sandbox_id"], column["metadata"], req["sandbox_id"], req["metadata"]
    )
    values = {
        key: column[key].to_pylist()
        for key in ("start_time", "startTime", "end_time", "endTime", "status")
    }
    values["ambiguous"] = ambiguous.tolist()
    values["model"] = model.to_pylist()
    values["named"] = named
    values["response"] = response.is_valid().to_pylist()
    values["calls"] = _converted_calls(response)
    keys = list(values)
    return [dict(zip(keys, row, strict=True)) for row in zip(*values.values(), strict=True)]


def _named_column(*pairs: pa.Array) -> list[str | None]:
    """``_named_sandbox`` of records given as (sandbox_id, metadata) column pairs, in order."""
    found = pa.nulls(len(pairs[0]), TEXT)
    for at in range(0, len(pairs), 2):
        sandbox, metadata = pairs[at], pairs[at + 1]
        (inner,) = metadata.flatten()
        found = pc.coalesce(found, text_of(sandbox), text_of(inner))
    return found.to_pylist()


class _Parsed:
    """The requests of one column-wise run: what the state machine needs of each, and their
    conversations in Arrow, where ``fill`` looks up the outputs the closed windows need."""

    def __init__(self) -> None:
        self.found: list[tuple[int, int | None, str | None, str | None] | None] = []
        """``LLMService.log``: per request, (time, index, named sandbox, model) or None."""
        self.chunks: list[tuple[int, pa.Array]] = []
        """(first request, the ``messages`` list array of it and the requests after it)."""
        self.count = 0

    @classmethod
    def service(cls, bodies: list[bytes], metas: list[bytes], options: LoadOptions) -> _Parsed:
        """``LLMService.log`` requests split into body and meta; a request is vouched when both
        parse and its timestamp reads as ``_meta`` would read it."""
        parsed = cls()
        n = parsed.count = len(bodies)
        parsed.found = [None] * n
        meta: list[dict[str, Any] | None] = [None] * n
        pieces, refused = _parse(metas, _META)
        for at, table in pieces:
            meta[at : at + table.num_rows] = table.to_pylist()
        for k in refused:
            meta[k] = None
        body: list[tuple[str | None, str | None] | None] = [None] * n
        pieces, refused = _parse(bodies, _REQUEST_BODY)
        for at, table in pieces:
            models = text_of(table.column("model").combine_chunks()).to_pylist()
            names = _named_column(
                table.column("sandbox_id").combine_chunks(),
                table.column("metadata").combine_chunks(),
            )
            body[at : at + table.num_rows] = list(zip(models, names, strict=True))
            parsed.chunks.append((at, table.column("messages").combine_chunks()))
        for k in refused:
            body[k] = None
        for k in range(n):
            stamp, request = meta[k], body[k]
            if stamp is None or request is None or stamp["timestamp"] is None:
                continue
            try:
                ts, _ = parse_epoch(stamp["timestamp"], unit=options.epoch_unit, expected="ms")
            except TimeParseError:
                continue
            model, named = request
            parsed.found[k] = (ts, stamp["index"], _named_sandbox(stamp) or named, model)
        return parsed

    def add_traj(self, table: pa.Table) -> int:
        """A parsed ``LLMTraj.jsonl`` piece; its first record's number in this run."""
        request = table.column("request").combine_chunks()
        inner = request.field("messages")
        outer = table.column("messages").combine_chunks()
        # the per-line reader reads request.messages when there is a request object, else the
        # top-level list (a null request.messages beside a top-level list goes line by line)
        messages = pc.if_else(request.is_valid(), inner, outer)
        first = self.count
        self.chunks.append((first, messages))
        self.count += table.num_rows
        return first

    def fill(self, wanted: list[tuple[dict[str, Any], int, str]]) -> None:
        """Each row's ``output``: the first ``role: "tool"`` message of its closing request whose
        ``tool_call_id`` (stripped) is the row's call id, as ``tool_results`` picks it."""
        ids = sorted({call_id for _, _, call_id in wanted})
        value_set = pa.array(ids, TEXT)
        width = len(ids)
        keys: list[np.ndarray] = []
        contents: list[pa.Array] = []
        for first, messages in self.chunks:
            flat = pc.list_flatten(messages)
            if not len(flat):
                continue
            parents = np.asarray(pc.list_parent_indices(messages)) + first
            role, call_id, content = flat.flatten()  # the struct's nulls merged into each child
            at = np.flatnonzero(mask(pc.and_(pc.equal(role, "tool"), pc.is_valid(call_id))))
            if not len(at):
                continue
            code = pc.index_in(py_strip(call_id.take(at)), value_set=value_set)
            hit = np.flatnonzero(np.asarray(code.is_valid()))
            if not len(hit):
                continue
            codes = np.asarray(code.take(hit), dtype=np.int64)
            keys.append(parents[at[hit]].astype(np.int64) * width + codes)
            contents.append(content.take(at[hit]))
        if not keys:
            return
        index = {call_id: i for i, call_id in enumerate(ids)}
        asked = np.array([k * width + index[call_id] for _, k, call_id in wanted], dtype=np.int64)
        position = pc.index_in(pa.array(asked), value_set=pa.array(np.concatenate(keys)))
        found = pa.chunked_array(contents, TEXT).take(pc.fill_null(position, 0))
        for (row, _, _), matched, text in zip(
            wanted, position.is_valid().to_pylist(), found.to_pylist(), strict=True
        ):
            if matched:
                row["output"] = truncate(fields.text(text))
