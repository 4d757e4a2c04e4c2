// The operator's page: review queue (keyboard-friendly, bulk actions), gallery, retraining.
// Every request sends the page's CSRF token; the session cookie is the operator's sign-in.
// Strings come from static/js/operator-locales/ in the reader's language (the same switch as teach).
import { preferredLanguage, saveLanguage, translateStatic, translatorFor } from "./i18n.js";
import en from "./operator-locales/en.js";
import ja from "./operator-locales/ja.js";
import zhHans from "./operator-locales/zh-Hans.js";

const LANGUAGES = { en, "zh-Hans": zhHans, ja };

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
let lang = preferredLanguage();
let t = translatorFor(LANGUAGES, lang);
/** A server value (a status, a source) in the reader's language; the value itself where unknown. */
const word = (prefix, value) => (t.has(`${prefix}.${value}`) ? t(`${prefix}.${value}`) : value);
/** A server time in the reader's language's way of writing dates. */
const when = (iso) => (iso ? new Date(iso).toLocaleString(lang) : "");

function applyLanguage() {
  t = translatorFor(LANGUAGES, lang);
  document.documentElement.lang = lang;
  $("#lang").value = lang;
  translateStatic(document, t);
  updateBulk();
  showChosen();
}

async function call(method, url, body) {
  const options = { method, headers: { "X-CSRFToken": csrf, Accept: "application/json", "Accept-Language": lang },
                    credentials: "same-origin" };
  if (body !== undefined) options.body = body;
  const response = await fetch(url, options);
  let data = {};
  try { data = await response.json(); } catch (err) { data = {}; }
  if (!response.ok) {
    const message = (data.error && data.error.message) || `${response.status} ${response.statusText}`;
    if (response.status === 401) location.assign(`/signin?next=${encodeURIComponent(location.pathname)}`);
    throw new Error(message);
  }
  return data;
}

function notice(text, kind = "ok") {
  const box = $("#notice");
  box.textContent = text;
  box.className = `notice ${kind}`;
}

// ---- review queue -------------------------------------------------------------------------------
let currentStatus = "pending";

function cards() { return $$("#reports .report"); }
function focused() { return document.activeElement && document.activeElement.closest(".report"); }

function updateBulk() {
  const picked = cards().filter((c) => $(".pick", c).checked).length;
  $("#bulk-accept").disabled = picked === 0 || currentStatus !== "pending";
  $("#bulk-reject").disabled = picked === 0 || currentStatus !== "pending";
  $("#bulk-accept").textContent = picked ? t("review.bulk.acceptN", { n: picked }) : t("review.bulk.accept");
  $("#bulk-reject").textContent = picked ? t("review.bulk.rejectN", { n: picked }) : t("review.bulk.reject");
}

function renderReport(report) {
  const node = $("#report-template").content.firstElementChild.cloneNode(true);
  translateStatic(node, t);
  node.dataset.id = report.id;
  node.dataset.status = report.status;
  const img = $("img", node);
  img.src = `/api/reports/${encodeURIComponent(report.id)}/image`;
  img.alt = t("review.report.alt", { name: report.label });
  $(".label", node).textContent = report.label;
  $(".predicted", node).textContent = report.predicted || "—";
  $(".created", node).textContent = when(report.created);
  $(".relabel", node).value = report.decided_label || report.label;
  $(".pick", node).setAttribute("aria-label", t("review.report.selectNamed", { name: report.label }));
  const pending = report.status === "pending";
  $(".accept", node).hidden = !pending;
  $(".reject", node).hidden = !pending;
  $(".relabel", node).disabled = !pending;
  $(".pick", node).disabled = !pending;
  const status = word("review.report.decided", report.status);
  $(".state", node).textContent = pending ? ""
    : report.decided_label ? t("review.report.decidedAs", { status, name: report.decided_label }) : status;
  $(".accept", node).addEventListener("click", () => decide(node, true));
  $(".reject", node).addEventListener("click", () => decide(node, false));
  $(".pick", node).addEventListener("change", updateBulk);
  node.addEventListener("click", (event) => { if (event.target === node || event.target.tagName === "IMG") node.focus(); });
  return node;
}

function showCounts(data) {
  for (const [status, n] of Object.entries(data.counts)) $(`[data-count="${status}"]`).textContent = `(${n})`;
  const size = (bytes) => (bytes < 1048576 ? `${Math.ceil(bytes / 1024)} KB` : `${(bytes / 1048576).toFixed(1)} MB`);
  $("#quota").textContent = data.quota_bytes
    ? t("review.queue.quota", { used: size(data.pending_bytes), quota: size(data.quota_bytes) }) : "";
}

