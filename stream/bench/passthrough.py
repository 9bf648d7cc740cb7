"""Baselines (a) and (d) of `python -m stream bench`: a bare Faust passthrough.

One agent per input topic: orjson-decode each record and forward it to the
bench's output topic. Same Faust version and client settings as the
pipeline (`stream.kafka.faust_client_options`, `tuned_transport`: broker
timeouts, producer linger and partitioner, fetch wait) and uvloop.
Run as `python -m stream.bench.passthrough worker` with the bench's STREAM_*
environment; `BENCH_OUT` names the output topic.

(a), the issue's baseline, forwards each event with `Topic.send`, and its
records reach the stream as Faust hands them over. (d), with
`BENCH_BATCHED=1`, is the cheapest Faust agent that still answers every
event: records handed over as the workers' are
(`stream.kafka.EagerDeliveryConsumer`), batches as the workers take them
(`stream.batches.take_batches`), each record sent straight to the producer
(as the pipeline's `stream.app.publish` does). Per event it pays only what no Faust agent
avoids: the fetch thread's hand-off, the stream's iteration and ack, one
send. The pipeline cannot be cheaper than (d).
"""

from __future__ import annotations

import os

import faust
import mode.loop
import orjson

from stream.batches import take_batches
from stream.config import Settings
from stream.health import Worker
from stream.kafka import faust_client_options, tuned_transport

settings = Settings.from_env()
app = faust.App(
    f"{settings.app_id}-passthrough",
    **faust_client_options(settings),  # datadir: the bench's folder, as STREAM_DATA_DIR says
    web_enabled=False,
    Worker=Worker,  # no terminal spinner, which logs at DEBUG (see stream.health.Worker)
)
BATCHED = os.environ.get("BENCH_BATCHED") == "1"
# (a) hands records from the fetch to the stream as Faust does; (d), like the
# workers, without a task apiece (stream.kafka.EagerDeliveryConsumer).
tuned_transport(app, settings.fetch_max_wait_ms, eager_delivery=BATCHED)
out = app.topic(os.environ["BENCH_OUT"], key_serializer="raw", value_serializer="raw")


async def forward(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        await out.send(key=event.key, value=orjson.dumps(orjson.loads(event.value)))


async def forward_batches(stream: faust.StreamT[bytes]) -> None:
    name = out.get_topic_name()
    async for events in take_batches(stream, 500, within=0.005):
        for event in events:
            value = orjson.dumps(orjson.loads(event.value))
            await app.producer.send(name, event.key, value, None, None, None)


agent = forward_batches if BATCHED else forward
for name in (settings.topics.cart, settings.topics.purchase):
    app.agent(app.topic(name, key_serializer="raw", value_serializer="raw"), name=name)(agent)

if __name__ == "__main__":
    mode.loop.use("uvloop")  # as the pipeline's workers (stream.app.main)
    app.main()
