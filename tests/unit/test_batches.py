"""stream.batches: what an agent's handler sees of each event of a batch."""

from __future__ import annotations

import asyncio
import contextvars
import time
from types import SimpleNamespace

from faust.streams import current_event

from stream.batches import cede, set_current_event


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
