// The page's side of the face detector: one worker (detector-worker.js), requests by id.

/**
 * Start the detector. `onStatus({state, fraction?, reason?})` hears loading, starting, ready
 * and failed. Returns {detect(file, width, height) -> Promise<{boxes, ms}>}.
 */
export function startDetector(config, onStatus) {
  const pending = new Map();
  let nextId = 1;
  let failed = false;
  let worker;
  try {
    worker = new Worker(config.workerUrl);
  } catch (err) {
    queueMicrotask(() => onStatus({ state: "failed", reason: "worker" }));
    return { detect: () => Promise.reject(new Error("detector failed")) };
  }
  const fail = (reason) => {
    failed = true;
    onStatus({ state: "failed", reason });
    for (const { reject } of pending.values()) reject(new Error("detector failed"));
    pending.clear();
  };
  worker.addEventListener("error", (e) => { e.preventDefault(); fail("worker"); });
  worker.addEventListener("message", (event) => {
    const msg = event.data;
    if (msg.type === "progress") onStatus({ state: "loading", fraction: msg.fraction });
    else if (msg.type === "starting") onStatus({ state: "starting" });
    else if (msg.type === "ready") onStatus({ state: "ready" });
    else if (msg.type === "failed") fail(msg.reason);
    else if (msg.type === "faces" || msg.type === "error") {
      const request = pending.get(msg.id);
      pending.delete(msg.id);
      if (!request) return;
      if (msg.type === "faces") request.resolve({ boxes: msg.boxes, ms: msg.ms });
      else request.reject(new Error("detection failed"));
    }
  });
  worker.postMessage({ type: "init", opencvUrl: new URL(config.opencvUrl, location.href).href,
                       opencvSize: config.opencvSize,
                       cascadeUrl: new URL(config.cascadeUrl, location.href).href,
                       params: config.detector });
  return {
    detect(file, width, height) {
      if (failed) return Promise.reject(new Error("detector failed"));
      const id = nextId++;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        worker.postMessage({ type: "detect", id, file, width, height });
      });
    },
  };
}
