"""The DataFrame contract: record keys, the columns jlabel writes, text and probabilities.

Everything here is vectorised over the frame: no Python loop per record.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .task import Task

LABEL_COLUMNS = ("label", "label_source", "annotator", "labeled_at")
LLM_COLUMNS = ("llm_label", "llm_confidence", "llm_probs", "llm_model", "llm_prompt", "llm_error", "llm_source")
#: where a suggestion came from (``llm_source``): see :mod:`jlabel.learn`
SUGGESTION_SOURCES = ("zero-shot", "head", "combined", "cascade")
LABEL_SOURCES = ("human", "llm_accepted", "llm_edited")

PROBS_DTYPE = pd.ArrowDtype(pa.list_(pa.float64()))
# nullable strings kept as Python objects: cheap to fill from object arrays, same on pandas 2 and 3
STRING_DTYPE = pd.StringDtype("python")


def record_keys(df: pd.DataFrame, id: str | None = None) -> pd.Index:
    """The record keys of ``df``: its index, or the column ``id``; they must be unique.

    Raises
    ------
    ValueError
        If a key appears more than once (the message names the duplicates), a key is missing, or the index
        is a MultiIndex (and no ``id`` is given).
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"Expected a pandas DataFrame, got {type(df).__name__}.")
    if id is None:
        if isinstance(df.index, pd.MultiIndex):
            raise ValueError(
                f"The frame's index is a MultiIndex (levels {list(df.index.names)}); records need one key each: "
                f"pass id= a column with unique values, or use df.reset_index() first."
            )
        keys, where = df.index, "the frame's index"
    else:
        if id not in df.columns:
            raise KeyError(f"id={id!r} is not a column of the frame; columns are {list(df.columns)}.")
        keys, where = pd.Index(df[id]), f"column {id!r}"
    if keys.hasnans:
        raise ValueError(f"{where} has missing keys: every record needs a key.")
    if not keys.is_unique:
        dups = keys[keys.duplicated()].unique()
        shown = ", ".join(map(repr, dups[:10].tolist())) + (" ..." if len(dups) > 10 else "")
        raise ValueError(
            f"{where} has {len(dups)} duplicate key(s): {shown}. Records need unique keys: "
            f"use df.reset_index(drop=True) or pass id= a column with unique values."
        )
    # the journal keys records by text: 1 and "1" (keys of mixed types) would be one record there
    mixed = keys.dtype == object and pd.api.types.infer_dtype(keys, skipna=False).startswith("mixed")
    as_text = key_strings(keys) if mixed else None
    if as_text is not None and not as_text.is_unique:
        same = as_text[as_text.duplicated()].unique()
        shown = ", ".join(map(repr, same[:10].tolist())) + (" ..." if len(same) > 10 else "")
        raise ValueError(
            f"{where} has keys that differ in type but read the same as text: {shown} (such as 1 and '1', "
            f"from frames concatenated); the journal keys records by their text. Give them distinct keys "
            f"(df.reset_index(drop=True)) or pass id= a column with unique values."
        )
    return keys


def key_strings(keys: pd.Index) -> pd.Index:
    """Keys as the strings the store uses (``str(key)``), vectorised."""
    if pd.api.types.infer_dtype(keys, skipna=False) == "string":
        return keys if keys.dtype == object else pd.Index(keys.to_numpy(dtype=object), dtype=object)
    return pd.Index(keys.astype(str).to_numpy(dtype=object), dtype=object)


def texts(df: pd.DataFrame, task: Task) -> pd.Series:
    """The text of every record: the task's column, or its template filled from columns.

    Missing values (NaN, None, NA) become empty text, other values their ``str()``:
    an empty record is one the panel can show, not an error.
    """
    missing = [c for c in task.text_columns if c not in df.columns]
    if missing:
        what = "template" if task.is_template else "text column"
        raise KeyError(
            f"The task's {what} {task.text!r} names column(s) {missing} that the frame lacks; "
            f"the frame has {list(df.columns)}."
        )
    if not task.is_template:
        return _as_text(df[task.text])
    out = pd.Series("", index=df.index, dtype=object)
    for literal, name, _, _ in string.Formatter().parse(task.text):
        if literal:
            out = out + literal
        if name is not None:
            out = out + _as_text(df[name])
    return out.astype(object)


