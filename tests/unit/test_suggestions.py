"""stream.domain.suggestions: smoothed ranking, popular fill, exclusions, offers, records."""

from __future__ import annotations

import random
import uuid
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.domain.cooccurrence import Decay, NeighborIndex
from stream.domain.events import CartEvent
from stream.domain.suggestions import (
    MAX_SHOWN_KEPT,
    SCORE_SCALE,
    SuggestedItem,
    SuggestionRules,
    held_back,
    marketing_offers,
    output_id,
    recently_bought,
    record_shown,
    suggest_for_cart,
    suggestion_record,
)

T0 = 1_795_425_300.0  # 2026-11-23T09:15:00Z
DAY = 86_400.0
HOUR = 3_600.0


def open_rules(limit: int = 10, prior_baskets: float = 0.0) -> SuggestionRules:
    """Rules with every threshold off (any published pair qualifies); no prior by default."""
    return SuggestionRules(
        limit=limit, min_count=0, min_confidence=0.0, min_lift=0.0, prior_baskets=prior_baskets
    )


# N = 100 baskets. n_i: a 20, b 10, c 40, d 8, e 5, f 50, g 1; h is only known as a neighbour.
# Neighbours (n_ij): a -> c 10, d 4, e 2, h 2;  b -> d 5, c 2, a 3;  the others have none.
# Popularity (p_j = n_j / N): f 0.5, c 0.4, a 0.2, b 0.1, d 0.08, e 0.05, g 0.01.
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


def co(
    sku: str, score: float, count: int, conf: float, lifted: float, because: str
) -> SuggestedItem:
    """A co-purchase: support = count / 100."""
    return SuggestedItem(sku, score, count, count / 100, conf, lifted, because, "co_purchase")


def popular(sku: str, score: float) -> SuggestedItem:
    """A popular item: its own n_j and n_j / 100, no antecedent."""
    return SuggestedItem(sku, score, N_I[sku], N_I[sku] / 100, 0.0, 0.0, None, "popular")


def skus(items: list[SuggestedItem]) -> list[str]:
    return [item.sku for item in items]


# Evidence of each qualifying pair (the strongest antecedent's, exact):
#   a -> c: count 10, confidence 10/20 = 0.5, lift 10*100/(20*40) = 1.25
#   a -> d: 4, 0.2, 4*100/(20*8) = 2.5;  b -> d: 5, 0.5, 5*100/(10*8) = 6.25
#   a -> e: 2, 0.1, 2*100/(20*5) = 2.0;  a -> h: 2, 0.1, n_h floored at 2: 2*100/(20*2) = 5.0
#   b -> a: 3, 0.3, 3*100/(10*20) = 1.5; b -> c: 2, 0.2, 2*100/(10*40) = 0.5


def test_without_a_prior_the_score_is_the_mean_confidence_over_the_cart() -> None:
    """prior_baskets 0: score = mean over cart items of confidence; popular items score 0."""
    # Cart {a, b}: c (0.5 + 0.2) / 2 = 0.35, d (0.2 + 0.5) / 2 = 0.35 (tie: c is more
    # popular), e 0.1 / 2 = 0.05, h 0.05 (tie: e is more popular); then f, g at 0.
    got = suggest_for_cart(["a", "b"], set(), INDEX, open_rules())
    assert skus(got) == ["c", "d", "e", "h", "f", "g"]
    assert [item.score for item in got] == pytest.approx([0.35, 0.35, 0.05, 0.05, 0.0, 0.0])
    assert got[:4] == [
        co("c", got[0].score, 10, 0.5, 1.25, "a"),  # the strongest antecedent's evidence
        co("d", got[1].score, 5, 0.5, 6.25, "b"),
        co("e", got[2].score, 2, 0.1, 2.0, "a"),
        co("h", got[3].score, 2, 0.1, 5.0, "a"),
    ]
    assert got[4:] == [popular("f", 0.0), popular("g", 0.0)]


