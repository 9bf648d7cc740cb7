"""`python -m stream replay`: reading JSON lines and CSV order lines into validated events.

Everything here runs without a broker (tests/integration/test_replay.py
sends to the real one): lines in, `Outgoing` events and `Rejected` lines out.
"""

from __future__ import annotations

import io
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream.codec import decode_purchase
from stream.domain.events import OrderLine, PurchaseEvent, parse_ts
from stream.replay import (
    SHOWN_BAD_LINES,
    CsvEvents,
    CsvLayout,
    Item,
    Line,
    Outgoing,
    Rejected,
    ReplayError,
    Reporter,
    Summary,
    event_id,
    jsonl_events,
    main,
    parse_args,
    parse_columns,
    parse_time,
)
from tests.examples import CART, INVALID, ORDER, STARTED, VALID

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "online_retail_sample.csv"
UCI = CsvLayout(
    columns={
        "order_id": "InvoiceNo",
        "customer_id": "CustomerID",
        "sku": "StockCode",
        "quantity": "Quantity",
        "unit_price": "UnitPrice",
        "ts": "InvoiceDate",
    },
    ts_format="%m/%d/%Y %H:%M",
    source="sample.csv",
)
HEADER = "order_id,customer_id,sku,quantity,unit_price,ts"


def lines_of(text: str) -> list[bytes]:
    return io.BytesIO(text.encode()).readlines()


def csv_items(text: str, layout: CsvLayout | None = None) -> list[Item]:
    return list(CsvEvents(lines_of(text), layout or CsvLayout(source="test.csv")))


def sent(items: list[Item]) -> list[Outgoing]:
    return [item for item in items if isinstance(item, Outgoing)]


def rejected(items: list[Item]) -> list[Rejected]:
    return [item for item in items if isinstance(item, Rejected)]


def orders(items: list[Item]) -> list[dict[str, Any]]:
    return [orjson.loads(item.value) for item in sent(items)]


def numbers(item: Rejected) -> list[int]:
    return [line.number for line in item.lines]


# --- JSON lines ----------------------------------------------------------------------


@pytest.mark.parametrize("example", VALID, ids=lambda e: f"{e.topic}: {e.name}")
def test_every_valid_event_goes_to_the_topic_of_its_type(example: Any) -> None:
    """A valid contract event of any topic is routed by its type, its bytes and key unchanged."""
    [item] = jsonl_events([example.payload + b"\n"])
    assert isinstance(item, Outgoing)
    assert item.kind == example.topic
    assert item.value == example.payload
    assert item.key == orjson.loads(example.payload)["customer_id"].encode()
    assert item.line == 1


@pytest.mark.parametrize(
    "example",
    [e for e in INVALID if e.payload.strip()],
    ids=lambda e: f"{e.topic}: {e.name}",
)
def test_a_forced_topic_judges_lines_as_its_workers_do(example: Any) -> None:
    """With --topic one of the inputs, a line fails with the reason that topic's decoder gives."""
    [item] = jsonl_events([b"\n", example.payload + b"\n"], kind=example.topic)
    assert isinstance(item, Rejected)
    assert item.reason == example.reason
    assert numbers(item) == [2]
    assert item.lines[0].text == example.payload.decode("utf-8", errors="replace")


