"""stream.codec: decoding and validating input values, encoding outputs, dead letters."""

from __future__ import annotations

import base64
import hashlib
from decimal import Decimal
from types import MappingProxyType

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.codec import (
    DEAD_LETTER_ENVELOPE,
    DECODERS,
    MAX_DEAD_LETTER_BYTES,
    MAX_DEAD_LETTER_DETAIL,
    MAX_DEAD_LETTER_KEY,
    MAX_DEAD_LETTER_ORIGINAL,
    REASONS,
    InvalidEvent,
    check_key,
    dead_letter,
    dead_letter_key,
    dead_letter_room,
    decode_cart,
    decode_event,
    decode_purchase,
    decode_subscription,
    encode,
)
from stream.domain.events import (
    CART_TYPES,
    PURCHASE_TYPES,
    SUBSCRIPTION_TYPES,
    CartEvent,
    PurchaseEvent,
    SubscriptionEvent,
)
from tests.examples import CART, EXAMPLES, INVALID, ORDER, VALID, Example

EVENT_CLASSES = {"cart": CartEvent, "purchase": PurchaseEvent, "subscription": SubscriptionEvent}
TYPES = {"cart": CART_TYPES, "purchase": PURCHASE_TYPES, "subscription": SUBSCRIPTION_TYPES}


def ids(example: Example) -> str:
    return example.id


@pytest.mark.parametrize("example", VALID, ids=ids)
def test_valid_examples_decode(example: Example) -> None:
    """Every valid example decodes to its topic's event (to the hand-written value when given)."""
    event = DECODERS[example.topic](example.payload)
    assert type(event) is EVENT_CLASSES[example.topic]
    assert event.event_id == orjson.loads(example.payload)["event_id"]
    if example.expected is not None:
        assert event == example.expected


@pytest.mark.parametrize("example", INVALID, ids=ids)
def test_invalid_examples_raise_their_reason(example: Example) -> None:
    """Every invalid example raises InvalidEvent with the expected reason and a detail."""
    with pytest.raises(InvalidEvent) as caught:
        DECODERS[example.topic](example.payload)
    assert caught.value.reason == example.reason
    assert caught.value.detail
    assert str(caught.value).startswith(f"{example.reason}: ")


def topic_of_type(payload: bytes) -> str | None:
    """The input topic whose types hold the value's `type`, if it is one."""
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    kind = doc.get("type") if isinstance(doc, dict) else None
    return next((t for t, types in TYPES.items() if isinstance(kind, str) and kind in types), None)


@pytest.mark.parametrize("example", EXAMPLES, ids=ids)
def test_decode_event_judges_as_the_decoder_of_the_type(example: Example) -> None:
    """decode_event gives what the decoder of the value's type gives: the same event or reason."""
    results: list[object] = []
    for decode in (DECODERS[topic_of_type(example.payload) or example.topic], decode_event):
        try:
            results.append(decode(example.payload))
        except InvalidEvent as exc:
            results.append(exc.reason)
    assert results[0] == results[1]


@pytest.mark.parametrize("kind", ["order_shipped", "ITEM_ADDED", 7, None])
def test_decode_event_rejects_a_type_of_no_input_topic(kind: object) -> None:
    """A type no input topic takes is unknown_type (absent: missing_field), naming them all."""
    with pytest.raises(InvalidEvent) as caught:
        decode_event(orjson.dumps({**CART, "type": kind}))
    assert caught.value.reason == ("missing_field" if kind is None else "unknown_type")
    if kind is not None:
        assert "order_completed" in caught.value.detail and "item_added" in caught.value.detail


def test_table_covers_every_reason_and_type() -> None:
    """The examples table holds every reason code and a valid example of every event type."""
    # bad_key is judged on the record key, not the value: see test_check_key.
    assert {e.reason for e in INVALID} == set(REASONS) - {"bad_key"}
    for topic, types in TYPES.items():
        seen = {orjson.loads(e.payload)["type"] for e in VALID if e.topic == topic}
        assert seen == types, topic
    assert len({e.id for e in EXAMPLES}) == len(EXAMPLES)


