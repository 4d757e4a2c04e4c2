// The one render step: the whole page drawn from the state. Nothing here changes the state,
// and nothing else writes to the page (cutout pixels are drawn by cutout.js on request).
import { translateStatic, translator } from "./i18n.js";
import { drawThumb, keptBitmap } from "./pictures.js";
import { currentPicture, displayName, faceNumber } from "./state.js";
import { drawCutoutView } from "./cutout.js";
import { renderAnimation } from "./render-animation.js";
import { lineText, pictureLine } from "./status.js";

const $ = (id) => document.getElementById(id);
let els = null;
let shownLang = null;
const urls = new Map(); // "id:file" or "id:thumb" -> object URL of that picture's Blob

function elements() {
  const ids = ["app", "lang", "detector-status", "server-status", "drop-zone", "notice", "queue-section",
    "queue", "batch-run", "batch-cancel", "batch-zip", "batch-status", "workspace", "work-heading",
    "stage", "picture", "boxes", "add-box", "identify", "cutout-all", "characters", "detect-status",
    "no-crops", "crops", "known-names", "cutout-section", "cutout-heading", "cutout-status",
    "cutout-view", "cutout-canvas", "crop-figure", "show-original", "zoom", "bg-color", "undo", "try-sample",
    "cutout-size", "cutout-full", "history", "history-text"];
  return Object.fromEntries(ids.map((id) => [id, $(id)]));
}

/** Object URL of a picture's file (or of its strip thumbnail: which = "thumb"), made once. */
function pictureUrl(picture, which = "file") {
  const key = picture.id + ":" + which;
  let url = urls.get(key);
  if (!url) {
    url = URL.createObjectURL(which === "thumb" ? picture.thumb : picture.file);
    urls.set(key, url);
  }
  return url;
}

function dropUrls(pictures) {
  const alive = new Set(pictures.map((p) => String(p.id)));
  for (const [id, url] of urls) {
    if (!alive.has(id.split(":")[0])) {
      URL.revokeObjectURL(url);
      urls.delete(id);
    }
  }
}

/** Text for an error kept in the state: {key, params} of ours, or the API's {code, message}. */
export function errorText(t, error) {
  if (!error) return "";
  if (error.key) return t(error.key, error.params);
  const key = "error." + error.code;
  if (t.has(key)) return t(key);
  return error.message ? t("error.server", { message: error.message }) : t("error.unknown");
}

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("data-") || k.startsWith("aria-") || k === "role" || k === "for" || k === "list")
      node.setAttribute(k, v);
    else node[k] = v;
  }
  node.append(...children);
  return node;
}

export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

export function setAttr(node, name, value) {
  if (value === null || value === undefined || value === false) node.removeAttribute(name);
  else if (node.getAttribute(name) !== String(value)) node.setAttribute(name, value);
}

/**
 * Make `parent`'s children match `items` (keyed by key(item)): reuse, create, reorder, remove;
 * focus stays on the element that had it even when it moves.
 */
function syncList(parent, items, key, create, update) {
  const active = document.activeElement;
  const old = new Map();
  for (const child of parent.children) old.set(child.dataset.key, child);
  let previous = null;
  for (const item of items) {
    const k = String(key(item));
    let node = old.get(k);
    if (node) old.delete(k);
    else {
      node = create(item);
      node.dataset.key = k;
    }
    update(node, item);
    const wanted = previous ? previous.nextElementSibling : parent.firstElementChild;
    if (wanted !== node) parent.insertBefore(node, wanted);
    previous = node;
  }
  for (const node of old.values()) node.remove();
  if (active && active.isConnected && document.activeElement !== active) active.focus({ preventScroll: true });
}

/** Draw the whole page from `state`. */
export function render(state) {
  if (!els) els = elements();
  const t = translator(state.lang);
  if (shownLang !== state.lang) {
    shownLang = state.lang;
    document.documentElement.lang = state.lang;
    translateStatic(document, t);
    els.lang.value = state.lang;
  }
  const picture = currentPicture(state);
  els.app.dataset.pictures = String(state.pictures.length);
  renderStatus(state, t);
  renderNotice(state, t);
  renderFirstVisit(state, t);
  renderQueue(state, t);
  renderWorkspace(state, picture, t);
  renderCutout(state, picture, t);
  renderAnimation(state, t);
  dropUrls(state.pictures);
  applyFocus(state, picture);
  applyReveal(state);
}

