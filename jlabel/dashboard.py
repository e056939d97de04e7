"""Altair dashboards of labeling progress and quality.

Every chart aggregates in pandas first: the Vega-Lite spec holds a few hundred rows
whatever the number of events (1,000,000 events make a spec of a few tens of KB), so
Altair's 5,000-row limit is never reached. Each chart is a function of its own taking a
labeled frame, a :class:`~jlabel.Store` or a journal frame (``store.events()``);
:func:`dashboard` puts them together with a linked selection: click a human label in the
confusion matrix to filter the reliability, coverage, accept-rate and error charts.

Definitions used by the charts:

- a record's *label* per annotator is the replay of the journal (undo applied);
- the model is *correct* on a record when the human label equals its suggestion;
- a decision is *accepted* when the human label equals the suggestion it had; it was
  *blind* when the panel hid the suggestion (event meta ``{"blind": true}``), *shown* when
  the panel showed it, *not recorded* when the source does not say (a frame's
  ``label_source`` of ``llm_accepted``/``llm_edited`` counts as shown);
- an annotator's label *disagrees* when most other annotators of the record chose another
  label or, when nobody else labeled it, when it differs from the model's suggestion;
- a *session* is a run of one annotator's decisions with no gap over 30 minutes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .agreement import pair_agreement
from .frame import key_strings, record_keys
from .store import DECISIONS, Store, _dump_column, replay
from .task import Task

if TYPE_CHECKING:
    import altair as alt
else:

    class _Altair:
        """Altair, imported on first use: ``import jlabel`` stays fast (Altair takes about a second)."""

        def __getattr__(self, name: str):
            import altair

            return getattr(altair, name)

    alt = _Altair()

SESSION_GAP = pd.Timedelta(minutes=30)
MODEL_RATER = "model"
CONFIDENCE_BINS = 10
THRESHOLDS = np.round(np.linspace(0.0, 1.0, 41), 3)
TARGET_ACCURACY = 0.95
BAND_EDGES = np.array([0.0, 0.5, 0.6, 0.7, 0.8, 0.9])
BAND_NAMES = ["<0.5", "0.5-0.6", "0.6-0.7", "0.7-0.8", "0.8-0.9", "0.9-1"]
POSITION_EDGES = np.array([1, 11, 26, 51, 101, 201])
POSITION_NAMES = ["1-10", "11-25", "26-50", "51-100", "101-200", "201+"]
MAX_RATERS = 40
MAX_LABELS = 60  # more labels than this are drawn as "(other)": k x k confusion cells stay under Altair's limit
MAX_LINES = 12  # annotators drawn one by one in the error chart; the rest as "(others)"
OTHER = "(other)"
NONE = "(none)"  # the empty side of a multi-label or span confusion pair
MAX_TIME_ROWS = 1500
# time bins of the progress chart, finest first, with their length
_FREQUENCIES = {
    "min": pd.Timedelta(minutes=1),
    "5min": pd.Timedelta(minutes=5),
    "15min": pd.Timedelta(minutes=15),
    "h": pd.Timedelta(hours=1),
    "3h": pd.Timedelta(hours=3),
    "6h": pd.Timedelta(hours=6),
    "D": pd.Timedelta(days=1),
    "W": pd.Timedelta(days=7),
    "MS": pd.Timedelta(days=31),
}
_WIDTH, _HEIGHT = 260, 200
_ALL = "all"


@dataclass(frozen=True)
class Decisions:
    """Labeled decisions in one table, ready for the charts.

    ``table`` has one row per (record, annotator) with a surviving label: ``record``,
    ``annotator``, ``ts``, ``source``, ``value`` (the label as given), ``key`` (the label
    as a hashable string), ``label`` (the human label for the linked selection: the label
    itself for single-label tasks, ``"all"`` otherwise), ``suggested`` and ``suggested_key``
    (the model's suggestion), ``confidence``, ``mode`` (blind, shown, not recorded) and
    ``position`` (1-based position in the annotator's session).
    """

    table: pd.DataFrame
    task: Task | None

    @property
    def empty(self) -> bool:
        return self.table.empty


def prepare(data, *, task: Task | None = None) -> Decisions:
    """Collect the labeled decisions of a frame, a store or a journal frame.

    Parameters
    ----------
    data
        A frame with jlabel's label columns, a :class:`~jlabel.Store`, a journal frame
        (``store.events()``), or a :class:`Decisions` (returned as it is).
    task
        The task; by default the store's, else inferred from the label values.

    Returns
    -------
    Decisions
    """
    if isinstance(data, Decisions):
        return data
    if task is not None and not isinstance(task, Task):
        raise TypeError(f"task must be a jl.Task, got {type(task).__name__}.")
    if isinstance(data, Store):
        task = task or data.task
        return Decisions(_from_events(data.events(), task), task)
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"Charts take a labeled DataFrame, a jl.Store or store.events(), got {type(data).__name__}.")
    if {"record", "action", "ts"} <= set(data.columns):
        return Decisions(_from_events(data, task), task or _guess_task(data["value"]))
    if task is None and "label" in data.columns and data["label"].notna().any():
        task = _guess_task(data["label"])
    return Decisions(_from_frame(data), task)


def _guess_task(values: pd.Series) -> Task | None:
    values = values.dropna()
    if values.empty:
        return None
    first = values.iloc[0]
    if isinstance(first, str):
        return Task.from_data(pd.unique(values.astype(str)).tolist())
    flat = values.explode().dropna()
    if flat.empty:
        return None
    if isinstance(flat.iloc[0], dict):
        return Task.from_data(pd.unique(flat.map(lambda s: s["label"])).tolist(), kind="spans")
    return Task.from_data(pd.unique(flat).tolist(), kind="multi")


def _key(value) -> str:
    """One label as JSON; a list (multi-label, spans) in sorted order, so the same set gives the same key."""
    if isinstance(value, np.ndarray):  # list columns read from Parquet hold numpy arrays
        value = value.tolist()
    if isinstance(value, list | tuple):
        value = sorted(value, key=lambda item: json.dumps(item, sort_keys=True))
    return json.dumps(value, sort_keys=True)


def _keys(values: pd.Series) -> pd.Series:
    """Labels as hashable strings: single labels as they are, lists as JSON."""
    values = values.astype(object)
    present = values.notna()
    if not present.any():
        return pd.Series(None, index=values.index, dtype=object)
    if pd.api.types.infer_dtype(values[present], skipna=True) == "string":
        return values.where(present, None)
    return values.map(lambda v: _key(v) if v is not None else None, na_action="ignore").where(present, None)


_COLUMNS = ["record", "annotator", "ts", "source", "value", "key", "suggested", "suggested_key", "confidence", "mode"]


def _finish(table: pd.DataFrame, *, positions: bool = True) -> pd.DataFrame:
    table["key"] = _keys(table["value"])
    table["suggested_key"] = _keys(table["suggested"])
    # computed once here, used by several charts: the model was right; integer record codes
    table["correct"] = (table["key"] == table["suggested_key"]).to_numpy(dtype=bool) & table["suggested_key"].notna()
    table["record_code"] = pd.factorize(table["record"])[0]
    single = pd.api.types.infer_dtype(table["value"], skipna=True) in ("string", "empty")
    table["label"] = (
        _capped(table["key"], _frequent_labels(table)) if single else pd.Series(_ALL, index=table.index, dtype=object)
    )
    table["confidence"] = pd.to_numeric(table["confidence"], errors="coerce").astype("float64")
    table["position"] = _positions(table) if positions else 1
    return table.reset_index(drop=True)


def _frequent_labels(table: pd.DataFrame) -> pd.Index:
    """The ``MAX_LABELS`` labels most frequent among human labels and suggestions together."""
    counts = pd.concat([table["key"], table["suggested_key"]], ignore_index=True).value_counts()
    return counts.index[:MAX_LABELS]


def _capped(values: pd.Series, kept: pd.Index) -> pd.Series:
    """``values`` with those not in ``kept`` replaced by ``"(other)"``."""
    return values.where(values.isin(kept) | values.isna(), OTHER)


def _top(values: pd.Series, limit: int, other: str = OTHER) -> pd.Series:
    """``values`` with all but the ``limit`` most frequent replaced by ``other``."""
    counts = values.value_counts()
    if len(counts) <= limit:
        return values
    return values.where(values.isin(counts.index[:limit]) | values.isna(), other)


def _objects(columns: dict) -> pd.DataFrame:
    """A frame whose text columns stay Python objects (pandas 3 would convert them to Arrow strings, slowly)."""
    return pd.DataFrame(
        {
            name: pd.Series(values, dtype=object) if np.asarray(values).dtype == object else values
            for name, values in columns.items()
        }
    )


def _naive(ts) -> np.ndarray:
    """UTC timestamps as a naive ``datetime64[ns]`` array (no per-element Timestamp objects)."""
    ts = pd.to_datetime(pd.Series(ts), utc=True)
    return ts.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")


def _positions(table: pd.DataFrame, ts: pd.Series | None = None) -> np.ndarray:
    """1-based position of each decision in its annotator's session (gaps over 30 minutes end a session)."""
    if table.empty:
        return np.zeros(0, dtype=np.int64)
    ts = table["ts"] if ts is None else ts
    order = _objects({"annotator": table["annotator"].to_numpy(dtype=object), "ts": _naive(ts)}).sort_values(
        ["annotator", "ts"], kind="stable"
    )
    new_annotator = order["annotator"].ne(order["annotator"].shift())
    gap = order["ts"].diff() > SESSION_GAP
    session = (new_annotator | gap).cumsum()
    position = order.groupby(session.to_numpy()).cumcount().to_numpy() + 1
    out = np.empty(len(table), dtype=np.int64)
    out[order.index.to_numpy()] = position
    return out


def _from_frame(df: pd.DataFrame) -> pd.DataFrame:
    keys = key_strings(record_keys(df))
    if "label" not in df.columns:
        return pd.DataFrame(columns=[*_COLUMNS, "label", "position", "correct", "record_code"])
    labeled = df["label"].notna().to_numpy()

    def column(name, default=None):
        if name in df.columns:
            return df[name].to_numpy(dtype=object, na_value=None)[labeled]
        return np.full(labeled.sum(), default, dtype=object)

    source = column("label_source", "human")
    ts = df["labeled_at"][labeled] if "labeled_at" in df.columns else pd.Series(pd.NaT, index=df.index[labeled])
    table = _objects(
        {
            "record": keys.to_numpy()[labeled],
            "annotator": pd.Series(column("annotator"), dtype=object).fillna("unknown").to_numpy(),
            "ts": _naive(ts),
            "source": source,
            "value": column("label"),
            "suggested": column("llm_label"),
            "confidence": column("llm_confidence"),
        }
    )
    table["ts"] = pd.to_datetime(table["ts"], utc=True)
    shown = pd.Series(source).isin(["llm_accepted", "llm_edited"]).to_numpy()
    table["mode"] = pd.Series(np.where(shown, "shown", "not recorded"), dtype=object)
    return _finish(table)


def _as_json(values: pd.Series) -> np.ndarray:
    """Decoded journal values back to the JSON text replay reads, encoding each distinct label once."""
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        encoded = np.array([*(json.dumps(u, ensure_ascii=False) for u in uniques), None], dtype=object)
        return encoded[codes]
    return np.array(_dump_column(values), dtype=object)


def _from_events(events: pd.DataFrame, task: Task | None) -> pd.DataFrame:
    if events.empty:
        return pd.DataFrame(columns=[*_COLUMNS, "label", "position", "correct", "record_code"])
    events = events.sort_values("id", kind="stable") if "id" in events.columns else events
    if "id" not in events.columns:
        events = events.assign(id=np.arange(1, len(events) + 1))
    decisions = events[events["action"].isin([*DECISIONS, "undo"])]
    raw = decisions[["id", "ts", "record", "annotator", "action"]].assign(value=_as_json(decisions["value"]))
    state = replay(raw, per_annotator=True)
    state = state[state["label"].notna()]
    at = np.searchsorted(events["id"].to_numpy(), state["event"].to_numpy())  # events are sorted by id
    suggested = events["suggestion"].to_numpy(dtype=object)[at]
    confidence = events["confidence"].to_numpy(dtype=float)[at]
    # decisions made without a suggestion on them take the record's latest `suggest` event
    suggest = events[events["action"].eq("suggest")].drop_duplicates("record", keep="last").set_index("record")
    if not suggest.empty:
        fallback = suggest.reindex(state.index)
        missing = pd.isna(suggested)
        suggested = np.where(missing, fallback["suggestion"].to_numpy(dtype=object), suggested)
        confidence = np.where(missing, fallback["confidence"].to_numpy(dtype=float), confidence)
    meta = events["meta"].to_numpy(dtype=object)[at]
    # meta is a small JSON object per decision: read its two flags
    blind = np.array([isinstance(m, dict) and m.get("blind") is True for m in meta])
    shown = np.array([isinstance(m, dict) and m.get("shown") is True for m in meta])
    mode = np.where(blind, "blind", np.where(shown, "shown", "not recorded")).astype(object)
    table = _objects(
        {
            "record": state.index.to_numpy(dtype=object),
            "annotator": state["annotator"].to_numpy(dtype=object),
            "ts": _naive(state["labeled_at"]),
            "source": state["label_source"].to_numpy(dtype=object),
            "value": state["label"].to_numpy(dtype=object),
            "suggested": suggested,
            "confidence": confidence,
            "mode": mode,
        }
    )
    table["ts"] = pd.to_datetime(table["ts"], utc=True)
    # positions count every decision the annotator made (skips and undone ones too)
    made = decisions[decisions["action"].isin(DECISIONS)]
    position = pd.Series(_positions(made, pd.to_datetime(made["ts"], utc=True)), index=made["id"].to_numpy())
    table = _finish(table, positions=False)
    table["position"] = position.reindex(state["event"].to_numpy()).fillna(1).astype("int64").to_numpy()
    return table


# -- aggregates (pandas) -------------------------------------------------------------


def _labels_order(decisions: Decisions, *columns: pd.Series) -> list[str]:
    if decisions.task is not None:
        return list(decisions.task.labels)
    seen = pd.concat([c.dropna().astype(str) for c in columns]) if columns else pd.Series(dtype=object)
    return sorted(seen.unique().tolist())


def progress_table(data, *, task: Task | None = None) -> pd.DataFrame:
    """Cumulative labeled records per time bin, annotator and source.

    The bin (minutes up to months) is the finest that keeps the table under
    ``MAX_TIME_ROWS`` rows.
    """
    table = prepare(data, task=task).table
    columns = ["time", "annotator", "source", "labeled", "cumulative"]
    table = table[table["ts"].notna()]
    if table.empty:
        return pd.DataFrame(columns=columns)
    series = len(table.groupby(["annotator", "source"], dropna=False).size())
    span = table["ts"].max() - table["ts"].min()
    freq = next((f for f, step in _FREQUENCIES.items() if (span / step + 1) * series <= MAX_TIME_ROWS), "MS")
    ts = table["ts"].dt.tz_convert("UTC").dt.tz_localize(None)
    if freq in ("W", "MS"):
        bins = ts.dt.to_period("W" if freq == "W" else "M").dt.start_time
    else:
        bins = ts.dt.floor(freq)
    counts = (
        pd.DataFrame({"time": bins, "annotator": table["annotator"], "source": table["source"].fillna("unknown")})
        .groupby(["annotator", "source", "time"], sort=True)
        .size()
        .rename("labeled")
        .reset_index()
    )
    counts["cumulative"] = counts.groupby(["annotator", "source"])["labeled"].cumsum()
    counts["time"] = counts["time"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return counts[columns]


def confusion_table(data, *, task: Task | None = None) -> pd.DataFrame:
    """Counts of (human label, model suggestion) over labeled records that had a suggestion.

    Single-label: labels beyond the ``MAX_LABELS`` most frequent (human labels and
    suggestions counted together) are ``(other)``. Multi-label: a label both sides gave is
    on the diagonal, one only the human gave is (label, ``(none)``), one only the model
    gave is (``(none)``, label); two empty sets are (``(none)``, ``(none)``). Spans: spans
    with the same offsets and label on the diagonal, the rest matched by offsets, ``(none)``
    for a span only one side has. ``share`` is the count over its human label's total.
    """
    decisions = prepare(data, task=task)
    table = decisions.table
    table = table[table["suggested"].notna()]
    columns = ["label", "suggested", "n", "share"]
    if table.empty:
        return pd.DataFrame(columns=columns)
    kind = decisions.task.kind if decisions.task is not None else "single"
    if kind == "single":
        # the human label column is capped to the most frequent labels; cap the suggestions to the same
        suggested = _capped(table["suggested_key"], _frequent_labels(decisions.table))
        pairs = _objects({"label": table["label"].to_numpy(), "suggested": suggested.to_numpy(dtype=object)})
    elif kind == "multi":
        pairs = _multi_label_pairs(table)
    else:
        pairs = _span_pairs(table)
    counts = pairs.groupby(["label", "suggested"]).size().rename("n").reset_index()
    counts["share"] = counts["n"] / counts.groupby("label")["n"].transform("sum")
    return counts[columns]


def _one_to_one(human: pd.DataFrame, model: pd.DataFrame, on: list[str]) -> pd.DataFrame:
    """Outer join of human and model rows equal on ``on``, each row used once (the k-th meets the k-th)."""
    human = human.assign(nth=human.groupby(on).cumcount())
    model = model.assign(nth=model.groupby(on).cumcount())
    return human.merge(model, on=[*on, "nth"], how="outer").drop(columns="nth")


def _multi_label_pairs(table: pd.DataFrame) -> pd.DataFrame:
    rows = np.arange(len(table))
    human = pd.DataFrame({"row": rows, "label": table["value"].to_numpy()}).explode("label").dropna()
    model = pd.DataFrame({"row": rows, "suggested": table["suggested"].to_numpy()}).explode("suggested").dropna()
    pairs = _one_to_one(human.assign(item=human["label"]), model.assign(item=model["suggested"]), ["row", "item"])
    both_empty = np.setdiff1d(rows, np.union1d(human["row"], model["row"]))
    nothing = pd.DataFrame({"label": [NONE] * len(both_empty), "suggested": NONE})
    return pd.concat([pairs[["label", "suggested"]], nothing]).fillna(NONE)


def _span_pairs(table: pd.DataFrame) -> pd.DataFrame:
    rows = np.arange(len(table))
    human = _span_rows(rows, table["value"].to_numpy(), "label")
    model = _span_rows(rows, table["suggested"].to_numpy(), "suggested")
    offsets = ["row", "start", "end"]
    same = _one_to_one(human.assign(item=human["label"]), model.assign(item=model["suggested"]), [*offsets, "item"])
    exact = same["label"].notna() & same["suggested"].notna()
    human_left = same.loc[same["suggested"].isna(), [*offsets, "label"]]
    model_left = same.loc[same["label"].isna(), [*offsets, "suggested"]]
    relabeled = _one_to_one(human_left, model_left, offsets)
    return pd.concat([same.loc[exact, ["label", "suggested"]], relabeled[["label", "suggested"]]]).fillna(NONE)


def _span_rows(rows: np.ndarray, values: np.ndarray, name: str) -> pd.DataFrame:
    exploded = pd.DataFrame({"row": rows, "span": values}).explode("span").dropna()
    if exploded.empty:
        return pd.DataFrame(columns=["row", "start", "end", name])
    spans = pd.DataFrame(exploded["span"].tolist())
    return pd.DataFrame(
        {"row": exploded["row"].to_numpy(), "start": spans["start"], "end": spans["end"], name: spans["label"]}
    )


def agreement_table(data, *, task: Task | None = None) -> pd.DataFrame:
    """Pairwise agreement between raters (annotators and the model, as ``"model"``).

    One row per ordered pair of raters with records in common: ``n`` (records both
    labeled), ``percent`` (share of those with the same label) and ``kappa`` (Cohen's).
    Only the ``MAX_RATERS`` raters with most labels are kept.
    """
    table = prepare(data, task=task).table
    columns = ["rater_a", "rater_b", "n", "percent", "kappa"]
    if table.empty:
        return pd.DataFrame(columns=columns)
    n = len(table)
    record = table["record_code"].to_numpy()
    rater, names = pd.factorize(table["annotator"])
    label, labels = pd.factorize(pd.concat([table["key"], table["suggested_key"]], ignore_index=True))
    wide = np.full((record.max() + 1, len(names) + 1), -1, dtype=np.int64)
    wide[record, rater] = label[:n]
    suggested = label[n:] >= 0
    wide[record[suggested], len(names)] = label[n:][suggested]  # the model, as one more rater
    raters = np.array([*names, MODEL_RATER], dtype=object)
    keep = np.argsort(-(wide >= 0).sum(axis=0), kind="stable")[:MAX_RATERS]
    wide, raters = wide[:, keep], raters[keep]
    once = np.ones((1, len(wide)))
    rows = []
    for i in range(len(raters)):
        for j in range(i + 1, len(raters)):
            observed, kappa, n = (v[0] for v in pair_agreement(wide[:, i], wide[:, j], len(labels), once))
            if not n:
                continue
            n, observed, kappa = int(n), float(observed), float(kappa)
            rows += [(raters[i], raters[j], n, observed, kappa), (raters[j], raters[i], n, observed, kappa)]
    return pd.DataFrame(rows, columns=columns)


def _suggested(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["suggested_key"].notna() & table["confidence"].notna()]


def reliability_table(data, *, task: Task | None = None) -> pd.DataFrame:
    """Per confidence bin (tenths) and human label: ``n``, ``confidence_sum``, ``correct``.

    The reliability diagram plots ``correct / n`` against ``confidence_sum / n``.
    """
    table = _suggested(prepare(data, task=task).table)
    columns = ["bin", "label", "n", "confidence_sum", "correct"]
    if table.empty:
        return pd.DataFrame(columns=columns)
    confidence = table["confidence"].to_numpy().clip(0, 1)
    frame = _objects(
        {
            "bin": np.minimum((confidence * CONFIDENCE_BINS).astype(int), CONFIDENCE_BINS - 1) / CONFIDENCE_BINS,
            "label": table["label"].to_numpy(),
            "confidence": confidence,
            "correct": table["correct"].to_numpy().astype(np.int64),
        }
    )
    out = frame.groupby(["bin", "label"]).agg(
        n=("correct", "size"), confidence_sum=("confidence", "sum"), correct=("correct", "sum")
    )
    return out.reset_index()[columns]


def coverage_table(data, *, task: Task | None = None) -> pd.DataFrame:
    """For each auto-accept threshold and human label: records the threshold would accept.

    ``covered`` (suggestions with confidence >= threshold), ``correct`` (of those, equal to
    the human label) and ``total`` (all suggestions of that label). Coverage is
    ``covered / total`` and accuracy ``correct / covered`` after summing over labels.
    """
    table = _suggested(prepare(data, task=task).table)
    columns = ["threshold", "label", "covered", "correct", "total"]
    if table.empty:
        return pd.DataFrame(columns=columns)
    code, labels = pd.factorize(table["label"])
    # thresholds a record passes: THRESHOLDS[:passes]
    passes = np.searchsorted(THRESHOLDS, table["confidence"].to_numpy() + 1e-12, side="right")
    correct = table["correct"].to_numpy()
    counts = np.zeros((len(THRESHOLDS) + 1, len(labels)))
    hits = np.zeros_like(counts)
    np.add.at(counts, (passes, code), 1)
    np.add.at(hits, (passes, code), correct)
    covered = counts[::-1].cumsum(axis=0)[::-1][1:]  # covered[j]: records with passes > j
    right = hits[::-1].cumsum(axis=0)[::-1][1:]
    total = counts.sum(axis=0)
    out = pd.DataFrame(
        {
            "threshold": np.repeat(THRESHOLDS, len(labels)),
            "label": np.tile(np.asarray(labels, dtype=object), len(THRESHOLDS)),
            "covered": covered.ravel().astype(np.int64),
            "correct": right.ravel().astype(np.int64),
            "total": np.tile(total, len(THRESHOLDS)).astype(np.int64),
        }
    )
    return out[columns]


def accept_table(data, *, task: Task | None = None) -> pd.DataFrame:
    """Per confidence band, mode (blind, shown, not recorded) and human label: ``n`` and ``accepted``."""
    table = _suggested(prepare(data, task=task).table)
    columns = ["band", "mode", "label", "n", "accepted"]
    if table.empty:
        return pd.DataFrame(columns=columns)
    band = np.searchsorted(BAND_EDGES, table["confidence"].to_numpy(), side="right") - 1
    frame = _objects(
        {
            "band": np.asarray(BAND_NAMES, dtype=object)[band.clip(0, len(BAND_NAMES) - 1)],
            "mode": table["mode"].to_numpy(),
            "label": table["label"].to_numpy(),
            "accepted": table["correct"].to_numpy().astype(np.int64),
        }
    )
    out = frame.groupby(["band", "mode", "label"]).agg(n=("accepted", "size"), accepted=("accepted", "sum"))
    return out.reset_index()[columns]


def disagreement(table: pd.DataFrame) -> pd.Series:
    """Whether each (record, annotator) label disagrees with its reference (see the module notes).

    NA where there is no reference (no other annotator and no suggestion).
    """
    record = table["record_code"].to_numpy()
    key, keys = pd.factorize(table["key"])
    pair = record.astype(np.int64) * max(len(keys), 1) + key
    _, pair_code, pair_count = np.unique(pair, return_inverse=True, return_counts=True)
    same = pd.Series(pair_count[pair_code] - 1, index=table.index)
    others = pd.Series(np.bincount(record)[record] - 1, index=table.index)
    by_people = (same * 2 < others).astype("boolean")
    by_model = pd.Series(~table["correct"].to_numpy(), index=table.index, dtype="boolean").where(
        table["suggested_key"].notna(), pd.NA
    )
    return by_people.where(others > 0, by_model)


def error_table(data, *, task: Task | None = None) -> pd.DataFrame:
    """Per annotator, position-in-session bucket and human label: ``n`` and ``disagree``."""
    table = prepare(data, task=task).table
    columns = ["annotator", "position", "label", "n", "disagree"]
    if table.empty:
        return pd.DataFrame(columns=columns)
    wrong = disagreement(table)
    keep = wrong.notna().to_numpy()
    bucket = np.searchsorted(POSITION_EDGES, table["position"].to_numpy()[keep], side="right") - 1
    frame = _objects(
        {
            "annotator": _top(table["annotator"], MAX_LINES, "(others)").to_numpy()[keep],
            "position": np.asarray(POSITION_NAMES, dtype=object)[bucket.clip(0)],
            "label": table["label"].to_numpy()[keep],
            "disagree": wrong[keep].astype(np.int64).to_numpy(),
        }
    )
    if frame.empty:
        return pd.DataFrame(columns=columns)
    out = frame.groupby(["annotator", "position", "label"]).agg(n=("disagree", "size"), disagree=("disagree", "sum"))
    return out.reset_index()[columns]


# -- charts (Altair) ------------------------------------------------------------------


def empty_chart(title: str, message: str = "No labeled records yet") -> alt.Chart:
    """A chart that says there is nothing to show (instead of an error)."""
    return (
        alt.Chart(pd.DataFrame({"message": [message]}))
        .mark_text(fontSize=14, color="#666")
        .encode(text="message:N")
        .properties(title=title, width=_WIDTH, height=_HEIGHT)
    )


def _filtered(chart: alt.Chart, selection) -> alt.Chart:
    return chart.transform_filter(selection) if selection is not None else chart


def progress_chart(data, *, task: Task | None = None) -> alt.Chart:
    """Cumulative labeled records over time, one line per annotator, dashed by source."""
    title = "Progress: labeled records over time"
    decisions = prepare(data, task=task)
    table = progress_table(decisions)
    if table.empty:
        return empty_chart(title, "No labeling times recorded" if not decisions.empty else "No labeled records yet")
    return (
        alt.Chart(table)
        .mark_line(interpolate="step-after", point=True)
        .encode(
            x=alt.X("time:T", title="time (UTC)"),
            y=alt.Y("cumulative:Q", title="records labeled"),
            color=alt.Color("annotator:N"),
            strokeDash=alt.StrokeDash("source:N", title="source"),
            tooltip=["annotator:N", "source:N", "time:T", "labeled:Q", "cumulative:Q"],
        )
        .properties(title=title, width=_WIDTH, height=_HEIGHT)
    )


def confusion_chart(data, *, task: Task | None = None, selection=None) -> alt.Chart:
    """Confusion matrix of human labels (rows) against the model's suggestions (columns).

    With ``selection`` (an ``alt.selection_point(fields=["label"])``), clicking a row
    selects that human label; :func:`dashboard` uses it to filter the other charts.
    """
    title = "Human label vs model suggestion"
    decisions = prepare(data, task=task)
    table = confusion_table(decisions)
    if table.empty:
        return empty_chart(title, "No labeled record with a model suggestion yet")
    order = _labels_order(decisions, table["label"], table["suggested"])
    order += sorted(set(table["label"]).union(table["suggested"]) - set(order))
    base = alt.Chart(table).encode(
        x=alt.X("suggested:N", sort=order, title="model suggestion"),
        y=alt.Y("label:N", sort=order, title="human label"),
    )
    cells = base.mark_rect().encode(
        color=alt.Color("share:Q", scale=alt.Scale(scheme="blues", domain=[0, 1]), title="share of row"),
        tooltip=["label:N", "suggested:N", "n:Q", alt.Tooltip("share:Q", format=".1%")],
    )
    if selection is not None:
        cells = cells.add_params(selection).encode(opacity=alt.condition(selection, alt.value(1.0), alt.value(0.35)))
    text = base.mark_text(fontSize=11).encode(
        text="n:Q", color=alt.condition("datum.share > 0.5", alt.value("white"), alt.value("black"))
    )
    return alt.layer(cells, text).properties(title=title, width=_WIDTH, height=_HEIGHT)


def agreement_chart(data, *, task: Task | None = None) -> alt.Chart:
    """Pairwise percent agreement between annotators, with the model as a rater."""
    title = "Agreement between raters (model included)"
    table = agreement_table(data, task=task)
    if table.empty:
        return empty_chart(title, "No record labeled by two raters yet")
    base = alt.Chart(table).encode(x=alt.X("rater_a:N", title=None), y=alt.Y("rater_b:N", title=None))
    cells = base.mark_rect().encode(
        color=alt.Color("percent:Q", scale=alt.Scale(scheme="greens", domain=[0, 1]), title="agreement"),
        tooltip=[
            "rater_a:N",
            "rater_b:N",
            "n:Q",
            alt.Tooltip("percent:Q", format=".1%"),
            alt.Tooltip("kappa:Q", format=".2f", title="Cohen's kappa"),
        ],
    )
    text = base.mark_text(fontSize=11).encode(text=alt.Text("percent:Q", format=".0%"))
    return alt.layer(cells, text).properties(title=title, width=_WIDTH, height=_HEIGHT)


def reliability_chart(data, *, task: Task | None = None, selection=None) -> alt.Chart:
    """Reliability diagram: the model's accuracy against its stated confidence, per tenth."""
    title = "Reliability of the model's confidence"
    table = reliability_table(data, task=task)
    if table.empty:
        return empty_chart(title, "No labeled record with a model confidence yet")
    points = (
        _filtered(alt.Chart(table), selection)
        .transform_aggregate(n="sum(n)", confidence_sum="sum(confidence_sum)", correct="sum(correct)", groupby=["bin"])
        .transform_calculate(confidence="datum.confidence_sum / datum.n", accuracy="datum.correct / datum.n")
        .mark_line(point=True)
        .encode(
            x=alt.X("confidence:Q", scale=alt.Scale(domain=[0, 1]), title="mean confidence"),
            y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1]), title="accuracy (human = model)"),
            tooltip=[
                "bin:Q",
                "n:Q",
                alt.Tooltip("confidence:Q", format=".3f"),
                alt.Tooltip("accuracy:Q", format=".3f"),
            ],
        )
    )
    diagonal = (
        alt.Chart(pd.DataFrame({"x": [0.0, 1.0], "y": [0.0, 1.0]}))
        .mark_line(strokeDash=[4, 4], color="#999")
        .encode(x="x:Q", y="y:Q")
    )
    return alt.layer(diagonal, points).properties(title=title, width=_WIDTH, height=_HEIGHT)


