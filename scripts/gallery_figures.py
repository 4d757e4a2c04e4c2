"""Few-shot figures for the gallery, its calibration, and the embedding model it ships with.

    .venv/bin/python scripts/gallery_figures.py [--out models/demo-embedding] [--episodes 40]

Held-out rule (fixed before any figure was computed):
- Faces come from the Live2D renders in .cache/live2d (six characters: shizuku, haru in two
  outfits, hibiki, koharu, haruto, chitose; `flask demo render`). The demo classifier and the
  ImageNet backbone never saw any of them; the metric-learning projection trains only on the
  Ren'Py demo cast and the amoebax outsiders, never on Live2D.
- Splits by render (the Live2D engine's rule): pose_id % 10 in 0-7 -> enrolment pool, 8 -> val,
  9 -> test_pose; every render of haruto is test_character and is never enrolled, calibrated on
  or chosen on.
- Calibration (the similarity threshold and slope) uses only val queries against galleries
  enrolled from the pool. The figures use only test_pose queries and haruto.
- An episode enrols k pool faces of each of 3 characters drawn from the five non-haruto ones;
  queries are the test_pose faces of all five plus haruto. Faces of the two characters left out
  and of haruto are "not enrolled": the right answer for them is "unknown".
- Choice between raw backbone features and the projection, decided before running: the
  projection ships only if, at k=5 on test_pose, both its top-1 and its balanced accuracy
  (known accepted + unknown rejected, halved) beat the raw features' by at least 0.01.

Writes OUT/card.json (kind "embedding": backbone, calibration, figures), OUT/tradeoff.png (the
known-accepted vs unknown-rejected curve) and, when the projection wins, OUT/weights.pt.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.build.backbones import load_backbone  # noqa: E402
from app.config import CACHE_ROOT  # noqa: E402
from app.demo_data import compose, outsiders, renpy_cast  # noqa: E402
from app.inference.face_crops import crop_face  # noqa: E402
from app.inference.gallery import Embedder, Gallery, normalise  # noqa: E402
from app.inference.identify import Identifier  # noqa: E402
from app.inference.open_set import rank  # noqa: E402
from app.storage.model_dirs import new_card, write_card, write_model_dir  # noqa: E402
from app.training.feature_cache import FeatureCache  # noqa: E402

LIVE2D = CACHE_ROOT / "live2d"
HELD_OUT = "haruto"
KS = (1, 5, 10)
ENROLLED_PER_EPISODE = 3


def split_of(character, pose_id):
    """The Live2D engine's split rule."""
    if character == HELD_OUT:
        return "test_character"
    fold = pose_id % 10
    return "pool" if fold < 8 else "val" if fold == 8 else "test_pose"


def live2d_faces(cache=LIVE2D):
    """[(character, split, face crop)] of every render, each on a background drawn from its own seed."""
    photos = renpy_cast.load_backgrounds()
    names = sorted(photos)
    out = []
    for meta_path in sorted(cache.glob("*/[0-9]*.json")):
        png = meta_path.with_suffix(".png")
        if not png.is_file():
            continue
        meta = json.loads(meta_path.read_text())
        with Image.open(png) as im:
            rgba = np.asarray(im.convert("RGBA"))
        rng = np.random.default_rng([meta["pose_id"], sum(map(ord, meta_path.parent.name))])
        h, w = rgba.shape[:2]
        if rng.random() < 0.6:
            background = compose.photo_crop(rng, photos[names[rng.integers(len(names))]], (w, h))
        else:
            background = compose.synthetic_background(rng, (w, h))
        canvas = Image.fromarray(background).convert("RGBA")
        canvas.alpha_composite(Image.fromarray(rgba))
        crop = crop_face(np.asarray(canvas.convert("RGB")), tuple(meta["face_box"]))
        out.append((meta["character"], split_of(meta["character"], meta["pose_id"]), crop))
    if not out:
        raise SystemExit(f"no Live2D renders in {cache}: run `flask --app wsgi demo render`")
    return out