let revealed = null;
function applyReveal(state) {
  const want = state.reveal;
  if (!want || want === revealed) return;
  revealed = want;
  const node = { cutout: els["cutout-section"], animation: $("animation-section") }[want.what];
  if (node && !node.hidden) node.scrollIntoView({ block: "nearest" });
}

function renderStatus(state, t) {
  const d = state.detector, box = els["detector-status"];
  box.dataset.state = d.state;
  const text = d.state === "loading" ? t("detector.loadingPct", { pct: Math.round(d.fraction * 100) })
    : d.state === "starting" ? t("detector.starting")
    : d.state === "ready" ? t("detector.ready")
    : t("detector.failed", { reason: t("detector.reason." + (d.reason || "network")) });
  setText(box.querySelector(".status-text"), text);
  const bar = box.querySelector("progress");
  bar.value = Math.round(d.fraction * 100);
  bar.hidden = d.state !== "loading";

  const s = state.server, missing = [];
  if (s.state === "unreachable") missing.push(t("server.unreachable"));
  else {
    if (s.classifier === false) missing.push(t("server.noClassifier"));
    if (s.cutout === false) missing.push(t("server.noCutout"));
    if (missing.length) missing.push(t("server.setup"));
  }
  els["server-status"].dataset.state = missing.length ? "error" : s.state;
  setText(els["server-status"], missing.join(" "));
}

/** What is there before any picture: the sample to try and who the server knows (from the start). */
function renderFirstVisit(state, t) {
  els["try-sample"].hidden = !els.app.dataset.sampleUrl || state.pictures.length > 0;
  setText(els.characters, state.characters.length
    ? t("work.knows", { names: state.characters.map((c) => c.name).join(t("list.separator")) }) : "");
  const h = state.history;
  els.history.hidden = !h.count;
  setText(els["history-text"], h.count ? t("history.kept", { n: h.count, mb: (h.bytes / 1048576).toFixed(1) }) : "");
}

function renderNotice(state, t) {
  els.notice.hidden = !state.notice.length;
  syncList(els.notice, state.notice.map((n, i) => ({ ...n, i })), (n) => n.i + ":" + n.key + ":" + (n.params.name || ""),
    () => el("p"), (p, n) => setText(p, t(n.key, n.params)));
}

function pictureStatus(picture, t) {
  const b = picture.batch;
  if (b === "queued") return t("queue.queued");
  if (b === "running") return t("queue.running");
  if (b === "cancelled") return t("queue.cancelled");
  if (b === "error") return t("queue.error");
  if (b === "done") return t("queue.done", { n: picture.faces.length });
  if (picture.detect.state === "waiting") return t("queue.waiting");
  if (picture.detect.state === "running") return t("detect.running");
  return t("queue.faces", { n: picture.faces.length });
}

function renderQueue(state, t) {
  els["queue-section"].hidden = state.pictures.length < 2;
  syncList(els.queue, state.pictures, (p) => p.id,
    (p) => el("li", { class: "queue-item" },
      el("button", { type: "button", class: "queue-pick", "data-action": "pick-picture" },
        el("img", { alt: "", decoding: "async" }),
        el("span", { class: "queue-name" }), el("span", { class: "queue-status" })),
      el("button", { type: "button", class: "icon", "data-action": "remove-picture", text: "×" })),
    (li, p) => {
      li.dataset.picture = p.id;
      li.dataset.batch = p.batch;
      const pick = li.querySelector(".queue-pick");
      setAttr(pick, "aria-current", p.id === state.currentId ? "true" : null);
      const img = li.querySelector("img");
      if (!img.src && p.thumb) img.src = pictureUrl(p, "thumb");
      setText(li.querySelector(".queue-name"), p.name || t("picture.unnamed"));
      setText(li.querySelector(".queue-status"), pictureStatus(p, t));
      setAttr(li.querySelector("[data-action=remove-picture]"), "aria-label",
        t("queue.remove", { name: p.name || t("picture.unnamed") }));
    });
  showCurrentInStrip(state);
  const b = state.batch, running = b.state === "running";
  els["batch-run"].hidden = running;
  els["batch-run"].disabled = state.server.state !== "ok";
  els["batch-cancel"].hidden = !running;
  els["batch-zip"].hidden = running || !state.pictures.some((p) => p.batch === "done");
  setText(els["batch-status"], running ? t("queue.progress", { done: b.done, total: b.total })
    : b.state === "done" ? t("queue.finished", { done: b.done, total: b.total })
    : b.state === "cancelled" ? t("queue.stopped", { done: b.done, total: b.total }) : "");
}

