"""Time-versioned identity map: which sandbox/host owned a source address at a given time.

Rows come from an inventory (explicit validity) and from trajectories that name their address
(valid from the first call seen with it). A trajectory-derived lease is open-ended until another
host is seen with the same address; the first owner of an address is also open to the past, so
that a firewall clock running behind cannot push an event out of its lease.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .schema import HOSTS, concat

NS_MIN = int(np.iinfo(np.int64).min)
NS_MAX = int(np.iinfo(np.int64).max)


def ns_or(column: pa.ChunkedArray | pa.Array, fill: int) -> np.ndarray:
    """A timestamp column as int64 ns, with ``fill`` where it is null."""
    return (
        pc.fill_null(pc.cast(column, pa.int64()), fill)
        .to_numpy(zero_copy_only=False)
        .astype(np.int64)
    )


def build_identity(tables: Sequence[pa.Table]) -> pa.Table:
    """Merge identity rows into one map with closed-off trajectory leases, sorted and deduplicated."""
    hosts = concat(list(tables), HOSTS)
    if hosts.num_rows == 0:
        return hosts
    rows = hosts.to_pylist()
    starts = ns_or(hosts.column("valid_from"), NS_MIN)
    for row, start in zip(rows, starts, strict=True):
        row["_from"] = int(start)
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
    seen: set[tuple[str, str, str | None, object]] = set()
    unique = []
    for row in rows:
        key = (row["host"], row["ip"], row["origin"], row["valid_to"])
        if key not in seen:
            seen.add(key)
            unique.append(row)
    for row in unique:
        if row["origin"] != "trajectory":
            continue
        others = [r for r in unique if r["ip"] == row["ip"] and r["host"] != row["host"]]
        later = [r["_from"] for r in others if r["_from"] > row["_from"]]
        if later and row["valid_to"] is None:
            row["valid_to"] = pd.Timestamp(min(later), tz="UTC").to_pydatetime()
        if not any(r["_from"] <= row["_from"] for r in others):
            row["valid_from"] = None
            row["note"] = "first owner of this address seen in the trajectories: open to the past"
    for row in unique:
        del row["_from"]
    return pa.Table.from_pylist(unique, schema=HOSTS)


def resolve(
    identity: pa.Table, ips: Sequence[str | None], times_ns: np.ndarray
) -> tuple[list[str | None], list[str]]:
    """The host owning each (ip, time), and a status: mapped | ambiguous | unmapped.

    ``ambiguous`` means two hosts claim the address at that time; the host is left empty then.
    """
    n = len(ips)
    hosts: list[str | None] = [None] * n
    status = ["unmapped"] * n
    if identity.num_rows == 0 or n == 0:
        return hosts, status
    table = pd.DataFrame(
        {
            "ip": identity.column("ip").to_pylist(),
            "host": identity.column("host").to_pylist(),
            "lo": ns_or(identity.column("valid_from"), NS_MIN),
            "hi": ns_or(identity.column("valid_to"), NS_MAX),
        }
    )
    events = pd.DataFrame(
        {"ip": list(ips), "t": np.asarray(times_ns, dtype=np.int64), "row": np.arange(n)}
    )
    pairs = events.merge(table, on="ip", how="inner")
    pairs = pairs[(pairs["lo"] <= pairs["t"]) & (pairs["t"] < pairs["hi"])]
    for row, group in pairs.groupby("row", sort=False):
        owners = sorted(set(group["host"]))
        if len(owners) == 1:
            hosts[int(row)] = owners[0]
            status[int(row)] = "mapped"
        else:
            status[int(row)] = "ambiguous"
    return hosts, status
