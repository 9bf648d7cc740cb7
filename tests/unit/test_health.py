"""stream.health's tools for programs that drive a worker: its pages, read over HTTP."""

from __future__ import annotations

import pytest
from aiohttp import web

from stream.broker import free_port
from stream.health import processed_by_agent, read_page

METRICS = """\
# HELP stream_processing_seconds Time to process a record.
# TYPE stream_processing_seconds histogram
stream_processing_seconds_bucket{agent="track_orders",le="+Inf"} 3.0
stream_processing_seconds_count{agent="track_orders"} 3.0
stream_processing_seconds_sum{agent="track_orders"} 0.01
stream_processing_seconds_bucket{agent="count_pairs",le="+Inf"} 7.0
stream_processing_seconds_count{agent="count_pairs"} 7.0
stream_processing_seconds_sum{agent="count_pairs"} 0.02
# HELP stream_events_consumed_total Input records read, by topic and event type.
# TYPE stream_events_consumed_total counter
stream_events_consumed_total{topic="cart-events",type="item_added"} 5.0
# HELP stream_basket_rows_total Orders' baskets read by the item rows.
# TYPE stream_basket_rows_total counter
stream_basket_rows_total 19.0
"""


async def serve(port: int) -> web.AppRunner:
    async def ready(_: web.Request) -> web.Response:
        return web.json_response({"ready": False}, status=503)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text=METRICS)

    app = web.Application()
    app.router.add_get("/health/ready", ready)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def test_a_page_is_read_whatever_its_status_and_metrics_are_counted_by_agent() -> None:
    """A 503 readiness page still has its body; /metrics gives each agent's records.

    And the basket rows count_pairs read: 7 records carried 19 of them.
    """
    port = free_port()
    runner = await serve(port)
    try:
        assert await read_page(port, "/health/ready") == '{"ready": false}'
        assert await processed_by_agent(port) == {
            "track_orders": 3,
            "count_pairs": 7,
            "basket_rows": 19,
        }
    finally:
        await runner.cleanup()


async def test_a_worker_that_does_not_answer_is_an_os_error() -> None:
    """Nothing listening (a worker not up yet, or gone): OSError, which callers wait out."""
    with pytest.raises(OSError):
        await read_page(free_port(), "/metrics")
