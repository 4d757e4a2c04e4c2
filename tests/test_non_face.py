"""A box on something that is not a character's face is answered "unknown" (issue 20, problem 2).

The demo classifier learnt faces of no one from face-sized crops away from every face
(`dataset demo-faces --non-face`). Here: crops it never saw, from the demo cast's test split only
(its two background photos, and its sprites' hair, clothes and legs over white), through the API.
"""
import io

import pytest
from conftest import needs_classifier
from page_support import console_problems, faces_found, needs_chromium, open_page, pick, screenshot, wait_for
from PIL import Image

from app import create_app
from app.demo_data import renpy_cast

needs_art = pytest.mark.skipif(not renpy_cast.is_fetched(), reason="demo cast missing: flask --app wsgi demo fetch")
# Measured on these 42 crops: the nine-character head trained without non-face crops answered 35
# "unknown" (83%, below this bar), the shipped head trained with them 41 (98%).
AT_LEAST = 0.9


def non_face_crops():
    """{description: PIL crop} from the test split: background patches, hair, clothes, legs."""
    spec = renpy_cast.SPLITS["test"]
    crops = {}
    for name, bg in renpy_cast.load_backgrounds(names=spec["backgrounds"]).items():
        h, w = bg.shape[:2]
        side = h // 4
        for i in range(3):
            for j in range(4):
                y, x = i * (h - side) // 2, j * (w - side) // 3
                crops[f"background {name} {i},{j}"] = Image.fromarray(bg[y:y + side, x:x + side])
    for fig in renpy_cast.load_sprites(keys=spec["sprites"]):
        sprite = Image.fromarray(fig.rgba)
        white = Image.new("RGBA", sprite.size, (255, 255, 255, 255))
        white.alpha_composite(sprite)
        rgb = white.convert("RGB")
        fx, fy, fw, fh = fig.face_box
        crops[f"hair {fig.key}"] = rgb.crop((fx, max(0, fy - fh // 2), fx + fw, fy + fh // 4))
        crops[f"clothes {fig.key}"] = rgb.crop((fx - fw // 4, fy + fh, fx + fw + fw // 4, fy + 2 * fh + fh // 2))
        crops[f"legs {fig.key}"] = rgb.crop((fx - fw // 2, rgb.height - 2 * fh, fx + fw + fw // 2, rgb.height))
    return crops


@needs_art
@needs_classifier
def test_boxes_on_no_face_are_answered_unknown(tmp_path):
    client = create_app({"TESTING": True, "REPORT_DIR": str(tmp_path), "TORCH_THREADS": 1}).test_client()
    crops = non_face_crops()
    names, answers = list(crops), []
    for start in range(0, len(names), 16):
        files = []
        for name in names[start:start + 16]:
            data = io.BytesIO()
            crops[name].save(data, "PNG")
            files.append((io.BytesIO(data.getvalue()), "crop.png"))
        response = client.post("/api/identify", data={"faces": files})
        assert response.status_code == 200, response.data
        answers += response.get_json()["faces"]
    named = [(n, a["predictions"][0]["label"], round(a["predictions"][0]["score"], 3))
             for n, a in zip(names, answers) if not a["unknown"]]
    print(f"\n{len(names) - len(named)} of {len(names)} non-face crops answered unknown; named: {named}")
    assert len(names) == 42 and len(named) <= (1 - AT_LEAST) * len(names), named


@needs_art
@needs_classifier
@needs_chromium[0]
@needs_chromium[1]
def test_a_box_drawn_on_a_photo_without_characters_says_unknown_on_the_page(server, browser, tmp_path):
    """The page, end to end: a test-split photo with no one in it, a box added by hand, Identify."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    photos = renpy_cast.load_backgrounds(names=renpy_cast.SPLITS["test"]["backgrounds"])
    path = tmp_path / "no-one.png"
    Image.fromarray(photos["uni"]).resize((640, 480)).save(path)
    open_page(browser, server.base)
    pick(browser, path)
    assert faces_found(browser) == 0
    browser.find_element(By.ID, "add-box").send_keys(Keys.ENTER)
    browser.find_element(By.ID, "identify").click()
    wait_for(browser, "document.querySelectorAll('#crops .headline').length === 1")
    headline = browser.find_element(By.CSS_SELECTOR, "#crops .headline")
    assert "unknown" in headline.get_attribute("class").split()
    # Why, in words: nothing close, or the closest guess (tests/test_page_unknown.py has both).
    assert headline.text == "Unknown character: no name comes close" or \
        headline.text.startswith("Not sure: closest is "), headline.text
    screenshot(browser, "page-non-face-unknown.png")
    assert not console_problems(browser)
