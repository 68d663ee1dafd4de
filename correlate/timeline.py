"""One episode's (or one sandbox's) tool calls and violations interleaved in time.

An episode's timeline holds its calls, the violations attributed to them (however late: a miner's
flows an hour on), and every other violation from its sandbox while the episode ran (its first
call's start minus ``--before`` to its last call's end plus ``--after``), so that a violation
attributed elsewhere, or to nothing, still shows up beside the calls it followed. A host's
timeline holds that host's calls and the violations from it or attributed to its calls.

With ``traffic`` (every stored event of a case, a batch at a time: ``timeline --all-traffic``)
the timeline also holds the sandbox's other traffic in its time range (the episode's span, or the
host's first to last entry, each widened by ``--before``/``--after``): the events that are not
violations (allowed flows, mostly) whose source address one of the timeline's hosts held at the
time, on the same clock as the violations (the analysis' offsets applied). They are ``traffic``
rows, never attributed to anything; the miner's download shows next to its ``wget`` call.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import CorrelateError, OptionError
from .identity import holders
from .pipeline import Result, fill_from_enrichment
from .query import name_matches, violation_rows
from .schema import TS, int_ns, plain_rows
from .stats import apply_offsets
from .textsafe import inert

TIMELINE = pa.schema(
    [
        pa.field("ts", TS),
        pa.field("ts_end", TS),
        pa.field("kind", pa.string()),
        pa.field("delta_s", pa.float64()),
        pa.field("host", pa.string()),
        pa.field("run_id", pa.string()),
        pa.field("episode_id", pa.string()),
        pa.field("step", pa.int64()),
        pa.field("tool", pa.string()),
        pa.field("call_id", pa.string()),
        pa.field("command", pa.string()),
        pa.field("exit_code", pa.int64()),
        pa.field("duration_s", pa.float64()),
        pa.field("event_id", pa.int64()),
        pa.field("conversation_id", pa.int64()),
        pa.field("src_ip", pa.string()),
        pa.field("dst_ip", pa.string()),
        pa.field("dst_port", pa.int32()),
        pa.field("protocol", pa.string()),
        pa.field("dst_domain", pa.string()),
        pa.field("action", pa.string()),
        pa.field("labels", pa.string()),
        pa.field("how", pa.string()),
        pa.field("attributed_call_id", pa.string()),
        pa.field("attributed_step", pa.int64()),
        pa.field("lag_s", pa.float64()),
        pa.field("confidence", pa.string()),
        pa.field("link", pa.string()),
        pa.field("source_path", pa.string()),
        pa.field("source_line", pa.int64()),
        pa.field("app", pa.string()),
        pa.field("bytes_out", pa.int64()),
        pa.field("bytes_in", pa.int64()),
    ]
)
"""One row per call (``kind`` call), violation event (``kind`` violation) or, with
``--all-traffic``, other network event of the sandbox (``kind`` traffic), in time order.

