"""The monitoring point's and the manufacturer's pages in a real headless Chromium, against
the real app (uvicorn) over real SQLite state seeded with a fleet, its alert history and
the fleet risk table a detection process would have saved.

Monitoring point: sign in, the risk table, one batch's devices and ageing chart, Chinese,
the report printed (print media) and downloaded as CSV and PDF. Manufacturer: sign in, its
fleet by model and batch, the open alerts on its products, an upload's per-row results.
Screenshots (quality-*.png, mfr-*.png) go to $SEALSCOPE_SCREENSHOTS (docs/screenshots for the
README).
"""

from __future__ import annotations

import base64
import csv
import io
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from analytics.fleet_risk import FleetRisk
from composition.api import create_app
from composition.quality import MONTH_S
from sealscope.accounts import Authenticator, Remit, Site, SqliteAccountStore
from sealscope.accounts.passwords import hash_password
from sealscope.alerts import SqliteAlertStore
from sealscope.config import Settings
from sealscope.registry import Device, SqliteDeviceRegistry
from sealscope.risk import JsonFileRiskStore
from tests.api.pdf_text import pdf_text

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# a plain run leaves the checkout clean; SEALSCOPE_SCREENSHOTS=docs/screenshots renews the
# README's pictures
SHOTS = Path(
    os.environ.get("SEALSCOPE_SCREENSHOTS", "")
    or Path(tempfile.gettempdir()) / "sealscope-screenshots"
).resolve()
WAIT_S = 10.0
PASSWORD = "a long enough password"
MP_USER, MFR_USER = "mp.wenzhou", "qa.acme"

NOW = time.time()
T0 = NOW - 420 * 86_400.0  # the fleet went into service ~14 months ago
BAD_BATCH = "ACME-2403"


def _fleet() -> list[Device]:
    out = []
    for b, (batch, region) in enumerate(
        [(BAD_BATCH, "Yongjia"), ("ACME-2405", "Yongjia"), ("ACME-2411", "Ouhai")]
    ):
        for i in range(12):
            site = "Oubei-WTP" if i % 2 else "Sanjiang-PS"
            out.append(
                Device(
                    f"ACME-BV50-{b}{i:04d}", "valve", "ACME", "BV-50", batch, site, region, dn=50
                )
            )
    for i in range(12):
        out.append(
            Device(
                f"ACME-BV80-9{i:04d}",
                "valve",
                "ACME",
                "BV-80",
                "ACME-2407",
                "Sanjiang-PS",
                "Ouhai",
                dn=80,
            )
        )
    for i in range(12):
        out.append(
            Device(f"OUHAI-GV-{i:05d}", "valve", "Ouhai", "GV-100", "OH-01", "Oubei-WTP", "Ouhai")
        )
    return out


FLEET = _fleet()
# device index -> months in service at its first seal alert: 8 of the bad batch, few elsewhere
DEGRADED = {**{i: 2.0 + i * 0.9 for i in range(8)}, 14: 9.5, 30: 11.0, 50: 7.0}


@dataclass(frozen=True)
class Site_:
    url: str
    downloads: Path


def _require_browser() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if not missing:
        return
    reason = f"{', '.join(missing)} missing (apt-get install chromium chromium-driver)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI is set, so the browser tests are required")
    pytest.skip(reason)


def _seed(settings: Settings) -> str:
    registry = SqliteDeviceRegistry(settings.state_db, clock=lambda: T0)
    registry.upsert_many(FLEET)
    registry.close()
    alerts = SqliteAlertStore(settings.state_db)
    risk = FleetRisk(min_events=3)
    risk.add_devices(FLEET)
    ids = [d.device_id for d in FLEET]
    risk.observe_many(ids, np.full(len(ids), T0), np.full(len(ids), NOW))
    for i, months in DEGRADED.items():
        d = FLEET[i]
        t = T0 + months * MONTH_S
        alerts.raise_alert(
            device_id=d.device_id,
            cause="seat_leak",
            category="maintenance_required",
            severity=3,
            summary=f"Seat leak {2 + i % 3}.{i % 10}x the commissioning baseline; inspect it.",
            evidence={"ratio": 2.5},
            t=t,
        )
        risk.record_event(d.device_id, t)
    alerts.raise_alert(
        device_id=FLEET[3].device_id,
        cause="actuation_fault",
        category="failure",
        severity=5,
        summary="Actuator did not reach the closed position on two strokes.",
        evidence={},
        t=NOW - 3 * 86_400.0,
    )
    alerts.close()
    settings.detector_state_dir.mkdir(parents=True, exist_ok=True)
    JsonFileRiskStore(settings.risk_table_path).save(risk.table())

    store = SqliteAccountStore(settings.state_db)
    auth = Authenticator(store)
    mp = store.create_org(name="Wenzhou monitoring point", kind="monitoring_point")
    store.set_remit(mp.id, Remit(frozenset({"Yongjia", "Ouhai"}), frozenset({"valve", "pump"})))
    store.create_user(org_id=mp.id, username=MP_USER, password_hash=hash_password(PASSWORD))
    mfr = store.create_org(name="ACME Valves", kind="manufacturer", manufacturer_code="ACME")
    store.create_user(org_id=mfr.id, username=MFR_USER, password_hash=hash_password(PASSWORD))
    operator = store.create_org(name="Water works", kind="operator")
    store.put_site(Site("Oubei-WTP", operator.id, "Ouhai"))
    mfr_key = auth.create_key(mfr.id, name="fleet sync")[0]
    store.close()
    return mfr_key


