"""The public news-topic sample the benchmarks read by path (../shared/data; never shipped)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from jlabel.frame import STRING_DTYPE

LABELS = ["World", "Sports", "Business", "Sci/Tech"]
DEFAULT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ag_news_dev.csv"


def load_news(path: str | Path = DEFAULT, n: int | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """The first ``n`` records as a frame with a ``text`` column (title. description) and their label codes 0-3."""
    raw = pd.read_csv(path).head(n) if n is not None else pd.read_csv(path)
    df = pd.DataFrame({"text": raw["title"].astype(str) + ". " + raw["description"].astype(str)})
    return df, raw["label"].to_numpy() - 1


def with_labels(df: pd.DataFrame, y: np.ndarray, rows: np.ndarray) -> pd.DataFrame:
    """A copy of ``df`` whose ``label`` column holds the gold label of ``rows`` (the simulated human labels)."""
    out = df.copy()
    label = pd.Series(pd.NA, index=df.index, dtype=STRING_DTYPE)
    label.iloc[rows] = np.asarray(LABELS, dtype=object)[y[rows]]
    out["label"] = label
    return out