async function refreshCounts() {
  showCounts(await call("GET", "/api/reports?status=pending&limit=1"));
}

async function loadReports() {
  const data = await call("GET", `/api/reports?status=${currentStatus}&limit=200`);
  const list = $("#reports");
  list.replaceChildren(...data.reports.map(renderReport));
  $("#reports-empty").hidden = data.reports.length > 0;
  showCounts(data);
  $("#select-all").checked = false;
  updateBulk();
  if (cards().length) cards()[0].focus();
}

async function decide(node, accept) {
  const form = new FormData();
  if (accept) form.append("label", $(".relabel", node).value.trim());
  const next = node.nextElementSibling || node.previousElementSibling;
  try {
    await call("POST", `/api/reports/${encodeURIComponent(node.dataset.id)}/${accept ? "accept" : "reject"}`, form);
    node.remove();
    if (next) next.focus();
    notice(accept ? t("review.done.accepted", { name: $(".relabel", node).value.trim() }) : t("review.done.rejected"));
    refreshCounts().catch(() => {});
    $("#reports-empty").hidden = cards().length > 0;
    updateBulk();
    if (accept) loadCharacters();
    return true;
  } catch (err) {
    notice(err.message, "error");
    return false;
  }
}

async function bulk(accept) {
  const picked = cards().filter((c) => $(".pick", c).checked);
  let done = 0;
  for (const node of picked) if (await decide(node, accept)) done += 1;
  notice(t(accept ? "review.bulk.acceptedDone" : "review.bulk.rejectedDone", { done, n: picked.length }),
         done === picked.length ? "ok" : "error");
}

function onKey(event) {
  if (event.target.matches("input.relabel")) {
    if (event.key === "Enter") { event.preventDefault(); decide(event.target.closest(".report"), true); }
    if (event.key === "Escape") { event.preventDefault(); event.target.closest(".report").focus(); }
    return;
  }
  if (event.target.matches("input:not([type=checkbox]):not([type=radio]), textarea, select")) return;
  const list = cards();
  const card = focused();
  const index = card ? list.indexOf(card) : -1;
  const move = (step) => { const target = list[Math.min(Math.max(index + step, 0), list.length - 1)]; if (target) target.focus(); };
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  switch (event.key) {
    case "j": case "ArrowDown": move(1); break;
    case "k": case "ArrowUp": move(-1); break;
    case "a": if (card && card.dataset.status === "pending") decide(card, true); break;
    case "r": if (card && card.dataset.status === "pending") decide(card, false); break;
    case "e": if (card) { const input = $(".relabel", card); input.focus(); input.select(); } break;
    case "x": if (card) { const pick = $(".pick", card); if (!pick.disabled) { pick.checked = !pick.checked; updateBulk(); } } break;
    case "A": bulk(true); break;
    case "R": bulk(false); break;
    default: return;
  }
  event.preventDefault();
}

