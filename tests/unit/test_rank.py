"""stream.domain.rank: A/B/C/D from realized and predicted value, cut at streaming quantiles."""

from __future__ import annotations

import math

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.domain.rank import Ranking, ValueQuantiles, rank

# accuracy 0.5 from 1: edges 1, 1.5, 2.25, 3.375, 5.0625, 7.59375, ... (x 1.5 each)
COARSE = {"accuracy": 0.5, "min_value": 1.0, "max_value": 100.0}


def tracker(*values: float, **settings: float) -> ValueQuantiles:
    quantiles = ValueQuantiles(**(settings or COARSE))
    for value in values:
        quantiles.add(value)
    return quantiles


@pytest.mark.parametrize(
    ("realized", "predicted", "expected"),
    [
        (500.0, 900.0, "A"),  # high track record, high potential
        (10.0, 900.0, "B"),  # low track record, high potential
        (500.0, 5.0, "C"),  # high track record, low potential
        (10.0, 5.0, "D"),  # low on both
        (100.0, 50.0, "A"),  # at the cut counts as high
        (99.99, 50.0, "B"),
        (100.0, 49.99, "C"),
    ],
)
def test_rank_quadrants(realized: float, predicted: float, expected: str) -> None:
    """High = at or above the cut (here realized 100, predicted 50) on each axis."""
    assert rank(realized, predicted, 100.0, 50.0) == expected


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (0.0, 1.0),  # position 0: 1 lies in [1, 1.5)
        (0.25, 1.5),  # position 1: 2 lies in [1.5, 2.25)
        (0.5, 2.25),  # position 2: 3 lies in [2.25, 3.375)
        (0.74, 2.25),  # position floor(2.96) = 2
        (0.75, 3.375),  # position 3: 4 lies in [3.375, 5.0625)
        (1.0, 3.375),  # clamped to the last value
    ],
)
def test_quantile_is_the_lower_edge_of_the_bin_holding_it(q: float, expected: float) -> None:
    """quantile(q) is the lower edge of the bin holding the value at sorted position floor(q n)."""
    assert tracker(3.0, 1.0, 4.0, 2.0).quantile(q) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.0, 0.0), (0.999, 0.0), (-5.0, 0.0), (1.0, 1.0), (1e6, 1.5**12), (math.inf, 1.5**12)],
)
def test_values_outside_the_range(value: float, expected: float) -> None:
    """Below min_value counts as 0; from the top edge (1.5^12, the first >= 100) up, as it."""
    assert tracker(value).quantile(0.5) == expected


def test_empty_tracker_has_no_quantile() -> None:
    """No value, no quantile."""
    assert ValueQuantiles().quantile(0.5) is None


@pytest.mark.parametrize("q", [-0.1, 1.5, math.nan])
def test_quantile_rejects_q_outside_zero_one(q: float) -> None:
    """q is a fraction."""
    with pytest.raises(ValueError, match="q must be in"):
        tracker(1.0).quantile(q)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"accuracy": 0.0}, "accuracy must be in"),
        ({"accuracy": 1.0}, "accuracy must be in"),
        ({"min_value": 0.0}, "need 0 < min_value < max_value"),
        ({"min_value": 10.0, "max_value": 5.0}, "need 0 < min_value < max_value"),
        ({"max_value": math.inf}, "need 0 < min_value < max_value"),
    ],
)
def test_settings_are_checked(settings: dict[str, float], message: str) -> None:
    """Accuracy in (0, 1) and a finite positive range."""
    with pytest.raises(ValueError, match=message):
        ValueQuantiles(**settings)


def test_default_memory_bound() -> None:
    """0.01 to 1e9 at 1%: ceil(ln(1e11) / ln(1.01)) + 2 = 2,548 counters."""
    assert ValueQuantiles().bins == math.ceil(math.log(1e11) / math.log(1.01)) + 2 == 2_548


def test_remove_and_move_keep_one_count_per_customer() -> None:
    """A customer whose value changes is moved, not counted twice."""
    quantiles = tracker(1.0, 2.0, 3.0, 4.0)
    quantiles.move(4.0, 0.5)  # 0.5, 1, 2, 3
    assert (quantiles.total, quantiles.quantile(1.0)) == (4, 2.25)
    quantiles.move(None, 50.0)  # a new customer
    assert (quantiles.total, quantiles.quantile(1.0)) == (5, 1.5**9)  # 1.5^9 <= 50 < 1.5^10
    quantiles.remove(50.0)
    quantiles.move(1.0, 1.2)  # same bin: nothing changes
    assert quantiles.to_json()["counts"] == [[0, 1], [1, 1], [2, 1], [3, 1]]


