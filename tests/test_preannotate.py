"""jl.preannotate: columns, cache, resume, per-record errors, store events, calibration, Dask.

Most tests use a small keyword model that implements the backend protocol (so they run in
milliseconds and count model calls); the ``model`` tests run the real embedded model.
"""

from __future__ import annotations

import importlib
import socket

import numpy as np
import pandas as pd
import pytest

import jlabel as jl
from jlabel import calibration
from jlabel.frame import PROBS_DTYPE, STRING_DTYPE
from jlabel.llm.base import LLM, SpanResult
from jlabel.preannotate import ScoreCache, text_hashes

KEYWORDS = {"World": "ceasefire", "Sports": "striker", "Business": "bank", "Sci/Tech": "chip"}


def test_a_store_of_another_task_is_refused_before_the_model_runs(df, task, tmp_path):
    other = jl.Store(tmp_path / "other.db", task=jl.Task(["x", "y"]))
    model = KeywordLLM()
    with pytest.raises(ValueError, match="not this task"):  # was: after every record was scored
        jl.preannotate(df, task, model, cache=None, store=other, progress=False)
    with pytest.raises(jl.StoreError, match="another task"):
        jl.preannotate(df, task, model, cache=None, store=tmp_path / "other.db", progress=False)
    assert model.calls == [] and other.events().empty


def test_preannotate_scores_a_label_joining_alternatives_through_its_parts(df, task):
    seen = []

    class FormsLLM(KeywordLLM):
        def score_one(self, prompt, text):
            seen.append(prompt.forms("Sci/Tech"))
            return super().score_one(prompt, text)

    out = jl.preannotate(df, task, FormsLLM(), cache=None, progress=False)
    assert set(seen) == {("Sci/Tech", "Sci", "Tech")}
    assert out["llm_prompt"].iloc[0] == jl.prompts.default_prompt(task).hash
    seen.clear()
    plain = jl.prompts.default_prompt(task, split_labels=False)
    again = jl.preannotate(df, task, FormsLLM(), prompt=plain, cache=None, progress=False)
    assert set(seen) == {("Sci/Tech",)} and again["llm_prompt"].iloc[0] == plain.hash != out["llm_prompt"].iloc[0]


class KeywordLLM(LLM):
    """Scores by keyword and counts calls; 'boom' in a text makes the call fail."""

    def __init__(self, interrupt_after: int | None = None, bias: float = 0.0):
        self.calls: list[str] = []
        self.bias = bias
        self.interrupt_after = interrupt_after

    @property
    def id(self) -> str:
        return "keyword@sha256:" + "0" * 64

    def score_one(self, prompt, text):
        if self.interrupt_after is not None and len(self.calls) == self.interrupt_after:
            raise KeyboardInterrupt
        self.calls.append(text)
        if "boom" in text:
            raise RuntimeError("the model ran out of memory")
        row = np.array([3.0 if word in text else 1.0 for word in KEYWORDS.values()])
        row[0] += self.bias  # a bias towards the first label, whatever the text
        return row / row.sum(), ("cut to fit" if len(text) > 60 else None)

    def spans_one(self, prompt, text):
        start = text.find("Oslo")
        return SpanResult(
            [{"start": start, "end": start + 4, "label": "PLACE", "confidence": 0.9}] if start >= 0 else []
        )


@pytest.fixture
def df(small_df):
    return small_df


def test_fills_the_contract_columns(df, task, tmp_path):
    out = jl.preannotate(df, task, KeywordLLM(), cache=tmp_path / "c.sqlite", calibrate=None, progress=False)
    assert out is not df and "llm_label" not in df.columns
    assert out["llm_probs"].dtype == PROBS_DTYPE and out["llm_label"].dtype == STRING_DTYPE
    P = jl.probs(out, task)
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    assert out["llm_label"].tolist() == ["Business", "Sports", "World", "Sci/Tech", "World"]
    assert out["llm_label"].eq(np.array(task.labels)[P.argmax(axis=1)]).fillna(False).all()
    np.testing.assert_allclose(out["llm_confidence"], P.max(axis=1))
    assert set(out["llm_model"]) == {"keyword@sha256:" + "0" * 64}
    assert out["llm_prompt"].nunique() == 1 and len(out["llm_prompt"].iloc[0]) == 16