UPLOAD_CSV = (
    "device_id,kind,model,batch,dn,leakage_class\n"
    "ACME-BV50-700001,valve,BV-50,ACME-2412,50,A\n"
    "ACME-BV50-700002,valve,BV-50,ACME-2412,50,A\n"
    "not an id!,valve,BV-50,ACME-2412,50,A\n"
    "ACME-BV50-700003,valve,BV-50,ACME-2412,-5,Z\n"
)


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory,
    serve: Callable[[FastAPI], AbstractContextManager[str]],
) -> Iterator[Site_]:
    _require_browser()
    settings = Settings(data_dir=tmp_path_factory.mktemp("quality") / "data", store="sqlite")
    mfr_key = _seed(settings)
    with serve(create_app(settings)) as url:
        # the manufacturer's upload, through the API as its fleet script would
        answer = httpx.post(
            f"{url}/api/v1/provisioning/devices?mode=good_rows_only",
            content=UPLOAD_CSV,
            headers={"Authorization": f"Bearer {mfr_key}", "content-type": "text/csv"},
        )
        assert answer.status_code == 200, answer.text
        yield Site_(url, tmp_path_factory.mktemp("downloads"))


@pytest.fixture(scope="module")
def driver(site: Site_, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--lang=en-US",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-quality')}",
    ):
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(site.downloads),
            "download.prompt_for_download": False,
            "intl.accept_languages": "en-US,en",
        },
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    browser.execute_cdp_cmd(
        "Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(site.downloads)}
    )
    try:
        yield browser
    finally:
        browser.quit()


def _wait(driver: WebDriver, what: str, condition: Callable[[WebDriver], Any]) -> Any:
    return WebDriverWait(driver, WAIT_S).until(condition, f"timed out waiting for {what}")


def _sign_in(driver: WebDriver, site: Site_, username: str) -> None:
    driver.get(site.url + "/")
    form = _wait(driver, "the page", lambda d: d.find_element(By.ID, "sign-in"))
    view = driver.find_element(By.ID, "view")
    _wait(driver, "the session check", lambda d: form.is_displayed() or view.is_displayed())
    if not form.is_displayed():  # someone is signed in: sign out first
        driver.find_element(By.ID, "sign-out").click()
        _wait(driver, "the sign-in form", lambda d: form.is_displayed())
        # signing out keeps the last view's hash: start from the role's own landing view
        driver.execute_script("history.replaceState(null, '', '/')")
    driver.execute_script("localStorage.setItem('sealscope.locale', 'en')")
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    form.submit()
    _wait(driver, "signed in", lambda d: d.find_element(By.ID, "view").is_displayed())
    driver.get_log("browser")  # forget the signed-out session check's expected 401


def _texts(driver: WebDriver, css: str) -> list[str]:
    texts: list[str] = driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map((e) => e.textContent);", css
    )
    return texts


def _data(driver: WebDriver, css: str, name: str) -> list[str]:
    """``data-<name>`` of every element ``css`` finds."""
    values: list[str] = driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map((e) => e.dataset[arguments[1]]);",
        css,
        name,
    )
    return values


def _shot(driver: WebDriver, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    # the whole page: as tall as its content, so a screenshot shows every section
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, max(1000, min(int(height) + 40, 4000)))
    driver.save_screenshot(str(SHOTS / name))
    driver.set_window_size(1400, 1000)


def _no_browser_errors(driver: WebDriver, known: str = "\0") -> None:
    severe = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert [m for m in severe if known not in m] == []


