"""Questions asked of an analysed case: filters and the rows they select (shown by
``reports/tables.py``).

``query`` answers "everything near X" with one row per violation event: the event, its
conversation's labels, the call it is attributed to (how, lag, confidence, command) and how many
candidate calls its window held; ``--candidates`` gives one row per (event, candidate call) pair
instead. ``findings`` gives one row per conversation, or per tool/run/episode/host/label with
``--by``. Filters combine with AND; a repeated filter matches any of its values (OR).
"""

from __future__ import annotations

import difflib
import fnmatch
import ipaddress
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

import pyarrow as pa

from .classify import LABELS
from .errors import OptionError
from .pipeline import Result
from .reports.parquet import attribution_rows
from .reports.parquet import candidate_rows as pair_rows
from .schema import CALL_FIELDS, EVIDENCE, TS, derived, plain_rows
from .stats import Association
from .timeparse import TimeParseError, parse_duration, parse_time, resolve_zone, zone_name

CONFIDENCE_ORDER = {"none": 0, "low": 1, "medium": 2, "high": 3}
GROUP_KEYS = ("tool", "run", "episode", "host", "label", "confidence")

Row = dict[str, Any]


# --- times ----------------------------------------------------------------------------------


def display_zone(name: str | None) -> tzinfo:
    """The zone times are shown in (``--display-tz``); storage is always UTC."""
    return UTC if not name else resolve_zone(name)


def format_time(
    ns: int | None, zone: tzinfo = UTC, sep: str = "T", digits: int | None = None
) -> str:
    """ns since the epoch as ISO 8601 in ``zone`` with its offset (``Z`` for UTC).

    The fraction is the shortest exact one, or exactly ``digits`` digits (truncated) for columns
    that line up.
    """
    if ns is None:
        return ""
    seconds, frac = divmod(int(ns), 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, tz=UTC).astimezone(zone)
    text = moment.strftime(f"%Y-%m-%d{sep}%H:%M:%S")
    if digits:
        text += "." + f"{frac:09d}"[:digits]
    elif frac:
        text += "." + f"{frac:09d}".rstrip("0")
    if zone is UTC:
        return text + "Z"
    offset = moment.strftime("%z")
    return f"{text}{offset[:3]}:{offset[3:]}"


Span = tuple[int, int]
"""The first and last time (ns) a case holds: what a bare time of day is read against."""
SpanSource = Span | Callable[[], Span | None] | None

_TIME_OF_DAY = re.compile(
    r"^(\d{1,2}):(\d{2}(?::\d{2}(?:[.,]\d+)?)?)\s*(Z|z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?$"
)
"""A time of day as the tables show it (``06:40``, ``06:40:12``, ``06:11:23.05Z``, ``14:00+08:00``)."""


def span_days(span: Span, zone: tzinfo = UTC) -> list[date]:
    """The calendar days (in ``zone``) from the first to the last time of ``span``."""
    first, last = (
        datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC).astimezone(zone).date() for ns in span
    )
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _time_of_day(text: str, flag: str, zone: tzinfo, span: SpanSource) -> int | None:
    """A bare time of day on the case's day (ns), or None when ``text`` is not one.

    The day is the case's in the zone the time names (``Z``, ``+08:00``), else in ``zone`` (the
    zone the tables display). A case that spans several days makes a bare time ambiguous: that is
    a usage error asking for a date.
    """
    m = _TIME_OF_DAY.match(text)
    if m is None:
        return None
    hour, rest, suffix = m.groups()
    where = resolve_zone(suffix) if suffix else zone
    label = "UTC" if where is UTC else zone_name(where)
    found = span() if callable(span) else span
    if found is None:
        raise OptionError(
            f"{flag} {text}: a time of day needs a date here; write ISO 8601 "
            "(2025-12-02T06:40 or '2025-12-02 06:40')"
        )
    days = span_days(found, where)

    def on(day: date) -> int:
        try:
            return parse_time(f"{day}T{hour.zfill(2)}:{rest}{suffix or ''}", default_tz=where)[0]
        except TimeParseError:
            raise OptionError(
                f"{flag}: not a time of day: {text!r}; write HH:MM, HH:MM:SS or HH:MM:SS.fff"
            ) from None

    if len(days) > 1:
        inside = [d for d in days if found[0] <= on(d) <= found[1]] or days
        spelled = " or ".join(f"{d}T{hour.zfill(2)}:{rest}{suffix or ''}" for d in inside)
        raise OptionError(
            f"{flag} {text}: the case spans {len(days)} days ({days[0]} to {days[-1]}, {label}), "
            f"so a time of day is ambiguous; give the date too: {spelled}"
        )
    return on(days[0])


