"""meterdesk's adapter to Stripe (the only module that imports `stripe`): customers, invoice items, invoices.

Every write carries an `Idempotency-Key` built from meterdesk's own ids, never a random one, so a settlement
that crashes or loses its connection halfway can simply be run again: Stripe replays the first answer instead
of creating a second object. Stripe forgets idempotency keys after 24 hours, so before creating anything the
gateway also looks for the object a previous run may have made (by the meterdesk ids in its metadata); a
rerun days later still finds it instead of invoicing twice.

Amounts cross this boundary as integers in the currency's minor unit (cents), as Stripe counts them; rounding
is meterdesk's business and happens before.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeVar
from urllib.parse import urlsplit

import stripe

from meterdesk.domain.errors import InvalidInput, MeterdeskError, Unavailable

__all__ = [
    "API_BASE_ENV",
    "API_KEY_ENV",
    "KEYRING_SERVICE",
    "KEYRING_USERNAME",
    "StripeCustomerSpec",
    "StripeFailed",
    "StripeGateway",
    "StripeItemSpec",
    "StripeKeyMissing",
    "StripeKeyRejected",
    "StripeRejected",
    "StripeUnavailable",
    "api_key_from_environment",
    "idempotency_key",
    "key_mode",
    "set_api_key_in_keyring",
]

API_KEY_ENV = "STRIPE_API_KEY"
API_BASE_ENV = "METERDESK_STRIPE_API_BASE"
KEYRING_SERVICE = "meterdesk"
KEYRING_USERNAME = "stripe_api_key"

_TIMEOUT = (10.0, 60.0)  # seconds to connect, seconds to wait for an answer (finalizing can take a while)
_DAYS_UNTIL_DUE = 30
_log = logging.getLogger(__name__)
_T = TypeVar("_T")

_KEY_HELP = (
    f"set {API_KEY_ENV} to a Stripe secret key (sk_test_... or sk_live_...), or store one in the OS keyring "
    f"(service {KEYRING_SERVICE!r}, user {KEYRING_USERNAME!r}, e.g. `keyring set {KEYRING_SERVICE} {KEYRING_USERNAME}`)"
)
_RERUN = "Nothing is lost: settlement can be run again safely once Stripe answers."


# ------------------------------------------------------------------------------------------------ errors


class StripeKeyMissing(Unavailable):
    """No Stripe API key is configured."""


class StripeKeyRejected(StripeKeyMissing):
    """Stripe refused the configured API key (wrong, revoked, or for another account)."""


class StripeUnavailable(Unavailable):
    """Stripe could not be reached, or kept failing or rate-limiting after the retries."""


class StripeFailed(StripeUnavailable):
    """Stripe answered, with an error of its own (a 5xx, or 429 rate limits), after the retries.

    Settling again later is as safe as after an outage, so it stays a StripeUnavailable; but what Stripe
    said is kept, so nobody is told Stripe "could not be reached" when it answered HTTP 500."""

    def __init__(self, message: str, *, http_status: int | None, stripe_message: str | None):
        super().__init__(message)
        self.http_status = http_status
        self.stripe_message = stripe_message


class StripeRejected(MeterdeskError):
    """Stripe refused a request as invalid; carries Stripe's own message."""

    # SPEC section 4: exit status 6 is "database or Stripe unreachable / failed".
    exit_status = 6

    def __init__(self, message: str, *, stripe_message: str | None = None, param: str | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.stripe_message = stripe_message
        self.param = param
        self.code = code


# ------------------------------------------------------------------------------------------ what is sent


@dataclass(frozen=True, slots=True)
class StripeCustomerSpec:
    """The meterdesk customer a Stripe customer stands for."""

    meterdesk_id: str
    name: str
    email: str | None = None


@dataclass(frozen=True, slots=True)
class StripeItemSpec:
    """One line of a closed meterdesk invoice, as a Stripe invoice item.

    Give either `amount_minor` (the line's amount, already rounded, in the currency's minor unit: the Stripe
    total then equals meterdesk's to the cent) or `unit_amount_decimal` and `quantity` (the unit price in
    *minor* units, up to 12 decimal places, as Stripe takes it: EUR 0.001 per call is Decimal("0.1"); Stripe
    rounds quantity * unit_amount_decimal half up). Period bounds are epoch seconds.
    """

    line_id: int
    invoice_id: int
    description: str
    currency: str
    amount_minor: int | None
    unit_amount_decimal: Decimal | None
    quantity: int | None
    period_start: int
    period_end: int

    def __post_init__(self) -> None:
        if (self.amount_minor is None) == (self.unit_amount_decimal is None):
            raise ValueError("give either amount_minor or unit_amount_decimal (with quantity), not both or neither")
        if self.amount_minor is not None and self.quantity is not None:
            raise ValueError("quantity goes with unit_amount_decimal; amount_minor is already the line's total")
        if self.unit_amount_decimal is not None:
            if not self.unit_amount_decimal.is_finite() or -self.unit_amount_decimal.as_tuple().exponent > 12:
                raise ValueError("unit_amount_decimal must be a finite Decimal with at most 12 decimal places")
            if self.quantity is None or self.quantity < 0:
                raise ValueError("unit_amount_decimal needs a quantity of 0 or more")
        if len(self.currency) != 3 or not self.currency.isalpha():
            raise ValueError(f"currency must be an ISO 4217 code, not {self.currency!r}")
        if self.period_end < self.period_start:
            raise ValueError("period_end must not be before period_start")


# ------------------------------------------------------------------------------------------------ keys

_KEY_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:@+")
_MAX_KEY_LENGTH = 255  # Stripe's limit


def idempotency_key(kind: str, *ids: object) -> str:
    """`meterdesk-{kind}-{id}-{id}...`, the Idempotency-Key of one meterdesk write; the same ids, the same key.

    Customer ids are the product's own strings: one that would not survive an HTTP header (spaces, non-ASCII)
    or would make the key longer than Stripe allows is replaced by its SHA-256, still derived from it alone.
    """
    parts = [str(i) for i in ids]
    key = "-".join(["meterdesk", kind, *parts])
    if len(key) <= _MAX_KEY_LENGTH and all(c in _KEY_SAFE for c in key):
        return key
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return f"meterdesk-{kind}-sha256-{digest}"



def api_key_from_environment() -> str | None:
    """$STRIPE_API_KEY, else the key stored in the OS keyring, else None."""
    key = os.environ.get(API_KEY_ENV, "").strip()
    if key:
        return key
    try:
        import keyring

        stored = keyring.get_password(KEYRING_SERVICE, KEYRING_USERNAME)
    except Exception as error:  # noqa: BLE001 - no backend, a locked or broken one: all mean "no key here"
        _log.debug("no Stripe key from the OS keyring (%s)", type(error).__name__)
        return None
    return stored.strip() if stored and stored.strip() else None


def key_mode(api_key: str) -> str:
    """"test" for a Stripe test-mode key (sk_test_..., rk_test_...), else "live": a key not known to be a
    test key is treated as one that sends real invoices to real customers."""
    return "test" if api_key.strip().startswith(("sk_test_", "rk_test_")) else "live"


def set_api_key_in_keyring(api_key: str) -> None:
    """Store the Stripe secret key in the OS keyring, where meterdesk finds it when $STRIPE_API_KEY is unset."""
    if not api_key.strip():
        raise InvalidInput("api_key", "is empty")
    try:
        import keyring

        keyring.set_password(KEYRING_SERVICE, KEYRING_USERNAME, api_key.strip())
    except Exception as error:  # noqa: BLE001 - whatever the backend raises, the key was not stored
        raise Unavailable(
            f"could not store the Stripe API key in the OS keyring ({type(error).__name__}); "
            f"set {API_KEY_ENV} instead"
        ) from None


# ----------------------------------------------------------------------------------------------- gateway


class StripeGateway:
    """Talks to Stripe for settlement. Close it (or use it as a context manager) to free its connections."""

    def __init__(self, api_key: str | None = None, api_base: str | None = None, max_network_retries: int = 3):
        api_key = api_key or api_key_from_environment()
        if not api_key:
            raise StripeKeyMissing(f"No Stripe API key: {_KEY_HELP}.")
        api_base = (api_base or os.environ.get(API_BASE_ENV, "")).strip().rstrip("/") or None
        if api_base is not None:
            parts = urlsplit(api_base)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise InvalidInput(API_BASE_ENV, f"must be an http:// or https:// address, not {api_base!r}")
        self.api_base = api_base or stripe.DEFAULT_API_BASE
        self._max_retries = max(0, max_network_retries)
        self._http = stripe.RequestsClient(timeout=_TIMEOUT)
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base else None,
            max_network_retries=self._max_retries,
            http_client=self._http,
        )

    @classmethod
    def from_environment(cls) -> StripeGateway:
        """A gateway with the key from $STRIPE_API_KEY or the keyring and the base from $METERDESK_STRIPE_API_BASE."""
        return cls()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> StripeGateway:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- customers

    def ensure_customer(self, spec: StripeCustomerSpec, existing_id: str | None) -> str:
        """The id of the Stripe customer for this meterdesk customer, created if there is none yet.

        With `existing_id` (recorded by an earlier settlement) the customer is checked and its name and email
        brought up to date (an email meterdesk does not have is left as Stripe has it).
        """
        customers = self._client.v1.customers
        wanted: dict[str, Any] = {"name": spec.name}
        if spec.email:
            wanted["email"] = spec.email
        if existing_id:
            customer = self._call(
                f"look up Stripe customer {existing_id}", lambda: customers.retrieve(existing_id).to_dict()
            )
            if customer.get("deleted"):
                raise StripeRejected(
                    f"Stripe customer {existing_id} (meterdesk customer {spec.meterdesk_id!r}) was deleted in "
                    "Stripe; restore it or clear the recorded Stripe id"
                )
            changes = {k: v for k, v in wanted.items() if (customer.get(k) or "") != v}
            if changes:
                # Derived from the new values, so a retry replays while a later, different change is a new key.
                digest = hashlib.sha256(repr(sorted(changes.items())).encode()).hexdigest()[:16]
                self._call(
                    f"update Stripe customer {existing_id}",
                    lambda: customers.update(
                        existing_id,
                        params=changes,  # type: ignore[arg-type]
                        options={"idempotency_key": idempotency_key("customer", spec.meterdesk_id, "update", digest)},
                    ),
                )
            return existing_id
        found = self._find_customer(spec.meterdesk_id)
        if found is not None:
            return found
        params: dict[str, Any] = {"name": spec.name, "metadata": {"meterdesk_customer_id": spec.meterdesk_id}}
        if spec.email:
            params["email"] = spec.email
        created = self._call(
            f"create the Stripe customer for meterdesk customer {spec.meterdesk_id!r}",
            lambda: customers.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key("customer", spec.meterdesk_id)},
            ).to_dict(),
        )
        return created["id"]

    def _find_customer(self, meterdesk_id: str) -> str | None:
        escaped = meterdesk_id.replace("\\", "\\\\").replace("'", "\\'")
        try:
            result = self._call(
                f"search Stripe for meterdesk customer {meterdesk_id!r}",
                lambda: [
                    c.to_dict()
                    for c in self._client.v1.customers.search(
                        params={"query": f"metadata['meterdesk_customer_id']:'{escaped}'", "limit": 10}
                    ).data
                ],
            )
        except StripeRejected as error:  # search is not offered everywhere; the idempotency key still holds
            _log.warning("Stripe customer search refused (%s); relying on the idempotency key", error)
            return None
        matches = [c for c in result if (c.get("metadata") or {}).get("meterdesk_customer_id") == meterdesk_id]
        if not matches:
            return None
        return min(matches, key=lambda c: (c.get("created") or 0, c["id"]))["id"]

    # ---- invoice items

    def create_invoice_item(self, stripe_customer_id: str, spec: StripeItemSpec, *,
                            stripe_invoice_id: str | None = None) -> str:
        """The id of the Stripe invoice item for this meterdesk invoice line, created if there is none yet.

        Without `stripe_invoice_id` the item waits (pending) for `create_invoice` to collect it; with it, the
        item goes straight onto that draft invoice.
        """
        existing = self._existing_items(stripe_customer_id, spec.invoice_id, stripe_invoice_id, spec.period_start)
        if spec.line_id in existing:
            return _same_item(existing[spec.line_id], spec)
        params: dict[str, Any] = {
            "customer": stripe_customer_id,
            "currency": spec.currency.lower(),
            "description": spec.description,
            "period": {"start": spec.period_start, "end": spec.period_end},
            "metadata": {"meterdesk_invoice_id": str(spec.invoice_id), "meterdesk_line_id": str(spec.line_id)},
        }
        if spec.amount_minor is not None:
            params["amount"] = spec.amount_minor
        else:
            assert spec.unit_amount_decimal is not None
            # A plain numeral: str(Decimal) may say "1E-7", and the same line must always send the same text.
            params["unit_amount_decimal"] = _plain(spec.unit_amount_decimal)
            params["quantity"] = spec.quantity
        if stripe_invoice_id:
            params["invoice"] = stripe_invoice_id
        item = self._call(
            f"create the Stripe invoice item for line {spec.line_id} of meterdesk invoice {spec.invoice_id}",
            lambda: self._client.v1.invoice_items.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key("invoiceitem", spec.invoice_id, spec.line_id)},
            ).to_dict(),
        )
        return item["id"]

    def _existing_items(
        self, stripe_customer_id: str, invoice_id: int, stripe_invoice_id: str | None, since: int
    ) -> dict[int, dict[str, Any]]:
        """Stripe invoice items already made for this meterdesk invoice, by meterdesk line id."""
        params: dict[str, Any] = {"customer": stripe_customer_id, "limit": 100}
        if stripe_invoice_id:
            params["invoice"] = stripe_invoice_id
        else:
            # Settlement happens after the period starts, so older items cannot be this invoice's.
            params["created"] = {"gte": since}
        items = self._call(
            f"list the Stripe invoice items of meterdesk invoice {invoice_id}",
            lambda: _dicts(self._client.v1.invoice_items.list(params=params)),  # type: ignore[arg-type]
        )
        found: dict[int, dict[str, Any]] = {}
        for item in sorted(items, key=lambda i: (i.get("date") or 0, i["id"])):
            metadata = item.get("metadata") or {}
            line = _int_or_none(metadata.get("meterdesk_line_id"))
            if _int_or_none(metadata.get("meterdesk_invoice_id")) == invoice_id and line is not None:
                found.setdefault(line, item)
        return found

    def list_invoice_items(self, stripe_invoice_id: str) -> list[dict[str, Any]]:
        """The invoice items on a Stripe invoice, with the meterdesk ids they carry, for verification."""
        items = self._call(
            f"list the items of Stripe invoice {stripe_invoice_id}",
            lambda: _dicts(self._client.v1.invoice_items.list(params={"invoice": stripe_invoice_id, "limit": 100})),
        )
        result = []
        for item in reversed(items):  # Stripe lists newest first; creation order reads better
            metadata = item.get("metadata") or {}
            result.append({
                "id": item["id"],
                "amount": item["amount"],
                "currency": item["currency"],
                "description": item.get("description"),
                "quantity": item.get("quantity"),
                "meterdesk_invoice_id": _int_or_none(metadata.get("meterdesk_invoice_id")),
                "meterdesk_line_id": _int_or_none(metadata.get("meterdesk_line_id")),
            })
        return result

    # ---- invoices

    def create_invoice(
        self,
        stripe_customer_id: str,
        invoice_id: int,
        period: str,
        description: str | None = None,
        *,
        currency: str | None = None,
        include_pending_items: bool = True,
        days_until_due: int = _DAYS_UNTIL_DUE,
    ) -> str:
        """The id of the draft Stripe invoice for this meterdesk invoice, created if there is none yet.

        It is sent to the customer to pay (`send_invoice`, due in `days_until_due` days): meterdesk keeps no
        payment methods, so Stripe has nothing to charge automatically; `auto_advance` is off, so nothing goes
        out before `finalize_invoice`. With `include_pending_items` the customer's pending invoice items are
        collected into it; any that do not belong to this meterdesk invoice make it a StripeRejected.
        """
        existing = self._find_invoice(stripe_customer_id, invoice_id)
        if existing is None:
            params: dict[str, Any] = {
                "customer": stripe_customer_id,
                "collection_method": "send_invoice",
                "days_until_due": days_until_due,
                "auto_advance": False,
                "pending_invoice_items_behavior": "include" if include_pending_items else "exclude",
                "metadata": {"meterdesk_invoice_id": str(invoice_id), "meterdesk_period": period},
            }
            if description:
                params["description"] = description
            if currency:
                params["currency"] = currency.lower()
            created = self._call(
                f"create the Stripe invoice for meterdesk invoice {invoice_id}",
                lambda: self._client.v1.invoices.create(
                    params=params,  # type: ignore[arg-type]
                    options={"idempotency_key": idempotency_key("invoice", invoice_id)},
                ).to_dict(),
            )
            stripe_invoice_id = created["id"]
        else:
            stripe_invoice_id = existing
        if include_pending_items:
            self._check_lines_belong(stripe_invoice_id, invoice_id)
        return stripe_invoice_id

    def _find_invoice(self, stripe_customer_id: str, invoice_id: int) -> str | None:
        invoices = self._call(
            f"look for the Stripe invoice of meterdesk invoice {invoice_id}",
            lambda: _dicts(self._client.v1.invoices.list(params={"customer": stripe_customer_id, "limit": 100})),
        )
        matches = [i for i in invoices if _invoice_id_of(i) == invoice_id]
        if not matches:
            return None
        return min(matches, key=lambda i: (i.get("created") or 0, i["id"]))["id"]

    def _check_lines_belong(self, stripe_invoice_id: str, invoice_id: int) -> None:
        lines = self._call(
            f"read the lines of Stripe invoice {stripe_invoice_id}",
            lambda: _dicts(self._client.v1.invoices.line_items.list(stripe_invoice_id, params={"limit": 100})),
        )
        strangers = [line for line in lines if _int_or_none((line.get("metadata") or {}).get(
            "meterdesk_invoice_id")) != invoice_id]
        if strangers:
            described = ", ".join(
                f"{line.get('description') or line['id']} ({line['amount']} {line['currency']})"
                for line in strangers[:5]
            )
            raise StripeRejected(
                f"Stripe invoice {stripe_invoice_id} for meterdesk invoice {invoice_id} also collected "
                f"{len(strangers)} pending invoice item(s) that are not part of it: {described}. Remove them "
                "from the draft in the Stripe dashboard, then run settlement again."
            )

    def finalize_invoice(self, stripe_invoice_id: str, invoice_id: int) -> dict[str, Any]:
        """Finalize the draft (it gets its number and becomes `open`); an invoice finalized before is left as is.

        Returns {"id", "status", "total", "number"}; `total` is in minor units, for comparing with meterdesk's.
        """
        invoice = self._call(
            f"look up Stripe invoice {stripe_invoice_id}",
            lambda: self._client.v1.invoices.retrieve(stripe_invoice_id).to_dict(),
        )
        recorded_for = _invoice_id_of(invoice)
        if recorded_for is not None and recorded_for != invoice_id:
            raise StripeRejected(
                f"Stripe invoice {stripe_invoice_id} belongs to meterdesk invoice {recorded_for}, not {invoice_id}"
            )
        if invoice["status"] == "draft":
            invoice = self._call(
                f"finalize Stripe invoice {stripe_invoice_id} (meterdesk invoice {invoice_id})",
                lambda: self._client.v1.invoices.finalize_invoice(
                    stripe_invoice_id, options={"idempotency_key": idempotency_key("finalize", invoice_id)}
                ).to_dict(),
            )
        return {"id": invoice["id"], "status": invoice["status"], "total": invoice["total"],
                "number": invoice.get("number")}

    def invoice_status(self, stripe_invoice_id: str) -> dict[str, Any]:
        """{"id", "status", "total", "amount_paid"} of a Stripe invoice as Stripe sees it now."""
        invoice = self._call(
            f"look up Stripe invoice {stripe_invoice_id}",
            lambda: self._client.v1.invoices.retrieve(stripe_invoice_id).to_dict(),
        )
        return {"id": invoice["id"], "status": invoice["status"], "total": invoice["total"],
                "amount_paid": invoice["amount_paid"]}

    # ---- one call, its retries and its errors

    def _call(self, what: str, request: Callable[[], _T]) -> _T:
        """Run one Stripe request, turning Stripe's errors into meterdesk's.

        The stripe library itself retries dropped connections, 409s and 5xx answers (`max_network_retries`),
        re-sending the same idempotency key. It deliberately does not retry 429 rate limits; those are
        retried here with exponential backoff, which is safe because every write carries its key.
        """
        attempt = 0
        while True:
            try:
                return request()
            except stripe.RateLimitError as error:
                if attempt >= self._max_retries:
                    raise StripeFailed(
                        f"Stripe kept rate-limiting requests while trying to {what} (HTTP 429). Wait a minute; "
                        f"another program may be using the same Stripe account heavily. {_RERUN}",
                        http_status=429, stripe_message=error.user_message,
                    ) from error
                delay = min(0.5 * 2**attempt, 8.0)
                _log.info("Stripe rate limit while trying to %s; retrying in %.1fs", what, delay)
                time.sleep(delay)
                attempt += 1
            except stripe.AuthenticationError as error:
                raise StripeKeyRejected(
                    f"Stripe refused the API key (HTTP {error.http_status}) while trying to {what}: {_KEY_HELP}, "
                    "with a key of the Stripe account meterdesk settles to."
                ) from error
            except stripe.APIConnectionError as error:
                raise StripeUnavailable(
                    f"Could not reach Stripe at {self.api_base} to {what}: {_network_problem(error.user_message)}. "
                    f"Check the network connection (and ${API_BASE_ENV}, if set). {_RERUN}"
                ) from error
            except stripe.IdempotencyError as error:
                raise StripeRejected(
                    f"Stripe refused to {what}: the same meterdesk ids were sent to Stripe before with different "
                    f"contents, so Stripe would not repeat the request ({error.user_message})",
                    stripe_message=error.user_message,
                    code="idempotency_error",
                ) from error
            except (stripe.InvalidRequestError, stripe.PermissionError, stripe.CardError) as error:
                raise StripeRejected(
                    f"Stripe refused to {what}: {error.user_message}",
                    stripe_message=error.user_message,
                    param=getattr(error, "param", None),
                    code=error.code,
                ) from error
            except stripe.StripeError as error:  # APIError (5xx after the retries) and anything unforeseen
                said = (error.user_message or "").strip() or "no message"
                if error.http_status:
                    raise StripeFailed(
                        f"Stripe answered HTTP {error.http_status} while trying to {what}: {said} {_RERUN}",
                        http_status=error.http_status, stripe_message=error.user_message,
                    ) from error
                raise StripeUnavailable(f"Stripe failed while trying to {what} (no answer: {said}). {_RERUN}") from error


