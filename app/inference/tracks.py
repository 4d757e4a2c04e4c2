"""Characters named across the frames of an animation: faces joined into tracks, tracks named by vote.

Faces are found per frame by the picture cascade (app/inference/faces.py, same settings). A face
joins the track whose last box (in one of the last MAX_GAP frames) it overlaps most, at least
MIN_IOU; else it starts a track. Each face crop is identified as a single picture would be
(app/inference/identify.py); a track's name is the label with the highest score summed over its
frames (a frame that does not list a label gives it 0), its confidence that label's mean score,
and it is unknown when that mean is under the identifier's operating point, as for one face.
Tracks seen in fewer than MIN_SHARE of the frames looked at (a face found once in passing) are
dropped unless no other track is left.
"""
import numpy as np

MIN_IOU = 0.3
MAX_GAP = 3
MIN_SHARE = 0.2


def box_iou(a, b):
    """IoU of two (x, y, w, h) boxes."""
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def link(boxes_per_frame, min_iou=MIN_IOU, max_gap=MAX_GAP):
    """[[box, ...] per frame looked at] -> tracks: lists of (frame position, face index), in order."""
    tracks = []
    for position, boxes in enumerate(boxes_per_frame):
        pairs = []
        for t, track in enumerate(tracks):
            last_position, last_index = track[-1]
            if position - last_position > max_gap or last_position == position:
                continue
            last_box = boxes_per_frame[last_position][last_index]
            pairs += [(box_iou(last_box, box), t, i) for i, box in enumerate(boxes)]
        taken_tracks, taken_faces = set(), set()
        for overlap, t, i in sorted(pairs, reverse=True):  # best overlaps first, each used once
            if overlap < min_iou:
                break
            if t in taken_tracks or i in taken_faces:
                continue
            tracks[t].append((position, i))
            taken_tracks.add(t)
            taken_faces.add(i)
        tracks += [[(position, i)] for i in range(len(boxes)) if i not in taken_faces]
    return tracks


def vote(results, threshold, top_k=5):
    """One track's per-frame identify results -> {"predictions", "unknown", "confidence", "agreement"}."""
    totals, shown = {}, {}
    for result in results:
        for p in result["predictions"]:
            totals[p["label"]] = totals.get(p["label"], 0.0) + p["score"]
            shown.setdefault(p["label"], p.get("source", "head"))
    count = max(1, len(results))
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])[:top_k]
    predictions = [{"label": label, "score": round(total / count, 4), "source": shown[label]}
                   for label, total in ranked]
    best = predictions[0] if predictions else None
    agreement = (sum(1 for r in results if r["predictions"] and r["predictions"][0]["label"] == best["label"])
                 / count) if best else 0.0
    return {"predictions": predictions, "unknown": best is None or best["score"] < threshold,
            "confidence": best["score"] if best else 0.0, "agreement": round(agreement, 4)}


def name_tracks(boxes_per_frame, positions, crops_results, threshold):
    """Tracks with names. boxes_per_frame: boxes of each frame looked at; positions: those frames'
    indices in the animation; crops_results: identify results in the order of the boxes, frame by frame."""
    flat, k = [], 0
    for boxes in boxes_per_frame:
        flat.append(crops_results[k:k + len(boxes)])
        k += len(boxes)
    tracks = link(boxes_per_frame)
    looked = max(1, len(boxes_per_frame))
    kept = [t for t in tracks if len(t) / looked >= MIN_SHARE] or tracks
    out = []
    for number, track in enumerate(sorted(kept, key=lambda t: (-len(t), t[0]))):
        named = vote([flat[p][i] for p, i in track], threshold)
        boxes = [[positions[p], *(int(v) for v in boxes_per_frame[p][i])] for p, i in track]
        out.append({"id": number, **named, "frames": [b[0] for b in boxes], "boxes": boxes,
                    "share": round(len(track) / looked, 4)})
    return out


def sample_positions(count, most):
    """Indices of at most `most` frames spread evenly over `count` (all when they fit)."""
    if count <= most:
        return list(range(count))
    return sorted({int(round(v)) for v in np.linspace(0, count - 1, most)})
