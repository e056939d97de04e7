"""jl.Assistant: suggestions that learn from the human labels (synthetic data, no model except one test)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

import jlabel as jl
from jlabel.frame import STRING_DTYPE
from jlabel.learn import Assistant, _Ridge, impute_vectors, text_features, vector_features
from jlabel.llm.base import LLM
from tests.test_preannotate import KeywordLLM

LABELS = ["a", "b", "c", "d"]
WORDS = {label: [f"{label}{i}" for i in range(12)] for label in LABELS}


def synthetic(n: int, *, seed: int = 0, text_signal: bool = True, llm_signal: bool = True, labeled: int | None = None):
    """Records whose text names their label's words (or random words) and LLM probabilities that
    favour the true label (or are random)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(LABELS), n)
    vocab = [w for words in WORDS.values() for w in words]
    texts = []
    for label in y:
        own = WORDS[LABELS[label]] if text_signal else vocab
        words = list(rng.choice(own, 3)) + list(rng.choice(vocab, 4))
        texts.append(" ".join(rng.permutation(words)))
    if llm_signal:  # right 60 % of the time, with some confidence
        noisy = np.where(rng.random(n) < 0.6, y, rng.integers(0, len(LABELS), n))
        logits = rng.normal(0, 0.5, (n, len(LABELS))) + 1.2 * np.eye(len(LABELS))[noisy]
    else:
        logits = rng.normal(0, 1.0, (n, len(LABELS)))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    task = jl.Task(LABELS)
    df = jl.set_suggestions(pd.DataFrame({"text": texts}), task, p, model="m@sha256:0", source="zero-shot")
    truth = np.asarray(LABELS, dtype=object)[y]
    label = pd.Series(pd.NA, index=df.index, dtype=STRING_DTYPE)
    if labeled:
        label.iloc[:labeled] = truth[:labeled]
    df["label"] = label
    return df, task, y


