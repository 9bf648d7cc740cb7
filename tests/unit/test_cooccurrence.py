"""stream.domain.cooccurrence: baskets, pair counts, ratios, neighbours and the read model."""

from __future__ import annotations

import random
from collections import Counter
from itertools import permutations
from typing import Any

import pytest

from stream.domain.cooccurrence import (
    MAX_BASKET_ITEMS,
    Basket,
    ItemRow,
    Neighbor,
    NeighborIndex,
    apply_basket,
    basket_items,
    confidence,
    lift,
    neighbors_record,
    support,
    top_neighbors,
)

SKUS_60 = [f"s{n:02d}" for n in range(60)]


def basket(items: tuple[str, ...], source: int = 0, offset: int = 0, ts: float = 100.0) -> Basket:
    return Basket(order_id=f"o-{source}-{offset}", items=items, ts=ts, source=source, offset=offset)


def record(sku: str, baskets: int, total: int, neighbors: dict[str, int]) -> dict[str, Any]:
    """An `item-neighbors` record as NeighborIndex.apply reads it."""
    return {
        "sku": sku,
        "baskets": baskets,
        "total_baskets": total,
        "neighbors": [{"sku": j, "count": n} for j, n in neighbors.items()],
    }


# --- basket_items ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("skus", "expected"),
    [
        ([], ()),
        (["a"], ("a",)),
        (["b", "a", "b", "c", "a"], ("b", "a", "c")),
        (["a", "a", "a"], ("a",)),
        # 60 distinct SKUs: the first 50 are kept.
        (SKUS_60, tuple(SKUS_60[:50])),
        # Repeats do not use up the cap: "x" once, then 49 of the 60 distinct ones.
        (["x"] * 10 + SKUS_60, ("x", *SKUS_60[:49])),
        # Exactly 50 distinct SKUs fit.
        (SKUS_60[:50] + SKUS_60[:50], tuple(SKUS_60[:50])),
    ],
)
def test_basket_items(skus: list[str], expected: tuple[str, ...]) -> None:
    """basket_items keeps distinct SKUs in first-seen order, at most MAX_BASKET_ITEMS."""
    assert MAX_BASKET_ITEMS == 50
    assert basket_items(skus) == expected


def test_basket_items_accepts_any_iterable() -> None:
    """basket_items reads a one-shot iterator the same as a list."""
    assert basket_items(iter(["b", "a", "b"])) == ("b", "a")


# --- the ratios ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_ij", "total", "expected"),
    [
        (3, 10, 0.3),  # 3 / 10
        (10, 10, 1.0),  # 10 / 10
        (0, 10, 0.0),  # 0 / 10
        (3, 0, 0.0),  # N = 0: defined as 0
        (1, 4, 0.25),  # 1 / 4
    ],
)
def test_support(n_ij: int, total: int, expected: float) -> None:
    """support = n_ij / N, 0 when N is 0."""
    assert support(n_ij, total) == expected


@pytest.mark.parametrize(
    ("n_ij", "n_i", "expected"),
    [
        (2, 4, 0.5),  # 2 / 4
        (4, 4, 1.0),  # 4 / 4
        (0, 4, 0.0),  # 0 / 4
        (2, 0, 0.0),  # n_i = 0: defined as 0
        (3, 8, 0.375),  # 3 / 8
    ],
)
def test_confidence(n_ij: int, n_i: int, expected: float) -> None:
    """confidence = n_ij / n_i, 0 when n_i is 0."""
    assert confidence(n_ij, n_i) == expected


@pytest.mark.parametrize(
    ("n_ij", "n_i", "n_j", "total", "expected"),
    [
        (2, 4, 5, 10, 1.0),  # 2*10/(4*5) = 20/20 = 1.0: independent
        (3, 4, 5, 20, 3.0),  # 3*20/(4*5) = 60/20 = 3.0
        (1, 4, 5, 10, 0.5),  # 1*10/(4*5) = 10/20 = 0.5
        (6, 10, 6, 100, 10.0),  # 6*100/(10*6) = 600/60 = 10.0
        (0, 4, 5, 10, 0.0),  # 0*10/(4*5) = 0
        (1, 0, 5, 10, 0.0),  # n_i = 0: denominator 0 -> 0
        (1, 4, 0, 10, 0.0),  # n_j = 0: denominator 0 -> 0
        (1, 0, 0, 0, 0.0),  # everything 0 -> 0
    ],
)
def test_lift(n_ij: int, n_i: int, n_j: int, total: int, expected: float) -> None:
    """lift = n_ij * N / (n_i * n_j), 0 when n_i * n_j is 0."""
    assert lift(n_ij, n_i, n_j, total) == expected


