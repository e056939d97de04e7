"""jl.agreement against scikit-learn, statsmodels and krippendorff, plus edge cases."""

from __future__ import annotations

import krippendorff
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

import jlabel as jl
from jlabel.agreement import COLUMNS


def _long(matrix: np.ndarray) -> pd.DataFrame:
    """A (raters, records) float matrix (NaN = missing) as the long table."""
    raters, records = np.nonzero(~np.isnan(matrix))
    return pd.DataFrame(
        {
            "record": records,
            "annotator": np.char.add("r", raters.astype(str)),
            "label": np.char.add("L", matrix[raters, records].astype(int).astype(str)),
        }
    )


def _value(out: pd.DataFrame, metric: str, raters: str = "all", label: str = "all") -> float:
    row = out[(out["metric"] == metric) & (out["raters"] == raters) & (out["label"] == label)]
    assert len(row) == 1, (metric, raters, label)
    return float(row["value"].iloc[0])


ratings = st.integers(2, 4).flatmap(
    lambda raters: st.integers(5, 40).flatmap(
        lambda records: st.tuples(
            st.lists(st.integers(-1, 2), min_size=raters * records, max_size=raters * records),
            st.just((raters, records)),
        )
    )
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ratings)
def test_matches_oracles_on_random_data(data):
    values, shape = data
    matrix = np.array(values, dtype=float).reshape(shape)
    matrix[matrix < 0] = np.nan
    long = _long(matrix)
    raters = sorted(long["annotator"].unique())
    if len(raters) < 2:
        with pytest.raises(ValueError, match="at least two raters"):
            jl.agreement(long)
        return
    out = jl.agreement(long, n_boot=0)
    assert list(out.columns) == COLUMNS
    labels = np.unique(matrix[~np.isnan(matrix)])

    # Krippendorff's alpha, nominal, missing values allowed
    present = np.array([f"r{i}" in raters for i in range(len(matrix))])
    pairable = (~np.isnan(matrix[present])).sum(axis=0) >= 2
    if len(np.unique(matrix[present][:, pairable][~np.isnan(matrix[present][:, pairable])])) > 1:
        expected = krippendorff.alpha(reliability_data=matrix[present], level_of_measurement="nominal")
        assert _value(out, "krippendorff_alpha") == pytest.approx(expected, abs=1e-9)

    # Cohen's kappa per pair, on the records both labeled
    for i, a in enumerate(raters):
        for b in raters[i + 1 :]:
            x, y = matrix[int(a[1:])], matrix[int(b[1:])]
            both = ~np.isnan(x) & ~np.isnan(y)
            got = _value(out, "cohen_kappa", f"{a}|{b}")
            if both.sum() == 0:
                assert np.isnan(got)
                continue
            assert _value(out, "percent", f"{a}|{b}") == pytest.approx((x[both] == y[both]).mean())
            if len(np.unique(np.r_[x[both], y[both]])) == 1:
                assert np.isnan(got)  # every rating the same label: kappa undefined
            else:
                assert got == pytest.approx(cohen_kappa_score(x[both], y[both]), abs=1e-9)

    # Fleiss' kappa on the records every rater labeled
    rows = matrix[present]
    complete = ~np.isnan(rows).any(axis=0)
    got = _value(out, "fleiss_kappa")
    if complete.sum() and len(np.unique(rows[:, complete])) > 1:
        table, _ = aggregate_raters(rows[:, complete].T.astype(int))
        assert got == pytest.approx(fleiss_kappa(table), abs=1e-9)
    else:
        assert np.isnan(got)

    # per label: the label against the rest, as yes/no ratings
    for label in labels if len(labels) > 1 else []:  # one label only: no per-label rows
        name = f"L{int(label)}"
        x, y = matrix[int(raters[0][1:])], matrix[int(raters[1][1:])]
        both = ~np.isnan(x) & ~np.isnan(y)
        got = _value(out, "cohen_kappa", f"{raters[0]}|{raters[1]}", name)
        if both.sum() and len(np.unique(np.r_[x[both] == label, y[both] == label])) > 1:
            assert got == pytest.approx(cohen_kappa_score(x[both] == label, y[both] == label), abs=1e-9)


def test_all_agree_is_one_and_one_label_only_is_undefined():
    long = pd.DataFrame({"record": [1, 1, 2, 2], "annotator": ["a", "b"] * 2, "label": ["x", "x", "y", "y"]})
    out = jl.agreement(long, n_boot=0)
    for metric in ("percent", "cohen_kappa", "fleiss_kappa", "krippendorff_alpha"):
        assert _value(out, metric, "a|b" if metric == "cohen_kappa" else "all") == 1.0
    same = long.assign(label="x")
    out = jl.agreement(same, n_boot=0)
    assert _value(out, "percent") == 1.0
    assert np.isnan(_value(out, "cohen_kappa", "a|b"))
    assert np.isnan(_value(out, "krippendorff_alpha"))


