"""Cutout quality measures: IoU, MAE and max F-beta (beta^2 = 0.3, as in the U^2-Net paper)."""
import numpy as np

from app.inference.cutout import postprocess

BETA2 = 0.3


def iou(pred, truth, threshold=0.5):
    """Intersection over union of pred >= threshold and truth >= 0.5 (arrays in [0, 1]); 1.0 if both empty."""
    p, t = pred >= threshold, truth >= 0.5
    union = np.logical_or(p, t).sum()
    return 1.0 if union == 0 else float(np.logical_and(p, t).sum() / union)


def mae(pred, truth):
    """Mean absolute error between maps in [0, 1]."""
    return float(np.abs(pred.astype(np.float64) - truth.astype(np.float64)).mean())


def max_fbeta(pred, truth, thresholds=255):
    """Largest F-beta over `thresholds` evenly spaced thresholds in (0, 1]."""
    t = truth >= 0.5
    positives = t.sum()
    best = 0.0
    for th in np.linspace(1.0 / thresholds, 1.0, thresholds):
        p = pred >= th
        tp = np.logical_and(p, t).sum()
        if tp == 0:
            continue
        precision, recall = tp / p.sum(), tp / positives
        best = max(best, (1 + BETA2) * precision * recall / (BETA2 * precision + recall))
    return float(best)


def scores(prob, truth, thresholds=255):
    """The measures of one picture: IoU and max F-beta of the network's map, MAE of the alpha the
    service returns by default (what users get) and of the raw map."""
    served = postprocess(prob) / 255.0
    return {"iou": iou(prob, truth), "mae": mae(served, truth), "mae_raw": mae(prob, truth),
            "max_fbeta": max_fbeta(prob, truth, thresholds)}
