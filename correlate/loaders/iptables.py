"""Linux netfilter LOG lines (iptables ``-j LOG``, nftables ``log prefix``) in syslog, journald or
Proxmox ``pve-firewall.log``.

Envelopes, line by line: RFC 3164 syslog (no year: inferred from ``--reference-date`` or the
file's mtime and rolled over in file order, noted), ISO/RFC 5424 syslog, ``journalctl -o json``,
``dmesg -T`` and Proxmox. Zone-less times are read in ``--tz iptables=ZONE`` (UTC), noted.
Mapping: ``SRC``/``DST``/``SPT``/``DPT``/``PROTO``; one row per packet, ``LEN`` -> ``bytes_in`` for
inbound packets, else ``bytes_out``; ``rule`` = ``action_raw`` = the log prefix (Proxmox: the
chain); ``host_hint`` = the syslog host plus the ``IN= OUT= PHYSIN= PHYSOUT= UID=`` values.

Ambiguity defaults (see ``OPTIONS``): direction from the hook (``IN=`` empty -> outbound, ``OUT=``
empty -> inbound, ``lo`` -> internal); a forwarded packet is unknown unless ``inside_interfaces``
names the sandbox side. LOG is non-terminating, so the verdict comes from the prefix: the Vyatta
``[<set>-<rule>-<A|D|R>]`` convention, then DROP/REJECT/DENY/BLOCK -> denied,
ACCEPT/ALLOW/PASS -> allowed, else unknown (``prefix_map`` replaces both). Non-netfilter lines and
non-IP packets are skipped. Field reference and sources: ``tests/data/iptables/README.md``.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass
from typing import Any

from ..errors import OptionError
from ..schema import NETWORK_EVENTS
from ..sources import Source
from ..timeparse import TimeParseError, parse_epoch, parse_iso
from . import fields
from .base import LoadOptions, LoadResult
from .syslog import (
    DMESG_T,
    MONTHS,
    TAG,
    UPTIME,
    Skip,
    SyslogClock,
    join_notes,
    read_lines,
    split_syslog,
)

name = "iptables"
kind = "network"
description = (
    "Linux iptables/nftables LOG lines (syslog, journald JSON, dmesg -T, pve-firewall.log)"
)

OPTIONS = {
    "prefix_map": "SUBSTRING=action,... replacing the default log-prefix verdict map",
    "inside_interfaces": "globs of sandbox-side interfaces for forwarded packets (default none)",
}
"""``--option iptables.KEY=VALUE`` settings (see the module docstring)."""

ACTIONS = ("allowed", "denied", "alerted", "unknown")
DEFAULT_PREFIX_MAP = (
    ("DROP", "denied"),
    ("REJECT", "denied"),
    ("DENY", "denied"),
    ("BLOCK", "denied"),
    ("ACCEPT", "allowed"),
    ("ALLOW", "allowed"),
    ("PASS", "allowed"),
)
NOT_NETFILTER = "not a netfilter LOG line"
_RULE_TAG = re.compile(r"\[[^\[\]\s]+-(?:\d+|default)-(?P<letter>[A-Z])\]")
"""EdgeOS/USG/VyOS rule tags ``[WAN_LOCAL-default-D]``, ``[LAN_IN-2000-A]``: rule set (no
spaces), rule number or ``default``, the action's first letter."""
_RULE_LETTERS = {"A": "allowed", "D": "denied", "R": "denied"}

# --- netfilter fields ------------------------------------------------------------------------------

_KERNEL_FIELDS = re.compile(r"IN=(?P<in>\S*) OUT=(?P<out>\S*)(?=\s|$)")
_PVE_FIELDS = re.compile(r"(?:^|(?<=\s))(?:IN|OUT|PHYSIN|PHYSOUT|MAC|SRC)=")
_DAMAGED = re.compile(r"(?:^|\s)SRC=\S+ DST=\S+")
_PVE_LINE = re.compile(
    r"^(?P<vmid>\d+) (?P<level>\d) (?P<chain>\S+) "
    r"(?P<day>\d{2})/(?P<mon>[A-Za-z]{3})/(?P<year>\d{4}):(?P<clock>\d{2}:\d{2}:\d{2}) "
    r"(?P<offset>[+-]\d{4}) (?P<msg>.*)$"
)
_HINT_KEYS = ("IN", "OUT", "PHYSIN", "PHYSOUT", "UID")


