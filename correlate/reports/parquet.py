"""Parquet report: attributions, findings and candidates with provenance in the key-value metadata.

``-o report.parquet`` writes three files: ``report.parquet`` (attributions: one row per violation
event), ``report.findings.parquet`` (one row per conversation) and ``report.candidates.parquet``
(one row per event x call pair). Each carries ``correlate.provenance`` (JSON: version,
parameters, inputs with SHA-256 and load counts) and ``correlate.table``. Files are written to a
temporary name and renamed, so an interrupted run never leaves a partial report; the same inputs
and flags give byte-identical files.
"""

from __future__ import annotations

import json
import os
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
    }


def write_report(result: Result, output: str | os.PathLike[str]) -> dict[str, Path]:
    """Write the report files; returns their paths by table name."""
    provenance = json.dumps(result.provenance(), sort_keys=True, ensure_ascii=False)
    tables = {
        "attributions": result.attributions,
        "findings": result.findings,
        "candidates": result.candidates,
    }
    paths = report_paths(output)
    for name, path in paths.items():
        write_table(
            tables[name], path, {"correlate.table": name, "correlate.provenance": provenance}
        )
    return paths


def write_table(table: pa.Table, path: Path, metadata: dict[str, str]) -> None:
    """Write one Parquet file atomically (temp file + rename) with deterministic settings."""
    merged = dict(table.schema.metadata or {})
    merged.update({k.encode(): v.encode() for k, v in metadata.items()})
    table = table.replace_schema_metadata(merged)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", write_statistics=True, store_schema=True)
