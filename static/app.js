// The page: pick a picture, find faces in the browser (OpenCV.js + lbpcascade_animeface),
// edit the boxes, ask the server for names, report wrong ones, remove the background.
// No inline handlers anywhere: the Content-Security-Policy forbids them.
"use strict";

(function () {
  const body = document.body;
  const MAX_FACES = Number(body.dataset.maxFaces) || 16;
  const MAX_BYTES = Number(body.dataset.maxBytes) || 16 * 1024 * 1024;
  const OPENCV_URL = body.dataset.opencvUrl;
  const CASCADE_URL = body.dataset.cascadeUrl;
  // Same settings as the server (app/faces.py) and the cascade's author.
  const DETECT = { scaleFactor: 1.1, minNeighbors: 5, minSize: 24, maxSide: 1024 };
  const MIN_DRAWN = 8; // px in image space; smaller drags are treated as clicks

  const $ = (id) => document.getElementById(id);
  const els = {
    opencvText: $("opencv-text"), opencvProgress: $("opencv-progress"), serverStatus: $("server-status"),
    dropZone: $("drop-zone"), fileInput: $("file-input"), imageError: $("image-error"),
    workspace: $("workspace"), picture: $("picture"), overlay: $("overlay"), stage: $("stage"),
    addBox: $("add-box"), identify: $("identify"), cutout: $("cutout"), detectStatus: $("detect-status"),
    crops: $("crops"), noCrops: $("no-crops"), cropTemplate: $("crop-template"),
    cutoutSection: $("cutout-section"), cutoutStatus: $("cutout-status"), cutoutImage: $("cutout-image"),
    downloadPng: $("download-png"), downloadMask: $("download-mask"),
  };

  const state = {
    file: null,        // the Blob the person gave us
    url: null,         // its object URL, shown in <img>
    width: 0, height: 0,
    faces: [],         // {id, x, y, w, h, source, li, blob, result}
    nextId: 1,
    detector: null,    // {cv, classifier} once OpenCV.js and the cascade are ready
    drag: null,
    models: { classifier: null, cutout: null },
    cutoutUrls: [],
  };

  // ---------- small helpers ----------
  function show(el, text, kind) {
    el.textContent = text;
    el.hidden = !text;
    el.classList.toggle("error", kind === "error");
    el.classList.toggle("ok", kind === "ok");
  }

  async function apiError(response) {
    // Every server error is JSON {"error": {"code", "message"}}; be robust if a proxy sent HTML.
    try {
      const data = await response.json();
      if (data && data.error) return data.error;
    } catch (e) { /* not JSON */ }
    return { code: "http_" + response.status, message: "The server answered " + response.status + "." };
  }

  async function postForm(url, form) {
    let response;
    try {
      response = await fetch(url, { method: "POST", body: form });
    } catch (e) {
      throw { code: "network", message: "Could not reach the server." };
    }
    if (!response.ok) throw await apiError(response);
    return response;
  }

  function canvasBlob(canvas, type) {
    return new Promise((resolve, reject) =>
      canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("could not encode"))), type || "image/png"));
  }

  // ---------- server status ----------
  async function checkServer() {
    try {
      const response = await fetch("/healthz");
      const health = await response.json();
      state.models = { classifier: health.models.classifier, cutout: health.models.cutout };
      const missing = [];
      if (!health.models.classifier.available) missing.push("no classifier model (naming faces is off)");
      if (!health.models.cutout.available) missing.push("no cutout model (removing backgrounds is off)");
      if (missing.length) {
        show(els.serverStatus, "This server has " + missing.join(" and ") +
          ". The operator can install the demo models with scripts/setup.sh.", "error");
      } else {
        show(els.serverStatus, "", null);
      }
    } catch (e) {
      show(els.serverStatus, "Could not reach the server.", "error");
    }
    updateButtons();
  }

  // ---------- OpenCV.js loading, with progress ----------
  async function fetchWithProgress(url, onProgress) {
    const response = await fetch(url);
    if (!response.ok) throw new Error(url + ": " + response.status);
    const total = Number(response.headers.get("Content-Length")) || 0;
    if (!response.body || !total) { await response.arrayBuffer(); onProgress(1); return; }
    const reader = response.body.getReader();
    let received = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      received += value.length;
      onProgress(received / total);
    }
  }

  function addScript(url) {
    return new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = url;
      script.async = true;
      script.addEventListener("load", resolve);
      script.addEventListener("error", () => reject(new Error("could not load " + url)));
      document.head.appendChild(script);
    });
  }

  function opencvReady() {
    // This build returns an Emscripten module that fires onRuntimeInitialized once its WASM is
    // compiled; poll as well in case that already happened. The module has its own `then` that
    // yields itself, so it must never be passed to resolve() (that recursion never ends): wrap it.
    return new Promise((resolve) => {
      const done = () => { clearInterval(timer); resolve({ cv: window.cv }); };
      const timer = setInterval(() => { if (window.cv && window.cv.Mat) done(); }, 50);
      if (window.cv && window.cv.Mat) done();
      else if (window.cv) window.cv.onRuntimeInitialized = done;
    });
  }

  async function loadDetector() {
    try {
      // Download first to show progress; the script tag then reads the browser cache.
      await fetchWithProgress(OPENCV_URL, (f) => {
        els.opencvProgress.value = Math.round(f * 100);
        els.opencvText.textContent = "Loading face detector… " + Math.round(f * 100) + "%";
      });
      els.opencvText.textContent = "Starting face detector…";
      await addScript(OPENCV_URL);
      const { cv } = await opencvReady();
      const cascade = await fetch(CASCADE_URL);
      if (!cascade.ok) throw new Error("the face cascade is not installed (run scripts/setup.sh)");
      const bytes = new Uint8Array(await cascade.arrayBuffer());
      cv.FS_createDataFile("/", "animeface.xml", bytes, true, false, false);
      const classifier = new cv.CascadeClassifier();
      if (!classifier.load("animeface.xml")) throw new Error("the face cascade could not be read");
      state.detector = { cv, classifier };
      els.opencvProgress.hidden = true;
      els.opencvText.textContent = "Face detector ready.";
      body.dataset.detector = "ready";
      if (state.url) detectFaces();
    } catch (e) {
      els.opencvProgress.hidden = true;
      els.opencvText.textContent = "Automatic face detection is unavailable (" + e.message +
        "). You can still draw boxes by hand.";
      els.opencvText.parentElement.classList.add("error");
      body.dataset.detector = "failed";
    }
  }

  // ---------- choosing a picture ----------
  function acceptFile(file) {
    show(els.imageError, "", null);
    if (!file) return;
    if (!/^image\/(png|jpeg|webp)$/.test(file.type)) {
      show(els.imageError, "Please choose a PNG, JPEG or WebP picture.", "error");
      return;
    }
    if (file.size > MAX_BYTES) {
      show(els.imageError, "That picture is larger than the server accepts (" +
        Math.round(MAX_BYTES / 1048576) + " MB).", "error");
      return;
    }
    const url = URL.createObjectURL(file);
    const img = els.picture;
    img.src = url;
    // decode() settles for this src only, so a slow earlier file cannot overwrite a newer one.
    img.decode().then(() => {
      if (img.src !== url) return;
      if (state.url) URL.revokeObjectURL(state.url);
      state.file = file; state.url = url;
      state.width = img.naturalWidth; state.height = img.naturalHeight;
      clearFaces();
      resetCutout();
      els.workspace.hidden = false;
      resizeOverlay();
      if (state.detector) detectFaces();
      else els.detectStatus.textContent = "Faces will be found when the detector has loaded.";
    }, () => {
      if (img.src !== url) return;
      URL.revokeObjectURL(url);
      show(els.imageError, "That file could not be read as a picture.", "error");
    });
  }

  els.fileInput.addEventListener("change", () => acceptFile(els.fileInput.files[0]));
  els.dropZone.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); els.fileInput.click(); }
  });
  els.dropZone.addEventListener("click", (e) => { if (e.target === els.dropZone) els.fileInput.click(); });
  ["dragenter", "dragover"].forEach((t) => els.dropZone.addEventListener(t, (e) => {
    e.preventDefault(); els.dropZone.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((t) => els.dropZone.addEventListener(t, () => els.dropZone.classList.remove("over")));
  els.dropZone.addEventListener("drop", (e) => {
    e.preventDefault();
    if (e.dataTransfer.files.length) acceptFile(e.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (e) => {
    if (e.target.closest && e.target.closest("input, textarea")) return;
    const item = Array.from(e.clipboardData ? e.clipboardData.items : []).find((i) => i.type.startsWith("image/"));
    if (item) { e.preventDefault(); acceptFile(item.getAsFile()); }
  });

  // ---------- detection ----------
  function detectFaces() {
    const { cv, classifier } = state.detector;
    const started = performance.now();
    const scale = Math.min(1, DETECT.maxSide / Math.max(state.width, state.height));
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(state.width * scale);
    canvas.height = Math.round(state.height * scale);
    canvas.getContext("2d").drawImage(els.picture, 0, 0, canvas.width, canvas.height);
    const rgba = cv.imread(canvas);
    const gray = new cv.Mat();
    const found = new cv.RectVector();
    try {
      cv.cvtColor(rgba, gray, cv.COLOR_RGBA2GRAY);
      cv.equalizeHist(gray, gray);
      classifier.detectMultiScale(gray, found, DETECT.scaleFactor, DETECT.minNeighbors, 0,
        new cv.Size(DETECT.minSize, DETECT.minSize), new cv.Size(0, 0));
      const boxes = [];
      for (let i = 0; i < found.size(); i++) {
        const r = found.get(i);
        boxes.push({ x: Math.round(r.x / scale), y: Math.round(r.y / scale),
                     w: Math.round(r.width / scale), h: Math.round(r.height / scale) });
      }
      boxes.sort((a, b) => b.w * b.h - a.w * a.h);
      boxes.forEach((b) => addFace(b, "auto"));
      const ms = Math.round(performance.now() - started);
      els.detectStatus.textContent = boxes.length
        ? "Found " + boxes.length + " face" + (boxes.length > 1 ? "s" : "") + " in " + ms + " ms."
        : "No faces found. Drag on the picture to draw one.";
    } finally {
      rgba.delete(); gray.delete(); found.delete();
    }
    body.dataset.detected = String(state.faces.length);
  }

  // ---------- faces and crops ----------
  function clearFaces() {
    state.faces.forEach((f) => f.li.remove());
    state.faces = [];
    refreshFaces();
  }

  function addFace(box, source) {
    const face = Object.assign({ id: state.nextId++, source, result: null }, box);
    const li = els.cropTemplate.content.firstElementChild.cloneNode(true);
    face.li = li;
    li.dataset.faceId = face.id;
    li.dataset.source = source;
    const thumb = li.querySelector(".crop-thumb");
    const ctx = thumb.getContext("2d");
    const s = Math.min(thumb.width / face.w, thumb.height / face.h);
    const dw = face.w * s, dh = face.h * s;
    ctx.drawImage(els.picture, face.x, face.y, face.w, face.h,
      (thumb.width - dw) / 2, (thumb.height - dh) / 2, dw, dh);
    thumb.setAttribute("role", "img");
    const del = li.querySelector(".delete");
    del.setAttribute("aria-label", "Delete face " + face.id);
    del.addEventListener("click", () => removeFace(face));
    const form = li.querySelector(".report");
    form.addEventListener("submit", (e) => { e.preventDefault(); sendReport(face); });
    const closeForm = () => {
      form.hidden = true;
      const wrong = li.querySelector("button.wrong");
      if (wrong) wrong.focus();
    };
    form.querySelector(".cancel").addEventListener("click", closeForm);
    form.addEventListener("keydown", (e) => { if (e.key === "Escape") closeForm(); });
    els.crops.appendChild(li);
    state.faces.push(face);
    refreshFaces();
    return face;
  }

  function removeFace(face) {
    const index = state.faces.indexOf(face);
    face.li.remove();
    state.faces.splice(index, 1);
    refreshFaces();
    // Keep keyboard focus somewhere sensible after the button disappears.
    const next = state.faces[index] || state.faces[index - 1];
    (next ? next.li.querySelector(".delete") : els.addBox).focus();
  }

  function refreshFaces() {
    state.faces.forEach((f, i) => {
      f.label = "Face " + (i + 1);
      f.li.querySelector(".crop-name").textContent = f.label + (f.source === "drawn" ? " (drawn)" : "");
      f.li.querySelector(".crop-thumb").setAttribute("aria-label", f.label);
    });
    els.noCrops.hidden = state.faces.length > 0;
    body.dataset.faces = String(state.faces.length);
    drawOverlay();
    updateButtons();
  }

  function updateButtons() {
    const classifier = state.models.classifier;
    els.identify.disabled = !state.faces.length || (classifier && !classifier.available);
    const cutout = state.models.cutout;
    els.cutout.disabled = !state.url || (cutout && !cutout.available);
  }

  function cropBlob(face) {
    const canvas = document.createElement("canvas");
    canvas.width = face.w; canvas.height = face.h;
    canvas.getContext("2d").drawImage(els.picture, face.x, face.y, face.w, face.h, 0, 0, face.w, face.h);
    return canvasBlob(canvas);
  }

  // ---------- overlay: boxes and drawing ----------
  function resizeOverlay() {
    const rect = els.picture.getBoundingClientRect();
    const ratio = window.devicePixelRatio || 1;
    els.overlay.width = Math.round(rect.width * ratio);
    els.overlay.height = Math.round(rect.height * ratio);
    els.overlay.style.width = rect.width + "px";
    els.overlay.style.height = rect.height + "px";
    drawOverlay();
  }

  function drawOverlay() {
    const c = els.overlay, ctx = c.getContext("2d");
    ctx.clearRect(0, 0, c.width, c.height);
    if (!state.width) return;
    const sx = c.width / state.width, sy = c.height / state.height;
    const ratio = window.devicePixelRatio || 1;
    ctx.lineWidth = 3 * ratio;
    ctx.font = (14 * ratio) + "px system-ui, sans-serif";
    state.faces.forEach((f, i) => {
      ctx.strokeStyle = f.source === "drawn" ? "#ff9f1c" : "#2ec4b6";
      ctx.strokeRect(f.x * sx, f.y * sy, f.w * sx, f.h * sy);
      const tag = String(i + 1);
      ctx.fillStyle = ctx.strokeStyle;
      ctx.fillRect(f.x * sx, f.y * sy, ctx.measureText(tag).width + 10 * ratio, 20 * ratio);
      ctx.fillStyle = "#000";
      ctx.fillText(tag, f.x * sx + 5 * ratio, f.y * sy + 15 * ratio);
    });
    if (state.drag && state.drag.box) {
      const b = state.drag.box;
      ctx.setLineDash([6 * ratio, 4 * ratio]);
      ctx.strokeStyle = "#ff9f1c";
      ctx.strokeRect(b.x * sx, b.y * sy, b.w * sx, b.h * sy);
      ctx.setLineDash([]);
    }
  }

  function imagePoint(e) {
    const rect = els.overlay.getBoundingClientRect();
    const x = (e.clientX - rect.left) / rect.width * state.width;
    const y = (e.clientY - rect.top) / rect.height * state.height;
    return { x: Math.max(0, Math.min(state.width, x)), y: Math.max(0, Math.min(state.height, y)) };
  }

  els.overlay.addEventListener("pointerdown", (e) => {
    if (!state.url) return;
    e.preventDefault();
    els.overlay.setPointerCapture(e.pointerId);
    state.drag = { start: imagePoint(e), box: null };
  });
  els.overlay.addEventListener("pointermove", (e) => {
    if (!state.drag) return;
    const p = imagePoint(e), s = state.drag.start;
    state.drag.box = { x: Math.round(Math.min(p.x, s.x)), y: Math.round(Math.min(p.y, s.y)),
                       w: Math.round(Math.abs(p.x - s.x)), h: Math.round(Math.abs(p.y - s.y)) };
    drawOverlay();
  });
  function endDrag() {
    const box = state.drag && state.drag.box;
    state.drag = null;
    if (box && box.w >= MIN_DRAWN && box.h >= MIN_DRAWN) addFace(box, "drawn");
    else drawOverlay();
  }
  els.overlay.addEventListener("pointerup", endDrag);
  els.overlay.addEventListener("pointercancel", () => { state.drag = null; drawOverlay(); });
  // The overlay follows the picture's displayed size (window resize, scrollbars, fonts).
  new ResizeObserver(() => { if (state.url) resizeOverlay(); }).observe(els.picture);

  // Keyboard and touch alternative to dragging: a box in the middle third of the picture.
  els.addBox.addEventListener("click", () => {
    if (!state.url) return;
    const side = Math.max(MIN_DRAWN, Math.round(Math.min(state.width, state.height) / 3));
    const face = addFace({ x: Math.round((state.width - side) / 2), y: Math.round((state.height - side) / 2),
                           w: side, h: side }, "drawn");
    face.li.querySelector(".delete").focus();
  });

  // ---------- identify ----------
  els.identify.addEventListener("click", identifyAll);

  async function identifyAll() {
    const faces = state.faces.slice();
    if (!faces.length) return;
    els.identify.disabled = true;
    els.identify.textContent = "Identifying…";
    faces.forEach((f) => setResultMessage(f, "Asking the server…", null));
    try {
      for (let start = 0; start < faces.length; start += MAX_FACES) {
        const batch = faces.slice(start, start + MAX_FACES);
        const form = new FormData();
        for (const f of batch) form.append("faces", await cropBlob(f), "face-" + f.id + ".png");
        const data = await (await postForm("/api/identify", form)).json();
        batch.forEach((f, i) => showResult(f, data.faces[i]));
      }
      body.dataset.identified = "yes";
    } catch (err) {
      const message = err.code === "model_unavailable"
        ? "The server has no classifier model loaded: " + err.message : (err.message || String(err));
      faces.forEach((f) => setResultMessage(f, message, "error"));
      body.dataset.identified = "error";
    } finally {
      els.identify.textContent = "Identify";
      updateButtons();
    }
  }

  function setResultMessage(face, text, kind) {
    const box = face.li.querySelector(".result");
    box.replaceChildren();
    const p = document.createElement("p");
    p.className = "message" + (kind ? " " + kind : "");
    p.textContent = text;
    box.appendChild(p);
  }

  function showResult(face, result) {
    face.result = result;
    const box = face.li.querySelector(".result");
    box.replaceChildren();
    const top = result.predictions[0];
    const headline = document.createElement("p");
    headline.className = "headline";
    headline.textContent = result.unknown ? "Unknown character" : top.label;
    if (result.unknown) headline.classList.add("unknown");
    box.appendChild(headline);
    const list = document.createElement("ul");
    list.className = "predictions" + (result.unknown ? " dim" : "");
    list.setAttribute("aria-label", result.unknown ? "Closest names (none fits well)" : "Top names");
    for (const p of result.predictions) {
      const li = document.createElement("li");
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = p.label;
      const bar = document.createElement("span");
      bar.className = "bar";
      const fill = document.createElement("span");
      fill.className = "fill";
      fill.style.width = (p.score * 100).toFixed(1) + "%"; // CSSOM, allowed by the CSP
      bar.appendChild(fill);
      const pct = document.createElement("span");
      pct.className = "pct";
      pct.textContent = (p.score * 100).toFixed(1) + "%";
      li.append(name, bar, pct);
      list.appendChild(li);
    }
    box.appendChild(list);
    const wrong = document.createElement("button");
    wrong.type = "button";
    wrong.className = "wrong";
    wrong.textContent = "Wrong?";
    wrong.setAttribute("aria-label", "Report a wrong name for " + face.label);
    wrong.addEventListener("click", () => {
      const form = face.li.querySelector(".report");
      form.hidden = false;
      form.querySelector("input").focus();
    });
    box.appendChild(wrong);
  }

  async function sendReport(face) {
    const form = face.li.querySelector(".report");
    const status = face.li.querySelector(".report-status");
    const label = form.querySelector("input").value.trim();
    if (!label) { show(status, "Type the right name first.", "error"); return; }
    const data = new FormData();
    data.append("face", await cropBlob(face), "face.png");
    data.append("label", label);
    const r = face.result;
    data.append("predicted", r ? (r.unknown ? "unknown" : r.predictions[0].label) : "");
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const saved = await (await postForm("/api/reports", data)).json();
      show(status, "Thanks! Report saved as " + saved.label + ".", "ok");
      status.dataset.reportId = saved.id;
      form.hidden = true;
    } catch (err) {
      show(status, "Report not saved: " + err.message, "error");
    } finally {
      button.disabled = false;
    }
  }

  // ---------- cutout ----------
  function resetCutout() {
    state.cutoutUrls.forEach((u) => URL.revokeObjectURL(u));
    state.cutoutUrls = [];
    els.cutoutSection.hidden = true;
    els.downloadPng.hidden = els.downloadMask.hidden = true;
    els.cutoutImage.removeAttribute("src");
    delete body.dataset.cutout;
  }

  els.cutout.addEventListener("click", async () => {
    if (!state.file) return;
    resetCutout();
    els.cutoutSection.hidden = false;
    show(els.cutoutStatus, "Removing the background… (a few seconds)", null);
    els.cutout.disabled = true;
    try {
      const form = new FormData();
      form.append("image", state.file, "picture");
      const png = await (await postForm("/api/cutout", form)).blob();
      const url = URL.createObjectURL(png);
      state.cutoutUrls.push(url);
      els.cutoutImage.src = url;
      await els.cutoutImage.decode();
      els.downloadPng.href = url;
      els.downloadPng.hidden = false;
      // The mask is the PNG's alpha channel: derive it here instead of a second inference.
      const maskUrl = URL.createObjectURL(await alphaMask(els.cutoutImage));
      state.cutoutUrls.push(maskUrl);
      els.downloadMask.href = maskUrl;
      els.downloadMask.hidden = false;
      show(els.cutoutStatus, "", null);
      body.dataset.cutout = "done";
      els.cutoutSection.scrollIntoView({ behavior: "smooth", block: "start" });
    } catch (err) {
      const message = err.code === "model_unavailable"
        ? "The server has no cutout model loaded: " + err.message : (err.message || String(err));
      show(els.cutoutStatus, message, "error");
      body.dataset.cutout = "error";
    } finally {
      updateButtons();
    }
  });

  async function alphaMask(img) {
    const canvas = document.createElement("canvas");
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0);
    const data = ctx.getImageData(0, 0, canvas.width, canvas.height);
    const px = data.data;
    for (let i = 0; i < px.length; i += 4) { px[i] = px[i + 1] = px[i + 2] = px[i + 3]; px[i + 3] = 255; }
    ctx.putImageData(data, 0, 0);
    return canvasBlob(canvas);
  }

  // ---------- start ----------
  checkServer();
  loadDetector();
})();
