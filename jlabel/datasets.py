"""Small datasets shipped with jlabel, written for the project (Apache-2.0, like the code)."""

from __future__ import annotations

from importlib import resources

import pandas as pd

NEWS_TOPICS = ("World", "Sports", "Business", "Sci/Tech")


def news_demo() -> pd.DataFrame:
    """120 short news items written for jlabel, 30 per topic, indexed by ``id``.

    Columns ``title``, ``description`` and ``topic`` (the gold label: World, Sports,
    Business or Sci/Tech). The items are original, not taken from any news corpus.

    Examples
    --------
    >>> df = news_demo()
    >>> len(df), df["topic"].value_counts().unique().tolist()
    (120, [30])
    >>> list(df.columns)
    ['title', 'description', 'topic']
    """
    with resources.files("jlabel").joinpath("data/news_demo.csv").open("r", encoding="utf-8") as handle:
        return pd.read_csv(handle, index_col="id", dtype=str, keep_default_na=False)
