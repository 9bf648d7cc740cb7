"""`python -m stream replay` on the real broker: every valid event arrives as in the file.

Each test replays into a fresh namespace with the command itself (a
subprocess with the namespace's `STREAM_*` settings) and reads the input
topics back with a plain consumer; the last one has a worker turn a CSV
export, replayed twice, into customer values that count each order once.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.structs import ConsumerRecord

from stream.broker import EmbeddedBroker
from stream.codec import decode_purchase
from stream.domain.events import format_ts, parse_ts
from stream.replay import event_id
from tests.integration.conftest import ROOT, Deployment, namespace, values

pytestmark = pytest.mark.integration

SAMPLE = ROOT / "tests" / "data" / "online_retail_sample.csv"
UCI = [
    "--columns",
    "order_id=InvoiceNo,customer_id=CustomerID,sku=StockCode",
    "--columns",
    "quantity=Quantity,unit_price=UnitPrice,ts=InvoiceDate",
    "--ts-format",
    "%m/%d/%Y %H:%M",
]
# The sample's orders (tests/unit/test_replay.py reads the same file): customer -> order ids.
SAMPLE_ORDERS = {
    "17850": ["536365", "536366", "536372"],
    "13047": ["536367", "536368"],
    "12583": ["536370"],
    "13748": ["536371"],
}
Records = list[ConsumerRecord[bytes, bytes]]


async def replay(deployment: Deployment, *args: str) -> tuple[int, str, str]:
    """Run the command against the namespace; its exit status, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "stream",
        "replay",
        *args,
        cwd=ROOT,
        env=deployment.env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def history() -> list[dict[str, Any]]:
    """Cart, purchase and subscription events of six customers, in event-time order."""
    t0 = parse_ts("2026-03-01T09:00:00Z")
    events: list[dict[str, Any]] = []
    for n in range(6):
        customer, ts = f"cust-{n}", t0 + n * 3_600
        line = {"sku": f"sku-{n}", "quantity": 1, "unit_price": 10.5 + n}
        story: list[tuple[str, int, dict[str, Any]]] = [
            ("item_added", 0, {"sku": line["sku"], "cart_id": f"cart-{n}", "unit_price": 10.5}),
            ("order_completed", 5, {"order_id": f"o-{n}", "items": [line], "currency": "EUR"}),
        ]
        if n % 2 == 0:
            story.append(("order_refunded", 60, {"order_id": f"o-{n}", "total": 2.5}))
            story.append(("cart_cleared", 61, {"cart_id": f"cart-{n}"}))
        if n % 3 == 0:
            renews_at = format_ts(ts + 30 * 86_400)
            subscription = {"subscription_id": f"sub-{n}", "plan_id": "basic", "price": 9.99}
            subscription |= {"period_days": 30, "renews_at": renews_at}
            story.append(("subscription_started", 90, subscription))
        for kind, minutes, fields in story:
            events.append(
                {
                    "event_id": f"e-{customer}-{len(events)}",
                    "type": kind,
                    "customer_id": customer,
                    "ts": format_ts(ts + minutes * 60),
                    **fields,
                }
            )
    return events


def by_key(pairs: list[tuple[bytes, bytes]]) -> dict[bytes, list[bytes]]:
    grouped: dict[bytes, list[bytes]] = defaultdict(list)
    for key, value in pairs:
        grouped[key].append(value)
    return dict(grouped)


