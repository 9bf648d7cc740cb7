"""Ops, the real thing: a Prometheus server scrapes a live worker and PromQL reads it back.

A real `prometheus` (Debian's package; `.ci/run` installs it) scrapes one
worker's /metrics every second and loads deploy/alerts.yml. The test sends
known events (orders of holdout and treatment customers, cart adds and
removals, a subscription, invalid records of each topic) and asks
Prometheus's HTTP API until every counter equals what was sent, what the
output topics hold, or both. The health endpoints are checked on the same
worker, and on a second namespace of one partition where a worker that
owns nothing says 503 until the owner leaves.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml

from stream.broker import EmbeddedBroker, free_port
from stream.config import Topics
from stream.demo import basket_of
from stream.domain.variants import assign_variant
from stream.metrics import LTV_BUCKETS
from tests.integration.conftest import (
    ROOT,
    Deployment,
    Worker,
    health,
    namespace,
    values,
    wait_health,
)
from tests.integration.expectations import exact_neighbors

pytestmark = pytest.mark.integration

HOLDOUT = 0.5
TS = "2026-11-23T09:15:00Z"
ALERTS = ROOT / "deploy" / "alerts.yml"
JOB = "cross-sell-stream"


def required_binary(name: str) -> str:
    """The path of `name`; a missing one fails the test (it is part of the product's checks)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"`{name}` is not installed: install Debian's `prometheus` package "
            "(apt-get install prometheus, as .ci/run does); these tests do not skip."
        )
    return path


# --- Prometheus ------------------------------------------------------------------------------


