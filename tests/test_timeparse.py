"""Timestamp conversions: epoch units, exact decimals, ISO 8601 zones, durations, zone names."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from correlate.errors import OptionError
from correlate.timeparse import (
    TimeParseError,
    epoch_unit_by_magnitude,
    format_duration,
    ns_to_iso,
    parse_duration,
    parse_epoch,
    parse_iso,
    parse_time,
    resolve_zone,
    zone_name,
)

T0 = 1_764_655_200_000_000_000  # 2025-12-02T06:00:00Z, the start of the sample scenario
SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
NS_MIN = -(2**63) + 1
NS_MAX = 2**63 - 2
DST_NOTE = "local time ambiguous or skipped by DST"


# --- epoch numbers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "ns", "unit"),
    [
        ("1764655200", T0, "s"),
        ("1764655200123", T0 + 123_000_000, "ms"),
        ("1764655200123456", T0 + 123_456_000, "us"),
        ("1764655200123456789", T0 + 123_456_789, "ns"),
        (1764655200, T0, "s"),
        (1764655200123, T0 + 123_000_000, "ms"),
        (1764655200123456789, T0 + 123_456_789, "ns"),
    ],
)
def test_epoch_unit_is_chosen_by_magnitude_with_a_note_when_it_differs_from_expected(
    value, ns, unit
):
    got, note = parse_epoch(value, expected="s")
    assert got == ns
    if unit == "s":
        assert note is None
    else:
        assert note == f"epoch unit {unit} by magnitude (format documents s)"


@pytest.mark.parametrize(
    ("value", "expected", "ns"),
    [
        ("1764655200123", "ms", T0 + 123_000_000),
        ("1764655200123456", "us", T0 + 123_456_000),
        ("1764655200123456789", "ns", T0 + 123_456_789),
    ],
)
def test_epoch_in_the_documented_unit_has_no_note(value, expected, ns):
    assert parse_epoch(value, expected=expected) == (ns, None)


def test_seconds_value_where_nanoseconds_are_documented_gets_a_note():
    ns, note = parse_epoch("1764655200", expected="ns")
    assert ns == T0
    assert note == "epoch unit s by magnitude (format documents ns)"


@pytest.mark.parametrize(
    ("value", "unit"),
    [
        (99_999_999_999, "s"),
        (100_000_000_000, "ms"),
        (99_999_999_999_999, "ms"),
        (100_000_000_000_000, "us"),
        (99_999_999_999_999_999, "us"),
        (100_000_000_000_000_000, "ns"),
        (-1_764_655_200_123, "ms"),  # magnitude, not sign
        (0, "s"),
    ],
)
def test_magnitude_band_boundaries(value, unit):
    assert epoch_unit_by_magnitude(value) == unit


@pytest.mark.parametrize(
    ("value", "unit", "ns"),
    [
        ("1764655200", "ms", 1_764_655_200_000_000),  # forced unit beats magnitude
        ("1764655200", "us", 1_764_655_200_000),
        ("1764655200", "ns", 1_764_655_200),
        ("1764655200123", "s", None),  # 1.7e21 ns: out of range
        ("1.5", "ms", 1_500_000),
    ],
)
def test_forced_epoch_unit_is_used_without_a_note(value, unit, ns):
    if ns is None:
        with pytest.raises(TimeParseError, match="out of range"):
            parse_epoch(value, unit=unit)
    else:
        assert parse_epoch(value, unit=unit) == (ns, None)


def test_unknown_epoch_unit_is_an_option_error():
    with pytest.raises(OptionError, match="unknown epoch unit"):
        parse_epoch("1764655200", unit="min")


@pytest.mark.parametrize(
    ("value", "ns"),
    [
        ("1764655200.123456789", T0 + 123_456_789),  # a float would round this
        ("1764655200.000000001", T0 + 1),
        ("1764655200.999999999", T0 + 999_999_999),
        ("+1764655200.5", T0 + 500_000_000),
        (" 1764655200 ", T0),
        ("1.7646552e9", T0),
        ("-1.5", -1_500_000_000),
        (1764655200.5, T0 + 500_000_000),
        (0.1, 100_000_000),  # repr of the float, not its binary expansion
    ],
)
def test_epoch_decimal_strings_are_exact(value, ns):
    assert parse_epoch(value)[0] == ns


@settings(max_examples=200, deadline=None)
@given(st.integers(-(10**9) * 10**9 + 1, 9 * 10**18))
def test_epoch_seconds_with_nine_decimals_round_trip_exactly(ns):
    seconds, frac = divmod(abs(ns), 1_000_000_000)
    text = f"{'-' if ns < 0 else ''}{seconds}.{frac:09d}"
    assert parse_epoch(text, unit="s") == (ns, None)


@settings(max_examples=200, deadline=None)
@given(st.integers(NS_MIN, NS_MAX))
def test_epoch_nanosecond_integers_round_trip_exactly(ns):
    assert parse_epoch(str(ns), unit="ns") == (ns, None)
    assert parse_epoch(ns, unit="ns") == (ns, None)


@pytest.mark.parametrize(
    "value",
    [
        "abc",
        "",
        "   ",
        "1.2.3",
        "1764655200s",
        "0x10",
        True,
        None,
        [1764655200],
        float("nan"),
        float("inf"),
        "1e30",  # far beyond 2262
        str(2**63 - 1),  # int64 max is not a real time
        str(-(2**63)),  # int64 min is NaT in Arrow
    ],
)
def test_invalid_epoch_values_raise_time_parse_error(value):
    with pytest.raises(TimeParseError):
        parse_epoch(value)


# --- ISO 8601 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "2025-12-02T06:00:00Z",
        "2025-12-02T06:00:00z",
        "2025-12-02t06:00:00Z",
        "2025-12-02 06:00:00Z",
        "2025-12-02T06:00Z",
        "2025-12-02T06:00:00 UTC",
        "2025-12-02T06:00:00GMT",
        "2025-12-02T14:00:00+0800",
        "2025-12-02T14:00:00+08:00",
        "2025-12-02T14:00:00+08",
        "2025-12-02T01:00:00-05:00",
        "2025-12-01T20:30:00-0930",
        "2025-12-02T06:00:00+00:00",
        "  2025-12-02T06:00:00.000Z  ",
    ],
)
def test_iso_with_explicit_zone_is_the_same_instant_without_a_note(text):
    assert parse_iso(text) == (T0, None)


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("2025-12-02T06:00:00.123456789Z", T0 + 123_456_789),
        ("2025-12-02T06:00:00.000000001Z", T0 + 1),
        ("2025-12-02T06:00:00.5Z", T0 + 500_000_000),
        ("2025-12-02T06:00:00,25Z", T0 + 250_000_000),
        ("2025-12-02T14:00:00.123456789+08:00", T0 + 123_456_789),
        ("2025-12-02T06:00:00.1234567899Z", T0 + 123_456_789),  # beyond ns: truncated
        ("1969-12-31T23:59:59.5Z", -500_000_000),  # before the epoch
        ("1970-01-01T00:00:00Z", 0),
    ],
)
def test_iso_fractions_are_exact_to_the_nanosecond(text, ns):
    assert parse_iso(text)[0] == ns


ISO_INSTANTS = st.datetimes(
    min_value=datetime(1678, 1, 2), max_value=datetime(2261, 12, 30), timezones=st.just(UTC)
)


@settings(max_examples=200, deadline=None)
@given(
    ISO_INSTANTS,
    st.integers(0, 999_999_999),
    st.integers(-(23 * 60 + 59), 23 * 60 + 59),
    st.booleans(),
)
def test_iso_with_any_offset_and_nine_digit_fraction_matches_datetime_arithmetic(
    instant, frac, offset_min, colon
):
    instant = instant.replace(microsecond=0)
    local = instant.astimezone(timezone(timedelta(minutes=offset_min)))
    sign = "+" if offset_min >= 0 else "-"
    hh, mm = divmod(abs(offset_min), 60)
    offset = f"{sign}{hh:02d}:{mm:02d}" if colon else f"{sign}{hh:02d}{mm:02d}"
    text = f"{local:%Y-%m-%dT%H:%M:%S}.{frac:09d}{offset}"
    expected = (instant - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(seconds=1) * 10**9 + frac
    assert parse_iso(text) == (expected, None)


def test_naive_iso_defaults_to_utc_and_says_so():
    assert parse_iso("2025-12-02T06:00:00") == (T0, "no zone: assumed UTC")


def test_naive_iso_is_read_in_default_tz_and_the_note_names_it():
    assert parse_iso("2025-12-02T14:00:00", default_tz=SHANGHAI) == (
        T0,
        "no zone: assumed Asia/Shanghai",
    )


def test_naive_iso_with_fixed_offset_default_tz():
    assert parse_iso("2025-12-02T01:00:00", default_tz=resolve_zone("-05:00")) == (
        T0,
        "no zone: assumed UTC-05:00",
    )


def test_explicit_zone_wins_over_default_tz():
    assert parse_iso("2025-12-02T06:00:00Z", default_tz=SHANGHAI) == (T0, None)


def test_dst_ambiguous_local_time_takes_the_earlier_offset_and_says_so():
    # 2025-11-02 01:30 happens twice in New York: first in EDT (-04:00), then in EST (-05:00).
    ns, note = parse_iso("2025-11-02T01:30:00", default_tz=NEW_YORK)
    assert ns == parse_iso("2025-11-02T05:30:00Z")[0]
    assert note == f"no zone: assumed America/New_York ({DST_NOTE}: took the earlier offset)"


def test_dst_skipped_local_time_is_flagged():
    # 2025-03-09 02:30 does not exist in New York (clocks jump 02:00 -> 03:00).
    ns, note = parse_iso("2025-03-09T02:30:00", default_tz=NEW_YORK)
    assert ns == parse_iso("2025-03-09T07:30:00Z")[0]  # read with the pre-jump EST offset
    assert DST_NOTE in note


def test_unambiguous_local_time_in_a_dst_zone_has_no_dst_note():
    ns, note = parse_iso("2025-07-01T12:00:00", default_tz=NEW_YORK)
    assert ns == parse_iso("2025-07-01T16:00:00Z")[0]
    assert note == "no zone: assumed America/New_York"


@pytest.fixture
def shanghai_process_zone(monkeypatch):
    """Run with the process's local zone set to Asia/Shanghai; restore it afterwards."""
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    try:
        yield
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.usefixtures("shanghai_process_zone")
def test_naive_parsing_ignores_the_process_local_zone():
    assert time.timezone == -8 * 3600  # the process zone really is UTC+8 here
    assert parse_iso("2025-12-02T06:00:00") == (T0, "no zone: assumed UTC")
    assert parse_iso("2025-12-02T01:00:00", default_tz=resolve_zone("-05:00"))[0] == T0
    assert parse_time("2025-12-02T06:00:00", default_tz=UTC)[0] == T0
    assert parse_epoch("1764655200") == (T0, None)
    assert ns_to_iso(T0) == "2025-12-02T06:00:00Z"


