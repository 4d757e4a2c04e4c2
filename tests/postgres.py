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


@contextlib.contextmanager
def postgres_server():
    """Start PostgreSQL on 127.0.0.1:<free port>; yields a function name -> SQLAlchemy URL of a new database."""
    import psycopg

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
    subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options,
                    "-w", "-t", "60", "start"], check=True, capture_output=True, env=env)
    counter = [0]

    def new_database():
        counter[0] += 1
        name = f"faces_test_{counter[0]}"
        with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql+psycopg://postgres@127.0.0.1:{port}/{name}"

    try:
        yield new_database
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True, env=env)
        shutil.rmtree(base, ignore_errors=True)
