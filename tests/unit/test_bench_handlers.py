"""`python -m stream bench handlers`: the worker's handlers on the bench workload, no broker.

Figures are not judged here (README "Performance"); this proves the run
does the pipeline's whole work: every event handled by the handler its
agent uses, every answer the contract promises sent, every order's basket
counted into the row of each of its items, the rows' records fed back; and that
the state it weighs afterwards is every customer's, in each table.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from stream.bench.pipeline import Workload, environment_without_settings
from stream.config import Topics
from stream.demo import basket_of
from stream.kafka import KeyPartitioner

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("rescore_days", "random_ids"), [(7, False), (1, False), (7, True)])
def test_the_handlers_do_the_pipelines_whole_work(
    tmp_path: Path, rescore_days: int, random_ids: bool
) -> None:
    """The workload's event time spans about three days: at the default of 7 no customer is
    re-scored within it, at 1 the customers whose last order is a day old are. With
    `--random-ids` the same work is done on the same events, their ids UUIDs."""
    events, customers, history = 1500, 60, 100
    env = environment_without_settings()
    env["STREAM_LTV_RESCORE_DAYS"] = str(rescore_days)
    done = subprocess.run(
        [
            sys.executable,
            *("-m", "stream.bench.handlers", f"--events={events}"),
            *(f"--customers={customers}", f"--history={history}"),
            *(["--random-ids"] if random_ids else []),
        ],
        cwd=ROOT,
        env=dict(env, STREAM_PARTITIONS="4", STREAM_DATA_DIR=str(tmp_path)),
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    figures = orjson.loads(done.stdout)
    workload = Workload.generate(events, customers, history=history, random_ids=random_ids)
    topics = Topics()
    sent, calls = figures["records_sent"], figures["calls"]

    assert figures["events"] == events
    assert calls["cart event"] == workload.adds and calls["order"] == workload.orders
    assert sent[topics.suggestions] == workload.adds  # one answer an add
    if rescore_days == 7:
        assert sent[topics.customer_ltv] == workload.orders  # one record an order
    else:  # and the re-scored customers' records (the timers')
        assert sent[topics.customer_ltv] > workload.orders
    # Every basket record sent came back to the item-rows handler: each order (a batch of
    # its own here) one record a partition of its items, carrying every distinct item's
    # row; and the basket counts' records (one per partition when they changed).
    assert calls["basket record"] == sent[topics.item_baskets]
    assert figures["basket_rows"] == workload.basket_rows_out
    partition_of, partitions = KeyPartitioner(), range(4)
    routed = sum(
        len({partition_of(sku.encode(), partitions, partitions) for sku in basket_of(e.value)})
        for e in workload.events
        if e.value["type"] == "order_completed"
    )
    counts_records = sent[topics.item_baskets] - routed
    assert 4 <= counts_records <= 4 * calls["timers"]
    assert sent[topics.item_neighbors] > 0 and sent[topics.triggers] > 0
    assert any(name.endswith("-carts-changelog") for name in sent)  # the timers' records
    assert figures["cpu_us_per_event"] > 0
    assert set(figures["us_per_call"]) == {"cart event", "order", "basket record", "timers"}
    # What the worker then holds: every customer with an event has a state in some table.
    state = figures["state"]
    assert state["customers"] == len({e.key for e in workload.history + workload.events})
    held = state["bytes_per_customer"]
    parts = ("customers", "carts", "contacts", "rank index")
    assert all(held[part] > 0 for part in parts)
    assert held["all"] == pytest.approx(sum(held[part] for part in parts))


REBALANCE_LOOKUP = """
import asyncio, sys
from typing import Any, cast
import orjson
from stream import app as worker
from stream.bench import handlers as hb
from stream.bench.pipeline import Workload

async def main() -> None:
    producer = hb.LocalProducer()
    worker.app.producer = cast(Any, producer)
    hb.own_every_partition(worker.settings.partitions)
    worker.customer_states._kept = 8  # the rest held packed, as in a large shop
    workload = Workload.generate(1500, 60, history=100)
    await hb.Handlers(producer).run(hb.inputs(workload.history + workload.events, 4))
    owners = worker._customer_owners()
    held = list(worker.customers.items())
    packed = sum(isinstance(value, bytes) for _, value in held)
    from_map = [worker._partition_of(cid, value, owners) for cid, value in held]
    from_records = [worker._partition_of(cid, value, {}) for cid, value in held]
    same = from_map == from_records
    figures = [len(held), packed, len(owners), same, sorted(set(from_map))]
    sys.stdout.buffer.write(orjson.dumps(figures))

asyncio.run(main())
"""


def test_a_rebalance_reads_each_customers_partition_from_the_stores_map(tmp_path: Path) -> None:
    """`rescore_customers` after a rebalance: the memory store's key -> partition map gives
    each held customer's partition, as their held record does (packed ones decompressed)."""
    env = environment_without_settings()
    done = subprocess.run(
        [sys.executable, "-c", REBALANCE_LOOKUP],
        cwd=ROOT,
        env=dict(
            env,
            STREAM_PARTITIONS="4",
            STREAM_DATA_DIR=str(tmp_path),
            STREAM_STORE="memory://",
        ),
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    customers, packed, mapped, same, partitions = orjson.loads(done.stdout)
    assert customers == 60 and mapped >= customers and packed >= customers - 8
    assert same and partitions == [0, 1, 2, 3]
