"""The ROLL dump loader's column-wise path gives exactly the per-line reader's rows, hosts,
rejects and stats, whatever the dump (property tests): the column line parsed by pyarrow, every
trajectory's conversation parsed at once, and any trajectory or line it cannot vouch for read by
the per-line reader."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from correlate.errors import InputError, StrictRejection
from correlate.loaders import LoadOptions, LoadResult, blocks
from correlate.loaders import roll_dump as loader
from correlate.sources import Limits, Source

TIMING = {"traj_save_time", "trajectory.total_time", "traj_time_env_total"}


def trajectory(n: int, **changes: Any) -> dict[str, Any]:
    env = {
        "env_id": n,
        "group_id": 3,
        "tag": "RockTBNativeEnv",
        "seed": 7,
        "episode_id": n,
        "sandbox_ip": f"192.168.10.{n % 250 + 1}",
        "sandbox_id": f"sandbox-{n:04x}",
    }
    timing: dict[str, Any] = {
        "traj_save_time": "2025-12-02T14:20:01.483020",
        "trajectory.total_time": 61.25,
    }
    data: dict[str, Any] = {
        "trajectory_id": f"RockTBNativeEnv_9_9_3_{n}_{n}_7_20251202_142001_482913",
        "timestamp": "20251202_142001_482913",
        "current_step": 9,
        "env_info": env,
        "timing_info": timing,
    }
    for key, value in changes.items():
        target = env if key in env else timing if key in TIMING else data
        if value is ...:
            target.pop(key, None)
        else:
            target[key] = value
    return data


DATA = [
    json.dumps(trajectory(1)),
    json.dumps(trajectory(2, sandbox_ip=None)),
    json.dumps(trajectory(3, sandbox_ip="None")),  # a reject for each call
    json.dumps(trajectory(4, traj_save_time="2025-12-02T15:10:00+08:00")),
    json.dumps(
        trajectory(5, traj_save_time=..., **{"trajectory.total_time": ...}, traj_time_env_total=30)
    ),
    json.dumps(trajectory(6, **{"trajectory.total_time": "n/a"})),
    json.dumps(trajectory(7, **{"trajectory.total_time": -5})),
    json.dumps(trajectory(8, **{"trajectory.total_time": True})),
    json.dumps(trajectory(9, **{"trajectory.total_time": "12.5"})),
    json.dumps(trajectory(10, traj_save_time="yesterday")),
    json.dumps(trajectory(11, traj_save_time=..., timestamp=..., trajectory_id=...)),  # no time
    json.dumps(trajectory(12, trajectory_id=..., timestamp="20251202_150000_5")),
    json.dumps(trajectory(13, sandbox_id=" sbx-13 ", sandbox_ip="2001:DB8::1")),
    json.dumps(trajectory(14, current_step="x")),
    json.dumps(trajectory(15, sandbox_id="sbx-\ud800")),
    '{"trajectory_id": "broken", ',
    "[1, 2]",
    "null",
]

SYSTEM = {"role": "system", "content": "You are iFlow CLI."}


def call(call_id: Any, name: Any = "run_shell_command", arguments: Any = None) -> Any:
    if arguments is None:
        arguments = json.dumps({"command": f"echo {call_id}", "description": "d"})
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def asks(*calls: Any, content: Any = "") -> dict[str, Any]:
    return {"role": "assistant", "content": content, "tool_calls": list(calls)}


def answer(call_id: Any, content: Any = "done\n") -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


TURNS = [
    SYSTEM,
    {"role": "user", "content": "fix it"},
    asks(call("c1"), call("c2", "read_file", '{"absolute_path": "/x"}')),
    answer("c1", "  total 48\n"),
    answer(" c2 ", "x" * 2500),
    answer("c2", "ignored: not the first answer"),
    asks(call("c3", arguments='{"cmd": ["ls", "-la"]}')),
    answer("c3", "\u3000wide\u3000"),
    {"role": "assistant", "content": "thinking", "tool_calls": None},
    asks(call("c4", arguments='{"commands": ["cd /x", "make"]}'), call(None)),
    answer("c4", "-"),
    asks(call("c5", "str_replace_editor", '{"command": "view", "path": "/a"}')),
    asks(call("c6", arguments='{"command": "view", "path": "/a"}')),
    asks(call("c7", arguments="{not json")),
    asks(call("  ")),
    answer("c6", None),
]
MESSAGES = [
    json.dumps([TURNS]),
    json.dumps(TURNS),  # a flat list
    json.dumps([TURNS[:4], TURNS[:4]]),  # the same calls in two lists: repeats
    json.dumps([TURNS[:3], None, []]),
    json.dumps([]),
    json.dumps([[]]),
    "null",
    "{}",
    "[[{]]",
    json.dumps([TURNS[:2], {"role": "user"}]),
    json.dumps([*TURNS[:3], None]),  # a flat list holding a null: no list of messages
    json.dumps([[SYSTEM, asks(call("c1"), None)]]),  # a null call: rejected
    json.dumps([[SYSTEM, asks(call("c1", name=None))]]),
    json.dumps([[SYSTEM, asks(call("c1", name="  "))]]),
    json.dumps([[SYSTEM, asks(call(7))]]),
    json.dumps([[SYSTEM, asks(call("c1", arguments={"command": "dict"}))]]),
    json.dumps([[SYSTEM, asks(call("c1")), answer("c1", [{"type": "text", "text": "parts"}])]]),
    json.dumps([[SYSTEM, asks(call("c1")), answer(9, "numeric id")]]),
    json.dumps([[SYSTEM, {"role": 5}]]),
    json.dumps([[answer("c1", "before"), asks(call("c1")), answer("c1", "after")]]),
    json.dumps([[SYSTEM, asks(call("c1")), "text"]]),
    json.dumps([TURNS[:4]], indent=1),  # line breaks inside the text
    json.dumps([TURNS[:4]]) + " [[]]",  # two JSON values
    json.dumps([TURNS[:4]]) + ", [[]]",
    json.dumps([[SYSTEM, asks(call("c\u00e9")), answer("c\u00e9", "caf\u00e9 \U0001f600" * 700)]]),
    json.dumps([[SYSTEM, asks(call("c1", arguments='{"command": "a", "command": "b"}'))]]),
    json.dumps([[SYSTEM, asks(call("c1")), answer("c1", "lone \udc00 surrogate")]]),
    json.dumps([[SYSTEM, {"role": "user", "content": "x", "meta": "X"}]]).replace(
        '"X"', "[" * 1200 + "]" * 1200
    ),
    json.dumps([[SYSTEM, asks(call("c1")), answer("c1", "ok")]]).replace(
        '"ok"}', '"ok", "n": ' + "1" * 4400 + "}"
    ),
    json.dumps(
        [[SYSTEM, asks(call("c1", arguments='{"cmd": "x", "d": ' + "[" * 1200 + "]" * 1200 + "}"))]]
    ),
]


def line(picks: list[tuple[int, int]], **columns: Any) -> str:
    n = len(picks)
    record: dict[str, Any] = {
        "trajectory_data": [DATA[d] for d, _ in picks],
        "messages": [MESSAGES[m] for _, m in picks],
        "tools": ["[]"] * n,
        "exp_name": ["rome-rl"] * n,
        "global_step": [9] * n,
    }
    for key, value in columns.items():
        if value is ...:
            record.pop(key)
        else:
            record[key] = value
    return json.dumps(record)


PICKS = st.lists(
    st.tuples(st.integers(0, len(DATA) - 1), st.integers(0, len(MESSAGES) - 1)),
    min_size=0,
    max_size=12,
)
ODD_LINES = [
    "",
    "   ",
    '{"broken": ',
    "[1]",
    line([(0, 0), (1, 0)], messages=[MESSAGES[0]]),  # columns of different lengths
    line([(0, 0)], trajectory_data="not a list"),
    json.dumps({"prompt": ["a", "b"], "global_step": [3, 3]}),  # an RLVR dump
    line([(0, 0)], messages=...),
    line([(0, 0), (3, 0)], tools=...),
    line([(0, 0)], exp_name=[7]),
    line([(0, 0)], global_step=[9.0]),
    line([(0, 0)], global_step=[None]),
    line([(0, 0)], extra=["x"]),
    line([(0, 0)], extra="scalar"),
    line([(0, 1)], trajectory_data=[trajectory(1)]),  # an object, not its text
    line([(0, 0), (0, 1)], trajectory_data=[DATA[0], None]),
    line([(0, 0), (0, 1)], messages=[MESSAGES[0], None]),
    line([(0, 0)], messages=[[TURNS]]),  # the list itself, not its text
    line([(0, 0)]) + "  ",
    line([(0, 0)]).replace('"tools"', '"exp_name"', 1),  # a key twice
    "\ufeff" + line([(0, 0)]),
]


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


def write(path: Path, lines: list[str]) -> Path:
    path.write_bytes("\n".join(lines).encode() + b"\n")
    return path


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    dumps=st.lists(PICKS, min_size=1, max_size=3),
    odd=st.lists(st.sampled_from(ODD_LINES), max_size=2),
    piece=st.integers(1, 20),
    named=st.booleans(),
)
def test_column_wise_equals_line_by_line(tmp_path_factory, monkeypatch, dumps, odd, piece, named):
    monkeypatch.setattr(blocks, "SMALLEST_PIECE", piece)
    name = "rollout_dump_data.step_9.jsonl" if named else "dump.jsonl"
    lines = [*(line(picks) for picks in dumps), *odd]
    path = write(tmp_path_factory.mktemp("roll") / name, lines)
    same(load(path, fast=True), load(path, fast=False))


@pytest.mark.parametrize("zone", [None, "Asia/Shanghai"])
def test_every_trajectory_and_conversation_in_one_dump(tmp_path, zone):
    picks = [(d, m) for d in range(len(DATA)) for m in range(len(MESSAGES))]
    path = write(tmp_path / "rollout_dump_data.step_9.jsonl", [line(picks)])
    options: dict[str, Any] = {}
    if zone:
        from zoneinfo import ZoneInfo

        options["zones"] = {"roll_dump": ZoneInfo(zone)}
    fast, slow = load(path, fast=True, **options), load(path, fast=False, **options)
    same(fast, slow)
    assert isinstance(fast, LoadResult) and fast.stats.loaded > 100 and fast.stats.rejected > 50


def test_a_big_gzip_dump_with_bad_trajectories_among_good(tmp_path):
    picks = [(i % 2, i % 3) for i in range(3000)]
    picks[1234] = (2, 0)  # sandbox_ip "None": every call rejected
    picks[2345] = (0, 12)  # a call without function.name
    path = tmp_path / "rollout_dump_data.step_9.jsonl.gz"
    path.write_bytes(gzip.compress((line(picks) + "\n").encode()))
    fast, slow = load(path, fast=True), load(path, fast=False)
    same(fast, slow)
    assert isinstance(fast, LoadResult)
    assert {r.location.line for r in fast.rejects} == {1235, 2346}


def test_a_line_over_the_cap_stops_both_alike(tmp_path):
    path = write(tmp_path / "dump.jsonl", [line([(0, 0)] * 20)])
    same(load(path, fast=True, cap=4096), load(path, fast=False, cap=4096))


def test_strict_stops_at_the_same_first_reject(tmp_path):
    path = write(tmp_path / "dump.jsonl", [line([(0, 0)] * 5 + [(0, 12)] + [(0, 0)] * 5)])
    messages = []
    for fast in (True, False):
        with pytest.raises(StrictRejection) as caught:
            loader.read(Source(path, path.name), LoadOptions(strict=True), fast=fast)
        messages.append(str(caught.value))
    assert messages[0] == messages[1] and "dump.jsonl:6: trajectory 6:" in messages[0]


def test_clean_trajectories_are_read_column_wise(tmp_path, monkeypatch):
    read_one = loader._Reader.trajectory
    seen: list[int] = []

    def counted(self: Any, ordinal: int, *args: Any) -> None:
        seen.append(ordinal)
        read_one(self, ordinal, *args)

    monkeypatch.setattr(loader._Reader, "trajectory", counted)
    path = write(tmp_path / "dump.jsonl", [line([(0, 0), (1, 1), (3, 2), (4, 19), (2, 0)])])
    result = load(path, fast=True)
    assert isinstance(result, LoadResult) and result.stats.loaded > 10
    assert seen == [5]  # sandbox_ip "None": the per-trajectory reader rejects it
