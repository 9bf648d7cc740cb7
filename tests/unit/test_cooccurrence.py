"""stream.domain.cooccurrence: baskets, pair counts, ratios, neighbours and the read model."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from itertools import permutations
from typing import Any

import pytest

from stream.domain.cooccurrence import (
    DEFAULT_CAPACITY,
    LANDMARK_HALF_LIVES,
    MAX_BASKET_ITEMS,
    NO_DECAY,
    ROUTED_BASKETS_MAX,
    Basket,
    BasketCount,
    BasketRouter,
    Decay,
    ItemRow,
    Neighbor,
    NeighborIndex,
    Number,
    Weighted,
    apply_basket,
    basket_items,
    confidence,
    count_basket,
    lift,
    neighbors_record,
    newer,
    routed_baskets,
    support,
    top_neighbors,
    total_of,
)
from stream.domain.suggestions import SuggestionRules, suggest_for_cart

SKUS_60 = [f"s{n:02d}" for n in range(60)]

DAY = 86_400.0
# With a half-life of 1 day a landmark spans 256 days: 256 * 86,400 = 22,118,400 s.
SPAN = 22_118_400.0
# A landmark boundary: 82 * 22,118,400 = 1,813,708,800 (2027-06-22T00:00:00Z).
B = 1_813_708_800.0
T0 = 1_795_425_300.0  # 2026-11-23T09:15:00Z
H1 = Decay(1.0)


def basket(items: tuple[str, ...], source: int = 0, offset: int = 0, ts: float = 100.0) -> Basket:
    return Basket(order_id=f"o-{source}-{offset}", items=items, ts=ts, source=source, offset=offset)


def record(
    sku: str,
    baskets: Number,
    total: Number,
    neighbors: Mapping[str, Number],
    as_of: float | None = None,
) -> dict[str, Any]:
    """An `item-neighbors` record as NeighborIndex.apply reads it."""
    rec: dict[str, Any] = {
        "sku": sku,
        "baskets": baskets,
        "total_baskets": total,
        "neighbors": [{"sku": j, "count": n} for j, n in neighbors.items()],
    }
    if as_of is not None:
        rec["as_of"] = as_of
    return rec


def known(values: Mapping[str, Number], landmark: float = 0.0) -> Callable[[str], Weighted | None]:
    """baskets_of for top_neighbors: n_j from `values`, None for an unknown item."""
    return lambda sku: Weighted(values[sku], landmark) if sku in values else None


def build_rows(
    baskets: Iterable[Basket], decay: Decay = NO_DECAY, capacity: int = DEFAULT_CAPACITY
) -> tuple[dict[str, ItemRow], BasketCount | None]:
    """Every item's row and N (one source partition), fed the baskets in the given order."""
    rows: dict[str, ItemRow] = {}
    count: BasketCount | None = None
    for b in baskets:
        count = count_basket(count, b.ts, b.offset, decay)
        for sku in b.items:
            rows[sku], _ = apply_basket(rows.get(sku), sku, b, decay, capacity)
    return rows, count


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


def by_first_letter(sku: str) -> int:
    """A partitioner for the tests: a SKU's partition is its first letter's (a 0, b 1, ...)."""
    return ord(sku[0]) - ord("a")


def test_a_batch_of_baskets_is_one_record_a_partition_each_basket_with_its_rows_there() -> None:
    """Every basket reaches the row of each of its items exactly once, on that row's partition."""
    router = BasketRouter(by_first_letter)
    orders = [
        Basket("o1", ("a1", "b1", "a2"), 10.0, source=2, offset=7),
        Basket("o2", ("b1", "c1"), 11.0, source=2, offset=8),
        Basket("o3", ("a1",), 12.0, source=5, offset=3),
    ]
    for order in orders:
        router.add(order)
    records = dict(router.take())
    assert router.take() == []  # nothing kept

    counted = {
        target: [(b.order_id, skus) for b, skus in routed_baskets(record, None)]
        for target, record in records.items()
    }
    assert counted == {
        0: [("o1", ("a1", "a2")), ("o3", ("a1",))],
        1: [("o1", ("b1",)), ("o2", ("b1",))],
        2: [("o2", ("c1",))],
    }
    # each record's baskets are the orders' baskets, whole: the rows count all their pairs
    assert [b for b, _ in routed_baskets(records[1], None)] == orders[:2]


def test_a_partitions_record_holds_at_most_the_baskets_a_record_may() -> None:
    """A record holds at most ROUTED_BASKETS_MAX baskets; the full ones are handed back with the
    rest, all at once (one sent from inside an order's handler lost the other orders' baskets
    when refused: only that order was dead-lettered)."""
    router = BasketRouter(by_first_letter)
    for n in range(ROUTED_BASKETS_MAX + 1):
        router.add(Basket(f"o{n}", ("a1", "b1"), float(n), source=0, offset=n))
    records = router.take()
    assert [(target, len(record["baskets"])) for target, record in records] == [
        (0, ROUTED_BASKETS_MAX),
        (1, ROUTED_BASKETS_MAX),
        (0, 1),
        (1, 1),
    ]
    assert [b.order_id for b, _ in routed_baskets(records[2][1], None)] == [
        f"o{ROUTED_BASKETS_MAX}"
    ]
    assert router.take() == []


def test_a_record_of_one_basket_keyed_by_its_sku_is_that_baskets_row() -> None:
    """Records as workers wrote them before (one an item and order), still in the topic."""
    b = Basket("o1", ("a1", "b1"), 10.0, source=1, offset=4)
    assert routed_baskets(b.to_json(), b"b1") == [(b, ("b1",))]
    with pytest.raises(ValueError, match="without its item key"):
        routed_baskets(b.to_json(), None)


def test_a_record_with_a_broken_basket_is_refused_whole() -> None:
    """Every basket is read before any is handed over, so the agent counts none of them."""
    good = {**Basket("o1", ("a1",), 10.0, source=1, offset=4).to_json(), "rows": ["a1"]}
    with pytest.raises(KeyError):
        routed_baskets({"baskets": [good, {"rows": ["a1"]}]}, None)


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
    assert top_neighbors(ROW, Weighted(100), known(N_J), k) == expected


