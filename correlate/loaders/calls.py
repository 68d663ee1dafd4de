"""What the tool-call loaders do the same way: cut outputs, find a call's shell text, read ISO
times, take the machine from options, and turn first sightings into identity rows."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

import pyarrow as pa

from ..errors import OptionError
from ..schema import HOSTS, from_columns
from ..sources import Source
from ..timeparse import TimeParseError, parse_iso
from . import fields
from .base import FileLoad, LoadOptions, LoadResult

OUTPUT_CHARS = 2000
"""Tool output is kept to this many characters; the rest is counted in a marker."""

_SHELLS = {"bash", "sh", "zsh", "dash", "ksh", "fish"}
_COMMAND_KEYS = ("command", "cmd", "commands", "script", "shell", "code")


def truncate(text: str | None) -> str | None:
    """``text`` cut to ``OUTPUT_CHARS`` with a marker saying how much was left out ("" -> None)."""
    if text and len(text) > OUTPUT_CHARS:
        return text[:OUTPUT_CHARS] + f"... [{len(text) - OUTPUT_CHARS} more characters]"
    return text or None


def shell_text(value: Any) -> str | None:
    """Shell text from a string or an argv list; ``["bash", "-lc", "X"]`` is just ``X``."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, list) and value and all(isinstance(x, str) for x in value):
        shell = value[0].rsplit("/", 1)[-1]
        if len(value) == 3 and shell in _SHELLS and value[1] in ("-c", "-lc", "-ic"):
            return value[2].strip() or None
        return " ".join(value).strip() or None
    return None


def command_from(arguments: Any) -> str | None:
    """The shell text in a tool call's arguments (an object or its JSON text), if any."""
    value = arguments
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return None
    if not isinstance(value, dict):
        return None
    for key in _COMMAND_KEYS:
        found = value.get(key)
        if key == "commands" and isinstance(found, list) and all(isinstance(x, str) for x in found):
            return "; ".join(found) or None
        text = shell_text(found)
        if text:
            return text
    return None


def truncate_output(value: Any) -> str | None:
    """A tool's output as text, cut to ``OUTPUT_CHARS`` with a marker saying how much was cut."""
    return truncate(fields.text(value))


def head_objects(head: bytes, limit: int = 40) -> list[dict[str, Any]]:
    """JSON objects on the first non-blank lines of a file's head, for sniffing (never raises)."""
    found: list[dict[str, Any]] = []
    seen = 0
    for raw in head.lstrip(b"\xef\xbb\xbf").split(b"\n"):
        if not raw.strip():
            continue
        seen += 1
        if seen > limit:
            break
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict):
            found.append(value)
    return found


def iso_time(value: Any, what: str, zone: tzinfo) -> tuple[int, str | None]:
    """An ISO 8601 time field to ns (naive times read in ``zone``, noted); RowError otherwise."""
    if fields.is_blank(value):
        raise fields.RowError(f"{what} is missing")
    if not isinstance(value, str):
        raise fields.RowError(f"{what} is not an ISO 8601 time: {value!r}")
    try:
        return parse_iso(value, default_tz=zone)
    except TimeParseError as exc:
        raise fields.RowError(f"{what}: {exc}") from None


def bracket_end(
    value: Any, zone: tzinfo, start: int, line: int, what: str, of: str
) -> tuple[int | None, str | None]:
    """The end of a call from the time its result line carries: (end, None), or (None, why not).

    ``what`` names the result line (``tool_result``), ``of`` the call it answers (``tool_use``).
    """
    try:
        end, _ = iso_time(value, "timestamp", zone)
    except fields.RowError:
        return None, f"{what} on line {line} has no valid timestamp: end unknown"
    if end < start:
        return None, f"{what} stamped before its {of}: end ignored"
    return end, None


def host_options(options: LoadOptions, format_name: str) -> tuple[str | None, str | None]:
    """``--option FORMAT.host=NAME`` and ``FORMAT.host_ip=IP``: the machine a transcript ran on."""
    host = fields.text(options.option(format_name, "host"))
    try:
        address = fields.ip(options.option(format_name, "host_ip"), "address")
    except fields.RowError as exc:
        raise OptionError(f"--option {format_name}.host_ip: {exc}") from None
    return host, address


@dataclass
class FirstSeen:
    """The earliest call naming each (host, address) pair: identity rows from a trajectory."""

    format_name: str
    note: str
    seen: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)

    def add(self, host: str | None, address: str | None, ts: int, line: int) -> None:
        if host and address:
            first = self.seen.get((host, address))
            if first is None or ts < first[0]:
                self.seen[(host, address)] = (ts, line)

    def table(self, source: Source) -> pa.Table:
        keys = sorted(self.seen, key=lambda k: (self.seen[k][0], k))
        n = len(keys)
        return from_columns(
            {
                "host": [k[0] for k in keys],
                "ip": [k[1] for k in keys],
                "valid_from": [self.seen[k][0] for k in keys],
                "valid_to": [None] * n,
                "origin": ["trajectory"] * n,
                "note": [self.note] * n,
                "source_format": [self.format_name] * n,
                "source_path": [source.display] * n,
                "source_line": [self.seen[k][1] for k in keys],
            },
            HOSTS,
        )


@dataclass
class PendingCall:
    """A tool call read from a transcript, waiting for (or matched with) its result."""

    line: int
    call_id: str
    tool: str
    ts_start: int
    notes: list[str]
    session: str | None
    model: str | None
    ts_end: int | None = None
    answered: bool = False
    output: str | None = None
    is_error: bool | None = None
    exit_code: int | None = None
    extra: list[str] = field(default_factory=list)


def emit_calls(
    load: FileLoad,
    rows: Iterable[tuple[int, dict[str, Any]]],
    host: str | None,
    host_ip: str | None,
) -> LoadResult:
    """Each finished ``tool_calls`` row, with the line it came from, emitted; the result carries
    the identity row the host options give (first seen at the earliest call)."""
    hosts = FirstSeen(load.name, f"given by --option {load.name}.host_ip")
    for line, row in rows:
        hosts.add(host, host_ip, row["ts_start"], line)
        load.emit(row, line)
    return load.result(hosts=hosts.table(load.source))
