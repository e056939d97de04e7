"""Labeler's Python side: messages handled directly, no browser."""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import traitlets

import jlabel as jl
from jlabel.widget import Labeler

REPO = Path(__file__).resolve().parents[1]


class Panel:
    """A Labeler with its outgoing custom messages captured, driven like the front end."""

    def __init__(self, *args, **kwargs):
        self.w = Labeler(*args, **kwargs)
        self.sent: list[dict] = []
        self.w.send = lambda content, buffers=None: self.sent.append(content)
        self.n = 0

    def msg(self, **content) -> dict:
        self.n += 1
        content["id"] = f"t{self.n}"
        self.w._on_message(self.w, content, [])
        replies = [m for m in self.sent if m.get("id") == content["id"]]
        assert len(replies) == 1, replies
        return replies[0]

    def decide(self, action="label", value=None, duration_ms=100):
        content = {"type": "decide", "position": self.w.position, "action": action, "duration_ms": duration_ms}
        if value is not None:
            content["value"] = value
        return self.msg(**content)


@pytest.fixture
def suggested(small_df, task):
    probs = np.array(
        [[0.1, 0.1, 0.7, 0.1], [0.05, 0.9, 0.03, 0.02], [0.6, 0.2, 0.1, 0.1], [0.1, 0.1, 0.2, 0.6], [0.25] * 4]
    )
    return jl.set_suggestions(small_df, task, probs, model="stand-in", prompt="p1")


def test_the_wheel_ships_the_front_end_as_it_is_in_js(tmp_path):
    import zipfile

    from hatchling.builders.wheel import WheelBuilder

    wheel = next(iter(WheelBuilder(str(REPO)).build(directory=str(tmp_path), versions=["standard"])))
    with zipfile.ZipFile(wheel) as archive:
        for name in ("labeler.js", "labeler.css"):
            assert archive.read(f"jlabel/static/{name}") == (REPO / "js" / name).read_bytes()
        assert (
            f"jlabel-{jl.__version__}.data/data/etc/jupyter/jupyter_server_config.d/jlabel.json" in archive.namelist()
        )


def test_fetch_returns_window_and_never_the_frame(small_df, task):
    p = Panel(small_df, task, annotator="ana")
    assert set(p.w.keys) - {"layout", "tabbable", "tooltip"} <= {
        "position", "total", "done", "annotator", "labels", "kind", "queue_name", "message",
        "_instructions", "_descriptions", "_context",
        "_esm", "_css", "_anywidget_id", "_dom_classes", "_model_module", "_model_module_version",
        "_model_name", "_view_count", "_view_module", "_view_module_version", "_view_name", "comm",
    }  # fmt: skip
    reply = p.msg(type="fetch", start=1, count=2)
    assert [r["key"] for r in reply["records"]] == ["r1", "r2"]
    assert reply["records"][0]["text"] == small_df.loc["r1", "text"]
    assert reply["records"][0]["suggestion_state"] == "none"
    assert p.msg(type="fetch", start=4, count=10)["records"][0]["text"] == ""


def test_label_accept_edit_reject_skip_land_in_df_and_store(suggested, task, tmp_path):
    p = Panel(suggested, task, store=tmp_path / "l.db", annotator="ana")
    p.decide("label", "Sports")  # r0: suggestion Business -> edit
    p.decide("accept")  # r1: Sports accepted
    p.decide("reject", "Business")  # r2: suggestion World rejected -> Business
    p.decide("skip")  # r3
    p.decide("label", "World")  # r4: suggestion World (tie, argmax first) -> accept
    df = p.w.df
    assert df is suggested
    assert df["label"].tolist()[:3] == ["Sports", "Sports", "Business"]
    assert pd.isna(df.loc["r3", "label"])
    assert df["label_source"].tolist()[:3] == ["llm_edited", "llm_accepted", "llm_edited"]
    events = jl.Store(tmp_path / "l.db", task=task).events()
    assert events["action"].tolist() == ["edit", "accept", "reject", "skip", "accept"]
    assert events["suggestion"].tolist() == ["Business", "Sports", "World", "Sci/Tech", "World"]
    assert events["confidence"].iloc[1] == pytest.approx(0.9)
    assert events["model"].unique().tolist() == ["stand-in"]
    assert events["prompt"].unique().tolist() == ["p1"]
    assert events["duration_ms"].tolist() == [100] * 5
    assert (events["annotator"] == "ana").all()
    assert p.w.done == 4 and p.w.position == 5
    assert df["annotator"].iloc[0] == "ana" and df["labeled_at"].notna().sum() == 4


