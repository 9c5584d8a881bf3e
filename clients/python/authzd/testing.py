"""A pytest plugin that runs a real authzd for a test session.

Enable it in a ``conftest.py`` with ``pytest_plugins = ["authzd.testing"]``. The session-wide
fixture ``authzd_server`` builds ``./cmd/authzd`` of the authzd tree this package sits in (or
runs ``AUTHZD_BIN``), on fresh databases ``authz_pytest_<hex>`` and ``authz_pytest_<hex>_spicedb``
of the Postgres server of ``AUTHZ_TEST_DATABASE_URL`` (default: the local one, as ``make setup``
leaves it), with SpiceDB embedded, on a free 127.0.0.1 port. It waits for ``/readyz``, and at the
end stops authzd and drops both databases. Without Postgres, ``psql`` or Go it fails (never
skips) and says to run ``make setup``; when authzd does not come up it shows authzd's log.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional
from urllib.parse import urlsplit, urlunsplit

import pytest

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
READY_TIMEOUT = 120.0
BUILD_TIMEOUT = 1800.0
SETUP_HINT = "run `make setup` (it installs and starts Postgres; see CONTRIBUTING.md for Go)"


class SetupError(Exception):
    """What the environment lacks, said so that a developer can fix it."""


def _redact(url: str) -> str:
    u = urlsplit(url)
    if u.password:
        netloc = f"{u.username}:***@{u.hostname}" + (f":{u.port}" if u.port else "")
        u = u._replace(netloc=netloc)
    return urlunsplit(u)


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def _psql(server_url: str, sql: str, timeout: float = 60.0) -> None:
    psql = shutil.which("psql")
    if psql is None:
        raise SetupError(f"psql is not installed (the fixture creates its databases with it); {SETUP_HINT}")
    try:
        out = subprocess.run([psql, server_url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql],
                             capture_output=True, text=True, timeout=timeout,
                             env={**os.environ, "PGCONNECT_TIMEOUT": "5"})
    except subprocess.TimeoutExpired:
        raise SetupError(f"no answer from Postgres at {_redact(server_url)} within {timeout:g}s; {SETUP_HINT}") from None
    if out.returncode != 0:
        raise SetupError(f"Postgres at {_redact(server_url)}: {sql}: {out.stderr.strip()}; {SETUP_HINT} "
                         "or set AUTHZ_TEST_DATABASE_URL")


def _free_addr() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def _tail(path: Path, limit: int = 8192) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        return f"(no log: {e})"
    return data[-limit:].decode(errors="replace")


def find_source() -> Optional[Path]:
    """The root of the authzd tree this package (or the working directory) is in."""
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        for d in (start, *start.parents):
            if (d / "cmd" / "authzd" / "main.go").is_file() and (d / "go.mod").is_file():
                return d
    return None


def build_authzd(out_dir: Path) -> Path:
    """``AUTHZD_BIN``, or ./cmd/authzd of this tree built into out_dir."""
    if os.environ.get("AUTHZD_BIN"):
        b = Path(os.environ["AUTHZD_BIN"])
        if not os.access(b, os.X_OK):
            raise SetupError(f"AUTHZD_BIN={b} is not an executable file")
        return b
    root = find_source()
    if root is None:
        raise SetupError("no authzd source tree around this package or the working directory; "
                         "set AUTHZD_BIN to an authzd binary")
    go = shutil.which("go")
    if go is None:
        raise SetupError(f"Go is not installed, and it builds ./cmd/authzd (or set AUTHZD_BIN); {SETUP_HINT}")
    bin_path = out_dir / "authzd"
    env = dict(os.environ)
    if not env.get("GOTOOLCHAIN"):  # as the Makefile: go.mod's toolchain, which the go command fetches
        m = re.search(r"^toolchain\s+(\S+)", (root / "go.mod").read_text(), re.M)
        if m:
            env["GOTOOLCHAIN"] = m.group(1)
    try:
        out = subprocess.run([go, "build", "-o", str(bin_path), "./cmd/authzd"], cwd=root, env=env,
                             capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise SetupError(f"go build ./cmd/authzd took over {BUILD_TIMEOUT:g}s") from None
    if out.returncode != 0:
        raise SetupError(f"go build ./cmd/authzd failed:\n{out.stdout}{out.stderr}")
    return bin_path


@dataclass
class Process:
    """One running authzd."""

    url: str
    log_path: Path
    proc: subprocess.Popen[bytes] = field(repr=False)

    def log_tail(self, limit: int = 8192) -> str:
        return _tail(self.log_path, limit)

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        """Stops authzd as a deployment does (SIGTERM, then SIGKILL after ``timeout``) and waits."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@dataclass
class AuthzdServer:
    """The session's authzd: ``url``, the bootstrap ``admin_token`` (every scope), and
    ``start_replica()``, a second authzd process on the same databases that a test may stop."""

    url: str
    admin_token: str
    database_url: str
    spicedb_database_url: str
    binary: Path
    main: Process = field(repr=False)
    _dir: Path = field(repr=False)
    _replicas: list[Process] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def log_tail(self, limit: int = 8192) -> str:
        return self.main.log_tail(limit)

    def start_replica(self) -> Process:
        """Starts another authzd on this one's databases and waits until it is ready. It is stopped
        at the end of the session if the test did not stop it (``replica.stop()``)."""
        with self._lock:
            n = len(self._replicas) + 1
        p = _start(self.binary, self._env(), self._dir / f"replica-{n}.log")
        with self._lock:
            self._replicas.append(p)
        return p

    def _env(self) -> dict[str, str]:
        return {
            "AUTHZ_DATABASE_URL": self.database_url,
            "AUTHZ_ADMIN_TOKEN": self.admin_token,
            "AUTHZ_SPICEDB_DATASTORE": "postgres",
            "AUTHZ_SPICEDB_DATABASE_URL": self.spicedb_database_url,
            "AUTHZ_LOG_LEVEL": os.environ.get("AUTHZ_TEST_LOG_LEVEL", "info"),
            "AUTHZ_LOG_FORMAT": "text",
            "AUTHZ_TOKEN_CACHE_TTL": "1s",
            "AUTHZ_SHUTDOWN_TIMEOUT": "10s",
        }

    def stop(self) -> None:
        for p in [*self._replicas, self.main]:
            p.stop()


