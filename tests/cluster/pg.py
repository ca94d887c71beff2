"""A throw-away PostgreSQL server (initdb in a temp dir, a free loopback port), for the cluster tests and
bench/bench_cluster.py. initdb refuses to run as root, so as root the server runs as the `postgres` user."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg


class PostgresMissing(Exception):
    pass


def _bindir() -> Path:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not versions:
        raise PostgresMissing("PostgreSQL is not installed (initdb not found): run ./scripts/setup")
    return versions[-1].parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Postgres:
    bindir: Path
    datadir: Path
    port: int
    user: str | None  # run as this system user (when we are root)

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"

    def _run(self, *args: str, timeout: float = 60) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        subprocess.run(cmd, check=True, capture_output=True, timeout=timeout, user=self.user)

    def start(self) -> None:
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.datadir} -c fsync=off " \
               "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.datadir), "-l", str(self.datadir / "log"), "-o", opts, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def new_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.dsn(name)



def start_postgres() -> Postgres:
    """initdb + start; stop with stop_postgres()."""
    user = "postgres" if os.geteuid() == 0 else None
    if user:
        try:
            pwd.getpwnam(user)
        except KeyError:
            raise PostgresMissing("running as root needs the `postgres` system user (Debian's postgresql "
                                  "package makes it)") from None
    root = Path(tempfile.mkdtemp(prefix="ftsd-pg-"))
    datadir = root / "data"
    datadir.mkdir(mode=0o700)
    if user:
        shutil.chown(root, user)
        shutil.chown(datadir, user)
    pg = Postgres(_bindir(), datadir, free_port(), user)
    pg._run("initdb", "-D", str(datadir), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
    pg.start()
    return pg


def stop_postgres(pg: Postgres) -> None:
    try:
        pg.stop("immediate")
    finally:
        shutil.rmtree(pg.datadir.parent, ignore_errors=True)
