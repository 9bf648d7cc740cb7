"""The pipeline's own work an event, without Kafka: `python -m stream bench handlers`.

The worker's per-event handlers, as its agents run them (`stream.app`:
`handle_cart`, `handle_purchase`, `_on_basket_record`; decoding, validation,
tables, scoring, suggestions, triggers, output records, metrics), run in one
process on the bench's workload (the same events and history as
stream/bench/pipeline.py), with the tables in Faust's in-memory stores. The
app's producer is replaced by one that hands each record to where the
worker's consumers would take it: an `item-baskets` record to the item-rows
handler (at once; in a worker it comes back within milliseconds), an
`item-neighbors` record into the neighbour index (as `follow_item_neighbors`
does), the rest counted. What the timers send (changelog records, the
changed rows' `item-neighbors` records, the basket counts, the customers
re-scored as event time passes: the workload's is 38 days) goes out every
TICK_EVENTS input events, about their 0.2 s at the pipeline's rate here.

Left out is what Kafka and Faust's streams cost: fetching, the hand-off to
the agents, iteration, acks, the producer's batching and requests, commits.
So this is the least the pipeline pays an event with its code as it is, on
any framework, and next to the bench's processors it says how much of their
cost is the pipeline's own.

After the run it also weighs what the worker then holds per customer: each
table keyed by customer (customers, carts, contacts), as a worker holds them
once recovered from their changelogs, and the rank index over them
(`stream.bench.memory`).

Run as a child process, one per run (`python -m stream.bench.handlers
--events N ...`, figures as JSON on stdout) so that each run starts from empty
tables, and `stream.app` reads its settings from the environment the bench
gives it.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import faust
import orjson
from faust.serializers import codecs
from faust.types import TP, RecordMetadata
from faust.types.tuples import Message

from stream import app as worker
from stream.batches import set_current_event
from stream.bench.memory import TableRecords, recovered_bytes
from stream.bench.pipeline import Workload
from stream.demo import DemoEvent
from stream.kafka import KeyPartitioner

CUSTOMER_TABLES = ("customers", "carts", "contacts")  # stream.app's tables keyed by customer id
TICK_EVENTS = 800  # input events between two timer ticks: 0.2 s at ~4,000 events/s
RESCORE_PER_TICK_HERE = worker.RESCORE_PER_TICK // 5  # the timer's bound a second, in 0.2 s
Handler = Callable[[faust.EventT[bytes]], Awaitable[None]]


class LocalProducer:
    """Takes the records the worker sends (`app.producer.send`) where its consumers would.

    The others are counted, not kept, and reported delivered at once (with
    offset 0: the in-memory stores do not use it), so that the figures hold
    as little as can be of a producer's own cost.
    """

    def __init__(self) -> None:
        self.sent: collections.Counter[str] = collections.Counter()
        self.sent_bytes: collections.Counter[str] = collections.Counter()
        self.baskets: collections.deque[Any] = collections.deque()
        self._offsets: collections.Counter[int] = collections.Counter()
        self._delivered: asyncio.Future[RecordMetadata] | None = None

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
    ) -> asyncio.Future[RecordMetadata]:
        self.sent[topic] += 1
        self.sent_bytes[topic] += len(value)
        if topic == worker.T.item_baskets:
            # the worker names the partition of each (the basket counts', the routed baskets')
            assert partition is not None, "an item-baskets record without its partition"
            self.baskets.append(event(topic, key, value, partition, self._offsets[partition]))
            self._offsets[partition] += 1
        elif topic == worker.T.item_neighbors:
            worker.index.apply(orjson.loads(value))
        if self._delivered is None:
            self._delivered = asyncio.get_running_loop().create_future()
            self._delivered.set_result(RecordMetadata("", 0, TP("", 0), 0))
        return self._delivered


def event(topic: str, key: bytes | None, value: bytes, partition: int, offset: int) -> Any:
    """A Faust event as an agent receives it from `topic`."""
    message = Message(topic, partition, offset, time.time(), 0, None, key, value, None)
    return faust.Event(worker.app, key, value, None, message)


def inputs(events: Sequence[DemoEvent], partitions: int) -> list[tuple[str, Any]]:
    """The workload as the agents receive it: (topic, event), in order, offsets per partition."""
    offsets: collections.Counter[tuple[str, int]] = collections.Counter()
    partition_of, all_partitions = KeyPartitioner(), range(partitions)
    made = []
    for e in events:
        topic = getattr(worker.T, e.topic)  # a DemoEvent's topic is its Topics field
        key = e.key.encode()
        partition = partition_of(key, all_partitions, all_partitions)
        value = orjson.dumps(e.value)
        made.append((topic, event(topic, key, value, partition, offsets[topic, partition])))
        offsets[topic, partition] += 1
    return made


class Handlers:
    """The worker's handlers on a LocalProducer, each timed (wall clock, one thread)."""

    def __init__(self, producer: LocalProducer) -> None:
        self.producer = producer
        self.seconds: dict[str, float] = collections.defaultdict(float)
        self.calls: collections.Counter[str] = collections.Counter()
        self._by_topic: dict[str, tuple[str, Handler]] = {
            worker.T.cart: ("cart event", worker.handle_cart),
            worker.T.purchase: ("order", order_alone),
        }

    async def run(self, timed: Sequence[tuple[str, Any]]) -> None:
        for n, (topic, received) in enumerate(timed, start=1):
            kind, handle = self._by_topic[topic]
            await self._timed(kind, handle, received)
            await self._baskets()
            if n % TICK_EVENTS == 0:
                await self.tick()
        await self.tick()

    async def tick(self) -> None:
        """What the sending timers do between two ticks (`own_every_partition`).

        Re-scoring too: the customers due by the workload's event time, at
        most what the worker's timer re-scores in a tick's time (RESCORE_PER_TICK
        a second), without its pauses for the agents (a share of 1).
        """
        started = time.perf_counter()
        await worker.changelogs.flush()
        await worker.send_basket_counts()
        await worker.send_changed_rows()
        owned = worker._owned(worker.T.purchase)  # every partition (`own_every_partition`)
        assert owned is not None
        await worker.rescore_due(worker.clock.now(), owned, RESCORE_PER_TICK_HERE, 1.0)
        self.seconds["timers"] += time.perf_counter() - started
        self.calls["timers"] += 1
        await self._baskets()  # the counts' records

    async def _baskets(self) -> None:
        """The item-baskets records sent meanwhile, to the item-rows handler."""
        while self.producer.baskets:
            received = self.producer.baskets.popleft()
            await self._timed("basket record", worker._on_basket_record, received)

    async def _timed(self, kind: str, handle: Handler, received: Any) -> None:
        set_current_event(received)
        started = time.perf_counter()
        await handle(received)
        self.seconds[kind] += time.perf_counter() - started
        self.calls[kind] += 1


