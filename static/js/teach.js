// The teach page: upload material (a job with progress and cancel), list teach sessions, and name
// each group of a session in one action (merge, drop faces, discard). Keyboard: j/k or arrows
// move between group cards, n names, m merges, d discards, f shows every face of the group.
import { preferredLanguage, saveLanguage, translateStatic, translatorFor } from "./i18n.js";
import en from "./teach-locales/en.js";
import ja from "./teach-locales/ja.js";
import zhHans from "./teach-locales/zh-Hans.js";

const LANGUAGES = { en, "zh-Hans": zhHans, ja };
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
let lang = preferredLanguage();
let sessionKey = document.body.dataset.session || "";
let lastView = null;

let t = translatorFor(LANGUAGES, lang);

function applyLanguage() {
  t = translatorFor(LANGUAGES, lang);
  document.documentElement.lang = lang;
  $("#lang").value = lang;
  translateStatic(document, t);
  if (lastView) renderSession(lastView);
}

async function call(method, url, body) {
  const options = { method, headers: { "X-CSRFToken": csrf, Accept: "application/json", "Accept-Language": lang },
                    credentials: "same-origin" };
  if (body instanceof FormData) options.body = body;
  else if (body !== undefined) {
    options.body = JSON.stringify(body);
    options.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(url, options);
  let data = {};
  try { data = await response.json(); } catch (err) { data = {}; }
  if (!response.ok) {
    if (response.status === 401) location.assign(`/signin?next=${encodeURIComponent(location.pathname)}`);
    throw new Error((data.error && data.error.message) || `${response.status} ${response.statusText}`);
  }
  return data;
}

function notice(text, kind = "ok") {
  const box = $("#notice");
  box.textContent = text;
  box.className = `notice ${kind}`;
}

// ---- upload and the job -------------------------------------------------------------------------
let watching = null;

async function upload(event) {
  event.preventDefault();
  const form = new FormData();
  for (const file of $("#material").files) form.append("material", file, file.name);
  try {
    const body = await call("POST", "/api/teach", form);
    notice(t("teach.job.queued"));
    watch(body.job.id, body.session);
  } catch (err) { notice(err.message, "error"); }
}

function watch(jobId, session) {
  watching = jobId;
  $("#job").hidden = false;
  const tick = async () => {
    if (watching !== jobId) return;
    try {
      const { job } = await call("GET", `/api/jobs/${jobId}`);
      $("#job-progress").value = job.progress;
      $("#job-text").textContent = t("teach.job.progress", { pct: Math.round(job.progress * 100) });
      if (job.status === "done") {
        $("#job").hidden = true;
        watching = null;
        location.assign(`/teach/${session}`);
        return;
      }
      if (job.status !== "queued" && job.status !== "running") {
        $("#job").hidden = true;
        watching = null;
        notice(job.status === "cancelled" ? t("teach.job.cancelled") : `${t("teach.job.failed")} ${job.message}`,
               job.status === "cancelled" ? "ok" : "error");
        loadSessions();
        return;
      }
    } catch (err) { notice(err.message, "error"); }
    setTimeout(tick, 700);
  };
  $("#job-cancel").onclick = async () => {
    try { await call("DELETE", `/api/jobs/${jobId}`); } catch (err) { notice(err.message, "error"); }
  };
  tick();
}

// ---- sessions -----------------------------------------------------------------------------------
async function loadSessions() {
  const list = $("#sessions");
  try {
    const { sessions } = await call("GET", "/api/teach");
    list.replaceChildren(...sessions.map((s) => {
      const li = document.createElement("li");
      const a = document.createElement("a");
      a.href = `/teach/${s.id}`;
      a.textContent = s.name || s.id;
      li.append(a, " ", t(`teach.status.${s.status}`));
      if (s.id === sessionKey) li.setAttribute("aria-current", "page");
      if (s.status === "processing" && s.job && (s.job.status === "queued" || s.job.status === "running") && !watching) {
        watch(s.job.id, s.id);
      }
      return li;
    }));
    if (!sessions.length) list.replaceChildren(Object.assign(document.createElement("li"), { textContent: t("teach.sessions.none") }));
  } catch (err) { notice(err.message, "error"); }
}

// ---- a session's groups ---------------------------------------------------------------------------
async function loadSession() {
  if (!sessionKey) return;
  try {
    const view = await call("GET", `/api/teach/${sessionKey}`);
    lastView = view;
    renderSession(view);
  } catch (err) { notice(err.message, "error"); }
  try {
    const { characters } = await call("GET", "/api/characters");
    $("#known-names").replaceChildren(...characters.map((n) => Object.assign(document.createElement("option"), { value: n })));
  } catch (err) { /* names to pick from are a convenience */ }
}

function faceImage(view, id, alt) {
  const img = document.createElement("img");
  img.src = `${view.faces_url}${id}`;
  img.alt = alt;
  img.width = 80;
  img.height = 80;
  img.loading = "lazy";
  return img;
}

function answerText(group) {
  if (!group.answer) return t("teach.answer.none");
  if (group.answer.unknown) return t("teach.answer.unknown");
  return t("teach.answer.label", { name: group.answer.label, agree: group.answer.agree, asked: group.answer.asked });
}

function renderSession(view) {
  $("#groups-section").hidden = false;
  $("#groups-heading").textContent = t("teach.groups.heading", { name: view.name || view.id });
  const open = view.groups.filter((g) => g.status !== "discarded");
  $("#groups-summary").textContent = view.status === "ready"
    ? t("teach.groups.summary", { n: open.length, aside: view.set_aside, named: open.filter((g) => g.status === "named").length })
    : t(`teach.status.${view.status}`);
  const focusedNumber = document.activeElement && document.activeElement.closest(".group")
    ? document.activeElement.closest(".group").dataset.number : null;
  $("#groups").replaceChildren(...view.groups.map((group) => groupCard(view, group)));
  const again = focusedNumber && $(`.group[data-number="${focusedNumber}"]`);
  if (again) again.focus();
}

function groupCard(view, group) {
  const li = document.createElement("li");
  li.className = `group ${group.status}`;
  li.tabIndex = 0;
  li.dataset.number = group.number;
  const title = document.createElement("h3");
  title.textContent = group.status === "named" ? t("teach.group.named", { number: group.number, name: group.name })
    : group.status === "discarded" ? t("teach.group.discarded", { number: group.number })
      : t("teach.group.title", { number: group.number });
  const counts = document.createElement("p");
  counts.className = "hint";
  counts.textContent = t("teach.group.counts", { n: group.faces, tracks: group.tracks });
  const answer = document.createElement("p");
  answer.className = "answer";
  answer.textContent = answerText(group);
  const strip = document.createElement("div");
  strip.className = "faces";
  strip.append(...group.typical.map((id) => faceImage(view, id, t("teach.face.alt", { number: group.number }))));
  li.append(title, strip, counts, answer);
  if (group.status === "discarded") return li;

  const nameForm = document.createElement("form");
  nameForm.className = "name-form";
  const input = Object.assign(document.createElement("input"), { type: "text", name: "name", required: true,
                                                                 value: group.name || "" });
  input.setAttribute("list", "known-names");
  input.setAttribute("aria-label", t("teach.group.nameLabel", { number: group.number }));
  input.placeholder = t("teach.group.namePlaceholder");
  const nameButton = Object.assign(document.createElement("button"), { type: "submit", textContent: t("teach.group.name") });
  nameForm.append(input, nameButton);
  nameForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    await act(`/api/teach/${sessionKey}/groups/${group.number}/name`, { name: input.value },
              (r) => t("teach.done.named", { name: r.name, n: r.added }));
  });

  const others = lastView.groups.filter((g) => g.number !== group.number && g.status !== "discarded");
  const mergeSelect = document.createElement("select");
  mergeSelect.setAttribute("aria-label", t("teach.group.mergeLabel", { number: group.number }));
  mergeSelect.append(Object.assign(document.createElement("option"), { value: "", textContent: t("teach.group.mergeInto") }),
    ...others.map((g) => Object.assign(document.createElement("option"), {
      value: g.number, textContent: g.name ? `${g.number} · ${g.name}` : String(g.number) })));
  mergeSelect.addEventListener("change", async () => {
    if (!mergeSelect.value) return;
    await act(`/api/teach/${sessionKey}/groups/${group.number}/merge`, { into: Number(mergeSelect.value) },
              () => t("teach.done.merged", { number: group.number, into: mergeSelect.value }));
  });
  const discard = Object.assign(document.createElement("button"), { type: "button", className: "secondary discard",
                                                                    textContent: t("teach.group.discard") });
  discard.addEventListener("click", () => act(`/api/teach/${sessionKey}/groups/${group.number}/discard`, {},
                                              () => t("teach.done.discarded", { number: group.number })));
  const more = Object.assign(document.createElement("button"), { type: "button", className: "secondary more",
                                                                 textContent: t("teach.group.allFaces") });
  more.setAttribute("aria-expanded", "false");
  const all = document.createElement("div");
  all.className = "all-faces";
  all.hidden = true;
  more.addEventListener("click", () => toggleAllFaces(view, group, all, more));
  const actions = document.createElement("div");
  actions.className = "actions";
  actions.append(nameForm, mergeSelect, discard, more);
  li.append(actions, all);
  return li;
}

