import io

import numpy as np
import pandas as pd
import pytest

import jlabel as jl
from jlabel.frame import PROBS_DTYPE, ensure_columns, probs_column, record_keys, texts


def test_record_keys_from_index_or_id_column():
    df = pd.DataFrame({"id": ["a", "b"], "text": ["x", "y"]}, index=[0, 0])
    assert record_keys(df, id="id").tolist() == ["a", "b"]
    with pytest.raises(ValueError, match=r"1 duplicate key\(s\): 0"):
        record_keys(df)


def test_duplicate_keys_are_named():
    df = pd.DataFrame({"text": list("abcde")}, index=["k1", "k2", "k1", "k3", "k3"])
    with pytest.raises(ValueError, match=r"2 duplicate key\(s\): 'k1', 'k3'"):
        record_keys(df)


def test_keys_that_read_the_same_as_text_are_refused():
    df = pd.concat([pd.DataFrame({"text": ["a"]}, index=[1]), pd.DataFrame({"text": ["b"]}, index=["1"])])
    with pytest.raises(ValueError, match=r"differ in type but read the same as text: '1'"):
        record_keys(df)  # the journal would merge the two records into one


def test_label_lists_read_back_as_text_become_lists_again():
    task = jl.Task(["a", "b", "c"], kind="multi")
    written = pd.Series(['["a", "b"]', "['c']", None], dtype="string")  # JSON, an older jlabel's repr, missing
    frame = ensure_columns(pd.DataFrame({"text": ["x", "y", "z"], "label": written}), task)
    assert frame["label"].tolist() == [["a", "b"], ["c"], None] and frame["label"].dtype == object
    with pytest.raises(ValueError, match="holds 'Fraud', and a multi-label or span task keeps lists"):
        ensure_columns(pd.DataFrame({"text": ["x"], "label": ["Fraud"]}), task)


def test_set_suggestions_refuses_infinite_scores_and_clears_an_old_error():
    task = jl.Task(["ham", "spam"])
    frame = pd.DataFrame({"text": ["x", "y"], "llm_error": ["TimeoutError: model did not answer", None]})
    with pytest.raises(ValueError, match="infinite"):
        jl.set_suggestions(frame, task, [[1.0, np.inf], [0.5, 0.5]], model="m")  # was: 'ham' at confidence 0
    out = jl.set_suggestions(frame, task, [[0.1, 0.9], [np.nan, np.nan]], model="m")
    assert pd.isna(out["llm_error"].iloc[0])  # the new suggestion's record has no old error


def test_probs_reads_an_object_column_with_pd_na():
    task = jl.Task(["a", "b", "c"])
    frame = pd.DataFrame({"text": ["x", "y"], "llm_probs": pd.Series([[0.1, 0.2, 0.7], pd.NA], dtype=object)})
    P = jl.probs(frame, task)  # was: ValueError blaming the valid first row
    np.testing.assert_allclose(P[0], [0.1, 0.2, 0.7])
    assert np.isnan(P[1]).all()


def test_missing_keys_and_bad_id_column():
    with pytest.raises(ValueError, match="missing keys"):
        record_keys(pd.DataFrame({"id": ["a", None]}), id="id")
    with pytest.raises(KeyError, match="id='key' is not a column"):
        record_keys(pd.DataFrame({"id": ["a"]}), id="key")


def test_texts_handle_missing_and_non_strings(task):
    big = "é" * 1_000_000
    df = pd.DataFrame({"text": ["plain", None, np.nan, 42, big, "<script>alert(1)</script>", "日本語 🙂"]})
    out = texts(df, task)
    assert out.tolist() == ["plain", "", "", "42", big, "<script>alert(1)</script>", "日本語 🙂"]
    assert out.map(type).eq(str).all()


def test_texts_from_string_dtype_and_numbers(task):
    assert texts(pd.DataFrame({"text": pd.array(["a", pd.NA], dtype="string")}), task).tolist() == ["a", ""]
    assert texts(pd.DataFrame({"text": [1.5, np.nan]}), task).tolist() == ["1.5", ""]


def test_missing_text_column_is_a_clear_error(task):
    with pytest.raises(KeyError, match=r"text column 'text' names column\(s\) \['text'\]"):
        texts(pd.DataFrame({"body": ["x"]}), task)


