"""The Faust app: topics, tables and agents (thin wiring around `stream.domain`).

Run it:

    python -m stream dev                          # embedded broker + worker + demo feed
    python -m stream worker -l info --web-port 6066   # one worker (STREAM_BROKER set)

Settings come from `STREAM_*` variables (`stream.config`); `/metrics` is on
the web port. Agents decode, call the domain, write their table and send:

- `track_orders` (purchase-events, by customer): customer value, the
  `customer-ltv` record, a `post_purchase` trigger, and the order's basket
  fanned out by SKU to the internal item-baskets topic;
- `count_pairs` (item-baskets, by SKU): co-occurrence rows, `item-neighbors`;
- `suggest_cross_sell` (cart-events, by customer): the cart, one
  suggestion per `item_added`, a `cart_add` trigger;
- `track_subscriptions` (subscription-events, by customer): subscriptions.

Every worker follows `item-neighbors` into a `NeighborIndex`, so any worker
answers any cart. Invalid input goes to `dead-letters` and the agent goes on.
Delivery is at-least-once; state is idempotent (see each domain module).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import faust
import orjson
from aiokafka import AIOKafkaConsumer
from faust.sensors.prometheus import setup_prometheus_sensors
from faust.types import EventT
from prometheus_client import CollectorRegistry

from stream.codec import (
    MAX_DEAD_LETTER_BYTES,
    InvalidEvent,
    check_key,
    dead_letter,
    decode_cart,
    decode_purchase,
    decode_subscription,
    encode,
)
from stream.config import Settings
from stream.domain.carts import CartState, apply_cart_event
from stream.domain.cooccurrence import (
    Basket,
    NeighborIndex,
    apply_basket,
    basket_items,
    neighbors_record,
)
from stream.domain.events import CartEvent, Event, PurchaseEvent, format_ts
from stream.domain.ltv import CustomerState, apply_order, apply_refund, ltv_record
from stream.domain.subscriptions import SubscriptionState, apply_subscription_event
from stream.domain.suggestions import suggest_for_cart, suggestion_record
from stream.domain.triggers import cart_add_trigger, post_purchase_trigger
from stream.domain.variants import TREATMENT, assign_variant
from stream.kafka import client_security, faust_credentials
from stream.metrics import Metrics
from stream.offsets import verify_end_offsets
from stream.state import register_codecs

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)

settings = Settings.from_env()
register_codecs()

app = faust.App(
    settings.app_id,
    # Faust reads its own env names (BROKER_URL, WEB_PORT, ...) over these
    # arguments; an empty env makes STREAM_* the only settings that count.
    env={},
    broker=settings.broker or "kafka://localhost:9092",
    broker_credentials=faust_credentials(settings.security),
    store=settings.store,
    datadir=str(settings.data_dir),
    web_port=settings.web_port,
    web_bind=settings.web_host,
    topic_partitions=settings.partitions,
    consumer_auto_offset_reset="earliest",
    broker_session_timeout=10.0,
    broker_rebalance_timeout=10.0,
    broker_heartbeat_interval=1.0,
    producer_linger=0.005,
    producer_max_batch_size=256 * 1024,
    # Dead letters carry the original bytes: up to MAX_DEAD_LETTER_BYTES a record.
    producer_max_request_size=MAX_DEAD_LETTER_BYTES,
    autodiscover=False,
    origin="stream.app",
)

if settings.broker:
    # Recovery reads changelogs to their end: make sure that end is right
    # (the embedded broker reports it short; see stream/offsets.py).
    verify_end_offsets(settings.bootstrap_servers, settings.security)

registry = CollectorRegistry()
metrics = Metrics.create(registry)
setup_prometheus_sensors(app, pattern="/metrics", registry=registry, name_prefix="stream_faust")

T = settings.topics


def _topic(name: str) -> faust.TopicT:
    return app.topic(name, key_serializer="raw", value_serializer="raw", partitions=None)


cart_topic = _topic(T.cart)
purchase_topic = _topic(T.purchase)
subscription_topic = _topic(T.subscription)
suggestions_topic = _topic(T.suggestions)
triggers_topic = _topic(T.triggers)
customer_ltv_topic = _topic(T.customer_ltv)
item_neighbors_topic = _topic(T.item_neighbors)
dead_letters_topic = _topic(T.dead_letters)
item_baskets_topic = _topic(T.item_baskets)


def _table(name: str, value_serializer: str, **options: Any) -> Any:
    """A table with utf8 keys and the given value codec: in its store, its changelog, recovery.

    Faust gives a table's store (RocksDB) and its default changelog topic
    the codec of the key/value *type* (json when untyped), whatever the
    schema says; so the changelog topic is made here and both are set.
    """
    changelog = app.topic(
        f"{settings.app_id}-{name}-changelog",
        key_serializer="utf8",
        value_serializer=value_serializer,
        partitions=settings.partitions,
        compacting=True,
    )
    table: Any = app.Table(name, changelog_topic=changelog, **options)
    table.key_serializer = "utf8"
    table.value_serializer = value_serializer
    return table


customers = _table("customers", "state")
carts = _table("carts", "state")
subscriptions = _table("subscriptions", "state")
item_rows = _table("item-rows", "state")
# Baskets counted per source partition of purchase-events (N_p), written by
# track_orders; and, on the item side, the largest N_p each item-baskets
# partition has been told (key "target:source"). N = sum over sources.
basket_counts = _table("basket-counts", "json", default=int)
basket_totals = _table("basket-totals", "json", default=int)

index = NeighborIndex()


def now_ts() -> str:
    return format_ts(time.time())


def observe_latency(event: EventT[bytes]) -> None:
    """Record event arrival (the record's Kafka timestamp) to output."""
    created = event.message.timestamp
    if created:
        metrics.event_to_emit.observe(max(0.0, time.time() - created))


async def decoded(
    stream: faust.StreamT[bytes], topic: str, decode: Callable[[bytes], E]
) -> AsyncIterator[tuple[EventT[bytes], E]]:
    """The stream's valid events; invalid records go to dead-letters, counted."""
    async for event in stream.events():
        try:
            value = decode(event.value)
            check_key(event.key, value)
        except InvalidEvent as exc:
            await dead_letters_topic.send(
                key=event.key,
                value=encode(
                    dead_letter(
                        reason=exc.reason,
                        detail=exc.detail,
                        topic=topic,
                        partition=event.message.partition,
                        offset=event.message.offset,
                        original=event.value if isinstance(event.value, bytes) else b"",
                        failed_at=now_ts(),
                        key=event.key,
                    )
                ),
            )
            metrics.events_consumed.labels(topic, "invalid").inc()
            metrics.dead_lettered.labels(topic, exc.reason).inc()
            continue
        metrics.events_consumed.labels(topic, value.type).inc()
        yield event, value


@app.agent(purchase_topic)
async def track_orders(stream: faust.StreamT[bytes]) -> None:
    """Customer value per order or refund; basket fan-out to the item rows."""
    timer = metrics.processing.labels("track_orders")
    async for event, order in decoded(stream, T.purchase, decode_purchase):
        started = time.perf_counter()
        cid = order.customer_id
        before: CustomerState | None = customers.get(cid)
        if order.type == "order_completed":
            state, changed = apply_order(
                before, order, event.message.partition, event.message.offset
            )
        else:
            state, changed = apply_refund(before, order)
        redelivered = not changed and _is_redelivery(state, order, event)
        if changed:
            customers[cid] = state
        if changed or redelivered:
            await _emit_order_outputs(event, order, state, count=changed)
        timer.observe(time.perf_counter() - started)


def _is_redelivery(state: CustomerState, order: PurchaseEvent, event: EventT[bytes]) -> bool:
    """The same record again (same partition and offset), as after a crash.

    Its outputs are sent again (they are idempotent downstream); a different
    record with a known order id is a duplicate and sends nothing.
    """
    memo = state.recent_orders.get(order.order_id)
    return (
        order.type == "order_completed"
        and memo is not None
        and (memo.partition, memo.offset) == (event.message.partition, event.message.offset)
    )


async def _emit_order_outputs(
    event: EventT[bytes], order: PurchaseEvent, state: CustomerState, *, count: bool
) -> None:
    cid = order.customer_id
    variant = assign_variant(cid, settings.holdout_share)
    key = cid.encode()
    await customer_ltv_topic.send(key=key, value=encode(ltv_record(cid, state, order.ts, variant)))
    if order.type != "order_completed":
        return
    if count:
        metrics.orders.labels(variant).inc()
        metrics.revenue.labels(variant).inc(float(order.total or 0))
        basket_counts[str(event.message.partition)] += 1
    items = basket_items(order.skus)
    basket = encode(
        Basket(
            order.order_id, items, order.ts, event.message.partition, event.message.offset
        ).to_json()
    )
    for sku in items:
        await item_baskets_topic.send(key=sku.encode(), value=basket)
    if variant == TREATMENT:
        offers = suggest_for_cart(items, state.owned, index, settings.max_suggestions)
        await triggers_topic.send(
            key=key, value=encode(post_purchase_trigger(order, offers, state, variant, now_ts()))
        )
        metrics.triggers_emitted.labels("post_purchase").inc()
    observe_latency(event)


_last_counts_sent: dict[str, int] = {}


@app.timer(interval=1.0)
async def publish_basket_counts() -> None:
    """Tell every item-baskets partition this worker's N_p (bounded: P x P records)."""
    counts = {str(p): n for p, n in basket_counts.items()}
    if not counts or counts == _last_counts_sent:
        return
    _last_counts_sent.clear()
    _last_counts_sent.update(counts)
    message = encode({"totals": counts})
    for target in range(settings.partitions):
        await item_baskets_topic.send(key=None, value=message, partition=target)


@app.agent(item_baskets_topic)
async def count_pairs(stream: faust.StreamT[bytes]) -> None:
    """Count each basket into the row of each of its items; publish the row."""
    timer = metrics.processing.labels("count_pairs")
    async for event in stream.events():
        started = time.perf_counter()
        target = event.message.partition
        data = orjson.loads(event.value)
        if "totals" in data:
            for source, seen in data["totals"].items():
                key = f"{target}:{source}"
                if seen > basket_totals[key]:
                    basket_totals[key] = seen
            continue
        sku = event.key.decode()
        row, changed = apply_basket(item_rows.get(sku), sku, Basket.from_json(data))
        if changed:
            item_rows[sku] = row
            total = max(_total_baskets(target), row.baskets)
            await item_neighbors_topic.send(
                key=event.key,
                value=encode(
                    neighbors_record(sku, row, total, index.baskets, settings.max_suggestions)
                ),
            )
        timer.observe(time.perf_counter() - started)


def _total_baskets(target: int) -> int:
    """N as known to one item-baskets partition: the sum of the N_p it was told."""
    return sum(basket_totals[f"{target}:{source}"] for source in range(settings.partitions))


@app.agent(cart_topic)
async def suggest_cross_sell(stream: faust.StreamT[bytes]) -> None:
    """Update the cart; answer each item_added with exactly one suggestion."""
    timer = metrics.processing.labels("suggest_cross_sell")
    async for event, change in decoded(stream, T.cart, decode_cart):
        started = time.perf_counter()
        cid = change.customer_id
        position = (event.message.partition, event.message.offset)
        before: CartState | None = carts.get(cid)
        cart, applied = apply_cart_event(before, change, position)
        if applied:
            carts[cid] = cart
        if change.type == "item_added" and (applied or cart.seen.get(change.event_id) == position):
            await _answer_cart_add(event, change, cart)
        timer.observe(time.perf_counter() - started)


async def _answer_cart_add(event: EventT[bytes], change: CartEvent, cart: CartState) -> None:
    cid = change.customer_id
    variant = assign_variant(cid, settings.holdout_share)
    customer: CustomerState | None = customers.get(cid)
    owned = customer.owned if customer is not None else ()
    items = (
        suggest_for_cart(cart.items, owned, index, settings.max_suggestions)
        if variant == TREATMENT
        else []
    )
    emitted_at = now_ts()
    key = cid.encode()
    await suggestions_topic.send(
        key=key, value=encode(suggestion_record(change, cart.cart_id, items, variant, emitted_at))
    )
    metrics.suggestions_emitted.inc()
    if variant == TREATMENT and items:
        await triggers_topic.send(
            key=key,
            value=encode(
                cart_add_trigger(change, cart.cart_id, items, customer, variant, emitted_at)
            ),
        )
        metrics.triggers_emitted.labels("cart_add").inc()
    observe_latency(event)


@app.agent(subscription_topic)
async def track_subscriptions(stream: faust.StreamT[bytes]) -> None:
    """Keep each subscription's plan, price and renewal date."""
    timer = metrics.processing.labels("track_subscriptions")
    async for _event, change in decoded(stream, T.subscription, decode_subscription):
        started = time.perf_counter()
        before: SubscriptionState | None = subscriptions.get(change.subscription_id)
        state, applied = apply_subscription_event(before, change)
        if applied:
            subscriptions[change.subscription_id] = state
        timer.observe(time.perf_counter() - started)


@app.task
async def follow_item_neighbors() -> None:
    """Feed this worker's NeighborIndex from every partition of item-neighbors."""
    consumer = AIOKafkaConsumer(
        T.item_neighbors,
        bootstrap_servers=settings.bootstrap_servers if settings.broker else "localhost:9092",
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
        **client_security(settings.security),
    )
    await consumer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for records in batches.values():
                for record in records:
                    index.apply(orjson.loads(record.value))
    finally:
        await consumer.stop()


@app.timer(interval=5.0)
async def report_state_sizes() -> None:
    """Gauges of what this worker holds."""
    metrics.customers_held.set(len(customers))
    metrics.items_held.set(len(item_rows))
    metrics.pairs_held.set(sum(len(row.pairs) for row in item_rows.values()))


def main() -> None:
    """Faust's command line (`worker`, ...), as `python -m stream` runs it."""
    app.main()