def test_remove_of_a_value_never_added_fails() -> None:
    """Removing from an empty bin is a bug in the caller."""
    with pytest.raises(ValueError, match=r"no value like 7\.0 was added"):
        tracker(1.0).remove(7.0)


def test_nan_is_rejected() -> None:
    """NaN has no place in a histogram."""
    with pytest.raises(ValueError, match="nan"):
        tracker().add(math.nan)


def test_ties_at_the_cut_are_high() -> None:
    """When most customers share a value, the median is their bin's edge and they rank high."""
    quantiles = ValueQuantiles()
    for value in [19.99] * 7 + [5.0, 250.0, 600.0]:
        quantiles.add(value)
    cut = quantiles.quantile(0.5)
    assert cut is not None and cut <= 19.99 < cut * 1.01
    assert rank(19.99, 19.99, cut, cut) == "A"
    assert rank(5.0, 5.0, cut, cut) == "D"


@given(
    values=st.lists(st.floats(min_value=0.01, max_value=1e8), min_size=1, max_size=300),
    q=st.floats(min_value=0.0, max_value=1.0),
)
def test_error_bound(values: list[float], q: float) -> None:
    """Within the range, quantile(q) <= exact <= quantile(q) x (1 + accuracy)."""
    quantiles = ValueQuantiles()
    for value in values:
        quantiles.add(value)
    exact = sorted(values)[min(math.floor(q * len(values)), len(values) - 1)]
    estimate = quantiles.quantile(q)
    assert estimate is not None
    assert estimate <= exact <= estimate * 1.01 * (1 + 1e-12)


@given(
    added=st.lists(st.floats(min_value=0.0, max_value=1e10), min_size=1, max_size=100),
    data=st.data(),
)
def test_json_round_trip_keeps_counts_and_quantiles(
    added: list[float], data: st.DataObject
) -> None:
    """from_json(to_json()) through JSON bytes answers every quantile the same and updates alike."""
    quantiles = ValueQuantiles()
    for value in added:
        quantiles.add(value)
    restored = ValueQuantiles.from_json(orjson.loads(orjson.dumps(quantiles.to_json())))
    gone = data.draw(st.sampled_from(added))
    for each in (quantiles, restored):
        each.remove(gone)
        each.add(42.0)
    for q in (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0):
        assert restored.quantile(q) == quantiles.quantile(q)
    assert restored.to_json() == quantiles.to_json()


def test_ranking_tracks_both_axes() -> None:
    """Ranking moves customers on both axes and ranks against the medians of the population."""
    ranking = Ranking.create()
    assert ranking.rank(10.0, 10.0) is None  # nobody tracked yet
    customers = {"c1": (100.0, 10.0), "c2": (20.0, 400.0), "c3": (300.0, 300.0), "c4": (5.0, 1.0)}
    for values in customers.values():
        ranking.move(None, values)
    cuts = ranking.cuts()
    assert cuts is not None
    # medians: realized 5, 20, [100], 300 -> 100's bin; predicted 1, 10, [300], 400 -> 300's bin
    assert cuts[0] <= 100.0 < cuts[0] * 1.01 and cuts[1] <= 300.0 < cuts[1] * 1.01
    ranks = {c: ranking.rank(*v) for c, v in customers.items()}
    assert ranks == {"c1": "C", "c2": "B", "c3": "A", "c4": "D"}
    ranking.move(customers["c4"], (900.0, 900.0))  # c4 becomes the best customer
    assert ranking.realized.total == ranking.predicted.total == 4
    assert ranking.rank(900.0, 900.0) == "A"
    restored = Ranking.from_json(orjson.loads(orjson.dumps(ranking.to_json())))
    assert restored.cuts() == ranking.cuts()
    assert restored.to_json() == ranking.to_json()


@pytest.mark.parametrize(("realized_q", "predicted_q"), [(0.0, 1.0), (0.9, 0.1)])
def test_ranking_cut_quantiles_are_configurable(realized_q: float, predicted_q: float) -> None:
    """The cut of each axis is its own configurable quantile."""
    ranking = Ranking.create(realized_quantile=realized_q, predicted_quantile=predicted_q)
    for value in range(1, 11):
        ranking.move(None, (float(value), float(value)))
    cuts = ranking.cuts()
    assert cuts is not None
    expected = [float(1 + min(math.floor(q * 10), 9)) for q in (realized_q, predicted_q)]
    assert all(c <= e < c * 1.01 for c, e in zip(cuts, expected, strict=True))


@pytest.mark.parametrize("q", [-0.5, 2.0])
def test_ranking_rejects_bad_cut_quantile(q: float) -> None:
    """A cut quantile outside [0, 1] fails with its name."""
    with pytest.raises(ValueError, match="predicted_quantile must be in"):
        Ranking.create(predicted_quantile=q)
