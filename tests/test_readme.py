"""The README stays true: its set-up commands, its worked example, and its options table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from correlate.cli import cli

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(\w*)\n(.*?)```", README, flags=re.S)


def test_readme_starts_with_the_two_set_up_commands() -> None:
    shell = [body.strip() for lang, body in BLOCKS if lang == "sh"]
    assert "pip install . && correlate run sample_logs/" in shell[0]
    assert shell[1].endswith("pytest")
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == shell[1], ".ci/run must run exactly the README's test command"
    first_block = README.index("```")
    assert README.index("## Set up on a fresh machine") < first_block


@pytest.mark.parametrize(("block", "flags"), [(0, []), (1, ["-d"])], ids=["overview", "details"])
def test_worked_example_is_real_output(
    monkeypatch: pytest.MonkeyPatch, block: int, flags: list[str]
) -> None:
    example = [body for lang, body in BLOCKS if lang == "text"][block]
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(
        cli,
        ["run", *flags, "sample_logs/rome_incident"],
        env={"COLUMNS": ""},
        catch_exceptions=False,
    )
    assert result.exit_code == 0
    actual = [line.rstrip() for line in result.stdout.splitlines()]
    position = 0
    for line in example.splitlines():
        if line == "...":
            continue
        try:
            position = actual.index(line.rstrip(), position) + 1
        except ValueError:
            pytest.fail(f"README example line not in the output (in order): {line!r}")


def test_every_run_option_is_documented() -> None:
    command = cli.commands["run"]
    for param in command.params:
        for opt in getattr(param, "opts", []):
            if opt.startswith("--") and opt != "--help":
                assert f"`{opt}" in README, f"{opt} missing from the README"


def test_architecture_section_names_every_module() -> None:
    """The README's module map stays true: every module (format loaders aside) is named in it."""
    from correlate.loaders import REGISTRY

    section = README.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`([\w./]+)`", section))
    package = ROOT / "correlate"
    missing = []
    for path in sorted(package.rglob("*.py")):
        inside = path.relative_to(package)
        if path.name in ("__init__.py", "__main__.py") or inside.parts[0] == "data":
            continue
        if inside.parts[0] == "loaders" and path.stem in REGISTRY:
            continue
        wanted = path.name if len(inside.parts) == 1 else path.stem
        if wanted not in named:
            missing.append(str(inside))
    assert missing == [], f"README's Architecture section does not name: {missing}"