@pytest.mark.parametrize(
    "baskets_of",
    [known({}), known(dict.fromkeys(N_J, 0))],
    ids=["unknown", "zero"],
)
def test_top_neighbors_floors_unknown_n_j_at_n_ij(
    baskets_of: Callable[[str], Weighted | None],
) -> None:
    """An unknown neighbour (None) or n_j = 0 is taken as n_j = n_ij: lift 6*100/(10*6) = 10.0."""
    got = top_neighbors(ROW, Weighted(100), baskets_of, 4)
    # b: 4*100/(10*4) = 10.0; c: the same; a2: 2*100/(10*2) = 10.0.
    assert [n.lift for n in got] == [10.0, 10.0, 10.0, 10.0]


def test_top_neighbors_of_an_empty_row() -> None:
    """A row without pairs has no neighbours."""
    assert top_neighbors(ItemRow(baskets=3), Weighted(10), known({"b": 1}), 5) == []


def test_top_neighbors_without_decay_keeps_int_counts() -> None:
    """Without decay the published counts are the row's ints, whatever as_of says."""
    got = top_neighbors(ROW, Weighted(100), known(N_J), 4, NO_DECAY, as_of=T0)
    assert [(n.sku, n.count) for n in got] == [("d", 6), ("b", 4), ("c", 4), ("a2", 2)]
    assert all(type(n.count) is int for n in got)


def test_top_neighbors_carries_space_saving_errors() -> None:
    """A neighbour's error comes with it; an exact one has error 0 and no "error" key."""
    row = ItemRow(baskets=5, pairs={"b": 3, "c": 2}, errors={"b": 1}, last_ts=1.0)
    # b: support 3/10 = 0.3, confidence 3/5 = 0.6, lift 3*10/(5*3) = 2.0;
    # c: support 2/10 = 0.2, confidence 2/5 = 0.4, lift 2*10/(5*4) = 1.0.
    got = top_neighbors(row, Weighted(10), known({"b": 3, "c": 4}), 2)
    assert got == [Neighbor("b", 3, 0.3, 0.6, 2.0, 1), Neighbor("c", 2, 0.2, 0.4, 1.0, 0)]
    assert [n.to_json().get("error") for n in got] == [1, None]


def test_neighbors_record() -> None:
    """neighbors_record carries sku, n_i, N, as_of (the row's last basket) and the top k."""
    rec = neighbors_record("a", ROW, Weighted(100), known(N_J), 2)
    assert rec == {
        "sku": "a",
        "baskets": 10,
        "total_baskets": 100,
        "as_of": 1.0,
        "neighbors": [
            {"sku": "d", "count": 6, "support": 0.06, "confidence": 0.6, "lift": 10.0},
            {"sku": "b", "count": 4, "support": 0.04, "confidence": 0.4, "lift": 2.0},
        ],
    }
    assert type(rec["baskets"]) is int
    assert type(rec["total_baskets"]) is int


def test_neighbors_record_publishes_counts_decayed_to_as_of() -> None:
    """With decay, n_i, N, counts and errors are published decayed to the row's last basket."""
    # H = 1 day, landmark B. Row a: baskets at B (a), B + 1 day (a, b), B + 2 days (a, b, c)
    # weigh 2^0 = 1, 2^1 = 2, 2^2 = 4: n_a = 7, n_ab = 2 + 4 = 6, n_ac = 4.
    # A later basket (c) at B + 3 days weighs 8: n_c = 4 + 8 = 12, N = 7 + 8 = 15.
    baskets = [
        basket(("a",), offset=0, ts=B),
        basket(("a", "b"), offset=1, ts=B + DAY),
        basket(("a", "b", "c"), offset=2, ts=B + 2 * DAY),
        basket(("c",), offset=3, ts=B + 3 * DAY),
    ]
    rows, count = build_rows(baskets, H1)
    assert count is not None
    row = rows["a"]
    assert (row.landmark, row.baskets, row.pairs) == (B, 7.0, {"b": 6.0, "c": 4.0})
    total = total_of([count], H1)
    assert total == Weighted(15.0, B)

    def baskets_of(sku: str) -> Weighted:
        return Weighted(rows[sku].baskets, rows[sku].landmark)

    rec = neighbors_record("a", row, total, baskets_of, 10, H1)
    # as_of = B + 2 days: everything relative to B is divided by 2^2 = 4.
    assert rec["sku"] == "a"
    assert rec["as_of"] == B + 2 * DAY
    assert rec["baskets"] == 1.75  # 7 / 4
    assert rec["total_baskets"] == 3.75  # 15 / 4
    b, c = rec["neighbors"]
    assert (b["sku"], b["count"], c["sku"], c["count"]) == ("b", 1.5, "c", 1.0)  # 6/4, 4/4
    # Ratios are time-free: support 6/15 = 0.4 and 4/15; confidence 6/7 and 4/7;
    # lift 6*15/(7*6) = 15/7 and 4*15/(7*12) = 5/7.
    assert b["support"] == pytest.approx(6 / 15, rel=1e-12)
    assert c["support"] == pytest.approx(4 / 15, rel=1e-12)
    assert b["confidence"] == pytest.approx(6 / 7, rel=1e-12)
    assert c["confidence"] == pytest.approx(4 / 7, rel=1e-12)
    assert b["lift"] == pytest.approx(15 / 7, rel=1e-12)
    assert c["lift"] == pytest.approx(5 / 7, rel=1e-12)
    # An error is published decayed too: 2 relative to B is 2/4 = 0.5 at as_of.
    with_error = ItemRow(7.0, {"b": 6.0}, {"b": 2.0}, {0: 2}, B, B + 2 * DAY)
    got = neighbors_record("a", with_error, total, baskets_of, 1, H1)["neighbors"]
    assert (got[0]["count"], got[0]["error"]) == (1.5, 0.5)


# --- NeighborIndex ---------------------------------------------------------------------------


def test_index_apply_and_read() -> None:
    """apply stores n_i and the (sku, count) neighbours; unknown items read as 0 and []."""
    index = NeighborIndex()
    index.apply(record("a", 5, 20, {"b": 3, "c": 1}))
    assert index.baskets("a") == 5
    assert list(index.neighbors("a")) == [("b", 3), ("c", 1)]
    assert index.total_baskets() == 20
    assert index.weighted("a") == Weighted(5, 0.0)
    assert index.baskets("zzz") == 0
    assert list(index.neighbors("zzz")) == []
    assert index.weighted("zzz") is None


