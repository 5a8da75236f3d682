"""The usage API's ASGI application: Starlette routes over the same services as the CLI and the desk.

Every request's database work runs on a worker thread (a bounded pool, so waiting requests never exhaust the
connection pool), never on the event loop. Amounts are read from the JSON text as Decimals: a JSON number is
never turned into a binary float on the way (`parse_float=Decimal`), and NaN or Infinity literals, which
Python's json module would accept, are refused as malformed JSON.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from decimal import Decimal

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from meterdesk.api.openapi import openapi_document
from meterdesk.api.problems import Problem, from_error
from meterdesk.domain.errors import InvalidInput, MeterdeskError, Unavailable
from meterdesk.domain.units import validate_request_id, validate_unit_code
from meterdesk.services.apikeys import ApiKeyRow, KeyChecker
from meterdesk.services.batches import EVENT_FIELDS, MAX_BATCH_EVENTS, UsageEvent, record_batch
from meterdesk.services.recording import MAX_NOTE_LENGTH, record_usage

DB_VARIABLE = "METERDESK_API_DB"  # the ledger URL handed from `meterdesk serve` to each worker process
RATE_VARIABLE = "METERDESK_API_RATE_LIMIT"  # requests per second per key and process; 0: no limit
DEFAULT_RATE = 1000.0
MAX_BODY = 1024 * 1024  # 1 MiB
BODY_TIMEOUT_S = 30.0  # a client that takes longer to send its body is cut off
DATABASE_THREADS = 8  # below SQLAlchemy's 5 + 10 pooled connections, so a waiting request never times out on the pool
SECRET_PARAMETERS = frozenset({"key", "api_key", "apikey", "access_token", "token", "authorization", "bearer"})
MAX_LIST = 1000

access_log = logging.getLogger("meterdesk.api.access")
error_log = logging.getLogger("meterdesk.api")


class _Refused(ValueError):
    pass


def _refuse_constant(name: str):
    raise _Refused(f"{name} is not a number JSON allows")


def parse_json(body: bytes):
    """The body as JSON with exact numbers: floats become Decimals, integers stay ints; 400 otherwise."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Problem(400, f"the body is not UTF-8 text: {error.reason} at byte {error.start}") from None
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)
    except _Refused as error:
        raise Problem(400, f"malformed JSON: {error}") from None
    except RecursionError:
        raise Problem(400, "malformed JSON: nested too deeply") from None
    except ValueError as error:  # JSONDecodeError, or an integer literal of thousands of digits
        raise Problem(400, f"malformed JSON: {str(error).splitlines()[0][:200]}") from None


class RateLimiter:
    """A token bucket per key: `rate` requests a second, bursts up to one second's worth. Per process."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._buckets: dict[int, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def wait_time(self, key_id: int) -> float:
        """0 when the request may go ahead (its token taken), else seconds until a token is there."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, since = self._buckets.get(key_id, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - since) * self.rate)
            if tokens >= 1:
                self._buckets[key_id] = (tokens - 1, now)
                return 0.0
            self._buckets[key_id] = (tokens, now)
            return (1 - tokens) / self.rate


class LedgerHolder:
    """The worker process's one ledger, opened on first use (and again after a failed open), closed at exit."""

    def __init__(self, url: str | None, opener: Callable | None = None) -> None:
        self.url = url
        self._ledger = None
        self._lock = threading.Lock()
        self._opener = opener

    def get(self):
        ledger = self._ledger
        if ledger is not None:
            return ledger
        with self._lock:
            if self._ledger is None:
                from meterdesk.services.ledgers import open_ledger

                self._ledger = (self._opener or open_ledger)(self.url, upgrade=False)
            return self._ledger

    def close(self) -> None:
        with self._lock:
            if self._ledger is not None:
                self._ledger.close()
                self._ledger = None