def _as_text(column: pd.Series) -> pd.Series:
    if pd.api.types.is_string_dtype(column.dtype) and column.dtype == object:
        filled = column.where(column.notna(), "")
        non_str = ~filled.map(type).eq(str)
        if non_str.any():
            filled = filled.astype(str)
        return filled.astype(object)
    return column.astype("string").fillna("").astype(object)


def ensure_columns(df: pd.DataFrame, task: Task) -> pd.DataFrame:
    """Add the label and llm_* columns that ``df`` lacks, with their dtypes, in place.

    single: ``label``/``llm_label`` are nullable strings; multi and spans: object
    columns holding lists. ``llm_probs`` is an Arrow ``list<double>`` column.
    """
    label_dtype = STRING_DTYPE if task.kind == "single" else object
    dtypes = {
        "label": label_dtype,
        "label_source": STRING_DTYPE,
        "annotator": STRING_DTYPE,
        "labeled_at": "datetime64[ns, UTC]",
        "llm_label": label_dtype,
        "llm_confidence": "float64",
        "llm_probs": PROBS_DTYPE,
        "llm_model": STRING_DTYPE,
        "llm_prompt": STRING_DTYPE,
        "llm_error": STRING_DTYPE,
        "llm_source": STRING_DTYPE,
    }
    for column, dtype in dtypes.items():
        if column not in df.columns:
            if dtype is object:
                df[column] = pd.Series([None] * len(df), index=df.index, dtype=object)
            elif dtype == "float64":
                df[column] = np.nan
            else:
                df[column] = pd.Series(pd.NA, index=df.index, dtype=dtype)
        else:
            converted = _as_contract(df[column], dtype, task.labels if column in ("label", "llm_label") else ())
            if converted is not df[column]:
                df[column] = converted
    return df


def _as_contract(column: pd.Series, dtype, labels: Sequence[str] = ()) -> pd.Series:
    """``column`` in the dtype the contract gives it, when a file reader left it in another.

    A frame saved to CSV and read back holds an empty label column as floats, timestamps as text,
    and so on: a decision written into such a column would fail after the journal took it.
    """
    name = column.name
    if dtype is PROBS_DTYPE and not column.isna().all() and pd.api.types.infer_dtype(column, skipna=True) == "string":
        # lists written as text (a CSV file): parsed once, so that lists written later do not mix with text
        try:
            return pd.Series(pd.arrays.ArrowExtensionArray(_parse_list_text(column, name)), index=column.index)
        except ValueError:
            return column  # not lists of numbers: probs() says so where they are read
    if dtype is object and not column.isna().all() and pd.api.types.infer_dtype(column, skipna=True) == "string":
        return _parse_label_lists(column)  # multi-label or span lists written as text (a CSV file)
    if dtype is object or dtype is PROBS_DTYPE:
        if column.dtype == object or isinstance(column.dtype, pd.ArrowDtype) or not column.isna().all():
            return column  # lists
        if dtype is PROBS_DTYPE:
            return pd.Series(pd.NA, index=column.index, dtype=PROBS_DTYPE)
        return pd.Series([None] * len(column), index=column.index, dtype=object)
    if dtype == "float64":
        if pd.api.types.is_float_dtype(column.dtype):
            return column
        try:
            return pd.to_numeric(column, errors="raise").astype("float64")
        except (ValueError, TypeError):
            raise ValueError(
                f"The frame's {name} column holds values that are not numbers, such as "
                f"{column.dropna().tolist()[0]!r}; drop the column or convert it with pd.to_numeric."
            ) from None
    if dtype == "datetime64[ns, UTC]":
        return utc_column(column)
    if isinstance(column.dtype, pd.StringDtype):
        return column
    present = column.dropna()
    numbers = pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype)
    if len(present) and numbers and np.isfinite(present).all() and (present == present.round()).all():
        # label names that are numbers (ratings "1".."5"), read back from a file as 5 or 5.0
        named = present.astype("int64").astype(str)
        if named.isin(list(labels)).all():
            return column.astype("Int64").astype(dtype)
    if len(present) and not present.map(lambda v: isinstance(v, str)).all():
        raise ValueError(
            f"The frame's {name} column holds {column.dtype} values such as {present.tolist()[0]!r}, and jlabel "
            f"keeps text there{' (label names)' if labels else ''}; convert it with df[{name!r}].astype('string') or drop it."
        )
    return column.astype(dtype)


