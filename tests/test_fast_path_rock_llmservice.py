"""The ROCK ModelService loader's column-wise path gives exactly the per-line reader's rows,
rejects and stats, whatever the lines (property tests): ``LLMService.log`` requests and responses
parsed by pyarrow, ``LLMTraj.jsonl`` records likewise, and whatever they refuse read line by line."""

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
from correlate.loaders import rock_llmservice as loader
from correlate.sources import Limits, Source

T0 = 1_764_655_800_000


def request(
    ts: Any = T0,
    index: Any = 1,
    *,
    messages: Any = None,
    meta: dict[str, Any] | None = None,
    raw_meta: str | None = None,
    **body: Any,
) -> str:
    document = {"model": "rome", "messages": messages if messages is not None else [], **body}
    stamp = (
        raw_meta
        if raw_meta is not None
        else json.dumps({"timestamp": ts, "index": index, **(meta or {})})
    )
    return f"LLM_REQUEST_START{json.dumps(document)}LLM_REQUEST_END{stamp}"


def tool(call_id: Any, content: Any = "out") -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def call(call_id: Any = "c1", name: Any = "run_shell_command", arguments: Any = None) -> Any:
    if arguments is None:
        arguments = json.dumps({"command": f"echo {call_id}"})
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def response(
    ts: Any = T0 + 1000,
    index: Any = 1,
    calls: Any = None,
    *,
    shape: str = "choices",
    meta: dict[str, Any] | None = None,
    **body: Any,
) -> str:
    message: dict[str, Any] = {"role": "assistant", "content": ""}
    if calls is not None:
        message["tool_calls"] = calls
    if shape == "choices":
        document: dict[str, Any] = {
            "model": "",
            "choices": [{"index": 0, "message": message}],
            **body,
        }
    elif shape == "message":
        document = {"model": "m2", "message": message, **body}
    else:
        document = {"model": " ", **message, **body}
    stamp = json.dumps({"timestamp": ts, "index": index, **(meta or {})})
    return f"LLM_RESPONSE_START{json.dumps(document)}LLM_RESPONSE_END{stamp}"


HISTORY = [
    {"role": "system", "content": "You are iFlow CLI."},
    {"role": "assistant", "content": None, "tool_calls": [call("c1")]},
    tool("c1", "first\n"),
    tool(" c2 ", "x" * 2100),
    tool("c2", "second copy"),
    tool("c3", "  -  "),
    tool("c4", None),
    None,
]

