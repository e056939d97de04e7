"""Precision and recall of jl.check on the news-topic set with 10% of the labels flipped.

The embedded model (SmolLM2-135M-Instruct via llama.cpp) scores every record once (zero-shot,
no human labels in the prompt, batch label-bias correction); then 10% of the true labels are
flipped at random to another label and jl.check is asked which labels look wrong.

    python benchmarks/check_news.py [--data ../shared/data/ag_news_dev.csv] [--n 2000] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from news import DEFAULT, LABELS, load_news

import jlabel as jl
from jlabel import calibration, quality


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT))
    parser.add_argument("--n", type=int, default=2000, help="records to use (the first n)")
    parser.add_argument("--noise", type=float, default=0.1, help="share of labels flipped")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fit", action="store_true", help="fit label bias and temperature on the human labels first")
    parser.add_argument("--no-learn", action="store_true", help="the model's probabilities alone (learn=False)")
    args = parser.parse_args()

    df, gold = load_news(args.data, args.n)
    truth = np.asarray(LABELS, dtype=object)[gold]
    task = jl.Task(LABELS, instructions="Classify the news article by topic.", text="text")

    start = time.perf_counter()
    scored = jl.preannotate(df, task, jl.llm(), examples=None, progress=False)
    print(f"scored {len(df)} records with the embedded model in {time.perf_counter() - start:.1f} s")
    p = jl.probs(scored, task)
    print(f"model accuracy on true labels: {(np.asarray(LABELS)[p.argmax(axis=1)] == truth).mean():.3f}")

    rng = np.random.default_rng(args.seed)
    flip = rng.random(len(df)) < args.noise
    shift = rng.integers(1, len(LABELS), len(df))
    codes = (gold + np.where(flip, shift, 0)) % len(LABELS)
    labeled = scored.assign(label=np.asarray(LABELS, dtype=object)[codes])

    if args.fit:  # bias and temperature fitted on the (noisy) human labels, then the check
        fitted = calibration.fit(jl.probs(labeled, task), codes)
        labeled = jl.set_suggestions(labeled, task, fitted.apply(jl.probs(labeled, task)), model="fitted")
        print(
            f"after the fit: model accuracy on true labels {(jl.probs(labeled, task).argmax(axis=1) == gold).mean():.3f}"
        )
    start = time.perf_counter()
    suspects = quality.check(labeled, task, learn=False if args.no_learn else None)
    seconds = time.perf_counter() - start
    flagged = np.isin(np.arange(len(df)).astype(str), suspects.index.to_numpy())
    tp = (flagged & flip).sum()
    precision = tp / max(flagged.sum(), 1)
    recall = tp / max(flip.sum(), 1)
    print(f"flipped {flip.sum()} of {len(df)} labels; jl.check flagged {flagged.sum()} in {seconds:.3f} s")
    print(f"precision {precision:.3f}  recall {recall:.3f}")
    top = min(flip.sum(), len(suspects))
    top_hits = flip[suspects.index.to_numpy(dtype=int)[:top]].mean() if top else float("nan")
    print(f"precision of the top {top} suspects (as many as were flipped): {top_hits:.3f}")
    hits = np.cumsum(flip[suspects.index.to_numpy(dtype=int)])
    ranked_precision, ranked_recall = hits / np.arange(1, len(hits) + 1), hits / max(flip.sum(), 1)
    reach = ranked_recall >= 0.5
    if reach.any():
        k = int(np.argmax(reach))
        print(f"top {k + 1} suspects: precision {ranked_precision[k]:.3f} at recall {ranked_recall[k]:.3f}")
    else:
        print(f"the suspects reach recall {ranked_recall[-1] if len(hits) else 0:.3f} at most")


if __name__ == "__main__":
    main()
