"""Export and import labeled frames: training JSONL, Label Studio, Prodigy and Parquet.

Which columns each format carries (and so round-trips exactly):

- ``jsonl``: training-ready lines ``{"id", "text", "label"}``, labeled records only.
- ``labelstudio``: a JSON list of Label Studio tasks: ``data`` (the text and other plain
  columns), ``annotations`` (the human label, its time), ``predictions`` (the model's
  suggestion with ``score`` and ``model_version``) and ``meta`` (the record key, annotator,
  label source, prompt hash, suggestion source, label probabilities and the task itself, ``jlabel_task``, which
  Label Studio keeps with each task and :func:`read` prefers to guessing the labels and the
  kind). Every record, labeled or not. With a text template (``text="{title}. {body}"``) the
  record's text goes under ``data["text"]``, or under ``data["jlabel_text"]`` when the frame
  has its own ``text`` column (point the labeling config's ``<Text value=...>`` at it).
- ``prodigy``: Prodigy JSONL (``answer`` accept/reject/ignore; ``accept`` options for
  single and multi-label tasks, ``spans`` for span tasks), labeled records only.
- ``parquet``: every column, with the task in the file's metadata.

Every import returns one row per record in the file (records in = records out) or raises
an error that names the file and the line or record.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .frame import (
    LABEL_COLUMNS,
    LLM_COLUMNS,
    PROBS_DTYPE,
    STRING_DTYPE,
    ensure_columns,
    key_strings,
    plain_data,
    probs_column,
    record_keys,
)
from .frame import probs as probs_matrix
from .frame import texts as record_texts
from .task import Task, _is_integer

FORMATS = ("jsonl", "labelstudio", "prodigy", "parquet")
PRODIGY_ANSWERS = ("accept", "reject", "ignore")
_SUFFIXES = {".jsonl": "jsonl", ".json": "labelstudio", ".parquet": "parquet", ".pq": "parquet"}
_TASK_META = b"jlabel_task"
_LS_TASK = "jlabel_task"  # the task, in each Label Studio task's meta
_LS_TEXT = "jlabel_text"  # the rendered text of a template task, when the frame has its own 'text'
_JLABEL_COLUMNS = (*LABEL_COLUMNS, *LLM_COLUMNS)
_LS_READ_COLUMNS = (*_JLABEL_COLUMNS, "annotations")  # what a Label Studio read fills from annotations
_LIST_TYPES = (list, tuple, np.ndarray)  # what a multi-label or span label may be held as
_LS_RESULT_TYPES = ("choices", "labels")  # the result types jlabel reads


# -- public API ----------------------------------------------------------------------


def export(
    df: pd.DataFrame,
    path: str | os.PathLike,
    *,
    format: str | None = None,
    task: Task | None = None,
    id: str | None = None,
) -> Path:
    """Write ``df`` to ``path`` in one of :data:`FORMATS`.

    Parameters
    ----------
    df
        A frame with jlabel's label columns (``label``, and ``llm_*`` where suggested).
    path
        The file to write (overwritten).
    format
        ``"jsonl"``, ``"labelstudio"``, ``"prodigy"`` or ``"parquet"``; by default from the
        suffix (``.jsonl``, ``.json`` = Label Studio, ``.parquet``).
    task
        The task; by default inferred from the frame (text column ``text``, the labels in
        order of appearance, the kind from the label values). Give it to keep the label order
        and to validate labels.
    id
        A column holding the record keys instead of the index.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    ValueError
        No labeled record (and, for Label Studio, no suggestion either), an unknown label, or
        a span outside its record's text: the message names the record.

    Examples
    --------
    >>> import tempfile, os
    >>> df = pd.DataFrame({"text": ["Goal!", "Rates up"], "label": ["Sports", "Business"]})
    >>> path = export(df, os.path.join(tempfile.mkdtemp(), "train.jsonl"))
    >>> read(path)["label"].tolist()
    ['Sports', 'Business']
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"export takes a pandas DataFrame, got {type(df).__name__}.")
    path = Path(path)
    format = _format_of(path, format)
    if task is None:  # the task a reader left on the frame, else a guess from its labels
        known = df.attrs.get("jlabel_task")
        task = Task.from_dict(known) if isinstance(known, Mapping) else infer_task(df)
    if not isinstance(task, Task):
        raise TypeError(f"task must be a jl.Task, got {type(task).__name__}.")
    keys = record_keys(df, id)
    frame = ensure_columns(df.copy(), task)
    labeled = frame["label"].notna().to_numpy()
    suggested = frame["llm_label"].notna().to_numpy()
    if not labeled.any() and (format != "labelstudio" or not suggested.any()):
        what = "a label or a suggestion" if format == "labelstudio" else "a label"
        raise ValueError(
            f"Nothing to export to {path}: none of the {len(df)} records has {what}. Label some records "
            f"first (jl.Labeler) or load the store's labels with store.apply(df)."
        )
    text = record_texts(frame, task)
    _validate(frame, task, keys, text, labeled)
    if format == "parquet":
        write_parquet(df, path, task=task)
    elif format == "jsonl":
        lines = _training_lines(frame, task, keys, text, labeled)
        _write_lines(path, lines)
    elif format == "prodigy":
        _write_lines(path, _prodigy_lines(frame, task, keys, text, labeled))
    else:
        tasks = _labelstudio_tasks(frame, task, keys, text, id)
        path.write_text(json.dumps(tasks, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return path


def read(
    path: str | os.PathLike,
    *,
    format: str | None = None,
    task: Task | None = None,
    annotations: str = "latest",
) -> pd.DataFrame:
    """Read a file written by :func:`export`, Label Studio or Prodigy into a frame.

    Parameters
    ----------
    path
        The file.
    format
        One of :data:`FORMATS`; by default from the suffix (``.json`` = Label Studio,
        ``.jsonl`` = training JSONL unless its lines look like Prodigy's).
    task
        Validates the labels (unknown labels are an error) and the kind of the file's
        labels, in every format; by default the task jlabel wrote into the file (Parquet
        metadata, Label Studio ``meta``), else inferred from the file.
    annotations
        Label Studio only: ``"latest"`` (one row per task, labeled with its latest
        annotation; ``annotations`` counts them) or ``"all"``: one row per annotation with
        ``record``, ``annotator``, ``label`` and ``labeled_at``, the long table
        ``jl.agreement`` takes.

    Returns
    -------
    pandas.DataFrame
        One row per record in the file, indexed by the record key when the file has unique
        keys, with ``text`` and jlabel's label columns. When keys repeat (two annotators'
        labels of one record) or some rows have none, the index is 0..n-1 and the keys are
        kept in a ``record`` column (``jlabel_record`` if the file has a ``record`` field).
        Label Studio: only the annotations and predictions label a record; a ``data`` field
        named like one of jlabel's columns (``label``, ``annotator``, ``llm_label``,
        ``annotations``, ...) is kept as ``data_<name>`` (``data_label``). Results other than
        ``choices`` and ``labels`` (a TextArea's note, a Rating) are left out, with a warning.

    Raises
    ------
    ValueError
        A malformed or truncated file, a result of another task type, an unknown label or
        answer: the message names the file and the line (JSONL) or task (JSON).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No file at {path}.")
    if task is not None and not isinstance(task, Task):
        raise TypeError(f"task must be a jl.Task, got {type(task).__name__}.")
    format = _format_of(path, format)
    if annotations not in ("latest", "all"):
        raise ValueError(f"annotations must be 'latest' or 'all', got {annotations!r}.")
    if format == "parquet" and annotations == "latest":
        return _read_parquet(path, task)
    if annotations == "all" and format != "labelstudio":
        raise ValueError(f"annotations='all' reads Label Studio files (one row per annotation), not {format!r}.")
    if format == "labelstudio":
        return _read_labelstudio(path, task, annotations)
    rows = _read_jsonl(path)
    if format == "jsonl" and rows and any("answer" in row for _, row in rows):
        format = "prodigy"
    if format == "prodigy":
        return _read_prodigy(path, rows, task)
    return _read_training(path, rows, task)


def infer_task(df: pd.DataFrame) -> Task:
    """A task guessed from a frame: text column ``text``, labels in order of appearance.

    The kind is ``spans`` when labels are lists of dicts, ``multi`` when lists of names,
    else ``single``.
    """
    if "text" not in df.columns:
        raise ValueError(
            f"The frame has no 'text' column (columns: {list(df.columns)}); pass task=jl.Task(..., text=COLUMN)."
        )
    values = pd.concat([df[c].dropna() for c in ("label", "llm_label") if c in df.columns])
    if values.empty:
        raise ValueError("The frame has no labels or suggestions to infer the task from; pass task=jl.Task(...).")
    first = _first_telling(values)
    kind = _kind_of(values.iloc[0] if first is None else first)
    if kind == "single":
        names = values.astype(object)
    elif kind == "multi":
        names = values.explode().dropna()
    else:
        names = pd.Series([s["label"] for s in values.explode().dropna()], dtype=object)
    bad = next((name for name in names if not isinstance(name, str)), None)
    if bad is not None:
        raise ValueError(
            f"The frame's label {bad!r} ({type(bad).__name__}) is not a label name; labels are strings. Convert "
            f"them (e.g. df['label'] = df['label'].astype(str)) or pass task=jl.Task([...])."
        )
    labels = pd.unique(names).tolist()
    if not labels:
        raise ValueError("The frame's label lists are all empty; pass task=jl.Task(labels, kind=...).")
    task = Task.from_data(labels, kind=kind)
    width = _probs_width(df) if kind != "spans" else None
    if width is not None and width != len(labels):
        raise ValueError(
            f"The frame's llm_probs hold {width} probabilities per record, but its labels and suggestions name only "
            f"{len(labels)} labels {labels}: the task has labels that no record shows, in an order the frame cannot "
            f"tell. Pass task=jl.Task(...) (the task the suggestions were made with)."
        )
    if width is not None and kind == "single" and "llm_label" in df.columns:
        # the labels' order is guessed: the suggested label must be the most probable one in that order
        matrix = probs_matrix(df, task)
        rows = ~np.isnan(matrix).any(axis=1) & df["llm_label"].notna().to_numpy()
        chosen = pd.Index(labels).get_indexer(df["llm_label"][rows].astype(str))
        if (matrix[rows][np.arange(len(chosen)), chosen] < matrix[rows].max(axis=1) - 1e-9).any():
            raise ValueError(
                f"The frame's llm_probs are not in the order its labels first appear ({labels}); pass "
                f"task=jl.Task(...) (the task the suggestions were made with) to keep the label order."
            )
    return task


def _first_telling(values):
    """The first label that says its kind: a name or a non-empty list (an empty list may be multi or spans); None."""
    return next((value for value in values if not isinstance(value, _LIST_TYPES) or len(value)), None)


def _probs_width(df: pd.DataFrame) -> int | None:
    """How many probabilities the first suggestion of ``llm_probs`` holds (None if it cannot tell)."""
    if "llm_probs" not in df.columns:
        return None
    present = df["llm_probs"].dropna()
    if present.empty:
        return None
    first = present.iloc[0]
    if isinstance(first, str):
        try:
            first = json.loads(first)
        except ValueError:
            return None
    return len(first) if hasattr(first, "__len__") else None


# -- validation ----------------------------------------------------------------------


def _format_of(path: Path, format: str | None) -> str:
    if format is None:
        format = _SUFFIXES.get(path.suffix.lower())
        if format is None:
            raise ValueError(
                f"Cannot tell the format of {path} from its suffix {path.suffix!r}: pass format= one of {FORMATS}."
            )
    if format not in FORMATS:
        raise ValueError(f"Unknown format {format!r}: use one of {', '.join(FORMATS)}.")
    return format


def _kind_of(value) -> str:
    if not isinstance(value, _LIST_TYPES):
        return "single"
    items = list(value)
    if any(isinstance(item, Mapping) for item in items):
        return "spans"
    return "multi"


def _validate(frame: pd.DataFrame, task: Task, keys: pd.Index, text: pd.Series, labeled: np.ndarray) -> None:
    # by position: the frame's index may repeat (keys from an id= column), ``keys`` names the records
    for column in ("label", "llm_label"):
        values = frame[column].reset_index(drop=True)
        present = values.notna().to_numpy()
        if not present.any():
            continue
        if task.kind == "single":
            bad = present & ~values.isin(task.labels).to_numpy()
            if bad.any():
                first = int(np.flatnonzero(bad)[0])
                raise ValueError(
                    f"Record {keys[first]!r} has {column} {values.iloc[first]!r}, which is not one of the task's "
                    f"labels {list(task.labels)}."
                )
            continue
        _check_lists(values[present], task.kind, column, keys)
        exploded = values[present].explode().dropna()
        if task.kind == "multi":
            names = exploded
        else:
            if not exploded.map(lambda s: isinstance(s, Mapping)).all():
                raise ValueError(f"{column} of a span task must hold lists of {{start, end, label}} dicts.")
            spans = pd.DataFrame(exploded.tolist(), index=exploded.index)
            names = spans["label"]
            within = text.str.len().reset_index(drop=True).reindex(spans.index)
            bad = ~((spans["start"] >= 0) & (spans["start"] < spans["end"]) & (spans["end"] <= within)).to_numpy()
            if bad.any():
                first = int(np.flatnonzero(bad)[0])
                raise ValueError(
                    f"Record {keys[spans.index[first]]!r}: {column} span {dict(spans.iloc[first])} lies outside its "
                    f"text, which has {int(within.iloc[first])} characters (0 <= start < end <= length)."
                )
        unknown = ~names.isin(task.labels)
        if unknown.any():
            raise ValueError(
                f"Record {keys[names.index[unknown.to_numpy()][0]]!r} has {column} {names[unknown].iloc[0]!r}, which "
                f"is not one of the task's labels {list(task.labels)}."
            )


def _check_lists(values: pd.Series, kind: str, column: str, keys: pd.Index) -> None:
    """Refuse a multi-label or span label that is not a list (a bare name would be written as its characters)."""
    bad = ~values.map(lambda v: isinstance(v, _LIST_TYPES)).to_numpy()
    if bad.any():
        position = values.index[int(np.flatnonzero(bad)[0])]
        value = values[position]
        if kind == "multi":
            what, example = "multi-label", "['Fraud', 'Complaint']"
        else:
            what, example = "span", "[{'start': 0, 'end': 5, 'label': 'Fraud'}]"
        raise ValueError(
            f"Record {keys[position]!r} has {column} {value!r} ({type(value).__name__}), but the labels of a {what} "
            f"task are lists, e.g. {example}: wrap a single label in a list."
        )


# -- writing -------------------------------------------------------------------------


def _write_lines(path: Path, lines: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)


def _plain(values: np.ndarray) -> list:
    """Numpy scalars as Python ones and timestamps as ISO strings, for json."""
    if np.issubdtype(values.dtype, np.datetime64):
        values = pd.DatetimeIndex(values).to_numpy(dtype=object)  # Timestamps, not integers of nanoseconds
    return [_plain_value(v) for v in values]


def _plain_value(value):
    if isinstance(value, datetime.date):  # dates, datetimes and Timestamps
        return value.isoformat()
    return value.item() if isinstance(value, np.generic) else value


def _iso(column: pd.Series) -> np.ndarray:
    stamps = pd.to_datetime(column, utc=True)
    out = stamps.dt.strftime("%Y-%m-%dT%H:%M:%S.%f").to_numpy(dtype=object, na_value=None)
    nanos = (stamps.dt.nanosecond % 1000).to_numpy(dtype=object, na_value=None)
    return np.array(
        [None if s is None else f"{s}{int(n):03d}Z" if n else f"{s}Z" for s, n in zip(out, nanos)], dtype=object
    )


def _training_lines(frame, task, keys, text, labeled) -> list[dict]:
    rows = np.flatnonzero(labeled)
    return [
        {"id": k, "text": t, "label": plain_data(v)}
        for k, t, v in zip(_plain(keys[rows].to_numpy()), text.to_numpy()[rows], frame["label"].to_numpy()[rows])
    ]


def _hash(*parts: str) -> int:
    digest = hashlib.blake2b("\x1f".join(parts).encode("utf-8"), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


def _prodigy_lines(frame, task, keys, text, labeled) -> list[dict]:
    rows = np.flatnonzero(labeled)
    options = [{"id": label, "text": label} for label in task.labels]
    annotators = frame["annotator"].to_numpy(dtype=object, na_value=None)[rows]
    sources = frame["label_source"].to_numpy(dtype=object, na_value=None)[rows]
    stamps = _iso(frame["labeled_at"])[rows]
    lines = []
    for key, t, value, who, source, when in zip(
        _plain(keys[rows].to_numpy()),
        text.to_numpy()[rows],
        frame["label"].to_numpy()[rows],
        annotators,
        sources,
        stamps,
    ):
        line = {"text": t, "meta": {"id": key}, "_input_hash": _hash(t)}
        value = plain_data(value)
        if task.kind == "spans":
            line["spans"] = value
            line["_view_id"] = "ner_manual"
        else:
            line["options"] = options
            line["accept"] = [value] if task.kind == "single" else value
            line["config"] = {"choice_style": "single" if task.kind == "single" else "multiple"}
            line["_view_id"] = "choice"
        line["_task_hash"] = _hash(t, json.dumps(value))
        line["answer"] = "accept"
        if who is not None:
            line["_annotator_id"] = who
        if source is not None:
            line["meta"]["label_source"] = source
        if when is not None:
            line["meta"]["labeled_at"] = when
        lines.append(line)
    return lines


def _ls_result(value, kind: str, text: str, origin: str) -> list[dict]:
    base = {"from_name": "label", "to_name": "text", "origin": origin}
    if kind == "spans":
        return [
            {
                **base,
                "id": f"s{i}",
                "type": "labels",
                "value": {
                    "start": s["start"],
                    "end": s["end"],
                    "text": text[s["start"] : s["end"]],
                    "labels": [s["label"]],
                },
            }
            for i, s in enumerate(value)
        ]
    choices = [value] if kind == "single" else list(value)
    return [{**base, "id": "c0", "type": "choices", "value": {"choices": choices}}]


def _labelstudio_tasks(frame, task, keys, text, id) -> list[dict]:
    data_columns = [c for c in frame.columns if c not in _JLABEL_COLUMNS and c != id]
    # the data block: the frame's own columns as JSON values (timestamps as ISO strings)
    data = json.loads(
        frame[data_columns].to_json(orient="records", date_format="iso", force_ascii=False, double_precision=15)
    )
    _exact_floats(data, frame[data_columns])
    # the record's text always as a string (a missing text is ""): Label Studio and read() need one.
    # A template's text must not overwrite a column of its own name: it then goes under its own key.
    text_key = task.text
    if task.is_template:
        text_key = _LS_TEXT if "text" in data_columns else "text"
        if _LS_TEXT in data_columns:
            raise ValueError(
                f"The frame has a column {_LS_TEXT!r}, the key a Label Studio export gives the text of a template "
                f"task ({task.text!r}); rename that column."
            )
    for row, t in zip(data, text.to_numpy()):
        row[text_key] = t
    matrix = probs_matrix(frame, task) if task.kind != "spans" and frame["llm_probs"].notna().any() else None
    columns = {
        c: frame[c].to_numpy(dtype=object, na_value=None)
        for c in ("label", "label_source", "annotator", "llm_label", "llm_model", "llm_prompt", "llm_source")
    }
    confidence = frame["llm_confidence"].to_numpy(dtype=float)
    stamps = _iso(frame["labeled_at"])
    tasks = []
    task_dict = task.to_dict()
    for i, (key, t) in enumerate(zip(_plain(keys.to_numpy()), text.to_numpy())):
        meta = {"jlabel_key": key, _LS_TASK: task_dict}
        entry = {"data": data[i], "meta": meta, "annotations": [], "predictions": []}
        label = columns["label"][i]
        if label is not None:
            annotation = {
                "result": _ls_result(label, task.kind, t, "manual"),
                "was_cancelled": False,
                "ground_truth": False,
            }
            if stamps[i] is not None:
                annotation["created_at"] = stamps[i]
            entry["annotations"].append(annotation)
            for name in ("annotator", "label_source"):
                if columns[name][i] is not None:
                    meta[name] = columns[name][i]
        suggestion = columns["llm_label"][i]
        if suggestion is not None:
            prediction = {
                "model_version": columns["llm_model"][i] or "unknown",
                "result": _ls_result(suggestion, task.kind, t, "prediction"),
            }
            if not np.isnan(confidence[i]):
                prediction["score"] = float(confidence[i])
            entry["predictions"].append(prediction)
            for name in ("llm_prompt", "llm_source"):
                if columns[name][i] is not None:
                    meta[name] = columns[name][i]
            if matrix is not None and not np.isnan(matrix[i]).any():
                meta["llm_probs"] = matrix[i].tolist()
        tasks.append(entry)
    return tasks


def _exact_floats(data: list[dict], frame: pd.DataFrame) -> None:
    """Put back the float columns' values exactly (``to_json`` keeps 15 digits, a float needs up to 17)."""
    for column in frame.columns:
        if pd.api.types.is_float_dtype(frame[column]):
            values = frame[column].to_numpy(dtype=float, na_value=np.nan)
            for row, value in zip(data, values):
                row[str(column)] = float(value) if np.isfinite(value) else None


def write_parquet(df: pd.DataFrame, path: str | Path, *, task: Task | None = None) -> None:
    """``df`` as a Parquet file that pandas, pyarrow and :func:`read` all read back (the task in its metadata).

    pandas records an Arrow list column (``llm_probs``) under a dtype name its own reader cannot parse
    (``pd.read_parquet`` fails with "data type 'list<item: double>[pyarrow]' not understood"): such
    columns are recorded as object columns, which every reader understands.
    """
    table = pa.Table.from_pandas(df, preserve_index=True)
    metadata = dict(table.schema.metadata or {})
    pandas_meta = table.schema.pandas_metadata
    if pandas_meta:
        for column in pandas_meta["columns"]:
            if str(column.get("numpy_type", "")).startswith("list<"):
                column["numpy_type"] = "object"
        metadata[b"pandas"] = json.dumps(pandas_meta).encode("utf-8")
    if task is not None:
        metadata[_TASK_META] = json.dumps(task.to_dict()).encode("utf-8")
    pq.write_table(table.replace_schema_metadata(metadata), path)


# -- reading -------------------------------------------------------------------------


def _read_jsonl(path: Path) -> list[tuple[int, dict]]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"{path}, line {number}: not valid JSON ({error.msg} at column {error.colno}); "
                    f"the file may be truncated."
                ) from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}, line {number}: expected a JSON object, got {type(row).__name__}.")
            rows.append((number, row))
    return rows


