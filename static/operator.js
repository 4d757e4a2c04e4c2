// The operator's page: review queue (keyboard-friendly, bulk actions), gallery, retraining.
// Every request sends the page's CSRF token; the session cookie is the operator's sign-in.
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

async function call(method, url, body) {
  const options = { method, headers: { "X-CSRFToken": csrf, Accept: "application/json" }, credentials: "same-origin" };
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
  $("#bulk-accept").textContent = picked ? `Accept selected (${picked})` : "Accept selected";
  $("#bulk-reject").textContent = picked ? `Reject selected (${picked})` : "Reject selected";
}

function renderReport(report) {
  const node = $("#report-template").content.firstElementChild.cloneNode(true);
  node.dataset.id = report.id;
  node.dataset.status = report.status;
  const img = $("img", node);
  img.src = `/api/reports/${encodeURIComponent(report.id)}/image`;
  img.alt = `Face reported as ${report.label}`;
  $(".label", node).textContent = report.label;
  $(".predicted", node).textContent = report.predicted || "—";
  $(".created", node).textContent = report.created ? new Date(report.created).toLocaleString() : "";
  $(".relabel", node).value = report.decided_label || report.label;
  $(".pick", node).setAttribute("aria-label", `Select the report named ${report.label}`);
  const pending = report.status === "pending";
  $(".accept", node).hidden = !pending;
  $(".reject", node).hidden = !pending;
  $(".relabel", node).disabled = !pending;
  $(".pick", node).disabled = !pending;
  $(".state", node).textContent = pending ? "" : `${report.status}${report.decided_label ? ` as ${report.decided_label}` : ""}`;
  $(".accept", node).addEventListener("click", () => decide(node, true));
  $(".reject", node).addEventListener("click", () => decide(node, false));
  $(".pick", node).addEventListener("change", updateBulk);
  node.addEventListener("click", (event) => { if (event.target === node || event.target.tagName === "IMG") node.focus(); });
  return node;
}

function showCounts(data) {
  for (const [status, n] of Object.entries(data.counts)) $(`[data-count="${status}"]`).textContent = `(${n})`;
  const size = (bytes) => (bytes < 1048576 ? `${Math.ceil(bytes / 1024)} KB` : `${(bytes / 1048576).toFixed(1)} MB`);
  $("#quota").textContent = data.quota_bytes ? `Queue uses ${size(data.pending_bytes)} of ${size(data.quota_bytes)}` : "";
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
    notice(accept ? `Accepted: ${$(".relabel", node).value.trim()} joins the gallery.` : "Rejected.");
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
  notice(`${accept ? "Accepted" : "Rejected"} ${done} of ${picked.length} report(s).`, done === picked.length ? "ok" : "error");
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
    for (const text of [c.name, c.source, String(c.faces)]) {
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
      button.textContent = "Remove from gallery";
      button.setAttribute("aria-label", `Remove ${c.name} from the gallery`);
      button.addEventListener("click", async () => {
        if (!confirm(`Remove ${c.name} and its ${c.faces} enrolled face(s) from the gallery?`)) return;
        try { await call("DELETE", `/api/characters/${encodeURIComponent(c.name)}`); notice(`${c.name} removed.`); loadCharacters(); }
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
      src: face.url, alt: `${name} (${face.source})`, width: 40, height: 40, loading: "lazy" })));
  } catch (err) { /* thumbnails are a convenience: the row stands without them */ }
}

async function enrol(event) {
  event.preventDefault();
  const form = new FormData($("#enrol-form"));
  $("#enrol-submit").disabled = true;
  try {
    const data = await call("POST", "/api/characters", form);
    notice(`${data.name}: ${data.faces} enrolled face(s) (${data.added} new).`);
    $("#enrol-form").reset();
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
  return `top-1 ${pct(c.top1)} (live ${pct(l.top1)}), unknown rejected ${pct(c.unknown_rejection_rate)} (live ${pct(l.unknown_rejection_rate)})`;
}

async function loadModels() {
  const data = await call("GET", "/api/classifiers");
  $("#serving").textContent = `Serving: ${data.serving}.`;
  const rows = data.versions.map((v) => {
    const tr = document.createElement("tr");
    for (const text of [String(v.id), v.status, v.created ? new Date(v.created).toLocaleString() : "", figures(v.metrics)]) {
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
  if (!confirm("Go back one model version?")) return;
  try {
    const data = await call("POST", "/api/classifiers/rollback");
    notice(data.live ? `Version ${data.live.id} is live again.` : "The configured model is live again.");
    loadModels();
  } catch (err) { notice(err.message, "error"); }
}

document.addEventListener("DOMContentLoaded", () => {
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
  $("#retrain").addEventListener("click", retrain);
  $("#rollback").addEventListener("click", rollback);
  document.addEventListener("keydown", onKey);
  Promise.all([loadReports(), loadCharacters(), loadModels()])
    .then(() => { document.body.dataset.ready = "1"; })
    .catch((err) => notice(err.message, "error"));
});
