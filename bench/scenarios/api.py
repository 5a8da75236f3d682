"""The usage API: a real `meterdesk serve` process driven over HTTP by 4 concurrent keep-alive clients.

- `POST /v1/usage/batch`, 1,000 events per request, 4 client processes. Baseline in the same run: the same
  events (as a CSV file) through the bulk import service, `services.imports.import_usage`, in-process on an
  identical copy of the ledger.
- `POST /v1/usage`, single events, 4 client processes, each reporting for its own prepaid customer and each
  on one keep-alive connection. Baseline: `services.recording.record_usage` in 4 processes at once, on an
  identical copy of the ledger (the single-events scenario's writer). The p99 latency is reported.
- `GET /v1/usage/summary`, one keep-alive client, p50 over random customers of the ledger the batches were
  written to (its size is in the note). Baseline: `services.summary.usage_summary` in-process.

The clients are separate processes (spawned; bodies encoded before the clock starts), so their Python work
runs beside the server's, not inside it. On PostgreSQL the server runs 2 worker processes (`--workers 2`,
the machine's cores), on SQLite the one process a SQLite ledger allows; no rate limit (`--rate-limit 0`).
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench import data, ledgers
from bench.harness import REPORTED, Context, Result, Target, interleave, median, meterdesk_command, percentile, run_together, seconds

SCENARIO = "usage API"
RATIO = Target("ratio >= 0.5", min_ratio=0.5)
PG_BATCH_TARGET = Target("ratio >= 0.5 and >= 20,000 events/s", min_ratio=0.5, min_value=20_000)
SUMMARY_TARGET = Target("p50 <= 5 ms", max_value=5.0)
CLIENTS = 4
BATCH = 1000
PG_WORKERS = 2


@dataclass(frozen=True)
class ApiSizes:
    batch_requests: int  # per round, all clients together
    rounds: int
    single_events: int  # per client and round
    summary_samples: int


FULL = ApiSizes(batch_requests=100, rounds=3, single_events=1000, summary_samples=300)
QUICK = ApiSizes(batch_requests=8, rounds=1, single_events=100, summary_samples=40)
WARM_UP = 10


# -- the server ---------------------------------------------------------------------------------------

@dataclass
class Served:
    process: subprocess.Popen
    base: str
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve(url: str, log: Path, workers: int) -> Served:
    import httpx

    port = _free_port()
    with log.open("w") as handle:
        process = subprocess.Popen(
            [*meterdesk_command(), "--db", url, "serve", "--port", str(port), "--rate-limit", "0", "--workers", str(workers)],
            stdout=handle, stderr=subprocess.STDOUT, env=dict(os.environ, METERDESK_ACTOR="bench"),
        )
    served = Served(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"meterdesk serve exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(served.base + "/v1/health", timeout=2).status_code == 200:
                return served
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            served.stop()
            raise RuntimeError(f"meterdesk serve did not answer within 60 s: {log.read_text()[-2000:]}")
        time.sleep(0.2)


def new_key(url: str, name: str) -> str:
    from meterdesk.services.apikeys import create_api_key
    from meterdesk.store.engine import open_ledger

    ledger = open_ledger(url, upgrade=False)
    try:
        return create_api_key(ledger, name, "usage:write,usage:read", actor="bench").key
    finally:
        ledger.close()


# -- the events -----------------------------------------------------------------------------------------

def batch_events(count: int, round_number: int) -> list[dict]:
    """`count` events of the benchmark's mix (customers, units, amounts, September 2025), fresh request ids per round."""
    events = data.generate_events(count, seed=data.SEED + 1000 + round_number)
    specs = data.customer_specs()
    codes = [u.code for u in data.UNITS]
    return [
        {"customer": specs[c].external_id, "unit": codes[u], "amount": a, "request_id": f"r{round_number}-{r}", "occurred_at": t}
        for c, u, a, r, t in zip(events.customer.tolist(), events.unit.tolist(), data.amount_texts(events),
                                 events.request_ids(), data.timestamp_texts(events))
    ]