def test_index_without_decay_ignores_as_of_and_time() -> None:
    """Without decay a record's as_of is not kept and `at` changes nothing."""
    index = NeighborIndex()
    index.apply(record("a", 5, 20, {"b": 3}, as_of=T0))
    assert index.rows == {"a": (5, 0.0, (("b", 3),))}
    assert index.weighted("a") == Weighted(5, 0.0)
    assert (index.baskets("a", T0), index.total_baskets(T0)) == (5, 20)
    assert list(index.neighbors("a", T0 + DAY)) == [("b", 3)]
    assert index.popular(1, T0) == [("a", 5)]


def test_index_newer_record_replaces_the_row() -> None:
    """A newer record of an item replaces its row (neighbours are not merged)."""
    index = NeighborIndex()
    index.apply(record("a", 5, 20, {"b": 3, "c": 1}))
    index.apply(record("a", 6, 21, {"d": 2}))
    assert index.rows == {"a": (6, 0.0, (("d", 2),))}


@pytest.mark.parametrize(
    ("totals", "expected"),
    [([20], 20), ([20, 7], 20), ([7, 20], 20), ([3, 9, 5], 9)],
)
def test_index_total_baskets_is_the_max_seen(totals: list[int], expected: int) -> None:
    """total_baskets keeps the largest N seen across records (N only grows)."""
    index = NeighborIndex()
    for n, total in enumerate(totals):
        index.apply(record(f"s{n}", 1, total, {}))
    assert index.total_baskets() == expected
    assert index.total == Weighted(expected, 0.0)


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


# --- Decay -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("decay", "enabled"),
    [(NO_DECAY, False), (Decay(0.0), False), (Decay(-1.0), False), (H1, True), (Decay(0.5), True)],
)
def test_decay_enabled(decay: Decay, enabled: bool) -> None:
    """Decay is on only for a half-life above 0; the default is off."""
    assert decay.enabled is enabled


def test_no_decay_is_the_default() -> None:
    """NO_DECAY is Decay() with a half-life of 0."""
    assert Decay() == NO_DECAY
    assert NO_DECAY.half_life_days == 0.0


@pytest.mark.parametrize(
    ("decay", "ts", "landmark"),
    [
        (H1, 0.0, 0.0),
        (H1, SPAN - 1, 0.0),  # 22,118,399 s: one second short of 256 days
        (H1, SPAN, SPAN),
        (H1, B, B),
        (H1, B - 1, B - SPAN),  # 1,813,708,799 -> 81 * 22,118,400 = 1,791,590,400
        (H1, T0, 1_791_590_400.0),  # 81 * 22,118,400 <= T0 < 82 * 22,118,400
        (H1, B + 255 * DAY, B),
        (H1, -1.0, -SPAN),  # floor(-1 / 22,118,400) = -1
        # H = 2 days: landmarks every 512 days; B + 128 days is 1,824,768,000 = 41.25 spans
        # of 44,236,800 -> 41 * 44,236,800 = 1,813,708,800 = B.
        (Decay(2.0), B + 128 * DAY, B),
        # H = 0.5 day: landmarks every 128 days = 11,059,200 s; B + 128 days is 165 of them.
        (Decay(0.5), B + 128 * DAY, B + 128 * DAY),
        (Decay(0.5), B + 128 * DAY - 1, B),
        (NO_DECAY, T0, 0.0),
        (NO_DECAY, -5.0, 0.0),
    ],
)
def test_decay_landmark_steps(decay: Decay, ts: float, landmark: float) -> None:
    """The landmark is ts floored to a multiple of LANDMARK_HALF_LIVES half-lives (0 if off)."""
    assert LANDMARK_HALF_LIVES == 256
    assert decay.landmark(ts) == landmark


@pytest.mark.parametrize(
    ("decay", "ts", "landmark", "weight"),
    [
        (H1, B + 2 * DAY, B, 4.0),  # 2^(2 days / 1 day)
        (H1, B, B, 1.0),  # 2^0
        (H1, B - DAY, B, 0.5),  # 2^-1
        (H1, B - 3 * DAY, B, 0.125),  # 2^-3
        (H1, B + 255 * DAY, B, 2.0**255),  # the largest weight before the next landmark
        (Decay(2.0), B + 6 * DAY, B, 8.0),  # 2^(6 / 2)
        (Decay(0.5), B + DAY, B, 4.0),  # 2^(1 / 0.5)
        (Decay(7.0), T0 + 7 * DAY, T0, 2.0),  # 2^(7 / 7), any reference time
    ],
)
def test_decay_weight(decay: Decay, ts: float, landmark: float, weight: float) -> None:
    """A basket at ts weighs 2^((ts - L) / H) relative to landmark L."""
    got = decay.weight(ts, landmark)
    assert got == weight
    assert type(got) is float


def test_decay_weight_half_a_half_life() -> None:
    """Half a half-life after the landmark a basket weighs 2^0.5 = sqrt(2)."""
    assert H1.weight(B + DAY / 2, B) == pytest.approx(math.sqrt(2), rel=1e-15)


@pytest.mark.parametrize("decay", [NO_DECAY, Decay(0.0)])
@pytest.mark.parametrize(("ts", "landmark"), [(T0, 0.0), (B + 9 * DAY, B), (0.0, 0.0)])
def test_decay_off_weighs_the_int_1(decay: Decay, ts: float, landmark: float) -> None:
    """Without decay every basket weighs the int 1, whatever its time."""
    got = decay.weight(ts, landmark)
    assert got == 1
    assert type(got) is int


@pytest.mark.parametrize(
    ("decay", "from_landmark", "to_landmark", "factor"),
    [
        (H1, B, B + 3 * DAY, 0.125),  # 2^((B - (B + 3)) / 1) = 2^-3
        (H1, B + DAY, B, 2.0),  # 2^1
        (H1, B - SPAN, B, 2.0**-256),  # one landmark step down
        (H1, B, B - SPAN, 2.0**256),
        (Decay(4.0), B, B + 2 * DAY, 2.0**-0.5),  # 2^(-2 / 4)
        (H1, B, B, 1.0),
        (NO_DECAY, 0.0, T0, 1.0),
        (NO_DECAY, B, B - SPAN, 1.0),
    ],
)
def test_decay_factor(
    decay: Decay, from_landmark: float, to_landmark: float, factor: float
) -> None:
    """factor(from, to) = 2^((from - to) / H) re-expresses a value relative to another landmark."""
    assert decay.factor(from_landmark, to_landmark) == pytest.approx(factor, rel=1e-15)