@dataclass
class Prometheus:
    """A `prometheus` process on a free port, and PromQL over its HTTP API."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    async def get(self, path: str, **params: str) -> Any:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.url}{path}", params=params) as response,
        ):
            body = await response.json()
        assert body["status"] == "success", body
        return body["data"]

    async def query(self, expr: str) -> dict[tuple[str, ...], float]:
        """An instant vector as {label values in label-name order: value}."""
        data = await self.get("/api/v1/query", query=expr)
        assert data["resultType"] == "vector", data
        return {
            tuple(v for _, v in sorted(sample["metric"].items())): float(sample["value"][1])
            for sample in data["result"]
        }

    async def until(
        self, expr: str, expected: dict[tuple[str, ...], float], within: float = 60.0
    ) -> None:
        """Query `expr` until it returns exactly `expected` (same series, same values)."""
        deadline = time.monotonic() + within
        got = await self.query(expr)
        while not _same(got, expected) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            got = await self.query(expr)
        assert got == pytest.approx(expected), f"{expr}: {got} != {expected}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(15)


def _same(got: dict[tuple[str, ...], float], expected: dict[tuple[str, ...], float]) -> bool:
    return got.keys() == expected.keys() and all(
        abs(got[key] - value) <= 1e-9 * max(1.0, abs(value)) for key, value in expected.items()
    )


@pytest.fixture(scope="module")
def prometheus_bin() -> str:
    return required_binary("prometheus")


@pytest.fixture(scope="module")
def worker(deployment: Deployment) -> Worker:
    """One worker owning all 4 partitions; half of the customers are the A/B holdout."""
    return deployment.start_worker(STREAM_HOLDOUT_SHARE=str(HOLDOUT))


def start_prometheus(binary: str, directory: Path, target: str) -> Prometheus:
    """Prometheus scraping `target` every second, with the alert rules of deploy/."""
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {
                "job_name": JOB,
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [target]}],
            }
        ],
    }
    config_path = directory / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    port = free_port()
    log_path = directory / "prometheus.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    return Prometheus(process, f"http://127.0.0.1:{port}", log_path)


@pytest.fixture(scope="module")
async def prometheus(
    prometheus_bin: str, worker: Worker, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Prometheus]:
    """A real Prometheus on a free port scraping the worker; stopped (and reaped) at the end."""
    server = start_prometheus(
        prometheus_bin, tmp_path_factory.mktemp("prometheus"), f"127.0.0.1:{worker.web_port}"
    )
    try:
        await _wait_ready(server)
        yield server
    finally:
        server.stop()
    assert server.process.returncode is not None


async def _wait_ready(server: Prometheus, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            assert server.process.poll() is None, server.log_path.read_text()
            try:
                async with session.get(f"{server.url}/-/ready") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError("prometheus not ready:\n" + server.log_path.read_text())


# --- the events ------------------------------------------------------------------------------

CUSTOMERS = [f"ops-{n}" for n in range(12)]
PRICES = {"cam": 250.0, "sd": 20.25, "bag": 40.5, "tripod": 60.75}


def order(n: int, customer: str, skus: list[str]) -> dict[str, Any]:
    return {
        "event_id": f"e-ops-order-{n}",
        "type": "order_completed",
        "customer_id": customer,
        "ts": TS,
        "order_id": f"o-ops-{n}",
        # Prices are multiples of 1/4: their float sums are exact.
        "items": [{"sku": sku, "quantity": 1 + n % 2, "unit_price": PRICES[sku]} for sku in skus],
    }


ORDERS = [
    order(n, CUSTOMERS[n % len(CUSTOMERS)], [["cam", "sd"], ["cam", "bag"], ["tripod"]][n % 3])
    for n in range(18)
]


def cart(n: int, customer: str, kind: str, sku: str) -> dict[str, Any]:
    return {
        "event_id": f"e-ops-cart-{n}",
        "type": kind,
        "customer_id": customer,
        "ts": TS,
        "cart_id": f"k-{customer}",
        "sku": sku,
        "quantity": 1,
    }


CARTS = [cart(n, CUSTOMERS[n], "item_added", "cam") for n in range(len(CUSTOMERS))] + [
    cart(100, CUSTOMERS[0], "item_removed", "cam"),
    cart(101, CUSTOMERS[1], "cart_cleared", "cam"),
]
SUBSCRIPTION = {
    "event_id": "e-ops-sub-1",
    "type": "subscription_started",
    "customer_id": CUSTOMERS[2],
    "ts": TS,
    "subscription_id": "sub-ops-1",
    "plan_id": "basic",
    "price": 9.75,
    "period_days": 30,
    "renews_at": "2026-12-23T09:15:00Z",
}


def order_total(event: dict[str, Any]) -> float:
    return float(sum(line["unit_price"] * line["quantity"] for line in event["items"]))


def invalid_records(topics: Topics) -> list[tuple[str, bytes | None, bytes, str]]:
    """(topic, key, value, reason) of records the codec must refuse."""
    mis_keyed = orjson.dumps(cart(200, CUSTOMERS[3], "item_added", "sd"))
    no_items = orjson.dumps({**ORDERS[0], "event_id": "e-ops-bad-1", "items": None})
    unknown = orjson.dumps({**SUBSCRIPTION, "event_id": "e-ops-bad-2", "type": "subscription_x"})
    return [
        (topics.cart, b"ops-0", b"{not json", "not_json"),
        (topics.cart, b"someone-else", mis_keyed, "bad_key"),
        (topics.cart, None, mis_keyed, "bad_key"),
        (topics.purchase, b"ops-0", no_items, "missing_field"),
        (topics.purchase, b"ops-0", b"[1, 2]", "not_object"),
        (topics.subscription, CUSTOMERS[2].encode(), unknown, "unknown_type"),
    ]


@pytest.fixture(scope="module")
async def traffic(deployment: Deployment, worker: Worker, prometheus: Prometheus) -> dict[str, Any]:
    """Send every event once; wait until the output topics hold all their answers."""
    topics = deployment.topics
    await wait_health(worker, lambda status, _: status == 200)
    await deployment.produce_events(topics.purchase, ORDERS)
    ltv = await deployment.read(topics.customer_ltv, lambda rs: len(rs) >= len(ORDERS))
    # Let the worker's NeighborIndex learn the pairs before the carts ask for them: every
    # item's latest record counts all the orders (early records may count only some).
    await deployment.read(topics.item_neighbors, exact_neighbors(ORDERS))
    await asyncio.sleep(1.0)
    await deployment.produce_events(topics.cart, CARTS)
    await deployment.produce_events(topics.subscription, [SUBSCRIPTION])
    bad = invalid_records(topics)
    for topic, key, value, _ in bad:
        await deployment.produce(topic, [(key, value)])
    adds = [c for c in CARTS if c["type"] == "item_added"]
    suggestions = await deployment.read(topics.suggestions, lambda rs: len(rs) >= len(adds))
    await deployment.read(topics.dead_letters, lambda rs: len(rs) >= len(bad))
    # Each trigger is sent right after the customer-ltv record (orders) or the suggestion
    # (cart adds) that answers the same input, all of which are in by now.
    triggers = await deployment.read(topics.triggers, lambda rs: True, settle=3.0)
    return {
        "ltv": values(ltv),
        "suggestions": values(suggestions),
        "triggers": values(triggers),
        "invalid": bad,
    }


# --- tests -----------------------------------------------------------------------------------


def test_the_customers_fall_in_both_variants() -> None:
    """The fixture's customers cover holdout and treatment, so both variants are checked."""
    variants = Counter(assign_variant(o["customer_id"], HOLDOUT) for o in ORDERS)
    assert variants["control"] > 0
    assert variants["treatment"] > 0