def test_the_prior_shrinks_confidence_towards_popularity() -> None:
    """score(j) = mean over a of (n_aj + beta p_j) / (n_a + beta); here beta = 20, cart [a]."""
    # (n_aj + 20 p_j) / 40: c (10 + 8) / 40 = 0.45, f (0 + 10) / 40 = 0.25,
    # d (4 + 1.6) / 40 = 0.14, e (2 + 1) / 40 = 0.075, b (0 + 2) / 40 = 0.05,
    # h (2 + 0) / 40 = 0.05 (tie: b is more popular), g (0 + 0.2) / 40 = 0.005.
    got = suggest_for_cart(["a"], set(), INDEX, open_rules(prior_baskets=20))
    assert skus(got) == ["c", "f", "d", "e", "b", "h", "g"]
    assert [item.score for item in got] == pytest.approx(
        [0.45, 0.25, 0.14, 0.075, 0.05, 0.05, 0.005]
    )
    sources = ["co_purchase", "popular", "co_purchase", "co_purchase", "popular", "co_purchase"]
    assert [item.source for item in got] == [*sources, "popular"]
    # The evidence fields stay the exact figures; only score and order come from the prior.
    assert got[0] == co("c", got[0].score, 10, 0.5, 1.25, "a")
    assert got[1] == popular("f", got[1].score)


@pytest.mark.parametrize(
    ("prior_baskets", "expected"),
    [
        # Almost no prior: the co-purchases by confidence, then popular items by popularity.
        (1e-9, ["c", "d", "e", "h", "f", "b", "g"]),
        # An overwhelming prior: popularity order (h, with no row, last).
        (1e9, ["f", "c", "b", "d", "e", "g", "h"]),
    ],
)
def test_prior_strength_moves_from_confidence_to_popularity(
    prior_baskets: float, expected: list[str]
) -> None:
    """The prior's weight in baskets slides the ranking from confidence to popularity."""
    got = suggest_for_cart(["a"], set(), INDEX, open_rules(prior_baskets=prior_baskets))
    assert skus(got) == expected


def test_an_antecedent_with_more_baskets_pulls_harder() -> None:
    """With a prior, a cart item with many baskets weighs more than one with few."""
    # beta = 10, cart {a, b}, each half: a: (n_aj + 10 p_j) / 30, b: (n_bj + 10 p_j) / 20.
    # d: (4 + 0.8) / 60 + (5 + 0.8) / 40 = 0.08 + 0.145 = 0.225
    # c: (10 + 4) / 60 + (2 + 4) / 40 = 0.2333... + 0.15 = 0.38333...
    # f: 5 / 60 + 5 / 40 = 0.208333...
    got = suggest_for_cart(["a", "b"], set(), INDEX, open_rules(3, prior_baskets=10))
    assert skus(got) == ["c", "d", "f"]
    assert [item.score for item in got] == pytest.approx([0.38333333, 0.225, 0.20833333])


@pytest.mark.parametrize("cart", [["a", "b"], ["b", "a"], ["a", "b", "a", "b"]])
def test_cart_order_and_repeats_change_nothing(cart: list[str]) -> None:
    """Each distinct cart item weighs the same, whatever the order or repeats."""
    rules = SuggestionRules()
    assert suggest_for_cart(cart, set(), INDEX, rules) == suggest_for_cart(
        ["a", "b"], set(), INDEX, rules
    )


@pytest.mark.parametrize("limit", [1, 3, 10])
def test_limit_cuts_the_ranked_list(limit: int) -> None:
    """The first `limit` items of the full ranking, never more."""
    full = suggest_for_cart(["a", "b"], set(), INDEX, SuggestionRules(limit=50))
    assert suggest_for_cart(["a", "b"], set(), INDEX, SuggestionRules(limit=limit)) == full[:limit]