def test_ensure_columns_dtypes(task):
    df = ensure_columns(pd.DataFrame({"text": ["a", "b"]}), task)
    assert str(df["label"].dtype) == "string"
    assert str(df["llm_confidence"].dtype) == "float64"
    assert str(df["labeled_at"].dtype) == "datetime64[ns, UTC]"
    assert isinstance(df["llm_probs"].dtype, pd.ArrowDtype)
    assert df["label"].isna().all()
    multi = ensure_columns(pd.DataFrame({"text": ["a"]}), jl.Task(["x", "y"], kind="multi"))
    assert multi["label"].dtype == object


def test_ensure_columns_keeps_existing_labels(task):
    df = pd.DataFrame({"text": ["a"], "label": ["Sports"]})
    ensure_columns(df, task)
    assert df["label"].tolist() == ["Sports"]


def test_set_suggestions_and_probs_round_trip(task):
    df = pd.DataFrame({"text": ["a", "b", "c"]}, index=["x", "y", "z"])
    matrix = np.array([[1, 1, 2, 0], [np.nan] * 4, [0.1, 0.7, 0.1, 0.1]])
    out = jl.set_suggestions(df, task, matrix, model="my-classifier")
    assert "llm_label" not in df.columns  # input not mutated
    assert out["llm_label"].tolist()[0] == "Business"
    assert pd.isna(out["llm_label"].iloc[1])
    assert out["llm_confidence"].iloc[0] == pytest.approx(0.5)
    back = jl.probs(out, task)
    np.testing.assert_allclose(back[0], [0.25, 0.25, 0.5, 0.0])
    assert np.isnan(back[1]).all()
    np.testing.assert_allclose(back[2], matrix[2])
    assert out["llm_model"].tolist()[0] == "my-classifier" and pd.isna(out["llm_model"].iloc[1])


def test_set_suggestions_multi_label():
    task = jl.Task(["a", "b", "c"], kind="multi")
    out = jl.set_suggestions(pd.DataFrame({"text": ["t"]}), task, np.array([[0.9, 0.2, 0.6]]), model="m")
    assert out["llm_label"].iloc[0] == ["a", "c"]
    assert out["llm_confidence"].iloc[0] == pytest.approx(0.9 * 0.8 * 0.6)


def test_set_suggestions_bad_shapes(task):
    df = pd.DataFrame({"text": ["a"]})
    with pytest.raises(ValueError, match=r"shape \(1, 3\), expected \(1, 4\)"):
        jl.set_suggestions(df, task, np.ones((1, 3)), model="m")
    with pytest.raises(ValueError, match="non-negative"):
        jl.set_suggestions(df, task, -np.ones((1, 4)), model="m")


def test_probs_refuses_another_label_set(task):
    df = pd.DataFrame({"text": ["a"]})
    df["llm_probs"] = probs_column(np.array([[0.5, 0.5]]), df.index)
    with pytest.raises(ValueError, match=r"holds 2 probabilities .* task has 4 labels"):
        jl.probs(df, task)


def test_probs_from_object_column_of_lists(task):
    df = pd.DataFrame({"llm_probs": [[0.1, 0.2, 0.3, 0.4], None]})
    out = jl.probs(df, task)
    np.testing.assert_allclose(out[0], [0.1, 0.2, 0.3, 0.4])
    assert np.isnan(out[1]).all()


def test_probs_column_is_vectorised_for_a_million_rows(task):
    matrix = np.random.default_rng(0).dirichlet(np.ones(4), size=1_000_000)
    df = pd.DataFrame({"llm_probs": probs_column(matrix, pd.RangeIndex(1_000_000))})
    np.testing.assert_array_equal(jl.probs(df, task), matrix)


