"""The `meterdesk` command line (SPEC section 4): a stable contract for people, scripts and servers."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence

from meterdesk.domain.errors import InvalidInput, MeterdeskError

EXIT_USAGE = 2
MAX_LIMIT = 2**63 - 1  # the largest LIMIT a database takes


class _Parser(argparse.ArgumentParser):
    """argparse with SPEC's error contract: one `error:` line on stderr and exit status 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        sys.stderr.write(f"error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(EXIT_USAGE)


def _emit(args, document: dict, text: Callable[[], str] | str) -> None:
    if args.json:
        sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write((text() if callable(text) else text).rstrip("\n") + "\n")


def _table(rows: list[Sequence], headers: Sequence[str]) -> str:
    cells = [list(map(str, headers))] + [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _open(args):
    from meterdesk.services.ledgers import open_ledger

    return open_ledger(args.db)


# -- commands ---------------------------------------------------------------------------------------

def cmd_gui(args) -> int:
    from meterdesk.ui.app import run_gui

    return run_gui(db=args.db, demo=args.demo)


def cmd_db_upgrade(args) -> int:
    from meterdesk.services.ledgers import upgrade_database

    name, before, after = upgrade_database(args.db)
    _emit(args, {"database": name, "from": before, "to": after},
          f"{name}: schema {'created' if before is None else 'migrated from ' + before if before != after else 'already'} at revision {after}")
    return 0


def cmd_unit_add(args) -> int:
    from meterdesk.services.catalog import add_unit, unit_json

    row = add_unit(_open(args), args.code, args.name, args.decimals, args.aggregation)
    _emit(args, unit_json(row), f"unit {row.code} added")
    return 0


def cmd_unit_list(args) -> int:
    from meterdesk.services.catalog import list_units, unit_json

    rows = [unit_json(row) for row in list_units(_open(args))]
    _emit(args, {"units": rows}, lambda: _table([[r["code"], r["name"], r["decimals"], r["aggregation"]] for r in rows], ["code", "name", "decimals", "aggregation"]))
    return 0


def _plan_text(info) -> str:
    shape = info.to_json()
    lines = [
        f"{shape['code']}  {shape['name']}  ({shape['currency']}, version {shape['version']} of {shape['versions']})",
        f"  base fee {shape['base_fee']} per month",
    ]
    for charge in shape.get("charges", []):
        included = f", {charge['included']} included" if charge.get("included") not in (None, "0") else ""
        if charge["model"] in ("graduated", "volume"):
            lines.append(f"  {charge['unit']}: {charge['model']}{included}")
            for tier in charge["tiers"]:
                bound = f"up to {tier['up_to']}" if tier.get("up_to") else "above"
                fee = f" + {tier['flat_fee']} flat" if tier.get("flat_fee") not in (None, "0") else ""
                lines.append(f"      {bound:<16} {tier['unit_price']} each{fee}")
        elif charge["model"] == "package":
            lines.append(f"  {charge['unit']}: {charge['package_price']} per package of {charge['package_size']}{included}")
        else:
            lines.append(f"  {charge['unit']}: {charge['unit_price']} each{included}")
    return "\n".join(lines)


def cmd_plan_import(args) -> int:
    from meterdesk.domain.plans import load_plan_file
    from meterdesk.services.catalog import save_plan

    info = save_plan(_open(args), load_plan_file(args.file))
    _emit(args, info.to_json(), lambda: _plan_text(info))
    return 0


def cmd_plan_list(args) -> int:
    from meterdesk.services.catalog import list_plans

    infos = list_plans(_open(args))
    _emit(args, {"plans": [i.to_json() for i in infos]}, lambda: _table(
        [[i.plan.code, i.plan.name, i.plan.currency, i.plan.base_fee, len(i.plan.charges), i.version] for i in infos],
        ["code", "name", "currency", "base fee", "charges", "version"]))
    return 0


def cmd_plan_show(args) -> int:
    from meterdesk.services.catalog import get_plan

    info = get_plan(_open(args), args.code)
    _emit(args, info.to_json(), lambda: _plan_text(info))
    return 0


def _customer_text(info) -> str:
    s = info.to_json()
    text = f"{s['id']}  {s['name']}  plan {s['plan']}  {s['mode']}  {s['currency']}"
    if s["balance"] is not None:
        text += f"  balance {s['balance']} (credit limit {s['credit_limit']})"
    return text


def cmd_customer_add(args) -> int:
    from meterdesk.services.catalog import add_customer

    info = add_customer(_open(args), args.id, args.name, args.plan, email=args.email, prepaid=args.prepaid, credit_limit=args.credit_limit, start=args.start)
    _emit(args, info.to_json(), lambda: "customer added: " + _customer_text(info))
    return 0


def cmd_customer_list(args) -> int:
    from meterdesk.services.catalog import list_customers

    infos = list_customers(_open(args))
    _emit(args, {"customers": [i.to_json() for i in infos]}, lambda: _table(
        [[s["id"], s["name"], s["plan"], s["mode"], s["currency"], s["balance"] or ""] for s in (i.to_json() for i in infos)],
        ["id", "name", "plan", "mode", "currency", "balance"]))
    return 0


def cmd_customer_show(args) -> int:
    from meterdesk.services.catalog import get_customer

    info = get_customer(_open(args), args.id)
    _emit(args, info.to_json(), lambda: _customer_text(info))
    return 0


def cmd_credits_grant(args) -> int:
    from meterdesk.services.credits import grant_credits

    result = grant_credits(_open(args), args.customer, args.amount, args.request_id, note=args.note, granted_at=args.at)
    s = result.to_json()
    _emit(args, s, f"{'duplicate: already granted' if result.duplicate else 'granted'} {s['amount']} {s['currency']} to {args.customer}; balance {s['balance']}")
    return 0


def cmd_usage_record(args) -> int:
    from meterdesk.services.recording import record_usage

    result = record_usage(_open(args), args.customer, args.unit, args.amount, args.request_id, occurred_at=args.at, note=args.note, source="cli")
    s = result.to_json()
    text = f"{'duplicate of' if result.duplicate else 'recorded'} entry {result.entry_id} in {result.period}{' (late)' if result.late else ''}"
    if s["charged"] is not None:
        text += f"; charged {s['charged']}, balance {s['balance']}{' — OVER LIMIT' if result.over_limit else ''}"
    _emit(args, s, text)
    return 0


def cmd_usage_import(args) -> int:
    from meterdesk.services.imports import import_usage

    show_progress = sys.stderr.isatty() and not args.json

    def progress(p) -> None:
        if show_progress:
            share = f" ({100 * p.bytes_read // p.total_bytes}%)" if p.total_bytes else ""
            sys.stderr.write(f"\r{p.lines} lines{share}: {p.recorded} recorded, {p.duplicates} duplicates, {p.rejected} rejected")
            sys.stderr.flush()

    result = import_usage(_open(args), args.file, progress=progress)
    if show_progress:
        sys.stderr.write("\n")
    document = result.to_json()

    def text() -> str:
        lines = [f"{result.recorded} recorded, {result.duplicates} duplicates, {result.rejected} rejected"]
        lines += [f"  line {e['line']}: {e['error']}" for e in result.errors[:50]]
        if len(result.errors) > 50:
            lines.append(f"  ... and {len(result.errors) - 50} more (use --json for all)")
        return "\n".join(lines)

    _emit(args, document, text)
    if result.rejected:
        sys.stderr.write(f"error: {result.rejected} line(s) rejected; the valid lines were recorded\n")
        return InvalidInput.exit_status
    return 0


def cmd_usage_correct(args) -> int:
    from meterdesk.services.corrections import correct_entry

    result = correct_entry(_open(args), args.entry_id, args.new_amount, args.reason)
    _emit(args, result.to_json(), f"entry {args.entry_id} reversed by entry {result.reversal_id}" + (f", replaced by entry {result.replacement_id}" if result.replacement_id else ""))
    return 0


def cmd_usage_list(args) -> int:
    from meterdesk.services.entries import EntryFilter, list_entries

    ledger = _open(args)
    entries = list_entries(ledger, EntryFilter.from_strings(ledger, customer=args.customer, unit=args.unit, start=args.from_, end=args.to), limit=args.limit)
    _emit(args, {"entries": [e.to_json() for e in entries]}, lambda: _table(
        [[e.id, e.customer, e.unit, ("-" if e.kind == "reversal" else "") + e.amount_text, e.occurred_text, e.period + ("*" if e.late else ""), e.request_id, e.corrects or "", e.note or ""] for e in entries],
        ["id", "customer", "unit", "amount", "occurred_at", "period", "request_id", "corrects", "note"]))
    return 0


def cmd_usage_summary(args) -> int:
    from meterdesk.services.summary import usage_summary

    summary = usage_summary(_open(args), args.customer, period=args.period, start=args.from_, end=args.to, granularity=args.granularity)
    document = summary.to_json()

    def text() -> str:
        s = document
        lines = [f"{s['customer']} ({s['name']}), {s['period']['name'] or s['period']['start'] + ' .. ' + s['period']['end']}, plan {s['plan']}, {s['currency']}"]
        lines.append(_table([[u["unit"], u["quantity"], u["included"], u["billable"], u["amount"], u["entries"]] for u in s["units"]], ["unit", "quantity", "included", "billable", "amount", "entries"]))
        lines.append(f"base fee {s['base_fee']}   usage {s['usage_amount']}   total {s['total']}" + (f"   balance {s['balance']}" if s["balance"] is not None else ""))
        if s["series"]:
            lines.append(_table([[p["start"], p["unit"], p["quantity"]] for p in s["series"]], ["start", "unit", "quantity"]))
        return "\n".join(lines)

    _emit(args, document, text)
    return 0


def cmd_invoice_preview(args) -> int:
    from meterdesk.services.billing import preview_invoice

    invoice = preview_invoice(_open(args), args.customer, args.period)
    document = invoice.to_json()
    _emit(args, document, lambda: "\n".join([
        f"invoice {'#' + str(invoice.id) if invoice.id else '(preview, period open)'} for {invoice.customer}, {invoice.period}, {invoice.currency}",
        _table([[l["kind"], l["unit"] or "", l["description"], l["quantity"], l["amount"]] for l in document["lines"]], ["kind", "unit", "description", "quantity", "amount"]),
        f"total {document['total']}",
    ]))
    return 0


def cmd_period_close(args) -> int:
    from meterdesk.services.billing import close_period
    from meterdesk.services.shapes import money

    def progress(p) -> None:
        if not args.json:
            sys.stderr.write(f"[{p.done}/{p.total}] {p.customer}\n")

    result = close_period(_open(args), args.period, customer=args.customer, progress=progress)
    _emit(args, result.to_json(), lambda: "\n".join(
        [f"period {result.period}: {len(result.invoices)} invoice(s) closed now, {len(result.already_closed)} already closed"]
        + [f"  #{i.id} {i.customer}: {money(i.total, i.currency)} {i.currency}" for i in result.invoices + result.already_closed]))
    return 0


def cmd_settle(args) -> int:
    from meterdesk.domain.errors import Unavailable
    from meterdesk.services.settlement import refresh_statuses, settle

    def progress(p) -> None:
        sys.stderr.write(f"[{p.done}/{p.total}] invoice {p.invoice_id} {p.customer}: {p.state}" + (f" ({p.error})" if p.error else "") + "\n")

    if args.refresh:
        result = refresh_statuses(_open(args), period=args.period, customer=args.customer)
        problems = [f"invoice {invoice_id}: {error}" for invoice_id, error in result.errors]
        summary = "status(es) could not be read from Stripe"
    else:
        result = settle(_open(args), period=args.period, customer=args.customer, progress=progress)
        problems = [f"invoice {row.invoice_id} ({row.customer}): {row.error}" for row in result.failed]
        summary = "invoice(s) not settled; settling again resumes them once fixed"
    _emit(args, result.to_json(), lambda: "\n".join(
        f"#{i['id']} {i['customer']} {i['period']}: {i['total']} {i['currency']} -> {i['stripe_invoice_id'] or '-'} {i['status']}" for i in result.to_json()["invoices"]) or "nothing to settle")
    if problems:
        sys.stderr.write(f"error: {len(problems)} {summary}: " + "; ".join(problems) + "\n")
        return Unavailable.exit_status
    return 0


# -- the usage API: keys and `serve` (SPEC sections 4 and 6) ----------------------------------------

def cmd_apikey_create(args) -> int:
    from meterdesk.services.apikeys import create_api_key

    created = create_api_key(_open(args), args.name, args.scope)
    # The key alone on the last line, so a script can take it with `tail -n 1`.
    _emit(args, created.to_json(), f"API key {created.info.name!r} created with scope {', '.join(created.info.scopes)}. "
          "Copy it now: it is stored only as a hash and never shown again.\n" + created.key)
    return 0


def cmd_apikey_list(args) -> int:
    from meterdesk.services.apikeys import list_api_keys

    keys = [info.to_json() for info in list_api_keys(_open(args))]
    _emit(args, {"keys": keys}, lambda: _table(
        [[k["name"], ",".join(k["scopes"]), k["created_at"], k["created_by"], k["last_used_at"] or "never", k["revoked_at"] or ""] for k in keys],
        ["name", "scopes", "created_at", "created_by", "last_used_at", "revoked_at"]) if keys else "no API keys")
    return 0


def cmd_apikey_revoke(args) -> int:
    from meterdesk.services.apikeys import revoke_api_key

    info = revoke_api_key(_open(args), args.name)
    _emit(args, info.to_json(), f"API key {info.name!r} revoked; the next request made with it is refused")
    return 0


def cmd_serve(args) -> int:
    import copy

    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from meterdesk.api.app import DB_VARIABLE, RATE_VARIABLE
    from meterdesk.services.ledgers import open_ledger, resolve_url

    if args.workers < 1:
        return _usage_error("argument --workers: must be at least 1")
    if not 0 <= args.port <= 65535:
        return _usage_error("argument --port: must be from 0 to 65535")
    if args.rate_limit is not None and args.rate_limit < 0:
        return _usage_error("argument --rate-limit: must not be negative (0: no limit)")
    url = resolve_url(args.db)
    ledger = open_ledger(url)  # creates or migrates the schema once, before any worker starts
    dialect, name = ledger.dialect, ledger.name
    ledger.close()
    if dialect == "sqlite" and args.workers > 1:
        return _usage_error("--workers: a SQLite ledger is served by one process (it has one writer at a time); use PostgreSQL for more")
    os.environ[DB_VARIABLE] = url
    if args.rate_limit is not None:
        os.environ[RATE_VARIABLE] = str(args.rate_limit)
    logging_config = copy.deepcopy(LOGGING_CONFIG)
    logging_config["loggers"]["meterdesk.api"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    sys.stderr.write(f"serving {name} on http://{args.host}:{args.port} ({args.workers} worker{'s' if args.workers > 1 else ''})\n")
    uvicorn.run(
        "meterdesk.api.app:app_factory",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=logging_config,
        access_log=False,  # uvicorn's access log writes the query string; meterdesk.api.access never does
        server_header=False,
        timeout_keep_alive=5,  # an idle keep-alive connection is closed after 5 s
        timeout_graceful_shutdown=30,  # SIGTERM: stop accepting, finish requests in flight for up to 30 s
        limit_concurrency=2000,  # beyond this many connections and requests, uvicorn answers 503 at once
    )
    return 0


def _usage_error(message: str) -> int:
    sys.stderr.write(f"error: {message}\n")
    return EXIT_USAGE


def _add_api_commands(commands, command) -> None:
    apikey = commands.add_parser("apikey", help="API keys of the usage API").add_subparsers(dest="subcommand", metavar="ACTION", required=True, parser_class=_Parser)
    p = command(apikey, "create", cmd_apikey_create, "create an API key; the key is shown once")
    p.add_argument("name")
    p.add_argument("--scope", required=True, metavar="usage:write[,usage:read]", help="what the key may do: usage:write (record), usage:read (summary, list, balance)")
    command(apikey, "list", cmd_apikey_list, "list API keys (never their secrets)")
    p = command(apikey, "revoke", cmd_apikey_revoke, "revoke an API key; effective on its next request")
    p.add_argument("name")

    p = command(commands, "serve", cmd_serve, "serve the usage API over HTTP (SPEC section 6)", json_output=False)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    p.add_argument("--workers", type=int, default=1, help="server processes (PostgreSQL only; SQLite is served by one)")
    p.add_argument("--rate-limit", dest="rate_limit", type=float, metavar="PER_SECOND",
                   help="requests per second per API key and process (default 1000; 0: no limit; or $METERDESK_API_RATE_LIMIT)")


def cmd_verify(args) -> int:
    from meterdesk.domain.errors import Conflict
    from meterdesk.services.verify import verify_ledger

    show_progress = sys.stderr.isatty() and not args.json

    def progress(p) -> None:
        if show_progress:
            sys.stderr.write(f"[{p.done}/{p.total}] {p.step}\n")

    result = verify_ledger(_open(args), progress=progress)

    def text() -> str:
        checked = ", ".join(f"{count:,} {what.replace('_', ' ')}" for what, count in result.checked.items())
        verdict = "ok" if result.ok else f"{len(result.differences)} difference(s)"
        return "\n".join([str(d) for d in result.differences] + [f"{verdict}; checked {checked} in {result.seconds:.1f} s"])

    _emit(args, result.to_json(), text)
    if not result.ok:
        sys.stderr.write(f"error: verify found {len(result.differences)} difference(s) between the stored figures and the entries\n")
        return Conflict.exit_status
    return 0


# -- the parser ------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="meterdesk",
        description="meterdesk: an exact, append-only usage ledger for usage-based billing. "
        "Without a command, opens the desktop app.",
        epilog="Database: --db URL, else $METERDESK_DB, else the embedded SQLite ledger in your data directory. "
        "Exit status: 2 bad command line, 3 invalid input, 4 conflict, 5 not found, 6 database or Stripe unreachable.",
    )
    parser.add_argument("--db", metavar="URL", help="sqlite:///PATH, a file path, or postgresql+psycopg://user@host/db")
    parser.add_argument("--demo", action="store_true", help="open the desktop app on a seeded demo ledger")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def command(sub, name: str, handler, help_text: str, json_output: bool = True):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        if json_output:
            p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
        return p

    gui = command(commands, "gui", cmd_gui, "open the desktop app", json_output=False)
    gui.add_argument("--demo", action="store_true", help="open a seeded demo ledger")

    db = commands.add_parser("db", help="database schema").add_subparsers(dest="subcommand", metavar="ACTION", required=True, parser_class=_Parser)
    command(db, "upgrade", cmd_db_upgrade, "create or migrate the schema")

    unit = commands.add_parser("unit", help="billable units").add_subparsers(dest="subcommand", metavar="ACTION", required=True, parser_class=_Parser)
    p = command(unit, "add", cmd_unit_add, "define a unit")
    p.add_argument("code")
    p.add_argument("--name", required=True)
    p.add_argument("--decimals", default="0", help="decimal places a usage amount may carry (0..6)")
    p.add_argument("--aggregation", default="sum", help="sum (default), count or max")
    command(unit, "list", cmd_unit_list, "list units")

    plan = commands.add_parser("plan", help="pricing plans").add_subparsers(dest="subcommand", metavar="ACTION", required=True, parser_class=_Parser)
    p = command(plan, "import", cmd_plan_import, "import a plan from a TOML or JSON file (a new version if it exists)")
    p.add_argument("file")
    command(plan, "list", cmd_plan_list, "list plans")
    p = command(plan, "show", cmd_plan_show, "show a plan")
    p.add_argument("code")

    customer = commands.add_parser("customer", help="customers").add_subparsers(dest="subcommand", metavar="ACTION", required=True, parser_class=_Parser)
    p = command(customer, "add", cmd_customer_add, "add a customer on a plan")
    p.add_argument("id")
    p.add_argument("--name", required=True)
    p.add_argument("--plan", required=True)
    p.add_argument("--email")
    p.add_argument("--prepaid", action="store_true", help="charge usage against a prepaid credit balance")
    p.add_argument("--credit-limit", dest="credit_limit", metavar="AMOUNT", help="how far below zero a prepaid balance may go")
    p.add_argument("--start", metavar="DATE", help="first day of the subscription (prorates its first base fee)")
    command(customer, "list", cmd_customer_list, "list customers")
    p = command(customer, "show", cmd_customer_show, "show a customer")
    p.add_argument("id")

    credits = commands.add_parser("credits", help="prepaid credits").add_subparsers(dest="subcommand", metavar="ACTION", required=True, parser_class=_Parser)
    p = command(credits, "grant", cmd_credits_grant, "grant prepaid credits (idempotent by request id)")
    p.add_argument("customer")
    p.add_argument("amount")
    p.add_argument("--request-id", dest="request_id", required=True)
    p.add_argument("--note")
    p.add_argument("--at", metavar="TIMESTAMP", help="when the credit was granted, e.g. the payment date (default now)")

    usage = commands.add_parser("usage", help="the usage ledger").add_subparsers(dest="subcommand", metavar="ACTION", required=True, parser_class=_Parser)
    p = command(usage, "record", cmd_usage_record, "record one usage event (idempotent by request id)")
    p.add_argument("customer")
    p.add_argument("unit")
    p.add_argument("amount")
    p.add_argument("--request-id", dest="request_id", required=True)
    p.add_argument("--at", metavar="TIMESTAMP", help="when the usage happened (ISO 8601; default now)")
    p.add_argument("--note")
    p = command(usage, "import", cmd_usage_import, "import a CSV or JSON Lines file: customer,unit,amount,request_id[,occurred_at][,note]")
    p.add_argument("file")
    p = command(usage, "correct", cmd_usage_correct, "correct an entry: reversal plus replacement")
    p.add_argument("entry_id")
    p.add_argument("new_amount")
    p.add_argument("--reason", required=True)
    p = command(usage, "list", cmd_usage_list, "list ledger entries, newest first")
    p.add_argument("--customer")
    p.add_argument("--unit")
    p.add_argument("--from", dest="from_", metavar="T")
    p.add_argument("--to", metavar="T")
    p.add_argument("--limit", type=int, default=100)
    p = command(usage, "summary", cmd_usage_summary, "a customer's usage, amounts and balance for a period")
    p.add_argument("customer")
    p.add_argument("--period", metavar="YYYY-MM")
    p.add_argument("--from", dest="from_", metavar="T")
    p.add_argument("--to", metavar="T")
    p.add_argument("--granularity", choices=("hour", "day", "month"))

    invoice = commands.add_parser("invoice", help="invoices").add_subparsers(dest="subcommand", metavar="ACTION", required=True, parser_class=_Parser)
    p = command(invoice, "preview", cmd_invoice_preview, "the invoice of a period (frozen once closed)")
    p.add_argument("customer")
    p.add_argument("--period", required=True, metavar="YYYY-MM")

    period = commands.add_parser("period", help="billing periods").add_subparsers(dest="subcommand", metavar="ACTION", required=True, parser_class=_Parser)
    p = command(period, "close", cmd_period_close, "close a period: freeze each customer's invoice")
    p.add_argument("period", metavar="YYYY-MM")
    p.add_argument("--customer")

    p = command(commands, "settle", cmd_settle, "send closed invoices to Stripe (safe to repeat)")
    p.add_argument("--period", metavar="YYYY-MM")
    p.add_argument("--customer")
    p.add_argument("--refresh", action="store_true", help="read back the Stripe status of sent invoices instead of sending")
    _add_api_commands(commands, command)
    command(commands, "verify", cmd_verify, "recompute every derived figure and period seal from the entries; exit 4 on any difference")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args.handler = cmd_gui
    if getattr(args, "limit", 1) is not None and not 1 <= getattr(args, "limit", 1) <= MAX_LIMIT:
        parser.error(f"argument --limit: must be from 1 to {MAX_LIMIT}")
    try:
        return args.handler(args)
    except MeterdeskError as error:
        sys.stderr.write(f"error: {error}\n")
        return error.exit_status
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted; nothing unacknowledged was written\n")
        return 130
    except BrokenPipeError:
        os._exit(0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
