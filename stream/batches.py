"""Agents take their events in batches (`take_batches`) and handle each on its own.

(And `cede`: how background work between their turns, such as re-scoring,
leaves them most of the event loop.)

Faust's per-event iteration (`async for event in stream.events()`) costs an
agent a turn of Faust's stream machinery for every event: its generator,
its sensors, its ack. Faust's `Stream.take_events` runs that iteration in
the background and hands the agent a list at a time; `take_batches` is the
same with the wait done differently. A batch is what has been delivered to
the stream when the agent is free, up to BATCH_MAX events: it goes as soon
as nothing more is waiting in the stream's buffer, and while more keep
coming, at most `within` after its first event (STREAM_BATCH_WAIT_MS, 2 ms
by default). Under load the buffer fills while the agent handles a batch,
so batches grow by themselves; a lone event does not wait for company that
is not there.

Until d6f9c1d (2026-12-06) a batch waited out its whole window, so every
event on a quiet stream waited `within`. A/B of 6 interleaved pairs
(`bench pipeline --processors relay,pipeline --events 20000 --runs 1
--latency-seconds 6`, the commit before against this one): from add to
suggestion at 1,000 adds/s, p50 21.7 / 22.3 / 21.6 / 21.6 / 21.7 / 21.1 ->
20.7 / 20.7 / 19.2 / 20.8 / 20.2 / 20.6 ms (lower in all 6), p99 38.3 / 40.0
/ 35.5 / 39.2 / 40.1 / 35.6 -> 33.8 / 38.9 / 32.6 / 35.2 / 33.8 / 39.8 ms
(lower in 5; over the relay's, median 1.89x -> 1.65x); events/s alike
(2,921 / 2,727 / 2,871 / 2,862 / 2,862 / 3,010 -> 2,780 / 2,815 / 3,006 /
2,770 / 2,998 / 3,008). The cheapest Faust agent ((d), which windows 5 ms)
answers within 1 ms of the raw relay's median since (13.8 against 12.9 ms).

Measured on the bench (`python -m stream bench pipeline --events 10000
--runs 1`, interleaved runs, with `take_events`): per event against batches
at 2 ms, three pairs (`--processors pipeline`): 3,245 / 3,247 / 3,246 ->
3,885 / 3,873 / 3,857 events/s, 0.29 -> 0.24-0.25 CPU ms an event, p99 from
add to suggestion at 1,000 adds/s unchanged (28.8 / 24.4 / 23.7 against
24.0 / 23.8 / 24.6 ms). The wait trades CPU for latency; two rounds of 2, 5
and 10 ms (`--processors relay,pipeline`): 3,867 / 3,863, 4,258 / 3,877 and
4,835 / 4,840 events/s (0.24, 0.21-0.22, 0.20 CPU ms), p50 16.4 / 16.2,
18.8 / 17.4 and 24.4 / 21.1 ms, p99 25.8 / 31.9, 33.2 / 27.4 and 45.1 /
31.8 ms (the relay's 18-21).

Why not `take_events` itself: it waits `within`, then hands over what came,
and waits again, whether events come or not, each wait through mode's
`Service.wait_for_stopped` (three tasks, an `asyncio.wait`, their
cancellations), for each of the four agents: 2,000 wake-ups a second at 2
ms, idle or busy. `take_batches` opens a batch's window with its first
event (a timer handle) and closes it early when the batch is full; an idle
agent is not woken at all. A/B on 2026-11-25 (`bench pipeline --processors
relay,pipeline --events 20000 --runs 1 --latency-seconds 6`, 9 interleaved
pairs, `take_events` first): the pipeline's CPU an event was lower in all 9,
median 0.240 -> 0.217 ms; events/s median 4,053 -> 4,330 (higher in 8 of
9); p99 at 1,000 adds/s over the relay's, median 1.36x -> 1.29x (runs
1.14-2.14x against 1.11-1.60x: not settled either way). An idle worker:
6.4-7.8% of a core against 6.5-6.8% (3 windows of 10 s, twice each; the
10 ms fetch wait is most of it).

Each event of a batch is handled as Faust's own iteration would handle it:
the task's current event (`faust.streams.current_event()`) is set to it
first, since table writes take their partition from it (the changelog
record's, in stream/changelog.py, and RocksDB's store, which keeps a
database per partition). Faust sets that context variable only in its own
iteration, which here runs in another task; setting it uses a private
Faust name (`faust.streams._current_event`), pinned by a unit test. So do
`take_batches`' hooks into the stream, as `take_events` makes them
(`Stream._enable_passive`, `Stream._processors`): the unit tests run it on
a Faust agent (`test_context`), so a Faust that renames them fails there.

Acks: `take_batches`, as `take_events`, acks a batch's events when the agent asks for the
next batch, and also when the agent stops midway (its `finally`). So:

- a graceful stop or a revocation finishes the batch in hand: Faust pauses
  the partitions, then waits until every event handed to a stream is acked
  before it commits (`stream_wait_empty`, on by default);
- a crashed process acks nothing: the batch comes again (at-least-once;
  the state is idempotent);
- an exception in the handler would end the agent and ack the rest of its
  batch unhandled, so it is caught for each event and given to `on_error`
  (the app sends the event to dead-letters, reason `processing_error`,
  with its original bytes), and the batch goes on.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import cast

import faust
from faust.streams import _current_event
from faust.types import EventT
from mode.utils.aiter import aiter

BATCH_MAX = 500  # events a batch at most

Handler = Callable[[EventT[bytes]], Awaitable[None]]
ErrorHandler = Callable[[EventT[bytes], Exception], Awaitable[None]]


def set_current_event(event: EventT[bytes]) -> None:
    """Make `event` the task's current event, as Faust's per-event iteration does."""
    _current_event.set(weakref.ref(event))


async def handle_each(
    stream: faust.StreamT[bytes],
    handle: Handler,
    on_error: ErrorHandler,
    *,
    within: float,
    max_events: int = BATCH_MAX,
    after_batch: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Run `handle` on every event of the stream, in order, taken in batches.

    A batch is what was delivered to the stream (at most `max_events`),
    waiting for more at most `within` seconds after its first event while
    more keep coming (`take_batches`).

    An exception from `handle` goes to `on_error` with its event, and the
    next event is handled; cancellation (a stop) is not caught.
    `after_batch`, if given, runs once a batch's events are handled (also
    when the agent stops midway), before they are acked: what the handlers
    gathered for the whole batch goes out then. An exception from it goes
    to `on_error` with each event handled, since what they gathered was not
    sent, and the next batch is handled.

    Only the events settled are acked (`Batch.settled`): handled, and their
    batch's `after_batch` done, or given to `on_error`. So an agent stopped
    midway, or an `on_error` that raises (the dead-letters topic refusing
    too), leaves the rest unacked: their offsets are not committed, and they
    are read again after a restart or rebalance, never lost.
    """
    async for events in take_batches(stream, max_events, within):
        handled = events.settled = 0
        try:
            for event in events:
                set_current_event(event)
                try:
                    await handle(event)
                except Exception as exc:  # a bug, not bad input: keep the event, go on
                    await on_error(event, exc)
                handled += 1
                if after_batch is None:
                    events.settled = handled
        finally:
            if after_batch is not None:
                try:
                    await after_batch()
                except Exception as exc:  # the batch's gathered outputs are lost: keep its events
                    for n, event in enumerate(events[:handled]):
                        set_current_event(event)
                        await on_error(event, exc)
                        events.settled = n + 1
                else:
                    events.settled = handled


