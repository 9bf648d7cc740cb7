"""stream.evaluate: the fixed customer split and the replay that counts hits."""

from __future__ import annotations

from stream.evaluate import HALVES, Dataset, half, replay


def test_half_is_fixed_and_splits_customers() -> None:
    """half() depends on the id alone, and both halves get a fair share of customers."""
    assert [half(f"u{n}") for n in range(50)] == [half(f"u{n}") for n in range(50)]
    counts = {which: sum(half(str(n)) == which for n in range(1000)) for which in HALVES}
    assert 400 < counts["validation"] < 600
    assert counts["validation"] + counts["test"] == 1000


def test_replay_counts_hits_on_items_new_to_the_customer_added_later() -> None:
    """A cart add is a hit when its top 10 holds a novel item the same cart adds later."""
    # u1 owns a, b; last order adds a, c, d: after [a], c and d are novel and later (1 chance);
    # after [a, c], d (2); after [a, c, d], nothing is left (not counted). u2 has one order.
    data = Dataset({"u1": [["a", "b"], ["a", "c", "d"]], "u2": [["a"]]})
    result = replay(
        data,
        {
            "d_first": lambda cart, owned: ["d"],
            "c_only": lambda cart, owned: ["c"],
            "owned": lambda cart, owned: sorted(owned),
        },
    )
    which = half("u1")
    assert result.adds == 3
    assert result.possible == {which: 2}
    assert result.hits["d_first"][which] == 2
    assert result.hits["c_only"][which] == 1  # c is in the cart at the second add
    assert result.hits["owned"][which] == 0
    assert result.rate("c_only") == 0.5
    assert result.rate("c_only", which) == 0.5
