"""app/storage: the database (SQLite and a real PostgreSQL run the same tests), pictures by sha256,
reports (de-duplication, quota, review), the gallery, model versions, and the one-time import of
report files written before the database existed."""
import json
import subprocess
import sys
import threading

import pytest
from conftest import ROOT, encode
from PIL import Image

from app import create_app
from app.storage import db, gallery, images, labels, model_versions, reports
from app.storage.models import Base, Embedding, Face


def png(seed, size=(40, 40)):
    """A distinct small PNG per seed."""
    return encode(Image.new("RGB", size, (seed * 37 % 256, seed * 91 % 256, seed * 13 % 256)))


@pytest.fixture
def store(tmp_path, database_url):
    """(app, report folder) on the backend under test."""
    root = tmp_path / "reports"
    app = create_app({"TESTING": True, "REPORT_DIR": str(root), "DATABASE_URL": database_url})
    yield app, root
    db.dispose(app)


def test_migrations_reach_head_and_match_the_models(store):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    app, _ = store
    engine = db.get_engine(app)
    assert db.schema_revision(engine) == "0007"
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []  # the migrations build exactly the tables the code uses


def test_sqlite_is_one_wal_file_in_the_report_folder(tmp_path):
    app = create_app({"TESTING": True, "REPORT_DIR": str(tmp_path / "reports")})
    engine = db.get_engine(app)
    assert engine.url.database == str(tmp_path / "reports" / db.SQLITE_NAME)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    db.dispose(app)


def test_reports_are_deduplicated_by_picture(store):
    app, root = store
    with db.session(app, write=True) as s:
        first, created = reports.submit(s, root, png(1), "初音ミク", "lucy")
    assert created and reports.ID_PATTERN.match(first.id)
    with db.session(app, write=True) as s:
        again, created_again = reports.submit(s, root, png(1), "someone else")
        other, _ = reports.submit(s, root, png(2), "lucy")
    assert not created_again and again.id == first.id and again.label == "初音ミク"
    with db.session(app) as s:
        assert reports.count(s) == 2
    # Pictures are kept by their sha256 (files with SQLite, rows with PostgreSQL); nothing
    # half-written is left.
    with db.session(app) as s:
        assert images.read(s, root, first.image_sha256) == png(1)
    assert images.image_path(root, first.image_sha256).is_file() == (db.get_engine(app).dialect.name == "sqlite")
    assert not list(root.rglob(".tmp-*"))


def test_pending_reports_have_a_disk_quota(store):
    app, root = store
    size = len(png(1))
    with db.session(app, write=True) as s:
        reports.submit(s, root, png(1), "a", quota_bytes=2 * size + 10)
        reports.submit(s, root, png(2), "b", quota_bytes=2 * size + 10)
    with pytest.raises(reports.QuotaExceeded, match="review"), db.session(app, write=True) as s:
        reports.submit(s, root, png(3), "c", quota_bytes=2 * size + 10)
    with pytest.raises(FileNotFoundError), db.session(app) as s:
        images.read(s, root, reports.hashlib.sha256(png(3)).hexdigest())
    with db.session(app, write=True) as s:  # reviewing frees the queue
        first = reports.list_reports(s, "pending")[0]
        reports.decide(s, root, first.id, accept=False)
        reports.submit(s, root, png(3), "c", quota_bytes=2 * size + 10)
        assert reports.count(s, "pending") == 2


def test_accepting_a_report_puts_it_in_the_gallery_once(store):
    app, root = store
    with db.session(app, write=True) as s:
        report, _ = reports.submit(s, root, png(5), "kaede")
    before = db.counters(app).get(gallery.COUNTER, 0)
    with db.session(app, write=True) as s:
        reports.decide(s, root, report.id, accept=True, label="  Kaede Akamatsu ")
    assert db.counters(app)[gallery.COUNTER] == before + 1  # every worker will re-read the gallery
    with db.session(app) as s:
        assert gallery.face_counts(s) == {"Kaede Akamatsu": 1}
        row = reports.get(s, report.id)
        assert (row.status, row.decided_label) == ("accepted", "Kaede Akamatsu")
        assert gallery.training_faces(s) == [("Kaede Akamatsu", report.image_sha256)]
    with pytest.raises(reports.ReportError, match="already accepted"), db.session(app, write=True) as s:
        reports.decide(s, root, report.id, accept=False)
    with pytest.raises(reports.NotFound), db.session(app, write=True) as s:
        reports.decide(s, root, "20260101T000000Z-000000000000", accept=True)


