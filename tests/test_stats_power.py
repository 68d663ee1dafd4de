"""The association test's power: in-flight fraction, critical count, minimum detectable lift, and
the plain sentence that replaces a p-value when the test cannot tell association from chance."""

from __future__ import annotations

import io
import math
from dataclasses import astuple

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from test_stats import SAMPLE, SAMPLE_STATISTICS, incidents

from correlate import stats
from correlate.pipeline import RunOptions, run
from correlate.reports.terminal import statistics_renderable
from correlate.schema import NETWORK_EVENTS, TOOL_CALLS, from_columns
from correlate.stats import ALPHA, POWER, Association

S = stats.NS
T0 = 1_764_655_200 * S


def incident(
    calls: list[tuple[float, float]], onsets: list[float], tool: str = "bash"
) -> tuple[pa.Table, pa.Table]:
    """One episode of host h1: calls as (start s, duration s), onsets (s), from ``T0``."""
    call_table = from_columns(
        {
            "ts_start": [T0 + round(a * S) for a, _ in calls],
            "ts_end": [T0 + round((a + d) * S) for a, d in calls],
            "host": ["h1"] * len(calls),
            "episode_id": ["e1"] * len(calls),
            "run_id": ["r1"] * len(calls),
            "tool": [tool] * len(calls),
        },
        TOOL_CALLS,
    )
    events = from_columns({"ts": [T0 + round(t * S) for t in onsets]}, NETWORK_EVENTS)
    events = events.append_column("src_host", pa.array(["h1"] * len(onsets), pa.string()))
    return events, call_table.sort_by([("ts_start", "ascending")])


def by_scope(associations: list[Association]) -> dict[str, Association]:
    return {a.scope: a for a in associations}


def rendered(associations: list[Association], width: int = 200) -> str:
    console = Console(
        file=io.StringIO(), width=width, record=True, highlight=False, color_system=None
    )
    console.print(statistics_renderable(associations, []))
    return console.export_text()


# --- hand-built cases -----------------------------------------------------------------------


def test_a_fully_covered_span_cannot_tell() -> None:
    """Back-to-back calls for an hour: every shift puts every onset in a window."""
    calls = [(10.0 * i, 10.0) for i in range(360)]
    onsets = [600.0 + 250 * i for i in range(10)]  # away from the span's edges
    violations, table = incident(calls, onsets)
    result = by_scope(stats.association(violations, table))
    for a in result.values():
        assert (a.violations, a.observed, a.expected, a.lift, a.p_value) == (10, 10, 10.0, 1.0, 1.0)
        assert a.in_flight_fraction == 1.0
        assert a.max_lift == 1.0
        assert a.critical_count is None
        assert a.min_detectable_lift is None
        assert a.cannot_tell
        assert a.power_note is not None
        assert a.power_note.startswith(
            "calls were in flight 100% of the time: this test cannot tell association from "
            "chance here (even all 10 onsets in call windows would not be significant at 0.05)"
        )
    text = rendered(list(result.values()))
    assert "run r1: calls were in flight 100% of the time: this test cannot tell" in text
    assert "tool bash: calls were in flight 100% of the time" in text
    assert "1 of 1 episodes with onsets cannot tell association from chance" in text
    assert "cannot tell" in text.split("run ", 1)[1].splitlines()[0]  # in place of the p-value
    assert " 1 \n" not in text and "1.000" not in text


def test_a_sparse_span_with_a_strong_association_is_detectable_and_significant() -> None:
    """Short calls at irregular gaps over ten hours; every onset a second after a call starts."""
    rng = np.random.default_rng(7)
    starts = np.cumsum(rng.uniform(300, 1200, 60))
    calls = [(float(a), 10.0) for a in starts]
    onsets = [float(a) + 1 for a in starts[::3]]
    violations, table = incident(calls, onsets)
    result = by_scope(stats.association(violations, table))
    for a in result.values():
        assert a.observed == a.violations == 20
        assert a.p_value == 0.001
        assert a.in_flight_fraction is not None and 0 < a.in_flight_fraction < 0.05
        assert not a.cannot_tell and a.power_note is None
        assert a.critical_count is not None and a.critical_count <= 4
        assert a.min_detectable_lift is not None and a.max_lift is not None
        assert 1 < a.min_detectable_lift < a.max_lift == pytest.approx(a.lift)
    text = rendered(list(result.values()))
    assert "cannot tell" not in text
    assert "0.001" in text
    assert f"{result['run'].in_flight_fraction:.0%}" in text
    assert f"{result['run'].min_detectable_lift:.2f}" in text


def test_clustered_onsets_count_once_in_the_critical_count() -> None:
    """Ten onsets within a second (one command, ten destinations) inside a call window, with
    calls covering about 30% of the span: they fall in windows together or not at all, so the
    shifts give p about 0.3 even for 10 of 10 (a binomial null would give 0.3 ** 10)."""
    rng = np.random.default_rng(3)
    starts = np.cumsum(rng.uniform(60, 120, 100))
    calls = [(float(a), 20.0) for a in starts]
    onsets = [float(starts[50]) + 1 + 0.1 * i for i in range(10)]
    violations, table = incident(calls, onsets)
    a = by_scope(stats.association(violations, table))["episode"]
    assert a.observed == 10
    assert a.p_value > ALPHA
    assert a.in_flight_fraction is not None and 0.15 < a.in_flight_fraction < 0.45
    assert a.in_flight_fraction**10 < ALPHA  # what a binomial null would call detectable
    assert a.cannot_tell
    assert a.power_note is not None and "all 10 onsets" in a.power_note