def coverage_chart(data, *, task: Task | None = None, selection=None, target: float = TARGET_ACCURACY) -> alt.Chart:
    """Coverage against accuracy as the auto-accept threshold moves (a point per threshold)."""
    title = "Auto-accept: coverage vs accuracy"
    table = coverage_table(data, task=task)
    if table.empty:
        return empty_chart(title, "No labeled record with a model confidence yet")
    curve = (
        _filtered(alt.Chart(table), selection)
        .transform_aggregate(covered="sum(covered)", correct="sum(correct)", total="sum(total)", groupby=["threshold"])
        .transform_filter("datum.covered > 0")
        .transform_calculate(coverage="datum.covered / datum.total", accuracy="datum.correct / datum.covered")
        .mark_line(point=True)
        .encode(
            x=alt.X("coverage:Q", scale=alt.Scale(domain=[0, 1]), title="coverage (share auto-accepted)"),
            y=alt.Y("accuracy:Q", title="accuracy of the accepted"),
            order="threshold:Q",
            tooltip=[
                "threshold:Q",
                "covered:Q",
                alt.Tooltip("coverage:Q", format=".1%"),
                alt.Tooltip("accuracy:Q", format=".1%"),
            ],
        )
    )
    rule = alt.Chart(pd.DataFrame({"target": [target]})).mark_rule(strokeDash=[4, 4], color="#c33").encode(y="target:Q")
    return alt.layer(curve, rule).properties(title=title, width=_WIDTH, height=_HEIGHT)


