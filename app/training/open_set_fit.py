"""Fitting the open-set decision of app/inference/open_set.py on validation crops of every kind.

The rule (README, "Crops as the product makes them"), fixed before any test figure:
- temperature T: the one minimising the negative log-likelihood of val cast faces;
- two candidates for q: "temperature" (softmax of logits / T) and "nearest" (a logistic fit on
  val of [log-odds of that softmax, cosine similarity to the name's nearest training centre]);
- operating point: the threshold maximising the worst, over crop kinds, of the lower of (known
  faces named right and accepted, outsiders and boxes on no face answered unknown), a rate counted
  only where its kind has at least MIN_FACES val crops of that side (the cascade finds few boxes on
  no face); ties: the higher mean of those rates, then the lowest threshold;
- the candidate with the higher such val score ships (ties: "temperature", the simpler);
- a val split without outsiders or boxes on no face (an operator's own data) cannot weigh the two
  sides: the threshold is then the highest that turns away at most `max_false_unknown` of the val
  faces named right.
"""
import numpy as np
import torch

from app.inference.open_set import HeadCalibration, logodds, nearest_similarity, shared_scale, softmax, unit

CENTRES_PER_LABEL = 32
MIN_FACES = 30  # a kind's rate joins the operating-point rule only with this many val crops behind it


def fit_temperature(logits, y):
    """The temperature minimising val NLL of the true labels (a log-spaced grid, 0.05-20)."""
    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 241))
    rows = np.arange(len(y))
    nll = [-np.log(np.maximum(softmax(logits, t)[rows, y], 1e-12)).mean() for t in grid]
    return float(grid[int(np.argmin(nll))])


def reference_centres(features, labels, num_labels, k=CENTRES_PER_LABEL, seed=0, iters=20):
    """(centres, their labels): k-means (cosine) of each label's unit features, at most k a label."""
    rng = np.random.default_rng(seed)
    centres, owners = [], []
    x_all = unit(features)
    for label in range(num_labels):
        x = x_all[labels == label]
        if not len(x):
            continue
        c = x[rng.choice(len(x), min(k, len(x)), replace=False)]
        for _ in range(iters):
            assign = (x @ c.T).argmax(axis=1)
            c = unit(np.stack([x[assign == j].mean(0) if (assign == j).any() else c[j] for j in range(len(c))]))
        centres.append(c)
        owners += [label] * len(c)
    return np.concatenate(centres), np.array(owners, np.int64)


