"""Side-by-side performance benchmark of correlate against its peers (not part of the tests).

    python benchmarks/generate.py --size S --out /tmp/bench-S
    python benchmarks/run.py --size S --data /tmp/bench-S [--only floor,duckdb,...] [--results FILE]
    python benchmarks/generate.py --scenario seed --size S --out /tmp/bench-seed-S
    python benchmarks/run.py --scenario seed --size S --data /tmp/bench-seed-S [--cli-args "..."]

Each method runs in its own subprocess on the same files; the parent measures its wall time
(``time.perf_counter`` around the child, so interpreter start-up and imports count), its CPU time
(user + system) and its peak RSS (``os.wait4``'s ``ru_maxrss``). ``--repeat N`` runs each
method N times and keeps the fastest wall, the least CPU and the largest RSS (the machine is
shared). The correlate code measured is whatever ``import correlate`` finds (set ``PYTHONPATH``
to measure another tree); the results section records where that was.

Scenario ``vpc`` (AWS VPC Flow Logs text + OTLP/JSON, see generate.py):

- ``floor``: ``pyarrow.csv.read_csv`` of the flow file (space-delimited, header line): the raw
  parse cost with no logic. No pairs.
- ``loader``: correlate's ``aws_vpc_flow`` loader alone on the flow file (all rows, normalised).
- ``duckdb``: one SQL statement reading the raw files: the flows with ``read_csv``, the OTLP JSON
  traces with ``read_json`` (spans and attributes unnested in SQL), the inventory CSV.
- ``duckdb_parquet``: for reference only, the earlier DuckDB peer: the flows as in ``duckdb``, but
  the calls come from ``calls.parquet``, which the generator extracted from the OTLP *untimed*,
  and the identity from the inventory alone.
- ``pandas``: ``pandas.read_csv`` of everything, the same untimed calls Parquet, merge of
  violations and calls on host, filter by window.

Scenario ``seed`` (Alibaba Cloud Firewall SLS JSON lines + OTLP/JSON, shaped like issue 11's seed):

- ``floor``: ``pyarrow.json.read_json`` of the CFW file with an explicit schema of the 26 fields
  correlate's ``alibaba_cfw`` loader reads (all strings, as SLS gives them). No pairs.
- ``loader``: correlate's ``alibaba_cfw`` loader alone on the CFW file.
- ``duckdb``: one SQL statement reading the raw CFW JSON lines (``read_json``, 6 columns), the
  raw OTLP JSON and the inventory CSV.

Both scenarios:

- ``library``: ``correlate.pipeline.load_inputs`` + ``analyse`` on the firewall file, the OTLP
  JSON traces and the inventory.
- ``cli``: ``correlate run -q FIREWALL TRACES --inventory INV -o OUT`` plus ``--cli-args``: the
  whole job including scoring, attribution and the Parquet report. The default extra arguments
  are ``--permutations 0`` for ``vpc`` (as its earlier results) and none for ``seed`` (the
  permutation statistics run, as in the issue's measurement).

What the DuckDB statements ask is what correlate's join asks (pipeline.analyse with the default
options): violations are verdicts correlate normalises to denied or alerted, on traffic that is
not inbound; the source is ``src_private_ip`` when present (CFW); a violation's sandbox is the
host the identity map gives for its source address, where identity is the inventory plus each
OTLP resource's (``host.name``, ``host.ip``), and an address two hosts claim maps to nobody; a
call's sandbox is its resource's ``host.name`` (else ``container.name``, ``container.id``); the
window is ``start - 10 s <= ts <= max(end, start) + 30 s``, both ends closed. Blank values
(empty, whitespace, ``-``) are NULL as in correlate's loaders. Not expressed (the generated data
has none): identity validity times and address reuse, calls found by ``host.ip`` alone,
snake_case OTLP keys, non-string values of the attributes used, non-integer epoch strings,
blank lines.

Line numbers: DuckDB 2.0's JSON and CSV readers give none (no ``file_row_number`` for them), so
the statements number rows with ``row_number() OVER ()``, which DuckDB plans as a streaming window
operator that requires its input in source order, so rows are numbered in file order (blank lines
are not rows: the generated files have none); the flow file's header line is added back. The
numbering is part of the timed statement (on seed M it costs nothing measurable: a filtered count
of the CFW file takes 1.0-1.2 s with or without it), and the pairs check proves it right.

Every method that joins writes its candidate pairs (firewall-file line, call id); correlate's come
from its candidates table. The parent compares the count and an order-independent checksum (sum
of 64-bit BLAKE2b hashes of ``line\\tcall_id`` modulo 2**64) and stops with an error if any differ.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BEFORE_NS = 10 * 10**9
AFTER_NS = 30 * 10**9


@dataclass(frozen=True)
class Paths:
    """The generated files of one data directory."""

    network: Path
    calls: Path
    inventory: Path
    calls_parquet: Path


@dataclass(frozen=True)
class Scenario:
    """A scenario's firewall file, its methods and the CLI's default extra arguments."""

    network: str
    header_lines: int
    methods: tuple[str, ...]
    cli_args: tuple[str, ...]
    describe: str

    def paths(self, data: Path) -> Paths:
        """Where the generator put this scenario's files under ``data``."""
        return Paths(
            network=data / self.network,
            calls=data / "calls" / "traces.jsonl",
            inventory=data / "inventory.csv",
            calls_parquet=data / "calls.parquet",
        )