def projection_training_faces(per_identity=60, seed=0):
    """(crops, identity ids): Ren'Py cast and amoebax outsiders composed on varied backgrounds."""
    figures = renpy_cast.load_sprites() + outsiders.load()
    photos = renpy_cast.load_backgrounds()
    names = sorted(photos)
    identities = sorted({f.character for f in figures})
    rng = np.random.default_rng(seed)
    crops, labels = [], []
    for ident, name in enumerate(identities):
        mine = [f for f in figures if f.character == name]
        made = 0
        while made < per_identity:
            fig = mine[rng.integers(len(mine))]
            size = (384, 288)
            bg = (compose.photo_crop(rng, photos[names[rng.integers(len(names))]], size) if rng.random() < 0.6
                  else compose.synthetic_background(rng, size))
            comp = compose.compose(rng, [fig], bg, size)
            for _, box in comp.faces:
                crops.append(crop_face(comp.image, box))
                labels.append(ident)
                made += 1
    return crops, np.array(labels), identities


def train_projection(x, y, dim=128, epochs=300, seed=0):
    """A linear projection trained with a normalised-softmax (CosFace, margin 0.2, scale 16) loss."""
    torch.manual_seed(seed)
    x = torch.from_numpy(normalise(x))
    y = torch.from_numpy(y).long()
    proj = torch.nn.Sequential(torch.nn.Linear(x.shape[1], dim))  # outputs L2-normalised by the caller
    proxies = torch.nn.Parameter(torch.randn(int(y.max()) + 1, dim))
    opt = torch.optim.Adam(list(proj.parameters()) + [proxies], lr=1e-3, weight_decay=1e-4)
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for start in range(0, len(x), 64):
            idx = order[start:start + 64]
            z = torch.nn.functional.normalize(proj(x[idx]), dim=1)
            cos = z @ torch.nn.functional.normalize(proxies, dim=1).T
            cos = cos - 0.2 * torch.nn.functional.one_hot(y[idx], cos.shape[1])
            loss = torch.nn.functional.cross_entropy(16 * cos, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return proj.eval()


class Raw:
    """Embedder stand-in for the raw features (same calibration fields as Embedder)."""

    def __init__(self, threshold=0.8, slope=20.0):
        self.similarity_threshold, self.slope = threshold, slope


def episodes(chars, pools, n, k, rng):
    """n galleries: (enrolled characters, {character: indices of k pool faces})."""
    out = []
    for _ in range(n):
        enrolled = sorted(rng.choice(chars, ENROLLED_PER_EPISODE, replace=False).tolist())
        out.append((enrolled, {c: rng.choice(pools[c], min(k, len(pools[c])), replace=False) for c in enrolled}))
    return out


def run_episodes(emb, labels, eps, queries, head_probs=None, head_labels=None, head_threshold=None,
                 calib=None):
    """Per query and episode: (truth enrolled?, gallery argmax right?, best similarity, full-system answer)."""
    rows = []
    for enrolled, picks in eps:
        names = [c for c in enrolled for _ in picks[c]]
        vectors = np.concatenate([emb[picks[c]] for c in enrolled])
        gal = Gallery(calib or Raw(), names, vectors)
        sims = gal.similarities(emb[queries])
        best = sims.argmax(1)
        full = None
        if head_probs is not None:
            # The service's one decision (app/inference/open_set.py): head and gallery on one scale.
            full = [rank([(lab, q, "head") for lab, q in zip(head_labels, hp)]
                         + [(name, q, "gallery") for name, q in gp.items()], head_threshold)
                    for hp, gp in zip(head_probs[queries].tolist(), gal.probabilities(emb[queries]))]
        for j, q in enumerate(queries):
            truth = labels[q]
            answer = None if full is None else (None if full[j]["unknown"] else full[j]["predictions"][0]["label"])
            rows.append((truth in enrolled, gal.names[best[j]] == truth, float(sims[j, best[j]]), answer, truth))
    return rows


def summarise(rows, threshold):
    """top-1 (closed set), known accepted (right and above threshold), unknown rejected, balanced accuracy."""
    known = [r for r in rows if r[0]]
    unknown = [r for r in rows if not r[0]]
    top1 = np.mean([r[1] for r in known])
    accepted = np.mean([r[1] and r[2] >= threshold for r in known])
    rejected = np.mean([r[2] < threshold for r in unknown])
    return {"top1": round(float(top1), 4), "known_accepted": round(float(accepted), 4),
            "unknown_rejected": round(float(rejected), 4),
            "balanced": round(float((accepted + rejected) / 2), 4),
            "known_queries": len(known), "unknown_queries": len(unknown)}


def full_system(rows):
    """With the demo head: enrolled faces named right (and not unknown), others answered unknown."""
    known = [r for r in rows if r[0]]
    unknown = [r for r in rows if not r[0]]
    return {"known_named_right": round(float(np.mean([r[3] == r[4] for r in known])), 4),
            "not_enrolled_answered_unknown": round(float(np.mean([r[3] is None for r in unknown])), 4),
            "not_enrolled_named_as_a_head_label": round(float(np.mean([r[3] is not None and r[3] in
                                                                       ("eileen", "lucy", "sylvie")
                                                                       for r in unknown])), 4)}


def calibrate(rows):
    """(threshold maximising balanced accuracy on val, logistic slope of 'right match' on similarity)."""
    sims = np.array([r[2] for r in rows])
    good = np.array([r[0] and r[1] for r in rows], bool)
    bad = np.array([not r[0] for r in rows], bool)
    candidates = np.unique(np.round(sims, 4))
    best_t, best_score = 0.5, -1.0
    for t in candidates:
        score = ((sims[good] >= t).mean() + (sims[bad] < t).mean()) / 2
        if score > best_score:
            best_t, best_score = float(t), score
    # 1-D logistic fit of P(right match | similarity), centred on the threshold: only the slope is learnt.
    keep = good | bad
    s = torch.tensor(sims[keep] - best_t, dtype=torch.float32)
    y = torch.tensor(good[keep], dtype=torch.float32)
    slope = torch.tensor(10.0, requires_grad=True)
    opt = torch.optim.LBFGS([slope], max_iter=100)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(slope * s, y)
        loss.backward()
        return loss
    opt.step(closure)
    return best_t, float(slope.detach().clamp(1.0, 200.0))


def curve(rows):
    """(unknown rejected, known accepted, threshold) over a sweep of thresholds."""
    sims = np.array([r[2] for r in rows])
    good = np.array([r[0] and r[1] for r in rows], bool)
    known = np.array([r[0] for r in rows], bool)
    points = []
    for t in np.linspace(sims.min() - 1e-3, sims.max() + 1e-3, 101):
        points.append((float((sims[~known] < t).mean()), float((good & (sims >= t))[known].mean()), float(t)))
    return points


def draw_tradeoff(curves, marks, path, title):
    """The trade-off PNG: x = unknown faces rejected, y = known faces accepted (named right)."""
    W, H, pad = 640, 520, 60
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)

    def px(x, y):
        return pad + x * (W - 2 * pad), H - pad - y * (H - 2 * pad)
    d.rectangle([px(0, 1), px(1, 0)], outline="black")
    for v in np.linspace(0, 1, 6):
        d.line([px(v, 0), px(v, -0.015)], fill="black")
        d.text((px(v, 0)[0] - 10, H - pad + 8), f"{v:.1f}", fill="black")
        d.line([px(0, v), px(-0.015, v)], fill="black")
        d.text((pad - 34, px(0, v)[1] - 6), f"{v:.1f}", fill="black")
    colours = ["#1b6f69", "#ff9f1c", "#6a3d9a", "#b00020"]
    for i, (name, points) in enumerate(curves.items()):
        d.line([px(x, y) for x, y, _ in points], fill=colours[i % 4], width=3)
        d.text((pad + 10, pad + 10 + 16 * i), name, fill=colours[i % 4])
    for name, (x, y) in marks.items():
        cx, cy = px(x, y)
        d.ellipse([cx - 6, cy - 6, cx + 6, cy + 6], outline="black", width=2)
        d.text((cx + 8, cy + 4), name, fill="black")
    d.text((pad, 18), title, fill="black")
    d.text((W / 2 - 110, H - 24), "faces of characters not enrolled: rejected", fill="black")
    d.text((6, pad - 24), "enrolled faces accepted and named right", fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "models" / "demo-embedding")
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    backbone = load_backbone("efficientnet_lite0")
    cache = FeatureCache(backbone)
    faces = live2d_faces()
    labels = np.array([c for c, _, _ in faces])
    splits = np.array([s for _, s, _ in faces])
    print(f"{len(faces)} Live2D faces: " + ", ".join(f"{s} {int((splits == s).sum())}" for s in np.unique(splits)),
          flush=True)
    feats = cache.features([im for _, _, im in faces])
    head = Identifier.load(ROOT / "models" / "demo-classifier")
    head_probs = head.probabilities([], feats)  # the head's calibrated probability of each label

    print("projection: training on the Ren'Py cast and amoebax outsiders", flush=True)
    crops, ids, identities = projection_training_faces(seed=args.seed)
    proj = train_projection(cache.features(crops), ids, seed=args.seed)
    with torch.no_grad():
        projected = normalise(proj(torch.from_numpy(normalise(feats))).numpy())
    embeddings = {"raw": normalise(feats), "projection": projected}

    chars = sorted(c for c in set(labels) if c != HELD_OUT)
    pools = {c: np.where((labels == c) & (splits == "pool"))[0] for c in chars}
    val_q = np.where(splits == "val")[0]
    test_q = np.where((splits == "test_pose") | (splits == "test_character"))[0]
    rng = np.random.default_rng(args.seed)
    results, calibrations, test_rows = {}, {}, {}
    for name, emb in embeddings.items():
        val_rows = run_episodes(emb, labels, episodes(chars, pools, args.episodes, 5, rng), val_q)
        threshold, slope = calibrate(val_rows)
        calibrations[name] = {"similarity_threshold": round(threshold, 4), "slope": round(slope, 3)}
        calib = Raw(threshold, slope)
        results[name] = {}
        for k in KS:
            eps = episodes(chars, pools, args.episodes, k, np.random.default_rng([args.seed, k]))
            rows = run_episodes(emb, labels, eps, test_q, head_probs, head.labels, head.threshold, calib)
            results[name][f"k{k}"] = {**summarise(rows, threshold), "with_demo_head": full_system(rows)}
            if k == 5:
                test_rows[name] = rows
        print(name, json.dumps(calibrations[name]), json.dumps(results[name], indent=1), flush=True)

    raw5, proj5 = results["raw"]["k5"], results["projection"]["k5"]
    use_projection = (proj5["top1"] >= raw5["top1"] + 0.01 and proj5["balanced"] >= raw5["balanced"] + 0.01)
    chosen = "projection" if use_projection else "raw"
    print(f"chosen: {chosen}", flush=True)

    out = args.out
    curves = {n: curve(test_rows[n]) for n in embeddings}
    card = new_card(
        "embedding", out.name,
        backbone=backbone.name, backbone_sha256=backbone.weights_sha256,
        embedding=chosen, weights=None,
        similarity="cosine to the nearest enrolled face of each character",
        calibration={**calibrations[chosen],
                        "rule": "threshold maximising (known accepted + unknown rejected) / 2 on Live2D val "
                                "poses; slope: logistic fit of P(right match | similarity) on the same"},
        metrics={"held_out_rule": __doc__.split("Held-out rule (fixed before any figure was computed):")[1]
                    .split("Writes OUT")[0].strip(),
                    "episodes_per_k": args.episodes, "enrolled_characters_per_episode": ENROLLED_PER_EPISODE,
                    "queries": {"val": int(len(val_q)), "test": int(len(test_q))},
                    "raw": results["raw"], "projection": results["projection"],
                    "calibrations": calibrations,
                    "projection_training": {"identities": identities, "faces": int(len(ids)),
                                            "loss": "CosFace (normalised softmax, margin 0.2, scale 16)",
                                            "dim": 128, "epochs": 300},
                    "tradeoff_png": "tradeoff.png",
                    "tradeoff_k5": {n: [[round(x, 4), round(y, 4), round(t, 4)] for x, y, t in curves[n][::5]]
                                    for n in embeddings}},
        command="python scripts/gallery_figures.py " + " ".join(sys.argv[1:]),
    )
    if use_projection:
        card["projection"] = {"dim": 128, "input": "L2-normalised backbone features"}
        write_model_dir(out, card, {k: v.detach().numpy() for k, v in proj.state_dict().items()},
                        weights_name="weights.npz")
    else:
        out.mkdir(parents=True, exist_ok=True)
        write_card(out, card)
    marks = {f"{n} calibrated": (results[n]["k5"]["unknown_rejected"], results[n]["k5"]["known_accepted"])
             for n in embeddings}
    draw_tradeoff({f"{n} features (k=5, test)": c for n, c in curves.items()}, marks, out / "tradeoff.png",
                  "Gallery on Live2D characters never trained on: k=5 faces enrolled")
    Embedder.load(out)  # what serving will read
    print(f"wrote {out}", flush=True)


if __name__ == "__main__":
    main()
