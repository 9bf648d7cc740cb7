"""Baseline (b) of `python -m stream bench`: a raw aiokafka relay, no Faust.

Consumes the input topics in a consumer group and produces every record's
bytes to the bench's output topic (`BENCH_OUT`), with the same fetch
wait and producer linger as the pipeline. Sends are not awaited one by one:
each fetched batch is sent, then awaited as a whole; offsets are committed
after (at-least-once, as the pipeline).
"""

from __future__ import annotations

import asyncio
import os
import signal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from stream.config import Settings
from stream.kafka import client_security


async def relay(settings: Settings, out: str) -> None:
    security = client_security(settings.security)
    consumer = AIOKafkaConsumer(
        settings.topics.cart,
        settings.topics.purchase,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=f"{settings.app_id}-relay",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        **security,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        linger_ms=settings.producer_linger_ms,
        **security,
    )
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await producer.start()
    await consumer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            sent = [
                await producer.send(out, key=record.key, value=record.value)
                for records in batches.values()
                for record in records
            ]
            if sent:
                await asyncio.gather(*sent)
                await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()


def main() -> None:
    out = os.environ["BENCH_OUT"]
    settings = Settings.from_env()
    asyncio.run(relay(settings, out))


if __name__ == "__main__":
    main()