let stripShown = null;
/** The strip scrolls sideways: the current picture, once chosen, is scrolled into it. */
function showCurrentInStrip(state) {
  if (stripShown === state.currentId || els["queue-section"].hidden) return;
  const item = els.queue.querySelector(`[data-picture="${state.currentId}"]`);
  if (!item) return;
  stripShown = state.currentId;
  const strip = els.queue, left = item.offsetLeft - strip.offsetLeft;
  if (left < strip.scrollLeft) strip.scrollLeft = left;
  else if (left + item.offsetWidth > strip.scrollLeft + strip.clientWidth) {
    strip.scrollLeft = left + item.offsetWidth - strip.clientWidth;
  }
}

function renderWorkspace(state, picture, t) {
  els.workspace.hidden = !picture;
  if (!picture) {
    els.picture.removeAttribute("src");
    return;
  }
  const name = picture.name || t("picture.unnamed");
  setText(els["work-heading"], t("work.heading", { name }));
  const url = pictureUrl(picture);
  if (els.picture.getAttribute("src") !== url) els.picture.src = url;
  setAttr(els.picture, "alt", t("work.pictureAlt", { name }));
  els.stage.dataset.drawing = state.drag ? state.drag.kind : "";

  // Boxes over the picture, placed in percent of its size so they follow any resize.
  const pct = (v, total) => (v / total * 100).toFixed(4) + "%";
  const place = (node, b) => {
    node.style.left = pct(b.x, picture.width);
    node.style.top = pct(b.y, picture.height);
    node.style.width = pct(b.w, picture.width);
    node.style.height = pct(b.h, picture.height);
  };
  syncList(els.boxes, picture.faces, (f) => f.id,
    () => el("div", { class: "box", tabIndex: 0, role: "button", "aria-describedby": "box-help" },
      el("span", { class: "tag", "aria-hidden": "true" }),
      ...["nw", "ne", "sw", "se"].map((c) => el("span", { class: "handle " + c, "data-corner": c, "aria-hidden": "true" }))),
    (node, f) => {
      const n = faceNumber(picture, f);
      node.dataset.face = f.id;
      node.dataset.source = f.source;
      place(node, f);
      setText(node.querySelector(".tag"), String(n));
      setAttr(node, "aria-label", t("box.label", { n, x: f.x, y: f.y, w: f.w, h: f.h }));
    });
  let draft = els.stage.querySelector(".draft");
  const drawing = state.drag && state.drag.kind === "draw" && state.drag.box;
  if (drawing && !draft) draft = els.stage.appendChild(el("div", { class: "draft", "aria-hidden": "true" }));
  if (draft) {
    draft.hidden = !drawing;
    if (drawing) place(draft, state.drag.box);
  }

  const s = state.server, busy = picture.identify.state === "running";
  els.identify.disabled = !picture.faces.length || s.classifier === false || busy;
  setText(els.identify, t(busy ? "work.identifying" : "work.identify"));
  const cutting = picture.cutout.state === "busy";
  els["cutout-all"].disabled = s.cutout === false || cutting;
  setText(els["cutout-all"], t(cutting ? "work.cuttingOut" : "work.cutoutAll"));
  els.undo.disabled = !state.undo.length;
  syncList(els["known-names"], state.characters, (c) => c.id, () => el("option"),
    (o, c) => { o.value = c.name; });

  const line = pictureLine(picture, state.detector.state);
  els["detect-status"].dataset.state = line.state;
  setText(els["detect-status"], lineText(line, t));

  els["no-crops"].hidden = picture.faces.length > 0;
  syncList(els.crops, picture.faces, (f) => picture.id + ":" + f.id, createCrop,
    (li, f) => updateCrop(li, f, picture, state, t));
}

