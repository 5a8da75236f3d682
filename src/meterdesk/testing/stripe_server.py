"""A local Stripe API server that the real `stripe` library can talk to, for tests and for trying settlement.

It serves the part of the Stripe API that meterdesk settles with (customers, invoice items, invoices) and models
it faithfully enough to catch integration mistakes:

* every response object starts from Stripe's own published example of its resource (`fixtures3.json`, from
  stripe/openapi) and carries the fields the request set, fresh ids, `created` and `livemode: false`;
* every request parameter is checked against the typed parameter classes that ship inside the installed
  `stripe` package (`stripe.params.InvoiceItemCreateParams`, ...), nested ones included, so a misspelt or
  invented parameter is refused the way Stripe refuses it (400, "Received unknown parameter: ...");
* `Idempotency-Key` works like Stripe's: the same key with the same request replays the stored response
  (`Idempotent-Replayed: true`), with different parameters it is an `idempotency_error`;
* faults can be injected (a dropped connection before or after the write is committed, a 500, a 429) to prove
  that a caller which retries never double-invoices.

Run it by hand with `python -m meterdesk.testing.stripe_server --port 12111`.
"""

from __future__ import annotations

import argparse
import copy
import http.server
import json
import os
import re
import secrets
import string
import sys
import threading
import time
import types
import typing
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import stripe
import stripe.params
import typing_extensions

FIXTURES_ENV = "METERDESK_STRIPE_FIXTURES"
DEFAULT_PORT = 12111  # the port stripe-mock uses, so tools that know it find this server too

# Vendored as package data (MIT, its LICENSE beside it), so a lone clone and the installed package both have it.
_DEFAULT_FIXTURES = Path(__file__).resolve().parent / "stripe_fixtures" / "fixtures3.json"

_ALNUM = string.ascii_letters + string.digits
_MAX_LIST_LIMIT = 100
_MAX_IDEMPOTENCY_KEY = 255
_EMBEDDED_LINES = 10  # an invoice object embeds its first lines; the rest are paged from /lines
FAULTS = ("drop_before_commit", "drop_after_commit", "500", "429", "lock_timeout")


# --------------------------------------------------------------------------------------------- fixtures


def load_fixtures(path: str | os.PathLike[str] | None = None) -> dict[str, dict[str, Any]]:
    """Stripe's example objects by resource name (`customer`, `invoice`, `invoiceitem`, ...)."""
    chosen = Path(path or os.environ.get(FIXTURES_ENV) or _DEFAULT_FIXTURES)
    try:
        document = json.loads(chosen.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"Stripe fixtures not found at {chosen}; pass fixtures_path= or set ${FIXTURES_ENV} to the "
            "fixtures3.json file of stripe/openapi"
        ) from None
    resources = document["resources"]
    for name in ("customer", "invoice", "invoiceitem"):
        if name not in resources:
            raise ValueError(f"{chosen} has no resources.{name} fixture")
    return resources


# ------------------------------------------------------------------------------ request parameter schema
#
# The request side's source of truth is the TypedDicts generated from Stripe's OpenAPI spec that ship inside
# the `stripe` package. Each is turned into a small schema tree once; requests are checked against it.


@dataclass(frozen=True, slots=True)
class _Scalar:
    kind: str  # "str", "int", "bool", "decimal", "number" or "any"


@dataclass(frozen=True, slots=True)
class _Literal:
    values: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class _ListOf:
    item: _Node


@dataclass(frozen=True, slots=True)
class _FreeMap:
    """A hash with keys of the caller's choosing (metadata)."""


@dataclass(slots=True, eq=False)
class _Object:
    name: str
    fields: dict[str, _Node] = field(default_factory=dict)
    required: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class _AnyOf:
    options: tuple[_Node, ...]


_Node = _Scalar | _Literal | _ListOf | _FreeMap | _Object | _AnyOf

# Keys every params class inherits from RequestOptions: they travel as headers, never as parameters.
_REQUEST_OPTION_KEYS = frozenset(stripe.RequestOptions.__annotations__)
_SCHEMAS: dict[type, _Object] = {}
_SCHEMA_LOCK = threading.Lock()


def param_schema(params_class: type) -> _Object:
    """The schema of one `stripe.params` TypedDict (cached; nested TypedDicts are followed)."""
    with _SCHEMA_LOCK:
        return _object_schema(params_class, top_level=True)


def _object_schema(cls: type, *, top_level: bool = False) -> _Object:
    if cls in _SCHEMAS:
        return _SCHEMAS[cls]
    node = _Object(cls.__name__)
    _SCHEMAS[cls] = node  # before the fields, so a self-referencing TypedDict terminates
    namespace = vars(sys.modules[cls.__module__])
    names = [k for k in cls.__annotations__ if not (top_level and k in _REQUEST_OPTION_KEYS)]
    node.fields = {k: _annotation_schema(cls.__annotations__[k], namespace) for k in names}
    node.required = frozenset(k for k in cls.__required_keys__ if k in node.fields)
    return node


def _annotation_schema(annotation: Any, namespace: Mapping[str, Any]) -> _Node:
    if isinstance(annotation, typing.ForwardRef):
        annotation = annotation.__forward_arg__
    if isinstance(annotation, str):
        annotation = eval(annotation, dict(namespace))  # noqa: S307 - the stripe package's own annotations
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.NotRequired, typing.Required):
        return _annotation_schema(args[0], namespace)
    if origin in (typing.Union, types.UnionType):
        return _AnyOf(tuple(_annotation_schema(a, namespace) for a in args))
    if origin is typing.Literal:
        return _Literal(args)
    if origin in (list, tuple, Collection):
        return _ListOf(_annotation_schema(args[0], namespace) if args else _Scalar("any"))
    if origin in (dict, Mapping) or (isinstance(origin, type) and issubclass(origin, stripe.StripeObject)):
        return _FreeMap()
    if typing_extensions.is_typeddict(annotation):
        return _object_schema(annotation)
    if annotation is bool:
        return _Scalar("bool")
    if annotation is int:
        return _Scalar("int")
    if annotation is float:
        return _Scalar("number")
    if annotation is Decimal:
        return _Scalar("decimal")
    if annotation is str:
        return _Scalar("str")
    return _Scalar("any")


class ParamError(Exception):
    """A request parameter Stripe would refuse; becomes a 400 invalid_request_error."""

    def __init__(self, message: str, param: str | None):
        super().__init__(message)
        self.message = message
        self.param = param