def _downloaded(site: Site_, suffix: str) -> Path:
    def done(_: WebDriver) -> Path | None:
        found = [p for p in site.downloads.iterdir() if p.name.endswith(suffix)]
        return found[0] if found else None

    return done  # type: ignore[return-value]


def test_monitoring_point_risk_table_group_devices_and_chinese(
    driver: WebDriver, site: Site_
) -> None:
    _sign_in(driver, site, MP_USER)
    # a monitoring point lands on the risk table
    _wait(driver, "the risk rows", lambda d: _texts(d, "#risk-rows tr"))
    keys = driver.execute_script(
        "return [...document.querySelectorAll('#risk-rows tr')].map((r) => r.dataset.key)"
    )
    assert keys[0] == f"batch:{BAD_BATCH}"  # sorted by evidence: the bad batch first
    first = driver.find_element(By.CSS_SELECTOR, "#risk-rows tr")
    assert "flagged" in first.get_attribute("class")
    assert "strong" in first.text or "moderate" in first.text
    _shot(driver, "quality-risk-table.png")

    first.click()
    _wait(driver, "the group's devices", lambda d: _texts(d, "#group-devices tbody tr"))
    assert driver.execute_script("return location.hash") == f"#/risk/batch/{BAD_BATCH}"
    devices = _texts(driver, "#group-devices tbody tr td:first-child")
    # degraded first, the most open alerts first among them (#3 also had a failure)
    assert len(devices) == 12 and devices[:2] == [FLEET[3].device_id, FLEET[0].device_id]
    assert "8 / 12" in driver.find_element(By.ID, "risk-detail").text
    group_path = driver.find_element(By.CSS_SELECTOR, "svg.ageing path.group")
    peers_path = driver.find_element(By.CSS_SELECTOR, "svg.ageing path.peers")
    assert int(group_path.get_attribute("data-points")) >= 13
    assert int(peers_path.get_attribute("data-points")) >= 13
    _shot(driver, "quality-risk-group.png")

    # a device of the group opens its page
    driver.find_element(By.CSS_SELECTOR, "#group-devices tbody tr a").click()
    _wait(
        driver, "the device page", lambda d: "#/device/" in d.execute_script("return location.hash")
    )
    driver.back()
    _wait(driver, "the group again", lambda d: _texts(d, "#group-devices tbody tr"))

    Select(driver.find_element(By.ID, "lang")).select_by_value("zh-CN")
    _wait(driver, "Chinese", lambda d: "在役月数" in d.find_element(By.ID, "view").text)
    assert driver.execute_script("return document.documentElement.lang") == "zh-CN"
    assert "劣化比例" in driver.find_element(By.CSS_SELECTOR, "svg.ageing").text
    _shot(driver, "quality-risk-group-zh.png")
    Select(driver.find_element(By.ID, "lang")).select_by_value("en")
    # the device page (the technician view's first cut) asks a monitoring point's session
    # for the device's commands and logs the 403: not this test's subject
    _no_browser_errors(driver, known="/commands - Failed to load resource")


def test_monitoring_point_report_prints_and_downloads(driver: WebDriver, site: Site_) -> None:
    _sign_in(driver, site, MP_USER)
    driver.get(site.url + "/#/report?by=model")
    _wait(driver, "the report rows", lambda d: _texts(d, "#report-table tbody tr"))
    groups = _data(driver, "#report-table tbody tr", "group")
    assert groups == ["BV-50", "BV-80", "GV-100"]
    bv50 = driver.find_element(By.CSS_SELECTOR, "#report-table tbody tr[data-group='BV-50']").text
    assert "10" in bv50  # degraded devices of model BV-50
    evidence = driver.find_element(By.ID, "report-evidence").text
    assert "10 of 36 devices degraded in the period" in evidence
    _shot(driver, "quality-report.png")

    # the print button calls the browser's print; the print stylesheet drops the controls
    driver.execute_script("window.print = () => { window.__printed = true; };")
    driver.find_element(By.ID, "report-print").click()
    assert driver.execute_script("return window.__printed") is True
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    try:
        assert not driver.find_element(By.ID, "top").is_displayed()
        assert not driver.find_element(By.ID, "report-csv").is_displayed()
        assert driver.find_element(By.ID, "report-table").is_displayed()
        _shot(driver, "quality-report-print.png")
    finally:
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    printed = base64.b64decode(driver.print_page())
    assert printed.startswith(b"%PDF-")

    for old in site.downloads.iterdir():
        old.unlink()
    driver.find_element(By.ID, "report-csv").click()
    path = _wait(driver, "the CSV download", _downloaded(site, ".csv"))
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    assert [r["group"] for r in rows] == ["BV-50", "BV-80", "GV-100"]
    assert rows[0]["degraded devices"] == "10" and rows[0]["devices"] == "36"
    assert float(rows[0]["degradation rate 95% low"]) < float(
        rows[0]["degradation rate /device-year"]
    )

    # in Chinese the download links ask for Chinese headings and text
    Select(driver.find_element(By.ID, "lang")).select_by_value("zh-CN")
    _wait(driver, "Chinese", lambda d: "现场质量报告" in d.find_element(By.ID, "view").text)
    _shot(driver, "quality-report-zh.png")
    driver.find_element(By.ID, "report-pdf").click()
    pdf = _wait(driver, "the PDF download", _downloaded(site, ".pdf"))
    body = pdf.read_bytes()
    assert body.startswith(b"%PDF-") and b"/STSong-Light" in body
    text = pdf_text(body)
    assert "按型号的现场质量报告" in text and "BV-50" in text and "GV-100" in text
    assert "lang=zh-CN" in driver.find_element(By.ID, "report-pdf").get_attribute("href")
    Select(driver.find_element(By.ID, "lang")).select_by_value("en")
    _no_browser_errors(driver)