function createCrop() {
  return el("li", { class: "crop" },
    el("div", { class: "crop-head" },
      el("canvas", { class: "crop-thumb", width: 96, height: 96, role: "img" }),
      el("div", { class: "crop-meta" },
        el("span", { class: "crop-name" }),
        el("div", { class: "crop-buttons" },
          el("button", { type: "button", class: "secondary", "data-action": "cutout-face" }),
          el("button", { type: "button", class: "secondary delete", "data-action": "delete-face" })))),
    el("div", { class: "result" }),
    el("form", { class: "report", hidden: true },
      el("label", {}, el("span", { class: "report-label" }),
        el("input", { type: "text", name: "label", maxLength: 100, required: true, autocomplete: "off",
                      list: "known-names" })),
      el("button", { type: "submit", class: "send" }),
      el("button", { type: "button", class: "secondary", "data-action": "report-cancel" })),
    el("p", { class: "report-status notice", role: "status" }));
}

function updateCrop(li, face, picture, state, t) {
  const n = faceNumber(picture, face);
  const label = t("face.label", { n });
  li.dataset.face = face.id;
  li.dataset.source = face.source;
  const thumb = li.querySelector(".crop-thumb");
  const geometry = [face.x, face.y, face.w, face.h].join(",");
  const bitmap = keptBitmap(picture.id);
  if (bitmap && thumb.dataset.geometry !== geometry) {
    drawThumb(thumb, bitmap, face);
    thumb.dataset.geometry = geometry;
  }
  setAttr(thumb, "aria-label", label);
  setText(li.querySelector(".crop-name"), face.source === "drawn" ? t("face.drawn", { n }) : label);
  const del = li.querySelector("[data-action=delete-face]");
  setText(del, t("face.delete"));
  setAttr(del, "aria-label", t("face.deleteLabel", { n }));
  const cut = li.querySelector("[data-action=cutout-face]");
  setText(cut, t("face.cutout"));
  setAttr(cut, "aria-label", t("face.cutoutLabel", { n }));
  cut.disabled = state.server.cutout === false || picture.cutout.state === "busy";

  renderResult(li.querySelector(".result"), face, n, state, t);

  const form = li.querySelector("form.report"), r = face.report;
  form.hidden = !r.open;
  setText(form.querySelector(".report-label"), t("report.field"));
  const input = form.querySelector("input");
  if (input.value !== r.text) input.value = r.text;
  setText(form.querySelector(".send"), t("report.send"));
  form.querySelector(".send").disabled = r.state === "sending";
  setText(form.querySelector("[data-action=report-cancel]"), t("report.cancel"));
  const status = li.querySelector(".report-status");
  status.dataset.state = r.state;
  setText(status, r.state === "saved" ? t("report.saved", { label: r.label })
    : r.state === "duplicate" ? t("report.duplicate", { label: r.label })
    : r.state === "error" ? t("report.failed", { reason: errorText(t, r.error) }) : "");
}

/** What a face is called: its name, or for an unknown face why, in words, with the closest guess
 * (none when even the closest rounds to 0%). */
export function headline(r, state, t) {
  const top = r.predictions[0];
  if (!r.unknown) return displayName(state, top.label);
  const pct = top ? Math.round(top.score * 100) : 0;
  if (pct < 1) return t("identify.noneClose");
  return t("identify.notSure", { name: displayName(state, top.label), pct: pct + "%" });
}

