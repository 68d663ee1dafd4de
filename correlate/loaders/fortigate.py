"""FortiGate (FortiOS) key=value logs: traffic records, and UTM records that carry a 5-tuple.

One record per line (``key=value`` pairs, optionally quoted, optionally behind a syslog header,
which is ignored). Time: ``eventtime`` (unit by magnitude, noted when not ns), else ``date`` +
``time`` in the record's ``tz``, else ``--tz fortigate=ZONE`` (UTC), noted; a disagreement between
the two is noted. ``eventtime`` is when the record was logged (a session's end for traffic).

Mapping: ``srcip``/``srcport``/``dstip``/``dstport``/``proto``; ``transip`` -> ``src_nat_ip`` for
source NAT; sent -> ``*_out``, rcvd -> ``*_in``; ``policyid`` -> rule; ``attack``/``virus`` ->
signature; ``hostname``/``qname`` -> ``dst_domain``; ``fortigate/<dev>/<vd>`` -> observer;
``sessionid`` -> ``flow_key``. Verdict: traffic accept/close/timeout/... -> allowed, deny/block/
drop -> denied; a UTM ``utmaction`` or record's block/reset -> denied, monitored/pass -> alerted.
Direction from the interface roles (lan/dmz -> wan outbound, wan -> lan/dmz inbound).

Ambiguity defaults (see ``OPTIONS``): ``ts`` is the logged time (``session_start``), and no
interface is taken as wan by name (``wan_interfaces``). Event and other non-traffic records are
skipped. Field reference and sources: ``tests/data/fortigate/README.md``.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, tzinfo
from typing import Any

from ..errors import OptionError
from ..schema import NETWORK_EVENTS
from ..sources import Source
from ..timeparse import TimeParseError, parse_epoch, parse_iso
from . import fields
from .base import FileLoad, LoadOptions, LoadResult
from .records import marked_lines

name = "fortigate"
kind = "network"
description = "FortiGate (FortiOS) key=value traffic and UTM logs, plain or behind a syslog header"

OPTIONS = {
    "session_start": "logged (default: ts is the logged time) or duration (ts = eventtime - duration, ts_end = logged time)",
    "wan_interfaces": "comma-separated interface names that face the internet (default none)",
}
"""``--option fortigate.KEY=VALUE`` settings."""

TRAFFIC_ACTIONS = {
    "accept": "allowed",
    "start": "allowed",
    "close": "allowed",
    "timeout": "allowed",
    "server-rst": "allowed",
    "client-rst": "allowed",
    "deny": "denied",
    "block": "denied",
    "blocked": "denied",
    "drop": "denied",
    "dropped": "denied",
}
UTM_ACTIONS = {
    **{
        value: "denied"
        for value in (
            "blocked",
            "block",
            "deny",
            "dropped",
            "drop",
            "reset",
            "reset_client",
            "reset_server",
            "reset-client",
            "reset-server",
            "drop_session",
            "clear_session",
            "redirect",
        )
    },
    **{
        value: "alerted"
        for value in (
            "detected",
            "monitored",
            "passthrough",
            "pass",
            "pass_session",
            "allow",
        )
    },
    "exempt": "allowed",
}
UTMACTION_OVERRIDES = {
    "block": "denied",
    "blocked": "denied",
    "reset": "denied",
    "passthrough": "alerted",
    "monitored": "alerted",
}
INSIDE_ROLES = ("lan", "dmz")
SESSION_START_MODES = ("logged", "duration")

# Where a FortiOS record starts inside a line (after any syslog header).
_START_RE = re.compile(
    r"(?:^|(?<=[\s>]))(?:date=\d{4}-\d{2}-\d{2}\b|logver=|devname=|devid=|logid=|eventtime=|itime=)"
)
_PAIR_RE = re.compile(r'\s*([A-Za-z0-9_.\-]+)=(?:"((?:[^"\\]|\\.)*)"|((?!")\S*))(?=\s|$)')
_UNQUOTE_RE = re.compile(r"\\(.)")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CLOCK_RE = re.compile(r"^\d{2}:\d{2}:\d{2}$")
# Sniffing: a FortiOS date field and a logid/type field as whole keys on one line.
_SNIFF_DATE = re.compile(rb"(?:^|[\s>])date=\d{4}-\d{2}-\d{2}\s+time=\d{2}:\d{2}:\d{2}\b")
_SNIFF_LOGID = re.compile(rb'(?:^|\s)logid="?\d{10}"?(?=\s|$)')
_SNIFF_TYPE = re.compile(rb'(?:^|\s)type="?(?:traffic|utm|event)"?(?=\s|$)')
_SNIFF_TUPLE = re.compile(rb"(?:^|\s)srcip=\S+.*\sdstip=\S+")


def sniff(head: bytes, filename: str) -> float:
    """Score: FortiOS ``date=``/``time=`` with a 10-digit ``logid`` and a ``type`` on one line."""
    best = 0.0
    for line in head.splitlines()[:50]:
        if b"CEF:" in line or b"LEEF:" in line:
            continue
        if not (_SNIFF_LOGID.search(line) and _SNIFF_TYPE.search(line)):
            continue
        if _SNIFF_DATE.search(line) or b"eventtime=" in line:
            score = 0.95 if _SNIFF_TUPLE.search(line) else 0.8
            best = max(best, score)
            if best >= 0.95:
                break
    return best


class _PairError(ValueError):
    """A record's text is not well-formed key=value pairs."""


