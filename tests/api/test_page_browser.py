"""The built-in web page in a real headless Chromium, against the real app over real SQLite.

uvicorn serves ``create_app(settings)`` on a free loopback port; the lifespan opens the
SQLite state and telemetry files that the fixtures seeded. Selenium drives Debian's chromium
through Debian's chromedriver, named explicitly so Selenium Manager never runs (it would try
to download a browser). Needs ``apt-get install chromium chromium-driver``: missing, the
tests skip, or fail when ``CI`` is set.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from composition.api import create_app
from sealscope.accounts import Site as AccountSite
from sealscope.accounts import SqliteAccountStore
from sealscope.accounts.passwords import hash_password
from sealscope.alerts import Alert, SqliteAlertStore
from sealscope.config import Settings
from sealscope.registry import Device, SqliteDeviceRegistry
from sealscope.storage import Point, Series
from sealscope.storage.sqlite import SqliteTelemetryStore

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_S = 5.0
USERNAME, PASSWORD = "tech.north", "a long enough password"
PW_HASH = hash_password(PASSWORD)

CHARTED = "ACME-DN50-000002"  # sorts second, so it is not the page's default device
DEVICES = (
    Device("ACME-DN50-000001", "valve", "ACME", "BV-50", site="north", leakage_class="A"),
    Device(CHARTED, "valve", "ACME", "BV-50", site="north", leakage_class="B"),
    Device("PUMPCO-P80-000003", "pump", "PumpCo", "P-80", site="south"),
)
BUCKET_S = 300  # the page's default range: last 24 h as 5 min means
P_IN_POINTS = 50  # one per bucket, so each is its own mean
P_OUT_POINTS = 25  # every other bucket


def _p_in_kpa(k: int) -> float:
    # rises with time (k counts buckets back from now), so the line climbs to the right
    return 400.0 + (P_IN_POINTS - k) * 2.5


def _require_browser() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if not missing:
        return
    reason = f"{', '.join(missing)} missing (apt-get install chromium chromium-driver)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI is set, so the browser tests are required")
    pytest.skip(reason)


async def _seed_telemetry(path: Path, now_s: float) -> None:
    series = Series("valve", DEVICES[1].tags)
    points = []
    for k in range(1, P_IN_POINTS + 1):
        fields = {"p_in_kpa": _p_in_kpa(k)}
        if k % 2 == 0:
            fields["p_out_kpa"] = 100.0 + k
        points.append(Point(series, int((now_s - k * BUCKET_S) * 1e9), fields))
    store = SqliteTelemetryStore(path)
    try:
        await store.write(points)
    finally:
        await store.close()


@dataclass(frozen=True)
class Site:
    url: str
    watched: Alert  # stays open: the listing test reads it
    to_acknowledge: Alert


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory,
    serve: Callable[[FastAPI], AbstractContextManager[str]],
) -> Iterator[Site]:
    _require_browser()
    settings = Settings(data_dir=tmp_path_factory.mktemp("page") / "data", store="sqlite")
    now_s = time.time()

    registry = SqliteDeviceRegistry(settings.state_db)
    registry.upsert_many(DEVICES)
    registry.close()
    alerts = SqliteAlertStore(settings.state_db)
    watched = alerts.raise_alert(
        device_id=CHARTED,
        cause="seat_leak",
        category="maintenance_required",
        severity=4,
        summary="Seat leak rising: 3.1x the learned baseline since this morning.",
        evidence={"ratio": 3.1},
        t=now_s - 3600,
    )
    to_acknowledge = alerts.raise_alert(
        device_id="PUMPCO-P80-000003",
        cause="vibration",
        category="out_of_specification",
        severity=3,
        summary="Bearing vibration above 7.1 mm/s for two hours.",
        evidence={"vib_mms": 7.4},
        t=now_s - 1800,
    )
    alerts.close()
    asyncio.run(_seed_telemetry(settings.telemetry_db, now_s))
    # a technician of the operator that owns both seeded sites
    accounts = SqliteAccountStore(settings.state_db)
    operator = accounts.create_org(name="Water Works", kind="operator")
    for name in ("north", "south"):
        accounts.put_site(AccountSite(name, operator.id, "R1"))
    accounts.create_user(org_id=operator.id, username=USERNAME, password_hash=PW_HASH)
    accounts.close()

    with serve(create_app(settings)) as url:
        yield Site(url, watched, to_acknowledge)


@pytest.fixture(scope="module")
def driver(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # an explicit driver path is what keeps Selenium Manager (and its downloads) out
    browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        _sign_in(browser, site)
        yield browser
    finally:
        browser.quit()


@pytest.fixture
def page(site: Site, driver: WebDriver) -> WebDriver:
    """The page freshly loaded, with its first refresh (lists and chart) finished."""
    driver.get_log("browser")  # forget what earlier tests logged
    driver.get(site.url + "/")
    _wait(driver, "the first refresh", lambda d: d.find_element(By.ID, "chart-note").text)
    return driver


def _sign_in(driver: WebDriver, site: Site) -> None:
    """Through the page's own form, once per module: the session cookie then rides along."""
    driver.get(site.url + "/")
    form = _wait(driver, "the sign-in form", lambda d: d.find_element(By.ID, "sign-in"))
    _wait(driver, "the form to show", lambda d: form.is_displayed())
    assert not driver.find_element(By.ID, "main").is_displayed()
    driver.find_element(By.ID, "username").send_keys(USERNAME)
    driver.find_element(By.ID, "password").send_keys("wrong password!")
    form.submit()
    _wait(driver, "the refusal", lambda d: d.find_element(By.ID, "sign-in-note").text)
    driver.find_element(By.ID, "password").clear()
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    form.submit()
    _wait(driver, "the signed-in page", lambda d: d.find_element(By.ID, "main").is_displayed())
    assert USERNAME in driver.find_element(By.ID, "who").text
    cookie = driver.get_cookie("sealscope_session")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert driver.execute_script("return document.cookie") == ""  # no script reads it


