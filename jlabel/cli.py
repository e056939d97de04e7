"""The ``jlabel`` command: ``jlabel demo``, ``jlabel preannotate``, ``jlabel evaluate``."""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .frame import LABEL_COLUMNS, LLM_COLUMNS, cell_missing, plain_data

_NOT_TEXT = ("labeled_at", "llm_confidence", "llm_probs")  # times, a number, lists
FORMATS = {".csv": "csv", ".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
# read_json without guessing: no "007" -> 7, no text column turned into dates. pandas < 3.1 guesses
# dates even with dtype=False unless told not to; pandas 3.1 deprecates convert_dates for dtype=False.
_JSON_AS_WRITTEN = {"dtype": False}
if getattr(inspect.signature(pd.read_json).parameters.get("convert_dates"), "default", None) is True:
    _JSON_AS_WRITTEN["convert_dates"] = False


# jlabel's own columns that hold text: a label "1" or a model id "7" must not be read as a number
_TEXT_COLUMNS = ("text", *(c for c in (*LABEL_COLUMNS, *LLM_COLUMNS) if c not in _NOT_TEXT))
# a number written with a leading zero or a plus sign is an identifier (a record key, a zip or
# phone number): read as a number it would lose what makes it itself
_WRITTEN_AS_TEXT = r"^\s*(?:[+-]?0\d|\+)"


def read_table(path: str | Path, *, text: Sequence[str] = (), id: str | None = None) -> pd.DataFrame:
    """Read a CSV, Parquet or JSONL file as it is written; a clear error for anything else.

    Values are not reinterpreted: text such as ``"N/A"`` stays text (only an empty CSV cell is
    missing), and no column is guessed to be a date. JSONL and Parquet keep the types they
    were written with. A CSV column is read as numbers only where numbers lose nothing, so
    the numeric columns a template or a model's confidence rely on stay numbers, but these
    columns are read as text: the ``text`` columns given (the ``--id`` column, the task's text
    columns), jlabel's own text columns (``text``, ``label``, ``llm_label``, ...) and any
    column holding a number written with a leading zero or a plus sign (``"007"``, ``"+44"``).

    The record keys: the column ``id`` (the ``--id`` option), else the keys :func:`write_table`
    wrote (a CSV's unnamed first column, a JSONL file's first field ``id`` when its values are
    unique), else the row numbers.
    """
    path = Path(path)
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise SystemExit(f"jlabel: {str(path)!r} is not .csv, .parquet or .jsonl; convert it to one of those.")
    if not path.is_file():
        raise SystemExit(f"jlabel: no input file at {str(path)!r}.")
    if kind == "csv":
        frame = _read_csv(path, {*text, *([id] if id else []), *_TEXT_COLUMNS})
        if frame.columns[:1].tolist() == ["Unnamed: 0"]:  # the index write_table wrote
            frame = frame.set_index("Unnamed: 0", drop=True).rename_axis(None)
    elif kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        # list columns (llm_probs) come back as Arrow lists, as jlabel writes them
        types = lambda t: pd.ArrowDtype(t) if pa.types.is_list(t) else None  # noqa: E731
        frame = pq.read_table(path).to_pandas(types_mapper=types)
    else:
        frame = pd.read_json(path, lines=True, **_JSON_AS_WRITTEN)
        if id is None and frame.columns[:1].tolist() == ["id"] and frame["id"].notna().all() and frame["id"].is_unique:
            frame = frame.set_index("id", drop=True).rename_axis(None)
    if id is None:
        return frame
    if id not in frame.columns:
        raise SystemExit(f"jlabel: --id {id!r} is not a column of {path}; its columns are {list(frame.columns)}.")
    return frame.set_index(id, drop=True)


def _read_csv(path: Path, text: set[str]) -> pd.DataFrame:
    """A CSV file with the numbers pandas finds, except the columns that must stay as written."""
    frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
    numeric = [
        i
        for i in range(frame.shape[1])
        if pd.api.types.is_numeric_dtype(frame.iloc[:, i]) and not pd.api.types.is_bool_dtype(frame.iloc[:, i])
    ]
    if numeric:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])  # the same layout, as text
        for i in numeric:
            written = raw.iloc[:, i]
            if frame.columns[i] in text or written.str.match(_WRITTEN_AS_TEXT).fillna(False).any():
                frame.isetitem(i, pd.Series(written.to_numpy(), index=frame.index, dtype=written.dtype))  # by position
    return frame


