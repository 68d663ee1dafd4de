"""Exceptions and the record of a rejected input row."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass


class CorrelateError(Exception):
    """A problem with the input or the options that the user can fix; one clear sentence."""


class InputError(CorrelateError):
    """A path is missing, unreadable, empty, or over a limit."""


class UnknownFormat(CorrelateError):
    """No loader recognises a file."""


class FormatMismatch(CorrelateError):
    """A forced or detected format does not fit the file (not my format, as opposed to a bad row)."""


class StrictRejection(CorrelateError):
    """A row was rejected while ``--strict`` was in force (``line``: which, when known)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


class OptionError(CorrelateError):
    """An option's value is invalid (a usage error, exit code 2)."""


@dataclass(frozen=True, slots=True)
class SourceLocation:
    """Where a row came from: the path as the user gave it and the 1-based line (or record) number."""

    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True, slots=True)
class Reject:
    """An input row that could not be loaded, with why and its raw text (kept for ``--rejects``)."""

    location: SourceLocation
    reason: str
    raw: str

    def __str__(self) -> str:
        return f"{self.location}: {self.reason}"

    def record(self) -> dict[str, object]:
        """The reject as a ``--rejects``/``rejects.jsonl`` record: path, line, reason, raw."""
        return {
            "path": self.location.path,
            "line": self.location.line,
            "reason": self.reason,
            "raw": self.raw,
        }


def write_rejects(path: str | os.PathLike[str], rejects: Iterable[Reject]) -> None:
    """Rejected rows as JSON lines (path, line, reason, raw; inert): ``--rejects`` and a case's
    ``rejects.jsonl``."""
    from .textsafe import write_inert_jsonl

    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        write_inert_jsonl(fh, (r.record() for r in rejects))
