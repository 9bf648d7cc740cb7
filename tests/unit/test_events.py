"""stream.domain.events: RFC 3339 timestamps <-> epoch seconds, order helpers."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.domain.events import (
    FINGERPRINT_BITS,
    OrderLine,
    PurchaseEvent,
    fingerprint,
    format_ts,
    parse_ts,
    remembered,
)

# 2026-11-23 is day 20,780 after 1970-01-01 (56 years * 365 + 14 leap days + 326 days
# into 2026); 20,780 * 86,400 + 9 h 15 min (33,300 s) = 1,795,425,300.
EPOCH_0915 = 1_795_425_300.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1970-01-01T00:00:00Z", 0.0),
        ("1970-01-01T00:00:00+00:00", 0.0),
        ("1970-01-02T00:00:00Z", 86_400.0),
        ("2026-11-23T09:15:00Z", EPOCH_0915),
        # 10:15 at +01:00 is 09:15 UTC.
        ("2026-11-23T10:15:00+01:00", EPOCH_0915),
        # 03:45 at -05:30 is 09:15 UTC.
        ("2026-11-23T03:45:00-05:30", EPOCH_0915),
        ("2026-11-23T09:15:00.250Z", EPOCH_0915 + 0.25),
        # Half a second before the epoch.
        ("1969-12-31T23:59:59.500Z", -0.5),
    ],
)
def test_parse_ts(text: str, expected: float) -> None:
    """parse_ts turns an RFC 3339 timestamp with any offset into UTC epoch seconds."""
    assert parse_ts(text) == expected


@pytest.mark.parametrize(
    "text",
    ["2026-11-23T09:15:00", "2026-11-23", "not a time", "", "2026-13-01T00:00:00Z"],
)
def test_parse_ts_rejects(text: str) -> None:
    """A timestamp without an offset, or not a timestamp at all, raises ValueError."""
    with pytest.raises(ValueError):
        parse_ts(text)


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (0.0, "1970-01-01T00:00:00Z"),
        (86_399.0, "1970-01-01T23:59:59Z"),
        (EPOCH_0915, "2026-11-23T09:15:00Z"),
        (EPOCH_0915 + 0.25, "2026-11-23T09:15:00.250Z"),
        (EPOCH_0915 + 0.001, "2026-11-23T09:15:00.001Z"),
        (-0.5, "1969-12-31T23:59:59.500Z"),
    ],
)
def test_format_ts(ts: float, expected: str) -> None:
    """format_ts writes UTC with a Z, with milliseconds only when there are some."""
    assert format_ts(ts) == expected


def reference_format_ts(ts: float) -> str:
    """What format_ts writes, formatted from scratch for every call."""
    moment = datetime.fromtimestamp(ts, tz=UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="milliseconds" if moment.microsecond else "seconds") + "Z"


@given(
    st.one_of(
        st.floats(min_value=-2e9, max_value=4e9, allow_nan=False),
        # Near whole seconds and half microseconds, where rounding carries.
        st.builds(
            lambda s, d: s + d,
            st.integers(-2_000_000_000, 4_000_000_000),
            st.sampled_from([0.0, 1e-7, -1e-7, 5e-7, -5e-7, 0.9999995, 0.0004, 0.0005, 0.999]),
        ),
    )
)
def test_format_ts_writes_what_datetime_writes(ts: float) -> None:
    assert format_ts(ts) == reference_format_ts(ts)


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-23T09:15:00Z",
        "2026-11-23T09:15:00.123Z",
        "2026-11-23T09:15:00.999Z",
        "2000-02-29T23:59:59.001Z",
    ],
)
def test_format_ts_inverts_parse_ts(text: str) -> None:
    """A UTC timestamp with at most milliseconds survives parse_ts then format_ts."""
    assert format_ts(parse_ts(text)) == text


def test_order_line_amount_is_exact() -> None:
    """OrderLine.amount = unit_price * quantity in Decimal (3 * 0.10 = 0.30 exactly)."""
    assert OrderLine(sku="a", quantity=3, unit_price=Decimal("0.10")).amount == Decimal("0.30")


def test_purchase_skus_are_distinct_in_first_seen_order() -> None:
    """PurchaseEvent.skus lists each SKU once, in the order its first line appears."""
    lines = tuple(
        OrderLine(sku=sku, quantity=1, unit_price=Decimal(1)) for sku in ["b", "a", "b", "c", "a"]
    )
    event = PurchaseEvent(
        event_id="e",
        type="order_completed",
        customer_id="c",
        ts=0.0,
        order_id="o",
        items=lines,
        total=Decimal(5),
    )
    assert event.skus == ("b", "a", "c")


# --- fingerprint -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_id", "expected"),
    [
        ("evt-000001", 614_739_546_035),
        ("3f6d1c2e-8b1a-4c43-9a57-1d2f0e6b7a90", 310_105_342_792),
        ("é", 357_132_114_213),
    ],
)
def test_fingerprint_is_the_same_in_every_process_and_version(event_id: str, expected: int) -> None:
    """Changelog records hold fingerprints: a recovering worker, another process or the next
    release must compute the same ones: blake2b of the UTF-8 id with a 5-byte digest, as
    `int(hashlib.blake2b(event_id.encode(), digest_size=5).hexdigest(), 16)` gives."""
    assert fingerprint(event_id) == expected


@given(st.text())
def test_fingerprint_is_40_bits_and_remembered_reads_both_forms(event_id: str) -> None:
    """A fingerprint fits 40 bits; a record's id, whole (older records) or not, reads as one."""
    print_ = fingerprint(event_id)
    assert 0 <= print_ < 2**FINGERPRINT_BITS
    assert remembered(event_id) == print_
    assert remembered(print_) == print_
