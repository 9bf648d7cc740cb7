"""stream.domain.suggestions: ranking a cart's candidates, the popularity fallback, records."""

from __future__ import annotations

import uuid

import pytest

from stream.domain.cooccurrence import Decay, NeighborIndex
from stream.domain.events import CartEvent
from stream.domain.suggestions import (
    MAX_SHOWN_KEPT,
    SuggestedItem,
    SuggestionRules,
    held_back,
    output_id,
    recently_bought,
    record_shown,
    suggest_for_cart,
    suggestion_record,
)

T0 = 1_795_425_300.0  # 2026-11-23T09:15:00Z
DAY = 86_400.0
HOUR = 3_600.0


def open_rules(limit: int = 10) -> SuggestionRules:
    """Rules with every threshold off: any published pair qualifies."""
    return SuggestionRules(limit=limit, min_count=0, min_confidence=0.0, min_lift=0.0)


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
    assert suggest_for_cart(cart, owned, INDEX, open_rules(limit)) == expected


def test_suggest_never_offers_cart_or_owned_items() -> None:
    """No suggestion is in the cart or already owned, whatever the limit."""
    for cart in (["a"], ["b"], ["a", "b"], ["b", "d"]):
        for owned in (set(), {"c"}, {"d", "h"}):
            got = {item.sku for item in suggest_for_cart(cart, owned, INDEX, open_rules(50))}
            assert got.isdisjoint(set(cart) | owned), (cart, owned)


def test_co_purchases_are_not_padded_with_popular_items() -> None:
    """With at least one co-purchase candidate, popular items never fill up the list."""
    got = suggest_for_cart(["a"], {"c", "d", "e"}, INDEX, open_rules())
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
    assert suggest_for_cart(cart, owned, INDEX, open_rules(limit)) == expected


def test_empty_index_suggests_nothing() -> None:
    """An index with no records has neither neighbours nor popular items."""
    assert suggest_for_cart(["a"], set(), NeighborIndex(), open_rules(5)) == []
    assert suggest_for_cart(["a"], set(), NeighborIndex(), SuggestionRules()) == []


def test_popular_score_is_zero_without_total() -> None:
    """With N = 0 the popularity score (n_j / N) is 0."""
    index = NeighborIndex()
    index.apply({"sku": "a", "baskets": 3, "total_baskets": 0, "neighbors": []})
    assert suggest_for_cart([], set(), index, open_rules(1)) == [
        SuggestedItem("a", 0.0, 3, 0.0, 0.0, 0.0, None, "popular")
    ]


def test_suggestion_rules_defaults() -> None:
    """The rules' defaults match the settings' documented defaults."""
    assert SuggestionRules() == SuggestionRules(
        limit=10,
        min_count=2,
        min_confidence=0.02,
        min_lift=1.0,
        rebuy_window_days=0.0,
        cooldown_hours=24.0,
        max_shows=3,
    )


# Cart ["a"]: a -> c count 10, confidence 0.5, lift 1.25; a -> d 4, 0.2, 2.5;
# a -> e 2, 0.1, 2.0; a -> h 2, 0.1, 5.0 (see above).
A_D = SuggestedItem("d", 0.2, 4, 0.04, 0.2, 2.5, "a", "co_purchase")
A_C = SuggestedItem("c", 0.5, 10, 0.1, 0.5, 1.25, "a", "co_purchase")


