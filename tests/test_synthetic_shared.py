"""Synthetic incidents with sandboxes behind shared addresses (issue #12): the generator's
structure, ``measure``'s medium/high counts, and the accuracy targets on a shared incident."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from typing import Any

import pytest

from correlate.pipeline import RunOptions, analyse
from correlate.schema import ATTRIBUTIONS, CANDIDATES, FINDINGS, from_columns, plain_rows
from correlate.synthetic import SHARES, Truth, incident, measure, shared_address

NS = 1_000_000_000

# --- the default incident is what it was before shared addresses ----------------------------------
# Digests computed on main at 68d8ad3, before ``share`` existed. Only these columns are hashed,
# so that a column added to a schema later does not count as a change of the generator.

DIGEST_COLUMNS = {
    "events": [
        "event_id",
        "ts",
        "ts_end",
        "src_ip",
        "src_port",
        "src_nat_ip",
        "dst_ip",
        "dst_port",
        "protocol",
        "direction",
        "action",
        "action_raw",
        "rule",
        "signature",
        "category",
        "dst_domain",
        "app",
        "bytes_out",
        "bytes_in",
        "packets_out",
        "packets_in",
        "observer",
        "host_hint",
        "flow_key",
        "ts_note",
        "source_format",
        "source_path",
        "source_line",
    ],
    "calls": [
        "call_id",
        "run_id",
        "episode_id",
        "step",
        "ts_start",
        "ts_end",
        "ts_kind",
        "tool",
        "command",
        "arguments",
        "output",
        "exit_code",
        "is_error",
        "host",
        "host_ip",
        "model",
        "train_step",
        "ts_note",
        "source_format",
        "source_path",
        "source_line",
    ],
    "hosts": [
        "host",
        "ip",
        "valid_from",
        "valid_to",
        "kind",
        "origin",
        "note",
        "source_format",
        "source_path",
        "source_line",
    ],
}


def digest(loaded, truth: Truth) -> str:
    h = hashlib.sha256()
    for name, columns in DIGEST_COLUMNS.items():
        for row in plain_rows(getattr(loaded, name)):
            h.update(json.dumps([row.get(c) for c in columns], sort_keys=True).encode())
        h.update(b"|")
    h.update(
        json.dumps(sorted((list(k), v) for k, v in truth.causes.items()), default=str).encode()
    )
    h.update(json.dumps(sorted(map(list, truth.named))).encode())
    h.update(repr(truth.offset_s).encode())
    return h.hexdigest()


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"seed": 0}, "0bd50992161a530021a5e8d31c2e03d9ee406d0f55dbec8ac2a99da9213089a2"),
        (
            {"seed": 0, "identity": False},
            "07aafe6cee3ff2165d41298a6fbde510cf39f33276e1538d50feee5297aadf07",
        ),
        (
            {"seed": 0, "causal": False},
            "ed1ab0b9308f0e7f81e443586cd4f887b9639e659a4257c8a26e93287e2763e9",
        ),
        (
            {"seed": 3, "sandboxes": 64, "hours": 2.0, "plants": 48, "offset_s": 1.5},
            "74d47ef855127fa24033791d7fc983d942864912083296b55d170ff50152a05c",
        ),
    ],
)
def test_default_incident_is_unchanged(kwargs: dict[str, object], expected: str) -> None:
    loaded, truth = incident(**kwargs)  # type: ignore[arg-type]
    assert digest(loaded, truth) == expected
    assert digest(*incident(**kwargs, share=None)) == expected  # type: ignore[arg-type]


def test_default_strays_are_the_non_sandbox_conversations() -> None:
    _, truth = incident(seed=0)
    assert truth.non_sandbox == {k for k in truth.causes if k[0].startswith("10.99.")}
    assert len(truth.non_sandbox) == 4


# --- structure of shared incidents -----------------------------------------------------------------

SCENARIOS = [("docker_host", 4), ("docker_host", 8), ("docker_host", 16), ("node", 8), ("nat", 16)]


def _shared(share: str, per_address: int, **kwargs: object):
    options: dict[str, object] = {
        "seed": 1,
        "sandboxes": 32,
        "hours": 0.25,
        "plants": 8,
        "share": share,
        "per_address": per_address,
    }
    options.update(kwargs)
    return incident(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(("share", "per_address"), SCENARIOS)
def test_each_shared_address_is_held_by_its_sandboxes_at_the_same_moment(
    share: str, per_address: int
) -> None:
    loaded, _ = _shared(share, per_address)
    hosts = plain_rows(loaded.hosts)
    calls = plain_rows(loaded.calls)
    groups = 32 // per_address
    by_ip: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in hosts:
        if row["kind"] == share:
            by_ip[str(row["ip"])].append(row)
    assert sorted(by_ip) == sorted(shared_address(share, g) for g in range(groups))
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for c in calls:
        first[c["host"]] = min(first.get(c["host"], c["ts_start"]), c["ts_start"])
        last[c["host"]] = max(last.get(c["host"], c["ts_end"]), c["ts_end"])
    for g in range(groups):
        rows = by_ip[shared_address(share, g)]
        members = [f"sbx-{s:03d}" for s in range(g * per_address, (g + 1) * per_address)]
        assert sorted(r["host"] for r in rows) == members
        assert all(r["origin"] == "inventory" for r in rows)
        # overlapping validity: every row holds the address at one common moment ...
        assert max(r["valid_from"] for r in rows) < min(r["valid_to"] for r in rows)
        # ... and the sandboxes are busy at the same moment, each inside its validity
        assert max(first[h] for h in members) < min(last[h] for h in members)
        for r in rows:
            assert r["valid_from"] <= first[r["host"]] and last[r["host"]] < r["valid_to"]
    kinds = {row["kind"] for row in hosts}
    own: dict[str, str] = {}
    if share == "nat":
        assert kinds == {"nat", "sandbox"}
        own = {r["host"]: r["ip"] for r in hosts if r["kind"] == "sandbox"}
        assert len(own) == len(set(own.values())) == 32
        assert not set(own.values()) & set(by_ip)
    else:
        assert kinds == {share}
        assert len(hosts) == 32
    # calls report the shared address (Docker host, node), or their own behind a NAT gateway
    for c in calls:
        group = int(c["host"][4:]) // per_address
        expected = own[c["host"]] if share == "nat" else shared_address(share, group)
        assert c["host_ip"] == expected
    # the firewall sees only shared addresses (and the strays' unknown hosts)
    events = plain_rows(loaded.events)
    for e in events:
        assert e["src_ip"] in by_ip or e["src_ip"].startswith("10.99."), e
        if share == "nat" and e["src_ip"] in by_ip:
            assert e["src_nat_ip"] == e["src_ip"]
    assert {e["src_ip"] for e in events} >= set(by_ip)


@pytest.mark.parametrize(("share", "per_address"), SCENARIOS)
def test_shared_addresses_own_hosts_send_violations_no_call_caused(
    share: str, per_address: int
) -> None:
    loaded, truth = _shared(share, per_address)
    shared = {shared_address(share, g) for g in range(32 // per_address)}
    own_host = {k for k in truth.non_sandbox if k[0] in shared}
    assert {k[0] for k in own_host} == shared  # one per shared address by default
    assert all(truth.causes[k] is None for k in truth.non_sandbox)
    assert {k for k in truth.non_sandbox if k[0].startswith("10.99.")}  # unknown hosts still there
    sent: dict[tuple[str, str, int], int] = defaultdict(int)
    for e in plain_rows(loaded.events):
        sent[(e["src_ip"], e["dst_ip"], e["dst_port"])] += 1
    assert all(sent[k] == 2 for k in truth.non_sandbox)
    _, truth = _shared(share, per_address, host_strays=11)
    assert len({k for k in truth.non_sandbox if k[0] in shared}) == 11


@pytest.mark.parametrize("share", SHARES)
def test_a_shared_incident_has_the_default_incidents_sandboxes_calls_and_plants(
    share: str,
) -> None:
    options = {"seed": 4, "sandboxes": 16, "hours": 0.25, "plants": 8}
    default, default_truth = incident(**options)  # type: ignore[arg-type]
    loaded, truth = incident(**options, share=share, per_address=4)  # type: ignore[arg-type]
    keep = [c for c in default.calls.column_names if c != "host_ip"]
    assert loaded.calls.select(keep).equals(default.calls.select(keep))
    planted = sorted(v for v in default_truth.causes.values() if v is not None)
    assert sorted(v for v in truth.causes.values() if v is not None) == planted
    assert len(truth.named) == len(default_truth.named)
    assert loaded.events.num_rows == default.events.num_rows + 2 * 4  # 4 addresses, 2 events each


def test_bad_share_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="share"):
        incident(share="bridge")
    with pytest.raises(ValueError, match="per_address"):
        incident(share="node", per_address=0)


# --- measure at medium/high confidence -----------------------------------------------------------


def test_measure_counts_only_medium_and_high_attributions() -> None:
    a, b = ("10.30.0.10", "1.1.1.1", 22), ("10.30.0.10", "2.2.2.2", 22)
    c = ("10.30.0.10", "3.3.3.3", 3333)
    s = ("10.30.0.10", "198.18.0.1", 5000)
    truth = Truth(
        offset_s=0.0,
        causes={a: "ca", b: "cb", c: "cc", s: None},
        named={a, c},
        non_sandbox={s},
    )
    # a: right at high; b: right but low (unsure); c: split in two, right at high then wrong at
    # medium; s: a stray pinned on a call at medium.
    findings = [
        (1, a, "ca", "high"),
        (2, b, "cb", "low"),
        (3, c, "cc", "high"),
        (4, c, "cx", "medium"),
        (5, s, "cy", "medium"),
    ]
    table = from_columns(
        {
            "conversation_id": [f[0] for f in findings],
            "src_ip": [f[1][0] for f in findings],
            "dst_ip": [f[1][1] for f in findings],
            "dst_port": [f[1][2] for f in findings],
            "call_id": [f[2] for f in findings],
            "confidence": [f[3] for f in findings],
        },
        FINDINGS,
    )
    attributions = from_columns(
        {
            "event_id": [10, 20, 30, 40, 50, 51],
            "conversation_id": [1, 2, 3, 4, 5, 5],
            "src_ip": [a[0]] * 6,
            "dst_ip": [a[1], b[1], c[1], c[1], s[1], s[1]],
            "dst_port": [a[2], b[2], c[2], c[2], s[2], s[2]],
            "how": ["direct"] * 5 + ["inherited"],
            "call_id": ["ca", "cb", "cc", "cx", "cy", "cy"],
            "confidence": ["high", "low", "high", "medium", "medium", "medium"],
        },
        ATTRIBUTIONS,
    )
    candidates = from_columns(
        {
            "event_id": [10, 20, 30, 40, 50],
            "call_id": ["ca", "cb", "cc", "cx", "cy"],
            "rank": [1] * 5,
        },
        CANDIDATES,
    )
    acc = measure(table, candidates, attributions, truth, None)
    assert (acc.planted, acc.attributed, acc.correct, acc.false_attributions) == (3, 5, 3, 2)
    assert acc.named_planted == 2
    assert (acc.confident_attributed, acc.confident_correct) == (4, 2)
    assert acc.confident_precision == pytest.approx(0.5)
    assert acc.confident_recall == pytest.approx(1 / 3)  # only a: c's second part is wrong
    assert acc.confident_named_recall == pytest.approx(0.5)
    assert acc.named_top1 == pytest.approx(2 / 3)  # rows of a and c: the second part of c misses
    assert (acc.non_sandbox_violations, acc.non_sandbox_confident) == (2, 2)
    empty = measure(
        FINDINGS.empty_table(), CANDIDATES.empty_table(), ATTRIBUTIONS.empty_table(), truth, None
    )
    assert empty.confident_precision == 1.0 and empty.confident_recall == 0.0
    assert empty.confident_named_recall == 0.0 and empty.non_sandbox_confident == 0


# --- the targets of issue #12 ----------------------------------------------------------------------


@pytest.mark.parametrize(("share", "per_address"), [("docker_host", 8), ("node", 8), ("nat", 16)])
@pytest.mark.parametrize("seed", [0, 1])
def test_accuracy_targets_on_a_shared_address_incident(
    share: str, per_address: int, seed: int
) -> None:
    """Issue #12's targets, with an inventory listing every sandbox on each address: at medium or
    high confidence, precision and recall (over conversations whose causing call names the
    destination) >= 0.99, the right call ranked first for >= 0.99 of those, and no violation
    from a host that is no sandbox attributed."""
    loaded, truth = incident(
        seed=seed, sandboxes=32, hours=0.5, plants=12, share=share, per_address=per_address
    )
    result = analyse(loaded, RunOptions(offset_auto=True))
    acc = measure(
        result.findings,
        result.candidates,
        result.attributions,
        truth,
        result.applied_offsets.get("synthetic_firewall"),
    )
    assert acc.named_planted >= 6, acc
    assert acc.confident_precision >= 0.99, acc
    assert acc.confident_named_recall is not None and acc.confident_named_recall >= 0.99, acc
    assert acc.named_top1 is not None and acc.named_top1 >= 0.99, acc
    assert acc.non_sandbox_violations > 0 and acc.non_sandbox_confident == 0, acc