@pytest.mark.parametrize("dtype", [object, "string", "str"])
def test_probs_from_text_as_a_csv_file_holds_them(tmp_path, dtype):
    task = jl.Task(["World", "Sports"])
    out = jl.set_suggestions(
        pd.DataFrame({"text": ["Goal!", "War", "?"]}), task, [[0.2, 0.8], [0.9, 0.1], [np.nan] * 2], model="m"
    )
    from jlabel.cli import read_table, write_table

    back = read_table(write_table(out, tmp_path / "suggested.csv"))  # llm_probs as "[0.2, 0.8]" text
    back["llm_probs"] = back["llm_probs"].astype(dtype)
    np.testing.assert_allclose(jl.probs(back, task), [[0.2, 0.8], [0.9, 0.1], [np.nan] * 2])
    back["label"] = ["Sports", "World", None]
    exported = jl.export(back, tmp_path / "ls.json", task=task)
    np.testing.assert_allclose(jl.probs(jl.read(exported, task=task), task)[:2], [[0.2, 0.8], [0.9, 0.1]])


@pytest.mark.parametrize("value", ["oops", "[0.2, x]", "{'a': 1}"])
def test_probs_from_text_that_is_not_a_list_is_a_clear_error(value):
    df = pd.DataFrame({"llm_probs": pd.Series(["[0.2, 0.8]", value], dtype=object)})
    with pytest.raises(ValueError, match=r"'llm_probs' holds text that is not a list of numbers, such as"):
        jl.probs(df, jl.Task(["World", "Sports"]))


def test_columns_a_file_reader_left_in_other_dtypes_are_given_the_contract_ones():
    task = jl.Task(["World", "Sports"])
    saved = "key,text,label,labeled_at,llm_confidence,llm_error,llm_probs\nr0,a,,,,,\nr1,b,Sports,2026-01-01T09:00:00Z,0.5,,\n"
    df = pd.read_csv(io.StringIO(saved), index_col=0)
    assert df["llm_error"].dtype == "float64"  # an empty column reads as floats
    ensure_columns(df, task)
    # a decision can now be written into every column (a float label column refused 'World')
    df.iloc[0, df.columns.get_loc("label")] = "World"
    df.iloc[0, df.columns.get_loc("llm_error")] = "the model failed"
    df.iloc[0, df.columns.get_loc("labeled_at")] = pd.Timestamp("2026-01-02", tz="UTC")
    assert df["labeled_at"].iloc[1] == pd.Timestamp("2026-01-01T09:00", tz="UTC")
    assert df["label"].tolist() == ["World", "Sports"]
    stars = ensure_columns(pd.DataFrame({"label": [5.0, np.nan, 3.0]}), jl.Task(["1", "2", "3", "4", "5"]))
    assert stars["label"].tolist()[::2] == ["5", "3"]  # label names that are numbers, as a CSV gives them back
    with pytest.raises(ValueError, match=r"label column holds float64 values such as 2\.5"):
        ensure_columns(pd.DataFrame({"label": [2.5, 4.0]}), task)
    with pytest.raises(ValueError, match=r"label column holds float64 values such as 1\.0"):  # "1" is not "01"
        ensure_columns(pd.DataFrame({"label": [1.0, 2.0]}), jl.Task(["01", "02"]))
    unparsed = ensure_columns(pd.DataFrame({"llm_probs": ["[0.2 0.8]", None]}), jl.Task(["a", "b"]))
    assert unparsed["llm_probs"].iloc[0] == "[0.2 0.8]"  # not lists of numbers: left for probs() to report
    # suggestions stored as text are parsed once, so a list written later does not mix with text
    probs_text = ensure_columns(pd.DataFrame({"llm_probs": ["[0.25, 0.75]", None]}), jl.Task(["a", "b"]))
    assert probs_text["llm_probs"].dtype == PROBS_DTYPE
    np.testing.assert_allclose(jl.probs(probs_text, jl.Task(["a", "b"]))[0], [0.25, 0.75])
    with pytest.raises(ValueError, match="labeled_at column holds"):
        ensure_columns(pd.DataFrame({"labeled_at": [1.5, 2.5]}), task)


def test_a_multi_index_is_refused_with_what_to_do():
    df = pd.DataFrame({"text": list("abcd"), "key": [1, 2, 3, 4]})
    df.index = pd.MultiIndex.from_arrays([[0, 0, 1, 1], [0, 1, 0, 1]])
    with pytest.raises(ValueError, match=r"MultiIndex.*pass id=.*reset_index\(\)"):
        record_keys(df)
    assert record_keys(df, id="key").tolist() == [1, 2, 3, 4]
