"""jl.queue orderings and jl.assign overlap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import entropy

import jlabel as jl
from jlabel.queue import matrix

TASK = jl.Task(["a", "b", "c"])


def _frame(n: int = 200, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(3) * 0.7, n)
    df = pd.DataFrame({"label": pd.Series([None] * n, dtype=object)}, index=[f"r{i}" for i in range(n)])
    return jl.set_suggestions(df, TASK, p, model="m"), p


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("least_confidence", lambda p: 1 - p.max(axis=1)),
        ("margin", lambda p: -np.diff(np.sort(p, axis=1)[:, -2:], axis=1)[:, 0]),
        ("entropy", lambda p: entropy(p, axis=1)),
    ],
)
def test_uncertainty_orders_match_a_plain_sort(strategy, expected):
    df, p = _frame()
    df.loc[["r3", "r7"], "label"] = "a"  # labeled records never enter the queue
    order = jl.queue(df, strategy, explore=0)
    assert len(order) == 198 and not {"r3", "r7"} & set(order)
    score = pd.Series(expected(p), index=df.index).drop(["r3", "r7"])
    assert np.all(np.diff(score[order].to_numpy()) <= 1e-12)  # most informative first


def test_explore_mixes_in_random_records_evenly_and_is_seeded():
    df, _ = _frame(1000)
    pure = jl.queue(df, explore=0)
    mixed = jl.queue(df, explore=0.2, seed=1)
    assert sorted(mixed) == sorted(pure)  # same records, other order
    assert mixed.equals(jl.queue(df, explore=0.2, seed=1))
    assert not mixed.equals(jl.queue(df, explore=0.2, seed=2))
    # every 5th slot is a random pick; the other slots keep the informative order
    informative = mixed[np.floor(np.arange(1, 1001) * 0.2) == np.floor(np.arange(1000) * 0.2)]
    rank = pd.Series(np.arange(1000), index=pure)
    assert np.all(np.diff(rank[informative].to_numpy()) > 0)
    assert len(informative) == 800
    assert jl.queue(df, explore=0.2, k=10).equals(jl.queue(df, explore=0.2)[:10])


def test_disagreement_puts_records_the_models_vote_differently_first():
    df, p = _frame(50)
    other = p.copy()
    other[:10] = np.roll(p[:10], 1, axis=1)  # the second model disagrees on r0..r9
    df["llm_probs_v2"] = jl.set_suggestions(df, TASK, other, model="m2")["llm_probs"]
    order = jl.queue(df, "disagreement", probs=["llm_probs", "llm_probs_v2"], explore=0)
    assert set(order[:10]) == {f"r{i}" for i in range(10)}
    with pytest.raises(ValueError, match="several probability columns"):
        jl.queue(df, "disagreement")


def test_unscored_records_come_last_and_random_needs_no_probs():
    df, _ = _frame(20)
    df.loc["r0", "llm_probs"] = None
    order = jl.queue(df, explore=0)
    assert order[-1] == "r0" and np.isnan(matrix(df)[0]).all()
    bare = pd.DataFrame({"text": list("abcdef")})
    order = jl.queue(bare, "random", seed=4)
    assert sorted(order) == list(range(6)) and order.equals(jl.queue(bare, "random", seed=4))


def test_stratify_takes_the_strata_in_turn():
    df, _ = _frame(90)
    df["source"] = np.repeat(["x", "y", "z"], 30)
    order = jl.queue(df, stratify="source", explore=0)
    first = df.loc[order[:9], "source"].to_numpy()
    assert sorted(first[:3]) == ["x", "y", "z"] and sorted(first[3:6]) == ["x", "y", "z"]
    with pytest.raises(ValueError, match="stratify='nope' is not a column"):
        jl.queue(df, stratify="nope")
    # records without probabilities still come after every scored one (they came in their stratum's turn)
    df.loc[["r0", "r1", "r40"], "llm_probs"] = None
    order = jl.queue(df, stratify="source", explore=0)
    assert set(order[-3:]) == {"r0", "r1", "r40"}


def test_multi_label_uncertainty_reads_each_label_as_its_own_yes_or_no():
    task = jl.Task(["x", "y", "z"], kind="multi")
    p = np.array([[0.02, 0.01, 0.03], [0.5, 0.5, 0.5], [0.98, 0.97, 0.99], [0.99, 0.4, 0.01]])
    df = jl.set_suggestions(pd.DataFrame(index=["none", "unsure", "all", "one_unsure"]), task, p, model="m")
    for strategy in ("least_confidence", "margin", "entropy"):
        # the records the model is sure of (no label, every label) last, whatever its probabilities sum to
        for given in (task, None):
            order = list(jl.queue(df, strategy, explore=0, task=given))
            assert order[0] == "unsure" and set(order[2:]) == {"none", "all"}, (strategy, given)


def test_bad_input_is_explained():
    df, _ = _frame(5)
    with pytest.raises(ValueError, match="unknown strategy 'confidence'"):
        jl.queue(df, "confidence")
    with pytest.raises(ValueError, match="explore must be a share"):
        jl.queue(df, explore=1.5)
    with pytest.raises(ValueError, match="k must be"):
        jl.queue(df, k=-1)
    with pytest.raises(ValueError, match="no column 'llm_probs'"):
        jl.queue(pd.DataFrame({"x": [1]}))
    ragged = pd.DataFrame({"llm_probs": [[0.5, 0.5], [0.2, 0.3, 0.5]]})
    with pytest.raises(ValueError, match="different lengths"):
        jl.queue(ragged)
    # nothing scored yet: every record, in random order (was an error from inside pyarrow)
    assert len(jl.queue(pd.DataFrame({"llm_probs": [None, None]}, dtype=object))) == 2
    two = df.assign(llm_probs_v2=[[0.1, 0.2, 0.3, 0.4]] * 5)
    with pytest.raises(ValueError, match="over the same labels"):
        jl.queue(two, "disagreement", probs=["llm_probs", "llm_probs_v2"])


def test_assign_gives_every_record_once_and_the_overlap_twice():
    df, _ = _frame(1000)
    queues = jl.assign(df, ["ana", "ben", "cy"], overlap=0.1, seed=3)
    counts = pd.Series(np.concatenate([q.to_numpy() for q in queues.values()])).value_counts()
    assert set(counts.index) == set(df.index)
    assert (counts == 2).sum() == 100 and counts.max() == 2
    assert all(abs(len(q) - 1100 / 3) < 40 for q in queues.values())
    for q in queues.values():  # each queue keeps the input order
        assert np.all(np.diff(df.index.get_indexer(q)) > 0)
    assert queues["ana"].equals(jl.assign(df, ["ana", "ben", "cy"], overlap=0.1, seed=3)["ana"])
    order = jl.queue(df, explore=0)
    mine = jl.assign(order, ["ana", "ben"], overlap=0)["ana"]
    assert np.all(np.diff(order.get_indexer(mine)) > 0)
    with pytest.raises(ValueError, match="at least two annotators"):
        jl.assign(df, ["ana"], overlap=0.1)
    with pytest.raises(ValueError, match="distinct names"):
        jl.assign(df, ["ana", "ana"])
    with pytest.raises(ValueError, match="duplicate keys"):
        jl.assign(["a", "a"], ["ana", "ben"])


def test_learning_ranks_a_frame_nothing_pre_annotated():
    # labels and words, no model column: the learner reads the words alone (was: "run jl.preannotate first")
    from jlabel.learn import Assistant

    task = jl.Task(["x", "y"])
    rng = np.random.default_rng(0)
    first = rng.random(200) < 0.5
    words = np.where(first, "alpha beta ", "gamma delta ").astype(object)
    mixed = np.arange(150, 170)  # both labels' words: the learner is unsure of these, neither first nor last
    words[mixed] = "alpha beta gamma delta "
    df = pd.DataFrame({"text": [w + str(i) for i, w in enumerate(words)]})
    df["label"] = pd.Series([("x" if f else "y") if i < 80 else None for i, f in enumerate(first)], dtype="string")
    order = jl.queue(df, task=task, learn=True, explore=0)
    assert len(order) == 120 and set(order) == set(range(80, 200))
    # least confident first by the learned probabilities, not in row order
    assert set(order[:20]) == set(mixed)
    confidence = Assistant(df, task).fit(select=True).probs()[0].max(axis=1)[df.index.get_indexer(order)]
    assert np.all(np.diff(confidence) >= -1e-9)
