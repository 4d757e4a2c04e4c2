"""State a process keeps on the app (connections, loaded models, counters), never shared with a
forked child: gunicorn forks its workers after the app is made, and a child that used its parent's
database connections, ONNX sessions or slot counts would corrupt them."""
import os


def of(app, name, fresh):
    """app.extensions[name] for this process: `fresh()` (a dict) on first use and after a fork."""
    state = app.extensions.get(name)
    if state is None or state.get("pid") != os.getpid():
        state = {**fresh(), "pid": os.getpid()}
        app.extensions[name] = state
    return state
