"""Records go from the fetch to the streams without a task apiece (`EagerDeliveryConsumer`).

A delivery that waits for nothing runs to its end in the fetch loop's own
task; one that waits is raced against a suspension of the flow (a
rebalance) as Faust races it; `resume` takes a coroutine on from its first
wait as if it had been awaited from the start.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest
from faust.transport.consumer import Consumer
from faust.types import TP, Message
from mode import Service

from stream.kafka import EagerDeliveryConsumer, resume

# --- resume --------------------------------------------------------------------------------


async def _started(coro: Any) -> Any:
    """Run `coro` up to its first wait, as the fetch loop does; what it waits on."""
    return coro.send(None)


async def test_resume_goes_on_from_the_first_wait() -> None:
    first, second = asyncio.get_running_loop().create_future(), asyncio.Event()
    steps: list[str] = []

    async def delivery() -> str:
        steps.append("before")
        await first
        steps.append("after the future")
        await asyncio.sleep(0)
        await second.wait()
        return "delivered"

    coro = delivery()
    waiting_on = await _started(coro)
    assert waiting_on is first and steps == ["before"]
    task = asyncio.ensure_future(resume(coro, waiting_on))
    await asyncio.sleep(0)
    assert steps == ["before"]  # still waiting for the future it yielded
    first.set_result(None)
    await asyncio.sleep(0.01)
    assert steps == ["before", "after the future"] and not task.done()
    second.set()
    assert await task == "delivered"


async def test_a_cancellation_reaches_the_coroutine_where_it_waits() -> None:
    never = asyncio.get_running_loop().create_future()
    seen: list[str] = []

    async def delivery() -> None:
        try:
            await never
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        finally:
            seen.append("cleaned up")

    coro = delivery()
    task = asyncio.ensure_future(resume(coro, await _started(coro)))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled", "cleaned up"]


async def test_a_coroutine_that_handles_what_is_thrown_in_goes_on() -> None:
    never = asyncio.get_running_loop().create_future()

    async def delivery() -> str:
        try:
            await never
        except asyncio.CancelledError:
            await asyncio.sleep(0)
            return "handled"
        return "not reached"

    coro = delivery()
    task = asyncio.ensure_future(resume(coro, await _started(coro)))
    await asyncio.sleep(0)
    task.cancel()
    assert await task == "handled"


# --- the fetch loop --------------------------------------------------------------------------


class _Fetch(Service):
    """What `_drain_messages` reads of a consumer: a real mode Service, a fake fetch."""

    def __init__(self, batches: list[list[Message]], callback: Any) -> None:
        super().__init__()
        self.batches = batches
        self.callback = callback
        self.suspend_flow = asyncio.Event()
        self._read_offset: defaultdict[TP, int | None] = defaultdict(lambda: None)
        self.diag = SimpleNamespace(set_flag=lambda flag: None, unset_flag=lambda flag: None)
        self._commit_every = None
        self.app = SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda topic: True))
        self.consumer_stopped_errors = ()
        self.transport = SimpleNamespace(app=SimpleNamespace(should_stop=True))  # at the end
        self.drained = asyncio.Event()

    async def getmany(self, timeout: float) -> Any:  # noqa: ASYNC109
        if not self.batches:
            self.drained.set()
            await asyncio.sleep(3600)
        for message in self.batches.pop(0):
            yield message.tp, message


def _message(offset: int) -> Message:
    return Message("cart-events", 0, offset, 0.0, 0, None, b"k", b"v", None)


async def _drain(fetch: _Fetch) -> None:
    fetcher = SimpleNamespace(_stopped=asyncio.Event())
    loop = asyncio.ensure_future(EagerDeliveryConsumer._drain_messages(fetch, fetcher))
    try:
        await asyncio.wait_for(fetch.drained.wait(), 5)
    finally:
        loop.cancel()  # a stop, as Faust's: the loop returns
        await loop


async def test_a_delivery_that_waits_for_nothing_runs_in_the_fetch_loops_task() -> None:
    delivered: list[tuple[int, asyncio.Task[Any] | None]] = []

    async def deliver(message: Message) -> None:
        delivered.append((message.offset, asyncio.current_task()))

    fetch = _Fetch([[_message(0), _message(1)], [_message(2)]], deliver)
    await _drain(fetch)
    assert [offset for offset, _ in delivered] == [0, 1, 2]
    assert len({task for _, task in delivered}) == 1  # one task: the loop's own
    assert fetch._read_offset[TP("cart-events", 0)] == 2


async def test_a_waiting_delivery_is_given_up_when_the_flow_is_suspended() -> None:
    """As Faust's: a rebalance interrupts a delivery stuck waiting (a full buffer)."""
    room = asyncio.Event()  # never set: the stream's buffer stays full
    outcome: dict[int, str] = {}

    async def deliver(message: Message) -> None:
        if message.offset == 1:
            try:
                await room.wait()
            except asyncio.CancelledError:
                outcome[1] = "given up"
                raise
        outcome[message.offset] = "delivered"

    fetch = _Fetch([[_message(0), _message(1), _message(2)]], deliver)
    asyncio.get_running_loop().call_later(0.05, fetch.suspend_flow.set)
    await _drain(fetch)
    assert outcome == {0: "delivered", 1: "given up", 2: "delivered"}


async def test_a_delivery_that_waits_and_gets_through_is_delivered() -> None:
    room = asyncio.Event()
    delivered: list[int] = []

    async def deliver(message: Message) -> None:
        if message.offset == 0:
            await room.wait()
        delivered.append(message.offset)

    fetch = _Fetch([[_message(0), _message(1)]], deliver)
    asyncio.get_running_loop().call_later(0.05, room.set)
    await _drain(fetch)
    assert delivered == [0, 1]


# Faust 0.15.3's fetch loop, which EagerDeliveryConsumer._drain_messages copies but for the
# delivery. Another Faust's loop may differ: read it against ours, then pin it here.
FAUST_DRAIN_SHA256 = "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417"


def test_fausts_fetch_loop_is_the_one_ours_copies() -> None:
    source = inspect.getsource(Consumer._drain_messages)
    assert hashlib.sha256(source.encode()).hexdigest() == FAUST_DRAIN_SHA256
