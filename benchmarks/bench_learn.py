"""Suggestions that learn from every label: accuracy and ECE after 0-400 human labels, and the cascade.

On the news-topic set with the embedded model (SmolLM2-135M-Instruct via llama.cpp). The model scores the
first ``--n`` records once, zero-shot (the score cache makes a rerun cheap: ``--cache``, default a file
in the temp folder). Labels are simulated from the gold labels: ``--pool`` records are the ones a human
labels, in a random order per repeat; the others are held out and every number below is measured on them.

1. Learning: for each number of labels, the LLM alone (zero-shot, as jl.preannotate gives it), the
   suggestion without the model's record vectors (words only), the head alone, the combination and the
   suggestion (the candidate the Assistant chose by cross-validation), mean over ``--repeats`` orders of
   labeling. The record vectors come from a second pass over the --n records (scores and vectors).
   "plain" is the suggestion without self-training (``jl.Assistant(self_train=False)``).
2. Refit time of the Assistant on 1,000 labels (the fast path: no model selection).
3. Cascade, after 200 and 400 labels, on ``--cascade-n`` held-out records that the model has never scored
   (each run from a fresh cache holding only the labeled records' scores and vectors): records/s and
   accuracy of jl.preannotate without learning, with learning, and with learning and the cascade.

    python benchmarks/bench_learn.py [--data ../shared/data/ag_news_dev.csv] [--n 1000] [--pool 400] [--cascade-n 120] [--cascade-labels 200,400]

A cold run (nothing cached) scores --n records at 3-4 records/s on 2 cores, twice (the second pass reads
the vectors too): about 10 minutes for 1,000; a warm one takes about 7 minutes (the cascade runs call the
model on --cascade-n records each). Below 200 labels the ECE of one labeling order swings with the luck of
the sample (0.02-0.13 at 50 labels), so the mean needs many orders.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from news import DEFAULT, LABELS, load_news, with_labels

import jlabel as jl
from jlabel import calibration
from jlabel.preannotate import ScoreCache, scores_and_vectors, text_hashes
from jlabel.prompts import default_prompt


def measure(p: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    ok = ~np.isnan(p).any(axis=1)
    return float((p[ok].argmax(axis=1) == y[ok]).mean()), calibration.ece(p[ok], y[ok])


def learning(args, df, y, P, V, task) -> None:
    rng = np.random.default_rng(args.seed)
    perm = rng.permutation(len(df))
    pool, test = perm[: args.pool], perm[args.pool :]
    zero_acc, zero_ece = measure(P[test], y[test])
    rows = []
    for size in args.sizes:
        for repeat in range(args.repeats):
            order = np.random.default_rng(args.seed + 1 + repeat).permutation(pool)
            frame = with_labels(df, y, order[:size])
            words = jl.Assistant(frame, task, probs=P, seed=args.seed).fit(select=True)
            plain = jl.Assistant(frame, task, probs=P, vectors=V, seed=args.seed, self_train=False).fit(select=True)
            start = time.perf_counter()
            assistant = jl.Assistant(frame, task, probs=P, vectors=V, seed=args.seed).fit(select=True)
            seconds = time.perf_counter() - start
            record = {"labels": size, "repeat": repeat, "chosen": assistant.source, "fit_s": seconds}
            record["words_acc"], record["words_ece"] = measure(words.predict(test)[0], y[test])
            record["plain_acc"], record["plain_ece"] = measure(plain.predict(test)[0], y[test])
            trial = assistant.self_training
            record["self_trained"] = bool(trial and trial["used"])
            record["llm_acc"], record["llm_ece"] = zero_acc, zero_ece
            for name, source in (("head", "head"), ("comb", "combined"), ("sugg", None)):
                p, _ = assistant.predict(test, source=source)
                if source is not None and size == 0:
                    p = np.full_like(p, np.nan)  # nothing learned yet
                record[f"{name}_acc"], record[f"{name}_ece"] = measure(p, y[test]) if size else (np.nan, np.nan)
            if size == 0:
                record["sugg_acc"], record["sugg_ece"] = measure(assistant.predict(test)[0], y[test])
            rows.append(record)
    table = pd.DataFrame(rows)
    summary = table.groupby("labels").agg(
        llm_acc=("llm_acc", "mean"),
        llm_ece=("llm_ece", "mean"),
        words_acc=("words_acc", "mean"),
        words_ece=("words_ece", "mean"),
        plain_acc=("plain_acc", "mean"),
        plain_ece=("plain_ece", "mean"),
        head_acc=("head_acc", "mean"),
        head_ece=("head_ece", "mean"),
        comb_acc=("comb_acc", "mean"),
        comb_ece=("comb_ece", "mean"),
        sugg_acc=("sugg_acc", "mean"),
        sugg_min=("sugg_acc", "min"),
        sugg_ece=("sugg_ece", "mean"),
        self_trained=("self_trained", "mean"),
        chosen=("chosen", lambda s: ",".join(sorted(set(s)))),
        fit_ms=("fit_s", lambda s: 1000 * s.median()),
    )
    summary["gain"] = summary["sugg_acc"] - summary["llm_acc"]
    print(f"\n## Learning: {len(test)} held-out records, mean of {args.repeats} labeling orders\n")
    print(summary.round(3).to_markdown())
    print(
        "\nllm = zero-shot LLM (jl.preannotate, calibrate='auto'); words = the suggestion without the model's record "
        "vectors (TF-IDF head only); plain = the suggestion without self-training; head = the head alone (words and vectors); comb = combination; sugg = the "
        "suggestion (candidate chosen by CV, self-trained where "
        "cross-fitting said it helps: self_trained = share of orders), sugg_min its worst order; "
        "gain = sugg_acc - llm_acc; fit_ms = building the Assistant (TF-IDF, SVD) and fitting it with model selection"
    )


def refit_time(args, df, y, P, V, task) -> None:
    frame = with_labels(df, y, np.arange(900))
    assistant = jl.Assistant(frame, task, probs=P, vectors=V).fit(select=True)
    frame.loc[frame.index[900:1000], "label"] = np.asarray(LABELS, dtype=object)[y[900:1000]]
    times = []
    for _ in range(7):
        start = time.perf_counter()
        assistant.fit(select=False)
        assistant.predict(np.arange(10))  # the panel's next suggestions
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    assistant.fit(select=True)
    selection = time.perf_counter() - start
    print(
        f"\n## Refit on 1000 labels ({len(df)} records): median {1000 * np.median(times):.0f} ms (min {1000 * min(times):.0f}); "
        f"with model selection {1000 * selection:.0f} ms"
    )


def copy_scores(source: ScoreCache, target: Path, model, task, texts: pd.Series) -> None:
    prompt = model.prompt_for(task, default_prompt(task), ())
    k = len(task.labels)
    for batch in (texts, pd.Series(list(calibration.CONTENT_FREE), dtype=object)):
        hashes = text_hashes(batch).tolist()
        probs, notes = source.get(model.id, prompt.hash, hashes, k)
        vectors = source.get_vectors(model.id, prompt.hash, hashes)
        cache = ScoreCache(target)
        cache.put(model.id, prompt.hash, hashes, probs, notes)
        if vectors is not None:
            cache.put_vectors(model.id, prompt.hash, hashes, vectors)
        cache.close()


def cascade(args, df, y, llm, task, cache: Path, labels: int) -> None:
    rng = np.random.default_rng(args.seed)
    perm = rng.permutation(len(df))
    labeled = perm[:labels]
    remaining = perm[args.pool :][: args.cascade_n]
    rows = np.r_[labeled, remaining]
    frame = with_labels(df, y, labeled).iloc[rows]
    held = np.arange(len(labeled), len(rows))
    truth = y[rows][held]
    main = ScoreCache(cache)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for name, options in (
            ("LLM only", {}),
            ("learn", {"learn": True}),
            ("learn + cascade", {"learn": True, "cascade": True}),
        ):
            # each run starts from a cache holding the labeled records' scores and vectors only
            where = Path(folder) / f"{len(results)}.sqlite"
            copy_scores(main, where, llm, task, df["text"].iloc[labeled])
            start = time.perf_counter()
            out = jl.preannotate(frame, task, llm, examples=None, cache=where, progress=False, **options)
            seconds = time.perf_counter() - start
            acc, ece = measure(jl.probs(out, task)[held], truth)
            sources = out["llm_source"].iloc[held].value_counts().to_dict()
            results.append(
                {
                    "run": name,
                    "records": len(held),
                    "seconds": seconds,
                    "records_per_s": len(held) / seconds,
                    "accuracy": acc,
                    "ece": ece,
                    "llm_calls": len(held) - sources.get("cascade", 0),
                    "sources": ", ".join(f"{k} {v}" for k, v in sorted(sources.items())),
                }
            )
    main.close()
    table = pd.DataFrame(results).set_index("run")
    table["speedup"] = table["records_per_s"] / table.loc["LLM only", "records_per_s"]
    table["vs_learn"] = table["records_per_s"] / table.loc["learn", "records_per_s"]
    print(f"\n## Cascade after {labels} labels: {len(held)} held-out records never scored before\n")
    print(table.round(3).to_markdown())
    print("(learn reads the record vectors in the same pass as the scores: each model call costs about 20% more)")

    # the same pre-annotation on every held-out record, the model's scores read from the bench cache
    # (the code path is the same; skipped records are simply not read): accuracy on more records
    everything = np.r_[labeled, perm[args.pool :]]
    frame = with_labels(df, y, labeled).iloc[everything]
    rest = np.arange(len(labeled), len(everything))
    truth = y[everything][rest]
    rows = []
    for name, options in (
        ("LLM only", {}),
        ("learn", {"learn": True}),
        ("learn + cascade", {"learn": True, "cascade": True}),
    ):
        out = jl.preannotate(frame, task, llm, examples=None, cache=cache, progress=False, **options)
        acc, ece = measure(jl.probs(out, task)[rest], truth)
        skipped = float((out["llm_source"].iloc[rest] == "cascade").mean())
        rows.append({"run": name, "records": len(rest), "accuracy": acc, "ece": ece, "skipped": skipped})
    print(f"\nSame after {labels} labels on all {len(rest)} held-out records (model scores from the cache):\n")
    print(pd.DataFrame(rows).set_index("run").round(3).to_markdown())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT)
    parser.add_argument("--n", type=int, default=1000, help="records the model scores (the first n)")
    parser.add_argument("--pool", type=int, default=400, help="records the simulated human labels come from")
    parser.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",")], default=[0, 50, 100, 200, 400])
    parser.add_argument(
        "--repeats", type=int, default=10, help="labeling orders (3 gave ECE 0.060 at 100 labels, 10 gave 0.048)"
    )
    parser.add_argument("--cascade-n", type=int, default=120, help="held-out records timed for the cascade")
    parser.add_argument(
        "--cascade-labels", type=lambda s: [int(v) for v in s.split(",")], default=[200, 400], help="labels before it"
    )
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "jlabel_bench_learn.sqlite")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if max(args.sizes + args.cascade_labels) > args.pool or args.pool >= args.n:
        parser.error("--sizes and --cascade-labels must not exceed --pool, and --pool must be below --n")
    os.environ["JLABEL_CACHE"] = str(args.cache)

    df, y = load_news(args.data, args.n)
    task = jl.Task(LABELS, instructions="Classify the news article by topic.", text="text")
    llm = jl.llm()
    start = time.perf_counter()
    scored = jl.preannotate(df, task, llm, examples=None, cache=args.cache, progress=False)
    P = jl.probs(scored, task)
    print(
        f"# bench_learn: {args.n} records scored zero-shot by {llm.id.split('@')[0]} in "
        f"{time.perf_counter() - start:.1f} s (cache {args.cache}); zero-shot accuracy on all: "
        f"{(P.argmax(axis=1) == y).mean():.3f}, raw (no label-bias correction): "
        f"{(jl.probs(jl.preannotate(df, task, llm, examples=None, calibrate=None, cache=args.cache, progress=False), task).argmax(axis=1) == y).mean():.3f}"
    )
    start = time.perf_counter()
    _, V = scores_and_vectors(df, task, llm, cache=args.cache, progress=False)
    print(f"record vectors ({V.shape[1]} dimensions) read in {time.perf_counter() - start:.1f} s")
    learning(args, df, y, P, V, task)
    refit_time(args, df, y, P, V, task)
    for labels in args.cascade_labels if args.cascade_n else ():
        cascade(args, df, y, llm, task, args.cache, labels)


if __name__ == "__main__":
    main()
