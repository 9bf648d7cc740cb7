"""What orchestrators and log pipelines read from a worker, besides `/metrics`.

On the worker's web port (STREAM_WEB_PORT), next to `/metrics`:

- `GET /health/live`: 200 `{"live": true, ...}` while the worker's event loop
  answers and the app has not crashed; 503 once it has crashed or is
  stopping. A liveness probe that times out means a blocked event loop.
- `GET /health/ready`: 200 `{"ready": true, "partitions": {...}}` only once
  this worker has partitions of its agents' topics assigned and Faust's table
  recovery for them is complete (the tables hold their state again); 503
  `{"ready": false, "reason": "..."}` before that, during every rebalance
  and its recovery, and while stopping. A worker that owns no input
  partition (more workers than partitions) is an idle standby: 503, reason
  "no partitions assigned". While the broker does not answer (at start, or
  cut off later: stream/broker_watch.py), 503 with reason "broker unreachable
  ...", whatever else holds; `/health/live` stays 200 then, since restarting
  the process does not bring the broker back.

Every `LAG_INTERVAL_S` the worker also measures its consumer lag per owned
partition of its agents' topics, end offset - committed offset, into
`stream_consumer_lag_messages{topic,partition}` (Faust's own offset gauges
move only when a record arrives and are cleared at every rebalance, so a
stalled consumer would show no lag), and logs each readiness change.

Tools that drive a worker (the bench, `python -m stream dev`) read these pages
with `read_page`, and how many records each agent has processed with
`processed_by_agent` (its `stream_processing_seconds` counts on `/metrics`).

Logs: `logging_config()` makes every log line of the worker one JSON object
(`ts`, `level`, `logger`, `message`, any `extra={...}` fields, `exc_info`),
standard library and orjson only. The Kafka client's warnings and errors pass
once per `REPEAT_WINDOW_S` for each kind (`RepeatFilter`): while the broker is
unreachable aiokafka logs each retry, about 200 lines a second.
"""

from __future__ import annotations

import collections
import gc
import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp
import faust
import orjson
from aiokafka.errors import KafkaError
from faust.exceptions import ConsumerNotStarted
from prometheus_client import Gauge
from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger(__name__)

LIVE_PATH = "/health/live"
READY_PATH = "/health/ready"
LAG_INTERVAL_S = 5.0
REPEAT_WINDOW_S = 10.0

P = TypeVar("P")


async def read_page(port: int, path: str) -> str:
    """The body of `GET path` from the worker serving on this machine's `port`, whatever its status.

    Raises OSError when the worker does not answer (not listening yet, gone).
    """
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}{path}") as response,
        ):
            return await response.text(errors="replace")
    except aiohttp.ClientError as exc:
        raise OSError(f"GET {path} on port {port}: {exc!r}") from exc


BASKET_ROWS = "basket_rows"  # processed_by_agent's count of stream_basket_rows_total


async def processed_by_agent(port: int) -> collections.Counter[str]:
    """Records each agent of the worker on `port` has processed (`stream_processing_seconds`).

    And, as BASKET_ROWS, the baskets its count_pairs agent has read for its
    item rows (`stream_basket_rows_total`): an order of n distinct items
    makes n, however many records carried them.
    """
    processed: collections.Counter[str] = collections.Counter()
    for family in text_string_to_metric_families(await read_page(port, "/metrics")):
        for sample in family.samples:
            if sample.name == "stream_processing_seconds_count":
                processed[sample.labels["agent"]] += int(sample.value)
            elif sample.name == "stream_basket_rows_total":
                processed[BASKET_ROWS] += int(sample.value)
    return processed


@dataclass(frozen=True, slots=True)
class Readiness:
    """Whether the worker can do its share of the work now, and if not, why."""

    ready: bool
    reason: str
    partitions: tuple[tuple[str, int], ...] = ()

    def to_json(self) -> dict[str, Any]:
        owned: dict[str, list[int]] = {}
        for topic, partition in self.partitions:
            owned.setdefault(topic, []).append(partition)
        return {"ready": self.ready, "reason": self.reason, "partitions": owned}


