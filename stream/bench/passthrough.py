"""Baseline (a) of `python -m stream bench`: a bare Faust passthrough.

One agent per input topic: orjson-decode each record and forward it to the
bench's output topic. Same Faust version and client settings as the
pipeline (stream/app.py): broker timeouts, producer linger, fetch wait.
Run as `python -m stream.bench.passthrough worker` with the bench's STREAM_*
environment; `BENCH_OUT` names the output topic.
"""

from __future__ import annotations

import os

import faust
import orjson

from stream.config import Settings
from stream.health import Worker
from stream.kafka import tuned_transport

settings = Settings.from_env()
app = faust.App(
    f"{settings.app_id}-passthrough",
    env={},
    broker=settings.broker or "kafka://localhost:9092",
    topic_partitions=settings.partitions,
    consumer_auto_offset_reset="earliest",
    broker_session_timeout=10.0,
    broker_rebalance_timeout=10.0,
    broker_heartbeat_interval=1.0,
    producer_linger=0.005,
    producer_max_batch_size=256 * 1024,
    web_enabled=False,
    autodiscover=False,
    Worker=Worker,  # no terminal spinner, which logs at DEBUG (see stream.health.Worker)
)
tuned_transport(app, settings.fetch_max_wait_ms)
out = app.topic(os.environ["BENCH_OUT"], key_serializer="raw", value_serializer="raw")


async def forward(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        await out.send(key=event.key, value=orjson.dumps(orjson.loads(event.value)))


for name in (settings.topics.cart, settings.topics.purchase):
    app.agent(app.topic(name, key_serializer="raw", value_serializer="raw"), name=name)(forward)

if __name__ == "__main__":
    app.main()
