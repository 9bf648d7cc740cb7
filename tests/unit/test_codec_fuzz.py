"""Property-based fuzzing of the codec (hypothesis): bad input never escapes as a crash.

An agent catches `InvalidEvent` and nothing broader (an exception escaping
its loop stops it for good), so for ANY value bytes each decoder must either
return an event that keeps the contract's invariants or raise InvalidEvent.
Derandomized, so CI runs the same examples every time.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.codec import (
    MAX_TEXT_CHARS,
    InvalidEvent,
    dead_letter,
    decode_cart,
    decode_purchase,
    decode_subscription,
    encode,
)
from stream.domain.events import CartEvent, Event, PurchaseEvent, SubscriptionEvent

FUZZ = settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
DECODERS: dict[str, Callable[[bytes], Event]] = {
    "cart": decode_cart,
    "purchase": decode_purchase,
    "subscription": decode_subscription,
}
BASES: dict[str, dict[str, Any]] = {
    "cart": {
        "event_id": "e1",
        "type": "item_added",
        "customer_id": "c1",
        "ts": "2026-11-23T09:15:00Z",
        "sku": "a",
        "quantity": 2,
        "unit_price": 9.99,
    },
    "purchase": {
        "event_id": "e2",
        "type": "order_completed",
        "customer_id": "c1",
        "ts": "2026-11-23T09:15:00Z",
        "order_id": "o1",
        "items": [{"sku": "a", "quantity": 1, "unit_price": 9.99}],
    },
    "subscription": {
        "event_id": "e3",
        "type": "subscription_started",
        "customer_id": "c1",
        "ts": "2026-11-23T09:15:00Z",
        "subscription_id": "s1",
        "plan_id": "basic",
        "price": 9.99,
        "period_days": 30,
        "renews_at": "2026-12-23T09:15:00Z",
    },
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def as_json(value: Any) -> bytes:
    """JSON bytes for any generated value (stdlib json: it also writes integers past 64 bits,
    which producers may send and the codec must judge)."""
    return json.dumps(value).encode()


def check(event: Event) -> None:
    """The invariants every decoded event keeps."""
    assert 0 < len(event.event_id) <= MAX_TEXT_CHARS
    assert 0 < len(event.customer_id) <= MAX_TEXT_CHARS
    assert math.isfinite(event.ts)
    if isinstance(event, CartEvent):
        assert event.quantity >= 1
        assert event.unit_price is None or event.unit_price >= 0
    elif isinstance(event, PurchaseEvent):
        assert len(event.items) <= 1000
        for line in event.items:
            assert line.quantity >= 1 and line.unit_price >= 0 and line.unit_price.is_finite()
        assert event.total is None or (event.total >= 0 and event.total.is_finite())
    elif isinstance(event, SubscriptionEvent):
        assert event.price is None or event.price >= Decimal(0)
        assert event.period_days is None or event.period_days >= 1


def decode_or_reject(topic: str, data: bytes) -> None:
    try:
        event = DECODERS[topic](data)
    except InvalidEvent as rejected:
        assert rejected.reason and rejected.detail
    else:
        check(event)


@pytest.mark.parametrize("topic", sorted(DECODERS))
@FUZZ
@given(data=st.binary(max_size=300))
def test_any_bytes_decode_or_are_rejected(topic: str, data: bytes) -> None:
    """Arbitrary bytes: a valid event or InvalidEvent, never another exception."""
    decode_or_reject(topic, data)


@pytest.mark.parametrize("topic", sorted(DECODERS))
@FUZZ
@given(value=json_values)
def test_any_json_decodes_or_is_rejected(topic: str, value: Any) -> None:
    """Arbitrary JSON documents: a valid event or InvalidEvent."""
    decode_or_reject(topic, as_json(value))


@pytest.mark.parametrize("topic", sorted(DECODERS))
@FUZZ
@given(data=st.data())
def test_valid_events_with_one_field_changed(topic: str, data: st.DataObject) -> None:
    """A valid event with one field replaced or removed: valid (invariants hold) or rejected."""
    document = dict(BASES[topic])
    key = data.draw(st.sampled_from([*sorted(document), "extra"]))
    if data.draw(st.booleans()):
        document.pop(key, None)
    else:
        document[key] = data.draw(json_values)
    decode_or_reject(topic, as_json(document))


@FUZZ
@given(original=st.binary(max_size=2000), key=st.none() | st.binary(max_size=40))
def test_dead_letters_carry_any_original_back(original: bytes, key: bytes | None) -> None:
    """Whatever the bytes, the dead letter encodes to JSON and gives them back exactly."""
    record = orjson.loads(
        encode(
            dead_letter(
                reason="not_json",
                detail="fuzz",
                topic="t",
                partition=0,
                offset=0,
                original=original,
                failed_at="2026-11-23T09:15:00Z",
                key=key,
            )
        )
    )
    assert base64.b64decode(record["original"]) == original
    assert record["original_size"] == len(original)
