"""A throwaway PostgreSQL server for the test session, when no ``RELAYBOARD_TEST_PG_DSN`` is given.

``ThrowawayPostgres.start`` finds the server binaries (``initdb``, ``pg_ctl``, ``postgres``),
initialises a cluster in a fresh temporary directory (a superuser role, UTF8; trust on the unix
socket, a password over TCP — as on the CI server, so the suite's wrong-password tests mean
something), starts it on a free port of 127.0.0.1 with its unix socket inside that directory and
with durability switched off, and creates the database. ``stop`` stops the server and removes the
directory. ``tests/storage_backends.py`` starts one lazily — on the first PostgreSQL test — and the
session fixture in ``tests/conftest.py`` (backed by ``atexit``) stops it.

initdb and the server refuse to run as root, so under root both run as the ``postgres`` system
user (through ``runuser``, or by switching user in the child process), in a directory that user
owns. Every reason not to have a server is a ``NoServer`` with one line that says why.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

ROLE = "relayboard"
PASSWORD = "relayboard"  # the same role and password as .ci/run's server
DATABASE = "relayboard"
BINARIES = ("initdb", "pg_ctl", "postgres")
DEBIAN_ROOT = Path("/usr/lib/postgresql")
RUN_AS = "postgres"  # the system user Debian's (and most distributions') packages create
TEMP_PREFIX = "relayboard-pg-"
# The same settings .ci/run gives its server: this one holds nothing but test data, and the
# suite (processes, pools, LISTEN connections) needs more than the default 100 connections.
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "400",
}
COMMAND_TIMEOUT = 120.0  # seconds for initdb, and the bound pg_ctl is given to start or stop
SETTINGS_FILE = "relayboard-test.conf"
PORT_ATTEMPTS = 5  # another process may take the free port between choosing it and binding it


class NoServer(Exception):
    """No throwaway server can run here; the message says why, in one line."""


def find_bindir() -> Path | None:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``: from ``PATH``, then
    ``pg_config --bindir``, then Debian's ``/usr/lib/postgresql/<ver>/bin`` (newest first) —
    Debian keeps them off ``PATH``."""
    candidates: list[Path] = []
    on_path = shutil.which("initdb")
    if on_path:
        # pg_ctl finds `postgres` next to its own resolved path; a symlink on PATH is fine.
        candidates.append(Path(on_path).resolve().parent)
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                 timeout=30, check=True).stdout.strip()
            if out:
                candidates.append(Path(out))
    if DEBIAN_ROOT.is_dir():
        versions = sorted((d for d in DEBIAN_ROOT.iterdir() if d.name[:1].isdigit()),
                          key=lambda d: [int(p) for p in re.findall(r"\d+", d.name)],
                          reverse=True)
        candidates.extend(d / "bin" for d in versions)
    for directory in candidates:
        if all(os.access(directory / name, os.X_OK) for name in BINARIES):
            return directory
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def reason_line(text: str) -> str:
    """The line of a failed command's output that says what went wrong (initdb and pg_ctl end
    with hints such as "Examine the log output.")."""
    for line in text.splitlines():
        if re.search(r"error|fatal|could not|cannot", line, re.IGNORECASE):
            return line.strip()
    return last_line(text)


