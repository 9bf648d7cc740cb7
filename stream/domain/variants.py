"""A/B assignment: a stable hash of customer_id puts each customer in one variant.

The same customer lands in the same variant on every worker, after every
restart and in every replay, with no state kept.
"""

from __future__ import annotations

import hashlib
from typing import Final

TREATMENT: Final = "treatment"
CONTROL: Final = "control"


def assign_variant(customer_id: str, holdout_share: float) -> str:
    """`control` for a stable `holdout_share` of customers, `treatment` for the rest.

    The first 8 bytes of SHA-256(customer_id) read as a fraction in [0, 1)
    are compared with the share.
    """
    if holdout_share <= 0:
        return TREATMENT
    digest = hashlib.sha256(customer_id.encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    return CONTROL if position < holdout_share else TREATMENT
