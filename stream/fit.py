"""`python -m stream fit-ltv FILE --out PARAMS.json`: fit the LTV models from purchase history.

FILE holds purchase events, one JSON object a line (the `purchase-events`
contract). Each line is validated by the stream's own decoder; a bad line is
reported with its number and skipped. Each customer's events are folded in
event-time order with the stream's domain code (`apply_order`,
`apply_refund`), and `rfm` summarises them at `--as-of` (default: the latest
event time; later events are left out, so an earlier `--as-of` gives a
calibration period). Then, by maximum likelihood:

- BG/NBD (Fader, Hardie & Lee 2005) on every customer's (x, t_x, T) in days,
  with lifetimes' `BetaGeoFitter` likelihood and penalizer (default 0);
- Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM and CLV") on the repeat
  customers whose mean repeat value is > 0, as lifetimes' `GammaGammaFitter`.

Both are minimised over log-parameters with BFGS and analytic gradients, from
lifetimes' start (every log-parameter 0.1; BG/NBD on ages scaled to at most 1).
The params file (DESIGN.md, `STREAM_LTV_PARAMS`) gets both models, the CLV
horizon and discount rate, and an informational `fit` object.

    python -m stream fit-ltv purchases.jsonl --out ltv-params.json
    python -m stream fit-ltv purchases.jsonl --out ltv-params.json --as-of 2026-09-30T00:00:00Z
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO

import numpy as np
import orjson
from numpy.typing import NDArray
from scipy.optimize import minimize
from scipy.special import digamma, gammaln

from stream.codec import InvalidEvent, decode_purchase
from stream.domain.clv import MAX_CLV_MONTHS, BgNbd, GammaGamma, LtvParams
from stream.domain.events import PurchaseEvent, format_ts, parse_ts
from stream.domain.ltv import CustomerState, Rfm, apply_order, apply_refund, rfm

Floats = NDArray[np.float64]

START: Final = 0.1
"""lifetimes' starting point: every log-parameter 0.1."""
TOLERANCE: Final = 1e-7
"""lifetimes' default `tol` (BFGS: gradient norm of the mean negative log-likelihood)."""
GRADIENT_OK: Final = 1e-4
"""A run that stops on precision loss is accepted when its gradient is this small.

The objective is the mean negative log-likelihood per customer: at 1e-4 a
whole unit of any log-parameter moves it by a ten-thousandth. BFGS stops on
precision loss where the likelihood is flat, as on the ridge of large a and
b (no spread in dropout); how small the gradient is there depends on the
processor's floating point: the 120-customer history of
`test_python_m_stream_fit_ltv` passed under 1e-5 on the machines of earlier
sessions and stopped at 1.7e-5 on a faster one (same code and wheels)."""
SHOWN_BAD_LINES: Final = 20


class FitError(Exception):
    """The history cannot be fitted (no customers, no repeat buyers, no convergence)."""


@dataclass(frozen=True, slots=True)
class BgNbdFit:
    """Fitted BG/NBD: parameters, total log-likelihood, customers and optimizer iterations."""

    params: BgNbd
    log_likelihood: float
    customers: int
    iterations: int


@dataclass(frozen=True, slots=True)
class GammaGammaFit:
    """Fitted Gamma-Gamma: parameters, total log-likelihood, customers and iterations."""

    params: GammaGamma
    log_likelihood: float
    customers: int
    iterations: int


# --- likelihoods (lifetimes' formulas) and their gradients ---------------------