@pytest.mark.parametrize(
    ("decay", "value", "from_landmark", "to_landmark", "expected"),
    [
        (H1, 8.0, B, B + 3 * DAY, 1.0),  # 8 * 2^-3
        (H1, 3.0, B + DAY, B, 6.0),  # 3 * 2^1
        (H1, 2.0**258, B - SPAN, B, 4.0),  # 2^258 * 2^-256
        (H1, 5.0, B, B, 5.0),
        (NO_DECAY, 7, 0.0, T0, 7),
        (NO_DECAY, 7, B, 0.0, 7),
    ],
)
def test_decay_convert(
    decay: Decay, value: Number, from_landmark: float, to_landmark: float, expected: Number
) -> None:
    """convert multiplies by factor(from, to); without decay the value comes back as it is."""
    got = decay.convert(value, from_landmark, to_landmark)
    assert got == expected
    assert type(got) is type(expected)


def test_decay_round_trip_through_another_landmark() -> None:
    """Converting to a landmark and back gives the value again (powers of two: exactly)."""
    there = H1.convert(12.0, B, B + 5 * DAY)  # 12 * 2^-5 = 0.375
    assert there == 0.375
    assert H1.convert(there, B + 5 * DAY, B) == 12.0


# --- apply_basket with decay -----------------------------------------------------------------


def test_apply_basket_without_decay_keeps_ints() -> None:
    """Without decay n_i and every n_ij stay ints and the landmark stays 0."""
    rows, count = build_rows(
        [basket(("a", "b"), offset=0, ts=T0), basket(("a", "b", "c"), offset=1, ts=B + 300 * DAY)]
    )
    row = rows["a"]
    assert (row.baskets, row.pairs, row.landmark) == (2, {"b": 2, "c": 1}, 0.0)
    assert type(row.baskets) is int
    assert all(type(n) is int for n in row.pairs.values())
    assert count == BasketCount(offset=1, value=2, landmark=0.0)
    assert type(count.value) is int


def test_apply_basket_weighs_by_forward_decay() -> None:
    """A basket at B + d days adds 2^d to n_i and to each n_ij (H = 1 day, landmark B)."""
    row, _ = apply_basket(None, "a", basket(("a", "b"), offset=0, ts=B + DAY), H1)
    # 2^1 = 2.
    assert row == ItemRow(
        baskets=2.0, pairs={"b": 2.0}, applied={0: 0}, landmark=B, last_ts=B + DAY
    )
    row, _ = apply_basket(row, "a", basket(("a", "b", "c"), offset=1, ts=B + 3 * DAY), H1)
    # + 2^3 = 8: n_a = 10, n_ab = 10, n_ac = 8.
    assert (row.baskets, row.pairs, row.landmark) == (10.0, {"b": 10.0, "c": 8.0}, B)
    # An older basket, B - 1 day, arriving late: weight 2^-1 = 0.5, landmark unchanged.
    row, _ = apply_basket(row, "a", basket(("a", "c"), offset=2, ts=B - DAY), H1)
    assert (row.baskets, row.pairs, row.landmark) == (10.5, {"b": 10.0, "c": 8.5}, B)
    assert row.last_ts == B + 3 * DAY


def test_apply_basket_rescales_at_a_new_landmark() -> None:
    """A row meeting a later landmark rescales once by 2^-256 and adds the new basket there."""
    # At B - 3 days the landmark is B - 256 days: weight 2^253.
    row, _ = apply_basket(None, "a", basket(("a", "b"), offset=0, ts=B - 3 * DAY), H1)
    assert (row.landmark, row.baskets, row.pairs) == (B - SPAN, 2.0**253, {"b": 2.0**253})
    # At B + 1 day: landmark B; the old 2^253 becomes 2^253 * 2^-256 = 0.125; the new one 2^1 = 2.
    row, _ = apply_basket(row, "a", basket(("a", "c"), offset=1, ts=B + DAY), H1)
    assert row.landmark == B
    assert (row.baskets, row.pairs) == (2.125, {"b": 0.125, "c": 2.0})


def test_apply_basket_rescales_errors_too() -> None:
    """Space-Saving errors are rescaled with the counts at a new landmark."""
    old = ItemRow(2.0**256, {"b": 2.0**257}, {"b": 2.0**255}, {0: 0}, B - SPAN, B - DAY)
    row, _ = apply_basket(old, "a", basket(("a", "b"), offset=1, ts=B), H1)
    # 2^256 * 2^-256 + 2^0 = 2; 2^257 * 2^-256 + 1 = 3; error 2^255 * 2^-256 = 0.5.
    assert (row.baskets, row.pairs, row.errors) == (2.0, {"b": 3.0}, {"b": 0.5})


# Five baskets across the landmark boundary B (H = 1 day).
ACROSS = [
    (("a", "b"), B - 3 * DAY),
    (("a", "b", "c"), B - DAY + 3600),
    (("b", "c"), B),
    (("a", "c"), B + DAY / 2),
    (("a", "b", "d"), B + 2 * DAY),
]


def decayed(items: Iterable[tuple[tuple[str, ...], float]], at: float) -> float:
    """Brute force: the sum over baskets of 2^((t_b - at) / H), H = 1 day."""
    return math.fsum(2.0 ** ((ts - at) / DAY) for _, ts in items)


@pytest.mark.parametrize("order", list(permutations(range(len(ACROSS)))))
def test_forward_decay_ratios_are_exact_in_any_order(order: tuple[int, ...]) -> None:
    """Across a landmark, in any arrival order, ratios and counts equal the brute-force decay."""
    arrivals = [
        Basket(f"o{n}", ACROSS[n][0], ACROSS[n][1], source=0, offset=pos)
        for pos, n in enumerate(order)
    ]
    rows, count = build_rows(arrivals, H1)
    assert count is not None
    total = total_of([count], H1)
    row = rows["a"]
    assert row.landmark == B  # a's latest basket is after the boundary

    def baskets_of(sku: str) -> Weighted:
        return Weighted(rows[sku].baskets, rows[sku].landmark)

    # Brute force at an arbitrary reference time T: ratios do not depend on it.
    at = B + 2 * DAY
    n_total = decayed(ACROSS, at)

    def n(*skus: str) -> float:
        return decayed([(items, ts) for items, ts in ACROSS if set(skus) <= set(items)], at)

    got = {nb.sku: nb for nb in top_neighbors(row, total, baskets_of, 10, H1)}
    assert set(got) == {"b", "c", "d"}
    for j, nb in got.items():
        assert nb.support == pytest.approx(n("a", j) / n_total, rel=1e-12), j
        assert nb.confidence == pytest.approx(n("a", j) / n("a"), rel=1e-12), j
        assert nb.lift == pytest.approx(n("a", j) * n_total / (n("a") * n(j)), rel=1e-12), j
    # The published record: decayed to as_of = a's last basket, B + 2 days (= at).
    rec = neighbors_record("a", row, total, baskets_of, 10, H1)
    assert rec["as_of"] == at
    assert rec["baskets"] == pytest.approx(n("a"), rel=1e-12)
    assert rec["total_baskets"] == pytest.approx(n_total, rel=1e-12)
    for published in rec["neighbors"]:
        assert published["count"] == pytest.approx(n("a", published["sku"]), rel=1e-12)


