"""Which network events are violations, and where their destination lies (metadata, internal, external)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import pyarrow as pa
import pyarrow.compute as pc

from .errors import OptionError

DEFAULT_INTERNAL = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",  # shared address space (carrier-grade NAT; cloud-internal services)
    "169.254.0.0/16",  # link-local, where most clouds put instance metadata
    "127.0.0.0/8",
    "fc00::/7",
    "fe80::/10",
    "::1/128",
)
METADATA_ADDRESSES = (
    "100.100.100.200",  # Alibaba Cloud ECS metadata
    "169.254.169.254",  # AWS, GCP, Azure IMDS, OpenStack
    "169.254.170.2",  # AWS ECS task metadata
    "168.63.129.16",  # Azure WireServer
    "fd00:ec2::254",  # AWS IMDS over IPv6
)
DEFAULT_ACTIONS = ("denied", "alerted")


@dataclass(frozen=True)
class ViolationPolicy:
    """What counts as a violation: a verdict in ``actions`` on traffic that is not inbound."""

    actions: tuple[str, ...] = DEFAULT_ACTIONS
    internal_cidrs: tuple[str, ...] = field(default=DEFAULT_INTERNAL)

    @classmethod
    def with_internal(
        cls, extra: Iterable[str], actions: Sequence[str] = DEFAULT_ACTIONS
    ) -> ViolationPolicy:
        """The default internal ranges plus ``extra`` (validated)."""
        cidrs = list(DEFAULT_INTERNAL)
        for text in extra:
            try:
                cidrs.append(str(ipaddress.ip_network(text.strip(), strict=False)))
            except ValueError:
                raise OptionError(
                    f"--internal-cidr: not a network: {text!r} (write e.g. 10.8.0.0/16)"
                ) from None
        return cls(actions=tuple(actions), internal_cidrs=tuple(dict.fromkeys(cidrs)))


@lru_cache(maxsize=64)
def _networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


def scope_of(address: str | None, policy: ViolationPolicy) -> str:
    """``metadata``, ``internal`` or ``external`` for an address (``unknown`` when missing)."""
    if address is None:
        return "unknown"
    if address in METADATA_ADDRESSES:
        return "metadata"
    ip = ipaddress.ip_address(address)
    if any(ip in net for net in _networks(policy.internal_cidrs) if net.version == ip.version):
        return "internal"
    return "external"


def select_violations(events: pa.Table, policy: ViolationPolicy) -> pa.Table:
    """Events whose verdict is in the policy's actions and that did not come in from outside.

    Adds ``dst_scope``. An event with direction ``unknown`` counts unless its source is external
    and its destination internal (that is inbound traffic).
    """
    chosen = events.filter(
        pc.is_in(events.column("action"), value_set=pa.array(list(policy.actions)))
    )
    chosen = chosen.filter(
        pc.not_equal(pc.fill_null(chosen.column("direction"), "unknown"), "inbound")
    )
    dst_scope = [scope_of(a, policy) for a in chosen.column("dst_ip").to_pylist()]
    src_scope = [scope_of(a, policy) for a in chosen.column("src_ip").to_pylist()]
    directions = chosen.column("direction").to_pylist()
    keep = [
        not (d == "unknown" and s == "external" and t in ("internal", "metadata"))
        for d, s, t in zip(directions, src_scope, dst_scope, strict=True)
    ]
    chosen = chosen.append_column("dst_scope", pa.array(dst_scope, pa.string()))
    return chosen.filter(pa.array(keep, pa.bool_()))
