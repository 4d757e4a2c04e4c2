"""Anime face identification and cutout web app."""
from flask import Flask


def create_app(config=None):
    """Application factory: defaults, then FLASK_* environment variables, then `config`."""
    app = Flask(__name__, static_folder="../static", template_folder="../templates")
    app.config.from_prefixed_env()
    if config:
        app.config.update(config)
    from app import cli
    cli.init_app(app)
    return app