def check_params(schema: _Object, raw: dict[str, Any]) -> dict[str, Any]:
    """The decoded form parameters, checked against the schema and typed (ints, bools, lists)."""
    return _coerce_object(schema, raw, "")


def _join(prefix: str, key: str) -> str:
    return f"{prefix}[{key}]" if prefix else key


def _coerce(node: _Node, value: Any, param: str) -> Any:
    if isinstance(node, _AnyOf):
        structured = (_Object, _ListOf, _FreeMap)
        ordered = sorted(node.options, key=lambda o: isinstance(o, structured) != isinstance(value, dict))
        first_error: ParamError | None = None
        for option in ordered:
            try:
                return _coerce(option, value, param)
            except ParamError as error:
                first_error = first_error or error
        assert first_error is not None
        raise first_error
    if isinstance(node, _Object):
        if not isinstance(value, dict):
            raise ParamError(f"Invalid object: {param} must be a hash", param)
        return _coerce_object(node, value, param)
    if isinstance(node, _FreeMap):
        if not isinstance(value, dict):
            raise ParamError(f"Invalid hash: {param}", param)
        for key, item in value.items():
            if not isinstance(item, str):
                raise ParamError(f"Invalid string: {_join(param, key)} must be a string", _join(param, key))
        return dict(value)
    if isinstance(node, _ListOf):
        if not isinstance(value, dict) or not all(k.isdigit() for k in value):
            raise ParamError(f"Invalid array: {param}", param)
        items = [value[k] for k in sorted(value, key=int)]
        return [_coerce(node.item, item, f"{param}[{i}]") for i, item in enumerate(items)]
    if isinstance(value, dict):
        raise ParamError(f"Invalid {_scalar_name(node)}: {param} must not be a hash", param)
    if isinstance(node, _Literal):
        for allowed in node.values:
            if value == (str(allowed).lower() if isinstance(allowed, bool) else str(allowed)):
                return allowed
        choices = ", ".join(repr(v) for v in node.values if v != "")
        raise ParamError(f"Invalid {param}: must be one of {choices}", param)
    kind = node.kind
    if kind == "int":
        if re.fullmatch(r"-?\d{1,18}", value) is None:
            raise ParamError(f"Invalid integer: {value}", param)
        return int(value)
    if kind == "bool":
        if value not in ("true", "false"):
            raise ParamError(f"Invalid boolean: {value}", param)
        return value == "true"
    if kind in ("decimal", "number"):
        try:
            number = Decimal(value)
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite():
            raise ParamError(f"Invalid decimal: {value}", param)
        return value  # kept as sent: Stripe echoes decimals as strings
    return value


def _scalar_name(node: _Node) -> str:
    if isinstance(node, _Scalar) and node.kind in ("int", "bool", "decimal"):
        return {"int": "integer", "bool": "boolean", "decimal": "decimal"}[node.kind]
    return "string"


def _coerce_object(node: _Object, value: dict[str, Any], prefix: str) -> dict[str, Any]:
    for key in value:
        if key not in node.fields:
            raise ParamError(f"Received unknown parameter: {_join(prefix, key)}", _join(prefix, key))
    for key in sorted(node.required):
        if key not in value:
            raise ParamError(f"Missing required param: {_join(prefix, key)}.", _join(prefix, key))
    return {key: _coerce(node.fields[key], item, _join(prefix, key)) for key, item in value.items()}


# ------------------------------------------------------------------------------------------ form decoding

_KEY_RE = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")


def decode_form(text: str) -> dict[str, Any]:
    """`a[b][0]=x&expand[]=y` -> {"a": {"b": {"0": "x"}}, "expand": {"0": "y"}}.

    Array indices stay string keys here; the parameter schema knows which hashes are arrays (a metadata
    key may well be "0") and turns those into lists.
    """
    root: dict[str, Any] = {}
    for raw_key, value in parse_qsl(text, keep_blank_values=True):
        match = _KEY_RE.fullmatch(raw_key)
        if match is None:
            raise ParamError(f"Invalid parameter name: {raw_key}", raw_key)
        path = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        container = root
        for depth, segment in enumerate(path):
            if segment == "":
                segment = str(len(container))
            if depth == len(path) - 1:
                if isinstance(container.get(segment), dict):
                    raise ParamError(f"Invalid parameter: {raw_key} is both a value and a hash", raw_key)
                container[segment] = value
            else:
                child = container.setdefault(segment, {})
                if not isinstance(child, dict):
                    raise ParamError(f"Invalid parameter: {raw_key} is both a value and a hash", raw_key)
                container = child
    return root


# ------------------------------------------------------------------------------------------------ errors


