"""Zeek ``dns.log`` (TSV or JSON) as enrichment: which name each DNS exchange asked for.

Rows (``enrichment``), per record with a ``query`` (lower case, no trailing dot):

- ``zeek:<uid>`` -> dst_domain = query, app ``dns``. This names the DNS exchange itself (the
  connection to the resolver), not the connection that follows it.
- ``ip:<address>`` for every address in ``answers`` -> dst_domain = query, app null: "a later
  connection to this address was probably to this name". Enrichment matches by exact
  ``flow_key`` only, so these rows are loaded and unused until network events are also looked up
  by ``ip:<dst_ip>``.

Records without a query are skipped ("no query name"). The header and JSON spellings are read as
for ``zeek_conn``. No options. Field reference and sources: ``tests/data/zeek_dns/README.md``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..sources import Source
from . import fields
from .base import LoadOptions, LoadResult
from .columnar import NULL_TEXT, constant, mapped
from .zeek_conn import (
    Enrichment,
    FactsOrSkip,
    domain_name,
    read_zeek_enrichment,
    sniff_enrichment,
)

name = "zeek_dns"
kind = "enrichment"
description = "Zeek dns.log (TSV or JSON): query names for the DNS flow and its answer addresses"

_DNS_KEYS = {"qtype", "qtype_name", "qclass", "qclass_name", "trans_id", "rcode", "answers"}


def sniff(head: bytes, filename: str) -> float:
    """Score: a Zeek TSV header with ``#path dns``, or ``query`` with other DNS fields."""
    return sniff_enrichment(head, "dns", {"uid", "query"}, _DNS_KEYS)


def read(source: Source, options: LoadOptions, *, fast: bool = True) -> LoadResult:
    """Read a Zeek dns.log into ``enrichment`` rows keyed ``zeek:<uid>`` and ``ip:<answer>``
    (column-wise; ``fast=False``: every line by the per-line reader, the reference)."""
    return read_zeek_enrichment(source, options, SPEC, fast=fast)


def _facts(record: dict[str, Any], uid: str) -> FactsOrSkip:
    query = domain_name(record.get("query"))
    if query is None:
        return "no query name"
    found: list[tuple[str, str | None, str | None]] = [(f"zeek:{uid}", query, "dns")]
    answers = record.get("answers")
    if isinstance(answers, str):  # a TSV file without #types: the vector is still comma-joined
        answers = answers.split(",")
    seen: set[str] = set()
    for answer in answers if isinstance(answers, list) else []:
        try:
            address = fields.ip(answer, "answers")
        except fields.RowError:
            continue  # a CNAME, PTR or TXT answer: not an address
        if address and address not in seen:
            seen.add(address)
            found.append((f"ip:{address}", query, None))
    return found


@lru_cache(maxsize=1 << 16)
def _query(value: str | None) -> str | None:
    return domain_name(value)


@lru_cache(maxsize=1 << 16)
def _answer(value: str | None) -> str | None:
    try:
        return fields.ip(value, "answers")
    except fields.RowError:
        return None


def _columns(cols: dict[str, pa.Array], keys: pa.Array, ok: np.ndarray) -> tuple[pa.Array, Any]:
    """``_facts`` column-wise: the query per distinct value, answers flattened and deduplicated."""
    query = mapped(cols["query"], _query)
    reasons = pc.if_else(pc.is_null(query), "no query name", NULL_TEXT)

    def build(indices: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
        picks = pa.array(indices)
        names = query.take(picks)
        answers = cols["answers"].take(picks)
        flat = mapped(pc.list_flatten(answers), _answer)
        parents = np.asarray(pc.list_parent_indices(answers).to_numpy(zero_copy_only=False))
        found = np.flatnonzero(np.asarray(pc.is_valid(flat).to_numpy(zero_copy_only=False)))
        if len(found):  # the first of each address per record, in answer order
            codes = np.asarray(pc.fill_null(pc.dictionary_encode(flat).indices, 0).to_numpy())
            pair = parents[found].astype(np.int64) * (int(codes.max()) + 1) + codes[found]
            found = np.sort(found[np.unique(pair, return_index=True)[1]])
        owner = parents[found].astype(np.int64)
        addresses = flat.take(pa.array(found, pa.int64()))
        m = len(indices)
        records = np.concatenate([np.arange(m), owner])
        order = pa.array(np.argsort(records, kind="stable"))
        values = {
            "flow_key": pa.concat_arrays(
                [keys.take(picks), pc.binary_join_element_wise("ip:", addresses, "")]
            ),
            "dst_domain": pa.concat_arrays([names, names.take(pa.array(owner))]),
            "app": pa.concat_arrays([constant("dns", m), pa.nulls(len(owner), pa.string())]),
        }
        return {k: v.take(order) for k, v in values.items()}, records[order.to_numpy()]

    return reasons, build


SPEC = Enrichment(
    name=name,
    path="dns",
    json_fields=pa.schema([("query", pa.string()), ("answers", pa.list_(pa.string()))]),
    facts=_facts,
    columns=_columns,
    lists=frozenset({"answers"}),
)
