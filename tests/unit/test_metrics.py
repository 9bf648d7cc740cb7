"""The ops surface: metrics (stream/metrics.py) and health, lag and logs (stream/health.py).

Metrics are read back from a fresh `CollectorRegistry()` with `get_sample_value()`,
as prometheus client_python's own tests do; readiness is judged on a stand-in for
the Faust app holding only the flags it reads.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import sys
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import faust
import orjson
import pytest
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP, Message
from mode.utils import logging as mode_logging
from prometheus_client import CollectorRegistry

from stream import health
from stream.metrics import LATENCY_BUCKETS, LTV_BUCKETS, FaustSensors, Metrics


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> Metrics:
    return Metrics.create(registry)


# --- names, labels, types --------------------------------------------------------------------


def test_counters_have_the_design_names_and_labels(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    """Each counter answers to its DESIGN.md name with exactly its labels."""
    metrics.events_consumed.labels(topic="cart-events", type="item_added").inc()
    metrics.events_consumed.labels(topic="cart-events", type="invalid").inc()
    metrics.dead_lettered.labels(topic="cart-events", reason="not_json").inc()
    metrics.suggestions_emitted.inc()
    metrics.triggers_emitted.labels(kind="cart_add").inc(2)
    metrics.orders.labels(variant="control").inc()
    metrics.revenue.labels(variant="control").inc(12.5)
    value = registry.get_sample_value
    assert (
        value("stream_events_consumed_total", {"topic": "cart-events", "type": "item_added"}) == 1
    )
    assert value("stream_events_consumed_total", {"topic": "cart-events", "type": "invalid"}) == 1
    assert (
        value("stream_events_dead_lettered_total", {"topic": "cart-events", "reason": "not_json"})
        == 1
    )
    assert value("stream_suggestions_emitted_total") == 1
    assert value("stream_triggers_emitted_total", {"kind": "cart_add"}) == 2
    assert value("stream_orders_total", {"variant": "control"}) == 1
    assert value("stream_revenue_total", {"variant": "control"}) == 12.5


def test_histograms_and_gauges_have_the_design_names(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    """Latency, processing time and LTV are histograms; sizes, lag, broker up are gauges."""
    metrics.event_to_emit.observe(0.004)
    metrics.processing.labels(agent="track_orders").observe(0.0002)
    metrics.customer_ltv.observe(120.0)
    metrics.customers_held.set(3)
    metrics.items_held.set(4)
    metrics.pairs_held.set(5)
    metrics.consumer_lag.labels(topic="cart-events", partition="0").set(7)
    metrics.broker_up.set(1)
    metrics.broker_connect_failures.inc(3)
    value = registry.get_sample_value
    assert value("stream_event_to_emit_seconds_count") == 1
    assert value("stream_processing_seconds_count", {"agent": "track_orders"}) == 1
    assert value("stream_customer_ltv_sum") == 120.0
    assert value("stream_customers_held") == 3
    assert value("stream_items_held") == 4
    assert value("stream_pairs_held") == 5
    assert value("stream_consumer_lag_messages", {"topic": "cart-events", "partition": "0"}) == 7
    assert value("stream_broker_up") == 1
    assert value("stream_broker_connect_failures_total") == 3


def test_every_name_follows_the_conventions(registry: CollectorRegistry, metrics: Metrics) -> None:
    """stream_ prefix; counters end in _total on the wire; seconds carry their unit."""
    families = list(registry.collect())
    assert families
    for family in families:
        assert family.name.startswith("stream_"), family.name
        assert family.documentation, family.name
        if family.name in {"stream_event_to_emit_seconds", "stream_processing_seconds"}:
            assert family.type == "histogram"
    counters = {f.name for f in families if f.type == "counter"}
    assert not {name for name in counters if name.endswith("_total")}  # the client appends it


def test_faust_sensors_share_the_registry(registry: CollectorRegistry, metrics: Metrics) -> None:
    """Faust's sensors fit in the same registry: commit latency, rebalances, no name clash."""
    faust_metrics = FaustMetrics.create(registry, "stream_faust")
    faust_metrics.consumer_commit_latency.observe(3.0)
    faust_metrics.rebalance_done_latency.observe(250.0)
    metrics.suggestions_emitted.inc()
    value = registry.get_sample_value
    assert value("stream_faust_consumer_commit_latency_count") == 1
    assert value("stream_faust_rebalance_done_latency_count") == 1
    assert value("stream_suggestions_emitted_total") == 1


