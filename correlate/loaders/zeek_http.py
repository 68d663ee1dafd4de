"""Zeek ``http.log`` (TSV or JSON) as enrichment: the ``Host`` header of each connection.

Rows (``enrichment``): ``zeek:<uid>`` -> dst_domain = ``host`` without its ``:port`` (lower
case), app ``http``. Records without a host are skipped ("no Host header"), and so are hosts that
are IP literals ("Host header is an IP address"). Several requests on one connection give several
rows; the pipeline keeps the earliest. Header and JSON spellings as for ``zeek_conn``. No options.
Field reference and sources: ``tests/data/zeek_http/README.md``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import pyarrow as pa

from ..sources import Source
from . import fields
from .base import LoadOptions, LoadResult
from .zeek_conn import (
    Enrichment,
    FactsOrSkip,
    domain_name,
    name_columns,
    read_zeek_enrichment,
    sniff_enrichment,
)

name = "zeek_http"
kind = "enrichment"
description = "Zeek http.log (TSV or JSON): HTTP Host names per connection uid"

_HTTP_KEYS = {"method", "host", "uri", "status_code", "user_agent"}


def sniff(head: bytes, filename: str) -> float:
    """Score: a Zeek TSV header with ``#path http``, or ``trans_depth`` with request fields."""
    return sniff_enrichment(head, "http", {"uid", "trans_depth"}, _HTTP_KEYS)


def read(source: Source, options: LoadOptions, *, fast: bool = True) -> LoadResult:
    """Read a Zeek http.log into ``enrichment`` rows keyed ``zeek:<uid>`` (column-wise;
    ``fast=False``: every line by the per-line reader, the reference)."""
    return read_zeek_enrichment(source, options, SPEC, fast=fast)


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
    host, skip = _host(record.get("host"))
    if host is None:
        assert skip is not None
        return skip
    return [(f"zeek:{uid}", host, "http")]


def _host(value: Any) -> tuple[str | None, str | None]:
    """The Host header's name as ``dst_domain``, or why the record gives none."""
    raw = fields.text(value)
    if raw is None:
        return None, "no Host header"
    host = domain_name(host_without_port(raw))
    if host is None:
        return None, "Host header is an IP address"
    return host, None


@lru_cache(maxsize=1 << 16)
def _host_text(value: str | None) -> tuple[str | None, str | None]:
    """``_host`` of a text value (memoised: names repeat across runs)."""
    return _host(value)


SPEC = Enrichment(
    name=name,
    path="http",
    json_fields=pa.schema([("host", pa.string())]),
    facts=_facts,
    columns=name_columns("host", _host_text, "http"),
)