SERVICE = [
    request(messages=HISTORY),
    request(T0 + 5000, 2, messages=HISTORY[:3]),
    request(T0 + 9000, 7, messages=[tool("c1", "late")], metadata={"sandbox_id": " sbx-body "}),
    request(T0 + 9000, 3, meta={"sandbox_id": "sbx-meta"}),
    request(T0 + 9500, None, meta={"metadata": {"sandbox_id": "sbx-md"}}, sandbox_id="sbx-b"),
    request(T0 - 99_000, 4),  # earlier than the response: end unknown
    request(1_764_655_900, 5),  # epoch seconds: the request's note is dropped
    request("1764655900000", 5),  # a time as text: line by line
    request(1.5e12, 5),  # a float time
    request(None, 5),  # no timestamp: a reject
    request(True, 5),
    request(T0, "6"),  # index as text
    request(T0, 2.0),
    request(messages=[tool("c1", [{"type": "text", "text": "parts"}])]),  # content as parts
    request(messages=[tool(7, "numeric id")]),
    request(messages=[tool("c1", "ok"), "not a message"]),
    request(messages="none"),
    request(raw_meta=' {"timestamp": 1764655800000, "index": 2}'),
    request(raw_meta='{"timestamp": 1764655800000, "index": 2, "b": 1}'),
    request(raw_meta="{}"),
    request(raw_meta="[1]"),
    request(raw_meta='{"timestamp": 1764655800000'),
    "LLM_REQUEST_START{not json}LLM_REQUEST_END" + json.dumps({"timestamp": T0 + 100, "index": 2}),
    "LLM_REQUEST_START[1, 2]LLM_REQUEST_END" + json.dumps({"timestamp": T0 + 100, "index": 2}),
    "LLM_REQUEST_START" + json.dumps({"model": "m", "model": "n"}) + "LLM_REQUEST_END{}",  # noqa: F601
    request(messages=[tool("c1", 'LLM_REQUEST_END{"timestamp": 1}')]),
    request(extra="X").replace('"X"', "[" * 1200 + "]" * 1200),  # deeper than Python's json reads
    request(extra="X").replace('"X"', "[" * 600 + "]" * 600),  # deep, but Python reads it
    request(messages=[tool("c1", "big")]).replace('"big"}', '"big", "n": ' + "7" * 4301 + "}"),
    request(raw_meta='{"timestamp": 1764655800000, "index": ' + "9" * 4400 + "}"),
    request(messages=[tool("c1", "x")]).replace('"x"', '"\\ud800 lone"'),
    response(calls=[call("c1")]).replace('"c1"', '"c\\udc00"', 1),
    response(
        calls=[call("c8", arguments='{"command": "x", "deep": ' + "[" * 1200 + "]" * 1200 + "}")]
    ),
    response(calls=[call("c8", arguments='{"cmd": "y", "n": ' + "5" * 4400 + "}")]),
    response(calls=[call("c1")]),
    response(calls=[call("c1"), call(" c2 ", arguments='{"cmd": ["ls", "-la"]}')], index=2),
    response(calls=[call("c3", arguments='{"commands": ["cd /x", "make"]}')], index=3),
    response(calls=[call("c4", arguments='{"commands": ["a", null]}')]),
    response(calls=[call("c4", arguments='{"command": "view", "path": "/a"}')]),
    response(calls=[call("c4", arguments='{"command": "view"}')]),
    response(calls=[call("c4", "str_replace_editor", '{"command": "ls"}')]),
    response(calls=[call("c4", arguments='{"command": "   ", "script": "run.sh"}')]),
    response(calls=[call("c4", arguments='{"command": ["ls", "-la"]}')]),
    response(calls=[call("c4", arguments='{"command": "a", "command": "b"}')]),
    response(calls=[call("c4", arguments="{not json}")]),
    response(calls=[call("c4", arguments=' {"command": "x"}')]),
    response(calls=[call("c4", arguments="")]),
    response(calls=[call("c4", arguments={"command": "dict"})]),
    response(calls=[call("c5", name="  ")]),
    response(calls=[call("c5", name=None)]),
    response(calls=[call("c5"), "not an object"]),
    response(calls=[call(9)]),
    response(calls=[call("  ")]),
    response(calls=[{"id": "c6"}]),
    response(calls=[]),
    response(),  # no tool calls
    response(calls=[call("c1")], shape="message"),
    response(calls=[call("c2")], shape="self"),
    response(calls=[call("c1")], meta={"sandbox_id": "sbx-resp"}),
    response(1_764_655_901, 2, [call("c1")]),  # seconds: a note on the row
    response(None, 2, [call("c1")]),
    response("soon", 2, [call("c1")]),
    response(calls="not a list"),
    "LLM_RESPONSE_START"
    + json.dumps({"choices": [None, {"message": None}]})
    + "LLM_RESPONSE_END{}",
    'LLM_RESPONSE_START{"choices": []}',
    "SESSION_END",
    "SESSION_END ",
    "SESSION_ENDX",
    "LLM_SOMETHING_ELSE}",
    "",
    "   ",
    "\ufeff" + request(),
]
SERVICE_RAW = [
    *(line.encode() for line in SERVICE),
    request(messages=[tool("c1", "caf\u00e9 \U0001f600")]).encode(),
    request().encode() + b"\r",
    response(calls=[call("c1")]).encode() + b"\r",
    b"SESSION_END\r",
    request(messages=[tool("c1", "x")]).encode().replace(b'"x"', b'"\xff"'),
    response(calls=[call("c1")]).encode().replace(b"echo", b"\xc3\x28"),
]


def record(
    start: Any = 1_764_656_380.104,
    end: Any = 1_764_656_383.5,
    calls: Any = None,
    *,
    messages: Any = None,
    keys: tuple[str, str] = ("start_time", "end_time"),
    **extra: Any,
) -> str:
    document: dict[str, Any] = {"model": "rome", "status": "success"}
    if start is not ...:
        document[keys[0]] = start
    if end is not ...:
        document[keys[1]] = end
    document["request"] = {"model": "rome", "messages": messages if messages is not None else []}
    message = {"role": "assistant", "content": "", "tool_calls": calls or []}
    document["response"] = {"model": "", "choices": [{"message": message}]}
    document.update(extra)
    return json.dumps({k: v for k, v in document.items() if v is not ...})