def test_enrol_appends_and_remove_deletes_faces_and_embeddings(store):
    app, root = store
    with db.session(app, write=True) as s:
        character, added = gallery.enrol(s, root, "Sakura", [png(1), png(2)])
        gallery.put_embeddings(s, "e1", {f.id: b"\0" * 8 for f in added})
    with db.session(app, write=True) as s:
        _, added = gallery.enrol(s, root, "Sakura", [png(2), png(3)])  # png(2) again adds nothing
    assert len(added) == 1
    with db.session(app) as s:
        assert gallery.face_counts(s) == {"Sakura": 3}
        rows = gallery.faces_with_embeddings(s, "e1")
        assert [r[3] is not None for r in rows] == [True, True, False]
    with db.session(app, write=True) as s:
        assert gallery.remove(s, "Sakura") and not gallery.remove(s, "Sakura")
    with db.session(app) as s:
        assert gallery.face_counts(s) == {}
        assert s.query(Face).count() == 0 and s.query(Embedding).count() == 0  # cascaded
    with pytest.raises(labels.LabelError), db.session(app, write=True) as s:
        gallery.enrol(s, root, "bad\u202ename", [png(1)])


def test_model_versions_go_live_and_roll_back_one_at_a_time(store):
    app, _ = store
    with db.session(app, write=True) as s:
        v1 = model_versions.record(s, "models/classifier-1", "live")
        model_versions.record(s, "models/classifier-x", "refused", note="worse")
        v2 = model_versions.record(s, "models/classifier-2", "live")
    with db.session(app) as s:
        assert model_versions.live(s).id == v2.id
        assert [v.status for v in model_versions.history(s)] == ["live", "refused", "superseded"]
    counter = db.counters(app)[model_versions.COUNTER]
    with db.session(app, write=True) as s:
        old, now = model_versions.rollback(s)
    assert (old.id, now.id) == (v2.id, v1.id)
    assert db.counters(app)[model_versions.COUNTER] == counter + 1
    with db.session(app, write=True) as s:
        old, now = model_versions.rollback(s)
    assert old.id == v1.id and now is None  # back to the configured model
    with pytest.raises(model_versions.NothingToRollBack), db.session(app, write=True) as s:
        model_versions.rollback(s)


def test_concurrent_reports_never_collide(store):
    app, root = store
    ids, errors = [], []

    def worker(k):
        try:
            for i in range(8):
                with db.session(app, write=True) as s:
                    ids.append(reports.submit(s, root, png(100 + k * 8 + i), "lucy")[0].id)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(ids)) == 32
    with db.session(app) as s:
        assert reports.count(s, "pending") == 32


def _race(count, action):
    """Run action(k) in `count` threads released at one instant; returns (results, errors)."""
    barrier = threading.Barrier(count)
    results, errors = [None] * count, []

    def worker(k):
        try:
            barrier.wait(timeout=30)
            results[k] = action(k)
        except Exception as exc:  # noqa: BLE001 - reported by the caller
            errors.append(exc)
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a writer hung"
    return results, errors


def test_eight_writers_racing_on_one_picture_store_it_once(store):
    app, root = store
    for round_ in range(5):
        picture = png(500 + round_)

        def submit(k, picture=picture):
            with db.session(app, write=True) as s:
                report, created = reports.submit(s, root, picture, f"writer {k}")
                return report.id, created
        results, errors = _race(8, submit)
        assert not errors, errors
        assert len({report_id for report_id, _ in results}) == 1, results  # every writer got the one report
        assert sum(created for _, created in results) == 1
        with db.session(app) as s:
            sha = reports.hashlib.sha256(picture).hexdigest()
            assert s.scalar(reports.select(reports.func.count()).where(reports.Report.image_sha256 == sha)) == 1


def test_eight_writers_never_overshoot_the_pending_quota(store):
    app, root = store
    pictures = [png(600 + k, size=(60, 60)) for k in range(8)]
    quota = sum(sorted(len(p) for p in pictures)[:3])  # room for three of them at most

    def submit(k):
        with db.session(app, write=True) as s:
            return reports.submit(s, root, pictures[k], "lucy", quota_bytes=quota)[0].id
    results, errors = _race(8, submit)
    assert all(isinstance(e, reports.QuotaExceeded) for e in errors), errors
    with db.session(app) as s:
        held = reports.pending_bytes(s)
        assert reports.count(s, "pending") == len([r for r in results if r])
    assert 0 < held <= quota


def test_eight_writers_racing_on_one_name_enrol_it_once(store):
    app, root = store
    for round_ in range(3):
        name, picture = f"racer {round_}", png(800 + round_)

        def enrol(k, name=name, picture=picture):
            with db.session(app, write=True) as s:
                character, added = gallery.enrol(s, root, name, [picture])
                return character.id, len(added)
        results, errors = _race(8, enrol)
        assert not errors, errors
        assert len({character_id for character_id, _ in results}) == 1
        assert sum(added for _, added in results) == 1
        with db.session(app) as s:
            assert gallery.face_counts(s)[name] == 1


