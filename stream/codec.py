"""Raw Kafka bytes <-> the contract's events: decode and validate inputs, encode outputs.

The decoders (`decode_cart`, `decode_purchase`, `decode_subscription`, or
`DECODERS[name]`; `decode_event` picks one by the value's `type`) turn one
input value into a frozen event of `stream.domain.events`, or raise one
`InvalidEvent` whose `reason` is one of `REASONS` (a bounded set: it is a
Prometheus label) and whose `detail` names the field. Nothing else escapes
them, so an agent catches `InvalidEvent` only, dead-letters the record
(`dead_letter`) and goes on.

This is the hot path: orjson, hand-written checks, early exits, and error
text built only when a record is rejected. The rules are the ones
`schemas/*-event.schema.json` state (tests/examples.py holds the examples
both are tested against):

- a value over 1 MiB is `too_large` (judged before parsing); one that is not
  JSON is `not_json`, a JSON non-object `not_object`;
- `type` absent is `missing_field`, not one of the topic's types
  `unknown_type`;
- a required field that is absent or null is `missing_field`; null is absent
  for optional fields too; a present field of the wrong type or range is
  `bad_field`; a timestamp that is not RFC 3339 with an offset, or not
  within the years 1970-2099 in UTC, is `bad_timestamp`; an order of more
  than 1,000 lines is `too_many_lines`;
- ids are non-empty strings of at most 256 characters, other strings at
  most 256 characters; quantities and day counts are ints >= 1 (not bools,
  not 2.0); money is a number from 0 to MAX_MONEY, 1e15 (not a bool), taken as `Decimal(str(x))`
  so that 19.99 stays 19.99; `margin` is a number in [0, 1];
- fields the contract does not name are ignored (producers may add some).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from sys import intern
from typing import Any, Final, Literal

import orjson

from stream.domain.events import (
    CART_TYPES,
    PURCHASE_TYPES,
    SUBSCRIPTION_TYPES,
    CartEvent,
    Event,
    OrderLine,
    PurchaseEvent,
    SubscriptionEvent,
    parse_ts,
)

Reason = Literal[
    "too_large",
    "not_json",
    "not_object",
    "unknown_type",
    "missing_field",
    "bad_field",
    "bad_timestamp",
    "too_many_lines",
    "bad_key",
]
REASONS: Final[tuple[Reason, ...]] = (
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
# Not bad input but a bug that an input found: the agent's handler raised on a
# valid event (stream/batches.py). Kept like invalid input, so it can be replayed.
PROCESSING_ERROR: Final = "processing_error"
DEAD_LETTER_REASONS: Final[tuple[str, ...]] = (*REASONS, PROCESSING_ERROR)

MAX_EVENT_BYTES: Final = 1_048_576
MAX_TEXT_CHARS: Final = 256
# Money above this is a producer's bug: sums of a few 1e307 amounts overflow a
# float to inf, which records wrote as null where the schemas want a number.
MAX_MONEY: Final = 10**15
MAX_ORDER_LINES: Final = 1_000
# A dead letter carries up to 2 MiB of the original (2.7 MiB in base64), so it
# fits the 5 MiB record limit set on the dead-letters topic and the producer.
MAX_DEAD_LETTER_ORIGINAL: Final = 2 * 1_048_576
MAX_DEAD_LETTER_BYTES: Final = 5 * 1_048_576
# A dead letter's `detail` is cut to this many characters: an exception's
# message may quote an input whole, and the record must fit its topic.
MAX_DEAD_LETTER_DETAIL: Final = 4096
# A dead letter's key (the record's and the `key` field) is cut to this many
# bytes: any customer id (MAX_TEXT_CHARS characters, 4 bytes each at most)
# fits whole, and a key of hundreds of KB cannot make a record its topic refuses.
MAX_DEAD_LETTER_KEY: Final = 1024
# What a dead letter holds besides its original, key and detail, with room to
# spare: field names, topic (at most 249 characters), numbers, sha256, the
# record's and its batch's framing in Kafka.
DEAD_LETTER_ENVELOPE: Final = 1024

# RFC 3339 `date-time` (section 5.6, lower-case t/z allowed) with ranged fields:
# `datetime.fromisoformat` alone also takes `20261123T0915Z`, `+0530`, `+05:60`.
# The calendar (February 30th) is left to `parse_ts`. Same pattern as the schemas.
# Years 1970-2099 only, and the instant too (an offset may move it across):
# an event dated in year 1 or 9999 is a producer's bug, and would weigh more
# than all the others in time-decayed counts, or not even print as UTC.
_RFC3339: Final = re.compile(
    r"(?:19[7-9][0-9]|20[0-9][0-9])-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])[Tt]"
    r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
EARLIEST_TS: Final = 0.0  # 1970-01-01T00:00:00Z
LATEST_TS: Final = 4_102_444_800.0  # 2100-01-01T00:00:00Z, the first instant refused
_ZERO: Final = Decimal(0)
_NO_LINES: Final[tuple[OrderLine, ...]] = ()


class InvalidEvent(Exception):
    """An input value that breaks the contract; the record goes to the dead-letter topic.

    `reason` is one of `REASONS` (bounded: a metric label); `detail` is human
    text that names the offending field (`items[3].quantity must be ...`).
    """

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason: Reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


# --- decoders ---------------------------------------------------------------


def decode_cart(data: bytes) -> CartEvent:
    """A `cart-events` value -> `CartEvent`, or `InvalidEvent`.

    `sku` is required for `item_added`/`item_removed`, optional for
    `cart_cleared`; `quantity` defaults to 1; `cart_id`, `unit_price` and
    `category` are `None` when absent.
    """
    return _cart(_load(data))


def _cart(doc: dict[str, Any]) -> CartEvent:
    kind = _event_type(doc, CART_TYPES)
    event_id = _required_id(doc, "event_id")
    customer_id = _customer_id(doc)
    ts = _required_ts(doc, "ts")
    if kind != "cart_cleared" and doc.get("sku") is None:
        raise InvalidEvent("missing_field", f"sku is required for {kind}")
    quantity = _count(doc, "quantity")
    return CartEvent(
        event_id=event_id,
        type=kind,
        customer_id=customer_id,
        ts=ts,
        sku=_optional_id(doc, "sku"),
        quantity=1 if quantity is None else quantity,
        cart_id=_optional_text(doc, "cart_id"),
        unit_price=_money(doc, "unit_price"),
        category=_optional_text(doc, "category"),
    )


def decode_purchase(data: bytes) -> PurchaseEvent:
    """A `purchase-events` value -> `PurchaseEvent`, or `InvalidEvent`.

    `order_completed` has 1..1,000 lines; `order_refunded` 0..1,000 (absent,
    null or empty = the whole order). `total` is the given total, else the
    exact `Decimal` sum of the lines' amounts, else (a refund without lines)
    `None`. A line's `quantity` defaults to 1.
    """
    return _purchase(_load(data))


def _purchase(doc: dict[str, Any]) -> PurchaseEvent:
    kind = _event_type(doc, PURCHASE_TYPES)
    event_id = _required_id(doc, "event_id")
    customer_id = _customer_id(doc)
    ts = _required_ts(doc, "ts")
    order_id = _required_id(doc, "order_id")
    raw_items = doc.get("items")
    if raw_items is not None:
        items = _order_lines(raw_items)
    elif kind == "order_completed":
        raise InvalidEvent("missing_field", "items is required for order_completed")
    else:
        items = _NO_LINES
    if not items and kind == "order_completed":
        raise InvalidEvent("bad_field", "items of order_completed must hold at least one line")
    total = _money(doc, "total")
    if total is None and items:
        total = sum((line.amount for line in items), _ZERO)
    return PurchaseEvent(
        event_id=event_id,
        type=kind,
        customer_id=customer_id,
        ts=ts,
        order_id=order_id,
        items=items,
        total=total,
        currency=_optional_text(doc, "currency"),
        margin=_fraction(doc, "margin"),
    )


def decode_subscription(data: bytes) -> SubscriptionEvent:
    """A `subscription-events` value -> `SubscriptionEvent`, or `InvalidEvent`.

    `subscription_started` requires `plan_id`, `price`, `period_days` and
    `renews_at`; `subscription_renewed` requires `renews_at`; the other
    fields are `None` when absent (= unchanged) and validated when present.
    `renews_at` is epoch seconds like `ts`.
    """
    return _subscription(_load(data))


def _subscription(doc: dict[str, Any]) -> SubscriptionEvent:
    kind = _event_type(doc, SUBSCRIPTION_TYPES)
    event_id = _required_id(doc, "event_id")
    customer_id = _customer_id(doc)
    ts = _required_ts(doc, "ts")
    subscription_id = _required_id(doc, "subscription_id")
    if kind == "subscription_started":
        _require(doc, kind, ("plan_id", "price", "period_days", "renews_at"))
    elif kind == "subscription_renewed":
        _require(doc, kind, ("renews_at",))
    return SubscriptionEvent(
        event_id=event_id,
        type=kind,
        customer_id=customer_id,
        ts=ts,
        subscription_id=subscription_id,
        plan_id=_optional_id(doc, "plan_id"),
        price=_money(doc, "price"),
        period_days=_count(doc, "period_days"),
        renews_at=_optional_ts(doc, "renews_at"),
    )


DECODERS: Final[dict[str, Callable[[bytes], Event]]] = {
    "cart": decode_cart,
    "purchase": decode_purchase,
    "subscription": decode_subscription,
}
INPUT_TYPES: Final = CART_TYPES | PURCHASE_TYPES | SUBSCRIPTION_TYPES


def decode_event(data: bytes) -> Event:
    """A value of any input topic -> its event, the decoder chosen by `type`; or `InvalidEvent`.

    For a producer that routes events to their topics by `type` (`python -m
    stream replay`): the same rules as the topic's own decoder, and a `type`
    that no input topic takes is `unknown_type`.
    """
    doc = _load(data)
    kind = _event_type(doc, INPUT_TYPES)
    if kind in CART_TYPES:
        return _cart(doc)
    if kind in PURCHASE_TYPES:
        return _purchase(doc)
    return _subscription(doc)


# --- outputs ----------------------------------------------------------------


def check_key(key: bytes | None, event: Event) -> None:
    """The record key must be the event's customer_id as UTF-8 (`bad_key` if not).

    State is partitioned by customer: a record keyed otherwise (or not at
    all) would put its customer's state on the wrong partition.
    """
    if key != event.customer_id.encode():
        raise InvalidEvent("bad_key", "record key must be the customer_id as UTF-8")


def encode(record: Mapping[str, Any]) -> bytes:
    """An output record -> one JSON object as bytes (orjson).

    `Decimal` becomes a JSON number (via float); nested mappings, tuples and
    dataclasses become objects and arrays. Anything else orjson cannot
    serialize raises `TypeError` (a bug, not bad input).
    """
    return orjson.dumps(record, default=_json_default)


def dead_letter(
    *,
    reason: str,
    detail: str,
    topic: str,
    partition: int,
    offset: int,
    original: bytes,
    failed_at: str,
    key: bytes | None,
    max_original: int = MAX_DEAD_LETTER_ORIGINAL,
    limit: int | None = None,
) -> dict[str, str | int | bool | None]:
    """The dead-letter record (DESIGN.md, `dead-letters`) for one rejected input record.

    `original` comes back as standard base64 text (it decodes to the exact
    bytes), `key` as UTF-8 text with undecodable bytes replaced (or None):
    the `dead_letter_key` the record is sent with, `key_truncated` when that
    is only the start of the original key.
    An original over `max_original` bytes keeps its first `max_original`
    bytes, with `original_truncated: true`; `original_size` and
    `original_sha256` always describe the whole value, and topic, partition
    and offset point at it. A `detail` over MAX_DEAD_LETTER_DETAIL
    characters keeps its start and says how long it was. `failed_at` is the
    caller's RFC 3339 UTC string: the codec never reads the clock. With
    `limit` (what the dead-letters topic takes), the original keeps no more
    than fits beside the rest (`dead_letter_room`).
    """
    detail, kept_key = _cut_detail(detail), dead_letter_key(key)
    if limit is not None:
        max_original = min(max_original, _room(limit, detail, kept_key))
    truncated = len(original) > max_original
    return {
        "reason": reason,
        "detail": detail,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "original": base64.b64encode(original[:max_original]).decode("ascii"),
        "original_size": len(original),
        "original_sha256": hashlib.sha256(original).hexdigest(),
        "original_truncated": truncated,
        "key": None if kept_key is None else kept_key.decode("utf-8", errors="replace"),
        "key_truncated": key is not None and len(key) > MAX_DEAD_LETTER_KEY,
        "failed_at": failed_at,
    }


def _cut_detail(detail: str) -> str:
    if len(detail) <= MAX_DEAD_LETTER_DETAIL:
        return detail
    note = f"... ({len(detail)} characters)"
    return detail[: MAX_DEAD_LETTER_DETAIL - len(note)] + note


def dead_letter_key(key: bytes | None) -> bytes | None:
    """The key a dead letter is sent with: the original's, its first MAX_DEAD_LETTER_KEY bytes."""
    return None if key is None else key[:MAX_DEAD_LETTER_KEY]


