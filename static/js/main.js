// The page starts here: read what the server put on <main>, make the state and the store,
// start the detector and wire the page's events to the actions. No inline handlers anywhere:
// the Content-Security-Policy forbids them.
import { createActions } from "./actions.js";
import { setLanguage } from "./api.js";
import { startDetector } from "./detector.js";
import { preferredLanguage, saveLanguage } from "./i18n.js";
import { wireOverlay } from "./overlay.js";
import { render } from "./render.js";
import { initialState } from "./state.js";
import { createStore } from "./store.js";

const main = document.getElementById("app");
// The server sends the detector's parameters (the same as its own) and its upload limits.
const config = {
  detector: JSON.parse(main.dataset.detector),
  limits: JSON.parse(main.dataset.limits),
  opencvUrl: main.dataset.opencvUrl,
  opencvSize: Number(main.dataset.opencvSize) || 0,
  cascadeUrl: main.dataset.cascadeUrl,
  workerUrl: main.dataset.workerUrl,
  sampleUrl: main.dataset.sampleUrl || null,
};

const lang = preferredLanguage();
setLanguage(lang);
// After each render the history (this browser's IndexedDB) catches up with the page.
const store = createStore(initialState(config, lang), (s) => {
  render(s);
  if (actions) actions.syncHistory();
});
let actions = null;
const detector = startDetector(config, (status) => actions.detectorStatus(status));
actions = createActions(store, detector);
const { state, update } = store;
const $ = (id) => document.getElementById(id);

// ---------- language ----------
$("lang").addEventListener("change", (event) => {
  const chosen = event.target.value;
  saveLanguage(chosen);
  setLanguage(chosen);
  update((s) => { s.lang = chosen; });
});

// ---------- pictures in: chooser, drop anywhere, paste ----------
const fileInput = $("file-input");
const dropZone = $("drop-zone");
fileInput.addEventListener("change", () => {
  actions.addFiles(fileInput.files);
  fileInput.value = ""; // the same file again is a new pick
});
// The whole zone (words included) opens the chooser; it is the one Tab stop for it.
dropZone.addEventListener("click", (event) => {
  if (event.target !== fileInput) fileInput.click();
});
dropZone.addEventListener("keydown", (event) => {
  if (event.key === "Enter" || event.key === " ") {
    event.preventDefault();
    fileInput.click();
  }
});
const hasFiles = (event) => event.dataTransfer && Array.from(event.dataTransfer.types).includes("Files");
const hasLink = (event) => event.dataTransfer && Array.from(event.dataTransfer.types).includes("text/uri-list");
/** The one web link in a text (a copied address, a dragged image's uri-list), or null. */
function linkIn(text) {
  const lines = (text || "").split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  return lines.length === 1 && /^https?:\/\/\S+$/i.test(lines[0]) ? lines[0] : null;
}
// Drops land anywhere on the page (on the loaded picture too), not only on the zone.
document.addEventListener("dragover", (event) => {
  if (!hasFiles(event) && !hasLink(event)) return;
  event.preventDefault();
  document.body.classList.add("dropping");
});
document.addEventListener("dragleave", (event) => {
  if (!event.relatedTarget) document.body.classList.remove("dropping");
});
document.addEventListener("drop", (event) => {
  document.body.classList.remove("dropping");
  if (hasFiles(event) && event.dataTransfer.files.length) {
    event.preventDefault();
    actions.addFiles(event.dataTransfer.files);
    return;
  }
  // A picture dragged from another page arrives as its link: fetched by the browser where allowed.
  const link = hasLink(event) && linkIn(event.dataTransfer.getData("text/uri-list"));
  if (link) {
    event.preventDefault();
    actions.addLink(link);
  }
});
document.addEventListener("paste", (event) => {
  if (event.target.closest && event.target.closest("input, textarea")) return;
  const files = Array.from(event.clipboardData ? event.clipboardData.items : [])
    .filter((item) => item.kind === "file").map((item) => item.getAsFile()).filter(Boolean);
  if (files.length) {
    event.preventDefault();
    actions.addFiles(files);
    return;
  }
  const data = event.clipboardData;
  const link = data && (linkIn(data.getData("text/uri-list")) || linkIn(data.getData("text/plain")));
  if (link) {
    event.preventDefault();
    actions.addLink(link);
  }
});

// Ctrl+Z (Cmd+Z) undoes the last change to the boxes, except while typing.
document.addEventListener("keydown", (event) => {
  if (event.key.toLowerCase() !== "z" || !(event.ctrlKey || event.metaKey) || event.shiftKey || event.altKey) return;
  if (event.target.closest && event.target.closest("input, textarea, select")) return;
  event.preventDefault();
  actions.undo();
});

