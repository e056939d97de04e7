import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jlabel as jl
from jlabel.store import current_annotator, open_for, replay

LABELS = ["a", "b", "c"]


@pytest.fixture
def store(tmp_path):
    return jl.Store(tmp_path / "labels.db", task=jl.Task(LABELS), annotator="ana")


def test_record_is_durable_and_visible_to_a_second_connection(store):
    event = store.record("r1", "label", "a", duration_ms=840)
    other = jl.Store(store.path)
    events = other.events()
    assert events["id"].tolist() == [event]
    row = events.iloc[0]
    assert (row["record"], row["action"], row["value"], row["annotator"], row["duration_ms"]) == (
        "r1",
        "label",
        "a",
        "ana",
        840,
    )
    assert str(events["ts"].dtype) == "datetime64[ns, UTC]"
    assert other.task == store.task  # the store remembers its task


def test_wal_mode(store):
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_state_sources_and_undo(store):
    store.record(1, "label", "a")
    store.record(2, "accept", "b", suggestion="b", confidence=0.9)
    store.record(3, "edit", "c", suggestion="a", confidence=0.4)
    store.record(3, "undo")
    store.record(4, "skip")
    state = store.state()
    assert state.loc["1", "label"] == "a" and state.loc["1", "label_source"] == "human"
    assert state.loc["2", "label_source"] == "llm_accepted"
    assert pd.isna(state.loc["3", "label"]) and pd.isna(state.loc["3", "status"])  # undone: unlabeled again
    assert state.loc["4", "status"] == "skip" and pd.isna(state.loc["4", "label"])
    assert (store.events()["action"] == "undo").sum() == 1  # undo is an event, never a delete


def test_apply_writes_state_into_frame(store):
    df = pd.DataFrame({"text": list("wxyz")}, index=[1, 2, 3, 4])
    store.record(1, "label", "a")
    store.record(3, "accept", "c")
    store.record("not-in-frame", "label", "b")
    out = store.apply(df)
    assert out is df
    assert df.loc[1, "label"] == "a" and df.loc[3, "label"] == "c"
    assert df.loc[3, "label_source"] == "llm_accepted" and df.loc[1, "annotator"] == "ana"
    assert df["label"].isna().tolist() == [False, True, False, True]
    assert df.loc[1, "labeled_at"] <= pd.Timestamp.now(tz="UTC")


def test_apply_multi_and_spans(tmp_path):
    multi = jl.Store(tmp_path / "m.db", task=jl.Task(LABELS, kind="multi"))
    multi.record("x", "label", ["c", "a"])
    df = pd.DataFrame({"text": ["t", "u"]}, index=["x", "y"])
    multi.apply(df)
    assert df.loc["x", "label"] == ["a", "c"] and df.loc["y", "label"] is None
    spans = jl.Store(tmp_path / "s.db", task=jl.Task(["PER"], kind="spans"))
    spans.record("x", "label", [{"start": 0, "end": 3, "label": "PER"}])
    df = pd.DataFrame({"text": ["Ana runs"]}, index=["x"])
    spans.apply(df)
    assert df.loc["x", "label"] == [{"start": 0, "end": 3, "label": "PER"}]


def test_state_per_annotator(store):
    store.record("r", "label", "a", annotator="ana")
    store.record("r", "label", "b", annotator="ben")
    store.record("r", "undo", annotator="ana")
    per = store.state(per_annotator=True)
    by_annotator = per.loc["r"].set_index("annotator")
    assert pd.isna(by_annotator.loc["ana", "label"]) and pd.isna(by_annotator.loc["ana", "status"])
    assert by_annotator.loc["ben", "label"] == "b"
    assert store.state().loc["r", "label"] == "b"  # undo of ana's event leaves ben's


def test_bulk_suggest_events_do_not_change_state(store):
    n = store.record_many(
        pd.DataFrame({"record": ["r1", "r2"], "action": "suggest", "suggestion": ["a", "b"], "confidence": [0.6, 0.8]})
    )
    assert n == 2
    assert store.state().empty
    assert store.events()["suggestion"].tolist() == ["a", "b"]


# --- replay against a straightforward model -------------------------------------


