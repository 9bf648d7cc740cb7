"""stream.batches: what an agent's handler sees of each event of a batch."""

from __future__ import annotations

import contextvars
from types import SimpleNamespace

from faust.streams import current_event

from stream.batches import set_current_event


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
