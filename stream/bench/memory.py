"""`python -m stream bench memory`: what the state costs, measured (no broker).

Memory is measured with tracemalloc: the Python heap taken by the domain
state that a worker's tables hold in memory (the memory store; RocksDB
keeps the same values serialized on disk), built from a seeded synthetic
workload through the same domain functions the agents call:

- co-occurrence rows: bytes per pair (n_ij entry) held, per million pairs;
- customers: bytes per customer (CustomerState with a few orders each);
- the time per call of the per-event domain work (apply_basket, apply_order,
  scoring a customer, suggesting for a cart).

`recovered_bytes` weighs what a worker holds once it has recovered tables
from their changelog records (`held_bytes`, each table) and the rank index it
builds over the customers table (`rank_index_bytes`), in a new process.
`bench handlers` uses it for every table keyed by customer (customers,
carts, contacts) after its workload, since a customer's cart and contacts are
held beside their value state.
"""

from __future__ import annotations

import gc
import multiprocessing
import random
import statistics
import time
import tracemalloc
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from decimal import Decimal
from typing import Any

from faust.serializers import codecs

from stream.config import load_ltv_params
from stream.domain.clv import score
from stream.domain.cooccurrence import (
    Basket,
    ItemRow,
    NeighborIndex,
    Weighted,
    apply_basket,
    neighbors_record,
)
from stream.domain.events import OrderLine, PurchaseEvent
from stream.domain.ltv import CustomerState, apply_order, customer_scores, pack, unpack
from stream.domain.population import Population
from stream.domain.rank import Ranking
from stream.domain.suggestions import SuggestionRules, suggest_for_cart
from stream.state import register_codecs

DAY = 86_400.0
T0 = 1_790_000_000.0


def _baskets(rng: random.Random, items: int, count: int) -> list[tuple[str, ...]]:
    """Zipf-like baskets of 2-8 items over `items` SKUs (interned, as decoding would share)."""
    catalog = [f"sku-{n:07d}" for n in range(items)]
    weights = [1.0 / (rank + 1) ** 0.8 for rank in range(items)]
    return [
        tuple(dict.fromkeys(rng.choices(catalog, weights, k=rng.randint(2, 8))))
        for _ in range(count)
    ]


