"""`python -m bench`: run the benchmarks, print the table, and (full runs) rewrite docs/benchmarks.md.

    python -m bench                 full run (1M-line imports, 10M-entry ledgers; under 20 minutes on 2 cores)
    python -m bench --quick         smoke run on small data (under 2 minutes); figures reported, not asserted
    python -m bench --json          print the results as a JSON list instead of the table
    python -m bench --no-docs       leave docs/benchmarks.md alone
    python -m bench --only import,summary   run some scenarios (never rewrites the docs)
    python -m bench --verify        first prove the fast ledger loader writes what the services write
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("METERDESK_ACTOR", "bench")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, one round: a smoke run")
    parser.add_argument("--json", action="store_true", help="print a JSON list of results")
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    parser.add_argument("--only", help="comma-separated scenarios: " + ", ".join(_scenario_names()))
    parser.add_argument("--verify", action="store_true", help="check the fast loader against the services first")
    args = parser.parse_args(argv)

    from bench import harness, ledgers, report
    from bench.scenarios import SCENARIOS

    chosen = list(SCENARIOS)
    if args.only:
        chosen = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = [name for name in chosen if name not in SCENARIOS]
        if unknown:
            parser.error(f"unknown scenario {unknown[0]!r}; choose from {', '.join(SCENARIOS)}")
    context = harness.Context(
        quick=args.quick,
        sizes=harness.QUICK if args.quick else harness.FULL,
        data_dir=ledgers.DATA_DIR,
        log=harness.log_to_stderr,
    )
    harness.compile_meterdesk()
    machine = harness.machine()
    started = time.perf_counter()
    results: list[harness.Result] = []
    failures = 0
    try:
        if args.verify or args.quick:
            failures += _verify(context, 5_000 if args.quick else 20_000)
        for name in chosen:
            context.log(f"scenario {name}")
            try:
                results += SCENARIOS[name].run(context)
            except Exception:  # noqa: BLE001 - one broken scenario must not hide the others' figures
                failures += 1
                context.log(f"scenario {name} failed:\n{traceback.format_exc()}")
        if "postgresql" not in machine and context._server is not None:
            machine["postgresql"] = context.server().version
    finally:
        context.close()
    duration = time.perf_counter() - started

    table = report.terminal(results)
    if args.json:
        print(report.to_json(results))
        print(table, file=sys.stderr)
    else:
        print(table)
    context.log(f"done in {duration / 60:.1f} min")
    if not (args.quick or args.only or args.no_docs):
        path = report.write_docs(
            report.markdown(results, machine, revision=harness.git_revision(), duration_s=duration, command="python -m bench")
        )
        context.log(f"wrote {path}")
    return 1 if failures else 0


def _verify(context, n: int) -> int:
    from bench import verify

    context.log(f"verifying the fast ledger loader against the services ({n:,} events, SQLite and PostgreSQL)")
    problems = verify.verify_sqlite(n) + verify.verify_pg(context.server(), n)
    for problem in problems:
        context.log(f"VERIFY FAILED: {problem}")
    return 1 if problems else 0


def _scenario_names() -> list[str]:
    from bench.scenarios import SCENARIOS

    return list(SCENARIOS)


if __name__ == "__main__":
    sys.exit(main())
