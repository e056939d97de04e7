"""jl.evaluate and jl.compare_prompts: metric arithmetic, the table, bad input, reproducibility."""

from __future__ import annotations

import argparse
import json
import sys

import altair as alt
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

import jlabel as jl
from jlabel.evaluate import (
    add_evaluate_arguments,
    coverage_at,
    evaluate_command,
    scores,
)
from jlabel.llm import llm as load_model
from jlabel.llm.base import LLM, SpanResult
from jlabel.preannotate import preannotate
from jlabel.prompts import Prompt, default_prompt

LABELS = ["World", "Sports", "Business", "Sci/Tech"]
# twelve short records written for these tests, three per label
GOLD = pd.DataFrame(
    {
        "text": [
            "Leaders of both nations signed a ceasefire in Geneva on Monday.",
            "The United Nations sent aid convoys to the flooded northern provinces.",
            "Voters in the capital chose a new president after a tense campaign.",
            "The striker scored twice as the home side won the cup final.",
            "The tennis champion retired after losing in the second round.",
            "The marathon was won in record time by a first-time runner.",
            "Shares of the retailer fell after it cut its profit forecast.",
            "The central bank raised interest rates for the third time this year.",
            "The airline agreed to buy its smaller rival for two billion dollars.",
            "Engineers unveiled a chip that doubles the battery life of phones.",
            "Astronomers found water vapour on a planet orbiting a distant star.",
            "A new software update fixes a security flaw in millions of routers.",
        ],
        "label": [label for label in LABELS for _ in range(3)],
    },
    index=[f"g{i:02d}" for i in range(12)],
)
KEYWORDS = {
    "World": ("ceasefire", "nations", "president"),
    "Sports": ("scored", "tennis", "marathon"),
    "Business": ("shares", "bank", "airline"),
    "Sci/Tech": ("chip", "astronomers", "software"),
}


class KeywordLLM(LLM):
    """A fake model for the metric arithmetic: probabilities from keywords, shaped by the prompt.

    A prompt whose template starts with "Headline" finds the keywords; the default prompt
    only sees the first two labels' keywords, so the two prompts differ in quality.
    """

    calls = 0

    @property
    def id(self) -> str:
        return "fake:keywords@sha256:" + "0" * 64

    def score_one(self, prompt: Prompt, text: str):
        type(self).calls += 1
        if "EXPLODE" in text:
            raise RuntimeError("the fake model fails on this record")
        k = len(prompt.task.labels)
        row = np.ones(k)
        known = prompt.task.labels if prompt.template.startswith("Headline") else prompt.task.labels[:2]
        lowered = text.lower()
        for j, label in enumerate(prompt.task.labels):
            if label in known and any(word in lowered for word in KEYWORDS.get(label, ())):
                row[j] += 3 + len(text) % 3
        return row / row.sum(), None

    def spans_one(self, prompt: Prompt, text: str) -> SpanResult:
        raise NotImplementedError


@pytest.fixture
def task() -> jl.Task:
    return jl.Task(LABELS, instructions="Classify the news article by topic.")


# -- the metric arithmetic, against scikit-learn and direct definitions ---------------------------


def _reference_ece(confidence, correct, bins=10):
    total = 0.0
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        members = [(c, r) for c, r in zip(confidence, correct) if low <= c < high or (b == bins - 1 and c == 1.0)]
        if members:
            accuracy = sum(r for _, r in members) / len(members)
            mean_confidence = sum(c for c, _ in members) / len(members)
            total += len(members) / len(confidence) * abs(accuracy - mean_confidence)
    return total


def _reference_coverage(confidence, correct, target):
    best = (0.0, np.nan)
    for threshold in sorted(set(confidence), reverse=True):
        accepted = [r for c, r in zip(confidence, correct) if c >= threshold]
        if sum(accepted) / len(accepted) >= target:
            best = (len(accepted) / len(confidence), threshold)
    return best


