"""Issue #8, item 6: the web port binds where configured; no secret reaches the logs.

A worker with `STREAM_WEB_HOST=127.0.0.1` and SASL credentials in its
environment (PLAINTEXT: the embedded broker has no SASL, so they are only
carried) takes valid and invalid events at `-l info`; its listening socket
is on the loopback address only, and the password is nowhere in its log.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from stream.broker import EmbeddedBroker
from tests.integration.conftest import namespace, wait_health, wait_sample

pytestmark = pytest.mark.integration

TCP_LISTEN = "0A"


def listening_addresses(port: int) -> set[str]:
    """The local IPv4 addresses with a socket listening on `port` (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == TCP_LISTEN and int(hex_port, 16) == port:
            octets = [str(int(address[i : i + 2], 16)) for i in range(6, -2, -2)]
            found.add(".".join(octets))
    return found


async def test_web_port_binds_where_configured_and_logs_keep_no_secret(
    broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> None:
    secret = f"pw-{uuid.uuid4().hex}"
    async with namespace(broker, tmp_path_factory) as deployment:
        worker = deployment.start_worker(
            STREAM_WEB_HOST="127.0.0.1",
            STREAM_SASL_USERNAME="shop-service",
            STREAM_SASL_PASSWORD=secret,
        )
        await wait_health(worker, lambda status, _: status == 200, within=120.0)
        assert listening_addresses(worker.web_port) == {"127.0.0.1"}

        topics = deployment.topics
        order = {
            "event_id": "sec-e1",
            "type": "order_completed",
            "customer_id": "sec-c1",
            "ts": "2026-09-01T08:00:00Z",
            "order_id": "sec-o1",
            "items": [{"sku": "sec-a", "quantity": 1, "unit_price": 2.5}],
        }
        await deployment.produce_events(topics.purchase, [order])
        await deployment.produce(topics.purchase, [(b"sec-c1", b"{not json")])
        await wait_sample(
            worker, "stream_events_consumed_total", lambda v: v == 2, topic=topics.purchase
        )
        await wait_sample(worker, "stream_events_dead_lettered_total", lambda v: v == 1)
        assert worker.stop() == 0, deployment.logs()
        log = worker.log_path.read_text(errors="replace")

    assert secret not in log
    assert log.count("\n") > 10  # the worker did log (at info): the check read something
