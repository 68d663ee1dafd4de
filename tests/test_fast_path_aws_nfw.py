"""The AWS Network Firewall loader's column-wise path gives exactly the per-line reader's rows,
rejects and stats (the domain-fill note included), whatever the lines (property test); a flow's
domain is the first one named by line whichever path read it; with ``run``'s keep policy it keeps
exactly the violations and the anchor sample the full table would give."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loader_helpers import raised, same, same_outcome, variant, write

from correlate.keep import KeepPolicy, cut_sample
from correlate.loaders import LoadOptions, LoadResult, aws_nfw, blocks
from correlate.loaders.base import FileLoad
from correlate.schema import NETWORK_EVENTS
from correlate.sources import Limits, Source, iter_lines

OUTER = {"firewall_name": "egress-fw", "availability_zone": "us-east-1a"}
NETFLOW = {
    **OUTER,
    "event_timestamp": "1764656000",
    "event": {
        "timestamp": "2025-12-02T06:13:20.104388+0000",
        "flow_id": 1182365120917450,
        "event_type": "netflow",
        "src_ip": "10.0.3.17",
        "src_port": 40951,
        "dest_ip": "141.94.96.144",
        "dest_port": 3333,
        "proto": "TCP",
        "app_proto": "failed",
        "netflow": {
            "pkts": 3,
            "bytes": 180,
            "start": "2025-12-02T06:11:19.512044+0000",
            "end": "2025-12-02T06:11:25.930120+0000",
            "age": 6,
            "min_ttl": 63,
            "max_ttl": 63,
        },
        "tcp": {"tcp_flags": "02", "syn": True},
    },
}
ALERT = {
    **OUTER,
    "event_timestamp": "1764655944",
    "event": {
        "timestamp": "2025-12-02T06:12:24.250911+0000",
        "flow_id": 2090112317004136,
        "event_type": "alert",
        "src_ip": "10.0.3.17",
        "src_port": 51522,
        "dest_ip": "51.255.34.118",
        "dest_port": 443,
        "proto": "TCP",
        "alert": {
            "action": "allowed",
            "signature_id": 2036289,
            "rev": 1,
            "signature": "ET POLICY CoinMiner Domain in TLS SNI",
            "category": "Crypto Currency Mining Activity Detected",
            "severity": 2,
        },
        "tls": {"sni": "Pool.SupportXMR.com", "version": "TLS 1.3"},
        "app_proto": "tls",
        "flow": {
            "pkts_toserver": 4,
            "pkts_toclient": 3,
            "bytes_toserver": 782,
            "bytes_toclient": 4301,
            "start": "2025-12-02T06:12:24.101276+0000",
        },
    },
}
BLOCKED = {
    **OUTER,
    "event_timestamp": "1764655879",
    "event": {
        "timestamp": "2025-12-02T06:11:19.512044+0000",
        "flow_id": 1182365120917450,
        "event_type": "alert",
        "src_ip": "10.0.3.17",
        "src_port": 40951,
        "dest_ip": "141.94.96.144",
        "dest_port": 3333,
        "proto": "TCP",
        "alert": {"action": "blocked", "signature_id": 2022886, "signature": "ET COINMINER"},
    },
}
TLS_EVENT = {
    **OUTER,
    "event_timestamp": "1764655990",
    "event": {
        "timestamp": "2025-12-02T06:13:10.000200+0000",
        "flow_id": 2090112317004136,
        "event_type": "tls",
        "src_ip": "10.0.3.22",
        "dest_ip": "3.20.118.4",
        "tls": {"sni": "Tunnel.US.ngrok.com", "version": "TLS 1.2"},
    },
}
TLS_LOG = {
    **OUTER,
    "event_timestamp": 1764656031,
    "event": {
        "timestamp": "2025-12-02T06:13:51.412778Z",
        "src_ip": "10.0.3.22",
        "src_port": "59844",
        "dest_ip": "198.51.100.44",
        "dest_port": "443",
        "sni": "updates.example.net",
        "tls_error": {"error_message": "Server name mismatch"},
    },
}


VARIANTS = [
    variant(NETFLOW),
    variant(ALERT),
    variant(BLOCKED),
    variant(TLS_EVENT),
    variant(NETFLOW, event__flow_id=2090112317004136),  # named by the alert's SNI
    variant(NETFLOW, event__netflow__end=None),
    variant(NETFLOW, event__netflow__end="2025-12-02T06:11:19Z"),  # end before start: a note
    variant(NETFLOW, event__netflow__start=...),  # event.timestamp stands in: a note
    variant(NETFLOW, event__netflow__start="2025-12-02T06:11:19"),  # naive: a note
    variant(NETFLOW, event__netflow__start="1764655879"),  # epoch seconds: line by line
    variant(NETFLOW, event__netflow__bytes=-1),
    variant(NETFLOW, event__netflow__pkts=2**63),
    variant(NETFLOW, event__flow={"bytes_toserver": -1}),  # ignored by a netflow record
    variant(NETFLOW, event__event_type=" netflow ", firewall_name=" "),
    variant(NETFLOW, event__event_type="flow", event__flow={"start": "2025-12-02T06:00:00Z"}),
    variant(NETFLOW, event__event_type="flow", event__flow={"end": "2025-12-02T06:00:00Z"}),
    variant(NETFLOW, event__flow_id="1182365120917450"),  # a string: line by line
    variant(NETFLOW, event__flow_id=0, event__http={"hostname": "Evil.COM:8443"}),
    variant(NETFLOW, event__src_ip="10.0.3.999"),
    variant(NETFLOW, event__dest_ip="2001:DB8::1", event__src_ip="2001:db8:0:0:0:0:0:7"),
    variant(NETFLOW, event__dest_port=70000),
    variant(NETFLOW, event__src_port=None, event__proto="6"),
    variant(ALERT, event__alert__action="Blocked"),
    variant(ALERT, event__alert__action="shrug", event__alert__signature=""),
    variant(ALERT, event__alert=None, event__tls_error={"error_message": "reset"}),
    variant(ALERT, event__alert={"signature_id": -4}, event__tls=None),
    variant(ALERT, event__timestamp=...),  # event_timestamp stands in: a note
    variant(ALERT, event__timestamp=..., event_timestamp=...),  # no time: a reject
    variant(ALERT, event__timestamp="yesterday"),
    variant(ALERT, event__timestamp="2025-12-02T06:12:24.250911+2400"),
    variant(ALERT, event__flow__bytes_toclient=-2),
    variant(ALERT, event__flow=None, event__http={"hostname": "[2001:db8::1]:8080"}),
    variant(ALERT, event__tls__sni="pool.example.net.", event__flow_id=1182365120917450),
    variant(ALERT).replace('"version"', '"subject":"a","subject":"b","version"'),  # as AWS writes
    variant(TLS_EVENT, event__tls__sni="Other.Example.COM"),  # a second name: the first wins
    variant(TLS_EVENT, event__event_type="dns", event__dns={"rrname": "x.example"}),
    variant(TLS_EVENT, event__event_type="x" * 60),
    variant(TLS_EVENT, event__event_type=""),
    variant(TLS_EVENT, event__event_type=5),
    variant(TLS_LOG),
    variant(TLS_LOG, event__tls_error=...),
    variant(
        TLS_LOG,
        event__tls_error=...,
        event__revocation_check={"status": "REVOKED", "action": "DROP"},
    ),
    variant(TLS_LOG, event__tls_error=None, event__src_port=1, event__dest_port=2),
    variant(NETFLOW, event=None),
    variant(NETFLOW, event="alert"),
    variant(NETFLOW, event={}),
    '{"firewall_name":"a","firewall_name":"b","event":{"event_type":"netflow"}}',
    variant(NETFLOW).replace('"tcp"', '"deep":' + "[" * 3000 + "]" * 3000 + ',"tcp"'),
    variant(NETFLOW).replace('"tcp"', '"big":' + "7" * 4400 + ',"tcp"'),  # too long for json
    '{"a":1}{"b":2}',
    '{"broken": ',
    "[1, 2]",
    "",
    "   ",
    variant(NETFLOW) + "\r",
    variant(ALERT).replace("CoinMiner", "Coin\\u0000Miner"),
    variant(ALERT, event__alert__category="caf\u00e9 \ud83d\ude00"),
]
RAW_VARIANTS = [
    *(v.encode() for v in VARIANTS),
    b'{"firewall_name":"\xff","event":{"event_type":"netflow"}}',
    b"\xef\xbb\xbf",
]


def reference(source: Source, options: LoadOptions) -> LoadResult:
    """Every line of ``iter_lines`` through the per-line reader: the loader before the column-wise
    path existed."""
    load = FileLoad(source, options, aws_nfw.name, aws_nfw.kind, NETWORK_EVENTS)
    reader = aws_nfw.Reader(load)
    for line, raw in iter_lines(source):
        reader.line(line, raw, load)
    return reader.result()


def load(path: Path, *, fast: bool, cap: int = 1 << 24, **options: object) -> LoadResult:
    source = Source(path, path.name, limits=Limits(max_line_bytes=cap))
    opts = LoadOptions(**options)  # type: ignore[arg-type]
    return aws_nfw.read(source, opts) if fast else reference(source, opts)


def outcomes(path: Path, **options: Any) -> None:
    same_outcome(lambda fast: load(path, fast=fast, **options))


def test_every_variant_line_is_read_as_the_per_line_reader_reads_it(tmp_path):
    path = write(tmp_path / "nfw.jsonl", RAW_VARIANTS)
    outcomes(path)
    fast = load(path, fast=True)
    assert fast.stats.loaded > 20 and fast.stats.rejected > 10 and fast.stats.skipped_total > 3
    assert fast.stats.notes["dst_domain taken from another record of the same flow"] > 5


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(st.sampled_from(RAW_VARIANTS), min_size=1, max_size=60),
    trailing_newline=st.booleans(),
    piece=st.integers(1, 20),
    keeps=st.booleans(),
)
def test_column_wise_equals_line_by_line(
    tmp_path_factory, monkeypatch, lines, trailing_newline, piece, keeps
):
    monkeypatch.setattr(blocks, "SMALLEST_PIECE", piece)
    path = write(tmp_path_factory.mktemp("nfw") / "nfw.jsonl", lines, trailing_newline)
    policy = KeepPolicy(actions=("denied", "alerted", "unknown"), anchors=3) if keeps else None
    outcomes(path, keep=policy)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(st.sampled_from(RAW_VARIANTS[:5]), min_size=1, max_size=30),
    chunk=st.integers(1, 2000),
    long_at=st.none() | st.integers(0, 29),
)
def test_chunk_boundaries_and_long_lines(tmp_path_factory, monkeypatch, lines, chunk, long_at):
    """Lines split across read chunks, and the --max-line-bytes stop at the same line."""
    if long_at is not None and long_at < len(lines):
        long = variant(NETFLOW, event__app_proto="x" * 2000).encode()
        lines = [*lines[:long_at], long, *lines[long_at:]]
    path = write(tmp_path_factory.mktemp("nfw") / "nfw.jsonl", lines)
    monkeypatch.setattr(blocks, "CHUNK_BYTES", chunk)
    outcomes(path, cap=2048)


def test_the_first_domain_by_line_wins_whichever_path_read_it(tmp_path, monkeypatch):
    monkeypatch.setattr(blocks, "SMALLEST_PIECE", 1)
    refused = variant(TLS_EVENT, event__tls__sni="first.example", event__src_port="1")
    later = variant(TLS_EVENT, event__tls__sni="second.example")
    flow = variant(NETFLOW, event__flow_id=2090112317004136).encode()
    for lines, expected in (
        ([refused, later], "first.example"),
        ([later, refused], "second.example"),
    ):
        path = write(tmp_path / "nfw.jsonl", [*(x.encode() for x in lines), flow])
        fast, slow = load(path, fast=True), load(path, fast=False)
        same(fast, slow)
        assert fast.table.column("dst_domain").to_pylist() == [expected]


def test_a_tls_log_file_is_read_line_by_line_alike(tmp_path):
    lines = [variant(TLS_LOG).encode()] * 40 + [variant(NETFLOW).encode()] * 40
    path = write(tmp_path / "tls.jsonl", lines)
    fast, slow = load(path, fast=True), load(path, fast=False)
    same(fast, slow)
    assert fast.stats.loaded == 80


@pytest.mark.parametrize("keeps", [False, True])
def test_big_compressed_file_with_bad_lines_among_good(tmp_path, keeps):
    """A run mixing good and bad rows loses none of the good ones (gzip streams the same way)."""
    lines = [VARIANTS[i % 5].encode() for i in range(20_000)]
    lines[7_777] = variant(NETFLOW, event__src_ip="10.0.3.999").encode()
    lines[12_345] = b'{"broken": '
    path = tmp_path / "nfw.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    policy = KeepPolicy(actions=("denied", "alerted"), anchors=100) if keeps else None
    fast, slow = load(path, fast=True, keep=policy), load(path, fast=False, keep=policy)
    same(fast, slow)
    assert fast.stats.read == 20_000 and fast.stats.rejected == 2
    assert fast.stats.loaded == 4 * 4_000 - 2  # and 4,000 TLS events skipped
    assert fast.stats.skipped_total == 4_000


def test_strict_stops_at_the_same_first_reject(tmp_path):
    bad = variant(NETFLOW, event__dest_ip=...).encode()
    lines = [VARIANTS[0].encode()] * 50 + [bad] + [VARIANTS[1].encode()] * 50
    path = write(tmp_path / "nfw.jsonl", lines)
    messages = raised(lambda fast: load(path, fast=fast, strict=True))
    assert messages[0] == messages[1] and "nfw.jsonl:51: dest_ip is missing" in messages[0]


@pytest.mark.parametrize("anchors", [1, 7, 1000])
def test_keep_policy_keeps_violations_and_the_exact_anchor_sample(tmp_path, anchors):
    lines = [VARIANTS[i % 5].encode() for i in range(3_000)] + [VARIANTS[18].encode()]
    path = write(tmp_path / "nfw.jsonl", lines)
    policy = KeepPolicy(actions=("denied", "alerted"), anchors=anchors)
    full = load(path, fast=True)
    kept = load(path, fast=True, keep=policy)
    expected, _ = cut_sample(full.table, policy, {})
    assert kept.table.sort_by("source_line").equals(expected.sort_by("source_line"))
    violations = sum(1 for a in full.table.column("action").to_pylist() if a != "allowed")
    assert violations == 2 * 600  # every alert is kept, whatever the sample size
    assert kept.table.num_rows == violations + min(anchors, 2 * 600)
    assert kept.stats.read == full.stats.read and kept.stats.loaded == full.stats.loaded
    assert kept.stats.unkept == full.stats.loaded - kept.table.num_rows
    assert kept.rejects == full.rejects


def test_real_records_are_read_column_wise(tmp_path, monkeypatch):
    """Only the TLS-log record of the sample goes line by line (and the duplicated keys AWS
    writes in an alert's tls object do not send it there)."""
    sample = (
        Path(__file__).resolve().parent / "data" / "aws_nfw" / "sandbox_alert_netflow_tls.jsonl"
    )
    lines = sample.read_bytes().splitlines()
    lines[2] = lines[2].replace(b'"version"', b'"subject":"a","subject":"b","version"')
    path = write(tmp_path / "nfw.jsonl", lines)
    seen: list[int] = []
    original = aws_nfw.Reader.line

    def spy(self: aws_nfw.Reader, line: int, raw: bytes, load: FileLoad) -> None:
        seen.append(line)
        original(self, line, raw, load)

    monkeypatch.setattr(aws_nfw.Reader, "line", spy)
    monkeypatch.setattr(blocks, "SMALLEST_PIECE", 1)  # a refused line alone, not its piece
    result = aws_nfw.read(Source(path, path.name), LoadOptions())
    assert seen == [8] and result.stats.loaded == 8
