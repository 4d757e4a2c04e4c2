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
    """Largest F-beta over `thresholds` evenly spaced thresholds in (0, 1].

    Counts above every threshold come from one sort (not one pass per threshold): the same
    figures, fast enough for full-size pictures."""
    t = (truth >= 0.5).ravel()
    positives = int(t.sum())
    if positives == 0:
        return 0.0
    ths = np.linspace(1.0 / thresholds, 1.0, thresholds)
    values = np.sort(pred.ravel().astype(np.float64))
    hits = np.sort(pred.ravel()[t].astype(np.float64))
    predicted = len(values) - np.searchsorted(values, ths, side="left")  # pred >= th
    tp = len(hits) - np.searchsorted(hits, ths, side="left")
    ok = tp > 0
    if not ok.any():
        return 0.0
    precision, recall = tp[ok] / predicted[ok], tp[ok] / positives
    return float(np.max((1 + BETA2) * precision * recall / (BETA2 * precision + recall)))


def scores(prob, truth, thresholds=255):
    """The measures of one picture: IoU and max F-beta of the network's map, MAE of the alpha the
    service returns by default (what users get) and of the raw map."""
    served = postprocess(prob) / 255.0
    return {"iou": iou(prob, truth), "mae": mae(served, truth), "mae_raw": mae(prob, truth),
            "max_fbeta": max_fbeta(prob, truth, thresholds)}
