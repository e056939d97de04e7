"""Batch pre-annotation: fill the llm_* columns of a frame with a model's suggestions.

Scores are cached on disk by (model digest, prompt hash, text hash): an interrupted run picks
up where it stopped, a repeated run calls the model for nothing it has seen, and the same
inputs give the same outputs. A record whose model call fails gets its error in ``llm_error``
and the run goes on.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import calibration
from .frame import STRING_DTYPE, ensure_columns, record_keys, set_suggestions, texts
from .llm import base as llm_base
from .llm.base import LLM, SpanResult, put_rows
from .prompts import Prompt, choose_examples, default_prompt
from .task import Task

CALIBRATIONS = ("auto", "batch", "content_free", None)
#: "auto" uses the batch mean from this many scored records per label on, else content-free inputs
AUTO_BATCH_PER_LABEL = 10
_SCHEMA = """
CREATE TABLE IF NOT EXISTS scores (
    model TEXT NOT NULL, prompt TEXT NOT NULL, text TEXT NOT NULL,
    probs BLOB NOT NULL, warning TEXT,
    PRIMARY KEY (model, prompt, text)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS vectors (
    model TEXT NOT NULL, prompt TEXT NOT NULL, text TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (model, prompt, text)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS spans (
    model TEXT NOT NULL, prompt TEXT NOT NULL, text TEXT NOT NULL,
    spans TEXT NOT NULL, notes TEXT NOT NULL,
    PRIMARY KEY (model, prompt, text)
) WITHOUT ROWID;
"""


def default_cache() -> Path:
    """``$JLABEL_CACHE``, else ``~/.cache/jlabel/scores.sqlite``."""
    if os.environ.get("JLABEL_CACHE"):
        return Path(os.environ["JLABEL_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "jlabel" / "scores.sqlite"


class ScoreCache:
    """Raw (uncalibrated) scores on disk, keyed by (model id, prompt hash, text hash), and record vectors.

    The model key carries :data:`jlabel.llm.base.SCORING_VERSION` too: scores of an older jlabel whose
    scoring differed are not reused (they stay in the file, unread).

    Parameters
    ----------
    path
        The SQLite file (created with its folder), or ``":memory:"``.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = str(path) if str(path) == ":memory:" else str(Path(path).expanduser())
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)
        self._lock = threading.Lock()

    @staticmethod
    def _model_key(model: str) -> str:
        return f"{model}#scoring{llm_base.SCORING_VERSION}"

    def _select(self, table: str, columns: str, model: str, prompt: str, keys: Sequence[str]) -> list[tuple]:
        """``(text, *columns)`` rows of ``table`` for ``keys``, asked in chunks under SQLite's parameter limit."""
        model = self._model_key(model)
        rows: list[tuple] = []
        with self._lock:
            for start in range(0, len(keys), 900):
                chunk = list(keys[start : start + 900])
                marks = ",".join("?" * len(chunk))
                rows += self._conn.execute(
                    f"SELECT text, {columns} FROM {table} WHERE model=? AND prompt=? AND text IN ({marks})",
                    [model, prompt, *chunk],
                ).fetchall()
        return rows

    def get(self, model: str, prompt: str, keys: Sequence[str], k: int) -> tuple[np.ndarray, list[str | None]]:
        """Rows for ``keys`` (NaN where not cached) and their warnings."""
        found = {t: (p, w) for t, p, w in self._select("scores", "probs, warning", model, prompt, keys)}
        out = _unpack({key: blob for key, (blob, _) in found.items()}, keys, np.float64, k)
        notes = [found[key][1] if key in found else None for key in keys]
        return out, notes

    def put(self, model: str, prompt: str, keys: Sequence[str], probs: np.ndarray, notes: Sequence[str | None]) -> None:
        """Store scored rows (rows with NaN are skipped: errors are retried next time)."""
        ok = ~np.isnan(probs).any(axis=1)
        self._insert(
            "scores",
            [
                (self._model_key(model), prompt, key, row.tobytes(), note)
                for key, row, note, good in zip(keys, probs, notes, ok)
                if good
            ],
        )

    def get_vectors(self, model: str, prompt: str, keys: Sequence[str]) -> np.ndarray | None:
        """Record vectors for ``keys`` as float32 (NaN rows where not cached), or ``None`` when none is."""
        found = dict(self._select("vectors", "vector", model, prompt, keys))
        if not found:
            return None
        width = len(next(iter(found.values()))) // np.dtype(np.float16).itemsize
        return _unpack(found, keys, np.float16, width).astype(np.float32)

    def vector_prompts(self, model: str) -> list[str]:
        """The prompt hashes under which record vectors of ``model`` are cached."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT DISTINCT prompt FROM vectors WHERE model=?", [self._model_key(model)]
            ).fetchall()
        return sorted(prompt for (prompt,) in rows)

    def put_vectors(self, model: str, prompt: str, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Store record vectors as float16 (NaN rows are skipped)."""
        ok = ~np.isnan(vectors).any(axis=1)
        half = np.asarray(vectors, dtype=np.float16)
        model = self._model_key(model)
        self._insert("vectors", [(model, prompt, key, row.tobytes()) for key, row, good in zip(keys, half, ok) if good])

    def get_spans(self, model: str, prompt: str, keys: Sequence[str]) -> dict[str, SpanResult]:
        """The span results cached for ``keys`` (a key that is not cached is absent)."""
        rows = self._select("spans", "spans, notes", model, prompt, keys)
        return {key: SpanResult(json.loads(spans), json.loads(notes)) for key, spans, notes in rows}

    def put_spans(self, model: str, prompt: str, keys: Sequence[str], results: Sequence[SpanResult]) -> None:
        """Store span results (failed records are skipped: they are tried again next time)."""
        model = self._model_key(model)
        rows = [
            (model, prompt, key, json.dumps(r.spans), json.dumps(r.notes))
            for key, r in zip(keys, results)
            if r.error is None
        ]
        self._insert("spans", rows)

    def _insert(self, table: str, rows: list[tuple]) -> None:
        marks = ",".join("?" * len(rows[0])) if rows else ""
        with self._lock, self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            if rows:
                self._conn.executemany(f"INSERT OR REPLACE INTO {table} VALUES ({marks})", rows)

    def __len__(self) -> int:
        return self._conn.execute("SELECT count(*) FROM scores").fetchone()[0]

    def close(self) -> None:
        """Close the file."""
        self._conn.close()


def _unpack(found: dict[str, bytes], keys: Sequence[str], dtype, width: int) -> np.ndarray:
    """``(len(keys), width)`` rows decoded from ``found[key]`` blobs of ``dtype``; NaN where a key is missing."""
    out = np.full((len(keys), width), np.nan, dtype=dtype)
    hit = np.array([key in found for key in keys], dtype=bool)
    if hit.any():
        blobs = b"".join(found[key] for key, h in zip(keys, hit) if h)
        out[hit] = np.frombuffer(blobs, dtype=dtype).reshape(-1, width)
    return out


def text_hashes(values: pd.Series) -> np.ndarray:
    """A stable 64-bit hash (16 hex digits) per text, vectorised."""
    try:
        hashed = pd.util.hash_pandas_object(values.astype(object), index=False).to_numpy(dtype=np.uint64)
    except UnicodeEncodeError:  # a lone surrogate (half an emoji cut off): hashed as its bytes would be
        values = values.astype(object).map(
            lambda v: (
                v.encode("utf-8", "surrogatepass").decode("utf-8", "backslashreplace") if isinstance(v, str) else v
            )
        )
        hashed = pd.util.hash_pandas_object(values, index=False).to_numpy(dtype=np.uint64)
    return np.char.mod("%016x", hashed).astype(object)


def preannotate(
    df: Any,
    task: Task,
    llm: LLM | str | None = None,
    *,
    prompt: Prompt | None = None,
    examples: str | Sequence[tuple[str, Any]] | None = "auto",
    calibrate: str | None = "auto",
    batch: int = 32,
    resume: bool = True,
    cache: str | os.PathLike | bool | None = True,
    store: Any = None,
    id: str | None = None,
    progress: bool = True,
    learn: bool = False,
    cascade: bool = False,
) -> Any:
    """Pre-annotate records: a copy of ``df`` with the llm_* columns filled.

    Parameters
    ----------
    df
        A pandas DataFrame, or a Dask DataFrame (then each worker loads the model once and a
        Dask DataFrame is returned).
    task
        The task (single or multi; span tasks get ``llm_label`` spans).
    llm
        A backend from ``jl.llm(...)``, a spec string for it, or ``None`` for the embedded model.
    prompt
        A :class:`~jlabel.prompts.Prompt`; default built from the task.
    examples
        Few-shot examples: ``"auto"`` keeps those of a ``prompt`` that has its own, else takes a
        balanced, shuffled set of the frame's human labels (none while nothing is labeled);
        ``None`` for none but the prompt's; or ``(text, value)`` pairs.
    calibrate
        Label-bias correction of single-label probabilities: ``"batch"`` (divide by the mean
        distribution over the frame; needs no labels), ``"content_free"`` (divide by the
        distribution given to content-free inputs), ``"auto"`` (batch once at least 10 records
        per label are scored, else content-free: a batch mean of a few records says little),
        ``None``, or a fitted :class:`~jlabel.calibration.Fitted`. Raw scores are cached, so
        changing this re-scores nothing.
    batch
        Records per model call and per cache write (an interrupt loses at most one batch).
    resume
        Without a cache and with ``calibrate=None``: keep the zero-shot suggestions ``df`` already
        holds from the same model and prompt, with their warnings (a grown frame scores only its new
        records). They are taken as raw scores, so resume a frame that was pre-annotated with
        ``calibrate=None`` too. The frame cannot tell whether a record's text was edited since: pass
        ``resume=False`` after editing texts. With a cache (the default) the cache resumes a run,
        and an edited text is scored again.
    cache
        ``True`` for :func:`default_cache`, a path, or ``None``/``False`` for no cache.
    store
        A :class:`jlabel.Store` (or its path): one ``suggest`` event per new suggestion.
    id
        The column holding record keys (default: the index).
    progress
        Show a tqdm progress bar (notebook-aware) with records/s.
    learn
        Combine the model's probabilities with a head learned from the human labels the frame holds
        (:class:`jlabel.Assistant`): labeled records get out-of-fold suggestions (their own label never
        vouches for itself), ``llm_source`` says which source each suggestion came from
        (``zero-shot``, ``head``, ``combined``). ``examples="auto"`` then means zero-shot: the labels
        teach the head instead of filling the prompt. Span tasks keep the model alone.
    cascade
        With ``learn=True``: records the learned head is already sure of (calibrated confidence at or
        above a threshold chosen on out-of-fold predictions so that accuracy does not drop) get no model
        call; their ``llm_source`` is ``cascade``.

    Returns
    -------
    DataFrame
        A copy of ``df``; ``llm_error`` holds a failed record's error, or a warning (such as
        a text cut to fit the context window) for a record that was scored.
    """
    if not isinstance(learn, bool) or not isinstance(cascade, bool):
        raise TypeError(f"learn and cascade are True or False, got learn={learn!r}, cascade={cascade!r}.")
    if cascade and not learn:
        raise ValueError("cascade=True skips model calls for records the learned head is sure of: pass learn=True too.")
    if _is_dask(df):
        if learn:
            raise ValueError(
                "learn=True learns from the labels of the whole frame: call it on a pandas DataFrame "
                "(e.g. ddf.compute()), or pre-annotate the Dask frame without it."
            )
        if store is not None:
            raise ValueError(
                "store= is not written from Dask workers: pre-annotate the Dask frame without it, then journal "
                "the suggestions of the computed frame (or call jl.preannotate on a pandas DataFrame)."
            )
        return _preannotate_dask(
            df, task, llm, prompt=prompt, examples=examples, calibrate=calibrate, batch=batch, cache=cache, id=id
        )
    if not isinstance(task, Task):
        raise TypeError(f"task must be a jl.Task, got {type(task).__name__}.")
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}.")
    if not (calibrate in CALIBRATIONS or isinstance(calibrate, calibration.Fitted)):
        raise ValueError(f"calibrate must be one of {CALIBRATIONS} or a jlabel.calibration.Fitted, got {calibrate!r}.")
    if store is None:
        return _preannotate(
            df, task, llm, prompt, examples, calibrate, batch, resume, cache, None, id, progress, learn, cascade
        )
    from .store import opened_for

    # opened (and a store of another task refused) before the model runs, and once
    with opened_for(store, task, what="the suggest events") as journal:
        return _preannotate(
            df, task, llm, prompt, examples, calibrate, batch, resume, cache, journal, id, progress, learn, cascade
        )