@pytest.mark.parametrize(
    ("line", "reason", "detail"),
    [
        (b"{not json", "not_json", "value is not JSON"),
        (b"[1, 2]", "not_object", "value must be a JSON object"),
        (b'"item_added"', "not_object", "value must be a JSON object"),
        (orjson.dumps({k: v for k, v in CART.items() if k != "type"}), "missing_field", "type"),
        (orjson.dumps({**CART, "type": "order_shipped"}), "unknown_type", "type must be"),
        (orjson.dumps({**CART, "ts": "2026-11-23 09:15"}), "bad_timestamp", "ts must be"),
        (orjson.dumps({**ORDER, "customer_id": None}), "missing_field", "customer_id"),
        (orjson.dumps({**ORDER, "items": []}), "bad_field", "items of order_completed"),
        (orjson.dumps({**STARTED, "price": -1}), "bad_field", "price must be"),
        (b'{"pad": "' + b"x" * 1_048_576 + b'"}', "too_large", "value is"),
        (b"\xff\xfe{}", "not_json", "value is not JSON"),
    ],
)
def test_bad_lines_are_rejected_with_the_codecs_reason(
    line: bytes, reason: str, detail: str
) -> None:
    """Each bad line is rejected (never raised) with the codec's reason, its number and text."""
    good = orjson.dumps(CART)
    items = list(jsonl_events([good + b"\n", line + b"\n", good + b"\n"]))
    assert [type(item) for item in items] == [Outgoing, Rejected, Outgoing]
    bad = items[1]
    assert isinstance(bad, Rejected)
    assert (bad.reason, numbers(bad), bad.skipped) == (reason, [2], False)
    assert detail in bad.detail
    assert bad.lines[0].text == line.decode("utf-8", errors="replace")


def test_line_ends_blank_lines_and_a_byte_order_mark() -> None:
    """CRLF ends and a first-line BOM are not sent; blank lines are skipped but numbered."""
    cart, order = orjson.dumps(CART), orjson.dumps(ORDER)
    lines = [b"\xef\xbb\xbf" + cart + b"\r\n", b"\n", b"   \r\n", order]
    items = sent(list(jsonl_events(lines)))
    assert [(i.kind, i.value, i.line) for i in items] == [
        ("cart", cart, 1),
        ("purchase", order, 4),
    ]


def test_a_forced_topic_takes_only_its_own_types() -> None:
    """Forced to the purchase topic, a cart event is unknown_type, a purchase event goes."""
    items = list(jsonl_events([orjson.dumps(CART), orjson.dumps(ORDER)], kind="purchase"))
    assert isinstance(items[0], Rejected)
    assert items[0].reason == "unknown_type"
    assert isinstance(items[1], Outgoing)
    assert items[1].kind == "purchase"


def test_event_time_is_the_events_ts() -> None:
    """An outgoing event carries its ts (epoch seconds) for --record-time event."""
    [item] = sent(list(jsonl_events([orjson.dumps({**CART, "ts": "2010-12-01T08:26:00+01:00"})])))
    assert item.ts == parse_ts("2010-12-01T07:26:00Z")


# --- CSV: columns and times --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("order_id=InvoiceNo", {"order_id": "InvoiceNo"}),
        (
            " sku = StockCode , ts=Invoice Date,currency=Cur",
            {"sku": "StockCode", "ts": "Invoice Date", "currency": "Cur"},
        ),
    ],
)
def test_parse_columns(text: str, expected: dict[str, str]) -> None:
    """`field=Column,...` maps contract fields to header names (spaces around are trimmed)."""
    assert parse_columns(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("order_id", "expected field=Column"),
        ("order_id=", "expected field=Column"),
        ("price=UnitPrice", "unknown field 'price'"),
        ("sku=A,sku=B", "mapped twice"),
    ],
)
def test_parse_columns_rejects(text: str, message: str) -> None:
    """A malformed mapping, an unknown field or a field mapped twice is an error."""
    with pytest.raises(ValueError, match=message):
        parse_columns(text)


def test_an_unknown_encoding_is_a_usage_error() -> None:
    """--encoding must name a Python codec (checked before anything is read)."""
    assert parse_args(["f.csv", "--encoding", "Latin-1"]).encoding == "iso8859-1"
    with pytest.raises(SystemExit):
        parse_args(["f.csv", "--encoding", "latin-99"])


@pytest.mark.parametrize("name", ["utf-16", "utf-32-le", "rot13", "base64"])
def test_an_encoding_not_read_a_line_at_a_time_is_a_usage_error(name: str) -> None:
    """UTF-16 (Excel's "Unicode Text") and non-text codecs were taken, then a line decoded
    on its own raised UnicodeDecodeError or LookupError with a traceback."""
    with pytest.raises(SystemExit):
        parse_args(["f.csv", "--encoding", name])


