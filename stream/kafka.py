"""Kafka clients: security (SASL/TLS) for Faust and plain aiokafka; Faust's consumer, fixed.

`tuned_transport` gives the Faust app a consumer that waits less for records
at the broker, never lets a record fetched before a seek through after it,
and sends what must be in Kafka (the pending changelog records) before it
commits offsets, and a producer whose failed records stop the commits
(`Deliveries`). `KeyPartitioner` is the producer's partitioner: Kafka's,
each key hashed once.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
import types
from collections import Counter
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Generator,
    Mapping,
    Sequence,
)
from functools import lru_cache, partial
from typing import Any, TypeVar, cast
from weakref import WeakKeyDictionary

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import for_code
from aiokafka.helpers import create_ssl_context
from aiokafka.partitioner import DefaultPartitioner, murmur2
from aiokafka.structs import OffsetAndMetadata
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message

from stream.config import Security, Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

TOPIC_LIMIT_TIMEOUT_S = 10.0  # a topic's config lookup, all of it
FAILED_LOOKUP_TTL_S = 60.0  # how long the default stands after a failed lookup


def ssl_context(security: Security) -> ssl.SSLContext | None:
    """A TLS context when the protocol uses TLS (SSL, SASL_SSL); else None."""
    if not security.protocol.endswith("SSL"):
        return None
    context: ssl.SSLContext = create_ssl_context(
        cafile=str(security.ssl_cafile) if security.ssl_cafile else None,
        certfile=str(security.ssl_certfile) if security.ssl_certfile else None,
        keyfile=str(security.ssl_keyfile) if security.ssl_keyfile else None,
    )
    return context


def faust_credentials(security: Security) -> Any:
    """Faust's `broker_credentials` for these settings (None for PLAINTEXT)."""
    context = ssl_context(security)
    if security.protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=security.sasl_username,
            password=security.sasl_password,
            mechanism=security.sasl_mechanism or "PLAIN",
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def client_security(security: Security) -> dict[str, Any]:
    """Keyword arguments for AIOKafkaProducer/Consumer/AdminClient."""
    options: dict[str, Any] = {"security_protocol": security.protocol}
    context = ssl_context(security)
    if context is not None:
        options["ssl_context"] = context
    if security.protocol.startswith("SASL"):
        options["sasl_mechanism"] = security.sasl_mechanism or "PLAIN"
        options["sasl_plain_username"] = security.sasl_username
        options["sasl_plain_password"] = security.sasl_password
    return options


async def max_message_bytes(settings: Settings, topic: str) -> int | None:
    """`topic`'s `max.message.bytes` as the cluster reports it (None: not reported).

    Apache Kafka reports every config, the broker's default included; the
    embedded broker only those set on the topic. All of a topic's configs
    are asked for: the embedded broker drops a request that names them.
    """
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.worker_servers,
        request_timeout_ms=int(TOPIC_LIMIT_TIMEOUT_S * 1000),
        **client_security(settings.security),
    )
    try:
        await admin.start()
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    [(error_code, error_message, _, _, entries)] = response.resources
    if error_code:
        raise for_code(error_code)(f"{topic}: {error_message}")
    for name, value, *_ in entries:
        if name == "max.message.bytes" and value is not None:
            return int(value)
    return None