def parse_pairs(text: str) -> dict[str, str]:
    """FortiOS ``key=value`` pairs to a dict (first occurrence of a key wins); quotes removed."""
    out: dict[str, str] = {}
    position = 0
    # Anchored matching from the current position only: searching (finditer) would retry the
    # pattern at every later offset of a malformed line, quadratic on a hostile long line.
    while True:
        match = _PAIR_RE.match(text, position)
        if match is None or match.end() == position:
            break
        key, quoted, bare = match.groups()
        if quoted is None:
            value = bare
        else:
            value = _UNQUOTE_RE.sub(r"\1", quoted) if "\\" in quoted else quoted
        out.setdefault(key, value)
        position = match.end()
    rest = text[position:].strip()
    if rest:
        key_match = re.match(r'([A-Za-z0-9_.\-]+)="', rest)
        if key_match:
            raise _PairError(f"unbalanced quotes in the value of {key_match.group(1)}")
        raise _PairError(f"not key=value: {rest[:40]!r}")
    return out


def read(source: Source, options: LoadOptions) -> LoadResult:
    """Read FortiOS key=value lines into ``network_events`` rows."""
    load = FileLoad(source, options, name, kind, NETWORK_EVENTS)
    settings = _settings(options)
    for line, raw, start in marked_lines(source, load, _START_RE, "not a FortiOS key=value record"):
        try:
            record = parse_pairs(raw[start.start() :])
        except _PairError as exc:
            load.reject(line, str(exc), raw)
            continue
        log_type = (record.get("type") or "").strip().lower()
        subtype = (record.get("subtype") or "").strip().lower()
        if not log_type:
            load.reject(line, "no type= field", raw)
            continue
        if log_type not in ("traffic", "utm"):
            load.skip(f"{log_type} log (not traffic or utm)")
            continue
        if log_type == "utm" and (
            fields.is_blank(record.get("srcip")) or fields.is_blank(record.get("dstip"))
        ):
            load.skip(f"utm {subtype or '?'} record without srcip/dstip")
            continue
        try:
            row = _convert(record, log_type, options, settings)
        except fields.RowError as exc:
            load.reject(line, str(exc), raw)
            continue
        load.emit(row, line)
    return load.result()


def _settings(options: LoadOptions) -> dict[str, Any]:
    """The ``--option fortigate.*`` settings, checked."""
    mode = (options.option(name, "session_start", "logged") or "logged").strip().lower()
    if mode not in SESSION_START_MODES:
        raise OptionError(
            f"--option {name}.session_start: {mode!r} is not one of {', '.join(SESSION_START_MODES)}"
        )
    wan = options.option(name, "wan_interfaces", "") or ""
    return {
        "session_start": mode,
        "wan_interfaces": frozenset(i.strip() for i in wan.split(",") if i.strip()),
    }