SCENARIOS = {
    "vpc": Scenario(
        network="flows/flows.log",
        header_lines=1,
        methods=("floor", "loader", "duckdb", "duckdb_parquet", "pandas", "library", "cli"),
        cli_args=("--permutations", "0"),
        describe="AWS VPC flow text",
    ),
    "seed": Scenario(
        network="cfw/cloudfirewall_access_log.jsonl",
        header_lines=0,
        methods=("floor", "loader", "duckdb", "library", "cli"),
        cli_args=(),
        describe="Alibaba CFW JSON lines",
    ),
}

# --- SQL shared by the DuckDB peers ------------------------------------------------------------

ATTRIBUTES = "STRUCT(key VARCHAR, value STRUCT(stringValue VARCHAR))[]"
OTLP_COLUMNS = {
    "resourceSpans": (
        f"STRUCT(resource STRUCT(attributes {ATTRIBUTES}), scopeSpans STRUCT(spans STRUCT("
        "name VARCHAR, spanId VARCHAR, startTimeUnixNano VARCHAR, endTimeUnixNano VARCHAR, "
        f"attributes {ATTRIBUTES})[])[])[]"
    )
}
CFW_FIELDS = (
    *("start_time", "__time__", "end_time", "src_ip", "src_private_ip", "src_port", "dst_ip"),
    *("dst_port", "ip_protocol", "proto", "direction", "rule_result", "acl_rule_id", "log_type"),
    *("ips_rule_name_en", "ips_rule_name", "attack_type_name_en", "attack_type_name", "domain"),
    *("app_name", "out_packet_bytes", "in_packet_bytes", "out_packet_count", "in_packet_count"),
    *("cloud_instance_id", "src_instance_id"),
)
"""Every field correlate's alibaba_cfw loader reads."""
CFW_VIOLATION = ("drop", "deny", "block", "alert")
"""CFW verdicts correlate normalises to denied or alerted (its default violation actions)."""


def blank_null(expr: str) -> str:
    """SQL: ``expr`` trimmed, NULL when blank (empty or ``-``), as ``fields.is_blank``."""
    return f"nullif(nullif(trim({expr}), ''), '-')"


def attr(items: str, key: str) -> str:
    """SQL: the string value of OTLP attribute ``key`` in list ``items`` (the last one wins)."""
    return blank_null(f"list_filter({items}, lambda a: a.key = '{key}')[-1].value.stringValue")


def columns_sql(columns: dict[str, str]) -> str:
    """SQL: a ``columns={...}`` argument of DuckDB's readers."""
    return "{" + ", ".join(f"'{k}': '{v}'" for k, v in columns.items()) + "}"


