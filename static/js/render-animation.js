// The animation panel, drawn from state.animation by render(): the animation playing with the
// boxes of its current frame (player.js), its characters each once with the frames they appear
// in, the sticker's options, progress, preview over a checkerboard and download.
import { el, errorText, headline, setAttr, setText } from "./render.js";
import { Player } from "./player.js";

const $ = (id) => document.getElementById(id);
let player = null;
let result = null; // {blob, url}: the object URL of the sticker shown, made once per result

/** "1–8, 12" (1-based) for frame indices [0..7, 11]. */
function frameRanges(frames) {
  const parts = [];
  for (let i = 0; i < frames.length; i++) {
    const start = frames[i];
    while (i + 1 < frames.length && frames[i + 1] === frames[i] + 1) i++;
    parts.push(start === frames[i] ? String(start + 1) : `${start + 1}–${frames[i] + 1}`);
  }
  return parts.join(", ");
}

/** The boxes to show on frame `index`: each character's box there, or, on a frame the server did
 * not look at (long animations are sampled), its box on the last frame looked at before. */
function boxesOf(animation, state, t) {
  const looked = animation.info ? animation.info.looked : [];
  return (index) => {
    let at = index;
    if (!looked.includes(index)) at = looked.filter((f) => f <= index).pop() ?? -1;
    const shown = [];
    animation.characters.forEach((c, i) => {
      const box = c.boxes.find((b) => b[0] === at);
      if (box) shown.push({ n: i + 1, x: box[1], y: box[2], w: box[3], h: box[4], unknown: c.unknown,
                            label: t("anim.boxLabel", { n: i + 1, name: headline(c, state, t) }) });
    });
    return shown;
  };
}

export function renderAnimation(state, t) {
  const section = $("animation-section");
  const a = state.animation;
  section.hidden = !a;
  if (!player) player = new Player($("anim-stage"));
  if (!a) {
    player.stop();
    dropResult(null);
    return;
  }
  section.dataset.naming = a.naming.state;
  setText($("anim-heading"), t("anim.heading", { name: a.name || t("anim.unnamed") }));
  const info = a.info;
  player.show(a, info ? info.durations : null, info ? [info.width, info.height] : null, boxesOf(a, state, t));
  const signature = JSON.stringify([a.id, a.naming.state, state.lang, state.characters.length]);
  if (section.dataset.signature !== signature) {
    section.dataset.signature = signature;
    player.redraw();
  }

  const status = $("anim-status");
  status.dataset.state = a.naming.state;
  status.classList.toggle("error", a.naming.state === "error");
  setText(status, a.naming.state === "running" ? t("anim.naming")
    : a.naming.state === "error" ? errorText(t, a.naming.error)
    : t("anim.summary", { n: info.frames, seconds: (info.durations.reduce((x, y) => x + y, 0) / 1000).toFixed(1),
                          characters: a.characters.length }));
  renderCharacters(a, state, t);
  renderSticker(a, t);
}

function renderCharacters(a, state, t) {
  const list = $("anim-characters");
  if (a.naming.state !== "done") return list.replaceChildren();
  const items = a.characters.length ? a.characters.map((c, i) => ({ c, n: i + 1 })) : [null];
  const signature = JSON.stringify([a.id, state.lang, state.characters.length, items.length]);
  if (list.dataset.signature === signature) return;
  list.dataset.signature = signature;
  list.replaceChildren(...items.map((item) => {
    if (!item) return el("li", { class: "hint", text: t("anim.noFaces") });
    const { c, n } = item;
    const top = c.predictions[0];
    return el("li", { class: "anim-character result", "data-character": String(n) },
      el("p", { class: "headline" + (c.unknown ? " unknown" : "") },
        el("span", { class: "tag", text: String(n) }), " ", headline(c, state, t)),
      el("p", { class: "hint", text: [
        top && !c.unknown ? t("anim.confidence", { pct: (top.score * 100).toFixed(1) + "%" }) : null,
        t("anim.frames", { n: c.frames.length, frames: frameRanges(c.frames) })].filter(Boolean).join(" · ") }));
  }));
}

function renderSticker(a, t) {
  const s = a.sticker;
  const working = ["sending", "queued", "running"].includes(s.state);
  $("sticker-format").value = s.format;
  $("sticker-matte").value = s.matte;
  $("matte-label").hidden = $("gif-note").hidden = s.format !== "gif";
  for (const radio of document.querySelectorAll("input[name=sticker-background]")) radio.checked = radio.value === s.background;
  $("sticker-color").value = s.color;
  $("sticker-make").disabled = working;
  setText($("sticker-make"), t(s.result ? "anim.cutoutAgain" : "anim.cutout"));
  $("sticker-cancel").hidden = !working;
  const progress = $("sticker-progress");
  progress.hidden = !working;
  if (s.state === "running" && s.total) progress.value = s.progress;
  else progress.removeAttribute("value"); // sending or queued: no figure yet
  const line = $("sticker-status");
  line.dataset.state = s.state;
  line.classList.toggle("error", s.state === "error");
  setText(line, s.state === "sending" ? t("anim.sending")
    : s.state === "queued" ? t("anim.queued")
    : s.state === "running" ? t("anim.running", { done: s.done, total: s.total })
    : s.state === "cancelled" ? t("anim.cancelled")
    : s.state === "error" ? errorText(t, s.error)
    : s.state === "done" ? t("anim.done", { n: s.result.frames || 0 }) : "");

  dropResult(s.result);
  const done = $("sticker-done");
  done.hidden = !s.result;
  if (!s.result) return;
  const r = s.result;
  if (!result) result = { blob: r.blob, url: URL.createObjectURL(r.blob) };
  const preview = $("sticker-preview");
  const view = $("sticker-view");
  view.hidden = r.format === "zip"; // a ZIP of frames has no picture to show
  view.classList.toggle("checkerboard", !r.opaque); // an opaque sticker needs no checkerboard
  if (r.format !== "zip" && preview.getAttribute("src") !== result.url) preview.src = result.url;
  const link = $("sticker-download");
  setAttr(link, "href", result.url);
  setAttr(link, "download", r.name);
  setText($("sticker-size"), t("anim.file", { name: r.name, kb: Math.max(1, Math.round(r.blob.size / 1024)) }));
}

/** Let the shown sticker's URL go when the result changes. */
function dropResult(current) {
  if (result && (!current || current.blob !== result.blob)) {
    URL.revokeObjectURL(result.url);
    result = null;
  }
}
