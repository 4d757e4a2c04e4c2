"""U2-Net / U2-NetP training: the paper's loss, Adam, cosine decay, resumable checkpoints."""
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from app.cutout import predict_maps
from app.nets.u2net import ARCHITECTURES
from app.training import cutout_metrics
from app.training.cutout_data import DemoCastStream, FolderStream, fixed_set, folder_pairs, load_pair


@dataclass
class CutoutTrainConfig:
    data: str = "demo-cast"  # a folder with images/ and masks/, or "demo-cast"
    arch: str = "u2netp"
    init: str = ""  # weights to start from: an official file or a run's best.pt; "" = from scratch
    size: int = 192  # training and serving resolution (the official models use 320)
    batch: int = 8
    steps: int = 2000
    lr: float = 1e-3  # Adam, as in the paper; decayed by a cosine to lr * min_lr_ratio
    min_lr_ratio: float = 0.02
    eval_every: int = 100
    eval_count: int = 24  # fixed validation pictures
    seed: int = 0
    threads: int = 0  # torch threads; 0 = torch's default
    warp: float = 0.0  # demo-cast only: share of sprites bent into new silhouettes
    extra_art: bool = False  # demo-cast only: add demo_cast.EXTRA_ART to the training sprites
    portraits: float = 0.0  # demo-cast only: share of figures drawn from app.training.portraits
    clipart: float = 0.0  # demo-cast only: share of figures drawn from app.training.clipart
    backdrops: bool = False  # demo-cast only: add app.training.backdrops to the training photos
    distractors: float = 0.0  # demo-cast only: share of pictures with app.training.distractors objects
    extra: dict = field(default_factory=dict)


def bce_loss(outputs, target):
    """The paper's loss: binary cross-entropy summed over the fused map and the six side maps."""
    return sum(F.binary_cross_entropy(d.clamp(1e-6, 1 - 1e-6), target) for d in outputs)


def lr_at(cfg, step):
    t = min(step / max(cfg.steps, 1), 1.0)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def build_net(cfg):
    net = ARCHITECTURES[cfg.arch]()
    if cfg.init:
        state = torch.load(cfg.init, map_location="cpu", weights_only=True)
        # One of our checkpoints (e.g. a lower-resolution run to fine-tune) holds it under "model".
        state = state.get("model", state)
        net.load_state_dict(state, strict=True)
    return net


def save_checkpoint(path, payload):
    """Atomic: a temp file beside it, then rename, so an interruption never leaves half a checkpoint."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def evaluate_pairs(net, pairs, size):
    """Mean measures (cutout_metrics.scores) of `net` over [(image, mask)]."""
    net.eval()
    per_picture = [cutout_metrics.scores(predict_maps(net, image, size),
                                         mask.astype(np.float32) / 255.0, thresholds=51)
                   for image, mask in pairs]
    return {k: float(np.mean([s[k] for s in per_picture])) for k in per_picture[0]}


def validation_pairs(cfg):
    if cfg.data == "demo-cast":
        return fixed_set("val", cfg.eval_count, seed=cfg.seed)
    pairs = folder_pairs(cfg.data)
    rng = np.random.default_rng(cfg.seed)
    chosen = rng.permutation(len(pairs))[:max(1, min(cfg.eval_count, len(pairs) // 5))]
    return [load_pair(*pairs[i]) for i in chosen]


def train(cfg, run_dir, log=print, stop_after=None):
    """Train until cfg.steps (or `stop_after` more steps), resuming from run_dir/last.pt if present.

    Writes run_dir/last.pt every eval and run_dir/best.pt on the best validation IoU, plus
    run_dir/log.jsonl. Returns the last checkpoint dict.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    net = build_net(cfg)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8)
    step, best = 0, {"iou": -1.0}
    last = run_dir / "last.pt"
    if last.exists():
        ckpt = torch.load(last, map_location="cpu", weights_only=False)
        net.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step, best = ckpt["step"], ckpt["best"]
        torch.set_rng_state(ckpt["torch_rng"])
        log(f"resumed from {last} at step {step}")
    # The data stream is re-seeded by step so a resumed run draws fresh, reproducible batches.
    stream = (DemoCastStream(cfg.size, seed=cfg.seed * 100_003 + step, warp=cfg.warp,
                             extra_art=cfg.extra_art, portraits=cfg.portraits,
                             backdrops=cfg.backdrops, clipart=cfg.clipart,
                             distractors=cfg.distractors)
              if cfg.data == "demo-cast"
              else FolderStream(cfg.data, cfg.size, seed=cfg.seed * 100_003 + step))
    val = validation_pairs(cfg)
    end = cfg.steps if stop_after is None else min(cfg.steps, step + stop_after)
    ckpt = None
    t0, seen = time.time(), 0
    while step < end:
        net.train()
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, step)
        x, y = stream.batch(cfg.batch)
        loss = bce_loss(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        seen += 1
        if step % 10 == 0:
            log(f"step {step}/{cfg.steps} loss {loss.item():.4f} lr {lr_at(cfg, step):.2e} "
                f"{(time.time() - t0) / seen:.2f} s/step")
        if step % cfg.eval_every == 0 or step == end:
            metrics = evaluate_pairs(net, val, cfg.size)
            metrics.update(step=step, loss=float(loss.item()), s_per_step=(time.time() - t0) / seen)
            with open(run_dir / "log.jsonl", "a") as f:
                f.write(json.dumps(metrics) + "\n")
            log(f"eval step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
            ckpt = {"model": net.state_dict(), "optimizer": opt.state_dict(), "step": step,
                    "best": best, "config": asdict(cfg), "metrics": metrics,
                    "torch_rng": torch.get_rng_state()}
            if metrics["iou"] > best["iou"]:
                best = dict(metrics)
                ckpt["best"] = best
                save_checkpoint(run_dir / "best.pt", {"model": net.state_dict(), "step": step,
                                                     "config": asdict(cfg), "metrics": metrics})
            save_checkpoint(last, ckpt)
    return ckpt