def readiness(app: Any, topics: Collection[str], unreachable: str | None = None) -> Readiness:
    """Ready = broker reachable, assigned input partitions, table recovery done, no rebalance.

    `app` is the Faust app: its flags are read, nothing is awaited, so a
    probe never waits on Kafka. `unreachable` says why the broker is out of
    reach (None while it answers).
    """
    if app.crashed:
        return Readiness(False, f"crashed: {app.crash_reason!r}")
    if app.should_stop:
        return Readiness(False, "stopping")
    if unreachable is not None:
        return Readiness(False, unreachable)
    unsettled = tables_unsettled(app)
    if unsettled is not None:
        return Readiness(False, unsettled)
    owned = tuple(
        sorted(
            (tp.topic, tp.partition) for tp in app.assignor.assigned_actives() if tp.topic in topics
        )
    )
    if not owned:
        return Readiness(
            False, "no partitions assigned: an idle standby (more workers than partitions?)"
        )
    return Readiness(True, "partitions assigned and tables recovered", owned)


def tables_unsettled(app: Any) -> str | None:
    """Why the tables may not hold the worker's partitions as they stand now; None if they do.

    From the moment partitions are revoked (Faust sets `rebalancing` from
    the consumer thread) until recovery has read the changelogs of the new
    ones, a newly assigned partition's keys are as this worker last saw them.
    """
    if app.rebalancing:
        return "rebalancing: partitions are being assigned and tables recovered"
    if not app.tables.recovery.completed.is_set():
        return "waiting for a partition assignment (joining the consumer group)"
    if app.in_recovery or not app.tables.actives_ready:
        return "recovering tables from their changelogs"
    return None


def liveness(app: Any) -> tuple[bool, str]:
    """Alive unless the app crashed or is stopping (a blocked loop does not answer at all)."""
    if app.crashed:
        return False, f"crashed: {app.crash_reason!r}"
    if app.should_stop:
        return False, "stopping"
    return True, "running"