@pytest.mark.parametrize(
    ("min_count", "min_confidence", "min_lift", "expected"),
    [
        # All pass.
        (0, 0.0, 0.0, [A_C, A_D, E, H]),
        (2, 0.1, 1.25, [A_C, A_D, E, H]),  # each threshold met exactly still qualifies
        # Count below: e and h (2 < 3) are out.
        (3, 0.0, 0.0, [A_C, A_D]),
        (4, 0.0, 0.0, [A_C, A_D]),  # 4 is not below 4
        (5, 0.0, 0.0, [A_C]),  # 4 < 5
        # Confidence below: e and h (0.1 < 0.2) are out; then d (0.2 < 0.21).
        (0, 0.2, 0.0, [A_C, A_D]),
        (0, 0.21, 0.0, [A_C]),
        # Lift below: c (1.25 < 2) is out; then e (2.0 < 2.5); then d (2.5 < 2.6).
        (0, 0.0, 2.0, [A_D, E, H]),
        (0, 0.0, 2.5, [A_D, H]),
        (0, 0.0, 2.6, [H]),
        # The defaults (2, 0.02, 1.0) let all four through.
        (2, 0.02, 1.0, [A_C, A_D, E, H]),
    ],
)
def test_thresholds_each_exclude_a_pair(
    min_count: float, min_confidence: float, min_lift: float, expected: list[SuggestedItem]
) -> None:
    """A pair qualifies only with count, confidence and lift each at least its threshold."""
    rules = SuggestionRules(min_count=min_count, min_confidence=min_confidence, min_lift=min_lift)
    assert suggest_for_cart(["a"], set(), INDEX, rules) == expected


def test_default_lift_threshold_drops_a_pair_bought_together_less_than_chance() -> None:
    """With the default rules b -> c (lift 2*100/(10*40) = 0.5 < 1) is left out."""
    assert suggest_for_cart(["b"], set(), INDEX, SuggestionRules()) == [
        SuggestedItem("d", 0.5, 5, 0.05, 0.5, 6.25, "b", "co_purchase"),
        SuggestedItem("a", 0.3, 3, 0.03, 0.3, 1.5, "b", "co_purchase"),
    ]


def test_only_qualifying_antecedents_add_to_the_score() -> None:
    """A candidate's score sums confidence over the cart items it qualifies for."""
    # Cart {a, b}, min_lift 1: b -> c (lift 0.5) no longer adds 0.2, so c scores 0.5 alone;
    # d keeps 0.2 + 0.5 = 0.7 (lifts 2.5 and 6.25).
    got = suggest_for_cart(["a", "b"], set(), INDEX, SuggestionRules(min_count=0, min_lift=1.0))
    assert got == [D, A_C, E, H]


def test_nothing_qualifies_falls_back_to_popular() -> None:
    """When thresholds leave no pair, popular items stand in (not the cart's own)."""
    got = suggest_for_cart(["b"], set(), INDEX, SuggestionRules(limit=3, min_lift=10.0))
    # f 50, c 40, a 20 (b is in the cart).
    assert got == [popular("f", 50), popular("c", 40), popular("a", 20)]


@pytest.mark.parametrize(
    ("excluded", "expected"),
    [
        # Held back or recently bought: f and a skipped; c, d, e (b in the cart).
        ({"f", "a"}, [popular("c", 40), popular("d", 8), popular("e", 5)]),
        ({"c", "d", "e", "f", "a", "g"}, []),
        (set(), [popular("f", 50), popular("c", 40), popular("a", 20)]),
    ],
)
def test_popularity_fallback_respects_exclusions(
    excluded: set[str], expected: list[SuggestedItem]
) -> None:
    """The popularity fallback never offers an excluded item or one in the cart."""
    rules = SuggestionRules(limit=3, min_lift=10.0)  # nothing qualifies for b
    assert suggest_for_cart(["b"], excluded, INDEX, rules) == expected


