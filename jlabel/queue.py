"""Active-learning orderings of the unlabeled records, and overlapping queues for teams."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .frame import record_keys, unlabeled

STRATEGIES = ("least_confidence", "margin", "entropy", "disagreement", "random")


def matrix(df: pd.DataFrame, column: str = "llm_probs") -> np.ndarray:
    """The ``(n, k)`` probability matrix of a list column, without a task (``k`` from the data).

    Rows without probabilities are NaN. A column whose rows hold different numbers of
    probabilities is a ``ValueError``.

    Examples
    --------
    >>> matrix(pd.DataFrame({"llm_probs": [[0.2, 0.8], None]}))
    array([[0.2, 0.8],
           [nan, nan]])
    """
    if column not in df.columns:
        raise ValueError(f"no column {column!r} in the frame (columns: {list(df.columns)}); run jl.preannotate first.")
    series = df[column]
    if isinstance(series.dtype, pd.ArrowDtype):
        array = pa.chunked_array(series.array._pa_array).combine_chunks()
    else:
        values = series.to_numpy(dtype=object)
        lists = [v if isinstance(v, list | tuple | np.ndarray) else None for v in values]
        array = pa.array(lists, type=pa.list_(pa.float64()))
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    lengths = pc.list_value_length(array).to_numpy(zero_copy_only=False)[valid]
    k = int(lengths[0]) if len(lengths) else 0
    if len(lengths) and (lengths != k).any():
        raise ValueError(f"{column!r} holds probability lists of different lengths {sorted(set(lengths.tolist()))}.")
    out = np.full((len(df), max(k, 1)), np.nan)
    if valid.any():
        flat = pc.list_flatten(array).to_numpy(zero_copy_only=False)  # null lists add no values
        if len(flat) != valid.sum() * k:  # a null list that still spans values: drop them first (slower)
            flat = pc.list_flatten(array.filter(pa.array(valid))).to_numpy(zero_copy_only=False)
        flat = flat.astype(np.float64, copy=False).reshape(-1, k)
        if valid.all():
            return flat
        out[valid] = flat
    return out


def scores(probs: np.ndarray | Sequence[np.ndarray], strategy: str, *, multi: bool = False) -> np.ndarray:
    """Informativeness per record (higher = ask a human first); NaN where there are no probabilities.

    ``multi=True``: each column is a label's own P(yes) (a multi-label task), and a record is as
    uncertain as its least certain label: ``least_confidence`` is 1 - min(max(p, 1 - p)), ``margin``
    the smallest gap between P(yes) and P(no), ``entropy`` the sum of the labels' yes/no entropies.

    Examples
    --------
    >>> scores(np.array([[0.9, 0.1], [0.5, 0.5]]), "margin")
    array([-0.8, -0. ])
    >>> scores(np.array([[0.02, 0.01], [0.5, 0.99]]), "least_confidence", multi=True)
    array([0.02, 0.5 ])
    """
    if strategy == "disagreement":
        shapes = {np.shape(p) for p in probs}
        if len(shapes) > 1:
            raise ValueError(
                f"strategy='disagreement' compares probability columns over the same labels; got shapes "
                f"{sorted(shapes)} (records, labels): pass columns scored for the same task."
            )
        stack = np.stack([np.asarray(p, dtype=np.float64) for p in probs])  # (m, n, k)
        votes = np.nanargmax(np.where(np.isnan(stack), -np.inf, stack), axis=2)
        share = (votes[:, :, None] == np.arange(stack.shape[2])).mean(axis=0)
        vote_entropy = -(share * np.log(np.where(share > 0, share, 1))).sum(axis=1)
        mean = stack.mean(axis=0)  # ties in vote entropy broken by the entropy of the mean
        out = vote_entropy + 1e-3 * _entropy(mean)
        return np.where(np.isnan(stack).any(axis=(0, 2)), np.nan, out)
    p = np.asarray(probs, dtype=np.float64)
    if multi and strategy in ("least_confidence", "margin", "entropy"):
        sure = np.maximum(p, 1 - p)  # each label's own yes/no decision
        if strategy == "least_confidence":
            return 1 - sure.min(axis=1)
        if strategy == "margin":
            return -(2 * sure - 1).min(axis=1)
        both = np.stack([p, 1 - p], axis=2)
        return -(both * np.log(np.where(both > 0, both, 1))).sum(axis=(1, 2))
    if strategy == "least_confidence":
        return 1 - functools.reduce(np.maximum, p.T)  # faster than p.max(axis=1) on narrow rows
    if strategy == "margin":
        top2 = -np.partition(-p, 1, axis=1)[:, :2] if p.shape[1] > 1 else np.c_[p, np.zeros(len(p))]
        return -(top2[:, 0] - top2[:, 1])
    if strategy == "entropy":
        return _entropy(p)
    raise ValueError(f"unknown strategy {strategy!r}; choose one of {list(STRATEGIES)}.")


def _entropy(p: np.ndarray) -> np.ndarray:
    return -(p * np.log(np.where(p > 0, p, 1))).sum(axis=1)


def queue(
    df: pd.DataFrame,
    strategy: str = "least_confidence",
    *,
    k: int | None = None,
    explore: float = 0.1,
    seed: int = 0,
    probs: str | Sequence[str] = "llm_probs",
    stratify: str | None = None,
    id: str | None = None,
    task=None,
    learn: bool = False,
    cache: str | os.PathLike | bool = True,
) -> pd.Index:
    """The unlabeled records' keys, most informative first.

    Parameters
    ----------
    df
        The frame (with ``llm_probs`` from :func:`jlabel.preannotate` or
        :func:`jlabel.set_suggestions`, except for ``strategy="random"``).
    strategy
        ``least_confidence`` (1 - top probability), ``margin`` (smallest gap between the
        two top labels first), ``entropy``, ``disagreement`` (vote entropy across several
        probability columns, e.g. ``probs=["llm_probs", "llm_probs_v2"]``) or ``random``.
    k
        Return only the first ``k`` keys.
    explore
        Share of queue positions (0..1), spread evenly, given to random unlabeled records so
        the queue does not only show the model's blind spots.
    seed
        Seed of the random choices (explore records, ``random``, ties).
    probs
        The probability column, or a list of them for ``disagreement``.
    stratify
        A column: the queue takes the strata in turn (round-robin, each in its own order),
        so every stratum is seen early.
    id
        A column holding the record keys (default: the index).
    task, learn
        With ``learn=True`` (and the :class:`jlabel.Task`), rank with the probabilities of a
        :class:`jlabel.Assistant` learned from the frame's human labels and the ``probs`` column,
        instead of the column as it is (not for ``disagreement``). A multi-label task's
        probabilities are each label's own P(yes) (see :func:`scores`); without the task, rows
        that do not sum to 1 are read so.
    cache
        With ``learn=True``: the score cache holding the record vectors of a ``preannotate(learn=True)``
        run, read by the learner (``True``: the default; a path, as given to ``preannotate``; ``False``: none).

    Returns
    -------
    pandas.Index
        Keys of unlabeled records. Records without probabilities come after the scored ones.

    Examples
    --------
    >>> df = pd.DataFrame({"llm_probs": [[0.9, 0.1], [0.5, 0.5], [0.7, 0.3]]}, index=["a", "b", "c"])
    >>> list(queue(df, explore=0))
    ['b', 'c', 'a']
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {list(STRATEGIES)}.")
    if not 0 <= explore <= 1:
        raise ValueError(f"explore must be a share between 0 and 1, got {explore!r}.")
    if k is not None and (not isinstance(k, int | np.integer) or k < 0):
        raise ValueError(f"k must be a non-negative integer or None, got {k!r}.")
    keys = record_keys(df, id)
    rng = np.random.default_rng(seed)
    candidates = np.flatnonzero(unlabeled(df))
    n = len(candidates)
    if strategy == "random":
        score = rng.random(n)
    else:
        columns = [probs] if isinstance(probs, str) else list(probs)
        if strategy == "disagreement" and len(columns) < 2:
            raise ValueError(
                f"strategy='disagreement' compares several probability columns, got probs={probs!r}; "
                "pass e.g. probs=['llm_probs', 'llm_probs_v2']."
            )
        if learn:  # the learner reads the column when there is one, else the words alone
            mats = [_learned(df, task, columns[0], id, strategy, cache)]
        else:
            mats = [matrix(df, c) for c in columns]
        if n < len(df):
            mats = [m[candidates] for m in mats]
        score = scores(mats if strategy == "disagreement" else mats[0], strategy, multi=_is_multi(task, mats[0]))
    # best first; ties in random order; unscored records last
    shuffled = rng.permutation(n)
    score = np.where(np.isnan(score), -np.inf, score)
    ranked = shuffled[np.argsort(-score[shuffled])]
    if stratify is not None:  # each of scored and unscored records in turns of the strata
        last = np.isneginf(score[ranked])
        ranked = np.concatenate(
            [
                _round_robin(df, stratify, candidates, ranked[~last]),
                _round_robin(df, stratify, candidates, ranked[last]),
            ]
        )
    if explore > 0 and n:
        slots = np.floor((np.arange(1, n + 1)) * explore) > np.floor(np.arange(n) * explore)
        picked = rng.permutation(n)[: int(slots.sum())]
        taken = np.zeros(n, dtype=bool)
        taken[picked] = True
        rest = ranked[~taken[ranked]]
        order = np.empty(n, dtype=np.int64)
        order[slots], order[~slots] = picked, rest
        ranked = order
    if k is not None:
        ranked = ranked[:k]
    return keys[candidates[ranked]]