def test_forward_decay_brute_force_reference_values() -> None:
    """The brute-force decay of a and b at B + 2 days, by hand, pins the helper above."""
    # Baskets with a: B - 3 d, B - 1 d + 1 h, B + 0.5 d, B + 2 d -> 2^-5 + 2^(-3 + 1/24)
    # + 2^-1.5 + 2^0; with a and b: 2^-5 + 2^(-3 + 1/24) + 2^0.
    at = B + 2 * DAY
    with_a = [(i, t) for i, t in ACROSS if "a" in i]
    with_ab = [(i, t) for i, t in ACROSS if {"a", "b"} <= set(i)]
    assert decayed(with_a, at) == pytest.approx(2**-5 + 2 ** (-3 + 1 / 24) + 2**-1.5 + 1, rel=1e-15)
    assert decayed(with_ab, at) == pytest.approx(2**-5 + 2 ** (-3 + 1 / 24) + 1, rel=1e-15)


# --- Space-Saving ----------------------------------------------------------------------------


def feed(
    row_sku: str, baskets: list[tuple[str, ...]], capacity: int, decay: Decay = NO_DECAY
) -> ItemRow:
    """The row of `row_sku` after the baskets, one a second from B, offsets 0, 1, ..."""
    row: ItemRow | None = None
    for offset, items in enumerate(baskets):
        row, _ = apply_basket(
            row, row_sku, basket(items, offset=offset, ts=B + offset), decay, capacity
        )
    assert row is not None
    return row


@pytest.mark.parametrize(
    ("baskets", "capacity", "pairs", "errors"),
    [
        # Room for everything: exact, no errors.
        ([("a", "b", "c"), ("a", "d")], 3, {"b": 1, "c": 1, "d": 1}, {}),
        # Full {b: 1, c: 1}; d evicts the smallest (1, "b"): d = 1 + 1 = 2, error 1.
        ([("a", "b", "c"), ("a", "d")], 2, {"c": 1, "d": 2}, {"d": 1}),
        # ... then c grows to 2; e ties c and d at 2 and evicts (2, "c"): e = 2 + 1 = 3, error 2.
        (
            [("a", "b", "c"), ("a", "d"), ("a", "c"), ("a", "e")],
            2,
            {"d": 2, "e": 3},
            {"d": 1, "e": 2},
        ),
        # ... then b comes back and evicts (2, "d"), whose error goes with it: b = 3, error 2.
        (
            [("a", "b", "c"), ("a", "d"), ("a", "c"), ("a", "e"), ("a", "b")],
            2,
            {"e": 3, "b": 3},
            {"e": 2, "b": 2},
        ),
        # Within one basket pairs are counted one after another: b 1, c 1, then d evicts b,
        # and starts at 1 + 1 capped at n_i = 1 (a pair is in at most every basket): exact.
        ([("a", "b", "c", "d")], 2, {"c": 1, "d": 1}, {}),
        # The same after a basket: b 1, c 1; then b 2, c 2, and e evicts (2, "b") just counted
        # in this basket: e = 2 + 1 capped at n_i = 2, error 1.
        ([("a", "b", "c"), ("a", "b", "c", "e")], 2, {"c": 2, "e": 2}, {"e": 1}),
        # Capacity 1: every new neighbour replaces the one kept: b 1; c = 1 + 1; b = 2 + 1.
        ([("a", "b"), ("a", "c"), ("a", "b")], 1, {"b": 3}, {"b": 2}),
        # A kept neighbour only grows; its error stays: d 2 (error 1) + 1 + 1 = 4.
        ([("a", "b", "c"), ("a", "d"), ("a", "d"), ("a", "d")], 2, {"c": 1, "d": 4}, {"d": 1}),
    ],
)
def test_space_saving_eviction(
    baskets: list[tuple[str, ...]], capacity: int, pairs: dict[str, int], errors: dict[str, int]
) -> None:
    """A new neighbour at a full row evicts the smallest (count, SKU) and starts at min + w."""
    row = feed("a", baskets, capacity)
    assert row.pairs == pairs
    assert row.errors == errors
    assert len(row.pairs) <= capacity
    assert row.baskets == len(baskets)  # n_i is always exact


def test_space_saving_weighted_eviction() -> None:
    """With decay the new entry is min + its weight: 1 + 2^1 = 3.0, error 1.0 (H = 1 day)."""
    row, _ = apply_basket(None, "a", basket(("a", "b"), offset=0, ts=B), H1, capacity=1)
    row, _ = apply_basket(row, "a", basket(("a", "c"), offset=1, ts=B + DAY), H1, capacity=1)
    assert (row.pairs, row.errors) == ({"c": 3.0}, {"c": 1.0})


def test_space_saving_default_capacity() -> None:
    """The default capacity is 100: 100 neighbours are kept exactly, the 101st evicts one."""
    assert DEFAULT_CAPACITY == 100
    others = tuple(f"n{k:03d}" for k in range(101))
    row, _ = apply_basket(None, "a", basket(("a", *others[:100])))
    assert (len(row.pairs), row.errors) == (100, {})
    row, _ = apply_basket(row, "a", basket(("a", others[100]), offset=1))
    # All at 1: the smallest SKU, n000, makes room; n100 = 1 + 1 = 2, error 1.
    assert len(row.pairs) == 100
    assert "n000" not in row.pairs
    assert (row.pairs["n100"], row.errors) == (2, {"n100": 1})


