// The last pictures, with their boxes, names and cutouts, kept in this browser (IndexedDB) so a
// reload loses nothing. Local only: nothing here goes to the server. At most MAX_PICTURES
// pictures and MAX_BYTES bytes; the oldest go first.

export const DB_NAME = "face-finder-history";
const STORE = "pictures";
export const MAX_PICTURES = 20;
export const MAX_BYTES = 200 * 1024 * 1024;

function done(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function finished(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = tx.onabort = () => reject(tx.error);
  });
}

/** The history database, or null where the browser keeps none (private mode, storage blocked) or,
 * unless `create`, where none was made yet (a first visit stores nothing until there is something). */
export async function openHistory(create) {
  try {
    if (!create && indexedDB.databases && !(await indexedDB.databases()).some((d) => d.name === DB_NAME)) return null;
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE, { keyPath: "key" });
    const db = await done(request);
    db.onversionchange = () => db.close(); // "forget all" from another tab deletes the database
    return db;
  } catch (err) {
    console.warn("no history in this browser", err);
    return null;
  }
}

/** Every kept picture record, oldest first. */
export async function loadAll(db) {
  const records = await done(db.transaction(STORE).objectStore(STORE).getAll());
  return records.sort((a, b) => a.saved - b.saved);
}

/** Keep one record (replacing its older copy), then drop the oldest beyond the caps; returns
 * {count, bytes} of what is kept. */
export async function keep(db, record) {
  const tx = db.transaction(STORE, "readwrite");
  tx.objectStore(STORE).put(record);
  await finished(tx);
  return trim(db);
}

async function trim(db) {
  const records = await loadAll(db);
  let bytes = records.reduce((sum, r) => sum + r.bytes, 0);
  const gone = [];
  while (records.length > MAX_PICTURES || (bytes > MAX_BYTES && records.length > 1)) {
    const oldest = records.shift();
    bytes -= oldest.bytes;
    gone.push(oldest.key);
  }
  if (gone.length) {
    const tx = db.transaction(STORE, "readwrite");
    gone.forEach((key) => tx.objectStore(STORE).delete(key));
    await finished(tx);
  }
  return { count: records.length, bytes, gone };
}

export async function drop(db, key) {
  const tx = db.transaction(STORE, "readwrite");
  tx.objectStore(STORE).delete(key);
  await finished(tx);
  return trim(db);
}

export async function clearAll(db) {
  const tx = db.transaction(STORE, "readwrite");
  tx.objectStore(STORE).clear();
  await finished(tx);
}

/** A picture as a record: its file, boxes with their names, and its cutout PNG (when made). */
export function recordOf(picture, cutoutBlob) {
  const faces = picture.faces.map((f) => ({
    x: f.x, y: f.y, w: f.w, h: f.h, source: f.source,
    result: f.result && f.result.state === "done" ? f.result : null }));
  const c = picture.cutout;
  const cutout = cutoutBlob && (c.state === "done" || c.state === "empty")
    ? { blob: cutoutBlob, sizes: c.sizes, target: c.target, full: c.full } : null;
  return {
    key: picture.key, saved: Date.now(), name: picture.name, file: picture.file, thumb: picture.thumb,
    width: picture.width, height: picture.height, detect: { count: picture.detect.count, ms: picture.detect.ms },
    faces, cutout,
    bytes: picture.file.size + (picture.thumb ? picture.thumb.size : 0) + (cutout ? cutout.blob.size : 0),
  };
}

/** What of a picture a record keeps, as one string: a change means the record is out of date. */
export function signature(picture) {
  const c = picture.cutout;
  return JSON.stringify([picture.faces.map((f) => [f.x, f.y, f.w, f.h, f.source,
    f.result && f.result.state === "done" ? f.result.predictions : null]),
  c.state === "done" || c.state === "empty" ? c.version : -1, !!picture.thumb, picture.detect.state]);
}
