// The face detector's own thread: OpenCV.js and lbpcascade_animeface load and run here, so
// neither the 10 MB script's start-up nor a detection ever blocks the page.
// A classic worker (not a module): opencv.js is a plain script for importScripts().
"use strict";

let cv = null;
let classifier = null;
let params = null;

self.addEventListener("message", (event) => {
  const msg = event.data;
  if (msg.type === "init") init(msg);
  else if (msg.type === "detect") detect(msg);
});

/** Download with progress reports; the long-cached response is then in the HTTP cache. */
async function download(url, expected) {
  // Already in the cache (a versioned URL is fresh for a year): nothing to show progress for.
  try {
    const cached = await fetch(url, { cache: "only-if-cached", mode: "same-origin" });
    if (cached.ok) {
      await cached.body.cancel();
      return;
    }
  } catch (err) { /* not cached */ }
  const response = await fetch(url);
  if (!response.ok) throw new Error("opencv-missing");
  const reader = response.body.getReader();
  let received = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    received += value.length;
    // `expected` is the decoded size: the body arrives gzip-encoded but reads decoded.
    if (expected) self.postMessage({ type: "progress", fraction: Math.min(1, received / expected) });
  }
}

function runtimeReady() {
  // This build's module calls onRuntimeInitialized once its WASM is compiled; poll as well in
  // case that already happened. Its `then` yields itself, so never hand it to resolve().
  return new Promise((resolve) => {
    const done = () => { clearInterval(timer); resolve(); };
    const timer = setInterval(() => { if (self.cv && self.cv.Mat) done(); }, 20);
    if (self.cv && self.cv.Mat) done();
    else if (self.cv) self.cv.onRuntimeInitialized = done;
  });
}

async function init(msg) {
  params = msg.params;
  try {
    await download(msg.opencvUrl, msg.opencvSize);
    self.postMessage({ type: "starting" });
    try {
      importScripts(msg.opencvUrl); // served from the cache filled by download()
    } catch (err) {
      throw new Error("opencv-broken");
    }
    await runtimeReady();
    cv = self.cv;
    const cascade = await fetch(msg.cascadeUrl);
    if (!cascade.ok) throw new Error("cascade-missing");
    cv.FS_createDataFile("/", "animeface.xml", new Uint8Array(await cascade.arrayBuffer()), true, false, false);
    classifier = new cv.CascadeClassifier();
    if (!classifier.load("animeface.xml")) throw new Error("cascade-broken");
    self.postMessage({ type: "ready" });
  } catch (err) {
    const known = ["opencv-missing", "opencv-broken", "cascade-missing", "cascade-broken"];
    self.postMessage({ type: "failed", reason: known.includes(err.message) ? err.message : "network" });
  }
}

/** Face boxes in the picture's pixels, found on a copy at most params.maxSide on its longer side. */
async function detect({ id, file, width, height }) {
  const started = performance.now();
  const scale = Math.min(1, params.maxSide / Math.max(width, height));
  const w = Math.max(1, Math.round(width * scale)), h = Math.max(1, Math.round(height * scale));
  let rgba = null, gray = null, found = null;
  try {
    const bitmap = await createImageBitmap(file, { resizeWidth: w, resizeHeight: h, resizeQuality: "high" });
    const canvas = new OffscreenCanvas(w, h);
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(bitmap, 0, 0);
    bitmap.close();
    rgba = cv.matFromImageData(ctx.getImageData(0, 0, w, h));
    gray = new cv.Mat();
    found = new cv.RectVector();
    cv.cvtColor(rgba, gray, cv.COLOR_RGBA2GRAY);
    cv.equalizeHist(gray, gray);
    classifier.detectMultiScale(gray, found, params.scaleFactor, params.minNeighbors, 0,
      new cv.Size(params.minSize, params.minSize), new cv.Size(0, 0));
    const boxes = [];
    for (let i = 0; i < found.size(); i++) {
      const r = found.get(i);
      boxes.push({ x: Math.round(r.x / scale), y: Math.round(r.y / scale),
                   w: Math.round(r.width / scale), h: Math.round(r.height / scale) });
    }
    self.postMessage({ type: "faces", id, boxes, ms: Math.round(performance.now() - started) });
  } catch (err) {
    self.postMessage({ type: "error", id });
  } finally {
    for (const m of [rgba, gray, found]) if (m) m.delete();
  }
}
