"""jl.check, jl.annotator_report, calibration and auto-accept thresholds."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import jlabel as jl
from jlabel import calibration

LABELS = ["World", "Sports", "Business", "Sci/Tech"]
TASK = jl.Task(LABELS, text="text")


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)


def _noisy(n: int = 2000, noise: float = 0.1, seed: int = 0):
    """A frame whose model is right ~85% of the time, with ``noise`` of the human labels flipped."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 4, n)
    logits = rng.normal(0, 1, (n, 4))
    logits[np.arange(n), truth] += 2.5
    flip = rng.random(n) < noise
    given = (truth + np.where(flip, rng.integers(1, 4, n), 0)) % 4
    df = pd.DataFrame({"text": [f"story {i}" for i in range(n)], "label": np.asarray(LABELS, dtype=object)[given]})
    return jl.set_suggestions(df, TASK, _softmax(logits), model="m"), flip, given


def test_check_finds_flipped_labels_like_a_plain_confident_learning_loop():
    df, flip, given = _noisy()
    suspects = jl.check(df, TASK, learn=False)  # the model's probabilities as they are
    assert list(suspects.columns) == ["label", "model_label", "model_confidence", "score", "reason"]
    assert suspects["score"].is_monotonic_decreasing
    flagged = df.index.isin(suspects.index.astype(int))
    precision, recall = flip[flagged].mean(), flagged[flip].mean()
    assert precision > 0.5 and recall > 0.5, (precision, recall)

    # the same rule, written as a loop over records
    p = jl.probs(df, TASK)
    thresholds = [p[given == j, j].mean() for j in range(4)]
    expected = set()
    for i in range(len(df)):
        over = [j for j in range(4) if p[i, j] >= thresholds[j]]
        if over and p[i, max(over, key=lambda j: p[i, j])] > p[i, given[i]]:
            expected.add(str(i))
    assert set(suspects.index) == expected
    first = suspects.iloc[0]
    assert first["model_label"] != first["label"] and "model says" in first["reason"]


def test_check_never_flags_a_label_the_model_prefers():
    # "b" is rare and under-rated, so its threshold is low (0.01): p(b) = 0.3 or 0.4 reaches it
    task = jl.Task(["a", "b"], text="text")
    df = pd.DataFrame({"text": [f"t{i}" for i in range(6)], "label": ["a"] * 5 + ["b"]})
    model_probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.95, 0.05], [0.6, 0.4], [0.99, 0.01]])
    suspects = jl.check(jl.set_suggestions(df, task, model_probs, model="m"), task, learn=False)
    assert suspects.index.tolist() == ["5"]  # records 2 and 4 were flagged, though the model agrees
    assert suspects.loc["5", "model_label"] == "a" and "model says a with p=0.99" in suspects.loc["5", "reason"]
    assert suspects.loc["5", "score"] == pytest.approx(0.98)


def test_check_flags_same_text_with_different_labels():
    df = pd.DataFrame(
        {
            "text": ["Stocks fall!", "stocks  FALL", "Stocks fall.", "Match won", "match won!", "other"],
            "label": ["Business", "Business", "Sports", "Sports", "World", "World"],
        },
        index=list("abcdef"),
    )
    suspects = jl.check(df, TASK)  # no model probabilities: only the text check runs
    assert set(suspects.index) == {"c", "d", "e"}
    assert suspects.loc["c", "score"] == pytest.approx(2 / 3)
    assert suspects.loc["d", "score"] == pytest.approx(1 / 2)  # a tie: both are suspect
    assert "2 of 2 records with the same text" in suspects.loc["c", "reason"]
    assert suspects["model_label"].isna().all()
    assert jl.check(df, TASK, similar=False).empty