def model_state(events):
    """The obvious reading of the rules: a stack per (record, annotator)."""
    stacks = {}
    for record, annotator, action, value in events:
        stack = stacks.setdefault((record, annotator), [])
        if action == "undo":
            if stack:
                stack.pop()
        else:
            stack.append((action, value))
    latest = {}
    for (record, annotator), stack in stacks.items():
        if not stack:  # every decision undone: the record is unlabeled again
            latest.setdefault(record, []).append((annotator, None, None))
            continue
        label = None
        for action, value in reversed(stack):
            if action != "skip":
                label = value
                break
        latest.setdefault(record, []).append((annotator, stack[-1][0], label))
    return latest


def model_record_labels(events):
    """A record's label: its latest surviving label-setting decision of any annotator (skips set nothing)."""
    stacks = {}
    for i, (record, annotator, action, value) in enumerate(events):
        stack = stacks.setdefault((record, annotator), [])
        if action == "undo":
            if stack:
                stack.pop()
        else:
            stack.append((i, action, value))
    setters = {}
    for (record, _), stack in stacks.items():
        setters.setdefault(record, [])
        setters[record] += [next(((i, v) for i, a, v in reversed(stack) if a != "skip"), (-1, None))]
    return {record: max(found)[1] for record, found in setters.items()}


