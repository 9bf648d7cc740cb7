"""Restraint and attribution: what each customer was offered or shown, and when.

- Frequency cap: at most `daily_cap` triggers per customer per UTC day,
  each day counted on its own (a trigger dated on an earlier day than the
  latest counts toward its own day, up to EARLIER_DAYS back); a trigger sent
  again for the same input (a record read again after a crash: the same
  trigger id) is sent again and not counted twice.
- Offer cooldown: the same offer (an item, or a plan) is not made to the same
  customer again within `offer_cooldown_hours`; a trigger whose offers
  were all in their cooldown is not sent (one that had none, such as a plain
  renewal reminder, is).
- Attribution: an order line whose SKU the customer was shown (a suggestion)
  or offered (a trigger) within `attribution_days` before the order is
  attributed to cross-sell; an order with such a line is a conversion.
  Control customers of the A/B holdout are shown nothing, but what they
  would have been shown is recorded the same way, so the two variants'
  conversion rates compare like with like.

A suppressed trigger is counted by the caller (reason `daily_cap`,
`no_fresh_offer` or `holdout`), never silently lost.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from itertools import chain
from operator import itemgetter
from typing import Any, Final

from stream.domain.events import SECONDS_PER_DAY, PurchaseEvent, fingerprint

MAX_REMEMBERED: Final = 200
EXPOSURES_PER_ITEM: Final = 8
# The latest triggers recorded (ContactState.recent, `trigger_print`s): those
# a record read again after a crash, from since the last commit, may send again.
RECENT_TRIGGERS: Final = 2
# Days before the latest one a trigger was counted on whose counts are kept:
# a trigger dated further back is neither capped nor counted. Each kept day
# and trigger costs a customer's contacts bytes (`bench handlers`: 4 triggers
# of 40 bits and 28 days were 32 bytes a customer, these 11).
EARLIER_DAYS: Final = 7
# How far behind in event time one of the topics that write a customer's contacts
# (cart, purchase, subscription events: read independently) may be read with
# nothing lost: an offer is remembered for its cooldown and LATE_DAYS more, an
# exposure for the attribution window and LATE_DAYS more, after the time of
# the latest write (`forget_before`).
LATE_DAYS: Final = 28.0


@dataclass(frozen=True, slots=True)
class ContactRules:
    daily_cap: int = 3
    offer_cooldown_hours: float = 72.0
    attribution_days: float = 7.0


@dataclass(frozen=True, slots=True)
class ContactState:
    """One customer's recent contacts.

    Bounded: MAX_REMEMBERED offers and exposed items, EXPOSURES_PER_ITEM times
    each, and no older than their windows and LATE_DAYS (`forget_before`).
    """

    day: int = -1  # the latest UTC day a trigger was counted on
    sent_on_day: int = 0  # the triggers sent on `day`
    # UTC day -> triggers sent, for the days before `day`, EARLIER_DAYS back at most
    earlier: dict[int, int] = field(default_factory=dict)
    # `trigger_print`s of the latest RECENT_TRIGGERS triggers recorded, oldest first
    recent: tuple[int, ...] = ()
    offered: dict[str, float] = field(default_factory=dict)
    # sku -> the latest EXPOSURES_PER_ITEM times it was shown or offered, ascending:
    # several, not one, because cart and purchase topics are read independently and
    # a later exposure may be read before an earlier order.
    exposed: dict[str, tuple[float, ...]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The fields, each distinct time written once (`times`) and referred to by its index.

        An add shows up to `limit` items at one time and a trigger offers its
        items at one time, so a customer's times recur across their items:
        written once each, the record is half as long (and so is the state a
        worker holds packed: stream.state.Packed).
        """
        times = list(
            dict.fromkeys(chain(self.offered.values(), chain.from_iterable(self.exposed.values())))
        )
        index = {t: n for n, t in enumerate(times)}.__getitem__
        record: dict[str, Any] = {
            "day": self.day,
            "sent_on_day": self.sent_on_day,
            "times": times,
            "offered": dict(zip(self.offered, map(index, self.offered.values()), strict=True)),
            "exposed": {sku: list(map(index, ts)) for sku, ts in self.exposed.items()},
        }
        if self.earlier:
            record["earlier"] = {str(day): sent for day, sent in self.earlier.items()}
        if self.recent:
            record["recent"] = self.recent
        return record

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContactState:
        """The state `to_json` wrote; also the records of before `times` (the times themselves)."""
        if "times" in data:
            times = [float(t) for t in data["times"]]
            return cls(
                day=int(data["day"]),
                sent_on_day=int(data["sent_on_day"]),
                earlier={int(day): int(sent) for day, sent in data.get("earlier", {}).items()},
                recent=tuple(int(held) for held in data.get("recent", ())),
                offered={str(k): times[n] for k, n in data["offered"].items()},
                exposed={str(k): tuple(times[n] for n in v) for k, v in data["exposed"].items()},
            )
        return cls(
            day=int(data["day"]),
            sent_on_day=int(data["sent_on_day"]),
            offered={str(k): float(v) for k, v in data["offered"].items()},
            exposed={
                str(k): tuple(float(t) for t in (v if isinstance(v, list) else [v]))
                for k, v in data["exposed"].items()
            },
        )


