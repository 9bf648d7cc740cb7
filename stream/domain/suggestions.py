"""Cross-sell suggestions for a cart, from the co-occurrence read model.

Candidates are the published neighbours of every item in the cart. A
candidate's score sums confidence(c -> j) over the cart items c, so an
item that goes with several things in the cart ranks above one that goes
with a single one; each suggested item carries the count, support,
confidence and lift of its strongest antecedent. Items in the cart and
items the customer already owns are left out. When the cart's items have
no neighbours at all (cold items, a young model), the most popular items
stand in, marked `source: "popular"`; they never pad out a list of real
co-purchases, which would push unrelated items.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from typing import Any

from stream.domain.cooccurrence import NeighborIndex, confidence, lift, support
from stream.domain.events import CartEvent, format_ts


@dataclass(frozen=True, slots=True)
class SuggestedItem:
    """One ranked suggestion and the evidence for it."""

    sku: str
    score: float
    count: int
    support: float
    confidence: float
    lift: float
    because: str | None
    source: str

    def to_json(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "score": round(self.score, 6),
            "count": self.count,
            "support": self.support,
            "confidence": self.confidence,
            "lift": self.lift,
            "because": self.because,
            "source": self.source,
        }


def suggest_for_cart(
    cart: Iterable[str], owned: Collection[str], index: NeighborIndex, limit: int
) -> list[SuggestedItem]:
    """Up to `limit` items for a cart, best first (ties broken by SKU)."""
    in_cart = tuple(dict.fromkeys(cart))
    excluded = set(in_cart).union(owned)
    total = index.total_baskets
    scores: dict[str, float] = {}
    best: dict[str, SuggestedItem] = {}
    for antecedent in in_cart:
        n_a = index.baskets(antecedent)
        for other, n_ao in index.neighbors(antecedent):
            if other in excluded:
                continue
            conf = confidence(n_ao, n_a)
            scores[other] = scores.get(other, 0.0) + conf
            if other not in best or conf > best[other].confidence:
                n_o = max(index.baskets(other), n_ao)
                best[other] = SuggestedItem(
                    sku=other,
                    score=0.0,
                    count=n_ao,
                    support=support(n_ao, total),
                    confidence=conf,
                    lift=lift(n_ao, n_a, n_o, total),
                    because=antecedent,
                    source="co_purchase",
                )
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    chosen = [replace(best[sku], score=score) for sku, score in ranked]
    if not chosen:
        chosen = _popular_fill(index, excluded, limit)
    return chosen


def _popular_fill(
    index: NeighborIndex, excluded: Collection[str], room: int
) -> list[SuggestedItem]:
    """Most-bought items not excluded; score = support of the item alone (n_j / N)."""
    total = index.total_baskets
    filled: list[SuggestedItem] = []
    for sku, n_j in index.popular(room + len(excluded)):
        if sku in excluded:
            continue
        share = support(n_j, total)
        filled.append(
            SuggestedItem(
                sku=sku,
                score=share,
                count=n_j,
                support=share,
                confidence=0.0,
                lift=0.0,
                because=None,
                source="popular",
            )
        )
        if len(filled) == room:
            break
    return filled


def output_id(kind: str, source_event_id: str) -> str:
    """A stable id for what answers one input event: the same on redelivery and replay."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"cross-sell:{kind}:{source_event_id}"))


def suggestion_record(
    event: CartEvent,
    cart_id: str | None,
    items: list[SuggestedItem],
    variant: str,
    emitted_at: str,
) -> dict[str, Any]:
    """The `cross-sell-suggestions` record answering one `item_added` event."""
    return {
        "suggestion_id": output_id("suggestion", event.event_id),
        "customer_id": event.customer_id,
        "cart_id": cart_id,
        "trigger_sku": event.sku,
        "items": [item.to_json() for item in items],
        "variant": variant,
        "source_event_id": event.event_id,
        "event_ts": format_ts(event.ts),
        "emitted_at": emitted_at,
    }
