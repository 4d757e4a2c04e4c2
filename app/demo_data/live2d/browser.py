"""Debian Chromium, headless, driven by Selenium: loads the render page and screenshots RGBA."""
import base64
import io
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless", "--no-sandbox",
    # WebGL in software, the same pixels on every machine.
    "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio", "--force-device-scale-factor=1",
    # Nothing but the loopback server resolves: no model or script can come from elsewhere.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
)
LOAD_TIMEOUT_S = 120


def _descendants(pid):
    """Process ids below `pid` (Linux /proc), children before grandchildren."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(0), []):
            found.append(child)
            queue.append(child)
    return found


def share_cpu_fairly(pid):
    """Give Chromium's processes under `pid` this process's niceness.

    Chromium raises its browser and GPU processes' priority (nice -8 when it may, as root),
    which would let a long render under `nice` crowd out everything else on the machine.
    """
    if not hasattr(os, "setpriority"):
        return
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    for child in _descendants(pid):
        try:
            if os.getpriority(os.PRIO_PROCESS, child) < mine:
                os.setpriority(os.PRIO_PROCESS, child, mine)
        except OSError:
            pass  # ended meanwhile, or not ours to change


class Browser:
    """One Chromium with a fresh profile showing the render page; close() ends it."""

    def __init__(self, base_url, size):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        self.size = tuple(size)
        self._profile = tempfile.mkdtemp(prefix="live2d-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in FLAGS + (f"--window-size={self.size[0]},{self.size[1]}",
                             f"--user-data-dir={self._profile}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        try:
            self.driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        except Exception:
            shutil.rmtree(self._profile, ignore_errors=True)
            raise
        try:
            self.driver.set_script_timeout(LOAD_TIMEOUT_S)
            self._cdp("Emulation.setDeviceMetricsOverride", width=self.size[0], height=self.size[1],
                      deviceScaleFactor=1, mobile=False)
            self.driver.get(base_url + "/")
            self._share_cpu()
            if self.driver.execute_script("return document.body.dataset.ready") != "yes":
                raise RuntimeError("the render page did not start: " + self.console())
        except Exception:
            self.close()
            raise

    def _share_cpu(self):
        share_cpu_fairly(self.driver.service.process.pid)

    def _cdp(self, command, **params):
        return self.driver.execute_cdp_cmd(command, params)

    def _call(self, name, arg):
        """Await window.live2dRender[name](arg) in the page; JavaScript errors become RuntimeError."""
        result = self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "Promise.resolve().then(() => window.live2dRender[arguments[0]](arguments[1]))"
            ".then((value) => done({value}), (error) => done({error: String(error && error.stack || error)}));",
            name, arg)
        if "error" in result:
            raise RuntimeError(f"render page {name}(): {result['error']}")
        return result["value"]

    def load(self, model_url):
        """Load a model.json (path on the page server); returns its expressions, motions, hit areas."""
        info = self._call("load", model_url)
        self._share_cpu()  # again: Chromium may have started processes since
        return info

    def render(self, pose):
        """Draw one pose; returns the page's measurements (region, boxes in pixels, parameters)."""
        return self._call("render", dict(pose, size=list(self.size)))

    def screenshot(self, background=(0, 0, 0, 0)):
        """The canvas as an H x W x 4 uint8 RGBA array over `background` (r, g, b 0-255, a 0-1).

        The default, transparent, leaves the figure's own alpha; an opaque background lets a
        test compare the page's own compositing with the alpha's.
        """
        r, g, b, a = background
        self._cdp("Emulation.setDefaultBackgroundColorOverride", color={"r": r, "g": g, "b": b, "a": a})
        shot = self._cdp("Page.captureScreenshot", format="png", fromSurface=True,
                         clip={"x": 0, "y": 0, "width": self.size[0], "height": self.size[1], "scale": 1})
        image = Image.open(io.BytesIO(base64.b64decode(shot["data"])))
        return np.array(image.convert("RGBA"))

    def console(self):
        try:
            return " | ".join(entry["message"] for entry in self.driver.get_log("browser"))
        except Exception:  # noqa: BLE001 (diagnostics only)
            return ""

    def close(self):
        driver, self.driver = getattr(self, "driver", None), None
        if driver is not None:
            driver.quit()
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
