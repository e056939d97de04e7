"""Pre-annotation on the embedded model: the naive chat-JSON way against jlabel, in one run.

    python benchmarks/bench_preannotate.py [--data PATH] [--n 200]
    python benchmarks/bench_preannotate.py --quality [--n 1000]

Default: on the first ``--n`` records of the news-topic set, (a) the naive way (a chat
completion asking for JSON with a label and a confidence, constrained by a JSON schema so that
it parses) and (b) jl.preannotate (label scoring with prefix reuse). Prints records/s of both
and their ratio, the prefill-bound limit (prefill tokens/s measured in this run / jlabel's new
tokens per record) and jlabel's share of it, accuracy, and the AUROC of the confidence for
right against wrong.

``--quality``: accuracy, macro-F1, ECE and AUROC of each label-bias correction step, for the
label names only and for the default (a label joining alternatives, "Sci/Tech", also scored
through its parts): raw, batch mean, content-free, bias and temperature fitted on half of the
records' gold labels and measured on the other half; then other verbalisers and balanced
shuffled few-shot on the first ``--n-steps`` records.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import jlabel as jl
from jlabel import calibration as C
from jlabel.prompts import default_prompt

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["World", "Sports", "Business", "Sci/Tech"]
INSTRUCTIONS = "Classify the news article by topic."


def load(path: Path, n: int) -> tuple[pd.DataFrame, np.ndarray]:
    raw = pd.read_csv(path, dtype={"title": str, "description": str}, keep_default_na=False).head(n)
    df = pd.DataFrame({"text": raw["title"].str.strip() + ". " + raw["description"].str.strip()})
    return df, raw["label"].to_numpy() - 1


def measures(P: np.ndarray, y: np.ndarray) -> dict:
    return {
        "accuracy": C.accuracy(P, y),
        "macro_f1": C.macro_f1(P, y),
        "ece": C.ece(P, y),
        "auroc": C.auroc(P.max(axis=1), P.argmax(axis=1) == y),
    }


SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": LABELS}, "confidence": {"type": "number"}},
    "required": ["label", "confidence"],
}


def naive(llm, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, float]:
    """Chat completion asking for {"label", "confidence"} (JSON-schema constrained), parsed."""
    system = (
        f"{INSTRUCTIONS} Labels: {', '.join(LABELS)}. Reply with JSON only: "
        '{"label": one of the labels, "confidence": a number from 0 to 1}.'
    )
    labels, conf = np.full(len(df), -1), np.zeros(len(df))
    start = time.perf_counter()
    for i, text in enumerate(df["text"]):
        out = llm._model.create_chat_completion(
            [{"role": "system", "content": system}, {"role": "user", "content": text}],
            max_tokens=40,
            temperature=0.0,
            seed=0,
            response_format={"type": "json_object", "schema": SCHEMA},
        )
        content = out["choices"][0]["message"]["content"] or ""
        try:
            found = json.loads(re.search(r"\{.*\}", content, re.S).group(0))
            labels[i] = LABELS.index(str(found.get("label")).strip())
            conf[i] = float(found.get("confidence", 0))
        except (AttributeError, ValueError, TypeError):
            pass
    return labels, conf, time.perf_counter() - start


def prefill_rate(llm, tokens: int = 300, repeats: int = 3) -> float:
    """Prefill tokens/s: a prompt of ``tokens`` tokens evaluated from an empty cache."""
    words = " ".join(f"word{i}" for i in range(tokens))
    ids = llm.tokenize(words)[:tokens]
    rates = []
    for _ in range(repeats):
        llm._model.reset()
        llm._model._ctx.kv_cache_seq_rm(-1, 0, -1)
        start = time.perf_counter()
        llm._logits(ids)
        rates.append(len(ids) / (time.perf_counter() - start))
    return float(np.median(rates))


def bench(args) -> None:
    df, y = load(args.data, args.n)
    llm = jl.llm(n_threads=args.threads)
    task = jl.Task(LABELS, instructions=INSTRUCTIONS)
    rate = prefill_rate(llm)
    n_labels, n_conf, naive_s = naive(llm, df)
    with tempfile.TemporaryDirectory() as tmp:
        before = llm.new_tokens()
        start = time.perf_counter()
        out = jl.preannotate(df, task, llm, cache=Path(tmp) / "c.sqlite", progress=False)
        jl_s = time.perf_counter() - start
        new_tokens = (llm.new_tokens() - before) / len(df)
    P = jl.probs(out, task)
    naive_rps, jl_rps = len(df) / naive_s, len(df) / jl_s
    limit = rate / new_tokens
    naive_auroc = C.auroc(n_conf, n_labels == y)
    rows = [
        ("records", len(df), len(df)),
        ("records/s", f"{naive_rps:.2f}", f"{jl_rps:.2f}"),
        ("accuracy", f"{(n_labels == y).mean():.3f}", f"{C.accuracy(P, y):.3f}"),
        ("AUROC conf right vs wrong", f"{naive_auroc:.3f}", f"{C.auroc(P.max(1), P.argmax(1) == y):.3f}"),
        ("unparsed answers", int((n_labels < 0).sum()), int(out["llm_error"].notna().sum())),
        ("distinct confidences", len(np.unique(n_conf)), len(np.unique(P.max(1).round(3)))),
    ]
    print(f"model {llm.id}")
    print(f"{'':28}{'naive chat JSON':>18}{'jlabel':>12}")
    for name, a, b in rows:
        print(f"{name:28}{a!s:>18}{b!s:>12}")
    print(f"speed ratio jlabel / naive: {jl_rps / naive_rps:.2f}x")
    print(f"prefill {rate:.0f} tok/s; jlabel new tokens/record {new_tokens:.1f}; prefill-bound limit {limit:.2f} rec/s")
    print(f"jlabel share of the prefill-bound limit: {jl_rps / limit:.0%}")


def quality(args) -> None:
    df, y = load(args.data, args.n)
    llm = jl.llm(n_threads=args.threads)
    task = jl.Task(LABELS, instructions=INSTRUCTIONS)
    cache = args.cache or Path(tempfile.gettempdir()) / "jlabel_bench_cache.sqlite"
    table = {}

    def run(name, prompt=None, examples=None, rows=slice(None)):
        start = time.perf_counter()
        out = jl.preannotate(df.iloc[rows], task, llm, prompt=prompt, examples=examples, calibrate=None, cache=cache)
        print(f"  [{name}: {time.perf_counter() - start:.0f}s]", file=sys.stderr)
        return jl.probs(out, task)

    half = np.arange(len(df)) % 2 == 0

    def steps(name, P):
        table[f"{name} raw"] = measures(P, y)
        table[f"{name} + batch mean"] = measures(C.rescale(P, C.batch_prior(P)), y)
        table[f"{name} + content-free"] = measures(C.rescale(P, C.content_free_prior(llm, task)), y)
        fitted = C.fit(P[half], y[half])
        table[f"{name} + fitted bias/T (other half)"] = measures(fitted.apply(P[~half]), y[~half])

    # label names only, then the default: a label joining alternatives ("Sci/Tech") also scored through its parts
    steps("names only", run("names only", prompt=default_prompt(task, split_labels=False)))
    P = run("default")
    steps("default (parts)", P)
    # the prompt variants on the first --n-steps records (each is another full pass of the model)
    m = min(args.n_steps, len(df))
    few = slice(0, m)
    table[f"default raw (first {m})"] = measures(P[few], y[few])
    table[f"default + batch mean (first {m})"] = measures(C.rescale(P[few], C.batch_prior(P[few])), y[few])
    verbal = default_prompt(task, verbalizers={"Sci/Tech": ["Sci/Tech", "Science", "Technology"]})
    V = run("verbalisers", prompt=verbal, rows=few)
    table[f"Science/Technology raw (first {m})"] = measures(V, y[few])
    table[f"Science/Technology + batch mean (first {m})"] = measures(C.rescale(V, C.batch_prior(V)), y[few])
    # few-shot: one example per label from records after the measured ones, balanced and shuffled
    pool, gold = load(args.data, args.n + 200)
    pool = pool.iloc[args.n :].assign(label=[LABELS[i] for i in gold[args.n :]])
    examples = jl.prompts.choose_examples(pool, task, per_label=1, seed=0)
    F = run("few-shot", examples=examples, rows=few)
    table[f"few-shot(4) raw (first {m})"] = measures(F, y[few])
    table[f"few-shot(4) + batch mean (first {m})"] = measures(C.rescale(F, C.batch_prior(F)), y[few])
    print(f"model {llm.id}, {len(df)} records of {args.data.name}")
    print(f"{'step':48}{'accuracy':>10}{'macro-F1':>10}{'ECE':>8}{'AUROC':>8}")
    for name, m in table.items():
        print(f"{name:48}{m['accuracy']:>10.3f}{m['macro_f1']:>10.3f}{m['ece']:>8.3f}{m['auroc']:>8.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "data" / "ag_news_dev.csv")
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quality", action="store_true")
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--n-steps", type=int, default=300, help="records for the verbaliser and few-shot passes")
    args = parser.parse_args()
    if args.n is None:
        args.n = 1000 if args.quality else 200
    (quality if args.quality else bench)(args)


if __name__ == "__main__":
    main()