def test_position_changes_before_the_reply_that_brings_the_next_record(small_df, task):
    p = Panel(small_df, task, annotator="ana")
    order = []
    p.w.observe(lambda change: order.append(("position", change["new"])), "position")
    p.w.send = lambda content, buffers=None: order.append(("send", content))
    p.w._on_message(p.w, {"type": "decide", "position": 0, "action": "label", "value": "World", "id": "x"}, [])
    assert order[0] == ("position", 1)
    reply = order[-1][1]
    assert reply["id"] == "x" and reply["position"] == 1
    assert [r["key"] for r in reply["records"]] == ["r0", "r1", "r2"]  # the decided one, the next, one ahead
    assert reply["records"][0]["label"] == "World"


def test_undo_any_number_of_steps_restores_from_the_store(suggested, task, tmp_path):
    suggested.loc["r1", "label"] = "World"  # labeled before the session: undo must restore it
    suggested.loc["r1", "label_source"] = "human"
    p = Panel(suggested, task, store=tmp_path / "l.db", annotator="ana", order=["r0", "r1", "r2"])
    before = suggested[["label", "label_source"]].copy()
    assert p.w.position == 0
    p.decide("label", "World")
    p.decide("label", "Sports")  # relabels r1
    p.decide("accept")
    assert p.w.done == 3
    for expected_position in (2, 1, 0):
        reply = p.msg(type="undo")
        assert reply["position"] == expected_position
        assert reply["records"][0]["position"] == expected_position
    assert p.w.position == 0
    assert pd.isna(suggested.loc["r0", "label"]) and pd.isna(suggested.loc["r2", "label"])
    # r1 held a label before the session (not in the store): undo brings it back
    pd.testing.assert_frame_equal(suggested[["label", "label_source"]], before)
    assert p.w.done == 1
    events = p.w.store.events()
    assert events["action"].tolist() == ["edit", "accept", "accept", "undo", "undo", "undo"]
    assert p.w.store.state()["status"].isna().all()
    error = p.msg(type="undo")
    assert error["type"] == "error" and "Nothing left to undo" in error["error"]


def test_undo_restores_a_label_made_outside_the_panel_as_it_was(task):
    # pandas 3 infers "str" columns for a user's own label column; who labeled it is unknown
    df = pd.DataFrame({"text": ["a", "b"], "label": ["World", None]})
    w = Labeler(df, task, annotator="ana", order=[0, 1])
    assert w.position == 1  # the first record not labeled yet
    w.position = 0
    w.decide("Sports")
    assert df["annotator"].iloc[0] == "ana"
    w.undo()
    assert df["label"].iloc[0] == "World" and pd.isna(df["annotator"].iloc[0]) and pd.isna(df["labeled_at"].iloc[0])
    w.position = 1
    w.decide("Sports")
    w.undo()
    assert pd.isna(df["label"].iloc[1]) and w.done == 1


def test_multi_toggle_confirm(small_df):
    task = jl.Task(["a", "b", "c"], kind="multi")
    df = jl.set_suggestions(small_df, task, np.tile([0.9, 0.2, 0.7], (5, 1)), model="m")
    p = Panel(df, task, annotator="ana")
    reply = p.msg(type="fetch", start=0, count=1)
    assert reply["records"][0]["suggestion"]["label"] == ["a", "c"]
    p.decide("confirm", ["c", "a"])  # same set, other order -> accept
    p.decide("confirm", ["b"])
    p.decide("confirm", [])  # "none of these" is a decision too
    assert df["label"].tolist()[:3] == [["a", "c"], ["b"], []]
    assert df["label_source"].tolist()[:3] == ["llm_accepted", "llm_edited", "llm_edited"]


def test_spans_confirm_and_bad_span(task):
    task = jl.Task(["PER", "ORG"], kind="spans")
    df = pd.DataFrame({"text": ["Ana works at Acme.", "Bo"]})
    p = Panel(df, task, annotator="ana")
    bad = p.decide("confirm", [{"start": 5, "end": 2, "label": "PER"}])
    assert bad["type"] == "error" and "0 <= start < end" in bad["error"]
    assert p.w.position == 0 and pd.isna(df.loc[0, "label"])
    p.decide("confirm", [{"start": 13, "end": 17, "label": "ORG"}, {"start": 0, "end": 3, "label": "PER"}])
    assert df.loc[0, "label"] == [{"start": 0, "end": 3, "label": "PER"}, {"start": 13, "end": 17, "label": "ORG"}]
    assert df.loc[0, "label_source"] == "human"


def test_arrows_move_the_position_and_fetch_works_anywhere(small_df, task):
    p = Panel(small_df, task, annotator="ana")
    p.w.position = 3  # what the front end's save_changes does
    p.decide("skip")
    assert p.w.position == 4
    p.w.position = 1
    p.decide("label", "Business")
    assert small_df.loc["r1", "label"] == "Business" and p.w.position == 2


