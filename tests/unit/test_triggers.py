"""stream.domain.triggers: cart_add, post_purchase and renewal triggers, offers, figures."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from stream.domain.clv import Scores
from stream.domain.events import CartEvent, OrderLine, PurchaseEvent
from stream.domain.ltv import CustomerState
from stream.domain.subscriptions import SubscriptionState
from stream.domain.suggestions import SuggestedItem, output_id
from stream.domain.triggers import (
    cart_add_trigger,
    cross_sell_offers,
    customer_summary,
    post_purchase_trigger,
    renewal_offers,
    renewal_trigger,
)

T0 = 1_795_425_300.0  # 2026-11-23T09:15:00Z
EMITTED = "2026-11-23T09:15:02Z"

CO = SuggestedItem("c", 0.7, 10, 0.1, 0.5, 1.25, "a", "co_purchase")
POP = SuggestedItem("f", 0.5, 50, 0.5, 0.0, 0.0, None, "popular")
STATE = CustomerState(orders=3, revenue=Decimal("45.10"))
CO_REASON = "bought with a in 50% of its baskets"  # confidence 0.5


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (None, {"ltv": 0.0, "rank": None, "p_alive": None, "orders": 0, "revenue": 0.0}),
        (
            CustomerState(),
            {"ltv": 0.0, "rank": None, "p_alive": None, "orders": 0, "revenue": 0.0},
        ),
        (STATE, {"ltv": 45.1, "rank": None, "p_alive": None, "orders": 3, "revenue": 45.1}),
        (
            CustomerState(orders=1, revenue=Decimal("0.10")),
            {"ltv": 0.1, "rank": None, "p_alive": None, "orders": 1, "revenue": 0.1},
        ),
    ],
)
def test_customer_summary(state: CustomerState | None, expected: dict[str, Any]) -> None:
    """customer_summary without scores: realized value only, no rank, no p_alive."""
    summary = customer_summary(state)
    assert summary == expected
    assert type(summary["ltv"]) is float
    assert type(summary["revenue"]) is float


def test_customer_summary_with_scores() -> None:
    """With scores and a rank: ltv = revenue + predicted CLV (45.10 + 54.90 = 100.0)."""
    scores = Scores(
        p_alive=0.8, expected_purchases=2.0, expected_average_value=27.45, predicted_clv=54.9
    )
    assert customer_summary(STATE, scores, "A") == {
        "ltv": pytest.approx(100.0),
        "rank": "A",
        "p_alive": 0.8,
        "orders": 3,
        "revenue": 45.1,
    }


SUMMARY = customer_summary(STATE)
NOBODY = customer_summary(None)


def co_purchase(because: str, conf: float) -> SuggestedItem:
    return SuggestedItem("d", 0.1, 1, 0.01, conf, 1.0, because, "co_purchase")


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (CO, "bought with a in 50% of its baskets"),  # confidence 0.5
        (co_purchase("b", 0.25), "bought with b in 25% of its baskets"),
        (co_purchase("b", 1 / 3), "bought with b in 33% of its baskets"),  # 33.3...% -> 33%
        (co_purchase("b", 1.0), "bought with b in 100% of its baskets"),
        (co_purchase("b", 0.0), "bought with b in 0% of its baskets"),
        (POP, "popular"),
    ],
)
def test_cross_sell_offer_reason(item: SuggestedItem, reason: str) -> None:
    """An offer's reason gives the antecedent and its confidence, or 'popular'."""
    (offer,) = cross_sell_offers([item])
    assert offer == {"type": "cross_sell", "sku": item.sku, "score": item.score, "reason": reason}


def test_cross_sell_offers_keep_order_and_round_scores() -> None:
    """Offers follow the items' order; scores are rounded to 6 places (2/3 -> 0.666667)."""
    third = SuggestedItem("x", 2 / 3, 1, 0.01, 0.2, 1.0, "a", "co_purchase")
    offers = cross_sell_offers([POP, third, CO])
    assert [o["sku"] for o in offers] == ["f", "x", "c"]
    assert [o["score"] for o in offers] == [0.5, 0.666667, 0.7]
    assert cross_sell_offers([]) == []


