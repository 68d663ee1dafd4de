"""Parquet report: attributions, findings and candidates with provenance in the key-value metadata.

``-o report.parquet`` writes ``report.parquet`` (attributions: one row per violation event),
``report.findings.parquet`` (one row per conversation), ``report.candidates.parquet`` (one row per
event x call pair) and ``report.stats.parquet`` (association with chance per run, tool and episode;
the in-flight baseline in its ``correlate.baseline`` metadata). Each carries
``correlate.provenance`` (JSON: version, parameters, clock offsets, inputs with SHA-256 and load
counts) and ``correlate.table``. Files are written to a
temporary name and renamed, so an interrupted run never leaves a partial report; the same inputs
and flags give byte-identical files.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import atomic_path
from ..pipeline import Result


def report_paths(output: str | os.PathLike[str]) -> dict[str, Path]:
    """The three file names for ``-o OUTPUT`` (the attributions file is OUTPUT itself)."""
    path = Path(output)
    stem = path.name[: -len(".parquet")] if path.name.endswith(".parquet") else path.name
    return {
        "attributions": path,
        "findings": path.with_name(f"{stem}.findings.parquet"),
        "candidates": path.with_name(f"{stem}.candidates.parquet"),
        "stats": path.with_name(f"{stem}.stats.parquet"),
    }


ASSOCIATION_SCHEMA = pa.schema(
    [
        pa.field("scope", pa.string()),
        pa.field("key", pa.string()),
        pa.field("host", pa.string()),
        pa.field("calls", pa.int64()),
        pa.field("violations", pa.int64()),
        pa.field("observed", pa.int64()),
        pa.field("expected", pa.float64()),
        pa.field("lift", pa.float64()),
        pa.field("p_value", pa.float64()),
        pa.field("q_value", pa.float64()),
    ]
)


def write_report(
    result: Result, output: str | os.PathLike[str], *, permutations: int = 999
) -> dict[str, Path]:
    """Write the report files; returns their paths by table name (no stats file when permutations=0)."""
    provenance_data = result.provenance()
    provenance_data["parameters"]["permutations"] = permutations
    provenance = json.dumps(provenance_data, sort_keys=True, ensure_ascii=False)
    tables = {
        "attributions": result.attributions,
        "findings": result.findings,
        "candidates": result.candidates,
    }
    paths = report_paths(output)
    extra: dict[str, str] = {}
    if permutations:
        associations, baselines = result.statistics(permutations)
        tables["stats"] = pa.Table.from_pylist(
            [asdict(a) for a in associations], schema=ASSOCIATION_SCHEMA
        )
        extra["correlate.baseline"] = json.dumps([asdict(b) for b in baselines], sort_keys=True)
    else:
        paths.pop("stats")
    for name, path in paths.items():
        metadata = {"correlate.table": name, "correlate.provenance": provenance}
        if name == "stats":
            metadata.update(extra)
        write_table(tables[name], path, metadata)
    return paths


def write_table(table: pa.Table, path: Path, metadata: dict[str, str]) -> None:
    """Write one Parquet file atomically (temp file + rename) with deterministic settings."""
    merged = dict(table.schema.metadata or {})
    merged.update({k.encode(): v.encode() for k, v in metadata.items()})
    table = table.replace_schema_metadata(merged)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", write_statistics=True, store_schema=True)