async def test_consumed_and_dead_lettered_counts_match_what_was_sent(
    deployment: Deployment, prometheus: Prometheus, traffic: dict[str, Any]
) -> None:
    """stream_events_consumed_total by topic/type, dead letters by reason, basket rows: PromQL."""
    topics = deployment.topics
    consumed: Counter[tuple[str, str]] = Counter()
    for event in ORDERS:
        consumed[(topics.purchase, event["type"])] += 1
    for event in CARTS:
        consumed[(topics.cart, event["type"])] += 1
    consumed[(topics.subscription, SUBSCRIPTION["type"])] += 1
    dead: Counter[tuple[str, str]] = Counter()
    for topic, _, _, reason in traffic["invalid"]:
        consumed[(topic, "invalid")] += 1
        dead[(reason, topic)] += 1  # label values in label-name order: reason, topic
    await prometheus.until(
        "sum by (topic, type) (stream_events_consumed_total)",
        {key: float(n) for key, n in consumed.items()},
    )
    await prometheus.until(
        "sum by (topic, reason) (stream_events_dead_lettered_total) > 0",
        {key: float(n) for key, n in dead.items()},
    )
    # The series the error alerts watch exist before any error, at 0: one that appeared
    # at its first error would show Prometheus no increase, and the alert would not fire.
    ticks = f"{deployment.settings.app_id}-ticks"
    never = (*topics.inputs, topics.item_baskets, ticks)
    await prometheus.until(
        'sum by (topic) (stream_events_dead_lettered_total{reason="processing_error"})',
        {(topic,): 0.0 for topic in never},
    )
    await prometheus.until(
        "sum by (timer) (stream_timer_errors_total)",
        {("rescore",): 0.0, ("item_neighbors",): 0.0},
    )
    # The item rows read each order's basket once for each distinct item in it.
    rows = sum(len(basket_of(order)) for order in ORDERS)
    assert rows > len(ORDERS), "single-item orders only: the check would not tell rows from orders"
    await prometheus.until("sum(stream_basket_rows_total)", {(): float(rows)})


