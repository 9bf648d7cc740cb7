"""Broker outages, the real thing: a worker waits for Kafka, says so, and carries on.

This module has its own embedded broker, advertising the address of a TCP proxy
(tests/integration/proxy.py), so that every connection of the worker goes
through the proxy; the tests' own clients (client id `CLIENT_ID`) get through
even when the worker does not. The embedded broker keeps its data in memory,
so the outage is made by the proxy, never by stopping the broker:

- a worker started while nothing answers at its broker address waits, not
  ready, with `stream_broker_up` 0 and its failed probes counted and backed
  off; once the broker is there it becomes ready and processes what comes;
- a worker cut off mid-stream says so in health and metrics, stays live,
  and once the broker is back processes every order produced meanwhile,
  each counted exactly once;
- a broker that takes the worker's reads and commits but never its writes:
  once the producer gives them up (`STREAM_PRODUCER_REQUEST_TIMEOUT_S`) the
  worker commits no offset past them and crashes, and the worker after it
  sends what was lost, each order counted exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import orjson
import pytest

from stream.broker import EmbeddedBroker, free_port
from stream.broker_watch import CLIENT_ID as WATCH_CLIENT_ID
from stream.broker_watch import backoff_delay
from tests.integration.conftest import (
    CLIENT_ID,
    Deployment,
    Worker,
    health,
    namespace,
    sample,
    wait_health,
    wait_sample,
)
from tests.integration.expectations import customer_totals, latest_totals
from tests.integration.proxy import Proxy

pytestmark = pytest.mark.integration

UNREACHABLE = "broker unreachable"


@pytest.fixture(scope="module")
def cuttable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmbeddedBroker, Proxy]]:
    """A broker of this module's own that clients reach only through a proxy."""
    port = free_port()
    log = tmp_path_factory.mktemp("outage-broker") / "broker.log"
    with (
        EmbeddedBroker(log_path=log, advertised=f"127.0.0.1:{port}") as broker,
        contextlib.closing(Proxy(port, broker.bootstrap, bystander=CLIENT_ID).start()) as proxy,
    ):
        proxy.restore()
        yield broker, proxy


@pytest.fixture
async def outage(
    cuttable: tuple[EmbeddedBroker, Proxy], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Deployment, Proxy]]:
    """A fresh namespace on that broker; the proxy is let through again before workers stop."""
    broker, proxy = cuttable
    proxy.restore()
    async with namespace(broker, tmp_path_factory) as deployment:
        try:
            yield deployment, proxy
        finally:
            proxy.restore()


def start_worker(deployment: Deployment, proxy: Proxy) -> Worker:
    return deployment.start_worker(STREAM_BROKER=f"kafka://{proxy.address}")


def log_records(worker: Worker, message: str) -> list[dict[str, Any]]:
    """The worker's JSON log records from stream.broker_watch with this message."""
    records = [
        orjson.loads(line)
        for line in worker.log_path.read_text().splitlines()
        if line.startswith("{")
    ]
    return [r for r in records if (r["logger"], r["message"]) == ("stream.broker_watch", message)]


def order(batch: str, n: int, customer: str, price: str) -> dict[str, Any]:
    return {
        "event_id": f"e-outage-{batch}-{n}",
        "type": "order_completed",
        "customer_id": customer,
        "ts": f"2026-11-{10 + n % 10:02d}T10:00:00Z",
        "order_id": f"o-outage-{batch}-{n}",
        "items": [{"sku": f"sku-{n % 3}", "quantity": 1 + n % 2, "unit_price": float(price)}],
    }


CUSTOMERS = [f"out-{n}" for n in range(6)]
PRICES = ["12.5", "20.25", "7.75", "99.0", "3.5", "45.25"]  # multiples of 1/4: exact floats


def orders(batch: str, count: int) -> list[dict[str, Any]]:
    return [
        order(batch, n, CUSTOMERS[n % len(CUSTOMERS)], PRICES[n % len(PRICES)])
        for n in range(count)
    ]


