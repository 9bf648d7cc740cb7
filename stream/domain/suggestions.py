"""Cross-sell suggestions for a cart, from the co-occurrence read model.

Every candidate j is ranked by a smoothed estimate of P(j | cart): a mixture
over the cart's distinct items a, with equal weights, of confidence(a -> j)
shrunk towards the popularity prior p_j = n_j / N (Dirichlet smoothing, as
in language-model retrieval):

    score(j) = mean over a of (n_aj + beta * p_j) / (n_a + beta)

with beta = `SuggestionRules.prior_baskets`, the weight of the prior in
baskets. An antecedent with few baskets says little and its term stays near
p_j; one with many baskets pulls towards its own confidence. n_aj is the
published count (0 when j is not among a's published neighbours).

Candidates are bounded: the published neighbours of the cart items that
qualify (count, confidence and lift at least the rules' thresholds), marked
`source: "co_purchase"` with the exact count, support, confidence and lift of
their strongest antecedent; and the index's most popular items
(`NeighborIndex.POPULAR_KEPT`), marked `source: "popular"` with n_j, n_j / N
and no antecedent unless a pair of theirs qualifies. So the list is filled
up to `limit` whenever enough items are known. Left out: items in the cart,
items the customer bought within the rebuy window (or ever, with a window of
0), and items already shown to the customer `max_shows` times within the
cooldown.

What a marketing trigger may push is narrower (`marketing_offers`): the
co-purchases only, and the popular items only for a new customer with none.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Final

from stream.domain.cooccurrence import NeighborIndex, Number, confidence, lift, support
from stream.domain.events import SECONDS_PER_DAY, CartEvent, format_ts

MAX_SHOWN_KEPT: Final = 100
# Scores are ranked in units of 1 / SCORE_SCALE (a score is at most 1). Two
# scores equal in exact arithmetic can differ in their last bits by the order
# of their sums (7/12 as 1/4 + 1/3 and as 1/2 + 1/12: 0.5833333333333333 and
# 0.5833333333333334), and such a tie goes to popularity, then SKU.
# (`round(score * SCORE_SCALE)`: 60 ns; `round(score, 12)` took 210.)
SCORE_SCALE: Final = 1e12


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
    prior_baskets: float = 300.0


@dataclass(slots=True)
class SuggestedItem:
    """One ranked suggestion and the evidence for it: a value, never changed once made.

    Not frozen, unlike the events and the state: a suggestion makes up to
    `limit` of them, and a frozen dataclass' `__init__` (one
    `object.__setattr__` per field) took 690 ns to this one's 120.
    """

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


_since = itemgetter(1)  # of a shown item's (times, window start)


def record_shown(
    shown: Shown, items: Iterable[SuggestedItem], at: float, rules: SuggestionRules
) -> dict[str, tuple[int, float]]:
    """Count one more showing of each item; a cooldown window that has passed starts anew.

    Keeps the MAX_SHOWN_KEPT most recently shown items, and of those only the
    ones whose window is still open at `at`: an item whose window has passed
    is held back no more and starts anew when shown again, as one never shown
    (a cart's record is the shorter for it, and so is what a worker holds).
    """
    window = rules.cooldown_hours * 3600.0
    if not shown or at - min(map(_since, shown.values())) < window:  # mostly: none has passed
        updated = dict(shown)
    else:
        updated = {sku: entry for sku, entry in shown.items() if at - entry[1] < window}
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
) -> list[SuggestedItem]:
    """Up to `rules.limit` items for a cart at time `at`, best first.

    `excluded` is what must not be suggested beyond the cart itself
    (recently bought, held back). Ranked by `score` (the smoothed P(j | cart)
    of the module docstring, to 1 / SCORE_SCALE), ties by popularity, then
    SKU. Cost: one pass over the cart items' published neighbours, and the
    popular list read until `limit` of its items have no evidence (at most
    POPULAR_KEPT), never all items.
    """
    in_cart = tuple(dict.fromkeys(cart))
    left_out = set(in_cart).union(excluded)
    total = index.total_baskets(at)
    baskets = index.baskets_at(at)
    beta, min_count = rules.prior_baskets, rules.min_count
    min_confidence, min_lift = rules.min_confidence, rules.min_lift
    share = 1.0 / len(in_cart) if in_cart else 0.0
    # score(j) = prior_weight * p_j + evidence[j], one pass over the neighbours, with
    #   prior_weight = sum over a of share * beta / (n_a + beta),
    #   evidence[j]  = sum over a of share * n_aj / (n_a + beta).
    prior_weight = 0.0 if in_cart else 1.0
    evidence: dict[str, float] = {}
    # j -> (confidence, n_aj, lift, a, n_j) of its strongest qualifying antecedent a
    qualified: dict[str, tuple[float, Number, float, str, Number]] = {}
    for antecedent in in_cart:
        n_a = baskets(antecedent)
        if n_a + beta <= 0:  # no baskets and no prior weight: no evidence, the prior stands
            prior_weight += share
            continue
        weight = share / (n_a + beta)
        prior_weight += weight * beta
        for other, n_ao in index.neighbors(antecedent, at):
            if other in left_out:
                continue
            evidence[other] = evidence.get(other, 0.0) + weight * n_ao
            if n_ao < min_count:
                continue
            conf = confidence(n_ao, n_a)
            n_other = baskets(other)
            lifted = lift(n_ao, n_a, max(n_other, n_ao), total)
            if conf < min_confidence or lifted < min_lift:
                continue
            if other not in qualified or conf > qualified[other][0]:
                qualified[other] = (conf, n_ao, lifted, antecedent, n_other)
    candidates = {sku: found[4] for sku, found in qualified.items()}
    # The popular items compete too. Those with evidence (neighbours of the
    # cart that did not qualify) may rank anywhere: each goes in. Those with
    # none score prior_weight * p_j and rank among themselves as the popular
    # list does (n_j, then SKU), so past the first `limit` of them none can
    # make the list: the list is read that far, not all POPULAR_KEPT.
    popular = index.popular_kept()
    for sku in evidence:  # none left out: the neighbour loop skipped those
        if sku in popular and sku not in candidates:
            candidates[sku] = baskets(sku)
    plain_left = rules.limit
    if plain_left:
        for sku in index.popular_skus():
            if sku in left_out or sku in candidates or sku in evidence:
                continue
            candidates[sku] = baskets(sku)
            plain_left -= 1
            if not plain_left:
                break
    ranked = [
        (-round(score * SCORE_SCALE), -n_j, sku, score)
        for sku, n_j in candidates.items()
        for score in (prior_weight * support(n_j, total) + evidence.get(sku, 0.0),)
    ]
    # A few dozen candidates at most (their neighbours, `limit` popular items):
    # one sort in C is quicker than heapq.nsmallest's loop in Python.
    ranked.sort()
    chosen: list[SuggestedItem] = []
    for _, negative_n, sku, score in ranked[: rules.limit]:
        found = qualified.get(sku)
        if found is None:
            chosen.append(_popular_item(sku, -negative_n, total, score))
            continue
        conf, n_ao, lifted, antecedent, _ = found
        chosen.append(
            SuggestedItem(
                sku=sku,
                score=score,
                count=n_ao,
                support=support(n_ao, total),
                confidence=conf,
                lift=lifted,
                because=antecedent,
                source="co_purchase",
            )
        )
    return chosen


def _popular_item(sku: str, n_j: Number, total: Number, score: float) -> SuggestedItem:
    """A popular item: its own n_j and n_j / N, no antecedent (confidence and lift 0)."""
    return SuggestedItem(
        sku=sku,
        score=score,
        count=n_j,
        support=support(n_j, total),
        confidence=0.0,
        lift=0.0,
        because=None,
        source="popular",
    )


def marketing_offers(items: list[SuggestedItem], new_customer: bool) -> list[SuggestedItem]:
    """What a trigger may push from a ranked list: its co-purchases, in order.

    Popular items fill the storefront's list, but a trigger reaches out to the
    customer: it carries them only for a new customer (no orders) who has no
    co-purchase to be offered, never for a known one.
    """
    related = [item for item in items if item.source == "co_purchase"]
    if related or not new_customer:
        return related
    return items


# SHA-1 over the URL namespace's bytes, the prefix of every name's hash (RFC 9562 UUIDv5).
_OUTPUT_ID_PREFIX: Final = hashlib.sha1(uuid.NAMESPACE_URL.bytes, usedforsecurity=False)


def output_id(kind: str, source_event_id: str) -> str:
    """A stable id for what answers one input event: the same on redelivery and replay.

    `uuid.uuid5(NAMESPACE_URL, "cross-sell:{kind}:{id}")`, as a string, built
    without the `uuid.UUID` object in between: every suggestion and trigger
    makes one, and the object's integer arithmetic was most of its 3.4 us
    (this: 1.1 us; the same string, unit-tested against `uuid.uuid5`).
    """
    sha = _OUTPUT_ID_PREFIX.copy()
    sha.update(f"cross-sell:{kind}:{source_event_id}".encode())
    raw = bytearray(sha.digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


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
