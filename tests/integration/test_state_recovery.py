"""State survives worker restarts: RocksDB on local disk and changelog recovery.

The production store (`STREAM_STORE=rocksdb://`, via rocksdict) keeps the
tables on disk; a worker that starts on a fresh disk rebuilds them from the
changelog topics. Either way the customer's running value goes on from
where it was, never from zero and never counted twice.
"""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from typing import Any

import orjson
import pytest

from stream.broker import EmbeddedBroker
from stream.config import Security
from tests.integration.conftest import Deployment, namespace

pytestmark = pytest.mark.integration

CUSTOMERS = [f"r{n}" for n in range(6)]


def orders(batch: int) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"e-{batch}-{c}",
            "type": "order_completed",
            "customer_id": c,
            "ts": f"2026-11-{10 + batch:02d}T10:00:00Z",
            "order_id": f"o-{batch}-{c}",
            "items": [{"sku": f"sku-{batch}", "quantity": 1, "unit_price": 12.5 + n}],
        }
        for n, c in enumerate(CUSTOMERS)
    ]


async def send_and_wait(deployment: Deployment, batch: int, seen: int) -> dict[str, Any]:
    await deployment.produce_events(deployment.topics.purchase, orders(batch))
    records = await deployment.read(
        deployment.topics.customer_ltv, lambda rs: len(rs) >= seen + len(CUSTOMERS)
    )
    return {r.key.decode(): orjson.loads(r.value) for r in records}


@pytest.mark.parametrize("batches", [3])
async def test_rocksdb_state_survives_restart_and_rebuilds_from_changelog(
    deployment: Deployment, batches: int
) -> None:
    """Batch 1 on worker A; batch 2 on B (A's disk); batch 3 on C (empty disk): sums add up."""
    first = deployment.start_worker(data="disk-a", STREAM_STORE="rocksdb://")
    await send_and_wait(deployment, 1, 0)
    assert first.stop() == 0, deployment.logs()

    second = deployment.start_worker(data="disk-a", STREAM_STORE="rocksdb://")
    await send_and_wait(deployment, 2, len(CUSTOMERS))
    assert second.stop() == 0, deployment.logs()

    deployment.start_worker(data="disk-c", STREAM_STORE="rocksdb://")
    latest = await send_and_wait(deployment, 3, 2 * len(CUSTOMERS))

    for n, customer in enumerate(CUSTOMERS):
        assert latest[customer]["orders"] == batches
        assert Decimal(str(latest[customer]["revenue"])) == batches * (Decimal("12.5") + n)
    assert (deployment.directory / "disk-a").exists()


async def test_rocksdb_keeps_the_offset_of_the_last_changelog_record_it_holds(
    broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Each partition's RocksDB database remembers its changelog's last offset (`app.put`).

    A restarted worker recovers each table partition from that offset on, not
    from the start of its changelog.
    """
    from rocksdict import AccessType, Rdict

    async with namespace(broker, tmp_path_factory) as fresh:  # no records yet, no worker
        worker = fresh.start_worker(data="disk", STREAM_STORE="rocksdb://")
        await send_and_wait(fresh, 1, 0)
        assert worker.stop() == 0, fresh.logs()
        changelog = f"{fresh.settings.app_id}-customers-changelog"
        records = await fresh.read(changelog, lambda rs: len(rs) >= len(CUSTOMERS))
    last = {r.partition: r.offset for r in sorted(records, key=lambda r: r.offset)}
    held: dict[int, int] = {}
    for path in (fresh.directory / "disk").rglob("customers-*.db"):
        db = Rdict(str(path), access_type=AccessType.read_only())
        try:
            offset = db.get(b"__faust\0offset__")  # Faust's key (faust.stores.rocksdb)
        finally:
            db.close()
        if offset is not None:
            held[int(path.stem.rsplit("-", 1)[1])] = int(offset)
    assert held == last


async def test_committed_cart_adds_are_in_the_changelog_as_the_last_record_per_key(
    broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Once an add's offset is committed its cart is in the changelog, even after a SIGKILL.

    Records wait, the last per key (stream/changelog.py); here the timer that
    sends them is set to a minute, so only the consumer's send before each
    commit can have put them there (without it, no record at all). A burst
    of adds to four carts leaves one record per cart, not one per add, and
    it holds every item.
    """
    customers, per_cart = [f"k{n}" for n in range(4)], 15
    adds = [
        {
            "event_id": f"add-{c}-{n}",
            "type": "item_added",
            "customer_id": c,
            "ts": f"2026-11-20T10:{n:02d}:00Z",
            "sku": f"sku-{n}",
            "cart_id": f"cart-{c}",
        }
        for n in range(per_cart)
        for c in customers
    ]
    async with namespace(broker, tmp_path_factory) as fresh:
        worker = fresh.start_worker(STREAM_CHANGELOG_INTERVAL_MS="60000")
        placed = await fresh.produce_events(fresh.topics.cart, adds)
        ends: dict[int, int] = {}
        for partition, offset in placed:
            ends[partition] = max(ends.get(partition, 0), offset + 1)
        deadline = asyncio.get_running_loop().time() + 90
        while True:
            committed = await fresh.committed(fresh.topics.cart)
            if all(committed[p] >= end for p, end in ends.items()):
                break
            assert asyncio.get_running_loop().time() < deadline, fresh.logs()
            await asyncio.sleep(0.5)
        worker.kill()  # nothing is sent after the commit we saw
        changelog = f"{fresh.settings.app_id}-carts-changelog"
        records = await fresh.read(changelog, lambda rs: len(rs) >= len(customers), settle=1.0)
    last = {r.key.decode(): orjson.loads(r.value) for r in sorted(records, key=lambda r: r.offset)}
    assert sorted(last) == customers
    for customer in customers:
        name, cart = last[customer]
        assert name == "CartState"
        assert cart["items"] == {f"sku-{n}": 1 for n in range(per_cart)}
    assert len(records) <= 2 * len(customers), len(records)  # a commit may split a burst


async def test_end_offsets_reach_the_last_record(
    deployment: Deployment, caplog: pytest.LogCaptureFixture
) -> None:
    """After three 3-record batches the verified end is 9, whatever the broker first says."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.structs import TopicPartition

    from stream.offsets import true_end_offsets

    topic = deployment.topics.dead_letters  # any topic of this namespace, empty so far
    tp = TopicPartition(topic, 0)
    producer = AIOKafkaProducer(bootstrap_servers=deployment.broker.bootstrap, linger_ms=50)
    await producer.start()
    try:
        for _ in range(3):
            sent = [await producer.send(topic, value=b"x", partition=0) for _ in range(3)]
            await asyncio.gather(*sent)
    finally:
        await producer.stop()
    said = {tp: 7}  # what the embedded broker answers here (the last batch's base + 1)
    assert await true_end_offsets(said, [deployment.broker.bootstrap], Security()) == {tp: 9}
    right = {tp: 9}
    assert await true_end_offsets(right, [deployment.broker.bootstrap], Security()) == {tp: 9}
    # An end past every record (nothing comes back from it): kept as said, and said in the log.
    beyond = {tp: 20}
    with caplog.at_level(logging.WARNING, logger="stream.offsets"):
        kept = await true_end_offsets(beyond, [deployment.broker.bootstrap], Security(), wait_s=1)
    assert kept == {tp: 20}
    assert [r.getMessage() for r in caplog.records if r.name == "stream.offsets"] == [
        f"no record came back from the end of {[tp]} in 1 s: their ends stay as the broker "
        "said, and a table may recover short of its last batch"
    ]
