"""The spine's bad-input table: each case gets a clear error or a defined behaviour,
and nothing recorded before it is lost."""

import numpy as np
import pandas as pd
import pytest

import jlabel as jl
from jlabel.frame import ensure_columns, record_keys, texts

TASK = jl.Task(["World", "Sports"], instructions="Topic.")


def _frame(text_values, index=None):
    return pd.DataFrame({"text": text_values}, index=index)


def empty_frame():
    df = _frame(pd.Series([], dtype=object))
    assert texts(df, TASK).empty
    assert ensure_columns(df, TASK)["label"].empty
    return "defined: no records"


def duplicate_index():
    record_keys(_frame(["a", "b", "c"], index=["x", "y", "x"]))


def missing_text_column():
    texts(pd.DataFrame({"body": ["a"]}), TASK)


def odd_texts():
    values = [np.nan, None, 17, "x" * 1_000_000, "Zürich 東京 🙂", "<img src=x onerror=alert(1)>"]
    out = texts(_frame(values), TASK)
    assert out.tolist() == ["", "", "17", "x" * 1_000_000, "Zürich 東京 🙂", "<img src=x onerror=alert(1)>"]
    return "defined: missing -> '', others -> str(), text kept verbatim"


def unknown_label(store):
    store.record("r2", "label", "Weather")


def wrong_kind():
    jl.Task(["World"], kind="regression")


def corrupt_store(tmp_path):
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 4)
    jl.Store(path, task=TASK)


CASES = [
    ("empty frame", empty_frame, None, None),
    ("duplicate index", duplicate_index, ValueError, r"duplicate key\(s\): 'x'"),
    ("missing text column", missing_text_column, KeyError, "lacks"),
    ("NaN/None/int/1 MB/unicode/HTML text", odd_texts, None, None),
    ("unknown label", unknown_label, ValueError, "Unknown label 'Weather'"),
    ("wrong kind", wrong_kind, ValueError, "Unknown task kind 'regression'"),
    ("corrupt store file", corrupt_store, jl.StoreError, "left untouched"),
]


@pytest.mark.parametrize(("case", "run", "error", "match"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_keeps_what_was_recorded(tmp_path, case, run, error, match):
    store = jl.Store(tmp_path / "labels.db", task=TASK, annotator="ana")
    store.record("r1", "label", "Sports")
    kwargs = {}
    if "store" in run.__code__.co_varnames:
        kwargs["store"] = store
    if "tmp_path" in run.__code__.co_varnames:
        kwargs["tmp_path"] = tmp_path
    if error is None:
        assert run(**kwargs).startswith("defined")
    else:
        with pytest.raises(error, match=match):
            run(**kwargs)
    reopened = jl.Store(tmp_path / "labels.db", task=TASK)
    assert reopened.state()["label"].to_dict() == {"r1": "Sports"}
