// Editing face boxes over the picture: draw on empty space, drag a box to move it, drag a
// corner to resize it; on a focused box, arrow keys move it, Shift+arrows resize it, Delete
// removes it. The drag in progress is state too (state.drag), so the render shows it.
import { boxFromPoints, clampBox, MIN_BOX, moveBox, resizeBox } from "./boxes.js";
import { currentPicture, faceById } from "./state.js";

/** Wire the box layer `layer` to the store and actions. */
export function wireOverlay(layer, store, actions) {
  const { state, update } = store;

  function point(event, picture) {
    const rect = layer.getBoundingClientRect();
    return { x: (event.clientX - rect.left) / rect.width * picture.width,
             y: (event.clientY - rect.top) / rect.height * picture.height };
  }

  layer.addEventListener("pointerdown", (event) => {
    const picture = currentPicture(state);
    if (!picture || event.button !== 0) return;
    event.preventDefault();
    layer.setPointerCapture(event.pointerId);
    const start = point(event, picture);
    const boxEl = event.target.closest(".box");
    const corner = event.target.dataset.corner || null;
    const face = boxEl ? faceById(picture, Number(boxEl.dataset.face)) : null;
    if (boxEl) boxEl.focus({ preventScroll: true });
    update((s) => {
      s.drag = face
        ? { kind: corner ? "resize" : "move", faceId: face.id, corner, start,
            origin: { x: face.x, y: face.y, w: face.w, h: face.h }, box: null, pointerId: event.pointerId }
        : { kind: "draw", start, box: null, pointerId: event.pointerId };
    });
  });

  layer.addEventListener("pointermove", (event) => {
    const drag = state.drag, picture = currentPicture(state);
    if (!drag || !picture || drag.pointerId !== event.pointerId) return;
    const p = point(event, picture);
    const dx = p.x - drag.start.x, dy = p.y - drag.start.y;
    const W = picture.width, H = picture.height;
    if (drag.kind === "draw") {
      update(() => { drag.box = boxFromPoints(drag.start, p, W, H); });
    } else {
      const box = drag.kind === "move" ? moveBox(drag.origin, dx, dy, W, H)
        : resizeBox(drag.origin, drag.corner, dx, dy, W, H);
      const face = faceById(picture, drag.faceId);
      if (face) update(() => { Object.assign(face, box); drag.box = box; });
    }
  });

  function finish(event, keep) {
    const drag = state.drag, picture = currentPicture(state);
    if (!drag || drag.pointerId !== event.pointerId) return;
    update((s) => { s.drag = null; });
    if (!picture) return;
    if (drag.kind === "draw") {
      const b = drag.box;
      if (keep && b && b.w >= MIN_BOX && b.h >= MIN_BOX) actions.addFace(picture, b, false);
      return;
    }
    const face = faceById(picture, drag.faceId);
    if (!face) return;
    // The box followed the pointer; now it takes the new place for good (or goes back).
    const moved = { x: face.x, y: face.y, w: face.w, h: face.h };
    Object.assign(face, drag.origin);
    if (keep) actions.setFaceBox(face.id, moved);
    else update(() => {});
  }
  layer.addEventListener("pointerup", (event) => finish(event, true));
  layer.addEventListener("pointercancel", (event) => finish(event, false));

  layer.addEventListener("keydown", (event) => {
    const boxEl = event.target.closest(".box");
    const picture = currentPicture(state);
    if (!boxEl || !picture) return;
    const face = faceById(picture, Number(boxEl.dataset.face));
    if (!face) return;
    if (event.key === "Delete" || event.key === "Backspace") {
      event.preventDefault();
      actions.removeFace(face.id, "box");
      return;
    }
    const arrows = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    const arrow = arrows[event.key];
    if (!arrow) return;
    event.preventDefault();
    // A step is 1% of the picture's longer side (at least a pixel); Alt for single pixels.
    const step = event.altKey ? 1 : Math.max(1, Math.round(Math.max(picture.width, picture.height) / 100));
    const [dx, dy] = arrow.map((v) => v * step);
    const box = event.shiftKey
      ? clampBox({ x: face.x, y: face.y, w: face.w + dx, h: face.h + dy }, picture.width, picture.height)
      : moveBox(face, dx, dy, picture.width, picture.height);
    actions.setFaceBox(face.id, box);
  });
}