# --- buckets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("observed", "bucket", "count"),
    [
        (0.0008, 0.001, 1),
        (0.0015, 0.002, 1),
        (0.0025, 0.003, 1),
        (0.004, 0.005, 1),
        (0.006, 0.0075, 1),
        (2.4, 2.5, 1),
    ],
)
def test_latency_buckets_resolve_milliseconds(
    registry: CollectorRegistry, metrics: Metrics, observed: float, bucket: float, count: int
) -> None:
    """An answer of a few milliseconds lands in its own bucket, not a coarse one."""
    metrics.event_to_emit.observe(observed)
    edges = [edge for edge in LATENCY_BUCKETS if edge < bucket]
    below = edges[-1] if edges else None
    value = registry.get_sample_value
    assert value("stream_event_to_emit_seconds_bucket", {"le": str(bucket)}) == count
    if below is not None:
        assert value("stream_event_to_emit_seconds_bucket", {"le": str(below)}) == 0


def test_latency_buckets_are_fine_grained() -> None:
    """1 ms first, at most 2x apart up to 3 s, 30 s last."""
    assert LATENCY_BUCKETS[0] == 0.001
    assert LATENCY_BUCKETS[-1] == 30.0
    assert list(LATENCY_BUCKETS) == sorted(set(LATENCY_BUCKETS))
    for low, high in itertools.pairwise(LATENCY_BUCKETS):
        if high <= 3.0:
            assert high / low <= 2.0, (low, high)


@pytest.mark.parametrize(
    ("ltv", "le"),
    [(0.0, "0.0"), (9.99, "10.0"), (120.0, "250.0"), (9999.0, "10000.0"), (25000.0, "+Inf")],
)
def test_ltv_buckets_are_currency_units(
    registry: CollectorRegistry, metrics: Metrics, ltv: float, le: str
) -> None:
    """An LTV is counted in the first bucket at or above it."""
    metrics.customer_ltv.observe(ltv)
    assert registry.get_sample_value("stream_customer_ltv_bucket", {"le": le}) == 1
    edges = [*LTV_BUCKETS, float("inf")]
    index = edges.index(float(le))
    if index:
        below = {"le": str(edges[index - 1])}
        assert registry.get_sample_value("stream_customer_ltv_bucket", below) == 0


# --- readiness and liveness ------------------------------------------------------------------


@dataclass
class Flag:
    value: bool

    def is_set(self) -> bool:
        return self.value


@dataclass
class FakeApp:
    """The flags of a Faust app that readiness reads, in the state of a ready worker."""

    crashed: bool = False
    crash_reason: BaseException | None = None
    should_stop: bool = False
    rebalancing: bool = False
    in_recovery: bool = False
    recovered: bool = True
    actives_ready: bool = True
    actives: set[TP] = field(default_factory=lambda: {TP("cart-events", 0), TP("other", 1)})

    @property
    def tables(self) -> Any:
        return SimpleNamespace(
            recovery=SimpleNamespace(completed=Flag(self.recovered)),
            actives_ready=self.actives_ready,
        )

    @property
    def assignor(self) -> Any:
        return SimpleNamespace(assigned_actives=lambda: set(self.actives))