def test_suggest_at_a_time_reads_decayed_counts() -> None:
    """With decay, counts and N are read at `at`; min_count applies to the decayed count."""
    index = NeighborIndex(Decay(1.0))
    # Published at T0: n_a 20, n_ac 10, N 100; c at T0 - 1 day: n_c 40.
    index.apply(
        {
            "sku": "a",
            "baskets": 20.0,
            "total_baskets": 100.0,
            "as_of": T0,
            "neighbors": [{"sku": "c", "count": 10.0}],
        }
    )
    index.apply(
        {"sku": "c", "baskets": 40.0, "total_baskets": 80.0, "as_of": T0 - DAY, "neighbors": []}
    )
    # At T0 + 1 day: n_a 10, n_ac 5, N 50 (T0's is the latest), n_c 40 / 4 = 10:
    # confidence 5/10 = 0.5, support 5/50 = 0.1, lift 5*50/(10*10) = 2.5.
    at = T0 + DAY
    rules = SuggestionRules(min_count=5)
    assert suggest_for_cart(["a"], set(), index, rules, at) == [
        SuggestedItem("c", 0.5, 5.0, 0.1, 0.5, 2.5, "a", "co_purchase")
    ]
    # 5 < 6: nothing qualifies; c stands in as popular, n_c / N = 10 / 50 = 0.2.
    assert suggest_for_cart(["a"], set(), index, SuggestionRules(min_count=6), at) == [
        SuggestedItem("c", 0.2, 10.0, 0.2, 0.0, 0.0, None, "popular")
    ]
    # Read at T0 the same pair counts 10 and qualifies at min_count 6.
    assert [i.count for i in suggest_for_cart(["a"], set(), index, rules, T0)] == [10.0]


# --- recently_bought, held_back, record_shown ---------------------------------------------------

OWNED = {"a": T0, "b": T0 - 2 * DAY, "c": T0 - 10 * DAY}


@pytest.mark.parametrize(
    ("window_days", "expected"),
    [
        (0.0, {"a", "b", "c"}),  # 0: everything ever bought
        (-1.0, {"a", "b", "c"}),
        (1.0, {"a"}),  # since T0 - 1 day
        (1.99, {"a"}),
        (2.0, {"a", "b"}),  # b at exactly T0 - 2 days is within
        (9.99, {"a", "b"}),
        (10.0, {"a", "b", "c"}),
        (365.0, {"a", "b", "c"}),
    ],
)
def test_recently_bought(window_days: float, expected: set[str]) -> None:
    """Items bought within the window before `at` (window 0: ever bought) are held out."""
    assert recently_bought(OWNED, T0, window_days) == expected


def test_recently_bought_of_nothing() -> None:
    """A customer who bought nothing has nothing held out."""
    assert recently_bought({}, T0, 0.0) == set()
    assert recently_bought({}, T0, 30.0) == set()


def shown_item(sku: str) -> SuggestedItem:
    return SuggestedItem(sku, 0.5, 3, 0.1, 0.5, 2.0, "a", "co_purchase")


RULES = SuggestionRules(max_shows=3, cooldown_hours=24.0)


@pytest.mark.parametrize(
    ("times", "since", "at", "held"),
    [
        (3, T0, T0 + HOUR, True),  # 3 shows, 1 h into the 24 h window
        (4, T0, T0 + 23 * HOUR, True),
        (2, T0, T0 + HOUR, False),  # 2 < 3 shows
        (3, T0, T0 + 24 * HOUR, False),  # the cooldown has passed (24 h is not < 24 h)
        (5, T0 - 30 * HOUR, T0, False),
        (3, T0, T0, True),
    ],
)
def test_held_back(times: int, since: float, at: float, held: bool) -> None:
    """An item shown max_shows times is held back until the cooldown from its first showing ends."""
    assert held_back({"x": (times, since)}, at, RULES) == ({"x"} if held else set())


def test_held_back_several_items() -> None:
    """held_back picks, among all shown items, those at the cap within their window."""
    shown = {"x": (3, T0), "y": (2, T0), "z": (3, T0 - 25 * HOUR), "w": (1, T0)}
    assert held_back(shown, T0 + HOUR, RULES) == {"x"}
    assert held_back(shown, T0 + HOUR, SuggestionRules(max_shows=1)) == {"x", "y", "w"}
    assert held_back({}, T0, RULES) == set()


