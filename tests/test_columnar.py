"""The vectorised checks of loaders/columnar.py agree with the per-value converters they stand in
for: a value a shortcut regex passes is one its converter gives back unchanged."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from correlate.loaders import fields
from correlate.loaders.columnar import (
    BAD,
    IPV4,
    LOWER_NAME,
    PLAIN_TEXT,
    epoch_seconds,
    ip_or_bad,
    mapped,
    plain_int,
)

OCTET = st.one_of(st.integers(0, 300).map(str), st.integers(0, 99).map(lambda n: f"0{n}"))
DOTTED = st.lists(OCTET, min_size=3, max_size=5).map(".".join)
TEXTS = st.one_of(
    st.text(max_size=12),
    st.text(alphabet=" \t\n\x0b\x1c\x1f\x85\xa0-abcXYZ.é\u3000", max_size=6),
    st.sampled_from(["-", "", " ", "a", " a", "a ", "a b", "-x", "x-", "a\n"]),
)


def converted(values: list, convert, same=None) -> tuple[list, list]:
    ok = np.ones(len(values), dtype=bool)
    out = mapped(pa.array(values, pa.string()), convert, ok, same=same).to_pylist()
    return out, ok.tolist()


def reference(values: list, convert) -> tuple[list, list]:
    out, ok = [], []
    for v in values:
        got = None if v is None else convert(v)
        ok.append(got is not BAD)
        out.append(None if got is BAD else got)
    return out, ok


@settings(max_examples=300)
@given(st.lists(st.one_of(st.none(), DOTTED, st.sampled_from(["::1", "2001:DB8::1"])), max_size=8))
def test_the_ipv4_shortcut_equals_fields_ip(values):
    assert converted(values, ip_or_bad, IPV4) == reference(values, ip_or_bad)


@settings(max_examples=300)
@given(st.lists(st.one_of(st.none(), TEXTS), max_size=8))
def test_the_plain_text_shortcut_equals_fields_text(values):
    assert converted(values, fields.text, PLAIN_TEXT) == reference(values, fields.text)


def lower(value):
    return (fields.text(value) or "").lower() or None


@settings(max_examples=300)
@given(st.lists(st.one_of(st.none(), TEXTS, st.from_regex(r"[a-z0-9.-]{1,8}", fullmatch=True))))
def test_the_lower_name_shortcut_equals_lower_text(values):
    assert converted(values, lower, LOWER_NAME) == reference(values, lower)


NUMBERS = st.one_of(
    st.none(),
    st.integers(-5, 10**20).map(str),
    st.sampled_from(["", "-", " 1", "+1", "1_0", "٣", "00012", "65535", "65536", "1e3"]),
)


@settings(max_examples=300)
@given(st.lists(NUMBERS, max_size=8), st.sampled_from([(5, 65535), (18, None)]))
def test_plain_integers_equal_fields_integer_or_go_line_by_line(values, limits):
    digits, maximum = limits
    ok = np.ones(len(values), dtype=bool)
    out = plain_int(pa.array(values, pa.string()), ok, digits, maximum).to_pylist()
    for value, got, fine in zip(values, out, ok.tolist(), strict=True):
        if not fine:
            continue  # the per-line reader decides
        bound = 65535 if maximum else None
        assert got == fields.integer(value, "n", minimum=0, maximum=bound)


@settings(max_examples=200)
@given(st.lists(NUMBERS, max_size=8), st.booleans())
def test_epoch_seconds_vouch_only_for_plain_in_range_seconds(values, blank_ok):
    ok = np.ones(len(values), dtype=bool)
    out = epoch_seconds(pa.array(values, pa.string()), ok, blank_ok=blank_ok).to_pylist()
    for value, got, fine in zip(values, out, ok.tolist(), strict=True):
        if fine and got is not None:
            assert value.isascii() and value.isdigit() and int(value) == got
            assert got * 10**9 < 2**63
        elif fine:
            assert blank_ok and fields.is_blank(value)
