"""Model directories: cards, sha256 checks with a remedy in the message, atomic writes."""
import json

import numpy as np
import pytest
import torch

from app.build.torch_weights import convert_to_arrays, load_state_dict, write_torch_model_dir
from app.storage.model_dirs import ModelError, list_model_dirs, load_arrays, load_card, sha256_file, write_model_dir

CARD = {
    "name": "toy", "kind": "classifier", "version": "1", "architecture": "linear",
    "backbone": "efficientnet_lite0", "labels": ["a", "b"], "unknown_threshold": 0.5,
    "training": {"command": "flask --app wsgi train classifier --out models/toy"},
}


def toy_state():
    return {"weight": np.arange(6, dtype=np.float32).reshape(2, 3), "bias": np.zeros(2, np.float32)}


def test_round_trip_fills_sha256(tmp_path):
    model_dir = tmp_path / "models" / "toy"
    card = write_model_dir(model_dir, CARD, toy_state())
    assert card["sha256"] == sha256_file(model_dir / "weights.npz")
    assert card["weights"] == "weights.npz" and card["created"]
    loaded = load_card(model_dir)
    assert loaded == card
    state = load_arrays(model_dir, loaded)
    assert np.array_equal(state["weight"], toy_state()["weight"]) and state["weight"].dtype == np.float32
    assert list_model_dirs(tmp_path / "models") == [model_dir]


def test_tampered_weights_say_what_to_run(tmp_path):
    model_dir = tmp_path / "toy"
    card = write_model_dir(model_dir, CARD, toy_state())
    (model_dir / "weights.npz").write_bytes(b"not the weights")
    with pytest.raises(ModelError) as err:
        load_arrays(model_dir, card)
    assert "sha256" in str(err.value)
    assert "flask --app wsgi train classifier --out models/toy" in str(err.value)


def test_missing_weights_and_bad_cards(tmp_path):
    model_dir = tmp_path / "toy"
    card = write_model_dir(model_dir, CARD, toy_state())
    (model_dir / "weights.npz").unlink()
    with pytest.raises(ModelError, match="missing"):
        load_arrays(model_dir, card)
    with pytest.raises(ModelError, match="not a model directory"):
        load_card(tmp_path / "nowhere")
    (model_dir / "card.json").write_text("{broken", encoding="utf-8")
    with pytest.raises(ModelError, match="not valid JSON"):
        load_card(model_dir)
    (model_dir / "card.json").write_text(json.dumps({"name": "x", "kind": "classifier"}), encoding="utf-8")
    with pytest.raises(ModelError, match="lacks"):
        load_card(model_dir)


def test_rewrite_replaces_whole_directory_and_leaves_no_temporaries(tmp_path):
    model_dir = tmp_path / "toy"
    write_model_dir(model_dir, CARD, toy_state())
    (model_dir / "stale.txt").write_text("old", encoding="utf-8")
    new_state = {"weight": np.ones((2, 3)), "bias": np.ones(2)}
    card = write_model_dir(model_dir, dict(CARD, version="2"), new_state)
    assert load_card(model_dir)["version"] == "2"
    assert np.array_equal(load_arrays(model_dir, card)["bias"], np.ones(2))
    assert not (model_dir / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy"]


def test_failed_write_keeps_previous_version(tmp_path):
    model_dir = tmp_path / "toy"
    first = write_model_dir(model_dir, CARD, toy_state())
    with pytest.raises(TypeError):
        write_model_dir(model_dir, CARD, {"weight": lambda: None})  # not a numeric array
    assert load_card(model_dir) == first
    load_arrays(model_dir, first)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy"]


def test_a_head_in_a_torch_file_is_refused_by_serving_and_converted_once(tmp_path):
    """Heads made before serving went torch-free: serving names the command; the command rewrites
    the folder (same numbers, numpy file, card updated) and leaves networks' torch files alone."""
    head = tmp_path / "models" / "old-head"
    write_torch_model_dir(head, CARD, {k: torch.from_numpy(v) for k, v in toy_state().items()})
    with pytest.raises(ModelError, match="models convert"):
        load_arrays(head, load_card(head))
    card = convert_to_arrays(head)
    assert card["weights"] == "weights.npz" and load_card(head) == card
    assert sorted(p.name for p in head.iterdir()) == ["card.json", "weights.npz"]
    assert np.array_equal(load_arrays(head, card)["weight"], toy_state()["weight"])
    assert convert_to_arrays(head) is None  # once
    net = tmp_path / "models" / "net"
    write_torch_model_dir(net, {"name": "net", "kind": "cutout"}, {"w": torch.ones(1)})
    assert convert_to_arrays(net) is None and torch.equal(load_state_dict(net, load_card(net))["w"], torch.ones(1))
