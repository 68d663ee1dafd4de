"""Zeek ``ssl.log`` (TSV or JSON) as enrichment: the TLS server name (SNI) of each connection.

Sources checked: ``SSL::Info`` in zeek/zeek ``scripts/base/protocols/ssl/main.zeek``: ``ts``,
``uid`` (the TLS connection, the same ``uid`` as its conn.log record), ``server_name`` ("value
of the Server Name Indicator SSL/TLS extension"), ``version``, ``cipher``, ``established``; real
file SuperCowPowers/zat ``data/ssl.log`` (tests/data/zeek_ssl). Header and JSON spellings as
for ``zeek_conn``.

Rows (``enrichment``): ``zeek:<uid>`` -> dst_domain = ``server_name`` (lower case), app ``ssl``.
Records without a server name are skipped ("no server_name (SNI)"); an SNI that is an IP
address is skipped too ("server_name is an IP address"). No options.
"""

from __future__ import annotations

from typing import Any

from ..sources import Source
from . import fields
from .base import LoadOptions, LoadResult
from .zeek_conn import FactsOrSkip, domain_name, read_zeek_enrichment, sniff_enrichment

name = "zeek_ssl"
kind = "enrichment"
description = "Zeek ssl.log (TSV or JSON): TLS server names (SNI) per connection uid"

_SSL_KEYS = {"server_name", "cipher", "curve", "established", "ssl_history", "resumed"}


def sniff(head: bytes, filename: str) -> float:
    """Score: a Zeek TSV header with ``#path ssl``, or TLS handshake fields beside ``uid``."""
    return sniff_enrichment(head, "ssl", {"uid", "id.resp_h"}, _SSL_KEYS)


def read(source: Source, options: LoadOptions) -> LoadResult:
    """Read a Zeek ssl.log into ``enrichment`` rows keyed ``zeek:<uid>``."""
    return read_zeek_enrichment(source, options, name, "ssl", _facts)


def _facts(record: dict[str, Any], uid: str) -> FactsOrSkip:
    raw = record.get("server_name")
    if fields.is_blank(raw):
        return "no server_name (SNI)"
    server = domain_name(raw)
    if server is None:
        return "server_name is an IP address"
    return [(f"zeek:{uid}", server, "ssl")]