# --- apply_basket ----------------------------------------------------------------------------


def test_apply_basket_to_a_new_row() -> None:
    """The first basket gives n_i = 1, n_ij = 1 for every other item, and records its offset."""
    row, changed = apply_basket(None, "a", basket(("a", "b", "c"), source=2, offset=7, ts=50.0))
    assert changed is True
    assert row == ItemRow(baskets=1, pairs={"b": 1, "c": 1}, applied={2: 7}, last_ts=50.0)


def test_apply_basket_counts_n_i_and_n_ij() -> None:
    """Three baskets with a: n_a = 3, n_ab = 2 (1st, 2nd), n_ac = 2 (1st, 3rd), n_ad = 1."""
    row = None
    for offset, items in enumerate([("a", "b", "c"), ("b", "a"), ("a", "c", "d")]):
        row, changed = apply_basket(row, "a", basket(items, offset=offset))
        assert changed is True
    assert row is not None
    assert row.baskets == 3
    assert row.pairs == {"b": 2, "c": 2, "d": 1}
    assert row.applied == {0: 2}


def test_apply_basket_single_item_basket() -> None:
    """A basket of one item counts n_i and no pair."""
    row, changed = apply_basket(None, "a", basket(("a",)))
    assert (row.baskets, dict(row.pairs), changed) == (1, {}, True)


def test_apply_basket_does_not_mutate_the_old_row() -> None:
    """apply_basket returns a new row and leaves the given one as it was."""
    old = ItemRow(baskets=1, pairs={"b": 1}, applied={0: 0}, last_ts=10.0)
    new, _ = apply_basket(old, "a", basket(("a", "b"), offset=1))
    assert old == ItemRow(baskets=1, pairs={"b": 1}, applied={0: 0}, last_ts=10.0)
    assert new.pairs == {"b": 2}


@pytest.mark.parametrize(
    ("source", "offset", "applied"),
    [
        (0, 5, None),  # the same record redelivered
        (0, 4, None),  # an older record of the same partition
        (0, 0, None),
        (0, 6, {0: 6}),  # the next record of the same partition
        (1, 5, {0: 5, 1: 5}),  # the same offset in another source partition
        (1, 0, {0: 5, 1: 0}),  # a first record from another source partition
    ],
)
def test_apply_basket_redelivery(source: int, offset: int, applied: dict[int, int] | None) -> None:
    """A basket at or below the applied offset of its source partition changes nothing."""
    row, _ = apply_basket(None, "a", basket(("a", "b"), source=0, offset=5))
    after, changed = apply_basket(row, "a", basket(("a", "b"), source=source, offset=offset))
    if applied is None:
        assert changed is False
        assert after is row
    else:
        # Counted: n_a = 1 + 1 = 2, n_ab = 1 + 1 = 2.
        assert changed is True
        assert (after.baskets, after.pairs, after.applied) == (2, {"b": 2}, applied)


def test_apply_basket_keeps_one_offset_per_source() -> None:
    """applied holds the highest offset per source partition, one entry each."""
    row = None
    for source, offset in [(0, 1), (1, 1), (0, 3), (2, 0), (1, 4)]:
        row, _ = apply_basket(row, "a", basket(("a",), source=source, offset=offset))
    assert row is not None
    assert row.applied == {0: 3, 1: 4, 2: 0}
    assert row.baskets == 5


def test_apply_basket_last_ts_is_the_latest_event_time() -> None:
    """last_ts = max of the baskets' ts, even when an older order comes later."""
    row, _ = apply_basket(None, "a", basket(("a",), offset=0, ts=200.0))
    row, _ = apply_basket(row, "a", basket(("a",), offset=1, ts=150.0))
    assert row.last_ts == 200.0
    row, _ = apply_basket(row, "a", basket(("a",), offset=2, ts=250.0))
    assert row.last_ts == 250.0


