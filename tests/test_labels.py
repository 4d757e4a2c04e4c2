"""The one Unicode policy for labels (app/storage/labels.py), over HTTP and on export."""
import io

import numpy as np
import pytest
from conftest import encode
from hypothesis import given, settings
from hypothesis import strategies as st

from app.storage import db, labels, reports

ACCEPTED = [
    ("初音ミク", "初音ミク"),
    ("  初音ミク\u3000", "初音ミク"),                      # spaces (Zs) trimmed, ideographic too
    ("Ame\u0301lie", "Amélie"),                             # NFC
    ("Sylvie (green dress)", "Sylvie (green dress)"),
    ("王小明", "王小明"),
    ("👨\u200d👩\u200d👧", "👨\u200d👩\u200d👧"),            # family: emoji joined by ZWJ
    ("🏳\ufe0f\u200d🌈", "🏳\ufe0f\u200d🌈"),                 # flag with variation selector and ZWJ
    ("👩🏽\u200d💻", "👩🏽\u200d💻"),                          # skin tone, then ZWJ
    ("1\ufe0f\u20e3", "1\ufe0f\u20e3"),                     # keycap
    ("🏴\U000E0067\U000E0062\U000E0073\U000E0063\U000E0074\U000E007F",) * 2,  # Scotland: tag sequence
    ("🇯🇵", "🇯🇵"),                                         # regional indicators
    ("می\u200cخواهم", "می\u200cخواهم"),                     # Persian: ZWNJ between letters
    ("क्\u200dष", "क्\u200dष"),                               # Devanagari: ZWJ after a virama
    ("葛\U000E0100", "葛\U000E0100"),                        # ideographic variation selector
    ("\U0001FAE8", "\U0001FAE8"),                           # an emoji newer than Python's tables
    ("e" + "\u0301" * 9, "é" + "\u0301" * 8),              # 8 marks on one letter after NFC
]

REFUSED = [
    "", " ", "\u3000", "a" * 101,
    "a\x1bb", "two\nlines", "tab\there", "nul\x00",             # controls
    "a\u2028b", "a\u2029b",                                    # line and paragraph separators
    "\u3164", "a\u3164b", "\uffa0", "\u115f", "\u2800",          # blank "letters"
    "zero\u200bwidth", "\u200e", "\u202eevil", "a\u2066b", "\ufeffbom", "a\u00adb", "a\u034fb",
    "a\u200db", "\u200d👩", "👩\u200d", "ab\u200c", "a\u200c1",     # joiners where nothing joins
    "\ufe0f", " \ufe0fx",                                     # a variation selector on nothing
    "\U000E0067x", "🏴\U000E0067",                             # tags outside a flag
    "x\ud800", "x\U000F0000", "\ufdd0", "x\U000E0001",          # surrogate, private use, nonchar, tag
    "a\ufffdb",                                                # what invalid UTF-8 decodes to
    "e" + "\u0301" * 10,                                       # Zalgo
]


@pytest.mark.parametrize("text, stored", ACCEPTED)
def test_accepted_labels(text, stored):
    assert labels.clean_label(text) == stored


@pytest.mark.parametrize("text", REFUSED)
def test_refused_labels(text):
    with pytest.raises(labels.LabelError):
        labels.clean_label(text)


def _multipart(fields, boundary=b"b0undary"):
    body = b""
    for name, value, filename in fields:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += b"--" + boundary + b"\r\nContent-Disposition: " + disposition.encode() + b"\r\n\r\n" + value + b"\r\n"
    return body + b"--" + boundary + b"--\r\n", f"multipart/form-data; boundary={boundary.decode()}"


@pytest.mark.parametrize("raw, status", [
    (b"\xff\xfelucy", 400),                     # not UTF-8
    (b"\xc3", 400),                             # a cut UTF-8 sequence
    (b"\xed\xa0\x80", 400),                     # an encoded surrogate
    ("シルヴィ".encode(), 201),
    ("👨\u200d👩\u200d👧".encode(), 201),
])
def test_labels_over_http_are_utf8_or_400(app, client, report_dir, raw, status):
    face = encode(np.full((20, 20, 3), 90, np.uint8))
    body, content_type = _multipart([("face", face, "f.png"), ("label", raw, None)])
    response = client.post("/api/reports", data=body, content_type=content_type)
    assert response.status_code == status, response.data
    if status == 400:
        assert response.get_json()["error"]["code"] == "bad_label"
        assert not list(report_dir.rglob("*.png"))  # no picture stored
    else:
        with db.session(app) as s:
            assert reports.get(s, response.get_json()["id"]).label == raw.decode()


@pytest.mark.parametrize("label", ["a\u2028b", "\u3164", "x\u200by"])
def test_invisible_labels_are_refused_over_http(client, label):
    face = encode(np.full((20, 20, 3), 90, np.uint8))
    response = client.post("/api/reports", data={"face": (io.BytesIO(face), "f.png"), "label": label})
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "bad_label"


def test_dot_labels_export_into_distinct_folders(app, runner, report_dir, tmp_path):
    with db.session(app, write=True) as s:
        for i, label in enumerate((".", "..", "...", "_", "a/b", "a%2Fb")):
            reports.submit(s, report_dir, encode(np.full((4, 4, 3), i, np.uint8)), label)
    out = tmp_path / "export"
    result = runner.invoke(args=["reports", "export", str(out)])
    assert result.exit_code == 0, result.output
    folders = sorted(p.name for p in out.iterdir())
    assert folders == sorted(["%2E", "%2E%2E", "%2E.%2E", "_", "a%2Fb", "a%252Fb"])
    assert all(len(list((out / f).glob("*.png"))) == 1 for f in folders)
    assert not (tmp_path / "20260101").exists() and len(list(tmp_path.iterdir())) == 2  # nothing escaped


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.text(min_size=1, max_size=120), min_size=2, max_size=6, unique=True))
def test_folder_names_never_collide_and_stay_inside(texts):
    names = [labels.folder_name(t) for t in texts]
    assert len(set(names)) == len(names)
    for text, name in zip(texts, names):
        assert name not in (".", "..") and "/" not in name and "\x00" not in name
        assert not name.startswith((" ", ".")) and not name.endswith((" ", "."))
        assert len(name.encode("utf-8")) <= labels.NAME_BYTES
        if labels.HASHED not in name:
            assert labels.label_from_folder(name) == text
