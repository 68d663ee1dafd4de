"""The Dask engine on a real LocalCluster (loopback, two worker processes) gives band_join's answer."""

from __future__ import annotations

import logging
import os
import shutil
from bisect import bisect_right
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from correlate.errors import StrictRejection
from correlate.join import band_join
from correlate.loaders import LoadOptions
from correlate.pipeline import Loaded, RunOptions, analyse, load_inputs

if os.environ.get("CI"):
    import distributed  # CI installs the dask extra: a missing engine fails, never skips
else:
    distributed = pytest.importorskip("distributed")

from correlate.distributed import (
    DaskJoiner,
    case_join_inputs,
    dask_load_inputs,
    engine_session,
    join_staged,
    nominal_cuts,
    stage_case,
)

SAMPLE = Path(__file__).resolve().parents[1] / "sample_logs" / "rome_incident"
S = 1_000_000_000


@pytest.fixture(scope="module")
def client():
    """One cluster for the module: starting worker processes is the slow part."""
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def same(joiner, *args, before, after):
    want = band_join(*args, before_ns=before, after_ns=after)
    got = joiner(*args, before_ns=before, after_ns=after)
    assert got[0].dtype == np.int64 and got[1].dtype == np.int64
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    return want


@st.composite
def join_inputs(draw, keys):
    n_calls = draw(st.integers(0, 25))
    n_events = draw(st.integers(0, 40))
    starts = draw(st.lists(st.integers(0, 200), min_size=n_calls, max_size=n_calls))
    lengths = draw(st.lists(st.integers(0, 60), min_size=n_calls, max_size=n_calls))
    call_keys = draw(st.lists(keys, min_size=n_calls, max_size=n_calls))
    event_ts = draw(st.lists(st.integers(-50, 300), min_size=n_events, max_size=n_events))
    event_keys = draw(st.lists(keys, min_size=n_events, max_size=n_events))
    before = draw(st.integers(0, 30))
    after = draw(st.integers(0, 40))
    args = (
        call_keys,
        np.array(starts, np.int64),
        np.array(starts, np.int64) + np.array(lengths, np.int64),
        event_keys,
        np.array(event_ts, np.int64),
    )
    return args, before, after