INPUTS = {"cart-events", "purchase-events"}


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        ({"crashed": True, "crash_reason": RuntimeError("boom")}, "crashed: RuntimeError('boom')"),
        ({"should_stop": True}, "stopping"),
        ({"rebalancing": True, "recovered": False, "actives": set()}, "rebalancing"),
        ({"rebalancing": True}, "rebalancing"),
        ({"recovered": False, "actives": set()}, "waiting for a partition assignment"),
        ({"in_recovery": True}, "recovering tables"),
        ({"actives_ready": False}, "recovering tables"),
        ({"actives": {TP("other", 0)}}, "no partitions assigned"),
        ({"actives": set()}, "no partitions assigned"),
    ],
)
def test_not_ready_says_why(state: dict[str, Any], reason: str) -> None:
    """Each state short of ready gives 503 with its own reason."""
    status = health.readiness(FakeApp(**state), INPUTS)
    assert status.ready is False
    assert status.reason.startswith(reason), status.reason
    assert status.to_json() == {"ready": False, "reason": status.reason, "partitions": {}}


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        ({}, "broker unreachable since"),
        ({"rebalancing": True, "recovered": False, "actives": set()}, "broker unreachable since"),
        ({"should_stop": True}, "stopping"),
        ({"crashed": True, "crash_reason": RuntimeError("boom")}, "crashed"),
    ],
)
def test_an_unreachable_broker_makes_a_worker_unready(state: dict[str, Any], reason: str) -> None:
    """Whatever else holds, no broker = 503 saying so; crashing or stopping say that first."""
    unreachable = "broker unreachable since 2026-11-23T09:15:00Z: KafkaConnectionError"
    status = health.readiness(FakeApp(**state), INPUTS, unreachable)
    assert status.ready is False
    assert status.reason.startswith(reason), status.reason


def test_ready_lists_the_owned_input_partitions() -> None:
    """Ready: assigned, recovered, not rebalancing; only input topics' partitions listed."""
    app = FakeApp(actives={TP("cart-events", 2), TP("cart-events", 0), TP("other", 1)})
    status = health.readiness(app, INPUTS)
    assert status.ready is True
    assert status.to_json()["partitions"] == {"cart-events": [0, 2]}


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        ({}, None),
        ({"actives": set()}, None),  # owning nothing, the tables hold all of it
        ({"should_stop": True}, None),
        ({"rebalancing": True}, "rebalancing"),
        ({"recovered": False, "actives": set()}, "waiting for a partition assignment"),
        ({"in_recovery": True}, "recovering tables"),
        ({"actives_ready": False}, "recovering tables"),
    ],
)
def test_tables_are_unsettled_from_a_revocation_to_the_end_of_recovery(
    state: dict[str, Any], reason: str | None
) -> None:
    """What stops the timers that publish from the tables (stream.app._owned) and readiness."""
    unsettled = health.tables_unsettled(FakeApp(**state))
    if reason is None:
        assert unsettled is None
    else:
        assert unsettled is not None
        assert unsettled.startswith(reason), unsettled


@pytest.mark.parametrize(
    ("state", "alive", "reason"),
    [
        ({}, True, "running"),
        ({"rebalancing": True, "recovered": False}, True, "running"),
        ({"should_stop": True}, False, "stopping"),
        ({"crashed": True, "crash_reason": ValueError("x")}, False, "crashed: ValueError('x')"),
    ],
)
def test_liveness(state: dict[str, Any], alive: bool, reason: str) -> None:
    """Live while running (rebalancing included); not once crashed or stopping."""
    assert health.liveness(FakeApp(**state)) == (alive, reason)


def test_agent_topics_are_read_from_the_agents() -> None:
    """The topics of every agent's channel, whatever the agents are."""
    agents = {
        "a": SimpleNamespace(channel=SimpleNamespace(topics=("cart-events",))),
        "b": SimpleNamespace(channel=SimpleNamespace(topics=("x", "y"))),
        "c": SimpleNamespace(channel=SimpleNamespace()),  # a channel, not a topic
    }
    assert health.agent_topics(SimpleNamespace(agents=agents)) == {"cart-events", "x", "y"}


