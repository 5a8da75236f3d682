"""A randomized soak of a ledger: several processes mixing record, import, correct, grant and close, then checks.

    python tools/soak.py --minutes 10 --seed 7 --processes 4 [--db postgresql+psycopg://user@host/empty_db]

Without --db the soak runs on a new SQLite file in a temporary folder. A --db ledger must be empty (it is
migrated, then the soak's catalog is written into it). Prints what each process did and every difference
`verify` found; exits 0 when all checks pass, 4 otherwise. The same seed makes the same choices (what
interleaves with what is up to the machine). See src/meterdesk/testing/soak.py.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=1.0, help="how long the processes write (default 1)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--db", metavar="URL", help="an empty ledger (default: a new SQLite file)")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.processes < 1:
        parser.error("--minutes must be positive and --processes at least 1")

    from meterdesk.store.engine import open_ledger
    from meterdesk.testing.soak import run_soak

    folder = None
    url = args.db
    if url is None:
        folder = tempfile.TemporaryDirectory(prefix="meterdesk-soak-")
        url = f"sqlite:///{Path(folder.name) / 'soak.sqlite3'}"
    ledger = open_ledger(url)  # migrates a new ledger
    try:
        from meterdesk.services.catalog import list_units

        if list_units(ledger):
            sys.stderr.write("error: the soak needs an empty ledger; this one already has units\n")
            return 2
    finally:
        ledger.close()
    report = run_soak(url, seconds=args.minutes * 60, seed=args.seed, processes=args.processes)
    print(report.summary())
    if folder is not None:
        folder.cleanup()
    return 0 if report.ok else 4


if __name__ == "__main__":
    sys.exit(main())