def test_utf_8_with_its_byte_order_mark_is_an_encoding_read_a_line_at_a_time() -> None:
    """utf-8-sig (Excel's "CSV UTF-8") writes a BOM before its first line break, not a
    different line break: it stays accepted."""
    assert parse_args(["f.csv", "--encoding", "utf-8-sig"]).encoding == "utf-8-sig"


def test_columns_may_be_given_in_several_options() -> None:
    """--columns is repeatable; the mappings merge, a field mapped twice is a usage error."""
    args = parse_args(["f.csv", "--columns", "order_id=A,sku=B", "--columns", "ts=C"])
    assert args.columns == {"order_id": "A", "sku": "B", "ts": "C"}
    with pytest.raises(SystemExit):
        parse_args(["f.csv", "--columns", "sku=A", "--columns", "sku=B"])


@pytest.mark.parametrize(
    ("text", "ts_format", "expected"),
    [
        ("2010-12-01T08:26:00Z", None, "2010-12-01T08:26:00Z"),
        ("2010-12-01T08:26:00+01:00", None, "2010-12-01T07:26:00Z"),
        ("2010-12-01 08:26:00", None, "2010-12-01T08:26:00Z"),  # naive = UTC
        ("2010-12-01", None, "2010-12-01T00:00:00Z"),
        ("12/1/2010 8:26", "%m/%d/%Y %H:%M", "2010-12-01T08:26:00Z"),
        ("01.12.2010 08:26 +0200", "%d.%m.%Y %H:%M %z", "2010-12-01T06:26:00Z"),
    ],
)
def test_parse_time(text: str, ts_format: str | None, expected: str) -> None:
    """ISO 8601 by default or a strptime format; a time without an offset is UTC."""
    assert parse_time(text, ts_format) == parse_ts(expected)


@pytest.mark.parametrize(
    ("text", "ts_format"),
    [("12/1/2010 8:26", None), ("2010-12-01T08:26:00Z", "%m/%d/%Y %H:%M"), ("", None)],
)
def test_parse_time_rejects(text: str, ts_format: str | None) -> None:
    """A time that does not fit the format raises ValueError."""
    with pytest.raises(ValueError):
        parse_time(text, ts_format)


# --- CSV: rows into orders ---------------------------------------------------------------


def test_the_sample_export_becomes_orders() -> None:
    """UCI Online Retail layout: consecutive rows of an invoice make one order_completed."""
    items = list(CsvEvents(io.BytesIO(SAMPLE.read_bytes()), UCI))
    documents = orders(items)
    assert [(d["order_id"], d["customer_id"], len(d["items"])) for d in documents] == [
        ("536365", "17850", 3),
        ("536366", "17850", 2),
        ("536367", "13047", 3),
        ("536368", "13047", 2),
        ("536370", "12583", 3),
        ("536371", "13748", 1),
        ("536372", "17850", 1),
    ]
    first = sent(items)[0]
    assert (first.kind, first.key, first.line) == ("purchase", b"17850", 2)
    assert decode_purchase(first.value) == PurchaseEvent(
        event_id=event_id("sample.csv", "order_completed", "536365"),
        type="order_completed",
        customer_id="17850",
        ts=parse_ts("2010-12-01T08:26:00Z"),
        order_id="536365",
        items=(
            OrderLine("85123A", 6, Decimal("2.55")),
            OrderLine("71053", 6, Decimal("3.39")),
            OrderLine("84406B", 8, Decimal("2.75")),
        ),
        total=Decimal("6") * Decimal("2.55") + 6 * Decimal("3.39") + 8 * Decimal("2.75"),
    )
    assert documents[0]["ts"] == "2010-12-01T08:26:00Z"
    assert documents[2]["items"][2] == {"sku": "21754", "quantity": 3, "unit_price": 5.95}
    bad = rejected(items)
    assert [(r.reason, numbers(r), r.skipped) for r in bad] == [
        ("refund", [12], True),
        ("missing_field", [13, 14], False),
        ("missing_field", [18], False),
    ]
    assert bad[1].detail == "order 536414, line 13: customer_id (column 'CustomerID') is empty"
    assert bad[1].lines[0].text == "536414,22139,,56,12/1/2010 11:52,0,,United Kingdom"


