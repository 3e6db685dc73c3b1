"""Real pipelines: a throwaway PostgreSQL server and one Meltano project per test session.

Both are expensive, so they are session-scoped: PostgreSQL starts once (as an unprivileged
OS user when the tests run as root, since postgres refuses root), and the Meltano project,
a copy of the repository's meltano.yml whose loader is this checkout's `target-usage`,
installs its extractors once. What cannot be had (no PostgreSQL binaries, no meltano) skips
the tests, or fails them when TARGET_USAGE_REQUIRE_INTEGRATION=1 (as .ci/run sets).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml

from tests.harness import clean_env

REPO = Path(__file__).resolve().parents[2]
REQUIRE_ENV = "TARGET_USAGE_REQUIRE_INTEGRATION"
PG_USER = "usage"
PG_PASSWORD = "usage-test-password"  # a throwaway local server
# Not UTC on purpose: timestamptz columns reach the target with a +05:30 offset.
PG_TIMEZONE = "Asia/Kolkata"
MELTANO_TIMEOUT_SECONDS = 600
# Variables that would leak the caller's settings into the pipelines under test.
LEAKY_PREFIXES = ("TAP_POSTGRES_", "TAP_JSONL_", "MELTANO_")


def unavailable(reason: str) -> NoReturn:
    """Skip, or fail when the environment promises the integration tests can run."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1, so this is a failure, not a skip)")
    pytest.skip(reason)


def venv_executable(name: str) -> str | None:
    """`name` beside this interpreter (the tested install), else on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def meltano_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The harness's clean environment, without the taps' and Meltano's settings either."""
    env = clean_env(drop=LEAKY_PREFIXES)
    # The venv's bin first, so the plugins' `python` and our `target-usage` are the tested ones.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **(extra or {})}


# PostgreSQL


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    password: str
    database: str = "postgres"

    def tap_env(self, database: str) -> dict[str, str]:
        """tap-postgres settings, as Meltano reads them from the environment."""
        return {
            "TAP_POSTGRES_HOST": self.host,
            "TAP_POSTGRES_PORT": str(self.port),
            "TAP_POSTGRES_USER": self.user,
            "TAP_POSTGRES_PASSWORD": self.password,
            "TAP_POSTGRES_DATABASE": database,
        }

    def connect(self, database: str | None = None) -> Any:
        import psycopg

        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=database or self.database,
            autocommit=True,
        )


def _postgres_bindir() -> Path | None:
    def version(initdb: Path) -> int:
        name = initdb.parent.parent.name
        return int(name) if name.isdigit() else 0

    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=version)
    if found:
        return found[-1].parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _run_as() -> tuple[list[str], int | None, int | None]:
    """Command prefix, uid and gid to run the server unprivileged (postgres refuses root)."""
    if os.geteuid() != 0:
        return [], None, None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            user = pwd.getpwnam(name)
            return ["runuser", "-u", name, "--"], user.pw_uid, user.pw_gid
    unavailable("running as root, and neither a 'postgres' nor a 'nobody' user exists")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL server on a free loopback port, in a temporary directory, torn down after."""
    bindir = _postgres_bindir()
    if bindir is None:
        unavailable("PostgreSQL server binaries not found (apt-get install postgresql)")
    if importlib.util.find_spec("psycopg") is None:
        unavailable("psycopg is not installed (pip install -e '.[test]')")
    prefix, uid, gid = _run_as()
    root = Path(tempfile.mkdtemp(prefix="target-usage-pg-"))
    data, log, pwfile = root / "data", root / "server.log", root / "password"
    pwfile.write_text(PG_PASSWORD + "\n")
    if uid is not None:
        for path in (root, pwfile):
            os.chown(path, uid, gid)

    def pg(tool: str, *args: str) -> None:
        done = subprocess.run(
            [*prefix, str(bindir / tool), *args], capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            server_log = log.read_text() if log.exists() else ""
            pytest.fail(f"{tool} failed:\n{done.stdout}\n{done.stderr}\n{server_log}")

    port = _free_port()
    try:
        pg(
            "initdb",
            *("-D", str(data), "-U", PG_USER, "--pwfile", str(pwfile)),
            *("--auth", "scram-sha-256", "--encoding", "UTF8", "--locale", "C", "--no-sync"),
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c timezone={PG_TIMEZONE} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        pg("pg_ctl", "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
        try:
            yield Postgres("127.0.0.1", port, PG_USER, PG_PASSWORD)
        finally:
            pg("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def location(postgres: Postgres) -> Iterator[str]:
    """A fresh, empty database's URL, as a user would write it in `ledger`."""
    database = f"ledger_{uuid.uuid4().hex[:12]}"
    with postgres.connect() as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    yield (
        f"postgresql://{postgres.user}:{postgres.password}@{postgres.host}:{postgres.port}"
        f"/{database}"
    )
    with postgres.connect() as conn:
        conn.execute(f'DROP DATABASE "{database}" WITH (FORCE)')


