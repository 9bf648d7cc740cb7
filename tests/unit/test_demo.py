"""stream.demo: the demo shop's feed."""

from __future__ import annotations

import uuid
from itertools import islice
from typing import Any

import pytest

from stream.demo import DemoEvent, DemoFeed
from stream.dev import parse_args

ID_FIELDS = ("event_id", "order_id", "cart_id")


def feed_events(random_ids: bool) -> list[DemoEvent]:
    feed = DemoFeed(seed=3, customers=40, random_ids=random_ids)
    return [*feed.history(60), *islice(feed.live(), 400)]


def without_ids(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k not in ID_FIELDS}


def test_random_ids_change_the_ids_and_nothing_else() -> None:
    """With random_ids every event, order and cart id is a UUID (v4), each one new; the
    events are otherwise those of the serial ids, in the same order."""
    serial, random = feed_events(False), feed_events(True)
    assert [(e.topic, e.key, without_ids(e.value)) for e in serial] == [
        (e.topic, e.key, without_ids(e.value)) for e in random
    ]
    assert serial[0].value["event_id"].startswith("evt-")
    ids = [e.value[f] for e in random for f in ID_FIELDS if f in e.value]
    assert {uuid.UUID(i).version for i in ids} == {4}
    event_ids = [e.value["event_id"] for e in random]
    assert len(set(event_ids)) == len(event_ids)
    # a cart's id is the same on each of its events, as with serial ids
    carts = {e.value["cart_id"] for e in random if "cart_id" in e.value}
    assert len(carts) == len({e.value["cart_id"] for e in serial if "cart_id" in e.value})


def test_random_ids_are_the_same_for_the_same_seed() -> None:
    """A workload with random ids is reproducible: the bench's runs compare alike."""
    assert [e.value for e in feed_events(True)] == [e.value for e in feed_events(True)]


@pytest.mark.parametrize("rate", ["0", "-1", "nan", "fast"])
def test_dev_refuses_a_rate_that_is_not_above_0(rate: str) -> None:
    """`dev --rate 0` used to end the feed with a ZeroDivisionError that nothing reported,
    and the run exited 0; a rate not above 0 is a usage error now."""
    with pytest.raises(SystemExit) as stopped:
        parse_args(["--rate", rate])
    assert stopped.value.code == 2
    assert parse_args(["--rate", "0.5"]).rate == 0.5
