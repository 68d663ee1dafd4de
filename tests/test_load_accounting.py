"""Load accounting holds for every loader: each record read is loaded, rejected or skipped.

Every registered loader reads every file of its ``tests/data/<format>/`` folder and must give
``read == loaded + rejected + skipped``; and no loader module counts ``read`` by hand (only
``loaders/base.py`` and ``loaders/records.py`` do, so a new loader counts through ``FileLoad``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from correlate.errors import CorrelateError
from correlate.loaders import LOADER_MODULES, REGISTRY, LoadOptions
from correlate.sources import Source

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
LOADERS = ROOT / "correlate" / "loaders"

COUNTERS = {"base.py", "records.py"}
"""The modules that may count ``read`` themselves."""
OPTIONS = {"swe_agent": {"start": "2024-01-01T00:00:00Z"}}
"""What a format cannot read without (SWE-agent's .traj has no times of its own)."""


def _files(fmt: str) -> list[Path]:
    folder = DATA / fmt
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and "LICENSES" not in p.parts and p.name != "README.md"
    )


CASES = [(fmt, path) for fmt in LOADER_MODULES for path in _files(fmt)]


@pytest.mark.parametrize(
    ("fmt", "path"), CASES, ids=[f"{fmt}:{path.relative_to(DATA / fmt)}" for fmt, path in CASES]
)
def test_every_record_read_is_loaded_rejected_or_skipped(fmt: str, path: Path) -> None:
    try:
        options = LoadOptions(format_options=OPTIONS)
        result = REGISTRY[fmt].read(Source(path, path.name), options)
    except CorrelateError:
        pytest.skip("refused as a whole without options (e.g. a CSV needing a column mapping)")
    stats = result.stats
    assert stats.read == stats.loaded + stats.rejected + sum(stats.skipped.values()), stats


def test_every_format_with_test_data_is_walked() -> None:
    assert {fmt for fmt, _ in CASES} >= {"atif", "cef", "fortigate", "gemini_cli", "iptables"}


def test_no_loader_counts_read_by_hand() -> None:
    by_hand = sorted(
        p.name
        for p in LOADERS.glob("*.py")
        if p.name not in COUNTERS and re.search(r"\.read\s*\+=", p.read_text())
    )
    assert by_hand == [], f"count through FileLoad (loaders/base.py), not stats.read: {by_hand}"
