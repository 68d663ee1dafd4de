"""The Inspect AI loader's fast span claiming (``_Claims``: bisection per (name, parent)) picks the
same tool span as the reference scan (``_claim_span``) for every tool event, whatever the span
layout (property tests), so whole logs load identically either way."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from correlate.errors import InputError
from correlate.loaders import LoadOptions, LoadResult
from correlate.loaders import inspect_ai as loader
from correlate.sources import Source

NAMES = st.sampled_from(["bash", "python", "web_browser_go", 1, 1.0, True, None, ["x"]])
SPAN_IDS = st.sampled_from(["s1", "s2", "s3", "s4", "s5", "s6", "root", 7, None])
PARENTS = st.sampled_from(["root", "s1", "s2", "s3", None, 7, ["p"]])
TIMES = st.sampled_from(
    [
        "2025-05-12T20:27:39.762878-04:00",
        "2025-05-12T20:27:44Z",
        "2025-05-12T20:27:40",
        "yesterday",
        None,
        5,
    ]
)


@st.composite
def event(draw: Any) -> Any:
    kind = draw(st.sampled_from(["span_begin", "tool", "sandbox", "model", "span_end", "other"]))
    stamp = {"timestamp": draw(TIMES), "completed": draw(TIMES)}
    if kind == "span_begin":
        return {
            "event": "span_begin",
            "id": draw(SPAN_IDS),
            "type": draw(st.sampled_from(["tool", "solver", None])),
            "name": draw(NAMES),
            "parent_id": draw(PARENTS),
            "span_id": draw(SPAN_IDS),
        }
    if kind == "tool":
        found: dict[str, Any] = {
            "event": "tool",
            "id": draw(st.sampled_from(["call_1", "call_2", None])),
            "function": draw(NAMES),
            "span_id": draw(PARENTS),
            "arguments": draw(st.sampled_from([{"cmd": "ls"}, {"code": "print(1)"}, None, ["x"]])),
            "result": draw(st.sampled_from(["out", "", None, [{"type": "text", "text": "t"}]])),
            **stamp,
        }
        if draw(st.booleans()):
            found["events"] = [
                {"event": "sandbox", "action": "exec", "result": draw(st.sampled_from([0, 1, "x"]))}
            ]
        return found
    if kind == "sandbox":
        return {
            "event": "sandbox",
            "action": draw(st.sampled_from(["exec", "read_file"])),
            "cmd": "id",
            "result": draw(st.sampled_from([0, 2, None, "timeout"])),
            "span_id": draw(SPAN_IDS),
            "uuid": "u1",
            **stamp,
        }
    if kind == "model":
        return {"event": "model", "model": "m"}
    if kind == "other":
        return draw(st.sampled_from([{"event": "score"}, "not an object", {}]))
    return {"event": "span_end", "id": draw(SPAN_IDS)}


EVENTS = st.lists(event(), min_size=0, max_size=40)


@settings(max_examples=400, deadline=None)
@given(events=EVENTS)
def test_claims_equal_the_reference_scan(events):
    tool_spans, _ = loader._tool_spans(events)
    fast = loader._Claims(tool_spans)
    claimed: set[str] = set()
    for index, item in enumerate(events):
        if isinstance(item, dict) and item.get("event") == "tool":
            expected = loader._claim_span(events, index, item, tool_spans, claimed)
            assert fast(index, item) == expected


def log(samples: list[list[Any]]) -> dict[str, Any]:
    return {
        "version": 2,
        "status": "success",
        "eval": {"eval_id": "E1", "task": "t", "task_id": "t1", "model": "m", "run_id": "R"},
        "samples": [
            {"id": f"s{i}", "epoch": 1, "events": events, "attachments": {}}
            for i, events in enumerate(samples)
        ],
    }


def load(path: Path, *, fast: bool) -> LoadResult | str:
    try:
        return loader.read(Source(path, path.name), LoadOptions(), fast=fast)
    except InputError as exc:
        return str(exc)


def same(a: LoadResult | str, b: LoadResult | str) -> None:
    if isinstance(a, str) or isinstance(b, str):
        assert a == b
        return
    assert a.table.equals(b.table)
    assert a.stats == b.stats
    assert [(r.location.line, r.reason, r.raw) for r in a.rejects] == [
        (r.location.line, r.reason, r.raw) for r in b.rejects
    ]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(samples=st.lists(EVENTS, min_size=1, max_size=4), archive=st.booleans())
def test_logs_load_the_same_either_way(tmp_path_factory, samples, archive):
    folder = tmp_path_factory.mktemp("inspect")
    document = log(samples)
    if archive:
        path = folder / "run.eval"
        with zipfile.ZipFile(path, "w") as zf:
            header = {k: v for k, v in document.items() if k != "samples"}
            zf.writestr("header.json", json.dumps(header))
            for sample in document["samples"]:
                zf.writestr(f"samples/{sample['id']}_epoch_1.json", json.dumps(sample))
    else:
        path = folder / "run.json"
        path.write_text(json.dumps(document))
    same(load(path, fast=True), load(path, fast=False))


def test_a_long_sample_claims_the_same_spans(tmp_path):
    """1000 calls in one sample, spans interleaved with their tool events both ways."""
    events: list[Any] = []
    for i in range(1000):
        span = {
            "event": "span_begin",
            "id": f"t{i}",
            "type": "tool",
            "name": "bash",
            "parent_id": "root",
        }
        call = {
            "event": "tool",
            "id": f"c{i}",
            "function": "bash",
            "span_id": "root",
            "arguments": {"cmd": f"echo {i}"},
            "timestamp": "2025-05-12T20:27:39Z",
            "completed": "2025-05-12T20:27:40Z",
        }
        execution = {
            "event": "sandbox",
            "action": "exec",
            "span_id": f"t{i}",
            "result": i % 3,
            "timestamp": "2025-05-12T20:27:39Z",
        }
        events += [span, call, execution] if i % 2 else [call, span, execution]
    path = tmp_path / "long.json"
    path.write_text(json.dumps(log([events])))
    fast, slow = load(path, fast=True), load(path, fast=False)
    same(fast, slow)
    assert isinstance(fast, LoadResult)
    assert fast.table.column("exit_code").to_pylist()[:6] == [0, 1, 2, 0, 1, 2]
