// The shape of the page's state (plain data) and small questions asked of it.
import { byPosition } from "./boxes.js";

/** The state before anything happened. */
export function initialState(config, lang) {
  return {
    lang,
    limits: config.limits,
    server: { state: "checking", classifier: null, cutout: null, detection: null },
    characters: [],           // [{id, name}] the classifier knows
    detector: { state: "loading", fraction: 0, reason: null },
    notice: [],               // [{key, params}] why the last pictures given were not taken
    pictures: [],
    currentId: null,
    nextPictureId: 1,
    drag: null,               // a box being drawn, moved or resized: {kind, faceId, corner, start, origin, box}
    focus: null,              // {kind, faceId}: where keyboard focus goes after the next render
    reveal: null,             // {what}: a part of the page to scroll into view after the next render
    batch: { state: "idle", done: 0, total: 0 },
    undo: [],                 // [{pictureId, faces}]: the boxes before each change, the last on top
    history: { count: 0, bytes: 0 }, // pictures kept in this browser (history.js)
    animation: null,          // the animated picture or clip being made into a sticker (newAnimation)
  };
}

/** A picture that decoded: plain data about it; its pixels live in pictures.js. */
export function newPicture(id, file, width, height) {
  return {
    id, file, width, height,
    key: Date.now().toString(36) + "-" + Math.random().toString(36).slice(2), // its history record
    name: file.name || "",
    thumb: null,               // a small JPEG Blob for the picture strip, made once decoded
    detect: { state: "waiting", count: 0, ms: 0 },
    faces: [],
    nextFaceId: 1,
    identify: { state: "idle", error: null },
    cutout: newCutout(),
    batch: "idle",             // idle, queued, running, done, error, cancelled
  };
}

/** The cutout panel of one picture before a cutout. */
export function newCutout() {
  return {
    state: "idle",             // idle, busy, done, empty, error; stored: in the history, not decoded yet
    target: null,              // null: the whole picture; {faceId, number, box}: one character
    error: null,
    background: "transparent", // transparent, color, blur, image
    color: "#ffffff",
    crop: false,
    original: false,
    zoom: false,
    full: false,               // asked at full size (where the server allows more pixels)
    sizes: null,               // {source: [w, h], output: [w, h]}: the picture as sent, the result
    version: 0,                // bumps with each new result, so the view redraws
    bgVersion: 0,              // bumps when a picture is chosen as the background
  };
}

/** An animated picture (GIF, animated WebP or APNG; kind "image") or a clip (kind "clip"): its
 * frames and characters as the server read them, and the sticker made of it. Not kept in the history. */
export function newAnimation(id, file, kind) {
  return {
    id, file, kind, name: file.name || "",
    naming: { state: "running", error: null }, // running, done, error
    info: null,                // {frames, durations, width, height, looked}: from the server
    characters: [],            // tracks: {id, predictions, unknown, confidence, frames, boxes}
    sticker: {
      state: "idle",           // idle, sending, queued, running, done, error, cancelled
      format: "webp",          // webp, apng, gif, zip
      matte: "#ffffff",        // a GIF's soft edges are laid over this (GIF has 1-bit transparency)
      background: "transparent", // transparent, or color: frames laid over `color`, opaque
      color: "#ffffff",
      progress: 0, done: 0, total: 0,
      location: null,          // the job's URL while the server works on it as a job
      result: null,            // {blob, format, frames, name, opaque}
      error: null,
    },
  };
}

/** A face box with no name asked yet. */
export function newFace(id, box, source) {
  return { id, x: box.x, y: box.y, w: box.w, h: box.h, source, result: null,
           report: { open: false, text: "", state: "idle", error: null, label: "" } };
}

export function currentPicture(state) {
  return state.pictures.find((p) => p.id === state.currentId) || null;
}

export function pictureById(state, id) {
  return state.pictures.find((p) => p.id === id) || null;
}

export function faceById(picture, id) {
  return picture ? picture.faces.find((f) => f.id === id) || null : null;
}

/** Faces are kept in reading order (left to right), so their number is their place + 1. */
export function sortFaces(picture) {
  picture.faces.sort(byPosition);
}

export function faceNumber(picture, face) {
  return picture.faces.indexOf(face) + 1;
}

/** A known character's display name for a label, or the label itself. */
export function displayName(state, label) {
  const known = state.characters.find((c) => c.id === label);
  return known ? known.name : label;
}
