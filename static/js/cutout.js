// Cutout pixels: what the server sent back, checked, composed on the chosen background,
// cropped to the figure, and exported. Kept per picture here; the state says what to show.
import { bitmapOf } from "./pictures.js";

const results = new Map();     // picture id -> {bitmap, bbox, blurSource, blob (the server's PNG)}
const backgrounds = new Map(); // picture id -> ImageBitmap of the picture chosen as background

// Under this share of opaque pixels (of the picture or of the character's box) there is
// nothing to cut out: the model saw no figure and its output is a faint ghost at most.
const EMPTY_SHARE = 0.005;
const ANALYSIS_SIDE = 256; // the alpha is measured on a copy this size: enough for a crop box

/**
 * Take the server's PNG for a picture: decode it, measure its alpha and remember it.
 * Returns {empty} (true when almost nothing is opaque in `area`, the part that was cut out).
 */
export async function keepResult(picture, blob, area) {
  const bitmap = await createImageBitmap(blob);
  const scale = Math.min(1, ANALYSIS_SIDE / Math.max(bitmap.width, bitmap.height));
  const sw = Math.max(1, Math.round(bitmap.width * scale)), sh = Math.max(1, Math.round(bitmap.height * scale));
  const canvas = new OffscreenCanvas(sw, sh);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0, sw, sh);
  const alpha = ctx.getImageData(0, 0, sw, sh).data;
  let opaque = 0, left = sw, top = sh, right = -1, bottom = -1;
  for (let y = 0, i = 3; y < sh; y++) {
    for (let x = 0; x < sw; x++, i += 4) {
      if (alpha[i] >= 128) opaque++;
      if (alpha[i] >= 16) {
        if (x < left) left = x;
        if (x > right) right = x;
        if (y < top) top = y;
        if (y > bottom) bottom = y;
      }
    }
  }
  // Back to full size, one analysis cell of margin so no edge pixel is cut off.
  const cell = 1 / scale;
  const bbox = right < 0 ? { x: 0, y: 0, w: bitmap.width, h: bitmap.height } : (() => {
    const x = Math.max(0, Math.floor((left - 1) * cell)), y = Math.max(0, Math.floor((top - 1) * cell));
    return { x, y, w: Math.min(bitmap.width, Math.ceil((right + 2) * cell)) - x,
             h: Math.min(bitmap.height, Math.ceil((bottom + 2) * cell)) - y };
  })();
  const original = await bitmapOf(picture);
  const bs = Math.min(1, 512 / Math.max(original.width, original.height));
  const blurSource = await createImageBitmap(original, {
    resizeWidth: Math.max(1, Math.round(original.width * bs)),
    resizeHeight: Math.max(1, Math.round(original.height * bs)), resizeQuality: "medium" });
  forgetResult(picture.id);
  results.set(picture.id, { bitmap, bbox, blurSource, blob });
  const share = opaque / (sw * sh) * (picture.width * picture.height) / (area.w * area.h);
  return { empty: share < EMPTY_SHARE };
}

/** The server's PNG of a picture's cutout (kept in the history), or null. */
export function resultBlob(id) {
  const r = results.get(id);
  return r ? r.blob : null;
}

/** Let go of a picture's cutout pixels (a new cutout, or the picture removed). */
export function forgetResult(id) {
  const r = results.get(id);
  results.delete(id);
  if (r) { r.bitmap.close(); r.blurSource.close(); }
}

/** Use the picture in `file` as the background of a picture's cutout; throws if it is not one. */
export async function keepBackground(id, file) {
  const bitmap = await createImageBitmap(file);
  forgetBackground(id);
  backgrounds.set(id, bitmap);
}

export function forgetBackground(id) {
  const b = backgrounds.get(id);
  backgrounds.delete(id);
  if (b) b.close();
}

function coverDraw(ctx, image, x, y, w, h) {
  // Scale the image to cover the w x h area at (x, y), centred: like CSS object-fit: cover.
  const s = Math.max(w / image.width, h / image.height);
  const dw = image.width * s, dh = image.height * s;
  ctx.drawImage(image, x + (w - dw) / 2, y + (h - dh) / 2, dw, dh);
}

/**
 * The cutout as a canvas: on its background (transparent, a colour, the blurred original or a
 * chosen picture), cropped to the figure when asked. kind: "view", "png", "flat" (no
 * transparency: white under a transparent choice), "mask" (alpha as grey), "original".
 */
export async function compose(picture, kind) {
  const r = results.get(picture.id);
  if (!r) return null;
  const c = picture.cutout;
  const W = r.bitmap.width, H = r.bitmap.height;
  const area = c.crop ? r.bbox : { x: 0, y: 0, w: W, h: H };
  const out = new OffscreenCanvas(area.w, area.h);
  const ctx = out.getContext("2d");
  if (kind === "original") {
    // The result may be a smaller copy (the server's pixel budget): the same part of the original.
    const original = await bitmapOf(picture), sx = original.width / W, sy = original.height / H;
    ctx.drawImage(original, area.x * sx, area.y * sy, area.w * sx, area.h * sy, 0, 0, area.w, area.h);
    return out;
  }
  if (kind === "mask") {
    // White where the figure is, through its alpha, onto black: the grey level is the alpha.
    ctx.drawImage(r.bitmap, area.x, area.y, area.w, area.h, 0, 0, area.w, area.h);
    ctx.globalCompositeOperation = "source-in";
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, area.w, area.h);
    ctx.globalCompositeOperation = "destination-over";
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, area.w, area.h);
    return out;
  }
  if (c.background === "color") {
    ctx.fillStyle = c.color;
    ctx.fillRect(0, 0, area.w, area.h);
  } else if (c.background === "blur") {
    ctx.filter = `blur(${Math.max(4, Math.round(Math.max(W, H) / 100))}px)`;
    ctx.drawImage(r.blurSource, -area.x, -area.y, W, H);
    ctx.filter = "none";
  } else if (c.background === "image" && backgrounds.has(picture.id)) {
    coverDraw(ctx, backgrounds.get(picture.id), 0, 0, area.w, area.h);
  } else if (kind === "flat") {
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, area.w, area.h);
  }
  ctx.drawImage(r.bitmap, area.x, area.y, area.w, area.h, 0, 0, area.w, area.h);
  return out;
}

/** Redraw the view canvas when what it shows changed (the inputs make a key). */
export function drawCutoutView(canvas, picture) {
  const c = picture.cutout;
  const key = [picture.id, c.version, c.background, c.color, c.crop, c.original, c.bgVersion].join("|");
  if (canvas.dataset.key === key) return;
  canvas.dataset.key = key;
  compose(picture, c.original ? "original" : "view").then((source) => {
    if (!source || canvas.dataset.key !== key) return;
    canvas.width = source.width;
    canvas.height = source.height;
    canvas.getContext("2d").drawImage(source, 0, 0);
  }, (err) => console.error("could not draw the cutout", err));
}

const TYPES = { png: "image/png", mask: "image/png", jpeg: "image/jpeg", webp: "image/webp" };
const SUFFIX = { png: "cutout.png", mask: "mask.png", jpeg: "cutout.jpg", webp: "cutout.webp" };

/** The download `format` (png, mask, jpeg, webp) as {blob, suffix}. */
export async function exportCutout(picture, format) {
  const canvas = await compose(picture, format === "png" ? "png" : format === "mask" ? "mask" : "flat");
  const blob = await canvas.convertToBlob({ type: TYPES[format], quality: 0.92 });
  return { blob, suffix: SUFFIX[format] };
}
