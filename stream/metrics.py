"""Prometheus metrics: one registry shared with Faust's own sensors, one /metrics.

Names start with `stream_`, carry their unit, counters end in `_total`, and
labels take bounded values (topic, type, reason, kind, agent, variant,
partition), never a customer or SKU.

Faust's sensors (`setup_prometheus_sensors(..., name_prefix="stream_faust")`
in `stream.app`) add, among others, the offset commit latency
(`stream_faust_consumer_commit_latency`, milliseconds) and the rebalances
(`stream_faust_rebalance_done_latency_count`: completed, recovery included).
Consumer lag is ours (`consumer_lag`, set by `stream.health`): Faust's offset
gauges move only when a record arrives and are cleared at every rebalance.
Whether the broker answers is ours too (`broker_up`, `broker_connect_failures`,
set by `stream.broker_watch`).
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping, MutableMapping
from functools import lru_cache
from typing import Any, Final, NamedTuple
from weakref import WeakKeyDictionary

from faust.sensors.monitor import Monitor
from faust.sensors.prometheus import PrometheusMonitor
from faust.types import TP, EventT, PendingMessage, ProducerT, StreamT
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector


@lru_cache(maxsize=4096)
def labelled(metric: Any, *labels: str) -> Any:
    """`metric.labels(*labels)`, looked up once per label set.

    prometheus-client validates the labels and takes a lock on every
    `labels()` (0.65 us); the hot path counts by topic, type, kind and
    variant several times an event. Label sets are few (bounded by the
    topics, types and reasons), the cache is bounded anyway. Not for a
    metric whose series are removed (the consumer lag gauge): the cached
    child would outlive its series.
    """
    return metric.labels(*labels)


# Event arrival (the record's Kafka timestamp) to output: 1 ms .. 30 s, steps of
# about 1.5x, so that a quantile is resolved to a few milliseconds where answers
# are fast (1, 2, 3, 5, 7.5 ms ...) and 2.5 s, the alerting target, is an edge.
LATENCY_BUCKETS = (
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    2.5,
    3.0,
    5.0,
    10.0,
    30.0,
)
# Time spent in the agent on one event: 10 us .. 1 s.
PROCESSING_BUCKETS = (
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.1,
    1.0,
)
# Customer lifetime value in the shop's currency units (customer-ltv `ltv`).
LTV_BUCKETS = (0.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0)


class Metrics(NamedTuple):
    """The service's own metrics (DESIGN.md, "Running it")."""

    events_consumed: Counter
    dead_lettered: Counter
    suggestions_emitted: Counter
    triggers_emitted: Counter
    event_to_emit: Histogram
    processing: Histogram
    customers_held: Gauge
    items_held: Gauge
    pairs_held: Gauge
    basket_rows: Counter
    orders: Counter
    revenue: Counter
    conversions: Counter
    attributed_revenue: Counter
    triggers_suppressed: Counter
    customer_ltv: Histogram
    consumer_lag: Gauge
    broker_up: Gauge
    broker_connect_failures: Counter
    timer_errors: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> Metrics:
        return cls(
            events_consumed=Counter(
                "stream_events_consumed",
                "Input records read, by topic and event type (invalid = dead-lettered).",
                ["topic", "type"],
                registry=registry,
            ),
            dead_lettered=Counter(
                "stream_events_dead_lettered",
                "Input records sent to the dead-letter topic, by reason.",
                ["topic", "reason"],
                registry=registry,
            ),
            suggestions_emitted=Counter(
                "stream_suggestions_emitted",
                "Suggestion records emitted (one per item_added).",
                registry=registry,
            ),
            triggers_emitted=Counter(
                "stream_triggers_emitted",
                "Marketing-automation triggers emitted, by kind.",
                ["kind"],
                registry=registry,
            ),
            event_to_emit=Histogram(
                "stream_event_to_emit_seconds",
                "From the input record's Kafka timestamp to its output being sent.",
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            processing=Histogram(
                "stream_processing_seconds",
                "Time an agent spends on one input record.",
                ["agent"],
                buckets=PROCESSING_BUCKETS,
                registry=registry,
            ),
            customers_held=Gauge(
                "stream_customers_held",
                "Customers with state in this worker's tables.",
                registry=registry,
            ),
            items_held=Gauge(
                "stream_items_held",
                "Items with a co-occurrence row in this worker's tables.",
                registry=registry,
            ),
            pairs_held=Gauge(
                "stream_pairs_held",
                "Item pairs (n_ij entries) held in this worker's co-occurrence rows.",
                registry=registry,
            ),
            basket_rows=Counter(
                "stream_basket_rows",
                "Orders' baskets read by the item rows, one per distinct item of an order"
                " (redeliveries included; none is counted into a row twice).",
                registry=registry,
            ),
            orders=Counter(
                "stream_orders",
                "Completed orders counted (redeliveries excluded), by A/B variant.",
                ["variant"],
                registry=registry,
            ),
            revenue=Counter(
                "stream_revenue",
                "Revenue of completed orders counted, by A/B variant (shop currency).",
                ["variant"],
                registry=registry,
            ),
            conversions=Counter(
                "stream_cross_sell_conversions",
                "Orders holding an item the customer was shown or offered within the "
                "attribution window (control: would have been shown), by A/B variant.",
                ["variant"],
                registry=registry,
            ),
            attributed_revenue=Counter(
                "stream_attributed_revenue",
                "Revenue of the order lines attributed to cross-sell, by A/B variant.",
                ["variant"],
                registry=registry,
            ),
            triggers_suppressed=Counter(
                "stream_triggers_suppressed",
                "Triggers not sent, by kind and reason (daily_cap, no_fresh_offer, holdout).",
                ["kind", "reason"],
                registry=registry,
            ),
            customer_ltv=Histogram(
                "stream_customer_ltv",
                "Lifetime value (realized + predicted, shop currency) of each customer-ltv "
                "record published.",
                buckets=LTV_BUCKETS,
                registry=registry,
            ),
            consumer_lag=Gauge(
                "stream_consumer_lag_messages",
                "Records of the input partitions this worker owns that it has not committed "
                "yet (end offset - committed offset).",
                ["topic", "partition"],
                registry=registry,
            ),
            broker_up=Gauge(
                "stream_broker_up",
                "1 while the Kafka broker answers this worker's probes, 0 while it is "
                "unreachable (the worker waits and retries: stream.broker_watch).",
                registry=registry,
            ),
            broker_connect_failures=Counter(
                "stream_broker_connect_failures",
                "Probes of the Kafka broker that got no answer (one per retry, with backoff, "
                "while it is unreachable).",
                registry=registry,
            ),
            timer_errors=Counter(
                "stream_timer_errors",
                "Customers (rescore) or items (item_neighbors) a timer's work raised on: a bug, "
                "the traceback in the log; skipped, and the worker goes on.",
                ["timer"],
                registry=registry,
            ),
        )


# The `timer` label of stream_timer_errors_total: the timers that skip what they raise on.
RESCORE_TIMER: Final = "rescore"
NEIGHBORS_TIMER: Final = "item_neighbors"
TIMERS: Final = (RESCORE_TIMER, NEIGHBORS_TIMER)


def start_at_zero(metrics: Metrics, reasons_by_topic: dict[str, tuple[str, ...]]) -> None:
    """Export at 0 the error series the alerts watch, before any error.

    A labelled counter's series exists only from its first `inc()`, and
    Prometheus sees a series that appears at 1 as no increase: the
    ProcessingErrors, DeadLettersHigh and TimerErrors alerts would miss a
    worker's first errors, or a burst of them that nothing follows.
    """
    for topic, reasons in reasons_by_topic.items():
        for reason in reasons:
            labelled(metrics.dead_lettered, topic, reason)
    for timer in TIMERS:
        labelled(metrics.timer_errors, timer)


class FaustSensors(PrometheusMonitor):
    """Faust's Prometheus sensors (`stream_faust_*`): the same series, counted for less.

    Faust's PrometheusMonitor updates Prometheus metrics (a lock each, and a
    `labels()` lookup: a lock, a tuple, a dict) for every record fetched, read
    and acked, every event in and out, every table read and write. Here those
    hooks only count in the plain ints and dicts that Faust's base `Monitor`
    keeps anyway, and the series they feed are read from them when Prometheus
    scrapes (`FaustStateCollector`). The other hooks (commits, rebalances,
    sends, web requests: a few a second) update Faust's metrics as before,
    each labelled child looked up once and kept; so does the per-event
    runtime histogram, which no count can stand in for.

    Measured (`python -m stream bench pipeline --processors pipeline --events
    20000 --runs 1`, interleaved pairs): against the Prometheus monitor with
    cached children that this replaced, 3,693 / 3,880 -> 4,082 / 4,302
    events/s, 0.26 / 0.25 -> 0.23 / 0.22 CPU ms an event; against Faust's
    plain Monitor, no Prometheus at all, 4,560 / 4,543 and 4,582 / 4,331
    events/s: what these sensors still cost is within the noise.

    One difference from Faust's: the per-topic received counter is not reset
    at a rebalance (Faust's removes its series, so the counter restarts at 0
    on every rebalance); the per-partition offset gauges are cleared, as Faust
    clears them.
    """

    def __init__(self, metrics: Any, registry: CollectorRegistry, **kwargs: Any) -> None:
        super().__init__(metrics, **kwargs)
        self._stream_labels: MutableMapping[StreamT[Any], str] = WeakKeyDictionary()
        self.events_per_stream: collections.Counter[str] = collections.Counter()
        registry.register(FaustStateCollector(self, metrics, registry))

    # Per record and per event: the base Monitor's counts only (read at scrape time),
    # its own methods bound here over PrometheusMonitor's.
    on_message_in = Monitor.on_message_in
    on_message_out = Monitor.on_message_out
    track_tp_end_offset = Monitor.track_tp_end_offset  # for every record fetched
    on_table_get = Monitor.on_table_get
    on_table_set = Monitor.on_table_set
    on_table_del = Monitor.on_table_del

    def on_stream_event_in(
        self, tp: TP, offset: int, stream: StreamT[Any], event: EventT[Any]
    ) -> dict[str, Any] | None:
        state = Monitor.on_stream_event_in(self, tp, offset, stream, event)
        label = self._stream_labels.get(stream)
        if label is None:
            label = self._stream_labels[stream] = f"stream.{self._stream_label(stream)}.events"
        self.events_per_stream[label] += 1
        return state

    def on_stream_event_out(
        self,
        tp: TP,
        offset: int,
        stream: StreamT[Any],
        event: EventT[Any],
        state: dict[str, Any] | None = None,
    ) -> None:
        Monitor.on_stream_event_out(self, tp, offset, stream, event, state)
        if state is not None:
            self._metrics.events_runtime_latency.observe(self.secs_to_ms(self.events_runtime[-1]))

    # The rest, a few a second: Faust's metrics, children kept.

    def on_send_initiated(
        self, producer: ProducerT, topic: str, message: PendingMessage, keysize: int, valsize: int
    ) -> Any:
        labelled(self._metrics.topic_messages_sent, f"topic.{topic}").inc()
        return Monitor.on_send_initiated(self, producer, topic, message, keysize, valsize)


class FaustStateCollector(Collector):
    """The `stream_faust_*` series that `FaustSensors` counts in Faust's Monitor, at scrape time.

    Takes Faust's metrics of the same names out of the registry and yields
    their samples from the monitor's counts instead: same names, help, types
    and labels as Faust's own (a unit test compares them sample by sample).
    """

    def __init__(self, monitor: FaustSensors, metrics: Any, registry: CollectorRegistry) -> None:
        self.monitor = monitor
        self.families: dict[str, tuple[str, str, str]] = {}
        for field in _FROM_MONITOR:
            metric = getattr(metrics, field)
            (family,) = metric.describe()
            self.families[field] = (family.type, family.name, family.documentation)
            registry.unregister(metric)

    def describe(self) -> Iterable[Metric]:
        return [self._family(field) for field in _FROM_MONITOR]

    def collect(self) -> Iterable[Metric]:
        m = self.monitor
        values: dict[str, Iterable[tuple[tuple[str, ...], float]]] = {
            "messages_received": [((), m.messages_received_total)],
            "active_messages": [((), m.messages_active)],
            "messages_received_per_topics": [
                ((topic,), n) for topic, n in m.messages_received_by_topic.items()
            ],
            "messages_received_per_topics_partition": _per_tp(m.tp_read_offsets),
            "total_events": [((), m.events_total)],
            "total_active_events": [((), m.events_active)],
            "total_events_per_stream": [((label,), n) for label, n in m.events_per_stream.items()],
            "table_operations": [
                ((f"table.{name}", operation), n)
                for name, state in list(m.tables.items())
                for operation, n in (
                    (m.KEYS_RETRIEVED, state.keys_retrieved),
                    (m.KEYS_UPDATED, state.keys_updated),
                    (m.KEYS_DELETED, state.keys_deleted),
                )
                if n
            ],
            "topic_partition_end_offset": _per_tp(m.tp_end_offsets),
        }
        for field, samples in values.items():
            family = self._family(field)
            for labels, value in samples:
                family.add_metric(labels, value)
            yield family

    def _family(self, field: str) -> CounterMetricFamily | GaugeMetricFamily:
        kind, name, documentation = self.families[field]
        labels = _FROM_MONITOR[field]
        if kind == "counter":
            return CounterMetricFamily(name, documentation, labels=labels)
        return GaugeMetricFamily(name, documentation, labels=labels)


# FaustMetrics fields that FaustSensors counts in the monitor (per record or
# per event), with their label names (as Faust's FaustMetrics.create gives them).
_FROM_MONITOR: dict[str, tuple[str, ...]] = {
    "messages_received": (),
    "active_messages": (),
    "messages_received_per_topics": ("topic",),
    "messages_received_per_topics_partition": ("topic", "partition"),
    "total_events": (),
    "total_active_events": (),
    "total_events_per_stream": ("stream",),
    "table_operations": ("table", "operation"),
    "topic_partition_end_offset": ("topic", "partition"),
}


def _per_tp(offsets: Mapping[TP, int]) -> list[tuple[tuple[str, ...], float]]:
    return [((tp.topic, str(tp.partition)), offset) for tp, offset in list(offsets.items())]
