"""stream.state: the Faust codecs of the tables' changelogs (`utf8`, `state`), and `Packed`."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from faust.serializers import codecs
from faust.stores.memory import Store as MemoryStore
from faust.types import TP

from stream.domain.carts import CartState
from stream.domain.contacts import ContactState
from stream.domain.cooccurrence import BasketCount, ItemRow
from stream.domain.events import fingerprint
from stream.domain.ltv import CustomerState, OrderMemo, pack
from stream.domain.subscriptions import SubscriptionState
from stream.state import (
    STATE_TYPES,
    Compressed,
    CustomerStore,
    Packed,
    PackedCodec,
    StateCodec,
    Utf8Codec,
    customer_store_url,
    dump_state,
    register_codecs,
)

T0 = 1_795_425_300.0  # 2026-11-23T09:15:00Z

STATES: list[Any] = [
    CustomerState(),
    CustomerState(
        orders=3,
        # 0.10 + 0.20 + 0.0000001 - 0.05 refunded: exact, trailing zeros kept.
        revenue=Decimal("0.2500001"),
        first_ts=T0,
        last_ts=T0 + 86_400.123,
        day_values={20_780: Decimal("0.30"), 20_781: Decimal("-0.0499999")},
        recent_orders={
            fingerprint("o1"): OrderMemo(20_780, Decimal("0.10"), Decimal("0.05"), 2, 41),
            fingerprint("o2"): OrderMemo(20_780, Decimal("0.20")),
            fingerprint("o3"): OrderMemo(20_781, Decimal("1E-7"), Decimal(0), 0, 1_000_000_007),
        },
        recent_refunds=(fingerprint("r1"),),
        owned={"sku-é": T0, "b": T0 - 86_400.5},
    ),
    CartState(),
    CartState(
        cart_id="k1",
        items={"a": 2, "b": 1},
        last_ts=T0,
        seen=(fingerprint("e1"), fingerprint("e2")),
        furthest={3: 9},
        shown={"c": (2, T0 - 60.0), "d": (1, T0)},
    ),
    ItemRow(),
    ItemRow(baskets=7, pairs={"b": 3, "c": 1}, applied={0: 12, 3: 4, 11: 0}, last_ts=T0 + 0.5),
    # With decay and Space-Saving: float counts, errors, a landmark and the owning partition.
    ItemRow(
        baskets=2.125,
        pairs={"b": 0.125, "c": 2.0},
        errors={"c": 1.0},
        applied={0: 3},
        landmark=1_813_708_800.0,
        last_ts=1_813_708_800.0 + 86_400,
        partition=2,
    ),
    SubscriptionState(customer_id="c1"),
    SubscriptionState(
        customer_id="c1",
        plan_id="pro",
        price=Decimal("19.90"),
        period_days=30,
        renews_at=T0 + 30 * 86_400,
        status="cancelled",
        updated_ts=T0,
        recent_events=(fingerprint("e1"), fingerprint("e2")),
    ),
    ContactState(),
    ContactState(
        day=20_780, sent_on_day=2, offered={"sku:b": 1.5, "plan:plus": 2.5}, exposed={"b": (1.5,)}
    ),
]
IDS = [f"{type(s).__name__}-{n}" for n, s in enumerate(STATES)]


def test_state_types() -> None:
    """The state codec knows every table value type by class name."""
    assert {
        "CustomerState": CustomerState,
        "CartState": CartState,
        "ItemRow": ItemRow,
        "SubscriptionState": SubscriptionState,
        "ContactState": ContactState,
    } == STATE_TYPES


@pytest.mark.parametrize("state", STATES, ids=IDS)
def test_state_codec_round_trip(state: Any) -> None:
    """StateCodec dumps a state to [type name, fields] bytes and loads back an equal value."""
    codec = StateCodec()
    data = codec._dumps(state)
    assert isinstance(data, bytes)
    name, fields = orjson.loads(data)
    assert name == type(state).__name__
    assert fields == orjson.loads(orjson.dumps(state.to_json()))
    back = codec._loads(data)
    assert type(back) is type(state)
    assert back == state


@pytest.mark.parametrize("state", STATES, ids=IDS)
def test_registered_state_codec_round_trip(state: Any) -> None:
    """After register_codecs, faust's codecs.dumps/loads('state', ...) round-trip every state."""
    register_codecs()
    data = codecs.dumps("state", state)
    assert isinstance(data, bytes)
    assert codecs.loads("state", data) == state