async function toggleAllFaces(view, group, box, button) {
  if (!box.hidden) {
    box.hidden = true;
    button.setAttribute("aria-expanded", "false");
    return;
  }
  try {
    const { faces } = await call("GET", `/api/teach/${sessionKey}/groups/${group.number}`);
    box.replaceChildren(...faces.map((face) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = `face${face.dropped ? " dropped" : ""}`;
      b.setAttribute("aria-pressed", String(face.dropped));
      b.title = face.dropped ? t("teach.face.undrop") : t("teach.face.drop");
      b.append(faceImage(view, face.id, b.title));
      b.addEventListener("click", async () => {
        const drop = b.getAttribute("aria-pressed") !== "true";
        try {
          await call("POST", `/api/teach/${sessionKey}/faces/${face.id}/drop`, { dropped: drop });
          b.setAttribute("aria-pressed", String(drop));
          b.classList.toggle("dropped", drop);
          b.title = drop ? t("teach.face.undrop") : t("teach.face.drop");
        } catch (err) { notice(err.message, "error"); }
      });
      return b;
    }));
    box.hidden = false;
    button.setAttribute("aria-expanded", "true");
  } catch (err) { notice(err.message, "error"); }
}

async function act(url, body, say) {
  try {
    const result = await call("POST", url, body);
    notice(say(result));
    await loadSession();
  } catch (err) { notice(err.message, "error"); }
}

