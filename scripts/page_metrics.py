"""Measure the page in Debian Chromium: bytes on first visit and reload, time to a ready
detector, and the longest main-thread block (PerformanceObserver longtask) during start-up and
during detection.

    .venv/bin/python scripts/page_metrics.py [--mbit 5] [--runs 3] [--picture PATH]

The app runs in-process on a loopback port; the browser's network can be throttled through the
DevTools protocol. The observers are injected by DevTools before the page's own scripts, so the
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
    "new": "document.getElementById('detect-status').dataset.state === 'done'",
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


def start_server():
    import logging
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    from werkzeug.serving import make_server

    from app import create_app
    app = create_app({"REPORT_DIR": tempfile.mkdtemp(), "TORCH_THREADS": 1})
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_port}/"


def start_browser(profile):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 "--window-size=1366,900", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))


def transferred(driver):
    """Bytes received on the wire since the last call, by URL (from DevTools' network events)."""
    urls, sizes = {}, {}
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        params = msg.get("params", {})
        if msg["method"] == "Network.requestWillBeSent":
            urls[params["requestId"]] = params["request"]["url"]
        elif msg["method"] == "Network.loadingFinished":
            sizes[params["requestId"]] = params["encodedDataLength"]
    out = {}
    for rid, size in sizes.items():
        url = urls.get(rid, rid).split("?")[0]
        if url.startswith(("data:", "blob:")):
            continue  # decoded in memory (opencv.js's inlined WASM), not on the wire
        bytes_, requests = out.get(url, (0, 0))
        out[url] = (bytes_ + size, requests + 1)
    return out


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
    t0 = driver.execute_script("return performance.now()")
    driver.find_element(By.ID, "file-input").send_keys(str(picture))
    wait(driver, DETECTED[page])
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

    httpd, url = start_server()
    results = []
    try:
        for run in range(args.runs):
            with tempfile.TemporaryDirectory() as profile:
                driver = start_browser(profile)
                try:
                    driver.execute_cdp_cmd("Network.enable", {})
                    if args.mbit:
                        rate = args.mbit * 1e6 / 8
                        driver.execute_cdp_cmd("Network.emulateNetworkConditions", {
                            "offline": False, "latency": 20, "downloadThroughput": rate,
                            "uploadThroughput": rate})
                    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                                           {"source": OBSERVER % READY[args.page]})
                    driver.get_log("performance")
                    ready_ms, block_start = visit(driver, url, args.page)
                    time.sleep(1)
                    first = transferred(driver)
                    detections = [detect(driver, p, args.page) for p in args.picture]
                    reload_ms, block_reload = visit(driver, url, args.page)
                    time.sleep(1)
                    again = transferred(driver)
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