def _keyed(frame: pd.DataFrame, keys: list) -> pd.DataFrame:
    """``frame`` (one row per key, indexed 0..n-1) indexed by the record keys when they are unique.

    Keys that cannot index the frame (repeated, or missing on some rows) go into a ``record``
    column instead: a file with two annotators' labels of one record has that record's key
    twice, and the key must survive the 0..n-1 index (``jl.agreement`` takes the ``record``,
    ``annotator``, ``label`` table). The column is ``jlabel_record`` when the file has a
    ``record`` field of its own. A file without keys keeps the 0..n-1 index.
    """
    if all(k is not None for k in keys) and len(set(map(repr, keys))) == len(frame):
        return frame.set_axis(pd.Index(keys, dtype=object if any(isinstance(k, str) for k in keys) else None))
    if any(k is not None for k in keys):
        name = "record" if "record" not in frame.columns else "jlabel_record"
        frame.insert(0, name, pd.Series(keys, index=frame.index, dtype=object))
    return frame


def _finish(frame: pd.DataFrame, task: Task, where: list[str]) -> pd.DataFrame:
    """Validate labels against the task, set the contract's dtypes."""
    ensure_columns(frame, task)
    for column in ("label", "llm_label"):
        values = frame[column]
        present = values.notna()
        if not present.any():
            continue
        names = values[present] if task.kind == "single" else values[present].explode().dropna()
        if task.kind == "spans":
            names = names.map(lambda s: s["label"])
        unknown = ~names.isin(task.labels)
        if unknown.any():
            position = frame.index.get_loc(names.index[unknown.to_numpy()][0])
            raise ValueError(
                f"{where[position]}: {column} {names[unknown].iloc[0]!r} is not one of the task's labels "
                f"{list(task.labels)}."
            )
    for column in ("label_source", "annotator", "llm_model", "llm_prompt"):
        frame[column] = frame[column].astype(STRING_DTYPE)
    if task.kind == "single":
        for column in ("label", "llm_label"):
            frame[column] = frame[column].astype(STRING_DTYPE)
    frame["labeled_at"] = pd.to_datetime(frame["labeled_at"], utc=True, format="ISO8601").astype("datetime64[ns, UTC]")
    frame.attrs["jlabel_task"] = task.to_dict()
    return frame


