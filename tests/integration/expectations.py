"""Brute-force oracles: what the service must publish, computed the slow, obvious way."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Collection
from decimal import Decimal
from itertools import combinations
from typing import Any

import orjson

from stream.domain.cooccurrence import NeighborIndex
from stream.domain.suggestions import SCORE_SCALE, SuggestionRules


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


def customer_totals(events: list[dict[str, Any]]) -> dict[str, tuple[int, Decimal]]:
    """Per customer: (orders, net revenue) from the purchase events among `events`.

    Each order id and each refund's event id counts once.
    An order is worth the sum of its lines; a refund takes its `total` off
    (refunds here are never larger than what is left of their order).
    """
    totals: dict[str, tuple[int, Decimal]] = {}
    seen: set[str] = set()
    for event in events:
        if event["type"] not in ("order_completed", "order_refunded"):
            continue
        key = event["order_id"] if event["type"] == "order_completed" else event["event_id"]
        if key in seen:
            continue
        seen.add(key)
        count, revenue = totals.get(event["customer_id"], (0, Decimal(0)))
        if event["type"] == "order_completed":
            count += 1
            revenue += sum(Decimal(str(i["unit_price"])) * i["quantity"] for i in event["items"])
        else:
            revenue -= Decimal(str(event["total"]))
        totals[event["customer_id"]] = (count, revenue)
    return totals


def latest_totals(records: list[Any]) -> dict[str, tuple[int, Decimal]]:
    """Per customer: (orders, revenue) of the customer's latest customer-ltv record."""
    latest: dict[str, tuple[int, Decimal]] = {}
    for record in records:  # one customer's records are in one partition, in order
        value = orjson.loads(record.value)
        latest[value["customer_id"]] = (value["orders"], Decimal(str(value["revenue"])))
    return latest


def latest_by_key(records: list[Any]) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        latest[record.key.decode()] = orjson.loads(record.value)
    return latest


def neighbor_mismatches(orders: list[dict[str, Any]]) -> Callable[[list[Any]], list[str]]:
    """What the latest record of each item gets wrong against brute force (none: all exact)."""
    n_i, n_ij = brute_force(orders)
    total = len(orders)
    rows: dict[str, dict[str, int]] = {sku: {} for sku in n_i}
    for (i, j), count in n_ij.items():
        rows[i][j] = count

    def mismatches(records: list[Any]) -> list[str]:
        latest = latest_by_key(records)
        found = [f"missing {sku}" for sku in sorted(set(n_i) - set(latest))]
        found += [f"unexpected {sku}" for sku in sorted(set(latest) - set(n_i))]
        for sku, record in sorted(latest.items()):
            if sku not in n_i:
                continue
            expected = rows[sku]
            published = {n["sku"]: n for n in record["neighbors"]}
            counts = (record["baskets"], record["total_baskets"])
            if counts != (n_i[sku], total):
                found.append(f"{sku}: (n_i, N) = {counts}, expected {(n_i[sku], total)}")
            got_counts = {j: n["count"] for j, n in published.items()}
            if got_counts != expected:
                found.append(f"{sku}: n_ij {got_counts}, expected {expected}")
                continue
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
                    found.append(f"{sku}->{j}: (support, confidence, lift) {got}, expected {exact}")
        return found

    return mismatches


def exact_neighbors(orders: list[dict[str, Any]]) -> Callable[[list[Any]], bool]:
    """True once the latest record of every item equals brute force, ratios included."""
    mismatches = neighbor_mismatches(orders)
    return lambda records: not mismatches(records)


def expected_ranking(
    orders: list[dict[str, Any]],
    cart: list[str],
    owned: Collection[str] = (),
    rules: SuggestionRules | None = None,
    popular_kept: int = NeighborIndex.POPULAR_KEPT,
) -> dict[str, float]:
    """SKU -> score for a cart, by the documented rules, from brute-force counts (best first).

    What the worker sees: each item's `rules.limit` published neighbours (by count, ties by
    SKU) and the `popular_kept` most-bought items. score(j) = mean over the distinct cart
    items a of (n_aj + beta p_j) / (n_a + beta), n_aj = 0 when j is not published for a.
    Candidates: pairs that meet the thresholds, and the popular items; ties (to 1 /
    SCORE_SCALE, as the worker ranks) by n_j, then SKU.
    """
    rules = rules or SuggestionRules()
    n_i, n_ij = brute_force(orders)
    total = len(orders)
    beta = rules.prior_baskets
    rows: dict[str, list[tuple[str, int]]] = {}
    for (i, j), count in n_ij.items():
        rows.setdefault(i, []).append((j, count))
    published = {
        i: dict(sorted(row, key=lambda kv: (-kv[1], kv[0]))[: rules.limit])
        for i, row in rows.items()
    }
    in_cart = list(dict.fromkeys(cart))
    left_out = set(in_cart) | set(owned)

    def qualifies(a: str, j: str) -> bool:
        count = published.get(a, {}).get(j, 0)
        return count > 0 and meets_thresholds(count, n_i[a], n_i[j], total, rules)

    def score(j: str) -> float:
        p_j = n_i[j] / total
        if not in_cart:
            return p_j
        terms = [
            (published.get(a, {}).get(j, 0) + beta * p_j) / (n_i[a] + beta)
            if n_i[a] + beta > 0
            else p_j
            for a in in_cart
        ]
        return sum(terms) / len(in_cart)

    popular = sorted(n_i, key=lambda j: (-n_i[j], j))[:popular_kept]
    candidates = {j for a in in_cart for j in published.get(a, {}) if qualifies(a, j)}
    candidates |= set(popular)
    candidates -= left_out
    scores = {j: score(j) for j in candidates}
    ranked = sorted(scores, key=lambda j: (-round(scores[j] * SCORE_SCALE), -n_i[j], j))
    ranked = ranked[: rules.limit]
    return {j: scores[j] for j in ranked}


def co_purchases(
    orders: list[dict[str, Any]], cart: list[str], rules: SuggestionRules | None = None
) -> set[str]:
    """The items whose pair with some cart item meets the thresholds (brute force).

    For fixtures whose items have at most `rules.limit` neighbours (all published).
    """
    rules = rules or SuggestionRules()
    n_i, n_ij = brute_force(orders)
    total = len(orders)
    return {
        j
        for (a, j), count in n_ij.items()
        if a in cart and meets_thresholds(count, n_i[a], n_i[j], total, rules)
    }


def meets_thresholds(n_aj: int, n_a: int, n_j: int, total: int, rules: SuggestionRules) -> bool:
    """Whether the pair a -> j has the rules' minimum count, confidence and lift."""
    return (
        n_aj >= rules.min_count
        and n_aj / n_a >= rules.min_confidence
        and n_aj * total / (n_a * n_j) >= rules.min_lift
    )
