"""Score and rank candidate calls per violation, attribute each conversation, and say why.

Scoring (documented in the README; each evidence kind's points are in ``schema.EVIDENCE``): a call
that names the destination's IP or domain +4 (a network holding it +3, only its port next to a
network pattern +1); a call whose behaviour pattern agrees with the conversation's label (a miner
command for a mining label) +2 (+1, and not strong evidence, on a shared address when the call
names other destinations but not this one); the event inside the call +2, after it +2 fading to 0
at the end of the window, before its start +1 fading to 0 at ``--before``; the source address held
by the call's sandbox alone +1, shared by k hosts at that moment +1/k (identity narrows the
candidates but does not pick among them). Ties go to the smaller absolute lag, then the call id. A
conversation is attributed from its first event that has candidates (its anchor); later events
inherit that call with their own lag, whatever call happens to be near.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .classify import agrees
from .indicators import Indicators, extract, match_destination
from .schema import (
    AGREEMENT,
    ATTRIBUTIONS,
    CALL_FIELDS,
    CANDIDATES,
    EVIDENCE,
    FINDINGS,
    IDENTITY,
    INDICATOR,
    conform,
    int_ns,
    plain_rows,
)

NS = 1_000_000_000


@dataclass(frozen=True)
class Window:
    """The join window around a call: [start - before, end + after], both ends closed."""

    before_ns: int
    after_ns: int


IMPRECISE_TIME_FACTOR = 0.5


def score_candidates(
    violations: pa.Table,
    calls: pa.Table,
    call_idx: np.ndarray,
    event_idx: np.ndarray,
    identity: np.ndarray,
    window: Window,
    labels: dict[int, list[tuple[str, str]]] | None = None,
    holders: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per (event, call) pair with lag, relation, evidence, score and rank per event.

    ``identity`` per pair is match | shared | time-only; ``holders`` per event is how many hosts
    held its source address then (a shared match is worth 1/holders of a point).
    """
    ev_ts = int_ns(violations.column("ts"), 0)
    call_start = int_ns(calls.column("ts_start"), 0)
    call_end = np.maximum(int_ns(calls.column("ts_end"), np.iinfo(np.int64).min), call_start)
    t = ev_ts[event_idx]
    start = call_start[call_idx]
    end = call_end[call_idx]
    relation = np.where(t < start, "before", np.where(t <= end, "during", "after"))
    before_share = 1.0 - (start - t) / max(window.before_ns, 1)
    after_share = 1.0 - (t - end) / max(window.after_ns, 1)
    time_score = np.where(
        relation == "during", 2.0, np.where(relation == "after", 2.0 * after_share, before_share)
    )
    # A window the trajectory only implies (a whole trajectory, one stamp per step) is weaker
    # evidence of timing than a call's own start and end.
    rows = pa.array(call_idx, pa.int64())
    kinds = calls.column("ts_kind").take(rows)
    kinds = pc.if_else(pc.fill_null(pc.equal(kinds, ""), True), "exact", kinds)  # `k or "exact"`
    precise = np.asarray(
        pc.is_in(kinds, value_set=pa.array(["exact", "bracket"])).to_numpy(zero_copy_only=False),
        dtype=bool,
    )
    time_score = np.where(precise, time_score, time_score * IMPRECISE_TIME_FACTOR)
    found = _indicators(calls, call_idx)
    dst_ip = violations.column("dst_ip").to_pylist()
    dst_domain = violations.column("dst_domain").to_pylist()
    dst_port = violations.column("dst_port").to_pylist()
    conversation = violations.column("conversation_id").to_pylist()
    labels = labels or {}
    indicator = []
    agreement = []
    elsewhere = []
    for c, e, held_as in zip(call_idx, event_idx, identity, strict=True):
        named = match_destination(found[c], dst_ip[e], dst_domain[e], dst_port[e])
        indicator.append(named)
        # On a shared address, a call that names other destinations but not this one is weak
        # evidence for it even when its kind agrees (a neighbour's miner, another probe).
        elsewhere.append(
            held_as == "shared"
            and named not in ("ip", "domain", "cidr")
            and bool(found[c].ips or found[c].domains)
        )
        agreed = None
        for label, _ in labels.get(conversation[e], []):
            pattern = agrees(label, found[c].patterns)
            if pattern:
                agreed = f"{pattern} call, {label} traffic"
                break
        agreement.append(agreed)
    held = (
        np.maximum(np.asarray(holders, dtype=np.int64)[event_idx], 1)
        if holders is not None and len(event_idx)
        else np.ones(len(event_idx), dtype=np.int64)
    )
    identity_points = np.zeros(len(identity))
    for held_as, points in IDENTITY.points.items():  # match, shared: vectorised (millions of pairs)
        identity_points[identity == held_as] = points
    score = (
        time_score
        + np.where(identity == "shared", identity_points / held, identity_points)
        + np.array([INDICATOR.points_of(i) for i in indicator], dtype=float)
        + np.array(
            [
                AGREEMENT.points_of(a) * (0.5 if far else 1.0)
                for a, far in zip(agreement, elsewhere, strict=True)
            ],
            dtype=float,
        )
    )
    frame = pd.DataFrame(
        {
            "event_row": event_idx,
            "call_row": call_idx,
            "lag_ns": t - start,
            "relation": relation,
            "identity": identity,
            "indicator": pd.array(indicator, dtype=object),
            "agreement": pd.array(agreement, dtype=object),
            "precise": precise,
            "elsewhere": np.array(elsewhere, dtype=bool),
            "hidden": [found[c].decoded for c in call_idx],
            "score": np.round(score, 6),
            # only the candidates' ids become Python strings (a run has millions of calls)
            "call_id": pd.array(calls.column("call_id").take(rows).to_pylist(), dtype=object),
            "call_host": pd.array(calls.column("host").take(rows).to_pylist(), dtype=object),
        }
    )
    frame["abs_lag"] = frame["lag_ns"].abs()
    frame = frame.sort_values(
        ["event_row", "score", "abs_lag", "call_id", "call_row"],
        ascending=[True, False, True, True, True],
        kind="stable",
    )
    frame["rank"] = frame.groupby("event_row").cumcount() + 1
    return frame.reset_index(drop=True)


