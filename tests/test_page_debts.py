"""Issue 32, the page's small debts, in Debian Chromium at desktop and phone width, in English and
Japanese: a status line that follows the boxes, undo, the sample picture and the known characters
on a first visit, a cutout on a smaller copy said and offered at full size, a duplicate report
said, picture links pasted and dropped (fetched by the browser, never by the server), a strip
whose thumbnails show and whose current picture stays in view, and the last pictures kept in the
browser across a reload until forgotten."""
import base64
import http.server
import io
import threading
import time

import numpy as np
import pytest
from conftest import encode, needs_models
from page_support import (
    Server,
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
from PIL import Image

from app.demo_data import sample
from app.web import static_files

pytestmark = [*needs_chromium, needs_models]

LINE = "document.getElementById('detect-status').textContent"
# The sample is 960 x 640; the server cuts out at most 300,000 pixels unless asked for full size.
CUTOUT_PIXELS, FULL_PIXELS = 300_000, 1_000_000


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app with the demo models, a sample picture made from the demo cast in a vendor folder of
    its own (the installed files linked in), a small cutout budget and a larger full-size one."""
    vendor = tmp_path_factory.mktemp("vendor")
    for path in static_files.VENDOR.iterdir():
        if path.name != sample.SAMPLE_NAME:
            (vendor / path.name).symlink_to(path.resolve())
    try:
        sample.write_sample(vendor / sample.SAMPLE_NAME)
    except (OSError, RuntimeError) as exc:
        pytest.skip(f"no sample picture (demo cast not fetched?): {exc}")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(static_files, "VENDOR", vendor)
        s = Server({"REPORT_DIR": str(tmp_path_factory.mktemp("debts") / "reports"), "CUTOUT_MODEL": "demo-cutout",
                    "MAX_CUTOUT_PIXELS": CUTOUT_PIXELS, "MAX_CUTOUT_FULL_PIXELS": FULL_PIXELS})
        yield s
        s.close()


def try_sample(driver):
    from selenium.webdriver.common.by import By
    driver.find_element(By.ID, "try-sample").click()
    wait_for(driver, "document.getElementById('work-heading').textContent.includes('sample-cast.webp')")
    return faces_found(driver)


def draw(driver, touch):
    """Drag out a box in the picture's lower left, by mouse or by finger."""
    from selenium.webdriver.common.actions import interaction
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput
    from selenium.webdriver.common.by import By
    layer = driver.find_element(By.ID, "boxes")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", layer)
    left, top, width, height = driver.execute_script(
        "const r = arguments[0].getBoundingClientRect(); return [r.left, r.top, r.width, r.height]", layer)
    pointer = PointerInput(interaction.POINTER_TOUCH, "finger") if touch else PointerInput(interaction.POINTER_MOUSE, "mouse")
    actions = ActionBuilder(driver, mouse=pointer)
    x0, y0 = int(left + width * 0.03), int(top + height * 0.75)
    actions.pointer_action.move_to_location(x0, y0).pointer_down().move_to_location(x0 + 30, y0 + 30) \
        .move_to_location(x0 + 50, y0 + 50).pointer_up()
    actions.perform()


def faces(driver):
    return driver.execute_script("return document.querySelectorAll('#boxes .box').length")


WORDS = {
    "en": {"faces": "{n} faces", "found": "2 found by the detector", "drawn": "1 drawn by hand",
           "named": "of {n} named", "none_left": "No boxes left", "sample": "Try a sample picture",
           "knows": "Characters this server knows"},
    "ja": {"faces": "顔 {n} 個", "found": "検出器が 2 個", "drawn": "手描き 1 個",
           "named": "{n} 個中", "none_left": "枠がありません", "sample": "サンプル画像で試す",
           "knows": "このサーバーが知っているキャラクター"},
}


@pytest.mark.parametrize("lang, width", [("en", "desktop"), ("ja", "phone")])
def test_first_visit_then_a_status_line_that_follows_the_boxes_and_undo(server, browser, lang, width):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    words = WORDS[lang]
    (phone if width == "phone" else desktop)(browser)
    try:
        open_page(browser, server.base, lang)
        # First visit: a sample to try and who the server knows, before any picture.
        button = browser.find_element(By.ID, "try-sample")
        assert button.is_displayed() and button.text == words["sample"]
        known = wait_for(browser, "document.getElementById('characters').textContent")
        assert words["knows"] in known and browser.find_element(By.ID, "characters").is_displayed()
        screenshot(browser, f"debts-first-visit-{lang}-{width}.png")

        assert try_sample(browser) == 2
        assert not browser.find_element(By.ID, "try-sample").is_displayed()
        line = browser.execute_script("return " + LINE)
        assert words["faces"].format(n=2) in line and words["found"] in line and words["drawn"] not in line

        # Draw: the line counts the drawn box at once.
        draw(browser, touch=width == "phone")
        wait_for(browser, "document.querySelectorAll('#boxes .box').length === 3", timeout=5)
        line = browser.execute_script("return " + LINE)
        assert words["faces"].format(n=3) in line and words["drawn"] in line, line

        # Delete a found box (its Delete button): the line says 2 again; undo (Ctrl+Z) brings it back.
        browser.find_element(By.CSS_SELECTOR, "#crops li[data-source=auto] [data-action=delete-face]").click()
        wait_for(browser, LINE + f".includes({words['faces'].format(n=2)!r})", timeout=5)
        assert faces(browser) == 2 and words["drawn"] in browser.execute_script("return " + LINE)
        if width == "desktop":
            browser.find_element(By.TAG_NAME, "body").send_keys(Keys.CONTROL, "z")
        else:
            browser.find_element(By.ID, "undo").click()  # a phone has no keyboard: the button
        wait_for(browser, LINE + f".includes({words['faces'].format(n=3)!r})", timeout=5)
        assert faces(browser) == 3 and words["found"] in browser.execute_script("return " + LINE)

        # Name them: the line counts the named faces (what the page shows as known names).
        browser.find_element(By.ID, "identify").click()
        wait_for(browser, "document.querySelectorAll('#crops .result .headline').length === 3", timeout=120)
        named = browser.execute_script("return document.querySelectorAll('#crops .result .headline:not(.unknown)').length")
        line = browser.execute_script("return " + LINE)
        assert named >= 1 and words["named"].format(n=3) in line and f"{named}" in line, line
        screenshot(browser, f"debts-status-{lang}-{width}.png")

        # Delete every box: the line says none are left (not "none found"), and undo restores the last.
        while faces(browser):
            browser.find_element(By.CSS_SELECTOR, "#crops [data-action=delete-face]").click()
        assert words["none_left"] in wait_for(browser, LINE)
        browser.find_element(By.ID, "undo").click()
        wait_for(browser, "document.querySelectorAll('#boxes .box').length === 1", timeout=5)
        assert browser.execute_script("return document.documentElement.scrollWidth") <= browser.execute_script(
            "return window.innerWidth")
        assert not console_problems(browser)
    finally:
        desktop(browser)


def test_a_cutout_on_a_smaller_copy_says_so_and_offers_the_full_size(server, browser):
    from selenium.webdriver.common.by import By
    open_page(browser, server.base, "ja")
    try_sample(browser)
    browser.find_element(By.ID, "cutout-all").click()
    wait_for(browser, "['done', 'empty', 'error'].includes(document.getElementById('cutout-section').dataset.state)",
             timeout=120)
    size = browser.execute_script("const c = document.getElementById('cutout-canvas'); return [c.width, c.height]")
    assert size[0] * size[1] <= CUTOUT_PIXELS and size[0] < 960
    note = browser.find_element(By.ID, "cutout-size").text
    assert f"{size[0]}×{size[1]}" in note and "960×640" in note
    full = browser.find_element(By.ID, "cutout-full")
    assert full.is_displayed() and full.text == "元のサイズで切り抜く"
    # Show original: the same part of the picture, though the picture is larger than the cutout.
    browser.find_element(By.ID, "show-original").click()
    wait_for(browser, "document.getElementById('cutout-canvas').dataset.key.endsWith('|true|0')")
    time.sleep(0.5)  # drawn once the original is composed
    shown = Image.open(io.BytesIO(base64.b64decode(browser.execute_script(
        "return document.getElementById('cutout-canvas').toDataURL('image/png').split(',')[1]")))).convert("RGB")
    with Image.open(static_files.VENDOR / sample.SAMPLE_NAME) as picture:
        whole = picture.convert("RGB")
    small = (24, 16)  # compared coarsely: the whole picture, not its top-left corner at the cutout's size
    diff = np.abs(np.asarray(shown.resize(small, Image.BOX), float) - np.asarray(whole.resize(small, Image.BOX), float))
    corner = whole.crop((0, 0, *shown.size)).resize(small, Image.BOX)
    assert diff.mean() < 6 < np.abs(np.asarray(shown.resize(small, Image.BOX), float) - np.asarray(corner, float)).mean()
    screenshot(browser, "debts-cutout-smaller-ja.png")
    browser.find_element(By.ID, "show-original").click()

    full.click()
    wait_for(browser, "document.getElementById('cutout-section').dataset.state === 'done' && "
                      "document.getElementById('cutout-canvas').width === 960", timeout=120)
    assert "960×640" in browser.find_element(By.ID, "cutout-size").text
    assert not browser.find_element(By.ID, "cutout-full").is_displayed()
    assert server.count("POST", "/api/cutout") >= 2
    assert not console_problems(browser)


def test_the_same_report_twice_is_already_reported(server, browser):
    from selenium.webdriver.common.by import By
    open_page(browser, server.base)
    try_sample(browser)
    browser.find_element(By.ID, "identify").click()
    wait_for(browser, "document.querySelectorAll('#crops .result .headline').length === 2", timeout=120)
    statuses = []
    for _ in range(2):
        first = browser.find_elements(By.CSS_SELECTOR, "#crops > li")[0]
        first.find_element(By.CSS_SELECTOR, "[data-action=report-open]").click()
        field = first.find_element(By.CSS_SELECTOR, "form.report input")
        field.clear()
        field.send_keys("Lucy")
        first.find_element(By.CSS_SELECTOR, "form.report button[type=submit]").click()
        state = wait_for(browser, "['saved', 'duplicate', 'error'].includes(document.querySelector('#crops li "
                                  ".report-status').dataset.state) && document.querySelector('#crops li .report-status')")
        statuses.append((state.get_attribute("data-state"), state.text))
        # The next send must wait for a new answer: forget the shown one.
        browser.execute_script("document.querySelector('#crops li .report-status').dataset.state = 'idle'")
    assert statuses[0][0] == "saved" and "Report saved" in statuses[0][1]
    assert statuses[1][0] == "duplicate" and "Already reported, thank you" in statuses[1][1]


class PictureSite:
    """Another origin on loopback serving one picture twice: /open/cast.png with CORS allowed
    (Access-Control-Allow-Origin: *), /closed/cast.png without."""

    def __init__(self, picture):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path not in ("/open/cast.png", "/closed/cast.png"):
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(picture)))
                if self.path.startswith("/open/"):
                    self.send_header("Access-Control-Allow-Origin", "*")
                self.end_headers()
                self.wfile.write(picture)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.httpd.server_port}"


