"""stream.domain.contacts: daily cap, offer cooldown, exposures and attribution."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from unittest import mock

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.domain import contacts
from stream.domain.contacts import (
    EARLIER_DAYS,
    EXPOSURES_PER_ITEM,
    LATE_DAYS,
    MAX_REMEMBERED,
    RECENT_TRIGGERS,
    ContactRules,
    ContactState,
    attribute,
    forget_before,
    offer_key,
    record_exposure,
    record_trigger,
    restrain,
    trigger_print,
)
from stream.domain.events import OrderLine, PurchaseEvent, fingerprint

T0 = 1_795_425_300.0  # 2026-11-23T09:15:00Z
DAY = 20_780  # floor(T0 / 86_400): 20_780 * 86_400 = 1_795_392_000, + 33_300 s (09:15) = T0
MIDNIGHT = 1_795_478_400.0  # 2026-11-24T00:00:00Z = (20_780 + 1) * 86_400: the next UTC day
HOUR = 3_600.0
COOLDOWN = 72 * HOUR  # 72 h * 3_600 = 259_200 s
WINDOW = 7 * 86_400.0  # 7 days = 604_800 s

RULES = ContactRules(daily_cap=3, offer_cooldown_hours=72.0, attribution_days=7.0)

A = {"type": "cross_sell", "sku": "a", "score": 0.7, "reason": "popular"}
B = {"type": "cross_sell", "sku": "b", "score": 0.5, "reason": "popular"}
PRO = {"type": "upsell", "plan_id": "pro", "score": 1.0, "reason": "next plan after basic"}
PRO_SKU = {"type": "cross_sell", "sku": "pro", "score": 0.1, "reason": "popular"}


def test_default_rules() -> None:
    """ContactRules defaults: 3 triggers a day, 72 h cooldown, 7 days of attribution."""
    assert ContactRules() == ContactRules(
        daily_cap=3, offer_cooldown_hours=72.0, attribution_days=7.0
    )


@pytest.mark.parametrize(
    ("offer", "key"),
    [
        (A, "sku:a"),
        (PRO, "plan:pro"),
        (PRO_SKU, "sku:pro"),  # a SKU named like a plan is another offer
        ({"sku": "x", "plan_id": "y"}, "sku:x"),  # a SKU wins over a plan
    ],
)
def test_offer_key(offer: dict[str, Any], key: str) -> None:
    """offer_key is `sku:X` for an item and `plan:Y` for a plan."""
    assert offer_key(offer) == key


OFFERED_AT_T0 = ContactState(day=DAY, sent_on_day=1, offered={"sku:a": T0, "plan:pro": T0})


@pytest.mark.parametrize(
    ("state", "offers", "at", "expected"),
    [
        # No state at all: everything is fresh.
        (None, [A, B], T0, ([A, B], None)),
        # A trigger without offers (a plain reminder) is allowed.
        (None, [], T0, ([], None)),
        (OFFERED_AT_T0, [], T0 + HOUR, ([], None)),
        # a offered at T0: still cooling 1 s before T0 + 259_200 ...
        (OFFERED_AT_T0, [A], T0 + COOLDOWN - 1, ([], "no_fresh_offer")),
        # ... and fresh again exactly at T0 + 259_200 (at - offered >= cooldown).
        (OFFERED_AT_T0, [A], T0 + COOLDOWN, ([A], None)),
        # Some in cooldown: only the fresh ones are kept, in their order.
        (OFFERED_AT_T0, [A, B], T0 + HOUR, ([B], None)),
        (OFFERED_AT_T0, [B, A], T0 + HOUR, ([B], None)),
        # All in cooldown (a and plan pro): nothing is sent.
        (OFFERED_AT_T0, [A, PRO], T0 + HOUR, ([], "no_fresh_offer")),
        # The plan's cooldown does not cover a SKU called "pro" (plan:pro != sku:pro).
        (OFFERED_AT_T0, [PRO, PRO_SKU], T0 + HOUR, ([PRO_SKU], None)),
        (OFFERED_AT_T0, [PRO], T0 + COOLDOWN, ([PRO], None)),
    ],
)
def test_restrain_cooldown(
    state: ContactState | None,
    offers: list[dict[str, Any]],
    at: float,
    expected: tuple[list[dict[str, Any]], str | None],
) -> None:
    """restrain drops offers made less than offer_cooldown_hours ago; none left: no_fresh_offer."""
    assert restrain(state, offers, at, RULES) == expected


CAPPED = ContactState(day=DAY, sent_on_day=3, offered={"sku:a": T0})


@pytest.mark.parametrize(
    ("state", "offers", "at", "expected"),
    [
        # 3 sent today (cap 3): the 4th is suppressed, later the same UTC day too ...
        (CAPPED, [B], T0 + HOUR, ([B], "daily_cap")),
        (CAPPED, [B], MIDNIGHT - 0.001, ([B], "daily_cap")),  # 23:59:59.999 of day 20_780
        # ... even one without offers.
        (CAPPED, [], T0 + HOUR, ([], "daily_cap")),
        # The next UTC day (20_781) starts a new count.
        (CAPPED, [B], MIDNIGHT, ([B], None)),
        # 2 sent today: the 3rd may go.
        (ContactState(day=DAY, sent_on_day=2), [B], T0 + HOUR, ([B], None)),
        # 3 sent yesterday (day 20_779) do not count today.
        (ContactState(day=DAY - 1, sent_on_day=3), [B], T0, ([B], None)),
        # A cap of 3 with all offers cooling: no_fresh_offer is checked first.
        (CAPPED, [A], T0 + HOUR, ([], "no_fresh_offer")),
    ],
)
def test_restrain_daily_cap(
    state: ContactState,
    offers: list[dict[str, Any]],
    at: float,
    expected: tuple[list[dict[str, Any]], str | None],
) -> None:
    """restrain suppresses a trigger once daily_cap were sent on the same UTC day."""
    assert restrain(state, offers, at, RULES) == expected


def test_record_trigger_on_no_state() -> None:
    """The first trigger counts 1 for its UTC day, starts each offer's cooldown, exposes SKUs."""
    assert record_trigger(None, [A, PRO], T0, RULES) == ContactState(
        day=DAY,
        sent_on_day=1,
        offered={"sku:a": T0, "plan:pro": T0},
        exposed={"a": (T0,)},  # a plan is offered, not a SKU shown
    )


