"""How the worker wires restraint, the holdout and redelivery around its triggers.

The worker's own handlers run in a subprocess as `bench handlers` runs them
(no broker; the records they send are caught), on a shop with a 50% holdout:
- a control customer's would-be triggers and show limits are recorded as a
  treatment customer's are, so the same behaviour converts alike in both;
- a record read again after a crash re-sends its trigger without counting it
  toward the daily cap a second time.
"""

from __future__ import annotations

from pathlib import Path

from tests.scripts import printed, run_script

SCRIPT = r"""
import asyncio, collections
from typing import Any, cast

import orjson

from stream import app as worker
from stream.bench.handlers import Handlers, LocalProducer, event, own_every_partition
from stream.domain.events import format_ts, parse_ts
from stream.domain.variants import assign_variant

HOUR, DAY = 3_600.0, 86_400.0
offsets: collections.Counter[str] = collections.Counter()


class Producer(LocalProducer):
    def __init__(self) -> None:
        super().__init__()
        self.triggers: list[dict[str, Any]] = []

    async def send(self, topic, key, value, partition, timestamp, headers):  # type: ignore
        if topic == worker.T.triggers:
            self.triggers.append(orjson.loads(value))
        return await super().send(topic, key, value, partition, timestamp, headers)


def received(value: dict[str, Any], offset: int | None = None) -> tuple[str, Any]:
    topic = worker.T.purchase if value["type"].startswith("order_") else worker.T.cart
    if offset is None:
        offset = offsets[topic]
        offsets[topic] += 1
    key = value["customer_id"].encode()
    return topic, event(topic, key, orjson.dumps(value), 0, offset)


def order(eid: str, cid: str, ts: float, skus: list[str]) -> dict[str, Any]:
    return {
        "event_id": eid, "type": "order_completed", "customer_id": cid, "ts": format_ts(ts),
        "order_id": eid, "items": [{"sku": s, "unit_price": 10.0} for s in skus],
    }


def add(eid: str, cid: str, ts: float, sku: str) -> dict[str, Any]:
    return {
        "event_id": eid, "type": "item_added", "customer_id": cid, "ts": format_ts(ts), "sku": sku
    }


def customer(variant: str, n: int) -> str:
    found = [f"cust-{k}" for k in range(1000) if assign_variant(f"cust-{k}", 0.5) == variant]
    return found[n]


def metric(name: str, **labels: str) -> float:
    return worker.registry.get_sample_value(name, labels) or 0.0


async def main() -> None:
    producer = Producer()
    worker.app.producer = cast(Any, producer)
    own_every_partition(1)
    handlers = Handlers(producer)
    t0 = parse_ts("2026-11-01T10:00:00Z")
    history = [order(f"h{n}", f"hist-{n}", t0 + n * DAY, ["camera", "battery"]) for n in range(5)]
    history += [order(f"t{n}", f"tripod-{n}", t0 + n * DAY, ["tripod"]) for n in range(5)]
    await handlers.run([received(v) for v in history])
    await handlers.tick()  # the basket counts' records read: N known to the rows
    await worker._publish_owned_rows(list(worker.item_rows.keys()))  # as the sweeper does
    figures: dict[str, Any] = {}

    # The same behaviour in each variant: a camera bought, the battery two days later
    # (a post_purchase offer's conversion), and five adds of the camera an hour apart, the
    # battery bought 7 days and 3 hours after the first (the show limit, 3 a day, leaves
    # the adds of hours 3 and 4 out: no exposure within 7 days of the order).
    t1 = t0 + 19 * DAY
    for variant in ("treatment", "control"):
        buyer, browser = customer(variant, 0), customer(variant, 1)
        events = [
            order(f"{buyer}-o1", buyer, t1, ["camera"]),
            order(f"{buyer}-o2", buyer, t1 + 2 * DAY, ["battery"]),
            *(add(f"{browser}-a{k}", browser, t1 + k * HOUR, "camera") for k in range(5)),
            order(f"{browser}-o", browser, t1 + 7 * DAY + 3 * HOUR, ["battery"]),
        ]
        await handlers.run([received(v) for v in events])
        figures[variant] = {
            "conversions": metric("stream_cross_sell_conversions_total", variant=variant),
            "browser_battery_shown": len(worker.contact_states.get(browser).exposed["battery"]),
        }
    suppressed = "stream_triggers_suppressed_total"
    figures["holdout"] = metric(suppressed, kind="post_purchase", reason="holdout")

    # A treatment customer's order read twice (a crash before its offset was committed),
    # then two more the same day: cap 3, three distinct triggers, none held back.
    cid, t2 = customer("treatment", 2), t0 + 30 * DAY
    first = received(order(f"{cid}-o1", cid, t2, ["lonely-item"]))
    again = received(order(f"{cid}-o1", cid, t2, ["lonely-item"]), offset=first[1].message.offset)
    more = [received(order(f"{cid}-o{n}", cid, t2 + n * HOUR, ["lonely-item"])) for n in (2, 3)]
    await handlers.run([first, again, *more])
    sent = [t["trigger_id"] for t in producer.triggers if t["customer_id"] == cid]
    figures["redelivery"] = {
        "records": len(sent),
        "distinct": len(set(sent)),
        "daily_cap": metric(suppressed, kind="post_purchase", reason="daily_cap"),
    }
    print(orjson.dumps(figures).decode())


asyncio.run(main())
"""


def test_control_is_recorded_as_treatment_is_and_a_redelivery_counts_once(
    tmp_path: Path,
) -> None:
    """Control's would-be triggers and show limits are recorded as treatment's are: the same
    behaviour converts alike (it converted in treatment only, or in control only); an order
    read twice re-sends its trigger, and two more orders that day still go (cap 3)."""
    done = run_script(SCRIPT, tmp_path, STREAM_PARTITIONS="1", STREAM_HOLDOUT_SHARE="0.5")
    figures = printed(done)
    assert figures["treatment"] == {"conversions": 1.0, "browser_battery_shown": 3}
    assert figures["control"] == figures["treatment"]
    assert figures["holdout"] >= 1  # the control buyer's offer: recorded, not sent
    assert figures["redelivery"] == {"records": 4, "distinct": 3, "daily_cap": 0.0}
