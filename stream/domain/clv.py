"""Customer lifetime value: BG/NBD + Gamma-Gamma in closed form, and the seeds' plain formulas.

Scores per event from parameters fitted offline (`python -m stream fit-ltv`),
with lifetimes' semantics (Fader, Hardie & Lee 2005; lifetimes 0.11.3) on the
RFM summary of `stream.domain.ltv.rfm`, in days:

- `p_alive`: P(alive | x, t_x, T), lifetimes' `conditional_probability_alive`;
- `expected_purchases`: E[purchases in (T, T + t] | x, t_x, T], lifetimes'
  `conditional_expected_number_of_purchases_up_to_time`;
- `expected_average_value`: E[value per purchase | x, m], lifetimes'
  `conditional_expected_average_profit`;
- `predicted_clv`: lifetimes' `GammaGammaFitter.customer_lifetime_value(...,
  time=clv_months, discount_rate=monthly_discount_rate, freq='D')`.

Notation: x = frequency (repeat purchase days), t_x = recency, T = age, all in
days; r, alpha, a, b the BG/NBD and p, q, v the Gamma-Gamma parameters.

Numerics: P(alive) is a logistic of a log-odds, so it neither overflows nor
loses precision for large x. The hypergeometric term of the expected
purchases is evaluated after Euler's transformation,
2F1(r+x, b+x; a+b+x-1; z) (1-z)^(r+x) = 2F1(a+b-1-r, a-1; a+b+x-1; z) (1-z)^(a-1),
whose upper parameters do not grow with x: the series converges faster as x
grows, where the untransformed term (lifetimes' first choice) overflows.
One vectorised `hyp2f1` call evaluates all months of a CLV horizon.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from scipy.special import hyp2f1

DAYS_PER_MONTH: Final = 30
"""lifetimes' month for `freq='D'`: CLV steps are 30 days long."""
MAX_CLV_MONTHS: Final = 120
"""Upper bound on `clv_months`: the scoring cost per event grows with it."""


@dataclass(frozen=True, slots=True)
class BgNbd:
    """BG/NBD parameters (day units): purchase rate ~ Gamma(r, alpha), dropout p ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float


@dataclass(frozen=True, slots=True)
class GammaGamma:
    """Gamma-Gamma parameters of the value per purchase: shape p, and nu ~ Gamma(q, v)."""

    p: float
    q: float
    v: float

    @property
    def population_mean(self) -> float:
        """E[value per purchase] of a customer drawn at random: v p / (q - 1)."""
        return self.v * self.p / (self.q - 1.0)


@dataclass(frozen=True, slots=True)
class LtvParams:
    """`STREAM_LTV_PARAMS`: both models, the CLV horizon in months and the monthly discount rate."""

    bgnbd: BgNbd
    gamma_gamma: GammaGamma
    clv_months: int = 12
    monthly_discount_rate: float = 0.01

    @property
    def horizon_days(self) -> int:
        """The horizon of `expected_purchases` and `predicted_clv`: clv_months x 30 days."""
        return self.clv_months * DAYS_PER_MONTH

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LtvParams:
        """The params file's object -> `LtvParams`; `ValueError` naming the field if invalid.

        Every model parameter is a finite number > 0; besides, q > 1 (else the
        population's mean value per purchase, v p / (q - 1), is not finite)
        and a != 1 (the expected purchases divide by a - 1). `clv_months` is an
        integer in 1..MAX_CLV_MONTHS, `monthly_discount_rate` a finite
        number >= 0. An informational `fit` object (written by `fit-ltv`) is
        allowed and ignored; any other unknown field is an error, so that a
        misspelt key does not silently fall back to its default.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"LTV params must be a JSON object, got {type(data).__name__}")
        _no_unknown_keys(
            data, "", {"bgnbd", "gamma_gamma", "clv_months", "monthly_discount_rate", "fit"}
        )
        bg = _section(data, "bgnbd", ("r", "alpha", "a", "b"))
        gg = _section(data, "gamma_gamma", ("p", "q", "v"))
        if bg["a"] == 1.0:
            raise ValueError(
                "bgnbd.a must not be exactly 1 (the expected purchases divide by a - 1)"
            )
        if gg["q"] <= 1.0:
            raise ValueError(
                f"gamma_gamma.q must be > 1 (the mean value per purchase is v p / (q - 1)), "
                f"got {gg['q']!r}"
            )
        months = data.get("clv_months", 12)
        if type(months) is not int or not 1 <= months <= MAX_CLV_MONTHS:
            raise ValueError(
                f"clv_months must be an integer from 1 to {MAX_CLV_MONTHS}, got {months!r}"
            )
        raw_rate = data.get("monthly_discount_rate", 0.01)
        rate = _number(raw_rate)
        if rate is None or not 0.0 <= rate < math.inf:
            raise ValueError(
                f"monthly_discount_rate must be a finite number >= 0, got {raw_rate!r}"
            )
        return cls(
            bgnbd=BgNbd(r=bg["r"], alpha=bg["alpha"], a=bg["a"], b=bg["b"]),
            gamma_gamma=GammaGamma(p=gg["p"], q=gg["q"], v=gg["v"]),
            clv_months=months,
            monthly_discount_rate=rate,
        )

    def to_json(self) -> dict[str, Any]:
        """The params file's object (DESIGN.md, `STREAM_LTV_PARAMS`); `from_json` reads it back."""
        m, g = self.bgnbd, self.gamma_gamma
        return {
            "bgnbd": {"r": m.r, "alpha": m.alpha, "a": m.a, "b": m.b},
            "gamma_gamma": {"p": g.p, "q": g.q, "v": g.v},
            "clv_months": self.clv_months,
            "monthly_discount_rate": self.monthly_discount_rate,
        }


