import unicodedata

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
    task = jl.Task(["a", "b"], text="{title}\n\n{body}")
    assert task.is_template and task.text_columns == ("title", "body")
    df = pd.DataFrame({"title": ["T", None], "body": ["B", 7]})
    assert texts(df, task).tolist() == ["T\n\nB", "\n\n7"]


def test_template_naming_missing_column():
    task = jl.Task(["a", "b"], text="{title}: {body}")
    with pytest.raises(KeyError, match=r"\['body'\]"):
        texts(pd.DataFrame({"title": ["x"]}), task)


def test_malformed_template():
    with pytest.raises(ValueError, match="may only name columns"):
        jl.Task(["a", "b"], text="{title!r}")


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


@pytest.mark.parametrize(
    "labels", [{"World", "Sports"}, frozenset({"World", "Sports"}), {"World": 1, "Sports": 2}.keys()]
)
def test_unordered_labels_are_refused(labels):
    # a set's order depends on the hash seed: the task id would change from one kernel to the next
    with pytest.raises(TypeError, match=r"sorted\(labels\)"):
        jl.Task(labels)


def test_template_columns_are_the_fields_str_format_fills():
    task = jl.Task(["a", "b"], text="{title} {{n/a}} {body}")
    assert task.is_template and task.text_columns == ("title", "body")
    df = pd.DataFrame({"title": ["Hello"], "body": ["World"]})
    assert texts(df, task).tolist() == ["{title} {{n/a}} {body}".format(title="Hello", body="World")]
    assert jl.Task(["a", "b"], text="{title}{title}").text_columns == ("title",)
    plain = jl.Task(["a", "b"], text="body")
    assert not plain.is_template and plain.text_columns == ("body",)


@pytest.mark.parametrize("template", ["{title. {body", "{title} }", "title}", "{{title}}", "{}"])
def test_malformed_or_columnless_template_is_a_clear_error(template):
    with pytest.raises(ValueError, match="literal brace") as error:
        jl.Task(["a", "b"], text=template)
    assert repr(template) in str(error.value) and "{{" in str(error.value)


@pytest.mark.parametrize("labels", [["Sports", "Sports "], ["Business", "\tBusiness"], {" Sports": "games"}])
def test_labels_with_surrounding_whitespace_are_refused(labels):
    with pytest.raises(ValueError, match=r"leading or trailing whitespace.*strip\(\)"):
        jl.Task(labels)


@pytest.mark.parametrize(
    "labels", [["Sports", "sports"], [unicodedata.normalize("NFC", "Café"), unicodedata.normalize("NFD", "Café")]]
)
def test_labels_that_look_the_same_are_refused(labels):
    with pytest.raises(ValueError, match="look the same") as error:
        jl.Task([*labels, "World"])
    assert repr(labels[0]) in str(error.value) and repr(labels[1]) in str(error.value)


def test_task_is_hashable_and_hash_agrees_with_equality():
    a = jl.Task({"x": "an x", "y": ""}, instructions="Do it.")
    b = jl.Task.from_dict(a.to_dict())
    assert a == b and hash(a) == hash(b) and {a: 1}[b] == 1
    assert len({a, b, jl.Task(["x", "y"])}) == 2


def test_single_label_task_needs_two_labels():
    with pytest.raises(ValueError, match=r"at least two labels.*kind='multi'"):
        jl.Task(["toxic"])
    assert jl.Task(["toxic"], kind="multi").labels == ("toxic",)
    assert jl.Task(["PER"], kind="spans").labels == ("PER",)


def test_numpy_label_names_become_str():
    task = jl.Task(np.unique(["b", "a", "b"]))
    assert task.labels == ("a", "b") and all(type(label) is str for label in task.labels)
    described = jl.Task(dict(zip(np.array(["a", "b"]), ["first", "second"])))
    assert all(type(key) is str for key in described.descriptions)
    assert all(type(label) is str for label in described.labels)


@pytest.mark.parametrize(
    ("saved", "earlier_id"),  # the ids jlabel at c08e1a1 gave these tasks
    [
        (
            {"labels": ["toxic"], "descriptions": {}, "kind": "single", "instructions": "", "text": "text"},
            "d5f9ade3514f4f37",
        ),
        (
            {"labels": ["Sports ", "sports"], "descriptions": {}, "kind": "single", "instructions": "", "text": "text"},
            "a3fbdd1dfa62742a",
        ),
        (
            {"labels": ["a", "b"], "descriptions": {}, "kind": "single", "instructions": "", "text": "{{x}} {body}"},
            "57f1165cc4071796",
        ),
    ],
)
def test_a_store_an_earlier_jlabel_made_still_opens(saved, earlier_id, tmp_path):
    import json
    import sqlite3

    path = tmp_path / "old.db"
    jl.Store(path, task=jl.Task(["a", "b"])).close()
    with sqlite3.connect(path) as conn:  # the task row as a jlabel without today's checks wrote it
        conn.execute("UPDATE jlabel_meta SET value = ? WHERE key = 'task'", (json.dumps(saved),))
    with jl.Store(path) as store:  # was: ValueError from today's checks, the store locked
        assert store.task.to_dict() == saved
    assert store.task.id == earlier_id  # its events are found by this id
