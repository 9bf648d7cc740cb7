"""lifetimes' bundled datasets, read directly.

Not through `lifetimes.datasets.load_*`: that module imports pkg_resources,
which needs setuptools, and Python 3.12+ virtualenvs come without it.
"""

from __future__ import annotations

from importlib.resources import files

import pandas as pd


def dataset(name: str) -> pd.DataFrame:
    """A CSV shipped in lifetimes' datasets (what `lifetimes.datasets.load_*` read)."""
    with (files("lifetimes") / "datasets" / name).open() as source:
        return pd.read_csv(source)


def cdnow_transactions() -> pd.DataFrame:
    """The CDNOW sample's transactions (2,357 customers, 1997-01 to 1998-06)."""
    with (files("lifetimes") / "datasets" / "CDNOW_sample.txt").open() as source:
        frame = pd.read_csv(
            source,
            sep=r"\s+",
            header=None,
            names=["customer", "id", "date", "cds", "dollars"],
            dtype={"date": str},
        )
    frame["date"] = pd.to_datetime(frame["date"], format="%Y%m%d")
    return frame
