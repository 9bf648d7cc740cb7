"""One table of input examples, shared by the codec's and the schemas' tests.

Every rule of `stream/codec.py` (and of `schemas/*-event.schema.json`) has a
valid example at its boundary and an invalid one just past it. An invalid
example carries the `reason` the codec must give and whether JSON Schema
can judge it: a value over 1 MiB, bytes that are not JSON, and what JSON
Schema cannot tell apart (2.0 is an integer to it; orjson reads an integer
beyond 64 bits as a float) are codec-only (`schema=False`).

`expected` holds hand-written decoded values for a few valid examples:
`ts` in epoch seconds (2026-11-23T09:15:00Z = 20,780 days after 1970-01-01
plus 9 h 15 min = 1,795,425,300 s), money as exact `Decimal` sums.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import orjson

from stream.domain.events import (
    CartEvent,
    Event,
    OrderLine,
    PurchaseEvent,
    SubscriptionEvent,
)

Topic = Literal["cart", "purchase", "subscription"]

TS = "2026-11-23T09:15:00Z"
TS_EPOCH = 1_795_425_300.0
RENEWS_AT = "2026-12-23T09:15:00Z"
RENEWS_AT_EPOCH = TS_EPOCH + 30 * 86_400  # 1,798,017,300
MAX_BYTES = 1_048_576


@dataclass(frozen=True, slots=True)
class Example:
    """One input value for a logical topic; `reason is None` means it is valid."""

    topic: Topic
    name: str
    payload: bytes
    reason: str | None = None
    schema: bool = True  # JSON Schema can judge it (False: codec-only)
    expected: Event | None = None

    @property
    def id(self) -> str:
        return f"{self.topic}:{self.name}"


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """`base` with some fields set (to None for JSON null)."""
    return {**base, **changes}


def without(base: dict[str, Any], *keys: str) -> dict[str, Any]:
    """`base` with some fields absent."""
    return {key: value for key, value in base.items() if key not in keys}


def _bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else orjson.dumps(value)


def with_literal(base: dict[str, Any], key: str, literal: str) -> bytes:
    """`base` with `key` set to raw JSON text (numbers orjson would not write)."""
    return orjson.dumps(without(base, key))[:-1] + f',"{key}":{literal}}}'.encode()


def padded_to(base: dict[str, Any], size: int) -> bytes:
    """`base` plus an unknown `pad` field, serialized to exactly `size` bytes."""
    empty = len(orjson.dumps(with_(base, pad="")))
    payload = orjson.dumps(with_(base, pad="x" * (size - empty)))
    assert len(payload) == size
    return payload


def ok(topic: Topic, name: str, value: object, expected: Event | None = None) -> Example:
    return Example(topic, name, _bytes(value), expected=expected)


def bad(topic: Topic, name: str, value: object, reason: str, *, schema: bool = True) -> Example:
    return Example(topic, name, _bytes(value), reason=reason, schema=schema)


S256 = "s" * 256
S257 = "s" * 257

# --- cart-events -------------------------------------------------------------

CART = {
    "event_id": "evt-1",
    "type": "item_added",
    "customer_id": "cust-1",
    "ts": TS,
    "sku": "cam-1",
    "quantity": 2,
    "cart_id": "cart-9",
    "unit_price": 19.99,
    "category": "cameras",
}
CART_MIN = without(CART, "quantity", "cart_id", "unit_price", "category")

CART_EXAMPLES = (
    ok(
        "cart",
        "item_added full",
        CART,
        CartEvent(
            event_id="evt-1",
            type="item_added",
            customer_id="cust-1",
            ts=TS_EPOCH,
            sku="cam-1",
            quantity=2,
            cart_id="cart-9",
            unit_price=Decimal("19.99"),
            category="cameras",
        ),
    ),
    ok(
        "cart",
        "item_added minimal: quantity defaults to 1",
        CART_MIN,
        CartEvent("evt-1", "item_added", "cust-1", TS_EPOCH, sku="cam-1", quantity=1),
    ),
    ok(
        "cart",
        "nulls are absent",
        with_(CART, quantity=None, cart_id=None, unit_price=None, category=None),
        CartEvent("evt-1", "item_added", "cust-1", TS_EPOCH, sku="cam-1"),
    ),
    ok("cart", "item_removed", with_(CART_MIN, type="item_removed")),
    ok(
        "cart",
        "cart_cleared without sku",
        without(with_(CART_MIN, type="cart_cleared"), "sku"),
        CartEvent("evt-1", "cart_cleared", "cust-1", TS_EPOCH),
    ),
    ok("cart", "cart_cleared with sku", with_(CART_MIN, type="cart_cleared")),
    ok("cart", "cart_cleared with null sku", with_(CART_MIN, type="cart_cleared", sku=None)),
    ok("cart", "ids of 256 chars", with_(CART, event_id=S256, customer_id=S256, sku=S256)),
    ok("cart", "256 chars, not bytes", with_(CART, customer_id="é" * 256)),
    ok("cart", "optional strings of 256 chars", with_(CART, cart_id=S256, category=S256)),
    ok("cart", "empty optional strings", with_(CART, cart_id="", category="")),
    ok("cart", "quantity 1", with_(CART, quantity=1)),
    ok("cart", "quantity 2**63", with_(CART, quantity=2**63)),
    ok(
        "cart",
        "+05:30 offset",
        with_(CART_MIN, ts="2026-11-23T14:45:00+05:30"),
        CartEvent("evt-1", "item_added", "cust-1", TS_EPOCH, sku="cam-1"),
    ),
    ok(
        "cart",
        "-08:00 offset and milliseconds",
        with_(CART_MIN, ts="2026-11-23T01:15:00.250-08:00"),
        CartEvent("evt-1", "item_added", "cust-1", TS_EPOCH + 0.25, sku="cam-1"),
    ),
    ok(
        "cart",
        "lower-case t and z (RFC 3339 5.6)",
        with_(CART_MIN, ts="2026-11-23t09:15:00z"),
        CartEvent("evt-1", "item_added", "cust-1", TS_EPOCH, sku="cam-1"),
    ),
    ok("cart", "leap day", with_(CART_MIN, ts="2028-02-29T00:00:00Z")),
    ok("cart", "earliest ts", with_(CART_MIN, ts="1970-01-01T00:00:00Z")),
    ok("cart", "latest ts", with_(CART_MIN, ts="2099-12-31T23:59:59.999Z")),
    ok(
        "cart",
        "unit_price 0",
        with_(CART_MIN, unit_price=0),
        CartEvent("evt-1", "item_added", "cust-1", TS_EPOCH, sku="cam-1", unit_price=Decimal(0)),
    ),
    ok("cart", "unit_price -0.0", with_(CART_MIN, unit_price=-0.0)),
    ok(
        "cart",
        "integer unit_price",
        with_(CART_MIN, unit_price=20),
        CartEvent("evt-1", "item_added", "cust-1", TS_EPOCH, sku="cam-1", unit_price=Decimal(20)),
    ),
    ok(
        "cart",
        "unit_price of 1e15, the most",
        with_(CART_MIN, unit_price=1e15),
        CartEvent(
            "evt-1", "item_added", "cust-1", TS_EPOCH, sku="cam-1", unit_price=Decimal("1e+15")
        ),
    ),
    ok("cart", "unknown fields ignored", with_(CART, channel="app", tags=["x"], extra={"a": 1})),
    ok("cart", "exactly 1 MiB", padded_to(CART, MAX_BYTES)),
    # value
    bad("cart", "over 1 MiB", padded_to(CART, MAX_BYTES + 1), "too_large", schema=False),
    bad("cart", "empty value", b"", "not_json", schema=False),
    bad("cart", "not JSON", b"item_added cam-1", "not_json", schema=False),
    bad("cart", "truncated JSON", orjson.dumps(CART)[:-1], "not_json", schema=False),
    bad("cart", "invalid UTF-8", b'{"sku": "\xff"}', "not_json", schema=False),
    bad(
        "cart", "NaN is not JSON", with_literal(CART, "unit_price", "NaN"), "not_json", schema=False
    ),
    bad(
        "cart",
        "1e400 overflows",
        with_literal(CART, "unit_price", "1e400"),
        "not_json",
        schema=False,
    ),
    bad("cart", "array", [CART], "not_object"),
    bad("cart", "string", "item_added", "not_object"),
    bad("cart", "null", None, "not_object"),
    bad("cart", "number", 1, "not_object"),
    # type
    bad("cart", "type missing", without(CART, "type"), "missing_field"),
    bad("cart", "type null", with_(CART, type=None), "missing_field"),
    bad("cart", "type of another topic", with_(CART, type="order_completed"), "unknown_type"),
    bad("cart", "type in capitals", with_(CART, type="ITEM_ADDED"), "unknown_type"),
    bad("cart", "type a number", with_(CART, type=1), "unknown_type"),
    bad("cart", "type an array", with_(CART, type=["item_added"]), "unknown_type"),
    # ids
    bad("cart", "event_id missing", without(CART, "event_id"), "missing_field"),
    bad("cart", "event_id empty", with_(CART, event_id=""), "bad_field"),
    bad("cart", "event_id 257 chars", with_(CART, event_id=S257), "bad_field"),
    bad("cart", "event_id a number", with_(CART, event_id=7), "bad_field"),
    bad("cart", "customer_id missing", without(CART, "customer_id"), "missing_field"),
    bad("cart", "customer_id null", with_(CART, customer_id=None), "missing_field"),
    bad("cart", "customer_id 257 chars", with_(CART, customer_id=S257), "bad_field"),
    bad("cart", "customer_id an object", with_(CART, customer_id={"id": 1}), "bad_field"),
    # ts
    bad("cart", "ts missing", without(CART, "ts"), "missing_field"),
    bad("cart", "naive ts", with_(CART, ts="2026-11-23T09:15:00"), "bad_timestamp"),
    bad("cart", "ts before 1970", with_(CART, ts="1969-12-31T23:59:59Z"), "bad_timestamp"),
    bad("cart", "ts in 2100", with_(CART, ts="2100-01-01T00:00:00Z"), "bad_timestamp"),
    bad("cart", "ts in year 9999", with_(CART, ts="9999-12-31T23:59:59Z"), "bad_timestamp"),
    bad(
        "cart",
        "ts written in 2100, 2099 in UTC (the year is judged as written)",
        with_(CART, ts="2100-01-01T00:30:00+01:00"),
        "bad_timestamp",
    ),
    bad("cart", "ts in year 1", with_(CART, ts="0001-01-01T00:00:00+01:00"), "bad_timestamp"),
    bad(
        "cart",
        "ts 1970 by its offset, 1969 in UTC",
        with_(CART, ts="1970-01-01T00:30:00+01:00"),
        "bad_timestamp",
        schema=False,
    ),
    bad(
        "cart",
        "ts 2099 by its offset, 2100 in UTC",
        with_(CART, ts="2099-12-31T23:30:00-01:00"),
        "bad_timestamp",
        schema=False,
    ),
    bad("cart", "ts not a date", with_(CART, ts="yesterday"), "bad_timestamp"),
    bad("cart", "ts epoch number", with_(CART, ts=TS_EPOCH), "bad_timestamp"),
    bad("cart", "ts date only", with_(CART, ts="2026-11-23"), "bad_timestamp"),
    bad("cart", "ts without seconds", with_(CART, ts="2026-11-23T09:15Z"), "bad_timestamp"),
    bad("cart", "ts basic format", with_(CART, ts="20261123T091500Z"), "bad_timestamp"),
    bad("cart", "ts offset +0530", with_(CART, ts="2026-11-23T09:15:00+0530"), "bad_timestamp"),
    bad("cart", "ts offset +05", with_(CART, ts="2026-11-23T09:15:00+05"), "bad_timestamp"),
    bad("cart", "ts offset +05:60", with_(CART, ts="2026-11-23T09:15:00+05:60"), "bad_timestamp"),
    bad("cart", "ts space separator", with_(CART, ts="2026-11-23 09:15:00Z"), "bad_timestamp"),
    bad("cart", "ts month 13", with_(CART, ts="2026-13-23T09:15:00Z"), "bad_timestamp"),
    bad("cart", "ts hour 24", with_(CART, ts="2026-11-23T24:00:00Z"), "bad_timestamp"),
    bad("cart", "ts February 30", with_(CART, ts="2026-02-30T09:15:00Z"), "bad_timestamp"),
    bad("cart", "ts February 29, 2026", with_(CART, ts="2026-02-29T09:15:00Z"), "bad_timestamp"),
    # sku
    bad("cart", "item_added without sku", without(CART, "sku"), "missing_field"),
    bad("cart", "item_added null sku", with_(CART, sku=None), "missing_field"),
    bad(
        "cart",
        "item_removed without sku",
        without(with_(CART, type="item_removed"), "sku"),
        "missing_field",
    ),
    bad("cart", "sku empty", with_(CART, sku=""), "bad_field"),
    bad("cart", "sku 257 chars", with_(CART, sku=S257), "bad_field"),
    bad("cart", "sku a number", with_(CART, sku=12345), "bad_field"),
    bad("cart", "cart_cleared sku empty", with_(CART, type="cart_cleared", sku=""), "bad_field"),
    # quantity
    bad("cart", "quantity 0", with_(CART, quantity=0), "bad_field"),
    bad("cart", "quantity -1", with_(CART, quantity=-1), "bad_field"),
    bad("cart", "quantity true", with_(CART, quantity=True), "bad_field"),
    bad("cart", "quantity 1.5", with_(CART, quantity=1.5), "bad_field"),
    bad("cart", "quantity a string", with_(CART, quantity="2"), "bad_field"),
    # JSON Schema's integer is any number with a zero fraction: 2.0 is one to it.
    bad("cart", "quantity 2.0", with_(CART, quantity=2.0), "bad_field", schema=False),
    # orjson reads integers beyond 64 bits as floats; the schema sees an integer.
    bad(
        "cart",
        "quantity 10**30",
        with_literal(CART, "quantity", "1" + "0" * 30),
        "bad_field",
        schema=False,
    ),
    # money and optional strings
    bad("cart", "unit_price negative", with_(CART, unit_price=-0.01), "bad_field"),
    bad("cart", "unit_price huge negative", with_(CART, unit_price=-1e300), "bad_field"),
    # Sums of a few would overflow a float to inf, written as null where a number is due.
    bad("cart", "unit_price over 1e15", with_(CART, unit_price=1.000001e15), "bad_field"),
    bad("cart", "unit_price 1e300", with_(CART, unit_price=1e300), "bad_field"),
    bad("cart", "unit_price an int over 1e15", with_(CART, unit_price=10**15 + 1), "bad_field"),
    bad("cart", "unit_price a string", with_(CART, unit_price="19.99"), "bad_field"),
    bad("cart", "unit_price true", with_(CART, unit_price=True), "bad_field"),
    bad("cart", "cart_id 257 chars", with_(CART, cart_id=S257), "bad_field"),
    bad("cart", "cart_id a number", with_(CART, cart_id=9), "bad_field"),
    bad("cart", "category 257 chars", with_(CART, category=S257), "bad_field"),
)

# --- purchase-events ---------------------------------------------------------

LINE_CAM = {"sku": "cam-1", "quantity": 2, "unit_price": 19.99, "category": "cameras"}
LINE_SD = {"sku": "sd-64", "quantity": 1, "unit_price": 5}
ORDER = {
    "event_id": "evt-2",
    "type": "order_completed",
    "customer_id": "cust-1",
    "ts": TS,
    "order_id": "ord-1",
    "items": [LINE_CAM, LINE_SD],
    "currency": "EUR",
    "margin": 0.3,
}
REFUND = without(with_(ORDER, event_id="evt-3", type="order_refunded"), "items", "currency")
ORDER_LINES = (
    OrderLine("cam-1", 2, Decimal("19.99"), "cameras"),
    OrderLine("sd-64", 1, Decimal(5)),
)
MANY_LINES = [{"sku": f"sku-{n}", "unit_price": 1} for n in range(1001)]

PURCHASE_EXAMPLES = (
    ok(
        "purchase",
        "order_completed: total = 2 x 19.99 + 5",
        ORDER,
        PurchaseEvent(
            event_id="evt-2",
            type="order_completed",
            customer_id="cust-1",
            ts=TS_EPOCH,
            order_id="ord-1",
            items=ORDER_LINES,
            total=Decimal("44.98"),
            currency="EUR",
            margin=0.3,
        ),
    ),
    ok(
        "purchase",
        "given total wins (a discount)",
        with_(ORDER, total=40, currency=None, margin=None),
        PurchaseEvent(
            "evt-2", "order_completed", "cust-1", TS_EPOCH, "ord-1", ORDER_LINES, total=Decimal(40)
        ),
    ),
    ok(
        "purchase",
        "0.1 + 0.2 sums to 0.3 exactly",
        with_(ORDER, items=[{"sku": "a", "unit_price": 0.1}, {"sku": "b", "unit_price": 0.2}]),
        PurchaseEvent(
            "evt-2",
            "order_completed",
            "cust-1",
            TS_EPOCH,
            "ord-1",
            (OrderLine("a", 1, Decimal("0.1")), OrderLine("b", 1, Decimal("0.2"))),
            total=Decimal("0.3"),
            currency="EUR",
            margin=0.3,
        ),
    ),
    ok("purchase", "1000 lines", with_(ORDER, items=MANY_LINES[:1000])),
    ok("purchase", "a free line", with_(ORDER, items=[{"sku": "gift", "unit_price": 0}])),
    ok("purchase", "repeated sku", with_(ORDER, items=[LINE_SD, LINE_SD])),
    ok("purchase", "line with null category", with_(ORDER, items=[with_(LINE_CAM, category=None)])),
    ok("purchase", "margin 0", with_(ORDER, margin=0)),
    ok("purchase", "margin 1", with_(ORDER, margin=1)),
    ok("purchase", "huge total", with_(ORDER, total=1e15)),
    ok(
        "purchase", "line unknown fields ignored", with_(ORDER, items=[with_(LINE_SD, color="red")])
    ),
    ok(
        "purchase",
        "whole-order refund: no items, no total",
        REFUND,
        PurchaseEvent("evt-3", "order_refunded", "cust-1", TS_EPOCH, "ord-1", (), None, margin=0.3),
    ),
    ok(
        "purchase",
        "refund with empty items",
        with_(REFUND, items=[], margin=None),
        PurchaseEvent("evt-3", "order_refunded", "cust-1", TS_EPOCH, "ord-1", (), None),
    ),
    ok("purchase", "refund with null items", with_(REFUND, items=None)),
    ok(
        "purchase",
        "refund with a total only",
        with_(REFUND, total=12.5),
        PurchaseEvent(
            "evt-3", "order_refunded", "cust-1", TS_EPOCH, "ord-1", (), Decimal("12.5"), margin=0.3
        ),
    ),
    ok(
        "purchase",
        "refund of one line",
        with_(REFUND, items=[LINE_SD]),
        PurchaseEvent(
            "evt-3",
            "order_refunded",
            "cust-1",
            TS_EPOCH,
            "ord-1",
            (OrderLine("sd-64", 1, Decimal(5)),),
            Decimal(5),
            margin=0.3,
        ),
    ),
    ok("purchase", "refund of 1000 lines", with_(REFUND, items=MANY_LINES[:1000])),
    bad("purchase", "not JSON", b"\x00\x01", "not_json", schema=False),
    bad("purchase", "array", [ORDER], "not_object"),
    bad("purchase", "type of another topic", with_(ORDER, type="item_added"), "unknown_type"),
    bad("purchase", "type missing", without(ORDER, "type"), "missing_field"),
    bad("purchase", "event_id 257 chars", with_(ORDER, event_id=S257), "bad_field"),
    bad("purchase", "naive ts", with_(ORDER, ts="2026-11-23T09:15:00.5"), "bad_timestamp"),
    bad("purchase", "order_id missing", without(ORDER, "order_id"), "missing_field"),
    bad("purchase", "order_id empty", with_(ORDER, order_id=""), "bad_field"),
    bad("purchase", "order_id 257 chars", with_(ORDER, order_id=S257), "bad_field"),
    bad("purchase", "refund order_id missing", without(REFUND, "order_id"), "missing_field"),
    bad("purchase", "items missing", without(ORDER, "items"), "missing_field"),
    bad("purchase", "items null", with_(ORDER, items=None), "missing_field"),
    bad("purchase", "items empty", with_(ORDER, items=[]), "bad_field"),
    bad("purchase", "items an object", with_(ORDER, items=LINE_SD), "bad_field"),
    bad("purchase", "refund items a string", with_(REFUND, items="all"), "bad_field"),
    bad("purchase", "1001 lines", with_(ORDER, items=MANY_LINES), "too_many_lines"),
    bad("purchase", "refund of 1001 lines", with_(REFUND, items=MANY_LINES), "too_many_lines"),
    bad("purchase", "line a string", with_(ORDER, items=["cam-1"]), "bad_field"),
    bad(
        "purchase",
        "line sku missing",
        with_(ORDER, items=[without(LINE_SD, "sku")]),
        "missing_field",
    ),
    bad(
        "purchase",
        "line sku 257 chars",
        with_(ORDER, items=[with_(LINE_SD, sku=S257)]),
        "bad_field",
    ),
    bad(
        "purchase",
        "line unit_price missing",
        with_(ORDER, items=[LINE_CAM, without(LINE_SD, "unit_price")]),
        "missing_field",
    ),
    bad(
        "purchase",
        "line unit_price negative",
        with_(ORDER, items=[with_(LINE_SD, unit_price=-5)]),
        "bad_field",
    ),
    bad(
        "purchase",
        "line unit_price true",
        with_(ORDER, items=[with_(LINE_SD, unit_price=True)]),
        "bad_field",
    ),
    bad(
        "purchase", "line quantity 0", with_(ORDER, items=[with_(LINE_SD, quantity=0)]), "bad_field"
    ),
    bad(
        "purchase",
        "line quantity true",
        with_(ORDER, items=[with_(LINE_SD, quantity=True)]),
        "bad_field",
    ),
    bad(
        "purchase",
        "line quantity 2.0",
        with_(ORDER, items=[with_(LINE_SD, quantity=2.0)]),
        "bad_field",
        schema=False,
    ),
    bad(
        "purchase",
        "line category 257 chars",
        with_(ORDER, items=[with_(LINE_CAM, category=S257)]),
        "bad_field",
    ),
    bad(
        "purchase",
        "refund line quantity 0",
        with_(REFUND, items=[with_(LINE_SD, quantity=0)]),
        "bad_field",
    ),
    bad("purchase", "total negative", with_(ORDER, total=-44.98), "bad_field"),
    bad("purchase", "total a string", with_(ORDER, total="44.98"), "bad_field"),
    bad("purchase", "currency 257 chars", with_(ORDER, currency=S257), "bad_field"),
    bad("purchase", "currency a number", with_(ORDER, currency=978), "bad_field"),
    bad("purchase", "margin above 1", with_(ORDER, margin=1.01), "bad_field"),
    bad("purchase", "margin negative", with_(ORDER, margin=-0.1), "bad_field"),
    bad("purchase", "margin true", with_(ORDER, margin=True), "bad_field"),
    bad("purchase", "margin a string", with_(ORDER, margin="30%"), "bad_field"),
)

# --- subscription-events -----------------------------------------------------

STARTED = {
    "event_id": "evt-4",
    "type": "subscription_started",
    "customer_id": "cust-1",
    "ts": TS,
    "subscription_id": "sub-1",
    "plan_id": "basic",
    "price": 9.99,
    "period_days": 30,
    "renews_at": RENEWS_AT,
}
RENEWED = without(with_(STARTED, type="subscription_renewed"), "plan_id", "price", "period_days")
CANCELLED = without(RENEWED, "renews_at") | {"type": "subscription_cancelled"}

SUBSCRIPTION_EXAMPLES = (
    ok(
        "subscription",
        "subscription_started",
        STARTED,
        SubscriptionEvent(
            event_id="evt-4",
            type="subscription_started",
            customer_id="cust-1",
            ts=TS_EPOCH,
            subscription_id="sub-1",
            plan_id="basic",
            price=Decimal("9.99"),
            period_days=30,
            renews_at=RENEWS_AT_EPOCH,
        ),
    ),
    ok(
        "subscription",
        "subscription_renewed, +05:30 offset",
        with_(RENEWED, renews_at="2026-12-23T14:45:00+05:30"),
        SubscriptionEvent(
            "evt-4", "subscription_renewed", "cust-1", TS_EPOCH, "sub-1", renews_at=RENEWS_AT_EPOCH
        ),
    ),
    ok("subscription", "renewed with a new price", with_(RENEWED, price=10)),
    ok(
        "subscription",
        "subscription_changed: plan and price",
        with_(CANCELLED, type="subscription_changed", plan_id="pro", price=19),
        SubscriptionEvent(
            "evt-4",
            "subscription_changed",
            "cust-1",
            TS_EPOCH,
            "sub-1",
            plan_id="pro",
            price=Decimal(19),
        ),
    ),
    ok(
        "subscription",
        "subscription_changed: nothing",
        with_(CANCELLED, type="subscription_changed"),
    ),
    ok(
        "subscription",
        "subscription_cancelled",
        CANCELLED,
        SubscriptionEvent("evt-4", "subscription_cancelled", "cust-1", TS_EPOCH, "sub-1"),
    ),
    ok("subscription", "cancelled with nulls", with_(CANCELLED, renews_at=None, plan_id=None)),
    ok("subscription", "period_days 1, price 0", with_(STARTED, period_days=1, price=0)),
    ok("subscription", "ids of 256 chars", with_(STARTED, subscription_id=S256, plan_id=S256)),
    bad("subscription", "not JSON", b"{'type': 'subscription_started'}", "not_json", schema=False),
    bad("subscription", "null", None, "not_object"),
    bad(
        "subscription",
        "type of another topic",
        with_(STARTED, type="order_completed"),
        "unknown_type",
    ),
    bad("subscription", "customer_id empty", with_(STARTED, customer_id=""), "bad_field"),
    bad(
        "subscription",
        "ts without offset",
        with_(STARTED, ts="2026-11-23T09:15:00"),
        "bad_timestamp",
    ),
    bad(
        "subscription",
        "subscription_id missing",
        without(CANCELLED, "subscription_id"),
        "missing_field",
    ),
    bad(
        "subscription",
        "subscription_id 257 chars",
        with_(STARTED, subscription_id=S257),
        "bad_field",
    ),
    bad("subscription", "started without plan_id", without(STARTED, "plan_id"), "missing_field"),
    bad("subscription", "started without price", without(STARTED, "price"), "missing_field"),
    bad(
        "subscription",
        "started without period_days",
        without(STARTED, "period_days"),
        "missing_field",
    ),
    bad(
        "subscription", "started without renews_at", without(STARTED, "renews_at"), "missing_field"
    ),
    bad("subscription", "started null price", with_(STARTED, price=None), "missing_field"),
    bad(
        "subscription", "renewed without renews_at", without(RENEWED, "renews_at"), "missing_field"
    ),
    bad("subscription", "plan_id empty", with_(STARTED, plan_id=""), "bad_field"),
    bad("subscription", "plan_id 257 chars", with_(STARTED, plan_id=S257), "bad_field"),
    bad("subscription", "price negative", with_(STARTED, price=-9.99), "bad_field"),
    bad("subscription", "price true", with_(STARTED, price=True), "bad_field"),
    bad("subscription", "period_days 0", with_(STARTED, period_days=0), "bad_field"),
    bad("subscription", "period_days true", with_(STARTED, period_days=True), "bad_field"),
    bad(
        "subscription",
        "period_days 30.0",
        with_(STARTED, period_days=30.0),
        "bad_field",
        schema=False,
    ),
    bad(
        "subscription",
        "naive renews_at",
        with_(STARTED, renews_at="2026-12-23T09:15:00"),
        "bad_timestamp",
    ),
    bad(
        "subscription",
        "renews_at epoch number",
        with_(RENEWED, renews_at=RENEWS_AT_EPOCH),
        "bad_timestamp",
    ),
    bad(
        "subscription",
        "changed with bad price",
        with_(CANCELLED, type="subscription_changed", price="cheap"),
        "bad_field",
    ),
    bad(
        "subscription",
        "cancelled with naive renews_at",
        with_(CANCELLED, renews_at="2026-12-23"),
        "bad_timestamp",
    ),
)

EXAMPLES: tuple[Example, ...] = CART_EXAMPLES + PURCHASE_EXAMPLES + SUBSCRIPTION_EXAMPLES
VALID: tuple[Example, ...] = tuple(e for e in EXAMPLES if e.reason is None)
INVALID: tuple[Example, ...] = tuple(e for e in EXAMPLES if e.reason is not None)
