"""Background retraining jobs under faults (issue 28, item 6): a job whose process dies frees the way
at once, racing requests start exactly one job (SQLite and PostgreSQL), a shell retrain respects a
running job, and no two jobs share a version folder.

The jobs are queued by the endpoint and run by a real `flask worker` (app/jobs/retrain.py) as
`flask train classifier --from-gallery --job N` processes; RETRAIN_DATA_DIR names a missing folder,
so each one fails within seconds by itself when it is not killed first. Every wait is bounded.
"""
import os
import signal
import threading
import time

import pytest
from queue_support import Worker, worker

from app import create_app
from app.commands import retrain as retrain_command
from app.storage import db, job_lock, model_versions
from app.storage.models import Job

TOKEN = "jobs-test-token-that-is-long-enough-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def make_app(tmp_path):
    apps, workers = [], []

    def make(database_url=None):
        config = {"REPORT_DIR": str(tmp_path / "reports"), "TORCH_THREADS": 1,
                  "RETRAIN_DATA_DIR": str(tmp_path / "no-such-data")}
        app = create_app({"TESTING": True, "ADMIN_TOKEN": TOKEN, "DATABASE_URL": database_url, **config})
        apps.append(app)
        env = {f"FLASK_{key}": str(value) for key, value in config.items()}
        if database_url:
            env["FLASK_DATABASE_URL"] = database_url
        workers.append(Worker(tmp_path, env))  # runs the queued jobs, as `flask worker` does in production
        return app
    yield make
    for app in apps:
        wait_for_no_job(app)
        db.dispose(app)
    for running in workers:
        running.stop()


def root_of(app):
    return app.config["REPORT_DIR"]


def wait_for_no_job(app, timeout_s=60):
    """Until no retrain job is queued or running and no live process holds the retrain lock."""
    deadline = time.monotonic() + timeout_s
    while job_lock.is_held(root_of(app), "retrain") or any(status in ("queued", "running")
                                                           for _id, status, _m in jobs(app)):
        assert time.monotonic() < deadline, "a retrain job did not end"
        time.sleep(0.1)


def wait_for_running_job(app, timeout_s=60):
    """The pid of the process running the queued job, once a worker has started it."""
    deadline = time.monotonic() + timeout_s
    while not (job_lock.is_held(root_of(app), "retrain") and job_lock.holder_pid(root_of(app), "retrain")):
        assert time.monotonic() < deadline, "no worker started the retrain job"
        time.sleep(0.02)
    return job_lock.holder_pid(root_of(app), "retrain")


def jobs(app):
    with db.session(app) as s:
        return [(j.id, j.status, j.message) for j in s.query(Job).order_by(Job.id)]


def test_a_killed_job_does_not_block_the_next_one(make_app):
    app = make_app()
    client = app.test_client()
    first = client.post("/api/classifiers/retrain", headers=AUTH)
    assert first.status_code == 202, first.data
    pid = wait_for_running_job(app)
    assert pid and pid != os.getpid()
    os.kill(pid, signal.SIGKILL)  # the job's process dies mid-run, its row still "running"
    wait_for_no_job(app, 10)
    started = time.monotonic()
    second = client.post("/api/classifiers/retrain", headers=AUTH)
    assert second.status_code == 202, second.data  # at once, not after a stale limit
    assert time.monotonic() - started < 5
    first_row = jobs(app)[0]
    assert first_row[1] == "failed" and "died" in first_row[2]


def test_racing_retrain_requests_start_exactly_one_job(make_app, database_url):
    app = make_app(database_url)
    for _ in range(3):
        barrier = threading.Barrier(8)
        statuses = []

        def request(barrier=barrier, statuses=statuses):
            client = app.test_client()
            barrier.wait(timeout=30)
            statuses.append(client.post("/api/classifiers/retrain", headers=AUTH).status_code)
        threads = [threading.Thread(target=request) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert sorted(statuses) == [202] + [409] * 7
        wait_for_no_job(app)
    assert len(jobs(app)) == 3


def test_a_shell_retrain_respects_a_running_job(make_app):
    app = make_app()
    fd = job_lock.acquire(root_of(app), "retrain")  # a running job's process holds the lock
    try:
        result = app.test_cli_runner().invoke(args=["train", "classifier", "--from-gallery"])
        assert result.exit_code != 0 and "already running" in result.output
    finally:
        os.close(fd)


def test_version_folders_are_unique_within_one_second(tmp_path):
    made = {retrain_command.new_version_dir(tmp_path) for _ in range(20)}
    assert len(made) == 20
    assert all(path.is_dir() and path.parent == tmp_path / model_versions.TRAINED_DIR for path in made)


def test_a_worker_killed_with_its_job_leaves_the_job_failed_with_a_reason(make_app):
    app = make_app()
    client = app.test_client()
    first = client.post("/api/classifiers/retrain", headers=AUTH)
    assert first.status_code == 202, first.data
    job_id = first.get_json()["job"]["id"]
    child = wait_for_running_job(app)
    with open(f"/proc/{child}/stat") as stat:
        worker_pid = int(stat.read().rsplit(")", 1)[1].split()[1])  # its parent: the worker
    assert worker_pid != os.getpid()
    os.kill(worker_pid, signal.SIGKILL)  # the whole worker goes (a container stopped): job and worker
    os.kill(child, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while job_lock.is_held(root_of(app), "retrain"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    job = client.get(f"/api/jobs/{job_id}", headers=AUTH).get_json()["job"]
    assert job["status"] == "failed" and "died" in job["message"]  # said at the first look, not stuck
    assert client.post("/api/classifiers/retrain", headers=AUTH).status_code == 202
    env = {f"FLASK_{key}": str(app.config[key]) for key in ("REPORT_DIR", "RETRAIN_DATA_DIR")}
    with worker(app.config["REPORT_DIR"], env):  # a new worker takes the new job
        wait_for_no_job(app)
