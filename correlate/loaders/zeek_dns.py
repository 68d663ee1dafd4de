"""Zeek ``dns.log`` (TSV or JSON) as enrichment: which name each DNS exchange asked for.

Sources checked: ``DNS::Info`` in zeek/zeek ``scripts/base/protocols/dns/main.zeek``: ``ts``,
``uid`` (the DNS exchange's own connection), ``query`` ("the domain name that is the subject of
the DNS query"), ``answers`` ("the set of resource descriptions in the query answer", a
``vector[string]`` holding addresses and names), ``qtype_name``, ``rcode_name``; real files
SuperCowPowers/zat ``data/dns.log`` and ``data/json/dns.log`` (tests/data/zeek_dns). The TSV
header and JSON spellings are read as for ``zeek_conn``.

Rows (``enrichment``), per record with a ``query``:

- ``zeek:<uid>`` -> dst_domain = query (lower case, no trailing dot), app ``dns``. This names the
  DNS exchange itself (the connection to the resolver), not the connection that follows it.
- ``ip:<address>`` for every address in ``answers`` -> dst_domain = query, app null: "a later
  connection to this address was probably to this name". The pipeline matches enrichment by exact
  ``flow_key`` only, so these rows take effect once network events are also looked up by
  ``ip:<dst_ip>``; until then they are loaded and unused.

Records without a query are skipped ("no query name"). No options.
"""

from __future__ import annotations

from typing import Any

from ..sources import Source
from . import fields
from .base import LoadOptions, LoadResult
from .zeek_conn import FactsOrSkip, domain_name, read_zeek_enrichment, sniff_enrichment

name = "zeek_dns"
kind = "enrichment"
description = "Zeek dns.log (TSV or JSON): query names for the DNS flow and its answer addresses"

_DNS_KEYS = {"qtype", "qtype_name", "qclass", "qclass_name", "trans_id", "rcode", "answers"}


def sniff(head: bytes, filename: str) -> float:
    """Score: a Zeek TSV header with ``#path dns``, or ``query`` with other DNS fields."""
    return sniff_enrichment(head, "dns", {"uid", "query"}, _DNS_KEYS)


def read(source: Source, options: LoadOptions) -> LoadResult:
    """Read a Zeek dns.log into ``enrichment`` rows keyed ``zeek:<uid>`` and ``ip:<answer>``."""
    return read_zeek_enrichment(source, options, name, "dns", _facts)


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