def _task_for(found: list, kind: str, task: Task | None, path: Path) -> Task:
    if task is not None:
        if kind and kind != task.kind:
            raise ValueError(f"{path} holds {kind} labels but the task is a {task.kind!r} task.")
        return task
    labels = list(dict.fromkeys(found))
    if not labels:
        raise ValueError(f"{path} holds no labels to infer the task from; pass task=jl.Task(...).")
    return Task.from_data(labels, kind=kind or "single")


def _read_training(path: Path, rows: list[tuple[int, dict]], task: Task | None) -> pd.DataFrame:
    keys, text, labels, where, found = [], [], [], [], []
    kind = task.kind if task is not None else ""
    for number, row in rows:
        if "text" not in row or "label" not in row:
            raise ValueError(f"{path}, line {number}: a training line needs 'text' and 'label', got {sorted(row)}.")
        value = row["label"]
        _check_label_value(value, f"{path}, line {number}")
        this = _kind_of(value) if value is not None and (isinstance(value, str) or len(value)) else ""
        if isinstance(value, list) and not value:
            this = ""
        if this and kind and this != kind:
            raise ValueError(f"{path}, line {number}: a {this} label in a file of {kind} labels.")
        kind = kind or this
        if this == "spans":
            value = _check_spans(value, row["text"], f"{path}, line {number}")
            found += [s["label"] for s in value]
        elif this == "multi":
            found += list(value)
        elif this == "single":
            found.append(value)
        keys.append(row.get("id"))
        text.append(row["text"])
        labels.append(value)
        where.append(f"{path}, line {number}")
    task = _task_for(found, kind, task, path)
    frame = _keyed(pd.DataFrame({"text": text}), keys)
    frame["label"] = pd.Series(labels, index=frame.index, dtype=object)
    return _finish(frame, task, where)


