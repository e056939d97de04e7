"""Exports and imports: lossless round trips, Label Studio's documented format, files other tools wrote."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jlabel as jl
from jlabel.frame import STRING_DTYPE, ensure_columns

LABELS = ["World", "Sports", "Business"]
FORMATS = {"jsonl": ".jsonl", "labelstudio": ".json", "prodigy": ".jsonl", "parquet": ".parquet"}
# the columns each format carries, on the records it carries (labeled only, or all)
CARRIES = {
    "jsonl": (["text", "label"], "labeled"),
    "prodigy": (["text", "label", "annotator", "label_source", "labeled_at"], "labeled"),
    "labelstudio": (
        [
            "text",
            "n",
            "label",
            "annotator",
            "label_source",
            "labeled_at",
            "llm_label",
            "llm_confidence",
            "llm_model",
            "llm_prompt",
            "llm_probs",
        ],
        "all",
    ),
    "parquet": (None, "all"),
}


def labeled_frame(kind: str) -> tuple[pd.DataFrame, jl.Task]:
    task = jl.Task(LABELS, kind=kind)
    df = pd.DataFrame(
        {"text": ["Goal in the final", "Rates rise «again»", "War ends", "Quiet day"], "n": [1, 2, 3, 4]},
        index=["a", "b", "c", "d"],
    )
    if kind == "spans":
        df = ensure_columns(df, task)
        df["llm_label"] = pd.Series([[{"start": 0, "end": 4, "label": "Sports"}], [], None, None], index=df.index)
        df["llm_confidence"] = [0.7, 0.4, np.nan, np.nan]
        df["llm_model"] = pd.array(["smol@sha256:ab", "smol@sha256:ab", None, None], dtype=STRING_DTYPE)
        labels = [
            [{"start": 0, "end": 4, "label": "Sports"}, {"start": 12, "end": 17, "label": "World"}],
            [],
            [{"start": 0, "end": 3, "label": "World"}],
            None,
        ]
    else:
        matrix = np.array([[0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.7, 0.2, 0.1], [np.nan] * 3])
        df = jl.set_suggestions(df, task, matrix, model="smol@sha256:ab", prompt="p-1f3a")
        labels = (
            ["Sports", "Business", "World", None] if kind == "single" else [["Sports"], ["World", "Business"], [], None]
        )
    df["label"] = pd.array(labels, dtype=STRING_DTYPE) if kind == "single" else pd.Series(labels, index=df.index)
    df.loc[["a", "b", "c"], "annotator"] = ["ana", "bob", "ana"]
    df.loc[["a", "b", "c"], "label_source"] = ["human", "llm_edited", "llm_accepted"]
    df.loc[["a", "b", "c"], "labeled_at"] = pd.Timestamp("2026-01-02 03:04:05.123456789", tz="UTC")
    return df, task


def assert_same(back: pd.DataFrame, df: pd.DataFrame, fmt: str) -> None:
    columns, rows = CARRIES[fmt]
    expected = df if rows == "all" else df[df["label"].notna()]
    if columns is None:
        pd.testing.assert_frame_equal(back, expected)
        return
    assert back.index.tolist() == expected.index.tolist()
    for column in columns:
        got, want = back[column], expected[column]
        if column == "llm_probs":
            np.testing.assert_array_equal(
                jl.probs(back, jl.Task(LABELS)) if got.notna().any() else got.isna(),
                jl.probs(expected, jl.Task(LABELS)) if want.notna().any() else want.isna(),
            )
            continue
        assert [None if v is pd.NA or v is None or v is pd.NaT or v != v else v for v in got.tolist()] == [
            None if v is pd.NA or v is None or v is pd.NaT or v != v else v for v in want.tolist()
        ], column


@pytest.mark.parametrize("kind", ["single", "multi", "spans"])
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_round_trip_is_lossless(tmp_path, kind, fmt):
    df, task = labeled_frame(kind)
    path = jl.export(df, tmp_path / f"out{FORMATS[fmt]}", format=fmt, task=task)
    back = jl.read(path, format=fmt, task=task)
    assert_same(back, df, fmt)
    if fmt in ("labelstudio", "parquet"):
        assert len(back) == len(df)


@pytest.mark.parametrize("fmt", ["jsonl", "labelstudio", "prodigy"])
def test_round_trip_infers_the_task_from_the_file(tmp_path, fmt):
    df, task = labeled_frame("multi")
    back = jl.read(jl.export(df, tmp_path / f"out{FORMATS[fmt]}", format=fmt, task=task), format=fmt)
    assert jl.Task.from_dict(back.attrs["jlabel_task"]).kind == "multi"
    assert back["label"].dropna().tolist() == df["label"].dropna().tolist()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    texts=st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=8),
    data=st.data(),
)
def test_round_trip_property_single(tmp_path, texts, data):
    labels = data.draw(st.lists(st.sampled_from([*LABELS, None]), min_size=len(texts), max_size=len(texts)))
    if all(label is None for label in labels):
        labels[0] = "World"
    df = pd.DataFrame({"text": texts, "label": pd.array(labels, dtype=STRING_DTYPE)})
    task = jl.Task(LABELS)
    for fmt in ("jsonl", "labelstudio", "prodigy"):
        back = jl.read(jl.export(df, tmp_path / f"p{FORMATS[fmt]}", format=fmt, task=task), format=fmt, task=task)
        kept = df if fmt == "labelstudio" else df[df["label"].notna()]
        assert back["text"].tolist() == kept["text"].tolist()
        assert back["label"].tolist() == kept["label"].tolist()
        assert back.index.tolist() == kept.index.tolist()


@pytest.mark.parametrize("kind", ["single", "multi", "spans"])
def test_label_studio_json_follows_the_documented_task_format(tmp_path, kind):
    df, task = labeled_frame(kind)
    tasks = json.loads(jl.export(df, tmp_path / "ls.json", task=task).read_text())
    assert isinstance(tasks, list) and len(tasks) == len(df)
    result_type = "labels" if kind == "spans" else "choices"
    for entry, (key, row) in zip(tasks, df.iterrows()):
        assert entry["data"]["text"] == row["text"]
        assert entry["meta"]["jlabel_key"] == key
        for block in ("annotations", "predictions"):
            for item in entry[block]:
                assert isinstance(item["result"], list)
                for result in item["result"]:
                    assert result["type"] == result_type
                    assert result["from_name"] == "label" and result["to_name"] == "text"
                    value = result["value"]
                    if kind == "spans":
                        assert set(value) == {"start", "end", "text", "labels"}
                        assert value["text"] == row["text"][value["start"] : value["end"]]
                        assert value["labels"][0] in LABELS
                    else:
                        assert set(value) == {"choices"} and set(value["choices"]) <= set(LABELS)
        assert len(entry["annotations"]) == (0 if row["label"] is None or row["label"] is pd.NA else 1)
        for prediction in entry["predictions"]:
            assert prediction["model_version"] == "smol@sha256:ab"
            assert 0 <= prediction["score"] <= 1


LABEL_STUDIO_EXPORT = [
    {
        "id": 11,
        "annotations": [
            {
                "id": 5,
                "completed_by": 1,
                "result": [
                    {
                        "value": {"choices": ["Sports"]},
                        "id": "Xk3_pQ",
                        "from_name": "sentiment",
                        "to_name": "text",
                        "type": "choices",
                        "origin": "manual",
                    }
                ],
                "was_cancelled": False,
                "ground_truth": False,
                "created_at": "2024-05-01T10:00:00.000000Z",
                "updated_at": "2024-05-01T10:00:00.000000Z",
                "lead_time": 3.2,
                "prediction": {},
                "result_count": 0,
                "task": 11,
                "project": 2,
            },
            {
                "id": 6,
                "completed_by": {"id": 2, "email": "bob@example.org"},
                "result": [
                    {"value": {"choices": ["World"]}, "from_name": "sentiment", "to_name": "text", "type": "choices"}
                ],
                "was_cancelled": False,
                "created_at": "2024-05-02T10:00:00.000000Z",
            },
        ],
        "drafts": [],
        "predictions": [
            {
                "id": 3,
                "model_version": "clf-v2",
                "score": 0.61,
                "result": [
                    {"value": {"choices": ["Sports"]}, "from_name": "sentiment", "to_name": "text", "type": "choices"}
                ],
            }
        ],
        "data": {"text": "The striker scored twice.", "source": "wire"},
        "meta": {},
        "created_at": "2024-05-01T09:00:00.000000Z",
        "inner_id": 1,
        "total_annotations": 2,
        "cancelled_annotations": 0,
        "total_predictions": 1,
        "project": 2,
    },
    {
        "id": 12,
        "annotations": [
            {
                "id": 7,
                "completed_by": 1,
                "result": [
                    {"value": {"choices": ["Business"]}, "from_name": "s", "to_name": "text", "type": "choices"}
                ],
                "was_cancelled": True,
                "created_at": "2024-05-03T10:00:00.000000Z",
            }
        ],
        "predictions": [],
        "data": {"text": "Shares fell.", "source": "wire"},
        "meta": {},
    },
]


def test_a_file_label_studio_wrote_imports(tmp_path):
    path = tmp_path / "project-2-at-2024.json"
    path.write_text(json.dumps(LABEL_STUDIO_EXPORT))
    back = jl.read(path, task=jl.Task(LABELS))
    assert back.index.tolist() == [11, 12]  # records in = records out, the cancelled one too
    assert back.loc[11, "label"] == "World"  # the latest annotation
    assert back.loc[11, "annotator"] == "bob@example.org"
    assert back.loc[11, "annotations"] == 2 and back.loc[12, "annotations"] == 0
    assert back.loc[11, "labeled_at"] == pd.Timestamp("2024-05-02T10:00:00Z")
    assert back["label"].isna().tolist() == [False, True]
    assert back.loc[11, "llm_label"] == "Sports" and back.loc[11, "llm_confidence"] == 0.61
    assert back.loc[11, "llm_model"] == "clf-v2"
    assert back["source"].tolist() == ["wire", "wire"]


def test_a_label_studio_ner_export_imports(tmp_path):
    text = "Ann joined Acme in Paris."
    export = [
        {
            "id": 1,
            "data": {"text": text},
            "annotations": [
                {
                    "completed_by": 1,
                    "result": [
                        {
                            "value": {"start": 0, "end": 3, "text": "Ann", "labels": ["PER"]},
                            "id": "a",
                            "from_name": "label",
                            "to_name": "text",
                            "type": "labels",
                            "origin": "manual",
                        },
                        {
                            "value": {"start": 11, "end": 15, "text": "Acme", "labels": ["ORG"]},
                            "from_name": "label",
                            "to_name": "text",
                            "type": "labels",
                        },
                    ],
                }
            ],
        }
    ]
    path = tmp_path / "ner.json"
    path.write_text(json.dumps(export))
    back = jl.read(path)
    assert back.loc[1, "label"] == [{"start": 0, "end": 3, "label": "PER"}, {"start": 11, "end": 15, "label": "ORG"}]
    assert jl.Task.from_dict(back.attrs["jlabel_task"]).kind == "spans"


def test_files_prodigy_wrote_import(tmp_path):
    lines = [
        # textcat binary
        {
            "text": "Goal!",
            "label": "Sports",
            "_input_hash": 1,
            "_task_hash": 2,
            "answer": "accept",
            "_view_id": "classification",
        },
        {"text": "Rates", "label": "Sports", "_input_hash": 3, "_task_hash": 4, "answer": "reject"},
        {"text": "Hmm", "label": "Sports", "_input_hash": 5, "_task_hash": 6, "answer": "ignore"},
        # textcat choice
        {
            "text": "War ends",
            "options": [{"id": "World", "text": "World"}, {"id": "Sports", "text": "Sports"}],
            "accept": ["World"],
            "answer": "accept",
            "_view_id": "choice",
            "_annotator_id": "news-ana",
            "_session_id": "news-ana",
            "_timestamp": 1714557600,
        },
    ]
    path = tmp_path / "news.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    back = jl.read(path, format="prodigy")
    assert len(back) == 4
    assert back["answer"].tolist() == ["accept", "reject", "ignore", "accept"]
    assert back["label"].tolist()[0] == "Sports" and back["label"].tolist()[3] == "World"
    assert back["label"].isna().tolist() == [False, True, True, False]
    assert back.loc[3, "annotator"] == "news-ana"
    assert back.loc[3, "labeled_at"] == pd.Timestamp(1714557600, unit="s", tz="UTC")

    ner = {
        "text": "Ann joined Acme",
        "tokens": [{"text": "Ann", "start": 0, "end": 3, "id": 0}, {"text": "joined", "start": 4, "end": 10, "id": 1}],
        "spans": [{"start": 0, "end": 3, "token_start": 0, "token_end": 0, "label": "PER"}],
        "answer": "accept",
        "_view_id": "ner_manual",
    }
    path = tmp_path / "ner.jsonl"
    path.write_text(json.dumps(ner) + "\n")
    back = jl.read(path)  # .jsonl with answers: read as Prodigy
    assert back.loc[0, "label"] == [{"start": 0, "end": 3, "label": "PER"}]


# -- bad input ----------------------------------------------------------------------------


def test_export_without_labels_is_an_error(tmp_path):
    df = pd.DataFrame({"text": ["a", "b"], "label": [None, None]})
    with pytest.raises(ValueError, match=r"none of the 2 records has a label"):
        jl.export(df, tmp_path / "x.jsonl", task=jl.Task(LABELS))
    with pytest.raises(ValueError, match="no labels or suggestions to infer"):
        jl.export(df, tmp_path / "x.jsonl")


def test_export_span_outside_its_text_names_the_record(tmp_path):
    df, task = labeled_frame("spans")
    df.loc["b", "label"] = [{"start": 10, "end": 99, "label": "World"}]
    with pytest.raises(ValueError, match=r"Record 'b'.*outside its text, which has 18 characters"):
        jl.export(df, tmp_path / "x.json", task=task)


def test_export_unknown_label_names_the_record(tmp_path):
    df, task = labeled_frame("single")
    df.loc["c", "label"] = "Weather"
    with pytest.raises(ValueError, match=r"Record 'c' has label 'Weather'"):
        jl.export(df, tmp_path / "x.parquet", task=task)


def test_label_studio_file_of_another_task_type(tmp_path):
    path = tmp_path / "boxes.json"
    path.write_text(
        json.dumps(
            [
                {"id": 1, "data": {"text": "a"}, "annotations": []},
                {
                    "id": 2,
                    "data": {"text": "b"},
                    "annotations": [
                        {"result": [{"type": "rectanglelabels", "value": {"x": 1, "rectanglelabels": ["car"]}}]}
                    ],
                },
            ]
        )
    )
    with pytest.raises(ValueError, match=r"boxes.json, task 1 \(id 2\): a 'rectanglelabels' result"):
        jl.read(path)
    choices = tmp_path / "choices.json"
    choices.write_text(json.dumps(LABEL_STUDIO_EXPORT))
    with pytest.raises(ValueError, match=r"task 0 \(id 11\): a single annotation in a spans project"):
        jl.read(choices, task=jl.Task(LABELS, kind="spans"))


def test_label_studio_unknown_label_names_the_task(tmp_path):
    path = tmp_path / "ls.json"
    path.write_text(json.dumps(LABEL_STUDIO_EXPORT))
    with pytest.raises(ValueError, match=r"ls.json, task 0 \(id 11\): label 'World' is not one of"):
        jl.read(path, task=jl.Task(["Sports", "Business"]))


def test_prodigy_unknown_answer_names_the_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(
        json.dumps({"text": "a", "label": "World", "answer": "accept"})
        + "\n\n"
        + json.dumps({"text": "b", "label": "World", "answer": "maybe"})
        + "\n"
    )
    with pytest.raises(ValueError, match=r"p.jsonl, line 3: unknown answer 'maybe'"):
        jl.read(path)


def test_truncated_files_name_file_and_line(tmp_path):
    df, task = labeled_frame("single")
    ls = jl.export(df, tmp_path / "ls.json", task=task)
    ls.write_text(ls.read_text()[:-40])
    with pytest.raises(
        ValueError, match=r"ls.json: not valid JSON .* at line \d+, column \d+\); the file may be truncated"
    ):
        jl.read(ls)
    lines = jl.export(df, tmp_path / "train.jsonl", task=task)
    lines.write_text(lines.read_text()[:-10])
    with pytest.raises(ValueError, match=r"train.jsonl, line 3: not valid JSON"):
        jl.read(lines)
    parquet = jl.export(df, tmp_path / "all.parquet", task=task)
    parquet.write_bytes(parquet.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"all.parquet: not a readable Parquet file"):
        jl.read(parquet)


def test_unknown_format_and_missing_file(tmp_path):
    df, task = labeled_frame("single")
    with pytest.raises(ValueError, match=r"Cannot tell the format of .*out.csv.* pass format="):
        jl.export(df, tmp_path / "out.csv", task=task)
    with pytest.raises(ValueError, match="Unknown format 'xml'"):
        jl.export(df, tmp_path / "out.json", format="xml", task=task)
    with pytest.raises(FileNotFoundError, match="No file at"):
        jl.read(tmp_path / "missing.json")


def test_export_command_joins_store_labels_onto_data(tmp_path, capsys):
    import argparse

    from jlabel.io import add_export_arguments, export_command

    task = jl.Task(LABELS)
    store = jl.Store(tmp_path / "labels.db", task=task, annotator="ana")
    store.record("1", "label", "Sports")
    store.close()
    pd.DataFrame({"id": [1, 2], "text": ["Goal", "War"]}).to_csv(tmp_path / "news.csv", index=False)
    parser = add_export_arguments(argparse.ArgumentParser())
    args = parser.parse_args(
        [str(tmp_path / "labels.db"), str(tmp_path / "out.json"), "--data", str(tmp_path / "news.csv"), "--id", "id"]
    )
    assert export_command(args) == 0
    assert "1 labeled of 2 records" in capsys.readouterr().out
    back = jl.read(tmp_path / "out.json", task=task)
    assert back["label"].tolist()[0] == "Sports" and back["label"].isna().tolist() == [False, True]


def test_label_studio_annotations_as_a_long_table(tmp_path):
    path = tmp_path / "ls.json"
    path.write_text(json.dumps(LABEL_STUDIO_EXPORT))
    long = jl.read(path, annotations="all")
    assert long[["record", "annotator", "label"]].values.tolist() == [
        [11, "1", "Sports"],
        [11, "bob@example.org", "World"],
    ]
    assert long["labeled_at"].tolist() == [pd.Timestamp("2024-05-01T10:00:00Z"), pd.Timestamp("2024-05-02T10:00:00Z")]
    with pytest.raises(ValueError, match="annotations='all' reads Label Studio files"):
        jl.read(path, format="jsonl", annotations="all")
    with pytest.raises(ValueError, match="annotations must be 'latest' or 'all', got 'first'"):
        jl.read(path, annotations="first")


@pytest.mark.parametrize("text", [None, np.nan, 17])
def test_label_studio_writes_every_text_as_a_string(tmp_path, text):
    df = pd.DataFrame({"text": pd.Series(["Goal!", text], dtype=object), "label": ["Sports", "World"]})
    path = jl.export(df, tmp_path / "out.json", task=jl.Task(LABELS))
    assert [entry["data"]["text"] for entry in json.loads(path.read_text())] == ["Goal!", "" if text != 17 else "17"]
    assert jl.read(path)["text"].tolist() == ["Goal!", "" if text != 17 else "17"]


def test_label_studio_predictions_given_as_ids_are_skipped(tmp_path):
    export = json.loads(json.dumps(LABEL_STUDIO_EXPORT))
    export[0]["predictions"] = [286]  # as Label Studio's own JSON export may write them
    export[1]["annotations"] = [287]
    path = tmp_path / "project-1.json"
    path.write_text(json.dumps(export))
    back = jl.read(path, task=jl.Task(LABELS))
    assert back["label"].tolist()[0] == "World" and back["label"].isna().tolist() == [False, True]
    assert back["llm_label"].isna().all()


@pytest.mark.parametrize(
    "line",
    [
        {"text": "bad", "label": 0},
        {"text": "bad", "label": ["World", 3]},
        {"text": "bad", "label": [{"start": 0, "end": 3, "label": 7}]},
    ],
)
def test_training_labels_that_are_not_names_name_file_and_line(tmp_path, line):
    path = tmp_path / "train.jsonl"
    first = {"text": "good", "label": [] if isinstance(line["label"], list) else "World"}
    path.write_text(json.dumps(first) + "\n" + json.dumps(line) + "\n")
    with pytest.raises(ValueError, match=rf"{path.name}, line 2: (span )?label \S+ (\(int\) )?is not a"):
        jl.read(path)


def test_prodigy_numeric_option_ids_are_read_as_text(tmp_path):
    options = [{"id": 0, "text": "negative"}, {"id": 1, "text": "positive"}]
    path = tmp_path / "prodigy.jsonl"
    rows = [{"text": t, "options": options, "accept": [a], "answer": "accept"} for t, a in [("great", 1), ("awful", 0)]]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    back = jl.read(path)
    assert back["label"].tolist() == ["1", "0"] and back.attrs["jlabel_task"]["labels"] == ["0", "1"]
    path.write_text(json.dumps({**rows[0], "accept": [1.5]}) + "\n")
    with pytest.raises(ValueError, match=r"prodigy.jsonl, line 1: option id 1.5 \(float\)"):
        jl.read(path)


def test_export_without_task_refuses_to_guess_the_probabilities_order(tmp_path):
    task = jl.Task(["World", "Sports", "Business", "Sci/Tech"])
    matrix = np.array([[0.1, 0.7, 0.1, 0.1], [0.1, 0.1, 0.7, 0.1], [0.1, 0.1, 0.2, 0.6]])
    df = jl.set_suggestions(pd.DataFrame({"text": ["Goal!", "Rates up", "Chip news"]}), task, matrix, model="m")
    df["label"] = pd.array(["Sports", None, None], dtype=STRING_DTYPE)  # no record shows "World"
    for suffix in (".json", ".parquet"):
        with pytest.raises(ValueError, match=r"hold 4 probabilities .* Pass task=jl.Task"):
            jl.export(df, tmp_path / f"out{suffix}")
    three = jl.Task(["Business", "Sports", "World"])  # first seen: Sports, then Business, then World
    df = jl.set_suggestions(pd.DataFrame({"text": ["a", "b", "c"]}), three, np.eye(3)[[1, 0, 2]], model="m")
    with pytest.raises(ValueError, match="not in the order its labels first appear"):
        jl.export(df, tmp_path / "out.json")
    df.attrs["jlabel_task"] = three.to_dict()  # as jl.read leaves it: no guess needed
    back = jl.read(jl.export(df, tmp_path / "out.json"), task=three)
    np.testing.assert_allclose(jl.probs(back, three), np.eye(3)[[1, 0, 2]])


def test_label_studio_keeps_fifteen_digits(tmp_path):
    df = pd.DataFrame({"text": ["a", "b"], "score": [0.123456789012345, 1234567.89123456], "label": ["World"] * 2})
    back = jl.read(jl.export(df, tmp_path / "out.json"))
    assert back["score"].tolist() == df["score"].tolist()


def test_label_studio_round_trip_keeps_the_task_without_task(tmp_path):
    # no record has two labels and one has none: only the task written into the file says "multi"
    task = jl.Task({"a": "first", "b": "second", "c": "third"}, kind="multi", instructions="Tag it.")
    df = pd.DataFrame({"text": ["x one", "y two", "z three"]}, index=["r1", "r2", "r3"])
    df["label"] = pd.Series([["a"], ["b"], []], index=df.index)
    path = jl.export(df, tmp_path / "out.json", task=task)
    assert all(entry["meta"]["jlabel_task"] == task.to_dict() for entry in json.loads(path.read_text()))
    back = jl.read(path)
    assert back["label"].tolist() == [["a"], ["b"], []]
    assert jl.Task.from_dict(back.attrs["jlabel_task"]).id == task.id  # labels in order, "c" included
    assert jl.read(path, annotations="all")["label"].tolist() == [["a"], ["b"], []]
    tasks = json.loads(path.read_text())
    tasks[1]["meta"]["jlabel_task"] = jl.Task(["a", "b"], kind="multi").to_dict()
    path.write_text(json.dumps(tasks))
    with pytest.raises(ValueError, match=r"tasks 0 and 1 were exported for different jlabel tasks"):
        jl.read(path)
    tasks[1]["meta"]["jlabel_task"] = task.to_dict()
    tasks[1]["annotations"][0]["result"][0]["value"]["choices"] = ["d"]  # a label added in Label Studio
    path.write_text(json.dumps(tasks))
    with pytest.raises(ValueError, match=r"label 'd' is not one of the labels \['a', 'b', 'c'\] of the task jlabel"):
        jl.read(path)
    assert jl.read(path, task=jl.Task(["a", "b", "c", "d"], kind="multi"))["label"].tolist()[1] == ["d"]


@pytest.mark.parametrize("kind", ["single", "spans"])
def test_label_studio_template_text_does_not_overwrite_the_text_column(tmp_path, kind):
    task = jl.Task(["World", "Sports"], kind=kind, text="{title}. {text}")
    label = "Sports" if kind == "single" else [{"start": 0, "end": 9, "label": "Sports"}]
    df = pd.DataFrame({"title": ["Cup final"], "text": ["Spain wins"], "label": pd.Series([label], dtype=object)})
    path = jl.export(df, tmp_path / "out.json", task=task)
    data = json.loads(path.read_text())[0]["data"]
    assert data == {"title": "Cup final", "text": "Spain wins", "jlabel_text": "Cup final. Spain wins"}
    for back in (jl.read(path), jl.read(path, task=task)):
        assert back.columns[:2].tolist() == ["title", "text"] and "jlabel_text" not in back.columns
        assert back[["title", "text"]].values.tolist() == [["Cup final", "Spain wins"]]
        assert back["label"].tolist() == [label]
    body = jl.Task(["World", "Sports"], kind=kind, text="{title}. {body}")
    plain = jl.export(df.rename(columns={"text": "body"}), tmp_path / "plain.json", task=body)
    assert json.loads(plain.read_text())[0]["data"]["text"] == "Cup final. Spain wins"  # no collision: under 'text'
    with pytest.raises(ValueError, match="The frame has a column 'jlabel_text'"):
        jl.export(df.assign(jlabel_text=["mine"]), tmp_path / "out.json", task=task)
    own = jl.export(
        df.assign(jlabel_text=["mine"]), tmp_path / "own.json", task=jl.Task(["World", "Sports"], kind=kind)
    )
    assert jl.read(own)[["text", "jlabel_text"]].values.tolist() == [["Spain wins", "mine"]]  # not a template's


def test_parquet_read_checks_the_task(tmp_path):
    df = pd.DataFrame({"text": ["Goal!", "War"], "label": ["Sports", "World"]})
    path = jl.export(df, tmp_path / "out.parquet")
    with pytest.raises(ValueError, match=r"out.parquet holds single labels but the task is a 'multi' task"):
        jl.read(path, task=jl.Task(["Sports", "World"], kind="multi"))
    with pytest.raises(ValueError, match=r"out.parquet: Record 0 has label 'Sports', which is not one of the task's"):
        jl.read(path, task=jl.Task(["spam", "ham"]))
    with pytest.raises(ValueError, match="annotations must be 'latest' or 'all', got 'nonsense'"):
        jl.read(path, annotations="nonsense")
    with pytest.raises(ValueError, match="annotations='all' reads Label Studio files"):
        jl.read(path, annotations="all")
    wider = jl.Task(["World", "Sports", "Business"])
    back = jl.read(path, task=wider)
    assert back["label"].tolist() == ["Sports", "World"] and back.attrs["jlabel_task"] == wider.to_dict()
    # a file jlabel did not write: the kind from its values, spans checked against the text
    spans = pd.DataFrame({"text": ["Goal!", "War"], "label": [[{"start": 0, "end": 4, "label": "a"}], []]})
    spans.to_parquet(tmp_path / "spans.parquet")
    with pytest.raises(ValueError, match=r"holds spans labels but the task is a 'multi' task"):
        jl.read(tmp_path / "spans.parquet", task=jl.Task(["a"], kind="multi"))
    spans.loc[1, "label"] = [{"start": 0, "end": 9, "label": "a"}]
    spans.to_parquet(tmp_path / "spans.parquet")
    with pytest.raises(ValueError, match=r"spans.parquet: Record 1: label span .* lies outside its text"):
        jl.read(tmp_path / "spans.parquet", task=jl.Task(["a"], kind="spans"))


def test_repeated_record_keys_are_kept_in_a_record_column(tmp_path):
    options = [{"id": "pos", "text": "pos"}, {"id": "neg", "text": "neg"}]
    rows = [("doc-17", "ana", "pos"), ("doc-17", "bob", "neg"), ("doc-18", "ana", "neg")]
    path = tmp_path / "prodigy.jsonl"
    path.write_text(
        "".join(
            json.dumps(
                {
                    "text": f"t {key}",
                    "meta": {"id": key},
                    "options": options,
                    "accept": [label],
                    "answer": "accept",
                    "_annotator_id": who,
                }
            )
            + "\n"
            for key, who, label in rows
        )
    )
    back = jl.read(path)
    assert back.index.tolist() == [0, 1, 2]
    assert back[["record", "annotator", "label"]].values.tolist() == [list(row) for row in rows]
    train = tmp_path / "train.jsonl"  # some lines without an id: those keys are missing, the others kept
    train.write_text('{"id": 7, "text": "a", "label": "x"}\n{"text": "b", "label": "y"}\n')
    assert jl.read(train)["record"].tolist() == [7, None]
    train.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": "y"}\n')  # no keys at all: no column
    assert "record" not in jl.read(train).columns
    ls = [{"id": 3, "data": {"text": "a", "record": "mine"}, "annotations": []}] * 2
    (tmp_path / "ls.json").write_text(json.dumps(ls))
    back = jl.read(tmp_path / "ls.json", task=jl.Task(["x", "y"]))
    assert back["record"].tolist() == ["mine", "mine"] and back["jlabel_record"].tolist() == [3, 3]


def test_label_studio_keys_named_like_data_fields_stay_keys(tmp_path):
    # keys that are all field names ("text", "label") index the frame; the fields stay columns
    choice = [{"result": [{"type": "choices", "value": {"choices": ["x"]}}]}]
    tasks = [
        {"data": {"text": t}, "meta": {"jlabel_key": k}, "annotations": choice}
        for k, t in [("text", "a"), ("label", "b")]
    ]
    (tmp_path / "ls.json").write_text(json.dumps(tasks))
    back = jl.read(tmp_path / "ls.json")
    assert back.index.tolist() == ["text", "label"]
    assert back["text"].tolist() == ["a", "b"] and back["label"].tolist() == ["x", "x"]


def test_label_studio_round_trip_keeps_where_each_suggestion_came_from(tmp_path):
    task = jl.Task(["World", "Sports"])
    df = pd.DataFrame({"text": ["a", "b", "c"]}, index=["r1", "r2", "r3"])
    df = jl.set_suggestions(
        df, task, np.array([[0.9, 0.1], [0.2, 0.8], [np.nan, np.nan]]), model="m", source=["combined", "cascade", None]
    )
    path = jl.export(df, tmp_path / "out.json", task=task)
    assert [entry["meta"].get("llm_source") for entry in json.loads(path.read_text())] == ["combined", "cascade", None]
    back = jl.read(path)
    assert back["llm_source"].tolist()[:2] == ["combined", "cascade"] and pd.isna(back["llm_source"].iloc[2])


def test_label_studio_data_fields_named_like_label_columns_stay_data(tmp_path):
    # a project imported with an old system's 'label' column: only the annotations label the records
    choice = [{"type": "choices", "value": {"choices": ["Positive"]}}]
    tasks = [
        {
            "id": 1,
            "data": {"text": "Loan approved", "label": "Negative"},
            "annotations": [{"created_at": "2024-01-01T10:00:00Z", "result": choice}],
        },
        {
            "id": 2,
            "data": {"text": "Card blocked", "label": "Positive", "annotator": "legacy", "annotations": 5},
            "annotations": [],
        },
    ]
    path = tmp_path / "ls.json"
    path.write_text(json.dumps(tasks))
    for back in (jl.read(path, task=jl.Task(["Positive", "Negative"])), jl.read(path)):
        assert back["label"].notna().tolist() == [True, False] and back.loc[1, "label"] == "Positive"
        assert back["annotator"].isna().all() and back["annotations"].tolist() == [1, 0]
        assert back["data_label"].tolist() == ["Negative", "Positive"]
        assert back.loc[2, "data_annotator"] == "legacy" and back.loc[2, "data_annotations"] == 5


@pytest.mark.parametrize("kind", ["multi", "spans"])
@pytest.mark.parametrize("column", ["label", "llm_label"])
def test_export_refuses_a_bare_string_where_a_list_is_due(tmp_path, kind, column):
    task = jl.Task(["Fraud", "Complaint"], kind=kind)
    what = "multi-label" if kind == "multi" else "span"
    fine = ["Complaint"] if kind == "multi" else [{"start": 0, "end": 5, "label": "Complaint"}]
    df = pd.DataFrame({"text": ["angry call", "odd charge"]}, index=["a", "b"])
    df[column] = pd.Series([fine, "Fraud"], index=df.index, dtype=object)
    if column == "llm_label":
        df["label"] = pd.Series([fine, None], index=df.index, dtype=object)
    with pytest.raises(
        ValueError, match=rf"Record 'b' has {column} 'Fraud' \(str\), but the labels of a {what} task are lists"
    ):
        jl.export(df, tmp_path / "x.json", task=task)


@pytest.mark.parametrize("kind", ["multi", "spans"])
@pytest.mark.parametrize("fmt", ["jsonl", "prodigy", "labelstudio"])
def test_list_labels_held_as_numpy_arrays_export(tmp_path, kind, fmt):
    task = jl.Task(["Fraud", "Complaint"], kind=kind)
    labels = (
        [["Fraud"], ["Complaint", "Fraud"]]
        if kind == "multi"
        else [[{"start": 0, "end": 3, "label": "Fraud"}], [{"start": 4, "end": 8, "label": "Complaint"}]]
    )
    pd.DataFrame({"text": ["odd charge", "angry call"], "label": labels}, index=["a", "b"]).to_parquet(
        tmp_path / "saved.parquet"
    )
    again = pd.read_parquet(tmp_path / "saved.parquet")  # lists come back as numpy arrays
    assert isinstance(again["label"].iloc[0], np.ndarray)
    path = jl.export(again, tmp_path / f"out{FORMATS[fmt]}", format=fmt, task=task)
    assert jl.read(path, format=fmt, task=task)["label"].tolist() == labels


def test_export_infers_the_task_from_the_first_label_that_says_its_kind(tmp_path):
    spans = pd.DataFrame(
        {"text": ["nothing here", "Ana Lopez called"], "label": [[], [{"start": 0, "end": 9, "label": "PER"}]]}
    )
    task = jl.io.infer_task(spans)
    assert (task.kind, task.labels) == ("spans", ("PER",))
    back = jl.read(jl.export(spans, tmp_path / "out.jsonl"), task=task)
    assert back["label"].tolist() == spans["label"].tolist()
    for labels in ([1, 2], [[1], [2, 1]]):
        with pytest.raises(ValueError, match=r"The frame's label 1 \(int\) is not a label name"):
            jl.export(pd.DataFrame({"text": ["a", "b"], "label": labels}), tmp_path / "out.jsonl")


def test_export_with_an_id_column_and_a_repeated_index(tmp_path):
    spans = jl.Task(["PER"], kind="spans")
    df = pd.DataFrame(
        {
            "rid": ["a", "b", "c"],
            "text": ["Ana x", "y Bob", "z"],
            "label": [[{"start": 0, "end": 3, "label": "PER"}], [{"start": 2, "end": 5, "label": "PER"}], None],
        },
        index=[0, 0, 1],
    )
    back = jl.read(jl.export(df, tmp_path / "o.jsonl", task=spans, id="rid"), task=spans)
    assert back.index.tolist() == ["a", "b"] and back["label"].tolist() == df["label"].tolist()[:2]
    df["label"] = pd.Series([*df["label"].tolist()[:2], [{"start": 2, "end": 9, "label": "PER"}]], index=df.index)
    with pytest.raises(ValueError, match=r"^Record 'c': label span .* lies outside its text, which has 1 characters"):
        jl.export(df, tmp_path / "o.jsonl", task=spans, id="rid")
    multi = jl.Task(["A", "B"], kind="multi")
    df = pd.DataFrame({"rid": ["a", "b", "c"], "text": ["x", "y", "z"], "label": [["A"], ["Z"], None]}, index=[0, 0, 1])
    with pytest.raises(ValueError, match=r"^Record 'b' has label 'Z', which is not one of the task's labels"):
        jl.export(df, tmp_path / "o.jsonl", task=multi, id="rid")


@pytest.mark.parametrize("fmt", ["jsonl", "labelstudio", "prodigy"])
@pytest.mark.parametrize("tz", [None, "UTC"])
def test_timestamp_keys_are_written_as_iso_strings(tmp_path, fmt, tz):
    index = pd.DatetimeIndex([pd.Timestamp("2024-01-01 09:00"), pd.Timestamp("2024-01-01 10:00:00.5")]).tz_localize(tz)
    df = pd.DataFrame({"text": ["call at 9", "call at 10"], "label": ["Complaint", "Fraud"]}, index=index)
    back = jl.read(jl.export(df, tmp_path / f"o{FORMATS[fmt]}", format=fmt), format=fmt)
    assert back.index.tolist() == [t.isoformat() for t in index]


def test_prodigy_binary_textcat_with_pattern_spans_is_a_classification(tmp_path):
    # textcat.teach with --patterns: the label is top-level, the pattern matches are highlighted as spans
    span = {"start": 0, "end": 4, "label": "SPORTS", "pattern": 3}
    rows = [
        {"text": "Goal for Ajax", "label": "SPORTS", "spans": [span], "answer": "accept"},
        {"text": "Rates rise", "label": "SPORTS", "spans": [], "answer": "reject"},
    ]
    path = tmp_path / "teach.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    for back in (jl.read(path), jl.read(path, task=jl.Task(["SPORTS", "BUSINESS"]))):
        assert back.attrs["jlabel_task"]["kind"] == "single"
        assert back["label"].tolist()[0] == "SPORTS" and pd.isna(back["label"].iloc[1])
    spans = jl.read(path, task=jl.Task(["SPORTS"], kind="spans"))  # asked for: the spans are the labels
    assert spans["label"].tolist() == [[{"start": 0, "end": 4, "label": "SPORTS"}], None]


def test_label_studio_reads_choices_beside_other_results_and_old_completions(tmp_path):
    choice = {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": ["Business"]}}
    note = {"from_name": "notes", "to_name": "text", "type": "textarea", "value": {"text": ["check"]}}
    stars = {"from_name": "stars", "to_name": "text", "type": "rating", "value": {"rating": 4}}
    tasks = [
        {"id": i, "data": {"text": "Rates up"}, "annotations": [{"created_at": "2024-01-01T10:00:00Z", "result": r}]}
        for i, r in ((1, [choice, note]), (2, [stars, choice]))
    ]
    path = tmp_path / "notes.json"
    path.write_text(json.dumps(tasks))
    with pytest.warns(
        UserWarning, match=r"notes.json: ignored Label Studio results of types \['rating', 'textarea'\]"
    ) as caught:
        back = jl.read(path)
    assert len(caught) == 1 and back["label"].tolist() == ["Business", "Business"]
    old = [{"id": 1, "data": {"text": "Rates up"}, "completions": [{"created_at": 1609789589, "result": [choice]}]}]
    path.write_text(json.dumps(old))  # Label Studio before 1.0: 'completions', epoch seconds
    back = jl.read(path)
    assert back.loc[1, "label"] == "Business"
    assert back.loc[1, "labeled_at"] == pd.Timestamp(1609789589, unit="s", tz="UTC")


def test_label_studio_data_floats_round_trip_exactly(tmp_path):
    amounts = [0.1 + 0.2, 1234567.123456789, 1e-300, np.nan]
    df = pd.DataFrame({"text": list("abcd"), "label": ["A"] * 4, "amount": amounts}, index=["r1", "r2", "r3", "r4"])
    back = jl.read(jl.export(df, tmp_path / "x.json"))
    np.testing.assert_array_equal(back["amount"].to_numpy(dtype=float), np.array(amounts))


def test_a_foreign_parquet_file_with_number_labels_is_refused_clearly(tmp_path):
    path = tmp_path / "foreign.parquet"
    pd.DataFrame({"text": ["x", "y"], "label": [1, 2]}).to_parquet(path)  # not written by jlabel
    assert jl.read(path, task=jl.Task(["1", "2"]))["label"].tolist() == [1, 2]  # was: TypeError, int has no len()
    with pytest.raises(ValueError, match=r"foreign\.parquet"):
        jl.read(path, task=jl.Task(["a", "b"]))