def test_failed_record_is_marked_and_the_run_goes_on(df, task):
    df = df.copy()
    df.loc["r2", "text"] = "boom goes the model"
    out = jl.preannotate(df, task, KeywordLLM(), cache=None, progress=False)
    assert out.loc["r2", "llm_error"] == "RuntimeError: the model ran out of memory"
    assert pd.isna(out.loc["r2", "llm_label"]) and np.isnan(out.loc["r2", "llm_confidence"])
    assert out.drop(index="r2")["llm_label"].notna().all()


def test_warnings_are_recorded_in_llm_error(task):
    frame = pd.DataFrame({"text": ["short bank", "a long text about the striker " * 3]})
    out = jl.preannotate(frame, task, KeywordLLM(), cache=None, progress=False)
    assert out["llm_error"].tolist()[1] == "cut to fit" and pd.isna(out["llm_error"].iloc[0])
    assert out["llm_label"].notna().all()


def test_cache_hits_skip_the_model_and_give_the_same_output(df, task, tmp_path):
    first, second = KeywordLLM(), KeywordLLM()
    a = jl.preannotate(df, task, first, cache=tmp_path / "c.sqlite", progress=False)
    b = jl.preannotate(df, task, second, cache=tmp_path / "c.sqlite", progress=False)
    # auto on 5 records: content-free correction; its input "" is the empty record's text, a cache hit
    assert first.calls == [*df["text"].tolist(), "N/A", "[MASK]"]
    assert second.calls == []
    pd.testing.assert_frame_equal(a, b)
    other_prompt = jl.prompts.default_prompt(task, template="News: {text}")
    jl.preannotate(df, task, second, prompt=other_prompt, cache=tmp_path / "c.sqlite", progress=False)
    assert second.calls == first.calls  # another prompt hash: not a cache hit


def test_a_new_scoring_version_scores_again_what_the_old_one_cached(df, task, tmp_path, monkeypatch):
    from jlabel.llm import base

    path = tmp_path / "c.sqlite"
    old = KeywordLLM()
    jl.preannotate(df, task, old, cache=path, progress=False)
    monkeypatch.setattr(base, "SCORING_VERSION", base.SCORING_VERSION + 1)  # a jlabel whose scoring changed
    new = KeywordLLM()
    jl.preannotate(df, task, new, cache=path, progress=False)
    assert new.calls == old.calls  # nothing scored the old way is reused
    again = KeywordLLM()
    jl.preannotate(df, task, again, cache=path, progress=False)
    assert again.calls == []  # the new scores are cached in turn
    cache = ScoreCache(path)
    cache.put_vectors("m", "p", ["x"], np.ones((1, 4)))
    cache.put_spans("m", "p", ["x"], [SpanResult([], [])])
    monkeypatch.setattr(base, "SCORING_VERSION", base.SCORING_VERSION + 1)
    assert cache.get_vectors("m", "p", ["x"]) is None and cache.vector_prompts("m") == []
    assert cache.get_spans("m", "p", ["x"]) == {}
    cache.close()


def test_a_record_cut_to_fit_is_scored_again_once_the_context_is_larger(df, task, tmp_path):
    class Cutting(KeywordLLM):  # cuts records over 40 characters to fit its context, as llama.cpp does
        def __init__(self, n_ctx):
            super().__init__()
            self.n_ctx = n_ctx

        @property
        def cuts_as(self):
            return f"to fit n_ctx={self.n_ctx}"

        def score_one(self, prompt, text):
            row, _ = super().score_one(prompt, text)
            cut = len(text) > 40 and self.n_ctx < 1000
            return row, f"text of 20 tokens cut to 8 to fit n_ctx={self.n_ctx}" if cut else None

    cache = tmp_path / "c.sqlite"
    small = jl.preannotate(df, task, Cutting(256), cache=cache, calibrate=None, progress=False)
    long = [t for t in df["text"] if len(t) > 40]
    assert small["llm_error"].notna().sum() == len(long) > 0
    same = Cutting(256)
    jl.preannotate(df, task, same, cache=cache, calibrate=None, progress=False)
    assert same.calls == []  # the same setting: every cached row is still right
    larger = Cutting(2048)  # what the warning advises
    out = jl.preannotate(df, task, larger, cache=cache, calibrate=None, progress=False)
    assert larger.calls == long and out["llm_error"].isna().all()  # was: the cut scores and their warnings
    other = Cutting(25)  # "n_ctx=25" is the start of "n_ctx=256": still another setting
    jl.preannotate(df, task, other, cache=tmp_path / "d.sqlite", calibrate=None, progress=False)
    jl.preannotate(df, task, Cutting(256), cache=tmp_path / "d.sqlite", calibrate=None, progress=False)
    again = Cutting(25)
    jl.preannotate(df, task, again, cache=tmp_path / "d.sqlite", calibrate=None, progress=False)
    assert again.calls == long


