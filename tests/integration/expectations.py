"""Brute-force oracles: what the service must publish, computed the slow, obvious way."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Collection
from itertools import combinations
from typing import Any

import orjson

from stream.domain.suggestions import SuggestionRules


def brute_force(orders: list[dict[str, Any]]) -> tuple[Counter[str], Counter[tuple[str, str]]]:
    """n_i and n_ij (both orders of each pair) by counting every basket."""
    n_i: Counter[str] = Counter()
    n_ij: Counter[tuple[str, str]] = Counter()
    for order in orders:
        basket = sorted({line["sku"] for line in order["items"]})
        n_i.update(basket)
        for a, b in combinations(basket, 2):
            n_ij[(a, b)] += 1
            n_ij[(b, a)] += 1
    return n_i, n_ij


def latest_by_key(records: list[Any]) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        latest[record.key.decode()] = orjson.loads(record.value)
    return latest


def exact_neighbors(orders: list[dict[str, Any]]) -> Callable[[list[Any]], bool]:
    """True once the latest record of every item equals brute force, ratios included."""
    n_i, n_ij = brute_force(orders)
    total = len(orders)

    def holds(records: list[Any]) -> bool:
        latest = latest_by_key(records)
        if set(latest) != set(n_i):
            return False
        for sku, record in latest.items():
            expected = {j: c for (i, j), c in n_ij.items() if i == sku}
            published = {n["sku"]: n for n in record["neighbors"]}
            if record["baskets"] != n_i[sku] or record["total_baskets"] != total:
                return False
            if {j: n["count"] for j, n in published.items()} != expected:
                return False
            for j, n in published.items():
                exact = (
                    expected[j] / total,
                    expected[j] / n_i[sku],
                    expected[j] * total / (n_i[sku] * n_i[j]),
                )
                got = (n["support"], n["confidence"], n["lift"])
                if not all(
                    math.isclose(g, e, rel_tol=1e-12) for g, e in zip(got, exact, strict=True)
                ):
                    return False
        return True

    return holds


def expected_ranking(
    orders: list[dict[str, Any]],
    cart: list[str],
    owned: Collection[str] = (),
    rules: SuggestionRules | None = None,
) -> dict[str, float]:
    """SKU -> score for a cart, by the documented rules, from brute-force counts (best first)."""
    rules = rules or SuggestionRules()
    n_i, n_ij = brute_force(orders)
    total = len(orders)

    def qualifies(a: str, j: str) -> bool:
        count = n_ij[(a, j)]
        return (
            count >= rules.min_count
            and count / n_i[a] >= rules.min_confidence
            and count * total / (n_i[a] * n_i[j]) >= rules.min_lift
        )

    candidates = {j for j in n_i if j not in cart and j not in owned}
    scores = {
        j: sum(n_ij[(c, j)] / n_i[c] for c in cart if qualifies(c, j))
        for j in candidates
        if any(qualifies(c, j) for c in cart)
    }
    ranked = sorted(scores, key=lambda j: (-scores[j], j))[: rules.limit]
    return {j: scores[j] for j in ranked}
