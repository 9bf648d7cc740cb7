"""stream.domain.ltv: orders, refunds, the RFM summary and the customer-ltv record."""

from __future__ import annotations

from dataclasses import replace
from decimal import Context, Decimal
from itertools import permutations
from typing import Any

import orjson
import pytest

from stream.config import load_ltv_params
from stream.domain.clv import Scores, score
from stream.domain.events import OrderLine, PurchaseEvent, fingerprint
from stream.domain.ltv import (
    MAX_OWNED_ITEMS,
    MAX_PURCHASE_DAYS,
    MAX_REMEMBERED_ORDERS,
    MAX_REMEMBERED_REFUNDS,
    CustomerState,
    OrderMemo,
    Rfm,
    apply_order,
    apply_refund,
    customer_scores,
    day_of,
    ltv_record,
    order_redelivered,
    pack,
    packed_partition,
    remember_bought,
    rfm,
    unpack,
)
from stream.state import StateCodec

DAY = 86_400.0
# 2026-11-23T00:00:00Z is day 20,780 after the epoch: 20,780 * 86,400 = 1,795,392,000.
D0 = 20_780
T0 = D0 * DAY


def order(
    order_id: str, ts: float, total: str | None, skus: tuple[str, ...] = ("x",)
) -> PurchaseEvent:
    return PurchaseEvent(
        event_id=f"e-{order_id}",
        type="order_completed",
        customer_id="c1",
        ts=ts,
        order_id=order_id,
        items=tuple(OrderLine(sku=s, quantity=1, unit_price=Decimal(1)) for s in skus),
        total=None if total is None else Decimal(total),
    )


def refund(event_id: str, order_id: str, total: str | None, ts: float = T0 + DAY) -> PurchaseEvent:
    return PurchaseEvent(
        event_id=event_id,
        type="order_refunded",
        customer_id="c1",
        ts=ts,
        order_id=order_id,
        items=(),
        total=None if total is None else Decimal(total),
    )


def fold(*events: PurchaseEvent) -> CustomerState:
    """Apply completed orders and refunds in the given order."""
    state: CustomerState | None = None
    for event in events:
        if event.type == "order_completed":
            state, _ = apply_order(state, event)
        else:
            state, _ = apply_refund(state, event)
    assert state is not None
    return state


@pytest.mark.parametrize(
    ("ts", "day"),
    [
        (0.0, 0),
        (DAY - 1, 0),  # 23:59:59 on 1970-01-01
        (DAY, 1),
        (T0 + 9 * 3600 + 15 * 60, D0),  # 2026-11-23T09:15:00Z
        (-1.0, -1),  # 1969-12-31T23:59:59Z
    ],
)
def test_day_of(ts: float, day: int) -> None:
    """day_of is the UTC day number: floor(ts / 86,400)."""
    assert day_of(ts) == day


# --- apply_order -----------------------------------------------------------------------------


def test_apply_order_first_order() -> None:
    """A first order sets orders 1, revenue, first/last ts, its day's value and the memo."""
    state, changed = apply_order(None, order("o1", T0 + 60, "12.50", ("a", "b")), 3, 41)
    assert changed is True
    assert state == CustomerState(
        orders=1,
        revenue=Decimal("12.50"),
        first_ts=T0 + 60,
        last_ts=T0 + 60,
        day_values={D0: Decimal("12.50")},
        recent_orders={
            fingerprint("o1"): OrderMemo(day=D0, value=Decimal("12.50"), partition=3, offset=41)
        },
        owned={"a": T0 + 60, "b": T0 + 60},
        partition=3,
    )