def server_user() -> pwd.struct_passwd | None:
    """The user the server runs as: None for ourselves, ``postgres`` when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(RUN_AS)
    except KeyError:
        raise NoServer(f"running as root and there is no {RUN_AS!r} user to run PostgreSQL as "
                       "(initdb refuses root)") from None


@dataclass
class ThrowawayPostgres:
    """One server in one temporary directory, owned by the process that started it."""

    bindir: Path
    root: Path
    user: pwd.struct_passwd | None
    port: int = 0
    version: str = ""
    owner_pid: int = field(default_factory=os.getpid)
    running: bool = False

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    @property
    def dsn(self) -> str:
        return f"postgresql://{ROLE}:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"

    @classmethod
    def start(cls) -> ThrowawayPostgres:
        """Initialise and start a server, or raise ``NoServer`` (leaving nothing behind)."""
        bindir = find_bindir()
        if bindir is None:
            raise NoServer("no PostgreSQL server binaries (initdb, pg_ctl, postgres) on PATH, "
                           f"in pg_config --bindir or under {DEBIAN_ROOT}/<version>/bin")
        server = cls(bindir, Path(tempfile.mkdtemp(prefix=TEMP_PREFIX)), server_user())
        try:
            server._init()
            server._boot()
            server._create_database()
        except BaseException:
            server.stop()
            raise
        return server

    def _run(self, *argv: str | Path) -> subprocess.CompletedProcess[str]:
        """Run a server binary as the server's user; a failure is ``NoServer``."""
        command = [str(self.bindir / str(argv[0])), *map(str, argv[1:])]
        as_user = f" as {self.user.pw_name}" if self.user else ""
        try:
            # cwd: the server's user may not be allowed into ours (e.g. /root).
            if self.user is None:
                proc = subprocess.run(command, capture_output=True, text=True, cwd=self.root,
                                      timeout=COMMAND_TIMEOUT + 30, check=False)
            elif runuser := shutil.which("runuser"):
                proc = subprocess.run([runuser, "-u", self.user.pw_name, "--", *command],
                                      capture_output=True, text=True, cwd=self.root,
                                      timeout=COMMAND_TIMEOUT + 30, check=False)
            else:
                # No runuser (not util-linux): switch user in the child process instead.
                proc = subprocess.run(command, capture_output=True, text=True, cwd=self.root,
                                      timeout=COMMAND_TIMEOUT + 30, check=False,
                                      user=self.user.pw_uid, group=self.user.pw_gid,
                                      extra_groups=[])
        except (OSError, subprocess.SubprocessError) as exc:
            raise NoServer(f"{argv[0]}{as_user} could not run: {exc}") from None
        if proc.returncode != 0:
            raise NoServer(f"{argv[0]}{as_user} failed: {reason_line(proc.stderr or proc.stdout)}")
        return proc

    def _own(self, path: Path) -> None:
        if self.user is not None:
            # The cluster's files must belong to the user the server runs as.
            os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def _init(self) -> None:
        self._own(self.root)
        # "postgres (PostgreSQL) 15.18 (Debian …)" → "PostgreSQL 15.18 (Debian …)"
        self.version = last_line(self._run("postgres", "--version").stdout).replace(
            "postgres (PostgreSQL)", "PostgreSQL", 1)
        pwfile = self.root / "password"
        pwfile.write_text(PASSWORD + "\n", encoding="utf-8")
        self._own(pwfile)
        try:
            self._run("initdb", "--pgdata", self.data, "--username", ROLE, "--pwfile", pwfile,
                      "--auth-local", "trust", "--auth-host", "scram-sha-256",
                      "--encoding", "UTF8", "--no-locale", "--no-sync")
        finally:
            pwfile.unlink(missing_ok=True)
        self.socket_dir.mkdir(mode=0o700)
        self._own(self.socket_dir)
        # Our settings live in a file of their own, rewritten for each port we try.
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(f"\ninclude '{SETTINGS_FILE}'\n")

    def _boot(self) -> None:
        for _ in range(PORT_ATTEMPTS):
            self.port = free_port()
            settings = {**SETTINGS, "port": str(self.port),
                        "unix_socket_directories": f"'{self.socket_dir}'"}
            conf = self.data / SETTINGS_FILE
            conf.write_text("".join(f"{name} = {value}\n" for name, value in settings.items()),
                            encoding="utf-8")
            self._own(conf)
            self.log.unlink(missing_ok=True)  # so the log read below is this attempt's
            try:
                # -w: pg_ctl returns once the server accepts connections (or gives up after -t).
                self._run("pg_ctl", "start", "-w", "-t", str(int(COMMAND_TIMEOUT)),
                          "-D", self.data, "-l", self.log)
            except NoServer as exc:
                log = self._log_text()
                if "already in use" not in log:
                    raise NoServer(f"{exc}; server log: {reason_line(log)}") from None
                continue
            self.running = True
            return
        raise NoServer(f"no free port on 127.0.0.1 after {PORT_ATTEMPTS} attempts")

    def _log_text(self) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def _create_database(self) -> None:
        admin = f"postgresql://{ROLE}:{PASSWORD}@127.0.0.1:{self.port}/postgres"
        try:
            with psycopg.connect(admin, autocommit=True, connect_timeout=30) as conn:
                conn.execute(f"CREATE DATABASE {DATABASE}")
        except psycopg.Error as exc:
            raise NoServer(f"creating the database failed: {last_line(str(exc))}") from None

    def stop(self) -> None:
        """Stop the server and remove its directory. Idempotent; does nothing in a forked child
        (its atexit handlers must not stop the parent's server)."""
        if os.getpid() != self.owner_pid:
            return
        if self.running:
            self.running = False
            try:
                # fast: disconnects whatever a test left connected; the data is thrown away.
                self._run("pg_ctl", "stop", "-w", "-t", "30", "-m", "fast", "-D", self.data)
            except NoServer:
                self._kill_postmaster()
        shutil.rmtree(self.root, ignore_errors=True)

    def _kill_postmaster(self) -> None:
        """Last resort when pg_ctl cannot stop the server: SIGKILL the postmaster by its pid file
        (its children exit when they notice it is gone)."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.data / "postmaster.pid").read_text(encoding="utf-8").split()[0])
            os.kill(pid, signal.SIGKILL)