// ---- gallery ------------------------------------------------------------------------------------
async function loadCharacters() {
  const data = await call("GET", "/api/characters");
  const rows = data.details.map((c) => {
    const tr = document.createElement("tr");
    for (const text of [c.name, word("review.source", c.source), String(c.faces)]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    const faces = document.createElement("td");
    faces.className = "thumbs";
    if (c.faces > 0) loadThumbnails(c.name, faces);
    tr.append(faces);
    const td = document.createElement("td");
    if (c.source !== "head") {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "secondary";
      button.textContent = t("review.gallery.remove");
      button.setAttribute("aria-label", t("review.gallery.removeLabel", { name: c.name }));
      button.addEventListener("click", async () => {
        if (!confirm(t("review.gallery.removeConfirm", { name: c.name, n: c.faces }))) return;
        try {
          await call("DELETE", `/api/characters/${encodeURIComponent(c.name)}`);
          notice(t("review.gallery.removed", { name: c.name }));
          loadCharacters();
        }
        catch (err) { notice(err.message, "error"); }
      });
      td.append(button);
    }
    tr.append(td);
    tr.dataset.name = c.name;
    return tr;
  });
  $("#characters tbody").replaceChildren(...rows);
}

const THUMBNAILS = 6;

/** Up to THUMBNAILS enrolled faces of `name` as small pictures in `cell`. */
async function loadThumbnails(name, cell) {
  try {
    const data = await call("GET", `/api/gallery/faces?name=${encodeURIComponent(name)}`);
    cell.replaceChildren(...data.faces.slice(0, THUMBNAILS).map((face) => Object.assign(document.createElement("img"), {
      src: face.url, alt: t("review.face.alt", { name, source: word("review.face", face.source) }),
      width: 40, height: 40, loading: "lazy" })));
  } catch (err) { /* thumbnails are a convenience: the row stands without them */ }
}

/** How many pictures the (unseen) file input holds, in the reader's language. */
function showChosen() {
  const n = $("#enrol-faces").files.length;
  $("#enrol-chosen").textContent = n ? t("review.enrol.chosen", { n }) : t("review.enrol.none");
}

async function enrol(event) {
  event.preventDefault();
  const form = new FormData($("#enrol-form"));
  $("#enrol-submit").disabled = true;
  try {
    const data = await call("POST", "/api/characters", form);
    notice(t("review.enrol.done", { name: data.name, n: data.faces, added: data.added }));
    $("#enrol-form").reset();
    showChosen();
    loadCharacters();
  } catch (err) {
    notice(err.message, "error");
  } finally {
    $("#enrol-submit").disabled = false;
  }
}

// ---- model --------------------------------------------------------------------------------------
function figures(metrics) {
  const c = metrics.candidate || {};
  const l = metrics.live || {};
  if (!c.top1 && c.top1 !== 0) return "";
  const pct = (v) => (v === undefined || v === null ? "–" : `${(100 * v).toFixed(1)}%`);
  return t("review.figures", { top1: pct(c.top1), liveTop1: pct(l.top1), unknown: pct(c.unknown_rejection_rate),
                                liveUnknown: pct(l.unknown_rejection_rate) });
}

async function loadModels() {
  const data = await call("GET", "/api/classifiers");
  // /api/classifiers says one of two fixed English phrases (app/web/review.py); the reader's words for them.
  const serving = { "retrained version": "retrained", "configured model (FLASK_CLASSIFIER_MODEL)": "configured" };
  const name = word("review.serving", serving[data.serving] ?? data.serving);
  $("#serving").textContent = t("review.model.serving", { name });
  const rows = data.versions.map((v) => {
    const tr = document.createElement("tr");
    for (const text of [String(v.id), word("review.version", v.status), when(v.created), figures(v.metrics)]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    tr.title = v.note || "";
    return tr;
  });
  $("#versions tbody").replaceChildren(...rows);
  if (data.active_job) watchJob(data.active_job.id);
}

let watching = null;
async function watchJob(id) {
  if (watching === id) return;
  watching = id;
  const bar = $("#job-progress");
  bar.hidden = false;
  $("#retrain").disabled = true;
  for (;;) {
    let job;
    try { job = (await call("GET", `/api/jobs/${id}`)).job; } catch (err) { notice(err.message, "error"); break; }
    bar.value = job.progress;
    $("#job-message").textContent = job.message;
    if (!["queued", "running"].includes(job.status)) {
      notice(job.message, job.status === "done" ? "ok" : "error");
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  bar.hidden = true;
  $("#retrain").disabled = false;
  watching = null;
  loadModels();
}

async function retrain() {
  try {
    const data = await call("POST", "/api/classifiers/retrain");
    watchJob(data.job.id);
  } catch (err) { notice(err.message, "error"); }
}

async function rollback() {
  if (!confirm(t("review.model.rollbackConfirm"))) return;
  try {
    const data = await call("POST", "/api/classifiers/rollback");
    notice(data.live ? t("review.model.liveAgain", { id: data.live.id }) : t("review.model.configuredLive"));
    loadModels();
  } catch (err) { notice(err.message, "error"); }
}

function loadAll() {
  return Promise.all([loadReports(), loadCharacters(), loadModels()]);
}

// A module runs after the document is parsed: no DOMContentLoaded wait.
$("#lang").addEventListener("change", () => {
  lang = $("#lang").value;
  saveLanguage(lang);
  applyLanguage();
  loadAll().catch((err) => notice(err.message, "error"));  // the rows carry words too
});
$$('#status-filter input[name="status"]').forEach((radio) => radio.addEventListener("change", () => {
  currentStatus = radio.value;
  loadReports().catch((err) => notice(err.message, "error"));
}));
$("#select-all").addEventListener("change", (event) => {
  cards().forEach((c) => { const pick = $(".pick", c); if (!pick.disabled) pick.checked = event.target.checked; });
  updateBulk();
});
$("#bulk-accept").addEventListener("click", () => bulk(true));
$("#bulk-reject").addEventListener("click", () => bulk(false));
$("#enrol-form").addEventListener("submit", enrol);
$("#enrol-faces").addEventListener("change", showChosen);
$("#retrain").addEventListener("click", retrain);
$("#rollback").addEventListener("click", rollback);
document.addEventListener("keydown", onKey);
applyLanguage();
loadAll()
  .then(() => { document.body.dataset.ready = "1"; })
  .catch((err) => notice(err.message, "error"));
