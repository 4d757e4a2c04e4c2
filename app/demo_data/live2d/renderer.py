"""Render Live2D poses into a cache folder: <figure>/<pose>.png (RGBA) and <pose>.json beside it.

Resumable: a pose whose PNG and JSON are already there (same seed and size) is skipped, and both
files are written atomically, the JSON last, so an interrupted run leaves nothing half-written.
"""
import time
from pathlib import Path

import numpy as np
from PIL import Image

from app.config import CACHE_ROOT
from app.demo_data.live2d import cast, poses
from app.storage.files import atomic_path, write_json

DEFAULT_CACHE = CACHE_ROOT / "live2d"
DEFAULT_SIZE = (512, 512)
DEFAULT_COUNT = 80


def figure_name(character, outfit):
    return f"{character}-{outfit}"


def model_url(key, catalogue=cast.FIGURES):
    package, inner = catalogue[key]
    return f"/models/{package}/{inner}"


def paths(out_dir, key, pose_id):
    """(png, json) paths of one render."""
    base = Path(out_dir) / figure_name(*key) / f"{pose_id:04d}"
    return base.with_suffix(".png"), base.with_suffix(".json")


def _done(out_dir, key, pose_id, seed, size):
    import json
    png, meta = paths(out_dir, key, pose_id)
    if not (png.is_file() and meta.is_file()):
        return False
    try:
        data = json.loads(meta.read_text())
    except ValueError:
        return False
    return data.get("seed") == seed and data.get("size") == list(size)


def over_white(rgba):
    """RGB of an RGBA render composited on white (what the cascade sees)."""
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    return (rgba[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)).round().astype(np.uint8)


def alpha_box(rgba):
    """[x0, y0, x1, y1) of the pixels with alpha > 0, or None."""
    ys, xs = np.nonzero(rgba[..., 3])
    if not len(xs):
        return None
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


def clipped_edges(rgba):
    """The frame edges the figure touches (a figure framed whole touches none)."""
    alpha = rgba[..., 3]
    edges = {"top": alpha[0], "bottom": alpha[-1], "left": alpha[:, 0], "right": alpha[:, -1]}
    return [name for name, line in edges.items() if line.any()]


