"""Helpers shared by the loader tests (tests/ is on sys.path under pytest's default import mode)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from copy import deepcopy
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from correlate.errors import InputError, StrictRejection
from correlate.timeparse import parse_iso

ROOT = Path(__file__).resolve().parent.parent


def ns(text: str) -> int:
    """ISO 8601 text to int ns (UTC)."""
    return parse_iso(text)[0]


def display(path: Path) -> str:
    """The name a file is shown under: relative to the repository, else the bare file name."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return path.name


def rows(table: pa.Table) -> list[dict[str, Any]]:
    """Table rows as dicts, with timestamps as integer nanoseconds (no pandas rounding)."""
    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(pa.int64()))
    return table.to_pylist()


def type_confused(document: Any, limit: int = 50) -> Iterator[Any]:
    """Copies of ``document`` with one value (every n-th, in walk order) of another JSON type."""
    paths: list[tuple[Any, ...]] = []

    def walk(node: Any, path: tuple[Any, ...]) -> None:
        items = (
            node.items()
            if isinstance(node, dict)
            else enumerate(node)
            if isinstance(node, list)
            else ()
        )
        for key, value in items:
            paths.append((*path, key))
            walk(value, (*path, key))

    walk(document, ())
    for path in paths[:: max(1, len(paths) // limit)]:
        for replacement in ([1], {"x": 1}, None, 7.5, "x"):
            copy = deepcopy(document)
            node = copy
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = replacement
            yield copy


def same(a: Any, b: Any) -> None:
    """Two ``LoadResult``s give the same rows, accounting and rejects (line, reason, raw text)."""
    assert a.table.equals(b.table), (a.table.to_pylist()[:3], b.table.to_pylist()[:3])
    assert a.stats == b.stats
    assert [(r.location.line, r.reason, r.raw) for r in a.rejects] == [
        (r.location.line, r.reason, r.raw) for r in b.rejects
    ]


def write(path: Path, lines: list[bytes], trailing_newline: bool = True) -> Path:
    """``lines`` joined by newlines into ``path`` (with a last newline unless told otherwise)."""
    body = b"\n".join(lines)
    path.write_bytes(body + (b"\n" if trailing_newline and body else b""))
    return path


def changed(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of ``base`` with each ``a__b=value`` setting the nested key ``a.b`` (``...`` removes
    it)."""
    record = deepcopy(base)
    for key, value in changes.items():
        node = record
        *parents, leaf = key.split("__")
        for parent in parents:
            node = node.setdefault(parent, {})
        if value is ...:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return record


def variant(base: dict[str, Any], **changes: Any) -> str:
    """``changed(base, **changes)`` as one compact JSON line."""
    return json.dumps(changed(base, **changes), separators=(",", ":"))


def same_outcome(load: Callable[[bool], Any]) -> None:
    """``load(fast=True)`` (the column-wise path) and ``load(fast=False)`` (the per-line reader)
    give the same rows, accounting and rejects, or stop with the same ``InputError`` (say when
    every record of the first 100 fails)."""
    found: list[Any] = []
    for fast in (True, False):
        try:
            found.append(load(fast))
        except InputError as exc:
            found.append(str(exc))
    if isinstance(found[0], str) or isinstance(found[1], str):
        assert found[0] == found[1]
    else:
        same(found[0], found[1])


def raised(
    load: Callable[[bool], object],
    error: type[Exception] = StrictRejection,
    match: str | None = None,
) -> list[str]:
    """The messages ``load(fast=True)`` and ``load(fast=False)`` each stop with (``error``)."""
    messages = []
    for fast in (True, False):
        with pytest.raises(error, match=match) as caught:
            load(fast)
        messages.append(str(caught.value))
    return messages
