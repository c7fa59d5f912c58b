"""The status page in a real headless Chromium (Debian's ``chromium`` + ``chromium-driver``).

Never skipped: without the browser these tests fail and say how to install it
(``.ci/run`` installs it when it is missing).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from _monitor_support import UvicornThread, http_config
from healthkit import HealthKit
from healthkit.testing import OipServer

CHROMIUM = "/usr/bin/chromium"
INSTALL = "apt-get install -y chromium chromium-driver (as root; .ci/run does it)"


def _driver_path() -> str:
    path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not os.path.exists(CHROMIUM) or not os.path.exists(path):
        pytest.fail(f"the browser tests need {CHROMIUM} and chromedriver: {INSTALL}", pytrace=False)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("the browser tests need selenium: pip install -e '.[test]'", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
    ):
        options.add_argument(arg)
    # An explicit driver path: selenium never tries to download one.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=_driver_path()))
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(predicate: Callable[[], Any], *, within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within}s")
        time.sleep(0.02)


class PageServer(UvicornThread):
    """UvicornThread that ends the page's event streams before it stops.

    uvicorn's graceful shutdown waits for open responses, and an event stream a
    browser keeps (its back/forward cache may hold one) never ends by itself;
    ``healthkit serve`` does the same in its shutdown.
    """

    loop: asyncio.AbstractEventLoop | None = None

    def _run(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            await self.server.serve()

        asyncio.run(main())

    def __exit__(self, *exc_info: object) -> None:
        page = self.server.config.app.state.status_page
        if self.loop is not None:
            self.loop.call_soon_threadsafe(page.close_streams)
        super().__exit__(*exc_info)


def rows(driver: Any) -> dict[str, str]:
    """The rows drawn in the list: name -> status."""
    result: dict[str, str] = driver.execute_script(
        "var out = {}; document.querySelectorAll('#rows .row').forEach(function (r) {"
        " out[r.dataset.name] = r.dataset.status; }); return out;"
    )
    return result


MODELS = {"alpha": "ready", "beta": "ready", "gamma": "ready", "delta-7": "not_ready"}


def test_page_lists_models_goes_live_filters_searches_and_shows_the_timeline(
    browser: Any,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    period = 0.2
    with OipServer(MODELS) as predictor:
        config = http_config(
            predictor.url, list(MODELS), period=period, jitter=0.0, timeout=0.5, failure_threshold=1
        )
        from healthkit.asgi import create_app

        with PageServer(create_app(HealthKit.from_config(config))) as server:
            monitor = server.server.config.app.state.monitor
            wait_for(
                lambda: all(monitor.last_result(m) for m in MODELS), within=5, what="first probes"
            )
            browser.get(server.url + "/status")
            wait_for(
                lambda: browser.execute_script("return document.body.dataset.loaded"),
                within=5,
                what="the model list loaded",
            )
            assert rows(browser) == {
                "alpha": "healthy",
                "beta": "healthy",
                "gamma": "healthy",
                "delta-7": "unhealthy",
            }
            wait_for(
                lambda: browser.find_element(By.ID, "live").text == "live",
                within=5,
                what="the event stream open",
            )
            assert "Details (reasons, endpoints) are hidden" in browser.page_source
            # A marker that a reload would lose: the row must change in place.
            browser.execute_script("window.notReloaded = true;")
            predictor.set_state("alpha", "not_ready")
            flipped = wait_for(
                lambda: monitor.status("alpha").value == "unhealthy",
                within=period + 2,
                what="the monitor sees alpha down",
            )
            assert flipped
            start = time.monotonic()
            wait_for(
                lambda: rows(browser).get("alpha") == "unhealthy",
                within=2.0,
                what="alpha's row turns unhealthy",
            )
            print(f"row changed {time.monotonic() - start:.3f}s after the transition")
            assert browser.execute_script("return window.notReloaded") is True
            assert browser.find_element(By.CSS_SELECTOR, '[data-count="unhealthy"]').text == "2"

            Select(browser.find_element(By.ID, "filter")).select_by_value("unhealthy")
            wait_for(lambda: set(rows(browser)) == {"alpha", "delta-7"}, within=2, what="filter")
            Select(browser.find_element(By.ID, "filter")).select_by_value("")
            search = browser.find_element(By.ID, "search")
            search.send_keys("ALP")
            wait_for(lambda: set(rows(browser)) == {"alpha"}, within=2, what="search")
            search.clear()
            search.send_keys("nothing-like-this")
            wait_for(lambda: not rows(browser), within=2, what="search without a match")
            assert browser.find_element(By.ID, "empty").is_displayed()
            search.clear()
            search.send_keys("a")
            wait_for(lambda: "alpha" in rows(browser), within=2, what="search again")

            browser.find_element(By.LINK_TEXT, "alpha").click()
            wait_for(
                lambda: browser.execute_script("return document.body.dataset.model") == "alpha",
                within=5,
                what="the model view",
            )
            timeline = [
                [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
                for row in browser.find_elements(By.CSS_SELECTOR, "#timeline tbody tr")
            ]
            # Newest first: healthy -> unhealthy, then the first probe's unknown -> healthy.
            assert [(r[1].split()[-1], r[2].split()[-1]) for r in timeline] == [
                ("healthy", "unhealthy"),
                ("unknown", "healthy"),
            ], timeline
            # Live on the model view too: recovery appears without a reload.
            predictor.set_state("alpha", "ready")
            wait_for(
                lambda: len(browser.find_elements(By.CSS_SELECTOR, "#timeline tbody tr")) == 3,
                within=period + 3,
                what="the recovery in the timeline",
            )
            assert "healthy" in browser.find_element(By.ID, "model-status").text


def test_thousands_of_models_draw_only_the_rows_in_view(browser: Any) -> None:
    from healthkit.asgi import create_app

    # The benchmark's status section measures 10,000; fewer keep this test short.
    names = [f"model-{i:05d}" for i in range(3_000)]
    config = {
        "defaults": {"health_check": {"strategy": "noop", "period": 60.0, "jitter": 0.0}},
        "models": {name: {} for name in names},
    }
    with PageServer(create_app(HealthKit.from_config(config))) as server:
        browser.get(server.url + "/status")
        wait_for(
            lambda: browser.execute_script("return document.body.dataset.loaded"),
            within=10,
            what="3,000 models loaded",
        )
        drawn = rows(browser)
        assert 10 < len(drawn) < 100, len(drawn)
        assert browser.execute_script("return document.getElementById('total').textContent") == (
            "3000"
        )
        browser.execute_script(
            "var v = document.getElementById('viewport'); v.scrollTop = v.scrollHeight;"
        )
        wait_for(
            lambda: "model-02999" in rows(browser), within=2, what="the last row after a scroll"
        )
        assert len(rows(browser)) < 100
