"""What every tool-call loader does the same way: cut outputs, and find the shell text of a call."""

from __future__ import annotations

import json
from typing import Any

OUTPUT_CHARS = 2000
"""Tool output is kept to this many characters; the rest is counted in a marker."""

_SHELLS = {"bash", "sh", "zsh", "dash", "ksh", "fish"}
_COMMAND_KEYS = ("command", "cmd", "commands", "script", "shell", "code")


def truncate(text: str | None) -> str | None:
    """``text`` cut to ``OUTPUT_CHARS`` with a marker saying how much was left out ("" -> None)."""
    if text and len(text) > OUTPUT_CHARS:
        return text[:OUTPUT_CHARS] + f"... [{len(text) - OUTPUT_CHARS} more characters]"
    return text or None


def shell_text(value: Any) -> str | None:
    """Shell text from a string or an argv list; ``["bash", "-lc", "X"]`` is just ``X``."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, list) and value and all(isinstance(x, str) for x in value):
        shell = value[0].rsplit("/", 1)[-1]
        if len(value) == 3 and shell in _SHELLS and value[1] in ("-c", "-lc", "-ic"):
            return value[2].strip() or None
        return " ".join(value).strip() or None
    return None


def command_from(arguments: Any) -> str | None:
    """The shell text in a tool call's arguments (an object or its JSON text), if any."""
    value = arguments
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return None
    if not isinstance(value, dict):
        return None
    for key in _COMMAND_KEYS:
        found = value.get(key)
        if key == "commands" and isinstance(found, list) and all(isinstance(x, str) for x in found):
            return "; ".join(found) or None
        text = shell_text(found)
        if text:
            return text
    return None
