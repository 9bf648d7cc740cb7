"""stream.domain.variants: stable A/B assignment by a hash of customer_id."""

from __future__ import annotations

import pytest

from stream.domain.variants import CONTROL, TREATMENT, assign_variant

IDS = [f"customer-{n}" for n in range(10_000)]


def test_variant_names() -> None:
    """The two variants are called treatment and control."""
    assert (TREATMENT, CONTROL) == ("treatment", "control")


@pytest.mark.parametrize("share", [0.0, -0.5])
def test_no_holdout_means_everyone_is_treated(share: float) -> None:
    """A holdout share of 0 (or less) puts every customer in treatment."""
    assert {assign_variant(cid, share) for cid in IDS} == {TREATMENT}


@pytest.mark.parametrize("share", [0.05, 0.1, 0.25, 0.5, 0.9])
def test_holdout_share_is_about_right(share: float) -> None:
    """About `share` of 10,000 ids land in control (within 3 percentage points)."""
    in_control = sum(assign_variant(cid, share) == CONTROL for cid in IDS)
    assert abs(in_control / len(IDS) - share) <= 0.03


@pytest.mark.parametrize("share", [0.1, 0.5])
def test_assignment_is_stable_across_calls(share: float) -> None:
    """Assigning the same 10,000 ids twice gives the same variants."""
    first = [assign_variant(cid, share) for cid in IDS]
    assert [assign_variant(cid, share) for cid in IDS] == first
    assert set(first) == {CONTROL, TREATMENT}


@pytest.mark.parametrize(
    ("customer_id", "share", "expected"),
    [
        # SHA-256("") starts e3b0c44298fc1c14: 0xe3b0c44298fc1c14 / 2**64 = 0.88942 (about).
        ("", 0.8894, TREATMENT),
        ("", 0.8895, CONTROL),
        # SHA-256("alice") starts 2bd806c97f0e00af: 0x2bd806c97f0e00af / 2**64 = 0.17127.
        ("alice", 0.1712, TREATMENT),
        ("alice", 0.1713, CONTROL),
        ("alice", 0.5, CONTROL),
        # SHA-256("c1") starts d0f631ca1ddba8db: 0.81626.
        ("c1", 0.5, TREATMENT),
        ("c1", 0.8163, CONTROL),
    ],
)
def test_assignment_compares_the_hash_position_with_the_share(
    customer_id: str, share: float, expected: str
) -> None:
    """A customer is control exactly when the first 8 hash bytes, as a fraction, < share."""
    assert assign_variant(customer_id, share) == expected


def test_control_groups_are_nested() -> None:
    """A customer in control at some share stays in control at every larger share."""
    shares = [0.05, 0.1, 0.2, 0.5, 0.8]
    for cid in IDS[:2_000]:
        variants = [assign_variant(cid, s) for s in shares]
        first_control = variants.index(CONTROL) if CONTROL in variants else len(shares)
        assert variants == [TREATMENT] * first_control + [CONTROL] * (len(shares) - first_control)
