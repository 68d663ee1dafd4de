"""Zeek ``conn.log``: the ASCII writer's header-driven TSV, or the JSON writer's lines.

Columns are read by name from ``#fields`` (a later header block replaces the previous; a bare
first line of column names and ``id_orig_h`` scope spellings are read too); pretty-printed JSON is
read object by object. A file whose ``#path`` names another log is read only when forced (noted).
Mapping: ``ts`` -> ts; ts + ``duration`` -> ts_end; ``id.orig_*`` -> src, ``id.resp_*`` -> dst
(ICMP "ports" are not stored); ``proto``; ``service`` -> app; ``orig_*``/``resp_*`` ->
``*_out``/``*_in``; ``conn_state`` -> ``action_raw``; ``uid`` -> ``flow_key`` ``zeek:<uid>``
(the dns/ssl/http logs enrich by it). Direction from ``local_orig``/``local_resp``: T/F outbound,
F/T inbound, T/T internal, else unknown.

Ambiguity default (see ``OPTIONS``): Zeek blocks nothing, so every action is ``unknown``;
``unanswered=denied`` maps never-answered TCP attempts (S0, REJ, RSTOS0, SH) to denied. Runs of
data lines are read column-wise, any row the vectorised checks do not vouch for by the per-line
reader (``ZeekReader.line``), so the results are the same; the reader is shared by the
``zeek_dns``, ``zeek_ssl`` and ``zeek_http`` loaders. Field reference and sources:
``tests/data/zeek_conn/README.md``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv

from ..errors import InputError, OptionError
from ..keep import line_hashes
from ..schema import ENRICHMENT, NETWORK_EVENTS
from ..sources import Source, decode_line
from ..timeparse import TimeParseError, parse_time
from . import fields
from .base import FileLoad, LoadOptions, LoadResult
from .blocks import json_pieces, line_runs, line_spans, numbered_lines, valid_utf8
from .columnar import (
    BAD,
    DEEP,
    IPV4,
    NULL_TEXT,
    beyond_python,
    blank,
    constant,
    ip_or_bad,
    mapped,
    plain_int,
    table_of,
)
from .records import WHOLE_DOCUMENT_LIMIT, first_line, json_line_record, read_text

name = "zeek_conn"
kind = "network"
description = "Zeek conn.log (TSV with #fields header, or JSON lines)"

OPTIONS = {
    "unanswered": "unknown (default) or denied: map unanswered TCP (S0, REJ, RSTOS0, SH) to denied",
}
"""``--option zeek_conn.KEY=VALUE`` settings."""

UNANSWERED_STATES = frozenset({"S0", "REJ", "RSTOS0", "SH"})
"""TCP connection states in which the responder never accepted the originator's SYN."""
UNANSWERED_CHOICES = ("unknown", "denied")

_CONN_KEYS = frozenset(
    {"conn_state", "history", "orig_pkts", "resp_pkts", "orig_ip_bytes", "missed_bytes"}
)
_ESCAPES = re.compile(r"(?:\\x[0-9a-fA-F]{2})+")
_CONTAINER_PREFIXES = ("set[", "vector[", "table[")
_HEADER = "Zeek header line"


# --- the shared Zeek reader ---------------------------------------------------------------------


def unescape(text: str) -> str:
    """Undo the ASCII writer's ``\\xHH`` escapes (runs of them are UTF-8 bytes)."""
    if "\\x" not in text:
        return text
    return _ESCAPES.sub(
        lambda m: bytes.fromhex(m.group(0).replace("\\x", "")).decode("utf-8", "replace"), text
    )


@dataclass
class ZeekHeader:
    """The directives of one TSV header block (defaults as the ASCII writer documents them)."""

    separator: str = "\t"
    set_separator: str = ","
    empty_field: str = "(empty)"
    unset_field: str = "-"
    path: str | None = None
    fields: list[str] | None = None
    types: list[str] | None = None
    containers: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class ZeekHead:
    """What a file's head says about it: TSV or JSON, its ``#path`` and its field names."""

    tsv: bool
    path: str | None
    keys: frozenset[str]


def sniff_head(head: bytes) -> ZeekHead | None:
    """Read the first header block (TSV) or the first record (JSON) of a Zeek log; None if neither."""
    first = first_line(head)
    if first.startswith(b"#separator"):
        path: str | None = None
        keys: frozenset[str] = frozenset()
        separator = "\t"
        for raw in head.lstrip(b"\xef\xbb\xbf").splitlines():
            line = raw.decode("utf-8", "replace").rstrip("\r")
            if not line.startswith("#"):
                break
            if line.startswith("#separator"):
                separator = unescape(line[len("#separator") :].strip()) or "\t"
                continue
            directive, _, value = line[1:].partition(separator)
            if directive == "path":
                path = value.strip()
            elif directive == "fields":
                keys = frozenset(dotted_names(value.split(separator)))
        return ZeekHead(tsv=True, path=path, keys=keys)
    names = bare_names(first)
    if names is not None:
        return ZeekHead(tsv=True, path=None, keys=frozenset(dotted_names(names)))
    if first.startswith(b"{"):
        try:
            record = json.loads(first)
        except (ValueError, RecursionError):
            # one object over many lines (a pretty-printed record): its first line is a lone "{"
            record = _pretty_first(head) if first == b"{" else None
            if record is None:
                return None
        if not isinstance(record, dict):
            return None
        record = _flatten_id(record)
        if "ts" not in record or "uid" not in record:
            return None
        path_value = record.get("_path")
        return ZeekHead(
            tsv=False,
            path=path_value if isinstance(path_value, str) else None,
            keys=frozenset(record),
        )
    return None


def _pretty_first(head: bytes) -> dict[str, Any] | None:
    """The first object of a head that holds pretty-printed JSON objects, or None."""
    text = head.decode("utf-8", "replace").lstrip("\ufeff \t\r\n")
    try:
        record, _ = json.JSONDecoder().raw_decode(text)
    except (ValueError, RecursionError):
        return None
    return record if isinstance(record, dict) else None


_SCOPED = {f"id_{key}": f"id.{key}" for key in ("orig_h", "orig_p", "resp_h", "resp_p")}
"""The ``conn_id`` fields as written with ``redef Log::default_scope_sep = "_"`` (``id_orig_h``;
used so that Elasticsearch and Splunk do not read the dots as nesting), and Zeek's default
spelling (``Log::default_scope_sep = "."``: ``id.orig_h``) they are read as."""
_FIELD_NAME = re.compile(r"[A-Za-z_@][A-Za-z0-9_.@-]*")


def dotted_names(names: list[str]) -> list[str]:
    """Field names with the ``conn_id`` fields in Zeek's default spelling (``id_orig_h`` ->
    ``id.orig_h``); a file naming both spellings keeps the dotted one."""
    present = set(names)
    return [_SCOPED[n] if n in _SCOPED and _SCOPED[n] not in present else n for n in names]


def bare_names(first: bytes) -> list[str] | None:
    """The column names of a bare header line (``ts<TAB>uid<TAB>id.orig_h ...``, as tools that
    cut Zeek's TSV write it: no ``#separator``/``#fields`` block, tab-separated names), or None."""
    text = first.decode("utf-8", "replace").removeprefix("\ufeff").rstrip("\r")
    names = text.split("\t")
    if len(names) < 3 or "ts" not in names or "uid" not in names:
        return None
    if not all(_FIELD_NAME.fullmatch(n) for n in names):
        return None
    return names


