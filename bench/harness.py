"""What every scenario shares: results beside their baselines and targets, interleaved timing, the run's context."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

NOT_AVAILABLE = "not available"

#: Units where a larger figure is better; for all others (times, memory) smaller is better.
RATES = {"rows/s", "txn/s", "events/s"}


@dataclass(frozen=True)
class Target:
    """A goal a figure is held to; `text` is how the table states it."""

    text: str
    min_ratio: float | None = None
    min_value: float | None = None
    max_value: float | None = None

    def met(self, value: float | None, ratio: float | None) -> bool | None:
        if value is None:
            return None
        checks = []
        if self.min_ratio is not None:
            checks.append(ratio is not None and ratio >= self.min_ratio)
        if self.min_value is not None:
            checks.append(value >= self.min_value)
        if self.max_value is not None:
            checks.append(value <= self.max_value)
        return all(checks) if checks else None


REPORTED = Target("reported")


@dataclass
class Result:
    """One figure: meterdesk's value, the baseline's in the same run, their ratio, the target and whether it is met.

    `ratio` is meterdesk's speed as a fraction of the baseline's, whatever the unit: value / baseline for
    rates, baseline / value for times and memory. Above 1, meterdesk beats the baseline.
    """

    scenario: str
    name: str
    value: float | None
    unit: str
    baseline: float | None = None
    target: Target = REPORTED
    baseline_label: str = ""
    note: str = ""
    available: bool = True
    ratio: float | None = field(init=False, default=None)
    met: bool | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.value is not None and self.baseline:
            self.ratio = self.value / self.baseline if self.unit in RATES else self.baseline / self.value
        self.met = self.target.met(self.value, self.ratio) if self.available else None

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "value": _round(self.value) if self.available else NOT_AVAILABLE,
            "unit": self.unit,
            "baseline": _round(self.baseline),
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "target": self.target.text,
            "met": self.met,
        }


def not_available(scenario: str, name: str, unit: str, target: Target, why: str) -> Result:
    return Result(scenario, name, None, unit, target=target, note=why, available=False)


def _round(value: float | None) -> float | None:
    if value is None:
        return None
    return round(value, 3) if abs(value) < 100 else round(value, 1)


# -- timing ------------------------------------------------------------------------------------------

def interleave(rounds: int, *runs: Callable[[int], float]) -> list[list[float]]:
    """Run each of `runs` once per round, alternating which goes first; returns their timings by run."""
    timings: list[list[float]] = [[] for _ in runs]
    for number in range(rounds):
        order = list(range(len(runs)))
        if number % 2:
            order.reverse()
        for index in order:
            timings[index].append(runs[index](number))
    return timings


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def seconds(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


# -- the run -------------------------------------------------------------------------------------------

@dataclass
class Sizes:
    """How big each scenario is: the full run's figures, or a small smoke run."""

    import_lines: int
    import_rounds: int
    single_events: int
    single_rounds: int
    ledger_small: int  # the "1M" ledger
    ledger_large: int  # the "10M" ledger
    summary_samples: int
    report_rounds: int
    naive_rows: int
    settlement_customers: int


FULL = Sizes(1_000_000, 3, 2000, 3, 1_000_000, 10_000_000, 300, 5, 1_000_000, 1000)
QUICK = Sizes(20_000, 1, 100, 1, 20_000, 100_000, 30, 1, 20_000, 40)


@dataclass
class Context:
    quick: bool
    sizes: Sizes
    data_dir: Path
    log: Callable[[str], None]
    _server: object = None

    @property
    def work_dir(self) -> Path:
        path = self.data_dir / "work"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def server(self):
        """The benchmark PostgreSQL server, started on first use."""
        if self._server is None:
            from bench.pg import BenchServer

            self.log("starting the benchmark PostgreSQL server")
            server = BenchServer(self.data_dir / "pg")
            server.start()
            self._server = server
        return self._server

    def close(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


def log_to_stderr(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def compile_meterdesk() -> None:
    """meterdesk's bytecode written before anything is timed, as an installed package has it. An editable
    install has none until a first run writes it, and never where PYTHONDONTWRITEBYTECODE is set (as on the
    CI machines): every `meterdesk` process, and an import's reader process, would compile the sources first
    (about 0.25 s each)."""
    import compileall

    import meterdesk

    compileall.compile_dir(Path(meterdesk.__file__).parent, quiet=1)


def meterdesk_command() -> list[str]:
    """The `meterdesk` program as installed next to this Python (the console script), else `python -m meterdesk`."""
    script = Path(sys.executable).with_name("meterdesk")
    return [str(script)] if script.exists() else [sys.executable, "-m", "meterdesk"]


# -- the machine ---------------------------------------------------------------------------------------

def machine() -> dict[str, str]:
    import sqlite3

    info = {
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count()),
        "memory": _memory(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "load": _load(),
    }
    try:
        info["disk fsync"] = f"{_fsync_latency_ms():.2f} ms"
    except OSError:
        pass
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _load() -> str:
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg()) + " (1, 5, 15 min load average at the start)"
    except OSError:
        return "unknown"


def _fsync_latency_ms() -> float:
    path = Path(__file__).with_name(".data") / "fsync-probe"
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        start = time.perf_counter()
        for _ in range(50):
            os.write(descriptor, b"x" * 4096)
            os.fdatasync(descriptor)
        return (time.perf_counter() - start) / 50 * 1000
    finally:
        os.close(descriptor)
        path.unlink(missing_ok=True)


def git_revision() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _start_together_worker(job, arguments, ready, go, results) -> None:
    try:
        results.put(job(*arguments, start_together=(ready, go)))
    except BaseException as error:  # noqa: BLE001 - reported by the parent, which must not wait forever
        ready.release()
        results.put(error)


def run_together(jobs) -> list:
    """Run each (job, arguments) in a spawned process, all set up before any starts (a job takes
    `start_together=(ready, go)`: it releases `ready` once set up and waits for `go`); their results, in the
    order they end. A job that raised re-raises here."""
    import multiprocessing

    spawn = multiprocessing.get_context("spawn")
    ready, go, results = spawn.Semaphore(0), spawn.Event(), spawn.Queue()
    processes = [spawn.Process(target=_start_together_worker, args=(job, arguments, ready, go, results)) for job, arguments in jobs]
    for process in processes:
        process.start()
    for _ in processes:
        ready.acquire()
    go.set()
    outcomes = [results.get() for _ in processes]
    for process in processes:
        process.join()
    failed = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    if failed:
        raise failed[0]
    return outcomes
