"""stream.domain.clv: BG/NBD + Gamma-Gamma scores in closed form, against hand-computed numbers,
a 50-digit reference and lifetimes on the CDNOW data; the seeds' plain formulas."""

from __future__ import annotations

import math
import re
from typing import Any

import mpmath
import pandas as pd
import pytest
from lifetimes import BetaGeoFitter, GammaGammaFitter
from lifetimes.utils import summary_data_from_transaction_data

from stream.domain.clv import (
    MAX_CLV_MONTHS,
    BgNbd,
    GammaGamma,
    LtvParams,
    expected_average_value,
    expected_purchases,
    p_alive,
    predicted_clv,
    score,
    simple_ltv,
    subscription_ltv,
)
from tests.lifetimes_data import cdnow_transactions

DESIGN_EXAMPLE: dict[str, Any] = {
    "bgnbd": {"r": 0.24, "alpha": 30.9, "a": 0.79, "b": 2.43},
    "gamma_gamma": {"p": 6.25, "q": 3.74, "v": 15.4},
    "clv_months": 12,
    "monthly_discount_rate": 0.01,
}

# With r = a + b - 1 the transformed 2F1(a+b-1-r, a-1; a+b+x-1; z) is 2F1(0, ...) = 1, so
# E(t) = (a+b+x-1)/(a-1) * (1 - (alpha+T)/(alpha+T+t)) * P(alive) = (2+x) t/(alpha+T+t) P(alive)
# for a = 2, b = 1, r = 2.
HAND = BgNbd(r=2.0, alpha=10.0, a=2.0, b=1.0)
HAND_GG = GammaGamma(p=2.0, q=3.0, v=10.0)  # population mean v p / (q - 1) = 10


def with_changes(**changes: Any) -> dict[str, Any]:
    """DESIGN_EXAMPLE with fields set (`bgnbd__r` is bgnbd.r), or removed where it is `...`."""
    doc = {k: dict(v) if isinstance(v, dict) else v for k, v in DESIGN_EXAMPLE.items()}
    for dotted, value in changes.items():
        *parents, key = dotted.split("__")
        target = doc
        for parent in parents:
            target = target[parent]
        if value is ...:
            del target[key]
        else:
            target[key] = value
    return doc


# --- params --------------------------------------------------------------------


def test_from_json_reads_the_design_format() -> None:
    """The DESIGN.md example reads into typed params and writes back unchanged."""
    params = LtvParams.from_json(DESIGN_EXAMPLE)
    assert params == LtvParams(
        BgNbd(r=0.24, alpha=30.9, a=0.79, b=2.43), GammaGamma(p=6.25, q=3.74, v=15.4), 12, 0.01
    )
    assert params.horizon_days == 360
    assert params.to_json() == DESIGN_EXAMPLE


def test_from_json_defaults_and_ignores_fit() -> None:
    """clv_months and the discount rate default to 12 and 0.01; fit-ltv's `fit` is ignored."""
    doc = with_changes(clv_months=..., monthly_discount_rate=..., fit={"customers": 3})
    params = LtvParams.from_json(doc)
    assert (params.clv_months, params.monthly_discount_rate) == (12, 0.01)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"bgnbd": ...}, "bgnbd must be an object"),
        ({"bgnbd__r": ...}, "bgnbd.r must be a finite number > 0, got None"),
        ({"bgnbd__alpha": 0}, "bgnbd.alpha must be a finite number > 0, got 0"),
        ({"bgnbd__a": -1.0}, "bgnbd.a must be a finite number > 0"),
        ({"bgnbd__b": math.inf}, "bgnbd.b must be a finite number > 0"),
        ({"bgnbd__b": math.nan}, "bgnbd.b must be a finite number > 0"),
        ({"bgnbd__r": "0.24"}, "bgnbd.r must be a finite number > 0, got '0.24'"),
        ({"bgnbd__r": True}, "bgnbd.r must be a finite number > 0, got True"),
        ({"bgnbd__a": 1.0}, "bgnbd.a must not be exactly 1"),
        ({"bgnbd__beta": 1.0}, "unknown field bgnbd.beta"),
        ({"gamma_gamma": [1, 2, 3]}, "gamma_gamma must be an object"),
        ({"gamma_gamma__v": -2}, "gamma_gamma.v must be a finite number > 0"),
        ({"gamma_gamma__q": 1.0}, "gamma_gamma.q must be > 1"),
        ({"gamma_gamma__q": 0.5}, "gamma_gamma.q must be > 1"),
        ({"clv_months": 0}, "clv_months must be an integer from 1 to 120, got 0"),
        ({"clv_months": 12.0}, "clv_months must be an integer"),
        ({"clv_months": MAX_CLV_MONTHS + 1}, "clv_months must be an integer"),
        ({"monthly_discount_rate": -0.01}, "monthly_discount_rate must be a finite number >= 0"),
        ({"monthly_discount_rate": None}, "monthly_discount_rate must be a finite number >= 0"),
        ({"clv_month": 6}, "unknown field clv_month"),
    ],
)
def test_from_json_names_the_bad_field(changes: dict[str, Any], message: str) -> None:
    """A missing, mistyped or out-of-range field fails with its dotted name in the message."""
    with pytest.raises(ValueError, match=re.escape(message)):
        LtvParams.from_json(with_changes(**changes))