def _flatten_id(record: dict[str, Any]) -> dict[str, Any]:
    """Turn a nested ``"id": {"orig_h": ...}`` (some JSON pipelines) and the ``id_orig_h`` keys of
    ``Log::default_scope_sep = "_"`` into Zeek's dotted keys (a dotted key with a value wins)."""
    if any(key in record for key in _SCOPED):
        record = dict(record)
        for key, dotted in _SCOPED.items():
            if key in record and record.get(dotted) is None:
                record[dotted] = record[key]
    nested = record.get("id")
    if isinstance(nested, dict):
        record = {k: v for k, v in record.items() if k != "id"}
        for key, value in nested.items():
            record.setdefault(f"id.{key}", value)
    return record


def _header_line(text: str, header: ZeekHeader, line: int, load: FileLoad) -> ZeekHeader:
    """Apply one ``#`` line; ``#separator`` starts a new header block (rotated logs concatenated)."""
    if text.startswith("#separator"):
        load.skip(_HEADER)
        value = unescape(text[len("#separator") :].strip())
        return ZeekHeader(separator=value or "\t")
    directive, found, value = text[1:].partition(header.separator)
    if not found:
        directive, _, value = text[1:].partition(" ")
    if directive == "fields":
        header.fields = dotted_names(value.split(header.separator))
        header.types = None
        header.containers = set()
    elif directive == "types":
        types = value.split(header.separator)
        if header.fields is None or len(types) != len(header.fields):
            expected = "no #fields" if header.fields is None else f"{len(header.fields)} #fields"
            load.reject(line, f"#types has {len(types)} entries where there are {expected}", text)
            return header
        header.types = types
        header.containers = {
            f
            for f, t in zip(header.fields, types, strict=True)
            if t.startswith(_CONTAINER_PREFIXES)
        }
    elif directive == "set_separator":
        header.set_separator = unescape(value) or ","
    elif directive == "empty_field":
        header.empty_field = value
    elif directive == "unset_field":
        header.unset_field = value
    elif directive == "path":
        header.path = value.strip() or None
    elif directive not in ("open", "close"):
        load.skip("comment line")
        return header
    load.skip(_HEADER)
    return header