def _is_multi(task, probs: np.ndarray) -> bool:
    """A multi-label task's P(yes) per label: from the task, else rows that do not sum to 1."""
    if task is not None and getattr(task, "kind", None) is not None:
        return task.kind == "multi"
    sums = probs.sum(axis=1)
    sums = sums[np.isfinite(sums)]
    return bool(probs.shape[1] > 1 and len(sums) and (np.abs(sums - 1) > 1e-3).any())


def _learned(df: pd.DataFrame, task, column: str, id: str | None, strategy: str, cache) -> np.ndarray:
    from .learn import Assistant
    from .task import Task

    if not isinstance(task, Task):
        raise TypeError(f"learn=True needs the task: pass task=jl.Task(...), got task={task!r}.")
    if strategy == "disagreement":
        raise ValueError(
            "learn=True ranks with one learned probability matrix; use another strategy than 'disagreement'."
        )
    probs = column if column in df.columns else None
    return Assistant(df, task, probs=probs, vectors="cache", cache=cache, id=id).fit(select=True).probs()[0]


def _round_robin(df: pd.DataFrame, column: str, candidates: np.ndarray, ranked: np.ndarray) -> np.ndarray:
    if column not in df.columns:
        raise ValueError(f"stratify={column!r} is not a column; columns: {list(df.columns)}.")
    stratum = pd.factorize(df[column].to_numpy()[candidates][ranked], use_na_sentinel=False)[0]
    turn = pd.Series(stratum).groupby(stratum).cumcount().to_numpy()
    # within a turn, strata in the order their best record appears
    return ranked[np.lexsort((stratum, turn))]


