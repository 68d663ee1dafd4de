"""Time-versioned identity map: which hosts held a source address at a given time.

Identity is a many-to-many relation over time: (address, time) -> the set of hosts holding it.
ROCK on Ray/Docker gives every sandbox on a Docker host that host's address, Kubernetes nodes SNAT
their pods, a NAT gateway puts a subnet behind one EIP; so several hosts often hold one address at
once, and every one of them is a candidate for traffic from it.

Rows come from an inventory (explicit validity and, optionally, a ``kind``) and from trajectories
that name their address (valid from the first call or identity line seen with it). A lease ends on
evidence that it ended, never because another host appeared on the address:

- inventory rows end at their ``valid_to`` (open when empty);
- a trajectory lease on an address no other host ever held stays open both ways (a firewall clock
  running behind, or a miner talking for hours after its call, stays on its sandbox);
- a trajectory lease on an address other hosts also held ends ``grace`` after the host's last
  call (``--lease-grace``, default 10 minutes); the address's first holder is open to the past.

Overlapping leases of different hosts mean the address is shared at that moment (both are
candidates); leases that follow each other are an exclusive re-use (DHCP-like), each in its time.
``kind`` (``sandbox``, ``docker_host``, ``node``, ``nat``) is shown in reasons; an inventory's
``sandbox`` rows are exclusive, so two of them overlapping on one address are a contradiction the
inventory loader rejects.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from .schema import HOSTS, concat, conform, int_ns, plain_rows

NS_MIN = int(np.iinfo(np.int64).min)
NS_MAX = int(np.iinfo(np.int64).max)
NS = 1_000_000_000
DEFAULT_LEASE_GRACE_NS = 600 * NS
"""How long a trajectory's lease on a shared or re-used address outlives the host's last call."""

EXCLUSIVE_KIND = "sandbox"
SHARED_KINDS = ("docker_host", "node", "nat")
KINDS = (EXCLUSIVE_KIND, *SHARED_KINDS)


class Activity:
    """When each host's calls ran: its call starts in order, with the running maximum of ends."""

    def __init__(self, calls: pa.Table | None) -> None:
        self.starts: dict[str, np.ndarray] = {}
        self.reach: dict[str, np.ndarray] = {}
        if calls is None or calls.num_rows == 0:
            return
        start = int_ns(calls.column("ts_start"), NS_MIN)
        end = np.maximum(int_ns(calls.column("ts_end"), NS_MIN), start)
        frame = pd.DataFrame({"host": calls.column("host").to_pandas(), "s": start, "e": end})
        frame = frame[frame["host"].notna() & (frame["s"] > NS_MIN)]
        for host, group in frame.sort_values(["host", "s"], kind="stable").groupby("host"):
            self.starts[str(host)] = group["s"].to_numpy()
            self.reach[str(host)] = np.maximum.accumulate(group["e"].to_numpy())

    def first(self, host: str) -> int | None:
        """When ``host``'s first call started (None: no call)."""
        starts = self.starts.get(host)
        return None if starts is None or not len(starts) else int(starts[0])

    def last_before(self, host: str, since: int, until: int) -> int:
        """The latest end among ``host``'s calls that start before ``until`` (``since`` if none
        ends later)."""
        starts = self.starts.get(host)
        if starts is None:
            return since
        j = int(np.searchsorted(starts, until, side="left"))
        return max(since, int(self.reach[host][j - 1])) if j else since


def build_identity(
    tables: Sequence[pa.Table],
    calls: pa.Table | None = None,
    *,
    grace_ns: int = DEFAULT_LEASE_GRACE_NS,
) -> pa.Table:
    """Merge identity rows into one map, with trajectory leases bounded by evidence (see module)."""
    hosts = concat(list(tables), HOSTS)
    if hosts.num_rows == 0:
        return hosts
    rows = plain_rows(hosts)
    for row in rows:
        row["_from"] = NS_MIN if row["valid_from"] is None else row["valid_from"]
    rows.sort(
        key=lambda r: (
            r["ip"],
            r["_from"],
            r["origin"] or "",
            r["host"],
            r["source_path"] or "",
            r["source_line"] or 0,
        )
    )
    seen: set[tuple[object, ...]] = set()
    unique = []
    for row in rows:
        key = (row["host"], row["ip"], row["kind"], row["origin"], row["_from"], row["valid_to"])
        if key not in seen:
            seen.add(key)
            unique.append(row)
    by_ip: dict[str, list[dict[str, object]]] = {}
    for row in unique:
        by_ip.setdefault(str(row["ip"]), []).append(row)
    activity = Activity(calls)
    addresses: dict[str, set[str]] = {}
    for row in unique:
        if row["origin"] == "trajectory":
            addresses.setdefault(str(row["host"]), set()).add(str(row["ip"]))
    only = {host for host, ips in addresses.items() if len(ips) == 1}
    for rows_of_ip in by_ip.values():
        _bound_trajectory_leases(rows_of_ip, activity, grace_ns, only)
    for row in unique:
        del row["_from"]
    return conform(pa.Table.from_pylist(unique), HOSTS)


