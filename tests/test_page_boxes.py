"""Issue 20, problem 4: boxes move and resize by pointer and keyboard, faces are numbered left
to right with labels that match, no invisible Tab stop, the whole drop zone opens the chooser,
and a phone shows no keyboard hints."""
import re

from conftest import needs_models
from page_support import (
    boxes,
    console_problems,
    desktop,
    faces_found,
    needs_chromium,
    open_page,
    phone,
    pick,
    screenshot,
    wait_for,
)

pytestmark = needs_chromium


def by_number(driver):
    return sorted(boxes(driver), key=lambda b: b["n"])


def labelled(element):
    """The box an element's label announces: "Face 2, 60 by 60 pixels at 10, 20"."""
    n, w, h, x, y = map(int, re.fullmatch(r"Face (\d+), (\d+) by (\d+) pixels at (\d+), (\d+)",
                                          element.get_attribute("aria-label")).groups())
    return {"n": n, "x": x, "y": y, "w": w, "h": h}


@needs_models
def test_numbered_left_to_right_with_matching_labels(server, browser, demo_picture):
    from selenium.webdriver.common.by import By
    path, comp = demo_picture
    open_page(browser, server.base)
    pick(browser, path)
    assert faces_found(browser) == 2
    shown = by_number(browser)
    assert [b["n"] for b in shown] == [1, 2]
    # Eileen stands left of Sylvie (and her face is the smaller one): she is face 1.
    assert shown[0]["x"] < shown[1]["x"]
    eileen = dict(comp.faces)["eileen"]
    assert abs(shown[0]["x"] - eileen[0]) < eileen[2] / 2
    for n, li in enumerate(browser.find_elements(By.CSS_SELECTOR, "#crops > li"), start=1):
        assert li.find_element(By.CSS_SELECTOR, ".crop-name").text == f"Face {n}"
        assert li.find_element(By.CSS_SELECTOR, "[data-action=delete-face]").get_attribute("aria-label") == f"Delete face {n}"
        assert li.find_element(By.CSS_SELECTOR, ".crop-thumb").get_attribute("aria-label") == f"Face {n}"
        assert shown[n - 1]["label"].startswith(f"Face {n},")


@needs_models
def test_boxes_move_and_resize_by_keyboard_and_pointer(server, browser, demo_picture):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    path, comp = demo_picture
    open_page(browser, server.base)
    pick(browser, path)
    faces_found(browser)

    # Keyboard only: add a box, then move and resize it with the arrow keys.
    browser.find_element(By.ID, "add-box").send_keys(Keys.ENTER)
    box = browser.switch_to.active_element
    assert box.get_attribute("data-source") == "drawn"
    start = labelled(box)
    step = round(max(comp.image.shape[:2]) / 100)
    box.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT, Keys.ARROW_RIGHT, Keys.ARROW_UP)
    # (In one WebDriver key sequence a second SHIFT would release the first: one call each.)
    box.send_keys(Keys.SHIFT + Keys.ARROW_DOWN)
    box.send_keys(Keys.SHIFT + Keys.ARROW_LEFT + Keys.ARROW_LEFT)
    focused = browser.switch_to.active_element  # focus stays on the box while it moves
    assert focused.get_attribute("data-source") == "drawn"
    moved = labelled(focused)
    assert (moved["x"], moved["y"]) == (start["x"] + 3 * step, start["y"] - step)
    assert (moved["w"], moved["h"]) == (start["w"] - 2 * step, start["h"] + step)
    drawn = next(b for b in boxes(browser) if b["source"] == "drawn")  # and it is drawn there
    assert all(abs(drawn[k] - moved[k]) <= 2 for k in "xywh"), (drawn, moved)
    screenshot(browser, "page-boxes-keyboard.png")
    browser.switch_to.active_element.send_keys(Keys.DELETE)
    assert not [b for b in boxes(browser) if b["source"] == "drawn"]

    # Pointer: drag a detected box by its middle, then its bottom-right corner.
    first = browser.find_element(By.CSS_SELECTOR, "#boxes .box")
    before = by_number(browser)[0]
    scale = comp.image.shape[1] / browser.find_element(By.ID, "boxes").size["width"]
    ActionChains(browser).move_to_element(first).click_and_hold().move_by_offset(30, 20) \
        .move_by_offset(30, 20).release().perform()
    after = by_number(browser)[0]
    assert abs(after["x"] - (before["x"] + 60 * scale)) <= 3 and abs(after["y"] - (before["y"] + 40 * scale)) <= 3
    assert (after["w"], after["h"]) == (before["w"], before["h"])
    corner = first.find_element(By.CSS_SELECTOR, ".handle.se")
    ActionChains(browser).move_to_element(corner).click_and_hold().move_by_offset(25, 10).release().perform()
    resized = by_number(browser)[0]
    assert abs(resized["w"] - (after["w"] + 25 * scale)) <= 3 and abs(resized["h"] - (after["h"] + 10 * scale)) <= 3
    assert (resized["x"], resized["y"]) == (after["x"], after["y"])
    assert not console_problems(browser)


