"""Side-by-side performance benchmark of correlate against its peers (not part of the tests).

    python benchmarks/generate.py --size S --out /tmp/bench-S
    python benchmarks/run.py --size S --data /tmp/bench-S [--only floor,duckdb,...] [--results FILE]

Each method runs in its own subprocess on the same files; the parent measures its wall time
(``time.perf_counter`` around the child, so interpreter start-up and imports count) and its peak
RSS (``os.wait4``'s ``ru_maxrss`` for that child). Methods:

- ``floor``: ``pyarrow.csv.read_csv`` of the flow file (space-delimited, header line): the raw parse
  cost with no logic. No pairs.
- ``loader``: correlate's ``aws_vpc_flow`` loader alone on the flow file (all rows, normalised).
- ``duckdb``: one SQL query: the flows with ``read_csv``, the inventory CSV, the calls from
  ``calls.parquet`` (the generator writes it, so *extracting the calls from OTLP JSON is not timed
  for DuckDB*); violations = REJECT and not ingress; keyed on the sandbox the inventory names for
  the source address; window ``start - 10 s <= ts <= max(end, start) + 30 s``.
- ``pandas``: ``pandas.read_csv`` of everything, the same calls Parquet (untimed extraction),
  merge of violations and calls on host, filter by window.
- ``library``: ``correlate.pipeline.load_inputs`` + ``analyse`` on the flow file, the OTLP JSON
  traces (parsed and timed) and the inventory.
- ``cli``: ``correlate run -q --permutations 0 FLOWS CALLS --inventory INV -o OUT``: the whole job
  including scoring, attribution and writing the Parquet report (the permutation statistics are
  skipped: they are not part of the join).

Every method that joins writes its candidate pairs (flow-file line, call id); the parent compares
the count and an order-independent checksum (sum of 64-bit BLAKE2b hashes of ``line\\tcall_id``
modulo 2**64) and stops with an error if any differ.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
METHODS = ("floor", "loader", "duckdb", "pandas", "library", "cli")
BEFORE_NS = 10 * 10**9
AFTER_NS = 30 * 10**9


def paths(data: Path) -> dict[str, Path]:
    return {
        "flows": data / "flows" / "flows.log",
        "calls": data / "calls" / "traces.jsonl",
        "inventory": data / "inventory.csv",
        "calls_parquet": data / "calls.parquet",
    }


# --- children ---------------------------------------------------------------------------------


def child_floor(p: dict[str, Path], out: Path) -> int:
    import pyarrow.csv as pv

    table = pv.read_csv(
        p["flows"],
        parse_options=pv.ParseOptions(delimiter=" "),
        read_options=pv.ReadOptions(block_size=1 << 24),
    )
    return table.num_rows


def child_loader(p: dict[str, Path], out: Path) -> int:
    from correlate.loaders import LoadOptions, aws_vpc_flow
    from correlate.sources import Source

    result = aws_vpc_flow.read(Source(p["flows"], str(p["flows"])), LoadOptions())
    assert result.stats.balanced
    return result.table.num_rows


def child_duckdb(p: dict[str, Path], out: Path) -> int:
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads={os.cpu_count() or 1}")
    con.execute(
        f"""
        COPY (
        WITH f AS (
            SELECT row_number() OVER () + 1 AS line, srcaddr, start, action, "flow-direction" AS dir
            FROM read_csv('{p["flows"]}', delim=' ', header=true, nullstr='-', auto_detect=true)
        ), inv AS (
            SELECT host, ip FROM read_csv('{p["inventory"]}', header=true)
        ), v AS (
            SELECT f.line, inv.host, f.start * 1000000000 AS ts
            FROM f JOIN inv ON f.srcaddr = inv.ip
            WHERE f.action = 'REJECT' AND coalesce(f.dir, '') <> 'ingress'
        ), c AS (
            SELECT call_id, host, ts_start, greatest(ts_end, ts_start) AS ts_end
            FROM read_parquet('{p["calls_parquet"]}')
        )
        SELECT v.line, c.call_id FROM v JOIN c
          ON v.host = c.host AND v.ts >= c.ts_start - {BEFORE_NS} AND v.ts <= c.ts_end + {AFTER_NS}
        ) TO '{out}' (FORMAT parquet)
        """
    )
    return con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]


def child_pandas(p: dict[str, Path], out: Path) -> int:
    import pandas as pd

    flows = pd.read_csv(p["flows"], sep=" ", na_values=["-"], keep_default_na=False)
    flows["line"] = flows.index + 2
    inv = pd.read_csv(p["inventory"])
    calls = pd.read_parquet(p["calls_parquet"])
    v = flows[(flows["action"] == "REJECT") & (flows["flow-direction"] != "ingress")]
    v = v.merge(inv, left_on="srcaddr", right_on="ip")
    v = v.assign(ts=v["start"] * 1_000_000_000)[["line", "host", "ts"]]
    m = v.merge(calls, on="host")
    end = m[["ts_end", "ts_start"]].max(axis=1)
    m = m[(m["ts"] >= m["ts_start"] - BEFORE_NS) & (m["ts"] <= end + AFTER_NS)]
    m[["line", "call_id"]].to_parquet(out)
    return len(m)


def child_library(p: dict[str, Path], out: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from correlate.pipeline import RunOptions, analyse, load_inputs

    options = RunOptions()
    loaded = load_inputs(
        [str(p["flows"]), str(p["calls"])], options, inventories=[str(p["inventory"])]
    )
    result = analyse(loaded, options)
    c = result.candidates
    pq.write_table(
        pa.table({"line": c.column("event_source_line"), "call_id": c.column("call_id")}), out
    )
    return c.num_rows


def child_cli(p: dict[str, Path], out: Path) -> int:  # run as the correlate command, see below
    raise NotImplementedError


CHILDREN = {
    "floor": child_floor,
    "loader": child_loader,
    "duckdb": child_duckdb,
    "pandas": child_pandas,
    "library": child_library,
}


# --- parent -----------------------------------------------------------------------------------


def checksum(pairs: Path) -> tuple[int, str]:
    import pyarrow.parquet as pq

    table = pq.read_table(pairs)
    total = 0
    lines = table.column("line").to_pylist()
    ids = table.column("call_id").to_pylist()
    for line, call in zip(lines, ids, strict=True):
        digest = hashlib.blake2b(f"{line}\t{call}".encode(), digest_size=8).digest()
        total = (total + int.from_bytes(digest, "little")) % 2**64
    return len(lines), f"{total:016x}"


def measure(method: str, p: dict[str, Path], workdir: Path) -> dict[str, object]:
    pairs = workdir / f"{method}.pairs.parquet"
    if method == "cli":
        exe = Path(sys.executable).with_name("correlate")
        report = workdir / "cli.parquet"
        cmd = [
            str(exe),
            "run",
            "-q",
            "--permutations",
            "0",
            str(p["flows"]),
            str(p["calls"]),
            "--inventory",
            str(p["inventory"]),
            "-o",
            str(report),
        ]
    else:
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--_child",
            method,
            "--_out",
            str(pairs),
            "--data",
            str(p["flows"].parent.parent),
        ]
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
    row: dict[str, object] = {
        "method": method,
        "wall_s": wall,
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
    return {
        "cpus (nproc)": str(os.cpu_count()),
        "RAM": mem,
        "CPU": model,
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "pyarrow": pyarrow.__version__,
        "duckdb": duckdb.__version__,
        "pandas": pandas.__version__,
    }


def table(rows: list[dict[str, object]], p: dict[str, Path]) -> str:
    with open(p["flows"], "rb") as fh:
        n_flows = sum(1 for _ in fh) - 1
    size_mb = p["flows"].stat().st_size / 1e6
    calls_mb = p["calls"].stat().st_size / 1e6
    by = {r["method"]: r for r in rows}
    duck = by.get("duckdb", {}).get("wall_s")
    floor = by.get("floor", {}).get("wall_s")
    out = [
        f"flows: {n_flows:,} rows, {size_mb:,.0f} MB; calls (OTLP JSON): {calls_mb:,.0f} MB; "
        "rows/s and MB/s are over the flow file",
        "",
        "| method | wall s | flow rows/s | flow MB/s | peak RSS MiB | x DuckDB | x floor | pairs | checksum |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        wall = float(r["wall_s"])  # type: ignore[arg-type]
        rss = float(r["peak_rss_mb"])  # type: ignore[arg-type]
        ratio_duck = f"{wall / float(duck):.2f}" if duck else "-"  # type: ignore[arg-type]
        ratio_floor = f"{wall / float(floor):.2f}" if floor else "-"  # type: ignore[arg-type]
        out.append(
            f"| {r['method']} | {wall:.2f} | {n_flows / wall:,.0f} | {size_mb / wall:,.1f} | "
            f"{rss:,.0f} | {ratio_duck} | {ratio_floor} | {r.get('pairs', '-')} | "
            f"{r.get('checksum', '-')} |"
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=("XS", "S", "M"), default="S")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--only", default=",".join(METHODS))
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--_child", help=argparse.SUPPRESS)
    parser.add_argument("--_out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    data = args.data or Path(tempfile.gettempdir()) / f"bench-{args.size}"
    p = paths(data)
    if args._child:
        print(CHILDREN[args._child](p, args._out))
        return
    if not p["flows"].exists():
        print(f"no data under {data}: run benchmarks/generate.py --size {args.size} --out {data}")
        raise SystemExit(2)
    rows = []
    with tempfile.TemporaryDirectory(prefix="correlate-bench-") as tmp:
        for method in args.only.split(","):
            row = measure(method, p, Path(tmp))
            print(json.dumps(row), flush=True)
            rows.append(row)
    sums = {(r["pairs"], r["checksum"]) for r in rows if "pairs" in r}
    same = len(sums) <= 1
    text = table(rows, p)
    print(text)
    print("answers:", "IDENTICAL" if same else f"DIFFER: {sums}")
    spec = machine()
    section = (
        f"## Size {args.size} ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n\n"
        + "\n".join(f"- {k}: {v}" for k, v in spec.items())
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
