"""Cross-sell suggestions for a cart, from the co-occurrence read model.

Candidates are the published neighbours of every item in the cart. A pair
a -> j qualifies when its count, confidence and lift reach the rules'
thresholds; a candidate's score sums confidence(a -> j) over the cart items
a that it qualifies for, so an item that goes with several things in the
cart ranks above one that goes with a single one. Each suggested item
carries the count, support, confidence and lift of its strongest
antecedent. Left out: items in the cart, items the customer bought within
the rebuy window (or ever, with a window of 0), and items already shown to
the customer `max_shows` times within the cooldown. When nothing qualifies
for a cold cart (its items have no neighbours yet) or a new customer, the
most popular items stand in, marked `source: "popular"`; they never pad out
a list of real co-purchases, and a known customer whose qualifying items are
all owned or held back gets nothing: both would push unrelated items.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from stream.domain.cooccurrence import NeighborIndex, Number, confidence, lift, support
from stream.domain.events import SECONDS_PER_DAY, CartEvent, format_ts

MAX_SHOWN_KEPT: Final = 100


@dataclass(frozen=True, slots=True)
class SuggestionRules:
    """What qualifies and what is held back (settings: STREAM_MIN_*, STREAM_*_WINDOW...)."""

    limit: int = 10
    min_count: float = 2
    min_confidence: float = 0.02
    min_lift: float = 1.0
    rebuy_window_days: float = 0.0
    cooldown_hours: float = 24.0
    max_shows: int = 3


@dataclass(frozen=True, slots=True)
class SuggestedItem:
    """One ranked suggestion and the evidence for it."""

    sku: str
    score: float
    count: Number
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


def recently_bought(owned: Mapping[str, float], at: float, window_days: float) -> set[str]:
    """Items bought within `window_days` before `at` (window 0: every item ever bought)."""
    if window_days <= 0:
        return set(owned)
    since = at - window_days * SECONDS_PER_DAY
    return {sku for sku, bought in owned.items() if bought >= since}


Shown = Mapping[str, tuple[int, float]]


def held_back(shown: Shown, at: float, rules: SuggestionRules) -> set[str]:
    """Items shown `max_shows` times within the cooldown that started at their first showing."""
    window = rules.cooldown_hours * 3600.0
    return {
        sku
        for sku, (times, since) in shown.items()
        if times >= rules.max_shows and at - since < window
    }


def record_shown(
    shown: Shown, items: Iterable[SuggestedItem], at: float, rules: SuggestionRules
) -> dict[str, tuple[int, float]]:
    """Count one more showing of each item; a cooldown window that has passed starts anew.

    Keeps the MAX_SHOWN_KEPT most recently shown items.
    """
    window = rules.cooldown_hours * 3600.0
    updated = dict(shown)
    for item in items:
        times, since = updated.pop(item.sku, (0, at))
        updated[item.sku] = (times + 1, since) if at - since < window else (1, at)
    while len(updated) > MAX_SHOWN_KEPT:
        del updated[next(iter(updated))]
    return updated


def suggest_for_cart(
    cart: Iterable[str],
    excluded: Collection[str],
    index: NeighborIndex,
    rules: SuggestionRules,
    at: float = 0.0,
    new_customer: bool = True,
) -> list[SuggestedItem]:
    """Up to `rules.limit` items for a cart at time `at`, best first (ties broken by SKU).

    `excluded` is what must not be suggested beyond the cart itself
    (recently bought, held back). The most popular items stand in when nothing
    qualifies only for cold carts (no item has neighbours yet) or new
    customers: a known customer whose qualifying items are all owned or held
    back gets nothing rather than unrelated best-sellers.
    """
    in_cart = tuple(dict.fromkeys(cart))
    left_out = set(in_cart).union(excluded)
    total = index.total_baskets(at)
    scores: dict[str, float] = {}
    best: dict[str, SuggestedItem] = {}
    for antecedent in in_cart:
        n_a = index.baskets(antecedent, at)
        for other, n_ao in index.neighbors(antecedent, at):
            if other in left_out or n_ao < rules.min_count:
                continue
            conf = confidence(n_ao, n_a)
            n_o = max(index.baskets(other, at), n_ao)
            lifted = lift(n_ao, n_a, n_o, total)
            if conf < rules.min_confidence or lifted < rules.min_lift:
                continue
            scores[other] = scores.get(other, 0.0) + conf
            if other not in best or conf > best[other].confidence:
                best[other] = SuggestedItem(
                    sku=other,
                    score=0.0,
                    count=n_ao,
                    support=support(n_ao, total),
                    confidence=conf,
                    lift=lifted,
                    because=antecedent,
                    source="co_purchase",
                )
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[: rules.limit]
    chosen = [replace(best[sku], score=score) for sku, score in ranked]
    cold = not any(index.neighbors(item, at) for item in in_cart)
    if not chosen and (cold or new_customer):
        chosen = _popular_fill(index, left_out, rules.limit, at)
    return chosen


def _popular_fill(
    index: NeighborIndex, excluded: Collection[str], room: int, at: float
) -> list[SuggestedItem]:
    """Most-bought items not excluded; score = support of the item alone (n_j / N)."""
    total = index.total_baskets(at)
    filled: list[SuggestedItem] = []
    for sku, n_j in index.popular(room + len(excluded), at):
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
