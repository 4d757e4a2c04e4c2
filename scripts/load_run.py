"""A bounded load run of the multi-machine shape on loopback: 2 app instances (gunicorn), 2 job
workers, Redis and PostgreSQL, as tests/test_deployment.py starts them.

    .venv/bin/python scripts/load_run.py [--seconds 120] [--cutout-model demo-cutout]

While batch cutout jobs keep both workers busy (a few always queued), a client asks /api/identify
one face at a time, round-robin over the two instances. Prints identify latency (p50, p95) and
rate, cutout jobs and pictures per minute, and the largest RSS of each kind of process, sampled
every 5 s. Everything runs on this machine: the figures say what these cores sustain together.
"""
import argparse
import collections
import re
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import numpy as np  # noqa: E402
import urllib3  # noqa: E402
from conftest import encode  # noqa: E402
from postgres import postgres_server  # noqa: E402
from queue_support import redis_server, worker  # noqa: E402
from servers import gunicorn  # noqa: E402

PICTURES_PER_JOB = 4
JOBS_IN_FLIGHT = 4


def rss_mb(pid):
    """RSS of a process and its children (gunicorn's workers), in MB."""
    total = 0
    pids = [pid] + [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for p in pids:
        try:
            line = next(x for x in Path(f"/proc/{p}/status").read_text().splitlines() if x.startswith("VmRSS:"))
            total += int(line.split()[1]) / 1024
        except (OSError, StopIteration):
            pass
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--cutout-model", default="demo-cutout")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    face = encode(rng.integers(0, 255, (96, 96, 3), np.uint8))
    pictures = [encode(rng.integers(0, 255, (480, 640, 3), np.uint8), "JPEG") for _ in range(PICTURES_PER_JOB)]
    tmp = Path(ROOT / ".cache" / "load-run")
    tmp.mkdir(parents=True, exist_ok=True)
    with postgres_server() as databases, redis_server() as redis:
        shared = {"FLASK_DATABASE_URL": databases(), "FLASK_JOB_QUEUE_URL": redis.url,
                  "FLASK_CUTOUT_MODEL": args.cutout_model, "FLASK_JOB_CLIENT_ACTIVE": "100",
                  "FLASK_JOB_RATE_LIMIT": "10000 per minute"}

        def own(name):
            return {**shared, "FLASK_REPORT_DIR": str(tmp / name)}

        with gunicorn(tmp, own("web1"), workers=1) as (web1, log1), \
                gunicorn(tmp, own("web2"), workers=1) as (web2, log2), \
                worker(tmp, own("worker1"), "worker1") as w1, worker(tmp, own("worker2"), "worker2") as w2:
            masters = [int(re.search(r"Listening at: \S+ \((\d+)\)", Path(log).read_text()).group(1))
                       for log in (log1, log2)]
            http = urllib3.PoolManager(maxsize=8, retries=False)
            stop = time.monotonic() + args.seconds
            latencies, jobs_done, pictures_done, rss = [], [], [0], {"web": 0.0, "worker": 0.0}
            # What did not go through: identify statuses other than 200, job submissions other
            # than 202, and jobs that ended other than done.
            other = collections.Counter()
            servers = [web1, web2]

            def identify():
                n = 0
                while time.monotonic() < stop:
                    started = time.monotonic()
                    answer = http.request("POST", servers[n % 2] + "/api/identify", fields={"faces": ("f.png", face)},
                                          timeout=60)
                    if answer.status == 200:
                        latencies.append(time.monotonic() - started)
                    else:
                        other[f"identify {answer.status}"] += 1
                    n += 1

            def cutouts():
                pending = []
                while time.monotonic() < stop:
                    while len(pending) < JOBS_IN_FLIGHT:
                        fields = [("images", (f"{i}.jpg", p)) for i, p in enumerate(pictures)]
                        sent = http.request("POST", servers[len(pending) % 2] + "/api/jobs?output=mask",
                                            fields=fields, timeout=60)
                        if sent.status != 202:
                            other[f"job submission {sent.status}"] += 1
                            time.sleep(1)
                            break
                        pending.append(sent.json()["job"]["id"])
                    for key in list(pending):
                        job = http.request("GET", f"{web1}/api/jobs/{key}", timeout=30).json()["job"]
                        if job["status"] not in ("queued", "running"):
                            pending.remove(key)
                            if job["status"] == "done":
                                jobs_done.append(time.monotonic())
                                pictures_done[0] += job["pictures"]
                            else:
                                other[f"job {job['status']}"] += 1
                    time.sleep(0.5)

            def sample():
                while time.monotonic() < stop:
                    rss["web"] = max(rss["web"], *(rss_mb(p) for p in masters))
                    rss["worker"] = max(rss["worker"], rss_mb(w1.pid), rss_mb(w2.pid))
                    time.sleep(5)

            threads = [threading.Thread(target=f) for f in (identify, cutouts, sample)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            http.clear()
    minutes = args.seconds / 60
    q = statistics.quantiles(latencies, n=20) if len(latencies) >= 20 else [float("nan")] * 19
    print(f"{args.seconds} s, cutout model {args.cutout_model}, 2 app instances + 2 workers + Redis + PostgreSQL:")
    print(f"  identify: {len(latencies)} answered, {len(latencies) / args.seconds:.1f}/s, "
          f"p50 {statistics.median(latencies) * 1000:.0f} ms, p95 {q[18] * 1000:.0f} ms")
    print(f"  cutout jobs: {len(jobs_done) / minutes:.1f}/min ({pictures_done[0] / minutes:.0f} pictures/min of "
          f"640x480, {PICTURES_PER_JOB} per job, {JOBS_IN_FLIGHT} jobs kept in flight)")
    print(f"  largest RSS: an app instance (gunicorn, all its processes) {rss['web']:.0f} MB, "
          f"a worker {rss['worker']:.0f} MB")
    print(f"  not through: {dict(other) or 'none'}")


if __name__ == "__main__":
    main()
