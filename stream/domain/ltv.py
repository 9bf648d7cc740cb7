"""A customer's running value: orders, net revenue and the RFM summary.

The RFM figures follow lifetimes' `summary_data_from_transaction_data(...,
freq='D')` on UTC days: a purchase day is a day with at least one order;
frequency = purchase days - 1 (repeat purchase days), recency = last - first
purchase day, T = as_of day - first purchase day, monetary_value = mean
value of the repeat purchase days (0 when there are none). Money is summed
as `Decimal`.

Idempotency: an order id seen before changes nothing (the most recent
`MAX_REMEMBERED_ORDERS` orders are remembered, which also serves refunds),
and so does a refund event id seen before. Ids are remembered by their
`fingerprint`.

Bounded: the first purchase day and the `MAX_PURCHASE_DAYS` - 1 latest are
kept day by day; older repeat days are folded into a count and a sum
(`folded_days`, `folded_value`), which keeps frequency and monetary_value
exact for orders in time order. The one approximation: an order that
arrives late for a day inside the folded span adds its value to the fold
but no day (whether that day already had a purchase is no longer known).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field, replace
from decimal import Context, Decimal
from typing import Any, Final

import orjson

from stream.domain.clv import LtvParams, Scores, score
from stream.domain.events import (
    SECONDS_PER_DAY,
    PurchaseEvent,
    fingerprint,
    format_ts,
    remembered,
)

MAX_REMEMBERED_ORDERS: Final = 64
MAX_PURCHASE_DAYS: Final = 64
ZERO: Final = Decimal(0)
CENT: Final = Decimal("0.01")
# `aov` to the cent: the codec takes any finite amount, and quantizing one of
# 1e26 or more needs more digits than the default context's 28 (it raised, and
# the customer's records with it): 400 hold any float's, cents included.
MONEY_CONTEXT: Final = Context(prec=400)


def day_of(ts: float) -> int:
    """The UTC day number (days since 1970-01-01) of an event time."""
    return math.floor(ts / SECONDS_PER_DAY)


@dataclass(frozen=True, slots=True)
class OrderMemo:
    """What is remembered of a recent order: its day, value, refunds and origin.

    `partition` and `offset` locate the record that counted it, so that the
    same record redelivered can be told from a duplicate order event.
    """

    day: int
    value: Decimal
    refunded: Decimal = ZERO
    partition: int = -1
    offset: int = -1


@dataclass(frozen=True, slots=True)
class CustomerState:
    """Everything kept per customer (bounded: see MAX_REMEMBERED_ORDERS)."""

    orders: int = 0
    revenue: Decimal = ZERO
    first_ts: float | None = None
    last_ts: float | None = None
    day_values: dict[int, Decimal] = field(default_factory=dict)
    # Keyed by the order id's fingerprint; the refund event ids' fingerprints.
    recent_orders: dict[int, OrderMemo] = field(default_factory=dict)
    recent_refunds: tuple[int, ...] = ()
    owned: dict[str, float] = field(default_factory=dict)
    partition: int = -1
    # Repeat purchase days older than those in day_values (see the module doc).
    folded_days: int = 0
    folded_value: Decimal = ZERO

    def to_json(self) -> dict[str, Any]:
        return {
            "orders": self.orders,
            "revenue": str(self.revenue),
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "day_values": {str(d): str(v) for d, v in self.day_values.items()},
            "recent_orders": [
                [oid, m.day, str(m.value), str(m.refunded), m.partition, m.offset]
                for oid, m in self.recent_orders.items()
            ],
            "recent_refunds": list(self.recent_refunds),
            "owned": dict(self.owned),
            "partition": self.partition,
            "folded_days": self.folded_days,
            "folded_value": str(self.folded_value),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CustomerState:
        return cls(
            orders=int(data["orders"]),
            revenue=Decimal(data["revenue"]),
            first_ts=data["first_ts"],
            last_ts=data["last_ts"],
            day_values={int(d): Decimal(v) for d, v in data["day_values"].items()},
            recent_orders={
                remembered(m[0]): OrderMemo(
                    int(m[1]), Decimal(m[2]), Decimal(m[3]), int(m[4]), int(m[5])
                )
                for m in _memo_rows(data["recent_orders"])
            },
            recent_refunds=tuple(remembered(held) for held in data["recent_refunds"]),
            owned=_owned(data["owned"], data["first_ts"]),
            partition=int(data.get("partition", -1)),
            folded_days=int(data.get("folded_days", 0)),
            folded_value=Decimal(data.get("folded_value", "0")),
        )


def _memo_rows(memos: list[Any] | dict[str, Any]) -> list[Any]:
    """`to_json`'s order rows; before fingerprints they were a map of order id -> row."""
    if isinstance(memos, dict):
        return [[oid, *row] for oid, row in memos.items()]
    return memos


