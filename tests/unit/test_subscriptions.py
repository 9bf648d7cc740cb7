"""stream.domain.subscriptions: a subscription's plan, price, renewal date and status."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from stream.domain.events import SubscriptionEvent, fingerprint
from stream.domain.subscriptions import (
    MAX_REMEMBERED_EVENTS,
    SubscriptionState,
    apply_subscription_event,
    due_windows,
    next_due,
    next_plan,
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
    recent_events=(fingerprint("e1"),),
    cycle_ts=T0,  # the event that set renews_at
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
    assert state.recent_events == (fingerprint("e1"), fingerprint("e2"))


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
        customer_id="c1",
        renews_at=RENEWS,
        updated_ts=T0,
        recent_events=(fingerprint("e5"),),
        cycle_ts=T0,
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


def test_has_seen_is_whether_an_event_id_was_applied() -> None:
    """has_seen tells, by the id's fingerprint, an event applied from one that was not."""
    assert STARTED_STATE.has_seen("e1") is True
    assert STARTED_STATE.has_seen("e2") is False


def test_recent_events_are_bounded() -> None:
    """recent_events keeps the last MAX_REMEMBERED_EVENTS ids; an evicted id applies again."""
    assert MAX_REMEMBERED_EVENTS == 16
    state = STARTED_STATE
    for n in range(2, 18):  # e2 .. e17: with e1 that is 17 ids
        state, changed = apply_subscription_event(state, event(f"e{n}", "subscription_renewed"))
        assert changed is True
    assert len(state.recent_events) == 16
    assert state.recent_events[0] == fingerprint("e2")
    assert state.recent_events[-1] == fingerprint("e17")
    assert apply_subscription_event(state, event("e2", "subscription_cancelled"))[1] is False
    again, changed = apply_subscription_event(state, event("e1", "subscription_cancelled"))
    assert (changed, again.status) == (True, "cancelled")


@pytest.mark.parametrize(
    "state",
    [
        STARTED_STATE,
        SubscriptionState(customer_id="c2"),
        SubscriptionState(customer_id="c3", price=Decimal("0.10"), status="cancelled"),
        replace(STARTED_STATE, fired=(3, 14), partition=5),
    ],
)
def test_json_round_trip(state: SubscriptionState) -> None:
    """SubscriptionState.from_json(to_json()) gives back the same state, price as Decimal."""
    assert SubscriptionState.from_json(state.to_json()) == state


def test_json_with_event_ids_whole() -> None:
    """A state written before fingerprints holds its event ids whole: they load as fingerprints."""
    data = STARTED_STATE.to_json()
    data["recent_events"] = ["e1"]
    state = SubscriptionState.from_json(data)
    assert state == STARTED_STATE
    assert apply_subscription_event(state, STARTED) == (state, False)


def test_json_without_fired_partition_or_cycle_ts() -> None:
    """A state written before fired, partition and cycle_ts: none fired, no partition, 0.0."""
    data = STARTED_STATE.to_json()
    del data["fired"], data["partition"], data["cycle_ts"]
    assert SubscriptionState.from_json(data) == replace(STARTED_STATE, cycle_ts=0.0)


FIRED_14 = replace(STARTED_STATE, fired=(14,), partition=2)


@pytest.mark.parametrize(
    ("follow", "fired", "cycle_ts"),
    [
        # A new renewal date starts a new cycle at the event's time: nothing of it fired.
        (event("e2", "subscription_renewed", T0 + 10, renews_at=RENEWS + 30 * 86_400), (), T0 + 10),
        (event("e2", "subscription_changed", T0 + 10, renews_at=RENEWS - 86_400), (), T0 + 10),
        # The same renewal date again is the same cycle.
        (event("e2", "subscription_renewed", T0 + 10, renews_at=RENEWS), (14,), T0),
        # No renewal date in the event: renews_at, and so the cycle, is kept.
        (event("e2", "subscription_changed", T0 + 10, plan_id="pro", price="19.99"), (14,), T0),
        (event("e2", "subscription_cancelled", T0 + 10), (14,), T0),
    ],
)
def test_cycle_is_reset_only_by_a_new_renewal_date(
    follow: SubscriptionEvent, fired: tuple[int, ...], cycle_ts: float
) -> None:
    """`fired` and `cycle_ts` belong to one cycle (renews_at): only a new date resets them."""
    state, _ = apply_subscription_event(FIRED_14, follow)
    assert (state.fired, state.cycle_ts) == (fired, cycle_ts)


