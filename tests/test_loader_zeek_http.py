"""zeek_http: the HTTP Host name of each connection uid as enrichment."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from loader_helpers import rows

from correlate.errors import StrictRejection
from correlate.loaders import REGISTRY, LoadOptions, LoadResult, detect
from correlate.loaders.zeek_http import host_without_port
from correlate.sources import Source

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data" / "zeek_http"
ZAT_EMPTY = DATA / "zat_http_header_only.log"
HOSTS = DATA / "hosts_with_ports_and_ips.log"
SAMPLES = sorted(DATA.glob("*.log"))

loader = REGISTRY["zeek_http"]


def display(path: Path) -> str:
    try:
        return str(path.relative_to(TESTS.parent))
    except ValueError:
        return path.name


def load(path: Path, options: LoadOptions | None = None, shown: str | None = None) -> LoadResult:
    source = Source(path, shown or display(path))
    detection = detect(source)
    assert detection.name == "zeek_http"
    return detection.loader.read(source, options or LoadOptions())


def test_host_names_without_port_in_lower_case():
    result = load(HOSTS)
    assert result.kind == "enrichment"
    assert [
        (r["source_line"], r["flow_key"], r["ts"], r["dst_domain"], r["app"])
        for r in rows(result.table)
    ] == [
        (9, "zeek:CHttpPortHost0001", 1_764_655_800_000_000_000, "downloads.example.net", "http"),
        (13, "zeek:CHttpPlainHost005", 1_764_655_804_000_000_000, "mining.example.org", "http"),
    ]


def test_ip_hosts_and_missing_hosts_are_skipped_and_ragged_lines_rejected():
    result = load(HOSTS)
    assert result.stats.skipped == {
        "Zeek header line": 9,
        "Host header is an IP address": 2,
        "no Host header": 1,
    }
    assert [(r.location.line, r.reason) for r in result.rejects] == [
        (14, "13 fields where #fields has 12")
    ]


def test_zat_header_only_file_loads_nothing():
    result = load(ZAT_EMPTY)
    assert result.table.num_rows == 0
    assert (result.stats.read, result.stats.skipped) == (9, {"Zeek header line": 9})


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("example.com:8080", "example.com"),
        ("example.com", "example.com"),
        ("[2001:db8::1]:80", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("example.com:http", "example.com:http"),
    ],
)
def test_host_without_port(host, expected):
    assert host_without_port(host) == expected


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_every_line_is_loaded_rejected_or_skipped(path):
    stats = load(path).stats
    assert stats.read == stats.loaded + stats.rejected + stats.skipped_total
    assert stats.read == len(path.read_bytes().splitlines())


def test_strict_stops_at_the_first_rejected_line():
    with pytest.raises(StrictRejection, match=rf"^{re.escape(display(HOSTS))}:14: "):
        load(HOSTS, LoadOptions(strict=True))


@pytest.mark.parametrize(
    "head",
    [
        b"#separator \\x09\n#path\tsmtp\n#fields\tts\tuid\ttrans_depth\thelo\tmailfrom\n",
        b'{"ts":1.5,"uid":"C","trans_depth":1,"helo":"mx","mailfrom":"a@b"}\n',
        b'{"timestamp":"2025-12-02T06:00:00+0000","event_type":"http","http":{"hostname":"a.b"}}\n',
        b"ts uid method host uri\n",
    ],
    ids=["smtp-path", "smtp-json", "suricata-http", "plain-text"],
)
def test_near_misses_do_not_sniff_as_zeek_http(head):
    assert loader.sniff(head, "http.log") == 0.0
