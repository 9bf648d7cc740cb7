"""How table state travels through changelog topics (Faust codecs), and how a worker holds it.

`utf8` keys are plain text; `state` values are the domain's frozen
dataclasses as orjson `[type name, fields]`, so a recovering worker gets
back the same typed values the agents wrote.

The tables keyed by customer hold every customer the worker owns, so they
hold each value packed, as the bytes its changelog record carries, and an
agent unpacks the customer it works on (`Packed`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar

import orjson
from faust.serializers import codecs

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


S = TypeVar("S")


class Packed(Generic[S]):
    """A table that holds each value packed, as bytes; `get` and `put` take the unpacked value.

    Unpacked, a customer's cart and contacts took 4-5 KB each (`bench
    handlers`, which weighs them); packed they take what their changelog
    record does. The table's store and changelog hold the same bytes, so a
    recovering worker keeps them as they come. The `kept` values last read
    or written stay unpacked too, since an agent reads back what it wrote
    moments ago (a cart with each add): each kept with its bytes and used
    only while the table holds the same bytes, so a value that recovery or
    another write replaced is unpacked anew (and a RocksDB store, which hands
    out a new bytes object each read, still finds it).
    """

    def __init__(
        self,
        table: Any,
        pack: Callable[[S], bytes],
        unpack: Callable[[bytes], S],
        put: Callable[[Any, str, bytes], Awaitable[None]],
        kept: int,
    ) -> None:
        self.table = table
        self._pack, self._unpack, self._put = pack, unpack, put
        self._kept = kept
        self._unpacked: OrderedDict[str, tuple[bytes, S]] = OrderedDict()

    def get(self, key: str) -> S | None:
        packed: bytes | None = self.table.get(key)
        if packed is None:
            return None
        hit = self._unpacked.get(key)
        if hit is not None and hit[0] == packed:  # the same object, mostly: no compare
            self._unpacked.move_to_end(key)
            return hit[1]
        value = self._unpack(packed)
        self._keep(key, packed, value)
        return value

    async def put(self, key: str, value: S) -> None:
        """Write `value` packed (`put`: the table write that sends its changelog record)."""
        packed = self._pack(value)
        await self._put(self.table, key, packed)
        self._keep(key, packed, value)

    def _keep(self, key: str, packed: bytes, value: S) -> None:
        self._unpacked[key] = (packed, value)
        self._unpacked.move_to_end(key)
        if len(self._unpacked) > self._kept:
            self._unpacked.popitem(last=False)


def register_codecs() -> None:
    """Make `utf8` and `state` known to Faust (idempotent)."""
    codecs.register("utf8", Utf8Codec())
    codecs.register("state", StateCodec())
