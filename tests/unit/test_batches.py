"""stream.batches: what an agent's handler sees of each event of a batch."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import faust
from faust.streams import current_event

from stream.batches import cede, handle_each, set_current_event, take_batches


class Event:
    """What the handler reads of an event here: its message's partition (weakly referable)."""

    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(partition=partition)


def test_each_event_of_a_batch_is_the_current_event_as_faust_reads_it() -> None:
    """Table writes read the partition from Faust's current event; a batch sets it per event.

    Pins the private context variable (`faust.streams._current_event`) to
    the public reader: a Faust upgrade that renames it fails here.
    """

    def handle_two() -> list[object]:
        seen = []
        for partition in (3, 5):
            event = Event(partition)
            set_current_event(event)  # type: ignore[arg-type]
            seen.append(current_event())
            assert current_event() is event
        return seen

    seen = contextvars.copy_context().run(handle_two)
    assert [e.message.partition for e in seen] == [3, 5]  # type: ignore[attr-defined]
    assert current_event() is None  # the context it ran in is its own


async def test_background_work_cedes_the_loop_for_the_rest_of_its_share() -> None:
    """After a chunk of work, `cede` sleeps (1 - share) / share of the chunk's time.

    The loop is the agents' meanwhile: a task that wants it every millisecond
    gets it during the pause, and not during the chunk. Only lower bounds on
    time: a sleep is never shorter than asked.
    """
    turns: list[float] = []

    async def agent() -> None:
        while True:
            turns.append(time.perf_counter())
            await asyncio.sleep(0.001)

    running = asyncio.create_task(agent())
    await asyncio.sleep(0.005)
    started = time.perf_counter()
    while time.perf_counter() - started < 0.02:  # a chunk of work: 20 ms holding the loop
        pass
    chunk_ended = time.perf_counter()
    await cede(started, 0.25)
    ceded = time.perf_counter()
    running.cancel()

    assert ceded - chunk_ended >= 3 * (chunk_ended - started)  # 25%: three times the chunk
    assert not [t for t in turns if started < t < chunk_ended]
    assert len([t for t in turns if chunk_ended <= t <= ceded]) >= 2


@dataclass
class Batch:
    """A batch as the agent got it: when, its values, its Faust events, which were acked then."""

    at: float
    values: list[Any]
    events: list[Any]
    acked: list[bool]


@dataclass
class Got:
    """The batches an agent got, and a signal set with each."""

    batches: list[Batch] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def values(self) -> list[list[Any]]:
        return [batch.values for batch in self.batches]

    async def until(self, count: int) -> None:
        """Wait for the agent's `count`th batch (5 s at most: a hang fails the test)."""
        async with asyncio.timeout(5.0):
            while len(self.batches) < count:
                self.arrived.clear()
                await self.arrived.wait()


def batching_app(
    max_events: int, within: float, seen: Callable[[faust.StreamT[Any]], None] = lambda s: None
) -> tuple[Any, Got]:
    """An agent that takes its events with `take_batches`, and what it got.

    Run in-process with Faust's `test_context` (a channel, no broker).
    """
    app = faust.App(
        "take-batches-test", store="memory://", autodiscover=False, loop=asyncio.get_running_loop()
    )
    got = Got()

    @app.agent()
    async def batched(stream: faust.StreamT[Any]) -> None:
        seen(stream)
        async for events in take_batches(stream, max_events, within):
            acked = [event.message.acked for event in events]
            got.batches.append(Batch(time.perf_counter(), [e.value for e in events], events, acked))
            got.arrived.set()

    return batched, got


@contextlib.asynccontextmanager
async def running(agent: Any) -> AsyncIterator[Any]:
    """Faust's `test_context` for `agent`; then the loop of its app's consumer thread closed.

    The acks reach Faust's real consumer (`app.consumer`), made on first use
    with a thread that is never started here; its event loop is closed, not
    left to the garbage collector.
    """
    async with agent.test_context() as context:
        yield context
    agent.app.consumer._thread.thread_loop.close()


async def deliver(sink: Any, *values: Any) -> None:
    """Deliver `values` to the agent's stream at once, as the consumer delivers a fetch's records.

    (`put` waits for each value to be taken by default: one at a time.)
    """
    for value in values:
        await sink.put(value, wait=False)