function renderResult(box, face, n, state, t) {
  const r = face.result;
  const signature = JSON.stringify([r, state.lang, n, state.characters.length]);
  if (box.dataset.signature === signature) return;
  box.dataset.signature = signature;
  const hadFocus = box.contains(document.activeElement);
  box.replaceChildren();
  if (!r) return;
  if (r.state === "pending" || r.state === "error") {
    box.append(el("p", { class: "notice" + (r.state === "error" ? " error" : ""),
      text: r.state === "pending" ? t("identify.asking") : errorText(t, r.error) }));
    return;
  }
  const top = r.predictions[0];
  box.append(el("p", { class: "headline" + (r.unknown ? " unknown" : ""), text: headline(r, state, t) }));
  const list = el("ul", { class: "predictions" + (r.unknown ? " dim" : ""),
    "aria-label": t(r.unknown ? "identify.closest" : "identify.top") });
  for (const p of r.predictions) {
    const fill = el("span", { class: "fill" });
    fill.style.width = (p.score * 100).toFixed(1) + "%"; // CSSOM: allowed by the CSP
    list.append(el("li", {},
      el("span", { class: "name", text: displayName(state, p.label) }),
      el("span", { class: "bar" }, fill),
      el("span", { class: "pct", text: (p.score * 100).toFixed(1) + "%" })));
  }
  box.append(list);
  const wrong = el("button", { type: "button", class: "secondary wrong", "data-action": "report-open",
    text: t("identify.wrong"), "aria-label": t("identify.wrongLabel", { n }) });
  box.append(wrong);
  if (hadFocus) wrong.focus({ preventScroll: true });
}

function renderCutout(state, picture, t) {
  const c = picture ? picture.cutout : null;
  const section = els["cutout-section"];
  section.hidden = !c || c.state === "idle" || c.state === "stored";
  if (section.hidden) return;
  section.dataset.state = c.state;
  const who = c.target ? t("cutout.ofFace", { n: c.target.number }) : t("cutout.ofPicture");
  setText(els["cutout-heading"], t("cutout.heading." + c.state, { who }));
  setText(els["cutout-status"], c.state === "busy" ? t("cutout.busy")
    : c.state === "empty" ? t("cutout.empty")
    : c.state === "error" ? errorText(t, c.error) : "");
  els["cutout-status"].classList.toggle("error", c.state === "error");
  for (const radio of section.querySelectorAll("input[name=background]")) radio.checked = radio.value === c.background;
  els["bg-color"].value = c.color;
  els["crop-figure"].checked = c.crop;
  setAttr(els["show-original"], "aria-pressed", String(c.original));
  setAttr(els.zoom, "aria-pressed", String(c.zoom));
  els["cutout-view"].classList.toggle("zoomed", c.zoom);
  els["cutout-view"].classList.toggle("checkerboard", c.background === "transparent" && !c.original);
  setAttr(els["cutout-canvas"], "aria-label", t(c.original ? "cutout.originalAlt" : "cutout.resultAlt"));
  renderCutoutSize(state, picture, t);
  if (c.state === "done" || c.state === "empty") drawCutoutView(els["cutout-canvas"], picture);
}

/** A cutout the server made on a smaller copy says so, and offers the full size where the server
 * allows more pixels (MAX_CUTOUT_FULL_PIXELS) and the picture fits in them. */
function renderCutoutSize(state, picture, t) {
  const c = picture.cutout, sizes = c.sizes;
  const shown = (c.state === "done" || c.state === "empty") && sizes;
  const smaller = shown && sizes.output[0] * sizes.output[1] < sizes.source[0] * sizes.source[1];
  const size = (wh) => wh[0] + "×" + wh[1];
  setText(els["cutout-size"], smaller ? t("cutout.smaller", { size: size(sizes.output), source: size(sizes.source) })
    : shown && c.full ? t("cutout.fullSize", { size: size(sizes.output) }) : "");
  const allowed = state.limits.fullPixels || 0;
  els["cutout-full"].hidden = !smaller || c.full || allowed <= (state.limits.cutoutPixels || 0)
    || sizes.source[0] * sizes.source[1] > allowed;
}

let honoured = null;
function applyFocus(state, picture) {
  const want = state.focus;
  if (!want || want === honoured) return;
  honoured = want; // each request (a new object) moves focus once
  let node = null;
  if (want.kind === "add-box") node = els["add-box"];
  else if (want.kind === "drop-zone") node = els["drop-zone"];
  else if (picture) {
    const scope = want.kind === "box" ? els.boxes : els.crops;
    const holder = scope.querySelector(`[data-face="${want.faceId}"]`);
    const inner = { box: null, delete: "[data-action=delete-face]", report: "form.report input",
                    wrong: "[data-action=report-open]" }[want.kind];
    node = holder && (inner ? holder.querySelector(inner) : holder);
  }
  if (node) node.focus();
}
