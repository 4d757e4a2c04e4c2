"""Torch weight files in model folders: the state dicts of networks (training, export), and the
one-time conversion of heads kept in torch files into the numpy files serving reads."""
from pathlib import Path

import numpy as np
import torch

from app.storage.files import atomic_path, sha256_file
from app.storage.model_dirs import ModelError, _remedy, load_card, verify_weights, write_card, write_model_dir

ARRAY_KINDS = ("classifier", "embedding")  # heads and projections: served from numpy files


def load_state_dict(model_dir, card):
    """The torch state dict of a model folder's weights file, after the sha256 check."""
    path = verify_weights(model_dir, card)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt pickle can raise almost anything
        raise ModelError(f"cannot read {path} ({exc}); {_remedy(card)}") from None


def write_torch_model_dir(model_dir, card, state_dict, weights_name="weights.pt"):
    """app/storage/model_dirs.write_model_dir with a torch state dict as the weights file."""
    return write_model_dir(model_dir, card, weights_name=weights_name, save=lambda part: torch.save(state_dict, part))


def convert_to_arrays(model_dir):
    """Rewrite a head or projection kept in a torch `.pt` file as `weights.npz`; returns the new
    card, or None when there is nothing to convert. The new file is written and the card switched
    to it (each atomically) before the old file goes: a crash leaves a folder that loads either way."""
    model_dir = Path(model_dir)
    card = load_card(model_dir)
    if card.get("kind") not in ARRAY_KINDS or not card.get("weights") or card["weights"].endswith(".npz"):
        return None
    old = model_dir / card["weights"]
    arrays = {k: v.float().numpy() if v.is_floating_point() and v.dtype != torch.float16 else v.numpy()
              for k, v in load_state_dict(model_dir, card).items()}
    new = model_dir / "weights.npz"
    with atomic_path(new) as part:
        with open(part, "wb") as out:
            np.savez(out, **arrays)
    card = dict(card, weights=new.name, sha256=sha256_file(new))
    write_card(model_dir, card)
    old.unlink()
    return card
