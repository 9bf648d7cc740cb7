"""Frequently-bought-together: incremental co-occurrence per basket.

A basket is one order's distinct SKUs. For items i and j over N baskets:

- n_i  = baskets containing i            (`ItemRow.baskets`)
- n_ij = baskets containing both i and j (`ItemRow.pairs[j]`)

Rows are partitioned by item: the row of i holds n_i and its n_ij, so an
order of k distinct items updates k rows, each in O(k). A basket adds at
most `MAX_BASKET_ITEMS` distinct items (first seen first), which caps what
one giant basket can add at MAX_BASKET_ITEMS * (MAX_BASKET_ITEMS - 1) pairs.

Time decay (optional) is forward decay (Cormode, Shkapenyuk, Srivastava, Xu,
ICDE 2009): a basket at time t adds weight 2^((t - L) / H) for half-life H
and a landmark L, instead of 1. Old counts are never touched: every count
is the same multiple of its decayed value, so support, confidence and lift
are exact. Landmarks step every `LANDMARK_HALF_LIVES` half-lives of event
time, which keeps weights below 2^512; a row that meets a later landmark
rescales itself once. With decay off, weights are the integer 1.

Bounded memory: a row keeps at most `capacity` neighbours as a weighted
Space-Saving summary (Metwally, Agrawal, El Abbadi, 2005): a new neighbour
arriving at a full row replaces the smallest counter c_min and starts at
c_min + w with error c_min. Every kept count over-estimates the true n_ij
by at most its `error` (absent = exact), every error is at most
(pair weight added to the row) / capacity, and any neighbour whose true
n_ij exceeds that bound is kept. Rows with at most `capacity` distinct
neighbours never evict and are exact.

Redelivery: each basket carries the position of its order in the source
partition (`source`, `offset`); a row remembers the highest offset applied
per source partition and ignores anything at or below it, so a replayed
basket never counts twice, with O(partitions) memory per row.
"""

from __future__ import annotations

import heapq
import math
from bisect import insort
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from typing import Any, ClassVar, Final

MAX_BASKET_ITEMS: Final = 50
DEFAULT_CAPACITY: Final = 100
LANDMARK_HALF_LIVES: Final = 256
MAX_DOUBLINGS: Final = 512  # a decay factor's cap (`_doubled`): 2^512 is about 1.3e154
SECONDS_PER_DAY: Final = 86_400.0

Number = int | float


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
class Decay:
    """Forward decay with half-life `half_life_days` (0 = off: every basket weighs 1)."""

    half_life_days: float = 0.0

    @property
    def enabled(self) -> bool:
        return self.half_life_days > 0

    @property
    def _half_life_s(self) -> float:
        return self.half_life_days * SECONDS_PER_DAY

    def landmark(self, ts: float) -> float:
        """The landmark of event time `ts`: steps every LANDMARK_HALF_LIVES half-lives."""
        if not self.enabled:
            return 0.0
        span = self._half_life_s * LANDMARK_HALF_LIVES
        return math.floor(ts / span) * span

    def weight(self, ts: float, landmark: float) -> Number:
        """A basket's weight at time `ts` relative to `landmark`: 2^((ts - L) / H), or 1."""
        if not self.enabled:
            return 1
        return _doubled((ts - landmark) / self._half_life_s)

    def factor(self, from_landmark: float, to_landmark: float) -> float:
        """Multiply a value kept relative to one landmark to express it relative to another."""
        if not self.enabled or from_landmark == to_landmark:
            return 1.0
        return _doubled((from_landmark - to_landmark) / self._half_life_s)

    def convert(self, value: Number, from_landmark: float, to_landmark: float) -> Number:
        """`value` (kept relative to `from_landmark`) relative to `to_landmark`."""
        if not self.enabled or from_landmark == to_landmark:
            return value
        return value * self.factor(from_landmark, to_landmark)


NO_DECAY: Final = Decay()


def _doubled(half_lives: float) -> float:
    """2^half_lives, at most 2^MAX_DOUBLINGS.

    A float holds up to 2^1024, and `2.0 ** x` raises past it. Times that
    far apart (1,024 half-lives: 2.8 years at a half-life of a day, or one
    event dated in year 9999 or 1970) would stop the worker where a value is
    expressed at the other's time; capped, such values are only bounds, and
    everything stays finite.
    """
    return float(2.0 ** min(half_lives, MAX_DOUBLINGS))


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