def _number(value: object) -> float | None:
    """A JSON number (int or float, not bool) as float, else None."""
    return float(value) if type(value) is int or type(value) is float else None


def _no_unknown_keys(data: Mapping[str, Any], prefix: str, known: set[str]) -> None:
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise ValueError(f"unknown field {prefix}{unknown[0]} (known: {', '.join(sorted(known))})")


def _section(data: Mapping[str, Any], name: str, keys: tuple[str, ...]) -> dict[str, float]:
    section = data.get(name)
    if not isinstance(section, Mapping):
        raise ValueError(f"{name} must be an object with {', '.join(keys)}, got {section!r}")
    _no_unknown_keys(section, f"{name}.", set(keys))
    values: dict[str, float] = {}
    for key in keys:
        value = _number(section.get(key))
        if value is None or not 0.0 < value < math.inf:
            raise ValueError(f"{name}.{key} must be a finite number > 0, got {section.get(key)!r}")
        values[key] = value
    return values


# --- BG/NBD -------------------------------------------------------------------


def _log_odds_dead(m: BgNbd, frequency: float, recency: float, T: float) -> float:
    """log(P(dead) / P(alive)) for x >= 1: (r+x) ln((alpha+T)/(alpha+t_x)) + ln(a/(b+x-1))."""
    return (m.r + frequency) * math.log((m.alpha + T) / (m.alpha + recency)) + math.log(
        m.a / (m.b + frequency - 1.0)
    )


def _logistic(z: float) -> float:
    """1 / (1 + e^-z), without overflow for any finite z."""
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def p_alive(m: BgNbd, frequency: float, recency: float, T: float) -> float:
    """P(alive | x, t_x, T) = 1 / (1 + (a / (b+x-1)) ((alpha+T) / (alpha+t_x))^(r+x)); 1 for x = 0.

    Fader, Hardie & Lee, "Computing P(alive) using the BG/NBD model" (2008),
    as lifetimes' `conditional_probability_alive`; evaluated as a logistic
    of the log-odds, so large x neither overflows nor underflows to NaN.
    """
    if frequency == 0:
        return 1.0
    return _logistic(-_log_odds_dead(m, frequency, recency, T))


def _expected_purchases_each(
    m: BgNbd, horizons: Sequence[float], frequency: float, T: float, alive: float
) -> list[float]:
    """E[purchases in (T, T + t]] for each t in `horizons` (days > 0), given P(alive)."""
    base = m.alpha + T
    kept = [base / (base + t) for t in horizons]  # 1 - z
    h = hyp2f1(
        m.a + m.b - 1.0 - m.r,
        m.a - 1.0,
        m.a + m.b + frequency - 1.0,
        [t / (base + t) for t in horizons],
    ).tolist()
    first = (m.a + m.b + frequency - 1.0) / (m.a - 1.0) * alive
    power = m.a - 1.0
    return [first * (1.0 - hk * k**power) for hk, k in zip(h, kept, strict=True)]


def expected_purchases(m: BgNbd, t: float, frequency: float, recency: float, T: float) -> float:
    """E[purchases in the next t days | x, t_x, T] (Fader, Hardie & Lee 2005, eq. 10).

    E = (a+b+x-1)/(a-1) [1 - 2F1(r+x, b+x; a+b+x-1; z) ((alpha+T)/(alpha+T+t))^(r+x)]
        x P(alive),   z = t / (alpha+T+t),

    which is lifetimes' `conditional_expected_number_of_purchases_up_to_time`
    (its denominator 1 + [x>0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x) is
    1 / P(alive)); the 2F1 term is evaluated after Euler's transformation
    (module docstring). 0 for t = 0; `ValueError` for t < 0.
    """
    if t < 0:
        raise ValueError(f"t must be >= 0 days, got {t!r}")
    if t == 0:
        return 0.0
    alive = p_alive(m, frequency, recency, T)
    base = m.alpha + T
    h = float(hyp2f1(m.a + m.b - 1.0 - m.r, m.a - 1.0, m.a + m.b + frequency - 1.0, t / (base + t)))
    first = (m.a + m.b + frequency - 1.0) / (m.a - 1.0) * alive
    return first * (1.0 - h * math.pow(base / (base + t), m.a - 1.0))


# --- Gamma-Gamma --------------------------------------------------------------


