"""The Suricata EVE loader's column-wise path gives exactly the per-line reader's rows, rejects
and stats, whatever the lines (property test); flows are named by their first naming event in
line order whichever path read it; with ``run``'s keep policy it keeps exactly the violations
and the anchor sample the full table would give."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loader_helpers import ns, raised, same, same_outcome, variant, write

from correlate.errors import FormatMismatch, InputError, StrictRejection
from correlate.keep import KeepPolicy, cut_sample
from correlate.loaders import LoadOptions, LoadResult, blocks, suricata_eve
from correlate.loaders.base import FileLoad, read_counting_long_lines
from correlate.schema import NETWORK_EVENTS
from correlate.sources import Limits, Source, iter_lines

FLOW = {
    "timestamp": "2025-12-02T06:12:05.000100+0000",
    "flow_id": 1111111111111111,
    "in_iface": "veth-sbx03",
    "event_type": "flow",
    "src_ip": "192.168.10.13",
    "src_port": 40210,
    "dest_ip": "45.9.148.117",
    "dest_port": 443,
    "proto": "TCP",
    "app_proto": "tls",
    "flow": {
        "pkts_toserver": 120,
        "pkts_toclient": 110,
        "bytes_toserver": 15000,
        "bytes_toclient": 9000,
        "start": "2025-12-02T06:05:21.500000+0000",
        "end": "2025-12-02T06:11:05.000000+0000",
        "age": 344,
        "state": "closed",
        "reason": "timeout",
        "alerted": False,
    },
}
ALERT = {
    "timestamp": "2025-12-02T14:05:50.250000+0800",
    "flow_id": 2222222222222222,
    "in_iface": "veth-sbx03",
    "event_type": "alert",
    "src_ip": "192.168.10.13",
    "src_port": 40300,
    "dest_ip": "198.51.100.7",
    "dest_port": 4444,
    "proto": "TCP",
    "direction": "to_server",
    "alert": {
        "action": "blocked",
        "gid": 1,
        "signature_id": 9000001,
        "rev": 1,
        "signature": "LOCAL block reverse shell port 4444",
        "category": "Policy Violation",
        "severity": 1,
    },
}
NETFLOW = {
    "timestamp": "2025-12-02T06:09:10.000000+0000",
    "flow_id": 6666666666666666,
    "event_type": "netflow",
    "src_ip": "192.168.10.13",
    "src_port": 40500,
    "dest_ip": "45.9.148.117",
    "dest_port": 14444,
    "proto": "TCP",
    "app_proto": "unknown",
    "netflow": {"pkts": 12, "bytes": 1800, "start": "2025-12-02T06:09:00Z", "end": None},
}
DROP = {
    "timestamp": "2025-12-02T06:06:00.000200+00:00",
    "flow_id": 3333333333333333,
    "event_type": "drop",
    "src_ip": "192.168.10.13",
    "src_port": 40310,
    "dest_ip": "203.0.113.66",
    "dest_port": 8080,
    "proto": "TCP",
    "drop": {"len": 60, "reason": "rules"},
    "verdict": {"action": "drop"},
}
TLS = {
    "timestamp": "2025-12-02T06:05:21.600000+0000",
    "flow_id": 1111111111111111,
    "event_type": "tls",
    "src_ip": "192.168.10.13",
    "dest_ip": "45.9.148.117",
    "tls": {"sni": "Pool.SupportXMR.com", "version": "TLS 1.3"},
}
DNS = {
    "timestamp": "2025-12-02T06:05:30.000000+0000",
    "flow_id": 1111111111111111,
    "event_type": "dns",
    "dns": {"version": 3, "type": "request", "queries": [{"rrname": "xmr.Pool.MineXMR.com."}]},
}
STATS = {"timestamp": "2025-12-02T06:20:08.000000+0000", "event_type": "stats", "stats": {}}


VARIANTS = [
    variant(FLOW),
    variant(ALERT),
    variant(NETFLOW),
    variant(DROP),
    variant(TLS),
    variant(DNS),
    variant(STATS),
    variant(FLOW, flow_id=1010, flow__action="drop"),
    variant(FLOW, flow__end="2025-12-02T06:05:21Z"),  # end before start: a note
    variant(FLOW, flow__end=""),
    variant(FLOW, flow__start=...),  # the event timestamp stands in: a note
    variant(FLOW, flow__start="2025-12-02T06:05:21.5"),  # naive: a note
    variant(FLOW, flow__start="2025-02-29T06:05:21Z"),  # no such day: a reject
    variant(FLOW, flow__start="2025-12-02 06:05:21,5 UTC"),
    variant(FLOW, flow__start="2024-02-29T23:59:59.123456789123-07:30"),
    variant(FLOW, flow__start="1600-01-01T00:00:00Z"),  # out of range: a reject
    variant(FLOW, flow__end="2025-12-02T24:00:00Z"),
    variant(FLOW, flow__bytes_toserver=-1),
    variant(FLOW, flow__bytes_toserver=2**63),  # out of int64: read line by line
    variant(FLOW, flow__pkts_toclient=1.5),
    variant(FLOW, src_ip="10.0.0.999"),
    variant(FLOW, src_ip=..., dest_ip="2001:DB8::1"),
    variant(FLOW, src_port=70000),
    variant(FLOW, dest_port="443"),  # a string where EVE writes numbers
    variant(FLOW, flow_id="77"),
    variant(FLOW, flow_id=None, app_proto="failed"),
    variant(FLOW, flow=None),
    variant(ALERT, alert={}),  # no alert object: a reject
    variant(ALERT, alert={"gid": 1}),
    variant(ALERT, alert=None),
    variant(ALERT, alert__action="allowed", verdict={"action": "drop"}),
    variant(ALERT, alert__action=None, verdict={"action": " DROP "}),
    variant(ALERT, alert__action="Logged", host="sbx-gw-1"),
    variant(ALERT, direction="to_client"),
    variant(
        ALERT,
        flow={"src_ip": "198.51.100.7", "dest_ip": "192.168.10.13", "bytes_toserver": 5},
    ),
    variant(ALERT, flow={"src_ip": "198.51.100.7", "dest_ip": "bad"}),
    variant(ALERT, flow={"src_ip": "-", "dest_ip": "bad"}, direction="to_client"),
    variant(ALERT, timestamp="2025-12-02T06:20:07.123456"),  # naive: a note
    variant(ALERT, timestamp=None),
    variant(ALERT, http={"hostname": "Get.Example.ORG"}, app_proto=" HTTP "),
    variant(ALERT, http={"hostname": "203.0.113.7"}, alert__signature_id=-3),
    variant(ALERT, tls={"sni": "[2001:db8::1]"}, flow_id=1111111111111111),
    variant(DROP, drop__reason=None, verdict=...),
    variant(DROP, drop={"reason": {"nested": 1}}),
    variant(NETFLOW, netflow__bytes=-5),
    variant(NETFLOW, netflow__start=" "),
    variant(NETFLOW, flow_id=1111111111111111),  # FLOW's netflow twin: skipped when FLOW is in
    variant(NETFLOW, flow_id=1111111111111111, src_ip="10.0.0.999"),  # a twin is not read
    variant(NETFLOW, flow_id=1111111111111111, tls={"sni": "twin.example"}),  # names nothing
    variant(FLOW, flow_id=6666666666666666),  # makes NETFLOW a twin
    variant(FLOW, flow_id="6666666666666666"),  # a string flow_id: read line by line
    json.dumps({**FLOW, "flow_id": 6666666666666666}),  # spaces after ':' and ','
    variant(TLS, tls__sni="Other.Example.COM"),  # a second name for flow 1111...: the first wins
    variant(TLS, flow_id=2222222222222222, tls__sni="later.example.net."),
    variant(DNS, dns={"rrname": "old.example.org", "answers": [{"rrname": "x.example"}]}),
    variant(DNS, dns={"answers": [None, {"rrdata": 1}, {"rrname": "ans.example"}]}),
    variant(DNS, dns={"queries": ["not an object"]}),
    variant(DNS, flow_id=1010, dns={"queries": [{"rrname": "dropped.example"}]}),
    variant(STATS, event_type=" stats "),
    variant(STATS, event_type=""),
    variant(STATS, event_type=42),
    variant(STATS, event_type=...),
    '{"event_type":"flow","event_type":"alert","timestamp":"2025-12-02T06:00:00Z"}',
    variant(FLOW, in_iface={"nested": 1}),
    variant(FLOW, deep=json.loads("[" * 200 + "]" * 200)),  # deep, but not too deep for json
    variant(FLOW).replace('"proto"', '"deep":' + "[" * 3000 + "]" * 3000 + ',"proto"'),
    variant(FLOW, metadata={"flowbits": [["a"]] * 300}),
    variant(FLOW).replace('"proto"', '"big":' + "7" * 4400 + ',"proto"'),  # too long for json
    variant(FLOW, flow__src_ip=["x"]),
    '{"a":1}{"b":2}',
    '{"broken": ',
    "[1, 2]",
    "",
    "   ",
    variant(FLOW) + "\r",
    variant(ALERT).replace("LOCAL", "LO\\u0000CAL"),
    variant(ALERT, alert__signature="caf\u00e9 \ud83d\ude00"),
]
RAW_VARIANTS = [
    *(v.encode() for v in VARIANTS),
    b'{"event_type":"flow","src_ip":"\xff"}',
    b"\xef\xbb\xbf",
]


def reference(source: Source, options: LoadOptions) -> LoadResult:
    """Every line of ``iter_lines`` through the per-line reader: the loader before the column-wise
    path existed."""
    load = FileLoad(source, options, suricata_eve.name, suricata_eve.kind, NETWORK_EVENTS)
    load.stats.unit = "events"
    reader = suricata_eve.Reader(load)
    for line, raw in iter_lines(source):
        reader.line(line, raw, load)
    return reader.result()


def load(path: Path, *, fast: bool, cap: int = 1 << 24, **options: object) -> LoadResult:
    source = Source(path, path.name, limits=Limits(max_line_bytes=cap))
    opts = LoadOptions(**options)  # type: ignore[arg-type]
    return suricata_eve.read(source, opts) if fast else reference(source, opts)


def outcomes(path: Path, **options: Any) -> None:
    same_outcome(lambda fast: load(path, fast=fast, **options))


def test_every_variant_line_is_read_as_the_per_line_reader_reads_it(tmp_path):
    path = write(tmp_path / "eve.json", RAW_VARIANTS)
    outcomes(path)
    fast = load(path, fast=True)
    assert fast.stats.loaded > 20 and fast.stats.rejected > 10 and fast.stats.skipped_total > 10


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
    path = write(tmp_path_factory.mktemp("eve") / "eve.json", lines, trailing_newline)
    if not keeps:
        outcomes(path)
        return
    # with a keeper the check schema picks the kept rows, which are parsed again in full
    policy = KeepPolicy(actions=("denied", "alerted", "unknown"), anchors=1_000_000)
    outcomes(path, keep=policy)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(st.sampled_from(RAW_VARIANTS[:7]), min_size=1, max_size=30),
    chunk=st.integers(1, 2000),
    long_at=st.none() | st.integers(0, 29),
)
def test_chunk_boundaries_and_long_lines(tmp_path_factory, monkeypatch, lines, chunk, long_at):
    """Lines split across read chunks, and the --max-line-bytes stop at the same line."""
    if long_at is not None and long_at < len(lines):
        long = variant(FLOW, in_iface="x" * 2000).encode()
        lines = [*lines[:long_at], long, *lines[long_at:]]
    path = write(tmp_path_factory.mktemp("eve") / "eve.json", lines)
    monkeypatch.setattr(blocks, "CHUNK_BYTES", chunk)
    outcomes(path, cap=2048)


def test_the_first_naming_event_by_line_wins_whichever_path_read_it(tmp_path, monkeypatch):
    """A refused line naming a flow before a column-wise one names it; and the other way."""
    monkeypatch.setattr(blocks, "SMALLEST_PIECE", 1)
    refused = variant(TLS, tls__sni="first.example", src_port="1")  # a string port: refused
    later = variant(TLS, tls__sni="second.example")
    for lines, expected in (
        ([refused, later], "first.example"),
        ([later, refused], "second.example"),
    ):
        path = write(tmp_path / "eve.json", [*(x.encode() for x in lines), variant(FLOW).encode()])
        fast, slow = load(path, fast=True), load(path, fast=False)
        same(fast, slow)
        assert fast.table.column("dst_domain").to_pylist() == [expected]


@pytest.mark.parametrize("keeps", [False, True])
def test_big_compressed_file_with_bad_lines_among_good(tmp_path, keeps):
    """A run mixing good and bad rows loses none of the good ones (gzip streams the same way)."""
    lines = [VARIANTS[i % 7].encode() for i in range(20_000)]
    lines[7_777] = variant(FLOW, src_ip="10.0.0.999").encode()
    lines[12_345] = b'{"broken": '
    path = tmp_path / "eve.json.gz"
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    policy = KeepPolicy(actions=("denied", "alerted"), anchors=100) if keeps else None
    fast, slow = load(path, fast=True, keep=policy), load(path, fast=False, keep=policy)
    same(fast, slow)
    assert fast.stats.read == 20_000 and fast.stats.rejected == 2
    assert fast.stats.loaded == 2858 - 1 + 3 * 2857  # flows (one bad), alerts, netflows, drops
    assert fast.stats.skipped == {
        "tls event used for enrichment": 2857 - 1,
        "dns event used for enrichment": 2857,
        "stats event (not traffic)": 2857,
    }


def test_strict_stops_at_the_same_first_reject(tmp_path):
    bad = variant(FLOW, dest_ip=...).encode()
    lines = [VARIANTS[0].encode()] * 50 + [bad] + [VARIANTS[1].encode()] * 50
    path = write(tmp_path / "eve.json", lines)
    messages = raised(lambda fast: load(path, fast=fast, strict=True))
    assert messages[0] == messages[1] and "eve.json:51: flow: dest_ip is missing" in messages[0]


def test_a_file_of_untyped_events_stops_early_alike(tmp_path):
    lines = [variant(STATS).encode(), *[variant(STATS, event_type="").encode()] * 150]
    path = write(tmp_path / "eve.json", lines)
    with pytest.raises(FormatMismatch, match="does not look like suricata_eve") as caught:
        load(path, fast=True)
    with pytest.raises(FormatMismatch) as again:
        load(path, fast=False)
    assert str(caught.value) == str(again.value)


@pytest.mark.parametrize("anchors", [1, 7, 1000])
def test_keep_policy_keeps_violations_and_the_exact_anchor_sample(tmp_path, anchors):
    lines = [VARIANTS[i % 7].encode() for i in range(3_000)] + [VARIANTS[20].encode()]
    path = write(tmp_path / "eve.json", lines)
    policy = KeepPolicy(actions=("denied", "alerted"), anchors=anchors)
    full = load(path, fast=True)
    kept = load(path, fast=True, keep=policy)
    expected, _ = cut_sample(full.table, policy, {})
    assert kept.table.sort_by("source_line").equals(expected.sort_by("source_line"))
    denied = sum(1 for a in full.table.column("action").to_pylist() if a != "allowed")
    assert denied == 2 * 429  # every alert and drop is kept, whatever the sample size
    assert kept.table.num_rows == denied + min(anchors, 2 * 429)
    assert kept.stats.read == full.stats.read and kept.stats.loaded == full.stats.loaded
    assert kept.stats.skipped == full.stats.skipped
    assert kept.stats.unkept == full.stats.loaded - kept.table.num_rows
    assert kept.rejects == full.rejects


def test_column_wise_times_are_parse_iso_exactly():
    """The vectorised ISO reader against ``timeparse.parse_iso`` on spellings at its edges."""
    spellings = [
        "2025-12-02T06:12:05.000100+0000",
        "2025-12-02T06:12:05Z",
        "2025-12-02T06:12:05.1Z",
        "2025-12-02T06:12:05.123456789-07:30",
        "2024-02-29T23:59:59+2359",
        "2000-02-29T00:00:00-2359",
        "1678-01-01T00:00:00Z",
        "2261-12-31T23:59:59.999999999+0000",
        "1970-01-01T00:00:00Z",
        "1969-12-31T23:59:59.5Z",
        "1900-03-01T00:00:00+0100",
    ]
    refused = [
        "2025-02-29T00:00:00Z",
        "2025-13-01T00:00:00Z",
        "2025-12-00T00:00:00Z",
        "2025-12-02T24:00:00Z",
        "2025-12-02T06:60:00Z",
        "2025-12-02T06:00:60Z",
        "2025-12-02T06:00:00+2400",
        "2025-12-02T06:00:00+0060",
        "2025-12-02T06:00:00",
        "2025-12-02T06:00:00.Z",
        "2025-12-02T06:00:00.1234567890Z",
        "2025-12-02 06:00:00Z",
        " 2025-12-02T06:00:00Z",
        "2025-12-02T06:00:00z",
        "1677-09-22T00:00:00Z",
        "\u0662025-12-02T06:00:00Z",
        "",
        None,
    ]
    times = suricata_eve.iso_ns(pa.array(spellings + refused, pa.string()))
    assert times.valid.tolist() == [True] * len(spellings) + [False] * len(refused)
    assert times.ns[: len(spellings)].tolist() == [ns(s) for s in spellings]
    assert np.all(times.ns[len(spellings) :] == 0)


def test_real_events_are_read_column_wise(monkeypatch):
    """Of the samples' events, only those with a note or a reject go line by line."""
    data = Path(__file__).resolve().parent / "data" / "suricata_eve"
    seen: list[int] = []
    original = suricata_eve.Reader.line

    def spy(self: suricata_eve.Reader, line: int, raw: bytes, load: FileLoad) -> None:
        seen.append(line)
        original(self, line, raw, load)

    monkeypatch.setattr(suricata_eve.Reader, "line", spy)
    monkeypatch.setattr(blocks, "SMALLEST_PIECE", 1)  # a refused line alone, not its piece
    for sample in sorted(data.glob("*.json.log")):
        if "malformed" in sample.name:
            continue
        seen.clear()
        result = suricata_eve.read(Source(sample, sample.name), LoadOptions())
        noted = [r["source_line"] for r in result.table.to_pylist() if r["ts_note"]]
        assert seen == noted, sample.name