``delta_s`` is the time since the previous row; ``link`` says in words which call a violation is
attributed to (and its lag), or how many violations a call is blamed for, or for traffic which
sandbox's address sent it. ``app`` and the byte counts are a traffic row's, as logged.
"""

_KIND_ORDER = {"call": 0, "violation": 1, "traffic": 2}


def _violation_link(v: dict[str, Any]) -> str:
    if not v.get("call_id"):
        return "← not attributed"
    verb = "inherited from" if v.get("how") == "inherited" else "attributed to"
    step = f" (step {v['step']})" if v.get("step") is not None else ""
    lag = f", {v['lag_s']:+.1f}s" if v.get("lag_s") is not None else ""
    confidence = f", {v['confidence']}" if v.get("confidence") else ""
    return f"← {verb} {v['call_id']}{step}{lag}{confidence}"


def build_timeline(
    result: Result,
    *,
    episode: Sequence[str] = (),
    host: Sequence[str] = (),
    since_ns: int | None = None,
    until_ns: int | None = None,
    traffic: Iterable[pa.Table] | None = None,
    enrichment: pa.Table | None = None,
) -> pa.Table:
    """The TIMELINE rows of the episodes and/or hosts named (shell globs allowed).

    ``traffic``: network events (``NETWORK_EVENTS`` tables, as stored, e.g. a case's
    ``event_batches()``) from which the sandbox's non-violation events in the timeline's span are
    added as ``traffic`` rows; ``enrichment`` fills their domains as the analysis does.
    """
    if not episode and not host:
        raise OptionError("timeline needs --episode or --host")
    calls = plain_rows(
        result.loaded.calls.select(
            [
                "call_id",
                "run_id",
                "episode_id",
                "step",
                "ts_start",
                "ts_end",
                "tool",
                "command",
                "exit_code",
                "host",
                "source_path",
                "source_line",
            ]
        )
    )
    chosen = [
        c
        for c in calls
        if (not episode or name_matches(episode, c["episode_id"]))
        and (not host or name_matches(host, c["host"]))
    ]
    violations = violation_rows(result)
    if episode:
        hosts = {c["host"] for c in chosen if c["host"]}
        starts = [c["ts_start"] for c in chosen if c["ts_start"] is not None]
        ends = [c["ts_end"] or c["ts_start"] for c in chosen if c["ts_start"] is not None]
        lo = min(starts) - result.options.before_ns if starts else None
        hi = max(ends) + result.options.after_ns if ends else None

        def near(v: dict[str, Any]) -> bool:
            if name_matches(episode, v["episode_id"]) and (
                not host or name_matches(host, v["host"]) or name_matches(host, v["src_host"])
            ):
                return True
            return (
                v["src_host"] in hosts
                and lo is not None
                and hi is not None
                and lo <= v["ts"] <= hi
                and (not host or name_matches(host, v["src_host"]))
            )

        picked = [v for v in violations if near(v)]
    else:
        picked = [
            v
            for v in violations
            if name_matches(host, v["src_host"]) or name_matches(host, v["host"])
        ]
    if not chosen and not picked:
        what = " and ".join(
            x
            for x in (
                f"episode {', '.join(episode)}" if episode else "",
                f"host {', '.join(host)}" if host else "",
            )
            if x
        )
        known = sorted({str(c["episode_id" if episode else "host"]) for c in calls})
        sample = ", ".join(inert(k, 40) for k in known[:5]) + (", …" if len(known) > 5 else "")
        raise CorrelateError(
            f"no calls or violations for {inert(what)} in the case (e.g. {sample})"
        )
    flows: list[dict[str, Any]] = []
    if traffic is not None:
        if episode:
            sandboxes = {h for h in hosts if not host or name_matches(host, h)}
            first, last = lo, hi
        else:
            named = {*result.identity.column("host").to_pylist(), *(c["host"] for c in chosen)}
            sandboxes = {h for h in named if h and name_matches(host, h)}
            opened = [c["ts_start"] for c in chosen] + [v["ts"] for v in picked]
            closed = [c["ts_end"] or c["ts_start"] for c in chosen] + [v["ts"] for v in picked]
            opened = [t for t in opened if t is not None]
            closed = [t for t in closed if t is not None]
            first = min(opened) - result.options.before_ns if opened else None
            last = max(closed) + result.options.after_ns if closed else None
        if first is not None and since_ns is not None:
            first = max(first, since_ns)
        if last is not None and until_ns is not None:
            last = min(last, until_ns)
        flows = sandbox_traffic(result, traffic, sandboxes, first, last, enrichment)
    blamed: dict[tuple[Any, Any], list[dict[str, Any]]] = defaultdict(list)
    for v in violations:
        if v["call_id"]:
            blamed[(v["call_id"], v["run_id"])].append(v)
    rows: list[dict[str, Any]] = []
    for c in chosen:
        mine = blamed.get((c["call_id"], c["run_id"]), [])
        conversations = sorted({v["conversation_id"] for v in mine})
        labels = sorted({x for v in mine for x in str(v["labels"] or "").split(",") if x})
        link = None
        if mine:
            link = f"→ {len(mine)} violation(s) attributed, conversation(s) " + ", ".join(
                f"#{n}" for n in conversations
            )
            if labels:
                link += f" ({', '.join(labels)})"
        duration = (
            (c["ts_end"] - c["ts_start"]) / 1e9
            if c["ts_end"] is not None and c["ts_start"] is not None
            else None
        )
        rows.append(
            {
                **{k: c[k] for k in ("host", "run_id", "episode_id", "step", "tool", "call_id")},
                **{k: c[k] for k in ("command", "exit_code", "source_path", "source_line")},
                "ts": c["ts_start"],
                "ts_end": c["ts_end"],
                "kind": "call",
                "duration_s": duration,
                "labels": ",".join(labels) or None,
                "link": link,
            }
        )
    for v in picked:
        rows.append(
            {
                "ts": v["ts"],
                "kind": "violation",
                "host": v["src_host"],
                **{
                    k: v[k] for k in ("run_id", "episode_id", "tool", "event_id", "conversation_id")
                },
                **{k: v[k] for k in ("src_ip", "dst_ip", "dst_port", "protocol", "dst_domain")},
                **{k: v[k] for k in ("action", "labels", "how", "lag_s", "confidence", "command")},
                "attributed_call_id": v["call_id"],
                "attributed_step": v["step"],
                "link": _violation_link(v),
                "source_path": v["source_path"],
                "source_line": v["source_line"],
            }
        )
    rows.extend(flows)
    rows = [
        r
        for r in rows
        if r["ts"] is not None
        and (since_ns is None or r["ts"] >= since_ns)
        and (until_ns is None or r["ts"] <= until_ns)
    ]
    rows.sort(
        key=lambda r: (
            r["ts"],
            _KIND_ORDER[r["kind"]],
            r["source_path"] or "",
            r["source_line"] or 0,
        )
    )
    previous = None
    for r in rows:
        r["delta_s"] = None if previous is None else (r["ts"] - previous) / 1e9
        previous = r["ts"]
    return pa.Table.from_pylist(
        [{f.name: r.get(f.name) for f in TIMELINE} for r in rows], schema=TIMELINE
    )


def sandbox_traffic(
    result: Result,
    events: Iterable[pa.Table],
    sandboxes: set[str],
    lo: int | None,
    hi: int | None,
    enrichment: pa.Table | None = None,
) -> list[dict[str, Any]]:
    """``traffic`` rows: the events among ``events`` that are not violations, sent from an
    address one of ``sandboxes`` held at the time (its NAT address when no host held the source),
    between ``lo`` and ``hi`` (ns, on the analysis' clock: its offsets are applied here).

    ``events`` are read a batch at a time and cut to the sandboxes' addresses before anything is
    converted, so a case's whole traffic is never held in memory.
    """
    if not sandboxes or lo is None or hi is None or lo > hi:
        return []
    identity = result.identity
    ips = sorted(
        {
            ip
            for ip, h in zip(
                identity.column("ip").to_pylist(), identity.column("host").to_pylist(), strict=True
            )
            if h in sandboxes and ip
        }
    )
    if not ips:
        return []
    wanted = pa.array(ips, pa.string())
    violations = pa.array(result.violations.column("event_id").to_pylist(), pa.int64())
    offsets = result.applied_offsets
    widest = max((abs(round(v * 1e9)) for v in offsets.values()), default=0)
    kept: list[pa.Table] = []
    for batch in events:
        mask = pc.or_(
            pc.fill_null(pc.is_in(batch.column("src_ip"), value_set=wanted), False),
            pc.fill_null(pc.is_in(batch.column("src_nat_ip"), value_set=wanted), False),
        )
        times = int_ns(batch.column("ts"), 0)
        near = (times >= lo - widest) & (times <= hi + widest)  # as logged: offsets not yet applied
        mask = pc.and_(mask, pa.array(near))
        mask = pc.and_(mask, pc.invert(pc.is_in(batch.column("event_id"), value_set=violations)))
        chosen = batch.filter(mask)
        if chosen.num_rows:
            kept.append(chosen)
    if not kept:
        return []
    table = pa.concat_tables(kept)
    table = apply_offsets(table, offsets)
    times = int_ns(table.column("ts"), 0)
    table = table.filter(pa.array((times >= lo) & (times <= hi)))
    if table.num_rows == 0:
        return []
    if enrichment is not None:
        table = fill_from_enrichment(table, enrichment)
    times = int_ns(table.column("ts"), 0)
    src = table.column("src_ip").to_pylist()
    held = holders(identity, src, times)
    nat = table.column("src_nat_ip").to_pylist()
    retry = [i for i, names in enumerate(held) if not names and nat[i]]
    if retry:
        behind = holders(identity, [nat[i] for i in retry], np.asarray(times)[retry])
        for i, names in zip(retry, behind, strict=True):
            held[i] = names
    rows = []
    for event, names in zip(plain_rows(table), held, strict=True):
        if not set(names) & sandboxes:
            continue
        owner = names[0] if len(names) == 1 else None
        via = f" via {event['src_nat_ip']}" if event["src_nat_ip"] else ""
        who = owner or f"address shared by {len(names)} hosts ({', '.join(names)})"
        rows.append(
            {
                **{k: event[k] for k in ("ts", "ts_end", "event_id", "src_ip", "dst_ip")},
                **{k: event[k] for k in ("dst_port", "protocol", "dst_domain", "action", "app")},
                **{k: event[k] for k in ("bytes_out", "bytes_in", "source_path", "source_line")},
                "kind": "traffic",
                "host": owner,
                "link": f"from {who} {event['src_ip']}{via}; not a violation",
            }
        )
    return rows


__all__ = ["TIMELINE", "build_timeline", "sandbox_traffic"]
