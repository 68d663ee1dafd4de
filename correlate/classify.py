"""Labels for violation conversations: mining, reverse_tunnel, internal_probe, exfiltration.

Rules live in ``correlate/data/rules.json`` (each list with its sources); ``--rules FILE`` adds to
the lists and replaces thresholds. A label comes with the reasons that gave it, so a finding can
say "mining: destination domain pool.supportxmr.com is a known pool" rather than just "mining".
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import OptionError
from .schema import plain_rows

NS = 1_000_000_000
LABELS = ("mining", "reverse_tunnel", "internal_probe", "exfiltration")

# Which call patterns (indicators.PATTERNS) agree with which label.
AGREEING_PATTERNS = {
    "mining": {"miner"},
    "reverse_tunnel": {"ssh_tunnel", "reverse_shell", "tunnel_tool"},
    "internal_probe": {"scanner", "metadata"},
    "exfiltration": {"upload"},
}


@dataclass(frozen=True)
class Rules:
    """The labelling rules as loaded (built-in plus user additions)."""

    data: dict[str, Any]

    def section(self, label: str) -> dict[str, Any]:
        return dict(self.data.get(label, {}))


def load_rules(extra: str | Path | None = None) -> Rules:
    """The built-in rules, extended by a user's JSON file (lists merged, scalars replaced)."""
    data = json.loads(
        resources.files("correlate.data").joinpath("rules.json").read_text(encoding="utf-8")
    )
    if extra is not None:
        try:
            user = json.loads(Path(extra).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise OptionError(f"--rules {extra}: cannot read a JSON rules file: {exc}") from None
        if not isinstance(user, dict):
            raise OptionError(f"--rules {extra}: expected a JSON object keyed by label")
        for label, section in user.items():
            if not isinstance(section, dict):
                raise OptionError(f"--rules {extra}: section {label!r} is not an object")
            merged = data.setdefault(label, {})
            for key, value in section.items():
                if isinstance(value, list) and isinstance(merged.get(key), list):
                    merged[key] = list(dict.fromkeys([*merged[key], *value]))
                else:
                    merged[key] = value
    return Rules(data)


def _domain_in(domain: str | None, listed: list[str]) -> str | None:
    if not domain:
        return None
    d = domain.lower().rstrip(".")
    return next((x for x in listed if d == x or d.endswith("." + x)), None)


def _text_has(value: str | None, needles: list[str]) -> str | None:
    if not value:
        return None
    low = value.lower()
    return next((n for n in needles if n in low), None)


def classify(
    violations: pa.Table, events: pa.Table, rules: Rules
) -> dict[int, list[tuple[str, str]]]:
    """Labels with reasons per conversation id.

    ``violations`` carries ``conversation_id`` and ``dst_scope`` (one row per event); ``events`` is
    every network event (for the run's norm of bytes sent).
    """
    rows = plain_rows(violations)
    by_conv: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_conv[int(r["conversation_id"])].append(r)
    norm = _bytes_norm(events)
    fanout = _fanout(rows, rules.section("internal_probe"))
    out: dict[int, list[tuple[str, str]]] = {}
    for conv, evs in sorted(by_conv.items()):
        labels: list[tuple[str, str]] = []
        first = evs[0]
        for label, reason in (
            _mining(evs, rules.section("mining")),
            _tunnel(evs, rules.section("reverse_tunnel")),
            _probe(first, fanout.get(conv), rules.section("internal_probe")),
            _exfil(evs, norm, rules.section("exfiltration")),
        ):
            if label:
                labels.append((label, reason))
        out[conv] = labels
    return out


def _mining(evs: list[dict[str, Any]], rule: dict[str, Any]) -> tuple[str | None, str]:
    first = evs[0]
    if first.get("dst_scope") not in (None, "external"):
        return None, ""
    for e in evs:
        for column in ("signature", "category"):
            if _text_has(e.get(column), rule.get("signatures", [])):
                return "mining", f"firewall {column} {e[column]!r}"
    for e in evs:
        pool = _domain_in(e.get("dst_domain"), rule.get("domains", []))
        if pool:
            return "mining", f"destination {e['dst_domain']} is a known mining pool ({pool})"
    if first.get("dst_port") in rule.get("ports", []) and len(evs) >= int(
        rule.get("min_events_for_port_only", 3)
    ):
        return (
            "mining",
            f"{len(evs)} connections to port {first['dst_port']}, a common stratum port",
        )
    return None, ""


def _tunnel(evs: list[dict[str, Any]], rule: dict[str, Any]) -> tuple[str | None, str]:
    first = evs[0]
    if first.get("dst_scope") not in (None, "external"):
        return None, ""
    reasons = []
    if first.get("dst_port") in rule.get("ports", []):
        reasons.append(f"outbound to port {first['dst_port']} (SSH)")
    app = _text_has(first.get("app"), rule.get("apps", []))
    if app:
        reasons.append(f"application {first['app']}")
    signature = next(
        (e["signature"] for e in evs if _text_has(e.get("signature"), rule.get("signatures", []))),
        None,
    )
    if signature:
        reasons.append(f"firewall signature {signature!r}")
    domain = next(
        (d for e in evs for d in [_domain_in(e.get("dst_domain"), rule.get("domains", []))] if d),
        None,
    )
    if domain:
        reasons.append(f"destination is a tunnelling service ({domain})")
    if not reasons:
        return None, ""
    span = (max((e["ts_end"] or e["ts"]) for e in evs) - first["ts"]) / NS
    if len(evs) >= int(rule.get("reconnects", 3)):
        reasons.append(f"{len(evs)} connection attempts")
    if span >= float(rule.get("long_lived_s", 300)):
        reasons.append(f"lasting {span:.0f}s")
    return "reverse_tunnel", ", ".join(reasons)


def _fanout(rows: list[dict[str, Any]], rule: dict[str, Any]) -> dict[int, tuple[int, int]]:
    """Per conversation: distinct internal hosts and ports its source probed within the window."""
    window = float(rule.get("window_s", 120)) * NS
    internal = [r for r in rows if r.get("dst_scope") in ("internal", "metadata")]
    by_src: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in internal:
        by_src[str(r["src_ip"])].append(r)
    out: dict[int, tuple[int, int]] = {}
    for group in by_src.values():
        times = np.array([r["ts"] for r in group], dtype=np.int64)
        for r in group:
            near = [g for g, t in zip(group, times, strict=True) if abs(int(t) - r["ts"]) <= window]
            out.setdefault(
                int(r["conversation_id"]),
                (
                    len({g["dst_ip"] for g in near}),
                    len({(g["dst_ip"], g["dst_port"]) for g in near}),
                ),
            )
    return out


def _probe(
    first: dict[str, Any], fan: tuple[int, int] | None, rule: dict[str, Any]
) -> tuple[str | None, str]:
    if first.get("dst_scope") == "metadata":
        return "internal_probe", f"destination {first['dst_ip']} is an instance metadata service"
    if first.get("dst_scope") != "internal" or fan is None:
        return None, ""
    hosts, targets = fan
    if hosts >= int(rule.get("fanout_hosts", 3)) or targets >= int(rule.get("fanout_ports", 3)):
        return (
            "internal_probe",
            f"source probed {hosts} internal hosts / {targets} host:port pairs within {rule.get('window_s', 120)}s",
        )
    return "internal_probe", f"blocked connection to internal address {first['dst_ip']}"


def _bytes_norm(events: pa.Table) -> float | None:
    if events.num_rows == 0:
        return None
    outbound = events.filter(
        pc.equal(pc.fill_null(events.column("direction"), "unknown"), "outbound")
    )
    values = pc.drop_null(outbound.column("bytes_out")).to_numpy(zero_copy_only=False)
    if len(values) < 20:
        return None
    return float(np.percentile(values, 99))


def _exfil(
    evs: list[dict[str, Any]], norm: float | None, rule: dict[str, Any]
) -> tuple[str | None, str]:
    sent = sum(int(e["bytes_out"] or 0) for e in evs)
    floor = float(rule.get("min_bytes_out", 10 * 1024 * 1024))
    factor = float(rule.get("bytes_out_factor", 10))
    if norm is None or sent < floor or sent < factor * norm:
        return None, ""
    return (
        "exfiltration",
        f"{sent:,} bytes sent, {sent / max(norm, 1):.0f}x the run's 99th percentile per flow",
    )


def agrees(label: str, patterns: frozenset[str]) -> str | None:
    """The call pattern that agrees with ``label``, if any."""
    return next(iter(sorted(AGREEING_PATTERNS.get(label, set()) & patterns)), None)
