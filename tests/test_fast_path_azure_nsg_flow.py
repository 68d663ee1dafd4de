"""The Azure flow-log loader's column-wise tuple path gives exactly the tuple-by-tuple reader's
rows, notes, rejects (and their order) and stats, whatever the documents (property test); with
``run``'s keep policy it keeps exactly the violations and the anchor sample."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loader_helpers import raised, same

from correlate.errors import CorrelateError
from correlate.keep import KeepPolicy, cut_sample
from correlate.loaders import LoadOptions, LoadResult, azure_nsg_flow
from correlate.sources import Source

V4_TUPLES = [
    "1663146003599,10.0.0.6,52.239.184.180,23956,443,6,O,B,NX,0,0,0,0",
    "1663146022793,10.0.0.6,104.16.218.84,36776,443,6,O,E,NX,22,2217,33,32466",
    "1663145998065,101.33.218.153,10.0.0.6,55188,22,6,I,D,NX,0,0,0,0",
    "1663146009000,10.0.0.6,10.0.1.4,40013,443,6,O,B,NX_NOT_ACCEPTED,0,0,0,0",
    "1663146010,10.0.0.6,198.51.100.7,40014,3333,17,O,C,X,5,600,,",  # seconds: a note
    "1663146010000000,10.0.0.6,198.51.100.7,40015,3333,6,O,C,X,-,-,-,-",  # microseconds
    "1663146010000000000,10.0.0.6,2001:DB8::7,40016,443,6,O,E,NX,1,2,3,4",  # nanoseconds
    " 1663146011000 , 10.0.0.6 ,198.51.100.7, 40017 ,3333, 6 ,O, E ,NX,1, 2 ,3,4",
    "0001663146012000,10.0.0.6,198.51.100.7,00443,0,58,I,B,NX,,,,",
    "99999999999,10.0.0.6,198.51.100.7,1,2,6,O,B,NX,0,0,0,0",  # 1e11 - 1 s: out of range
    "99999999999999999,10.0.0.6,198.51.100.7,1,2,6,O,B,NX,0,0,0,0",  # rounds to 1e17: ns
    "9223372037,10.0.0.6,198.51.100.7,1,2,6,O,B,NX,0,0,0,0",  # seconds out of range
    "9223372036854775806,10.0.0.6,198.51.100.7,1,2,6,O,B,NX,0,0,0,0",  # the last ns
    "9223372036854775807,10.0.0.6,198.51.100.7,1,2,6,O,B,NX,0,0,0,0",
    "10000000000000000000,10.0.0.6,198.51.100.7,1,2,6,O,B,NX,0,0,0,0",
    "1663146003599,10.0.0.6,52.239.184.180,23956,443,6,O,B,NX,0,0,0",  # 12 fields
    "1663146003599,10.0.0.6,52.239.184.180,23956,443,6,O,B",  # 8 fields: v1 only
    "soon,10.0.0.6,198.51.100.77,40007,3333,6,O,D,NX,0,0,0,0",
    ",10.0.0.6,198.51.100.77,40007,3333,6,O,D,NX,0,0,0,0",
    "1764656002000,10.0.0.6,198.51.100.300,40004,3333,6,O,D,NX,0,0,0,0",
    "1764656002000,10.0.0.6,,40004,3333,6,O,D,NX,0,0,0,0",
    "1764656005000,10.0.0.6,198.51.100.77,40008,70000,6,O,D,NX,0,0,0,0",
    "1764656004000,10.0.0.6,198.51.100.77,40006,3333,6,O,X,NX,0,0,0,0",
    "1764656006000,10.0.0.6,198.51.100.77,40009,3333,6,X,D,NX,0,0,0,0",
    "1764656008000,10.0.0.6,203.0.113.9,40012,22,6,O,E,NX,12,-5,3,100",
    "1764656008000,10.0.0.6,203.0.113.9,40012,22,6,O,E,NX,12,99999999999999999999,3,100",
    "",
    42,
    None,
    ["1764656008000"],
]
V4_CONVERTING = [  # refused by the vectorised checks, converted alone: the document goes by tuple
    "1764656008000,10.0.0.6,203.0.113.9,40012,22,6,O,E,NX,12,+5,3,100",
    "1.7646560e12,10.0.0.6,203.0.113.9,40012,22,6,O,E,NX,12,5,3,100",
    "\t1764656008000,10.0.0.6,203.0.113.9,40012,22,6,O,E,NX,12,5,3,100",
]
NSG_TUPLES = [
    "1542110377,10.5.16.4,203.0.113.118,59831,443,T,O,A,B,,,,",
    "1542110379,10.5.16.4,203.0.113.115,44931,443,T,O,A,C,30,16978,24,14008",
    "1542110402,192.0.2.190,10.5.16.4,28746,443,U,I,D,B,,,,",
    "1542110377,10.5.16.4,203.0.113.118,59831,443,T,O,A",  # v1
    "1542110377000,10.5.16.4,203.0.113.118,59831,443,t,O,A,E,1,2,3,4",  # ms: a note
    "1542110377,10.5.16.4,203.0.113.118,59831,443,T,O,A,X,,,,",
    "1542110377,10.5.16.4,203.0.113.118,59831,443,T,O,Q,B,,,,",
    "1542110377,10.5.16.4,203.0.113.118,59831,443,T,O,A,B,,",
    "1542110377,10.5.16.4,203.0.113.118,59831,443,T,O,A,B,,,,,",
    "1542110377,10.5.16.4,203.0.113.118,-1,443,T,O,A,B,,,,",
    "1542110377,10.5.16.4,203.0.113.118,59831,443,T,O,A,B,1,2,3,x",
    {"not": "a string"},
]


def v4_record(groups: list[tuple[str | None, Any]]) -> dict[str, Any]:
    return {
        "time": "2025-12-02T06:15:02.1234567Z",
        "flowLogVersion": 4,
        "macAddress": "6045BD7A1C2E",
        "category": "FlowLogFlowEvent",
        "targetResourceID": "/subscriptions/0/resourceGroups/rg/providers/Microsoft.Network/"
        "virtualNetworks/agents-vnet",
        "flowRecords": {
            "flows": [
                {"aclID": "acl", "flowGroups": [{"rule": r, "flowTuples": t} for r, t in groups]}
            ]
        },
    }


def nsg_record(groups: list[tuple[str | None, Any]], mac: Any = "000D3AF87856") -> dict[str, Any]:
    return {
        "time": "2018-11-13T12:00:35.3899262Z",
        "category": "NetworkSecurityGroupFlowEvent",
        "resourceId": "/SUBSCRIPTIONS/0/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.NETWORK/"
        "NETWORKSECURITYGROUPS/SANDBOX-NSG",
        "properties": {
            "Version": 2,
            "flows": [{"rule": r, "flows": [{"mac": mac, "flowTuples": t}]} for r, t in groups],
        },
    }


ODD_RECORDS = [
    "not a record",
    [1, 2],
    {"category": "NetworkSecurityGroupEvent", "properties": {"flows": []}},
    {"category": "FlowLogFlowEvent", "flowRecords": {"flows": "x"}},
    {"category": "FlowLogFlowEvent", "flowRecords": {"flows": [{"flowGroups": [7]}]}},
    {"properties": {"flows": [{"rule": "r", "flows": [{"mac": 5, "flowTuples": "x"}]}]}},
    {"records": []},
    {"time": "t"},
    nsg_record([("r", NSG_TUPLES[:2])], mac="00-0d-3a-f8-78-56"),
    nsg_record([("r", NSG_TUPLES[:2])], mac=None),
    v4_record([(None, V4_TUPLES[:2])]),
]

tuples_v4 = st.lists(st.sampled_from(V4_TUPLES), min_size=0, max_size=12)
tuples_nsg = st.lists(st.sampled_from(NSG_TUPLES), min_size=0, max_size=12)
rules = st.sampled_from(["DefaultRule_AllowInternetOutBound", "UserRule_DenyMining", " r ", ""])
records = st.one_of(
    st.lists(st.tuples(rules, tuples_v4), min_size=1, max_size=3).map(v4_record),
    st.lists(st.tuples(rules, tuples_nsg), min_size=1, max_size=3).map(nsg_record),
    st.sampled_from(ODD_RECORDS),
)


def load(path: Path, *, fast: bool, monkeypatch: Any, **options: Any) -> LoadResult:
    monkeypatch.setattr(azure_nsg_flow, "TUPLES_COLUMN_WISE", 1 if fast else 10**9)
    return azure_nsg_flow.read(Source(path, path.name), LoadOptions(**options))


def outcomes(path: Path, monkeypatch: Any, **options: Any) -> list[LoadResult]:
    found: list[LoadResult | str] = []
    for fast in (True, False):
        try:
            found.append(load(path, fast=fast, monkeypatch=monkeypatch, **options))
        except CorrelateError as exc:  # strict, or the early stop
            found.append(f"{type(exc).__name__}: {exc}")
    if isinstance(found[0], str) or isinstance(found[1], str):
        assert found[0] == found[1]
        return []
    same(found[0], found[1])
    return found  # type: ignore[return-value]


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    documents=st.lists(st.lists(records, min_size=0, max_size=6), min_size=1, max_size=3),
    converting=st.booleans(),
    unit=st.sampled_from(["auto", "auto", "s", "ms", "ns"]),
    lines=st.booleans(),
    keeps=st.booleans(),
    strict=st.booleans(),
)
def test_column_wise_equals_tuple_by_tuple(
    tmp_path_factory, monkeypatch, documents, converting, unit, lines, keeps, strict
):
    if converting:
        documents[0].append(v4_record([("r", V4_CONVERTING)]))
    folder = tmp_path_factory.mktemp("azure")
    if lines:  # a file of documents, one per line (their records carry the line)
        path = folder / "flows.jsonl"
        path.write_text("\n".join(json.dumps({"records": d}) for d in documents) + "\n")
    else:  # one PT1H.json blob (records carry their index)
        path = folder / "PT1H.json"
        path.write_text(json.dumps({"records": [r for d in documents for r in d]}, indent=1))
    policy = KeepPolicy(actions=("denied",), anchors=2) if keeps else None
    outcomes(path, monkeypatch, epoch_unit=unit, keep=policy, strict=strict)


def test_every_variant_in_one_blob(tmp_path, monkeypatch):
    blob = {
        "records": [
            v4_record([("a", V4_TUPLES), ("b", V4_TUPLES[::-1])]),
            nsg_record([("c", NSG_TUPLES)]),
            *ODD_RECORDS,
        ]
    }
    path = tmp_path / "PT1H.json"
    path.write_text(json.dumps(blob))
    fast, _ = outcomes(path, monkeypatch)
    assert fast.stats.loaded > 20 and fast.stats.rejected > 30
    assert fast.stats.notes  # seconds in v4, milliseconds in NSG
    with_converting = tmp_path / "converting.json"
    blob["records"].append(v4_record([("r", V4_CONVERTING)]))
    with_converting.write_text(json.dumps(blob))
    outcomes(with_converting, monkeypatch)


def test_a_big_compressed_blob_is_read_column_wise(tmp_path, monkeypatch):
    """No tuple of a clean blob is converted alone (gzip streams the same way)."""
    blob = {"records": [v4_record([("r", V4_TUPLES[:9] + V4_TUPLES[10:11])]) for _ in range(500)]}
    path = tmp_path / "PT1H.json.gz"
    path.write_bytes(gzip.compress(json.dumps(blob).encode()))
    calls: list[int] = []
    original = azure_nsg_flow._convert

    def spy(*args: Any) -> Any:
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(azure_nsg_flow, "TUPLES_COLUMN_WISE", 64)
    monkeypatch.setattr(azure_nsg_flow, "_convert", spy)
    result = azure_nsg_flow.read(Source(path, path.name), LoadOptions())
    assert result.stats.loaded == 5_000 and calls == []
    monkeypatch.setattr(azure_nsg_flow, "_convert", original)
    same(result, load(path, fast=False, monkeypatch=monkeypatch))


def test_strict_stops_at_the_same_first_reject(tmp_path, monkeypatch):
    bad = next(t for t in V4_TUPLES if isinstance(t, str) and "198.51.100.300" in t)
    blob = {"records": [v4_record([("r", V4_TUPLES[:4] * 10 + [bad] + V4_TUPLES[:4])])]}
    path = tmp_path / "PT1H.json"
    path.write_text(json.dumps(blob))
    messages = raised(lambda fast: load(path, fast=fast, monkeypatch=monkeypatch, strict=True))
    assert messages[0] == messages[1] and "tuple 41: destination IP is not an IP" in messages[0]


@pytest.mark.parametrize("anchors", [1, 7, 1000])
def test_keep_policy_keeps_violations_and_the_exact_anchor_sample(tmp_path, monkeypatch, anchors):
    blob = {"records": [v4_record([("r", V4_TUPLES[:4])]) for _ in range(300)]}
    path = tmp_path / "PT1H.json"
    path.write_text(json.dumps(blob))
    policy = KeepPolicy(actions=("denied",), anchors=anchors)
    full = load(path, fast=True, monkeypatch=monkeypatch)
    kept = load(path, fast=True, monkeypatch=monkeypatch, keep=policy)
    expected, _ = cut_sample(full.table, policy, {})
    assert kept.table.equals(expected)
    assert kept.stats.read == full.stats.read and kept.stats.loaded == full.stats.loaded
    assert kept.stats.unkept == full.stats.loaded - kept.table.num_rows


def test_a_blob_of_bad_tuples_stops_early_alike(tmp_path, monkeypatch):
    bad = next(t for t in V4_TUPLES if isinstance(t, str) and t.startswith("soon"))
    blob = {"records": [v4_record([("r", [bad] * 150 + V4_TUPLES[:4])])]}
    path = tmp_path / "PT1H.json"
    path.write_text(json.dumps(blob))
    messages = raised(
        lambda fast: load(path, fast=fast, monkeypatch=monkeypatch),
        CorrelateError,
        match="does not look like azure_nsg_flow",
    )
    assert messages[0] == messages[1]