@pytest.mark.parametrize(
    ("state", "at", "expected_day", "expected_sent"),
    [
        (ContactState(day=DAY, sent_on_day=1), T0 + HOUR, DAY, 2),  # same day: 1 + 1
        (ContactState(day=DAY, sent_on_day=2), MIDNIGHT - 1, DAY, 3),  # 23:59:59: 2 + 1
        (ContactState(day=DAY, sent_on_day=3), MIDNIGHT, DAY + 1, 1),  # rollover: a new count
        (ContactState(day=DAY - 5, sent_on_day=2), T0, DAY, 1),  # days later: a new count
        (ContactState(), T0, DAY, 1),  # day -1: never sent
        # Dated on an earlier day (a renewal window fired at its opening time) than the
        # day being counted: that day's count (3 on day 20_781) is left alone.
        (ContactState(day=DAY + 1, sent_on_day=3), T0, DAY + 1, 3),
    ],
)
def test_record_trigger_counts_per_utc_day(
    state: ContactState, at: float, expected_day: int, expected_sent: int
) -> None:
    """sent_on_day counts the triggers of the UTC day of `at`; a new day starts at 1."""
    recorded = record_trigger(state, [B], at, RULES)
    assert (recorded.day, recorded.sent_on_day) == (expected_day, expected_sent)


def test_an_earlier_day_trigger_does_not_lift_the_cap() -> None:
    """A capped day stays capped after a trigger dated on the day before is recorded."""
    capped = ContactState(day=DAY + 1, sent_on_day=3)  # 3 sent on 2026-11-24 (cap 3)
    assert restrain(capped, [B], T0, RULES) == ([B], None)  # 2026-11-23 is not counted
    late = record_trigger(capped, [B], T0, RULES)
    assert restrain(late, [A], MIDNIGHT + HOUR, RULES) == ([A], "daily_cap")  # 2026-11-24


