"""A built-in demo feed: a small electronics-and-coffee shop with subscribers.

Customers shop for a need (a camera kit, a laptop setup, a coffee corner,
...): a core item and some of its accessories, now and then something from
another need. The feed first replays some history of orders, then mixes
live cart sessions (items added one by one, most sessions ending in an
order) with subscription events. Deterministic for a given seed; event time
advances a few minutes per event from `start`.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from stream.domain.cooccurrence import basket_items
from stream.domain.events import format_ts, parse_ts

# need -> (core items, accessories), each (sku, unit price, category)
CATALOG: dict[str, tuple[list[tuple[str, float, str]], list[tuple[str, float, str]]]] = {
    "camera": (
        [("camera-x100", 899.0, "cameras"), ("camera-m50", 649.0, "cameras")],
        [
            ("sd-card-128gb", 29.99, "storage"),
            ("tripod-travel", 79.0, "camera-accessories"),
            ("camera-bag", 49.5, "camera-accessories"),
            ("spare-battery", 39.0, "power"),
        ],
    ),
    "laptop": (
        [("laptop-14", 1299.0, "computers"), ("laptop-16", 1899.0, "computers")],
        [
            ("usb-c-hub", 59.0, "computers"),
            ("wireless-mouse", 34.99, "computers"),
            ("laptop-sleeve", 29.0, "bags"),
            ("usb-c-charger", 45.0, "power"),
        ],
    ),
    "coffee": (
        [("espresso-machine", 449.0, "kitchen"), ("grinder-burr", 189.0, "kitchen")],
        [
            ("coffee-beans-1kg", 24.5, "grocery"),
            ("milk-frother", 69.0, "kitchen"),
            ("descaler", 12.99, "kitchen"),
            ("tamper", 19.0, "kitchen"),
        ],
    ),
    "audio": (
        [("headphones-anc", 329.0, "audio"), ("speaker-portable", 149.0, "audio")],
        [
            ("headphone-case", 24.0, "audio"),
            ("aux-cable", 9.99, "audio"),
            ("usb-c-charger", 45.0, "power"),
        ],
    ),
    "gaming": (
        [("console-s", 499.0, "gaming"), ("gaming-monitor", 379.0, "gaming")],
        [
            ("controller", 69.0, "gaming"),
            ("headset-gaming", 89.0, "gaming"),
            ("hdmi-cable", 14.99, "gaming"),
        ],
    ),
}

PLANS = [("basic", 9.99), ("plus", 19.99), ("premium", 34.99)]


@dataclass(frozen=True, slots=True)
class DemoEvent:
    """One event of the feed: which input (cart, purchase, subscription) and its JSON."""

    topic: str
    key: str
    value: dict[str, Any]


class DemoFeed:
    """Generates the demo's events in event-time order.

    Event, order and cart ids are serial numbers (`evt-000042`), or with
    `random_ids` random UUIDs, as many shops' are: the same events otherwise
    (the ids come from a generator of their own).
    """

    def __init__(
        self,
        seed: int = 7,
        customers: int = 120,
        start: str = "2026-11-01T08:00:00Z",
        random_ids: bool = False,
    ) -> None:
        self.rng = random.Random(seed)
        self.customers = [f"cust-{i:04d}" for i in range(customers)]
        self.now = parse_ts(start)
        self._serial = 0
        self._ids = random.Random(seed) if random_ids else None

    def _next_id(self, prefix: str) -> str:
        self._serial += 1
        if self._ids is not None:
            return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))
        return f"{prefix}-{self._serial:06d}"

    def _tick(self) -> str:
        self.now += self.rng.uniform(30, 300)
        return format_ts(self.now)

    def _basket(self) -> list[tuple[str, float, str]]:
        need = self.rng.choice(list(CATALOG))
        cores, accessories = CATALOG[need]
        basket = [self.rng.choice(cores)]
        basket += self.rng.sample(accessories, self.rng.randint(1, min(3, len(accessories))))
        if self.rng.random() < 0.15:  # something from another need
            other = self.rng.choice(list(CATALOG))
            basket.append(self.rng.choice(CATALOG[other][1]))
        return list({sku: (sku, price, cat) for sku, price, cat in basket}.values())

    def _order(self, customer: str, lines: list[tuple[str, float, str]]) -> DemoEvent:
        return DemoEvent(
            "purchase",
            customer,
            {
                "event_id": self._next_id("evt"),
                "type": "order_completed",
                "customer_id": customer,
                "ts": self._tick(),
                "order_id": self._next_id("order"),
                "currency": "EUR",
                "items": [
                    {"sku": sku, "quantity": 1, "unit_price": price, "category": cat}
                    for sku, price, cat in lines
                ],
            },
        )

    def history(self, orders: int = 300) -> Iterator[DemoEvent]:
        """Past orders that teach the model what goes together."""
        for _ in range(orders):
            yield self._order(self.rng.choice(self.customers), self._basket())

    def subscriptions(self) -> Iterator[DemoEvent]:
        """A third of the customers subscribe to a plan renewing within weeks."""
        for customer in self.customers[::3]:
            plan, price = self.rng.choice(PLANS)
            ts = self._tick()
            yield DemoEvent(
                "subscription",
                customer,
                {
                    "event_id": self._next_id("evt"),
                    "type": "subscription_started",
                    "customer_id": customer,
                    "ts": ts,
                    "subscription_id": f"sub-{customer}",
                    "plan_id": plan,
                    "price": price,
                    "period_days": 30,
                    "renews_at": format_ts(self.now + self.rng.uniform(5, 30) * 86_400),
                },
            )

    def session(self) -> Iterator[DemoEvent]:
        """One shopper adds items one by one; most sessions end in an order."""
        customer = self.rng.choice(self.customers)
        cart_id = self._next_id("cart")
        lines = self._basket()
        for sku, price, category in lines:
            yield DemoEvent(
                "cart",
                customer,
                {
                    "event_id": self._next_id("evt"),
                    "type": "item_added",
                    "customer_id": customer,
                    "ts": self._tick(),
                    "cart_id": cart_id,
                    "sku": sku,
                    "quantity": 1,
                    "unit_price": price,
                    "category": category,
                },
            )
        if self.rng.random() < 0.7:
            yield self._order(customer, lines)

    def live(self) -> Iterator[DemoEvent]:
        """Endless cart sessions."""
        while True:
            yield from self.session()


def basket_of(order: Mapping[str, Any]) -> tuple[str, ...]:
    """The basket of an `order_completed` event (its JSON value): its distinct SKUs, capped,
    as the worker counts it."""
    return basket_items(line["sku"] for line in order["items"])


def basket_rows(events: Iterable[DemoEvent]) -> int:
    """The (basket, item row) pairs the worker's count_pairs agent counts for `events`' orders.

    An order's basket is counted into the row of each of its distinct SKUs.
    """
    return sum(len(basket_of(e.value)) for e in events if e.value["type"] == "order_completed")