def test_header_names_are_the_default_mapping() -> None:
    """Without --columns, columns named as the contract's fields are read; quantity is 1."""
    items = csv_items(
        "ts,customer_id,order_id,sku,unit_price,category,currency\n"
        "2026-11-23T09:15:00Z,c1,o1,cam,899,cameras,EUR\n"
        "2026-11-23T09:15:00Z,c1,o1,sd,19.99,,EUR\n"
    )
    [document] = orders(items)
    assert document["items"] == [
        {"sku": "cam", "quantity": 1, "unit_price": 899, "category": "cameras"},
        {"sku": "sd", "quantity": 1, "unit_price": 19.99},
    ]
    assert document["currency"] == "EUR"
    assert document["ts"] == "2026-11-23T09:15:00Z"


def test_interleaved_rows_are_gathered_within_the_window() -> None:
    """Rows of an order up to `window` other orders apart join it; orders keep first-seen order."""
    text = (
        f"{HEADER}\n"
        "o1,c1,a,1,1,2026-01-01T00:00:00Z\n"
        "o2,c2,b,1,1,2026-01-01T00:01:00Z\n"
        "o3,c3,c,1,1,2026-01-01T00:02:00Z\n"
        "o1,c1,d,2,1,2026-01-01T00:00:00Z\n"
        "o2,c2,e,1,1,2026-01-01T00:01:00Z\n"
    )
    documents = orders(csv_items(text, CsvLayout(window=2)))
    assert [(d["order_id"], [i["sku"] for i in d["items"]]) for d in documents] == [
        ("o1", ["a", "d"]),
        ("o2", ["b", "e"]),
        ("o3", ["c"]),
    ]


def test_rows_beyond_the_window_are_reported_as_split_orders() -> None:
    """A row of an order already sent is not sent again as a second order of the same id."""
    text = (
        f"{HEADER}\n"
        "o1,c1,a,1,1,2026-01-01T00:00:00Z\n"
        "o2,c2,b,1,1,2026-01-01T00:01:00Z\n"
        "o1,c1,d,2,1,2026-01-01T00:00:00Z\n"
    )
    items = csv_items(text, CsvLayout(window=0))
    assert [d["order_id"] for d in orders(items)] == ["o1", "o2"]
    [split] = rejected(items)
    assert (split.reason, numbers(split)) == ("order_split", [4])
    assert "more than 0 other orders apart" in split.detail
    assert len(orders(csv_items(text, CsvLayout(window=1)))) == 2  # o1 gathers its 2nd row


def test_an_order_is_sent_whole_or_not_at_all() -> None:
    """One bad row rejects every row of its order, before and after it; other orders go."""
    text = (
        f"{HEADER}\n"
        "o1,c1,a,1,1,2026-01-01T00:00:00Z\n"
        "o1,c1,b,x,1,2026-01-01T00:00:00Z\n"
        "o1,c1,c,1,1,2026-01-01T00:00:00Z\n"
        "o2,c2,d,1,1,2026-01-01T00:00:00Z\n"
    )
    items = csv_items(text)
    assert [d["order_id"] for d in orders(items)] == ["o2"]
    [bad] = rejected(items)
    assert (bad.reason, numbers(bad)) == ("bad_field", [2, 3, 4])
    assert bad.detail == "order o1, line 3: quantity must be a non-zero integer, got 'x'"


ROW = {
    "order_id": "o1",
    "customer_id": "c1",
    "sku": "a",
    "quantity": "1",
    "unit_price": "1.5",
    "ts": "2026-01-01T00:00:00Z",
}


