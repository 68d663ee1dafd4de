"""The HTML report: self-contained, strict CSP, every log text escaped; checked in real chromium.

The browser tests need Debian's ``chromium`` and ``chromium-driver`` and the ``selenium``
package. Locally they are skipped when one is missing; with ``CI=true`` a missing one fails.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from test_case_fixtures import (
    chromium_paths,
    hostile_case,
    in_ci,
    invoke,
    sample_case,
    scratch,
)

from correlate.case import open_case
from correlate.pipeline import RunOptions
from correlate.reports.html import CSS, csp, render_html

PAYLOADS = (
    "<script>alert(1)</script>",
    '"<img src=x onerror=alert(1)>"',
    '<a href="javascript:alert(1)">x</a>',
)


class Inventory(HTMLParser):
    """Every tag with its attributes, and all text, as a browser's parser sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.style = ""
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style += data
        else:
            self.text.append(data)


def inventory(document: str) -> Inventory:
    parser = Inventory()
    parser.feed(document)
    return parser


def test_the_report_is_one_self_contained_file_under_a_strict_policy() -> None:
    document = render_html(open_case(sample_case()).analyse(RunOptions()), permutations=19)
    found = inventory(document)
    names = {tag for tag, _ in found.tags}
    assert not names & {"script", "link", "iframe", "img", "object", "embed", "base", "form"}
    for tag, attrs in found.tags:
        assert not any(name.startswith("on") for name in attrs), tag
        assert "src" not in attrs and "style" not in attrs, tag
        if "href" in attrs:
            assert str(attrs["href"]).startswith("#"), attrs
    policy = next(
        a["content"] for t, a in found.tags if a.get("http-equiv") == "Content-Security-Policy"
    )
    digest = base64.b64encode(hashlib.sha256(found.style.encode()).digest()).decode()
    assert found.style == CSS and policy == csp()
    assert policy.startswith("default-src 'none'; ") and f"style-src 'sha256-{digest}'" in policy
    text = "".join(found.text)
    assert "ssh -fNR 2222:localhost:22" in text and "nohup ./xmrig" in text
    assert len(re.findall(r'<figure id="timeline-\d+"', document)) == 3


def test_hostile_log_text_is_escaped_and_inert() -> None:
    document = render_html(open_case(hostile_case()).analyse(RunOptions()), permutations=0)
    for raw in ("\x1b", "\u202e", "\r", "\b"):
        assert raw not in document
    found = inventory(document)
    assert not any(tag == "script" for tag, _ in found.tags)
    assert not any(tag in ("img", "svg") and "onload" in attrs for tag, attrs in found.tags)
    text = "".join(found.text)
    for payload in PAYLOADS:
        assert payload in text, payload  # shown as text, exactly
    assert "\\x1b[31mRED" in text and "\\u202egnp.exe" in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in document


# --- in a real browser ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless chromium driven by selenium, offline; alerts left open so a test can see them."""
    chromium, driver_path = chromium_paths()
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        selenium_missing = "selenium is not installed (the test extra installs it)"
        if in_ci():
            pytest.fail(selenium_missing)
        pytest.skip(selenium_missing)
    if not chromium or not driver_path:
        missing = "chromium and chromedriver are needed (apt-get install chromium chromium-driver)"
        if in_ci():
            pytest.fail(missing)
        pytest.skip(missing)
    options = Options()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={scratch('chromium-profile')}",
        "--window-size=1300,1000",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    options.set_capability("unhandledPromptBehavior", "ignore")
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _open(driver: Any, path: Path) -> tuple[str | None, list[dict[str, Any]]]:
    """Load a file: the text of any alert it raised, and what the browser logged (errors, CSP)."""
    driver.get_log("browser")
    driver.get(path.resolve().as_uri())
    alert = _alert_text(driver)
    logged = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    return alert, logged


def _alert_text(driver: Any) -> str | None:
    from selenium.common.exceptions import NoAlertPresentException

    try:
        alert = driver.switch_to.alert
    except NoAlertPresentException:
        return None
    text = str(alert.text)
    alert.accept()
    return text


def test_the_harness_notices_a_script_that_runs(browser: Any) -> None:
    page = scratch("control") / "control.html"
    page.write_text("<!DOCTYPE html><title>control</title><script>alert('ran')</script>")
    assert _open(browser, page)[0] == "ran"


def test_the_sample_report_shows_the_tunnel_and_the_miner_on_their_timelines(browser: Any) -> None:
    out = scratch("report") / "report.html"
    result = invoke("report", str(sample_case()), "-o", str(out), "--permutations", "19")
    assert result.exit_code == 0, result.output
    assert _open(browser, out) == (None, [])
    styled = browser.execute_script(
        "return getComputedStyle(document.querySelector('th')).backgroundColor"
    )
    assert styled == "rgb(244, 246, 249)", "the stylesheet was refused"
    figures = browser.execute_script(
        """
        return [...document.querySelectorAll('figure.chart')].map(f => ({
          caption: f.querySelector('figcaption').textContent,
          violations: f.querySelectorAll('path[data-kind=violation]').length,
          calls: f.querySelectorAll('rect[data-kind=call]').length,
          links: f.querySelectorAll('line.link').length,
          blamed: [...f.querySelectorAll('rect.call.blamed > title')].map(t => t.textContent),
          width: f.querySelector('svg').getBoundingClientRect().width,
        }));
        """
    )
    tunnel = next(f for f in figures if "sbx-03" in f["caption"])
    assert "reverse_tunnel" in tunnel["caption"] and tunnel["violations"] == 3
    assert tunnel["links"] == 3 and any("ssh -fNR 2222" in t for t in tunnel["blamed"])
    miner = next(f for f in figures if "sbx-07" in f["caption"])
    assert "mining" in miner["caption"] and miner["violations"] == 40
    assert any("stratum+tcp://pool.supportxmr.com" in t for t in miner["blamed"])
    assert all(f["calls"] > 10 and f["width"] > 500 for f in figures)
    rows = browser.execute_script(
        """
        return [...document.querySelectorAll('table.overview tbody tr')].map(r => ({
          target: r.querySelector('a').getAttribute('href'),
          found: !!document.getElementById(r.querySelector('a').getAttribute('href').slice(1)),
        }));
        """
    )
    assert len(rows) == 13 and all(r["found"] for r in rows)
    assert [r["target"] for r in rows][:2] == ["#finding-1", "#finding-2"]  # tunnel, miner
    assert (
        browser.execute_script("return document.querySelectorAll('article.finding').length") == 13
    )


def test_a_crafted_case_runs_no_script_in_the_report(browser: Any) -> None:
    out = scratch("hostile-report") / "report.html"
    result = invoke("report", str(hostile_case()), "-o", str(out), "--permutations", "0")
    assert result.exit_code == 0, result.output
    assert _open(browser, out) == (None, [])
    counts = browser.execute_script(
        """
        return {
          scripts: document.scripts.length,
          handlers: document.querySelectorAll('[onerror],[onload],[onclick]').length,
          images: document.images.length,
          foreignLinks: [...document.querySelectorAll('[href]')]
            .filter(a => !a.getAttribute('href').startsWith('#')).length,
          text: document.body.innerText,
        };
        """
    )
    assert (counts["scripts"], counts["handlers"], counts["images"], counts["foreignLinks"]) == (
        0,
        0,
        0,
        0,
    )
    for payload in PAYLOADS:
        assert payload in counts["text"], payload
