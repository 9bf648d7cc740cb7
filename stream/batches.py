"""Agents take their events in batches (`Stream.take_events`) and handle each on its own.

(And `cede`: how background work between their turns, such as re-scoring,
leaves them most of the event loop.)

Faust's per-event iteration (`async for event in stream.events()`) costs an
agent a turn of Faust's stream machinery for every event: its generator,
its sensors, its ack. `take_events` runs that iteration in the background
and hands the agent a list at a time: up to BATCH_MAX events, or what came
within `within` of the first (STREAM_BATCH_WAIT_MS, 2 ms by default).

Measured on the bench (`python -m stream bench pipeline --events 10000
--runs 1`, interleaved runs): per event against batches at 2 ms, three
pairs (`--processors pipeline`): 3,245 / 3,247 / 3,246 -> 3,885 / 3,873 /
3,857 events/s, 0.29 -> 0.24-0.25 CPU ms an event, p99 from add to
suggestion at 1,000 adds/s unchanged (28.8 / 24.4 / 23.7 against 24.0 /
23.8 / 24.6 ms). The wait trades CPU for latency; two rounds of 2, 5 and
10 ms (`--processors relay,pipeline`): 3,867 / 3,863, 4,258 / 3,877 and
4,835 / 4,840 events/s (0.24, 0.21-0.22, 0.20 CPU ms), p50 16.4 / 16.2,
18.8 / 17.4 and 24.4 / 21.1 ms, p99 25.8 / 31.9, 33.2 / 27.4 and 45.1 /
31.8 ms (the relay's 18-21). An idle worker polls for its batches: 9.8%
-> 12.1% of a core at 2 ms, with the embedded broker's 10 ms fetch wait.

Each event of a batch is handled as Faust's own iteration would handle it:
the task's current event (`faust.streams.current_event()`) is set to it
first, since table writes take their partition from it (the changelog
record's, in stream/changelog.py, and RocksDB's store, which keeps a
database per partition). Faust sets that context variable only in its own
iteration, which here runs in another task; setting it is the one use of a
private Faust name (`faust.streams._current_event`), pinned by a unit test.

Acks: `take_events` acks a batch's events when the agent asks for the
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
from collections.abc import Awaitable, Callable

import faust
from faust.streams import _current_event
from faust.types import EventT

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
) -> None:
    """Run `handle` on every event of the stream, in order, taken in batches.

    A batch is what came within `within` seconds of its first event (at most
    `max_events`): the longest an event waits for the others.

    An exception from `handle` goes to `on_error` with its event, and the
    next event is handled; cancellation (a stop) is not caught.
    """
    batches = stream.take_events(max_events, within=within)  # type: ignore[attr-defined]
    async for events in batches:
        for event in events:
            set_current_event(event)
            try:
                await handle(event)
            except Exception as exc:  # a bug, not bad input: keep the event, go on
                await on_error(event, exc)


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