def test_blind_mode_hides_a_seeded_share_and_records_it(task):
    n = 400
    df = pd.DataFrame({"text": [f"t{i}" for i in range(n)]})
    df = jl.set_suggestions(df, task, np.tile([0.7, 0.1, 0.1, 0.1], (n, 1)), model="m")
    p = Panel(df, task, annotator="ana", blind=0.25, seed=3)
    records = [r for s in range(0, n, 50) for r in p.msg(type="fetch", start=s, count=50)["records"]]
    hidden = [r["suggestion_state"] == "hidden" for r in records]
    assert 0.15 < np.mean(hidden) < 0.35
    assert all(r["suggestion"] is None for r, h in zip(records, hidden) if h)
    again = Panel(df, task, annotator="ana", blind=0.25, seed=3)
    assert [r["suggestion_state"] for r in again.msg(type="fetch", start=0, count=50)["records"]] == [
        r["suggestion_state"] for r in records[:50]
    ]
    first_hidden = hidden.index(True)
    p.w.position = first_hidden
    assert p.decide("accept")["type"] == "error"  # nothing shown to accept
    p.decide("label", "World")
    event = p.w.store.events().iloc[-1]
    assert event["action"] == "label" and event["meta"]["blind"] is True
    assert df["label_source"].iloc[first_hidden] == "human"


def test_default_queue_skips_labeled_and_store_applies_first(small_df, task, tmp_path):
    store = jl.Store(tmp_path / "l.db", task=task, annotator="bo")
    store.record("r0", "label", "World")
    store.record("r2", "label", "Sports")
    p = Panel(small_df, task, store=store)
    assert small_df.loc["r2", "label"] == "Sports"
    assert p.w.total == 3 and p.w.annotator == "bo"
    assert p.msg(type="fetch", start=0, count=5)["records"][0]["key"] == "r1"


def test_order_takes_keys_and_names_unknown_ones(small_df, task):
    p = Panel(small_df, task, annotator="ana", order=["r3", "r1"])
    assert [r["key"] for r in p.msg(type="fetch", start=0, count=5)["records"]] == ["r3", "r1"]
    with pytest.raises(KeyError, match=r"'nope', 'r9'"):
        Labeler(small_df, task, order=["r1", "nope", "r9"])
    with pytest.raises(ValueError, match="more than once"):
        Labeler(small_df, task, order=["r1", "r1"])
    ints = pd.DataFrame({"text": ["a", "b"]}, index=[10, 20])
    assert Panel(ints, task, order=["20"], annotator="a").msg(type="fetch", start=0)["records"][0]["key"] == "20"


def test_empty_frame_and_everything_labeled(task):
    empty = Labeler(pd.DataFrame({"text": pd.Series([], dtype=object)}), task, annotator="ana")
    assert empty.total == 0 and "empty" in empty.message
    done = pd.DataFrame({"text": ["a", "b"], "label": ["World", "Sports"]})
    w = Labeler(done, task, annotator="ana")
    assert w.total == 0 and "Every record is labeled" in w.message
    assert Panel(done, task, annotator="ana").msg(type="fetch", start=0)["records"] == []


def test_bad_input_is_explained(small_df, task):
    with pytest.raises(TypeError, match="pandas DataFrame"):
        Labeler([1, 2], task)
    with pytest.raises(TypeError, match=r"jl\.Task"):
        Labeler(small_df, ["a"])
    with pytest.raises(ValueError, match="blind"):
        Labeler(small_df, task, blind=1.5)
    with pytest.raises(KeyError, match="context"):
        Labeler(small_df, task, context=["nope"])
    with pytest.raises(TypeError, match="unexpected keyword"):
        Labeler(small_df, task, blnd=0.1)
    with pytest.raises(TypeError, match="score"):
        Labeler(small_df, task, llm="llama")
    other = jl.set_suggestions(small_df, jl.Task(["x", "y"]), np.tile([0.5, 0.5], (5, 1)), model="m")
    with pytest.raises(ValueError, match="not in the task's labels"):
        Labeler(other, task)
    p = Panel(small_df, task, annotator="ana")
    reply = p.decide("label", "Nope")
    assert reply["type"] == "error" and "Unknown label 'Nope'" in reply["error"]
    assert p.decide("accept")["type"] == "error"  # no suggestion on r0
    assert p.msg(type="decide", position=99, action="skip")["type"] == "error"
    assert p.w.position == 0 and small_df["label"].isna().all()


