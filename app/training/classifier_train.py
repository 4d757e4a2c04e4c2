"""Train a linear softmax head on cached backbone features of labelled face crops.

Data: `DATA/<label>/*` (a validation share is split off per label), or `DATA/train/<label>/*`
plus `DATA/val/<label>/*` (and `DATA/test/...`, which training never reads). A folder named
`_unknown` holds faces of characters outside the set: in train they teach the head to spread
its probability over the labels (outlier exposure, Hendrycks et al. 2019), in val they show
how well the calibrated unknown threshold rejects outsiders. Other `_`-folders are ignored.
"""
import io
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter

from app.inference import crop_views
from app.training import open_set_fit
from app.training.face_dataset import UNKNOWN_LABEL, kind_of, load_folder
from app.training.feature_cache import FeatureCache, image_key

HEAD_FILE = "weights.npz"  # numpy: serving reads heads without torch


@dataclass
class TrainConfig:
    backbone: str = "efficientnet_lite0"
    augment: int = 4  # augmented copies per training crop (each cached under its own pixels' key)
    val_fraction: float = 0.2  # used only when DATA has no val/ folder
    epochs: int = 300  # upper bound; early stopping usually ends far sooner
    patience: int = 25  # epochs without a better validation loss before stopping
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-3
    outlier_weight: float = 0.5  # weight of the push-to-uniform loss on `_unknown` crops
    max_false_unknown: float = 0.02  # share of val faces named right the threshold may reject (val without outsiders)
    seed: int = 0
    cache_root: str | None = None  # feature cache folder (None: .cache/features)
    crop_views: str = "box"  # views of each crop whose features are averaged (app/inference/crop_views.py)
    recolour: int = 0  # 1: one more copy of every training crop with its outfit's hue turned (recolour())

    def views(self):
        """crop_views as the card's tuple (ValueError for a name serving lacks)."""
        return crop_views.views_of({"crop_views": [v.strip() for v in self.crop_views.split(",") if v.strip()]})


# --- data -------------------------------------------------------------------------------------