def parse_bounds(
    since: str | None, until: str | None, zone: tzinfo = UTC, span: SpanSource = None
) -> tuple[int | None, int | None]:
    """``--since``/``--until`` as ns: ISO 8601 (naive = ``zone``), epoch, a time of day as the
    tables show it (``06:40``, ``06:40:12.5``: on the day of ``span`` in ``zone``), or
    ``-1m``/``+30s`` relative to the other bound (``--until T --since -1m`` is the minute before T).

    ``span`` is the case's first and last time (or a function giving it, called only for a time
    of day); when it covers several days in ``zone``, a bare time of day is a usage error.
    """

    def absolute(text: str, flag: str) -> int:
        clock_time = _time_of_day(text.strip(), flag, zone, span)
        if clock_time is not None:
            return clock_time
        try:
            return parse_time(text.strip(), default_tz=zone)[0]
        except TimeParseError:
            raise OptionError(
                f"{flag}: not a time: {text!r}; write ISO 8601 (2025-12-02T06:19:44Z), a time of "
                "day as the tables show it (06:19:44), epoch seconds, or a duration relative to "
                "the other bound (-1m)"
            ) from None

    def relative(text: str | None) -> int | None:
        if text is None or text.strip()[:1] not in "+-":
            return None
        try:
            return parse_duration(text.strip())
        except OptionError:
            return None

    rel_since, rel_until = relative(since), relative(until)
    if rel_since is not None and rel_until is not None:
        raise OptionError("--since and --until cannot both be relative durations")
    lo = None if since is None or rel_since is not None else absolute(since, "--since")
    hi = None if until is None or rel_until is not None else absolute(until, "--until")
    if rel_since is not None:
        if hi is None:
            raise OptionError("--since as a duration needs an absolute --until")
        lo = hi + rel_since if rel_since < 0 else hi - rel_since
    if rel_until is not None:
        if lo is None:
            raise OptionError("--until as a duration needs an absolute --since")
        hi = lo + abs(rel_until)
    if lo is not None and hi is not None and lo > hi:
        raise OptionError("--since is after --until")
    return lo, hi


# --- filters --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AddressPattern:
    """An IP, a network (CIDR) or a domain (matching itself and its subdomains)."""

    text: str
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None
    domain: str | None

    @classmethod
    def parse(cls, text: str, flag: str, *, domains: bool = True) -> AddressPattern:
        """An IP, a CIDR, or (with ``domains``) a domain; anything else is an OptionError.

        A value made of numbers and dots (``999.1.1.1``, ``10.0.0``) is never a domain (no
        top-level domain is all digits): it is an invalid address, not a name that matches nothing.
        """
        value = text.strip()
        what = "an IP address, a CIDR or a domain" if domains else "an IP address or a CIDR"
        examples = "203.0.113.7, 10.0.0.0/8, 2001:db8::/32" + (
            ", pool.supportxmr.com" if domains else ""
        )
        if not value:
            raise OptionError(f"{flag}: empty value; give {what}, e.g. {examples}")
        try:
            return cls(value, ipaddress.ip_network(value, strict=False), None)
        except ValueError:
            pass
        if re.fullmatch(r"[0-9.]+(/[0-9]*)?", value) or "/" in value or ":" in value:
            raise OptionError(
                f"{flag}: not a valid IP address or network: {value!r}; give {what}, "
                f"e.g. {examples}"
            )
        if not domains:
            raise OptionError(
                f"{flag}: not {what}: {value!r}; e.g. {examples} (a sandbox name goes in --host)"
            )
        if (
            not re.fullmatch(r"[A-Za-z0-9_.*-]+", value)
            or ".." in value.strip(".")
            or value.rsplit(".", 1)[-1].isdigit()
        ):
            raise OptionError(f"{flag}: not {what}: {value!r}; e.g. {examples}")
        return cls(value, None, value.lower().strip(".").removeprefix("*."))

    def matches(self, ip: str | None, domain: str | None = None) -> bool:
        if self.network is not None:
            if not ip:
                return False
            try:
                return ipaddress.ip_address(ip) in self.network
            except ValueError:
                return False
        if not domain or self.domain is None:
            return False
        name = domain.lower().rstrip(".")
        return name == self.domain or name.endswith("." + self.domain)