def test_decoders_are_keyed_by_logical_topic() -> None:
    """DECODERS maps the logical topic names to the three decoders."""
    assert {
        "cart": decode_cart,
        "purchase": decode_purchase,
        "subscription": decode_subscription,
    } == DECODERS


def test_reasons_are_distinct_label_values() -> None:
    """REASONS are the nine distinct codes of the contract."""
    assert REASONS == (
        "too_large",
        "not_json",
        "not_object",
        "unknown_type",
        "missing_field",
        "bad_field",
        "bad_timestamp",
        "too_many_lines",
        "bad_key",
    )


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({**CART, "sku": "s" * 257}, "sku"),
        (
            {**ORDER, "items": [{"sku": "a", "unit_price": 1}, {"sku": "b", "quantity": 0}]},
            "items[1].quantity",
        ),
        ({**CART, "ts": "2026-11-23T09:15:00"}, "ts"),
    ],
)
def test_detail_names_the_field(payload: dict[str, object], field: str) -> None:
    """The detail of a rejection names the offending field."""
    decode = decode_purchase if "order_id" in payload else decode_cart
    with pytest.raises(InvalidEvent) as caught:
        decode(orjson.dumps(payload))
    assert caught.value.detail.startswith(f"{field} ")


def test_detail_never_repeats_a_long_value() -> None:
    """A long bad value is described by its length, not copied into the detail."""
    with pytest.raises(InvalidEvent) as caught:
        decode_cart(orjson.dumps({**CART, "customer_id": "x" * 10_000}))
    assert "10000 characters" in caught.value.detail
    assert len(caught.value.detail) < 200


def test_money_sums_are_exact_decimals() -> None:
    """A default total is the exact Decimal sum of quantity x unit_price, never a float sum."""
    lines = [{"sku": f"s{n}", "quantity": 3, "unit_price": 0.1} for n in range(10)]
    event = decode_purchase(orjson.dumps({**ORDER, "items": lines}))
    assert event.total == Decimal("3.0")
    assert all(type(line.unit_price) is Decimal for line in event.items)


def test_invalid_event_keeps_reason_and_detail() -> None:
    """InvalidEvent exposes reason and detail, and formats as 'reason: detail'."""
    error = InvalidEvent("bad_field", "quantity must be an integer >= 1, got 0")
    assert (error.reason, error.detail) == ("bad_field", "quantity must be an integer >= 1, got 0")
    assert str(error) == "bad_field: quantity must be an integer >= 1, got 0"


def test_encode_writes_decimals_as_numbers() -> None:
    """encode turns Decimals (nested too) into JSON numbers and keeps the rest as JSON."""
    record = {
        "customer_id": "cust-1",
        "revenue": Decimal("44.98"),
        "items": [{"sku": "a", "score": 0.5, "price": Decimal("19.99")}],
        "rank": None,
        "nested": MappingProxyType({"n": Decimal(3)}),
        "pair": ("a", 1),
    }
    data = encode(record)
    assert isinstance(data, bytes)
    assert orjson.loads(data) == {
        "customer_id": "cust-1",
        "revenue": 44.98,
        "items": [{"sku": "a", "score": 0.5, "price": 19.99}],
        "rank": None,
        "nested": {"n": 3.0},
        "pair": ["a", 1],
    }


def test_encode_rejects_what_is_not_json() -> None:
    """encode raises TypeError for a value with no JSON form (a bug, not bad input)."""
    with pytest.raises(TypeError):
        encode({"x": object()})


@pytest.mark.parametrize(
    "original",
    [orjson.dumps(CART), b"", b"\x00\xff\xfe binary", b"{not json", bytes(range(256))],
    ids=["event", "empty", "binary", "not json", "all bytes"],
)
def test_dead_letter_round_trips_the_original(original: bytes) -> None:
    """The dead-letter record encodes to JSON whose base64 `original` decodes to the exact bytes."""
    record = dead_letter(
        reason="not_json",
        detail="value is not JSON",
        topic="cart-events",
        partition=3,
        offset=12_345,
        original=original,
        failed_at="2026-11-23T09:15:00Z",
        key=b"cust-1",
    )
    back = orjson.loads(encode(record))
    assert back == {
        "reason": "not_json",
        "detail": "value is not JSON",
        "topic": "cart-events",
        "partition": 3,
        "offset": 12_345,
        "original": base64.b64encode(original).decode("ascii"),
        "original_size": len(original),
        "original_sha256": hashlib.sha256(original).hexdigest(),
        "original_truncated": False,
        "key": "cust-1",
        "key_truncated": False,
        "failed_at": "2026-11-23T09:15:00Z",
    }
    assert base64.b64decode(back["original"], validate=True) == original