def test_from_json_rejects_a_non_object() -> None:
    """The params file must hold a JSON object."""
    with pytest.raises(ValueError, match="must be a JSON object, got list"):
        LtvParams.from_json([1, 2])  # type: ignore[arg-type]


# --- hand-computed ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "x", "t_x", "T", "expected"),
    [
        (HAND, 0, 0.0, 0.0, 1.0),  # no repeat purchase: alive by definition
        (HAND, 0, 0.0, 400.0, 1.0),
        # 1 / (1 + a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)) = 1 / (1 + 2 * 2^3) = 1/17
        (BgNbd(r=2.0, alpha=1.0, a=2.0, b=1.0), 1, 1.0, 3.0, 1 / 17),
        # 1 / (1 + (2/2) * 2^2) = 1/5
        (BgNbd(r=1.0, alpha=1.0, a=2.0, b=2.0), 1, 1.0, 3.0, 1 / 5),
        # bought on the last day: 1 / (1 + a/(b+x-1)) = 1 / (1 + 2/3)
        (BgNbd(r=1.0, alpha=1.0, a=2.0, b=2.0), 2, 5.0, 5.0, 3 / 5),
    ],
)
def test_p_alive_hand_computed(model: BgNbd, x: int, t_x: float, T: float, expected: float) -> None:
    """P(alive) = 1 / (1 + a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)), and 1 for x = 0."""
    assert p_alive(model, x, t_x, T) == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize(
    ("model", "t", "x", "t_x", "T", "expected"),
    [
        (HAND, 0.0, 3, 10.0, 20.0, 0.0),  # nothing happens in no time
        (HAND, 10.0, 0, 0.0, 0.0, 1.0),  # 2 * 10/20
        (HAND, 20.0, 0, 0.0, 10.0, 1.0),  # 2 * 20/40
        (HAND, 90.0, 0, 0.0, 0.0, 1.8),  # 2 * 90/100
        # (2+1) * 4/(1+3+4) * P(alive) = 1.5 * 1/17
        (BgNbd(r=2.0, alpha=1.0, a=2.0, b=1.0), 4.0, 1, 1.0, 3.0, 1.5 / 17),
    ],
)
def test_expected_purchases_hand_computed(
    model: BgNbd, t: float, x: int, t_x: float, T: float, expected: float
) -> None:
    """E(t) = (a+b+x-1)/(a-1) (1 - 2F1 term) P(alive), with the 2F1 term 1 when r = a+b-1."""
    assert expected_purchases(model, t, x, t_x, T) == pytest.approx(expected, rel=1e-13)


def test_expected_purchases_rejects_negative_time() -> None:
    """The horizon t is a duration: negative is an error."""
    with pytest.raises(ValueError, match="t must be >= 0 days"):
        expected_purchases(HAND, -1.0, 0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("x", "m", "expected"),
    [
        (0, 0.0, 10.0),  # no repeat purchase: the population mean v p / (q - 1)
        (0, 99.0, 10.0),  # m does not count without repeat purchases
        (2, 20.0, 50 / 3),  # w = 4/6: 10/3 + 40/3
        (1, 10.0, 10.0),  # m equal to the population mean stays there
    ],
)
def test_expected_average_value_hand_computed(x: int, m: float, expected: float) -> None:
    """E[value | x, m] = (1-w) v p/(q-1) + w m, w = p x / (p x + q - 1)."""
    assert expected_average_value(HAND_GG, x, m) == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize(
    ("months", "rate", "expected"),
    [
        # E(30) = 2*30/60 = 1, E(60) = 2*60/90 = 4/3, E(90) = 2*90/120 = 3/2; value 10 a purchase
        (1, 0.0, 10.0),
        (1, 0.01, 10.0 / 1.01),
        (2, 0.01, 10.0 * (1 / 1.01 + (1 / 3) / 1.01**2)),
        (3, 0.05, 10.0 * (1 / 1.05 + (1 / 3) / 1.05**2 + (1 / 6) / 1.05**3)),
    ],
)
def test_predicted_clv_hand_computed(months: int, rate: float, expected: float) -> None:
    """CLV = sum_k value (E(30k) - E(30(k-1))) / (1+d)^k for a new customer (x = T = 0)."""
    params = LtvParams(BgNbd(r=2.0, alpha=30.0, a=2.0, b=1.0), HAND_GG, months, rate)
    assert predicted_clv(params, 0, 0.0, 0.0, 0.0) == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize(("x", "t_x", "T", "m"), [(0, 0.0, 0.0, 0.0), (4, 200.0, 270.0, 31.5)])
