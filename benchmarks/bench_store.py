"""How fast the journal records decisions and replays them.

Prints, measured in one run on this machine:
- decisions per second, each durably committed in its own transaction (target >= 300/s),
  against a bare sqlite3 INSERT+COMMIT with the same durability settings (the floor);
- bulk events per second through record_many (target >= 50,000/s);
- seconds to replay 1,000,000 events into a 1,000,000-row frame (target < 5 s), against a
  straightforward per-event Python replay of the same events.

Usage: python benchmarks/bench_store.py [--decisions 2000] [--events 1000000]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import jlabel as jl
from jlabel.store import replay


def durable_decisions(folder: Path, n: int) -> tuple[float, float]:
    task = jl.Task(["World", "Sports", "Business", "Sci/Tech"])
    store = jl.Store(folder / "decisions.db", task=task, annotator="bench")
    start = time.perf_counter()
    for i in range(n):
        store.record(f"r{i}", "label", task.labels[i % 4], duration_ms=900)
    jlabel_rate = n / (time.perf_counter() - start)

    conn = sqlite3.connect(folder / "bare.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, record TEXT, value TEXT)")
    start = time.perf_counter()
    for i in range(n):
        conn.execute("INSERT INTO events (record, value) VALUES (?, ?)", (f"r{i}", "World"))
    bare_rate = n / (time.perf_counter() - start)
    conn.close()
    return jlabel_rate, bare_rate


def bulk_events(folder: Path, n: int) -> tuple[jl.Store, float]:
    task = jl.Task(["World", "Sports", "Business", "Sci/Tech"])
    store = jl.Store(folder / "replay.db", task=task, annotator="bench")
    rng = np.random.default_rng(0)
    labels = np.array(task.labels, dtype=object)[rng.integers(0, 4, n)]
    actions = rng.choice(["label", "accept", "edit", "skip", "undo"], p=[0.5, 0.3, 0.1, 0.05, 0.05], size=n)
    events = pd.DataFrame(
        {
            "record": [f"r{i}" for i in rng.integers(0, n, n)],
            "action": actions,
            "value": np.where(np.isin(actions, ["skip", "undo"]), None, labels),
            "annotator": rng.choice(["ana", "ben", "cy"], size=n),
        }
    )
    start = time.perf_counter()
    store.record_many(events)
    return store, n / (time.perf_counter() - start)


def naive_replay(events: pd.DataFrame) -> dict:
    stacks: dict = {}
    for row in events.itertuples(index=False):
        stack = stacks.setdefault((row.record, row.annotator), [])
        if row.action == "undo":
            if stack:
                stack.pop()
        else:
            stack.append(row)
    return stacks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        jlabel_rate, bare_rate = durable_decisions(folder, args.decisions)
        store, bulk_rate = bulk_events(folder, args.events)
        df = pd.DataFrame({"text": ""}, index=[f"r{i}" for i in range(args.events)])

        start, cpu_start = time.perf_counter(), time.process_time()
        store.apply(df)
        replay_s, replay_cpu_s = time.perf_counter() - start, time.process_time() - cpu_start

        events = store._query(None, False, ("id", "ts", "record", "annotator", "action", "value"))
        start = time.perf_counter()
        replay(events)
        replay_only_s = time.perf_counter() - start
        start = time.perf_counter()
        naive_replay(events)
        naive_s = time.perf_counter() - start
        store.close()

    rows = [
        (
            "durable decisions/s (one transaction each)",
            f"{jlabel_rate:,.0f}",
            f"{jlabel_rate / bare_rate:.2f}x bare sqlite3 ({bare_rate:,.0f}/s)",
            ">= 300/s",
        ),
        ("bulk events/s (record_many)", f"{bulk_rate:,.0f}", "", ">= 50,000/s"),
        (
            f"replay {args.events:,} events into a {args.events:,}-row frame (s)",
            f"{replay_s:.2f}",
            f"CPU time of this process {replay_cpu_s:.2f} s (the machine is shared: wall time is noisy)",
            "< 5 s",
        ),
        (
            "  of which replay itself (s)",
            f"{replay_only_s:.2f}",
            f"{naive_s / replay_only_s:.1f}x faster than a per-event Python loop ({naive_s:.2f} s, no output built)",
            "",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>10}  target    comparison")
    for name, value, comparison, target in rows:
        print(f"{name:<{width}}  {value:>10}  {target:<8}  {comparison}")
    labeled = df["label"].notna().sum()
    print(f"\n{labeled:,} of {len(df):,} rows labeled after replay")


if __name__ == "__main__":
    main()