def write_csv(events: list[dict], path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("customer,unit,amount,request_id,occurred_at\n")
        handle.write("".join(f"{e['customer']},{e['unit']},{e['amount']},{e['request_id']},{e['occurred_at']}\n" for e in events))


# -- the clients (each in a process of its own) -------------------------------------------------------

def _client(base: str, key: str):
    import httpx

    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
                        timeout=300, limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))


def post_batches(base: str, key: str, bodies: list[bytes], start_together=None) -> tuple[float, float, list[float]]:
    """(start, end, seconds per request) of posting the bodies one after the other on one connection."""
    with _client(base, key) as client:
        client.get("/v1/health")  # the connection, before the clock starts
        _wait(start_together)
        start = time.perf_counter()
        latencies = []
        for body in bodies:
            sent = time.perf_counter()
            response = client.post("/v1/usage/batch", content=body)
            latencies.append(time.perf_counter() - sent)
            if response.status_code != 200:
                raise RuntimeError(f"POST /v1/usage/batch answered {response.status_code}: {response.text[:300]}")
            answer = response.json()
            if answer["recorded"] != BATCH or answer["rejected"]:
                raise RuntimeError(f"a batch was not recorded whole: {answer['recorded']} recorded, {answer['rejected']} rejected, "
                                   f"first refusal {next((r for r in answer['results'] if r['status'] == 'rejected'), None)}")
        return start, time.perf_counter(), latencies


def post_singles(base: str, key: str, customer: str, count: int, tag: str, start_together=None) -> tuple[float, float, list[float]]:
    """(start, end, seconds per request) of `count` single events for one prepaid customer, one connection."""
    bodies = [json.dumps({"customer": customer, "unit": "api_calls", "amount": "3", "request_id": f"{tag}-{n}"}).encode()
              for n in range(count)]
    with _client(base, key) as client:
        warm = client.post("/v1/usage", content=json.dumps({"customer": customer, "unit": "api_calls", "amount": "3",
                                                            "request_id": f"{tag}-warm-up"}).encode())
        if warm.status_code != 201:
            raise RuntimeError(f"POST /v1/usage answered {warm.status_code}: {warm.text[:300]}")
        _wait(start_together)
        start = time.perf_counter()
        latencies = []
        for body in bodies:
            sent = time.perf_counter()
            response = client.post("/v1/usage", content=body)
            latencies.append(time.perf_counter() - sent)
            if response.status_code != 201:
                raise RuntimeError(f"POST /v1/usage answered {response.status_code}: {response.text[:300]}")
        return start, time.perf_counter(), latencies


def record_singles(url: str, customer: str, count: int, tag: str, start_together=None) -> tuple[float, float, list[float]]:
    """The baseline of post_singles: record_usage in this process, with the same events."""
    from meterdesk.services.recording import record_usage
    from meterdesk.store.engine import open_ledger

    ledger = open_ledger(url, upgrade=False)
    try:
        record_usage(ledger, customer, "api_calls", "3", f"{tag}-warm-up", source="api", actor="api:bench")
        _wait(start_together)
        start = time.perf_counter()
        latencies = []
        for number in range(count):
            sent = time.perf_counter()
            result = record_usage(ledger, customer, "api_calls", "3", f"{tag}-{number}", source="api", actor="api:bench")
            latencies.append(time.perf_counter() - sent)
            if result.duplicate:
                raise RuntimeError(f"record_usage found {tag}-{number} recorded already")
        return start, time.perf_counter(), latencies
    finally:
        ledger.close()


def _wait(start_together) -> None:
    if start_together is not None:
        ready, go = start_together
        ready.release()
        go.wait()


def concurrent(jobs) -> tuple[float, list[float]]:
    """Run the jobs together (harness.run_together): (seconds from the first start to the last end, every
    request's latency)."""
    outcomes = run_together(jobs)
    span = max(end for _, end, _ in outcomes) - min(start for start, _, _ in outcomes)
    return span, [latency for _, _, latencies in outcomes for latency in latencies]


# -- the run ----------------------------------------------------------------------------------------------

def run(context: Context) -> list[Result]:
    sizes = QUICK if context.quick else FULL
    results: list[Result] = []
    for backend in ("postgresql", "sqlite"):
        results += _run_backend(context, sizes, backend)
    return results


