#!/usr/bin/env bash
# Rebuild models/demo-cutout: U2-NetP on demo-cast composites. Every stage resumes when re-run.
#  1. 2000 steps at 128 px on the demo cast alone (runs/cutout-128), about 80 min;
#  2. at 128 px with figures from outside the cast (Wesnoth portraits, clip-art people) and
#     backdrops: 1000 steps from stage 1, then 900 at a lower rate, about 90 min;
#  3. 600 more steps at 128 px with distractors (objects pasted behind the figures), about 30 min;
#  4. 150 steps at 192 px on the same data, exported with held-out figures, about 16 min.
# Times are for 2 idle CPU cores. Extra arguments go to every `train cutout` call (e.g. --threads 4).
# The shipped model's stage 2a was stopped at step 800 and ran before backdrops were limited to
# half of the photo draws, so a rebuild gives a close model, not the same weights.
set -euo pipefail
cd "$(dirname "$0")/.."
flask=(.venv/bin/flask --app wsgi)
mix=(--extra-art --portraits 0.25 --clipart 0.25 --backdrops)
"${flask[@]}" demo fetch --portraits --clipart --backdrops --distractors
"${flask[@]}" train cutout demo-cast --arch u2netp --size 128 --batch 8 --steps 2000 \
  --eval-every 100 --eval-count 32 --threads 2 --run-dir runs/cutout-128 "$@"
"${flask[@]}" train cutout demo-cast --arch u2netp --init runs/cutout-128/best.pt --size 128 \
  --batch 8 --steps 1000 --lr 1e-3 --eval-every 100 --eval-count 32 --threads 2 "${mix[@]}" \
  --run-dir runs/cutout-128-mix "$@"
"${flask[@]}" train cutout demo-cast --arch u2netp --init runs/cutout-128-mix/last.pt --size 128 \
  --batch 8 --steps 900 --lr 5e-4 --eval-every 100 --eval-count 32 --threads 2 "${mix[@]}" \
  --run-dir runs/cutout-128-mix2 "$@"
"${flask[@]}" train cutout demo-cast --arch u2netp --init runs/cutout-128-mix2/best.pt --size 128 \
  --batch 8 --steps 600 --lr 3e-4 --eval-every 100 --eval-count 64 --threads 2 "${mix[@]}" \
  --distractors 0.5 --run-dir runs/cutout-128-stamps "$@"
"${flask[@]}" train cutout demo-cast --arch u2netp --init runs/cutout-128-stamps/best.pt --size 192 \
  --batch 8 --steps 150 --lr 3e-4 --eval-every 50 --eval-count 64 --threads 2 "${mix[@]}" \
  --distractors 0.5 --run-dir runs/cutout-192-stamps --out models/demo-cutout "$@"