@pytest.mark.parametrize(
    ("changes", "reason", "detail"),
    [
        ({"customer_id": ""}, "missing_field", "customer_id (column 'customer_id') is empty"),
        ({"sku": " "}, "missing_field", "sku (column 'sku') is empty"),
        ({"unit_price": ""}, "missing_field", "unit_price (column 'unit_price') is empty"),
        ({"ts": ""}, "missing_field", "ts (column 'ts') is empty"),
        ({"quantity": "0"}, "bad_field", "quantity must be a non-zero integer, got '0'"),
        ({"quantity": "1.5"}, "bad_field", "quantity must be a non-zero integer, got '1.5'"),
        ({"quantity": ""}, "bad_field", "quantity must be a non-zero integer, got ''"),
        ({"unit_price": "-11062.06"}, "bad_field", "unit_price must be a number >= 0"),
        ({"unit_price": "1.5.0"}, "bad_field", "unit_price must be a number >= 0"),
        ({"unit_price": "NaN"}, "bad_field", "unit_price must be a number >= 0"),
        ({"unit_price": "Infinity"}, "bad_field", "unit_price must be a number >= 0"),
        ({"ts": "12/1/2010 8:26"}, "bad_timestamp", "ts must be ISO 8601, got '12/1/2010 8:26'"),
        ({"ts": "2026-02-30T00:00:00Z"}, "bad_timestamp", "ts must be ISO 8601"),
        ({"ts": "1969-12-31T23:59:59Z"}, "bad_timestamp", "ts must be from 1970 to 2099 in UTC"),
        # Year 0 and 10000 in UTC: format_ts raised on them, and the replay stopped.
        ({"ts": "0001-01-01T00:30:00+01:00"}, "bad_timestamp", "ts must be from 1970 to 2099"),
        ({"ts": "9999-12-31T23:30:00-01:00"}, "bad_timestamp", "ts must be from 1970 to 2099"),
        ({"ts": "2100-01-01T00:00:00Z"}, "bad_timestamp", "ts must be from 1970 to 2099"),
        # Over 64 bits: orjson cannot write it (a TypeError stopped the replay).
        ({"quantity": "1" + "0" * 20}, "bad_field", "quantity must be below 2^63"),
        ({"sku": "s" * 257}, "bad_field", "items[0].sku must be a non-empty string"),
        ({"customer_id": "c" * 257}, "bad_field", "customer_id must be a non-empty string"),
        ({"order_id": "o" * 257}, "bad_field", "order_id must be a non-empty string"),
    ],
)
def test_bad_rows_of_many_kinds(changes: dict[str, str], reason: str, detail: str) -> None:
    """Each bad row is rejected with a reason of the codec's kind and a detail naming the field."""
    row = {**ROW, **changes}
    text = f"{HEADER}\n" + ",".join(row[name] for name in HEADER.split(",")) + "\n"
    [item] = csv_items(text)
    assert isinstance(item, Rejected)
    assert (item.reason, numbers(item), item.skipped) == (reason, [2], False)
    assert detail in item.detail


def test_rows_that_are_not_well_formed() -> None:
    """A short or long row, a huge field, a row without order id: reported, never raised."""
    text = (
        f"{HEADER}\n"
        ",,,,,\n"  # empty cells only: a blank line, skipped
        "o1,c1,a,1\n"
        ",c1,a,1,1,2026-01-01T00:00:00Z\n"
        "o2,c2,a,1,1,2026-01-01T00:00:00Z,extra\n"
        'o3,c3,"' + "x" * 140_000 + '",1,1,2026-01-01T00:00:00Z\n'
        "o4,c4,a,1,1,2026-01-01T00:00:00Z\n"
    )
    items = csv_items(text)
    assert [d["order_id"] for d in orders(items)] == ["o4"]
    reasons = [(r.reason, numbers(r)) for r in rejected(items)]
    assert reasons == [
        ("missing_field", [4]),
        ("bad_row", [6]),
        ("bad_row", [3]),
        ("bad_row", [5]),
    ]
    details = [r.detail for r in rejected(items)]
    assert details[0] == "order_id (column 'order_id') is empty"
    assert details[1].startswith("not CSV: field larger than field limit")
    assert details[2] == "order o1, line 3: 4 fields, the header has 6"
    assert details[3] == "order o2, line 5: 7 fields, the header has 6"