def _start(binary: Path, env: dict[str, str], log_path: Path) -> Process:
    """Runs authzd with env (the caller's own AUTHZ_* variables are not inherited) on a free port
    and waits until /readyz answers 200."""
    last = ""
    for _ in range(3):  # the free port can be taken between the probe and authzd's listen
        addr = _free_addr()
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHZ_")}
        full_env.update(env)
        full_env["AUTHZ_HTTP_ADDR"] = addr
        with open(log_path, "ab") as log:
            proc = subprocess.Popen([str(binary)], env=full_env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        p = Process(url=f"http://{addr}", log_path=log_path, proc=proc)
        err = _wait_ready(p, READY_TIMEOUT)
        if err is None:
            return p
        p.stop(5)
        last = f"{err}\nauthzd log ({log_path}), tail:\n{p.log_tail()}"
    raise SetupError(f"authzd did not become ready: {last}")


def _wait_ready(p: Process, timeout: float) -> Optional[str]:
    deadline = time.monotonic() + timeout
    err = "no answer"
    while True:
        if p.proc.poll() is not None:
            return f"authzd exited with status {p.proc.returncode} before it was ready"
        try:
            with urllib.request.urlopen(p.url + "/readyz", timeout=2) as r:
                if r.status == 200:
                    return None
                err = f"/readyz answered {r.status}"
        except urllib.error.HTTPError as e:
            err = f"/readyz answered {e.code}"
        except OSError as e:
            err = str(e)
        if time.monotonic() > deadline:
            return f"authzd at {p.url} not ready after {timeout:g}s: {err}"
        time.sleep(0.1)


def start_server(work_dir: Path) -> AuthzdServer:
    """Creates the databases, builds and starts authzd. The caller stops it and drops the databases
    (:func:`drop_databases`), also when this raises after creating them."""
    server = os.environ.get("AUTHZ_TEST_DATABASE_URL") or DEFAULT_DATABASE_URL
    _psql(server, "SELECT 1", timeout=15)
    binary = build_authzd(work_dir)
    name = "authz_pytest_" + secrets.token_hex(6)
    work_dir.joinpath("databases").write_text(f"{name}\n{name}_spicedb\n")
    _psql(server, f'CREATE DATABASE "{name}"')
    _psql(server, f'CREATE DATABASE "{name}_spicedb"')
    db, spicedb = _with_database(server, name), _with_database(server, name + "_spicedb")
    admin = "admin-" + secrets.token_urlsafe(24)
    s = AuthzdServer(url="", admin_token=admin, database_url=db, spicedb_database_url=spicedb, binary=binary,
                     main=None, _dir=work_dir)  # type: ignore[arg-type]
    s.main = _start(binary, s._env(), work_dir / "authzd.log")
    s.url = s.main.url
    return s


def drop_databases(work_dir: Path) -> None:
    server = os.environ.get("AUTHZ_TEST_DATABASE_URL") or DEFAULT_DATABASE_URL
    f = work_dir / "databases"
    if not f.exists():
        return
    for name in f.read_text().split():
        try:
            _psql(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except SetupError as e:
            print(f"authzd.testing: could not drop {name}: {e}")


_SERVER_KEY = pytest.StashKey["AuthzdServer"]() if hasattr(pytest, "StashKey") else None


@pytest.fixture(scope="session")
def authzd_server(request: pytest.FixtureRequest) -> Iterator[AuthzdServer]:
    """A real authzd for the whole test session (see the module's documentation)."""
    work_dir = Path(tempfile.mkdtemp(prefix="authzd-pytest-"))
    server: Optional[AuthzdServer] = None
    try:
        failure = None
        try:
            server = start_server(work_dir)
        except SetupError as e:
            failure = f"authzd.testing: {e}"
        if failure is not None:
            pytest.fail(failure, pytrace=False)
        if _SERVER_KEY is not None:
            request.config.stash[_SERVER_KEY] = server
        yield server
    finally:
        if server is not None:
            server.stop()
        drop_databases(work_dir)
        shutil.rmtree(work_dir, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Adds the tail of authzd's log to the report of a failed test that used the server."""
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and _SERVER_KEY is not None and "authzd_server" in getattr(item, "fixturenames", ()):
        server = item.config.stash.get(_SERVER_KEY, None)
        if server is not None:
            rep.sections.append(("authzd log (tail)", server.log_tail(4096)))