def test_record_trigger_keeps_the_latest_offer_time() -> None:
    """offered keeps the later time per offer: an older trigger never rewinds a cooldown."""
    state = ContactState(day=DAY, sent_on_day=1, offered={"sku:a": T0 + 100, "sku:b": T0})
    older = record_trigger(state, [A], T0 + 50, RULES)  # 50 < 100: a stays at T0 + 100
    assert older.offered == {"sku:a": T0 + 100, "sku:b": T0}
    newer = record_trigger(state, [A, B], T0 + 200, RULES)  # both move to T0 + 200
    assert newer.offered == {"sku:a": T0 + 200, "sku:b": T0 + 200}


def test_record_trigger_adds_exposure_times() -> None:
    """Each offered SKU gets the trigger's time among its exposure times, ascending."""
    state = ContactState(day=DAY, sent_on_day=1, exposed={"a": (T0 + 100,)})
    older = record_trigger(state, [A], T0 + 50, RULES)  # sorts before T0 + 100
    assert older.exposed == {"a": (T0 + 50, T0 + 100)}
    newer = record_trigger(state, [A, B], T0 + 200, RULES)
    assert newer.exposed == {"a": (T0 + 100, T0 + 200), "b": (T0 + 200,)}
    same = record_trigger(state, [A], T0 + 100, RULES)  # a time already there is kept once
    assert same.exposed == {"a": (T0 + 100,)}


def test_record_trigger_without_offers_only_counts() -> None:
    """A trigger without offers counts for the day and leaves offered and exposed alone."""
    state = ContactState(day=DAY, sent_on_day=1, offered={"sku:a": T0}, exposed={"a": (T0,)})
    assert record_trigger(state, [], T0 + HOUR, RULES) == ContactState(
        day=DAY, sent_on_day=2, offered={"sku:a": T0}, exposed={"a": (T0,)}
    )


def test_record_trigger_leaves_the_given_state_alone() -> None:
    """record_trigger returns a new state; the old one's dicts are not changed."""
    state = ContactState(day=DAY, sent_on_day=1, offered={"sku:a": T0}, exposed={"a": (T0,)})
    record_trigger(state, [A, B], T0 + HOUR, RULES)
    assert state == ContactState(
        day=DAY, sent_on_day=1, offered={"sku:a": T0}, exposed={"a": (T0,)}
    )


def many_offered() -> dict[str, float]:
    """200 offers `sku:s0..sku:s199`, offer i at T0 + i (so s0 is the oldest)."""
    return {f"sku:s{i}": T0 + i for i in range(200)}


def many_exposed() -> dict[str, tuple[float, ...]]:
    """200 SKUs `s0..s199`, SKU i shown once at T0 + i (so s0 is the oldest)."""
    return {f"s{i}": (T0 + i,) for i in range(200)}


def record_trigger_once(offers: list[dict[str, Any]], at: float) -> ContactState:
    """A trigger sent at `at` on top of 200 remembered offers and exposures."""
    state = ContactState(day=DAY, offered=many_offered(), exposed=many_exposed())
    return record_trigger(state, offers, at, RULES)


def test_record_trigger_remembers_the_most_recent() -> None:
    """At MAX_REMEMBERED (200) keys, a newer offer pushes out the oldest one."""
    assert MAX_REMEMBERED == 200
    recorded = record_trigger_once([{"sku": "new"}], T0 + 1_000)
    # 201 keys -> 200: s0 (T0 + 0) is the oldest and goes; s1 .. s199 and new stay.
    assert len(recorded.offered) == len(recorded.exposed) == 200
    assert "sku:s0" not in recorded.offered
    assert "s0" not in recorded.exposed
    assert recorded.offered["sku:new"] == T0 + 1_000
    assert recorded.exposed["new"] == (T0 + 1_000,)
    assert (recorded.offered["sku:s1"], recorded.exposed["s1"]) == (T0 + 1, (T0 + 1,))


