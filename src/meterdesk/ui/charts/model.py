"""What a chart draws, prepared off the GUI thread: exact values for reading, float arrays for drawing.

The service hands over Decimals aggregated in SQL; this module turns them into numpy arrays once, on the
worker, so that putting a customer on screen is only `setData` calls. Exact values stay beside the
floats: hover text and exports read the Decimals, never the floats.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np

from meterdesk.services.chart_data import ChartData, UnitAllowance
from meterdesk.services.summary import Summary

US = 1_000_000
_ZERO = Decimal(0)

# Order of points that share an x on the cumulative line: a bucket's end, then a period's reset, then the
# next bucket's start.
_END, _RESET_HIGH, _RESET_LOW, _START, _LAST = 0, 1, 2, 3, 4


@dataclass(frozen=True, eq=False)
class UnitTrack:
    """One unit's buckets (only those the series has), their period-cumulative, and its plan allowance."""

    code: str
    name: str
    decimals: int
    aggregation: str
    quantity: Decimal  # the summary's quantity for the range
    allowance: UnitAllowance
    starts_us: np.ndarray  # int64
    ends_us: np.ndarray  # int64
    values: tuple[Decimal, ...]
    cumulative: tuple[Decimal, ...]  # after each bucket, restarting at each period start
    heights: np.ndarray  # float64, for drawing only
    line_x: np.ndarray  # the cumulative line, epoch seconds
    line_y: np.ndarray
    reversals: dict[int, int] = field(default_factory=dict)  # bucket start (us) -> reversals there

    def __len__(self) -> int:
        return len(self.values)

    @property
    def starts_s(self) -> np.ndarray:
        return self.starts_us / US

    @property
    def ends_s(self) -> np.ndarray:
        return self.ends_us / US

    def index_at(self, instant_us: int) -> int | None:
        """The series index of the bucket holding `instant_us`, or None where the series has no bucket."""
        index = int(np.searchsorted(self.starts_us, instant_us, side="right")) - 1
        if index >= 0 and instant_us < self.ends_us[index]:
            return index
        return None

    def value_at(self, start_us: int) -> Decimal:
        index = self.index_at(start_us)
        return self.values[index] if index is not None else _ZERO

    def cumulative_before(self, instant_us: int, period_starts_us: np.ndarray) -> Decimal:
        """The period-cumulative just before `instant_us` (for buckets the series has no entry for)."""
        index = int(np.searchsorted(self.starts_us, instant_us, side="left")) - 1
        if index < 0:
            return _ZERO
        period_start = _period_start(period_starts_us, instant_us)
        if self.starts_us[index] < period_start:
            return _ZERO
        return self.cumulative[index]


@dataclass(frozen=True, eq=False)
class BalanceTrack:
    opening: Decimal
    at_us: np.ndarray  # int64: the end of each bucket up to now
    balances: tuple[Decimal, ...]
    line_x: np.ndarray
    line_y: np.ndarray
    credit_limit: Decimal
    current: Decimal

    def index_at(self, instant_us: int, edges_us: np.ndarray) -> int | None:
        bucket = int(np.searchsorted(edges_us, instant_us, side="right")) - 1
        return bucket if 0 <= bucket < len(self.balances) else None