def wait_until(condition, *, timeout: float = 60, step: float = 0.05) -> None:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass (the assertion after the wait says which)."""
    deadline = time.time() + timeout
    while time.time() < deadline and not condition():
        time.sleep(step)


def quiet_panel(frame, task, **options):
    """A panel for annotator "ana" whose messages to the (absent) front end go nowhere."""
    w = jl.Labeler(frame, task, annotator="ana", **options)
    w.send = lambda content, buffers=None: None
    return w


def accuracy(p, y):
    return float((p.argmax(axis=1) == y).mean())


@pytest.mark.parametrize("noisy", ["llm", "text"])
def test_never_below_the_zero_shot_llm_when_one_source_is_noise(noisy):
    for seed in range(3):
        df, task, y = synthetic(600, seed=seed, text_signal=noisy != "text", llm_signal=noisy != "llm", labeled=200)
        a = Assistant(df, task).fit()
        rows, oof, _ = a.oof()
        zero_shot = jl.probs(df, task)
        assert accuracy(oof, y[rows]) >= accuracy(zero_shot[rows], y[rows]) - 0.02
        held_out = np.arange(200, 600)
        learned, _ = a.predict(held_out)
        assert accuracy(learned, y[held_out]) >= accuracy(zero_shot[held_out], y[held_out]) - 0.02
        if noisy == "llm":  # the text carries the label: the head takes over
            assert a.source in ("head", "combined")
            assert accuracy(learned, y[held_out]) > accuracy(zero_shot[held_out], y[held_out]) + 0.2


def test_out_of_fold_probabilities_do_not_see_their_own_label():
    # every record has a word of its own that appears nowhere else: a model that saw the record's label
    # would read the label off that word; out of fold it must be no better than chance
    # (under 50 records every word is a feature, even one seen once)
    rng = np.random.default_rng(1)
    n = 48
    y = rng.integers(0, 4, n)
    task = jl.Task(LABELS)
    df = pd.DataFrame({"text": [f"id{i}x id{i}y" for i in range(n)]})
    df["label"] = pd.Series(np.asarray(LABELS, dtype=object)[y], dtype=STRING_DTYPE)
    a = Assistant(df, task, probs=None).fit()
    rows, oof, source = a.oof()
    assert len(rows) == n and set(source) == {"head"}
    assert accuracy(oof, y) <= 0.25 + 2 * np.sqrt(0.25 * 0.75 / n)
    # the feature does identify the label: the head fitted on every label reads it off its own records
    assert accuracy(a._ridge.scores(rows), y) > 0.9


def test_leave_one_out_scores_equal_refits_without_the_record():
    df, _, y = synthetic(40, seed=3)
    X = text_features(df["text"])
    rows = np.arange(30)
    targets = np.eye(4)[y[rows]]
    ridge = _Ridge(X, rows, targets, 1.0)
    for i in (0, 7, 29):
        rest = np.delete(rows, i)
        alone = _Ridge(X, rest, np.delete(targets, i, axis=0), 1.0)
        np.testing.assert_allclose(ridge.loo[i], alone.scores(np.array([i]))[0], atol=1e-8)


def test_refits_are_deterministic_with_a_seed():
    df, task, _ = synthetic(300, seed=4, labeled=120)
    first = Assistant(df, task, seed=7).fit()
    second = Assistant(df.copy(), task, seed=7).fit()
    np.testing.assert_array_equal(first.probs()[0], second.probs()[0])
    pd.testing.assert_frame_equal(first.scores, second.scores)
    again = first.fit(select=True)  # refitting on the same labels gives the same model
    np.testing.assert_array_equal(again.probs()[0], second.probs()[0])


def test_incremental_refit_reuses_features_and_reselects_on_growth():
    df, task, y = synthetic(1500, seed=5, labeled=1000)
    df.loc[df.index[800:1000], "label"] = pd.NA
    a = Assistant(df, task).fit()
    assert a.selections == 1
    assert a.source != "zero-shot"
    df.loc[df.index[800:820], "label"] = np.asarray(LABELS, dtype=object)[y[800:820]]
    start = time.perf_counter()
    a.fit()  # 20 more labels (< 25 and < 1.25 x 800): no new selection, the head re-solved with every label
    a.predict(np.arange(1000, 1010))
    print(f"refit on 820 labels: {1000 * (time.perf_counter() - start):.0f} ms")
    assert a.selections == 1 and len(a._rows) == 820
    df.loc[df.index[820:1000], "label"] = np.asarray(LABELS, dtype=object)[y[820:1000]]
    a.fit()
    assert a.selections == 2


def test_suggestions_say_their_source_and_keep_the_model_digest():
    df, task, _ = synthetic(300, seed=6, labeled=100)
    out = Assistant(df, task).fit().suggest()
    assert out["llm_source"].dtype == STRING_DTYPE
    assert set(out["llm_source"].dropna()) <= set(jl.learn.SOURCES)
    assert out["llm_model"].eq("m@sha256:0").fillna(False).all()
    few = synthetic(300, seed=6, labeled=5)[0]  # too few labels: the LLM's own suggestions, temperature aside
    out = Assistant(few, task).fit().suggest()
    assert set(out["llm_source"]) == {"zero-shot"}
    assert out["llm_label"].eq(few["llm_label"]).fillna(False).all()


def test_multi_label_one_vs_rest():
    rng = np.random.default_rng(8)
    n = 400
    Y = rng.random((n, 3)) < 0.4
    names = ["x", "y", "z"]
    texts = [" ".join([f"{names[j]}{rng.integers(5)}" for j in range(3) if Y[i, j]] + ["the", "a"]) for i in range(n)]
    task = jl.Task(names, kind="multi")
    noise = rng.random((n, 3))  # the LLM knows nothing
    df = jl.set_suggestions(pd.DataFrame({"text": texts}), task, noise, model="m", source="zero-shot")
    df["label"] = pd.Series(
        [list(np.asarray(names)[row]) if i < 200 else None for i, row in enumerate(Y)], dtype=object
    )
    a = Assistant(df, task).fit()
    p, source = a.predict(np.arange(200, n))
    assert ((p > 0.5) == Y[200:]).mean() > 0.9 > ((noise[200:] > 0.5) == Y[200:]).mean()
    assert set(source) <= {"head", "combined"}
    assert a.scores["label"].nunique() == 3
    assert not a.self_train and a.self_training is None  # 200 labels, but self-training is single-label only


def test_preannotate_learns_from_the_frame_and_the_cascade_skips_sure_records(tmp_path):
    df, task, y = synthetic(350, seed=9, labeled=200, llm_signal=False)
    frame = df[["text", "label"]]
    llm = KeywordLLM()
    out = jl.preannotate(frame, task, llm, learn=True, cascade=True, cache=None, progress=False, calibrate=None)
    assert (out["llm_source"] == "cascade").sum() > 50
    assert len(llm.calls) < 350 - 50  # the skipped records cost no model call
    assert out["llm_model"].eq(llm.id).fillna(False).all()
    unlabeled = np.arange(200, 350)
    assert accuracy(jl.probs(out, task)[unlabeled], y[unlabeled]) > 0.8
    plain = jl.preannotate(frame, task, KeywordLLM(), cache=None, progress=False, calibrate=None)
    assert set(plain["llm_source"]) == {"zero-shot"}
    spans = jl.Task(["PLACE"], kind="spans")
    kept = jl.preannotate(pd.DataFrame({"text": ["in Oslo"]}), spans, llm, learn=True, progress=False)
    assert kept["llm_label"].iloc[0] == [{"start": 3, "end": 7, "label": "PLACE"}]


def test_queue_and_check_use_learned_out_of_fold_probabilities():
    df, task, y = synthetic(400, seed=10, labeled=200, llm_signal=False)
    wrong = 5
    flipped = df.copy()
    flipped.loc[flipped.index[wrong], "label"] = LABELS[(y[wrong] + 1) % 4]
    suspects = jl.check(flipped, task, learn=True, similar=False)
    assert str(wrong) in suspects.index[:5]
    order = jl.queue(flipped, task=task, learn=True, explore=0)
    assert len(order) == 200 and set(order) == set(flipped.index[200:])
    # ranked by the learned probabilities, least confident first (the LLM's own are noise here)
    learned = Assistant(flipped, task).fit(select=True).probs()[0].max(axis=1)
    confidence = learned[flipped.index.get_indexer(order)]
    assert confidence[:20].max() <= confidence[-20:].min()
    assert list(order) != list(jl.queue(flipped, explore=0))


class VectorLLM(LLM):
    """Scores are noise; the record vectors it reads in the same pass carry the label (a hidden lookup)."""

    def __init__(self, truth: dict[str, int]):
        self.truth, self.calls = truth, []

    @property
    def id(self) -> str:
        return "vectors@sha256:" + "1" * 64

    def score_one(self, prompt, text):
        return self.score_vector_one(prompt, text)[:2]

    def score_vector_one(self, prompt, text):
        self.calls.append(text)
        rng = np.random.default_rng(sum(map(ord, text)))
        vector = 2.0 * np.eye(8)[self.truth[text]] + rng.normal(0, 0.5, 8)
        return np.full(len(LABELS), 1 / len(LABELS)), None, vector

    def spans_one(self, prompt, text):
        raise NotImplementedError


def test_record_vectors_teach_the_head_what_the_words_do_not():
    df, task, y = synthetic(500, seed=21, labeled=200, text_signal=False, llm_signal=False)
    rng = np.random.default_rng(0)
    vectors = np.eye(8)[y] * 2.0 + rng.normal(0, 0.5, (500, 8))
    vectors[450:] = np.nan  # records the model never scored: the head reads their words alone
    test = np.arange(200, 450)
    words = Assistant(df, task).fit(select=True).predict(test)[0]
    both = Assistant(df, task, vectors=vectors).fit(select=True)
    assert accuracy(both.predict(test)[0], y[test]) > 0.9 > 0.5 > accuracy(words, y[test])
    assert both.source in {"head", "combined"}
    assert np.isfinite(both.predict(np.arange(450, 500))[0]).all()
    features = vector_features(vectors)
    np.testing.assert_allclose(np.linalg.norm(features[:450], axis=1), 1.0, rtol=1e-5)
    assert (features[450:] == 0).all()
    assert vector_features(np.full((3, 4), np.nan)) is None
    with pytest.raises(ValueError, match="vectors has 3 rows, the assistant was built on 500 records"):
        Assistant(df, task, vectors=np.ones((3, 8)))


def test_records_without_a_vector_are_suggested_by_their_words_alone():
    # the head leans on the vectors; read as a zero vector, a record without one lost 6 points here
    df, task, y = synthetic(600, seed=5, labeled=200)
    vectors = np.eye(8)[y] * 2.0 + np.random.default_rng(1).normal(0, 0.5, (600, 8))
    vectors[400:] = np.nan  # e.g. records the panel's model has not scored yet
    vectors[:20] = np.nan  # and labeled records pre-annotated without them
    having, lacking = np.arange(200, 400), np.arange(400, 600)
    both = Assistant(df, task, probs=None, vectors=vectors).fit(select=True)
    words = Assistant(df, task, probs=None).fit(select=True)
    np.testing.assert_array_equal(both.predict(lacking)[0], words.predict(lacking)[0])
    np.testing.assert_array_equal(both.probs()[0][lacking], words.probs()[0][lacking])
    rows, oof, _ = both.oof()  # jl.check's view of the labeled records without a vector: words alone too
    assert np.array_equal(rows, words.oof()[0])
    np.testing.assert_array_equal(oof[:20], words.oof()[1][:20])
    assert not np.array_equal(oof[20:], words.oof()[1][20:])
    assert accuracy(both.predict(lacking)[0], y[lacking]) > 0.88
    assert accuracy(both.predict(having)[0], y[having]) > 0.97 > accuracy(words.predict(having)[0], y[having])
    # the vectors of the other records arrive (the panel's live calls): all are read with vectors
    both.set_vector_rows(lacking, np.eye(8)[y[lacking]] * 2.0)
    assert accuracy(both.fit().predict(lacking)[0], y[lacking]) > 0.97


def test_vectors_missing_are_imputed_from_the_topics_of_the_records_that_have_one():
    rng = np.random.default_rng(3)
    topics = rng.normal(size=(300, 20))
    truth = topics @ rng.normal(size=(20, 8))
    truth /= np.linalg.norm(truth, axis=1, keepdims=True)
    missing = np.zeros(300, dtype=bool)
    missing[:40] = True
    features = np.where(missing[:, None], 0.0, truth)
    filled = impute_vectors(features, topics, missing)
    cosine = (filled[:40] * truth[:40]).sum(axis=1)
    assert cosine.min() > 0.95 and cosine.mean() > 0.99  # the truth is normalised, so only nearly linear
    np.testing.assert_allclose(np.linalg.norm(filled[:40], axis=1), 1.0)
    np.testing.assert_array_equal(filled[40:], truth[40:])
    assert (features[:40] == 0).all()  # the input is left as it was
    assert impute_vectors(truth, topics, np.zeros(300, dtype=bool)) is truth


def test_labeled_records_without_a_vector_train_the_head_with_one_imputed_from_their_words():
    df, task, y = synthetic(400, seed=6, labeled=200)
    vectors = np.eye(8)[y] * 2.0 + np.random.default_rng(2).normal(0, 0.5, (400, 8))
    vectors[:60] = np.nan  # labeled before the model scored them
    a = Assistant(df, task, probs=None, vectors=vectors)
    read = a.Z[:, -8:]  # the vector columns the head reads, after the latent topics
    assert (np.abs(read[:60]).sum(axis=1) > 0).all()
    # the words carry the label here, so the imputed vector points the way a real one of that label does
    real = read[60:200]
    centroids = np.stack([real[y[60:200] == c].mean(axis=0) for c in range(len(LABELS))])
    assert ((read[:60] @ centroids.T).argmax(axis=1) == y[:60]).mean() > 0.8


def test_vectors_arriving_for_the_labeled_records_make_the_learner_choose_again():
    df, task, y = synthetic(300, seed=7, labeled=100, text_signal=False, llm_signal=False)
    vectors = np.eye(8)[y] * 2.0 + np.random.default_rng(3).normal(0, 0.5, (300, 8))
    a = Assistant(df, task, probs=None, vectors=np.where(np.arange(300)[:, None] < 100, np.nan, vectors))
    a.fit(select=True)  # the labeled records have no vector yet: a head on noise, flattened by its temperature
    rest = np.arange(100, 300)
    assert accuracy(a.predict(rest)[0], y[rest]) < 0.5
    selections = a.selections
    a.set_vector_rows(np.arange(10), vectors[:10])
    a.fit()  # too few to matter: the choice stands
    assert a.selections == selections
    a.set_vector_rows(np.arange(100), vectors[:100])
    a.fit()
    assert a.selections == selections + 1
    assert accuracy(a.predict(rest)[0], y[rest]) > 0.9


def test_preannotate_learns_from_the_vectors_of_the_scoring_pass_and_caches_them(tmp_path, monkeypatch):
    from jlabel.preannotate import ScoreCache, cached_vectors, scores_and_vectors

    df, task, y = synthetic(400, seed=22, labeled=200, text_signal=False, llm_signal=False)
    frame = df[["text", "label"]]
    llm = VectorLLM(dict(zip(frame["text"], y)))
    cache = tmp_path / "c.sqlite"
    plain = jl.preannotate(frame, task, llm, cache=cache, progress=False, calibrate=None)
    assert len(llm.calls) == 400
    assert ScoreCache(cache).get_vectors(llm.id, plain["llm_prompt"].iloc[0], ["x"]) is None  # plain: scores only
    out = jl.preannotate(frame, task, llm, learn=True, cache=cache, progress=False, calibrate=None)
    assert len(llm.calls) == 800  # scored again once, for the vectors
    unlabeled = np.arange(200, 400)
    assert accuracy(jl.probs(out, task)[unlabeled], y[unlabeled]) > 0.9
    jl.preannotate(frame, task, llm, learn=True, cache=cache, progress=False, calibrate=None)
    raw, vectors = scores_and_vectors(frame, task, llm, cache=cache, progress=False)
    assert len(llm.calls) == 800  # both from the cache now
    np.testing.assert_allclose(raw, 1 / len(LABELS))
    assert vectors.shape == (400, 8) and vectors.dtype == np.float32
    expected = np.array([llm.score_vector_one(None, t)[2] for t in frame["text"][:5]])
    np.testing.assert_allclose(vectors[:5], expected, atol=1e-2)  # stored as float16
    cascaded = jl.preannotate(frame, task, llm, learn=True, cascade=True, cache=cache, progress=False, calibrate=None)
    assert cascaded["llm_probs"].notna().all()
    # the words are noise here: a record skipped on the words-only head would lose what the vectors know
    skipped = (cascaded["llm_source"] == "cascade").to_numpy()
    assert accuracy(jl.probs(cascaded, task)[unlabeled], y[unlabeled]) > 0.9
    assert skipped.sum() <= 10
    # the panel, queue and check find the vectors of the frame's suggestions in the (default) cache
    monkeypatch.setenv("JLABEL_CACHE", str(cache))
    np.testing.assert_array_equal(cached_vectors(out, task), vectors)
    assert cached_vectors(frame, task) is None  # no suggestions, nothing to look up
    order = jl.queue(out, task=task, learn=True, explore=0)
    learned = Assistant(out, task, vectors=vectors).fit(select=True).probs()[0].max(axis=1)
    confidence = learned[out.index.get_indexer(order)]
    assert confidence[:20].max() <= confidence[-20:].min()
    assert np.all(np.diff(confidence) >= -1e-9)  # least confident first by the probabilities that read the vectors


class RefusingLLM(VectorLLM):
    """Gives vectors until its first call for one, as an Ollama model the server will not embed with."""

    def __init__(self, truth: dict[str, int]):
        super().__init__(truth)
        self.refused = False

    @property
    def gives_vectors(self) -> bool:
        return not self.refused

    def score_one(self, prompt, text):
        return VectorLLM.score_vector_one(self, prompt, text)[:2]

    def score_vector_one(self, prompt, text):
        self.refused = True
        return (*self.score_one(prompt, text), None)


def test_a_model_that_gives_no_vectors_is_not_asked_again_for_records_whose_scores_are_cached(tmp_path):
    df, task, y = synthetic(120, seed=26, labeled=60, text_signal=False, llm_signal=False)
    frame = df[["text", "label"]]
    truth, cache = dict(zip(frame["text"], y)), tmp_path / "c.sqlite"
    first = RefusingLLM(truth)  # zero-shot, as learn=True prompts
    jl.preannotate(frame.iloc[:100], task, first, examples=None, cache=cache, progress=False, calibrate=None)
    # a new session: the model does not know yet that it gives none; it says so on its first record
    llm = RefusingLLM(truth)
    out = jl.preannotate(frame, task, llm, learn=True, cache=cache, progress=False, calibrate=None)
    assert out["llm_probs"].notna().all()
    assert llm.refused and len(llm.calls) == 1 + 20  # the first record, then only the 20 never scored (was 120)
    assert set(llm.calls[1:]) == set(frame["text"][100:])


def test_queue_learns_when_the_cache_holds_vectors_for_part_of_the_frame(tmp_path, monkeypatch):
    from jlabel.preannotate import cached_vectors

    df, task, y = synthetic(400, seed=24, labeled=200, text_signal=False, llm_signal=False)
    frame = df[["text", "label"]]
    llm = VectorLLM(dict(zip(frame["text"], y)))
    cache = tmp_path / "c.sqlite"
    monkeypatch.setenv("JLABEL_CACHE", str(cache))
    jl.preannotate(frame.iloc[:300], task, llm, learn=True, progress=False, calibrate=None)  # vectors for 300
    # 100 more records, pre-annotated without learning (zero-shot too, so the same prompt): scores only
    out = jl.preannotate(frame, task, llm, examples=None, progress=False, calibrate=None)
    assert len(llm.calls) == 400
    vectors = cached_vectors(out, task)
    assert np.isnan(vectors[300:]).all() and not np.isnan(vectors[:300]).any()
    order = out.index.get_indexer(jl.queue(out, task=task, learn=True, explore=0))
    assert sorted(order) == list(range(200, 400))
    # the words are noise: records read with a vector are sure, those without (words alone) are not, and come first
    assert set(order[:100]) == set(range(300, 400))
    learned = Assistant(out, task, vectors=vectors).fit(select=True)
    assert accuracy(learned.predict(np.arange(200, 300))[0], y[200:300]) > 0.9
    words = Assistant(out, task).fit(select=True)
    np.testing.assert_array_equal(learned.predict(np.arange(300, 400))[0], words.predict(np.arange(300, 400))[0])


def test_vectors_are_found_after_the_frame_is_pre_annotated_again_with_another_prompt(tmp_path, monkeypatch):
    from jlabel.preannotate import cached_vectors

    df, task, y = synthetic(120, seed=26, labeled=60, text_signal=False, llm_signal=False)
    frame = df[["text", "label"]]
    llm = VectorLLM(dict(zip(frame["text"], y)))
    monkeypatch.setenv("JLABEL_CACHE", str(tmp_path / "c.sqlite"))
    learned = jl.preannotate(frame.iloc[:100], task, llm, learn=True, progress=False, calibrate=None)
    vectors = cached_vectors(learned, task)
    again = jl.preannotate(frame, task, llm, progress=False, calibrate=None)  # few-shot: another prompt
    assert again["llm_prompt"].iloc[0] != learned["llm_prompt"].iloc[0]
    found = cached_vectors(again, task)
    np.testing.assert_array_equal(found[:100], vectors)
    assert np.isnan(found[100:]).all()
    # one prompt's vectors only: a second zero-shot run on a few records does not win over the first
    other = jl.Task(LABELS, instructions="Sort these.")
    jl.preannotate(frame.iloc[:5], other, llm, learn=True, progress=False, calibrate=None)
    np.testing.assert_array_equal(cached_vectors(again, task), found)


def test_the_panel_and_check_learn_with_the_cached_vectors(tmp_path, monkeypatch):
    df, task, y = synthetic(300, seed=23, text_signal=False, llm_signal=False)
    frame = df[["text"]]
    llm = VectorLLM(dict(zip(frame["text"], y)))
    cache = tmp_path / "c.sqlite"
    monkeypatch.setenv("JLABEL_CACHE", str(cache))
    with_labels = frame.assign(label=pd.Series(np.asarray(LABELS, dtype=object)[y], dtype=STRING_DTYPE))
    jl.preannotate(with_labels, task, llm, learn=True, progress=False, calibrate=None)  # leaves the vectors
    plain = jl.preannotate(frame, task, llm, progress=False, calibrate=None)  # the model's own (noise)
    # the panel: 60 decisions, then its background learner's suggestions come from the vectors
    w = quiet_panel(plain, task, learn=True)
    for i in range(60):
        w.decide(LABELS[y[i]])
    ahead = np.arange(60, 66)
    wait_until(lambda: plain["llm_source"].iloc[ahead].isin(["head", "combined"]).all())
    assert (jl.probs(plain, task)[ahead].argmax(axis=1) == y[ahead]).mean() >= 5 / 6
    w.close()
    # check: a flipped label among 300 is found, though neither the words nor the model's scores tell
    flipped = jl.preannotate(frame, task, llm, progress=False, calibrate=None).assign(label=with_labels["label"])
    flipped.loc[flipped.index[7], "label"] = LABELS[(y[7] + 1) % 4]
    suspects = jl.check(flipped, task, similar=False)
    assert str(7) in suspects.index[:3]


def test_queue_check_and_learning_curve_read_the_cache_they_are_given(tmp_path):
    from jlabel.preannotate import cached_vectors

    df, task, y = synthetic(300, seed=29, text_signal=False, llm_signal=False)
    llm = VectorLLM(dict(zip(df["text"], y)))
    labels = pd.Series(np.asarray(LABELS, dtype=object)[y], dtype=STRING_DTYPE)
    frame = df[["text"]].assign(label=labels.mask(np.arange(300) >= 150))
    mine = tmp_path / "mine.sqlite"  # not the default cache
    jl.preannotate(frame, task, llm, learn=True, cache=mine, progress=False, calibrate=None)  # leaves the vectors
    # the model's own suggestions (noise here), from the same cache: only the vectors know the labels
    out = jl.preannotate(frame, task, llm, examples=None, cache=mine, progress=False, calibrate=None)
    assert len(llm.calls) == 300
    assert cached_vectors(out, task) is None and cached_vectors(out, task, False) is None
    vectors = cached_vectors(out, task, mine)
    # the queue ranks by the probabilities that read the vectors in the cache it is given
    order = out.index.get_indexer(jl.queue(out, task=task, learn=True, explore=0, cache=mine))
    confidence = Assistant(out, task, vectors=vectors).fit(select=True).probs()[0].max(axis=1)[order]
    assert np.all(np.diff(confidence) >= -1e-9)
    assert not np.array_equal(order, out.index.get_indexer(jl.queue(out, task=task, learn=True, explore=0)))
    # check finds a flipped label only with the vectors (neither the words nor the scores tell)
    flipped = out.copy()
    flipped.loc[flipped.index[7], "label"] = LABELS[(y[7] + 1) % 4]
    assert "7" in jl.check(flipped, task, similar=False, cache=mine).index[:3]
    assert "7" not in jl.check(flipped, task, similar=False, cache=False).index[:3]

    # the learning curve learns from them too
    def learned(cache) -> float:
        table = jl.learning_curve(out, task, sizes=[100], repeats=1, cache=cache).data
        return float(table.loc[table["source"] == "suggestion", "accuracy"].iloc[0])

    assert learned(mine) > 0.9 > 0.6 > learned(False)


def test_an_assistant_reads_the_vectors_from_the_cache_it_is_given(tmp_path, monkeypatch):
    from jlabel.preannotate import cached_vectors

    monkeypatch.setenv("JLABEL_CACHE", str(tmp_path / "default.sqlite"))
    df, task, y = synthetic(120, seed=27, labeled=60, text_signal=False, llm_signal=False)
    frame = df[["text", "label"]]
    llm = VectorLLM(dict(zip(frame["text"], y)))
    mine = tmp_path / "mine.sqlite"  # not the default cache
    out = jl.preannotate(frame, task, llm, learn=True, cache=mine, progress=False, calibrate=None)
    vectors = cached_vectors(out, task, mine)
    assert vectors.shape == (120, 8) and not np.isnan(vectors).any()
    np.testing.assert_array_equal(Assistant(out, task, vectors="cache", cache=mine)._raw_vectors, vectors)
    assert Assistant(out, task, vectors="cache")._raw_vectors is None  # the default cache holds none
    assert Assistant(out, task, vectors="cache", cache=False)._raw_vectors is None


def vector_panel(tmp_path, monkeypatch):
    """A learning panel on 200 records whose words and model scores are noise and whose vectors carry the
    label (VectorLLM); nothing pre-annotated or cached."""
    monkeypatch.setenv("JLABEL_CACHE", str(tmp_path / "empty.sqlite"))
    df, task, y = synthetic(200, seed=24, text_signal=False, llm_signal=False)
    frame = df[["text"]].copy()
    llm = VectorLLM(dict(zip(frame["text"], y)))
    w = quiet_panel(frame, task, llm=llm, learn=True)
    return frame, task, y, llm, w


def settle(w) -> None:
    """Wait until the panel's live model calls asked for so far are in and the learner has refitted after them."""
    if w._executor is not None:
        w._executor.submit(lambda: None).result(timeout=30)
    w._schedule_refit()
    w._learner.submit(lambda: None).result(timeout=30)