def test_switching_annotator_and_bad_positions(small_df, task, tmp_path):
    store = jl.Store(tmp_path / "l.db", task=task, annotator="lead")
    p = Panel(small_df, task, store=store)
    assert p.w.annotator == "lead"
    p.decide("label", "World")
    p.w.annotator = "bo"  # the lead enters a colleague's paper labels
    p.decide("label", "Sports")
    assert store.events()["annotator"].tolist() == ["lead", "bo"]
    assert small_df["annotator"].iloc[:2].tolist() == ["lead", "bo"]
    p.msg(type="undo")
    assert store.events()["annotator"].tolist() == ["lead", "bo", "bo"]
    assert store.annotator == "lead"  # the user's store object is left as it was
    with pytest.raises(traitlets.TraitError, match="between 0 and 5"):
        p.w.position = 6
    with pytest.raises(traitlets.TraitError, match="non-empty"):
        p.w.annotator = " "


def test_a_refused_labeler_leaves_the_frame_untouched(small_df, task, tmp_path):
    jl.Store(tmp_path / "other.db", task=jl.Task(["x", "y"]))
    before = small_df.copy()
    with pytest.raises(jl.StoreError, match="another task"):
        Labeler(small_df, task, store=tmp_path / "other.db")
    pd.testing.assert_frame_equal(small_df, before)


def test_more_than_nine_labels_all_reachable(small_df):
    task = jl.Task([f"L{i}" for i in range(12)])
    p = Panel(small_df, task, annotator="ana")
    assert len(p.w.labels) == 12
    p.decide("label", "L11")
    assert small_df.loc["r0", "label"] == "L11"


def test_context_columns_are_sent_as_text(small_df, task):
    small_df["source"] = ["a", None, "c", "d", "e"]
    small_df["n"] = [1.5, 2, 3, 4, 5]
    p = Panel(small_df, task, annotator="ana", context=["source", "n"])
    records = p.msg(type="fetch", start=0, count=2)["records"]
    assert records[0]["context"] == {"source": "a", "n": "1.5"}
    assert records[1]["context"]["source"] == ""


class StandInLLM:
    """A model with the scoring interface of jlabel.llm; scores by keyword, can be told to fail."""

    id = "stand-in@sha256:0"

    def __init__(self, fail_on=()):
        self.calls: list[tuple[str, int]] = []
        self.fail_on = set(fail_on)
        self.release = threading.Event()
        self.release.set()

    def score(self, task, texts, *, examples=()):
        self.release.wait(10)
        self.calls.append((texts[0], len(examples)))
        if any(word in texts[0] for word in self.fail_on):
            raise RuntimeError("out of memory")
        row = np.full(len(task.labels), 0.1)
        row[1 if "striker" in texts[0] else 0] = 0.7
        return row[None, :] / row.sum()


def _wait_for(condition, timeout=10.0):
    event = threading.Event()
    for _ in range(int(timeout / 0.02)):
        if condition():
            return True
        event.wait(0.02)
    return condition()


def test_live_suggestions_come_in_the_background_and_are_prefetched(small_df, task):
    llm = StandInLLM()
    llm.release.clear()  # the model is "slow": the panel must answer at once
    p = Panel(small_df, task, annotator="ana", llm=llm)
    first = p.msg(type="fetch", start=0, count=2)["records"]
    assert [r["suggestion_state"] for r in first] == ["coming", "coming"]
    llm.release.set()
    assert _wait_for(lambda: small_df["llm_label"].notna().sum() >= 3)
    assert small_df.loc["r1", "llm_label"] == "Sports"
    assert small_df.loc["r1", "llm_model"] == llm.id
    assert len(small_df.loc["r1", "llm_probs"]) == 4
    pushed = [m for m in p.sent if m.get("id") is None]
    assert any(r["suggestion_state"] == "ready" for m in pushed for r in m["records"])
    p.decide("accept")  # r0's suggestion arrived: accepting it records the model
    decisions = p.w.store.events(actions=["accept"])
    assert decisions["model"].tolist() == [llm.id] and decisions["suggestion"].tolist() == ["World"]
    assert _wait_for(lambda: any(n == 1 for _, n in llm.calls))  # later calls get the decision as an example
    assert _wait_for(lambda: small_df["llm_label"].notna().sum() == 4)
    assert isinstance(small_df["llm_probs"].dtype, pd.ArrowDtype)  # still the contract's Arrow column
    matrix = jl.probs(small_df, task)
    assert np.allclose(matrix[:4].sum(axis=1), 1) and np.isnan(matrix[4]).all()  # r4 was never prefetched
    assert matrix[1].argmax() == 1
    assert _wait_for(lambda: len(p.w.store.events(actions=["suggest"])) == 4)  # one journal event per suggestion
    suggests = p.w.store.events(actions=["suggest"])
    assert sorted(suggests["record"]) == ["r0", "r1", "r2", "r3"] and set(suggests["model"]) == {llm.id}