@pytest.mark.parametrize("seed", range(8))
def test_single_label_scores_equal_sklearn_and_definitions(seed):
    rng = np.random.default_rng(seed)
    task = jl.Task(["a", "b", "c", "d", "e"][: rng.integers(2, 6)])
    n, k = int(rng.integers(5, 80)), len(task.labels)
    truth = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 2.0 * np.eye(k)[truth] * rng.random()
    matrix = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    matrix = np.round(matrix, 2)  # ties in confidence, so thresholds must take whole groups
    matrix = matrix / matrix.sum(axis=1, keepdims=True)
    out = scores(truth, matrix, task)
    predicted = matrix.argmax(axis=1)
    assert out["accuracy"] == pytest.approx(accuracy_score(truth, predicted))
    assert out["macro_f1"] == pytest.approx(f1_score(truth, predicted, average="macro"))
    per_label = f1_score(truth, predicted, labels=range(k), average=None, zero_division=0)
    present = np.isin(range(k), np.r_[truth, predicted])
    for j, label in enumerate(task.labels):
        if present[j]:
            assert out[f"f1[{label}]"] == pytest.approx(per_label[j])
        else:
            assert np.isnan(out[f"f1[{label}]"])
    confidence = matrix.max(axis=1)
    assert out["ece"] == pytest.approx(_reference_ece(confidence.tolist(), (predicted == truth).tolist()))
    coverage, threshold = _reference_coverage(confidence.tolist(), (predicted == truth).tolist(), 0.95)
    assert out["coverage"] == pytest.approx(coverage)
    assert out["threshold"] == pytest.approx(threshold, nan_ok=True)
    assert out["n"] == n and out["failed"] == 0


def test_multi_label_scores_equal_sklearn():
    rng = np.random.default_rng(7)
    task = jl.Task(["x", "y", "z"], kind="multi")
    truth = rng.random((60, 3)) < 0.4
    matrix = np.clip(truth * 0.5 + rng.random((60, 3)) * 0.6, 0, 1)
    out = scores(truth, matrix, task)
    predicted = matrix > 0.5
    assert out["accuracy"] == pytest.approx(accuracy_score(truth, predicted))  # exact set match
    assert out["macro_f1"] == pytest.approx(f1_score(truth, predicted, average="macro"))
    for j, label in enumerate(task.labels):
        assert out[f"f1[{label}]"] == pytest.approx(f1_score(truth[:, j], predicted[:, j]))
    per_decision = np.where(predicted, matrix, 1 - matrix).ravel()
    assert out["ece"] == pytest.approx(_reference_ece(per_decision.tolist(), (predicted == truth).ravel().tolist()))


def test_failed_records_count_as_wrong_and_are_never_auto_accepted():
    task = jl.Task(["pos", "neg"])
    matrix = np.array([[0.99, 0.01], [0.98, 0.02], [np.nan, np.nan], [np.nan, np.nan]])
    out = scores(np.array([0, 0, 0, 1]), matrix, task)
    assert out["failed"] == 2
    assert out["accuracy"] == 0.5
    assert out["coverage"] == 0.5 and out["threshold"] == pytest.approx(0.98)
    assert out["ece"] == pytest.approx(0.015)  # over the two scored records only


def test_coverage_is_zero_when_no_threshold_reaches_the_target():
    assert coverage_at(np.array([0.9, 0.8]), np.array([False, True]), 0.95) == (0.0, pytest.approx(np.nan, nan_ok=True))
    coverage, threshold = coverage_at(np.array([0.9, 0.9, 0.5]), np.array([True, False, True]), 0.6)
    assert (coverage, threshold) == (1.0, 0.5)  # the tie at 0.9 is accepted or refused as a whole
    task = jl.Task(["pos", "neg"])
    out = scores(np.array([0, 1]), np.full((2, 2), np.nan), task)  # every record failed
    assert (out["accuracy"], out["coverage"], out["failed"]) == (0.0, 0.0, 2)
    assert np.isnan(out["ece"]) and out["macro_f1"] == 0.0 and np.isnan(out["threshold"])


# -- jl.evaluate with a fake model (the arithmetic end to end) ------------------------------------