def _check_label_value(value, where: str) -> None:
    """A training line's label: a name, a list of names, a list of spans, or null."""
    if value is None or isinstance(value, str):
        return
    if isinstance(value, list):
        names = [v for v in value if not isinstance(v, Mapping)]
        if not names or all(isinstance(v, str) for v in value):
            return
        bad = next(v for v in names if not isinstance(v, str))
    else:
        bad = value
    raise ValueError(
        f"{where}: label {bad!r} ({type(bad).__name__}) is not a label name; labels are strings, lists of strings "
        f"(multi-label) or lists of {{start, end, label}} spans. Write the label names, e.g. {str(bad)!r}."
    )


def _check_spans(spans, text: str, where: str) -> list[dict]:
    out = []
    if not isinstance(spans, list):
        raise ValueError(f"{where}: spans must be a list of {{start, end, label}} objects, got {spans!r}.")
    for span in spans:
        if not isinstance(span, Mapping) or not {"start", "end", "label"} <= set(span):
            raise ValueError(f"{where}: a span needs start, end and label, got {span!r}.")
        if not isinstance(span["label"], str):
            raise ValueError(f"{where}: span label {span['label']!r} is not a string; labels are names.")
        start, end = span["start"], span["end"]
        if not (_is_integer(start) and _is_integer(end) and 0 <= start < end <= len(text)):
            raise ValueError(
                f"{where}: span {dict(span)} lies outside its text of {len(text)} characters (0 <= start < end <= length)."
            )
        out.append({"start": start, "end": end, "label": span["label"]})
    return sorted(out, key=lambda s: (s["start"], s["end"], s["label"]))


