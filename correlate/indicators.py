"""Network indicators named in a tool call's text, matched against a violation's destination.

A destination the call names (its IP address or domain) is the strongest evidence there is that
the call caused the traffic. This module finds such mentions; it does not guess.
"""

from __future__ import annotations

import ipaddress
import re

_IPV4 = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?:/(\d{1,2}))?(?![\d.])")
_IPV6 = re.compile(
    r"(?<![0-9A-Fa-f:])((?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4})(?:/(\d{1,3}))?(?![0-9A-Fa-f:])"
)


def addresses_in(text: str) -> set[str]:
    """IPv4/IPv6 addresses written in ``text`` (canonical form); CIDRs are kept as networks."""
    found: set[str] = set()
    for pattern in (_IPV4, _IPV6):
        for match in pattern.finditer(text):
            address, prefix = match.group(1), match.group(2)
            try:
                if prefix is not None:
                    found.add(str(ipaddress.ip_network(f"{address}/{prefix}", strict=False)))
                else:
                    found.add(str(ipaddress.ip_address(address)))
            except ValueError:
                continue
    return found


def names_destination(text: str | None, dst_ip: str | None, dst_domain: str | None) -> str | None:
    """How ``text`` names the destination: ``ip`` (the address or a network holding it), ``domain``, or None."""
    if not text:
        return None
    if dst_ip:
        found = addresses_in(text)
        if dst_ip in found:
            return "ip"
        try:
            target = ipaddress.ip_address(dst_ip)
        except ValueError:
            target = None
        if target is not None:
            for item in found:
                if "/" in item:
                    network = ipaddress.ip_network(item)
                    if (
                        target.version == network.version
                        and target in network
                        and network.prefixlen > 0
                    ):
                        return "ip"
    if dst_domain:
        domain = dst_domain.lower().rstrip(".")
        if re.search(rf"(?<![\w.-]){re.escape(domain)}(?![\w-])", text.lower()):
            return "domain"
    return None