@dataclass(frozen=True, eq=False)
class ChartModel:
    customer: str
    name: str
    mode: str
    currency: str
    plan: str | None
    period: str | None
    granularity: str
    timezone: ZoneInfo
    start_us: int
    end_us: int
    now_us: int
    edges_us: np.ndarray  # int64, bucket boundaries including the range's end
    period_starts_us: np.ndarray  # int64, period starts inside the range
    units: tuple[UnitTrack, ...]
    balance: BalanceTrack | None
    summary: Summary | None = None

    def unit(self, code: str) -> UnitTrack | None:
        return next((track for track in self.units if track.code == code), None)

    def bucket_at(self, instant_us: int) -> tuple[int, int] | None:
        """[start, end) of the bucket (of the whole range, with or without data) holding `instant_us`."""
        index = int(np.searchsorted(self.edges_us, instant_us, side="right")) - 1
        if 0 <= index < len(self.edges_us) - 1:
            return int(self.edges_us[index]), int(self.edges_us[index + 1])
        return None

    @classmethod
    def from_data(cls, data: ChartData) -> ChartModel:
        summary = data.summary
        edges = np.asarray(data.edges_us, dtype=np.int64)
        period_starts = np.asarray(data.period_starts_us, dtype=np.int64)
        by_unit: dict[str, list] = {unit.code: [] for unit in data.units}
        for point in summary.series:
            by_unit.setdefault(point.unit, []).append(point)
        reversals: dict[str, dict[int, int]] = {}
        for mark in data.reversals:
            reversals.setdefault(mark.unit, {})[mark.start_us] = mark.reversals
        quantities = {unit.unit: unit.quantity for unit in summary.units}
        tracks = []
        for info in data.units:
            points = by_unit.get(info.code, [])
            starts = np.fromiter((p.start_us for p in points), dtype=np.int64, count=len(points))
            tracks.append(
                build_track(
                    code=info.code,
                    name=info.name,
                    decimals=info.decimals,
                    aggregation=info.aggregation,
                    quantity=quantities.get(info.code, _ZERO),
                    allowance=data.allowance(info.code) or UnitAllowance(info.code, None, _ZERO),
                    starts_us=starts,
                    ends_us=_bucket_ends(starts, edges),
                    values=tuple(p.quantity for p in points),
                    period_starts_us=period_starts,
                    range_start_us=data.start_us,
                    line_end_us=max(data.start_us, min(data.end_us, data.now_us)),
                    reversals=reversals.get(info.code, {}),
                )
            )
        balance = None
        if data.balance is not None:
            at = np.fromiter((p.at_us for p in data.balance.points), dtype=np.int64, count=len(data.balance.points))
            balances = tuple(p.balance for p in data.balance.points)
            balance = BalanceTrack(
                opening=data.balance.opening,
                at_us=at,
                balances=balances,
                line_x=np.concatenate(([data.start_us / US], at / US)),
                line_y=np.array([float(data.balance.opening), *map(float, balances)], dtype=np.float64),
                credit_limit=data.balance.credit_limit,
                current=data.balance.current,
            )
        return cls(
            customer=summary.customer,
            name=summary.name,
            mode=summary.mode,
            currency=summary.currency,
            plan=summary.plan,
            period=summary.period,
            granularity=data.granularity,
            timezone=ZoneInfo(data.timezone),
            start_us=data.start_us,
            end_us=data.end_us,
            now_us=data.now_us,
            edges_us=edges,
            period_starts_us=period_starts,
            units=tuple(tracks),
            balance=balance,
            summary=summary,
        )


def _bucket_ends(starts_us: np.ndarray, edges_us: np.ndarray) -> np.ndarray:
    """Each bucket's end: the next edge after its start (buckets are whole hours, local days or periods)."""
    if len(starts_us) == 0:
        return starts_us.copy()
    indices = np.searchsorted(edges_us, starts_us, side="right")
    return edges_us[np.minimum(indices, len(edges_us) - 1)]


def _period_start(period_starts_us: np.ndarray, instant_us: int) -> int:
    index = int(np.searchsorted(period_starts_us, instant_us, side="right")) - 1
    return int(period_starts_us[index]) if index >= 0 else -(2**62)


def build_track(
    *,
    code: str,
    name: str,
    decimals: int,
    aggregation: str,
    quantity: Decimal,
    allowance: UnitAllowance,
    starts_us: np.ndarray,
    ends_us: np.ndarray,
    values: tuple[Decimal, ...],
    period_starts_us: np.ndarray,
    range_start_us: int,
    line_end_us: int,
    reversals: dict[int, int] | None = None,
    heights: np.ndarray | None = None,
) -> UnitTrack:
    """A unit's track: exact period-cumulatives (sum, or the running peak of a `max` unit) and the arrays
    that draw them. The loop runs over buckets already aggregated in SQL, never over ledger rows."""
    if heights is None:
        heights = np.fromiter((float(v) for v in values), dtype=np.float64, count=len(values))
    segment = np.searchsorted(period_starts_us, starts_us, side="right")  # which period each bucket is in
    cumulative: list[Decimal] = []
    running = _ZERO
    previous_segment = -1
    peak = aggregation == "max"
    for value, seg in zip(values, segment.tolist()):
        if seg != previous_segment:
            running = _ZERO
            previous_segment = seg
        running = max(running, value) if peak else running + value
        cumulative.append(running)
    after = np.fromiter((float(c) for c in cumulative), dtype=np.float64, count=len(cumulative))
    line_x, line_y = _cumulative_line(starts_us, ends_us, after, segment, period_starts_us, range_start_us, line_end_us)
    return UnitTrack(
        code=code,
        name=name,
        decimals=decimals,
        aggregation=aggregation,
        quantity=quantity,
        allowance=allowance,
        starts_us=starts_us,
        ends_us=ends_us,
        values=values,
        cumulative=tuple(cumulative),
        heights=heights,
        line_x=line_x,
        line_y=line_y,
        reversals=dict(reversals or {}),
    )


