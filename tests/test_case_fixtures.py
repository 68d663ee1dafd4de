"""Shared helpers for the case, query, timeline, export and HTML tests.

The sample incident (and the hostile case in ``tests/data/case/hostile``) is ingested once per
test session into a temporary directory; tests that change a case copy it first. The CLI group
gets the case commands through ``register`` (as ``cli.py`` will do itself).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
from functools import cache
from pathlib import Path

import click
from click.testing import CliRunner, Result

from correlate.case import ingest
from correlate.case_cli import register
from correlate.cli import cli
from correlate.pipeline import RunOptions

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = "sample_logs/rome_incident"
HOSTILE = "tests/data/case/hostile"
TUNNEL_IP = "203.0.113.7"
MINER_EPISODE = "ep-0423-sbx-07-2"
TUNNEL_CALL = "call_nV0FRhCxFRSXdZ940hunrHPz"
MINER_CALL = "call_6U9V8oHYd0X71BklQW0XCSPL"


def correlate_cli() -> click.Group:
    """The ``correlate`` group with the case commands registered."""
    register(cli)
    return cli


def invoke(*args: str) -> Result:
    """Run a correlate command from the repository root, as a user in a shell would."""
    with contextlib.chdir(ROOT):
        return CliRunner().invoke(correlate_cli(), list(args), catch_exceptions=False)


_TMP = Path(tempfile.mkdtemp(prefix="correlate-case-tests-"))
atexit.register(shutil.rmtree, _TMP, True)


def scratch(name: str) -> Path:
    """A fresh directory for one test's files (removed at the end of the session)."""
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=_TMP))


@cache
def _ingested(source: str) -> Path:
    target = _TMP / ("sample" if source == SAMPLE else "hostile")
    with contextlib.chdir(ROOT):
        ingest(target, [source], RunOptions())
    return target


def sample_case() -> Path:
    """The sample incident as a case (shared: copy it before changing it)."""
    return _ingested(SAMPLE)


def hostile_case() -> Path:
    """The hostile fixture (commands, hosts and domains full of markup and escapes) as a case."""
    return _ingested(HOSTILE)


def copy_case(case: Path, name: str) -> Path:
    """A private copy of a case."""
    target = scratch(name) / "case"
    shutil.copytree(case, target, symlinks=True)  # the links at its top stay links
    return target


def chromium_paths() -> tuple[str | None, str | None]:
    """The chromium and chromedriver binaries, if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which(
        "chromedriver"
    )


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"