class StripeErrorResponse(Exception):
    """An error answer in Stripe's shape: `{"error": {"type": ..., "message": ..., "param": ...}}`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"type": type, "message": message}
        if param is not None:
            self.body["param"] = param
        if code is not None:
            self.body["code"] = code
            self.body["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
        self.headers = dict(headers or {})


def _missing(param: str) -> StripeErrorResponse:
    return StripeErrorResponse(400, f"Missing required param: {param}.", param=param, code="parameter_missing")


def _no_such(kind: str, object_id: str, param: str) -> StripeErrorResponse:
    return StripeErrorResponse(404, f"No such {kind}: '{object_id}'", param=param, code="resource_missing")


# ---------------------------------------------------------------------------------------- the account


class _Account:
    """The objects of one Stripe test-mode account and what the API endpoints do to them."""

    def __init__(self, fixtures: Mapping[str, dict[str, Any]], clock: Callable[[], float], search_lag: float):
        self._fixtures = fixtures
        self._clock = clock
        self._search_lag = search_lag
        self.customers: dict[str, dict[str, Any]] = {}
        self.invoice_items: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}

    def now(self) -> int:
        return int(self._clock())

    def _fresh(self, resource: str, prefix: str, id_length: int, **fields: Any) -> dict[str, Any]:
        obj = copy.deepcopy(self._fixtures[resource])
        obj.update(fields)
        obj["id"] = f"{prefix}_{''.join(secrets.choice(_ALNUM) for _ in range(id_length))}"
        obj["livemode"] = False
        return obj

    # ---- customers

    def create_customer(self, params: dict[str, Any]) -> dict[str, Any]:
        customer = self._fresh(
            "customer",
            "cus",
            14,
            created=self.now(),
            # A new customer has none of the sample values of Stripe's example object.
            address=None,
            balance=0,
            currency=None,
            default_source=None,
            delinquent=False,
            description=None,
            discount=None,
            email=None,
            invoice_prefix=secrets.token_hex(4).upper(),
            metadata={},
            name=None,
            next_invoice_sequence=1,
            phone=None,
            preferred_locales=[],
            shipping=None,
            tax_exempt="none",
            test_clock=None,
            customer_account=None,
        )
        _apply(customer, params, skip={"payment_method", "source", "tax", "tax_id_data", "validate", "cash_balance"})
        self.customers[customer["id"]] = customer
        return customer

    def update_customer(self, customer_id: str, params: dict[str, Any]) -> dict[str, Any]:
        customer = self.customer(customer_id, "id")
        _apply(customer, params, skip={"source", "tax", "validate", "cash_balance"})
        return customer

    def customer(self, customer_id: str, param: str) -> dict[str, Any]:
        if customer_id not in self.customers:
            raise _no_such("customer", customer_id, param)
        return self.customers[customer_id]

    def list_customers(self, params: dict[str, Any]) -> dict[str, Any]:
        found = [c for c in self.customers.values() if _created_matches(c, params.get("created"))]
        if "email" in params:
            found = [c for c in found if c["email"] == params["email"]]
        return _page(found, params, "/v1/customers")

    def search_customers(self, params: dict[str, Any]) -> dict[str, Any]:
        clauses = _parse_search_query(params["query"])
        indexed_before = self._clock() - self._search_lag  # Stripe's search index trails writes
        found = [
            c
            for c in self.customers.values()
            if c["created"] <= indexed_before and all(_clause_matches(c, clause) for clause in clauses)
        ]
        found.sort(key=lambda c: c["created"], reverse=True)
        page_token = params.get("page") or "0"
        if not page_token.isdigit():
            raise StripeErrorResponse(400, f"Invalid page: {page_token}", param="page")
        offset = int(page_token)
        limit = _limit(params)
        page = found[offset : offset + limit]
        more = offset + limit < len(found)
        return {
            "object": "search_result",
            "data": page,
            "has_more": more,
            "next_page": str(offset + limit) if more else None,
            "url": "/v1/customers/search",
        }

    # ---- invoice items

    def create_invoice_item(self, params: dict[str, Any]) -> dict[str, Any]:
        if "customer" not in params:
            raise _missing("customer")
        customer = self.customer(params["customer"], "customer")
        for unsupported in ("price_data", "pricing", "subscription", "customer_account"):
            if unsupported in params:
                raise StripeErrorResponse(
                    400,
                    f"The meterdesk Stripe test server does not model `{unsupported}`; "
                    "give amount or unit_amount_decimal (with quantity) instead.",
                    param=unsupported,
                )
        amount, quantity, unit_amount_decimal = _item_amount(params)
        currency = (params.get("currency") or customer["currency"] or "").lower()
        if not currency:
            raise _missing("currency")
        if re.fullmatch(r"[a-z]{3}", currency) is None:
            raise StripeErrorResponse(400, f"Invalid currency: {currency}.", param="currency")
        now = self.now()
        period = params.get("period") or {"start": now, "end": now}
        if period["end"] < period["start"]:
            raise StripeErrorResponse(
                400, "The end of the period must be greater than or equal to its start.", param="period[end]"
            )
        invoice = None
        if "invoice" in params:
            invoice = self.invoice(params["invoice"], "invoice")
            _require_same_customer_and_currency(invoice, customer["id"], currency)
            if invoice["status"] != "draft":
                raise StripeErrorResponse(
                    400,
                    f"You can only add invoice items to draft invoices; invoice {invoice['id']} is "
                    f"{invoice['status']}.",
                    param="invoice",
                    code="invoice_not_editable",
                )
        item = self._fresh(
            "invoiceitem",
            "ii",
            24,
            amount=amount,
            currency=currency,
            customer=customer["id"],
            date=now,
            description=params.get("description"),
            discountable=params.get("discountable", amount >= 0),
            discounts=[],
            invoice=None,
            metadata={},
            net_amount=amount,
            parent=None,
            period=period,
            pricing={"type": "price_details", "unit_amount_decimal": unit_amount_decimal},
            proration=False,
            quantity=int(quantity) if quantity == quantity.to_integral_value() else None,
            quantity_decimal=str(quantity),
            tax_rates=[],
            test_clock=None,
            customer_account=None,
        )
        _apply(item, params, skip={"amount", "currency", "customer", "invoice", "period", "quantity",
                                   "quantity_decimal", "unit_amount_decimal", "discounts", "tax_behavior",
                                   "tax_code", "tax_rates"})
        if customer["currency"] is None:
            customer["currency"] = currency
        self.invoice_items[item["id"]] = item
        if invoice is not None:
            self._attach(invoice, [item])
        return item

    def invoice_item(self, item_id: str, param: str) -> dict[str, Any]:
        if item_id not in self.invoice_items:
            raise _no_such("invoiceitem", item_id, param)
        return self.invoice_items[item_id]

    def list_invoice_items(self, params: dict[str, Any]) -> dict[str, Any]:
        found = [i for i in self.invoice_items.values() if _created_matches(i, params.get("created"), "date")]
        if "customer" in params:
            found = [i for i in found if i["customer"] == params["customer"]]
        if "invoice" in params:
            found = [i for i in found if i["invoice"] == params["invoice"]]
        if "pending" in params:
            found = [i for i in found if (i["invoice"] is None) == params["pending"]]
        return _page(found, params, "/v1/invoiceitems")

    # ---- invoices

    def create_invoice(self, params: dict[str, Any]) -> dict[str, Any]:
        if "customer" not in params:
            raise _missing("customer")
        customer = self.customer(params["customer"], "customer")
        for unsupported in ("subscription", "from_invoice", "customer_account", "transfer_data", "on_behalf_of"):
            if unsupported in params:
                raise StripeErrorResponse(
                    400, f"The meterdesk Stripe test server does not model `{unsupported}`.", param=unsupported
                )
        method = params.get("collection_method", "charge_automatically")
        now = self.now()
        due_date = params.get("due_date")
        if method == "send_invoice":
            if "days_until_due" in params and due_date is not None:
                raise StripeErrorResponse(
                    400, "You may only specify one of these parameters: days_until_due, due_date.",
                    param="days_until_due",
                )
            if "days_until_due" in params:
                due_date = now + 86400 * params["days_until_due"]
            if due_date is None:
                raise StripeErrorResponse(
                    400,
                    "Missing required param: days_until_due. Invoices with collection_method=send_invoice "
                    "need days_until_due or due_date.",
                    param="days_until_due",
                    code="parameter_missing",
                )
        elif "days_until_due" in params or due_date is not None:
            param = "days_until_due" if "days_until_due" in params else "due_date"
            raise StripeErrorResponse(
                400, f"{param} can only be set when collection_method is send_invoice.", param=param
            )
        currency = (params.get("currency") or customer["currency"] or "usd").lower()
        auto_advance = params.get("auto_advance", False)
        invoice = self._fresh(
            "invoice",
            "in",
            24,
            amount_due=0,
            amount_overpaid=0,
            amount_paid=0,
            amount_remaining=0,
            amount_shipping=0,
            attempt_count=0,
            attempted=False,
            auto_advance=auto_advance,
            automatically_finalizes_at=now + 3600 if auto_advance else None,
            billing_reason="manual",
            collection_method=method,
            created=now,
            currency=currency,
            customer=customer["id"],
            customer_address=customer["address"],
            customer_email=customer["email"],
            customer_name=customer["name"],
            customer_phone=customer["phone"],
            customer_shipping=customer["shipping"],
            customer_tax_exempt=customer["tax_exempt"],
            description=None,
            discounts=[],
            due_date=due_date,
            effective_at=None,
            ending_balance=None,
            footer=None,
            from_invoice=None,
            hosted_invoice_url=None,
            invoice_pdf=None,
            last_finalization_error=None,
            latest_revision=None,
            lines={"object": "list", "data": [], "has_more": False, "url": ""},
            metadata={},
            next_payment_attempt=None,
            number=None,
            parent=None,
            period_end=now,
            period_start=now,
            receipt_number=None,
            shipping_cost=None,
            shipping_details=None,
            starting_balance=customer["balance"],
            statement_descriptor=None,
            status="draft",
            status_transitions={
                "finalized_at": None,
                "marked_uncollectible_at": None,
                "paid_at": None,
                "voided_at": None,
            },
            subtotal=0,
            subtotal_excluding_tax=0,
            test_clock=None,
            total=0,
            total_discount_amounts=[],
            total_excluding_tax=0,
            total_pretax_credit_amounts=[],
            total_taxes=[],
            webhooks_delivered_at=None,
            customer_account=None,
        )
        invoice["lines"]["url"] = f"/v1/invoices/{invoice['id']}/lines"
        _apply(invoice, params, skip={"customer", "collection_method", "currency", "due_date", "auto_advance",
                                      "discounts", "account_tax_ids", "automatic_tax", "custom_fields",
                                      "payment_settings", "rendering", "shipping_cost", "shipping_details",
                                      "issuer", "default_tax_rates"})
        if customer["currency"] is None:
            customer["currency"] = currency
        self.invoices[invoice["id"]] = invoice
        if params.get("pending_invoice_items_behavior", "exclude") == "include":
            pending = [
                item
                for item in self.invoice_items.values()
                if item["customer"] == customer["id"] and item["invoice"] is None and item["currency"] == currency
            ]
            self._attach(invoice, pending)
        return invoice

    def invoice(self, invoice_id: str, param: str) -> dict[str, Any]:
        if invoice_id not in self.invoices:
            raise _no_such("invoice", invoice_id, param)
        return self.invoices[invoice_id]

    def list_invoices(self, params: dict[str, Any]) -> dict[str, Any]:
        found = [i for i in self.invoices.values() if _created_matches(i, params.get("created"))]
        for key in ("customer", "status", "collection_method"):
            if key in params:
                found = [i for i in found if i[key] == params[key]]
        return _page(found, params, "/v1/invoices")

    def list_invoice_lines(self, invoice_id: str, params: dict[str, Any]) -> dict[str, Any]:
        invoice = self.invoice(invoice_id, "invoice")
        # Lines keep the invoice's order (oldest first), unlike top-level lists.
        return _page(list(reversed(invoice["lines"]["data"])), params, f"/v1/invoices/{invoice_id}/lines")

    def finalize_invoice(self, invoice_id: str, params: dict[str, Any]) -> dict[str, Any]:
        invoice = self.invoice(invoice_id, "invoice")
        if invoice["status"] != "draft":
            raise StripeErrorResponse(
                400,
                "This invoice is already finalized, you can't re-finalize a non-draft invoice.",
                code="invoice_not_editable",
            )
        customer = self.customers[invoice["customer"]]
        now = self.now()
        if invoice["number"] is None:  # unless the invoice was created with a number of its own
            invoice["number"] = f"{customer['invoice_prefix']}-{customer['next_invoice_sequence']:04d}"
            customer["next_invoice_sequence"] += 1
        invoice["status"] = "open"
        invoice["status_transitions"]["finalized_at"] = now
        invoice["effective_at"] = now
        invoice["automatically_finalizes_at"] = None
        invoice["ending_balance"] = invoice["starting_balance"]
        if "auto_advance" in params:
            invoice["auto_advance"] = params["auto_advance"]
        if invoice["amount_due"] == 0:  # Stripe marks an invoice with nothing to pay as paid right away
            self._mark_paid(invoice)
        return invoice

    def pay_invoice(self, invoice_id: str, params: dict[str, Any]) -> dict[str, Any]:
        invoice = self.invoice(invoice_id, "invoice")
        if invoice["status"] == "draft":  # Stripe finalizes a draft before paying it
            self.finalize_invoice(invoice_id, {})
            if invoice["status"] == "paid":
                return invoice
        if invoice["status"] in ("paid", "void"):
            raise StripeErrorResponse(
                400, f"Invoice {invoice_id} is already {invoice['status']}.", code="invoice_not_editable"
            )
        self._mark_paid(invoice)
        return invoice

    def void_invoice(self, invoice_id: str, params: dict[str, Any]) -> dict[str, Any]:
        invoice = self.invoice(invoice_id, "invoice")
        if invoice["status"] not in ("open", "uncollectible"):
            raise StripeErrorResponse(
                400,
                f"You can only void open or uncollectible invoices; invoice {invoice_id} is {invoice['status']}.",
                code="invoice_not_editable",
            )
        invoice["status"] = "void"
        invoice["status_transitions"]["voided_at"] = self.now()
        invoice["amount_remaining"] = 0
        return invoice

    def mark_uncollectible(self, invoice_id: str, params: dict[str, Any]) -> dict[str, Any]:
        invoice = self.invoice(invoice_id, "invoice")
        if invoice["status"] != "open":
            raise StripeErrorResponse(
                400,
                f"You can only mark open invoices uncollectible; invoice {invoice_id} is {invoice['status']}.",
                code="invoice_not_editable",
            )
        invoice["status"] = "uncollectible"
        invoice["status_transitions"]["marked_uncollectible_at"] = self.now()
        return invoice

    def _mark_paid(self, invoice: dict[str, Any]) -> None:
        invoice["status"] = "paid"
        invoice["amount_paid"] = invoice["amount_due"]
        invoice["amount_remaining"] = 0
        invoice["attempted"] = True
        invoice["status_transitions"]["paid_at"] = self.now()

    def _attach(self, invoice: dict[str, Any], items: Iterable[dict[str, Any]]) -> None:
        template = self._fixtures["invoice"]["lines"]["data"][0]
        for item in items:
            item["invoice"] = invoice["id"]
            line = copy.deepcopy(template)
            line.update(
                id=f"il_{''.join(secrets.choice(_ALNUM) for _ in range(24))}",
                amount=item["amount"],
                currency=item["currency"],
                description=item["description"],
                discount_amounts=[],
                discountable=item["discountable"],
                discounts=[],
                invoice=invoice["id"],
                livemode=False,
                metadata=dict(item["metadata"]),
                period=dict(item["period"]),
                quantity=item["quantity"],
                quantity_decimal=item["quantity_decimal"],
                subscription=None,
                pretax_credit_amounts=[],
                taxes=[],
                parent={
                    "type": "invoice_item_details",
                    "invoice_item_details": {
                        "invoice_item": item["id"],
                        "proration": False,
                        "proration_details": {"credited_items": None},
                        "subscription": None,
                    },
                    "subscription_item_details": None,
                },
                pricing=dict(item["pricing"]),
                subtotal=item["amount"],
            )
            invoice["lines"]["data"].append(line)
        subtotal = sum(line["amount"] for line in invoice["lines"]["data"])
        invoice.update(
            subtotal=subtotal,
            subtotal_excluding_tax=subtotal,
            total=subtotal,
            total_excluding_tax=subtotal,
            amount_due=max(subtotal + invoice["starting_balance"], 0),
        )
        invoice["amount_remaining"] = invoice["amount_due"] - invoice["amount_paid"]


def _item_amount(params: dict[str, Any]) -> tuple[int, Decimal, str]:
    """(amount in minor units, quantity, unit_amount_decimal as Stripe echoes it) of an invoice item request."""
    if "quantity" in params and "quantity_decimal" in params:
        raise StripeErrorResponse(
            400, "You may only specify one of these parameters: quantity, quantity_decimal.", param="quantity"
        )
    quantity = Decimal(params["quantity_decimal"]) if "quantity_decimal" in params else Decimal(
        params.get("quantity", 1))
    if quantity < 0:
        param = "quantity_decimal" if "quantity_decimal" in params else "quantity"
        raise StripeErrorResponse(400, "This value must be greater than or equal to 0.", param=param)
    if "amount" in params:
        if "unit_amount_decimal" in params:
            raise StripeErrorResponse(
                400, "You may only specify one of these parameters: amount, unit_amount_decimal.", param="amount"
            )
        if "quantity" in params or "quantity_decimal" in params:
            raise StripeErrorResponse(
                400,
                "Received both `amount` and `quantity` parameters. `amount` is the total: pass "
                "`unit_amount_decimal` with `quantity` to charge per unit.",
                param="quantity",
            )
        return params["amount"], quantity, str(params["amount"])
    if "unit_amount_decimal" not in params:
        raise _missing("amount")
    unit = Decimal(params["unit_amount_decimal"])
    if -unit.as_tuple().exponent > 12:
        raise StripeErrorResponse(
            400, "unit_amount_decimal accepts at most 12 decimal places.", param="unit_amount_decimal"
        )
    # Stripe rounds each line to the nearest minor unit, halves away from zero (0.05 * 30 = 1.5 -> 2).
    amount = int((unit * quantity).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return amount, quantity, params["unit_amount_decimal"]


def _require_same_customer_and_currency(invoice: dict[str, Any], customer_id: str, currency: str) -> None:
    if invoice["customer"] != customer_id:
        raise StripeErrorResponse(
            400,
            f"The invoice {invoice['id']} belongs to customer {invoice['customer']}, not {customer_id}.",
            param="invoice",
        )
    if invoice["currency"] != currency:
        raise StripeErrorResponse(
            400,
            f"The currency of the invoice item ({currency}) must match the invoice's ({invoice['currency']}).",
            param="currency",
        )


def _apply(obj: dict[str, Any], params: Mapping[str, Any], *, skip: Collection[str] = ()) -> None:
    """Overwrite the object's fields with what the request set (metadata merges, '' unsets)."""
    for key, value in params.items():
        if key in skip or key == "expand":
            continue
        if key == "metadata":
            if value == "":
                obj["metadata"] = {}
                continue
            _check_metadata(value)
            merged = {**obj.get("metadata", {}), **value}
            obj["metadata"] = {k: v for k, v in merged.items() if v != ""}
        elif key in obj:
            if value == "":
                obj[key] = None
            elif isinstance(value, dict) and isinstance(obj[key], dict):
                obj[key] = {**obj[key], **value}
            else:
                obj[key] = value


