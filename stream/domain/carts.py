"""A customer's open cart, from `cart-events`."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Final

from stream.domain.events import CartEvent

MAX_CART_ITEMS: Final = 200
MAX_REMEMBERED_EVENTS: Final = 32

Position = tuple[int, int]


@dataclass(frozen=True, slots=True)
class CartState:
    """SKU -> quantity in the open cart, the storefront's cart id, recent event ids.

    `seen` maps the last MAX_REMEMBERED_EVENTS event ids to the (partition,
    offset) of the record that applied them: a redelivered record is
    recognised, a duplicate event id in another record is ignored.
    """

    cart_id: str | None = None
    items: dict[str, int] = field(default_factory=dict)
    last_ts: float = 0.0
    seen: dict[str, Position] = field(default_factory=dict)
    # Suggested items shown to this customer: sku -> (times, window start).
    shown: dict[str, tuple[int, float]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The fields for orjson, which writes the tuples as arrays.

        The state's own mappings, not copies (a state is never changed; copying
        them was most of the cost of writing a cart, which every add does).
        """
        return {
            "cart_id": self.cart_id,
            "items": self.items,
            "last_ts": self.last_ts,
            "seen": self.seen,
            "shown": self.shown,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CartState:
        return cls(
            cart_id=data["cart_id"],
            items={str(k): int(v) for k, v in data["items"].items()},
            last_ts=float(data["last_ts"]),
            seen={eid: (int(pos[0]), int(pos[1])) for eid, pos in data["seen"].items()},
            shown={
                sku: (int(entry[0]), float(entry[1]))
                for sku, entry in data.get("shown", {}).items()
            },
        )


def apply_cart_event(
    state: CartState | None, event: CartEvent, position: Position = (-1, -1)
) -> tuple[CartState, bool]:
    """The cart after `event` and whether it was applied (False: event id seen before).

    Adds and removals change quantities; `cart_cleared` empties the cart; a
    new `cart_id` starts a new cart. A cart holds at most MAX_CART_ITEMS
    distinct SKUs; adds beyond that leave the cart as it is.
    """
    current = state if state is not None else CartState()
    if event.event_id in current.seen:
        return current, False
    seen = dict(current.seen)
    seen[event.event_id] = position
    while len(seen) > MAX_REMEMBERED_EVENTS:
        del seen[next(iter(seen))]
    if event.cart_id is not None and event.cart_id != current.cart_id:
        current = CartState(cart_id=event.cart_id, shown=current.shown)
    if event.type == "cart_cleared":
        return (
            CartState(
                cart_id=current.cart_id,
                last_ts=max(current.last_ts, event.ts),
                seen=seen,
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
    return replace(current, items=items, last_ts=max(current.last_ts, event.ts), seen=seen), True