def accept_rate_chart(data, *, task: Task | None = None, selection=None) -> alt.Chart:
    """Share of suggestions the human label agreed with, per confidence band, blind vs shown."""
    title = "Accept rate by confidence band"
    table = accept_table(data, task=task)
    if table.empty:
        return empty_chart(title, "No labeled record with a model suggestion yet")
    return (
        _filtered(alt.Chart(table), selection)
        .transform_aggregate(n="sum(n)", accepted="sum(accepted)", groupby=["band", "mode"])
        .transform_calculate(rate="datum.accepted / datum.n")
        .mark_bar()
        .encode(
            x=alt.X("band:N", sort=BAND_NAMES, title="model confidence"),
            xOffset=alt.XOffset("mode:N"),
            y=alt.Y("rate:Q", scale=alt.Scale(domain=[0, 1]), title="human label = suggestion"),
            color=alt.Color("mode:N", title="suggestion"),
            tooltip=["band:N", "mode:N", "n:Q", "accepted:Q", alt.Tooltip("rate:Q", format=".1%")],
        )
        .properties(title=title, width=_WIDTH, height=_HEIGHT)
    )


def error_chart(data, *, task: Task | None = None, selection=None) -> alt.Chart:
    """Disagreement rate by annotator over position in session (fatigue, warm-up)."""
    title = "Disagreement by position in session"
    table = error_table(data, task=task)
    if table.empty:
        return empty_chart(title, "No label with a reference (another rater or the model) yet")
    return (
        _filtered(alt.Chart(table), selection)
        .transform_aggregate(n="sum(n)", disagree="sum(disagree)", groupby=["annotator", "position"])
        .transform_calculate(rate="datum.disagree / datum.n")
        .mark_line(point=True)
        .encode(
            x=alt.X("position:N", sort=POSITION_NAMES, title="position in session"),
            y=alt.Y("rate:Q", scale=alt.Scale(domain=[0, 1]), title="disagreement rate"),
            color=alt.Color("annotator:N"),
            tooltip=["annotator:N", "position:N", "n:Q", alt.Tooltip("rate:Q", format=".1%")],
        )
        .properties(title=title, width=_WIDTH, height=_HEIGHT)
    )


