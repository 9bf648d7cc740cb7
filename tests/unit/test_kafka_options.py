"""stream.kafka.faust_client_options: what the workers' Faust clients are given."""

from __future__ import annotations

import asyncio

import faust
import pytest

from stream.config import Settings
from stream.kafka import faust_client_options


@pytest.mark.parametrize(("linger_ms", "expected"), [(5, 5), (0, 0), (20, 20)])
async def test_the_producer_lingers_as_the_setting_says(linger_ms: int, expected: int) -> None:
    """STREAM_PRODUCER_LINGER_MS reaches the producer Faust makes, in ms (0 stays 0)."""
    settings = Settings.from_env({"STREAM_PRODUCER_LINGER_MS": str(linger_ms)})
    app = faust.App(
        "linger-test", **faust_client_options(settings), loop=asyncio.get_running_loop()
    )
    assert app.producer.linger_ms == expected


@pytest.mark.parametrize(
    ("env", "expected_s"), [({}, 1200.0), ({"STREAM_PRODUCER_REQUEST_TIMEOUT_S": "4"}, 4.0)]
)
async def test_the_producer_gives_a_record_up_when_the_setting_says(
    env: dict[str, str], expected_s: float
) -> None:
    """STREAM_PRODUCER_REQUEST_TIMEOUT_S (default: Faust's own 20 minutes) is how long the
    Kafka client tries a record: its requests' timeout and its batches' time to live."""
    settings = Settings.from_env(env)
    app = faust.App(
        "request-timeout-test", **faust_client_options(settings), loop=asyncio.get_running_loop()
    )
    assert app.producer.request_timeout == expected_s
    client = app.producer._new_producer()
    try:
        assert client._request_timeout_ms == expected_s * 1000
        assert client._message_accumulator._batch_ttl == expected_s
    finally:
        await client.stop()