@pytest.mark.parametrize(
    ("before", "at", "after"),
    [
        (None, T0, (1, T0)),  # first showing opens a window at T0
        ((1, T0), T0 + HOUR, (2, T0)),
        ((3, T0), T0 + 23 * HOUR, (4, T0)),  # still counted within the window
        ((3, T0), T0 + 24 * HOUR, (1, T0 + 24 * HOUR)),  # the window has passed: starts anew
        ((2, T0), T0 + 30 * HOUR, (1, T0 + 30 * HOUR)),
    ],
)
def test_record_shown(
    before: tuple[int, float] | None, at: float, after: tuple[int, float]
) -> None:
    """record_shown counts one more showing, or starts a new window once the cooldown passed."""
    shown = {} if before is None else {"x": before}
    got = record_shown(shown, [shown_item("x")], at, RULES)
    assert got == {"x": after}
    assert shown == ({} if before is None else {"x": before})  # the given map is left as it was


def test_max_shows_then_cooldown() -> None:
    """After max_shows showings in a window an item is held back; after the cooldown, not."""
    shown: dict[str, tuple[int, float]] = {}
    for n in range(3):
        assert held_back(shown, T0 + n * HOUR, RULES) == set()
        shown = record_shown(shown, [shown_item("x")], T0 + n * HOUR, RULES)
    assert shown == {"x": (3, T0)}
    assert held_back(shown, T0 + 3 * HOUR, RULES) == {"x"}
    assert held_back(shown, T0 + 24 * HOUR, RULES) == set()
    shown = record_shown(shown, [shown_item("x")], T0 + 24 * HOUR, RULES)
    assert shown == {"x": (1, T0 + 24 * HOUR)}
    assert held_back(shown, T0 + 24 * HOUR, RULES) == set()


def test_held_back_items_are_not_suggested() -> None:
    """Items held back are passed as excluded and never suggested."""
    shown = {"c": (3, T0), "e": (3, T0)}
    excluded = held_back(shown, T0 + HOUR, RULES)
    assert excluded == {"c", "e"}
    assert suggest_for_cart(["a", "b"], excluded, INDEX, open_rules(), T0 + HOUR) == [D, H]


def test_record_shown_keeps_the_most_recently_shown() -> None:
    """At most MAX_SHOWN_KEPT items are kept; a re-shown item counts as recent."""
    assert MAX_SHOWN_KEPT == 100
    shown = {f"s{n:03d}": (1, T0) for n in range(100)}
    got = record_shown(shown, [shown_item("s000"), shown_item("new")], T0 + HOUR, RULES)
    # s000 moved to the newest end, new added: 101 -> the oldest, s001, is dropped.
    assert len(got) == 100
    assert "s001" not in got
    assert (got["s000"], got["new"]) == ((2, T0), (1, T0 + HOUR))
    assert list(got)[-2:] == ["s000", "new"]


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


@pytest.mark.parametrize(
    ("cart", "excluded", "new_customer", "expected"),
    [
        # a has neighbours c, d, e, h; all excluded: a known customer gets nothing ...
        (["a"], {"c", "d", "e", "h"}, False, []),
        # ... a new customer gets the best-sellers not excluded (f 50, b 10, g 1; c/d/e out)
        (["a"], {"c", "d", "e", "h"}, True, ["f", "b", "g"]),
        # a cold cart (g has no neighbours) gets the best-sellers, known customer or not
        (["g"], set(), False, ["f", "c", "a", "b", "d", "e"]),
    ],
)
def test_popular_items_stand_in_only_for_cold_carts_or_new_customers(
    cart: list[str], excluded: set[str], new_customer: bool, expected: list[str]
) -> None:
    """A known customer whose qualifying items are all excluded gets nothing, not best-sellers."""
    got = suggest_for_cart(cart, excluded, INDEX, open_rules(10), new_customer=new_customer)
    assert [item.sku for item in got] == expected
    assert all(item.source == "popular" for item in got)
