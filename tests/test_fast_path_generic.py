"""The generic loader's column-wise path gives exactly the per-record reader's rows, hosts, rejects
and stats, whatever the lines and the mapping (property tests): JSON lines parsed by pyarrow with
the mapped paths typed as the file's head shows them, every target converted in columns, and any
line pyarrow refuses or a rule does not vouch for read by the per-record reader."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loader_helpers import raised

from correlate.errors import InputError
from correlate.loaders import LoadOptions, LoadResult, blocks
from correlate.loaders import generic as loader
from correlate.sources import Limits, Source

FLAT: dict[str, Any] = {
    "call_id": "c-1",
    "run_id": "rome-rl",
    "episode_id": "ep-7",
    "step": 3,
    "ts_start": "2025-12-02T06:11:15.123Z",
    "ts_end": "2025-12-02T06:11:20.5+08:00",
    "tool": "bash",
    "command": "ls -la",
    "output": "total 48\n",
    "exit_code": 0,
    "host": "sbx-03",
    "host_ip": "192.168.10.13",
    "model": "qwen3",
    "train_step": 42,
}
CHANGES: dict[str, list[Any]] = {
    "ts_start": [
        "2025-12-02T06:11:15Z",
        "2025-12-02T14:11:15+0800",
        "2025-12-02T14:11:15-03",
        "2025-12-02T06:11:15",
        "2025-12-02 06:11:15,5",
        "2025-12-02t06:11:15.123456789123z",
        "2025-12-02T06:11Z",
        "2024-02-29T00:00:00Z",
        "2025-02-29T00:00:00Z",
        "2025-12-02T24:00:00Z",
        "2025-12-02T06:11:60Z",
        "2025-12-02T06:11:15+24:00",
        "2025-12-02T06:11:15+05:60",
        "2025-12-02T06:11:15 UTC",
        " 2025-12-02T06:11:15Z",
        "1600-01-01T00:00:00Z",
        "2300-01-01T00:00:00Z",
        "\u0662025-12-02T06:11:15Z",
        1_764_656_000,
        1_764_656_000_123,
        1_764_656_000_123_456,
        1_764_656_000_123_456_789,
        -5,
        1_764_656_000.25,
        1e300,
        "1764656000",
        "1764656000.5",
        "1e9",
        "-",
        "",
        None,
        True,
        "around noon",
    ],
    "ts_end": [
        "2025-12-02T06:11:16Z",
        "2025-12-02T06:11:10Z",
        "2025-12-02T06:11:16",
        1_764_656_001,
        "",
        None,
        ...,
        "soon",
    ],
    "duration": [2.5, "3", "-1", "nan", True, None, "x", 0],
    "step": [3, "3", " 3 ", 3.0, 3.5, "abc", True, None, 2**70],
    "exit_code": [0, 1, "1", 1.5, None, "-"],
    "is_error": [True, "yes", "maybe", 1, 2, None, "N"],
    "host_ip": [
        "192.168.10.13",
        "2001:DB8::1",
        "192.168.010.1",
        "no ip",
        3232235777,
        None,
        " 10.0.0.1 ",
    ],
    "command": ["ls", "  ", "-", None, 5, "  padded  ", ...],
    "arguments": [
        '{"cmd": "whoami"}',
        '{"commands": ["a", "b"]}',
        '{"commands": []}',
        '{"code": "print(1)", "cmd": "  "}',
        '{"shell": ["bash", "-lc", "id"]}',
        "not json",
        7,
        "-",
        "  x  ",
        None,
    ],
    "output": ["x" * 2500, "  padded  ", "-", "", 42, "\u3000wide\u3000", None, "caf\u00e9" * 600],
    "call_id": ["c", 12, 1.5, True, "  ", None, "\u00e9"],
    "tool": ["bash", None, 3],
    "host": ["sbx-03", "sbx-04", None, ""],
    "model": ["m", None],
}


def flat(**changes: Any) -> str:
    record = {**FLAT, **changes}
    return json.dumps({k: v for k, v in record.items() if v is not ...})


def alike(value: Any, like: Any) -> bool:
    """Whether ``value`` has the JSON type of ``like`` (null and absent fit anything)."""
    return value is None or value is ... or like is None or type(value) is type(like)


FLAT_VARIANTS = [flat()] + [
    flat(**{key: value}) for key, values in CHANGES.items() for value in values
]
FLAT_POOL = [
    *(
        flat(**{key: value})
        for key, values in CHANGES.items()
        for value in values
        for _ in range(4 if alike(value, FLAT.get(key)) else 1)
    ),
    *[flat()] * 20,
]
"""Mostly values of the head's types (read column-wise), some of another type (refused)."""
RAW = [
    flat(arguments={"cmd": "an object"}),
    flat(command=["bash", "-lc", "id"]),
    '{"call_id": "d", "call_id": "e", "ts_start": 1764656000}',
    '{"a": 1}{"b": 2}',
    flat(deep="X").replace('"X"', "[" * 1200 + "]" * 1200),
    flat(deep="X").replace('"X"', "[" * 600 + "]" * 600),
    flat()[:-1] + ', "n": ' + "8" * 4400 + "}",
    flat(call_id="c\ud800", output="lone \udc00"),
    '{"broken": ',
    "[1, 2]",
    "",
    "   ",
    flat() + "\r",
]