def test_the_panel_asks_the_idle_model_for_the_vectors_of_labels_given_before_it_opened(tmp_path, monkeypatch):
    monkeypatch.setenv("JLABEL_CACHE", str(tmp_path / "empty.sqlite"))
    df, task, y = synthetic(200, seed=25, labeled=100, text_signal=False, llm_signal=False)
    frame = df[["text", "label"]].copy()
    llm = VectorLLM(dict(zip(frame["text"], y)))
    w = quiet_panel(frame, task, llm=llm, learn=True)

    def lacking() -> int:  # labeled records without a vector, once the learner has fitted
        learner = w._assistant
        return 100 if learner is None or not learner.fitted else len(learner.labeled_without_vector())

    wait_until(lambda: not lacking(), timeout=60)
    settle(w)
    assert len(w._assistant.labeled_without_vector()) == 0
    assert set(frame["text"][:100]) <= set(llm.calls)
    assert frame["llm_label"].iloc[:100].isna().all()  # the labeled records' suggestion columns are left alone
    # the head learned from the real vectors of the labels (imputed from noise words, they would teach nothing)
    rest = np.arange(100, 200)
    w._assistant.set_vector_rows(rest, np.array([llm.score_vector_one(None, t)[2] for t in frame["text"].iloc[rest]]))
    assert accuracy(w._assistant.fit().predict(rest)[0], y[rest]) > 0.9
    w.close()