def test_evaluate_table_matches_the_probabilities_each_prompt_gives(task):
    gold = GOLD.copy()
    before = gold.copy()
    llm = KeywordLLM()
    prompts = {"plain": task, "headline": "Headline: {text}"}
    table = jl.evaluate(gold, task, llm, prompts, calibrate=None)
    pd.testing.assert_frame_equal(gold, before)  # the input is not modified
    assert list(table.index) == ["plain", "headline"]
    expected_columns = {"accuracy", "accuracy_low", "accuracy_high", "macro_f1", "ece", "coverage", "threshold"}
    assert expected_columns | {"records_per_s", "model", "prompt_hash"} <= set(table.columns)
    assert [c for c in table.columns if c.startswith("f1[")] == [f"f1[{label}]" for label in LABELS]
    truth = np.array([LABELS.index(v) for v in GOLD["label"]])
    for name, prompt in [
        ("plain", default_prompt(task)),
        ("headline", default_prompt(task, template="Headline: {text}")),
    ]:
        direct = np.array([llm.score_one(prompt, text)[0] for text in GOLD["text"]])
        expected = scores(truth, direct, task)
        row = table.loc[name]
        for metric, value in expected.items():
            assert row[metric] == pytest.approx(value, nan_ok=True), (name, metric)
        assert row["prompt_hash"] == prompt.hash
        assert row["model"] == llm.id
        assert row["records_per_s"] > 0
        assert row["accuracy_low"] <= row["accuracy"] <= row["accuracy_high"]
    assert table.loc["headline", "accuracy"] == 1.0
    assert table.loc["plain", "accuracy"] < 1.0
    assert table.loc["plain", "prompt_hash"] != table.loc["headline", "prompt_hash"]


def test_evaluate_measures_what_preannotate_suggests_with_its_default_calibration(task):
    llm = KeywordLLM()
    table = jl.evaluate(GOLD, task, llm, {"headline": "Headline: {text}"}, seed=3)
    prompt = default_prompt(task, template="Headline: {text}")
    options = {"examples": None, "cache": None, "resume": False, "progress": False}
    suggested = preannotate(GOLD.drop(columns="label"), task, llm, prompt=prompt, **options)
    truth = np.array([LABELS.index(v) for v in GOLD["label"]])
    expected = scores(truth, jl.probs(suggested, task), task, seed=3)
    raw = table.loc["headline"]
    for metric, value in expected.items():
        assert raw[metric] == pytest.approx(value, nan_ok=True), metric
    # the calibrate option reaches pre-annotation: the batch-mean correction changes the confidences
    uncorrected = jl.evaluate(GOLD, task, llm, {"headline": "Headline: {text}"}, calibrate=None)
    batch = jl.evaluate(GOLD, task, llm, {"headline": "Headline: {text}"}, calibrate="batch")
    assert uncorrected.loc["headline", "ece"] != pytest.approx(batch.loc["headline", "ece"])


def test_evaluate_recomputes_suggestions_and_survives_a_failing_record(task):
    gold = GOLD.copy()
    gold.loc["g00", "text"] = "EXPLODE " + gold.loc["g00", "text"]
    gold = jl.set_suggestions(gold, task, np.full((12, 4), 0.25), model="stale")  # old suggestions are ignored
    gold["label"] = GOLD["label"]
    KeywordLLM.calls = 0
    table = jl.evaluate(gold, task, KeywordLLM(), {"headline": "Headline: {text}"})
    assert KeywordLLM.calls >= 12
    row = table.loc["headline"]
    assert row["failed"] == 1 and row["n"] == 12
    assert row["accuracy"] == pytest.approx(11 / 12)
    assert row["model"] == KeywordLLM().id


def test_evaluate_multi_label(task):
    multi = jl.Task(LABELS, kind="multi")
    gold = GOLD.assign(label=[[v] for v in GOLD["label"]])
    gold.loc["g11", "label"] = ["Sci/Tech", "World"]
    table = jl.evaluate(gold, multi, KeywordLLM(), {"default": multi})
    assert table.loc["default", "n"] == 12
    assert 0 <= table.loc["default", "accuracy"] <= 1


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (lambda g: g.drop(columns="label"), KeyError, "no column 'label'"),
        (lambda g: g.assign(label=g["label"].where(g.index != "g03")), ValueError, "1 gold record.*'g03'"),
        (lambda g: g.assign(label=g["label"].replace("Sports", "Sport")), ValueError, r"\['Sport'\]"),
        (lambda g: g.iloc[:0], ValueError, "empty"),
        (lambda g: g.set_axis(["same"] * 12), ValueError, "duplicate"),
    ],
)
def test_bad_gold_gives_clear_errors(task, change, error, match):
    with pytest.raises(error, match=match):
        jl.evaluate(change(GOLD.copy()), task, KeywordLLM())