// ---------- buttons, by data-action or id (one listener) ----------
const faceOf = (node) => Number(node.closest("[data-face]").dataset.face);
document.addEventListener("click", (event) => {
  const target = event.target.closest("button, [data-action]");
  if (!target || target.disabled) return;
  const action = target.dataset.action;
  if (action === "pick-picture") actions.selectPicture(Number(target.closest("[data-picture]").dataset.picture));
  else if (action === "remove-picture") actions.removePicture(Number(target.closest("[data-picture]").dataset.picture));
  else if (action === "delete-face") actions.removeFace(faceOf(target), "delete");
  else if (action === "cutout-face") actions.cutout(faceOf(target));
  else if (action === "report-open") actions.openReport(faceOf(target));
  else if (action === "report-cancel") actions.closeReport(faceOf(target));
  else if (target.dataset.download) saveDownload(actions.download(target.dataset.download));
  else if (target.id === "add-box") actions.addCentredFace();
  else if (target.id === "undo") actions.undo();
  else if (target.id === "forget-all") actions.forgetAll();
  else if (target.id === "try-sample") actions.addLink(config.sampleUrl);
  else if (target.id === "cutout-full") actions.cutoutFullSize();
  else if (target.id === "identify") actions.identify();
  else if (target.id === "cutout-all") actions.cutout(null);
  else if (target.id === "cutout-cancel") actions.cancelCutout();
  else if (target.id === "show-original") actions.setCutoutView((c) => { c.original = !c.original; });
  else if (target.id === "zoom") actions.setCutoutView((c) => { c.zoom = !c.zoom; });
  else if (target.id === "batch-run") actions.runBatch();
  else if (target.id === "batch-cancel") actions.cancelBatch();
  else if (target.id === "batch-zip") saveDownload(actions.batchZip());
  else if (target.id === "sticker-make") actions.animation.cutout();
  else if (target.id === "sticker-cancel") actions.animation.cancel();
  else if (target.id === "anim-close") actions.animation.close();
});

// Report forms: typed text is state; Enter sends; Escape closes.
document.addEventListener("input", (event) => {
  if (event.target.closest("form.report")) actions.typeReport(faceOf(event.target), event.target.value);
});
document.addEventListener("submit", (event) => {
  const form = event.target.closest("form.report");
  if (!form) return;
  event.preventDefault();
  actions.sendReport(faceOf(form));
});
document.addEventListener("keydown", (event) => {
  const form = event.target.closest && event.target.closest("form.report");
  if (form && event.key === "Escape") actions.closeReport(faceOf(form));
});

// ---------- cutout view controls ----------
const bgFile = $("bg-file");
document.querySelectorAll("input[name=background]").forEach((radio) => radio.addEventListener("change", () => {
  if (radio.value === "image") {
    bgFile.click(); // the background becomes "image" once a picture is chosen
    update(() => {}); // until then the radio buttons show the choice in force
    return;
  }
  actions.setCutoutView((c) => { c.background = radio.value; });
}));
$("bg-color").addEventListener("input", (event) => {
  actions.setCutoutView((c) => { c.color = event.target.value; c.background = "color"; });
});
bgFile.addEventListener("change", () => {
  if (bgFile.files[0]) actions.chooseBackgroundPicture(bgFile.files[0]);
  bgFile.value = "";
});
$("crop-figure").addEventListener("change", (event) => {
  actions.setCutoutView((c) => { c.crop = event.target.checked; });
});

// ---------- sticker options (an animation) ----------
$("sticker-format").addEventListener("change", (event) => {
  actions.animation.setOptions((s) => { s.format = event.target.value; });
});
$("sticker-matte").addEventListener("input", (event) => {
  actions.animation.setOptions((s) => { s.matte = event.target.value; });
});
document.querySelectorAll("input[name=sticker-background]").forEach((radio) => radio.addEventListener("change", () => {
  actions.animation.setOptions((s) => { s.background = radio.value; });
}));
$("sticker-color").addEventListener("input", (event) => {
  actions.animation.setOptions((s) => { s.color = event.target.value; s.background = "color"; });
});

// ---------- boxes ----------
wireOverlay($("boxes"), store, actions);

/** Save a {blob, name} (a promise of one) as a download with that name. */
async function saveDownload(promise) {
  let file;
  try {
    file = await promise;
  } catch (err) {
    console.error("could not make the download", err);
    return;
  }
  if (!file) return;
  const url = URL.createObjectURL(file.blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = file.name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

render(state);
actions.checkServer();
actions.restoreHistory();