def parse_labels(values: Iterable[str], flag: str = "--label") -> tuple[str, ...]:
    """Conversation labels as given (case and ``-``/``_`` ignored), each one the rules can give.

    The labels are classify.LABELS: the rules file (``--rules``) tunes what earns each of them but
    adds no others, so any other value would match nothing; it is an OptionError naming them.
    """
    out = []
    for value in values:
        name = value.strip().lower().replace("-", "_")
        if name not in LABELS:
            close = [x for x in LABELS if name and x.startswith(name)]
            close = close or difflib.get_close_matches(name, LABELS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise OptionError(
                f"{flag}: not a label: {value!r}{hint}; the labels are {', '.join(LABELS)}"
            )
        out.append(name)
    return tuple(dict.fromkeys(out))


def parse_confidences(values: Iterable[str], flag: str = "--confidence") -> tuple[str, ...]:
    """Confidence levels as given (``high``, ``medium``, ``low``, ``none``); others: OptionError."""
    out = []
    for value in values:
        name = value.strip().lower()
        if name not in CONFIDENCE_ORDER:
            raise OptionError(
                f"{flag}: not a confidence: {value!r}; choose from "
                + ", ".join(
                    sorted(CONFIDENCE_ORDER, key=CONFIDENCE_ORDER.__getitem__, reverse=True)
                )
            )
        out.append(name)
    return tuple(dict.fromkeys(out))


def parse_conversations(
    values: Iterable[int | str], flag: str = "--conversation"
) -> tuple[int, ...]:
    """Conversation numbers (``#N`` as the tables show them, or ``N``); others: OptionError."""
    out = []
    for value in values:
        text = str(value).strip().removeprefix("#")
        if not text.isdigit() or int(text) < 1:
            raise OptionError(
                f"{flag}: not a conversation number: {value!r}; give the number the findings "
                "show (#2 or 2)"
            )
        out.append(int(text))
    return tuple(dict.fromkeys(out))


def conversation_range(known: Iterable[int]) -> str:
    """What ``--conversation`` (or ``show N``) may name, in words."""
    numbers = sorted(set(known))
    if not numbers:
        return "this analysis has no violation conversation"
    if numbers == list(range(numbers[0], numbers[-1] + 1)):
        if len(numbers) == 1:
            return f"the only conversation is {numbers[0]}"
        return f"the conversations are numbered {numbers[0]} to {numbers[-1]}"
    shown = ", ".join(map(str, numbers[:20])) + (", ..." if len(numbers) > 20 else "")
    return f"the conversations are {shown}"


def name_matches(patterns: Sequence[str], value: object) -> bool:
    """Exact match, or a shell glob (``sbx-0*``) when the pattern has one."""
    if value is None:
        return False
    text = str(value)
    return any(
        fnmatch.fnmatchcase(text, p) if any(c in p for c in "*?[") else text == p for p in patterns
    )


@dataclass(frozen=True)
class Filters:
    """What ``findings``, ``query``, ``timeline`` and the exports may be narrowed to."""

    dst: tuple[AddressPattern, ...] = ()
    src: tuple[AddressPattern, ...] = ()
    host: tuple[str, ...] = ()
    run: tuple[str, ...] = ()
    episode: tuple[str, ...] = ()
    tool: tuple[str, ...] = ()
    label: tuple[str, ...] = ()
    since_ns: int | None = None
    until_ns: int | None = None
    min_confidence: str | None = None
    confidence: tuple[str, ...] = ()
    grep: re.Pattern[str] | None = None
    conversations: tuple[int, ...] = ()
    """``--conversation``: conversation numbers (any of them)."""

    @classmethod
    def build(
        cls,
        *,
        dst: Iterable[str] = (),
        src: Iterable[str] = (),
        host: Iterable[str] = (),
        run: Iterable[str] = (),
        episode: Iterable[str] = (),
        tool: Iterable[str] = (),
        label: Iterable[str] = (),
        since: str | None = None,
        until: str | None = None,
        min_confidence: str | None = None,
        confidence: Iterable[str] = (),
        grep: str | None = None,
        conversation: Iterable[int | str] = (),
        zone: tzinfo = UTC,
        span: SpanSource = None,
    ) -> Filters:
        """Filters from command-line values; a bad value raises OptionError (exit code 2).

        ``span`` (the case's first and last time, or a function giving them) dates a bare time of
        day in ``since``/``until``; see ``parse_bounds``.
        """
        lo, hi = parse_bounds(since, until, zone, span)
        if min_confidence is not None and min_confidence not in CONFIDENCE_ORDER:
            raise OptionError(f"--min-confidence: choose from {', '.join(CONFIDENCE_ORDER)}")
        pattern = None
        if grep is not None:
            try:
                pattern = re.compile(grep)
            except re.error as exc:
                raise OptionError(f"--grep: not a regular expression: {grep!r} ({exc})") from None
        return cls(
            dst=tuple(AddressPattern.parse(d, "--dst") for d in dst),
            src=tuple(AddressPattern.parse(s, "--src", domains=False) for s in src),
            host=tuple(host),
            run=tuple(run),
            episode=tuple(episode),
            tool=tuple(tool),
            label=parse_labels(label),
            since_ns=lo,
            until_ns=hi,
            min_confidence=min_confidence,
            confidence=parse_confidences(confidence),
            grep=pattern,
            conversations=parse_conversations(conversation),
        )

    @property
    def active(self) -> bool:
        return any(
            (
                self.dst,
                self.src,
                self.host,
                self.run,
                self.episode,
                self.tool,
                self.label,
                self.since_ns is not None,
                self.until_ns is not None,
                self.min_confidence,
                self.confidence,
                self.grep,
                self.conversations,
            )
        )

    def describe(self) -> dict[str, Any]:
        """The filters as plain values (for ``--json`` and export metadata)."""
        out: dict[str, Any] = {}
        for name in ("host", "run", "episode", "tool", "label"):
            if getattr(self, name):
                out[name] = list(getattr(self, name))
        if self.dst:
            out["dst"] = [p.text for p in self.dst]
        if self.src:
            out["src"] = [p.text for p in self.src]
        if self.since_ns is not None:
            out["since"] = format_time(self.since_ns)
        if self.until_ns is not None:
            out["until"] = format_time(self.until_ns)
        if self.min_confidence:
            out["min_confidence"] = self.min_confidence
        if self.confidence:
            out["confidence"] = list(self.confidence)
        if self.grep is not None:
            out["grep"] = self.grep.pattern
        if self.conversations:
            out["conversation"] = list(self.conversations)
        return out

    def unknown_conversations(self, known: Iterable[int]) -> OptionError | None:
        """The usage error for ``--conversation`` numbers the analysis does not have (None: all
        known): numbers depend on the analysis options (``--gap``, ``--actions``), so they are
        checked against its findings, not before."""
        present = set(known)
        missing = [n for n in self.conversations if n not in present]
        if not missing:
            return None
        return OptionError(
            f"--conversation: no conversation {', '.join(map(str, missing))} in this analysis; "
            + conversation_range(present)
        )

    def _common(self, row: Row, *, host_fields: Sequence[str], first: str, last: str) -> bool:
        if self.conversations and row.get("conversation_id") not in self.conversations:
            return False
        if self.dst and not any(p.matches(row["dst_ip"], row["dst_domain"]) for p in self.dst):
            return False
        if self.src and not any(
            p.matches(row["src_ip"]) or p.matches(row.get("src_nat_ip")) for p in self.src
        ):
            return False
        if self.host and not any(name_matches(self.host, row.get(f)) for f in host_fields):
            return False
        for name, column in (("run", "run_id"), ("episode", "episode_id"), ("tool", "tool")):
            wanted = getattr(self, name)
            if wanted and not name_matches(wanted, row.get(column)):
                return False
        if self.label:
            labels = set(filter(None, str(row.get("labels") or "").split(",")))
            if not labels & set(self.label):
                return False
        if self.since_ns is not None and (row[last] is None or row[last] < self.since_ns):
            return False
        if self.until_ns is not None and (row[first] is None or row[first] > self.until_ns):
            return False
        if (
            self.min_confidence is not None
            and CONFIDENCE_ORDER.get(str(row.get("confidence")), 0)
            < CONFIDENCE_ORDER[self.min_confidence]
        ):
            return False
        if self.confidence and str(row.get("confidence") or "none") not in self.confidence:
            return False
        return not (self.grep is not None and not self.grep.search(str(row.get("command") or "")))

    def event(self, row: Row) -> bool:
        """A violation event (or an event x candidate pair): times are the event's."""
        return self._common(row, host_fields=("src_host", "host"), first="ts", last="ts")

    def conversation(self, row: Row) -> bool:
        """A conversation: it matches the time filter when it overlaps [since, until]."""
        return self._common(row, host_fields=("src_host", "host"), first="first_ts", last="last_ts")


# --- rows -----------------------------------------------------------------------------------

QUERY = derived(
    "event_id ts conversation_id src_ip src_nat_ip src_port src_host dst_ip dst_port protocol "
    "dst_domain action rule signature labels how",
    CALL_FIELDS,
    "call_ts_start lag_s confidence candidates clock_offset_s source_path source_line",
)
"""One row per violation event: the event, its conversation's labels and its attributed call."""

CANDIDATE_ROWS = derived(
    "event_id ts conversation_id src_ip src_nat_ip src_host dst_ip dst_port protocol dst_domain "
    "action labels rank attributed",
    CALL_FIELDS,
    "call_ts_start call_ts_end lag_s relation",
    [k.name for k in EVIDENCE],
    "score confidence source_path source_line call_source_path call_source_line",
    attributed=pa.bool_(),
)
"""One row per (violation event x candidate call) pair; ``attributed`` marks the chosen call."""


def _table(rows: list[Row], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist(
        [{f.name: r.get(f.name) for f in schema} for r in rows], schema=schema
    )


def violation_rows(result: Result) -> list[Row]:
    """One row per violation event (QUERY columns, times as int ns): the exported attributions'
    rows (``reports.parquet.attribution_rows``), which carry every QUERY column."""
    return attribution_rows(result)


EVENT_NAMES = {
    "event_ts": "ts",
    "event_source_path": "source_path",
    "event_source_line": "source_line",
}
"""A candidate's event columns under the names the event rows (QUERY) give them."""


def candidate_rows(result: Result) -> list[Row]:
    """One row per (violation event, candidate call) pair (CANDIDATE_ROWS columns): the exported
    candidates' rows (``reports.parquet.candidate_rows``), the event's time and place named as
    an event row names them, so the same filters select both."""
    return [{EVENT_NAMES.get(k, k): v for k, v in row.items()} for row in pair_rows(result)]


def select_events(result: Result, filters: Filters, *, candidates: bool = False) -> pa.Table:
    """``query``: violation events (or event x candidate pairs) that pass the filters."""
    if candidates:
        return _table([r for r in candidate_rows(result) if filters.event(r)], CANDIDATE_ROWS)
    return _table([r for r in violation_rows(result) if filters.event(r)], QUERY)


def select_findings(result: Result, filters: Filters) -> pa.Table:
    """``findings``: conversations that pass the filters (the FINDINGS columns)."""
    rows = plain_rows(result.findings)
    keep = [i for i, r in enumerate(rows) if filters.conversation(r)]
    return result.findings.take(pa.array(keep, pa.int64()))


GROUPS = pa.schema(
    [
        pa.field("by", pa.string()),
        pa.field("key", pa.string()),
        pa.field("conversations", pa.int64()),
        pa.field("events", pa.int64()),
        pa.field("high", pa.int64()),
        pa.field("medium", pa.int64()),
        pa.field("low", pa.int64()),
        pa.field("none", pa.int64()),
        pa.field("labels", pa.string()),
        pa.field("first_ts", TS),
        pa.field("last_ts", TS),
        pa.field("calls", pa.int64()),
        pa.field("onsets", pa.int64()),
        pa.field("in_windows", pa.int64()),
        pa.field("expected", pa.float64()),
        pa.field("lift", pa.float64()),
        pa.field("p_value", pa.float64()),
        pa.field("q_value", pa.float64()),
        pa.field("in_flight_fraction", pa.float64()),
        pa.field("min_detectable_lift", pa.float64()),
        pa.field("power_note", pa.string()),
    ]
)
"""``findings --by``: conversations per key, with association with chance where it is defined."""

_GROUP_COLUMN: dict[str, Callable[[Row], list[str]]] = {
    "tool": lambda r: [r["tool"] or "(none)"],
    "run": lambda r: [r["run_id"] or "(none)"],
    "episode": lambda r: [r["episode_id"] or "(none)"],
    "host": lambda r: [r["src_host"] or "(unknown)"],
    "label": lambda r: [x for x in str(r["labels"] or "").split(",") if x] or ["(none)"],
    "confidence": lambda r: [r["confidence"] or "none"],
}
_ASSOCIATION_SCOPE = {"tool": "tool", "run": "run", "episode": "episode"}


def group_findings(
    findings: pa.Table, by: str, associations: Sequence[Association] = ()
) -> pa.Table:
    """Conversations grouped by tool, run, episode, host, label or confidence.

    For tool, run and episode the association with chance (``correlate stats``) is joined: the
    onsets in that key's call windows against what circular shifts give, lift, p and q.
    """
    if by not in _GROUP_COLUMN:
        raise OptionError(f"--by: choose from {', '.join(GROUP_KEYS)}")
    groups: dict[str, list[Row]] = defaultdict(list)
    for row in plain_rows(findings):
        for key in _GROUP_COLUMN[by](row):
            groups[key].append(row)
    scope = _ASSOCIATION_SCOPE.get(by)
    stats = {a.key: a for a in associations if a.scope == scope} if scope else {}
    out = []
    for key, rows in groups.items():
        confidence = Counter(str(r["confidence"]) for r in rows)
        labels = Counter(x for r in rows for x in str(r["labels"] or "").split(",") if x)
        a = stats.get(key)
        out.append(
            {
                "by": by,
                "key": key,
                "conversations": len(rows),
                "events": sum(int(r["event_count"]) for r in rows),
                **{c: confidence.get(c, 0) for c in ("high", "medium", "low", "none")},
                "labels": ",".join(sorted(labels)) or None,
                "first_ts": min(r["first_ts"] for r in rows),
                "last_ts": max(r["last_ts"] for r in rows),
                "calls": a.calls if a else None,
                "onsets": a.violations if a else None,
                "in_windows": a.observed if a else None,
                "expected": a.expected if a else None,
                "lift": a.lift if a else None,
                "p_value": a.p_value if a else None,
                "q_value": a.q_value if a else None,
                "in_flight_fraction": a.in_flight_fraction if a else None,
                "min_detectable_lift": a.min_detectable_lift if a else None,
                "power_note": a.power_note if a and a.cannot_tell else None,
            }
        )
    out.sort(
        key=lambda r: (
            r["p_value"] if r["p_value"] is not None else 2.0,
            -r["conversations"],
            r["key"],
        )
    )
    return _table(out, GROUPS)


__all__ = [
    "CANDIDATE_ROWS",
    "GROUPS",
    "GROUP_KEYS",
    "QUERY",
    "AddressPattern",
    "Filters",
    "conversation_range",
    "display_zone",
    "format_time",
    "group_findings",
    "parse_bounds",
    "parse_conversations",
    "select_events",
    "select_findings",
]
