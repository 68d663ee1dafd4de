"""SWE-agent loader: the anchor option (required, checked), cumulative inferred times, tool calls
from the history, malformed steps, strict mode, gzip and sniffing."""

from __future__ import annotations

import gzip
import json
import re
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from loader_helpers import ns, rows
from loader_helpers import type_confused as _type_confused

from correlate.errors import FormatMismatch, InputError, OptionError, StrictRejection
from correlate.loaders import LoadOptions, LoadResult, detect
from correlate.loaders import swe_agent as loader
from correlate.sources import Source

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "swe_agent"
MARSHMALLOW = DATA / "marshmallow-code__marshmallow-1867.traj"
NETWORKING = DATA / "networking_1_no_execution_time.traj"
HISTORY_ONLY = DATA / "history_only.traj"
MALFORMED = DATA / "malformed_steps.traj"
SAMPLES = sorted(p for p in DATA.iterdir() if p.is_file() and p.name != "README.md")
START = "2025-12-02T06:19:00Z"
NOTE = "inferred: swe_agent.start + execution_time of earlier steps"


def display(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return path.name


def anchored(start: str = START, **kwargs: Any) -> LoadOptions:
    return LoadOptions(format_options={"swe_agent": {"start": start}}, **kwargs)


def load(path: Path, options: LoadOptions | None = None, shown: str | None = None) -> LoadResult:
    return loader.read(Source(path, shown or display(path)), options or anchored())


@cache
def loaded(path: Path) -> LoadResult:
    return load(path)


def by_step(result: LoadResult) -> dict[int, dict[str, Any]]:
    return {row["step"]: row for row in rows(result.table)}


def test_without_the_anchor_option_the_loader_says_how_to_give_one():
    with pytest.raises(InputError) as caught:
        load(MARSHMALLOW, LoadOptions())
    assert str(caught.value) == (
        "tests/data/swe_agent/marshmallow-code__marshmallow-1867.traj: SWE-agent .traj files carry "
        "no timestamps; pass --option swe_agent.start=<ISO time of the first step> to anchor them"
    )


def test_an_anchor_that_is_not_a_time_is_an_option_error():
    with pytest.raises(OptionError, match=r"swe_agent\.start: not an ISO 8601 time: 'monday'"):
        load(MARSHMALLOW, anchored("monday"))


def test_first_step_row_is_exact():
    row = by_step(loaded(MARSHMALLOW))[1]
    assert row == {
        "call_id": "call_cyI71DYnRdoLHWwtZgIaW2wr",
        "run_id": None,
        "episode_id": "marshmallow-code__marshmallow-1867",  # replay_config problem id
        "step": 1,
        "ts_start": ns(START),
        "ts_end": ns(START) + 239_636_835,  # execution_time 0.2396368359986809 s
        "ts_kind": "inferred",
        "tool": "create",
        "command": "create reproduce.py",
        "arguments": '{"filename":"reproduce.py"}',
        "output": "[File: reproduce.py (1 lines total)]\r\n1:",
        "exit_code": None,
        "is_error": None,
        "host": None,
        "host_ip": None,
        "model": "gpt-4o",
        "train_step": None,
        "ts_note": NOTE,
        "source_format": "swe_agent",
        "source_path": "tests/data/swe_agent/marshmallow-code__marshmallow-1867.traj",
        "source_line": 1,
    }


def test_steps_start_where_the_previous_execution_ended():
    table = rows(loaded(MARSHMALLOW).table)
    assert len(table) == 11
    for before, after in pairwise(table):
        assert after["ts_start"] == before["ts_end"]
    assert table[2]["command"] == "python reproduce.py"
    assert (table[2]["tool"], table[2]["call_id"]) == ("bash", "call_5iDdbOYybq7L19vqXmR0DPaU")
    # the eleven execution times, each cut to whole nanoseconds, added up
    assert table[-1]["ts_end"] - ns(START) == 4_339_362_228


def test_steps_without_execution_time_are_kept_in_order_and_say_so():
    result = loaded(NETWORKING)
    table = rows(result.table)
    assert [r["ts_start"] for r in table] == [ns(START) + i for i in range(4)]  # 1 ns apart
    assert {r["ts_end"] for r in table} == {None}
    assert {r["ts_kind"] for r in table} == {"step"}
    assert table[0]["command"] == "tshark -n -r networking.pcap -q -z io,phs"
    assert table[0]["episode_id"] == "networking_1_no_execution_time"  # from the file name
    assert (table[0]["call_id"], table[0]["tool"], table[0]["model"]) == (
        "networking_1_no_execution_time#step-1",
        "bash",
        None,
    )
    assert result.stats.notes == {loader.IN_ORDER: 4}


def test_history_only_file_needs_no_anchor_and_loads_nothing():
    result = load(HISTORY_ONLY, LoadOptions())
    assert result.table.num_rows == 0
    assert result.stats.unit == "messages"
    assert result.stats.skipped == {"history-only .traj: no trajectory steps with durations": 12}
    assert result.stats.balanced


def test_naive_anchor_is_read_in_the_zone_option_and_noted():
    options = anchored("2025-12-02T14:19:00", zones={"swe_agent": ZoneInfo("Asia/Shanghai")})
    row = by_step(load(MARSHMALLOW, options))[1]
    assert row["ts_start"] == ns("2025-12-02T06:19:00Z")
    assert row["ts_note"] == f"{NOTE}; swe_agent.start had no zone: assumed Asia/Shanghai"


def test_malformed_steps_reject_exactly_the_bad_ones():
    result = loaded(MALFORMED)
    got = {r.location.line: r.reason for r in result.rejects}
    assert got == {
        2: "step is not an object but str",
        3: "execution_time out of range: -1.5",
        4: "execution_time is not a number of seconds: 'fast'",
    }
    assert result.stats.skipped == {"step without an action": 1}
    assert (result.stats.read, result.stats.loaded, result.stats.rejected) == (8, 4, 3)
    assert result.stats.balanced


def test_malformed_file_times_skip_the_rejected_steps():
    steps = by_step(loaded(MALFORMED))
    assert sorted(steps) == [1, 6, 7, 8]
    assert (steps[1]["call_id"], steps[1]["tool"]) == ("call_s1", "bash")
    assert steps[1]["episode_id"] == "miner-demo-001"  # replay_config as a JSON string
    assert steps[1]["model"] == "claude-sonnet-4-20250514"
    assert steps[6]["ts_start"] == ns(START) + 750_000_000
    assert steps[6]["ts_end"] == ns(START) + 3_250_000_000  # "2.5" seconds as text
    assert (steps[7]["ts_start"], steps[7]["ts_end"]) == (ns(START) + 3_250_000_000, None)
    assert steps[8]["ts_start"] == ns(START) + 3_250_000_001  # step 7 counted as 1 ns
    assert steps[6]["call_id"] == "miner-demo-001#step-6"  # history has no action message for it
    assert (steps[6]["tool"], steps[8]["tool"]) == ("bash", "submit")


def test_strict_stops_at_the_first_rejected_step():
    with pytest.raises(StrictRejection, match=rf"^{re.escape(display(MALFORMED))}:2: step is not"):
        load(MALFORMED, anchored(strict=True))


def test_gzip_copy_loads_identically(tmp_path):
    copy = tmp_path / "marshmallow.traj.gz"
    copy.write_bytes(gzip.compress(MARSHMALLOW.read_bytes()))
    source = Source(copy, display(MARSHMALLOW))
    assert source.name == "marshmallow.traj"
    assert detect(source).name == "swe_agent"
    result = loader.read(source, anchored())
    assert rows(result.table)[1:] == rows(loaded(MARSHMALLOW).table)[1:]
    assert result.stats == loaded(MARSHMALLOW).stats


def test_not_a_trajectory_is_one_rejected_record(tmp_path):
    path = tmp_path / "x.traj"
    path.write_text(json.dumps({"environment": "main", "info": {}}))
    result = load(path, shown="x.traj")
    assert [(r.location.line, r.reason) for r in result.rejects] == [
        (1, "not a SWE-agent trajectory (no trajectory or history list)")
    ]


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_sniff_is_sure_of_every_sample(path):
    source = Source(path, path.name)
    assert loader.sniff(source.head(), source.name) >= 0.9


@pytest.mark.parametrize(
    ("content", "filename"),
    [
        (
            b'{"trajectory": [{"id": 0, "action": "run", "source": "agent", "extras": {}}]}',
            "t.json",
        ),
        (b'{"history": [{"role": "user", "content": "hi"}]}', "chat.json"),
        (b'{"info": {"mini_version": "2.0"}, "messages": []}', "x.traj.json"),
        (b'[{"action": "ls", "observation": "", "thought": ""}]', "x.traj"),
        (b"\x89PNG\r\n\x1a\n", "x.traj"),
    ],
    ids=["openhands-wrapper", "chat-history", "mini-swe-agent", "array", "binary"],
)
def test_sniff_rejects_near_misses(content, filename):
    assert loader.sniff(content, filename) == 0.0


def test_the_anchor_is_a_declared_option_for_the_cli():
    assert set(loader.OPTIONS) == {"start", "end"}


def test_values_of_the_wrong_type_never_crash_the_loader(tmp_path):
    path = tmp_path / "confused.json"
    for document in _type_confused(json.loads(MALFORMED.read_text())):
        path.write_text(json.dumps(document))
        try:
            result = loader.read(Source(path, "confused.json"), anchored())
        except (InputError, FormatMismatch):
            continue
        assert result.stats.balanced, document
