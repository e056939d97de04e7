"""The append-only journal of labeling decisions, in a SQLite file.

The state of a record is the replay of its events: the latest decision of each
annotator, undo applied (undo is an event, never a delete). Each ``record()`` is its
own committed transaction, durable when it returns; several processes may write one
store at once (WAL mode, a busy timeout).
"""

from __future__ import annotations

import getpass
import json
import os
import sqlite3
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from .frame import STRING_DTYPE, cell_missing, ensure_columns, key_strings, record_keys
from .task import Task

ACTIONS = ("label", "accept", "edit", "reject", "skip", "undo", "suggest", "check")
DECISIONS = ("label", "accept", "edit", "reject", "skip")
SOURCE_OF = {"label": "human", "accept": "llm_accepted", "edit": "llm_edited", "reject": "llm_edited"}
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jlabel_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    record TEXT NOT NULL,
    task TEXT NOT NULL,
    annotator TEXT,
    action TEXT NOT NULL,
    value TEXT,
    suggestion TEXT,
    confidence REAL,
    model TEXT,
    prompt TEXT,
    duration_ms INTEGER,
    meta TEXT
);
CREATE INDEX IF NOT EXISTS events_record ON events (record);
"""
_COLUMNS = (
    "id",
    "ts",
    "record",
    "task",
    "annotator",
    "action",
    "value",
    "suggestion",
    "confidence",
    "model",
    "prompt",
    "duration_ms",
    "meta",
)

_INSERT = f"INSERT INTO events ({', '.join(_COLUMNS[1:])}) VALUES ({', '.join('?' * (len(_COLUMNS) - 1))})"


class StoreError(Exception):
    """A store file that cannot be used: corrupt, not a jlabel store, or another task's."""


def current_annotator(annotator: str | None = None) -> str:
    """Who is labeling: an explicit ``annotator``, else ``JUPYTERHUB_USER``, else the OS user.

    The explicit name wins so that one notebook can record several people (a lead
    entering a colleague's paper labels, a test simulating two annotators).
    """
    if annotator is not None:
        if not isinstance(annotator, str) or not annotator.strip():
            raise ValueError(f"annotator must be a non-empty string, got {annotator!r}.")
        return annotator.strip()
    hub_user = os.environ.get("JUPYTERHUB_USER", "").strip()
    if hub_user:
        return hub_user
    try:
        return getpass.getuser()
    except Exception:  # no user name in a bare container: still record something honest
        return "unknown"


