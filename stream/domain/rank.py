"""Customer rank A/B/C/D from two axes, cut at population quantiles tracked in the stream.

The axes are track record (realized value: net revenue so far) and room to
grow (predicted value: the model's CLV). A customer is *high* on an axis
when their value is at or above that axis' cut, a population quantile
(the median by default):

| rank | realized | predicted | who |
|---|---|---|---|
| A | high | high | best customers: keep them |
| B | low | high | low track record, high potential: grow them |
| C | high | low | high track record, low potential: win them back |
| D | low | low | low value on both axes |

`ValueQuantiles` tracks one axis' distribution in bounded memory: a fixed
log-spaced histogram (bin edges min_value x (1 + accuracy)^i) with a
Fenwick tree over its counts, so `add`, `remove` and `quantile` each take
O(log bins) steps. A customer whose value changes moves from one bin to
another (`move`), so the population is every customer once, at their
latest value. Error bound: `quantile(q)` returns the lower edge of the bin
that holds the exact quantile, so it is at most the exact value and within
a factor 1 + accuracy of it (values in [min_value, max_value]), and every
value in that bin compares >= it (ties with the cut are "high", as they
should be). Values below min_value count as 0 and values from the top
edge (the first edge >= max_value) up count in the top bin, whose quantile
is that edge. Memory: one counter per bin, ceil(ln(max/min) / ln(1 +
accuracy)) + 2 of them (2,548 for the defaults, 0.01 to 1e9 at 1%), plus
the Fenwick tree of as many; `to_json` writes only the non-empty ones.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, Literal

Rank = Literal["A", "B", "C", "D"]

DEFAULT_ACCURACY: Final = 0.01
DEFAULT_MIN_VALUE: Final = 0.01
DEFAULT_MAX_VALUE: Final = 1e9
DEFAULT_CUT_QUANTILE: Final = 0.5


def rank(realized: float, predicted: float, realized_cut: float, predicted_cut: float) -> Rank:
    """A high/high, B low realized but high potential, C high realized but low potential, D low/low.

    High = at or above the axis' cut.
    """
    high_realized = realized >= realized_cut
    if predicted >= predicted_cut:
        return "A" if high_realized else "B"
    return "C" if high_realized else "D"


@lru_cache(maxsize=8)
def _edges(accuracy: float, min_value: float, max_value: float) -> tuple[float, ...]:
    """Bin edges min_value (1 + accuracy)^i, i = 0.., up to the first edge >= max_value."""
    count = math.ceil(math.log(max_value / min_value) / math.log1p(accuracy)) + 1
    return tuple(min_value * (1.0 + accuracy) ** i for i in range(count))


class ValueQuantiles:
    """Streaming quantiles of non-negative values in bounded memory (module docstring).

    Mutable on purpose: a frozen copy per event would copy thousands of
    counters. Bin 0 holds values below `min_value` (reported as 0.0); bin
    i >= 1 holds [edge[i-1], edge[i]); the last bin everything from the top edge.
    """

    __slots__ = ("_counts", "_edges", "_tree", "accuracy", "max_value", "min_value", "total")

    def __init__(
        self,
        accuracy: float = DEFAULT_ACCURACY,
        min_value: float = DEFAULT_MIN_VALUE,
        max_value: float = DEFAULT_MAX_VALUE,
    ) -> None:
        if not 0.0 < accuracy < 1.0:
            raise ValueError(f"accuracy must be in (0, 1), got {accuracy!r}")
        if not 0.0 < min_value < max_value < math.inf:
            raise ValueError(
                f"need 0 < min_value < max_value < inf, got {min_value!r} and {max_value!r}"
            )
        self.accuracy = accuracy
        self.min_value = min_value
        self.max_value = max_value
        self._edges = _edges(accuracy, min_value, max_value)
        bins = len(self._edges) + 1
        self._counts = [0] * bins
        self._tree = [0] * (bins + 1)  # Fenwick tree over _counts, 1-based
        self.total = 0

    @property
    def bins(self) -> int:
        """How many counters this tracker holds (its memory bound)."""
        return len(self._counts)

    def _bin(self, x: float) -> int:
        if math.isnan(x):
            raise ValueError("value must be a number, got nan")
        return bisect_right(self._edges, x)

    def _update(self, index: int, delta: int) -> None:
        self._counts[index] += delta
        self.total += delta
        i = index + 1
        tree = self._tree
        while i < len(tree):
            tree[i] += delta
            i += i & -i

    def add(self, x: float) -> None:
        """Count one value."""
        self._update(self._bin(x), 1)

    def remove(self, x: float) -> None:
        """Uncount one value that was added before (`ValueError` if its bin is empty)."""
        index = self._bin(x)
        if self._counts[index] == 0:
            raise ValueError(f"no value like {x!r} was added")
        self._update(index, -1)

    def move(self, old: float | None, new: float) -> None:
        """A customer's value changed from `old` (None: a new customer) to `new`."""
        old_index = None if old is None else self._bin(old)
        new_index = self._bin(new)
        if old_index == new_index:
            return
        if old is not None:
            self.remove(old)
        self._update(new_index, 1)

    def quantile(self, q: float) -> float | None:
        """The q-quantile (None while empty): the lower edge of the bin that holds it.

        The exact q-quantile is the value at 0-based position floor(q n) of
        the n values sorted (the last one for q = 1), so about a share
        1 - q of the values are at or above it.
        """
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q must be in [0, 1], got {q!r}")
        if self.total == 0:
            return None
        target = min(math.floor(q * self.total), self.total - 1)
        # Fenwick descent: the largest prefix of bins holding <= target values.
        tree = self._tree
        position = 0
        remaining = target
        step = 1 << (len(tree) - 1).bit_length()
        while step:
            nxt = position + step
            if nxt < len(tree) and tree[nxt] <= remaining:
                position = nxt
                remaining -= tree[nxt]
            step >>= 1
        index = position  # 0-based bin holding the target'th value
        return 0.0 if index == 0 else self._edges[index - 1]

    def to_json(self) -> dict[str, Any]:
        """Settings and the non-empty bins as [[bin, count], ...]; `from_json` reads it back."""
        return {
            "accuracy": self.accuracy,
            "min_value": self.min_value,
            "max_value": self.max_value,
            "counts": [[i, c] for i, c in enumerate(self._counts) if c],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ValueQuantiles:
        tracker = cls(float(data["accuracy"]), float(data["min_value"]), float(data["max_value"]))
        for index, count in data["counts"]:
            tracker._counts[int(index)] = int(count)
        tracker.total = sum(tracker._counts)
        # Linear-time Fenwick build.
        tree = tracker._tree
        for i, count in enumerate(tracker._counts, start=1):
            tree[i] += count
            parent = i + (i & -i)
            if parent < len(tree):
                tree[parent] += tree[i]
        return tracker


@dataclass(slots=True)
class Ranking:
    """Both axes' trackers and the quantiles that cut them (default: medians).

    `move` keeps the population current as a customer's values change;
    `rank` ranks a customer against the cuts of the population seen so far.
    """

    realized: ValueQuantiles
    predicted: ValueQuantiles
    realized_quantile: float = DEFAULT_CUT_QUANTILE
    predicted_quantile: float = DEFAULT_CUT_QUANTILE

    @classmethod
    def create(
        cls,
        realized_quantile: float = DEFAULT_CUT_QUANTILE,
        predicted_quantile: float = DEFAULT_CUT_QUANTILE,
        accuracy: float = DEFAULT_ACCURACY,
        min_value: float = DEFAULT_MIN_VALUE,
        max_value: float = DEFAULT_MAX_VALUE,
    ) -> Ranking:
        for name, q in (
            ("realized_quantile", realized_quantile),
            ("predicted_quantile", predicted_quantile),
        ):
            if not 0.0 <= q <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {q!r}")
        return cls(
            realized=ValueQuantiles(accuracy, min_value, max_value),
            predicted=ValueQuantiles(accuracy, min_value, max_value),
            realized_quantile=realized_quantile,
            predicted_quantile=predicted_quantile,
        )

    def move(self, old: tuple[float, float] | None, new: tuple[float, float]) -> None:
        """A customer's (realized, predicted) went from `old` (None: new customer) to `new`."""
        self.realized.move(None if old is None else old[0], new[0])
        self.predicted.move(None if old is None else old[1], new[1])

    def remove(self, old: tuple[float, float]) -> None:
        """A customer tracked with `old` values leaves the population."""
        self.realized.remove(old[0])
        self.predicted.remove(old[1])

    def cuts(self) -> tuple[float, float] | None:
        """(realized cut, predicted cut), None while no customer is tracked."""
        realized_cut = self.realized.quantile(self.realized_quantile)
        predicted_cut = self.predicted.quantile(self.predicted_quantile)
        if realized_cut is None or predicted_cut is None:
            return None
        return realized_cut, predicted_cut

    def rank(self, realized: float, predicted: float) -> Rank | None:
        """The customer's rank against the current cuts (None while nobody is tracked)."""
        cuts = self.cuts()
        return None if cuts is None else rank(realized, predicted, *cuts)

    def to_json(self) -> dict[str, Any]:
        return {
            "realized": self.realized.to_json(),
            "predicted": self.predicted.to_json(),
            "realized_quantile": self.realized_quantile,
            "predicted_quantile": self.predicted_quantile,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Ranking:
        return cls(
            realized=ValueQuantiles.from_json(data["realized"]),
            predicted=ValueQuantiles.from_json(data["predicted"]),
            realized_quantile=float(data["realized_quantile"]),
            predicted_quantile=float(data["predicted_quantile"]),
        )