def create_app(url: str | None = None, *, rate: float | None = None) -> Starlette:
    holder = LedgerHolder(url)
    limiter = RateLimiter(DEFAULT_RATE if rate is None else rate)
    checker_lock = threading.Lock()
    checkers: dict[int, KeyChecker] = {}
    threads: dict[str, anyio.CapacityLimiter] = {}

    def checker() -> KeyChecker:
        ledger = holder.get()
        with checker_lock:
            found = checkers.get(id(ledger))
            if found is None:
                checkers.clear()
                found = checkers[id(ledger)] = KeyChecker(ledger)
            return found

    async def in_thread(function, *args):
        """Run blocking database work on the bounded pool; a service error becomes its problem document."""
        try:
            return await anyio.to_thread.run_sync(function, *args, limiter=threads["database"])
        except MeterdeskError as error:
            raise from_error(error) from None

    async def authorize(request: Request, scope: str) -> ApiKeyRow:
        for name in request.query_params.keys():
            if name.lower() in SECRET_PARAMETERS:
                raise Problem(
                    400, "an API key is never accepted in the URL (URLs end up in logs); send `Authorization: Bearer <key>`",
                    field=name,
                )
        header = request.headers.get("authorization")
        challenge = {"WWW-Authenticate": 'Bearer realm="meterdesk"'}
        if not header:
            raise Problem(401, "send the API key as `Authorization: Bearer <key>`", headers=challenge)
        kind, _, presented = header.partition(" ")
        if kind.lower() != "bearer" or not presented.strip():
            raise Problem(401, "the Authorization header must be `Bearer <key>`", headers=challenge)
        row = await in_thread(lambda: checker().authenticate(presented.strip()))
        if row is None:
            raise Problem(401, "unknown or revoked API key", headers=challenge)
        request.scope.setdefault("state", {})["meterdesk_key"] = row.name
        if scope not in row.scopes:
            raise Problem(403, f"the API key {row.name!r} does not have the scope {scope}")
        wait = limiter.wait_time(row.id)
        if wait > 0:
            raise Problem(429, f"the API key {row.name!r} is over its rate limit of {limiter.rate:g} requests per second",
                          headers={"Retry-After": str(max(1, math.ceil(wait)))})
        return row

    async def read_json(request: Request):
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
            raise Problem(413, f"the body is {declared} bytes; at most {MAX_BODY} are accepted")
        chunks, size = [], 0
        try:
            with anyio.fail_after(BODY_TIMEOUT_S):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > MAX_BODY:
                        raise Problem(413, f"the body is over {MAX_BODY} bytes")
                    chunks.append(chunk)
        except TimeoutError:
            raise Problem(408, f"the body did not arrive within {BODY_TIMEOUT_S:g} s") from None
        if not size:
            raise Problem(400, "malformed JSON: the body is empty")
        return parse_json(b"".join(chunks))

    async def post_usage(request: Request) -> Response:
        key = await authorize(request, "usage:write")
        event = read_event(await read_json(request))
        if isinstance(event, InvalidInput):
            raise Problem(422, event.problem, field=event.field)
        result = await in_thread(lambda: record_usage(
            holder.get(), event.customer, event.unit, event.amount, event.request_id,
            occurred_at=event.occurred_at, note=event.note, source="api", actor=f"api:{key.name}",
        ))
        return JSONResponse(result.to_json(), status_code=200 if result.duplicate else 201)

    async def post_batch(request: Request) -> Response:
        key = await authorize(request, "usage:write")
        document = await read_json(request)
        if not isinstance(document, dict):
            raise Problem(422, f"the body must be a JSON object with `events`, not {_json_type(document)}")
        extra = sorted(set(document) - {"events"})
        if extra:
            raise Problem(422, "unknown field; the body has only `events`", field=extra[0][:100])
        events = document.get("events")
        if not isinstance(events, list):
            raise Problem(422, "must be a list of usage events" if events is not None else "is required", field="events")
        if not 1 <= len(events) <= MAX_BATCH_EVENTS:
            raise Problem(422, f"must hold 1 to {MAX_BATCH_EVENTS} events, not {len(events)}", field="events")
        parsed = [read_event(event) for event in events]
        result = await in_thread(lambda: record_batch(holder.get(), parsed, source="api", actor=f"api:{key.name}"))
        return JSONResponse(result.to_json())

    async def get_summary(request: Request) -> Response:
        await authorize(request, "usage:read")
        q = request.query_params
        customer = _customer_parameter(q.get("customer"))
        from meterdesk.services.summary import usage_summary

        summary = await in_thread_not_found(lambda: usage_summary(
            holder.get(), customer, period=q.get("period") or None, start=_blank(q.get("from"), "from"), end=_blank(q.get("to"), "to"),
            granularity=q.get("granularity") or None,
        ))
        return JSONResponse(summary.to_json())

    async def get_entries(request: Request) -> Response:
        await authorize(request, "usage:read")
        q = request.query_params
        customer = _customer_parameter(q.get("customer"))
        unit = q.get("unit") or None
        if unit is not None:
            _field(validate_unit_code, unit, "unit")
        limit = _whole(q.get("limit"), "limit", 1, MAX_LIST, default=100)
        after = _whole(q.get("after"), "after", 1, 2**63 - 1, default=None)
        from meterdesk.services.catalog import get_customer
        from meterdesk.services.entries import EntryFilter, list_entries

        def read():
            ledger = holder.get()
            get_customer(ledger, customer)  # an unknown customer is a 404, not an empty list
            where = EntryFilter.from_strings(ledger, customer=customer, unit=unit, start=_blank(q.get("from"), "from"), end=_blank(q.get("to"), "to"))
            return list_entries(ledger, where, limit=limit, before_id=after)

        entries = await in_thread_not_found(read)
        following = str(entries[-1].id) if len(entries) == limit else None
        return JSONResponse({"entries": [entry.to_json() for entry in entries], "next": following})

    async def get_balance(request: Request) -> Response:
        await authorize(request, "usage:read")
        customer = _customer_parameter(request.path_params["id"])
        from meterdesk.services.balances import customer_balance

        balance = await in_thread_not_found(lambda: customer_balance(holder.get(), customer))
        return JSONResponse(balance.to_json())

    async def in_thread_not_found(function):
        try:
            return await anyio.to_thread.run_sync(function, limiter=threads["database"])
        except MeterdeskError as error:
            raise from_error(error, not_found=404) from None

    async def get_health(request: Request) -> Response:
        from meterdesk.services.ledgers import ping

        try:
            database = await anyio.to_thread.run_sync(lambda: ping(holder.get()), limiter=threads["database"])
        except Unavailable as error:
            raise Problem(503, str(error)) from None  # RFC 9457 and the served schema: "status" is the number
        return JSONResponse({"status": "ok", "database": database})

    document = openapi_document()

    async def get_openapi(request: Request) -> Response:
        return JSONResponse(document)

    async def problem_handler(request: Request, error: Exception) -> Response:
        assert isinstance(error, Problem)
        return error.response()

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        detail = "no such endpoint" if error.status_code == 404 else str(error.detail)
        return Problem(error.status_code, detail, headers=dict(error.headers or {})).response()

    async def unexpected(request: Request, error: Exception) -> Response:
        error_log.exception("unexpected error in %s %s", request.method, request.url.path)
        return Problem(500, "an unexpected error; nothing acknowledged was lost").response()

    @asynccontextmanager
    async def lifespan(app):
        threads["database"] = anyio.CapacityLimiter(DATABASE_THREADS)
        try:
            yield
        finally:
            holder.close()

    routes = [
        Route("/v1/usage", post_usage, methods=["POST"]),
        Route("/v1/usage", get_entries, methods=["GET"]),
        Route("/v1/usage/batch", post_batch, methods=["POST"]),
        Route("/v1/usage/summary", get_summary, methods=["GET"]),
        Route("/v1/customers/{id:path}/balance", get_balance, methods=["GET"]),
        Route("/v1/health", get_health, methods=["GET"]),
        Route("/v1/openapi.json", get_openapi, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={Problem: problem_handler, HTTPException: http_error, Exception: unexpected},
    )
    return AccessLog(app)


def app_factory():
    """uvicorn's factory (`meterdesk serve`): the ledger URL and rate limit from the environment."""
    rate = os.environ.get(RATE_VARIABLE)
    return create_app(os.environ.get(DB_VARIABLE) or None, rate=float(rate) if rate else None)


def read_event(value) -> UsageEvent | InvalidInput:
    """A usage event object checked for shape: known fields only, the right JSON types, ids that every
    database can store. The amount is left to the unit's rules (record_usage)."""
    try:
        if not isinstance(value, dict):
            raise InvalidInput("event", f"must be a JSON object, not {_json_type(value)}")
        unknown = sorted(set(value) - set(EVENT_FIELDS))
        if unknown:
            raise InvalidInput(unknown[0][:100], f"unknown field; an event has {', '.join(EVENT_FIELDS)}")
        for name in ("customer", "unit", "amount", "request_id"):
            if value.get(name) is None:
                raise InvalidInput(name, "is required")
        customer = validate_request_id(value["customer"], "customer")
        unit = validate_unit_code(value["unit"], "unit")
        amount = value["amount"]
        if isinstance(amount, bool) or not isinstance(amount, (str, int, Decimal)):
            raise InvalidInput("amount", f"must be a decimal number or a string holding one, not {_json_type(amount)}")
        request_id = validate_request_id(value["request_id"], "request_id")
        occurred_at = _optional_text(value.get("occurred_at"), "occurred_at", 100)
        note = _optional_text(value.get("note"), "note", MAX_NOTE_LENGTH)
        return UsageEvent(customer, unit, amount, request_id, occurred_at, note)
    except InvalidInput as error:
        return error


def _optional_text(value, field: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(field, f"must be text, not {_json_type(value)}")
    if len(value) > limit:
        raise InvalidInput(field, f"is {len(value)} characters long; at most {limit} are allowed")
    if "\x00" in value:
        raise InvalidInput(field, "must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(field, "holds an unpaired surrogate (\\ud800-\\udfff), which is not text") from None
    return value


def _json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, Decimal)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _field(validate, value, field: str):
    try:
        return validate(value, field)
    except InvalidInput as error:
        raise Problem(422, error.problem, field=error.field) from None


def _customer_parameter(value: str | None) -> str:
    if value is None or value == "":
        raise Problem(422, "is required", field="customer")
    return _field(validate_request_id, value, "customer")


def _blank(value: str | None, field: str) -> str | None:
    if value is None or value == "":
        return None
    _field(lambda text, name: _optional_text(text, name, 100), value, field)
    return value


def _whole(value: str | None, field: str, low: int, high: int, *, default):
    if value is None or value == "":
        return default
    if not (value.isascii() and value.isdigit()) or not low <= int(value) <= high:
        raise Problem(422, f"must be a whole number from {low} to {high}", field=field)
    return int(value)


class AccessLog:
    """One line per request: client, method, path (never the query string), status, time and the key's
    name. Never a header: the key travels in `Authorization`, which is not logged anywhere."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def sending(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            client = scope.get("client")
            key = (scope.get("state") or {}).get("meterdesk_key")
            access_log.info(
                '%s "%s %s" %d %.1fms key=%s',
                f"{client[0]}:{client[1]}" if client else "-", scope["method"], scope["path"], status[0],
                (time.perf_counter() - started) * 1000, key or "-",
            )
