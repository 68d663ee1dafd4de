"""The report's tables, one column list each, and the Parquet report that writes them.

``-o report.parquet`` writes ``report.parquet`` (attributions: one row per violation event),
``report.findings.parquet`` (one row per conversation), ``report.candidates.parquet`` (one row per
event x call pair) and ``report.stats.parquet`` (association with chance per run, tool and episode;
the in-flight baseline in its ``correlate.baseline`` metadata). Each carries
``correlate.provenance`` (JSON: version, parameters, clock offsets, inputs with SHA-256 and load
counts) and ``correlate.table``. The files are written as one set (``atomic.file_set``): in a
temporary directory beside them, renamed into place, and ``report.parquet.files.json`` (each
file's size and SHA-256) written last, so an interrupted run never leaves a partial report that
checks out, a stats file of an earlier run is removed when this one has none, and ``-o`` never
replaces an input or a case's file; the same inputs and flags give byte-identical files.

The column lists (``REPORT_SCHEMAS``) are the one definition of the four tables: the Parquet
report, ``correlate export --format parquet|csv|jsonl`` and anything else that writes one of
these tables build it with ``report_tables`` (or the per-table functions), so every format
carries the same columns in the same order. Times are ``timestamp[ns, UTC]``; ``labels``,
``actions`` and ``reasons`` are ``list<string>`` (never null: an empty list when there is none);
paths are as the inputs were named to ``run``/``ingest`` (see ``source_path``).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..atomic import atomic_path, file_set, set_manifest_path
from ..pipeline import Result
from ..schema import CALL_FIELDS, CALL_KEY, CANDIDATES, FINDINGS, derived, plain_rows
from ..stats import Association, Baseline

TEXT_LIST = pa.list_(pa.string())
"""The type of a list column (``labels``, ``actions``, ``reasons``)."""

LIST_SEPARATORS = {"labels": ",", "actions": ",", "reasons": "; "}
"""How the analysis tables join the values of each list column (split here into lists)."""


def _columns(*groups: str | Iterable[str], **types: pa.DataType) -> pa.Schema:
    """An export table's columns, in this order, typed as ``schema.derived`` types them (the
    normalised tables), list columns as lists; ``types`` for columns only the export has."""
    typed = derived(*groups, **types)
    return pa.schema(
        [pa.field(f.name, TEXT_LIST if f.name in LIST_SEPARATORS else f.type) for f in typed]
    )


ATTRIBUTIONS_COLUMNS = _columns(
    "event_id conversation_id ts src_ip src_port src_nat_ip src_host dst_ip dst_port protocol "
    "dst_domain action rule signature labels how",
    CALL_FIELDS,
    "call_ts_start call_ts_end lag_s confidence candidates clock_offset_s "
    "source_format source_path source_line",
    candidates=pa.int64(),
)
"""One row per violation event: the event (``ts`` on the aligned clock: as logged minus
``clock_offset_s``), its conversation's labels, the attributed call with its command and times,
the lag, the confidence and how many candidate calls its window held."""

FINDINGS_COLUMNS = pa.schema(
    [pa.field(f.name, TEXT_LIST if f.name in LIST_SEPARATORS else f.type) for f in FINDINGS]
)
"""One row per conversation (the analysis's findings, with its list columns as lists)."""

CANDIDATES_COLUMNS = _columns(
    CANDIDATES.names[:5],
    "src_ip src_nat_ip src_host dst_ip dst_port protocol dst_domain action labels",
    CANDIDATES.names[5:],
    "attributed confidence",
    attributed=pa.bool_(),
)
"""One row per (violation event x candidate call) pair: the scored pair, the event's context,
``attributed`` for the call the event is attributed to and that attribution's ``confidence``."""

STATS_COLUMNS = pa.schema(
    [
        pa.field("scope", pa.string()),
        pa.field("key", pa.string()),
        pa.field("host", pa.string()),
        pa.field("calls", pa.int64()),
        pa.field("onsets", pa.int64()),
        pa.field("in_windows", pa.int64()),
        pa.field("expected", pa.float64()),
        pa.field("lift", pa.float64()),
        pa.field("p_value", pa.float64()),
        pa.field("q_value", pa.float64()),
        pa.field("in_flight_fraction", pa.float64()),
        pa.field("critical_count", pa.int64()),
        pa.field("min_detectable_lift", pa.float64()),
    ]
)
"""Association with chance per run, tool and episode, named as ``correlate stats`` shows it:
``onsets`` (violation conversations' first events of the key's sandboxes), ``in_windows`` (those
inside one of the key's call windows), ``expected`` (the mean under circular shifts), the test's
power: ``in_flight_fraction`` (the share of the span call windows cover), ``critical_count`` (the
fewest onsets in windows that would be significant; null: the test cannot tell) and
``min_detectable_lift``."""

_STATS_NAMES = {"violations": "onsets", "observed": "in_windows"}
"""``Association`` fields whose column is named as the CLI says it."""

REPORT_SCHEMAS = {
    "attributions": ATTRIBUTIONS_COLUMNS,
    "findings": FINDINGS_COLUMNS,
    "candidates": CANDIDATES_COLUMNS,
    "stats": STATS_COLUMNS,
}
"""The report's tables by name: the one column list of each, whatever the file format."""


def _split(name: str, value: Any) -> list[str]:
    """A list column's value as a list (the analysis tables hold them joined)."""
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value if v is not None]
    return [part for part in str(value).split(LIST_SEPARATORS[name]) if part]


