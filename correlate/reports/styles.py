"""Terminal styles shared by every renderer (one place: a confidence looks the same everywhere)."""

from __future__ import annotations

CONFIDENCE_STYLE = {"high": "bold red", "medium": "yellow", "low": "cyan", "none": "dim"}
"""Rich style of each attribution confidence."""