PASTE_TEXT = """
const [text, how] = arguments;
const dt = new DataTransfer();
if (how === 'drop') {
  dt.setData('text/uri-list', text);
  const zone = document.getElementById('drop-zone');
  zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: dt, bubbles: true, cancelable: true}));
  zone.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
} else {
  dt.setData('text/plain', text);
  document.body.dispatchEvent(new ClipboardEvent('paste', {clipboardData: dt, bubbles: true, cancelable: true}));
}
"""


def test_links_pasted_or_dropped_are_fetched_by_the_browser_where_allowed(server, browser, demo_picture):
    site = PictureSite(demo_picture[0].read_bytes())
    try:
        open_page(browser, server.base)
        before = len(server.requests)
        browser.execute_script(PASTE_TEXT, site.base + "/open/cast.png", "paste")
        wait_for(browser, "document.getElementById('work-heading').textContent.includes('cast.png')")
        assert faces_found(browser) >= 1
        # A site that does not allow it: a clear message, the picture shown stays.
        browser.execute_script(PASTE_TEXT, site.base + "/closed/cast.png", "drop")
        notice = wait_for(browser, "!document.getElementById('notice').hidden && document.getElementById('notice').textContent")
        assert "127.0.0.1" in notice and "Save the picture to your computer first" in notice
        assert browser.execute_script("return document.getElementById('app').dataset.pictures") == "1"
        # Dropped with CORS allowed: a second picture.
        browser.execute_script(PASTE_TEXT, site.base + "/open/cast.png", "drop")
        wait_for(browser, "document.getElementById('app').dataset.pictures === '2'")
        # Text that is not a link is not taken for one.
        browser.execute_script(PASTE_TEXT, "just some words", "paste")
        # The server was never asked for the links (it fetches no URLs): only its own API and files.
        assert not [p for _, p in server.requests[before:] if "cast.png" in p or "127.0.0.1" in p]
        problems = [p for p in console_problems(browser) if "closed/cast.png" not in p and "CORS" not in p]
        assert not problems, problems
    finally:
        site.httpd.shutdown()
        site.httpd.server_close()