async def test_outputs_count_what_the_topics_hold(
    prometheus: Prometheus, traffic: dict[str, Any]
) -> None:
    """Suggestions, triggers by kind, latency and LTV observations equal the records sent."""
    adds = [c for c in CARTS if c["type"] == "item_added"]
    suggestions = traffic["suggestions"]
    assert sorted(s["source_event_id"] for s in suggestions) == sorted(a["event_id"] for a in adds)
    await prometheus.until("sum(stream_suggestions_emitted_total)", {(): float(len(adds))})
    kinds = Counter(t["kind"] for t in traffic["triggers"])
    assert kinds["cart_add"] > 0, "no cart_add trigger: the check would be vacuous"
    assert kinds["post_purchase"] > 0, "no post_purchase trigger: the check would be vacuous"
    await prometheus.until(
        "sum by (kind) (stream_triggers_emitted_total)",
        {(kind,): float(n) for kind, n in kinds.items()},
    )
    # One latency observation per answered input: each order and each item_added.
    await prometheus.until(
        "sum(stream_event_to_emit_seconds_count)", {(): float(len(ORDERS) + len(adds))}
    )
    # One LTV observation per customer-ltv record published, in the bucket of its `ltv`.
    published = [record["ltv"] for record in traffic["ltv"]]
    assert len(published) == len(ORDERS)
    await prometheus.until("sum(stream_customer_ltv_count)", {(): float(len(ORDERS))})
    buckets = await prometheus.query("sum by (le) (stream_customer_ltv_bucket)")
    assert {float(le): n for (le,), n in buckets.items()} == {
        edge: float(sum(1 for ltv in published if ltv <= edge))
        for edge in (*LTV_BUCKETS, float("inf"))
    }


async def test_orders_and_revenue_by_variant(
    prometheus: Prometheus, traffic: dict[str, Any]
) -> None:
    """stream_orders_total and stream_revenue_total per A/B variant, exactly."""
    orders: Counter[str] = Counter()
    revenue: defaultdict[str, float] = defaultdict(float)
    for event in ORDERS:
        variant = assign_variant(event["customer_id"], HOLDOUT)
        orders[variant] += 1
        revenue[variant] += order_total(event)
    await prometheus.until(
        "sum by (variant) (stream_orders_total)", {(v,): float(n) for v, n in orders.items()}
    )
    await prometheus.until(
        "sum by (variant) (stream_revenue_total)", {(v,): float(r) for v, r in revenue.items()}
    )
    # AOV by variant, as the dashboard computes it (over the whole run here).
    aov = await prometheus.query(
        "sum by (variant) (stream_revenue_total) / sum by (variant) (stream_orders_total)"
    )
    assert aov == pytest.approx({(v,): revenue[v] / orders[v] for v in orders})


async def test_lag_commits_and_rebalances_are_visible(
    deployment: Deployment, prometheus: Prometheus, worker: Worker, traffic: dict[str, Any]
) -> None:
    """Our lag gauge covers every partition the worker owns and drains to 0; Faust's report."""
    status, body = await health(worker, "/health/ready")
    assert status == 200
    owned = {
        (topic, str(partition))
        for topic, partitions in body["partitions"].items()
        for partition in partitions
    }
    topics = deployment.topics
    data = (topics.cart, topics.purchase, topics.subscription, topics.item_baskets)
    for topic in data:
        assert {(topic, str(p)) for p in range(4)} <= owned
    # One series per owned partition; the data topics drain to 0 once everything is
    # processed and committed (an internal topic fed every second may stay a record behind).
    expr = "sum by (partition, topic) (stream_consumer_lag_messages)"
    deadline = time.monotonic() + 60
    lag = await prometheus.query(expr)
    while time.monotonic() < deadline and not (
        set(lag) == {(p, t) for t, p in owned}
        and all(value == 0 for (_, t), value in lag.items() if t in data)
    ):
        await asyncio.sleep(0.5)
        lag = await prometheus.query(expr)
    assert set(lag) == {(p, t) for t, p in owned}, lag
    assert {key: value for key, value in lag.items() if key[1] in data} == dict.fromkeys(
        ((p, t) for t, p in owned if t in data), 0.0
    )
    assert all(value < 100 for value in lag.values()), lag
    await prometheus.until(
        f'sum by (instance, job) (up{{job="{JOB}"}})', {(f"127.0.0.1:{worker.web_port}", JOB): 1.0}
    )
    commits = await prometheus.query("sum(stream_faust_consumer_commit_latency_count)")
    assert commits[()] > 0
    rebalances = await prometheus.query("sum(stream_faust_rebalance_done_latency_count)")
    assert rebalances[()] >= 1


