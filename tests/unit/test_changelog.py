"""`Changelogs`: the last record per key waits for `flush`; nothing pending is lost.

The producer here is a stand-in that records what it is handed (the broker
side is tests/integration/test_state_recovery.py).
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from faust.stores.memory import Store as MemoryStore

from stream import changelog
from stream.changelog import Changelogs


@dataclass
class Producer:
    sent: list[tuple[str, bytes, bytes, int]] = field(default_factory=list)
    refuse: int = 0  # refuse the next `refuse` sends
    yields: bool = True  # aiokafka's send yields only when it must wait (a full batch)

    async def send(self, topic: str, key: bytes, value: bytes, partition: int, *_: Any) -> Any:
        if self.yields:
            await asyncio.sleep(0)
        if self.refuse:
            self.refuse -= 1
            raise RuntimeError("buffer full")
        self.sent.append((topic, key, value, partition))
        delivered: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        delivered.set_result(SimpleNamespace(offset=len(self.sent) - 1))
        return delivered


class Store(dict[str, Any]):
    def __init__(self) -> None:
        super().__init__()
        self.persisted: dict[Any, int] = {}

    def set_persisted_offset(self, tp: Any, offset: int) -> None:
        self.persisted[tp] = offset


def table(name: str) -> Any:
    return SimpleNamespace(
        name=name,
        data=Store(),
        key_serializer="raw",
        value_serializer="json",
        changelog_topic=SimpleNamespace(get_topic_name=lambda: f"{name}-changelog"),
    )


@pytest.fixture
def producer() -> Producer:
    return Producer()


def logs(producer: Producer, limit: int = 1000) -> Changelogs:
    app = SimpleNamespace(producer=producer, sensors=SimpleNamespace(on_table_set=lambda *_: None))
    return Changelogs(app, limit=limit)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def partition(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """The event being processed: its partition is where records go."""
    message = SimpleNamespace(partition=3)
    monkeypatch.setattr(changelog, "current_event", lambda: SimpleNamespace(message=message))
    return message


async def filled(producer: Producer, keys: int) -> tuple[Changelogs, Any]:
    """Changelogs with `keys` carts written (k0 = 0, k1 = 1, ...), and the carts table."""
    pending, carts = logs(producer), table("carts")
    for n in range(keys):
        await pending.put(carts, f"k{n}", n)
    return pending, carts


def records(producer: Producer) -> dict[tuple[str, str], Any]:
    return {(t, k.decode()): orjson.loads(v) for t, k, v, _ in producer.sent}


async def test_the_store_is_written_at_once_and_the_changelog_gets_the_last_value_per_key(
    producer: Producer,
) -> None:
    pending, carts, rows = logs(producer), table("carts"), table("rows")
    for n in range(5):
        await pending.put(carts, "c1", {"n": n})
        await pending.put(rows, "c1", {"row": n})  # same key, other table: its own record
        assert carts.data["c1"] == {"n": n}
    await pending.put(carts, "c2", {"n": 9})
    assert producer.sent == []
    assert len(pending) == 3

    await pending.flush()

    assert len(pending) == 0
    assert records(producer) == {
        ("carts-changelog", "c1"): {"n": 4},
        ("carts-changelog", "c2"): {"n": 9},
        ("rows-changelog", "c1"): {"row": 4},
    }
    assert len(producer.sent) == 3
    assert {p for *_, p in producer.sent} == {3}
    await asyncio.sleep(0)  # delivery callbacks
    last = max(n for n, (topic, *_) in enumerate(producer.sent) if topic == "carts-changelog")
    assert carts.data.persisted == {changelog.TP("carts-changelog", 3): last}


async def test_each_record_goes_to_the_partition_of_the_event_that_wrote_it(
    producer: Producer, partition: SimpleNamespace
) -> None:
    pending, carts = logs(producer), table("carts")
    await pending.put(carts, "a", 1)
    partition.partition = 5
    await pending.put(carts, "b", 2)
    await pending.flush()
    assert sorted((k, p) for _, k, _, p in producer.sent) == [(b"a", 3), (b"b", 5)]


async def test_a_key_written_here_leaves_the_memory_store_with_its_partition(
    producer: Producer, partition: SimpleNamespace
) -> None:
    """Faust's memory store drops, at the end of a recovery, the keys of partitions not owned.

    It knows the partitions of the keys it recovered; `put` tells it those of
    the keys written here, so a worker that loses a partition lets them go.
    """
    carts = table("carts")
    carts.data = MemoryStore("memory://", SimpleNamespace(conf=SimpleNamespace()), carts)
    pending = logs(producer)
    await pending.put(carts, "a", 1)
    partition.partition = 5
    await pending.put(carts, "b", 2)
    await carts.data.on_recovery_completed({changelog.TP("carts-changelog", 5)}, set())
    assert dict(carts.data.items()) == {"b": 2}


async def test_the_limit_sends_everything_pending_at_once(producer: Producer) -> None:
    pending, carts = logs(producer, limit=3), table("carts")
    await pending.put(carts, "a", 1)
    await pending.put(carts, "a", 2)  # still one key
    await pending.put(carts, "b", 1)
    assert producer.sent == []
    await pending.put(carts, "c", 1)
    assert records(producer) == {("carts-changelog", k): 1 for k in "bc"} | {
        ("carts-changelog", "a"): 2
    }
    assert len(pending) == 0


async def test_writes_made_during_a_flush_wait_for_the_next_and_arrive_after(
    producer: Producer,
) -> None:
    """They belong to events after the offsets being committed; the newer value comes last."""
    pending, carts = await filled(producer, 50)
    flushing = asyncio.ensure_future(pending.flush())
    for _ in range(20):  # each send yields once here
        await asyncio.sleep(0)
    assert 0 < len(producer.sent) < 49
    await pending.put(carts, "k0", 100)  # already sent by this flush
    await pending.put(carts, "k49", 149)  # not yet sent by it
    await pending.put(carts, "new", 1)
    await flushing
    assert len(producer.sent) == 50
    assert len(pending) == 3
    await pending.flush()
    values: dict[str, list[int]] = {}
    for _, key, value, _ in producer.sent:
        values.setdefault(key.decode(), []).append(orjson.loads(value))
    assert values["k0"] == [0, 100]
    assert values["k49"] == [49, 149]
    assert values["new"] == [1]


async def test_a_flush_returns_only_once_a_flush_in_progress_has_handed_over_its_records(
    producer: Producer,
) -> None:
    """A commit's flush while the timer's is sending: the commit must not pass those records."""
    pending, carts = await filled(producer, 40)
    timers = asyncio.ensure_future(pending.flush())
    await asyncio.sleep(0)  # it has taken the 40 and sent the first
    await pending.put(carts, "late", 1)
    await pending.flush()  # the commit's
    assert len(producer.sent) == 41
    await timers


async def test_a_long_flush_lets_the_agents_run(producer: Producer) -> None:
    """Sends that never wait would hold the event loop for the whole flush; it yields."""
    producer.yields = False
    pending, _ = await filled(producer, 10 * changelog.YIELD_EVERY)
    seen: list[int] = []

    async def agent() -> None:
        while True:
            seen.append(len(producer.sent))
            await asyncio.sleep(0)

    running = asyncio.ensure_future(agent())
    await asyncio.sleep(0)
    await pending.flush()
    running.cancel()
    assert seen[0] == 0
    assert len(seen) >= 10
    assert max(b - a for a, b in itertools.pairwise(seen)) <= changelog.YIELD_EVERY


async def test_a_refused_record_stays_pending_and_the_flush_fails(producer: Producer) -> None:
    """The commit that flushes fails with it: offsets are not committed past the write."""
    pending, carts = logs(producer), table("carts")
    await pending.put(carts, "a", 1)
    await pending.put(carts, "b", 2)
    producer.refuse = 1
    with pytest.raises(RuntimeError, match="buffer full"):
        await pending.flush()
    assert len(pending) == 2 - len(producer.sent)
    await pending.flush()
    assert records(producer) == {("carts-changelog", "a"): 1, ("carts-changelog", "b"): 2}


async def test_a_write_outside_an_event_is_refused(
    producer: Producer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(changelog, "current_event", lambda: None)
    with pytest.raises(RuntimeError, match="carts"):
        await logs(producer).put(table("carts"), "a", 1)