ROUTED_BASKETS_MAX: Final = 100  # baskets an item-baskets record at most (far below 1 MB)


class BasketRouter:
    """Orders' baskets gathered into one item-baskets record a partition.

    A basket is counted into the row of each of its items, and a row lives
    on the item-baskets partition of its SKU (`partition_of`, the producer's
    partitioner). A basket goes to each partition that holds a row of it,
    once, with those rows (`rows`). Gathered over an agent's batch of orders,
    that is a record or two a partition, not one record per item and order.
    All go out together (`take`), so that a batch's records are sent, or
    fail, as one: the worker dead-letters the batch's orders if they fail.
    """

    def __init__(
        self, partition_of: Callable[[str], int], max_baskets: int = ROUTED_BASKETS_MAX
    ) -> None:
        self._partition_of = partition_of
        self._max_baskets = max_baskets
        self._gathered: dict[int, list[dict[str, Any]]] = {}
        self._full: list[tuple[int, dict[str, Any]]] = []

    def add(self, basket: Basket) -> None:
        """Gather `basket` (a partition's record that is full is put aside, whole)."""
        rows: dict[int, list[str]] = {}
        for sku in basket.items:
            rows.setdefault(self._partition_of(sku), []).append(sku)
        body = basket.to_json()
        for target, skus in rows.items():
            gathered = self._gathered.setdefault(target, [])
            gathered.append({**body, "rows": skus})
            if len(gathered) >= self._max_baskets:
                self._full.append((target, {"baskets": self._gathered.pop(target)}))

    def take(self) -> list[tuple[int, dict[str, Any]]]:
        """Every record gathered, (partition, record), the full ones first; none is kept."""
        records = self._full
        records += [(target, {"baskets": baskets}) for target, baskets in self._gathered.items()]
        self._full, self._gathered = [], {}
        return records


def routed_baskets(
    data: Mapping[str, Any], key: bytes | None
) -> list[tuple[Basket, tuple[str, ...]]]:
    """The baskets of an item-baskets record, each with the rows (SKUs) it is counted into.

    A record holds `baskets`, each a basket with its `rows` in the record's
    partition (`BasketRouter`). A record of one basket keyed by its SKU (as
    workers wrote them until 2026-12-07, one record per item and order) is
    that basket for that row. Every basket is read before any is returned: a
    record that fails to decode changes nothing.
    """
    if "baskets" not in data:
        if not isinstance(key, bytes):
            raise ValueError("a basket record without its item key")
        return [(Basket.from_json(data), (key.decode(),))]
    return [
        (Basket.from_json(entry), tuple(str(sku) for sku in entry["rows"]))
        for entry in data["baskets"]
    ]


