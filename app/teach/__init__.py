"""Teaching a cast from an episode: material -> sampled frames (material.py) -> face tracks
(tracks.py) -> groups by character (grouping.py), run by pipeline.py inside a queued job
(app/jobs/teach.py); the groups are named by an operator (app/teach/store.py, app/web/teach.py)."""
