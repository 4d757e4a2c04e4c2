"""Issue 20, problem 1: a file that is not a picture leaves the page as it was."""
from conftest import needs_models
from page_support import boxes, console_problems, faces_found, needs_chromium, open_page, pick, screenshot, wait_for
from PIL import Image

pytestmark = needs_chromium

SNAPSHOT = """
const img = document.getElementById('picture');
return {src: img.getAttribute('src'), width: img.naturalWidth, heading: document.getElementById('work-heading').textContent,
        names: Array.from(document.querySelectorAll('#crops .headline')).map((h) => h.textContent),
        crops: document.querySelectorAll('#crops > li').length};
"""


@needs_models
def test_a_bad_file_keeps_the_picture_faces_and_names(server, browser, demo_picture, tmp_path):
    from selenium.webdriver.common.by import By
    path, comp = demo_picture
    webp = tmp_path / "cast.webp"
    with Image.open(path) as picture:
        picture.save(webp, "WEBP", quality=90)
    open_page(browser, server.base)
    pick(browser, webp)
    assert faces_found(browser) >= 1
    browser.find_element(By.ID, "identify").click()
    wait_for(browser, "document.querySelectorAll('#crops .headline').length === document.querySelectorAll('#crops > li').length")
    before, shown_boxes = browser.execute_script(SNAPSHOT), boxes(browser)
    assert before["width"] == comp.image.shape[1] and before["names"]

    # A text file named like a PNG, then a PNG cut off halfway: each refused by name, nothing else changes.
    fake = tmp_path / "x.png"
    fake.write_text("this is not a picture at all", "utf-8")
    truncated = tmp_path / "half.png"
    truncated.write_bytes(path.read_bytes()[:5000])
    for bad, words in ((fake, "not a PNG, JPEG or WebP"), (truncated, "could not be read")):
        pick(browser, bad)
        notice = wait_for(browser, "!document.getElementById('notice').hidden && document.getElementById('notice').textContent")
        assert bad.name in notice and words in notice
        assert browser.execute_script(SNAPSHOT) == before
        assert boxes(browser) == shown_boxes
    screenshot(browser, "page-state-bad-file.png")

    # Naming and cutting out still work on the picture that is shown, with no raw exception text.
    browser.find_element(By.ID, "identify").click()
    wait_for(browser, "document.getElementById('identify').textContent === 'Identify' && "
                      "document.querySelectorAll('#crops .headline').length > 0")
    assert browser.execute_script(SNAPSHOT)["names"] == before["names"]
    browser.find_element(By.ID, "cutout-all").click()
    wait_for(browser, "['done', 'empty', 'error'].includes(document.getElementById('cutout-section').dataset.state)",
             timeout=120)
    assert browser.find_element(By.ID, "cutout-section").get_attribute("data-state") == "done"
    size = browser.execute_script("const c = document.getElementById('cutout-canvas'); return [c.width, c.height]")
    assert size == [comp.image.shape[1], comp.image.shape[0]]
    text = browser.find_element(By.TAG_NAME, "body").text
    assert "Failed to execute" not in text and "Error" not in text
    assert not console_problems(browser)