def test_content_free_inputs_are_scored_only_where_the_correction_uses_them(df, task):
    class NoAnswerToNothing(KeywordLLM):  # a backend that fails on the content-free inputs
        def score_one(self, prompt, text):
            if text in calibration.CONTENT_FREE and text:
                raise ValueError("no answer among the model's top tokens")
            return super().score_one(prompt, text)

    many = pd.DataFrame({"text": [f"record {i} about the bank" for i in range(40)]})  # 10 per label: batch mean
    llm = NoAnswerToNothing()
    out = jl.preannotate(many, task, llm, cache=None, progress=False)
    assert out["llm_probs"].notna().all() and len(llm.calls) == 40  # none spent on inputs it would not use
    with pytest.warns(UserWarning, match="uses the batch mean instead"):
        few = jl.preannotate(df, task, NoAnswerToNothing(), cache=None, progress=False)
    assert few["llm_probs"].notna().all()  # was: RuntimeError after every record had been scored
    with pytest.raises(RuntimeError, match=r"content-free inputs .* failed"):
        jl.preannotate(df, task, NoAnswerToNothing(), cache=None, calibrate="content_free", progress=False)


def test_a_prompt_with_its_own_examples_keeps_them(df, task):
    from jlabel.prompts import default_prompt

    mine = default_prompt(task, examples=[("Rates rose at the central bank.", "Business")])
    labeled = df.assign(label=["Sports", None, None, None, None])  # "auto" would draw this one
    out = jl.preannotate(labeled, task, KeywordLLM(), prompt=mine, cache=None, progress=False)
    assert out["llm_prompt"].eq(mine.hash).fillna(False).all()  # was: the frame's label replaced them
    drawn = jl.preannotate(labeled, task, KeywordLLM(), cache=None, progress=False)
    assert not drawn["llm_prompt"].eq(mine.hash).fillna(False).any()


def test_learning_takes_the_keys_from_id_when_the_index_repeats(task):
    frame = pd.DataFrame({"text": [f"record {i} about the bank" for i in range(8)], "key": [f"k{i}" for i in range(8)]})
    frame.index = [0, 1, 2, 3] * 2  # two frames concatenated: the keys are in the id column
    frame["label"] = pd.Series(["Business", "Business", None, None] * 2, index=frame.index, dtype="string")
    for cascade in (False, True):
        out = jl.preannotate(
            frame, task, KeywordLLM(), id="key", learn=True, cascade=cascade, cache=None, progress=False
        )
        assert out["llm_probs"].notna().all()  # was: "the frame's index has 4 duplicate key(s)... pass id="


def test_resume_after_interruption_computes_only_the_rest(task, tmp_path):
    frame = pd.DataFrame({"text": [f"record {i} about the bank" for i in range(7)]})
    interrupted = KeywordLLM(interrupt_after=5)
    with pytest.raises(KeyboardInterrupt):
        jl.preannotate(frame, task, interrupted, batch=2, cache=tmp_path / "c.sqlite", progress=False)
    assert len(ScoreCache(tmp_path / "c.sqlite")) == 4  # two whole batches reached the cache
    resumed = KeywordLLM()
    out = jl.preannotate(frame, task, resumed, batch=2, cache=tmp_path / "c.sqlite", progress=False)
    assert resumed.calls == frame["text"].tolist()[4:] + list(calibration.CONTENT_FREE)
    full = jl.preannotate(frame, task, KeywordLLM(), cache=None, progress=False)
    pd.testing.assert_frame_equal(out, full)


def test_an_edited_text_is_scored_again_not_resumed_from_the_frame(df, task, tmp_path):
    first = jl.preannotate(df, task, KeywordLLM(), cache=tmp_path / "c.sqlite", calibrate=None, progress=False)
    edited = first.copy()
    edited.loc["r0", "text"] = "The striker scored in the match."  # was about the bank
    again = KeywordLLM()
    out = jl.preannotate(edited, task, again, cache=tmp_path / "c.sqlite", calibrate=None, progress=False)
    assert again.calls == ["The striker scored in the match."]  # was: none, the old suggestion kept
    assert out.loc["r0", "llm_label"] == "Sports" and first.loc["r0", "llm_label"] == "Business"