def reference_space_saving(
    baskets: list[tuple[tuple[str, ...], Number]], sku: str, capacity: int
) -> tuple[dict[str, Number], dict[str, Number]]:
    """Space-Saving as written in the paper: each new neighbour scans for the smallest counter.

    A new counter starts at the smallest + its weight, but never above the
    baskets counted with this one (n_i: no pair is in more).
    """
    pairs: dict[str, Number] = {}
    errors: dict[str, Number] = {}
    n_i: Number = 0
    for items, weight in baskets:
        for other in items:
            if other == sku:
                continue
            if other in pairs:
                pairs[other] += weight
            elif len(pairs) < capacity:
                pairs[other] = weight
            else:
                smallest = min(pairs, key=lambda j: (pairs[j], j))
                floor_count = pairs.pop(smallest)
                errors.pop(smallest, None)
                pairs[other] = min(floor_count + weight, n_i + weight)
                if pairs[other] > weight:
                    errors[other] = pairs[other] - weight
        n_i += weight
    return pairs, errors


@pytest.mark.parametrize("seed", range(20))
def test_space_saving_heap_matches_the_linear_scan(seed: int) -> None:
    """apply_basket's heap evicts exactly what a scan for the smallest (count, SKU) would.

    Long-tailed baskets over a small capacity, so nearly every basket evicts,
    often several times, with kept neighbours growing in between.
    """
    rng = random.Random(seed)
    capacity = rng.choice([2, 3, 5, 10])
    items = [f"i{k:02d}" for k in range(40)]
    weights = [1 / (k + 1) for k in range(40)]
    row: ItemRow | None = None
    fed: list[tuple[tuple[str, ...], Number]] = []
    for offset in range(150):
        skus = basket_items(("a", *rng.choices(items, weights, k=rng.randint(1, 30))))
        row, _ = apply_basket(row, "a", basket(skus, offset=offset), capacity=capacity)
        fed.append((skus, 1))
    assert row is not None
    assert (row.pairs, row.errors) == reference_space_saving(fed, "a", capacity)


@pytest.mark.parametrize("capacity", [3, 5, 10])
def test_space_saving_rows_within_capacity_are_exact(capacity: int) -> None:
    """A row with at most `capacity` distinct neighbours never evicts and equals brute force."""
    rng = random.Random(capacity)
    neighbours = [f"n{k}" for k in range(capacity)]
    baskets = [("a", *rng.sample(neighbours, rng.randint(0, capacity))) for _ in range(40)]
    row = feed("a", baskets, capacity)
    assert row.errors == {}
    assert row.pairs == dict(Counter(j for b in baskets for j in b[1:]))


@pytest.mark.parametrize("decay", [NO_DECAY, H1], ids=["no-decay", "decay"])
def test_space_saving_error_bound(decay: Decay) -> None:
    """Every kept count is within [true, true + error], error <= W / capacity, heavy items kept."""
    capacity = 10
    rng = random.Random(57)
    items = [f"i{k:02d}" for k in range(60)]
    weights = [1 / (k + 1) for k in range(60)]  # Zipf-like: a few items are in many baskets
    baskets = []
    for pos in range(400):
        skus = basket_items(rng.choices(items, weights, k=rng.randint(2, 8)))
        # Event times from B - 100 days to B + 99.5 days, shuffled: across a landmark, out of order.
        baskets.append((skus, B - 100 * DAY + pos * DAY / 2))
    rng.shuffle(baskets)
    arrivals = [Basket(f"o{n}", skus, ts, 0, n) for n, (skus, ts) in enumerate(baskets)]
    rows, _ = build_rows(arrivals, decay, capacity)
    evicting = heavy = 0
    for sku, row in rows.items():
        true: dict[str, float] = {}  # n_ij relative to the row's landmark, by brute force
        added = 0.0  # W: the pair weight added to the row
        for skus, ts in baskets:
            if sku in skus:
                weight = float(decay.weight(ts, row.landmark))
                for other in skus:
                    if other != sku:
                        true[other] = true.get(other, 0.0) + weight
                        added += weight
        bound = added / capacity
        slack = 1e-9 * added if decay.enabled else 0.0  # float rounding of decayed sums
        assert len(row.pairs) <= capacity
        for j, c in row.pairs.items():
            error = row.errors.get(j, 0)
            assert true[j] - slack <= c <= true[j] + error + slack, (sku, j)
            assert error <= bound + slack, (sku, j)
        for j, n in true.items():
            if n > bound + slack:
                assert j in row.pairs, (sku, j)
                heavy += 1
        evicting += bool(row.errors)
        if len(true) <= capacity:
            assert row.errors == {}
    # The stream is rich enough for the bounds to matter.
    assert evicting >= 10
    assert heavy >= 10


# --- ItemRow JSON ----------------------------------------------------------------------------


def test_item_row_json_round_trip_with_decay_fields() -> None:
    """errors, landmark and partition survive the JSON trip."""
    row = ItemRow(
        baskets=2.5,
        pairs={"b": 2.0, "c": 1.5},
        errors={"c": 0.5},
        applied={1: 4},
        landmark=B,
        last_ts=B + DAY,
        partition=3,
    )
    data = row.to_json()
    assert (data["errors"], data["landmark"], data["partition"]) == ({"c": 0.5}, B, 3)
    assert ItemRow.from_json(data) == row


def test_item_row_from_json_of_an_older_row() -> None:
    """A row stored without errors, landmark or partition loads with their defaults."""
    data = {"baskets": 4, "pairs": {"b": 2}, "applied": {"0": 3}, "last_ts": 10.0}
    assert ItemRow.from_json(data) == ItemRow(
        baskets=4, pairs={"b": 2}, applied={0: 3}, last_ts=10.0
    )


@pytest.mark.parametrize(
    ("partitions", "expected"),
    [
        ([-1], -1),  # never given: unknown
        ([2], 2),
        ([2, -1], 2),  # -1 keeps the row's partition
        ([2, 5], 5),  # after a rebalance the new owner's partition
    ],
)
def test_apply_basket_records_the_owning_partition(partitions: list[int], expected: int) -> None:
    """partition >= 0 records the item-baskets partition that owns the row; -1 keeps it."""
    row: ItemRow | None = None
    for offset, partition in enumerate(partitions):
        row, _ = apply_basket(row, "a", basket(("a",), offset=offset), partition=partition)
    assert row is not None
    assert row.partition == expected


# --- BasketCount, count_basket, newer, total_of -----------------------------------------------