def offer_key(offer: dict[str, Any]) -> str:
    """`sku:X` or `plan:Y`: what the cooldown counts as the same offer."""
    return f"sku:{offer['sku']}" if "sku" in offer else f"plan:{offer['plan_id']}"


def restrain(
    state: ContactState | None,
    offers: Sequence[dict[str, Any]],
    at: float,
    rules: ContactRules,
    trigger: int | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """The offers still fresh at `at`, and why the trigger must not be sent (None: send it).

    `trigger` is the trigger's `trigger_print`: one recorded already
    (its input read again) goes again, capped or not, with the offers it
    went with (those recorded as offered at `at`) and any fresh one.
    """
    current = state or ContactState()
    cooldown = rules.offer_cooldown_hours * 3600.0
    fresh = [o for o in offers if at - current.offered.get(offer_key(o), -math.inf) >= cooldown]
    if trigger is not None and trigger in current.recent:
        went = [o for o in offers if current.offered.get(offer_key(o)) == at]
        return [o for o in offers if o in went or o in fresh], None
    if offers and not fresh:
        return [], "no_fresh_offer"
    if sent_on(current, math.floor(at / SECONDS_PER_DAY)) >= rules.daily_cap:
        return fresh, "daily_cap"
    return fresh, None


def trigger_print(kind: str, source: str) -> int:
    """What tells a trigger from the customer's other recent ones: 24 bits of the `fingerprint`
    of what its id is made from (`output_id(kind, source)`).

    Among a customer's RECENT_TRIGGERS, a new trigger is taken for one
    recorded already (sent, but not counted) at odds of 1 in 8 million.
    """
    return fingerprint(f"{kind}:{source}") & 0xFFFFFF


def sent_on(state: ContactState, day: int) -> int:
    """The triggers counted on UTC `day` (more than EARLIER_DAYS before the latest: none)."""
    if day == state.day:
        return state.sent_on_day
    return state.earlier.get(day, 0) if day < state.day else 0


def _keep_recent(values: dict[str, float]) -> dict[str, float]:
    if len(values) <= MAX_REMEMBERED:
        return values
    return dict(sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_REMEMBERED])


def forget_before(at: float, rules: ContactRules) -> tuple[float, float]:
    """The times before which offers, and exposures, can matter no more once one is at `at`.

    An offer older than its cooldown no longer holds an offer back, and an
    exposure older than the attribution window attributes no order; kept
    LATE_DAYS longer, for a topic read that far behind the one writing at
    `at` (its triggers' cooldowns and its orders' attributions are then as
    if nothing had been forgotten). Without these cut-offs a customer's
    record keeps every offer and exposure up to its bounds, months of them
    (`bench handlers`: the contacts' held bytes nearly halved at 9,442
    customers).
    """
    late = LATE_DAYS * SECONDS_PER_DAY
    return (
        at - rules.offer_cooldown_hours * 3600.0 - late,
        at - rules.attribution_days * SECONDS_PER_DAY - late,
    )


_first = itemgetter(0)


def _recent_offers(offered: dict[str, float], since: float) -> dict[str, float]:
    """`offered` without the offers before `since` (itself when there are none: a scan in C)."""
    if not offered or min(offered.values()) >= since:
        return offered
    return {key: t for key, t in offered.items() if t >= since}