@pytest.mark.parametrize(
    "text",
    [
        "2025-13-02T06:00:00Z",  # month 13
        "2025-02-30T06:00:00Z",  # no such day
        "2025-12-02T24:00:00Z",
        "2025-12-02T06:60:00Z",
        "2025-12-02T06:00:60Z",  # leap seconds are not supported
        "2025-12-02",  # a date is not a time
        "06:00:00",
        "2025-12-02T06:00:00+25:00",
        "2025-12-02T06:00:00 PST",  # abbreviations are ambiguous
        "2025/12/02 06:00:00",
        "yesterday",
        "",
        "9999-12-31T23:59:59Z",  # valid date, beyond timestamp[ns]
        "0001-01-01T00:00:00Z",
        "1677-09-21T00:00:00Z",
    ],
)
def test_invalid_iso_raises_time_parse_error(text):
    with pytest.raises(TimeParseError):
        parse_iso(text)


@pytest.mark.parametrize("value", [None, 12, b"2025-12-02T06:00:00Z"])
def test_parse_iso_rejects_non_strings(value):
    with pytest.raises(TimeParseError):
        parse_iso(value)


# --- parse_time dispatch ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "ns", "note"),
    [
        ("2025-12-02T06:00:00Z", T0, None),
        ("2025-12-02T06:00:00", T0, "no zone: assumed UTC"),
        ("1764655200", T0, None),
        (1764655200, T0, None),
        (1764655200.25, T0 + 250_000_000, None),
        ("1764655200123", T0 + 123_000_000, "epoch unit ms by magnitude (format documents s)"),
    ],
)
def test_parse_time_reads_epoch_numbers_and_iso_text(value, ns, note):
    assert parse_time(value) == (ns, note)