@dataclass(frozen=True, slots=True)
class ItemRow:
    """The co-occurrence row of one item: n_i and (a Space-Saving summary of) its n_ij.

    Weighted values are kept relative to `landmark` (0 without decay).
    `partition` is the item-baskets partition that owns the row.
    """

    baskets: Number = 0
    pairs: Mapping[str, Number] = field(default_factory=dict)
    errors: Mapping[str, Number] = field(default_factory=dict)
    applied: Mapping[int, int] = field(default_factory=dict)
    landmark: float = 0.0
    last_ts: float = 0.0
    partition: int = -1

    def to_json(self) -> dict[str, Any]:
        return {
            "baskets": self.baskets,
            "pairs": dict(self.pairs),
            "errors": dict(self.errors),
            "applied": {str(k): v for k, v in self.applied.items()},
            "landmark": self.landmark,
            "last_ts": self.last_ts,
            "partition": self.partition,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ItemRow:
        return cls(
            baskets=data["baskets"],
            pairs=dict(data["pairs"]),
            errors=dict(data.get("errors", {})),
            applied={int(k): int(v) for k, v in data["applied"].items()},
            landmark=float(data.get("landmark", 0.0)),
            last_ts=float(data["last_ts"]),
            partition=int(data.get("partition", -1)),
        )


def apply_basket(
    row: ItemRow | None,
    sku: str,
    basket: Basket,
    decay: Decay = NO_DECAY,
    capacity: int = DEFAULT_CAPACITY,
    partition: int = -1,
) -> tuple[ItemRow, bool]:
    """Count `basket` into the row of `sku`; return the new row and whether it changed.

    A basket at or below the row's applied offset for its source partition
    is a redelivery and changes nothing.
    """
    current = row if row is not None else ItemRow(landmark=decay.landmark(basket.ts))
    if basket.offset <= current.applied.get(basket.source, -1):
        return current, False
    landmark = max(current.landmark, decay.landmark(basket.ts))
    scale = decay.factor(current.landmark, landmark)
    if scale != 1.0:
        pairs = {j: c * scale for j, c in current.pairs.items()}
        errors = {j: e * scale for j, e in current.errors.items()}
        baskets: Number = current.baskets * scale
    else:
        pairs = dict(current.pairs)
        errors = dict(current.errors)
        baskets = current.baskets
    weight = decay.weight(basket.ts, landmark)
    # The smallest (count, SKU) comes off a heap built at the basket's first
    # eviction. Entries go stale when their count changes and are skipped:
    # (c, j) is current only while pairs[j] == c (a row's smallest count never
    # goes down, so an evicted item comes back above any stale entry of its own).
    smallest: list[tuple[Number, str]] | None = None
    for other in basket.items:
        if other == sku:
            continue
        if other in pairs:
            pairs[other] += weight
            if smallest is not None:
                heapq.heappush(smallest, (pairs[other], other))
        elif len(pairs) < capacity:
            pairs[other] = weight
        else:
            if smallest is None:
                smallest = [(count, j) for j, count in pairs.items()]
                heapq.heapify(smallest)
            floor_count, evicted = heapq.heappop(smallest)
            while pairs.get(evicted) != floor_count:
                floor_count, evicted = heapq.heappop(smallest)
            del pairs[evicted]
            errors.pop(evicted, None)
            # Space-Saving's over-estimate, but never above n_i: a pair is in
            # at most every basket of the row (a basket of more items than
            # the row keeps would otherwise count a pair seen once as 2).
            count = min(floor_count + weight, baskets + weight)
            pairs[other] = count
            if count > weight:
                errors[other] = count - weight
            heapq.heappush(smallest, (count, other))
    applied = dict(current.applied)
    applied[basket.source] = basket.offset
    return (
        ItemRow(
            baskets=baskets + weight,
            pairs=pairs,
            errors=errors,
            applied=applied,
            landmark=landmark,
            last_ts=max(current.last_ts, basket.ts),
            partition=partition if partition >= 0 else current.partition,
        ),
        True,
    )


@dataclass(frozen=True, slots=True)
class Weighted:
    """A decayed quantity: `value` relative to `landmark` (plain counts: landmark 0)."""

    value: Number
    landmark: float = 0.0


@dataclass(frozen=True, slots=True)
class Neighbor:
    """One co-purchased item with its count and ratios, as published."""

    sku: str
    count: Number
    support: float
    confidence: float
    lift: float
    error: Number = 0

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "sku": self.sku,
            "count": self.count,
            "support": self.support,
            "confidence": self.confidence,
            "lift": self.lift,
        }
        if self.error:
            record["error"] = self.error
        return record


