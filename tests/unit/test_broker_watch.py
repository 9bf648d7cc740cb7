"""The broker watch (stream/broker_watch.py): backoff, what it reports, where it starts.

The watch is run against a local port where nothing listens (a real refused
connection, no Kafka stand-in); the integration tests run it against the
embedded broker, cut off and restored (tests/integration/test_broker_outage.py).
"""

from __future__ import annotations

import asyncio
import time

import faust
import pytest
from faust.app.base import BootStrategy
from prometheus_client import CollectorRegistry

from stream.broker import free_port
from stream.broker_watch import BACKOFF_MAX_S, BrokerFirst, BrokerWatch, backoff_delay
from stream.config import Security
from stream.metrics import Metrics


@pytest.mark.parametrize(
    ("failures", "delay"),
    [(0, 0.5), (1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 10.0), (10_000, 10.0)],
)
def test_backoff_doubles_up_to_its_cap(failures: int, delay: float) -> None:
    """0.5 s after the first failure, doubling, never over BACKOFF_MAX_S (10 s)."""
    assert backoff_delay(failures) == delay
    assert backoff_delay(failures) <= BACKOFF_MAX_S


async def test_an_unreachable_broker_is_retried_and_reported() -> None:
    """Nothing listens: up 0, failed probes counted, the reason says since when; stop ends it."""
    registry = CollectorRegistry()
    metrics = Metrics.create(registry)
    watch = BrokerWatch(
        [f"127.0.0.1:{free_port()}"],
        Security(),
        up=metrics.broker_up,
        failures=metrics.broker_connect_failures,
    )
    assert watch.unreachable() == "connecting to the broker"
    starting = asyncio.ensure_future(watch.start())
    deadline = time.monotonic() + 30
    while watch.attempts < 2:
        assert time.monotonic() < deadline, watch.unreachable()
        await asyncio.sleep(0.05)
    assert registry.get_sample_value("stream_broker_up") == 0
    assert registry.get_sample_value("stream_broker_connect_failures_total") == watch.attempts
    reason = watch.unreachable()
    assert reason is not None
    assert reason.startswith("broker unreachable since 20")
    assert "Unable to bootstrap" in reason
    assert watch.retry_in == backoff_delay(watch.attempts)
    await watch.stop()
    # Stopped before the broker answered: the start does not go on to Faust's clients.
    with pytest.raises(asyncio.CancelledError):
        await starting


async def test_a_broker_lost_while_watched_is_retried_after_the_first_delay(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The watch's failed probe is attempt 1: logged with its number, and the next probe waits
    the first delay (0.5 s). It was probed again at once, and the first logged attempt was 2."""
    monkeypatch.setattr("stream.broker_watch.PROBE_INTERVAL_S", 0.05)
    metrics = Metrics.create(CollectorRegistry())
    watch = BrokerWatch(
        [f"127.0.0.1:{free_port()}"],
        Security(),
        up=metrics.broker_up,
        failures=metrics.broker_connect_failures,
    )
    watch.reachable = True  # it answered before; now nothing listens
    probed: list[float] = []
    probe = watch._probe

    async def timed_probe() -> bool:
        probed.append(time.monotonic())
        return await probe()

    watch._probe = timed_probe  # type: ignore[method-assign]
    caplog.set_level("WARNING", logger="stream.broker_watch")
    watching = asyncio.ensure_future(BrokerWatch._watch(watch))
    deadline = time.monotonic() + 30
    while len(probed) < 2:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    watching.cancel()
    await asyncio.gather(watching, return_exceptions=True)
    assert probed[1] - probed[0] >= backoff_delay(1) - 0.05
    first = next(r for r in caplog.records if r.getMessage() == "broker unreachable, retrying")
    assert (first.attempt, first.retry_in_s) == (1, backoff_delay(1))  # type: ignore[attr-defined]


async def test_the_watch_starts_after_the_web_server_and_before_kafka() -> None:
    """Health and /metrics answer while the worker waits; no Kafka client starts before."""
    app = faust.App("test-broker-first", broker="kafka://127.0.0.1:1", autodiscover=False)
    metrics = Metrics.create(CollectorRegistry())
    watch = BrokerWatch(
        ["127.0.0.1:1"], Security(), up=metrics.broker_up, failures=metrics.broker_connect_failures
    )
    try:
        order = list(BrokerFirst(app, watch).server())
        faust_order = list(BootStrategy(app).server())
    finally:
        app.consumer._thread.thread_loop.close()  # made with the consumer, never started here
    assert sorted(map(id, order)) == sorted(map(id, [*faust_order, watch]))  # each once
    assert order.index(app.web) < order.index(watch) < order.index(app.producer)
    assert order.index(watch) < order.index(app.consumer)