def _same_item(item: dict[str, Any], spec: StripeItemSpec) -> str:
    """The id of an invoice item found in Stripe for this line, after checking it charges what the line says."""
    if spec.amount_minor is not None:
        expected = spec.amount_minor
    else:
        assert spec.unit_amount_decimal is not None and spec.quantity is not None
        expected = int((spec.unit_amount_decimal * spec.quantity).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if item.get("amount") != expected or item.get("currency") != spec.currency.lower():
        raise StripeRejected(
            f"Stripe already has invoice item {item['id']} for line {spec.line_id} of meterdesk invoice "
            f"{spec.invoice_id}, charging {item.get('amount')} {item.get('currency')}, but the line now says "
            f"{expected} {spec.currency.lower()}. A closed invoice must not change: check it before settling again."
        )
    return item["id"]


def _dicts(page: Any) -> list[dict[str, Any]]:
    """Every object of a Stripe list, following its pages, as plain dicts."""
    return [obj.to_dict() for obj in page.auto_paging_iter()]


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _invoice_id_of(invoice: Any) -> int | None:
    return _int_or_none((invoice.get("metadata") or {}).get("meterdesk_invoice_id"))


def _network_problem(message: str | None) -> str:
    """A few words on why a connection failed, from the stripe library's long network error message."""
    text = (message or "").lower()
    if "refused" in text:
        return "the connection was refused"
    if "timed out" in text or "timeout" in text:
        return "the connection timed out"
    if "name or service not known" in text or "resolve" in text:
        return "the host name could not be resolved"
    if "remote end closed" in text or "aborted" in text or "reset" in text:
        return "the connection was closed without an answer"
    return "the connection failed"
