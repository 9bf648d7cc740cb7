"""Throughput and latency against the broker: the pipeline next to three baselines, one run.

Four processors, each a separate process on an embedded broker of its own
(started anew for each measurement: the embedded broker keeps its logs in
memory and slows as they grow), get the same generated workload (the demo
shop's cart sessions and orders):

- (a) `passthrough`: a bare Faust app, orjson decode and forward
  (stream/bench/passthrough.py);
- (b) `relay`: raw aiokafka, consume and produce, no Faust (stream/bench/relay.py);
- (c) `pipeline`: the product (`python -m stream worker`): co-occurrence,
  customer value, suggestions, triggers;
- (d) `batched`: the cheapest Faust agent that answers each event (the
  passthrough with the workers' batches, `take_batches`, and sends straight to the
  producer): the floor under any Faust pipeline here.

Throughput: for the baselines, the workload is loaded into the input topics
first, then the processor starts; events/s = input events / (time of the
last output - time of the first), timed by the bench's consumer, so start-up
is not counted. (a), (b) and (d) are done when every event came out.

The pipeline's work depends on what it has learnt, so it is timed as it runs
in a shop: its workers start on a history of earlier orders (`--history`),
settle as a group (every worker ready on `/health/ready`, together owning
every input partition: with N workers the group rebalances, and recovers
tables, as each late one joins), learn the history, and only then does the
workload go in, in order, as fast as the broker takes it; the clock starts
once it is all in (the events handled meanwhile are not counted) and stops
when the agents have processed every item_added, every order and every
order's basket for each of its items' rows (the workers' own counters, read
from /metrics every 250 ms once every add has its suggestion, so the polling
does not slow the bulk of the run). A workload loaded before the pipeline
started would flatter it: its cart adds ran ahead of the orders that build
the co-occurrence index and met an emptier index, with fewer offers and
triggers to send (stream/bench/README.md, "The bench's change at 4e04dc3").

CPU per event: the processor processes' user + system CPU time (/proc, in
10 ms clock ticks) over the same span, divided by the events timed: what
each event costs, whatever else the machine runs.

Latency: after the throughput phase, on the same running processor, the
bench sends item_added events at a steady rate (1,000/s), their event time
moving on from the workload's end at the pace they are sent, as a shop's
would, and times each from just before its send to the moment the bench's
consumer receives its answer (the relayed record; the suggestion): what a
storefront would see.

Each measurement is repeated (`--runs`, each in fresh topics) and the
median is reported; runs of the three processors are interleaved so drift
on a shared machine hits them alike.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stream.broker import EmbeddedBroker, ensure_topics, free_port
from stream.config import _TOPIC_VARS, Settings, Topics
from stream.demo import DemoEvent, DemoFeed, basket_rows
from stream.domain.events import format_ts, parse_ts
from stream.health import BASKET_ROWS, READY_PATH, processed_by_agent, read_page

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("passthrough", "relay", "pipeline", "batched")
# What the bench gives every processor itself (its broker, namespace, data and web port,
# the last on the command line): `--setting` may not change these.
BENCH_SETTINGS = frozenset(
    {
        "STREAM_BROKER",
        "STREAM_APP_ID",
        "STREAM_PARTITIONS",
        "STREAM_DATA_DIR",
        "STREAM_WEB_PORT",
        *_TOPIC_VARS.values(),
    }
)
BASELINES = ("passthrough", "relay", "batched")


@dataclass(frozen=True, slots=True)
class Workload:
    """The events every processor gets, in order, and what completes them.

    `history`: earlier orders of the same shop, which the pipeline learns from
    before its clock starts (the baselines, whose work does not depend on
    what came before, get none).
    """

    events: tuple[DemoEvent, ...]
    history: tuple[DemoEvent, ...] = ()

    @classmethod
    def generate(
        cls, count: int, customers: int, seed: int = 11, history: int = 0, random_ids: bool = False
    ) -> Workload:
        feed = DemoFeed(seed=seed, customers=customers, random_ids=random_ids)
        past = tuple(feed.history(history))
        made: list[DemoEvent] = []
        sessions = feed.live()
        while len(made) < count:
            made.append(next(sessions))
        return cls(tuple(made), past)

    @property
    def last_ts(self) -> str:
        """The event time the workload ends at."""
        return format_ts(max(parse_ts(e.value["ts"]) for e in self.history + self.events))

    @property
    def adds(self) -> int:
        return sum(1 for e in self.events if e.value["type"] == "item_added")

    @property
    def orders(self) -> int:
        return sum(1 for e in self.events if e.value["type"] == "order_completed")

    @property
    def basket_rows_out(self) -> int:
        """The (basket, row) pairs count_pairs counts: one per distinct SKU of each order."""
        return basket_rows(self.events)

    @property
    def history_basket_rows(self) -> int:
        return basket_rows(self.history)


def live_adds(count: int, seed: int, after: str, rate: int) -> Iterator[DemoEvent]:
    """`count` item_added events of new sessions (the latency phase's probes).

    Their event time goes on from `after` (the workload's last) at the pace
    they are sent, `rate` a second, as a shop's own adds would. The demo
    feed's clock moves minutes an event (its sessions span weeks); at 1,000
    adds/s that ran event time 160,000 times faster than the wall clock, and
    the worker re-scored every customer (a week of event time in seconds)
    while the probes were being timed.
    """
    feed = DemoFeed(seed=seed, customers=500)
    start = parse_ts(after)
    made = 0
    for event in feed.live():
        if event.value["type"] == "item_added":
            made += 1
            # Ids of their own: the workload's feed numbered its events and carts alike.
            value = {
                **event.value,
                "ts": format_ts(start + made / rate),
                "event_id": f"probe-{made}",
                "cart_id": f"probe-{event.value['cart_id']}",
            }
            yield DemoEvent(event.topic, event.key, value)
            if made == count:
                return


def environment_without_settings() -> dict[str, str]:
    """This process's environment less its STREAM_* settings: what a processor starts from."""
    return {k: v for k, v in os.environ.items() if not k.startswith("STREAM_")}


@dataclass
class Installation:
    """One processor's namespace on the broker: topics, group, data, processes."""

    kind: str
    broker: EmbeddedBroker
    partitions: int
    directory: Path
    pipeline_settings: dict[str, str] = field(default_factory=dict)  # STREAM_* for the workers
    prefix: str = field(default_factory=lambda: f"b{uuid.uuid4().hex[:8]}")
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        env = environment_without_settings()
        if self.kind == "pipeline":
            env.update(self.pipeline_settings)
        env.update(
            STREAM_BROKER=self.broker.url,
            STREAM_APP_ID=f"{self.prefix}-app",
            STREAM_PARTITIONS=str(self.partitions),
            STREAM_DATA_DIR=str(self.directory / self.prefix),
            BENCH_OUT=self.out_topic,
            PYTHONUNBUFFERED="1",
        )
        defaults = Topics()
        for name, var in _TOPIC_VARS.items():
            env[var] = f"{self.prefix}-{getattr(defaults, name)}"
        return env

    @property
    def settings(self) -> Settings:
        return Settings.from_env({k: v for k, v in self.env.items() if k.startswith("STREAM_")})

    @property
    def out_topic(self) -> str:
        return f"{self.prefix}-out"

    @property
    def answers(self) -> list[str]:
        """The topics whose records answer input events."""
        if self.kind == "pipeline":
            topics = self.settings.topics
            return [topics.suggestions, topics.customer_ltv]
        return [self.out_topic]

    async def create_topics(self) -> None:
        await ensure_topics(self.settings, [self.broker.bootstrap])
        admin = AIOKafkaAdminClient(bootstrap_servers=self.broker.bootstrap)
        await admin.start()
        try:
            await admin.create_topics(
                [NewTopic(self.out_topic, num_partitions=self.partitions, replication_factor=1)]
            )
        finally:
            await admin.close()

    def start(self, workers: int) -> None:
        for n in range(workers):
            port = free_port()
            faust_baseline = ["-m", "stream.bench.passthrough", "worker", "-l", "warn"]
            command = {
                "passthrough": faust_baseline,
                "batched": faust_baseline,  # with BENCH_BATCHED=1
                "relay": ["-m", "stream.bench.relay"],
                "pipeline": ["-m", "stream", "worker", "-l", "warn", "--web-port", str(port)],
            }[self.kind]
            env = dict(self.env, STREAM_DATA_DIR=str(self.directory / f"{self.prefix}-{n}"))
            if self.kind == "batched":
                env["BENCH_BATCHED"] = "1"
            with (self.directory / f"{self.prefix}-{self.kind}-{n}.log").open("ab") as log:
                self.processes.append(
                    subprocess.Popen(
                        [sys.executable, *command],
                        cwd=ROOT,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=log,
                    )
                )
            self.ports.append(port)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def cpu_seconds(self) -> float:
        """User + system CPU time of the processor's processes so far (Linux /proc)."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for process in self.processes:
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
        return total

    def check_alive(self) -> None:
        for n, process in enumerate(self.processes):
            if process.poll() is not None:
                log = self.directory / f"{self.prefix}-{self.kind}-{n}.log"
                tail = log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{self.kind} worker {n} exited {process.returncode}:\n{tail}")

    @property
    def inputs(self) -> set[str]:
        return {self.settings.topics.cart, self.settings.topics.purchase}

    async def owned(self) -> list[set[tuple[str, int]]] | None:
        """Each pipeline worker's input partitions; None while any is not ready."""
        inputs = self.inputs
        each = []
        for port in self.ports:
            try:
                status = orjson.loads(await read_page(port, READY_PATH))
            except (OSError, orjson.JSONDecodeError):
                return None
            if not status.get("ready"):
                return None
            partitions = status["partitions"].items()
            each.append({(t, p) for t, ps in partitions if t in inputs for p in ps})
        return each

    async def settled(self) -> bool:
        """Every pipeline worker ready and, together, owning every input partition."""
        each = await self.owned()
        return each is not None and len(set().union(*each)) == len(self.inputs) * self.partitions

    async def processed(self) -> collections.Counter[str]:
        """Records each agent has processed, summed over the pipeline's workers (/metrics)."""
        total: collections.Counter[str] = collections.Counter()
        for port in self.ports:
            with contextlib.suppress(OSError):
                total += await processed_by_agent(port)
        return total


async def produce(
    bootstrap: str, settings: Settings, events: tuple[DemoEvent, ...] | list[DemoEvent]
) -> None:
    """Load events into the input topics as fast as the broker takes them."""
    topics = {"cart": settings.topics.cart, "purchase": settings.topics.purchase}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20)
    await producer.start()
    try:
        pending = []
        for event in events:
            pending.append(
                await producer.send(
                    topics[event.topic], key=event.key.encode(), value=orjson.dumps(event.value)
                )
            )
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


class Receiver:
    """The bench's consumer of a processor's answer topics: arrival times by source event."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self.consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            fetch_max_wait_ms=5,
        )
        self.count = 0
        self.by_topic: dict[str, int] = {}
        self.first: float | None = None
        self.last = 0.0
        self.arrived: dict[str, float] = {}  # event id -> arrival (watched ids only)
        self.answered: dict[str, float] = {}  # event id -> its answer's record timestamp (s)
        self.watch: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Receiver:
        await self.consumer.start()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self.consumer.stop()

    async def _run(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=100, max_records=10_000)
            now = time.perf_counter()
            for tp, records in batches.items():
                self.count += len(records)
                self.by_topic[tp.topic] = self.by_topic.get(tp.topic, 0) + len(records)
                for record in records:
                    if self.watch:
                        value = orjson.loads(record.value)
                        source = value.get("source_event_id") or value.get("event_id")
                        if source in self.watch and source not in self.arrived:
                            self.arrived[source] = now
                            self.answered[source] = record.timestamp / 1000
            if batches:
                self.first = self.first if self.first is not None else now
                self.last = now


async def until(
    check: Callable[[], Any],
    installation: Installation,
    within: float,
    what: str,
    poll: float | None = None,
) -> None:
    deadline = time.monotonic() + within
    while not await check():
        installation.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{installation.kind}: {what} not reached in {within:.0f} s")
        await asyncio.sleep(poll or (0.25 if installation.kind == "pipeline" else 0.02))


async def measure(
    kind: str,
    broker: EmbeddedBroker,
    workload: Workload,
    directory: Path,
    *,
    workers: int,
    partitions: int,
    latency_seconds: float,
    rate: int,
    seed: int,
    pipeline_settings: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One run of one processor: throughput over the workload, then latency at `rate` adds/s."""
    installation = Installation(kind, broker, partitions, directory, dict(pipeline_settings or {}))
    await installation.create_topics()
    # The pipeline gets its workload once it has settled and learnt the history.
    first = workload.history if kind == "pipeline" else workload.events
    await produce(broker.bootstrap, installation.settings, first)
    async with Receiver(broker.bootstrap, installation.answers) as receiver:
        installation.start(workers)
        try:
            read = None
            if kind == "pipeline":
                timed, elapsed, cpu, read = await drain_pipeline(installation, receiver, workload)
            else:
                timed, elapsed, cpu = await drain_baseline(installation, receiver, workload)
            result: dict[str, Any] = {
                "events": len(workload.events),
                "timed_events": timed,
                "seconds": elapsed,
                "events_per_s": timed / elapsed,
                "cpu_ms_per_event": 1000 * cpu / timed,
            }
            if read is not None:
                result["records_read_per_event"] = read / timed
            if latency_seconds > 0:
                result["latency"] = await steady_latency(
                    installation, receiver, latency_seconds, rate, seed, workload.last_ts
                )
            return result
        finally:
            installation.stop()


async def drain_baseline(
    installation: Installation, receiver: Receiver, workload: Workload
) -> tuple[int, float, float]:
    """(events, seconds, CPU seconds) from a baseline's first output to its last."""

    async def first_output() -> bool:
        return receiver.first is not None

    async def done() -> bool:
        return receiver.count >= len(workload.events)

    await until(first_output, installation, 300, "a first output", poll=0.01)
    cpu_at_first = installation.cpu_seconds()
    await until(done, installation, 600, "all outputs")
    cpu = installation.cpu_seconds() - cpu_at_first
    assert receiver.first is not None
    elapsed = receiver.last - receiver.first
    if elapsed <= 0:  # e.g. (d) answered a small workload in one burst
        raise RuntimeError(
            f"{installation.kind}: all {receiver.count} outputs arrived in one fetch;"
            " too few --events to time"
        )
    return len(workload.events), elapsed, cpu


async def drain_pipeline(
    installation: Installation, receiver: Receiver, workload: Workload
) -> tuple[int, float, float, int]:
    """(input events, seconds, CPU seconds, records read) the settled workers take for the workload.

    The workers start on the history; once they have settled as a group
    (`Installation.settled`) and learnt it, the workload goes in, in order,
    and the clock starts when it is all in; the events handled while it
    went in are not counted. Records read: by all agents over the same span
    (inputs, the basket records they send themselves, ticks), from their
    `stream_processing_seconds` counts.
    """
    history, adds = len(workload.history), workload.adds
    learnt = {"track_orders": history, BASKET_ROWS: workload.history_basket_rows}
    wanted = {
        "suggest_cross_sell": adds,
        "track_orders": history + workload.orders,
        BASKET_ROWS: learnt[BASKET_ROWS] + workload.basket_rows_out,
    }
    suggestions = installation.settings.topics.suggestions

    async def processed_all(counts: dict[str, int]) -> bool:
        processed = await installation.processed()
        return all(processed[agent] >= count for agent, count in counts.items())

    async def done() -> bool:
        return receiver.by_topic.get(suggestions, 0) >= adds and await processed_all(wanted)

    await until(installation.settled, installation, 300, "a settled group", poll=0.1)
    await until(lambda: processed_all(learnt), installation, 300, "the history learnt")
    # A pause for the rows' neighbours to reach the index (0.6 s at the default changelog
    # interval). Less than N and the rows can take to get there after the last basket (up to
    # 3 s: stream/dev.py's NEIGHBORS_SETTLE_S), so the workload's first adds may meet a
    # partly learnt index; kept so that the figures stay comparable across runs.
    await asyncio.sleep(3 * installation.settings.changelog_interval_ms / 1000)
    await produce(installation.broker.bootstrap, installation.settings, workload.events)
    started, cpu_at_start = time.perf_counter(), installation.cpu_seconds()
    processed = await installation.processed()
    handled = processed["suggest_cross_sell"] + processed["track_orders"] - history
    await until(done, installation, 600, "all outputs")
    finished = time.perf_counter()
    cpu = installation.cpu_seconds() - cpu_at_start
    timed = len(workload.events) - handled
    if timed < len(workload.events) / 2:
        raise RuntimeError(
            f"pipeline: {handled} of {len(workload.events)} events were handled while"
            " they went in; too few --events to time"
        )
    read = records_read(await installation.processed()) - records_read(processed)
    return timed, finished - started, cpu, read


def records_read(processed: collections.Counter[str]) -> int:
    """The records the agents have processed, all together (basket rows are not records)."""
    return sum(count for agent, count in processed.items() if agent != BASKET_ROWS)


async def steady_latency(
    installation: Installation,
    receiver: Receiver,
    seconds: float,
    rate: int,
    seed: int,
    after: str,
) -> dict[str, float]:
    """Send item_added at `rate`/s for `seconds`: milliseconds from send to answer received.

    The probes' event time goes on from `after` (`live_adds`).
    """
    probes = list(live_adds(int(seconds * rate), seed, after, rate))
    receiver.watch = {e.value["event_id"] for e in probes}
    topic = installation.settings.topics.cart
    producer = AIOKafkaProducer(bootstrap_servers=installation.broker.bootstrap, linger_ms=0)
    await producer.start()
    sent_at: dict[str, float] = {}
    sent_wall: dict[str, float] = {}  # the same, on the clock of the answers' timestamps
    try:
        started = time.perf_counter()
        per_tick = max(1, round(rate / 100))  # a burst every 10 ms, or one at a time
        tick = per_tick / rate
        for n in range(0, len(probes), per_tick):
            due = started + (n // per_tick) * tick
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            for event in probes[n : n + per_tick]:
                sent_at[event.value["event_id"]] = time.perf_counter()
                sent_wall[event.value["event_id"]] = time.time()
                await producer.send(topic, key=event.key.encode(), value=orjson.dumps(event.value))
        await producer.flush()
        achieved = len(probes) / (time.perf_counter() - started)
    finally:
        await producer.stop()

    async def all_answered() -> bool:
        return len(receiver.arrived) >= len(probes)

    await until(all_answered, installation, 120, "all latency probes answered")
    # The first second warms up (connections, first fetches); the rest is steady state.
    cutoff = min(sent_at.values()) + 1.0
    timed = [eid for eid, sent in sent_at.items() if sent >= cutoff]
    ms = sorted((receiver.arrived[eid] - sent_at[eid]) * 1000 for eid in timed)
    # Where it went: until the processor's producer stamped the answer (its
    # record's timestamp, in ms), and the rest, the answer's way to the bench.
    answering = sorted((receiver.answered[eid] - sent_wall[eid]) * 1000 for eid in timed)
    return {
        "probes": len(ms),
        "rate_per_s": achieved,
        "p50_ms": _percentile(ms, 0.50),
        "p99_ms": _percentile(ms, 0.99),
        "max_ms": ms[-1],
        "p50_to_answer_ms": _percentile(answering, 0.50),
        "p99_to_answer_ms": _percentile(answering, 0.99),
    }


def _percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextlib.asynccontextmanager
async def bench_broker() -> AsyncIterator[tuple[EmbeddedBroker, Path]]:
    with tempfile.TemporaryDirectory(prefix="stream-bench-") as tmp:
        directory = Path(tmp)
        with EmbeddedBroker(log_path=directory / "broker.log") as broker:
            yield broker, directory


async def run_all(
    *,
    events: int,
    customers: int,
    history: int,
    runs: int,
    workers: list[int],
    partitions: int,
    latency_seconds: float,
    rate: int,
    progress: Callable[[str], None],
    kinds: tuple[str, ...] = KINDS,
    pipeline_settings: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Every processor, `runs` times, interleaved; medians and the pipeline's ratios."""
    workload = Workload.generate(events, customers, history=history)
    raw: dict[str, list[dict[str, Any]]] = {}
    for run in range(runs):
        for count in workers:
            for kind in kinds:
                if kind != "pipeline" and count != workers[0]:
                    continue  # baselines at the first worker count only
                name = f"{kind} x{count}"
                progress(f"run {run + 1}/{runs}: {name} ...")
                # A broker of its own for each: the embedded broker keeps every
                # record in memory and slows as its logs grow, which would
                # handicap whatever runs later in a round.
                async with bench_broker() as (broker, directory):
                    figures = await measure(
                        kind,
                        broker,
                        workload,
                        directory,
                        workers=count,
                        partitions=partitions,
                        latency_seconds=latency_seconds if count == workers[0] else 0.0,
                        rate=rate,
                        seed=100 + run,
                        pipeline_settings=pipeline_settings,
                    )
                progress(f"  {_line(figures)}")
                raw.setdefault(name, []).append(figures)
    medians = {name: medians_of(results) for name, results in raw.items()}
    base = workers[0]
    ratios: dict[str, float] = {}
    pipeline = medians.get(f"pipeline x{base}")
    for baseline in BASELINES:
        other = medians.get(f"{baseline} x{base}")
        if pipeline is None or other is None:
            continue
        ratios[f"pipeline_vs_{baseline}_throughput"] = (
            pipeline["events_per_s"] / other["events_per_s"]
        )
        if latency_seconds > 0:
            ratios[f"pipeline_vs_{baseline}_p99_latency"] = (
                pipeline["latency"]["p99_ms"] / other["latency"]["p99_ms"]
            )
    return {
        "workload": {
            "events": len(workload.events),
            "history_orders": len(workload.history),
            "item_added": workload.adds,
            "orders": workload.orders,
            "basket_rows": workload.basket_rows_out,
            "customers": customers,
            "partitions": partitions,
        },
        "runs": runs,
        "pipeline_settings": dict(pipeline_settings or {}),
        "medians": medians,
        "ratios": ratios,
        "all_runs": raw,
    }


def medians_of(results: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for key, value in results[0].items():
        if isinstance(value, dict):
            merged[key] = medians_of([r[key] for r in results])
        else:
            merged[key] = statistics.median(r[key] for r in results)
    return merged


def _line(figures: dict[str, Any]) -> str:
    rate, cpu = figures["events_per_s"], figures["cpu_ms_per_event"]
    text = f"{rate:,.0f} events/s ({cpu:.2f} CPU ms each"
    if "records_read_per_event" in figures:
        text += f", {figures['records_read_per_event']:.2f} records read each"
    text += ")"
    latency = figures.get("latency")
    if latency:
        text += (
            f", p50 {latency['p50_ms']:.1f} ms, p99 {latency['p99_ms']:.1f} ms"
            f" (answer sent: p50 {latency['p50_to_answer_ms']:.1f}, "
            f"p99 {latency['p99_to_answer_ms']:.1f})"
        )
    return text