def top_neighbors(
    row: ItemRow,
    total: Weighted,
    baskets_of: Callable[[str], Weighted | None],
    k: int,
    decay: Decay = NO_DECAY,
    as_of: float | None = None,
) -> list[Neighbor]:
    """The row's `k` neighbours by count (ties by SKU), with support, confidence and lift.

    Ratios use N (`total`) and each n_j (`baskets_of(j)`) brought to the row's
    landmark; n_j is never taken below n_ij, its smallest possible value.
    Counts are published decayed to `as_of` (default: the row's last basket).
    """
    at = row.landmark
    n_total = decay.convert(total.value, total.landmark, at)
    when = row.last_ts if as_of is None else as_of
    to_count = decay.weight(at, when) if decay.enabled else 1
    ranked = sorted(row.pairs.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
    neighbors = []
    for other, n_ij in ranked:
        known = baskets_of(other)
        n_j = decay.convert(known.value, known.landmark, at) if known is not None else 0
        n_j = max(n_j, n_ij)
        neighbors.append(
            Neighbor(
                sku=other,
                count=n_ij * to_count,
                support=support(n_ij, n_total),
                confidence=confidence(n_ij, row.baskets),
                lift=lift(n_ij, row.baskets, n_j, n_total),
                error=row.errors.get(other, 0) * to_count,
            )
        )
    return neighbors


def neighbors_record(
    sku: str,
    row: ItemRow,
    total: Weighted,
    baskets_of: Callable[[str], Weighted | None],
    k: int,
    decay: Decay = NO_DECAY,
) -> dict[str, Any]:
    """The `item-neighbors` record of one item (DESIGN.md, output fields).

    Counts are as of `as_of` (the row's latest basket): plain counts without
    decay, decayed counts with it. `error` on a neighbour bounds how much its
    count may over-estimate (absent: exact).
    """
    as_of = row.last_ts
    return {
        "sku": sku,
        "baskets": decay.convert(row.baskets, row.landmark, as_of),
        "total_baskets": decay.convert(total.value, total.landmark, as_of),
        "as_of": as_of,
        "neighbors": [n.to_json() for n in top_neighbors(row, total, baskets_of, k, decay, as_of)],
    }


@dataclass(slots=True)
class NeighborIndex:
    """Read model of `item-neighbors`: every item's latest record, held by each worker.

    Suggestions read it; it is fed by a consumer of the `item-neighbors`
    topic on every worker, so any worker can answer for any cart. Values are
    kept as published (relative to each record's `as_of`); `weighted`
    returns them with their reference time, for decay-aware arithmetic.
    """

    decay: Decay = NO_DECAY
    rows: dict[str, tuple[Number, float, tuple[tuple[str, Number], ...]]] = field(
        default_factory=dict
    )
    total: Weighted = field(default_factory=lambda: Weighted(0))
    # The POPULAR_KEPT most-bought items, kept up to date on every record,
    # so the popularity fallback never scans all items; and their SKUs as a set.
    _popular: list[tuple[float, str]] = field(default_factory=list)
    _popular_kept: frozenset[str] = frozenset()

    POPULAR_KEPT: ClassVar[int] = 100

    def apply(self, record: Mapping[str, Any]) -> None:
        """Take in one `item-neighbors` record (a newer one replaces the item's row)."""
        sku = str(record["sku"])
        as_of = float(record.get("as_of", 0.0)) if self.decay.enabled else 0.0
        baskets: Number = record["baskets"]
        neighbors = tuple((str(n["sku"]), n["count"]) for n in record["neighbors"])
        previous = self.rows.get(sku)
        self.rows[sku] = (baskets, as_of, neighbors)
        total = Weighted(record["total_baskets"], as_of)
        if self._later(total, self.total):
            self.total = total
        if previous is None or previous[0] != baskets or previous[1] != as_of:
            self._rank_popular(sku, self._strength(baskets, as_of))

    def _later(self, new: Weighted, old: Weighted) -> bool:
        """N only grows (in decayed terms: the record with the later reference time wins)."""
        if self.decay.enabled:
            return new.landmark >= old.landmark
        return new.value >= old.value

    def _strength(self, baskets: Number, as_of: float) -> float:
        """A time-free popularity score: n_i, or with decay log2(n_i at T) + T / H.

        The decayed form is the same whatever T it is computed at, so items
        published at different times compare without converting (or overflowing).
        """
        if not self.decay.enabled:
            return float(baskets)
        if baskets <= 0:
            return -math.inf
        return math.log2(baskets) + as_of / (self.decay.half_life_days * SECONDS_PER_DAY)

    def _rank_popular(self, sku: str, strength: float) -> None:
        top = [entry for entry in self._popular if entry[1] != sku]
        entry = (-strength, sku)
        if len(top) < self.POPULAR_KEPT or entry < top[-1]:
            insort(top, entry)
            del top[self.POPULAR_KEPT :]
        self._popular = top
        self._popular_kept = frozenset(kept for _, kept in top)

    def weighted(self, sku: str) -> Weighted | None:
        """n_i as last published, with its reference time (None for an unknown item)."""
        entry = self.rows.get(sku)
        return Weighted(entry[0], entry[1]) if entry else None

    def baskets(self, sku: str, at: float = 0.0) -> Number:
        """n_i as last published, expressed at time `at` when decay is on (0 if unknown)."""
        entry = self.rows.get(sku)
        return self.decay.convert(entry[0], entry[1], at) if entry else 0

    def baskets_at(self, at: float = 0.0) -> Callable[[str], Number]:
        """`baskets(sku, at)` as a function of the SKU: a ranking calls it for every candidate.

        Without decay it is a lookup in `rows`, not a method call and a conversion.
        """
        if self.decay.enabled:
            return partial(self.baskets, at=at)
        find = self.rows.get

        def baskets(sku: str) -> Number:
            entry = find(sku)
            return entry[0] if entry else 0

        return baskets

    def total_baskets(self, at: float = 0.0) -> Number:
        """N, expressed at time `at` when decay is on."""
        return self.decay.convert(self.total.value, self.total.landmark, at)

    def neighbors(self, sku: str, at: float = 0.0) -> Sequence[tuple[str, Number]]:
        """(j, n_ij) for the item's published neighbours, expressed at time `at`."""
        entry = self.rows.get(sku)
        if not entry:
            return ()
        if not self.decay.enabled:
            return entry[2]
        factor = self.decay.factor(entry[1], at)
        return [(other, count * factor) for other, count in entry[2]]

    def popular_skus(self) -> Iterator[str]:
        """The POPULAR_KEPT most-bought items, most first, ties by SKU (no copy, no counts).

        Safe to hold while records arrive: `_rank_popular` replaces the list.
        """
        return (sku for _, sku in self._popular)

    def popular_kept(self) -> frozenset[str]:
        """The SKUs of `popular_skus`, as a set (replaced, never changed, as records arrive)."""
        return self._popular_kept

    def popular(self, k: int, at: float = 0.0) -> list[tuple[str, Number]]:
        """The `k` items in the most baskets (decayed: by weight), most first, ties by SKU.

        Each comes with its n_i expressed at time `at`.
        """
        return [(sku, self.baskets(sku, at)) for sku in islice(self.popular_skus(), k)]


@dataclass(frozen=True, slots=True)
class BasketCount:
    """N_p: the (decayed) number of baskets counted from one source partition.

    `offset` is the source offset of the latest basket counted: it orders
    versions of the count, so a stale copy never replaces a newer one.
    """

    offset: int = -1
    value: Number = 0
    landmark: float = 0.0

    def to_json(self) -> list[Any]:
        return [self.offset, self.value, self.landmark]

    @classmethod
    def from_json(cls, data: list[Any] | int) -> BasketCount:
        """From `[offset, value, landmark]`, or a bare count (stored before versions were kept)."""
        if isinstance(data, int):
            return cls(-1, data, 0.0)
        return cls(int(data[0]), data[1], float(data[2]))


def count_basket(
    count: BasketCount | None, ts: float, offset: int, decay: Decay = NO_DECAY
) -> BasketCount:
    """N_p after one more basket at event time `ts` and source offset `offset`.

    A basket at or below the latest offset counted is a redelivery and changes
    nothing (as in `apply_basket`): N_p is idempotent on its own, whatever
    another table (the customer's remembered orders) recovered after a crash.
    """
    if count is not None and offset <= count.offset:
        return count
    current = count if count is not None else BasketCount(landmark=decay.landmark(ts))
    landmark = max(current.landmark, decay.landmark(ts))
    value = decay.convert(current.value, current.landmark, landmark)
    return BasketCount(
        offset=offset,
        value=value + decay.weight(ts, landmark),
        landmark=landmark,
    )


def newer(candidate: BasketCount, current: BasketCount | None) -> bool:
    """Whether `candidate` is a later version of a partition's count than `current`."""
    return current is None or candidate.offset > current.offset


def total_of(counts: Iterable[BasketCount], decay: Decay = NO_DECAY) -> Weighted:
    """N = the sum of the partitions' N_p, at the latest landmark among them."""
    kept = list(counts)
    if not kept:
        return Weighted(0)
    landmark = max(c.landmark for c in kept)
    return Weighted(sum(decay.convert(c.value, c.landmark, landmark) for c in kept), landmark)
