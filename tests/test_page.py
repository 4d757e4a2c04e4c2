"""The page in a real headless Debian Chromium: detect, draw, identify, report, cut out;
a server without models; pictures dropped and pasted. Helpers and fixtures: page_support.py.
"""
from conftest import needs_models, read_image
from page_support import (
    Server,
    console_problems,
    deliver,
    desktop,
    faces_found,
    needs_chromium,
    open_page,
    phone,
    pick,
    screenshot,
    wait_for,
)
from PIL import Image

from app.storage import db, images, reports

pytestmark = needs_chromium


@needs_models
def test_whole_flow_in_chromium(server, browser, demo_picture):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    path, comp = demo_picture
    open_page(browser, server.base)
    screenshot(browser, "page-0-empty.png")
    pick(browser, path)

    # Auto-detected boxes appear, each with its crop.
    detected = faces_found(browser)
    assert detected >= 1
    assert len(browser.find_elements(By.CSS_SELECTOR, "#crops li[data-source=auto]")) == detected
    screenshot(browser, "page-1-detected.png")

    # Keyboard: "Add a box by hand" with Enter puts focus on the new box; Delete removes it.
    browser.find_element(By.ID, "add-box").send_keys(Keys.ENTER)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#crops li[data-source=drawn]")) == 1
    focused = browser.switch_to.active_element
    assert "box" in focused.get_attribute("class")
    focused.send_keys(Keys.DELETE)
    assert not browser.find_elements(By.CSS_SELECTOR, "#crops li[data-source=drawn]")

    # Hand-drawn box: drag on the picture, in the lower left, away from the faces.
    layer = browser.find_element(By.ID, "boxes")
    size = layer.size
    start = (-size["width"] // 2 + 20, size["height"] // 2 - 120)
    ActionChains(browser).move_to_element_with_offset(layer, *start).click_and_hold() \
        .move_by_offset(40, 30).move_by_offset(40, 30).release().perform()
    drawn = browser.find_elements(By.CSS_SELECTOR, "#crops li[data-source=drawn]")
    assert len(drawn) == 1
    drawn[0].find_element(By.CSS_SELECTOR, "[data-action=delete-face]").click()
    assert not browser.find_elements(By.CSS_SELECTOR, "#crops li[data-source=drawn]")
    ActionChains(browser).move_to_element_with_offset(layer, *start).click_and_hold() \
        .move_by_offset(80, 60).release().perform()
    crops = browser.find_elements(By.CSS_SELECTOR, "#crops > li")
    assert len(crops) == detected + 1

    # Identify all crops at once.
    browser.find_element(By.ID, "identify").click()
    wait_for(browser, f"document.querySelectorAll('#crops .result .headline').length === {detected + 1}")
    for li in browser.find_elements(By.CSS_SELECTOR, "#crops > li"):
        assert li.find_element(By.CSS_SELECTOR, ".result .headline").text
        assert li.find_elements(By.CSS_SELECTOR, ".predictions li .fill")
    screenshot(browser, "page-2-identified.png")

    # Report the first crop with a Japanese name, typed in the inline field.
    first = browser.find_elements(By.CSS_SELECTOR, "#crops > li")[0]
    first.find_element(By.CSS_SELECTOR, "[data-action=report-open]").click()
    field = first.find_element(By.CSS_SELECTOR, "form.report input")
    assert field == browser.switch_to.active_element  # focus moved to the field
    field.send_keys("平沢唯")
    first.find_element(By.CSS_SELECTOR, "form.report button[type=submit]").click()
    wait_for(browser, "document.querySelector('#crops li .report-status[data-state=saved]') !== null")
    # Read through the server's own database (the app's session), as the review page does.
    with db.session(server.app) as s:
        stored = reports.list_reports(s)
    assert [r.label for r in stored] == ["平沢唯"]
    assert read_image(images.image_path(server.report_dir, stored[0].image_sha256)).size[0] > 20
    screenshot(browser, "page-3-reported.png")

    # Remove the background: the result has the picture's size and real transparency.
    browser.find_element(By.ID, "cutout-all").click()
    wait_for(browser, "['done', 'empty', 'error'].includes(document.getElementById('cutout-section').dataset.state)",
             timeout=120)
    assert browser.find_element(By.ID, "cutout-section").get_attribute("data-state") == "done", \
        browser.find_element(By.ID, "cutout-status").text
    shown = browser.execute_script("""
        const c = document.getElementById('cutout-canvas');
        const a = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let lo = 255, hi = 0;
        for (let i = 3; i < a.length; i += 4) { lo = Math.min(lo, a[i]); hi = Math.max(hi, a[i]); }
        return {w: c.width, h: c.height, lo, hi};
    """)
    assert (shown["w"], shown["h"]) == (comp.image.shape[1], comp.image.shape[0])
    assert shown["lo"] < 128 < shown["hi"], shown
    browser.execute_script("document.getElementById('cutout-section').scrollIntoView()")
    screenshot(browser, "page-4-cutout.png")

    # No Content-Security-Policy violation and no script error on the way.
    assert not console_problems(browser)


def test_phone_width_and_no_model_message(browser, tmp_path):
    """At 390 px on a touch screen the page stays one column, and a server without models says so."""
    s = Server({"MODEL_DIR": str(tmp_path), "REPORT_DIR": str(tmp_path / "r")})
    try:
        phone(browser)
        browser.get(s.base + "/")
        message = wait_for(browser, "document.getElementById('server-status').textContent", timeout=20)
        assert "no classifier model" in message and "setup.sh" in message
        assert browser.execute_script("return document.documentElement.scrollWidth") <= 390  # no sideways scroll
        screenshot(browser, "page-5-phone-no-model.png")
    finally:
        desktop(browser)
        s.close()


@needs_models
def test_drop_and_paste_a_picture(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    open_page(browser, server.base)

    # Something that is not a picture is refused with a message, and nothing is loaded.
    deliver(browser, [(b"not a picture", "text/plain", "notes.txt")])
    error = wait_for(browser, "!document.getElementById('notice').hidden && "
                              "document.getElementById('notice').textContent", timeout=10)
    assert "notes.txt" in error and "PNG, JPEG or WebP" in error
    assert browser.find_element(By.ID, "workspace").get_attribute("hidden")

    for how, size in (("drop", (320, 200)), ("paste", (240, 300))):
        picture = tmp_path / f"{how}.png"
        Image.new("RGB", size, (200, 120, 40)).save(picture)
        deliver(browser, [(picture.read_bytes(), "image/png", picture.name)], how)
        wait_for(browser, f"document.getElementById('picture').naturalWidth === {size[0]} && "
                          "!document.getElementById('workspace').hidden", timeout=20)
        assert browser.execute_script("return document.getElementById('picture').naturalHeight") == size[1]
        assert browser.find_element(By.ID, "notice").get_attribute("hidden")
    assert not console_problems(browser)