# The packed form a worker holds in memory and writes to the changelog: one
# flat JSON array without field names (about half the size of `to_json`'s).
# Versions still read: 3 and 2 hold the ids whole, not their fingerprints; 2
# has no folded fields.
PACKED_VERSION: Final = 4
PACKED_VERSIONS_READ: Final = (2, 3, PACKED_VERSION)
_PACKED_PREFIXES: Final = tuple(b"[%d," % version for version in PACKED_VERSIONS_READ)


def pack(state: CustomerState) -> bytes:
    """The customer's state as compact bytes: what the customers table holds (see `unpack`).

    A worker keeps every customer it owns, so the table holds these bytes
    (a few hundred per customer) rather than the objects (several KiB of
    dicts and Decimals); an agent unpacks the one customer it works on.
    """
    days: list[Any] = []
    for day, value in state.day_values.items():
        days += (day, str(value))
    memos: list[Any] = []
    for oid, m in state.recent_orders.items():
        refunded = str(m.refunded) if m.refunded else 0
        memos += (oid, m.day, str(m.value), refunded, m.partition, m.offset)
    owned: list[Any] = []
    for sku, ts in state.owned.items():
        owned += (sku, ts)  # whole seconds (see remember_bought): 10 digits
    packed = orjson.dumps(
        [
            PACKED_VERSION,
            state.orders,
            str(state.revenue),
            state.first_ts,
            state.last_ts,
            days,
            memos,
            state.recent_refunds,
            owned,
            state.folded_days,
            str(state.folded_value),
            state.partition,  # last: see packed_partition
        ]
    )
    # orjson's bytes keep its ~4 KiB write buffer allocated behind them (3.13:
    # RSS grows 4 KiB per kept result); a copy holds just the bytes.
    return bytes(memoryview(packed))


def unpack(data: bytes) -> CustomerState:
    """The state `pack` wrote; also reads the older `["CustomerState", to_json()]` records."""
    fields = orjson.loads(data)
    if fields[0] not in PACKED_VERSIONS_READ:
        return CustomerState.from_json(fields[1])
    if fields[0] == 2:  # before the folded purchase days
        fields[-1:-1] = [0, "0"]
    _, orders, revenue, first_ts, last_ts, days, memos, refunds, owned, *rest = fields
    folded, folded_value, partition = rest
    return CustomerState(
        orders=orders,
        revenue=Decimal(revenue),
        first_ts=first_ts,
        last_ts=last_ts,
        day_values={days[i]: Decimal(days[i + 1]) for i in range(0, len(days), 2)},
        recent_orders={
            remembered(memos[i]): OrderMemo(
                memos[i + 1],
                Decimal(memos[i + 2]),
                Decimal(memos[i + 3]) if memos[i + 3] else ZERO,
                memos[i + 4],
                memos[i + 5],
            )
            for i in range(0, len(memos), 6)
        },
        recent_refunds=tuple(remembered(held) for held in refunds),
        owned={owned[i]: float(owned[i + 1]) for i in range(0, len(owned), 2)},
        partition=partition,
        folded_days=folded,
        folded_value=Decimal(folded_value),
    )


def packed_partition(data: bytes) -> int:
    """The partition of a packed state, read without unpacking it (its last field)."""
    if data.startswith(_PACKED_PREFIXES):
        return int(data[data.rindex(b",") + 1 : -1])
    return unpack(data).partition


