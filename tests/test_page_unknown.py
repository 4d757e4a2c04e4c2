"""An unknown face on the page says why in words, with its closest guess, in the reader's language
(real headless Chromium over the real app; screenshots in test-artifacts/)."""
import re

from conftest import DEMO_CACHE, needs_models
from page_support import faces_found, needs_chromium, open_page, pick, screenshot, wait_for
from PIL import Image

pytestmark = needs_chromium

# The closest guess in words, as en.js, ja.js and zh-Hans.js word it: a name and a whole percentage.
NOT_SURE = {"en": r"^Not sure: closest is (.+), (\d{1,3})%$",
            "ja": r"^自信がありません：いちばん近いのは (.+)（(\d{1,3})%）$"}


def no_face_picture(tmp_path):
    """A background photo of the demo cast's test split, with nobody in it."""
    path = next((DEMO_CACHE / "backgrounds").glob("lecturehall.*"), None)
    if path is None:
        import pytest
        pytest.skip("demo cast not fetched: run scripts/setup.sh --dev")
    out = tmp_path / "empty-hall.png"
    Image.open(path).convert("RGB").resize((640, 480)).save(out)
    return out


@needs_models
def test_a_box_on_no_face_shows_its_closest_guess_in_words(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    picture = no_face_picture(tmp_path)
    for lang, pattern in NOT_SURE.items():
        open_page(browser, server.base, lang)
        pick(browser, picture)
        assert faces_found(browser) == 0
        browser.find_element(By.ID, "add-box").click()  # a box by hand, on the empty hall
        browser.find_element(By.ID, "identify").click()
        wait_for(browser, "document.querySelectorAll('#crops .result .headline').length === 1")
        headline = browser.find_element(By.CSS_SELECTOR, "#crops .result .headline")
        match = re.match(pattern, headline.text)
        assert match, headline.text
        assert "unknown" in headline.get_attribute("class")
        # The words name the first row of the list, with its own percentage rounded.
        first = browser.find_element(By.CSS_SELECTOR, "#crops .predictions li")
        assert first.find_element(By.CSS_SELECTOR, ".name").text == match.group(1)
        shown = float(first.find_element(By.CSS_SELECTOR, ".pct").text.rstrip("%"))
        assert abs(shown - int(match.group(2))) <= 0.5
        # One face's rows never add up past 100%.
        total = sum(float(e.text.rstrip("%")) for e in browser.find_elements(By.CSS_SELECTOR, "#crops .pct"))
        assert total <= 100.0 + 0.5
        screenshot(browser, f"page-unknown-{lang}.png")