def test_apply_basket_equals_brute_force_counts() -> None:
    """Rows built by apply_basket equal n_i and n_ij counted by brute force over 30 baskets."""
    rng = random.Random(20261123)
    catalogue = ["a", "b", "c", "d", "e", "f", "g", "h"]
    raw = [[rng.choice(catalogue) for _ in range(rng.randint(1, 6))] for _ in range(30)]
    # Three source partitions, offsets increasing within each.
    baskets = [
        Basket(order_id=f"o{n}", items=basket_items(skus), ts=float(n), source=n % 3, offset=n // 3)
        for n, skus in enumerate(raw)
    ]
    rows: dict[str, ItemRow] = {}
    for b in baskets:
        for sku in b.items:
            rows[sku], changed = apply_basket(rows.get(sku), sku, b)
            assert changed is True
    # Redelivering every basket afterwards changes nothing.
    for b in baskets:
        for sku in b.items:
            assert apply_basket(rows[sku], sku, b) == (rows[sku], False)

    n_i = Counter(sku for skus in raw for sku in set(skus))
    n_ij = Counter(pair for skus in raw for pair in permutations(set(skus), 2))
    assert {sku: row.baskets for sku, row in rows.items()} == dict(n_i)
    for i, row in rows.items():
        assert row.pairs == {j: n for (a, j), n in n_ij.items() if a == i}, i
    assert sum(n_i.values()) > 30  # the seeded baskets do hold several items each


@pytest.mark.parametrize(
    "items",
    [("a", "b"), ("x", "y", "z"), ()],
)
def test_basket_json_round_trip(items: tuple[str, ...]) -> None:
    """Basket.from_json(to_json()) gives back the same basket."""
    b = Basket(order_id="o1", items=items, ts=12.5, source=3, offset=99)
    assert Basket.from_json(b.to_json()) == b


def test_item_row_json_round_trip() -> None:
    """ItemRow.from_json(to_json()) gives back int partition keys and counts."""
    row = ItemRow(baskets=4, pairs={"b": 2, "c": 1}, applied={0: 10, 3: 2}, last_ts=99.5)
    assert row.to_json()["applied"] == {"0": 10, "3": 2}
    assert ItemRow.from_json(row.to_json()) == row


# --- top_neighbors and neighbors_record -----------------------------------------------------

# n_a = 10 over N = 100 baskets; n_ad = 6, n_ab = n_ac = 4, n_a,a2 = 2.
ROW = ItemRow(baskets=10, pairs={"b": 4, "c": 4, "a2": 2, "d": 6}, applied={0: 9}, last_ts=1.0)
N_J = {"b": 20, "c": 8, "d": 6, "a2": 1}
# Expected, count desc then SKU asc (b before c):
#   d : support 6/100 = 0.06, confidence 6/10 = 0.6, lift 6*100/(10*6)  = 10.0
#   b : support 4/100 = 0.04, confidence 4/10 = 0.4, lift 4*100/(10*20) = 2.0
#   c : support 4/100 = 0.04, confidence 4/10 = 0.4, lift 4*100/(10*8)  = 5.0
#   a2: support 2/100 = 0.02, confidence 2/10 = 0.2, n_j = max(1, 2) = 2:
#       lift 2*100/(10*2) = 10.0
EXPECTED = [
    Neighbor("d", 6, 0.06, 0.6, 10.0),
    Neighbor("b", 4, 0.04, 0.4, 2.0),
    Neighbor("c", 4, 0.04, 0.4, 5.0),
    Neighbor("a2", 2, 0.02, 0.2, 10.0),
]


@pytest.mark.parametrize(
    ("k", "expected"),
    [(0, []), (1, EXPECTED[:1]), (3, EXPECTED[:3]), (4, EXPECTED), (10, EXPECTED)],
)
def test_top_neighbors(k: int, expected: list[Neighbor]) -> None:
    """top_neighbors ranks by count desc, SKU asc, keeps k, and computes the three ratios."""
    assert top_neighbors(ROW, 100, lambda sku: N_J.get(sku, 0), k) == expected


def test_top_neighbors_floors_unknown_n_j_at_n_ij() -> None:
    """An unknown neighbour (n_j = 0) is taken as n_j = n_ij: lift 6*100/(10*6) = 10.0."""
    got = top_neighbors(ROW, 100, lambda sku: 0, 4)
    # b: 4*100/(10*4) = 10.0; c: the same; a2: 2*100/(10*2) = 10.0.
    assert [n.lift for n in got] == [10.0, 10.0, 10.0, 10.0]


def test_top_neighbors_of_an_empty_row() -> None:
    """A row without pairs has no neighbours."""
    assert top_neighbors(ItemRow(baskets=3), 10, lambda sku: 1, 5) == []


def test_neighbors_record() -> None:
    """neighbors_record carries sku, n_i, N and the top k neighbours as JSON objects."""
    rec = neighbors_record("a", ROW, 100, lambda sku: N_J.get(sku, 0), 2)
    assert rec == {
        "sku": "a",
        "baskets": 10,
        "total_baskets": 100,
        "neighbors": [
            {"sku": "d", "count": 6, "support": 0.06, "confidence": 0.6, "lift": 10.0},
            {"sku": "b", "count": 4, "support": 0.04, "confidence": 0.4, "lift": 2.0},
        ],
    }


# --- NeighborIndex ---------------------------------------------------------------------------


def test_index_apply_and_read() -> None:
    """apply stores n_i and the (sku, count) neighbours; unknown items read as 0 and ()."""
    index = NeighborIndex()
    index.apply(record("a", 5, 20, {"b": 3, "c": 1}))
    assert index.baskets("a") == 5
    assert index.neighbors("a") == (("b", 3), ("c", 1))
    assert index.total_baskets == 20
    assert index.baskets("zzz") == 0
    assert index.neighbors("zzz") == ()


def test_index_newer_record_replaces_the_row() -> None:
    """A newer record of an item replaces its row (neighbours are not merged)."""
    index = NeighborIndex()
    index.apply(record("a", 5, 20, {"b": 3, "c": 1}))
    index.apply(record("a", 6, 21, {"d": 2}))
    assert index.rows == {"a": (6, (("d", 2),))}


@pytest.mark.parametrize(
    ("totals", "expected"),
    [([20], 20), ([20, 7], 20), ([7, 20], 20), ([3, 9, 5], 9)],
)
def test_index_total_baskets_is_the_max_seen(totals: list[int], expected: int) -> None:
    """total_baskets keeps the largest N seen across records (N only grows)."""
    index = NeighborIndex()
    for n, total in enumerate(totals):
        index.apply(record(f"s{n}", 1, total, {}))
    assert index.total_baskets == expected


def test_index_popular_ordering() -> None:
    """popular(k) gives the k items in most baskets, most first, ties by SKU."""
    index = NeighborIndex()
    for sku, n in [("a", 5), ("d", 1), ("b", 7), ("c", 5)]:
        index.apply(record(sku, n, 20, {}))
    assert index.popular(3) == [("b", 7), ("a", 5), ("c", 5)]
    assert index.popular(10) == [("b", 7), ("a", 5), ("c", 5), ("d", 1)]
    assert index.popular(0) == []


def test_index_popular_tracks_updates() -> None:
    """An item whose n_i grows moves up, and is listed once with its latest n_i."""
    index = NeighborIndex()
    for sku, n in [("a", 5), ("b", 7), ("c", 6)]:
        index.apply(record(sku, n, 20, {}))
    index.apply(record("a", 9, 21, {}))
    assert index.popular(10) == [("a", 9), ("b", 7), ("c", 6)]
    index.apply(record("c", 9, 22, {}))
    # a and c tie at 9: a first by SKU.
    assert index.popular(10) == [("a", 9), ("c", 9), ("b", 7)]


def test_index_popular_keeps_at_most_popular_kept() -> None:
    """Only the POPULAR_KEPT most-bought items are kept; a grown item gets back in."""
    kept = NeighborIndex.POPULAR_KEPT
    assert kept == 100
    index = NeighborIndex()
    # Items p001 .. p101 with n_i = 1 .. 101.
    for n in range(1, kept + 2):
        index.apply(record(f"p{n:03d}", n, 500, {}))
    top = index.popular(kept + 50)
    assert len(top) == kept
    assert top[0] == ("p101", 101)
    assert top[-1] == ("p002", 2)  # p001 (n_i = 1) fell off
    # p001 grows to 300 and leads; p002 is pushed off instead.
    index.apply(record("p001", 300, 500, {}))
    top = index.popular(kept + 50)
    assert len(top) == kept
    assert top[0] == ("p001", 300)
    assert top[-1] == ("p003", 3)
    # An item below the smallest kept n_i stays out.
    index.apply(record("q", 2, 500, {}))
    assert ("q", 2) not in index.popular(kept)


def test_index_popular_ties_at_the_cap_are_broken_by_sku() -> None:
    """At the cap, a tie on n_i is broken by SKU whatever order the records came in."""
    kept = NeighborIndex.POPULAR_KEPT
    late = NeighborIndex()
    for n in range(1, kept + 1):
        late.apply(record(f"p{n:03d}", 1, 500, {}))
    late.apply(record("p000", 1, 500, {}))  # arrives last, sorts first
    early = NeighborIndex()
    early.apply(record("p000", 1, 500, {}))
    for n in range(1, kept + 1):
        early.apply(record(f"p{n:03d}", 1, 500, {}))
    # All 101 items have n_i = 1: the 100 kept are p000 .. p099 by SKU.
    expected = [(f"p{n:03d}", 1) for n in range(kept)]
    assert early.popular(kept) == expected
    assert late.popular(kept) == expected