def test_one_rater_all_missing_and_bad_input_are_clear_errors():
    with pytest.raises(ValueError, match=r"at least two raters, got only \['a'\]"):
        jl.agreement(pd.DataFrame({"record": [1, 2], "annotator": "a", "label": ["x", "y"]}))
    with pytest.raises(ValueError, match="every label is missing"):
        jl.agreement(pd.DataFrame({"record": [1, 1], "annotator": ["a", "b"], "label": [None, None]}))
    with pytest.raises(ValueError, match="columns record, annotator, label"):
        jl.agreement(pd.DataFrame({"x": [1]}))
    with pytest.raises(TypeError, match="got list"):
        jl.agreement([1, 2])
    long = pd.DataFrame({"record": [1, 1], "annotator": ["a", "b"], "label": ["x", "y"]})
    with pytest.raises(ValueError, match=r"annotators \['zoe'\] have no ratings"):
        jl.agreement(long, annotators=["a", "zoe"])
    with pytest.raises(ValueError, match="n_boot"):
        jl.agreement(long, n_boot=-1)


def test_rater_with_nothing_in_common_gets_nan_and_n_zero():
    long = pd.DataFrame({"record": [1, 1, 2, 3], "annotator": ["a", "b", "a", "c"], "label": ["x", "y", "x", "x"]})
    out = jl.agreement(long, n_boot=0, per_label=False)
    row = out[(out["metric"] == "cohen_kappa") & (out["raters"] == "b|c")].iloc[0]
    assert row["n"] == 0 and np.isnan(row["value"])
    assert out[(out["metric"] == "cohen_kappa") & (out["raters"] == "a|b")]["n"].iloc[0] == 1


def test_bootstrap_interval_is_seeded_and_brackets_the_value():
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 3, 300)
    matrix = np.stack([np.where(rng.random(300) < 0.8, truth, rng.integers(0, 3, 300)) for _ in range(3)]).astype(float)
    long = _long(matrix)
    first = jl.agreement(long, n_boot=300, seed=1)
    assert first.equals(jl.agreement(long, n_boot=300, seed=1))
    assert not first["ci_low"].equals(jl.agreement(long, n_boot=300, seed=2)["ci_low"])
    main = first[first["label"] == "all"]
    assert (main["ci_low"] <= main["value"]).all() and (main["value"] <= main["ci_high"]).all()
    assert ((main["ci_high"] - main["ci_low"]) > 0).all()
    narrow = jl.agreement(long, n_boot=300, seed=1, ci=0.5)
    assert ((narrow["ci_high"] - narrow["ci_low"]) <= (first["ci_high"] - first["ci_low"]) + 1e-12).all()


def test_frame_with_model_as_rater_and_store_input(tmp_path):
    task = jl.Task(["x", "y"])
    df = pd.DataFrame({"label": ["x", "y", "x", None], "annotator": ["ana"] * 4})
    df = jl.set_suggestions(df, task, np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.5, 0.5]]), model="m")
    out = jl.agreement(df, include_llm=True, n_boot=0)
    assert _value(out, "percent", "ana|model") == pytest.approx(1 / 3)
    assert out[(out["metric"] == "percent") & (out["raters"] == "ana|model")]["n"].iloc[0] == 3
    with pytest.raises(ValueError, match="llm_label"):
        jl.agreement(df.drop(columns=["llm_label"]), include_llm=True)

    store = jl.Store(tmp_path / "labels.db", task=task)
    store.record("1", "label", "x", annotator="ana")
    store.record("1", "label", "y", annotator="ben")
    store.record("2", "label", "y", annotator="ana")
    store.record("2", "label", "x", annotator="ben")
    store.record("2", "undo", None, annotator="ben")
    store.record("2", "label", "y", annotator="ben")
    out = jl.agreement(store, n_boot=0)
    assert _value(out, "percent", "ana|ben") == 0.5  # ben's undone label does not count
    store.close()


def test_the_model_rater_is_its_suggestion_not_what_a_check_said(tmp_path):
    task = jl.Task(["x", "y"])
    with jl.Store(tmp_path / "labels.db", task=task) as store:
        for record in ("1", "2"):
            store.record(record, "suggest", None, suggestion="x", confidence=0.9)
            store.record(record, "label", "x", annotator="ana", suggestion="x")
        store.record("2", "check", None, suggestion="y", confidence=0.6)  # a review's finding, not a suggestion
        out = jl.agreement(store, include_llm=True, n_boot=0)
    assert _value(out, "percent", "ana|model") == 1.0  # was 0.5: the check's label counted as the model's


