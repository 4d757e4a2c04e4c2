"""A page on another site cannot make a visitor's browser store reports (real Debian Chromium).

The attacker's page is served from http://localhost:PORT2 and the app from
http://127.0.0.1:PORT1: another site, as far as the browser is concerned. Multipart posts need
no CORS preflight, so the request does reach the app: the app must refuse it.
"""
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from app import create_app

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

pytestmark = pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                                reason="Debian chromium and chromium-driver are not installed (scripts/setup.sh --dev)")

# Posts a real PNG and a label to the app, the way a hostile page would (no-cors: it cannot read
# the answer, and needs not); window.posted turns true once the browser has sent it.
POST_REPORT = """
const canvas = document.createElement("canvas"); canvas.width = canvas.height = 24;
canvas.getContext("2d").fillRect(0, 0, 24, 24);
canvas.toBlob(async (blob) => {
  const form = new FormData(); form.append("face", blob, "face.png"); form.append("label", "planted");
  try { await fetch(arguments[0] + "/api/reports", {method: "POST", body: form, mode: "no-cors"}); }
  finally { window.posted = true; }
}, "image/png");
"""


@pytest.fixture
def app_server(tmp_path):
    """The app on 127.0.0.1 in a thread; yields (url, report dir, [(status, Sec-Fetch-Site)] seen)."""
    report_dir = tmp_path / "reports"
    app = create_app({"REPORT_DIR": str(report_dir), "TORCH_THREADS": 1})
    seen = []

    @app.after_request
    def record(response):
        from flask import request
        if request.path == "/api/reports":
            seen.append((response.status_code, request.headers.get("Sec-Fetch-Site")))
        return response
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}", report_dir, seen
    httpd.shutdown()


@pytest.fixture
def other_site(tmp_path):
    """Another site: a static page on http://localhost (not 127.0.0.1)."""
    root = tmp_path / "other-site"
    root.mkdir()
    (root / "index.html").write_text("<!doctype html><title>another site</title><p>hello</p>")
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://localhost:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


def post_from(driver, page, app_url):
    from selenium.webdriver.support.ui import WebDriverWait
    driver.get(page)
    driver.execute_script(POST_REPORT, app_url)
    WebDriverWait(driver, 30, poll_frequency=0.1).until(lambda d: d.execute_script("return window.posted === true"))


def test_another_site_cannot_post_reports_but_the_app_page_can(app_server, other_site, browser):
    app_url, report_dir, seen = app_server
    post_from(browser, other_site + "/", app_url)
    assert seen == [(403, "cross-site")]  # it arrived, and was refused
    assert not list(report_dir.rglob("*.png"))  # no picture stored

    post_from(browser, app_url + "/", app_url)  # the same script from the app's own page
    assert seen[-1] == (201, "same-origin")
    assert len(list(report_dir.rglob("*.png"))) == 1