NESTED = {
    "id": "id",
    "tool": "name",
    "ts_start": "t.start",
    "ts_end": "t.end",
    "duration": "t.took",
    "command": "action.cmd",
    "host": "env.sandbox_id",
    "host_ip": "env.sandbox_ip",
    "exit_code": "rc",
}
NESTED_MAPPING = {
    **{target: path for target, path in NESTED.items() if target != "id"},
    "call_id": "id",
    "time_zone": "+08:00",
    "epoch_unit": "ms",
    "duration_unit": "ms",
    "ts_kind": "step",
}


def nested(**changes: Any) -> str:
    record: dict[str, Any] = {
        "id": "n-1",
        "name": "bash",
        "t": {"start": 1_764_656_000_000, "end": 1_764_656_002_000, "took": 5},
        "action": {"cmd": "curl -s http://203.0.113.7/"},
        "env": {"sandbox_id": "sbx-9", "sandbox_ip": "10.0.0.9"},
        "rc": 7,
    }
    for key, value in changes.items():
        if value is ...:
            record.pop(key, None)
        else:
            record[key] = value
    return json.dumps(record)


NESTED_VARIANTS = [
    nested(),
    nested(t={"start": "2025-12-02T06:11:15", "end": None, "took": 2}),
    nested(t={"start": 1_764_656_000_000}),
    nested(t={"start": "2025-12-02T06:11:15Z", "end": "2025-12-02T06:11:14Z"}),
    nested(t=None),
    nested(t="text"),
    nested(env={"sandbox_id": "sbx-9"}),
    nested(env={"sandbox_ip": "10.0.0.9"}, host="x"),
    nested(**{"env.sandbox_id": "literal"}),  # the key itself beats the path
    nested(**{"env.sandbox_id": None}),
    nested(**{"action.cmd": "literal command"}),
    nested(action={"cmd": ["ls", "-la"]}),
    nested(action={"cmd": None}),
    nested(rc="3"),
    nested(rc=None, id=None),
    nested(name=None),
]

NESTED_POOL = [*NESTED_VARIANTS, *[nested()] * 12, *NESTED_VARIANTS[2:4] * 3]

RECORDS_MAPPING = {
    "records": "calls",
    "call_id": "id",
    "episode_id": "trajectory_id",
    "step": "turn",
    "train_step": "global_step",
    "ts_start": "start_time",
    "ts_end": "end_time",
    "tool": "name",
    "command": "action.cmd",
    "exit_code": "rc",
    "host": "env_info.sandbox_id",
    "host_ip": "env_info.sandbox_ip",
    "time_zone": "Asia/Shanghai",
    "epoch_unit": "ms",
}


def item(n: int, **changes: Any) -> dict[str, Any]:
    found = {
        "id": f"tc-{n}",
        "turn": n,
        "name": "bash",
        "action": {"cmd": f"echo {n}"},
        "start_time": 1_764_655_875_000 + n * 1000,
        "end_time": 1_764_655_877_500 + n * 1000,
        "rc": 0,
    }
    found.update(changes)
    return {k: v for k, v in found.items() if v is not ...}


def trajectory(calls: Any, **changes: Any) -> str:
    record = {
        "trajectory_id": "tb_1",
        "global_step": 12,
        "env_info": {"sandbox_id": "sandbox-8f3a", "sandbox_ip": "192.168.10.13"},
        "calls": calls,
        **changes,
    }
    return json.dumps({k: v for k, v in record.items() if v is not ...})