def test_the_strip_shows_every_thumbnail_and_keeps_the_current_in_view(server, browser, demo_picture, tmp_path):
    from selenium.webdriver.common.by import By
    large = tmp_path / "large.png"  # 6000 x 4000: a large pick
    large.write_bytes(encode(np.full((4000, 6000, 3), (40, 120, 200), np.uint8)))
    phone(browser)
    try:
        open_page(browser, server.base)
        paths = [demo_picture[0]] * 5 + [large]
        pick(browser, *paths)
        wait_for(browser, f"document.querySelectorAll('#queue > li').length === {len(paths)}", timeout=60)
        # Every thumbnail has pixels (a small copy made once decoded), the large one too.
        wait_for(browser, "Array.from(document.querySelectorAll('#queue img')).every((i) => i.complete && i.naturalWidth > 0)",
                 timeout=30)
        assert max(browser.execute_script("return Array.from(document.querySelectorAll('#queue img')).map((i) => i.naturalWidth)")) <= 160
        # Choosing the last picture scrolls it into the strip's view.
        browser.execute_script("document.querySelector('#queue > li:last-child .queue-pick').click()")
        wait_for(browser, "document.querySelector('#queue > li:last-child .queue-pick').getAttribute('aria-current') === 'true'")
        inside = browser.execute_script("""
            const strip = document.getElementById('queue').getBoundingClientRect();
            const item = document.querySelector('#queue > li:last-child').getBoundingClientRect();
            return item.left >= strip.left - 1 && item.right <= strip.right + 1;""")
        assert inside
        assert browser.execute_script("return document.documentElement.scrollWidth") <= 390
        screenshot(browser, "debts-strip-phone.png")
        assert browser.find_element(By.ID, "workspace").is_displayed()
    finally:
        desktop(browser)