@pytest.mark.parametrize(
    ("totals", "revenue"),
    [
        # 0.1 + 0.2 three times = 0.9 exactly (as floats it would be 0.9000000000000001).
        (["0.1", "0.2"] * 3, "0.9"),
        (["19.99", "0.01"], "20.00"),  # 19.99 + 0.01
        (["0.10"] * 10, "1.00"),  # 10 * 0.10
        (["1000000.01", "0.99"], "1000001.00"),
        (["0"], "0"),
    ],
)
def test_apply_order_sums_revenue_exactly(totals: list[str], revenue: str) -> None:
    """Revenue is a Decimal sum of order totals, with no float drift."""
    state = fold(*(order(f"o{n}", T0 + n, total) for n, total in enumerate(totals)))
    assert state.orders == len(totals)
    assert state.revenue == Decimal(revenue)
    assert str(state.revenue) == revenue
    assert isinstance(state.revenue, Decimal)


def test_apply_order_without_total_counts_zero() -> None:
    """An order whose total is None counts as an order worth 0."""
    state, changed = apply_order(None, order("o1", T0, None))
    assert (changed, state.orders, state.revenue) == (True, 1, Decimal(0))


def test_apply_order_groups_values_by_utc_day() -> None:
    """Orders on the same UTC day add to one day value; 23:59:59 and 00:00:00 are two days."""
    state = fold(
        order("o1", T0 + 10, "10.00"),
        order("o2", T0 + DAY - 1, "5.00"),  # still day D0
        order("o3", T0 + DAY, "2.50"),  # day D0 + 1
    )
    assert state.day_values == {D0: Decimal("15.00"), D0 + 1: Decimal("2.50")}


def test_apply_order_first_and_last_ts_are_min_and_max() -> None:
    """first_ts/last_ts are the earliest and latest order times, whatever the arrival order."""
    state = fold(order("o1", T0 + 500, "1"), order("o2", T0 + 100, "1"), order("o3", T0 + 300, "1"))
    assert (state.first_ts, state.last_ts) == (T0 + 100, T0 + 500)


def test_apply_order_duplicate_order_id_is_a_no_op() -> None:
    """An order id seen before returns the same state and changed=False."""
    state, _ = apply_order(None, order("o1", T0, "10.00"), 0, 1)
    again, changed = apply_order(state, order("o1", T0 + 5, "99.00"), 0, 2)
    assert changed is False
    assert again is state
    assert (again.orders, again.revenue) == (1, Decimal("10.00"))


def test_apply_order_does_not_mutate_the_old_state() -> None:
    """apply_order returns a new state and leaves the given one as it was."""
    state, _ = apply_order(None, order("o1", T0, "10.00"))
    apply_order(state, order("o2", T0, "5.00"))
    assert state.day_values == {D0: Decimal("10.00")}
    assert list(state.recent_orders) == [fingerprint("o1")]


def test_apply_order_owned_maps_each_sku_to_its_latest_purchase() -> None:
    """owned holds each SKU once, with the time of its latest purchase."""
    state = fold(order("o1", T0, "1", ("a", "b")), order("o2", T0 + 1, "1", ("c", "a")))
    assert state.owned == {"a": T0 + 1, "b": T0, "c": T0 + 1}
    # An older order arriving late does not move a's time back; a new SKU gets its time.
    state, _ = apply_order(state, order("o3", T0 - 5, "1", ("a", "d")))
    assert state.owned == {"a": T0 + 1, "b": T0, "c": T0 + 1, "d": T0 - 5}


def test_apply_order_owned_is_capped() -> None:
    """owned keeps at most MAX_OWNED_ITEMS SKUs, dropping the least recently bought."""
    assert MAX_OWNED_ITEMS == 200
    state = fold(*(order(f"o{n}", T0 + n, "1", (f"s{n:03d}",)) for n in range(205)))
    assert len(state.owned) == 200
    # s005 .. s204 are kept (bought at T0 + 5 .. T0 + 204); s000 .. s004 fell off.
    assert set(state.owned) == {f"s{n:03d}" for n in range(5, 205)}
    assert (state.owned["s005"], state.owned["s204"]) == (T0 + 5, T0 + 204)


