"""report.html in a real browser: Debian's chromium, headless, driven through its
chromedriver (selenium), on the report of a scripted training run.

Checks that the chart, the diffs and the phase table are rendered, that the page makes
no request (everything is inline), and that it stays readable on a phone-sized screen.
Screenshots are saved in the test's temp folder. Skipped, with the reason, only where
chromium or its driver is not installed (`make test` installs them: see the Makefile).
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.optim.scripted_task import RULE, SOURCE, Script, data

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the dev extra")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A report.html from two scripted training steps (the rule is learned: a diff exists)."""
    from promptc.compiler import compile_source
    from promptc.optim.trainer import Trainer
    from promptc.runtime.engine import make_engine

    Script().register()
    tmp = tmp_path_factory.mktemp("report")
    train, val = data()
    engine = make_engine(cache_dir=tmp / "cache")
    try:
        result = Trainer(compile_source(SOURCE, "trec.pflow"), train, val, engine, steps=2, batch_size=4,
                         run_dir=tmp / "run", seed=1).fit()
    finally:
        engine.close()
    assert result.best_val > result.start_val  # the page has something to show
    return tmp / "run" / "report.html"


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("chromium and chromium-driver are not installed (`make test` installs them with apt-get)")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # the DevTools network events
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _requests(driver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def test_report_renders_chart_diffs_and_phase_table_without_requests(browser, report, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get_log("performance")  # drop anything logged before this page
    browser.get(report.as_uri())
    assert browser.title.startswith("promptc training report")

    chart = browser.find_element(By.CSS_SELECTOR, "svg[aria-label='validation score per step']")
    assert chart.is_displayed() and chart.size["width"] > 200 and chart.size["height"] > 100
    assert browser.find_elements(By.CSS_SELECTOR, "svg polyline")

    added = [s.text for s in browser.find_elements(By.CSS_SELECTOR, "pre span.add") if s.is_displayed()]
    assert any(RULE in t for t in added), added

    tables = browser.find_elements(By.TAG_NAME, "table")
    phase = next(t for t in tables if t.find_elements(By.XPATH, ".//th[normalize-space()='phase']"))
    rows = {r.find_element(By.TAG_NAME, "td").text for r in phase.find_elements(By.XPATH, ".//tr[td]")}
    assert {"forward", "backward", "propose", "validate"} <= rows, rows
    assert phase.is_displayed()

    # nothing but the page itself was fetched: no script, font, image or beacon
    assert _requests(browser) == [report.as_uri()]
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000


def test_report_is_readable_on_a_narrow_screen(browser, report, tmp_path):
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 375, "height": 800, "deviceScaleFactor": 2, "mobile": True}
    )
    try:
        browser.get(report.as_uri())
        width = browser.execute_script("return window.innerWidth")
        assert width == 375
        # no sideways scrolling of the page: wide tables scroll inside their own box
        assert browser.execute_script("return document.documentElement.scrollWidth") <= width
        # text stays legible: the body font is not shrunk to fit
        size = browser.execute_script("return parseFloat(getComputedStyle(document.body).fontSize)")
        assert size >= 14
        chart_width = browser.execute_script(
            "return document.querySelector(\"svg[aria-label='validation score per step']\").getBoundingClientRect().width"
        )
        assert 200 < chart_width <= width
        shot = tmp_path / "report-narrow.png"
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 5_000
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