def test_column_wise_validity_of_every_month_end_in_range():
    """Days 28-31 of every month of every year the vectorised reader takes, against parse_iso."""
    spellings, expected = [], []
    for year in range(1677, 2263):
        for month in range(1, 13):
            for day in (28, 29, 30, 31):
                text = f"{year:04d}-{month:02d}-{day:02d}T12:00:00Z"
                spellings.append(text)
                try:
                    expected.append(ns(text) if 1678 <= year <= 2261 else None)
                except ValueError:
                    expected.append(None)
    times = suricata_eve.iso_ns(pa.array(spellings))
    got = [int(t) if ok else None for t, ok in zip(times.ns, times.valid, strict=True)]
    assert got == expected


@pytest.mark.parametrize("long_first", [False, True])
def test_strict_and_a_long_line_stop_where_the_per_line_reader_stops(
    tmp_path, monkeypatch, long_first
):
    """Runs are parsed ahead in a second thread, but the first problem by line still wins."""
    monkeypatch.setattr(blocks, "CHUNK_BYTES", 4096)  # many runs
    good, bad = VARIANTS[0].encode(), variant(FLOW, dest_ip=...).encode()
    long = variant(FLOW, in_iface="x" * 3000).encode()
    body = [good] * 20 + [bad] + [good] * 20
    lines = [good] * 10 + [long] + body if long_first else body + [long] + [good] * 10
    path = write(tmp_path / "eve.json", lines)
    found = []
    for fast in (True, False):
        source = Source(path, path.name, limits=Limits(max_line_bytes=2048))
        read = suricata_eve.read if fast else reference
        with pytest.raises((InputError, StrictRejection)) as caught:
            read_counting_long_lines(read, source, LoadOptions(strict=True))
        found.append((type(caught.value), str(caught.value)))
    assert found[0] == found[1]
    # the long line is a rejected row like any other: the first by line stops --strict
    assert found[0][0] is StrictRejection
    assert found[0][1].startswith(f"eve.json:{11 if long_first else 21}: ")
