"""Drive a real gunicorn (on 127.0.0.1 only) with a mix of identify and cutout requests.

    .venv/bin/python scripts/load.py [--duration 60] [--workers 2] [--cutout-clients 4]
                                     [--identify-clients 2] [--json out.json]

Starts `gunicorn --config gunicorn.conf.py wsgi:app` on a free loopback port with --workers
workers (worker recycling off, so memory growth would show), warms both models up, then for
--duration seconds (or until --max-requests answers) runs:
- cutout clients (the configured cutout model: set FLASK_CUTOUT_MODEL to choose), each sending
  a 720 x 1024 picture again as soon as it has an answer
  (saturating: more clients than cutout slots and queue places, so some get 503);
- identify clients, each sending one face crop, then pausing --think seconds.
It prints requests/s, p50/p95 latency per endpoint (answered 200), how many got 503 (with
Retry-After) or anything else, and each worker's resident memory (RSS) sampled every
--sample seconds; then the same as JSON. Not a test: figures depend on the machine.
"""
import argparse
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import urllib3
from drawn_picture import drawn_picture

ROOT = Path(__file__).resolve().parent.parent
MAX_DURATION = 1800  # seconds: the script never runs unbounded
MAX_REQUESTS = 100_000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_picture(width=720, height=1024, seed=0):
    """A picture with figures on a demo-cast backdrop (or a gradient), and a face-sized crop of it."""
    base = drawn_picture(width, height, seed, figures=2, top=2)
    face = base.crop((width // 3, height // 3, width // 3 + 140, height // 3 + 160))
    return png(base), png(face)


def png(image):
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def rss_mb(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def worker_pids(master):
    """Children of the gunicorn master (its workers)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master:
            pids.append(int(stat.parent.name))
    return sorted(pids)


def start_gunicorn(args, log):
    port = free_port()
    env = dict(os.environ, GUNICORN_BIND=f"127.0.0.1:{port}", GUNICORN_WORKERS=str(args.workers),
               GUNICORN_THREADS=str(args.threads), GUNICORN_MAX_REQUESTS="0", GUNICORN_TIMEOUT="300",
               FLASK_REPORT_DIR=str(Path(log).parent / "reports"))
    proc = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "--config", "gunicorn.conf.py",
                             "--access-logfile", "/dev/null", "wsgi:app"],
                            cwd=ROOT, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    http = urllib3.PoolManager(retries=False)
    deadline = time.time() + 120
    while True:
        try:
            if http.request("GET", url + "/healthz", timeout=2).status == 200:
                return proc, url
        except urllib3.exceptions.HTTPError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            sys.exit(f"gunicorn did not start:\n{Path(log).read_text(errors='replace')[-3000:]}")
        time.sleep(0.3)


class Recorder:
    def __init__(self, limit):
        self.lock = threading.Lock()
        self.rows = []  # (endpoint, status, seconds, started at)
        self.limit = limit

    def add(self, row):
        with self.lock:
            self.rows.append(row)
            return len(self.rows) < self.limit


def client(url, endpoint, body, stop, recorder, think, counting):
    http = urllib3.PoolManager(retries=False, timeout=300)
    field = {"identify": "faces", "cutout": "image"}[endpoint]
    while not stop.is_set():
        start = time.perf_counter()
        try:
            # A new connection each time, as from many browsers: a kept-alive connection would stay
            # with the worker that accepted it, and one worker could end up with every client.
            r = http.request("POST", f"{url}/api/{endpoint}", fields={field: ("x.png", body, "image/png")},
                             headers={"Connection": "close"})
            status = r.status
        except urllib3.exceptions.HTTPError as exc:
            status = f"error: {type(exc).__name__}"
        elapsed = time.perf_counter() - start
        if counting.is_set() and not recorder.add((endpoint, status, elapsed, start)):
            stop.set()
        if think:
            stop.wait(think)


def percentile(values, q):
    return float(np.percentile(values, q)) if values else None


def summarise(recorder, seconds, memory):
    out = {"seconds": round(seconds, 1), "endpoints": {}}
    total_ok = 0
    for endpoint in ("identify", "cutout"):
        rows = [r for r in recorder.rows if r[0] == endpoint]
        ok = [r[2] * 1000 for r in rows if r[1] == 200]
        total_ok += len(ok)
        statuses = {}
        for r in rows:
            statuses[str(r[1])] = statuses.get(str(r[1]), 0) + 1
        out["endpoints"][endpoint] = {
            "requests": len(rows), "statuses": statuses, "ok_per_s": round(len(ok) / seconds, 2),
            "p50_ms": round(percentile(ok, 50), 1) if ok else None,
            "p95_ms": round(percentile(ok, 95), 1) if ok else None,
            "max_ms": round(max(ok), 1) if ok else None,
            "mean_ms": round(statistics.mean(ok), 1) if ok else None}
    out["ok_per_s"] = round(total_ok / seconds, 2)
    out["memory"] = memory
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60, help=f"seconds of measured load (at most {MAX_DURATION})")
    parser.add_argument("--warmup", type=float, default=20, help="seconds of load before measuring")
    parser.add_argument("--max-requests", type=int, default=20_000,
                        help=f"stop after this many answers (at most {MAX_REQUESTS})")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=12, help="gunicorn threads per worker")
    parser.add_argument("--cutout-clients", type=int, default=4)
    parser.add_argument("--identify-clients", type=int, default=2)
    parser.add_argument("--think", type=float, default=0.2, help="identify clients' pause between requests (s)")
    parser.add_argument("--sample", type=float, default=5, help="seconds between memory samples")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not 0 < args.duration <= MAX_DURATION or not 0 < args.max_requests <= MAX_REQUESTS:
        sys.exit(f"--duration must be in (0, {MAX_DURATION}] and --max-requests in (0, {MAX_REQUESTS}]")

    picture, face = test_picture()
    with tempfile.TemporaryDirectory(prefix="load-") as tmp:
        log = Path(tmp) / "gunicorn.log"
        proc, url = start_gunicorn(args, log)
        stop, counting = threading.Event(), threading.Event()
        try:
            recorder = Recorder(args.max_requests)
            threads = [threading.Thread(target=client, args=(url, "cutout", picture, stop, recorder, 0, counting))
                       for _ in range(args.cutout_clients)]
            threads += [threading.Thread(target=client, args=(url, "identify", face, stop, recorder, args.think,
                                                              counting))
                        for _ in range(args.identify_clients)]
            for t in threads:
                t.daemon = True  # an interrupted run ends without waiting for them
                t.start()
            print(f"gunicorn {proc.pid} on {url}: {args.workers} workers x {args.threads} threads; "
                  f"{args.cutout_clients} cutout + {args.identify_clients} identify clients; "
                  f"warm-up {args.warmup:g} s, then {args.duration:g} s measured", flush=True)
            stop.wait(args.warmup)
            memory = {"seconds": [], "workers": {}}
            began = time.perf_counter()
            counting.set()
            deadline = began + args.duration
            while not stop.is_set() and time.perf_counter() < deadline:
                now = round(time.perf_counter() - began, 1)
                memory["seconds"].append(now)
                for pid in worker_pids(proc.pid):
                    memory["workers"].setdefault(str(pid), []).append(
                        None if rss_mb(pid) is None else round(rss_mb(pid), 1))
                stop.wait(min(args.sample, max(0.0, deadline - time.perf_counter())))
            seconds = time.perf_counter() - began
            counting.clear()
            stop.set()
            for t in threads:
                t.join(300)
        finally:
            stop.set()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    result = summarise(recorder, seconds, memory)
    result["setup"] = {k: getattr(args, k) for k in ("workers", "threads", "cutout_clients", "identify_clients",
                                                       "think", "warmup")}
    result["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    print(f"\n{result['seconds']} s measured, {result['ok_per_s']} answered requests/s (200)")
    print(f"{'endpoint':10s} {'requests':>8s} {'200/s':>7s} {'p50 ms':>8s} {'p95 ms':>8s} {'max ms':>8s}  statuses")
    for endpoint, e in result["endpoints"].items():
        p50 = f"{e['p50_ms']:8.1f}" if e["p50_ms"] is not None else f"{'-':>8s}"
        p95 = f"{e['p95_ms']:8.1f}" if e["p95_ms"] is not None else f"{'-':>8s}"
        top = f"{e['max_ms']:8.1f}" if e["max_ms"] is not None else f"{'-':>8s}"
        print(f"{endpoint:10s} {e['requests']:8d} {e['ok_per_s']:7.2f} {p50} {p95} {top}  {e['statuses']}")
    print("worker RSS, MB (first, max, last over the samples):")
    for pid, values in memory["workers"].items():
        seen = [v for v in values if v is not None]
        if seen:
            print(f"  pid {pid}: {seen[0]:.0f}, {max(seen):.0f}, {seen[-1]:.0f}   series {seen}")
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