def _check_metadata(metadata: Mapping[str, str]) -> None:
    if len(metadata) > 50:
        raise StripeErrorResponse(400, "Metadata can have up to 50 keys.", param="metadata")
    for key, value in metadata.items():
        if len(key) > 40:
            raise StripeErrorResponse(
                400, f"Metadata keys can have up to 40 characters: {key!r}.", param=f"metadata[{key}]"
            )
        if len(value) > 500:
            raise StripeErrorResponse(
                400, f"Metadata values can have up to 500 characters: metadata[{key}].", param=f"metadata[{key}]"
            )


def _limit(params: Mapping[str, Any]) -> int:
    limit = params.get("limit", 10)
    if not 1 <= limit <= _MAX_LIST_LIMIT:
        raise StripeErrorResponse(
            400, f"This value must be between 1 and {_MAX_LIST_LIMIT} (it currently is '{limit}').", param="limit"
        )
    return limit


def _created_matches(obj: Mapping[str, Any], created: Any, field_name: str = "created") -> bool:
    if created is None:
        return True
    value = obj[field_name]
    if isinstance(created, int):
        return value == created
    checks = {"gt": value.__gt__, "gte": value.__ge__, "lt": value.__lt__, "lte": value.__le__}
    return all(checks[op](bound) for op, bound in created.items())