@pytest.mark.parametrize(
    ("owned", "skus", "ts", "expected"),
    [
        ({}, ("a", "b"), T0, {"a": T0, "b": T0}),
        ({}, ("a", "a"), T0, {"a": T0}),
        ({}, (), T0, {}),
        ({"a": T0}, ("a",), T0 + 10, {"a": T0 + 10}),  # a later purchase moves the time on
        ({"a": T0}, ("a",), T0 - 10, {"a": T0}),  # an earlier one does not move it back
        ({"a": T0}, ("b",), T0 - 10, {"a": T0, "b": T0 - 10}),
    ],
)
def test_remember_bought(
    owned: dict[str, float], skus: tuple[str, ...], ts: float, expected: dict[str, float]
) -> None:
    """remember_bought keeps each SKU's latest purchase time and leaves the given map as it was."""
    before = dict(owned)
    assert remember_bought(owned, skus, ts) == expected
    assert owned == before


def test_remember_bought_drops_the_least_recent_ties_by_sku() -> None:
    """Over MAX_OWNED_ITEMS the least recently bought go; equal times keep the smaller SKUs."""
    owned = {f"s{n:03d}": T0 for n in range(200)}
    # A newer purchase: kept; of the 200 tied at T0, the largest SKU (s199) goes.
    got = remember_bought(owned, ("new",), T0 + 1)
    assert len(got) == 200
    assert got["new"] == T0 + 1
    assert "s199" not in got
    assert "s198" in got
    # An older purchase than all 200: it is the one dropped.
    assert remember_bought(owned, ("old",), T0 - 1) == owned


def test_apply_order_remembers_the_last_orders_only() -> None:
    """After MAX_REMEMBERED_ORDERS + 1 orders the oldest id is forgotten and counts again."""
    assert MAX_REMEMBERED_ORDERS == 64
    state = fold(*(order(f"o{n}", T0 + n, "1") for n in range(65)))
    assert len(state.recent_orders) == 64
    assert fingerprint("o0") not in state.recent_orders
    assert fingerprint("o1") in state.recent_orders
    # o1 is still remembered: a no-op; o0 was evicted: counted again (orders 65 + 1 = 66).
    assert apply_order(state, order("o1", T0 + 1, "1"))[1] is False
    again, changed = apply_order(state, order("o0", T0, "1"))
    assert changed is True
    assert (again.orders, again.revenue) == (66, Decimal(66))


def test_order_redelivered_is_the_record_that_counted_the_order_read_again() -> None:
    """The record that counted an order, read again, is a redelivery (its outputs go again);
    the order id in another record, a refund, or an order not remembered is not."""
    state, _ = apply_order(None, order("o1", T0, "10.00"), 3, 41)
    assert order_redelivered(state, order("o1", T0, "10.00"), 3, 41) is True
    assert order_redelivered(state, order("o1", T0, "10.00"), 3, 42) is False
    assert order_redelivered(state, order("o1", T0, "10.00"), 2, 41) is False
    assert order_redelivered(state, refund("r1", "o1", None), 3, 41) is False
    assert order_redelivered(state, order("o2", T0, "10.00"), 3, 41) is False


# --- apply_refund ----------------------------------------------------------------------------


BOUGHT = fold(order("o1", T0, "10.00"), order("o2", T0 + 3 * DAY, "20.00"))