def test_record_trigger_forgets_an_offer_older_than_all_remembered() -> None:
    """An offer older than the 200 remembered ones is itself the one not kept."""
    recorded = record_trigger_once([{"sku": "old"}], T0 - 1)  # T0 - 1 < T0 + 0
    assert recorded.offered == many_offered()
    assert recorded.exposed == many_exposed()


def test_record_exposure() -> None:
    """record_exposure adds each shown SKU's time (ascending, once each); counts nothing."""
    state = record_exposure(None, ["a", "b"], T0, RULES)
    assert state == ContactState(exposed={"a": (T0,), "b": (T0,)})
    again = record_exposure(state, ["b", "c"], T0 + HOUR, RULES)  # b shown again, c is new
    assert again == ContactState(exposed={"a": (T0,), "b": (T0, T0 + HOUR), "c": (T0 + HOUR,)})
    older = record_exposure(again, ["b"], T0 - HOUR, RULES)  # read late: sorted in first
    assert older.exposed["b"] == (T0 - HOUR, T0, T0 + HOUR)


def test_record_exposure_keeps_offers_and_the_day_count() -> None:
    """record_exposure leaves day, sent_on_day and offered as they were."""
    state = ContactState(day=DAY, sent_on_day=2, offered={"sku:a": T0}, exposed={"a": (T0,)})
    assert record_exposure(state, ["b"], T0 + 1, RULES) == ContactState(
        day=DAY, sent_on_day=2, offered={"sku:a": T0}, exposed={"a": (T0,), "b": (T0 + 1,)}
    )


def test_record_exposure_keeps_the_latest_times_of_a_sku() -> None:
    """A SKU keeps its EXPOSURES_PER_ITEM (8) latest times: the 9th pushes out the oldest."""
    assert EXPOSURES_PER_ITEM == 8
    state = None
    for hour in range(9):  # shown at T0 + 0 h .. T0 + 8 h
        state = record_exposure(state, ["a"], T0 + hour * HOUR, RULES)
    assert state is not None
    assert state.exposed["a"] == tuple(T0 + hour * HOUR for hour in range(1, 9))  # 1 h .. 8 h
    late = record_exposure(state, ["a"], T0, RULES)  # older than all 8 kept: not kept either
    assert late.exposed == state.exposed


def test_record_exposure_remembers_the_most_recent() -> None:
    """record_exposure is bounded by MAX_REMEMBERED SKUs too: the SKU shown longest ago goes."""
    state = record_exposure(ContactState(exposed=many_exposed()), ["new"], T0 + 1_000, RULES)
    assert len(state.exposed) == 200
    assert "s0" not in state.exposed
    assert state.exposed["new"] == (T0 + 1_000,)


def test_record_exposure_ranks_skus_by_their_latest_time() -> None:
    """At the bound, a SKU shown long ago but also recently is kept (its latest time counts)."""
    exposed = many_exposed()
    exposed["s0"] = (T0 - 5, T0 + 500)  # first shown before all others, last after them
    state = record_exposure(ContactState(exposed=exposed), ["new"], T0 + 1_000, RULES)
    # Latest times: s0 T0 + 500, s1 T0 + 1 (now the oldest), ..., new T0 + 1_000.
    assert "s0" in state.exposed
    assert "s1" not in state.exposed


def order(ts: float, *lines: tuple[str, int, str]) -> PurchaseEvent:
    items = tuple(OrderLine(sku, qty, Decimal(price)) for sku, qty, price in lines)
    return PurchaseEvent(
        event_id="p1",
        type="order_completed",
        customer_id="c1",
        ts=ts,
        order_id="o1",
        items=items,
        total=sum((line.amount for line in items), Decimal(0)),
    )


