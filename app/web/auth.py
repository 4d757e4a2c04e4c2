"""Operators: the one token (FLASK_ADMIN_TOKEN), the sign-in page, the session cookie and CSRF.

API clients send `Authorization: Bearer <token>`; browsers sign in once with the token and
then carry a session cookie (HttpOnly, SameSite=Strict), and every request made with that
cookie must also carry the page's CSRF token (Flask-WTF), so another site can never act
with it. The session lives on the server too (app/storage/operator_sessions.py): sign-out ends
it there, so a copy of the cookie stops working. Wrong tokens and failed sign-ins are counted
per client and overall (app/web/ratelimit.py); a token shorter than MIN_TOKEN_CHARS is refused
at start. Without a configured token every operator endpoint answers 403 and says how to
turn them on. Anonymous users can identify, cut out and report, nothing more.
"""
import functools
import hashlib
import hmac
from urllib.parse import urlsplit

from flask import Blueprint, current_app, g, make_response, redirect, render_template, request, session, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect

from app.errors import APIError, error_response
from app.i18n import _, translate
from app.storage import db, operator_sessions

bp = Blueprint("auth", __name__)
csrf = CSRFProtect()

HOW_TO_ENABLE = _("Operator actions are turned off on this server: set FLASK_ADMIN_TOKEN to a long "
                  "random secret (for example `python -c 'import secrets; print(secrets.token_urlsafe(32))'`) "
                  "in its environment and restart it; then send `Authorization: Bearer <token>` "
                  "or sign in at /signin.")

MIN_TOKEN_CHARS = 32
HOW_TO_MAKE_ONE = "python -c \"import secrets; print(secrets.token_urlsafe(32))\""

# Flask-WTF's reasons for refusing a request (CSRFError.description), as clients read them.
CSRF_REASONS = {
    "The CSRF token is missing.": _("The CSRF token is missing."),
    "The CSRF session token is missing.": _("The CSRF session token is missing."),
    "The CSRF token has expired.": _("The CSRF token has expired."),
    "The CSRF token is invalid.": _("The CSRF token is invalid."),
    "The CSRF tokens do not match.": _("The CSRF tokens do not match."),
    "The referrer header is missing.": _("The referrer header is missing."),
    "The referrer does not match the host.": _("The referrer does not match the host."),
}


def _token():
    token = current_app.config.get("ADMIN_TOKEN")
    return str(token) if token else None


def _fingerprint(token):
    # What the session remembers: changing the token signs every browser out.
    return hmac.new(token.encode(), b"operator-session", hashlib.sha256).hexdigest()


def _matches(given, token):
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode())


def _failed():
    # Counted against the client's and the server's budget of failures (app/web/ratelimit.py).
    g.auth_failed = True


def is_signed_in():
    """True when this browser's session belongs to an operator of the current token and is still
    open on the server (not signed out, not expired)."""
    token = _token()
    if not token or not hmac.compare_digest(str(session.get("operator", "")), _fingerprint(token)):
        return False
    if "operator_session_open" not in g:
        with db.session(current_app._get_current_object()) as s:
            g.operator_session_open = operator_sessions.is_open(s, session.get("sid"))
    return g.operator_session_open


def check_operator():
    """Raise the right APIError unless this request comes from an operator (token or session + CSRF)."""
    token = _token()
    if token is None:
        raise APIError(HOW_TO_ENABLE, 403, "operator_disabled")
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _sep, given = header.partition(" ")
        if scheme.lower() != "bearer" or not _matches(given.strip(), token):
            _failed()
            raise APIError(_("The operator token is wrong."), 401, "bad_token")
        return  # a header is never sent by another site's form: no CSRF token needed
    if is_signed_in():
        csrf.protect()  # CSRFError (403) when the request lacks this session's CSRF token
        return
    raise APIError(_("This needs an operator: send `Authorization: Bearer <token>` or sign in at /signin."),
                   401, "operator_required")