@pytest.mark.parametrize(
    ("refunds", "revenue", "o1_refunded", "day0"),
    [
        # Partial: 10.00 - 3.50 = 6.50.
        ([("r1", "3.50")], "26.50", "3.50", "6.50"),
        # Two partials: 10.00 - 3.50 - 1.25 = 5.25.
        ([("r1", "3.50"), ("r2", "1.25")], "25.25", "4.75", "5.25"),
        # Whole order (no total): all 10.00.
        ([("r1", None)], "20.00", "10.00", "0.00"),
        # A partial then the rest: 3.50 + 6.50.
        ([("r1", "3.50"), ("r2", None)], "20.00", "10.00", "0.00"),
        # Over-refund: 15.00 is capped at the 10.00 left.
        ([("r1", "15.00")], "20.00", "10.00", "0.00"),
        # 7.00 then 7.00: the second is capped at the 3.00 left.
        ([("r1", "7.00"), ("r2", "7.00")], "20.00", "10.00", "0.00"),
    ],
)
def test_apply_refund(
    refunds: list[tuple[str, str | None]], revenue: str, o1_refunded: str, day0: str
) -> None:
    """A refund takes its amount (or what is left) off revenue, the order's day and the memo."""
    state = BOUGHT
    for event_id, total in refunds:
        state, changed = apply_refund(state, refund(event_id, "o1", total))
        assert changed is True
    assert state.revenue == Decimal(revenue)
    assert state.recent_orders[fingerprint("o1")].refunded == Decimal(o1_refunded)
    assert state.day_values == {D0: Decimal(day0), D0 + 3: Decimal("20.00")}
    assert state.orders == 2  # a refund does not un-count the order
    assert state.recent_refunds == tuple(fingerprint(event_id) for event_id, _ in refunds)


def test_apply_refund_of_a_fully_refunded_order_is_a_no_op() -> None:
    """Once an order is refunded in full, a further refund changes nothing."""
    state, _ = apply_refund(BOUGHT, refund("r1", "o1", None))
    again, changed = apply_refund(state, refund("r2", "o1", "1.00"))
    assert changed is False
    assert again is state


def test_apply_refund_duplicate_event_id_is_a_no_op() -> None:
    """A refund event id seen before changes nothing, even for another amount."""
    state, _ = apply_refund(BOUGHT, refund("r1", "o1", "3.00"))
    again, changed = apply_refund(state, refund("r1", "o1", "3.00"))
    assert (again, changed) == (state, False)
    assert again.revenue == Decimal("27.00")  # 30.00 - 3.00, once


@pytest.mark.parametrize(
    "state",
    [None, CustomerState(), BOUGHT],
    ids=["no-state", "empty", "other-orders"],
)
def test_apply_refund_of_an_unknown_order_is_a_no_op(state: CustomerState | None) -> None:
    """A refund of an order that is not remembered changes nothing."""
    after, changed = apply_refund(state, refund("r1", "o-unknown", "5.00"))
    assert changed is False
    assert after == (state if state is not None else CustomerState())


def test_apply_refund_of_an_evicted_order_is_a_no_op() -> None:
    """An order pushed out of recent_orders can no longer be refunded."""
    state = fold(*(order(f"o{n}", T0 + n, "1") for n in range(65)))
    after, changed = apply_refund(state, refund("r1", "o0", None))
    assert (after is state, changed) == (True, False)


def test_apply_refund_remembers_the_last_refund_ids_only() -> None:
    """recent_refunds keeps the last MAX_REMEMBERED_REFUNDS event ids."""
    assert MAX_REMEMBERED_REFUNDS == 64
    state = fold(order("o1", T0, "100.00"))
    for n in range(65):
        state, changed = apply_refund(state, refund(f"r{n}", "o1", "0.01"))
        assert changed is True
    assert len(state.recent_refunds) == 64
    assert state.recent_refunds[0] == fingerprint("r1")
    assert state.recent_refunds[-1] == fingerprint("r64")
    assert state.revenue == Decimal("99.35")  # 100.00 - 65 * 0.01


# --- rfm -------------------------------------------------------------------------------------