RECORDS_VARIANTS = [
    trajectory([item(1), item(2)]),
    trajectory([item(3)], env_info={"sandbox_id": "sandbox-1b2c", "sandbox_ip": "192.168.10.17"}),
    trajectory([]),
    trajectory("not a list"),
    trajectory(None),
    trajectory(...),
    trajectory([item(4), "a string"]),
    trajectory([item(5), None]),
    trajectory([item(6, env_info={"sandbox_id": "own", "sandbox_ip": "10.1.1.1"})]),
    trajectory(
        [item(7, start_time="2025-12-02T14:11:15"), item(8, start_time="2025-03-09T02:30:00")]
    ),
    trajectory([item(9, start_time=...)], start_time=1_764_655_800_000),
    trajectory([item(10, end_time=5)]),
    trajectory([item(11, turn="x")]),
    trajectory([item(12, id=None)], trajectory_id=None),
    trajectory([item(13)], **{"env_info.sandbox_ip": "10.9.9.9"}),
    trajectory([item(14, **{"action.cmd": "literal"})]),
    trajectory([item(15, start_time=1_764_655_875_000.5)]),
]


RECORDS_POOL = [*RECORDS_VARIANTS, *RECORDS_VARIANTS[:3] * 6, *RECORDS_VARIANTS[5:9] * 2]


def load(path: Path, *, fast: bool, cap: int = 1 << 24, **options: Any) -> LoadResult | str:
    source = Source(path, path.name, limits=Limits(max_line_bytes=cap))
    try:
        return loader.read(source, LoadOptions(**options), fast=fast)
    except InputError as exc:  # the early stop, a line over the cap: both alike
        return str(exc)


def same(a: LoadResult | str, b: LoadResult | str) -> None:
    if isinstance(a, str) or isinstance(b, str):
        assert a == b
        return
    assert a.table.equals(b.table), (a.table.to_pylist()[:2], b.table.to_pylist()[:2])
    assert a.hosts is not None and b.hosts is not None and a.hosts.equals(b.hosts)
    assert a.stats == b.stats
    assert [(r.location.line, r.reason, r.raw) for r in a.rejects] == [
        (r.location.line, r.reason, r.raw) for r in b.rejects
    ]


def write(path: Path, lines: list[str], trailing_newline: bool = True) -> Path:
    body = "\n".join(lines).encode()
    path.write_bytes(body + (b"\n" if trailing_newline and body else b""))
    return path


SETTINGS = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
OPTIONS = st.sampled_from(
    [
        {},
        {"epoch_unit": "s"},
        {"epoch_unit": "ms"},
        {"zones": {"generic": __import__("zoneinfo").ZoneInfo("Asia/Shanghai")}},
        {"zones": {"*": __import__("datetime").timezone.utc}},
    ]
)


@SETTINGS
@given(
    lines=st.lists(st.sampled_from(FLAT_POOL + RAW), min_size=1, max_size=40),
    trailing_newline=st.booleans(),
    piece=st.integers(1, 20),
    options=OPTIONS,
)
def test_default_mapping_column_wise_equals_line_by_line(
    tmp_path_factory, monkeypatch, lines, trailing_newline, piece, options
):
    monkeypatch.setattr(blocks, "SMALLEST_PIECE", piece)
    monkeypatch.setattr(loader, "_HEAD_RECORDS", 3)  # the head's types: the first lines'
    lines = [flat(), flat(), *lines]
    path = write(tmp_path_factory.mktemp("generic") / "x.calls.jsonl", lines, trailing_newline)
    same(load(path, fast=True, **options), load(path, fast=False, **options))


def mapped_options(mapping: dict[str, str], options: dict[str, Any]) -> dict[str, Any]:
    return {**options, "format_options": {"generic": {"mapping": json.dumps(mapping)}}}


@SETTINGS
@given(
    lines=st.lists(st.sampled_from(NESTED_POOL + RAW[2:]), min_size=1, max_size=40),
    piece=st.integers(1, 20),
    options=OPTIONS,
)
def test_nested_paths_column_wise_equal_line_by_line(
    tmp_path_factory, monkeypatch, lines, piece, options
):
    monkeypatch.setattr(blocks, "SMALLEST_PIECE", piece)
    monkeypatch.setattr(loader, "_HEAD_RECORDS", 2)
    lines = [nested(), nested(), *lines]
    path = write(tmp_path_factory.mktemp("generic") / "calls.jsonl", lines)
    options = mapped_options(NESTED_MAPPING, options)
    same(load(path, fast=True, **options), load(path, fast=False, **options))


