"""Measure the page in Debian Chromium: bytes on first visit and reload, time to a ready
detector, and the longest main-thread block (PerformanceObserver longtask) during start-up and
during detection.

    .venv/bin/python scripts/page_metrics.py [--mbit 5] [--runs 3] [--picture PATH]

The app runs in-process on a loopback port behind a small WSGI wrapper that counts the bytes of
every response body (the page's and its Web Worker's requests alike: DevTools' page log does not
see the worker's) and, with --mbit, sends them through one shared link of that speed with 20 ms
latency per request. The observers are injected by DevTools before the page's own scripts, so the
page carries no measuring code. Timings depend on the machine's load: report the median of runs.
"""
import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

# The new page says "ready" on its detector status; the old one set body data attributes.
READY = {
    "new": "document.getElementById('detector-status').dataset.state === 'ready'",
    "old": "document.body.dataset.detector === 'ready'",
}
DETECTED = {
    "new": "document.getElementById('detect-status').dataset.state === 'done' && "
           "document.getElementById('work-heading').textContent.includes(%(name)r)",
    "old": "document.body.dataset.detected !== undefined",
}

# Runs before any script of the page (DevTools inserts it), CSP does not apply to it.
OBSERVER = """
window.__metrics = {longtasks: [], ready: null, detected: null};
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__metrics.longtasks.push([e.startTime, e.duration]);
}).observe({type: 'longtask'});
const __poll = () => {
  try {
    if (window.__metrics.ready === null && (%s)) window.__metrics.ready = performance.now();
  } catch (e) {}
  if (window.__metrics.ready === null) setTimeout(__poll, 5);
};
document.addEventListener('DOMContentLoaded', __poll);
"""


class Link:
    """Response bodies counted per path and, when rate > 0, sent through one shared link."""

    def __init__(self, app, rate):
        self.app, self.rate = app, rate  # bytes per second, 0: unlimited
        self.lock = threading.Lock()
        self.free_at = 0.0  # when the link has sent everything queued so far
        self.sent = {}      # path -> [bytes, requests]

    def take(self, n):
        if not self.rate:
            return
        with self.lock:
            start = max(time.monotonic(), self.free_at)
            self.free_at = start + n / self.rate
            wait = self.free_at - time.monotonic()
        if wait > 0:
            time.sleep(wait)

    def __call__(self, environ, start_response):
        path = environ["PATH_INFO"]
        if self.rate:
            time.sleep(0.02)
        entry = self.sent.setdefault(path, [0, 0])
        entry[1] += 1
        body = self.app(environ, start_response)
        try:
            for chunk in body:
                for i in range(0, len(chunk), 16384):
                    piece = chunk[i:i + 16384]
                    self.take(len(piece))
                    entry[0] += len(piece)
                    yield piece
        finally:
            if hasattr(body, "close"):
                body.close()

    def take_counts(self):
        counts, self.sent = self.sent, {}
        return counts


def start_server(mbit):
    import logging
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    from werkzeug.serving import make_server

    from app import create_app
    app = create_app({"REPORT_DIR": tempfile.mkdtemp(), "TORCH_THREADS": 1})
    link = Link(app.wsgi_app, mbit * 1e6 / 8)
    app.wsgi_app = link
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_port}/", link


def start_browser(profile):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 "--window-size=1366,900", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))


def wait(driver, script, timeout=180):
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: d.execute_script("return " + script))


def longest(tasks, start, end):
    inside = [d for s, d in tasks if s >= start and s <= end]
    return round(max(inside), 1) if inside else 0.0


def visit(driver, url, page):
    """Load the page; return (ms to ready detector, longest block before ready)."""
    driver.get(url)
    wait(driver, "window.__metrics && window.__metrics.ready !== null")
    m = driver.execute_script("return window.__metrics")
    return round(m["ready"]), longest(m["longtasks"], 0, m["ready"])


def detect(driver, picture, page):
    """Give the page a picture; return the longest block from picking it to its boxes."""
    from selenium.webdriver.common.by import By
    driver.execute_script("delete document.body.dataset.detected")  # the old page's flag
    t0 = driver.execute_script("return performance.now()")
    driver.find_element(By.ID, "file-input").send_keys(str(picture))
    wait(driver, DETECTED[page] % {"name": Path(picture).name})
    time.sleep(0.3)  # let the observer deliver the last entries
    m = driver.execute_script("return window.__metrics")
    faces = driver.execute_script("return document.querySelectorAll('#crops > li').length")
    return longest(m["longtasks"], t0, 1e12), faces


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--page", choices=["new", "old"], default="new")
    parser.add_argument("--mbit", type=float, default=0, help="throttle download to this (0: none)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--picture", action="append", default=[], help="pictures to detect on")
    args = parser.parse_args()

    httpd, url, link = start_server(args.mbit)
    results = []
    try:
        for run in range(args.runs):
            with tempfile.TemporaryDirectory() as profile:
                driver = start_browser(profile)
                try:
                    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                                           {"source": OBSERVER % READY[args.page]})
                    link.take_counts()
                    ready_ms, block_start = visit(driver, url, args.page)
                    time.sleep(1)
                    first = link.take_counts()
                    detections = [detect(driver, p, args.page) for p in args.picture]
                    link.take_counts()
                    reload_ms, block_reload = visit(driver, url, args.page)
                    time.sleep(1)
                    again = link.take_counts()
                    row = {"ready_ms": ready_ms, "ready_reload_ms": reload_ms,
                           "longest_block_start_ms": block_start, "longest_block_reload_ms": block_reload,
                           "first_visit_bytes": sum(b for b, _ in first.values()),
                           "reload_bytes": sum(b for b, _ in again.values()),
                           "detect": detections}
                    if run == 0:
                        row["first_visit_by_url"] = first
                        row["reload_by_url"] = again
                    results.append(row)
                    print(json.dumps(row), flush=True)
                finally:
                    driver.quit()
    finally:
        httpd.shutdown()
    keys = ("ready_ms", "ready_reload_ms", "longest_block_start_ms", "longest_block_reload_ms",
            "first_visit_bytes", "reload_bytes")
    print("median:", json.dumps({k: statistics.median(r[k] for r in results) for k in keys}))
    for i, _ in enumerate(args.picture):
        print(f"picture {i}: longest block in detection (ms):",
              [r["detect"][i][0] for r in results], "faces:", [r["detect"][i][1] for r in results])


if __name__ == "__main__":
    main()