def test_a_reload_keeps_pictures_boxes_names_and_cutouts_until_forgotten(server, browser):
    from selenium.webdriver.common.by import By
    open_page(browser, server.base, "zh-Hans")
    assert not browser.find_element(By.ID, "history").is_displayed()  # nothing kept yet
    try_sample(browser)
    draw(browser, touch=False)
    wait_for(browser, "document.querySelectorAll('#boxes .box').length === 3", timeout=5)
    browser.find_element(By.ID, "identify").click()
    wait_for(browser, "document.querySelectorAll('#crops .result .headline').length === 3", timeout=120)
    browser.find_element(By.ID, "cutout-all").click()
    wait_for(browser, "document.getElementById('cutout-section').dataset.state === 'done'", timeout=120)
    kept = wait_for(browser, "!document.getElementById('history').hidden && document.getElementById('history-text').textContent")
    assert "1 张图片只保存在这个浏览器里" in kept
    before = browser.execute_script("""return {
        boxes: Array.from(document.querySelectorAll('#boxes .box')).map((b) => b.getAttribute('aria-label')),
        names: Array.from(document.querySelectorAll('#crops .headline')).map((h) => h.textContent),
        cutout: [document.getElementById('cutout-canvas').width, document.getElementById('cutout-canvas').height],
        line: document.getElementById('detect-status').textContent}""")
    cutouts = server.count("POST", "/api/cutout")
    identifies = server.count("POST", "/api/identify")

    open_page(browser, server.base, "zh-Hans", keep_history=True)  # a reload
    wait_for(browser, "document.getElementById('cutout-section').dataset.state === 'done' && "
                      "document.getElementById('cutout-canvas').width > 0", timeout=30)
    after = browser.execute_script("""return {
        boxes: Array.from(document.querySelectorAll('#boxes .box')).map((b) => b.getAttribute('aria-label')),
        names: Array.from(document.querySelectorAll('#crops .headline')).map((h) => h.textContent),
        cutout: [document.getElementById('cutout-canvas').width, document.getElementById('cutout-canvas').height],
        line: document.getElementById('detect-status').textContent}""")
    assert after == before
    assert "sample-cast.webp" in browser.find_element(By.ID, "work-heading").text
    # Nothing was asked of the server again: the names and the cutout came from this browser.
    assert server.count("POST", "/api/cutout") == cutouts and server.count("POST", "/api/identify") == identifies
    screenshot(browser, "debts-history-zh.png")

    # Forget all: the page empties, and a reload brings nothing back.
    browser.find_element(By.ID, "forget-all").click()
    wait_for(browser, "document.getElementById('app').dataset.pictures === '0'")
    open_page(browser, server.base, "zh-Hans", keep_history=True)
    assert browser.execute_script("return document.getElementById('app').dataset.pictures") == "0"
    assert not browser.find_element(By.ID, "history").is_displayed()
    assert browser.find_element(By.ID, "try-sample").is_displayed()
    assert not console_problems(browser)