def test_suggest_never_offers_cart_or_excluded_items() -> None:
    """No suggestion, co-purchase or popular, is in the cart or excluded, whatever the limit."""
    for cart in (["a"], ["b"], ["a", "b"], ["b", "d"], ["zzz"], []):
        for excluded in (set(), {"c"}, {"d", "h"}, {"f", "c"}):
            for rules in (open_rules(50), open_rules(50, 20), SuggestionRules(limit=50)):
                got = skus(suggest_for_cart(cart, excluded, INDEX, rules))
                assert set(got).isdisjoint(set(cart) | excluded), (cart, excluded)
                assert len(got) == len(set(got))


def test_popular_items_fill_the_list_after_excluded_co_purchases() -> None:
    """With most co-purchases owned, popular items fill the list up to the limit."""
    # Default rules (beta 300), cart [a], c, d, e owned: weights 1/320, prior 300/320.
    # f 0.9375 * 0.5 = 0.46875, b 0.09375, g 0.009375, h 2/320 = 0.00625.
    got = suggest_for_cart(["a"], {"c", "d", "e"}, INDEX, SuggestionRules())
    assert got == [
        popular("f", pytest.approx(0.46875)),  # type: ignore[arg-type]
        popular("b", pytest.approx(0.09375)),  # type: ignore[arg-type]
        popular("g", pytest.approx(0.009375)),  # type: ignore[arg-type]
        co("h", pytest.approx(0.00625), 2, 0.1, 5.0, "a"),  # type: ignore[arg-type]
    ]


@pytest.mark.parametrize(
    ("cart", "excluded", "limit", "expected"),
    [
        # An item with no neighbours, an unknown one, an empty cart: popularity order.
        (["g"], set(), 3, ["f", "c", "a"]),
        (["zzz"], set(), 2, ["f", "c"]),
        ([], set(), 1, ["f"]),
        (["c"], {"f"}, 2, ["a", "b"]),
        # More room than items: every popular item not excluded, once.
        (["g"], set(), 20, ["f", "c", "a", "b", "d", "e"]),
    ],
)
def test_without_evidence_popular_items_stand_in(
    cart: list[str], excluded: set[str], limit: int, expected: list[str]
) -> None:
    """With no co-purchase evidence the ranking is popularity, scored p_j, marked popular."""
    for rules in (SuggestionRules(limit=limit), open_rules(limit)):
        got = suggest_for_cart(cart, excluded, INDEX, rules)
        assert skus(got) == expected
        assert all(item == popular(item.sku, item.score) for item in got)
    # The unknown item and the empty cart leave the prior alone: score = p_j exactly.
    if cart in (["zzz"], []):
        got = suggest_for_cart(cart, excluded, INDEX, SuggestionRules(limit=limit))
        assert [item.score for item in got] == [N_I[s] / 100 for s in expected]


def test_popular_candidates_are_bounded_by_the_index() -> None:
    """Popular candidates come from the index's POPULAR_KEPT list, never a scan of all items."""
    index = NeighborIndex()
    for n in range(NeighborIndex.POPULAR_KEPT + 50):
        index.apply(
            {"sku": f"s{n:03d}", "baskets": 1000 - n, "total_baskets": 5000, "neighbors": []}
        )
    got = suggest_for_cart([], set(), index, SuggestionRules(limit=500))
    assert skus(got) == [f"s{n:03d}" for n in range(NeighborIndex.POPULAR_KEPT)]