def _preannotate(df, task, llm, prompt, examples, calibrate, batch, resume, cache, store, id, progress, learn, cascade):
    """:func:`preannotate` on a pandas frame, its arguments checked; ``store`` is an open Store or None."""
    keys = record_keys(df, id)
    model = _resolve(llm)
    record_text = texts(df, task)
    if learn and isinstance(examples, str) and examples == "auto":
        examples = None  # the head learns from the labels; as few-shot examples they would vouch for themselves
    if isinstance(examples, str):
        if examples != "auto":
            raise ValueError(f"examples must be 'auto', None or a list of (text, value) pairs, got {examples!r}.")
        # a prompt that brings its own examples keeps them; else a balanced set of the frame's labels
        has_own = isinstance(prompt, Prompt) and bool(prompt.examples)
        examples = None if has_own else choose_examples(df, task, text_of=record_text)
    prompt = model.prompt_for(task, prompt if prompt is not None else default_prompt(task), examples or ())
    out = ensure_columns(df.copy(), task)
    if task.kind == "spans":
        return _spans(out, task, model, prompt, record_text, keys, batch, progress, store, cache)

    if learn:
        return _learned(
            out, df, task, model, prompt, record_text, keys, calibrate, batch, cache, progress, store, cascade, id
        )
    store_cache = _open_cache(cache)
    try:
        # the frame cannot tell whether a record's text changed since; a cache (keyed by text) can, so it wins
        from_frame = resume and calibrate is None and store_cache is None and "llm_probs" in df
        held = _without_done(df, task, model, prompt) if from_frame else None
        raw, notes, errors, _ = _score(model, task, prompt, record_text, store_cache, batch, progress, held)
        if held is not None and "llm_error" in df:  # the kept suggestions keep their warnings
            kept = ~np.isnan(held).any(axis=1)
            notes[kept] = df["llm_error"].astype(object).where(df["llm_error"].notna(), None).to_numpy()[kept]
        prior = _content_free_prior(model, task, prompt, store_cache, batch, calibrate, len(record_text))
    finally:
        if store_cache is not None:
            store_cache.close()

    probs = _calibrate(raw, task, calibrate, prior)
    filled = set_suggestions(out, task, probs, model=model.id, prompt=prompt.hash, source="zero-shot")
    return _finish(filled, task, keys, np.isnan(probs).any(axis=1), errors, notes, store)


