"""stream.domain.suggestions: ranking a cart's candidates, the popularity fallback, records."""

from __future__ import annotations

import uuid

import pytest

from stream.domain.cooccurrence import NeighborIndex
from stream.domain.events import CartEvent
from stream.domain.suggestions import (
    SuggestedItem,
    output_id,
    suggest_for_cart,
    suggestion_record,
)

T0 = 1_795_425_300.0  # 2026-11-23T09:15:00Z

# N = 100 baskets. n_i: a 20, b 10, c 40, d 8, e 5, f 50, g 1; h is only known as a neighbour.
# Neighbours (n_ij): a -> c 10, d 4, e 2, h 2;  b -> d 5, c 2, a 3;  the others have none.
N_I = {"a": 20, "b": 10, "c": 40, "d": 8, "e": 5, "f": 50, "g": 1}
NEIGHBORS = {
    "a": {"c": 10, "d": 4, "e": 2, "h": 2},
    "b": {"d": 5, "c": 2, "a": 3},
}


def build_index() -> NeighborIndex:
    index = NeighborIndex()
    for sku, n in N_I.items():
        index.apply(
            {
                "sku": sku,
                "baskets": n,
                "total_baskets": 100,
                "neighbors": [{"sku": j, "count": c} for j, c in NEIGHBORS.get(sku, {}).items()],
            }
        )
    return index


INDEX = build_index()

# Cart {a, b}:
#   c: conf(a->c) = 10/20 = 0.5, conf(b->c) = 2/10 = 0.2; score 0.7; strongest a:
#      support 10/100 = 0.1, lift 10*100/(20*40) = 1.25
#   d: conf(a->d) = 4/20 = 0.2, conf(b->d) = 5/10 = 0.5; score 0.7; strongest b:
#      support 5/100 = 0.05, lift 5*100/(10*8) = 6.25
#   e: conf(a->e) = 2/20 = 0.1; score 0.1; support 0.02, lift 2*100/(20*5) = 2.0
#   h: conf(a->h) = 2/20 = 0.1; score 0.1; n_h unknown -> floored at n_ah = 2:
#      support 0.02, lift 2*100/(20*2) = 5.0
#   a is in the cart: left out although b -> a.
C = SuggestedItem("c", 0.7, 10, 0.1, 0.5, 1.25, "a", "co_purchase")
D = SuggestedItem("d", 0.7, 5, 0.05, 0.5, 6.25, "b", "co_purchase")
E = SuggestedItem("e", 0.1, 2, 0.02, 0.1, 2.0, "a", "co_purchase")
H = SuggestedItem("h", 0.1, 2, 0.02, 0.1, 5.0, "a", "co_purchase")


@pytest.mark.parametrize(
    ("cart", "owned", "limit", "expected"),
    [
        # Ties on score go by SKU: c before d, e before h.
        (["a", "b"], set(), 10, [C, D, E, H]),
        (["a", "b"], set(), 3, [C, D, E]),
        (["a", "b"], set(), 1, [C]),
        # Cart order and repeats change nothing.
        (["b", "a"], set(), 10, [C, D, E, H]),
        (["a", "b", "a", "b"], set(), 10, [C, D, E, H]),
        # Owned items are left out.
        (["a", "b"], {"c", "e"}, 10, [D, H]),
        # Only a in the cart: scores are a's confidences alone, d's evidence from a:
        #   d: 4/20 = 0.2, support 0.04, lift 4*100/(20*8) = 2.5.
        (
            ["a"],
            set(),
            10,
            [
                SuggestedItem("c", 0.5, 10, 0.1, 0.5, 1.25, "a", "co_purchase"),
                SuggestedItem("d", 0.2, 4, 0.04, 0.2, 2.5, "a", "co_purchase"),
                E,
                H,
            ],
        ),
        # Only b in the cart: d 5/10 = 0.5, a 3/10 = 0.3 (support 0.03,
        # lift 3*100/(10*20) = 1.5), c 2/10 = 0.2 (support 0.02, lift 2*100/(10*40) = 0.5).
        (
            ["b"],
            set(),
            10,
            [
                SuggestedItem("d", 0.5, 5, 0.05, 0.5, 6.25, "b", "co_purchase"),
                SuggestedItem("a", 0.3, 3, 0.03, 0.3, 1.5, "b", "co_purchase"),
                SuggestedItem("c", 0.2, 2, 0.02, 0.2, 0.5, "b", "co_purchase"),
            ],
        ),
        # A cold item next to a known one adds nothing.
        (["g", "a", "b"], set(), 2, [C, D]),
    ],
)
def test_suggest_for_cart_ranks_by_summed_confidence(
    cart: list[str], owned: set[str], limit: int, expected: list[SuggestedItem]
) -> None:
    """Score = sum of confidence(c -> j) over cart items; evidence from the strongest one."""
    assert suggest_for_cart(cart, owned, INDEX, limit) == expected


def test_suggest_never_offers_cart_or_owned_items() -> None:
    """No suggestion is in the cart or already owned, whatever the limit."""
    for cart in (["a"], ["b"], ["a", "b"], ["b", "d"]):
        for owned in (set(), {"c"}, {"d", "h"}):
            got = {item.sku for item in suggest_for_cart(cart, owned, INDEX, 50)}
            assert got.isdisjoint(set(cart) | owned), (cart, owned)