@pytest.mark.parametrize(
    ("prompts", "error", "match"),
    [
        ({}, ValueError, "prompts is empty"),
        (["Headline: {text}"], TypeError, "dict"),
        ({"v1": "no field"}, ValueError, "Prompt 'v1'.*exactly once"),
        ({"v1": 3}, TypeError, "Prompt 'v1' must be"),
        ({"v1": jl.Task(["World", "Sports"])}, ValueError, "Prompt 'v1' is for labels"),
        ({"v1": jl.Task(list(reversed(LABELS)))}, ValueError, "same order"),
    ],
)
def test_bad_prompts_give_clear_errors(task, prompts, error, match):
    with pytest.raises(error, match=match):
        jl.evaluate(GOLD, task, KeywordLLM(), prompts)


def test_span_tasks_are_refused_with_the_alternative():
    with pytest.raises(ValueError, match="agreement"):
        jl.evaluate(GOLD, jl.Task(LABELS, kind="spans"), KeywordLLM())


# -- the chart --------------------------------------------------------------------------------


def test_compare_prompts_chart_holds_the_table_numbers(task):
    table = jl.evaluate(GOLD, task, KeywordLLM(), {"plain": task, "headline": "Headline: {text}"})
    chart = jl.compare_prompts(table)
    spec = chart.to_dict()  # validates against the Vega-Lite schema
    datasets = spec["datasets"].values()
    bars = next(rows for rows in datasets if rows and "metric" in rows[0])
    got = {(r["prompt"], r["metric"]): r["value"] for r in bars}
    assert got[("headline", "accuracy")] == table.loc["headline", "accuracy"]
    assert got[("plain", "macro-F1")] == pytest.approx(table.loc["plain", "macro_f1"])
    heat = next(rows for rows in datasets if rows and "f1" in rows[0])
    assert {r["label"] for r in heat} == set(LABELS)
    assert len(json.dumps(spec)) < 50_000


def test_compare_prompts_bad_and_empty_input():
    with pytest.raises(ValueError, match="lacks column"):
        jl.compare_prompts(pd.DataFrame({"accuracy": [0.5]}))
    with pytest.raises(TypeError, match=r"table jl\.evaluate returns"):
        jl.compare_prompts([1, 2])
    empty = jl.compare_prompts(pd.DataFrame(columns=["accuracy", "macro_f1", "coverage", "ece"]))
    assert isinstance(empty, alt.Chart)
    assert "No prompts evaluated" in json.dumps(empty.to_dict())


# -- the command ------------------------------------------------------------------------------


def _args(*argv: str) -> argparse.Namespace:
    return add_evaluate_arguments(argparse.ArgumentParser()).parse_args(list(argv))


def test_command_refuses_a_missing_file_and_a_bad_prompt_option(tmp_path):
    with pytest.raises(SystemExit, match="no input file"):
        evaluate_command(_args(str(tmp_path / "nope.csv"), "--labels", "a", "b"))
    GOLD.to_csv(tmp_path / "gold.csv")
    with pytest.raises(SystemExit, match="NAME=FILE"):
        evaluate_command(_args(str(tmp_path / "gold.csv"), "--labels", *LABELS, "--prompt", "v1"))


def test_command_scores_prompt_files_and_writes_the_table(tmp_path, monkeypatch, capsys, task):
    # the command loads its model by spec: give it the fake (jl.llm is the function, so patch the module)
    monkeypatch.setattr(sys.modules["jlabel.llm"], "llm", lambda spec=None: KeywordLLM())
    GOLD.to_csv(tmp_path / "gold.csv", index_label="key")
    (tmp_path / "headline.txt").write_text("Headline: {text}", encoding="utf-8")
    out = tmp_path / "table.csv"
    argv = [str(tmp_path / "gold.csv"), "--labels", *LABELS, "--id", "key", "--calibrate", "none"]
    argv += ["--instructions", task.instructions]
    argv += ["--prompt", f"headline={tmp_path / 'headline.txt'}", "--out", str(out)]
    assert evaluate_command(_args(*argv)) == 0
    written = pd.read_csv(out, index_col="prompt")
    direct = jl.evaluate(GOLD, task, KeywordLLM(), {"headline": "Headline: {text}"}, calibrate=None)
    assert list(written.index) == ["headline"]
    assert written.loc["headline", "accuracy"] == direct.loc["headline", "accuracy"] == 1.0
    assert written.loc["headline", "prompt_hash"] == direct.loc["headline", "prompt_hash"]
    printed = capsys.readouterr().out
    assert "headline" in printed and f"wrote {out}" in printed
    with pytest.raises(SystemExit, match="--id 'nope'"):
        evaluate_command(_args(str(tmp_path / "gold.csv"), "--labels", *LABELS, "--id", "nope"))