SHOWN_A = ContactState(exposed={"a": (T0,)})


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (T0 + 86_400, Decimal("4.99")),  # a day after it was shown
        (T0, Decimal("4.99")),  # the same instant
        (T0 + WINDOW, Decimal("4.99")),  # exactly 604_800 s later: the window's edge
        (T0 + WINDOW + 1, None),  # 1 s past the window
        (T0 - 1, None),  # shown 1 s after the order: does not count
    ],
)
def test_attribute_window(ts: float, expected: Decimal | None) -> None:
    """A line counts when its SKU was shown in [order ts - attribution_days, order ts]."""
    assert attribute(SHOWN_A, order(ts, ("a", 1, "4.99")), RULES) == expected


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        # Order at T0 + 1 day; the window is [T0 - 6 days, T0 + 1 day].
        ((T0 - 10 * 86_400, T0 + 2 * 86_400), None),  # one too early, one after the order
        ((T0 - 10 * 86_400, T0, T0 + 2 * 86_400), Decimal("4.99")),  # T0 is inside
        ((T0, T0 + 2 * 86_400), Decimal("4.99")),  # a later showing does not hide T0
    ],
)
def test_attribute_any_exposure_time_counts(
    times: tuple[float, ...], expected: Decimal | None
) -> None:
    """One of the SKU's exposure times inside the window is enough."""
    state = ContactState(exposed={"a": times})
    assert attribute(state, order(T0 + 86_400, ("a", 1, "4.99")), RULES) == expected


def test_attribute_does_not_depend_on_reading_order() -> None:
    """An order shown its SKU a day before counts even if a later showing was read first."""
    shown = record_exposure(None, ["a"], T0, RULES)
    shown_again = record_exposure(shown, ["a"], T0 + 2 * 86_400, RULES)  # read before the order
    placed = order(T0 + 86_400, ("a", 1, "4.99"))  # shown 1 day before, within 7
    assert attribute(shown, placed, RULES) == Decimal("4.99")
    assert attribute(shown_again, placed, RULES) == Decimal("4.99")


def test_attribute_sums_the_matching_lines_exactly() -> None:
    """Attributed revenue is the Decimal sum of the matching lines only."""
    state = ContactState(exposed={"a": (T0,), "b": (T0 + HOUR,), "c": (T0 - 8 * 86_400,)})
    placed = order(
        T0 + 2 * HOUR,
        ("a", 2, "4.99"),  # 2 * 4.99 = 9.98
        ("b", 1, "0.10"),  # 0.10
        ("c", 1, "50.00"),  # shown 8 days before: outside the 7-day window
        ("d", 3, "1.00"),  # never shown
        ("b", 2, "0.10"),  # a second b line: 2 * 0.10 = 0.20
    )
    attributed = attribute(state, placed, RULES)
    assert isinstance(attributed, Decimal)
    assert attributed == Decimal("10.28")  # 9.98 + 0.10 + 0.20


def test_attribute_counts_what_a_trigger_offered() -> None:
    """A SKU offered by a sent trigger counts like one shown; a plan offer has no line."""
    state = record_trigger(None, [A, PRO], T0, RULES)
    placed = order(T0 + HOUR, ("a", 1, "4.99"), ("pro", 1, "19.99"))
    assert attribute(state, placed, RULES) == Decimal("4.99")


@pytest.mark.parametrize(
    ("state", "placed"),
    [
        (None, order(T0, ("a", 1, "4.99"))),  # no contacts at all
        (ContactState(), order(T0, ("a", 1, "4.99"))),  # nothing shown
        (SHOWN_A, order(T0 + HOUR, ("b", 1, "4.99"))),  # shown a, bought b
        (ContactState(offered={"sku:a": T0}), order(T0, ("a", 1, "4.99"))),  # offered only
        (SHOWN_A, order(T0 + HOUR)),  # an order without lines
    ],
)
def test_attribute_none_without_a_match(state: ContactState | None, placed: PurchaseEvent) -> None:
    """No state, or no line shown in the window: None (not a conversion)."""
    assert attribute(state, placed, RULES) is None


def test_attribute_window_follows_the_rules() -> None:
    """attribution_days=1: a SKU shown 2 days before the order no longer counts."""
    placed = order(T0 + 2 * 86_400, ("a", 1, "4.99"))
    assert attribute(SHOWN_A, placed, RULES) == Decimal("4.99")  # 2 <= 7 days
    assert attribute(SHOWN_A, placed, ContactRules(attribution_days=1.0)) is None  # 2 > 1