TRAJ = [
    record(calls=[call("c1")]),
    record(1_764_656_390, 1_764_656_391, [call("c2"), call("c3")], messages=HISTORY),
    record(messages=[tool("c1", "done")], calls=[]),
    record(1_764_656_390_000, 1_764_656_391_000, [call("c1")]),  # ms: magnitude
    record(2**60, 2**60 + 5, [call("c1")]),  # integers beyond a double's digits
    record("1764656390", 1_764_656_391, [call("c1")]),  # a time as text
    record("soon", 1_764_656_391, [call("c1")]),
    record(..., ..., [call("c1")]),  # the older shape: rejected
    record(..., ..., []),
    record(1_764_656_392.5, 1_764_656_393.25, [call("c1")], keys=("startTime", "endTime")),
    record(None, 1_764_656_395, [call("c4")], startTime=1_764_656_394),
    record(calls=[call("c1")], response=None),
    record(calls=[call("c1")], response=None, status=None),
    record(calls=[call("c1")], request=None, messages=[tool("c1", "top")]),
    record(calls=[call("c1")], request={"messages": None}, messages=[tool("c1", "top")]),
    record(calls=[call("c1")], request={"model": " "}, model="m3"),
    record(
        calls=[call("c1")], sandbox_id="sbx-rec", request={"metadata": {"sandbox_id": "sbx-req"}}
    ),
    record(calls=[call("c1"), 5]),
    record(calls=[call("c1", arguments={"cmd": "x"})]),
    record(calls="nope"),
    record(messages=[tool("c1", ["parts"])], calls=[call("c1")]),
    record(float("nan"), 1_764_656_391, [call("c1")]),
    record(calls=[call("c1")], deep="X").replace('"X"', "[" * 1200 + "]" * 1200),
    record(calls=[call("c\\ud800")]),
    record(calls=[call("c1")]).replace('"status"', '"n": ' + "3" * 4400 + ', "status"'),
    '{"request": {"model": "m"}, "response": {"choices": []}}',
    '{"broken": ',
    "[1, 2]",
    "",
    '{"a": 1}{"b": 2}',
]
TRAJ_RAW = [*(line.encode() for line in TRAJ), record().encode().replace(b"rome", b"r\xffme")]


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
    assert a.table.equals(b.table), (a.table.to_pylist()[:3], b.table.to_pylist()[:3])
    assert a.stats == b.stats
    assert [(r.location.line, r.reason, r.raw) for r in a.rejects] == [
        (r.location.line, r.reason, r.raw) for r in b.rejects
    ]
    assert a.hosts is None and b.hosts is None


def write(path: Path, lines: list[bytes], trailing_newline: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = b"\n".join(lines)
    path.write_bytes(body + (b"\n" if trailing_newline and body else b""))
    return path


SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(
    lines=st.lists(st.sampled_from(SERVICE_RAW), min_size=1, max_size=50),
    trailing_newline=st.booleans(),
    piece=st.integers(1, 20),
    unit=st.sampled_from(["auto", "ms", "s"]),
)
def test_service_log_column_wise_equals_line_by_line(
    tmp_path_factory, monkeypatch, lines, trailing_newline, piece, unit
):
    monkeypatch.setattr(blocks, "SMALLEST_PIECE", piece)
    folder = tmp_path_factory.mktemp("rock") / "sandbox-1a2b3c4d"
    path = write(folder / "LLMService.log", [SERVICE_RAW[0], *lines], trailing_newline)
    same(load(path, fast=True, epoch_unit=unit), load(path, fast=False, epoch_unit=unit))


@SETTINGS
@given(
    lines=st.lists(st.sampled_from(TRAJ_RAW), min_size=1, max_size=40),
    trailing_newline=st.booleans(),
    piece=st.integers(1, 20),
    unit=st.sampled_from(["auto", "s", "ns"]),
)
def test_traj_jsonl_column_wise_equals_line_by_line(
    tmp_path_factory, monkeypatch, lines, trailing_newline, piece, unit
):
    monkeypatch.setattr(blocks, "SMALLEST_PIECE", piece)
    path = write(
        tmp_path_factory.mktemp("rock") / "LLMTraj.jsonl", [TRAJ_RAW[0], *lines], trailing_newline
    )
    same(load(path, fast=True, epoch_unit=unit), load(path, fast=False, epoch_unit=unit))


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(st.sampled_from(SERVICE_RAW[:30]), min_size=1, max_size=30),
    chunk=st.integers(1, 3000),
    long_at=st.none() | st.integers(0, 29),
)
def test_chunk_boundaries_and_long_lines(tmp_path_factory, monkeypatch, lines, chunk, long_at):
    """Lines split across read chunks, and the --max-line-bytes stop at the same line."""
    if long_at is not None and long_at < len(lines):
        long = request(messages=[tool("c1", "y" * 5000)]).encode()
        lines = [*lines[:long_at], long, *lines[long_at:]]
    path = write(tmp_path_factory.mktemp("rock") / "LLMService.log", [SERVICE_RAW[0], *lines])
    monkeypatch.setattr(blocks, "CHUNK_BYTES", chunk)
    same(load(path, fast=True, cap=4096), load(path, fast=False, cap=4096))