class TopicLimit:
    """A topic's `max.message.bytes`: looked up when first asked for, again after `ttl_s`.

    Until it is known, `default`; for FAILED_LOOKUP_TTL_S after a lookup
    that failed (a broker away, no right to describe configs, an answer not
    understood), the value known before, or `default`. A limit below
    `default` is logged as a warning when it is found.
    """

    def __init__(
        self,
        topic: str,
        lookup: Callable[[], Awaitable[int | None]],
        default: int,
        ttl_s: float = 600.0,
    ) -> None:
        self.topic = topic
        self.default = default
        self._lookup = lookup
        self._ttl_s = ttl_s
        self._value: int | None = None
        self._until = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> int:
        if self._value is None or time.monotonic() >= self._until:
            async with self._lock:
                if self._value is None or time.monotonic() >= self._until:
                    await self._refresh()
        assert self._value is not None
        return self._value

    async def _refresh(self) -> None:
        try:
            async with asyncio.timeout(TOPIC_LIMIT_TIMEOUT_S):
                found = await self._lookup()
        except Exception as exc:  # whatever went wrong, never stop a caller
            # The value known stands (a failed re-read must not forget a low limit:
            # dead letters sized for 5 MiB would be refused); else the default.
            value = self.default if self._value is None else self._value
            log.warning(
                "could not read a topic's max.message.bytes: assuming %d bytes",
                value,
                extra={"topic": self.topic, "default": self.default, "error": repr(exc)},
            )
            ttl = FAILED_LOOKUP_TTL_S
        else:
            value, ttl = (self.default if found is None else found), self._ttl_s
            if value != self._value:
                low = value < self.default
                log.log(
                    logging.WARNING if low else logging.INFO,
                    "topic takes records up to %d bytes%s",
                    value,
                    f", less than the {self.default} wanted" if low else "",
                    extra={"topic": self.topic, "max_message_bytes": found},
                )
        self._value, self._until = value, time.monotonic() + ttl


def faust_client_options(settings: Settings) -> dict[str, Any]:
    """`faust.App` options for the broker and its clients: the workers' and the bench's baselines'.

    Broker timeouts for quick rebalances, the producer's linger
    (STREAM_PRODUCER_LINGER_MS) and how long it tries to deliver a record
    (STREAM_PRODUCER_REQUEST_TIMEOUT_S), 256 KiB batches, `KeyPartitioner`; no
    autodiscovery. Faust reads its own env names (BROKER_URL, WEB_PORT, ...)
    over these arguments; an empty env makes STREAM_* the only settings that
    count.
    """
    return {
        "env": {},
        "broker": settings.broker_url,
        "broker_credentials": faust_credentials(settings.security),
        "datadir": str(settings.data_dir),
        "topic_partitions": settings.partitions,
        "consumer_auto_offset_reset": "earliest",
        "broker_session_timeout": 10.0,
        "broker_rebalance_timeout": 10.0,
        "broker_heartbeat_interval": 1.0,
        "producer_linger": settings.producer_linger_ms / 1000,
        "producer_request_timeout": settings.producer_request_timeout_s,
        "producer_max_batch_size": 256 * 1024,
        "producer_partitioner": KeyPartitioner(),
        "autodiscover": False,
    }


def tuned_transport(
    app: faust.App,
    fetch_max_wait_ms: int,
    before_commit: Callable[[], Awaitable[None]] | None = None,
    *,
    eager_delivery: bool = True,
) -> None:
    """Give `app` a consumer that waits at most `fetch_max_wait_ms` and is safe across seeks.

    Fetch wait: Faust 0.15 hard-codes 1,500 ms for its stream consumer, so a
    record that arrives on a quiet partition waits up to 1.5 s before the
    agent sees it (seen: p50 1.27 s from add to suggestion at 1,000 adds/s).
    A short wait costs one fetch request per wait on an idle worker (100 a
    second at the default 10 ms), which a broker answers from memory.

    Seeks: see `SeekSafeConsumer`. `before_commit` is awaited before every
    offset commit (`SeekSafeConsumer.before_commit`). Call before the app
    creates its topics (it sets `app.transport`).

    Delivery: with `eager_delivery` (the workers'), records go from the fetch
    to the streams without a task apiece unless one must wait
    (`EagerDeliveryConsumer`); without, as Faust does it (the bench's bare
    passthrough).
    """

    class Thread(faust_aiokafka.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> AIOKafkaConsumer:
            consumer = super()._create_worker_consumer(transport)
            consumer._fetch_max_wait_ms = fetch_max_wait_ms  # read by start()
            return consumer

    base = EagerDeliveryConsumer if eager_delivery else SeekSafeConsumer

    class FetchConsumer(base):  # type: ignore[valid-type,misc]
        def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
            return Thread(self, loop=self.loop, beacon=self.beacon)

        async def before_commit(self) -> None:
            if before_commit is not None:
                await before_commit()

    class Transport(faust_aiokafka.Transport):
        Consumer = FetchConsumer
        Producer = WatchedProducer

    app.transport = Transport(app.conf.broker_consumer, app)


BEGINNING = -1  # a seek target: the partition's earliest offset


class KeyPartitioner:
    """Kafka's default partitioner (murmur2 of the key, as the Java client), each key hashed once.

    aiokafka's murmur2 is pure Python: 7-10 us a key, for every keyed record
    sent without a partition (suggestions, triggers, customer-ltv, baskets);
    the keys (customers, SKUs) repeat, and a cached hash costs ~0.2 us.
    """

    def __call__(
        self, key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]
    ) -> int:
        if key is None:  # a random available partition
            return int(_RANDOM(key, all_partitions, available))
        return all_partitions[_key_hash(key) % len(all_partitions)]


