"""Arrow schemas of the normalised tables: the only contract between loaders, engine and reports."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

TS = pa.timestamp("ns", tz="UTC")
"""Every time in correlate: nanoseconds since the Unix epoch, UTC."""

PROVENANCE = [
    pa.field("source_format", pa.string()),
    pa.field("source_path", pa.string()),
    pa.field("source_line", pa.int64()),
]

NETWORK_EVENTS = pa.schema(
    [
        pa.field("event_id", pa.int64()),
        pa.field("ts", TS),
        pa.field("ts_end", TS),
        pa.field("src_ip", pa.string()),
        pa.field("src_port", pa.int32()),
        pa.field("src_nat_ip", pa.string()),
        pa.field("dst_ip", pa.string()),
        pa.field("dst_port", pa.int32()),
        pa.field("protocol", pa.string()),
        pa.field("direction", pa.string()),
        pa.field("action", pa.string()),
        pa.field("action_raw", pa.string()),
        pa.field("rule", pa.string()),
        pa.field("signature", pa.string()),
        pa.field("category", pa.string()),
        pa.field("dst_domain", pa.string()),
        pa.field("app", pa.string()),
        pa.field("bytes_out", pa.int64()),
        pa.field("bytes_in", pa.int64()),
        pa.field("packets_out", pa.int64()),
        pa.field("packets_in", pa.int64()),
        pa.field("observer", pa.string()),
        pa.field("host_hint", pa.string()),
        pa.field("flow_key", pa.string()),
        pa.field("ts_note", pa.string()),
        *PROVENANCE,
    ]
)
"""One row per flow record, alert or log line.

``src_ip`` is the sender's own (private) address when the log gives it; ``src_nat_ip`` is the
address the firewall saw it as after translation (Alibaba ``src_ip`` beside ``src_private_ip``).
``flow_key`` links records of one flow across files (see ENRICHMENT).
"""

ENRICHMENT = pa.schema(
    [
        pa.field("flow_key", pa.string()),
        pa.field("ts", TS),
        pa.field("dst_domain", pa.string()),
        pa.field("app", pa.string()),
        *PROVENANCE,
    ]
)
"""Facts about a flow logged elsewhere (Zeek dns/ssl by ``uid``, Suricata dns/tls by ``flow_id``).

``flow_key`` is namespaced by the loader (``zeek:<uid>``, ``suricata:<flow_id>``); network events
with the same ``flow_key`` and no ``dst_domain`` (or ``app``) get it filled after loading.
"""

TOOL_CALLS = pa.schema(
    [
        pa.field("call_id", pa.string()),
        pa.field("run_id", pa.string()),
        pa.field("episode_id", pa.string()),
        pa.field("step", pa.int64()),
        pa.field("ts_start", TS),
        pa.field("ts_end", TS),
        pa.field("ts_kind", pa.string()),
        pa.field("tool", pa.string()),
        pa.field("command", pa.string()),
        pa.field("arguments", pa.string()),
        pa.field("output", pa.string()),
        pa.field("exit_code", pa.int64()),
        pa.field("is_error", pa.bool_()),
        pa.field("host", pa.string()),
        pa.field("host_ip", pa.string()),
        pa.field("model", pa.string()),
        pa.field("train_step", pa.int64()),
        pa.field("ts_note", pa.string()),
        *PROVENANCE,
    ]
)
"""One row per tool invocation. ``ts_kind``: exact | bracket | step | inferred."""

HOSTS = pa.schema(
    [
        pa.field("host", pa.string()),
        pa.field("ip", pa.string()),
        pa.field("valid_from", TS),
        pa.field("valid_to", TS),
        pa.field("kind", pa.string()),
        pa.field("origin", pa.string()),
        pa.field("note", pa.string()),
        *PROVENANCE,
    ]
)
"""Time-versioned identity map: ``host`` held ``ip`` during [valid_from, valid_to); null = open.