async def test_alert_rules_load_and_evaluate(
    prometheus: Prometheus, traffic: dict[str, Any]
) -> None:
    """Prometheus loads deploy/alerts.yml and evaluates every rule on real series, error-free."""
    expected = {
        rule["alert"]
        for group in yaml.safe_load(ALERTS.read_text())["groups"]
        for rule in group["rules"]
    }
    deadline = time.monotonic() + 30
    while True:
        data = await prometheus.get("/api/v1/rules")
        rules = [rule for group in data["groups"] for rule in group["rules"]]
        evaluated = all(rule.get("lastEvaluation", "").startswith("20") for rule in rules)
        if evaluated or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert {rule["name"] for rule in rules} == expected
    for rule in rules:
        assert rule["health"] == "ok", rule
    firing = await prometheus.query('ALERTS{alertstate="firing"}')
    assert not firing


async def test_health_says_ready_and_live(worker: Worker, traffic: dict[str, Any]) -> None:
    """A working worker: ready with all partitions of its agents' topics, and live."""
    status, body = await health(worker, "/health/ready")
    assert status == 200
    assert body["ready"] is True
    assert body["partitions"]
    assert all(partitions == [0, 1, 2, 3] for partitions in body["partitions"].values())
    status, body = await health(worker, "/health/live")
    assert (status, body["live"]) == (200, True)


async def test_worker_logs_are_json_lines(worker: Worker, traffic: dict[str, Any]) -> None:
    """Every log line is one JSON object (Faust's banner aside: `-q` drops it in deploy/)."""
    lines = worker.log_path.read_text().splitlines()
    records = [orjson.loads(line) for line in lines if not line.startswith(("+", "|"))]
    assert len(records) > 10
    for record in records:
        assert {"ts", "level", "logger", "message"} <= set(record), record
    ready = [r for r in records if (r["logger"], r["message"]) == ("stream.health", "worker ready")]
    assert ready, "no readiness record"
    assert ready[0]["partitions"] >= 16  # an extra field, as sent


# --- readiness of a worker that owns nothing ---------------------------------------------------


@pytest.fixture(scope="module")
async def single_partition(
    broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Deployment]:
    """Its own namespace with one partition per topic: a second worker gets none of them."""
    async with namespace(broker, tmp_path_factory, partitions=1) as running:
        yield running


async def test_ready_only_with_partitions(single_partition: Deployment) -> None:
    """An idle worker says 503 with its reason until the owner leaves; then it is ready."""
    first = single_partition.start_worker()
    await wait_health(first, lambda status, _: status == 200)
    second = single_partition.start_worker()
    # The group settles with one worker owning the one partition of each topic (Faust's
    # assignor keeps them where they were, but either way is right): the other owns nothing.
    deadline = time.monotonic() + 60
    while True:
        states = [await health(worker, "/health/ready") for worker in (first, second)]
        idle = ["no partitions assigned" in body.get("reason", "") for status, body in states]
        if sorted(status for status, _ in states) == [200, 503] and any(idle):
            break
        assert time.monotonic() < deadline, f"{states}\n{single_partition.logs()}"
        await asyncio.sleep(0.2)
    owner, standby = (first, second) if states[0][0] == 200 else (second, first)
    for _ in range(10):  # and stays so: not a passing moment
        status, body = await health(standby, "/health/ready")
        assert status == 503, body
        assert body["ready"] is False
        assert "no partitions assigned" in body["reason"]
        live, _ = await health(standby, "/health/live")
        assert live == 200
        await asyncio.sleep(0.3)
    assert owner.stop() == 0
    status, body = await wait_health(standby, lambda status, _: status == 200)
    assert body["ready"] is True
    topics = single_partition.topics
    assert set(body["partitions"]) >= {
        topics.cart,
        topics.purchase,
        topics.subscription,
        topics.item_baskets,
    }
    assert all(partitions == [0] for partitions in body["partitions"].values())