def _bgnbd_objective(
    log_params: Floats, x: Floats, t_x: Floats, T: Floats, weights: Floats, penalizer: float
) -> tuple[float, Floats]:
    """lifetimes' BetaGeoFitter._negative_log_likelihood (mean, penalized) and its gradient.

    ll = A1 + A2 + ln(e^A3 + [x>0] e^A4) with
    A1 = lnG(r+x) - lnG(r) + r ln(alpha), A2 = lnB(a, b+x) - lnB(a, b),
    A3 = -(r+x) ln(alpha+T), A4 = ln(a) - ln(b+x-1) - (r+x) ln(alpha+t_x).
    """
    params = np.exp(log_params)
    r, alpha, a, b = (float(p) for p in params)
    repeat = x > 0
    b_x = b + np.maximum(x, 1.0) - 1.0
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    a4 = np.where(repeat, np.log(a) - np.log(b_x) - (r + x) * np.log(alpha + t_x), -np.inf)
    top = np.maximum(a3, a4)
    e3 = np.exp(a3 - top)
    e4 = np.exp(a4 - top)
    total = e3 + e4
    ll = a1 + a2 + np.log(total) + top
    w3 = e3 / total
    w4 = e4 / total
    d_r = (
        digamma(r + x)
        - digamma(r)
        + np.log(alpha)
        - w3 * np.log(alpha + T)
        - w4 * np.log(alpha + t_x)
    )
    d_alpha = r / alpha - w3 * (r + x) / (alpha + T) - w4 * (r + x) / (alpha + t_x)
    d_a = digamma(a + b) - digamma(a + b + x) + w4 / a
    d_b = digamma(a + b) + digamma(b + x) - digamma(b) - digamma(a + b + x) - w4 / b_x
    n = float(weights.sum())
    value = -float(np.dot(weights, ll)) / n + penalizer * float(np.sum(params**2))
    grad = np.array([-float(np.dot(weights, d)) / n for d in (d_r, d_alpha, d_a, d_b)])
    grad = (grad + 2.0 * penalizer * params) * params  # d/d(log theta) = theta d/d(theta)
    return value, grad


def _gamma_gamma_objective(
    log_params: Floats, x: Floats, m: Floats, weights: Floats, penalizer: float
) -> tuple[float, Floats]:
    """lifetimes' GammaGammaFitter._negative_log_likelihood (mean, penalized) and its gradient.

    ll = lnG(px+q) - lnG(px) - lnG(q) + q ln v + (px-1) ln m + px ln x - (px+q) ln(xm+v).
    """
    params = np.exp(log_params)
    p, q, v = (float(t) for t in params)
    px = p * x
    spend = x * m + v
    ll = (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(v)
        + (px - 1.0) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(spend)
    )
    d_p = x * (digamma(px + q) - digamma(px) + np.log(m) + np.log(x) - np.log(spend))
    d_q = digamma(px + q) - digamma(q) + np.log(v) - np.log(spend)
    d_v = q / v - (px + q) / spend
    n = float(weights.sum())
    value = -float(np.dot(weights, ll)) / n + penalizer * float(np.sum(params**2))
    grad = np.array([-float(np.dot(weights, d)) / n for d in (d_p, d_q, d_v)])
    grad = (grad + 2.0 * penalizer * params) * params
    return value, grad


