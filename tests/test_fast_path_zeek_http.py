"""The Zeek http.log loader's column-wise path gives exactly the per-line reader's rows, rejects
and stats (property tests over TSV and JSON lines). ``python tests/test_fast_path_zeek_http.py
DIR`` measures it on ~200k lines."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fast_path_zeek_conn import enrichment_lines, header, measure, outcomes, raw_tsv, write

from correlate.loaders import blocks, zeek_conn, zeek_http

FIELDS = [
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "trans_depth",
    "method",
    "host",
    "uri",
    "user_agent",
    "status_code",
]
TYPES = [
    "time",
    "string",
    "addr",
    "port",
    "addr",
    "port",
    "count",
    "string",
    "string",
    "string",
    "string",
    "count",
]
GOOD = dict(
    zip(
        FIELDS,
        [
            "1764655800.000000",
            "CHttpPortHost0001",
            "192.168.10.13",
            "40600",
            "203.0.113.80",
            "8080",
            "1",
            "GET",
            "Downloads.Example.NET:8080",
            "/xmrig.tar.gz",
            "curl/8.5.0",
            "200",
        ],
        strict=True,
    )
)


def tsv(**changes: str) -> bytes:
    return "\t".join({**GOOD, **changes}[f] for f in FIELDS).encode()


CHANGES: list[dict[str, str]] = [
    {},
    {"host": "-"},
    {"host": "(empty)"},
    {"host": "203.0.113.80:8080"},
    {"host": "[2001:db8::80]:8080"},
    {"host": "[2001:db8::80]"},
    {"host": "mining.example.org"},
    {"host": "example.com:port"},
    {"host": "a:b:c"},
    {"host": " spaced.example:80 "},
    {"host": "."},
    {"host": "caf\\xc3\\xa9.example"},
    {"ts": "-"},
    {"ts": "1764655800000"},
    {"uid": "(empty)"},
    {"user_agent": "Mozilla/5.0 (X11; Linux)"},
]
LINES = [tsv(**c) for c in CHANGES] + [b"", tsv() + b"\textra", b"#close\tx", b"# note"]
ITEMS = st.one_of(
    st.sampled_from(LINES).map(lambda line: [line]),
    st.just(header("http", FIELDS, TYPES)),
    st.integers(1, 30).map(lambda n: [tsv()] * n),
    st.sampled_from(CHANGES).map(lambda c: [tsv(**c)] * 3),
)


def check(path: Path, **options: object) -> None:
    outcomes(zeek_http.read, lambda o: zeek_conn.enrichment_log(zeek_http.SPEC, o), path, **options)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(items=st.lists(ITEMS, min_size=1, max_size=20), first_header=st.booleans())
def test_tsv_column_wise_equals_line_by_line(tmp_path_factory, items, first_header):
    lines = header("http", FIELDS, TYPES) if first_header else []
    for item in items:
        lines.extend(item)
    check(write(tmp_path_factory.mktemp("http") / "http.log", lines))


def test_each_tsv_variant_inside_a_run_of_good_lines(tmp_path):
    for index, line in enumerate(LINES):
        lines = header("http", FIELDS, TYPES) + [tsv()] * 5 + [line] + [tsv()] * 5
        check(write(tmp_path / f"http{index}.log", lines))


def jline(**changes: object) -> bytes:
    record = {**GOOD, "ts": 1764655800.0, "id.orig_p": 40600, "id.resp_p": 8080, **changes}
    return json.dumps({k: v for k, v in record.items() if v is not ...}).encode()


JSON_VARIANTS = [
    jline(),
    jline(host=...),
    jline(host=""),
    jline(host="10.0.0.1:80"),
    jline(host="Example.ORG"),
    jline(host=7),
    jline(ts=1764655800500),
    jline(_path="http"),
    jline(_path="ssl"),
    b'{"broken": ',
]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=enrichment_lines(JSON_VARIANTS, zeek_http.SPEC),
    piece=st.integers(1, 20),
)
def test_json_column_wise_equals_line_by_line(tmp_path_factory, monkeypatch, lines, piece):
    monkeypatch.setattr(blocks, "SMALLEST_PIECE", piece)
    check(write(tmp_path_factory.mktemp("http") / "http.json.log", lines))


def test_each_json_variant_inside_a_run_of_good_lines(tmp_path):
    for index, line in enumerate(JSON_VARIANTS):
        check(write(tmp_path / f"http{index}.json.log", [jline()] * 5 + [line] + [jline()] * 5))


def generate(out: Path, n: int = 200_000) -> Path:
    """An http.log of a sandbox fleet: 20,000 host names, a tenth with a port."""
    rng = np.random.default_rng(10)
    names = [f"host{i}.example{i % 300}.com" for i in range(20_000)]
    lines = []
    for i in range(n):
        host = names[rng.integers(0, len(names))] + (":8080" if rng.random() < 0.1 else "")
        lines.append(tsv(ts=f"{1764633600 + i * 0.4:.6f}", uid=f"C{i:017d}", host=host))
    out.mkdir(parents=True, exist_ok=True)
    path = out / "http.log"
    write(path, header("http", FIELDS, TYPES) + lines + [b"#close\t2025-12-03-00-00-00"])
    return path


if __name__ == "__main__":
    http = generate(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/zeek-bench"))
    print(measure(zeek_http, http, raw_tsv(http)))