# Few examples (each is a round trip to the cluster) and no shrinking (shrinking through a cluster
# takes minutes; the failing example is printed as drawn).
FEW = settings(
    max_examples=15,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@FEW
@given(
    data=join_inputs(st.sampled_from([None, "sbx-1", "sbx-2", "sbx-3", "sbx-4", "sbx-5"])),
    partitions=st.integers(1, 4),
)
def test_keyed_join_by_key_equals_band_join(client, data, partitions):
    args, before, after = data
    same(
        DaskJoiner(client, partitions=partitions, strategy="key"), *args, before=before, after=after
    )


@FEW
@given(
    data=join_inputs(st.sampled_from(["*"])),
    cuts=st.lists(st.integers(-60, 320), min_size=1, max_size=5),
)
def test_time_only_join_with_edges_inside_windows_equals_band_join(client, data, cuts):
    """Cut points anywhere, most inside some call's window: edge events still meet their calls, once."""
    args, before, after = data
    joiner = DaskJoiner(client, strategy="time", bounds=sorted(set(cuts)))
    same(joiner, *args, before=before, after=after)


@FEW
@given(data=join_inputs(st.sampled_from([None, "a", "b"])), partitions=st.integers(2, 5))
def test_keyed_join_partitioned_by_time_equals_band_join(client, data, partitions):
    """Fewer keys than partitions: auto picks time ranges at the events' quantiles."""
    args, before, after = data
    joiner = DaskJoiner(client, partitions=partitions)
    same(joiner, *args, before=before, after=after)
    if joiner.last is not None and len(set(args[3]) - {None}) < partitions:
        assert joiner.last.strategy == "time"


def test_long_call_spans_every_partition_and_pairs_are_not_repeated(client):
    call_keys = ["*", "*"]
    start = np.array([0, 50], np.int64)
    end = np.array([1000, 50], np.int64)
    ts = np.arange(-20, 1050, 7, dtype=np.int64)
    joiner = DaskJoiner(client, strategy="time", bounds=[100, 200, 300, 400, 500, 600, 700])
    call_idx, event_idx = same(
        joiner, call_keys, start, end, ["*"] * len(ts), ts, before=10, after=20
    )
    assert len(set(zip(call_idx.tolist(), event_idx.tolist(), strict=True))) == len(call_idx)
    assert sum(len(c) for c in joiner.last.calls) == 8 + 1  # the long call in all 8 ranges


def test_staged_parquet_join_equals_band_join(client, tmp_path):
    rng = np.random.default_rng(7)
    keys = [f"sbx-{i}" for i in rng.integers(0, 9, 300)]
    start = np.sort(rng.integers(0, 10_000, 300)).astype(np.int64)
    end = start + rng.integers(0, 200, 300)
    event_keys = [f"sbx-{i}" if i < 9 else None for i in rng.integers(0, 10, 2000)]
    ts = rng.integers(-100, 10_300, 2000).astype(np.int64)
    for strategy in ("key", "time"):
        joiner = DaskJoiner(client, partitions=4, strategy=strategy, staging=tmp_path)
        same(joiner, keys, start, end, event_keys, ts, before=30, after=90)
    assert not list(tmp_path.iterdir())  # the staged files are removed after the join


@pytest.fixture(scope="module")
def loaded():
    return load_inputs([str(SAMPLE)], RunOptions())


@pytest.mark.parametrize("strategy", ["key", "time"])
def test_analyse_with_the_dask_joiner_equals_the_local_engine(client, loaded, strategy):
    options = RunOptions()
    local = analyse(loaded, options)
    remote = analyse(loaded, options, joiner=DaskJoiner(client, partitions=3, strategy=strategy))
    assert local.candidates.num_rows > 0 and local.findings.num_rows == 13
    for name in ("findings", "attributions", "candidates"):
        assert getattr(remote, name).equals(getattr(local, name)), name


def test_analyse_time_only_and_unmapped_time_equal_the_local_engine(client, loaded):
    """Without the inventory the join is time-only (one key); --unmapped time adds a second join."""
    no_identity = type(loaded)(
        events=loaded.events,
        calls=loaded.calls,
        hosts=loaded.hosts.slice(0, 0),
        inputs=loaded.inputs,
        rejects=loaded.rejects,
    )
    joiner = DaskJoiner(client, partitions=3)
    for data, options in ((no_identity, RunOptions()), (loaded, RunOptions(unmapped="time"))):
        local = analyse(data, options)
        remote = analyse(data, options, joiner=joiner)
        for name in ("findings", "attributions", "candidates"):
            assert getattr(remote, name).equals(getattr(local, name)), name


def test_staged_case_read_by_workers_equals_the_local_join(client, tmp_path):
    """A case directory's Parquet, staged by key hash; each worker reads its own partition."""
    from correlate.case import ingest

    case = tmp_path / "case"
    ingest(str(case), [str(SAMPLE)], RunOptions())
    options = RunOptions()
    args = case_join_inputs(case, options)[:5]
    want = band_join(*args, before_ns=options.before_ns, after_ns=options.after_ns)
    staged = stage_case(case, tmp_path / "staged", options, partitions=4, strategy="key")
    assert staged.keyed and staged.strategy == "key"
    got = join_staged(client, staged.root, staged.before_ns, staged.after_ns)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    # The same pairs analyse's local engine finds for this case.
    captured = []

    def capture(*a, **k):
        captured.append(band_join(*a, **k))
        return captured[-1]

    analyse(load_inputs([str(SAMPLE)], options), options, joiner=capture)
    assert np.array_equal(captured[0][0], want[0]) and np.array_equal(captured[0][1], want[1])


def test_make_client_connects_to_an_existing_scheduler(client, loaded):
    """What ``--scheduler tcp://host:port`` does: connect to a running cluster, join there."""
    from correlate.distributed import dask_joiner

    address = client.scheduler.address
    assert address.startswith("tcp://127.0.0.1:")
    options = RunOptions()
    with dask_joiner(address, partitions=2) as joiner:
        assert sum(joiner.client.nthreads().values()) == 2
        remote = analyse(loaded, options, joiner=joiner)
    assert remote.findings.equals(analyse(loaded, options).findings)
    assert client.status == "running"  # closing our client left the cluster up


# --- loading on the cluster ------------------------------------------------------------------


def same_loaded(got: Loaded, want: Loaded) -> None:
    """Everything ``load_inputs`` returns, but ``LoadStats.unkept`` (rows a loader left out of
    memory: it depends on the sample bounds the loader knew, which the local loop carries from
    file to file; no report shows it)."""
    for name in ("events", "calls", "hosts"):
        assert getattr(got, name).equals(getattr(want, name)), name
    assert got.network_rows == want.network_rows
    assert got.sample_bounds == want.sample_bounds
    assert [str(r) for r in got.rejects] == [str(r) for r in want.rejects]
    assert got.rejects == want.rejects
    assert len(got.inputs) == len(want.inputs)
    for mine, theirs in zip(got.inputs, want.inputs, strict=True):
        if mine.stats is not None and theirs.stats is not None:
            mine.stats.unkept = theirs.stats.unkept
        assert mine == theirs


def same_findings(got: Loaded, want: Loaded, options: RunOptions, joiner=band_join) -> int:
    remote, local = analyse(got, options, joiner=joiner), analyse(want, options)
    for name in ("violations", "findings", "attributions", "candidates"):
        assert getattr(remote, name).equals(getattr(local, name)), name
    assert remote.provenance() == local.provenance()
    return local.findings.num_rows


@pytest.mark.parametrize("anchors", [50_000, 3])
def test_dask_load_of_the_sample_incident_equals_load_inputs(client, anchors):
    """The CFW log (543 kB) in six byte ranges; the traces, inventory and CSV whole."""
    options = RunOptions(anchors=anchors)
    local_progress, remote_progress, trace = [], [], {}
    want = load_inputs([str(SAMPLE)], options, progress=lambda *a: local_progress.append(a))
    got = dask_load_inputs(
        [str(SAMPLE)],
        options,
        client=client,
        split_bytes=100_000,
        progress=lambda *a: remote_progress.append(a),
        trace=trace,
    )
    assert trace[str(SAMPLE / "firewall" / "cfw_internet_log.jsonl")] == "6 ranges"
    assert trace[str(SAMPLE / "traces" / "traces.jsonl")] == "whole"  # otlp_json
    same_loaded(got, want)
    assert remote_progress == local_progress
    assert same_findings(got, want, options) == 13
    if anchors == 3:
        assert want.sample_bounds and want.events.num_rows < want.network_rows


def _bad(line: bytes, kind: int) -> bytes:
    """A rejected line of ``line``'s length (so the file's size, and the cuts, do not move)."""
    n = len(line)
    head = b'{"src_ip":"1.2.3.4","pad":"'
    return [b"{broken" + b" " * (n - 7), b"\xff" * n, head + b"x" * (n - len(head) - 2) + b'"}'][
        kind % 3
    ]


def incident_with_cut_edges(root: Path, pieces: int) -> tuple[Path, int]:
    """The sample incident with its CFW log cut into ``pieces``: one cut exactly at a line start,
    rejected lines on both sides of every cut, no newline at the end. Returns (dir, split_bytes)."""
    case = root / "incident"
    shutil.copytree(SAMPLE / "firewall", case / "firewall")
    shutil.copytree(SAMPLE / "traces", case / "traces")
    shutil.copy(SAMPLE / "inventory.csv", case / "inventory.csv")
    lines = (SAMPLE / "firewall" / "cfw_internet_log.jsonl").read_bytes().rstrip(b"\n").split(b"\n")
    assert lines[0].endswith(b"}")
    for pad in range(4000):  # spaces before the first line's "}" shift the cuts against the lines
        lines[0] = lines[0].rstrip(b" }") + b" " * pad + b"}"
        starts = [0]
        for line in lines[:-1]:
            starts.append(starts[-1] + len(line) + 1)
        size = starts[-1] + len(lines[-1])
        split_bytes = -(-size // pieces)
        cuts = nominal_cuts(size, split_bytes)
        if len(cuts) == pieces + 1 and any(c in starts for c in cuts[1:-1]):
            break
    else:
        raise AssertionError("no padding puts a cut at a line start")
    for k, cut in enumerate(cuts[1:-1]):
        at = bisect_right(starts, cut) - 1  # the line holding the cut (or starting at it)
        for i in (at - 1, at, at + 1):
            lines[i] = _bad(lines[i], k + i)
    (case / "firewall" / "cfw_internet_log.jsonl").write_bytes(b"\n".join(lines))
    return case, split_bytes


@pytest.mark.parametrize("anchors", [None, 3])
def test_ranges_with_bad_lines_at_their_edges_equal_the_local_engine(client, tmp_path, anchors):
    case, split_bytes = incident_with_cut_edges(tmp_path, pieces=5)
    options = RunOptions(anchors=anchors)
    want = load_inputs([str(case)], options)
    trace = {}
    got = dask_load_inputs(
        [str(case)], options, client=client, split_bytes=split_bytes, trace=trace
    )
    assert trace[str(case / "firewall" / "cfw_internet_log.jsonl")] == "5 ranges"
    same_loaded(got, want)
    assert len(want.rejects) == 12 and len({r.raw[:3] for r in want.rejects}) == 3
    assert same_findings(got, want, options) > 0


def test_a_file_the_first_range_cannot_decide_is_read_whole_again(client, tmp_path):
    """The "first 100 records all rejected" stop sees the whole file: a first range that loads
    nothing, or a later range that starts with 100 rejects, makes the file be read whole."""
    from test_fast_path_alibaba_cfw import variant

    good = variant().encode()
    bad = variant(dst_port="70000").encode()  # detected as CFW, rejected
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "a_not_cfw.jsonl").write_bytes(b"\n".join([bad] * 130 + [good] * 5) + b"\n")
    (folder / "b_late_bad.jsonl").write_bytes(
        b"\n".join([good] * 30 + [bad] * 400 + [good] * 20) + b"\n"
    )
    (folder / "c_fine.jsonl").write_bytes(b"\n".join([good] * 40))
    options = RunOptions(anchors=3)
    want = load_inputs([str(folder)], options)
    assert want.inputs[0].skipped_reason and "first 100 records" in want.inputs[0].skipped_reason
    trace = {}
    split = 120 * len(bad)  # a range of ~120 lines: one starts inside the 400 rejected ones
    got = dask_load_inputs([str(folder)], options, client=client, split_bytes=split, trace=trace)
    assert list(trace.values()) == ["2 ranges, then whole", "4 ranges, then whole", "whole"]
    same_loaded(got, want)


def test_a_sample_bound_guessed_too_tight_is_dropped(client, tmp_path):
    """A split file's ranges skip allowed rows hashing above its 4 x anchors smallest line hashes;
    when those lines are mostly violations, the ranges are read again without the bound."""
    from test_fast_path_alibaba_cfw import variant

    from correlate.keep import line_hashes

    path = tmp_path / "cfw.jsonl"
    n = 300
    lowest = set(np.argsort(line_hashes(str(path), np.arange(1, n + 1)))[:40] + 1)
    lines = [
        variant(rule_result="drop" if i in lowest else "pass", src_port=str(i)).encode()
        for i in range(1, n + 1)
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    options = RunOptions(anchors=3)
    want = load_inputs([str(path)], options)
    trace = {}
    split = path.stat().st_size // 4 + 1
    got = dask_load_inputs([str(path)], options, client=client, split_bytes=split, trace=trace)
    assert trace[str(path)] == "4 ranges, again without the sample bound"
    same_loaded(got, want)
    assert want.sample_bounds and want.events.num_rows == 40 + 3


def test_strict_stops_at_the_same_row(client, tmp_path):
    from test_fast_path_alibaba_cfw import variant

    good = variant().encode()
    path = tmp_path / "cfw.jsonl"
    path.write_bytes(b"\n".join([good] * 40 + [b"{broken"] + [good] * 40 + [b"[]"]))
    options = RunOptions(load=LoadOptions(strict=True))
    with pytest.raises(StrictRejection) as local:
        load_inputs([str(path)], options)
    with pytest.raises(StrictRejection) as remote:
        dask_load_inputs([str(path)], options, client=client, split_bytes=3000)
    assert str(remote.value) == str(local.value) and ":41:" in str(local.value)


def test_file_urls_are_read_by_the_workers_through_fsspec(client):
    pytest.importorskip("fsspec")
    url = SAMPLE.as_uri()
    options = RunOptions()
    want = load_inputs([url], options)
    trace = {}
    got = dask_load_inputs([url], options, client=client, split_bytes=200_000, trace=trace)
    assert trace[f"{url}/firewall/cfw_internet_log.jsonl"] == "3 ranges"
    same_loaded(got, want)
    assert same_findings(got, want, options) == 13


def test_engine_session_loads_and_joins_on_an_existing_scheduler(client, loaded):
    """What ``run --engine dask --scheduler tcp://...`` does: one client loads and joins."""
    options = RunOptions()
    with engine_session("dask", client.scheduler.address, split_bytes=100_000) as session:
        assert session.engine == "dask"
        got = session.load([str(SAMPLE)], options)
        same_loaded(got, loaded)
        assert same_findings(got, loaded, options, joiner=session.joiner) == 13
    assert client.status == "running"
    with engine_session("local") as session:
        assert session.joiner is band_join
        same_loaded(session.load([str(SAMPLE)], options), loaded)