def test_dead_letter_truncates_a_huge_original_but_describes_all_of_it() -> None:
    """Over max_original bytes: the first max_original kept, size and hash of the whole."""
    original = bytes(range(256)) * 40  # 10,240 bytes
    record = dead_letter(
        reason="too_large",
        detail="too big",
        topic="t",
        partition=0,
        offset=1,
        original=original,
        failed_at="2026-11-23T09:15:00Z",
        key=None,
        max_original=1000,
    )
    assert base64.b64decode(str(record["original"])) == original[:1000]
    assert record["original_truncated"] is True
    assert record["original_size"] == 10_240
    assert record["original_sha256"] == hashlib.sha256(original).hexdigest()


# Bytes of every value, long enough for the largest original kept (2 MiB) and more.
BIG_ORIGINAL = bytes(range(256)) * (3 * 4096)  # 3 MiB
KAFKA_FRAMING = 128  # a record batch's header (61 bytes) and its one record's, with room


@given(
    limit=st.integers(min_value=0, max_value=6 * 1_048_576),
    size=st.integers(min_value=0, max_value=len(BIG_ORIGINAL)),
    detail=st.text(max_size=300),
    key=st.none() | st.binary(max_size=300) | st.binary(min_size=1000, max_size=3000),
)
def test_a_dead_letter_sized_by_its_room_fits_the_topic(
    limit: int, size: int, detail: str, key: bytes | None
) -> None:
    """With `dead_letter_room`'s bytes of the original, the record and its key fit `limit`.

    Whatever the detail and key hold (JSON escapes a control character in 6
    bytes), and with the longest topic name Kafka allows; the original kept
    is the start of the whole, marked truncated when cut, and so is the key.
    """
    original = BIG_ORIGINAL[:size]
    room = dead_letter_room(limit, detail, key)
    record = dead_letter(
        reason="processing_error",
        detail=detail,
        topic="t" * 249,
        partition=2_147_483_647,
        offset=9_223_372_036_854_775_807,
        original=original,
        failed_at="2026-11-23T09:15:00.250Z",
        key=key,
        max_original=room,
    )
    kept = base64.b64decode(str(record["original"]))
    assert kept == original[:room]
    by_limit = dead_letter(
        reason="processing_error",
        detail=detail,
        topic="t" * 249,
        partition=2_147_483_647,
        offset=9_223_372_036_854_775_807,
        original=original,
        failed_at="2026-11-23T09:15:00.250Z",
        key=key,
        limit=limit,
    )
    assert by_limit == record  # what the worker sends: dead_letter(limit=) sizes it itself
    assert record["original_truncated"] is (size > room)
    assert record["original_size"] == size
    sent_key = dead_letter_key(key)
    assert sent_key == (None if key is None else key[:MAX_DEAD_LETTER_KEY])
    assert record["key_truncated"] is (sent_key != key)
    key_bytes = len(sent_key or b"")
    if limit >= DEAD_LETTER_ENVELOPE + 6 * len(detail) + 7 * key_bytes:  # else none fits
        assert len(encode(record)) + key_bytes + KAFKA_FRAMING <= limit


def test_a_dead_letter_keeps_its_2_mib_where_the_topic_takes_5() -> None:
    """At the 5 MiB the dead-letters topic is made for, the original is cut at 2 MiB as before;
    at Kafka's default of 1 MB (1,048,588 bytes), about 3/4 of it."""
    assert dead_letter_room(MAX_DEAD_LETTER_BYTES, "value is not JSON", b"cust-1") == (
        MAX_DEAD_LETTER_ORIGINAL
    )
    room = dead_letter_room(1_048_588, "value is not JSON", b"cust-1")
    assert 780_000 < room < 1_048_588 * 3 // 4
    assert dead_letter_room(500, "d", None) == 0


