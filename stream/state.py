"""How table state travels through changelog topics (Faust codecs), and how a worker holds it.

`utf8` keys are plain text; `state` values are the domain's frozen
dataclasses as orjson `[type name, fields]`, so a recovering worker gets
back the same typed values the agents wrote.

The tables keyed by customer hold every customer the worker owns, so they
hold each value packed, as the bytes its changelog record carries, but for
the customers in use (`Packed`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from sys import intern
from typing import Any, Generic, Protocol, TypeVar, cast
from weakref import WeakKeyDictionary, WeakSet

import orjson
import zstandard
from faust.serializers import codecs
from faust.stores import STORES
from faust.stores.base import SerializedStore
from faust.stores.memory import Store as MemoryStore
from faust.types import TP, EventT

from stream.domain import ltv
from stream.domain.carts import CartState
from stream.domain.contacts import ContactState
from stream.domain.cooccurrence import ItemRow
from stream.domain.ltv import CustomerState
from stream.domain.subscriptions import SubscriptionState


class _Stateful(Protocol):
    def to_json(self) -> dict[str, Any]: ...


STATE_TYPES: dict[str, Any] = {
    cls.__name__: cls
    for cls in (CustomerState, CartState, ItemRow, SubscriptionState, ContactState)
}


class Utf8Codec(codecs.Codec):
    """str <-> UTF-8 bytes; the strings read are interned.

    A customer id is the key of each table keyed by customer and of the rank
    index: interned (here, and as the event codec reads it), it is one string
    for all of them, not one each (about 60 bytes a customer a table, for an
    entry a customer in the interpreter's table of interned strings).
    """

    def _dumps(self, obj: Any) -> bytes:
        return obj.encode() if isinstance(obj, str) else bytes(obj)

    def _loads(self, data: bytes) -> str:
        return intern(data.decode())


def dump_state(obj: _Stateful) -> bytes:
    """A domain state as orjson `[type name, to_json()]` (a `state` changelog record's value)."""
    dumped = orjson.dumps([type(obj).__name__, obj.to_json()])
    # orjson's bytes keep its ~4 KiB write buffer allocated behind them (3.13);
    # a copy holds just the bytes, for a value that is kept (`Packed`).
    return bytes(memoryview(dumped))


def load_state(data: bytes) -> Any:
    """The domain state `dump_state` wrote."""
    name, fields = orjson.loads(data)
    return STATE_TYPES[name].from_json(fields)


class StateCodec(codecs.Codec):
    """Domain state dataclass <-> orjson `[type name, to_json()]`."""

    def _dumps(self, obj: _Stateful) -> bytes:
        return dump_state(obj)

    def _loads(self, data: bytes) -> Any:
        return load_state(data)


class Compressed:
    """A table's records as a worker holds them in memory: each zstd-compressed on its own.

    With a dictionary trained on the table's own records (zstd's dictionary
    training: the field names, the SKUs and ids it sees in most records), a
    record of a few hundred bytes compresses 3-5x, against 2x alone
    (`bench handlers`: a cart's 1,041 bytes to about 216). The first records
    are compressed with no dictionary; at each of TRAIN_AT records compressed
    (a customer's record counts each time it is held again: as it leaves the
    ones in use, as recovery reads it), a dictionary is trained on the
    latest ones (up to SAMPLES: a few ms to 70 ms, once per count) and used
    from then on, so the later ones share what the shop's catalog has in
    common. The counts grow fourfold from 32, so that in a worker of any
    size few records are held with no dictionary or one trained on few
    records. The dictionaries are the worker's own, in memory only: a held
    value starts with the number of the dictionary it was compressed with
    (0: none), and changelog records are never compressed (`record`). Only
    the latest dictionary compresses, so only its compressor is kept; each
    dictionary's decompressor is.

    Records start with `[` (orjson arrays), which no held value does: both
    kinds of bytes read back (`record`).
    """

    TRAIN_AT = (32, 128, 512, 2048, 8192)  # records compressed, at which a dictionary is trained
    SAMPLES = 1024  # the records before each of those counts, to train on
    DICT_BYTES = 4096  # 2-16 KiB measured alike on the bench's records; 4 KiB is in cache

    def __init__(self) -> None:
        params = zstandard.ZstdCompressionParameters.from_level(
            3, format=zstandard.FORMAT_ZSTD1_MAGICLESS, write_checksum=False, write_dict_id=False
        )
        self._params = params
        self._compressor = zstandard.ZstdCompressor(compression_params=params)
        self._decompressors = [zstandard.ZstdDecompressor(format=zstandard.FORMAT_ZSTD1_MAGICLESS)]
        self._held = 0
        self._train_at = iter(self.TRAIN_AT)
        self._next_training: int | None = next(self._train_at)
        # the values held to train on, in the SAMPLES records before a training: the
        # store holds them too, so they cost a reference each (read back to train)
        self._samples: list[bytes] = []

    @property
    def dictionaries(self) -> int:
        """The dictionaries trained so far."""
        return len(self._decompressors) - 1

    def hold(self, record: bytes) -> bytes:
        """`record` compressed with the latest dictionary, behind that dictionary's number."""
        if self._next_training is not None:
            self._held += 1
            if self._held == self._next_training:
                self._train(record)
        held = bytes((self.dictionaries,)) + self._compressor.compress(record)
        if self._next_training is not None and self._held > self._next_training - self.SAMPLES:
            self._samples.append(held)
        return held

    def record(self, held: bytes) -> bytes:
        """The record `held` holds (a record itself, uncompressed, is handed back as it is)."""
        if held[:1] == b"[":
            return held
        return self._decompressors[held[0]].decompress(memoryview(held)[1:])

    def _train(self, latest: bytes) -> None:
        """A dictionary trained on the samples held and the `latest` record, used from now on."""
        samples: list[bytes | bytearray | memoryview] = [*map(self.record, self._samples), latest]
        self._samples = []
        self._next_training = next(self._train_at, None)
        try:
            trained = zstandard.train_dictionary(self.DICT_BYTES, samples)
        except zstandard.ZstdError:  # too few samples to train on: the latest goes on
            return
        self._compressor = zstandard.ZstdCompressor(
            dict_data=trained, compression_params=self._params
        )
        self._decompressors.append(
            zstandard.ZstdDecompressor(dict_data=trained, format=zstandard.FORMAT_ZSTD1_MAGICLESS)
        )


class PackedCodec(codecs.Codec):
    """The values of a `Packed` table: a state written with `pack`; bytes read back, held.

    A changelog record is `pack(state)`. What is read back (recovery, a
    standby, a RocksDB store's reads) is handed on as bytes, for `Packed` to
    unpack when it is used (`unpack`); with `compressed` (a table on the
    in-memory store), compressed first: what the store holds.
    """

    def __init__(
        self,
        pack: Callable[[Any], bytes],
        unpack: Callable[[bytes], Any],
        compressed: Compressed | None = None,
    ) -> None:
        super().__init__()
        self._pack, self._unpack = pack, unpack
        self.compressed = compressed

    def _dumps(self, obj: Any) -> bytes:
        return self.record(obj) if isinstance(obj, bytes) else self._pack(obj)

    def _loads(self, data: bytes) -> bytes:
        return data if self.compressed is None else self.compressed.hold(data)

    def held(self, obj: Any) -> bytes:
        """What the store holds for the state `obj`, packed."""
        packed = self._pack(obj)
        return packed if self.compressed is None else self.compressed.hold(packed)

    def record(self, held: bytes) -> bytes:
        """The changelog record of a value the store holds packed."""
        return held if self.compressed is None else self.compressed.record(held)

    def unpack(self, held: bytes) -> Any:
        """The state of a value the store holds packed."""
        return self._unpack(self.record(held))


S = TypeVar("S")


class Packed(Generic[S]):
    """A table keyed by customer: its values held packed, but for those in use.

    A worker holds every customer it owns. Unpacked, a cart and contacts took
    4-5 KB each (`bench handlers` weighs them); packed, what their changelog
    record takes. The table's codec (a `PackedCodec`) packs a value, for its
    changelog record and for the store, and what recovery reads stays bytes.

    The agents `get` and `put` the values themselves. A value written is held
    as written, and so stay the `kept` values last read or written (an agent
    reads back what it wrote moments ago: a cart with each add); the one used
    longest ago is packed into the store when a newer one needs its place. So
    a value is packed when its changelog record is sent (the last write of a
    key each flush) and when it leaves the kept ones, not at each write. A
    value read as bytes is kept unpacked beside them and used while the
    store holds equal bytes (so a value that recovery replaced is unpacked
    anew). A RocksDB store holds bytes only and hands out a new bytes object
    each read, so there a value written is unpacked once at its next read.
    """

    def __init__(
        self, table: Any, put: Callable[[Any, str, S], Awaitable[None]], kept: int
    ) -> None:
        self.table = table
        self.codec = cast(PackedCodec, codecs.get_codec(table.value_serializer))
        self._put = put
        self._kept = kept
        # key -> (the bytes the store held when the value was unpacked, or None
        # when the store holds the value itself, as written; the value)
        self._in_use: OrderedDict[str, tuple[bytes | None, S]] = OrderedDict()

    def get(self, key: str) -> S | None:
        held: Any = self.table.get(key)
        if held is None:
            return None
        if not isinstance(held, bytes):  # written here, not packed since
            self._in_use.move_to_end(key)
            return cast(S, held)
        used = self._in_use.get(key)
        if used is not None and used[0] == held:  # the same object, mostly: no compare
            self._in_use.move_to_end(key)
            return used[1]
        value: S = self.codec.unpack(held)
        self._use(key, held, value)
        return value

    async def put(self, key: str, value: S) -> None:
        """Write `value` (`put`: the table write whose changelog record the codec packs)."""
        await self._put(self.table, key, value)
        self._use(key, None, value)

    def _use(self, key: str, packed: bytes | None, value: S) -> None:
        self._in_use[key] = (packed, value)
        self._in_use.move_to_end(key)
        if len(self._in_use) > self._kept:
            key, (packed, value) = self._in_use.popitem(last=False)
            store = self.table.data
            # Held as written (in memory, not since replaced by recovery): packed now.
            in_memory = not isinstance(store, SerializedStore)  # RocksDB holds bytes only
            if packed is None and in_memory and store.get(key) is value:
                store[key] = self.codec.held(value)


# app -> its customer tables' key -> partition map, and the stores sharing it
_SHARED: WeakKeyDictionary[Any, tuple[dict[Any, int], WeakSet[CustomerStore]]]
_SHARED = WeakKeyDictionary()


class CustomerStore(MemoryStore[Any, Any]):
    """Faust's in-memory store, for the tables keyed by customer: one key -> partition map.

    Faust's memory store keeps a map of each key to its partition, to drop
    the keys of partitions no longer assigned once a recovery completes. The
    tables keyed by customer (customers, carts, contacts) hold the same ids,
    written from co-partitioned topics (keyed by customer id, one partition
    count, one partitioner), so a customer's partition is the same in each:
    their stores share one map (`STREAM_STORE=memory://`, `bench handlers`:
    22-41 bytes a customer a map saved, with Python's dicts as they double).
    An entry leaves the map once none of the stores holds its key.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        partitions, stores = _SHARED.setdefault(self.app, ({}, WeakSet()))
        stores.add(self)
        self._key_partition = partitions
        self._stores = stores

    def apply_changelog_batch(
        self,
        batch: Iterable[EventT[Any]],
        to_key: Callable[[Any], Any],
        to_value: Callable[[Any], Any],
    ) -> None:
        """Faust's, but a deleted key's partition stays while another store holds the key."""
        to_delete: set[Any] = set()
        self.data.update(self._create_batch_iterator(to_delete.add, to_key, to_value, batch))
        for key in to_delete:
            if not self.data[key]:  # not written again since
                del self.data[key]
                self._release(key)

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        """Drop the keys of partitions not assigned (Faust's: the standbys' too)."""
        partitions = {partition for _, partition in active_tps}
        owners = self._key_partition
        unassigned = [
            key
            for key in self.data
            if (partition := owners.get(key)) is not None and partition not in partitions
        ]
        for key in unassigned:
            del self.data[key]
            self._release(key)

    def _release(self, key: Any) -> None:
        if not any(key in store.data for store in self._stores):
            self._key_partition.pop(key, None)


def customer_store_url() -> str:
    """The store URL of the tables keyed by customer on the in-memory store (`CustomerStore`)."""
    STORES.aliases.setdefault("customer-memory", f"{__name__}:CustomerStore")
    return "customer-memory://customers"  # a host: Faust takes a URL of a scheme alone as unset


HELD_CODECS = {  # a Packed table on the in-memory store: its codec, compressing what it holds
    "customers": ("held-customers", ltv.pack, ltv.unpack),
    "carts": ("held-carts", dump_state, load_state),
    "contacts": ("held-contacts", dump_state, load_state),
}


def register_codecs() -> None:
    """Make `utf8`, `state` and the `Packed` tables' codecs known to Faust (idempotent).

    Each table held compressed has a codec of its own (its dictionaries are
    trained on its records), registered once: a `Packed` table and Faust's
    recovery must use the same one.
    """
    codecs.register("utf8", Utf8Codec())
    codecs.register("state", StateCodec())
    codecs.register("packed-state", PackedCodec(dump_state, load_state))
    codecs.register("packed-customer", PackedCodec(ltv.pack, ltv.unpack))
    for name, pack, unpack in HELD_CODECS.values():
        if name not in codecs.codecs:
            codecs.register(name, PackedCodec(pack, unpack, Compressed()))
