"""The portal in a real browser: Playwright drives Debian's Chromium (installed by the test set-up)
against a real `csmm serve`, with JavaScript switched off, since every page must work without it.

A customer logs in, sees a refusal for an out-of-bounds SLS, changes its SLS, sees the change in
the portal and in `csmm sls`, sees its conformance chart, and cannot open another customer's SLA.
The domain manager creates a customer and imports a provisioning file, watching its progress.

Set CSMM_SCREENSHOTS=DIR to save a screenshot of each main page there (docs/screenshots/ holds
the ones in the documentation).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml
from playwright.sync_api import Browser, Page, expect, sync_playwright

from controller.accounting.usage import add_meter_usage
from controller.store.database import Database
from tests.conftest import DEMO_FILE
from tests.integration.test_cli import run
from tests.integration.web_support import PASSWORD, add_login, controller

CHROMIUM = Path(os.environ.get("CSMM_CHROMIUM", "/usr/lib/chromium/chromium"))
SHOTS = os.environ.get("CSMM_SCREENSHOTS")


class Site(NamedTuple):
    db: str
    base: str


class _Delta(NamedTuple):
    octets: int
    packets: int
    drops: int


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    directory = tmp_path_factory.mktemp("browser")
    db = f"sqlite:///{directory}/browser.sqlite3"
    run(db, "db", "upgrade")
    run(db, "--now", "2026-11-01T00:00:00Z", "apply", str(DEMO_FILE))
    run(db, "invoice", "issue", "--month", "2026-11")
    add_login(db, "alice", "acme")
    add_login(db, "noc")
    now = datetime.now(timezone.utc)
    with Database(db).write() as session:   # six hours of metered silver traffic, as the southbound records it
        for hours_ago, megabytes in enumerate((1200, 1900, 2100, 1500, 2000, 1700)):
            add_meter_usage(session, {("acme-hq", "silver"): _Delta(megabytes * 1_000_000, megabytes * 800, 0)},
                            {"silver": 34}, now - timedelta(hours=hours_ago))
    with controller(db, directory) as base:
        yield Site(db, base)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: ./scripts/test installs Debian's chromium package"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1100, "height": 800})
    yield context.new_page()
    context.close()


def log_in(page: Page, base: str, name: str) -> None:
    page.goto(f"{base}/")
    expect(page).to_have_url(f"{base}/login?next=/")
    shot(page, "login")
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")


def shot(page: Page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def test_a_customer_changes_its_sls_in_chromium_and_sees_it_everywhere(site: Site, page: Page) -> None:
    log_in(page, site.base, "alice")
    expect(page).to_have_url(f"{site.base}/portal")            # the Secure session cookie was kept
    expect(page.locator("#my-slas")).to_contain_text("silver 5 Mbit/s")
    shot(page, "portal-slas")
    page.click("text=acme-hq >> nth=0")
    expect(page.locator("h1")).to_have_text("SLA acme-hq")

    page.select_option("#class", "gold")
    page.fill("#bandwidth", "9M")
    page.click("text=Change SLS")
    expect(page.locator("#refusal")).to_contain_text("exceeds the SLA's gold maximum 3 Mbit/s")
    expect(page.locator("#refusal-field")).to_have_text("sls.bandwidth")
    expect(page.locator("#refusal-bound")).to_have_text("3 Mbit/s (3000000 bit/s)")
    expect(page.locator("#bandwidth")).to_have_value("9M")
    shot(page, "portal-refusal")
    assert json.loads(run(site.db, "sls", "show", "acme-hq", "--json").stdout)["class"] == "silver"

    page.fill("#bandwidth", "2M")
    page.click("text=Change SLS")
    expect(page.locator("#changed")).to_contain_text("gold 2 Mbit/s")
    expect(page.locator("#sls-now")).to_have_text("gold 2 Mbit/s")
    expect(page.locator("#next-change")).not_to_have_text("now")
    shot(page, "portal-changed")
    shown = json.loads(run(site.db, "sls", "show", "acme-hq", "--json").stdout)
    assert (shown["class"], shown["bandwidth_bps"], shown["channel"]) == ("gold", 2_000_000, "web")
    assert "acme-hq" in run(site.db, "sls").stdout and "gold" in run(site.db, "sls").stdout
    page.click("text=My SLAs")
    expect(page.locator("#my-slas")).to_contain_text("gold 2 Mbit/s")


def test_the_conformance_chart_shows_throughput_against_the_sls(site: Site, page: Page) -> None:
    log_in(page, site.base, "alice")
    page.goto(f"{site.base}/portal/slas/acme-hq/conformance")
    chart = page.locator("#chart svg")
    expect(chart).to_be_visible()
    box = chart.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 150
    expect(chart.locator("path.agreed")).not_to_have_count(0)
    expect(chart.locator("polyline.measured-silver")).to_have_count(1)
    expect(chart.locator("circle.point-silver")).to_have_count(6)
    shot(page, "portal-conformance")
    for path, name in (("/portal/invoices", "portal-invoices"), ("/portal/usage", "portal-usage")):
        page.goto(site.base + path)
        shot(page, name)
    expect(page.locator("#usage")).to_contain_text("acme-hq")


def test_another_customers_sla_is_not_found_in_the_browser(site: Site, page: Page) -> None:
    log_in(page, site.base, "alice")
    response = page.goto(f"{site.base}/portal/slas/globex-main")
    assert response is not None and response.status == 404
    expect(page.locator("main")).to_contain_text("no SLA 'globex-main'")
    expect(page.locator("main")).not_to_contain_text("Globex")


def test_the_domain_manager_adds_a_customer_and_watches_a_bulk_import(site: Site, page: Page,
                                                                       tmp_path: Path) -> None:
    log_in(page, site.base, "noc")
    expect(page).to_have_url(f"{site.base}/console")
    shot(page, "console-overview")
    page.goto(f"{site.base}/console/customers")
    page.fill("#name", "acme")
    page.click("text=Add customer")
    expect(page.locator("#refusal")).to_be_visible()             # already exists: the form says so
    page.fill("#name", "hooli")
    page.click("text=Add customer")
    expect(page.locator("#customers")).to_contain_text("hooli")
    for path, name in (("/console/slas", "console-slas"), ("/console/topology", "console-topology"),
                       ("/console/routers", "console-routers"), ("/console/revenue?month=2026-11",
                                                                 "console-revenue")):
        page.goto(site.base + path)
        shot(page, name)

    data = yaml.safe_load(DEMO_FILE.read_text())
    template = data["customers"][0]["slas"][0]
    data["customers"] = [{"name": f"web{i}", "slas": [{**template, "name": f"web{i}-sla", "access_speed": "1M",
                                                       "bounds": {"bronze": {"min": "1M", "max": "1M"}},
                                                       "prefixes": [f"198.18.{60 + i // 256}.{i % 256}/32"],
                                                       "sls": {"class": "bronze", "bandwidth": "1M"}}]}
                         for i in range(400)]
    upload = tmp_path / "customers.yaml"
    upload.write_text(yaml.safe_dump(data))
    page.goto(f"{site.base}/console/import")
    page.set_input_files("#file", str(upload))
    page.click("button:has-text('Import')")
    expect(page.locator("h1")).to_have_text("Import of customers.yaml")
    expect(page.locator("#import-progress")).to_have_count(1)     # 400 SLAs take longer than the redirect
    shot(page, "console-import")
    for _ in range(120):                      # without JavaScript, the page refreshes itself each second
        if page.locator("#import-state").text_content() in ("done", "refused"):
            break
        page.wait_for_timeout(500)
    expect(page.locator("#import-summary")).to_contain_text("SLAs: 400 created")
