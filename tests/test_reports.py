"""app/reports.py and the `flask reports` commands."""
import json
import threading

import pytest

from app.storage import files, reports


def test_labels_are_cleaned_or_refused():
    assert reports.clean_label("  初音ミク\u3000") == "初音ミク"  # ideographic space is trimmed too
    assert reports.clean_label("Ame\u0301lie") == "Amélie"
    for bad in ("", " ", "a" * 101, "a\x1bb", "\u200e", "x\ud800"):
        with pytest.raises(reports.ReportError):
            reports.clean_label(bad)


def test_save_writes_png_and_record_and_no_temp_files(tmp_path):
    record = reports.save_report(tmp_path, b"\x89PNG fake but opaque bytes", "王小明", "eileen")
    assert reports.ID_PATTERN.match(record["id"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{record['id']}.json", f"{record['id']}.png"]
    saved = json.loads((tmp_path / f"{record['id']}.json").read_text("utf-8"))
    assert saved["label"] == "王小明" and saved["predicted"] == "eileen" and len(saved["sha256"]) == 64


def test_concurrent_reports_never_collide(tmp_path):
    ids = []

    def worker():
        for _ in range(20):
            ids.append(reports.save_report(tmp_path, b"png", "lucy")["id"])
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 80 and len(reports.list_reports(tmp_path)) == 80


def test_a_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def boom(*args):
        raise OSError("disk full")
    monkeypatch.setattr(files.os, "fsync", boom)
    with pytest.raises(OSError):
        reports.save_report(tmp_path, b"png", "lucy")
    assert list(tmp_path.iterdir()) == []


def test_listing_ignores_half_reports_and_strangers(tmp_path):
    good = reports.save_report(tmp_path, b"png", "lucy")
    (tmp_path / "20260101T000000Z-aaaaaaaaaaaa.json").write_text("{}")  # record without image
    (tmp_path / "notes.json").write_text("{}")
    assert [r["id"] for r in reports.list_reports(tmp_path)] == [good["id"]]


@pytest.mark.parametrize("label, dirname", [
    ("初音ミク", "初音ミク"), ("王小明", "王小明"), ("Sylvie", "Sylvie"), ("a/b", "a%2Fb"), ("..", "%2E%2E"),
    ("../../etc", "%2E.%2F..%2Fetc"), ("CON", "%43ON"), (" .hidden. ", "%20.hidden.%20"),
    ("x:y*z?", "x%3Ay%2Az%3F"), ("100%", "100%25"),
])
def test_label_dirname_keeps_letters_and_stays_inside(label, dirname):
    assert reports.label_dirname(label) == dirname


def test_label_dirname_fits_name_max():
    assert len(reports.label_dirname("字" * 100).encode()) <= 240


def test_cli_list_and_export(app, runner, report_dir, tmp_path):
    for label in ("初音ミク", "初音ミク", "lucy", "../escape"):
        reports.save_report(report_dir, b"\x89PNGdata", label)
    result = runner.invoke(args=["reports", "list"])
    assert result.exit_code == 0 and "4 report(s)" in result.output and "初音ミク: 2" in result.output

    out = tmp_path / "export"
    result = runner.invoke(args=["reports", "export", str(out)])
    assert result.exit_code == 0, result.output
    assert len(list((out / "初音ミク").glob("*.png"))) == 2
    assert len(list((out / "lucy").glob("*.png"))) == 1
    assert len(list((out / "%2E.%2Fescape").glob("*.png"))) == 1
    assert sorted(p.name for p in out.iterdir()) == sorted(["初音ミク", "lucy", "%2E.%2Fescape"])