# Orders: day 0: 10.00 + 5.00 (one purchase day worth 15.00); day 3: 20.00;
# day 10: 7.50 + 2.50 (one purchase day worth 10.00).
HISTORY = [
    order("a", T0 + 3_600, "10.00"),
    order("b", T0 + 20 * 3_600, "5.00"),
    order("c", T0 + 3 * DAY + 60, "20.00"),
    order("d", T0 + 10 * DAY, "7.50"),
    order("e", T0 + 11 * DAY - 1, "2.50"),
]
# Purchase days {0, 3, 10}: frequency = 3 - 1 = 2, recency = 10 - 0 = 10,
# T = 30 - 0 = 30 at as_of = day 30 12:00, monetary = mean(20.00, 10.00) = 15.0.
HISTORY_RFM = Rfm(frequency=2, recency=10.0, T=30.0, monetary_value=15.0)


@pytest.mark.parametrize(
    ("events", "as_of", "expected"),
    [
        ([], T0, Rfm(0, 0.0, 0.0, 0.0)),
        # One order: no repeat day; T = 5 - 0 = 5.
        ([order("a", T0, "9.99")], T0 + 5 * DAY, Rfm(0, 0.0, 5.0, 0.0)),
        # Two orders on the same day: still one purchase day.
        ([order("a", T0, "1"), order("b", T0 + 60, "2")], T0 + DAY, Rfm(0, 0.0, 1.0, 0.0)),
        # 23:59:59 and the next 00:00:00 are two days: frequency 1, recency 1,
        # T = 2 - 0 = 2, monetary = 4.00 (the repeat day).
        (
            [order("a", T0 + DAY - 1, "3.00"), order("b", T0 + DAY, "4.00")],
            T0 + 2 * DAY,
            Rfm(1, 1.0, 2.0, 4.0),
        ),
        (HISTORY, T0 + 30 * DAY + 12 * 3_600, HISTORY_RFM),
        # as_of on the last purchase day: T = recency = 10.
        (HISTORY, T0 + 10 * DAY, Rfm(2, 10.0, 10.0, 15.0)),
        # as_of before the last purchase day (a late older order): T is not below recency.
        (HISTORY, T0 + 4 * DAY, Rfm(2, 10.0, 10.0, 15.0)),
        # Three repeat days 1.00, 2.00, 4.00: monetary = 7 / 3.
        (
            [order(str(d), T0 + d * DAY, v) for d, v in [(0, "9"), (1, "1"), (2, "2"), (5, "4")]],
            T0 + 5 * DAY,
            Rfm(3, 5.0, 5.0, 7 / 3),
        ),
        # A partial refund on the repeat day 3: 20.00 - 5.00 = 15.00; monetary = (15 + 10) / 2.
        (
            [*HISTORY, refund("r1", "c", "5.00")],
            T0 + 30 * DAY,
            Rfm(2, 10.0, 30.0, 12.5),
        ),
        # A refund on the first day does not change monetary (first day excluded).
        (
            [*HISTORY, refund("r1", "a", "10.00")],
            T0 + 30 * DAY,
            HISTORY_RFM,
        ),
    ],
)
def test_rfm(events: list[PurchaseEvent], as_of: float, expected: Rfm) -> None:
    """rfm follows lifetimes' freq='D' summary on UTC purchase days."""
    state = fold(*events) if events else CustomerState()
    assert rfm(state, as_of) == expected


def test_rfm_types() -> None:
    """frequency is an int; recency, T and monetary_value are floats."""
    summary = rfm(fold(*HISTORY), T0 + 30 * DAY)
    assert type(summary.frequency) is int
    assert all(type(v) is float for v in (summary.recency, summary.T, summary.monetary_value))


def test_rfm_is_independent_of_arrival_order() -> None:
    """Every arrival order of the same orders gives the same state figures and RFM."""
    as_of = T0 + 30 * DAY + 12 * 3_600
    for arrival in permutations(HISTORY):
        state = fold(*arrival)
        assert rfm(state, as_of) == HISTORY_RFM
        assert (state.orders, state.revenue) == (5, Decimal("45.00"))
        assert (state.first_ts, state.last_ts) == (T0 + 3_600, T0 + 11 * DAY - 1)
        assert state.day_values == {
            D0: Decimal("15.00"),
            D0 + 3: Decimal("20.00"),
            D0 + 10: Decimal("10.00"),
        }


