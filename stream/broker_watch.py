"""Whether the worker reaches Kafka: it waits for the broker at start and watches it after.

A worker started before its broker, or cut off from it later, does not exit
and does not stop its agents; it retries and says so:

- At start, the web server (health, `/metrics`) comes up first, then
  `BrokerWatch` probes the broker until it answers, with exponential backoff
  (`BACKOFF_INITIAL_S` doubling up to `BACKOFF_MAX_S`), and only then do
  Faust's producer, consumer, agents and tables start (`BrokerFirst`).
  Faust alone would exit at once ("Unable to bootstrap"). Stopped while it
  waits (SIGTERM), the worker exits cleanly without starting them.
- After that it probes every `PROBE_INTERVAL_S`. When a probe gets no answer
  within `PROBE_TIMEOUT_S`, it retries with the same backoff until one does.
  Meanwhile Faust's clients reconnect on their own: the consumer fetches
  nothing, sends wait in the producer's buffer, and processing goes on where
  it stopped when the broker is back (from the committed offsets if the group
  rebalanced meanwhile; state is idempotent, so nothing counts twice).
- `/health/ready` says 503 "broker unreachable ..." while it is (stream.health);
  `/health/live` stays 200: restarting the process does not bring a broker back.
- `stream_broker_up` is 1 while the broker answers, else 0;
  `stream_broker_connect_failures_total` counts the probes that got no answer.
  Each failed probe is logged with its attempt number and the next delay.

A probe is one Metadata request on a kept connection to a broker the cluster
advertises (the address the worker's clients use); after a failure each retry
bootstraps anew from STREAM_BROKER, so a broker that comes back at another
address is found too.

Limits: a send still undelivered after STREAM_PRODUCER_REQUEST_TIMEOUT_S
(Faust's `producer_request_timeout`, 20 minutes) is given up by the Kafka
client, which makes the worker crash rather than commit past it
(`stream.kafka.Deliveries`), and an agent whose sends have
filled an output partition's batch waits for room as long, then gets an
error. Should the broker vanish in the moment between the probe's answer and
Faust's clients starting, Faust exits as before (the process manager restarts
it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from faust.app.base import BootStrategy
from mode import Service
from mode.types import ServiceT
from prometheus_client import Counter, Gauge

from stream.config import Security, Settings
from stream.domain.events import format_ts
from stream.kafka import client_security
from stream.metrics import Metrics

log = logging.getLogger(__name__)

PROBE_INTERVAL_S = 5.0
PROBE_TIMEOUT_S = 5.0
BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 10.0
CLIENT_ID = "stream-broker-watch"


def backoff_delay(
    failures: int, initial: float = BACKOFF_INITIAL_S, cap: float = BACKOFF_MAX_S
) -> float:
    """Seconds to wait after `failures` failed tries in a row: initial * 2^(failures-1), capped."""
    return min(cap, initial * 2.0 ** min(max(failures - 1, 0), 64))


class BrokerWatch(Service):
    """Probes the broker: waits for it in `on_start`, then watches it until the worker stops."""

    def __init__(
        self,
        servers: Iterable[str],
        security: Security,
        up: Gauge,
        failures: Counter,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.servers = list(servers)
        self.security = security
        self._up = up
        self._failures = failures
        self.reachable: bool | None = None  # None until the first probe is answered or fails
        self.attempts = 0  # failed probes since the broker last answered
        self.error = ""
        self.retry_in = 0.0
        self._down_since = 0.0
        self._admin: AIOKafkaAdminClient | None = None
        up.set(0)

    def unreachable(self) -> str | None:
        """Why the broker is out of reach now (steady during an outage); None while it answers."""
        if self.reachable:
            return None
        if self.reachable is None:
            return "connecting to the broker"
        return f"broker unreachable since {format_ts(self._down_since)}: {self.error}"

    async def on_start(self) -> None:
        """Return once the broker answers: Faust's clients start after."""
        await self._reach()
        if not self.reachable:
            # Stopped while waiting. The start must not go on: mode still runs the
            # app's on_started, whose tasks would fail on the missing broker.
            raise asyncio.CancelledError("stopped before the broker answered")

    async def on_stop(self) -> None:
        await self._disconnect()

    @Service.task
    async def _watch(self) -> None:
        while not self.should_stop:
            await self.sleep(PROBE_INTERVAL_S)
            if not self.should_stop and not await self._probe():
                await self._reach(failed=True)

    async def _reach(self, failed: bool = False) -> None:
        """Probe until the broker answers, backing off between failed attempts.

        `failed`: a probe just failed (the watch's), so the first thing is to
        log it and wait, not to probe again at once.
        """
        while not self.should_stop and (failed or not await self._probe()):
            failed = False
            self.retry_in = backoff_delay(self.attempts)
            log.warning(
                "broker unreachable, retrying",
                extra={
                    "servers": self.servers,
                    "error": self.error,
                    "attempt": self.attempts,
                    "retry_in_s": self.retry_in,
                },
            )
            await self.sleep(self.retry_in)

    async def _probe(self) -> bool:
        """One Metadata request within PROBE_TIMEOUT_S; record the outcome."""
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                if self._admin is None:
                    self._admin = AIOKafkaAdminClient(
                        bootstrap_servers=self.servers,
                        client_id=CLIENT_ID,
                        request_timeout_ms=int(PROBE_TIMEOUT_S * 1000),
                        **client_security(self.security),
                    )
                    await self._admin.start()
                await self._admin.describe_cluster()
        except (OSError, TimeoutError, KafkaError) as exc:
            await self._disconnect()
            self._failed(exc)
            return False
        self._answered()
        return True

    async def _disconnect(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            try:
                await admin.close()
            except (OSError, KafkaError) as exc:
                log.debug("broker probe client not closed cleanly", extra={"error": repr(exc)})

    def _failed(self, exc: BaseException) -> None:
        if self.reachable is not False:
            self._down_since = time.time()
        self.reachable = False
        self.attempts += 1
        self.error = (str(exc) if isinstance(exc, KafkaError) else repr(exc))[:300]
        self._up.set(0)
        self._failures.inc()

    def _answered(self) -> None:
        if self.reachable is False:
            log.info(
                "broker reachable again",
                extra={
                    "servers": self.servers,
                    "failed_attempts": self.attempts,
                    "down_s": round(time.time() - self._down_since, 1),
                },
            )
        elif self.reachable is None:
            log.info("broker reachable", extra={"servers": self.servers})
        self.reachable = True
        self.attempts = 0
        self._up.set(1)


class BrokerFirst(BootStrategy):
    """Faust's start order, but the web server first and the watch before any Kafka client."""

    def __init__(self, app: Any, watch: BrokerWatch) -> None:
        super().__init__(app)
        self.watch = watch

    def server(self) -> Iterable[ServiceT]:
        web = list(self.web_server())
        rest = [service for service in super().server() if service not in web]
        kafka = [*self.kafka_producer(), *self.kafka_consumer()]
        at = min((rest.index(service) for service in kafka if service in rest), default=len(rest))
        return [*rest[:at], *web, self.watch, *rest[at:]]


def install(app: Any, settings: Settings, metrics: Metrics) -> BrokerWatch:
    """Watch the broker of `settings`; the Faust app starts its Kafka clients once it answers."""
    servers = settings.worker_servers
    watch = BrokerWatch(
        servers, settings.security, up=metrics.broker_up, failures=metrics.broker_connect_failures
    )
    app.boot_strategy = BrokerFirst(app, watch)
    return watch