@SETTINGS
@given(
    lines=st.lists(st.sampled_from(RECORDS_POOL + RAW[2:]), min_size=1, max_size=30),
    piece=st.integers(1, 20),
    options=OPTIONS,
)
def test_call_lists_column_wise_equal_line_by_line(
    tmp_path_factory, monkeypatch, lines, piece, options
):
    monkeypatch.setattr(blocks, "SMALLEST_PIECE", piece)
    monkeypatch.setattr(loader, "_HEAD_RECORDS", 2)
    lines = [RECORDS_VARIANTS[0], RECORDS_VARIANTS[1], *lines]
    path = write(tmp_path_factory.mktemp("generic") / "calls.jsonl", lines)
    options = mapped_options(RECORDS_MAPPING, options)
    same(load(path, fast=True, **options), load(path, fast=False, **options))


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(st.sampled_from(FLAT_VARIANTS[:20]), min_size=1, max_size=30),
    chunk=st.integers(1, 3000),
    long_at=st.none() | st.integers(0, 29),
)
def test_chunk_boundaries_and_long_lines(tmp_path_factory, monkeypatch, lines, chunk, long_at):
    if long_at is not None and long_at < len(lines):
        lines = [*lines[:long_at], flat(output="y" * 5000), *lines[long_at:]]
    path = write(tmp_path_factory.mktemp("generic") / "x.calls.jsonl", lines)
    monkeypatch.setattr(blocks, "CHUNK_BYTES", chunk)
    same(load(path, fast=True, cap=4096), load(path, fast=False, cap=4096))


def test_a_big_gzip_file_with_bad_lines_among_good(tmp_path):
    lines = [
        flat(call_id=f"c-{i}", ts_start=1_764_656_000 + i, host=f"sbx-{i % 7}")
        for i in range(20_000)
    ]
    lines[7_777] = flat(ts_start="around noon")
    lines[12_345] = '{"broken": '
    path = tmp_path / "x.calls.jsonl.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    fast, slow = load(path, fast=True), load(path, fast=False)
    same(fast, slow)
    assert isinstance(fast, LoadResult) and fast.stats.rejected == 2


def test_a_file_whose_types_change_line_by_line_gives_up_column_wise_reading(tmp_path):
    lines = [
        flat(ts_start=1_764_656_000 + i if i % 2 else "2025-12-02T06:11:15Z") for i in range(12_000)
    ]
    path = write(tmp_path / "x.calls.jsonl", lines)
    same(load(path, fast=True), load(path, fast=False))


def test_strict_stops_at_the_same_first_reject(tmp_path):
    lines = [flat()] * 50 + [flat(step="abc")] + [flat()] * 50
    path = write(tmp_path / "x.calls.jsonl", lines)
    messages = raised(
        lambda fast: loader.read(Source(path, path.name), LoadOptions(strict=True), fast=fast)
    )
    assert messages[0] == messages[1] and "x.calls.jsonl:51:" in messages[0]


def test_clean_files_are_read_column_wise(tmp_path, monkeypatch):
    per_line: list[int] = []
    line = loader._Reader.line

    def counted(self: Any, number: int, raw: bytes) -> None:
        per_line.append(number)
        line(self, number, raw)

    monkeypatch.setattr(loader._Reader, "line", counted)
    path = write(tmp_path / "x.calls.jsonl", [flat(call_id=f"c-{i}") for i in range(100)])
    result = load(path, fast=True)
    assert isinstance(result, LoadResult) and result.stats.loaded == 100 and per_line == []
    path = write(tmp_path / "t.jsonl", [RECORDS_VARIANTS[0]] * 50)
    result = load(path, fast=True, **mapped_options(RECORDS_MAPPING, {}))
    assert isinstance(result, LoadResult) and result.stats.loaded == 100 and per_line == []


@pytest.mark.parametrize("head", [2, 200])
def test_every_odd_line_after_a_clean_head(tmp_path, monkeypatch, head):
    monkeypatch.setattr(loader, "_HEAD_RECORDS", head)
    monkeypatch.setattr(blocks, "SMALLEST_PIECE", 1)  # each refused line alone
    path = write(tmp_path / "x.calls.jsonl", [flat(), flat(), *FLAT_VARIANTS, *RAW] * 2)
    same(load(path, fast=True), load(path, fast=False))
