"""U2-Net / U2-NetP training: the paper's loss, Adam, cosine decay, resumable checkpoints.

The trainer takes plain inputs: a stream factory (seed -> object with .batch(n)) and fixed
validation pairs. Where they come from (a folder, the demo-data engine) is the caller's business.
"""
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from app import nets
from app.build.cutout_export import preprocess_of
from app.build.torch_cutout import TorchCutout
from app.storage.files import atomic_path, write_json
from app.training import cutout_metrics


@dataclass
class CutoutTrainConfig:
    data: str = "demo-cast"  # a folder with images/ and masks/, or "demo-cast" (recorded, not read here)
    arch: str = "u2netp"
    # weights to start from: an official file, a run's best.pt, "isnet-general" or a tuned IS-Net's
    # name under models/ (e.g. "isnet-anime": a second round); "" = from scratch
    init: str = ""
    size: int = 192  # training and serving resolution (the official models use 320)
    batch: int = 8
    steps: int = 2000
    lr: float = 1e-3  # Adam, as in the paper; decayed by a cosine to lr * min_lr_ratio
    min_lr_ratio: float = 0.02
    eval_every: int = 100
    eval_count: int = 24  # fixed validation pictures
    seed: int = 0
    threads: int = 0  # torch threads; 0 = torch's default
    mix: dict = field(default_factory=dict)  # demo-cast only: app.demo_data.stream.MixConfig fields
    train_only: list = field(default_factory=list)  # parameter name prefixes to train; [] = all
    # Batch norms in eval mode: needed from isnet-general, whose norms were folded into the
    # convolutions (identity norms would normalise by batch statistics in train mode).
    frozen_norm: bool = False
    bf16: bool = False  # forward in bfloat16 autocast (AMX on this CPU: about 30% faster a step)
    live2d_val: int = 0  # Live2D val composites added to the demo-cast validation pictures
    hard_val: int = 0  # hard-case val composites (app/demo_data/hard_cases.py) added to them
    # A distillation pool (app/training/distil.py) as data: the target is the exact mask blended
    # with the teacher's map by this weight; 0 = the mask alone.
    teacher_weight: float = 0.0
    # Validation pictures for a folder: "" = a fifth of its own pairs; "demo-cast" = the demo cast's
    # val split (plus live2d_val), e.g. for a pool drawn from the demo cast's training split.
    val: str = ""


def bce_loss(outputs, target):
    """The paper's loss: binary cross-entropy summed over the fused map and the six side maps."""
    return sum(F.binary_cross_entropy(d.clamp(1e-6, 1 - 1e-6), target) for d in outputs)


def lr_at(cfg, step):
    t = min(step / max(cfg.steps, 1), 1.0)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def build_net(cfg):
    """The network of `cfg.arch`, with `cfg.init`'s weights when given (strict)."""
    if cfg.init == "isnet-general" or tuned_dir(cfg.init):
        return _isnet_general(cfg)
    net = nets.build(cfg.arch, "cutout")
    if cfg.init:
        state = torch.load(cfg.init, map_location="cpu", weights_only=True)
        # One of our checkpoints (e.g. a lower-resolution run to fine-tune) holds it under "model".
        state = state.get("model", state)
        net.load_state_dict(state, strict=True)
    return net


def tuned_dir(name):
    """models/<name>/ when `name` is a tuned IS-Net there (app/build/isnet_tuned.py), else None."""
    from app.build import isnet_tuned
    from app.config import ROOT
    if not name or "/" in name or name.endswith(".pt"):
        return None
    path = ROOT / "models" / name
    return path if (path / isnet_tuned.TUNED_CARD).is_file() else None


def _isnet_general(cfg):
    """IS-Net with the official general-use weights, from the npm file setup installed, with a
    tuned model's trained tensors in place when cfg.init names one."""
    from app.build import isnet_general, isnet_tuned
    from app.config import ROOT
    from app.nets.isnet_onnx import load_isnet

    if cfg.arch != "isnet":
        raise ValueError(f"--init isnet-general needs --arch isnet, not {cfg.arch}")
    model_dir = ROOT / "models" / isnet_general.NAME  # where setup builds it
    why = isnet_general.status(model_dir)
    if why:
        raise FileNotFoundError(f"isnet-general is not usable ({why}): run "
                                f"`python -m app.build.isnet_general`")
    tuned = tuned_dir(cfg.init)
    if tuned:
        return isnet_tuned.tuned_net(tuned, model_dir / isnet_general.NPM_FILE)[1]
    return load_isnet(model_dir / isnet_general.NPM_FILE)


def trainable(net, cfg):
    """The parameters a run trains (all, or those under cfg.train_only); the rest are frozen."""
    params = []
    for name, p in net.named_parameters():
        p.requires_grad = not cfg.train_only or any(name.startswith(t) for t in cfg.train_only)
        if p.requires_grad:
            params.append(p)
    if not params:
        raise ValueError(f"train_only {cfg.train_only} names no parameter of {cfg.arch}")
    return params


def set_mode(net, cfg):
    net.train()
    if cfg.frozen_norm:
        for m in net.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.eval()