def test_register_codecs_is_idempotent() -> None:
    """register_codecs can run twice; the codecs still work."""
    register_codecs()
    register_codecs()
    assert codecs.loads("utf8", codecs.dumps("utf8", "k")) == "k"


def test_customer_state_money_and_days_keep_their_types() -> None:
    """After the trip, money is Decimal with its exact digits and day keys are ints."""
    back = StateCodec()._loads(StateCodec()._dumps(STATES[1]))
    assert isinstance(back.revenue, Decimal)
    assert str(back.revenue) == "0.2500001"
    assert back.day_values == {20_780: Decimal("0.30"), 20_781: Decimal("-0.0499999")}
    assert [str(v) for v in back.day_values.values()] == ["0.30", "-0.0499999"]
    assert all(type(day) is int for day in back.day_values)
    memos = back.recent_orders
    assert memos[fingerprint("o1")] == OrderMemo(20_780, Decimal("0.10"), Decimal("0.05"), 2, 41)
    assert str(memos[fingerprint("o3")].value) == "1E-7"
    assert back.last_ts == T0 + 86_400.123
    assert back.owned == {"sku-é": T0, "b": T0 - 86_400.5}


def test_item_row_partition_keys_come_back_as_ints() -> None:
    """ItemRow.applied partition keys are ints again after the trip (JSON keys are strings)."""
    data = StateCodec()._dumps(STATES[5])
    assert orjson.loads(data)[1]["applied"] == {"0": 12, "3": 4, "11": 0}
    back = StateCodec()._loads(data)
    assert back.applied == {0: 12, 3: 4, 11: 0}
    assert all(type(k) is int for k in back.applied)


def test_cart_fingerprints_and_partitions_come_back_typed() -> None:
    """CartState's fingerprints are a tuple again after the trip, its partitions ints."""
    back = StateCodec()._loads(StateCodec()._dumps(STATES[3]))
    assert back.seen == (fingerprint("e1"), fingerprint("e2"))
    assert back.furthest == {3: 9}
    assert type(back.seen) is tuple and all(type(p) is int for p in back.furthest)


def test_cart_shown_entries_come_back_as_tuples() -> None:
    """CartState.shown entries are (times, window start) tuples again after the trip."""
    back = StateCodec()._loads(StateCodec()._dumps(STATES[3]))
    assert back.shown == {"c": (2, T0 - 60.0), "d": (1, T0)}
    assert all(type(entry) is tuple for entry in back.shown.values())
    assert all(type(entry[0]) is int for entry in back.shown.values())


def test_item_row_decay_fields_come_back() -> None:
    """ItemRow errors, landmark and partition come back as stored."""
    back = StateCodec()._loads(StateCodec()._dumps(STATES[6]))
    assert (back.errors, back.landmark, back.partition) == ({"c": 1.0}, 1_813_708_800.0, 2)


def test_states_stored_before_the_new_fields_load() -> None:
    """A CartState without `shown` and an ItemRow without errors/landmark/partition load."""
    cart = orjson.dumps(["CartState", {"cart_id": "k1", "items": {}, "last_ts": T0, "seen": {}}])
    assert StateCodec()._loads(cart) == CartState(cart_id="k1", last_ts=T0)
    row = orjson.dumps(
        ["ItemRow", {"baskets": 2, "pairs": {"b": 1}, "applied": {"0": 1}, "last_ts": T0}]
    )
    assert StateCodec()._loads(row) == ItemRow(2, {"b": 1}, applied={0: 1}, last_ts=T0)


def test_customer_state_stored_with_owned_as_a_list_loads() -> None:
    """A CustomerState stored before owned became a dict (a list of SKUs) still loads."""
    fields = CustomerState().to_json()
    fields["owned"] = ["a", "b"]
    fields["first_ts"] = T0
    back = StateCodec()._loads(orjson.dumps(["CustomerState", fields]))
    assert back.owned == {"a": T0, "b": T0}  # bought no later than the first purchase


@pytest.mark.parametrize(
    ("stored", "expected"),
    [(7, BasketCount(-1, 7, 0.0)), ([12, 7, 0.0], BasketCount(12, 7, 0.0))],
)
def test_basket_count_loads_old_and_new_forms(stored: object, expected: BasketCount) -> None:
    """N_p stored as a bare count (before versions) or as [offset, value, landmark] loads."""
    assert BasketCount.from_json(stored) == expected  # type: ignore[arg-type]