def test_a_text_with_half_an_emoji_does_not_stop_the_run(task, tmp_path, monkeypatch):
    frame = pd.DataFrame({"text": pd.Series(["the bank", "great striker \ud83d"], dtype=object)})  # a lone surrogate
    out = jl.preannotate(frame, task, KeywordLLM(), cache=tmp_path / "c.sqlite", calibrate=None, progress=False)
    assert out["llm_label"].tolist() == ["Business", "Sports"]  # was: UnicodeEncodeError for the whole run
    monkeypatch.setenv("HOME", str(tmp_path))
    assert ScoreCache("~/cache/s.sqlite").path == str(tmp_path / "cache" / "s.sqlite")  # was a folder named ~


def test_resume_from_the_frame_without_a_cache(df, task):
    model = KeywordLLM()
    df = pd.concat(
        [df, pd.DataFrame({"text": ["a record about the bank, long enough to be cut to fit " * 2]}, index=["r5"])]
    )
    first = jl.preannotate(df, task, model, cache=None, calibrate=None, progress=False)
    grown = pd.concat([first, pd.DataFrame({"text": ["new bank record"]}, index=["r9"])])
    again = KeywordLLM()
    out = jl.preannotate(grown, task, again, cache=None, calibrate=None, progress=False)
    assert again.calls == ["new bank record"]
    assert out.loc["r9", "llm_label"] == "Business"
    assert out["llm_error"].iloc[:6].tolist() == first["llm_error"].tolist()  # the kept rows' warnings too
    assert first.loc["r5", "llm_error"] == "cut to fit"
    learned = grown.assign(llm_source="head")  # a learned suggestion is not the model's raw score
    again = KeywordLLM()
    jl.preannotate(learned, task, again, cache=None, calibrate=None, progress=False)
    assert len(again.calls) == len(grown)
    again = KeywordLLM()
    jl.preannotate(grown, task, again, cache=None, calibrate=None, resume=False, progress=False)
    assert len(again.calls) == len(grown)


def test_calibration_removes_the_label_bias(task):
    frame = pd.DataFrame({"text": ["plain"] * 4 + ["bank"] * 4 + ["striker"] * 4 + ["chip"] * 4})
    biased = KeywordLLM(bias=2.5)
    raw = jl.probs(jl.preannotate(frame, task, biased, cache=None, calibrate=None, progress=False), task)
    batch = jl.probs(jl.preannotate(frame, task, biased, cache=None, calibrate="batch", progress=False), task)
    np.testing.assert_allclose(batch, calibration.rescale(raw, raw.mean(axis=0)))
    assert (raw.argmax(axis=1) == 0).all()  # raw, World wins whatever the text
    assert (batch.argmax(axis=1)[4:] == np.repeat([2, 1, 3], 4)).all()
    free = jl.probs(jl.preannotate(frame, task, biased, cache=None, calibrate="content_free", progress=False), task)
    np.testing.assert_allclose(free.sum(axis=1), 1.0)
    assert free[0, 0] < raw[0, 0]  # the content-free prior favours World, so World is scaled down
    fitted = calibration.fit(raw, np.repeat([0, 2, 1, 3], 4))
    out = jl.preannotate(frame, task, biased, cache=None, calibrate=fitted, progress=False)
    np.testing.assert_allclose(jl.probs(out, task), fitted.apply(raw))
    with pytest.raises(ValueError, match="calibrate must be one of"):
        jl.preannotate(frame, task, KeywordLLM(), calibrate="mean", progress=False)


def test_auto_calibration_needs_enough_records_for_a_batch_mean(task):
    small = pd.DataFrame({"text": ["plain", "bank", "striker", "chip"]})
    large = pd.DataFrame({"text": ["plain", "bank", "striker", "chip"] * 10})
    for frame, same_as in ((small, "content_free"), (large, "batch")):
        auto = jl.preannotate(frame, task, KeywordLLM(bias=2.5), cache=None, progress=False)
        expected = jl.preannotate(frame, task, KeywordLLM(bias=2.5), cache=None, calibrate=same_as, progress=False)
        np.testing.assert_allclose(jl.probs(auto, task), jl.probs(expected, task))
    one = jl.preannotate(small.iloc[1:2], task, KeywordLLM(bias=2.5), cache=None, progress=False)
    assert jl.probs(one, task).std() > 0.01  # not the flat row a batch mean of one record gives


