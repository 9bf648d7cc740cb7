"""stream.domain.subscriptions: a subscription's plan, price, renewal date and status."""

from __future__ import annotations

from decimal import Decimal

import pytest

from stream.domain.events import SubscriptionEvent
from stream.domain.subscriptions import (
    MAX_REMEMBERED_EVENTS,
    SubscriptionState,
    apply_subscription_event,
)

T0 = 1_795_425_300.0  # 2026-11-23T09:15:00Z
RENEWS = T0 + 30 * 86_400  # 2026-12-23T09:15:00Z


def event(
    event_id: str,
    type_: str,
    ts: float = T0,
    plan_id: str | None = None,
    price: str | None = None,
    period_days: int | None = None,
    renews_at: float | None = None,
) -> SubscriptionEvent:
    return SubscriptionEvent(
        event_id=event_id,
        type=type_,
        customer_id="c1",
        ts=ts,
        subscription_id="sub1",
        plan_id=plan_id,
        price=None if price is None else Decimal(price),
        period_days=period_days,
        renews_at=renews_at,
    )


STARTED = event("e1", "subscription_started", T0, "basic", "9.99", 30, RENEWS)
STARTED_STATE = SubscriptionState(
    customer_id="c1",
    plan_id="basic",
    price=Decimal("9.99"),
    period_days=30,
    renews_at=RENEWS,
    status="active",
    updated_ts=T0,
    recent_events=("e1",),
)


def test_started_sets_every_field() -> None:
    """subscription_started on no state fills every field and the customer from the event."""
    state, changed = apply_subscription_event(None, STARTED)
    assert changed is True
    assert state == STARTED_STATE


@pytest.mark.parametrize(
    ("follow", "expected"),
    [
        # Renewed: only the new renewal date changes (30 more days).
        (
            event("e2", "subscription_renewed", T0 + 10, renews_at=RENEWS + 30 * 86_400),
            ("basic", Decimal("9.99"), 30, RENEWS + 30 * 86_400, "active"),
        ),
        # Changed: the new plan and price, period and renewal kept.
        (
            event("e2", "subscription_changed", T0 + 10, plan_id="pro", price="19.99"),
            ("pro", Decimal("19.99"), 30, RENEWS, "active"),
        ),
        # Changed period only.
        (
            event("e2", "subscription_changed", T0 + 10, period_days=365),
            ("basic", Decimal("9.99"), 365, RENEWS, "active"),
        ),
        # Cancelled: status cancelled, everything else kept.
        (
            event("e2", "subscription_cancelled", T0 + 10),
            ("basic", Decimal("9.99"), 30, RENEWS, "cancelled"),
        ),
    ],
)
def test_later_events_change_what_they_carry(
    follow: SubscriptionEvent, expected: tuple[object, ...]
) -> None:
    """Fields an event leaves out keep their value; cancelled sets the status."""
    state, changed = apply_subscription_event(STARTED_STATE, follow)
    assert changed is True
    assert (state.plan_id, state.price, state.period_days, state.renews_at, state.status) == (
        expected
    )
    assert state.updated_ts == T0 + 10
    assert state.recent_events == ("e1", "e2")


@pytest.mark.parametrize(
    "type_",
    ["subscription_started", "subscription_renewed", "subscription_changed"],
)
def test_any_other_event_after_cancel_reactivates(type_: str) -> None:
    """After subscription_cancelled, any other event type sets the status back to active."""
    cancelled, _ = apply_subscription_event(STARTED_STATE, event("e2", "subscription_cancelled"))
    state, _ = apply_subscription_event(cancelled, event("e3", type_, T0 + 20))
    assert (cancelled.status, state.status) == ("cancelled", "active")


def test_first_event_may_be_other_than_started() -> None:
    """Without state, a non-start event builds a subscription from what it carries."""
    state, changed = apply_subscription_event(
        None, event("e5", "subscription_renewed", T0, renews_at=RENEWS)
    )
    assert changed is True
    assert state == SubscriptionState(
        customer_id="c1", renews_at=RENEWS, updated_ts=T0, recent_events=("e5",)
    )


def test_updated_ts_is_the_latest_event_time() -> None:
    """updated_ts = max of the events' ts, even when an older event comes later."""
    state, _ = apply_subscription_event(STARTED_STATE, event("e2", "subscription_renewed", T0 - 5))
    assert state.updated_ts == T0


def test_duplicate_event_id_is_a_no_op() -> None:
    """An event id seen before returns the same state and changed=False."""
    again, changed = apply_subscription_event(
        STARTED_STATE, event("e1", "subscription_cancelled", T0 + 99)
    )
    assert changed is False
    assert again is STARTED_STATE


def test_recent_events_are_bounded() -> None:
    """recent_events keeps the last MAX_REMEMBERED_EVENTS ids; an evicted id applies again."""
    assert MAX_REMEMBERED_EVENTS == 16
    state = STARTED_STATE
    for n in range(2, 18):  # e2 .. e17: with e1 that is 17 ids
        state, changed = apply_subscription_event(state, event(f"e{n}", "subscription_renewed"))
        assert changed is True
    assert len(state.recent_events) == 16
    assert state.recent_events[0] == "e2"
    assert state.recent_events[-1] == "e17"
    assert apply_subscription_event(state, event("e2", "subscription_cancelled"))[1] is False
    again, changed = apply_subscription_event(state, event("e1", "subscription_cancelled"))
    assert (changed, again.status) == (True, "cancelled")


@pytest.mark.parametrize(
    "state",
    [
        STARTED_STATE,
        SubscriptionState(customer_id="c2"),
        SubscriptionState(customer_id="c3", price=Decimal("0.10"), status="cancelled"),
    ],
)
def test_json_round_trip(state: SubscriptionState) -> None:
    """SubscriptionState.from_json(to_json()) gives back the same state, price as Decimal."""
    assert SubscriptionState.from_json(state.to_json()) == state
