"""One JSON error shape for every failure: {"error": {"code", "message"}}.

`code` is stable and never translated; `message` is in the request's language (Accept-Language,
app/i18n.py) when it was marked with `_()`.
"""
import errno
import logging
import sqlite3

from flask import current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from app.i18n import _, translate

log = logging.getLogger(__name__)

# Machine-readable codes for Werkzeug's HTTP errors (404, 405, 413 ...).
HTTP_CODES = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}

# What clients read for Werkzeug's HTTP errors (its own descriptions are English only).
HTTP_MESSAGES = {
    400: _("The request could not be understood."),
    403: _("This request is not allowed."),
    404: _("Nothing is at this address."),
    405: _("This method is not allowed at this address."),
    415: _("This type of content is not accepted here."),
    429: _("Too many requests; try again later."),
    500: _("Internal server error."),
    503: _("The server is unavailable for now; try again later."),
}


class APIError(Exception):
    """An error the client should see, with its HTTP status and a stable code.

    `message` is a Message from `_()` (translated when the response is written) or plain text;
    str(err) and err.message are English.
    """

    def __init__(self, message, status=400, code="bad_request"):
        super().__init__(str(message))
        self.message = message
        self.status = status
        self.code = code
        self.headers = {}  # e.g. Retry-After on a 503 (app/web/admission.py)


def error_response(message, status, code):
    """A JSON error response; `message` (a Message) in the request's language."""
    response = jsonify({"error": {"code": code, "message": translate(message)}})
    response.status_code = status
    response.vary.add("Accept-Language")
    return response


def handle_api_error(err):
    response = error_response(err.message, err.status, err.code)
    if getattr(err, "retry_after", None):
        response.headers["Retry-After"] = str(int(err.retry_after))
    response.headers.update(getattr(err, "headers", None) or {})
    return response


def _form_field_too_large():
    # The body fitted MAX_CONTENT_LENGTH, so Werkzeug's per-field limit (MAX_FORM_MEMORY_SIZE) refused it.
    body_limit = current_app.config.get("MAX_CONTENT_LENGTH")
    length = request.content_length
    return (bool(request.max_form_memory_size) and length is not None
            and (not body_limit or length <= body_limit))


def handle_http_exception(err):
    if err.code == 413 and _form_field_too_large():
        limit = int(request.max_form_memory_size)
        message = _("A form field is larger than this server accepts (%(limit)d bytes).", limit=limit)
    elif err.code == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        message = (_("The upload is larger than this server accepts (%(limit)d bytes).", limit=int(limit))
                   if limit else _("The upload is larger than this server accepts."))
    else:
        message = HTTP_MESSAGES.get(err.code) or err.description or err.name
    response = error_response(message, err.code or 500, HTTP_CODES.get(err.code, "http_error"))
    if err.code == 405 and getattr(err, "valid_methods", None):
        response.headers["Allow"] = ", ".join(err.valid_methods)
    return response


# Seconds a client is asked to wait when the database cannot be reached.
STORAGE_RETRY_AFTER = 5
DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
DISK_FULL_SQLSTATE = "53100"  # PostgreSQL: disk_full


def storage_error(exc):
    """The APIError a storage failure should answer (507 disk full, 503 database unavailable), or None.

    SQLAlchemy's OperationalError and InterfaceError are the database's own failures (gone, refused,
    locked past the timeout, unopenable), and so are any database error SQLAlchemy saw as a lost
    connection and its pool running out of connections while the database restarts; other database
    errors are bugs and stay 500s."""
    from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        return APIError(_("The server's disk is full; try again later."), 507, "storage_full")
    lost = isinstance(exc, (DisconnectionError, PoolTimeout)) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated) or (
        # The rate-limit counters' own SQLite file (app/storage/counters.py), busy past its timeout.
        isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc))
    if lost or isinstance(exc, (OperationalError, InterfaceError)):
        orig = getattr(exc, "orig", None)
        text = str(orig).lower()
        if (getattr(orig, "sqlstate", None) == DISK_FULL_SQLSTATE or "disk is full" in text
                or "no space left" in text):
            return APIError(_("The server's disk is full; try again later."), 507, "storage_full")
        err = APIError(_("The server's storage is unavailable for now; try again later."), 503,
                       "storage_unavailable")
        err.headers["Retry-After"] = str(STORAGE_RETRY_AFTER)
        return err
    return None


def handle_unexpected(err):
    answer = storage_error(err)
    if answer is not None:
        # The operator's log says what failed; the client learns only that storage did.
        log.error("storage failure (%s %s): %s", answer.status, answer.code, err)
        return handle_api_error(answer)
    # Never leak a traceback to the client; the log keeps it for the operator.
    log.exception("unhandled error")
    return error_response(_("Internal server error."), 500, "internal_error")


def init_app(app):
    """Register the JSON error handlers on `app`."""
    app.register_error_handler(APIError, handle_api_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)