def test_llm_that_raises_keeps_the_panel_working(small_df, task):
    llm = StandInLLM(fail_on=["central bank"])
    p = Panel(small_df, task, annotator="ana", llm=llm)
    assert _wait_for(lambda: "model failed" in p.w.message)
    assert "RuntimeError: out of memory" in p.w.message
    record = p.msg(type="fetch", start=0, count=1)["records"][0]
    assert record["suggestion_state"] == "error" and "out of memory" in record["error"]
    assert "out of memory" in small_df.loc["r0", "llm_error"]
    p.decide("label", "Business")
    assert small_df.loc["r0", "label"] == "Business" and p.w.position == 1


def test_a_million_rows_open_without_per_row_work(task):
    n = 1_000_000
    df = pd.DataFrame({"text": np.full(n, "x", dtype=object)})
    p = Panel(df, task, annotator="ana")
    assert p.w.total == n
    p.decide("label", "World")
    assert p.msg(type="fetch", start=n - 2, count=5)["records"][-1]["key"] == str(n - 1)
    assert df["label"].notna().sum() == 1


def test_messages_from_another_thread_reach_the_store(small_df, task, tmp_path):
    # ipykernel handles widget messages on another thread than the cell that built the widget
    p = Panel(small_df, task, store=tmp_path / "l.db", annotator="ana")
    errors = []
    thread = threading.Thread(target=lambda: errors.append(p.decide("label", "World")))
    thread.start()
    thread.join(10)
    assert errors[0]["type"] == "records"
    assert jl.Store(tmp_path / "l.db", task=task).state()["label"].tolist() == ["World"]


def test_python_side_decide_and_undo_update_the_front_end(small_df, task):
    p = Panel(small_df, task, annotator="ana")
    assert p.w.decide("Sports") == "r0"
    pushed = p.sent[-1]
    assert pushed["position"] == 1 and pushed["records"][0] == {**pushed["records"][0], "key": "r0", "label": "Sports"}
    assert p.w.current == "r1"
    assert p.w.undo() == "r0"
    assert p.sent[-1]["records"][0]["label"] is None and p.w.current == "r0"


def test_live_span_suggestions(task):
    from jlabel.llm.base import SpanResult

    class SpanLLM:
        id = "spans@sha256:1"

        def spans(self, task, texts, *, examples=()):
            at = texts[0].find("Acme")
            return [SpanResult(spans=[{"start": at, "end": at + 4, "label": "ORG", "confidence": 0.8}])]

    task = jl.Task(["PER", "ORG"], kind="spans")
    df = pd.DataFrame({"text": ["Ana joined Acme."]})
    p = Panel(df, task, annotator="ana", llm=SpanLLM())
    assert _wait_for(lambda: not _missing_cell(df.loc[0, "llm_label"]))
    assert df.loc[0, "llm_label"] == [{"start": 11, "end": 15, "label": "ORG"}]
    p.decide("confirm", [{"start": 11, "end": 15, "label": "ORG"}])
    assert df.loc[0, "label_source"] == "llm_accepted"


def test_suggested_spans_with_confidences_are_accepted_as_spans():
    task = jl.Task(["PER", "ORG"], kind="spans")
    df = pd.DataFrame({"text": ["Ana joined Acme.", "Ann joined Acme."]})
    jl.frame.ensure_columns(df, task)
    suggested = [{"start": 11, "end": 15, "label": "ORG", "confidence": 0.9}, {"start": 0, "end": 3, "label": "PER"}]
    df["llm_label"] = pd.Series([suggested, suggested], dtype=object)  # both texts: PER at 0..3, ORG at 11..15
    p = Panel(df, task, annotator="ana")
    p.decide("accept")
    p.decide("confirm", [{"start": 0, "end": 3, "label": "PER"}, {"start": 11, "end": 15, "label": "ORG"}])
    assert df["label_source"].tolist() == ["llm_accepted", "llm_accepted"]
    assert df["label"].iloc[0] == [{"start": 0, "end": 3, "label": "PER"}, {"start": 11, "end": 15, "label": "ORG"}]


def _missing_cell(value) -> bool:
    return value is None or (not isinstance(value, list) and pd.isna(value))


@pytest.mark.model
def test_live_suggestion_from_the_embedded_model(task, embedded_llm):
    llm = embedded_llm
    df = pd.DataFrame({"text": ["The striker scored twice in the cup final.", "Shares fell as the bank cut rates."]})
    p = Panel(df, task, annotator="ana", llm=llm)
    assert p.msg(type="fetch", start=0, count=1)["records"][0]["suggestion_state"] in ("coming", "ready")
    assert _wait_for(lambda: df["llm_label"].notna().all(), timeout=120)
    assert np.allclose(jl.probs(df, task).sum(axis=1), 1)
    assert df["llm_model"].iloc[0] == llm.id and df["llm_prompt"].notna().all()
    record = p.msg(type="fetch", start=0, count=1)["records"][0]
    assert record["suggestion_state"] == "ready" and record["suggestion"]["label"] == df["llm_label"].iloc[0]
    p.decide("accept")
    event = p.w.store.events(actions=["accept"]).iloc[0]
    assert event["model"] == llm.id and event["suggestion"] == df["llm_label"].iloc[0]
    p.w.close()  # stops the suggestion thread: the shared model is idle for the next test


