"""Shared fixtures. Tests make their own small data; none reads ../shared/data."""

from __future__ import annotations

import pandas as pd
import pytest

import jlabel as jl

NEWS_LABELS = ["World", "Sports", "Business", "Sci/Tech"]


@pytest.fixture(scope="session", autouse=True)
def score_cache_of_the_run(tmp_path_factory):
    """The default score cache of this test run: tests never read or write the user's own."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JLABEL_CACHE", str(tmp_path_factory.mktemp("cache") / "scores.sqlite"))
        yield


@pytest.fixture
def task() -> jl.Task:
    return jl.Task(NEWS_LABELS, instructions="Classify the news article by topic.")


@pytest.fixture
def small_df() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "text": [
                "The central bank raised interest rates again.",
                "The striker scored twice in the final.",
                "Leaders met in Geneva to discuss the ceasefire.",
                "A new chip doubles battery life in phones.",
                "",
            ]
        },
        index=[f"r{i}" for i in range(5)],
    )


@pytest.fixture(scope="session")
def embedded_llm():
    """The real embedded model (SmolLM2-135M-Instruct through llama.cpp), loaded once per session."""
    return jl.llm()
