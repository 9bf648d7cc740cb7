"""Customer value on the real broker: scores, refunds, idempotency, time passing.

Every customer-ltv record carries BG/NBD + Gamma-Gamma scores equal to the
closed form on its own RFM figures (the closed form itself is held to
lifetimes in tests/unit/test_clv.py); refunds net out once; and when event
time moves on, a customer who stopped buying is re-scored: p_alive falls on
the topic without a new order of theirs.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from stream.config import load_ltv_params
from stream.domain.clv import score
from stream.domain.events import format_ts, parse_ts
from tests.integration.conftest import Deployment, values
from tests.schema_check import validate

pytestmark = pytest.mark.integration

DAY = 86_400.0
T0 = parse_ts("2026-01-05T10:00:00Z")


def order(customer: str, n: int, day: float, price: float) -> dict[str, Any]:
    return {
        "event_id": f"e-{customer}-{n}",
        "type": "order_completed",
        "customer_id": customer,
        "ts": format_ts(T0 + day * DAY),
        "order_id": f"o-{customer}-{n}",
        "items": [{"sku": f"sku-{n}", "quantity": 1, "unit_price": price}],
    }


def refund(customer: str, n: int, day: float, amount: float) -> dict[str, Any]:
    return {
        "event_id": f"e-refund-{customer}-{n}",
        "type": "order_refunded",
        "customer_id": customer,
        "ts": format_ts(T0 + day * DAY),
        "order_id": f"o-{customer}-{n}",
        "total": amount,
    }


async def test_scores_refunds_and_lapsing(deployment: Deployment) -> None:
    """Scores match the closed form; a refund nets once; a lapsing customer's p_alive falls."""
    deployment.start_worker()
    params = load_ltv_params(None)
    events = [
        order("lapse", 0, 0, 20.0),
        order("lapse", 1, 5, 35.0),
        order("lapse", 2, 12, 25.0),
        order("refunder", 0, 1, 100.0),
        refund("refunder", 0, 2, 30.0),
        refund("refunder", 0, 2, 30.0),  # the same refund event again: changes nothing
        order("clock", 0, 13, 10.0),
        order("clock", 1, 200, 10.0),  # event time moves on 188 days
    ]
    await deployment.produce_events(deployment.topics.purchase, events)

    def lapsed(rs: list[Any]) -> bool:
        return any(
            v["customer_id"] == "lapse" and parse_ts(v["as_of"]) >= T0 + 200 * DAY
            for v in values(rs)
        )

    records = values(await deployment.read(deployment.topics.customer_ltv, lapsed, settle=2.0))
    for record in records:
        validate("customer-ltv", record)
        expected = score(
            params, record["frequency"], record["recency"], record["T"], record["monetary_value"]
        )
        assert record["p_alive"] == pytest.approx(expected.p_alive, rel=1e-12)
        assert record["expected_purchases"] == pytest.approx(expected.expected_purchases, rel=1e-12)
        assert record["predicted_clv"] == pytest.approx(expected.predicted_clv, rel=1e-12)
        assert record["ltv"] == pytest.approx(record["revenue"] + record["predicted_clv"])
        assert record["rank"] in {"A", "B", "C", "D"}

    lapse = [r for r in records if r["customer_id"] == "lapse"]
    at_last_order = next(r for r in lapse if r["as_of"] == format_ts(T0 + 12 * DAY))
    later = lapse[-1]
    # lifetimes semantics: purchase days 0, 5, 12 -> frequency 2, recency 12, T at as_of
    assert (at_last_order["frequency"], at_last_order["recency"], at_last_order["T"]) == (
        2,
        12.0,
        12.0,
    )
    assert (later["frequency"], later["recency"]) == (2, 12.0)
    assert later["T"] >= 200.0
    assert later["orders"] == 3  # no new order: re-scored because time passed
    assert later["p_alive"] < at_last_order["p_alive"] / 2
    assert later["predicted_clv"] < at_last_order["predicted_clv"]

    refunder = [r for r in records if r["customer_id"] == "refunder"]
    assert Decimal(str(refunder[-1]["revenue"])) == Decimal("70.00")  # 100 - 30, once
    assert len([r for r in refunder if r["as_of"] <= format_ts(T0 + 2 * DAY)]) == 2  # order, refund
