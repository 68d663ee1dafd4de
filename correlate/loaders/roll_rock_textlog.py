"""ROLL / ROCK text logs: the lines where a ROLL environment names its ROCK sandbox's id and IP.

ROLL's sandbox manager and ROCK environments log each sandbox they start (f-strings verbatim):

* ``[SANDBOX_INIT] Final Success! - Sandbox started successfully with IP: {ip}, sandbox_id: {id}``
  and ``[SANDBOX_INIT] Success on attempt {n}! - ...`` (same tail) —
  ``roll/pipeline/agentic/env/rock/sandbox_manager_v2.py`` ``_initialize_sandbox_with_times``
  (``trajectory_formats.md`` §1.2: L199);
* ``[SANDBOX_START] Success! - Sandbox environment initialized with IP: {ip}, sandbox_id: {id}``
  (same file, ``_initialize_sandbox``);
* ``image_id:{image}, sandbox_id:{id}, sandbox ip: {ip},  start sandbox cost:{s}`` (same file,
  ``start_sandbox``, debug level);
* ``[ENV_RESET] Success! - TaskID: ..., TaskName: ..., image: ..., sandbox_ip: {ip},
  sandbox_id: {id}[, Reset time: {s}s]`` — ``roll/pipeline/agentic/env/sandbox/rock_tb_native_env.py``
  ``reset`` (§1.2: L457) and the iFlow sandbox env.

Each such line becomes one HOSTS row (``host`` = sandbox_id, ``ip`` = the IP, origin
``trajectory``, ``valid_from`` = the line's time); a line repeating the identity an address
already has in this file is skipped. The IP is ROCK's ``host_ip``: the pod IP on Kubernetes, but
the Docker host's IP on Ray/Docker deployments — shared by every sandbox on that host
(``rock/sandbox/sandbox_actor.py``; §1.3). Every other line is skipped ("no sandbox identity on
this line"). Markers are matched only at the start of a log record's message, so identity text
inside an agent's echoed command or response is not taken; an identity line that cannot be read
(IP ``None``, no sandbox_id, bad time, no log prefix) is rejected.

Line formats:

* ROLL (``roll/utils/logging.py`` ``get_logger``): ``[%(asctime)s] [%(filename)s (%(lineno)d)]
  [%(levelname)s] [%(WORKER_NAME)s %(RANK)s / %(WORLD_SIZE)s][PID {pid}] %(message)s`` with
  ``datefmt="%Y-%m-%d %H:%M:%S"``: naive local time of the trainer, read in
  ``--tz roll_rock_textlog=ZONE`` (default UTC, noted). Files ``$ROLL_LOG_DIR/log_rank_<WORKER>_<RANK>_<WS>.log``.
* ROCK (``rock/logger.py`` ``StandardFormatter``/``TimezoneFormatter``): ``{iso8601 ms with offset}
  {LEVEL}:{file}:{line} [{logger}] [{sandbox_id}] [{trace_id}] -- {message}``, time in
  ``ROCK_TIME_ZONE`` (default ``Asia/Shanghai``, ``rock/env_vars.py``) with its offset; a naive
  one is read in ``--tz roll_rock_textlog=ZONE``, else Asia/Shanghai, noted. ANSI colour codes of
  console captures are ignored.
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