async def test_a_batch_is_what_was_delivered_and_goes_without_waiting_its_window() -> None:
    """Three events delivered at once are one batch; a lone one later goes at once.

    With a window of a minute, both batches come within seconds (`until`
    gives up after 5): a batch waits for others only while more are already
    delivered to its stream. With the window waited out whole (until this
    change), the lone event would wait the minute.
    """
    agent, got = batching_app(max_events=100, within=60.0)
    async with running(agent) as sink:
        await deliver(sink, 0, 1, 2)
        await got.until(1)
        await asyncio.sleep(0.1)
        await deliver(sink, 99)
        await got.until(2)
    assert got.values == [[0, 1, 2], [99]]


async def test_while_events_keep_coming_a_batch_closes_when_its_window_ends() -> None:
    """A stream that never runs dry gets batches of what came within `within` of their first.

    The feeder delivers two events for each one the stream takes, so more
    are always waiting: the first batch goes when its window ends, while
    the feeder is still sending, not when the events stop. Only lower bounds
    on time: a window is never shorter than `within`.
    """
    agent, got = batching_app(max_events=100_000, within=0.05)
    async with running(agent) as sink:
        sent: list[int] = []
        started = time.perf_counter()

        async def feed() -> None:
            while time.perf_counter() - started < 0.5:
                sent.extend((len(sent), len(sent) + 1))
                await deliver(sink, *sent[-2:])
                await asyncio.sleep(0)

        feeding = asyncio.create_task(feed())
        await got.until(1)
        still_feeding = not feeding.done()
        await feeding
        await asyncio.sleep(0.2)
        await got.until(2)
    first = got.batches[0]
    assert still_feeding
    assert first.at - started >= 0.05
    assert first.values == sent[: len(first.values)]
    assert 0 < len(first.values) < len(sent)
    assert [v for batch in got.values for v in batch] == sent[: sum(map(len, got.values))]


async def test_a_full_batch_goes_at_once_and_holds_at_most_max_events() -> None:
    """Seven events delivered at once, batches of at most 3: 3, 3, then the one left.

    With a window of a minute, all come within seconds: a full batch does not
    wait, nor does the last once nothing more is delivered. Faust's
    take_events holds at most `max_` events too; more wait for room.
    """
    agent, got = batching_app(max_events=3, within=60.0)
    async with running(agent) as sink:
        await deliver(sink, *range(7))
        await got.until(3)
        await asyncio.sleep(0.2)
        assert got.values == [[0, 1, 2], [3, 4, 5], [6]]


async def test_a_batch_is_acked_when_the_agent_asks_for_the_next() -> None:
    """At-least-once: a batch's events are acked once handled, not when handed over."""
    agent, got = batching_app(max_events=2, within=0.01)
    async with running(agent) as sink:
        await deliver(sink, *range(4))
        await got.until(2)
        first_acked_by_then = [event.message.acked for event in got.batches[0].events]
    assert [batch.acked for batch in got.batches] == [[False, False], [False, False]]
    assert first_acked_by_then == [True, True]


async def test_an_idle_agent_is_not_woken() -> None:
    """Nothing comes, nothing runs: no waits of mode's (Faust's take_events polls `within`).

    Faust's `Stream.take_events` waits `within` again and again
    (`wait_for_stopped`) whether events come or not: with it in place of
    `take_batches`, this test counted 94 waits, three tasks each.
    """
    waits: list[object] = []

    def count_waits(stream: faust.StreamT[Any]) -> None:
        def counted(wait: Callable[..., Any]) -> Callable[..., Any]:
            def waiting(*args: Any, **kwargs: Any) -> Any:
                waits.append(args)
                return wait(*args, **kwargs)

            return waiting

        stream.wait_for_stopped = counted(stream.wait_for_stopped)  # type: ignore[method-assign]

    agent, got = batching_app(max_events=100, within=0.002, seen=count_waits)
    async with running(agent) as sink:
        await asyncio.sleep(0.1)
        await deliver(sink, 1)
        await got.until(1)
        await asyncio.sleep(0.1)
    assert got.values == [[1]]
    assert waits == []