def test_check_journals_its_suspects_for_the_audit_report(tmp_path):
    from jlabel.audit import _checks

    df = pd.DataFrame(
        {
            "text": ["Stocks fall!", "stocks  FALL", "Stocks fall.", "Match won", "match won!", "other"],
            "label": ["Business", "Business", "Sports", "Sports", "World", "World"],
        },
        index=list("abcdef"),
    )
    df = jl.set_suggestions(df, TASK, np.tile([0.7, 0.1, 0.1, 0.1], (6, 1)), model="m@sha256:0")
    suspects = jl.check(df, TASK, learn=False, store=tmp_path / "labels.db")
    store = jl.Store(tmp_path / "labels.db", task=TASK)
    events = store.events(actions=["check"]).set_index("record")
    assert sorted(events.index) == list("abcdef")  # every checked label: "suspect" or "ok"
    assert sorted(events.index[events["value"] == "suspect"]) == sorted(suspects.index) and len(suspects) > 0
    first = events.loc[suspects.index[0]]
    assert first["suggestion"] == suspects["model_label"].iloc[0]
    assert first["model"] == "m@sha256:0" and first["meta"]["reason"] == suspects["reason"].iloc[0]
    assert set(_checks(store, None)["record"]) == set(suspects.index)  # jlabel report shows them unasked
    assert store.state().empty or store.state()["value"].isna().all()  # a check decides nothing
    # labels fixed and checked again leave the report; a check that finds nothing says so
    fixed = df.assign(label="World", llm_probs=[[0.1, 0.1, 0.1, 0.7]] * 6)
    assert jl.check(fixed, TASK, learn=False, store=store).empty
    assert _checks(store, None).empty
    jl.report(store, tmp_path / "r.html")
    assert "Checked: nothing suspect" in (tmp_path / "r.html").read_text()


def test_check_refuses_another_tasks_store_before_it_works(tmp_path):
    other = jl.Store(tmp_path / "other.db", task=jl.Task(["x", "y"]))
    df = pd.DataFrame({"text": ["a", "b"], "label": ["World", "Sports"]})
    with pytest.raises(ValueError, match=r"is for task .* not this task"):
        jl.check(df, TASK, store=other)
    with pytest.raises(jl.StoreError, match="another task"):
        jl.check(df, TASK, store=tmp_path / "other.db")
    assert other.events(actions=["check"]).empty


def test_check_rejects_what_it_cannot_do():
    df, _, _ = _noisy(20)
    with pytest.raises(ValueError, match="explain=True asks the model"):
        jl.check(df, TASK, explain=True)
    with pytest.raises(ValueError, match=r"labels \['Weather'\] are not in the task's labels"):
        jl.check(df.assign(label="Weather"), TASK)
    with pytest.raises(ValueError, match="single-label tasks"):
        jl.check(df, jl.Task(LABELS, kind="multi"))


def test_temperature_scaling_lowers_held_out_ece():
    rng = np.random.default_rng(1)
    n = 4000
    true_logits = rng.normal(0, 1.2, (n, 4))
    truth = (rng.random(n)[:, None] > np.cumsum(_softmax(true_logits), axis=1)).sum(axis=1).clip(0, 3)
    overconfident = _softmax(3 * true_logits)
    df = pd.DataFrame({"text": "x", "label": np.asarray(LABELS, dtype=object)[truth]})
    df = jl.set_suggestions(df, TASK, overconfident, model="m")
    fit, held = df.iloc[:2000], df.iloc[2000:]
    temperature = jl.fit_temperature(fit, TASK)
    assert 2.3 < temperature < 3.7  # the model's logits were multiplied by 3
    before = jl.expected_calibration_error(held, TASK)
    scaled = jl.apply_temperature(held, TASK, temperature)
    after = jl.expected_calibration_error(scaled, TASK)
    assert after < before / 2, (before, after)
    assert scaled["llm_label"].equals(held["llm_label"]) and scaled["llm_model"].eq("m").fillna(False).all()
    sourced = held.assign(llm_source="head")
    assert jl.apply_temperature(sourced, TASK, temperature)["llm_source"].tolist() == ["head"] * 2000  # was emptied
    assert held["llm_probs"].equals(df.iloc[2000:]["llm_probs"])  # input untouched
    table = jl.reliability_table(held, TASK)
    assert table["n"].sum() == 2000
    weighted = (table["n"] * table["gap"].abs()).sum() / table["n"].sum()
    assert weighted == pytest.approx(before)
    assert before == pytest.approx(calibration.ece(jl.probs(held, TASK), truth[2000:]))
    with pytest.raises(ValueError, match="temperature must be a positive number"):
        jl.apply_temperature(held, TASK, 0)
    with pytest.raises(ValueError, match="label some records"):
        jl.fit_temperature(df.assign(label=None), TASK)


