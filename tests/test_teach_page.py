"""The teach page in a real headless Debian Chromium, with a real `flask worker`: an operator uploads a
generated clip, names a group with the keyboard, and the main page then names that character; the
page fits a phone and speaks the three languages. Screenshots land in test-artifacts/.
"""
import json
import re
import shutil

import pytest
from conftest import ROOT, model_present
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
from queue_support import worker
from sqlalchemy import select

from app.field_bench import episodes, sources
from app.inference.faces import detect_faces
from app.storage import db, gallery
from app.storage.models import TeachFace, TeachGroup
from app.teach import material

TOKEN = "teach-page-token-of-forty-characters!!!!"
LOCALES = ROOT / "static" / "js" / "teach-locales"


def needs_chromium_ok():
    return not any(mark.args[0] for mark in needs_chromium)


def _locale(name):
    return locale_module(LOCALES / f"{name}.js")


def test_every_language_has_every_teach_message():
    en = _locale("en")
    placeholders = lambda v: sorted(set(re.findall(r"\{(\w+)\}", json.dumps(v))))  # noqa: E731
    for name in ("zh-Hans", "ja"):
        other = _locale(name)
        assert sorted(other) == sorted(en), name
        for key, value in en.items():
            assert placeholders(other[key]) == placeholders(value), (name, key)
            assert other[key] != value, (name, key)
    used = set(re.findall(r'data-i18n(?:-[\w-]+)?="([\w.]+)"', (ROOT / "templates" / "teach.html").read_text()))
    used |= set(re.findall(r'"(teach\.[\w.]+)"', (ROOT / "static" / "js" / "teach.js").read_text()))
    assert used <= set(en), used - set(en)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg missing")
@pytest.mark.skipif(not (sources.DEFAULT_CACHE / "live2d" / "unitychan-default").is_dir(),
                    reason="bench Live2D renders missing: run `flask --app wsgi bench fetch`")
@pytest.mark.skipif(not (model_present("demo-embedding") and model_present("demo-classifier")),
                    reason="demo models not installed")
