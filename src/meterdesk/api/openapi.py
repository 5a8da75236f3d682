"""The OpenAPI 3.1 document of the usage API, written by hand to say exactly what the server does
(tests/api runs schemathesis against it: every response must match it)."""

from __future__ import annotations

import copy

from meterdesk.services.batches import MAX_BATCH_EVENTS

DECIMAL = {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$", "description": "an exact decimal number, as text"}
NULLABLE_DECIMAL = {"type": ["string", "null"], "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}
TIMESTAMP = {"type": "string", "description": "ISO 8601 in UTC with Z", "pattern": r"Z$"}
ID_TEXT = {"type": "string", "minLength": 1, "maxLength": 255, "description": "1..255 printable characters"}
UNIT_CODE = {"type": "string", "pattern": r"^[a-z][a-z0-9_]{0,39}$"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _problem(description: str, headers: dict | None = None) -> dict:
    answer = {"description": description, "content": {"application/problem+json": {"schema": _ref("Problem")}}}
    if headers:
        answer["headers"] = headers
    return answer


RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}}
AUTH_PROBLEMS = {
    "400": _problem("malformed request: bad JSON, or an API key in the URL"),
    "401": _problem("missing, unknown or revoked API key"),
    "403": _problem("the key lacks the scope this endpoint needs"),
    "429": _problem("over the key's rate limit", RETRY_AFTER),
    "503": _problem("the database is unreachable"),
}
BODY_PROBLEMS = {
    "408": _problem("the body did not arrive in time"),
    "413": _problem("body over 1 MiB"),
    "422": _problem("an invalid field, including an unknown customer or unit"),
}


def _customer_query(required: bool = True) -> dict:
    return {"name": "customer", "in": "query", "required": required, "schema": ID_TEXT, "description": "the customer's id"}


def _time_query(name: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": {"type": "string"},
            "description": "ISO 8601 timestamp or date; without a zone, the ledger's billing time zone"}


_DOCUMENT = {
    "openapi": "3.1.0",
    "info": {
        "title": "meterdesk usage API",
        "version": "1",
        "description": "Record usage and read summaries and balances (meterdesk SPEC section 6). Decimal numbers in "
        "responses are strings; in requests an amount may be a JSON string or number, read exactly. A request id is "
        "unique per customer forever: a retry returns the original entry with `duplicate: true`.",
    },
    "servers": [{"url": "/"}],
    "security": [{"bearer": []}],
    "paths": {
        "/v1/usage": {
            "post": {
                "operationId": "recordUsage",
                "summary": "Record one usage event (idempotent by request id)",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("UsageEvent")}}},
                "responses": {
                    "201": _json(_ref("RecordResult"), "recorded"),
                    "200": _json(_ref("RecordResult"), "the same request was recorded before: the original entry, duplicate true"),
                    "409": _problem("the request id was recorded before with different content; nothing written"),
                    **AUTH_PROBLEMS,
                    **BODY_PROBLEMS,
                },
            },
            "get": {
                "operationId": "listUsage",
                "summary": "A customer's ledger entries, newest first, paged",
                "parameters": [
                    _customer_query(),
                    {"name": "unit", "in": "query", "required": False, "schema": UNIT_CODE},
                    _time_query("from"),
                    _time_query("to"),
                    {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
                    {"name": "after", "in": "query", "required": False, "schema": {"type": "string", "pattern": "^[1-9][0-9]{0,18}$"},
                     "description": "the `next` cursor of the page before"},
                ],
                "responses": {
                    "200": _json(_ref("EntryPage"), "a page of entries"),
                    "404": _problem("unknown customer"),
                    "422": _problem("an invalid parameter"),
                    **AUTH_PROBLEMS,
                },
            },
        },
        "/v1/usage/batch": {
            "post": {
                "operationId": "recordUsageBatch",
                "summary": f"Record 1 to {MAX_BATCH_EVENTS} usage events, each on its own: a result per event in request order",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("Batch")}}},
                "responses": {
                    "200": _json(_ref("BatchResult"), "each event's result, in request order"),
                    **AUTH_PROBLEMS,
                    **BODY_PROBLEMS,
                },
            },
        },
        "/v1/usage/summary": {
            "get": {
                "operationId": "usageSummary",
                "summary": "A customer's usage, amounts and balance for a period (default: the current one)",
                "parameters": [
                    _customer_query(),
                    {"name": "period", "in": "query", "required": False, "schema": {"type": "string", "pattern": r"^[0-9]{4}-[0-9]{2}$"}},
                    _time_query("from"),
                    _time_query("to"),
                    {"name": "granularity", "in": "query", "required": False, "schema": {"type": "string", "enum": ["hour", "day", "month"]}},
                ],
                "responses": {
                    "200": _json(_ref("Summary"), "the `meterdesk usage summary --json` document"),
                    "404": _problem("unknown customer"),
                    "422": _problem("an invalid parameter"),
                    **AUTH_PROBLEMS,
                },
            },
        },
        "/v1/customers/{id}/balance": {
            "get": {
                "operationId": "customerBalance",
                "summary": "A customer's prepaid balance and what is left of each included quantity this period",
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": ID_TEXT}],
                "responses": {
                    "200": _json(_ref("Balance"), "the customer's standing now"),
                    "404": _problem("unknown customer"),
                    "422": _problem("an invalid customer id"),
                    **AUTH_PROBLEMS,
                },
            },
        },
        "/v1/health": {
            "get": {
                "operationId": "health",
                "summary": "Is the server up and its database reachable (no key needed)",
                "security": [],
                "responses": {
                    "200": _json(_ref("Health"), "up"),
                    "503": _problem("the database is unreachable"),
                },
            },
        },
        "/v1/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document (no key needed)",
                "security": [],
                "responses": {"200": {"description": "the OpenAPI 3.1 document", "content": {"application/json": {"schema": {"type": "object"}}}}},
            },
        },
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "`meterdesk apikey create NAME --scope ...`"}},
        "schemas": {
            "Problem": {
                "type": "object",
                "required": ["type", "title", "status", "detail"],
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                    "field": {"type": "string", "description": "the field at fault, when one is"},
                },
            },
            "UsageEvent": {
                "type": "object",
                "required": ["customer", "unit", "amount", "request_id"],
                "additionalProperties": False,
                "properties": {
                    "customer": ID_TEXT,
                    "unit": UNIT_CODE,
                    "amount": {
                        "description": "positive, at most 10^15, at most the unit's decimals; a string or a number, read exactly",
                        "anyOf": [{"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"}, {"type": "number", "exclusiveMinimum": 0}],
                    },
                    "request_id": ID_TEXT,
                    "occurred_at": {"type": ["string", "null"], "description": "when the usage happened (default now)"},
                    "note": {"type": ["string", "null"], "maxLength": 2000},
                },
            },
            "RecordResult": {
                "type": "object",
                "required": ["entry_id", "duplicate", "charged", "balance", "over_limit"],
                "properties": {
                    "entry_id": {"type": "integer"},
                    "duplicate": {"type": "boolean"},
                    "charged": NULLABLE_DECIMAL,
                    "balance": NULLABLE_DECIMAL,
                    "over_limit": {"type": "boolean"},
                    "period": {"type": "string"},
                    "late": {"type": "boolean"},
                    "charged_exact": NULLABLE_DECIMAL,
                    "balance_exact": NULLABLE_DECIMAL,
                },
            },
            "Batch": {
                "type": "object",
                "required": ["events"],
                "additionalProperties": False,
                "properties": {"events": {"type": "array", "minItems": 1, "maxItems": MAX_BATCH_EVENTS, "items": _ref("UsageEvent")}},
            },
            "BatchResult": {
                "type": "object",
                "required": ["recorded", "duplicates", "rejected", "results"],
                "properties": {
                    "recorded": {"type": "integer"},
                    "duplicates": {"type": "integer"},
                    "rejected": {"type": "integer"},
                    "results": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["index", "status"],
                            "properties": {
                                "index": {"type": "integer"},
                                "status": {"enum": ["recorded", "duplicate", "rejected"]},
                                "entry_id": {"type": "integer"},
                                "charged": NULLABLE_DECIMAL,
                                "balance": NULLABLE_DECIMAL,
                                "over_limit": {"type": "boolean"},
                                "period": {"type": "string"},
                                "late": {"type": "boolean"},
                                "charged_exact": NULLABLE_DECIMAL,
                                "balance_exact": NULLABLE_DECIMAL,
                                "error": {
                                    "type": "object",
                                    "required": ["field", "detail"],
                                    "properties": {"field": {"type": ["string", "null"]}, "detail": {"type": "string"}},
                                },
                            },
                        },
                    },
                },
            },
            "Summary": {
                "type": "object",
                "required": ["customer", "currency", "period", "units", "base_fee", "usage_amount", "total", "balance", "series"],
                "properties": {
                    "customer": {"type": "string"},
                    "name": {"type": "string"},
                    "mode": {"enum": ["invoice", "prepaid"]},
                    "currency": {"type": "string"},
                    "period": {
                        "type": "object",
                        "required": ["start", "end"],
                        "properties": {"start": TIMESTAMP, "end": TIMESTAMP, "name": {"type": ["string", "null"]}},
                    },
                    "plan": {"type": ["string", "null"]},
                    "plan_version": {"type": ["integer", "null"]},
                    "units": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["unit", "quantity", "included", "billable", "amount", "entries"],
                            "properties": {
                                "unit": {"type": "string"}, "name": {"type": "string"}, "quantity": DECIMAL, "included": DECIMAL,
                                "billable": DECIMAL, "amount": DECIMAL, "entries": {"type": "integer"}, "corrections": {"type": "integer"},
                            },
                        },
                    },
                    "base_fee": DECIMAL,
                    "usage_amount": DECIMAL,
                    "total": DECIMAL,
                    "due": DECIMAL,
                    "corrections": {"type": "integer"},
                    "balance": NULLABLE_DECIMAL,
                    "granularity": {"type": ["string", "null"]},
                    "series": {
                        "type": "array",
                        "items": {"type": "object", "required": ["start", "unit", "quantity"],
                                  "properties": {"start": TIMESTAMP, "unit": {"type": "string"}, "quantity": DECIMAL}},
                    },
                },
            },
            "Entry": {
                "type": "object",
                "required": ["id", "customer", "unit", "amount", "occurred_at", "recorded_at", "period", "request_id", "kind",
                             "corrects", "late", "source", "actor", "note", "charged"],
                "properties": {
                    "id": {"type": "integer"},
                    "customer": {"type": "string"},
                    "unit": {"type": "string"},
                    "amount": DECIMAL,
                    "occurred_at": TIMESTAMP,
                    "recorded_at": TIMESTAMP,
                    "period": {"type": "string"},
                    "request_id": {"type": "string"},
                    "kind": {"enum": ["usage", "reversal"]},
                    "corrects": {"type": ["integer", "null"]},
                    "late": {"type": "boolean"},
                    "source": {"enum": ["api", "cli", "import", "gui"]},
                    "actor": {"type": "string"},
                    "note": {"type": ["string", "null"]},
                    "charged": NULLABLE_DECIMAL,
                },
            },
            "EntryPage": {
                "type": "object",
                "required": ["entries", "next"],
                "properties": {"entries": {"type": "array", "items": _ref("Entry")}, "next": {"type": ["string", "null"]}},
            },
            "Balance": {
                "type": "object",
                "required": ["customer", "currency", "mode", "balance", "credit_limit", "over_limit", "period", "units"],
                "properties": {
                    "customer": {"type": "string"},
                    "currency": {"type": "string"},
                    "mode": {"enum": ["invoice", "prepaid"]},
                    "balance": NULLABLE_DECIMAL,
                    "credit_limit": NULLABLE_DECIMAL,
                    "over_limit": {"type": "boolean"},
                    "period": {"type": "string"},
                    "units": {
                        "type": "array",
                        "items": {"type": "object", "required": ["unit", "quantity", "included", "remaining_included"],
                                  "properties": {"unit": {"type": "string"}, "quantity": DECIMAL, "included": DECIMAL,
                                                 "remaining_included": DECIMAL}},
                    },
                },
            },
            "Health": {
                "type": "object",
                "required": ["status", "database"],
                "properties": {"status": {"const": "ok"}, "database": {"enum": ["sqlite", "postgresql"]}},
            },
        },
    },
}


def openapi_document() -> dict:
    return copy.deepcopy(_DOCUMENT)
