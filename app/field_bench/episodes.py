"""Test "episodes" for teaching a cast: scenes of one to three characters that pan and zoom and
change pose, cut one to the next, encoded to MP4 with ffmpeg, with the truth of every frame.

Only the field bench's characters (app/field_bench/sources.py: whole Live2D characters from npm
that no model trains on, and the demo cast's test-split sprites) appear, so that what a test
measures holds for characters no model has seen. Renders stay in the git-ignored cache; an episode
is made on demand, never committed.

The truth file beside the video (`<name>.json`) lists, per frame, (character, face box) of every
face drawn whole inside the frame.
"""
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = (640, 360)
FPS = 12
SCENE_SECONDS = (2.0, 5.0)
PEOPLE_PER_SCENE = ((1, 0.35), (2, 0.45), (3, 0.2))  # (count, share of scenes)


def figures_by_character(split="test", half=None):
    """{character: [Figure, ...]} of the bench's Live2D characters and cast sprites of `split`;
    `half` 0 or 1 keeps every other pose (two episodes of one cast that share no Live2D pose)."""
    from app.field_bench import sources
    out = {}
    for kind in ("live2d", "cast"):
        for figure in sources.load_figures(kind, split):
            out.setdefault(figure.character, []).append(figure)
    if half is not None:
        out = {c: (f[half::2] if len(f) > 1 else f) for c, f in out.items()}
    return out


def _scene_plan(rng, cast, frames, people=None):
    """One scene: who stands where (`people`, or some drawn at random), how they move and when
    their pose changes."""
    if people is None:
        count = int(rng.choice([c for c, _ in PEOPLE_PER_SCENE], p=[p for _, p in PEOPLE_PER_SCENE]))
        names = sorted(cast)
        people = [names[i] for i in rng.choice(len(names), size=min(count, len(names)), replace=False)]
    w, h = SIZE
    slot = w / len(people)
    plan = []
    for i, character in enumerate(people):
        poses = cast[character]
        first, second = (poses[j] for j in rng.integers(len(poses), size=2))
        height = rng.uniform(0.9, 1.5) * h
        drift = rng.uniform(-0.08, 0.08) * w
        plan.append({"character": character, "poses": (first, second), "switch": int(rng.integers(frames)),
                     "height": (height, height * rng.uniform(0.95, 1.12)), "flip": bool(rng.random() < 0.5),
                     "x": (i * slot + slot / 2, i * slot + slot / 2 + drift),
                     "y": rng.uniform(0.0, 0.25) * h})
    return plan


def _draw(canvas, person, t, frame_index):
    """Compose one person at time t in [0, 1] on `canvas` (RGBA); their face box if whole in frame."""
    figure = person["poses"][0 if frame_index < person["switch"] else 1]
    sh, sw = figure.rgba.shape[:2]
    height = person["height"][0] + t * (person["height"][1] - person["height"][0])
    scale = height / sh
    nw, nh = max(1, round(sw * scale)), max(1, round(sh * scale))
    img = Image.fromarray(figure.rgba).resize((nw, nh), Image.BILINEAR)
    fx, fy, fw, fh = figure.face_box
    if person["flip"]:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
        fx = sw - fx - fw
    cx = person["x"][0] + t * (person["x"][1] - person["x"][0])
    x, y = round(cx - nw / 2), round(person["y"])
    W, H = canvas.size
    canvas.alpha_composite(img, (max(x, 0), max(y, 0)), (max(-x, 0), max(-y, 0)))
    box = (round(x + fx * scale), round(y + fy * scale), round(fw * scale), round(fh * scale))
    bx, by, bw, bh = box
    return box if bx >= 0 and by >= 0 and bx + bw <= W and by + bh <= H else None


def render(path, seconds, seed, split="test", half=None, cast=None, fps=FPS, script=None):
    """Write an MP4 episode of about `seconds` to `path` and its truth to `path`.json; returns the truth.
    `script`: [(seconds, [character, ...]), ...] scene by scene instead of scenes drawn at random."""
    if shutil.which("ffmpeg") is None:
        raise RuntimeError("making an episode needs ffmpeg (apt-get install ffmpeg)")
    from app.field_bench import sources
    rng = np.random.default_rng(seed)
    cast = cast or figures_by_character(split, half)
    backgrounds = sources.load_backgrounds(split)
    bg_names = sorted(backgrounds)
    w, h = SIZE
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    command = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{w}x{h}", "-r", str(fps), "-i", "-", "-c:v", "libx264", "-preset", "veryfast",
               "-crf", "24", "-pix_fmt", "yuv420p", "-threads", "1", str(path)]
    truth = {"fps": fps, "size": [w, h], "frames": [], "scenes": [], "characters": sorted(cast)}
    encoder = subprocess.Popen(command, stdin=subprocess.PIPE)
    if script:
        seconds = sum(length for length, _ in script)
    total = round(seconds * fps)
    from app.demo_data.compose import photo_crop
    try:
        while len(truth["frames"]) < total:
            scene = script[len(truth["scenes"])] if script else None
            length = scene[0] if scene else rng.uniform(*SCENE_SECONDS)
            frames = min(total - len(truth["frames"]), round(length * fps))
            backdrop = photo_crop(rng, backgrounds[bg_names[rng.integers(len(bg_names))]], (w, h))
            plan = _scene_plan(rng, cast, frames, scene[1] if scene else None)
            truth["scenes"].append([len(truth["frames"]), len(truth["frames"]) + frames])
            for i in range(frames):
                t = i / max(1, frames - 1)
                canvas = Image.fromarray(backdrop).convert("RGBA")
                faces = []
                for person in plan:
                    box = _draw(canvas, person, t, i)
                    if box is not None:
                        faces.append([person["character"], list(box)])
                truth["frames"].append(faces)
                encoder.stdin.write(np.asarray(canvas.convert("RGB")).tobytes())
        encoder.stdin.close()
        if encoder.wait() != 0:
            raise RuntimeError(f"ffmpeg could not encode {path}")
    except BaseException:
        encoder.kill()
        encoder.wait()
        path.unlink(missing_ok=True)
        raise
    path.with_suffix(".json").write_text(json.dumps(truth))
    return truth


def character_at(truth, seconds, box, min_iou=0.3):
    """The character whose true face box at `seconds` overlaps `box` most (IoU >= min_iou), or None."""
    from app.teach.tracks import iou
    index = min(len(truth["frames"]) - 1, max(0, round(seconds * truth["fps"])))
    best, who = min_iou, None
    for character, true_box in truth["frames"][index]:
        overlap = iou(box, true_box)
        if overlap >= best:
            best, who = overlap, character
    return who
