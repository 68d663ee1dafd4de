"""One damaged line must not hide its file from detection (issue 15, item 16)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from correlate.errors import UnknownFormat
from correlate.loaders import detect
from correlate.pipeline import RunOptions, run
from correlate.sources import Source

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_logs" / "rome_incident"


@pytest.mark.parametrize("damage", [b"\x00", b"\xff\xfe"])
def test_a_nul_or_bad_utf8_in_line_one_costs_that_line_not_the_file(
    tmp_path: Path, damage: bytes
) -> None:
    top = tmp_path / "logs"
    shutil.copytree(SAMPLE, top)
    path = top / "firewall" / "cfw_internet_log.jsonl"
    data = path.read_bytes()
    at = data.index(b'"src_ip"')
    path.write_bytes(data[:at] + damage + data[at:])
    assert detect(Source(path, str(path))).name == "alibaba_cfw"
    result = run([str(top)], RunOptions())
    record = next(f for f in result.loaded.inputs if f.path == str(path))
    assert record.format == "alibaba_cfw" and record.stats is not None
    assert record.stats.rejected == 1 and record.stats.loaded == 760
    assert result.loaded.rejects[0].location.line == 1
    assert result.findings.num_rows == 13


def test_binary_files_still_are_no_known_format(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(UnknownFormat):
        detect(Source(path, str(path)))
