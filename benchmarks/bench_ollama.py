"""The Ollama backend against the llama.cpp backend on the same model and records, in one run.

Both score the same news records with the embedded SmolLM2-135M model: the llama.cpp backend
in process (each label's full token sequence, prefix KV reused), the Ollama backend through
the official client and the Ollama-API stand-in (tests/ollama_standin.py), which runs the same
GGUF file (first-token ``top_logprobs`` over label codes, server-side prefix cache). Prints
records/s and their ratio, evaluated tokens per record, and accuracy, macro-F1, ECE and the
AUROC of the confidence (right vs wrong), raw and with batch-mean bias correction.

    python benchmarks/bench_ollama.py [--data ../shared/data/ag_news_dev.csv] [--n 200]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import jlabel as jl  # noqa: E402
from jlabel import calibration  # noqa: E402
from jlabel.llm import llm  # noqa: E402

LABELS = ["World", "Sports", "Business", "Sci/Tech"]


def measure(model, task, texts: list[str], gold: np.ndarray) -> dict:
    model.score(task, texts[:2])  # warm the prefix cache, as a long run would be
    before, t0 = model.new_tokens(), time.perf_counter()
    probs = model.score(task, texts)
    seconds = time.perf_counter() - t0
    row = {"records/s": len(texts) / seconds, "new tokens/record": (model.new_tokens() - before) / len(texts)}
    for name, p in (("raw", probs), ("batch", calibration.rescale(probs, calibration.batch_prior(probs)))):
        right = p.argmax(axis=1) == gold
        row[f"acc {name}"] = calibration.accuracy(p, gold)
        row[f"F1 {name}"] = calibration.macro_f1(p, gold)
        row[f"ECE {name}"] = calibration.ece(p, gold)
        row[f"AUROC {name}"] = calibration.auroc(p.max(axis=1), right)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT / ".." / "shared" / "data" / "ag_news_dev.csv"))
    parser.add_argument("--n", type=int, default=200, help="records (the first N of the file)")
    args = parser.parse_args()

    data = pd.read_csv(args.data).head(args.n)
    texts = (data["title"].astype(str) + ". " + data["description"].astype(str)).tolist()
    gold = data["label"].to_numpy() - 1
    task = jl.Task(LABELS, instructions="Classify the news article by topic.")

    from ollama_standin import StandIn

    local = llm()
    server = StandIn({"smollm2": local.path})
    server.start()
    try:
        with llm("ollama:smollm2", host=server.url) as remote:
            rows = {"llama.cpp (in process)": measure(local, task, texts, gold)}
            rows["ollama (stand-in)"] = measure(remote, task, texts, gold)
    finally:
        server.stop()
    table = pd.DataFrame(rows).T
    print(f"{len(texts)} records of {Path(args.data).name}, zero-shot, SmolLM2-135M-Instruct Q4_1, 4 labels")
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    ratio = rows["ollama (stand-in)"]["records/s"] / rows["llama.cpp (in process)"]["records/s"]
    print(f"ollama / llama.cpp records/s: {ratio:.2f}")


if __name__ == "__main__":
    main()