event_strategy = st.lists(
    st.tuples(
        st.sampled_from(["r1", "r2", "r3"]),
        st.sampled_from(["ana", "ben"]),
        st.sampled_from(["label", "undo", "skip", "accept", "edit", "reject"]),
        st.sampled_from(LABELS),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(event_strategy)
def test_replay_matches_model(tmp_path_factory, raw):
    events = [(r, who, act, None if act in ("undo", "skip") else val) for r, who, act, val in raw]
    store = jl.Store(tmp_path_factory.mktemp("s") / "x.db", task=jl.Task(LABELS))
    if events:
        store.record_many([{"record": r, "annotator": who, "action": act, "value": val} for r, who, act, val in events])
    expected = model_state(events)
    per = store.state(per_annotator=True)
    got = {}
    for record, row in per.iterrows():
        label = row["label"] if isinstance(row["label"], str) else None
        status = row["status"] if isinstance(row["status"], str) else None
        got.setdefault(record, []).append((row["annotator"], status, label))
    assert {k: sorted(v) for k, v in got.items()} == {k: sorted(v) for k, v in expected.items()}
    # the record-level state is the most recent surviving decision of any annotator
    state = store.state()
    assert set(state.index) == set(expected)
    for record, label in model_record_labels(events).items():
        got_label = state.loc[record, "label"]
        assert got_label == label if label is not None else pd.isna(got_label), record


# --- crash and concurrency ----------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys, jlabel as jl
    store = jl.Store(sys.argv[1], task=jl.Task(["a", "b", "c"]), annotator=sys.argv[2])
    for i in range(int(sys.argv[3])):
        store.record(f"{sys.argv[2]}-{i}", "label", "abc"[i % 3])
        print(i, flush=True)
    """
)


def test_sigkill_loses_no_returned_decision(tmp_path):
    path = tmp_path / "crash.db"
    jl.Store(path, task=jl.Task(["a", "b", "c"]))
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), "w", "100000"], stdout=subprocess.PIPE, text=True
    )
    returned = []
    deadline = time.monotonic() + np.random.default_rng().uniform(0.5, 1.5)
    while time.monotonic() < deadline or len(returned) < 20:
        returned.append(int(child.stdout.readline()))
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stdout.close()
    recorded = set(jl.Store(path).events()["record"])
    assert {f"w-{i}" for i in returned} <= recorded
    assert len(recorded) < 100000


def test_four_processes_write_10000_events(tmp_path):
    path = tmp_path / "team.db"
    jl.Store(path, task=jl.Task(["a", "b", "c"]))
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"p{n}", "2500"], stdout=subprocess.DEVNULL)
        for n in range(4)
    ]
    assert [w.wait(timeout=600) for w in writers] == [0, 0, 0, 0]
    events = jl.Store(path).events()
    assert len(events) == 10_000
    assert events["record"].is_unique
    assert events["id"].is_unique
    assert events.groupby("annotator").size().to_dict() == {f"p{n}": 2500 for n in range(4)}


# --- bad input -------------------------------------------------------------------------


def test_refuses_another_tasks_store(tmp_path):
    path = tmp_path / "x.db"
    jl.Store(path, task=jl.Task(LABELS)).record("r", "label", "a")
    with pytest.raises(jl.StoreError, match="belongs to another task"):
        jl.Store(path, task=jl.Task(["yes", "no"]))
    with pytest.warns(UserWarning, match=r"1 event\(s\) of another task"):
        both = jl.Store(path, task=jl.Task(["yes", "no"]), allow_other_task=True)
    both.record("r", "label", "yes")
    assert both.state().loc["r", "label"] == "yes"
    assert jl.Store(path, task=jl.Task(LABELS)).state().loc["r", "label"] == "a"


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"label,text\na,b\n", "not a SQLite file"),
        (b"SQLite format 3\x00" + b"\x13" * 200, "cannot be read as a jlabel store"),
    ],
)
def test_corrupt_file_is_refused_and_untouched(tmp_path, content, match):
    path = tmp_path / "labels.db"
    path.write_bytes(content)
    with pytest.raises(jl.StoreError, match=match):
        jl.Store(path, task=jl.Task(LABELS))
    assert path.read_bytes() == content


def test_foreign_sqlite_database_is_refused_and_untouched(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER)")
    before = path.read_bytes()
    with pytest.raises(jl.StoreError, match=r"not a jlabel store .*customers"):
        jl.Store(path, task=jl.Task(LABELS))
    assert path.read_bytes() == before


def test_folder_path(tmp_path):
    with pytest.raises(jl.StoreError, match="is a folder"):
        jl.Store(tmp_path)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (("r", "label", "zzz"), ValueError, "Unknown label 'zzz'"),
        (("r", "delete"), ValueError, "Unknown action 'delete'"),
        (("r", "label"), ValueError, "needs the label as value"),
        (("r", "undo", "a"), ValueError, "takes no value"),
        ((None, "label", "a"), ValueError, "record must be the record's key"),
        (("r", "label", ["a"]), TypeError, "takes one label name"),
    ],
)
def test_bad_events_are_refused_and_lose_nothing(store, args, error, match):
    store.record("kept", "label", "b")
    with pytest.raises(error, match=match):
        store.record(*args)
    assert store.events()["record"].tolist() == ["kept"]


def test_bulk_write_with_one_bad_event_writes_nothing(store):
    with pytest.raises(ValueError, match="Unknown label"):
        store.record_many(
            [{"record": "r1", "action": "label", "value": "a"}, {"record": "r2", "action": "label", "value": "?"}]
        )
    assert store.events().empty


def test_annotator_identity(monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_USER", "hub-ana")
    assert current_annotator() == "hub-ana"
    assert current_annotator("ben") == "ben"
    monkeypatch.delenv("JUPYTERHUB_USER")
    assert current_annotator() == __import__("getpass").getuser()
    with pytest.raises(ValueError, match="non-empty string"):
        current_annotator("  ")


def test_store_without_task(tmp_path):
    store = jl.Store(tmp_path / "x.db")
    assert store.task is None
    with pytest.raises(jl.StoreError, match="has no task yet"):
        store.apply(pd.DataFrame({"text": ["a"]}))


def test_a_store_without_task_refuses_to_record(tmp_path):
    # its events would be journalled under no task: unchecked, and invisible to Store(path, task=task)
    path = tmp_path / "x.db"
    store = jl.Store(path, annotator="ana")
    with pytest.raises(jl.StoreError, match=r"has no task, so it cannot record.* jl\.Store\(.*, task=task\)"):
        store.record("r1", "label", "NotALabel")
    with pytest.raises(jl.StoreError, match="has no task, so it cannot record"):
        store.record_many([{"record": "r1", "action": "label", "value": "a"}])
    assert store.events(all_tasks=True).empty
    task = jl.Task(LABELS)
    jl.Store(path, task=task)  # bound by another kernel meanwhile: the open store records for that task
    store.record("r1", "label", "a")
    assert store.task == task and jl.Store(path, task=task).state()["label"].tolist() == ["a"]


def _taskless_events(path, values):
    """A store as jlabel versions that let a store without a task record left it."""
    jl.Store(path)
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO events (ts, record, task, annotator, action, value) VALUES (?, ?, '', 'ana', ?, ?)",
            [(1.0 + i, f"r{i}", action, value) for i, (action, value) in enumerate(values)],
        )


def test_events_journalled_before_a_task_are_checked_and_adopted(tmp_path):
    path = tmp_path / "old.db"
    _taskless_events(path, [("label", '"a"'), ("skip", None), ("undo", None), ("label", '"c"')])
    store = jl.Store(path, task=jl.Task(LABELS))
    assert store.events()["record"].tolist() == ["r0", "r1", "r2", "r3"]
    assert store.state()["label"].dropna().tolist() == ["a", "c"]
    bad = tmp_path / "bad.db"
    _taskless_events(bad, [("label", '"a"'), ("label", '"NotALabel"')])
    with pytest.raises(jl.StoreError, match=r"journalled before it had a task, and event 2 \(record 'r1', label"):
        jl.Store(bad, task=jl.Task(LABELS))
    store = jl.Store(bad)  # nothing was changed: still no task, the events still readable
    assert store.task is None and store.events()["task"].tolist() == ["", ""]


def test_task_type_checked(tmp_path):
    with pytest.raises(TypeError, match=r"must be a jl\.Task"):
        jl.Store(tmp_path / "x.db", task=["a", "b"])


def test_a_skip_leaves_another_annotators_label(store):
    store.record("r1", "label", "a", annotator="ana")
    store.record("r1", "skip", annotator="bob")
    store.record("r2", "label", "a", annotator="ana")
    store.record("r2", "label", "b", annotator="bob")
    store.record("r2", "skip", annotator="ana")  # ana's own skip keeps ana's label, but bob labeled later
    store.record("r3", "skip", annotator="ana")
    state = store.state()
    assert state.loc["r1", ["label", "annotator", "status"]].tolist() == ["a", "ana", "label"]
    assert state.loc["r2", ["label", "annotator"]].tolist() == ["b", "bob"]
    assert pd.isna(state.loc["r3", "label"]) and state.loc["r3", "status"] == "skip"
    df = pd.DataFrame({"text": ["x", "y", "z"]}, index=["r1", "r2", "r3"])
    store.apply(df)
    assert df["label"].tolist()[:2] == ["a", "b"] and pd.isna(df["label"].iloc[2])
    # a label the frame brought (gold, from a file) stays when the store only ever skipped the record, as
    # the panel leaves it (apply cleared it, so a reopened panel lost it)
    gold = pd.DataFrame({"text": ["z"], "label": ["a"]}, index=["r3"])
    store.apply(gold)
    assert gold["label"].iloc[0] == "a"


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_replay_reads_timestamps_of_any_unit(unit):
    ts = pd.Series(pd.to_datetime(["2024-05-01 10:00:00", "2024-05-01 10:00:07"], utc=True)).dt.as_unit(unit)
    events = pd.DataFrame(
        {"id": [1, 2], "ts": ts, "record": ["r1", "r2"], "annotator": "ana", "action": "label", "value": ['"a"', '"b"']}
    )
    state = replay(events)
    assert state["labeled_at"].tolist() == ts.tolist()


def test_store_in_a_missing_folder_says_so(tmp_path):
    with pytest.raises(jl.StoreError, match=r"folder .*missing does not exist"):
        jl.Store(tmp_path / "missing" / "labels.db", task=jl.Task(LABELS))
    assert not (tmp_path / "missing").exists()
    # a place no one may write to (root may write anywhere else, so /proc stands in): not "corrupt"
    with pytest.raises(jl.StoreError, match="cannot be opened for writing") as error:
        jl.Store("/proc/jlabel-labels.db", task=jl.Task(LABELS))
    assert "corrupt" not in str(error.value)


@pytest.mark.parametrize(
    "labeled_at",
    [
        pd.Series([np.nan, np.nan]),  # an empty column read from CSV
        pd.Series([None, None], dtype=object),  # ... from JSONL
        pd.Series(pd.to_datetime(["2024-01-01 10:00", None])),  # tz-naive: taken as UTC
        pd.Series(["2024-01-01T10:00:00.000000Z", None]),  # ISO text
    ],
)
def test_apply_takes_labeled_at_as_files_give_it(store, labeled_at):
    store.record("r2", "label", "b")
    df = pd.DataFrame({"text": ["x", "y"], "labeled_at": labeled_at.to_numpy()}, index=["r1", "r2"])
    store.apply(df)
    assert str(df["labeled_at"].dtype) == "datetime64[ns, UTC]"
    first = df["labeled_at"].iloc[0]
    assert pd.isna(first) if labeled_at.isna().all() else first == pd.Timestamp("2024-01-01 10:00", tz="UTC")
    assert df["label"].tolist()[1] == "b" and df["labeled_at"].iloc[1] > pd.Timestamp("2024-06-01", tz="UTC")


def test_apply_refuses_labeled_at_that_is_not_time(store):
    store.record("r1", "label", "a")
    df = pd.DataFrame({"text": ["x"], "labeled_at": [1.5]}, index=["r1"])
    with pytest.raises(ValueError, match=r"labeled_at column holds float64 values such as 1\.5"):
        store.apply(df)


def test_apply_leaves_a_record_whose_decisions_were_all_undone(store):
    # a reopened panel (kernel restart) must not erase a label the frame brought, e.g. gold from a file
    store.record("r1", "label", "b")
    store.record("r1", "undo")
    store.record("r2", "label", "b")
    store.record("r2", "undo")
    store.record("r2", "skip")  # a skip sets nothing: the frame's label stays
    when = pd.Timestamp("2024-01-01 10:00", tz="UTC")
    df = pd.DataFrame(
        {"text": ["x", "y"], "label": ["a", "c"], "label_source": "gold", "annotator": "lead", "labeled_at": when},
        index=["r1", "r2"],
    )
    store.apply(df)
    assert df["label"].tolist() == ["a", "c"] and df["label_source"].tolist() == ["gold", "gold"]
    assert df["annotator"].tolist() == ["lead", "lead"] and df["labeled_at"].tolist() == [when, when]


def test_apply_writes_a_label_that_a_later_skip_left_standing(store):
    store.record("r1", "accept", "b", annotator="ana")
    store.record("r1", "accept", "b", annotator="ben")
    store.record("r1", "skip", annotator="ben")  # ben looks again and skips: the label stands
    df = pd.DataFrame({"text": ["x"]}, index=["r1"])
    store.apply(df)
    assert df["label"].tolist() == ["b"]  # was NA: the skip, the record's latest decision, hid the label


def test_apply_restores_the_label_recorded_before_the_first_decision(store):
    # the panel journals the frame's label before a decision in meta["before"]; with it, apply undoes a
    # decision that a frame saved before the undo still holds
    store.record("r1", "label", "b", meta={"before": "a", "position": 0})
    store.record("r1", "label", "c", meta={"before": "b", "position": 0})
    store.record("r1", "undo")
    store.record("r1", "undo")
    store.record("r2", "label", "b", meta={"before": None})
    store.record("r2", "undo")
    store.record("r3", "label", "b", meta={"before": "a"})  # not undone: the decision wins
    store.record("r4", "label", "c", meta={"before": "a"})
    store.record("r4", "undo")
    store.record("r4", "skip", meta={"before": "a"})
    df = pd.DataFrame({"text": list("wxyz"), "label": ["c", "b", "c", "c"]}, index=["r1", "r2", "r3", "r4"])
    df["label_source"], df["annotator"], df["labeled_at"] = "human", "ana", pd.Timestamp.now(tz="UTC")
    store.apply(df)
    assert df["label"].tolist()[0::2] == ["a", "b"] and pd.isna(df.loc["r2", "label"])
    assert df.loc["r4", "label"] == "a"
    # the saved source, annotator and time described the undone decision, not the restored label
    restored = df.loc[["r1", "r2", "r4"]]
    assert restored[["label_source", "annotator", "labeled_at"]].isna().all().all()
    assert df.loc["r3", ["label_source", "annotator"]].tolist() == ["human", "ana"]


def test_apply_restores_a_multi_label_before_value(tmp_path):
    store = jl.Store(tmp_path / "m.db", task=jl.Task(LABELS, kind="multi"))
    store.record("x", "label", ["b"], meta={"before": ["a", "c"]})
    store.record("x", "undo")
    store.record("y", "label", ["b"], meta={"before": ["a"]})
    store.record("y", "undo")
    df = pd.DataFrame({"text": ["t", "u"], "label": [["b"], np.array(["a"])]}, index=["x", "y"])
    df["label_source"] = ["human", "gold"]
    store.apply(df)
    assert df.loc["x", "label"] == ["a", "c"] and pd.isna(df.loc["x", "label_source"])
    assert list(df.loc["y", "label"]) == ["a"] and df.loc["y", "label_source"] == "gold"  # already as before


def test_record_many_keeps_the_events_timestamps(tmp_path):
    task = jl.Task(LABELS)
    ana = jl.Store(tmp_path / "ana.db", task=task, annotator="ana")
    ana.record("r1", "label", "a", duration_ms=500, meta={"position": 0})
    ana.record("r2", "suggest", suggestion="b", confidence=0.7, model="m")
    ana.record("r1", "undo")
    with sqlite3.connect(ana.path) as conn:  # events made an hour apart
        conn.execute("UPDATE events SET ts = ts - 3600 * (3 - id)")
    team = jl.Store(tmp_path / "team.db", task=task, annotator="lead")
    assert team.record_many(ana.events()) == 3
    fields = [c for c in ana.events().columns if c != "id"]
    pd.testing.assert_frame_equal(team.events()[fields], ana.events()[fields])
    team.record_many(
        [
            {"record": "r3", "action": "skip", "ts": 1_700_000_000.5},  # epoch seconds, as the journal holds them
            {"record": "r4", "action": "skip", "ts": pd.Timestamp("2024-01-01 10:00")},  # tz-naive: UTC
            {"record": "r5", "action": "skip"},  # none given: now
        ]
    )
    ts = team.events().set_index("record")["ts"]
    assert ts["r3"] == pd.Timestamp(1_700_000_000.5, unit="s", tz="UTC")
    assert ts["r4"] == pd.Timestamp("2024-01-01 10:00", tz="UTC")
    assert ts["r5"] > pd.Timestamp.now(tz="UTC") - pd.Timedelta(minutes=1)


@pytest.mark.parametrize(
    ("column", "match"),
    [
        ({"id": [2, 1]}, r"ids .*not in increasing order"),
        ({"task": "0123456789abcdef"}, r"task 0123456789abcdef"),
        ({"ts": ["not a time", "2024-01-01"]}, r"ts .*'not a time'"),
    ],
)
def test_record_many_refuses_fields_it_cannot_keep(store, column, match):
    events = pd.DataFrame({"record": ["r1", "r2"], "action": "skip", **column})
    with pytest.raises(ValueError, match=match):
        store.record_many(events)
    assert store.events().empty


def test_another_task_error_says_what_differs(tmp_path):
    path = tmp_path / "x.db"
    jl.Store(path, task=jl.Task(LABELS, instructions="Sort it.")).record("r", "label", "a")
    reworded = jl.Task(LABELS, instructions="Sort the review.")
    with pytest.raises(jl.StoreError, match="belongs to another task") as error:
        jl.Store(path, task=reworded)
    message = str(error.value)
    assert "instructions" in message and "'Sort it.'" in message and "'Sort the review.'" in message
    assert "labels" not in message.split("differ")[0] and "allow_other_task=True" in message
    assert "1 event" in message  # what allow_other_task=True would not show
    with pytest.raises(ValueError, match=r"not this task .*what differs: instructions \(the store's: 'Sort it\.'"):
        open_for(jl.Store(path), reworded)  # an open store handed to the panel says it too
    with pytest.warns(UserWarning, match=r"1 event\(s\) of another task.* not shown"):
        store = jl.Store(path, task=reworded, allow_other_task=True)
    assert store.state().empty