@pytest.mark.parametrize(
    "state",
    [
        ContactState(),
        ContactState(day=DAY, sent_on_day=2, offered={"sku:a": T0, "plan:pro": T0 + 0.5}),
        record_trigger(record_exposure(None, ["b", "c"], T0, RULES), [A, PRO], T0 + HOUR, RULES),
        ContactState(exposed={"a": (T0, T0 + 0.5, T0 + HOUR)}),
    ],
)
def test_json_round_trip(state: ContactState) -> None:
    """ContactState.from_json(to_json()) gives back the same state."""
    assert ContactState.from_json(state.to_json()) == state


def test_to_json_fields() -> None:
    """to_json writes each distinct time once, and the offers and exposures as its index."""
    state = ContactState(
        day=DAY, sent_on_day=1, offered={"sku:a": T0 + 1}, exposed={"a": (T0, T0 + 1), "b": (T0,)}
    )
    assert orjson.loads(orjson.dumps(state.to_json())) == {  # as it travels
        "day": 20_780,
        "sent_on_day": 1,
        "times": [T0 + 1, T0],
        "offered": {"sku:a": 0},
        "exposed": {"a": [1, 0], "b": [1]},
    }


def test_from_json_reads_the_times_themselves() -> None:
    """A state written before `times` (each offer and exposure its own time) reads the same."""
    data = {"day": DAY, "sent_on_day": 1, "offered": {"sku:a": T0}, "exposed": {"a": [T0, T0 + 1]}}
    assert ContactState.from_json(data) == ContactState(
        day=DAY, sent_on_day=1, offered={"sku:a": T0}, exposed={"a": (T0, T0 + 1)}
    )


def test_from_json_reads_a_single_exposure_time() -> None:
    """A state written with one time per SKU (before the lists) reads as a 1-tuple."""
    data = {"day": DAY, "sent_on_day": 1, "offered": {"sku:a": T0}, "exposed": {"a": T0}}
    assert ContactState.from_json(data) == ContactState(
        day=DAY, sent_on_day=1, offered={"sku:a": T0}, exposed={"a": (T0,)}
    )


@given(
    st.lists(
        st.tuples(
            st.lists(st.sampled_from("abcd"), min_size=1, max_size=3),
            st.integers(0, 40).map(float),
        ),
        max_size=40,
    )
)
def test_exposures_keep_the_latest_distinct_times_in_order(
    shown: list[tuple[list[str], float]],
) -> None:
    """Whatever order exposures come in: each item keeps its latest distinct times, ascending."""
    state = None
    seen: dict[str, set[float]] = {}
    for skus, at in shown:
        state = record_exposure(state, skus, at, RULES)
        for sku in skus:
            seen.setdefault(sku, set()).add(at)
    exposed = state.exposed if state is not None else {}
    assert exposed == {
        sku: tuple(sorted(times)[-EXPOSURES_PER_ITEM:]) for sku, times in seen.items()
    }


def test_writes_forget_what_can_no_longer_matter() -> None:
    """Forgotten: offers older than the cooldown and LATE_DAYS, exposures than the window and it."""
    day = 86_400.0
    assert LATE_DAYS == 28.0
    assert forget_before(T0, RULES) == (T0 - COOLDOWN - 28 * day, T0 - WINDOW - 28 * day)
    state = ContactState(
        day=DAY - 40,
        sent_on_day=1,
        offered={"sku:a": T0 - 31.5 * day, "sku:b": T0 - 30 * day, "plan:pro": T0 - 31 * day},
        exposed={"a": (T0 - 40 * day, T0 - 35 * day, T0 - 34 * day), "b": (T0 - 50 * day,)},
    )
    kept_offers = {"sku:b": T0 - 30 * day, "plan:pro": T0 - 31 * day}  # 31 days: just kept
    kept_exposures = {"a": (T0 - 35 * day, T0 - 34 * day)}  # 35 days: just kept
    assert record_exposure(state, ["c"], T0, RULES) == ContactState(
        day=DAY - 40,
        sent_on_day=1,
        offered=kept_offers,
        exposed={**kept_exposures, "c": (T0,)},
    )
    assert record_trigger(state, [A], T0, RULES) == ContactState(
        day=DAY,
        sent_on_day=1,
        offered={**kept_offers, "sku:a": T0},
        exposed={**kept_exposures, "a": (T0 - 35 * day, T0 - 34 * day, T0)},
    )
    # longer windows keep more
    longer = ContactRules(offer_cooldown_hours=24 * 10, attribution_days=30)
    assert record_exposure(state, [], T0, longer).exposed == state.exposed
    assert record_exposure(state, [], T0, longer).offered == state.offered


