"""Anime face identification and cutout web app."""
from flask import Flask

from app.config import DEFAULTS

# Applied to the page: only its own scripts and its detection worker; no eval, no inline scripts
# or handlers. OpenCV.js (which needs eval and WebAssembly) runs in the worker, under the policy
# sent with the worker's script (app/web/static_files.py). A pasted or dropped picture link is
# fetched by the browser itself (where the other site allows it, CORS): connect-src takes web links.
# A dropped clip plays from its object URL: media-src takes blob:.
PAGE_CSP = ("default-src 'self'; script-src 'self'; worker-src 'self'; connect-src 'self' http: https:; "
            "img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self'; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'")
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
        from app.web.proxy import TrustedProxyFix
        # Exactly one trusted hop: the reverse proxy in front of us, when the request comes from it.
        app.wsgi_app = TrustedProxyFix(app.wsgi_app, app.config["PROXY_TRUSTED"])

    from app import commands, errors, i18n
    from app.jobs import kinds
    from app.web import (
        api,
        auth,
        characters,
        connections,
        jobs,
        memory,
        origin,
        pages,
        ratelimit,
        review,
        static_files,
        teach,
    )
    errors.init_app(app)
    i18n.init_app(app)  # error messages in the client's language (Accept-Language)
    connections.init_app(app)
    memory.init_app(app)
    origin.init_app(app)  # before the rate limiter: a refused cross-site post costs no quota
    auth.init_app(app)
    # A name may begin with "/" (the label policy allows it): /api/characters/%2Fx must reach the
    # route, not be redirected to /api/characters/x.
    app.url_map.merge_slashes = False
    app.register_blueprint(pages.bp)
    app.register_blueprint(static_files.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(characters.bp)
    app.register_blueprint(review.bp)
    app.register_blueprint(jobs.bp)
    app.register_blueprint(teach.bp)
    ratelimit.init_app(app)
    app.after_request(security_headers)
    commands.init_app(app)
    kinds.init_app(app)
    remove_stale_temp_files(app)
    return app


def remove_stale_temp_files(app):
    """Temporary files a killed writer left (older than a minute) in the report and model folders."""
    from app.config import model_path, resolve_path
    from app.storage.files import remove_stale_temp
    # The report folder two levels down: images/<ab>/, models/<version>/, jobs/.
    folders = [(resolve_path(app.config["REPORT_DIR"]), 2), (resolve_path(app.config["MODEL_DIR"]), 2),
               *((model_path(app.config, key).parent, 1) for key in ("CLASSIFIER_MODEL", "CUTOUT_MODEL"))]
    for folder, depth in folders:
        for path in remove_stale_temp(folder, depth=depth):
            app.logger.warning("removed %s, left by an interrupted write", path)


def security_headers(response):
    """CSP and friends on every response."""
    is_page = response.mimetype == "text/html"
    response.headers.setdefault("Content-Security-Policy", PAGE_CSP if is_page else OTHER_CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")
    return response
