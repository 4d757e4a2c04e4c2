"""What clients read, in their language: the API's error messages follow Accept-Language.

Messages are marked with `_("... %(name)s ...", name=value)`: pybabel extracts them (babel.cfg),
app/translations/<locale>/LC_MESSAGES/messages.po holds their translations and scripts/setup.sh
compiles those to .mo files. `_` does not translate at once: it returns a Message, whose str() is
the English text (for logs, exceptions and anything outside a request) and whose translated() is
the text in the request's language, chosen when the error response is written (app/errors.py).
Placeholders are named, so a translation may put them in any order.
"""
from pathlib import Path

from flask import has_request_context, request

TRANSLATIONS = Path(__file__).resolve().parent / "translations"
DEFAULT_LOCALE = "en"
LOCALES = ("en", "zh_Hans", "ja")


class Message:
    """A translatable message and the values of its named placeholders."""

    __slots__ = ("msgid", "params")

    def __init__(self, msgid, params):
        self.msgid = msgid
        self.params = params

    def __str__(self):
        return self.msgid % self.params if self.params else self.msgid

    def __repr__(self):
        return f"Message({str(self)!r})"

    def translated(self):
        """The text in the current request's language (English outside a request)."""
        if not has_request_context():
            return str(self)
        from flask_babel import gettext
        params = {key: translate(value) if isinstance(value, Message) else value
                  for key, value in self.params.items()}
        return gettext(self.msgid, **params)


def _(msgid, **params):
    """Mark `msgid` for translation; `params` fill its %(name)s placeholders."""
    return Message(msgid, params)


def translate(message):
    """A Message in the request's language; any other value as text, unchanged."""
    return message.translated() if isinstance(message, Message) else str(message)


def message_of(exc):
    """The Message an exception was raised with (str(exc) when it was plain text)."""
    first = exc.args[0] if len(exc.args) == 1 else None
    return first if isinstance(first, Message) else str(exc)


def locale_of(header_values):
    """The best of LOCALES for Accept-Language values [(tag, quality)], highest quality first."""
    for tag, quality in header_values:
        tag = tag.strip().lower().replace("_", "-")
        if quality <= 0:
            continue
        primary, _sep, rest = tag.partition("-")
        if tag == "*" or primary == "en":
            return "en"
        if primary == "ja":
            return "ja"
        if primary == "zh":
            # Traditional Chinese (zh-Hant, Taiwan, Hong Kong, Macao) is not translated: look further.
            if any(part in ("hant", "tw", "hk", "mo") for part in rest.split("-")):
                continue
            return "zh_Hans"
    return DEFAULT_LOCALE


def select_locale():
    """Flask-Babel's locale selector: Accept-Language (no ?lang=), English by default."""
    if not has_request_context():
        return DEFAULT_LOCALE
    return locale_of(request.accept_languages)


def init_app(app):
    """Flask-Babel on `app`: catalogs from app/translations, the locale from Accept-Language."""
    from flask_babel import Babel
    Babel(app, locale_selector=select_locale, configure_jinja=False,
          default_translation_directories=str(TRANSLATIONS))