def test_suggest_events_go_to_the_store(df, task, tmp_path):
    store = jl.Store(tmp_path / "labels.db", task=task)
    df = df.copy()
    df.loc["r2", "text"] = "boom"
    out = jl.preannotate(df, task, KeywordLLM(), cache=None, store=store, progress=False)
    events = store.events()
    assert (events["action"] == "suggest").all()
    assert events["record"].tolist() == ["r0", "r1", "r3", "r4"]
    assert events["suggestion"].tolist() == out.drop(index="r2")["llm_label"].tolist()
    np.testing.assert_allclose(events["confidence"], out.drop(index="r2")["llm_confidence"])
    assert set(events["model"]) == {out["llm_model"].iloc[0]} and set(events["prompt"]) == {out["llm_prompt"].iloc[0]}


def test_examples_auto_come_from_human_labels(df, task):
    labeled = df.assign(label=pd.Series(["Business", "Sports", None, None, None], index=df.index, dtype=STRING_DTYPE))
    zero = jl.preannotate(df, task, KeywordLLM(), cache=None, progress=False)
    auto = jl.preannotate(labeled, task, KeywordLLM(), cache=None, progress=False)
    none = jl.preannotate(labeled, task, KeywordLLM(), examples=None, cache=None, progress=False)
    assert auto["llm_prompt"].iloc[0] != zero["llm_prompt"].iloc[0] == none["llm_prompt"].iloc[0]


def test_multi_label_probabilities_are_per_label():
    task = jl.Task(list(KEYWORDS), kind="multi")
    frame = pd.DataFrame({"text": ["bank chip", "nothing"]})
    out = jl.preannotate(frame, task, KeywordLLM(), cache=None, progress=False, calibrate="batch")
    P = jl.probs(out, task)
    assert P.shape == (2, 4) and ((P >= 0) & (P <= 1)).all()
    assert isinstance(out["llm_label"].iloc[0], list)


def test_spans_are_written_as_lists():
    task = jl.Task(["PLACE"], kind="spans")
    frame = pd.DataFrame({"text": ["We met in Oslo.", "Nowhere."]})
    out = jl.preannotate(frame, task, KeywordLLM(), cache=None, progress=False)
    assert out["llm_label"].tolist() == [[{"start": 10, "end": 14, "label": "PLACE"}], []]


def test_span_suggest_events_carry_the_spans_and_their_confidence(tmp_path):
    task = jl.Task(["PLACE"], kind="spans")
    frame = pd.DataFrame({"text": ["We met in Oslo.", "Nowhere."]}, index=["a", "b"])
    with jl.Store(tmp_path / "labels.db", task=task) as store:
        out = jl.preannotate(frame, task, KeywordLLM(), cache=None, store=store, progress=False)
        events = store.events()
    assert events["record"].tolist() == ["a", "b"] and (events["action"] == "suggest").all()
    assert events["suggestion"].tolist() == out["llm_label"].tolist()
    assert events["confidence"].iloc[0] == pytest.approx(0.9) and pd.isna(events["confidence"].iloc[1])
    assert set(events["model"]) == {KeywordLLM().id} and set(events["prompt"]) == {out["llm_prompt"].iloc[0]}


def test_span_runs_are_cached_and_resume_where_they_stopped(tmp_path):
    class Counting(KeywordLLM):
        def spans_one(self, prompt, text):
            if self.interrupt_after is not None and len(self.calls) == self.interrupt_after:
                raise KeyboardInterrupt
            self.calls.append(text)
            return super().spans_one(prompt, text)

    task = jl.Task(["PLACE"], kind="spans")
    frame = pd.DataFrame({"text": [f"Day {i} in Oslo." for i in range(5)]})
    cache = tmp_path / "c.sqlite"
    with pytest.raises(KeyboardInterrupt):
        jl.preannotate(frame, task, Counting(interrupt_after=3), batch=2, cache=cache, progress=False)
    resumed = Counting()
    out = jl.preannotate(frame, task, resumed, batch=2, cache=cache, progress=False)
    assert resumed.calls == frame["text"].tolist()[2:]  # the first batch came from the cache (was: every record)
    again = Counting()
    assert jl.preannotate(frame, task, again, cache=cache, progress=False).equals(out) and again.calls == []
    more = Counting()
    more.max_spans = 20  # another setting makes other spans: not served from the first run's cache
    jl.preannotate(frame, task, more, cache=cache, progress=False)
    assert more.calls == frame["text"].tolist()
    assert out["llm_label"].map(len).tolist() == [1] * 5 and out["llm_confidence"].notna().all()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"batch": 0}, ValueError, "batch must be a positive integer, got 0"),
        ({"examples": "all"}, ValueError, "examples must be 'auto'"),
        ({"cache": 3}, TypeError, "cache must be True, a file path"),
    ],
)
def test_bad_options(df, task, kwargs, error, match):
    with pytest.raises(error, match=match):
        jl.preannotate(df, task, KeywordLLM(), progress=False, **kwargs)


