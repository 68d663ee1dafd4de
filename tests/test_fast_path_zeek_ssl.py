"""The Zeek ssl.log loader's column-wise path gives exactly the per-line reader's rows, rejects and
stats (property tests over TSV and JSON lines). ``python tests/test_fast_path_zeek_ssl.py DIR``
measures it on ~200k lines."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fast_path_zeek_conn import enrichment_lines, header, measure, outcomes, raw_tsv, write

from correlate.loaders import blocks, zeek_conn, zeek_ssl

FIELDS = [
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "version",
    "cipher",
    "curve",
    "server_name",
    "resumed",
    "established",
]
TYPES = [
    "time",
    "string",
    "addr",
    "port",
    "addr",
    "port",
    "string",
    "string",
    "string",
    "string",
    "bool",
    "bool",
]
GOOD = dict(
    zip(
        FIELDS,
        [
            "1764655521.600000",
            "CTlsMinerPool0001",
            "192.168.10.13",
            "40210",
            "45.9.148.117",
            "443",
            "TLSv13",
            "TLS_AES_256_GCM_SHA384",
            "x25519",
            "pool.supportxmr.com",
            "F",
            "T",
        ],
        strict=True,
    )
)


def tsv(**changes: str) -> bytes:
    return "\t".join({**GOOD, **changes}[f] for f in FIELDS).encode()


CHANGES: list[dict[str, str]] = [
    {},
    {"server_name": "-"},
    {"server_name": "(empty)"},
    {"server_name": "Pool.SupportXMR.com."},
    {"server_name": "45.9.148.117"},
    {"server_name": "[2001:db8::1]"},
    {"server_name": "."},
    {"server_name": " padded.example "},
    {"server_name": "caf\\xc3\\xa9.example"},
    {"ts": "abc"},
    {"ts": "1764655521600"},
    {"ts": "2025-12-02T06:05:21.6Z"},
    {"uid": "-"},
    {"uid": "C x"},
]
LINES = [tsv(**c) for c in CHANGES] + [b"", tsv() + b"\textra", tsv() + b"\r", b"#close\tx"]
ITEMS = st.one_of(
    st.sampled_from(LINES).map(lambda line: [line]),
    st.just(header("ssl", FIELDS, TYPES)),
    st.just(header("http", FIELDS, TYPES)),
    st.integers(1, 30).map(lambda n: [tsv()] * n),
    st.sampled_from(CHANGES).map(lambda c: [tsv(**c)] * 3),
)


def check(path: Path, **options: object) -> None:
    outcomes(zeek_ssl.read, lambda o: zeek_conn.enrichment_log(zeek_ssl.SPEC, o), path, **options)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(items=st.lists(ITEMS, min_size=1, max_size=20), unit=st.sampled_from(["auto", "ms"]))
def test_tsv_column_wise_equals_line_by_line(tmp_path_factory, items, unit):
    lines = header("ssl", FIELDS, TYPES)
    for item in items:
        lines.extend(item)
    check(write(tmp_path_factory.mktemp("ssl") / "ssl.log", lines), epoch_unit=unit)


def test_each_tsv_variant_inside_a_run_of_good_lines(tmp_path):
    for index, line in enumerate(LINES):
        lines = header("ssl", FIELDS, TYPES) + [tsv()] * 5 + [line] + [tsv()] * 5
        check(write(tmp_path / f"ssl{index}.log", lines))


def jline(**changes: object) -> bytes:
    record = {**GOOD, "ts": 1764655521.6, "id.orig_p": 40210, "id.resp_p": 443, **changes}
    return json.dumps({k: v for k, v in record.items() if v is not ...}).encode()


JSON_VARIANTS = [
    jline(),
    jline(server_name=...),
    jline(server_name=None),
    jline(server_name=""),
    jline(server_name="10.0.0.1"),
    jline(server_name="Example.ORG."),
    jline(server_name=["a.b"]),
    jline(ts="2025-12-02T06:05:21Z"),
    jline(uid=None),
    jline(_path="conn"),
    b"[1]",
]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=enrichment_lines(JSON_VARIANTS, zeek_ssl.SPEC),
    piece=st.integers(1, 20),
)
def test_json_column_wise_equals_line_by_line(tmp_path_factory, monkeypatch, lines, piece):
    monkeypatch.setattr(blocks, "SMALLEST_PIECE", piece)
    check(write(tmp_path_factory.mktemp("ssl") / "ssl.json.log", lines))


def test_each_json_variant_inside_a_run_of_good_lines(tmp_path):
    for index, line in enumerate(JSON_VARIANTS):
        check(write(tmp_path / f"ssl{index}.json.log", [jline()] * 5 + [line] + [jline()] * 5))


def generate(out: Path, n: int = 200_000) -> Path:
    """An ssl.log of a sandbox fleet: 20,000 server names, a tenth without SNI."""
    rng = np.random.default_rng(9)
    names = [f"host{i}.example{i % 300}.com" for i in range(20_000)]
    lines = []
    for i in range(n):
        sni = "-" if rng.random() < 0.1 else names[rng.integers(0, len(names))]
        lines.append(tsv(ts=f"{1764633600 + i * 0.4:.6f}", uid=f"C{i:017d}", server_name=sni))
    out.mkdir(parents=True, exist_ok=True)
    path = out / "ssl.log"
    write(path, header("ssl", FIELDS, TYPES) + lines + [b"#close\t2025-12-03-00-00-00"])
    return path


if __name__ == "__main__":
    ssl = generate(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/zeek-bench"))
    print(measure(zeek_ssl, ssl, raw_tsv(ssl)))