def reference_suggest(
    cart: list[str], excluded: set[str], index: NeighborIndex, rules: SuggestionRules
) -> list[SuggestedItem]:
    """The ranking as the module docstring defines it, slowly: every candidate scored.

    Candidates: the qualifying neighbours and all POPULAR_KEPT popular items.
    """
    in_cart = list(dict.fromkeys(cart))
    left_out = set(in_cart) | excluded
    total = index.total_baskets()
    beta = rules.prior_baskets
    terms = [(index.baskets(a), dict(index.neighbors(a)), a) for a in in_cart]
    best: dict[str, SuggestedItem] = {}
    for n_a, row, a in terms:
        for j, n_aj in row.items():
            conf = n_aj / n_a if n_a else 0.0
            lifted = n_aj * total / (n_a * max(index.baskets(j), n_aj)) if n_a else 0.0
            qualifies = (
                j not in left_out
                and n_aj >= rules.min_count
                and conf >= rules.min_confidence
                and lifted >= rules.min_lift
            )
            if qualifies and (j not in best or conf > best[j].confidence):
                best[j] = SuggestedItem(j, 0.0, n_aj, n_aj / total, conf, lifted, a, "co_purchase")
    candidates = set(best) | {s for s, _ in index.popular(index.POPULAR_KEPT) if s not in left_out}

    def score(j: str) -> float:
        p_j = index.baskets(j) / total if total else 0.0
        if not terms:
            return p_j
        return sum(
            (row.get(j, 0) + beta * p_j) / (n_a + beta) if n_a + beta > 0 else p_j
            for n_a, row, _ in terms
        ) / len(terms)

    def key(j: str) -> tuple[int, float, str]:
        return (-round(score(j) * SCORE_SCALE), -index.baskets(j), j)

    ranked = sorted(candidates, key=key)[: rules.limit]
    return [
        replace(best[j], score=score(j))
        if j in best
        else SuggestedItem(
            j, score(j), index.baskets(j), index.baskets(j) / total, 0, 0, None, "popular"
        )
        for j in ranked
    ]


@pytest.mark.parametrize("seed", range(200))
def test_suggest_matches_a_reference_that_scores_every_candidate(seed: int) -> None:
    """Scoring only the popular items that can make the list changes nothing.

    Random indexes with more items than POPULAR_KEPT, neighbour rows that
    overlap the popular items, random carts, exclusions, limits and priors.
    """
    rng = random.Random(seed)
    items = [f"i{n:03d}" for n in range(NeighborIndex.POPULAR_KEPT + 60)]
    index = NeighborIndex()
    n_i = {sku: rng.choice([rng.randint(1, 40), rng.randint(1, 400)]) for sku in items}
    for sku in items:
        others = rng.sample(items, 10)
        row = [{"sku": j, "count": rng.randint(1, n_i[sku])} for j in others if j != sku]
        index.apply({"sku": sku, "baskets": n_i[sku], "total_baskets": 5000, "neighbors": row})
    for _ in range(20):
        cart = rng.sample(items, rng.randint(0, 4))
        excluded = set(rng.sample(items, rng.randint(0, 30)))
        rules = SuggestionRules(
            limit=rng.choice([1, 3, 10, 25]),
            min_count=rng.choice([0, 2, 10]),
            min_confidence=rng.choice([0.0, 0.02, 0.2]),
            min_lift=rng.choice([0.0, 1.0, 3.0]),
            prior_baskets=rng.choice([0.0, 30.0, 300.0]),
        )
        want = reference_suggest(cart, excluded, index, rules)
        got = suggest_for_cart(cart, excluded, index, rules)
        assert skus(got) == skus(want)
        assert got == [replace(w, score=pytest.approx(w.score)) for w in want]


def test_scores_equal_in_exact_arithmetic_tie_by_popularity() -> None:
    """7/12 summed as 1/4 + 1/3 and as 1/2 + 1/12 differs in its last bit: still a tie.

    Cart a, b (2 and 6 baskets), no prior: x is with a in 1 and with b in 4,
    y with a in 2 and with b in 1; x is in more baskets (9 against 3), so first.
    """
    index = NeighborIndex()
    rows = {"a": (2, {"x": 1, "y": 2}), "b": (6, {"x": 4, "y": 1}), "x": (9, {}), "y": (3, {})}
    for sku, (n, row) in rows.items():
        neighbors = [{"sku": j, "count": c} for j, c in row.items()]
        index.apply({"sku": sku, "baskets": n, "total_baskets": 100, "neighbors": neighbors})
    assert 0.25 + 4 / 6 / 2 != 0.5 + 1 / 6 / 2  # the sums the ranking makes, bit for bit
    got = suggest_for_cart(["a", "b"], set(), index, open_rules(2))
    assert skus(got) == ["x", "y"]
    assert [item.score for item in got] == [pytest.approx(7 / 12)] * 2


