"""stream.domain.population: rank cuts over held customers and re-scoring by event time."""

from __future__ import annotations

from stream.domain.population import Population
from stream.domain.rank import Ranking

DAY = 86_400.0


def population() -> Population:
    return Population(Ranking.create(), interval=7 * DAY)


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
