"""The contract every loader keeps on every sample of its format in ``tests/data/<format>/``.

A gzip copy and a UTF-8 BOM copy load identically; every record read is loaded, rejected or
skipped; ``--strict`` stops at the first rejected row, at its line, and changes nothing on a file
without rejects. Format-specific answers (which rows, which rejects) stay in ``test_loader_*.py``.
"""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _pytest.mark import ParameterSet
from loader_helpers import ROOT, display, ns, same

from correlate.errors import CorrelateError, StrictRejection
from correlate.loaders import REGISTRY, LoadOptions, LoadResult, detect
from correlate.loaders.base import Loader
from correlate.sources import Source

DATA = ROOT / "tests" / "data"
NOT_INPUTS = ("README.md",)
"""File names in a format's folder that are about the samples, not samples (with ``LICENSES/``)."""

EXTRA = DATA / "generic_network_extra"
OPTIONS: dict[str, dict[str, str]] = {
    "generic_network/egress_gateway.events.jsonl": {
        "mapping": str(EXTRA / "egress_gateway.mapping.json")
    },
    "generic_network/msticpy_az_net_flows.events.csv": {
        "mapping": str(EXTRA / "msticpy_az_net_flows.mapping.json")
    },
    "swe_agent": {"start": "2025-12-02T06:19:00Z"},
}
"""``--option`` settings samples are read with, by ``<format>/<file>`` or ``<format>``: without
them a file cannot be read (a mapping names a log's fields; .traj files carry no times)."""

REFERENCE = {"cef": ns("2025-12-02T12:00:00Z"), "iptables": ns("2026-01-02T00:00:00Z")}
"""``--reference-date`` for logs without a year, as their golden tests read them (else the
file's mtime would decide, and a copy's differs)."""

BOM = b"\xef\xbb\xbf"


def samples() -> Iterator[ParameterSet]:
    """``(format, path)`` for every input file below ``tests/data/<format>/``."""
    for name in REGISTRY:
        folder = DATA / name
        for path in sorted(folder.rglob("*")) if folder.is_dir() else ():
            inside = path.relative_to(folder)
            if path.is_file() and inside.parts[0] != "LICENSES" and path.name not in NOT_INPUTS:
                yield pytest.param(name, path, id=f"{name}/{inside}")


SAMPLES = list(samples())


def options(name: str, path: Path, *, strict: bool = False) -> LoadOptions:
    settings = OPTIONS.get(f"{name}/{path.name}", OPTIONS.get(name))
    return LoadOptions(
        strict=strict,
        reference_ns=REFERENCE.get(name, ns("2026-01-02T00:00:00Z")),
        format_options={name: settings} if settings else {},
    )


def load(name: str, path: Path, opts: LoadOptions, shown: str) -> LoadResult | CorrelateError:
    """The file read as ``name`` (forced, as ``--input-format`` does), or the error it raised."""
    try:
        return REGISTRY[name].read(Source(path, shown), opts)
    except CorrelateError as exc:
        return exc


def detected(path: Path, shown: str) -> str:
    """The format detection picks for the file, or why it picks none."""
    try:
        return detect(Source(path, shown)).name
    except CorrelateError as exc:
        return f"{type(exc).__name__}: {exc}"


def assert_same_outcome(a: LoadResult | CorrelateError, b: LoadResult | CorrelateError) -> None:
    """The same rows, accounting, rejects and identity rows, or the same error."""
    if isinstance(a, CorrelateError) or isinstance(b, CorrelateError):
        assert (type(a), str(a)) == (type(b), str(b))
        return
    same(a, b)
    assert (a.hosts is None) == (b.hosts is None)
    assert a.hosts is None or b.hosts is None or a.hosts.equals(b.hosts)


def copy_loads_identically(
    tmp_path: Path, name: str, path: Path, change: Callable[[bytes], bytes], suffix: str = ""
) -> None:
    """A changed copy of ``path`` (beside copies of its siblings, which some loaders read as
    context), shown under the original's name, loads as the original does."""
    folder = tmp_path / path.parent.name
    shutil.copytree(path.parent, folder)
    copy = folder / (path.name + suffix)
    copy.write_bytes(change(path.read_bytes()))
    shown = display(path)
    opts = options(name, path)
    assert detected(copy, shown) == detected(path, shown)
    assert_same_outcome(load(name, copy, opts, shown), load(name, path, opts, shown))


def test_every_registered_loader_keeps_the_loader_protocol():
    for name in REGISTRY:
        module = REGISTRY[name]
        assert isinstance(module, Loader), name
        assert module.name == name


@pytest.mark.parametrize(("name", "path"), SAMPLES)
def test_gzip_copy_loads_identically(tmp_path, name, path):
    if path.suffix == ".parquet":
        pytest.skip("a compressed Parquet file is refused: Parquet compresses its own pages")
    copy_loads_identically(tmp_path, name, path, gzip.compress, ".gz")


@pytest.mark.parametrize(("name", "path"), SAMPLES)
def test_utf8_bom_copy_loads_identically(tmp_path, name, path):
    text = path.read_bytes()
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        pytest.skip("not text")
    copy_loads_identically(tmp_path, name, path, lambda data: BOM + data)


@pytest.mark.parametrize(("name", "path"), SAMPLES)
def test_every_record_read_is_loaded_rejected_or_skipped(name, path):
    result = load(name, path, options(name, path), display(path))
    if isinstance(result, CorrelateError):
        pytest.skip(f"not read as {name}: {result}")
    stats = result.stats
    assert stats.read == stats.loaded + stats.rejected + stats.skipped_total


@pytest.mark.parametrize(("name", "path"), SAMPLES)
def test_strict_stops_at_the_first_reject_and_changes_nothing_without_one(name, path):
    shown = display(path)
    plain = load(name, path, options(name, path), shown)
    if isinstance(plain, CorrelateError):
        pytest.skip(f"not read as {name}: {plain}")
    strict = load(name, path, options(name, path, strict=True), shown)
    if not plain.rejects:
        assert_same_outcome(strict, plain)
        return
    first = plain.rejects[0]
    assert isinstance(strict, StrictRejection)
    assert strict.line == first.location.line
    assert str(strict) == f"{first} (--strict stops at the first rejected row)"
