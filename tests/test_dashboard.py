"""Dashboard charts: valid specs whose numbers equal the ones computed directly from the data."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

import jlabel as jl
from jlabel.dashboard import (
    CHARTS,
    accept_table,
    agreement_table,
    charts,
    confusion_table,
    coverage_table,
    error_table,
    prepare,
    progress_table,
    reliability_table,
)

LABELS = ["World", "Sports", "Business", "Sci/Tech"]


def _spec_rows(chart) -> list[dict]:
    """Every data row a chart's spec carries (inline datasets)."""
    spec = chart.to_dict()  # validates against the Vega-Lite schema
    return [row for rows in spec.get("datasets", {}).values() for row in rows]


@pytest.fixture
def truth():
    """What two annotators decided, as plain Python lists the tests compute from."""
    rng = np.random.default_rng(7)
    n = 120
    gold = rng.integers(0, 4, n)
    confidence = rng.uniform(0.2, 1.0, n).round(3)
    suggestion = np.where(rng.uniform(size=n) < confidence, gold, (gold + 1) % 4)
    rows = []
    for annotator, count in (("ana", n), ("bob", 50)):
        for i in range(count):
            label = gold[i] if rng.uniform() < 0.85 else (gold[i] + 2) % 4
            blind = bool(rng.uniform() < 0.4)
            action = "label" if blind else ("accept" if label == suggestion[i] else "edit")
            rows.append(
                {
                    "record": f"r{i}",
                    "annotator": annotator,
                    "action": action,
                    "value": LABELS[label],
                    "suggestion": LABELS[suggestion[i]],
                    "confidence": float(confidence[i]),
                    "meta": {"blind": blind, "shown": not blind},
                }
            )
    return rows


@pytest.fixture
def store(tmp_path, task, truth):
    store = jl.Store(tmp_path / "labels.db", task=task, annotator="ana")
    store.record_many(truth)
    # ana mislabels r0 and takes it back: the undone decision must not count
    store.record("r0", "label", "Sports" if truth[0]["value"] != "Sports" else "World", annotator="ana")
    store.record("r0", "undo", annotator="ana")
    return store


def _final(truth) -> pd.DataFrame:
    return pd.DataFrame(truth).drop_duplicates(["record", "annotator"], keep="last")


def test_every_chart_validates_on_a_store_and_a_frame(store, task, truth):
    df = pd.DataFrame({"text": ["x"] * 120}, index=[f"r{i}" for i in range(120)])
    store.apply(df)
    model = _final(truth).drop_duplicates("record").set_index("record")
    df["llm_label"] = model["suggestion"].reindex(df.index).astype("string")
    df["llm_confidence"] = model["confidence"].reindex(df.index)
    for source in (store, df, store.events()):
        built = charts(source, task=task)
        assert set(built) == set(CHARTS)
        for name, chart in built.items():
            rows = _spec_rows(chart)
            assert rows, name
            assert "message" not in rows[0], f"{name} claims to be empty"
    spec = jl.dashboard(store).to_dict()
    assert len(spec["vconcat"]) == 3


def test_confusion_counts_equal_a_crosstab(store, truth):
    final = _final(truth)
    expected = pd.crosstab(final["value"], final["suggestion"]).stack()
    expected = expected[expected > 0].sort_index()
    table = confusion_table(store).set_index(["label", "suggested"])["n"].sort_index()
    assert table.to_dict() == expected.to_dict()
    rows = {(r["label"], r["suggested"]): r["n"] for r in _spec_rows(jl.dashboard(store)) if "suggested" in r}
    assert rows == expected.to_dict()


