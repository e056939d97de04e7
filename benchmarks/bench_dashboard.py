"""How fast the dashboard builds from 1,000,000 events, and how small its spec stays.

Prints, measured in one run on this machine:
- seconds to build ``jl.dashboard`` from a 1,000,000-event journal (store.events() shape:
  four annotators, undo, blind and shown decisions, a week of timestamps) through its
  validated Vega-Lite spec (target < 5 s), against the store's own replay of the same events
  (the floor: the dashboard replays them too);
- the spec's size (target < 1 MB) against the size of the raw events as JSON, and its
  largest inline dataset (Altair refuses more than 5,000 rows);
- the same for a 1,000,000-row labeled frame.

Usage: python benchmarks/bench_dashboard.py [--events 1000000]
"""

from __future__ import annotations

import argparse
import json
import time

import altair as alt
import numpy as np
import pandas as pd

import jlabel as jl
from jlabel.store import _dump_column, replay

LABELS = ["World", "Sports", "Business", "Sci/Tech"]


def journal(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    labels = np.array(LABELS, dtype=object)
    truth = rng.integers(0, 4, n)
    confidence = rng.uniform(0.25, 1.0, n)
    suggestion = np.where(rng.uniform(size=n) < confidence, truth, (truth + 1) % 4)
    value = np.where(rng.uniform(size=n) < 0.9, truth, (truth + 2) % 4)
    actions = rng.choice(["label", "accept", "edit", "skip", "undo"], p=[0.4, 0.4, 0.1, 0.05, 0.05], size=n)
    blind = rng.uniform(size=n) < 0.3
    metas = np.array([{"blind": True, "shown": False}, {"blind": False, "shown": True}], dtype=object)
    return pd.DataFrame(
        {
            "id": np.arange(1, n + 1),
            "ts": pd.Timestamp("2026-01-05", tz="UTC")
            + pd.to_timedelta(np.sort(rng.uniform(0, 7 * 86400, n)), unit="s"),
            "record": pd.Series(rng.integers(0, n // 2, n)).astype(str).radd("r").to_numpy(dtype=object),
            "annotator": np.array(["ana", "ben", "cy", "dee"], dtype=object)[rng.integers(0, 4, n)],
            "action": actions,
            "value": np.where(np.isin(actions, ["skip", "undo"]), None, labels[value]),
            "suggestion": labels[suggestion],
            "confidence": confidence,
            "meta": metas[np.where(blind, 0, 1)],
        }
    )


def measure(data, task) -> tuple[float, float, dict]:
    """Wall and CPU seconds to build the dashboard's validated spec (CPU time is steadier on a shared machine)."""
    start, cpu = time.perf_counter(), time.process_time()
    with alt.data_transformers.enable("default", max_rows=5000):  # Altair's own limit, on purpose
        spec = jl.dashboard(data, task=task).to_dict()
    return time.perf_counter() - start, time.process_time() - cpu, spec


def report(name: str, seconds: float, cpu: float, spec: dict, floor: float, what: str, raw_bytes: int) -> None:
    size = len(json.dumps(spec))
    rows = max(len(v) for v in spec["datasets"].values())
    print(
        f"{name}: dashboard {seconds:.2f} s wall, {cpu:.2f} s CPU (target < 5 s), "
        f"{cpu / floor:.1f}x the CPU time of {what} ({floor:.2f} s)"
    )
    print(
        f"{name}: spec {size / 1e3:.1f} KB (target < 1 MB) = {size / raw_bytes:.5f} of the raw data as JSON "
        f"({raw_bytes / 1e6:.0f} MB); largest dataset {rows} rows (limit 5,000)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    task = jl.Task(LABELS)

    events = journal(args.events)
    raw_bytes = len(events.drop(columns="meta").to_json(orient="records", date_format="iso"))
    start = time.process_time()
    decisions = events[events["action"].isin(["label", "accept", "edit", "reject", "skip", "undo"])]
    replay(
        decisions[["id", "ts", "record", "annotator", "action"]].assign(value=_dump_column(decisions["value"])),
        per_annotator=True,
    )
    floor = time.process_time() - start
    seconds, cpu, spec = measure(events, task)
    report(f"{args.events:,} events", seconds, cpu, spec, floor, "the store's replay of the events", raw_bytes)

    # a labeled frame of the same size: one row per record
    n = args.events
    rng = np.random.default_rng(1)
    labels = np.array(LABELS, dtype=object)
    frame = pd.DataFrame(
        {
            "text": "",
            "label": pd.array(labels[rng.integers(0, 4, n)], dtype="string"),
            "llm_label": pd.array(labels[rng.integers(0, 4, n)], dtype="string"),
            "llm_confidence": rng.uniform(size=n),
            "annotator": pd.array(np.array(["ana", "ben", "cy"], dtype=object)[rng.integers(0, 3, n)], dtype="string"),
            "label_source": pd.array(
                np.array(["human", "llm_accepted", "llm_edited"], dtype=object)[rng.integers(0, 3, n)], dtype="string"
            ),
            "labeled_at": pd.Timestamp("2026-01-05", tz="UTC")
            + pd.to_timedelta(np.sort(rng.uniform(0, 30 * 86400, n)), unit="s"),
        }
    )
    raw_bytes = len(frame.to_json(orient="records", date_format="iso"))
    start = time.process_time()
    pd.crosstab(frame["label"], frame["llm_label"])  # the confusion matrix alone, the simplest chart's aggregate
    frame["label"].eq(frame["llm_label"]).groupby(frame["annotator"]).mean()
    floor = time.process_time() - start
    seconds, cpu, spec = measure(frame, task)
    report(f"{n:,}-row frame", seconds, cpu, spec, floor, "a crosstab and a groupby of the frame", raw_bytes)


if __name__ == "__main__":
    main()