async def test_jsonl_events_arrive_as_in_the_file_and_bad_lines_are_counted(
    broker: EmbeddedBroker, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Every valid line reaches its type's topic byte for byte, keyed by customer; bad lines not."""
    good = [orjson.dumps(event) for event in history()]
    bad = [
        (b"{not json", "not_json"),
        (b'{"type": "order_shipped", "customer_id": "cust-0"}', "unknown_type"),
        (orjson.dumps({**orjson.loads(good[0]), "ts": "2026-03-01 09:00"}), "bad_timestamp"),
        (
            orjson.dumps({k: v for k, v in orjson.loads(good[1]).items() if k != "customer_id"}),
            "missing_field",
        ),
        (b"[]", "not_object"),
    ]
    lines = list(good)
    expected_bad: list[tuple[int, str]] = []
    for position, (line, _) in zip((3, 8, 12, 17, 20), bad, strict=True):
        lines.insert(position, line)
    lines.insert(5, b"")  # a blank line: skipped, not bad
    for number, line in enumerate(lines, start=1):
        reason = dict(bad).get(line)
        if reason is not None:
            expected_bad.append((number, reason))
    source = tmp_path / "history.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")

    async with namespace(broker, tmp_path_factory) as deployment:
        topics = deployment.topics
        kind_topic = {"item_added": topics.cart, "cart_cleared": topics.cart}
        kind_topic |= {"order_completed": topics.purchase, "order_refunded": topics.purchase}
        kind_topic["subscription_started"] = topics.subscription
        expected: dict[str, list[tuple[bytes, bytes]]] = defaultdict(list)
        for value in good:
            event = orjson.loads(value)
            expected[kind_topic[event["type"]]].append((event["customer_id"].encode(), value))
        assert set(expected) == set(topics.inputs)

        sent_from = time.time()
        code, out, err = await replay(
            deployment,
            str(source),
            "--quiet",
            "--bad-lines",
            str(tmp_path / "bad.jsonl"),
            "--json",
            str(tmp_path / "summary.json"),
        )
        sent_until = time.time()
        assert code == 0, err

        for topic, pairs in expected.items():

            def complete(records: Records, n: int = len(pairs)) -> bool:
                return len(records) >= n

            records = await deployment.read(topic, complete, within=30, settle=1.0)
            arrived = [(r.key, r.value) for r in records]
            assert len(arrived) == len(pairs), topic
            assert by_key(arrived) == by_key(pairs), topic  # per customer: same bytes, same order
            for record in records:
                assert sent_from * 1000 - 1 <= record.timestamp <= sent_until * 1000 + 1

    summary = orjson.loads((tmp_path / "summary.json").read_bytes())
    assert summary["lines"] == len(lines)
    assert summary["sent"] == {topic: len(pairs) for topic, pairs in expected.items()}
    assert summary["events_sent"] == len(good)
    assert summary["bad"] == {reason: 1 for _, reason in bad}
    assert summary["error"] is None
    written = [orjson.loads(line) for line in (tmp_path / "bad.jsonl").read_bytes().splitlines()]
    assert [(w["line"], w["reason"]) for w in written] == expected_bad
    assert [w["original"].encode() for w in written] == [line for line, _ in bad]
    assert f"{len(good)} events sent" in out
    assert f"history.jsonl:{expected_bad[0][0]}: not_json: " in err