def test_reliability_and_coverage_equal_direct_computation(store, truth):
    final = _final(truth)
    correct = final["value"].eq(final["suggestion"])
    table = reliability_table(store)
    per_bin = table.groupby("bin")[["n", "correct", "confidence_sum"]].sum()
    bins = np.minimum((final["confidence"] * 10).astype(int), 9) / 10
    assert per_bin["n"].to_dict() == bins.value_counts().sort_index().to_dict()
    assert per_bin["correct"].to_dict() == correct.groupby(bins).sum().to_dict()
    np.testing.assert_allclose(per_bin["confidence_sum"], final["confidence"].groupby(bins).sum().sort_index())

    coverage = coverage_table(store).groupby("threshold")[["covered", "correct", "total"]].sum()
    for threshold in (0.0, 0.5, 0.8, 0.95):
        passed = final["confidence"] >= threshold
        assert coverage.loc[threshold, "covered"] == passed.sum()
        assert coverage.loc[threshold, "correct"] == (passed & correct).sum()
        assert coverage.loc[threshold, "total"] == len(final)


def test_accept_rate_by_band_and_mode(store, truth):
    final = _final(truth)
    table = accept_table(store).groupby(["band", "mode"])[["n", "accepted"]].sum()
    blind = final["meta"].map(lambda m: m["blind"])
    for band, low, high in (("0.5-0.6", 0.5, 0.6), ("0.9-1", 0.9, 1.01)):
        for mode, mask in (("blind", blind), ("shown", ~blind)):
            inside = mask & (final["confidence"] >= low) & (final["confidence"] < high)
            if inside.any():
                assert table.loc[(band, mode), "n"] == inside.sum()
                assert table.loc[(band, mode), "accepted"] == (inside & final["value"].eq(final["suggestion"])).sum()


def test_agreement_matches_sklearn(store, truth):
    final = _final(truth).pivot(index="record", columns="annotator", values="value").dropna()
    table = agreement_table(store).set_index(["rater_a", "rater_b"])
    row = table.loc[("ana", "bob")]
    assert row["n"] == len(final)
    assert row["percent"] == pytest.approx((final["ana"] == final["bob"]).mean())
    assert row["kappa"] == pytest.approx(cohen_kappa_score(final["ana"], final["bob"]))
    assert table.loc[("bob", "ana"), "percent"] == row["percent"]
    model = _final(truth).query("annotator == 'bob'")
    assert table.loc[("bob", "model"), "percent"] == pytest.approx(model["value"].eq(model["suggestion"]).mean())


def test_disagreement_by_position_in_session(task):
    # one annotator, five decisions in a session, then a new session after an hour
    start = pd.Timestamp("2026-01-01 09:00", tz="UTC")
    times = [start + pd.Timedelta(minutes=m) for m in (0, 1, 2, 3, 4, 64, 65)]
    df = pd.DataFrame(
        {
            "text": ["t"] * 7,
            "label": ["World", "Sports", "World", "World", "Sports", "World", "World"],
            "llm_label": ["World", "World", "World", "World", "World", "Sports", "World"],
            "llm_confidence": 0.9,
            "annotator": "ana",
            "labeled_at": times,
            "label_source": "human",
        }
    )
    table = prepare(df, task=task).table.sort_values("ts")
    assert table["position"].tolist() == [1, 2, 3, 4, 5, 1, 2]
    errors = error_table(df, task=task).groupby("position")[["n", "disagree"]].sum()
    assert errors.loc["1-10", "n"] == 7
    assert errors.loc["1-10", "disagree"] == 3


def test_disagreement_prefers_other_annotators_over_the_model(task):
    df_events = pd.DataFrame(
        {
            "id": [1, 2, 3],
            "ts": pd.to_datetime([1, 2, 3], unit="s", utc=True),
            "record": ["a", "a", "a"],
            "annotator": ["ana", "bob", "cy"],
            "action": "label",
            "value": ["World", "World", "Sports"],
            "suggestion": ["Sports", "Sports", "Sports"],
            "confidence": 0.7,
            "meta": None,
        }
    )
    errors = error_table(df_events, task=task).set_index("annotator")
    # ana and bob agree with each other (the model says otherwise); cy is the odd one out
    assert errors["disagree"].to_dict() == {"ana": 0, "bob": 0, "cy": 1}


