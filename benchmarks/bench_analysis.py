"""Seconds for jl.queue (1,000,000 rows), jl.agreement (1,000,000 labels, 3 annotators) and jl.check
(100,000 labeled rows with precomputed probabilities), each against a plain baseline measured in the
same run on the same data (printed as a ratio).

Baselines: queue - a per-row Python score (``Series.map``) and ``sort_values``; agreement - a pivot
and scikit-learn's ``cohen_kappa_score`` per pair, statsmodels' ``fleiss_kappa`` and the
``krippendorff`` package (no bootstrap, per-label rows or percent agreement); check - the same
confident-learning and same-text rules as loops over records.

    python benchmarks/bench_analysis.py [--queue-rows 1000000] [--labels 1000000] [--check-rows 100000]
"""

from __future__ import annotations

import argparse
import re
import time
from collections import Counter

import numpy as np
import pandas as pd

import jlabel as jl

LABELS = ["World", "Sports", "Business", "Sci/Tech"]


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)


def bench_queue(rows: int, rng) -> None:
    task = jl.Task(LABELS)
    df = pd.DataFrame({"label": pd.Series([None] * rows, dtype=object)})
    df = jl.set_suggestions(df, task, rng.dirichlet(np.ones(4), rows), model="m")
    ours, seconds = timed(lambda: jl.queue(df, "least_confidence", explore=0.1))

    def baseline():
        score = df["llm_probs"].map(lambda p: 1 - max(p))
        return score[df["label"].isna()].sort_values(ascending=False).index

    base, base_seconds = timed(baseline)
    assert len(ours) == len(base) == rows
    print(
        f"jl.queue        {rows:>9,} rows    {seconds:6.2f} s   baseline {base_seconds:6.2f} s   "
        f"ratio {base_seconds / seconds:5.1f}x   (target < 1 s)"
    )


def bench_agreement(labels: int, rng) -> None:
    import krippendorff
    from sklearn.metrics import cohen_kappa_score
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

    records = labels // 3
    truth = rng.integers(0, 4, records)
    long = pd.DataFrame(
        {
            "record": np.repeat(np.arange(records), 3),
            "annotator": np.tile(["ana", "ben", "cy"], records),
            "label": np.asarray(LABELS, dtype=object)[
                np.where(rng.random(records * 3) < 0.8, np.repeat(truth, 3), rng.integers(0, 4, records * 3))
            ],
        }
    )
    ours, seconds = timed(lambda: jl.agreement(long))  # all metrics, per label, 1000 bootstrap resamples

    def baseline():
        wide = long.pivot(index="record", columns="annotator", values="label")
        codes = wide.apply(lambda c: pd.Categorical(c, categories=LABELS).codes).to_numpy()
        kappas = [cohen_kappa_score(codes[:, i], codes[:, j]) for i in range(3) for j in range(i + 1, 3)]
        table, _ = aggregate_raters(codes)
        return (
            kappas,
            fleiss_kappa(table),
            krippendorff.alpha(reliability_data=codes.T.astype(float), level_of_measurement="nominal"),
        )

    (kappas, fleiss, alpha), base_seconds = timed(baseline)
    got = ours[ours["label"] == "all"].set_index(["metric", "raters"])["value"]
    assert np.isclose(got["fleiss_kappa", "all"], fleiss) and np.isclose(got["krippendorff_alpha", "all"], alpha)
    assert np.isclose(got["cohen_kappa", "ana|ben"], kappas[0])
    print(
        f"jl.agreement    {len(long):>9,} labels  {seconds:6.2f} s   baseline {base_seconds:6.2f} s   "
        f"ratio {base_seconds / seconds:5.1f}x   (target < 3 s; ours adds per-label rows and "
        f"1000 bootstrap resamples)"
    )


def bench_check(rows: int, rng) -> None:
    task = jl.Task(LABELS, text="text")
    truth = rng.integers(0, 4, rows)
    logits = rng.normal(0, 1, (rows, 4))
    logits[np.arange(rows), truth] += 2.5
    flip = rng.random(rows) < 0.1
    given = (truth + np.where(flip, rng.integers(1, 4, rows), 0)) % 4
    df = pd.DataFrame(
        {
            "text": [f"story {i} {rng.integers(0, 1000)}" for i in range(rows)],
            "label": np.asarray(LABELS, dtype=object)[given],
        }
    )
    df = jl.set_suggestions(df, task, softmax(logits), model="m")
    ours, seconds = timed(lambda: jl.check(df, task))

    def baseline():
        p = jl.probs(df, task)
        thresholds = [p[given == j, j].mean() for j in range(4)]
        found = []
        for i in range(rows):
            over = [j for j in range(4) if p[i, j] >= thresholds[j]]
            if over and max(over, key=lambda j: p[i, j]) != given[i]:
                found.append(i)
        groups = {}  # the similar-text check: records by normalised text
        for i, text in enumerate(df["text"]):
            groups.setdefault(re.sub(r"[\W_]+", " ", text.lower()).strip(), []).append(i)
        for members in groups.values():
            counts = Counter(given[i] for i in members)
            top = max(counts.values())
            ties = sum(c == top for c in counts.values())
            found += [i for i in members if counts[given[i]] < len(members) and (counts[given[i]] < top or ties > 1)]
        return found

    base, base_seconds = timed(baseline)
    flagged = np.isin(np.arange(rows).astype(str), ours.index.to_numpy())
    assert set(map(str, base)) == set(ours.index)
    print(
        f"jl.check        {rows:>9,} rows    {seconds:6.2f} s   baseline {base_seconds:6.2f} s   "
        f"ratio {base_seconds / seconds:5.1f}x   (target < 5 s)   "
        f"precision {flip[flagged].mean():.2f} recall {flagged[flip].mean():.2f} on 10% flipped labels"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue-rows", type=int, default=1_000_000)
    parser.add_argument("--labels", type=int, default=1_000_000)
    parser.add_argument("--check-rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    bench_queue(args.queue_rows, rng)
    bench_agreement(args.labels, rng)
    bench_check(args.check_rows, rng)


if __name__ == "__main__":
    main()
