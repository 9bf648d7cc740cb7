"""stream.fit: maximum-likelihood BG/NBD and Gamma-Gamma, against lifetimes and the published
CDNOW estimates, and `python -m stream fit-ltv` end to end."""

from __future__ import annotations

import io
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest
from lifetimes import BetaGeoFitter, GammaGammaFitter
from lifetimes.utils import summary_data_from_transaction_data

from stream.domain.clv import LtvParams
from stream.domain.events import format_ts, parse_ts
from stream.fit import FitError, fit_bgnbd, fit_gamma_gamma, main, read_history, summarize
from tests.lifetimes_data import cdnow_transactions, dataset

DAY = 86_400.0


def order_line(number: int, customer: str, ts: float, total: float) -> bytes:
    """One `order_completed` event as a JSONL line."""
    return orjson.dumps(
        {
            "event_id": f"evt-{number}",
            "type": "order_completed",
            "customer_id": customer,
            "ts": format_ts(ts),
            "order_id": f"order-{number}",
            "items": [{"sku": "cd", "quantity": 1, "unit_price": total}],
        }
    )


def cdnow_jsonl(path: Path, bad_after: int = 5) -> None:
    """The CDNOW transactions as purchase events, with a line of garbage after line `bad_after`."""
    lines = [
        order_line(i, str(row.id), row.date.timestamp(), float(row.dollars))
        for i, row in enumerate(cdnow_transactions().itertuples())
    ]
    lines.insert(bad_after, b"{not json")
    path.write_bytes(b"\n".join(lines) + b"\n")


def lifetimes_summary(end: str, monetary: bool = True) -> pd.DataFrame:
    """lifetimes' RFM summary of the CDNOW transactions in days, up to `end`."""
    return summary_data_from_transaction_data(
        cdnow_transactions(),
        "id",
        "date",
        monetary_value_col="dollars" if monetary else None,
        observation_period_end=end,
        freq="D",
    )


def lifetimes_fit(
    summary: pd.DataFrame, monetary: bool = True
) -> tuple[dict[str, float], dict[str, float] | None]:
    """lifetimes' BG/NBD (and Gamma-Gamma) parameters on a summary."""
    bgf = BetaGeoFitter().fit(summary["frequency"], summary["recency"], summary["T"])
    bg = {k: float(v) for k, v in bgf.params_.items()}
    if not monetary:
        return bg, None
    repeat = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
    ggf = GammaGammaFitter().fit(repeat["frequency"], repeat["monetary_value"])
    return bg, {k: float(v) for k, v in ggf.params_.items()}


# --- the published CDNOW estimates ------------------------------------------------------


def test_reproduces_the_published_cdnow_estimates() -> None:
    """The published CDNOW estimates (Fader, Hardie & Lee 2005, 39 weeks) and log-likelihood."""
    summary = dataset("cdnow_customers_summary.csv")
    assert len(summary) == 2_357
    fit = fit_bgnbd(
        summary["frequency"].tolist(), summary["recency"].tolist(), summary["T"].tolist()
    )
    m = fit.params
    assert (round(m.r, 3), round(m.alpha, 3), round(m.a, 3), round(m.b, 3)) == (
        0.243,
        4.414,
        0.793,
        2.426,
    )
    assert round(fit.log_likelihood, 1) == -9582.4
    assert fit.customers == 2_357


# --- against lifetimes' fitters on the same data -------------------------------------------