def _option_id(value, where: str) -> str:
    """A Prodigy option id as a label name: strings as they are, integers as their digits."""
    if isinstance(value, str):
        return value
    if _is_integer(value):
        return str(value)
    raise ValueError(f"{where}: option id {value!r} ({type(value).__name__}) must be a string or an integer.")


def _read_prodigy(path: Path, rows: list[tuple[int, dict]], task: Task | None) -> pd.DataFrame:
    keys, text, labels, answers, annotators, sources, stamps, where, found = [], [], [], [], [], [], [], [], []
    kind = task.kind if task is not None else ""
    for number, row in rows:
        here = f"{path}, line {number}"
        answer = row.get("answer")
        if answer not in PRODIGY_ANSWERS:
            raise ValueError(f"{here}: unknown answer {answer!r}; Prodigy answers are {', '.join(PRODIGY_ANSWERS)}.")
        if "text" not in row:
            raise ValueError(f"{here}: a Prodigy task needs 'text', got keys {sorted(row)}.")
        # choices, or a binary textcat answer (top-level label), may carry pattern matches as spans: not labels
        classified = "options" in row or "label" in row
        if "spans" in row and (not classified or kind == "spans"):
            this = "spans"
            value = _check_spans(row["spans"], row["text"], here)
            found += [s["label"] for s in value]
        elif "accept" in row or "options" in row:
            # option ids are often numbers (0, 1): as labels they are their text, "0", "1"
            chosen = [_option_id(c, here) for c in row.get("accept") or []]
            style = (row.get("config") or {}).get("choice_style")
            this = "multi" if style == "multiple" or len(chosen) > 1 or kind == "multi" else "single"
            options = [o for o in row.get("options", []) if isinstance(o, Mapping) and "id" in o]
            found += [_option_id(o["id"], here) for o in options] + chosen
            value = chosen if this == "multi" else (chosen[0] if chosen else None)
        elif "label" in row:  # binary: does this one label apply?
            if not isinstance(row["label"], str):
                raise ValueError(f"{here}: label {row['label']!r} ({type(row['label']).__name__}) is not a label name.")
            this = kind if kind == "multi" else "single"
            found.append(row["label"])
            value = row["label"] if this == "single" else [row["label"]]
        else:
            raise ValueError(f"{here}: no 'accept', 'spans' or 'label' to read a label from, got keys {sorted(row)}.")
        if kind and this != kind:
            raise ValueError(f"{here}: a {this} annotation in a file of {kind} annotations (or a {kind!r} task).")
        kind = kind or this
        if answer != "accept":
            value = None
        meta = row.get("meta") or {}
        keys.append(meta.get("id"))
        text.append(row["text"])
        labels.append(value)
        answers.append(answer)
        annotators.append(row.get("_annotator_id"))
        sources.append(meta.get("label_source", "human" if value is not None else None))
        when = meta.get("labeled_at")
        if when is None and row.get("_timestamp") is not None:
            when = pd.Timestamp(row["_timestamp"], unit="s", tz="UTC").isoformat()
        stamps.append(when if value is not None else None)
        where.append(here)
    task = _task_for(found, kind, task, path)
    frame = _keyed(pd.DataFrame({"text": text}), keys)
    frame["label"] = pd.Series(labels, index=frame.index, dtype=object)
    frame["label_source"] = sources
    frame["annotator"] = pd.Series(annotators, index=frame.index, dtype=object).where(frame["label"].notna(), None)
    frame["labeled_at"] = pd.Series(stamps, index=frame.index, dtype=object)
    frame["answer"] = pd.Series(answers, index=frame.index, dtype=STRING_DTYPE)
    return _finish(frame, task, where)


