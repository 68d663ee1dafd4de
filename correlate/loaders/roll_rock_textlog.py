"""ROLL / ROCK text logs: the lines where a ROLL environment names its ROCK sandbox's id and IP.

The lines ROLL's sandbox manager and ROCK environments write for each sandbox they start
(``[SANDBOX_INIT] ... Success``, ``[SANDBOX_START] Success!``, ``start sandbox cost``,
``[ENV_RESET] Success!``) each become one HOSTS row: ``host`` = sandbox_id, ``ip`` = the IP,
origin ``trajectory``, ``valid_from`` = the line's time. The IP is ROCK's ``host_ip``: the pod IP
on Kubernetes, but the Docker host's (shared by its sandboxes) on Ray/Docker. A repeated identity
and every other line are skipped. Markers count only at the start of a record's message, so
identity text echoed by an agent is not taken; an unreadable identity line is rejected.

Times: ROLL lines are the trainer's naive local time, read in ``--tz roll_rock_textlog=ZONE``
(UTC), noted; ROCK lines carry an offset (a naive one is read in that zone, else Asia/Shanghai,
ROCK's default, noted). ANSI colour codes are ignored. No ``--option`` keys. Line formats and
sources: ``tests/data/roll_rock_textlog/README.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, tzinfo
from zoneinfo import ZoneInfo

from ..schema import HOSTS
from ..sources import Source, decode_line
from ..timeparse import TimeParseError, parse_iso
from . import fields
from .base import FileLoad, LoadOptions, LoadResult
from .records import text_lines

name = "roll_rock_textlog"
kind = "hosts"
description = "ROLL/ROCK text logs: sandbox_id and IP from [SANDBOX_INIT]/[ENV_RESET] lines"

ROCK_DEFAULT_ZONE = "Asia/Shanghai"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
ROLL_LINE = re.compile(
    r"^\[(?P<ts>\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?)\] "
    r"\[[^\]]*\] \[(?P<level>[A-Z]+)\] (?:\[[^\]]*\])?(?:\[PID \d+\])? ?(?P<message>.*)$"
)
ROCK_LINE = re.compile(
    r"^(?P<ts>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?) "
    r"(?P<level>[A-Z]+):[^\s:]+:\d+ \[[^\]]*\] \[[^\]]*\] \[[^\]]*\] --(?: (?P<message>.*))?$"
)
IDENTITY_MARKERS = (
    "[SANDBOX_INIT] Final Success!",
    "[SANDBOX_INIT] Success on attempt",
    "[SANDBOX_START] Success!",
    "[ENV_RESET] Success!",
    "image_id:",
)
IDENTITY = (
    re.compile(
        r"^\[SANDBOX_INIT\] (?:Final Success!|Success on attempt \d+!) - Sandbox started "
        r"successfully with IP: (?P<ip>\S*), sandbox_id: (?P<id>\S*)\s*$"
    ),
    re.compile(
        r"^\[SANDBOX_START\] Success! - Sandbox environment initialized with IP: (?P<ip>\S*), "
        r"sandbox_id: (?P<id>\S*)\s*$"
    ),
    re.compile(
        r"^\[ENV_RESET\] Success! - TaskID: .*, sandbox_ip: (?P<ip>\S*), "
        r"sandbox_id: (?P<id>[^,\s]*)(?:, Reset time: \S+)?\s*$"
    ),
    re.compile(
        r"^image_id:.*, sandbox_id:(?P<id>[^,\s]*), sandbox ip: (?P<ip>[^,\s]*),\s+start sandbox cost:"
    ),
)
NO_IDENTITY = "no sandbox identity on this line"


@dataclass(frozen=True)
class LogLine:
    """A log record's time text, flavour (roll | rock) and message."""

    ts: str
    flavour: str
    message: str


def parse_line(text: str) -> LogLine | None:
    """Split a ROLL or ROCK log line into time, flavour and message; None if it is neither."""
    clean = ANSI.sub("", text)
    m = ROLL_LINE.match(clean)
    if m:
        return LogLine(m.group("ts"), "roll", m.group("message"))
    m = ROCK_LINE.match(clean)
    if m:
        return LogLine(m.group("ts"), "rock", m.group("message") or "")
    return None