_RANDOM = DefaultPartitioner()


@lru_cache(maxsize=1 << 16)  # ~6 MB at most
def _key_hash(key: bytes) -> int:
    return int(murmur2(key)) & 0x7FFFFFFF


class Deliveries:
    """Records the producer failed to deliver: no offset is committed past them.

    Faust's commit flushes the producer, which waits until every record sent
    has been delivered or has failed, then commits the offsets; it looks at
    neither. aiokafka gives up on a record its broker has not taken within
    the producer's request timeout (STREAM_PRODUCER_REQUEST_TIMEOUT_S,
    Faust's `producer_request_timeout`: 20 minutes by default), and Faust's
    producer is not idempotent and does not send it again. Committed past, a
    suggestion, a trigger or a changelog record lost so would be lost for
    good.

    So the producer's batches are watched (`WatchedProducer`: one callback a
    batch, not a record; a callback a record cost the handlers 12 us an
    event, 142 -> 154 in `bench handlers`, 3 interleaved rounds); once one
    has failed, the consumer commits no more offsets and crashes the app
    (`/health/live` answers 503, then the process exits with status 1;
    tests/integration/test_broker_outage.py). A restarted worker reads
    again from the last offsets committed, those of events whose records
    were all delivered, and sends them again.
    """

    def __init__(self) -> None:
        self.failed = 0
        self.failure: BaseException | None = None  # the first

    def watch(self, sent: asyncio.Future[Any]) -> None:
        """Count `sent` (a producer's future) if it fails or is cancelled."""
        sent.add_done_callback(self._done)

    def _done(self, sent: asyncio.Future[Any]) -> None:
        if sent.cancelled():
            self._fail(asyncio.CancelledError("a record's send was cancelled"))
        elif (failure := sent.exception()) is not None:
            self._fail(failure)

    def _fail(self, failure: BaseException) -> None:
        self.failed += 1
        if self.failure is None:
            self.failure = failure
            log.error("a record was not delivered: no more offsets committed: %r", failure)

    async def refuse_commit(self, app: Any) -> bool:
        """True, and the app crashed, if a record failed: the offsets must not be committed."""
        if self.failure is None:
            return False
        if not app.crashed:
            await app.crash(
                RuntimeError(f"{self.failed} record(s) not delivered, the first: {self.failure!r}")
            )
        return True


_DELIVERIES: WeakKeyDictionary[Any, Deliveries] = WeakKeyDictionary()


def deliveries(app: Any) -> Deliveries:
    """The app's `Deliveries` (made on first use)."""
    return _DELIVERIES.setdefault(app, Deliveries())


class WatchedProducer(faust_aiokafka.Producer):
    """Faust's aiokafka producer, each batch of its watched by the app's `Deliveries`.

    Every record aiokafka fails goes down with its batch (`MessageBatch.failure`:
    a broker's error, a batch expired), so a callback on each batch's future
    sees every failure.
    """

    def _new_producer(self, transactional_id: str | None = None) -> AIOKafkaProducer:
        producer = super()._new_producer(transactional_id)
        accumulator = producer._message_accumulator
        append, watched = accumulator._append_batch, deliveries(self.app)

        def append_watched(builder: Any, tp: Any) -> Any:
            batch = append(builder, tp)
            watched.watch(batch.future)
            return batch

        accumulator._append_batch = append_watched
        return producer


class SeekSafeConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer, less a way to lose records around a rebalance.

    Faust fetches in a thread of its own; a batch fetched before a seek (the
    seek to the committed offsets after every rebalance and recovery) can be
    handed to the stream after it. Faust then takes the committed offset c
    and the stale record's offset K as a gap: it counts c+1..K-1 as acked
    (they may be committed past) and, its read offset now K, drops those
    records when they arrive again. After a SIGKILL and a restart this lost
    orders (issue #8: tests/integration/test_reliability.py).

    Here each partition counts its seeks. A batch's records of a partition
    sought since the batch was fetched are dropped, and the partition is
    sought once more to where the last seek put it, since the batch may
    also have been read after that seek (then the position moved past it).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._seeks: Counter[TP] = Counter()
        self._sought: dict[TP, int] = {}  # the last seek's target (or BEGINNING)
        self._seeking = asyncio.Lock()

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:  # noqa: ASYNC109
        async with self._seeking:
            seeks = self._seeks.copy()
        stale: set[TP] = set()
        async for tp, message in super().getmany(timeout):
            if self._seeking.locked():
                async with self._seeking:
                    pass
            if self._seeks[tp] == seeks[tp]:
                yield tp, message
            elif tp not in stale:
                stale.add(tp)
                target = self._sought[tp]
                log.info(
                    "records of %s fetched before a seek dropped (from offset %d); "
                    "reading again from %s",
                    tp,
                    message.offset,
                    "the beginning" if target == BEGINNING else target,
                )
                await self.seek(tp, target)
                if target == BEGINNING:
                    self._read_offset[tp] = None  # as before any record was read

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        """Finish and commit what was read of the revoked partitions, then hand them over.

        Faust 0.15.3 means to (stop the streams, wait for the events in hand,
        flush, commit) but skips it all when the consumer reports no
        assignment, which aiokafka 0.14 does here; and it forgets the acked
        offsets first. The new owner then read again from the last periodic
        commit and answered those cart adds a second time.
        """
        app: Any = self.app
        if revoked and not app.should_stop:
            self.stop_flow()
            app.flow_control.suspend()
            app.flow_control.clear()  # queued, not started: the new owner reads them
            await app._consumer_wait_empty(self, log)
            await self.before_commit()
            await app.producer.flush()
            await self._commit_now(revoked)
        await super().on_partitions_revoked(revoked)

    async def before_commit(self) -> None:
        """Send what must be in Kafka before offsets are committed (here: nothing).

        Awaited before each commit, once the offsets to commit are fixed, so
        everything written for the events they cover is sent; Faust's commit
        then flushes the producer (waits for delivery) and commits.
        """

    async def _commit(self, offsets: Mapping[TP, int]) -> bool:
        # Faust calls this once its producer is flushed (`Deliveries`).
        if await deliveries(self.app).refuse_commit(self.app):
            return False
        return await super()._commit(offsets)

    async def _commit_offsets(
        self, offsets: Mapping[TP, int], start_new_transaction: bool = True
    ) -> bool:
        # Faust's commit path (periodic, every N acks, on stop), past the
        # point where it has chosen the offsets and before its producer flush.
        await self.before_commit()
        return await super()._commit_offsets(offsets, start_new_transaction=start_new_transaction)

    async def _commit_now(self, tps: set[TP]) -> None:
        """Commit the acked offsets of `tps` through aiokafka, past Faust's assignment check."""
        offsets = self._filter_committable_offsets(tps)
        if not offsets or await deliveries(self.app).refuse_commit(self.app):
            return
        consumer = self._thread._ensure_consumer()
        request = {tp: OffsetAndMetadata(offset, "") for tp, offset in offsets.items()}
        try:
            await self._thread.call_thread(consumer.commit, request)
        except Exception as exc:  # at-least-once still: the new owner reads them again
            log.warning("commit before handing over %s failed: %r", sorted(offsets), exc)
        else:
            self._committed_offset.update(offsets)
            log.info("committed before handing over: %s", offsets)

    def _sought_to(self, targets: Mapping[TP, int]) -> None:
        for tp, offset in targets.items():
            self._seeks[tp] += 1
            self._sought[tp] = offset

    async def _seek(self, partition: TP, offset: int) -> None:
        """Seek `partition` to `offset` (BEGINNING: its earliest); Faust's `seek` calls this."""
        async with self._seeking:
            if offset == BEGINNING:
                await self._thread.seek_to_beginning(partition)
            else:
                await super()._seek(partition, offset)
            self._sought_to({partition: offset})

    async def seek_wait(self, partitions: Mapping[TP, int]) -> None:
        async with self._seeking:
            await super().seek_wait(partitions)
            self._sought_to(partitions)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        async with self._seeking:
            committed = await super().seek_to_committed()
            # No committed offset: the consumer starts from the beginning
            # (the app's auto_offset_reset is "earliest").
            self._sought_to(
                {tp: BEGINNING if at is None or at < 0 else at for tp, at in committed.items()}
            )
            return committed


class EagerDeliveryConsumer(SeekSafeConsumer):
    """`SeekSafeConsumer`, handing each record to the streams without a task unless it must wait.

    Faust's fetch loop (`Consumer._drain_messages`) delivers every record
    with `wait_first(callback(message), suspend_flow.wait())`: four tasks
    (the delivery, the suspension, the consumer's stopped and crashed
    events), an `asyncio.wait`, then three cancellations, so that a rebalance
    can interrupt a delivery that waits (for flow control, or for room in a
    full stream buffer). Nearly every delivery waits for nothing. Here the
    delivery runs at once, up to its first wait; only one that does wait is
    raced against the suspension as Faust races it (`resume`). The rest of
    the loop is Faust 0.15.3's (a unit test pins its source: a new Faust's
    loop is to be read against this one).

    Measured (`python -m stream bench pipeline --processors pipeline --events
    20000 --runs 1`, two interleaved pairs): 4,306 / 4,090 -> 5,563 / 4,885
    events/s, 0.22 / 0.24 -> 0.17 / 0.19 CPU ms an event. The pipeline reads
    1.56 records an input event (the orders' baskets come back through
    item-baskets), so it gains more than one record an event would.
    """

    async def _drain_messages(self, fetcher: Any) -> None:
        # Faust's, but for the delivery: see the class docstring.
        callback = cast(Callable[[Message], Coroutine[Any, Any, None]], self.callback)
        getmany = self.getmany
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set

        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        flag_consumer_fetching = CONSUMER_FETCHING
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for

        yield_every = 100
        num_since_yield = 0
        sleep = asyncio.sleep

        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(flag_consumer_fetching)
                ait = getmany(timeout=1.0)

                # Sleeping because sometimes getmany is called in a loop
                # never releasing to the event loop
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await sleep(0)
                            num_since_yield = 0

                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            # We have a gap in income messages
                            if gap > 1 and r_offset:
                                acks_enabled = acks_enabled_for(message.topic)
                                if acks_enabled:
                                    await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None and self._n_acked >= commit_every:
                                self._n_acked = 0
                                await self.commit()
                            delivery = callback(message)
                            try:
                                waiting_on = delivery.send(None)
                            except StopIteration:
                                pass  # delivered without waiting: the usual case
                            else:
                                await self.wait_first(
                                    resume(delivery, waiting_on), self.suspend_flow.wait()
                                )
                            set_read_offset(tp, offset)
                        else:
                            self.log.dev(
                                "DROPPED MESSAGE ROFF %r: k=%r v=%r",
                                offset,
                                message.key,
                                message.value,
                            )
                    unset_flag(flag_consumer_fetching)

        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                # we're already stopping so ignore
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                # we're already stopping so ignore
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(flag_consumer_fetching)


async def resume(coro: Coroutine[Any, Any, T], waiting_on: Any) -> T:
    """Await `coro`, which has already run up to its first wait: it yielded `waiting_on`.

    From there it goes on as if it had been awaited from the start: the
    awaiting task waits for what it waits for, and what is sent or thrown in
    (a cancellation) reaches it where it waits.
    """
    return cast(T, await _go_on(coro, waiting_on))


@types.coroutine
def _go_on(coro: Coroutine[Any, Any, Any], waiting_on: Any) -> Generator[Any, Any, Any]:
    while True:
        try:
            sent = yield waiting_on
        except BaseException as exc:  # thrown in by the awaiting task: the coroutine gets it
            step = partial(coro.throw, exc)
        else:
            step = partial(coro.send, sent)
        try:
            waiting_on = step()
        except StopIteration as stop:
            return stop.value