@dataclass(frozen=True)
class Settings:
    """The per-format options, parsed once per file."""

    prefix_map: tuple[tuple[str, str], ...]
    inside: tuple[str, ...]

    @classmethod
    def from_options(cls, options: LoadOptions) -> Settings:
        inside = options.option(name, "inside_interfaces") or ""
        return cls(
            prefix_map=parse_action_map(options.option(name, "prefix_map"), "prefix_map"),
            inside=tuple(g.strip() for g in inside.split(",") if g.strip()),
        )


def parse_action_map(text: str | None, key: str, fmt: str = name) -> tuple[tuple[str, str], ...]:
    """``"DROP=denied,OK=allowed"`` as ((upper-case text, action), ...); the default when None."""
    if text is None:
        return DEFAULT_PREFIX_MAP
    pairs = []
    for item in text.split(","):
        if not item.strip():
            continue
        needle, eq, action = item.rpartition("=")
        needle, action = needle.strip(), action.strip().lower()
        if not eq or not needle or action not in ACTIONS:
            raise OptionError(
                f"--option {fmt}.{key}: expected TEXT=ACTION pairs separated by commas with "
                f"ACTION one of {', '.join(ACTIONS)}, got {item.strip()!r}"
            )
        pairs.append((needle.upper(), action))
    if not pairs:
        raise OptionError(f"--option {fmt}.{key}: empty map")
    return tuple(pairs)


def prefix_action(prefix: str | None, prefix_map: tuple[tuple[str, str], ...]) -> str:
    """The verdict a log prefix stands for: with the default map, an EdgeOS/VyOS rule tag's action
    letter (the last tag); else the first map entry it contains; else unknown."""
    if not prefix:
        return "unknown"
    if prefix_map == DEFAULT_PREFIX_MAP:
        tags = _RULE_TAG.findall(prefix)
        if tags:
            return _RULE_LETTERS.get(tags[-1], "unknown")
    upper = prefix.upper()
    for needle, action in prefix_map:
        if needle in upper:
            return action
    return "unknown"


def _clean_prefix(before: str, tagged: bool) -> str | None:
    """The operator's ``--log-prefix`` text: what precedes ``IN=`` minus tag and uptime stamp."""
    text = before.strip()
    if tagged:
        m = TAG.match(text)
        # "kernel:" is always the tag; any other first word is a tag only if more text follows
        # (ulogd's LOGEMU writes "host PREFIX IN=..." with no tag at all).
        if m and (m["tag"] == "kernel" or text[m.end() :].strip()):
            text = text[m.end() :]
    text = UPTIME.sub("", text.lstrip(), count=1).strip()
    if text.endswith(":"):
        text = text[:-1].rstrip()
    return text or None


def _packet_fields(payload: str) -> dict[str, str]:
    """``KEY=VALUE`` tokens outside brackets (an ICMP error's inner header); first one wins."""
    values: dict[str, str] = {}
    depth = 0
    for token in payload.split():
        if token.startswith("["):
            depth += 1
        if depth == 0:
            key, eq, value = token.partition("=")
            if eq and key not in values:
                values[key] = value
        elif token.endswith("]"):
            depth -= 1
    return values


def _matches(interface: str | None, globs: tuple[str, ...]) -> bool:
    return bool(interface) and any(fnmatch.fnmatchcase(interface or "", g) for g in globs)


def _direction(packet: dict[str, str], settings: Settings, chain: str | None) -> str:
    """outbound | inbound | internal | unknown from the hook (IN=/OUT=) or a Proxmox chain."""
    if chain is not None:
        if chain.endswith("-OUT"):
            return "outbound"
        if chain.endswith("-IN"):
            return "inbound"
    into, out = packet.get("IN", ""), packet.get("OUT", "")
    if "lo" in (into, out):
        return "internal"
    if out and not into:
        return "outbound"
    if into and not out:
        return "inbound"
    if not (into and out) or not settings.inside:
        return "unknown"
    if into == out:  # bridged: the ports say where the packet came from and goes to
        into, out = packet.get("PHYSIN", into), packet.get("PHYSOUT", out)
    inside_in, inside_out = _matches(into, settings.inside), _matches(out, settings.inside)
    if inside_in and inside_out:
        return "internal"
    if inside_in:
        return "outbound"
    if inside_out:
        return "inbound"
    return "unknown"


