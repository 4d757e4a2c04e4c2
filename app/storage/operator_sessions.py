"""Operator sessions on the server: the cookie holds a random secret, the database its sha256 and
expiry. Signing out deletes the row, so a copy of the cookie made before is worth nothing after."""
import datetime
import hashlib
import secrets

from sqlalchemy import delete, select

from app.storage.models import OperatorSession, utcnow


def _key(secret):
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()


def open_session(session, lifetime_s):
    """A new session's secret (for the cookie), valid `lifetime_s` seconds; expired rows are dropped."""
    now = utcnow()
    session.execute(delete(OperatorSession).where(OperatorSession.expires < now))
    secret = secrets.token_urlsafe(32)
    session.add(OperatorSession(id=_key(secret), created=now,
                                expires=now + datetime.timedelta(seconds=lifetime_s)))
    return secret


def is_open(session, secret):
    """True while the session of this secret exists and has not expired."""
    if not isinstance(secret, str) or not secret:
        return False
    expires = session.scalar(select(OperatorSession.expires).where(OperatorSession.id == _key(secret)))
    if expires is None:
        return False
    if expires.tzinfo is None:  # SQLite hands datetimes back without their offset
        expires = expires.replace(tzinfo=datetime.UTC)
    return expires > utcnow()


def close(session, secret):
    """Delete the session of this secret (sign-out); nothing if there is none."""
    if isinstance(secret, str) and secret:
        session.execute(delete(OperatorSession).where(OperatorSession.id == _key(secret)))
