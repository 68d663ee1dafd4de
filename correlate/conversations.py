"""Group violation events into conversations: same (src, dst, dport, proto), split by an idle gap."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from .schema import int_ns

DEFAULT_GAP_NS = 600 * 1_000_000_000
"""Ten minutes: longer than a miner's or a tunnel's reconnect interval, shorter than a new attempt."""

KEY = ("src_ip", "dst_ip", "dst_port", "protocol")


def assign_conversations(violations: pa.Table, gap_ns: int = DEFAULT_GAP_NS) -> pa.Table:
    """Sort violations by (conversation, time) and add ``conversation_id`` and ``conversation_seq``.

    A new conversation starts when the key changes or when an event starts more than ``gap_ns``
    after the previous event of the same key ended. Ids are numbered from 1 by first time, then key.
    """
    n = violations.num_rows
    if n == 0:
        return violations.append_column("conversation_id", pa.array([], pa.int64())).append_column(
            "conversation_seq", pa.array([], pa.int64())
        )
    ts = int_ns(violations.column("ts"), 0)
    ends = np.maximum(int_ns(violations.column("ts_end"), np.iinfo(np.int64).min), ts)
    keys = [violations.column(k).to_pylist() for k in KEY]
    key_rows = [tuple("" if v is None else str(v) for v in row) for row in zip(*keys, strict=True)]
    source = violations.column("source_path").to_pylist()
    line = violations.column("source_line").to_pylist()
    order = sorted(range(n), key=lambda i: (key_rows[i], ts[i], source[i] or "", line[i] or 0))
    group = np.empty(n, dtype=np.int64)
    current = -1
    previous_key = None
    previous_end = 0
    for i in order:
        if key_rows[i] != previous_key or ts[i] - previous_end > gap_ns:
            current += 1
            previous_end = ends[i]
        else:
            previous_end = max(previous_end, ends[i])
        previous_key = key_rows[i]
        group[i] = current
    # Renumber conversations by (first time, key) so ids read in time order.
    firsts: dict[int, tuple[int, tuple[str, ...]]] = {}
    for i in order:
        firsts.setdefault(int(group[i]), (int(ts[i]), key_rows[i]))
    renumber = {g: new for new, g in enumerate(sorted(firsts, key=lambda g: firsts[g]), start=1)}
    conversation = np.array([renumber[int(g)] for g in group], dtype=np.int64)
    final = sorted(range(n), key=lambda i: (conversation[i], ts[i], source[i] or "", line[i] or 0))
    seq = np.empty(n, dtype=np.int64)
    counter: dict[int, int] = {}
    for i in final:
        counter[conversation[i]] = counter.get(conversation[i], 0) + 1
        seq[i] = counter[conversation[i]]
    table = violations.append_column("conversation_id", pa.array(conversation)).append_column(
        "conversation_seq", pa.array(seq)
    )
    return table.take(pa.array(final, pa.int64()))