@dataclass(frozen=True)
class _Envelope:
    ts: int
    note: str | None
    host: str | None
    observer: str
    chain: str | None = None
    vmid: str | None = None


def _event(
    payload: str, prefix: str | None, envelope: _Envelope, settings: Settings
) -> dict[str, Any]:
    """A ``network_events`` row from the netfilter fields (without provenance)."""
    packet = _packet_fields(payload)
    if "SRC" not in packet and "DST" not in packet:
        raise Skip("netfilter LOG line without SRC=/DST= (not an IP packet)")
    src = fields.ip(packet.get("SRC"), "SRC", required=True)
    dst = fields.ip(packet.get("DST"), "DST", required=True)
    length = fields.counter(packet.get("LEN"), "LEN")
    direction = _direction(packet, settings, envelope.chain)
    inbound = direction == "inbound"
    if envelope.vmid is not None:
        hint = [f"vmid={envelope.vmid}"]
    else:
        hint = [f"host={envelope.host}"] if envelope.host else []
    hint += [f"{k}={packet[k]}" for k in _HINT_KEYS if packet.get(k)]
    return {
        "ts": envelope.ts,
        "src_ip": src,
        "src_port": fields.port(packet.get("SPT"), "SPT"),
        "dst_ip": dst,
        "dst_port": fields.port(packet.get("DPT"), "DPT"),
        "protocol": fields.protocol(packet.get("PROTO")),
        "direction": direction,
        "action": prefix_action(prefix, settings.prefix_map),
        "action_raw": prefix,
        "rule": envelope.chain if envelope.chain is not None else prefix,
        "bytes_out": None if inbound else length,
        "bytes_in": length if inbound else None,
        "packets_out": None if inbound else 1,
        "packets_in": 1 if inbound else None,
        "observer": envelope.observer,
        "host_hint": " ".join(hint) or None,
        "ts_note": "; ".join(
            n
            for n in (envelope.note, *(fields.ip_note(packet.get(k), k) for k in ("SRC", "DST")))
            if n
        )
        or None,
    }


def _kernel_event(
    message: str, tagged: bool, envelope: _Envelope, settings: Settings
) -> dict[str, Any]:
    """A row from a kernel LOG message (``[prefix]IN=... OUT=... SRC=...``)."""
    m = _KERNEL_FIELDS.search(message)
    if m is None:
        if _DAMAGED.search(message):
            raise fields.RowError("netfilter fields (SRC=, DST=) without the IN=/OUT= pair")
        raise Skip(NOT_NETFILTER)
    prefix = _clean_prefix(message[: m.start()], tagged)
    return _event(message[m.start() :], prefix, envelope, settings)


def _convert(
    text: str, clock: SyslogClock, settings: Settings, options: LoadOptions
) -> dict[str, Any]:
    """One line to a row; raises Skip or RowError."""
    stripped = text.strip()
    if stripped.startswith("{"):
        return _journald(stripped, settings, options)
    m = _PVE_LINE.match(stripped)
    if m:
        return _proxmox(m, settings)
    line = split_syslog(stripped)
    if line is not None:
        if not _KERNEL_FIELDS.search(line.message) and not _DAMAGED.search(line.message):
            raise Skip(NOT_NETFILTER)
        ts, note = clock.timestamp(line)
        observer = f"netfilter@{line.host}" if line.host else "netfilter"
        return _kernel_event(
            line.message, line.tagged, _Envelope(ts, note, line.host, observer), settings
        )
    m = DMESG_T.match(stripped)
    if m and MONTHS.get(m["mon"].lower()):
        ts, note = clock.at(int(m["year"]), MONTHS[m["mon"].lower()], int(m["day"]), m["clock"])
        note = join_notes(note, "dmesg -T time (local time of the reading host)")
        return _kernel_event(m["rest"], False, _Envelope(ts, note, None, "netfilter"), settings)
    if _KERNEL_FIELDS.search(stripped) or _DAMAGED.search(stripped):
        if UPTIME.match(stripped):
            raise fields.RowError(
                "kernel uptime stamp only, no wall-clock time (read the syslog copy or dmesg -T)"
            )
        raise fields.RowError("netfilter LOG line without a syslog header (no time)")
    raise fields.RowError("not a syslog, journald or pve-firewall line")


