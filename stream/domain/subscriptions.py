"""Subscriptions from `subscription-events`: plan, price, renewal date, status."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Final

from stream.domain.events import SubscriptionEvent

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
    recent_events: tuple[str, ...] = ()

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
            recent_events=tuple(data["recent_events"]),
        )


def apply_subscription_event(
    state: SubscriptionState | None, event: SubscriptionEvent
) -> tuple[SubscriptionState, bool]:
    """The subscription after `event`; (state, changed). A seen event id changes nothing.

    Fields an event leaves out keep their value; `subscription_cancelled`
    sets the status to cancelled, any other type to active.
    """
    current = state if state is not None else SubscriptionState(customer_id=event.customer_id)
    if event.event_id in current.recent_events:
        return current, False
    return (
        replace(
            current,
            plan_id=event.plan_id if event.plan_id is not None else current.plan_id,
            price=event.price if event.price is not None else current.price,
            period_days=(
                event.period_days if event.period_days is not None else current.period_days
            ),
            renews_at=event.renews_at if event.renews_at is not None else current.renews_at,
            status="cancelled" if event.type == "subscription_cancelled" else "active",
            updated_ts=max(current.updated_ts, event.ts),
            recent_events=(*current.recent_events, event.event_id)[-MAX_REMEMBERED_EVENTS:],
        ),
        True,
    )
