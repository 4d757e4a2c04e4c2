// The line under the picture, worked out from the picture's state each render (never stored or
// set by a step), so it cannot go stale: draw, move, delete or name a box and it follows.

/** The status line of `picture`: [{key, params}] message parts, and its data-state. */
export function pictureLine(picture, detectorState) {
  const d = picture.detect, faces = picture.faces;
  if (d.state === "running") return { state: "running", parts: [{ key: "detect.running" }] };
  if (!faces.length) {
    const key = d.state === "waiting" ? (detectorState === "failed" ? "detect.off" : "detect.waiting")
      : d.state === "failed" ? "detect.failed"
      : d.count ? "status.noneLeft" : "detect.none";
    return { state: d.state, parts: [{ key }] };
  }
  const found = faces.filter((f) => f.source === "auto").length;
  const drawn = faces.length - found;
  const named = faces.filter((f) => f.result && f.result.state === "done" && !f.result.unknown).length;
  const sources = [];
  if (found) sources.push({ key: "status.found", params: { n: found, ms: d.ms } });
  if (drawn) sources.push({ key: "status.drawn", params: { n: drawn } });
  const parts = [{ key: "status.faces", params: { n: faces.length }, sources }];
  if (named) parts.push({ key: "status.named", params: { n: named, total: faces.length } });
  return { state: d.state, parts };
}

/** The line in words. */
export function lineText(line, t) {
  return line.parts.map((part) => {
    if (!part.sources) return t(part.key, part.params);
    const sources = part.sources.map((s) => t(s.key, s.params)).join(t("list.separator"));
    return t("status.summary", { faces: t(part.key, part.params), sources });
  }).join(t("status.gap"));
}
