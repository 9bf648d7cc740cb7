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
from stream.domain.subscriptions import SubscriptionState
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
    offers: list[dict[str, Any]],
    customer: dict[str, Any],
    variant: str,
    emitted_at: str,
) -> dict[str, Any]:
    """`cart_add`: an item went into the cart; offers are what goes with the cart.

    `offers` are as `cross_sell_offers` writes them, and already restrained:
    the worker builds a cart_add trigger only once it knows it goes, since
    many are held back and `customer` (`customer_summary(...)` of the
    customer at this moment) costs a scoring.
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
        "offers": offers,
    }


def post_purchase_trigger(
    event: PurchaseEvent,
    offers: list[dict[str, Any]],
    customer: dict[str, Any],
    variant: str,
    emitted_at: str,
) -> dict[str, Any]:
    """`post_purchase`: an order was completed; offers complement what was bought.

    `offers` are as `cross_sell_offers` writes them; `customer` is
    `customer_summary(...)` of the customer after the order.
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
        "offers": offers,
    }


def renewal_offers(
    plan_id: str | None, upsell_plan: str | None, addons: list[SuggestedItem]
) -> list[dict[str, Any]]:
    """A renewal's offers: the next plan of the ladder (upsell), then the add-ons (cross-sell).

    `plan_id` is the subscription's plan, `upsell_plan` the next one (None at
    the top of the ladder), `addons` what customers like this one bought
    together.
    """
    offers: list[dict[str, Any]] = []
    if upsell_plan is not None:
        offers.append(
            {
                "type": "upsell",
                "plan_id": upsell_plan,
                "score": 1.0,
                "reason": f"next plan after {plan_id}",
            }
        )
    offers.extend(cross_sell_offers(addons))
    return offers


def renewal_cycle(subscription_id: str, subscription: SubscriptionState, window_days: int) -> str:
    """What a renewal trigger's id is made from: the subscription, its cycle and the window."""
    assert subscription.renews_at is not None  # due_window fires only with a renewal date
    return f"{subscription_id}:{subscription.renews_at}:{window_days}"


def renewal_trigger(
    subscription_id: str,
    subscription: SubscriptionState,
    window_days: int,
    now: float,
    offers: list[dict[str, Any]],
    customer: dict[str, Any],
    variant: str,
    emitted_at: str,
) -> dict[str, Any]:
    """`renewal_approaching`: the subscription renews within `window_days` (fired at `now`).

    `offers` are as `renewal_offers` writes them. The id is stable per
    subscription, cycle (renews_at) and window, so a redelivered tick repeats
    it.
    """
    cycle = renewal_cycle(subscription_id, subscription, window_days)
    assert subscription.renews_at is not None  # as renewal_cycle checks
    return {
        "trigger_id": output_id("renewal_approaching", cycle),
        "kind": "renewal_approaching",
        "customer_id": subscription.customer_id,
        "variant": variant,
        "event_ts": format_ts(now),
        "emitted_at": emitted_at,
        "subscription_id": subscription_id,
        "plan_id": subscription.plan_id,
        "renews_at": format_ts(subscription.renews_at),
        "window_days": window_days,
        "customer": customer,
        "offers": offers,
    }
