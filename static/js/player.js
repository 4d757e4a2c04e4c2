// Plays an animation with the face boxes of the frame on screen. An animated picture is decoded
// frame by frame (ImageDecoder, where the browser has it) and drawn on a canvas with its own
// delays, so the frame shown is known exactly; elsewhere the browser plays it in an <img> and the
// frame is worked out from the delays the server read. A clip plays in a <video>: its frame is
// its time over those delays. Like cutout.js for pixels, this module alone writes into its holder.

/** The MIME type ImageDecoder needs, from the first bytes. */
async function imageType(file) {
  const head = String.fromCharCode(...new Uint8Array(await file.slice(0, 12).arrayBuffer()));
  if (head.startsWith("GIF")) return "image/gif";
  if (head.startsWith("RIFF")) return "image/webp";
  return "image/png";
}

/** The frame playing at `ms` into a loop of `durations` (ms each). */
function frameAt(durations, ms) {
  const total = durations.reduce((a, b) => a + b, 0);
  if (!total) return 0;
  let left = ms % total;
  for (let i = 0; i < durations.length; i++) {
    if (left < durations[i]) return i;
    left -= durations[i];
  }
  return durations.length - 1;
}

export class Player {
  constructor(holder) {
    this.holder = holder;
    this.layer = null;        // the boxes, over the media
    this.key = null;          // the animation shown (its id) and whether its delays were known
    this.stopped = true;
    this.boxesOf = () => [];  // frame index -> [{x, y, w, h, n, label, unknown}] in animation pixels
    this.size = null;         // [w, h] of the animation
    this.run = 0;             // bumps at each start: a start overtaken by a newer one gives up
  }

  /** Show `animation` (from the state); `durations`: its frames' delays, once the server said them. */
  show(animation, durations, size, boxesOf) {
    this.boxesOf = boxesOf;
    if (size) this.size = size;
    const key = animation.id + ":" + (durations ? "timed" : "untimed");
    if (key === this.key) return;
    // The canvas player needs no delays from the server: it is not restarted when they come.
    if (this.key && this.key.split(":")[0] === String(animation.id) && this.canvasPlayer) {
      this.durations = durations;
      this.key = key;
      return;
    }
    this.stop();
    this.key = key;
    this.durations = durations;
    this.stopped = false;
    this.holder.replaceChildren();
    this.layer = document.createElement("div");
    this.layer.className = "boxes anim-boxes";
    this.start(animation).catch((err) => console.warn("could not play the animation", err));
  }

  async start(animation) {
    const file = animation.file;
    const run = ++this.run;
    if (animation.kind === "image" && "ImageDecoder" in window) {
      const type = await imageType(file);
      const supported = await ImageDecoder.isTypeSupported(type);
      if (run !== this.run) return;
      if (supported) return this.playDecoded(file, type, run);
    }
    this.url = URL.createObjectURL(file);
    const media = document.createElement(animation.kind === "clip" ? "video" : "img");
    media.className = "anim-media";
    if (animation.kind === "clip") Object.assign(media, { muted: true, loop: true, autoplay: true, playsInline: true });
    else media.alt = "";
    media.src = this.url;
    this.holder.append(media, this.layer);
    const began = performance.now();
    const tick = () => {
      if (this.stopped) return;
      const ms = animation.kind === "clip" ? media.currentTime * 1000 : performance.now() - began;
      if (this.durations) this.showFrame(frameAt(this.durations, ms));
      this.raf = requestAnimationFrame(tick);
    };
    tick();
  }

  async playDecoded(file, type, run) {
    const data = await file.arrayBuffer();
    if (run !== this.run) return;
    const decoder = new ImageDecoder({ data, type });
    this.decoder = decoder;
    this.canvasPlayer = true;
    await decoder.tracks.ready;
    if (this.decoder !== decoder) return;
    const count = decoder.tracks.selectedTrack.frameCount;
    const canvas = document.createElement("canvas");
    canvas.className = "anim-media";
    this.holder.append(canvas, this.layer);
    const ctx = canvas.getContext("2d");
    let index = 0;
    const step = async () => {
      if (this.stopped || this.decoder !== decoder) return;
      let image;
      try {
        ({ image } = await decoder.decode({ frameIndex: index }));
      } catch (err) {
        if (!this.stopped) console.warn("frame", index, "could not be decoded", err);
        return;
      }
      if (this.stopped || this.decoder !== decoder) return image.close();
      if (canvas.width !== image.displayWidth || canvas.height !== image.displayHeight) {
        canvas.width = image.displayWidth;
        canvas.height = image.displayHeight;
      }
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      ctx.drawImage(image, 0, 0);
      // The delay as the server read it (a GIF's 0 ms is played as 100 ms there, as browsers do).
      const delay = this.durations ? this.durations[index] : (image.duration || 100000) / 1000;
      image.close();
      this.showFrame(index);
      index = (index + 1) % count;
      this.timer = setTimeout(step, Math.max(20, delay || 100));
    };
    step();
  }

  /** Put the boxes of frame `index` over the media. */
  showFrame(index) {
    if (this.holder.dataset.frame === String(index)) return;
    this.holder.dataset.frame = String(index);
    this.redraw();
  }

  /** Draw the boxes again (the names changed). */
  redraw() {
    if (!this.layer || !this.size) return;
    const index = Number(this.holder.dataset.frame || 0);
    const [w, h] = this.size;
    const boxes = this.boxesOf(index);
    this.layer.replaceChildren(...boxes.map((b) => {
      const box = document.createElement("div");
      box.className = "box anim-box" + (b.unknown ? " unknown" : "");
      box.dataset.character = String(b.n);
      box.setAttribute("aria-label", b.label);
      Object.assign(box.style, { left: (100 * b.x / w) + "%", top: (100 * b.y / h) + "%",
                                 width: (100 * b.w / w) + "%", height: (100 * b.h / h) + "%" });
      const tag = document.createElement("span");
      tag.className = "tag";
      tag.textContent = String(b.n);
      box.append(tag);
      return box;
    }));
  }

  stop() {
    this.run++;
    this.stopped = true;
    this.key = null;
    this.canvasPlayer = false;
    clearTimeout(this.timer);
    cancelAnimationFrame(this.raf);
    if (this.decoder) this.decoder.close();
    this.decoder = null;
    if (this.url) URL.revokeObjectURL(this.url);
    this.url = null;
    this.holder.replaceChildren();
    delete this.holder.dataset.frame;
  }
}
