"""stream.domain.carts: the open cart from cart-events, with duplicate detection."""

from __future__ import annotations

import random

import orjson
import pytest

from stream.domain.carts import (
    MAX_CART_ITEMS,
    MAX_REMEMBERED_EVENTS,
    CartState,
    Position,
    apply_cart_event,
)
from stream.domain.events import CartEvent, fingerprint

T0 = 1_795_425_300.0  # 2026-11-23T09:15:00Z


def add(
    event_id: str, sku: str, quantity: int = 1, cart_id: str | None = "k1", ts: float = T0
) -> CartEvent:
    return CartEvent(event_id, "item_added", "c1", ts, sku, quantity, cart_id)


def remove(
    event_id: str, sku: str, quantity: int = 1, cart_id: str | None = "k1", ts: float = T0
) -> CartEvent:
    return CartEvent(event_id, "item_removed", "c1", ts, sku, quantity, cart_id)


def clear(event_id: str, cart_id: str | None = "k1", ts: float = T0) -> CartEvent:
    return CartEvent(event_id, "cart_cleared", "c1", ts, None, 1, cart_id)


def fold(*events: CartEvent) -> CartState:
    state: CartState | None = None
    for n, event in enumerate(events):
        state, applied = apply_cart_event(state, event, (0, n))
        assert applied is True
    assert state is not None
    return state


@pytest.mark.parametrize(
    ("events", "items"),
    [
        ([add("e1", "a")], {"a": 1}),
        ([add("e1", "a", 2)], {"a": 2}),
        # 2 + 3 = 5
        ([add("e1", "a", 2), add("e2", "a", 3)], {"a": 5}),
        ([add("e1", "a"), add("e2", "b", 4)], {"a": 1, "b": 4}),
        # 5 - 2 = 3
        ([add("e1", "a", 5), remove("e2", "a", 2)], {"a": 3}),
        # 2 - 2 = 0: the SKU leaves the cart.
        ([add("e1", "a", 2), remove("e2", "a", 2)], {}),
        # 2 - 5 < 0: the SKU leaves the cart, never negative.
        ([add("e1", "a", 2), add("e2", "b"), remove("e3", "a", 5)], {"b": 1}),
        # Removing what is not in the cart changes no quantity.
        ([add("e1", "a"), remove("e2", "z")], {"a": 1}),
        ([remove("e1", "z")], {}),
        ([add("e1", "a"), add("e2", "b"), clear("e3")], {}),
        # Adds after a clear start from empty.
        ([add("e1", "a", 3), clear("e2"), add("e3", "a")], {"a": 1}),
    ],
)
def test_quantities(events: list[CartEvent], items: dict[str, int]) -> None:
    """Adds and removals change quantities; cart_cleared empties the cart."""
    state = fold(*events)
    assert state.items == items
    assert state.cart_id == "k1"


def prints(*event_ids: str) -> tuple[int, ...]:
    return tuple(fingerprint(event_id) for event_id in event_ids)


def test_first_event_records_cart_id_ts_and_position() -> None:
    """The first event sets cart_id, last_ts, its id's fingerprint and its partition's offset."""
    state, applied = apply_cart_event(None, add("e1", "a", 2, ts=T0), (3, 17))
    assert applied is True
    assert state == CartState(
        cart_id="k1", items={"a": 2}, last_ts=T0, seen=prints("e1"), furthest={3: 17}
    )


def test_default_position() -> None:
    """Without a position, the cart records (-1, -1)."""
    state, _ = apply_cart_event(None, add("e1", "a"))
    assert (state.seen, state.furthest) == (prints("e1"), {-1: -1})


def test_clear_keeps_cart_id_and_seen() -> None:
    """cart_cleared keeps the cart id and the remembered event ids."""
    state = fold(add("e1", "a"), clear("e2", ts=T0 + 5))
    assert state == CartState(
        cart_id="k1", last_ts=T0 + 5, seen=prints("e1", "e2"), furthest={0: 1}
    )


@pytest.mark.parametrize(
    ("event", "cart_id", "items"),
    [
        # A new cart id: the old cart is dropped, the add goes into the new one.
        (add("e9", "b", cart_id="k2"), "k2", {"b": 1}),
        (clear("e9", cart_id="k2"), "k2", {}),
        # A removal in a new cart removes from nothing.
        (remove("e9", "a", cart_id="k2"), "k2", {}),
        # The same cart id, or none, keeps the cart.
        (add("e9", "b", cart_id="k1"), "k1", {"a": 2, "b": 1}),
        (add("e9", "b", cart_id=None), "k1", {"a": 2, "b": 1}),
    ],
)
def test_new_cart_id_starts_a_new_cart(
    event: CartEvent, cart_id: str, items: dict[str, int]
) -> None:
    """An event with another cart_id resets the cart; one without a cart_id keeps it."""
    state = fold(add("e1", "a", 2, cart_id="k1"), event)
    assert (state.cart_id, state.items) == (cart_id, items)
    # The duplicate memory survives the reset.
    assert state.seen == prints("e1", "e9")