def test_empty_index_suggests_nothing() -> None:
    """An index with no records has neither neighbours nor popular items."""
    assert suggest_for_cart(["a"], set(), NeighborIndex(), open_rules(5)) == []
    assert suggest_for_cart(["a"], set(), NeighborIndex(), SuggestionRules()) == []


def test_popular_score_is_zero_without_total() -> None:
    """With N = 0 the popularity prior (n_j / N) is 0."""
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
        prior_baskets=300.0,
    )


@pytest.mark.parametrize(
    ("min_count", "min_confidence", "min_lift", "qualifying"),
    [
        # All pass.
        (0, 0.0, 0.0, ["c", "d", "e", "h"]),
        (2, 0.1, 1.25, ["c", "d", "e", "h"]),  # each threshold met exactly still qualifies
        # Count below: e and h (2 < 3) are out.
        (3, 0.0, 0.0, ["c", "d"]),
        (4, 0.0, 0.0, ["c", "d"]),  # 4 is not below 4
        (5, 0.0, 0.0, ["c"]),  # 4 < 5
        # Confidence below: e and h (0.1 < 0.2) are out; then d (0.2 < 0.21).
        (0, 0.2, 0.0, ["c", "d"]),
        (0, 0.21, 0.0, ["c"]),
        # Lift below: c (1.25 < 2) is out; then e (2.0 < 2.5); then d (2.5 < 2.6).
        (0, 0.0, 2.0, ["d", "e", "h"]),
        (0, 0.0, 2.5, ["d", "h"]),
        (0, 0.0, 2.6, ["h"]),
        # The defaults (2, 0.02, 1.0) let all four through.
        (2, 0.02, 1.0, ["c", "d", "e", "h"]),
    ],
)
def test_thresholds_decide_what_is_a_co_purchase(
    min_count: float, min_confidence: float, min_lift: float, qualifying: list[str]
) -> None:
    """A pair is a co-purchase only with count, confidence and lift each at least its threshold.

    A neighbour that fails stays out unless it is popular, then marked popular with its own
    figures (h, with no row, is not popular: it is gone).
    """
    rules = SuggestionRules(
        min_count=min_count, min_confidence=min_confidence, min_lift=min_lift, prior_baskets=20
    )
    got = suggest_for_cart(["a"], set(), INDEX, rules)
    assert sorted(i.sku for i in got if i.source == "co_purchase") == qualifying
    assert sorted(skus(got)) == sorted({"b", "c", "d", "e", "f", "g"} | set(qualifying))
    for item in got:
        if item.source == "popular":
            assert item == popular(item.sku, item.score)


