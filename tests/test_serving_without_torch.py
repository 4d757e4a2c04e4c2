"""Serving never loads torch: a gunicorn worker that has identified, cut out, found faces, enrolled
a character and listed the cast has no torch library mapped. Heads are numpy files, backbones
and cutout networks ONNX Runtime sessions; torch is for building and training only (and SciPy
for the job workers' teaching)."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
import urllib3
from conftest import encode, needs_classifier, needs_cutout
from servers import gunicorn

TOKEN = "serving-test-token-of-forty-characters!!"


def _status(pid):
    return dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())


@needs_classifier
@needs_cutout
@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
def test_a_serving_worker_never_loads_torch(tmp_path):
    rng = np.random.default_rng(0)
    faces = [encode(rng.integers(0, 255, (96, 96, 3), np.uint8)) for _ in range(2)]
    picture = encode(rng.integers(0, 255, (480, 640, 3), np.uint8), "JPEG")
    env = {"FLASK_REPORT_DIR": str(tmp_path / "reports"), "FLASK_ADMIN_TOKEN": TOKEN}
    with gunicorn(tmp_path, env) as (url, log):
        worker = int(re.findall(r"Booting worker with pid: (\d+)", Path(log).read_text())[-1])
        http = urllib3.PoolManager(retries=False, timeout=120)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        steps = [
            ("POST", "/api/identify", {"faces": ("f.png", faces[0])}, {}, 200),
            ("POST", "/api/cutout", {"image": ("p.jpg", picture)}, {}, 200),
            ("POST", "/api/faces", {"image": ("p.jpg", picture)}, {}, 200),
            ("POST", "/api/characters", [("name", "probe"), ("faces", ("a.png", faces[0])),
                                         ("faces", ("b.png", faces[1]))], auth, 201),
            ("GET", "/api/characters", None, {}, 200),
            ("POST", "/api/identify", {"faces": ("f.png", faces[1])}, {}, 200),
        ]
        for method, path, fields, headers, status in steps:
            answer = http.request(method, url + path, fields=fields, headers=headers)
            assert answer.status == status, (path, answer.data[:300])
        identified = json.loads(answer.data)["faces"][0]["predictions"]
        assert identified[0]["label"] == "probe"  # the gallery took part, through the ONNX backbone
        maps = Path(f"/proc/{worker}/maps").read_text()
        status = _status(worker)
        http.clear()
    assert "onnxruntime" in maps  # the probe looks at the right process
    assert not [line for line in maps.splitlines() if "torch" in line.rsplit("/", 1)[-1]]
    # Nor SciPy: only teach jobs' clustering needs it, and the app's image leaves it out.
    assert not [line for line in maps.splitlines() if "/scipy" in line]
    print(f"\nworker after identify, cutout, faces, enrol, list: RSS {status['VmRSS'].strip()}, "
          f"peak {status['VmHWM'].strip()}, no torch library mapped")
