"""Inventory of sandboxes/hosts and their addresses, CSV or JSON, with optional validity and kind.

One row says that a host held an address, over a time, in some way. Columns (case-insensitive;
the first of each's names with a value wins): host (``host``, ``hostname``, ``sandbox``, ...,
required), ip (``ip``, ``ip_address``, ``address``, ..., required), ``valid_from``/``valid_to``
(half-open, empty = open; naive times UTC unless ``--tz inventory=ZONE``, noted), kind (``kind``,
``role``, ``held_as``; ``KIND_ALIASES``): ``sandbox`` holds its address exclusively,
``docker_host``/``node``/``nat`` share it; empty = shared when rows overlap, exclusive re-use when
they follow each other (``correlate/identity.py``); any other kind rejects the row. ``note``
(or ``comment``, ``description``) is shown with the row. JSON (an array, ``{"hosts": [...]}`` or
JSON lines) gives the same rows as CSV.

Rejected: no host, a bad address or time, a validity ending at or before its start, an unknown
kind, and a later row contradicting an earlier one over an overlapping time (one address held
exclusively by two hosts; one host and address with two kinds). Column details:
``tests/data/inventory/README.md``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..identity import EXCLUSIVE_KIND, KINDS
from ..schema import HOSTS
from ..sources import Source, decode_line
from ..timeparse import TimeParseError, parse_time
from . import fields
from .base import FileLoad, LoadOptions, LoadResult
from .records import Record, csv_records, first_line, json_documents

name = "inventory"
kind = "hosts"
description = "Host/sandbox to IP inventory (CSV or JSON), optional valid_from/valid_to"

HOST_KEYS = ("host", "hostname", "sandbox", "sandbox_id", "container", "name")
IP_KEYS = ("ip", "ip_address", "address", "private_ip", "sandbox_ip", "host_ip")
KIND_KEYS = ("kind", "role", "held_as")
KIND_ALIASES = {
    **dict.fromkeys(("sandbox", "pod", "container"), "sandbox"),
    **dict.fromkeys(("docker_host", "dockerhost"), "docker_host"),
    **dict.fromkeys(("node", "k8s_node", "kubernetes_node"), "node"),
    **dict.fromkeys(("nat", "nat_gateway", "natgw", "nat_gw", "eip"), "nat"),
}
"""Accepted spellings of a kind (lower case, ``-`` and spaces as ``_``) -> the hosts table's kind."""


def _pick(record: dict[str, Any], keys: tuple[str, ...]) -> Any:
    lowered = {str(k).strip().lower(): v for k, v in record.items()}
    for key in keys:
        if key in lowered and not fields.is_blank(lowered[key]):
            return lowered[key]
    return None


def _has_columns(names: list[str]) -> bool:
    lowered = {n.strip().lower().lstrip("\ufeff") for n in names}
    return bool(lowered & set(HOST_KEYS)) and bool(lowered & set(IP_KEYS))


def _first_record(head: bytes) -> dict[str, Any] | None:
    """The first JSON object of a head: a whole small document, else the first line."""
    text, _ = decode_line(head)
    candidates = [text, first_line(head).decode("utf-8", "replace")]
    for candidate in candidates:
        try:
            document = json.loads(candidate)
        except (ValueError, RecursionError):
            continue
        if isinstance(document, dict) and isinstance(document.get("hosts"), list):
            document = document["hosts"]
        if isinstance(document, list):
            document = document[0] if document else None
        return document if isinstance(document, dict) else None
    return None


def sniff(head: bytes, filename: str) -> float:
    """Score: a CSV header, or the first JSON record's own keys, naming a host and an IP column.

    Only top-level keys with plain values count, so a trajectory or a flow record that nests a
    ``sandbox_ip`` or an endpoint's ``hostname`` is not mistaken for an inventory.
    """
    head = head.removeprefix(b"\xef\xbb\xbf")
    sample = head.lstrip()
    if sample.startswith((b"{", b"[")):
        record = _first_record(head)
        if record is None:
            return 0.0
        plain = {
            k.lower()
            for k, v in record.items()
            if isinstance(k, str) and not isinstance(v, (dict, list))
        }
        if not (plain & set(HOST_KEYS) and plain & set(IP_KEYS)) or len(record) > 12:
            return 0.0
        return 0.9 if "valid_from" in plain else 0.6
    text, _ = decode_line(sample[:8192])
    first = text.split("\n", 1)[0]
    try:
        header = next(csv.reader([first]))
    except (csv.Error, StopIteration):
        return 0.0
    if not _has_columns(header) or len(header) > 12:
        return 0.0
    return (
        0.9
        if "valid_from" in first.lower() or filename.lower().startswith(("inventory", "hosts"))
        else 0.6
    )


