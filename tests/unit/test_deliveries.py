"""stream.kafka.Deliveries: a record the producer failed to deliver stops the offset commits.

At-least-once: Faust's commit flushes the producer and commits without
looking at what failed; here every batch the producer makes is watched, and
once one has failed the worker's consumer commits nothing more and crashes
the app, so a restarted worker reads those events again and sends their
records again.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import faust
from aiokafka.errors import KafkaTimeoutError
from aiokafka.structs import TopicPartition
from faust.types import TP

from stream.kafka import Deliveries, deliveries, tuned_transport


def done(result: Any = None, failure: BaseException | None = None) -> asyncio.Future[Any]:
    sent: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    if failure is not None:
        sent.set_exception(failure)
    else:
        sent.set_result(result)
    return sent


async def settle() -> None:
    await asyncio.sleep(0)  # done callbacks run on the next turn of the loop


class App:
    """What `refuse_commit` uses of an app: whether it crashed, and `crash`."""

    def __init__(self) -> None:
        self.crashed = False
        self.reasons: list[BaseException] = []

    async def crash(self, reason: BaseException) -> None:
        self.crashed = True
        self.reasons.append(reason)


async def test_delivered_records_leave_the_commits_alone() -> None:
    watched = Deliveries()
    for _ in range(3):
        watched.watch(done(SimpleNamespace(offset=1)))
    await settle()
    app = App()
    assert watched.failed == 0 and watched.failure is None
    assert not await watched.refuse_commit(app) and not app.crashed


async def test_a_failed_or_cancelled_send_refuses_every_commit_and_crashes_the_app_once() -> None:
    watched = Deliveries()
    expired = KafkaTimeoutError("Batch for TopicPartition(...) expired")
    watched.watch(done(SimpleNamespace(offset=1)))
    watched.watch(done(failure=expired))
    cancelled = asyncio.get_running_loop().create_future()
    watched.watch(cancelled)
    cancelled.cancel()
    await settle()
    assert watched.failed == 2 and watched.failure is expired  # the first kept
    app = App()
    assert await watched.refuse_commit(app) and await watched.refuse_commit(app)
    assert app.crashed and len(app.reasons) == 1
    assert "2 record(s) not delivered" in str(app.reasons[0])


async def test_the_workers_producer_watches_each_batch_aiokafka_makes() -> None:
    """The producer `tuned_transport` gives: a batch that fails (expired) is counted."""
    app = faust.App("deliveries-producer-test", broker="kafka://127.0.0.1:1")
    tuned_transport(app, 10)
    producer = app.producer._new_producer()  # aiokafka's, not started
    try:
        accumulator = producer._message_accumulator
        tp = TopicPartition("cross-sell-suggestions", 0)
        delivered, failed = (
            accumulator._append_batch(accumulator.create_builder(), tp) for _ in range(2)
        )
        delivered.done(base_offset=7)
        failed.failure(KafkaTimeoutError("Batch for cross-sell-suggestions-0 expired"))
        await settle()
    finally:
        await producer.stop()
    watched = deliveries(app)
    assert watched.failed == 1 and isinstance(watched.failure, KafkaTimeoutError)


async def test_the_workers_consumer_commits_no_offsets_once_a_record_failed() -> None:
    """The consumer `tuned_transport` gives: its commit, which Faust calls after the flush."""
    app = faust.App("deliveries-test", broker="kafka://127.0.0.1:1")
    tuned_transport(app, 10)
    consumer = app.consumer
    try:
        deliveries(app).watch(done(failure=KafkaTimeoutError("expired")))
        await settle()
        # Refused at once: a commit would wait on the consumer's thread, never started.
        committed = await asyncio.wait_for(consumer._commit({TP("cart-events", 0): 5}), 5.0)
        assert committed is False
        assert app.crashed and "not delivered" in str(app.crash_reason)
    finally:
        consumer._thread.thread_loop.close()  # made for the consumer's thread, never started
