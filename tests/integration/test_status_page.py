# SPDX-License-Identifier: MIT
"""The status page (GET /) in headless Chromium against a real relaying ternd.

After N messages the page must show the counts the records show, draw its
chart from ternd's history, log no JavaScript error, and fetch nothing from
outside ternd; a screenshot is saved in the test's tmp dir for a human look.
"""
import http.client
import json
import shutil

import pytest

from sinks import of_type, read_records, send_one, ternd_sink, wait_records
from test_metrics import start, wait_for

__all__ = ["ternd_sink"]  # fixture, used by name

webdriver = pytest.importorskip("selenium.webdriver", reason="python3-selenium is not installed")


def chromium(tmp_path):
    """A headless Chromium driven by chromedriver, or a skip saying why it cannot start."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    if not shutil.which("chromium") or not shutil.which("chromedriver"):
        pytest.skip("chromium and chromium-driver are not installed")
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1400", f"--user-data-dir={tmp_path}/chromium"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        service = Service(executable_path=shutil.which("chromedriver"))
        return webdriver.Chrome(service=service, options=opts)
    except WebDriverException as e:
        pytest.skip(f"chromium cannot start here: {e.msg}")


def text(driver, element_id):
    return driver.find_element("id", element_id).text


def test_page_shows_the_counts_after_n_messages(ternd, ports, dns_server, ternd_sink, tmp_path):
    t, _ = start(ternd, dns_server, ternd_sink, tmp_path)
    ok = [f"ok-{i}@r.test" for i in range(12)]
    send_one(ports[0], "s@origin.test", ok + ["permfail-1@r.test", "tempfail-1@r.test"],
             b"Subject: page\r\n\r\nx\r\n")
    wait_records(t, of_type("Delivery"), 12)
    wait_records(t, of_type("Bounce"), 1)
    wait_records(t, of_type("TransientFailure"), 1)
    recs = read_records(t)

    driver = chromium(tmp_path)
    try:
        driver.get(f"http://127.0.0.1:{ports[2]}/")
        assert driver.title == "tern status"
        # The page polls each second; the deferred message shows in the queues once published.
        assert wait_for(lambda: text(driver, "total-delivered") == "12"), \
            text(driver, "total-delivered")
        assert text(driver, "total-bounced") == "1"
        assert text(driver, "total-transient_failure") == "1"
        assert text(driver, "total-received") == str(
            len([r for r in recs if r["type"] == "Reception"]))
        assert text(driver, "epoch") == "1"
        assert text(driver, "revision") == recs[0]["policy_revision"]
        assert wait_for(lambda: "acme@r.test" in text(driver, "queues")), text(driver, "queues")
        grid = text(driver, "grid")
        assert "ip-a" in grid and "mx.r.test." in grid and "12 / 2" in grid, grid
        # A path suspended through the admin API is marked in the grid.
        c = http.client.HTTPConnection("127.0.0.1", ports[2], timeout=30)
        c.request("POST", "/api/admin/suspend-ready-q/v1", body=json.dumps(
            {"name": "ip-a->mx.r.test.", "reason": "blocklisted", "duration": "1h"}).encode())
        assert c.getresponse().status == 200
        c.close()
        assert wait_for(lambda: "suspended 12 / 2" in text(driver, "grid")), text(driver, "grid")
        assert f"127.0.0.1:{ports[1]}" in text(driver, "tls")
        # The chart has one line per series, drawn from ternd's history.
        lines = driver.find_elements("css selector", "#chart polyline")
        assert len(lines) == 3
        # The delivered line rises above the baseline (y = 195) where the 12 were delivered.
        assert wait_for(lambda: any(
            float(p.split(",")[1]) < 190 for p in driver.find_elements(
                "css selector", "#chart polyline")[0].get_attribute("points").split()))
        assert text(driver, "error") == ""
        driver.save_screenshot(str(tmp_path / "status_page.png"))
        assert (tmp_path / "status_page.png").stat().st_size > 10000
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == [], errors
    finally:
        driver.quit()


def test_page_uses_nothing_outside_ternd(ternd, ports, dns_server, ternd_sink, tmp_path):
    # Regression guard for the page's self-containment: no CDN, no external script or style.
    start(ternd, dns_server, ternd_sink, tmp_path)
    c = http.client.HTTPConnection("127.0.0.1", ports[2], timeout=30)
    c.request("GET", "/")
    r = c.getresponse()
    body = r.read().decode()
    assert r.status == 200 and r.getheader("Content-Type") == "text/html; charset=utf-8"
    assert "<script src" not in body and 'rel="stylesheet"' not in body
    assert "http://" not in body.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in body
