"""`flask worker`: run queued jobs (app/jobs/) in this process until SIGTERM or Ctrl+C.

Start as many as the machines and cores allow; with the default SQLite queue they must share the
report folder (one machine), with JOB_QUEUE_URL=redis://... they may run anywhere that reaches
Redis and the database.
"""
import logging
import threading

import click
from flask import current_app
from flask.cli import with_appcontext


@click.command("worker", help="Run queued jobs (batch cutouts) until stopped.")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Jobs run at once in this process (each cutout uses TORCH_THREADS cores).")
@with_appcontext
def command(threads):
    from app.jobs import cutouts, queue
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # the schema check at start is not news
    app = current_app._get_current_object()
    huey, _tasks = queue.get(app)
    lease = float(app.config["JOB_LEASE_SECONDS"])
    # Jobs of workers that died while no worker ran are handled before taking new ones.
    cutouts.reap(app)
    stop = threading.Event()
    upkeep = threading.Thread(target=cutouts.maintain, args=(app, stop, max(0.5, min(5.0, lease / 4))),
                              name="job-upkeep", daemon=True)
    upkeep.start()
    click.echo(f"worker: {threads} thread(s) on the queue in {queue.describe(app)}")
    consumer = huey.create_consumer(workers=threads, worker_type="thread", periodic=False,
                                    initial_delay=0.05, max_delay=1.0)
    try:
        consumer.run()  # until SIGTERM (stops at once) or SIGINT (finishes running jobs first)
    finally:
        stop.set()