def test_cart_without_cart_id() -> None:
    """Events without a cart_id build a cart whose cart_id stays None."""
    state = fold(add("e1", "a", cart_id=None), add("e2", "b", cart_id=None))
    assert (state.cart_id, state.items) == (None, {"a": 1, "b": 1})


def test_last_ts_is_the_latest_event_time() -> None:
    """last_ts = max of the applied events' ts, even when an older event comes later."""
    state = fold(add("e1", "a", ts=T0 + 50), add("e2", "b", ts=T0 + 10))
    assert state.last_ts == T0 + 50
    state = fold(add("e1", "a", ts=T0 + 50), clear("e2", ts=T0 + 10))
    assert state.last_ts == T0 + 50


def test_max_cart_items() -> None:
    """A cart holds MAX_CART_ITEMS distinct SKUs; a new SKU beyond that is left out."""
    assert MAX_CART_ITEMS == 200
    full = fold(*(add(f"e{n}", f"s{n:03d}") for n in range(200)))
    assert len(full.items) == 200
    state, applied = apply_cart_event(full, add("extra", "new-sku"))
    # Applied (remembered as seen) but the cart is as it was.
    assert applied is True
    assert fingerprint("extra") in state.seen
    assert state.items == full.items
    # A SKU already in the cart can still grow: 1 + 4 = 5.
    state, _ = apply_cart_event(full, add("more", "s000", 4))
    assert state.items["s000"] == 5
    assert len(state.items) == 200
    # After a removal there is room again.
    state, _ = apply_cart_event(full, remove("rm", "s000"))
    state, _ = apply_cart_event(state, add("in", "new-sku"))
    assert state.items["new-sku"] == 1
    assert len(state.items) == 200


def test_duplicate_event_id_is_not_applied() -> None:
    """An event id seen before returns the same state and False."""
    state, _ = apply_cart_event(None, add("e1", "a", 2), (1, 10))
    again, applied = apply_cart_event(state, add("e1", "a", 2), (1, 11))
    assert applied is False
    assert again is state
    assert again.items == {"a": 2}
    assert (again.seen, again.furthest) == (prints("e1"), {1: 10})
    # The record at (1, 10) again is a redelivery; (1, 11) is another record.
    assert again.redelivered((1, 10)) is True
    assert again.redelivered((1, 11)) is False


@pytest.mark.parametrize(
    "duplicate",
    [add("e1", "b", 9), remove("e1", "a"), clear("e1"), add("e1", "a", cart_id="k2")],
)
def test_duplicate_event_id_of_any_type_is_ignored(duplicate: CartEvent) -> None:
    """A reused event id is ignored whatever the duplicate event says."""
    state, _ = apply_cart_event(None, add("e1", "a"), (0, 0))
    assert apply_cart_event(state, duplicate, (0, 1)) == (state, False)


def test_seen_evicts_the_oldest_event_ids() -> None:
    """seen keeps the last MAX_REMEMBERED_EVENTS ids; an evicted id is applied again."""
    assert MAX_REMEMBERED_EVENTS == 32
    state = fold(*(add(f"e{n}", "a") for n in range(33)))
    assert state.items == {"a": 33}
    assert len(state.seen) == 32
    assert state.seen == prints(*(f"e{n}" for n in range(1, 33)))
    assert state.furthest == {0: 32}
    # e1 is remembered, e0 is not: e0 counts again (33 + 1 = 34).
    assert apply_cart_event(state, add("e1", "a"))[1] is False
    again, applied = apply_cart_event(state, add("e0", "a"), (0, 99))
    assert applied is True
    assert again.items == {"a": 34}
    assert fingerprint("e1") not in again.seen  # the oldest, e1, makes room for e0


def test_apply_does_not_mutate_the_old_state() -> None:
    """apply_cart_event returns a new state and leaves the given one as it was."""
    state = fold(add("e1", "a"))
    apply_cart_event(state, add("e2", "a"), (0, 1))
    assert state == CartState(
        cart_id="k1", items={"a": 1}, last_ts=T0, seen=prints("e1"), furthest={0: 0}
    )