def assign(
    df: pd.DataFrame | pd.Index | Sequence,
    annotators: Sequence[str],
    *,
    overlap: float = 0.1,
    seed: int = 0,
    id: str | None = None,
) -> dict[str, pd.Index]:
    """Split records between annotators, giving a share of them to a second annotator too.

    Parameters
    ----------
    df
        The frame (its unlabeled records, in frame order) or the keys to split, in order
        (e.g. from :func:`queue`).
    annotators
        Two or more names (one is allowed with ``overlap=0``).
    overlap
        Share of records (0..1) also given to a second, different annotator, so that
        :func:`jlabel.agreement` can be measured on them.
    seed
        Seed of which records overlap and who gets them.
    id
        A column holding the record keys (default: the index).

    Returns
    -------
    dict of str to pandas.Index
        Each annotator's queue, in the order of the input. Every record appears in one
        queue; the overlapping ones in two.

    Examples
    --------
    >>> queues = assign(pd.Index(range(10)), ["ana", "ben"], overlap=0.2)
    >>> sum(len(q) for q in queues.values())  # 10 records, 2 of them given twice
    12
    >>> len(queues["ana"].intersection(queues["ben"]))
    2
    """
    names = list(annotators) if not isinstance(annotators, str) else [annotators]
    if not names or len(set(names)) != len(names):
        raise ValueError(f"annotators must be distinct names, got {names!r}.")
    if not 0 <= overlap <= 1:
        raise ValueError(f"overlap must be a share between 0 and 1, got {overlap!r}.")
    if overlap > 0 and len(names) < 2:
        raise ValueError(f"overlap={overlap} needs at least two annotators, got {names!r}; pass overlap=0.")
    if isinstance(df, pd.DataFrame):
        keys = record_keys(df, id)[unlabeled(df)]
    else:
        keys = pd.Index(df)
        if keys.has_duplicates:
            raise ValueError(f"duplicate keys to assign: {keys[keys.duplicated()].unique()[:5].tolist()}.")
    n, a = len(keys), len(names)
    rng = np.random.default_rng(seed)
    first = rng.permutation(n) % a  # balanced primary annotator
    second = np.full(n, -1)
    shared = rng.permutation(n)[: round(n * overlap)]
    if len(shared):
        second[shared] = (first[shared] + rng.integers(1, a, len(shared))) % a
    return {name: keys[(first == i) | (second == i)] for i, name in enumerate(names)}
