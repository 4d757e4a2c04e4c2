"""Shared parts of the page tests: the real app on a loopback port, Debian Chromium through
Selenium, and small helpers. Screenshots land in test-artifacts/ (git-ignored) to look at.

The tests watch what a person would see (status texts and their data-state, the boxes, the
lists), never flags kept for tests in the page's code.
"""
import base64
import json
import re
import threading
from pathlib import Path

import pytest
from conftest import ROOT
from werkzeug.serving import make_server

from app import create_app

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = ROOT / "test-artifacts"
DESKTOP = (1366, 900)
PHONE = (390, 844)

needs_chromium = [
    pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                       reason="Debian chromium and chromium-driver are not installed (scripts/setup.sh --dev)"),
    pytest.mark.skipif(not (ROOT / "static" / "vendor" / "opencv.js").exists(),
                       reason="static/vendor/opencv.js missing: run scripts/setup.sh"),
]


class Server:
    """The real app served over HTTP from a thread; counts the requests to each path."""

    def __init__(self, config):
        self.app = create_app({"TORCH_THREADS": 1, **config})
        self.requests = []
        inner = self.app.wsgi_app

        def counting(environ, start_response):
            self.requests.append((environ["REQUEST_METHOD"], environ["PATH_INFO"]))
            body = inner(environ, start_response)
            try:
                yield from body
            finally:
                # Werkzeug's development server leaves a response open when the browser drops
                # the connection (a reload during a download); closing it here frees its file.
                if hasattr(body, "close"):
                    body.close()

        self.app.wsgi_app = counting
        self.httpd = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.httpd.server_port}"

    def count(self, method, path):
        return sum(1 for m, p in self.requests if m == method and p == path)

    def close(self):
        self.httpd.shutdown()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app with the demo models and a temporary report directory."""
    s = Server({"REPORT_DIR": str(tmp_path_factory.mktemp("page") / "reports")})
    s.report_dir = Path(s.app.config["REPORT_DIR"])
    yield s
    s.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Debian Chromium; downloads go to browser.download_dir."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 "--lang=en-US", f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.download_dir = tmp_path_factory.mktemp("downloads")
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow",
                                                           "downloadPath": str(driver.download_dir)})
    desktop(driver)
    yield driver
    driver.quit()


def desktop(driver):
    """A 1366 x 900 viewport with a mouse."""
    driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": False})
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": DESKTOP[0], "height": DESKTOP[1], "deviceScaleFactor": 1, "mobile": False})


def phone(driver):
    """A 390 x 844 touch screen, as a phone shows the page."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": PHONE[0], "height": PHONE[1], "deviceScaleFactor": 2, "mobile": True})
    driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 5})


def wait_for(driver, script, timeout=60):
    """Wait until the JavaScript expression `script` is truthy; return its value."""
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(
        lambda d: d.execute_script("return " + script))


def locale_module(path):
    """A page's locale module's object (static/js/*-locales/*.js: JSON plus a trailing comma per entry)."""
    text = Path(path).read_text()
    body = text[text.index("export default") + len("export default"):].strip().rstrip(";")
    return json.loads(re.sub(r",\s*}", "}", body))


def screenshot(driver, name):
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / name))


# The page keeps the last pictures in IndexedDB (static/js/history.js): each test starts without.
_FORGET_HISTORY = """
const done = arguments[0];
indexedDB.databases().then((all) => {
  if (!all.some((d) => d.name === 'face-finder-history')) return done(false);
  const request = indexedDB.deleteDatabase('face-finder-history');
  request.onsuccess = request.onerror = () => done(true);
});
"""


def open_page(driver, base, lang="en", keep_history=False):
    """Load the page in `lang` (the reader's saved choice), with no pictures kept from an earlier
    test unless `keep_history`, and wait for the detector."""
    driver.get(base + "/")
    forgot = not keep_history and driver.execute_async_script(_FORGET_HISTORY)
    if driver.execute_script("return localStorage.getItem('lang') || 'en'") != lang or forgot:
        driver.execute_script("localStorage.setItem('lang', arguments[0])", lang)
        driver.refresh()
    driver.get_log("browser")  # start each test's log clean
    wait_for(driver, "document.getElementById('detector-status').dataset.state === 'ready'", timeout=120)


def pick(driver, *paths):
    """Give the page files through its file chooser, as a person picking them would."""
    from selenium.webdriver.common.by import By
    driver.find_element(By.ID, "file-input").send_keys("\n".join(str(p) for p in paths))


def faces_found(driver, timeout=60):
    """Wait for the current picture's detection; return the number of boxes."""
    wait_for(driver, "['done', 'failed'].includes(document.getElementById('detect-status').dataset.state)",
             timeout)
    return driver.execute_script("return document.querySelectorAll('#boxes .box').length")


def boxes(driver):
    """The boxes shown, in page order: [{n, x, y, w, h, label, source}] in picture pixels."""
    return driver.execute_script("""
        const img = document.getElementById('picture');
        const layer = document.getElementById('boxes').getBoundingClientRect();
        return Array.from(document.querySelectorAll('#boxes .box')).map((b) => {
          const r = b.getBoundingClientRect(), s = img.naturalWidth / layer.width;
          return {n: Number(b.querySelector('.tag').textContent), label: b.getAttribute('aria-label'),
                  source: b.dataset.source, x: Math.round((r.left - layer.left) * s),
                  y: Math.round((r.top - layer.top) * s), w: Math.round(r.width * s), h: Math.round(r.height * s)};
        });""")


# A real File in a real DataTransfer, dropped on an element or pasted into the document,
# the way the browser delivers an OS drag or a clipboard image.
_DELIVER = """
const [files, how, selector] = arguments;
const dt = new DataTransfer();
for (const [b64, type, name] of files) {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  dt.items.add(new File([bytes], name, {type}));
}
if (how === 'drop') {
  const target = document.querySelector(selector);
  target.dispatchEvent(new DragEvent('dragover', {dataTransfer: dt, bubbles: true, cancelable: true}));
  target.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
} else {
  document.body.dispatchEvent(new ClipboardEvent('paste', {clipboardData: dt, bubbles: true, cancelable: true}));
}
"""


def deliver(driver, files, how="drop", selector="#drop-zone"):
    """Drop (on `selector`) or paste files given as [(bytes, type, name)]."""
    encoded = [[base64.b64encode(data).decode(), kind, name] for data, kind, name in files]
    driver.execute_script(_DELIVER, encoded, how, selector)


def console_problems(driver):
    """Script errors and Content-Security-Policy violations logged since the last call."""
    return [e["message"] for e in driver.get_log("browser")
            if e["level"] == "SEVERE" or "Content Security Policy" in e["message"]]


def canvas_pixels(driver, selector, points):
    """RGBA of a canvas at [(fx, fy)] fractions of its size."""
    return driver.execute_script("""
        const c = document.querySelector(arguments[0]);
        const ctx = c.getContext('2d');
        const at = (f, n) => Math.min(n - 1, Math.floor(f * n));
        return arguments[1].map(([fx, fy]) =>
            Array.from(ctx.getImageData(at(fx, c.width), at(fy, c.height), 1, 1).data));
    """, selector, [list(p) for p in points])