def _ls_value(result: list, kind_hint: str, where: str, text: str, ignored: dict) -> tuple[str, object, list]:
    """(kind, value, label names) of one annotation's or prediction's result list.

    Results of other types (a TextArea's note, a Rating) are left out; ``ignored`` maps each type left out to
    where it was first seen.
    """
    if not isinstance(result, list):
        raise ValueError(f"{where}: 'result' must be a list, got {type(result).__name__}.")
    result = [item for item in result if isinstance(item, Mapping)]
    for item in result:
        if item.get("type") not in _LS_RESULT_TYPES:
            ignored.setdefault(str(item.get("type")), where)
    result = [item for item in result if item.get("type") in _LS_RESULT_TYPES]
    types = {item["type"] for item in result}
    if len(types) > 1:
        raise ValueError(f"{where}: mixes 'choices' and 'labels' results; jlabel reads one kind per project.")
    if "labels" in types or (not types and kind_hint == "spans"):
        spans = []
        for item in result:
            v = item.get("value") or {}
            for label in v.get("labels") or []:
                spans.append({"start": v.get("start"), "end": v.get("end"), "label": label})
        spans = _check_spans(spans, text, where)
        return "spans", spans, [s["label"] for s in spans]
    choices = [c for item in result for c in (item.get("value") or {}).get("choices") or []]
    if kind_hint == "multi" or len(choices) > 1:
        return "multi", choices, choices
    if not choices:
        return "", None, []
    return "single", choices[0], choices


def _ls_created_at(value):
    """An annotation's ``created_at``: ISO text as it is, a number (Label Studio before 1.0) as epoch seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return pd.Timestamp(value, unit="s", tz="UTC").isoformat()
    return value


def _check_ignored(ignored: dict, found: list, path: Path) -> None:
    """Warn once about the result types left out; refuse a file that has no result jlabel reads."""
    if not ignored:
        return
    types = sorted(ignored)
    if not found:
        raise ValueError(
            f"{ignored[types[0]]}: a {types[0]!r} result; jlabel reads text tasks with 'choices' results (single or "
            f"multi-label) or 'labels' results (spans). Export this project with a Choices or Labels tag."
        )
    warnings.warn(
        f"{path}: ignored Label Studio results of types {types}; jlabel reads only 'choices' and 'labels' results.",
        UserWarning,
        stacklevel=4,
    )


def _labelstudio_kind(tasks: list) -> str:
    """The kind of a file's results: spans if any ``labels`` result, multi if any record has several choices."""
    choices = set()
    for entry in tasks:
        if not isinstance(entry, dict):
            continue
        for block in (*(entry.get("annotations") or []), *(entry.get("predictions") or [])):
            results = block.get("result") if isinstance(block, dict) else None
            if not isinstance(results, list):
                continue
            if any(isinstance(r, dict) and r.get("type") == "labels" for r in results):
                return "spans"
            count = sum(len((r.get("value") or {}).get("choices") or []) for r in results if isinstance(r, dict))
            choices.add(min(count, 2))
    return "multi" if 2 in choices else ""