def test_a_customer_change_inside_an_order_rejects_it() -> None:
    """All rows of an order must name the same customer (the key of its record)."""
    text = f"{HEADER}\no1,c1,a,1,1,2026-01-01T00:00:00Z\no1,c2,b,1,1,2026-01-01T00:00:00Z\n"
    [item] = csv_items(text)
    assert isinstance(item, Rejected)
    assert (item.reason, numbers(item)) == ("bad_field", [2, 3])
    assert "customer_id 'c2' differs from the order's 'c1'" in item.detail


def test_an_order_over_the_contracts_line_limit() -> None:
    """The codec judges the built order: 1,001 rows of one order are too_many_lines."""
    text = HEADER + "\n" + "o1,c1,a,1,1,2026-01-01T00:00:00Z\n" * 1_001
    [item] = csv_items(text)
    assert isinstance(item, Rejected)
    assert item.reason == "too_many_lines"
    assert numbers(item) == list(range(2, 1_003))


def test_bytes_not_in_the_encoding() -> None:
    """Undecodable bytes reject the row (shown with replacement); latin-1 reads every byte."""
    raw = f"{HEADER}\no1,c1,caf\xe9,1,1,2026-01-01T00:00:00Z\n".encode("latin-1")
    [item] = CsvEvents(io.BytesIO(raw), CsvLayout())
    assert isinstance(item, Rejected)
    assert (item.reason, item.lines[0].text) == (
        "bad_row",
        "o1,c1,caf\ufffd,1,1,2026-01-01T00:00:00Z",
    )
    assert "bytes that are not utf-8" in item.detail
    [good] = CsvEvents(io.BytesIO(raw), CsvLayout(encoding="latin-1"))
    assert isinstance(good, Outgoing)
    assert orjson.loads(good.value)["items"][0]["sku"] == "café"


def test_a_bad_lines_file_takes_what_the_encoding_could_not_read(tmp_path: Path) -> None:
    """An order id with a byte that is not UTF-8 is written to --bad-lines with U+FFFD (the
    escaped byte made orjson raise, and the replay stop), and the next order goes out."""
    raw = f"{HEADER}\n".encode() + b"o\xe91,c1,a,1,1,2026-01-01T00:00:00Z\n"
    raw += b"o2,c2,a,1,1,2026-01-01T00:00:00Z\n"
    summary = Summary("f.csv", "csv", "send")
    path = tmp_path / "bad.jsonl"
    with path.open("wb") as out:
        report = Reporter("f.csv", summary, io.StringIO(), out)
        items = list(CsvEvents(io.BytesIO(raw), CsvLayout()))
        for item in rejected(items):
            report(item)
    assert [d["order_id"] for d in orders(items)] == ["o2"]
    [written] = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert written["line"] == 2
    assert written["original"] == "o\ufffd1,c1,a,1,1,2026-01-01T00:00:00Z"
    assert "\ufffd" in written["detail"]


def test_a_byte_order_mark_and_quoted_line_breaks() -> None:
    """A BOM before the header is dropped; a quoted line break keeps the row's line numbers."""
    text = f'\ufeff{HEADER},category\no1,c1,a,1,1,2026-01-01T00:00:00Z,"two\nlines"\n'
    [item] = csv_items(text)
    assert isinstance(item, Outgoing)
    assert orjson.loads(item.value)["items"][0]["category"] == "two\nlines"


def test_a_bad_multi_line_row_reports_all_its_lines() -> None:
    """The original of a row with a quoted line break is every physical line of it."""
    text = f'{HEADER},category\no1,,a,1,1,2026-01-01T00:00:00Z,"two\nlines"\n'
    [item] = csv_items(text)
    assert isinstance(item, Rejected)
    assert [(line.number, line.text) for line in item.lines] == [
        (2, 'o1,,a,1,1,2026-01-01T00:00:00Z,"two'),
        (3, 'lines"'),
    ]