def _cumulative_line(starts_us, ends_us, after, segment, period_starts_us, range_start_us, line_end_us):
    """A sawtooth: rising through each bucket, flat between buckets, dropping to 0 where a period starts."""
    n = len(after)
    before = np.zeros(n, dtype=np.float64)
    if n > 1:
        same_period = segment[1:] == segment[:-1]
        before[1:] = np.where(same_period, after[:-1], 0.0)
    xs = [np.array([range_start_us], dtype=np.int64), starts_us, ends_us]
    ys = [np.zeros(1), before, after]
    keys = [np.array([_START]), np.full(n, _START), np.full(n, _END)]
    inside = period_starts_us[(period_starts_us > range_start_us) & (period_starts_us <= line_end_us)]
    if len(inside):
        last_before = np.searchsorted(starts_us, inside, side="left") - 1
        carried = np.where(last_before >= 0, after[np.maximum(last_before, 0)], 0.0)
        # A bucket in an earlier period carries its value up to the reset; none means 0.
        carried = np.where(
            (last_before >= 0) & (segment[np.maximum(last_before, 0)] == np.searchsorted(period_starts_us, inside, side="right") - 1),
            carried,
            0.0,
        )
        xs += [inside, inside]
        ys += [carried, np.zeros(len(inside))]
        keys += [np.full(len(inside), _RESET_HIGH), np.full(len(inside), _RESET_LOW)]
    last = after[-1] if n else 0.0
    if n and len(period_starts_us) and _period_start(period_starts_us, line_end_us) > starts_us[-1]:
        last = 0.0  # the current period has no usage yet
    if n == 0 or line_end_us > ends_us[-1]:
        xs.append(np.array([line_end_us], dtype=np.int64))
        ys.append(np.array([last]))
        keys.append(np.array([_LAST]))
    x = np.concatenate(xs)
    y = np.concatenate(ys)
    order = np.lexsort((np.concatenate(keys), x))
    return x[order] / US, y[order]


def synthetic_model(
    n_buckets: int,
    units: int = 3,
    *,
    bucket_s: int = 3600,
    start_s: int = 1_767_225_600,
    seed: int = 7,
    exact: bool = True,
) -> ChartModel:
    """A model with `units` units of `n_buckets` buckets each, for benchmarks (no database involved).

    `exact=False` skips building Decimal values (a million Decimals cost more than the drawing measured).
    """
    rng = np.random.default_rng(seed)
    start_us = start_s * US
    edges = start_us + np.arange(n_buckets + 1, dtype=np.int64) * bucket_s * US
    tracks = []
    for index in range(units):
        base = rng.gamma(2.0, 50.0 * (index + 1), n_buckets)
        daily = 1 + 0.6 * np.sin(np.arange(n_buckets) * 2 * np.pi * bucket_s / 86400)
        heights = np.round(base * daily).astype(np.float64)
        values: tuple[Decimal, ...]
        if exact:
            values = tuple(Decimal(int(v)) for v in heights)
        else:
            values = ()
        starts = edges[:-1].copy()
        ends = edges[1:].copy()
        if exact:
            track = build_track(
                code=f"unit_{index + 1}",
                name=f"Unit {index + 1}",
                decimals=0,
                aggregation="sum",
                quantity=sum(values, _ZERO),
                allowance=UnitAllowance(f"unit_{index + 1}", "graduated", Decimal(int(heights.sum() / 3)), (Decimal(int(heights.sum() / 1.5)),)),
                starts_us=starts,
                ends_us=ends,
                values=values,
                period_starts_us=np.array([], dtype=np.int64),
                range_start_us=start_us,
                line_end_us=int(edges[-1]),
                heights=heights,
            )
        else:
            cumulative = np.cumsum(heights)
            line_x = np.empty(2 * n_buckets)
            line_x[0::2] = starts / US
            line_x[1::2] = ends / US
            line_y = np.empty(2 * n_buckets)
            line_y[0::2] = np.concatenate(([0.0], cumulative[:-1]))
            line_y[1::2] = cumulative
            track = UnitTrack(
                code=f"unit_{index + 1}",
                name=f"Unit {index + 1}",
                decimals=0,
                aggregation="sum",
                quantity=Decimal(int(cumulative[-1])) if n_buckets else _ZERO,
                allowance=UnitAllowance(f"unit_{index + 1}", "per_unit", _ZERO),
                starts_us=starts,
                ends_us=ends,
                values=values,
                cumulative=(),
                heights=heights,
                line_x=line_x,
                line_y=line_y,
            )
        tracks.append(track)
    return ChartModel(
        customer="synthetic",
        name="Synthetic load",
        mode="invoice",
        currency="EUR",
        plan=None,
        period=None,
        granularity="hour",
        timezone=ZoneInfo("UTC"),
        start_us=start_us,
        end_us=int(edges[-1]),
        now_us=int(edges[-1]),
        edges_us=edges,
        period_starts_us=np.array([], dtype=np.int64),
        units=tuple(tracks),
        balance=None,
    )


__all__ = ["BalanceTrack", "ChartModel", "UnitTrack", "build_track", "synthetic_model"]