def test_progress_is_cumulative_per_annotator_and_source(task):
    start = pd.Timestamp("2026-01-01", tz="UTC")
    df = pd.DataFrame(
        {
            "text": ["t"] * 6,
            "label": ["World"] * 6,
            "annotator": ["ana", "ana", "ana", "bob", "bob", "ana"],
            "label_source": ["human", "llm_accepted", "human", "human", "human", "human"],
            "labeled_at": [start + pd.Timedelta(days=d) for d in (0, 0, 1, 1, 2, 3)],
        }
    )
    table = progress_table(df, task=task)
    last = table.groupby(["annotator", "source"])["cumulative"].max().to_dict()
    assert last == {("ana", "human"): 3, ("ana", "llm_accepted"): 1, ("bob", "human"): 2}
    assert table["time"].str.endswith("T00:00:00Z").all()  # daily bins for a span of days


def test_multi_and_span_confusion():
    multi = jl.Task(["a", "b", "c"], kind="multi")
    df = pd.DataFrame(
        {
            "text": ["x", "y"],
            "label": [["a", "b"], []],
            "llm_label": [["a"], ["c"]],
            "llm_confidence": [0.8, 0.4],
            "annotator": "ana",
        }
    )
    table = confusion_table(df, task=multi).set_index(["label", "suggested"])["n"].to_dict()
    # labels on both sides on the diagonal, the rest against "(none)"
    assert table == {("a", "a"): 1, ("b", "(none)"): 1, ("(none)", "c"): 1}
    spans = jl.Task(["PER", "ORG"], kind="spans")
    df = pd.DataFrame(
        {
            "text": ["Ann works at Acme"],
            "label": [[{"start": 0, "end": 3, "label": "PER"}, {"start": 13, "end": 17, "label": "ORG"}]],
            "llm_label": [[{"start": 0, "end": 3, "label": "ORG"}]],
            "llm_confidence": [0.5],
            "annotator": "ana",
        }
    )
    table = confusion_table(df, task=spans).set_index(["label", "suggested"])["n"].to_dict()
    assert table == {("PER", "ORG"): 1, ("ORG", "(none)"): 1}
    for source, task in ((df, spans),):
        jl.dashboard(source, task=task).to_dict()


def test_multi_label_confusion_puts_the_same_set_on_the_diagonal():
    task = jl.Task(["a", "b", "c"], kind="multi")
    df = pd.DataFrame({"label": [["a", "b"], ["a", "b"], ["c"], []], "annotator": ["ana"] * 4})
    df = jl.set_suggestions(
        df, task, np.array([[0.9, 0.9, 0.1], [0.9, 0.9, 0.1], [0.9, 0.1, 0.1], [0.1] * 3]), model="m"
    )
    table = confusion_table(df, task=task).set_index(["label", "suggested"])["n"].to_dict()
    # an empty set on both sides is an agreement too: it stays on the diagonal as "(none)"
    expected = {("a", "a"): 2, ("b", "b"): 2, ("c", "(none)"): 1, ("(none)", "a"): 1, ("(none)", "(none)"): 1}
    assert table == expected


def test_span_confusion_pairs_spans_at_the_same_offsets_one_to_one():
    task = jl.Task(["PER", "ORG", "LOC"], kind="spans")
    per, org, loc = ({"start": 0, "end": 4, "label": name} for name in ("PER", "ORG", "LOC"))
    df = pd.DataFrame({"text": ["Acme"], "annotator": ["ana"], "label": [[per, org]], "llm_label": [[org, loc]]})
    table = confusion_table(df, task=task).set_index(["label", "suggested"])["n"].to_dict()
    assert table == {("ORG", "ORG"): 1, ("PER", "LOC"): 1}


def test_confusion_keeps_a_suggestion_no_human_has_used():
    task = jl.Task(["pos", "neg", "neutral"])
    df = pd.DataFrame({"label": ["pos", "pos", "neg", "neg"], "annotator": ["ana"] * 4})
    df = jl.set_suggestions(
        df, task, np.array([[0.9, 0.05, 0.05], [0.1, 0.1, 0.8], [0.1, 0.8, 0.1], [0.2, 0.1, 0.7]]), model="m"
    )
    table = confusion_table(df, task=task).set_index(["label", "suggested"])["n"].to_dict()
    assert table == {("pos", "pos"): 1, ("pos", "neutral"): 1, ("neg", "neg"): 1, ("neg", "neutral"): 1}