def _wait(driver: WebDriver, what: str, condition: Callable[[WebDriver], Any]) -> Any:
    return WebDriverWait(driver, WAIT_S).until(condition, f"timed out waiting for {what}")


# The page replaces rows and chart whole on every answer, so an element found a moment ago
# can be gone: read what a check needs in one script instead of element by element.


def _texts(driver: WebDriver, css: str) -> list[str]:
    texts: list[str] = driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map((e) => e.textContent);", css
    )
    return texts


def _alert_row(driver: WebDriver, alert: Alert) -> list[str]:
    cells: list[str] = driver.execute_script(
        """const row = [...document.querySelectorAll("#alerts tr")]
             .find((tr) => tr.cells[1].textContent === arguments[0]);
           return row ? [...row.cells].map((td) => td.textContent) : [];""",
        alert.device_id,
    )
    return cells


def _chart_vertices(driver: WebDriver) -> list[tuple[float, float]]:
    d: str = driver.execute_script(
        """const path = document.querySelector("#chart path.series");
           return path ? path.getAttribute("d") : "";"""
    )
    return [(float(x), float(y)) for x, y in re.findall(r"[ML](-?[\d.]+),(-?[\d.]+)", d)]


def _assert_nothing_scrolls_sideways(driver: WebDriver) -> None:
    # at the test's 1400 px neither the page nor a table inside its card needs a scrollbar
    overflowing = driver.execute_script(
        """return [document.documentElement, ...document.querySelectorAll(".scroll")]
             .filter((e) => e.scrollWidth > e.clientWidth).map((e) => e.id || e.className);"""
    )
    assert overflowing == []


def _assert_no_browser_errors(driver: WebDriver) -> None:
    # SEVERE covers uncaught exceptions, console.error and failed requests (e.g. a 404)
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []


def test_page_lists_seeded_devices_and_open_alerts(page: WebDriver, site: Site) -> None:
    _wait(page, "the device rows", lambda d: len(_texts(d, "#devices tr")) == len(DEVICES))
    ids = _texts(page, "#devices tr td:first-child")
    assert ids == sorted(d.device_id for d in DEVICES)
    assert page.find_element(By.ID, "devices-count").text == f"({len(DEVICES)})"
    assert _texts(page, "#device option") == ids

    _wait(page, "the alert rows", lambda d: _alert_row(d, site.watched))
    severity, device_id, cause, summary, status, actions = _alert_row(page, site.watched)
    assert (severity, device_id, cause, status) == ("4", CHARTED, "seat_leak", "open")
    assert summary == site.watched.summary
    # the cell may ellipsise a long summary on screen; its title keeps the whole sentence
    cell = page.find_element(By.XPATH, f"//tbody[@id='alerts']/tr[td[2]='{CHARTED}']/td[4]")
    assert cell.get_attribute("title") == site.watched.summary
    assert actions.split() == ["Acknowledge", "Resolve"]
    assert site.to_acknowledge.device_id in _texts(page, "#alerts tr td:nth-child(2)")
    _assert_nothing_scrolls_sideways(page)
    _assert_no_browser_errors(page)


def test_page_acknowledge_changes_alert_status(page: WebDriver, site: Site) -> None:
    alert = site.to_acknowledge
    _wait(page, "the alert row", lambda d: _alert_row(d, alert))
    assert _alert_row(page, alert)[4] == "open"

    row = f"//tbody[@id='alerts']/tr[td[2]='{alert.device_id}']"
    page.find_element(By.XPATH, f"{row}//button[text()='Acknowledge']").click()

    _wait(page, "the acknowledged status", lambda d: _alert_row(d, alert)[4:5] == ["acknowledged"])
    # an acknowledged alert can only be resolved now
    assert _alert_row(page, alert)[5].split() == ["Resolve"]
    # the page's own session, read from outside the page
    session = {"sealscope_session": page.get_cookie("sealscope_session")["value"]}  # type: ignore[index]
    with httpx.Client(base_url=site.url, cookies=session, timeout=WAIT_S) as api:
        assert api.get(f"/api/v1/alerts/{alert.id}").json()["status"] == "acknowledged"
        # the other alert was left alone
        assert api.get(f"/api/v1/alerts/{site.watched.id}").json()["status"] == "open"
    _assert_nothing_scrolls_sideways(page)  # "acknowledged" is the widest status
    _assert_no_browser_errors(page)


def test_page_chart_draws_one_vertex_per_seeded_point(
    page: WebDriver, site: Site, tmp_path: Path
) -> None:
    # the default device has no telemetry: the chart says so rather than staying blank
    assert page.find_element(By.ID, "device").get_attribute("value") == DEVICES[0].device_id
    assert page.find_element(By.ID, "chart-note").text == "0 points"
    assert "no data in this range" in _texts(page, "#chart text")

    page.find_element(By.XPATH, f"//tbody[@id='devices']/tr[td[1]='{CHARTED}']").click()
    _wait(page, "the p_in_kpa line", lambda d: len(_chart_vertices(d)) == P_IN_POINTS)
    assert page.find_element(By.ID, "chart-note").text == f"{P_IN_POINTS} points"
    assert _texts(page, "#devices tr.selected td:first-child") == [CHARTED]
    assert page.find_element(By.ID, "device").get_attribute("value") == CHARTED
    vertices = _chart_vertices(page)
    xs, ys = [x for x, _ in vertices], [y for _, y in vertices]
    assert xs == sorted(xs) and len(set(xs)) == P_IN_POINTS
    # values rise with time and SVG y grows downwards
    assert ys == sorted(ys, reverse=True) and len(set(ys)) == P_IN_POINTS
    labels = _texts(page, "#chart text")
    lo, hi = _p_in_kpa(P_IN_POINTS), _p_in_kpa(1)
    pad = (hi - lo) * 0.05
    assert f"{hi + pad:.4g}" in labels and f"{lo - pad:.4g}" in labels
    page.save_screenshot(str(tmp_path / "page.png"))

    Select(page.find_element(By.ID, "field")).select_by_value("p_out_kpa")
    _wait(page, "the p_out_kpa line", lambda d: len(_chart_vertices(d)) == P_OUT_POINTS)
    assert page.find_element(By.ID, "chart-note").text == f"{P_OUT_POINTS} points"
    _assert_no_browser_errors(page)