SHOWN = {"x": (2, T0 - 60.0), "y": (1, T0)}


@pytest.mark.parametrize(
    ("event", "cart_id", "items"),
    [
        (add("e9", "b"), "k1", {"a": 1, "b": 1}),  # the same cart
        (add("e9", "b", cart_id="k2"), "k2", {"b": 1}),  # a new cart
        (clear("e9"), "k1", {}),  # a clear
        (clear("e9", cart_id="k2"), "k2", {}),  # a clear with a new cart id
        (remove("e9", "a"), "k1", {}),
    ],
)
def test_shown_survives_new_carts_and_clears(
    event: CartEvent, cart_id: str, items: dict[str, int]
) -> None:
    """What was shown to the customer is kept whatever happens to the cart itself."""
    state, _ = apply_cart_event(CartState(cart_id="k1", shown=SHOWN), add("e1", "a"), (0, 0))
    state, applied = apply_cart_event(state, event, (0, 1))
    assert applied is True
    assert (state.cart_id, state.items) == (cart_id, items)
    assert state.shown == SHOWN


def test_shown_json_round_trip() -> None:
    """CartState.shown travels as lists and comes back as (int, float) tuples."""
    state = CartState(cart_id="k1", items={"a": 1}, last_ts=T0, shown=SHOWN)
    data = orjson.loads(orjson.dumps(state.to_json()))  # as it travels
    assert data["shown"] == {"x": [2, T0 - 60.0], "y": [1, T0]}
    assert CartState.from_json(data) == state


def test_from_json_without_shown() -> None:
    """A cart stored before `shown` existed loads with nothing shown."""
    data = {"cart_id": "k1", "items": {"a": 1}, "last_ts": T0, "seen": {}}
    assert CartState.from_json(data) == CartState(cart_id="k1", items={"a": 1}, last_ts=T0)


@pytest.mark.parametrize(
    ("seen", "furthest"),
    [((), {}), (prints("e1"), {0: 0}), (prints("e1", "e2"), {3: 1_000_000, 11: 2})],
)
def test_json_round_trip(seen: tuple[int, ...], furthest: dict[int, int]) -> None:
    """CartState.from_json(to_json()) gives back the fingerprints, and partitions as ints."""
    state = CartState(
        cart_id="k1", items={"a": 2, "b": 1}, last_ts=T0, seen=seen, furthest=furthest
    )
    data = orjson.loads(orjson.dumps(state.to_json()))  # as it travels
    back = CartState.from_json(data)
    assert back == state
    assert type(back.seen) is tuple
    assert all(type(partition) is int for partition in back.furthest)


@pytest.mark.parametrize(
    ("old_seen", "furthest"),
    [
        ({}, {}),
        ({"e1": [2, 5], "e2": [2, 9]}, {2: 9}),
        # The old cart could re-apply a forgotten id read again after a crash, at an
        # offset below the last: its furthest is still the furthest.
        ({"e1": [0, 100], "e2": [0, 50]}, {0: 100}),
        # The topic's partitions changed: each keeps its own furthest.
        ({"e1": [1, 7], "e2": [4, 3], "e3": [1, 8]}, {1: 8, 4: 3}),
    ],
)
def test_from_json_reads_a_cart_written_with_whole_ids(
    old_seen: dict[str, list[int]], furthest: dict[int, int]
) -> None:
    """A record from before fingerprints (seen: id -> position) loads as the same cart would be.

    Its ids become fingerprints, oldest first, and each partition's furthest
    is the furthest of its positions: a worker upgraded in place recognises
    the events and the records its changelog remembers.
    """
    old = {"cart_id": "k1", "items": {"a": 2}, "last_ts": T0, "seen": old_seen, "shown": {}}
    state = CartState.from_json(old)
    expected = CartState(
        cart_id="k1", items={"a": 2}, last_ts=T0, seen=prints(*old_seen), furthest=furthest
    )
    assert state == expected
    for event_id, (partition, offset) in old_seen.items():
        assert apply_cart_event(state, add(event_id, "a"), (partition, offset)) == (state, False)
        assert state.redelivered((partition, offset)) is True
        assert state.redelivered((partition, furthest[partition] + 1)) is False


def test_redelivered_means_at_or_before_the_furthest_record_applied_in_its_partition() -> None:
    """A partition's records come in order: the furthest applied bounds those read again."""
    state = fold(add("e1", "a"), add("e2", "b"))  # records (0, 0) and (0, 1)
    assert [state.redelivered((0, n)) for n in (0, 1, 2)] == [True, True, False]
    assert state.redelivered((1, 0)) is False  # another partition: none of its records applied