def _finish(filled: pd.DataFrame, task: Task, keys: pd.Index, failed, errors, notes, store) -> pd.DataFrame:
    """``llm_error`` (a failed record's error, else a scored record's warning) and the store's suggest events."""
    message = np.where(errors != None, errors, notes)  # noqa: E711 - elementwise
    filled["llm_error"] = pd.Series(message, index=filled.index, dtype=object).astype(STRING_DTYPE)
    if store is not None:
        _suggest_events(store, task, filled, keys, failed)
    return filled


def _content_free_prior(model, task, prompt, store_cache, batch, calibrate, n: int) -> np.ndarray | None:
    """The model's mean distribution over content-free inputs, where ``calibrate`` will use it.

    ``"auto"`` on ``n`` records uses it only below :data:`AUTO_BATCH_PER_LABEL` records per label, and
    falls back to the batch mean (with a warning) when the model fails on those inputs.
    """
    if task.kind != "single" or calibrate not in ("content_free", "auto"):
        return None
    if calibrate == "auto" and n >= AUTO_BATCH_PER_LABEL * len(task.labels):
        return None
    free = pd.Series(list(calibration.CONTENT_FREE), dtype=object)
    free_raw, _, free_errors, _ = _score(model, task, prompt, free, store_cache, batch, False, None)
    if any(e is not None for e in free_errors):
        failed = f"scoring the content-free inputs {list(calibration.CONTENT_FREE)} failed: {free_errors}"
        if calibrate == "content_free":
            raise RuntimeError(f"{failed}; pass calibrate='batch' or None.")
        warnings.warn(f"{failed}; the label-bias correction uses the batch mean instead.", stacklevel=3)
        return None
    return np.clip(free_raw.mean(axis=0), 1e-12, None)


