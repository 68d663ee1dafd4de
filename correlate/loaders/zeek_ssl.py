"""Zeek ``ssl.log`` (TSV or JSON) as enrichment: the TLS server name (SNI) of each connection.

Rows (``enrichment``): ``zeek:<uid>`` -> dst_domain = ``server_name`` (lower case), app ``ssl``.
Records without a server name are skipped ("no server_name (SNI)"); an SNI that is an IP
address is skipped too ("server_name is an IP address"). Header and JSON spellings as for
``zeek_conn``. No options. Field reference and sources: ``tests/data/zeek_ssl/README.md``.
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

name = "zeek_ssl"
kind = "enrichment"
description = "Zeek ssl.log (TSV or JSON): TLS server names (SNI) per connection uid"

_SSL_KEYS = {"server_name", "cipher", "curve", "established", "ssl_history", "resumed"}


def sniff(head: bytes, filename: str) -> float:
    """Score: a Zeek TSV header with ``#path ssl``, or TLS handshake fields beside ``uid``."""
    return sniff_enrichment(head, "ssl", {"uid", "id.resp_h"}, _SSL_KEYS)


def read(source: Source, options: LoadOptions, *, fast: bool = True) -> LoadResult:
    """Read a Zeek ssl.log into ``enrichment`` rows keyed ``zeek:<uid>`` (column-wise;
    ``fast=False``: every line by the per-line reader, the reference)."""
    return read_zeek_enrichment(source, options, SPEC, fast=fast)


def _facts(record: dict[str, Any], uid: str) -> FactsOrSkip:
    server, skip = _server(record.get("server_name"))
    if server is None:
        assert skip is not None
        return skip
    return [(f"zeek:{uid}", server, "ssl")]


def _server(raw: Any) -> tuple[str | None, str | None]:
    """The server name as ``dst_domain``, or why the record gives none."""
    if fields.is_blank(raw):
        return None, "no server_name (SNI)"
    server = domain_name(raw)
    if server is None:
        return None, "server_name is an IP address"
    return server, None


@lru_cache(maxsize=1 << 16)
def _server_text(value: str | None) -> tuple[str | None, str | None]:
    """``_server`` of a text value (memoised: names repeat across runs)."""
    return _server(value)


SPEC = Enrichment(
    name=name,
    path="ssl",
    json_fields=pa.schema([("server_name", pa.string())]),
    facts=_facts,
    columns=name_columns("server_name", _server_text, "ssl"),
)