async def read_totals(
    deployment: Deployment, expected: dict[str, tuple[int, Decimal]]
) -> dict[str, tuple[int, Decimal]]:
    """customer-ltv until every customer's latest record has its expected totals, then 3 s more."""
    records = await deployment.read(
        deployment.topics.customer_ltv,
        lambda rs: latest_totals(rs) == expected,
        within=120.0,
        settle=3.0,
    )
    return latest_totals(records)


async def test_a_worker_started_before_its_broker_waits_and_then_works(
    outage: tuple[Deployment, Proxy],
) -> None:
    """Nothing answers: 503, up 0, retries backing off; then ready, and it processes orders."""
    deployment, proxy = outage
    proxy.down()
    worker = start_worker(deployment, proxy)
    waiting = start_worker(deployment, proxy)

    for started in (worker, waiting):
        status, body = await wait_health(
            started, lambda status, body: status == 503 and UNREACHABLE in body.get("reason", "")
        )
        assert body["ready"] is False
    # A worker waiting for its broker stops cleanly when told to.
    assert waiting.stop() == 0, waiting.log_tail()
    failures = await wait_sample(
        worker, "stream_broker_connect_failures_total", lambda v: v is not None and v >= 4
    )
    assert failures is not None
    assert await sample(worker, "stream_broker_up") == 0
    live, body = await health(worker, "/health/live")
    assert (live, body["live"]) == (200, True)
    status, body = await health(worker, "/health/ready")
    assert status == 503
    assert UNREACHABLE in body["reason"]
    # Each failed attempt is logged with its number and the delay before the next.
    retries = log_records(worker, "broker unreachable, retrying")
    assert len(retries) >= 4
    attempts = list(range(1, len(retries) + 1))
    assert [r["attempt"] for r in retries] == attempts
    assert [r["retry_in_s"] for r in retries] == [backoff_delay(n) for n in attempts]
    assert retries[1]["retry_in_s"] > retries[0]["retry_in_s"]

    proxy.restore()
    await wait_health(worker, lambda status, _: status == 200, within=120.0)
    assert await sample(worker, "stream_broker_up") == 1
    back = log_records(worker, "broker reachable again")
    assert back
    assert back[0]["failed_attempts"] >= 4

    sent = orders("a", 18)
    await deployment.produce_events(deployment.topics.purchase, sent)
    assert await read_totals(deployment, customer_totals(sent)) == customer_totals(sent)
    assert worker.process.poll() is None


async def test_a_worker_cut_off_mid_stream_catches_up_exactly_once(
    outage: tuple[Deployment, Proxy],
) -> None:
    """Cut off: 503, up 0, still live; orders produced meanwhile are each counted once after."""
    deployment, proxy = outage
    worker = start_worker(deployment, proxy)
    await wait_health(worker, lambda status, _: status == 200, within=120.0)
    assert await sample(worker, "stream_broker_up") == 1
    before = orders("before", 12)
    await deployment.produce_events(deployment.topics.purchase, before)
    await read_totals(deployment, customer_totals(before))
    failed = await sample(worker, "stream_broker_connect_failures_total")
    assert failed is not None

    proxy.partition()
    await wait_health(
        worker, lambda status, body: status == 503 and UNREACHABLE in body.get("reason", "")
    )
    assert await sample(worker, "stream_broker_up") == 0
    await wait_sample(
        worker, "stream_broker_connect_failures_total", lambda v: v is not None and v >= failed + 2
    )
    # The events of the outage reach the broker, not the worker.
    during = orders("during", 24)
    await deployment.produce_events(deployment.topics.purchase, during)
    # ... and it stays so, live, past the group's session timeout (10 s).
    cut_until = time.monotonic() + 12.0
    while time.monotonic() < cut_until:
        status, body = await health(worker, "/health/ready")
        assert status == 503, body
        assert UNREACHABLE in body["reason"]
        live, _ = await health(worker, "/health/live")
        assert live == 200
        await asyncio.sleep(0.5)
    assert await sample(worker, "stream_broker_up") == 0
    assert WATCH_CLIENT_ID in proxy.refused
    assert any(client.startswith("faust") for client in proxy.refused), proxy.refused

    proxy.restore()
    await wait_health(worker, lambda status, _: status == 200, within=120.0)
    assert await sample(worker, "stream_broker_up") == 1
    expected = customer_totals(before + during)
    assert await read_totals(deployment, expected) == expected
    # Counted once each: redeliveries after the outage are not orders again.
    orders_total = await wait_sample(
        worker,
        "stream_orders_total",
        lambda v: v is not None and v >= len(before) + len(during),
    )
    assert orders_total == len(before) + len(during)
    assert log_records(worker, "broker reachable again")
    assert worker.process.poll() is None


