"""Every kind of job and the function a worker runs for it. The app registers them when it is
made (create_app), so the queue (app/jobs/queue.py) never imports the jobs it carries: they
import the queue to retry themselves."""


def init_app(app):
    """Register each job kind's runner, run(app, job_id), for `app`'s queue."""
    from app.jobs import cutouts, retrain, teach
    app.extensions["job_runners"] = {"cutout": cutouts.run, "retrain": retrain.run, "teach": teach.run}