def test_span_overlap_f1_is_zero_where_one_rater_found_nothing():
    task = jl.Task(["PER"], kind="spans")
    span = [{"start": 0, "end": 4, "label": "PER"}]
    one_sided = pd.DataFrame({"record": [1, 1], "annotator": ["a", "b"], "label": [span, []]})
    out = jl.agreement(one_sided, task=task, n_boot=0).set_index("label")
    assert out.loc["exact", "value"] == 0.0 and out.loc["overlap", "value"] == 0.0  # overlap was NaN
    apart = [{"start": 6, "end": 9, "label": "PER"}]
    disjoint = pd.DataFrame({"record": [1, 1], "annotator": ["a", "b"], "label": [span, apart]})
    assert jl.agreement(disjoint, task=task, n_boot=0).set_index("label").loc["overlap", "value"] == 0.0


def test_span_f1_exact_and_overlap():
    task = jl.Task(["PER", "ORG"], kind="spans")
    long = pd.DataFrame(
        {
            "record": [1, 1, 2, 2],
            "annotator": ["a", "b", "a", "b"],
            "label": [
                [{"start": 0, "end": 4, "label": "PER"}, {"start": 10, "end": 14, "label": "ORG"}],
                [{"start": 0, "end": 4, "label": "PER"}, {"start": 9, "end": 14, "label": "ORG"}],
                [{"start": 0, "end": 3, "label": "ORG"}],
                [],
            ],
        }
    )
    out = jl.agreement(long, task=task, n_boot=50).set_index("label")
    assert set(out["metric"]) == {"span_f1"}
    # exact: 1 match, 3 spans from a and 2 from b
    assert out.loc["exact", "value"] == pytest.approx(2 * 1 / 5)
    # overlap: a's spans matched 2 of 3, b's 2 of 2
    precision, recall = 2 / 3, 1.0
    assert out.loc["overlap", "value"] == pytest.approx(2 * precision * recall / (precision + recall))
    assert out.loc["exact", "n"] == 2


def test_ratings_without_annotator_or_record_key_are_a_clear_error():
    # a and b agree on every record; the extra rating has no annotator
    long = pd.DataFrame(
        {
            "record": [1, 1, 2, 2, 3, 3, 3],
            "annotator": ["a", "b", "a", "b", "a", "b", None],
            "label": ["x", "x", "y", "y", "x", "x", "y"],
        }
    )
    with pytest.raises(ValueError, match=r"of 7 ratings 1 has no annotator: drop those rows .*fillna\('unknown'\)"):
        jl.agreement(long, n_boot=0)
    no_record = pd.DataFrame(
        {"record": [1, 1, 2, 2, None, None], "annotator": ["a", "b"] * 3, "label": ["x", "x", "y", "y", "x", "y"]}
    )
    with pytest.raises(ValueError, match=r"2 have no record key: drop those rows \(table\.dropna"):
        jl.agreement(no_record, n_boot=0)
    # dropped as the message says, the remaining ratings agree fully
    out = jl.agreement(long.dropna(subset=["record", "annotator"]), n_boot=0, per_label=False)
    assert _value(out, "percent", "a|b") == 1.0
    # a row without a label is not a rating: it needs no annotator
    unlabeled = pd.concat([long.dropna(), pd.DataFrame({"record": [4], "annotator": [None], "label": [None]})])
    assert _value(jl.agreement(unlabeled, n_boot=0, per_label=False), "percent", "a|b") == 1.0


def test_annotators_as_one_name_is_not_split_into_letters():
    long = pd.DataFrame({"record": [1, 1, 2, 2], "annotator": ["ana", "bo"] * 2, "label": ["x", "x", "y", "x"]})
    with pytest.raises(ValueError, match=r"at least two raters, got only \['ana'\]"):
        jl.agreement(long, annotators="ana")
    with pytest.raises(ValueError, match=r"annotators \['zed'\] have no ratings"):
        jl.agreement(long, annotators="zed")


