"""`python -m stream replay FILE`: load historical events into Kafka at full speed.

    python -m stream replay events.jsonl
    python -m stream replay events.jsonl --topic purchase-events --bad-lines bad.jsonl
    python -m stream replay online_retail.csv --encoding latin-1 --json summary.json \\
        --columns order_id=InvoiceNo,customer_id=CustomerID,sku=StockCode \\
        --columns quantity=Quantity,unit_price=UnitPrice,ts=InvoiceDate \\
        --ts-format "%m/%d/%Y %H:%M"

STREAM_BROKER names the cluster; topic names and security are the service's
own settings (`STREAM_*`). The topics must exist (the workers, `python -m
stream dev` or deploy's kafka-init create them): a missing one stops the
replay before anything is sent, rather than letting the broker auto-create it
with the wrong partition count.

Input, one of (`--format`, default from the file name: `.csv` is CSV):

- `jsonl`: contract events, one JSON object a line, any mix of cart,
  purchase and subscription events. Each goes, byte for byte, to the input
  topic its `type` belongs to; `--topic T` sends all of them to T instead
  (when T is one of the three input topics, only that topic's types are
  valid, as its workers would judge them).
- `csv`: order lines with a header, mapped by `--columns field=Column,...`
  (repeatable; fields: order_id, customer_id, sku, unit_price, ts; optional
  quantity (default 1), category, currency; an unmapped field is read from
  the column of its own name). `ts` is ISO 8601 / RFC 3339 or `--ts-format`
  (strptime); a time without an offset is UTC; the event carries it as RFC
  3339 UTC. Rows of one order make one `order_completed`: rows are grouped by
  order id within a look-back window, an order staying open until
  `--group-window` newer orders have started (default 1,000; 0 = only
  consecutive rows; exports such as UCI Online Retail list an order's rows
  together). Orders are sent in the order they first appear; each takes the
  event time, customer and currency of its first row. A row of an order
  already sent (its rows were further apart than the window) is reported as
  `order_split` and not sent: a second event of the same order id would be
  dropped as a duplicate downstream. (The ids of sent orders are kept to
  tell: some 100 bytes per order.) An order is sent whole or not at all: one
  bad row rejects all of its rows, each counted under the first bad row's
  reason (a later bad row of the same order shows once that one is fixed).

  Rows with a negative quantity are refund rows. By default they are skipped
  and counted (UCI Online Retail's cancellations, invoice numbers `C...`,
  do not name the order they cancel). `--refunds emit` sends the rows of one
  order id as one `order_refunded` of that order id with the refunded
  quantities, for exports whose refund rows carry the order's own id.

  The event id is derived from `--source` (default: the file's name), the
  event type, the order id and, for refunds, their count for that order so
  far, so replaying the same file again repeats every id: the workers count
  an order id once and a refund's event id once.

Every event is validated with the stream's own decoders (`stream.codec`) on
the exact bytes to be sent. A line that fails is not sent; it is counted
under its reason, the first ones are printed with their line number, and
`--bad-lines FILE` writes all of them as JSON lines (`line`, `reason`,
`detail`, `original`). A bad line never stops the replay. Reasons are the
codec's (`stream.codec.REASONS`), plus `bad_row` (a CSV row that does not
parse, has the wrong number of fields or bytes not in `--encoding`) and
`order_split`; a record over the producer's size limit is `too_large`.

Records are keyed by customer_id; the value's `ts` is the event time from
the file. The Kafka record timestamp is the send time by default, because
the workers' `stream_event_to_emit_seconds` measures from it; `--record-time
event` sets it to the event time instead (a topic's time-based retention then
judges the records by their event time: last year's events may be deleted at
once).

One producer sends at full speed: acks=all, linger and 1 MiB batches, a
bounded window of unacknowledged sends, a flush at the end. A progress bar
(file bytes, so the ETA needs no pre-pass; events/s) goes to stderr unless
`--quiet` (or stderr is not a terminal); a summary goes to stdout (`--json
FILE` writes it as JSON too), also after Ctrl-C. Exit status: 0 when the file
was replayed (bad lines included), 1 when the file, the settings or the
broker are unusable or the broker failed a send, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import csv
import hashlib
import sys
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any, Final, TextIO

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from tqdm import tqdm

from stream.codec import (
    DECODERS,
    EARLIEST_TS,
    LATEST_TS,
    MAX_EVENT_BYTES,
    InvalidEvent,
    decode_event,
    encode,
)
from stream.config import Settings, SettingsError
from stream.domain.events import CartEvent, Event, PurchaseEvent, SubscriptionEvent, format_ts

SHOWN_BAD_LINES: Final = 20
LINGER_MS: Final = 50
MAX_BATCH_BYTES: Final = 1_048_576
MAX_IN_FLIGHT: Final = 20_000
PROGRESS_EVERY: Final = 1_000
MAX_QUANTITY: Final = 2**63 - 1  # what JSON carries as an integer here (orjson: 64 bits)
"""Items between two progress bar updates."""

CSV_REQUIRED: Final = ("order_id", "customer_id", "sku", "unit_price", "ts")
CSV_OPTIONAL: Final = ("quantity", "category", "currency")
KIND_OF: Final[dict[type[Event], str]] = {
    CartEvent: "cart",
    PurchaseEvent: "purchase",
    SubscriptionEvent: "subscription",
}
_BOM: Final = b"\xef\xbb\xbf"


class ReplayError(Exception):
    """The input cannot be replayed at all (no header, a mapped column missing)."""


@dataclass(frozen=True, slots=True)
class Line:
    """One line of the input file: its number (from 1) and its text, without the line end."""

    number: int
    text: str


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One validated event, ready to send: its input topic kind, key, value and event time."""

    kind: str
    key: bytes
    value: bytes
    ts: float
    line: int