def _labelstudio_task(tasks: list, path: Path) -> Task | None:
    """The task jlabel's export wrote into each task's ``meta`` (None if no task has one)."""
    first, where = None, None
    for number, entry in enumerate(tasks):
        meta = entry.get("meta") if isinstance(entry, dict) else None
        if not isinstance(meta, dict) or meta.get(_LS_TASK) is None:
            continue
        if first is None:
            first, where = meta[_LS_TASK], number
        elif meta[_LS_TASK] != first:
            raise ValueError(
                f"{path}: tasks {where} and {number} were exported for different jlabel tasks (meta.{_LS_TASK}); "
                f"pass task=jl.Task(...) to read them as one task."
            )
    if first is None:
        return None
    try:
        return Task.from_dict(first)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ValueError(
            f"{path}, task {where}: meta.{_LS_TASK} is not a jlabel task ({error}); pass task=jl.Task(...)."
        ) from None


def _read_labelstudio(path: Path, task: Task | None, annotations_mode: str = "latest") -> pd.DataFrame:
    raw = path.read_text(encoding="utf-8")
    try:
        tasks = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path}: not valid JSON ({error.msg} at line {error.lineno}, column {error.colno}); "
            f"the file may be truncated."
        ) from None
    if isinstance(tasks, dict):
        tasks = [tasks]
    if not isinstance(tasks, list):
        raise ValueError(f"{path}: a Label Studio export is a JSON list of tasks, got {type(tasks).__name__}.")
    written = None  # the task jlabel wrote into the file, when none is given: better than a guess
    if task is None:
        task = written = _labelstudio_task(tasks, path)
    kind = task.kind if task is not None else _labelstudio_kind(tasks)
    text_key = task.text if task is not None and not task.is_template else "text"
    records, found, where, every = [], [], [], []
    ignored = {}  # result types jlabel does not read: type -> where first seen
    for number, entry in enumerate(tasks):
        here = f"{path}, task {number}" + (f" (id {entry['id']})" if isinstance(entry, dict) and "id" in entry else "")
        if not isinstance(entry, dict) or not isinstance(entry.get("data"), dict):
            raise ValueError(f"{here}: a Label Studio task is an object with a 'data' object.")
        data = dict(entry["data"])
        if _LS_TEXT in data and (task is None or task.is_template):  # a template's text, apart from 'text'
            text = data.pop(_LS_TEXT)
            if not isinstance(text, str):
                raise ValueError(f"{here}: data field {_LS_TEXT!r} is not text: {text!r}.")
        elif text_key not in data or not isinstance(data[text_key], str):
            raise ValueError(f"{here}: data has no text field {text_key!r} (fields: {sorted(data)}); pass task=.")
        else:
            text = data[text_key]
        meta = entry.get("meta") or {}
        # a field named like jlabel's columns (another tool's 'label') stays data: the annotations label the record
        row = {f"data_{name}" if name in _LS_READ_COLUMNS else name: value for name, value in data.items()}
        row["_key"] = meta.get("jlabel_key", entry.get("id"))
        # Label Studio's own exports may list predictions (or annotations) by id only: not readable, skipped
        annotations = [
            a
            for a in entry.get("annotations") or entry.get("completions") or []
            if isinstance(a, dict) and not a.get("was_cancelled")
        ]
        read = []
        for annotation in annotations:
            this, value, names = _ls_value(annotation.get("result", []), kind, here, text, ignored)
            if this and kind and this != kind:
                raise ValueError(f"{here}: a {this} annotation in a {kind} project (or {kind!r} task).")
            kind = kind or this
            found += names
            who = annotation.get("completed_by")
            if isinstance(who, Mapping):
                who = who.get("email") or who.get("id")
            who = meta.get("annotator") if len(annotations) == 1 and meta.get("annotator") else who
            created = _ls_created_at(annotation.get("created_at"))
            read.append((created or "", value, None if who is None else str(who)))
            every.append((row["_key"], read[-1][2], value, created, here))
        if annotations:
            latest = max(range(len(read)), key=lambda i: read[i][0])
            _, value, who = read[latest]
            latest = annotations[latest]
            row["label"] = value
            row["annotator"] = who
            row["label_source"] = meta.get("label_source", "human") if value is not None else None
            row["labeled_at"] = _ls_created_at(latest.get("created_at")) if value is not None else None
            row["annotations"] = len(annotations)
        predictions = [p for p in entry.get("predictions") or [] if isinstance(p, dict)]
        if predictions:
            prediction = predictions[-1]
            this, value, names = _ls_value(prediction.get("result", []), kind, here, text, ignored)
            if this and kind and this != kind:
                raise ValueError(f"{here}: a {this} prediction in a {kind} project (or {kind!r} task).")
            kind = kind or this
            found += names
            row["llm_label"] = value
            row["llm_confidence"] = prediction.get("score")
            row["llm_model"] = prediction.get("model_version")
            row["llm_prompt"] = meta.get("llm_prompt")
            row["llm_source"] = meta.get("llm_source")
            row["_probs"] = meta.get("llm_probs")
        records.append(row)
        where.append(here)
    _check_ignored(ignored, found, path)
    if written is not None:
        unknown = [name for name in dict.fromkeys(found) if name not in written.labels]
        if unknown:
            raise ValueError(
                f"{path}: label {unknown[0]!r} is not one of the labels {list(written.labels)} of the task jlabel "
                f"wrote into the file (meta.{_LS_TASK}); it was labeled with another label set. Pass "
                f"task=jl.Task([...]) with every label."
            )
    task = _task_for(found, kind, task, path)
    if annotations_mode == "all":
        long = pd.DataFrame(every, columns=["record", "annotator", "label", "labeled_at", "where"])
        where = long.pop("where").tolist()
        long["label"] = long["label"].astype(object)
        long = _finish(long, task, where)
        return long[["record", "annotator", "label", "labeled_at"]]
    keys = [r.pop("_key") for r in records]
    probs = [r.pop("_probs", None) for r in records]
    frame = _keyed(pd.DataFrame.from_records(records), keys) if records else pd.DataFrame()
    for column in ("label", "llm_label"):
        if column in frame.columns:
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    if "annotations" in frame.columns:
        frame["annotations"] = frame["annotations"].fillna(0).astype("int64")
    frame = _finish(frame, task, where)
    if any(p is not None for p in probs):
        k = len(task.labels)
        matrix = np.array([p if p is not None and len(p) == k else [np.nan] * k for p in probs], dtype=float)
        frame["llm_probs"] = probs_column(matrix, frame.index)
    frame["llm_confidence"] = frame["llm_confidence"].astype("float64")
    return frame


