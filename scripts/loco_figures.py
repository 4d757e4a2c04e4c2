"""Leave-one-character-out figures for a trained head, from cached features, into its card.

    .venv/bin/python scripts/loco_figures.py models/demo-classifier DATA

The same as `train classifier --loco` (classifier_train.leave_one_out) without training and scoring
the shipped head again: per character, a head is trained on the other labels with the card's
config, its open-set decision fitted on val as the shipped one was, and the left-out character's
test faces (every crop kind) are counted as answered "unknown".
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.build.backbones import load_backbone  # noqa: E402
from app.training import classifier_train, face_dataset  # noqa: E402
from app.training.feature_cache import FeatureCache  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model_dir")
    parser.add_argument("data")
    args = parser.parse_args()
    card_path = Path(args.model_dir) / "card.json"
    card = json.loads(card_path.read_text())
    config = classifier_train.TrainConfig(**card["training"]["config"])
    backbone = load_backbone(config.backbone)
    train, val = classifier_train.split_data(args.data, config.val_fraction, config.seed)
    labels = card["labels"]
    prep = classifier_train.prepare_features(backbone, train, val, labels, config)
    test = [(im, lab) for im, lab in face_dataset.load_folder(Path(args.data) / "test") if lab in labels]
    test_x = FeatureCache(backbone).features([im for im, _ in test])
    test_y = np.array([labels.index(lab) for _, lab in test], np.int64)
    loco = classifier_train.leave_one_out(prep, test_x, test_y, config)
    card["metrics"]["leave_one_character_out"] = loco
    card_path.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(loco, indent=1))


if __name__ == "__main__":
    main()
