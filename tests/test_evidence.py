"""Every kind of evidence (``schema.EVIDENCE``) reaches every output that shows a candidate's
evidence: the terminal's candidates (``run --details``, ``show``, ``query --candidates``' table on
a wide terminal), ``query --candidates`` rows in every format, and the candidates (and findings)
export as CSV, JSON lines and Parquet. (The HTML report shows no candidates.)

The tests are parametrised over the table itself, so a kind added there is checked everywhere
without touching this file; the sample incident must carry each kind on some candidate.
"""

from __future__ import annotations

import csv
import io
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from rich.console import Console
from test_case_fixtures import invoke, sample_case, scratch

from correlate.case import open_case
from correlate.pipeline import Result, RunOptions
from correlate.query import Filters, select_events
from correlate.reports.styles import evidence_flags
from correlate.reports.tables import events_table
from correlate.reports.terminal import findings_renderable
from correlate.schema import CANDIDATES, EVIDENCE, FINDINGS, EvidenceKind, plain_rows

KINDS = pytest.mark.parametrize("kind", EVIDENCE, ids=[k.name for k in EVIDENCE])
CALL_KINDS = pytest.mark.parametrize(
    "kind", [k for k in EVIDENCE if k.in_findings], ids=[k.name for k in EVIDENCE if k.in_findings]
)
FORMATS = ("csv", "jsonl", "parquet")


@cache
def analysed() -> Result:
    return open_case(sample_case()).analyse(RunOptions())


def carried(kind: EvidenceKind) -> set[str]:
    """The values of ``kind`` the sample's candidates carry (the sample must carry some)."""
    values = {str(v) for v in analysed().candidates.column(kind.name).to_pylist() if v}
    assert values, f"no candidate of the sample carries {kind.name} evidence: add one that does"
    return values


def read_rows(path: Path) -> list[dict[str, Any]]:
    """A CSV, JSON lines or Parquet file's rows (values as the format holds them)."""
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".csv":
        return list(csv.DictReader(io.StringIO(text)))
    return [json.loads(line) for line in text.splitlines() if line]


@cache
def exported(fmt: str) -> Path:
    """The sample case exported in ``fmt``; returns the main file's path."""
    out = scratch(f"evidence-{fmt}") / f"x.{fmt}"
    assert invoke("export", str(sample_case()), "--format", fmt, "-o", str(out)).exit_code == 0
    return out


@KINDS
def test_the_candidates_and_findings_tables_carry_each_kind_as_a_column(
    kind: EvidenceKind,
) -> None:
    assert kind.name in CANDIDATES.names
    assert (kind.name in FINDINGS.names) or not kind.in_findings


@KINDS
def test_evidence_flags_show_each_kind_the_candidate_carries(kind: EvidenceKind) -> None:
    for value in carried(kind):
        alone = {k.name: (value if k is kind else None) for k in EVIDENCE}
        assert evidence_flags(alone) == kind.flag(value)
        assert kind.flag(value)


@KINDS
def test_the_terminal_candidates_show_each_kind(kind: EvidenceKind) -> None:
    out = io.StringIO()
    Console(file=out, width=300, color_system=None).print(findings_renderable(analysed(), 50))
    shown = re.findall(r"^\s+\d+\.\s+[+-][\d.]+s \w+\s+(\S+)\s+[\d.]+  ", out.getvalue(), re.M)
    flags = {flag for line in shown for flag in line.split("+")}
    assert flags & {kind.flag(v) for v in carried(kind)}, (kind.name, sorted(set(shown)))


@KINDS
def test_the_query_candidates_table_shows_each_kind_on_a_wide_terminal(kind: EvidenceKind) -> None:
    rows = select_events(analysed(), Filters(), candidates=True)
    out = io.StringIO()
    Console(file=out, width=400, color_system=None).print(events_table(rows))
    lines = out.getvalue().splitlines()
    at = lines[1].index("evidence")
    shown = {line[at:].split("  ")[0] for line in lines[3:] if len(line) > at}
    flags = {flag for cell in shown for flag in cell.split("+")}
    assert flags & {kind.flag(v) for v in carried(kind)}, (kind.name, sorted(shown))


@KINDS
@pytest.mark.parametrize("fmt", ("json", *FORMATS))
def test_query_candidates_rows_carry_each_kind(kind: EvidenceKind, fmt: str) -> None:
    case = str(sample_case())
    if fmt == "json":
        rows = json.loads(invoke("query", case, "--candidates", "--json").stdout)["events"]
    else:
        path = scratch(f"query-{fmt}") / f"pairs.{fmt}"
        args = ("query", case, "--candidates", "--format", fmt, "-o", str(path))
        assert invoke(*args).exit_code == 0
        rows = read_rows(path)
    assert rows and all(kind.name in r for r in rows)
    assert {str(r[kind.name]) for r in rows if r[kind.name]} == carried(kind)


@KINDS
@pytest.mark.parametrize("fmt", FORMATS)
def test_the_candidates_export_carries_each_kind(kind: EvidenceKind, fmt: str) -> None:
    path = exported(fmt)
    rows = read_rows(path.with_name(f"x.candidates.{fmt}"))
    assert rows and all(kind.name in r for r in rows)
    assert {str(r[kind.name]) for r in rows if r[kind.name]} == carried(kind)


@CALL_KINDS
@pytest.mark.parametrize("fmt", FORMATS)
def test_the_findings_export_carries_the_attributed_calls_kind(
    kind: EvidenceKind, fmt: str
) -> None:
    rows = read_rows(exported(fmt).with_name(f"x.findings.{fmt}"))
    expected = {str(r[kind.name]) for r in plain_rows(analysed().findings) if r[kind.name]}
    assert expected, f"no finding of the sample names a call with {kind.name} evidence"
    assert {str(r[kind.name]) for r in rows if r[kind.name]} == expected
