"""Every real public sample in ../shared/formats/samples/ that a loader claims loads without rejects.

The samples sit beside the repository (as in CI); files that are malformed on purpose are listed
with the reason they must reject something.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from correlate.errors import CorrelateError, UnknownFormat
from correlate.loaders import LoadOptions, detect
from correlate.sources import Source

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "formats" / "samples"
# Files (or lines) that are invalid on purpose, per ../shared/formats/samples/SOURCES.md, with how
# many rejects that must produce.
MALFORMED_ON_PURPOSE = {
    "codex_rollout_jsonl__sessions-chronicle__malformed_synthetic.jsonl": 0,  # its one line is skipped
    "cef__crowdsec-hub__cef-logs.log": 1,  # "a line missing the CEF: prefix"
    "cef__crowdsec-hub__unifi-cef-logs.log": 1,  # "one line without CEF: prefix"
    "iptables_syslog__crowdsec-hub__iptables-logs.log": 1,  # "XX=enp1s0" (IN=enp.1s0 is a legal name)
    "mini_swe_agent_traj_v1_1__mini-swe-agent__doc_traj_structure.jsonc": 1,  # JSON with comments
    "mini_swe_agent_traj_v1_1__mini-swe-agent__doc_messages_examples.jsonc": 1,  # JSON with comments
    "azure_nsg_flow__azure-docs__nsg_flow_v1_sample.json": 1,  # a record nesting another records list
    "aws_vpc_flow__amazon-vpc-user-guide__examples_06_nat_gateway.log": 2,  # the guide's "#..." comments
    "aws_vpc_flow__amazon-vpc-user-guide__examples_07_transit_gateway.log": 1,  # the guide's "..." line
}
FILES = (
    sorted(p for p in SAMPLES.glob("*") if p.is_file() and p.name != "SOURCES.md")
    if SAMPLES.is_dir()
    else []
)


def test_the_shared_samples_are_there() -> None:
    if not SAMPLES.is_dir():
        pytest.skip(f"no {SAMPLES} beside this checkout (CI and the sessions lay ../shared there)")
    assert FILES, f"no sample files in {SAMPLES}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_a_claimed_sample_loads_with_zero_rejects(path: Path) -> None:
    source = Source(path, path.name)
    try:
        detection = detect(source)
    except UnknownFormat:
        pytest.skip("no loader claims this format (see the README's formats table)")
    try:
        result = detection.loader.read(source, LoadOptions())
    except CorrelateError as exc:
        assert path.name in MALFORMED_ON_PURPOSE or "swe_agent.start" in str(exc), str(exc)
        return
    stats = result.stats
    assert stats.read == stats.loaded + stats.rejected + stats.skipped_total
    expected = MALFORMED_ON_PURPOSE.get(path.name, 0)
    assert stats.rejected == expected, [str(r) for r in result.rejects[:3]]
