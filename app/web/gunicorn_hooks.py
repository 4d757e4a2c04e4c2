"""gunicorn server hooks: the part of the app's limits that only the server can enforce.

gunicorn drops hop-by-hop headers a WSGI app sets, `Connection: close` included, and keeps the
connection alive after any answer. When the app refuses a body it did not read (413: larger
than MAX_CONTENT_LENGTH), the unread bytes would then be parsed as the next request on that
connection, which stalls until the keep-alive timeout and is dropped. So a request announcing
a body over the limit, or one sent in chunks (its size is unknown until read, and the app
stops reading at the limit), is marked to close once answered. gunicorn.conf.py imports this.
"""
import json
import os

DEFAULT_MAX_CONTENT_LENGTH = 16 * 1024 * 1024


def max_content_length():
    """FLASK_MAX_CONTENT_LENGTH as the app reads it (a JSON number), else the app's default."""
    try:
        return int(json.loads(os.environ.get("FLASK_MAX_CONTENT_LENGTH", "")))
    except (ValueError, TypeError):
        return DEFAULT_MAX_CONTENT_LENGTH


def pre_request(worker, req):
    """Close the connection after answering a request whose body the app may leave unread."""
    headers = dict(req.headers)  # gunicorn refuses repeated Content-Length and Transfer-Encoding
    length = headers.get("CONTENT-LENGTH")
    chunked = "chunked" in headers.get("TRANSFER-ENCODING", "").lower()
    if chunked or (length is not None and int(length) > max_content_length()):
        req.force_close()