def test_a_partition_change_keeps_each_partitions_furthest() -> None:
    """Once the topic has more partitions, a customer's events may move to another one: a
    record of the first read again after a crash is still recognised, and answered again."""
    state, _ = apply_cart_event(None, add("e1", "a"), (0, 10))
    state, _ = apply_cart_event(state, add("e2", "b"), (5, 0))
    assert state.furthest == {0: 10, 5: 0}
    again, applied = apply_cart_event(state, add("e1", "a"), (0, 10))
    assert (again, applied) == (state, False)
    assert state.redelivered((0, 10)) is True
    assert state.redelivered((0, 11)) is False  # a duplicate in a later record: ignored


def test_after_a_topic_is_recreated_new_events_count_and_a_duplicate_is_answered() -> None:
    """Offsets start again at 0 on a recreated topic. Its events are new by their ids, so they
    count; the furthest stays, so a duplicate at an offset below it is taken for a record read
    again: not counted, but answered again, with the same ids (README, "Delivery is
    at-least-once"). Until the new offsets pass the old furthest."""
    state, _ = apply_cart_event(None, add("old", "a"), (0, 5001))
    state, applied = apply_cart_event(state, add("new", "b"), (0, 0))
    assert applied is True
    assert state.items == {"a": 1, "b": 1}
    assert state.furthest == {0: 5001}
    again, applied = apply_cart_event(state, add("new", "b"), (0, 1))
    assert (again, applied) == (state, False)
    assert state.redelivered((0, 1)) is True
    assert state.redelivered((0, 5002)) is False


def _reference(
    records: list[tuple[str, Position]],
) -> list[tuple[bool, bool]]:
    """(applied, a redelivered record) for each record, as the cart decided with ids held whole.

    Before fingerprints, a cart kept each of its 32 latest event ids with the
    position of the record that applied it: a record was redelivered when its
    id was kept with its own position.
    """
    seen: dict[str, Position] = {}
    decided = []
    for event_id, position in records:
        if event_id in seen:
            decided.append((False, seen[event_id] == position))
            continue
        seen[event_id] = position
        while len(seen) > MAX_REMEMBERED_EVENTS:
            del seen[next(iter(seen))]
        decided.append((True, False))
    return decided


@pytest.mark.parametrize("seed", range(200))
def test_decisions_match_ids_held_whole(seed: int) -> None:
    """Against the cart that kept ids whole: the same events applied, the same redeliveries.

    Random streams of one customer's records: new events, duplicates of
    recent ones sent in later records, the topic's partitions changing
    midway (the customer's records go on in another partition), and
    consumers that crash and read again from an earlier record. The one
    difference (README, "Delivery is at-least-once"): a duplicate's record
    read again after a crash, once a later record of its partition was
    applied, is taken for a redelivery and answered again (with the same
    ids), where it used to be ignored.
    """
    rng = random.Random(seed)
    log: list[tuple[str, Position]] = []  # the customer's records, in the order produced
    partition, offset, produced = 4, 0, 0
    for _ in range(rng.randint(1, 120)):
        if rng.random() < 0.02:
            partition, offset = partition + 1, 0  # the partitions changed
        if log and rng.random() < 0.2:
            event_id = rng.choice(log[-40:])[0]  # a duplicate sent again
        else:
            event_id = f"e{produced}-{rng.getrandbits(32):x}"
        log.append((event_id, (partition, offset)))
        offset, produced = offset + 1, produced + 1
    reads: list[int] = []  # indexes into the log, in the order a consumer reads them
    index = 0
    while index < len(log):
        reads.append(index)
        index += 1
        if rng.random() < 0.05:
            index = max(0, index - rng.randint(1, 10))  # a crash: read again from a commit
    records = [log[n] for n in reads]
    expected = _reference(records)
    state: CartState | None = None
    furthest_read = -1
    furthest_applied: dict[int, int] = {}
    for n, (event_id, position), (applied_before, redelivered_before) in zip(
        reads, records, expected, strict=True
    ):
        state, applied = apply_cart_event(state, add(event_id, "a"), position)
        assert applied is applied_before
        read_again, furthest_read = n <= furthest_read, max(furthest_read, n)
        if applied:
            part, at = position
            furthest_applied[part] = max(at, furthest_applied.get(part, at))
        elif redelivered_before:
            assert state.redelivered(position) is True
        elif not read_again:  # a duplicate sent in a later record: ignored, as before
            assert state.redelivered(position) is False
        else:  # the one difference
            part, at = position
            assert state.redelivered(position) is (at <= furthest_applied.get(part, -1))
