"""A throw-away PostgreSQL cluster for the tests: ``initdb`` in a temporary folder owned by this test
run, ``pg_ctl start`` on a free 127.0.0.1 port with password (SCRAM) authentication, stopped and
deleted at the end of the session. As root (CI), the server runs as the ``postgres`` user, which
initdb requires. Without the binaries the tests that need it skip locally and fail in CI.

Debian's ``postgresql`` package puts ``initdb`` and ``pg_ctl`` in /usr/lib/postgresql/<major>/bin,
which is not on PATH (https://wiki.debian.org/PostgreSql)."""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

DEPLOY_EXAMPLE = Path(__file__).resolve().parents[1] / "deploy" / "dagster.yaml.example"
SERVICE_USER = "postgres"  # initdb refuses to run as root; Debian's package creates this user


def postgres_bin_dir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` are: on PATH, or in Debian's versioned folder (newest first)."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(os.path.realpath(found)).parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True):
        if Path(folder, "initdb").exists() and Path(folder, "pg_ctl").exists():
            return Path(folder)
    return None


def missing_in_ci_or_skip(what: str) -> NoReturn:
    """A service binary is absent: fail in CI (where `.ci/run` installs it), skip with the reason locally."""
    message = f"{what} is not installed (apt-get install -y {what}; .ci/run installs it)"
    if os.environ.get("CI"):  # as the browser tests read it
        pytest.fail(message)
    pytest.skip(message)


@dataclass(frozen=True)
class PostgresServer:
    """A running cluster: connect with ``user``/``password`` to ``host``:``port``."""

    bin_dir: Path
    data_dir: Path
    host: str
    port: int
    user: str
    password: str

    def url(self, database: str = "postgres", scheme: str = "postgresql") -> str:
        return f"{scheme}://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def instance_env(self, database: str) -> dict[str, str]:
        """The variables deploy/dagster.yaml.example reads, for its storage in ``database`` here."""
        return {
            "DAGSTER_PG_USER": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_DB": database,
        }

    def create_database(self, name: str) -> str:
        """A new empty database (its name returned), so each test gets storage of its own."""
        env = {**os.environ, "PGPASSWORD": self.password}
        createdb = shutil.which("createdb", path=str(self.bin_dir)) or "createdb"
        subprocess.run([createdb, "-h", self.host, "-p", str(self.port), "-U", self.user, name], env=env, check=True, capture_output=True)
        return name


def shipped_home(folder: Path) -> Path:
    """A DAGSTER_HOME in ``folder`` holding deploy/dagster.yaml.example as shipped: nothing edited."""
    home = folder / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY_EXAMPLE, home / "dagster.yaml")
    return home


def _as_service_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", SERVICE_USER, "--", *command] if os.geteuid() == 0 else command


@contextmanager
def throwaway_postgres(bin_dir: Path) -> Iterator[PostgresServer]:
    """A new cluster on a free 127.0.0.1 port, stopped and deleted on exit (the fixture's, and the benchmarks')."""
    # not under pytest's basetemp: that folder is private to root, and the server runs as postgres
    root = Path(tempfile.mkdtemp(prefix="activation-pg-"))
    data_dir, password = root / "data", secrets.token_urlsafe(16)
    (root / "pwfile").write_text(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(root, SERVICE_USER)
        shutil.chown(root / "pwfile", SERVICE_USER)
    initdb = [str(bin_dir / "initdb"), "-D", str(data_dir), "-U", "activation", "-A", "scram-sha-256", f"--pwfile={root / 'pwfile'}"]
    subprocess.run(_as_service_user(initdb), check=True, capture_output=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    start = [str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-l", str(root / "server.log"), "-o", options, "-w", "start"]
    started = subprocess.run(_as_service_user(start), capture_output=True, text=True)
    if started.returncode != 0:
        log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"pg_ctl start failed: {started.stdout}{started.stderr}{log[-2000:]}")
    try:
        yield PostgresServer(bin_dir, data_dir, "127.0.0.1", port, "activation", password)
    finally:
        subprocess.run(_as_service_user([str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        missing_in_ci_or_skip("postgresql")
    with throwaway_postgres(bin_dir) as server:
        yield server