def operator_required(view):
    """Decorator for operator-only API views."""
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        check_operator()
        return view(*args, **kwargs)
    wrapped.operator_only = True  # app/web/ratelimit.py limits failed attempts on these
    return wrapped


def operator_page(html, status=200):
    """A response for an operator page: never cached, and the Referer kept for same-origin requests
    (Flask-WTF checks it on HTTPS; the app's default policy sends none)."""
    response = make_response(html, status)
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


def signin_page(error, status):
    """The sign-in page showing `error` (a Message or text), answered with `status`."""
    return operator_page(render_template("signin.html", next=_safe_next(request.values.get("next")),
                                         error=translate(error)), status)


def _safe_next(target):
    # Only paths on this site: never "//evil.example" or "https://...".
    parts = urlsplit(target or "")
    if target and target.startswith("/") and not target.startswith("//") and not parts.netloc:
        return target
    return url_for("review.page")


@bp.route("/signin", methods=["GET", "POST"])
def signin():
    """The sign-in page: the operator types the token once; a session cookie remembers it."""
    token = _token()
    if token is None:
        return operator_page(render_template("signin.html", disabled=HOW_TO_ENABLE, next=""), 403)
    next_page = _safe_next(request.values.get("next"))
    if request.method in ("GET", "HEAD"):  # HEAD is GET without a body: never a sign-in
        return operator_page(render_template("signin.html", next=next_page, signed_in=is_signed_in()))
    csrf.protect()
    if not _matches(request.form.get("token", ""), token):
        _failed()
        return operator_page(render_template("signin.html", next=next_page,
                                             error="That is not the operator token."), 401)
    app = current_app._get_current_object()
    with db.session(app, write=True) as s:
        secret = operator_sessions.open_session(s, int(app.config["PERMANENT_SESSION_LIFETIME"]))
    session.clear()
    session.permanent = True
    session["operator"] = _fingerprint(token)
    session["sid"] = secret
    return redirect(next_page, code=303)


@bp.post("/signout")
def signout():
    """Forget this browser's operator session."""
    if _token() is None:  # operators turned off: no session to forget, and no key to check CSRF with
        return redirect(url_for("auth.signin"), code=303)
    csrf.protect()
    with db.session(current_app._get_current_object(), write=True) as s:
        operator_sessions.close(s, session.get("sid"))  # a copy of the cookie ends here too
    session.clear()
    return redirect(url_for("auth.signin"), code=303)


def _csrf_error(err):
    if request.path.startswith("/api/"):
        reason = CSRF_REASONS.get(err.description, err.description)
        return error_response(_("Refused: %(reason)s Reload the page and try again.", reason=reason), 403,
                              "csrf_failed")
    return operator_page(render_template("signin.html", next="",
                                         error=f"Refused: {err.description} Reload the page."), 403)


def init_app(app):
    """CSRF protection (checked where a session acts), session cookie settings, the sign-in page."""
    # CSRF is checked explicitly where a session cookie is used; anonymous JSON endpoints
    # (identify, cutout, reports) carry no session and are guarded elsewhere.
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # valid for the session's life
    token = app.config.get("ADMIN_TOKEN")
    if token and len(str(token)) < MIN_TOKEN_CHARS:
        # Refused at start: a short token can be guessed. The message never repeats it.
        raise ValueError(f"FLASK_ADMIN_TOKEN is {len(str(token))} characters long; it needs at least "
                         f"{MIN_TOKEN_CHARS}. Make one with: {HOW_TO_MAKE_ONE}")
    if token and not app.config.get("SECRET_KEY"):
        # Every worker derives the same key from the token, so sessions work across workers
        # and a new token invalidates old cookies.
        app.config["SECRET_KEY"] = hmac.new(str(token).encode(), b"session-key", hashlib.sha256).hexdigest()
    csrf.init_app(app)
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_blueprint(bp)