def _parse_label_lists(column: pd.Series) -> pd.Series:
    """Label lists written as text (JSON, or Python's repr as older jlabel versions wrote them) as lists."""
    import ast

    def parse(value):
        if cell_missing(value):
            return None
        for reader in (json.loads, ast.literal_eval):
            try:
                parsed = reader(value)
            except (ValueError, SyntaxError):
                continue
            if isinstance(parsed, list):
                return parsed
        raise ValueError(
            f"The frame's {column.name} column holds {value!r}, and a multi-label or span task keeps lists there "
            f"(such as ['a', 'b'], or the text '[\"a\", \"b\"]' a CSV file holds); fix that cell or drop the column."
        )

    return pd.Series([parse(v) for v in column.astype(object)], index=column.index, dtype=object, name=column.name)


def utc_column(column: pd.Series) -> pd.Series:
    """A frame's ``labeled_at`` as UTC timestamps, however a file reader left it.

    A CSV or JSONL reader gives an all-missing column as floats or objects, timestamps as
    ISO text, and dates without a zone as tz-naive (taken as UTC, as jlabel writes them).
    """
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        return column
    if column.isna().all():
        return pd.Series(pd.NaT, index=column.index, dtype="datetime64[ns, UTC]")
    if pd.api.types.is_datetime64_dtype(column.dtype):
        return column.dt.tz_localize("UTC")
    if pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype):
        raise ValueError(
            f"The frame's labeled_at column holds {column.dtype} values such as {column.dropna().tolist()[0]!r}, not "
            f"timestamps; drop the column or convert it with pd.to_datetime(..., utc=True)."
        )
    try:
        return pd.to_datetime(column, utc=True, format="ISO8601")
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"The frame's labeled_at column holds values that are not timestamps ({error}); drop the column or "
            f"convert it with pd.to_datetime(..., utc=True)."
        ) from None


def probs(df: pd.DataFrame, task: Task, column: str = "llm_probs") -> np.ndarray:
    """The ``(n, k)`` matrix of label probabilities, in the task's label order.

    Rows without a suggestion are NaN. No Python loop: the Arrow list column is
    flattened and reshaped. A column read back from a CSV file holds the lists as text
    (``"[0.2, 0.8]"``, as ``jlabel preannotate`` writes them); that text is parsed.
    """
    k = len(task.labels)
    n = len(df)
    out = np.full((n, k), np.nan)
    if column not in df.columns or n == 0:
        return out
    series = df[column]
    if isinstance(series.dtype, pd.ArrowDtype):
        array = pa.chunked_array(series.array._pa_array).combine_chunks()
    elif pd.api.types.infer_dtype(series, skipna=True) == "string":
        array = _parse_list_text(series, column)
    else:
        try:
            array = pa.array(series.map(_as_list_or_none).tolist(), type=pa.list_(pa.float64()))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as error:
            raise ValueError(
                f"{column!r} must hold one list of {k} probabilities per record (or a missing value); "
                f"it holds {series.dropna().iloc[0]!r} ({error})."
            ) from None
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    lengths = pc.list_value_length(array).to_numpy(zero_copy_only=False)
    wrong = valid & (lengths != k)
    if wrong.any():
        position = int(np.flatnonzero(wrong)[0])
        raise ValueError(
            f"{column!r} holds {int(lengths[position])} probabilities for record {df.index[position]!r} "
            f"but the task has {k} labels {list(task.labels)}: the suggestions were made for another "
            f"label set; re-run jl.preannotate with this task."
        )
    values = pc.list_flatten(array.filter(pa.array(valid))).to_numpy(zero_copy_only=False)
    out[valid] = values.reshape(-1, k)
    return out