def session(turns: int, first_call: int = 0) -> list[bytes]:
    """A realistic session: each request carries the conversation so far."""
    lines: list[bytes] = []
    history: list[Any] = [{"role": "system", "content": "You are iFlow CLI."}]
    for turn in range(turns):
        ts = T0 + 10_000 * turn
        lines.append(request(ts, turn + 1, messages=history).encode())
        made = call(f"call_{first_call + turn}")
        lines.append(response(ts + 2_000, turn + 1, [made]).encode())
        history = [
            *history,
            {"role": "assistant", "tool_calls": [made]},
            tool(made["id"], f"out {turn}"),
        ]
    return [*lines, b"SESSION_END"]


@pytest.mark.parametrize("name", ["LLMService.log.gz", "LLMService.log"])
def test_big_sessions_with_bad_lines_among_good(tmp_path, name):
    """Many sessions across several read chunks, gzip too; a few bad lines lose no good row."""
    lines = [line for s in range(40) for line in session(30, s * 100)]
    lines[776] = b"LLM_REQUEST_START{broken"  # a request: its window stays open
    lines[1234] = request(messages=[tool("c1", ["parts"])]).encode()
    path = tmp_path / "sandbox-9" / name
    path.parent.mkdir()
    body = b"\n".join(lines) + b"\n"
    path.write_bytes(gzip.compress(body) if name.endswith(".gz") else body)
    fast, slow = load(path, fast=True), load(path, fast=False)
    same(fast, slow)
    assert isinstance(fast, LoadResult)
    assert fast.stats.loaded == 1200 and fast.stats.rejected == 1
    assert fast.table.column("output").null_count < 60


def test_strict_stops_at_the_same_first_reject(tmp_path):
    lines = [*session(20), response(calls=[call("c1"), "bad"]).encode(), *session(20)]
    path = write(tmp_path / "LLMService.log", lines)
    messages = []
    for fast in (True, False):
        with pytest.raises(StrictRejection) as caught:
            loader.read(Source(path, path.name), LoadOptions(strict=True), fast=fast)
        messages.append(str(caught.value))
    assert messages[0] == messages[1] and "LLMService.log:42:" in messages[0]


def test_the_early_stop_sees_rows_loaded_before_the_rejects(tmp_path):
    """One loaded call, then 150 rejects: not a format mismatch, in either path."""
    lines = [*session(1)[:2], request(T0 + 5000, 2).encode(), *[b"LLM_OTHER}"] * 150]
    path = write(tmp_path / "LLMService.log", lines)
    fast, slow = load(path, fast=True), load(path, fast=False)
    same(fast, slow)
    assert isinstance(fast, LoadResult) and fast.stats.rejected == 150


def test_clean_files_are_read_column_wise(tmp_path, monkeypatch):
    """Only SESSION_END markers go line by line in a clean LLMService.log, nothing in LLMTraj."""
    counted = {"service": 0, "traj": 0}
    service_line, traj_line = loader._Reader.service_line, loader._Reader.traj_line

    def count_service(self: Any, line: int, raw: bytes) -> None:
        counted["service"] += 1
        service_line(self, line, raw)

    def count_traj(self: Any, line: int, raw: bytes) -> None:
        counted["traj"] += 1
        traj_line(self, line, raw)

    monkeypatch.setattr(loader._Reader, "service_line", count_service)
    monkeypatch.setattr(loader._Reader, "traj_line", count_traj)
    path = write(
        tmp_path / "LLMService.log", [line for s in range(5) for line in session(10, s * 10)]
    )
    result = load(path, fast=True)
    assert isinstance(result, LoadResult) and result.stats.loaded == 50
    assert counted["service"] == 5
    records = [
        record(1_764_656_000 + 10 * i, 1_764_656_002 + 10 * i, [call(f"c{i}")]) for i in range(50)
    ]
    path = write(tmp_path / "LLMTraj.jsonl", [line.encode() for line in records])
    result = load(path, fast=True)
    assert isinstance(result, LoadResult) and result.stats.loaded == 50
    assert counted["traj"] == 0


def test_every_variant_in_one_file(tmp_path, monkeypatch):
    monkeypatch.setattr(blocks, "SMALLEST_PIECE", 1)  # each refused line alone
    folder = tmp_path / "sandbox-1a2b3c4d"
    folder.mkdir()
    path = write(folder / "LLMService.log", [SERVICE_RAW[0], *SERVICE_RAW] * 2)
    same(load(path, fast=True), load(path, fast=False))
    path = write(tmp_path / "LLMTraj.jsonl", [TRAJ_RAW[0], *TRAJ_RAW] * 2)
    same(load(path, fast=True), load(path, fast=False))
