"""The label-bias corrections when one label dominates: raw, batch mean (the default) and fitted on labels.

The embedded model scores the first ``--n`` news records once, zero-shot, without correction (the score
cache makes a rerun cheap). For each mix of labels, ``--draws`` random frames of ``--size`` records are
drawn from them in that mix; on each, the first ``--labels`` records play the labeled ones and every
number is measured on the rest:

- raw: the model's probabilities (``calibrate=None``);
- batch: divided by their mean over the frame (``calibrate="auto"`` on a frame this size);
- fitted: ``jlabel.calibration.fit`` on the labeled records (a bias per label and a temperature);
- learn: ``jl.Assistant`` on the batch-corrected probabilities and the labeled records (as
  ``preannotate(learn=True)``, without the model's record vectors).

    python benchmarks/bench_skew.py [--data ../shared/data/ag_news_dev.csv] [--n 1000] [--size 300] [--labels 50]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from news import DEFAULT, LABELS, load_news, with_labels

import jlabel as jl
from jlabel import calibration

MIXES = {
    "as drawn": None,
    "70/10/10/10": (0.7, 0.1, 0.1, 0.1),
    "10/10/10/70": (0.1, 0.1, 0.1, 0.7),
    "40/40/10/10": (0.4, 0.4, 0.1, 0.1),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--size", type=int, default=300, help="records per drawn frame")
    parser.add_argument("--labels", type=int, default=50, help="labeled records per frame (for 'fitted')")
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "jlabel_bench_learn.sqlite")
    args = parser.parse_args()

    df, y = load_news(args.data, args.n)
    task = jl.Task(LABELS, instructions="Classify the news article by topic.", text="text")
    scored = jl.preannotate(df, task, jl.llm(), examples=None, calibrate=None, cache=args.cache, progress=False)
    raw = jl.probs(scored, task)
    rows = []
    for name, shares in MIXES.items():
        for draw in range(args.draws):
            rng = np.random.default_rng(draw)
            if shares is None:
                pick = rng.choice(len(y), args.size, replace=False)
            else:
                pick = np.concatenate(
                    [
                        rng.choice(np.flatnonzero(y == c), int(args.size * s), replace=False)
                        for c, s in enumerate(shares)
                    ]
                )
                pick = rng.permutation(pick)
            p, truth = raw[pick], y[pick]
            labeled, rest = slice(0, args.labels), slice(args.labels, None)
            batch = calibration.rescale(p, calibration.batch_prior(p))
            frame = with_labels(df.iloc[pick].reset_index(drop=True), truth, np.arange(args.labels))
            variants = {
                "raw": p,
                "batch": batch,
                "fitted": calibration.fit(p[labeled], truth[labeled]).apply(p),
                "learn": jl.Assistant(frame, task, probs=batch).fit(select=True).predict()[0],
            }
            for variant, q in variants.items():
                rows.append(
                    {
                        "mix": name,
                        "correction": variant,
                        "accuracy": calibration.accuracy(q[rest], truth[rest]),
                        "ece": calibration.ece(q[rest], truth[rest]),
                    }
                )
    table = pd.DataFrame(rows).groupby(["mix", "correction"], sort=False).mean().unstack("correction")
    print(
        f"# bench_skew: {args.draws} frames of {args.size} news records per mix (labels in the task's order "
        f"{LABELS}), measured on the {args.size - args.labels} after the first {args.labels}\n"
    )
    print(table.round(3).to_markdown())


if __name__ == "__main__":
    main()
