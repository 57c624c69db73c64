"""A throwaway PostgreSQL server for the tests, from Debian's postgresql package.

Started once per test session on 127.0.0.1 with a private data directory and socket; each test
gets its own database cloned from a migrated template, and the server is stopped at the end.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

NO_SERVER = ("PostgreSQL server binaries were not found under /usr/lib/postgresql/*/bin. "
             "Run the suite with ./scripts/test, which installs Debian's postgresql package.")


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    def __init__(self) -> None:
        bindir = _bin_dir()
        if bindir is None:
            raise RuntimeError(NO_SERVER)
        self.bindir = bindir
        self.workdir = Path(tempfile.mkdtemp(prefix="csmm-pg-"))
        self.datadir = self.workdir / "data"
        self.port = _free_port()
        # PostgreSQL refuses to run as root: run it as the postgres user the package creates.
        self.user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        if os.geteuid() == 0:
            shutil.chown(self.workdir, user="postgres")
        self._template_ready = False
        self._counter = 0

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd="/")

    def start(self) -> None:
        self._run("initdb", "-D", str(self.datadir), "-A", "trust", "-U", self.user, "--no-sync")
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.workdir} "
                   f"-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300")
        self._run("pg_ctl", "-D", str(self.datadir), "-o", options, "-l", str(self.workdir / "log"), "-w", "start")
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.admin_dsn, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.datadir), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def admin_dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user={self.user} dbname=postgres"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def _execute(self, sql: str) -> None:
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(sql)

    def fresh_database(self, migrate_template: "callable[[str], None]") -> str:  # type: ignore[valid-type]
        """A new empty-but-migrated database, cloned from a template migrated once."""
        if not self._template_ready:
            self._execute("CREATE DATABASE csmm_template")
            migrate_template(self.url("csmm_template"))
            self._template_ready = True
        self._counter += 1
        name = f"csmm_test_{os.getpid()}_{self._counter}"
        self._execute(f"CREATE DATABASE {name} TEMPLATE csmm_template")
        return self.url(name)

    def empty_database(self) -> str:
        self._counter += 1
        name = f"csmm_empty_{os.getpid()}_{self._counter}"
        self._execute(f"CREATE DATABASE {name}")
        return self.url(name)