def test_command_reads_an_empty_multi_label_cell_as_no_label_applies(tmp_path, monkeypatch, capsys):
    class YesByKeyword(KeywordLLM):  # P(yes) per label: 0.9 when one of its keywords is in the text
        def score_one(self, prompt, text):
            return np.array(
                [0.9 if any(w in text for w in KEYWORDS[label]) else 0.1 for label in prompt.task.labels]
            ), None

    monkeypatch.setattr(sys.modules["jlabel.llm"], "llm", lambda spec=None: YesByKeyword())
    gold = pd.DataFrame(
        {"text": ["bank shares scored", "tennis", "weather"], "label": ["Sports|Business", "Sports", ""]}
    )
    gold.to_csv(tmp_path / "gold.csv", index=False)
    out = tmp_path / "table.csv"
    argv = [str(tmp_path / "gold.csv"), "--labels", "Sports", "Business", "--kind", "multi", "--out", str(out)]
    assert evaluate_command(_args(*argv, "--calibrate", "none")) == 0
    written = pd.read_csv(out, index_col="prompt")
    # the record where no label applies is scored, and the model is right to suggest none (was: "have no label")
    assert written["n"].iloc[0] == 3 and written["failed"].iloc[0] == 0 and written["accuracy"].iloc[0] == 1.0


# -- the real embedded model ------------------------------------------------------------------


@pytest.mark.model
def test_same_call_twice_gives_the_same_table_on_the_embedded_model(task):
    llm = load_model()  # the embedded model (jl.llm())
    described = jl.Task(
        {
            "World": "politics, governments, wars, diplomacy",
            "Sports": "games, athletes, competitions",
            "Business": "companies, markets, the economy",
            "Sci/Tech": "science, technology, computers, space",
        },
        instructions="Classify the news article by topic.",
    )
    prompts = {"names": task, "described": described}
    first = jl.evaluate(GOLD, task, llm, prompts, seed=0)
    second = jl.evaluate(GOLD, task, llm, prompts, seed=0)
    varying = ["records_per_s", "seconds"]
    pd.testing.assert_frame_equal(first.drop(columns=varying), second.drop(columns=varying))
    assert (first["records_per_s"] > 0).all()
    assert first["model"].str.contains("sha256:").all()
    assert first.loc["names", "prompt_hash"] != first.loc["described", "prompt_hash"]
    assert ((first["accuracy"] >= 0) & (first["accuracy"] <= 1)).all()


@pytest.mark.parametrize("seed", range(4))
def test_coverage_agrees_with_the_auto_accept_threshold_of_quality(seed):
    rng = np.random.default_rng(seed)
    task = jl.Task(["a", "b", "c"])
    truth = rng.integers(0, 3, 60)
    matrix = np.round(rng.dirichlet([1, 1, 1], 60) + 1.5 * np.eye(3)[truth] * (rng.random((60, 1)) < 0.7), 2)
    matrix = matrix / matrix.sum(axis=1, keepdims=True)
    labeled = jl.set_suggestions(pd.DataFrame({"label": np.array(task.labels)[truth]}), task, matrix, model="m")
    expected = jl.auto_accept_threshold(labeled, task, target_accuracy=0.9, n_boot=0)
    coverage, threshold = coverage_at(matrix.max(axis=1), matrix.argmax(axis=1) == truth, 0.9)
    assert threshold == pytest.approx(expected["threshold"], nan_ok=True)
    assert coverage == pytest.approx(expected["coverage"])
