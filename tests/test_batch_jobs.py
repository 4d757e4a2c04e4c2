"""Batch cutouts on the job queue (app/jobs/, app/web/jobs.py): real `flask worker` processes, the
default SQLite queue and a real Redis server behind gunicorn, workers killed with SIGKILL mid-job,
and the limits a submission meets. Every wait is bounded."""
import datetime
import io
import time
import zipfile

import numpy as np
import urllib3
from conftest import encode, needs_cutout
from PIL import Image
from queue_support import redis_server, worker
from servers import gunicorn
from sqlalchemy import update

from app import create_app
from app.jobs import files
from app.storage import db
from app.storage.models import Job, utcnow

pytestmark = needs_cutout


def picture(width, height, seed=0, fmt="PNG"):
    """A figure (a filled ellipse) on a noisy background: something for the network to cut out."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:height, :width]
    inside = ((xx - width / 2) / (width / 4)) ** 2 + ((yy - height / 2) / (height / 3)) ** 2 < 1
    pixels[inside] = (230, 80, 120)
    return encode(pixels, fmt)


def settings(report_dir, **extra):
    """FLASK_* variables for a worker (or gunicorn) sharing `report_dir` with the test's app."""
    env = {"FLASK_REPORT_DIR": str(report_dir), "FLASK_CUTOUT_MODEL": "demo-cutout"}
    env.update({f"FLASK_{k}": str(v) for k, v in extra.items()})
    return env


def submit(client, pictures, query="", headers=None):
    files = {"images": [(io.BytesIO(data), f"picture-{i}.png") for i, data in enumerate(pictures)]}
    return client.post(f"/api/jobs{query}", data=files, headers=headers or {})


def fetch(client, url):
    """(status, mimetype, body) of a GET, its response closed (a file it streams is closed with it)."""
    with client.get(url) as response:
        return response.status_code, response.mimetype, response.data


