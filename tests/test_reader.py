"""correlate.read: one file's normalised table and its accounting, for a notebook."""

from __future__ import annotations

from pathlib import Path

import pytest

import correlate
from correlate.errors import InputError, OptionError, StrictRejection
from correlate.pipeline import RunOptions, load_inputs

ROOT = Path(__file__).resolve().parent.parent
CFW = ROOT / "sample_logs" / "rome_incident" / "firewall" / "cfw_internet_log.jsonl"
ROLL_LOG = (
    ROOT / "sample_logs" / "rock_shared_hosts" / "roll" / "logs" / "log_rank_ENV_MANAGER_0_2.log"
)


def test_read_gives_every_row_as_run_loads_them_with_the_accounting() -> None:
    flows = correlate.read(CFW)
    assert (flows.format, flows.kind) == ("alibaba_cfw", "network")
    assert flows.stats.read == flows.stats.loaded == flows.table.num_rows == 761
    loaded = load_inputs([str(CFW)], RunOptions(anchors=None))
    same = loaded.events.drop_columns(["event_id"]).sort_by("source_line")
    assert flows.table.drop_columns(["event_id"]).sort_by("source_line").equals(same)
    assert len(flows.to_pandas()) == 761  # type: ignore[arg-type]


def test_zone_format_strict_and_errors(tmp_path: Path) -> None:
    utc = correlate.read(ROLL_LOG)
    shanghai = correlate.read(ROLL_LOG, tz="Asia/Shanghai")
    first = utc.table.column("valid_from")[0].value - shanghai.table.column("valid_from")[0].value
    assert first == 8 * 3600 * 10**9
    bad = tmp_path / "fw.jsonl"
    bad.write_text(CFW.read_text().splitlines()[0] + "\n{not json\n")
    assert correlate.read(bad).stats.rejected == 1
    with pytest.raises(StrictRejection, match=r"fw.jsonl:2"):
        correlate.read(bad, strict=True)
    assert correlate.read(bad, format="alibaba_cfw").format == "alibaba_cfw"
    with pytest.raises(OptionError, match="unknown format"):
        correlate.read(bad, format="nope")
    with pytest.raises(InputError, match="no such file"):
        correlate.read(tmp_path / "missing.jsonl")
