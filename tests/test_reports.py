"""app/storage/reports.py labels and folder names, and the `flask reports` commands on the database."""
import pytest
from conftest import encode
from PIL import Image

from app.storage import db, reports


def test_labels_are_cleaned_or_refused():
    assert reports.clean_label("  初音ミク\u3000") == "初音ミク"  # ideographic space is trimmed too
    assert reports.clean_label("Ame\u0301lie") == "Amélie"
    for bad in ("", " ", "a" * 101, "a\x1bb", "\u200e", "x\ud800"):
        with pytest.raises(reports.ReportError):
            reports.clean_label(bad)


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
    with db.session(app, write=True) as s:
        for i, label in enumerate(("初音ミク", "初音ミク", "lucy", "../escape")):
            reports.submit(s, report_dir, encode(Image.new("RGB", (8, 8), (i * 40, 0, 0))), label)
        first = reports.list_reports(s)[0]
        reports.decide(s, report_dir, reports.list_reports(s)[2].id, accept=True, label="Lucy")
    result = runner.invoke(args=["reports", "list"])
    assert result.exit_code == 0 and "4 report(s)" in result.output and "初音ミク: 2" in result.output
    assert "accepted lucy -> Lucy" in result.output
    result = runner.invoke(args=["reports", "list", "--status", "pending"])
    assert "3 report(s)" in result.output

    out = tmp_path / "export"
    result = runner.invoke(args=["reports", "export", str(out)])
    assert result.exit_code == 0, result.output
    assert len(list((out / "初音ミク").glob("*.png"))) == 2
    assert (out / "初音ミク" / f"{first.id}.png").is_file()
    assert len(list((out / "Lucy").glob("*.png"))) == 1  # accepted under its corrected label
    assert len(list((out / "%2E.%2Fescape").glob("*.png"))) == 1
    assert sorted(p.name for p in out.iterdir()) == sorted(["初音ミク", "Lucy", "%2E.%2Fescape"])