def test_confusion_caps_to_the_most_frequent_of_human_and_model_labels(monkeypatch):
    monkeypatch.setattr(sys.modules[confusion_table.__module__], "MAX_LABELS", 2)
    df = pd.DataFrame({"label": ["a", "a", "b"], "llm_label": ["c", "c", "c"], "annotator": "ana"})
    # counted over both sides: c (3) and a (2) are drawn, b (1) is "(other)"
    table = confusion_table(df, task=jl.Task(["a", "b", "c"])).set_index(["label", "suggested"])["n"].to_dict()
    assert table == {("a", "c"): 2, ("(other)", "c"): 1}


def test_linked_selection_filters_the_other_charts(store):
    spec = jl.dashboard(store).to_dict()
    text = json.dumps(spec)
    assert '"name": "human_label"' in text
    assert text.count('"filter": {"param": "human_label"}') == 4  # reliability, coverage, accept rate, errors


@pytest.mark.parametrize("source", ["frame", "store", "unlabeled"])
def test_empty_input_gives_a_chart_that_says_so(tmp_path, task, source):
    if source == "store":
        data = jl.Store(tmp_path / "empty.db", task=task)
    elif source == "frame":
        data = pd.DataFrame({"text": []})
    else:
        data = pd.DataFrame({"text": ["a", "b"], "label": [None, None]})
    spec = jl.dashboard(data, task=task).to_dict()
    assert spec["mark"]["type"] == "text"
    assert "No labeled records yet" in json.dumps(spec)
    for chart in CHARTS.values():
        assert "No " in json.dumps(chart(data, task=task).to_dict())


def test_bad_input_is_a_clear_error():
    with pytest.raises(TypeError, match=r"labeled DataFrame, a jl\.Store"):
        jl.dashboard([1, 2, 3])


def test_large_input_stays_small_and_under_the_row_limit(task):
    n = 200_000
    rng = np.random.default_rng(1)
    events = pd.DataFrame(
        {
            "id": np.arange(1, n + 1),
            "ts": pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(np.arange(n) * 3, unit="s"),
            "record": pd.Series(np.arange(n) % 150_000).astype(str).to_numpy(dtype=object),
            "annotator": np.array(["ana", "bob", "cy", "dee"], dtype=object)[rng.integers(0, 4, n)],
            "action": "label",
            "value": np.array(LABELS, dtype=object)[rng.integers(0, 4, n)],
            "suggestion": np.array(LABELS, dtype=object)[rng.integers(0, 4, n)],
            "confidence": rng.uniform(size=n),
            "meta": None,
        }
    )
    with alt.data_transformers.enable("default", max_rows=5000):
        spec = jl.dashboard(events, task=task).to_dict()
    size = len(json.dumps(spec))
    assert size < 200_000
    assert max(len(rows) for rows in spec["datasets"].values()) < 5000


@pytest.mark.parametrize("kind", ["multi", "spans"])
def test_multi_and_span_stores(tmp_path, kind):
    task = jl.Task(["PER", "ORG"], kind=kind)
    store = jl.Store(tmp_path / f"{kind}.db", task=task, annotator="ana")
    if kind == "multi":
        first, second, suggestion = ["PER"], ["PER", "ORG"], ["ORG"]
    else:
        first = [{"start": 0, "end": 3, "label": "PER"}]
        second = [{"start": 0, "end": 3, "label": "ORG"}]
        suggestion = second
    store.record("a", "edit", second, suggestion=suggestion, confidence=0.6, meta={"blind": False, "shown": True})
    store.record("a", "undo")
    store.record("a", "edit", first, suggestion=suggestion, confidence=0.6, meta={"blind": False, "shown": True})
    store.record("b", "accept", suggestion, suggestion=suggestion, confidence=0.9, meta={"blind": False, "shown": True})
    store.record("a", "label", first, annotator="bob", meta={"blind": True, "shown": False})
    table = prepare(store).table.set_index(["record", "annotator"])
    assert table.loc[("a", "ana"), "value"] == first  # the undone edit does not count
    assert table.loc[("a", "bob"), "suggested"] is None  # no suggestion on the event: none invented
    agreement = agreement_table(store).set_index(["rater_a", "rater_b"])
    assert agreement.loc[("ana", "bob"), "percent"] == 1.0
    assert agreement.loc[("ana", "model"), "percent"] == 0.5
    accept = accept_table(store).groupby("band")["accepted"].sum().to_dict()
    assert accept == {"0.6-0.7": 0, "0.9-1": 1}
    spec = jl.dashboard(store).to_dict()
    assert "human_label" not in json.dumps(spec)  # the label filter is for single-label tasks