def _indicators(calls: pa.Table, call_idx: np.ndarray) -> dict[int, Indicators]:
    """Indicators of the calls that are candidates (only those: a run has millions of calls)."""
    rows = np.unique(call_idx)
    if not len(rows):
        return {}
    taken = calls.select(["command", "arguments"]).take(pa.array(rows))
    commands = taken.column("command").to_pylist()
    arguments = taken.column("arguments").to_pylist()
    return {
        int(row): extract(" ".join(x for x in (c, a) if x))
        for row, c, a in zip(rows, commands, arguments, strict=True)
    }


@dataclass(frozen=True)
class Context:
    """What attribution knows besides the scored pairs, for the answers and their reasons."""

    other_hosts: dict[int, int]
    """Event row -> how many calls of other sandboxes fell in its window (excluded by identity)."""
    identity_status: list[str]
    """Per event row: mapped | shared | unmapped (| unmapped (time-only))."""
    identity_mode: str
    """keyed (an identity map) or time."""
    known_hosts: int
    """How many hosts the identity map knows (said when a source is not among them)."""
    labels: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    """classify()'s (label, why) per conversation."""
    kinds: dict[tuple[str, str], str] = field(default_factory=dict)
    """The inventory's (host, ip) -> kind."""


@dataclass(frozen=True)
class Conversation:
    """One conversation's evidence, as its reasons tell it."""

    event: dict[str, Any]
    """The event it is attributed from (its anchor, else its first)."""
    best: dict[str, Any] | None
    second: dict[str, Any] | None
    candidates: int
    other: int
    status: str
    events: int
    labels: list[tuple[str, str]]
    tied: list[dict[str, Any]]


