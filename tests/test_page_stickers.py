"""Issue 31 on the page: a GIF dropped on the page plays with the boxes of its current frame, its
character is listed once with the frames it appears in, and it is cut out into a transparent
animated sticker, previewed and downloaded; a long one goes through the job queue with progress,
a cancel that reaches the server, and a real `flask worker` finishing it."""
import io
import time

import numpy as np
import pytest
from conftest import needs_models
from page_support import Server, console_problems, deliver, needs_chromium, open_page, screenshot, wait_for
from PIL import Image
from queue_support import worker
from test_page_cutout import downloaded
from test_stickers import trained_character_clip

from app.demo_data import animated
from app.storage import db

pytestmark = [*needs_chromium, needs_models]

FRAMES = 6


@pytest.fixture(scope="module")
def haru_gif():
    """A GIF of a Live2D figure the demo head knows (a test pose, never trained on) bobbing over a
    blotchy background: real frames, as tests/test_stickers.py makes them."""
    clip = trained_character_clip(FRAMES)
    return animated.save(clip.frames, [120] * FRAMES, "GIF", loop=0)


def sticker_server(tmp_path_factory, **config):
    s = Server({"REPORT_DIR": str(tmp_path_factory.mktemp("stickers") / "reports"), "CUTOUT_MODEL": "demo-cutout",
                **config})
    return s


@pytest.fixture(scope="module")
def inline_server(tmp_path_factory):
    s = sticker_server(tmp_path_factory)
    yield s
    s.close()
    db.dispose(s.app)


def link_bytes(driver):
    """The bytes of the sticker's download link, clicked as a person would, from the download folder."""
    from selenium.webdriver.common.by import By
    link = driver.find_element(By.ID, "sticker-download")
    name = link.get_attribute("download")
    (driver.download_dir / name).unlink(missing_ok=True)
    link.click()
    return downloaded(driver, name)


def played(data):
    """(format, frame count, alpha of every frame) of an animated file as Pillow reads it."""
    with Image.open(io.BytesIO(data)) as image:
        alphas = []
        for index in range(image.n_frames):
            image.seek(index)
            alphas.append(np.asarray(image.convert("RGBA"))[..., 3])
        return image.format, image.n_frames, alphas


def drop_gif(driver, server, gif):
    open_page(driver, server.base)
    deliver(driver, [(gif, "image/gif", "haru.gif")])
    wait_for(driver, "!document.getElementById('animation-section').hidden")
    wait_for(driver, "['done', 'error'].includes(document.getElementById('anim-status').dataset.state)", 120)
    assert driver.execute_script("return document.getElementById('anim-status').dataset.state") == "done", \
        driver.execute_script("return document.getElementById('anim-status').textContent")


def test_a_dropped_gif_plays_with_its_character_named_and_becomes_a_transparent_webp(inline_server, browser,
                                                                                      haru_gif):
    from selenium.webdriver.common.by import By
    drop_gif(browser, inline_server, haru_gif)
    # The still-picture workspace is not involved: a GIF is not a picture for it.
    assert browser.find_element(By.ID, "workspace").get_attribute("hidden") is not None
    assert "6 frames" in browser.find_element(By.ID, "anim-status").text
    # One character, named, with the frames it is in.
    characters = browser.find_elements(By.CSS_SELECTOR, "#anim-characters li.anim-character")
    assert len(characters) == 1, browser.find_element(By.ID, "anim-characters").text
    text = characters[0].text
    assert "Haru" in text and "Not sure" not in text and "in frames 1–6" in text and "confidence" in text
    # It plays: the frame shown changes, and its box follows the face of that frame.
    seen = set()
    deadline = time.monotonic() + 10
    while len(seen) < 3 and time.monotonic() < deadline:
        frame, box = browser.execute_script("""
            const stage = document.getElementById('anim-stage'), box = stage.querySelector('.anim-box');
            return [stage.dataset.frame, box && box.getAttribute('aria-label')];""")
        if frame is not None and box:
            seen.add(frame)
            assert box == "Character 1: Haru"
        time.sleep(0.05)
    assert len(seen) >= 3, seen
    screenshot(browser, "sticker-playing.png")

    # Cut out within the request (6 frames): the preview over a checkerboard, the download a
    # transparent animated WebP of every frame.
    assert browser.find_element(By.ID, "sticker-format").get_attribute("value") == "webp"
    assert not browser.find_element(By.ID, "gif-note").is_displayed()
    browser.find_element(By.ID, "sticker-make").click()
    wait_for(browser, "['done', 'error'].includes(document.getElementById('sticker-status').dataset.state)", 120)
    status = browser.find_element(By.ID, "sticker-status")
    assert status.get_attribute("data-state") == "done", status.text
    assert status.text == "Done: 6 frames."
    assert inline_server.count("POST", "/api/cutout") == 1
    wait_for(browser, "document.getElementById('sticker-preview').naturalWidth > 0")
    view = browser.find_element(By.ID, "sticker-view")
    assert "checkerboard" in view.get_attribute("class") and view.is_displayed()
    link = browser.find_element(By.ID, "sticker-download")
    assert link.get_attribute("download") == "haru-sticker.webp" and link.get_attribute("href").startswith("blob:")
    fmt, count, alphas = played(link_bytes(browser))
    assert (fmt, count) == ("WEBP", FRAMES)
    for alpha in alphas:  # the background made transparent, the figure kept
        assert (alpha == 0).mean() > 0.3 and (alpha > 128).mean() > 0.05
    screenshot(browser, "sticker-done.png")

    # GIF: the page says what 1-bit transparency means, and the matte colour is offered.
    from selenium.webdriver.support.ui import Select
    Select(browser.find_element(By.ID, "sticker-format")).select_by_value("gif")
    note = browser.find_element(By.ID, "gif-note")
    assert note.is_displayed() and "1-bit" in note.text and browser.find_element(By.ID, "sticker-matte").is_displayed()

    # A background colour instead of transparency: every frame opaque, shown without the checkerboard.
    Select(browser.find_element(By.ID, "sticker-format")).select_by_value("webp")
    browser.find_element(By.CSS_SELECTOR, "input[name=sticker-background][value=color]").click()
    browser.find_element(By.ID, "sticker-make").click()
    wait_for(browser, "!document.getElementById('sticker-view').classList.contains('checkerboard')", 120)
    assert browser.find_element(By.ID, "sticker-status").get_attribute("data-state") == "done"
    assert inline_server.count("POST", "/api/cutout") == 2
    fmt, count, alphas = played(link_bytes(browser))
    assert (fmt, count) == ("WEBP", FRAMES) and all((a == 255).all() for a in alphas)
    assert console_problems(browser) == []


