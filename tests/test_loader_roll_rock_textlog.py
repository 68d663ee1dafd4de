"""roll_rock_textlog: ROLL/ROCK text logs -> HOSTS rows from the sandbox identity lines."""

from __future__ import annotations

import re
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from loader_helpers import ns, rows

from correlate.errors import StrictRejection
from correlate.identity import build_identity, resolve
from correlate.loaders import MIN_SCORE, LoadOptions, LoadResult, detect
from correlate.loaders import roll_rock_textlog as loader
from correlate.sources import Source

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data" / "roll_rock_textlog"
ROLL = DATA / "log_rank_ENV_MANAGER_0_1.log"
ROCK = DATA / "rocklet.log"
TRAPS = DATA / "log_rank_traps.log"

ROLL_HINT = "(ROLL logs the trainer's local time; use --tz roll_rock_textlog=ZONE)"
NO_IDENTITY = "no sandbox identity on this line"
REPEAT = "sandbox identity already loaded from an earlier line"


def shown(path: Path) -> str:
    try:
        return str(path.relative_to(TESTS.parent))
    except ValueError:
        return path.name


def load(path: Path, options: LoadOptions | None = None, display: str | None = None) -> LoadResult:
    source = Source(path, display or shown(path))
    detection = detect(source)
    assert detection.name == "roll_rock_textlog"
    return detection.loader.read(source, options or LoadOptions())


def assert_balanced(result: LoadResult) -> None:
    stats = result.stats
    assert stats.read == stats.loaded + stats.rejected + sum(stats.skipped.values())
    assert stats.loaded == result.table.num_rows
    assert stats.unit == "lines"


# --- golden rows ---------------------------------------------------------------------------------


def test_roll_log_yields_one_row_per_new_identity_from_its_first_sighting():
    result = load(ROLL)
    assert result.kind == "hosts"
    got = rows(result.table)
    assert [(r["host"], r["ip"], r["source_line"]) for r in got] == [
        ("sandbox-3f9a1c2e", "192.168.10.13", 4),  # the start_sandbox debug line comes first
        ("sandbox-8c2d7b10", "192.168.10.14", 11),
        ("sandbox-51e0aa93", "192.168.10.17", 17),
        ("sandbox-77aa01cd", "192.168.10.13", 18),  # the address re-leased to a new sandbox
    ]
    assert got[3] == {
        "host": "sandbox-77aa01cd",
        "ip": "192.168.10.13",
        "valid_from": ns("2025-12-02T15:02:11Z"),
        "valid_to": None,
        "kind": None,
        "origin": "trajectory",
        "note": f"[ENV_RESET] Success! line; no zone: assumed UTC {ROLL_HINT}",
        "source_format": "roll_rock_textlog",
        "source_path": "tests/data/roll_rock_textlog/log_rank_ENV_MANAGER_0_1.log",
        "source_line": 18,
    }
    assert got[0]["note"] == f"start_sandbox debug line; no zone: assumed UTC {ROLL_HINT}"


def test_roll_log_accounting_and_the_forged_identity_in_an_echoed_response_is_not_taken():
    result = load(ROLL)
    assert_balanced(result)
    assert result.rejects == []
    assert result.stats.skipped == {NO_IDENTITY: 10, REPEAT: 4}
    assert "sandbox-forged" not in {r["host"] for r in rows(result.table)}
    assert result.stats.notes == {f"no zone: assumed UTC {ROLL_HINT}": 4}


def test_zone_option_reads_roll_times_in_the_trainer_zone():
    result = load(ROLL, LoadOptions(zones={"roll_rock_textlog": ZoneInfo("Asia/Shanghai")}))
    first = rows(result.table)[0]
    assert first["valid_from"] == ns("2025-12-02T05:55:41Z")
    assert first["note"] == "start_sandbox debug line; no zone: assumed Asia/Shanghai"


def test_rock_lines_keep_their_offsets_and_ignore_colour_codes():
    result = load(ROCK, LoadOptions(zones={"*": ZoneInfo("America/New_York")}))  # not used
    assert rows(result.table) == [
        {
            "host": "sandbox-3f9a1c2e",
            "ip": "192.168.10.13",
            "valid_from": ns("2025-12-02T05:55:41.315Z"),
            "valid_to": None,
            "kind": None,
            "origin": "trajectory",
            "note": "[ENV_RESET] Success! line",
            "source_format": "roll_rock_textlog",
            "source_path": "tests/data/roll_rock_textlog/rocklet.log",
            "source_line": 2,
        },
        {
            "host": "sandbox-8c2d7b10",
            "ip": "192.168.10.14",
            "valid_from": ns("2025-12-02T05:58:30.007Z"),
            "valid_to": None,
            "kind": None,
            "origin": "trajectory",
            "note": "[SANDBOX_INIT] Final Success! line",
            "source_format": "roll_rock_textlog",
            "source_path": "tests/data/roll_rock_textlog/rocklet.log",
            "source_line": 3,
        },
    ]
    assert result.stats.skipped == {NO_IDENTITY: 2}
    assert_balanced(result)


