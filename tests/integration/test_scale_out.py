"""Scale-out: two workers over four partitions publish what one worker would.

Co-occurrence rows are partitioned by item and customers by id, so with two
workers every count is made on one of them and N is assembled from both:
the published tables must still equal brute force exactly, and suggestions
must rank as the documented rules say, whichever worker answers.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from stream.domain.events import format_ts, parse_ts
from tests.integration.conftest import Deployment, values
from tests.integration.expectations import exact_neighbors, expected_ranking

pytestmark = pytest.mark.integration

SKUS = [f"s{n:02d}" for n in range(14)]
START = parse_ts("2026-10-01T08:00:00Z")


def orders(count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    made = []
    for n in range(count):
        # Baskets drawn around a few themes so that real associations exist.
        theme = rng.randrange(3)
        pool = SKUS[theme * 4 : theme * 4 + 6]
        lines = rng.sample(pool, rng.randint(2, 4))
        made.append(
            {
                "event_id": f"e-so-{n}",
                "type": "order_completed",
                "customer_id": f"so{rng.randrange(30)}",
                "ts": format_ts(START + n * 600),
                "order_id": f"o-so-{n}",
                "items": [{"sku": sku, "quantity": 1, "unit_price": 5.0} for sku in lines],
            }
        )
    return made


ORDERS = orders(120, seed=11)


async def consumed(deployment: Deployment, index: int) -> float:
    page = await deployment.workers[index].metrics()
    return sum(
        sample.value
        for family in text_string_to_metric_families(page)
        for sample in family.samples
        if sample.name == "stream_events_consumed_total"
    )


async def test_two_workers_publish_exactly_what_one_would(deployment: Deployment) -> None:
    """Two workers, four partitions: exact tables, rule-ranked suggestions, work on both."""
    deployment.start_worker()
    deployment.start_worker()
    await asyncio.sleep(8)  # let both join before the first events (Tansu: ~5 s per join)
    await deployment.produce_events(deployment.topics.purchase, ORDERS)
    await deployment.read(deployment.topics.item_neighbors, exact_neighbors(ORDERS), within=120)

    await asyncio.sleep(1.0)  # each worker's index follows item-neighbors (50 ms fetch wait)
    carts = [["s00"], ["s04", "s05"], ["s08"], ["s01", "s02"], ["s09", "s10", "s11"]]
    assert all(expected_ranking(ORDERS, cart) for cart in carts)  # nothing vacuous below
    adds = [
        {
            "event_id": f"e-so-add-{n}",
            "type": "item_added",
            "customer_id": f"new{n}",
            "ts": format_ts(START + 200_000 + n),
            "cart_id": f"k{n}",
            "sku": cart[-1],
        }
        for n, cart in enumerate(carts)
    ]
    # earlier items of each cart first, answered too but not checked here
    earlier = [
        {
            **add,
            "event_id": f"{add['event_id']}-{i}",
            "sku": sku,
            "ts": format_ts(START + 199_000 + n),
        }
        for n, (add, cart) in enumerate(zip(adds, carts, strict=True))
        for i, sku in enumerate(cart[:-1])
    ]
    await deployment.produce_events(deployment.topics.cart, earlier)
    await deployment.read(deployment.topics.suggestions, lambda rs: len(rs) >= len(earlier))
    await deployment.produce_events(deployment.topics.cart, adds)
    records = await deployment.read(
        deployment.topics.suggestions, lambda rs: len(rs) >= len(earlier) + len(adds), settle=2.0
    )
    by_event = {s["source_event_id"]: s for s in values(records)}
    assert len(values(records)) == len(earlier) + len(adds)
    for add, cart in zip(adds, carts, strict=True):
        expected = expected_ranking(ORDERS, cart)
        got = by_event[add["event_id"]]["items"]
        assert [item["sku"] for item in got] == list(expected), cart
        for item in got:
            assert item["score"] == pytest.approx(expected[item["sku"]], abs=1e-6)

    # Both workers took part.
    assert await consumed(deployment, 0) > 0, deployment.logs()
    assert await consumed(deployment, 1) > 0, deployment.logs()