# --- consumer lag ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ends", "committed", "earliest", "lags"),
    [
        ({"p0": 100}, {"p0": 40}, {}, {"p0": 60}),  # end - committed
        ({"p0": 100}, {"p0": 100}, {}, {"p0": 0}),  # caught up
        ({"p0": 7}, {"p0": 9}, {}, {"p0": 0}),  # an end reported short: never negative
        ({"p0": 100}, {"p0": None}, {"p0": 30}, {"p0": 70}),  # never committed: from earliest
        ({"p0": 100}, {}, {}, {"p0": 100}),  # nothing known: all of it
        ({"p0": None, "p1": 5}, {"p1": 5}, {}, {"p1": 0}),  # unknown end: left out
    ],
)
def test_consumer_lag(
    ends: dict[str, int | None],
    committed: dict[str, int | None],
    earliest: dict[str, int | None],
    lags: dict[str, int],
) -> None:
    """Lag = end offset - committed offset, per partition, hand-computed."""
    assert health.consumer_lag(ends, committed, earliest) == lags


# --- JSON logs -------------------------------------------------------------------------------


def _record(**extra: Any) -> logging.LogRecord:
    record = logging.LogRecord(
        "stream.app", logging.WARNING, __file__, 1, "lag %s on %s", (12, "cart-events"), None
    )
    record.created = 1_795_425_300.25  # 2026-11-23T09:15:00.250Z
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_a_log_record_is_one_json_object() -> None:
    """ts (UTC, ms), level, logger, the formatted message, and the extra fields."""
    line = health.JsonFormatter().format(_record(partitions=4, reason="rebalancing"))
    assert "\n" not in line
    assert orjson.loads(line) == {
        "ts": "2026-11-23T09:15:00.250Z",
        "level": "WARNING",
        "logger": "stream.app",
        "message": "lag 12 on cart-events",
        "partitions": 4,
        "reason": "rebalancing",
    }


def test_exceptions_and_odd_extras_stay_on_one_line() -> None:
    """A traceback is a field; a value JSON cannot hold is written as its repr."""
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        record = _record(thing=object())
        record.exc_info = sys.exc_info()
    line = health.JsonFormatter().format(record)
    assert "\n" not in line
    doc = orjson.loads(line)
    assert doc["exc_info"].startswith("Traceback")
    assert "ValueError: bad" in doc["exc_info"]
    assert doc["thing"].startswith("<object object at")


def test_the_worker_logging_config_writes_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    """Through mode's setup (as `faust worker -l info` does), records come out as JSON."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        mode_logging.setup_logging(loglevel="INFO", logging_config=health.logging_config())
        logging.getLogger("stream.test").info("worker ready", extra={"partitions": 3})
        logging.getLogger("stream.test").debug("below the level")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    lines = capsys.readouterr().err.splitlines()
    assert [orjson.loads(line)["message"] for line in lines] == ["worker ready"]
    assert orjson.loads(lines[0])["partitions"] == 3


async def test_a_started_worker_keeps_its_start_up_heap_from_the_collector() -> None:
    """Once started, what is alive is frozen: full collections no longer walk it."""
    gc.unfreeze()
    alive = len(gc.get_objects())
    app = faust.App("test-gc-freeze", broker="kafka://localhost:1")
    worker = health.Worker(app, loop=asyncio.get_running_loop())
    try:
        await worker.on_startup_finished()
        assert gc.get_freeze_count() >= alive // 2
        assert len(gc.get_objects()) < alive // 2  # the collector's share: what came later
    finally:
        gc.unfreeze()


def _kafka_record(name: str = "aiokafka", msg: str = "Unable connect to %s") -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, (111,), None)


def test_kafka_client_repeats_pass_once_per_window() -> None:
    """The first of a kind passes, repeats wait for the window, then pass saying how many."""
    now = [0.0]
    repeats = health.RepeatFilter(window=10.0, clock=lambda: now[0])
    assert repeats.filter(_kafka_record())
    for at in (0.1, 5.0, 9.9):
        now[0] = at
        assert not repeats.filter(_kafka_record())
    assert repeats.filter(_kafka_record("aiokafka", "another message"))  # another kind
    now[0] = 10.0
    record = _kafka_record()
    assert repeats.filter(record)
    assert record.repeated == 3  # type: ignore[attr-defined]
    now[0] = 30.0
    record = _kafka_record()
    assert repeats.filter(record)
    assert not hasattr(record, "repeated")


def test_other_loggers_and_levels_all_pass() -> None:
    """Our own records, and the Kafka client's below WARNING, are never held back."""
    repeats = health.RepeatFilter(clock=lambda: 0.0)
    assert all(repeats.filter(_kafka_record("stream.broker_watch")) for _ in range(5))
    info = _kafka_record("aiokafka.consumer.group_coordinator")
    info.levelno = logging.INFO
    assert all(repeats.filter(info) for _ in range(5))


