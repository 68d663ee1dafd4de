"""Shared field conversions used by every loader."""

from __future__ import annotations

import re

import pytest

from correlate.loaders import fields


@pytest.mark.parametrize("text", ["ICMPv6", "icmp6", "58", " ipv6-icmp "])
def test_every_spelling_of_icmpv6_is_one_name(text: str) -> None:
    assert fields.protocol(text) == "ipv6-icmp"


def test_addresses_are_canonical_and_bad_ones_rejected_every_time() -> None:
    assert fields.ip(" 2001:DB8:0::1 ", "src") == "2001:db8::1"
    for _ in range(2):  # the second answer comes from the cache and must be the same error
        with pytest.raises(
            fields.RowError, match=re.escape("src is not an IP address: '39.108.XX.XX'")
        ):
            fields.ip("39.108.XX.XX", "src")
    with pytest.raises(fields.RowError, match="dst is missing"):
        fields.ip("-", "dst", required=True)