def forward(net, x, cfg):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
        outputs = net(x)
    return [d.float() for d in outputs]


def save_checkpoint(path, payload):
    """Atomic, so an interruption never leaves half a checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def evaluate_pairs(net, pairs, size, arch="u2netp"):
    """Mean measures (cutout_metrics.scores) of `net` over [(image, mask)]."""
    net.eval()
    runner = TorchCutout(net, preprocess_of({"architecture": arch, "input_size": size}))
    per_picture = [cutout_metrics.scores(runner.probability(image),
                                         mask.astype(np.float32) / 255.0, thresholds=51)
                   for image, mask in pairs]
    return {k: float(np.mean([s[k] for s in per_picture])) for k in per_picture[0]}


def train(cfg, make_stream, val, run_dir, log=print, stop_after=None):
    """Train until cfg.steps (or `stop_after` more steps), resuming from run_dir/last.pt if present.

    make_stream(seed) gives the training batches; `val` is a fixed list of (image, mask) pairs.
    Writes run_dir/config.json, run_dir/last.pt every eval and run_dir/best.pt on the best
    validation IoU, plus run_dir/log.jsonl. Returns the last checkpoint dict.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "config.json", asdict(cfg))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    net = build_net(cfg)
    opt = torch.optim.Adam(trainable(net, cfg), lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8)
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
    stream = make_stream(cfg.seed * 100_003 + step)
    end = cfg.steps if stop_after is None else min(cfg.steps, step + stop_after)
    ckpt = None
    t0, seen = time.time(), 0
    while step < end:
        set_mode(net, cfg)
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, step)
        x, y = stream.batch(cfg.batch)
        loss = bce_loss(forward(net, x, cfg), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        seen += 1
        if step % 10 == 0:
            log(f"step {step}/{cfg.steps} loss {loss.item():.4f} lr {lr_at(cfg, step):.2e} "
                f"{(time.time() - t0) / seen:.2f} s/step")
        if step % cfg.eval_every == 0 or step == end:
            metrics = evaluate_pairs(net, val, cfg.size, cfg.arch)
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


def export_model_dir(checkpoint, out, name, command="", heldout=None, eval_dir=None):
    """Write a checkpoint's weights as models/<name>/ with its card.

    heldout: (description, items) with items as in cutout_eval.evaluate; its figures go in the card.
    """
    from app.build.torch_cutout import cutout_card, cutter_from_net
    from app.build.torch_weights import write_torch_model_dir
    from app.training import cutout_eval

    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    cfg = ckpt["config"]
    training = {"data": cfg["data"], "steps": ckpt["step"], "config": cfg, "command": command,
                "validation": ckpt.get("metrics")}
    if cfg.get("init"):
        training["initialised_from"] = _init_provenance(cfg["init"])
    pool = Path(cfg["data"], "pool.json")
    if cfg.get("teacher_weight") and pool.is_file():
        training["distilled_from"] = json.loads(pool.read_text(encoding="utf-8"))  # teacher, mix, count
    card = cutout_card(name, cfg["arch"], cfg["size"], training=training)
    if heldout:
        description, items = heldout
        net = nets.build(cfg["arch"], "cutout")
        net.load_state_dict(ckpt["model"])
        card["metrics"] = {**cutout_eval.evaluate(cutter_from_net(net, card), items, eval_dir),
                           "heldout": description}
    write_torch_model_dir(out, card, ckpt["model"])
    # Served through ONNX Runtime: export beside the weights, verified against torch.
    from app.build.cutout_export import export_cutout
    export_cutout(out)
    return card


def export_tuned_dir(checkpoint, out, name, command="", heldout=None, eval_dir=None):
    """Write a fine-tune of isnet-general as a tuned model directory (app/build/isnet_tuned.py:
    only the trained tensors are kept), build its ONNX file, and put held-out figures in its card."""
    from app.build import isnet_tuned
    from app.config import ROOT
    from app.inference.cutout import Cutter
    from app.training import cutout_eval

    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    cfg = ckpt["config"]
    if not cfg.get("train_only"):
        raise ValueError("a tuned IS-Net keeps only the tensors it trained: set train_only")
    training = {"data": cfg["data"], "steps": ckpt["step"], "config": cfg, "command": command,
                "validation": ckpt.get("metrics"),
                "initialised_from": cfg.get("init") or "isnet-general"}
    isnet_tuned.write_tuned(checkpoint, out, name, cfg["train_only"], training=training)
    card = isnet_tuned.build(out, ROOT / "models")
    if heldout:
        description, items = heldout
        metrics = {**cutout_eval.evaluate(Cutter.load(out), items, eval_dir), "heldout": description}
        isnet_tuned.set_metrics(out, metrics)
        card["metrics"] = metrics
    return card


def _init_provenance(path):
    """What a fine-tune started from: the earlier run's recipe when `path` is one of our checkpoints."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError):
        return {"weights": str(path), "note": "no longer readable at export"}
    if "config" not in ckpt:
        return {"weights": str(path)}
    return {"checkpoint": str(path), "steps": ckpt.get("step"), "config": ckpt["config"],
            "validation": ckpt.get("metrics")}