def _ledger_pair(context: Context, backend: str, name: str) -> tuple[str, str, callable]:
    """Two identical copies of the benchmark's catalog ledger (no usage): (served, baseline, remove both)."""
    if backend == "sqlite":
        served, baseline = context.work_dir / f"{name}.sqlite3", context.work_dir / f"{name}-baseline.sqlite3"
        ledgers.copy_sqlite(ledgers.sqlite_base(), served)
        ledgers.copy_sqlite(ledgers.sqlite_base(), baseline)
        return f"sqlite:///{served}", f"sqlite:///{baseline}", lambda: (ledgers.remove_sqlite(served), ledgers.remove_sqlite(baseline))
    server = context.server()
    base = ledgers.pg_base(server)
    for database in (name, f"{name}_baseline"):
        if server.exists(database):
            server.drop(database)
        server.create(database, template=base)
    return server.url(name), server.url(f"{name}_baseline"), lambda: (server.drop(name), server.drop(f"{name}_baseline"))


def _run_backend(context: Context, sizes: ApiSizes, backend: str) -> list[Result]:
    from meterdesk.services.entries import count_entries
    from meterdesk.services.imports import import_usage
    from meterdesk.store.engine import open_ledger

    label = "PostgreSQL" if backend == "postgresql" else "SQLite"
    workers = PG_WORKERS if backend == "postgresql" else 1
    results = []
    url, baseline_url, remove = _ledger_pair(context, backend, "bench_api")
    server = None
    try:
        key = new_key(url, "bench")
        server = serve(url, context.work_dir / f"serve-{backend}.log", workers)
        context.log(f"usage API on {label}: `meterdesk serve --workers {workers}` at {server.base}")

        # POST /v1/usage/batch, 4 clients, against import_usage of the same events in-process.
        per_round = sizes.batch_requests * BATCH
        context.log(f"  batches: {sizes.batch_requests} requests of {BATCH:,} events per round, {CLIENTS} clients, {sizes.rounds} round(s)")
        rounds = []
        for number in range(sizes.rounds):
            events = batch_events(per_round, number)
            bodies = [json.dumps({"events": events[i : i + BATCH]}).encode() for i in range(0, per_round, BATCH)]
            csv_path = context.work_dir / f"api-batch-{backend}-{number}.csv"
            write_csv(events, csv_path)
            rounds.append((bodies, csv_path))
        baseline_ledger = open_ledger(baseline_url, upgrade=False)
        batch_latencies: list[float] = []

        def api_round(number: int) -> float:
            bodies = rounds[number][0]
            span, latencies = concurrent([(post_batches, (server.base, key, bodies[client::CLIENTS])) for client in range(CLIENTS)])
            batch_latencies.extend(latencies)
            return span

        def import_round(number: int) -> float:
            outcome = {}
            elapsed = seconds(lambda: outcome.setdefault("result", import_usage(baseline_ledger, rounds[number][1], actor="import:bench")))
            if outcome["result"].recorded != per_round:
                raise RuntimeError(f"the baseline import recorded {outcome['result'].recorded} of {per_round}: {outcome['result'].errors[:2]}")
            return elapsed

        try:
            mine, base = interleave(sizes.rounds, api_round, import_round)
        finally:
            baseline_ledger.close()
            for _, csv_path in rounds:
                csv_path.unlink(missing_ok=True)
        served_ledger = open_ledger(url, upgrade=False)
        try:
            entries = count_entries(served_ledger)
        finally:
            served_ledger.close()
        if entries != per_round * sizes.rounds:
            raise RuntimeError(f"the served ledger holds {entries:,} entries, not the {per_round * sizes.rounds:,} posted")
        results.append(Result(
            SCENARIO, f"POST /v1/usage/batch, {BATCH:,} events a request, {CLIENTS} clients, {label}",
            per_round / median(mine), "events/s", per_round / median(base),
            PG_BATCH_TARGET if backend == "postgresql" else RATIO, "import_usage of the same events, in-process",
            f"{per_round:,} events a round; request p50 {median(batch_latencies) * 1000:.0f} ms, "
            f"p99 {percentile(batch_latencies, 0.99) * 1000:.0f} ms; serve --workers {workers}",
        ))

        # GET /v1/usage/summary on the ledger the batches wrote, against usage_summary in-process.
        results.append(_summary(context, sizes, server, key, url, entries, label))

        # POST /v1/usage, single events, 4 clients each for its own prepaid customer, against record_usage.
        customers = [spec.external_id for spec in data.customer_specs() if spec.prepaid][:CLIENTS]
        count = sizes.single_events
        context.log(f"  single events: {count:,} per client and round, {CLIENTS} clients, {sizes.rounds} round(s)")
        api_latencies: list[float] = []
        in_process_latencies: list[float] = []

        def api_singles(number: int) -> float:
            span, latencies = concurrent([(post_singles, (server.base, key, customer, count, f"s{number}-{customer}"))
                                          for customer in customers])
            api_latencies.extend(latencies)
            return span

        def service_singles(number: int) -> float:
            span, latencies = concurrent([(record_singles, (baseline_url, customer, count, f"s{number}-{customer}"))
                                          for customer in customers])
            in_process_latencies.extend(latencies)
            return span

        mine, base = interleave(sizes.rounds, api_singles, service_singles)
        total = count * CLIENTS
        results.append(Result(
            SCENARIO, f"POST /v1/usage, single events, {CLIENTS} keep-alive clients, {label}",
            total / median(mine), "events/s", total / median(base), RATIO,
            f"record_usage in {CLIENTS} processes at once, in-process",
            f"each client its own prepaid customer; p50 {median(api_latencies) * 1000:.1f} ms, "
            f"p99 {percentile(api_latencies, 0.99) * 1000:.1f} ms over HTTP "
            f"(in-process p99 {percentile(in_process_latencies, 0.99) * 1000:.1f} ms)",
        ))
        results.append(Result(
            SCENARIO, f"POST /v1/usage p99 latency, {CLIENTS} clients, {label}", percentile(api_latencies, 0.99) * 1000, "ms",
            percentile(in_process_latencies, 0.99) * 1000, REPORTED, "record_usage p99, in-process, same concurrency",
            f"{len(api_latencies):,} requests",
        ))
    finally:
        if server is not None:
            server.stop()
        remove()
    return results


