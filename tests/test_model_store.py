"""Model directories: cards, sha256 checks with a remedy in the message, atomic writes."""
import json
import pickle

import pytest
import torch

from app.storage.model_dirs import ModelError, list_model_dirs, load_card, load_weights, sha256_file, write_model_dir

CARD = {
    "name": "toy", "kind": "classifier", "version": "1", "architecture": "linear",
    "backbone": "efficientnet_lite0", "labels": ["a", "b"], "unknown_threshold": 0.5,
    "training": {"command": "flask --app wsgi train classifier --out models/toy"},
}


def toy_state():
    return {"weight": torch.arange(6, dtype=torch.float32).view(2, 3), "bias": torch.zeros(2)}


def test_round_trip_fills_sha256(tmp_path):
    model_dir = tmp_path / "models" / "toy"
    card = write_model_dir(model_dir, CARD, toy_state())
    assert card["sha256"] == sha256_file(model_dir / "weights.pt")
    assert card["weights"] == "weights.pt" and card["created"]
    loaded = load_card(model_dir)
    assert loaded == card
    state = load_weights(model_dir, loaded)
    assert torch.equal(state["weight"], toy_state()["weight"])
    assert list_model_dirs(tmp_path / "models") == [model_dir]


def test_tampered_weights_say_what_to_run(tmp_path):
    model_dir = tmp_path / "toy"
    card = write_model_dir(model_dir, CARD, toy_state())
    (model_dir / "weights.pt").write_bytes(b"not the weights")
    with pytest.raises(ModelError) as err:
        load_weights(model_dir, card)
    assert "sha256" in str(err.value)
    assert "flask --app wsgi train classifier --out models/toy" in str(err.value)


def test_missing_weights_and_bad_cards(tmp_path):
    model_dir = tmp_path / "toy"
    card = write_model_dir(model_dir, CARD, toy_state())
    (model_dir / "weights.pt").unlink()
    with pytest.raises(ModelError, match="missing"):
        load_weights(model_dir, card)
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
    new_state = {"weight": torch.ones(2, 3), "bias": torch.ones(2)}
    card = write_model_dir(model_dir, dict(CARD, version="2"), new_state)
    assert load_card(model_dir)["version"] == "2"
    assert torch.equal(load_weights(model_dir, card)["bias"], torch.ones(2))
    assert not (model_dir / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy"]


def test_failed_write_keeps_previous_version(tmp_path):
    model_dir = tmp_path / "toy"
    first = write_model_dir(model_dir, CARD, toy_state())
    with pytest.raises((AttributeError, TypeError, pickle.PicklingError)):
        write_model_dir(model_dir, CARD, {"weight": lambda: None})  # cannot be pickled
    assert load_card(model_dir) == first
    load_weights(model_dir, first)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy"]
