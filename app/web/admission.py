"""Fair serving: per-endpoint concurrency limits with a bounded queue, in each worker process.

An expensive cutout must not starve identify. Each gated endpoint has its own slots (requests
running at once) and its own queue (requests waiting for a slot), set by <NAME>_SLOTS and
<NAME>_QUEUE in app/config.py. A request that finds the queue full, or that waits QUEUE_WAIT
seconds without getting a slot, is answered at once with 503 and Retry-After: nothing waits
without bound. Because identify never shares a slot with cutout, a burst of cutouts fills only
the cutout queue and identify keeps its own slots.

The gates count requests inside one worker process, so they need a threaded worker
(gunicorn's gthread, gunicorn.conf.py) with more threads than the gated slots and queues
together; otherwise requests would wait for a thread before reaching their gate.
"""
import math
import threading
import time
from contextlib import contextmanager
from functools import wraps

from flask import current_app, request

from app import process_state
from app.errors import APIError
from app.i18n import _


class Busy(APIError):
    """503: every slot of an endpoint is taken and its queue is full (or the wait ran out)."""

    def __init__(self, name, retry_after, running=None, waiting=None, waited=None):
        if waited is None:
            message = _("The server is busy with other %(name)s requests (%(running)d running, %(waiting)d "
                        "waiting); try again in %(seconds)d s.", name=name, running=running, waiting=waiting,
                        seconds=retry_after)
        else:
            message = _("The server is busy with other %(name)s requests (waited %(waited)s s for a slot); "
                        "try again in %(seconds)d s.", name=name, waited=f"{waited:g}", seconds=retry_after)
        super().__init__(message, 503, "busy")
        self.headers = {"Retry-After": str(retry_after)}


class Gate:
    """At most `slots` requests inside, at most `queue` more waiting (each at most `wait` s)."""

    def __init__(self, name, slots, queue, wait):
        if slots < 1 or queue < 0 or wait < 0:
            raise ValueError(f"{name}: slots must be >= 1, queue and wait >= 0")
        self.name, self.slots, self.queue, self.wait = name, int(slots), int(queue), float(wait)
        self._cond = threading.Condition()
        self.running = 0
        self.waiting = 0
        self._seconds = None  # time a request holds its slot, smoothed over recent requests

    def retry_after(self):
        """Whole seconds until a slot is likely free: the requests ahead, spread over the slots."""
        per_request = self._seconds if self._seconds is not None else 1.0
        return max(1, math.ceil(per_request * (self.running + self.waiting + 1) / self.slots))

    @contextmanager
    def admit(self):
        """Hold a slot for the block; Busy (503) when the queue is full or the wait runs out."""
        with self._cond:
            if self.running >= self.slots:
                if self.waiting >= self.queue:
                    raise Busy(self.name, self.retry_after(), running=self.running, waiting=self.waiting)
                self.waiting += 1
                deadline = time.monotonic() + self.wait
                try:
                    while self.running >= self.slots:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            raise Busy(self.name, self.retry_after(), waited=self.wait)
                        self._cond.wait(left)
                finally:
                    self.waiting -= 1
            self.running += 1
        start = time.monotonic()
        try:
            yield
        finally:
            held = time.monotonic() - start
            with self._cond:
                self.running -= 1
                self._seconds = held if self._seconds is None else 0.8 * self._seconds + 0.2 * held
                self._cond.notify()


_lock = threading.Lock()


def gate(name):
    """This process's gate for endpoint group `name`, configured from the app's settings."""
    app = current_app._get_current_object()
    with _lock:
        state = process_state.of(app, "admission", lambda: {"gates": {}})  # a parent's counts mean nothing here
        if name not in state["gates"]:
            config = app.config
            state["gates"][name] = Gate(name, int(config[f"{name.upper()}_SLOTS"]),
                                        int(config[f"{name.upper()}_QUEUE"]), float(config["QUEUE_WAIT"]))
        return state["gates"][name]


def limited(name):
    """View decorator: the view runs only while holding a slot of gate `name`.

    The upload is read first (bounded by MAX_CONTENT_LENGTH), so a slow client holds a thread
    while it sends but never a slot.
    """
    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            request.files  # noqa: B018 - parses the whole multipart body now
            with gate(name).admit():
                return view(*args, **kwargs)
        return wrapper
    return decorate
