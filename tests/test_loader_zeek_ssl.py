"""zeek_ssl: the TLS server name of each connection uid as enrichment."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from loader_helpers import rows

from correlate.errors import StrictRejection
from correlate.loaders import REGISTRY, LoadOptions, LoadResult, detect
from correlate.pipeline import RunOptions, load_inputs
from correlate.sources import Source

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data" / "zeek_ssl"
ZAT = DATA / "zat_ssl_no_sni.log"
TRAPS = DATA / "sni_and_traps.log"
JSON = DATA / "sni_omitted_when_unset.json.log"
SAMPLES = sorted(DATA.glob("*.log"))

loader = REGISTRY["zeek_ssl"]


def display(path: Path) -> str:
    try:
        return str(path.relative_to(TESTS.parent))
    except ValueError:
        return path.name


def load(path: Path, options: LoadOptions | None = None, shown: str | None = None) -> LoadResult:
    source = Source(path, shown or display(path))
    detection = detect(source)
    assert detection.name == "zeek_ssl"
    return detection.loader.read(source, options or LoadOptions())


def test_sni_names_the_connection():
    result = load(TRAPS)
    assert result.kind == "enrichment"
    assert rows(result.table) == [
        {
            "flow_key": "zeek:CTlsMinerPool0001",
            "ts": 1_764_655_521_600_000_000,
            "dst_domain": "pool.supportxmr.com",
            "app": "ssl",
            "source_format": "zeek_ssl",
            "source_path": "tests/data/zeek_ssl/sni_and_traps.log",
            "source_line": 9,
        }
    ]


def test_records_without_a_usable_sni_are_skipped_and_bad_ones_rejected():
    result = load(TRAPS)
    assert result.stats.skipped == {
        "Zeek header line": 9,
        "no server_name (SNI)": 1,
        "server_name is an IP address": 1,
    }
    assert [(r.location.line, r.reason) for r in result.rejects] == [
        (12, "ts: not an ISO 8601 time: 'abc'")
    ]


def test_zat_ssl_log_has_no_sni_at_all():
    result = load(ZAT)
    assert result.table.num_rows == 0
    assert result.stats.skipped == {"Zeek header line": 9, "no server_name (SNI)": 37}


def test_json_writer_omits_unset_server_name():
    result = load(JSON)
    assert [(r["source_line"], r["flow_key"], r["dst_domain"]) for r in rows(result.table)] == [
        (1, "zeek:CJsonTls000000001", "api.example.com")
    ]
    assert result.stats.skipped == {"no server_name (SNI)": 1}


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_every_line_is_loaded_rejected_or_skipped(path):
    stats = load(path).stats
    assert stats.read == stats.loaded + stats.rejected + stats.skipped_total
    assert stats.read == len(path.read_bytes().splitlines())


def test_strict_stops_at_the_first_rejected_line():
    with pytest.raises(StrictRejection, match=rf"^{re.escape(display(TRAPS))}:12: "):
        load(TRAPS, LoadOptions(strict=True))


@pytest.mark.parametrize(
    "head",
    [
        b"#separator \\x09\n#path\tx509\n#fields\tts\tid\tcertificate.subject\n",
        b'{"ts":1.5,"uid":"C","id.orig_h":"10.0.0.1","id.resp_h":"10.0.0.2","conn_state":"SF",'
        b'"history":"ShADadFf","service":"ssl"}\n',
        b'{"ts":1.5,"fuid":"F","certificate.subject":"CN=a","san.dns":["a.b"]}\n',
        b'{"timestamp":"2025-12-02T06:00:00+0000","event_type":"tls","tls":{"sni":"a.b"}}\n',
    ],
    ids=["x509-path", "conn-json", "x509-json", "suricata-tls"],
)
def test_near_misses_do_not_sniff_as_zeek_ssl(head):
    assert loader.sniff(head, "ssl.log") == 0.0


def test_pipeline_fills_the_tls_connection_domain(tmp_path):
    conn = (
        '{"ts":1764655521.5,"uid":"CTlsMinerPool0001","id.orig_h":"192.168.10.13",'
        '"id.orig_p":40210,"id.resp_h":"45.9.148.117","id.resp_p":443,"proto":"tcp",'
        '"service":"ssl","conn_state":"SF"}\n'
    )
    (tmp_path / "conn.log").write_text(conn)
    shutil.copy(TRAPS, tmp_path / "ssl.log")
    [event] = rows(load_inputs([str(tmp_path)], RunOptions()).events)
    assert (event["dst_domain"], event["app"]) == ("pool.supportxmr.com", "ssl")
