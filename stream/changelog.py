"""Table writes whose changelog records wait, the last one per key, to be sent together.

A Faust table write (`table[key] = value`) sends one changelog record per
write. The pipeline writes a popular item's row with every basket it is in
and a customer's cart with every add, so most of those records are
overwritten by the next one within moments. `Changelogs.put` writes the
store at once (reads see it) and keeps only the key's latest record;
`flush` sends what is pending: every 0.2 s (a timer in stream/app.py) and,
whatever the timer did, before every offset commit (the consumer calls it;
Faust's commit then waits for the producer to deliver). That is the record
cache of Kafka Streams' state stores: what is committed is in the
changelog; what is not is read again after a crash, and the state is
idempotent to that (see each domain module).

Measured (bench A/B, 2 interleaved pairs, `python -m stream bench pipeline
--processors pipeline --events 10000 --runs 1`, the commit before against
this, sending at commits only): 1.86 / 2.10 -> 1.63 / 1.57 CPU ms an event.
Sending only at commits (2.8 s), one large produce request per commit
delayed the suggestions behind it: p99 from add to suggestion at 100 adds/s
went from 32 to 59-89 ms; with the timer, 34.5 / 32.2 against 37.7 / 36.0
before (`--processors relay,pipeline --events 2000 --runs 1 --rate 100`),
and the CPU gain held. What it costs: a standby replica or a
recovering worker sees a write up to 0.2 s later; at most `limit` keys wait
(then they are sent at once).

The records themselves are the ones Faust would send: the table's codecs,
to the partition of the event being processed (Faust's `partition_for_key`),
and, like Faust's `_on_changelog_sent`, the store is told each record's
offset once the broker has it (a RocksDB store recovers from there).
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any, cast

import faust
from faust.serializers import codecs
from faust.streams import current_event
from faust.types import TP, RecordMetadata, StoreT

log = logging.getLogger(__name__)

PENDING_LIMIT = 10_000  # keys waiting to be sent: ~2 MB at most, on top of the tables
YIELD_EVERY = 32  # records sent between two turns of the other tasks (~1 ms)


class Changelogs:
    """The pending changelog records of an app's tables: the latest per (table, key)."""

    def __init__(self, app: faust.App, limit: int = PENDING_LIMIT) -> None:
        self.app = app
        self.limit = limit
        self._pending: dict[tuple[str, str], tuple[Any, int, Any]] = {}
        self._flushing = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._pending)

    async def put(self, table: Any, key: str, value: Any) -> None:
        """`table[key] = value`; its changelog record waits for the next `flush`.

        Call it while processing an event: the record goes to that event's
        partition, as Faust's own table writes do. The in-memory store is
        told the key's partition too, as it is of each key it recovers, so
        that once this worker no longer owns the partition, the end of its
        next recovery drops the key (Faust's memory store tracks recovered
        keys only: a worker kept every key it had ever written).
        """
        event = current_event()
        if event is None:
            raise RuntimeError(f"{table.name}: a table is written while processing an event")
        partition = event.message.partition
        store = table.data
        store[key] = value  # RocksDB: the event's partition's database, as Faust's
        owners = getattr(store, "_key_partition", None)  # faust.stores.memory.Store
        if owners is not None:
            owners[key] = partition
        self.app.sensors.on_table_set(table, key, value)
        self._pending[(table.name, key)] = (table, partition, value)
        if len(self._pending) >= self.limit:
            await self.flush()

    async def flush(self) -> None:
        """Hand the records pending now to the producer (delivery is the producer's flush).

        One flush at a time: a commit's flush returns only once the timer's
        flush in progress has handed over its records too. Every YIELD_EVERY
        records it lets the agents run, so a large flush does not hold the
        event loop for its whole length; what they write meanwhile waits for
        the next flush (it belongs to events after the offsets being
        committed). A record the producer refuses stays pending (unless a
        newer one for its key came meanwhile) and the error propagates: the
        commit that called this does not happen.
        """
        async with self._flushing:
            records, self._pending = list(self._pending.items()), {}
            sent = 0
            try:
                for (_, key), (table, partition, value) in records:
                    await self._send(table, key, partition, value)
                    sent += 1
                    if sent % YIELD_EVERY == 0:
                        await asyncio.sleep(0)
            except BaseException:
                self._pending = dict(records[sent:]) | self._pending  # newer writes win
                raise

    async def _send(self, table: Any, key: str, partition: int, value: Any) -> None:
        topic = table.changelog_topic.get_topic_name()
        sent = await self.app.producer.send(
            topic,
            codecs.dumps(table.key_serializer, key),
            codecs.dumps(table.value_serializer, value),
            partition,
            None,
            None,
        )
        # aiokafka's future; Faust types it Awaitable.
        delivered = cast("asyncio.Future[RecordMetadata]", sent)
        delivered.add_done_callback(partial(_persisted, table.data, TP(topic, partition)))


def _persisted(store: StoreT[Any, Any], tp: TP, sent: asyncio.Future[RecordMetadata]) -> None:
    if sent.cancelled():
        return
    failed = sent.exception()
    if failed is not None:
        log.error("changelog record to %s not delivered: %r", tp, failed)
        return
    store.set_persisted_offset(tp, sent.result().offset)