def _expose(
    exposed: dict[str, tuple[float, ...]], skus: Iterable[str], at: float, since: float
) -> dict[str, tuple[float, ...]]:
    """`exposed` with `skus` shown at `at`, and without the times before `since`."""
    if not exposed or min(map(_first, exposed.values())) >= since:  # mostly: nothing to forget
        updated = dict(exposed)
    else:
        updated = {}
        for sku, times in exposed.items():  # each ascending: most kept or dropped whole
            if times[0] >= since:
                updated[sku] = times
            elif times[-1] >= since:
                updated[sku] = tuple(t for t in times if t >= since)
    for sku in skus:
        times = updated.get(sku, ())
        if not times or at > times[-1]:  # in event-time order, as mostly: a new latest
            updated[sku] = (*times[1 - EXPOSURES_PER_ITEM :], at)
        elif at not in times:
            updated[sku] = tuple(sorted((*times, at))[-EXPOSURES_PER_ITEM:])
    if len(updated) > MAX_REMEMBERED:
        newest = sorted(updated.items(), key=lambda kv: (-kv[1][-1], kv[0]))[:MAX_REMEMBERED]
        updated = dict(newest)
    return updated


def record_trigger(
    state: ContactState | None,
    offers: Iterable[dict[str, Any]],
    at: float,
    rules: ContactRules,
    trigger: int | None = None,
) -> ContactState:
    """A trigger with `offers` was sent at `at`: count it for its day, start the cooldowns.

    A trigger dated on a day before the latest one counted (a renewal window
    fired at its opening time) counts toward its own day, if within
    EARLIER_DAYS. `trigger`, its `trigger_print`, is remembered among the
    RECENT_TRIGGERS latest: one recorded already is not counted again.
    What can no longer matter at `at` is forgotten (`forget_before`).
    """
    current = state or ContactState()
    day, sent, earlier, recent = current.day, current.sent_on_day, current.earlier, current.recent
    if trigger is None or trigger not in recent:
        today = math.floor(at / SECONDS_PER_DAY)
        if today > day:
            if sent and day >= 0:
                earlier = {**earlier, day: sent}
            if earlier and min(earlier) < today - EARLIER_DAYS:
                earlier = {d: n for d, n in earlier.items() if d >= today - EARLIER_DAYS}
            day, sent = today, 1
        elif today == day:
            sent += 1
        elif today >= day - EARLIER_DAYS:
            earlier = {**earlier, today: earlier.get(today, 0) + 1}
        if trigger is not None:
            recent = (*recent, trigger)[-RECENT_TRIGGERS:]
    offers = list(offers)
    offers_since, exposures_since = forget_before(at, rules)
    offered = dict(_recent_offers(current.offered, offers_since))
    for offer in offers:
        offered[offer_key(offer)] = max(at, offered.get(offer_key(offer), at))
    skus = [offer["sku"] for offer in offers if "sku" in offer]
    return replace(
        current,
        day=day,
        sent_on_day=sent,
        earlier=earlier,
        recent=recent,
        offered=_keep_recent(offered),
        exposed=_expose(current.exposed, skus, at, exposures_since),
    )


def record_exposure(
    state: ContactState | None, skus: Iterable[str], at: float, rules: ContactRules
) -> ContactState:
    """The customer was shown (or, in control, would have been shown) `skus` at `at`.

    What can no longer matter at `at` is forgotten (`forget_before`).
    """
    current = state or ContactState()
    offers_since, exposures_since = forget_before(at, rules)
    return replace(
        current,
        offered=_recent_offers(current.offered, offers_since),
        exposed=_expose(current.exposed, skus, at, exposures_since),
    )


def attribute(
    state: ContactState | None, order: PurchaseEvent, rules: ContactRules
) -> Decimal | None:
    """Revenue of the order's lines shown or offered within the window before it (None: none)."""
    if state is None:
        return None
    since = order.ts - rules.attribution_days * SECONDS_PER_DAY
    attributed = [
        line.amount
        for line in order.items
        if any(since <= t <= order.ts for t in state.exposed.get(line.sku, ()))
    ]
    return sum(attributed, Decimal(0)) if attributed else None
