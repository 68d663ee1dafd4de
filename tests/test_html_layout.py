"""The HTML report's layout, measured in headless Chromium at 900 and 1600 px wide.

The report opens as ``correlate run`` does: the totals and the ranked table on the first screen,
then each finding, the timelines, the statistics, and the provenance last and collapsed. In the
browser, the text of every label (table cells, headings, navigation, a finding's facts, the
charts' axis, step and conversation labels) is measured with a DOM range and no two boxes of one
group may intersect, no text may spill out of its cell or its chart, and nothing may be wider
than the window. Screenshots of each width (the first screen and the whole page) are saved to
``$CORRELATE_SCREENSHOTS`` or ``<tmp>/correlate-html-layout``.

Needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium`` package (the ``test``
extra); ``.ci/run`` installs them. When one is missing the tests fail, unless
``CORRELATE_NO_BROWSER=1`` asks to skip them.
"""

from __future__ import annotations

import base64
import os
import re
import tempfile
from collections.abc import Iterator
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_case_fixtures import chromium_paths, hostile_case, invoke, sample_case, scratch

from correlate.case import open_case
from correlate.pipeline import RunOptions
from correlate.reports.html import (
    LABEL_SIZE,
    WIDTH,
    _place_labels,
    _steps,
    _text_width,
    render_html,
)
from correlate.reports.overview import ranked

WIDTHS = (900, 1600)
FIRST_SCREEN = 600
"""The ranked table must start this close to the top of the page (px)."""
EPS = 0.5
"""Boxes that share an edge (or overlap by less than half a pixel, rounding) do not intersect."""
SHARED = "sample_logs/rock_shared_hosts"


# --- without a browser: order and structure --------------------------------------------------


def test_the_report_opens_with_the_ranked_overview_and_ends_with_collapsed_provenance() -> None:
    result = open_case(sample_case()).analyse(RunOptions())
    document = render_html(result, permutations=19)
    assert document == render_html(result, permutations=19)  # deterministic
    sections = [m.group(1) for m in re.finditer(r'<section id="([a-z]+)"', document)]
    assert sections == ["overview", "findings", "timelines", "statistics", "provenance"]
    overview = document[document.index('<section id="overview">') :]
    overview = overview[: overview.index("</section>")]
    assert overview.index('<p class="headline">') < overview.index('<table class="overview">')
    assert "13 violation conversations from 55 events: attributed 12 high" in overview
    order = [int(n) for n in re.findall(r'<tr><td class="num"><a href="#finding-(\d+)">', overview)]
    assert order == [int(r["conversation_id"]) for r in ranked(result.findings)]
    details = [int(n) for n in re.findall(r'<article id="finding-(\d+)"', document)]
    assert details == order  # each row's detail exists, in the same order
    row = overview[overview.index('href="#finding-1"') :]
    row = row[: row.index("</tr>")]
    assert "sbx-03 192.168.10.13" in row and "203.0.113.7:22" in row
    assert "reverse_tunnel" in row and "ssh -fNR 2222:localhost:22" in row
    unattributed = overview[overview.index('href="#finding-13"') :]
    assert "not attributed: source 192.168.50.9 is not in the identity map" in unattributed
    provenance = document[document.index('<section id="provenance">') :]
    assert provenance.startswith('<section id="provenance"><h2>Provenance</h2><details ')
    assert "<details open" not in document
    for part in ("SHA-256", "<h3>Parameters</h3>", "<h3>Counts</h3>", "sample_logs/rome_incident"):
        assert document.index(part) > document.index('<section id="provenance">'), part


def test_an_ambiguous_finding_says_so_in_the_ranked_table() -> None:
    document = _document(_shared_case())
    overview = document[: document.index('<section id="findings">')]
    assert "(1 of the low ambiguous between sandboxes)" in overview
    row = overview[overview.index('href="#finding-5"') :]
    row = row[: row.index("</tr>")]
    assert "shared by 4 10.0.1.12" in row
    assert "ambiguous: call_k2x24cstusv9rgoym0opyunx (sandbox-9413201f)" in row


@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=WIDTH, allow_nan=False),
            st.from_regex(r"\d{1,3}", fullmatch=True),
        ),
        max_size=40,
    )
)
def test_chart_labels_that_would_touch_become_one_and_stay_inside_the_chart(
    marks: list[tuple[float, str]],
) -> None:
    placed = _place_labels(marks, LABEL_SIZE, _steps)
    ends = [(left, left + _text_width(text, LABEL_SIZE)) for left, text in placed]
    assert all(left > 0 and right < WIDTH for left, right in ends)
    assert all(a[1] < b[0] for a, b in pairwise(ends))  # apart, left to right
    shown = {s for _, text in placed for s in text.split(" ", 1)[1].split(", ")}
    assert shown == {step for _, step in marks} or any(x.startswith("…") for x in shown)