def test_spans_past_the_end_of_the_text_are_refused():
    task = jl.Task(["PER", "ORG"], kind="spans")
    df = pd.DataFrame({"text": ["Bo left.", "Ana"]})
    p = Panel(df, task, annotator="ana")
    reply = p.decide("confirm", [{"start": 0, "end": 9, "label": "PER"}])
    assert reply["type"] == "error" and "ends past the end of record '0'" in reply["error"]
    assert "8 characters" in reply["error"]
    assert p.w.position == 0 and _missing_cell(df.loc[0, "label"]) and p.w.store.events().empty
    p.decide("confirm", [{"start": 0, "end": 8, "label": "PER"}])  # the whole text is fine
    assert df.loc[0, "label"] == [{"start": 0, "end": 8, "label": "PER"}]


def test_a_refused_undo_can_be_tried_again(small_df, task, tmp_path):
    import sqlite3

    p = Panel(small_df, task, store=tmp_path / "l.db", annotator="ana")
    p.decide("label", "World")
    real = p.w.store.record

    def locked_once(*args, **kwargs):
        p.w.store.record = real
        raise sqlite3.OperationalError("database is locked")

    p.w.store.record = locked_once
    first = p.msg(type="undo")
    assert first["type"] == "error" and "locked" in first["error"]
    assert small_df.loc["r0", "label"] == "World" and p.w.position == 1  # nothing changed
    assert p.msg(type="undo")["type"] == "records"
    assert pd.isna(small_df.loc["r0", "label"]) and p.w.position == 0
    assert p.w.store.state()["label"].isna().all()


def test_two_panels_on_one_store_do_not_undo_each_others_decisions(small_df, task, tmp_path):
    # e.g. the panel's cell run twice: both panels show r0 to the same annotator
    a = Panel(small_df, task, store=tmp_path / "l.db", annotator="ana")
    b = Panel(small_df, task, store=tmp_path / "l.db", annotator="ana")
    a.decide("label", "World")
    b.decide("label", "Sports")
    refused = a.msg(type="undo")  # it would pop b's Sports (the store's stack), not a's World
    assert refused["type"] == "error" and "decided again as ana" in refused["error"]
    assert small_df.loc["r0", "label"] == "Sports" and b.w.store.state()["label"].tolist() == ["Sports"]
    assert b.msg(type="undo")["type"] == "records"  # b's own: back to a's World
    assert small_df.loc["r0", "label"] == "World" and b.w.store.state()["label"].tolist() == ["World"]
    assert a.msg(type="undo")["type"] == "records"  # now a's decision is the one on top
    assert pd.isna(small_df.loc["r0", "label"]) and a.w.store.state()["label"].isna().all()


def test_a_second_annotator_starts_at_the_first_record_of_their_queue_they_have_not_decided(small_df, task, tmp_path):
    # jl.assign gave r0 to both: ana labels it first, then bo opens his own queue on the same store
    ana = Panel(small_df.copy(), task, store=tmp_path / "team.db", annotator="ana", order=["r0", "r2"])
    ana.decide("label", "World")
    bo = Panel(small_df.copy(), task, store=tmp_path / "team.db", annotator="bo", order=["r0", "r1"])
    assert bo.w.position == 0 and bo.w.current == "r0"  # was r1: ana's label made r0 look done for bo
    bo.decide("label", "World")
    again = Panel(small_df.copy(), task, store=tmp_path / "team.db", annotator="bo", order=["r0", "r1"])
    assert again.w.current == "r1"  # a new session resumes after bo's own decisions


def test_suggestions_read_back_from_csv_take_live_ones_too(suggested, task, tmp_path):
    import io

    suggested.loc["r4", ["llm_probs", "llm_label", "llm_confidence"]] = None
    saved = suggested.assign(
        llm_probs=[None if pd.isna(v) is True else str(list(v)) for v in suggested["llm_probs"].tolist()]
    )
    df = pd.read_csv(io.StringIO(saved.to_csv()), index_col=0)  # suggestions as text, r4 without one
    llm = StandInLLM()
    p = Panel(df, task, annotator="ana", llm=llm, order=["r4", "r0"])
    assert _wait_for(lambda: not pd.isna(df.loc["r4", "llm_label"]))
    assert jl.probs(df, task).shape == (5, 4)  # text and a live list no longer mix in one column
    assert p.msg(type="fetch", start=0, count=2)["type"] == "records"
    assert p.decide("label", "World")["type"] == "records"  # was: no answer at all, and the page waited forever


