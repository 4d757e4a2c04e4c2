"""A private PostgreSQL server for tests: its own data folder in /tmp, loopback only, stopped after.

Uses the machine's PostgreSQL binaries (Debian's postgresql package: /usr/lib/postgresql/N/bin,
or initdb/pg_ctl on PATH). PostgreSQL refuses to run as root, so under root the server runs as
`nobody`.
"""
import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from servers import free_port


def binaries():
    """The folder holding initdb and pg_ctl, or None."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(os.path.realpath(found)).parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(folder, "initdb").exists() and Path(folder, "pg_ctl").exists():
            return Path(folder)
    return None


def _as_server_user():
    if os.getuid() != 0:
        return [], None
    user = pwd.getpwnam("nobody")
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"], user


class Databases:
    """Calling it makes a fresh database's SQLAlchemy URL; stop() and start() take the server down and up
    (the fault tests: the database gone mid-run)."""

    def __init__(self, pg_ctl, port):
        self._pg_ctl, self.port, self.counter = pg_ctl, port, 0

    def __call__(self):
        import psycopg
        self.counter += 1
        name = f"faces_test_{self.counter}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self):
        """Stop the server at once (clients see their connections dropped)."""
        self._pg_ctl("-m", "immediate", "-w", "stop")

    def start(self):
        """Start it again on the same port and data."""
        self._pg_ctl("-w", "-t", "60", "start", check=True)


@contextlib.contextmanager
def postgres_server():
    """Start PostgreSQL on 127.0.0.1:<free port>; yields a Databases (call it: a new database's URL)."""
    bindir = binaries()
    prefix, user = _as_server_user()
    base = Path(tempfile.mkdtemp(prefix="faces-pg-"))
    data = base / "data"
    data.mkdir()
    if user is not None:
        for path in (base, data):
            os.chown(path, user.pw_uid, user.pw_gid)
    env = dict(os.environ, LC_ALL="C.UTF-8", LANG="C.UTF-8")
    subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                    "-E", "UTF8", "--no-sync"], check=True, capture_output=True, env=env)
    port = free_port()
    log = base / "server.log"
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off -c full_page_writes=off"

    def pg_ctl(*args, check=False):
        before = [] if "stop" in args else ["-l", str(log), "-o", options]
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), *before, *args],
                       check=check, capture_output=True, env=env)

    pg_ctl("-w", "-t", "60", "start", check=True)
    try:
        yield Databases(pg_ctl, port)
    finally:
        pg_ctl("-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)