def _page(objects: list[dict[str, Any]], params: Mapping[str, Any], url: str) -> dict[str, Any]:
    """A Stripe list object: newest first, `limit` long, cut by `starting_after` / `ending_before`."""
    ordered = list(reversed(objects))  # stored oldest first; Stripe lists newest first
    limit = _limit(params)
    ids = [o["id"] for o in ordered]
    for cursor in ("starting_after", "ending_before"):
        if cursor in params and params[cursor] not in ids:
            raise StripeErrorResponse(400, f"No such object: '{params[cursor]}'", param=cursor)
    if "starting_after" in params:
        rest = ordered[ids.index(params["starting_after"]) + 1 :]
        page, more = rest[:limit], len(rest) > limit
    elif "ending_before" in params:
        rest = ordered[: ids.index(params["ending_before"])]
        page, more = rest[-limit:], len(rest) > limit
    else:
        page, more = ordered[:limit], len(ordered) > limit
    return {"object": "list", "data": page, "has_more": more, "url": url}


_CLAUSE_RE = re.compile(
    r"""\s*(?P<field>metadata\[(?P<q1>['"])(?P<key>.+?)(?P=q1)\]|[a-z_]+)\s*(?P<op>[:~])\s*"""
    r"""(?P<q2>['"])(?P<value>(?:\\.|(?!(?P=q2)).)*)(?P=q2)\s*"""
)


