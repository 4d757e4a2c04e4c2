"""Issue 20, problem 7: the page in English, 简体中文 and 日本語: the browser's language by
default, a switch on the page, every string translated, names typed in any script kept."""
import re

from conftest import needs_models
from page_support import console_problems, faces_found, needs_chromium, open_page, pick, screenshot, wait_for

pytestmark = needs_chromium

# Words that stay as they are in every language: formats, keys, credits, file and character names.
KEEP = ["lbpcascade_animeface", "OpenCV.js", "Apache-2.0", "Ren'Py", "nagadomi", "Expat", "MIT",
        "scripts/setup.sh", "Ctrl+V", "Ctrl+Z", "Enter", "Shift", "Delete", "English", "PNG", "JPEG", "WebP", "ZIP",
        "MB", "demo-cast.png"]

SHOWN_TEXT = """
const out = [];
const visible = (el) => { const s = getComputedStyle(el), r = el.getBoundingClientRect();
  return s.display !== 'none' && s.visibility !== 'hidden' && (r.width > 0 || r.height > 0); };
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
for (let n = walker.nextNode(); n; n = walker.nextNode()) {
  const el = n.parentElement;
  if (n.textContent.trim() && el.closest('option') === null && visible(el) && !el.closest('[lang=en]')) out.push(n.textContent.trim());
}
for (const el of document.querySelectorAll('[aria-label], [title], [alt], [placeholder]')) {
  if (!el.closest('[hidden]')) for (const a of ['aria-label', 'title', 'alt', 'placeholder']) if (el.getAttribute(a)) out.push(el.getAttribute(a));
}
out.push(document.title);
return out;
"""


def untranslated(driver):
    """Shown strings that still hold Latin words once the words kept in every language, and the
    names of the characters the server knows (data, not interface), are taken out."""
    names = driver.execute_async_script("""
        const done = arguments[0];
        fetch('/api/characters').then((r) => r.json()).then((b) => done(b.characters), () => done([]));""")
    left = []
    for text in driver.execute_script(SHOWN_TEXT):
        rest = text
        for word in KEEP:
            rest = rest.replace(word, "")
        for name in sorted(names, key=len, reverse=True):  # Haruto before Haru
            rest = re.sub(re.escape(name), "", rest, flags=re.IGNORECASE)
        if re.search(r"[A-Za-z]{2,}", rest):
            left.append(text)
    return left


def test_every_language_has_every_message(server, browser):
    browser.get(server.base + "/")
    locales = browser.execute_async_script("""
        const done = arguments[0];
        Promise.all(['en', 'zh-Hans', 'ja'].map((l) => import('/static/js/locales/' + l + '.js')))
          .then((mods) => done(mods.map((m) => m.default)));""")
    en = locales[0]
    placeholders = lambda v: sorted(set(re.findall(r"\\{(\\w+)\\}", str(v))))  # noqa: E731
    for other in locales[1:]:
        assert sorted(other) == sorted(en)
        for key, value in en.items():
            assert placeholders(other[key]) == placeholders(value), key
            assert other[key] != value or key.startswith("cutout.download") and key != "cutout.downloadPng", key


def test_browser_language_decides_until_the_reader_chooses(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    browser.get(server.base + "/")
    browser.execute_script("localStorage.clear()")
    agent = browser.execute_script("return navigator.userAgent")
    browser.execute_cdp_cmd("Emulation.setUserAgentOverride", {"userAgent": agent, "acceptLanguage": "zh-CN,zh"})
    try:
        browser.refresh()
        wait_for(browser, "document.documentElement.lang === 'zh-Hans'")
        assert browser.find_element(By.TAG_NAME, "h1").text == "动漫人脸识别"
        Select(browser.find_element(By.ID, "lang")).select_by_value("ja")
        wait_for(browser, "document.documentElement.lang === 'ja'")
        browser.refresh()  # the choice outlives the visit
        wait_for(browser, "document.documentElement.lang === 'ja'")
    finally:
        browser.execute_cdp_cmd("Emulation.setUserAgentOverride", {"userAgent": agent, "acceptLanguage": "en-US"})
        browser.execute_script("localStorage.clear()")


@needs_models
def test_japanese_leaves_no_english_string(server, browser, demo_picture, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    path, _ = demo_picture
    open_page(browser, server.base)
    pick(browser, path)
    faces_found(browser)
    browser.find_element(By.ID, "identify").click()
    wait_for(browser, "document.querySelectorAll('#crops .headline').length === document.querySelectorAll('#crops > li').length")
    browser.find_elements(By.CSS_SELECTOR, "[data-action=report-open]")[0].click()
    browser.find_element(By.ID, "cutout-all").click()
    wait_for(browser, "['done', 'empty', 'error'].includes(document.getElementById('cutout-section').dataset.state)",
             timeout=120)
    english = untranslated(browser)
    assert english, "the check sees English text in English"

    Select(browser.find_element(By.ID, "lang")).select_by_value("ja")
    wait_for(browser, "document.documentElement.lang === 'ja'")
    assert untranslated(browser) == []
    assert browser.find_element(By.ID, "identify").text == "名前を判定"
    assert browser.find_element(By.ID, "cutout-heading").text == "背景を除去しました：画像全体"
    browser.execute_script("window.scrollTo(0, 0)")
    screenshot(browser, "page-i18n-ja.png")

    # A name typed in Japanese is stored exactly; the page's answer is Japanese.
    first = browser.find_elements(By.CSS_SELECTOR, "#crops > li")[0]
    first.find_element(By.CSS_SELECTOR, "form.report input").send_keys("平沢唯")
    first.find_element(By.CSS_SELECTOR, "form.report button[type=submit]").click()
    status = wait_for(browser, "document.querySelector('#crops .report-status[data-state=saved]')?.textContent")
    assert status == "ありがとうございます！平沢唯 として報告を保存しました。"
    Select(browser.find_element(By.ID, "lang")).select_by_value("zh-Hans")
    wait_for(browser, "document.documentElement.lang === 'zh-Hans'")
    assert untranslated(browser) == []
    screenshot(browser, "page-i18n-zh.png")
    Select(browser.find_element(By.ID, "lang")).select_by_value("en")
    assert not console_problems(browser)
