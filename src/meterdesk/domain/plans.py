"""Plans (base fee plus usage charges), and reading and writing them as validated TOML or JSON plan files."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from os import PathLike
from pathlib import Path
from typing import Any

from meterdesk.domain.errors import InvalidInput, quote_input
from meterdesk.domain.money import (
    currency_exponent,
    decimal_places,
    format_decimal,
    parse_decimal,
    validate_currency,
)
from meterdesk.domain.units import MAX_AMOUNT, MAX_UNIT_DECIMALS, validate_unit_code

#: Unit prices, tier prices and fees may carry up to 12 decimal places (SPEC section 2).
MAX_PRICE_PLACES = 12
#: The only billing interval meterdesk knows.
INTERVALS = ("month",)


class PricingModel(StrEnum):
    """How a charge turns the billable quantity into a price."""

    PER_UNIT = "per_unit"
    GRADUATED = "graduated"
    VOLUME = "volume"
    PACKAGE = "package"


@dataclass(frozen=True, slots=True)
class Tier:
    """One tier of a graduated or volume charge; `up_to` is inclusive, None on the open-ended last tier."""

    up_to: Decimal | None
    unit_price: Decimal
    flat_fee: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class Charge:
    """The usage charge of one unit in a plan. Only the fields of its `model` are set."""

    unit: str
    model: PricingModel
    included: Decimal = Decimal(0)
    unit_price: Decimal | None = None
    tiers: tuple[Tier, ...] = ()
    package_size: Decimal | None = None
    package_price: Decimal | None = None

    def __post_init__(self) -> None:
        # Convenience for code that builds charges by hand: "graduated" and a list of tiers are fine too.
        object.__setattr__(self, "model", PricingModel(self.model))
        object.__setattr__(self, "tiers", tuple(self.tiers))


@dataclass(frozen=True, slots=True)
class Plan:
    """A hybrid plan: a monthly base fee plus at most one usage charge per unit."""

    code: str
    name: str
    currency: str
    base_fee: Decimal
    charges: tuple[Charge, ...] = ()
    interval: str = "month"

    def __post_init__(self) -> None:
        object.__setattr__(self, "charges", tuple(self.charges))

    def charge_for(self, unit_code: str) -> Charge | None:
        """The charge pricing `unit_code`, or None when the plan does not bill that unit."""
        for charge in self.charges:
            if charge.unit == unit_code:
                return charge
        return None


# Which keys may appear where. A key outside these sets is a typo or a misunderstanding, and silently
# ignoring it would bill with a default the author did not mean (a misspelt "includedd" bills from unit one).
_PLAN_KEYS = ("code", "name", "currency", "interval", "base_fee", "charges")
_CHARGE_COMMON_KEYS = ("unit", "model", "included")
_MODEL_KEYS: Mapping[PricingModel, tuple[str, ...]] = {
    PricingModel.PER_UNIT: ("unit_price",),
    PricingModel.GRADUATED: ("tiers",),
    PricingModel.VOLUME: ("tiers",),
    PricingModel.PACKAGE: ("package_size", "package_price"),
}
_ALL_CHARGE_KEYS = _CHARGE_COMMON_KEYS + ("unit_price", "tiers", "package_size", "package_price")
_TIER_KEYS = ("up_to", "unit_price", "flat_fee")


def plan_from_dict(data: Mapping[str, Any]) -> Plan:
    """Validate a parsed plan file (see SPEC section 4) and build the Plan.

    Every problem raises InvalidInput whose field is the path to the bad value, e.g.
    `charges[1].tiers[0].up_to`. Numbers may be strings or integers; floats are refused because the
    file's 0.1 has already become a binary approximation by the time it gets here.
    """
    if not isinstance(data, Mapping):
        raise InvalidInput("plan", f"must be a table of plan fields, not {_kind(data)}")
    _refuse_unknown_keys(data, _PLAN_KEYS, "", "a plan")
    code = validate_unit_code(_required(data, "code", ""), "code")
    name = _text(_required(data, "name", ""), "name")
    currency = validate_currency(_required(data, "currency", ""))
    interval = data.get("interval", "month")
    if interval not in INTERVALS:
        raise InvalidInput("interval", f"must be \"month\", the only interval meterdesk bills; got {quote_input(interval)}")
    base_fee = _number(data.get("base_fee", "0"), "base_fee", minimum=Decimal(0))
    exponent = currency_exponent(currency)
    if decimal_places(base_fee) > exponent:
        raise InvalidInput(
            "base_fee",
            f"has {decimal_places(base_fee)} decimal places; {currency} amounts have at most {exponent}",
        )
    base_fee = parse_decimal(base_fee, "base_fee", max_places=exponent)

    raw_charges = data.get("charges", [])
    if not _is_list(raw_charges):
        raise InvalidInput("charges", f"must be a list of charges ([[charges]] tables in TOML), not {_kind(raw_charges)}")
    charges: list[Charge] = []
    charged_at: dict[str, int] = {}
    for index, raw_charge in enumerate(raw_charges):
        path = f"charges[{index}]"
        charge = _charge_from_dict(raw_charge, path)
        if charge.unit in charged_at:
            raise InvalidInput(
                f"{path}.unit",
                f"'{charge.unit}' already has a charge (charges[{charged_at[charge.unit]}]); "
                "a plan has at most one charge per unit",
            )
        charged_at[charge.unit] = index
        charges.append(charge)
    return Plan(code=code, name=name, currency=currency, base_fee=base_fee, charges=tuple(charges), interval=interval)


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """The plan as a JSON-ready dict (decimals as plain strings); plan_from_dict() reads it back unchanged."""
    return {
        "code": plan.code,
        "name": plan.name,
        "currency": plan.currency,
        "interval": plan.interval,
        "base_fee": format_decimal(plan.base_fee),
        "charges": [charge_to_dict(charge) for charge in plan.charges],
    }


def charge_to_dict(charge: Charge) -> dict[str, Any]:
    """One charge as a JSON-ready dict, with only the keys of its pricing model."""
    result: dict[str, Any] = {
        "unit": charge.unit,
        "model": charge.model.value,
        "included": format_decimal(charge.included),
    }
    if charge.model is PricingModel.PER_UNIT:
        result["unit_price"] = _optional_text(charge.unit_price)
    elif charge.model is PricingModel.PACKAGE:
        result["package_size"] = _optional_text(charge.package_size)
        result["package_price"] = _optional_text(charge.package_price)
    else:
        result["tiers"] = [
            {
                "up_to": _optional_text(tier.up_to),
                "unit_price": format_decimal(tier.unit_price),
                "flat_fee": format_decimal(tier.flat_fee),
            }
            for tier in charge.tiers
        ]
    return result


def plan_from_text(text: str, fmt: str) -> Plan:
    """Parse and validate plan file text; `fmt` is "toml" or "json". Syntax errors are InvalidInput("file", ...)."""
    kind = fmt.strip().lower().lstrip(".") if isinstance(fmt, str) else fmt
    if kind == "toml":
        try:
            data: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise InvalidInput("file", f"is not valid TOML: {error}") from None
    elif kind == "json":
        try:
            data = json.loads(text, object_pairs_hook=_object_without_duplicate_keys)
        except json.JSONDecodeError as error:
            raise InvalidInput(
                "file", f"is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})"
            ) from None
        except RecursionError:
            raise InvalidInput("file", "is not a plan: its JSON is nested too deeply") from None
        if not isinstance(data, dict):
            raise InvalidInput("file", f"must hold one JSON object with the plan's fields, not {_kind(data)}")
    else:
        raise InvalidInput("file", f"has an unknown plan format {quote_input(fmt)}; use toml or json")
    return plan_from_dict(data)


def load_plan_file(path: str | PathLike[str]) -> Plan:
    """Read a plan file: TOML or JSON by its extension (.toml, .json), else by its first character."""
    file_path = Path(path)
    try:
        raw = file_path.read_bytes()
    except OSError as error:
        raise InvalidInput("file", f"cannot read {file_path}: {error.strerror or error}") from None
    try:
        text = raw.decode("utf-8-sig")  # tolerate the byte-order mark some Windows editors write
    except UnicodeDecodeError:
        raise InvalidInput("file", f"{file_path} is not UTF-8 text") from None
    suffix = file_path.suffix.lower()
    if suffix in (".toml", ".json"):
        fmt = suffix[1:]
    else:
        fmt = "json" if text.lstrip().startswith("{") else "toml"
    return plan_from_text(text, fmt)


def _charge_from_dict(raw: object, path: str) -> Charge:
    if not isinstance(raw, Mapping):
        raise InvalidInput(path, f"must be a table of charge fields, not {_kind(raw)}")
    _refuse_unknown_keys(raw, _ALL_CHARGE_KEYS, path, "a charge")
    unit = validate_unit_code(_required(raw, "unit", path), f"{path}.unit")
    model_value = _required(raw, "model", path)
    try:
        model = PricingModel(model_value)
    except ValueError:
        choices = ", ".join(model.value for model in PricingModel)
        raise InvalidInput(f"{path}.model", f"must be one of {choices}; got {quote_input(model_value)}") from None
    for key in _ALL_CHARGE_KEYS:
        if key in raw and key not in _CHARGE_COMMON_KEYS and key not in _MODEL_KEYS[model]:
            takes = " and ".join(_MODEL_KEYS[model])
            raise InvalidInput(f"{path}.{key}", f"does not apply to the {model} model (it takes {takes})")
    included = _quantity(raw.get("included", "0"), f"{path}.included", minimum=Decimal(0))

    if model is PricingModel.PER_UNIT:
        unit_price = _price(_required(raw, "unit_price", path, model), f"{path}.unit_price")
        return Charge(unit=unit, model=model, included=included, unit_price=unit_price)
    if model is PricingModel.PACKAGE:
        size = _quantity(
            _required(raw, "package_size", path, model), f"{path}.package_size", minimum=Decimal(0), exclusive=True
        )
        package_price = _price(_required(raw, "package_price", path, model), f"{path}.package_price")
        return Charge(unit=unit, model=model, included=included, package_size=size, package_price=package_price)
    tiers = _tiers_from_list(_required(raw, "tiers", path, model), f"{path}.tiers")
    return Charge(unit=unit, model=model, included=included, tiers=tiers)


def _tiers_from_list(raw: object, path: str) -> tuple[Tier, ...]:
    if not _is_list(raw) or not raw:
        raise InvalidInput(path, "must be a non-empty list of tiers, the last one without up_to (open-ended)")
    tiers: list[Tier] = []
    previous_bound: Decimal | None = None
    last_index = len(raw) - 1
    for index, raw_tier in enumerate(raw):
        tier_path = f"{path}[{index}]"
        if not isinstance(raw_tier, Mapping):
            raise InvalidInput(tier_path, f"must be a table of tier fields, not {_kind(raw_tier)}")
        _refuse_unknown_keys(raw_tier, _TIER_KEYS, tier_path, "a tier")
        if "unit_price" not in raw_tier and "flat_fee" not in raw_tier:
            raise InvalidInput(tier_path, "needs a unit_price, a flat_fee, or both")
        up_to = _tier_bound(raw_tier.get("up_to"), f"{tier_path}.up_to")
        if up_to is None and index != last_index:
            raise InvalidInput(
                f"{tier_path}.up_to",
                "is missing, which makes this tier open-ended, but only the last tier may be open-ended",
            )
        if up_to is not None:
            if previous_bound is not None and up_to <= previous_bound:
                raise InvalidInput(
                    f"{tier_path}.up_to",
                    f"must be greater than the previous tier's up_to ({format_decimal(previous_bound)}), "
                    f"got {format_decimal(up_to)}: tiers must be sorted by up_to and must not overlap",
                )
            if index == last_index:
                raise InvalidInput(
                    f"{tier_path}.up_to",
                    "must be left out: the last tier must be open-ended, "
                    f"or usage above {format_decimal(up_to)} would have no price",
                )
            previous_bound = up_to
        unit_price = _price(raw_tier.get("unit_price", "0"), f"{tier_path}.unit_price")
        flat_fee = _price(raw_tier.get("flat_fee", "0"), f"{tier_path}.flat_fee")
        tiers.append(Tier(up_to=up_to, unit_price=unit_price, flat_fee=flat_fee))
    return tuple(tiers)


def _tier_bound(value: object, path: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower().lstrip("+") in ("inf", "infinity"):
        raise InvalidInput(path, "cannot be infinite: leave up_to out (null in JSON) to make the last tier open-ended")
    return _quantity(value, path, minimum=Decimal(0), exclusive=True)


def _price(value: object, path: str) -> Decimal:
    return _number(value, path, minimum=Decimal(0), max_places=MAX_PRICE_PLACES)


def _quantity(value: object, path: str, *, minimum: Decimal, exclusive: bool = False) -> Decimal:
    # Usage amounts carry at most MAX_UNIT_DECIMALS places, so finer bounds or sizes could never matter.
    return _number(value, path, minimum=minimum, exclusive=exclusive, max_places=MAX_UNIT_DECIMALS)


def _number(
    value: object, path: str, *, minimum: Decimal, exclusive: bool = False, max_places: int | None = None
) -> Decimal:
    if isinstance(value, float):
        raise InvalidInput(
            path,
            f"is a binary floating-point number ({value!r}), which cannot hold prices exactly; "
            'write prices as strings, e.g. "0.10"',
        )
    return parse_decimal(
        value, path, max_places=max_places, minimum=minimum, exclusive_minimum=exclusive, maximum=MAX_AMOUNT
    )


def _required(data: Mapping[str, Any], key: str, path: str, model: PricingModel | None = None) -> Any:
    if key not in data or data[key] is None:
        where = f" for the {model} model" if model is not None else ""
        raise InvalidInput(_join(path, key), f"is required{where}")
    return data[key]


def _refuse_unknown_keys(data: Mapping[Any, Any], allowed: tuple[str, ...], path: str, what: str) -> None:
    for key in data:
        if key not in allowed:
            raise InvalidInput(
                _join(path, str(key)), f"is not a key of {what} (expected one of: {', '.join(allowed)})"
            )


def _text(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(path, f"must be text, not {_kind(value)}")
    stripped = value.strip()
    if not stripped:
        raise InvalidInput(path, "must not be empty")
    if not stripped.isprintable():
        raise InvalidInput(path, "must contain only printable characters")
    return stripped


def _object_without_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads would silently keep the last of two equal keys; in a price list that hides a mistake.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise InvalidInput("file", f"has the key {quote_input(key)} twice in one JSON object")
        result[key] = value
    return result


def _optional_text(value: Decimal | None) -> str | None:
    return None if value is None else format_decimal(value)


def _is_list(value: object) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: object) -> str:
    names = {dict: "a table", list: "a list", str: "text", int: "a number", bool: "a boolean", float: "a float"}
    return names.get(type(value), type(value).__name__)
