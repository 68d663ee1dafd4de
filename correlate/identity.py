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

from .schema import HOSTS, concat, conform, plain_rows

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
        key = (row["host"], row["ip"], row["origin"], row["_from"], row["valid_to"])
        if key not in seen:
            seen.add(key)
            unique.append(row)
    by_ip: dict[str, list[dict[str, object]]] = {}
    for row in unique:
        by_ip.setdefault(str(row["ip"]), []).append(row)
    for rows_of_ip in by_ip.values():
        for row in rows_of_ip:
            if row["origin"] != "trajectory":
                continue
            others = [r for r in rows_of_ip if r["host"] != row["host"]]
            later = [r["_from"] for r in others if r["_from"] > row["_from"]]  # type: ignore[operator]
            if later and row["valid_to"] is None:
                row["valid_to"] = min(later)  # type: ignore[type-var]
            if not any(r["_from"] <= row["_from"] for r in others):  # type: ignore[operator]
                row["valid_from"] = None
                row["note"] = (
                    "first owner of this address seen in the trajectories: open to the past"
                )
    for row in unique:
        del row["_from"]
    return conform(pa.Table.from_pylist(unique), HOSTS)


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
    if len(pairs):
        owners = pairs.groupby("row", sort=False)["host"].agg(["min", "nunique"])
        for row, host, distinct in zip(owners.index, owners["min"], owners["nunique"], strict=True):
            if distinct == 1:
                hosts[int(row)] = host
                status[int(row)] = "mapped"
            else:
                status[int(row)] = "ambiguous"
    return hosts, status
