"""Exports: spreadsheet-safe CSV, JSON lines, Parquet, OCSF and Timesketch; round trips; same bytes."""

from __future__ import annotations

import csv
import importlib
import io
import json
import re
import time
from datetime import datetime
from pathlib import Path
from types import ModuleType

import pyarrow.json as pj
import pyarrow.parquet as pq
import pytest
from test_case_fixtures import (
    MINER_CALL,
    TUNNEL_CALL,
    TUNNEL_IP,
    hostile_case,
    in_ci,
    invoke,
    sample_case,
    scratch,
)

from correlate.case import open_case
from correlate.pipeline import RunOptions
from correlate.reports.export import csv_cell, export, ocsf_records, timesketch_records
from correlate.reports.html import render_html
from correlate.textsafe import inert


def require(name: str) -> ModuleType:
    """A test-only dependency: skipped locally when absent, a failure in CI."""
    try:
        return importlib.import_module(name)
    except ImportError:
        if in_ci():
            pytest.fail(f"{name} is required in CI (the test extra must install it)")
        pytest.skip(f"{name} is not installed")


@pytest.mark.parametrize(
    ("text", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-fNR", "'-fNR"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\\tx"),  # shown escaped as on the terminal, and still behind the apostrophe
        ("\rx", "'\\rx"),
        ("\uff1dHYPERLINK(1)", "'\uff1dHYPERLINK(1)"),  # fullwidth: NFKC folds it to =
        ("ls -la", "ls -la"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_csv_cells_that_a_spreadsheet_would_evaluate_get_a_leading_apostrophe(
    text: str, cell: str
) -> None:
    assert csv_cell(text) == cell


def test_csv_export_neutralises_formulas_but_keeps_numbers_and_the_inert_text() -> None:
    work = scratch("csv")
    result = invoke("export", str(hostile_case()), "--format", "csv", "-o", str(work / "h.csv"))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO((work / "h.csv").read_bytes().decode(), newline="")))
    evil = [r for r in rows if r["call_id"]]
    assert evil[0]["command"].startswith("'=HYPERLINK(")
    assert evil[0]["command"][1:] == inert(
        open_case(hostile_case()).table("calls").column("command")[1].as_py()
    )
    sample = work / "s.csv"
    invoke(
        "export", str(sample_case()), "--format", "csv", "-o", str(sample), "--permutations", "0"
    )
    events = list(csv.DictReader(io.StringIO(sample.read_text(), newline="")))
    assert events[0]["lag_s"] == "-4.1" and events[0]["call_id"] == TUNNEL_CALL
    assert {p.name for p in work.iterdir()} >= {
        "s.csv",
        "s.findings.csv",
        "s.candidates.csv",
        "s.provenance.json",
    }
    assert not (work / "s.stats.csv").exists()


def test_parquet_export_round_trips_with_pyarrow_and_duckdb() -> None:
    duckdb = require("duckdb")
    work = scratch("parquet")
    out = work / "report.parquet"
    result = invoke(
        "export", str(sample_case()), "--format", "parquet", "-o", str(out), "--permutations", "99"
    )
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert table.num_rows == 55
    provenance = json.loads(table.schema.metadata[b"correlate.provenance"])
    assert provenance["case"]["format"] == "correlate-case"
    assert provenance["parameters"]["permutations"] == 99
    assert {i["format"] for i in provenance["inputs"]} >= {"alibaba_cfw", "otlp_json", "inventory"}
    findings = str(work / "report.findings.parquet")
    got = duckdb.sql(
        f"select dst_ip, call_id, confidence from read_parquet('{findings}') "
        "where list_contains(labels, 'mining')"
    ).fetchall()
    assert got == [("141.94.96.144", MINER_CALL, "high")]
    stats = duckdb.sql(f"select count(*) from read_parquet('{work / 'report.stats.parquet'}')")
    assert stats.fetchall()[0][0] > 0


def test_ocsf_export_is_network_activity_enriched_with_the_attributed_call() -> None:
    duckdb = require("duckdb")
    work = scratch("ocsf")
    out = work / "events.ocsf.jsonl"
    assert invoke("export", str(sample_case()), "--format", "ocsf", "-o", str(out)).exit_code == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 55
    for r in records:
        assert r["class_uid"] == 4001 and r["category_uid"] == 4
        assert r["type_uid"] == 4001 * 100 + r["activity_id"]
        assert r["metadata"]["product"]["name"] == "correlate"
        assert r["metadata"]["version"].startswith("1.")
        assert isinstance(r["time"], int) and r["time"] > 1_700_000_000_000  # ms
    tunnel = next(r for r in records if r["dst_endpoint"]["ip"] == TUNNEL_IP)
    assert (tunnel["action_id"], tunnel["disposition_id"]) == (2, 2)
    assert tunnel["connection_info"] == {
        "boundary": "External",
        "boundary_id": 3,
        "direction": "Outbound",
        "direction_id": 2,
        "protocol_name": "tcp",
        "protocol_num": 6,
    }
    assert tunnel["src_endpoint"]["hostname"] == "sbx-03"
    call = tunnel["enrichments"][0]["data"]
    assert call["call_id"] == TUNNEL_CALL and call["episode"] == "ep-0423-sbx-03-1"
    assert call["step"] == 27 and call["tool"] == "run_shell_command"
    assert (
        call["confidence"] == "high"
        and "destination 203.0.113.7 appears in the call" in call["reasons"]
    )
    # the aligned clock; with no offset applied it is the time as logged (06:11:19Z)
    assert tunnel["time"] == 1764655879000
    assert tunnel["metadata"]["original_time"] == "2025-12-02T06:11:19Z"
    miner = next(r for r in records if r["dst_endpoint"].get("hostname") == "pool.supportxmr.com")
    assert (miner["action_id"], miner["disposition_id"], miner["is_alert"]) == (1, 19, True)
    unattributed = [r for r in records if r["enrichments"][0]["value"] == "none"]
    nothing = unattributed[0]["enrichments"][0]["data"]
    assert len(unattributed) == 2 and nothing["call_id"] is None and nothing["confidence"] == "none"
    assert any("not in the identity map" in r for r in nothing["reasons"])
    arrow = pj.read_json(out)
    assert arrow.num_rows == 55 and "enrichments" in arrow.column_names
    got = duckdb.sql(
        f"select count(*) from read_json_auto('{out}') where class_uid = 4001 and "
        f"list_contains(unmapped.correlate.labels, 'mining')"
    ).fetchall()[0]
    assert got == (40,)


def test_timesketch_lines_have_message_datetime_and_timestamp_desc() -> None:
    result = open_case(sample_case()).analyse(RunOptions())
    records = timesketch_records(result)
    violations = [r for r in records if r["data_type"] == "correlate:violation"]
    calls = [r for r in records if r["data_type"] == "correlate:tool_call"]
    assert len(violations) == 55
    assert MINER_CALL in {c["call_id"] for c in calls} and len(calls) >= 13
    for r in records:
        assert r["message"] and r["timestamp_desc"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", r["datetime"])
        parsed = datetime.fromisoformat(r["datetime"])
        assert r["timestamp"] == int(parsed.timestamp() * 1_000_000)
    times = [r["time_ns"] for r in records]
    assert times == sorted(times)
    xmrig = next(c for c in calls if c["call_id"] == MINER_CALL)
    assert xmrig["attributed_events"] and len(xmrig["attributed_events"]) == 40


def test_json_exports_of_hostile_text_are_ascii_and_exact() -> None:
    result = open_case(hostile_case()).analyse(RunOptions())
    for records in (ocsf_records(result), timesketch_records(result)):
        text = "".join(json.dumps(r, ensure_ascii=True) for r in records)
        assert text.isascii()
    evil = next(r for r in ocsf_records(result) if r["enrichments"][0]["value"] != "none")
    assert "\x1b[31mRED" in evil["enrichments"][0]["data"]["command"]  # exact in the data
    messages = [r["message"] for r in ocsf_records(result) + timesketch_records(result)]
    assert not any(ch in m for m in messages for ch in "\x1b\r\b\u202e")
    assert any("\\x1b[31mRED" in m for m in messages)  # shown escaped


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl", "ocsf", "timesketch", "html"])
def test_the_same_case_gives_the_same_bytes_in_any_machine_time_zone(
    fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = open_case(sample_case()).analyse(RunOptions())
    outputs = []
    for zone in ("UTC", "Asia/Shanghai", "America/New_York"):
        monkeypatch.setenv("TZ", zone)
        time.tzset()
        work = scratch(f"tz-{fmt}")
        if fmt == "html":
            outputs.append({"html": render_html(result, permutations=19).encode()})
            continue
        paths = export(result, fmt, work / f"out.{fmt}", permutations=19)
        outputs.append({name: Path(p).read_bytes() for name, p in paths.items()})
    monkeypatch.delenv("TZ")
    time.tzset()
    assert outputs[0] == outputs[1] == outputs[2]