def _is_identity(message: str) -> bool:
    if message.startswith("[ENV_RESET] Success!"):
        return "sandbox_ip:" in message
    if message.startswith("image_id:"):
        return "sandbox ip:" in message and "start sandbox cost" in message
    return message.startswith(IDENTITY_MARKERS)


def sniff(head: bytes, filename: str) -> float:
    """Score: most of the first lines carry the ROLL or ROCK log prefix; higher with identity lines."""
    text, _ = decode_line(head[:65536])
    lines = [line for line in text.lstrip("\ufeff").splitlines() if line.strip()]
    if not lines:
        return 0.0
    # The last line of a head may be cut; judge on whole lines only.
    sample = lines[:200] if len(lines) < 2 else lines[: min(200, len(lines) - 1)]
    parsed = [parse_line(line) for line in sample]
    prefixed = [p for p in parsed if p is not None]
    if not prefixed or len(prefixed) * 2 < len(sample):
        return 0.0
    if any(_is_identity(p.message) for p in prefixed):
        return 0.95
    return 0.7 if len(prefixed) >= min(3, len(sample)) else 0.0


def _zone(flavour: str, options: LoadOptions) -> tuple[tzinfo, str | None]:
    """The zone for naive times of this flavour, and the hint to add to the note (None if set)."""
    override = options.zones.get(name, options.zones.get("*"))
    if override is not None:
        return override, None
    if flavour == "roll":
        return UTC, "ROLL logs the trainer's local time; use --tz roll_rock_textlog=ZONE"
    return ZoneInfo(ROCK_DEFAULT_ZONE), "ROCK_TIME_ZONE default; use --tz roll_rock_textlog=ZONE"


def read(source: Source, options: LoadOptions) -> LoadResult:
    """Read a ROLL/ROCK text log into ``hosts`` rows (one per sandbox identity line)."""
    load = FileLoad(source, options, name, kind, HOSTS, unit="lines")
    owner: dict[str, str] = {}
    for line, raw in text_lines(source, load):
        record = parse_line(raw)
        message = record.message if record else ANSI.sub("", raw)
        if not _is_identity(message):
            load.skip(NO_IDENTITY)
            continue
        try:
            if record is None:
                raise fields.RowError(
                    "sandbox identity line without a ROLL/ROCK log prefix (no time)"
                )
            host, address, ts, ts_note = _identity(record, options)
        except fields.RowError as exc:
            load.reject(line, str(exc), raw)
            continue
        if owner.get(address) == host:
            load.skip("sandbox identity already loaded from an earlier line")
            continue
        owner[address] = host
        marker = message.split(" - ", 1)[0] if message.startswith("[") else "start_sandbox debug"
        row = {
            "host": host,
            "ip": address,
            "valid_from": ts,
            "valid_to": None,
            "origin": "trajectory",
            "note": "; ".join(filter(None, [f"{marker} line", ts_note])),
        }
        load.emit(row, line)
        if ts_note:
            load.note(ts_note)
    return load.result()


def _identity(record: LogLine, options: LoadOptions) -> tuple[str, str, int, str | None]:
    """(sandbox_id, IP, time ns, time note) of an identity line; RowError says what is wrong."""
    for pattern in IDENTITY:
        m = pattern.match(record.message)
        if m:
            break
    else:
        raise fields.RowError("sandbox identity line in an unknown shape (no IP/sandbox_id pair)")
    host = m.group("id").strip()
    if not host:
        raise fields.RowError("sandbox_id is empty")
    address = fields.ip(m.group("ip").rstrip(","), "sandbox IP")
    if address is None:
        raise fields.RowError("sandbox IP is missing")
    zone, hint = _zone(record.flavour, options)
    try:
        ts, note = parse_iso(record.ts.replace(",", "."), default_tz=zone)
    except TimeParseError as exc:
        raise fields.RowError(f"log time: {exc}") from None
    if note and hint:
        note = f"{note} ({hint})"
    return host, address, ts, note
