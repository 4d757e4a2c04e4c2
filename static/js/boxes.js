// Face-box geometry in picture pixels: pure functions, no DOM.

export const MIN_BOX = 8; // px; smaller drags are treated as clicks

/** A box kept inside a width x height picture, at least MIN_BOX on each side, in whole pixels. */
export function clampBox(box, width, height) {
  const w = Math.round(Math.min(width, Math.max(MIN_BOX, box.w)));
  const h = Math.round(Math.min(height, Math.max(MIN_BOX, box.h)));
  const x = Math.round(Math.min(width - w, Math.max(0, box.x)));
  const y = Math.round(Math.min(height - h, Math.max(0, box.y)));
  return { x, y, w, h };
}

/** The box moved by (dx, dy), stopped at the picture's edges. */
export function moveBox(box, dx, dy, width, height) {
  return clampBox({ x: box.x + dx, y: box.y + dy, w: box.w, h: box.h }, width, height);
}

/** The box resized by dragging one corner ("nw", "ne", "sw", "se") by (dx, dy). */
export function resizeBox(box, corner, dx, dy, width, height) {
  let left = box.x, top = box.y, right = box.x + box.w, bottom = box.y + box.h;
  if (corner.includes("w")) left = Math.min(right - MIN_BOX, Math.max(0, left + dx));
  if (corner.includes("e")) right = Math.max(left + MIN_BOX, Math.min(width, right + dx));
  if (corner.includes("n")) top = Math.min(bottom - MIN_BOX, Math.max(0, top + dy));
  if (corner.includes("s")) bottom = Math.max(top + MIN_BOX, Math.min(height, bottom + dy));
  return clampBox({ x: left, y: top, w: right - left, h: bottom - top }, width, height);
}

/** The box spanned by two points (a drag), clamped to the picture. */
export function boxFromPoints(a, b, width, height) {
  const x = Math.max(0, Math.min(a.x, b.x)), y = Math.max(0, Math.min(a.y, b.y));
  const w = Math.min(width, Math.max(a.x, b.x)) - x, h = Math.min(height, Math.max(a.y, b.y)) - y;
  return { x: Math.round(x), y: Math.round(y), w: Math.round(w), h: Math.round(h) };
}

/** Order for numbering faces: left to right, then top to bottom. */
export function byPosition(a, b) {
  return (a.x + a.w / 2) - (b.x + b.w / 2) || (a.y - b.y);
}

/** A square box in the middle of the picture, a third of its shorter side. */
export function centredBox(width, height) {
  const side = Math.max(MIN_BOX, Math.round(Math.min(width, height) / 3));
  return clampBox({ x: (width - side) / 2, y: (height - side) / 2, w: side, h: side }, width, height);
}

/**
 * The region of the whole character around a face box: a standing anime figure is about three
 * heads wide and up to seven heads tall below the top of its hair, so the face grows a head and
 * a half sideways, half a head up and six heads down, clamped to the picture.
 */
export function figureBox(face, width, height) {
  const left = Math.max(0, face.x - 1.5 * face.w);
  const right = Math.min(width, face.x + 2.5 * face.w);
  const top = Math.max(0, face.y - 0.5 * face.h);
  const bottom = Math.min(height, face.y + 7 * face.h);
  return clampBox({ x: left, y: top, w: right - left, h: bottom - top }, width, height);
}

/** True when two boxes have the same place and size. */
export function sameBox(a, b) {
  return a.x === b.x && a.y === b.y && a.w === b.w && a.h === b.h;
}