def test_cart_add_trigger() -> None:
    """cart_add: id from the event, RFC 3339 event time, cart and SKU, customer and offers."""
    event = CartEvent("e1", "item_added", "c1", T0, "a", 1, "k1")
    offers = cross_sell_offers([CO, POP])
    trigger = cart_add_trigger(event, "k1", offers, SUMMARY, "treatment", EMITTED)
    assert trigger == {
        "trigger_id": output_id("cart_add", "e1"),
        "kind": "cart_add",
        "customer_id": "c1",
        "variant": "treatment",
        "event_ts": "2026-11-23T09:15:00Z",
        "emitted_at": EMITTED,
        "cart_id": "k1",
        "sku": "a",
        "customer": SUMMARY,
        "offers": [
            {"type": "cross_sell", "sku": "c", "score": 0.7, "reason": CO_REASON},
            {"type": "cross_sell", "sku": "f", "score": 0.5, "reason": "popular"},
        ],
    }


def test_cart_add_trigger_for_a_new_customer() -> None:
    """A customer with no LTV state gets zero figures; no cart id stays None."""
    event = CartEvent("e2", "item_added", "c2", T0 + 0.25, "a", 1, None)
    trigger = cart_add_trigger(event, None, [], NOBODY, "treatment", EMITTED)
    assert trigger["customer"] == {
        "ltv": 0.0,
        "rank": None,
        "p_alive": None,
        "orders": 0,
        "revenue": 0.0,
    }
    assert (trigger["cart_id"], trigger["offers"]) == (None, [])
    assert trigger["event_ts"] == "2026-11-23T09:15:00.250Z"


def test_post_purchase_trigger() -> None:
    """post_purchase: id from the event, the order id, customer figures and offers."""
    event = PurchaseEvent(
        event_id="p1",
        type="order_completed",
        customer_id="c1",
        ts=T0,
        order_id="o1",
        items=(OrderLine("a", 1, Decimal("45.10")),),
        total=Decimal("45.10"),
    )
    trigger = post_purchase_trigger(event, cross_sell_offers([CO]), SUMMARY, "treatment", EMITTED)
    assert trigger == {
        "trigger_id": output_id("post_purchase", "p1"),
        "kind": "post_purchase",
        "customer_id": "c1",
        "variant": "treatment",
        "event_ts": "2026-11-23T09:15:00Z",
        "emitted_at": EMITTED,
        "order_id": "o1",
        "customer": SUMMARY,
        "offers": [
            {"type": "cross_sell", "sku": "c", "score": 0.7, "reason": CO_REASON},
        ],
    }


def test_trigger_ids_differ_by_kind() -> None:
    """A cart_add and a post_purchase trigger for the same event id get different ids."""
    cart = CartEvent("same", "item_added", "c1", T0, "a")
    order = PurchaseEvent("same", "order_completed", "c1", T0, "o1", (), Decimal(0))
    ids = {
        cart_add_trigger(cart, None, [], NOBODY, "treatment", EMITTED)["trigger_id"],
        post_purchase_trigger(order, [], NOBODY, "treatment", EMITTED)["trigger_id"],
        output_id("suggestion", "same"),
    }
    assert len(ids) == 3


RENEWS = T0 + 30 * 86_400  # 1_798_017_300.0 = 2026-12-23T09:15:00Z
OPENS_14 = RENEWS - 14 * 86_400  # 1_796_807_700.0 = 2026-12-09T09:15:00Z
SUBSCRIPTION = SubscriptionState(
    customer_id="c1", plan_id="basic", price=Decimal("9.99"), period_days=30, renews_at=RENEWS
)