def wait_for(client, job_id, until, timeout_s=120):
    """Poll the job until until(job) holds; the job."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = client.get(f"/api/jobs/{job_id}")
        assert response.status_code == 200, response.data
        job = response.get_json()["job"]
        if until(job):
            return job
        assert time.monotonic() < deadline, f"job stuck: {job}"
        time.sleep(0.1)


def test_a_batch_is_cut_out_by_a_worker_and_its_results_served(make_app, tmp_path):
    app = make_app()
    client = app.test_client()
    sizes = [(320, 240), (200, 300), (256, 256)]
    sent = [picture(w, h, i) for i, (w, h) in enumerate(sizes)]
    sent[1] = picture(200, 300, 1, fmt="JPEG")
    response = submit(client, sent)
    assert response.status_code == 202, response.data
    job = response.get_json()["job"]
    assert response.headers["Location"] == f"/api/jobs/{job['id']}"
    assert job["status"] == "queued" and job["pictures"] == 3 and len(job["id"]) >= 20
    with worker(tmp_path, settings(app.config["REPORT_DIR"])) as w:
        done = wait_for(client, job["id"], lambda j: j["status"] not in ("queued", "running"))
        assert done["status"] == "done", (done, w.output()[-3000:])
    assert done["progress"] == 1.0 and done["done"] == 3 and done["attempts"] == 1
    status, mimetype, archive = fetch(client, done["zip"])
    assert status == 200 and mimetype == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        names = z.namelist()
        assert names == ["0000-picture-0.png", "0001-picture-1.png", "0002-picture-2.png"]
        for (width, height), name, item in zip(sizes, names, done["results"]):
            status, _mimetype, single = fetch(client, item["url"])
            assert status == 200 and single == z.read(name)
            with Image.open(io.BytesIO(single)) as cut:
                assert cut.mode == "RGBA" and cut.size == (width, height)
                alpha = np.asarray(cut)[..., 3]
            assert alpha.min() < 128 < alpha.max()  # something kept, something made transparent
    assert not (files.folder(app, job["id"]) / "in").exists()  # the pictures as sent are not kept
    # The client deletes the results: gone from disk, and the job says so (410).
    deleted = client.delete(f"/api/jobs/{job['id']}")
    assert deleted.status_code == 200 and deleted.get_json()["job"]["status"] == "expired"
    assert not files.folder(app, job["id"]).exists()
    gone = client.get(f"/api/jobs/{job['id']}")
    assert gone.status_code == 410 and gone.get_json()["error"]["code"] == "expired"


def test_a_worker_killed_mid_job_leaves_it_to_the_next_worker(make_app, tmp_path):
    app = make_app()
    client = app.test_client()
    job_id = submit(client, [picture(640, 480, i) for i in range(12)]).get_json()["job"]["id"]
    env = settings(app.config["REPORT_DIR"])
    first = worker(tmp_path, env, "first")
    w = first.__enter__()
    try:
        running = wait_for(client, job_id, lambda j: j["status"] == "running" and j["done"] >= 2, 90)
        w.kill()
    finally:
        first.__exit__(None, None, None)
    assert running["done"] < 12, "the job ended before the worker could be killed"
    # The next look at it finds its worker gone (same machine: the process is checked) and queues it again.
    requeued = wait_for(client, job_id, lambda j: j["status"] != "running", 10)
    assert requeued["status"] == "queued" and requeued["code"] == "worker_lost"
    assert "stopped before it finished" in requeued["message"]
    with worker(tmp_path, env, "second") as second:
        done = wait_for(client, job_id, lambda j: j["status"] not in ("queued", "running"))
        assert done["status"] == "done", (done, second.output()[-3000:])
    assert done["attempts"] == 2 and done["done"] == 12 and len(done["results"]) == 12
    # Pictures the first attempt finished were kept, not cut out again.
    assert f"{running['done']} of 12" not in done["message"]


def test_a_job_out_of_retries_fails_and_says_why_in_the_clients_language(make_app, tmp_path):
    app = make_app(JOB_RETRIES=0)
    client = app.test_client()
    job_id = submit(client, [picture(640, 480, i) for i in range(12)]).get_json()["job"]["id"]
    with worker(tmp_path, settings(app.config["REPORT_DIR"], JOB_RETRIES=0)) as w:
        wait_for(client, job_id, lambda j: j["status"] == "running" and j["done"] >= 1, 90)
        w.kill()
    failed = wait_for(client, job_id, lambda j: j["status"] != "running", 10)
    assert failed["status"] == "failed" and failed["code"] == "worker_lost" and failed["attempts"] == 1
    assert failed["message"] == "The worker running this job stopped before it finished."
    ja = client.get(f"/api/jobs/{job_id}", headers={"Accept-Language": "ja"}).get_json()["job"]
    assert ja["code"] == "worker_lost" and ja["message"] != failed["message"] and ja["message"].strip()


def test_an_error_is_retried_a_bounded_number_of_times_then_the_job_fails(make_app, tmp_path):
    # The worker's cutout model is missing: every attempt fails the same way (503 model_unavailable).
    app = make_app(JOB_RETRIES=1)
    client = app.test_client()
    job_id = submit(client, [picture(64, 64)]).get_json()["job"]["id"]
    env = settings(app.config["REPORT_DIR"], JOB_RETRIES=1, CUTOUT_MODEL=str(tmp_path / "no-such-model"))
    with worker(tmp_path, env) as w:
        failed = wait_for(client, job_id, lambda j: j["status"] in ("failed", "done"), 60)
        assert failed["status"] == "failed", w.output()[-3000:]
    assert failed["attempts"] == 2 and failed["code"] == "model_unavailable" and failed["message"]
    assert "no-such-model" not in failed["message"]  # never where the server keeps its files


def test_a_running_job_is_cancelled_and_its_files_removed(make_app, tmp_path):
    app = make_app()
    client = app.test_client()
    job_id = submit(client, [picture(640, 480, i) for i in range(12)]).get_json()["job"]["id"]
    with worker(tmp_path, settings(app.config["REPORT_DIR"])):
        wait_for(client, job_id, lambda j: j["status"] == "running" and j["done"] >= 1, 90)
        cancelled = client.delete(f"/api/jobs/{job_id}")
        assert cancelled.status_code == 200 and cancelled.get_json()["job"]["status"] == "cancelled"
        deadline = time.monotonic() + 30
        while files.folder(app, job_id).exists():  # the worker stops at the next picture and tidies up
            assert time.monotonic() < deadline, "a cancelled job's files stayed"
            time.sleep(0.1)
        job = client.get(f"/api/jobs/{job_id}").get_json()["job"]
    assert job["status"] == "cancelled" and job["done"] < 12
    assert client.get(f"/api/jobs/{job_id}/results.zip").status_code == 409


def test_results_expire_after_the_setting(make_app, tmp_path):
    app = make_app(JOB_RESULT_SECONDS=2)
    client = app.test_client()
    job_id = submit(client, [picture(96, 96)]).get_json()["job"]["id"]
    with worker(tmp_path, settings(app.config["REPORT_DIR"], JOB_RESULT_SECONDS=2, JOB_LEASE_SECONDS=2)):
        done = wait_for(client, job_id, lambda j: j["status"] == "done", 60)
        deadline = time.monotonic() + 20
        while files.folder(app, job_id).exists():  # the worker's sweep deletes them
            assert time.monotonic() < deadline, "expired results were not deleted"
            time.sleep(0.2)
    assert fetch(client, done["zip"])[0] == 410
    assert client.get(f"/api/jobs/{job_id}").get_json()["error"]["code"] == "expired"


def json_error(response, status, code):
    assert response.status_code == status, response.data
    assert response.mimetype == "application/json" and response.get_json()["error"]["code"] == code
    return response


def test_submissions_meet_clear_limits(make_app):
    app = make_app(JOB_MAX_PICTURES=3, JOB_MAX_PIXELS=100_000, JOB_CLIENT_ACTIVE=1, JOB_MAX_BYTES=500_000,
                   JOB_RATE_LIMIT="1000 per minute")
    client = app.test_client()
    json_error(client.post("/api/jobs"), 400, "missing_file")
    json_error(submit(client, [picture(32, 32)] * 4), 413, "too_many_pictures")
    json_error(submit(client, [picture(300, 300), picture(120, 100)]), 413, "job_too_large")
    json_error(submit(client, [b"GIF89a not accepted"]), 415, "unsupported_type")
    json_error(submit(client, [picture(32, 32)], "?alpha=purple"), 400, "bad_option")
    json_error(submit(client, [picture(32, 32)], "?model=no-such-model"), 400, "unknown_model")
    json_error(submit(client, [np.random.default_rng(0).bytes(600_000)]), 413, "too_large")
    json_error(client.get("/api/jobs/jnosuchjobanywhere0000000"), 404, "not_found")
    first = submit(client, [picture(32, 32)])
    assert first.status_code == 202  # no worker runs here: it stays queued
    busy = json_error(submit(client, [picture(32, 32)]), 429, "too_many_jobs")
    assert int(busy.headers["Retry-After"]) >= 1
    other = submit(client, [picture(32, 32)], headers={"X-Forwarded-For": "ignored"},)
    assert other.status_code == 429  # one client: the forwarded header is not trusted without PROXY_FIX
    job_id = first.get_json()["job"]["id"]
    assert client.get(f"/api/jobs/{job_id}/results/0").status_code == 409
    assert client.delete(f"/api/jobs/{job_id}").get_json()["job"]["status"] == "cancelled"
    assert not files.folder(app, job_id).exists()
    assert submit(client, [picture(32, 32)]).status_code == 202  # the cancelled one no longer counts


def test_submissions_per_client_are_rate_limited(make_app):
    app = make_app(JOB_RATE_LIMIT="2 per minute", JOB_CLIENT_ACTIVE=10)
    client = app.test_client()
    assert [submit(client, [picture(32, 32)]).status_code for _ in range(2)] == [202, 202]
    limited = json_error(submit(client, [picture(32, 32)]), 429, "too_many_requests")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60


def test_a_full_queue_answers_503_with_retry_after(make_app):
    app = make_app(JOB_QUEUE_MAX=1, JOB_CLIENT_ACTIVE=5)
    client = app.test_client()
    assert submit(client, [picture(32, 32)]).status_code == 202
    full = json_error(submit(client, [picture(32, 32)]), 503, "queue_full")
    assert int(full.headers["Retry-After"]) >= 1


def test_an_unreachable_queue_answers_503_and_keeps_nothing(make_app):
    app = make_app(JOB_QUEUE_URL="redis://127.0.0.1:9/0")  # nothing listens on the discard port
    client = app.test_client()
    down = json_error(submit(client, [picture(32, 32)]), 503, "queue_unavailable")
    assert int(down.headers["Retry-After"]) >= 1
    assert not any((files.folder(app, "x").parent).glob("*"))
    with db.session(app) as s:
        assert s.query(Job).count() == 0


def test_behind_gunicorn_with_redis_a_worker_runs_jobs_submitted_over_http(tmp_path):
    report_dir = tmp_path / "reports"
    with redis_server() as redis:
        env = settings(report_dir, JOB_QUEUE_URL=redis.url)
        with gunicorn(tmp_path, env, workers=2) as (url, _log), worker(tmp_path, env) as w, \
                urllib3.PoolManager(retries=False) as http:
            ids = []
            for n in range(2):
                fields = {"images": (f"p{n}.png", picture(200, 150, n), "image/png")}
                response = http.request("POST", url + "/api/jobs?output=mask", fields=fields, timeout=30)
                assert response.status == 202, response.data
                ids.append(response.json()["job"]["id"])
            for job_id in ids:
                deadline = time.monotonic() + 120
                while True:
                    job = http.request("GET", f"{url}/api/jobs/{job_id}", timeout=10).json()["job"]
                    if job["status"] not in ("queued", "running"):
                        break
                    assert time.monotonic() < deadline, job
                    time.sleep(0.2)
                assert job["status"] == "done", w.output()[-3000:]
                mask = http.request("GET", url + job["results"][0]["url"], timeout=10)
                assert mask.status == 200 and mask.headers["Content-Type"] == "image/png"
                with Image.open(io.BytesIO(mask.data)) as image:
                    assert image.mode == "L" and image.size == (200, 150)
            assert "redis://127.0.0.1" in w.output()


def test_a_picture_the_worker_cannot_decode_fails_at_once_without_retries(make_app, tmp_path):
    app = make_app(JOB_RETRIES=2)
    client = app.test_client()
    whole = picture(200, 150)
    truncated = whole[: len(whole) // 2]  # its header is whole: accepted on submission
    job_id = submit(client, [truncated]).get_json()["job"]["id"]
    with worker(tmp_path, settings(app.config["REPORT_DIR"], JOB_RETRIES=2)) as w:
        failed = wait_for(client, job_id, lambda j: j["status"] in ("failed", "done"), 60)
        assert failed["status"] == "failed", w.output()[-3000:]
    assert failed["code"] == "bad_image" and failed["attempts"] == 1  # refused again would be refused again
    assert "could not be decoded" in failed["message"]


def test_a_worker_on_another_machine_is_lost_when_its_heartbeat_stops(make_app):
    app = make_app(JOB_LEASE_SECONDS=30, JOB_RETRIES=1)
    client = app.test_client()
    job_id = submit(client, [picture(64, 64)]).get_json()["job"]["id"]
    elsewhere = "another-machine|4242|123456"  # no process of ours to look at: only its heartbeat
    with db.session(app, write=True) as s:
        s.execute(update(Job).where(Job.key == job_id).values(status="running", worker=elsewhere, attempts=1,
                                                              heartbeat=utcnow()))
    assert client.get(f"/api/jobs/{job_id}").get_json()["job"]["status"] == "running"  # within its lease
    with db.session(app, write=True) as s:
        s.execute(update(Job).where(Job.key == job_id).values(heartbeat=utcnow() - datetime.timedelta(seconds=31)))
    job = client.get(f"/api/jobs/{job_id}").get_json()["job"]
    assert job["status"] == "queued" and job["code"] == "worker_lost"  # queued again for a live worker


def test_with_postgresql_and_redis_instances_share_jobs_without_a_shared_disk(tmp_path, postgres):
    """Three instances, each with its own empty report folder: web 1 takes the job, a worker runs it,
    web 2 serves its progress and results; the pictures and results are rows in PostgreSQL."""
    database_url = postgres()
    with redis_server() as redis:
        shared = {"DATABASE_URL": database_url, "JOB_QUEUE_URL": redis.url}
        web1 = create_app({"TESTING": True, "REPORT_DIR": str(tmp_path / "web1"), "CUTOUT_MODEL": "demo-cutout",
                           **shared})
        web2 = create_app({"TESTING": True, "REPORT_DIR": str(tmp_path / "web2"), "CUTOUT_MODEL": "demo-cutout",
                           **shared})
        try:
            job_id = submit(web1.test_client(), [picture(160, 120, 0), picture(120, 160, 1)]).get_json()["job"]["id"]
            reader = web2.test_client()
            with worker(tmp_path, settings(tmp_path / "worker", **shared)) as w:
                done = wait_for(reader, job_id, lambda j: j["status"] not in ("queued", "running"), 120)
                assert done["status"] == "done", w.output()[-3000:]
            status, _mimetype, archive = fetch(reader, done["zip"])
            assert status == 200
            with zipfile.ZipFile(io.BytesIO(archive)) as z:
                assert len(z.namelist()) == 2
                for (width, height), name in zip([(160, 120), (120, 160)], z.namelist()):
                    with Image.open(io.BytesIO(z.read(name))) as cut:
                        assert cut.mode == "RGBA" and cut.size == (width, height)
            assert fetch(reader, done["results"][1]["url"])[0] == 200
            for folder in ("web1", "web2", "worker"):  # nothing of the job on any instance's disk
                assert not list((tmp_path / folder / "jobs" / "batch").glob("*")), folder
            with db.session(web2) as s:
                job = s.query(Job).filter(Job.key == job_id).one()
                assert files.sizes(web2, job, "out/") and not files.sizes(web2, job, "in/")
            assert reader.delete(f"/api/jobs/{job_id}").get_json()["job"]["status"] == "expired"
            with db.session(web1) as s:
                assert not files.exists(web1, s.query(Job).filter(Job.key == job_id).one())
            assert web1.test_client().get(f"/api/jobs/{job_id}").status_code == 410
        finally:
            db.dispose(web1)
            db.dispose(web2)


def test_jobs_whose_messages_a_restarted_redis_lost_are_queued_again(make_app, tmp_path):
    with redis_server() as redis:
        app = make_app(JOB_QUEUE_URL=redis.url, JOB_CLIENT_ACTIVE=5)
        client = app.test_client()
        ids = [submit(client, [picture(96, 96, n)]).get_json()["job"]["id"] for n in range(2)]
        redis.restart()  # no persistence: both messages are gone, the jobs' rows still say queued
        time.sleep(2.5)  # older than the lease below: a worker looks for stranded jobs
        with worker(tmp_path, settings(app.config["REPORT_DIR"], JOB_QUEUE_URL=redis.url,
                                       JOB_LEASE_SECONDS=2)) as w:
            for job_id in ids:
                done = wait_for(client, job_id, lambda j: j["status"] not in ("queued", "running"), 60)
                assert done["status"] == "done" and done["attempts"] == 1, (done, w.output()[-3000:])
            assert "queued with no message" in w.output()