def _learned(out, df, task, model, prompt, record_text, keys, calibrate, batch, cache, progress, store, cascade, id):
    """Pre-annotation with a learned head (and optionally the cascade); see :mod:`jlabel.learn`.

    The head reads the model's record vectors of the scored records too. The cascade decides what to skip
    with a head on words alone (a skipped record has no vector), and that head makes the skipped records'
    suggestions.
    """
    from .frame import unlabeled
    from .learn import CASCADE, Assistant, write_suggestions

    n, k = len(out), len(task.labels)
    raw = np.full((n, k), np.nan)
    notes = np.full(n, None, dtype=object)
    errors = np.full(n, None, dtype=object)
    vectors: np.ndarray | None = None
    skipped = np.zeros(n, dtype=bool)
    head = None  # the words-only head's probabilities of the records the cascade may skip
    store_cache = _open_cache(cache)
    assistant = None
    try:
        prior = _content_free_prior(model, task, prompt, store_cache, batch, calibrate, len(record_text))

        def score(rows: np.ndarray) -> None:
            nonlocal vectors
            if len(rows):
                raw[rows], notes[rows], errors[rows], found = _score(
                    model, task, prompt, record_text.iloc[rows], store_cache, batch, progress, None, vectors=True
                )
                if found is not None:
                    vectors = put_rows(vectors, n, rows, found)

        if cascade:
            labeled = np.flatnonzero(~unlabeled(out))
            score(labeled)  # the head learns with the model's scores (and vectors) of the labeled records
            # no self-training yet: the unlabeled records have no scores or vectors to guess from
            assistant = Assistant(out, task, probs=_calibrate(raw, task, calibrate, prior), self_train=False, id=id)
            assistant.fit(select=True)
            # skip where the words-only head is right as often as the suggestion that reads the vectors too
            threshold = assistant.threshold_against(assistant.with_vectors(vectors).fit(select=True))
            todo = np.flatnonzero(unlabeled(out))
            if len(todo) and np.isfinite(threshold).all():
                head = np.full((n, len(task.labels)), np.nan)
                head[todo] = assistant.predict(todo, source="head")[0]
                skipped[todo] = _sure(head[todo], task, threshold)
            score(np.flatnonzero(np.isnan(raw).any(axis=1) & ~skipped))
        else:
            score(np.arange(n))
    finally:
        if store_cache is not None:
            store_cache.close()
    probs = _calibrate(raw, task, calibrate, prior)
    if assistant is None:
        assistant = Assistant(out, task, probs=probs, id=id)
    else:  # the cascade's assistant: its text features are computed already
        assistant.set_base(np.arange(n), probs)
    learner = assistant.with_vectors(vectors, self_train=True)  # the cascade's assistant was built without
    matrix, source = learner.fit(select=True).probs()
    if skipped.any():  # the skipped records' suggestions: the words-only head that skipped them (no vector)
        matrix[skipped], source[skipped] = head[skipped], CASCADE
    filled = write_suggestions(out, task, matrix, source, model=model.id, prompt=prompt.hash)
    return _finish(filled, task, keys, np.isnan(matrix).any(axis=1), errors, notes, store)