def consumer_lag(
    ends: Mapping[P, int | None],
    committed: Mapping[P, int | None],
    earliest: Mapping[P, int | None],
) -> dict[P, int]:
    """Per partition: end offset - committed offset, never below 0.

    Offsets are Kafka's: the end is one past the last record, the committed
    offset is the next record to process. A partition with no commit yet is
    read from its earliest offset (auto_offset_reset=earliest), so all of it
    counts. A partition whose end is unknown is left out.
    """
    lags: dict[P, int] = {}
    for tp, end in ends.items():
        if end is None:
            continue
        position = committed.get(tp)
        if position is None:
            position = earliest.get(tp) or 0
        lags[tp] = max(0, end - position)
    return lags


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message, extra fields, exc_info."""

    # Attributes every LogRecord has; anything else came in through `extra=`.
    STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self.STANDARD and key not in doc and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            doc["stack_info"] = self.formatStack(record.stack_info)
        return orjson.dumps(doc, default=repr).decode()


class RepeatFilter(logging.Filter):
    """Kafka client warnings and errors: each kind once per `window` seconds.

    A kind is the logger and the message template. The first record of a kind
    passes; others within the window are held back, and the next one to pass
    says how many were (`repeated`). Other loggers and lower levels all pass.
    """

    MAX_KINDS = 1000

    def __init__(
        self,
        prefix: str = "aiokafka",
        window: float = REPEAT_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.prefix = prefix
        self.window = window
        self.clock = clock
        self._kinds: dict[tuple[str, str], tuple[float, int]] = {}  # kind -> (passed at, held)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not record.name.startswith(self.prefix):
            return True
        kind = (record.name, str(record.msg))
        now = self.clock()
        passed = self._kinds.get(kind)
        if passed is not None and now - passed[0] < self.window:
            self._kinds[kind] = (passed[0], passed[1] + 1)
            return False
        if passed is not None and passed[1]:
            record.repeated = passed[1]
        if len(self._kinds) >= self.MAX_KINDS:
            self._kinds.clear()
        self._kinds[kind] = (now, 0)
        return True


class Worker(faust.Worker):
    """Faust's worker without its terminal spinner, its start-up heap kept from the collector.

    At `-l warn` (Faust's default level) the spinner sets the root logger to
    DEBUG and spins on every record: aiokafka then formats a debug record
    per produced message and per fetch (seen: 9% of a busy worker's
    samples). Here the root logger stays at the level asked for.

    Once started (the first recovery read, every agent running), the objects
    alive then are frozen (`gc.freeze`): modules, classes, Faust's and
    aiokafka's services, the recovered tables. About 100k objects in the
    bench's worker, which every full collection walked: 47-60 ms pauses a
    few seconds apart under load, each delaying the ~50 adds that arrived
    meanwhile, as many as the 1% over p99 at 1,000 adds/s; frozen, 5-7 ms.
    (Instagram's practice for long-lived CPython servers.) What it costs: an
    object frozen then and later left in a reference cycle is never
    collected; once, at start, so bounded.
    """

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None  # and the root logger keeps the level it was given

    async def on_startup_finished(self) -> None:
        await super().on_startup_finished()
        gc.freeze()


def logging_config() -> dict[str, Any]:
    """Faust's `logging_config`: JSON lines on stderr, the level still from `-l`.

    `merge` keeps mode's defaults (the root logger at the CLI's level) and
    replaces only its `default` handler, which also holds back repeats.
    """
    return {
        "merge": True,
        "formatters": {"json": {"()": JsonFormatter}},
        "filters": {"repeats": {"()": RepeatFilter}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "filters": ["repeats"],
                "stream": "ext://sys.stderr",
            }
        },
    }


def agent_topics(app: Any) -> frozenset[str]:
    """The topics the app's agents consume: the input topics and the internal ones."""
    return frozenset(
        name for agent in app.agents.values() for name in getattr(agent.channel, "topics", ())
    )


def install(app: Any, lag: Gauge, broker: Callable[[], str | None] = lambda: None) -> None:
    """Add the health pages and the lag/readiness timer to the Faust app.

    The topics are those of `agent_topics`, read when asked: agents defined
    after this call count too. `broker()` says why the broker is out of reach
    (`BrokerWatch.unreachable`), None while it answers.
    """

    async def health_live(view: Any, request: Any) -> Any:
        alive, reason = liveness(app)
        return view.json({"live": alive, "reason": reason}, status=200 if alive else 503)

    async def health_ready(view: Any, request: Any) -> Any:
        status = readiness(app, agent_topics(app), broker())
        return view.json(status.to_json(), status=200 if status.ready else 503)

    last: list[Readiness] = []

    async def measure_lag() -> None:
        """Log readiness changes; set the lag gauge of the partitions this worker owns."""
        inputs = agent_topics(app)
        status = readiness(app, inputs, broker())
        if not last or (last[0].ready, last[0].reason) != (status.ready, status.reason):
            if status.ready:
                log.info("worker ready", extra={"partitions": len(status.partitions)})
            else:
                log.warning("worker not ready", extra={"reason": status.reason})
            last[:] = [status]
        if not status.ready:
            lag.clear()  # partitions in flux: no stale series for partitions that moved
            return
        owned = [tp for tp in app.assignor.assigned_actives() if tp.topic in inputs]
        try:
            # The high watermark each fetch response carries (no extra request;
            # the end-offset probe of stream/offsets.py is for recovery only).
            ends = {tp: app.consumer.highwater(tp) for tp in owned}
            # Faust keeps the committed offsets it loaded at assignment and
            # each one it committed since; it has no public accessor.
            committed = {tp: app.consumer._committed_offset.get(tp) for tp in owned}
            fresh = [tp for tp, offset in committed.items() if offset is None]
            earliest = await app.consumer.earliest_offsets(*fresh) if fresh else {}
        except (TimeoutError, ConsumerNotStarted, KafkaError) as exc:
            log.warning("consumer lag not measured", extra={"error": repr(exc)})
            return
        lags = consumer_lag(ends, committed, earliest)
        lag.clear()
        for tp, value in lags.items():
            lag.labels(tp.topic, str(tp.partition)).set(value)

    # Faust's decorators are untyped: applied as calls, so mypy keeps the types.
    app.page(LIVE_PATH, name="health_live")(health_live)
    app.page(READY_PATH, name="health_ready")(health_ready)
    app.timer(interval=LAG_INTERVAL_S, name="stream.health.measure_lag")(measure_lag)
