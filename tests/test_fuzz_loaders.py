"""Every loader against mutated records: never a traceback, and every row accounted for.

The agent under investigation wrote much of what these loaders read. Starting from each loader's
own samples (tests/data/<format>/), hypothesis truncates lines, injects NUL and invalid UTF-8,
swaps numbers for huge values, NaN and negative ports, duplicates JSON keys, nests JSON deeply and
blows lines up; the loader must load, reject or skip each record and raise nothing but a
CorrelateError (one clear sentence) for whole-file problems.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from correlate.errors import CorrelateError
from correlate.loaders import REGISTRY, LoadOptions
from correlate.schema import ENRICHMENT, HOSTS, NETWORK_EVENTS, TOOL_CALLS
from correlate.sources import Source

DATA = Path(__file__).resolve().parent / "data"
SCHEMAS = {"network": NETWORK_EVENTS, "agent": TOOL_CALLS, "hosts": HOSTS, "enrichment": ENRICHMENT}
BINARY = (b"\x00", b"PAR1", b"PK\x03\x04")


def samples(name: str) -> list[Path]:
    folder = DATA / name
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.rglob("*")):
        if (
            not path.is_file()
            or path.name == "README.md"
            or "LICENSES" in path.parts
            or ".expected." in path.name
        ):
            continue
        head = path.read_bytes()[:4096]
        if head.startswith(BINARY) or b"\x00" in head or path.stat().st_size > 256 * 1024:
            continue
        found.append(path)
    return found[:3]


# The first loaders keep their fixtures at the top of tests/data/.
TOP_LEVEL = {
    "alibaba_cfw": ["cfw_malformed.jsonl", "cfw_ragged.csv"],
    "otlp_json": ["otlp_malformed.jsonl", "otlp_official_example.jsonl"],
    "inventory": ["inventory_bad.csv"],
}
CASES = [(name, path) for name in sorted(REGISTRY) for path in samples(name)] + [
    (name, DATA / file) for name, files in TOP_LEVEL.items() for file in files
]

_NUMBER = re.compile(rb"\d+(?:\.\d+)?")


def mutate(lines: list[bytes], op: str, index: int, blob: bytes) -> list[bytes]:
    """Apply one hostile edit to one line (or to the file's line list)."""
    out = list(lines) or [b""]
    i = index % len(out)
    line = out[i]
    if op == "truncate":
        out[i] = line[: index % (len(line) + 1)]
    elif op == "inject":
        cut = index % (len(line) + 1)
        out[i] = line[:cut] + blob + line[cut:]
    elif op == "huge_number":
        out[i] = _NUMBER.sub(b"99999999999999999999999999999", line, count=2)
    elif op == "nan":
        out[i] = _NUMBER.sub(b"NaN", line, count=1)
    elif op == "negative":
        out[i] = _NUMBER.sub(b"-1", line, count=3)
    elif op == "duplicate_key":
        out[i] = line.replace(b'{"', b'{"dup": 1, "dup": "x", "', 1)
    elif op == "deep_nesting":
        out[i] = b"[" * 5000 + b"]" * 5000
    elif op == "long_line":
        out[i] = line + b"A" * 200_000
    elif op == "drop_line":
        del out[i]
    elif op == "swap":
        j = (index * 7 + 3) % len(out)
        out[i], out[j] = out[j], out[i]
    elif op == "blank_out":
        out[i] = b" " * len(line)
    return out


OPS = st.sampled_from(
    [
        "truncate",
        "inject",
        "huge_number",
        "nan",
        "negative",
        "duplicate_key",
        "deep_nesting",
        "long_line",
        "drop_line",
        "swap",
        "blank_out",
    ]
)
BLOBS = st.sampled_from(
    [
        b"\x00",
        b"\xff\xfe",
        b"\xc3\x28",
        b"\x1b[2J",
        b"\r",
        b'"',
        b"\\",
        b"\t",
        b",,,",
        b"}",
        b"{",
        b"\xe2\x80\xae",
        b"\n",
    ]
)


@pytest.mark.parametrize(("name", "path"), CASES, ids=[f"{n}:{p.name}" for n, p in CASES])
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(st.tuples(OPS, st.integers(0, 10_000), BLOBS), min_size=1, max_size=3))
def test_mutated_samples_never_crash_and_balance(
    name: str, path: Path, edits: list[tuple[str, int, bytes]]
) -> None:
    loader = REGISTRY[name]
    lines = path.read_bytes().split(b"\n")
    for op, index, blob in edits:
        lines = mutate(lines, op, index, blob)
    with tempfile.TemporaryDirectory() as tmp:
        relative = (
            path.relative_to(DATA / name) if path.is_relative_to(DATA / name) else Path(path.name)
        )
        target = Path(tmp) / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"\n".join(lines))
        try:
            result = loader.read(Source(target, target.name), LoadOptions())
        except CorrelateError:
            return  # one clear sentence for a whole-file problem is allowed
        stats = result.stats
        assert stats.read == stats.loaded + stats.rejected + stats.skipped_total, (stats, edits)
        assert result.table.schema.equals(SCHEMAS[result.kind]), name
        for reject in result.rejects:
            assert reject.reason and reject.location.line >= 1


def test_every_loader_has_fuzzable_samples() -> None:
    """A new loader gets fuzzed as soon as it has text samples in tests/data/<name>/."""
    covered = {name for name, _ in CASES}
    binary_only = {"ocsf_network", "inspect_ai"} & set(REGISTRY)
    assert set(REGISTRY) - covered <= binary_only, sorted(set(REGISTRY) - covered)