def test_multi_label_per_label_is_membership_of_each_label():
    long = pd.DataFrame(
        {
            "record": [1, 1, 2, 2, 3, 3, 4],
            "annotator": ["a", "b", "a", "b", "a", "b", "a"],
            "label": [["x", "y"], ["y", "x"], ["x"], ["x", "y"], [], [], ["y"]],  # b did not rate record 4
        }
    )
    out = jl.agreement(long, n_boot=0)
    assert set(out["label"]) == {"all", "x", "y"}  # labels, not label sets
    # is the label in the rater's set: a and b; record 4 has no rating from b (missing, not "no")
    member = {"x": ([1, 1, 0, 1], [1, 1, 0, np.nan]), "y": ([1, 0, 0, 1], [1, 1, 0, np.nan])}
    for name, (a, b) in member.items():
        a, b = np.array(a, dtype=float), np.array(b, dtype=float)
        both = ~np.isnan(b)
        assert _value(out, "percent", "a|b", name) == pytest.approx((a[both] == b[both]).mean())
        rows = out[(out["raters"] == "a|b") & (out["label"] == name)]
        assert (rows["n"] == 3).all()
        if len(np.unique(np.r_[a[both], b[both]])) > 1:
            assert _value(out, "cohen_kappa", "a|b", name) == pytest.approx(cohen_kappa_score(a[both], b[both]))
            expected = krippendorff.alpha(reliability_data=np.stack([a, b]), level_of_measurement="nominal")
            assert _value(out, "krippendorff_alpha", "all", name) == pytest.approx(expected)
    assert _value(out, "percent", "a|b", "y") == pytest.approx(2 / 3)
    assert _value(out, "cohen_kappa", "a|b", "x") == 1.0


def test_list_labels_held_as_numpy_arrays_as_parquet_gives_them(tmp_path):
    lists = pd.DataFrame(
        {
            "record": [1, 1, 2, 2, 3, 3],
            "annotator": ["a", "b"] * 3,
            "label": [["x", "y"], ["y", "x"], ["x"], ["y"], [], []],
        }
    )
    lists.to_parquet(tmp_path / "multi.parquet")
    arrays = pd.read_parquet(tmp_path / "multi.parquet")
    assert isinstance(arrays["label"].iloc[0], np.ndarray)
    pd.testing.assert_frame_equal(jl.agreement(arrays, n_boot=20), jl.agreement(lists, n_boot=20))

    span = {"start": 0, "end": 3, "label": "PER"}
    spans = pd.DataFrame(
        {"record": [1, 1], "annotator": ["a", "b"], "label": [[span], [span, span | {"start": 5, "end": 8}]]}
    )
    spans.to_parquet(tmp_path / "spans.parquet")
    back = pd.read_parquet(tmp_path / "spans.parquet")
    assert isinstance(back["label"].iloc[0], np.ndarray)
    out = jl.agreement(back, n_boot=0).set_index("label")  # found to be spans without a task
    assert out.loc["exact", "metric"] == "span_f1"
    assert out.loc["exact", "value"] == pytest.approx(2 * 1 / 3)


def test_span_f1_with_integer_raters_and_a_repeated_span():
    def span(start, end):
        return {"start": start, "end": end, "label": "PER"}

    labels = [[span(0, 3)], [span(0, 3)], [span(4, 6)], []]
    numbers = jl.agreement(pd.DataFrame({"record": [1, 1, 2, 2], "annotator": [7, 8, 7, 8], "label": labels}), n_boot=0)
    texts = jl.agreement(pd.DataFrame({"record": [1, 1, 2, 2], "annotator": ["7", "8"] * 2, "label": labels}), n_boot=0)
    pd.testing.assert_frame_equal(numbers, texts)
    exact = numbers.set_index("label").loc["exact"]
    assert exact["raters"] == "7|8" and exact["n"] == 2
    assert exact["value"] == pytest.approx(2 * 1 / 3)  # one match; a has 2 spans, b has 1

    # a rater who gave the same span twice gave it once: exact F1 is 1, not 4/3
    repeated = pd.DataFrame(
        {"record": [1, 1], "annotator": ["a", "b"], "label": [[span(0, 3), span(0, 3)], [span(0, 3)]]}
    )
    out = jl.agreement(repeated, n_boot=0).set_index("label")["value"]
    assert out["exact"] == 1.0 and out["overlap"] == 1.0


def test_a_frame_after_assign_warns_that_agreement_needs_the_store():
    # jl.assign gave r0 to two people, but a frame keeps one label per record: nothing to compare
    df = pd.DataFrame({"label": ["a", "b", "a"], "annotator": ["ana", "bo", "bo"]}, index=["r0", "r1", "r2"])
    with pytest.warns(UserWarning, match=r"pass the store \(jl.agreement\(store\)\)"):
        out = jl.agreement(df, n_boot=0)
    assert out["n"].fillna(0).eq(0).all()  # was: NaN everywhere, without a word