@dataclass(frozen=True, slots=True)
class Rejected:
    """Input lines not sent and why. `skipped`: left out by choice (refund rows), not bad."""

    reason: str
    detail: str
    lines: tuple[Line, ...]
    skipped: bool = False


Item = Outgoing | Rejected


def event_id(source: str, event_type: str, order_id: str, serial: int = 1) -> str:
    """The deterministic event id of an event built from CSV rows.

    BLAKE2b (96 bits) of the source name, the event type, the order id and the
    event's serial number for that order id and type, as `replay-<24 hex>`.
    """
    material = "\x1f".join((source, event_type, order_id, str(serial)))
    digest = hashlib.blake2b(material.encode("utf-8", "surrogatepass"), digest_size=12)
    return f"replay-{digest.hexdigest()}"


# --- JSON lines -----------------------------------------------------------------


def jsonl_events(lines: Iterable[bytes], kind: str | None = None) -> Iterator[Item]:
    """Each non-blank line validated as it will be sent: by its `type`, or as `kind`'s topic.

    The value is the line itself (without its line end, and without a UTF-8
    byte order mark on the first line); the key its customer_id.
    """
    decode = decode_event if kind is None else DECODERS[kind]
    for number, raw in enumerate(lines, start=1):
        value = raw.rstrip(b"\r\n")
        if number == 1:
            value = value.removeprefix(_BOM)
        if not value.strip():
            continue
        try:
            event = decode(value)
        except InvalidEvent as exc:
            yield Rejected(exc.reason, exc.detail, (Line(number, _shown(value)),))
            continue
        yield Outgoing(KIND_OF[type(event)], event.customer_id.encode(), value, event.ts, number)


