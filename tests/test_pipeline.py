"""Pipeline steps between loading and attribution: enrichment by flow key, context files."""

from __future__ import annotations

import pyarrow as pa

from correlate.pipeline import fill_from_enrichment
from correlate.schema import ENRICHMENT, NETWORK_EVENTS, from_columns


def events(keys: list[str | None], domains: list[str | None]) -> pa.Table:
    n = len(keys)
    return from_columns(
        {"ts": list(range(n)), "flow_key": keys, "dst_domain": domains}, NETWORK_EVENTS
    )


def test_enrichment_fills_only_empty_domains_of_the_same_flow() -> None:
    facts = from_columns(
        {
            "flow_key": ["zeek:C1", "zeek:C1", "zeek:C2"],
            "ts": [5, 1, 0],
            "dst_domain": ["late.example", "early.example", "other.example"],
            "app": [None, "tls", None],
            "source_path": ["dns.log", "ssl.log", "dns.log"],
            "source_line": [9, 3, 4],
        },
        ENRICHMENT,
    )
    table = fill_from_enrichment(
        events(["zeek:C1", "zeek:C2", "zeek:C3", None], [None, "kept.example", None, None]), facts
    )
    assert table.column("dst_domain").to_pylist() == ["early.example", "kept.example", None, None]
    assert table.column("app").to_pylist() == ["tls", None, None, None]


def test_enrichment_without_facts_changes_nothing() -> None:
    before = events(["k"], [None])
    assert fill_from_enrichment(before, ENRICHMENT.empty_table()).equals(before)
