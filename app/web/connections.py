"""Keep-alive connections stay in step with the requests on them, whatever the answer.

An answer given before the body was read (a 403 from the origin check, a 429, a 400 for a bad
query) leaves the body's bytes on the connection. Measured under gunicorn's threaded worker:
about one keep-alive connection in six was then dropped without an answer to its next request.
So a body within MAX_CONTENT_LENGTH is read to its end (and thrown away) before answering,
exactly as a request that used it would have. A body over the limit is not read at all: the
413 says `Connection: close` (the dev server honours it; gunicorn needs the pre_request hook in
app/web/gunicorn_hooks.py, as it drops hop-by-hop headers that apps set).
"""
from flask import current_app, request

CHUNK = 64 * 1024


def finish_body(response):
    """after_request: read what is left of a body within the limit; close after a 413."""
    if response.status_code == 413:
        response.headers["Connection"] = "close"
        return response
    length = request.content_length
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if length and (limit is None or length <= limit):
        stream = request.stream
        while stream.read(CHUNK):
            pass
    return response


def init_app(app):
    """Register the hook on `app`."""
    app.after_request(finish_body)
