"""Read one log file into its normalised table, for a notebook: ``correlate.read(path)``.

The same detection, loaders, zones and load accounting as ``correlate run``, for one file,
without analysis: every row of the file is in the table (nothing sampled away), and the returned
``Read`` says how many rows were read, loaded, rejected and skipped, with each reject's
``path:line`` and reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from .errors import InputError, OptionError, Reject
from .loaders import REGISTRY, LoadOptions, LoadStats, detect
from .loaders.base import read_counting_long_lines
from .sources import DEFAULT_LIMITS, Limits, Source
from .timeparse import resolve_zone


@dataclass
class Read:
    """One file as ``correlate.read`` gives it back."""

    table: pa.Table
    """The normalised rows (``schema.NETWORK_EVENTS``, ``TOOL_CALLS``, ``HOSTS`` or ``ENRICHMENT``,
    as ``kind`` says)."""
    kind: str
    format: str
    stats: LoadStats
    rejects: list[Reject]
    hosts: pa.Table | None = None
    """Identity rows the file revealed (a trajectory naming its sandbox's address), if any."""
    notes: dict[str, int] = field(default_factory=dict)

    def to_pandas(self) -> object:
        """The table as a pandas DataFrame."""
        return self.table.to_pandas()


def read(
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    tz: str | None = None,
    strict: bool = False,
    epoch_unit: str = "auto",
    options: dict[str, str] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Read:
    """The normalised table of one log file and its load accounting.

    ``format`` forces a loader (``correlate formats`` lists them; default: detected), ``tz`` is
    the zone for naive times (default: the loader's documented one), ``strict`` makes the first
    rejected row an error, ``options`` are the format's settings (``--option FORMAT.KEY=VALUE``).
    Raises ``correlate.errors.CorrelateError`` subclasses with one clear sentence.
    """
    source = Source(Path(path), os.fspath(path), limits=limits)
    if not source.path.is_file():
        raise InputError(f"{source.display}: no such file")
    if format is not None and format not in REGISTRY:
        raise OptionError(f"unknown format {format!r} (known: {', '.join(sorted(REGISTRY))})")
    detection = detect(source, format, check=False)
    zones = {"*": resolve_zone(tz)} if tz else {}
    load = LoadOptions(
        zones=zones,
        epoch_unit=epoch_unit,
        strict=strict,
        format_options={detection.name: dict(options or {})} if options else {},
    )
    result = read_counting_long_lines(detection.loader.read, source, load)
    return Read(
        table=result.table,
        kind=result.kind,
        format=detection.name,
        stats=result.stats,
        rejects=result.rejects,
        hosts=result.hosts,
        notes=dict(result.stats.notes),
    )


__all__ = ["Read", "read"]
