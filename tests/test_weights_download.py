"""`flask models download` / `models list` against a real HTTP server on 127.0.0.1 (never the internet)."""
import hashlib
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
from flask import Flask
from PIL import Image

from app import create_app
from app.build import official
from app.build.torch_weights import write_torch_model_dir
from app.commands.models import command as models_cli
from app.nets.u2net import U2NETP


def u2netp_bytes():
    buf = io.BytesIO()
    torch.manual_seed(0)
    torch.save(U2NETP().state_dict(), buf)
    return buf.getvalue()


GOOD = u2netp_bytes()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/u2netp.pth":
            body, announced = GOOD, len(GOOD)
        elif self.path == "/truncated.pth":
            body, announced = GOOD[: len(GOOD) // 3], len(GOOD)  # the connection drops early
        elif self.path == "/garbage.pth":
            body = b"<html>quota exceeded</html>"
            announced = len(body)
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(announced))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def runner():
    app = Flask("models-cli-test")
    app.cli.add_command(models_cli)
    return app.test_cli_runner()


def write_manifest(tmp_path, server, path="/u2netp.pth", sha256=None, size=None):
    entry = {"filename": "u2netp/u2netp.pth", "url": server + path,
             "sha256": hashlib.sha256(GOOD).hexdigest() if sha256 is None else sha256,
             "size": size, "architecture": "u2netp"}
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"u2netp": entry}), encoding="utf-8")
    return manifest


def download(runner, manifest, dest, *extra):
    return runner.invoke(args=["models", "download", "u2netp", "--manifest", str(manifest),
                               "--dest", str(dest), *extra])


def test_good_file_is_verified_and_saved(runner, server, tmp_path):
    dest = tmp_path / "official"
    result = download(runner, write_manifest(tmp_path, server, size=len(GOOD)), dest)
    assert result.exit_code == 0, result.output
    assert (dest / "u2netp" / "u2netp.pth").read_bytes() == GOOD
    assert "verified" in result.output
    assert [p.name for p in dest.iterdir()] == ["u2netp"]
    again = download(runner, write_manifest(tmp_path, server), dest)
    assert again.exit_code == 0 and "already present and verified" in again.output


def test_wrong_checksum_deletes_and_fails(runner, server, tmp_path):
    dest = tmp_path / "official"
    result = download(runner, write_manifest(tmp_path, server, sha256="ab" * 32), dest)
    assert result.exit_code != 0
    assert "sha256 mismatch" in result.output and "Nothing was written" in result.output
    assert list(dest.iterdir()) == []


def test_truncated_body_deletes_and_fails(runner, server, tmp_path):
    dest = tmp_path / "official"
    result = download(runner, write_manifest(tmp_path, server, path="/truncated.pth"), dest)
    assert result.exit_code != 0
    assert "truncated" in result.output
    assert list(dest.iterdir()) == []


def test_size_mismatch_fails(runner, server, tmp_path):
    dest = tmp_path / "official"
    result = download(runner, write_manifest(tmp_path, server, size=len(GOOD) + 1), dest)
    assert result.exit_code != 0 and "size mismatch" in result.output
    assert list(dest.iterdir()) == []


def test_unknown_sha256_needs_an_explicit_choice(runner, server, tmp_path):
    dest = tmp_path / "official"
    manifest = write_manifest(tmp_path, server, sha256="")
    refused = download(runner, manifest, dest)
    assert refused.exit_code != 0 and "--allow-unverified" in refused.output
    garbage = download(runner, manifest, dest, "--allow-unverified", "--url", server + "/garbage.pth")
    assert garbage.exit_code != 0 and "not a u2netp state dict" in garbage.output
    assert list(dest.iterdir()) == []
    accepted = download(runner, manifest, dest, "--allow-unverified")
    assert accepted.exit_code == 0, accepted.output
    assert hashlib.sha256(GOOD).hexdigest() in accepted.output
    pinned = download(runner, manifest, dest, "--sha256", hashlib.sha256(GOOD).hexdigest(), "--force")
    assert pinned.exit_code == 0, pinned.output


def test_unknown_name_and_unreachable_server(runner, server, tmp_path):
    result = runner.invoke(args=["models", "download", "resnet50"])
    assert result.exit_code != 0 and "unknown model" in result.output
    dead = download(runner, write_manifest(tmp_path, "http://127.0.0.1:9"), tmp_path / "d")
    assert dead.exit_code != 0 and "failed" in dead.output


def test_a_downloaded_cutout_file_is_a_model_directory_the_api_serves(runner, server, tmp_path):
    dest = tmp_path / "official"
    result = download(runner, write_manifest(tmp_path, server), dest)
    assert result.exit_code == 0, result.output
    model_dir = dest / "u2netp"
    # The weights, their card, and the ONNX export that serving uses (verified against torch).
    assert sorted(p.name for p in model_dir.iterdir()) == ["card.json", "model.onnx", "onnx.json", "u2netp.pth"]
    card = json.loads((model_dir / "card.json").read_text())
    assert card["kind"] == "cutout" and card["architecture"] == "u2netp" and card["input_size"] == 320
    assert card["sha256"] == hashlib.sha256(GOOD).hexdigest() and card["source"]["sha256_published"]
    assert f"FLASK_CUTOUT_MODEL={model_dir}" in result.output

    app = create_app({"TESTING": True, "CUTOUT_MODEL": str(model_dir), "REPORT_DIR": str(tmp_path / "r"),
                      "TORCH_THREADS": 1})
    picture = io.BytesIO()
    Image.new("RGB", (90, 60), (30, 160, 220)).save(picture, "PNG")
    picture.seek(0)
    response = app.test_client().post("/api/cutout", data={"image": (picture, "a.png")})
    assert response.status_code == 200, response.data
    out = Image.open(io.BytesIO(response.data))
    assert out.mode == "RGBA" and out.size == (90, 60)


def test_builtin_manifest_names_the_official_files():
    manifest = official.MANIFEST
    assert set(manifest) == {"inception_v3", "u2net", "u2netp"}
    assert manifest["inception_v3"]["sha256"].startswith("0cc3c7bd")
    assert manifest["inception_v3"]["filename"] == "inception_v3_google-0cc3c7bd.pth"


def test_list_shows_whether_weights_verify(runner, tmp_path):
    models = tmp_path / "models"
    write_torch_model_dir(models / "good", {"name": "good", "kind": "cutout"}, {"w": torch.ones(1)})
    write_torch_model_dir(models / "bad", {"name": "bad", "kind": "cutout"}, {"w": torch.ones(1)})
    (models / "bad" / "weights.pt").write_bytes(b"tampered")
    result = runner.invoke(args=["models", "list", "--models-dir", str(models)])
    assert result.exit_code == 0, result.output
    assert "good: cutout weights OK" in result.output
    assert "bad: FAILED" in result.output and "sha256" in result.output
    assert "inception_v3:" in result.output