# --- ltv_record ------------------------------------------------------------------------------


def test_ltv_record() -> None:
    """The customer-ltv record: realized figures, RFM, RFC 3339 times and null model scores."""
    state = fold(*HISTORY)
    rec = ltv_record("c1", state, T0 + 30 * DAY + 12 * 3_600, "treatment")
    assert rec == {
        "customer_id": "c1",
        "variant": "treatment",
        "as_of": "2026-12-23T12:00:00Z",  # 2026-11-23 + 30 days
        "orders": 5,
        "revenue": Decimal("45.00"),
        "aov": Decimal("9.00"),  # 45.00 / 5
        "first_purchase": "2026-11-23T01:00:00Z",
        "last_purchase": "2026-12-03T23:59:59Z",  # day 11 minus one second
        "frequency": 2,
        "recency": 10.0,
        "T": 30.0,
        "monetary_value": 15.0,
        "p_alive": None,
        "expected_purchases": None,
        "predicted_clv": None,
        "ltv": 45.0,  # realized only: no scores given
        "rank": None,
    }
    assert type(rec["frequency"]) is int
    assert all(type(rec[k]) is float for k in ("recency", "T", "monetary_value"))
    assert all(isinstance(rec[k], Decimal) for k in ("revenue", "aov"))
    assert type(rec["ltv"]) is float


@pytest.mark.parametrize(
    ("totals", "aov"),
    [
        (["10.00", "0", "0"], "3.33"),  # 10.00 / 3 = 3.333... -> 3.33
        (["10.00", "10.01"], "10.00"),  # 20.01 / 2 = 10.005 -> 10.00 (half to even)
        (["1", "2"], "1.50"),  # 3 / 2 = 1.5 -> 1.50
        (["7"], "7.00"),
    ],
)
def test_ltv_record_aov(totals: list[str], aov: str) -> None:
    """aov = revenue / orders quantized to cents."""
    state = fold(*(order(f"o{n}", T0 + n, t) for n, t in enumerate(totals)))
    rec = ltv_record("c1", state, T0, "control")
    assert str(rec["aov"]) == aov


def test_ltv_record_of_an_empty_state() -> None:
    """A customer without orders: zeros, no purchase times, aov 0.00."""
    rec = ltv_record("c9", CustomerState(), T0, "control")
    assert rec["as_of"] == "2026-11-23T00:00:00Z"
    assert (rec["orders"], rec["revenue"], str(rec["aov"])) == (0, Decimal(0), "0.00")
    assert (rec["first_purchase"], rec["last_purchase"]) == (None, None)
    assert (rec["frequency"], rec["recency"], rec["T"], rec["monetary_value"]) == (0, 0, 0, 0)
    assert rec["variant"] == "control"


def test_ltv_record_revenue_is_net_of_refunds() -> None:
    """revenue and ltv are net of refunds; orders still counts the refunded order."""
    state = fold(*HISTORY, refund("r1", "c", "5.00"))
    rec = ltv_record("c1", state, T0 + 30 * DAY, "treatment")
    # 45.00 - 5.00 = 40.00; aov = 40.00 / 5 = 8.00.
    assert (rec["revenue"], rec["ltv"], rec["orders"]) == (Decimal("40.00"), 40.0, 5)
    assert rec["aov"] == Decimal("8.00")


def test_customer_state_json_round_trip() -> None:
    """CustomerState.from_json(to_json()) gives back Decimals, int days and memos."""
    state = fold(*HISTORY, refund("r1", "c", "5.00"))
    assert CustomerState.from_json(state.to_json()) == state


