"""zeek_dns: enrichment rows for the DNS flow (by uid) and for the answer addresses (ip:<addr>)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from loader_helpers import rows

from correlate.errors import StrictRejection
from correlate.loaders import REGISTRY, LoadOptions, LoadResult, detect
from correlate.sources import Source

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data" / "zeek_dns"
ZAT = DATA / "zat_dns.log"
ZAT_JSON = DATA / "zat_dns.json.log"
ANSWERS = DATA / "answers_cnames_and_escapes.log"
SAMPLES = sorted(DATA.glob("*.log"))

loader = REGISTRY["zeek_dns"]


def display(path: Path) -> str:
    try:
        return str(path.relative_to(TESTS.parent))
    except ValueError:
        return path.name


def load(path: Path, options: LoadOptions | None = None, shown: str | None = None) -> LoadResult:
    source = Source(path, shown or display(path))
    detection = detect(source)
    assert detection.name == "zeek_dns"
    return detection.loader.read(source, options or LoadOptions())


def facts(result: LoadResult) -> list[tuple[int, str, str | None, str | None]]:
    return [
        (r["source_line"], r["flow_key"], r["dst_domain"], r["app"]) for r in rows(result.table)
    ]


def test_zat_first_query_names_its_flow_and_its_answer_address():
    result = load(ZAT)
    assert result.kind == "enrichment"
    first = rows(result.table)[:2]
    assert first == [
        {
            "flow_key": "zeek:CZGShC2znK1sV7jdI7",
            "ts": 1_379_288_667_631_940_000,
            "dst_domain": "guyspy.com",
            "app": "dns",
            "source_format": "zeek_dns",
            "source_path": "tests/data/zeek_dns/zat_dns.log",
            "source_line": 9,
        },
        {
            "flow_key": "ip:54.245.228.191",
            "ts": 1_379_288_667_631_940_000,
            "dst_domain": "guyspy.com",
            "app": None,
            "source_format": "zeek_dns",
            "source_path": "tests/data/zeek_dns/zat_dns.log",
            "source_line": 9,
        },
    ]


def test_zat_cname_answers_give_no_ip_rows():
    line_10 = [f for f in facts(load(ZAT)) if f[0] == 10]
    assert line_10 == [
        (10, "zeek:CZGShC2znK1sV7jdI7", "www.guyspy.com", "dns"),
        (10, "ip:54.245.228.191", "www.guyspy.com", None),  # "guyspy.com" (a CNAME) is not
    ]


def test_zat_accounting_and_queries_without_a_name():
    stats = load(ZAT).stats
    assert (stats.read, stats.loaded, stats.rejected) == (63, 51, 0)
    assert stats.skipped == {"Zeek header line": 9, "no query name": 3}
    assert stats.unit == "records"


def test_zat_json_without_answers_gives_one_row_per_query():
    result = load(ZAT_JSON)
    assert result.stats.loaded == 50
    assert facts(result)[0] == (
        1,
        "zeek:CWwU9s3h33kFsa9Ljg",
        "_ldap._tcp.default-first-site-name._sites.icemaiden-dc.icemaiden.com",
        "dns",
    )


def test_answers_are_addresses_only_deduplicated_and_canonical():
    assert facts(load(ANSWERS)) == [
        (9, "zeek:CDnsMinerPool0001", "pool.supportxmr.com", "dns"),
        (9, "ip:45.9.148.117", "pool.supportxmr.com", None),
        (9, "ip:45.9.148.118", "pool.supportxmr.com", None),
        (10, "zeek:CDnsUpperCase0002", "pool.minexmr.com", "dns"),  # lower case, no trailing dot
        (10, "ip:2001:db8::1", "pool.minexmr.com", None),
        (12, "zeek:CDnsEscaped000004", "café.example", "dns"),  # \xc3\xa9 is UTF-8
    ]


def test_malformed_lines_are_rejected_with_reasons():
    result = load(ANSWERS)
    assert {r.location.line: r.reason for r in result.rejects} == {
        14: "ts is missing",
        15: "uid is missing",
        16: "3 fields where #fields has 24",
    }
    assert result.stats.skipped == {"Zeek header line": 9, "no query name": 1, "blank line": 1}
    assert result.stats.loaded == 3


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_every_line_is_loaded_rejected_or_skipped(path):
    stats = load(path).stats
    assert stats.read == stats.loaded + stats.rejected + stats.skipped_total
    assert stats.read == len(path.read_bytes().splitlines())


def test_strict_stops_at_the_first_rejected_line():
    with pytest.raises(StrictRejection, match=rf"^{re.escape(display(ANSWERS))}:14: ts is missing"):
        load(ANSWERS, LoadOptions(strict=True))


@pytest.mark.parametrize(
    "head",
    [
        b"#separator \\x09\n#path\tconn\n#fields\tts\tuid\tquery\n",
        b'{"ts":1.5,"uid":"C","id.orig_h":"10.0.0.1","id.resp_h":"10.0.0.2","query":"a.b",'
        b'"conn_state":"SF","qtype_name":"A"}\n',
        b'{"ts":1.5,"uid":"C","query":"a.b"}\n',
        b'{"timestamp":"2025-12-02T06:00:00+0000","event_type":"dns","dns":{"rrname":"a.b"}}\n',
        b"query,qtype_name\nexample.com,A\n",
    ],
    ids=["conn-path", "conn-fields", "query-only", "suricata-dns", "csv"],
)
def test_near_misses_do_not_sniff_as_zeek_dns(head):
    assert loader.sniff(head, "dns.log") == 0.0