def _parse_list_text(series: pd.Series, column: str) -> pa.ListArray:
    """Lists of numbers written as text (``"[0.2, 0.8]"``), parsed with Arrow's string kernels."""
    text = pc.utf8_trim_whitespace(pa.array(series.to_numpy(dtype=object, na_value=None), type=pa.string()))
    split = pc.split_pattern(pc.utf8_slice_codeunits(text, 1, -1), ",")
    try:
        if pc.all(pc.and_(pc.starts_with(text, "["), pc.ends_with(text, "]"))).as_py() is False:
            raise pa.ArrowInvalid("not a bracketed list")
        values = pc.cast(pc.utf8_trim_whitespace(pc.list_flatten(split)), pa.float64())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        raise ValueError(
            f"{column!r} holds text that is not a list of numbers, such as {_first_non_list(series)!r}; it should "
            f"hold lists of probabilities, or text such as '[0.2, 0.8]' (as a CSV file stores them)."
        ) from None
    return pa.ListArray.from_arrays(split.offsets, values, mask=split.is_null())


def _first_non_list(series: pd.Series):
    """The first value that is not a JSON list of numbers (for an error message only)."""
    for value in series.dropna():
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        if not isinstance(parsed, list) or not all(isinstance(x, (int, float)) for x in parsed) or not parsed:
            return value
    return series.dropna().iloc[0]


def cell_missing(value) -> bool:
    """Whether one cell holds nothing: None, NaN, NA or NaT (a list, even an empty one, is a value)."""
    return value is None or (not hasattr(value, "__len__") and bool(pd.isna(value)))