def test_the_history_keeps_at_most_its_caps_oldest_first_out(server, browser):
    open_page(browser, server.base)
    result = browser.execute_async_script("""
        const done = arguments[0];
        (async () => {
          const h = await import('/static/js/history.js');
          const db = await h.openHistory(true);
          const record = (i, bytes) => ({key: 'k' + i, saved: i, name: i + '.png', file: new Blob(['x']), bytes});
          let total;
          for (let i = 0; i < h.MAX_PICTURES + 3; i++) total = await h.keep(db, record(i, 10));
          const byCount = [total.count, (await h.loadAll(db)).map((r) => r.key)[0]];
          // One record of more than half the byte cap, then another: the older one goes.
          await h.keep(db, record(100, h.MAX_BYTES * 0.6));
          total = await h.keep(db, record(101, h.MAX_BYTES * 0.6));
          const keys = (await h.loadAll(db)).map((r) => r.key);
          await h.clearAll(db);
          db.close();
          return [byCount, total.bytes <= h.MAX_BYTES, keys.includes('k100'), keys.includes('k101'), h.MAX_PICTURES];
        })().then(done, (e) => done(String(e)));""")
    (count, oldest), under, has_older, has_newer, cap = result
    assert count == cap and oldest == "k3"  # the three oldest went first
    assert under and not has_older and has_newer