def _iou(a, b):
    """IoU of two [x0, y0, x1, y1] boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


# When the page's own cascade settings miss a face at rest (the chibi Koharu and Haruto), the
# calibration searches again with fewer neighbours over several scales and takes the median box.
PERMISSIVE_NEIGHBOURS = (3, 2, 1)
PERMISSIVE_SCALES = (0.4, 0.5, 0.6, 0.75, 0.9, 1.0, 1.25)


def find_face(rgb, below):
    """The face box [x0, y0, x1, y1] the cascade sees above y=`below`, and how it was found."""
    import cv2

    from app.inference.faces import CASCADE_PATH, detect_faces
    faces = [[x, y, x + w, y + h] for x, y, w, h in detect_faces(rgb) if y + h / 2 < below]
    if faces:
        return faces[0], "cascade"  # the largest
    cascade = cv2.CascadeClassifier(str(CASCADE_PATH))
    for neighbours in PERMISSIVE_NEIGHBOURS:
        found = []
        for scale in PERMISSIVE_SCALES:
            small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
            for x, y, w, h in cascade.detectMultiScale(gray, scaleFactor=1.02, minNeighbors=neighbours,
                                                       minSize=(20, 20)):
                box = [v / scale for v in (x, y, x + w, y + h)]
                if (box[1] + box[3]) / 2 < below:
                    found.append(box)
        if found:
            median = np.median(np.array(found), axis=0)
            return [round(float(v), 1) for v in median], f"cascade, {neighbours} neighbours, median of {len(found)}"
    return None, None


def calibrate(browser, key, info):
    """Which mesh carries the face and where, relative to it, the cascade boxes the face.

    On the model at rest, framed whole, the anime-face cascade finds the face once. The anchor
    is the model's head hit area (D_REF.HEAD) when it has one, else the mesh whose bounds best
    match the cascade's box; every pose's face box is then the anchor's bounds in that pose,
    mapped by the same relation. So boxes follow the head exactly, in the cascade's convention
    (the page crops the cascade's boxes), even in poses where the cascade itself would miss.
    """
    found = browser.render(dict(poses.NEUTRAL, anchor=None, anchor_rel=None, list_meshes=True))
    rgba = browser.screenshot()
    _, top, _, bottom = found["figure_box"]
    face, method = find_face(over_white(rgba), below=top + 0.6 * (bottom - top))
    head = next((area for area in cast.HEAD_HIT_AREAS if area in info["hit_areas"]), None)
    meshes = {mesh["id"]: mesh["box"] for mesh in found["meshes"]
              if mesh["box"][2] - mesh["box"][0] > 1 and mesh["box"][3] - mesh["box"][1] > 1}
    if face is None:
        if head:  # the hit area's own bounds, uncalibrated
            return {"anchor": head, "rel": None, "cascade_box": None, "method": "hit area only",
                    "anchor_box": meshes[head]}
        raise RuntimeError(f"{figure_name(*key)}: the cascade finds no face on the model at rest")
    anchor = head or max(meshes, key=lambda mesh_id: _iou(meshes[mesh_id], face))
    ax0, ay0, ax1, ay1 = meshes[anchor]
    aw, ah = ax1 - ax0, ay1 - ay0
    rel = [(face[0] - ax0) / aw, (face[1] - ay0) / ah, (face[2] - face[0]) / aw, (face[3] - face[1]) / ah]
    return {"anchor": anchor, "rel": [round(v, 4) for v in rel], "cascade_box": face, "method": method,
            "anchor_box": [round(v, 2) for v in meshes[anchor]]}


def _xywh(box):
    x0, y0, x1, y1 = box
    return [round(x0), round(y0), round(x1 - x0), round(y1 - y0)]


def render_pose(browser, key, info, pose, calibration):
    """Draw one pose; returns (RGBA array, metadata)."""
    found = browser.render(dict(pose, anchor=calibration["anchor"], anchor_rel=calibration["rel"],
                                list_meshes=False))
    rgba = browser.screenshot()
    motion = None
    if pose["motion"] is not None:
        clip = info["motions"][pose["motion"]]
        motion = {"group": clip["group"], "index": clip["index"], "file": clip["file"],
                  "phase": pose["motion_phase"], "time_ms": round(found["motion_ms"], 1),
                  "duration_ms": clip["duration_ms"]}
    character, outfit = key
    meta = {
        "character": character, "outfit": outfit,
        "expression": pose["expression"], "motion": motion,
        "angles": {name: pose[name] for name in ("angle_x", "angle_y", "angle_z", "body_angle_x")},
        "eye_open": pose["eye_open"], "mouth_open": pose["mouth_open"], "breath": pose["breath"],
        "params": {k: round(v, 4) for k, v in found["params"].items()},
        "framing": {"zoom": pose["zoom"], "bust_below_face": pose["bust_below_face"],
                    "margin": pose["margin"], "region": [round(v, 2) for v in found["region"]]},
        "scale": round(found["scale"], 5),  # pixels per model-canvas unit
        "face_box": _xywh(found["face_box"]),  # x, y, w, h in pixels
        "face_from": {"anchor": calibration["anchor"], "calibrated": calibration["rel"] is not None},
        "alpha_box": alpha_box(rgba),  # x0, y0, x1, y1
        "clipped": clipped_edges(rgba),
    }
    return rgba, meta


def render(out_dir=DEFAULT_CACHE, characters=None, count_per_character=DEFAULT_COUNT, seed=0,
           progress=None, size=DEFAULT_SIZE, node_modules=cast.NODE_MODULES, catalogue=cast.FIGURES):
    """Render `count_per_character` poses of each figure (character and outfit) into out_dir;
    `catalogue` says where each figure's model is (cast.FIGURES, or the bench's cast.BENCH_FIGURES).

    progress(done, total, figure, pose_id, skipped) after each pose. Returns a summary dict.
    """
    from app.demo_data.live2d.browser import Browser
    from app.demo_data.live2d.server import PageServer
    keys = cast.figures(characters, catalogue)
    cast.check_installed(keys, node_modules, catalogue)
    size = tuple(int(v) for v in size)
    todo = {key: [i for i in range(count_per_character) if not _done(out_dir, key, i, seed, size)]
            for key in keys}
    total = count_per_character * len(keys)
    done = 0
    for key in keys:
        for i in sorted(set(range(count_per_character)) - set(todo[key])):
            done += 1
            if progress:
                progress(done, total, figure_name(*key), i, True)
    summary = {"rendered": 0, "skipped": done, "seconds": 0.0, "figures": {}}
    if done == total:
        return summary
    with PageServer(node_modules) as base_url, Browser(base_url, size) as browser:
        for key in keys:
            if not todo[key]:
                continue
            (Path(out_dir) / figure_name(*key)).mkdir(parents=True, exist_ok=True)
            info = browser.load(model_url(key, catalogue))
            calibration = calibrate(browser, key, info)
            summary["figures"][figure_name(*key)] = calibration
            write_json(Path(out_dir) / figure_name(*key) / "calibration.json", calibration)
            for i in todo[key]:
                start = time.perf_counter()
                pose = poses.sample(poses.pose_rng(seed, *key, i), info)
                rgba, meta = render_pose(browser, key, info, pose, calibration)
                meta.update(pose_id=i, seed=seed, size=list(size))
                png, meta_path = paths(out_dir, key, i)
                with atomic_path(png) as tmp:
                    Image.fromarray(rgba, "RGBA").save(tmp, format="PNG")
                write_json(meta_path, meta)
                summary["rendered"] += 1
                summary["seconds"] += time.perf_counter() - start
                done += 1
                if progress:
                    progress(done, total, figure_name(*key), i, False)
    return summary