def test_parse_time_passes_expected_unit_and_epoch_unit_through():
    assert parse_time("1764655200123456789", expected_unit="ns") == (T0 + 123_456_789, None)
    assert parse_time("1764655200", epoch_unit="ms") == (1_764_655_200_000_000, None)


@pytest.mark.parametrize("value", [None, True, [], {}, "not a time"])
def test_parse_time_rejects_non_times(value):
    with pytest.raises(TimeParseError):
        parse_time(value)


# --- durations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("10", 10_000_000_000),
        ("10s", 10_000_000_000),
        (" 10 s ", 10_000_000_000),
        ("1.5s", 1_500_000_000),
        ("-2.5s", -2_500_000_000),
        ("+3s", 3_000_000_000),
        ("500ms", 500_000_000),
        ("250us", 250_000),
        ("250µs", 250_000),
        ("7ns", 7),
        ("2m", 120_000_000_000),
        ("2min", 120_000_000_000),
        ("1h", 3_600_000_000_000),
        ("1d", 86_400_000_000_000),
        ("0", 0),
        ("0.000000001s", 1),  # exact decimal, no float rounding
    ],
)
def test_parse_duration(text, ns):
    assert parse_duration(text) == ns


@pytest.mark.parametrize("text", ["", "abc", "10 seconds", "1e3s", "1,5s", "s", "5 5s", "1.s"])
def test_invalid_duration_is_an_option_error(text):
    with pytest.raises(OptionError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (10_000_000_000, "10s"),
        (0, "0s"),
        (1_500_000_000, "1500ms"),
        (500_000_000, "500ms"),
        (-500_000_000, "-500ms"),
        (-2_500_000_000, "-2500ms"),
        (3_600_000_000_000, "3600s"),
    ],
)
def test_format_duration(ns, text):
    assert format_duration(ns) == text


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.integers(-(10**6), 10**6).map(lambda s: s * 1_000_000_000),  # whole seconds
        st.integers(-999, 999).map(lambda ms: ms * 1_000_000),  # whole ms below 1 s
        st.integers(-999_999, 999_999).map(lambda ms: ms * 1_000_000),  # ms below 1000 s
    )
)
def test_format_duration_round_trips_through_parse_duration(ns):
    assert parse_duration(format_duration(ns)) == ns


