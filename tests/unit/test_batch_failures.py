"""The order agent's batch when the producer refuses its item-baskets records.

The worker's order handler and error handler run in a Faust agent
(`test_context`: a channel, no broker) in a subprocess, its producer
refusing the first item-baskets record: every order of the batch goes to
dead-letters once, and a record rejected as invalid before is not kept twice.
"""

from __future__ import annotations

from pathlib import Path

from tests.scripts import printed, run_script

SCRIPT = r"""
import asyncio
from typing import Any

import faust
import orjson
from faust.types import TP, RecordMetadata

from stream import app as worker
from stream.batches import handle_each
from stream.codec import MAX_DEAD_LETTER_BYTES

worker.dead_letters_limit._value = MAX_DEAD_LETTER_BYTES  # known: no lookup at a broker
worker.dead_letters_limit._until = float("inf")


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.baskets_tried = 0

    async def send(self, topic, key, value, partition, timestamp, headers):  # type: ignore
        if topic == worker.T.item_baskets:
            self.baskets_tried += 1
            if self.baskets_tried == 1:
                raise RuntimeError("the broker refused an item-baskets record")
        self.sent.append((topic, value))
        done = asyncio.get_running_loop().create_future()
        done.set_result(RecordMetadata(topic, 0, TP(topic, 0), len(self.sent)))
        return done


def order(n: int) -> tuple[bytes, bytes]:
    cid = f"c{n}"
    return cid.encode(), orjson.dumps({
        "event_id": f"e{n}", "type": "order_completed", "customer_id": cid,
        "ts": "2026-11-23T09:15:00Z", "order_id": f"o{n}",
        "items": [{"sku": "a", "unit_price": 10.0}, {"sku": f"b{n % 7}", "unit_price": 5.0}],
    })


async def main() -> None:
    producer = Producer()
    worker.app.producer = producer  # type: ignore[assignment]
    app = faust.App("batch-failures", store="memory://", autodiscover=False)
    seen: list[Any] = []
    finished = asyncio.Event()

    async def handle(event: Any) -> None:
        seen.append(event)
        await worker.handle_purchase(event)

    async def after_batch() -> None:
        try:
            await worker.send_routed_baskets()
        finally:
            finished.set()

    @app.agent()
    async def orders(stream: faust.StreamT[bytes]) -> None:
        await handle_each(
            stream, handle, worker.kept_on_error(worker.T.purchase),
            within=60.0, max_events=500, after_batch=after_batch,
        )

    async with orders.test_context() as sink:
        for key, value in [(b"c0", b"{not json"), *(order(n) for n in range(1, 151))]:
            await sink.put(value, key=key, wait=False)
        await asyncio.wait_for(finished.wait(), 20)
        await asyncio.sleep(0.2)
        acked = [event.message.acked for event in seen]
    app.consumer._thread.thread_loop.close()
    letters = [orjson.loads(v) for t, v in producer.sent if t == worker.T.dead_letters]
    print(orjson.dumps({
        "handled": len(seen),
        "acked": sum(acked),
        "letters": sorted((d["offset"], d["reason"]) for d in letters),
        "baskets_sent": sum(1 for t, _ in producer.sent if t == worker.T.item_baskets),
    }).decode())


asyncio.run(main())
"""


def test_a_refused_baskets_record_keeps_every_order_of_its_batch_once(tmp_path: Path) -> None:
    """150 orders and a bad record in one batch, the first item-baskets record refused: each
    order is dead-lettered once (processing_error), the bad record once (not_json), all acked.
    Before, the full record of 100 baskets went from inside one order's handler: only that
    order was kept, the 99 others' baskets lost; and the bad record was kept twice."""
    figures = printed(run_script(SCRIPT, tmp_path))
    assert figures["handled"] == 151
    assert figures["acked"] == 151
    offsets = [offset for offset, _ in figures["letters"]]
    assert offsets == sorted(set(offsets)), "a record dead-lettered twice"
    assert figures["letters"] == [[0, "not_json"]] + [
        [n, "processing_error"] for n in range(1, 151)
    ]