def _event_time(record: dict[str, str], options: LoadOptions, notes: list[str]) -> int:
    """The record's time in ns: ``eventtime``, else ``date``+``time`` in ``tz`` or the zone option."""
    eventtime = record.get("eventtime")
    if not fields.is_blank(eventtime):
        try:
            ns, note = parse_epoch(eventtime or "", unit=options.epoch_unit, expected="ns")
        except TimeParseError as exc:
            raise fields.RowError(f"eventtime: {exc}") from None
        if note:
            notes.append(note)
        try:
            local = _local_time(record, UTC)  # with tz= its offset; without, read as UTC
        except fields.RowError:
            local = None  # eventtime is what counts; a broken date/time is only not compared
        if local is not None:
            disagreement = _disagreement(local, ns)
            if disagreement:
                notes.append(disagreement)
        return ns
    local = _local_time(record, options.zone_for(name))
    if local is None:
        raise fields.RowError("no eventtime and no date/time")
    ns, note = local
    if note:
        notes.append(note)
    return ns


def _shown(seconds: float) -> str:
    if abs(seconds) >= 86_400:
        return f"{seconds / 86_400:+.1f} days"
    return f"{round(seconds / 60):+d} min" if abs(seconds) >= 60 else f"{seconds:+.0f} s"


def _disagreement(local: tuple[int, str | None], eventtime: int) -> str | None:
    """The row note when ``date``/``time`` (with ``tz``, or read as UTC without) disagree with
    ``eventtime``."""
    delta_s = (local[0] - eventtime) / 1e9
    if local[1] is None:  # tz= given: the two must be the same instant
        if abs(delta_s) > 1.5:
            return f"date/time/tz differ from eventtime by {_shown(delta_s)}: eventtime used"
        return None
    # No tz=: date/time are the device's clock, some UTC offset away from eventtime.
    offset_s = round(delta_s / 900) * 900
    if -12 * 3600 <= offset_s <= 14 * 3600 and abs(delta_s - offset_s) <= 1.5:
        return None
    if -12 * 3600 <= offset_s <= 14 * 3600 and abs(delta_s - offset_s) < 450:
        sign = "+" if offset_s >= 0 else "-"
        hours, rest = divmod(abs(offset_s) // 60, 60)
        return (
            f"date/time (no tz) differ from eventtime by {_shown(delta_s - offset_s)} beyond "
            f"a UTC{sign}{hours:02d}:{rest:02d} clock: eventtime used"
        )
    return (
        f"date/time (no tz) differ from eventtime by {_shown(delta_s)}, more than any UTC "
        "offset: eventtime used"
    )


def _local_time(record: dict[str, str], zone: tzinfo) -> tuple[int, str | None] | None:
    """``date`` + ``time`` (+ ``tz``) as ns and the zone note; None when either is missing."""
    date = (record.get("date") or "").strip()
    clock = (record.get("time") or "").strip()
    if not date or not clock:
        return None
    tz = (record.get("tz") or "").strip()
    text = f"{date}T{clock}{tz}"
    if not _DATE_RE.match(date) or not _CLOCK_RE.match(clock):
        raise fields.RowError(f"date/time: not a valid time: {date!r} {clock!r}")
    try:
        return parse_iso(text, default_tz=zone)
    except TimeParseError:
        raise fields.RowError(f"date/time/tz: not a valid time: {date} {clock} tz={tz!r}") from None


def _domain(value: str | None) -> str | None:
    """A host name as ``dst_domain`` (lower case, no trailing dot); None for IP literals."""
    text = fields.text(value)
    if text is None:
        return None
    text = text.lower().rstrip(".")
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return text or None
    return None


def _app_category(value: str | None) -> str | None:
    """``appcat`` unless it only says application control did not look (``unscanned``)."""
    text = fields.text(value)
    return None if text is None or text.lower() in ("unscanned", "unknown") else text


def _direction(record: dict[str, str], wan_interfaces: frozenset[str]) -> str:
    """outbound | inbound | internal | unknown from the interface roles (and named WAN ports)."""

    def role(side: str) -> str:
        if (record.get(f"{side}intf") or "").strip() in wan_interfaces:
            return "wan"
        declared = (record.get(f"{side}intfrole") or "").strip().lower()
        if declared in ("lan", "dmz", "wan") or not wan_interfaces:
            return declared
        return "lan"  # with WAN ports named, any other port without a role is inside

    src, dst = role("src"), role("dst")
    if src in INSIDE_ROLES and dst == "wan":
        return "outbound"
    if src == "wan" and dst in INSIDE_ROLES:
        return "inbound"
    if src in INSIDE_ROLES and dst in INSIDE_ROLES:
        return "internal"
    return "unknown"


def _verdict(record: dict[str, str], log_type: str) -> tuple[str, str | None]:
    """The normalised action and the vendor text it came from."""
    action_raw = fields.text(record.get("action"))
    action = (action_raw or "").lower()
    if log_type == "utm":
        return UTM_ACTIONS.get(action, "unknown"), action_raw
    verdict = TRAFFIC_ACTIONS.get(action, "unknown")
    utm_raw = fields.text(record.get("utmaction"))
    override = UTMACTION_OVERRIDES.get((utm_raw or "").lower())
    if utm_raw and verdict != "denied" and override:
        verdict = override
    if utm_raw and override:
        action_raw = f"{action_raw or '-'} (utmaction={utm_raw})"
    return verdict, action_raw


def _convert(
    record: dict[str, str], log_type: str, options: LoadOptions, settings: dict[str, Any]
) -> dict[str, Any]:
    """One FortiOS record to a ``network_events`` row (without provenance)."""
    notes: list[str] = []
    ts = _event_time(record, options, notes)
    ts_end = None
    duration = None
    if settings["session_start"] == "duration" and log_type == "traffic":
        duration = fields.counter(record.get("duration"), "duration")
    if duration:
        ts_end = ts
        ts -= duration * 1_000_000_000
        notes.append("ts = eventtime - duration (session start)")
    src = fields.ip(record.get("srcip"), "srcip", required=True)
    dst = fields.ip(record.get("dstip"), "dstip", required=True)
    trandisp = (record.get("trandisp") or "").lower()
    nat = fields.ip(record.get("transip"), "transip")
    if nat in ("0.0.0.0", "::", src) or (trandisp and "snat" not in trandisp):
        nat = None
    verdict, action_raw = _verdict(record, log_type)
    policy_id = fields.text(record.get("policyid"))
    policy_name = fields.text(record.get("policyname"))
    rule = f"{policy_name} ({policy_id})" if policy_name and policy_id else policy_id or policy_name
    device = fields.text(record.get("devname")) or fields.text(record.get("devid"))
    vdom = fields.text(record.get("vd"))
    observer = "/".join(part for part in ("fortigate", device, vdom) if part)
    session = fields.text(record.get("sessionid")) or fields.text(record.get("session_id"))
    device_key = fields.text(record.get("devid")) or device
    return {
        "ts": ts,
        "ts_end": ts_end,
        "src_ip": src,
        "src_port": fields.port(record.get("srcport"), "srcport"),
        "src_nat_ip": nat,
        "dst_ip": dst,
        "dst_port": fields.port(record.get("dstport"), "dstport"),
        "protocol": fields.protocol(record.get("proto")),
        "direction": _direction(record, settings["wan_interfaces"]),
        "action": verdict,
        "action_raw": action_raw,
        "rule": rule,
        "signature": fields.text(record.get("attack")) or fields.text(record.get("virus")),
        "category": fields.text(record.get("catdesc")) or _app_category(record.get("appcat")),
        "dst_domain": _domain(record.get("hostname")) or _domain(record.get("qname")),
        "app": fields.text(record.get("app")) or fields.text(record.get("service")),
        "bytes_out": fields.counter(record.get("sentbyte"), "sentbyte"),
        "bytes_in": fields.counter(record.get("rcvdbyte"), "rcvdbyte"),
        "packets_out": fields.counter(record.get("sentpkt"), "sentpkt"),
        "packets_in": fields.counter(record.get("rcvdpkt"), "rcvdpkt"),
        "observer": observer,
        "host_hint": fields.text(record.get("srcname")) or fields.text(record.get("srcmac")),
        "flow_key": f"fortigate:{device_key or '-'}:{session}" if session else None,
        "ts_note": "; ".join(notes) or None,
    }
