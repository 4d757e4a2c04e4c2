"""Issue 20, problems 6 and 2: several pictures make a queue (status per picture, cancel, one
ZIP with faces and names per picture), a picture dropped on the loaded one joins it; the known
characters are listed and offered as suggestions, and a typed name maps onto a known label."""
import io
import json
import time
import zipfile

from conftest import needs_models
from page_support import console_problems, deliver, faces_found, needs_chromium, open_page, pick, screenshot, wait_for
from PIL import Image, ImageOps

from app.storage import db, reports

pytestmark = needs_chromium

QUEUE = "Array.from(document.querySelectorAll('#queue > li')).map((li) => li.dataset.batch)"


def three_pictures(demo_picture, tmp_path):
    path, comp = demo_picture
    with Image.open(path) as opened:
        image = opened.convert("RGB")
    paths = [tmp_path / "first.png", tmp_path / "second.webp", tmp_path / "third.jpg"]
    image.save(paths[0])
    ImageOps.mirror(image).save(paths[1], quality=92)
    image.resize((720, 480)).save(paths[2], quality=92)
    return paths


@needs_models
def test_a_batch_becomes_a_queue_with_one_zip(server, browser, demo_picture, tmp_path):
    from selenium.webdriver.common.by import By
    paths = three_pictures(demo_picture, tmp_path)
    open_page(browser, server.base)
    pick(browser, *paths)
    wait_for(browser, "document.querySelectorAll('#queue > li').length === 3")
    assert "first.png" in browser.find_element(By.ID, "work-heading").text  # the first is shown
    wait_for(browser, "Array.from(document.querySelectorAll('#queue .queue-status')).every((s) => /face/.test(s.textContent))")

    # Cancel right away: the pictures not started say so.
    browser.find_element(By.ID, "batch-run").click()
    browser.find_element(By.ID, "batch-cancel").click()
    wait_for(browser, "!document.getElementById('batch-run').hidden")
    assert "Cancelled after" in browser.find_element(By.ID, "batch-status").text
    assert "cancelled" in browser.execute_script("return " + QUEUE)

    # Run all: every picture is named and cut out, then one ZIP holds the results.
    browser.find_element(By.ID, "batch-run").click()
    wait_for(browser, f"{QUEUE}.every((b) => b === 'done' || b === 'error')", timeout=300)
    assert browser.execute_script("return " + QUEUE) == ["done"] * 3
    assert browser.find_element(By.ID, "batch-status").text == "3 of 3 pictures done."
    browser.execute_script("document.getElementById('queue-section').scrollIntoView()")
    screenshot(browser, "page-queue-done.png")
    browser.find_element(By.ID, "batch-zip").click()
    archive = browser.download_dir / "cutouts.zip"
    end = time.monotonic() + 30
    while not (archive.exists() and not (browser.download_dir / "cutouts.zip.crdownload").exists()):
        assert time.monotonic() < end, list(browser.download_dir.iterdir())
        time.sleep(0.1)
    with zipfile.ZipFile(archive) as z:
        assert z.testzip() is None
        names = sorted(z.namelist())
        assert names == ["faces.json", "first-cutout.png", "second-cutout.png", "third-cutout.png"]
        summary = json.loads(z.read("faces.json"))
        third = Image.open(io.BytesIO(z.read("third-cutout.png")))
        assert third.size == (720, 480) and third.mode == "RGBA"
    assert [s["picture"] for s in summary] == ["first.png", "second.webp", "third.jpg"]
    for item in summary:
        assert item["faces"] and all(f["name"] in ("eileen", "sylvie", "lucy", None) for f in item["faces"])
        assert [f["number"] for f in item["faces"]] == list(range(1, len(item["faces"]) + 1))
    assert {f["name"] for f in summary[0]["faces"]} >= {"eileen"}

    # A picture dropped on the one shown joins the queue and is shown.
    extra = tmp_path / "dropped.png"
    with Image.open(paths[0]) as first:
        first.resize((320, 214)).save(extra)
    deliver(browser, [(extra.read_bytes(), "image/png", extra.name)], "drop", "#picture")
    wait_for(browser, "document.querySelectorAll('#queue > li').length === 4")
    assert "dropped.png" in browser.find_element(By.ID, "work-heading").text
    assert not console_problems(browser)


@needs_models
def test_known_characters_listed_and_suggested(server, browser, demo_picture):
    from selenium.webdriver.common.by import By
    path, _ = demo_picture
    open_page(browser, server.base)
    pick(browser, path)
    faces_found(browser)
    known = wait_for(browser, "document.getElementById('characters').textContent")
    assert known == ("Characters this server knows: Chitose, Eileen, Haru, Haruto, Hibiki, Koharu, Lucy, "
                     "Shizuku, Sylvie.")
    options = browser.execute_script("return Array.from(document.querySelectorAll('#known-names option')).map((o) => o.value)")
    assert options == ["Chitose", "Eileen", "Haru", "Haruto", "Hibiki", "Koharu", "Lucy", "Shizuku", "Sylvie"]
    browser.find_element(By.ID, "identify").click()
    wait_for(browser, "document.querySelectorAll('#crops .headline').length === document.querySelectorAll('#crops > li').length")
    headlines = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "#crops .headline")]
    assert "Eileen" in headlines  # display names, not ids

    # "EILEEN" typed in the report is the known label "eileen", not a new one.
    first = browser.find_elements(By.CSS_SELECTOR, "#crops > li")[0]
    first.find_element(By.CSS_SELECTOR, "[data-action=report-open]").click()
    field = first.find_element(By.CSS_SELECTOR, "form.report input")
    assert field.get_attribute("list") == "known-names"
    field.send_keys(" EILEEN ")
    first.find_element(By.CSS_SELECTOR, "form.report button[type=submit]").click()
    wait_for(browser, "document.querySelector('#crops .report-status[data-state=saved]') !== null")
    with db.session(server.app) as s:
        assert [r.label for r in reports.list_reports(s)] == ["eileen"]
    assert not console_problems(browser)
