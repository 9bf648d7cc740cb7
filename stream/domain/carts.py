"""A customer's open cart, from `cart-events`."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Final

from stream.domain.events import CartEvent, fingerprint, remembered

MAX_CART_ITEMS: Final = 200
MAX_REMEMBERED_EVENTS: Final = 32

Position = tuple[int, int]


@dataclass(frozen=True, slots=True)
class CartState:
    """SKU -> quantity in the open cart, the storefront's cart id, recent event ids.

    `seen` holds the `fingerprint`s of the last MAX_REMEMBERED_EVENTS event
    ids applied, oldest first; `furthest` maps each partition the cart's
    events came from (one, unless the topic's partitions changed) to the
    offset of the furthest record applied from it. An event whose id is seen
    is not applied again; it is a redelivered record (`redelivered`) when
    its record is at or before the furthest of its partition (a partition's
    records come in order), and otherwise a duplicate sent in another record.
    """

    cart_id: str | None = None
    items: dict[str, int] = field(default_factory=dict)
    last_ts: float = 0.0
    seen: tuple[int, ...] = ()
    furthest: dict[int, int] = field(default_factory=dict)
    # Suggested items shown to this customer: sku -> (times, window start).
    shown: dict[str, tuple[int, float]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The fields for orjson, which writes the tuples as arrays.

        The state's own mappings, not copies (a state is never changed; copying
        them was most of the cost of writing a cart, which every add does),
        but for `furthest`, whose keys JSON writes as text.
        """
        return {
            "cart_id": self.cart_id,
            "items": self.items,
            "last_ts": self.last_ts,
            "seen": self.seen,
            "furthest": {str(partition): offset for partition, offset in self.furthest.items()},
            "shown": self.shown,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CartState:
        """Also reads the records written before fingerprints: `seen` an id -> position map."""
        seen, furthest = data["seen"], data.get("furthest", {})
        if isinstance(seen, dict):
            furthest = {}
            for partition, offset in seen.values():
                furthest[partition] = max(offset, furthest.get(partition, offset))
        return cls(
            cart_id=data["cart_id"],
            items={str(k): int(v) for k, v in data["items"].items()},
            last_ts=float(data["last_ts"]),
            seen=tuple(remembered(held) for held in seen),
            furthest={int(partition): int(offset) for partition, offset in furthest.items()},
            shown={
                sku: (int(entry[0]), float(entry[1]))
                for sku, entry in data.get("shown", {}).items()
            },
        )

    def redelivered(self, position: Position) -> bool:
        """Whether the record at `position` is at or before the furthest of its partition."""
        furthest = self.furthest.get(position[0])
        return furthest is not None and position[1] <= furthest


def apply_cart_event(
    state: CartState | None, event: CartEvent, position: Position = (-1, -1)
) -> tuple[CartState, bool]:
    """The cart after `event` and whether it was applied (False: event id seen before).

    `position` is the (partition, offset) of the event's record. Adds and
    removals change quantities; `cart_cleared` empties the cart; a new
    `cart_id` starts a new cart. A cart holds at most MAX_CART_ITEMS distinct
    SKUs; adds beyond that leave the cart as it is.
    """
    current = state if state is not None else CartState()
    event_print = fingerprint(event.event_id)
    if event_print in current.seen:
        return current, False
    seen = (*current.seen, event_print)[-MAX_REMEMBERED_EVENTS:]
    # A record at or before the furthest is one read again whose id was
    # forgotten (more than MAX_REMEMBERED_EVENTS ago): the furthest stays.
    furthest = current.furthest
    if not current.redelivered(position):
        furthest = {**furthest, position[0]: position[1]}
    if event.cart_id is not None and event.cart_id != current.cart_id:
        current = CartState(cart_id=event.cart_id, shown=current.shown)
    if event.type == "cart_cleared":
        return (
            CartState(
                cart_id=current.cart_id,
                last_ts=max(current.last_ts, event.ts),
                seen=seen,
                furthest=furthest,
                shown=current.shown,
            ),
            True,
        )
    assert event.sku is not None  # the codec requires a sku for adds and removals
    items = dict(current.items)
    if event.type == "item_added":
        if event.sku in items or len(items) < MAX_CART_ITEMS:
            items[event.sku] = items.get(event.sku, 0) + event.quantity
    else:
        left = items.get(event.sku, 0) - event.quantity
        if left > 0:
            items[event.sku] = left
        else:
            items.pop(event.sku, None)
    last_ts = max(current.last_ts, event.ts)
    return replace(current, items=items, last_ts=last_ts, seen=seen, furthest=furthest), True
