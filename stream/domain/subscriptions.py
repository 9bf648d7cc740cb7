"""Subscriptions from `subscription-events`: plan, price, renewal date, status, renewal windows.

A subscription's cycle is its current `renews_at`. A `renewal_approaching`
trigger fires once per cycle and window (STREAM_RENEWAL_WINDOWS_DAYS, e.g.
14 and 3 days) when event time passes renews_at minus the window; never for
a cancelled subscription, never for a renewal date that has been replaced
(a renewal or a change of date starts a new cycle); still, once event time
has passed renews_at itself, if it had not fired yet. Each window fires at
its own opening time, and the windows of a cycle that opened before the
event that replaced or cancelled it fire before that event is applied: the
triggers are a function of the events alone, not of how fast they are read.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Final

from stream.domain.events import SECONDS_PER_DAY, SubscriptionEvent, fingerprint, remembered

MAX_REMEMBERED_EVENTS: Final = 16


@dataclass(frozen=True, slots=True)
class SubscriptionState:
    """One subscription as its events describe it."""

    customer_id: str
    plan_id: str | None = None
    price: Decimal | None = None
    period_days: int | None = None
    renews_at: float | None = None
    status: str = "active"
    updated_ts: float = 0.0
    recent_events: tuple[int, ...] = ()  # the latest event ids' fingerprints
    fired: tuple[int, ...] = ()
    partition: int = -1
    cycle_ts: float = 0.0  # event time of the event that set the current renews_at

    def to_json(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "plan_id": self.plan_id,
            "price": None if self.price is None else str(self.price),
            "period_days": self.period_days,
            "renews_at": self.renews_at,
            "status": self.status,
            "updated_ts": self.updated_ts,
            "recent_events": list(self.recent_events),
            "fired": list(self.fired),
            "partition": self.partition,
            "cycle_ts": self.cycle_ts,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SubscriptionState:
        return cls(
            customer_id=data["customer_id"],
            plan_id=data["plan_id"],
            price=None if data["price"] is None else Decimal(data["price"]),
            period_days=data["period_days"],
            renews_at=data["renews_at"],
            status=data["status"],
            updated_ts=data["updated_ts"],
            recent_events=tuple(remembered(held) for held in data["recent_events"]),
            fired=tuple(int(w) for w in data.get("fired", ())),
            partition=int(data.get("partition", -1)),
            cycle_ts=float(data.get("cycle_ts", 0.0)),
        )

    def has_seen(self, event_id: str) -> bool:
        """Whether an event with this id was applied (among the MAX_REMEMBERED_EVENTS latest)."""
        return fingerprint(event_id) in self.recent_events


def apply_subscription_event(
    state: SubscriptionState | None, event: SubscriptionEvent, partition: int = -1
) -> tuple[SubscriptionState, bool]:
    """The subscription after `event`; (state, changed). A seen event id changes nothing.

    Fields an event leaves out keep their value; `subscription_cancelled`
    sets the status to cancelled, any other type to active. An event older
    than the latest applied (`updated_ts`: topics and producers do not keep
    event time in order) only fills what is still unknown: a late change
    neither reopens a cancelled subscription nor brings back a replaced
    renewal date, whose windows would fire again.
    """
    current = state if state is not None else SubscriptionState(customer_id=event.customer_id)
    event_print = fingerprint(event.event_id)
    if event_print in current.recent_events:
        return current, False
    recent_events = (*current.recent_events, event_print)[-MAX_REMEMBERED_EVENTS:]
    if event.ts < current.updated_ts:
        return _filled_in(current, event, recent_events, partition), True
    renews_at = event.renews_at if event.renews_at is not None else current.renews_at
    return (
        replace(
            current,
            plan_id=event.plan_id if event.plan_id is not None else current.plan_id,
            price=event.price if event.price is not None else current.price,
            period_days=(
                event.period_days if event.period_days is not None else current.period_days
            ),
            renews_at=renews_at,
            fired=current.fired if renews_at == current.renews_at else (),
            cycle_ts=current.cycle_ts if renews_at == current.renews_at else event.ts,
            partition=partition if partition >= 0 else current.partition,
            status="cancelled" if event.type == "subscription_cancelled" else "active",
            updated_ts=max(current.updated_ts, event.ts),
            recent_events=recent_events,
        ),
        True,
    )


def _filled_in(
    current: SubscriptionState,
    event: SubscriptionEvent,
    recent_events: tuple[int, ...],
    partition: int,
) -> SubscriptionState:
    """`current` with what a late `event` tells that it does not know yet, and its id."""
    renews_at = current.renews_at if current.renews_at is not None else event.renews_at
    return replace(
        current,
        plan_id=current.plan_id if current.plan_id is not None else event.plan_id,
        price=current.price if current.price is not None else event.price,
        period_days=current.period_days if current.period_days is not None else event.period_days,
        renews_at=renews_at,
        cycle_ts=current.cycle_ts if renews_at == current.renews_at else event.ts,
        partition=partition if partition >= 0 else current.partition,
        recent_events=recent_events,
    )


def next_due(state: SubscriptionState, windows: tuple[int, ...]) -> float | None:
    """When the next unfired window of the current cycle opens (None: nothing left to fire)."""
    if state.status != "active" or state.renews_at is None:
        return None
    left = [w for w in windows if w not in state.fired]
    if not left:
        return None
    return max(state.renews_at - max(left) * SECONDS_PER_DAY, state.cycle_ts)


def due_windows(
    state: SubscriptionState, now: float, windows: tuple[int, ...]
) -> tuple[list[tuple[int, float]], SubscriptionState]:
    """The windows event time `now` has reached, as (window, opening time), widest first,
    and the state with them spent (a window open before the cycle began opens at its start).

    Each fires at its own opening time (renews_at - window), not at `now`, so
    a replay at full speed gives the same triggers as living through it.
    Nothing fires for a cancelled subscription or a cycle that was replaced
    (the caller fires what opened before the event that replaced it).
    """
    if state.status != "active" or state.renews_at is None:
        return [], state
    # A window already open when the cycle began opens at the cycle's start.
    opens = {w: max(state.renews_at - w * SECONDS_PER_DAY, state.cycle_ts) for w in windows}
    opened = sorted(
        ((w, at) for w, at in opens.items() if w not in state.fired and now >= at),
        key=lambda entry: -entry[0],
    )
    if not opened:
        return [], state
    passed = [w for w, _ in opened]
    return opened, replace(state, fired=tuple(sorted({*state.fired, *passed})))


def next_plan(ladder: tuple[str, ...], plan_id: str | None) -> str | None:
    """The plan above `plan_id` on the ladder (None at the top, or off the ladder)."""
    if plan_id not in ladder:
        return None
    position = ladder.index(plan_id)
    return ladder[position + 1] if position + 1 < len(ladder) else None
