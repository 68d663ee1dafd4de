"""The Dask engine on a real LocalCluster (loopback, two worker processes) gives band_join's answer."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from correlate.join import band_join
from correlate.pipeline import RunOptions, analyse, load_inputs

if os.environ.get("CI"):
    import distributed  # CI installs the dask extra: a missing engine fails, never skips
else:
    distributed = pytest.importorskip("distributed")

from correlate.distributed import (
    DaskJoiner,
    case_join_inputs,
    join_staged,
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
