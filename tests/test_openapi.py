"""The OpenAPI 3.1 description (app/web/openapi.json): served, complete, and true of a real server.

The property-based run drives the schemathesis CLI against gunicorn on loopback for a bounded
time (RUN_SECONDS), with pictures from tests/schemathesis_hooks.py, and every check it has
but two that do not fit multipart uploads: "positive_data_acceptance" (random bytes are a valid
`format: binary`, yet no picture) and "negative_data_rejection" (it counts an optional text field
drawn as an empty array as invalid, though on the wire it is simply absent). It must find no
5xx, and nothing else either: status codes, content types, headers and bodies as described.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, model_present
from servers import gunicorn

from app.web.api import OPENAPI

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
RUN_SECONDS = 60
METHODS = {"get", "post", "put", "patch", "delete"}


def spec():
    return json.loads(OPENAPI.read_text("utf-8"))


def test_the_description_is_served_as_kept(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.get_json() == spec()
    assert spec()["openapi"].startswith("3.1.")


def openapi_path(rule):
    """A Flask rule in OpenAPI's spelling: /api/jobs/<int:job_id> -> /api/jobs/{job_id}."""
    return re.sub(r"<(?:[^<>:]+:)?([^<>:]+)>", r"{\1}", rule)


def test_every_route_is_described_and_nothing_else(app):
    # Static files (the folder and the page's versioned vendor files and worker) are not API.
    assets = ("static", "static_files.")
    routes = {(openapi_path(rule.rule), method.lower()) for rule in app.url_map.iter_rules()
              if not rule.endpoint.startswith(assets)
              for method in rule.methods if method.lower() in METHODS}
    described = {(path, method) for path, item in spec()["paths"].items() for method in item if method in METHODS}
    assert routes == described


def test_every_error_status_the_api_answers_is_described():
    # Statuses every upload endpoint can answer: bad input, cross-site, too large, wrong type.
    paths = spec()["paths"]
    for path in ("/api/faces", "/api/identify", "/api/cutout", "/api/reports"):
        assert {"400", "403", "413", "415"} <= set(paths[path]["post"]["responses"]), path
    assert "429" in paths["/api/reports"]["post"]["responses"]
    assert {"200", "503"} <= set(paths["/healthz"]["get"]["responses"])


def test_schemathesis_finds_no_server_error(tmp_path):
    env = {"FLASK_REPORT_DIR": str(tmp_path / "reports"),
           # Reports are rate-limited to 20 a minute per client: let the run reach what lies behind.
           "FLASK_REPORT_RATE_LIMIT": "100000 per minute"}
    report = tmp_path / "schemathesis.json"
    with gunicorn(tmp_path, env) as (url, log):
        run = subprocess.run(
            [str(SCHEMATHESIS), "run", url + "/api/openapi.json", "--max-time", str(RUN_SECONDS), "--seed", "16",
             "--workers", "1", "--checks", "all", "--exclude-checks",
             "positive_data_acceptance,negative_data_rejection",
             "--request-timeout", "60", "--generation-database", "none", "--report", "json",
             "--report-json-path", str(report)],
            cwd=tmp_path, capture_output=True, text=True, timeout=RUN_SECONDS + 120,
            env=dict(os.environ, SCHEMATHESIS_HOOKS="schemathesis_hooks", PYTHONPATH=str(ROOT / "tests")))
        server_log = Path(log).read_text(errors="replace")
    result = json.loads(report.read_text())
    statuses = [line.rsplit('" ', 1)[-1].split()[0] for line in server_log.splitlines() if '" ' in line]
    # 503 is the documented answer of a server without its models; with them, no 5xx at all.
    models = model_present("demo-classifier") and model_present("demo-cutout")
    server_errors = [s for s in statuses if s.startswith("5") and (models or s != "503")]
    print(f"\nschemathesis: {result['test_cases']['generated']} cases over {result['operations']['tested']} "
          f"operations in {result['running_time']:.0f} s; {len(statuses)} requests, "
          f"{len(server_errors)} answered 5xx, failures: {len(result['failures'])}")
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert result["failures"] == [] and result["errors"] == []
    assert result["operations"]["tested"] == result["operations"]["selected"] >= 7
    assert result["test_cases"]["generated"] >= 100
    assert server_errors == [] and "Traceback" not in server_log