def test_many_labels_and_annotators_stay_under_the_row_limit():
    n = 40_000
    rng = np.random.default_rng(3)
    names = np.array([f"label{i:03d}" for i in range(150)], dtype=object)
    task = jl.Task(names.tolist())
    df = pd.DataFrame(
        {
            "text": "",
            "label": names[rng.integers(0, 150, n)],
            "llm_label": names[rng.integers(0, 150, n)],
            "llm_confidence": rng.uniform(size=n),
            "annotator": np.array([f"a{i}" for i in range(30)], dtype=object)[rng.integers(0, 30, n)],
            "labeled_at": pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(rng.uniform(0, 9e6, n), unit="s"),
        }
    )
    with alt.data_transformers.enable("default", max_rows=5000):
        spec = jl.dashboard(df, task=task).to_dict()
    assert max(len(rows) for rows in spec["datasets"].values()) < 5000
    table = confusion_table(df, task=task)
    assert table["n"].sum() == n  # lumped into "(other)", never dropped
    assert table["label"].nunique() == 61 and "(other)" in set(table["label"])


def test_multi_label_sets_in_another_order_are_the_same_label():
    task = jl.Task(["x", "y"], kind="multi", text="text")
    df = pd.DataFrame({"text": ["a", "b"], "annotator": ["ana", "ana"]})
    df = jl.set_suggestions(df, task, np.array([[0.9, 0.9], [0.9, 0.1]]), model="m")  # suggests [x, y] and [x]
    df["label"] = pd.Series([["y", "x"], ["x"]], dtype=object)
    assert prepare(df, task=task).table["correct"].tolist() == [True, True]
    row = agreement_table(df, task=task).set_index(["rater_a", "rater_b"]).loc[("ana", "model")]
    assert row["percent"] == 1.0 and row["n"] == 2
    # spans too: the same spans listed in another order
    first, second = {"start": 0, "end": 1, "label": "PER"}, {"start": 2, "end": 3, "label": "ORG"}
    spans = pd.DataFrame(
        {"text": ["a b c"], "annotator": ["ana"], "label": [[second, first]], "llm_label": [[first, second]]}
    )
    assert prepare(spans).table["correct"].tolist() == [True]


def test_list_labels_held_as_numpy_arrays():
    def frame(wrap):
        return pd.DataFrame(
            {
                "text": ["a", "b"],
                "annotator": ["ana", "bo"],
                "label": pd.Series([wrap(["x", "y"]), wrap(["x"])], dtype=object),
                "llm_label": pd.Series([wrap(["y", "x"]), wrap(["y"])], dtype=object),
                "llm_confidence": [0.8, 0.6],
            }
        )

    arrays, lists = frame(np.array), frame(list)
    columns = ["key", "suggested_key", "correct"]
    pd.testing.assert_frame_equal(prepare(arrays).table[columns], prepare(lists).table[columns])
    assert prepare(arrays).table["correct"].tolist() == [True, False]
    pd.testing.assert_frame_equal(agreement_table(arrays), agreement_table(lists))
    jl.dashboard(arrays).to_dict()  # every chart validates


def test_readme_names_a_working_import_of_the_chart_functions():
    # jl.dashboard is the function, which hides the module: the README must show an import that works
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    imports = re.findall(r"`(from jlabel\.dashboard import [\w, ]+)`", readme)
    assert imports, "the README should show how to import a single chart"
    for line in imports:
        names: dict = {}
        exec(line, names)
        charts_ = [value for key, value in names.items() if not key.startswith("__")]
        assert charts_ and all(value in CHARTS.values() for value in charts_)