def split_data(data_dir, val_fraction=0.2, seed=0):
    """(train items, val items) from DATA/train + DATA/val, or a stratified split of DATA/<label>."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{data_dir} is not a folder")
    if (data_dir / "train").is_dir():
        train = load_folder(data_dir / "train")
        if (data_dir / "val").is_dir():
            return train, load_folder(data_dir / "val")
        items = train
    else:
        items = load_folder(data_dir)
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in sorted({lab for _, lab in items}):
        mine = [it for it in items if it[1] == label]
        order = rng.permutation(len(mine))
        n_val = max(1, round(len(mine) * val_fraction)) if len(mine) > 1 else 0
        val += [mine[i] for i in order[:n_val]]
        train += [mine[i] for i in order[n_val:]]
    return train, val


# --- augmentation that keeps colours -----------------------------------------------------------

def augment(image, rng):
    """A geometric / blur / JPEG variant of a face crop; hue, saturation and brightness are never touched."""
    w, h = image.size
    if rng.random() < 0.5:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
    angle = rng.uniform(-10, 10)
    # Fill the rotated corners with the crop's mean colour rather than black.
    fill = tuple(int(v) for v in np.asarray(image).reshape(-1, 3).mean(0))
    image = image.rotate(angle, resample=Image.BICUBIC, fillcolor=fill)
    # Crop jitter and scale: a window of 80-100% of the side, shifted up to 8%.
    side = rng.uniform(0.8, 1.0)
    cw, ch = w * side, h * side
    cx = w / 2 + rng.uniform(-0.08, 0.08) * w
    cy = h / 2 + rng.uniform(-0.08, 0.08) * h
    x0 = min(max(0.0, cx - cw / 2), w - cw)
    y0 = min(max(0.0, cy - ch / 2), h - ch)
    image = image.crop((round(x0), round(y0), round(x0 + cw), round(y0 + ch)))
    if rng.random() < 0.3:  # small faces in the wild: lose resolution, then scale back up
        f = rng.uniform(0.3, 0.7)
        small = image.resize((max(8, round(image.width * f)), max(8, round(image.height * f))), Image.BILINEAR)
        image = small.resize(image.size, Image.BILINEAR)
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5)))
    if rng.random() < 0.3:
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=int(rng.integers(25, 86)))
        buf.seek(0)
        image = Image.open(buf).convert("RGB")
    return image


def augmented(items, copies, seed=0):
    """`copies` variants of each (image, label), each from a seed tied to the image, so reruns hit the cache."""
    out = []
    for image, label in items:
        base = int(image_key(image)[:12], 16)
        for k in range(copies):
            rng = np.random.default_rng([seed, base, k])
            out.append((augment(image, rng), label))
    return out


# --- outfits in colours never seen --------------------------------------------------------------

OUTFIT_ROWS = 0.3  # the lower share of a face crop, where clothes show under a face


def recolour(image, rng):
    """The crop with the hue of its lower OUTFIT_ROWS turned by 60-300 degrees (faded in over a few
    rows): hair, eyes and skin keep their colours, an outfit gets one never seen, so that a character
    in a new outfit is still the character (README, "Several views of one box")."""
    hsv = np.asarray(image.convert("HSV")).astype(np.int32)
    h = hsv.shape[0]
    start = int(h * (1 - OUTFIT_ROWS))
    shift = int(rng.uniform(60, 300) / 360 * 256)
    ramp = np.clip((np.arange(h) - start) / max(1, h * 0.05), 0, 1)[:, None]
    hsv[..., 0] = (hsv[..., 0] + np.round(ramp * shift).astype(np.int32)) % 256
    out = Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB")
    out.info.update(image.info)  # keeps the crop kind
    return out


def recoloured(items, seed=0):
    """One recoloured copy of each (image, label), from a seed tied to the image (reruns hit the cache)."""
    out = []
    for image, label in items:
        rng = np.random.default_rng([seed, int(image_key(image)[:12], 16), 101])
        out.append((recolour(image, rng), label))
    return out


# --- the head ----------------------------------------------------------------------------------

def _uniform_loss(logits):
    # Cross-entropy against the uniform distribution: low when no label stands out.
    return -torch.log_softmax(logits, dim=1).mean(dim=1).mean()


def fit_head(x_train, y_train, x_val, y_val, num_labels, config, x_out=None, on_epoch=None):
    """Train nn.Linear on standardised features with class-balanced cross-entropy; returns (head, history).

    The returned head works on raw features: the standardisation is folded into its weights.
    """
    torch.manual_seed(config.seed)
    x_train_t = torch.from_numpy(x_train)
    mean = x_train_t.mean(0)
    # One scale for all features: per-feature scaling blows up near-constant features when
    # there are only a handful of training crops.
    std = (x_train_t - mean).pow(2).mean().sqrt().clamp(min=1e-6).expand_as(mean)

    def norm(x):
        return (torch.from_numpy(x) - mean) / std

    xt, yt = norm(x_train), torch.from_numpy(y_train).long()
    xv, yv = norm(x_val), torch.from_numpy(y_val).long()
    xo = norm(x_out) if x_out is not None and len(x_out) else None
    counts = torch.bincount(yt, minlength=num_labels).float().clamp(min=1)
    class_weight = counts.sum() / (num_labels * counts)  # balanced: each label counts equally
    head = torch.nn.Linear(x_train.shape[1], num_labels)
    opt = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss(weight=class_weight)
    gen = torch.Generator().manual_seed(config.seed)
    best = (math.inf, None, 0)
    history = []
    for epoch in range(1, config.epochs + 1):
        head.train()
        order = torch.randperm(len(xt), generator=gen)
        total, seen = 0.0, 0
        for start in range(0, len(order), config.batch_size):
            idx = order[start:start + config.batch_size]
            loss = loss_fn(head(xt[idx]), yt[idx])
            if xo is not None and config.outlier_weight > 0:
                pick = torch.randint(len(xo), (min(len(idx), len(xo)),), generator=gen)
                loss = loss + config.outlier_weight * _uniform_loss(head(xo[pick]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            seen += len(idx)
        head.eval()
        with torch.no_grad():
            logits = head(xv)
            val_loss = float(torch.nn.functional.cross_entropy(logits, yv)) if len(yv) else total / seen
            val_acc = float((logits.argmax(1) == yv).float().mean()) if len(yv) else float("nan")
        history.append({"epoch": epoch, "train_loss": round(total / seen, 5),
                        "val_loss": round(val_loss, 5), "val_top1": round(val_acc, 5)})
        if on_epoch:
            on_epoch(history[-1])
        if val_loss < best[0] - 1e-5:
            best = (val_loss, {k: v.clone() for k, v in head.state_dict().items()}, epoch)
        elif epoch - best[2] >= config.patience:
            break
    head.load_state_dict(best[1])
    # Fold (x - mean) / std into the layer so serving feeds raw backbone features.
    with torch.no_grad():
        w = head.weight / std
        b = head.bias - w @ mean
    raw = torch.nn.Linear(x_train.shape[1], num_labels)
    with torch.no_grad():
        raw.weight.copy_(w)
        raw.bias.copy_(b)
    return raw.eval(), history, best[2]


# --- whole runs --------------------------------------------------------------------------------

@dataclass
class Prepared:
    labels: list
    x_train: np.ndarray
    y_train: np.ndarray
    x_out: np.ndarray  # training outsiders
    x_val: np.ndarray
    y_val: np.ndarray
    x_val_out: np.ndarray
    counts: dict
    val_kinds: list = None  # crop kind of each val cast face (x_val order)
    val_out_kinds: list = None  # and of each val outsider (x_val_out order)


def prepare_features(backbone, train, val, labels, config, cache_root=None, progress=None):
    """Cached features of the train crops (with their augmented copies) and val crops."""
    cache = FeatureCache(backbone, cache_root) if cache_root else FeatureCache(backbone)
    train_all = train + augmented(train, config.augment, config.seed)
    if config.recolour:
        train_all += recoloured(train, config.seed)
    index = {lab: i for i, lab in enumerate(labels)}

    def feats(items):
        if not items:
            return np.zeros((0, backbone.feature_dim), np.float32)
        # The same mean over crop views as serving (Identifier.head_features).
        return crop_views.averaged_features([im for im, _ in items], config.views(),
                                            lambda ims: cache.features(ims, progress=progress))

    cast_tr = [it for it in train_all if it[1] != UNKNOWN_LABEL]
    out_tr = [it for it in train_all if it[1] == UNKNOWN_LABEL]
    cast_va = [it for it in val if it[1] != UNKNOWN_LABEL]
    out_va = [it for it in val if it[1] == UNKNOWN_LABEL]
    counts = {"train_crops": len(train), "train_with_augmented": len(train_all),
              "val_crops": len(val), "train_unknown": len([1 for it in train if it[1] == UNKNOWN_LABEL]),
              "val_unknown": len(out_va), "cache_hits": 0, "cache_misses": 0}
    prepared = Prepared(labels, feats(cast_tr), np.array([index[lab] for _, lab in cast_tr], np.int64),
                        feats(out_tr), feats(cast_va),
                        np.array([index.get(lab, -1) for _, lab in cast_va], np.int64), feats(out_va), counts)
    counts["cache_hits"], counts["cache_misses"] = cache.hits, cache.misses
    prepared.val_kinds = [kind_of(im) for im, _ in cast_va]
    prepared.val_out_kinds = [kind_of(im) for im, _ in out_va]
    return prepared


def head_logits(head, x):
    """Raw-feature logits of a torch head (numpy)."""
    with torch.no_grad():
        return head(torch.from_numpy(x)).double().numpy()


def train_prepared(prep, config, on_epoch=None):
    """Fit the head and its open-set decision on validation (app/training/open_set_fit.py);
    returns (head, calibration, info)."""
    head, history, best_epoch = fit_head(prep.x_train, prep.y_train, prep.x_val, prep.y_val,
                                         len(prep.labels), config, prep.x_out, on_epoch)
    x_val = np.concatenate([prep.x_val, prep.x_val_out])
    y_val = np.concatenate([prep.y_val, np.full(len(prep.x_val_out), -1, np.int64)])
    kinds = list(prep.val_kinds or ["known"] * len(prep.x_val)) + \
        list(prep.val_out_kinds or ["known"] * len(prep.x_val_out))
    calibration, report = open_set_fit.calibrate(head_logits(head, x_val), x_val, y_val, kinds,
                                                  prep.x_train, prep.y_train, len(prep.labels), config.seed,
                                                  config.max_false_unknown)
    best, pred = open_set_fit.best_answers(calibration, head_logits(head, prep.x_val), prep.x_val)
    info = {"history": history, "best_epoch": best_epoch,
            "val_top1": float((pred == prep.y_val).mean()) if len(pred) else None,
            "val_false_unknown": float((best < calibration.threshold).mean()) if len(pred) else None,
            "open_set": report}
    if len(prep.x_val_out):
        out_best, _ = open_set_fit.best_answers(calibration, head_logits(head, prep.x_val_out), prep.x_val_out)
        info["val_unknown_rejection"] = float((out_best < calibration.threshold).mean())
    return head, calibration, info


def head_state(head, calibration):
    """The weights file's arrays (numpy: serving reads them without torch): the linear head, plus
    the reference centres when the decision uses them."""
    state = {k: v.detach().numpy().copy() for k, v in head.state_dict().items()}
    if len(calibration.references) and calibration.method == "nearest":
        state["references"] = calibration.references.astype(np.float16)
        state["reference_labels"] = np.asarray(calibration.reference_labels)
    return state


def config_dict(config):
    """The config as a JSON-able dict."""
    return asdict(config)


def leave_one_out(prep, test_x, test_y, config):
    """Leave-one-character-out rejection: per label, train on the others, calibrate, and count how
    many of the left-out label's test faces are flagged unknown (no `_unknown` test faces used)."""
    results = {}
    for held, name in enumerate(prep.labels):
        keep = [i for i in range(len(prep.labels)) if i != held]
        remap = np.full(len(prep.labels), -1, np.int64)
        remap[keep] = np.arange(len(keep))
        tr, va = prep.y_train != held, prep.y_val != held
        # The left-out character's training crops are not shown as outsiders either.
        sub = Prepared([prep.labels[i] for i in keep], prep.x_train[tr], remap[prep.y_train[tr]],
                       prep.x_out, prep.x_val[va], remap[prep.y_val[va]], prep.x_val_out, {},
                       [k for k, v in zip(prep.val_kinds or [], va) if v] or None, prep.val_out_kinds)
        head, calibration, _ = train_prepared(sub, config)
        threshold = calibration.threshold
        mine, rest = test_x[test_y == held], test_x[(test_y != held) & (test_y >= 0)]
        scores, _ = open_set_fit.best_answers(calibration, head_logits(head, mine), mine)
        others, _ = open_set_fit.best_answers(calibration, head_logits(head, rest), rest)
        results[name] = {"left_out_flagged_unknown": round(float((scores < threshold).mean()), 4),
                         "others_false_unknown": round(float((others < threshold).mean()), 4),
                         "threshold": round(threshold, 4), "faces": int(len(scores))}
    return results


