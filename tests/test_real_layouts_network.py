"""Network logs as real deployments write them (issue #15): forced formats, Zeek variants,
EdgeOS/VyOS firewall prefixes, Suricata flow/netflow twins and engine-only files, and
IPv4-mapped IPv6 addresses. Each test failed before its fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from loader_helpers import display, rows

from correlate.errors import FormatMismatch
from correlate.loaders import REGISTRY, LoadOptions, detect
from correlate.pipeline import InputFile, RunOptions, load_file
from correlate.sources import Source

DATA = Path(__file__).resolve().parent / "data"
CONN_LONG = DATA / "zeek_conn_extra" / "zeek_cut_conn_long.log"


def source(path: Path, *, explicit: bool = True) -> Source:
    return Source(path, display(path), explicit=explicit)


def forced_load(path: Path, forced: str, *, explicit: bool = True):
    record = InputFile(path=display(path), format=None, kind=None, sha256="", size=0)
    result = load_file(source(path, explicit=explicit), forced, RunOptions(), record)
    return record, result


# --- 1. --format uses the loader even when its sniff scores 0 ----------------------------------


def test_a_zeek_cut_conn_long_log_sniffs_zero_but_loads_when_forced():
    conn_long = source(CONN_LONG)
    assert REGISTRY["zeek_conn"].sniff(conn_long.head(), conn_long.name) == 0.0
    record, result = forced_load(CONN_LONG, "zeek_conn")
    assert (record.format, record.forced, record.score) == ("zeek_conn", True, 0.0)
    assert result is not None and record.skipped_reason is None
    stats = result.stats
    assert (stats.read, stats.loaded, stats.rejected, stats.skipped_total) == (12, 4, 0, 8)
    assert stats.notes == {"Zeek #path conn_long read as conn (--format forced it)": 1}
    got = rows(result.table)
    assert [r["source_line"] for r in got] == [9, 10, 11, 12]
    assert {(r["src_ip"], r["dst_ip"], r["dst_port"]) for r in got} == {
        ("192.168.10.13", "203.0.113.7", 22),
        ("192.168.10.17", "141.94.96.144", 3333),
    }
    assert got[3]["flow_key"] == "zeek:CvVq3e2HJpZt1mN7Yb"
    assert got[3]["bytes_out"] == 262004 and got[3]["app"] == "ssh"


def test_a_forced_zeek_read_is_the_same_line_by_line():
    options = LoadOptions()
    fast = REGISTRY["zeek_conn"].read(source(CONN_LONG), options)
    slow = REGISTRY["zeek_conn"].read(source(CONN_LONG), options, fast=False)
    assert fast.table.equals(slow.table) and fast.stats == slow.stats


def test_detect_still_answers_would_it_fit():
    with pytest.raises(FormatMismatch, match="does not look like zeek_conn"):
        detect(source(CONN_LONG), "zeek_conn")
    assert detect(source(CONN_LONG), "zeek_conn", check=False).score == 0.0


@pytest.mark.parametrize("explicit", [True, False], ids=["named", "walked"])
def test_a_forced_loader_that_cannot_read_the_file_says_so_in_one_sentence(explicit):
    cef = DATA / "cef" / next(p.name for p in sorted((DATA / "cef").glob("*.log")))
    with pytest.raises(FormatMismatch) as caught:
        forced_load(cef, "zeek_conn", explicit=explicit)
    message = str(caught.value)
    assert message.startswith(f"{display(cef)}: does not look like zeek_conn (Zeek conn.log")
    assert ", and reading it as zeek_conn failed: " in message
    assert "\n" not in message and "Traceback" not in message
