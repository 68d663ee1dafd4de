"""Resource limits on untrusted input: long lines and decompression bombs stop with a clear message."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from correlate.cli import cli
from correlate.errors import InputError
from correlate.sources import Limits, Source, iter_lines

SCENARIO = Path(__file__).resolve().parent.parent / "sample_logs" / "rome_incident"


def test_a_line_over_the_cap_is_skipped_without_reading_it_whole(tmp_path: Path) -> None:
    path = tmp_path / "long.jsonl"
    path.write_bytes(b'{"a": 1}\n' + b"x" * 5000 + b"\r\n" + b'{"b": 2}\n' + b"y" * 3000)
    source = Source(path, "long.jsonl", limits=Limits(max_line_bytes=1024))
    assert list(iter_lines(source)) == [(1, b'{"a": 1}'), (3, b'{"b": 2}')]
    assert [(x.line, x.length, x.start) for x in source.oversize] == [
        (2, 5000, b"x" * 256),
        (4, 3000, b"y" * 256),
    ]


def test_a_line_exactly_at_the_cap_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "edge.txt"
    path.write_bytes(b"y" * 1024 + b"\n" + b"z" * 1024)
    assert [
        n for n, _ in iter_lines(Source(path, "edge.txt", limits=Limits(max_line_bytes=1024)))
    ] == [1, 2]


def test_a_decompression_bomb_stops_with_the_limit_named(tmp_path: Path) -> None:
    path = tmp_path / "bomb.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n" * (3 * 1024 * 1024), compresslevel=9))
    source = Source(
        path, "bomb.jsonl.gz", limits=Limits(max_expansion=10, expansion_floor=1024 * 1024)
    )
    with pytest.raises(
        InputError, match=r"bomb.jsonl.gz: decompresses to more than .*--max-expansion"
    ):
        for _ in iter_lines(source):
            pass


def test_ordinary_compression_ratios_pass(tmp_path: Path) -> None:
    path = tmp_path / "ok.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"k": "v"}\n' * 1000))
    assert sum(1 for _ in iter_lines(Source(path, "ok.jsonl.gz"))) == 1000


def test_cli_reports_the_limit_and_exits_1(tmp_path: Path) -> None:
    traces = (SCENARIO / "traces" / "traces.jsonl").read_text().splitlines()[:3]
    (tmp_path / "traces.jsonl").write_text("\n".join(traces) + "\n")
    line = json.dumps(
        {
            "rule_result": "drop",
            "src_ip": "10.0.0.1",
            "dst_ip": "203.0.113.1",
            "start_time": "1764655200",
            "pad": "p" * 4000,
        }
    )
    (tmp_path / "fw.jsonl").write_text(line + "\n")
    named = [str(tmp_path / "fw.jsonl"), str(tmp_path / "traces.jsonl")]
    result = CliRunner().invoke(
        cli, ["run", "-q", "--max-line-bytes", "2048", *named], catch_exceptions=False
    )
    assert result.exit_code == 1  # a named file whose every row is rejected
    assert "a line of 4,109 bytes" in result.stderr
    assert "longer than 2,048 (--max-line-bytes): skipped" in result.stderr
    again = CliRunner().invoke(
        cli, ["run", "-q", "--max-line-bytes", "8192", *named], catch_exceptions=False
    )
    assert again.exit_code == 0


def test_a_file_over_a_limit_found_in_a_directory_is_skipped_with_the_reason(
    tmp_path: Path,
) -> None:
    traces = (SCENARIO / "traces" / "traces.jsonl").read_text().splitlines()[:3]
    (tmp_path / "traces.jsonl").write_text("\n".join(traces) + "\n")
    good = json.dumps(
        {
            "rule_result": "drop",
            "src_ip": "10.0.0.1",
            "dst_ip": "203.0.113.1",
            "start_time": "1764655200",
        }
    )
    (tmp_path / "a.jsonl").write_text(good + "\n")
    (tmp_path / "b.jsonl").write_text(
        good + "\n" + json.dumps({"rule_result": "drop", "pad": "p" * 4000}) + "\n"
    )
    result = CliRunner().invoke(
        cli, ["run", "--max-line-bytes", "3000", str(tmp_path)], catch_exceptions=False
    )
    assert result.exit_code == 0  # one long line costs that line, not its file
    assert "b.jsonl:2: a line of 4,03" in result.stderr
    assert "longer than 3,000 (--max-line-bytes): skipped" in result.stderr
    assert "b.jsonl: skipped" not in result.stderr
    strict = CliRunner().invoke(
        cli, ["run", "--strict", "--max-line-bytes", "3000", str(tmp_path)], catch_exceptions=False
    )
    assert strict.exit_code == 1


def test_one_huge_tool_output_costs_one_call_not_the_trace_file(tmp_path: Path) -> None:
    """The agent under investigation writes the tool outputs: one over the limit must not hide
    the 2,199 other calls (it did: the whole OTLP file was skipped)."""
    lines = (SCENARIO / "traces" / "traces.jsonl").read_bytes().splitlines()
    huge = json.loads(lines[10])
    huge["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"] = "x" * 70_000
    lines[10] = json.dumps(huge).encode()
    traces = tmp_path / "traces"
    traces.mkdir()
    (traces / "traces.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    for name in ("firewall", "inventory.csv"):
        source = SCENARIO / name
        if source.is_dir():
            (tmp_path / name).mkdir()
            for f in source.iterdir():
                (tmp_path / name / f.name).write_bytes(f.read_bytes())
        else:
            (tmp_path / name).write_bytes(source.read_bytes())
    result = CliRunner().invoke(
        cli, ["run", "--json", "--max-line-bytes", "65536", str(tmp_path)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    traces_input = next(i for i in document["provenance"]["inputs"] if "traces" in i["path"])
    assert traces_input["rejected"] == 1 and traces_input["format"] == "otlp_json"
    assert document["provenance"]["counts"]["tool_calls"] >= 2190
    assert "traces.jsonl:11: a line of" in result.stderr


CFW_ROW = (
    b'{"rule_result":"drop","src_ip":"10.0.0.1","dst_ip":"203.0.113.1",'
    b'"start_time":"1764655200","direction":"out"}\n'
)


def _bombs(tmp_path: Path) -> dict[str, Path]:
    """Decompression bombs of every shape, each starting with a real firewall row."""
    import bz2

    flood = CFW_ROW + b"\n" * (48 << 20)
    one_line = CFW_ROW + b'{"pad":"' + b"x" * (48 << 20) + b'"}\n'
    member = gzip.compress(CFW_ROW * 20_000, 9)
    shapes = {
        "newlines.jsonl.gz": gzip.compress(flood, 9),
        "one_line.jsonl.gz": gzip.compress(one_line, 9),
        "members.jsonl.gz": member * 200,
        "newlines.jsonl.bz2": bz2.compress(flood, 9),
    }
    paths = {}
    for name, data in shapes.items():
        paths[name] = tmp_path / name
        paths[name].write_bytes(data)
    return paths


@pytest.mark.parametrize(
    "name", ["newlines.jsonl.gz", "one_line.jsonl.gz", "members.jsonl.gz", "newlines.jsonl.bz2"]
)
def test_decompression_limits_hold_whatever_the_stream_shape(tmp_path: Path, name: str) -> None:
    """The ratio is checked against the compressed bytes read so far, so a bomb stops after
    about ``expansion_floor`` bytes whatever its shape (many members, one huge line, only
    newlines): memory and time stay bounded."""
    path = _bombs(tmp_path)[name]
    limits = Limits(max_expansion=50, expansion_floor=4 << 20)
    source = Source(path, name, limits=limits)
    seen = 0
    with (
        pytest.raises(InputError, match=rf"{name}: decompresses to more than 50x the"),
        source.open() as stream,
    ):
        while block := stream.read(1 << 20):
            seen += len(block)
    assert seen < 8 << 20  # stopped near the floor, long before the 48 MiB inside