@given(
    writes=st.lists(
        st.tuples(
            st.booleans(),  # a trigger (offers), or an exposure
            st.lists(st.sampled_from("abcd"), max_size=3),
            st.integers(0, 60).map(float),  # days after T0, in any order
        ),
        max_size=30,
    ),
    behind=st.just(LATE_DAYS) | st.floats(0.0, LATE_DAYS),  # the edge most of all
    order_skus=st.lists(st.sampled_from("abcde"), min_size=1, max_size=3, unique=True),
)
def test_a_topic_read_up_to_late_days_behind_finds_all_it_needs(
    writes: list[tuple[bool, list[str], float]], behind: float, order_skus: list[str]
) -> None:
    """Read up to LATE_DAYS behind the latest write, restraint and attribution are as if
    nothing had been forgotten (the same writes with nothing forgotten: LATE_DAYS huge)."""
    day = 86_400.0

    def replay() -> ContactState | None:
        state = None
        for trigger, skus, days in writes:
            at = T0 + days * day
            if trigger:
                state = record_trigger(state, [{"sku": sku} for sku in skus], at, RULES)
            else:
                state = record_exposure(state, skus, at, RULES)
        return state

    forgetting = replay()
    with mock.patch.object(contacts, "LATE_DAYS", 1e6):
        remembering = replay()
    latest = max((T0 + days * day for *_, days in writes), default=T0)
    at = latest - behind * day
    purchase = order(at, *((sku, 1, "5.00") for sku in order_skus))
    assert attribute(forgetting, purchase, RULES) == attribute(remembering, purchase, RULES)
    offers = [{"sku": sku} for sku in order_skus]
    assert restrain(forgetting, offers, at, RULES) == restrain(remembering, offers, at, RULES)


TIMES = st.floats(min_value=1.0, max_value=4e9, allow_nan=False)


@given(
    offered=st.dictionaries(st.text(max_size=4).map(lambda s: f"sku:{s}"), TIMES, max_size=6),
    exposed=st.dictionaries(
        st.text(max_size=4), st.lists(TIMES, min_size=1, max_size=8, unique=True).map(sorted)
    ),
)
def test_record_round_trip(offered: dict[str, float], exposed: dict[str, list[float]]) -> None:
    """Through its changelog record (orjson), a state comes back equal, every time exact."""
    state = ContactState(
        day=DAY, sent_on_day=2, offered=offered, exposed={k: tuple(v) for k, v in exposed.items()}
    )
    assert ContactState.from_json(orjson.loads(orjson.dumps(state.to_json()))) == state


def test_each_utc_day_has_its_own_cap() -> None:
    """Triggers dated on an earlier day than the latest counted (a renewal window fired at its
    opening time, a topic read behind) count toward their own day: its cap holds too."""
    state = None
    for n in range(3):  # 3 on 2026-11-23 (cap 3) ...
        state = record_trigger(state, [], T0 + n, RULES)
    state = record_trigger(state, [], MIDNIGHT + HOUR, RULES)  # ... then one on the 24th
    assert (state.day, state.sent_on_day, state.earlier) == (DAY + 1, 1, {DAY: 3})
    assert restrain(state, [], T0 + HOUR, RULES) == ([], "daily_cap")  # the 23rd is full
    assert restrain(state, [], MIDNIGHT + 2 * HOUR, RULES) == ([], None)  # the 24th is not
    # A day before any counted: room, and it is counted.
    day_before = record_trigger(state, [], T0 - 86_400.0, RULES)
    assert day_before.earlier == {DAY: 3, DAY - 1: 1}
    assert restrain(day_before, [], T0 - 86_400.0, RULES) == ([], None)