def _table(rows: Iterable[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Rows (times as int ns, lists joined or as lists) as a table of exactly ``schema``."""
    lists = [f.name for f in schema if pa.types.is_list(f.type)]
    columns: dict[str, list[Any]] = {f.name: [] for f in schema}
    for row in rows:
        for name, values in columns.items():
            value = row.get(name)
            values.append(_split(name, value) if name in lists else value)
    arrays = []
    for field in schema:
        values = columns[field.name]
        if pa.types.is_timestamp(field.type):
            arrays.append(pa.array(values, pa.int64()).cast(field.type))
        else:
            arrays.append(pa.array(values, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def attributed_calls(result: Result) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The attributed calls by (call_id, run_id, episode_id, step), with their command, times
    and host; the first one wins on a duplicate id. Only calls some event is attributed to
    become Python rows (a run has millions of calls: all of them as dicts cost 126 MiB at 199k)."""
    attributed = pc.unique(pc.drop_null(result.attributions.column("call_id")))
    calls = result.loaded.calls.select([*CALL_KEY, "command", "ts_start", "ts_end", "host"])
    chosen = pc.fill_null(pc.is_in(calls.column("call_id"), value_set=attributed), False)
    index: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in plain_rows(calls.filter(chosen)):
        index.setdefault(tuple(row[k] for k in CALL_KEY), row)
    return index


def _events(result: Result) -> dict[int, dict[str, Any]]:
    columns = ["event_id", "src_port", "src_nat_ip", "rule", "signature"]
    return {r["event_id"]: r for r in plain_rows(result.violations.select(columns))}


def _labels(result: Result) -> dict[int, Any]:
    findings = result.findings.select(["conversation_id", "labels"])
    return {r["conversation_id"]: r["labels"] for r in plain_rows(findings)}


def attribution_rows(result: Result) -> list[dict[str, Any]]:
    """The attributions table's rows (times as int ns; ``labels`` as the findings join them)."""
    events = _events(result)
    labels = _labels(result)
    calls = attributed_calls(result)
    candidates = Counter(result.candidates.column("event_id").to_pylist())
    rows = []
    for a in plain_rows(result.attributions):
        event = events.get(a["event_id"], {})
        call = calls.get(tuple(a[k] for k in CALL_KEY), {})
        rows.append(
            {
                **a,
                **{k: event.get(k) for k in ("src_port", "src_nat_ip", "rule", "signature")},
                "labels": labels.get(a["conversation_id"]),
                "command": call.get("command"),
                "call_ts_start": call.get("ts_start"),
                "call_ts_end": call.get("ts_end"),
                "candidates": candidates.get(a["event_id"], 0),
            }
        )
    return rows


def attributions_table(result: Result) -> pa.Table:
    """One row per violation event (``ATTRIBUTIONS_COLUMNS``)."""
    return _table(attribution_rows(result), ATTRIBUTIONS_COLUMNS)


def findings_table(result: Result) -> pa.Table:
    """One row per conversation (``FINDINGS_COLUMNS``)."""
    return _table(plain_rows(result.findings), FINDINGS_COLUMNS)


def candidate_rows(
    result: Result, attributions: Sequence[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The candidates table's rows: each scored pair with its event's context, ``attributed``
    (the call the event is attributed to) and that attribution's ``confidence``; times as int ns.

    ``attributions``: ``attribution_rows(result)`` when the caller has them already.
    """
    rows_of = attribution_rows(result) if attributions is None else attributions
    events = {r["event_id"]: r for r in rows_of}
    context = ("src_ip", "src_nat_ip", "src_host", "dst_ip", "dst_port", "protocol")
    rows = []
    for c in plain_rows(result.candidates):
        event = events.get(c["event_id"], {})
        attributed = event.get("call_id") == c["call_id"] and event.get("run_id") == c["run_id"]
        rows.append(
            {
                **c,
                **{k: event.get(k) for k in (*context, "dst_domain", "action", "labels")},
                "attributed": bool(attributed),
                "confidence": event.get("confidence"),
            }
        )
    return rows


def candidates_table(
    result: Result, attributions: Sequence[dict[str, Any]] | None = None
) -> pa.Table:
    """One row per (violation event x candidate call) pair (``CANDIDATES_COLUMNS``)."""
    return _table(candidate_rows(result, attributions), CANDIDATES_COLUMNS)


def stats_table(associations: Sequence[Association]) -> pa.Table:
    """Association with chance, one row per run, tool and episode (``STATS_COLUMNS``)."""
    rows = [{_STATS_NAMES.get(k, k): v for k, v in asdict(a).items()} for a in associations]
    return _table(rows, STATS_COLUMNS)


def report_tables(
    result: Result, permutations: int = 999
) -> tuple[dict[str, pa.Table], list[Baseline]]:
    """The report's tables by name (no ``stats`` when ``permutations`` is 0) and the baseline."""
    attributions = attribution_rows(result)
    tables = {
        "attributions": _table(attributions, ATTRIBUTIONS_COLUMNS),
        "findings": findings_table(result),
        "candidates": candidates_table(result, attributions),
    }
    baselines: list[Baseline] = []
    if permutations:
        associations, baselines = result.statistics(permutations)
        tables["stats"] = stats_table(associations)
    return tables, baselines


def report_paths(output: str | os.PathLike[str]) -> dict[str, Path]:
    """The file names for ``-o OUTPUT`` (the attributions file is OUTPUT itself)."""
    path = Path(output)
    stem = path.name[: -len(".parquet")] if path.name.endswith(".parquet") else path.name
    return {
        "attributions": path,
        "findings": path.with_name(f"{stem}.findings.parquet"),
        "candidates": path.with_name(f"{stem}.candidates.parquet"),
        "stats": path.with_name(f"{stem}.stats.parquet"),
    }


def protected_files(result: Result) -> list[tuple[Path, str]]:
    """The files an output of ``result`` must never replace: its inputs (and its case's files).

    A result analysed from a case (``case.CaseResult``) names them itself, with the inputs as
    found from the case; otherwise the inputs are the paths as they were given to ``run``.
    """
    named = getattr(result, "protected_files", None)
    if callable(named):
        return list(named())
    return [(Path(f.path), "an input of this analysis") for f in result.loaded.inputs]


def write_report(
    result: Result, output: str | os.PathLike[str], *, permutations: int = 999
) -> dict[str, Path]:
    """Write the report files as one set; returns their paths by table name and the set's
    manifest as ``files`` (no stats file when permutations=0: an earlier one is removed)."""
    provenance_data = result.provenance()
    provenance_data["parameters"]["permutations"] = permutations
    provenance = json.dumps(provenance_data, sort_keys=True, ensure_ascii=False)
    tables, baselines = report_tables(result, permutations)
    every = report_paths(output)
    paths = {name: path for name, path in every.items() if name in tables}
    with file_set(
        paths,
        kind="parquet",
        main="attributions",
        stale=every.values(),
        protected=protected_files(result),
    ) as temps:
        for name, tmp in temps.items():
            metadata = {"correlate.table": name, "correlate.provenance": provenance}
            if name == "stats":
                metadata["correlate.baseline"] = json.dumps(
                    [asdict(b) for b in baselines], sort_keys=True
                )
            write_parquet(tables[name], tmp, metadata)
    return {**paths, "files": set_manifest_path(paths["attributions"])}


def write_parquet(table: pa.Table, path: Path, metadata: dict[str, str]) -> None:
    """Write one Parquet file in place with deterministic settings (no temporary name)."""
    merged = dict(table.schema.metadata or {})
    merged.update({k.encode(): v.encode() for k, v in metadata.items()})
    table = table.replace_schema_metadata(merged)
    pq.write_table(table, path, compression="zstd", write_statistics=True, store_schema=True)


def write_table(table: pa.Table, path: Path, metadata: dict[str, str]) -> None:
    """Write one Parquet file atomically (temp file + rename) with deterministic settings."""
    with atomic_path(path) as tmp:
        write_parquet(table, tmp, metadata)


__all__ = [
    "ATTRIBUTIONS_COLUMNS",
    "CANDIDATES_COLUMNS",
    "FINDINGS_COLUMNS",
    "LIST_SEPARATORS",
    "REPORT_SCHEMAS",
    "STATS_COLUMNS",
    "TEXT_LIST",
    "attributed_calls",
    "attribution_rows",
    "attributions_table",
    "candidate_rows",
    "candidates_table",
    "findings_table",
    "protected_files",
    "report_paths",
    "report_tables",
    "stats_table",
    "write_parquet",
    "write_report",
    "write_table",
]
