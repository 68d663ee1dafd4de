"""Checked conversions of single field values, shared by loaders; each raises RowError with a reason."""

from __future__ import annotations

import ipaddress
import json
from functools import lru_cache
from typing import Any

IANA_PROTOCOLS = {
    0: "hopopt",
    1: "icmp",
    2: "igmp",
    6: "tcp",
    17: "udp",
    47: "gre",
    50: "esp",
    58: "ipv6-icmp",
    132: "sctp",
}


# Spellings of one protocol that logs use, mapped to the IANA keyword the numbers map to.
PROTOCOL_ALIASES = {"icmpv6": "ipv6-icmp", "icmp6": "ipv6-icmp", "ipv6icmp": "ipv6-icmp"}


SURROGATE_NOTE = "lone surrogate escape (\\ud800-\\udfff) replaced by U+FFFD"


def without_surrogates(value: Any) -> tuple[Any, bool]:
    """``value`` (parsed JSON) with lone surrogates in its strings replaced by U+FFFD, and whether
    any were: JSON may escape them (``"\\ud800"``) but they are not text Arrow can store."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value), True
        return value, False
    if isinstance(value, list):
        changed = False
        items = []
        for item in value:
            item, hit = without_surrogates(item)
            changed |= hit
            items.append(item)
        return items, changed
    if isinstance(value, dict):
        changed = False
        out = {}
        for key, item in value.items():
            key, hit_key = without_surrogates(key)
            item, hit = without_surrogates(item)
            changed |= hit or hit_key
            out[key] = item
        return out, changed
    return value, False


def may_hold_surrogates(text: str) -> bool:
    """Whether JSON text has a ``\\uD...`` escape (only then can a lone surrogate come out)."""
    return "\\ud" in text or "\\uD" in text


class RowError(ValueError):
    """A record of the right format with a bad value; the message is the reject reason."""


def is_blank(value: Any) -> bool:
    """True for values a log uses to mean "nothing": None, empty or whitespace text, ``-``."""
    return value is None or (isinstance(value, str) and value.strip() in ("", "-"))


def text(value: Any) -> str | None:
    """A field as text, None when blank; numbers are spelled as the log would."""
    if is_blank(value):
        return None
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value).strip() if isinstance(value, str) else str(value)


def integer(
    value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None
) -> int | None:
    """A field as an int (digits in a string are fine), None when blank; range-checked."""
    if is_blank(value):
        return None
    if isinstance(value, bool):
        raise RowError(f"{name} is not an integer: {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise RowError(f"{name} is not an integer: {value!r}")
        number = int(value)
    elif isinstance(value, int):
        number = value
    elif isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            raise RowError(f"{name} is not an integer: {value!r}") from None
    else:
        raise RowError(f"{name} is not an integer: {value!r}")
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise RowError(f"{name} out of range: {number}")
    if not -(2**63) <= number < 2**63:
        raise RowError(f"{name} out of range: {number}")
    return number


def port(value: Any, name: str) -> int | None:
    """A TCP/UDP port number 0..65535, None when blank."""
    return integer(value, name, minimum=0, maximum=65535)


def counter(value: Any, name: str) -> int | None:
    """A non-negative byte or packet counter, None when blank."""
    return integer(value, name, minimum=0)


@lru_cache(maxsize=1 << 16)
def _canonical_ip(text: str) -> str | None:
    """Canonical form of an address text, None when it is none (memoised: logs repeat a few).
    An IPv4-mapped IPv6 address (``::ffff:192.168.10.13``, RFC 4291 2.5.5.2: how a dual-stack
    socket reports an IPv4 peer) is the IPv4 host it names, so it is given in its IPv4 form."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


@lru_cache(maxsize=1 << 12)
def _ipv4_mapped(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return False
    return isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None


def is_ipv4_mapped(value: Any) -> bool:
    """Whether ``value`` is written as an IPv4-mapped IPv6 address (``::ffff:a.b.c.d``)."""
    return isinstance(value, str) and ":" in value and _ipv4_mapped(value)


def ip(value: Any, name: str, *, required: bool = False) -> str | None:
    """An IPv4/IPv6 address in canonical text form (IPv6 compressed, lower case; an IPv4-mapped
    IPv6 address in its IPv4 form: ``ip_note`` says so on the row)."""
    if is_blank(value):
        if required:
            raise RowError(f"{name} is missing")
        return None
    canonical = _canonical_ip(value if type(value) is str else str(value))
    if canonical is None:
        raise RowError(f"{name} is not an IP address: {value!r}")
    return canonical


def ip_note(value: Any, name: str) -> str | None:
    """The row note for an address field ``name`` written IPv4-mapped, which ``ip`` stores in
    its IPv4 form (one text per field, so the load summary counts them); None otherwise."""
    if is_ipv4_mapped(value):
        return f"{name}: IPv4-mapped IPv6 address stored as IPv4"
    return None


def protocol(value: Any) -> str | None:
    """Protocol as a lower-case name; IANA numbers become names (6 -> tcp)."""
    if is_blank(value):
        return None
    name = str(value).strip().lower()
    if name.isdigit():
        return IANA_PROTOCOLS.get(int(name), name)
    return PROTOCOL_ALIASES.get(name, name)
