"""How table state travels through changelog topics (Faust codecs).

`utf8` keys are plain text; `state` values are the domain's frozen
dataclasses as orjson `[type name, fields]`, so a recovering worker gets
back the same typed values the agents wrote.
"""

from __future__ import annotations

from typing import Any, Protocol

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


class StateCodec(codecs.Codec):
    """Domain state dataclass <-> orjson `[type name, to_json()]`."""

    def _dumps(self, obj: _Stateful) -> bytes:
        return orjson.dumps([type(obj).__name__, obj.to_json()])

    def _loads(self, data: bytes) -> Any:
        name, fields = orjson.loads(data)
        return STATE_TYPES[name].from_json(fields)


def register_codecs() -> None:
    """Make `utf8` and `state` known to Faust (idempotent)."""
    codecs.register("utf8", Utf8Codec())
    codecs.register("state", StateCodec())