def test_co_purchases_are_not_padded_with_popular_items() -> None:
    """With at least one co-purchase candidate, popular items never fill up the list."""
    got = suggest_for_cart(["a"], {"c", "d", "e"}, INDEX, 10)
    assert got == [H]


# Popularity: f 50, c 40, a 20, b 10, d 8, e 5, g 1 (h has no row); score = n_j / 100.
def popular(sku: str, n: int) -> SuggestedItem:
    return SuggestedItem(sku, n / 100, n, n / 100, 0.0, 0.0, None, "popular")


@pytest.mark.parametrize(
    ("cart", "owned", "limit", "expected"),
    [
        # A cold item (no neighbours): the most popular others, f 0.5, c 0.4, a 0.2.
        (["g"], set(), 3, [popular("f", 50), popular("c", 40), popular("a", 20)]),
        # An item the index does not know at all.
        (["zzz"], set(), 2, [popular("f", 50), popular("c", 40)]),
        # An empty cart.
        ([], set(), 1, [popular("f", 50)]),
        # Cart and owned items are skipped: not f, c; then a, b.
        (["c"], {"f"}, 2, [popular("a", 20), popular("b", 10)]),
        # Every candidate of a and b excluded (c, d, e, h owned; a, b in the cart):
        # f, then g (c, a, b, d, e excluded).
        (["a", "b"], {"c", "d", "e", "h"}, 3, [popular("f", 50), popular("g", 1)]),
        # More room than items: every non-excluded popular item once.
        (
            ["g"],
            set(),
            20,
            [
                popular(s, n)
                for s, n in [("f", 50), ("c", 40), ("a", 20), ("b", 10), ("d", 8), ("e", 5)]
            ],
        ),
    ],
)
def test_popularity_fallback(
    cart: list[str], owned: set[str], limit: int, expected: list[SuggestedItem]
) -> None:
    """Without any co-purchase candidate, the most-bought items stand in, marked popular."""
    assert suggest_for_cart(cart, owned, INDEX, limit) == expected


def test_empty_index_suggests_nothing() -> None:
    """An index with no records has neither neighbours nor popular items."""
    assert suggest_for_cart(["a"], set(), NeighborIndex(), 5) == []


def test_popular_score_is_zero_without_total() -> None:
    """With N = 0 the popularity score (n_j / N) is 0."""
    index = NeighborIndex()
    index.apply({"sku": "a", "baskets": 3, "total_baskets": 0, "neighbors": []})
    assert suggest_for_cart([], set(), index, 1) == [
        SuggestedItem("a", 0.0, 3, 0.0, 0.0, 0.0, None, "popular")
    ]


def test_suggested_item_to_json_rounds_the_score() -> None:
    """to_json rounds the score to 6 places and keeps the evidence as is."""
    item = SuggestedItem("c", 2 / 3, 10, 0.1, 0.5, 1.25, "a", "co_purchase")
    assert item.to_json() == {
        "sku": "c",
        "score": 0.666667,
        "count": 10,
        "support": 0.1,
        "confidence": 0.5,
        "lift": 1.25,
        "because": "a",
        "source": "co_purchase",
    }


def test_output_id_is_stable_and_distinct() -> None:
    """output_id is a UUID5, the same for the same (kind, event), different otherwise."""
    first = output_id("suggestion", "e1")
    assert first == output_id("suggestion", "e1")
    assert uuid.UUID(first).version == 5
    others = {
        output_id("cart_add", "e1"),
        output_id("post_purchase", "e1"),
        output_id("suggestion", "e2"),
    }
    assert first not in others
    assert len(others) == 3


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        # Pinned: a changed id scheme would break deduplication of replays across versions.
        ("suggestion", "d4467096-5a76-5347-a8a7-3065c18c5283"),
        ("cart_add", "23ada934-bebc-55fb-a7e0-36cd8f2791bd"),
        ("post_purchase", "8d950728-fb04-5752-9ed9-a9c64e83db61"),
    ],
)
def test_output_id_is_pinned(kind: str, expected: str) -> None:
    """output_id(kind, 'e1') keeps its value from one release to the next."""
    assert output_id(kind, "e1") == expected


def test_suggestion_record() -> None:
    """The cross-sell-suggestions record answering an item_added event."""
    event = CartEvent("e1", "item_added", "c1", T0 + 0.5, "a", 1, "k1")
    rec = suggestion_record(event, "k1", [C, E], "treatment", "2026-11-23T09:15:01Z")
    assert rec == {
        "suggestion_id": output_id("suggestion", "e1"),
        "customer_id": "c1",
        "cart_id": "k1",
        "trigger_sku": "a",
        "items": [C.to_json(), E.to_json()],
        "variant": "treatment",
        "source_event_id": "e1",
        "event_ts": "2026-11-23T09:15:00.500Z",
        "emitted_at": "2026-11-23T09:15:01Z",
    }
    assert rec["items"][0]["score"] == 0.7


def test_suggestion_record_may_be_empty() -> None:
    """A record with no items (control customers, nothing qualifies) still answers the event."""
    event = CartEvent("e2", "item_added", "c1", T0, "a", 1, None)
    rec = suggestion_record(event, None, [], "control", "2026-11-23T09:15:00Z")
    assert (rec["items"], rec["cart_id"], rec["variant"]) == ([], None, "control")
    assert rec["suggestion_id"] == output_id("suggestion", "e2")
