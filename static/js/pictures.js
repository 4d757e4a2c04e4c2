// Pictures: check and decode what the person gives us, keep decoded bitmaps, cut crops.

/** A picture the page will not take: `code` names the reason (a message key in the locales). */
export class PictureError extends Error {
  constructor(code, params = {}) {
    super(code);
    this.code = code;
    this.params = params;
  }
}

const SIGNATURES = [
  ["image/png", [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]],
  ["image/jpeg", [0xff, 0xd8, 0xff]],
];

/** "image/png", "image/jpeg" or "image/webp" from the file's first bytes (as the server does), or null. */
async function sniffType(file) {
  const head = new Uint8Array(await file.slice(0, 12).arrayBuffer());
  for (const [type, sig] of SIGNATURES) {
    if (sig.every((b, i) => head[i] === b)) return type;
  }
  const ascii = String.fromCharCode(...head);
  if (ascii.startsWith("RIFF") && ascii.slice(8, 12) === "WEBP") return "image/webp";
  return null;
}

/**
 * "image" for an animated picture (any GIF, a WebP or PNG with more than one frame), "clip" for an
 * MP4 or WebM video, null for anything else: read from the file's first bytes, as the server does
 * (app/inference/animation.py). A still PNG or WebP is a picture, and goes the picture way.
 */
export async function animationKind(file) {
  const head = new Uint8Array(await file.slice(0, 32).arrayBuffer());
  const ascii = String.fromCharCode(...head);
  if (ascii.startsWith("GIF87a") || ascii.startsWith("GIF89a")) return "image";
  if (ascii.slice(4, 8) === "ftyp" || (head[0] === 0x1a && head[1] === 0x45 && head[2] === 0xdf && head[3] === 0xa3)) {
    return "clip";
  }
  // WebP: an extended header (VP8X) whose flags carry the animation bit.
  if (ascii.startsWith("RIFF") && ascii.slice(8, 16) === "WEBPVP8X") return head[20] & 0x02 ? "image" : null;
  // PNG: an APNG has an acTL chunk before its first IDAT.
  if (SIGNATURES[0][1].every((b, i) => head[i] === b)) {
    const bytes = new Uint8Array(await file.slice(0, 1 << 20).arrayBuffer());
    const view = new DataView(bytes.buffer);
    for (let at = 8; at + 8 <= bytes.length;) {
      const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
      if (type === "acTL") return "image";
      if (type === "IDAT") return null;
      at += 12 + view.getUint32(at);
    }
  }
  return null;
}

const bitmaps = new Map(); // picture id -> {bitmap (once decoded), promise}; most recent last
const KEEP = 3;            // decoded pictures kept in memory (a 12 MP picture is 48 MB)

/**
 * Decode `file` fully before anything on the page changes; PictureError if it is not a picture.
 * Returns the decoded bitmap (its width and height are the picture's).
 */
export async function decodeFile(file) {
  const type = await sniffType(file);
  if (!type) throw new PictureError("picture.notPicture", { name: file.name || "" });
  try {
    return await createImageBitmap(file);
  } catch (err) {
    throw new PictureError("picture.unreadable", { name: file.name || "" });
  }
}

/** Remember the decoded bitmap of a picture (decoded once by decodeFile). */
export function keepBitmap(id, bitmap) {
  bitmaps.set(id, { bitmap, promise: Promise.resolve(bitmap) });
  trim();
}

/** The decoded bitmap of a picture, decoding its file again if it was let go. */
export function bitmapOf(picture) {
  let entry = bitmaps.get(picture.id);
  if (!entry) {
    entry = { bitmap: null, promise: null };
    entry.promise = createImageBitmap(picture.file).then((b) => (entry.bitmap = b));
  }
  bitmaps.delete(picture.id); // re-inserted below: most recently used last
  bitmaps.set(picture.id, entry);
  trim();
  return entry.promise;
}

/** The bitmap if it is decoded and kept, else null (for drawing thumbnails during a render). */
export function keptBitmap(id) {
  const entry = bitmaps.get(id);
  return entry ? entry.bitmap : null;
}

function trim() {
  while (bitmaps.size > KEEP) forget(bitmaps.keys().next().value);
}

/** Let a picture's bitmap go. */
export function forget(id) {
  const entry = bitmaps.get(id);
  bitmaps.delete(id);
  if (entry) entry.promise.then((b) => b.close(), () => {});
}

const THUMB_SIDE = 160; // the strip shows 48 CSS pixels: enough for a sharp 3x screen

/** A small JPEG of the picture for the strip. */
export async function thumbBlob(bitmap) {
  const s = Math.min(1, THUMB_SIDE / Math.max(bitmap.width, bitmap.height));
  const w = Math.max(1, Math.round(bitmap.width * s)), h = Math.max(1, Math.round(bitmap.height * s));
  const canvas = new OffscreenCanvas(w, h);
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(bitmap, 0, 0, w, h);
  return canvas.convertToBlob({ type: "image/jpeg", quality: 0.8 });
}

/**
 * A linked picture as a File, fetched by the browser: only where the site allows it (CORS), with
 * no cookies and no referrer. TypeError (the browser's) when the site does not allow it or cannot
 * be reached; PictureError when it is no web link or answers with an error.
 */
export async function fetchLink(url) {
  let parsed;
  try {
    parsed = new URL(url, location.href);
  } catch (err) {
    throw new PictureError("link.bad", { url });
  }
  if (!["http:", "https:"].includes(parsed.protocol)) throw new PictureError("link.bad", { url });
  const response = await fetch(parsed, { mode: "cors", credentials: "omit", referrerPolicy: "no-referrer" });
  const name = decodeURIComponent(parsed.pathname.split("/").pop() || "") || parsed.host;
  if (!response.ok) throw new PictureError("link.failed", { host: parsed.host, status: response.status });
  const blob = await response.blob();
  return new File([blob], name, { type: blob.type });
}

/** PNG of the box's pixels. */
export async function cropBlob(bitmap, box) {
  const canvas = new OffscreenCanvas(box.w, box.h);
  canvas.getContext("2d").drawImage(bitmap, box.x, box.y, box.w, box.h, 0, 0, box.w, box.h);
  return canvas.convertToBlob({ type: "image/png" });
}

/** Draw the box's pixels centred and fitted into `canvas`. */
export function drawThumb(canvas, bitmap, box) {
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const s = Math.min(canvas.width / box.w, canvas.height / box.h);
  const dw = box.w * s, dh = box.h * s;
  ctx.drawImage(bitmap, box.x, box.y, box.w, box.h, (canvas.width - dw) / 2, (canvas.height - dh) / 2, dw, dh);
}

/** Why the server would refuse this picture for a cutout ({key, params}), or null if it fits. */
export function cutoutRefusal(picture, limits) {
  const pixels = picture.width * picture.height;
  if (limits.maxPixels && pixels > limits.maxPixels) {
    return { key: "cutout.tooManyPixels", params: {
      mp: (pixels / 1e6).toFixed(1), max: (limits.maxPixels / 1e6).toFixed(0) } };
  }
  // The upload is the file plus a little multipart framing.
  if (limits.maxBytes && picture.file.size + 2048 > limits.maxBytes) {
    return { key: "cutout.tooManyBytes", params: {
      mb: (picture.file.size / 1048576).toFixed(1), max: (limits.maxBytes / 1048576).toFixed(0) } };
  }
  return null;
}

/** The file name without its extension, safe for download names. */
export function baseName(name) {
  const base = (name || "picture").replace(/\.[^.]*$/, "").replace(/[\\/:*?"<>|\u0000-\u001f]+/g, "_").trim();
  return base || "picture";
}
