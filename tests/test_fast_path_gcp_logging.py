"""The GCP Cloud Logging loader's column-wise path (JSON lines of LogEntry) gives exactly the
per-line reader's rows, rejects and stats, whatever the lines (property test); with ``run``'s keep
policy it keeps exactly the violations and the anchor sample the full table would give."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loader_helpers import raised, same, same_outcome, variant, write

from correlate.keep import KeepPolicy, cut_sample
from correlate.loaders import LoadOptions, LoadResult, blocks, gcp_logging
from correlate.loaders.base import FileLoad
from correlate.schema import NETWORK_EVENTS
from correlate.sources import Limits, Source, iter_lines

DATA = Path(__file__).resolve().parent / "data" / "gcp_logging"
FIREWALL_LOG = "projects/rl-sandboxes/logs/compute.googleapis.com%2Ffirewall"
FLOWS_LOG = "projects/rl-sandboxes/logs/compute.googleapis.com%2Fvpc_flows"
VM = {"project_id": "rl-sandboxes", "region": "europe-west4", "zone": "europe-west4-a"}
VPC = {"project_id": "rl-sandboxes", "subnetwork_name": "sandboxes-ew4", "vpc_name": "agents"}
FIREWALL = {
    "insertId": "1x9k2fe2u3vq0",
    "jsonPayload": {
        "connection": {
            "dest_ip": "198.51.100.77",
            "dest_port": 3333,
            "protocol": 6,
            "src_ip": "10.128.0.7",
            "src_port": 40001,
        },
        "disposition": "DENIED",
        "instance": {**VM, "vm_name": "sbx-runner-07"},
        "remote_location": {"continent": "Europe", "country": "nld"},
        "rule_details": {
            "action": "DENY",
            "destination_range": ["0.0.0.0/0"],
            "direction": "EGRESS",
            "ip_port_info": [{"ip_protocol": "ALL"}],
            "priority": 65534,
            "reference": "network:agents/firewall:deny-all-egress",
        },
        "vpc": VPC,
    },
    "logName": FIREWALL_LOG,
    "receiveTimestamp": "2025-12-02T06:11:26.418093752Z",
    "resource": {"labels": {"location": "europe-west4-a"}, "type": "gce_subnetwork"},
    "timestamp": "2025-12-02T06:11:19.123456789Z",
}
FLOW = {
    "insertId": "mnu7rwf1a2b3c",
    "jsonPayload": {
        "bytes_sent": "5120",
        "connection": {
            "dest_ip": "198.51.100.77",
            "dest_port": 3333,
            "protocol": 6,
            "src_ip": "10.128.0.7",
            "src_port": 40001,
        },
        "dest_location": {"asn": 64500, "continent": "Europe", "country": "nld"},
        "end_time": "2025-12-02T06:15:04.987654321Z",
        "packets_sent": "40",
        "reporter": "SRC",
        "rtt_msec": "31",
        "src_instance": {**VM, "vm_name": "sbx-runner-07"},
        "src_vpc": VPC,
        "start_time": "2025-12-02T06:15:00.123456789Z",
    },
    "logName": FLOWS_LOG,
    "receiveTimestamp": "2025-12-02T06:15:41.010203040Z",
    "timestamp": "2025-12-02T06:15:41.010203040Z",
}
AUDIT = {
    "insertId": "-x2b9c1d3",
    "logName": "projects/rl-sandboxes/logs/cloudaudit.googleapis.com%2Factivity",
    "protoPayload": {"methodName": "v1.compute.firewalls.patch"},
    "receiveTimestamp": "2025-12-02T06:13:00.123456789Z",
    "severity": "NOTICE",
    "timestamp": "2025-12-02T06:12:59.9Z",
}


P = "jsonPayload__"
VARIANTS = [
    variant(FIREWALL),
    variant(FLOW),
    variant(AUDIT),
    variant(FIREWALL, **{P + "disposition": "ALLOWED", P + "rule_details__direction": "INGRESS"}),
    variant(FIREWALL, **{P + "disposition": "INTERCEPTED", P + "vpc": ...}),
    variant(FIREWALL, **{P + "disposition": ..., P + "rule_details__action": " allow "}),
    variant(FIREWALL, **{P + "disposition": " denied ", P + "rule_details": None}),
    variant(FIREWALL, **{P + "remote_instance": {**VM, "vm_name": "sbx-runner-09"}}),
    variant(FIREWALL, **{P + "remote_vpc": {}}),  # empty: falsy
    variant(FIREWALL, **{P + "remote_vpc": {"other": 1}}),  # truthy, members unknown
    variant(FIREWALL, **{P + "remote_instance": None, P + "instance": None}),
    variant(FIREWALL, **{P + "remote_instance": "sbx-runner-09"}),
    variant(FIREWALL, **{P + "connection__protocol": "udp"}),  # a name: line by line
    variant(FIREWALL, **{P + "connection__src_ip": "2600:1900:4000:0:0:0:0:7"}),
    variant(FIREWALL, **{P + "connection__dest_ip": "10.128.0.300"}),
    variant(FIREWALL, **{P + "connection__dest_port": 70000}),
    variant(FIREWALL, **{P + "connection__src_port": None, P + "connection__protocol": 99}),
    variant(FIREWALL, **{P + "connection": ...}),
    variant(FIREWALL, **{P + "connection": "10.0.0.1"}),
    variant(FIREWALL, timestamp=...),  # receiveTimestamp stands in: a note
    variant(FIREWALL, timestamp="2025-12-02T06:11:19"),  # naive: a note
    variant(FIREWALL, timestamp="yesterday"),
    variant(FIREWALL, timestamp="2025-12-02T06:11:19.5+05:30"),
    variant(FIREWALL, jsonPayload=...),
    variant(FIREWALL, jsonPayload=None, json_payload=FIREWALL["jsonPayload"]),
    variant(FIREWALL, logName=..., log_name=FIREWALL_LOG),
    variant(FIREWALL, logName=...),  # told by its payload
    variant(FIREWALL, logName="  "),
    variant(FIREWALL, logName=5),
    variant(FLOW, **{P + "reporter": "DEST", P + "dest_instance": {"vm_name": "sbx-runner-07"}}),
    variant(FLOW, **{P + "dest_instance": {**VM, "vm_name": "sbx-runner-08"}}),  # both VMs
    variant(FLOW, **{P + "dest_vpc": VPC}),
    variant(FLOW, **{P + "dest_instance": {}}),
    variant(FLOW, **{P + "src_gke_details": {"pod": {"pod_name": "sandbox-ep-42-7f9c"}}}),
    variant(FLOW, **{P + "reporter": "SRC_GATEWAY"}),
    variant(FLOW, **{P + "reporter": " dest "}),
    variant(FLOW, **{P + "disposition": "DROPPED"}),
    variant(FLOW, **{P + "disposition": "weird"}),
    variant(FLOW, **{P + "bytes_sent": "12kB"}),
    variant(FLOW, **{P + "bytes_sent": "+12"}),
    variant(FLOW, **{P + "bytes_sent": "0012", P + "packets_sent": ""}),
    variant(FLOW, **{P + "bytes_sent": 100}),  # a number where proto3 JSON writes a string
    variant(FLOW, **{P + "packets_sent": "-1"}),
    variant(FLOW, **{P + "start_time": ...}),  # end_time stands in: a note
    variant(FLOW, **{P + "start_time": ..., P + "end_time": ...}),
    variant(FLOW, **{P + "end_time": "2025-12-02T06:14:00Z"}),  # end before start: a note
    variant(FLOW, **{P + "end_time": "-"}),
    variant(FLOW, **{P + "end_time": "2025-12-02T06:15:05"}),  # naive end: a note
    variant(FLOW, **{P + "start_time": "2025-12-02T06:15:00Z ", P + "rtt_msec": 31}),
    variant(AUDIT, logName="projects/p/logs/" + "x" * 100),
    variant(AUDIT, logName="testlog", jsonPayload={"connection": "x"}),
    variant(AUDIT, jsonPayload={"message": "hello"}, logName=...),
    '{"logName":"a","logName":"b"}',
    variant(FLOW).replace('"insertId"', '"big":' + "7" * 4400 + ',"insertId"'),  # too long
    variant(FLOW).replace('"insertId"', '"deep":' + "[" * 3000 + "]" * 3000 + ',"insertId"'),
    '{"a":1}{"b":2}',
    '{"broken": ',
    "[1, 2]",
    "",
    "   ",
    variant(FIREWALL) + "\r",
    variant(FIREWALL).replace("agents", "age\\u0000nts"),
    variant(FIREWALL, **{P + "instance__vm_name": "caf\u00e9 \ud83d\ude00"}),
]
RAW_VARIANTS = [
    *(v.encode() for v in VARIANTS),
    b'{"logName":"\xff","jsonPayload":{}}',
    b"\xef\xbb\xbf",
]


def reference(source: Source, options: LoadOptions) -> LoadResult:
    """Every line of ``iter_lines`` through the per-line reader: the loader before the column-wise
    path existed (a whole-file document is read as it always was)."""
    if not gcp_logging._json_lines(source):
        return gcp_logging.read(source, options)
    load = FileLoad(source, options, gcp_logging.name, gcp_logging.kind, NETWORK_EVENTS)
    load.stats.unit = "entries"
    choice = options.option("gcp_logging", "intercepted", "unknown") or "unknown"
    reader = gcp_logging.Reader(load, choice)
    for line, raw in iter_lines(source):
        reader.line(line, raw, load)
    return load.result()


def load(
    path: Path, *, fast: bool, cap: int = 1 << 24, intercepted: str = "unknown", **options: object
) -> LoadResult:
    source = Source(path, path.name, limits=Limits(max_line_bytes=cap))
    opts = LoadOptions(
        format_options={"gcp_logging": {"intercepted": intercepted}},
        **options,  # type: ignore[arg-type]
    )
    return gcp_logging.read(source, opts) if fast else reference(source, opts)


def outcomes(path: Path, **options: Any) -> None:
    same_outcome(lambda fast: load(path, fast=fast, **options))


@pytest.mark.parametrize("intercepted", ["unknown", "alerted", "allowed", "denied"])
def test_every_variant_line_is_read_as_the_per_line_reader_reads_it(tmp_path, intercepted):
    path = write(tmp_path / "gcp.jsonl", [b"{}", *RAW_VARIANTS])  # the first line: JSON lines
    outcomes(path, intercepted=intercepted)
    fast = load(path, fast=True)
    assert fast.stats.loaded > 25 and fast.stats.rejected > 8 and fast.stats.skipped_total > 4


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(st.sampled_from(RAW_VARIANTS), min_size=1, max_size=60),
    trailing_newline=st.booleans(),
    piece=st.integers(1, 20),
    keeps=st.booleans(),
    intercepted=st.sampled_from(["unknown", "alerted", "denied"]),
)
def test_column_wise_equals_line_by_line(
    tmp_path_factory, monkeypatch, lines, trailing_newline, piece, keeps, intercepted
):
    monkeypatch.setattr(blocks, "SMALLEST_PIECE", piece)
    path = write(tmp_path_factory.mktemp("gcp") / "gcp.jsonl", lines, trailing_newline)
    policy = KeepPolicy(actions=("denied", "alerted", "unknown"), anchors=3) if keeps else None
    outcomes(path, keep=policy, intercepted=intercepted)


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
        long = variant(FLOW, insertId="x" * 2000).encode()
        lines = [*lines[:long_at], long, *lines[long_at:]]
    path = write(tmp_path_factory.mktemp("gcp") / "gcp.jsonl", lines)
    monkeypatch.setattr(blocks, "CHUNK_BYTES", chunk)
    outcomes(path, cap=2048)


@pytest.mark.parametrize("keeps", [False, True])
def test_big_compressed_file_with_bad_lines_among_good(tmp_path, keeps):
    """A run mixing good and bad rows loses none of the good ones (gzip streams the same way)."""
    lines = [VARIANTS[i % 4].encode() for i in range(20_000)]
    lines[7_777] = variant(FIREWALL, **{P + "connection__dest_ip": "10.128.0.300"}).encode()
    lines[12_345] = b'{"broken": '
    path = tmp_path / "gcp.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    policy = KeepPolicy(actions=("denied", "alerted"), anchors=100) if keeps else None
    fast, slow = load(path, fast=True, keep=policy), load(path, fast=False, keep=policy)
    same(fast, slow)
    assert fast.stats.read == 20_000 and fast.stats.rejected == 2
    assert fast.stats.loaded == 3 * 5_000 - 2  # and 5,000 audit entries skipped
    assert fast.stats.skipped_total == 5_000


def test_the_gcloud_array_document_keeps_the_per_record_path(tmp_path):
    entries = [json.loads(v) for v in VARIANTS[:4]]
    path = tmp_path / "gcp.json"
    path.write_text(json.dumps(entries, indent=2))
    lines = write(tmp_path / "gcp.jsonl", [v.encode() for v in VARIANTS[:4]])
    array, jsonl = load(path, fast=True), load(lines, fast=True)
    strip = ["source_path"]
    assert array.table.drop_columns(strip).equals(jsonl.table.drop_columns(strip))
    assert array.stats.skipped == jsonl.stats.skipped


def test_strict_stops_at_the_same_first_reject(tmp_path):
    bad = variant(FLOW, **{P + "connection__src_port": 70000}).encode()
    lines = [VARIANTS[0].encode()] * 50 + [bad] + [VARIANTS[1].encode()] * 50
    path = write(tmp_path / "gcp.jsonl", lines)
    messages = raised(lambda fast: load(path, fast=fast, strict=True))
    assert messages[0] == messages[1]
    assert "gcp.jsonl:51: flow entry: connection.src_port out of range" in messages[0]


@pytest.mark.parametrize("anchors", [1, 7, 1000])
def test_keep_policy_keeps_violations_and_the_exact_anchor_sample(tmp_path, anchors):
    lines = [VARIANTS[i % 4].encode() for i in range(3_000)] + [VARIANTS[14].encode()]
    path = write(tmp_path / "gcp.jsonl", lines)
    policy = KeepPolicy(actions=("denied", "alerted"), anchors=anchors)
    full = load(path, fast=True)
    kept = load(path, fast=True, keep=policy)
    expected, _ = cut_sample(full.table, policy, {})
    assert kept.table.sort_by("source_line").equals(expected.sort_by("source_line"))
    denied = sum(1 for a in full.table.column("action").to_pylist() if a != "allowed")
    assert denied == 750  # every denied entry is kept, whatever the sample size
    assert kept.table.num_rows == denied + min(anchors, 1_500)
    assert kept.stats.read == full.stats.read and kept.stats.loaded == full.stats.loaded
    assert kept.stats.unkept == full.stats.loaded - kept.table.num_rows
    assert kept.rejects == full.rejects


def test_real_entries_are_read_column_wise(monkeypatch):
    """Of the sink sample, only the entry whose protocol is a name goes line by line."""
    seen: list[int] = []
    original = gcp_logging.Reader.line

    def spy(self: gcp_logging.Reader, line: int, raw: bytes, load: FileLoad) -> None:
        seen.append(line)
        original(self, line, raw, load)

    monkeypatch.setattr(gcp_logging.Reader, "line", spy)
    monkeypatch.setattr(blocks, "SMALLEST_PIECE", 1)  # a refused line alone, not its piece
    path = DATA / "firewall_sink_egress_denied.jsonl"
    result = gcp_logging.read(Source(path, path.name), LoadOptions())
    assert seen == [5] and result.stats.loaded == 5