def test_the_panel_keeps_its_model_calls_in_the_score_cache(tmp_path, monkeypatch):
    from jlabel.preannotate import cached_vectors

    frame, task, y, llm, w = vector_panel(tmp_path, monkeypatch)
    for i in range(30):
        wait_until(
            lambda i=i: w._assistant is not None and not np.isnan(w._assistant.base[i]).any(), timeout=10, step=0.01
        )
        w.decide(LABELS[y[i]])
    settle(w)
    w.close()
    asked = list(llm.calls)
    assert set(frame["text"][:30]) <= set(asked)
    vectors = cached_vectors(frame, task)  # the default cache (JLABEL_CACHE), where the panel wrote them
    scored = frame["text"].isin(asked).to_numpy()
    assert not np.isnan(vectors[scored]).any() and np.isnan(vectors[~scored]).all()
    # a panel opened again on the frame (a new kernel) asks the model for nothing it was asked before
    again = quiet_panel(frame, task, llm=llm, learn=True)
    settle(again)
    settle(again)
    assert not set(llm.calls[len(asked) :]) & set(asked)
    assert len(again._assistant.labeled_without_vector()) == 0
    again.close()
    # without a cache it asks again: here for the vectors of the 30 labels
    before = len(llm.calls)
    fresh = quiet_panel(frame, task, llm=llm, learn=True, cache=False)
    wait_until(lambda: set(frame["text"][:30]) <= set(llm.calls[before:]))
    assert set(frame["text"][:30]) <= set(llm.calls[before:])
    fresh.close()
    with pytest.raises(TypeError, match="cache must be True, False or a file path"):
        jl.Labeler(frame, task, llm=llm, learn=True, cache=3)
    # a cache that cannot be opened: the panel says so and goes on suggesting without it
    (tmp_path / "a_file").write_text("")
    unlabeled = frame.drop(columns=[c for c in frame.columns if c != "text"])
    broken = quiet_panel(unlabeled, task, llm=llm, learn=True, cache=tmp_path / "a_file" / "c.sqlite")
    settle(broken)
    assert "score cache" in broken.message and "cache=False" in broken.message
    assert unlabeled["llm_label"].iloc[:3].notna().all()
    broken.close()


