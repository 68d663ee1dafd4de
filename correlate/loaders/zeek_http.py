"""Zeek ``http.log`` (TSV or JSON) as enrichment: the ``Host`` header of each connection.

Sources checked: ``HTTP::Info`` in zeek/zeek ``scripts/base/protocols/http/main.zeek``: ``ts``,
``uid`` (the HTTP connection, as in conn.log), ``trans_depth``, ``method``, ``host`` ("value of
the HOST header"), ``uri``; real file SuperCowPowers/zat ``data/http_empty.log`` (a header with
no records, tests/data/zeek_http). Header and JSON spellings as for ``zeek_conn``.

Rows (``enrichment``): ``zeek:<uid>`` -> dst_domain = ``host`` without its ``:port`` (lower
case), app ``http``. Records without a host are skipped ("no Host header"), and so are hosts that
are IP literals ("Host header is an IP address"). Several requests on one connection give several
rows; the pipeline keeps the earliest. No options.
"""

from __future__ import annotations

from typing import Any

from ..sources import Source
from . import fields
from .base import LoadOptions, LoadResult
from .zeek_conn import FactsOrSkip, domain_name, read_zeek_enrichment, sniff_enrichment

name = "zeek_http"
kind = "enrichment"
description = "Zeek http.log (TSV or JSON): HTTP Host names per connection uid"

_HTTP_KEYS = {"method", "host", "uri", "status_code", "user_agent"}


def sniff(head: bytes, filename: str) -> float:
    """Score: a Zeek TSV header with ``#path http``, or ``trans_depth`` with request fields."""
    return sniff_enrichment(head, "http", {"uid", "trans_depth"}, _HTTP_KEYS)


def read(source: Source, options: LoadOptions) -> LoadResult:
    """Read a Zeek http.log into ``enrichment`` rows keyed ``zeek:<uid>``."""
    return read_zeek_enrichment(source, options, name, "http", _facts)


def host_without_port(host: str) -> str:
    """``example.com:8080`` -> ``example.com``; ``[2001:db8::1]:80`` -> ``2001:db8::1``."""
    host = host.strip()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    name_part, colon, port = host.rpartition(":")
    if colon and port.isdigit() and ":" not in name_part:
        return name_part
    return host


def _facts(record: dict[str, Any], uid: str) -> FactsOrSkip:
    raw = fields.text(record.get("host"))
    if raw is None:
        return "no Host header"
    host = domain_name(host_without_port(raw))
    if host is None:
        return "Host header is an IP address"
    return [(f"zeek:{uid}", host, "http")]