def test_count_basket_without_decay() -> None:
    """Without decay N_p counts baskets as ints and keeps the highest offset."""
    count = count_basket(None, T0, 5)
    assert count == BasketCount(offset=5, value=1, landmark=0.0)
    count = count_basket(count, T0 + DAY, 9)
    assert count == BasketCount(offset=9, value=2, landmark=0.0)
    assert type(count.value) is int


@pytest.mark.parametrize("offset", [9, 3, 0])
def test_count_basket_ignores_a_redelivered_basket(offset: int) -> None:
    """A basket at or below the latest counted offset is a redelivery: N_p stays as it is.

    After a crash the customers table may remember an order whose count in N_p
    was lost, or the other way round; N_p must not rely on it to dedupe.
    """
    count = BasketCount(offset=9, value=2, landmark=0.0)
    assert count_basket(count, T0 + DAY, offset) is count
    assert count_basket(count, T0 + DAY, offset, H1) is count
    assert count_basket(count, T0 + DAY, 10) == BasketCount(offset=10, value=3, landmark=0.0)


def test_count_basket_with_decay() -> None:
    """With decay N_p adds 2^((ts - L) / H) and rescales once at a new landmark (H = 1 day)."""
    count = count_basket(None, B + DAY, 0, H1)
    assert count == BasketCount(0, 2.0, B)  # 2^1
    count = count_basket(count, B + 2 * DAY, 1, H1)
    assert count == BasketCount(1, 6.0, B)  # 2 + 2^2
    count = count_basket(count, B - DAY, 2, H1)
    assert count == BasketCount(2, 6.5, B)  # + 2^-1: a late, older basket
    # At B + 256 days the landmark steps: 6.5 * 2^-256 + 2^0.
    count = count_basket(count, B + SPAN, 3, H1)
    assert count == BasketCount(3, 6.5 * 2.0**-256 + 1.0, B + SPAN)


@pytest.mark.parametrize(
    "count",
    [BasketCount(), BasketCount(7, 3, 0.0), BasketCount(12, 2.5, B)],
)
def test_basket_count_json_round_trip(count: BasketCount) -> None:
    """BasketCount travels as [offset, value, landmark] and comes back equal."""
    data = count.to_json()
    assert data == [count.offset, count.value, count.landmark]
    assert BasketCount.from_json(data) == count


@pytest.mark.parametrize(
    ("candidate", "current", "expected"),
    [
        (BasketCount(5, 3), None, True),  # nothing known yet
        (BasketCount(5, 3), BasketCount(4, 9), True),  # a later offset, whatever the value
        (BasketCount(5, 3), BasketCount(5, 3), False),  # the same version again
        (BasketCount(5, 9), BasketCount(6, 3), False),  # a stale copy
        (BasketCount(-1, 0), None, True),
    ],
)
def test_newer(candidate: BasketCount, current: BasketCount | None, expected: bool) -> None:
    """A partition's count replaces the known one only with a higher source offset."""
    assert newer(candidate, current) is expected


@pytest.mark.parametrize(
    ("counts", "decay", "expected"),
    [
        ([], NO_DECAY, Weighted(0)),
        ([], H1, Weighted(0)),
        ([BasketCount(3, 10)], NO_DECAY, Weighted(10, 0.0)),
        ([BasketCount(3, 10), BasketCount(7, 5), BasketCount(0, 1)], NO_DECAY, Weighted(16, 0.0)),
        # Same landmark: 2.5 + 4 = 6.5.
        ([BasketCount(1, 2.5, B), BasketCount(2, 4.0, B)], H1, Weighted(6.5, B)),
        # At the later landmark: 2^258 * 2^-256 + 3 = 4 + 3 = 7.
        ([BasketCount(1, 2.0**258, B - SPAN), BasketCount(2, 3.0, B)], H1, Weighted(7.0, B)),
        ([BasketCount(2, 3.0, B), BasketCount(1, 2.0**258, B - SPAN)], H1, Weighted(7.0, B)),
    ],
)
def test_total_of(counts: list[BasketCount], decay: Decay, expected: Weighted) -> None:
    """N is the sum of the partitions' N_p at the latest landmark among them."""
    got = total_of(counts, decay)
    assert got == expected
    assert type(got.value) is type(expected.value)


@pytest.mark.parametrize("decay", [Decay(), H1], ids=["no decay", "decay"])
def test_index_baskets_at_is_baskets_at_that_time(decay: Decay) -> None:
    """The lookup a ranking uses reads what `baskets` reads, for known and unknown items."""
    index = NeighborIndex(decay)
    index.apply(record("a", 8.0, 100.0, {"b": 4.0}, as_of=B))
    index.apply(record("b", 6.0, 100.0, {"a": 4.0}, as_of=B + DAY))
    index.apply(record("a", 9.0, 101.0, {"b": 5.0}, as_of=B + 2 * DAY))  # replaces a's row
    for at in (B, B + DAY, B + 3 * DAY):
        lookup = index.baskets_at(at)
        assert [lookup(sku) for sku in ("a", "b", "zzz")] == [
            index.baskets(sku, at) for sku in ("a", "b", "zzz")
        ]
    assert index.baskets_at(B)("zzz") == 0


# --- NeighborIndex with decay ----------------------------------------------------------------


def test_index_with_decay_reads_at_any_time() -> None:
    """Values are kept as published at as_of and read decayed to any time (H = 1 day)."""
    index = NeighborIndex(H1)
    index.apply(record("a", 8.0, 100.0, {"b": 4.0}, as_of=B))
    assert index.rows == {"a": (8.0, B, (("b", 4.0),))}
    assert index.weighted("a") == Weighted(8.0, B)
    assert index.baskets("a", B) == 8.0
    assert index.baskets("a", B + DAY) == 4.0  # 8 * 2^-1
    assert index.baskets("a", B - DAY) == 16.0  # 8 * 2^1
    assert list(index.neighbors("a", B + 2 * DAY)) == [("b", 1.0)]  # 4 * 2^-2
    assert index.total_baskets(B + DAY) == 50.0  # 100 * 2^-1
    assert index.popular(1, B + 3 * DAY) == [("a", 1.0)]  # 8 * 2^-3
    assert (index.baskets("zzz", B), list(index.neighbors("zzz", B)), index.weighted("zzz")) == (
        0,
        [],
        None,
    )