def test_subscription_price_comes_back_as_decimal() -> None:
    """SubscriptionState.price is a Decimal with its digits after the trip (19.90, not 19.9)."""
    back = StateCodec()._loads(StateCodec()._dumps(STATES[8]))
    assert str(back.price) == "19.90"


@pytest.mark.parametrize(
    ("text", "data"),
    [
        ("c1", b"c1"),
        ("", b""),
        ("sku-é", b"sku-\xc3\xa9"),  # é is C3 A9 in UTF-8
        ("0:3", b"0:3"),
    ],
)
def test_utf8_codec(text: str, data: bytes) -> None:
    """utf8 encodes str keys as UTF-8 bytes and decodes them back."""
    codec = Utf8Codec()
    assert codec._dumps(text) == data
    assert codec._loads(data) == text
    register_codecs()
    assert codecs.dumps("utf8", text) == data
    assert codecs.loads("utf8", data) == text


def test_utf8_codec_passes_bytes_through() -> None:
    """Bytes given to the utf8 codec are written as they are."""
    assert Utf8Codec()._dumps(b"raw\xff") == b"raw\xff"


class Table:
    """A table as `Packed` sees it: `get`, its store (`data`), and the writes it is given."""

    value_serializer = "packed-state"

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.written: list[tuple[str, Any]] = []

    def get(self, key: str) -> Any:
        return self.data.get(key)

    async def put(self, table: Any, key: str, value: Any) -> None:
        assert table is self
        self.data[key] = value
        self.written.append((key, value))


class DiskTable(Table):
    """A store that holds bytes only and hands out a new bytes object each read (RocksDB)."""

    def get(self, key: str) -> Any:
        held = self.data.get(key)
        return None if held is None else bytes(bytearray(held))

    async def put(self, table: Any, key: str, value: Any) -> None:
        await super().put(table, key, codecs.dumps("packed-state", value))


def packed_carts(table: Table, kept: int = 2) -> Packed[CartState]:
    register_codecs()  # the table's codec packs (stream.app registers them at import)
    return Packed(table, table.put, kept)


CART = CartState(
    cart_id="k1", items={"a": 1}, last_ts=T0, seen=(fingerprint("e1"),), furthest={0: 3}
)


def test_packed_codecs_pack_states_and_keep_bytes_as_they_are() -> None:
    """A changelog record is the packed state; what recovery reads stays those bytes."""
    register_codecs()
    assert codecs.dumps("packed-state", CART) == codecs.dumps("state", CART)
    customer = STATES[1]
    assert codecs.dumps("packed-customer", customer) == pack(customer)
    packed = codecs.dumps("packed-state", CART)
    assert codecs.dumps("packed-state", packed) is packed
    assert codecs.loads("packed-state", packed) is packed


async def test_packed_table_holds_a_value_in_use_as_written() -> None:
    """`put` writes the value itself; `get` gives it back, no packing in between."""
    table = Table()
    carts = packed_carts(table)
    assert carts.get("c1") is None
    await carts.put("c1", CART)
    assert table.written == [("c1", CART)]
    assert carts.get("c1") is CART


async def test_packed_table_unpacks_what_recovery_put_there() -> None:
    """Bytes in the store are unpacked once, and again only when they change."""
    table = Table()
    carts = packed_carts(table)
    table.data["c1"] = dump_state(CART)
    got = carts.get("c1")
    assert got == CART and carts.get("c1") is got
    recovered = CartState(cart_id="k2", items={"b": 2}, last_ts=T0 + 1)
    table.data["c1"] = dump_state(recovered)
    assert carts.get("c1") == recovered


async def test_packed_table_packs_the_value_used_longest_ago() -> None:
    """Past `kept` values in use, the one used longest ago is packed into the store."""
    table = Table()
    carts = packed_carts(table, kept=2)
    states = {f"c{n}": CartState(cart_id=f"k{n}", last_ts=T0 + n) for n in range(3)}
    await carts.put("c0", states["c0"])
    await carts.put("c1", states["c1"])
    assert carts.get("c0") is states["c0"]  # c0 used last: c1 is now the oldest
    await carts.put("c2", states["c2"])
    assert table.data["c1"] == dump_state(states["c1"])  # packed: its changelog record
    assert table.data["c0"] is states["c0"] and table.data["c2"] is states["c2"]
    again = carts.get("c1")  # unpacked anew from the store
    assert again == states["c1"] and again is not states["c1"]
    assert table.written == [(key, states[key]) for key in ("c0", "c1", "c2")]  # no new write


