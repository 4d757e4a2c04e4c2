"""Model directories: `models/<name>/card.json` plus the weights file the card names.

Every weights file is checked against the sha256 in its card before it is used, and a
model directory is written whole or not at all (temporary directory beside it, fsync,
rename), so a crash never leaves a half-written model behind.
"""
import hashlib
import json
import os
import shutil
import tempfile
from datetime import date
from pathlib import Path

import torch

CARD_NAME = "card.json"
REQUIRED_KEYS = ("name", "kind", "weights", "sha256")
CLASSIFIER_KEYS = ("backbone", "labels", "unknown_threshold")


class ModelError(Exception):
    """A model directory, card or weights file that cannot be used; the message says what to do."""


def sha256_file(path, chunk=1 << 20):
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


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
    missing = [k for k in REQUIRED_KEYS if k not in card]
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


def load_weights(model_dir, card):
    """The state dict of a model directory, after the sha256 check."""
    path = verify_weights(model_dir, card)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt pickle can raise almost anything
        raise ModelError(f"cannot read {path} ({exc}); {_remedy(card)}") from None


def _fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_model_dir(model_dir, card, state_dict, weights_name="weights.pt", save=None):
    """Write card + weights into `model_dir` atomically; fills weights, sha256 and created. Returns the card.

    `save(path)` writes the weights file instead of torch.save(state_dict) (e.g. an ONNX file).
    """
    model_dir = Path(model_dir)
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{model_dir.name}.tmp-", dir=model_dir.parent))
    # mkdtemp makes it private (0700); a model is read by other users too (the app's service user).
    os.chmod(tmp, 0o755)
    try:
        weights_path = tmp / weights_name
        if save is None:
            torch.save(state_dict, weights_path)
        else:
            save(weights_path)
        _fsync_path(weights_path)
        card = dict(card)
        card["weights"] = weights_name
        card["sha256"] = sha256_file(weights_path)
        card.setdefault("created", date.today().isoformat())
        write_card(tmp, card)
        old = None
        if model_dir.exists():
            # Move the previous version aside first; rename() cannot replace a non-empty dir.
            old = Path(tempfile.mkdtemp(prefix=f".{model_dir.name}.old-", dir=model_dir.parent))
            os.rmdir(old)
            os.rename(model_dir, old)
        os.rename(tmp, model_dir)
        _fsync_path(model_dir.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return card
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_card(model_dir, card):
    """Write `card.json` into an existing directory atomically (temporary file, fsync, rename)."""
    model_dir = Path(model_dir)
    fd, tmp = tempfile.mkstemp(prefix=f".{CARD_NAME}.", suffix=".tmp", dir=model_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(card, fh, indent=2, ensure_ascii=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, model_dir / CARD_NAME)
        _fsync_path(model_dir)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def list_model_dirs(root):
    """Sub-directories of `root` that hold a card.json, sorted by name."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / CARD_NAME).is_file())
