"""The API's error messages in the client's language (Accept-Language; app/i18n.py, app/translations)."""
import io
import re
import subprocess
import sys

import numpy as np
import pytest
from babel.messages.pofile import read_po
from conftest import ROOT, encode

from app import i18n

LOCALES = ("zh_Hans", "ja")
CATALOGS = {loc: ROOT / "app" / "translations" / loc / "LC_MESSAGES" / "messages.po" for loc in LOCALES}
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")

compiled = pytest.mark.skipif(
    not all(po.with_suffix(".mo").is_file() for po in CATALOGS.values()),
    reason="the .mo catalogs are not compiled: run scripts/setup.sh (pybabel compile -d app/translations)")

NOT_AN_IMAGE = "PNG、JPEG、WebP の画像だけを受け付けます。", "只接受 PNG、JPEG 和 WebP 图片。"
ENGLISH = "Only PNG, JPEG and WebP images are accepted."


def catalog(locale):
    with open(CATALOGS[locale], "rb") as f:
        return read_po(f, locale=locale)


def post_text_as_png(client, language=None):
    headers = {"Accept-Language": language} if language else {}
    return client.post("/api/identify", data={"faces": [(io.BytesIO(b"just text"), "face.png")]},
                       headers=headers, content_type="multipart/form-data")


def error_of(response, status, code):
    assert response.status_code == status, response.data
    body = response.get_json()["error"]
    assert body["code"] == code
    assert "Accept-Language" in response.headers.get("Vary", "")
    return body["message"]


# ---------- the language of a request ----------
@pytest.mark.parametrize("header, locale", [
    (None, "en"), ("", "en"), ("fr", "en"), ("en-GB", "en"), ("ja", "ja"), ("ja-JP", "ja"),
    ("zh-Hans", "zh_Hans"), ("zh_Hans", "zh_Hans"), ("zh-CN", "zh_Hans"), ("zh", "zh_Hans"),
    ("zh-Hans-CN", "zh_Hans"), ("zh-TW", "en"), ("zh-Hant", "en"), ("zh-TW, ja;q=0.5", "ja"),
    ("fr, ja;q=0.8, en;q=0.5", "ja"), ("de, en;q=0.9, ja;q=0.8", "en"), ("ja;q=0, zh;q=0.5", "zh_Hans"),
    ("*", "en"),
])
def test_locale_follows_accept_language(app, header, locale):
    headers = {"Accept-Language": header} if header is not None else {}
    with app.test_request_context("/api/identify?lang=ja", headers=headers):  # ?lang= means nothing
        assert i18n.select_locale() == locale


@compiled
@pytest.mark.parametrize("language, expected", [("ja", NOT_AN_IMAGE[0]), ("zh-Hans", NOT_AN_IMAGE[1]),
                                                ("zh-CN,zh;q=0.9,en;q=0.8", NOT_AN_IMAGE[1])])
def test_bad_upload_in_the_clients_language(client, language, expected):
    english = error_of(post_text_as_png(client), 415, "unsupported_type")
    translated = error_of(post_text_as_png(client, language), 415, "unsupported_type")  # same code, status
    assert english == ENGLISH and translated == expected


@pytest.mark.parametrize("language", [None, "fr", "en-US", "zh-TW"])
def test_english_without_a_language_we_speak(client, language):
    assert error_of(post_text_as_png(client, language), 415, "unsupported_type") == ENGLISH


@compiled
@pytest.mark.parametrize("language, expected", [
    (None, "At most 2 faces per request; 3 were sent."),
    ("ja", "1 回のリクエストで送れる顔は 2 個までです。3 個送られました。"),
    ("zh-Hans", "每个请求最多 2 张脸；这次发送了 3 张。"),
])
def test_placeholders_are_filled_in_every_language(app, language, expected):
    app.config["MAX_FACES"] = 2
    headers = {"Accept-Language": language} if language else {}
    faces = [(io.BytesIO(b"x"), f"f{i}.png") for i in range(3)]
    response = app.test_client().post("/api/identify", data={"faces": faces}, headers=headers,
                                      content_type="multipart/form-data")
    assert error_of(response, 400, "too_many_faces") == expected


@compiled
def test_nested_messages_are_translated_too(client):
    # A label error names its field with a message of its own.
    png = encode(np.full((32, 32, 3), 128, np.uint8))
    response = client.post("/api/reports", data={"face": (io.BytesIO(png), "f.png"), "label": " "},
                           headers={"Accept-Language": "ja"}, content_type="multipart/form-data")
    assert error_of(response, 400, "bad_label") == "名前（label）が空です。"


@compiled
@pytest.mark.parametrize("language, expected", [("ja", "このアドレスには何もありません。"),
                                                ("zh-Hans", "这个地址上什么都没有。")])
def test_http_errors_are_translated(client, language, expected):
    assert error_of(client.get("/api/nothing", headers={"Accept-Language": language}), 404,
                    "not_found") == expected


def test_messages_are_english_outside_a_request():
    message = i18n._("At most %(limit)d faces per request; %(sent)d were sent.", limit=2, sent=3)
    assert str(message) == message.translated() == "At most 2 faces per request; 3 were sent."


# ---------- the catalogs ----------
@pytest.mark.parametrize("locale", LOCALES)
def test_every_message_is_translated(locale):
    messages = [m for m in catalog(locale) if m.id]
    assert messages
    for message in messages:
        assert not message.fuzzy, message.id
        assert message.string and message.string.strip(), f"{locale}: no translation for {message.id!r}"
        assert sorted(PLACEHOLDER.findall(message.id)) == sorted(PLACEHOLDER.findall(message.string)), \
            f"{locale}: placeholders differ in {message.id!r}"
        # Only named placeholders: a translation may reorder them.
        assert "%" not in PLACEHOLDER.sub("", message.id), message.id
        assert "%" not in PLACEHOLDER.sub("", message.string), message.string


def test_every_message_in_the_code_is_in_each_catalog(tmp_path):
    pot = tmp_path / "messages.pot"
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "-q", "extract", "-F", "babel.cfg",
                    "-o", str(pot), "--no-location", "app"], cwd=ROOT, check=True, timeout=120)
    with open(pot, "rb") as f:
        extracted = {m.id for m in read_po(f) if m.id}
    assert len(extracted) > 50  # the extraction found the marked messages
    for locale in LOCALES:
        ids = {m.id for m in catalog(locale) if m.id}
        assert extracted - ids == set(), f"{locale}: not in the catalog (pybabel update)"
        assert ids - extracted == set(), f"{locale}: no longer in the code (pybabel update)"