async def order_alone(received: Any) -> None:
    """An order as the order agent handles it in a batch of its own: its baskets sent after it.

    A worker sends the baskets of a whole batch at once, a record an
    item-baskets partition; under load its batches hold many orders, so
    this (a record a partition an order) is the most it sends for them.
    """
    await worker.handle_purchase(received)
    await worker.send_routed_baskets()


def own_every_partition(partitions: int) -> None:
    """This process is the whole consumer group: every partition its own, no rebalance.

    The worker's timers send only what belongs to the partitions it owns once
    its tables have settled (`stream.app._owned`); here there is no group to
    assign them, so the answers are given.
    """
    every = set(range(partitions))
    worker._owned = lambda topic: every
    worker._unsettled = lambda: False


def customer_state() -> dict[str, Any]:
    """Heap bytes a customer takes in each of the worker's CUSTOMER_TABLES, its rank index, all.

    Weighed as a worker holds them once it has recovered them (`recovered_bytes`).
    """
    customers: set[str] = set()
    tables: list[TableRecords] = []
    for name in CUSTOMER_TABLES:
        table = getattr(worker, name)
        entries = table.data.data  # faust.stores.memory.Store's dict
        customers |= entries.keys()
        records = [
            (codecs.dumps(table.key_serializer, key), codecs.dumps(table.value_serializer, value))
            for key, value in entries.items()
        ]
        tables.append((name, records, table.key_serializer, table.value_serializer))
    held = recovered_bytes(tables, worker.population.interval)
    each = {name: size / len(customers) for name, size in held.items()}
    return {"customers": len(customers), "bytes_per_customer": each | {"all": sum(each.values())}}


def basket_rows_read() -> int:
    """The baskets the item-rows handler has read for its rows (`stream_basket_rows_total`)."""
    return int(worker.registry.get_sample_value("stream_basket_rows_total") or 0)


async def measure(
    events: int, customers: int, history: int, random_ids: bool = False
) -> dict[str, Any]:
    """CPU an input event of the handlers on the bench workload, after learning its history.

    `random_ids`: the workload's event, order and cart ids are random UUIDs
    (`DemoFeed`), not serial numbers: what they cost the state to hold.
    """
    partitions = worker.settings.partitions
    producer = LocalProducer()
    worker.app.producer = cast(Any, producer)
    own_every_partition(partitions)
    workload = Workload.generate(events, customers, history=history, random_ids=random_ids)
    gc.freeze()  # what is alive once started, as a worker does (stream.health.Worker)
    handlers = Handlers(producer)
    await handlers.run(inputs(workload.history, partitions))
    handlers = Handlers(producer)
    producer.sent.clear()
    producer.sent_bytes.clear()
    timed = inputs(workload.events, partitions)
    rows_before = basket_rows_read()
    started = time.process_time()
    await handlers.run(timed)
    cpu = time.process_time() - started
    spent = sum(handlers.seconds.values())
    return {
        "events": len(timed),
        "cpu_us_per_event": 1e6 * cpu / len(timed),
        "us_per_call": {k: 1e6 * handlers.seconds[k] / handlers.calls[k] for k in handlers.calls},
        "calls": dict(handlers.calls),
        "share": {k: handlers.seconds[k] / spent for k in handlers.seconds},
        "records_sent": dict(producer.sent),
        "basket_rows": basket_rows_read() - rows_before,
        "bytes_sent": dict(producer.sent_bytes),
        "state": customer_state(),
    }


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream.bench.handlers")
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--customers", type=int, required=True)
    parser.add_argument("--history", type=int, required=True)
    parser.add_argument("--random-ids", action="store_true", help="ids as random UUIDs")
    args = parser.parse_args(argv)
    figures = asyncio.run(measure(args.events, args.customers, args.history, args.random_ids))
    sys.stdout.buffer.write(orjson.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
