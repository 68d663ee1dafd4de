"""Linux netfilter LOG lines (iptables ``-j LOG``, nftables ``log prefix``) in syslog, journald or
Proxmox ``pve-firewall.log``.

Line format, from the kernel (``torvalds/linux:net/netfilter/nf_log_syslog.c``, which prints
``"%sIN=%s OUT=%s "`` with the log prefix glued on the left, then ``PHYSIN= PHYSOUT= MAC= SRC= DST=
LEN= TOS= PREC= TTL= ID= [DF] PROTO= SPT= DPT= ... [UID= GID=] [MARK=]``; an ICMP error repeats an
inner header in brackets ``[SRC=... DST=...]``, which is ignored) and ``../shared/formats/
firewall_formats.md`` section 7. Envelopes read, line by line (they may be mixed in one file):

- RFC 3164 syslog ``[<PRI>]Mmm dd HH:MM:SS[.frac] host kernel: [uptime] PREFIX IN=...`` (also
  ``journalctl -o short``/``short-precise``). No year and no zone: the zone is
  ``--tz iptables=ZONE`` (default UTC) and the year is inferred, both said in ``ts_note``: the first
  line takes the year of ``--reference-date`` (default: the file's mtime), or the year before when
  that would put it more than a day after the reference; later lines keep that year and roll over
  to the next when the month goes backwards by more than one month (Dec -> Jan); a December line
  right after January lines is read as the previous year (out of order across New Year).
- ISO 8601 / RFC 3339 syslog: RFC 5424 ``<pri>1 2025-12-02T06:00:00.123+08:00 host kernel - - -
  MSG`` and the same without the version digit (rsyslog high-precision, ``journalctl -o short-iso``);
  a time without an offset is read in the ``iptables`` zone, noted.
- journald JSON (``journalctl -o json``, one object per line; ``systemd.journal-fields(7)``):
  ``MESSAGE`` (text, or a byte array for non-UTF-8 text), ``_SOURCE_REALTIME_TIMESTAMP`` else
  ``__REALTIME_TIMESTAMP`` (epoch microseconds as a string, journalctl's own preference),
  ``_HOSTNAME``.
- ``dmesg -T`` lines ``[Tue Dec  2 06:00:00 2025] PREFIX IN=...`` (local time, read in the
  ``iptables`` zone, noted). Plain ``dmesg`` lines carry only seconds since boot: rejected.
- Proxmox VE ``/var/log/pve-firewall.log`` (``proxmox/pve-firewall:src/pvefw-logger.c``):
  ``VMID LOGLEVEL CHAIN dd/Mon/yyyy:HH:MM:SS +zzzz PREFIX IN=...``; ``IN=``/``OUT=`` appear only
  when set, the time has its offset.

Mapping: ``src_ip``/``dst_ip`` = ``SRC``/``DST``, ``src_port``/``dst_port`` = ``SPT``/``DPT``,
``protocol`` = ``PROTO`` lower-cased (``ICMPv6`` -> ``ipv6-icmp``, numbers -> IANA names); one row
is one packet, so ``LEN`` (the IP packet length) goes to ``bytes_in``/``packets_in`` = 1 for inbound
packets and to ``bytes_out``/``packets_out`` = 1 otherwise (sent by ``SRC``). ``rule`` =
``action_raw`` = the log prefix without its trailing colon (Proxmox: ``rule`` = the chain).
``host_hint`` = ``host=<syslog host>`` (Proxmox ``vmid=<id>``) plus the non-empty ``IN= OUT= PHYSIN=
PHYSOUT= UID=`` values (``UID=`` from ``--log-uid`` names the local socket owner).
``observer`` = ``netfilter@<host>`` (Proxmox: ``pve-firewall``).

Direction (from the hook the packet was logged in): ``IN=`` empty and ``OUT=`` set -> outbound
(locally generated); ``IN=`` set and ``OUT=`` empty -> inbound; ``lo`` on either side -> internal;
both set -> forwarded, which is ``unknown`` (the policy then classifies by CIDR) unless
``iptables.inside_interfaces`` names the sandbox-side interfaces: forwarded from an inside to an
outside interface -> outbound, the reverse -> inbound, inside to inside -> internal (for a bridge,
``IN`` = ``OUT``, the ``PHYSIN``/``PHYSOUT`` ports decide). Proxmox chains say it outright:
``...-OUT`` (``tap101i0-OUT``, ``PVEFW-HOST-OUT``) -> outbound, ``...-IN`` -> inbound.

Verdict: LOG is non-terminating, so the log never says what happened next; the verdict comes from
the prefix (operator convention). Default: first the Vyatta convention of Ubiquiti EdgeOS/UniFi
USG and VyOS, which log a rule as ``[<rule set>-<rule number or "default">-<action letter>]``
(EdgeOS ``[WAN_LOCAL-default-D]``, ``[LAN_IN-2000-A]``; VyOS 1.3 ``[{name[:19]}-{rule}-{A}]``,
VyOS 1.4+ ``[ipv4-FWD-filter-20-D]``; the letter is the rule's action's first letter, upper-cased,
in ``vyos-1x`` ``python/vyos/firewall.py``/``template.py``): ``A`` (accept) -> allowed, ``D``
(drop) and ``R`` (reject; VyOS 1.4's ``return`` also writes ``R``) -> denied, other letters
(jump, queue, continue) unknown. Then a prefix map, case-insensitive substrings tried in order,
first match wins: ``DROP``, ``REJECT``, ``DENY``, ``BLOCK`` -> denied; ``ACCEPT``, ``ALLOW``,
``PASS`` -> allowed; otherwise (or no prefix) unknown.

Options (``--option iptables.KEY=VALUE``):
- ``prefix_map``: replaces the default map and the Vyatta convention, e.g.
  ``"-D]=denied,-A]=allowed,LOG=alerted"`` (comma-separated ``SUBSTRING=action``; action one of
  allowed, denied, alerted, unknown).
- ``inside_interfaces``: comma-separated shell globs of sandbox-side interfaces, e.g.
  ``"docker0,br-*,veth*"``; default none.

Skipped: blank lines, syslog lines that are not netfilter LOG lines, LOG lines of non-IP packets
(no ``SRC=``/``DST=``). Rejected: lines with no recognisable time, damaged fields (an invalid
address, port or length, ``SRC=``/``DST=`` without the ``IN=``/``OUT=`` pair), invalid JSON.
Limitations: container network namespaces log nothing unless ``net.netfilter.nf_log_all_netns=1``;
``log group N`` (NFLOG/ulogd) output other than pve-firewall's is not read; ``journalctl -o
json-pretty`` is not read (use ``-o json``).

Checked against: the kernel's ``nf_log_syslog.c``/``ipt_LOG.c`` printk formats (prefix glued to
``IN=``, ``PHYSIN``/``PHYSOUT`` for bridged packets, bracketed inner headers, ``UID=``/``GID=``);
``pvefw-logger.c`` (its ``<VMID> <LOGLEVEL> <CHAIN> <TIME> <TIMEZONE> <MSG>`` comment, ``IN=``/
``OUT=`` printed only when set, status lines with chain ``-``); ``systemd.journal-fields(7)`` and
journalctl's preference for ``_SOURCE_REALTIME_TIMESTAMP``; RFC 3164 section 5.4 and RFC 5424
section 6.5 examples as quoted in the notes.
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