def test_auto_accept_threshold_matches_a_search_over_every_threshold():
    df, _, _ = _noisy(600, noise=0.0, seed=5)
    df.loc[df.index[500:], "label"] = None  # 100 unlabeled records count for coverage only
    out = jl.auto_accept_threshold(df, TASK, target_accuracy=0.97, n_boot=300)
    p = jl.probs(df, TASK)
    labeled = df["label"].notna().to_numpy()
    conf = p.max(axis=1)
    right = np.asarray(LABELS, dtype=object)[p.argmax(axis=1)] == df["label"].to_numpy()
    passing = [t for t in np.unique(conf[labeled]) if right[labeled & (conf >= t)].mean() >= 0.97]
    assert out["threshold"] == min(passing)
    assert out["accuracy"] == pytest.approx(right[labeled & (conf >= min(passing))].mean())
    assert out["coverage"] == pytest.approx((conf >= min(passing)).mean())
    assert out["n"] == (labeled & (conf >= min(passing))).sum()
    low, high = out["accuracy_ci"]
    assert low <= out["accuracy"] <= high and high - low > 0
    assert out["threshold_ci"][0] <= out["threshold_ci"][1]
    # the top suggestion is wrong: no threshold reaches 95%, nor does any resample that keeps that record
    conf = np.r_[0.99, 0.98 - 0.01 * np.arange(9), np.full(10, 0.7)]
    right = np.r_[False, np.ones(9, bool), np.tile([True, False], 5)]
    few = jl.set_suggestions(
        pd.DataFrame({"label": np.where(right, "World", "Sports")}),
        TASK,
        np.c_[conf, 1 - conf, 0 * conf, 0 * conf],
        model="m",
    )
    none = jl.auto_accept_threshold(few, TASK, target_accuracy=0.95, n_boot=500)
    assert np.isnan(none["threshold"]) and none["coverage"] == 0
    assert none["threshold_ci"][1] == np.inf  # most resamples find none (the interval was (0.9, 0.9))
    never = jl.auto_accept_threshold(df, TASK, target_accuracy=1.0, n_boot=0)
    assert np.isnan(never["threshold"]) or never["accuracy"] == 1.0
    with pytest.raises(ValueError, match="target_accuracy"):
        jl.auto_accept_threshold(df, TASK, target_accuracy=1.5)


def test_annotator_report_from_a_store(tmp_path):
    task = jl.Task(["x", "y"])
    store = jl.Store(tmp_path / "labels.db", task=task)
    rng = np.random.default_rng(0)
    start = pd.Timestamp("2026-01-01T09:00", tz="UTC")
    rows = []
    for who, error in (("ana", 0.0), ("ben", 0.4)):
        for i in range(40):
            truth = "x" if i % 2 else "y"
            wrong = rng.random() < error * (i >= 20)  # ben errs only late in his session
            value = ("y" if truth == "x" else "x") if wrong else truth
            rows.append(
                {
                    "record": f"r{i}",
                    "action": "label",
                    "value": value,
                    "annotator": who,
                    "suggestion": truth,
                    "confidence": 0.9 if i % 4 else 0.3,
                    "ts": start + pd.Timedelta(seconds=30 * i),
                }
            )
    store.record_many(pd.DataFrame(rows))  # the decisions keep their own times
    report = jl.annotator_report(store)
    assert list(report.index) == ["ana", "ben"]
    assert report.loc["ana", "labels"] == 40
    assert report.loc["ana", "labels_per_hour"] == pytest.approx(39 / (39 * 30 / 3600))  # 30 s a label
    assert report.loc["ana", "model_agreement"] == 1.0
    ben_right = np.mean([r["value"] == r["suggestion"] for r in rows if r["annotator"] == "ben"])
    assert report.loc["ben", "model_agreement"] == pytest.approx(ben_right)
    assert report.loc["ana", "agreement_with_others"] == pytest.approx(ben_right)
    assert report.loc["ben", "fatigue"] > 0.2 and report.loc["ben", "disagree_early"] == 0
    assert report.loc["ana", "accept_low"] == 1.0 and report.loc["ana", "accept_high"] == 1.0
    store.close()
    with pytest.raises(ValueError, match="needs labeled records"):
        jl.annotator_report(pd.DataFrame({"label": [None]}))


def _events(rows) -> pd.DataFrame:
    """A journal of ana's decisions from ``(minute, record, action, value)`` rows, suggestion "x"."""
    return pd.DataFrame(
        {
            "id": range(1, len(rows) + 1),
            "ts": pd.DatetimeIndex(
                [pd.Timestamp("2026-01-01T09:00", tz="UTC") + pd.Timedelta(minutes=m) for m, _, _, _ in rows]
            ).as_unit("ns"),
            "record": [r for _, r, _, _ in rows],
            "annotator": "ana",
            "action": [a for _, _, a, _ in rows],
            "value": [v for _, _, _, v in rows],
            "suggestion": "x",
            "confidence": 0.9,
            "meta": None,
        }
    )


