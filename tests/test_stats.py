"""Clock offsets, association with chance, and attribution accuracy on synthetic incidents."""

from __future__ import annotations

import numpy as np
import pytest

from correlate.pipeline import RunOptions, analyse
from correlate.stats import apply_offsets, estimate_offset
from correlate.synthetic import incident, measure

NS = 1_000_000_000


def test_offset_is_the_onset_of_the_lag_peak_over_a_flat_background() -> None:
    rng = np.random.default_rng(1)
    background = rng.integers(-120 * NS, 120 * NS, 4000)
    caused = (
        -6.3 + rng.uniform(0.05, 0.8, 800)
    ) * NS  # clock -6.3 s, effects 50-800 ms after the call
    offset, low, high, peak, z, _, note = estimate_offset(
        np.concatenate([background, caused.astype(np.int64)])
    )
    assert offset is not None and abs(offset - -6.3) < 0.3, note
    assert low is not None and high is not None and low <= offset <= high
    assert peak > 500 and z is not None and z > 10


def test_no_peak_means_no_offset() -> None:
    rng = np.random.default_rng(2)
    offset, *_, note = estimate_offset(rng.integers(-120 * NS, 120 * NS, 3000))
    assert offset is None
    assert "no clear peak" in note


def test_too_few_pairs_means_no_offset() -> None:
    offset, *_, note = estimate_offset(np.array([0, NS, 2 * NS]))
    assert offset is None and "too few pairs" in note


def test_applying_an_offset_moves_only_that_source_and_records_it() -> None:
    loaded, _ = incident(seed=3, sandboxes=4, hours=0.2, plants=4, strays=0)
    shifted = apply_offsets(loaded.events, {"synthetic_firewall": -4.0, "other": 99.0})
    before = loaded.events.column("ts").cast("int64").to_numpy()
    after = shifted.column("ts").cast("int64").to_numpy()
    assert (after - before == 4 * NS).all()
    assert set(shifted.column("clock_offset_ns").to_pylist()) == {-4 * NS}


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_with_identity_every_planted_conversation_is_attributed_right_and_the_clock_found(
    seed: int,
) -> None:
    loaded, truth = incident(
        seed=seed, sandboxes=24, hours=0.75, offset_s=-3.0 + seed % 3 * 2.5, plants=16
    )
    result = analyse(loaded, RunOptions(offset_auto=True))
    accuracy = measure(
        result.findings,
        result.candidates,
        result.attributions,
        truth,
        result.applied_offsets.get("synthetic_firewall"),
    )
    assert accuracy.precision >= 0.99 and accuracy.recall >= 0.99, accuracy
    assert accuracy.offset_error_s is not None and accuracy.offset_error_s < 0.5, accuracy


@pytest.mark.parametrize("seed", [21, 22])
def test_without_identity_a_call_naming_the_destination_ranks_first(seed: int) -> None:
    loaded, truth = incident(seed=seed, sandboxes=24, hours=0.75, plants=16, identity=False)
    result = analyse(loaded, RunOptions(offset_auto=True))
    assert result.identity_mode == "time-only"
    accuracy = measure(result.findings, result.candidates, result.attributions, truth, None)
    assert accuracy.named_top1 is not None and accuracy.named_top1 >= 0.9, accuracy


def test_stray_hosts_are_never_attributed() -> None:
    loaded, _ = incident(seed=5, sandboxes=12, hours=0.5, plants=8, strays=6)
    result = analyse(loaded, RunOptions(offset_auto=True))
    strays = [f for f in result.findings.to_pylist() if f["src_ip"].startswith("10.99.")]
    assert strays and all(f["call_id"] is None and f["confidence"] == "none" for f in strays)


def test_association_is_far_above_chance_with_a_causal_link_and_absent_without() -> None:
    loaded, _ = incident(seed=7, sandboxes=24, hours=1.0, plants=24)
    causal = analyse(loaded, RunOptions(offset_auto=True))
    run = next(a for a in causal.statistics(199)[0] if a.scope == "run")
    assert run.p_value <= 0.01 and run.lift is not None and run.lift > 1.5
    loaded, _ = incident(seed=7, sandboxes=24, hours=1.0, plants=24, causal=False)
    null = analyse(loaded, RunOptions(offsets=(("synthetic_firewall", -4.0),)))
    run = next(a for a in null.statistics(199)[0] if a.scope == "run")
    assert run.p_value > 0.05
    assert run.lift is not None and 0.5 < run.lift < 1.6


def test_association_q_values_are_benjamini_hochberg() -> None:
    loaded, _ = incident(seed=8, sandboxes=12, hours=1.0, plants=12)
    associations, baselines = analyse(loaded, RunOptions(offset_auto=True)).statistics(99)
    episodes = sorted((a for a in associations if a.scope == "episode"), key=lambda a: a.p_value)
    m = len(episodes)
    assert m > 1
    for rank, a in enumerate(episodes, start=1):
        assert a.q_value is not None and a.q_value >= a.p_value - 1e-9
        assert a.q_value <= min(1.0, a.p_value * m / rank) + 1e-9
    overall = next(b for b in baselines if b.tool == "(any)")
    assert overall.violations_in_flight + overall.violations_idle > 0
