"""CSV and rejects files are inert: no log text acts on a terminal (``| cat``) or in a spreadsheet.

The hostile row carries OSC 52 (clipboard), OSC 8 (hyperlink), BEL, BS and U+202E in the command,
the rule's signature, the domain and a rejected line's reason and raw text, with fullwidth
formula starts (U+FF1D HYPERLINK, U+FF0B 1...). Every CSV that correlate writes (``run -o``,
``export``, ``query``/``findings``/``timeline`` with ``--format csv``) must hold none of those
characters raw, keep a formula start behind an apostrophe, and still read as the text logged.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from test_case_fixtures import invoke

from correlate.case import ingest
from correlate.errors import Reject, SourceLocation
from correlate.pipeline import RunOptions
from correlate.reports.export import csv_cell
from correlate.textsafe import csv_text, formula_like, inert, inert_json

HOSTILE = (
    "\x1b]52;c;ZXZpbA==\x07 \x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ bell\x07 back\x08space "
    "\u202egnp.exe"
)
"""OSC 52 (sets the clipboard), an OSC 8 hyperlink, BEL, BS and a right-to-left override."""

FIREWALL_LINE = json.dumps(
    {
        "__topic__": "cloudfirewall_access_log",
        "log_type": "internet_log",
        "src_ip": "47.96.180.21",
        "src_private_ip": "10.1.0.5",
        "src_port": "40000",
        "dst_ip": "203.0.113.9",
        "dst_port": "4444",
        "ip_protocol": "tcp",
        "direction": "out",
        "rule_result": "drop",
        "acl_rule_id": "11111111-2222-3333-4444-555555555555",
    }
)

# Raw control, DEL, C1 and bidi/format characters (what a terminal or an editor acts on).
UNSAFE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]"
)


def _firewall(**fields: str) -> str:
    return json.dumps({**json.loads(FIREWALL_LINE), **fields})


def _span(span_id: str, call_id: str, start_s: int, command: str) -> dict[str, object]:
    def attr(key: str, value: str) -> dict[str, object]:
        return {"key": key, "value": {"stringValue": value}}

    return {
        "traceId": "0af7651916cd43dd8448eb211c80319c",
        "spanId": span_id,
        "name": "execute_tool run_shell_command",
        "kind": 1,
        "startTimeUnixNano": f"{start_s}000000000",
        "endTimeUnixNano": f"{start_s + 2}000000000",
        "attributes": [
            attr("gen_ai.operation.name", "execute_tool"),
            attr("gen_ai.tool.name", "run_shell_command"),
            attr("gen_ai.tool.call.id", call_id),
            attr("gen_ai.conversation.id", "ep-\u202eevil" + HOSTILE),
            attr("gen_ai.tool.call.arguments", json.dumps({"command": command})),
        ],
    }


def hostile_inputs(root: Path) -> Path:
    """A firewall log and a trace full of terminal escapes and fullwidth formula starts."""
    folder = root / "in"
    folder.mkdir(parents=True)
    lines = [
        _firewall(
            start_time="1764655201",
            end_time="1764655202",
            ips_rule_name='\uff1dHYPERLINK("http://x")' + HOSTILE,
            domain="\uff0b1.evil.example" + HOSTILE,
        ),
        _firewall(
            start_time="1764655202",
            end_time="1764655203",
            ips_rule_name="\uff20SUM(A1)" + HOSTILE,
            domain="\uff0d2.evil.example" + HOSTILE,
        ),
        # rejected: the reason quotes the hostile value, the raw text holds it as logged
        _firewall(start_time="\uff1dHYPERLINK(1)" + HOSTILE, end_time="1764655202"),
        # rejected: not JSON, with raw controls and a raw U+202E in the line itself
        '{"start_time": "' + HOSTILE.replace("\n", "") + '", broken \u202e=1',
    ]
    (folder / "firewall.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    resource = {
        "attributes": [
            {"key": "service.namespace", "value": {"stringValue": "run-\u202eevil"}},
            {"key": "host.name", "value": {"stringValue": "sbx-1"}},
            {
                "key": "host.ip",
                "value": {"arrayValue": {"values": [{"stringValue": "10.1.0.5"}]}},
            },
        ]
    }
    spans = [
        _span("b7ad6b7169203331", "call_plus", 1764655140, "\uff0b1 " + HOSTILE),
        _span(
            "b7ad6b7169203332",
            "call_evil",
            1764655200,
            '\uff1dHYPERLINK("http://evil/") ; curl http://203.0.113.9:4444/ ' + HOSTILE,
        ),
    ]
    trace = {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": spans}]}]}
    (folder / "traces.jsonl").write_text(json.dumps(trace) + "\n", encoding="utf-8")
    return folder


def check_csv(text: str, where: str) -> list[dict[str, str]]:
    """No raw unsafe character anywhere; no cell a spreadsheet would evaluate; rows returned."""
    found = UNSAFE.search(text)
    assert found is None, f"{where}: raw {found.group(0)!r} at {found.start()}"
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows, where
    for row in rows:
        for cell in row:
            assert not formula_like(cell), f"{where}: {cell!r} would be evaluated"
    header = rows[0]
    return [dict(zip(header, row, strict=True)) for row in rows[1:]]


def readable(cell: str) -> bool:
    """The hostile text as shown: the escapes visible, the words intact."""
    return "\\x1b]52;c;ZXZpbA==\\x07" in cell and "\\x08space \\u202egnp.exe" in cell


# --- one function for every cell ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "\uff1dHYPERLINK(1)",  # fullwidth =
        "\uff0b1",  # fullwidth +
        "\uff0d1",  # fullwidth -
        "\uff20SUM(A1)",  # fullwidth @
        "\ufe66cmd",  # small equals sign
        "\u207c1",  # superscript equals sign
        "\u22121",  # minus sign
        "=1",
        "+1",
        "-1",
        "@x",
        "\tx",
        "\rx",
    ],
)
def test_formula_starts_get_an_apostrophe_fullwidth_included(text: str) -> None:
    cell = csv_text(text)
    assert cell.startswith("'") and cell[1:] == inert(text)
    assert csv_cell(text) == cell  # export's cell writer is the same function


def test_a_cell_is_inert_and_still_reads_as_the_text() -> None:
    cell = csv_text("curl x " + HOSTILE)
    assert UNSAFE.search(cell) is None
    assert cell == "curl x " + inert(HOSTILE) and readable(cell)
    assert csv_text("ls -la") == "ls -la" and csv_text("a=b") == "a=b" and csv_text(None) == ""


def test_inert_json_escapes_what_json_leaves_raw_and_reads_back_exactly() -> None:
    record = {"raw": HOSTILE + "\x7f\x85\u2066\ufeff 中文", "reason": "\uff1d" + HOSTILE}
    line = inert_json(record, sort_keys=True)
    assert UNSAFE.search(line) is None and "中文" in line
    assert json.loads(line) == record
    indented = inert_json(record, sort_keys=True, indent=2)  # structure keeps its newlines
    assert json.loads(indented) == record and UNSAFE.search(indented.replace("\n", "")) is None
    assert inert_json(record, ascii_only=True).isascii()


# --- every CSV correlate writes ----------------------------------------------------------------


def test_run_o_csv_is_inert(tmp_path: Path) -> None:
    folder = hostile_inputs(tmp_path)
    out = tmp_path / "report.csv"
    result = invoke("run", "-q", str(folder), "-o", str(out), "--permutations", "0")
    assert result.exit_code == 0, result.output
    files = sorted(tmp_path.glob("report*.csv"))
    assert {p.name for p in files} >= {"report.csv", "report.findings.csv", "report.candidates.csv"}
    for path in files:
        check_csv(path.read_bytes().decode("utf-8"), path.name)
    rows = check_csv(out.read_text(encoding="utf-8"), "report.csv")
    evil = next(r for r in rows if r["call_id"] == "call_evil")
    assert evil["command"].startswith("'\uff1dHYPERLINK(") and readable(evil["command"])
    assert any(r["signature"].startswith("'\uff1dHYPERLINK") for r in rows)
    assert any(r["signature"].startswith("'\uff20SUM") for r in rows)
    assert any(
        r["dst_domain"].startswith("'\uff0b1.evil")
        and "\\x1b]8;;http://x\\x1b" in r["dst_domain"]  # domains are lowercased, still readable
        for r in rows
    )


def test_export_query_findings_and_timeline_csv_are_inert(tmp_path: Path) -> None:
    folder = hostile_inputs(tmp_path)
    case = tmp_path / "case"
    ingest(case, [str(folder)], RunOptions())
    work = tmp_path / "export"
    work.mkdir()
    result = invoke("export", str(case), "--format", "csv", "-o", str(work / "x.csv"))
    assert result.exit_code == 0, result.output
    written = sorted(work.glob("*.csv"))
    assert len(written) >= 3
    for path in written:
        check_csv(path.read_bytes().decode("utf-8"), path.name)
    for args in (
        ("query", str(case), "--format", "csv"),
        ("query", str(case), "--dst", "203.0.113.9", "--format", "csv"),
        ("findings", str(case), "--format", "csv"),
        ("timeline", str(case), "--host", "sbx-1", "--format", "csv"),
    ):
        result = invoke(*args)
        assert result.exit_code == 0, (args, result.output)
        rows = check_csv(result.stdout, " ".join(args[:1]))
        cells = [cell for row in rows for cell in row.values()]
        assert any(readable(c) for c in cells), args  # the hostile text is there, escaped
        out = tmp_path / f"{args[0]}.csv"
        assert invoke(*args, "-o", str(out)).exit_code == 0
        check_csv(out.read_bytes().decode("utf-8"), out.name)


# --- rejects files -----------------------------------------------------------------------------


def test_a_reject_as_inert_json_is_exact_and_inert() -> None:
    reject = Reject(SourceLocation("f.jsonl", 4), "bad \uff1d" + HOSTILE, '{"x": ' + HOSTILE)
    record = {
        "path": reject.location.path,
        "line": reject.location.line,
        "reason": reject.reason,
        "raw": reject.raw,
    }
    line = inert_json(record, sort_keys=True)
    assert UNSAFE.search(line) is None and json.loads(line) == record


def _check_rejects(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    found = UNSAFE.search(text)
    assert found is None, f"{path.name}: raw {found.group(0)!r}"
    records = [json.loads(line) for line in text.splitlines()]
    assert len(records) == 2
    assert "\u202e" in records[1]["raw"]  # exact for a JSON reader


def test_run_rejects_file_and_the_cases_rejects_jsonl_are_inert(tmp_path: Path) -> None:
    folder = hostile_inputs(tmp_path)
    rejects = tmp_path / "rejects.jsonl"
    result = invoke("run", "-q", str(folder), "--rejects", str(rejects), "--permutations", "0")
    assert result.exit_code == 0, result.output
    case = tmp_path / "case"
    ingest(case, [str(folder)], RunOptions())
    _check_rejects(case / "rejects.jsonl")
    _check_rejects(rejects)
