"""Labeler: the keyboard-first labeling panel, an anywidget bound to the user's DataFrame.

The frame is never synced to the browser. The front end holds the current record and a
small prefetched window, which it asks for by custom message (with a request id); Python
answers. Every decision goes to the store (durable) before the answer lets the panel move
on, and into the frame's label columns at once.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
import zlib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import pandas as pd
import pyarrow as pa
import traitlets

from .frame import (
    cell_missing,
    check_labels_match,
    ensure_columns,
    key_strings,
    plain_data,
    probs,
    record_keys,
    texts,
    unlabeled,
)
from .llm.base import LLM
from .preannotate import ScoreCache, _open_cache, _score, default_cache, gives_vectors
from .store import DECISIONS, SOURCE_OF, Store, current_annotator, open_for, replay
from .task import Task

# the front end: js/ of the source tree, shipped into the wheel as jlabel/static (pyproject.toml)
_STATIC = Path(__file__).parent / "static"
if not _STATIC.is_dir():  # an editable install runs from the source tree
    _STATIC = Path(__file__).parent.parent / "js"


class StaleSuggestion(ValueError):
    """A decision made against a suggestion the record no longer has (``position``: its place in the queue)."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.position = position


_UNSAID = object()  # a decision that does not say which suggestion was shown (the Python API, an older front end)
WINDOW = 6  # records the front end holds ahead of the current one
PREFETCH = 3  # records whose live suggestions are computed ahead
FEW_SHOT = 8  # most recent session decisions given to the model as examples
_FRONT_ACTIONS = ("label", "accept", "reject", "skip", "confirm")
_SUGGESTION_COLUMNS = ("llm_label", "llm_confidence", "llm_probs", "llm_model", "llm_prompt", "llm_source")


