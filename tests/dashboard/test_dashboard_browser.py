"""The dashboard in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``) driven by Selenium, against real PostgreSQL, Redis, Dramatiq workers and
the simulator. Skipped, saying why, only where the browser cannot be had (.ci/run installs it).

With ``DASHBOARD_SCREENSHOTS=<dir>`` the retry test saves the overview and a job page there
(the README's pictures: ``DASHBOARD_SCREENSHOTS=docs pytest tests/dashboard -k retry``).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dashboard.conftest import PASSWORDS, RunningDashboard
from tests.pipeline.conftest import Pipeline, wait_for
from worker.client import Client

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

try:
    from selenium import webdriver
    from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    SELENIUM = True
except ImportError:  # pragma: no cover
    SELENIUM = False

pytestmark = pytest.mark.skipif(
    not (SELENIUM and CHROMIUM and CHROMEDRIVER),
    reason="needs selenium and Debian's chromium + chromium-driver (apt-get install chromium "
    "chromium-driver; .ci/run does it)",
)


@pytest.fixture
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def log_in(driver: Any, base: str, name: str) -> None:
    driver.get(base + "/")
    assert "/login" in driver.current_url
    driver.find_element(By.NAME, "name").send_keys(name)
    driver.find_element(By.NAME, "password").send_keys(PASSWORDS[name])
    driver.find_element(By.CSS_SELECTOR, "form.login button").click()
    wait_for(lambda: "/login" not in driver.current_url, 30, "the overview after login")
    assert driver.find_element(By.TAG_NAME, "h1").text.startswith("Overview")


def text_of(driver: Any, css: str) -> str:
    """The text of the elements at ``css``; "" while the live page swaps them out."""
    try:
        return "\n".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, css))
    except StaleElementReferenceException:
        return ""


def accept_confirm(driver: Any) -> None:
    def alert() -> Any:
        try:
            return driver.switch_to.alert
        except NoAlertPresentException:
            return None

    wait_for(alert, 30, "the confirmation dialog").accept()


def post_from_page(driver: Any, path: str, with_token: bool) -> int:
    """A POST made by the page's own script (as a forged form or a console would make it)."""
    return int(
        driver.execute_async_script(
            """
            const [path, withToken, done] = arguments;
            const body = new URLSearchParams();
            if (withToken) body.set('csrf', document.querySelector('input[name=csrf]').value);
            fetch(path, {method: 'POST', body, redirect: 'manual', credentials: 'same-origin'})
              .then(r => done(r.status)).catch(() => done(-1));
            """,
            path,
            with_token,
        )
    )


def _product(title: str) -> dict[str, str]:
    return {"title": title, "image_url": "https://example.test/p.jpg"}


def test_log_in_filter_and_open_a_job(
    dashboard: RunningDashboard, client: Client, browser: Any
) -> None:
    client.grant(41, 10)
    client.grant(42, 10)
    mine = client.submit_video(user_id=41, product=_product("Blue vase"), count=3).job_ids
    other = client.submit_video(user_id=42, product=_product("Lamp"), count=3).job_ids
    client.cancel(mine[1])
    client.cancel(other[0])

    log_in(browser, dashboard.url, "vic")
    browser.find_element(By.LINK_TEXT, "Jobs").click()
    Select(browser.find_element(By.NAME, "status")).select_by_visible_text("cancelled")
    browser.find_element(By.NAME, "user").send_keys("41")
    browser.find_element(By.CSS_SELECTOR, "form.filters button").click()
    wait_for(lambda: "status=cancelled" in browser.current_url, 30, "the filtered list")
    assert "user=41" in browser.current_url  # the whole filter is in the link
    ids = [
        a.text for a in browser.find_elements(By.CSS_SELECTOR, "table.jobs tbody td:first-child a")
    ]
    assert ids == [str(mine[1])]

    browser.find_element(By.LINK_TEXT, str(mine[1])).click()
    wait_for(lambda: f"/jobs/{mine[1]}" in browser.current_url, 30, "the job page")
    page = browser.find_element(By.TAG_NAME, "main").text
    assert f"Job {mine[1]}" in page and "cancelled" in page
    assert "refund" in page  # its hold and the refund, from the ledger
    timeline = [
        td.text for td in browser.find_elements(By.CSS_SELECTOR, "table.timeline td:nth-child(2)")
    ]
    assert timeline[0] == "submitted" and timeline[-1] == "cancelled"