def renewal(
    subscription: SubscriptionState = SUBSCRIPTION,
    window_days: int = 14,
    now: float = OPENS_14,
    upsell_plan: str | None = "plus",
    addons: list[SuggestedItem] | None = None,
    subscription_id: str = "sub1",
) -> dict[str, Any]:
    offers = renewal_offers(subscription.plan_id, upsell_plan, [CO] if addons is None else addons)
    return renewal_trigger(
        subscription_id, subscription, window_days, now, offers, SUMMARY, "treatment", EMITTED
    )


def test_renewal_trigger() -> None:
    """renewal_approaching: id per subscription, cycle and window; upsell first, then add-ons."""
    assert renewal() == {
        # The cycle key is "<subscription id>:<renews_at>:<window>".
        "trigger_id": output_id("renewal_approaching", "sub1:1798017300.0:14"),
        "kind": "renewal_approaching",
        "customer_id": "c1",
        "variant": "treatment",
        "event_ts": "2026-12-09T09:15:00Z",  # the window's opening, RENEWS - 14 days
        "emitted_at": EMITTED,
        "subscription_id": "sub1",
        "plan_id": "basic",
        "renews_at": "2026-12-23T09:15:00Z",
        "window_days": 14,
        "customer": SUMMARY,
        "offers": [
            {"type": "upsell", "plan_id": "plus", "score": 1.0, "reason": "next plan after basic"},
            {"type": "cross_sell", "sku": "c", "score": 0.7, "reason": CO_REASON},
        ],
    }


def test_renewal_trigger_id_is_stable() -> None:
    """The same subscription, cycle and window give the same id, whatever else differs."""
    first = renewal()
    again = renewal(now=OPENS_14 + 3_600, upsell_plan=None, addons=[POP])
    assert first["trigger_id"] == again["trigger_id"]


@pytest.mark.parametrize(
    ("changed", "kwargs"),
    [
        ("window", {"window_days": 3}),
        ("cycle", {"subscription": SubscriptionState(customer_id="c1", renews_at=RENEWS + 1)}),
        ("subscription", {"subscription_id": "sub2"}),
    ],
)
def test_renewal_trigger_id_differs(changed: str, kwargs: dict[str, Any]) -> None:
    """Another window, another cycle (renews_at) or another subscription: another id."""
    assert renewal(**kwargs)["trigger_id"] != renewal()["trigger_id"], changed


def test_renewal_trigger_without_upsell() -> None:
    """At the top of the ladder (upsell_plan None) the offers are the add-ons alone."""
    trigger = renewal(upsell_plan=None, addons=[CO, POP])
    assert trigger["offers"] == [
        {"type": "cross_sell", "sku": "c", "score": 0.7, "reason": CO_REASON},
        {"type": "cross_sell", "sku": "f", "score": 0.5, "reason": "popular"},
    ]


def test_renewal_trigger_upsell_only() -> None:
    """No add-ons: the upsell is the only offer; no plan at all: no offers."""
    assert [o["type"] for o in renewal(addons=[])["offers"]] == ["upsell"]
    assert renewal(upsell_plan=None, addons=[])["offers"] == []


def test_renewal_trigger_times() -> None:
    """event_ts is the `now` given (milliseconds kept); renews_at is RFC 3339 too."""
    subscription = SubscriptionState(customer_id="c9", plan_id=None, renews_at=RENEWS + 0.5)
    trigger = renewal(subscription, window_days=3, now=T0 + 0.25, upsell_plan=None)
    assert trigger["event_ts"] == "2026-11-23T09:15:00.250Z"
    assert trigger["renews_at"] == "2026-12-23T09:15:00.500Z"
    assert (trigger["window_days"], trigger["customer_id"], trigger["plan_id"]) == (3, "c9", None)


def test_renewal_trigger_passes_variant_and_customer() -> None:
    """variant, customer figures and emitted_at are carried as given."""
    trigger = renewal_trigger(
        "sub1", SUBSCRIPTION, 14, OPENS_14, [], NOBODY, "control", "2026-12-09T09:15:01Z"
    )
    assert (trigger["variant"], trigger["customer"], trigger["emitted_at"]) == (
        "control",
        NOBODY,
        "2026-12-09T09:15:01Z",
    )