def _shown(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


# --- CSV order lines ----------------------------------------------------------------


def parse_columns(text: str) -> dict[str, str]:
    """`field=Column,...` -> {field: column}, fields from `CSV_REQUIRED` + `CSV_OPTIONAL`."""
    mapping: dict[str, str] = {}
    for part in text.split(","):
        name, sep, column = (piece.strip() for piece in part.partition("="))
        if not sep or not name or not column:
            raise ValueError(f"expected field=Column, got {part.strip()!r}")
        if name not in (*CSV_REQUIRED, *CSV_OPTIONAL):
            known = ", ".join((*CSV_REQUIRED, *CSV_OPTIONAL))
            raise ValueError(f"unknown field {name!r} (fields: {known})")
        if name in mapping:
            raise ValueError(f"field {name!r} is mapped twice")
        mapping[name] = column
    return mapping


def parse_time(text: str, ts_format: str | None = None) -> float:
    """ISO 8601 / RFC 3339 (or `ts_format`, strptime) -> epoch seconds; naive times are UTC."""
    moment = (
        datetime.fromisoformat(text) if ts_format is None else datetime.strptime(text, ts_format)
    )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@dataclass(frozen=True, slots=True)
class CsvLayout:
    """How CSV rows become purchase events (see the module docstring)."""

    columns: Mapping[str, str] = field(default_factory=dict)
    ts_format: str | None = None
    refunds: str = "skip"
    window: int = 1_000
    source: str = ""
    encoding: str = "utf-8"


class _RowError(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail


@dataclass(slots=True)
class _Order:
    """An order (or refund) being gathered from its rows."""

    type: str
    order_id: str
    serial: int
    lines: list[Line] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)
    customer_id: str = ""
    ts: float = 0.0
    currency: str | None = None
    error: tuple[str, str] | None = None


class _PhysicalLines:
    """Decodes the file's lines for `csv.reader` and keeps each row's original lines."""

    def __init__(self, lines: Iterable[bytes], encoding: str) -> None:
        self._lines = lines
        self._encoding = encoding
        self.pending: list[Line] = []
        self.undecodable = False

    def __iter__(self) -> Iterator[str]:
        for number, raw in enumerate(self._lines, start=1):
            if number == 1:
                raw = raw.removeprefix(_BOM)
            text = raw.decode(self._encoding, errors="surrogateescape")
            shown = text
            if not text.isascii():
                shown = raw.decode(self._encoding, errors="replace")
                self.undecodable = self.undecodable or shown != text
            self.pending.append(Line(number, shown.rstrip("\r\n")))
            yield text

    def take(self) -> tuple[tuple[Line, ...], bool]:
        """The lines read since the last call, and whether any held undecodable bytes."""
        taken, undecodable = tuple(self.pending), self.undecodable
        self.pending.clear()
        self.undecodable = False
        return taken, undecodable


class CsvEvents:
    """Purchase events from CSV order lines; the header is read (and checked) at once.

    Iterating yields `Outgoing` purchase events and `Rejected` lines; raises
    `ReplayError` here when the file has no header or a mapped column is missing.
    """

    def __init__(self, lines: Iterable[bytes], layout: CsvLayout) -> None:
        self.layout = layout
        self._physical = _PhysicalLines(lines, layout.encoding)
        self._reader = csv.reader(self._physical)
        try:
            header = next(self._reader)
        except StopIteration:
            raise ReplayError("the file is empty: a header row is expected") from None
        except csv.Error as exc:
            raise ReplayError(f"the header row is not CSV: {exc}") from None
        self._physical.take()
        self.width = len(header)
        positions = {name.strip(): i for i, name in reversed(list(enumerate(header)))}
        self.index: dict[str, int] = {}
        for name in (*CSV_REQUIRED, *CSV_OPTIONAL):
            column = layout.columns.get(name, name)
            if column in positions:
                self.index[name] = positions[column]
            elif name in CSV_REQUIRED or name in layout.columns:
                raise ReplayError(
                    f"no column {column!r} for {name} in the header "
                    f"({', '.join(repr(h) for h in header)}); map it with --columns {name}=Column"
                )
        self._open: OrderedDict[tuple[str, str], _Order] = OrderedDict()
        self._sent: set[str] = set()
        self._serials: Counter[tuple[str, str]] = Counter()

    def __iter__(self) -> Iterator[Item]:
        while True:
            try:
                row = next(self._reader)
            except StopIteration:
                break
            except csv.Error as exc:
                lines, _ = self._physical.take()
                yield Rejected("bad_row", f"not CSV: {exc}", lines)
                continue
            lines, undecodable = self._physical.take()
            if not any(cell.strip() for cell in row):
                continue  # a blank line, or one of empty cells (",,,,": spreadsheet exports)
            yield from self._row(row, lines, undecodable)
        while self._open:
            yield self._finish(self._open.popitem(last=False)[1])

    def _cell(self, row: list[str], name: str) -> str:
        position = self.index.get(name)
        return row[position].strip() if position is not None and position < len(row) else ""

    def _row(self, row: list[str], lines: tuple[Line, ...], undecodable: bool) -> Iterator[Item]:
        order_id = self._cell(row, "order_id")
        if not order_id:
            column = self.layout.columns.get("order_id", "order_id")
            yield Rejected("missing_field", f"order_id (column {column!r}) is empty", lines)
            return
        try:
            if undecodable:
                raise _RowError("bad_row", f"bytes that are not {self.layout.encoding}")
            if len(row) != self.width:
                raise _RowError("bad_row", f"{len(row)} fields, the header has {self.width}")
            quantity = self._quantity(row)
            error = None
        except _RowError as exc:
            quantity, error = 1, (exc.reason, exc.detail)
        event_type = "order_completed" if quantity > 0 else "order_refunded"
        if event_type == "order_refunded" and self.layout.refunds == "skip":
            yield Rejected("refund", "a refund row (skipped; --refunds emit sends it)", lines, True)
            return
        key = (event_type, order_id)
        order = self._open.get(key)
        if order is None:
            if event_type == "order_completed" and order_id in self._sent:
                yield Rejected(
                    "order_split",
                    f"order {order_id} was sent already: its rows are more than "
                    f"{self.layout.window} other orders apart (raise --group-window)",
                    lines,
                )
                return
            self._serials[key] += 1
            order = _Order(event_type, order_id, self._serials[key])
            self._open[key] = order
        order.lines.extend(lines)
        if error is None and order.error is None:
            try:
                self._add(order, row, abs(quantity))
            except _RowError as exc:
                error = (exc.reason, exc.detail)
        if error is not None and order.error is None:
            reason, detail = error
            order.error = (reason, f"line {lines[0].number}: {detail}")
        while len(self._open) > self.layout.window + 1:
            yield self._finish(self._open.popitem(last=False)[1])

    def _quantity(self, row: list[str]) -> int:
        if "quantity" not in self.index:
            return 1
        text = self._cell(row, "quantity")
        try:
            quantity = int(text)
        except ValueError:
            quantity = 0
        if quantity == 0:
            raise _RowError("bad_field", f"quantity must be a non-zero integer, got {text!r}")
        if abs(quantity) > MAX_QUANTITY:
            raise _RowError("bad_field", f"quantity must be below 2^63, got {text!r}")
        return quantity

    def _add(self, order: _Order, row: list[str], quantity: int) -> None:
        """Check one row and add its line to `order` (or raise `_RowError`)."""
        cells = {name: self._cell(row, name) for name in self.index}
        for name in CSV_REQUIRED:
            if not cells[name]:
                column = self.layout.columns.get(name, name)
                raise _RowError("missing_field", f"{name} (column {column!r}) is empty")
        try:
            unit_price = Decimal(cells["unit_price"])
        except InvalidOperation:
            unit_price = Decimal("NaN")
        if not unit_price.is_finite() or unit_price < 0:
            raise _RowError(
                "bad_field", f"unit_price must be a number >= 0, got {cells['unit_price']!r}"
            )
        try:
            ts = parse_time(cells["ts"], self.layout.ts_format)
        except (ValueError, OverflowError):
            expected = self.layout.ts_format or "ISO 8601"
            raise _RowError(
                "bad_timestamp", f"ts must be {expected}, got {cells['ts']!r}"
            ) from None
        if not EARLIEST_TS <= ts < LATEST_TS:  # the codec's range: format_ts fails far out
            raise _RowError(
                "bad_timestamp", f"ts must be from 1970 to 2099 in UTC, got {cells['ts']!r}"
            )
        customer_id = cells["customer_id"]
        if not order.items:
            order.customer_id, order.ts = customer_id, ts
            order.currency = cells.get("currency") or None
        elif customer_id != order.customer_id:
            raise _RowError(
                "bad_field",
                f"customer_id {customer_id!r} differs from the order's {order.customer_id!r}",
            )
        line: dict[str, Any] = {"sku": cells["sku"], "quantity": quantity, "unit_price": unit_price}
        if cells.get("category"):
            line["category"] = cells["category"]
        order.items.append(line)

    def _finish(self, order: _Order) -> Item:
        """The gathered order as a validated event, or its rows rejected."""
        if order.type == "order_completed":
            self._sent.add(order.order_id)
        lines = tuple(order.lines)
        if order.error is not None:
            reason, detail = order.error
            return Rejected(reason, f"order {order.order_id}, {detail}", lines)
        document: dict[str, Any] = {
            "event_id": event_id(self.layout.source, order.type, order.order_id, order.serial),
            "type": order.type,
            "customer_id": order.customer_id,
            "ts": format_ts(order.ts),
            "order_id": order.order_id,
            "items": order.items,
        }
        if order.currency is not None:
            document["currency"] = order.currency
        value = encode(document)
        try:
            event = DECODERS["purchase"](value)
        except InvalidEvent as exc:
            return Rejected(exc.reason, f"order {order.order_id}: {exc.detail}", lines)
        return Outgoing("purchase", event.customer_id.encode(), value, event.ts, lines[0].number)


# --- sending ---------------------------------------------------------------------


@dataclass(slots=True)
class Summary:
    """What a replay did; `to_json()` is the `--json` document."""

    file: str
    format: str
    record_time: str
    lines: int = 0
    sent: Counter[str] = field(default_factory=Counter)
    bad: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0
    error: str | None = None

    @property
    def events(self) -> int:
        return sum(self.sent.values())

    @property
    def rate(self) -> float:
        return self.events / self.elapsed if self.elapsed > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "format": self.format,
            "record_time": self.record_time,
            "lines": self.lines,
            "events_sent": self.events,
            "sent": dict(sorted(self.sent.items())),
            "bad_lines": sum(self.bad.values()),
            "bad": dict(sorted(self.bad.items())),
            "skipped": dict(sorted(self.skipped.items())),
            "elapsed_s": round(self.elapsed, 3),
            "events_per_s": round(self.rate, 1),
            "error": self.error,
        }

    def render(self) -> str:
        """The summary as a few lines of text."""
        text = [
            f"replayed {self.file}: {self.lines:,} lines, {self.events:,} events sent "
            f"in {self.elapsed:.1f} s ({self.rate:,.0f} events/s)"
        ]
        text += [f"  {topic:<32} {count:>12,}" for topic, count in sorted(self.sent.items())]
        bad = sum(self.bad.values())
        text.append(f"bad lines: {bad:,} (not sent)")
        text += [f"  {reason:<32} {count:>12,}" for reason, count in self.bad.most_common()]
        for reason, count in self.skipped.most_common():
            text.append(f"skipped: {count:,} {reason} rows (not sent)")
        if self.error is not None:
            text.append(f"stopped: {self.error}")
        return "\n".join(text)


