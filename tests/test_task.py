import numpy as np
import pandas as pd
import pytest

import jlabel as jl
from jlabel.frame import texts


def test_labels_as_list_or_mapping():
    task = jl.Task({"pos": "Positive tone", "neg": "Negative tone"}, instructions="Sentiment.")
    assert task.labels == ("pos", "neg")
    assert task.descriptions == {"pos": "Positive tone", "neg": "Negative tone"}
    assert jl.Task(["pos", "neg"]).labels == ("pos", "neg")


def test_id_is_stable_and_depends_on_definition():
    a = jl.Task(["x", "y"], instructions="Do it.")
    assert a.id == jl.Task(["x", "y"], instructions="Do it.").id
    assert a.id != jl.Task(["y", "x"], instructions="Do it.").id
    assert a.id != jl.Task(["x", "y"], kind="multi", instructions="Do it.").id
    assert a.id != jl.Task(["x", "y"], instructions="Do it.", text="body").id
    assert jl.Task.from_dict(a.to_dict()) == a


def test_id_never_changes_between_versions():
    # stores remember their task by this id: a change here would lock users out of their stores
    assert jl.Task(["x", "y"], instructions="Do it.").id == "548ccde14695d630"


@pytest.mark.parametrize(
    ("labels", "kind", "error", "match"),
    [
        ([], "single", ValueError, "at least one label"),
        (["a", "a", "b"], "single", ValueError, r"Duplicate labels \['a'\]"),
        (["a", " "], "single", ValueError, "empty or only whitespace"),
        (["a", ""], "single", ValueError, "empty or only whitespace"),
        (["a", 3], "single", TypeError, "Labels must be strings"),
        ("ab", "single", TypeError, "not the string"),
        (["a", "b"], "sorting", ValueError, "Unknown task kind 'sorting'"),
    ],
)
def test_bad_definitions_are_clear_errors(labels, kind, error, match):
    with pytest.raises(error, match=match):
        jl.Task(labels, kind=kind)


def test_template_text():
    task = jl.Task(["a"], text="{title}\n\n{body}")
    assert task.is_template and task.text_columns == ("title", "body")
    df = pd.DataFrame({"title": ["T", None], "body": ["B", 7]})
    assert texts(df, task).tolist() == ["T\n\nB", "\n\n7"]


def test_template_naming_missing_column():
    task = jl.Task(["a"], text="{title}: {body}")
    with pytest.raises(KeyError, match=r"\['body'\]"):
        texts(pd.DataFrame({"title": ["x"]}), task)


def test_malformed_template():
    with pytest.raises(ValueError, match="may only name columns"):
        jl.Task(["a"], text="{title!r}")


def test_check_value_per_kind():
    single = jl.Task(["a", "b"])
    assert single.check_value("a") == "a"
    with pytest.raises(ValueError, match="Unknown label 'c'"):
        single.check_value("c")
    multi = jl.Task(["a", "b", "c"], kind="multi")
    assert multi.check_value(["c", "a", "c"]) == ["a", "c"]
    spans = jl.Task(["PER", "ORG"], kind="spans")
    assert spans.check_value([{"start": 5, "end": 9, "label": "ORG"}, {"start": 0, "end": 3, "label": "PER"}]) == [
        {"start": 0, "end": 3, "label": "PER"},
        {"start": 5, "end": 9, "label": "ORG"},
    ]
    with pytest.raises(ValueError, match="0 <= start < end"):
        spans.check_value([{"start": 4, "end": 2, "label": "PER"}])
    with pytest.raises(TypeError, match="takes a list"):
        multi.check_value("a")


def test_check_value_takes_numpy_values_and_refuses_booleans():
    spans = jl.Task(["PER", "LOC"], kind="spans")
    start = pd.Series(["Ana in Rome"]).str.find("Rome")[0]  # a numpy integer, as pandas gives offsets
    value = spans.check_value([{"start": start, "end": start + 4, "label": "LOC"}])
    assert value == [{"start": 7, "end": 11, "label": "LOC"}] and type(value[0]["start"]) is int
    for bad in (True, np.bool_(True), 1.0):
        with pytest.raises(ValueError, match="integer offsets"):
            spans.check_value([{"start": bad, "end": 3, "label": "PER"}])
    multi = jl.Task(["a", "b", "c"], kind="multi")
    assert multi.check_value(np.array(["c", "a"])) == ["a", "c"]
    assert multi.check_value(np.array([], dtype=object)) == []
    with pytest.raises(TypeError, match="takes a list"):
        multi.check_value(np.array([["a"]]))