def test_labels_per_hour_counts_sessions_that_start_with_a_skip():
    # two sessions six hours apart, each a skip and then two labels a minute apart: 2 intervals in 2 minutes
    events = _events(
        [
            (minute, record, action, None if action == "skip" else "x")
            for start in (0, 360)
            for minute, record, action in (
                (start, f"s{start}", "skip"),
                (start + 1, f"a{start}", "label"),
                (start + 2, f"b{start}", "label"),
            )
        ]
    )
    report = jl.annotator_report(events, task=jl.Task(["x", "y"]))
    assert report.loc["ana", "labels"] == 4
    assert report.loc["ana", "labels_per_hour"] == pytest.approx(2 / (2 / 60))  # was 0.33: the 6 hours counted


def test_labels_per_hour_leaves_out_one_label_sessions():
    # two labels a minute apart, then eight labels 45 minutes apart: each a session of one label
    minutes = [0, 1] + [45 * i for i in range(2, 10)]
    events = _events([(m, f"r{i}", "label", "x") for i, m in enumerate(minutes)])
    report = jl.annotator_report(events, task=jl.Task(["x", "y"]))
    assert report.loc["ana", "labels"] == 10
    assert report.loc["ana", "labels_per_hour"] == pytest.approx(60)  # was 600: 10 labels over 1 minute
    alone = jl.annotator_report(events.iloc[2:], task=jl.Task(["x", "y"]))
    assert np.isnan(alone.loc["ana", "labels_per_hour"])  # no interval, no time


def test_fatigue_splits_each_session_at_its_own_half():
    # ten sessions of 4 labels, an hour apart, the last 2 of each disagreeing; then one clean session of 40
    rows = [(60 * s + pos, f"s{s}-{pos}", "label", "y" if pos >= 3 else "x") for s in range(10) for pos in range(1, 5)]
    rows += [(600 + pos, f"long-{pos}", "label", "x") for pos in range(1, 41)]
    report = jl.annotator_report(_events(rows), task=jl.Task(["x", "y"]))
    assert report.loc["ana", "disagree_early"] == 0  # was 20/22: one median (4) over all sessions
    assert report.loc["ana", "disagree_late"] == pytest.approx(20 / 40)
    assert report.loc["ana", "fatigue"] == pytest.approx(0.5)


def test_apply_temperature_keeps_unscored_records_without_a_warning():
    task = jl.Task(["a", "b"])
    df = jl.set_suggestions(pd.DataFrame({"label": ["a", None]}), task, np.array([[0.9, 0.1], [np.nan] * 2]), model="m")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # was "All-NaN slice encountered"
        scaled = jl.apply_temperature(df, task, 2.0)
    p = jl.probs(scaled, task)
    assert p[0] == pytest.approx(_softmax(np.log([[0.9, 0.1]]) / 2.0)[0])
    assert np.isnan(p[1]).all() and pd.isna(scaled["llm_label"].iloc[1])


class _Explainer:
    """Answers each chat with the human label it was asked about, and keeps the chats."""

    def __init__(self):
        self.chats = []

    def generate(self, messages, *, max_tokens=60):
        self.chats.append(messages)
        return f"{messages[-1]['content'].split('person: ')[1].splitlines()[0]} does not fit.\nignored line"


def test_check_explains_the_top_suspects_with_the_model():
    df, _, _ = _noisy(200)
    model = _Explainer()
    plain = jl.check(df, TASK, learn=False)
    explained = jl.check(df, TASK, model, explain=3, learn=False)
    pd.testing.assert_frame_equal(explained.drop(columns="explanation"), plain)
    assert len(model.chats) == 3
    first = explained.iloc[0]
    assert first["explanation"] == f"{first['label']} does not fit."  # one line
    assert df["text"].iloc[int(explained.index[0])] in model.chats[0][-1]["content"]
    assert f"model prefers: {first['model_label']}" in model.chats[0][-1]["content"]
    assert explained["explanation"].iloc[3:].isna().all()


@pytest.mark.model
def test_check_explains_with_the_embedded_model(embedded_llm):
    df = pd.DataFrame(
        {
            "text": ["The team won the cup final 3-1.", "A late goal sank the champions.", "Shares fell 5% on Monday."],
            "label": ["World", "Sports", "Business"],
        }
    )
    model_probs = np.array([[0.02, 0.95, 0.02, 0.01], [0.3, 0.6, 0.05, 0.05], [0.1, 0.1, 0.7, 0.1]])
    df = jl.set_suggestions(df, TASK, model_probs, model="m")
    suspects = jl.check(df, TASK, embedded_llm, explain=True)
    assert suspects.index.tolist() == ["0"]
    assert isinstance(suspects.loc["0", "explanation"], str) and len(suspects.loc["0", "explanation"]) > 3
    assert "\n" not in suspects.loc["0", "explanation"]