def _owned(raw: Any, first_ts: float | None) -> dict[str, float]:
    """`owned` as stored: SKU -> last purchase time; a list (before times were kept)
    is taken as bought at the first purchase, the earliest time it can have been."""
    if isinstance(raw, list):
        return {str(sku): float(first_ts or 0.0) for sku in raw}
    return {str(k): float(v) for k, v in raw.items()}


MAX_OWNED_ITEMS: Final = 200
MAX_REMEMBERED_REFUNDS: Final = 64


def remember_bought(owned: dict[str, float], skus: tuple[str, ...], ts: float) -> dict[str, float]:
    """SKU -> latest purchase time (whole seconds), the MAX_OWNED_ITEMS most recently bought."""
    updated = dict(owned)
    second = math.floor(ts)
    for sku in skus:
        updated[sku] = max(updated.get(sku, second), second)
    if len(updated) > MAX_OWNED_ITEMS:
        newest = sorted(updated.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_OWNED_ITEMS]
        updated = dict(newest)
    return updated


def apply_order(
    state: CustomerState | None, event: PurchaseEvent, partition: int = -1, offset: int = -1
) -> tuple[CustomerState, bool]:
    """Count a completed order; return the new state and whether it changed.

    `partition` and `offset` (the record's position) are remembered with the order.
    """
    current = state if state is not None else CustomerState()
    order_print = fingerprint(event.order_id)
    if order_print in current.recent_orders:
        return current, False
    value = event.total if event.total is not None else ZERO
    day = day_of(event.ts)
    days = _with_day_value(current, day, value)
    recent = dict(current.recent_orders)
    recent[order_print] = OrderMemo(day=day, value=value, partition=partition, offset=offset)
    while len(recent) > MAX_REMEMBERED_ORDERS:
        del recent[next(iter(recent))]
    owned = remember_bought(current.owned, event.skus, event.ts)
    return (
        replace(
            current,
            orders=current.orders + 1,
            revenue=current.revenue + value,
            first_ts=event.ts if current.first_ts is None else min(current.first_ts, event.ts),
            last_ts=event.ts if current.last_ts is None else max(current.last_ts, event.ts),
            day_values=days.day_values,
            folded_days=days.folded_days,
            folded_value=days.folded_value,
            recent_orders=recent,
            owned=owned,
            partition=partition if partition >= 0 else current.partition,
        ),
        True,
    )


def order_redelivered(
    state: CustomerState, event: PurchaseEvent, partition: int, offset: int
) -> bool:
    """Whether `event` comes in the record that counted its order, read again (after a crash).

    Its outputs are sent again (they are idempotent downstream); another
    record with a known order id is a duplicate and sends nothing.
    """
    memo = state.recent_orders.get(fingerprint(event.order_id))
    return (
        event.type == "order_completed"
        and memo is not None
        and (memo.partition, memo.offset) == (partition, offset)
    )


def apply_refund(state: CustomerState | None, event: PurchaseEvent) -> tuple[CustomerState, bool]:
    """Take a refund off the order's value and the revenue; return (state, changed).

    The refunded amount is the event's total (or its lines' sum); without
    either, whatever is left of the order. A refund never takes an order
    below zero, and a refund of an order that is not remembered changes nothing.
    """
    current = state if state is not None else CustomerState()
    order_print, refund_print = fingerprint(event.order_id), fingerprint(event.event_id)
    memo = current.recent_orders.get(order_print)
    if memo is None or refund_print in current.recent_refunds:
        return current, False
    remaining = memo.value - memo.refunded
    wanted = event.total if event.total is not None else remaining
    amount = min(wanted, remaining)
    if amount <= ZERO:
        return current, False
    recent = dict(current.recent_orders)
    recent[order_print] = replace(memo, refunded=memo.refunded + amount)
    days = _with_day_value(current, memo.day, -amount)
    refunds = (*current.recent_refunds, refund_print)[-MAX_REMEMBERED_REFUNDS:]
    return (
        replace(
            current,
            revenue=current.revenue - amount,
            day_values=days.day_values,
            folded_days=days.folded_days,
            folded_value=days.folded_value,
            recent_orders=recent,
            recent_refunds=refunds,
        ),
        True,
    )