@pytest.mark.skipif(not needs_chromium_ok(), reason="Debian chromium, chromium-driver or opencv.js missing")
def test_upload_name_a_group_and_the_main_page_names_the_character(tmp_path, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    clip = tmp_path / "episode.mp4"
    episodes.render(clip, 0, seed=5, split="test", script=[(3.0, ["unitychan"]), (3.0, ["unitychan", "z16"]),
                                                          (3.0, ["z16"])])
    still = tmp_path / "unitychan.png"
    # A frame of scene 1 (unitychan alone) where the page's cascade finds her face.
    frame = next(f for f in material.frames(clip) if f.seconds < 3.0 and detect_faces(f.rgb))
    Image.fromarray(frame.rgb).save(still)
    report_dir = tmp_path / "reports"
    server = Server({"REPORT_DIR": str(report_dir), "ADMIN_TOKEN": TOKEN})
    try:
        with worker(tmp_path, {"FLASK_REPORT_DIR": str(report_dir), "FLASK_ADMIN_TOKEN": TOKEN}):
            browser.get(server.base + "/teach")
            wait_for(browser, "document.getElementById('signin-form') !== null")
            browser.find_element(By.ID, "token").send_keys(TOKEN + Keys.ENTER)
            wait_for(browser, "document.getElementById('upload-form') !== null")
            browser.find_element(By.ID, "material").send_keys(str(clip))
            browser.find_element(By.CSS_SELECTOR, "#upload-form button[type=submit]").click()
            wait_for(browser, "location.pathname.startsWith('/teach/t')", timeout=180)
            wait_for(browser, "document.querySelectorAll('#groups .group').length === 2")
            wait_for(browser, "Array.from(document.querySelectorAll('#groups img')).every((i) => i.complete "
                              "&& i.naturalWidth > 0)")
            screenshot(browser, "teach-0-groups.png")
            cards = browser.find_elements(By.CSS_SELECTOR, "#groups .group")
            assert all("answers today" in c.text for c in cards)

            # unitychan's group is the one with faces from the first scene (she is alone there).
            with db.session(server.app) as s:
                number = s.scalar(select(TeachGroup.number).join(TeachFace, TeachFace.group_id == TeachGroup.id)
                                  .where(TeachFace.seconds < 3.0).limit(1))
            # Keyboard only: j moves card to card, n opens the name field; type, Enter.
            body = browser.find_element(By.TAG_NAME, "body")
            body.send_keys("j")
            for _ in range(3):
                if browser.execute_script("return document.activeElement.dataset.number") == str(number):
                    break
                browser.switch_to.active_element.send_keys("j")
            assert browser.execute_script("return document.activeElement.dataset.number") == str(number)
            browser.switch_to.active_element.send_keys("n")
            field = browser.switch_to.active_element
            assert field.get_attribute("name") == "name"
            field.send_keys("Unity Chan" + Keys.ENTER)
            wait_for(browser, f"document.querySelector('.group[data-number=\"{number}\"]').classList.contains('named')")
            screenshot(browser, "teach-1-named.png")
            with db.session(server.app) as s:
                enrolled = gallery.face_counts(s)
            assert list(enrolled) == ["Unity Chan"] and enrolled["Unity Chan"] >= 2

            # The review page shows her enrolled faces as thumbnails, and links back here.
            browser.get(server.base + "/review")
            wait_for(browser, "document.querySelectorAll('#characters tr[data-name=\"Unity Chan\"] .thumbs img')"
                              ".length >= 2 && Array.from(document.querySelectorAll('.thumbs img'))"
                              ".every((i) => i.complete && i.naturalWidth > 0)")
            screenshot(browser, "teach-1b-review-thumbnails.png")
            browser.find_element(By.LINK_TEXT, "Teach a cast").click()
            wait_for(browser, "location.pathname === '/teach' && document.querySelector('#sessions a') !== null")
            browser.find_element(By.LINK_TEXT, "episode.mp4").click()
            wait_for(browser, "document.querySelectorAll('#groups .group').length === 2")

            # Phone width: one column, nothing wider than the screen.
            phone(browser)
            try:
                browser.refresh()
                wait_for(browser, "document.querySelectorAll('#groups .group').length === 2")
                screenshot(browser, "teach-2-phone.png")
                wide = browser.execute_script(
                    "return Array.from(document.querySelectorAll('body *')).filter((e) => "
                    "e.getBoundingClientRect().right > 390).map((e) => e.tagName + '#' + e.id + '.' + e.className)")
                assert browser.execute_script("return document.documentElement.scrollWidth") <= 390, wide
            finally:
                desktop(browser)

            # Japanese: the static strings and the cards both change.
            browser.execute_script("localStorage.setItem('lang', 'ja')")
            browser.refresh()
            wait_for(browser, "document.documentElement.lang === 'ja'")
            assert browser.find_element(By.TAG_NAME, "h1").text == "キャストを教える"
            wait_for(browser, "document.querySelector('#groups .group h3') !== null")
            assert "グループ" in browser.find_element(By.CSS_SELECTOR, "#groups .group h3").text
            browser.execute_script("localStorage.setItem('lang', 'en')")
            assert not console_problems(browser)

        # The main page now names her in a frame of the episode.
        open_page(browser, server.base)
        pick(browser, still)
        assert faces_found(browser) >= 1
        browser.find_element(By.ID, "identify").click()
        wait_for(browser, "document.querySelectorAll('#crops > li').length > 0 && document.querySelectorAll("
                          "'#crops .headline').length === document.querySelectorAll('#crops > li').length")
        headlines = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#crops .headline")]
        screenshot(browser, "teach-3-identified.png")
        assert any("Unity Chan" in h for h in headlines), headlines
    finally:
        server.close()
        db.dispose(server.app)
