"""Anime face identification and cutout web app."""
from flask import Flask

from app.config import DEFAULTS

# Applied to the page: opencv.js needs eval (embind) and WebAssembly compilation, and fetches
# its inlined WASM from a data: URL. Nothing else is loosened; no inline scripts or handlers.
PAGE_CSP = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval' 'unsafe-eval'; "
            "connect-src 'self' data:; img-src 'self' data: blob:; style-src 'self'; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# Everything else (JSON, PNG, static files) never needs to run anything.
OTHER_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"


def create_app(config=None):
    """Application factory: defaults, then FLASK_* environment variables, then `config`."""
    app = Flask(__name__, static_folder="../static", template_folder="../templates")
    app.config.from_mapping(DEFAULTS)
    app.config.from_prefixed_env()
    if config:
        app.config.update(config)

    if app.config.get("PROXY_FIX"):
        from werkzeug.middleware.proxy_fix import ProxyFix
        # Exactly one trusted hop: the reverse proxy in front of us.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_prefix=1)

    from app import commands, errors
    from app.web import api, auth, characters, pages, review
    errors.init_app(app)
    auth.init_app(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(characters.bp)
    app.register_blueprint(review.bp)
    app.after_request(security_headers)
    commands.init_app(app)
    return app


def security_headers(response):
    """CSP and friends on every response."""
    is_page = response.mimetype == "text/html"
    response.headers.setdefault("Content-Security-Policy", PAGE_CSP if is_page else OTHER_CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")
    return response