def test_partition_is_kept_unless_given() -> None:
    """apply_subscription_event records the partition given (>= 0) and keeps it otherwise."""
    state, _ = apply_subscription_event(None, STARTED, partition=3)
    assert state.partition == 3
    kept, _ = apply_subscription_event(state, event("e2", "subscription_changed", plan_id="pro"))
    assert kept.partition == 3
    moved, _ = apply_subscription_event(kept, event("e3", "subscription_renewed"), partition=0)
    assert moved.partition == 0


WINDOWS = (14, 3)
OPENS_14 = T0 + 16 * 86_400  # RENEWS - 14 * 86_400 = T0 + (30 - 14) days = 1_796_807_700
OPENS_3 = T0 + 27 * 86_400  # RENEWS - 3 * 86_400 = T0 + (30 - 3) days = 1_797_758_100


def test_window_openings() -> None:
    """The opening times above, worked out by hand, are the ones the module uses."""
    assert (OPENS_14, OPENS_3) == (1_796_807_700.0, 1_797_758_100.0)
    opened, _ = due_windows(STARTED_STATE, RENEWS, WINDOWS)
    assert opened == [(14, 1_796_807_700.0), (3, 1_797_758_100.0)]


@pytest.mark.parametrize(
    ("state", "windows", "expected"),
    [
        (STARTED_STATE, WINDOWS, OPENS_14),  # nothing fired: the widest window, 14
        (STARTED_STATE, (3, 14), OPENS_14),  # the order of the windows does not matter
        (replace(STARTED_STATE, fired=(14,)), WINDOWS, OPENS_3),  # 14 fired: 3 is next
        (replace(STARTED_STATE, fired=(3,)), WINDOWS, OPENS_14),  # 3 fired: 14 still open
        (replace(STARTED_STATE, fired=(3, 14)), WINDOWS, None),  # all fired
        (STARTED_STATE, (), None),  # no windows configured
        (replace(STARTED_STATE, status="cancelled"), WINDOWS, None),
        (SubscriptionState(customer_id="c1"), WINDOWS, None),  # no renews_at
    ],
)
def test_next_due(
    state: SubscriptionState, windows: tuple[int, ...], expected: float | None
) -> None:
    """next_due: when the widest unfired window of the cycle opens; None when none can fire."""
    assert next_due(state, windows) == expected


@pytest.mark.parametrize(
    ("state", "now", "windows", "opened", "fired"),
    [
        # Before any window (14 opens at T0 + 16 d).
        (STARTED_STATE, T0, WINDOWS, [], ()),
        (STARTED_STATE, OPENS_14 - 1, WINDOWS, [], ()),
        # Exactly at the 14-day window's opening; 3 opens 11 days later.
        (STARTED_STATE, OPENS_14, WINDOWS, [(14, OPENS_14)], (14,)),
        (STARTED_STATE, OPENS_3 - 1, WINDOWS, [(14, OPENS_14)], (14,)),
        # Past both at once: both, widest first, each at its own opening time.
        (STARTED_STATE, OPENS_3, WINDOWS, [(14, OPENS_14), (3, OPENS_3)], (3, 14)),
        (STARTED_STATE, OPENS_3, (3, 14), [(14, OPENS_14), (3, OPENS_3)], (3, 14)),
        # 14 already fired: only 3, and not before it opens.
        (replace(STARTED_STATE, fired=(14,)), OPENS_3 - 1, WINDOWS, [], (14,)),
        (replace(STARTED_STATE, fired=(14,)), OPENS_3, WINDOWS, [(3, OPENS_3)], (3, 14)),
        # Everything fired: nothing again.
        (replace(STARTED_STATE, fired=(3, 14)), RENEWS, WINDOWS, [], (3, 14)),
        # Event time past renews_at itself: the windows still fire (event-time semantics).
        (STARTED_STATE, RENEWS + 10 * 86_400, WINDOWS, [(14, OPENS_14), (3, OPENS_3)], (3, 14)),
        # Cancelled, or no renewal date: nothing fires.
        (replace(STARTED_STATE, status="cancelled"), OPENS_3, WINDOWS, [], ()),
        (SubscriptionState(customer_id="c1"), OPENS_3, WINDOWS, [], ()),
    ],
)
def test_due_windows(
    state: SubscriptionState,
    now: float,
    windows: tuple[int, ...],
    opened: list[tuple[int, float]],
    fired: tuple[int, ...],
) -> None:
    """due_windows: the unfired windows event time `now` reached, widest first, now spent."""
    got, after = due_windows(state, now, windows)
    assert got == opened
    assert after == replace(state, fired=fired)


