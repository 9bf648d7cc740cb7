"""The customers a worker holds: their latest values (rank cuts) and when each is due again.

Derived state, rebuilt from the customers table after a rebalance rather than
kept in a changelog. Per customer it holds (realized, predicted, due, slot) as
32 packed bytes (65 with the bytes object, against 136 for the three floats
as a tuple) and the id in one slot's list: about 100 bytes, the id string
being shared with the table's key.

- Rank cuts come from every held customer's latest (realized, predicted)
  values (`Ranking`, a fixed-size histogram per axis).
- Re-scoring by event time: a customer is due `interval` seconds (event
  time) after their last record, rounded up to a whole `slot` (a 32nd of
  the interval by default: 5.25 hours of 7 days). The customers due are
  kept by slot (a timing wheel: a list of ids a slot, a heap of the slots),
  not in a heap entry each, which took 88 bytes a customer (a tuple of the
  time and the id). `pop_due(now, limit)`
  hands out at most `limit` due customers, the earliest slot first: bounded
  work per tick, never a scan. A new record does not add a second entry:
  when the customer's slot comes up, they move on to their latest due slot.
  Each customer has one live entry, the slot their held bytes name; one a
  record moved earlier leaves a stale one behind, skipped when its slot
  comes up. A customer handed out is in no slot until scored again.
"""

from __future__ import annotations

import heapq
import math
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from stream.domain.rank import Rank, Ranking

SLOTS_AN_INTERVAL = 32  # the default slot: a 32nd of the interval (5.25 h of 7 days)
NO_SLOT = -1  # handed out, not rescored since: in no slot
_HELD = struct.Struct("3dq")  # realized, predicted, due, the slot of the customer's live entry
_pack, _unpack = _HELD.pack, _HELD.unpack


@dataclass(slots=True)
class Population:
    ranking: Ranking
    interval: float
    slot: float = 0.0  # due times are rounded up to a whole slot (0: the default)
    _held: dict[str, bytes] = field(default_factory=dict)  # _HELD
    _slots: dict[int, list[str]] = field(default_factory=dict)  # slot -> ids due at its start
    _starts: list[int] = field(default_factory=list)  # a heap of _slots' keys
    _now: list[str] = field(default_factory=list)  # due at once (schedule_now)

    def __post_init__(self) -> None:
        if self.slot <= 0.0:
            self.slot = self.interval / SLOTS_AN_INTERVAL

    def scored(self, cid: str, realized: float, predicted: float, as_of: float) -> Rank | None:
        """The customer was scored at `as_of`: move them in the ranking, due again later; rank."""
        held = self._held.get(cid)
        old = None if held is None else _unpack(held)
        self.ranking.move(None if old is None else (old[0], old[1]), (realized, predicted))
        due = as_of + self.interval
        slot = self._slot_of(due)
        if old is None or old[3] == NO_SLOT or slot < old[3]:
            self._enter(cid, slot)  # an earlier entry, if any, is left behind: stale
        else:
            slot = old[3]  # that entry comes first and moves on to `due` then
        self._held[cid] = _pack(realized, predicted, due, slot)
        return self.ranking.rank(realized, predicted)

    def schedule_now(self, cid: str) -> None:
        """A customer not held yet (a partition was assigned): score them at the next tick."""
        if cid not in self._held:
            self._now.append(cid)

    def forget(self, cid: str) -> None:
        """The customer leaves this worker (their partition was revoked)."""
        held = self._held.pop(cid, None)
        if held is not None:
            realized, predicted, _, _ = _unpack(held)
            self.ranking.remove((realized, predicted))

    def pop_due(self, now: float, limit: int) -> list[str]:
        """Customers due at `now`, the earliest slot first, at most `limit`.

        A customer handed out is in no slot until they are scored again
        (`scored`), which the caller does, forgotten, or put back (`put_back`).
        """
        handed: list[str] = []
        while len(handed) < limit and self._now:
            cid = self._now.pop()
            if cid not in self._held:  # else scored since: in a slot
                handed.append(cid)
        while len(handed) < limit and self._starts and self._starts[0] * self.slot <= now:
            start = self._starts[0]
            entries = self._slots[start]
            while entries and len(handed) < limit:
                cid = entries.pop()
                held = self._held.get(cid)
                if held is None:
                    continue  # forgotten since
                realized, predicted, due, slot = _unpack(held)
                if slot != start:
                    continue  # a stale entry: the customer's live one is elsewhere
                latest = self._slot_of(due)
                if latest > start:  # scored since: due later
                    self._enter(cid, latest)
                    self._held[cid] = _pack(realized, predicted, due, latest)
                else:
                    self._held[cid] = _pack(realized, predicted, due, NO_SLOT)
                    handed.append(cid)
            if not entries:
                heapq.heappop(self._starts)
                del self._slots[start]
        return handed

    def put_back(self, cids: Iterable[str]) -> None:
        """Customers handed out but not scored (the caller stopped): due again as they were.

        One not held was due at once (`schedule_now`): it is again.
        """
        for cid in cids:
            held = self._held.get(cid)
            if held is None:
                self._now.append(cid)
                continue
            realized, predicted, due, slot = _unpack(held)
            if slot == NO_SLOT:
                slot = self._slot_of(due)
                self._enter(cid, slot)
                self._held[cid] = _pack(realized, predicted, due, slot)

    def _slot_of(self, due: float) -> int:
        return math.ceil(due / self.slot)

    def _enter(self, cid: str, start: int) -> None:
        due = self._slots.get(start)
        if due is None:
            self._slots[start] = due = []
            heapq.heappush(self._starts, start)
        due.append(cid)

    def rank(self, realized: float, predicted: float) -> Rank | None:
        return self.ranking.rank(realized, predicted)

    def held(self) -> list[str]:
        return list(self._held)

    def __contains__(self, cid: object) -> bool:
        return cid in self._held

    def __len__(self) -> int:
        return len(self._held)
