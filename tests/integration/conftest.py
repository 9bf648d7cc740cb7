"""The real thing: the embedded broker, real workers, plain aiokafka clients.

A session fixture starts the Tansu broker on a free port. Each test module
gets its own deployment: its own topic names, consumer group and data
directory (so modules never see each other's records), and real worker
processes (`python -m stream worker`) started against the broker. Tests
produce JSON bytes to the input topics and read the output topics with a
plain consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.structs import ConsumerRecord, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from stream.broker import EmbeddedBroker, ensure_topics, free_port
from stream.config import _TOPIC_VARS, Settings, Topics
from stream.health import read_page

ROOT = Path(__file__).resolve().parents[2]
# The Kafka client id of the tests' own producers and consumers (a broker outage
# in test_broker_outage.py cuts the worker off, not them).
CLIENT_ID = "stream-tests"


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """The embedded broker, started once for the whole test session."""
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with EmbeddedBroker(log_path=log) as running:
        yield running


@dataclass
class Worker:
    """One `python -m stream worker` process."""

    process: subprocess.Popen[bytes]
    log_path: Path
    web_port: int

    def stop(self, grace: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(grace)
        return self.process.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    async def metrics(self) -> str:
        """The worker's /metrics page."""
        return await read_page(self.web_port, "/metrics")


class FaustNamedAssignor(RoundRobinPartitionAssignor):
    """Round robin under the name of Faust's assignor, to join a Faust app's group."""

    name = "faust"


@dataclass
class Deployment:
    """One isolated installation of the service on the session broker."""

    broker: EmbeddedBroker
    env: dict[str, str]
    settings: Settings
    directory: Path
    workers: list[Worker] = field(default_factory=list)

    @property
    def topics(self) -> Topics:
        return self.settings.topics

    def start_worker(self, data: str | None = None, **env: str) -> Worker:
        """Start one more worker; `data` names its data directory (default: a new one)."""
        index = len(self.workers)
        port = free_port()
        log_path = self.directory / f"worker-{index}.log"
        data_dir = self.directory / (data or f"worker-{index}")
        env = dict(self.env, STREAM_DATA_DIR=str(data_dir), **env)
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "stream", "worker", "-l", "info", "--web-port", str(port)],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        worker = Worker(process, log_path, port)
        self.workers.append(worker)
        return worker

    @contextlib.asynccontextmanager
    async def producer(self) -> AsyncIterator[AIOKafkaProducer]:
        """A started producer on the session broker (the tests' client id)."""
        producer = AIOKafkaProducer(
            bootstrap_servers=self.broker.bootstrap,
            client_id=CLIENT_ID,
            max_request_size=4 * 1_048_576,
        )
        await producer.start()
        try:
            yield producer
        finally:
            await producer.stop()

    async def produce(
        self,
        topic: str,
        records: list[tuple[bytes | None, bytes]],
        producer: AIOKafkaProducer | None = None,
    ) -> list[tuple[int, int]]:
        """Send raw (key, value) records, wait until the broker has them; their (partition, offset).

        With `producer` (from `Deployment.producer`), sent with that one.
        """
        if producer is None:
            async with self.producer() as started:
                return await self.produce(topic, records, started)
        sent = [await producer.send(topic, key=key, value=value) for key, value in records]
        await producer.flush()
        return [(m.partition, m.offset) for m in await asyncio.gather(*sent)]

    async def produce_events(
        self,
        topic: str,
        events: list[dict[str, Any]],
        producer: AIOKafkaProducer | None = None,
    ) -> list[tuple[int, int]]:
        """Send contract events as JSON, keyed by customer_id; their (partition, offset)."""
        records = [(e["customer_id"].encode(), orjson.dumps(e)) for e in events]
        return await self.produce(topic, records, producer)

    async def read(
        self,
        topic: str,
        until: Callable[[list[ConsumerRecord[bytes, bytes]]], bool],
        within: float = 90.0,
        settle: float = 0.0,
    ) -> list[ConsumerRecord[bytes, bytes]]:
        """Read `topic` from the start until `until(records)` holds, then `settle` seconds more.

        Fails with the workers' log tails if it does not hold `within` seconds.
        """
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=self.broker.bootstrap,
            client_id=CLIENT_ID,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            fetch_max_wait_ms=100,
        )
        await consumer.start()
        records: list[ConsumerRecord[bytes, bytes]] = []
        deadline = time.monotonic() + within
        try:
            while not until(records):
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"{topic}: condition not met in {within}s with {len(records)} records\n"
                        + self.logs()
                    )
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(batch)
            settle_until = time.monotonic() + settle
            while time.monotonic() < settle_until:
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    records.extend(batch)
        finally:
            await consumer.stop()
        return records

    async def committed(self, topic: str) -> dict[int, int]:
        """The workers' consumer group's committed offset per partition of `topic` (0: none)."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.broker.bootstrap,
            client_id=CLIENT_ID,
            group_id=self.settings.app_id,  # Faust's group id is its app id
            enable_auto_commit=False,
        )
        await consumer.start()  # never subscribes: looks the offsets up, never joins
        try:
            return {
                partition: await consumer.committed(TopicPartition(topic, partition)) or 0
                for partition in range(self.settings.partitions)
            }
        finally:
            await consumer.stop()

    async def rewind(self, topic: str, offsets: dict[int, int]) -> None:
        """Commit these offsets for the workers' group (none running), as a crash may leave them.

        The broker takes commits from members only: this joins the group alone
        first, under the protocol name of Faust's assignor, which the group keeps.
        """
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=self.broker.bootstrap,
            client_id=CLIENT_ID,
            group_id=self.settings.app_id,
            enable_auto_commit=False,
            partition_assignment_strategy=(FaustNamedAssignor,),
        )
        await consumer.start()
        try:
            deadline = time.monotonic() + 60
            while len(consumer.assignment()) < len(offsets):
                assert time.monotonic() < deadline, consumer.assignment()
                await asyncio.sleep(0.1)
            await consumer.commit(
                {TopicPartition(topic, partition): at for partition, at in offsets.items()}
            )
        finally:
            await consumer.stop()

    def logs(self) -> str:
        return "\n".join(
            f"--- worker {i} (exit {w.process.poll()}) ---\n{w.log_tail()}"
            for i, w in enumerate(self.workers)
        )


async def health(worker: Worker, path: str) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) of a health page; (0, {}) while nothing listens yet."""
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{worker.web_port}{path}") as response,
        ):
            return response.status, await response.json()
    except aiohttp.ClientConnectionError:
        return 0, {}