def test_a_pair_below_the_thresholds_still_counts_as_evidence() -> None:
    """The score uses every published count; thresholds only decide the co_purchase mark."""
    # Default rules (beta 300), cart [b] (n_b 10): b -> c has lift 0.5 < 1, so c is popular,
    # not a co-purchase, but its count still adds: c (2 + 300 * 0.4) / 310 = 122 / 310.
    # f (0 + 150) / 310, a (3 + 60) / 310, d (5 + 24) / 310.
    got = suggest_for_cart(["b"], set(), INDEX, SuggestionRules(limit=4))
    assert got == [
        popular("f", pytest.approx(150 / 310)),  # type: ignore[arg-type]
        popular("c", pytest.approx(122 / 310)),  # type: ignore[arg-type]
        co("a", pytest.approx(63 / 310), 3, 0.3, 1.5, "b"),  # type: ignore[arg-type]
        co("d", pytest.approx(29 / 310), 5, 0.5, 6.25, "b"),  # type: ignore[arg-type]
    ]


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
    rules = SuggestionRules(min_count=5, prior_baskets=0)
    assert suggest_for_cart(["a"], set(), index, rules, at) == [
        SuggestedItem("c", 0.5, 5.0, 0.1, 0.5, 2.5, "a", "co_purchase")
    ]
    # 5 < 6: not a co-purchase; c is popular (n_c / N = 10 / 50), scored by the same evidence.
    assert suggest_for_cart(["a"], set(), index, replace(rules, min_count=6), at) == [
        SuggestedItem("c", 0.5, 10.0, 0.2, 0.0, 0.0, None, "popular")
    ]
    # With a prior of 10 decayed baskets: (5 + 10 * 0.2) / (10 + 10) = 0.35.
    got = suggest_for_cart(["a"], set(), index, replace(rules, prior_baskets=10), at)
    assert [i.score for i in got] == pytest.approx([0.35])
    # Read at T0 the same pair counts 10 and qualifies at min_count 6.
    assert [i.count for i in suggest_for_cart(["a"], set(), index, rules, T0)] == [10.0]


# --- marketing_offers ----------------------------------------------------------------------------

CO_C = co("c", 0.45, 10, 0.5, 1.25, "a")
POP_F = popular("f", 0.25)
POP_B = popular("b", 0.05)


@pytest.mark.parametrize(
    ("items", "new_customer", "expected"),
    [
        # Co-purchases only, in order, for anyone.
        ([POP_F, CO_C, POP_B], False, [CO_C]),
        ([POP_F, CO_C, POP_B], True, [CO_C]),
        # No co-purchase: a known customer is pushed nothing ...
        ([POP_F, POP_B], False, []),
        # ... a new customer gets the popular items, as ranked.
        ([POP_F, POP_B], True, [POP_F, POP_B]),
        ([], True, []),
        ([], False, []),
    ],
)
def test_marketing_offers(
    items: list[SuggestedItem], new_customer: bool, expected: list[SuggestedItem]
) -> None:
    """Triggers carry co-purchases; best-sellers only for a new customer with none."""
    assert marketing_offers(items, new_customer) == expected


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
    got = suggest_for_cart(["a", "b"], excluded, INDEX, open_rules(), T0 + HOUR)
    assert skus(got) == ["d", "h", "f", "g"]


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


def test_record_shown_drops_items_whose_window_has_passed() -> None:
    """An item whose cooldown window has passed is forgotten: shown again, it starts anew."""
    shown = {
        "old": (3, T0 - 30 * HOUR),  # window passed 6 hours ago
        "edge": (1, T0 - 24 * HOUR),  # passes at T0 exactly
        "open": (3, T0 - 23 * HOUR),  # still held back
        "later": (1, T0 + HOUR),  # shown after `at` (events out of order): kept
    }
    got = record_shown(shown, [shown_item("new")], T0, RULES)
    assert got == {"open": (3, T0 - 23 * HOUR), "later": (1, T0 + HOUR), "new": (1, T0)}
    assert held_back(got, T0, RULES) == held_back(shown, T0, RULES) == {"open"}
    again = record_shown(shown, [shown_item("old")], T0, RULES)
    assert again["old"] == (1, T0)  # as if never shown


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


@given(kind=st.text(max_size=20), source=st.text(max_size=60))
def test_output_id_is_uuid5_of_its_name(kind: str, source: str) -> None:
    """The id built without uuid.UUID is the string uuid5 gives, for any text (UTF-8 names)."""
    name = f"cross-sell:{kind}:{source}"
    assert output_id(kind, source) == str(uuid.uuid5(uuid.NAMESPACE_URL, name))


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


C = co("c", 0.7, 10, 0.5, 1.25, "a")
E = co("e", 0.1, 2, 0.1, 2.0, "a")


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