def dead_letter_room(limit: int, detail: str, key: bytes | None) -> int:
    """The most bytes of an original a dead letter carries to stay within `limit` bytes.

    `limit` is what the dead-letters topic takes (its `max.message.bytes`).
    At most MAX_DEAD_LETTER_ORIGINAL; base64 makes 4 characters of every 3
    bytes; the detail and key, as `dead_letter` cuts them, count 6 bytes a
    character, the most JSON's escapes make of one, and the key once more:
    the record's key travels raw beside its value.
    """
    return min(MAX_DEAD_LETTER_ORIGINAL, _room(limit, _cut_detail(detail), dead_letter_key(key)))


def _room(limit: int, detail: str, key: bytes | None) -> int:
    """`dead_letter_room` for the detail and key as `dead_letter` has cut them."""
    envelope = DEAD_LETTER_ENVELOPE + 6 * len(detail) + 7 * len(key or b"")
    return max(0, (limit - envelope) // 4 * 3)


def _json_default(obj: object) -> object:
    if isinstance(obj, Decimal):
        return float(obj)
    if isinstance(obj, Mapping):
        return dict(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


# --- checks: each returns the typed value or raises InvalidEvent ------------


def _load(data: bytes) -> dict[str, Any]:
    """Size, JSON and object checks, in that order; the parsed object."""
    if not data:  # b"", or None: a tombstone is no event either
        raise InvalidEvent("not_json", "value is empty")
    if len(data) > MAX_EVENT_BYTES:
        raise InvalidEvent("too_large", f"value is {len(data)} bytes, more than {MAX_EVENT_BYTES}")
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent("not_json", f"value is not JSON: {exc}") from None
    if type(doc) is not dict:
        raise InvalidEvent("not_object", f"value must be a JSON object, got {_show(doc)}")
    return doc


def _event_type(doc: dict[str, Any], types: frozenset[str]) -> str:
    kind = doc.get("type")
    if type(kind) is str and kind in types:
        return kind
    if kind is None:
        raise InvalidEvent("missing_field", "type is required")
    raise InvalidEvent("unknown_type", f"type must be one of {sorted(types)}, got {_show(kind)}")


def _require(doc: dict[str, Any], kind: str, keys: tuple[str, ...]) -> None:
    for key in keys:
        if doc.get(key) is None:
            raise InvalidEvent("missing_field", f"{key} is required for {kind}")


def _required_id(doc: dict[str, Any], key: str, index: int = -1) -> str:
    value = doc.get(key)
    if type(value) is str and 0 < len(value) <= MAX_TEXT_CHARS:
        return value
    if value is None:
        raise InvalidEvent("missing_field", f"{_name(key, index)} is required")
    raise _bad(key, index, "a non-empty string of at most 256 characters", value)


def _customer_id(doc: dict[str, Any]) -> str:
    """The event's customer id, interned: one string in every table (see Utf8Codec)."""
    return intern(_required_id(doc, "customer_id"))


def _optional_id(doc: dict[str, Any], key: str) -> str | None:
    value = doc.get(key)
    if value is None or (type(value) is str and 0 < len(value) <= MAX_TEXT_CHARS):
        return value
    raise _bad(key, -1, "a non-empty string of at most 256 characters", value)


def _optional_text(doc: dict[str, Any], key: str, index: int = -1) -> str | None:
    value = doc.get(key)
    if value is None or (type(value) is str and len(value) <= MAX_TEXT_CHARS):
        return value
    raise _bad(key, index, "a string of at most 256 characters", value)


def _count(doc: dict[str, Any], key: str, index: int = -1) -> int | None:
    """An int >= 1 (bool and 2.0 are not ints here), or None when absent."""
    value = doc.get(key)
    if value is None or (type(value) is int and value >= 1):
        return value
    raise _bad(key, index, "an integer >= 1", value)


def _money(doc: dict[str, Any], key: str, index: int = -1) -> Decimal | None:
    """A number in [0, MAX_MONEY] as `Decimal` (floats through `str`: 19.99 stays 19.99)."""
    value = doc.get(key)
    if value is None:
        return None
    kind = type(value)
    if kind is int and 0 <= value <= MAX_MONEY:
        return Decimal(value)
    if kind is float and 0.0 <= value <= MAX_MONEY:  # NaN fails both comparisons
        return Decimal(str(value)) if value else _ZERO  # -0.0 -> 0
    raise _bad(key, index, "a number from 0 to 1e15", value)


def _fraction(doc: dict[str, Any], key: str) -> float | None:
    value = doc.get(key)
    if value is None:
        return None
    if (type(value) is float or type(value) is int) and 0 <= value <= 1:
        return float(value)
    raise _bad(key, -1, "a number in [0, 1]", value)


def _required_ts(doc: dict[str, Any], key: str) -> float:
    ts = _optional_ts(doc, key)
    if ts is None:
        raise InvalidEvent("missing_field", f"{key} is required")
    return ts


def _optional_ts(doc: dict[str, Any], key: str) -> float | None:
    """RFC 3339 with an offset -> epoch seconds, None when absent."""
    value = doc.get(key)
    if value is None:
        return None
    if type(value) is str and _RFC3339.fullmatch(value) is not None:
        try:
            # fromisoformat takes a lower-case `t` but not a lower-case `z`.
            ts = parse_ts(value if value[-1] != "z" else value[:-1] + "Z")
        except (ValueError, OverflowError):
            pass
        else:
            if EARLIEST_TS <= ts < LATEST_TS:
                return ts
    raise InvalidEvent(
        "bad_timestamp",
        f"{key} must be an RFC 3339 timestamp with an offset, from 1970 to 2099 in UTC "
        f"(like 2026-11-23T09:15:00Z), got {_show(value)}",
    )


def _order_lines(raw: object) -> tuple[OrderLine, ...]:
    if type(raw) is not list:
        raise _bad("items", -1, "a list of order lines", raw)
    if len(raw) > MAX_ORDER_LINES:
        raise InvalidEvent(
            "too_many_lines", f"items has {len(raw)} lines, more than {MAX_ORDER_LINES}"
        )
    return tuple([_order_line(line, index) for index, line in enumerate(raw)])


def _order_line(line: object, index: int) -> OrderLine:
    if type(line) is not dict:
        raise InvalidEvent("bad_field", f"items[{index}] must be an object, got {_show(line)}")
    sku = _required_id(line, "sku", index)
    quantity = _count(line, "quantity", index)
    unit_price = _money(line, "unit_price", index)
    if unit_price is None:
        raise InvalidEvent("missing_field", f"items[{index}].unit_price is required")
    return OrderLine(
        sku=sku,
        quantity=1 if quantity is None else quantity,
        unit_price=unit_price,
        category=_optional_text(line, "category", index),
    )


# --- error text (built only on the error path) ------------------------------


def _name(key: str, index: int) -> str:
    return key if index < 0 else f"items[{index}].{key}"


def _bad(key: str, index: int, expected: str, value: object) -> InvalidEvent:
    return InvalidEvent("bad_field", f"{_name(key, index)} must be {expected}, got {_show(value)}")


def _show(value: object) -> str:
    """A short description of a JSON value for `detail` (never a whole payload)."""
    if isinstance(value, str) and len(value) > 40:
        return f"a string of {len(value)} characters"
    if isinstance(value, list):
        return f"an array of length {len(value)}"
    if isinstance(value, dict):
        return "an object"
    return orjson.dumps(value).decode()
