"""The Zeek dns.log loader's column-wise path (answers flattened, deduplicated per record, in
order) gives exactly the per-line reader's rows, rejects and stats (property tests over TSV and
JSON lines). ``python tests/test_fast_path_zeek_dns.py DIR`` measures it on ~200k lines."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fast_path_zeek_conn import enrichment_lines, header, measure, outcomes, raw_tsv, write

from correlate.loaders import blocks, zeek_conn, zeek_dns

FIELDS = [
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "proto",
    "trans_id",
    "rtt",
    "query",
    "qclass",
    "qclass_name",
    "qtype",
    "qtype_name",
    "rcode",
    "rcode_name",
    "AA",
    "TC",
    "RD",
    "RA",
    "Z",
    "answers",
    "TTLs",
    "rejected",
]
TYPES = [
    "time",
    "string",
    "addr",
    "port",
    "addr",
    "port",
    "enum",
    "count",
    "interval",
    "string",
    "count",
    "string",
    "count",
    "string",
    "count",
    "string",
    "bool",
    "bool",
    "bool",
    "bool",
    "count",
    "vector[string]",
    "vector[interval]",
    "bool",
]
GOOD = dict(
    zip(
        FIELDS,
        [
            "1764655520.000000",
            "CDnsMinerPool0001",
            "192.168.10.13",
            "53001",
            "192.168.10.1",
            "53",
            "udp",
            "4711",
            "0.010000",
            "pool.supportxmr.com",
            "1",
            "C_INTERNET",
            "1",
            "A",
            "0",
            "NOERROR",
            "F",
            "F",
            "T",
            "T",
            "0",
            "45.9.148.117,45.9.148.118",
            "60.000000,60.000000",
            "F",
        ],
        strict=True,
    )
)


def tsv(fields: list[str] = FIELDS, /, **changes: str) -> bytes:
    return "\t".join({**GOOD, **changes}[f] for f in fields).encode()


CHANGES: list[dict[str, str]] = [
    {},
    {"answers": "cdn.example,45.9.148.117,45.9.148.118,45.9.148.117"},  # a CNAME, a repeat
    {"answers": "2001:0db8:0000::0001,2001:db8::1"},  # one address, two spellings
    {"answers": "(empty)"},
    {"answers": "-"},
    {"answers": " 10.0.0.1 , 10.0.0.2"},
    {"answers": "10.0.0.1\\x2c10.0.0.2"},  # an escaped separator
    {"answers": "10.0.0.300,TXT record"},
    {"answers": ","},
    {"query": "-"},
    {"query": "Pool.MineXMR.com."},
    {"query": "45.9.148.117"},  # an address: no name
    {"query": "[2001:db8::1]"},
    {"query": "(empty)"},
    {"query": "caf\\xc3\\xa9.example"},
    {"query": "a b"},
    {"query": "."},
    {"query": " padded.example "},
    {"ts": "-"},
    {"ts": "1764655520"},
    {"ts": "1764655520500"},  # milliseconds: a note
    {"ts": "2025-12-02T06:05:20Z"},
    {"ts": "soon"},
    {"uid": "-"},
    {"uid": "(empty)"},
    {"rtt": "x", "trans_id": "-"},  # fields the loader does not read
]
LINES = [tsv(**c) for c in CHANGES] + [
    b"",
    b"#close\t2025-12-02-07-00-00",
    tsv() + b"\r",
    tsv() + b"\textra",
    tsv().replace(b"udp", b"u\xffp"),
    b"1764655535.000000\tCDnsShort00000007\t192.168.10.13",
]
HEADERS = [
    header("dns", FIELDS, TYPES),
    [line for line in header("dns", FIELDS, TYPES) if not line.startswith(b"#types")],
    [b"#separator \\x09", b"#set_separator\t;", *header("dns", FIELDS, TYPES)[2:]],
    header("conn", FIELDS, TYPES),
]
ITEMS = st.one_of(
    st.sampled_from(LINES).map(lambda line: [line]),
    st.sampled_from(HEADERS),
    st.integers(1, 30).map(lambda n: [tsv()] * n),
    st.sampled_from(CHANGES).map(lambda c: [tsv(**c)] * 3),
)


def check(path: Path, **options: object) -> None:
    outcomes(zeek_dns.read, lambda o: zeek_conn.enrichment_log(zeek_dns.SPEC, o), path, **options)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    items=st.lists(ITEMS, min_size=1, max_size=20),
    first_header=st.booleans(),
    unit=st.sampled_from(["auto", "s", "ms"]),
)
def test_tsv_column_wise_equals_line_by_line(tmp_path_factory, items, first_header, unit):
    lines = header("dns", FIELDS, TYPES) if first_header else []
    for item in items:
        lines.extend(item)
    check(write(tmp_path_factory.mktemp("dns") / "dns.log", lines), epoch_unit=unit)


@pytest.mark.parametrize("head", range(len(HEADERS)))
def test_each_tsv_variant_inside_a_run_of_good_lines(tmp_path, head):
    for index, line in enumerate(LINES):
        lines = HEADERS[head] + [tsv()] * 5 + [line] + [tsv()] * 5
        check(write(tmp_path / f"dns{index}.log", lines))
        lines = HEADERS[head] + [tsv(answers=line.decode("utf-8", "replace"))] * 3
        check(write(tmp_path / f"answers{index}.log", lines))


JSON_GOOD: dict[str, object] = {
    "ts": 1764655520.0,
    "uid": "CDnsMinerPool0001",
    "id.orig_h": "192.168.10.13",
    "id.orig_p": 53001,
    "id.resp_h": "192.168.10.1",
    "id.resp_p": 53,
    "proto": "udp",
    "query": "pool.supportxmr.com",
    "qtype_name": "A",
    "answers": ["45.9.148.117", "45.9.148.118"],
    "TTLs": [60.0, 60.0],
}


def jline(**changes: object) -> bytes:
    record = {k: v for k, v in {**JSON_GOOD, **changes}.items() if v is not ...}
    return json.dumps(record, separators=(",", ":")).encode()


JSON_VARIANTS = [
    jline(),
    jline(answers=["cdn.example", "45.9.148.117", "45.9.148.117", "2001:DB8::1"]),
    jline(answers=[]),
    jline(answers=None),
    jline(answers=...),
    jline(answers=["1.1.1.1", None]),
    jline(answers="1.1.1.1,2.2.2.2"),  # text, not a list: split by commas (line by line)
    jline(answers=[1, 2]),
    jline(query="Example.COM."),
    jline(query=None),
    jline(query=...),
    jline(query="10.0.0.1"),
    jline(query=5),
    jline(ts="2025-12-02T06:05:20.25Z"),
    jline(ts=1764655520500),
    jline(uid=...),
    jline(_path="conn"),
    b'{"broken": ',
    b"",
]


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=enrichment_lines(JSON_VARIANTS, zeek_dns.SPEC),
    piece=st.integers(1, 20),
)
def test_json_column_wise_equals_line_by_line(tmp_path_factory, monkeypatch, lines, piece):
    monkeypatch.setattr(blocks, "SMALLEST_PIECE", piece)
    check(write(tmp_path_factory.mktemp("dns") / "dns.json.log", lines))


def test_each_json_variant_inside_a_run_of_good_lines(tmp_path):
    for index, line in enumerate(JSON_VARIANTS):
        check(write(tmp_path / f"dns{index}.json.log", [jline()] * 5 + [line] + [jline()] * 5))


def generate(out: Path, n: int = 200_000) -> Path:
    """A dns.log of a sandbox fleet: names repeat, 0-3 addresses per answer, some CNAMEs."""
    rng = np.random.default_rng(8)
    names = [f"host{i}.example{i % 300}.com" for i in range(20_000)]
    pool = [f"{a}.{b}.{c}.{d}" for a, b, c, d in rng.integers(1, 255, (5000, 4))]
    lines = []
    for i in range(n):
        query = names[rng.integers(0, len(names))]
        answers = [pool[j] for j in rng.integers(0, len(pool), rng.integers(0, 4))]
        if answers and rng.random() < 0.3:
            answers.insert(0, f"cdn.{query}")
        record = {
            **GOOD,
            "ts": f"{1764633600 + i * 0.4:.6f}",
            "uid": f"C{i:017d}",
            "query": query,
            "answers": ",".join(answers) or "-",
            "TTLs": ",".join("60.000000" for _ in answers) or "-",
        }
        lines.append("\t".join(record[f] for f in FIELDS).encode())
    out.mkdir(parents=True, exist_ok=True)
    path = out / "dns.log"
    write(path, header("dns", FIELDS, TYPES) + lines + [b"#close\t2025-12-03-00-00-00"])
    return path


if __name__ == "__main__":
    dns = generate(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/zeek-bench"))
    print(measure(zeek_dns, dns, raw_tsv(dns)))
