// What the page does with an animated picture or a clip: the server names its characters across
// frames (POST /api/animation/characters) and cuts every frame out into a sticker (POST
// /api/cutout), within the request when the animation is short, else as a job followed here
// (GET /api/jobs/<id>) and cancelled with DELETE. No DOM here, as in actions.js.
import * as api from "./api.js";
import { newAnimation } from "./state.js";

const POLL_MS = 500; // how often a running job is asked how far it got

/** The animation actions over `store`; `errorOf` turns a thrown error into a state error. */
export function createAnimationActions(store, errorOf) {
  const { update } = store;
  const state = store.state;
  let nextId = 1;
  let naming = null;   // AbortController of the naming request
  let cutting = null;  // {controller, location}: the sticker being made

  /** A dropped or picked animation replaces the one shown (one at a time). */
  function add(file, kind) {
    stop();
    const animation = newAnimation(nextId++, file, kind);
    update((s) => { s.animation = animation; s.reveal = { what: "animation" }; });
    name(animation);
  }

  async function name(animation) {
    const controller = new AbortController();
    naming = controller;
    try {
      const data = await api.animationCharacters(animation.file, controller.signal);
      update(() => {
        animation.info = { frames: data.frames, durations: data.durations_ms, width: data.width,
                           height: data.height, looked: data.frames_looked_at };
        animation.characters = data.characters;
        animation.naming = { state: "done", error: null };
      });
    } catch (err) {
      if (err.name === "AbortError") return;
      update(() => { animation.naming = { state: "error", error: errorOf(err) }; });
    } finally {
      if (naming === controller) naming = null;
    }
  }

  /** Cut every frame out with the options chosen; follow the job when the server queues one. */
  async function cutout() {
    const animation = state.animation;
    if (!animation) return;
    await cancel();
    const sticker = animation.sticker;
    const controller = new AbortController();
    const mine = { controller, location: null };
    cutting = mine;
    update(() => {
      Object.assign(sticker, { state: "sending", progress: 0, done: 0, total: 0, location: null, error: null });
    });
    const options = { format: sticker.format, matte: sticker.format === "gif" ? sticker.matte : null,
                      background: sticker.background === "color" ? sticker.color : null };
    const format = options.format;
    try {
      const answer = await api.sticker(animation.file, { ...options, signal: controller.signal });
      let blob = answer.blob, frames = answer.frames;
      if (answer.location) {
        mine.location = answer.location;
        update(() => { Object.assign(sticker, { state: "queued", location: answer.location, total: answer.job.pictures }); });
        const job = await follow(sticker, answer.location, controller.signal);
        if (!job) return;
        blob = await api.download(job.sticker.url, controller.signal);
        frames = job.sticker.frames;
      }
      if (controller.signal.aborted) return;
      update(() => {
        Object.assign(sticker, { state: "done", progress: 1, location: null,
                                 result: { blob, format, frames, name: stickerName(animation, format),
                                           opaque: !!options.background } });
      });
    } catch (err) {
      if (err.name === "AbortError" || controller.signal.aborted) return;
      update(() => { Object.assign(sticker, { state: "error", error: errorOf(err), location: null }); });
    } finally {
      if (cutting === mine) cutting = null;
    }
  }

  /** Ask the job how it goes until it ends: the job when done, null when cancelled meanwhile. */
  async function follow(sticker, location, signal) {
    for (;;) {
      const job = await api.job(location, signal);
      if (signal.aborted) return null;
      if (job.status === "done") return job;
      if (job.status === "failed" || job.status === "cancelled") {
        const error = job.status === "cancelled" ? { key: "anim.cancelled" }
          : { code: job.code || "job_failed", message: job.message || "" };
        update(() => { Object.assign(sticker, { state: "error", error, location: null }); });
        return null;
      }
      update(() => {
        Object.assign(sticker, { state: job.status === "running" ? "running" : "queued", progress: job.progress || 0,
                                 done: job.done || 0, total: job.pictures || sticker.total });
      });
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  /** Stop the sticker being made: the request is dropped, a job is cancelled on the server (its
   * worker stops at the next frame and deletes its files). */
  async function cancel() {
    const running = cutting;
    if (!running) return;
    cutting = null;
    running.controller.abort();
    const animation = state.animation;
    if (animation) update(() => { Object.assign(animation.sticker, { state: "cancelled", location: null }); });
    if (running.location) {
      try {
        await api.cancelJob(running.location);
      } catch (err) {
        console.warn("could not cancel the job", err); // it expires on its own
      }
    }
  }

  function setOptions(change) {
    const animation = state.animation;
    if (animation) update(() => change(animation.sticker));
  }

  /** Close the animation (the still pictures stay as they were). */
  function close() {
    stop();
    update((s) => { s.animation = null; s.focus = { kind: "drop-zone" }; });
  }

  function stop() {
    if (naming) naming.abort();
    naming = null;
    cancel();
  }

  return { add, cutout, cancel, setOptions, close };
}

/** funny.gif -> funny-sticker.webp (the extension of the format). */
function stickerName(animation, format) {
  const base = (animation.name || "animation").replace(/\.[^.]*$/, "") || "animation";
  return base + "-sticker." + { webp: "webp", apng: "png", gif: "gif", zip: "zip" }[format];
}