@pytest.mark.parametrize(
    "ns",
    [
        2_000_001_000,  # 2.000001 s is written "2s"
        1_234_567_000_000,  # 1234.567 s is written "1234.57s"
        1,  # 1 ns is written "1e-09s"
        1_000_000_000_000_500_000,  # written "1e+09s"
    ],
)
def test_format_duration_is_exact_for_every_nanosecond_value(ns):
    assert parse_duration(format_duration(ns)) == ns


# --- zones ------------------------------------------------------------------------------------


def test_resolve_zone_iana_name():
    zone = resolve_zone("Asia/Shanghai")
    assert zone == SHANGHAI
    assert zone_name(zone) == "Asia/Shanghai"
    assert datetime(2025, 12, 2, tzinfo=zone).utcoffset() == timedelta(hours=8)


@pytest.mark.parametrize("name", ["UTC", "utc", " UTC ", "Z", "GMT"])
def test_resolve_zone_utc_spellings(name):
    zone = resolve_zone(name)
    assert zone is UTC
    assert zone_name(zone) == "UTC"


@pytest.mark.parametrize(
    ("name", "offset"),
    [
        ("+08:00", timedelta(hours=8)),
        ("+0800", timedelta(hours=8)),
        ("+08", timedelta(hours=8)),
        ("-05:00", timedelta(hours=-5)),
        ("+05:30", timedelta(hours=5, minutes=30)),
        ("-09:30", -timedelta(hours=9, minutes=30)),
        ("+23:59", timedelta(hours=23, minutes=59)),
        ("+00:00", timedelta(0)),
    ],
)
def test_resolve_zone_fixed_offsets(name, offset):
    assert resolve_zone(name).utcoffset(None) == offset


@pytest.mark.parametrize(
    "name", ["Mars/Olympus_Mons", "", "   ", "../../etc/passwd", "+24:00", "-25:00", "+8", "CEST"]
)
def test_resolve_zone_unknown_raises_option_error(name):
    with pytest.raises(OptionError):
        resolve_zone(name)


@pytest.mark.parametrize("name", ["+08:60", "+0899", "-05:75"])
def test_resolve_zone_rejects_offset_minutes_of_60_or_more(name):
    with pytest.raises(OptionError):
        resolve_zone(name)


# --- ns_to_iso --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "1970-01-01T00:00:00Z"),
        (T0, "2025-12-02T06:00:00Z"),
        (T0 + 500_000_000, "2025-12-02T06:00:00.5Z"),
        (T0 + 123_456_789, "2025-12-02T06:00:00.123456789Z"),
        (T0 + 1, "2025-12-02T06:00:00.000000001Z"),
        (T0 + 100_000, "2025-12-02T06:00:00.0001Z"),
        (-1, "1969-12-31T23:59:59.999999999Z"),
        (-500_000_000, "1969-12-31T23:59:59.5Z"),
    ],
)
def test_ns_to_iso_writes_utc_with_the_shortest_exact_fraction(ns, text):
    assert ns_to_iso(ns) == text


@settings(max_examples=200, deadline=None)
@given(st.integers(parse_iso("1678-01-01T00:00:00Z")[0], parse_iso("2262-01-01T00:00:00Z")[0]))
def test_ns_to_iso_round_trips_through_parse_iso(ns):
    assert parse_iso(ns_to_iso(ns)) == (ns, None)