async def wait_health(
    worker: Worker,
    done: Callable[[int, dict[str, Any]], bool],
    within: float = 60.0,
    path: str = "/health/ready",
) -> tuple[int, dict[str, Any]]:
    """Poll a health page until `done(status, body)`; fail with the worker's log."""
    deadline = time.monotonic() + within
    status, body = await health(worker, path)
    while not done(status, body):
        assert worker.process.poll() is None, worker.log_tail()
        if time.monotonic() > deadline:
            raise AssertionError(f"{path}: {status} {body}\n{worker.log_tail()}")
        await asyncio.sleep(0.2)
        status, body = await health(worker, path)
    return status, body


async def sample(worker: Worker, name: str, **labels: str) -> float | None:
    """A sample of the worker's /metrics, summed over those with `labels`; None while none."""
    try:
        text = await worker.metrics()
    except OSError:
        return None
    found = [
        point.value
        for family in text_string_to_metric_families(text)
        for point in family.samples
        if point.name == name and labels.items() <= point.labels.items()
    ]
    return float(sum(found)) if found else None


async def wait_sample(
    worker: Worker,
    name: str,
    done: Callable[[float | None], bool],
    within: float = 60.0,
    **labels: str,
) -> float | None:
    """Poll a metric (summed over those with `labels`) until `done(value)`; fail with the log."""
    deadline = time.monotonic() + within
    value = await sample(worker, name, **labels)
    while not done(value):
        assert worker.process.poll() is None, worker.log_tail()
        assert time.monotonic() < deadline, f"{name} = {value}\n{worker.log_tail()}"
        await asyncio.sleep(0.2)
        value = await sample(worker, name, **labels)
    return value


def values(records: list[ConsumerRecord[bytes, bytes]]) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in records]


@contextlib.asynccontextmanager
async def namespace(
    broker: EmbeddedBroker,
    tmp_path_factory: pytest.TempPathFactory,
    partitions: int = 4,
    topic_configs: Mapping[str, Mapping[str, str]] | None = None,
) -> AsyncIterator[Deployment]:
    """A fresh namespace (topics, group, data) on the session broker; its workers stop after.

    `topic_configs`: topics (by their `Topics` field, e.g. "dead_letters")
    made first with these configs, as an operator may have made them.
    """
    prefix = f"t{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_")}
    env.update(
        STREAM_BROKER=broker.url,
        STREAM_APP_ID=f"{prefix}-app",
        STREAM_PARTITIONS=str(partitions),
        PYTHONUNBUFFERED="1",
    )
    defaults = Topics()
    for name, var in _TOPIC_VARS.items():
        env[var] = f"{prefix}-{getattr(defaults, name)}"
    settings = Settings.from_env({k: v for k, v in env.items() if k.startswith("STREAM_")})
    if topic_configs:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap, client_id=CLIENT_ID)
        await admin.start()
        try:
            await admin.create_topics(
                [
                    NewTopic(
                        getattr(settings.topics, name), partitions, 1, topic_configs=dict(configs)
                    )
                    for name, configs in topic_configs.items()
                ]
            )
        finally:
            await admin.close()
    await ensure_topics(settings)
    running = Deployment(broker, env, settings, tmp_path_factory.mktemp(prefix))
    try:
        yield running
    finally:
        for worker in running.workers:
            worker.stop()


@pytest.fixture(scope="module")
async def deployment(
    broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Deployment]:
    """A fresh namespace with four partitions, no worker yet."""
    async with namespace(broker, tmp_path_factory) as running:
        yield running
