"""ArcSight Common Event Format (CEF) lines, bare or after a syslog header, as network events.

``CEF:Version|Vendor|Product|Version|Signature ID|Name|Severity|key=value ...``; an RFC 3164
header's missing year is inferred as for iptables (``--reference-date`` or the file's mtime).
Mapping: ``src``/``dst``/``spt``/``dpt``/``proto`` -> the 5-tuple; ``sourceTranslatedAddress`` ->
``src_nat_ip``; ``rule`` = the first ``csN`` labelled rule/policy (else vendor keys);
``dst_domain`` = ``dhost`` or a ``request`` URL's host; ``ts`` = ``start``, ``rt``, vendor times,
else the syslog header's (noted); zone-less times in ``dtz``, else ``--tz cef=ZONE`` (UTC), noted;
ambiguous zone abbreviations (CST, IST, BST) are rejected. Verdict from ``act``, then
``FTNTFGTaction``, ``outcome`` (deny/drop/block/reject -> denied, allow/accept/permit -> allowed,
alert/detect -> alerted).

Ambiguity defaults (see ``OPTIONS``): ``deviceDirection`` is ignored (direction unknown, the
policy decides by CIDR) and ``out``/``in`` follow the vendors (``out`` = sent by ``src``), not
the ArcSight dictionary. Events naming no destination are skipped. Field reference and sources:
``tests/data/cef/README.md``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import timedelta, timezone, tzinfo
from typing import Any
from urllib.parse import urlsplit

from ..errors import OptionError
from ..schema import NETWORK_EVENTS
from ..sources import Source
from ..timeparse import TimeParseError, parse_epoch, parse_iso, resolve_zone
from . import fields
from .base import LoadOptions, LoadResult
from .iptables import parse_action_map
from .syslog import MONTHS, Skip, SyslogClock, SyslogLine, join_notes, read_lines, split_syslog

name = "cef"
kind = "network"
description = "ArcSight CEF lines (bare or after an RFC 3164/5424 syslog header)"

OPTIONS = {
    "device_direction": "ignore (default) or trust deviceDirection (0 inbound, 1 outbound)",
    "byte_direction": "vendor (default: out = sent by src) or spec (ArcSight: in = src->dst)",
    "action_map": "VALUE=action,... exact action words tried before the built-in table",
}
"""``--option cef.KEY=VALUE`` settings (see the module docstring)."""

DENIED = {
    "deny",
    "denied",
    "drop",
    "dropped",
    "block",
    "blocked",
    "reject",
    "rejected",
    "reset-client",
    "reset-server",
    "reset-both",
    "prevent",
    "prevented",
}
ALLOWED = {
    "allow",
    "allowed",
    "accept",
    "accepted",
    "permit",
    "permitted",
    "pass",
    "passed",
    "bypass",
    "close",
    "timeout",
    "start",
    "server-rst",
    "client-rst",
    "encrypt",
    "decrypt",
}
ALERTED = {"alert", "alerted", "detect", "detected"}
ZONE_ABBREVIATIONS = {
    "EST": "-05:00",
    "EDT": "-04:00",
    "CDT": "-05:00",
    "MST": "-07:00",
    "MDT": "-06:00",
    "PST": "-08:00",
    "PDT": "-07:00",
    "CET": "+01:00",
    "CEST": "+02:00",
    "EET": "+02:00",
    "EEST": "+03:00",
    "JST": "+09:00",
    "KST": "+09:00",
}
AMBIGUOUS_ZONES = {"CST", "IST", "BST"}
ACTION_KEYS = ("act", "FTNTFGTaction", "outcome")
DESTINATION_KEYS = ("dst", "dpt", "dhost", "request")
RULE_KEYS = ("FTNTFGTpolicyid", "UNIFIpolicyName")

_MARKER = re.compile(r"CEF:\s?(?P<version>\d+(?:\.\d+)?)\|")
_HEADERLESS = re.compile(r"^\d+(?:\.\d+)?\|[^|]*\|[^|]*\|")
_EXT_KEY = re.compile(r"(?:^|(?<=\s))(?P<key>[A-Za-z0-9_.\-\[\]]+)=")
_EXT_ESCAPE = re.compile(r"\\([\\=nr|])")
_HEADER_ESCAPE = re.compile(r"\\([\\|])")
_EPOCH = re.compile(r"^\d+(?:\.\d+)?$")
_CEF_DATE = re.compile(
    r"^(?P<mon>[A-Za-z]{3}) +(?P<day>\d{1,2})(?: (?P<year>\d{4}))? "
    r"(?P<hour>\d{1,2}):(?P<rest>\d{2}:\d{2}(?:\.\d{1,9})?)(?: +(?P<zone>\S.*))?$"
)
_GMT_OFFSET = re.compile(r"^(?:GMT|UTC)?(?P<sign>[+-])(?P<hours>\d{1,2})(?::?(?P<minutes>\d{2}))?$")
_RULE_LABEL = re.compile(r"rule|policy", re.IGNORECASE)
_DENIAL_NAME = re.compile(r"\b(?:blocked|denied|dropped|rejected)\b", re.IGNORECASE)
_ENV_ESCAPE = {"n": "\n", "r": "\r"}


@dataclass(frozen=True)
class Settings:
    """The per-format options, parsed once per file."""

    trust_direction: bool
    spec_bytes: bool
    action_map: dict[str, str]

    @classmethod
    def from_options(cls, options: LoadOptions) -> Settings:
        direction = (options.option(name, "device_direction") or "ignore").strip().lower()
        if direction not in ("ignore", "trust"):
            raise OptionError(
                f"--option cef.device_direction: use ignore or trust, got {direction!r}"
            )
        byte_direction = (options.option(name, "byte_direction") or "vendor").strip().lower()
        if byte_direction not in ("vendor", "spec"):
            raise OptionError(
                f"--option cef.byte_direction: use vendor or spec, got {byte_direction!r}"
            )
        text = options.option(name, "action_map")
        pairs = parse_action_map(text, "action_map", fmt=name) if text is not None else ()
        return cls(
            trust_direction=direction == "trust",
            spec_bytes=byte_direction == "spec",
            action_map={value.lower(): action for value, action in pairs},
        )


@dataclass(frozen=True)
class CefRecord:
    """One parsed CEF line: the six header fields after the version and the extension."""

    vendor: str
    product: str
    device_version: str
    signature_id: str
    event_name: str
    severity: str
    extension: dict[str, str]


def parse_cef(text: str) -> CefRecord:
    """The CEF part of a line (``CEF:0|...``); RowError when the header is incomplete."""
    fields_, rest = _split_header(text)
    if len(fields_) < 6:
        raise fields.RowError(
            f"CEF header has {len(fields_)} of the 6 '|'-separated fields after the version"
        )
    vendor, product, version, signature_id, event_name, severity = (
        _HEADER_ESCAPE.sub(r"\1", f).strip() for f in fields_
    )
    return CefRecord(
        vendor, product, version, signature_id, event_name, severity, parse_extension(rest)
    )


def _split_header(text: str) -> tuple[list[str], str]:
    """Split at the first six unescaped pipes: the header fields and the extension."""
    parts: list[str] = []
    start = i = 0
    while i < len(text) and len(parts) < 6:
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == "|":
            parts.append(text[start:i])
            start = i + 1
        i += 1
    return parts, text[start:] if len(parts) == 6 else ""


def parse_extension(text: str) -> dict[str, str]:
    """``key=value ...`` to a dict (unescaped); a value runs to the next `` key=``."""
    matches = list(_EXT_KEY.finditer(text))
    values: dict[str, str] = {}
    for index, m in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        raw = text[m.end() : end].strip()
        values[m["key"]] = _EXT_ESCAPE.sub(lambda e: _ENV_ESCAPE.get(e[1], e[1]), raw)
    return values


def _zone(text: str) -> tzinfo:
    """A CEF zone: UTC/GMT, an offset, an IANA name or an unambiguous abbreviation."""
    word = text.strip()
    upper = word.upper()
    if upper in AMBIGUOUS_ZONES:
        raise fields.RowError(f"ambiguous time zone {word!r}")
    if upper in ZONE_ABBREVIATIONS:
        word = ZONE_ABBREVIATIONS[upper]
    m = _GMT_OFFSET.match(word)
    if m:
        offset = timedelta(hours=int(m["hours"]), minutes=int(m["minutes"] or 0))
        if offset >= timedelta(hours=24):
            raise fields.RowError(f"time zone offset out of range: {text!r}")
        return timezone(offset if m["sign"] == "+" else -offset)
    try:
        return resolve_zone(word)
    except OptionError:
        raise fields.RowError(f"unknown time zone {text.strip()!r}") from None


def _drop_zone_note(note: str | None) -> str | None:
    """A note without its "no zone: assumed ..." part (for times whose zone was given)."""
    if not note:
        return None
    kept = [part for part in note.split("; ") if not part.startswith("no zone: assumed")]
    return "; ".join(kept) or None


class _Times:
    """Time conversion for one file: the default zone and the year clocks."""

    def __init__(self, source: Source, options: LoadOptions) -> None:
        self.options = options
        self.zone = options.zone_for(name)
        self.header_clock = SyslogClock(source, options.reference_ns, self.zone)
        self.field_clock = SyslogClock(source, options.reference_ns, self.zone)

    def field(self, key: str, value: str, dtz: tzinfo | None) -> tuple[int, str | None]:
        """An ``rt``/``start``/``end`` value to ns and a note."""
        text = value.strip()
        try:
            if _EPOCH.match(text):
                return parse_epoch(text, unit=self.options.epoch_unit, expected="ms")
            m = _CEF_DATE.match(text)
            if m:
                return self._date(m, dtz)
            ns, note = parse_iso(text, default_tz=dtz or self.zone)
        except TimeParseError as exc:
            raise fields.RowError(f"{key}: {exc}") from None
        except fields.RowError as exc:
            raise fields.RowError(f"{key}: {exc}") from None
        return ns, _drop_zone_note(note) if dtz else note

    def _date(self, m: re.Match[str], dtz: tzinfo | None) -> tuple[int, str | None]:
        month = MONTHS.get(m["mon"].lower())
        if month is None:
            raise fields.RowError(f"not a month: {m['mon']!r}")
        given = _zone(m["zone"]) if m["zone"] else dtz
        clock = f"{int(m['hour']):02d}:{m['rest']}"
        day = int(m["day"])
        if m["year"]:
            ns, note = self.field_clock.at(int(m["year"]), month, day, clock, given)
        else:
            ns, note = self.field_clock.without_year(month, day, clock, given)
        return ns, _drop_zone_note(note) if given else note


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _host_name(value: Any) -> str | None:
    """A host name (not an address), lower-cased without a trailing dot."""
    text = fields.text(value)
    if text is None or _is_ip(text.strip("[]")):
        return None
    return text.lower().rstrip(".") or None


def _request_host(value: Any) -> str | None:
    text = fields.text(value)
    if not text or "://" not in text:
        return None
    try:
        host = urlsplit(text).hostname
    except ValueError:
        return None
    return _host_name(host) if host else None


def map_action(value: str, overrides: dict[str, str]) -> str | None:
    """The normalised verdict of a vendor action word; None when the word is not known."""
    word = value.strip().lower()
    if word in overrides:
        return overrides[word]
    if word in DENIED or word.startswith(("block-", "reset-")):
        return "denied"
    if word in ALLOWED:
        return "allowed"
    if word in ALERTED:
        return "alerted"
    return None


def _verdict(record: CefRecord, settings: Settings) -> tuple[str, str | None]:
    ext = record.extension
    present = [v for v in (fields.text(ext.get(k)) for k in ACTION_KEYS) if v is not None]
    for value in present:
        action = map_action(value, settings.action_map)
        if action is not None:
            return action, value
    if present:
        return "unknown", present[0]
    if _DENIAL_NAME.search(record.event_name):
        return "denied", record.event_name
    return "unknown", None


def _rule(ext: dict[str, str]) -> str | None:
    for prefix, count in (("cs", 6), ("cn", 3)):
        for index in range(1, count + 1):
            label = ext.get(f"{prefix}{index}Label")
            value = fields.text(ext.get(f"{prefix}{index}"))
            if label and value is not None and _RULE_LABEL.search(label):
                return value
    for key in RULE_KEYS:
        value = fields.text(ext.get(key))
        if value is not None:
            return value
    return None


def _event_time(
    ext: dict[str, str], header: SyslogLine | None, times: _Times, dtz: tzinfo | None
) -> tuple[int, int | None, str | None]:
    """``ts``, ``ts_end`` and the note: start | rt | vendor time | syslog header; end."""
    notes: list[str | None] = []
    ts = None
    for key in ("start", "rt"):
        if not fields.is_blank(ext.get(key)):
            ts, note = times.field(key, ext[key], dtz)
            notes.append(note)
            break
    if ts is None and not fields.is_blank(ext.get("FTNTFGTeventtime")):
        try:
            ts, note = parse_epoch(
                ext["FTNTFGTeventtime"], unit=times.options.epoch_unit, expected="ns"
            )
        except TimeParseError as exc:
            raise fields.RowError(f"FTNTFGTeventtime: {exc}") from None
        notes.append(note)
    if ts is None and not fields.is_blank(ext.get("UNIFIutcTime")):
        try:
            ts, note = parse_iso(ext["UNIFIutcTime"], default_tz=times.zone)
        except TimeParseError as exc:
            raise fields.RowError(f"UNIFIutcTime: {exc}") from None
        notes.append(note)
    if ts is None and header is not None:
        ts, note = times.header_clock.timestamp(header)
        notes += ["time from the syslog header", note]
    if ts is None:
        raise fields.RowError("no time: no start, rt, vendor time or syslog header")
    ts_end = None
    if not fields.is_blank(ext.get("end")):
        ts_end, note = times.field("end", ext["end"], dtz)
        if ts_end < ts:
            notes.append("end before start: end ignored")
            ts_end = None
        elif note and note not in notes:
            notes.append(note)
    return ts, ts_end, join_notes(*notes)


def _event(
    record: CefRecord,
    header: SyslogLine | None,
    times: _Times,
    settings: Settings,
) -> dict[str, Any]:
    """One CEF record to a ``network_events`` row (without provenance)."""
    ext = record.extension
    if all(fields.is_blank(ext.get(k)) for k in DESTINATION_KEYS):
        raise Skip("CEF event without a destination (no dst, dpt, dhost or request)")
    dtz = None
    if not fields.is_blank(ext.get("dtz")):
        try:
            dtz = _zone(ext["dtz"])
        except fields.RowError as exc:
            raise fields.RowError(f"dtz: {exc}") from None
    ts, ts_end, note = _event_time(ext, header, times, dtz)
    src = fields.ip(ext.get("src"), "src")
    translated = fields.ip(ext.get("sourceTranslatedAddress"), "sourceTranslatedAddress")
    action, action_raw = _verdict(record, settings)
    sent = fields.counter(ext.get("out"), "out")
    received = fields.counter(ext.get("in"), "in")
    if settings.spec_bytes:
        sent, received = received, sent
    direction = "unknown"
    if settings.trust_direction:
        direction = {"0": "inbound", "1": "outbound"}.get(
            (fields.text(ext.get("deviceDirection")) or ""), "unknown"
        )
    device = (
        fields.text(ext.get("dvchost"))
        or (header.host if header else None)
        or fields.text(ext.get("dvc"))
        or fields.text(ext.get("deviceExternalId"))
    )
    product = " ".join(p for p in (record.vendor, record.product) if p) or "cef"
    return {
        "ts": ts,
        "ts_end": ts_end,
        "src_ip": src,
        "src_port": fields.port(ext.get("spt"), "spt"),
        "src_nat_ip": translated if translated not in (None, src, "0.0.0.0") else None,
        "dst_ip": fields.ip(ext.get("dst"), "dst"),
        "dst_port": fields.port(ext.get("dpt"), "dpt"),
        "protocol": fields.protocol(ext.get("proto")),
        "direction": direction,
        "action": action,
        "action_raw": action_raw,
        "rule": _rule(ext),
        "signature": fields.text(ext.get("UNIFIipsSignature")) or record.event_name or None,
        "category": fields.text(ext.get("cat")),
        "dst_domain": _host_name(ext.get("dhost")) or _request_host(ext.get("request")),
        "app": fields.text(ext.get("app")),
        "bytes_out": sent,
        "bytes_in": received,
        "packets_out": fields.counter(ext.get("FTNTFGTsentpkt"), "FTNTFGTsentpkt"),
        "packets_in": fields.counter(ext.get("FTNTFGTrcvdpkt"), "FTNTFGTrcvdpkt"),
        "observer": f"{product}@{device}" if device else product,
        "host_hint": _host_name(ext.get("shost")),
        "ts_note": note,
    }


def _convert(text: str, times: _Times, settings: Settings) -> dict[str, Any]:
    """One line to a row; raises Skip or RowError."""
    stripped = text.strip()
    m = _MARKER.search(stripped)
    if m is None:
        if _HEADERLESS.match(stripped):
            raise fields.RowError("CEF header without its 'CEF:' marker (truncated line?)")
        if split_syslog(stripped) is not None:
            raise Skip("syslog line without CEF")
        raise fields.RowError("not a CEF line")
    before = stripped[: m.start()].strip()
    header = split_syslog(before) if before else None
    record = parse_cef(stripped[m.end() :])
    return _event(record, header, times, settings)


def read(source: Source, options: LoadOptions) -> LoadResult:
    """Read one file of CEF lines into ``network_events`` rows, line by line."""
    settings = Settings.from_options(options)
    times = _Times(source, options)
    return read_lines(
        source, options, name, NETWORK_EVENTS, lambda text: _convert(text, times, settings)
    )


SNIFF_LINES = 64


def sniff(head: bytes, filename: str) -> float:
    """Score: the share of the first lines that carry a complete ``CEF:`` header (0 when none)."""
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if len(lines) > 1 and not head.endswith((b"\n", b"\r")):
        lines = lines[:-1]  # the last line of a head may be cut short
    lines = lines[:SNIFF_LINES]
    hits = 0
    for line in lines:
        if line.startswith(("{", "[")):
            continue  # a JSON log that quotes a CEF string is some other format
        m = _MARKER.search(line)
        if m and len(_split_header(line[m.end() :])[0]) == 6:
            hits += 1
    if not hits:
        return 0.0
    return round(0.6 + 0.35 * hits / len(lines), 3)