def expected_average_value(gg: GammaGamma, frequency: float, monetary_value: float) -> float:
    """E[value per purchase | x, m] = (1 - w) v p / (q - 1) + w m,   w = p x / (p x + q - 1).

    Fader, Hardie & Lee (2005), "RFM and CLV", eq. 5 (lifetimes'
    `conditional_expected_average_profit`): the customer's mean repeat value m
    shrunk towards the population mean; for x = 0 (w = 0) the population mean.
    """
    weight = gg.p * frequency / (gg.p * frequency + gg.q - 1.0)
    return (1.0 - weight) * gg.population_mean + weight * monetary_value


# --- CLV ----------------------------------------------------------------------


@lru_cache(maxsize=16)
def _steps(months: int, rate: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Month ends in days (30, 60, ...) and each month's discount factor (1 + d)^k."""
    return (
        tuple(float(k * DAYS_PER_MONTH) for k in range(1, months + 1)),
        tuple((1.0 + rate) ** k for k in range(1, months + 1)),
    )


SCORES_KEPT: Final = 8192  # ~250 bytes each, 2 MB


@dataclass(frozen=True, slots=True)
class Scores:
    """A customer's model scores at one moment (DESIGN.md, `customer-ltv`)."""

    p_alive: float
    expected_purchases: float
    """Over the params' horizon (clv_months x 30 days)."""
    expected_average_value: float
    predicted_clv: float


@lru_cache(maxsize=SCORES_KEPT)
def score(
    params: LtvParams, frequency: float, recency: float, T: float, monetary_value: float
) -> Scores:
    """P(alive), expected purchases over the horizon, value per purchase and CLV in one pass.

    The same numbers as `p_alive`, `expected_purchases(params.horizon_days)`,
    `expected_average_value` and `predicted_clv`, for the cost of the last one.
    Kept for the SCORES_KEPT latest summaries: RFM is counted in whole days,
    so a customer scored at every cart add of a session, and every customer
    with one purchase day as old, has the same summary again (a pure
    function of hashable arguments). `python -m stream bench handlers`, 3
    runs each: 126.3 -> 120.2 us an event, a cart add 100.1 -> 92.8 us.
    """
    alive = p_alive(params.bgnbd, frequency, recency, T)
    value = expected_average_value(params.gamma_gamma, frequency, monetary_value)
    horizons, discounts = _steps(params.clv_months, params.monthly_discount_rate)
    cumulative = _expected_purchases_each(params.bgnbd, horizons, frequency, T, alive)
    clv = 0.0
    previous = 0.0
    for purchases, discount in zip(cumulative, discounts, strict=True):
        clv += value * (purchases - previous) / discount
        previous = purchases
    return Scores(
        p_alive=alive,
        expected_purchases=previous,
        expected_average_value=value,
        predicted_clv=clv,
    )


def predicted_clv(
    params: LtvParams, frequency: float, recency: float, T: float, monetary_value: float
) -> float:
    """Discounted expected spend over `clv_months` months of 30 days:

    CLV = sum_{k=1..clv_months} E[value | x, m] (E(30k) - E(30(k-1))) / (1 + d)^k,

    with E(t) = `expected_purchases(t, ...)` and d the monthly discount rate:
    lifetimes' `_customer_lifetime_value` loop with `freq='D'` (factor 30,
    discount (1 + d)^(i/30) at day i = 30k), Gamma-Gamma's expected value per
    purchase as the monetary value.
    """
    return score(params, frequency, recency, T, monetary_value).predicted_clv


# --- the seeds' plain formulas --------------------------------------------------


def simple_ltv(aov: float, purchases_per_year: float, expected_lifetime_years: float) -> float:
    """LTV = AOV x purchase frequency x expected lifetime.

    e.g. 50 per order x 4 orders a year x 3 years = 600. Every factor must be
    a finite number >= 0 (`ValueError` otherwise).
    """
    for name, value in (
        ("aov", aov),
        ("purchases_per_year", purchases_per_year),
        ("expected_lifetime_years", expected_lifetime_years),
    ):
        if not 0.0 <= value < math.inf:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return aov * purchases_per_year * expected_lifetime_years


def subscription_ltv(price: float, margin: float, churn: float) -> float:
    """Subscription LTV = price x margin / churn.

    `price` per period, `margin` the kept fraction of it, `churn` the share
    of subscribers lost per period (so 1 / churn periods are expected: a
    geometric lifetime), e.g. 20 x 0.5 / 0.05 = 200. `ValueError` unless
    price >= 0, 0 <= margin <= 1 and 0 < churn <= 1.
    """
    if not 0.0 <= price < math.inf:
        raise ValueError(f"price must be a finite number >= 0, got {price!r}")
    if not 0.0 <= margin <= 1.0:
        raise ValueError(f"margin must be a fraction in [0, 1], got {margin!r}")
    if not 0.0 < churn <= 1.0:
        raise ValueError(f"churn must be a fraction in (0, 1], got {churn!r}")
    return price * margin / churn