def _tsv_record(header: ZeekHeader, values: list[str]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    assert header.fields is not None
    for key, value in zip(header.fields, values, strict=True):
        if value == header.unset_field:
            record[key] = None
        elif key in header.containers:
            record[key] = (
                []
                if value == header.empty_field
                else [unescape(v) for v in value.split(header.set_separator)]
            )
        elif value == header.empty_field:
            record[key] = ""
        else:
            record[key] = unescape(value)
    return record


Build = Callable[[np.ndarray], tuple[dict[str, Any], np.ndarray]]
"""Rows of the records at ``indices`` (of a checked run): their columns, and for each row the
index of the record it came from (a record may give several rows, in order)."""
Checked = (
    tuple[pa.Array | None, pa.Array | None, Build]
    | tuple[pa.Array | None, pa.Array | None, Build, pa.Array | None]
)
"""A column-wise check's answer: the normalised verdict (None: no keep policy applies), each
row's skip reason (None: nothing skipped), the builder of the rows of loadable records, and
optionally each row's ``ts_note`` (counted for every loaded row)."""


@dataclass(frozen=True)
class ZeekLog:
    """One Zeek log type as a loader reads it, per line and column-wise."""

    path: str
    """The ``#path``/``_path`` of its records (others are skipped)."""
    name: str
    kind: str
    unit: str
    output: pa.Schema
    json_fields: pa.Schema
    """The fields read, typed as the JSON writer writes them (``ts`` as a number)."""
    record: Callable[[int, dict[str, Any], str, FileLoad], None]
    """The per-line conversion of one record (emit, reject or skip)."""
    columns: Callable[[dict[str, pa.Array], np.ndarray], Checked]
    """The column-wise check: clears ``ok`` for rows the per-line reader must read."""
    lists: frozenset[str] = frozenset()
    """Fields read as lists of text (a TSV set/vector, a JSON array)."""


def read_zeek(
    source: Source, options: LoadOptions, log: ZeekLog, *, fast: bool = True
) -> LoadResult:
    """Every line of a Zeek TSV or JSON log into ``log``'s rows (column-wise where ``fast``)."""
    load = FileLoad(source, options, log.name, log.kind, log.output, unit=log.unit)
    ZeekReader(load, log).read(fast=fast and options.epoch_unit in ("auto", "s"))
    return load.result()


def forced_path(source: Source, log: ZeekLog, load: FileLoad) -> tuple[str, ...]:
    """The ``#path`` (TSV) or ``_path`` (JSON) of the file's first block or record when it names
    another log than ``log``: every Zeek loader's sniff scores such a file 0, so it is read as
    ``log`` only because ``--format`` forced it; its records are then read as ``log`` (noted),
    while later blocks of yet another path are still skipped."""
    zeek = sniff_head(source.head())
    if zeek is None or zeek.path is None or zeek.path == log.path:
        return ()
    load.note(f"Zeek #path {zeek.path} read as {log.path} (--format forced it)")
    return (zeek.path,)


_DATA_FIRST = bytes(b for b in range(0x21, 0x7F) if b != 0x23)
"""First bytes of TSV lines read column-wise: printable, not a space, not ``#`` (a header)."""
_ISO_TS = re.compile(rb'"ts"\s*:\s*"')


class ZeekReader:
    """One Zeek file into a ``FileLoad``: the header state, the per-line reader (the reference)
    and the column-wise runs of data lines."""

    def __init__(self, load: FileLoad, log: ZeekLog) -> None:
        self.load = load
        self.log = log
        self.header = ZeekHeader()
        first = first_line(load.source.head(4096))
        names = None if first.startswith(b"#") else bare_names(first)
        self.bare = names is not None
        """The file opens with a bare header line of column names (read once, then data)."""
        if names is not None:
            self.header = ZeekHeader(fields=dotted_names(names))
        self.tsv = first.startswith(b"#") or self.bare
        self.pretty = not self.tsv and first == b"{"
        """The file holds pretty-printed JSON objects (each over many lines), not JSON lines."""
        self.paths = frozenset({log.path, *forced_path(load.source, log, load)})
        """The ``#path``/``_path`` values read as this log (others are skipped)."""
        self._json_schemas = {
            ts_type: pa.schema(
                [
                    *(f.with_type(ts_type) if f.name == "ts" else f for f in log.json_fields),
                    pa.field("_path", pa.string()),
                ]
            )
            for ts_type in (pa.float64(), pa.string())
        }
        self._scoped = [(k, d) for k, d in _SCOPED.items() if d in log.json_fields.names]
        for ts_type, schema in self._json_schemas.items():
            for key, dotted in self._scoped:
                schema = schema.append(log.json_fields.field(dotted).with_name(key))
            self._json_schemas[ts_type] = schema

    def read(self, *, fast: bool = True) -> None:
        if self.pretty:
            self._pretty_objects()
            return
        first_bytes, last_bytes = (_DATA_FIRST, None) if self.tsv else (b"{", b"}")
        for first, blob, count in line_runs(self.load.source, first_bytes, last_bytes):
            if self.bare and count:  # the bare header opens this run: read it, then the rest
                cut = blob.find(b"\n")
                self.line(first, blob if cut < 0 else blob[:cut].rstrip(b"\r"))
                if cut < 0:
                    continue
                first, blob, count = first + 1, blob[cut + 1 :], count - 1
            if count == 0:
                self.line(first, blob)
            elif not fast:
                self._lines(first, blob)
            elif self.tsv:
                self._tsv_run(first, blob, count)
            else:
                self._json_run(first, blob, count)

    def _lines(self, first: int, blob: bytes) -> None:
        for offset, raw in enumerate(blob.split(b"\n")):
            self.line(first + offset, raw.rstrip(b"\r"))

    # --- per line (the reference) ---------------------------------------------------------------

    def line(self, line: int, raw_bytes: bytes, load: FileLoad | None = None) -> None:
        """One line (without its end of line) through the per-line reader."""
        load = load or self.load
        if self.tsv:
            self._tsv_line(line, raw_bytes, load)
        else:
            self._json_line(line, raw_bytes, load)

    def _tsv_line(self, line: int, raw_bytes: bytes, load: FileLoad) -> None:
        text, note = decode_line(raw_bytes)
        if note:
            load.note(note)
        if line == 1:
            text = text.removeprefix("\ufeff")
        if self.bare and text.strip():
            self.bare = False  # the header line: its names are the header's fields already
            load.skip(_HEADER)
            return
        if text.startswith("#"):
            self.header = _header_line(text, self.header, line, load)
            return
        if not text.strip():
            load.skip("blank line")
            return
        header = self.header
        if header.fields is None:
            load.reject(line, "data line before any #fields header", text)
            return
        if header.path is not None and header.path not in self.paths:
            load.skip(f"Zeek {header.path} record (not {self.log.path})")
            return
        values = text.split(header.separator)
        if len(values) != len(header.fields):
            load.reject(line, f"{len(values)} fields where #fields has {len(header.fields)}", text)
            return
        self.log.record(line, _tsv_record(header, values), text, load)

    def _json_line(self, line: int, raw_bytes: bytes, load: FileLoad) -> None:
        found = json_line_record(line, raw_bytes, load)
        if found is None:
            return
        record = _flatten_id(found[0])
        path = record.get("_path")
        if isinstance(path, str) and path not in self.paths:
            load.skip(f"Zeek {path} record (not {self.log.path})")
            return
        self.log.record(line, record, found[1], load)

    def _pretty_objects(self) -> None:
        """Pretty-printed JSON objects one after another (one Corelight/Zeek record written with
        indentation), each read as a record at the line where its ``{`` stands."""
        load, source = self.load, self.load.source
        if source.size() > WHOLE_DOCUMENT_LIMIT and not source.compression:
            raise InputError(
                f"{source.display}: pretty-printed JSON over {WHOLE_DOCUMENT_LIMIT >> 20} MiB; "
                "write it as JSON lines"
            )
        text = read_text(source, load.stats).removeprefix("\ufeff")
        decoder = json.JSONDecoder()
        at, line = 0, 1
        while True:
            start = at + len(text[at:]) - len(text[at:].lstrip())
            if start >= len(text):
                return
            line += text.count("\n", at, start)
            try:
                record, end = decoder.raw_decode(text, start)
            except (ValueError, RecursionError) as exc:
                reason = f"not valid JSON ({exc.__class__.__name__}: {str(exc)[:80]})"
                load.reject(line, reason, text[start : start + 4096])
                return
            raw = text[start:end]
            here, line, at = line, line + raw.count("\n"), end
            if not isinstance(record, dict):
                load.reject(here, f"not a JSON object but a JSON {type(record).__name__}", raw)
                continue
            if fields.may_hold_surrogates(raw):
                record, changed = fields.without_surrogates(record)
                if changed:
                    load.note(fields.SURROGATE_NOTE)
            record = _flatten_id(record)
            path = record.get("_path")
            if isinstance(path, str) and path not in self.paths:
                load.skip(f"Zeek {path} record (not {self.log.path})")
                continue
            self.log.record(here, record, raw[:4096], load)

    # --- column-wise ----------------------------------------------------------------------------

    def _tsv_run(self, first: int, blob: bytes, count: int) -> None:
        header, log = self.header, self.log
        if header.fields is None:
            self._lines(first, blob)
        elif header.path is not None and header.path not in self.paths:
            if valid_utf8(blob):  # no line would note invalid UTF-8
                self.load.skip(f"Zeek {header.path} record (not {log.path})", count)
            else:
                self._lines(first, blob)
        else:
            parsed = self._tsv_columns(blob, count)
            if parsed is None:
                self._lines(first, blob)
            else:
                cols, ok, spans = parsed
                self._settle(first, spans, cols, ok)

    def _tsv_columns(
        self, blob: bytes, count: int
    ) -> tuple[dict[str, pa.Array], np.ndarray, Spans] | None:
        """The columns read, parsed by pyarrow, and which lines they stand for (the others, of
        another shape, with an escape or a stray CR, go line by line); None: all go line by line."""
        header, log = self.header, self.log
        names, sep = header.fields, header.separator
        assert names is not None
        if len(sep) != 1 or not sep.isascii() or sep in "\r\n-":
            return None
        index = {key: i for i, key in enumerate(names)}  # a name twice: the last one, as per line
        used = [f.name for f in log.json_fields]
        if any(f in header.containers and f not in log.lists for f in used if f in index):
            return None
        wanted = {f: index[f] for f in used if f in index}
        include = sorted(set(wanted.values())) or [0]
        columns = [f"c{i}" for i in range(len(names))]
        options = (
            pv.ReadOptions(column_names=columns, block_size=1 << 20),
            pv.ParseOptions(
                delimiter=sep,
                quote_char=False,
                double_quote=False,
                escape_char=False,
                newlines_in_values=False,
                ignore_empty_lines=False,
            ),
            pv.ConvertOptions(
                column_types={columns[i]: pa.string() for i in include},
                include_columns=[columns[i] for i in include],
                null_values=[header.unset_field],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
        # Lines pyarrow would read differently stand in as a line of unset fields (and are read
        # line by line later): a CR inside a line (pyarrow ends the row there), an escape, bytes
        # that are not UTF-8, and (found when pyarrow refuses the run) another number of fields.
        spans = Spans(blob, count)
        odd = np.zeros(count, dtype=bool)
        if b"\r" in blob:
            cr = spans.positions(0x0D)
            rows = spans.line_of(cr)
            odd[rows[cr != spans.ends[rows] - 1]] = True  # a CRLF's CR is fine
        if b"\\" in blob and b"\\x" in blob:  # one byte: memchr-fast
            view = spans.view
            odd[spans.line_of(np.flatnonzero((view[:-1] == 0x5C) & (view[1:] == 0x78)))] = True
        if not valid_utf8(blob):
            odd[spans.line_of(np.flatnonzero(spans.view >= 0x80))] = True
        table = None
        for attempt in range(2):
            data = spans.stand_in(odd, sep.join(["-"] * len(names)).encode())
            try:
                table = pv.read_csv(pa.py_buffer(data), *options)
                break
            except pa.ArrowInvalid:
                if attempt:
                    return None
                seps = spans.positions(ord(sep))
                inside = np.searchsorted(seps, spans.ends) - np.searchsorted(seps, spans.starts)
                odd |= inside != len(names) - 1
        if table is None or table.num_rows != count:
            return None
        cols: dict[str, pa.Array] = {}
        for key in used:
            values = (
                table.column(columns[wanted[key]]).combine_chunks()
                if key in wanted
                else pa.nulls(count, pa.string())
            )
            if key in log.lists:
                cols[key] = _tsv_list(values, key in header.containers, header)
            else:
                cols[key] = _tsv_text(values, header.empty_field)
        return cols, ~odd, spans

    def _json_run(self, first: int, blob: bytes, count: int) -> None:
        head = blob[: blob.find(b"\n")] if count > 1 else blob
        schema = self._json_schemas[pa.string() if _ISO_TS.search(head) else pa.float64()]
        expected = self.log.path
        for at, piece, m, table in json_pieces(blob, first, count, schema):
            if table is None:
                self._lines(at, piece)
                continue
            cols = {f.name: table.column(f.name).combine_chunks() for f in self.log.json_fields}
            for key, dotted in self._scoped:  # id_orig_h where id.orig_h is unset, as per line
                alt = table.column(key).combine_chunks()
                if alt.null_count < len(alt):
                    cols[dotted] = pc.coalesce(cols[dotted], alt)
            path = table.column("_path").combine_chunks()
            other = pc.and_(
                pc.is_valid(path), pc.invert(pc.is_in(path, value_set=pa.array(sorted(self.paths))))
            )
            skip = None
            if pc.any(other).as_py():
                reasons = pc.binary_join_element_wise(
                    "Zeek ", path, f" record (not {expected})", ""
                )
                skip = pc.if_else(other, reasons, NULL_TEXT)
            spans = Spans(piece, m)
            self._settle(at, spans, cols, np.ones(m, dtype=bool), skip, from_json=True)

    def _settle(
        self,
        first: int,
        spans: Spans,
        cols: dict[str, pa.Array],
        ok: np.ndarray,
        skip: pa.Array | None = None,
        *,
        from_json: bool = False,
    ) -> None:
        checked = self.log.columns(cols, ok)
        if from_json:
            beyond_python_spans(spans, ok)
        settle_run(self.load, first, spans, ok, checked, self.line, self.log.output, skip)


# --- column-wise runs (generic: loaders of other formats use these too) ------------------------


def settle_run(
    load: FileLoad,
    first: int,
    spans: Spans,
    ok: np.ndarray,
    checked: Checked,
    per_line: Callable[[int, bytes, FileLoad], None],
    output: pa.Schema,
    skip: pa.Array | None = None,
    notes: pa.Array | None = None,
) -> None:
    """A run of lines ``first``.. after its column-wise check (``ok`` cleared for the rows the
    check cannot vouch for): the loadable rows built (in ``run``, only violations and the anchor
    sample), skipped ones counted by reason, the others read by ``per_line`` into a side load,
    and the rows merged in line order. ``skip``: rows skipped whatever their values (a reason
    each, null for the others)."""

    def read_apart(index: int, side: FileLoad) -> None:
        per_line(first + index, spans.line(index).rstrip(b"\r"), side)

    settle_records(load, first, ok, checked, read_apart, output, skip, notes)


def settle_records(
    load: FileLoad,
    first: int,
    ok: np.ndarray,
    checked: Checked,
    read_apart: Callable[[int, FileLoad], None],
    output: pa.Schema,
    skip: pa.Array | None = None,
    notes: pa.Array | None = None,
) -> None:
    """``settle_run`` for records numbered ``first``.. that need not be lines (Parquet rows):
    ``read_apart(index, load)`` reads record ``index`` of the run with the per-record reader.
    ``notes``: each row's ``ts_note`` (counted for every loaded row, kept or not)."""
    n = len(ok)
    verdict, reasons, build = checked[0], checked[1], checked[2]
    if len(checked) > 3 and notes is None:
        notes = checked[3]
    if skip is not None:
        ok |= _mask(pc.is_valid(skip))
        reasons = skip if reasons is None else pc.coalesce(skip, reasons)
    skipped = np.zeros(n, dtype=bool)
    if reasons is not None:
        skipped = ok & _mask(pc.is_valid(reasons))
    loadable = ok & ~skipped
    keep = loadable
    keeper, policy = load.keeper, load.options.keep
    if keeper is not None and policy is not None and verdict is not None:
        violation = _mask(pc.is_in(verdict, value_set=pa.array(list(policy.actions))))
        lines = np.arange(first, first + n, dtype=np.int64)
        sampled = line_hashes(load.source.display, lines) <= keeper.bound(load.name)
        keep = loadable & (violation | sampled)
    kept = np.flatnonzero(keep)
    built: pa.Table | None = None
    if len(kept):
        values, records = build(kept)
        rows = len(records)
        values["source_format"] = constant(load.name, rows)
        values["source_path"] = constant(load.source.display, rows)
        values["source_line"] = pa.array(kept[records] + first, pa.int64())
        built = table_of(values, rows, output)
    # Refused rows before the run's first loadable one are read first, so the early stop on a
    # file whose first records all fail sees them in line order.
    bad = np.flatnonzero(~ok)
    first_good = int(np.argmax(loadable)) if loadable.any() else n
    side = load.apart()
    for i in bad[bad < first_good].tolist():
        read_apart(i, side)
    loaded = int(loadable.sum())
    load.count_loaded(loaded)
    if notes is not None and loaded:
        counts = pc.value_counts(pc.drop_null(pc.filter(notes, pa.array(loadable))))
        for item in counts.to_pylist():
            load.note(item["values"], item["counts"])
    for i in bad[bad >= first_good].tolist():
        read_apart(i, side)
    if skipped.any():
        assert reasons is not None
        counts = pc.value_counts(pc.filter(reasons, pa.array(skipped)))
        for item in counts.to_pylist():
            load.skip(item["values"], item["counts"])
    parts = [t for t in (built, side.rows.table()) if t is not None and t.num_rows]
    unkept = loaded - len(kept)
    if not parts:
        load.keep_rows(output.empty_table(), unkept=unkept)
        return
    merged = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
    if len(parts) > 1:
        merged = merged.sort_by([("source_line", "ascending")])  # stable: a record's rows stay
    load.keep_rows(merged, unkept=unkept)


def long_line_possible(blob: bytes, limit: int) -> bool:
    """Whether a line of ``blob`` may be longer than ``limit`` bytes: such a line spans a whole
    window of ``limit // 2`` bytes without a newline (memchr over a few windows, no line split)."""
    width = max(1, limit // 2)
    return any(
        blob.find(b"\n", at, at + width) < 0 for at in range(0, len(blob) - width + 1, width)
    )


def beyond_python_spans(spans: Spans, ok: np.ndarray) -> None:
    """Clear ``ok`` for lines ``columnar.beyond_python`` finds (only lines over 1,000 bytes
    can be such lines, so a short run needs no line split)."""
    if len(spans.blob) > 2 * DEEP:
        ok &= ~beyond_python(spans.blob, spans.starts, spans.ends)


GIVE_UP_LINES = 1000
"""After this many refused lines, more refused than parsed, a file is read line by line."""


def read_json_runs(
    load: FileLoad,
    schema: pa.Schema,
    columns: Callable[[dict[str, pa.Array], np.ndarray], Checked],
    per_line: Callable[[int, bytes, FileLoad], None],
    output: pa.Schema = NETWORK_EVENTS,
    *,
    fast: bool = True,
    flat: Callable[[pa.Table], dict[str, pa.Array] | None] | None = None,
    guard: Callable[[Spans, np.ndarray], None] | None = None,
) -> None:
    """Every line of a JSON-lines file into ``load``: runs of object lines parsed once by
    pyarrow with ``schema`` (the fields read) and checked by ``columns``; other lines, pieces
    pyarrow refuses and rows the check refuses through ``per_line``. Unlike
    ``columnar.read_json_lines`` every row is parsed with every field at once (no second parse
    of the kept rows): cheaper when most rows are kept. ``flat``: the columns ``columns`` reads
    from a parsed piece (default: its top-level columns; None: read the piece line by line);
    ``guard`` clears ``ok`` for more lines (given the piece's lines). When pyarrow refuses most
    lines of the first runs (types that change line by line), the rest goes line by line."""
    parsed = refused = 0
    for first, blob, count in line_runs(load.source, b"{", b"}"):
        if count == 0 or not fast or (refused > GIVE_UP_LINES and refused > parsed):
            for line, raw in numbered_lines(first, blob, count):
                per_line(line, raw, load)
            continue
        for at, piece, m, table in json_pieces(blob, first, count, schema):
            if table is None:
                refused += m
                for line, raw in numbered_lines(at, piece):
                    per_line(line, raw, load)
                continue
            parsed += m
            cols = (
                {f: table.column(f).combine_chunks() for f in schema.names}
                if flat is None
                else flat(table)
            )
            if cols is None:
                for line, raw in numbered_lines(at, piece):
                    per_line(line, raw, load)
                continue
            ok, spans = np.ones(m, dtype=bool), Spans(piece, m)
            checked = columns(cols, ok)
            beyond_python_spans(spans, ok)
            if guard is not None:
                guard(spans, ok)
            settle_run(load, at, spans, ok, checked, per_line, output)


def per_combination(
    columns: dict[str, pa.Array],
    convert: Callable[[dict[str, Any]], tuple[Any, ...]],
    types: tuple[pa.DataType, ...],
) -> tuple[pa.Array, ...]:
    """``convert`` of each row (a dict of the columns' values), called once per distinct
    combination of values; its tuple's items as columns of ``types``."""
    n = len(next(iter(columns.values())))
    key = np.zeros(n, dtype=np.int64)
    radix = 1
    for values in columns.values():
        encoded = pc.dictionary_encode(values)
        codes = np.asarray(pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False))
        size = len(encoded.dictionary) + 1
        if radix * size >= 2**62:  # too many combinations for one number: number the rows
            stacked = np.stack(
                [
                    np.asarray(pc.fill_null(pc.dictionary_encode(v).indices, -1).to_numpy())
                    for v in columns.values()
                ],
                axis=1,
            )
            key = np.unique(stacked, axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)
            break
        key += (codes.astype(np.int64) + 1) * radix
        radix *= size
    encoded = pc.dictionary_encode(pa.array(key))
    inverse = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    first = np.empty(len(encoded.dictionary), dtype=np.int64)
    first[inverse[::-1]] = np.arange(n - 1, -1, -1)  # the last write is the first occurrence
    picks = pa.array(first)
    rows = {name: values.take(picks).to_pylist() for name, values in columns.items()}
    results = [convert({name: rows[name][j] for name in columns}) for j in range(len(first))]
    where = pa.array(inverse)
    return tuple(pa.array([r[i] for r in results], t).take(where) for i, t in enumerate(types))


class Spans:
    """The lines of a run: where they start and end (found when first needed)."""

    def __init__(self, blob: bytes, count: int) -> None:
        self.blob, self.count = blob, count
        self._spans: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def view(self) -> np.ndarray:
        return np.frombuffer(self.blob, dtype=np.uint8)

    @property
    def starts(self) -> np.ndarray:
        if self._spans is None:
            self._spans = line_spans(self.blob)
        return self._spans[0]

    @property
    def ends(self) -> np.ndarray:
        if self._spans is None:
            self._spans = line_spans(self.blob)
        return self._spans[1]

    def positions(self, byte: int) -> np.ndarray:
        """Offsets of every ``byte`` in the run."""
        return np.flatnonzero(self.view == byte)

    def line_of(self, positions: np.ndarray) -> np.ndarray:
        """The line (0-based in the run) of each offset."""
        return np.searchsorted(self.starts, positions, side="right") - 1

    def line(self, index: int) -> bytes:
        """Line ``index`` (0-based) without its ``\\n``."""
        return self.blob[self.starts[index] : self.ends[index]]

    def stand_in(self, odd: np.ndarray, dummy: bytes) -> bytes:
        """The run with ``dummy`` in place of each ``odd`` line."""
        if not odd.any():
            return self.blob
        starts, ends = self.starts, self.ends
        pieces, at = [], 0
        for i in np.flatnonzero(odd).tolist():
            if i > at:
                pieces.append(self.blob[starts[at] : ends[i - 1]])
            pieces.append(dummy)
            at = i + 1
        if at < self.count:
            pieces.append(self.blob[starts[at] : ends[self.count - 1]])
        return b"\n".join(pieces)


def _tsv_text(values: pa.Array, empty_field: str) -> pa.Array:
    """A TSV column as the per-line reader gives it: ``#empty_field`` is empty text."""
    empty = pc.equal(values, empty_field)
    if not pc.any(empty).as_py():
        return values
    return pc.if_else(empty, "", values)


def _tsv_list(values: pa.Array, container: bool, header: ZeekHeader) -> pa.Array:
    """A TSV column read as a list: a set/vector split by ``#set_separator`` (empty: no items);
    a plain column (a file without ``#types``) split by commas, as the loaders do."""
    if container:
        empty = pc.equal(values, header.empty_field)
        values = pc.if_else(empty, NULL_TEXT, values)
        return pc.split_pattern(values, header.set_separator)
    return pc.split_pattern(_tsv_text(values, header.empty_field), ",")


# --- vectorised checks of Zeek values -----------------------------------------------------------

_ISO_Z = (
    r"^(?P<d>(?:19|20)\d\d-\d\d-\d\d)T(?P<t>(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d)"
    r"(?:\.(?P<f>\d+))?Z$"
)
_MAX_WHOLE_S = 9_223_372_035
"""Whole seconds up to this, plus any fraction, are inside timestamp[ns]."""
_NS = 1_000_000_000
_NULL_INT = pa.scalar(None, pa.int64())


def _mask(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean array as numpy (null = False)."""
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)


def _fraction_ns(digits: pa.Array) -> pa.Array:
    """Fraction digits as ns, the digits past the ninth dropped (``int()`` of a Decimal)."""
    return pc.cast(pc.utf8_rpad(pc.utf8_slice_codeunits(digits, 0, 9), 9, "0"), pa.int64())


def exact_ns(values: pa.Array, ok: np.ndarray, *, required: bool, iso: bool = False) -> pa.Array:
    """Decimal epoch seconds (text, or a JSON number by its shortest digits, as ``repr``) as
    exact int64 ns, as ``parse_epoch``/``interval_ns`` give them (``int()`` of the Decimal times
    10**9; seconds by magnitude, so no note); with ``iso``, ``YYYY-MM-DDTHH:MM:SS[.f]Z`` too.
    Null stays null unless ``required``; anything else clears ``ok`` (the per-line reader
    decides): a sign, an exponent, blanks, more than 10 whole digits or 18 significant ones."""
    if not pa.types.is_string(values.type):
        values = pc.cast(values, pa.string())  # a float's shortest round-trip digits, as repr
    uniform = _uniform_ns(values)
    if uniform is not None:
        if required and uniform.null_count:
            ok &= _mask(pc.is_valid(uniform))
        return uniform
    length = pc.binary_length(values)
    dot = pc.find_substring(values, ".")
    pointed = pc.greater_equal(dot, 0)
    whole_digits = pc.if_else(pointed, dot, length)
    places = pc.if_else(pointed, pc.subtract(pc.subtract(length, dot), 1), 0)
    digits = pc.replace_substring(values, ".", "", max_replacements=1)
    significant = pc.utf8_lpad(pc.utf8_ltrim(digits, characters="0"), 1, "0")
    shape = pc.and_(
        pc.and_(pc.ascii_is_decimal(digits), pc.less_equal(pc.binary_length(significant), 18)),
        pc.and_(
            pc.and_(pc.greater_equal(whole_digits, 1), pc.less_equal(whole_digits, 10)),
            pc.and_(pc.less_equal(places, 27), pc.or_(pc.invert(pointed), pc.greater(places, 0))),
        ),
    )
    good = _mask(shape)
    if not good.all():
        significant = pc.if_else(pa.array(good), significant, NULL_TEXT)
    number = pc.cast(significant, pa.int64())  # < 10**18: exact in Decimal's 28 digits
    # whole seconds past _MAX_WHOLE_S (10 whole digits: at most 8 places) are out of range
    limit = pc.subtract(
        pc.multiply(_MAX_WHOLE_S + 1, pc.power(10, pc.min_element_wise(places, 8))), 1
    )
    over = pc.and_(pc.equal(whole_digits, 10), pc.greater(number, limit))
    good &= ~_mask(over)
    scale = pc.power(10, pc.abs(pc.subtract(9, places)))
    ns = pc.if_else(pc.less_equal(places, 9), pc.multiply(number, scale), pc.divide(number, scale))
    if iso and not good.all():
        stamp, stamped = iso_z_ns(values)
        ns = pc.if_else(pa.array(good), ns, stamp)
        good |= stamped
    allowed = good if required else good | _mask(pc.is_null(values))
    ok &= allowed
    return pc.if_else(pa.array(good), ns, _NULL_INT) if not good.all() else ns


def _uniform_ns(values: pa.Array) -> pa.Array | None:
    """``exact_ns`` at once for the usual column: every value (or null) is 1-10 digits, a point
    and the same number (1-8) of digits, and in range; None for any other column."""
    dot = pc.find_substring(values, ".")
    low, high = (v.as_py() for v in pc.min_max(dot).values())
    if low is None or low < 1 or high > 10:
        return None
    after = pc.subtract(pc.binary_length(values), dot)
    places_low, places_high = (v.as_py() for v in pc.min_max(after).values())
    places = places_low - 1
    if places_low != places_high or not 1 <= places <= 8:
        return None
    digits = pc.replace_substring(values, ".", "", max_replacements=1)
    if not _all(pc.ascii_is_decimal(digits)):
        return None
    number = pc.cast(digits, pa.int64())  # at most 18 digits
    if high == 10 and (pc.max(number).as_py() or 0) > (_MAX_WHOLE_S + 1) * 10**places - 1:
        return None
    return pc.multiply(number, 10 ** (9 - places))


def iso_z_ns(values: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """``YYYY-MM-DDTHH:MM:SS[.fraction]Z`` (years 1900-2099) as int64 ns, exactly as
    ``parse_iso``; the mask of the values read (others: the per-line reader decides)."""
    parts = pc.extract_regex(values, _ISO_Z)
    matched = _mask(pc.is_valid(parts))
    if not matched.any():
        return pa.nulls(len(values), pa.int64()), matched
    text = pc.binary_join_element_wise(
        pc.struct_field(parts, "d"), pc.struct_field(parts, "t"), "T"
    )
    text = pc.if_else(pa.array(matched), text, NULL_TEXT)
    stamp = pc.strptime(text, format="%Y-%m-%dT%H:%M:%S", unit="s", error_is_null=True)
    # strptime rolls 30 February over to March: a real date prints back as it was written
    real = _mask(pc.equal(pc.strftime(stamp, format="%Y-%m-%dT%H:%M:%S"), text))
    fraction = pc.if_else(pa.array(real), pc.struct_field(parts, "f"), "")
    ns = pc.add(pc.multiply(pc.cast(stamp, pa.int64()), _NS), _fraction_ns(fraction))
    return pc.if_else(pa.array(real), ns, pa.scalar(None, pa.int64())), real


def end_ns(ts: pa.Array, duration: pa.Array, ok: np.ndarray) -> pa.Array:
    """``ts + duration`` (a non-negative duration); a sum out of timestamp[ns] clears ``ok``."""
    over = pc.greater(ts, pc.subtract(pa.scalar(2**63 - 2, pa.int64()), duration))
    ok &= ~_mask(over)
    return pc.add(ts, duration)


_PLAIN_EDGES = r"^[!-~](?:.*[!-~])?$"


def plain_text(values: pa.Array, ok: np.ndarray) -> pa.Array:
    """``fields.text`` of values that need no stripping (a printable ASCII character at each
    end) or are blank; any other value clears ``ok``."""
    if pc.all(pc.string_is_ascii(values)).as_py() is not False and _all(pc.utf8_is_alnum(values)):
        return values  # Zeek's uids: nothing to strip, nothing blank
    edges = pc.match_substring_regex(values, _PLAIN_EDGES)
    ok &= _mask(edges) | _mask(blank(values))
    return pc.if_else(pc.and_(edges, pc.not_equal(values, "-")), values, NULL_TEXT)


def required(values: pa.Array, ok: np.ndarray) -> pa.Array:
    """A required value: null clears ``ok`` (the per-line reader rejects it)."""
    ok &= _mask(pc.is_valid(values))
    return values


def _all(values: pa.Array) -> bool:
    """Every non-null value is true."""
    return pc.all(values).as_py() is not False


def plain_ints(
    values: pa.Array, ok: np.ndarray | None, digits: int, maximum: int | None = None
) -> pa.Array:
    """``columnar.plain_int``, at once when every value is plain (the usual case)."""
    if (
        _all(pc.ascii_is_decimal(values))
        and (pc.max(pc.binary_length(values)).as_py() or 0) <= digits
    ):
        number = pc.cast(values, pa.int64())
        if maximum is None or (pc.max(number).as_py() or 0) <= maximum:
            return number
    return plain_int(values, ok, digits, maximum)


def port_numbers(values: pa.Array, ok: np.ndarray, exempt: np.ndarray) -> pa.Array:
    """``fields.port`` column-wise (text or JSON numbers); rows ``exempt`` (ICMP) have none."""
    if pa.types.is_string(values.type):
        number = plain_ints(values, None, 5, 65535)
        good = _mask(pc.is_valid(number)) | _mask(blank(values))
    else:
        number = values
        inside = pc.and_(pc.greater_equal(values, 0), pc.less_equal(values, 65535))
        good = _mask(inside) | _mask(pc.is_null(values))
    ok &= good | exempt
    return pc.if_else(pa.array(exempt), pa.scalar(None, pa.int64()), number)


def counters(values: pa.Array, ok: np.ndarray) -> pa.Array:
    """``fields.counter`` column-wise (text or JSON numbers)."""
    if pa.types.is_string(values.type):
        return plain_ints(values, ok, 18)
    ok &= _mask(pc.greater_equal(values, 0)) | _mask(pc.is_null(values))
    return values


def _bool_or_bad(value: str | None) -> Any:
    try:
        return zeek_bool(value, "bool")
    except fields.RowError:
        return BAD


def flags(values: pa.Array, ok: np.ndarray) -> pa.Array:
    """``zeek_bool`` column-wise (T/F text, or JSON booleans)."""
    if pa.types.is_boolean(values.type):
        return values
    if _all(pc.is_in(values, value_set=_TF)):
        return pc.equal(values, "T")
    return mapped(values, _bool_or_bad, ok, type=pa.bool_())


_TF = pa.array(["T", "F"])


@lru_cache(maxsize=1 << 16)
def _address(value: str) -> Any:
    return ip_or_bad(value)


def addresses(values: pa.Array, ok: np.ndarray) -> pa.Array:
    """``fields.ip`` once per distinct address that is not a canonical dotted quad (memoised
    across runs); bad ones clear ``ok``."""
    return mapped(values, _address, ok, same=IPV4)


# --- per-value conversions (the per-line reader's) ----------------------------------------------


def zeek_time(
    value: Any, label: str, format_name: str, options: LoadOptions
) -> tuple[int, str | None]:
    """A Zeek ``time`` value (epoch seconds, or ISO 8601 from the JSON writer) to ns and a note."""
    if fields.is_blank(value):
        raise fields.RowError(f"{label} is missing")
    if isinstance(value, (list, dict)):
        raise fields.RowError(f"{label} is not a time: {value!r}")
    try:
        return parse_time(
            value,
            default_tz=options.zone_for(format_name),
            epoch_unit=options.epoch_unit,
            expected_unit="s",
        )
    except TimeParseError as exc:
        raise fields.RowError(f"{label}: {exc}") from None


def zeek_bool(value: Any, label: str) -> bool | None:
    """A Zeek ``bool``: ``T``/``F`` in TSV, true/false in JSON; None when unset."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text in ("T", "true"):
            return True
        if text in ("F", "false"):
            return False
        if text in ("", "-"):
            return None
    raise fields.RowError(f"{label} is not a bool (T or F): {value!r}")


def address(value: Any, label: str) -> str:
    """A required address in canonical form."""
    result = fields.ip(value, label, required=True)
    assert result is not None
    return result


def zeek_uid(record: dict[str, Any]) -> str:
    """The connection ``uid`` (required: it is what other Zeek logs join on)."""
    uid = fields.text(record.get("uid"))
    if uid is None:
        raise fields.RowError("uid is missing")
    return uid


def interval_ns(value: Any, label: str) -> int | None:
    """A Zeek ``interval`` (decimal seconds) to integer ns, exactly; None when unset."""
    if fields.is_blank(value):
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise fields.RowError(f"{label} is not a number: {value!r}")
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip())
    except InvalidOperation:
        raise fields.RowError(f"{label} is not a number: {value!r}") from None
    if not number.is_finite():
        raise fields.RowError(f"{label} is not a number: {value!r}")
    return int(number * 1_000_000_000)


def domain_name(value: Any) -> str | None:
    """A DNS name as enrichment stores it: lower case, no trailing dot; None for blanks and IPs."""
    text = fields.text(value)
    if text is None or isinstance(value, (list, dict)):
        return None
    text = text.strip().rstrip(".").lower()
    if not text:
        return None
    return None if _is_address(text.strip("[]")) else text


def _is_address(text: str) -> bool:
    """Whether ``ipaddress`` reads ``text`` as an address (names skip the costly failed parse:
    an IPv4 address is digits and dots, an IPv6 one has a colon)."""
    if ":" not in text and not text.replace(".", "").isdigit():
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# --- enrichment logs (dns, ssl, http) -----------------------------------------------------------

Fact = tuple[str, str | None, str | None]
"""An enrichment fact: (flow_key, dst_domain, app)."""
FactsOrSkip = list[Fact] | str
"""The facts a record gives, or the reason it gives none (counted as skipped)."""
ColumnFacts = Callable[
    [dict[str, pa.Array], pa.Array, np.ndarray],
    tuple[pa.Array | None, Callable[[np.ndarray], tuple[dict[str, Any], np.ndarray]]],
]
"""The facts column-wise: given the columns, the ``zeek:<uid>`` keys and ``ok`` (to clear for
rows only the per-line reader can read), each row's skip reason and a builder of the rows of
records ``indices`` (``flow_key``, ``dst_domain``, ``app``) with their record per row."""


@dataclass(frozen=True)
class Enrichment:
    """A Zeek side log as enrichment: where its facts come from, per line and column-wise."""

    name: str
    path: str
    json_fields: pa.Schema
    """The fields the facts read (beside ``uid`` and ``ts``), typed as in JSON."""
    facts: Callable[[dict[str, Any], str], FactsOrSkip]
    columns: ColumnFacts
    lists: frozenset[str] = frozenset()


def read_zeek_enrichment(
    source: Source, options: LoadOptions, spec: Enrichment, *, fast: bool = True
) -> LoadResult:
    """Read a Zeek dns/ssl/http log into ``enrichment`` rows; ``spec.facts`` says which.

    A record that gives several facts (a DNS answer naming several addresses) is loaded once and
    gives several rows, all at the record's ``ts``.
    """
    return read_zeek(source, options, enrichment_log(spec, options), fast=fast)


def enrichment_log(spec: Enrichment, options: LoadOptions) -> ZeekLog:
    """The ``ZeekLog`` of an enrichment spec."""

    def record(line: int, record: dict[str, Any], raw: str, load: FileLoad) -> None:
        try:
            uid = zeek_uid(record)
            ts, note = zeek_time(record.get("ts"), "ts", spec.name, options)
            found = spec.facts(record, uid)
        except fields.RowError as exc:
            load.reject(line, str(exc), raw)
            return
        if isinstance(found, str):
            load.skip(found)
            return
        if not found:
            load.count_loaded(1)
            if note:
                load.note(note)
            return
        for index, (flow_key, domain, app) in enumerate(found):
            row = {"flow_key": flow_key, "ts": ts, "dst_domain": domain, "app": app}
            if index == 0:
                load.emit({**row, "ts_note": note}, line)  # counts the record once
            else:
                row.update(source_format=load.name, source_path=load.source.display)
                load.rows.add({**row, "source_line": line})

    def columns(cols: dict[str, pa.Array], ok: np.ndarray) -> Checked:
        uid = required(plain_text(cols["uid"], ok), ok)
        ts = exact_ns(cols["ts"], ok, required=True, iso=True)
        keys = pc.binary_join_element_wise("zeek:", uid, "")
        reasons, facts = spec.columns(cols, keys, ok)

        def build(indices: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
            values, records = facts(indices)
            values["ts"] = ts.take(pa.array(indices[records]))
            return values, records

        return None, reasons, build

    json_fields = pa.schema(
        [pa.field("uid", pa.string()), pa.field("ts", pa.float64()), *spec.json_fields]
    )
    return ZeekLog(
        path=spec.path,
        name=spec.name,
        kind="enrichment",
        unit="records",
        output=ENRICHMENT,
        json_fields=json_fields,
        record=record,
        columns=columns,
        lists=spec.lists,
    )


def sniff_enrichment(head: bytes, path: str, required: set[str], any_of: set[str]) -> float:
    """Score for a Zeek side log: its ``#path``, else its field names (``required`` and one of ``any_of``)."""
    zeek = sniff_head(head)
    if zeek is None:
        return 0.0
    if zeek.path is not None:
        return 0.95 if zeek.path == path else 0.0
    if required <= zeek.keys and zeek.keys & any_of and not zeek.keys & _CONN_KEYS:
        return 0.9
    return 0.0


def distinct(values: pa.Array) -> tuple[list[Any], np.ndarray]:
    """The distinct values (as Python) and each row's index into them (-1 for null)."""
    encoded = pc.dictionary_encode(values)
    indices = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
    return encoded.dictionary.to_pylist(), np.asarray(indices, dtype=np.int64)


def per_value(
    values: pa.Array, convert: Callable[[Any], tuple[Any, Any]], types: tuple[pa.DataType, ...]
) -> tuple[pa.Array, ...]:
    """``convert`` once per distinct value (null included), giving several columns at once."""
    found, indices = distinct(values)
    results = [convert(v) for v in found] + [convert(None)]
    picks = pa.array(np.where(indices < 0, len(found), indices))
    return tuple(pa.array([r[i] for r in results], t).take(picks) for i, t in enumerate(types))


def name_columns(field: str, convert: Callable[[Any], tuple[Any, Any]], app: str) -> ColumnFacts:
    """The column-wise facts of a log that names one domain per record (ssl's SNI, http's Host):
    ``convert`` gives (domain, skip reason) once per distinct ``field`` value."""

    def columns(cols: dict[str, pa.Array], keys: pa.Array, ok: np.ndarray) -> tuple[pa.Array, Any]:
        domain, reasons = per_value(cols[field], convert, (pa.string(), pa.string()))

        def build(indices: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
            picks = pa.array(indices)
            values = {
                "flow_key": keys.take(picks),
                "dst_domain": domain.take(picks),
                "app": constant(app, len(indices)),
            }
            return values, np.arange(len(indices))

        return reasons, build

    return columns


# --- conn.log -----------------------------------------------------------------------------------


def sniff(head: bytes, filename: str) -> float:
    """Score: a Zeek TSV header with ``#path conn``, or conn fields in the header or first record."""
    zeek = sniff_head(head)
    if zeek is None:
        return 0.0
    if zeek.path is not None:
        return 0.95 if zeek.path == "conn" else 0.0
    if {"uid", "id.orig_h", "id.resp_h"} <= zeek.keys and zeek.keys & _CONN_KEYS:
        return 0.9
    return 0.0


def read(source: Source, options: LoadOptions, *, fast: bool = True) -> LoadResult:
    """Read a Zeek conn.log (TSV or JSON) into ``network_events`` rows; ``fast=False`` reads every
    line with the per-line reader (the reference the column-wise path is tested against)."""
    return read_zeek(source, options, conn_log(options), fast=fast)


def conn_log(options: LoadOptions) -> ZeekLog:
    """conn.log as a ``ZeekLog`` (the ``unanswered`` option decides the verdict)."""
    unanswered = options.option(name, "unanswered", "unknown") or "unknown"
    if unanswered not in UNANSWERED_CHOICES:
        raise OptionError(
            f"--option {name}.unanswered={unanswered}: use one of {', '.join(UNANSWERED_CHOICES)}"
        )
    denied = unanswered == "denied"

    def record(line: int, record: dict[str, Any], raw: str, load: FileLoad) -> None:
        try:
            row = _convert(record, options, denied)
        except fields.RowError as exc:
            load.reject(line, str(exc), raw)
            return
        load.emit(row, line)

    def columns(cols: dict[str, pa.Array], ok: np.ndarray) -> Checked:
        return _conn_columns(cols, ok, denied)

    return ZeekLog(
        path="conn",
        name=name,
        kind=kind,
        unit="connections",
        output=NETWORK_EVENTS,
        json_fields=_CONN_JSON,
        record=record,
        columns=columns,
    )


_CONN_JSON = pa.schema(
    [
        *((key, pa.string()) for key in ("uid", "proto", "service", "conn_state")),
        ("ts", pa.float64()),
        ("duration", pa.float64()),
        ("id.orig_h", pa.string()),
        ("id.orig_p", pa.int64()),
        ("id.resp_h", pa.string()),
        ("id.resp_p", pa.int64()),
        ("local_orig", pa.bool_()),
        ("local_resp", pa.bool_()),
        *((key, pa.int64()) for key in ("orig_bytes", "resp_bytes", "orig_pkts", "resp_pkts")),
    ]
)
_ICMP = pa.array(["icmp", "ipv6-icmp", "icmp6"])
_DIRECTIONS = pa.array(["unknown", "outbound", "inbound", "internal"])


def _conn_columns(cols: dict[str, pa.Array], ok: np.ndarray, denied: bool) -> Checked:
    """``_convert`` column-wise for the rows it would load without a note."""
    n = len(ok)
    uid = required(plain_text(cols["uid"], ok), ok)
    ts = exact_ns(cols["ts"], ok, required=True, iso=True)
    duration = exact_ns(cols["duration"], ok, required=False)
    ts_end = end_ns(ts, duration, ok)
    protocol = mapped(cols["proto"], fields.protocol)
    icmp = _mask(pc.is_in(protocol, value_set=_ICMP))
    src = required(addresses(cols["id.orig_h"], ok), ok)
    dst = required(addresses(cols["id.resp_h"], ok), ok)
    src_port = port_numbers(cols["id.orig_p"], ok, icmp)
    dst_port = port_numbers(cols["id.resp_p"], ok, icmp)
    orig, resp = flags(cols["local_orig"], ok), flags(cols["local_resp"], ok)
    local_orig, remote_orig = _mask(orig), _mask(pc.invert(orig))
    local_resp, remote_resp = _mask(resp), _mask(pc.invert(resp))
    direction = np.select(
        [local_orig & remote_resp, remote_orig & local_resp, local_orig & local_resp], [1, 2, 3], 0
    )
    state = mapped(cols["conn_state"], fields.text)
    counts = {
        out: counters(cols[key], ok)
        for out, key in (
            ("bytes_out", "orig_bytes"),
            ("bytes_in", "resp_bytes"),
            ("packets_out", "orig_pkts"),
            ("packets_in", "resp_pkts"),
        )
    }
    action = constant("unknown", n)
    if denied:
        unanswered = pc.and_(
            pc.equal(protocol, "tcp"),
            pc.is_in(state, value_set=pa.array(sorted(UNANSWERED_STATES))),
        )
        action = pc.if_else(pc.fill_null(unanswered, False), "denied", "unknown")
    values = {
        "ts": ts,
        "ts_end": ts_end,
        "src_ip": src,
        "src_port": src_port,
        "dst_ip": dst,
        "dst_port": dst_port,
        "protocol": protocol,
        "direction": _DIRECTIONS.take(pa.array(direction.astype(np.int8))),
        "action": action,
        "action_raw": state,
        "app": mapped(cols["service"], lambda v: fields.text(v) or None),
        **counts,
        "observer": constant("zeek", n),
        "flow_key": pc.binary_join_element_wise("zeek:", uid, ""),
    }

    def build(indices: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
        if len(indices) == n:
            return dict(values), np.arange(n)
        picks = pa.array(indices)
        return {k: v.take(picks) for k, v in values.items()}, np.arange(len(indices))

    return action, None, build


def _direction(local_orig: bool | None, local_resp: bool | None) -> str:
    if local_orig is True and local_resp is False:
        return "outbound"
    if local_orig is False and local_resp is True:
        return "inbound"
    if local_orig is True and local_resp is True:
        return "internal"
    return "unknown"


def _convert(
    record: dict[str, Any], options: LoadOptions, unanswered_denied: bool
) -> dict[str, Any]:
    """One conn record to a ``network_events`` row (without provenance)."""
    uid = zeek_uid(record)
    ts, note = zeek_time(record.get("ts"), "ts", name, options)
    notes = [note] if note else []
    ts_end = None
    duration = interval_ns(record.get("duration"), "duration")
    if duration is not None:
        if duration < 0:
            notes.append("negative duration: end ignored")
        elif ts + duration >= 2**63 - 1:
            raise fields.RowError(f"duration out of range: {record.get('duration')!r}")
        else:
            ts_end = ts + duration
    protocol = fields.protocol(record.get("proto"))
    icmp = protocol in ("icmp", "ipv6-icmp", "icmp6")
    state = fields.text(record.get("conn_state"))
    action = "unknown"
    if unanswered_denied and protocol == "tcp" and state in UNANSWERED_STATES:
        action = "denied"
    notes += [
        n for n in (fields.ip_note(record.get(k), k) for k in ("id.orig_h", "id.resp_h")) if n
    ]
    return {
        "ts": ts,
        "ts_end": ts_end,
        "src_ip": address(record.get("id.orig_h"), "id.orig_h"),
        "src_port": None if icmp else fields.port(record.get("id.orig_p"), "id.orig_p"),
        "src_nat_ip": None,
        "dst_ip": address(record.get("id.resp_h"), "id.resp_h"),
        "dst_port": None if icmp else fields.port(record.get("id.resp_p"), "id.resp_p"),
        "protocol": protocol,
        "direction": _direction(
            zeek_bool(record.get("local_orig"), "local_orig"),
            zeek_bool(record.get("local_resp"), "local_resp"),
        ),
        "action": action,
        "action_raw": state,
        "rule": None,
        "signature": None,
        "category": None,
        "dst_domain": None,
        "app": fields.text(record.get("service")) or None,
        "bytes_out": fields.counter(record.get("orig_bytes"), "orig_bytes"),
        "bytes_in": fields.counter(record.get("resp_bytes"), "resp_bytes"),
        "packets_out": fields.counter(record.get("orig_pkts"), "orig_pkts"),
        "packets_in": fields.counter(record.get("resp_pkts"), "resp_pkts"),
        "observer": "zeek",
        "host_hint": None,
        "flow_key": f"zeek:{uid}",
        "ts_note": "; ".join(notes) or None,
    }