@pytest.mark.parametrize(
    ("data", "monetary"),
    [
        ("cdnow weeks", True),  # the 39-week summary with mean repeat spend (zbar)
        ("1997-09-30", True),  # CDNOW in days, 39-week calibration
        ("1998-06-30", True),  # CDNOW in days, all 78 weeks
        ("example", False),  # lifetimes' synthetic transactions, days, no money
    ],
)
def test_fit_matches_lifetimes(data: str, monetary: bool) -> None:
    """Our BG/NBD and Gamma-Gamma parameters are within 0.1% of lifetimes' (the issue asks 1%)."""
    if data == "cdnow weeks":
        summary = dataset("cdnow_customers_summary_with_transactions.csv").rename(
            columns={"x": "frequency", "t_x": "recency", "zbar": "monetary_value"}
        )
    elif data == "example":
        summary = summary_data_from_transaction_data(
            dataset("example_transactions.csv"),
            "id",
            "date",
            observation_period_end="2014-12-31",
            freq="D",
        )
    else:
        summary = lifetimes_summary(data)
    want_bg, want_gg = lifetimes_fit(summary, monetary)
    bg = fit_bgnbd(
        summary["frequency"].tolist(), summary["recency"].tolist(), summary["T"].tolist()
    ).params
    assert {"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b} == pytest.approx(want_bg, rel=1e-3)
    if want_gg is not None:
        repeat = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
        gg = fit_gamma_gamma(repeat["frequency"].tolist(), repeat["monetary_value"].tolist()).params
        assert {"p": gg.p, "q": gg.q, "v": gg.v} == pytest.approx(want_gg, rel=1e-3)


@pytest.mark.parametrize("end", ["1997-09-30", "1998-06-30"])
def test_summaries_equal_lifetimes(tmp_path: Path, end: str) -> None:
    """The stream's domain code (decode, apply_order, rfm) gives lifetimes' summary, freq='D'."""
    path = tmp_path / "cdnow.jsonl"
    cdnow_jsonl(path)
    with path.open("rb") as lines:
        history = read_history(lines)
    ours = summarize(history.events, parse_ts(f"{end}T00:00:00Z"))
    theirs = lifetimes_summary(end)
    assert sorted(ours) == sorted(str(i) for i in theirs.index)
    for customer, row in theirs.iterrows():
        summary = ours[str(customer)]
        assert (summary.frequency, summary.recency, summary.T) == (
            row["frequency"],
            row["recency"],
            row["T"],
        )
        assert summary.monetary_value == pytest.approx(row["monetary_value"], rel=1e-12)


def test_command_matches_lifetimes_on_cdnow(tmp_path: Path) -> None:
    """fit-ltv on the CDNOW events (39-week calibration) writes lifetimes' parameters to 0.1%."""
    history, out = tmp_path / "cdnow.jsonl", tmp_path / "params.json"
    cdnow_jsonl(history)
    stdout, stderr = io.StringIO(), io.StringIO()
    assert (
        main([str(history), "--out", str(out), "--as-of", "1997-09-30T00:00:00Z"], stdout, stderr)
        == 0
    )
    params = LtvParams.from_json(orjson.loads(out.read_bytes()))
    want_bg, want_gg = lifetimes_fit(lifetimes_summary("1997-09-30"))
    m, g = params.bgnbd, params.gamma_gamma
    assert {"r": m.r, "alpha": m.alpha, "a": m.a, "b": m.b} == pytest.approx(want_bg, rel=1e-3)
    assert {"p": g.p, "q": g.q, "v": g.v} == pytest.approx(want_gg, rel=1e-3)
    assert f"{history}:6: not_json" in stderr.getvalue()
    assert "2,357 customers, 946 repeat customers" in stdout.getvalue()


# --- the command on a small generated history --------------------------------------------


def generated_history(path: Path, customers: int = 300, seed: int = 7) -> dict[str, int]:
    """Purchase events drawn from BG/NBD and Gamma-Gamma over 2025, shuffled, plus two refunds,
    one blank and two bad lines. Returns what the file holds."""
    rng = random.Random(seed)
    start = parse_ts("2025-01-01T00:00:00Z")
    lines: list[bytes] = []
    orders: list[tuple[str, str, float]] = []
    for c in range(customers):
        customer = f"cust-{c:04d}"
        rate = rng.gammavariate(0.8, 1 / 20)  # purchases a day ~ Gamma(r, alpha)
        dropout = rng.betavariate(0.8, 4.0)  # ~ Beta(a, b)
        nu = rng.gammavariate(4.0, 1 / 40)  # spend scale ~ Gamma(q, v): mean p v/(q-1) = 40
        day = rng.uniform(0, 180)
        while day < 365:
            number = len(orders)
            ts = start + day * DAY
            value = round(rng.gammavariate(3.0, 1 / nu), 2)  # ~ Gamma(p, nu)
            lines.append(order_line(number, customer, ts, value))
            orders.append((customer, f"order-{number}", ts))
            if rng.random() < dropout:
                break
            day += rng.expovariate(rate)
    for customer, order_id, ts in orders[:2]:
        refund = {
            "event_id": f"refund-{order_id}",
            "type": "order_refunded",
            "customer_id": customer,
            "ts": format_ts(ts + DAY),
            "order_id": order_id,
        }
        lines.append(orjson.dumps(refund))
    rng.shuffle(lines)
    lines[3:3] = [b"", b'{"type": "order_completed"}', b"[1, 2]"]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return {"lines": len(lines), "events": len(lines) - 3, "customers": customers}


def test_command_end_to_end(tmp_path: Path) -> None:
    """fit-ltv reports bad lines by number, fits, and writes params that LtvParams reads."""
    history, out = tmp_path / "history.jsonl", tmp_path / "params.json"
    held = generated_history(history)
    stdout, stderr = io.StringIO(), io.StringIO()
    code = main(
        [str(history), "--out", str(out), "--clv-months", "6", "--monthly-discount-rate", "0.02"],
        stdout,
        stderr,
    )
    assert code == 0, stderr.getvalue()
    assert stderr.getvalue().splitlines() == [
        f"{history}:5: missing_field: event_id is required",
        f"{history}:6: not_object: value must be a JSON object, got an array of length 2",
    ]
    report = stdout.getvalue()
    assert (
        f"{held['lines']:,} lines, {held['events']:,} purchase events (2 refunds), 2 bad lines"
        in report
    )
    assert f"{held['customers']:,} customers" in report
    assert f"wrote {out}" in report
    document = orjson.loads(out.read_bytes())
    params = LtvParams.from_json(document)
    assert (params.clv_months, params.monthly_discount_rate) == (6, 0.02)
    assert document["fit"]["customers"] == held["customers"]
    assert document["fit"]["bgnbd_log_likelihood"] < 0


def test_python_m_stream_fit_ltv(tmp_path: Path) -> None:
    """`python -m stream fit-ltv` dispatches to the command."""
    history, out = tmp_path / "history.jsonl", tmp_path / "params.json"
    generated_history(history, customers=120)
    done = subprocess.run(
        [sys.executable, "-m", "stream", "fit-ltv", str(history), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert LtvParams.from_json(orjson.loads(out.read_bytes())).clv_months == 12


def one_time_buyers() -> bytes:
    return b"\n".join(
        order_line(i, f"c{i}", parse_ts("2025-03-01T00:00:00Z") + i * DAY, 10.0) for i in range(5)
    )


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (b"nope\n{}\n", [], "fit-ltv: no valid purchase events"),
        (one_time_buyers(), [], "BG/NBD needs at least one repeat customer"),
        (one_time_buyers(), ["--as-of", "2024-01-01T00:00:00Z"], "BG/NBD needs at least one"),
        (None, [], "fit-ltv: cannot read"),
    ],
)
def test_command_fails_without_writing(
    tmp_path: Path, content: bytes | None, args: list[str], message: str
) -> None:
    """Nothing to fit: exit 1, the reason on stderr, no params file."""
    history, out = tmp_path / "history.jsonl", tmp_path / "params.json"
    if content is not None:
        history.write_bytes(content)
    stderr = io.StringIO()
    assert main([str(history), "--out", str(out), *args], io.StringIO(), stderr) == 1
    assert message in stderr.getvalue()
    assert not out.exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--as-of", "yesterday"],
        ["--as-of", "2025-01-01T00:00:00"],  # no offset
        ["--clv-months", "0"],
        ["--clv-months", "121"],
        ["--monthly-discount-rate", "-0.1"],
        ["--penalizer", "nan"],
    ],
)
def test_command_rejects_bad_options(tmp_path: Path, args: list[str]) -> None:
    """Bad options are usage errors (exit 2), before anything is read."""
    with pytest.raises(SystemExit) as exit_info:
        main(
            [str(tmp_path / "x.jsonl"), "--out", str(tmp_path / "p.json"), *args],
            io.StringIO(),
            io.StringIO(),
        )
    assert exit_info.value.code == 2


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: fit_bgnbd([], [], []), "at least one customer"),
        (lambda: fit_bgnbd([1, 0], [5.0, 0.0], [0.0, 0.0]), "older than 0"),
        (lambda: fit_gamma_gamma([], []), "at least one repeat customer"),
        (lambda: fit_gamma_gamma([1, 0], [10.0, 5.0]), "frequency > 0 and value > 0"),
        (lambda: fit_gamma_gamma([1, 2], [10.0, 0.0]), "frequency > 0 and value > 0"),
    ],
)
def test_fitters_refuse_what_they_cannot_fit(call: Any, message: str) -> None:
    """Empty input, no age, or non-repeat customers in Gamma-Gamma raise FitError."""
    with pytest.raises(FitError, match=message):
        call()