def test_the_panel_asks_no_more_for_vectors_once_the_model_gives_none(tmp_path, monkeypatch):
    monkeypatch.setenv("JLABEL_CACHE", str(tmp_path / "empty.sqlite"))
    df, task, y = synthetic(120, seed=27, labeled=60)

    class ScoresOnly(VectorLLM):  # scores, and no vectors (LLM's default score_vector_one)
        score_vector_one = LLM.score_vector_one

        def score_one(self, prompt, text):
            self.calls.append(text)
            return np.full(len(LABELS), 1 / len(LABELS)), None

    llm = ScoresOnly(dict(zip(df["text"], y)))
    w = quiet_panel(df[["text", "label"]].copy(), task, llm=llm, learn=True)
    wait_until(lambda: w._assistant is not None and w._assistant.fitted)
    for _ in range(3):
        settle(w)
    # the model says it gives none (LLM.gives_vectors): no labeled record is sent for one (was: one, then no more)
    assert not set(llm.calls) & set(df["text"][:60])
    w.close()


def test_the_panel_learns_from_the_vectors_of_its_live_model_calls(tmp_path, monkeypatch):
    # nothing pre-annotated, nothing cached: the panel's own calls bring the vectors the learner reads
    frame, task, y, llm, w = vector_panel(tmp_path, monkeypatch)

    def answered(i: int) -> bool:  # the model's own call came back (the learner may suggest before it does)
        learner = w._assistant
        return not pd.isna(frame["llm_label"].iloc[i]) if learner is None else not np.isnan(learner.base[i]).any()

    for i in range(60):
        wait_until(lambda i=i: answered(i), timeout=10, step=0.01)
        w.decide(LABELS[y[i]])
    ahead = np.arange(60, 63)  # prefetched: suggested by the model, then learned on top
    wait_until(lambda: frame["llm_source"].iloc[ahead].isin(["head", "combined"]).all())
    assert (jl.probs(frame, task)[ahead].argmax(axis=1) == y[ahead]).mean() >= 2 / 3
    settle(w)
    rows, oof, _ = w._assistant.oof()  # words and scores are noise: only the live vectors teach this
    assert accuracy(oof, y[rows]) > 0.9 and len(rows) == 60
    # every record shown was sent to the model, also those the learner suggested for before it answered
    assert set(frame["text"].iloc[:63]) <= set(llm.calls)
    w.close()


def test_the_panel_keeps_asking_the_model_once_the_head_suggests(tmp_path, monkeypatch):
    # once the head alone is chosen it suggests for the records ahead before the model answers; the
    # model must still be asked for them, or the learner never gets their vectors
    from jlabel import learn

    def head_when_it_can(problem, table, weights):  # the choice the test is about, made every time
        return learn.HEAD if learn.HEAD in set(table["candidate"]) else learn.ZERO_SHOT

    monkeypatch.setattr(learn._Problem, "_choose", head_when_it_can)
    frame, _, y, llm, w = vector_panel(tmp_path, monkeypatch)
    for i in range(90):
        wait_until(lambda i=i: pd.notna(frame["llm_label"].iloc[i]), timeout=5, step=0.01)
        w.decide(LABELS[y[i]])
    settle(w)
    assert w._assistant.source == "head"
    assert set(frame["text"].iloc[:90]) <= set(llm.calls)
    w.close()


def test_learning_curve_is_a_chart():
    df, task, _ = synthetic(300, seed=11, labeled=300)
    chart = jl.learning_curve(df, task, sizes=[10, 100], repeats=1)
    table = chart.data
    assert set(table["source"]) == {"LLM alone", "head alone", "combined", "suggestion"}
    assert set(table.loc[table["labels"] == 10, "source"]) == {"LLM alone", "suggestion"}  # too few to learn
    assert (table["accuracy"].between(0, 1)).all()
    assert chart.to_dict()["mark"]["type"] == "line"


def test_bad_input_errors():
    df, task, _ = synthetic(50, seed=12, labeled=30)
    with pytest.raises(ValueError, match="Span tasks keep the LLM alone"):
        Assistant(df, jl.Task(["P"], kind="spans"))
    with pytest.raises(ValueError, match="probs has shape"):
        Assistant(df, task, probs=np.ones((3, 4)))
    with pytest.raises(ValueError, match="folds must be an integer"):
        Assistant(df, task, folds=1)
    with pytest.raises(ValueError, match="reselect"):
        Assistant(df, task, reselect=0.5)
    with pytest.raises(RuntimeError, match=r"call \.fit\(\) first"):
        _ = Assistant(df, task).source
    bad = df.copy()
    bad["label"] = bad["label"].astype(object)
    bad.loc[bad.index[0], "label"] = "zebra"
    with pytest.raises(ValueError, match=r"\['zebra'\] are not in the task's labels"):
        Assistant(bad, task).fit()
    with pytest.raises(ValueError, match="pass learn=True too"):
        jl.preannotate(df, task, KeywordLLM(), cascade=True, progress=False)
    with pytest.raises(ValueError, match="at least 10 human labels"):
        jl.learning_curve(df.assign(label=pd.NA), task)


@pytest.mark.model
def test_preannotate_learns_with_the_embedded_model(embedded_llm, tmp_path):
    news = {
        "World": "Leaders met to discuss the ceasefire and the refugees at the border.",
        "Sports": "The striker scored twice and the team won the cup final.",
        "Business": "Shares fell as the bank reported lower quarterly profit.",
        "Sci/Tech": "The new chip doubles the battery life of phones and laptops.",
    }
    texts = [f"{t} Report {i}." for i in range(6) for t in news.values()]
    task = jl.Task(list(news), instructions="Classify the news article by topic.")
    df = pd.DataFrame({"text": texts})
    df["label"] = pd.Series([list(news)[i % 4] if i < 20 else None for i in range(len(texts))], dtype=object)
    out = jl.preannotate(df, task, embedded_llm, learn=True, examples=None, cache=tmp_path / "c", progress=False)
    assert out["llm_model"].str.startswith("llamacpp:", na=False).all()
    assert set(out["llm_source"]) <= {"zero-shot", "head", "combined"}
    assert out["llm_probs"].notna().all()


def test_the_panel_refits_in_the_background_as_labels_arrive():
    df, task, y = synthetic(200, seed=13, llm_signal=False)
    w = jl.Labeler(df, task, annotator="ana", learn=True)
    sent = []
    w.send = lambda content, buffers=None: sent.append(content)
    for i in range(60):
        w.decide(LABELS[y[i]])
    ahead = np.arange(60, 66)
    wait_until(lambda: df["llm_source"].iloc[ahead].isin(["head", "combined"]).all())
    settle(w)
    assert df["llm_source"].iloc[ahead].isin(["head", "combined"]).all()
    assert (
        df["llm_model"].iloc[ahead].eq("m@sha256:0").fillna(False).all()
    )  # still the model whose probabilities it combines
    assert (jl.probs(df, task)[ahead].argmax(axis=1) == y[ahead]).mean() >= 5 / 6
    pushed = [r for m in sent if m.get("id") is None for r in m["records"]]
    assert any((r["suggestion"] or {}).get("source") in ("head", "combined") for r in pushed)
    suggests = w.store.events(actions=["suggest"])
    assert len(suggests) >= 1
    w.close()