class Counted:
    """The file's lines, counting lines and bytes as they are read (for the progress bar)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self.lines = 0
        self.bytes = 0

    def __iter__(self) -> Iterator[bytes]:
        for line in self._stream:
            self.lines += 1
            self.bytes += len(line)
            yield line


class Reporter:
    """Bad lines: counted, the first `SHOWN_BAD_LINES` printed, all written to `--bad-lines`."""

    def __init__(self, name: str, summary: Summary, err: TextIO, out: IO[bytes] | None) -> None:
        self._name = name
        self._summary = summary
        self._err = err
        self._out = out
        self._shown = 0

    def __call__(self, rejected: Rejected) -> None:
        count = self._summary.skipped if rejected.skipped else self._summary.bad
        count[rejected.reason] += len(rejected.lines)
        if rejected.skipped:
            return
        if self._shown < SHOWN_BAD_LINES:
            first, last = rejected.lines[0].number, rejected.lines[-1].number
            where = f"{first}" if first == last else f"{first}-{last}"
            tqdm.write(
                f"{self._name}:{where}: {rejected.reason}: {rejected.detail}", file=self._err
            )
        elif self._shown == SHOWN_BAD_LINES:
            tqdm.write(f"{self._name}: more bad lines are counted, not shown", file=self._err)
        self._shown += 1
        if self._out is not None:
            for line in rejected.lines:
                record = {
                    "line": line.number,
                    "reason": rejected.reason,
                    "detail": _utf8(rejected.detail),
                    "original": _utf8(line.text),
                }
                self._out.write(orjson.dumps(record) + b"\n")


def _utf8(text: str) -> str:
    """`text` with the bytes its file's encoding could not read (escaped) as U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


