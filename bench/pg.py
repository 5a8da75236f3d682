"""A PostgreSQL server for the benchmarks, kept under bench/.data/ between runs so big ledgers are built once.

Started from the local server binaries (as the `postgres` user when we are root), with durability on:
fsync and synchronous_commit as shipped, so a commit waits for the disk as it would for a real team.
The memory settings are those of a modest dedicated server, the same for meterdesk and for the baselines.
A run holds a lock on its server's folder until it stops the server; a second run at the same time takes the
next free folder (pg-2, pg-3, ...) with its own port instead of stopping the first run's server.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import psycopg

from tests.support.postgres import INSTALL_HINT, find_bindir, free_port

SETTINGS = {
    "fsync": "on",
    "synchronous_commit": "on",
    "shared_buffers": "1GB",
    "work_mem": "64MB",
    "maintenance_work_mem": "512MB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "15min",
    "max_connections": "100",
}


# Where the server lives when the checkout sits below a folder the postgres user may not enter (as root in
# a private temporary directory, say); a fixed path, so big ledgers stay cached between runs there too.
# Every checkout falls back to this one path, so runs side by side are the common case here, not a rare one.
FALLBACK_ROOT = Path("/var/tmp/meterdesk-bench-pg")

# How many benchmark servers may run side by side from one folder: pg, pg-2, ... pg-8.
SIDE_BY_SIDE = 8


def _postgres_can_reach(root: Path) -> bool:
    """As root the server runs as `postgres`, which must be able to reach `root`'s folder."""
    if os.geteuid() != 0:
        return True
    folder = root.parent
    folder.mkdir(parents=True, exist_ok=True)
    found = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(folder)], capture_output=True)
    return found.returncode == 0


class BenchServer:
    def __init__(self, root: Path) -> None:
        bindir = find_bindir()
        if bindir is None:
            raise RuntimeError(INSTALL_HINT)
        self.bindir = bindir
        self.root = root if _postgres_can_reach(root) else FALLBACK_ROOT
        self.datadir = self.root / "data"
        # METERDESK_BENCH_PG_PORT: use the benchmark server already running on this port (started by
        # `python -m bench.pg`), so several benchmark processes can share it; it is left running.
        attached = os.environ.get("METERDESK_BENCH_PG_PORT")
        self.attached = bool(attached)
        self.port = int(attached) if attached else free_port()
        self.version = ""
        self._lock: int | None = None  # the descriptor holding the lock on self.root while our server runs

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=check, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/", text=True)

    def _claim_root(self) -> None:
        """Lock the first of root, root-2, root-3 ... that no live run holds, and serve from it until stop().

        The lock is a `flock` on `lock` beside the data directory. The kernel drops it when our process ends,
        however it ends; the descriptor is not inherited (Python's default), so a server we leave behind
        does not keep holding it.
        """
        base = self.root
        for number in range(1, SIDE_BY_SIDE + 1):
            root = base if number == 1 else base.with_name(f"{base.name}-{number}")
            root.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(root / "lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(descriptor)
                continue
            self._lock = descriptor
            self.root = root
            self.datadir = root / "data"
            return
        raise RuntimeError(f"{SIDE_BY_SIDE} benchmark runs already hold {base} and its siblings; wait for one to end")

    def start(self) -> None:
        if self.attached:
            with self.connect("postgres") as connection:
                self.version = connection.execute("SHOW server_version").fetchone()[0]
            return
        self._claim_root()
        try:
            self._start_claimed()
        except BaseException:
            self.stop()
            raise

    def _start_claimed(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            os.chmod(self.root, 0o700)
        if not (self.datadir / "PG_VERSION").exists():
            shutil.rmtree(self.datadir, ignore_errors=True)
            self._run("initdb", "-D", str(self.datadir), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale")
        # A previous run that was killed leaves its server behind: stop it before starting ours. A live run
        # holds the lock we hold now, so a server found here belongs to no live run.
        self._run("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "stop", check=False)
        options = [f"-p {self.port}", f"-k {self.root}", "-c listen_addresses=127.0.0.1"]
        options += [f"-c {name}={value}" for name, value in SETTINGS.items()]
        self._run("pg_ctl", "-D", str(self.datadir), "-o", " ".join(options), "-l", str(self.root / "log"), "-w", "-t", "120", "start")
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL did not start on port {self.port}; see {self.root / 'log'}") from None
                time.sleep(0.1)
        with self.connect("postgres") as connection:
            self.version = connection.execute("SHOW server_version").fetchone()[0]

    def stop(self) -> None:
        if self.attached or self._lock is None:
            return
        try:
            self._run("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "stop", check=False)
        finally:
            os.close(self._lock)
            self._lock = None

    # -- databases ---------------------------------------------------------------------------------
    def conninfo(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str, **kwargs) -> psycopg.Connection:
        return psycopg.connect(self.conninfo(database), **kwargs)

    def admin(self, sql: str) -> None:
        with self.connect("postgres", autocommit=True) as connection:
            connection.execute(sql)

    def exists(self, database: str) -> bool:
        with self.connect("postgres") as connection:
            return connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is not None

    def drop(self, database: str) -> None:
        self.admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    def create(self, database: str, template: str | None = None) -> None:
        self.drop(database)
        self.admin(f'CREATE DATABASE "{database}"' + (f' TEMPLATE "{template}"' if template else ""))


def main() -> None:
    """`python -m bench.pg`: start the benchmark server and keep it until interrupted; prints the port to share."""
    import signal

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    server = BenchServer(Path(__file__).with_name(".data") / "pg")
    server.start()
    print(f"METERDESK_BENCH_PG_PORT={server.port}", flush=True)
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        server.stop()


if __name__ == "__main__":
    main()
