"""The OTLP loader's shortcuts give exactly what the general code gives: the plain-digits time and
cached address shortcuts, and the column-wise reader (Arrow) against the per-line reader
(``json.loads`` and a dict per span) on generated files mixing good and bad spans and lines."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from correlate.errors import InputError
from correlate.loaders import LoadOptions, LoadResult, blocks, fields, otlp_json
from correlate.sources import Limits, Source
from correlate.timeparse import TimeParseError, parse_epoch

RAW = st.one_of(
    st.integers(0, 2**64).map(str),
    st.integers(10**16, 2**63).map(str),
    st.integers(0, 10**19).map(lambda n: str(n).zfill(19)),
    st.text("0123456789 .+-e\u0663", max_size=21),
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=True),
)


def outcome(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except TimeParseError as exc:
        return ("error", str(exc))
    except ArithmeticError as exc:  # decimal.Overflow from parse_epoch (e.g. "1e1000000"): the same
        return (type(exc).__name__, str(exc))


@given(raw=RAW, unit=st.sampled_from(["auto", "ns", "us", "s"]))
def test_epoch_shortcut_equals_parse_epoch(raw, unit):
    assert outcome(otlp_json._epoch_ns, raw, unit) == outcome(
        parse_epoch, raw, unit=unit, expected="ns"
    )


@pytest.mark.parametrize(
    "value",
    ["10.0.0.1", "10.0.0.01", "2001:DB8::1", " 10.0.0.2 ", "-", "", "nope", None, 5, ["10.0.0.3"]],
)
def test_cached_ips_equal_uncached(value):
    def plain(v):
        values = v if isinstance(v, list) else [v]
        out = []
        for item in values:
            try:
                address = fields.ip(item, "host.ip")
            except fields.RowError:
                continue
            if address:
                out.append(address)
        return out

    for _ in range(2):  # the second time from the cache
        assert otlp_json._ips(value) == plain(value)


# --- the column-wise reader against the per-line reader ------------------------------------------


class Obj(list):
    """A JSON object as (key, value) pairs: keys may repeat, values may be explicit nulls."""


def dumps(value: Any, spaced: bool = False) -> str:
    """JSON text of plain values and ``Obj`` (duplicate keys kept, in order)."""
    colon = ": " if spaced else ":"
    if isinstance(value, Obj):
        return "{" + ",".join(json.dumps(k) + colon + dumps(v, spaced) for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dumps(v, spaced) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


T0 = 1_764_655_883_100_000_000


def S(text: Any) -> Obj:
    """An ``AnyValue`` of a string."""
    return Obj([("stringValue", text)])


def pick(draw, good: list[Any], bad: list[Any], odds: int) -> Any:
    """Mostly one of ``good``, one time in ``odds`` one of ``bad`` (not on 0: hypothesis draws its
    bounds more often than the rest)."""
    if bad and draw(st.integers(0, odds - 1)) == odds // 2:
        return draw(st.sampled_from(bad))
    return draw(st.sampled_from(good))


TEXTS = ["ls", " ls ", "-", "", " ", "\u00a0x\u2003", "\x1cy\x1f", "ünï", "a\nb", "Z", "x" * 2100]
ODD = [
    Obj([("intValue", "7")]),
    Obj([("doubleValue", 2.5)]),
    Obj([("boolValue", True)]),
    Obj([("arrayValue", Obj([("values", [S("10.0.0.9")])]))]),
    Obj([("arrayValue", Obj())]),
    Obj([("kvlistValue", Obj([("values", [Obj([("key", "k"), ("value", Obj())])])]))]),
    Obj([("bytesValue", "CgAACQ==")]),
    Obj([("stringValue", None), ("intValue", "5")]),
    Obj([("stringValue", "a"), ("intValue", "5")]),
    Obj([("stringValue", "a"), ("stringValue", "b")]),
    "bare string",
    5,
]
"""``AnyValue``s of other kinds (a few only the per-line reader can read)."""
UNUSED = [*ODD[:7], S("x"), Obj(), None]
"""Values of keys the loader does not read: any kind is fine column-wise."""
ARGUMENTS = [
    '{"command": "curl -s http://203.0.113.7/x"}',
    '{"command": ["bash", "-lc", "nc 203.0.113.9 4444"]}',
    '{"cmd": "ls", "cmd": "pwd"}',
    ' {"command": "ls"} ',
    "not json",
    '{"commands": ["a", "b"]}',
    "[1, 2]",
    "",
]
INTEGERS = {
    False: [Obj([("intValue", "27")]), Obj([("intValue", "-3")]), Obj([("intValue", "0027")])],
    True: [Obj([("intValue", 27)]), Obj([("intValue", 0)]), Obj([("intValue", -3)])],
}
ODD_INTEGERS = [
    Obj([("intValue", " 7")]),
    Obj([("intValue", "x")]),
    Obj([("intValue", "99999999999999999999")]),
    S(" 12 "),
    S("-"),
    S("twelve"),
    Obj([("doubleValue", 3.0)]),
    Obj([("stringValue", None), ("intValue", "5")]),
]
TIMES = [T0, T0 + 7 * 10**8, T0 + 10**9, T0 + 3 * 10**8, T0 + 10**12]
ODD_TIMES = [
    str(T0 // 10**6),  # milliseconds: a note
    str(T0 - 10**12),  # as an end, before the start: a note
    "0",
    0,
    "",
    " " + str(T0),
    "0" + str(T0)[:17],
    "9" * 19,
    "abc",
    None,
    1.7646558831e18,
    10**19,
]
STATUSES = [None, Obj(), Obj([("message", "x")])]
CODES = {False: [1, 2, 0, 7], True: ["STATUS_CODE_ERROR", "OK", "STATUS_CODE_UNSET", "2", "ERROR"]}
ODD_STATUSES = [Obj([("code", None)]), Obj([("code", 2.0)]), "ERROR", Obj([("code", True)])]
MISSING = object()


@dataclass(frozen=True)
class Style:
    """How a generated file is written: one odd value in ``odds``; times as numbers, status codes
    as strings, ``intValue`` as numbers (each else the other way)."""

    odds: int
    times: bool
    codes: bool
    numbers: bool


@st.composite
def value_of(draw, key: str, style: Style) -> Any:
    odds = style.odds
    if key == "gen_ai.operation.name":
        good = [S("execute_tool")] * 6 + [S("chat"), S(""), S("invoke_agent")]
        return pick(draw, good, ODD, odds)
    if key in ("process.exit.code", "step", "train_step"):
        good = [*INTEGERS[style.numbers], S("12"), Obj()]
        return pick(draw, good, ODD_INTEGERS + ODD + INTEGERS[not style.numbers], odds)
    if key == "gen_ai.tool.call.arguments":
        return pick(draw, [S(a) for a in ARGUMENTS], ODD, odds)
    if key == "error.type":
        return pick(draw, [S("timeout"), S(""), Obj()], ODD, odds)
    if key == "unused.key":
        return draw(st.sampled_from(UNUSED))
    if key == "gen_ai.tool.call.id":
        return pick(draw, [S("call_a"), S("call_b"), S(" call_c "), S(""), Obj()], ODD, odds)
    if key == "gen_ai.conversation.id":
        return pick(draw, [S("ep-1"), S("ep-2"), S(" "), S("ep 3 ")], ODD, odds)
    return pick(draw, [S(t) for t in TEXTS], ODD, odds)


SPAN_KEYS = [
    "gen_ai.conversation.id",
    "gen_ai.tool.name",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "process.exit.code",
    "error.type",
    "host.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "step",
    "train_step",
    "unused.key",
]


@st.composite
def attribute(draw, key: str, style: Style) -> Any:
    item = Obj([("key", key), ("value", draw(value_of(key, style)))])
    return pick(draw, [item] * 9 + [Obj([("key", key)])], [None, 5, Obj([("key", 5)])], style.odds)


@st.composite
def span(draw, style: Style) -> Any:
    odds = style.odds
    start = draw(st.sampled_from(TIMES))
    end = start + draw(st.sampled_from([0, 5 * 10**8, 10**9 + 1]))
    times, ends = ([start], [end]) if style.times else ([str(start)], [str(end)])
    other_times = [str(start)] if style.times else [start]
    codes = [Obj([("code", c)]) for c in CODES[style.codes]]
    other_codes = [Obj([("code", c)]) for c in CODES[not style.codes]]
    fields_ = {
        "traceId": pick(
            draw, ["0AF7651916CD43DD", "0af7651916cd43dd", "bf92a13c", ""], ["ŧ"], odds
        ),
        "spanId": pick(draw, ["A1B2C3D4", "a1b2", ""], ["Ŝ", 7], odds),
        "name": pick(
            draw,
            ["execute_tool bash", "execute_tool", "execute_tool  read ", "chat x", "", MISSING],
            [None],
            odds,
        ),
        "startTimeUnixNano": pick(draw, times, [*ODD_TIMES, *other_times, MISSING], odds),
        "endTimeUnixNano": pick(draw, [MISSING, *ends], ODD_TIMES + other_times, odds),
        "status": pick(draw, [*STATUSES, *codes, MISSING], ODD_STATUSES + other_codes, odds),
    }
    pairs = [(key, value) for key, value in fields_.items() if value is not MISSING]
    keys = ["gen_ai.operation.name"] if draw(st.integers(0, 5)) else []
    keys += ["gen_ai.tool.call.id"] if draw(st.integers(0, 3)) else []
    keys += draw(st.lists(st.sampled_from(SPAN_KEYS), max_size=7))  # repeats: the later wins
    attributes = [draw(attribute(k, style)) for k in draw(st.permutations(keys))]
    pairs.append(("attributes", attributes))
    odd = [("trace_id", "ab"), ("start_time_unix_nano", "1"), ("traceId", "dup"), ("x", 1)]
    pairs.append(pick(draw, [("kind", 1)], odd, odds))  # the last: a key twice
    return pick(draw, [Obj(pairs)], [None, "span", 5], odds)


ADDRESSES = [
    S("10.0.0.1"),
    S(" 10.0.0.2 "),
    S("2001:DB8::1"),
    S("nope"),
    S(""),
    Obj([("arrayValue", Obj([("values", [S("10.0.0.3"), S("10.0.0.1"), None])]))]),
    Obj([("arrayValue", Obj([("values", [Obj([("doubleValue", 1.5)]), S("10.0.0.5")])]))]),
    Obj([("arrayValue", Obj([("values", [])]))]),
    Obj([("arrayValue", Obj())]),
    Obj(),
]
ODD_ADDRESSES = [
    Obj([("arrayValue", Obj([("values", [Obj([("intValue", "10.0.0.4")])])]))]),
    Obj([("stringValue", None), ("arrayValue", Obj([("values", [S("10.0.0.7")])]))]),
    Obj([("bytesValue", "10.0.0.6")]),
    Obj([("intValue", "167772161")]),
]
RESOURCE_VALUES = {
    "host.name": ["sbx-01", " sbx-02 ", "", "-"],
    "container.name": ["box", ""],
    "container.id": ["c0ffee"],
    "service.namespace": ["run-1", " "],
    "service.name": ["agent"],
}


@st.composite
def resource_span(draw, style: Style) -> Any:
    odds = style.odds
    attributes = []
    for key, values in RESOURCE_VALUES.items():
        if draw(st.booleans()):
            value = pick(draw, [S(t) for t in values], ODD, odds)
            attributes.append(Obj([("key", key), ("value", value)]))
    if draw(st.integers(0, 3)):
        address = pick(draw, ADDRESSES, ODD_ADDRESSES, odds)
        attributes.append(Obj([("key", "host.ip"), ("value", address)]))
    spans = draw(st.lists(span(style), min_size=0, max_size=4))
    scopes_key = pick(draw, ["scopeSpans"], ["scope_spans", "instrumentationLibrarySpans"], odds)
    resource = pick(draw, [Obj([("attributes", attributes)])], [None, Obj()], odds)
    scopes = [Obj([("scope", Obj([("name", "x")])), ("spans", spans)])]
    return pick(draw, [Obj([("resource", resource), (scopes_key, scopes)])], [None, 7], odds)


ODD_LINES = [
    b"",
    b"   ",
    b"this is not json {",
    b'{"resource":{"attributes":[]},"scopeSpans":[]}',
    b'{"resourceSpans": null}',
    b'{"resourceSpans": "x"}',
    b"[1, 2]",
    b'{"resourceSpans": []} {"resourceSpans": []}',
    b'{"resource_spans": [{"scope_spans": []}]}',
    b'{"resourceSpans": [], "resourceSpans": [{}]}',
    b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "execute_tool", "x": NaN}]}]}]}',
]


@st.composite
def line(draw, style: Style) -> bytes:
    resource_spans = draw(st.lists(resource_span(style), min_size=1, max_size=3))
    document = Obj([("resourceSpans", resource_spans)])
    text = dumps(document, spaced=draw(st.integers(0, 5)) == 0).encode()
    if draw(st.integers(0, 19)) == 0:  # invalid UTF-8 inside a string
        text = text.replace(b'"x"', b'"\xff\xfe"', 1).replace(b"ls", b"l\xc3", 1)
    return pick(draw, [text], ODD_LINES, 15)


@st.composite
def otlp_file(draw) -> bytes:
    """OTLP/JSON lines; per file, odd values are absent, rare or frequent, and times, status codes
    and ``intValue`` are written as strings or as numbers."""
    style = Style(
        odds=draw(st.sampled_from([10**9, 400, 80, 15])),
        times=draw(st.booleans()),
        codes=draw(st.booleans()),
        numbers=draw(st.booleans()),
    )
    lines = draw(st.lists(line(style), min_size=0, max_size=12))
    eol = draw(st.sampled_from([b"\n", b"\r\n"]))
    body = eol.join(lines)
    if draw(st.booleans()) and body:
        body += eol
    if draw(st.integers(0, 9)) == 0:
        body = b"\xef\xbb\xbf" + body
    return body


def load(path: Path, *, fast: bool, cap: int = 1 << 24, **options) -> LoadResult | str:
    source = Source(path, path.name, limits=Limits(max_line_bytes=cap))
    reader = otlp_json.read if fast else otlp_json.read_per_line
    try:
        return reader(source, LoadOptions(**options))
    except InputError as exc:
        return f"InputError: {exc}"


def same(a: LoadResult | str, b: LoadResult | str) -> None:
    if isinstance(a, str) or isinstance(b, str):
        assert a == b
        return
    assert a.table.schema == b.table.schema
    assert a.table.to_pylist() == b.table.to_pylist()
    assert a.table.equals(b.table)
    assert a.stats == b.stats
    for counts in ("skipped", "notes"):  # in the same order too (reports list them so)
        assert list(getattr(a.stats, counts).items()) == list(getattr(b.stats, counts).items())
    assert [(r.location.line, r.reason, r.raw) for r in a.rejects] == [
        (r.location.line, r.reason, r.raw) for r in b.rejects
    ]
    assert a.hosts is not None and b.hosts is not None
    assert a.hosts.to_pylist() == b.hosts.to_pylist()


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=otlp_file(),
    compressed=st.booleans(),
    chunk=st.none() | st.integers(64, 4096),
)
def test_column_wise_equals_per_line(tmp_path_factory, monkeypatch, body, compressed, chunk):
    """Generated files of good and bad spans and lines: identical tables, hosts, stats, rejects."""
    if chunk is not None:
        monkeypatch.setattr(blocks, "CHUNK_BYTES", chunk)
    path = tmp_path_factory.mktemp("otlp") / ("traces.jsonl.gz" if compressed else "traces.jsonl")
    path.write_bytes(gzip.compress(body) if compressed else body)
    same(load(path, fast=True), load(path, fast=False))


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=otlp_file(),
    cap=st.integers(200, 3000),
    chunk=st.integers(256, 8192),
)
def test_long_lines_stop_at_the_same_line(tmp_path_factory, monkeypatch, body, cap, chunk):
    """Lines near --max-line-bytes: the same stop (or the same result) either way."""
    monkeypatch.setattr(blocks, "CHUNK_BYTES", chunk)
    path = tmp_path_factory.mktemp("otlp") / "traces.jsonl"
    path.write_bytes(body)
    same(load(path, fast=True, cap=cap), load(path, fast=False, cap=cap))


@pytest.mark.parametrize(
    "options", [{}, {"epoch_unit": "ms"}, {"strict": True}], ids=["auto", "ms", "strict"]
)
def test_column_wise_equals_per_line_on_the_fixtures(options):
    data = Path(__file__).resolve().parent / "data"
    samples = Path(__file__).resolve().parent.parent / "sample_logs" / "rome_incident"
    for path in [
        data / "otlp_malformed.jsonl",
        data / "otlp_official_example.jsonl",
        data / "otlp_official_example_pretty.json",
        samples / "traces" / "traces.jsonl",
    ]:
        outcomes = []
        for fast in (True, False):
            try:
                outcomes.append(load(path, fast=fast, **options))
            except Exception as exc:  # --strict stops at the first reject either way
                outcomes.append(f"{type(exc).__name__}: {exc}")
        same(*outcomes)


# --- one bad line costs only itself ---------------------------------------------------------------


def good_line(i: int, *, code: Any = 1, exit_code: Any = "0", start: Any = None) -> str:
    """One request of one sandbox with three tool spans and a chat span."""
    spans = []
    for j in range(3):
        n = i * 10 + j
        spans.append(
            Obj(
                [
                    ("traceId", f"{n:032X}"),
                    ("spanId", f"{n:016x}"),
                    ("name", "execute_tool bash"),
                    ("startTimeUnixNano", start if start is not None else str(T0 + n * 10**9)),
                    ("endTimeUnixNano", str(T0 + n * 10**9 + 5 * 10**8)),
                    (
                        "attributes",
                        [
                            Obj(
                                [
                                    ("key", "gen_ai.operation.name"),
                                    ("value", {"stringValue": "execute_tool"}),
                                ]
                            ),
                            Obj(
                                [
                                    ("key", "gen_ai.tool.call.id"),
                                    ("value", {"stringValue": f"call_{n}"}),
                                ]
                            ),
                            Obj(
                                [
                                    ("key", "gen_ai.tool.call.arguments"),
                                    (
                                        "value",
                                        {
                                            "stringValue": json.dumps(
                                                {"command": f"curl http://203.0.113.{n % 250}/"}
                                            )
                                        },
                                    ),
                                ]
                            ),
                            Obj(
                                [
                                    ("key", "gen_ai.tool.call.result"),
                                    ("value", {"stringValue": "ok\n"}),
                                ]
                            ),
                            Obj([("key", "process.exit.code"), ("value", {"intValue": exit_code})]),
                            Obj(
                                [
                                    ("key", "gen_ai.conversation.id"),
                                    ("value", {"stringValue": f"ep-{i % 7}"}),
                                ]
                            ),
                        ],
                    ),
                    ("status", Obj([("code", code)])),
                ]
            )
        )
    spans.append(
        Obj(
            [
                ("traceId", f"{i:032x}"),
                ("name", "chat"),
                (
                    "attributes",
                    [Obj([("key", "gen_ai.operation.name"), ("value", {"stringValue": "chat"})])],
                ),
            ]
        )
    )
    resource = Obj(
        [
            (
                "attributes",
                [
                    Obj([("key", "host.name"), ("value", {"stringValue": f"sbx-{i % 5}"})]),
                    Obj([("key", "host.ip"), ("value", {"stringValue": f"10.0.0.{i % 5 + 1}"})]),
                    Obj([("key", "service.namespace"), ("value", {"stringValue": "run-1"})]),
                ],
            )
        ]
    )
    request = Obj(
        [
            (
                "resourceSpans",
                [Obj([("resource", resource), ("scopeSpans", [Obj([("spans", spans)])])])],
            )
        ]
    )
    return dumps(request)


BAD_LINES = {
    "a float status code": lambda i: good_line(i, code=2.0),
    "a key twice": lambda i: good_line(i).replace('"name":', '"spanId":"x","name":', 1),
    "invalid UTF-8": lambda i: good_line(i).replace("ok\\n", "ok\udcff", 1),
    "two documents": lambda i: good_line(i) + " " + good_line(i + 1),
    "not JSON": lambda i: good_line(i)[:-1] + ",}",
    "a millisecond time": lambda i: good_line(i, start=str(T0 // 10**6)),
}


def write_lines(path: Path, lines: list[str]) -> None:
    path.write_bytes(b"\n".join(x.encode("utf-8", "surrogateescape") for x in lines) + b"\n")


@pytest.mark.parametrize("bad", sorted(BAD_LINES))
def test_a_bad_line_in_a_run_costs_only_itself(tmp_path, monkeypatch, bad):
    """Good lines around bad ones all come out column-wise; only the bad lines go line by line."""
    lines = [BAD_LINES[bad](i) if i % 97 == 13 else good_line(i) for i in range(1000)]
    path = tmp_path / "traces.jsonl"
    write_lines(path, lines)
    bad_numbers = [i + 1 for i in range(1000) if i % 97 == 13]
    per_line: list[int] = []
    real = otlp_json._Reader.line

    def spy(self, number, raw):
        per_line.append(number)
        return real(self, number, raw)

    monkeypatch.setattr(otlp_json._Reader, "line", spy)
    fast = load(path, fast=True)
    assert per_line == bad_numbers
    slow = load(path, fast=False)
    same(fast, slow)
    assert not isinstance(fast, str)
    good_calls = {f"call_{i * 10 + j}" for i in range(1000) if i % 97 != 13 for j in range(3)}
    assert good_calls <= set(fast.table.column("call_id").to_pylist())


def test_numbers_for_int_values_times_and_string_codes_stay_column_wise(tmp_path, monkeypatch):
    """Writers that spell intValue, times or the status code the other JSON way: the schema
    follows them (no per-line reading), and the rows are the per-line reader's."""
    lines = [good_line(i) for i in range(50)]
    lines += [good_line(i, exit_code=3, code="STATUS_CODE_ERROR") for i in range(50, 100)]
    lines += [good_line(i, start=T0 + i * 10**10) for i in range(100, 150)]
    path = tmp_path / "traces.jsonl"
    write_lines(path, lines)
    per_line: list[int] = []
    real = otlp_json._Reader.line
    monkeypatch.setattr(
        otlp_json._Reader, "line", lambda self, n, raw: (per_line.append(n), real(self, n, raw))
    )
    monkeypatch.setattr(blocks, "CHUNK_BYTES", 64 << 10)
    fast = load(path, fast=True)
    assert per_line == []
    same(fast, load(path, fast=False))
    assert not isinstance(fast, str)
    assert fast.table.num_rows == 450


def test_the_python_whitespace_table_is_what_str_strip_strips():
    assert "".join(chr(c) for c in range(0x110000) if chr(c).isspace()) == otlp_json._PY_SPACE