def calls_sql(traces: Path) -> str:
    """CTEs ending in ``calls`` (call_id, host, host_ip, ts_start, ts_end ns).

    ``calls`` is used twice (identity and join), so it is materialised: the OTLP file is parsed
    once. As the otlp_json loader: a tool call is a span whose ``gen_ai.operation.name`` is
    ``execute_tool``, or that has none and a name starting ``execute_tool``; ``call_id`` is
    ``gen_ai.tool.call.id``, else the span id in lower case; an end before the start counts as
    no end, and the window's right edge is ``max(end, start)``.
    """
    op = attr("sp.attributes", "gen_ai.operation.name")
    return f"""
        resources AS (
            SELECT unnest(resourceSpans) AS r
            FROM read_json('{traces}', format='newline_delimited',
                           columns={columns_sql(OTLP_COLUMNS)})
        ), scopes AS (
            SELECT r.resource.attributes AS ra, unnest(r.scopeSpans) AS ss FROM resources
        ), spans AS (
            SELECT ra, unnest(ss.spans) AS sp FROM scopes
        ), calls AS MATERIALIZED (
            SELECT
                coalesce({attr("sp.attributes", "gen_ai.tool.call.id")}, lower(sp.spanId))
                    AS call_id,
                coalesce({attr("ra", "host.name")}, {attr("ra", "container.name")},
                         {attr("ra", "container.id")}, {attr("sp.attributes", "host.name")})
                    AS host,
                {attr("ra", "host.ip")} AS host_ip,
                CAST(sp.startTimeUnixNano AS BIGINT) AS ts_start,
                greatest(coalesce(CAST({blank_null("sp.endTimeUnixNano")} AS BIGINT), ts_start),
                         ts_start) AS ts_end
            FROM spans
            WHERE CASE WHEN {op} IS NOT NULL THEN {op} = 'execute_tool'
                       ELSE starts_with(sp.name, 'execute_tool') END
        )"""


def identity_sql(inventory: Path) -> str:
    """CTE ``ident`` (ip, host): inventory rows plus the traces' (host.name, host.ip), one owner."""
    return f"""
        ident AS (
            SELECT ip, min(host) AS host FROM (
                SELECT host, ip FROM read_csv('{inventory}', header=true,
                                              columns={{'host': 'VARCHAR', 'ip': 'VARCHAR'}})
                UNION
                SELECT host, host_ip FROM calls WHERE host IS NOT NULL AND host_ip IS NOT NULL
            ) GROUP BY ip HAVING count(DISTINCT host) = 1
        )"""


def pairs_sql(out: Path) -> str:
    """The keyed window join of CTE ``v`` (line, host, ts ns) with ``calls``, copied to ``out``."""
    return f"""
        SELECT v.line, c.call_id FROM v JOIN calls c
          ON v.host = c.host AND v.ts >= c.ts_start - {BEFORE_NS} AND v.ts <= c.ts_end + {AFTER_NS}
        ) TO '{out}' (FORMAT parquet)"""