@pytest.mark.parametrize(
    ("published", "expected"),
    [
        # (as_of, N): the record with the later as_of wins, even with a smaller N
        # (60 at B + 1 day is 120 at B: more baskets than 100 at B).
        ([(B, 100.0), (B + DAY, 60.0)], Weighted(60.0, B + DAY)),
        ([(B + DAY, 60.0), (B, 100.0)], Weighted(60.0, B + DAY)),
        ([(B + DAY, 60.0), (B, 1000.0), (B - DAY, 9.0)], Weighted(60.0, B + DAY)),
        ([(B, 5.0)], Weighted(5.0, B)),
    ],
)
def test_index_with_decay_total_keeps_the_latest(
    published: list[tuple[float, float]], expected: Weighted
) -> None:
    """With decay N is taken from the record with the latest reference time."""
    index = NeighborIndex(H1)
    for n, (as_of, total) in enumerate(published):
        index.apply(record(f"s{n}", 1.0, total, {}, as_of=as_of))
    assert index.total == expected


# Decayed strength at B (n_i at B): a 8, b 6, c 3, d 1.
AT_B = {"a": 8.0, "b": 6.0, "c": 3.0, "d": 1.0}


@pytest.mark.parametrize(
    "shifts",
    [
        {"a": 0.0, "b": 0.0, "c": 0.0, "d": 0.0},
        # Published 1 day later n_a is 8 / 2 = 4; 1 day earlier n_b is 6 * 2 = 12, ...
        {"a": 1.0, "b": -1.0, "c": 2.0, "d": 0.5},
        {"a": -3.0, "b": 2.0, "c": 0.0, "d": 10.0},
        {"a": 200.0, "b": -50.0, "c": 100.0, "d": -30.0},
    ],
)
@pytest.mark.parametrize("reverse", [False, True])
def test_index_popularity_is_the_same_whatever_the_publishing_time(
    shifts: dict[str, float], reverse: bool
) -> None:
    """popular ranks by decayed strength, whenever and in whatever order records were published."""
    index = NeighborIndex(H1)
    skus = sorted(AT_B, reverse=reverse)
    for sku in skus:
        # n_i at B + s days = n_i at B * 2^-s.
        index.apply(record(sku, AT_B[sku] * 2.0 ** -shifts[sku], 100.0, {}, B + shifts[sku] * DAY))
    got = index.popular(4, B)
    assert [sku for sku, _ in got] == ["a", "b", "c", "d"]
    assert [n for _, n in got] == pytest.approx([8.0, 6.0, 3.0, 1.0], rel=1e-12)
    # Read one day later, every n_i is halved.
    assert [n for _, n in index.popular(4, B + DAY)] == pytest.approx([4.0, 3.0, 1.5, 0.5])


@pytest.mark.parametrize("order", [("a", "b", "c"), ("c", "b", "a"), ("b", "c", "a")])
def test_index_popularity_ties_with_decay_go_by_sku(order: tuple[str, ...]) -> None:
    """Equal decayed strength published at different times ties, broken by SKU."""
    # a: 4 at B + 1 day, b: 8 at B -> both 8 at B (log2 4 + 1 = log2 8 + 0); c: 8 at B + 1 day = 16.
    published = {"a": (4.0, B + DAY), "b": (8.0, B), "c": (8.0, B + DAY)}
    index = NeighborIndex(H1)
    for sku in order:
        n, as_of = published[sku]
        index.apply(record(sku, n, 100.0, {}, as_of))
    assert index.popular(3, B) == [("c", 16.0), ("a", 8.0), ("b", 8.0)]
    assert index.popular(3, B + DAY) == [("c", 8.0), ("a", 4.0), ("b", 4.0)]


def test_index_with_decay_republished_item_is_listed_once() -> None:
    """An item republished later moves by its new strength and is listed once."""
    index = NeighborIndex(H1)
    index.apply(record("a", 4.0, 100.0, {}, B))
    index.apply(record("b", 6.0, 100.0, {}, B))
    # a at B + 1 day with 5 baskets: 10 at B, now ahead of b.
    index.apply(record("a", 5.0, 100.0, {}, B + DAY))
    assert index.popular(5, B) == [("a", 10.0), ("b", 6.0)]


@pytest.mark.parametrize("seed", range(20))
def test_no_pair_counts_more_than_its_rows_baskets(seed: int) -> None:
    """Baskets of more items than a row keeps: every count <= n_i, so confidence and support
    stay <= 1 (a pair seen in one basket of 16 items once counted 2 in a row of 10)."""
    rng = random.Random(seed)
    capacity = rng.randint(1, 10)
    baskets = [("a", *rng.sample(SKUS_60, rng.randint(1, 30))) for _ in range(rng.randint(1, 12))]
    for decay in (NO_DECAY, H1):
        row = feed("a", baskets, capacity, decay)
        assert all(count <= row.baskets for count in row.pairs.values())
        total = Weighted(row.baskets, row.landmark)
        for neighbor in top_neighbors(row, total, lambda _: None, capacity, decay):
            assert neighbor.confidence <= 1.0
            assert neighbor.support <= 1.0


def test_times_a_thousand_half_lives_apart_stay_finite() -> None:
    """Decay at a half-life of an hour: baskets in 1970, 2026 and 2099 (the codec's range;
    9,000 times more half-lives apart than a float's 2^1024 takes) publish finite records
    and rank a cart, where `2.0 ** x` raised OverflowError and stopped the worker."""
    decay = Decay(1 / 24)
    times = [0.0, T0, 4_102_444_799.0]
    rows: dict[str, ItemRow] = {}
    count: BasketCount | None = None
    for offset, (ts, items) in enumerate(
        zip(times, [("a", "b"), ("a", "c"), ("d", "b")], strict=True)
    ):
        count = count_basket(count, ts, offset, decay)
        for sku in items:
            rows[sku], _ = apply_basket(rows.get(sku), sku, basket(items, 0, offset, ts), decay)
    assert count is not None
    total = total_of([count], decay)
    index = NeighborIndex(decay)
    for sku, row in rows.items():
        published = neighbors_record(sku, row, total, index.weighted, 10, decay)
        numbers = [published["baskets"], published["total_baskets"]] + [
            value
            for neighbor in published["neighbors"]
            for value in neighbor.values()
            if not isinstance(value, str)
        ]
        assert all(math.isfinite(value) for value in numbers), published
        index.apply(published)
    for at in times:
        ranked = suggest_for_cart(["a"], set(), index, SuggestionRules(), at=at)
        assert all(math.isfinite(item.score) for item in ranked)
