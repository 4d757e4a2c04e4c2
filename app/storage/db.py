"""The database: one engine per process, sessions, and the schema brought up to date on first use.

SQLite by default, one file inside the report folder (`<REPORT_DIR>/faces.sqlite3`, so the
Docker volume that keeps reports keeps it too), in WAL mode so readers never wait for a
writer; PostgreSQL when `FLASK_DATABASE_URL` names one (`postgresql+psycopg://...`), for several
app instances behind one proxy. The first process to touch the database runs the Alembic
migrations and imports report files written before the database existed, under a lock that
the other processes wait on (a file lock for SQLite, an advisory lock for PostgreSQL).
"""
import contextlib
import fcntl
import threading
from pathlib import Path

from sqlalchemy import create_engine, event, select, text
from sqlalchemy.orm import Session

from app import process_state
from app.config import resolve_path

SQLITE_NAME = "faces.sqlite3"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_PG_LOCK_KEY = 7_140_214  # any constant: the advisory lock that serialises migrations

_lock = threading.Lock()


def database_url(config):
    """The configured DATABASE_URL, else SQLite in the report folder."""
    url = config.get("DATABASE_URL")
    if url:
        return str(url)
    return f"sqlite:///{resolve_path(config['REPORT_DIR']) / SQLITE_NAME}"


def _sqlite_pragmas(timeout):
    def on_connect(dbapi_connection, _record):
        # pysqlite's own transaction handling is switched off so that `begin` below decides.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")  # an acknowledged write survives a power cut too
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        cursor.close()
    return on_connect


def _sqlite_begin(conn):
    # Writers take the write lock at BEGIN: two read-then-write transactions can then never
    # deadlock (SQLite would fail one at once with "database is locked").
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")


def make_engine(url, timeout=30):
    """An engine for `url` with this project's SQLite settings (WAL, foreign keys, busy timeout);
    `timeout`: seconds to wait for SQLite's lock or a PostgreSQL connection."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": timeout})
        event.listen(engine, "connect", _sqlite_pragmas(timeout))
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    # pre-ping: a connection the server dropped (a restart) is replaced, not handed to a request.
    return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": max(1, int(timeout))})


@contextlib.contextmanager
def _migration_lock(engine):
    if engine.dialect.name == "sqlite":
        lock_path = Path(engine.url.database + ".lock")
        with open(lock_path, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
    elif engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
                conn.commit()
    else:
        yield


def upgrade(engine):
    """Run the Alembic migrations up to head on `engine`."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def schema_revision(engine):
    """The Alembic revision the database is at (None before the first migration)."""
    from alembic.runtime.migration import MigrationContext
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def prepare(engine, report_dir):
    """Migrate the schema and import report files not yet in the database (once per process start)."""
    from app.storage import reports
    with _migration_lock(engine):
        upgrade(engine)
        with Session(engine.execution_options(write=True)) as session, session.begin():
            reports.import_report_files(session, report_dir)


def _state(app):
    return process_state.of(app, "db", lambda: {"engine": None})


def get_engine(app):
    """This process's engine for `app`, the schema ready (migrated and imported on first call)."""
    state = _state(app)
    if state["engine"] is None:
        with _lock:
            if state["engine"] is None:
                engine = make_engine(database_url(app.config), float(app.config.get("DATABASE_TIMEOUT") or 30))
                try:
                    prepare(engine, resolve_path(app.config["REPORT_DIR"]))
                except BaseException:
                    engine.dispose()  # the next request tries again from the start
                    raise
                state["engine"] = engine
    return state["engine"]


@contextlib.contextmanager
def session(app, write=False):
    """A Session in one transaction: committed when the block ends, rolled back on error."""
    engine = get_engine(app)
    with Session(engine.execution_options(write=write), expire_on_commit=False) as s, s.begin():
        yield s


def ping(app):
    """Raise (OperationalError and kin) unless the database answers a trivial query."""
    with get_engine(app).connect() as conn:
        conn.execute(text("SELECT 1"))


def counters(app):
    """{key: value} of every version counter: one cheap query, run per request by the live views."""
    from app.storage.models import Counter
    with session(app) as s:
        return dict(s.execute(select(Counter.key, Counter.value)).all())


def dispose(app):
    """Close this process's connections (tests, and before a fork)."""
    state = app.extensions.get("db")
    if state and state.get("engine") is not None:
        state["engine"].dispose()
        state["engine"] = None