@dataclass(frozen=True, slots=True)
class _Days:
    day_values: dict[int, Decimal]
    folded_days: int
    folded_value: Decimal


def _with_day_value(state: CustomerState, day: int, value: Decimal) -> _Days:
    """The purchase days with `value` added to `day`, folded down to MAX_PURCHASE_DAYS.

    A day inside the folded span (after the first day, before the oldest
    kept repeat day) adds to the fold: refunds of folded orders land there
    too, and so does a late order (its day is not counted: see the module doc).
    """
    day_values = dict(state.day_values)
    folded, folded_value = state.folded_days, state.folded_value
    if folded and day not in day_values:
        first, oldest_kept_repeat = heapq.nsmallest(2, day_values)
        if first < day < oldest_kept_repeat:
            return _Days(day_values, folded, folded_value + value)
    day_values[day] = day_values.get(day, ZERO) + value
    while len(day_values) > MAX_PURCHASE_DAYS:  # one day over, or more if stored unbounded
        _first, oldest_repeat = heapq.nsmallest(2, day_values)
        folded += 1
        folded_value += day_values.pop(oldest_repeat)
    return _Days(day_values, folded, folded_value)


@dataclass(frozen=True, slots=True)
class Rfm:
    """lifetimes' summary in days: frequency, recency, T, monetary_value."""

    frequency: int
    recency: float
    T: float
    monetary_value: float


def rfm(state: CustomerState, as_of: float) -> Rfm:
    """The customer's RFM summary at event time `as_of` (lifetimes semantics, freq='D')."""
    if not state.day_values:
        return Rfm(frequency=0, recency=0.0, T=0.0, monetary_value=0.0)
    days = sorted(state.day_values)
    first, last = days[0], days[-1]
    repeat = days[1:]
    frequency = len(repeat) + state.folded_days
    repeat_value = sum((state.day_values[d] for d in repeat), state.folded_value)
    monetary = float(repeat_value / frequency) if frequency else 0.0
    return Rfm(
        frequency=frequency,
        recency=float(last - first),
        T=float(max(day_of(as_of), last) - first),
        monetary_value=monetary,
    )


def customer_scores(state: CustomerState, as_of: float, params: LtvParams) -> Scores:
    """BG/NBD + Gamma-Gamma scores of the customer's RFM summary at event time `as_of`."""
    summary = rfm(state, as_of)
    return score(params, summary.frequency, summary.recency, summary.T, summary.monetary_value)


def ltv_record(
    customer_id: str,
    state: CustomerState,
    as_of: float,
    variant: str,
    scores: Scores | None = None,
    rank: str | None = None,
) -> dict[str, Any]:
    """The `customer-ltv` record (DESIGN.md): realized value, RFM and model scores at `as_of`.

    `ltv` = realized (net revenue) + predicted CLV. Without `scores` the
    model fields are null and `ltv` is the realized revenue alone.
    """
    summary = rfm(state, as_of)
    aov = state.revenue / state.orders if state.orders else ZERO
    predicted = scores.predicted_clv if scores is not None else None
    return {
        "customer_id": customer_id,
        "variant": variant,
        "as_of": format_ts(as_of),
        "orders": state.orders,
        "revenue": state.revenue,
        "aov": aov.quantize(CENT, context=MONEY_CONTEXT),
        "first_purchase": format_ts(state.first_ts) if state.first_ts is not None else None,
        "last_purchase": format_ts(state.last_ts) if state.last_ts is not None else None,
        "frequency": summary.frequency,
        "recency": summary.recency,
        "T": summary.T,
        "monetary_value": summary.monetary_value,
        "p_alive": scores.p_alive if scores is not None else None,
        "expected_purchases": scores.expected_purchases if scores is not None else None,
        "predicted_clv": predicted,
        "ltv": float(state.revenue) + (predicted or 0.0),
        "rank": rank,
    }