def attribute(
    violations: pa.Table, calls: pa.Table, scored: pd.DataFrame, context: Context
) -> tuple[pa.Table, pa.Table, pa.Table]:
    """Build (candidates, attributions, findings) from scored pairs.

    ``violations`` must be sorted by (conversation_id, conversation_seq).

    A conversation whose source address is shared, and whose best candidates (within one point)
    are calls of different sandboxes, is ambiguous: no call is named, its events say
    ``how = ambiguous`` and the finding lists the tied calls.
    """
    labels, other_hosts = context.labels, context.other_hosts
    v = plain_rows(violations)
    by_event: dict[int, list[dict[str, Any]]] = {}
    records: list[dict[str, Any]] = scored.to_dict("records")  # type: ignore[assignment]
    for record in records:
        for kind in EVIDENCE:
            if not isinstance(record[kind.name], str):
                record[kind.name] = None
        by_event.setdefault(int(record["event_row"]), []).append(record)
    # Only the calls some event ranks first are needed as Python rows (not all million of them).
    wanted = sorted({int(r[0]["call_row"]) for r in by_event.values() if r})
    taken = plain_rows(calls.take(pa.array(wanted, pa.int64()))) if wanted else []
    c = dict(zip(wanted, taken, strict=True))
    conversations: dict[int, list[int]] = {}
    for p, row in enumerate(v):
        conversations.setdefault(int(row["conversation_id"]), []).append(p)
    attributions: list[dict[str, Any]] = []
    findings: list[dict[str, Any]] = []
    for conversation_id in sorted(conversations):
        positions = conversations[conversation_id]
        anchor = next((p for p in positions if p in by_event), None)
        ranked = by_event.get(anchor, []) if anchor is not None else []
        best = ranked[0] if ranked else None
        second = ranked[1] if len(ranked) > 1 else None
        tied = _tied(ranked)
        call = c[int(best["call_row"])] if best and not tied else None
        confidence = _confidence(best, len(ranked), second) if not tied else "low"
        first = positions[0]
        status = (
            context.identity_status[first]
            if context.identity_mode == "keyed"
            else "no identity map"
        )
        for order, p in enumerate(positions):
            inherited = anchor is not None and order > positions.index(anchor)
            how = "direct" if p == anchor else "inherited" if inherited else "none"
            if tied and how != "none":
                how = "ambiguous"
            named = call is not None and how in ("direct", "inherited")
            lag = (v[p]["ts"] - call["ts_start"]) / NS if named and call else None
            row = {k: v[p][k] for k in ATTRIBUTION_EVENT_FIELDS}
            row.update(_call_fields(call if named else None))
            row.pop("command")
            row.update(how=how, lag_s=lag, confidence=confidence if how != "none" else "none")
            row["clock_offset_s"] = (v[p].get("clock_offset_ns") or 0) / NS
            attributions.append(row)
        focus = anchor if anchor is not None else first
        events = [v[p] for p in positions]
        findings.append(
            {
                "conversation_id": conversation_id,
                "first_ts": v[first]["ts"],
                "last_ts": max(e["ts"] for e in events),
                **{
                    k: v[first][k]
                    for k in ("src_ip", "src_host", "dst_ip", "dst_port", "protocol", "dst_scope")
                },
                "src_nat_ip": _first_value(events, "src_nat_ip"),
                "dst_domain": _first_value(events, "dst_domain"),
                "event_count": len(positions),
                "actions": ",".join(sorted({str(e["action"]) for e in events})),
                "rule": _first_value(events, "rule"),
                "signature": _first_value(events, "signature") or _first_value(events, "category"),
                "first_source_path": v[first]["source_path"],
                "first_source_line": v[first]["source_line"],
                "identity": status,
                "src_hosts": _hosts_text(v[focus]),
                "address_holders": _holder_count(v[focus]),
                **_call_fields(call),
                **_best_fields(best if call is not None else None),
                "labels": ",".join(label for label, _ in labels.get(conversation_id, [])) or None,
                "confidence": confidence,
                "candidates": len(ranked),
                "tied_calls": _tied_text(tied),
                "other_hosts_calls": int(other_hosts.get(focus, 0)),
                "reasons": _reasons(
                    Conversation(
                        event=v[focus],
                        best=best,
                        second=second,
                        candidates=len(ranked),
                        other=other_hosts.get(focus, 0),
                        status=status,
                        events=len(positions),
                        labels=labels.get(conversation_id, []),
                        tied=tied,
                    ),
                    context,
                ),
            }
        )
    candidates = _candidate_table(violations, calls, scored)
    attributions_table = (
        conform(pa.Table.from_pylist(attributions), ATTRIBUTIONS)
        if attributions
        else ATTRIBUTIONS.empty_table()
    )
    findings_table = (
        conform(pa.Table.from_pylist(findings), FINDINGS) if findings else FINDINGS.empty_table()
    )
    return candidates, attributions_table, findings_table


TIE_POINTS = 1.0
"""Candidates closer than this to the best score are not clearly beaten by it."""
TIED_SHOWN = 8


