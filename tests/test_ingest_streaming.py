"""``ingest`` streams network events through sorted runs on disk and a k-way merge (merge.py);
``Case.loaded`` reads them back through ``run``'s keeper.

The reference is the path ingest had before: every network table kept in memory in load order,
concatenated after the case's events, sorted, numbered and written with ``write_table``. The
streamed path must write the same bytes, with run, batch and fan-in sizes small enough that
every input spans many runs, every merge runs in passes and ties cross batch boundaries.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import json
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from test_case_fixtures import ROOT, SAMPLE, scratch

import correlate.case as case_module
from correlate import merge
from correlate.case import ingest, open_case
from correlate.loaders import blocks
from correlate.pipeline import RunOptions, analyse, load_inputs
from correlate.reports.parquet import write_table
from correlate.schema import NETWORK_EVENTS, concat
from correlate.sources import Limits

CASE_FILES = (
    "events.parquet",
    "calls.parquet",
    "hosts.parquet",
    "enrichment.parquet",
    "rejects.jsonl",
    "manifest.json",
)
VPC_HEADER = (
    "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes "
    "start end action log-status vpc-id instance-id flow-direction pkt-srcaddr reject-reason"
)
T0 = 1_764_748_800


# --- inputs ---------------------------------------------------------------------------------


def _cfw_line(rng: random.Random, line: int) -> str:
    start = T0 + rng.randrange(0, 40)  # few distinct seconds: many ties on ts
    return json.dumps(
        {
            "__topic__": "cloudfirewall_access_log",
            "__time__": str(start + 1),
            "log_type": "internet_log",
            "start_time": str(start),
            "end_time": str(start + rng.randrange(0, 9)),
            "src_ip": "47.96.1.2",
            "src_private_ip": f"10.0.{rng.randrange(4)}.{rng.randrange(1, 250)}",
            "src_port": str(rng.randrange(1024, 65535)),
            "dst_ip": f"203.0.113.{rng.randrange(1, 250)}",
            "dst_port": rng.choice(["443", "80", "22", "3333"]),
            "ip_protocol": "tcp",
            "direction": "out",
            "rule_result": rng.choice(["pass"] * 12 + ["drop", "alert"]),
            "app_name": "HTTPS",
            "domain": rng.choice(["", "example.com", "pool.example.net"]),
            "in_packet_bytes": str(rng.randrange(10**6)),
            "out_packet_bytes": str(line),
            "in_packet_count": "9",
            "out_packet_count": "7",
            "cloud_instance_id": f"i-sandbox{rng.randrange(8)}",
        },
        separators=(",", ":"),
    )


def _vpc_line(rng: random.Random) -> str:
    start = T0 + rng.randrange(0, 40)
    action = rng.choice(["ACCEPT"] * 8 + ["REJECT"])
    return (
        f"5 123456789012 eni-0a1b2c3d 10.20.1.{rng.randrange(1, 250)} "
        f"198.51.100.{rng.randrange(1, 250)} {rng.randrange(1024, 65535)} 443 6 3 "
        f"{rng.randrange(10**5)} {start} {start + 5} {action} OK vpc-0123 "
        f"i-0f{rng.randrange(8)} egress - -"
    )


def generated_inputs(directory: Path, *, seed: int = 7, rows: int = 700) -> Path:
    """Several CFW and VPC flow files (times out of order, shared across files), plus Azure NSG
    flows (several rows per line), CEF, FortiGate and iptables events from tests/data."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for i, count in enumerate((rows, rows // 3, 1, rows // 2)):
        lines = [_cfw_line(rng, n + 1) for n in range(count)]
        (directory / f"cfw_{i}.jsonl").write_text("\n".join(lines) + "\n")
    for i, count in enumerate((rows // 2, 3)):
        lines = [VPC_HEADER] + [_vpc_line(rng) for _ in range(count)]
        (directory / f"vpc_{i}.log").write_text("\n".join(lines) + "\n")
    (directory / "empty.log").write_text(VPC_HEADER + "\n")
    for name in (
        "azure_nsg_flow/nsg_flow_v2_records_per_line.jsonl",
        "azure_nsg_flow/vnet_flow_v4_epoch_ms.json",
        "cef/escapes_and_zones.log",
        "fortigate/traffic_syslog_tz_plus0800.log",
        "iptables/stamps_with_year_and_zone.log",
    ):
        shutil.copy(ROOT / "tests/data" / name, directory / Path(name).name)
    return directory


# --- the two paths --------------------------------------------------------------------------


class InMemoryRuns:
    """The old path's network rows: every table kept in memory, in load order."""

    def __init__(self, directory: Path, schema: pa.Schema, run_rows: int | None = None) -> None:
        self.kept: list[pa.Table] = []
        self.file: list[pa.Table] = []

    def add(self, table: pa.Table) -> None:
        self.file.append(table)

    def commit(self) -> None:
        self.kept += self.file
        self.file = []

    def discard(self) -> None:
        self.file = []

    def finish(self) -> list[Path]:
        return []


def load_without_spill(*args: Any, **kwargs: Any) -> Any:
    """``load_file`` as ingest called it before streaming: loaders return every row."""
    source, forced, options, record = args
    options = dataclasses.replace(options, load=dataclasses.replace(options.load, spill=None))
    return LOAD_FILE(source, forced, options, record, **kwargs)


LOAD_FILE = case_module.load_file


@contextlib.contextmanager
def in_memory_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Ingest as before streaming: loaders return their tables, which are concatenated after the
    case's events, sorted, numbered and written with ``write_table``."""
    made: list[InMemoryRuns] = []

    def runs(directory: Path, schema: pa.Schema, run_rows: int | None = None) -> InMemoryRuns:
        made.append(InMemoryRuns(directory, schema, run_rows))
        return made[-1]

    def merge_in_memory(
        inputs: list[Path], output: Path, schema: pa.Schema, metadata: dict[str, str], **_: Any
    ) -> int:
        old = [pq.read_table(p).replace_schema_metadata(None) for p in inputs]
        table = case_module._canonical("events", concat(old + made[-1].kept, schema))
        write_table(table, output, metadata)
        return table.num_rows

    with monkeypatch.context() as patch:
        patch.setattr(case_module, "RunWriter", runs)
        patch.setattr(case_module, "merge_runs", merge_in_memory)
        patch.setattr(case_module, "load_file", load_without_spill)
        yield


class SpyRuns(merge.RunWriter):
    made: ClassVar[list[SpyRuns]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.discarded = 0
        SpyRuns.made.append(self)

    def discard(self) -> None:
        self.discarded += self._file_rows + self._file_run_rows
        super().discard()


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs of 37 rows, 3 merged at a time, batches of 5 to 13 rows, run row groups of 16."""
    monkeypatch.setattr(merge, "RUN_ROWS", 37)
    monkeypatch.setattr(merge, "FAN_IN", 3)
    monkeypatch.setattr(merge, "READ_ROWS", 40)
    monkeypatch.setattr(merge, "MIN_BATCH", 5)
    monkeypatch.setattr(merge, "RUN_ROW_GROUP", 16)
    SpyRuns.made = []
    monkeypatch.setattr(case_module, "RunWriter", SpyRuns)


def files(case: Path) -> dict[str, bytes]:
    return {name: (case / name).read_bytes() for name in CASE_FILES}


def both_ways(
    monkeypatch: pytest.MonkeyPatch, batches: list[list[str]], options: RunOptions | None = None
) -> tuple[Path, Path]:
    """The same ingests streamed and in memory (one case each)."""
    options = options or RunOptions()
    streamed, reference = scratch("streamed") / "case", scratch("in-memory") / "case"
    for paths in batches:
        ingest(streamed, paths, options)
    with in_memory_path(monkeypatch):
        for paths in batches:
            ingest(reference, paths, options)
    return streamed, reference


# --- ingest ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("tiny")
@pytest.mark.parametrize("inputs", ["sample", "generated"])
def test_streamed_ingest_writes_the_bytes_of_the_in_memory_path(
    monkeypatch: pytest.MonkeyPatch, inputs: str
) -> None:
    monkeypatch.chdir(ROOT)
    paths = [SAMPLE] if inputs == "sample" else [str(generated_inputs(scratch("gen") / "logs"))]
    streamed, reference = both_ways(monkeypatch, [paths])
    assert files(streamed) == files(reference)
    rows = json.loads((streamed / "manifest.json").read_text())["counts"]["network_events"]
    assert rows == pq.ParquetFile(streamed / "events.parquet").metadata.num_rows > 100
    writer = SpyRuns.made[0]
    assert len(writer.runs) > merge.FAN_IN**2  # merges of merges before the last one
    assert writer.peak_rows <= merge.RUN_ROWS
    assert not [p for p in streamed.iterdir() if p.name.startswith(".staging")]


@pytest.mark.usefixtures("tiny")
def test_ingests_in_several_batches_write_the_bytes_of_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(merge, "RUN_ROWS", 150)  # still several runs per file and merge passes
    logs = generated_inputs(scratch("gen") / "logs", seed=11)
    names = sorted(p.name for p in logs.iterdir())
    parts = [[str(logs / n) for n in names[i::3]] for i in range(3)]
    once, split = scratch("once") / "case", scratch("split") / "case"
    ingest(once, [str(logs)], RunOptions())
    for paths in parts:
        ingest(split, paths, RunOptions())
    for name in CASE_FILES[:-1]:  # the manifest lists the ingests
        assert (once / name).read_bytes() == (split / name).read_bytes(), name


@pytest.mark.usefixtures("tiny")
def test_a_file_given_up_midway_takes_its_spilled_rows_with_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A file found by walking a directory that hits --max-expansion after rows were spilled is
    skipped: none of its rows stay in the case."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(blocks, "CHUNK_BYTES", 4096)  # the loader spills before it meets the limit
    logs = generated_inputs(scratch("gen") / "logs", seed=3, rows=200)
    rng = random.Random(5)
    lines = [_cfw_line(rng, n + 1) for n in range(100)]
    body = ("\n".join(lines) + "\n").encode() + b"\n" * (8 << 20)  # then a flood of newlines
    (logs / "cfw_long.jsonl.gz").write_bytes(gzip.compress(body))
    options = RunOptions(limits=Limits(max_expansion=20, expansion_floor=2 << 20))
    streamed, reference = both_ways(monkeypatch, [[str(logs)]], options)
    assert files(streamed) == files(reference)
    skipped = [i for i in json.loads((streamed / "manifest.json").read_text())["inputs"]]
    assert any(i["path"].endswith("cfw_long.jsonl.gz") and i.get("skipped_reason") for i in skipped)
    assert SpyRuns.made[0].discarded > 0


@pytest.mark.usefixtures("tiny")
def test_rows_a_loader_returns_instead_of_spilling_are_streamed_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Loaders not yet ported to the spill return their whole table: ingest streams it the same."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(case_module, "load_file", load_without_spill)
    logs = generated_inputs(scratch("gen") / "logs", seed=13)
    streamed, reference = both_ways(monkeypatch, [[SAMPLE], [str(logs)]])
    assert files(streamed) == files(reference)
    assert SpyRuns.made[-1].peak_rows <= merge.RUN_ROWS


def test_the_staging_left_by_a_killed_ingest_is_removed_by_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(ROOT)
    case = scratch("killed") / "case"
    stale = case / ".staging-killed" / "runs"
    stale.mkdir(parents=True)
    (stale / "run-000000.parquet").write_bytes(b"a run of a killed ingest")
    ingest(case, [f"{SAMPLE}/firewall"], RunOptions())
    assert not [p.name for p in case.iterdir() if p.name.startswith(".staging")]


def test_the_default_sizes_give_the_bytes_of_the_in_memory_path_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(ROOT)
    logs = generated_inputs(scratch("gen") / "logs", seed=5)
    streamed, reference = both_ways(monkeypatch, [[SAMPLE], [str(logs)]])
    assert files(streamed) == files(reference)


# --- the merge ------------------------------------------------------------------------------


def _events(rng: np.random.Generator, n: int, path: str) -> pa.Table:
    seconds = pa.array(rng.integers(0, 50, n) * 1_000_000_000, pa.int64())
    ts = pc.if_else(pa.array(rng.random(n) < 0.05), None, seconds)  # nulls sort last
    columns: dict[str, pa.Array] = {
        "ts": ts.cast(NETWORK_EVENTS.field("ts").type),
        "source_path": pa.array(rng.choice([path, path + "-b", None], n, p=[0.6, 0.3, 0.1])),
        "source_line": pa.array(rng.integers(1, 30, n), pa.int64()),  # duplicates: ties
        "bytes_out": pa.array(np.arange(n), pa.int64()),  # tells tied rows apart
        "src_ip": pa.array([f"10.0.0.{i % 200}" for i in range(n)]),
    }
    return concat([pa.table(columns)], NETWORK_EVENTS)


def test_merge_is_a_stable_sort_of_the_concatenation_holding_few_rows() -> None:
    rng = np.random.default_rng(1)
    inputs = [_events(rng, int(rng.integers(0, 400)), f"f{i % 3}") for i in range(9)]
    inputs = [t.sort_by(merge.SORT_KEYS) for t in inputs]
    expected = pa.concat_tables(inputs).sort_by(merge.SORT_KEYS)
    batch = 7
    pulled = [0]
    out: list[pa.Table] = []
    held = []

    def batches(table: pa.Table) -> Iterator[pa.Table]:
        for start in range(0, table.num_rows, batch):
            pulled[0] += min(batch, table.num_rows - start)
            yield table.slice(start, batch)

    for piece in merge.merge([batches(t) for t in inputs]):
        held.append(pulled[0] - sum(t.num_rows for t in out))
        out.append(piece)
    assert pa.concat_tables(out).equals(expected)
    # one batch per input, plus the rows tied with a batch's last key (here at most 30 lines x
    # 3 paths per second, held while an input reads past them)
    assert max(held) <= len(inputs) * batch + 3 * 30 * len(inputs)


@pytest.mark.parametrize("row_group", [1000, 333])
def test_merge_runs_cuts_row_groups_as_write_table_does(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, row_group: int
) -> None:
    monkeypatch.setattr(merge, "ROW_GROUP_ROWS", row_group)
    monkeypatch.setattr(merge, "RUN_ROW_GROUP", 64)
    monkeypatch.setattr(merge, "FAN_IN", 4)
    rng = np.random.default_rng(2)
    runs = merge.RunWriter(tmp_path / "runs", NETWORK_EVENTS, run_rows=250)
    parts = [_events(rng, int(rng.integers(1, 900)), f"file-{i}") for i in range(6)]
    for part in parts:
        runs.add(part)
        runs.commit()
    metadata = {"correlate.table": "events", "correlate.case": "test"}
    got = tmp_path / "merged.parquet"
    rows = merge.merge_runs(runs.finish(), got, NETWORK_EVENTS, metadata, workdir=tmp_path / "runs")
    table = case_module._canonical("events", concat(parts, NETWORK_EVENTS))
    want = tmp_path / "want.parquet"
    pq.write_table(
        table.replace_schema_metadata({k.encode(): v.encode() for k, v in metadata.items()}),
        want,
        row_group_size=row_group,
        compression="zstd",
        write_statistics=True,
        store_schema=True,
    )
    assert rows == table.num_rows and got.read_bytes() == want.read_bytes()
    assert not list((tmp_path / "runs").iterdir())


# --- reading a case back --------------------------------------------------------------------


def _without_ids(table: pa.Table) -> pa.Table:
    return table.drop_columns([c for c in table.column_names if c == "event_id"])


@pytest.mark.parametrize("anchors", [25, 300, None])
def test_a_case_keeps_and_answers_what_run_does(
    monkeypatch: pytest.MonkeyPatch, anchors: int | None
) -> None:
    """With the anchor sample cutting (25, 300 of ~1,900 allowed rows) or not (None)."""
    monkeypatch.chdir(ROOT)
    logs = generated_inputs(scratch("gen") / "logs", seed=9)
    paths = [SAMPLE, str(logs)]
    case = scratch("kept") / "case"
    ingest(case, paths, RunOptions())
    options = RunOptions(anchors=anchors)
    direct = load_inputs(paths, options)
    loaded = open_case(case).loaded(options)
    assert _without_ids(loaded.events).equals(_without_ids(direct.events))
    assert loaded.network_rows == direct.network_rows
    assert loaded.sample_bounds == direct.sample_bounds
    assert bool(loaded.sample_bounds) == (anchors is not None)
    got, want = open_case(case).analyse(options, cache=False), analyse(direct, options)
    for name in ("violations", "findings", "attributions", "candidates"):
        assert _without_ids(getattr(got, name)).equals(_without_ids(getattr(want, name))), name
    assert got.provenance()["counts"] == want.provenance()["counts"]


def test_kept_events_are_cached_by_actions_and_anchors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    case = scratch("kept-cache") / "case"
    ingest(case, [SAMPLE, str(generated_inputs(scratch("gen") / "logs"))], RunOptions())
    scans = []
    real = case_module.Case.event_batches

    def counted(self: case_module.Case, rows: int = 65_536) -> Iterator[pa.Table]:
        scans.append(rows)
        return real(self, rows)

    monkeypatch.setattr(case_module.Case, "event_batches", counted)
    first = open_case(case).analyse(RunOptions(anchors=40))
    assert len(scans) == 1 and not first.cached
    again = open_case(case).analyse(RunOptions(anchors=40, gap_ns=60 * 10**9))
    assert len(scans) == 1 and not again.cached  # another analysis, the same kept events
    assert open_case(case).analyse(RunOptions(anchors=40)).cached
    open_case(case).analyse(RunOptions(anchors=41))
    assert len(scans) == 2
    for kept in (case / "cache").glob("kept-*"):
        (kept / "events.parquet").write_bytes(b"tampered")
    again = open_case(case).loaded(RunOptions(anchors=40))
    assert len(scans) == 3  # read again, not trusted
    assert again.events.equals(first.loaded.events)
