// Calls to the server. Every error becomes {code, message, status}; the page shows its own
// translated text for the codes it knows (i18n.js), and the server's message otherwise.

let language = "en";

/** Ask the server to answer in this language (Accept-Language) where it can. */
export function setLanguage(lang) {
  language = lang;
}

export class ApiError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

async function errorOf(response) {
  // The API answers {"error": {"code", "message"}}; a proxy might send HTML instead.
  try {
    const data = await response.json();
    if (data && data.error) return new ApiError(data.error.code, data.error.message, response.status);
  } catch (e) { /* not JSON */ }
  return new ApiError("http_" + response.status, "", response.status);
}

/** fetch() that throws ApiError on a network failure or a non-2xx answer. */
export async function request(url, options = {}) {
  let response;
  try {
    response = await fetch(url, { ...options, headers: { "Accept-Language": language, ...options.headers } });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError("network", "", 0);
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

export async function health() {
  // A server that is not ready answers 503 with the same body: it is there, a model is missing.
  let response;
  try {
    response = await fetch("/healthz", { headers: { "Accept-Language": language } });
  } catch (err) {
    throw new ApiError("network", "", 0);
  }
  if (response.ok || response.status === 503) {
    const data = await response.json().catch(() => null);
    if (data && data.models) return data;
  }
  throw await errorOf(response);
}

export async function characters() {
  return (await request("/api/characters")).json();
}

/** Names for face crops (Blobs), in order. */
export async function identify(crops) {
  const form = new FormData();
  crops.forEach((blob, i) => form.append("faces", blob, "face-" + (i + 1) + ".png"));
  return (await request("/api/identify", { method: "POST", body: form })).json();
}

/** Save a wrong-name report: the crop, the right label, what the model said. */
export async function report(crop, label, predicted) {
  const form = new FormData();
  form.append("face", crop, "face.png");
  form.append("label", label);
  form.append("predicted", predicted);
  return (await request("/api/reports", { method: "POST", body: form })).json();
}

/**
 * The picture with its background removed: {blob (PNG), sizes ({source, output}: [w, h] each, or
 * null)}. `faces` (the picture's face boxes) are prompts: only the figures they lie on are kept;
 * `face` keeps that one character's figure.
 */
export async function cutout(file, { box = null, faces = [], face = null, largest = false, full = false,
                                     signal } = {}) {
  const form = new FormData();
  const text = (b) => [b.x, b.y, b.w, b.h].map((v) => Math.floor(v)).join(","); // floor: stays inside
  form.append("image", file, "picture");
  if (box) form.append("box", text(box));
  if (faces.length) form.append("faces", faces.map(text).join(";"));
  if (face) form.append("face", text(face));
  // clean=1 drops specks; largest=1 keeps the largest figure; decontaminate=1 asks the
  // server to take the old background's colour out of the edges (ignored where not supported).
  // full=1 asks for the picture's own size where the server allows more pixels (else no change);
  // animated=0: the page shows one frame, so an animated WebP/APNG is cut out as its first frame.
  const query = new URLSearchParams({ clean: "1", largest: largest ? "1" : "0", decontaminate: "1",
                                      full: full ? "1" : "0", animated: "0" });
  const response = await request("/api/cutout?" + query, { method: "POST", body: form, signal });
  // The size as sent and the size the server worked on: a smaller copy is said on the page.
  const size = (name) => {
    const m = /^(\d+)x(\d+)$/.exec(response.headers.get(name) || "");
    return m ? [Number(m[1]), Number(m[2])] : null;
  };
  const sizes = { source: size("X-Source-Size"), output: size("X-Output-Size") };
  return { blob: await response.blob(), sizes: sizes.source && sizes.output ? sizes : null };
}

/** The characters of an animation (POST /api/animation/characters): each once, with the frames
 * and boxes it appears in, plus the animation's frame count, delays and size. */
export async function animationCharacters(file, signal) {
  const form = new FormData();
  form.append("image", file, file.name || "animation");
  return (await request("/api/animation/characters", { method: "POST", body: form, signal })).json();
}

/**
 * An animation cut out into a sticker. The server answers the sticker itself when it is short
 * ({blob, frames}) or queues a job (202): then {job, location}, followed with job() below.
 * `format`: webp, apng, gif or zip; `matte`: "#rrggbb", what a GIF's soft edges are laid over;
 * `background`: "#rrggbb" for an opaque sticker on that colour, or null for transparent.
 */
export async function sticker(file, { format = "webp", matte = null, background = null, signal } = {}) {
  const form = new FormData();
  form.append("image", file, file.name || "animation");
  const query = new URLSearchParams({ format, clean: "1", decontaminate: "1" });
  if (matte) query.set("matte", matte.replace("#", ""));
  if (background) query.set("background", background.replace("#", ""));
  const response = await request("/api/cutout?" + query, { method: "POST", body: form, signal });
  if (response.status === 202) {
    const data = await response.json();
    return { job: data.job, location: response.headers.get("Location") || "/api/jobs/" + data.job.id };
  }
  return { blob: await response.blob(), frames: Number(response.headers.get("X-Frames")) || null };
}

/** A job's state: {status, progress, done, pictures, sticker: {url, frames, ...} once done}. */
export async function job(location, signal) {
  return (await request(location, { signal, cache: "no-store" })).json().then((data) => data.job);
}

/** Cancel a queued or running job (its worker stops at the next frame). */
export async function cancelJob(location) {
  return (await request(location, { method: "DELETE" })).json();
}

/** A finished job's file. */
export async function download(url, signal) {
  return (await request(url, { signal })).blob();
}
