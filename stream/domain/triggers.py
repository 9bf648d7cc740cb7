"""Marketing-automation triggers: what to offer whom, at which moment.

Triggers answer the moments of DESIGN.md: `cart_add` (an item was added to
the cart) and `post_purchase` (an order was completed); each carries the
customer's key value figures and ranked offers. Control customers of the
A/B holdout get none: the caller checks the variant.
"""

from __future__ import annotations

from typing import Any

from stream.domain.clv import Scores
from stream.domain.events import CartEvent, PurchaseEvent, format_ts
from stream.domain.ltv import CustomerState
from stream.domain.suggestions import SuggestedItem, output_id


def customer_summary(
    state: CustomerState | None, scores: Scores | None = None, rank: str | None = None
) -> dict[str, Any]:
    """The key value figures a trigger carries about its customer (as on customer-ltv)."""
    if state is None:
        return {"ltv": 0.0, "rank": None, "p_alive": None, "orders": 0, "revenue": 0.0}
    predicted = scores.predicted_clv if scores is not None else 0.0
    return {
        "ltv": float(state.revenue) + predicted,
        "rank": rank,
        "p_alive": scores.p_alive if scores is not None else None,
        "orders": state.orders,
        "revenue": float(state.revenue),
    }


def cross_sell_offers(items: list[SuggestedItem]) -> list[dict[str, Any]]:
    """Suggested items as trigger offers, each with a reason a marketer can read."""
    return [
        {
            "type": "cross_sell",
            "sku": item.sku,
            "score": round(item.score, 6),
            "reason": (
                f"bought with {item.because} in {item.confidence:.0%} of its baskets"
                if item.because is not None
                else "popular"
            ),
        }
        for item in items
    ]


def cart_add_trigger(
    event: CartEvent,
    cart_id: str | None,
    items: list[SuggestedItem],
    customer: dict[str, Any],
    variant: str,
    emitted_at: str,
) -> dict[str, Any]:
    """`cart_add`: an item went into the cart; offers are what goes with the cart.

    `customer` is `customer_summary(...)` of the customer at this moment.
    """
    return {
        "trigger_id": output_id("cart_add", event.event_id),
        "kind": "cart_add",
        "customer_id": event.customer_id,
        "variant": variant,
        "event_ts": format_ts(event.ts),
        "emitted_at": emitted_at,
        "cart_id": cart_id,
        "sku": event.sku,
        "customer": customer,
        "offers": cross_sell_offers(items),
    }


def post_purchase_trigger(
    event: PurchaseEvent,
    items: list[SuggestedItem],
    customer: dict[str, Any],
    variant: str,
    emitted_at: str,
) -> dict[str, Any]:
    """`post_purchase`: an order was completed; offers complement what was bought.

    `customer` is `customer_summary(...)` of the customer after the order.
    """
    return {
        "trigger_id": output_id("post_purchase", event.event_id),
        "kind": "post_purchase",
        "customer_id": event.customer_id,
        "variant": variant,
        "event_ts": format_ts(event.ts),
        "emitted_at": emitted_at,
        "order_id": event.order_id,
        "customer": customer,
        "offers": cross_sell_offers(items),
    }
