"""The OTLP loader's shortcuts give exactly what the general code gives."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from correlate.loaders import fields, otlp_json
from correlate.timeparse import TimeParseError, parse_epoch

RAW = st.one_of(
    st.integers(0, 2**64).map(str),
    st.integers(10**16, 2**63).map(str),
    st.integers(0, 10**19).map(lambda n: str(n).zfill(19)),
    st.text("0123456789 .+-e\u0663", max_size=21),
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=True),
)


def outcome(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except TimeParseError as exc:
        return ("error", str(exc))


@given(raw=RAW, unit=st.sampled_from(["auto", "ns", "us", "s"]))
def test_epoch_shortcut_equals_parse_epoch(raw, unit):
    assert outcome(otlp_json._epoch_ns, raw, unit) == outcome(
        parse_epoch, raw, unit=unit, expected="ns"
    )


@pytest.mark.parametrize(
    "value",
    ["10.0.0.1", "10.0.0.01", "2001:DB8::1", " 10.0.0.2 ", "-", "", "nope", None, 5, ["10.0.0.3"]],
)
def test_cached_ips_equal_uncached(value):
    def plain(v):
        values = v if isinstance(v, list) else [v]
        out = []
        for item in values:
            try:
                address = fields.ip(item, "host.ip")
            except fields.RowError:
                continue
            if address:
                out.append(address)
        return out

    for _ in range(2):  # the second time from the cache
        assert otlp_json._ips(value) == plain(value)