def test_read_history_drops_a_byte_order_mark() -> None:
    """A file saved with a UTF-8 BOM keeps its first event (as replay reads it); a BOM on a
    later line is bad input."""
    line = (
        b'{"event_id": "e1", "type": "order_completed", "customer_id": "c1", '
        b'"ts": "2026-11-23T09:15:00Z", "order_id": "o1", '
        b'"items": [{"sku": "a", "unit_price": 5.0}]}\n'
    )
    history = read_history([b"\xef\xbb\xbf" + line, b"\xef\xbb\xbf" + line])
    assert [number for number, _ in history.events] == [1]
    assert [number for number, _ in history.bad] == [2]


@pytest.mark.parametrize("where", ["missing/params.json", "a-directory"])
def test_params_that_cannot_be_written_are_a_message(tmp_path: Path, where: str) -> None:
    """--out in a directory that does not exist, or naming a directory: exit 1 with the
    reason, after the fit, and no .tmp file left (it was a FileNotFoundError traceback)."""
    history = tmp_path / "cdnow.jsonl"
    cdnow_jsonl(history)
    (tmp_path / "a-directory").mkdir()
    out, stderr = tmp_path / where, io.StringIO()
    assert main([str(history), "--out", str(out)], io.StringIO(), stderr) == 1
    assert f"fit-ltv: cannot write {out}" in stderr.getvalue()
    assert not out.with_name(out.name + ".tmp").exists()