def measure_pairs(target_pairs: int, capacity: int, seed: int = 7) -> dict[str, Any]:
    """Build rows until `target_pairs` n_ij entries are held; bytes per pair."""
    rng = random.Random(seed)
    baskets = _baskets(rng, items=max(1000, target_pairs // 40), count=target_pairs // 4)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    rows: dict[str, ItemRow] = {}
    pairs = 0
    for offset, items in enumerate(baskets):
        basket = Basket(str(offset), items, T0 + offset, 0, offset)
        for sku in items:
            old = rows.get(sku)
            rows[sku], _ = apply_basket(old, sku, basket, capacity=capacity)
            pairs += len(rows[sku].pairs) - (len(old.pairs) if old else 0)
        if pairs >= target_pairs:
            break
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return {
        "pairs": pairs,
        "items": len(rows),
        "capacity": capacity,
        "bytes": used,
        "bytes_per_pair": used / pairs,
        "mib_per_million_pairs": used / pairs * 1e6 / 2**20,
    }


def measure_customers(count: int, orders_each: int = 4, seed: int = 7) -> dict[str, Any]:
    """What a worker holds per customer, `count` customers of `orders_each` orders (1-4 lines).

    The customers table's entries (id -> packed state, as `track_orders`
    writes them, and id -> partition, which Faust's memory store keeps for
    every key) and the worker's derived index of them (`Population`: rank
    values and the re-scoring heap), weighed as `bench handlers` weighs them
    (`recovered_bytes`: a worker on the in-memory store, its values compressed).
    """
    rng = random.Random(seed)
    skus = [f"sku-{n:05d}" for n in range(5000)]  # decoded SKUs are new strings: not shared
    events = [
        [
            PurchaseEvent(
                event_id=f"e-{c}-{n}",
                type="order_completed",
                customer_id=f"c{c}",
                ts=T0 + n * 9 * DAY + rng.random() * DAY,
                order_id=f"o-{c}-{n}",
                items=(
                    line := tuple(
                        OrderLine("".join(rng.choice(skus)), 1, Decimal("9.99"))
                        for _ in range(rng.randint(1, 4))
                    )
                ),
                total=sum((x.amount for x in line), Decimal(0)),
            )
            for n in range(orders_each)
        ]
        for c in range(count)
    ]
    table: dict[str, bytes] = {}
    for c, history in enumerate(events):
        state: CustomerState | None = None
        for n, event in enumerate(history):
            state, _ = apply_order(state, event, 0, c * orders_each + n)
        assert state is not None
        table[history[0].customer_id] = pack(state)
    records = [(cid.encode(), packed) for cid, packed in table.items()]
    held = recovered_bytes([("customers", records, "utf8", "held-customers")], 7 * DAY)
    used = sum(held.values())
    return {
        "customers": count,
        "orders_each": orders_each,
        "bytes": used,
        "bytes_per_customer": used / count,
        "packed_state_bytes_per_customer": statistics.mean(len(v) for v in table.values()),
        "unpacked_state_bytes_per_customer": _object_bytes(lambda: unpack(table["c0"])),
    }


TableRecords = tuple[str, list[tuple[bytes, bytes]], str, str]  # name, records, codecs


def recovered_bytes(tables: Sequence[TableRecords], interval: float) -> dict[str, int]:
    """Heap bytes a worker holds once it has recovered `tables`, each, and its rank index.

    `tables`: each table's name, changelog records (key, value) and key and
    value codecs; the first is the customers table, whose records the rank
    index is built over. The tables share one key -> partition map, as the
    tables keyed by customer do (`stream.state.CustomerStore`). Weighed in a
    new process, as a worker that has just recovered them: its strings are
    its own (customer ids are interned, so the first table counts a
    customer's id and the others share it), and so are the codecs'
    compression dictionaries (`stream.state.Compressed`, trained on the
    records as they are read). zstd's own allocations, its contexts and
    dictionaries, are not on the Python heap and not counted: about 7 MB a
    worker for the three tables (RSS, with five dictionaries each), not per
    customer.
    """
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_recovered_bytes, list(tables), interval).result()


def _recovered_bytes(tables: list[TableRecords], interval: float) -> dict[str, int]:
    register_codecs()
    held: dict[str, int] = {}
    kept: list[Any] = []  # the tables rebuilt so far, alive while the next ones are weighed
    partitions: dict[Any, int] = {}  # one key -> partition map for all (`CustomerStore`)
    for name, records, key_codec, value_codec in tables:
        held[name] = held_bytes(records, key_codec, value_codec, kept, partitions)
    ids = kept[0][0]  # the customers table's keys: its ids, in the order of its records
    values = [value for _, value in tables[0][1]]
    held["rank index"] = rank_index_bytes(zip(ids, values, strict=True), interval)
    return held


def held_bytes(
    records: Iterable[tuple[bytes, bytes]],
    key_codec: str,
    value_codec: str,
    kept: list[Any] | None = None,
    partitions: dict[Any, int] | None = None,
) -> int:
    """Heap bytes a worker holds for a table's changelog `records` (key, value) once recovered.

    Rebuilt as Faust's memory store holds them, under tracemalloc: each key
    and value decoded with the table's codecs, and each key's partition
    (`faust.stores.memory.Store._key_partition`: `partitions`, if given, is
    a map the table shares, as `stream.state.CustomerStore`s do). The
    rebuilt table is appended to `kept`, if given, to be held beside the
    next ones weighed.
    """
    records = list(records)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    store: dict[Any, Any] = {}
    if partitions is None:
        partitions = {}
    for key, value in records:
        decoded = codecs.loads(key_codec, key)
        # from a fresh buffer, as a fetch's: a `raw` value is kept as it comes
        store[decoded] = codecs.loads(value_codec, bytes(bytearray(value)))
        partitions[decoded] = 0
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    if kept is not None:
        kept.append((store, partitions))
    return used


def rank_index_bytes(customers: Iterable[tuple[str, bytes]], interval: float) -> int:
    """Heap bytes of the rank and re-score index a worker builds over the customers table.

    `customers`: the table's entries (customer id, `ltv.pack` bytes); each
    customer scored and placed as `stream.app.customer_record` does. The ids
    are the table's own, as in a worker, so they are counted with the table
    (`held_bytes`), not here; nor is `clv.score`'s cache of recent scores,
    which is bounded (SCORES_KEPT, about 2 MB a worker), not per customer:
    the scores are computed before the index is weighed.
    """
    params = load_ltv_params(None)
    scored = []
    for cid, packed in customers:
        state = unpack(packed)
        as_of = state.last_ts or 0.0
        scored.append((cid, float(state.revenue), customer_scores(state, as_of, params), as_of))
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    population = Population(Ranking.create(), interval=interval)
    for cid, realized, scores, as_of in scored:
        population.scored(cid, realized, scores.predicted_clv, as_of)
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del population
    return used


def _object_bytes(make: Callable[[], object], copies: int = 1000) -> float:
    """Heap bytes of one object as `make` builds it (the mean over `copies`)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = [make() for _ in range(copies)]
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del kept
    return used / copies


def _per_call_us(work: Callable[[], object], repeat: int = 5, number: int = 2000) -> float:
    """Median over `repeat` runs of the mean microseconds per call."""
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(number):
            work()
        runs.append((time.perf_counter() - started) / number * 1e6)
    return statistics.median(runs)


def measure_calls(capacity: int = 100, seed: int = 7) -> dict[str, float]:
    """Microseconds per call of the per-event domain work (medians of 5 runs)."""
    rng = random.Random(seed)
    baskets = _baskets(rng, items=2000, count=20_000)
    rows: dict[str, ItemRow] = {}
    for offset, items in enumerate(baskets):
        basket = Basket(str(offset), items, T0 + offset, 0, offset)
        for sku in items:
            rows[sku], _ = apply_basket(rows.get(sku), sku, basket, capacity=capacity)
    index = NeighborIndex()
    total = Weighted(len(baskets))

    def baskets_of(sku: str) -> Weighted | None:
        return Weighted(rows[sku].baskets) if sku in rows else None

    for sku, row in rows.items():
        index.apply(neighbors_record(sku, row, total, baskets_of, 10))
    busy = max(rows, key=lambda sku: len(rows[sku].pairs))
    probe = Basket("probe", baskets[0], T0, 1, 0)
    params = load_ltv_params(None)
    line = (OrderLine("sku-1", 1, Decimal("9.99")),)
    customer: CustomerState | None = None
    for n in range(6):
        customer, _ = apply_order(
            customer,
            PurchaseEvent(
                f"e{n}", "order_completed", "c", T0 + n * 7 * DAY, f"o{n}", line, Decimal("9.99")
            ),
        )
    assert customer is not None
    new_order = PurchaseEvent(
        "e9", "order_completed", "c", T0 + 60 * DAY, "o9", line, Decimal("9.99")
    )
    cart = list(baskets[1][:3])
    rules = SuggestionRules()

    def score_afresh() -> object:
        score.cache_clear()  # the model's work, not clv.score's cache of recent summaries
        return customer_scores(customer, T0 + 70 * DAY, params)

    return {
        "apply_basket_full_row_us": _per_call_us(
            lambda: apply_basket(rows[busy], busy, probe, capacity=capacity)
        ),
        "apply_order_us": _per_call_us(lambda: apply_order(customer, new_order)),
        "score_customer_us": _per_call_us(score_afresh),
        "suggest_3_item_cart_us": _per_call_us(lambda: suggest_for_cart(cart, set(), index, rules)),
    }


def measure_memory(pairs: int, customers: int, capacity: int) -> dict[str, Any]:
    return {
        "pairs": measure_pairs(pairs, capacity),
        "customers": measure_customers(customers),
        "per_call_us": measure_calls(capacity),
    }