# --- Faust's sensors, cached -------------------------------------------------------------------


class _Task:
    """A stream's owning task (the sensors keep it by weak reference)."""


class _Stream:
    """What the sensors read of a Faust stream: its label and owning task."""

    shortlabel = "Stream: Topic: cart-events"
    task_owner = _Task()


def _sensor_samples(monitor_class: type[Any]) -> dict[tuple[str, tuple[Any, ...]], float]:
    """Every stream_faust_* sample after the same calls on a fresh registry."""
    registry = CollectorRegistry()
    metrics = FaustMetrics.create(registry, "stream_faust")
    clock = itertools.count(step=0.25).__next__  # every event takes 250 ms: the same sums
    if monitor_class is FaustSensors:
        monitor = FaustSensors(metrics, registry, time=clock)
    else:
        monitor = monitor_class(metrics=metrics, time=clock)
    stream, table = _Stream(), SimpleNamespace(name="carts")
    for offset, (topic, partition) in enumerate(
        itertools.product(["cart-events", "purchase-events"], [0, 1, 0])
    ):
        tp = TP(topic, partition)
        message = Message(topic, partition, offset, 0.0, 0, None, b"k", b"v", None)
        monitor.on_message_in(tp, offset, message)
        monitor.track_tp_end_offset(tp, offset + 10)
        event = SimpleNamespace(message=message)
        state = monitor.on_stream_event_in(tp, offset, stream, event)
        monitor.on_table_get(table, "k")
        monitor.on_table_set(table, "k", "v")
        if offset % 2:
            monitor.on_table_del(table, "k")
        monitor.on_send_initiated(None, f"{topic}-out", None, 1, 1)
        if offset < 4:  # two events and their records still in flight
            monitor.on_stream_event_out(tp, offset, stream, event, state)
            monitor.on_message_out(tp, offset, message)
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def test_faust_sensors_export_what_fausts_own_do() -> None:
    """FaustSensors counts in the monitor and reads at scrape; the series and values are Faust's."""
    ours, fausts = _sensor_samples(FaustSensors), _sensor_samples(PrometheusMonitor)
    assert ours == fausts
    assert ours[("stream_faust_active_messages", ())] == 2
    assert ours[("stream_faust_events_runtime_ms_count", ())] == 4
    received = ("stream_faust_messages_received_per_topic_total", (("topic", "cart-events"),))
    assert ours[received] == 3
    end = (
        "stream_faust_topic_partition_end_offset",
        (("partition", "1"), ("topic", "cart-events")),
    )
    assert ours[end] == 11
    assert (
        ours[
            (
                "stream_faust_table_operations_total",
                (("operation", "keys_updated"), ("table", "table.carts")),
            )
        ]
        == 6
    )