def _bound_trajectory_leases(
    rows: list[dict[str, object]], activity: Activity, grace_ns: int, only: set[str]
) -> None:
    """Set the validity of one address's trajectory rows from the hosts' activity (see module).

    A trajectory row's activity spans from its sighting to the host's last call before the
    host's next sighting on the address. Activity that overlaps another host's row means the
    address is shared: the lease ends ``grace_ns`` after that last call. Otherwise the address
    was re-used: the lease lasts until the next host appears (open when none does). The
    address's first holder is open to the past. Inventory rows keep their own validity and
    count as activity over it.

    A host whose calls began before its address was first seen, and that is seen on no other
    address (``only``), held it from its first call: the sighting's time may be off (a log in
    another zone, a late identity line), the calls' own times are not.
    """
    rows.sort(key=lambda r: int(r["_from"]))  # type: ignore[call-overload]
    spans: list[tuple[int, int]] = []
    seen: set[object] = set()
    for k, row in enumerate(rows):
        lo = int(row["_from"])  # type: ignore[call-overload]
        if row["origin"] == "trajectory" and row["host"] not in seen and row["host"] in only:
            began = activity.first(str(row["host"]))
            if began is not None and began < lo:
                row["note"] = _join_notes(
                    row["note"],
                    f"the host's calls began {(lo - began) / NS:g}s before this address was "
                    "seen: lease from its first call",
                )
                lo = began
                row["_from"] = row["valid_from"] = began
        seen.add(row["host"])
        if row["origin"] != "trajectory":
            hi = NS_MAX if row["valid_to"] is None else int(row["valid_to"])  # type: ignore[call-overload]
        else:
            again = [int(r["_from"]) for r in rows[k + 1 :] if r["host"] == row["host"]]  # type: ignore[call-overload]
            hi = activity.last_before(str(row["host"]), lo, min(again) if again else NS_MAX)
        spans.append((lo, hi))
    earliest = min((lo for lo, _ in spans), default=NS_MIN)
    for k, row in enumerate(rows):
        if row["origin"] != "trajectory":
            continue
        lo, hi = spans[k]
        others = [spans[j] for j, r in enumerate(rows) if r["host"] != row["host"]]
        notes: list[str] = []
        if lo == earliest:
            row["valid_from"] = None
            notes.append(
                "the only holder of this address: open to the past"
                if not others
                else "first holder of this address seen: open to the past"
            )
        if row["valid_to"] is None and others:
            if any(o_lo <= hi and lo <= o_hi for o_lo, o_hi in others):
                row["valid_to"] = hi + grace_ns
                notes.append(
                    f"address shared with other hosts: lease ends {grace_ns / NS:g}s after "
                    "this host's last call"
                )
            else:
                after = [o_lo for o_lo, _ in others if o_lo > hi]
                if after:
                    row["valid_to"] = min(after)
                    notes.append("address re-used: lease ends when the next host appears")
        if notes:
            row["note"] = _join_notes(row["note"], *notes)


def _join_notes(*notes: object) -> str:
    return "; ".join(str(n) for n in notes if n)


def holders(
    identity: pa.Table, ips: Sequence[str | None], times_ns: np.ndarray
) -> list[tuple[str, ...]]:
    """Every host holding each (ip, time), sorted by name; empty when none does."""
    n = len(ips)
    found: list[tuple[str, ...]] = [()] * n
    if identity.num_rows == 0 or n == 0:
        return found
    table = pd.DataFrame(
        {
            "ip": identity.column("ip").to_pylist(),
            "host": identity.column("host").to_pylist(),
            "lo": int_ns(identity.column("valid_from"), NS_MIN),
            "hi": int_ns(identity.column("valid_to"), NS_MAX),
        }
    )
    events = pd.DataFrame(
        {"ip": list(ips), "t": np.asarray(times_ns, dtype=np.int64), "row": np.arange(n)}
    )
    pairs = events.merge(table, on="ip", how="inner")
    pairs = pairs[(pairs["lo"] <= pairs["t"]) & (pairs["t"] < pairs["hi"])]
    pairs = pairs.drop_duplicates(["row", "host"]).sort_values(["row", "host"], kind="stable")
    names: dict[int, list[str]] = {}
    for row, host in zip(pairs["row"].tolist(), pairs["host"].tolist(), strict=True):
        names.setdefault(row, []).append(host)
    for row, held in names.items():
        found[row] = tuple(held)
    return found


def resolve(
    identity: pa.Table, ips: Sequence[str | None], times_ns: np.ndarray
) -> tuple[list[str | None], list[str]]:
    """The host holding each (ip, time) alone, and a status: mapped | shared | unmapped.

    ``shared`` means several hosts hold the address at that time; the host is left empty then
    (``holders`` gives them all).
    """
    hosts: list[str | None] = []
    status: list[str] = []
    for names in holders(identity, ips, times_ns):
        hosts.append(names[0] if len(names) == 1 else None)
        status.append("mapped" if len(names) == 1 else "shared" if names else "unmapped")
    return hosts, status


def kinds_of(identity: pa.Table) -> dict[tuple[str, str], str]:
    """(host, ip) -> the kind an inventory gave it (rows without a kind are left out)."""
    if identity.num_rows == 0:
        return {}
    keys = zip(
        identity.column("host").to_pylist(),
        identity.column("ip").to_pylist(),
        identity.column("kind").to_pylist(),
        strict=True,
    )
    return {(h, ip): k for h, ip, k in keys if k}