def test_earlier_days_are_kept_earlier_days_back() -> None:
    """Counts of days more than EARLIER_DAYS before the latest are dropped, and so is a trigger
    dated that far back (its day's cap can no longer be told)."""
    state = record_trigger(None, [], T0, RULES)
    later = record_trigger(state, [], T0 + EARLIER_DAYS * 86_400.0, RULES)
    assert later.earlier == {DAY: 1}
    much_later = record_trigger(later, [], T0 + (EARLIER_DAYS + 1) * 86_400.0, RULES)
    assert much_later.earlier == {DAY + EARLIER_DAYS: 1}
    too_late = record_trigger(much_later, [], T0 - 86_400.0, RULES)
    assert too_late.earlier == much_later.earlier


def test_a_trigger_recorded_again_is_not_counted_twice() -> None:
    """A trigger whose input is read again (a crash before the commit) has the same id: it
    may go again, with the offers it went with, even at the cap, and counts once."""
    first = record_trigger(None, [A], T0, RULES, trigger=101)
    again = record_trigger(first, [A], T0, RULES, trigger=101)
    assert (again.sent_on_day, again.recent) == (1, (101,))
    assert restrain(first, [A], T0, RULES, trigger=101) == ([A], None)  # A in its cooldown
    assert restrain(first, [A], T0, RULES, trigger=102) == ([], "no_fresh_offer")
    capped = record_trigger(record_trigger(first, [], T0, RULES, 102), [], T0, RULES, 103)
    assert restrain(capped, [], T0 + HOUR, RULES, trigger=103) == ([], None)
    assert restrain(capped, [], T0 + HOUR, RULES, trigger=104) == ([], "daily_cap")


def test_a_trigger_read_again_holds_back_what_it_held_back() -> None:
    """B was in its cooldown when the trigger went with A alone: read again, the trigger goes
    with A alone too (it went with both, under the same id, and B's cooldown restarted)."""
    cooling = record_trigger(None, [B], T0 - HOUR, RULES, trigger=100)
    fresh, reason = restrain(cooling, [A, B], T0, RULES, trigger=101)
    assert (fresh, reason) == ([A], None)
    first = record_trigger(cooling, fresh, T0, RULES, trigger=101)
    assert restrain(first, [A, B], T0, RULES, trigger=101) == ([A], None)
    assert first.offered["sku:b"] == T0 - HOUR


def test_only_the_latest_triggers_are_recognised() -> None:
    """RECENT_TRIGGERS fingerprints are kept, oldest first: what a crash can read again."""
    state = None
    for trigger in range(RECENT_TRIGGERS + 2):
        state = record_trigger(state, [], T0 + trigger * 86_400.0, RULES, trigger)
    assert state is not None
    assert state.recent == tuple(range(2, RECENT_TRIGGERS + 2))


def test_day_counts_and_recent_triggers_survive_the_record() -> None:
    """`earlier` and `recent` go through to_json/from_json; a record without them reads as none."""
    state = ContactState(day=DAY, sent_on_day=2, earlier={DAY - 1: 3}, recent=(7, 8))
    assert ContactState.from_json(orjson.loads(orjson.dumps(state.to_json()))) == state
    plain = ContactState(day=DAY, sent_on_day=1)
    assert "earlier" not in plain.to_json()
    assert ContactState.from_json(orjson.loads(orjson.dumps(plain.to_json()))) == plain


def test_a_trigger_print_is_24_bits_of_the_fingerprint_of_its_ids_source() -> None:
    """The same kind and source, the same print; another kind of the same source, another."""
    assert trigger_print("post_purchase", "e1") == fingerprint("post_purchase:e1") & 0xFFFFFF
    assert 0 <= trigger_print("post_purchase", "e1") < 2**24
    assert trigger_print("post_purchase", "e1") != trigger_print("cart_add", "e1")
