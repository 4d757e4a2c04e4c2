"""The operator's pages in a real headless Debian Chromium: sign in, teach a character from two
pictures, have the main page name it, and accept a report in the review queue with the keyboard.

Screenshots land in test-artifacts/ (git-ignored) for a person to look at.
"""
import io
import threading
from pathlib import Path

import pytest
import urllib3
from conftest import ROOT, needs_classifier
from PIL import Image
from test_gallery import TOKEN, face_crops, needs_art
from werkzeug.serving import make_server

from app import create_app
from app.storage import db, gallery, reports

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = ROOT / "test-artifacts"

pytestmark = [
    pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                       reason="Debian chromium and chromium-driver are not installed (scripts/setup.sh --dev)"),
    pytest.mark.skipif(not (ROOT / "static" / "vendor" / "opencv.js").exists(),
                       reason="static/vendor/opencv.js missing: run scripts/setup.sh"),
    needs_art, needs_classifier,
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The real app with an operator token on a real HTTP server in a thread; yields (base URL, app)."""
    report_dir = tmp_path_factory.mktemp("operator") / "reports"
    app = create_app({"REPORT_DIR": str(report_dir), "TORCH_THREADS": 1, "ADMIN_TOKEN": TOKEN})
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}", app
    httpd.shutdown()
    db.dispose(app)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 "--window-size=1280,1000", f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
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


def square(png, side=160):
    with Image.open(io.BytesIO(png)) as im:
        return im.convert("RGB").resize((side, side), Image.LANCZOS)


def report(base, png, label="Ed", predicted="lucy"):
    """Post a report as an anonymous visitor would; its id."""
    face = io.BytesIO()
    square(png).save(face, "PNG")
    response = urllib3.request("POST", base + "/api/reports", fields={
        "face": ("f.png", face.getvalue(), "image/png"), "label": label, "predicted": predicted})
    assert response.status == 201
    return response.json()["id"]


def test_sign_in_enrol_identify_and_review(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    base, app = server
    tom = [square(p) for p in face_crops("tom", 3, seed=51)]
    paths = []
    for i, face in enumerate(tom[:2]):
        paths.append(tmp_path / f"tom-{i}.png")
        face.save(paths[-1])

    # Sign in: the review page sends a stranger to the sign-in form first.
    browser.get(base + "/review")
    wait_for(browser, "document.getElementById('signin-form') !== null")
    screenshot(browser, "operator-0-signin.png")
    browser.find_element(By.ID, "token").send_keys(TOKEN + Keys.ENTER)
    wait_for(browser, "document.body.dataset.ready === '1'")
    assert browser.current_url.endswith("/review")

    # Teach "Tom" from two pictures.
    browser.find_element(By.ID, "enrol-name").send_keys("Tom")
    browser.find_element(By.ID, "enrol-faces").send_keys("\n".join(str(p) for p in paths))
    browser.find_element(By.ID, "enrol-submit").click()
    wait_for(browser, "document.querySelector('#characters tr[data-name=\"Tom\"]') !== null")
    row = browser.find_element(By.CSS_SELECTOR, '#characters tr[data-name="Tom"]').text
    assert "gallery" in row and "2" in row
    screenshot(browser, "operator-1-enrolled.png")

    # The main page names him: his face in the middle third of a picture is exactly the box that
    # "Add a box by hand" puts there (the anime cascade does not find these cartoon faces).
    picture = Image.new("RGB", (480, 480), (236, 232, 222))
    picture.paste(tom[2], (160, 160))
    picture_path = tmp_path / "tom-picture.png"
    picture.save(picture_path)
    browser.get(base + "/")
    wait_for(browser, "document.body.dataset.detector === 'ready'", timeout=90)
    browser.find_element(By.ID, "file-input").send_keys(str(picture_path))
    wait_for(browser, "document.body.dataset.detected !== undefined")
    browser.find_element(By.ID, "add-box").click()
    browser.find_element(By.ID, "identify").click()
    wait_for(browser, "document.body.dataset.identified === 'yes'")
    headlines = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#crops li .result .headline")]
    assert any("Tom" in h for h in headlines), headlines
    screenshot(browser, "operator-2-identified.png")

    # Someone reports a face as "Tom"; the operator accepts it under a corrected name, by keyboard.
    report_id = report(base, face_crops("sasha", 1, seed=52)[0], "Tom", "eileen")
    browser.get(base + "/review")
    wait_for(browser, "document.body.dataset.ready === '1'")
    card = browser.find_element(By.CSS_SELECTOR, f'#reports li[data-id="{report_id}"]')
    assert "Tom" in card.text and "eileen" in card.text
    wait_for(browser, f"document.querySelector('#reports li[data-id=\"{report_id}\"] img').naturalWidth > 0")
    screenshot(browser, "operator-3-queue.png")
    assert browser.switch_to.active_element == card  # the first report has the focus
    card.send_keys("e")
    field = browser.switch_to.active_element
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys("Sasha" + Keys.ENTER)
    wait_for(browser, f"document.querySelector('#reports li[data-id=\"{report_id}\"]') === null")
    wait_for(browser, "document.querySelector('#characters tr[data-name=\"Sasha\"]') !== null")
    screenshot(browser, "operator-4-accepted.png")
    with db.session(app) as s:
        row = reports.get(s, report_id)
        assert (row.status, row.decided_label) == ("accepted", "Sasha")
        assert gallery.face_counts(s) == {"Sasha": 1, "Tom": 2}

    # At phone width the review page stays one column.
    browser.set_window_size(390, 844)
    try:
        report(base, face_crops("ed", 1, seed=53)[0])
        browser.get(base + "/review")
        wait_for(browser, "document.body.dataset.ready === '1'")
        assert browser.execute_script("return document.documentElement.scrollWidth") <= 390
        screenshot(browser, "operator-5-phone.png")
    finally:
        browser.set_window_size(1280, 1000)

    problems = [e["message"] for e in browser.get_log("browser")
                if e["level"] == "SEVERE" or "Content Security Policy" in e["message"]]
    assert not problems, problems