def test_packed_state_round_trips_and_is_compact() -> None:
    """unpack(pack(s)) == s (refunds, memos, owned, partition); smaller than the named form."""
    state, _ = apply_order(fold(*HISTORY, refund("r1", "c", "5.00")), order("o9", T0, "1"), 3, 77)
    packed = pack(state)
    assert unpack(packed) == state
    assert packed_partition(packed) == 3
    assert len(packed) < len(StateCodec().dumps(state))


def test_unpack_reads_records_written_before_packing() -> None:
    """A changelog record of the older `["CustomerState", fields]` form still reads back."""
    state = fold(*HISTORY, refund("r1", "c", "5.00"))
    older = StateCodec().dumps(replace(state, partition=2))
    assert unpack(older) == replace(state, partition=2)
    assert packed_partition(older) == 2


WHOLE_IDS = {fingerprint(event.order_id): event.order_id for event in HISTORY}


def packed_with_ids_whole(state: CustomerState) -> list[Any]:
    """`pack`'s fields with the order and refund ids whole, as before fingerprints
    (the one refund of these tests is `r1`)."""
    fields = orjson.loads(pack(state))
    memos = fields[6]
    for i in range(0, len(memos), 6):
        memos[i] = WHOLE_IDS[memos[i]]
    fields[7] = ["r1"] if fields[7] else []
    return fields


def test_unpack_reads_version_2_records() -> None:
    """A packed record from before the folded purchase days (version 2) reads back."""
    state = replace(fold(*HISTORY, refund("r1", "c", "5.00")), partition=4)
    fields = packed_with_ids_whole(state)
    version_2 = orjson.dumps([2, *fields[1:-3], fields[-1]])
    assert unpack(version_2) == state
    assert packed_partition(version_2) == 4


def test_unpack_reads_records_that_hold_ids_whole() -> None:
    """Records from before fingerprints (version 3, and the named form) hold order and refund
    ids whole: they load as the fingerprints a new record holds."""
    state = fold(*HISTORY, refund("r1", "c", "5.00"))
    version_3 = orjson.dumps([3, *packed_with_ids_whole(state)[1:]])
    assert unpack(version_3) == state
    assert packed_partition(version_3) == state.partition
    named = state.to_json()
    named["recent_orders"] = {WHOLE_IDS[row[0]]: row[1:] for row in named["recent_orders"]}
    named["recent_refunds"] = ["r1"]
    assert unpack(orjson.dumps(["CustomerState", named])) == state


def many_days(count: int) -> list[PurchaseEvent]:
    """One order a day on `count` days, every other day, worth 1.25, 2.50, 3.75, ..."""
    return [order(f"d{n}", T0 + 2 * n * DAY, str(Decimal("1.25") * (n + 1))) for n in range(count)]


def exact_rfm(orders: list[PurchaseEvent], as_of: float) -> Rfm:
    """lifetimes' summary of one order a day, computed here without any bound."""
    days = sorted((day_of(o.ts), o.total) for o in orders)
    repeat = [value for _, value in days[1:] if value is not None]
    return Rfm(
        frequency=len(repeat),
        recency=float(days[-1][0] - days[0][0]),
        T=float(day_of(as_of) - days[0][0]),
        monetary_value=float(sum(repeat, Decimal(0)) / len(repeat)),
    )


def test_purchase_days_are_bounded_and_rfm_stays_exact_in_time_order() -> None:
    """150 purchase days: MAX_PURCHASE_DAYS kept (the first among them), the rest folded, exact."""
    orders = many_days(150)
    state = fold(*orders)
    assert len(state.day_values) == MAX_PURCHASE_DAYS
    assert min(state.day_values) == D0  # the first day is always kept
    assert state.folded_days == 150 - MAX_PURCHASE_DAYS
    as_of = T0 + 400 * DAY
    assert rfm(state, as_of) == exact_rfm(orders, as_of)
    assert unpack(pack(state)) == state
    assert CustomerState.from_json(state.to_json()) == state