def test_score_is_the_single_functions_at_once(x: int, t_x: float, T: float, m: float) -> None:
    """score() returns what p_alive, expected_purchases over the horizon and predicted_clv do."""
    params = LtvParams.from_json(DESIGN_EXAMPLE)
    scores = score(params, x, t_x, T, m)
    assert scores.p_alive == p_alive(params.bgnbd, x, t_x, T)
    assert scores.expected_purchases == pytest.approx(
        expected_purchases(params.bgnbd, params.horizon_days, x, t_x, T), rel=1e-14
    )
    assert scores.expected_average_value == expected_average_value(params.gamma_gamma, x, m)
    assert scores.predicted_clv == predicted_clv(params, x, t_x, T, m)


# --- large frequencies against a 50-digit reference ---------------------------------


def reference(m: BgNbd, t: float, x: int, t_x: float, T: float) -> tuple[float, float]:
    """(E(t), P(alive)) by the untransformed formula (lifetimes' eq. 10) to 50 digits."""
    with mpmath.workdps(50):
        r, alpha, a, b = (mpmath.mpf(v) for v in (m.r, m.alpha, m.a, m.b))
        x_, t_x_, T_, t_ = (mpmath.mpf(v) for v in (x, t_x, T, t))
        z = t_ / (alpha + T_ + t_)
        hyp = mpmath.hyp2f1(r + x_, b + x_, a + b + x_ - 1, z)
        second = 1 - hyp * ((alpha + T_) / (alpha + T_ + t_)) ** (r + x_)
        odds = (a / (b + x_ - 1)) * ((alpha + T_) / (alpha + t_x_)) ** (r + x_) if x else 0
        alive = 1 / (1 + odds)
        return float((a + b + x_ - 1) / (a - 1) * second * alive), float(alive)


@pytest.mark.parametrize(
    ("x", "t_x", "T"),
    [
        (1, 5.0, 300.0),
        (50, 300.0, 310.0),
        (300, 600.0, 610.0),
        (1_000, 1_000.0, 1_010.0),  # lifetimes' first 2F1 overflows from here on
        (3_000, 3_000.0, 3_005.0),
        (10_000, 3_650.0, 3_650.0),  # ten years of daily purchases
        (200, 100.0, 3_000.0),  # a heavy buyer gone quiet: P(alive) ~ 1e-140
    ],
)
def test_large_frequencies_match_high_precision(x: int, t_x: float, T: float) -> None:
    """p_alive and expected_purchases stay accurate to 1e-12 where plain floats overflow."""
    model = BgNbd(r=0.2426, alpha=30.9, a=0.793, b=2.426)
    expected, alive = reference(model, 360.0, x, t_x, T)
    assert p_alive(model, x, t_x, T) == pytest.approx(alive, rel=1e-12)
    assert expected_purchases(model, 360.0, x, t_x, T) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("a", [1 - 1e-6, 1 + 1e-6, 1 + 1e-3])
@pytest.mark.parametrize(("x", "t_x", "T"), [(0, 0.0, 0.0), (3, 100.0, 200.0), (50, 300.0, 310.0)])
def test_expected_purchases_near_a_equal_one(a: float, x: int, t_x: float, T: float) -> None:
    """Close to the removable singularity at a = 1 the closed form keeps 7 digits or more."""
    model = BgNbd(r=0.25, alpha=30.0, a=a, b=2.5)
    expected, _ = reference(model, 360.0, x, t_x, T)
    assert expected_purchases(model, 360.0, x, t_x, T) == pytest.approx(expected, rel=1e-7)