async def test_packed_table_on_a_store_of_bytes() -> None:
    """A store that hands out new bytes each read: unpacked once after a write, then kept."""
    table = DiskTable()
    carts = packed_carts(table, kept=1)
    await carts.put("c1", CART)
    got = carts.get("c1")
    assert got == CART and got is not CART  # the store packed it: unpacked from its bytes
    assert carts.get("c1") is got  # equal bytes: the value kept
    await carts.put("c2", CART)  # c1 leaves the values in use: the store has it as bytes
    assert table.data["c1"] == dump_state(CART)


class MemoryTable(Table):
    """A table on Faust's own in-memory store, as the workers' (`STREAM_STORE=memory://`)."""

    name = "carts"

    def __init__(self) -> None:
        super().__init__()
        self.data = MemoryStore("memory://", SimpleNamespace(conf=SimpleNamespace()), self)


async def test_packed_table_on_faust_memory_store() -> None:
    """On Faust's memory store too, the value used longest ago is packed in place."""
    table = MemoryTable()
    carts = packed_carts(table, kept=1)
    await carts.put("c0", CART)
    await carts.put("c1", CART)
    assert table.data.data == {"c0": dump_state(CART), "c1": CART}
    assert carts.get("c0") == CART


def test_utf8_keys_read_are_interned() -> None:
    """Each table keyed by customer reads the same id: one string for all of them."""
    register_codecs()
    first = codecs.loads("utf8", bytes(bytearray(b"cust-000042")))
    again = codecs.loads("utf8", bytes(bytearray(b"cust-000042")))
    assert first == "cust-000042" and first is again


def carts_of(n: int) -> list[bytes]:
    """`n` different carts' changelog records, of a small catalog, as a shop's are."""
    return [
        dump_state(
            CartState(
                cart_id=f"cart-{k:06d}",
                items={f"sku-{(k * 7 + j) % 40:03d}": 1 + j for j in range(k % 4)},
                last_ts=T0 + k,
                seen=tuple(fingerprint(f"evt-{k:06d}-{j}") for j in range(6)),
                furthest={k % 8: 100 * k + 5},
                shown={f"sku-{(k + j) % 40:03d}": (1 + j % 2, T0 + k - j) for j in range(8)},
            )
        )
        for k in range(n)
    ]


class SmallCompressed(Compressed):
    TRAIN_AT = (40, 120)
    SAMPLES = 30


def test_compressed_records_come_back_whole_before_and_after_each_dictionary() -> None:
    """Records compress alone, then with each dictionary trained on the latest ones."""
    records = carts_of(200)
    compressed = SmallCompressed()
    held = []
    for n, record in enumerate(records, start=1):
        held.append(compressed.hold(record))
        assert compressed.dictionaries == sum(n >= at for at in SmallCompressed.TRAIN_AT)
    assert [h[0] for h in held] == [0] * 39 + [1] * 80 + [2] * 81  # the dictionary used
    assert [compressed.record(h) for h in held] == records
    assert all(not h.startswith(b"[") for h in held)
    alone = sum(map(len, held[20:39])) / 19
    with_dictionary = sum(map(len, held[180:])) / 20
    assert with_dictionary < 0.7 * alone < 0.7 * sum(map(len, records[20:39])) / 19


def test_compressed_keeps_records_to_train_on_only_before_a_training() -> None:
    """It keeps values to train on only before a training, and holds them compressed."""
    compressed = SmallCompressed()
    records = carts_of(130)
    sampled = []
    for record in records:
        compressed.hold(record)
        sampled.append(len(compressed._samples))
        assert not any(sample.startswith(b"[") for sample in compressed._samples)
    # the 30 records up to the 40th (then trained), none until the 90th, 30 up to the 120th
    expected = [0] * 10 + [*range(1, 30), 0] + [0] * 50 + [*range(1, 30), 0] + [0] * 10
    assert sampled == expected


def test_compressed_goes_on_with_its_latest_dictionary_when_one_cannot_be_trained() -> None:
    """Too few records to train on (zstd refuses) leaves the latest dictionary in use."""

    class Untrainable(Compressed):
        TRAIN_AT = (3, 40)  # at 3, 3 records to train on: zstd wants about 8 or more
        SAMPLES = 30

    compressed = Untrainable()
    records = carts_of(60)
    held = [compressed.hold(record) for record in records]
    assert compressed.dictionaries == 1  # the one trained at 40
    assert [h[0] for h in held] == [0] * 39 + [1] * 21
    assert [compressed.record(h) for h in held] == records