def _minimize(objective: Any, size: int, args: tuple[Any, ...], what: str) -> tuple[Floats, int]:
    """BFGS from lifetimes' start; the log-parameters and the iteration count, or `FitError`."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        result = minimize(
            objective, np.full(size, START), args=args, jac=True, method="BFGS", tol=TOLERANCE
        )
    solution = np.asarray(result.x, dtype=np.float64)
    gradient = np.asarray(result.jac, dtype=np.float64)
    finite = bool(np.all(np.isfinite(solution))) and np.isfinite(result.fun)
    if not finite or not (result.success or float(np.max(np.abs(gradient))) < GRADIENT_OK):
        raise FitError(f"{what} did not converge: {result.message}")
    return solution, int(result.nit)


def _patterns(*columns: Iterable[float]) -> tuple[list[Floats], Floats]:
    """Distinct rows of the columns and how many customers share each (the likelihood's weights)."""
    table = np.column_stack([np.asarray(list(c), dtype=np.float64) for c in columns])
    rows, counts = np.unique(table, axis=0, return_counts=True)
    return [rows[:, i] for i in range(rows.shape[1])], counts.astype(np.float64)


def fit_bgnbd(
    frequency: Sequence[float],
    recency: Sequence[float],
    T: Sequence[float],
    penalizer: float = 0.0,
) -> BgNbdFit:
    """Maximum-likelihood BG/NBD on customers' (x, t_x, T), in whatever time unit they use.

    As lifetimes' `BetaGeoFitter(penalizer_coef=penalizer).fit`: ages are
    scaled so that the oldest is 1 while fitting, and alpha scaled back.
    """
    if not len(frequency) == len(recency) == len(T) or len(frequency) == 0:
        raise FitError("BG/NBD needs at least one customer, with x, t_x and T each")
    (x, t_x, age), weights = _patterns(frequency, recency, T)
    oldest = float(age.max())
    if oldest <= 0.0:
        raise FitError("BG/NBD needs a customer older than 0 (every T is 0)")
    if not np.any(x > 0):
        raise FitError("BG/NBD needs at least one repeat customer (every frequency is 0)")
    scale = 1.0 / oldest
    log_params, iterations = _minimize(
        _bgnbd_objective, 4, (x, t_x * scale, age * scale, weights, penalizer), "BG/NBD"
    )
    r, alpha, a, b = (float(v) for v in np.exp(log_params))
    params = BgNbd(r=r, alpha=alpha / scale, a=a, b=b)
    nll, _ = _bgnbd_objective(
        np.log([params.r, params.alpha, params.a, params.b]), x, t_x, age, weights, 0.0
    )
    total = float(weights.sum())
    return BgNbdFit(params, -nll * total, int(total), iterations)


def fit_gamma_gamma(
    frequency: Sequence[float], monetary_value: Sequence[float], penalizer: float = 0.0
) -> GammaGammaFit:
    """Maximum-likelihood Gamma-Gamma on repeat customers' (x > 0, mean repeat value m > 0).

    As lifetimes' `GammaGammaFitter(penalizer_coef=penalizer).fit` (no q constraint).
    """
    if len(frequency) != len(monetary_value) or len(frequency) == 0:
        raise FitError("Gamma-Gamma needs at least one repeat customer with a value > 0")
    if min(frequency) <= 0 or min(monetary_value) <= 0:
        raise FitError("Gamma-Gamma takes only customers with frequency > 0 and value > 0")
    (x, m), weights = _patterns(frequency, monetary_value)
    log_params, iterations = _minimize(
        _gamma_gamma_objective, 3, (x, m, weights, penalizer), "Gamma-Gamma"
    )
    p, q, v = (float(t) for t in np.exp(log_params))
    nll, _ = _gamma_gamma_objective(log_params, x, m, weights, 0.0)
    total = float(weights.sum())
    return GammaGammaFit(GammaGamma(p=p, q=q, v=v), -nll * total, int(total), iterations)


# --- history -> RFM --------------------------------------------------------------


@dataclass(slots=True)
class History:
    """What a JSONL file held: valid purchase events (with line numbers) and bad lines."""

    events: list[tuple[int, PurchaseEvent]] = field(default_factory=list)
    bad: list[tuple[int, str]] = field(default_factory=list)
    lines: int = 0


def read_history(lines: Iterable[bytes]) -> History:
    """Decode each line with the stream's `decode_purchase`; blank lines are skipped.

    A UTF-8 byte order mark before the first line is dropped, as `replay` does.
    """
    history = History()
    for number, line in enumerate(lines, start=1):
        history.lines = number
        if number == 1:
            line = line.removeprefix(b"\xef\xbb\xbf")
        if not line.strip():
            continue
        try:
            history.events.append((number, decode_purchase(line.rstrip(b"\r\n"))))
        except InvalidEvent as exc:
            history.bad.append((number, str(exc)))
    return history


def summarize(events: Iterable[tuple[int, PurchaseEvent]], as_of: float) -> dict[str, Rfm]:
    """Each customer's RFM at `as_of`, folding their events up to it in event-time order.

    The stream's own `apply_order`/`apply_refund`/`rfm`; ties in time keep
    file order. A customer with refunds only (no order up to `as_of`) is left out.
    """
    by_customer: dict[str, list[tuple[float, int, PurchaseEvent]]] = {}
    for number, event in events:
        if event.ts <= as_of:
            by_customer.setdefault(event.customer_id, []).append((event.ts, number, event))
    summaries: dict[str, Rfm] = {}
    for customer_id, timeline in by_customer.items():
        timeline.sort(key=lambda item: (item[0], item[1]))
        state: CustomerState | None = None
        for _, _, event in timeline:
            if event.type == "order_completed":
                state, _ = apply_order(state, event)
            else:
                state, _ = apply_refund(state, event)
        if state is not None and state.orders > 0:
            summaries[customer_id] = rfm(state, as_of)
    return summaries


# --- command line ----------------------------------------------------------------


def _timestamp(text: str) -> float:
    try:
        return parse_ts(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an RFC 3339 timestamp with an offset (like 2026-09-30T00:00:00Z): {text!r}"
        ) from None


def _months(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_CLV_MONTHS:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_CLV_MONTHS}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < float("inf"):
        raise argparse.ArgumentTypeError("must be a finite number >= 0")
    return value


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m stream fit-ltv",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", type=Path, help="purchase events, one JSON object a line")
    parser.add_argument("--out", type=Path, required=True, help="params file to write")
    parser.add_argument(
        "--as-of",
        type=_timestamp,
        default=None,
        help="RFC 3339 end of the history (default: the latest event time)",
    )
    parser.add_argument(
        "--clv-months", type=_months, default=12, help="CLV horizon in months of 30 days (12)"
    )
    parser.add_argument(
        "--monthly-discount-rate", type=_non_negative, default=0.01, help="(default 0.01)"
    )
    parser.add_argument(
        "--penalizer",
        type=_non_negative,
        default=0.0,
        help="L2 penalty on the parameters, as lifetimes' penalizer_coef (default 0)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the command; 0 when the params file was written, 1 when not (the reason on `err`)."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    args = parse_args(argv)
    try:
        with args.file.open("rb") as lines:
            history = read_history(lines)
    except OSError as exc:
        print(f"fit-ltv: cannot read {args.file}: {exc.strerror}", file=err)
        return 1
    for number, reason in history.bad[:SHOWN_BAD_LINES]:
        print(f"{args.file}:{number}: {reason}", file=err)
    if len(history.bad) > SHOWN_BAD_LINES:
        print(f"... and {len(history.bad) - SHOWN_BAD_LINES} more bad lines", file=err)
    refunds = sum(1 for _, e in history.events if e.type == "order_refunded")
    print(
        f"{args.file}: {history.lines:,} lines, {len(history.events):,} purchase events "
        f"({refunds:,} refunds), {len(history.bad):,} bad lines skipped",
        file=out,
    )
    if not history.events:
        print("fit-ltv: no valid purchase events", file=err)
        return 1
    as_of = args.as_of if args.as_of is not None else max(e.ts for _, e in history.events)
    later = sum(1 for _, e in history.events if e.ts > as_of)
    summaries = list(summarize(history.events, as_of).values())
    repeaters = [s for s in summaries if s.frequency > 0]
    valued = [s for s in repeaters if s.monetary_value > 0]
    print(
        f"as of {format_ts(as_of)} ({later:,} later events left out): "
        f"{len(summaries):,} customers, {len(repeaters):,} repeat customers "
        f"({len(valued):,} with a mean repeat value > 0)",
        file=out,
    )
    try:
        started = time.perf_counter()
        bg = fit_bgnbd(
            [s.frequency for s in summaries],
            [s.recency for s in summaries],
            [s.T for s in summaries],
            args.penalizer,
        )
        bg_seconds = time.perf_counter() - started
        started = time.perf_counter()
        gg = fit_gamma_gamma(
            [s.frequency for s in valued], [s.monetary_value for s in valued], args.penalizer
        )
        gg_seconds = time.perf_counter() - started
    except FitError as exc:
        print(f"fit-ltv: {exc}; no params written", file=err)
        return 1
    m, g = bg.params, gg.params
    print(
        f"BG/NBD (days)  r={m.r:.6g} alpha={m.alpha:.6g} a={m.a:.6g} b={m.b:.6g}  "
        f"log-likelihood {bg.log_likelihood:.2f}  ({bg.iterations} iterations, {bg_seconds:.2f} s)",
        file=out,
    )
    print(
        f"Gamma-Gamma    p={g.p:.6g} q={g.q:.6g} v={g.v:.6g}  "
        f"log-likelihood {gg.log_likelihood:.2f}  ({gg.iterations} iterations, {gg_seconds:.2f} s)",
        file=out,
    )
    document: dict[str, Any] = LtvParams(
        bgnbd=m,
        gamma_gamma=g,
        clv_months=args.clv_months,
        monthly_discount_rate=args.monthly_discount_rate,
    ).to_json()
    try:
        LtvParams.from_json(document)  # what the worker will check: q > 1, a != 1
    except ValueError as exc:
        print(f"fit-ltv: the fitted params are unusable: {exc}; no params written", file=err)
        return 1
    document["fit"] = {
        "as_of": format_ts(as_of),
        "customers": bg.customers,
        "repeat_customers": len(repeaters),
        "gamma_gamma_customers": gg.customers,
        "bgnbd_log_likelihood": bg.log_likelihood,
        "gamma_gamma_log_likelihood": gg.log_likelihood,
        "penalizer": args.penalizer,
    }
    target: Path = args.out
    temporary = target.with_name(target.name + ".tmp")
    try:
        temporary.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
        temporary.replace(target)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        print(f"fit-ltv: cannot write {target}: {exc.strerror}; no params written", file=err)
        return 1
    print(f"wrote {target}", file=out)
    return 0
