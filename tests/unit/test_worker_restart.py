"""The worker's state across a restart, its handlers and timers run without a broker.

- On RocksDB a table write is on disk at once while its changelog record
  waits for the next flush: a crash in between, and the record read again
  after the restart finds its change applied. It is written again all the
  same (REDELIVERED_STATE in stream/app.py), so that the changelog, which
  another worker recovers from, gets it.
- After a start or a rebalance, the renewal windows of a partition's
  subscriptions are rebuilt from the table, even when an event of that
  partition came before the first tick.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.scripts import printed, run_script

CRASH = r"""
import asyncio, os, sys
import orjson
from faust.types import TP, RecordMetadata
from stream import app as worker
from stream.batches import set_current_event
from stream.bench.handlers import event
from stream.domain.ltv import unpack

step, second = sys.argv[1], sys.argv[2]
sent: list[list[object]] = []


class Producer:
    async def send(self, topic, key, value, partition, timestamp, headers):  # type: ignore
        if topic.endswith("-customers-changelog"):
            state = unpack(value)
            sent.append([state.orders, str(state.revenue)])
        done = asyncio.get_running_loop().create_future()
        done.set_result(RecordMetadata(topic, partition, TP(topic, partition), 0))
        return done


def order(n: int):  # type: ignore
    value = {
        "event_id": f"e{n}", "type": "order_completed", "customer_id": "c1",
        "ts": f"2026-11-2{n}T09:15:00Z", "order_id": f"o{n}",
        "items": [{"sku": "a", "unit_price": 10.0}],
    }
    if n == 2 and second == "refund":  # o1 refunded, 4 of its 10
        value = {
            "event_id": "r1", "type": "order_refunded", "customer_id": "c1",
            "ts": "2026-11-22T09:15:00Z", "order_id": "o1", "total": 4.0,
        }
    return event(worker.T.purchase, b"c1", orjson.dumps(value), 0, n)


async def main() -> None:
    worker.app.producer = Producer()
    if step == "crash":
        for n in (1, 2):
            received = order(n)
            set_current_event(received)
            await worker.handle_purchase(received)
            if n == 1:
                await worker.changelogs.flush()  # the timer's flush: o1's record sent
        print(orjson.dumps(sent).decode(), flush=True)
        os._exit(9)  # killed before the next flush: o2 on disk, not in the changelog
    received = order(2)  # restarted on the same disk: o2 read again, its offset uncommitted
    set_current_event(received)
    held = [worker.customer_states.get("c1").orders, str(worker.customer_states.get("c1").revenue)]
    await worker.handle_purchase(received)
    await worker.changelogs.flush()
    print(orjson.dumps({"held": held, "sent": sent}).decode())


asyncio.run(main())
"""


@pytest.mark.parametrize(("second", "after"), [("order", [2, "20.0"]), ("refund", [1, "6.0"])])
def test_a_change_on_disk_but_not_in_the_changelog_is_sent_after_a_crash(
    tmp_path: Path, second: str, after: list[object]
) -> None:
    """RocksDB: a second order (or a refund of the first) written to disk, the worker killed
    before its changelog record went; the restarted worker reads it again, finds it applied,
    and sends the record that a worker recovering from the changelog needs. Before, the
    changelog stopped at the first order."""
    rocksdb = {"STREAM_STORE": "rocksdb://"}
    crashed = run_script(CRASH, tmp_path, "crash", second, status=9, **rocksdb)
    assert printed(crashed) == [[1, "10.0"]]
    restarted = run_script(CRASH, tmp_path, "restart", second, **rocksdb)
    assert printed(restarted) == {"held": after, "sent": [after]}


RENEWALS = r"""
import asyncio
from typing import Any, cast
import orjson
from stream import app as worker
from stream.batches import set_current_event
from stream.bench.handlers import LocalProducer, event, own_every_partition
from stream.domain.events import parse_ts

RENEWS = "2026-12-23T09:15:00Z"


def started(n: int, sid: str) -> Any:
    value = {
        "event_id": f"e-{sid}", "type": "subscription_started", "customer_id": f"c-{sid}",
        "ts": "2026-11-23T09:15:00Z", "subscription_id": sid, "plan_id": "basic",
        "price": 9.99, "period_days": 30, "renews_at": RENEWS,
    }
    return event(worker.T.subscription, f"c-{sid}".encode(), orjson.dumps(value), 0, n)


def timer_body(timer: Any) -> Any:
    # The function an @app.timer wraps (the timer itself runs Faust's endless loop).
    todo = [timer]
    while todo:
        fn = todo.pop()
        code = getattr(fn, "__code__", None)
        if code is not None and code.co_filename.endswith("stream/app.py"):
            return fn
        todo += [c.cell_contents for c in getattr(fn, "__closure__", None) or ()
                 if hasattr(c.cell_contents, "__code__")]
    raise LookupError(timer)


async def main() -> None:
    worker.app.producer = cast(Any, LocalProducer())
    own_every_partition(1)
    for n, sid in enumerate(("s-a", "s-b")):
        if n == 1:  # a restart: the derived index is empty, the table recovered
            worker._renewals.clear()
            worker._renewal_due_at.clear()
            worker._renewals_built.clear()
        received = started(n, sid)
        set_current_event(received)
        await worker.handle_subscription(received)  # s-b: before the first tick
    await timer_body(worker.tick)()
    scheduled = sorted(worker._renewal_due_at)
    now = parse_ts(RENEWS) - 10 * 86_400  # the 14-day window has opened for both
    tick = event(worker.ticks_topic.get_topic_name(), None, orjson.dumps({"now": now}), 0, 0)
    set_current_event(tick)
    await worker._on_tick(tick)
    fired = {sid: list(worker.subscriptions.get(sid).fired) for sid in ("s-a", "s-b")}
    print(orjson.dumps({"scheduled": scheduled, "fired": fired}).decode())


asyncio.run(main())
"""


def test_a_partitions_renewals_are_rebuilt_after_a_restart(tmp_path: Path) -> None:
    """s-a in the table from before a restart, s-b's event handled before the first tick: both
    are scheduled and fire their 14-day window (s-a's never fired: the event had made the
    partition's index, and the rebuild skipped it)."""
    assert printed(run_script(RENEWALS, tmp_path, STREAM_PARTITIONS="1")) == {
        "scheduled": ["s-a", "s-b"],
        "fired": {"s-a": [14], "s-b": [14]},
    }
