"""Make untrusted log text inert for a terminal: control characters and bidi overrides shown escaped.

The agent under investigation wrote the commands and outputs we print; an escape sequence, a
carriage return or a right-to-left override in them must show up as visible text, never act.
Rich markup is not a concern here as long as callers build ``rich.text.Text`` (never markup strings).

Files that a terminal may show (``| cat``, ``| head``) go through the same rules: every CSV text
cell is ``csv_text`` (inert, plus a leading apostrophe where a spreadsheet would see a formula)
and JSON lines of log text (the rejects files) are ``inert_json`` (unsafe characters as ``\\u``
escapes, so the text stays exact for a JSON reader).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable
from typing import Any, TextIO

# C0 and C1 controls (tab kept as a visible escape too), DEL, and the Unicode bidi/format controls
# that can reorder or hide text: LRE..RLO, LRI..PDI, LRM/RLM/ALM, zero-width joiners and BOM; and
# lone surrogates (from a JSON escape), which no UTF-8 output can hold.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff\ud800-\udfff]"
)


def _escape(match: re.Match[str]) -> str:
    ch = match.group(0)
    code = ord(ch)
    if ch == "\n":
        return "\\n"
    if ch == "\r":
        return "\\r"
    if ch == "\t":
        return "\\t"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def inert(value: object, limit: int | None = None) -> str:
    """``value`` as one line of visible text: controls escaped, cut to ``limit`` characters."""
    if value is None:
        return ""
    text = _UNSAFE.sub(_escape, str(value))
    if limit is not None and len(text) > limit:
        return text[: max(limit - 1, 0)] + "…"
    return text


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet evaluate a cell (also in their fullwidth, small or
super/subscript forms, which NFKC folds to these, and the minus sign U+2212)."""


def formula_like(text: str) -> bool:
    """True when a spreadsheet could read ``text`` as a formula: it starts with one of
    ``FORMULA_PREFIXES``, or a character whose NFKC form does (fullwidth U+FF1D, U+FF0B, U+FF0D, U+FF20...)."""
    if not text:
        return False
    first = text[0]
    if first.isascii():
        return first in FORMULA_PREFIXES
    return first == "\u2212" or unicodedata.normalize("NFKC", first).startswith(FORMULA_PREFIXES)


def csv_text(value: object) -> str:
    """A CSV text cell that is inert both in a terminal and in a spreadsheet.

    Controls, escapes and bidi overrides are shown escaped as on the terminal (``inert``: one
    line, readable); a cell a spreadsheet would evaluate (see ``formula_like``, checked on the
    text as logged and as shown) gets a leading apostrophe.
    """
    text = "" if value is None else str(value)
    shown = inert(text)
    return "'" + shown if formula_like(text) or formula_like(shown) else shown


# What ``inert_json`` escapes: ``_UNSAFE`` less C0, which JSON escapes inside strings itself (a
# C0 character left in its output, e.g. an ``indent`` newline, is structure, not text).
_UNSAFE_IN_JSON = re.compile(
    "[\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff\ud800-\udfff]"
)


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group(0)):04x}"


def write_inert_jsonl(fh: TextIO, records: Iterable[Any]) -> None:
    """Records as JSON lines (``inert_json``, keys sorted) on an open text file."""
    for record in records:
        fh.write(inert_json(record, sort_keys=True) + "\n")


def inert_json(record: Any, *, ascii_only: bool = False, **options: Any) -> str:
    """``json.dumps(record)`` with every control, DEL, C1 and bidi/format character written as a
    ``\\uXXXX`` escape (JSON itself only escapes C0): a JSON reader gets the exact text back, a
    terminal shows it inert. ``ascii_only`` escapes every non-ASCII character too; other keyword
    arguments go to ``json.dumps`` (``sort_keys``, ``separators``...)."""
    text = json.dumps(record, ensure_ascii=ascii_only, **options)
    # Outside strings json.dumps writes ASCII punctuation only: any unsafe character left is in
    # a string, where its \\u escape means the same character.
    return _UNSAFE_IN_JSON.sub(_json_escape, text)
