"""The analysis-options table: its defaults are the library's, and parsing names the flag."""

from __future__ import annotations

import pytest

from correlate.conversations import DEFAULT_GAP_NS
from correlate.errors import OptionError
from correlate.identity import DEFAULT_LEASE_GRACE_NS
from correlate.keep import DEFAULT_ANCHORS
from correlate.options import CASE_OPTIONS, OPTIONS_BY_NAME, FlagError
from correlate.pipeline import RunOptions


def test_the_flags_defaults_are_the_librarys_defaults() -> None:
    flags = RunOptions.from_flags()
    assert flags.parameters() == RunOptions().parameters()
    assert (flags.gap_ns, flags.lease_grace_ns) == (DEFAULT_GAP_NS, DEFAULT_LEASE_GRACE_NS)
    assert flags.anchors == DEFAULT_ANCHORS


@pytest.mark.parametrize(
    ("flags", "flag", "message"),
    [
        ({"gap": "soon"}, "--gap", "not a duration"),
        ({"after": "-5s"}, "--after", "must not be negative"),
        ({"actions": "exploded"}, "--actions", "choose from"),
        ({"offset": ("none", "auto")}, "--offset", "none cannot be combined"),
        ({"unmapped": "guess"}, "--unmapped", "choose from skip, time"),
        ({"max_line_bytes": 10}, "--max-line-bytes", "must be at least 1024"),
    ],
)
def test_a_bad_value_is_an_option_error_naming_its_flag(
    flags: dict[str, object], flag: str, message: str
) -> None:
    with pytest.raises(FlagError) as raised:
        RunOptions.from_flags(**flags)
    assert isinstance(raised.value, OptionError)
    assert raised.value.flag == flag and message in raised.value.message
    assert str(raised.value).startswith(f"{flag}: ")


def test_an_unknown_keyword_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="not an analysis option: window"):
        RunOptions.from_flags(window="10s")


def test_a_case_commands_help_names_the_same_default() -> None:
    assert OPTIONS_BY_NAME["gap"].case_help.endswith("(default: the case's, else 10m).")
    assert all("{" not in option.case_help for option in CASE_OPTIONS)


def test_a_bad_value_names_its_flag_once_and_by_its_current_spelling():
    from click.testing import CliRunner

    from correlate.cli import cli

    sample = "sample_logs/rome_incident"
    cidr = CliRunner().invoke(cli, ["run", sample, "--internal-cidr", "bad"])
    assert cidr.exit_code == 2
    assert "Invalid value for --internal-cidr: not a network: 'bad'" in cidr.output
    assert cidr.output.count("--internal-cidr") == 1
    fmt = CliRunner().invoke(cli, ["run", sample, "--input-format", "nosuch"])
    assert fmt.exit_code == 2
    assert "Invalid value for --input-format: unknown format 'nosuch'" in fmt.output
