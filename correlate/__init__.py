"""correlate: attribute outbound firewall violations to the AI-agent tool calls that caused them.

A notebook can use the same library the CLI uses::

    import correlate
    result = correlate.run(["sample_logs/rome_incident"])
    result.findings.to_pandas()
    flows = correlate.read("sample_logs/rome_incident/firewall/cfw_internet_log.jsonl")
    flows.table.to_pandas(), flows.stats
"""

from __future__ import annotations

__version__ = "0.1.0"

from .pipeline import Loaded, Result, RunOptions, analyse, load_inputs, run
from .reader import Read, read

__all__ = [
    "Loaded",
    "Read",
    "Result",
    "RunOptions",
    "__version__",
    "analyse",
    "load_inputs",
    "read",
    "run",
]