class Labeler(anywidget.AnyWidget):
    """The labeling panel: shows one record at a time, records every decision.

    Parameters
    ----------
    df
        The records. Mutated in place: decisions land in its label columns
        (``label``, ``label_source``, ``annotator``, ``labeled_at``); also available as ``w.df``.
    task
        What is being labeled (:class:`jlabel.Task`).
    llm
        Optional model for live suggestions: a record without a pre-computed suggestion
        (the ``llm_*`` columns) gets one in a background thread while it is on screen; the
        next records are prefetched. The panel never waits for the model.
    store
        A :class:`jlabel.Store` (opened with ``task=``) or the path of its SQLite file. Opening on an existing
        store first brings ``df`` up to date (``store.apply(df)``). Without a store the
        journal lives in memory (undo still works; nothing survives the kernel).
    order
        The record keys to label, in order (e.g. from ``jl.queue``). Default: the
        unlabeled records in frame order.
    annotator
        Who is labeling; default: the store's annotator (``JUPYTERHUB_USER``, else the OS
        user). ``w.annotator = "bo"`` switches who the next decisions are recorded for.
    blind
        Share of records (0..1) whose suggestion is hidden, chosen at random with ``seed``;
        recorded in each event's meta so accept rates can be compared.
    context
        Other columns shown with each record.
    seed
        Seed of the blind-mode draw.
    id
        A column holding the record keys, if not the frame's index.
    learn
        Suggestions that learn from every label (single and multi-label tasks): a
        :class:`jlabel.Assistant` combines the model's probabilities (the frame's ``llm_probs`` when the
        panel opens, then the live ones) with a head trained on the labels so far. It refits in a
        background thread after each decision and rewrites the suggestions of the records ahead in the
        queue; ``llm_source`` (and the suggestion's ``source``) says ``zero-shot``, ``head`` or
        ``combined``. The model's live calls are then zero-shot (the labels teach the learner rather
        than fill the prompt) and hand it each record's vector too. Span tasks keep the model alone.
    cache
        With ``learn=True``: where the model's zero-shot scores and record vectors are kept, as by
        :func:`jlabel.preannotate` (``True``: the default score cache; a path; ``False``: none). The
        panel reads a record from it instead of calling the model, writes what its own calls return,
        and its learner finds the vectors of ``preannotate(learn=True)`` runs there. So a panel opened
        again in a new kernel, and ``jl.queue`` / ``jl.check`` after it, do not ask the model again.

    Notes
    -----
    Keys, while the panel has the focus (click it; Escape gives the focus back):
    ``1``-``9`` choose a label (multi: toggle it; spans: make it the active label, then
    select text with the mouse, click a span to remove it), ``Enter`` accept the suggestion
    (multi, spans: confirm), ``x`` reject the suggestion (then choose the right label),
    ``s`` skip, ``z`` or ``Backspace`` undo (any number of steps), ``ArrowLeft`` /
    ``ArrowRight`` previous / next record, ``/`` filter the labels (more than 9). Keys
    pressed faster than the kernel answers are applied in order, none is lost.

    Examples
    --------
    >>> import pandas as pd, jlabel as jl
    >>> df = pd.DataFrame({"text": ["good film", "bad film"]}, index=["a", "b"])
    >>> w = jl.Labeler(df, jl.Task(["pos", "neg"]), annotator="ana")
    >>> w.total, w.position
    (2, 0)
    >>> w.decide("pos")
    'a'
    >>> df.loc["a", "label"], df.loc["a", "label_source"], w.position
    ('pos', 'human', 1)
    """

    _esm = _STATIC / "labeler.js"
    _css = _STATIC / "labeler.css"

    # user-facing state
    position = traitlets.Int(0, help="Position of the shown record in the queue.").tag(sync=True)
    total = traitlets.Int(0, help="Records in the queue.").tag(sync=True)
    done = traitlets.Int(0, help="Records of the queue that hold a label.").tag(sync=True)
    annotator = traitlets.Unicode("").tag(sync=True)
    labels = traitlets.List(traitlets.Unicode()).tag(sync=True)
    kind = traitlets.Unicode("single").tag(sync=True)
    queue_name = traitlets.Unicode("").tag(sync=True)
    message = traitlets.Unicode("", help="The last notice (a model error, an empty queue...).").tag(sync=True)
    # plumbing
    _instructions = traitlets.Unicode("").tag(sync=True)
    _descriptions = traitlets.Dict().tag(sync=True)
    _context = traitlets.List(traitlets.Unicode()).tag(sync=True)

    def __init__(
        self,
        df: pd.DataFrame,
        task: Task,
        *,
        llm: Any = None,
        store: Store | str | Path | None = None,
        order: Sequence | pd.Index | np.ndarray | None = None,
        annotator: str | None = None,
        blind: float = 0.0,
        context: Sequence[str] = (),
        seed: int = 0,
        id: str | None = None,
        learn: bool = False,
        cache: str | Path | bool | None = True,
    ) -> None:
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"Labeler takes a pandas DataFrame as df, got {type(df).__name__}.")
        if not isinstance(learn, bool):
            raise TypeError(f"learn is True or False, got {learn!r}.")
        if not isinstance(task, Task):
            raise TypeError(f"task must be a jl.Task, got {type(task).__name__}: build one with jl.Task([...]).")
        if not (cache is None or isinstance(cache, (bool, str, os.PathLike))):
            raise TypeError(f"cache must be True, False or a file path, got {type(cache).__name__}.")
        if isinstance(blind, bool) or not isinstance(blind, (int, float)) or not 0 <= blind <= 1:
            raise ValueError(f"blind is the share of records whose suggestion is hidden, 0..1; got {blind!r}.")
        if isinstance(context, str):
            context = (context,)
        missing = [c for c in context if c not in df.columns]
        if missing:
            raise KeyError(f"context names column(s) {missing} that the frame lacks; it has {list(df.columns)}.")
        method = "spans" if task.kind == "spans" else "score"
        if llm is not None and not callable(getattr(llm, method, None)):
            raise TypeError(
                f"llm must be a jlabel model (from jl.llm(...)) with a {method}() method, got {type(llm).__name__}."
            )
        keys = record_keys(df, id)
        texts(df.iloc[:0], task)  # a task whose text columns the frame lacks fails here, with the columns named
        check_labels_match(df, task)
        probs(df.iloc[: min(len(df), 1)], task)  # llm_probs of another label set fails here
        self._store = open_for(store, task, annotator, what="the panel's decisions")
        annotator = current_annotator(annotator) if annotator is not None else self._store.annotator
        ensure_columns(df, task)  # only once every check passed: a refused Labeler leaves df as it was

        self.df = df
        self.task = task
        self._keys = keys
        self._index = self._seen_index = df.index  # rows are found by position: see _check_frame
        if self._store.conn.execute("SELECT 1 FROM events WHERE task = ? LIMIT 1", (task.id,)).fetchone():
            self._store.apply(df, id=id)  # a new store has nothing to apply: skip its pass over all keys
        self._llm = llm
        self._blind = float(blind)
        self._seed = int(seed)
        self._queue, queue_name = _queue(df, keys, order)
        self._labeled = ~unlabeled(df)[self._queue]
        # this session's decisions, for undo: (position, the row's label columns before, annotator, the
        # few-shot example the decision gave the model or None)
        self._history: list[tuple[int, tuple, str, tuple | None, int]] = []
        self._examples: list[tuple[str, Any]] = []  # the session's decisions as examples (the last FEW_SHOT are used)
        self._model_failure = ("", -1)  # the last model failure's message and queue position
        self._lock = threading.RLock()
        self._pending: set[int] = set()
        self._failed: dict[int, str] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jlabel-suggest") if llm else None
        # the learner: its own thread, so a refit never waits behind a model call
        self._learn = learn and task.kind != "spans"
        self._id = id
        self._assistant = None
        self._live_vectors: dict[int, np.ndarray] = {}  # vectors of live model calls made before the learner exists
        self._vector_asked: set[int] = set()  # labeled records the model was asked for a vector (see _fill_vectors)
        self._cache = False if cache is None else cache  # as preannotate's (None there means none too)
        self._score_cache: ScoreCache | None = None  # opened at its first use (see _scores_of)
        self._prompt = None  # the learning mode's zero-shot prompt (see _zero_shot)
        self._filling = False
        self._refit_wanted = False
        self._learner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jlabel-learn") if self._learn else None
        if self._learn:
            from .learn import blas_controller

            blas_controller()  # found here, in the caller's thread: scanning libraries from a thread can deadlock

        not_done = np.flatnonzero(~self._labeled)
        if order is not None:  # a queue of one's own (jl.assign): records another annotator labeled are still to do
            not_done = self._not_decided_by(annotator)
        start = int(not_done[0]) if len(not_done) else len(self._queue)
        message = ""
        if order is not None and len(self._queue) and not len(not_done):
            start, message = 0, "Every record of order= is decided: review them with the arrow keys."
        if len(df) == 0:
            message = "The frame is empty: there is nothing to label."
        elif len(self._queue) == 0 and order is not None:
            message = "order= is empty: the queue holds no record. Give the keys of the records to label."
        elif len(self._queue) == 0:
            message = "Every record is labeled: nothing is left in the queue. Pass order= to review records."
        super().__init__(
            position=start,
            total=len(self._queue),
            done=int(self._labeled.sum()),
            annotator=annotator,
            labels=list(task.labels),
            kind=task.kind,
            queue_name=queue_name,
            message=message,
            _instructions=task.instructions,
            _descriptions=dict(task.descriptions),
            _context=list(context),
        )
        self.on_msg(self._on_message)
        self._schedule(start)
        self._schedule_refit()

    # -- Python-side API ---------------------------------------------------------

    @property
    def store(self) -> Store:
        """The journal the decisions go to."""
        return self._store

    @property
    def current(self) -> Any:
        """The key of the shown record (None past the end of the queue)."""
        if 0 <= self.position < len(self._queue):
            return self._keys[self._queue[self.position]]
        return None

    def decide(self, value: Any = None, *, action: str = "label", duration_ms: int | None = None) -> Any:
        """Record a decision on the shown record and move on, as the panel's keys do.

        ``action`` is ``"label"`` (accept or edit is inferred from the suggestion shown),
        ``"accept"``, ``"reject"`` (the suggestion is wrong; ``value`` is the right label; without
        one the record stays unlabeled, as ``Store.apply`` replays it),
        ``"skip"`` or ``"confirm"`` (multi and spans). Returns the key of the decided record.
        """
        position = self.position
        self._decide(position, action, value, duration_ms)
        self._push(position)
        return self._keys[self._queue[position]]

    def undo(self) -> Any:
        """Undo this session's last decision and show that record again; returns its key."""
        position = self._undo()
        self._push(position)
        return self._keys[self._queue[position]]

    def _push(self, first: int) -> None:
        records = self._records(first, self.position + WINDOW)
        self.send({"type": "records", "id": None, "records": records, "position": self.position})

    def close(self) -> None:
        """Close the panel and stop the suggestion thread."""
        for name in ("_executor", "_learner"):
            executor = getattr(self, name, None)  # absent when __init__ failed early
            if executor is not None:
                executor.shutdown(wait=False, cancel_futures=True)
        if getattr(self, "_score_cache", None) is not None:
            with self._lock:
                cache, self._score_cache, self._cache = self._score_cache, None, False
            if cache is not None:
                cache.close()
        super().close()

    # -- messages ----------------------------------------------------------------

    def _on_message(self, _widget, content, _buffers) -> None:
        if not isinstance(content, Mapping):
            return
        kind, request = content.get("type"), content.get("id")
        # position and done change (and reach the front end) before the answer; the front end keeps
        # the old record on screen until the answer brings the next one
        try:
            if kind == "fetch":
                start = int(content.get("start", self.position))
                count = min(int(content.get("count", WINDOW)), 50)
                self.send({"type": "records", "id": request, "records": self._records(start, start + count)})
                return
            if kind == "decide":
                position = int(content["position"])
                action, value = content.get("action", "label"), content.get("value")
                self._decide(position, action, value, content.get("duration_ms"), content.get("shown", _UNSAID))
                first = min(position, self.position)
            elif kind == "undo":
                first = self._undo()
            else:
                raise ValueError(f"unknown message type {kind!r}")
            # the decided record, the next one and one ahead; the front end tops up its window by itself
            records = self._records(first, self.position + 2)
        except Exception as error:  # the panel shows the error and stays usable (every request gets its answer)
            self.send({"type": "error", "id": request, "error": str(error)})
            if isinstance(error, StaleSuggestion):  # the front end's copy is out of date: the record as it is now
                self.send({"type": "records", "id": None, "records": self._records(error.position, error.position + 1)})
            return
        self.send({"type": "records", "id": request, "records": records, "position": self.position})

    @traitlets.validate("position")
    def _valid_position(self, proposal) -> int:
        position = proposal["value"]
        total = len(getattr(self, "_queue", ()))
        if not 0 <= position <= total:
            raise traitlets.TraitError(f"position must be between 0 and {total} (the queue's length), got {position}.")
        return position

    @traitlets.validate("annotator")
    def _valid_annotator(self, proposal) -> str:
        try:
            return current_annotator(proposal["value"])
        except ValueError as error:
            raise traitlets.TraitError(str(error)) from None

    @traitlets.observe("position")
    def _position_changed(self, change) -> None:
        self._schedule(change["new"])

    # -- decisions ---------------------------------------------------------------

    def _decide(self, position: int, action: str, value: Any, duration_ms: Any, displayed: Any = _UNSAID) -> None:
        """One decision. ``displayed``: the suggestion label the front end showed (None: none), if it said."""
        if action not in _FRONT_ACTIONS:
            raise ValueError(f"Unknown action {action!r}: use one of {', '.join(_FRONT_ACTIONS)}.")
        if not 0 <= position < len(self._queue):
            raise IndexError(f"No record at position {position}: the queue holds {len(self._queue)} records.")
        self._check_frame()
        row = int(self._queue[position])
        key = self._keys[row]
        suggestion = self._suggestion(row)
        hidden = self._hidden(self._key(row))
        shown = suggestion is not None and not hidden
        if displayed is None:  # still coming when the key was pressed: the person decided without it
            shown = False
        elif (
            displayed is not _UNSAID
            and action != "skip"  # a skip takes nothing from the suggestion
            and (not shown or self.task.check_value(displayed) != self.task.check_value(suggestion["label"]))
        ):
            raise StaleSuggestion(
                f"The suggestion for record {key!r} changed while it was shown (the learner refitted): "
                f"look at it again, then decide.",
                position,
            )
        if action == "accept":
            if not shown:
                raise ValueError(f"Record {key!r} has no suggestion to accept: choose a label instead.")
            value = self.task.check_value(suggestion["label"])  # spans lose their confidences
        elif action in ("label", "confirm"):
            if value is None:
                raise ValueError(f"A {action!r} decision needs a value: the chosen label(s).")
            value = self.task.check_value(value)
            self._check_spans_fit(row, value)
            same = shown and value == self.task.check_value(suggestion["label"])  # compared in normal form
            action = "label" if not shown else ("accept" if same else "edit")
        elif action == "reject":
            if not shown:
                raise ValueError(f"Record {key!r} shows no suggestion to reject: choose a label instead.")
            value = None if value is None else self.task.check_value(value)
            self._check_spans_fit(row, value)
        elif value is not None:
            raise ValueError(f"A skip takes no value, got {value!r}.")
        if duration_ms is not None:
            duration_ms = max(0, int(duration_ms))
        with self._lock:
            column = self.df.columns.get_loc
            before = tuple(self.df.iat[row, column(c)] for c in ("label", "label_source", "labeled_at", "annotator"))
            # the label the frame held (e.g. imported gold): what the store restores once every decision is undone
            prior = None if cell_missing(before[0]) else plain_data(before[0])
            meta = {"blind": bool(hidden), "shown": bool(shown), "position": position, "before": prior}
            event = self._store.record(
                self._key(row),
                action,
                value,
                annotator=self.annotator,
                suggestion=suggestion["label"] if suggestion else None,
                confidence=suggestion["confidence"] if suggestion else None,
                model=suggestion["model"] if suggestion else None,
                prompt=suggestion["prompt"] if suggestion else None,
                duration_ms=duration_ms,
                meta=meta,
            )
            example = None
            if action != "skip":
                self._write(position, value, SOURCE_OF[action], pd.Timestamp.now(tz="UTC"), self.annotator)
                if value is not None and self._llm is not None:
                    example = (self._text(row), value)
                    self._examples.append(example)
        self._history.append((position, before, self.annotator, example, event))
        with self.hold_sync():  # done and position reach the front end as one message
            self.done = int(self._labeled.sum())
            self.position = min(position + 1, len(self._queue))
        if action != "skip":
            self._schedule_refit()

    def _undo(self) -> int:
        if not self._history:
            raise ValueError(
                "Nothing left to undo in this panel: undo takes back this panel's own decisions. To change an "
                "earlier one, open a panel on that record (order=[key]) and label it again."
            )
        self._check_frame()
        position, before, annotator, example, event = self._history[-1]
        row = int(self._queue[position])
        key = self._key(row)
        with self._lock:
            if self._top_decision(key, annotator) != event:  # undo pops the top one: it would undo another's
                raise ValueError(
                    f"Record {key} was decided again as {annotator} after this panel's decision (in another panel "
                    f"or kernel on the same store): undo it there first."
                )
            self._store.record(key, "undo", annotator=annotator)
            self._history.pop()  # only once the undo is journalled: a refused one can be tried again
            if example is not None:  # an undone decision no longer teaches the model
                self._examples[:] = [e for e in self._examples if e is not example]
            state = self._replay(key)
            if state is None:  # no decision survives in the store: back to what the frame held
                label, source, when, who = before
                if cell_missing(label):
                    self._write(position, None, None, None, None)
                else:
                    self._write(position, label, _display(source) or None, when, _display(who) or None)
            else:
                self._write(position, state["label"], state["label_source"], state["labeled_at"], state["annotator"])
        with self.hold_sync():
            self.done = int(self._labeled.sum())
            self.position = position
        self._schedule_refit()
        return position

    def _not_decided_by(self, annotator: str) -> np.ndarray:
        """Queue positions still to do for ``annotator``: unlabeled, or labeled in the store by others only.

        A label the frame had from elsewhere (no decision in the store) counts as done.
        """
        state = self._store.state(per_annotator=True)
        alive = state[state["status"].notna()]
        mine = set(alive.index[alive["annotator"] == annotator].astype(str))
        labeled = alive[alive["label"].notna() & (alive["annotator"] != annotator)]  # a skip labels nothing
        others = set(labeled.index.astype(str)) - mine
        queued = key_strings(self._keys[self._queue])
        return np.flatnonzero([not done or key in others for key, done in zip(queued, self._labeled)])

    def _top_decision(self, key: str, annotator: str) -> int | None:
        """The id of ``annotator``'s surviving decision on ``key`` that an undo would pop."""
        state = replay(self._record_events(key), per_annotator=True)
        mine = state[(state["annotator"] == annotator) & state["status"].notna()]
        return int(mine["event"].iloc[0]) if len(mine) else None

    def _replay(self, key: str) -> Mapping | None:
        """The store's state of one record (None when no decision survives)."""
        state = replay(self._record_events(key))
        if state.empty or pd.isna(state["status"].iloc[0]) or cell_missing(state["label"].iloc[0]):
            return None
        return state.iloc[0].to_dict()

    def _record_events(self, key: str) -> pd.DataFrame:
        """The decisions and undos journalled for one record of this task, in order."""
        names = (*DECISIONS, "undo")
        rows = self._store.conn.execute(
            f"SELECT id, ts, record, annotator, action, value FROM events WHERE record = ? AND task = ? "
            f"AND action IN ({','.join('?' * len(names))}) ORDER BY id",
            (key, self.task.id, *names),
        ).fetchall()
        events = pd.DataFrame.from_records(rows, columns=["id", "ts", "record", "annotator", "action", "value"])
        events["ts"] = pd.to_datetime(events["ts"].astype("float64"), unit="s", utc=True)
        return events

    def _write(self, position: int, value, source, when, annotator) -> None:
        """The label columns of the record at queue ``position``, in place; None (or NA) leaves a cell empty."""
        row = int(self._queue[position])
        column = self.df.columns.get_loc
        # iat sets one cell without validating the whole column: O(1) on a 1,000,000-row frame
        self.df.iat[row, column("label")] = _cell(self.df["label"].dtype, value)
        self.df.iat[row, column("label_source")] = pd.NA if value is None or cell_missing(source) else source
        self.df.iat[row, column("annotator")] = pd.NA if value is None or cell_missing(annotator) else annotator
        self.df.iat[row, column("labeled_at")] = pd.NaT if value is None or cell_missing(when) else when
        self._labeled[position] = value is not None

    # -- what the front end sees -------------------------------------------------

    def _check_frame(self) -> None:
        """Refuse to go on when the frame's rows moved since the panel opened: rows are found by position."""
        index = self.df.index
        if index is self._seen_index:
            return
        if not index.equals(self._index):
            raise ValueError(
                "The frame was reordered or its rows changed since the panel opened (sort_values(inplace=True), "
                "rows added or dropped): its rows no longer match the panel's records. Open a new jl.Labeler."
            )
        self._seen_index = index  # the same keys in the same order (the index was set again)

    def _records(self, start: int, stop: int) -> list[dict]:
        start, stop = max(0, start), min(len(self._queue), stop)
        if start >= stop:
            return []
        self._check_frame()
        rows = self._queue[start:stop]
        needed = [*self.task.text_columns, *self._context, "label", "label_source", *_SUGGESTION_COLUMNS]
        with self._lock:
            sub = self.df.iloc[rows, self.df.columns.get_indexer(list(dict.fromkeys(needed)))]
            text = texts(sub, self.task).tolist()
            columns = {c: sub[c].tolist() for c in ("label", "label_source", *self._context)}
            suggestions = self._suggestions(sub)
        keys = key_strings(self._keys[rows])
        out = []
        for i, row in enumerate(rows.tolist()):
            key = keys[i]
            label = columns["label"][i]
            record = {
                "position": start + i,
                "key": key,
                "text": text[i],
                "context": {c: _display(columns[c][i]) for c in self._context},
                "label": None if cell_missing(label) else plain_data(label),
                "label_source": _display(columns["label_source"][i]) or None,
                "suggestion": None,
                "suggestion_state": "none",
                "error": None,
            }
            suggestion = suggestions[i]
            if suggestion is not None:
                record["suggestion_state"] = "ready"
                record["suggestion"] = suggestion
            elif row in self._failed:
                record["suggestion_state"] = "error"
                record["error"] = self._failed[row]
            elif self._llm is not None:
                record["suggestion_state"] = "coming"
            if suggestion is not None and self._hidden(key):
                record["suggestion_state"], record["suggestion"] = "hidden", None
            out.append(record)
        return out

    def _suggestion(self, row: int) -> dict | None:
        """The suggestion stored for one frame row (None without one)."""
        return self._suggestions(self.df.iloc[[row], self.df.columns.get_indexer(list(_SUGGESTION_COLUMNS))])[0]

    def _suggestions(self, sub: pd.DataFrame) -> list[dict | None]:
        matrix = probs(sub, self.task) if self.task.kind != "spans" else np.full((len(sub), 1), np.nan)
        labels, confidences = sub["llm_label"].tolist(), sub["llm_confidence"].tolist()
        models, prompts = sub["llm_model"].tolist(), sub["llm_prompt"].tolist()
        sources = sub["llm_source"].tolist() if "llm_source" in sub.columns else [None] * len(sub)
        out = []
        for i, label in enumerate(labels):
            if cell_missing(label):
                out.append(None)
                continue
            out.append(
                {
                    "label": plain_data(label),
                    "confidence": None if cell_missing(confidences[i]) else float(confidences[i]),
                    "probs": None if np.isnan(matrix[i]).any() else [round(float(p), 6) for p in matrix[i]],
                    "model": _display(models[i]) or None,
                    "prompt": _display(prompts[i]) or None,
                    "source": _display(sources[i]) or None,
                }
            )
        return out

    def _key(self, row: int) -> str:
        """The key of frame row ``row`` as the store writes it (what ``Store.apply`` looks up)."""
        return key_strings(self._keys[[row]])[0]

    def _check_spans_fit(self, row: int, value) -> None:
        """Spans must lie inside the record's text (offsets in code points, as Python counts)."""
        if self.task.kind != "spans" or not value:
            return
        length = len(self._text(row))
        outside = [s for s in value if s["end"] > length]
        if outside:
            raise ValueError(
                f"Span {outside[0]} ends past the end of record {self._key(row)!r}, whose text has {length} "
                f"characters: every span must lie inside the text (0 <= start < end <= {length})."
            )

    def _hidden(self, key: str) -> bool:
        if self._blind <= 0:
            return False
        draw = zlib.crc32(f"{self._seed}:{key}".encode()) / 2**32
        return draw < self._blind

    def _text(self, row: int) -> str:
        return texts(self.df.iloc[[row]], self.task).iloc[0]

    # -- live suggestions --------------------------------------------------------

    def _schedule(self, position: int) -> None:
        if self._executor is None:
            return
        rows = self._queue[max(0, position) : position + PREFETCH]
        if not len(rows):
            return
        with self._lock:
            lacking = self.df["llm_label"].iloc[rows].isna().to_numpy()
            if self._assistant is not None:  # a suggestion the learner made still wants the model's call (and vector)
                lacking = lacking | np.isnan(self._assistant.base[rows]).any(axis=1)
            lacking = lacking & ~self._labeled[position : position + len(rows)]
        for offset in np.flatnonzero(lacking).tolist():
            row = int(rows[offset])
            if row not in self._pending and row not in self._failed:
                self._pending.add(row)
                self._executor.submit(self._suggest, position + offset, row, self._examples[-FEW_SHOT:])

    def _suggest(self, position: int, row: int, examples: list) -> None:
        key = self._key(row)
        try:
            if self.task.kind == "spans":
                result = self._llm.spans(self.task, [self._text(row)], examples=examples)[0]
                if result.error:
                    raise RuntimeError(result.error)
                with self._lock:
                    self._write_spans(row, result.spans)
                    self._record_suggestion(row)
            else:
                vector, prompt = None, None
                # learning: zero-shot, with the record's vector where the model gives one (the labels teach
                # the learner instead of filling the prompt); a model with score() alone gives probabilities
                if self._learn and isinstance(self._llm, LLM):
                    matrix, vector = self._scores_of(row)
                    prompt = self._zero_shot().hash
                else:
                    matrix = self._llm.score(self.task, [self._text(row)], examples=() if self._learn else examples)
                matrix = np.asarray(matrix, dtype=np.float64)
                if matrix.shape != (1, len(self.task.labels)):
                    raise ValueError(f"the model returned probabilities of shape {matrix.shape}")
                with self._lock:
                    self._write_suggestion(row, matrix[0], "zero-shot", prompt=prompt)
                    if self._assistant is None:
                        if vector is not None:
                            self._live_vectors[row] = vector
                    else:
                        self._assistant.set_base([row], matrix)
                        if vector is not None:
                            self._assistant.set_vector_rows([row], vector)
                        self._write_learned([row], record=False)
                    self._record_suggestion(row)
            failure, failed_at = self._model_failure
            if failure and self.message == failure and self.position != failed_at:  # the model works again
                self.message = ""
                self._model_failure = ("", -1)
        except Exception as error:
            with self._lock:
                self._failed[row] = f"{type(error).__name__}: {error}"
                self.df.iat[row, self.df.columns.get_loc("llm_error")] = self._failed[row]
            self.message = (
                f"The model failed on record {key!r} ({type(error).__name__}: {error}). "
                f"Label it yourself: the panel keeps working without the suggestion."
            )
            self._model_failure = (self.message, position)
        finally:
            self._pending.discard(row)
        self.send({"type": "records", "id": None, "records": self._records(position, position + 1)})
        self._fill_vectors()

    def _fill_vectors(self) -> None:
        """While the model is idle, ask it for the vector of a labeled record the learner has none for.

        Labels already in the frame when the panel opened (or given before the model answered) have no
        vector; the learner imputes one from the words, and a real one teaches it more (on the news set
        with half of 200 labels lacking one, 0.863 against 0.856 held out). One record at a time, so a
        prefetch waits for at most one call; the frame's suggestion columns are left as they were.
        """
        if self._executor is None or not isinstance(self._llm, LLM) or not gives_vectors(self._llm):
            return
        with self._lock:
            if self._assistant is None or self._pending or self._filling:
                return
            lacking = [r for r in self._assistant.labeled_without_vector().tolist() if r not in self._vector_asked]
            if not lacking:
                return
            self._filling = True
            self._vector_asked.add(lacking[0])
        try:
            self._executor.submit(self._fill_vector, lacking[0], len(lacking) == 1)
        except RuntimeError:  # the panel was closed
            self._filling = False

    def _fill_vector(self, row: int, last: bool) -> None:
        try:
            matrix, vector = self._scores_of(row)
            if vector is not None:
                with self._lock:
                    if np.isnan(self._assistant.base[row]).any():
                        self._assistant.set_base([row], matrix)
                    self._assistant.set_vector_rows([row], vector)
        except Exception:  # a labeled record's vector is an extra: the learner imputes one without it
            pass
        finally:
            with self._lock:
                self._filling = False
        if last:
            self._schedule_refit()
        self._fill_vectors()

    def _scores_of(self, row: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The model's zero-shot probabilities ``(1, k)`` and vector (``None``: it gives none) of a record.

        Read and written through the score cache as :func:`jlabel.preannotate` does, so a record cached
        there costs no call. Raises when the model fails on the record.
        """
        text = pd.Series([self._text(row)])
        with self._lock:
            cache = self._open_score_cache()
        try:
            raw, _, errors, vectors = _score(self._llm, self.task, self._zero_shot(), text, cache, 1, False, None, True)
        except (sqlite3.Error, OSError) as error:
            with self._lock:
                self._drop_score_cache(error)
            raw, _, errors, vectors = _score(self._llm, self.task, self._zero_shot(), text, None, 1, False, None, True)
        if errors[0] is not None:
            raise RuntimeError(errors[0])
        return raw, None if vectors is None else vectors[0]

    def _zero_shot(self):
        """The prompt of the learning mode's model calls (the labels teach the learner, not the prompt)."""
        if self._prompt is None:
            self._prompt = self._llm.prompt_for(self.task, None, ())
        return self._prompt

    def _open_score_cache(self) -> ScoreCache | None:
        """The score cache (caller holds the lock), opened at first use; None when the panel keeps none."""
        if self._score_cache is None and self._cache is not False:
            try:
                self._score_cache = _open_cache(self._cache)
            except (sqlite3.Error, OSError) as error:
                self._drop_score_cache(error)
        return self._score_cache

    def _drop_score_cache(self, error: Exception) -> None:
        """Go on without the score cache (caller holds the lock): the suggestions matter more than keeping them."""
        where = default_cache() if self._cache is True else self._cache
        self.message = (
            f"The score cache {str(where)!r} cannot be used ({type(error).__name__}: {error}); "
            "the panel goes on without it. Pass cache= a writable file, or cache=False."
        )
        if self._score_cache is not None:
            self._score_cache.close()
        self._score_cache, self._cache = None, False

    # -- learning from every label --------------------------------------------------

    def _schedule_refit(self) -> None:
        """Ask the learner thread for a refit; several requests while one runs make one more refit."""
        if self._learner is None:
            return
        with self._lock:
            if self._refit_wanted:
                return
            self._refit_wanted = True
        self._learner.submit(self._refit)

    def _refit(self) -> None:
        from .learn import Assistant

        try:
            with self._lock:
                self._refit_wanted = False
                labels = self.df["label"].copy()
                if self._assistant is None:
                    base = probs(self.df, self.task)
            if self._assistant is None:
                # features of every record, computed once (outside the lock: the panel keeps working)
                assistant = Assistant(self.df, self.task, probs=base, vectors="cache", cache=self._cache, id=self._id)
                with self._lock:  # live calls that finished while it was built
                    current = probs(self.df, self.task)
                    late = np.flatnonzero(np.isnan(base).any(axis=1) & ~np.isnan(current).any(axis=1))
                    if len(late):
                        assistant.set_base(late, current[late])
                    if self._live_vectors:
                        rows = list(self._live_vectors)
                        assistant.set_vector_rows(rows, np.array([self._live_vectors[r] for r in rows]))
                        self._live_vectors.clear()
                    self._assistant = assistant
            self._assistant.fit(labels=labels)
            self._fill_vectors()
            if self._assistant.source == "zero-shot":
                return
            with self._lock:
                position = self.position
                rows = self._queue[position : position + WINDOW]
                rows = rows[~self._labeled[position : position + len(rows)]]
                changed = self._write_learned(rows, record=True)
        except Exception as error:  # the panel keeps the model's own suggestions
            self.message = (
                f"Learning from the labels failed ({type(error).__name__}: {error}); suggestions stay the model's."
            )
            return
        if changed:
            self.send({"type": "records", "id": None, "records": self._records(position, position + WINDOW)})

    def _write_learned(self, rows, *, record: bool) -> bool:
        """Learned suggestions for frame rows ``rows`` (caller holds the lock); True when one changed."""
        rows = np.asarray(rows, dtype=np.int64)
        if self._assistant is None or not self._assistant.fitted or not len(rows):
            return False
        if self._llm is not None and self._assistant.source != "head":
            rows = rows[~np.isnan(self._assistant.base[rows]).any(axis=1)]  # the model's own call comes first
            if not len(rows):
                return False
        matrix, source = self._assistant.predict(rows)
        changed = False
        for row, p, where in zip(rows.tolist(), matrix, source):
            if where is None or np.isnan(p).any():
                continue
            before = self._suggestion(row)
            self._write_suggestion(row, p, str(where), keep_model=True)
            after = self._suggestion(row)
            if before is None or before["label"] != after["label"] or before["source"] != after["source"]:
                changed = True
                if record:
                    self._record_suggestion(row)
        return changed

    def _record_suggestion(self, row: int) -> None:
        """A ``suggest`` event for a live suggestion, as jl.preannotate writes for its own."""
        suggestion = self._suggestion(row)
        self._store.record(
            self._key(row),
            "suggest",
            suggestion=suggestion["label"],
            confidence=suggestion["confidence"],
            model=suggestion["model"],
            prompt=suggestion["prompt"],
            meta={"source": suggestion["source"]} if suggestion["source"] else None,
        )

    def _set_probs(self, row: int, p: np.ndarray) -> None:
        """One row of the Arrow ``llm_probs`` column, without rewriting the column.

        Arrow arrays are immutable: the new column is the old one's slices around the row
        (zero-copy chunks), compacted once in a while.
        """
        column = self.df["llm_probs"]
        if not isinstance(column.dtype, pd.ArrowDtype):  # a user's own column: one cell, by position
            if column.dtype != object:  # e.g. all-missing floats: lists need an object column
                self.df["llm_probs"] = column.astype(object)
            self.df.iat[row, self.df.columns.get_loc("llm_probs")] = p.tolist()  # the index may repeat: no .loc
            return
        chunked = column.array.__arrow_array__()
        if isinstance(chunked, pa.Array):
            chunked = pa.chunked_array([chunked])
        value = pa.array([p.tolist()], type=chunked.type)
        new = pa.chunked_array([*chunked[:row].chunks, value, *chunked[row + 1 :].chunks], type=chunked.type)
        if new.num_chunks > 256:
            new = pa.chunked_array([new.combine_chunks()])
        self.df["llm_probs"] = pd.Series(pd.arrays.ArrowExtensionArray(new), index=self.df.index, name="llm_probs")

    def _write_spans(self, row: int, spans: list[dict]) -> None:
        column = self.df.columns.get_loc
        confidences = [float(s["confidence"]) for s in spans if s.get("confidence") is not None]
        self.df.iat[row, column("llm_label")] = self.task.check_value(spans)
        self.df.iat[row, column("llm_confidence")] = min(confidences) if confidences else np.nan
        self.df.iat[row, column("llm_model")] = str(getattr(self._llm, "id", type(self._llm).__name__))
        prompt = getattr(self._llm, "prompt_hash", None)
        if prompt is not None:
            self.df.iat[row, column("llm_prompt")] = str(prompt)

    def _write_suggestion(
        self, row: int, p: np.ndarray, source: str | None = None, keep_model: bool = False, prompt: str | None = None
    ) -> None:
        labels = np.array(self.task.labels, dtype=object)
        if self.task.kind == "single":
            p = p / p.sum()
            best = int(np.argmax(p))
            label, confidence = labels[best], float(p[best])
        else:
            chosen = p > 0.5
            label = list(labels[chosen])
            confidence = float(np.where(chosen, p, 1 - p).prod())
        column = self.df.columns.get_loc
        self.df.iat[row, column("llm_confidence")] = confidence
        self._set_probs(row, p)
        if "llm_source" in self.df.columns:
            self.df.iat[row, column("llm_source")] = pd.NA if source is None else source
        # a learned suggestion keeps llm_model: it names the model whose probabilities it combines
        if not (keep_model and (self._llm is None or not cell_missing(self.df.iat[row, column("llm_model")]))):
            self.df.iat[row, column("llm_model")] = str(getattr(self._llm, "id", type(self._llm).__name__))
            prompt = prompt or getattr(self._llm, "prompt_hash", None)
            if prompt is not None:
                self.df.iat[row, column("llm_prompt")] = str(prompt)
        # the label last: code reading the frame while the panel writes sees a whole suggestion once it sees the label
        self.df.iat[row, column("llm_label")] = label


def _queue(df: pd.DataFrame, keys: pd.Index, order) -> tuple[np.ndarray, str]:
    """Row positions of the records to label, and a name for the queue."""
    if order is None:
        return np.flatnonzero(unlabeled(df)), "unlabeled, frame order"
    if isinstance(order, (str, bytes)) or not hasattr(order, "__len__"):
        raise TypeError(f"order must be a sequence of record keys (e.g. from jl.queue), got {order!r}.")
    wanted = pd.Index(list(order) if not isinstance(order, (pd.Index, np.ndarray, pd.Series)) else order)
    rows = keys.get_indexer(wanted)
    missing = rows < 0
    if missing.any():
        # keys as the store writes them (strings) are accepted too
        rows[missing] = key_strings(keys).get_indexer(key_strings(wanted[missing]))
        missing = rows < 0
    if missing.any():
        unknown = wanted[missing][:10].tolist()
        more = f" and {int(missing.sum()) - 10} more" if missing.sum() > 10 else ""
        raise KeyError(
            f"order names {int(missing.sum())} key(s) that are not records of the frame: {unknown}{more}. "
            f"Use keys from the frame's index (or its id= column)."
        )
    twice = pd.Index(rows).duplicated()  # after mapping to rows: 1 and "1" name one record
    if twice.any():
        dups = keys[pd.unique(rows[twice])[:10]].tolist()
        raise ValueError(f"order lists records more than once: {dups}. Give each record once.")
    return rows.astype(np.int64), f"custom order ({len(rows)} records)"


def _cell(dtype, value):
    """A label value as one cell of a column of ``dtype`` (missing: NA, or None in object columns)."""
    if value is None:
        return None if pd.api.types.is_object_dtype(dtype) else pd.NA
    return value


def _display(value) -> str:
    if cell_missing(value):
        return ""
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:g}"
    if isinstance(value, (list, dict)):
        return json.dumps(plain_data(value), ensure_ascii=False)
    return str(value)