@pytest.mark.parametrize(
    ("text", "layout", "message"),
    [
        ("", CsvLayout(), "the file is empty"),
        ("order_id,customer_id,sku,unit_price\n", CsvLayout(), "no column 'ts' for ts"),
        (f"{HEADER}\n", UCI, "no column 'InvoiceNo' for order_id"),
        (f"{HEADER}\n", CsvLayout(columns={"category": "Description"}), "'Description'"),
    ],
)
def test_a_header_without_the_mapped_columns_is_unusable(
    text: str, layout: CsvLayout, message: str
) -> None:
    """No header, a required column missing or a mapped column absent: ReplayError at once."""
    with pytest.raises(ReplayError, match=message):
        CsvEvents(lines_of(text), layout)


# --- CSV: refunds and ids ------------------------------------------------------------------

REFUNDS = (
    f"{HEADER}\n"
    "o1,c1,a,2,10,2026-01-01T00:00:00Z\n"
    "o1,c1,b,1,5,2026-01-01T00:00:00Z\n"
    "o1,c1,a,-1,10,2026-01-03T00:00:00Z\n"
    "o2,c2,x,1,1,2026-01-04T00:00:00Z\n"
    "o1,c1,b,-1,5,2026-01-05T00:00:00Z\n"
)


def test_refund_rows_are_skipped_by_default() -> None:
    """A negative quantity is a refund row: not sent, counted as skipped (not bad)."""
    items = csv_items(REFUNDS)
    assert [d["order_id"] for d in orders(items)] == ["o1", "o2"]
    assert [(r.reason, numbers(r), r.skipped) for r in rejected(items)] == [
        ("refund", [4], True),
        ("refund", [6], True),
    ]


def test_refund_rows_become_order_refunded_when_asked() -> None:
    """--refunds emit: each run of refund rows refunds its order id, with its own event id."""
    items = csv_items(REFUNDS, CsvLayout(refunds="emit", window=0, source="s"))
    documents = orders(items)
    assert [(d["type"], d["order_id"], d["ts"]) for d in documents] == [
        ("order_completed", "o1", "2026-01-01T00:00:00Z"),
        ("order_refunded", "o1", "2026-01-03T00:00:00Z"),
        ("order_completed", "o2", "2026-01-04T00:00:00Z"),
        ("order_refunded", "o1", "2026-01-05T00:00:00Z"),
    ]
    assert documents[1]["items"] == [{"sku": "a", "quantity": 1, "unit_price": 10}]
    assert [d["event_id"] for d in documents] == [
        event_id("s", "order_completed", "o1"),
        event_id("s", "order_refunded", "o1", 1),
        event_id("s", "order_completed", "o2"),
        event_id("s", "order_refunded", "o1", 2),
    ]
    assert rejected(items) == []


def test_event_ids_are_deterministic() -> None:
    """The same file gives the same bytes again; ids differ by source, type, order and serial."""
    first = [item.value for item in sent(csv_items(REFUNDS, CsvLayout(refunds="emit")))]
    again = [item.value for item in sent(csv_items(REFUNDS, CsvLayout(refunds="emit")))]
    assert first == again
    ids = {
        event_id("a.csv", "order_completed", "o1"),
        event_id("b.csv", "order_completed", "o1"),
        event_id("a.csv", "order_refunded", "o1"),
        event_id("a.csv", "order_refunded", "o1", 2),
        event_id("a.csv", "order_completed", "o2"),
        event_id("a.csv", "order_completed", "o\x1f1"),
    }
    assert len(ids) == 6
    assert event_id("a.csv", "order_completed", "o1") == event_id("a.csv", "order_completed", "o1")
    assert all(len(i) == len("replay-") + 24 and i.startswith("replay-") for i in ids)


# --- reporting and the command ----------------------------------------------------------