def test_a_skip_by_another_annotator_does_not_undo_a_label_the_frame_brought(small_df, task, tmp_path):
    small_df["label"] = ["Business", None, None, None, None]  # r0: a gold label, not in the store
    bo = Panel(small_df.copy(), task, annotator="bo", store=tmp_path / "s.db", order=["r0", "r1"])
    bo.w.position = 0
    bo.decide("skip")
    ana = Panel(small_df.copy(), task, annotator="ana", store=tmp_path / "s.db", order=["r0", "r1"])
    assert ana.w.current == "r1" and ana.w.df.loc["r0", "label"] == "Business"  # was r0, its label cleared


def test_a_reject_without_the_right_label_leaves_the_record_unlabeled(suggested, task):
    p = Panel(suggested, task, annotator="ana")
    assert p.decide("reject")["type"] == "records"
    row = suggested.loc["r0"]
    assert all(pd.isna(row[c]) for c in ("label", "label_source", "annotator", "labeled_at"))
    state = p.w.store.state()
    assert state["status"].tolist() == ["reject"] and state["label_source"].isna().all()
    assert p.w.done == 0 and p.w.position == 1


def test_an_undone_decision_no_longer_teaches_the_model(task):
    llm = StandInLLM()
    df = pd.DataFrame({"text": [f"text {i}" for i in range(10)]})
    p = Panel(df, task, annotator="ana", llm=llm)
    assert _wait_for(lambda: df["llm_label"].notna().sum() >= 3)
    p.decide("label", "Sci/Tech")  # a slip
    p.msg(type="undo")
    assert p.w._examples == []
    p.w.position = 6  # the next calls
    assert _wait_for(lambda: sum(t in ("text 6", "text 7", "text 8") for t, _ in llm.calls) == 3)
    assert [n for t, n in llm.calls if t in ("text 6", "text 7", "text 8")] == [0, 0, 0]
    p.decide("label", "World")  # a kept decision still teaches
    assert len(p.w._examples) == 1


def test_a_frame_keyed_by_dates_comes_back_from_the_store(task, tmp_path):
    index = pd.date_range("2024-01-01", periods=3, freq="D")
    df = pd.DataFrame({"text": ["a", "b", "c"]}, index=index)
    p = Panel(df, task, store=tmp_path / "l.db", annotator="ana")
    assert p.msg(type="fetch", start=0, count=1)["records"][0]["key"] == "2024-01-01"
    p.decide("label", "World")
    assert p.w.store.events()["record"].tolist() == ["2024-01-01"]
    fresh = pd.DataFrame({"text": ["a", "b", "c"]}, index=index)
    again = Labeler(fresh, task, store=tmp_path / "l.db", annotator="ana")
    assert fresh["label"].tolist()[0] == "World" and again.total == 2
    assert Labeler(fresh, task, annotator="ana", order=["2024-01-02"]).current == index[1]


def test_id_with_a_repeated_index_writes_the_suggestion_to_its_own_row(task):
    df = pd.DataFrame(
        {"rid": ["a", "b", "c"], "text": ["striker", "bank", "chip"], "llm_probs": [None, None, None]}, index=[0, 0, 0]
    )
    llm = StandInLLM()
    Panel(df, task, annotator="ana", id="rid", llm=llm, order=["a"])
    assert _wait_for(lambda: df["llm_label"].notna().any())
    assert df["llm_probs"].iloc[0] == pytest.approx([0.1, 0.7, 0.1, 0.1])
    assert df["llm_probs"].iloc[1:].isna().all() and df["llm_label"].iloc[1:].isna().all()


def test_order_empty_or_naming_one_record_twice_is_explained(small_df, task):
    w = Labeler(small_df, task, annotator="ana", order=[])
    assert w.total == 0 and "order= is empty" in w.message and "Every record is labeled" not in w.message
    ints = pd.DataFrame({"text": ["a", "b", "c"]}, index=[1, 2, 3])
    with pytest.raises(ValueError, match=r"more than once: \[1\]"):
        Labeler(ints, task, annotator="ana", order=[1, "1", 2])


def test_a_store_opened_without_a_task_is_refused(small_df, task, tmp_path):
    store = jl.Store(tmp_path / "l.db", annotator="ana")
    with pytest.raises(ValueError, match=r"opened without a task: open it with jl\.Store\(.*task=task\)"):
        Labeler(small_df, task, store=store)
    assert "label" not in small_df.columns
    Panel(small_df, task, store=jl.Store(tmp_path / "l.db", task=task)).decide("label", "World")
    assert jl.Store(tmp_path / "l.db", task=task).state()["label"].tolist() == ["World"]


