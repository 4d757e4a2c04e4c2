"""Per-client rate limits (Flask-Limiter), counted across all workers, answered 429 with Retry-After.

LIMITED names each limited endpoint and the setting that holds its limit. A client is its
address (the proxy's X-Forwarded-For hop with PROXY_FIX), or its /64 for IPv6, which is what
one household or one server usually holds. Counters live in a SQLite file
(app/storage/counters.py) shared by the workers, unless RATELIMIT_STORAGE_URI names another
`limits` storage (`redis://...`, or `memory://` for one process). By default that file is in a
private folder of the system's temporary directory, one file per report folder (so per
instance): counters are short-lived, and they stay out of the users' data.
"""
import hashlib
import ipaddress
import math
import os
import stat
import tempfile
import time
from pathlib import Path

from flask import current_app, g, request
from flask_limiter import Limiter, RateLimitExceeded

from app.config import resolve_path
from app.errors import error_response
from app.i18n import _
from app.storage import counters  # noqa: F401  (registers the sqlite:// storage scheme)

# endpoint -> the setting with its limit, in the `limits` syntax ("20 per minute; 200 per hour").
LIMITED = {"api.create_report": "REPORT_RATE_LIMIT", "jobs.create": "JOB_RATE_LIMIT"}
# Failed operator authentication (a wrong Bearer token, a wrong token at /signin): counted only when a
# request fails (app/web/auth.py marks it), tested before every attempt, on every operator endpoint
# and the sign-in form, per client and over all clients. One shared scope each: guesses spread
# over endpoints add up.
AUTH_SCOPE, AUTH_GLOBAL_SCOPE = "operator-auth", "operator-auth-all"


def client_key():
    """The rate-limit key of this request's client: its address, or its /64 network for IPv6."""
    address = request.remote_addr or "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _auth_failed(_response):
    return bool(g.get("auth_failed"))


def _everyone():
    return "all"


def too_many_requests(err):
    """429 as JSON, with Retry-After: the seconds until the exceeded window ends."""
    limiter = current_app.extensions["ratelimit"]
    current = limiter.current_limit
    # The window's own end: RequestLimit.reset_at adds a second, which could exceed the window.
    retry = max(1, math.ceil(current.window[0] - time.time())) if current else 60
    if current and {AUTH_SCOPE, AUTH_GLOBAL_SCOPE} & set(map(str, current.request_args)):
        message = _("Too many failed operator sign-ins or wrong tokens. Try again in %(seconds)d s.",
                    seconds=retry)
    elif current:  # the limit as the limits library writes it, "20 per 1 minute"
        message = _("Too many requests from your address (at most %(limit)s). Try again in %(seconds)d s.",
                    limit=str(current.limit), seconds=retry)
    else:
        message = _("Too many requests from your address. Try again in %(seconds)d s.", seconds=retry)
    if request.endpoint == "auth.signin":  # a browser's form: the page again, saying why
        from app.web.auth import signin_page
        response = signin_page(message, 429)
    else:
        response = error_response(message, 429, "too_many_requests")
    response.headers["Retry-After"] = str(retry)
    return response


def default_storage_uri(app):
    """sqlite:///TMP/anime-face-UID/ratelimit-HASH.sqlite3 for this instance; memory:// if that folder
    is not ours (another user could otherwise plant the file)."""
    folder = Path(tempfile.gettempdir()) / f"anime-face-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        info = folder.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
            raise PermissionError(f"{folder} is not a private folder of this user")
    except OSError as exc:
        app.logger.warning("rate limits counted per worker process (memory): %s", exc)
        return "memory://"
    instance = hashlib.sha256(str(resolve_path(app.config["REPORT_DIR"])).encode()).hexdigest()[:16]
    return f"sqlite:///{folder / f'ratelimit-{instance}.sqlite3'}"


def init_app(app):
    """A limiter for `app` on the LIMITED endpoints (register blueprints first); JSON 429 answers."""
    if not app.config.get("RATELIMIT_STORAGE_URI"):
        app.config["RATELIMIT_STORAGE_URI"] = default_storage_uri(app)
    # If the counters cannot be reached, count in this process rather than fail the request.
    app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    # One limiter per app (not a module global): each app has its own settings and counters.
    limiter = Limiter(key_func=client_key, app=app)
    for endpoint, key in LIMITED.items():
        view = app.view_functions[endpoint]
        app.view_functions[endpoint] = limiter.limit(lambda key=key: current_app.config[key])(view)
    per_client = limiter.shared_limit(lambda: current_app.config["AUTH_FAILURE_RATE_LIMIT"], AUTH_SCOPE,
                                      deduct_when=_auth_failed)
    overall = limiter.shared_limit(lambda: current_app.config["AUTH_FAILURE_GLOBAL_LIMIT"], AUTH_GLOBAL_SCOPE,
                                   key_func=_everyone, deduct_when=_auth_failed)
    signin_per_client = limiter.shared_limit(lambda: current_app.config["AUTH_FAILURE_RATE_LIMIT"], AUTH_SCOPE,
                                             deduct_when=_auth_failed, methods=["POST"])
    signin_overall = limiter.shared_limit(lambda: current_app.config["AUTH_FAILURE_GLOBAL_LIMIT"],
                                          AUTH_GLOBAL_SCOPE, key_func=_everyone, deduct_when=_auth_failed,
                                          methods=["POST"])
    for endpoint, view in list(app.view_functions.items()):
        if getattr(view, "operator_only", False):
            app.view_functions[endpoint] = overall(per_client(view))
        elif endpoint == "auth.signin":  # the form itself (GET) always shows
            app.view_functions[endpoint] = signin_overall(signin_per_client(view))
    app.extensions["ratelimit"] = limiter
    app.register_error_handler(RateLimitExceeded, too_many_requests)