def _read_parquet(path: Path, task: Task | None = None) -> pd.DataFrame:
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise ValueError(f"{path}: not a readable Parquet file ({error}); the file may be truncated.") from None
    nested = [i for i, f in enumerate(table.schema) if pa.types.is_list(f.type) or pa.types.is_struct(f.type)]
    names = {table.schema[i].name for i in nested}
    flat = table.drop_columns(sorted(names))
    pandas_meta = flat.schema.pandas_metadata
    if pandas_meta:  # pandas cannot rebuild Arrow list dtypes from their names: those columns come below
        pandas_meta["columns"] = [c for c in pandas_meta["columns"] if c["name"] not in names]
        metadata = {**flat.schema.metadata, b"pandas": json.dumps(pandas_meta).encode("utf-8")}
        flat = flat.replace_schema_metadata(metadata)
    frame = flat.to_pandas()
    for i in nested:
        name = table.schema[i].name
        column = table.column(i)
        if name == "llm_probs":
            values = pd.arrays.ArrowExtensionArray(column.cast(PROBS_DTYPE.pyarrow_dtype))
        else:
            values = pd.array(column.to_pylist(), dtype=object)
        frame.insert(min(i, len(frame.columns)), name, pd.Series(values, index=frame.index))
    order = [f.name for f in table.schema if f.name in frame.columns]
    frame = frame[order]
    for name in frame.columns:
        dtype = frame[name].dtype
        # Parquet does not say how nullable strings were stored: jlabel keeps them as Python objects
        if isinstance(dtype, pd.StringDtype) and dtype.na_value is pd.NA:
            frame[name] = frame[name].astype(STRING_DTYPE)
    meta = table.schema.metadata or {}
    if _TASK_META in meta:
        frame.attrs["jlabel_task"] = json.loads(meta[_TASK_META])
    if task is not None:
        _check_parquet(frame, task, path)
        frame.attrs["jlabel_task"] = task.to_dict()
    return frame


def _check_parquet(frame: pd.DataFrame, task: Task, path: Path) -> None:
    """Refuse a Parquet file whose labels are of another kind than ``task``'s, or not among its labels."""
    columns = [c for c in ("label", "llm_label") if c in frame.columns]
    kind = (frame.attrs.get("jlabel_task") or {}).get("kind")
    if kind is None:  # a file jlabel did not write: the kind of its first label that says one
        first = _first_telling(v for c in columns for v in frame[c].dropna())
        kind = None if first is None else _kind_of(first)
    if kind is not None and kind != task.kind:
        raise ValueError(f"{path} holds {kind} labels but the task is a {task.kind!r} task.")
    if not columns:
        return
    needed = [*columns, *(task.text_columns if task.kind == "spans" else ())]
    keys = frame.index.astype(object)  # Python scalars, for the message
    try:
        checked = ensure_columns(frame[[c for c in dict.fromkeys(needed) if c in frame.columns]].copy(), task)
        text = record_texts(checked, task) if task.kind == "spans" else pd.Series("", index=frame.index)
        _validate(checked, task, keys, text, checked["label"].notna().to_numpy())
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


# -- the `jlabel export` command --------------------------------------------------------


def add_export_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``jlabel export`` options to ``parser``: the store, the data and the output."""
    parser.add_argument("store", help="the store file (SQLite) holding the labels")
    parser.add_argument("output", help="the file to write (.jsonl, .json = Label Studio, .parquet)")
    parser.add_argument(
        "--data", required=True, help="the records (.csv, .parquet or .jsonl) with their text, to join the labels onto"
    )
    parser.add_argument("--format", choices=FORMATS, help="the output format (default: from the suffix)")
    parser.add_argument(
        "--id",
        help="the column of --data holding the record keys (default: a CSV's unnamed first column, the index "
        "jlabel preannotate writes, else the row number)",
    )
    return parser


def export_command(args: argparse.Namespace) -> int:
    """Run ``jlabel export``: the store's labels (joined onto ``--data``) to a file. Returns 0."""
    from .cli import read_table
    from .store import Store

    if not Path(args.store).is_file():  # a mistyped path must not leave a new, empty store behind
        raise SystemExit(f"No store at {args.store}: give the store file the labels were recorded in.")
    store = Store(args.store)
    if store.task is None:
        raise SystemExit(f"{args.store} holds no task yet: nothing to export.")
    data = Path(args.data)
    if not data.is_file():
        raise SystemExit(
            f"No data file at {data}: --data names the records (.csv, .parquet, .jsonl) that were labeled."
        )
    # the reader `jlabel preannotate` uses (its output is valid --data); keys such as "007" stay text
    df = read_table(data, text=store.task.text_columns, id=args.id)
    df.index = key_strings(record_keys(df))
    decided = store.state().index.astype(str)
    if len(decided) and not decided.isin(df.index).any():
        raise SystemExit(
            f"None of the {len(decided)} records decided in {args.store} is a record of {data} (store keys such as "
            f"{decided[0]!r}, data keys such as {df.index[0] if len(df) else None!r}): pass --id the column that "
            f"holds the keys the labels were recorded under."
        )
    store.apply(df)
    path = export(df, args.output, format=args.format, task=store.task)
    print(f"wrote {int(df['label'].notna().sum())} labeled of {len(df)} records to {path}")
    return 0
