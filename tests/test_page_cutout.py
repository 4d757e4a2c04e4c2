"""Issue 20, problem 3: the cutout panel says what it is doing and can be cancelled, cuts out one
character from its face, changes the background, says when there is nothing to cut out, refuses
a picture over the server's limits before uploading it, and names downloads after the input."""
import io
import time

import numpy as np
from conftest import needs_models
from page_support import (
    canvas_pixels,
    console_problems,
    faces_found,
    needs_chromium,
    open_page,
    pick,
    screenshot,
    wait_for,
)
from PIL import Image

pytestmark = needs_chromium

SETTLED = "['done', 'empty', 'error'].includes(document.getElementById('cutout-section').dataset.state)"


def section_state(driver):
    from selenium.webdriver.common.by import By
    return driver.find_element(By.ID, "cutout-section").get_attribute("data-state")


def alpha_at(driver, points, size):
    """The cutout canvas's alpha at picture pixels [(x, y)] of a picture of `size` (w, h)."""
    return [p[3] for p in canvas_pixels(driver, "#cutout-canvas", [(x / size[0], y / size[1]) for x, y in points])]


def downloaded(driver, name, timeout=20):
    """The bytes of a finished download called `name`."""
    path = driver.download_dir / name
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and not (driver.download_dir / (name + ".crdownload")).exists():
            return path.read_bytes()
        time.sleep(0.1)
    raise AssertionError(f"no download {name}; have {[p.name for p in driver.download_dir.iterdir()]}")


