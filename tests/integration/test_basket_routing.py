"""An order batch's baskets reach the item rows a record a partition, through real topics.

A backlog of orders, there before the worker starts, is fetched and handled
in batches. Read back from the internal item-baskets topic: every (order,
item) reached the partition of its item's row exactly once, no record holds
more than ROUTED_BASKETS_MAX baskets, and there are fewer records than orders
(one an item and order would be about twice as many; a run here made 125
records of up to 44 baskets, so the cap itself is exercised by the unit
tests). The rows they make are exact (brute force), and
`stream_basket_rows_total` counts each (order, item) once.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
import pytest

from stream.demo import basket_of
from stream.domain.cooccurrence import ROUTED_BASKETS_MAX
from stream.kafka import KeyPartitioner
from tests.integration.conftest import Deployment, wait_sample
from tests.integration.expectations import exact_neighbors
from tests.integration.test_pipeline import make_orders

pytestmark = pytest.mark.integration

ORDERS = make_orders(600, seed=11)
PARTITIONS = range(4)  # the deployment's


def rows_of(orders: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(order id, SKU) for each distinct item of each order: the rows its basket goes to."""
    return {(order["order_id"], sku) for order in orders for sku in basket_of(order)}


async def test_a_backlog_of_orders_reaches_each_row_once_in_few_capped_records(
    deployment: Deployment,
) -> None:
    topics = deployment.topics
    await deployment.produce_events(topics.purchase, ORDERS)
    worker = deployment.start_worker()
    wanted = rows_of(ORDERS)
    await deployment.read(topics.item_neighbors, exact_neighbors(ORDERS), within=120)

    def routed(records: list[Any]) -> list[tuple[int, dict[str, Any]]]:
        """(partition, record) of the basket records (not the basket counts')."""
        decoded = [(r.partition, orjson.loads(r.value)) for r in records]
        return [(p, value) for p, value in decoded if "baskets" in value]

    records = routed(
        await deployment.read(
            topics.item_baskets,
            lambda rs: (
                sum(len(b["rows"]) for _, v in routed(rs) for b in v["baskets"]) >= len(wanted)
            ),
        )
    )
    partition_of = KeyPartitioner()
    arrived: Counter[tuple[str, str]] = Counter()
    for partition, record in records:
        assert 0 < len(record["baskets"]) <= ROUTED_BASKETS_MAX
        for basket in record["baskets"]:
            for sku in basket["rows"]:
                assert partition_of(sku.encode(), PARTITIONS, PARTITIONS) == partition, sku
                arrived[(basket["order_id"], sku)] += 1
    assert set(arrived) == wanted
    assert set(arrived.values()) == {1}
    assert len(records) < len(ORDERS), f"{len(records)} basket records for {len(ORDERS)} orders"
    counted = await wait_sample(
        worker, "stream_basket_rows_total", lambda v: v is not None and v >= len(wanted)
    )
    assert counted == len(wanted)
