"""Syslog envelopes (RFC 3164 without year or zone, RFC 5424, ISO-stamped, ``dmesg -T``) and the
clock that gives year-less stamps a year: shared by the loaders whose records arrive in syslog.

Year inference: from ``LoadOptions.reference_ns`` (``--reference-date``) or, failing that, the
file's mtime, with rollovers taken from the file's order; every assumption is noted on the row.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

import pyarrow as pa

from ..errors import InputError
from ..sources import Source
from ..timeparse import TimeParseError, parse_iso
from . import fields
from .base import FileLoad, LoadOptions, LoadResult
from .records import text_lines

DAY_NS = 86_400 * 1_000_000_000
MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}


_PRI = r"(?:<\d{1,3}>)?"
_RFC3164 = re.compile(
    _PRI + r"(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d{1,2})(?: (?P<year>\d{4}))? "
    r"(?P<clock>\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?) +(?P<host>\S+) ?(?P<rest>.*)$"
)
_ISO = re.compile(
    _PRI + r"(?:(?P<version>\d{1,2}) )?"
    r"(?P<stamp>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|z|[+-]\d{2}:?\d{2})?)"
    r" +(?P<host>\S+) ?(?P<rest>.*)$"
)
_RFC5424_REST = re.compile(
    r'(?P<app>\S+) (?P<procid>\S+) (?P<msgid>\S+) (?P<sd>-|(?:\[(?:[^\]"\\]|\\.|"(?:[^"\\]|\\.)*")*\])+)'
    r" ?(?P<msg>.*)$"
)
DMESG_T = re.compile(
    r"^\[(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (?P<mon>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) "
    r"(?P<clock>\d{2}:\d{2}:\d{2}) (?P<year>\d{4})\] ?(?P<rest>.*)$"
)
UPTIME = re.compile(r"^\[\s*\d+\.\d+\]\s*")
TAG = re.compile(r"^(?P<tag>[\w.\-/]+)(?:\[\d+\])?:(?:\s+|$)")


@dataclass(frozen=True)
class SyslogLine:
    """A syslog line split into its time, host and message (the part after the host)."""

    host: str | None
    message: str
    tagged: bool
    """True when ``message`` still begins with the syslog tag (``kernel:``), as in RFC 3164."""
    iso: str | None = None
    """The RFC 3339 / ISO 8601 stamp, when the line has one."""
    month: int | None = None
    day: int | None = None
    year: int | None = None
    clock: str | None = None
    """``HH:MM:SS[.frac]`` of an RFC 3164 stamp."""


def split_syslog(text: str) -> SyslogLine | None:
    """Split an RFC 3164, RFC 5424 or ISO-stamped syslog line; None when it is none of them."""
    m = _RFC3164.match(text)
    if m:
        month = MONTHS.get(m["mon"].lower())
        if month is not None:
            host, rest = _host_and_rest(m["host"], m["rest"])
            return SyslogLine(
                host=host,
                message=rest,
                tagged=True,
                month=month,
                day=int(m["day"]),
                year=int(m["year"]) if m["year"] else None,
                clock=m["clock"],
            )
    m = _ISO.match(text)
    if m:
        host, rest = _host_and_rest(m["host"], m["rest"])
        if m["version"]:
            structured = _RFC5424_REST.match(rest)
            if structured:
                return SyslogLine(
                    host=host,
                    message=structured["msg"].removeprefix("\ufeff"),
                    tagged=False,
                    iso=m["stamp"],
                )
        return SyslogLine(host=host, message=rest, tagged=True, iso=m["stamp"])
    return None


def _host_and_rest(host: str, rest: str) -> tuple[str | None, str]:
    # "Jan  8 03:37:09 DENY: IN=..." has no host: the word after the time is already the message.
    if host.endswith(":"):
        return None, f"{host} {rest}"
    return (None if host == "-" else host), rest


class SyslogClock:
    """Turns syslog stamps into ns; infers the missing year of RFC 3164 stamps in file order."""

    def __init__(self, source: Source, reference_ns: int | None, zone: tzinfo) -> None:
        self.source = source
        self.reference_ns = reference_ns
        self.zone = zone
        self._year: int | None = None
        self._month = 0
        self._origin = ""

    def timestamp(self, line: SyslogLine) -> tuple[int, str | None]:
        """The line's time in ns and what was assumed; RowError when the stamp is not a date."""
        if line.iso is not None:
            try:
                return parse_iso(line.iso.replace(",", "."), default_tz=self.zone)
            except TimeParseError as exc:
                raise fields.RowError(f"syslog time: {exc}") from None
        assert line.month is not None and line.day is not None and line.clock is not None
        if line.year is not None:
            return self.at(line.year, line.month, line.day, line.clock)
        return self.without_year(line.month, line.day, line.clock)

    def without_year(
        self, month: int, day: int, clock: str, zone: tzinfo | None = None
    ) -> tuple[int, str | None]:
        """ns for a ``Mmm dd HH:MM:SS`` stamp, the year inferred (see the module docstring)."""
        if self._year is None:
            reference, origin = self._reference()
            year = datetime.fromtimestamp(reference // 1_000_000_000, tz=zone or self.zone).year
            try:
                ns, zone_note = self.at(year, month, day, clock, zone)
            except fields.RowError:
                if (month, day) != (2, 29):
                    raise
                ns = reference + 2 * DAY_NS  # Feb 29 of a common year: try the year before
            if ns > reference + DAY_NS:
                year -= 1
                ns, zone_note = self.at(year, month, day, clock, zone)
            self._year, self._month, self._origin = year, month, origin
            return ns, join_notes(f"no year: assumed {year} ({origin})", zone_note)
        year, month_seen, origin, how = self._year, self._month, self._origin, self._origin
        if month < self._month - 1:
            year += 1
            month_seen = month
            origin = how = f"{origin.split(';')[0]}; year rollover in file order"
        elif self._month == 1 and month == 12:
            year -= 1  # a line slightly out of order across New Year; the file stays in January
            how = f"{origin.split(';')[0]}; out of order across New Year"
        elif month > self._month:
            month_seen = month
        ns, zone_note = self.at(year, month, day, clock, zone)  # an invalid date changes nothing
        if year >= self._year:
            self._year, self._month, self._origin = year, month_seen, origin
        return ns, join_notes(f"no year: assumed {year} ({how})", zone_note)

    def _reference(self) -> tuple[int, str]:
        if self.reference_ns is not None:
            return self.reference_ns, "from --reference-date"
        try:
            return self.source.path.stat().st_mtime_ns, "from the file's mtime"
        except OSError as exc:
            raise InputError(
                f"{self.source.display}: syslog times without a year and no file mtime to infer "
                f"it from ({exc.strerror}); pass --reference-date"
            ) from None

    def at(
        self, year: int, month: int, day: int, clock: str, zone: tzinfo | None = None
    ) -> tuple[int, str | None]:
        """ns for a full date and clock in the zone (the note says when the zone was assumed)."""
        try:
            return parse_iso(
                f"{year:04d}-{month:02d}-{day:02d}T{clock}", default_tz=zone or self.zone
            )
        except TimeParseError:
            raise fields.RowError(
                f"not a valid date: month {month} day {day} {clock} in {year}"
            ) from None


def join_notes(*notes: str | None) -> str | None:
    return "; ".join(n for n in notes if n) or None


class Skip(Exception):
    """A line of the right kind of file that is not a record (the message is the skip reason)."""


def read_lines(
    source: Source,
    options: LoadOptions,
    format_name: str,
    schema: pa.Schema,
    convert: Callable[[str], dict[str, Any]],
) -> LoadResult:
    """A file of one record per line as ``network_events`` rows: each non-blank line through
    ``convert``, which raises ``Skip`` (counted as skipped) or ``RowError`` (rejected)."""
    load = FileLoad(source, options, format_name, "network", schema, unit="lines")
    for line, text in text_lines(source, load):
        try:
            row = convert(text)
        except Skip as skip:
            load.skip(str(skip))
            continue
        except fields.RowError as exc:
            load.reject(line, str(exc), text)
            continue
        load.emit(row, line)
    return load.result()