def test_retry_a_failed_job_and_see_it_run(
    pipeline: Pipeline, live_dashboard: RunningDashboard, browser: Any
) -> None:
    pipeline.sim.configure({"openai": {"rate_5xx": 1.0}})
    pipeline.start_worker()
    (failed,) = pipeline.submit(51, credits=3, title="Red ceramic mug")
    (done,) = pipeline.wait([failed], timeout=60)
    assert (done["status"], done["error_class"]) == ("failed", "TEMPORARY")
    pipeline.sim.configure({"openai": {"rate_5xx": 0.0}})
    (ok,) = pipeline.submit(51, title="Green teapot")
    okd = pipeline.wait([ok], timeout=60)[0]
    assert okd["status"] == "succeeded", (okd["error"], okd["events"])

    log_in(browser, live_dashboard.url, "ada")
    browser.get(f"{live_dashboard.url}/jobs/{failed}")
    retry = browser.find_element(By.XPATH, "//button[starts-with(normalize-space(.), 'Retry')]")
    retry.click()
    accept_confirm(browser)
    flash = wait_for(lambda: text_of(browser, ".flash"), 30, "the flash")
    assert f"job {failed} retried as job" in flash
    new = int(flash.rsplit(" ", 1)[1])
    timeline = wait_for(lambda: text_of(browser, "table.timeline"), 30, "the timeline")
    assert "retried" in timeline and "by ada" in timeline

    def follow(text: str) -> bool:
        try:
            browser.find_element(By.LINK_TEXT, text).click()
            return True
        except StaleElementReferenceException:  # the live page was swapped meanwhile
            return False

    wait_for(lambda: follow(f"job {new}"), 30, "the link to the new job")
    wait_for(lambda: f"/jobs/{new}" in browser.current_url, 30, "the new job's page")
    # No reload from here on: the page follows the job by itself (server-sent events).
    wait_for(
        lambda: "succeeded" in text_of(browser, "h1 .status"),
        60,
        "the retried job to succeed on the open page",
    )
    wait_for(lambda: "capture" in text_of(browser, "main"), 30, "the capture on the page")
    assert ".mp4" in text_of(browser, "main")  # the stored file's link
    assert pipeline.client.job(new)["status"] == "succeeded"

    shots = os.environ.get("DASHBOARD_SCREENSHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(Path(shots) / "dashboard-job.png"))
        more = pipeline.submit(52, credits=6, count=5, title="Oak chair")
        more += pipeline.submit(53, credits=1, title="FORBIDDEN poster")
        pipeline.wait(more, timeout=90)
        browser.get(live_dashboard.url + "/")
        time.sleep(0.5)
        browser.save_screenshot(str(Path(shots) / "dashboard-overview.png"))


def test_a_viewer_finds_no_action_and_a_forged_post_is_refused(
    dashboard: RunningDashboard, client: Client, browser: Any
) -> None:
    client.grant(61, 2)
    (job,) = client.submit_video(user_id=61, product=_product("Chair")).job_ids
    client.cancel(job)

    log_in(browser, dashboard.url, "vic")
    browser.get(f"{dashboard.url}/jobs/{job}")
    assert "cancelled" in browser.find_element(By.TAG_NAME, "h1").text
    assert not browser.find_elements(By.CSS_SELECTOR, ".actions button, form.action")
    browser.get(f"{dashboard.url}/keys")
    assert not browser.find_elements(By.CSS_SELECTOR, "form.action")
    browser.get(f"{dashboard.url}/jobs?status=cancelled")
    assert not browser.find_elements(By.PARTIAL_LINK_TEXT, "Retry")
    # The viewer's own session and CSRF token, posting what an admin's button would.
    assert post_from_page(browser, f"/jobs/{job}/retry", with_token=True) == 403
    assert not client.db.fetchone("SELECT 1 FROM jobs WHERE cloned_from = %s", (job,))


def test_a_post_without_csrf_token_is_refused(
    dashboard: RunningDashboard, client: Client, browser: Any
) -> None:
    client.grant(71, 2)
    (job,) = client.submit_video(user_id=71, product=_product("Desk")).job_ids

    log_in(browser, dashboard.url, "ada")
    browser.get(f"{dashboard.url}/jobs/{job}")
    assert browser.find_elements(By.XPATH, "//button[contains(., 'Cancel')]")  # an admin's
    assert post_from_page(browser, f"/jobs/{job}/cancel", with_token=False) == 403
    assert client.job(job)["status"] == "queued"
    assert post_from_page(browser, f"/jobs/{job}/cancel", with_token=True) == 0  # opaque redirect
    assert client.job(job)["status"] == "cancelled"