def plain_data(value):
    """A cell as JSON-able Python data: numpy arrays and tuples as lists, numpy scalars as Python's."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [plain_data(v) for v in value]
    if isinstance(value, Mapping):
        return {k: plain_data(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _as_list_or_none(value):
    return None if cell_missing(value) else list(value)


def probs_column(matrix: np.ndarray, index: pd.Index) -> pd.Series:
    """An Arrow ``list<double>`` column from an ``(n, k)`` matrix; rows with NaN become null."""
    matrix = np.asarray(matrix, dtype=np.float64)
    n, k = matrix.shape
    valid = ~np.isnan(matrix).any(axis=1)
    offsets = np.zeros(n + 1, dtype=np.int32)
    offsets[1:] = np.cumsum(np.where(valid, k, 0))
    values = pa.array(matrix[valid].ravel())
    mask = pa.array(~valid)
    array = pa.ListArray.from_arrays(pa.array(offsets), values, mask=mask)
    return pd.Series(pd.arrays.ArrowExtensionArray(array), index=index, name="llm_probs")


def set_suggestions(
    df: pd.DataFrame,
    task: Task,
    probs: np.ndarray,
    *,
    model: str,
    prompt: str | None = None,
    source: str | np.ndarray | None = None,
) -> pd.DataFrame:
    """A copy of ``df`` with the llm_* columns filled from a probability matrix.

    Bring your own model: ``probs`` is ``(len(df), len(task.labels))`` in the task's label
    order (rows of NaN mean no suggestion). single: each row is normalised to sum to 1 and
    the suggestion is the argmax; multi: each entry is P(label applies) and the suggestion
    is every label above 0.5. ``source`` fills ``llm_source``, one for all rows or one per row
    (``"zero-shot"`` for an LLM's own probabilities; learned suggestions say ``"head"``, ``"combined"``
    or ``"cascade"``); ``None`` leaves it empty.
    """
    matrix = np.asarray(probs, dtype=np.float64)
    if matrix.shape != (len(df), len(task.labels)):
        raise ValueError(
            f"probs has shape {matrix.shape}, expected ({len(df)}, {len(task.labels)}): one row per "
            f"record, one column per label in the task's order {list(task.labels)}."
        )
    if task.kind == "spans":
        raise ValueError("set_suggestions takes label probabilities; span tasks have no label matrix.")
    valid = ~np.isnan(matrix).any(axis=1)
    if not np.isfinite(matrix[valid]).all():
        raise ValueError(
            "probs holds infinite values: give probabilities (or scores such as softmax outputs), not exp() of "
            "large logits; NaN marks a row without a suggestion."
        )
    if (matrix[valid] < 0).any() or (task.kind == "multi" and (matrix[valid] > 1).any()):
        raise ValueError("probs must be probabilities: non-negative (and at most 1 for multi-label tasks).")
    out = ensure_columns(df.copy(), task)
    labels = np.array(task.labels, dtype=object)
    if task.kind == "single":
        sums = matrix.sum(axis=1, keepdims=True)
        if valid.any() and (sums[valid] <= 0).any():
            raise ValueError("Every row of probs needs a positive sum.")
        with np.errstate(invalid="ignore", divide="ignore"):
            matrix = matrix / sums
        best = np.where(valid, np.nanargmax(np.where(valid[:, None], matrix, 0), axis=1), 0)
        out["llm_label"] = pd.Series(np.where(valid, labels[best], None), index=df.index).astype(STRING_DTYPE)
        out["llm_confidence"] = np.where(valid, matrix[np.arange(len(df)), best], np.nan)
    else:
        chosen = matrix > 0.5
        suggestion = [list(labels[row]) if ok else None for row, ok in zip(chosen, valid)]
        out["llm_label"] = pd.Series(suggestion, index=df.index, dtype=object)
        # confidence of a multi-label suggestion: the probability that the whole set is right
        per_label = np.where(chosen, matrix, 1 - matrix)
        out["llm_confidence"] = np.where(valid, per_label.prod(axis=1), np.nan)
    out["llm_probs"] = probs_column(matrix, df.index)
    out["llm_model"] = pd.Series(np.where(valid, model, None), index=df.index).astype(STRING_DTYPE)
    out["llm_prompt"] = pd.Series(np.where(valid, prompt, None), index=df.index).astype(STRING_DTYPE)
    out["llm_source"] = pd.Series(np.where(valid, source, None), index=df.index).astype(STRING_DTYPE)
    out.loc[valid, "llm_error"] = pd.NA  # a new suggestion: an earlier run's error no longer holds
    return out


def unlabeled(df: pd.DataFrame) -> np.ndarray:
    """A boolean mask of the records without a human label."""
    if "label" not in df.columns:
        return np.ones(len(df), dtype=bool)
    return df["label"].isna().to_numpy()


def check_labels_match(df: pd.DataFrame, task: Task, columns: Sequence[str] = ("llm_label",)) -> None:
    """Raise if a suggestion column holds labels that are not the task's."""
    if task.kind != "single":
        return
    allowed = set(task.labels)
    for column in columns:
        if column in df.columns:
            present = set(df[column].dropna().unique().tolist())
            unknown = sorted(present - allowed)
            if unknown:
                raise ValueError(
                    f"Column {column!r} holds labels {unknown[:10]} that are not in the task's labels "
                    f"{list(task.labels)}: the suggestions were made for another task."
                )