# --- malformed -----------------------------------------------------------------------------------


def test_traps_reject_exactly_the_unreadable_identity_lines():
    result = load(TRAPS)
    got = {r.location.line: r.reason for r in result.rejects}
    assert got == {
        2: "sandbox IP is not an IP address: 'None'",
        3: "sandbox_id is empty",
        4: "log time: not a valid time: '2025-13-02 13:56:20'",
        5: "sandbox identity line without a ROLL/ROCK log prefix (no time)",
        7: "sandbox identity line in an unknown shape (no IP/sandbox_id pair)",
    }
    assert result.stats.skipped == {"blank line": 1, NO_IDENTITY: 1, REPEAT: 1}
    assert (result.stats.read, result.stats.loaded, result.stats.rejected) == (13, 5, 5)
    assert_balanced(result)


def test_traps_rows_canonicalise_ipv6_default_rock_naive_times_to_shanghai_and_keep_re_leases():
    got = {r["source_line"]: r for r in rows(load(TRAPS).table)}
    assert sorted(got) == [1, 9, 10, 12, 13]
    assert (got[9]["host"], got[9]["ip"]) == ("sandbox-cc000009", "fd00::15")
    assert got[10]["valid_from"] == ns("2025-12-02T05:57:10.25Z")
    assert got[10]["note"] == (
        "[SANDBOX_INIT] Final Success! line; no zone: assumed Asia/Shanghai "
        "(ROCK_TIME_ZONE default; use --tz roll_rock_textlog=ZONE)"
    )
    # A -> B -> A on one address: each change of owner is a row
    assert [(got[n]["host"], got[n]["ip"]) for n in (1, 12, 13)] == [
        ("sandbox-cc000001", "192.168.10.20"),
        ("sandbox-cc000012", "192.168.10.20"),
        ("sandbox-cc000001", "192.168.10.20"),
    ]


def test_the_identity_map_built_from_the_log_follows_the_re_lease():
    identity = build_identity([load(TRAPS).table])
    hosts, _status = resolve(
        identity,
        ["192.168.10.20", "192.168.10.20"],
        np.array([ns("2025-12-02T14:00:00Z"), ns("2025-12-02T14:45:00Z")], dtype=np.int64),
    )
    assert hosts == ["sandbox-cc000001", "sandbox-cc000012"]


def test_the_identity_map_gives_the_address_back_to_its_first_owner():
    identity = build_identity([load(TRAPS).table])
    hosts, _status = resolve(
        identity, ["192.168.10.20"], np.array([ns("2025-12-02T15:30:00Z")], dtype=np.int64)
    )
    assert hosts == ["sandbox-cc000001"]


def test_strict_stops_at_the_first_rejected_line():
    with pytest.raises(StrictRejection, match=rf"^{re.escape(shown(TRAPS))}:2: sandbox IP"):
        load(TRAPS, LoadOptions(strict=True))


# --- sniffing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [ROLL, ROCK, TRAPS], ids=lambda p: p.name)
def test_own_samples_sniff_unmistakably(path):
    source = Source(path, shown(path))
    assert loader.sniff(source.head(), source.name) == 0.95


def test_a_roll_log_whose_head_names_no_sandbox_still_sniffs():
    head = b"\n".join(
        f"[2025-12-02 13:55:0{i}] [pipeline.py (1{i})] [INFO] [DRIVER 0 / 1][PID 7] step {i}".encode()
        for i in range(5)
    )
    assert loader.sniff(head, "log_rank_DRIVER_0_1.log") == 0.7


@pytest.mark.parametrize(
    "content",
    [
        b"2025-12-02 13:55:41,123 - INFO - sweagent - [SANDBOX_INIT] Final Success! - x\n" * 3,
        b"[SANDBOX_INIT] Final Success! - Sandbox started successfully with IP: 1.2.3.4, "
        b"sandbox_id: s\n",
        b"Dec  2 13:55:41 host kernel: [UFW BLOCK] IN=eth0 SRC=1.2.3.4\n" * 3,
        b'{"ts": "2025-12-02T13:55:41Z", "msg": "[SANDBOX_INIT] Final Success!"}\n',
        b"[2025-12-02 13:55:41] plain bracketed line without the rest of the prefix\n" * 3,
        b"LLM_REQUEST_START{}LLM_REQUEST_END{}\n",
    ],
)
def test_near_misses_do_not_sniff(content):
    assert loader.sniff(content, "app.log") < MIN_SCORE


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_sniff_never_raises_on_any_bytes(head):
    assert 0.0 <= loader.sniff(head, "rocklet.log") <= 1.0