def test_bad_inputs(df, task):
    with pytest.raises(TypeError, match=r"task must be a jl\.Task"):
        jl.preannotate(df, ["World"], KeywordLLM())
    with pytest.raises(TypeError, match="llm must be a model"):
        jl.preannotate(df, task, 42)
    with pytest.raises(KeyError, match="'body'"):
        jl.preannotate(df, jl.Task(list(KEYWORDS), text="body"), KeywordLLM())
    with pytest.raises(ValueError, match="duplicate key"):
        jl.preannotate(pd.DataFrame({"text": ["a", "b"]}, index=["x", "x"]), task, KeywordLLM())


def test_text_hashes_are_stable_and_distinct():
    hashes = text_hashes(pd.Series(["a", "b", "a", ""]))
    assert hashes[0] == hashes[2] != hashes[1] and len(set(hashes)) == 3
    assert hashes[0] == text_hashes(pd.Series(["a"]))[0] and len(hashes[0]) == 16


# --- the real embedded model -------------------------------------------------------------


@pytest.mark.model
def test_full_run_opens_no_socket_to_a_non_loopback_address(embedded_llm, df, task, tmp_path, monkeypatch):
    connects = []
    real_connect = socket.socket.connect

    def spy(self, address):
        connects.append(address)
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", spy)
    monkeypatch.setattr(socket.socket, "connect_ex", spy)
    store = jl.Store(tmp_path / "labels.db", task=task)
    out = jl.preannotate(df, task, None, cache=tmp_path / "c.sqlite", store=store, progress=True)
    assert out["llm_label"].notna().all() and len(store.events()) == len(df)
    # the spy sees connections: a loopback one made here is recorded
    with socket.socket() as server, socket.socket() as client:
        server.bind(("127.0.0.1", 0))
        server.listen()
        client.connect(server.getsockname())
    hosts = [a[0] for a in connects if isinstance(a, tuple)]
    assert hosts[-1] == "127.0.0.1"
    assert all(h in ("127.0.0.1", "::1", "localhost") for h in hosts), hosts


@pytest.mark.model
def test_dask_dataframe_on_a_local_cluster(embedded_llm, task, small_df):
    dd = pytest.importorskip("dask.dataframe")
    distributed = pytest.importorskip("distributed")
    frame = small_df.iloc[:4]
    expected = jl.preannotate(frame, task, None, cache=None, calibrate="content_free", progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            ddf = dd.from_pandas(frame, npartitions=4)
            result = jl.preannotate(ddf, task, None, cache=None, calibrate="content_free").compute()
            loaded = client.run(lambda: len(importlib.import_module("jlabel.preannotate")._WORKER_MODELS))
    assert sorted(loaded.values()) == [1, 1]  # each worker loaded the model once
    assert result["llm_label"].tolist() == expected["llm_label"].tolist()
    np.testing.assert_allclose(jl.probs(result, task), jl.probs(expected, task), atol=1e-6)
    with pytest.raises(ValueError, match="calibrate='batch' needs every record"):
        jl.preannotate(dd.from_pandas(frame, npartitions=2), task, None, calibrate="batch")
    with pytest.raises(ValueError, match="store= is not written from Dask workers"):  # was silently ignored
        jl.preannotate(dd.from_pandas(frame, npartitions=2), task, None, store=jl.Store(":memory:", task=task))
    mine = jl.llm(None, max_spans=3, max_span_tokens=128)  # a worker loads the model with the same options
    assert jl.llm(mine.spec[0], **mine.spec[1]).spec == mine.spec


def test_an_ollama_backend_gives_dask_workers_its_host():
    from jlabel.llm.ollama import OllamaLLM

    backend = OllamaLLM.__new__(OllamaLLM)  # no server here: the spec is set from the arguments alone
    with pytest.raises(Exception):  # noqa: B017 - it stops at the first request to the (absent) server
        OllamaLLM.__init__(backend, "m", host="http://127.0.0.1:9", num_ctx=4096, timeout=1)
    assert backend.spec == (
        "ollama:m",
        {"host": "http://127.0.0.1:9", "num_ctx": 4096, "max_chars": None, "max_spans": 16, "seed": 0, "timeout": 1},
    )