# --- against lifetimes on real data (CDNOW, in days) -------------------------------------


@pytest.fixture(scope="module")
def cdnow_days() -> tuple[pd.DataFrame, BetaGeoFitter, GammaGammaFitter]:
    """lifetimes' RFM summary of CDNOW in days (39-week calibration) and its two fitted models."""
    summary = summary_data_from_transaction_data(
        cdnow_transactions(),
        "id",
        "date",
        monetary_value_col="dollars",
        observation_period_end="1997-09-30",
        freq="D",
    )
    bgf = BetaGeoFitter().fit(summary["frequency"], summary["recency"], summary["T"])
    repeat = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
    ggf = GammaGammaFitter().fit(repeat["frequency"], repeat["monetary_value"])
    return summary, bgf, ggf


@pytest.mark.parametrize(("months", "rate"), [(12, 0.01), (1, 0.0), (6, 0.05), (36, 0.01)])
def test_every_cdnow_customer_scores_as_in_lifetimes(
    cdnow_days: tuple[pd.DataFrame, BetaGeoFitter, GammaGammaFitter], months: int, rate: float
) -> None:
    """p_alive, expected purchases over months x 30 days and CLV equal lifetimes' to 1e-6."""
    summary, bgf, ggf = cdnow_days
    params = LtvParams(
        BgNbd(**{k: float(v) for k, v in bgf.params_.items()}),
        GammaGamma(**{k: float(v) for k, v in ggf.params_.items()}),
        clv_months=months,
        monthly_discount_rate=rate,
    )
    x, t_x, T, m = (summary[c] for c in ("frequency", "recency", "T", "monetary_value"))
    want_alive = bgf.conditional_probability_alive(x, t_x, T).tolist()
    want_purchases = bgf.conditional_expected_number_of_purchases_up_to_time(
        months * 30, x, t_x, T
    ).tolist()
    want_clv = ggf.customer_lifetime_value(
        bgf, x, t_x, T, m, time=months, discount_rate=rate, freq="D"
    ).tolist()
    rows = list(zip(x.tolist(), t_x.tolist(), T.tolist(), m.tolist(), strict=True))
    assert len(rows) == 2_357
    alive = [p_alive(params.bgnbd, *row[:3]) for row in rows]
    purchases = [expected_purchases(params.bgnbd, months * 30, *row[:3]) for row in rows]
    clv = [predicted_clv(params, *row) for row in rows]
    assert alive == pytest.approx(want_alive, rel=1e-6)
    assert purchases == pytest.approx(want_purchases, rel=1e-6)
    assert clv == pytest.approx(want_clv, rel=1e-6)


# --- the seeds' plain formulas --------------------------------------------------------


@pytest.mark.parametrize(
    ("aov", "per_year", "years", "expected"),
    [(50.0, 4.0, 3.0, 600.0), (19.99, 12.0, 0.5, 119.94), (0.0, 4.0, 3.0, 0.0)],
)
def test_simple_ltv(aov: float, per_year: float, years: float, expected: float) -> None:
    """LTV = AOV x purchases per year x expected lifetime in years."""
    assert simple_ltv(aov, per_year, years) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("price", "margin", "churn", "expected"),
    [(20.0, 0.5, 0.05, 200.0), (9.99, 1.0, 1.0, 9.99), (100.0, 0.3, 0.02, 1_500.0)],
)
def test_subscription_ltv(price: float, margin: float, churn: float, expected: float) -> None:
    """Subscription LTV = price x margin / churn (1 / churn periods expected)."""
    assert subscription_ltv(price, margin, churn) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: simple_ltv(-1.0, 4.0, 3.0), "aov must be a finite number >= 0"),
        (lambda: simple_ltv(50.0, math.nan, 3.0), "purchases_per_year must be"),
        (lambda: simple_ltv(50.0, 4.0, math.inf), "expected_lifetime_years must be"),
        (lambda: subscription_ltv(20.0, 0.5, 0.0), "churn must be a fraction in"),
        (lambda: subscription_ltv(20.0, 1.5, 0.1), "margin must be a fraction in"),
        (lambda: subscription_ltv(-20.0, 0.5, 0.1), "price must be a finite number >= 0"),
    ],
)
def test_plain_formulas_reject_nonsense(call: Any, message: str) -> None:
    """Negative, non-finite or out-of-range inputs fail with the input's name."""
    with pytest.raises(ValueError, match=message):
        call()
