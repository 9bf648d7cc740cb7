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
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar, cast

import orjson
from faust.serializers import codecs
from faust.stores.base import SerializedStore

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
    """str <-> UTF-8 bytes."""

    def _dumps(self, obj: Any) -> bytes:
        return obj.encode() if isinstance(obj, str) else bytes(obj)

    def _loads(self, data: bytes) -> str:
        return data.decode()


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


class PackedCodec(codecs.Codec):
    """The values of a `Packed` table: a state written with `pack`, bytes read back as they are."""

    def __init__(self, pack: Callable[[Any], bytes]) -> None:
        super().__init__()
        self._pack = pack

    def _dumps(self, obj: Any) -> bytes:
        return obj if isinstance(obj, bytes) else self._pack(obj)

    def _loads(self, data: bytes) -> bytes:
        return data


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
        self,
        table: Any,
        unpack: Callable[[bytes], S],
        put: Callable[[Any, str, S], Awaitable[None]],
        kept: int,
    ) -> None:
        self.table = table
        self._unpack, self._put = unpack, put
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
        value = self._unpack(held)
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
                store[key] = codecs.dumps(self.table.value_serializer, value)


def register_codecs() -> None:
    """Make `utf8`, `state` and the `Packed` tables' codecs known to Faust (idempotent)."""
    codecs.register("utf8", Utf8Codec())
    codecs.register("state", StateCodec())
    codecs.register("packed-state", PackedCodec(dump_state))
    codecs.register("packed-customer", PackedCodec(ltv.pack))