def read(source: Source, options: LoadOptions) -> LoadResult:
    """Read an inventory into ``hosts`` rows (origin ``inventory``)."""
    load = FileLoad(source, options, name, kind, HOSTS)
    if first_line(source.head()).startswith((b"{", b"[")):
        records = _expand_hosts(json_documents(source, load.stats, load.sink), load)
    else:
        records = csv_records(source, load.stats, load.sink)
    zone = options.zone_for(name)
    held = _Held()
    for line, record, raw in records:
        try:
            row = _convert(record, options, zone)
            held.check(row, line)
        except fields.RowError as exc:
            load.reject(line, str(exc), raw)
            continue
        notes = row.pop("_time_notes")
        load.emit(row, line)
        for note in notes:
            load.note(note)
    return load.result()


def _convert(record: dict[str, Any], options: LoadOptions, zone: Any) -> dict[str, Any]:
    host = fields.text(_pick(record, HOST_KEYS))
    if host is None:
        raise fields.RowError("no host/sandbox name")
    address = fields.ip(_pick(record, IP_KEYS), "ip", required=True)
    bounds: list[int | None] = []
    notes: list[str] = []
    for key in ("valid_from", "valid_to"):
        value = _pick(record, (key,))
        if value is None:
            bounds.append(None)
            continue
        try:
            ns, note = parse_time(
                value, default_tz=zone, epoch_unit=options.epoch_unit, expected_unit="s"
            )
        except TimeParseError as exc:
            raise fields.RowError(f"{key}: {exc}") from None
        bounds.append(ns)
        if note and note not in notes:
            notes.append(note)
    if bounds[0] is not None and bounds[1] is not None and bounds[1] <= bounds[0]:
        raise fields.RowError("valid_to is not after valid_from")
    held_as = _kind(_pick(record, KIND_KEYS))
    user_note = fields.text(_pick(record, ("note", "comment", "description")))
    return {
        "host": host,
        "ip": address,
        "valid_from": bounds[0],
        "valid_to": bounds[1],
        "kind": held_as,
        "origin": "inventory",
        "note": "; ".join(filter(None, [*notes, user_note])) or None,
        "_time_notes": notes,
    }


def _kind(value: Any) -> str | None:
    """A kind column's value as the hosts table's kind; None when empty (unspecified)."""
    spelled = fields.text(value)
    if spelled is None:
        return None
    held_as = KIND_ALIASES.get("_".join(spelled.lower().replace("-", " ").split()))
    if held_as is None:
        raise fields.RowError(
            f"kind {spelled!r} is not one of {', '.join(KINDS)} (or empty for unspecified)"
        )
    return held_as


class _Held:
    """The rows of one file loaded so far, to find a row contradicting an earlier one.

    Only what a contradiction can involve is kept: per address, its exclusive (``sandbox``) rows;
    per (host, address), its rows with a kind.
    """

    def __init__(self) -> None:
        self.exclusive: dict[str, list[_Lease]] = {}
        self.kinds: dict[tuple[str, str], list[_Lease]] = {}

    def check(self, row: dict[str, Any], line: int) -> None:
        """Raise ``RowError`` when ``row`` contradicts a row kept earlier; else keep it."""
        host, address, held_as = row["host"], row["ip"], row["kind"]
        if held_as is None:
            return
        lease = _Lease(line, host, held_as, row["valid_from"], row["valid_to"])
        for earlier in self.kinds.get((host, address), ()):
            if earlier.kind != held_as and earlier.overlaps(lease):
                raise fields.RowError(
                    f"contradicts line {earlier.line}: {host} holds {address} as {earlier.kind}, "
                    f"not {held_as}, over an overlapping time"
                )
        if held_as == EXCLUSIVE_KIND:
            for earlier in self.exclusive.get(address, ()):
                if earlier.host != host and earlier.overlaps(lease):
                    raise fields.RowError(
                        f"contradicts line {earlier.line}: {address} is held exclusively "
                        f"(kind {EXCLUSIVE_KIND}) by {earlier.host} over an overlapping time"
                    )
            self.exclusive.setdefault(address, []).append(lease)
        self.kinds.setdefault((host, address), []).append(lease)


@dataclass(frozen=True, slots=True)
class _Lease:
    """One loaded row's hold on an address over [start, end) (None = open on that side)."""

    line: int
    host: str
    kind: str
    start: int | None
    end: int | None

    def overlaps(self, other: _Lease) -> bool:
        return (self.start is None or other.end is None or self.start < other.end) and (
            other.start is None or self.end is None or other.start < self.end
        )


def _expand_hosts(records: Iterator[Record], load: FileLoad) -> Iterator[Record]:
    """Records as they come, except that ``{"hosts": [...]}`` gives one record per entry."""
    for line, record, raw in records:
        hosts = record.get("hosts")
        if not isinstance(hosts, list):
            yield line, record, raw
            continue
        for index, item in enumerate(hosts, start=1):
            if isinstance(item, dict):
                yield index, item, json.dumps(item, ensure_ascii=False)
            else:
                load.reject(index, f"inventory entry {index} is not an object", json.dumps(item))
