"""The benchmark's data, generated from a seed: a catalog (5 units, 3 plans, 1,000 customers) and usage events.

Events cover 30 days (September 2025, one billing period in UTC), in time order, spread over the customers
with a skew (some customers use far more than others) and over the units with fixed shares. 30% of the
customers are prepaid, the rest postpaid. The same seed always gives the same events, on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np

SEED = 20250901
#: Bump when anything below changes what is generated: cached ledgers are rebuilt when it differs.
DATA_VERSION = 3
CUSTOMERS = 1000
PREPAID_SHARE = 0.3
PERIOD = "2025-09"
START_US = int(datetime(2025, 9, 1, tzinfo=UTC).timestamp()) * 1_000_000
DAYS = 30
SUBSCRIPTION_START = "2025-01-01"
PREPAID_GRANT = "500"  # EUR credited to every prepaid customer up front
ACTOR = "bench"


@dataclass(frozen=True, slots=True)
class UnitSpec:
    code: str
    name: str
    decimals: int
    aggregation: str
    share: float  # of all events
    low: int  # smallest amount, scaled by 10^decimals
    high: int  # largest amount, scaled


UNITS = (
    UnitSpec("api_calls", "API calls", 0, "sum", 0.35, 1, 500),
    UnitSpec("tokens", "Tokens", 0, "sum", 0.30, 100, 20_000),
    UnitSpec("storage_gb", "Storage (GB)", 3, "sum", 0.15, 1, 5_000),
    UnitSpec("requests", "Requests", 0, "count", 0.19, 1, 20),
    UnitSpec("seats", "Seats", 0, "max", 0.01, 1, 50),
)

PLANS = (
    {
        "code": "starter",
        "name": "Starter",
        "currency": "EUR",
        "base_fee": "29.00",
        "charges": [
            {"unit": "api_calls", "model": "graduated", "included": "10000",
             "tiers": [{"up_to": "100000", "unit_price": "0.0004"}, {"unit_price": "0.0002", "flat_fee": "10"}]},
            {"unit": "tokens", "model": "per_unit", "included": "1000000", "unit_price": "0.000002"},
            {"unit": "storage_gb", "model": "per_unit", "unit_price": "0.10"},
            {"unit": "requests", "model": "package", "package_size": "1000", "package_price": "0.50"},
            {"unit": "seats", "model": "volume", "tiers": [{"up_to": "10", "unit_price": "5"}, {"unit_price": "4"}]},
        ],
    },
    {
        "code": "growth",
        "name": "Growth",
        "currency": "EUR",
        "base_fee": "99.00",
        "charges": [
            {"unit": "api_calls", "model": "per_unit", "included": "50000", "unit_price": "0.0003"},
            {"unit": "tokens", "model": "graduated",
             "tiers": [{"up_to": "5000000", "unit_price": "0.0000015"}, {"unit_price": "0.000001"}]},
            {"unit": "storage_gb", "model": "per_unit", "included": "100", "unit_price": "0.08"},
            {"unit": "requests", "model": "per_unit", "unit_price": "0.0005"},
            {"unit": "seats", "model": "per_unit", "included": "5", "unit_price": "4"},
        ],
    },
    {
        # Prices are whole micro-euros per smallest amount of each unit, so the fast generator below can
        # price prepaid entries in integers (and bench/verify.py checks it agrees with the services).
        "code": "prepaid",
        "name": "Prepaid",
        "currency": "EUR",
        "base_fee": "5.00",
        "charges": [
            {"unit": "api_calls", "model": "per_unit", "included": "5000", "unit_price": "0.0001"},
            {"unit": "tokens", "model": "graduated",
             "tiers": [{"up_to": "1000000", "unit_price": "0.000002"}, {"unit_price": "0.000001"}]},
            {"unit": "storage_gb", "model": "per_unit", "unit_price": "0.02"},
            {"unit": "requests", "model": "per_unit", "unit_price": "0.001"},
            {"unit": "seats", "model": "per_unit", "included": "1", "unit_price": "2"},
        ],
    },
)


@dataclass(frozen=True, slots=True)
class CustomerSpec:
    number: int  # 0-based; customers are created in this order
    external_id: str
    plan: str
    prepaid: bool


def customer_specs() -> tuple[CustomerSpec, ...]:
    rng = np.random.default_rng(SEED)
    prepaid = rng.random(CUSTOMERS) < PREPAID_SHARE
    growth = rng.random(CUSTOMERS) < 0.4
    return tuple(
        CustomerSpec(n, f"cus-{n + 1:04d}", "prepaid" if prepaid[n] else ("growth" if growth[n] else "starter"), bool(prepaid[n]))
        for n in range(CUSTOMERS)
    )


def customer_weights() -> np.ndarray:
    """How busy each customer is: a skewed spread, so a top-customers list has a top."""
    rng = np.random.default_rng(SEED + 1)
    weights = rng.pareto(2.5, CUSTOMERS) + 0.2
    return weights / weights.sum()


@dataclass(frozen=True)
class Events:
    """`n` usage events in time order; column arrays, indexes into customer_specs() and UNITS."""

    customer: np.ndarray  # int64, 0-based customer number
    unit: np.ndarray  # int64, index into UNITS
    quantity: np.ndarray  # int64, amount scaled by the unit's decimals
    occurred_s: np.ndarray  # int64, seconds since START_US
    tag: np.ndarray  # int64, random part of the request id

    def __len__(self) -> int:
        return len(self.customer)

    def request_ids(self, start: int = 0, stop: int | None = None) -> list[str]:
        stop = len(self) if stop is None else stop
        return [f"{tag:08x}-{number:08x}" for tag, number in zip(self.tag[start:stop].tolist(), range(start, stop))]

    def occurred_us(self) -> np.ndarray:
        return START_US + self.occurred_s * 1_000_000


def generate_events(n: int, seed: int = SEED) -> Events:
    rng = np.random.default_rng([seed, n])
    customer = rng.choice(CUSTOMERS, size=n, p=customer_weights()).astype(np.int64)
    shares = np.array([u.share for u in UNITS])
    unit = rng.choice(len(UNITS), size=n, p=shares / shares.sum()).astype(np.int64)
    low = np.array([u.low for u in UNITS])[unit]
    high = np.array([u.high for u in UNITS])[unit]
    quantity = (low + np.floor(rng.random(n) * (high - low + 1))).astype(np.int64)
    occurred_s = np.sort(rng.integers(0, DAYS * 86_400, size=n)).astype(np.int64)
    tag = rng.integers(0, 2**32, size=n, dtype=np.int64)
    return Events(customer, unit, quantity, occurred_s, tag)


def amount_texts(events: Events, start: int = 0, stop: int | None = None) -> list[str]:
    """Amounts as a usage file writes them ("1500", "2.250")."""
    out = []
    decimals = [u.decimals for u in UNITS]
    for unit, quantity in zip(events.unit[start:stop].tolist(), events.quantity[start:stop].tolist()):
        places = decimals[unit]
        out.append(str(quantity) if not places else f"{quantity // 10**places}.{quantity % 10**places:0{places}d}")
    return out


def timestamp_texts(events: Events, start: int = 0, stop: int | None = None) -> list[str]:
    seconds = events.occurred_s[start:stop] + START_US // 1_000_000
    return [text + "Z" for text in seconds.astype("datetime64[s]").astype(str).tolist()]


def write_csv(events: Events, path, chunk: int = 200_000) -> None:
    """The events as a `meterdesk usage import` CSV file with a header line."""
    specs = customer_specs()
    codes = [u.code for u in UNITS]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write("customer,unit,amount,request_id,occurred_at\n")
        for start in range(0, len(events), chunk):
            stop = min(start + chunk, len(events))
            rows = zip(
                events.customer[start:stop].tolist(),
                events.unit[start:stop].tolist(),
                amount_texts(events, start, stop),
                events.request_ids(start, stop),
                timestamp_texts(events, start, stop),
            )
            handle.write("".join(f"{specs[c].external_id},{codes[u]},{a},{r},{t}\n" for c, u, a, r, t in rows))


# -- prepaid charges in integers ------------------------------------------------------------------

def _micro_per_step(price: str, decimals: int) -> int:
    value = Decimal(price) * 10**6 / Decimal(10) ** decimals
    if value != value.to_integral_value():
        raise ValueError(f"price {price} is not a whole number of micro-units per step of {decimals} decimals")
    return int(value)


def _steps(quantity: str, decimals: int) -> int:
    value = Decimal(quantity) * Decimal(10) ** decimals
    if value != value.to_integral_value():
        raise ValueError(f"{quantity} is not a whole number of steps")
    return int(value)


def prepaid_price(unit: UnitSpec, running: np.ndarray) -> np.ndarray:
    """The prepaid plan's price of period quantities (scaled; count units: the entry count), in micro-EUR."""
    charge = next(c for c in _plan("prepaid")["charges"] if c["unit"] == unit.code)
    decimals = 0 if unit.aggregation == "count" else unit.decimals
    billable = np.maximum(running - _steps(charge.get("included", "0"), decimals), 0)
    if charge["model"] == "per_unit":
        return billable * _micro_per_step(charge["unit_price"], decimals)
    if charge["model"] == "graduated":
        total = np.zeros_like(billable)
        low = 0
        for tier in charge["tiers"]:
            if tier.get("flat_fee", "0") not in ("0", "0.00"):
                raise ValueError("the integer pricer takes no flat fees")
            high = None if tier.get("up_to") is None else _steps(tier["up_to"], decimals)
            inside = np.clip(billable - low, 0, None if high is None else high - low)
            total += inside * _micro_per_step(tier["unit_price"], decimals)
            if high is None:
                break
            low = high
        return total
    raise ValueError(f"the integer pricer does not take {charge['model']} charges")