# The producer gives up a record after this long: the test's stall lasts beyond it.
REQUEST_TIMEOUT_S = 4.0


async def test_records_the_broker_never_takes_are_not_committed_past(
    outage: tuple[Deployment, Proxy],
) -> None:
    """Writes hang past the producer's timeout: no commit past them, a crash; then each once."""
    deployment, proxy = outage
    purchases = deployment.topics.purchase
    worker = deployment.start_worker(
        STREAM_BROKER=f"kafka://{proxy.address}",
        STREAM_PRODUCER_REQUEST_TIMEOUT_S=str(REQUEST_TIMEOUT_S),
    )
    await wait_health(worker, lambda status, _: status == 200, within=120.0)
    before = orders("taken", 12)
    await deployment.produce_events(purchases, before)
    await read_totals(deployment, customer_totals(before))
    deadline = time.monotonic() + 60.0
    while sum((committed := await deployment.committed(purchases)).values()) < len(before):
        assert time.monotonic() < deadline, committed
        await asyncio.sleep(0.5)

    proxy.stall_produce()
    held = orders("held", 24)
    await deployment.produce_events(purchases, held)
    # The worker reads and handles them (its reads and commits get through) ...
    await wait_sample(
        worker, "stream_orders_total", lambda v: v is not None and v >= len(before) + len(held)
    )
    # ... but what it writes for them never reaches the broker: once the
    # producer gives that up, the worker refuses to commit, crashes (not
    # live), and exits non-zero, for its process manager to restart it.
    crashed = await wait_exit(worker, within=90.0)
    assert crashed != 0, worker.log_tail()
    assert any(client.startswith("faust") for client in proxy.stalled), proxy.stalled
    log = worker.log_path.read_text()
    assert "a record was not delivered: no more offsets committed" in log
    assert "record(s) not delivered, the first:" in log  # the crash's reason
    # Not one offset past the orders whose records were lost.
    assert await deployment.committed(purchases) == committed

    proxy.restore()
    after = deployment.start_worker(STREAM_BROKER=f"kafka://{proxy.address}")
    await wait_health(after, lambda status, _: status == 200, within=120.0)
    expected = customer_totals(before + held)
    assert await read_totals(deployment, expected) == expected
    # The worker after it handles the held orders again, and only those.
    assert await wait_sample(
        after, "stream_orders_total", lambda v: v is not None and v >= len(held)
    ) == len(held)
    assert after.process.poll() is None


async def wait_exit(worker: Worker, within: float) -> int:
    """The worker's exit status once it exits; until then, a live page that says 503 names why."""
    deadline = time.monotonic() + within
    while (code := worker.process.poll()) is None:
        assert time.monotonic() < deadline, worker.log_tail()
        status, body = await health(worker, "/health/live")
        if status == 503:  # crashed, not yet stopped (0: its web server is already down)
            assert "not delivered" in body.get("reason", ""), body
        await asyncio.sleep(0.2)
    return code
