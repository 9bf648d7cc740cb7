"""The customers a worker holds: their latest values (rank cuts) and when each is due again.

Derived state, rebuilt from the customers table after a rebalance rather than
kept in a changelog. Per customer it holds (realized, predicted, due) as 24
packed bytes (57 with the bytes object, against 136 as a tuple of floats)
and one heap entry (due, customer id): about 135 bytes, the id string being
shared with the table's key.

- Rank cuts come from every held customer's latest (realized, predicted)
  values (`Ranking`, a fixed-size histogram per axis).
- Re-scoring by event time: a customer is due `interval` seconds (event
  time) after their last record. `pop_due(now, limit)` hands out at most
  `limit` due customers, earliest first: bounded work per tick, never a scan.
  A new record does not push a second entry: when the customer's entry
  comes up, it moves on to their latest due time. So the heap holds one
  entry per customer (two at times, when a record moved the due time
  earlier).
"""

from __future__ import annotations

import heapq
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from stream.domain.rank import Rank, Ranking

NOW = float("-inf")  # due at once: a customer of a newly owned partition
_HELD = struct.Struct("3d")  # realized, predicted, due
_pack, _unpack = _HELD.pack, _HELD.unpack


@dataclass(slots=True)
class Population:
    ranking: Ranking
    interval: float
    _held: dict[str, bytes] = field(default_factory=dict)  # _HELD
    _due: list[tuple[float, str]] = field(default_factory=list)

    def scored(self, cid: str, realized: float, predicted: float, as_of: float) -> Rank | None:
        """The customer was scored at `as_of`: move them in the ranking, due again later; rank."""
        held = self._held.get(cid)
        old = None if held is None else _unpack(held)
        self.ranking.move(None if old is None else (old[0], old[1]), (realized, predicted))
        due = as_of + self.interval
        self._held[cid] = _pack(realized, predicted, due)
        if old is None or due < old[2]:
            heapq.heappush(self._due, (due, cid))
        # else: the entry already in the heap comes first and moves on to `due` then
        return self.ranking.rank(realized, predicted)

    def schedule_now(self, cid: str) -> None:
        """A customer not held yet (a partition was assigned): score them at the next tick."""
        if cid not in self._held:
            heapq.heappush(self._due, (NOW, cid))

    def forget(self, cid: str) -> None:
        """The customer leaves this worker (their partition was revoked)."""
        held = self._held.pop(cid, None)
        if held is not None:
            realized, predicted, _ = _unpack(held)
            self.ranking.remove((realized, predicted))

    def pop_due(self, now: float, limit: int) -> Iterator[str]:
        """Customers due at `now`, earliest first, at most `limit`."""
        handed = 0
        while handed < limit and self._due and self._due[0][0] <= now:
            due, cid = heapq.heappop(self._due)
            held = self._held.get(cid)
            if held is None:
                if due != NOW:
                    continue  # forgotten since
            elif (latest := _unpack(held)[2]) > due:
                heapq.heappush(self._due, (latest, cid))  # scored since: due later
                continue
            elif latest < due:
                continue  # a stale entry behind the customer's earlier one
            handed += 1
            yield cid

    def rank(self, realized: float, predicted: float) -> Rank | None:
        return self.ranking.rank(realized, predicted)

    def held(self) -> list[str]:
        return list(self._held)

    def __contains__(self, cid: object) -> bool:
        return cid in self._held

    def __len__(self) -> int:
        return len(self._held)