def _parse_search_query(query: str) -> list[tuple[str, str | None, str, str]]:
    """Clauses `field:'value'`, `field~'part'` or `metadata['key']:'value'` joined by AND (Stripe's search syntax)."""
    clauses = []
    for part in re.split(r"\s+AND\s+", query.strip(), flags=re.IGNORECASE):
        match = _CLAUSE_RE.fullmatch(part)
        if match is None or (match["key"] is None and match["field"] not in ("email", "name", "phone")):
            raise StripeErrorResponse(
                400,
                f"The meterdesk Stripe test server cannot search for {part!r}: it knows AND-joined clauses on "
                "email, name, phone and metadata['key'].",
                param="query",
            )
        value = re.sub(r"\\(.)", r"\1", match["value"])
        clauses.append(("metadata" if match["key"] else match["field"], match["key"], match["op"], value))
    return clauses


def _clause_matches(customer: Mapping[str, Any], clause: tuple[str, str | None, str, str]) -> bool:
    field_name, key, op, value = clause
    actual = customer["metadata"].get(key) if key is not None else customer.get(field_name)
    if actual is None:
        return False
    return actual == value if op == ":" else value.lower() in actual.lower()


# --------------------------------------------------------------------------------------------- routing


@dataclass(frozen=True, slots=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    params_class: str
    action: str
    writes: bool


def _route(method: str, path: str, params_class: str, action: str) -> _Route:
    regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$")
    getattr(stripe.params, params_class)  # fail loudly at import if the stripe package renamed a class
    return _Route(method, regex, params_class, action, writes=method == "POST")


_ROUTES = (
    _route("POST", "/v1/customers", "CustomerCreateParams", "create_customer"),
    _route("GET", "/v1/customers", "CustomerListParams", "list_customers"),
    _route("GET", "/v1/customers/search", "CustomerSearchParams", "search_customers"),
    _route("GET", "/v1/customers/{id}", "CustomerRetrieveParams", "retrieve_customer"),
    _route("POST", "/v1/customers/{id}", "CustomerUpdateParams", "update_customer"),
    _route("POST", "/v1/invoiceitems", "InvoiceItemCreateParams", "create_invoice_item"),
    _route("GET", "/v1/invoiceitems", "InvoiceItemListParams", "list_invoice_items"),
    _route("GET", "/v1/invoiceitems/{id}", "InvoiceItemRetrieveParams", "retrieve_invoice_item"),
    _route("POST", "/v1/invoices", "InvoiceCreateParams", "create_invoice"),
    _route("GET", "/v1/invoices", "InvoiceListParams", "list_invoices"),
    _route("GET", "/v1/invoices/{id}", "InvoiceRetrieveParams", "retrieve_invoice"),
    _route("GET", "/v1/invoices/{id}/lines", "InvoiceLineItemListParams", "list_invoice_lines"),
    _route("POST", "/v1/invoices/{id}/finalize", "InvoiceFinalizeInvoiceParams", "finalize_invoice"),
    _route("POST", "/v1/invoices/{id}/pay", "InvoicePayParams", "pay_invoice"),
    _route("POST", "/v1/invoices/{id}/void", "InvoiceVoidInvoiceParams", "void_invoice"),
    _route("POST", "/v1/invoices/{id}/mark_uncollectible", "InvoiceMarkUncollectibleParams", "mark_uncollectible"),
)


# ------------------------------------------------------------------------------------------ the server


@dataclass(slots=True)
class RecordedRequest:
    """One request the server received, for tests to assert on (the API key is not kept)."""

    method: str
    path: str
    params: dict[str, Any]
    idempotency_key: str | None
    status: int | None  # None: the connection was dropped without an answer
    replayed: bool = False
    fault: str | None = None


@dataclass(slots=True)
class _Fault:
    kind: str
    method: str | None
    path_prefix: str | None
    times: int

    def matches(self, method: str, path: str) -> bool:
        return (
            self.times > 0
            and (self.method is None or self.method == method)
            and (self.path_prefix is None or path.startswith(self.path_prefix))
        )


@dataclass(frozen=True, slots=True)
class _StoredResponse:
    method: str
    path: str
    params: dict[str, Any]
    status: int
    body: dict[str, Any]
    request_id: str


@dataclass(slots=True)
class _Answer:
    status: int | None  # None: drop the connection
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


_NO_KEY_MESSAGE = (
    "You did not provide an API key. You need to provide your API key in the Authorization header, using "
    "Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication "
    "for details, or we can help at https://support.stripe.com/."
)


class StripeTestServer:
    """A local Stripe API on 127.0.0.1 for the real `stripe` library (see the module docstring).

    `api_keys`: the secret keys it accepts (default: any `sk_test_...` or `rk_test_...` key).
    `clock`: where `created` and the status timestamps come from (default `time.time`).
    `search_lag`: seconds before a new customer shows up in /v1/customers/search. Stripe's search is
    eventually consistent ("under a minute" behind); 0 makes it immediate.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        fixtures_path: str | os.PathLike[str] | None = None,
        api_keys: Collection[str] | None = None,
        clock: Callable[[], float] = time.time,
        search_lag: float = 0.0,
    ):
        self._address = (host, port)
        self._api_keys = frozenset(api_keys) if api_keys is not None else None
        self._account = _Account(load_fixtures(fixtures_path), clock, search_lag)
        self._lock = threading.RLock()
        self._faults: list[_Fault] = []
        self._idempotent: dict[tuple[str, str], _StoredResponse] = {}
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.requests: list[RecordedRequest] = []

    # ---- life cycle

    def start(self) -> StripeTestServer:
        if self._httpd is not None:
            raise RuntimeError("the Stripe test server is already running")
        httpd = http.server.ThreadingHTTPServer(self._address, _Handler)
        httpd.stripe_server = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="stripe-test-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()  # also waits for the request threads still answering
        assert self._thread is not None
        self._thread.join()
        self._httpd = None
        self._thread = None

    def __enter__(self) -> StripeTestServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the Stripe test server is not running")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """The base address to give the stripe library, e.g. `http://127.0.0.1:40123`."""
        return f"http://{self._address[0]}:{self.port}"

    # ---- what tests look at and steer

    @property
    def customers(self) -> dict[str, dict[str, Any]]:
        return self._account.customers

    @property
    def invoice_items(self) -> dict[str, dict[str, Any]]:
        return self._account.invoice_items

    @property
    def invoices(self) -> dict[str, dict[str, Any]]:
        """Invoices by id, each with all its lines (responses embed only the first ten)."""
        return self._account.invoices

    def inject(self, fault: str, *, method: str | None = None, path_prefix: str | None = None, times: int = 1) -> None:
        """Make the next `times` matching requests fail.

        `drop_before_commit`: close the connection before doing anything.
        `drop_after_commit`: do the request (and store it under its idempotency key), then close the
        connection without answering, as when a network drops the reply.
        `500`: answer a Stripe `api_error` without doing anything (the library retries it).
        `429`: answer a `rate_limit` error without doing anything. Like Stripe's rate limiter it sends no
        `Stripe-Should-Retry` header, so the stripe library does not retry it by itself.
        `lock_timeout`: a 429 `lock_timeout` with `Stripe-Should-Retry: true`, which the library does retry.
        """
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; choose one of {', '.join(FAULTS)}")
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._faults.append(_Fault(fault, method.upper() if method else None, path_prefix, times))

    def pending_faults(self) -> int:
        """How many injected failures have not happened yet."""
        with self._lock:
            return sum(f.times for f in self._faults)

    def mark_invoice(self, invoice_id: str, status: str) -> dict[str, Any]:
        """Move an invoice to `paid`, `void` or `uncollectible`, as payment or staff in the dashboard would."""
        actions = {
            "paid": self._account.pay_invoice,
            "void": self._account.void_invoice,
            "uncollectible": self._account.mark_uncollectible,
        }
        if status not in actions:
            raise ValueError(f"status must be one of {', '.join(actions)}, not {status!r}")
        with self._lock:
            try:
                return actions[status](invoice_id, {})
            except StripeErrorResponse as error:
                raise ValueError(error.body["message"]) from None

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        """The recorded requests with this method and exact path."""
        with self._lock:
            return [r for r in self.requests if r.method == method.upper() and r.path == path]

    # ---- answering

    def answer(self, method: str, target: str, headers: Mapping[str, str], body: str) -> _Answer:
        """What the server answers to one HTTP request (called by the request handler threads)."""
        request_id = "req_" + "".join(secrets.choice(_ALNUM) for _ in range(14))
        split = urlsplit(target)
        path = split.path
        key = headers.get("Idempotency-Key")
        with self._lock:
            record = RecordedRequest(method, path, {}, key, None)
            self.requests.append(record)
            try:
                answer = self._answer_locked(method, path, split.query, headers, body, record, request_id)
            except Exception as error:  # a bug here must read as a server error, not as a dropped connection
                answer = _error_answer(StripeErrorResponse(
                    500, f"The meterdesk Stripe test server failed: {type(error).__name__}: {error}", type="api_error",
                    headers={"Stripe-Should-Retry": "false"},
                ))
            record.status = answer.status
        answer.headers.setdefault("Request-Id", request_id)
        answer.headers["Stripe-Version"] = headers.get("Stripe-Version") or stripe.api_version
        if key and method == "POST":
            answer.headers["Idempotency-Key"] = key
        return answer

    def _answer_locked(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: str,
        record: RecordedRequest,
        request_id: str,
    ) -> _Answer:
        try:
            api_key = self._authenticate(headers.get("Authorization"))
            route, path_args = self._find_route(method, path)
            fault = self._take_fault(method, path)
            record.fault = fault
            if fault == "drop_before_commit":
                return _Answer(None)
            if fault == "500":
                raise StripeErrorResponse(
                    500, "An unknown error occurred (injected by the meterdesk Stripe test server).", type="api_error"
                )
            if fault == "429":
                raise StripeErrorResponse(
                    429, "Too many requests hit the API too quickly. We recommend an exponential backoff of your "
                    "requests.", code="rate_limit",
                )
            if fault == "lock_timeout":
                raise StripeErrorResponse(
                    429,
                    "This object cannot be accessed right now because another API request or Stripe process is "
                    "currently accessing it.",
                    code="lock_timeout",
                    headers={"Stripe-Should-Retry": "true"},
                )
            raw = decode_form(query)
            if method == "POST":
                raw.update(decode_form(body))
            record.params = raw
            params = check_params(param_schema(getattr(stripe.params, route.params_class)), raw)
            record.params = params
            idempotency_key = headers.get("Idempotency-Key") if route.writes else None
            if idempotency_key and len(idempotency_key) > _MAX_IDEMPOTENCY_KEY:
                raise StripeErrorResponse(
                    400,
                    f"Idempotency keys can be up to {_MAX_IDEMPOTENCY_KEY} characters long; this one has "
                    f"{len(idempotency_key)}.",
                    type="idempotency_error",
                )
            if idempotency_key:
                stored = self._idempotent.get((api_key, idempotency_key))
                if stored is not None:
                    answer = self._replay(stored, method, path, params, idempotency_key)
                    record.replayed = True
                    return _Answer(None) if fault == "drop_after_commit" else answer
            status, response = self._perform(route, path_args, params)
            if idempotency_key:
                self._idempotent[(api_key, idempotency_key)] = _StoredResponse(
                    method, path, params, status, response, request_id
                )
            if fault == "drop_after_commit":
                return _Answer(None)
            return _Answer(status, response)
        except ParamError as error:
            return _error_answer(StripeErrorResponse(400, error.message, param=error.param))
        except StripeErrorResponse as error:
            return _error_answer(error)

    def _authenticate(self, authorization: str | None) -> str:
        if not authorization or not authorization.startswith("Bearer ") or not authorization[7:].strip():
            raise StripeErrorResponse(401, _NO_KEY_MESSAGE, headers={"WWW-Authenticate": 'Bearer realm="Stripe"'})
        api_key = authorization[7:].strip()
        accepted = api_key in self._api_keys if self._api_keys is not None else api_key.startswith(
            ("sk_test_", "rk_test_"))
        if not accepted:
            shown = api_key[:8] + "*" * 4 + api_key[-4:] if len(api_key) > 12 else "****"
            raise StripeErrorResponse(
                401, f"Invalid API Key provided: {shown}", headers={"WWW-Authenticate": 'Bearer realm="Stripe"'}
            )
        return api_key

    def _find_route(self, method: str, path: str) -> tuple[_Route, dict[str, str]]:
        for route in _ROUTES:
            match = route.pattern.match(path)
            if match and route.method == method:
                return route, match.groupdict()
        raise StripeErrorResponse(
            404,
            f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can help at "
            "https://support.stripe.com/.",
        )

    def _take_fault(self, method: str, path: str) -> str | None:
        for fault in self._faults:
            if fault.matches(method, path):
                fault.times -= 1
                if fault.times == 0:
                    self._faults.remove(fault)
                return fault.kind
        return None

    def _replay(
        self, stored: _StoredResponse, method: str, path: str, params: dict[str, Any], key: str
    ) -> _Answer:
        if (stored.method, stored.path) != (method, path):
            raise StripeErrorResponse(
                400,
                f"Keys for idempotent requests can only be used for the same endpoint they were first used for "
                f"('{stored.method} {stored.path}' vs '{method} {path}'). Try using a key other than '{key}' if "
                "you meant to execute a different request.",
                type="idempotency_error",
            )
        if stored.params != params:
            raise StripeErrorResponse(
                400,
                "Keys for idempotent requests can only be used with the same parameters they were first used with. "
                f"Try using a key other than '{key}' if you meant to execute a different request.",
                type="idempotency_error",
            )
        return _Answer(
            stored.status,
            stored.body,
            {"Idempotent-Replayed": "true", "Original-Request": stored.request_id},
        )

    def _perform(self, route: _Route, path_args: dict[str, str], params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Run the endpoint; the answer (an error too) is what an idempotency key stores."""
        account = self._account
        object_id = path_args.get("id", "")
        try:
            action = route.action
            if action == "retrieve_customer":
                result = account.customer(object_id, "id")
            elif action == "retrieve_invoice_item":
                result = account.invoice_item(object_id, "id")
            elif action == "retrieve_invoice":
                result = account.invoice(object_id, "id")
            elif "id" in path_args:
                result = getattr(account, action)(object_id, params)
            else:
                result = getattr(account, action)(params)
            return 200, self._render(result, params.get("expand", []))
        except StripeErrorResponse as error:
            return error.status, {"error": error.body}

    def _render(self, obj: dict[str, Any], expand: list[str]) -> dict[str, Any]:
        """A snapshot of an object as the API returns it: embedded invoice lines cut, `expand` applied."""
        if obj.get("object") in ("list", "search_result"):
            rendered = dict(obj)
            data_expand = [e[len("data."):] for e in expand if e.startswith("data.")]
            rendered["data"] = [self._render(o, data_expand) for o in obj["data"]]
            return rendered
        rendered = copy.deepcopy(obj)
        if rendered.get("object") == "invoice":
            lines = rendered["lines"]
            lines["has_more"] = len(lines["data"]) > _EMBEDDED_LINES
            lines["data"] = lines["data"][:_EMBEDDED_LINES]
        for path in expand:
            if path in ("customer", "invoice") and isinstance(rendered.get(path), str):
                target = self._account.customers if path == "customer" else self._account.invoices
                rendered[path] = self._render(target[rendered[path]], [])
            elif path != "lines" or rendered.get("object") != "invoice":
                raise StripeErrorResponse(400, f"This property cannot be expanded ({path}).", param="expand")
        return rendered


def _error_answer(error: StripeErrorResponse) -> _Answer:
    return _Answer(error.status, {"error": error.body}, dict(error.headers))


class _Handler(http.server.BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so stopping the server never waits on an idle keep-alive client.
    protocol_version = "HTTP/1.0"
    server_version = "meterdesk-stripe-test-server"

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8") if length else ""
        server: StripeTestServer = self.server.stripe_server  # type: ignore[attr-defined]
        answer = server.answer(method, self.path, self.headers, body)
        if answer.status is None:
            self.close_connection = True  # the caller sees the connection closed without a reply
            return
        payload = json.dumps(answer.body, indent=2).encode("utf-8")
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # the server records requests itself; stderr noise helps nobody


# ------------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m meterdesk.testing.stripe_server",
        description="Serve a local Stripe test API for trying meterdesk settlement.",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--fixtures", help=f"fixtures3.json to start objects from (default ${FIXTURES_ENV} or "
                        f"{_DEFAULT_FIXTURES})")
    args = parser.parse_args(argv)
    server = StripeTestServer(port=args.port, host=args.host, fixtures_path=args.fixtures)
    with server:
        print(f"Stripe test server listening on {server.url}", flush=True)
        print(f"  export METERDESK_STRIPE_API_BASE={server.url}", flush=True)
        print("  export STRIPE_API_KEY=sk_test_local   (any sk_test_ key is accepted)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopping", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
