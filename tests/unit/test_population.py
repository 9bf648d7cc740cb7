"""stream.domain.population: rank cuts over held customers and re-scoring by event time."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from stream.domain.population import Population
from stream.domain.rank import Ranking

DAY = 86_400.0
HOUR = 3_600.0


def population() -> Population:
    return Population(Ranking.create(), interval=7 * DAY, slot=HOUR)


def test_customers_fall_due_one_interval_after_their_last_record() -> None:
    """Due at as_of + interval, earliest first; nothing before its time."""
    held = population()
    held.scored("late", 10.0, 5.0, as_of=2 * DAY)
    held.scored("early", 20.0, 8.0, as_of=1 * DAY)
    assert list(held.pop_due(7.9 * DAY, limit=10)) == []
    assert list(held.pop_due(8 * DAY, limit=10)) == ["early"]
    assert list(held.pop_due(100 * DAY, limit=10)) == ["late"]
    assert list(held.pop_due(100 * DAY, limit=10)) == []


def test_a_later_record_supersedes_the_earlier_due_time() -> None:
    """Scored again at day 5: due at day 12 only, not at day 7 too."""
    held = population()
    held.scored("c", 10.0, 5.0, as_of=0.0)
    held.scored("c", 12.0, 6.0, as_of=5 * DAY)
    assert list(held.pop_due(11 * DAY, limit=10)) == []
    assert list(held.pop_due(12 * DAY, limit=10)) == ["c"]


def test_work_per_call_is_bounded_by_the_limit() -> None:
    """1,000 customers due: 300 handed out per call, the rest on later calls, each once."""
    held = population()
    for n in range(1000):
        held.scored(f"c{n}", float(n), float(n), as_of=0.0)
    handed = [list(held.pop_due(DAY * 30, limit=300)) for _ in range(4)]
    assert [len(batch) for batch in handed] == [300, 300, 300, 100]
    assert sorted(cid for batch in handed for cid in batch) == sorted(f"c{n}" for n in range(1000))


def test_ranking_follows_each_customers_latest_values_and_forgetting() -> None:
    """Cuts are over the latest values of the held customers only."""
    held = population()
    held.scored("a", 100.0, 100.0, as_of=0.0)
    held.scored("b", 1.0, 1.0, as_of=0.0)
    assert held.rank(100.0, 100.0) == "A"
    held.scored("b", 1000.0, 1000.0, as_of=DAY)  # b moves up: a is now below the median
    assert held.scored("a", 100.0, 100.0, as_of=DAY) == "D"
    held.forget("b")
    assert len(held) == 1 and "b" not in held
    assert held.rank(100.0, 100.0) == "A"
    assert list(held.pop_due(100 * DAY, limit=10)) == ["a"]  # b's entry is skipped


def test_newly_assigned_customers_are_due_at_once_unless_held() -> None:
    """schedule_now: due at the next tick; a customer already held is not scheduled twice."""
    held = population()
    held.scored("known", 5.0, 5.0, as_of=10 * DAY)
    held.schedule_now("new")
    held.schedule_now("known")
    assert list(held.pop_due(0.0, limit=10)) == ["new"]
    assert sorted(held.held()) == ["known"]


def test_due_times_are_rounded_up_to_a_whole_slot() -> None:
    """A customer due inside a slot is handed out at its end, not before; one slot at a time."""
    held = population()
    held.scored("a", 1.0, 1.0, as_of=0.25 * HOUR)  # due 7 days + 15 minutes
    held.scored("b", 1.0, 1.0, as_of=0.75 * HOUR)  # the same slot
    held.scored("c", 1.0, 1.0, as_of=1.5 * HOUR)  # the next
    assert list(held.pop_due(7 * DAY + 0.9 * HOUR, limit=10)) == []
    assert sorted(held.pop_due(7 * DAY + HOUR, limit=10)) == ["a", "b"]
    assert list(held.pop_due(7 * DAY + 2 * HOUR, limit=10)) == ["c"]


def test_the_default_slot_is_a_32nd_of_the_interval() -> None:
    held = Population(Ranking.create(), interval=7 * DAY)
    assert held.slot == 7 * DAY / 32
    held.scored("a", 1.0, 1.0, as_of=0.0)
    assert list(held.pop_due(7 * DAY, limit=10)) == ["a"]  # 7 days is 32 slots exactly


def test_a_customer_is_handed_out_once_whatever_their_records() -> None:
    """Scored often, earlier and later, then forgotten and scored again: one entry each time."""
    held = population()
    for as_of in (5 * DAY, 1 * DAY, 9 * DAY, 2 * DAY, 3 * DAY):
        held.scored("c", 1.0, 1.0, as_of=as_of)
    assert list(held.pop_due(9.9 * DAY, limit=10)) == []  # due at 3 + 7 days: the latest
    assert list(held.pop_due(10 * DAY, limit=10)) == ["c"]
    assert list(held.pop_due(100 * DAY, limit=10)) == []
    held.forget("c")
    held.scored("c", 1.0, 1.0, as_of=20 * DAY)
    assert list(held.pop_due(100 * DAY, limit=10)) == ["c"]
    assert list(held.pop_due(200 * DAY, limit=10)) == []


def test_a_customer_handed_out_and_scored_again_falls_due_again() -> None:
    """Each re-score schedules the next (up to 556dbdf, one re-scored once never was again)."""
    held = population()
    held.scored("c", 1.0, 1.0, as_of=0.0)
    for week in range(1, 5):
        assert list(held.pop_due(week * 7 * DAY - HOUR, limit=10)) == []
        assert list(held.pop_due(week * 7 * DAY, limit=10)) == ["c"]
        held.scored("c", 1.0, 1.0, as_of=week * 7 * DAY)  # what the re-score tick does


operations = st.lists(
    st.one_of(
        st.tuples(st.just("score"), st.sampled_from("abcdef"), st.integers(0, 400)),
        st.tuples(st.just("forget"), st.sampled_from("abcdef"), st.just(0)),
        st.tuples(st.just("pop"), st.just(""), st.integers(0, 600)),
    ),
    max_size=60,
)


@given(operations)
def test_hands_out_exactly_the_customers_due_and_not_yet_handed_out(
    ops: list[tuple[str, str, int]],
) -> None:
    """Against a reference: a held customer is due once their slot has started, until handed out."""
    held = Population(Ranking.create(), interval=100 * HOUR, slot=10 * HOUR)
    due: dict[str, float] = {}  # the reference: due time of each customer not handed out since
    for op, cid, hours in ops:
        if op == "score":
            held.scored(cid, 1.0, 1.0, as_of=hours * HOUR)
            due[cid] = hours * HOUR + 100 * HOUR
        elif op == "forget":
            held.forget(cid)
            due.pop(cid, None)
        else:
            now = hours * HOUR
            expected = {
                c for c, at in due.items() if math.ceil(at / (10 * HOUR)) * 10 * HOUR <= now
            }
            handed = list(held.pop_due(now, limit=100))
            assert len(handed) == len(set(handed)) and set(handed) == expected
            for c in expected:
                del due[c]


def test_customers_put_back_are_due_again_as_they_were() -> None:
    """Handed out, then the caller stopped (a rebalance): put back, they are handed out again."""
    held = population()
    for cid in "abc":
        held.scored(cid, 1.0, 1.0, as_of=0.0)
    handed = list(held.pop_due(7 * DAY, limit=10))
    assert sorted(handed) == ["a", "b", "c"]
    held.scored(handed[0], 1.0, 1.0, as_of=7 * DAY)  # re-scored before the caller stopped
    held.put_back(handed[1:])
    held.put_back(handed[:1])  # scored since: not put back, due on its own later
    assert sorted(held.pop_due(7 * DAY, limit=10)) == sorted(handed[1:])
    assert list(held.pop_due(14 * DAY, limit=10)) == [handed[0]]


def test_customers_due_at_once_put_back_are_due_at_once_again() -> None:
    """A rebalance's newly assigned customers, handed out and put back, are not lost.

    The caller schedules them once per new assignment: lost here, they were
    re-scored only at their next order.
    """
    held = population()
    held.schedule_now("new")
    assert held.pop_due(0.0, limit=10) == ["new"]
    held.put_back(["new"])
    assert held.pop_due(0.0, limit=10) == ["new"]
    assert held.pop_due(0.0, limit=10) == []