def _tied(ranked: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The candidates that cannot be told apart from the best on a shared address: those within
    ``TIE_POINTS`` of it, when they run in more than one sandbox (else empty: not ambiguous)."""
    if len(ranked) < 2 or ranked[0]["identity"] != "shared":
        return []
    top = float(ranked[0]["score"])
    close = [r for r in ranked if top - float(r["score"]) < TIE_POINTS]
    if len({r["call_host"] for r in close}) < 2:
        return []
    return close


def _best_fields(best: dict[str, Any] | None) -> dict[str, Any]:
    """The named call's lag and evidence for a finding (empty when no call is named)."""
    kinds = [k.name for k in EVIDENCE if k.in_findings]
    if best is None:
        return dict.fromkeys(("lag_s", "relation", *kinds))
    return {
        "lag_s": float(best["lag_ns"]) / NS,
        "relation": best["relation"],
        **{name: best[name] for name in kinds},
    }


def _tied_text(tied: list[dict[str, Any]]) -> str | None:
    if not tied:
        return None
    shown = [f"{r['call_id']} ({r['call_host'] or 'no host'})" for r in tied[:TIED_SHOWN]]
    more = len(tied) - len(shown)
    return ", ".join(shown) + (f", +{more} more" if more else "")


def _holder_names(event: dict[str, Any]) -> list[str]:
    return str(event.get("src_hosts") or "").split("\n") if event.get("src_hosts") else []


def _hosts_text(event: dict[str, Any]) -> str | None:
    return ", ".join(_holder_names(event)) or None


def _holder_count(event: dict[str, Any]) -> int | None:
    return len(_holder_names(event)) or None


ATTRIBUTION_EVENT_FIELDS = (
    "event_id",
    "conversation_id",
    "ts",
    "src_ip",
    "src_host",
    "dst_ip",
    "dst_port",
    "protocol",
    "dst_domain",
    "action",
    "source_format",
    "source_path",
    "source_line",
)


def _confidence(
    best: dict[str, Any] | None, n_candidates: int, second: dict[str, Any] | None
) -> str:
    """high / medium / low / none, from identity, evidence and how clearly the best call wins.

    high: identity matched (the address is the sandbox's alone, or shared and narrowed by it),
    the call names the destination (IP, network or domain) or its pattern agrees with the
    traffic's label, and it beats the runner-up by at least one point; or the address is the
    sandbox's alone, the call is the only candidate and its times are its own (not a window
    implied by a trajectory or a step). medium: an unshared identity with a clear winner, or
    strong evidence without identity. low: time alone, or a shared address without evidence in
    the call. none: no candidate.
    """
    if best is None:
        return "none"
    keyed = best["identity"] == "match"
    shared = best["identity"] == "shared"
    strong = best["indicator"] in ("ip", "domain", "cidr") or (
        bool(best["agreement"]) and not best.get("elsewhere", False)
    )
    clear = second is None or (float(best["score"]) - float(second["score"]) >= 1.0)
    alone = n_candidates == 1 and bool(best.get("precise", True))
    if (keyed or shared) and strong and clear:
        return "high"
    if keyed and alone and clear:
        return "high"
    if (keyed and clear) or (strong and clear):
        return "medium"
    return "low"


def _reasons(c: Conversation, context: Context) -> str:
    """Plain-language reasons for a finding, most important first."""
    event, best, second, tied = c.event, c.best, c.second, c.tied
    n_candidates, other, status, events = c.candidates, c.other, c.status, c.events
    known_hosts, kinds = context.known_hosts, context.kinds
    hidden = best["hidden"] if best else frozenset()
    parts: list[str] = [f"{label}: {why}" for label, why in c.labels]
    src = event["src_ip"]
    via = event.get("identity_via") or src
    nat = f" (its NAT address {via})" if via != src else ""
    if status == "no identity map":
        parts.append("no identity map: joined by time alone")
    elif status == "mapped":
        parts.append(f"source {src}{nat} is {event['src_host']}")
    elif status == "shared":
        names = _holder_names(event)
        held = sorted({(kinds or {}).get((h, via)) or "" for h in names} - {""})
        how = f" ({', '.join(held)})" if held else ""
        shown = ", ".join(names[:TIED_SHOWN]) + (
            f", +{len(names) - TIED_SHOWN} more" if len(names) > TIED_SHOWN else ""
        )
        where = f"source {src} is in no host's lease; its NAT address" if via != src else "address"
        parts.append(
            f"{where} {via}{how} shared by {len(names)} hosts at that moment ({shown}): "
            "identity alone cannot tell them apart"
        )
    elif status == "unmapped (time-only)":
        parts.append(
            f"source {src} is not in the identity map: joined by time alone (--unmapped time)"
        )
    else:
        parts.append(
            f"source {src} is not in the identity map ({known_hosts} hosts known): not attributed"
        )
    if best is None:
        if status in ("mapped", "shared", "no identity map", "unmapped (time-only)"):
            parts.append("no tool call in the window")
        return "; ".join(parts)
    if tied:
        sandboxes = len({r["call_host"] for r in tied})
        parts.append(
            f"ambiguous: {len(tied)} calls in {sandboxes} sandboxes score within "
            f"{TIE_POINTS:g} point of the best ({float(best['score']):.2f}), none named: "
            f"{_tied_text(tied)}"
        )
        parts.append(
            f"{n_candidates} candidate call{'s' if n_candidates != 1 else ''} in the window"
        )
        if other:
            parts.append(
                f"{other} call{'s' if other != 1 else ''} of hosts not holding the address in the "
                "window, excluded by identity"
            )
        return "; ".join(parts)
    for kind in EVIDENCE:
        said = kind.reason(best[kind.name], event) if kind is not IDENTITY else None
        if said:  # identity is said last: it narrows the candidates, the call's evidence picks
            parts.append(said)
        if said and kind is AGREEMENT and best.get("elsewhere"):
            parts.append(
                "but it names other destinations, not this one: weak evidence on a shared address"
            )
    if hidden:
        parts.append("the call hid " + ", ".join(sorted(hidden)) + " in a base64 payload")
    lag = float(best["lag_ns"]) / NS
    where = {
        "during": "during the call",
        "after": "after the call ended",
        "before": "before the call started (clock offset?)"
        if lag <= -1.0
        else "at the call's start (within clock precision)",
    }[str(best["relation"])]
    parts.append(f"first event {lag:+.3f}s from the call's start, {where}")
    parts.append(f"{n_candidates} candidate call{'s' if n_candidates != 1 else ''} in the window")
    if second is not None and float(best["score"]) - float(second["score"]) < 1.0:
        parts.append(
            f"runner-up {second['call_id']} scores close ({float(second['score']):.2f} vs {float(best['score']):.2f})"
        )
    if other:
        parts.append(
            f"{other} call{'s' if other != 1 else ''} in other sandboxes in the window, excluded by identity"
        )
    said = IDENTITY.reason(best["identity"], event)
    if said:
        parts.append(said)
    if events > 1:
        parts.append(
            f"{events - 1} later event{'s' if events != 2 else ''} inherit this call (same conversation)"
        )
    return "; ".join(parts)


def _first_value(events: list[dict[str, Any]], column: str) -> object:
    return next((e[column] for e in events if e[column] is not None), None)


def _call_fields(call: dict[str, Any] | None) -> dict[str, Any]:
    return {k: (call[k] if call else None) for k in CALL_FIELDS}


def _candidate_table(violations: pa.Table, calls: pa.Table, scored: pd.DataFrame) -> pa.Table:
    if not len(scored):
        return CANDIDATES.empty_table()
    ev = violations.take(pa.array(scored["event_row"].to_numpy()))
    ca = calls.take(pa.array(scored["call_row"].to_numpy()))
    columns = {
        "conversation_id": ev.column("conversation_id"),
        "event_id": ev.column("event_id"),
        "event_ts": ev.column("ts"),
        "event_source_path": ev.column("source_path"),
        "event_source_line": ev.column("source_line"),
        **{k: ca.column(k) for k in CALL_FIELDS},
        "call_ts_start": ca.column("ts_start"),
        "call_ts_end": ca.column("ts_end"),
        "call_source_path": ca.column("source_path"),
        "call_source_line": ca.column("source_line"),
        "lag_s": pa.array(scored["lag_ns"].to_numpy() / NS),
        "relation": pa.array(scored["relation"].tolist(), pa.string()),
        **{
            k.name: pa.array(
                [x if isinstance(x, str) else None for x in scored[k.name]], pa.string()
            )
            for k in EVIDENCE
        },
        "score": pa.array(scored["score"].to_numpy()),
        "rank": pa.array(scored["rank"].to_numpy().astype(np.int32)),
    }
    table = conform(pa.table(columns), CANDIDATES)
    return table.sort_by(
        [("conversation_id", "ascending"), ("event_id", "ascending"), ("rank", "ascending")]
    )