# --- in a real browser ------------------------------------------------------------------------


@cache
def _shared_case() -> Path:
    """The shared-address sample as a case: an ambiguous finding and a long base64 command."""
    case = scratch("shared") / "case"
    result = invoke("ingest", str(case), SHARED, "--tz", "Asia/Shanghai", "--offset", "auto", "-q")
    assert result.exit_code == 0, result.output
    return case


def _document(case: Path) -> str:
    out = scratch("layout-report") / "report.html"
    result = invoke("report", str(case), "-o", str(out), "--permutations", "19")
    assert result.exit_code == 0, result.output
    return out.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def reports() -> dict[str, Path]:
    """The reports measured: the sample incident, the shared-address sample, the crafted case."""
    folder = scratch("layout-reports")
    paths = {}
    for name, case in (
        ("rome_incident", sample_case()),
        ("rock_shared_hosts", _shared_case()),
        ("hostile", hostile_case()),
    ):
        paths[name] = folder / f"{name}.html"
        paths[name].write_text(_document(case), encoding="utf-8")
    return paths


def _screenshots() -> Path:
    folder = Path(
        os.environ.get("CORRELATE_SCREENSHOTS")
        or Path(tempfile.gettempdir()) / "correlate-html-layout"
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless chromium driven by selenium; fails when missing unless CORRELATE_NO_BROWSER=1."""
    if os.environ.get("CORRELATE_NO_BROWSER") == "1":
        pytest.skip("CORRELATE_NO_BROWSER=1")
    chromium, driver_path = chromium_paths()
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail(
            "selenium is not installed (pip install '.[test]'; CORRELATE_NO_BROWSER=1 skips)"
        )
    if not chromium or not driver_path:
        pytest.fail(
            "chromium and chromedriver are needed (apt-get install chromium chromium-driver; "
            "CORRELATE_NO_BROWSER=1 skips)"
        )
    options = Options()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--force-device-scale-factor=1",
        f"--user-data-dir={scratch('chromium-layout-profile')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


MEASURE = """
const box = (el) => {
  // what an element draws: its text's extent (a range over its contents), else its own box
  let b = null;
  if (!(el instanceof SVGElement)) {
    const range = document.createRange();
    range.selectNodeContents(el);
    b = range.getBoundingClientRect();
  }
  if (!b || !b.width || !b.height) b = el.getBoundingClientRect();
  return {left: b.left, top: b.top + scrollY, right: b.right, bottom: b.bottom + scrollY,
          width: b.width, height: b.height};
};
const own = (el) => {
  const b = el.getBoundingClientRect();
  return {left: b.left, top: b.top + scrollY, right: b.right, bottom: b.bottom + scrollY};
};
const name = (el, i) => `${el.tagName.toLowerCase()}${el.getAttribute('class') ? '.' + el.getAttribute('class') : ''}`
  + `[${i}] ${(el.textContent || '').trim().slice(0, 40)}`;
const items = (els) => [...els].map((el, i) => ({name: name(el, i), box: box(el)}))
  .filter(x => x.box.width > 0 && x.box.height > 0);
const groups = {};
groups['page headings'] = items(document.querySelectorAll(
  'h1, p.meta, nav, h2, p.headline, ul.clocks li, figcaption, article.finding > h3'));
groups['navigation'] = items(document.querySelectorAll('nav a'));
const table = document.querySelector('table.overview');
groups['ranked table'] = items(table.querySelectorAll('th, td'));
document.querySelectorAll('article.finding').forEach((a, i) => {
  groups[`finding ${a.id} facts`] = items(a.querySelectorAll('dt, dd'));
});
const contained = [];  // [name, inner box, outer box]: text that must stay inside its container
table.querySelectorAll('th, td').forEach((c, i) => contained.push([name(c, i), box(c), own(c)]));
document.querySelectorAll('svg.timeline').forEach((svg, n) => {
  const texts = svg.querySelectorAll('text');
  groups[`chart ${n + 1} labels`] = items(texts);
  texts.forEach((t, i) => contained.push([`chart ${n + 1} ` + name(t, i), box(t), own(svg)]));
});
const root = document.documentElement;
return {
  groups, contained,
  viewport: root.clientWidth,
  pageWidth: root.scrollWidth,
  tableTop: own(table).top,
  firstTable: document.querySelector('table') === table,
  overviewScrolls: table.parentElement.scrollWidth - table.parentElement.clientWidth,
  wideScrolls: [...document.querySelectorAll('div.wide')]
    .filter(d => d.clientWidth && d.scrollWidth > d.clientWidth + 1)
    .map(d => d.querySelector('table').className),
  provenanceOpen: document.querySelector('#provenance details').open,
  provenanceShown: document.querySelector('#provenance table.inputs').checkVisibility(),
};
"""


def _intersect(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["left"] < b["right"] - EPS
        and b["left"] < a["right"] - EPS
        and a["top"] < b["bottom"] - EPS
        and b["top"] < a["bottom"] - EPS
    )


def _inside(inner: dict[str, float], outer: dict[str, float]) -> bool:
    return (
        inner["left"] >= outer["left"] - EPS
        and inner["right"] <= outer["right"] + EPS
        and inner["top"] >= outer["top"] - EPS
        and inner["bottom"] <= outer["bottom"] + EPS
    )


def _load(driver: Any, path: Path, width: int) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": 1000, "deviceScaleFactor": 1, "mobile": False},
    )
    driver.get(path.resolve().as_uri())


def _save(driver: Any, stem: str) -> None:
    """The first screen and the whole page as PNG."""
    folder = _screenshots()
    driver.save_screenshot(str(folder / f"{stem}.png"))
    page = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
    )
    (folder / f"{stem}-full.png").write_bytes(base64.b64decode(page["data"]))


def _layout_problems(layout: dict[str, Any], limit: float) -> list[str]:
    problems = []
    for group, items in layout["groups"].items():
        for i, a in enumerate(items):
            if a["box"]["left"] < -EPS or a["box"]["right"] > limit + EPS:
                problems.append(f"{group}: {a['name']!r} runs off the window {a['box']}")
            for b in items[i + 1 :]:
                if _intersect(a["box"], b["box"]):
                    problems.append(
                        f"{group}: {a['name']!r} {a['box']} overlaps {b['name']!r} {b['box']}"
                    )
    for what, inner, outer in layout["contained"]:
        if not _inside(inner, outer):
            problems.append(f"{what!r} spills out of its box: {inner} not in {outer}")
    return problems


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("report", ["rome_incident", "rock_shared_hosts", "hostile"])
def test_no_label_overlaps_another_and_the_ranked_table_is_on_the_first_screen(
    browser: Any, reports: dict[str, Path], report: str, width: int
) -> None:
    _load(browser, reports[report], width)
    assert browser.execute_script("return innerWidth") == width
    _save(browser, f"{report}-{width}")
    assert (_screenshots() / f"{report}-{width}-full.png").stat().st_size > 10_000
    layout = browser.execute_script(MEASURE)
    assert layout["firstTable"], "the ranked table is not the report's first table"
    assert layout["tableTop"] < FIRST_SCREEN, f"the ranked table starts at {layout['tableTop']} px"
    assert layout["overviewScrolls"] <= 1, "the ranked table is wider than the page"
    assert layout["pageWidth"] <= layout["viewport"], "the page scrolls sideways"
    assert not layout["provenanceOpen"] and not layout["provenanceShown"]
    assert len(layout["groups"]["ranked table"]) >= 8 and len(layout["groups"]) > 4
    assert not _layout_problems(layout, layout["viewport"])
    if width == min(WIDTHS):  # at the narrow width every table fits, the provenance's too
        browser.execute_script("document.querySelectorAll('details').forEach(d => d.open = true)")
        opened = browser.execute_script(MEASURE)
        assert opened["pageWidth"] <= opened["viewport"], "the page scrolls sideways"
        assert opened["wideScrolls"] == [], opened["wideScrolls"]
        assert not _layout_problems(opened, opened["viewport"])
        _save(browser, f"{report}-{width}-opened")


def test_the_check_notices_overlapping_labels(browser: Any) -> None:
    """The harness itself: text forced over its neighbour is reported."""
    page = scratch("overlap") / "overlap.html"
    page.write_text(
        "<!DOCTYPE html><title>overlap</title><h1>x</h1><nav><a href='#a'>one</a>"
        "<a href='#b' style='margin-left:-20px'>two</a></nav><p class='meta'>m</p>"
        "<div class='wide'><table class='overview' style='width:120px;table-layout:fixed'>"
        "<tr><td style='white-space:nowrap'>a very long cell text</td><td>b</td></tr></table>"
        "</div><section id='provenance'><details><summary>s</summary>"
        "<table class='inputs'><tr><td>i</td></tr></table></details></section>"
    )
    _load(browser, page, 900)
    problems = _layout_problems(browser.execute_script(MEASURE), 900)
    assert any(p.startswith("navigation:") and "overlaps" in p for p in problems), problems
    assert any("spills out of its box" in p for p in problems), problems
    assert any(p.startswith("ranked table:") and "overlaps" in p for p in problems), problems
