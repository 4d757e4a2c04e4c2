"""The page in a real headless Debian Chromium: detect, draw, identify, report, cut out.

Screenshots land in test-artifacts/ (git-ignored) for a person to look at.
"""
import threading
from pathlib import Path

import pytest
from conftest import ROOT, needs_models, read_image
from PIL import Image
from werkzeug.serving import make_server

from app import create_app
from app.storage import db, images, reports

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = ROOT / "test-artifacts"

pytestmark = [
    pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                       reason="Debian chromium and chromium-driver are not installed (scripts/setup.sh --dev)"),
    pytest.mark.skipif(not (ROOT / "static" / "vendor" / "opencv.js").exists(),
                       reason="static/vendor/opencv.js missing: run scripts/setup.sh"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The real app on a real HTTP server in a thread; yields (base URL, report dir)."""
    report_dir = tmp_path_factory.mktemp("page") / "reports"
    app = create_app({"REPORT_DIR": str(report_dir), "TORCH_THREADS": 1})
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}", report_dir
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 "--window-size=1280,1000",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


def wait_for(driver, script, timeout=60):
    """Wait until the JavaScript expression `script` is truthy; return its value."""
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: d.execute_script("return " + script))


def screenshot(driver, name):
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / name))


@needs_models
def test_whole_flow_in_chromium(server, browser, demo_picture):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    base, report_dir = server
    path, comp = demo_picture
    browser.get(base + "/")
    screenshot(browser, "page-0-empty.png")

    # OpenCV.js loads (with progress) while the rest of the page already works.
    wait_for(browser, "document.body.dataset.detector === 'ready'", timeout=90)
    browser.find_element(By.ID, "file-input").send_keys(str(path))

    # Auto-detected boxes appear as crops.
    detected = int(wait_for(browser, "Number(document.body.dataset.detected) > 0 && document.body.dataset.detected"))
    assert detected >= 1
    assert len(browser.find_elements(By.CSS_SELECTOR, "#crops li[data-source=auto]")) == detected
    screenshot(browser, "page-1-detected.png")

    # Keyboard: "Add a box by hand" with Enter, then Enter on the focused Delete button removes it.
    from selenium.webdriver.common.keys import Keys
    browser.find_element(By.ID, "add-box").send_keys(Keys.ENTER)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#crops li[data-source=drawn]")) == 1
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    assert not browser.find_elements(By.CSS_SELECTOR, "#crops li[data-source=drawn]")

    # Hand-drawn box: drag on the picture, away from the detected faces (lower left area).
    overlay = browser.find_element(By.ID, "overlay")
    size = overlay.size
    start = (-size["width"] // 2 + 20, size["height"] // 2 - 120)
    ActionChains(browser).move_to_element_with_offset(overlay, *start).click_and_hold() \
        .move_by_offset(40, 30).move_by_offset(40, 30).release().perform()
    drawn = browser.find_elements(By.CSS_SELECTOR, "#crops li[data-source=drawn]")
    assert len(drawn) == 1

    # Delete a crop with its button, then add the drawn one back by dragging again.
    drawn[0].find_element(By.CSS_SELECTOR, "button.delete").click()
    assert not browser.find_elements(By.CSS_SELECTOR, "#crops li[data-source=drawn]")
    ActionChains(browser).move_to_element_with_offset(overlay, *start).click_and_hold() \
        .move_by_offset(80, 60).release().perform()
    crops = browser.find_elements(By.CSS_SELECTOR, "#crops li")
    assert len(crops) == detected + 1

    # Identify all crops at once.
    browser.find_element(By.ID, "identify").click()
    wait_for(browser, "document.body.dataset.identified === 'yes'")
    for li in crops:
        headline = li.find_element(By.CSS_SELECTOR, ".result .headline").text
        assert headline
        assert li.find_elements(By.CSS_SELECTOR, ".predictions li .fill")
    screenshot(browser, "page-2-identified.png")

    # Report the first crop with a Japanese name, typed in the inline field.
    first = crops[0]
    first.find_element(By.CSS_SELECTOR, "button.wrong").click()
    field = first.find_element(By.CSS_SELECTOR, "form.report input")
    assert field == browser.switch_to.active_element  # focus moved to the field
    field.send_keys("初音ミク")
    first.find_element(By.CSS_SELECTOR, "form.report button[type=submit]").click()
    status = first.find_element(By.CSS_SELECTOR, ".report-status")
    wait_for(browser, "document.querySelector('#crops li .report-status.ok') !== null")
    report_id = status.get_attribute("data-report-id")
    reader = create_app({"REPORT_DIR": str(report_dir)})
    with db.session(reader) as s:
        record = reports.get(s, report_id)
    db.dispose(reader)
    assert record.label == "初音ミク"
    assert read_image(images.image_path(report_dir, record.image_sha256)).size[0] > 20
    screenshot(browser, "page-3-reported.png")

    # Remove the background: the PNG shown has the picture's size and real transparency.
    browser.find_element(By.ID, "cutout").click()
    wait_for(browser, "document.body.dataset.cutout === 'done' || document.body.dataset.cutout === 'error'",
             timeout=120)
    assert browser.execute_script("return document.body.dataset.cutout") == "done", \
        browser.find_element(By.ID, "cutout-status").text
    # Read the shown PNG back through a canvas (the CSP rightly forbids fetching blob: URLs).
    shown = browser.execute_script("""
        const img = document.getElementById('cutout-image');
        const c = document.createElement('canvas');
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
        const a = ctx.getImageData(0, 0, c.width, c.height).data;
        let lo = 255, hi = 0, opaque = 0;
        for (let i = 3; i < a.length; i += 4) { lo = Math.min(lo, a[i]); hi = Math.max(hi, a[i]); if (a[i] > 127) opaque++; }
        return {w: c.width, h: c.height, lo, hi, opaque, type: img.src.slice(0, 5)};
    """)
    assert (shown["w"], shown["h"]) == (comp.image.shape[1], comp.image.shape[0])
    assert shown["type"] == "blob:" and shown["lo"] < 128 < shown["hi"], shown
    assert browser.find_element(By.ID, "download-png").get_attribute("download") == "cutout.png"
    assert browser.find_element(By.ID, "download-mask").get_attribute("href").startswith("blob:")
    browser.execute_script("document.getElementById('download-png').scrollIntoView({block: 'end'})")
    screenshot(browser, "page-4-cutout.png")

    # No Content-Security-Policy violation and no script error on the way.
    problems = [e["message"] for e in browser.get_log("browser")
                if e["level"] == "SEVERE" or "Content Security Policy" in e["message"]]
    assert not problems, problems


def test_phone_width_and_no_model_message(browser, tmp_path):
    """At 390 px wide the page stays one column, and a server without models says so."""
    app = create_app({"MODEL_DIR": str(tmp_path), "REPORT_DIR": str(tmp_path / "r")})
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        browser.set_window_size(390, 844)
        browser.get(f"http://127.0.0.1:{httpd.server_port}/")
        message = wait_for(browser, "document.getElementById('server-status').textContent", timeout=20)
        assert "no classifier model" in message and "setup.sh" in message
        width = browser.execute_script("return document.documentElement.scrollWidth")
        assert width <= 390  # no sideways scrolling
        screenshot(browser, "page-5-phone-no-model.png")
    finally:
        httpd.shutdown()
        browser.set_window_size(1280, 1000)


# A picture handed to the page as a real File in a real DataTransfer, dropped on the drop zone or
# pasted into the document, the way the browser delivers an OS drag or a clipboard image.
_DELIVER = """
const [b64, type, how] = arguments;
const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
const dt = new DataTransfer();
dt.items.add(new File([bytes], how + (type === 'image/png' ? '.png' : '.txt'), {type}));
if (how === 'drop') {
  const zone = document.getElementById('drop-zone');
  zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: dt, bubbles: true, cancelable: true}));
  zone.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
} else {
  document.body.dispatchEvent(new ClipboardEvent('paste', {clipboardData: dt, bubbles: true, cancelable: true}));
}
"""


@needs_models
def test_drop_and_paste_a_picture(server, browser, tmp_path):
    import base64
    base, _ = server
    browser.get(base + "/")
    wait_for(browser, "document.body.dataset.detector === 'ready'", timeout=90)

    # Something that is not a picture is refused with a message, and nothing is loaded.
    browser.execute_script(_DELIVER, base64.b64encode(b"not a picture").decode(), "text/plain", "drop")
    error = wait_for(browser, "!document.getElementById('image-error').hidden && "
                              "document.getElementById('image-error').textContent", timeout=10)
    assert "PNG, JPEG or WebP" in error
    assert browser.execute_script("return document.getElementById('workspace').hidden")

    for how, size in (("drop", (320, 200)), ("paste", (240, 300))):
        picture = tmp_path / f"{how}.png"
        Image.new("RGB", size, (200, 120, 40)).save(picture)
        browser.execute_script(_DELIVER, base64.b64encode(picture.read_bytes()).decode(), "image/png", how)
        loaded = wait_for(browser, f"document.getElementById('picture').naturalWidth === {size[0]} && "
                                   "!document.getElementById('workspace').hidden", timeout=20)
        assert loaded
        assert browser.execute_script("return document.getElementById('picture').naturalHeight") == size[1]
        assert browser.execute_script("return document.getElementById('image-error').hidden")