def test_monitoring_point_regions_and_subscriptions(driver: WebDriver, site: Site_) -> None:
    _sign_in(driver, site, MP_USER)
    driver.get(site.url + "/#/region")
    _wait(driver, "the region rows", lambda d: _texts(d, "#region-table tbody tr"))
    regions = driver.execute_script(
        "return [...document.querySelectorAll('#region-table tbody tr')]"
        ".map((r) => [r.dataset.region, r.dataset.site])"
    )
    # no raw-data grant: regions only, no site names
    assert regions == [["Ouhai", ""], ["Yongjia", ""]]
    assert driver.find_element(By.ID, "subscriptions").is_displayed()
    _shot(driver, "quality-regions.png")
    _no_browser_errors(driver)


def test_manufacturer_fleet_alerts_and_uploads(driver: WebDriver, site: Site_) -> None:
    _sign_in(driver, site, MFR_USER)
    _wait(driver, "the model cards", lambda d: _texts(d, "#models .model-card"))
    assert driver.execute_script("return location.hash") == "#/fleet-by-model"
    models = driver.execute_script(
        "return [...document.querySelectorAll('#models .model-card')].map((c) => c.dataset.model)"
    )
    assert models == ["BV-50", "BV-80"]  # its own models only (not Ouhai's GV-100)
    batches = driver.execute_script(
        "return [...document.querySelectorAll(\"[data-model='BV-50'] tr[data-batch]\")]"
        ".map((r) => r.dataset.batch)"
    )
    assert batches == [BAD_BATCH, "ACME-2405", "ACME-2411", "ACME-2412"]
    assert "Yongjia" in driver.find_element(By.ID, "fleet-total").text
    # open alerts on its products: its own devices' only, the newest five until asked
    assert len(_texts(driver, "#product-alerts .alert")) == 5
    _shot(driver, "mfr-fleet-by-model.png")
    driver.find_element(By.ID, "alerts-more").click()
    alert_devices = _texts(driver, "#product-alerts .alert")
    assert len(alert_devices) == 11  # 10 seal alerts on ACME devices and the failure
    assert not any("OUHAI" in text for text in alert_devices)

    # the upload's per-row results
    driver.find_element(By.CSS_SELECTOR, "#upload-table tbody tr").click()
    _wait(driver, "the upload rows", lambda d: _texts(d, "#upload-row-table tbody tr"))
    statuses = _data(driver, "#upload-row-table tbody tr", "status")
    assert statuses == ["created", "created", "rejected", "rejected"]
    reasons = _texts(driver, "#upload-row-table tbody tr td:last-child")
    assert "device_id" in reasons[2] and reasons[3]
    driver.execute_script("document.getElementById('uploads').scrollIntoView()")
    _shot(driver, "mfr-uploads.png")

    # a batch opens its risk detail, restricted to its own devices
    driver.get(site.url + f"/#/risk/batch/{BAD_BATCH}")
    _wait(driver, "the batch devices", lambda d: _texts(d, "#group-devices tbody tr"))
    sites = _texts(driver, "#group-devices tbody tr td:nth-child(4)")
    assert set(sites) == {"Yongjia"}  # the region shows; the site names do not
    _no_browser_errors(driver)
