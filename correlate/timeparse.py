"""Every timestamp conversion in correlate: epoch units by magnitude, ISO 8601, zones, durations.

All results are integer nanoseconds since the Unix epoch in UTC. Whatever had to be assumed (the
epoch unit, the zone of a naive time) comes back as a short note for the row's ``ts_note``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import OptionError

NS_PER_UNIT = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
EPOCH_UNITS = ("auto", *NS_PER_UNIT)

# Magnitude bands for an epoch value: seconds up to 1e11 (year 5138), then ms, us, ns.
_MAGNITUDE_BANDS = ((1e11, "s"), (1e14, "ms"), (1e17, "us"))

_ISO_RE = re.compile(
    r"^\s*(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9})\d*)?)?"
    r"\s*(Z|z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?\s*$"
)
_NUMBER_RE = re.compile(r"^\s*[+-]?(\d+)(\.\d*)?([eE][+-]?\d+)?\s*$")
_DURATION_RE = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s|m|min|h|d)?\s*$")
_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    None: 1_000_000_000,
    "m": 60_000_000_000,
    "min": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class TimeParseError(ValueError):
    """A value is not a timestamp we can read; the message says why."""


def epoch_unit_by_magnitude(value: float) -> str:
    """The epoch unit a value most plausibly has: s below 1e11, ms below 1e14, us below 1e17, else ns."""
    magnitude = abs(value)
    for bound, unit in _MAGNITUDE_BANDS:
        if magnitude < bound:
            return unit
    return "ns"


def parse_epoch(
    value: str | int | float, *, unit: str = "auto", expected: str = "s"
) -> tuple[int, str | None]:
    """Epoch number (or numeric string) to ns, exactly for decimal strings.

    ``unit="auto"`` picks the unit by magnitude; a note is returned when that differs from the
    unit the format documents (``expected``).
    """
    if isinstance(value, bool):
        raise TimeParseError(f"not an epoch time: {value!r}")
    if isinstance(value, str):
        if not _NUMBER_RE.match(value):
            raise TimeParseError(f"not an epoch time: {value!r}")
        try:
            number = Decimal(value.strip())
        except InvalidOperation as exc:  # pragma: no cover - the regex already screens
            raise TimeParseError(f"not an epoch time: {value!r}") from exc
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise TimeParseError(f"not an epoch time: {value!r}")
        number = Decimal(repr(value))
    else:
        raise TimeParseError(f"not an epoch time: {value!r}")
    if not number.is_finite():
        raise TimeParseError(f"not an epoch time: {value!r}")
    note = None
    if unit == "auto":
        chosen = epoch_unit_by_magnitude(float(number))
        if chosen != expected:
            note = f"epoch unit {chosen} by magnitude (format documents {expected})"
    elif unit in NS_PER_UNIT:
        chosen = unit
    else:
        raise OptionError(f"unknown epoch unit {unit!r}; use one of {', '.join(EPOCH_UNITS)}")
    try:
        ns = int(number * NS_PER_UNIT[chosen])
    except ArithmeticError:  # decimal.Overflow for an exponent like 1e1000000
        raise TimeParseError(f"time out of range: {value!r}") from None
    _check_range(ns, value)
    return ns, note


def _check_range(ns: int, value: object) -> None:
    # timestamp[ns] covers 1677-09-21 .. 2262-04-11; outside that it is surely not a real log time.
    if not -(2**63) < ns < 2**63 - 1:
        raise TimeParseError(f"time out of range: {value!r}")


def resolve_zone(name: str) -> tzinfo:
    """A zone from an IANA name (``Asia/Shanghai``), ``UTC``, or a fixed offset (``+08:00``)."""
    text = name.strip()
    if text.upper() in ("UTC", "Z", "GMT"):
        return UTC
    m = re.fullmatch(r"([+-])(\d{2}):?(\d{2})?", text)
    if m:
        sign = 1 if m.group(1) == "+" else -1
        minutes = int(m.group(3) or 0)
        offset = timedelta(hours=int(m.group(2)), minutes=minutes)
        if minutes >= 60 or offset >= timedelta(hours=24):
            raise OptionError(f"time zone offset out of range: {name!r}")
        return timezone(sign * offset)
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise OptionError(
            f"unknown time zone {name!r}; use an IANA name such as Asia/Shanghai, UTC, or +08:00"
        ) from exc


def zone_name(zone: tzinfo) -> str:
    """A short, stable name for a zone, for notes and metadata."""
    if zone is UTC:
        return "UTC"
    key = getattr(zone, "key", None)
    return key if key else str(zone)


def parse_iso(text: str, *, default_tz: tzinfo = UTC) -> tuple[int, str | None]:
    """ISO 8601 / RFC 3339 text to ns (fractions to the nanosecond).

    ``Z``, ``+0800`` and ``+08:00`` offsets are honoured; a naive time is read in ``default_tz``
    and the returned note says so (and flags a DST-ambiguous or non-existent local time).
    """
    m = _ISO_RE.match(text) if isinstance(text, str) else None
    if not m:
        raise TimeParseError(f"not an ISO 8601 time: {text!r}")
    year, month, day, hour, minute = (int(m.group(i)) for i in range(1, 6))
    second = int(m.group(6) or 0)
    fraction = m.group(7) or ""
    frac_ns = int(fraction.ljust(9, "0")) if fraction else 0
    zone_text = m.group(8)
    note = None
    try:
        if zone_text:
            zone = resolve_zone(zone_text)
            moment = datetime(year, month, day, hour, minute, second, tzinfo=zone)
        else:
            naive = datetime(year, month, day, hour, minute, second)
            moment = naive.replace(tzinfo=default_tz)
            note = f"no zone: assumed {zone_name(default_tz)}"
            other = naive.replace(tzinfo=default_tz, fold=1)
            if moment.utcoffset() != other.utcoffset():
                note += " (local time ambiguous or skipped by DST: took the earlier offset)"
    except (ValueError, OptionError) as exc:
        raise TimeParseError(f"not a valid time: {text!r}") from exc
    delta = moment - _EPOCH
    ns = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + frac_ns
    _check_range(ns, text)
    return ns, note


def parse_time(
    value: str | int | float,
    *,
    default_tz: tzinfo = UTC,
    epoch_unit: str = "auto",
    expected_unit: str = "s",
) -> tuple[int, str | None]:
    """A timestamp in any supported spelling (epoch number or ISO 8601) to ns and a note."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return parse_epoch(value, unit=epoch_unit, expected=expected_unit)
    if isinstance(value, str):
        if _NUMBER_RE.match(value):
            return parse_epoch(value, unit=epoch_unit, expected=expected_unit)
        return parse_iso(value, default_tz=default_tz)
    raise TimeParseError(f"not a time: {value!r}")


def parse_duration(text: str) -> int:
    """``10``, ``10s``, ``1.5s``, ``500ms``, ``2m``, ``1h``, ``-2.5s`` to signed nanoseconds."""
    m = _DURATION_RE.match(text)
    if not m:
        raise OptionError(f"not a duration: {text!r}; write e.g. 10s, 500ms, 2m, 1h")
    return int(Decimal(m.group(1)) * _DURATION_UNITS[m.group(2)])


def format_duration(ns: int) -> str:
    """Nanoseconds as an exact duration that ``parse_duration`` reads back (``10s``, ``1500ms``)."""
    for unit, size in (("s", 1_000_000_000), ("ms", 1_000_000), ("us", 1_000)):
        if ns % size == 0:
            return f"{ns // size}{unit}"
    return f"{ns}ns"


def ns_to_iso(ns: int) -> str:
    """ns since the epoch as ISO 8601 UTC with the shortest exact fraction (``...T06:00:01.5Z``)."""
    seconds, frac = divmod(ns, 1_000_000_000)
    base = (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        base += "." + f"{frac:09d}".rstrip("0")
    return base + "Z"
