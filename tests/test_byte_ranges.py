"""Byte ranges of a file (what the Dask engine hands its workers) read exactly as the whole file.

No cluster here: ranges are cut, counted and read in this process with the same functions the
workers run (``count_range``, ``byte_ranges``, the format's loader) and combined with
``combine_results``; the answer must be the whole file's. ``test_distributed.py`` runs the same on
a real LocalCluster.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import tempfile
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loader_helpers import write
from test_fast_path_alibaba_cfw import GOOD, RAW_VARIANTS, variant

from correlate.distributed import (
    SPLITTABLE,
    byte_ranges,
    combine_results,
    count_range,
    nominal_cuts,
    splittable,
)
from correlate.errors import CorrelateError, InputError
from correlate.keep import KeepPolicy, cut_sample
from correlate.loaders import LoadOptions, LoadResult, detect
from correlate.loaders.blocks import line_runs
from correlate.pipeline import RunOptions, load_inputs
from correlate.sources import Limits, Source, expand_paths, iter_lines

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
ROME_CFW = ROOT / "sample_logs" / "rome_incident" / "firewall" / "cfw_internet_log.jsonl"
POLICY = KeepPolicy(("denied", "alerted"), anchors=3)


def ranges_at(source: Source, cuts: list[int]) -> list[Source]:
    """The byte ranges of ``source`` for pieces ``[cuts[k], cuts[k+1])`` (as the engine cuts)."""
    return byte_ranges(source, cuts, [count_range(source, lo, hi) for lo, hi in pairwise(cuts)])


def ranges_of(source: Source, split_bytes: int) -> list[Source]:
    return ranges_at(source, nominal_cuts(source.size(), split_bytes))


def read_by_ranges(source: Source, ranges: list[Source], options: LoadOptions) -> LoadResult | None:
    """The file read range by range and combined; None where the engine reads it whole again
    (a range failed, or the first range loaded nothing)."""
    loader = detect(source).loader
    parts = []
    for r in ranges:
        try:
            parts.append(loader.read(r, options))
        except CorrelateError:
            return None
    if parts[0].stats.loaded == 0:
        return None
    return combine_results(parts)


def same_as_whole(got: LoadResult, want: LoadResult, policy: KeepPolicy | None = None) -> None:
    """``got`` (by ranges) is ``want`` (whole); with a keep policy, after the cross-file cut."""
    table = got.table if policy is None else cut_sample(got.table, policy, {})[0]
    expected = want.table if policy is None else cut_sample(want.table, policy, {})[0]
    assert table.equals(expected), (table.to_pylist()[:2], expected.to_pylist()[:2])
    # unkept (rows a loader left out of memory) depends on the bounds it knew; the rest is equal
    assert got.stats.unkept == got.stats.loaded - got.table.num_rows
    got.stats.unkept = want.stats.unkept
    assert got.stats == want.stats
    assert [(str(r.location), r.reason, r.raw) for r in got.rejects] == [
        (str(r.location), r.reason, r.raw) for r in want.rejects
    ]
    assert got.kind == want.kind and got.context == want.context


# --- Source ranges and line numbering --------------------------------------------------------


def test_a_range_reads_its_bytes_but_head_size_and_hash_are_the_whole_files(tmp_path):
    path = write(tmp_path / "x.jsonl", [b"one", b"two", b"three"])
    source = Source(path, "x.jsonl")
    part = source.ranged(4, 8, 2)
    with part.open() as stream:
        assert stream.read() == b"two\n"
    assert part.head() == source.head() == path.read_bytes()
    assert part.size() == source.size() and part.sha256() == source.sha256()
    assert list(iter_lines(part)) == [(2, b"two")]
    assert list(line_runs(part, b"t")) == [(2, b"two", 1)]
    assert part.whole() == source and source.whole() is source
    assert list(iter_lines(source.ranged(8, None, 3))) == [(3, b"three")]


def test_compressed_files_have_no_byte_ranges(tmp_path):
    path = tmp_path / "x.jsonl.gz"
    path.write_bytes(gzip.compress(b"{}\n"))
    with pytest.raises(ValueError):
        Source(path, "x.jsonl.gz").ranged(0, 1, 1)


@st.composite
def text_and_cuts(draw):
    pieces = draw(st.lists(st.sampled_from([b"a", b"bb", b"\n", b"\r\n", b"{}", b"\n\n", b" "])))
    data = b"".join(pieces)
    inner = draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=6))
    cuts = sorted({0, len(data), *(c for c in inner if 0 < c < len(data))})
    return data, cuts


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text_and_cuts())
def test_ranges_cover_the_file_at_line_starts_with_true_line_numbers(case):
    data, cuts = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.log"
        path.write_bytes(data)
        source = Source(path, "t.log")
        if len(cuts) < 2:
            cuts = [0, 0]
        ranges = ranges_at(source, cuts)
        # consecutive, non-empty, covering every byte
        assert [r.start for r in ranges] == sorted({r.start for r in ranges})
        assert all(r.start < (r.end or 0) for r in ranges)
        assert b"".join(data[r.start : r.end] for r in ranges) == data
        for r in ranges:
            assert r.start == 0 or data[r.start - 1 : r.start] == b"\n"
            assert r.first_line == data[: r.start].count(b"\n") + 1
        # lines (and the column-wise cutter's lines) of the ranges are the whole file's
        assert [line for r in ranges for line in iter_lines(r)] == list(iter_lines(source))

        def runs(s: Source) -> list[tuple[int, bytes]]:
            out = []
            for first, blob, count in line_runs(s, b"ab{", chunk_bytes=3):
                lines = blob.split(b"\n") if count else [blob]
                out += [(first + i, line.rstrip(b"\r")) for i, line in enumerate(lines)]
            return out

        assert [x for r in ranges for x in runs(r)] == runs(source)


def test_a_line_longer_than_the_limit_across_a_cut_is_not_split(tmp_path):
    path = write(tmp_path / "x.jsonl", [b"{}", b"x" * 100, b"{}"])
    source = Source(path, "x.jsonl", limits=Limits(max_line_bytes=20))
    start, _ = count_range(source, 50, 60)
    assert start is None
    with pytest.raises(ValueError):
        ranges_at(source, [0, 50, source.size()])
    # within the limit, the cut moves to the next line start
    roomy = Source(path, "x.jsonl", limits=Limits(max_line_bytes=200))
    assert [r.start for r in ranges_at(roomy, [0, 50, roomy.size()])] == [0, 104]


def test_line_bound_is_the_rank_th_smallest_line_hash_and_is_checked(monkeypatch):
    import numpy as np

    from correlate import distributed
    from correlate.keep import line_hashes

    hashes = np.sort(line_hashes("x.jsonl", np.arange(1, 1001)))
    monkeypatch.setattr(distributed, "_HASH_BLOCK", 97)  # several blocks
    assert distributed.line_bound("x.jsonl", 1000, 40) == int(hashes[39])
    assert distributed.line_bound("x.jsonl", 1000, 1000) is None
    result = detect(Source(ROME_CFW, "cfw.jsonl")).loader.read(
        Source(ROME_CFW, "cfw.jsonl"), LoadOptions()
    )
    policy = KeepPolicy(("denied", "alerted"), anchors=3)
    assert distributed.bound_held(result, policy, 0)  # nothing was left out: exact anyway
    result.stats.unkept = 1
    assert not distributed.bound_held(result, policy, 0)
    assert distributed.bound_held(result, policy, 2**64 - 1)


# --- which formats are split -----------------------------------------------------------------

SPLIT_SAMPLES = [
    ROME_CFW,
    DATA / "cfw_malformed.jsonl",
    DATA / "alibaba_vpc_flow" / "sls_flow_log.jsonl",
    DATA / "alibaba_vpc_flow" / "malformed.jsonl",
    DATA / "gcp_logging" / "firewall_sink_egress_denied.jsonl",
    DATA / "gcp_logging" / "malformed_entries.jsonl",
    DATA / "ocsf_network" / "security_lake_vpc_flow.jsonl",
    DATA / "ocsf_network" / "bad_events_missing_ip_bad_time.jsonl",
]
WHOLE_ONLY = [
    DATA / "cfw_ragged.csv",  # CSV: the header sets the columns
    DATA / "alibaba_vpc_flow" / "sls_export_ragged.csv",
    DATA / "gcp_logging" / "vpc_flows_gcloud_array.json",  # one document
    DATA / "ocsf_network" / "pretty_array_time_dt_and_captions.json",
    DATA / "ocsf_network" / "network_activity_security_lake.parquet",
    DATA / "zeek_conn" / "zat_conn.log",  # TSV: '#fields' sets the columns
    DATA / "zeek_conn" / "zat_conn.json.log",  # (not yet: see SPLITTABLE)
    *sorted((DATA / "aws_vpc_flow").iterdir())[:3],  # a header line sets the layout
    *sorted((DATA / "aws_nfw").glob("*.jsonl"))[:1],  # flows named from other lines
    *sorted((DATA / "suricata_eve").glob("*.json*"))[:1],
]


@pytest.mark.parametrize("path", WHOLE_ONLY, ids=lambda p: p.name)
def test_layouts_set_by_other_lines_are_read_whole(path):
    source = Source(path, path.name)
    try:
        detection = detect(source)
    except CorrelateError:
        return
    assert not splittable(detection, source.head())


@pytest.mark.parametrize("path", SPLIT_SAMPLES, ids=lambda p: p.name)
@pytest.mark.parametrize("pieces", [2, 7, 40])
def test_every_splittable_format_read_by_ranges_equals_the_whole_file(path, pieces):
    source = Source(path, str(path.relative_to(ROOT)))
    detection = detect(source)
    assert detection.name in SPLITTABLE and splittable(detection, source.head())
    ranges = ranges_of(source, -(-source.size() // pieces))
    assert len(ranges) > 1
    for policy in (None, POLICY):
        options = LoadOptions(keep=policy)
        got = read_by_ranges(source, ranges, options)
        if got is None:  # the engine reads this one whole again: nothing to compare
            continue
        same_as_whole(got, detection.loader.read(source, options), policy)


# --- the property: ranges of a CFW file, combined, are the file -----------------------------

LINES = st.one_of(
    st.sampled_from(RAW_VARIANTS),
    st.sampled_from(RAW_VARIANTS[:3]),  # mostly good rows, so the first range loads
    st.builds(
        lambda n, action: variant(src_port=str(n), rule_result=action).encode(),
        st.integers(1, 65535),
        st.sampled_from(["pass", "drop", "alert"]),
    ),
    st.binary(max_size=12),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(LINES, min_size=1, max_size=40),
    st.booleans(),
    st.integers(200, 4000),
    st.sampled_from([None, 2, 50_000]),
)
def test_loading_every_range_and_combining_equals_loading_the_file(
    lines, trailing, split_bytes, anchors
):
    lines = [variant().encode(), *lines]  # the file's layout: JSON lines
    with tempfile.TemporaryDirectory() as tmp:
        path = write(Path(tmp) / "cfw.jsonl", [line.replace(b"\n", b" ") for line in lines])
        if not trailing:
            path.write_bytes(path.read_bytes().rstrip(b"\n"))
        source = Source(path, "cfw.jsonl")
        policy = None if anchors is None else KeepPolicy(("denied", "alerted"), anchors)
        options = LoadOptions(keep=policy)
        try:
            want = detect(source).loader.read(source, options)
        except CorrelateError:
            want = None
        got = read_by_ranges(source, ranges_of(source, split_bytes), options)
        if got is not None:  # (None: the engine reads it whole again, getting ``want``)
            assert want is not None
            same_as_whole(got, want, policy)


def test_edges_bad_lines_a_cut_right_after_a_newline_and_no_trailing_newline(tmp_path):
    good = variant().encode()
    drop = variant(rule_result="drop", src_port="1").encode()
    lines = [good, drop, b"{broken", good, b"", b"\xff\xfe", drop, good, b"[1]", drop]
    path = write(tmp_path / "cfw.jsonl", lines, trailing_newline=False)
    data = path.read_bytes()
    source = Source(path, "cfw.jsonl")
    after_newline = data.index(b"\n") + 1  # a cut exactly at a line start
    inside_bad = data.index(b"{broken") + 3  # a cut inside a bad line
    cuts = [0, after_newline, inside_bad, data.index(b"[1]"), len(data) - 5, len(data)]
    ranges = ranges_at(source, cuts)
    # the cut inside the last (unterminated) line leaves an empty range: dropped
    assert [r.first_line for r in ranges] == [1, 2, 4, 9]
    want = detect(source).loader.read(source, LoadOptions())
    got = read_by_ranges(source, ranges, LoadOptions())
    assert got is not None
    same_as_whole(got, want)
    assert [r.location.line for r in got.rejects] == [3, 6, 9]


# --- fsspec URLs ---------------------------------------------------------------------------------


def test_fsspec_memory_urls_load_like_local_files(tmp_path):
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    data = ROME_CFW.read_bytes()
    fs.pipe("/corr-test/logs/cfw.jsonl", data)
    fs.pipe("/corr-test/logs/more.jsonl.gz", gzip.compress(data[:20_000].rsplit(b"\n", 1)[0]))
    fs.pipe("/corr-test/logs/.hidden", b"x")
    try:
        sources = expand_paths(["memory://corr-test/logs"])
        assert [s.display for s in sources] == [
            "memory://corr-test/logs/cfw.jsonl",
            "memory://corr-test/logs/more.jsonl.gz",
        ]
        source = sources[0]
        assert source.url is not None and source.size() == len(data)
        assert source.sha256() == hashlib.sha256(data).hexdigest()
        # byte ranges through fsspec too
        assert [line for r in ranges_of(source, 50_000) for line in iter_lines(r)] == list(
            iter_lines(source)
        )
        options = RunOptions(anchors=None)
        by_url = load_inputs(["memory://corr-test/logs"], options)
        local = load_inputs([str(ROME_CFW)], options)
        assert [f.format for f in by_url.inputs] == ["alibaba_cfw", "alibaba_cfw"]
        assert by_url.inputs[0].stats is not None and local.inputs[0].stats is not None
        assert by_url.inputs[0].stats.loaded == local.inputs[0].stats.loaded
        url_rows = by_url.events.filter(
            by_url.events.column("source_path").to_numpy(zero_copy_only=False)
            == "memory://corr-test/logs/cfw.jsonl"
        )
        drop = ["source_path", "event_id"]
        assert url_rows.drop_columns(drop).equals(local.events.drop_columns(drop))
    finally:
        fs.rm("/corr-test", recursive=True)


def test_a_missing_url_is_an_input_error():
    pytest.importorskip("fsspec")
    with pytest.raises(InputError, match="no such file"):
        expand_paths(["memory://corr-test-missing/x.jsonl"])


def test_the_generated_cfw_variants_are_json_lines():
    # the property above relies on the first line setting the JSON-lines layout
    assert json.loads(variant()) == GOOD
