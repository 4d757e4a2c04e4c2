"""Issue 20, problem 5 and issue 13: the detector gets its parameters from the server, opencv.js
is sent gzipped under a versioned URL with a year's cache and fetched once, and detection runs in
a Web Worker (OpenCV never loads on the page's own thread)."""
import gzip
import json
import re

from conftest import ROOT, needs_models
from page_support import boxes, console_problems, faces_found, needs_chromium, open_page, pick, wait_for

pytestmark = needs_chromium
VENDOR = ROOT / "static" / "vendor"


def fetch(client, url, **headers):
    """(status, headers, body) of a GET, the response closed (it holds the file open)."""
    with client.get(url, headers=headers) as response:
        return response.status_code, response.headers, response.get_data()


def page_data(client):
    html = fetch(client, "/")[2].decode("utf-8")
    main = re.search(r"<main [^>]*>", html, re.S).group(0)
    return {k: v.replace("&#34;", '"').replace("&quot;", '"') for k, v in re.findall(r'data-([a-z-]+)="([^"]*)"', main)}


def test_parameters_and_versioned_gzip_files_from_the_server(client):
    from app.inference import faces
    data = page_data(client)
    assert json.loads(data["detector"]) == {"scaleFactor": faces.SCALE_FACTOR, "minNeighbors": faces.MIN_NEIGHBORS,
                                            "minSize": faces.MIN_SIZE, "maxSide": faces.MAX_DETECT_SIDE}
    assert json.loads(data["detector"]) == faces.DETECTOR
    limits = json.loads(data["limits"])
    assert limits["maxPixels"] == client.application.config["MAX_IMAGE_PIXELS"]

    plain = (VENDOR / "opencv.js").read_bytes()
    url = data["opencv-url"]
    assert re.fullmatch(r"/vendor/[0-9a-f]{16}/opencv\.js", url)
    assert int(data["opencv-size"]) == len(plain)
    status, zipped_headers, zipped = fetch(client, url, **{"Accept-Encoding": "gzip, deflate, br"})
    assert status == 200 and zipped_headers["Content-Encoding"] == "gzip"
    assert len(zipped) < len(plain) / 2 and gzip.decompress(zipped) == plain
    status, plain_headers, body = fetch(client, url)
    assert body == plain and "Content-Encoding" not in plain_headers  # a client that takes no gzip
    for headers in (zipped_headers, plain_headers):
        assert "max-age=31536000" in headers["Cache-Control"] and "immutable" in headers["Cache-Control"]
        assert headers["Vary"] == "Accept-Encoding"
    assert fetch(client, url.replace(url.split("/")[2], "0" * 16))[0] == 404  # a stale version
    cascade = fetch(client, data["cascade-url"], **{"Accept-Encoding": "gzip"})[2]
    assert gzip.decompress(cascade) == (VENDOR / "lbpcascade_animeface.xml").read_bytes()

    # The worker runs under its own policy (sent with its script): it may load and compile OpenCV.
    status, headers, _ = fetch(client, data["worker-url"])
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    policy = headers["Content-Security-Policy"]
    assert "'wasm-unsafe-eval'" in policy and "connect-src 'self' data:" in policy


@needs_models
def test_fetched_once_and_detected_in_a_worker(server, browser, demo_picture, client):
    path, comp = demo_picture
    url = page_data(client)["opencv-url"]
    open_page(browser, server.base)
    assert server.count("GET", url) == 1  # one download: the worker's importScripts reads the cache
    pick(browser, path)
    assert faces_found(browser) >= 1
    assert browser.execute_script("return typeof window.cv") == "undefined"  # not on the page's thread
    shown = sorted((b["x"], b["y"], b["w"], b["h"]) for b in boxes(browser))

    # The same boxes as the server's detector on the same picture: the same parameters on both sides.
    import urllib3  # comes with selenium
    answer = urllib3.request("POST", server.base + "/api/faces",
                             fields={"image": ("cast.png", path.read_bytes(), "image/png")}, timeout=60).json()
    server_boxes = sorted((b["x"], b["y"], b["w"], b["h"]) for b in answer["faces"])
    assert len(shown) == len(server_boxes)
    for a, b in zip(shown, server_boxes):
        assert all(abs(p - q) <= 3 for p, q in zip(a, b)), (shown, server_boxes)

    # A reload downloads nothing big again: the versioned file is fresh in the cache for a year.
    browser.refresh()
    wait_for(browser, "document.getElementById('detector-status').dataset.state === 'ready'", timeout=120)
    assert server.count("GET", url) == 1
    assert not console_problems(browser)