def scores_and_vectors(
    df: pd.DataFrame,
    task: Task,
    llm: LLM | str | None = None,
    *,
    prompt: Prompt | None = None,
    cache: str | os.PathLike | bool | None = True,
    batch: int = 32,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The model's raw label probabilities and record vectors for every record (cached like :func:`preannotate`).

    For building a :class:`jlabel.Assistant` by hand: ``Assistant(df, task, probs=..., vectors=...)``.
    Vectors are ``None`` for a backend that gives none (Ollama); a failed record's rows are NaN.
    """
    model = _resolve(llm)
    prompt = model.prompt_for(task, prompt)
    store_cache = _open_cache(cache)
    try:
        raw, _, _, vectors = _score(model, task, prompt, texts(df, task), store_cache, batch, progress, None, True)
    finally:
        if store_cache is not None:
            store_cache.close()
    return raw, vectors


def cached_vectors(df: pd.DataFrame, task: Task, cache: str | os.PathLike | bool | None = None) -> np.ndarray | None:
    """The record vectors a ``preannotate(learn=True)`` run left in the score cache for this frame's suggestions.

    Looked up by the frame's most common (``llm_model``, ``llm_prompt``) pair and each record's text, in
    ``cache`` (``None`` or ``True``: :func:`default_cache`; ``False``: none). When that prompt has none (the frame was pre-annotated
    again with another prompt, e.g. with few-shot examples), the same model's vectors under the prompt
    that covers most of the records are used: one prompt's vectors, so they are alike. ``None`` when the
    frame has no suggestions, the file does not exist or holds none of them. The panel,
    :func:`jlabel.queue` and :func:`jlabel.check` learn with them.
    """
    if cache is False or task.kind == "spans" or not {"llm_model", "llm_prompt"} <= set(df.columns) or not len(df):
        return None
    path = default_cache() if cache is None or cache is True else Path(cache)
    if not path.is_file():
        return None
    pairs = df[["llm_model", "llm_prompt"]].dropna().astype(str).value_counts()
    if pairs.empty:
        return None
    model, prompt = pairs.index[0]
    store = ScoreCache(path)
    keys = text_hashes(texts(df, task)).tolist()
    try:
        found = store.get_vectors(model, prompt, keys)
        if found is not None:
            return found
        others = [store.get_vectors(model, other, keys) for other in store.vector_prompts(model)]
        others = [v for v in others if v is not None]
        return max(others, key=lambda v: int((~np.isnan(v).any(axis=1)).sum()), default=None)
    finally:
        store.close()


def _sure(head: np.ndarray, task: Task, threshold) -> np.ndarray:
    """Records whose head confidence reaches the threshold (multi-label: every label's own)."""
    if task.kind == "single":
        return head.max(axis=1) >= threshold
    confidence = np.maximum(head, 1 - head)
    return (confidence >= np.asarray(threshold)[None, :]).all(axis=1)


def _resolve(llm: LLM | str | None) -> LLM:
    if isinstance(llm, LLM):
        return llm
    if llm is None or isinstance(llm, str):
        from .llm import llm as load

        return load(llm)
    if callable(getattr(llm, "score_records", None)) and hasattr(llm, "id"):
        return llm
    raise TypeError(f"llm must be a model from jl.llm(...), a spec string or None, got {type(llm).__name__}.")


def _open_cache(cache) -> ScoreCache | None:
    if cache is None or cache is False:
        return None
    if cache is True:
        return ScoreCache(default_cache())
    if isinstance(cache, (str, os.PathLike)):
        return ScoreCache(cache)
    raise TypeError(f"cache must be True, a file path, or None, got {type(cache).__name__}.")


def _without_done(df, task, model, prompt) -> np.ndarray:
    """The frame's own zero-shot suggestions from this model and prompt (NaN rows elsewhere)."""
    from .frame import probs as probs_of

    same = df["llm_model"].eq(model.id).fillna(False).to_numpy(dtype=bool) & df["llm_prompt"].eq(prompt.hash).fillna(
        False
    ).to_numpy(dtype=bool)
    if "llm_source" in df:  # learned suggestions are not the model's scores
        same &= df["llm_source"].isna().to_numpy() | df["llm_source"].eq("zero-shot").fillna(False).to_numpy(dtype=bool)
    held = probs_of(df, task)
    held[~same] = np.nan
    return held


def gives_vectors(model: LLM) -> bool:
    """Whether ``model`` reads record vectors in its scoring pass (llama.cpp does): :attr:`LLM.gives_vectors`."""
    return bool(getattr(model, "gives_vectors", False))


def _score(model, task, prompt, record_text: pd.Series, cache, batch: int, progress: bool, held, vectors=False):
    """Raw scores of every record: from ``held``, the cache, else the model (batch by batch).

    ``vectors=True`` (and a model that gives them): the records' vectors too, as a fourth value (else
    ``None``); a record cached without its vector is scored again.
    """
    k = len(task.labels)
    vectors = vectors and gives_vectors(model)
    hashes = text_hashes(record_text)
    raw = np.full((len(record_text), k), np.nan)
    notes = np.full(len(record_text), None, dtype=object)
    errors = np.full(len(record_text), None, dtype=object)
    V = None
    if held is not None:
        raw[:] = held
    if cache is not None:
        todo = np.flatnonzero(np.isnan(raw).any(axis=1))
        cached, cached_notes = cache.get(model.id, prompt.hash, hashes[todo].tolist(), k)
        cached[_cut_elsewhere(model, cached_notes)] = (
            np.nan
        )  # cut under another context setting: scored again, so a larger context counts
        raw[todo], notes[todo] = cached, cached_notes
        if vectors:
            V = cache.get_vectors(model.id, prompt.hash, hashes.tolist())
    missing = np.isnan(raw).any(axis=1)
    if vectors:
        missing |= True if V is None else np.isnan(V).any(axis=1)
    todo = np.flatnonzero(missing)
    bar = _progress(len(todo), progress, model)
    start = 0
    while start < len(todo):
        if vectors and not gives_vectors(model):  # it said so on its first call: score only what lacks a score
            vectors = False
            rest = todo[start:]
            todo = np.concatenate([todo[:start], rest[np.isnan(raw[rest]).any(axis=1)]])
            if bar is not None:
                bar.total = len(todo)
                bar.refresh()
        # with vectors, one record first: a model that gives none (an Ollama model the server will not
        # embed with) says so there, before a batch of records whose scores are cached is scored again
        rows = todo[start : start + (1 if vectors and start == 0 else batch)]
        start += len(rows)
        result = model.score_records(task, record_text.iloc[rows].tolist(), prompt=prompt, vectors=vectors)
        raw[rows], notes[rows], errors[rows] = result.probs, result.warnings, result.errors
        if cache is not None:
            cache.put(model.id, prompt.hash, hashes[rows].tolist(), result.probs, result.warnings)
        if result.vectors is not None:
            V = put_rows(V, len(record_text), rows, result.vectors)
            if cache is not None:
                cache.put_vectors(model.id, prompt.hash, hashes[rows].tolist(), result.vectors)
        if bar is not None:
            bar.update(len(rows))
    if bar is not None:
        bar.close()
    return raw, notes, errors, V


def _cut_elsewhere(model: LLM, notes: Sequence[str | None]) -> np.ndarray:
    """Per note, whether it says a text was cut to fit another context setting than ``model``'s now."""
    cut_as = getattr(model, "cuts_as", None)
    notes = pd.Series(list(notes), dtype=object)
    if cut_as is None:
        return np.zeros(len(notes), dtype=bool)
    cut = notes.str.contains(" cut to ", regex=False, na=False)
    now = notes.str.contains(re.escape(cut_as) + r"(?!\d)", na=False)  # n_ctx=4096 is not n_ctx=40960
    return (cut & ~now).to_numpy(dtype=bool)


def _calibrate(raw: np.ndarray, task: Task, calibrate, prior: np.ndarray | None) -> np.ndarray:
    if task.kind != "single" or calibrate is None or np.isnan(raw).all():
        return raw
    if isinstance(calibrate, calibration.Fitted):
        return calibrate.apply(raw)
    scored = int((~np.isnan(raw).any(axis=1)).sum())
    if calibrate == "batch" or (
        calibrate == "auto" and (prior is None or scored >= AUTO_BATCH_PER_LABEL * len(task.labels))
    ):
        return calibration.rescale(raw, calibration.batch_prior(raw))
    return calibration.rescale(raw, prior)


def _progress(total: int, show: bool, model: LLM):
    if not show or total == 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="rec", desc=f"jlabel {model.id.split('@')[0]}", leave=True)


def _suggest_events(store, task: Task, filled: pd.DataFrame, keys: pd.Index, failed: np.ndarray) -> None:
    from .frame import key_strings

    ok = ~failed
    events = pd.DataFrame(
        {
            "record": key_strings(keys)[ok],
            "action": "suggest",
            "suggestion": filled["llm_label"].astype(object).to_numpy()[ok],
            "confidence": filled["llm_confidence"].to_numpy()[ok],
            "model": filled["llm_model"].astype(object).to_numpy()[ok],
            "prompt": filled["llm_prompt"].astype(object).to_numpy()[ok],
        }
    )
    store.record_many(events)


def _spans(out, task, model, prompt, record_text, keys, batch, progress, store, cache) -> pd.DataFrame:
    store_cache = _open_cache(cache)
    hashes = text_hashes(record_text)
    # what a span run makes depends on how many spans and tokens it may write, too
    key = f"{model.id}#max_spans={getattr(model, 'max_spans', None)},max_span_tokens={getattr(model, 'max_span_tokens', None)}"
    try:
        found = store_cache.get_spans(key, prompt.hash, hashes.tolist()) if store_cache is not None else {}
        results: list[SpanResult | None] = [
            None if h not in found or _cut_elsewhere(model, found[h].notes).any() else found[h] for h in hashes
        ]
        todo = [i for i, r in enumerate(results) if r is None]
        bar = _progress(len(todo), progress, model)
        for start in range(0, len(todo), batch):
            rows = todo[start : start + batch]
            made = model.spans(task, record_text.iloc[rows].tolist(), prompt=prompt)
            for i, result in zip(rows, made):
                results[i] = result
            if store_cache is not None:  # batch by batch: an interrupted run keeps what it made
                store_cache.put_spans(key, prompt.hash, hashes[rows].tolist(), made)
            if bar is not None:
                bar.update(len(rows))
        if bar is not None:
            bar.close()
    finally:
        if store_cache is not None:
            store_cache.close()
    ok = np.array([r.error is None for r in results], dtype=bool)
    spans = [
        [{k: s[k] for k in ("start", "end", "label")} for s in r.spans] if r.error is None else None for r in results
    ]
    conf = [float(np.nanmin([s["confidence"] for s in r.spans])) if r.spans else np.nan for r in results]
    out["llm_label"] = pd.Series(spans, index=out.index, dtype=object)
    out["llm_confidence"] = np.where(ok, conf, np.nan)
    out["llm_model"] = pd.Series(np.where(ok, model.id, None), index=out.index).astype(STRING_DTYPE)
    out["llm_prompt"] = pd.Series(np.where(ok, prompt.hash, None), index=out.index).astype(STRING_DTYPE)
    message = [r.error or ("; ".join(r.notes) or None) for r in results]
    out["llm_error"] = pd.Series(message, index=out.index, dtype=object).astype(STRING_DTYPE)
    if store is not None:
        _suggest_events(store, task, out, keys, ~ok)
    return out


# --- Dask ------------------------------------------------------------------------------------

_WORKER_MODELS: dict[tuple, LLM] = {}
_WORKER_LOCK = threading.Lock()


def _is_dask(df: Any) -> bool:
    return type(df).__module__.startswith("dask") and hasattr(df, "map_partitions")


def _spec_of(llm: LLM | str | None) -> tuple[str | None, dict]:
    if llm is None or isinstance(llm, str):
        return llm, {}
    spec = getattr(llm, "spec", None)
    if spec is None:
        raise TypeError(
            f"A Dask run loads the model on each worker from its spec: pass llm as a spec string such as "
            f"'llamacpp:/path/model.gguf' (or None for the embedded model), not a {type(llm).__name__} object."
        )
    return spec


def _worker_model(spec: str | None, options: dict) -> LLM:
    key = (spec, tuple(sorted(options.items())))
    with _WORKER_LOCK:
        if key not in _WORKER_MODELS:
            from .llm import llm as load

            _WORKER_MODELS[key] = load(spec, **options)
        return _WORKER_MODELS[key]


def _partition(part: pd.DataFrame, task, spec, options, prompt, examples, calibrate, batch, cache, id) -> pd.DataFrame:
    model = _worker_model(spec, options)
    return preannotate(
        part,
        task,
        model,
        prompt=prompt,
        examples=examples,
        calibrate=calibrate,
        batch=batch,
        cache=cache,
        id=id,
        progress=False,
        resume=False,
    )


def _preannotate_dask(ddf, task, llm, *, prompt, examples, calibrate, batch, cache, id):
    if calibrate == "auto":
        calibrate = "content_free"
    if calibrate == "batch":
        raise ValueError(
            "calibrate='batch' needs every record's scores at once; on a Dask DataFrame use "
            "calibrate='content_free' (same result on every worker) or None."
        )
    if isinstance(examples, str) and examples == "auto":
        examples = None
    spec, options = _spec_of(llm)
    meta = ensure_columns(ddf._meta.copy(), task)
    return ddf.map_partitions(_partition, task, spec, options, prompt, examples, calibrate, batch, cache, id, meta=meta)