def test_still_pictures_keep_their_own_flow(inline_server, browser, haru_gif):
    """A still PNG of the same frame goes to the picture workspace, not the sticker panel."""
    from selenium.webdriver.common.by import By
    open_page(browser, inline_server.base)
    with Image.open(io.BytesIO(haru_gif)) as gif:
        png = io.BytesIO()
        gif.convert("RGB").save(png, "PNG")
    deliver(browser, [(png.getvalue(), "image/png", "still.png")])
    wait_for(browser, "!document.getElementById('workspace').hidden")
    assert browser.find_element(By.ID, "animation-section").get_attribute("hidden") is not None


def test_a_long_gif_is_a_job_with_progress_cancel_and_a_worker(tmp_path_factory, browser, haru_gif, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    server = sticker_server(tmp_path_factory, ANIMATION_INLINE_FRAMES=2)
    try:
        drop_gif(browser, server, haru_gif)
        Select(browser.find_element(By.ID, "sticker-format")).select_by_value("apng")
        # No worker yet: the job waits in the queue, and Cancel reaches the server.
        browser.find_element(By.ID, "sticker-make").click()
        wait_for(browser, "document.getElementById('sticker-status').dataset.state === 'queued'", 60)
        assert browser.find_element(By.ID, "sticker-cancel").is_displayed()
        browser.find_element(By.ID, "sticker-cancel").click()
        wait_for(browser, "document.getElementById('sticker-status').dataset.state === 'cancelled'")
        job_path = next(p for m, p in server.requests if m == "GET" and p.startswith("/api/jobs/"))
        deadline = time.monotonic() + 10
        with server.app.test_client() as client:  # the page's DELETE reached the server
            while client.get(job_path).get_json()["job"]["status"] != "cancelled":
                assert time.monotonic() < deadline, "the page did not cancel the job on the server"
                time.sleep(0.1)
        assert server.count("DELETE", job_path) == 1

        # With a worker, the next one is followed to the end, progress shown on the way.
        env = {"FLASK_REPORT_DIR": str(server.app.config["REPORT_DIR"]), "FLASK_CUTOUT_MODEL": "demo-cutout"}
        with worker(tmp_path, env) as w:
            browser.find_element(By.ID, "sticker-make").click()
            wait_for(browser, "['done', 'error'].includes(document.getElementById('sticker-status').dataset.state)",
                     180)
            status = browser.find_element(By.ID, "sticker-status")
            assert status.get_attribute("data-state") == "done", (status.text, w.output()[-3000:])
        polls = [p for m, p in server.requests if m == "GET" and p.startswith("/api/jobs/")]
        assert len(polls) >= 2 and any(p.endswith("/sticker") for p in polls)
        link = browser.find_element(By.ID, "sticker-download")
        assert link.get_attribute("download") == "haru-sticker.png"
        fmt, count, alphas = played(link_bytes(browser))
        assert (fmt, count) == ("PNG", FRAMES) and all((a == 0).mean() > 0.3 for a in alphas)
        assert console_problems(browser) == []
    finally:
        server.close()
        db.dispose(server.app)