def test_a_writer_outside_the_lock_meets_the_unique_index(tmp_path, postgres):
    # An insert that bypasses submit's lock (an older instance mid-upgrade) holds the picture's row
    # uncommitted; submit waits on the index, then answers that row instead of a second one.
    from sqlalchemy import text
    app = create_app({"TESTING": True, "REPORT_DIR": str(tmp_path / "r"), "DATABASE_URL": postgres()})
    picture = png(700)
    sha = reports.hashlib.sha256(picture).hexdigest()
    with db.get_engine(app).connect() as other:
        other.execute(text("INSERT INTO reports (id, label, predicted, created, image_sha256, image_bytes, status, "
                           "source) VALUES ('20261207T000000Z-aaaaaaaaaaaa', 'first', '', now(), :sha, 1, "
                           "'pending', 'api')"), {"sha": sha})
        result = []

        def submit():
            with db.session(app, write=True) as s:
                report, created = reports.submit(s, tmp_path / "r", picture, "second")
                result.append((report.id, created))
        writer = threading.Thread(target=submit)
        writer.start()
        writer.join(timeout=1)
        assert writer.is_alive()  # waiting on the index for the other transaction
        other.commit()
        writer.join(timeout=30)
    assert result == [("20261207T000000Z-aaaaaaaaaaaa", False)]
    db.dispose(app)


def test_migration_0002_keeps_duplicates_from_before_but_marks_them(tmp_path, database_url):
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text
    url = database_url or f"sqlite:///{tmp_path / 'old.sqlite3'}"
    engine = db.make_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(db.MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        for report_id in ("20261201T000000Z-aaaaaaaaaaaa", "20261201T000001Z-bbbbbbbbbbbb"):
            conn.execute(text("INSERT INTO reports (id, label, predicted, created, image_sha256, image_bytes, "
                              "status, source) VALUES (:id, 'x', '', '2026-12-01', :sha, 1, 'pending', 'api')"),
                         {"id": report_id, "sha": "a" * 64})
    db.upgrade(engine)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, source FROM reports ORDER BY id")).all()
    assert [(r[0][-4:], r[1]) for r in rows] == [("aaaa", "api"), ("bbbb", "duplicate")]
    engine.dispose()


def _legacy_report(folder, report_id, label, data):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{report_id}.png").write_bytes(data)
    record = {"id": report_id, "label": label, "predicted": "eileen", "created": "2026-11-20T10:00:00+00:00",
              "image": f"{report_id}.png", "sha256": reports.hashlib.sha256(data).hexdigest()}
    (folder / f"{report_id}.json").write_text(json.dumps(record, ensure_ascii=False), "utf-8")


def test_existing_report_files_are_imported_once_and_kept(tmp_path, database_url):
    root = tmp_path / "reports"
    _legacy_report(root, "20261120T100000Z-aaaaaaaaaaaa", "初音ミク", png(1))
    _legacy_report(root, "20261120T100001Z-bbbbbbbbbbbb", "lucy", png(2))
    _legacy_report(root, "20261120T100002Z-cccccccccccc", "lucy", png(2))  # same picture twice: both kept
    (root / "20261120T100003Z-dddddddddddd.json").write_text("{}")  # a record without its picture
    (root / "notes.json").write_text("{}")
    before = sorted(p.name for p in root.iterdir())
    for _ in range(2):  # a second start imports nothing new
        app = create_app({"TESTING": True, "REPORT_DIR": str(root), "DATABASE_URL": database_url})
        with db.session(app) as s:
            rows = reports.list_reports(s)
            assert [(r.id[-4:], r.label, r.status) for r in rows] == [
                ("aaaa", "初音ミク", "pending"), ("bbbb", "lucy", "pending"), ("cccc", "lucy", "pending")]
            assert rows[0].created.replace(tzinfo=None).isoformat() == "2026-11-20T10:00:00"
            for row in rows:
                assert images.read(s, root, row.image_sha256) in (png(1), png(2))
        db.dispose(app)
    assert set(before) <= {p.name for p in root.iterdir()}  # the old files stay where they were


def test_two_processes_start_on_a_fresh_database_at_once(tmp_path, database_url):
    # Both run the migrations and the import under the lock: neither fails, nothing doubles.
    root = tmp_path / "reports"
    _legacy_report(root, "20261120T100000Z-aaaaaaaaaaaa", "lucy", png(1))
    code = ("import sys; from app import create_app; from app.storage import db, reports\n"
            "app = create_app({'REPORT_DIR': sys.argv[1], 'DATABASE_URL': sys.argv[2] or None})\n"
            "with db.session(app) as s: print(reports.count(s))\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(root), database_url or ""], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert [o[0].strip() for o in outs] == ["1", "1"]