def test_the_panel_learns_on_top_of_live_model_suggestions():
    from tests.test_widget import StandInLLM

    df, task, y = synthetic(200, seed=14)
    df = df[["text", "label"]]
    llm = StandInLLM()  # says "a" to nearly everything
    w = quiet_panel(df, task, llm=llm, learn=True)
    for i in range(60):
        w.decide(LABELS[y[i]])
    ahead = np.arange(60, 63)  # prefetched: suggested by the model, then learned on top
    wait_until(lambda: df["llm_source"].iloc[ahead].isin(["head", "combined"]).all())
    settle(w)
    assert df["llm_source"].iloc[ahead].isin(["head", "combined"]).all()
    assert df["llm_model"].iloc[ahead].eq(llm.id).fillna(False).all()
    assert (jl.probs(df, task)[ahead].argmax(axis=1) == y[ahead]).mean() >= 2 / 3
    # a model with score() alone is asked zero-shot (no examples in the prompt) and never fails for it
    assert llm.calls and {n for _, n in llm.calls} == {0}
    assert df["llm_error"].isna().all()
    w.close()


class RandomMultiLLM(LLM):
    """P(yes) per label at random: a multi-label model that knows nothing."""

    id = "random@sha256:1"

    def __init__(self):
        self.calls = 0
        self.rng = np.random.default_rng(0)

    def score_one(self, prompt, text):
        self.calls += 1
        return self.rng.random(len(prompt.task.labels)), None

    def spans_one(self, prompt, text):
        raise NotImplementedError


def test_preannotate_learns_multi_label_tasks():
    rng = np.random.default_rng(15)
    n, names = 350, ["x", "y", "z"]
    Y = rng.random((n, 3)) < 0.4
    texts = [" ".join([f"{names[j]}{rng.integers(5)}" for j in range(3) if Y[i, j]] + ["the", "a"]) for i in range(n)]
    task = jl.Task(names, kind="multi")
    df = pd.DataFrame({"text": texts})
    df["label"] = pd.Series([list(np.asarray(names)[row]) if i < 200 else None for i, row in enumerate(Y)])
    llm = RandomMultiLLM()
    out = jl.preannotate(df, task, llm, learn=True, cascade=True, cache=None, progress=False)
    assert (out["llm_source"].iloc[200:] == "cascade").mean() > 0.5 and llm.calls < n
    assert ((jl.probs(out, task)[200:] > 0.5) == Y[200:]).mean() > 0.9


