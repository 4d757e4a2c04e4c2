"""A serving worker's memory after an identify, a cutout and the character list.

    .venv/bin/python scripts/serving_memory.py [CUTOUT_MODEL]

Starts gunicorn (one worker) as the tests do, sends a face crop to /api/identify, a 1920x1080
JPEG to /api/cutout and asks /api/characters; prints the worker's RSS, its peak (VmHWM) and
whether any torch library is mapped into it. Run it in two checkouts to compare.
"""
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import numpy as np  # noqa: E402
import urllib3  # noqa: E402
from conftest import encode  # noqa: E402
from servers import gunicorn  # noqa: E402


def main(model=None):
    with tempfile.TemporaryDirectory() as tmp:
        env = {"FLASK_REPORT_DIR": str(Path(tmp) / "reports")}
        if model:
            env["FLASK_CUTOUT_MODEL"] = model
        with gunicorn(tmp, env) as (url, log):
            pid = int(re.findall(r"Booting worker with pid: (\d+)", Path(log).read_text())[-1])
            http = urllib3.PoolManager(retries=False, timeout=300)
            rng = np.random.default_rng(0)
            face = encode(rng.integers(0, 255, (96, 96, 3), np.uint8))
            picture = encode(rng.integers(0, 255, (1080, 1920, 3), np.uint8), "JPEG")
            statuses = [http.request("POST", url + "/api/identify", fields={"faces": ("f.png", face)}).status,
                        http.request("POST", url + "/api/cutout", fields={"image": ("p.jpg", picture)}).status,
                        http.request("GET", url + "/api/characters").status]
            status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
            maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
            torch = any("torch" in line.rsplit("/", 1)[-1] for line in maps)
            http.clear()
    print(f"answers {statuses}; RSS {status['VmRSS'].strip()}, peak {status['VmHWM'].strip()}; "
          f"torch mapped: {torch}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