# Started at T0, renewing 5 days later: the 14-day window opened at T0 - 9 days, before
# the cycle began; the 3-day one opens at T0 + 2 days.
SHORT = SubscriptionState(customer_id="c1", plan_id="basic", renews_at=T0 + 5 * 86_400, cycle_ts=T0)


@pytest.mark.parametrize(
    ("now", "opened"),
    [
        (T0, [(14, T0)]),  # open since before the cycle: fires at its start, T0
        (T0 + 2 * 86_400 - 1, [(14, T0)]),
        (T0 + 2 * 86_400, [(14, T0), (3, T0 + 2 * 86_400)]),  # 3 at its own opening
    ],
)
def test_due_windows_open_no_earlier_than_the_cycle(
    now: float, opened: list[tuple[int, float]]
) -> None:
    """A window that opened before the cycle began (cycle_ts) fires at the cycle's start."""
    assert due_windows(SHORT, now, WINDOWS)[0] == opened


def test_due_windows_never_open_after_now() -> None:
    """No window fires at a time event time `now` has not reached yet."""
    # The 14-day window opened at T0 - 9 days, the cycle began at T0; now is T0 - 1.
    opened, _ = due_windows(SHORT, T0 - 1, WINDOWS)
    assert all(opens_at <= T0 - 1 for _, opens_at in opened), opened


def test_due_windows_fire_once() -> None:
    """Asking again at the same or a later time fires nothing already fired."""
    first, state = due_windows(STARTED_STATE, OPENS_14, WINDOWS)
    again, same = due_windows(state, OPENS_14 + 86_400, WINDOWS)  # 3 opens later
    later, done = due_windows(same, OPENS_3, WINDOWS)
    assert (first, again, later) == ([(14, OPENS_14)], [], [(3, OPENS_3)])
    assert done.fired == (3, 14)
    assert next_due(done, WINDOWS) is None


LADDER = ("basic", "plus", "pro")


@pytest.mark.parametrize(
    ("ladder", "plan_id", "expected"),
    [
        (LADDER, "basic", "plus"),  # bottom: the next one up
        (LADDER, "plus", "pro"),  # middle
        (LADDER, "pro", None),  # top: nothing above
        (LADDER, "gold", None),  # off the ladder
        (LADDER, None, None),  # no plan known
        ((), "basic", None),  # no ladder configured
        (("basic",), "basic", None),  # a one-plan ladder
    ],
)
def test_next_plan(ladder: tuple[str, ...], plan_id: str | None, expected: str | None) -> None:
    """next_plan: the plan above plan_id on the ladder; None at the top or off it."""
    assert next_plan(ladder, plan_id) == expected


def test_a_late_change_does_not_reopen_a_cancelled_subscription() -> None:
    """A change dated before the cancellation, read after it, leaves it cancelled: no window
    of it fires (the late event's id is remembered)."""
    cancelled, _ = apply_subscription_event(
        STARTED_STATE, event("e2", "subscription_cancelled", T0 + 5 * 86_400)
    )
    late, changed = apply_subscription_event(
        cancelled, event("e3", "subscription_changed", T0 + 86_400, plan_id="plus", price="19")
    )
    assert changed
    assert (late.status, late.plan_id, late.price) == ("cancelled", "basic", Decimal("9.99"))
    assert late.updated_ts == T0 + 5 * 86_400
    assert late.has_seen("e3")
    assert next_due(late, (14, 3)) is None


def test_a_late_change_does_not_bring_back_a_replaced_renewal_date() -> None:
    """After a renewal moved renews_at on, a change dated before it with the old date keeps the
    new cycle: its fired windows stay, the old cycle's do not fire again."""
    renewed, _ = apply_subscription_event(
        STARTED_STATE,
        event("e2", "subscription_renewed", RENEWS, renews_at=RENEWS + 30 * 86_400),
    )
    _, fired = due_windows(renewed, RENEWS + 20 * 86_400, (14, 3))
    late, _ = apply_subscription_event(
        fired, event("e3", "subscription_changed", T0 + 86_400, renews_at=RENEWS)
    )
    assert (late.renews_at, late.fired, late.cycle_ts) == (
        RENEWS + 30 * 86_400,
        fired.fired,
        fired.cycle_ts,
    )


def test_a_late_event_fills_in_what_is_unknown() -> None:
    """A field no applied event set yet is taken from a late one; the status stays."""
    cancelled, _ = apply_subscription_event(
        None, event("e2", "subscription_cancelled", T0 + 86_400)
    )
    late, _ = apply_subscription_event(cancelled, STARTED)
    assert (late.status, late.plan_id, late.price, late.renews_at, late.cycle_ts) == (
        "cancelled",
        "basic",
        Decimal("9.99"),
        RENEWS,
        T0,
    )
