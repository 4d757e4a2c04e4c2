// What the page does: each action changes the state through store.update and talks to the
// server, the detector or the pixels. No DOM here.
import { createAnimationActions } from "./animation-actions.js";
import * as api from "./api.js";
import { byPosition, centredBox, figureBox, sameBox } from "./boxes.js";
import { compose, exportCutout, forgetBackground, forgetResult, keepBackground, keepResult,
         resultBlob } from "./cutout.js";
import * as history from "./history.js";
import { animationKind, baseName, bitmapOf, cropBlob, cutoutRefusal, decodeFile, fetchLink, forget, keepBitmap, PictureError,
         thumbBlob } from "./pictures.js";
import { currentPicture, faceById, faceNumber, newCutout, newFace, newPicture, pictureById, sortFaces } from "./state.js";
import { zipBlob } from "./zip.js";

/** The page's actions over `store`, with the started `detector`. */
export function createActions(store, detector) {
  const { update } = store;
  const state = store.state;
  const cutoutRequests = new Map(); // picture id -> AbortController of its running cutout
  let picks = 0;                    // the latest pick wins the current picture
  let batchController = null;
  const animations = createAnimationActions(store, errorOf); // GIFs and clips become stickers


  // ---------- pictures ----------
  async function addFiles(files) {
    const pick = ++picks;
    const list = Array.from(files || []);
    if (!list.length) return;
    update((s) => { s.notice = []; });
    let first = null;
    for (const file of list) {
      // An animated picture or a clip is made into a sticker; still pictures go on as before.
      const kind = await animationKind(file).catch(() => null);
      if (kind) {
        animations.add(file, kind);
        continue;
      }
      let bitmap;
      try {
        bitmap = await decodeFile(file);
      } catch (err) {
        const notice = err instanceof PictureError ? { key: err.code, params: err.params }
          : { key: "picture.unreadable", params: { name: file.name || "" } };
        update((s) => { s.notice.push(notice); });
        continue;
      }
      // Decoded: only now does the picture join the page (a bad file changes nothing).
      const id = state.nextPictureId;
      keepBitmap(id, bitmap);
      const picture = newPicture(id, file, bitmap.width, bitmap.height);
      update((s) => {
        s.nextPictureId++;
        s.pictures.push(picture);
        if (!first && pick === picks) s.currentId = id;
      });
      first = first || picture;
      detectWaiting();
      // A small copy for the strip, made now while the pixels are decoded: the strip never
      // decodes a 40-megapixel file to show 48 pixels.
      thumbBlob(bitmap).then((thumb) => update(() => { picture.thumb = thumb; }), () => {});
    }
  }

  /** A picture from a link (pasted, dropped, or the sample): the browser fetches it where the
   * site allows (CORS); the server never fetches links. */
  async function addLink(url) {
    update((s) => { s.notice = []; });
    let file;
    try {
      file = await fetchLink(url);
    } catch (err) {
      const notice = err instanceof PictureError ? { key: err.code, params: err.params }
        : { key: "link.blocked", params: { host: hostOf(url) } };
      update((s) => { s.notice = [notice]; });
      return;
    }
    await addFiles([file]);
  }

  function selectPicture(id) {
    update((s) => { s.currentId = id; s.drag = null; });
    // Its pixels may have been let go (only a few pictures stay decoded): the thumbnails need them.
    const picture = pictureById(state, id);
    if (picture) {
      bitmapOf(picture).then(() => update(() => {}), () => {});
      unpackCutout(picture);
    }
  }

  function removePicture(id) {
    const index = state.pictures.findIndex((p) => p.id === id);
    if (index < 0) return;
    cancelCutout(id);
    forget(id);
    forgetResult(id);
    forgetBackground(id);
    storedCutouts.delete(id);
    update((s) => {
      s.pictures.splice(index, 1);
      s.undo = s.undo.filter((step) => step.pictureId !== id);
      if (s.currentId === id) {
        const next = s.pictures[index] || s.pictures[index - 1];
        s.currentId = next ? next.id : null;
      }
      s.focus = { kind: "drop-zone" };
    });
  }

  // ---------- history (this browser only) ----------
  let historyDb = null;           // a promise of the database (or null), opened at the first write
  let restoring = true;
  const kept = new Map();         // picture key -> signature of its kept record
  const storedCutouts = new Map(); // picture id -> cutout PNG from the history, decoded when shown
  let writes = Promise.resolve(); // one write at a time, in order

  function write(step) {
    if (!historyDb) historyDb = history.openHistory(true);
    writes = writes.then(() => historyDb).then((db) => db && step(db)).then((total) => {
      if (total) update((s) => { s.history = { count: total.count, bytes: total.bytes }; });
    }).catch((err) => console.warn("could not keep the picture in this browser", err));
  }

  /** Bring the history up to date with the page (after each change; unchanged pictures cost a string). */
  function syncHistory() {
    if (restoring) return;
    for (const picture of state.pictures) {
      // Half-done work is kept once done: found faces (unless detection is off), a cutout, a
      // cutout not yet unpacked.
      if (["waiting", "running"].includes(picture.detect.state) && state.detector.state !== "failed") continue;
      if (["busy", "stored"].includes(picture.cutout.state)) continue;
      const sig = history.signature(picture);
      if (kept.get(picture.key) === sig) continue;
      kept.set(picture.key, sig);
      const record = history.recordOf(picture, resultBlob(picture.id));
      write((db) => history.keep(db, record));
    }
    for (const key of kept.keys()) {
      if (!state.pictures.some((p) => p.key === key)) {
        kept.delete(key);
        write((db) => history.drop(db, key));
      }
    }
  }

  /** The pictures kept by an earlier visit, back on the page as they were. */
  async function restoreHistory() {
    const db = await history.openHistory(false);
    if (db) historyDb = Promise.resolve(db);
    let records = [];
    try {
      if (db) records = await history.loadAll(db);
    } catch (err) {
      console.warn("could not read the history", err);
    }
    update((s) => {
      const restored = [];
      for (const r of records) {
        const picture = newPicture(s.nextPictureId++, r.file, r.width, r.height);
        Object.assign(picture, { key: r.key, name: r.name, thumb: r.thumb || null });
        picture.detect = { state: "done", count: r.detect.count, ms: r.detect.ms };
        for (const f of r.faces) {
          const face = newFace(picture.nextFaceId++, f, f.source);
          face.result = f.result ? { state: "done", ...f.result } : null;
          picture.faces.push(face);
        }
        if (r.cutout) {
          picture.cutout = { ...newCutout(), state: "stored", sizes: r.cutout.sizes, target: r.cutout.target,
                             full: r.cutout.full, crop: !!r.cutout.target };
          storedCutouts.set(picture.id, r.cutout.blob);
        }
        kept.set(picture.key, history.signature(picture));
        restored.push(picture);
      }
      // Kept pictures come first, in their order; pictures given meanwhile stay after them.
      s.pictures.unshift(...restored);
      if (restored.length && s.currentId === null) s.currentId = restored[restored.length - 1].id;
      s.history = { count: records.length, bytes: records.reduce((sum, r) => sum + r.bytes, 0) };
    });
    restoring = false;
    const current = currentPicture(state);
    if (current) selectPicture(current.id);
    syncHistory();
  }

  /** A cutout from the history, decoded when its picture is shown. */
  async function unpackCutout(picture) {
    const blob = storedCutouts.get(picture.id);
    if (!blob || picture.cutout.state !== "stored") return;
    storedCutouts.delete(picture.id);
    const t = picture.cutout.target;
    const area = t ? t.box : { x: 0, y: 0, w: picture.width, h: picture.height };
    try {
      const { empty } = await keepResult(picture, blob, area);
      update(() => { picture.cutout.state = empty ? "empty" : "done"; picture.cutout.version++; });
    } catch (err) {
      update(() => { picture.cutout.state = "idle"; });
    }
  }

  /** Forget every kept picture: the history and the page both empty. */
  function forgetAll() {
    kept.clear();
    for (const picture of state.pictures.slice()) removePicture(picture.id);
    storedCutouts.clear();
    write((db) => history.clearAll(db).then(() => ({ count: 0, bytes: 0 })));
    update((s) => { s.history = { count: 0, bytes: 0 }; s.undo = []; });
  }

  // ---------- detection ----------
  function detectorStatus(status) {
    update((s) => { s.detector = { state: status.state, fraction: status.fraction ?? s.detector.fraction,
                                    reason: status.reason || null }; });
    if (status.state === "ready") detectWaiting();
  }

  let detecting = false;
  async function detectWaiting() {
    // One picture at a time: the worker has one thread anyway, and the current picture first.
    if (detecting || state.detector.state !== "ready") return;
    detecting = true;
    try {
      for (;;) {
        const waiting = state.pictures.filter((p) => p.detect.state === "waiting");
        const picture = waiting.find((p) => p.id === state.currentId) || waiting[0];
        if (!picture) break;
        update(() => { picture.detect.state = "running"; });
        try {
          const { boxes, ms } = await detector.detect(picture.file, picture.width, picture.height);
          update(() => {
            boxes.sort(byPosition).forEach((b) => picture.faces.push(newFace(picture.nextFaceId++, b, "auto")));
            sortFaces(picture);
            picture.detect = { state: "done", count: boxes.length, ms };
          });
        } catch (err) {
          update(() => { picture.detect.state = "failed"; });
        }
      }
    } finally {
      detecting = false;
    }
  }

  // ---------- faces ----------
  /** Keep the picture's boxes as they are now, so the next change to them can be undone. */
  function keepForUndo(picture) {
    const step = { pictureId: picture.id, faces: structuredClone(picture.faces) };
    update((s) => {
      s.undo.push(step);
      if (s.undo.length > UNDO_STEPS) s.undo.shift();
    });
  }

  /** The boxes (with their names) as they were before the last change. */
  function undo() {
    const step = state.undo[state.undo.length - 1];
    if (!step) return;
    const picture = pictureById(state, step.pictureId);
    update((s) => {
      s.undo.pop();
      if (!picture) return;
      picture.faces = step.faces;
      s.currentId = picture.id;
      s.drag = null;
    });
  }

  function addFace(picture, box, focus = true) {
    keepForUndo(picture);
    const face = newFace(picture.nextFaceId++, box, "drawn");
    update((s) => {
      picture.faces.push(face);
      sortFaces(picture);
      if (focus) s.focus = { kind: "box", faceId: face.id };
    });
    return face;
  }

  function addCentredFace() {
    const picture = currentPicture(state);
    if (picture) addFace(picture, centredBox(picture.width, picture.height));
  }

  function removeFace(faceId, focusKind) {
    const picture = currentPicture(state);
    const face = faceById(picture, faceId);
    if (!face) return;
    keepForUndo(picture);
    update((s) => {
      const index = picture.faces.indexOf(face);
      picture.faces.splice(index, 1);
      const next = picture.faces[index] || picture.faces[index - 1];
      s.focus = next ? { kind: focusKind, faceId: next.id } : { kind: "add-box" };
    });
  }

  /** Give a face a new box; its name (if asked) no longer applies to the new pixels. */
  function setFaceBox(faceId, box) {
    const picture = currentPicture(state);
    const face = faceById(picture, faceId);
    if (!face || sameBox(face, box)) return;
    keepForUndo(picture);
    update(() => {
      Object.assign(face, box);
      face.result = null;
      face.report = { ...face.report, open: false, state: "idle", error: null };
      sortFaces(picture);
    });
  }

  // ---------- names ----------
  async function identify(picture = currentPicture(state)) {
    const faces = picture ? picture.faces.slice() : [];
    if (!faces.length) return;
    update(() => {
      picture.identify = { state: "running", error: null };
      faces.forEach((f) => { f.result = { state: "pending" }; });
    });
    const limit = state.limits.maxFaces || 16;
    try {
      const bitmap = await bitmapOf(picture);
      for (let start = 0; start < faces.length; start += limit) {
        const batch = faces.slice(start, start + limit);
        const crops = await Promise.all(batch.map((f) => cropBlob(bitmap, f)));
        const data = await api.identify(crops);
        update(() => {
          batch.forEach((f, i) => {
            // A box moved while the server answered keeps no stale name.
            if (f.result && f.result.state === "pending") f.result = { state: "done", ...data.faces[i] };
          });
        });
      }
      update(() => { picture.identify = { state: "done", error: null }; });
    } catch (err) {
      const error = errorOf(err);
      update(() => {
        picture.identify = { state: "error", error };
        faces.forEach((f) => { if (f.result && f.result.state === "pending") f.result = { state: "error", error }; });
      });
      throw err;
    }
  }

  function openReport(faceId) {
    const face = faceById(currentPicture(state), faceId);
    if (face) update((s) => { face.report.open = true; s.focus = { kind: "report", faceId }; });
  }

  function closeReport(faceId) {
    const face = faceById(currentPicture(state), faceId);
    if (face) update((s) => { face.report.open = false; s.focus = { kind: "wrong", faceId }; });
  }

  function typeReport(faceId, text) {
    const face = faceById(currentPicture(state), faceId);
    if (face) update(() => { face.report.text = text; });
  }

  /** The label to store for what was typed: a known character's id when it names one. */
  function canonicalLabel(text) {
    const typed = text.trim().normalize("NFKC");
    const lower = typed.toLowerCase();
    const known = state.characters.find((c) => c.id.toLowerCase() === lower || c.name.toLowerCase() === lower);
    return known ? known.id : typed;
  }

  async function sendReport(faceId) {
    const picture = currentPicture(state);
    const face = faceById(picture, faceId);
    if (!face) return;
    const label = canonicalLabel(face.report.text);
    if (!label) {
      update(() => { face.report.state = "error"; face.report.error = { key: "report.empty" }; });
      return;
    }
    update(() => { face.report.state = "sending"; face.report.error = null; });
    const r = face.result;
    const predicted = r && r.state === "done" ? (r.unknown ? "unknown" : r.predictions[0].label) : "";
    try {
      const crop = await cropBlob(await bitmapOf(picture), face);
      const saved = await api.report(crop, label, predicted);
      update((s) => {
        // The server keeps one report per picture: a second one is "already reported", not "saved".
        face.report = { ...face.report, open: false, state: saved.duplicate ? "duplicate" : "saved",
                        label: saved.label, id: saved.id };
        s.focus = { kind: "wrong", faceId };
      });
    } catch (err) {
      update(() => { face.report.state = "error"; face.report.error = errorOf(err); });
    }
  }

  // ---------- cutout ----------
  async function cutout(picture, faceId = null, reveal = true, full = false) {
    if (!picture) return;
    cancelCutout(picture.id);
    const face = faceById(picture, faceId);
    const target = face ? { faceId, number: faceNumber(picture, face),
                            box: figureBox(face, picture.width, picture.height) } : null;
    const keep = picture.cutout;
    update((s) => {
      if (reveal) s.reveal = { what: "cutout" }; // the panel is below the picture: bring it into view
      // One character comes cropped to itself; the whole picture keeps the reader's choice.
      picture.cutout = { ...newCutout(), background: keep.background, color: keep.color, crop: !!target || keep.crop,
                         bgVersion: keep.bgVersion, version: keep.version, state: "busy", target, full };
    });
    const refusal = cutoutRefusal(picture, state.limits);
    if (refusal) {
      update(() => { picture.cutout.state = "error"; picture.cutout.error = refusal; });
      return false;
    }
    const controller = new AbortController();
    cutoutRequests.set(picture.id, controller);
    try {
      // The whole picture goes to the network, the faces as prompts: one character keeps its whole
      // figure (no box to cut its feet off), and salient things no face lies on are dropped.
      const { blob, sizes } = await api.cutout(picture.file, { faces: picture.faces, face: face || null,
                                                               full, signal: controller.signal });
      const area = target ? target.box : { x: 0, y: 0, w: picture.width, h: picture.height };
      const { empty } = await keepResult(picture, blob, area);
      if (controller.signal.aborted) return false;
      update(() => {
        picture.cutout.state = empty ? "empty" : "done";
        picture.cutout.sizes = sizes;
        picture.cutout.version++;
      });
      return !empty;
    } catch (err) {
      if (err.name === "AbortError") return false;
      update(() => { picture.cutout.state = "error"; picture.cutout.error = errorOf(err); });
      return false;
    } finally {
      if (cutoutRequests.get(picture.id) === controller) cutoutRequests.delete(picture.id);
    }
  }

  function cancelCutout(id) {
    const controller = cutoutRequests.get(id);
    if (!controller) return;
    controller.abort();
    cutoutRequests.delete(id);
    const picture = pictureById(state, id);
    if (picture) update(() => { picture.cutout.state = "idle"; });
  }

  function setCutoutView(change) {
    const picture = currentPicture(state);
    if (picture) update(() => change(picture.cutout));
  }

  async function chooseBackgroundPicture(file) {
    const picture = currentPicture(state);
    if (!picture || !file) return;
    try {
      await keepBackground(picture.id, file);
      update(() => { picture.cutout.background = "image"; picture.cutout.bgVersion++; });
    } catch (err) {
      update((s) => { s.notice = [{ key: "picture.unreadable", params: { name: file.name || "" } }]; });
    }
  }

  /** A download name made from the input's: eileen.webp -> eileen-cutout.png, eileen-face-2-mask.png. */
  function downloadName(picture, suffix) {
    const t = picture.cutout.target;
    return baseName(picture.name) + (t ? `-face-${t.number}` : "") + "-" + suffix;
  }

  async function download(format) {
    const picture = currentPicture(state);
    if (!picture) return null;
    const { blob, suffix } = await exportCutout(picture, format);
    return { blob, name: downloadName(picture, suffix) };
  }

  // ---------- several pictures ----------
  async function runBatch() {
    if (state.batch.state === "running") return;
    const todo = state.pictures.slice();
    const controller = new AbortController();
    batchController = controller;
    update((s) => {
      s.batch = { state: "running", done: 0, total: todo.length };
      todo.forEach((p) => { p.batch = "queued"; });
    });
    for (const picture of todo) {
      if (controller.signal.aborted) break;
      if (!pictureById(state, picture.id)) continue; // removed meanwhile
      update(() => { picture.batch = "running"; });
      let ok = true;
      try {
        await detected(picture, controller.signal);
        if (picture.faces.length && state.server.classifier !== false) await identify(picture);
        if (state.server.cutout !== false) {
          const signal = controller.signal;
          const onAbort = () => cancelCutout(picture.id);
          signal.addEventListener("abort", onAbort);
          await cutout(picture, null, false);
          signal.removeEventListener("abort", onAbort);
          ok = picture.cutout.state === "done" || picture.cutout.state === "empty";
        }
      } catch (err) {
        ok = false;
      }
      if (controller.signal.aborted) break;
      update((s) => { picture.batch = ok ? "done" : "error"; s.batch.done++; });
    }
    update((s) => {
      todo.forEach((p) => { if (p.batch === "queued" || p.batch === "running") p.batch = "cancelled"; });
      s.batch.state = controller.signal.aborted ? "cancelled" : "done";
    });
    if (batchController === controller) batchController = null;
  }

  function detected(picture, signal) {
    // Wait until the picture's faces are found (or detection is off or failed).
    return new Promise((resolve) => {
      const check = () => {
        const d = picture.detect.state;
        if (d === "done" || d === "failed" || state.detector.state === "failed" || signal.aborted) resolve();
        else setTimeout(check, 100);
      };
      check();
    });
  }

  function cancelBatch() {
    if (batchController) batchController.abort();
  }

  /** One ZIP: each finished picture's cutout PNG and a faces.json with boxes and names. */
  async function batchZip() {
    const entries = [], summary = [], used = new Set();
    const unique = (name) => {
      let candidate = name, n = 2;
      while (used.has(candidate)) candidate = name.replace(/(\.[^.]*)?$/, `-${n++}$1`);
      used.add(candidate);
      return candidate;
    };
    for (const picture of state.pictures) {
      if (picture.batch !== "done") continue;
      const item = { picture: picture.name, width: picture.width, height: picture.height,
        faces: picture.faces.map((f, i) => ({
          number: i + 1, box: [f.x, f.y, f.w, f.h], source: f.source,
          name: f.result && f.result.state === "done" ? (f.result.unknown ? null : f.result.predictions[0].label) : null,
          predictions: f.result && f.result.state === "done" ? f.result.predictions : [] })) };
      if (picture.cutout.state === "done" && !picture.cutout.target) {
        const canvas = await compose(picture, "png");
        item.cutout = unique(baseName(picture.name) + "-cutout.png");
        entries.push({ name: item.cutout, blob: await canvas.convertToBlob({ type: "image/png" }) });
      }
      summary.push(item);
    }
    entries.push({ name: "faces.json",
                   blob: new Blob([JSON.stringify(summary, null, 2)], { type: "application/json" }) });
    return { blob: await zipBlob(entries), name: "cutouts.zip" };
  }

  // ---------- server ----------
  async function checkServer() {
    try {
      const h = await api.health();
      update((s) => {
        s.server = { state: "ok", classifier: h.models.classifier.available, cutout: h.models.cutout.available,
                     detection: h.face_detection };
      });
      if (h.models.classifier.available) loadCharacters();
    } catch (err) {
      update((s) => { s.server = { ...s.server, state: "unreachable" }; });
    }
  }

  async function loadCharacters() {
    try {
      const data = await api.characters();
      update((s) => { s.characters = data.characters.map(characterOf); });
    } catch (err) {
      // The list is a help, not a need: naming still works without it.
      console.warn("could not list the known characters", err);
    }
  }

  return {
    addFiles, addLink, selectPicture, restoreHistory, syncHistory, forgetAll, removePicture, detectorStatus,
    addFace, addCentredFace, removeFace, setFaceBox, undo,
    identify: () => identify().catch(() => {}), openReport, closeReport, typeReport, sendReport,
    cutout: (faceId) => cutout(currentPicture(state), faceId),
    cutoutFullSize: () => {
      const picture = currentPicture(state);
      if (picture) cutout(picture, picture.cutout.target ? picture.cutout.target.faceId : null, true, true);
    },
    cancelCutout: () => cancelCutout(state.currentId),
    setCutoutView, chooseBackgroundPicture, download, runBatch, cancelBatch, batchZip, checkServer,
    animation: animations,
  };
}

const UNDO_STEPS = 50; // box changes that can be undone, over all pictures

/** The host of a link for a message, or the link itself when it has none. */
function hostOf(url) {
  try {
    return new URL(url).host || url;
  } catch (e) {
    return url;
  }
}

/** A character from /api/characters: a label string, or {id, name} where the server has names. */
function characterOf(entry) {
  if (typeof entry === "object" && entry) return { id: String(entry.id ?? entry.label), name: String(entry.name ?? entry.id) };
  const id = String(entry);
  // Labels are often lower-case ids ("eileen", "hatsune_miku"); shown as names ("Eileen", "Hatsune Miku").
  const name = /^[a-z0-9_\- ]+$/.test(id)
    ? id.split(/[_\- ]+/).filter(Boolean).map((w) => w[0].toUpperCase() + w.slice(1)).join(" ") : id;
  return { id, name };
}

/** What to keep of an error: the API's {code, message}, or ours for anything unexpected. */
function errorOf(err) {
  if (err instanceof api.ApiError) return { code: err.code, message: err.message };
  console.error(err);
  return { key: "error.unknown" };
}