@needs_models
def test_busy_then_cancel_then_one_character_on_backgrounds(server, browser, demo_picture, tmp_path):
    from selenium.webdriver.common.by import By
    path, comp = demo_picture
    width, height = comp.image.shape[1], comp.image.shape[0]
    open_page(browser, server.base)
    pick(browser, path)
    assert faces_found(browser) == 2

    # While it runs the panel says so, with progress and a way out; cancelled, it goes away.
    browser.find_element(By.ID, "cutout-all").click()
    assert section_state(browser) == "busy"
    heading = browser.find_element(By.ID, "cutout-heading").text
    assert heading.startswith("Removing the background") and "removed" not in heading
    assert browser.find_element(By.CSS_SELECTOR, "#cutout-section progress").is_displayed()
    screenshot(browser, "page-cutout-busy.png")
    browser.find_element(By.ID, "cutout-cancel").click()
    assert browser.find_element(By.ID, "cutout-section").get_attribute("hidden")
    assert "error" not in browser.find_element(By.TAG_NAME, "body").text.lower()

    # Face 1 is Eileen (left): her character alone comes out; Sylvie's face stays transparent.
    eileen, sylvie = dict(comp.faces)["eileen"], dict(comp.faces)["sylvie"]
    browser.find_elements(By.CSS_SELECTOR, "[data-action=cutout-face]")[0].click()
    wait_for(browser, SETTLED, timeout=120)
    assert section_state(browser) == "done", browser.find_element(By.ID, "cutout-status").text
    assert browser.find_element(By.ID, "cutout-heading").text == "Background removed: the character of face 1"
    centre = lambda b: (b[0] + b[2] // 2, b[1] + b[3] // 2)  # noqa: E731
    browser.find_element(By.ID, "crop-figure").click()  # uncropped, to look at both faces' places
    wait_for(browser, f"document.getElementById('cutout-canvas').width === {width}")
    inside, other = alpha_at(browser, [centre(eileen), centre(sylvie)], (width, height))
    assert inside > 200 and other == 0, (inside, other)
    browser.find_element(By.ID, "crop-figure").click()
    screenshot(browser, "page-cutout-face.png")

    # A colour background: the corners take the colour, fully opaque; the figure stays.
    browser.find_element(By.CSS_SELECTOR, "input[name=background][value=color]").click()
    browser.execute_script("const c = document.getElementById('bg-color'); c.value = '#3366ff';"
                           "c.dispatchEvent(new Event('input', {bubbles: true}));")
    wait_for(browser, "document.getElementById('cutout-canvas').getContext('2d').getImageData(0, 0, 1, 1).data[2] === 255")
    corner, face = canvas_pixels(browser, "#cutout-canvas", [(0.01, 0.01), (centre(eileen)[0] / width, centre(eileen)[1] / height)])
    assert corner == [51, 102, 255, 255]
    assert face[3] == 255 and face[:3] != [51, 102, 255]
    # One character comes cropped to the figure: smaller than the picture, still holding her face.
    assert browser.find_element(By.ID, "crop-figure").is_selected()
    wait_for(browser, f"document.getElementById('cutout-canvas').width < {width}")
    crop = browser.execute_script("const c = document.getElementById('cutout-canvas'); return [c.width, c.height]")
    assert eileen[2] < crop[0] < width and eileen[3] < crop[1] <= height
    browser.execute_script("document.getElementById('cutout-section').scrollIntoView()")
    screenshot(browser, "page-cutout-colour.png")

    # The blurred original behind the figure, then a picture of the reader's: a red one.
    browser.find_element(By.CSS_SELECTOR, "input[name=background][value=blur]").click()
    wait_for(browser, "document.getElementById('cutout-canvas').getContext('2d').getImageData(0, 0, 1, 1).data[2] !== 255")
    blurred = canvas_pixels(browser, "#cutout-canvas", [(0.01, 0.01)])[0]
    assert blurred[3] == 255 and blurred[:3] != [51, 102, 255]
    red = tmp_path / "red.png"
    Image.new("RGB", (64, 48), (220, 20, 30)).save(red)
    browser.find_element(By.ID, "bg-file").send_keys(str(red))
    wait_for(browser, "document.querySelector('input[name=background][value=image]').checked")
    wait_for(browser, "document.getElementById('cutout-canvas').getContext('2d').getImageData(0, 0, 1, 1).data[0] === 220")
    assert canvas_pixels(browser, "#cutout-canvas", [(0.01, 0.01)])[0] == [220, 20, 30, 255]

    # Before and after: the original in the same frame; full size scrolls instead of shrinking.
    browser.find_element(By.ID, "show-original").click()
    wait_for(browser, "document.getElementById('cutout-canvas').getAttribute('aria-label') === 'The original picture'")
    original = canvas_pixels(browser, "#cutout-canvas", [(0.01, 0.01)])[0]
    assert original[:3] != [220, 20, 30]
    browser.find_element(By.ID, "show-original").click()
    browser.find_element(By.ID, "zoom").click()
    assert browser.find_element(By.ID, "zoom").get_attribute("aria-pressed") == "true"
    shown_width = browser.execute_script("return document.getElementById('cutout-canvas').getBoundingClientRect().width")
    assert round(shown_width) == crop[0]
    browser.find_element(By.CSS_SELECTOR, "input[name=background][value=color]").click()

    # Downloads are named after the input and the face: PNG (no transparency left: colour chosen), JPEG, mask.
    stem = path.stem
    for button, name, fmt in (("png", f"{stem}-face-1-cutout.png", "PNG"), ("jpeg", f"{stem}-face-1-cutout.jpg", "JPEG"),
                              ("mask", f"{stem}-face-1-mask.png", "PNG")):
        browser.find_element(By.CSS_SELECTOR, f"[data-download={button}]").click()
        image = Image.open(io.BytesIO(downloaded(browser, name)))
        assert image.format == fmt and image.size == tuple(crop)
    mask = np.asarray(Image.open(io.BytesIO(downloaded(browser, f"{stem}-face-1-mask.png"))).convert("L"))
    assert mask.min() == 0 and mask.max() == 255
    assert not console_problems(browser)


@needs_models
def test_nothing_to_cut_out_and_limits_checked_before_upload(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    open_page(browser, server.base)

    # A picture with nothing in it (a transparent sheet): the mask comes back empty and the
    # panel says there is nothing to cut out. (The demo model still masks 10-40 % of photos with
    # no character in them: deciding that there is no figure is the model's job, not the page's.)
    sheet = tmp_path / "empty-sheet.png"
    Image.new("RGBA", (800, 600), (200, 180, 160, 0)).save(sheet)
    pick(browser, sheet)
    faces_found(browser)
    browser.find_element(By.ID, "cutout-all").click()
    wait_for(browser, SETTLED, timeout=120)
    assert section_state(browser) == "empty"
    assert browser.find_element(By.ID, "cutout-heading").text.startswith("Nothing to cut out")
    screenshot(browser, "page-cutout-empty.png")

    # 48 megapixels (over the 40 MP limit): refused by the page, nothing is uploaded.
    big = tmp_path / "poster.jpg"
    Image.new("RGB", (8000, 6000), (90, 140, 200)).save(big, quality=80)
    posts = server.count("POST", "/api/cutout")
    pick(browser, big)
    wait_for(browser, "document.getElementById('work-heading').textContent.includes('poster.jpg')", timeout=60)
    browser.find_element(By.ID, "cutout-all").click()
    wait_for(browser, SETTLED, timeout=10)
    assert section_state(browser) == "error"
    message = browser.find_element(By.ID, "cutout-status").text
    assert "48.0 megapixels" in message and "at most 40" in message
    assert server.count("POST", "/api/cutout") == posts
    screenshot(browser, "page-cutout-too-big.png")
    assert not console_problems(browser)
