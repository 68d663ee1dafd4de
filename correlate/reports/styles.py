"""How values look in every renderer (one place: a confidence, or a candidate's evidence, reads
the same everywhere)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..schema import EVIDENCE

CONFIDENCE_STYLE = {"high": "bold red", "medium": "yellow", "low": "cyan", "none": "dim"}
"""Rich style of each attribution confidence."""


def evidence_flags(candidate: Mapping[str, Any]) -> str:
    """A candidate's evidence as ``identity+ip+agrees``: the flag of each kind it carries, in
    ``schema.EVIDENCE`` order (every kind there shows, none is spelled out here)."""
    return "+".join(flag for kind in EVIDENCE if (flag := kind.flag(candidate.get(kind.name))))