# Meltano


@dataclass
class MeltanoProject:
    """A copy of the repository's Meltano project, plugins installed, run with `meltano`."""

    root: Path
    meltano: str
    # Settings every run of the current test gets: its own ledger (see `own_ledger`).
    env: dict[str, str] = field(default_factory=dict)

    def run(
        self, *args: str, env: Mapping[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [self.meltano, *args],
            cwd=self.root,
            env=meltano_env({**self.env, **(env or {})}),
            capture_output=True,
            text=True,
            timeout=MELTANO_TIMEOUT_SECONDS,
        )
        if check and done.returncode != 0:
            pytest.fail(
                f"meltano {' '.join(args)} exited {done.returncode}:\n"
                f"{done.stdout[-4000:]}\n{done.stderr[-8000:]}"
            )
        return done

    def executable(self, plugin_type: str, name: str) -> str:
        return str(self.root / ".meltano" / plugin_type / name / "venv" / "bin" / name)


def project_copy(destination: Path) -> Path:
    """meltano.yml and the sample files, the loader swapped for this checkout's install.

    Meltano would `pip install -e .` the loader into a venv of its own; pointing it at the
    `target-usage` installed beside this interpreter tests exactly the code under test,
    and saves an install.
    """
    target = venv_executable("target-usage")
    if target is None:
        pytest.fail("target-usage is not installed beside this interpreter")
    project = yaml.safe_load((REPO / "meltano.yml").read_text())
    (loader,) = (p for p in project["plugins"]["loaders"] if p["name"] == "target-usage")
    del loader["pip_url"]
    loader["executable"] = target
    destination.mkdir(parents=True, exist_ok=True)
    (destination / "meltano.yml").write_text(yaml.safe_dump(project, sort_keys=False))
    shutil.copytree(REPO / "examples", destination / "examples")
    return destination


@pytest.fixture(scope="session")
def meltano_project(tmp_path_factory: pytest.TempPathFactory) -> MeltanoProject:
    """The project with tap-jsonl and tap-postgres installed, once per test session."""
    meltano = venv_executable("meltano")
    if meltano is None:
        unavailable("meltano is not installed (pip install -e '.[test]')")
    project = MeltanoProject(project_copy(tmp_path_factory.mktemp("meltano") / "project"), meltano)
    started = time.monotonic()
    project.run("install")
    print(f"meltano install: {time.monotonic() - started:.1f}s", file=sys.stderr)
    return project


@pytest.fixture(autouse=True)
def own_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Each test's pipelines share a ledger of their own, never the session project's file,
    so no test finds what another delivered already recorded as unchanged."""
    if "meltano_project" in request.fixturenames:
        project: MeltanoProject = request.getfixturevalue("meltano_project")
        project.env = {"TARGET_USAGE_LEDGER": str(tmp_path / "ledger.sqlite")}
