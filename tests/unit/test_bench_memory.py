"""stream.bench.memory's weighing of what a recovered worker holds (no broker).

Figures are not judged here (README "Performance"); this proves what they
count: each table's records rebuilt in a new process, the customer ids that
the tables share counted once, the values held as the store holds them.
"""

from __future__ import annotations

import sys

from stream.bench.memory import recovered_bytes
from stream.domain.carts import CartState
from stream.domain.ltv import CustomerState, pack
from stream.state import dump_state

T0 = 1_795_425_300.0
CUSTOMERS = 2000


def customers(ids: list[str]) -> list[tuple[bytes, bytes]]:
    return [(cid.encode(), pack(CustomerState(orders=1, first_ts=T0, last_ts=T0))) for cid in ids]


def carts(ids: list[str]) -> list[tuple[bytes, bytes]]:
    cart = dump_state(CartState(cart_id="k1", items={"a": 1}, last_ts=T0, seen={"e1": (0, 1)}))
    return [(cid.encode(), cart) for cid in ids]


def test_a_customer_id_the_tables_share_is_counted_once() -> None:
    ids = [f"cust-{n:06d}" for n in range(CUSTOMERS)]
    others = [f"other-{n:06d}" for n in range(CUSTOMERS)]
    shared = recovered_bytes(
        [
            ("customers", customers(ids), "utf8", "held-customers"),
            ("carts", carts(ids), "utf8", "held-carts"),
        ],
        86_400.0,
    )
    apart = recovered_bytes(
        [
            ("customers", customers(ids), "utf8", "held-customers"),
            ("carts", carts(others), "utf8", "held-carts"),
        ],
        86_400.0,
    )
    assert set(shared) == {"customers", "carts", "rank index"}
    id_bytes = sys.getsizeof(ids[0])  # 60: a 12-character ASCII str
    assert apart["carts"] - shared["carts"] >= 0.9 * id_bytes * CUSTOMERS
    assert abs(apart["customers"] - shared["customers"]) < 0.05 * shared["customers"]
    assert shared["rank index"] > 0


def test_values_are_weighed_as_the_store_holds_them() -> None:
    """The held codecs' compressed values weigh less than the records they hold."""
    ids = [f"cust-{n:06d}" for n in range(CUSTOMERS)]
    records = carts(ids)
    held = recovered_bytes(
        [
            ("customers", customers(ids), "utf8", "held-customers"),
            ("carts", records, "utf8", "held-carts"),
        ],
        86_400.0,
    )
    as_records = recovered_bytes(
        [
            ("customers", customers(ids), "utf8", "held-customers"),
            ("carts", records, "utf8", "packed-state"),
        ],
        86_400.0,
    )
    record_bytes = len(records[0][1])
    assert as_records["carts"] - held["carts"] >= 0.3 * record_bytes * CUSTOMERS