def test_reporter_counts_all_shows_the_first_and_writes_every_line(tmp_path: Path) -> None:
    """Bad lines counted per line and written to --bad-lines; skipped rows only counted."""
    summary = Summary("f.csv", "csv", "send")
    err = io.StringIO()
    path = tmp_path / "bad.jsonl"
    with path.open("wb") as out:
        report = Reporter("f.csv", summary, err, out)
        report(Rejected("bad_field", "order o1: d", (Line(2, "a"), Line(3, "b"))))
        report(Rejected("refund", "skipped", (Line(4, "c"),), skipped=True))
        for number in range(5, 5 + SHOWN_BAD_LINES + 5):
            report(Rejected("not_json", "nope", (Line(number, "x"),)))
    assert summary.bad == {"bad_field": 2, "not_json": SHOWN_BAD_LINES + 5}
    assert summary.skipped == {"refund": 1}
    shown = err.getvalue().splitlines()
    assert shown[0] == "f.csv:2-3: bad_field: order o1: d"
    assert shown[1] == "f.csv:5: not_json: nope"
    assert shown[-1] == "f.csv: more bad lines are counted, not shown"
    assert len(shown) == SHOWN_BAD_LINES + 1
    written = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert written[:2] == [
        {"line": 2, "reason": "bad_field", "detail": "order o1: d", "original": "a"},
        {"line": 3, "reason": "bad_field", "detail": "order o1: d", "original": "b"},
    ]
    assert len(written) == 2 + SHOWN_BAD_LINES + 5


def test_summary_text_and_json() -> None:
    """The summary names lines, events per topic, bad lines by reason, time and rate."""
    summary = Summary("f.jsonl", "jsonl", "send", lines=10, elapsed=2.0)
    summary.sent.update({"purchase-events": 6, "cart-events": 2})
    summary.bad.update({"not_json": 1, "bad_field": 1})
    summary.skipped.update({"refund": 3})
    assert summary.render().splitlines() == [
        "replayed f.jsonl: 10 lines, 8 events sent in 2.0 s (4 events/s)",
        "  cart-events                                 2",
        "  purchase-events                             6",
        "bad lines: 2 (not sent)",
        "  not_json                                    1",
        "  bad_field                                   1",
        "skipped: 3 refund rows (not sent)",
    ]
    assert summary.to_json() == {
        "file": "f.jsonl",
        "format": "jsonl",
        "record_time": "send",
        "lines": 10,
        "events_sent": 8,
        "sent": {"cart-events": 2, "purchase-events": 6},
        "bad_lines": 2,
        "bad": {"bad_field": 1, "not_json": 1},
        "skipped": {"refund": 3},
        "elapsed_s": 2.0,
        "events_per_s": 4.0,
        "error": None,
    }


@pytest.mark.parametrize(
    ("env", "argv", "message"),
    [
        ({}, ["events.jsonl"], "STREAM_BROKER is not set"),
        ({"STREAM_BROKER": "kafka://127.0.0.1:9"}, ["missing.jsonl"], "No such file"),
        (
            {"STREAM_BROKER": "kafka://127.0.0.1:9"},
            ["orders.csv", "--columns", "order_id=InvoiceNo"],
            "no column 'InvoiceNo' for order_id",
        ),
        (
            {"STREAM_BROKER": "kafka://127.0.0.1:9", "STREAM_TOPIC_CART_EVENTS": "carts"},
            ["orders.csv", "--topic", "carts"],
            "CSV rows make purchase events",
        ),
        ({"STREAM_BROKER": "kafka://127.0.0.1:9"}, ["events.jsonl"], "127.0.0.1:9 is unusable"),
    ],
)
def test_unusable_settings_or_files_exit_1_before_connecting(
    env: dict[str, str],
    argv: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No broker setting, no file, no mapped column, no broker there: exit 1, reason on stderr."""
    for key in [k for k in os.environ if k.startswith("STREAM_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "orders.csv").write_text(f"{HEADER}\n")
    (tmp_path / "events.jsonl").write_bytes(orjson.dumps(CART) + b"\n")
    monkeypatch.chdir(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    assert main(argv, out, err) == 1
    assert message in err.getvalue()
    assert out.getvalue() == ""