def fit_logistic(x, y, l2=1e-3, weights=None):
    """Weights (w..., bias) of P(y=1 | x) = sigmoid(x . w + bias), by L-BFGS on the (weighted) mean log-loss."""
    xt = torch.tensor(x, dtype=torch.float64)
    yt = torch.tensor(y, dtype=torch.float64)
    wt = torch.ones_like(yt) if weights is None else torch.tensor(weights, dtype=torch.float64)
    w = torch.zeros(x.shape[1] + 1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        z = xt @ w[:-1] + w[-1]
        loss = ((torch.nn.functional.binary_cross_entropy_with_logits(z, yt, reduction="none") * wt).sum() / wt.sum()
                + l2 * (w[:-1] ** 2).sum())
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy()


def best_answers(calibration, logits, features):
    """(best P on the shared scale, its label index) per face, head alone."""
    p = shared_scale(calibration.label_probabilities(logits, features))
    return p.max(axis=1), p.argmax(axis=1)


def rates(best, pred, y, kinds, threshold):
    """Per crop kind: known faces named right and accepted, and unknown faces answered unknown."""
    out = {}
    for kind in sorted(set(kinds)):
        mine = np.asarray(kinds) == kind
        known, unknown = mine & (y >= 0), mine & (y < 0)
        accepted = (pred == y) & (best >= threshold)
        out[kind] = {
            "known_named_and_accepted": float(accepted[known].mean()) if known.any() else None,
            "unknown_rejected": float((best < threshold)[unknown].mean()) if unknown.any() else None,
            "known": int(known.sum()), "unknown": int(unknown.sum())}
    return out


def counted_rates(table, min_faces=MIN_FACES):
    """The rates the operating-point rule weighs: each kind's two, where enough val crops stand behind it
    (all of them when no kind has enough)."""
    pairs = [(kind["known_named_and_accepted"], kind["known"]) for kind in table.values()]
    pairs += [(kind["unknown_rejected"], kind["unknown"]) for kind in table.values()]
    counted = [v for v, n in pairs if v is not None and n >= min_faces]
    return counted or [v for v, _ in pairs if v is not None]


def worst_rate(table):
    """The lowest counted known-accepted or unknown-rejected rate over every crop kind."""
    return min(counted_rates(table))


def choose_threshold(best, pred, y, kinds, max_false_unknown=0.02):
    """The operating point by the rule (module docstring): (threshold, its worst rate)."""
    if not (y < 0).any():
        right = best[(pred == y) & (y >= 0)]
        threshold = calibrate_threshold(right, max_false_unknown) if len(right) else 0.5
        return threshold, worst_rate(rates(best, pred, y, kinds, threshold))
    candidates = np.unique(np.concatenate([best, np.linspace(0.0, 1.0, 201)]))
    scored = []
    for t in candidates:
        counted = counted_rates(rates(best, pred, y, kinds, t))
        scored.append((min(counted), float(np.mean(counted)), -t))
    score, _, neg_t = max(scored)
    return float(-neg_t), float(score)


def tradeoff(best, pred, y, kinds, thresholds=None):
    """[{threshold, per kind rates}] along a grid of thresholds (for the curve)."""
    thresholds = np.linspace(0.0, 1.0, 101) if thresholds is None else thresholds
    return [{"threshold": round(float(t), 4), **rates(best, pred, y, kinds, t)} for t in thresholds]


def calibrate_threshold(scores, max_false_unknown):
    """The highest threshold under which at most `max_false_unknown` of `scores` fall."""
    ranked = np.sort(scores)
    allowed = int(np.floor(max_false_unknown * len(ranked)))
    return float(ranked[min(allowed, len(ranked) - 1)])


def calibrate(logits_val, features_val, y_val, kinds_val, features_train, y_train, num_labels, seed=0,
              max_false_unknown=0.02):
    """Fit both candidates on val crops and keep the better by the rule: (HeadCalibration, report).

    y_val: label index, or -1 for an outsider or a box on no face; kinds_val: each crop's kind."""
    y_val = np.asarray(y_val)
    known = y_val >= 0
    temperature = fit_temperature(logits_val[known], y_val[known])
    centres, owners = reference_centres(features_train, y_train, num_labels, seed=seed)
    plain = HeadCalibration(temperature, method="temperature")
    p = softmax(logits_val, temperature)
    top = p.argmax(axis=1)
    nearest = nearest_similarity(features_val, centres, owners, num_labels)[np.arange(len(top)), top]
    x = np.stack([logodds(p[np.arange(len(top)), top]), nearest], axis=1)
    a, b, c = fit_logistic(x, (known & (top == y_val)).astype(np.float64))
    near = HeadCalibration(temperature, a, b, c, method="nearest", references=centres, reference_labels=owners)
    report = {}
    for cal in (plain, near):
        best, pred = best_answers(cal, logits_val, features_val)
        cal.threshold, score = choose_threshold(best, pred, y_val, kinds_val, max_false_unknown)
        report[cal.method] = {"threshold": round(cal.threshold, 5), "val_worst_rate": round(score, 4),
                              "val": rates(best, pred, y_val, kinds_val, cal.threshold),
                              "val_tradeoff": tradeoff(best, pred, y_val, kinds_val), **cal.to_card()}
    chosen = near if report["nearest"]["val_worst_rate"] > report["temperature"]["val_worst_rate"] else plain
    return chosen, report

