"""Background jobs on a queue: Huey carries them (app/jobs/queue.py), `flask worker` runs them
(app/commands/worker.py), and the database's `jobs` rows are what clients and the reaper read
(app/jobs/store.py). Batch cutouts (app/jobs/cutouts.py) are the first kind."""
