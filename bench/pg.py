"""A PostgreSQL server for the benchmarks, kept under bench/.data/ between runs so big ledgers are built once.

Started from the local server binaries (as the `postgres` user when we are root), with durability on:
fsync and synchronous_commit as shipped, so a commit waits for the disk as it would for a real team.
The memory settings are those of a modest dedicated server, the same for meterdesk and for the baselines.
"""

from __future__ import annotations

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
FALLBACK_ROOT = Path("/var/tmp/meterdesk-bench-pg")


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

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=check, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/", text=True)

    def start(self) -> None:
        if self.attached:
            with self.connect("postgres") as connection:
                self.version = connection.execute("SHOW server_version").fetchone()[0]
            return
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            os.chmod(self.root, 0o700)
        if not (self.datadir / "PG_VERSION").exists():
            shutil.rmtree(self.datadir, ignore_errors=True)
            self._run("initdb", "-D", str(self.datadir), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale")
        # A previous run that was killed leaves its server behind: stop it before starting ours.
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
        if self.attached:
            return
        self._run("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "stop", check=False)

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