def task_of(args: argparse.Namespace):
    """The task the options describe (--labels, --kind, --instructions, --text); a bad one is a message."""
    from .task import Task

    try:
        return Task(args.labels, kind=args.kind, instructions=args.instructions, text=args.text)
    except (TypeError, ValueError) as error:
        message = str(error).replace(f"Task({list(args.labels)!r}, kind='multi')", "--kind multi")
        raise SystemExit(f"jlabel: {message}") from None


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` as CSV, Parquet or JSONL by the suffix of ``path``, so that :func:`read_table` reads it back.

    The record keys: CSV writes the index as its first, unnamed column; JSONL writes an unnamed
    index as the field ``id`` (a plain 0..n-1 index not at all: the row order is the key). List
    columns (``llm_probs``, and multi-label or span labels) are JSON in CSV.
    """
    path = Path(path)
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise SystemExit(f"jlabel: --out {str(path)!r} must end in .csv, .parquet or .jsonl.")
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "parquet":
        from .io import write_parquet

        write_parquet(df, path)
    elif kind == "jsonl":
        plain = df.copy()
        if "llm_probs" in plain:
            plain["llm_probs"] = (
                plain["llm_probs"].astype(object).map(lambda v: None if cell_missing(v) else _as_list(v))
            )
        _keys_as_field(plain).to_json(path, orient="records", lines=True, force_ascii=False, date_format="iso")
    else:
        plain = df.copy()
        if "llm_probs" in plain:
            plain["llm_probs"] = (
                plain["llm_probs"]
                .astype(object)
                .map(lambda v: None if cell_missing(v) else "[" + ", ".join(f"{x:.6g}" for x in _as_list(v)) + "]")
            )
        for column in ("label", "llm_label"):
            if column in plain and plain[column].dtype == object:  # multi-label or span lists
                plain[column] = plain[column].map(_json_if_list)
        plain.to_csv(path)
    return path


def _keys_as_field(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with its index as a column for a JSONL file: its own name, else ``id``; a 0..n-1 index is left out."""
    if df.index.name is None and df.index.equals(pd.RangeIndex(len(df))):
        return df.reset_index(drop=True)
    if df.index.name is None and "id" in df.columns:
        raise SystemExit(
            "jlabel: the frame has an id column and its index holds other keys; name the index "
            "(df.index.name = 'key') or drop one of them before writing JSONL."
        )
    return df.rename_axis(df.index.name or "id").reset_index()


def _json_if_list(value):
    """A list cell (labels, spans) as JSON text; anything else as it is."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return json.dumps(plain_data(value), ensure_ascii=False)
    return value


def _as_list(value) -> list:
    """A llm_probs cell as a list of numbers; a CSV read back holds it as the JSON text jlabel wrote."""
    return json.loads(value) if isinstance(value, str) else list(value)


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default=None, help="model spec: 'llamacpp:/path.gguf', 'ollama:NAME' (default: embedded)"
    )
    parser.add_argument("--host", default=None, help="Ollama host (ollama: models only)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for llama.cpp")
    parser.add_argument("--batch", type=int, default=32, help="records per model call and cache write")
    parser.add_argument(
        "--calibrate", choices=("auto", "batch", "content_free", "none"), default="auto", help="label-bias correction"
    )
    parser.add_argument("--cache", default=None, help="score cache file (default: ~/.cache/jlabel/scores.sqlite)")
    parser.add_argument("--no-cache", action="store_true", help="score without a cache (no resume)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _model(args: argparse.Namespace):
    from .llm import llm

    options = {}
    if args.threads is not None:
        options["n_threads"] = args.threads
    if args.host is not None:
        options["host"] = args.host
    return llm(args.model, **options)


def _cache(args: argparse.Namespace):
    return None if args.no_cache else (args.cache or True)


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def demo(args: argparse.Namespace) -> int:
    """Pre-annotate the bundled news demo with the embedded model and print a short table."""
    from . import calibration
    from .datasets import NEWS_TOPICS, news_demo
    from .frame import probs
    from .preannotate import preannotate
    from .task import Task

    if FORMATS.get(Path(args.out).suffix.lower()) is None:  # before the model runs, not after
        raise SystemExit(f"jlabel: --out {args.out!r} must end in .csv, .parquet or .jsonl.")
    df = news_demo().head(args.n)
    task = Task(list(NEWS_TOPICS), instructions="Classify the news article by topic.", text="{title}. {description}")
    model = _model(args)
    start = time.perf_counter()
    out = preannotate(
        df,
        task,
        model,
        batch=args.batch,
        calibrate=None if args.calibrate == "none" else args.calibrate,
        cache=_cache(args),
        progress=not args.quiet,
    )
    seconds = time.perf_counter() - start
    written = write_table(out, args.out)
    gold = df["topic"].map({label: i for i, label in enumerate(task.labels)}).to_numpy()
    matrix = probs(out, task)
    scored = ~np.isnan(matrix).any(axis=1)  # a failed record has no suggestion: it is not right
    accuracy = (
        f"{calibration.accuracy(matrix[scored], gold[scored]):.2f} of {scored.sum()} scored" if scored.any() else "n/a"
    )
    rows = [
        ("records", f"{len(out)}"),
        ("model", model.id.split("@")[0]),
        ("accuracy vs gold topics", accuracy),
        ("mean confidence", f"{np.nanmean(out['llm_confidence']):.2f}" if scored.any() else "n/a"),
        ("records/s", f"{len(out) / seconds:.1f} (cached records count as done)"),
        ("errors or warnings", f"{int(out['llm_error'].notna().sum())}"),
        ("output", str(written)),
    ]
    width = max(len(name) for name, _ in rows)
    print("\n".join(f"{name:<{width}}  {value}" for name, value in rows))
    return 0


def preannotate_command(args: argparse.Namespace) -> int:
    """``jlabel preannotate INPUT --labels ... --out OUTPUT``."""
    from .preannotate import preannotate

    if FORMATS.get(Path(args.out).suffix.lower()) is None:
        raise SystemExit(f"jlabel: --out {args.out!r} must end in .csv, .parquet or .jsonl.")
    task = task_of(args)
    df = read_table(args.input, text=task.text_columns, id=args.id)
    store = None
    if args.store:
        from .store import Store

        store = Store(args.store, task=task)
    out = preannotate(
        df,
        task,
        _model(args),
        batch=args.batch,
        calibrate=None if args.calibrate == "none" else args.calibrate,
        cache=_cache(args),
        store=store,
        progress=not args.quiet,
        learn=args.learn or args.cascade,
        cascade=args.cascade,
    )
    written = write_table(out, args.out)
    failed = int(out["llm_label"].isna().sum())
    print(f"wrote {len(out)} records to {written} ({failed} without a suggestion; see llm_error)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``jlabel`` command."""
    parser = argparse.ArgumentParser(prog="jlabel", description="Label data with a local LLM, inside Jupyter.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="pre-annotate the bundled news demo with the embedded model")
    p.add_argument("--out", default="jlabel_demo.csv", help="where to write the result (.csv, .parquet, .jsonl)")
    p.add_argument("--n", type=_positive, default=120, help="how many of the 120 demo records")
    _add_model_options(p)
    p.set_defaults(func=demo)

    p = sub.add_parser("preannotate", help="fill the llm_* columns of a CSV/Parquet/JSONL file")
    p.add_argument("input", help="the records (.csv, .parquet or .jsonl)")
    p.add_argument("--labels", nargs="+", required=True, help="the task's labels, in order")
    p.add_argument("--out", required=True, help="where to write the result (.csv, .parquet, .jsonl)")
    p.add_argument("--text", default="text", help="the text column, or a template such as '{title}. {body}'")
    p.add_argument("--instructions", default="", help="what the model is asked to do")
    p.add_argument("--kind", choices=("single", "multi", "spans"), default="single")
    p.add_argument("--id", default=None, help="the column of record keys (default: row number)")
    p.add_argument("--store", default=None, help="a jlabel store file to receive 'suggest' events")
    p.add_argument(
        "--learn", action="store_true", help="learn from the human labels in the input's 'label' column (jl.Assistant)"
    )
    p.add_argument("--cascade", action="store_true", help="with --learn: no model call where the learned head is sure")
    _add_model_options(p)
    p.set_defaults(func=preannotate_command)

    from .audit import add_report_arguments, report_command
    from .evaluate import add_evaluate_arguments, evaluate_command
    from .io import add_export_arguments, export_command

    p = sub.add_parser("evaluate", help="score prompts against gold labels")
    add_evaluate_arguments(p)
    p.set_defaults(func=evaluate_command)

    p = sub.add_parser("export", help="write a store's labels as JSONL, Label Studio, Prodigy or Parquet")
    add_export_arguments(p)
    p.set_defaults(func=export_command)

    p = sub.add_parser("report", help="write a store's self-contained HTML quality report")
    add_report_arguments(p)
    p.set_defaults(func=report_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``jlabel`` command; returns the exit status."""
    from .store import StoreError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (
        ValueError,
        TypeError,
        KeyError,
        ModuleNotFoundError,
        OSError,
        StoreError,
    ) as error:
        print(f"jlabel {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