class Batch(list[EventT[bytes]]):
    """A batch's events; `settled`: how many of them, from the first, may be acked (None: all)."""

    settled: int | None = None


async def take_batches(
    stream: faust.StreamT[bytes], max_events: int, within: float
) -> AsyncIterator[Batch]:
    """The stream's events a batch at a time: what was delivered, `within` at most while more come.

    What `Stream.take_events` does, without its wake-ups while nothing comes:
    Faust's waits `within` over and over (mode's `wait_for_stopped`: three
    tasks, an `asyncio.wait` and their cancellations each time), whether
    events come or not, so an idle agent wakes 500 times a second at 2 ms,
    and a busy one pays that machinery per batch. Here a batch goes as soon
    as the stream's buffer holds nothing more; while it does, a window opens
    with the batch's first event (a timer handle), which closes early when
    `max_events` are in. As in Faust's, the stream's passive drainer adds
    the events (a processor), holding on while the agent handles a batch or
    while a full one waits for it; the events are acked when the agent asks
    for the next batch or stops midway (the generator's `finally`): those
    the agent says are settled (`Batch.settled`), else all.
    """
    loop = asyncio.get_running_loop()
    channel = cast("faust.ChannelT[bytes]", stream.channel)  # the passive drainer reads its queue
    buffer: list[EventT[bytes]] = []
    ready: asyncio.Future[None] = loop.create_future()  # the batch may go
    window: asyncio.TimerHandle | None = None
    room: asyncio.Future[None] | None = None  # set while no event may be added

    def release() -> None:
        if not ready.done():
            ready.set_result(None)

    async def add_to_batch(value: bytes) -> bytes:
        nonlocal window, room
        while room is not None:
            await asyncio.shield(room)  # one drainer waits; a cancelled one leaves it be
        event = stream.current_event
        if event is None:
            raise RuntimeError("take_batches: an event without Faust's current event")
        buffer.append(event)
        if len(buffer) >= max_events:
            release()
            room = loop.create_future()
        elif channel.queue.empty():  # nothing more delivered to the stream
            release()  # the batch is all there is: it goes now
        elif len(buffer) == 1:
            window = loop.call_later(within, release)  # more are coming: at most `within`
        return value

    stream.enable_acks = False  # acked here, once handled, as take_events does
    stream.add_processor(add_to_batch)
    stream._enable_passive(aiter(stream.channel))  # type: ignore[attr-defined]
    try:
        while True:
            await ready
            if window is not None:
                window.cancel()
                window = None
            if room is None:
                room = loop.create_future()
            batch = Batch(buffer)
            try:
                yield batch
            finally:
                buffer.clear()
                ready = loop.create_future()
                try:
                    for event in batch[: batch.settled]:  # [:None]: all
                        await stream.ack(event)
                finally:
                    room.set_result(None)
                    room = None
    finally:
        if window is not None:
            window.cancel()
        stream._processors.remove(add_to_batch)  # type: ignore[attr-defined]


async def cede(since: float, share: float) -> None:
    """Pause background work so that what it did since `since` took `share` of the time.

    `since` is a `time.perf_counter()` taken when the work began. Work that
    runs between the agents' turns (re-scoring, after a rebalance thousands
    of customers at once) calls this after each chunk: `asyncio.sleep(0)`
    alone gives the agents a turn but takes the event loop straight back,
    so the events that arrive meanwhile queue behind the chunks; with this
    the work takes at most `share` of the loop, and the rest of it is
    theirs.
    """
    spent = time.perf_counter() - since
    await asyncio.sleep(spent * (1.0 - share) / share)