def _journald(text: str, settings: Settings, options: LoadOptions) -> dict[str, Any]:
    """A ``journalctl -o json`` entry."""
    try:
        record = json.loads(text)
    except (ValueError, RecursionError) as exc:  # ValueError: bad JSON, an int of 4,300+ digits
        raise fields.RowError(f"not valid JSON ({exc.__class__.__name__})") from None
    if not isinstance(record, dict):
        raise fields.RowError(f"not a JSON object but a JSON {type(record).__name__}")
    message = _journal_text(record.get("MESSAGE"))
    if not _KERNEL_FIELDS.search(message) and not _DAMAGED.search(message):
        raise Skip(NOT_NETFILTER)
    key = "_SOURCE_REALTIME_TIMESTAMP"
    if fields.is_blank(record.get(key)):
        key = "__REALTIME_TIMESTAMP"
    value = record.get(key)
    if fields.is_blank(value) or not isinstance(value, (str, int)):
        raise fields.RowError("no __REALTIME_TIMESTAMP")
    try:
        ts, note = parse_epoch(value, unit=options.epoch_unit, expected="us")
    except TimeParseError as exc:
        raise fields.RowError(f"{key}: {exc}") from None
    host = fields.text(record.get("_HOSTNAME"))
    observer = f"netfilter@{host}" if host else "netfilter"
    return _kernel_event(message, False, _Envelope(ts, note, host, observer), settings)


def _journal_text(value: Any) -> str:
    """journald ``MESSAGE``: text, a byte array (non-UTF-8), or several values (first wins)."""
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        value = value[0]
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(b, int) and 0 <= b < 256 for b in value):
        return bytes(value).decode("utf-8", errors="replace")
    if value is None:
        raise fields.RowError(
            "MESSAGE is missing or null (journalctl nulls fields over 4096 bytes)"
        )
    raise fields.RowError(f"MESSAGE is not text but a JSON {type(value).__name__}")


def _proxmox(m: re.Match[str], settings: Settings) -> dict[str, Any]:
    """A ``pve-firewall.log`` line."""
    month = MONTHS.get(m["mon"].lower())
    if month is None:
        raise fields.RowError(f"not a month: {m['mon']!r}")
    stamp = f"{m['year']}-{month:02d}-{m['day']}T{m['clock']}{m['offset']}"
    try:
        ts, note = parse_iso(stamp)
    except TimeParseError as exc:
        raise fields.RowError(f"pve-firewall time: {exc}") from None
    message = m["msg"]
    start = _PVE_FIELDS.search(message)
    if start is None:
        raise Skip("pve-firewall status message")
    prefix = _clean_prefix(message[: start.start()], tagged=False)
    envelope = _Envelope(ts, note, None, "pve-firewall", chain=m["chain"], vmid=m["vmid"])
    return _event(message[start.start() :], prefix, envelope, settings)


def read(source: Source, options: LoadOptions) -> LoadResult:
    """Read one file of netfilter LOG lines into ``network_events`` rows, line by line."""
    settings = Settings.from_options(options)
    clock = SyslogClock(source, options.reference_ns, options.zone_for(name))
    return read_lines(
        source, options, name, NETWORK_EVENTS, lambda text: _convert(text, clock, settings, options)
    )


# --- sniffing ------------------------------------------------------------------------------------

SNIFF_LINES = 64


def sniff(head: bytes, filename: str) -> float:
    """Score: the share of the first lines that are netfilter LOG lines (0 when none is)."""
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if len(lines) > 1 and not head.endswith((b"\n", b"\r")):
        lines = lines[:-1]  # the last line of a head may be cut short
    lines = lines[:SNIFF_LINES]
    if not lines:
        return 0.0
    hits = sum(1 for ln in lines if _looks_like_log_line(ln))
    if not hits:
        return 0.0
    return round(0.6 + 0.35 * hits / len(lines), 3)


def _looks_like_log_line(line: str) -> bool:
    if line.startswith("{"):
        if '"MESSAGE"' not in line or "REALTIME_TIMESTAMP" not in line:
            return False
        try:
            record = json.loads(line)
            message = record.get("MESSAGE") if isinstance(record, dict) else None
            return isinstance(message, str) and bool(_KERNEL_FIELDS.search(message))
        except (ValueError, RecursionError):
            return False
    if _PVE_LINE.match(line):
        return " SRC=" in line and " DST=" in line
    m = _KERNEL_FIELDS.search(line)
    if m is None:
        return False
    fields_part = line[m.start() :]
    return " SRC=" in fields_part and " DST=" in fields_part