// ---- keyboard -----------------------------------------------------------------------------------
function cards() { return $$("#groups .group"); }

document.addEventListener("keydown", (event) => {
  if (event.target.closest("input, select, textarea") || event.ctrlKey || event.metaKey || event.altKey) return;
  const card = document.activeElement && document.activeElement.closest(".group");
  const list = cards();
  const at = card ? list.indexOf(card) : -1;
  const key = event.key;
  if (key === "j" || key === "ArrowDown" || key === "ArrowRight") {
    (list[Math.min(list.length - 1, at + 1)] || list[0])?.focus();
  } else if (key === "k" || key === "ArrowUp" || key === "ArrowLeft") {
    (list[Math.max(0, at - 1)] || list[0])?.focus();
  } else if (card && key === "n") {
    $(".name-form input", card)?.focus();
  } else if (card && key === "m") {
    $("select", card)?.focus();
  } else if (card && key === "d") {
    $(".discard", card)?.click();
  } else if (card && key === "f") {
    $(".more", card)?.click();
  } else {
    return;
  }
  event.preventDefault();
});

$("#lang").addEventListener("change", () => {
  lang = $("#lang").value;
  saveLanguage(lang);
  applyLanguage();
  loadSessions();
});
$("#upload-form").addEventListener("submit", upload);
applyLanguage();
loadSessions();
loadSession();