``kind`` says how the host holds the address: ``sandbox`` (its own, exclusive), ``docker_host``,
``node`` or ``nat`` (shared with every other host listed on it), null (unspecified: shared when
two hosts' rows overlap in time). See ``identity.py``."""

CALL_KEY = ("call_id", "run_id", "episode_id", "step")
"""What names one tool call across tables (a call id alone may repeat across runs)."""

CALL_FIELDS = (*CALL_KEY, "host", "tool", "command")
"""The call a candidate, an attribution or a finding names, as those tables carry it."""


def _call_fields(names: Iterable[str]) -> list[pa.Field]:
    """``names`` typed as the tool calls table types them."""
    return [TOOL_CALLS.field(name) for name in names]


@dataclass(frozen=True)
class EvidenceKind:
    """One kind of evidence a candidate call carries, defined here once.

    ``attribute.py`` scores it and says it in a finding's reasons; the candidates table (and the
    findings table, for the attributed call) carries its column; every report shows its flag
    (``reports.evidence.evidence_flags``). A new kind added to ``EVIDENCE`` reaches every output.
    """

    name: str
    """Its column in the candidates table (a string; null when the call has none of it)."""
    points: Mapping[str, float]
    """Points per value (``*``: any value); ``attribute.py`` may scale them (see its docstring)."""
    flags: Mapping[str, str]
    """How a value shows in a candidate's evidence (``identity+ip+agrees``); ``*``: any other
    value; a value without a flag shows as itself."""
    reasons: Mapping[str, str]
    """A finding's reason per value of its attributed call (``*``: any value), formatted with
    the event's columns and ``value``; a value without one adds no reason."""
    in_findings: bool = True
    """Whether the findings table carries the attributed call's value in this column."""

    def flag(self, value: object) -> str | None:
        """The flag of ``value`` (None: the call has none of this evidence)."""
        if value is None:
            return None
        text = str(value)
        return self.flags.get(text, self.flags.get("*", text))

    def points_of(self, value: object) -> float:
        """The points ``value`` earns before any scaling (0 for none)."""
        if value is None:
            return 0.0
        return self.points.get(str(value), self.points.get("*", 0.0))

    def reason(self, value: object, event: Mapping[str, Any]) -> str | None:
        """The reason ``value`` gives about ``event`` (None: it says nothing)."""
        if value is None:
            return None
        template = self.reasons.get(str(value), self.reasons.get("*"))
        return None if template is None else template.format_map({**event, "value": value})


IDENTITY = EvidenceKind(
    "identity",
    points={"match": 1.0, "shared": 1.0},
    flags={"match": "identity"},
    reasons={"shared": "identity is shared: the call is chosen by its evidence, not its address"},
    in_findings=False,
)
"""match (the source address was the call's sandbox's alone), shared (held by k hosts then, the
call's among them: the point is split k ways) or time-only (no identity). A finding's own
``identity`` column is its conversation's identity status instead (see FINDINGS)."""

INDICATOR = EvidenceKind(
    "indicator",
    points={"ip": 4.0, "domain": 4.0, "cidr": 3.0, "port": 1.0},
    flags={},
    reasons={
        "ip": "destination {dst_ip} appears in the call",
        "domain": "destination domain {dst_domain} appears in the call",
        "cidr": "the call names a network that holds {dst_ip}",
        "port": "the call names port {dst_port}",
    },
)
"""What of the destination the call's command or arguments name: ip | domain | cidr | port."""

AGREEMENT = EvidenceKind(
    "agreement",
    points={"*": 2.0},
    flags={"*": "agrees"},
    reasons={"*": "the call's command agrees with the traffic ({value})"},
)
"""The call's behaviour pattern that agrees with its conversation's label
(``ssh_tunnel call, reverse_tunnel traffic``); half the points on a shared address when the call
names other destinations but not this one."""

EVIDENCE = (IDENTITY, INDICATOR, AGREEMENT)
"""Every kind of evidence, in the order the tables carry and the reports show them."""


def evidence_fields(*, findings: bool = False) -> list[pa.Field]:
    """The evidence columns of the candidates table (or, with ``findings``, of the findings)."""
    return [pa.field(k.name, pa.string()) for k in EVIDENCE if k.in_findings or not findings]


CANDIDATES = pa.schema(
    [
        pa.field("conversation_id", pa.int64()),
        pa.field("event_id", pa.int64()),
        pa.field("event_ts", TS),
        pa.field("event_source_path", pa.string()),
        pa.field("event_source_line", pa.int64()),
        *_call_fields(CALL_FIELDS),
        pa.field("call_ts_start", TS),
        pa.field("call_ts_end", TS),
        pa.field("call_source_path", pa.string()),
        pa.field("call_source_line", pa.int64()),
        pa.field("lag_s", pa.float64()),
        pa.field("relation", pa.string()),
        *evidence_fields(),
        pa.field("score", pa.float64()),
        pa.field("rank", pa.int32()),
    ]
)
"""One row per (violation event x tool call) pair inside the window."""

ATTRIBUTIONS = pa.schema(
    [
        pa.field("event_id", pa.int64()),
        pa.field("conversation_id", pa.int64()),
        pa.field("ts", TS),
        pa.field("src_ip", pa.string()),
        pa.field("src_host", pa.string()),
        pa.field("dst_ip", pa.string()),
        pa.field("dst_port", pa.int32()),
        pa.field("protocol", pa.string()),
        pa.field("dst_domain", pa.string()),
        pa.field("action", pa.string()),
        pa.field("source_format", pa.string()),
        pa.field("source_path", pa.string()),
        pa.field("source_line", pa.int64()),
        pa.field("clock_offset_s", pa.float64()),
        pa.field("how", pa.string()),
        *_call_fields(CALL_FIELDS[:-1]),
        pa.field("lag_s", pa.float64()),
        pa.field("confidence", pa.string()),
    ]
)
"""One row per violation event: the call it is attributed to and how (direct | inherited |
ambiguous | none)."""

FINDINGS = pa.schema(
    [
        pa.field("conversation_id", pa.int64()),
        pa.field("first_ts", TS),
        pa.field("last_ts", TS),
        pa.field("src_ip", pa.string()),
        pa.field("src_nat_ip", pa.string()),
        pa.field("src_host", pa.string()),
        pa.field("dst_ip", pa.string()),
        pa.field("dst_port", pa.int32()),
        pa.field("protocol", pa.string()),
        pa.field("dst_domain", pa.string()),
        pa.field("dst_scope", pa.string()),
        pa.field("event_count", pa.int64()),
        pa.field("actions", pa.string()),
        pa.field("rule", pa.string()),
        pa.field("signature", pa.string()),
        pa.field("first_source_path", pa.string()),
        pa.field("first_source_line", pa.int64()),
        pa.field("identity", pa.string()),
        pa.field("src_hosts", pa.string()),
        pa.field("address_holders", pa.int64()),
        *_call_fields(CALL_FIELDS),
        pa.field("lag_s", pa.float64()),
        pa.field("relation", pa.string()),
        *evidence_fields(findings=True),
        pa.field("labels", pa.string()),
        pa.field("confidence", pa.string()),
        pa.field("candidates", pa.int64()),
        pa.field("tied_calls", pa.string()),
        pa.field("other_hosts_calls", pa.int64()),
        pa.field("reasons", pa.string()),
    ]
)
"""One row per violation conversation (src, dst, dport, proto, idle gap) with its best call."""


def derived(*groups: str | Iterable[str], **types: pa.DataType) -> pa.Schema:
    """A derived table's columns in the order named, each typed as the tables above type it.

    A group is a string of names separated by spaces, or names (``CALL_FIELDS``); ``types`` gives
    the columns only the derived table has. Query rows and exports name their columns once and
    take every type from here, so a column's type is never restated.
    """
    known: dict[str, pa.DataType] = {"call_ts_start": TS, "call_ts_end": TS}
    for source in (TOOL_CALLS, NETWORK_EVENTS, CANDIDATES, ATTRIBUTIONS, FINDINGS):
        known.update({f.name: f.type for f in source})
    known.update(types)
    names = [n for g in groups for n in (g.split() if isinstance(g, str) else g)]
    return pa.schema([pa.field(name, known[name]) for name in names])


def empty(schema: pa.Schema) -> pa.Table:
    """An empty table of ``schema``."""
    return schema.empty_table()


def from_columns(columns: Mapping[str, Sequence[Any]], schema: pa.Schema) -> pa.Table:
    """Build a table of ``schema`` from column lists; absent columns become nulls."""
    n = len(next(iter(columns.values()))) if columns else 0
    arrays = []
    for field in schema:
        values = columns.get(field.name)
        if values is None:
            arrays.append(pa.nulls(n, type=field.type))
        else:
            arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Return ``table`` with exactly ``schema``'s columns, in order, cast to its types."""
    n = table.num_rows
    arrays = []
    for field in schema:
        if field.name in table.column_names:
            arrays.append(table.column(field.name).cast(field.type))
        else:
            arrays.append(pa.nulls(n, type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def concat(tables: Sequence[pa.Table], schema: pa.Schema) -> pa.Table:
    """Concatenate tables of ``schema`` (an empty list gives an empty table)."""
    parts = [conform(t, schema) for t in tables if t.num_rows]
    if not parts:
        return empty(schema)
    return pa.concat_tables(parts).combine_chunks()


def plain_rows(table: pa.Table) -> list[dict[str, Any]]:
    """Rows as dicts of plain Python values, timestamps as int ns (no precision lost)."""
    columns = []
    for field in table.schema:
        column = table.column(field.name)
        if pa.types.is_timestamp(field.type):
            column = column.cast(pa.int64())
        columns.append(column)
    return pa.Table.from_arrays(columns, names=table.column_names).to_pylist()


def int_ns(column: pa.ChunkedArray | pa.Array, fill: int) -> np.ndarray:
    """A timestamp column as int64 nanoseconds since the epoch, with ``fill`` where it is null."""
    return (
        pc.fill_null(pc.cast(column, pa.int64()), fill)
        .to_numpy(zero_copy_only=False)
        .astype(np.int64)
    )
