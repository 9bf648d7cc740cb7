"""A customer or an item a timer's work raises on is skipped and counted; the worker goes on.

The re-scoring timer and the item-neighbors timer run outside any input
record: what raises there has no dead letter to go to, and used to stop the
worker (a Faust timer's exception crashes its app), and again after each
restart. The worker's own handlers and timers run here as `bench handlers`
runs them (no broker), with one customer's record and one item's record made
to raise, as a bug those states found would.
"""

from __future__ import annotations

from pathlib import Path

from tests.scripts import printed, run_script

SCRIPT = r"""
import asyncio, sys
from typing import Any, cast

import orjson

from stream import app as worker
from stream.bench.handlers import Handlers, LocalProducer, event, own_every_partition
from stream.kafka import KeyPartitioner

DAY = 86_400.0


def order(n: int, cid: str) -> tuple[str, Any]:
    value = {
        "event_id": f"e{n}", "type": "order_completed", "customer_id": cid,
        "ts": f"2026-11-0{1 + n % 3}T10:00:00Z", "order_id": f"o{n}",
        "items": [{"sku": "cam", "unit_price": 100.0}, {"sku": f"bag-{n % 2}", "unit_price": 20.0}],
    }
    key = cid.encode()
    partitions = range(worker.settings.partitions)
    partition = KeyPartitioner()(key, partitions, partitions)
    return worker.T.purchase, event(worker.T.purchase, key, orjson.dumps(value), partition, n)


def errors(timer: str) -> float:
    return worker.registry.get_sample_value("stream_timer_errors_total", {"timer": timer}) or 0.0


async def main() -> None:
    producer = LocalProducer()
    worker.app.producer = cast(Any, producer)
    own_every_partition(worker.settings.partitions)
    customers = ["c0", "c1", "c2", "c3"]
    await Handlers(producer).run([order(n, cid) for n, cid in enumerate(customers * 2)])

    real_record, real_neighbors = worker.customer_record, worker.neighbors_record

    def broken_record(cid: str, *args: Any) -> Any:
        if cid == "c1":
            raise RuntimeError("a bug c1's state found")
        return real_record(cid, *args)

    def broken_neighbors(sku: str, *args: Any) -> Any:
        if sku == "bag-1":
            raise RuntimeError("a bug bag-1's row found")
        return real_neighbors(sku, *args)

    worker.customer_record, worker.neighbors_record = broken_record, broken_neighbors
    before = producer.sent[worker.T.customer_ltv]
    owned = set(range(worker.settings.partitions))
    await worker.rescore_due(worker.clock.now() + 30 * DAY, owned, 1000, 1.0)
    rescored = producer.sent[worker.T.customer_ltv] - before
    for sku in ("cam", "bag-0", "bag-1"):
        worker._changed_rows.setdefault(sku)
        worker._published.pop(sku, None)
    before = producer.sent[worker.T.item_neighbors]
    await worker.send_changed_rows()
    published = producer.sent[worker.T.item_neighbors] - before
    print(orjson.dumps({
        "rescored": rescored,
        "rescore_errors": errors("rescore"),
        "c1_held": "c1" in worker.population,
        "others_held": sum(cid in worker.population for cid in customers if cid != "c1"),
        "published": published,
        "row_errors": errors("item_neighbors"),
    }).decode())


asyncio.run(main())
"""


def test_a_timer_skips_what_it_raises_on_and_goes_on(tmp_path: Path) -> None:
    """Re-scoring four due customers, one raising: three records, one error counted, that
    customer forgotten until their next event; three changed rows, one raising: two records."""
    done = run_script(SCRIPT, tmp_path)
    assert printed(done) == {
        "rescored": 3,
        "rescore_errors": 1.0,
        "c1_held": False,
        "others_held": 3,
        "published": 2,
        "row_errors": 1.0,
    }
    log = done.stderr.decode()
    assert "re-scoring customer 'c1' failed; skipped" in log
    assert "item-neighbors record of 'bag-1' failed; skipped" in log