class Store:
    """The journal of decisions in a SQLite file.

    Parameters
    ----------
    path
        The SQLite file; created if it does not exist. A file that is not a jlabel
        store raises :class:`StoreError` and is never modified.
    task
        The task this store is for. A new store remembers it; an existing store for a
        different task (another ``task.id``) is refused unless ``allow_other_task=True``.
        Without it the store takes the task its file holds; a store with no task at all
        can be read but refuses ``record()``, since its events could be neither checked nor
        found again by task. Events an older jlabel journalled without a task are checked
        against the first task bound to the file and then belong to it.
    annotator
        The default annotator of ``record()``; see :func:`current_annotator`.

    Examples
    --------
    >>> import tempfile, os
    >>> task = Task(["spam", "ham"])
    >>> store = Store(os.path.join(tempfile.mkdtemp(), "labels.db"), task=task, annotator="ana")
    >>> _ = store.record("rec-1", "label", "spam", duration_ms=800)
    >>> store.state()["label"].tolist()
    ['spam']
    """

    def __init__(
        self,
        path: str | os.PathLike,
        task: Task | None = None,
        *,
        annotator: str | None = None,
        allow_other_task: bool = False,
        timeout: float = 30.0,
    ) -> None:
        if task is not None and not isinstance(task, Task):
            raise TypeError(f"task must be a jl.Task, got {type(task).__name__}.")
        self.path = Path(path)
        self.annotator = current_annotator(annotator)
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a folder; give a file path such as {self.path / 'labels.db'}.")
        if not self.path.parent.is_dir():
            raise StoreError(
                f"The folder {self.path.parent} does not exist, so the store {self.path} cannot be created there; "
                f"create the folder first or choose another path."
            )
        self._check_header()
        self._timeout = timeout
        self._pid = None
        self._conn = None
        self._open()
        self.task = self._bind_task(task, allow_other_task)

    # -- opening -----------------------------------------------------------------

    def _check_header(self) -> None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb") as f:
            header = f.read(16)
        if header != b"SQLite format 3\x00":
            raise StoreError(
                f"{self.path} is not a SQLite file (it starts with {header[:16]!r}), so it is not a jlabel "
                f"store. It was left untouched; choose another path for the store."
            )

    def _open(self) -> None:
        try:
            # check_same_thread=False: ipykernel runs widget messages on another thread than cells
            conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False)
            # look before writing anything: a file that is not ours must stay byte-for-byte as it was
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if tables and "events" not in tables:
                conn.close()
                raise StoreError(
                    f"{self.path} is a SQLite database but not a jlabel store (it has tables "
                    f"{sorted(tables)[:5]}). It was left untouched; choose another path for the store."
                )
            if "events" in tables:
                cols = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
                if not set(_COLUMNS) <= cols:
                    conn.close()
                    raise StoreError(f"{self.path} has an 'events' table that is not jlabel's; it was left untouched.")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            if "events" not in tables:
                conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as error:
            text = str(error).lower()
            if isinstance(error, sqlite3.OperationalError) and ("readonly" in text or "unable to open" in text):
                raise StoreError(
                    f"{self.path} cannot be opened for writing ({error}): the store needs to write there. Check "
                    f"that you may write to the file and its folder {self.path.parent}, or choose another path."
                ) from None
            raise StoreError(
                f"{self.path} cannot be read as a jlabel store ({error}). The file may be corrupt; it was left "
                f"untouched. Restore it from a backup or choose another path."
            ) from None
        self._conn = conn
        self._pid = os.getpid()

    @property
    def conn(self) -> sqlite3.Connection:
        # a connection must not cross fork(): reopen in a child process
        if self._pid != os.getpid():
            self._open()
        return self._conn

    def _bind_task(self, task: Task | None, allow_other_task: bool) -> Task | None:
        stored = dict(self.conn.execute("SELECT key, value FROM jlabel_meta").fetchall())
        if "task" in stored:
            stored_task = Task.from_dict(json.loads(stored["task"]))
            if task is None:
                return stored_task
            if task.id != stored_task.id and not allow_other_task:
                raise StoreError(
                    f"{self.path} belongs to another task (id {stored_task.id}); this task has id {task.id}: "
                    f"{_task_differences(stored_task, task)}. A task is its labels, descriptions, kind, "
                    f"instructions and text together, so a store keeps its events apart from any other task's. "
                    f"Open the store with the task it was made for, or use a new store file for this task. "
                    f"allow_other_task=True opens it for this task, with the other task's "
                    f"{self._count_other_tasks_events(task)} event(s) kept in the file but not shown."
                )
            if allow_other_task:
                self._warn_of_hidden_events(task)
            return task
        if task is not None:
            with self.conn:
                self.conn.execute("BEGIN IMMEDIATE")
                if self.conn.execute("SELECT 1 FROM jlabel_meta WHERE key = 'task'").fetchone() is None:
                    self._adopt_taskless_events(task)
                self.conn.execute(
                    "INSERT OR IGNORE INTO jlabel_meta VALUES ('task', ?), ('schema', ?)",
                    (json.dumps(task.to_dict()), str(SCHEMA_VERSION)),
                )
        return task

    def _count_other_tasks_events(self, task: Task) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM events WHERE task != ?", (task.id,)).fetchone()[0]

    def _warn_of_hidden_events(self, task: Task) -> None:
        """Say how many events allow_other_task=True leaves out: a silently empty store looks like lost work."""
        hidden = self._count_other_tasks_events(task)
        if hidden:
            warnings.warn(
                f"{self.path} holds {hidden} event(s) of another task; they are not shown, replayed or applied "
                f"for this task (id {task.id}). Read them with store.events(all_tasks=True), or open the store "
                f"with the task they were made for.",
                UserWarning,
                stacklevel=4,  # the caller of Store(...)
            )

    def _adopt_taskless_events(self, task: Task) -> None:
        """Give ``task`` the events journalled before the file had a task, once they are checked against it.

        Such events (task ``''``) were written by jlabel versions that let a store without a task
        record; left alone they would be invisible, and unchecked, once the store is opened with
        its task. Runs inside the transaction that binds the task: an event that does not fit
        leaves the file as it was.
        """
        rows = self.conn.execute(
            f"SELECT id, record, action, value FROM events WHERE task = '' AND action IN "
            f"({','.join('?' * len(DECISIONS))}) AND value IS NOT NULL",
            DECISIONS,
        ).fetchall()
        for event, record, action, value in rows:
            try:
                task.check_value(json.loads(value))
            except (TypeError, ValueError) as error:
                raise StoreError(
                    f"{self.path} holds decisions journalled before it had a task, and event {event} (record "
                    f"{record!r}, {action} {value}) does not fit this task: {error} Open the store with the task "
                    f"they were made for, or read them with jl.Store(path).events() and start a new store."
                ) from None
        self.conn.execute("UPDATE events SET task = ? WHERE task = ''", (task.id,))

    def close(self) -> None:
        """Close the connection (the file stays)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}, task={self.task.id if self.task else None!r})"

    # -- writing -----------------------------------------------------------------

    def record(
        self,
        record,
        action: str,
        value=None,
        *,
        annotator: str | None = None,
        suggestion=None,
        confidence: float | None = None,
        model: str | None = None,
        prompt: str | None = None,
        duration_ms: int | None = None,
        meta: Mapping | None = None,
    ) -> int:
        """Append one event in its own transaction; it is on disk when this returns.

        Returns the event id. ``value`` is the decision (a label for single, a list for
        multi and spans); it is validated against the task. A store without a task raises
        :class:`StoreError`: open it with ``Store(path, task=task)``.
        """
        self._require_task()
        row = self._row(record, action, value, annotator, suggestion, confidence, model, prompt, duration_ms, meta)
        cursor = self.conn.execute(_INSERT, row)
        return cursor.lastrowid

    def record_many(self, events: pd.DataFrame | Iterable[Mapping]) -> int:
        """Append many events in one transaction (bulk ``suggest`` or ``check`` events).

        ``events`` is a frame, or an iterable of dicts, with the arguments of :meth:`record`
        as columns (``record`` and ``action`` required). Validation is vectorised; if any
        event is invalid, nothing is written. Returns the number of events written.

        ``record_many(other.events())`` copies another store's events of this task (merging
        annotators' stores): a ``ts`` column keeps each event's time (datetimes, tz-naive
        ones taken as UTC, or UTC epoch seconds; a missing one is now), a ``task`` column
        must be this task's id, and an ``id`` column must be increasing: the events are
        journalled in that order and numbered by this store.
        """
        self._require_task()
        frame = events if isinstance(events, pd.DataFrame) else pd.DataFrame.from_records(list(events))
        if frame.empty:
            return 0
        missing = {"record", "action"} - set(frame.columns)
        if missing:
            raise ValueError(f"record_many needs columns {sorted(missing)}; got {list(frame.columns)}.")
        unknown = set(frame.columns) - set(_COLUMNS) - {"annotator"}
        if unknown:
            raise ValueError(f"Unknown event field(s) {sorted(unknown)}; events take {list(_COLUMNS[2:])}.")
        self._check_copied_ids(frame)
        self._check_copied_tasks(frame)
        column = {
            name: _nullable(frame[name]) if name in frame else pd.Series(None, index=frame.index, dtype=object)
            for name in _COLUMNS[2:]
        }
        action = column["action"]
        bad = ~action.isin(ACTIONS)
        if bad.any():
            raise ValueError(f"Unknown action {action[bad].iloc[0]!r}: use one of {', '.join(ACTIONS)}.")
        if column["record"].isna().any():
            raise ValueError("record must be the record's key, got a missing value.")
        value = column["value"]
        needs_value = action.isin(["label", "accept", "edit"]) & value.isna()
        if needs_value.any():
            raise ValueError(f"A {action[needs_value].iloc[0]!r} event needs the label as value.")
        takes_none = action.isin(["skip", "undo"]) & value.notna()
        if takes_none.any():
            raise ValueError(
                f"A {action[takes_none].iloc[0]!r} event takes no value, got {value[takes_none].iloc[0]!r}."
            )
        decided = action.isin(DECISIONS) & value.notna()
        if decided.any():
            value = value.copy()
            if self.task.kind == "single":
                wrong = decided & ~value.isin(self.task.labels)
                if wrong.any():
                    self.task.check_value(value[wrong].iloc[0])  # raises the clear error
            else:
                value[decided] = [self.task.check_value(v) for v in value[decided]]
        annotator = column["annotator"].fillna(self.annotator)
        duration = column["duration_ms"]
        if duration.notna().any() and (pd.to_numeric(duration, errors="coerce") < 0).any():
            raise ValueError("duration_ms must be >= 0.")
        now = np.full(len(frame), time.time())
        rows = zip(
            _epoch_seconds(frame["ts"], now) if "ts" in frame else now,
            column["record"].astype(str),
            np.full(len(frame), self.task.id),
            annotator,
            action,
            _dump_column(value),
            _dump_column(column["suggestion"]),
            pd.to_numeric(column["confidence"], errors="raise")
            .astype(object)
            .where(column["confidence"].notna(), None),
            column["model"],
            column["prompt"],
            pd.to_numeric(duration, errors="raise").astype(object).where(duration.notna(), None),
            _dump_column(column["meta"]),
        )
        rows = [
            (float(t), r, k, a, x, v, s, None if c is None else float(c), m, p, None if d is None else int(d), e)
            for t, r, k, a, x, v, s, c, m, p, d, e in rows
        ]
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany(_INSERT, rows)
        return len(rows)

    def _check_copied_ids(self, frame: pd.DataFrame) -> None:
        """An ``id`` column (another store's, from events()) is kept as an order, never as ids."""
        if "id" not in frame:
            return
        ids = pd.to_numeric(frame["id"], errors="coerce")
        if not (ids.notna().all() and ids.is_monotonic_increasing and ids.is_unique):
            raise ValueError(
                f"record_many journals events in the order given and numbers them itself, but the id column's "
                f"ids are not in increasing order ({frame['id'].head(5).tolist()}...), so the order they say "
                f"cannot be kept: sort the events by id (or by ts), or drop the id column."
            )

    def _check_copied_tasks(self, frame: pd.DataFrame) -> None:
        """A ``task`` column (from events()) must be this task's: the store journals only for its task."""
        if "task" not in frame:
            return
        other = frame["task"][frame["task"].notna() & (frame["task"] != self.task.id)]
        if len(other):
            raise ValueError(
                f"These events are of task {other.iloc[0]}, not of this store's task {self.task.id}, so they "
                f"cannot be journalled as theirs. Copy them into a store of their own task, or drop the task "
                f"column to journal them for this task (their values are checked against it)."
            )

    def _require_task(self) -> None:
        """A store records only for a task: its events are checked against it and found by its id."""
        if self.task is None:
            self.task = self._bind_task(None, False)  # another process may have bound one since
        if self.task is None:
            raise StoreError(
                f"{self.path} has no task, so it cannot record: its decisions could not be checked, and a "
                f"store opened with its task would not show them. Open it with jl.Store({str(self.path)!r}, "
                f"task=task)."
            )

    def _row(self, record, action, value, annotator, suggestion, confidence, model, prompt, duration_ms, meta):
        """The journal row of one event, checked against the task (``record`` required it)."""
        if action not in ACTIONS:
            raise ValueError(f"Unknown action {action!r}: use one of {', '.join(ACTIONS)}.")
        if record is None or (isinstance(record, float) and np.isnan(record)):
            raise ValueError("record must be the record's key, got a missing value.")
        if action in ("label", "accept", "edit") and value is None:
            raise ValueError(f"A {action!r} event needs the label as value.")
        if action in ("skip", "undo") and value is not None:
            raise ValueError(f"A {action!r} event takes no value, got {value!r}.")
        if value is not None and action in DECISIONS:
            value = self.task.check_value(value)
        if duration_ms is not None:
            duration_ms = int(duration_ms)
            if duration_ms < 0:
                raise ValueError(f"duration_ms must be >= 0, got {duration_ms}.")
        return (
            time.time(),
            str(record),
            self.task.id,
            current_annotator(annotator) if annotator is not None else self.annotator,
            action,
            _dump(value),
            _dump(suggestion),
            None if confidence is None else float(confidence),
            model,
            prompt,
            duration_ms,
            _dump(meta),
        )

    # -- reading -----------------------------------------------------------------

    def events(self, *, actions: Iterable[str] | None = None, all_tasks: bool = False) -> pd.DataFrame:
        """The journal as a DataFrame, oldest first; ``value``/``suggestion``/``meta`` decoded."""
        frame = self._query(actions, all_tasks)
        for column in ("value", "suggestion", "meta"):
            frame[column] = _load_column(frame[column])
        return frame

    def _query(self, actions, all_tasks, columns=_COLUMNS, convert_ts=True) -> pd.DataFrame:
        where, params = [], []
        if actions is not None:
            actions = list(actions)
            where.append(f"action IN ({','.join('?' * len(actions))})")
            params += actions
        if self.task is not None and not all_tasks:
            where.append("task = ?")
            params.append(self.task.id)
        sql = f"SELECT {', '.join(columns)} FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id"
        rows = self.conn.execute(sql, params).fetchall()
        # column by column as object arrays: skips pandas' per-column type inference
        table = np.empty((len(rows), len(columns)), dtype=object)
        if rows:
            table[:] = rows
        frame = pd.DataFrame({name: pd.Series(table[:, i], dtype=object) for i, name in enumerate(columns)})
        for name in ("id", "duration_ms", "confidence", "ts"):
            if name in frame.columns:
                frame[name] = pd.to_numeric(frame[name]) if name != "duration_ms" else frame[name].astype("Int64")
        if "ts" in frame.columns and convert_ts:
            frame["ts"] = pd.to_datetime(frame["ts"].astype("float64"), unit="s", utc=True)
        return frame

    def state(self, *, per_annotator: bool = False) -> pd.DataFrame:
        """The latest decision per record, undo applied.

        Returns a frame indexed by record key (as a string) with ``label``,
        ``label_source``, ``annotator``, ``labeled_at``, ``status`` (the last decision's
        action: label, accept, edit, reject or skip) and ``event`` (its id). With
        ``per_annotator=True`` there is one row per (record, annotator).

        Replay rules: each annotator's decisions on a record form a stack; ``undo`` pops
        the top one. The label is the one set by the topmost label-setting decision
        (label, accept, edit, reject; a reject without a value clears it); ``skip`` leaves
        the label as it was. A record's row is its latest surviving label-setting decision
        of any annotator, or its latest skip when no decision set a label: one annotator's
        skip never hides another's label.
        """
        columns = ("id", "ts", "record", "annotator", "action", "value")
        events = self._query((*DECISIONS, "undo"), False, columns, convert_ts=False)
        return replay(events, per_annotator=per_annotator)

    def apply(self, df: pd.DataFrame, *, id: str | None = None) -> pd.DataFrame:
        """Write the store's state into ``df``'s label columns, in place; returns ``df``.

        Records in the store but not in ``df`` are ignored; records in ``df`` but not in
        the store keep what they have, and so do records with no surviving label-setting
        decision (only skips, or every decision undone): a skip or an undone decision leaves
        the label as it was, also one the frame brought. When such a record's first decision
        journalled the frame's label before it (``meta["before"]``, as the panel does), that
        label is restored, so a frame saved before the undo gets it back.
        """
        if self.task is None:
            raise StoreError(f"{self.path} has no task yet: open it with Store(path, task=task) before apply().")
        keys = key_strings(record_keys(df, id))
        ensure_columns(df, self.task)
        columns = ("id", "ts", "record", "annotator", "action", "value")
        events = self._query((*DECISIONS, "undo"), False, columns, convert_ts=False)
        state = replay(events)  # as state() gives it, from the same read
        # a surviving label (a skip after a label keeps it), or a surviving decision that set or cleared one
        decided = state["label"].notna() | state["status"].isin(list(SOURCE_OF))
        labeled = events.loc[events["action"].isin(list(SOURCE_OF)), "record"]  # undone ones too
        undone = state.index[~decided & state.index.isin(labeled)]
        _write_state(df, keys, state[decided], self.task)
        if len(undone):
            _write_state(df, keys, self._labels_before(events, undone, df, keys), self.task)
        return df

    def _labels_before(self, events: pd.DataFrame, records: pd.Index, df: pd.DataFrame, keys: pd.Index) -> pd.DataFrame:
        """The labels ``records`` had before their first decision, where ``df`` now holds another: as rows
        of state, with no source, annotator or time (those in ``df`` described the undone decision)."""
        before = self._journalled_before(events, records)
        at = keys.get_indexer(list(before))
        labels = df["label"].to_numpy(dtype=object, na_value=None)
        changed = {
            record: value
            for (record, value), row in zip(before.items(), at)
            if row >= 0 and not _same_label(labels[row], value)
        }
        state = pd.DataFrame(
            {
                "label": pd.Series(list(changed.values()), dtype=object),
                "label_source": None,
                "annotator": None,
                "labeled_at": pd.Series(pd.NaT, index=range(len(changed)), dtype="datetime64[ns, UTC]"),
            }
        )
        return state.set_axis(list(changed))

    def _journalled_before(self, events: pd.DataFrame, records: pd.Index) -> dict:
        """``meta["before"]`` of each record's first decision, where it has one that fits the task."""
        decisions = events[events["action"].isin(DECISIONS) & events["record"].isin(records)]
        first = decisions.drop_duplicates("record")["id"].tolist()
        before = {}
        for start in range(0, len(first), 500):  # under SQLite's limit on parameters
            chunk = first[start : start + 500]
            sql = f"SELECT record, meta FROM events WHERE id IN ({','.join('?' * len(chunk))})"
            for record, meta in self.conn.execute(sql, chunk):
                meta = json.loads(meta) if meta else None
                if not isinstance(meta, dict) or "before" not in meta:
                    continue  # journalled without it: the frame keeps what it has
                try:
                    before[record] = None if meta["before"] is None else self.task.check_value(meta["before"])
                except (TypeError, ValueError):
                    continue  # a label outside the task, which a frame may hold: left as the frame has it
        return before


def _write_state(df: pd.DataFrame, keys: pd.Index, state: pd.DataFrame, task: Task) -> None:
    """Write rows of state (indexed by record key) into ``df``'s label columns, in place."""
    positions = keys.get_indexer(state.index)
    found = positions >= 0
    rows = positions[found]
    if not len(rows):
        return
    for column in ("label", "label_source", "annotator", "labeled_at"):
        if column == "labeled_at":
            merged = _utc_nanoseconds(df[column])  # ensure_columns made it UTC times
            merged[rows] = _utc_nanoseconds(state[column])[found]
            df[column] = pd.Series(merged.view("M8[ns]"), index=df.index).dt.tz_localize("UTC")
            continue
        values = state[column].to_numpy(dtype=object, na_value=None)[found]
        merged = df[column].to_numpy(dtype=object, na_value=None, copy=True)
        merged[rows] = values
        if column == "label" and task.kind != "single":
            df[column] = pd.Series(merged, index=df.index, dtype=object)
        else:
            df[column] = pd.array(merged, dtype=STRING_DTYPE)


def replay(events: pd.DataFrame, *, per_annotator: bool = False) -> pd.DataFrame:
    """Replay decision and undo events (sorted by id) into the state of each record.

    Vectorised for the common case: groups of (record, annotator) with no undo take
    their last decision directly; only groups that contain an undo are replayed one
    event at a time. ``ts`` may be epoch seconds or UTC timestamps.
    """
    columns = ["label", "label_source", "annotator", "labeled_at", "status", "event"]
    if events.empty:
        empty = pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
        empty.index.name = "record"
        return empty
    record = events["record"].to_numpy(dtype=object)
    annotator = events["annotator"].fillna("").to_numpy(dtype=object)
    action = events["action"].to_numpy(dtype=object)
    record_code, _ = pd.factorize(record)
    annotator_code, annotators = pd.factorize(annotator)
    group, groups = pd.factorize(record_code.astype(np.int64) * max(len(annotators), 1) + annotator_code)

    is_undo = action == "undo"
    in_undo_group = np.isin(group, group[is_undo])
    keep = ~in_undo_group & ~is_undo
    if in_undo_group.any():
        positions = np.flatnonzero(in_undo_group)
        keep[_pop_undos(group[positions], is_undo[positions], positions)] = True

    alive = np.flatnonzero(keep)
    last_alive = _last_per_group(group, alive)
    last_any = _last_per_group(group, np.arange(len(group)))
    all_undone = last_any[~np.isin(group[last_any], group[alive])]
    rows = np.concatenate([last_alive, all_undone])
    setters = alive[action[alive] != "skip"]
    last_setter = _last_per_group(group, setters)

    # the label-setting event of each row's group, if any
    setter_of_group = np.full(len(groups), -1)
    setter_of_group[group[last_setter]] = last_setter
    setter = setter_of_group[group[rows]]
    found = setter >= 0
    values = events["value"].to_numpy(dtype=object)
    label = _load_column(pd.Series(np.where(found, values[setter], None), dtype=object)).to_numpy(dtype=object)
    has_label = pd.notna(label)
    setter_action = np.where(found, action[setter], None)
    source = np.full(len(rows), None, dtype=object)
    for action_name, source_name in SOURCE_OF.items():
        source[setter_action == action_name] = source_name
    ts = events["ts"]
    seconds = (
        ts.to_numpy(dtype=np.float64)
        if not pd.api.types.is_datetime64_any_dtype(ts)
        else (ts.dt.as_unit("ns").astype("int64").to_numpy() / 1e9)  # pandas 3 may hold us or s
    )
    labeled_at = np.where(found & has_label, seconds[setter], np.nan)
    status = action[rows].copy()
    status[is_undo[rows]] = None
    event = events["id"].to_numpy()[rows]

    objects = {
        "record": record[rows],
        "label": label,
        "label_source": np.where(has_label, source, None),
        "annotator": annotator[rows],
        "status": status,
    }
    state = pd.DataFrame({name: pd.Series(a, dtype=object, copy=False) for name, a in objects.items()})
    state["labeled_at"] = pd.to_datetime(labeled_at, unit="s", utc=True)
    state["event"] = event
    if per_annotator:
        keep_rows = np.argsort(event, kind="stable")
    else:
        # a record's state: the latest surviving label-setting decision of any annotator, else the latest
        # surviving decision (a skip leaves the label as it was, also another annotator's label)
        latest = np.where(found, events["id"].to_numpy()[np.maximum(setter, 0)], event)
        ranked = np.lexsort((latest, status != None, found, record_code[rows]))  # noqa: E711
        last_of_record = np.r_[record_code[rows][ranked][1:] != record_code[rows][ranked][:-1], True]
        keep_rows = np.sort(ranked[last_of_record])
        keep_rows = keep_rows[np.argsort(event[keep_rows], kind="stable")]
    return state.iloc[keep_rows].set_index("record")[columns]


def _epoch_seconds(column: pd.Series, now: np.ndarray) -> np.ndarray:
    """Event times as the journal holds them, UTC epoch seconds: datetimes (tz-naive ones taken as UTC) or
    numbers of seconds, as events() and the journal give them; a missing time is ``now``."""
    if pd.api.types.is_datetime64_any_dtype(column):
        numbers, times = pd.Series(np.nan, index=column.index), pd.to_datetime(column, utc=True)
    else:
        numbers = pd.to_numeric(column, errors="coerce")
        rest = column.where(numbers.isna())
        times = pd.to_datetime(rest, utc=True, errors="coerce", format="mixed")
        bad = rest.notna() & times.isna()
        if bad.any():
            raise ValueError(
                f"ts must be the event's time, a datetime or UTC epoch seconds (as events() gives it), got "
                f"{rest[bad].iloc[0]!r}. Fix or drop that value; a missing ts is stamped now."
            )
    seconds = numbers.fillna((times - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1))
    return seconds.fillna(pd.Series(now, index=column.index)).to_numpy(dtype=np.float64)


def _same_label(held, journalled) -> bool:
    """Whether a frame's label (a list may be a numpy array there) is the journalled one."""
    if cell_missing(held) or journalled is None:
        return cell_missing(held) and journalled is None
    return _canonical_json(held) == _canonical_json(journalled)


def _canonical_json(value) -> str:
    return json.dumps(value, sort_keys=True, default=_json_default)


def _utc_nanoseconds(column: pd.Series) -> np.ndarray:
    """A UTC datetime column as int64 nanoseconds (NaT as NaT's integer), copied."""
    return column.dt.tz_convert("UTC").dt.tz_localize(None).dt.as_unit("ns").to_numpy().view("i8").copy()


def _last_per_group(group: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The last of ``positions`` (ascending) in each group."""
    if not len(positions):
        return positions
    reversed_groups = group[positions][::-1]
    _, first_in_reversed = np.unique(reversed_groups, return_index=True)
    return positions[len(positions) - 1 - first_in_reversed]


def _pop_undos(group: np.ndarray, is_undo: np.ndarray, positions: np.ndarray) -> list[int]:
    """Positions of decisions that survive their undos (a stack per group)."""
    stacks: dict[int, list[int]] = {}
    for g, undo, position in zip(group.tolist(), is_undo.tolist(), positions.tolist()):
        stack = stacks.setdefault(g, [])
        if undo:
            if stack:
                stack.pop()
        else:
            stack.append(position)
    return [position for stack in stacks.values() for position in stack]


def _dump(value) -> str | None:
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, default=_json_default)


def _nullable(column: pd.Series) -> pd.Series:
    """An object column with every missing value (NaN, NA, NaT) as None."""
    column = column.astype(object)
    missing = column.map(cell_missing, na_action=None) if column.dtype == object else column.isna()
    return column.where(~missing.astype(bool), None)


def _dump_column(column: pd.Series) -> list:
    """JSON-encode a column; strings and numbers are encoded once per distinct value."""
    hashable = column.map(lambda v: not isinstance(v, (list, dict, np.ndarray)))
    if hashable.all():
        codes, uniques = pd.factorize(column, use_na_sentinel=True)
        encoded = np.empty(len(uniques) + 1, dtype=object)
        encoded[:-1] = [_dump(u) for u in uniques]
        return encoded[codes].tolist()
    return [_dump(v) for v in column]


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"Cannot store a {type(value).__name__} in the journal: {value!r}.")


def _load_column(column: pd.Series) -> pd.Series:
    """Decode JSON text cells; caches repeated values, since labels repeat a lot."""
    if column.empty:
        return column.astype(object)
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    decoded = np.empty(len(uniques) + 1, dtype=object)
    decoded[:-1] = [json.loads(u) for u in uniques]
    return pd.Series(decoded[codes], index=column.index, dtype=object)


def open_for(store, task, annotator: str | None = None, *, what: str = "its events") -> Store:
    """``store`` (a :class:`Store` or the path of its file) checked to be this task's store.

    ``None`` gives an in-memory store. A path is opened for ``task`` (a file of another task is
    refused there); an open store must have been opened for this same task. ``what`` names what
    would be journalled, for the error messages.
    """
    if store is None:
        return Store(":memory:", task=task, annotator=annotator)
    if isinstance(store, (str, os.PathLike)):
        return Store(store, task=task, annotator=annotator)
    if not isinstance(store, Store):
        raise TypeError(f"store must be a jl.Store or the path of its file, got {type(store).__name__}.")
    if store.task is None:  # its events would be journalled under no task: invisible to Store(path, task=task)
        raise ValueError(
            f"The store {str(store.path)!r} was opened without a task: open it with "
            f"jl.Store({str(store.path)!r}, task=task) (or pass store= the path) so {what} are "
            f"journalled for this task."
        )
    if store.task.id != task.id:
        raise ValueError(
            f"The store {store.path} is for task {store.task.id}, not this task ({task.id}): "
            f"{_task_differences(store.task, task)}. Open a store made for this task."
        )
    return store


@contextmanager
def opened_for(store, task, *, what: str = "its events") -> Iterator[Store]:
    """:func:`open_for` as a context: a store it opened from a path is closed on leaving it."""
    journal = open_for(store, task, what=what)
    try:
        yield journal
    finally:
        if journal is not store:
            journal.close()


def _task_differences(stored: Task, task: Task) -> str:
    """What tells two tasks apart, field by field, for the error that refuses a store of another task."""
    names = {"labels": "labels", "descriptions": "label descriptions", "kind": "kind"}
    names |= {"instructions": "instructions", "text": "text (column or template)"}
    old, new = stored.to_dict(), task.to_dict()
    parts = [
        f"{name} (the store's: {_shorten(old[key])}; this task's: {_shorten(new[key])})"
        for key, name in names.items()
        if old[key] != new[key]
    ]
    return "what differs: " + "; ".join(parts)


def _shorten(value, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
