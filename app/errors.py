"""One JSON error shape for every failure: {"error": {"code", "message"}}."""
import logging

from flask import current_app, jsonify
from werkzeug.exceptions import HTTPException

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


class APIError(Exception):
    """An error the client should see, with its HTTP status and a stable code."""

    def __init__(self, message, status=400, code="bad_request"):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.headers = {}  # e.g. Retry-After on a 503 (app/web/admission.py)


def error_response(message, status, code):
    """A JSON error response."""
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    return response


def handle_api_error(err):
    response = error_response(err.message, err.status, err.code)
    if getattr(err, "retry_after", None):
        response.headers["Retry-After"] = str(int(err.retry_after))
    response.headers.update(getattr(err, "headers", None) or {})
    return response


def handle_http_exception(err):
    if err.code == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        message = "The upload is larger than this server accepts" + (f" ({limit} bytes)." if limit else ".")
    else:
        message = err.description or err.name
    response = error_response(message, err.code or 500, HTTP_CODES.get(err.code, "http_error"))
    if err.code == 405 and getattr(err, "valid_methods", None):
        response.headers["Allow"] = ", ".join(err.valid_methods)
    return response


def handle_unexpected(err):
    # Never leak a traceback to the client; the log keeps it for the operator.
    log.exception("unhandled error")
    return error_response("Internal server error.", 500, "internal_error")


def init_app(app):
    """Register the JSON error handlers on `app`."""
    app.register_error_handler(APIError, handle_api_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)
