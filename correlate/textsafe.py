"""Make untrusted log text inert for a terminal: control characters and bidi overrides shown escaped.

The agent under investigation wrote the commands and outputs we print; an escape sequence, a
carriage return or a right-to-left override in them must show up as visible text, never act.
Rich markup is not a concern here as long as callers build ``rich.text.Text`` (never markup strings).
"""

from __future__ import annotations

import re

# C0 and C1 controls (tab kept as a visible escape too), DEL, and the Unicode bidi/format controls
# that can reorder or hide text: LRE..RLO, LRI..PDI, LRM/RLM/ALM, zero-width joiners and BOM.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


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
