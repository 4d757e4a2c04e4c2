#!/usr/bin/env bash
# Rebuild models/demo-cutout: U2-NetP on demo-cast composites, in the five stages of
# recipes/demo-cutout/*.json (each names its settings; every stage resumes when re-run).
#  1. 2000 steps at 128 px on the demo cast alone, about 80 min;
#  2-3. at 128 px with figures from outside the cast (Wesnoth portraits, clip-art people) and
#     backdrops: 1000 steps from stage 1, then 900 at a lower rate, about 90 min;
#  4. 600 more steps at 128 px with distractors (objects pasted behind the figures), about 30 min;
#  5. 150 steps at 192 px on the same data, exported with held-out figures, about 16 min.
# Times are for 2 idle CPU cores. Extra arguments go to every `train cutout` call (e.g. --threads 4).
# The shipped model's stage 2 was stopped at step 800 and ran before backdrops were limited to
# half of the photo draws, so a rebuild gives a close model, not the same weights.
set -euo pipefail
cd "$(dirname "$0")/.."
flask=(.venv/bin/flask --app wsgi)
recipes=recipes/demo-cutout
"${flask[@]}" demo fetch --portraits --clipart --backdrops --distractors
"${flask[@]}" train cutout demo-cast --config $recipes/1-cast-128.json --run-dir runs/cutout-128 "$@"
"${flask[@]}" train cutout demo-cast --config $recipes/2-mix-128.json --run-dir runs/cutout-128-mix "$@"
"${flask[@]}" train cutout demo-cast --config $recipes/3-mix-128-low.json --run-dir runs/cutout-128-mix2 "$@"
"${flask[@]}" train cutout demo-cast --config $recipes/4-stamps-128.json --run-dir runs/cutout-128-stamps "$@"
"${flask[@]}" train cutout demo-cast --config $recipes/5-stamps-192.json --run-dir runs/cutout-192-stamps \
  --out models/demo-cutout "$@"
# 6. 300 steps at 192 px with half the figures drawn from the Live2D renders' training poses
#    (`flask demo render` first; Haruto never), about 45 min at 1 thread; the shipped model.
"${flask[@]}" train cutout demo-cast --config $recipes/6-live2d-192.json --run-dir runs/cutout-192-live2d \
  --out models/demo-cutout "$@"