def run_duckdb(statement: str, out: Path) -> int:
    """Run one statement on all cores; the number of pairs it wrote to ``out``."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads={os.cpu_count() or 1}")
    con.execute(statement)
    row = con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()
    assert row is not None
    return int(row[0])


def vpc_flows_sql(flows: Path) -> str:
    """CTEs ``f`` (the flow file's columns the join needs, with line numbers) and ``v``."""
    return f"""
        f AS (
            SELECT row_number() OVER () + 1 AS line, srcaddr, start, action, "flow-direction" AS dir
            FROM read_csv('{flows}', delim=' ', header=true, nullstr='-', auto_detect=true)
        ), v AS (
            SELECT f.line, ident.host, f.start * 1000000000 AS ts
            FROM f JOIN ident ON f.srcaddr = ident.ip
            WHERE f.action = 'REJECT' AND coalesce(f.dir, '') <> 'ingress'
        )"""


# --- children: scenario vpc --------------------------------------------------------------------


def child_vpc_floor(p: Paths, out: Path) -> int:
    """The raw parse of the flow file with pyarrow's CSV reader; its row count."""
    import pyarrow.csv as pv

    table = pv.read_csv(
        p.network,
        parse_options=pv.ParseOptions(delimiter=" "),
        read_options=pv.ReadOptions(block_size=1 << 24),
    )
    return table.num_rows


def child_vpc_loader(p: Paths, out: Path) -> int:
    """correlate's aws_vpc_flow loader alone; the rows it loaded."""
    from correlate.loaders import LoadOptions, aws_vpc_flow
    from correlate.sources import Source

    result = aws_vpc_flow.read(Source(p.network, str(p.network)), LoadOptions())
    assert result.stats.balanced
    return result.table.num_rows


def child_vpc_duckdb(p: Paths, out: Path) -> int:
    """One DuckDB statement over the raw flows, OTLP traces and inventory; its pairs."""
    return run_duckdb(
        f"COPY (WITH {calls_sql(p.calls)}, {identity_sql(p.inventory)}, "
        f"{vpc_flows_sql(p.network)} {pairs_sql(out)}",
        out,
    )


def child_vpc_duckdb_parquet(p: Paths, out: Path) -> int:
    """Reference only: the calls from the generator's ``calls.parquet`` (extraction untimed)."""
    inventory = f"""
        ident AS (SELECT host, ip FROM read_csv('{p.inventory}', header=true)),
        calls AS (SELECT call_id, host, ts_start, greatest(ts_end, ts_start) AS ts_end
                  FROM read_parquet('{p.calls_parquet}'))"""
    return run_duckdb(f"COPY (WITH {inventory}, {vpc_flows_sql(p.network)} {pairs_sql(out)}", out)


def child_vpc_pandas(p: Paths, out: Path) -> int:
    """pandas: the flows, the untimed calls Parquet, a merge on host; its pairs."""
    import pandas as pd

    flows = pd.read_csv(p.network, sep=" ", na_values=["-"], keep_default_na=False)
    flows["line"] = flows.index + 2
    inv = pd.read_csv(p.inventory)
    calls = pd.read_parquet(p.calls_parquet)
    v = flows[(flows["action"] == "REJECT") & (flows["flow-direction"] != "ingress")]
    v = v.merge(inv, left_on="srcaddr", right_on="ip")
    v = v.assign(ts=v["start"] * 1_000_000_000)[["line", "host", "ts"]]
    m = v.merge(calls, on="host")
    end = m[["ts_end", "ts_start"]].max(axis=1)
    m = m[(m["ts"] >= m["ts_start"] - BEFORE_NS) & (m["ts"] <= end + AFTER_NS)]
    m[["line", "call_id"]].to_parquet(out)
    return len(m)


# --- children: scenario seed -------------------------------------------------------------------


def child_seed_floor(p: Paths, out: Path) -> int:
    """The raw parse of the CFW file with pyarrow's JSON reader (the loader's 26 fields)."""
    import pyarrow as pa
    import pyarrow.json as pj

    schema = pa.schema([(name, pa.string()) for name in CFW_FIELDS])
    table = pj.read_json(
        p.network,
        read_options=pj.ReadOptions(block_size=1 << 24),
        parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
    )
    return table.num_rows


def child_seed_loader(p: Paths, out: Path) -> int:
    """correlate's alibaba_cfw loader alone; the rows it loaded."""
    from correlate.loaders import LoadOptions, alibaba_cfw
    from correlate.sources import Source

    result = alibaba_cfw.read(Source(p.network, str(p.network)), LoadOptions())
    assert result.stats.balanced
    return result.table.num_rows


def child_seed_duckdb(p: Paths, out: Path) -> int:
    """One DuckDB statement over the raw CFW lines, OTLP traces and inventory; its pairs."""
    columns = {c: "VARCHAR" for c in ("start_time", "__time__", "src_ip", "src_private_ip")}
    columns |= {"direction": "VARCHAR", "rule_result": "VARCHAR"}
    verdicts = ", ".join(f"'{v}'" for v in CFW_VIOLATION)
    firewall = f"""
        fw AS (
            SELECT row_number() OVER () AS line, *
            FROM read_json('{p.network}', format='newline_delimited',
                           columns={columns_sql(columns)})
        ), v AS (
            SELECT fw.line, ident.host,
                   CAST(coalesce({blank_null("fw.start_time")}, {blank_null("fw.__time__")})
                        AS BIGINT) * 1000000000 AS ts
            FROM fw JOIN ident
              ON coalesce({blank_null("fw.src_private_ip")}, {blank_null("fw.src_ip")}) = ident.ip
            WHERE lower(trim(fw.rule_result)) IN ({verdicts})
              AND coalesce(lower(trim(fw.direction)), '') <> 'in'
        )"""
    return run_duckdb(
        f"COPY (WITH {calls_sql(p.calls)}, {identity_sql(p.inventory)}, {firewall} "
        f"{pairs_sql(out)}",
        out,
    )


# --- children: both scenarios ------------------------------------------------------------------


def child_library(p: Paths, out: Path) -> int:
    """correlate as a library: load_inputs + analyse; the pairs of its candidates table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from correlate.pipeline import RunOptions, analyse, load_inputs

    options = RunOptions()
    loaded = load_inputs([str(p.network), str(p.calls)], options, inventories=[str(p.inventory)])
    result = analyse(loaded, options)
    c = result.candidates
    pq.write_table(
        pa.table({"line": c.column("event_source_line"), "call_id": c.column("call_id")}), out
    )
    return c.num_rows


Child = Callable[[Paths, Path], int]
CHILDREN: dict[str, dict[str, Child]] = {
    "vpc": {
        "floor": child_vpc_floor,
        "loader": child_vpc_loader,
        "duckdb": child_vpc_duckdb,
        "duckdb_parquet": child_vpc_duckdb_parquet,
        "pandas": child_vpc_pandas,
        "library": child_library,
    },
    "seed": {
        "floor": child_seed_floor,
        "loader": child_seed_loader,
        "duckdb": child_seed_duckdb,
        "library": child_library,
    },
}
"""Methods run as ``run.py --_child``; ``cli`` runs the correlate command itself."""


# --- parent -----------------------------------------------------------------------------------


def checksum(pairs: Path) -> tuple[int, str]:
    """(count, order-independent checksum) of a pairs Parquet file."""
    import pyarrow.parquet as pq

    table = pq.read_table(pairs)
    total = 0
    lines = table.column("line").to_pylist()
    ids = table.column("call_id").to_pylist()
    for line, call in zip(lines, ids, strict=True):
        digest = hashlib.blake2b(f"{line}\t{call}".encode(), digest_size=8).digest()
        total = (total + int.from_bytes(digest, "little")) % 2**64
    return len(lines), f"{total:016x}"


def measure(
    method: str,
    scenario: str,
    data: Path,
    cli_args: list[str],
    workdir: Path,
) -> dict[str, Any]:
    """Run one method in a child process; its wall time, peak RSS and pairs (or row count)."""
    p = SCENARIOS[scenario].paths(data)
    pairs = workdir / f"{method}.pairs.parquet"
    report = workdir / "cli.parquet"
    if method == "cli":
        exe = Path(sys.executable).with_name("correlate")
        cmd = [str(exe), "run", "-q", *cli_args]
        cmd += [str(p.network), str(p.calls), "--inventory", str(p.inventory), "-o", str(report)]
    else:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--scenario", scenario]
        cmd += ["--data", str(data), "--_child", method, "--_out", str(pairs)]
    out_path, err_path = workdir / f"{method}.stdout", workdir / f"{method}.stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    stdout, stderr = out_path.read_text(errors="replace"), err_path.read_text(errors="replace")
    if code != 0:
        raise SystemExit(f"{method} failed ({code}):\n{stdout[-2000:]}\n{stderr[-4000:]}")
    row: dict[str, Any] = {
        "method": method,
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }
    if method == "cli":
        import pyarrow as pa
        import pyarrow.parquet as pq

        c = pq.read_table(report.with_name("cli.candidates.parquet"))
        pq.write_table(
            pa.table({"line": c.column("event_source_line"), "call_id": c.column("call_id")}),
            pairs,
        )
    if pairs.exists():
        row["pairs"], row["checksum"] = checksum(pairs)
    else:
        row["rows"] = int(stdout.strip().splitlines()[-1])
    return row


def machine() -> dict[str, str]:
    """The machine and library versions, for the results section."""
    import duckdb
    import pandas
    import pyarrow

    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    except OSError:
        pass
    spec = importlib.util.find_spec("correlate")
    origin = Path(spec.origin).parent if spec and spec.origin else "?"
    return {
        "cpus (nproc)": str(os.cpu_count()),
        "RAM": mem,
        "CPU": model,
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "pyarrow": pyarrow.__version__,
        "duckdb": duckdb.__version__,
        "pandas": pandas.__version__,
        "correlate imported from": str(origin),
    }


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (on a shared machine: how noisy a run was)."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def count_lines(path: Path) -> int:
    """Newlines in a file, read in 16 MiB blocks."""
    n = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 24):
            n += block.count(b"\n")
    return n


def best_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One method's repeated runs as one row: the fastest wall time, the least CPU time, the
    largest peak RSS, every wall time; the answers must not change between runs."""
    if len({(r.get("pairs"), r.get("checksum"), r.get("rows")) for r in runs}) > 1:
        raise SystemExit(f"{runs[0]['method']}: answers changed between runs: {runs}")
    best = dict(min(runs, key=lambda r: float(r["wall_s"])))
    best["cpu_s"] = min(float(r["cpu_s"]) for r in runs)
    best["peak_rss_mb"] = max(float(r["peak_rss_mb"]) for r in runs)
    best["walls"] = [round(float(r["wall_s"]), 2) for r in runs]
    return best


def table(rows: list[dict[str, Any]], scenario: str, p: Paths, repeat: int = 1) -> str:
    """The Markdown table of one run, with its one-line preamble."""
    spec = SCENARIOS[scenario]
    n_records = count_lines(p.network) - spec.header_lines
    size_mb = p.network.stat().st_size / 1e6
    calls_mb = p.calls.stat().st_size / 1e6
    by = {r["method"]: r for r in rows}
    duck = by.get("duckdb", {}).get("wall_s")
    floor = by.get("floor", {}).get("wall_s")
    out = [
        f"firewall ({spec.describe}): {n_records:,} records, {size_mb:,.0f} MB; "
        f"calls (OTLP JSON): {calls_mb:,.0f} MB; rows/s and MB/s are over the firewall file"
        + "; CPU s is user + system time of the child"
        + (
            f"; each method run {repeat} times: wall is the fastest run, CPU the least, peak RSS "
            "the largest"
            if repeat > 1
            else ""
        ),
        "",
        "| method | wall s | CPU s | rows/s | MB/s | peak RSS MiB | x DuckDB | x floor | pairs "
        "| checksum |" + (" all walls s |" if repeat > 1 else ""),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|" + ("---|" if repeat > 1 else ""),
    ]
    for r in rows:
        wall = float(r["wall_s"])
        rss = float(r["peak_rss_mb"])
        ratio_duck = f"{wall / float(duck):.2f}" if duck else "-"
        ratio_floor = f"{wall / float(floor):.2f}" if floor else "-"
        out.append(
            f"| {r['method']} | {wall:.2f} | {float(r['cpu_s']):.2f} | {n_records / wall:,.0f} | "
            f"{size_mb / wall:,.1f} | "
            f"{rss:,.0f} | {ratio_duck} | {ratio_floor} | {r.get('pairs', '-')} | "
            f"{r.get('checksum', '-')} |"
            + (f" {', '.join(map(str, r['walls']))} |" if repeat > 1 else "")
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="vpc")
    parser.add_argument("--size", choices=("XS", "S", "M"), default="S")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--only", help="comma-separated methods (default: all of the scenario's)")
    parser.add_argument(
        "--cli-args",
        help="extra arguments of `correlate run` for the cli method "
        "(default: --permutations 0 for vpc, none for seed)",
    )
    parser.add_argument("--note", help="added to the results section's heading")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per method (the table keeps the fastest)"
    )
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--_child", help=argparse.SUPPRESS)
    parser.add_argument("--_out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    spec = SCENARIOS[args.scenario]
    prefix = "bench" if args.scenario == "vpc" else f"bench-{args.scenario}"
    data = args.data or Path(tempfile.gettempdir()) / f"{prefix}-{args.size}"
    p = spec.paths(data)
    if args._child:
        print(CHILDREN[args.scenario][args._child](p, args._out))
        return
    if not p.network.exists():
        print(
            f"no data under {data}: run benchmarks/generate.py --scenario {args.scenario} "
            f"--size {args.size} --out {data}"
        )
        raise SystemExit(2)
    methods = args.only.split(",") if args.only else list(spec.methods)
    unknown = set(methods) - set(CHILDREN[args.scenario]) - {"cli"}
    if unknown:
        raise SystemExit(f"unknown methods for {args.scenario}: {sorted(unknown)}")
    cli_args = shlex.split(args.cli_args) if args.cli_args is not None else list(spec.cli_args)
    spec_lines = machine()
    spec_lines["load average before"] = load_average()
    rows = []
    with tempfile.TemporaryDirectory(prefix="correlate-bench-") as tmp:
        for method in methods:
            runs = []
            for _ in range(args.repeat):
                runs.append(measure(method, args.scenario, data, cli_args, Path(tmp)))
                print(json.dumps(runs[-1]), flush=True)
            rows.append(best_of(runs))
    sums = {(r["pairs"], r["checksum"]) for r in rows if "pairs" in r}
    same = len(sums) <= 1
    text = table(rows, args.scenario, p, args.repeat)
    print(text)
    print("answers:", "IDENTICAL" if same else f"DIFFER: {sums}")
    spec_lines["load average after"] = load_average()
    if "cli" in methods:
        spec_lines["cli"] = "`correlate run -q " + " ".join([*cli_args, "..."]) + "`"
    heading = f"{args.scenario} scenario, size {args.size}"
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    section = (
        f"## {heading} ({stamp}{'; ' + args.note if args.note else ''})\n\n"
        + "\n".join(f"- {k}: {v}" for k, v in spec_lines.items())
        + "\n\n"
        + text
        + f"\n\nAnswers: {'identical' if same else 'DIFFER'} across methods.\n"
    )
    results = args.results
    previous = results.read_text() if results.exists() else "# Benchmark results\n\n"
    results.write_text(previous.rstrip("\n") + "\n\n" + section)
    if not same:
        raise SystemExit("answers differ")


if __name__ == "__main__":
    main()