def wide_vocabulary(n: int, labeled: int, seed: int):
    """Each record names 3 of its label's 400 words and 2 random ones: 100 labels see few of the words,
    the unlabeled records link them (the structure self-training can use)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(LABELS), n)
    own = {label: [f"{label}w{i}" for i in range(400)] for label in LABELS}
    vocab = [w for words in own.values() for w in words]
    text = [" ".join(list(rng.choice(own[LABELS[t]], 3)) + list(rng.choice(vocab, 2))) for t in y]
    df, task, _ = synthetic(n, seed=seed, labeled=labeled)
    df["text"] = text
    df["label"] = df["label"].where(df["label"].isna(), np.asarray(LABELS, dtype=object)[y])
    noisy = np.where(rng.random(n) < 0.6, y, rng.integers(0, len(LABELS), n))  # the LLM, as in synthetic()
    p = np.exp(rng.normal(0, 0.5, (n, len(LABELS))) + 1.2 * np.eye(len(LABELS))[noisy])
    df = jl.set_suggestions(df, task, p / p.sum(axis=1, keepdims=True), model="m@sha256:0", source="zero-shot")
    return df, task, y


@pytest.fixture
def self_train_from_100(monkeypatch):
    """Self-training from 100 labels (its default start is 200): small synthetic frames show it clearly."""
    from jlabel import learn

    monkeypatch.setattr(learn, "SELF_TRAIN_MIN", 100)


def test_self_training_teaches_the_unlabeled_records_and_leaves_the_labeled_ones_out_of_fold(self_train_from_100):
    for seed in (0, 1):
        df, task, y = wide_vocabulary(800, 100, seed)
        held_out = np.arange(100, 800)
        student = Assistant(df, task).fit()
        alone = Assistant(df, task, self_train=False).fit()
        trial = student.self_training
        assert trial["used"] and trial["guesses"] > 200 and trial["accuracy"] >= trial["human_only_accuracy"]
        assert alone.self_training is None
        assert (
            accuracy(student.predict(held_out)[0], y[held_out])
            > accuracy(alone.predict(held_out)[0], y[held_out]) + 0.02
        )
        # labeled records keep the human-only out-of-fold suggestions: a guess never vouches for a label
        np.testing.assert_array_equal(student.oof()[1], alone.oof()[1])
        if seed == 0:  # deterministic: the same labels and seed give the same student
            np.testing.assert_array_equal(Assistant(df.copy(), task).fit().probs()[0], student.probs()[0])
        # a new label joins the student at the next refit, replacing its guess on that record
        inner = student._student.assistant
        guessed, before = student._student.pseudo[0], len(inner._rows)
        df.loc[df.index[guessed], "label"] = LABELS[(y[guessed] + 1) % 4]  # not what the student guessed
        student.fit(select=False)
        at = np.flatnonzero(inner._rows == guessed)
        assert len(at) == 1 and inner._y[at[0], 0] == (y[guessed] + 1) % 4 and len(inner._rows) == before


def test_self_training_with_labeled_records_the_model_never_scored(self_train_from_100):
    # those records take no part in the comparison: the cascade's threshold compares the same records
    df, task, _ = wide_vocabulary(800, 300, 0)
    probs = jl.probs(df, task)
    probs[:60] = np.nan
    a = Assistant(df, task, probs=probs).fit()
    assert a.self_training["used"] and len(a._problems[0].compared) == 240
    assert 0 < a.threshold < 1
    rows, oof, source = a.oof()
    assert len(rows) == 300 and not np.isnan(oof).any() and set(source[:60]) == {"head"}


class TableLLM(LLM):
    """Answers each text with the probabilities a table holds for it (a model that knows what it knows)."""

    id = "table@sha256:" + "2" * 64

    def __init__(self, table: dict[str, np.ndarray]):
        self.table = table

    def score_one(self, prompt, text):
        return self.table[text], None

    def spans_one(self, prompt, text):
        raise NotImplementedError


def test_preannotate_and_queue_suggest_with_the_self_trained_model(self_train_from_100, monkeypatch):
    from jlabel import learn

    df, task, y = wide_vocabulary(800, 100, 0)
    frame = df[["text", "label"]]
    llm = TableLLM(dict(zip(df["text"], jl.probs(df, task))))
    options = {"learn": True, "cache": None, "progress": False, "calibrate": None}
    taught = jl.preannotate(frame, task, llm, **options)
    # the queue ranks by the self-trained suggestions: least confident first
    order = jl.queue(taught, task=task, learn=True, explore=0)
    ranker = Assistant(taught, task, vectors="cache").fit(select=True)
    assert ranker.self_training["used"]
    confidence = ranker.probs()[0].max(axis=1)[taught.index.get_indexer(order)]
    assert np.all(np.diff(confidence) >= -1e-9)
    monkeypatch.setattr(learn, "SELF_TRAIN_MAX", 0)  # no self-training
    alone = jl.preannotate(frame, task, llm, **options)
    unlabeled = np.arange(100, 800)
    assert accuracy(jl.probs(taught, task)[unlabeled], y[unlabeled]) > (
        accuracy(jl.probs(alone, task)[unlabeled], y[unlabeled]) + 0.02
    )


def test_self_training_is_cross_fitted(self_train_from_100, monkeypatch):
    # each fold of the human labels is predicted by a model fitted on the other folds and on guesses made
    # by a model that never saw the fold either; the student that suggests learns from every label
    df, task, _ = wide_vocabulary(600, 150, seed=4)
    fits = []
    fit = Assistant.fit

    def spy(self, *, select=None, labels=None):
        if labels is not None:
            fits.append(np.flatnonzero(labels.notna().to_numpy()))
        return fit(self, select=select, labels=labels)

    monkeypatch.setattr(Assistant, "fit", spy)
    trial = Assistant(df, task).fit().self_training
    assert trial["used"] and trial["guesses"] > 0
    human = np.arange(150)
    held_out = []
    for teacher, helper in zip(fits[0:10:2], fits[1:10:2]):  # per fold: the teacher, then teacher + guesses
        fold = np.setdiff1d(human, teacher)
        assert 0 < len(fold) < 50 and np.array_equal(np.intersect1d(helper, human), np.setdiff1d(human, fold))
        assert len(np.setdiff1d(helper, human)) > 0  # its guesses, on unlabeled records only
        held_out.append(fold)
    assert np.array_equal(np.sort(np.concatenate(held_out)), human)  # every label held out exactly once
    student = fits[10]
    assert len(fits) == 11 and np.array_equal(np.intersect1d(student, human), human)
    assert len(student) == 150 + trial["guesses"]


def test_self_training_refuses_guesses_that_do_not_help(monkeypatch, self_train_from_100):
    # every guess is turned into a wrong label: cross-fitting must see that the student loses and keep
    # the human labels alone
    guesses = Assistant._guesses

    def wrong(self, rows, probs, budget):
        rows, codes = guesses(self, rows, probs, budget)
        return rows, (codes + 1) % len(LABELS)

    monkeypatch.setattr(Assistant, "_guesses", wrong)
    df, task, _ = wide_vocabulary(800, 100, 0)
    a = Assistant(df, task).fit()
    trial = a.self_training
    assert trial["guesses"] > 200 and trial["accuracy"] < trial["human_only_accuracy"] and not trial["used"]
    alone = Assistant(df, task, self_train=False).fit()
    np.testing.assert_array_equal(a.probs()[0], alone.probs()[0])


def test_representative_weights_stand_for_the_whole_frame():
    from jlabel.learn import representative_weights

    rng = np.random.default_rng(0)
    everyone = rng.random(1000)
    fair = rng.choice(everyone, 40, replace=False)
    assert representative_weights(everyone, fair).sum() == pytest.approx(1.0)
    # a least-confidence queue: 36 labels from the least confident, 2 picked at random higher up
    picked = np.concatenate([np.sort(everyone)[:36], np.sort(everyone)[[400, 500]]])
    weights = representative_weights(everyone, picked)  # 38 labels: tertiles
    assert weights[36:] == pytest.approx([1 / 6, 1 / 6], rel=0.01)  # the middle third, on two labels
    assert weights[:36] == pytest.approx(np.full(36, 1 / 3 / 36), rel=0.01)
    assert weights.sum() == pytest.approx(2 / 3, rel=0.01)  # the top third has no label: it counts as no gain
    assert representative_weights(everyone, picked[:5]) == pytest.approx(np.full(5, 0.2))  # too few to cut


def test_labels_beyond_train_max_are_predicted_out_of_sample(monkeypatch):
    from jlabel import learn

    monkeypatch.setattr(learn, "TRAIN_MAX", 60)
    df, task, y = synthetic(300, labeled=150)
    a = Assistant(df, task).fit()
    assert len(a._rows) == 60 and len(a._held) == 90 and not set(a._rows) & set(a._held)
    rows, oof, _ = a.oof()
    assert sorted(rows) == list(range(150))  # every labeled record, trained on or not
    held = np.isin(rows, a._held)
    np.testing.assert_allclose(oof[held], a.predict(rows[held])[0])  # the model never saw these labels
    kept = set(a._rows)
    a.fit(labels=pd.Series(np.asarray(LABELS, dtype=object)[y], dtype=STRING_DTYPE).where(df.index < 200))
    assert len(a._rows) == 60 and len(a._held) == 140
    assert set(a._rows) - kept <= set(range(150, 200))  # the sample stays put: only new labels may enter it


def test_one_labeled_record_the_llm_did_not_score_keeps_it_a_candidate_and_the_min_labels_gate():
    df, task, _ = synthetic(600, seed=1, labeled=10, text_signal=False)  # the words say nothing
    P = jl.probs(df, task)
    P[3] = np.nan  # one labeled record the model did not score (a failed call, not scored yet)
    a = Assistant(df, task, probs=P).fit()
    assert a.source == "zero-shot"  # 9 scored labels: below min_labels, the LLM stays
    assert a.scores["candidate"].tolist() == ["zero-shot"] and a.scores["n"].tolist() == [9]
    rest = np.arange(10, 600)
    np.testing.assert_array_equal(a.predict(rest)[0].argmax(axis=1), P[rest].argmax(axis=1))
    P[:10] = np.nan  # the model scored none of the labeled records: the head learns at once
    assert Assistant(df, task, probs=P).fit().source == "head"
    # 50 labels, one of them unscored: 49 to compare on, below min_labels, so the model stays alone
    fifty, task, _ = synthetic(600, seed=1, labeled=50, text_signal=False)
    P = jl.probs(fifty, task)
    P[3] = np.nan
    assert Assistant(fifty, task, probs=P).fit().source == "zero-shot"  # was a head at 0.27
    # 120 labels, of which the model scored 5: too few to compare it, so the head learns from all 120,
    # and records the model never scored still get a suggestion
    many, task, y = synthetic(300, seed=3, labeled=120, llm_signal=False)
    P = jl.probs(many, task)
    P[5:120] = np.nan
    P[220:] = np.nan
    a = Assistant(many, task, probs=P).fit()
    assert a.source == "head"
    unscored = a.predict(np.arange(220, 300))[0]
    assert not np.isnan(unscored).any() and accuracy(unscored, y[220:]) > 0.7


def test_a_label_no_one_has_given_keeps_the_llms_say():
    df, task, y = synthetic(1000, seed=15)
    labeled = np.flatnonzero(y != 3)[:150]  # 150 labels, none of them "d"
    df.loc[df.index[labeled], "label"] = np.asarray(LABELS, dtype=object)[y[labeled]]
    a = Assistant(df, task).fit()
    assert a.source in ("head", "combined")
    rest = np.setdiff1d(np.arange(1000), labeled)
    P = jl.probs(df, task)[rest]
    for source in (None, "head"):
        learned, _ = a.predict(rest, source=source)
        np.testing.assert_allclose(learned[:, 3], P[:, 3])  # the LLM's probability of "d", unchanged
        sure = P[:, 3] > 0.5
        assert sure.sum() > 20 and (learned[sure].argmax(axis=1) == 3).all()
    assert a._problems[0].choice.fusion[a.source].bias[3] == 0  # no bias learned for a label never seen


def test_out_of_fold_predictions_follow_labels_taken_back_or_changed():
    df, task, y = synthetic(400, seed=2, labeled=120, llm_signal=False)
    a = Assistant(df, task).fit()
    df.loc[df.index[0], "label"] = pd.NA  # undo one label, give another: the count stays 120
    df.loc[df.index[300], "label"] = LABELS[y[300]]
    df.loc[df.index[5], "label"] = LABELS[(y[5] + 1) % 4]  # and correct one in place
    a.fit()  # as the panel calls it: too few changes for a new selection
    rows, oof, _ = a.oof()
    fresh_rows, fresh, _ = Assistant(df, task).fit().oof()
    np.testing.assert_array_equal(rows, fresh_rows)
    np.testing.assert_allclose(oof, fresh)
    assert a._problems[0].y[np.flatnonzero(rows == 5)[0]] == (y[5] + 1) % 4  # compared on the label as it is now
    np.testing.assert_allclose(a.probs()[0], Assistant(df, task).fit().probs()[0])


def test_multi_label_with_a_label_never_given_and_no_llm_predicts_its_smoothed_frequency():
    rng = np.random.default_rng(8)
    n, names = 300, ["x", "y", "z"]
    Y = rng.random((n, 3)) < 0.4
    Y[:, 2] = False  # nobody has used label z yet
    texts = [" ".join([f"{names[j]}{rng.integers(5)}" for j in range(3) if Y[i, j]] + ["the", "a"]) for i in range(n)]
    task = jl.Task(names, kind="multi")
    df = pd.DataFrame({"text": texts})
    df["label"] = pd.Series(
        [list(np.asarray(names)[row]) if i < 100 else None for i, row in enumerate(Y)], dtype=object
    )
    a = Assistant(df, task, probs=None).fit()
    p, source = a.predict(np.arange(100, n))
    assert not np.isnan(p).any() and set(source) == {"head"}
    np.testing.assert_allclose(p[:, 2], 1 / 102)  # add-one smoothing of 0 of 100
    assert ((p[:, :2] > 0.5) == Y[100:, :2]).mean() > 0.9
    _, oof, _ = a.oof()
    np.testing.assert_allclose(oof[:, 2], 1 / 101)  # each labeled record's from the 99 others
    assert a.suggest()["llm_label"].notna().all()


def test_learning_curve_defaults_fit_few_labels():
    df, task, _ = synthetic(100, seed=14, labeled=10)
    table = jl.learning_curve(df, task, repeats=1).data
    assert set(table["labels"]) == {8}


def test_suggestions_name_no_model_where_the_model_never_scored():
    df, task, _ = synthetic(300, seed=17, labeled=120, llm_signal=False)
    P = jl.probs(df, task)
    P[250:] = np.nan
    df = jl.set_suggestions(df, task, P, model="m@sha256:0", source="zero-shot")
    out = Assistant(df, task).fit().suggest()
    assert set(out["llm_source"].iloc[250:]) == {"head"}
    assert out["llm_model"].iloc[250:].isna().all()
    assert out["llm_model"].iloc[:250].eq("m@sha256:0").all()


def _repro_vectors_data():
    rng = np.random.default_rng(0)
    n = 300
    y = rng.integers(0, 2, n)
    df = pd.DataFrame({"text": [f"w{t}{rng.integers(9)} v{rng.integers(40)}" for t in y]})
    df["label"] = pd.Series([("a", "b")[t] if i < 120 else None for i, t in enumerate(y)], dtype=object)
    p = np.where(rng.random((n, 1)) < 0.7, np.eye(2)[y], np.eye(2)[1 - y]) * 0.6 + 0.2
    V = rng.normal(size=(n, 8)) + y[:, None]
    return df, jl.Task(["a", "b"]), p, V


def test_a_non_finite_vector_counts_as_none_and_fit_ends():
    import signal

    from jlabel.learn import _fit_fusion

    df, task, p, V = _repro_vectors_data()
    V[3, 2] = np.inf  # one overflowed hidden-state entry

    def stuck(*_):
        raise TimeoutError("fit() did not end")

    previous = signal.signal(signal.SIGALRM, stuck)
    signal.alarm(120)
    try:
        features = vector_features(V)
        assert np.isfinite(features).all() and not features[3].any()
        a = Assistant(df, task, probs=p, vectors=V).fit()
        assert np.isfinite(a.probs()[0]).all()
        assert 3 in a._no_vector.nonzero()[0]
        # the combination never loops forever on features it cannot fit
        F = np.random.default_rng(1).normal(size=(40, 2, 3))
        F[0, 0, 1] = np.nan
        y = np.arange(40) % 2
        with pytest.raises(ValueError, match="not finite"):
            _fit_fusion(F, y)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_llm_probabilities_must_be_finite_and_non_negative():
    df, task, p, _ = _repro_vectors_data()
    for bad in (np.inf, -0.1):
        q = p.copy()
        q[5, 1] = bad
        with pytest.raises(ValueError, match="row 5"):
            Assistant(df, task, probs=q)
    q = p.copy()
    q[5] = np.nan  # not scored: allowed
    a = Assistant(df, task, probs=q)
    with pytest.raises(ValueError, match="finite"):
        a.set_base([0], [[np.inf, 0.5]])
    with pytest.raises(ValueError, match="negative"):
        a.set_base([0], [[-1.0, 0.5]])
    a.set_base([0, 1], [[np.nan, np.nan], [0.3, 0.7]])
    assert np.isnan(a.base[0]).all()


def test_single_label_probabilities_are_normalised():
    df, task, y = synthetic(300, seed=1)
    p = jl.probs(df, task)
    ab = np.flatnonzero(y < 2)[:120]  # 'c' and 'd' not given yet
    label = pd.Series(pd.NA, index=df.index, dtype=object)
    label.iloc[ab] = np.asarray(LABELS, dtype=object)[y[ab]]
    df["label"] = label
    good = Assistant(df, task, probs=p).fit()
    scaled = Assistant(df, task, probs=p * 2.5).fit()
    pd.testing.assert_frame_equal(good.scores, scaled.scores)
    np.testing.assert_allclose(good.predict()[0], scaled.predict()[0], atol=1e-5)
    unlabeled = np.setdiff1d(np.arange(300), ab)
    good.set_base(unlabeled, p[unlabeled] * 2.5)
    P, _ = good.predict(unlabeled)
    assert (P >= 0).all()
    np.testing.assert_allclose(P.sum(axis=1), 1)
    good.suggest()
    with pytest.raises(ValueError, match="positive sum"):
        good.set_base([0], [[0.0, 0.0, 0.0, 0.0]])
    q = p.copy()
    q[7] = 0
    with pytest.raises(ValueError, match="positive sum"):
        Assistant(df, task, probs=q)


def test_multi_label_labels_written_as_text_are_read():
    import io

    rng = np.random.default_rng(0)
    task = jl.Task(["x", "y"], kind="multi")
    n = 200
    hasx, hasy = rng.random(n) < 0.5, rng.random(n) < 0.5
    texts = [
        " ".join((["xx"] if a else []) + (["yy"] if b else []) + [f"w{rng.integers(30)}" for _ in range(3)])
        for a, b in zip(hasx, hasy)
    ]
    lab = [
        [name for name, on in (("x", a), ("y", b)) if on] if i < 120 else None
        for i, (a, b) in enumerate(zip(hasx, hasy))
    ]
    df = pd.DataFrame({"text": texts, "label": pd.Series(lab, dtype=object)})
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    buf.seek(0)
    back = pd.read_csv(buf)
    a = Assistant(back, task, probs=None).fit()
    b = Assistant(df, task, probs=None).fit()
    assert len(a._rows) == 120
    np.testing.assert_array_equal(a._y, b._y)
    assert not np.isnan(a.probs()[0]).any()
    plain = df.copy()
    plain["label"] = plain["label"].map(lambda v: v[0] if v else v)
    with pytest.raises(ValueError, match="lists"):
        Assistant(plain, task, probs=None).fit()


def test_a_few_labels_taken_back_below_min_labels_trigger_a_new_selection():
    df, task, _ = synthetic(1200, seed=5, labeled=55)
    a = Assistant(df, task).fit()
    assert a.source != "zero-shot"
    selections = a.selections
    df.loc[49:54, "label"] = pd.NA  # 6 taken back: under the 25 that trigger a selection, but 49 < min_labels
    a.fit()
    assert a.selections == selections + 1 and a.source == "zero-shot"


def test_labels_taken_back_trigger_a_new_selection():
    df, task, _ = synthetic(1200, seed=5, labeled=70)
    a = Assistant(df, task).fit()
    df.loc[30:69, "label"] = pd.NA  # 30 left, below min_labels
    a.fit()
    assert a._changed_since_selection() == 0 or a._selection_current()
    fresh = Assistant(df, task).fit()
    assert a.source == fresh.source == "zero-shot"
    np.testing.assert_allclose(a.predict()[0], fresh.predict()[0])
    # a removal below min_labels is counted
    b = Assistant(df, task)
    b._selected_rows, b._selected_y = np.arange(70), np.zeros((70, 1), dtype=np.int64)
    b._rows, b._y = np.arange(30), np.zeros((30, 1), dtype=np.int64)
    assert b._changed_since_selection() == 40


def test_probs_twice_in_a_row_agree():
    df, task, y = synthetic(1200, seed=5, labeled=120)
    truth = np.asarray(LABELS, dtype=object)[y]
    a = Assistant(df, task).fit()
    df.loc[120:129, "label"] = truth[120:130]
    a.fit()  # below the reselect threshold: no selection
    P1, s1 = a.probs()
    P2, s2 = a.probs()
    np.testing.assert_allclose(P1, P2)
    assert (s1 == s2).all()


def test_one_label_keeps_the_llms_suggestion_for_its_record():
    task = jl.Task(["a", "b", "c"])
    P = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])
    df = pd.DataFrame({"text": ["good one", "bad one", "meh one"], "label": ["a", None, None]})
    p, source = Assistant(df, task, probs=P).fit().probs()
    np.testing.assert_allclose(p, P, atol=5e-3)  # temperatures shrunk to about 1 by one label
    assert list(source) == ["zero-shot"] * 3