def test_the_model_failure_message_goes_once_the_model_works_again(small_df, task):
    llm = StandInLLM(fail_on=["central bank"])
    llm.release.clear()
    p = Panel(small_df, task, annotator="ana", llm=llm)
    llm.release.set()
    assert _wait_for(lambda: len(llm.calls) >= 3 and not p.w._pending)
    assert "model failed on record 'r0'" in p.w.message  # r0 is on screen: the notice stays
    p.decide("label", "Business")  # on to r1; r3 is prefetched and the model answers
    assert _wait_for(lambda: len(llm.calls) >= 4 and not p.w._pending)
    assert p.w.message == ""
    p.w.message = "a notice of the user's own"  # other notices stay
    p.decide("label", "Sports")
    assert _wait_for(lambda: len(llm.calls) >= 5 and not p.w._pending)
    assert p.w.message == "a notice of the user's own"


def test_a_gold_label_survives_a_relabel_undone_and_a_new_kernel(task, tmp_path):
    store = tmp_path / "labels.db"
    gold = lambda: pd.DataFrame({"text": ["a", "b"], "label": ["World", None]})  # noqa: E731
    w = Labeler(gold(), task, annotator="ana", order=[0, 1], store=store)
    w.position = 0
    w.decide("Sports")
    assert w.store.events()["meta"].iloc[-1]["before"] == "World"  # what the frame held, journalled
    w.undo()
    w.store.close()
    again = gold()
    Labeler(again, task, annotator="ana", store=store)  # a new kernel applies the store
    assert again["label"].tolist()[:1] == ["World"]  # was: erased to NA


def test_a_frame_reordered_under_the_panel_is_refused_not_mislabeled(small_df, task, tmp_path):
    p = Panel(small_df, task, annotator="ana", store=tmp_path / "labels.db")
    with warnings.catch_warnings():  # pandas 3.1 deprecates inplace; earlier ones, where users use it, do not
        warnings.simplefilter("ignore")
        small_df.sort_values("text", inplace=True)  # rows are found by position: they moved
    reply = p.decide(value="World")
    assert reply["type"] == "error" and "reordered" in reply["error"]
    assert small_df["label"].isna().all() and p.w.store.events().empty
    assert p.msg(type="fetch", start=0)["type"] == "error"


def test_a_key_pressed_before_the_suggestion_arrived_is_a_label_not_an_accept(suggested, task):
    p = Panel(suggested, task, annotator="ana")
    value = suggested["llm_label"].iloc[0]
    reply = p.msg(type="decide", position=0, action="label", value=value, shown=None)  # the screen said "coming"
    assert reply["type"] == "records"
    event = p.w.store.events().iloc[-1]
    assert event["action"] == "label" and event["meta"]["shown"] is False
    other = suggested["llm_label"].iloc[1]
    reply = p.msg(type="decide", position=1, action="accept", shown="World" if other != "World" else "Sports")
    assert reply["type"] == "error" and "changed while it was shown" in reply["error"]  # a refit changed it
    assert p.msg(type="decide", position=1, action="accept", shown=other)["type"] == "records"
    assert p.w.store.events()["action"].iloc[-1] == "accept"
    p.w.decide(action="accept")  # the Python API shows what the frame holds: its accept stays an accept
    assert p.w.store.events()["action"].iloc[-1] == "accept"


def test_a_refused_stale_decision_brings_the_record_as_it_is_now(suggested, task):
    p = Panel(suggested, task, annotator="ana")
    stale = "World" if suggested["llm_label"].iloc[0] != "World" else "Sports"
    reply = p.msg(type="decide", position=0, action="accept", shown=stale)
    assert reply["type"] == "error"
    pushed = [m for m in p.sent if m.get("type") == "records" and m.get("id") is None][-1]
    assert pushed["records"][0]["position"] == 0  # was: nothing, so the panel kept its stale copy for good
    assert pushed["records"][0]["suggestion"]["label"] == suggested["llm_label"].iloc[0]
    assert p.msg(type="decide", position=0, action="skip", shown=stale)["type"] == "records"  # a skip needs none


def test_undo_with_nothing_left_says_how_to_change_an_earlier_decision(small_df, task):
    w = Labeler(small_df, task, annotator="ana")
    with pytest.raises(ValueError, match=r"Nothing left to undo in this panel.*label it again"):
        w.undo()


def test_a_review_order_of_decided_records_opens_at_its_first(task, tmp_path):
    store = tmp_path / "labels.db"
    frame = lambda: pd.DataFrame({"text": ["a", "b"]}, index=["r1", "r2"])  # noqa: E731
    w = Labeler(frame(), task, annotator="ana", store=store)
    w.decide("World")
    w.decide("Sports")
    w.store.close()
    df = frame()
    review = Labeler(df, task, annotator="ana", store=store, order=list(df.index))
    assert review.position == 0 and review.current == "r1" and "review" in review.message
