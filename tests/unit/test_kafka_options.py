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