def test_a_record_uncompressed_reads_back_as_it_is() -> None:
    """A RocksDB store's bytes, or a record held before compression, are records already."""
    record = dump_state(CART)
    assert Compressed().record(record) is record


def test_held_codec_holds_what_it_reads_compressed_and_records_it_whole() -> None:
    """Recovery reads into the store compressed; the changelog always gets the record."""
    register_codecs()
    record = dump_state(CART)
    held = codecs.loads("held-carts", record)
    assert held != record and not held.startswith(b"[")
    codec = codecs.get_codec("held-carts")
    assert isinstance(codec, PackedCodec)
    assert codec.record(held) == record
    assert codecs.dumps("held-carts", held) == record  # a held value's changelog record
    assert codecs.dumps("held-carts", CART) == record
    assert codec.record(codec.held(CART)) == record


def test_register_codecs_keeps_the_held_codecs_it_made() -> None:
    """A Packed table and Faust's recovery share one codec: its dictionaries."""
    register_codecs()
    codec = codecs.get_codec("held-contacts")
    register_codecs()
    assert codecs.get_codec("held-contacts") is codec


class HeldMemoryTable(MemoryTable):
    value_serializer = "held-carts"


async def test_packed_table_holds_what_it_packs_compressed() -> None:
    """On the in-memory store, a value packed is held compressed and unpacked back whole."""
    table = HeldMemoryTable()
    carts = packed_carts(table, kept=1)
    await carts.put("c0", CART)
    await carts.put("c1", CART)
    held = table.data.data["c0"]
    assert isinstance(held, bytes) and not held.startswith(b"[")
    assert carts.codec.record(held) == dump_state(CART)
    assert carts.get("c0") == CART


class App:
    """An app as a store sees it (weakly referenced: the stores share a map per app)."""

    conf = SimpleNamespace()


def customer_stores(app: App, *names: str) -> list[CustomerStore]:
    return [CustomerStore(customer_store_url(), app, SimpleNamespace(name=name)) for name in names]


def changelog(*records: tuple[str, bytes | None, int]) -> list[Any]:
    """Changelog events as a store's apply_changelog_batch gets them: (key, value, partition)."""
    return [
        SimpleNamespace(
            key=key.encode(), value=value, message=SimpleNamespace(partition=p, value=value)
        )
        for key, value, p in records
    ]


def test_the_customer_tables_of_an_app_share_one_key_partition_map() -> None:
    app = App()
    customers, carts, contacts = customer_stores(app, "customers", "carts", "contacts")
    assert customers._key_partition is carts._key_partition is contacts._key_partition
    (other,) = customer_stores(App(), "carts")
    assert other._key_partition is not carts._key_partition


def load(store: CustomerStore, *records: tuple[str, bytes | None, int]) -> None:
    store.apply_changelog_batch(changelog(*records), bytes.decode, lambda value: value)


async def test_a_recovery_drops_each_stores_keys_of_partitions_not_assigned() -> None:
    """Each store drops its own; the map keeps a key's partition while some store holds it."""
    app = App()
    customers, carts = customer_stores(app, "customers", "carts")
    load(customers, ("a", b"1", 0), ("b", b"1", 1))
    load(carts, ("a", b"2", 0), ("b", b"2", 1), ("c", b"2", 1))
    carts.data["new"] = b"3"  # written, its partition not told: kept, as Faust's store does
    assert customers._key_partition == {"a": 0, "b": 1, "c": 1}
    assigned = {TP("carts-changelog", 0)}
    await carts.on_recovery_completed(assigned, set())
    assert dict(carts.data) == {"a": b"2", "new": b"3"}
    assert customers._key_partition == {"a": 0, "b": 1}  # customers still holds b
    await customers.on_recovery_completed({TP("customers-changelog", 0)}, set())
    assert dict(customers.data) == {"a": b"1"}
    assert customers._key_partition == {"a": 0}


def test_a_deleted_key_keeps_its_partition_while_another_store_holds_it() -> None:
    app = App()
    customers, carts = customer_stores(app, "customers", "carts")
    load(customers, ("a", b"1", 3))
    load(carts, ("a", b"2", 3), ("a", None, 3), ("b", b"2", 2), ("b", None, 2), ("b", b"4", 2))
    assert dict(carts.data) == {"b": b"4"}  # a deleted; b deleted, then written again
    assert customers._key_partition == {"a": 3, "b": 2}
    load(customers, ("a", None, 3))
    assert customers._key_partition == {"b": 2}