async def send_all(
    producer: AIOKafkaProducer,
    items: Iterable[Item],
    route: Callable[[Outgoing], str],
    summary: Summary,
    report: Callable[[Rejected], None],
    *,
    event_time: bool = False,
    max_in_flight: int = MAX_IN_FLIGHT,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Send every `Outgoing` without awaiting each one; report every `Rejected`.

    At most `max_in_flight` sends wait for their acknowledgement; then the
    oldest is awaited. A send the broker fails stops the replay
    (`summary.error`); what was already sent is awaited and counted.
    """
    in_flight: deque[tuple[asyncio.Future[Any], Outgoing, str]] = deque()
    queued = 0

    async def settle(entry: tuple[asyncio.Future[Any], Outgoing, str]) -> None:
        future, item, topic = entry
        try:
            await future
        except MessageSizeTooLargeError as exc:
            report(Rejected("too_large", str(exc), (Line(item.line, _shown(item.value)),)))
        else:
            summary.sent[topic] += 1

    try:
        for item in items:
            if isinstance(item, Rejected):
                report(item)
                continue
            topic = route(item)
            timestamp_ms = round(item.ts * 1000) if event_time else None
            try:
                future = await producer.send(
                    topic, item.value, key=item.key, timestamp_ms=timestamp_ms
                )
            except MessageSizeTooLargeError as exc:
                report(Rejected("too_large", str(exc), (Line(item.line, _shown(item.value)),)))
                continue
            in_flight.append((future, item, topic))
            if len(in_flight) > max_in_flight:
                await settle(in_flight.popleft())
            queued += 1
            if progress is not None and queued % PROGRESS_EVERY == 0:
                progress(queued)
        await producer.flush()
        while in_flight:
            await settle(in_flight.popleft())
    except KafkaError as exc:
        summary.error = f"the broker failed a send: {exc!r}"
        results = await asyncio.gather(*(f for f, _, _ in in_flight), return_exceptions=True)
        for result, (_, _, topic) in zip(results, in_flight, strict=True):
            if not isinstance(result, BaseException):
                summary.sent[topic] += 1
    if progress is not None:
        progress(queued)


# --- command line -------------------------------------------------------------------


def _columns(text: str) -> dict[str, str]:
    try:
        return parse_columns(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _encoding(name: str) -> str:
    """A text encoding whose line break is the byte `\n`: the file is read a line at a time."""
    try:
        info = codecs.lookup(name)
    except LookupError:
        raise argparse.ArgumentTypeError(f"unknown encoding {name!r}") from None
    encoder = info.incrementalencoder()
    encoder.encode("a")  # past a byte order mark (utf-8-sig writes one first)
    if not getattr(info, "_is_text_encoding", True) or encoder.encode("\n") != b"\n":
        raise argparse.ArgumentTypeError(
            f"{name!r} is not an encoding that replay reads a line at a time "
            "(UTF-16 and UTF-32 files: convert them to UTF-8 first)"
        )
    return info.name


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}")
        return value

    return parse


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m stream replay",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", type=Path, help="JSON lines of contract events, or CSV")
    parser.add_argument(
        "--format", choices=("jsonl", "csv"), help="default: csv for *.csv, else jsonl"
    )
    parser.add_argument("--topic", help="send every event to this topic (default: by type)")
    parser.add_argument(
        "--columns",
        type=_columns,
        action="append",
        default=[],
        help="CSV: field=Column,... (repeatable; see above)",
    )
    parser.add_argument("--ts-format", help="CSV: strptime format of ts (default ISO 8601)")
    parser.add_argument(
        "--encoding",
        type=_encoding,
        default="utf-8",
        help="CSV: text encoding (default utf-8; e.g. latin-1)",
    )
    parser.add_argument(
        "--refunds",
        choices=("skip", "emit"),
        default="skip",
        help="CSV rows with a negative quantity: skip them (default) or send order_refunded",
    )
    parser.add_argument(
        "--group-window",
        type=_at_least(0),
        default=1_000,
        help="CSV: newer orders an order's rows may be apart (default 1000)",
    )
    parser.add_argument("--source", help="CSV: name event ids derive from (default: file name)")
    parser.add_argument(
        "--record-time",
        choices=("send", "event"),
        default="send",
        help="Kafka record timestamp: send time (default) or the event's ts",
    )
    parser.add_argument(
        "--max-in-flight",
        type=_at_least(1),
        default=MAX_IN_FLIGHT,
        help=f"sends awaiting acknowledgement at most (default {MAX_IN_FLIGHT})",
    )
    parser.add_argument("--bad-lines", type=Path, help="write every bad line here (JSON lines)")
    parser.add_argument("--json", type=Path, help="write the summary here as JSON too")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    columns: dict[str, str] = {}
    for mapping in args.columns:
        twice = columns.keys() & mapping.keys()
        if twice:
            parser.error(f"--columns: field {min(twice)!r} is mapped twice")
        columns.update(mapping)
    args.columns = columns
    return args


def main(argv: Sequence[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the command; 0 when the file was replayed (bad lines or not), 1 when it could not be."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    args = parse_args(argv)
    try:
        settings = Settings.from_env()
        bootstrap = settings.bootstrap_servers
    except SettingsError as exc:
        print(f"replay: {exc}", file=err)
        return 1
    try:
        return asyncio.run(replay(args, settings, bootstrap, out, err))
    except KeyboardInterrupt:
        return 130
    except ReplayError as exc:
        print(f"replay: {args.file}: {exc}", file=err)
        return 1
    except OSError as exc:
        print(f"replay: {exc}", file=err)
        return 1


async def replay(
    args: argparse.Namespace, settings: Settings, bootstrap: list[str], out: TextIO, err: TextIO
) -> int:
    """Replay `args.file` (see the module docstring); the exit status."""
    from stream.kafka import client_security  # imports faust: only once the input is usable

    topics = settings.topics
    kinds = {"cart": topics.cart, "purchase": topics.purchase, "subscription": topics.subscription}
    forced = {name: kind for kind, name in kinds.items()}.get(args.topic) if args.topic else None
    file_format = args.format or ("csv" if args.file.suffix.lower() == ".csv" else "jsonl")
    if file_format == "csv" and forced not in (None, "purchase"):
        raise ReplayError(f"CSV rows make purchase events: --topic {args.topic} takes none")
    summary = Summary(str(args.file), file_format, args.record_time)
    with args.file.open("rb") as stream:
        size = args.file.stat().st_size
        counted = Counted(stream)
        items: Iterable[Item]
        if file_format == "csv":
            layout = CsvLayout(
                columns=args.columns,
                ts_format=args.ts_format,
                refunds=args.refunds,
                window=args.group_window,
                source=args.source or args.file.name,
                encoding=args.encoding,
            )
            items = CsvEvents(counted, layout)
        else:
            items = jsonl_events(counted, forced)
        wanted = [args.topic] if args.topic else [kinds["purchase"]]
        if file_format == "jsonl" and not args.topic:
            wanted = list(kinds.values())
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            linger_ms=LINGER_MS,
            max_batch_size=MAX_BATCH_BYTES,
            max_request_size=MAX_EVENT_BYTES + 65_536,
            **client_security(settings.security),
        )
        try:
            await producer.start()
            existing = set((await producer.client.fetch_all_metadata()).topics())
        except KafkaError as exc:
            await producer.stop()
            print(f"replay: the broker at {','.join(bootstrap)} is unusable: {exc!r}", file=err)
            return 1
        missing = [name for name in wanted if name not in existing]
        if missing:
            await producer.stop()
            print(f"replay: no topic {', '.join(missing)} on the broker; create it first", file=err)
            return 1
        bad_out = args.bad_lines.open("wb") if args.bad_lines else None
        bar = tqdm(
            total=size,
            desc=args.file.name,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            file=err,
            disable=True if args.quiet else None,
            mininterval=0.5,
        )
        started = time.perf_counter()

        def progress(queued: int) -> None:
            bar.update(counted.bytes - bar.n)
            rate = queued / max(time.perf_counter() - started, 1e-9)
            bar.set_postfix_str(f"{queued:,} events, {rate:,.0f} events/s", refresh=False)

        try:
            await send_all(
                producer,
                items,
                lambda item: args.topic or kinds[item.kind],
                summary,
                Reporter(args.file.name, summary, err, bad_out),
                event_time=args.record_time == "event",
                max_in_flight=args.max_in_flight,
                progress=progress,
            )
        except asyncio.CancelledError:  # Ctrl-C: the summary says how far it got
            summary.error = "interrupted (events sent = acknowledged so far)"
            raise
        finally:
            bar.close()
            await producer.stop()
            if bad_out is not None:
                bad_out.close()
            summary.elapsed = time.perf_counter() - started
            summary.lines = counted.lines
            print(summary.render(), file=out)
            if args.json is not None:
                document = orjson.dumps(summary.to_json(), option=orjson.OPT_INDENT_2)
                args.json.write_bytes(document + b"\n")
    return 0 if summary.error is None else 1
