"""Render docs/dashboard.png: the dashboard of a simulated week of labeling, drawn by vl-convert.

The journal is simulated (three annotators, a model whose confidence is roughly calibrated,
blind and shown suggestions, tiredness late in long sessions) because a real store stamps
events with the time they are written. Usage: python docs/render_dashboard.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import vl_convert as vlc

import jlabel as jl

LABELS = ["World", "Sports", "Business", "Sci/Tech"]


def simulated_journal(records: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = np.array(LABELS, dtype=object)
    truth = rng.integers(0, 4, records)
    confidence = rng.beta(5, 2, records)
    right = rng.uniform(size=records) < confidence * 0.95
    suggestion = np.where(right, truth, (truth + rng.integers(1, 4, records)) % 4)
    rows = []
    start = pd.Timestamp("2026-03-02 09:00", tz="UTC")
    for person, (share, skill) in {"ana": (0.6, 0.95), "ben": (0.4, 0.9), "cy": (0.25, 0.85)}.items():
        chosen = np.flatnonzero(rng.uniform(size=records) < share)
        # sessions of 120 decisions a day, 20 s apart; mistakes grow late in a session
        position = np.arange(len(chosen)) % 120
        day = np.arange(len(chosen)) // 120
        ts = (
            start
            + pd.to_timedelta(day, unit="D")
            + pd.to_timedelta(position * 20 + rng.uniform(0, 5, len(chosen)), unit="s")
        )
        blind = rng.uniform(size=len(chosen)) < 0.3
        shown_bias = np.where(blind, 0.0, 0.5)  # a shown suggestion pulls the annotator towards it
        correct = rng.uniform(size=len(chosen)) < skill - position / 1200
        value = np.where(correct, truth[chosen], (truth[chosen] + 2) % 4)
        follow = rng.uniform(size=len(chosen)) < shown_bias * (1 - correct)
        value = np.where(follow, suggestion[chosen], value)
        action = np.where(blind, "label", np.where(value == suggestion[chosen], "accept", "edit"))
        rows.append(
            pd.DataFrame(
                {
                    "ts": ts,
                    "record": [f"r{i}" for i in chosen],
                    "annotator": person,
                    "action": action,
                    "value": labels[value],
                    "suggestion": labels[suggestion[chosen]],
                    "confidence": confidence[chosen].round(3),
                    "meta": [{"blind": bool(b), "shown": not b} for b in blind],
                }
            )
        )
    journal = pd.concat(rows).sort_values("ts", kind="stable").reset_index(drop=True)
    journal.insert(0, "id", np.arange(1, len(journal) + 1))
    return journal


def main() -> None:
    chart = jl.dashboard(simulated_journal(), task=jl.Task(LABELS))
    out = Path(__file__).with_name("dashboard.png")
    out.write_bytes(vlc.vegalite_to_png(chart.to_dict(), scale=1.5))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