async def test_csv_orders_arrive_with_event_time_records(
    broker: EmbeddedBroker, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A UCI-style export: one order_completed per invoice, keyed by customer, stamped at ts."""
    async with namespace(broker, tmp_path_factory) as deployment:
        code, out, err = await replay(
            deployment,
            str(SAMPLE),
            *UCI,
            "--record-time",
            "event",
            "--quiet",
            "--json",
            str(tmp_path / "summary.json"),
        )
        assert code == 0, err
        wanted = sum(len(ids) for ids in SAMPLE_ORDERS.values())
        records = await deployment.read(
            deployment.topics.purchase, lambda rs: len(rs) >= wanted, within=30, settle=1.0
        )

    assert len(records) == wanted
    arrived: dict[str, list[str]] = defaultdict(list)
    for record in records:
        event = decode_purchase(record.value)
        assert record.key == event.customer_id.encode()
        assert record.timestamp == round(event.ts * 1000)
        assert event.event_id == event_id(SAMPLE.name, "order_completed", event.order_id)
        arrived[event.customer_id].append(event.order_id)
    assert arrived == SAMPLE_ORDERS
    first = next(decode_purchase(r.value) for r in records if r.key == b"17850")
    assert first.ts == parse_ts("2010-12-01T08:26:00Z")
    assert [(line.sku, line.quantity, line.unit_price) for line in first.items] == [
        ("85123A", 6, Decimal("2.55")),
        ("71053", 6, Decimal("3.39")),
        ("84406B", 8, Decimal("2.75")),
    ]
    summary = orjson.loads((tmp_path / "summary.json").read_bytes())
    assert (summary["lines"], summary["events_sent"]) == (20, wanted)
    assert summary["bad"] == {"missing_field": 3}  # invoice 536414 (2 rows), A563185
    assert summary["skipped"] == {"refund": 1}  # C536379
    assert "skipped: 1 refund rows (not sent)" in out
    assert "online_retail_sample.csv:13-14: missing_field: order 536414, line 13: " in err


async def test_a_missing_topic_stops_the_replay_before_sending(
    broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """--topic naming a topic the broker lacks: exit 1, nothing sent, the topic not created."""
    async with namespace(broker, tmp_path_factory) as deployment:
        missing = f"{deployment.topics.purchase}-nowhere"
        code, out, err = await replay(deployment, str(SAMPLE), *UCI, "--topic", missing)
        assert code == 1
        assert f"no topic {missing} on the broker" in err
        assert out == ""
        code, _, err = await replay(deployment, str(SAMPLE), *UCI, "--quiet")
        assert code == 0, err  # the same file replays once the topic is right


async def test_a_worker_counts_each_replayed_order_and_refund_once(
    broker: EmbeddedBroker, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Files replayed twice: customer-ltv counts each order and each refund once."""
    # Hand-computed from the sample: sum of quantity x unit price over each customer's invoices.
    revenue = {
        "17850": Decimal("90.94"),  # 57.64 + 22.20 + 11.10
        "13047": Decimal("124.88"),  # 84.53 + 40.35
        "12583": Decimal("234.00"),
        "13748": Decimal("204.00"),
    }
    orders = {customer: len(ids) for customer, ids in SAMPLE_ORDERS.items()}
    # Refund rows carrying the order's own id (--refunds emit): the workers count a refund
    # by its event id, so only a deterministic id keeps the second replay from refunding again.
    refunds = tmp_path / "refunds.csv"
    refunds.write_text(
        "order_id,customer_id,sku,quantity,unit_price,ts\n"
        "r-1,refunder,mug,2,10,2010-12-02T10:00:00Z\n"
        "r-1,refunder,tea,1,5,2010-12-02T10:00:00Z\n"
        "r-1,refunder,mug,-1,10,2010-12-05T10:00:00Z\n"
    )
    revenue["refunder"], orders["refunder"] = Decimal("15"), 1  # 2 x 10 + 5 - 10
    follow_up = "2010-12-20T00:00:00Z"
    async with namespace(broker, tmp_path_factory) as deployment:
        for _ in range(2):
            code, _, err = await replay(deployment, str(SAMPLE), *UCI, "--quiet")
            assert code == 0, err
            code, _, err = await replay(deployment, str(refunds), "--refunds", "emit", "--quiet")
            assert code == 0, err
        # One more order per customer, after both replays on the same partition: when the
        # worker has applied it, it has applied (or dropped) both copies of the history.
        await deployment.produce_events(
            deployment.topics.purchase,
            [
                {
                    "event_id": f"follow-up-{customer}",
                    "type": "order_completed",
                    "customer_id": customer,
                    "ts": follow_up,
                    "order_id": f"follow-up-{customer}",
                    "items": [{"sku": "gift-card", "quantity": 1, "unit_price": 1}],
                }
                for customer in orders
            ],
        )
        deployment.start_worker()

        def followed_up(records: Records) -> bool:
            done = {v["customer_id"] for v in values(records) if v["last_purchase"] == follow_up}
            return done >= set(orders)

        records = await deployment.read(deployment.topics.customer_ltv, followed_up, within=120)

    latest = {v["customer_id"]: v for v in values(records) if v["last_purchase"] == follow_up}
    for customer, count in orders.items():
        record = latest[customer]
        assert record["orders"] == count + 1, customer
        assert Decimal(str(record["revenue"])) == revenue[customer] + 1, customer