CHARTS = {
    "progress": progress_chart,
    "confusion": confusion_chart,
    "agreement": agreement_chart,
    "reliability": reliability_chart,
    "coverage": coverage_chart,
    "accept_rate": accept_rate_chart,
    "errors": error_chart,
}
_LINKED = ("confusion", "reliability", "coverage", "accept_rate", "errors")


def charts(data, *, task: Task | None = None, linked: bool = True) -> dict[str, alt.Chart]:
    """Every dashboard chart by name, built from one pass over the data."""
    decisions = prepare(data, task=task)
    single = decisions.task is None or decisions.task.kind == "single"
    selection = alt.selection_point(fields=["label"], name="human_label") if linked and single else None
    has_rows = {"confusion": not confusion_table(decisions).empty} if selection is not None else {}
    if selection is not None and not has_rows["confusion"]:
        selection = None  # the selection lives on the confusion matrix; no matrix, no selection
    return {
        name: function(decisions, selection=selection) if name in _LINKED else function(decisions)
        for name, function in CHARTS.items()
    }


def dashboard(data, *, task: Task | None = None) -> alt.VConcatChart | alt.Chart:
    """The labeling dashboard: progress, confusion, agreement, calibration, accept rate, errors.

    Parameters
    ----------
    data
        A labeled frame, a :class:`~jlabel.Store` or a journal frame (``store.events()``).
    task
        The task; by default the store's, else inferred from the labels.

    Returns
    -------
    altair.VConcatChart
        The charts in three rows; click a human label in the confusion matrix to filter the
        calibration, accept-rate and error charts. With no labeled record: one chart that
        says so.

    Examples
    --------
    >>> df = pd.DataFrame({"text": ["a", "b"], "label": ["x", "y"], "llm_label": ["x", "x"],
    ...                    "llm_confidence": [0.9, 0.6], "annotator": ["ana", "ana"]})
    >>> spec = dashboard(df).to_dict()
    >>> len(spec["vconcat"])
    3
    """
    decisions = prepare(data, task=task)
    if decisions.empty:
        return empty_chart("jlabel dashboard", "No labeled records yet: label some, then run jl.dashboard again")
    parts = charts(decisions)
    return (
        alt.vconcat(
            alt.hconcat(parts["progress"], parts["confusion"]).resolve_scale(color="independent"),
            alt.hconcat(parts["agreement"], parts["reliability"], parts["coverage"]).resolve_scale(color="independent"),
            alt.hconcat(parts["accept_rate"], parts["errors"]).resolve_scale(color="independent"),
        )
        .resolve_scale(color="independent", strokeDash="independent")
        .properties(title="jlabel: labeling progress and quality")
        .configure_view(stroke=None)
    )