def _plan(code: str) -> dict:
    return next(plan for plan in PLANS if plan["code"] == code)


def prepaid_charges(events: Events) -> np.ndarray:
    """What each event charges its customer's prepaid balance (micro-EUR; 0 for postpaid customers).

    Entries are charged in ledger order: price(period total after) - price(period total before) per
    customer and unit, with the unit's aggregation deciding what the period total is.
    """
    prepaid = np.array([spec.prepaid for spec in customer_specs()])[events.customer]
    charged = np.zeros(len(events), dtype=np.int64)
    for index, unit in enumerate(UNITS):
        rows = np.flatnonzero(prepaid & (events.unit == index))
        if not len(rows):
            continue
        group = events.customer[rows]
        order = np.argsort(group, kind="stable")  # ledger order within each customer
        rows, group = rows[order], group[order]
        quantity = events.quantity[rows]
        starts = np.r_[True, group[1:] != group[:-1]]
        first = np.maximum.accumulate(np.where(starts, np.arange(len(rows)), 0))
        if unit.aggregation == "sum":
            cumulative = np.cumsum(quantity)
            after = cumulative - np.where(first > 0, cumulative[first - 1], 0)
            before = after - quantity
        elif unit.aggregation == "count":
            after = np.arange(len(rows)) - first + 1
            before = after - 1
        else:  # max: a running peak per customer
            big = np.int64(1) << 40
            after = np.maximum.accumulate(group * big + quantity) - group * big
            before = np.where(starts, 0, np.r_[0, after[:-1]])
        charged[rows] = prepaid_price(unit, after) - prepaid_price(unit, before)
    return charged
