"""The operator's pages in a real headless Debian Chromium: sign in, teach a character from two
pictures, have the main page name it, and accept a report in the review queue with the keyboard;
the review page in Japanese at phone width, and its three locale files complete.

Screenshots land in test-artifacts/ (git-ignored) for a person to look at.
"""
import io
import json
import re

import pytest
import urllib3
from conftest import ROOT, needs_classifier
from page_support import (
    Server,
    console_problems,
    desktop,
    faces_found,
    locale_module,
    needs_chromium,
    open_page,
    phone,
    pick,
    screenshot,
    wait_for,
)
from PIL import Image
from test_gallery import TOKEN, face_crops, needs_art

from app.storage import db, gallery, reports

LOCALES = ROOT / "static" / "js" / "operator-locales"


def page_test(test):
    """A test that needs Debian chromium, the clip art and a classifier (the locale check needs none)."""
    for mark in (*needs_chromium, needs_art, needs_classifier):
        test = mark(test)
    return test


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The real app with an operator token served over HTTP; yields (base URL, app)."""
    s = Server({"REPORT_DIR": str(tmp_path_factory.mktemp("operator") / "reports"), "ADMIN_TOKEN": TOKEN})
    yield s.base, s.app
    s.close()
    db.dispose(s.app)


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


@page_test
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
    open_page(browser, base)
    pick(browser, picture_path)
    faces_found(browser)
    browser.find_element(By.ID, "add-box").click()
    browser.find_element(By.ID, "identify").click()
    wait_for(browser, "document.querySelectorAll('#crops > li').length > 0 && document.querySelectorAll("
                      "'#crops .headline').length === document.querySelectorAll('#crops > li').length")
    headlines = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#crops .headline")]
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
    phone(browser)
    try:
        report(base, face_crops("ed", 1, seed=53)[0])
        browser.get(base + "/review")
        wait_for(browser, "document.body.dataset.ready === '1'")
        assert browser.execute_script("return document.documentElement.scrollWidth") <= 390
        screenshot(browser, "operator-5-phone.png")
    finally:
        desktop(browser)

    assert not console_problems(browser)


def test_every_language_has_every_review_message():
    en = locale_module(LOCALES / "en.js")
    placeholders = lambda v: sorted(set(re.findall(r"\{(\w+)\}", json.dumps(v))))  # noqa: E731
    for name in ("zh-Hans", "ja"):
        other = locale_module(LOCALES / f"{name}.js")
        assert sorted(other) == sorted(en), name
        for key, value in en.items():
            assert placeholders(other[key]) == placeholders(value), (name, key)
            assert other[key] != value, (name, key)
    used = set(re.findall(r'data-i18n(?:-[\w-]+)?="([\w.]+)"', (ROOT / "templates" / "review.html").read_text()))
    code = (ROOT / "static" / "js" / "operator.js").read_text()
    used |= set(re.findall(r'"(review\.[\w.]+)"', code)) - set(re.findall(r'word\("([\w.]+)"', code))
    assert used <= set(en), used - set(en)
    # Server values go through word(prefix, value): every value the app stores has its message.
    stored = {"review.report.decided": ("accepted", "rejected"), "review.source": ("head", "gallery", "both"),
              "review.face": ("upload", "report", "teach"), "review.serving": ("retrained", "configured"),
              "review.version": ("live", "superseded", "rolled_back", "refused")}
    for prefix, values in stored.items():
        assert f'word("{prefix}"' in code, prefix
        assert {f"{prefix}.{v}" for v in values} <= set(en), prefix


@page_test
def test_review_page_in_japanese_at_phone_width_by_keyboard(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select
    base, app = server
    en = locale_module(LOCALES / "en.js")
    ja = locale_module(LOCALES / "ja.js")
    report(base, face_crops("ed", 1, seed=54)[0], "Ed", "lucy")
    report(base, face_crops("tom", 1, seed=55)[0], "Tom", "eileen")
    browser.get(base + "/review")
    if browser.execute_script("return document.getElementById('signin-form') !== null"):
        browser.find_element(By.ID, "token").send_keys(TOKEN + Keys.ENTER)
    wait_for(browser, "document.body.dataset.ready === '1'")
    phone(browser)
    try:
        # The switch: choosing 日本語 changes the page at once and is remembered on the next visit.
        Select(browser.find_element(By.ID, "lang")).select_by_value("ja")
        wait_for(browser, "document.documentElement.lang === 'ja'")
        browser.refresh()
        wait_for(browser, "document.body.dataset.ready === '1' && document.documentElement.lang === 'ja'")
        wait_for(browser, "Array.from(document.querySelectorAll('#reports img, .thumbs img'))"
                          ".every((i) => i.complete && i.naturalWidth > 0)")
        screenshot(browser, "operator-6-ja-phone.png")
        browser.execute_script("document.querySelector('#characters tr[data-name=\"Sasha\"]').scrollIntoView()")
        screenshot(browser, "operator-7-ja-phone-characters.png")
        browser.execute_script("window.scrollTo(0, 0)")
        assert browser.find_element(By.TAG_NAME, "h1").text == ja["review.heading"]
        assert [h.text for h in browser.find_elements(By.TAG_NAME, "h2")] == [
            ja["review.queue.heading"], ja["review.gallery.heading"], ja["review.model.heading"]]
        assert browser.title == ja["review.title"]
        card = browser.find_element(By.CSS_SELECTOR, "#reports .report")
        assert ja["review.report.accept"] in card.text and ja["review.report.reject"] in card.text
        assert browser.find_element(By.ID, "retrain").text == ja["review.model.retrain"]
        assert browser.find_element(By.ID, "enrol-submit").text == ja["review.enrol.submit"]
        # No English left: no English message (placeholders aside) is in the visible text.
        text = browser.execute_script("return document.body.innerText")
        for key, value in en.items():
            for form in value.values() if isinstance(value, dict) else [value]:
                for piece in re.split(r"\{\w+\}", form):
                    piece = piece.strip(" .:()")
                    if len(piece) >= 4 and key != "lang.label":
                        assert piece not in text, (key, piece)
        assert browser.execute_script("return document.documentElement.scrollWidth") <= 390

        # Keyboard at phone width, in Japanese: x selects the focused report, the bulk button counts it.
        assert browser.switch_to.active_element == card
        card.send_keys("x")
        assert browser.find_element(By.ID, "bulk-accept").text == ja["review.bulk.acceptN"].replace("{n}", "1")
        card.send_keys("j")
        second = browser.switch_to.active_element
        assert second != card and "report" in second.get_attribute("class")
        second.send_keys("r")
        wait_for(browser, "document.querySelector('#notice').textContent === "
                          + json.dumps(ja["review.done.rejected"]))
    finally:
        browser.execute_script("localStorage.setItem('lang', 'en')")
        desktop(browser)
    assert not console_problems(browser)
