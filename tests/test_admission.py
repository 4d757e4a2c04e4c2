"""Fair serving: per-endpoint slots and bounded queues; a full queue answers 503 with Retry-After."""
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import urllib3
from conftest import encode, needs_models
from servers import gunicorn

from app import create_app
from app.web.admission import Busy, Gate


def wait_until(condition, what, limit=30):
    """Poll until condition() holds (a bounded wait for another thread, not a timing check)."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}")
        time.sleep(0.01)


def hold(gate, entered, release, results):
    try:
        with gate.admit():
            entered.set()
            release.wait(30)
        results.append("done")
    except Busy as exc:
        results.append(exc)


def test_gate_runs_its_slots_queues_the_next_and_refuses_the_rest():
    gate = Gate("cutout", slots=1, queue=1, wait=60)
    release = threading.Event()
    first, second = threading.Event(), threading.Event()
    results = []
    a = threading.Thread(target=hold, args=(gate, first, release, results))
    a.start()
    first.wait(30)
    b = threading.Thread(target=hold, args=(gate, second, release, results))
    b.start()
    wait_until(lambda: gate.waiting == 1, "the second request queues")
    assert not second.is_set()  # queued, not running
    with pytest.raises(Busy) as refused:  # the third finds the slot taken and the queue full
        with gate.admit():
            pass
    assert refused.value.status == 503 and refused.value.code == "busy"
    assert int(refused.value.headers["Retry-After"]) >= 1
    release.set()
    a.join(30)
    b.join(30)
    assert results == ["done", "done"] and second.is_set()
    assert (gate.running, gate.waiting) == (0, 0)


def test_gate_wait_is_bounded():
    gate = Gate("cutout", slots=1, queue=5, wait=0)
    release, entered = threading.Event(), threading.Event()
    results = []
    holder = threading.Thread(target=hold, args=(gate, entered, release, results))
    holder.start()
    entered.wait(30)
    with pytest.raises(Busy, match="waited 0 s"):
        with gate.admit():
            pass
    release.set()
    holder.join(30)
    assert gate.waiting == 0


def test_gates_come_from_the_settings_and_identify_has_its_own(tmp_path):
    app = create_app({"TESTING": True, "REPORT_DIR": str(tmp_path), "CUTOUT_SLOTS": 3, "CUTOUT_QUEUE": 0,
                      "IDENTIFY_SLOTS": 5, "IDENTIFY_QUEUE": 7, "QUEUE_WAIT": 2.5})
    from app.web.admission import gate
    with app.app_context():
        cut, ident = gate("cutout"), gate("identify")
        assert (cut.slots, cut.queue, cut.wait) == (3, 0, 2.5)
        assert (ident.slots, ident.queue) == (5, 7)
        assert gate("cutout") is cut


@needs_models
def test_full_cutout_queue_answers_503_while_identify_is_served(tmp_path, demo_picture):
    """A real gunicorn (threaded worker) with one cutout slot and one queue place: a burst of
    cutouts gets 200s and 503s (JSON, Retry-After), never another answer; identify requests sent
    during the burst are all served."""
    path, comp = demo_picture
    picture = path.read_bytes()
    x, y, w, h = comp.faces[0][1]
    face = encode(comp.image[y:y + h, x:x + w])
    env = {"FLASK_REPORT_DIR": str(tmp_path / "reports"), "FLASK_CUTOUT_MODEL": "demo-cutout",
           "FLASK_CUTOUT_SLOTS": "1", "FLASK_CUTOUT_QUEUE": "1", "FLASK_IDENTIFY_SLOTS": "2",
           "FLASK_IDENTIFY_QUEUE": "4", "FLASK_QUEUE_WAIT": "120"}
    with gunicorn(tmp_path, env, workers=1, args=("--worker-class", "gthread", "--threads", "12")) as (url, _):
        http = urllib3.PoolManager(maxsize=16, retries=False, timeout=120)
        # Load both models first, so the burst measures admission, not loading.
        assert http.request("POST", url + "/api/identify", fields={"faces": ("f.png", face)}).status == 200
        assert http.request("POST", url + "/api/cutout", fields={"image": ("p.png", picture)}).status == 200
        start = threading.Barrier(10)

        def cutout(_):
            start.wait(30)
            return http.request("POST", url + "/api/cutout", fields={"image": ("p.png", picture)})

        def identify(_):
            start.wait(30)
            return http.request("POST", url + "/api/identify", fields={"faces": ("f.png", face)})

        with ThreadPoolExecutor(10) as pool:
            cutouts = [pool.submit(cutout, i) for i in range(8)]
            identifies = [pool.submit(identify, i) for i in range(2)]
            cutouts = [f.result() for f in cutouts]
            identifies = [f.result() for f in identifies]
    statuses = sorted(r.status for r in cutouts)
    assert set(statuses) == {200, 503}, statuses
    assert statuses.count(200) >= 2  # the one running and the one queued
    for response in cutouts:
        if response.status == 503:
            assert response.headers["Content-Type"].startswith("application/json")
            assert json.loads(response.data)["error"]["code"] == "busy"
            assert int(response.headers["Retry-After"]) >= 1
        else:
            assert response.headers["Content-Type"] == "image/png"
    assert [r.status for r in identifies] == [200, 200]
