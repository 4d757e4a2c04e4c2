#!/usr/bin/env bash
# Rebuild models/demo-cutout: U2-NetP on demo-cast composites, trained at 128 px, then fine-tuned
# at 192 px from the 128 px run's best checkpoint. Both runs resume when re-run after an interruption.
# About 80 + 35 minutes on 2 CPU cores (2.3 s and 5.2 s per step).
# Extra arguments go to both `train cutout` calls (e.g. --threads 4).
set -euo pipefail
cd "$(dirname "$0")/.."
flask=(.venv/bin/flask --app wsgi)
"${flask[@]}" demo fetch
"${flask[@]}" train cutout demo-cast --arch u2netp --size 128 --batch 8 --steps 2000 \
  --eval-every 100 --eval-count 32 --threads 2 --run-dir runs/cutout-128 "$@"
"${flask[@]}" train cutout demo-cast --arch u2netp --init runs/cutout-128/best.pt --size 192 \
  --batch 8 --steps 400 --lr 3e-4 --eval-every 50 --eval-count 32 --threads 2 \
  --run-dir runs/cutout-192 --out models/demo-cutout "$@"