def test_a_refund_of_a_folded_day_comes_off_the_fold() -> None:
    """A refund of an order whose day was folded lowers monetary_value as without the bound."""
    orders = many_days(MAX_PURCHASE_DAYS + 10)
    # 74 days: d1..d10 folded; the last 64 orders (d10..d73) remembered.
    state, changed = apply_refund(fold(*orders), refund("r", "d10", "2.00"))
    assert changed
    assert day_of(orders[10].ts) not in state.day_values  # folded
    reduced = [*orders[:10], replace(orders[10], total=Decimal("11.75")), *orders[11:]]
    assert rfm(state, T0 + 400 * DAY) == exact_rfm(reduced, T0 + 400 * DAY)


def test_a_late_order_in_the_folded_span_adds_value_but_no_day() -> None:
    """The bound's one approximation: a late order on a day inside the folded span.

    Its value counts; whether its day already had a purchase is not known,
    so it counts no new day (without the bound frequency would be one more).
    """
    orders = many_days(MAX_PURCHASE_DAYS + 10)
    state = fold(*orders)
    late, changed = apply_order(state, order("late", T0 + 3 * DAY, "10.00"))  # an odd day: new
    assert changed
    assert late.folded_days == state.folded_days
    assert late.folded_value == state.folded_value + Decimal("10.00")
    assert late.orders == state.orders + 1
    assert rfm(late, T0).frequency == rfm(state, T0).frequency


def test_an_order_before_the_first_day_keeps_the_bound() -> None:
    """A late order before the first day: the new first day is kept, the old one is a repeat."""
    orders = many_days(MAX_PURCHASE_DAYS + 10)
    early = order("early", T0 - 5 * DAY, "7.00")
    state = fold(*orders, early)
    assert len(state.day_values) == MAX_PURCHASE_DAYS
    assert min(state.day_values) == D0 - 5
    assert rfm(state, T0 + 400 * DAY) == exact_rfm([early, *orders], T0 + 400 * DAY)


def test_ltv_record_with_scores_adds_predicted_to_realized() -> None:
    """With scores: model fields filled, ltv = revenue + predicted CLV, rank passed through."""
    state, _ = apply_order(None, order("o1", T0, "40.00"))
    scores = Scores(
        p_alive=0.9, expected_purchases=1.5, expected_average_value=30.0, predicted_clv=42.25
    )
    rec = ltv_record("c1", state, T0, "treatment", scores, "B")
    assert (rec["p_alive"], rec["expected_purchases"], rec["predicted_clv"]) == (0.9, 1.5, 42.25)
    assert rec["ltv"] == 82.25  # 40.00 + 42.25
    assert rec["rank"] == "B"


def test_customer_scores_match_the_closed_form() -> None:
    """customer_scores scores the RFM summary at as_of with the params given."""
    params = load_ltv_params(None)
    first, _ = apply_order(None, order("o1", T0, "10.00"))
    state, _ = apply_order(first, order("o2", T0 + 10 * DAY, "30.00"))
    as_of = T0 + 40 * DAY
    # frequency 1 (one repeat day), recency 10, T 40, monetary 30.00
    expected = score(params, 1, 10.0, 40.0, 30.0)
    assert customer_scores(state, as_of, params) == expected


@pytest.mark.parametrize("price", [1e26, 1.5e300])
def test_a_record_of_any_finite_amount(price: float) -> None:
    """An order of any finite amount gets its customer-ltv record (the codec takes up to 1e15
    a line since, but state is summed): aov to the cent of 1e26 raised InvalidOperation (29
    digits against the default context's 28)."""
    state, _ = apply_order(None, order("o1", T0, str(price)))
    record = ltv_record("c1", state, T0, "treatment", None, None)
    assert record["aov"] == Decimal(str(price)).quantize(Decimal("0.01"), context=Context(prec=400))