def test_mostly_covered_span_reads_as_cannot_tell_not_as_no_association() -> None:
    """Calls in flight 82% of the time (75 s calls every 100 s, windows 2 s before and 5 s
    after): 10 of 10 onsets in windows cannot be significant."""
    calls = [(100.0 * i, 75.0) for i in range(40)]
    onsets = [100.0 * i + 30 for i in range(5, 35, 3)]
    violations, table = incident(calls, onsets)
    a = by_scope(stats.association(violations, table))["run"]
    assert (a.violations, a.observed) == (10, 10)
    assert a.in_flight_fraction == pytest.approx(0.82, abs=0.03)
    assert a.cannot_tell
    share = f"{a.in_flight_fraction:.0%}"
    assert f"calls were in flight {share} of the time: this test cannot tell" in rendered([a])


def test_the_sentence_replaces_the_p_value() -> None:
    """As the issue's incident: lift 1.12, p 0.439, calls in flight 82% of the time."""
    mute = Association("tool", "bash", None, 900, 10, 9, 8.2, 1.097561, 0.439, 0.5, 0.82)
    text = rendered([mute])
    assert (
        "tool bash: calls were in flight 82% of the time: this test cannot tell association "
        "from chance here (even all 10 onsets in call windows would not be significant at 0.05)."
    ) in text
    row = next(line for line in text.splitlines() if line.startswith(" tool"))
    assert "cannot tell" in row and "0.439" not in row and "0.5" not in row
    narrow = rendered([mute], width=80)
    assert "cannot" in narrow and "0.439" not in narrow
    assert " ".join(narrow.split()).count("this test cannot tell association from chance") == 1


def test_results_without_power_render_as_before() -> None:
    """Results cached before the power fields existed, and scopes without onsets."""
    old = Association("run", "r1", None, 10, 3, 3, 0.5, 6.0, 0.002, None)
    none = Association("tool", "t", None, 10, 0, 0, 0.0, None, 1.0, 1.0)
    assert not old.cannot_tell and not none.cannot_tell
    text = rendered([old, none])
    assert "0.002" in text and "cannot tell" not in text and "in flight:" not in text


# --- the formulas ---------------------------------------------------------------------------


def binomial_tail(n: int, p: float, c: int) -> float:
    return sum(math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(c, n + 1))


@pytest.mark.parametrize(("n", "c"), [(1, 1), (5, 5), (10, 3), (12, 11), (40, 9), (400, 30)])
def test_least_binomial_p_reaches_the_power_exactly(n: int, c: int) -> None:
    p = stats._least_binomial_p(n, c, POWER)
    assert binomial_tail(n, p, c) == pytest.approx(POWER, abs=1e-9)
    if c == n:
        assert p == POWER ** (1 / n)


@settings(max_examples=200)
@given(
    st.lists(st.integers(0, 12), min_size=0, max_size=60),
    st.integers(1, 12),
    st.integers(0, 12),
)
def test_critical_count_is_where_the_p_value_crosses_alpha(
    null_values: list[int], n: int, observed: int
) -> None:
    null = np.minimum(np.array(null_values, dtype=np.int64), n)
    observed = min(observed, n)
    a = stats._summarise("episode", "e", "h", 5, n, observed, null)
    p_at = [stats._summarise("episode", "e", "h", 5, n, k, null).p_value for k in range(n + 1)]
    if not len(null):
        assert (a.in_flight_fraction, a.critical_count, a.min_detectable_lift) == (None,) * 3
        return
    assert a.in_flight_fraction == round(float(null.mean()) / n, 6)
    significant = [k for k in range(n + 1) if p_at[k] <= ALPHA]
    assert a.critical_count == (significant[0] if significant else None)
    assert a.cannot_tell == (not significant)
    if a.cannot_tell:
        assert a.p_value > ALPHA
    if a.min_detectable_lift is not None:
        assert a.max_lift is not None and a.min_detectable_lift <= a.max_lift + 1e-6


@settings(max_examples=150)
@given(incidents(), st.integers(0, 6), st.integers(0, 6), st.integers(0, 40))
def test_power_fields_are_consistent_on_random_incidents(
    incident_tables: tuple[pa.Table, pa.Table], before: int, after: int, permutations: int
) -> None:
    violations, calls = incident_tables
    window = dict(before_ns=before, after_ns=after, permutations=permutations)
    for a in stats.association(violations, calls, **window):
        if a.violations == 0 or permutations == 0:
            assert a.in_flight_fraction is None and not a.cannot_tell
            continue
        assert a.in_flight_fraction is not None and 0 <= a.in_flight_fraction <= 1
        assert a.in_flight_fraction == pytest.approx(a.expected / a.violations, abs=1e-5)
        if permutations < 19:  # no p-value can reach 0.05
            assert a.cannot_tell
        if a.cannot_tell:
            assert a.p_value > ALPHA and a.min_detectable_lift is None
        elif a.min_detectable_lift is not None:
            assert a.max_lift is not None and a.min_detectable_lift <= a.max_lift + 1e-6


# --- the p-values did not move ----------------------------------------------------------------


@pytest.mark.parametrize("options", ["auto", "report"])
def test_sample_p_values_are_unchanged(options: str) -> None:
    result = run([str(SAMPLE)], RunOptions(offset_auto=options == "auto"))
    associations, _ = result.statistics(999)
    assert [astuple(a)[:10] for a in associations] == SAMPLE_STATISTICS[options][0]
    power = [(a.in_flight_fraction, a.critical_count, a.cannot_tell) for a in associations]
    if options == "auto":
        assert power == [
            (0.371872, 11, False),  # sbx-12's ten onsets come together: 11 of 12 needed
            (0.021522, 2, False),
            (0.336837, 11, False),
            (0.014181, 2, False),
            (0.426426, None, True),  # one onset, windows cover 43%: p >= 0.43 whatever happens
            (0.406406, None, True),
            (0.362963, 10, False),
        ]