def test_a_long_detail_is_cut_and_the_dead_letter_still_fits() -> None:
    """An exception's message that quotes a whole input (control characters, escaped in 6
    bytes each, included) keeps its start and its length; the record fits a 1 MB topic."""
    detail = "ValueError: " + "\x01" * 1_000_000
    room = dead_letter_room(1_048_588, detail, b"cust-1")
    record = dead_letter(
        reason="processing_error",
        detail=detail,
        topic="cart-events",
        partition=0,
        offset=0,
        original=BIG_ORIGINAL[:1_000_000],
        failed_at="2026-11-23T09:15:00Z",
        key=b"cust-1",
        max_original=room,
    )
    cut = str(record["detail"])
    assert len(cut) == MAX_DEAD_LETTER_DETAIL
    assert cut.startswith("ValueError: \x01")
    assert cut.endswith("... (1000012 characters)")
    assert room > 700_000
    assert len(encode(record)) + len(b"cust-1") + KAFKA_FRAMING <= 1_048_588


def test_a_huge_key_is_cut_and_the_dead_letter_still_fits() -> None:
    """A key of 600 KB (a wrong key, so a dead letter) keeps its first MAX_DEAD_LETTER_KEY
    bytes, as the record's key and as text, and leaves the original most of a 1 MB topic."""
    key = b"\x01" * 600_000
    room = dead_letter_room(1_048_588, "key is not the customer id", key)
    record = dead_letter(
        reason="bad_key",
        detail="key is not the customer id",
        topic="cart-events",
        partition=0,
        offset=0,
        original=BIG_ORIGINAL[:1_000_000],
        failed_at="2026-11-23T09:15:00Z",
        key=key,
        max_original=room,
    )
    sent_key = dead_letter_key(key)
    assert sent_key == key[:MAX_DEAD_LETTER_KEY]
    assert record["key"] == "\x01" * MAX_DEAD_LETTER_KEY
    assert record["key_truncated"] is True
    assert room > 700_000
    assert len(encode(record)) + len(sent_key or b"") + KAFKA_FRAMING <= 1_048_588


@pytest.mark.parametrize(
    ("key", "text"),
    [(None, None), (b"cust-1", "cust-1"), (b"caf\xc3\xa9", "café"), (b"bad\xff", "bad\ufffd")],
)
def test_dead_letter_key_is_text_or_null(key: bytes | None, text: str | None) -> None:
    """The dead-letter key is the original key as UTF-8 text (bad bytes replaced) or null."""
    record = dead_letter(
        reason="bad_field",
        detail="d",
        topic="t",
        partition=0,
        offset=0,
        original=b"x",
        failed_at="2026-11-23T09:15:00Z",
        key=key,
    )
    assert record["key"] == text


def test_dead_letter_of_a_rejected_example() -> None:
    """A rejected value's InvalidEvent fills a dead letter that carries its reason and bytes."""
    value = orjson.dumps({**CART, "quantity": 0})
    with pytest.raises(InvalidEvent) as caught:
        decode_cart(value)
    record = dead_letter(
        reason=caught.value.reason,
        detail=caught.value.detail,
        topic="cart-events",
        partition=1,
        offset=7,
        original=value,
        failed_at="2026-11-23T09:15:00.250Z",
        key=b"cust-1",
    )
    assert record["reason"] == "bad_field"
    assert base64.b64decode(str(record["original"])) == value


@pytest.mark.parametrize(
    ("key", "ok"),
    [(b"cust-1", True), (b"cust-2", False), (None, False), (b"", False), (b"cust-1 ", False)],
)
def test_check_key(key: bytes | None, ok: bool) -> None:
    """The record key must equal the event's customer_id in UTF-8."""
    event = decode_cart(
        b'{"event_id":"e1","type":"cart_cleared","customer_id":"cust-1",'
        b'"ts":"2026-11-23T09:15:00Z"}'
    )
    if ok:
        check_key(key, event)
    else:
        with pytest.raises(InvalidEvent) as caught:
            check_key(key, event)
        assert caught.value.reason == "bad_key"
