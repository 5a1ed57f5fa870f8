"""A throw-away PostgreSQL server for tests and benchmarks: one primitive, used by both.

`PostgresServer` runs Debian's server binaries (`initdb`, `pg_ctl`) in a temporary folder, on a
free port on 127.0.0.1 and a Unix socket in that folder, with trust authentication, and removes
everything on `stop()`.  PostgreSQL refuses to run as root, so under root the server runs as the
unprivileged `postgres` account (Debian's package creates it); otherwise it runs as the caller.

    with PostgresServer() as pg:
        url = pg.create_database("gradebook")   # postgresql+psycopg2://postgres@127.0.0.1:PORT/gradebook

The binaries are looked up on PATH, then in /usr/lib/postgresql/<version>/bin (where Debian's
`postgresql` package puts them without adding them to PATH).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

SERVER_ACCOUNT = "postgres"


class PostgresUnavailable(RuntimeError):
    """The server binaries or the account they must run as are missing."""


def find_binary(name: str) -> str:
    """Path of a PostgreSQL server binary, or PostgresUnavailable saying how to install it."""
    found = shutil.which(name)
    if found:
        return found
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / name).exists():
            return str(folder / name)
    raise PostgresUnavailable(
        f"PostgreSQL's {name} was not found on PATH or in /usr/lib/postgresql/*/bin; "
        "install the server with `apt-get install postgresql` (`sudo make test-setup` does this)")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresServer:
    """One PostgreSQL server in a temporary folder; a context manager that stops and removes it."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="coursekit-pg-"))
        self.data = self.folder / "data"
        self._as_root = os.geteuid() == 0
        self._started = False

    def _run(self, *argv: str) -> None:
        """Run a server binary, as `postgres` when we are root."""
        if self._as_root:
            try:
                account = pwd.getpwnam(SERVER_ACCOUNT)
            except KeyError as exc:
                raise PostgresUnavailable(
                    "PostgreSQL refuses to run as root and there is no 'postgres' account; "
                    "install Debian's postgresql package, which creates it") from exc
            command = ["runuser", "-u", SERVER_ACCOUNT, "--", *argv]
            os.chown(self.folder, account.pw_uid, account.pw_gid)
        else:
            command = list(argv)
        subprocess.run(command, check=True, capture_output=True, text=True, cwd="/")

    def start(self) -> PostgresServer:
        self._run(find_binary("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8")
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c max_connections=200")
        self._run(find_binary("pg_ctl"), "-D", str(self.data), "-o", options,
                  "-l", str(self.folder / "server.log"), "-w", "start")
        self._started = True
        return self

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL of a database on this server (nbgrader and coursekit accept it)."""
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create a database (empty, or a copy of the database `template`); its SQLAlchemy URL.

        Copying a template is how a test gets a fresh gradebook in milliseconds instead of running
        `nbgrader generate_assignment` again; the template must have no open connection.
        """
        import psycopg2  # imported here: only callers that start a server need the driver

        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres",
                                      dbname="postgres")
        connection.autocommit = True
        with connection.cursor() as cursor:
            copy = f' TEMPLATE "{template}"' if template else ""
            cursor.execute(f'CREATE DATABASE "{name}"{copy}')
        connection.close()
        return self.url(name)

    def stop(self) -> None:
        if self._started:
            self._run(find_binary("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
            self._started = False
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
