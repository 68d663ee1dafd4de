"""Duplicates (#15 item 20): a network record held twice counts once; a JSON key given twice is noted.

A log concatenated twice, or the same export under two names, must give the findings of one
copy, with the copies counted (provenance ``network_event_copies_merged``, a note per file) and
``read = loaded + rejected + skipped`` intact. A key given twice in one JSON record parses
last-wins; the row's note says so.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from loader_helpers import write

from correlate import same_events
from correlate.case import ingest, open_case
from correlate.loaders import LoadOptions, alibaba_cfw, generic_network
from correlate.pipeline import RunOptions, analyse, load_inputs
from correlate.schema import NETWORK_EVENTS, from_columns, plain_rows
from correlate.sources import Source

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_logs/rome_incident"
FIREWALL = ("cfw_internet_log.jsonl", "cfw_vpc_log.csv")


def _doubled(tmp: Path) -> Path:
    """The sample incident with each firewall file holding its rows twice (``cat f f``)."""
    target = tmp / "doubled"
    (target / "firewall").mkdir(parents=True)
    shutil.copytree(SAMPLE / "traces", target / "traces")
    shutil.copy(SAMPLE / "inventory.csv", target / "inventory.csv")
    for name in FIREWALL:
        data = (SAMPLE / "firewall" / name).read_bytes()
        if name.endswith(".csv"):  # the second copy without its header line
            data += data.split(b"\n", 1)[1]
        else:
            data += data
        (target / "firewall" / name).write_bytes(data)
    return target


def _answer(result: Any) -> list[tuple[Any, ...]]:
    return sorted(
        (r["src_ip"], r["dst_ip"], r["dst_port"], r["call_id"], r["event_count"], r["confidence"])
        for r in plain_rows(result.findings)
    )


def _run(paths: list[Path], **options: Any) -> Any:
    opts = RunOptions(**options)
    loaded = load_inputs([str(p) for p in paths], opts)
    return analyse(loaded, opts)


# --- records held twice ------------------------------------------------------------------------


def test_a_log_concatenated_twice_gives_the_findings_of_one_copy_and_counts_the_copies(
    tmp_path: Path,
) -> None:
    once = _run([SAMPLE])
    twice = _run([_doubled(tmp_path)])
    assert twice.violations.num_rows == once.violations.num_rows == 55  # not 110
    assert _answer(twice) == _answer(once)
    counts = twice.provenance()["counts"]
    assert counts["network_event_copies_merged"] == 761 + 83
    assert counts["network_events"] == once.provenance()["counts"]["network_events"] == 844
    assert "network_event_copies_merged" not in once.provenance()["counts"]
    for f in twice.loaded.inputs:
        if f.stats is None:
            continue
        assert f.stats.read == f.stats.loaded + f.stats.rejected + f.stats.skipped_total
        if f.kind == "network":
            assert f.stats.loaded == 2 * (761 if f.path.endswith(".jsonl") else 83)
            ((note, n),) = [(k, v) for k, v in f.stats.notes.items() if "duplicate of" in k]
            assert n == f.stats.loaded // 2
            assert note.startswith(f"duplicate of rows of {f.path} (the first: line ")
    noted = [r["ts_note"] for r in plain_rows(twice.violations)]
    assert all(
        note and "same record also at " in note and ": counted once" in note for note in noted
    )


def test_the_same_log_under_two_names_keeps_the_first_by_path_in_any_order(
    tmp_path: Path,
) -> None:
    for name in ("a.jsonl", "b.jsonl"):
        shutil.copy(SAMPLE / "firewall" / FIREWALL[0], tmp_path / name)
    traces = SAMPLE / "traces"
    forward = _run([tmp_path / "a.jsonl", tmp_path / "b.jsonl", traces])
    backward = _run([tmp_path / "b.jsonl", traces, tmp_path / "a.jsonl"])
    one = _run([tmp_path / "a.jsonl", traces])
    assert _answer(forward) == _answer(backward) == _answer(one)
    for result in (forward, backward):
        paths = set(result.violations.column("source_path").to_pylist())
        assert paths == {str(tmp_path / "a.jsonl")}
        b = next(f for f in result.loaded.inputs if f.path.endswith("b.jsonl"))
        assert b.stats is not None
        assert b.stats.notes == {
            f"duplicate of rows of {tmp_path / 'a.jsonl'} (the first: line 1): the same "
            "record, counted once in the analysis": 761
        }
        a = next(f for f in result.loaded.inputs if f.path.endswith("a.jsonl"))
        assert a.stats is not None and not a.stats.notes
    assert plain_rows(forward.violations) == plain_rows(backward.violations)


def test_a_sampled_run_dedupes_what_it_keeps(tmp_path: Path) -> None:
    """``run`` keeps every violation and a sample of allowed traffic: every violation's copies
    are found; the sample loses its copies too when both are in it."""
    once = _run([SAMPLE], anchors=5)
    twice = _run([_doubled(tmp_path)], anchors=5)
    assert twice.violations.num_rows == once.violations.num_rows == 55
    assert _answer(twice) == _answer(once)
    assert twice.provenance()["counts"]["network_event_copies_merged"] >= 55


def test_a_case_of_a_doubled_log_answers_as_one_copy(tmp_path: Path) -> None:
    case = tmp_path / "case"
    ingest(case, [str(_doubled(tmp_path))], RunOptions())
    result = open_case(case).analyse(RunOptions(), cache=False)
    assert result.violations.num_rows == 55 and result.findings.num_rows == 13
    assert result.provenance()["counts"]["network_event_copies_merged"] == 761 + 83


def test_a_cached_case_analysis_counts_the_copies_as_a_fresh_one(tmp_path: Path) -> None:
    case = tmp_path / "case"
    ingest(case, [str(_doubled(tmp_path))], RunOptions())
    fresh = open_case(case).analyse(RunOptions())  # computed, then written to the cache
    cached = open_case(case).analyse(RunOptions())
    assert cached.cached and not fresh.cached
    assert cached.provenance() == fresh.provenance()


def _events(**columns: list[Any]) -> pa.Table:
    n = len(next(iter(columns.values())))
    base: dict[str, list[Any]] = {
        "ts": [1_764_655_201_000_000_000] * n,
        "src_ip": ["10.0.0.1"] * n,
        "dst_ip": ["203.0.113.9"] * n,
        "dst_port": [4444] * n,
        "action": ["denied"] * n,
        "source_format": ["alibaba_cfw"] * n,
        "source_path": ["f.jsonl"] * n,
        "source_line": list(range(1, n + 1)),
        "event_id": list(range(1, n + 1)),
    }
    base.update(columns)
    return from_columns(base, NETWORK_EVENTS)


def test_rows_that_differ_in_any_field_or_a_null_are_different_records() -> None:
    table = _events(
        bytes_out=[60, 60, 61, None, None, 60],
        dst_domain=["x.example", "x.example", "x.example", "x.example", "x.example", None],
        source_path=["b.jsonl", "a.jsonl", "a.jsonl", "a.jsonl", "c.jsonl", "a.jsonl"],
        source_format=["alibaba_cfw", "generic_network", *["alibaba_cfw"] * 4],
    )
    kept, dropped, notes = same_events.drop_same_events(table)
    # rows 1 and 2 are one record (provenance differs only); 4 and 5 are one record (nulls equal)
    assert dropped == 2
    assert kept.column("source_line").to_pylist() == [2, 3, 4, 6]
    by_line = {r["source_line"]: r for r in plain_rows(kept)}
    assert by_line[2]["ts_note"] == "same record also at b.jsonl:1: counted once"
    assert by_line[4]["ts_note"] == "same record also at c.jsonl:5: counted once"
    assert by_line[3]["ts_note"] is None and by_line[6]["ts_note"] is None
    assert notes == {
        "b.jsonl": {"duplicate of a.jsonl:2: the same record, counted once in the analysis": 1},
        "c.jsonl": {"duplicate of a.jsonl:4: the same record, counted once in the analysis": 1},
    }


def test_three_copies_keep_one_and_keep_its_own_note() -> None:
    table = _events(ts_note=["end ignored"] * 3, source_line=[7, 3, 5])
    kept, dropped, notes = same_events.drop_same_events(table)
    assert dropped == 2 and kept.num_rows == 1
    (row,) = plain_rows(kept)
    assert row["source_line"] == 3
    assert row["ts_note"] == "end ignored; same record also at f.jsonl:5 and 1 more: counted once"
    assert notes == {
        "f.jsonl": {"duplicate of f.jsonl:3: the same record, counted once in the analysis": 2}
    }


def test_a_hash_collision_never_merges_different_records(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    ports = rng.integers(1, 4, 300).tolist()  # 3 records, 100 copies each, shuffled
    table = _events(dst_port=ports, source_path=[f"{i % 7}.log" for i in range(300)])
    expected = same_events.drop_same_events(table)
    real = same_events.row_hashes

    def colliding(t: pa.Table, columns: Any, seed: int = 0) -> np.ndarray:
        hashes = real(t, columns, seed)
        return np.zeros_like(hashes) if seed == 0 else hashes  # every row collides at first

    monkeypatch.setattr(same_events, "row_hashes", colliding)
    got = same_events.drop_same_events(table)
    assert got[1] == expected[1] == 297
    assert got[0].equals(expected[0]) and got[2] == expected[2]
    assert sorted(got[0].column("dst_port").to_pylist()) == sorted(set(ports))


def test_no_copy_leaves_the_table_as_it_is() -> None:
    table = _events(dst_port=[1, 2, 3])
    assert same_events.drop_same_events(table) == (table, 0, {})


# --- a key given twice -------------------------------------------------------------------------

CFW = json.loads((ROOT / "tests/data/case/hostile/firewall.jsonl").read_text().splitlines()[0])
NOTE = "duplicate key 'rule_result' in the record: the last value was used"


def _cfw_lines() -> list[bytes]:
    line = json.dumps(CFW)
    return [
        line.encode(),
        (line[:-1] + ', "rule_result": "pass"}').encode(),  # drop, then pass: pass is used
        (line[:-1] + ', "unread": 1, "unread": 2}').encode(),  # a key never read: no note
        (line[:-1] + ', "x": "a\\":b\\":c\\": d"}').encode(),  # '":' in a string: no note
        line.replace('"start_time"', '"__time__"').encode(),
    ]


@pytest.mark.parametrize("epoch_unit", ["auto", "ms"])  # column-wise, and line by line
def test_alibaba_cfw_notes_a_key_given_twice_and_uses_the_last_value(
    tmp_path: Path, epoch_unit: str
) -> None:
    path = write(tmp_path / "cfw.jsonl", _cfw_lines())
    result = alibaba_cfw.read(Source(path, path.name), LoadOptions(epoch_unit=epoch_unit))
    rows = {r["source_line"]: r for r in plain_rows(result.table)}
    assert rows[2]["action"] == "allowed" and rows[2]["ts_note"] == NOTE
    assert rows[1]["action"] == "denied" and rows[1]["ts_note"] is None
    assert rows[3]["ts_note"] is None and rows[4]["ts_note"] is None
    assert result.stats.notes[NOTE] == 1


def test_alibaba_cfw_notes_it_when_run_samples_too(tmp_path: Path) -> None:
    lines = [
        json.dumps({**CFW, "rule_result": "pass", "src_port": str(p)}).encode()
        for p in range(1, 200)
    ]
    dup = json.dumps({**CFW, "rule_result": "pass"})[:-1] + ', "rule_result": "drop"}'
    path = write(tmp_path / "cfw.jsonl", [*lines, dup.encode()])
    result = load_inputs([str(path)], RunOptions(anchors=3))
    (row,) = [r for r in plain_rows(result.events) if r["action"] == "denied"]
    assert row["ts_note"] == NOTE and row["source_line"] == 200


def test_generic_network_notes_a_mapped_key_given_twice(tmp_path: Path) -> None:
    mapping = {"ts": "t", "src_ip": "flow.src", "dst_ip": "flow.dst", "action": "verdict"}
    lines = [
        {"t": "2025-12-02T06:00:00Z", "flow": {"src": "10.0.0.1", "dst": "1.2.3.4"}},
        {"t": "2025-12-02T06:00:01Z", "flow": {"src": "10.0.0.1", "dst": "1.2.3.4"}},
    ]
    raw = [json.dumps({**r, "verdict": "deny"}) for r in lines]
    raw[0] = raw[0][:-1] + ', "verdict": "allow"}'
    raw[1] = raw[1].replace('"dst": "1.2.3.4"', '"dst": "1.2.3.4", "dst": "5.6.7.8"')
    path = write(tmp_path / "x.events.jsonl", [r.encode() for r in raw])
    options = LoadOptions(format_options={"generic_network": {"mapping": json.dumps(mapping)}})
    for fast in (True, False):
        result = generic_network.read(Source(path, path.name), options, fast=fast)
        first, second = plain_rows(result.table)
        assert first["action"] == "allowed"
        assert first["ts_note"] == "duplicate key 'verdict' in the record: the last value was used"
        assert second["dst_ip"] == "5.6.7.8"
        assert second["ts_note"] == "duplicate key 'dst' in the record: the last value was used"


def test_duplicate_keys_at_any_depth_and_only_when_there_are() -> None:
    raw = '{"a": 1, "b": {"c": 2, "c": 3}, "a": 4, "t": "12:00:00"}'
    assert same_events.duplicate_keys(raw, json.loads(raw)) == ["c", "a"]
    clean = '{"a": "x\\": y", "t": "2025-12-02T06:00:00Z", "u": "http://h:80/"}'
    assert same_events.duplicate_keys(clean, json.loads(clean)) == []
    two = '{"x": 1, "y": 2, "x": 3, "y": 4}'
    note = same_events.duplicate_key_note(two, json.loads(two), {"x", "y"})
    assert note == "duplicate keys 'x', 'y' in the record: the last value of each was used"
    assert same_events.duplicate_key_note(two, json.loads(two), {"z"}) is None