@needs_models
def test_every_tab_stop_is_visible_and_the_whole_drop_zone_opens_the_chooser(server, browser, demo_picture):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    open_page(browser, server.base)
    pick(browser, demo_picture[0])
    faces_found(browser)
    browser.execute_script("document.activeElement.blur(); window.scrollTo(0, 0)")
    seen = []
    for _ in range(40):
        browser.switch_to.active_element.send_keys(Keys.TAB)
        stop = browser.execute_script("""
            const el = document.activeElement, r = el.getBoundingClientRect(), s = getComputedStyle(el);
            return {tag: el.tagName, id: el.id, cls: el.className, w: r.width, h: r.height,
                    visible: s.visibility !== 'hidden' && s.opacity !== '0' && !el.closest('.visually-hidden')};""")
        if stop["tag"] == "BODY" or stop in seen:
            break
        seen.append(stop)
        assert stop["visible"] and stop["w"] > 4 and stop["h"] > 4, stop
    assert {"drop-zone", "add-box", "identify"} <= {s["id"] for s in seen}
    assert sum(1 for s in seen if "box" in s["cls"].split()) == 2  # the boxes take focus

    # A click on the zone's words opens the file chooser, as a click on its padding does.
    browser.execute_script("""
        window.chooserOpened = 0;
        const input = document.getElementById('file-input');
        input.click = () => { window.chooserOpened++; };""")
    for selector in ("#drop-zone strong", "#drop-zone .choose", "#drop-zone"):
        browser.find_element(By.CSS_SELECTOR, selector).click()
    assert browser.execute_script("return window.chooserOpened") == 3


@needs_models
def test_phone_shows_no_keyboard_hints_and_draws_by_touch(server, browser, demo_picture):
    from selenium.webdriver.common.actions import interaction
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput
    from selenium.webdriver.common.by import By
    phone(browser)
    try:
        open_page(browser, server.base)
        text = browser.find_element(By.TAG_NAME, "body").text
        assert "Ctrl+V" not in text and "Enter" not in text
        pick(browser, demo_picture[0])
        count = faces_found(browser)
        assert "arrow keys" not in browser.find_element(By.TAG_NAME, "body").text
        layer = browser.find_element(By.ID, "boxes")
        rect = browser.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.left, r.top, r.width, r.height]", layer)
        finger = PointerInput(interaction.POINTER_TOUCH, "finger")
        actions = ActionBuilder(browser, mouse=finger)
        x0, y0 = int(rect[0] + 10), int(rect[1] + rect[3] - 60)
        actions.pointer_action.move_to_location(x0, y0).pointer_down().move_to_location(x0 + 40, y0 + 40) \
            .move_to_location(x0 + 50, y0 + 50).pointer_up()
        actions.perform()
        wait_for(browser, f"document.querySelectorAll('#boxes .box').length === {count + 1}", timeout=5)
        assert browser.execute_script("return document.documentElement.scrollWidth") <= 390
        screenshot(browser, "page-boxes-phone.png")
    finally:
        desktop(browser)
