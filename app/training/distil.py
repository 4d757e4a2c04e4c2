"""Distillation pools: training composites with a teacher's soft map beside the exact mask.

A pool is a folder cutout_data.folder_stream trains from: images/NNNNN.png, masks/NNNNN.png (the
composite's exact mask) and teacher/NNNNN.png (the teacher model's probability map of the same
picture). The teacher runs once per picture here, not once per training step: a large IS-Net costs
about 0.7 s a picture on two cores, many times a small student's step.
"""
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
from PIL import Image

from app.storage.files import atomic_path, write_json

POOL_FILE = "pool.json"
KINDS = ("images", "masks", "teacher")


@dataclass
class PoolConfig:
    teacher: str = "models/isnet-anime"  # a cutout model directory (served through ONNX Runtime)
    count: int = 1500
    size: int = 256  # the student's training size: composites are drawn at about twice it
    seed: int = 0
    threads: int = 2  # ONNX Runtime threads for the teacher
    mix: dict = field(default_factory=dict)  # app.demo_data.stream.MixConfig fields


def _write_png(path, array):
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def _done(out, index):
    return all((out / kind / f"{index:05d}.png").is_file() for kind in KINDS)


def build_pool(cfg, out, log=print):
    """Draw cfg.count demo-cast training composites into `out` with the teacher's maps.

    Picture i is drawn from a generator seeded by (seed, i), so an interrupted pool resumes where it
    stopped and a finished one is the same pictures however often it was resumed. A folder holding
    a pool of other settings is refused rather than mixed.
    """
    from app.demo_data import stream
    from app.inference.cutout import Cutter

    out = Path(out)
    settings = asdict(cfg)
    teacher_dir = Path(cfg.teacher)
    teacher = Cutter.load(teacher_dir, threads=cfg.threads)
    settings["teacher_card"] = {k: teacher.card.get(k) for k in ("name", "version", "architecture")}
    recorded = out / POOL_FILE
    if recorded.is_file():
        before = json.loads(recorded.read_text(encoding="utf-8"))
        # A pool may be extended (count) and may be unfinished (done); nothing else may differ.
        same = {k: v for k, v in settings.items() if k != "count"}
        if {k: v for k, v in before.items() if k not in ("count", "done")} != same:
            raise ValueError(f"{out} holds a pool of other settings ({recorded}); choose another folder")
    for kind in KINDS:
        (out / kind).mkdir(parents=True, exist_ok=True)
    write_json(recorded, {**settings, "done": False})
    todo = [i for i in range(cfg.count) if not _done(out, i)]
    if len(todo) < cfg.count:
        log(f"resuming: {cfg.count - len(todo)} of {cfg.count} pictures already in {out}")
    known = {f.name for f in fields(stream.MixConfig)}
    unknown = sorted(set(cfg.mix) - known)
    if unknown:
        raise ValueError(f"mix has unknown settings {unknown}; known: {sorted(known)}")
    mix = stream.MixConfig(**{k: v for k, v in cfg.mix.items() if v is not None})
    composites = stream.demo_stream(mix, cfg.size, cfg.seed)
    for n, i in enumerate(todo, 1):
        composites.rng = np.random.default_rng([cfg.seed, i])
        c = composites.composite()
        soft = teacher.probability(c.image)
        name = f"{i:05d}.png"
        # The teacher's map last: a picture counts as done only once all three files exist.
        _write_png(out / "images" / name, c.image)
        _write_png(out / "masks" / name, c.mask)
        _write_png(out / "teacher" / name, np.clip(np.rint(soft * 255), 0, 255).astype(np.uint8))
        if n % 50 == 0 or n == len(todo):
            log(f"{cfg.count - len(todo) + n}/{cfg.count} pictures")
    write_json(recorded, {**settings, "done": True})
    return out


def target(mask, teacher, teacher_weight):
    """The training target: the exact mask blended with the teacher's soft map (uint8, H x W)."""
    blend = (1.0 - teacher_weight) * mask.astype(np.float32) + teacher_weight * teacher.astype(np.float32)
    return np.clip(np.rint(blend), 0, 255).astype(np.uint8)
