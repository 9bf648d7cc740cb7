"""Frequently-bought-together: incremental co-occurrence per basket.

A basket is one order's distinct SKUs. For items i and j over N baskets:

- n_i  = baskets containing i            (`ItemRow.baskets`)
- n_ij = baskets containing both i and j (`ItemRow.pairs[j]`)

Rows are partitioned by item: the row of i holds n_i and every n_ij, so an
order of k distinct items updates k rows, each in O(k). A basket adds at
most `MAX_BASKET_ITEMS` distinct items (first seen first), which caps what
one giant basket can add at MAX_BASKET_ITEMS * (MAX_BASKET_ITEMS - 1) pairs.

Redelivery: each basket carries the position of its order in the source
partition (`source`, `offset`); a row remembers the highest offset applied
per source partition and ignores anything at or below it, so a replayed
basket never counts twice, with O(partitions) memory per row.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Final

MAX_BASKET_ITEMS: Final = 50


def basket_items(skus: Iterable[str]) -> tuple[str, ...]:
    """Distinct SKUs of a basket in first-seen order, capped at MAX_BASKET_ITEMS."""
    distinct = tuple(dict.fromkeys(skus))
    return distinct[:MAX_BASKET_ITEMS]


def support(n_ij: float, total: float) -> float:
    """support(i, j) = n_ij / N: the share of all baskets that hold both items."""
    return n_ij / total if total > 0 else 0.0


def confidence(n_ij: float, n_i: float) -> float:
    """confidence(i -> j) = n_ij / n_i: the share of baskets with i that also hold j."""
    return n_ij / n_i if n_i > 0 else 0.0


def lift(n_ij: float, n_i: float, n_j: float, total: float) -> float:
    """lift(i, j) = n_ij * N / (n_i * n_j): how much more often i and j meet than by chance.

    1.0 means independent; above 1, bought together more than chance.
    """
    denominator = n_i * n_j
    return n_ij * total / denominator if denominator > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Basket:
    """One order's basket as routed to the row of each of its items."""

    order_id: str
    items: tuple[str, ...]
    ts: float
    source: int
    offset: int

    def to_json(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "items": list(self.items),
            "ts": self.ts,
            "source": self.source,
            "offset": self.offset,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Basket:
        return cls(
            order_id=str(data["order_id"]),
            items=tuple(str(sku) for sku in data["items"]),
            ts=float(data["ts"]),
            source=int(data["source"]),
            offset=int(data["offset"]),
        )


@dataclass(frozen=True, slots=True)
class ItemRow:
    """The co-occurrence row of one item: n_i and n_ij for every neighbour j."""

    baskets: int = 0
    pairs: Mapping[str, int] = field(default_factory=dict)
    applied: Mapping[int, int] = field(default_factory=dict)
    last_ts: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "baskets": self.baskets,
            "pairs": dict(self.pairs),
            "applied": {str(k): v for k, v in self.applied.items()},
            "last_ts": self.last_ts,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ItemRow:
        return cls(
            baskets=int(data["baskets"]),
            pairs={str(k): int(v) for k, v in data["pairs"].items()},
            applied={int(k): int(v) for k, v in data["applied"].items()},
            last_ts=float(data["last_ts"]),
        )


def apply_basket(row: ItemRow | None, sku: str, basket: Basket) -> tuple[ItemRow, bool]:
    """Count `basket` into the row of `sku`; return the new row and whether it changed.

    A basket at or below the row's applied offset for its source partition
    is a redelivery and changes nothing.
    """
    current = row if row is not None else ItemRow()
    if basket.offset <= current.applied.get(basket.source, -1):
        return current, False
    pairs = dict(current.pairs)
    for other in basket.items:
        if other != sku:
            pairs[other] = pairs.get(other, 0) + 1
    applied = dict(current.applied)
    applied[basket.source] = basket.offset
    return (
        replace(
            current,
            baskets=current.baskets + 1,
            pairs=pairs,
            applied=applied,
            last_ts=max(current.last_ts, basket.ts),
        ),
        True,
    )


@dataclass(frozen=True, slots=True)
class Neighbor:
    """One co-purchased item with its count and ratios, as published."""

    sku: str
    count: int
    support: float
    confidence: float
    lift: float

    def to_json(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "count": self.count,
            "support": self.support,
            "confidence": self.confidence,
            "lift": self.lift,
        }


def top_neighbors(
    row: ItemRow, total: int, baskets_of: Callable[[str], int], k: int
) -> list[Neighbor]:
    """The row's `k` neighbours by count (ties by SKU), with support, confidence and lift.

    `baskets_of(j)` gives n_j (0 when unknown); n_j is never taken below
    n_ij, its smallest possible value.
    """
    ranked = sorted(row.pairs.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
    return [
        Neighbor(
            sku=other,
            count=n_ij,
            support=support(n_ij, total),
            confidence=confidence(n_ij, row.baskets),
            lift=lift(n_ij, row.baskets, max(baskets_of(other), n_ij), total),
        )
        for other, n_ij in ranked
    ]


def neighbors_record(
    sku: str, row: ItemRow, total: int, baskets_of: Callable[[str], int], k: int
) -> dict[str, Any]:
    """The `item-neighbors` record of one item (DESIGN.md, output fields)."""
    return {
        "sku": sku,
        "baskets": row.baskets,
        "total_baskets": total,
        "neighbors": [n.to_json() for n in top_neighbors(row, total, baskets_of, k)],
    }


@dataclass(slots=True)
class NeighborIndex:
    """Read model of `item-neighbors`: every item's latest record, held by each worker.

    Suggestions read it; it is fed by a consumer of the `item-neighbors`
    topic on every worker, so any worker can answer for any cart.
    `total_baskets` is the largest N seen (N only grows).
    """

    rows: dict[str, tuple[int, tuple[tuple[str, int], ...]]] = field(default_factory=dict)
    total_baskets: int = 0
    # The POPULAR_KEPT most-bought items, kept up to date on every record
    # (n_i only grows), so the popularity fallback never scans all items.
    _popular: list[tuple[int, str]] = field(default_factory=list)

    POPULAR_KEPT: ClassVar[int] = 100

    def apply(self, record: Mapping[str, Any]) -> None:
        """Take in one `item-neighbors` record (a newer one replaces the item's row)."""
        sku = str(record["sku"])
        baskets = int(record["baskets"])
        neighbors = tuple((str(n["sku"]), int(n["count"])) for n in record["neighbors"])
        self.rows[sku] = (baskets, neighbors)
        self.total_baskets = max(self.total_baskets, int(record["total_baskets"]))
        self._rank_popular(sku, baskets)

    def _rank_popular(self, sku: str, baskets: int) -> None:
        top = [entry for entry in self._popular if entry[1] != sku]
        entry = (-baskets, sku)
        if len(top) < self.POPULAR_KEPT or entry < top[-1]:
            insort(top, entry)
            del top[self.POPULAR_KEPT :]
        self._popular = top

    def baskets(self, sku: str) -> int:
        """n_i as last published (0 for an unknown item)."""
        entry = self.rows.get(sku)
        return entry[0] if entry else 0

    def neighbors(self, sku: str) -> tuple[tuple[str, int], ...]:
        """(j, n_ij) for the item's published neighbours."""
        entry = self.rows.get(sku)
        return entry[1] if entry else ()

    def popular(self, k: int) -> list[tuple[str, int]]:
        """The `k` items in the most baskets, most first (ties by SKU)."""
        return [(sku, -negated) for negated, sku in self._popular[:k]]