def _summary(context: Context, sizes: ApiSizes, server: Served, key: str, url: str, entries: int, label: str) -> Result:
    import httpx

    from meterdesk.services.summary import usage_summary
    from meterdesk.store.engine import open_ledger

    specs = data.customer_specs()
    rng = random.Random(11)
    numbers = [rng.randrange(data.CUSTOMERS) for _ in range(sizes.summary_samples + WARM_UP)]
    ledger = open_ledger(url, upgrade=False)
    ours, theirs = [], []
    try:
        with httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
            for index, number in enumerate(numbers):
                customer = specs[number].external_id

                def over_http() -> None:
                    response = client.get("/v1/usage/summary", params={"customer": customer, "period": data.PERIOD})
                    if response.status_code != 200:
                        raise RuntimeError(f"GET /v1/usage/summary answered {response.status_code}: {response.text[:300]}")

                pair = ((over_http, ours), (lambda: usage_summary(ledger, customer, period=data.PERIOD), theirs))
                for work, sink in pair if index % 2 == 0 else reversed(pair):
                    start = time.perf_counter()
                    work()
                    sink.append((time.perf_counter() - start) * 1000)
    finally:
        ledger.close()
    ours, theirs = ours[WARM_UP:], theirs[WARM_UP:]
    return Result(
        SCENARIO, f"GET /v1/usage/summary p50, {label}, {entries:,} entries", median(ours), "ms", median(theirs), SUMMARY_TARGET,
        "usage_summary in-process, same ledger",
        f"one keep-alive client, {len(ours)} random customers of 1,000; p99 {percentile(ours, 0.99):.2f} ms; "
        f"the ledger the batches wrote ({entries:,} entries), not the 10M-entry ledger",
    )


if __name__ == "__main__":  # python -m bench.scenarios.api: a quick run of this scenario alone
    sys.exit(subprocess.call([sys.executable, "-m", "bench", "--only", "api", "--quick", "--no-docs"]))
