"""A loopback HTTP server for the render page: the page, the Cubism 2 runtime and the six models.

Only 127.0.0.1, only these files: the browser has nothing else to fetch (its resolver is also
pointed away from every other host, see browser.py).
"""
import mimetypes
import re
import threading
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from app.demo_data.live2d.cast import BENCH_FIGURES, FIGURES, NODE_MODULES, RUNTIME_PACKAGE

PAGE_DIR = Path(__file__).resolve().parent / "page"
PAGE_FILES = {"/": "index.html", "/index.html": "index.html", "/render.js": "render.js"}
MODEL_PACKAGES = frozenset(package for package, _ in (*FIGURES.values(), *BENCH_FIGURES.values()))

_EXPORTS = re.compile(r"^export\s*\{([^}]*)\}\s*;?", re.MULTILINE)
_IMPORTS = re.compile(r"^import\s*\{[^}]*\}\s*from\s*['\"][^'\"]+['\"]\s*;?", re.MULTILINE)


def _exported_names(source):
    """[(local name, exported name)] from the ES module's final `export { a as B, C }`."""
    block = _EXPORTS.search(source).group(1)
    pairs = []
    for item in filter(None, (part.strip() for part in block.split(","))):
        local, _, exported = item.partition(" as ")
        pairs.append((local.strip(), (exported or local).strip()))
    return pairs


@lru_cache(maxsize=2)
def runtime_script(node_modules=NODE_MODULES):
    """The widget's Cubism 2 core and framework as one classic script exposing `window.L2D`.

    They ship as ES modules, but the minified core needs sloppy-mode JavaScript, which a module
    never is; so both run inside one function, linked by the names the core exports.
    """
    lib = Path(node_modules) / RUNTIME_PACKAGE / "src" / "lib"
    core = (lib / "live2d.core.js").read_text(encoding="utf-8")
    framework = (lib / "Live2DFramework.js").read_text(encoding="utf-8")
    core_names = _exported_names(core)
    framework_names = _exported_names(framework)
    links = "".join(f"var {exported} = {local};\n" for local, exported in core_names)
    exposed = ", ".join(f"{exported}: {exported}" for _, exported in core_names + framework_names)
    return ("(function () {\n" + _EXPORTS.sub("", core) + "\n" + links
            + _EXPORTS.sub("", _IMPORTS.sub("", framework))
            + f"\nwindow.L2D = {{{exposed}}};\n}})();\n").encode("utf-8")


class _Handler(BaseHTTPRequestHandler):
    node_modules = NODE_MODULES

    def do_GET(self):
        path = unquote(urlsplit(self.path).path)
        body, kind = self._resolve(path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _resolve(self, path):
        if path in PAGE_FILES:
            file = PAGE_DIR / PAGE_FILES[path]
            return file.read_bytes(), mimetypes.guess_type(file.name)[0] or "text/plain"
        if path == "/live2d.js":
            return runtime_script(self.node_modules), "text/javascript"
        parts = path.strip("/").split("/")
        if len(parts) >= 3 and parts[0] == "models" and parts[1] in MODEL_PACKAGES and ".." not in parts:
            file = Path(self.node_modules, *parts[1:])
            if file.is_file():
                return file.read_bytes(), mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        return None, None

    def log_message(self, *args):  # quiet: the renderer reports its own progress
        pass


class PageServer:
    """`with PageServer() as base_url:` serves the render page on a free loopback port."""

    def __init__(self, node_modules=NODE_MODULES):
        handler = type("Handler", (_Handler,), {"node_modules": Path(node_modules)})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return f"http://127.0.0.1:{self._httpd.server_port}"

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()