async def handle_five(
    handle: Callable[[Any], Awaitable[None]],
    on_error: Callable[[Any, Exception], Awaitable[None]],
    after_batch: Callable[[], Awaitable[None]],
    done: asyncio.Event,
) -> None:
    """Values 0-4 delivered at once to an agent running `handle_each` in batches of 3.

    Returns once `done` is set (5 s at most: a hang fails the test).
    """
    app = faust.App(
        "after-batch-test", store="memory://", autodiscover=False, loop=asyncio.get_running_loop()
    )

    @app.agent()
    async def agent(stream: faust.StreamT[Any]) -> None:
        await handle_each(
            stream, handle, on_error, within=60.0, max_events=3, after_batch=after_batch
        )

    async with running(agent) as sink:
        await deliver(sink, *range(5))
        async with asyncio.timeout(5.0):
            await done.wait()


async def test_after_a_batch_is_handled_and_before_it_is_acked_after_batch_runs() -> None:
    """`handle_each`'s after_batch: once a batch, after its last event, its events not yet acked.

    What the handlers gathered for a batch (the order agent's baskets) goes
    out there, so it is sent before the offsets it came from can be
    committed. It runs after a batch whose handler raised on an event too.
    """
    handled: list[Any] = []
    calls: list[tuple[list[Any], list[bool]]] = []  # what was handled by then, and its acks
    events: list[Any] = []
    done = asyncio.Event()

    async def handle(event: Any) -> None:
        events.append(event)
        if event.value == 1:
            raise ValueError("a bug this event found")
        handled.append(event.value)

    async def on_error(event: Any, exc: Exception) -> None:
        handled.append(f"error {event.value}")

    async def after_batch() -> None:
        calls.append((list(handled), [e.message.acked for e in events]))
        if len(calls) == 2:
            done.set()

    await handle_five(handle, on_error, after_batch, done)
    assert calls == [
        ([0, "error 1", 2], [False, False, False]),
        ([0, "error 1", 2, 3, 4], [True, True, True, False, False]),
    ]


async def test_when_after_batch_fails_every_event_of_the_batch_goes_to_on_error() -> None:
    """What a batch gathered was not sent: each of its events is kept (the app dead-letters
    them with their bytes), none is dropped, and the next batch is handled as usual."""
    handled: list[Any] = []
    kept: list[tuple[Any, str]] = []
    batches = 0
    done = asyncio.Event()

    async def handle(event: Any) -> None:
        handled.append(event.value)

    async def on_error(event: Any, exc: Exception) -> None:
        assert current_event() is event  # as for a handler's exception: its partition's event
        kept.append((event.value, str(exc)))

    async def after_batch() -> None:
        nonlocal batches
        batches += 1
        if batches == 1:
            raise RuntimeError("the producer refused the batch's records")
        done.set()

    await handle_five(handle, on_error, after_batch, done)
    assert handled == [0, 1, 2, 3, 4]
    assert kept == [(n, "the producer refused the batch's records") for n in range(3)]


async def test_events_after_an_on_error_that_raises_are_not_acked() -> None:
    """on_error raising (the dead-letters topic refusing too) ends the agent's batch: the events
    handled before stay acked, the failing one and the rest are not, so their offsets are not
    committed and they are read again. They were all acked, and lost."""
    events: list[Any] = []
    done = asyncio.Event()

    async def handle(event: Any) -> None:
        events.append(event)
        if event.value == 1:
            raise ValueError("a bug this event found")

    async def on_error(event: Any, exc: Exception) -> None:
        done.set()
        raise RuntimeError("the dead letter was refused too")

    async def after_batch() -> None:
        pass

    with contextlib.suppress(RuntimeError):
        await handle_five(handle, on_error, after_batch, done)
        await asyncio.sleep(0.1)
    assert [event.value for event in events] == [0, 1]
    assert [event.message.acked for event in events] == [True, False]


async def test_when_after_batch_fails_an_on_error_that_raises_leaves_the_rest_unacked() -> None:
    """after_batch failed, and then the first event's on_error: no event of the batch is acked."""
    events: list[Any] = []
    done = asyncio.Event()

    async def handle(event: Any) -> None:
        events.append(event)

    async def on_error(event: Any, exc: Exception) -> None:
        done.set()
        raise RuntimeError("the dead letter was refused too")

    async def after_batch() -> None:
        raise RuntimeError("the producer refused the batch's records")

    with contextlib.suppress(RuntimeError):
        await handle_five(handle, on_error, after_batch, done)
        await asyncio.sleep(0.1)
    assert [event.value for event in events] == [0, 1, 2]
    assert [event.message.acked for event in events] == [False, False, False]