class _SilentBar:
    def __init__(self, *args):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n):
        pass


def _silent_bar(length, label):
    return _SilentBar()


def train_model_dir(data_dir, out_dir, config, name=None, command=None, loco=False,
                    progress_factory=None, log=print, extra=None):
    """Train a head on DATA, write models/<name>/ with its card; figures from DATA/test when it exists.

    extra: {"train": [(image, label)], "val": [...]} added to DATA's splits (gallery faces).
    """
    from app.build.backbones import load_backbone
    from app.inference.identify import classifier_card
    from app.storage.model_dirs import write_model_dir
    from app.training import classifier_eval

    torch.manual_seed(config.seed)
    progress_factory = progress_factory or _silent_bar
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    train, val = split_data(data_dir, config.val_fraction, config.seed)
    train, val = train + list((extra or {}).get("train", ())), val + list((extra or {}).get("val", ()))
    labels = sorted({lab for _, lab in train if lab != UNKNOWN_LABEL})
    if len(labels) < 2:
        raise ValueError(f"{data_dir} needs face folders of at least two labels, found {labels or 'none'}")
    missing = sorted({lab for _, lab in val if lab != UNKNOWN_LABEL} - set(labels))
    if missing:
        raise ValueError(f"validation labels {missing} have no training faces")
    backbone = load_backbone(config.backbone)
    views = config.views()
    n_feats = (len(train) * (1 + config.augment) + len(val)) * len(views)
    log(f"{len(train)} training crops (+{len(train) * config.augment} augmented), "
        f"{len(val)} validation crops, labels: {', '.join(labels)}")
    with progress_factory(n_feats, "features") as bar:
        prep = prepare_features(backbone, train, val, labels, config, config.cache_root, bar.update)
    log(f"feature cache: {prep.counts['cache_hits']} hits, {prep.counts['cache_misses']} computed")
    with progress_factory(config.epochs, "epochs") as bar:
        head, calibration, info = train_prepared(prep, config, on_epoch=lambda _: bar.update(1))
    threshold = calibration.threshold
    log(f"stopped after {len(info['history'])} epochs (best {info['best_epoch']}); "
        f"validation top-1 {info['val_top1']:.4f}; open-set decision {calibration.method}, "
        f"operating point {threshold:.4f}")
    training = {"data": str(data_dir), "command": command, "config": config_dict(config),
                **prep.counts, "best_epoch": info["best_epoch"], "history": info["history"],
                "validation": {k: info.get(k) for k in ("val_top1", "val_false_unknown",
                                                        "val_unknown_rejection")},
                "open_set_candidates": info["open_set"],
                "unknown_threshold_rule": open_set_fit.__doc__.split("\n\n", 1)[1].strip()}
    described = data_dir / "dataset.json"  # written by `flask dataset demo-faces`
    if described.is_file():
        training["dataset"] = json.loads(described.read_text())
    # An older card has no crop_views: one view, the box.
    extra_card = {"crop_views": list(views)} if views != crop_views.SINGLE else {}
    card = classifier_card(name or out_dir.name, backbone, labels, threshold, training=training,
                           open_set=calibration.to_card(), **extra_card)
    state = head_state(head, calibration)
    write_model_dir(out_dir, card, state, weights_name=HEAD_FILE)
    test_dir = data_dir / "test"
    if test_dir.is_dir():
        items = load_folder(test_dir)
        with progress_factory(len(items), "held-out test") as bar:
            from app.inference.identify import Identifier
            metrics = classifier_eval.evaluate_items(Identifier.load(out_dir), items, bar.update)
        metrics.pop("confusion")
        card["metrics"] = {"split": str(test_dir), **metrics}
        if "dataset" in training:
            # Say exactly who the faces "outside the cast" were.
            unknown = training["dataset"].get("unknown", {})
            card["metrics"]["outside_cast_faces"] = {
                "source": unknown.get("source"),
                "characters": unknown.get("characters", {}).get("test"),
                "never_seen_in_training_or_calibration": True}
        if loco:
            cache = FeatureCache(backbone, config.cache_root) if config.cache_root else FeatureCache(backbone)
            cast = [(im, lab) for im, lab in items if lab in labels]
            test_x = crop_views.averaged_features([im for im, _ in cast], config.views(), cache.features)
            test_y = np.array([labels.index(lab) for _, lab in cast], np.int64)
            card["metrics"]["leave_one_character_out"] = leave_one_out(prep, test_x, test_y, config)
        write_model_dir(out_dir, card, state, weights_name=HEAD_FILE)
        if "per_kind" in metrics:
            classifier_eval.draw_tradeoff(metrics["per_kind"], threshold, out_dir / "tradeoff-test.png",
                                          "held-out test split, per crop kind")
    val_curve = info["open_set"][calibration.method]
    classifier_eval.draw_tradeoff(val_tradeoff_by_kind(val_curve), threshold, out_dir / "tradeoff-val.png",
                                  f"val split ({calibration.method}), per crop kind")
    return card


def val_tradeoff_by_kind(report):
    """An open-set candidate's val figures (open_set_fit.calibrate) in classifier_eval.kind_figures' shape."""
    out = {}
    for kind, at_point in report["val"].items():
        curve = [[row["threshold"], row[kind]["known_named_and_accepted"], row[kind]["unknown_rejected"]]
                 for row in report["val_tradeoff"]]
        out[kind] = {"tradeoff": curve, "top1_accepted": at_point["known_named_and_accepted"],
                     "unknown_rejection_rate": at_point["unknown_rejected"],
                     "cast_faces": at_point["known"], "outside_faces": at_point["unknown"]}
    return out
