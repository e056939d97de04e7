"""Prompt tuning: score several prompts on a gold sample and compare them.

``jl.evaluate(gold, task, llm, prompts)`` pre-annotates the gold records once per prompt
(through :func:`jlabel.preannotate`, so exactly what a real run would suggest) and measures
each prompt against the gold labels. ``jl.compare_prompts(table)`` draws the table.

Definitions (single-label tasks; multi-label in brackets):

- *accuracy*: share of records whose suggestion equals the gold label [the whole label set];
- *F1* per label and *macro-F1*, their mean over the labels that occur in the gold labels or
  the suggestions (scikit-learn's ``f1_score(average="macro")`` for single-label tasks; for
  multi-label ones, scikit-learn also averages in labels that occur in neither, at F1 0);
- *ECE*: expected calibration error of the suggestion's confidence over ten equal-width
  bins (:func:`jlabel.calibration.ece`) [of every per-label yes/no decision];
- *coverage at 95%*: the largest share of records whose suggestions can be accepted
  automatically by a confidence threshold while the accepted ones are still at least 95%
  right, with that threshold (``NaN`` when no threshold reaches 95%);
- a record the model failed on counts as wrong and is never auto-accepted.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import calibration
from .frame import LABEL_COLUMNS, LLM_COLUMNS, cell_missing, probs, record_keys
from .prompts import Prompt, default_prompt
from .task import Task

if TYPE_CHECKING:
    import altair as alt

TARGET_ACCURACY = 0.95
BOOTSTRAP = 2000
_RUN_COLUMNS = ("records_per_s", "seconds")


def evaluate(
    gold: pd.DataFrame,
    task: Task,
    llm: Any,
    prompts: Mapping[str, str | Task | Prompt] | None = None,
    *,
    seed: int = 0,
    label: str = "label",
    calibrate: str | None = "auto",
    target_accuracy: float = TARGET_ACCURACY,
) -> pd.DataFrame:
    """Score each prompt on a labeled gold sample: one row per prompt.

    Parameters
    ----------
    gold
        Records with their correct labels in column ``label`` (every record labeled) and the
        text the task names. Not modified; ``llm_*`` columns it holds are ignored and recomputed.
    task
        The task; its label set is the one scored.
    llm
        A model from :func:`jlabel.llm` (or any object with the same protocol).
    prompts
        ``{name: prompt}``, each one of: a user-message template with ``{text}`` in it (such as
        ``"Article: {text}"``); a :class:`jlabel.Task` with the same labels and kind but other
        instructions or label descriptions; a :class:`jlabel.prompts.Prompt` (system text,
        few-shot examples, verbalisers). Default: ``{"default": task}``.
    seed
        Seed of the bootstrap that gives the accuracy's 95% interval.
    label
        The column holding the gold labels.
    calibrate
        The label-bias correction pre-annotation applies (see :func:`jlabel.preannotate`):
        ``"auto"`` (the default there too), ``"batch"``, ``"content_free"`` or ``None``.
    target_accuracy
        The accuracy the auto-accept threshold must keep (the ``coverage``/``threshold`` columns).

    Returns
    -------
    pandas.DataFrame
        Indexed by prompt name: ``n``, ``failed``, ``accuracy`` with ``accuracy_low`` and
        ``accuracy_high`` (a 95% bootstrap interval over records), ``macro_f1``, ``ece``,
        ``coverage`` and ``threshold`` (at ``target_accuracy``), ``records_per_s``, ``seconds``,
        ``model`` (the model id with its file digest), ``prompt_hash`` and one ``f1[LABEL]``
        column per label. Apart from ``records_per_s`` and ``seconds`` the same call gives
        the same table.
    """
    prompts = _check_prompts(prompts, task)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {seed!r}.")
    frame, truth = _gold(gold, task, label)
    if not isinstance(target_accuracy, (int, float)) or not 0 < target_accuracy <= 1:
        raise ValueError(f"target_accuracy must be in (0, 1], got {target_accuracy!r}.")
    rows = []
    for name, prompt in prompts.items():
        started = time.perf_counter()
        suggested = _suggest(frame, llm, prompt, calibrate)
        seconds = time.perf_counter() - started
        matrix = probs(suggested, task)
        row = {"prompt": name, **scores(truth, matrix, task, target_accuracy=target_accuracy, seed=seed)}
        row["records_per_s"] = len(frame) / seconds if seconds > 0 else np.inf
        row["seconds"] = seconds
        row["model"] = _single_value(suggested.get("llm_model"), getattr(llm, "id", type(llm).__name__))
        row["prompt_hash"] = _single_value(suggested.get("llm_prompt"), None)
        rows.append(row)
    table = pd.DataFrame(rows).set_index("prompt")
    f1 = [c for c in table.columns if c.startswith("f1[")]
    head = [
        "n",
        "failed",
        "accuracy",
        "accuracy_low",
        "accuracy_high",
        "macro_f1",
        "ece",
        "coverage",
        "threshold",
        *_RUN_COLUMNS,
        "model",
    ]
    return table[[*head, "prompt_hash", *f1]]


def scores(
    truth: np.ndarray,
    matrix: np.ndarray,
    task: Task,
    *,
    target_accuracy: float = TARGET_ACCURACY,
    seed: int = 0,
) -> dict[str, float]:
    """The metrics of one prompt from gold labels and the model's probability matrix.

    Parameters
    ----------
    truth
        single: the gold label's position in ``task.labels`` per record, shape ``(n,)``;
        multi: a boolean ``(n, k)`` matrix of the gold label sets.
    matrix
        The ``(n, k)`` probabilities (:func:`jlabel.probs`); a row of NaN is a failed record.
    task
        The task (its kind and labels).
    target_accuracy
        The accuracy the auto-accept threshold must keep.
    seed
        Seed of the bootstrap interval of the accuracy.

    Returns
    -------
    dict
        ``n``, ``failed``, ``accuracy``, ``accuracy_low``, ``accuracy_high``, ``macro_f1``, ``ece``, ``coverage``, ``threshold``
        and ``f1[LABEL]`` per label.

    Examples
    --------
    >>> task = Task(["pos", "neg"])
    >>> p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [np.nan, np.nan]])
    >>> s = scores(np.array([0, 1, 1, 0]), p, task)
    >>> s["accuracy"], s["failed"], s["f1[pos]"]
    (0.5, 1, 0.5)
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    n, k = len(matrix), len(task.labels)
    if matrix.shape != (n, k):
        raise ValueError(f"matrix has shape {matrix.shape}, expected (n, {k}) for labels {list(task.labels)}.")
    valid = ~np.isnan(matrix).any(axis=1)
    filled = np.where(valid[:, None], matrix, 0.0)
    if task.kind == "single":
        truth = np.asarray(truth, dtype=np.int64)
        predicted = np.where(valid, filled.argmax(axis=1), -1)
        confidence = np.where(valid, filled.max(axis=1) / np.where(valid, filled.sum(axis=1), 1.0), np.nan)
        correct = predicted == truth
        gold_onehot = np.eye(k, dtype=bool)[truth]
        pred_onehot = np.zeros((n, k), dtype=bool)
        pred_onehot[np.flatnonzero(valid), predicted[valid]] = True
        normalised = filled[valid] / filled[valid].sum(axis=1, keepdims=True)
        ece = calibration.ece(normalised, truth[valid])
    else:
        gold_onehot = np.asarray(truth, dtype=bool)
        pred_onehot = (filled > 0.5) & valid[:, None]
        correct = (pred_onehot == gold_onehot).all(axis=1) & valid
        per_label = np.where(pred_onehot, filled, 1 - filled)
        confidence = np.where(valid, per_label.prod(axis=1), np.nan)
        # every yes/no decision is a two-way prediction: columns (no, yes), ties go to "no" as above
        p_yes = filled[valid].ravel()
        ece = calibration.ece(np.c_[1 - p_yes, p_yes], gold_onehot[valid].ravel().astype(np.int64))
    f1 = f1_scores(gold_onehot, pred_onehot)
    present = gold_onehot.any(axis=0) | pred_onehot.any(axis=0)
    coverage, threshold = coverage_at(confidence, correct, target_accuracy)
    low, high = _interval(correct, seed) if n else (np.nan, np.nan)
    out: dict[str, float] = {
        "n": n,
        "failed": int((~valid).sum()),
        "accuracy": float(correct.mean()) if n else np.nan,
        "accuracy_low": low,
        "accuracy_high": high,
        "macro_f1": float(f1[present].mean()) if present.any() else np.nan,
        "ece": ece,
        "coverage": coverage,
        "threshold": threshold,
    }
    out.update({f"f1[{name}]": float(value) for name, value in zip(task.labels, f1)})
    return out


def f1_scores(gold: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Per-label F1 from boolean ``(n, k)`` gold and predicted matrices; NaN for a label in neither.

    Examples
    --------
    >>> gold = np.array([[1, 0], [0, 1], [0, 1]], dtype=bool)
    >>> f1_scores(gold, np.array([[1, 0], [1, 0], [0, 1]], dtype=bool)).round(3).tolist()
    [0.667, 0.667]
    """
    true_positive = (gold & predicted).sum(axis=0)
    denominator = gold.sum(axis=0) + predicted.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 2 * true_positive / denominator, np.nan)


def coverage_at(
    confidence: np.ndarray, correct: np.ndarray, target_accuracy: float = TARGET_ACCURACY
) -> tuple[float, float]:
    """The auto-accept threshold that keeps ``target_accuracy``, and the share of records it accepts.

    Records with confidence ``>= threshold`` are accepted; the threshold is the lowest one whose
    accepted records are at least ``target_accuracy`` right. NaN confidences (failed records)
    are never accepted but count in the share. Returns ``(0.0, nan)`` when no threshold reaches
    the target.

    Examples
    --------
    >>> coverage_at(np.array([0.9, 0.8, 0.7, 0.6]), np.array([True, True, False, True]), 0.9)
    (0.5, 0.8)
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    n = len(confidence)
    valid = ~np.isnan(confidence)
    order = np.argsort(-confidence[valid], kind="stable")
    ranked = confidence[valid][order]
    if len(ranked) == 0:
        return 0.0, np.nan
    accuracy = np.cumsum(correct[valid][order]) / np.arange(1, len(ranked) + 1)
    # a threshold accepts whole groups of equal confidence: only cut after a group's last record
    group_end = np.r_[ranked[1:] < ranked[:-1], True]
    eligible = np.flatnonzero(group_end & (accuracy >= target_accuracy))
    if len(eligible) == 0:
        return 0.0, np.nan
    last = int(eligible[-1])
    return (last + 1) / n, float(ranked[last])


def compare_prompts(table: pd.DataFrame) -> alt.Chart | alt.VConcatChart:
    """A chart comparing the prompts of an :func:`evaluate` table.

    Top: accuracy, macro-F1, coverage at the target accuracy and ECE per prompt (higher is
    better except ECE). Bottom: F1 per label and prompt, to see which labels a prompt fixes
    or breaks.

    Parameters
    ----------
    table
        The output of :func:`evaluate`.

    Examples
    --------
    >>> table = pd.DataFrame(
    ...     {"accuracy": [0.5, 0.7], "macro_f1": [0.4, 0.6], "coverage": [0.1, 0.3], "ece": [0.2, 0.1],
    ...      "f1[pos]": [0.5, 0.8], "f1[neg]": [0.3, 0.4]},
    ...     index=pd.Index(["v1", "v2"], name="prompt"))
    >>> chart = compare_prompts(table)
    >>> len(chart.to_dict()["vconcat"])
    2
    """
    import altair as alt  # imported on first use: `import jlabel` stays light

    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"compare_prompts takes the table jl.evaluate returns, got {type(table).__name__}.")
    metrics = ["accuracy", "macro_f1", "coverage", "ece"]
    missing = [m for m in metrics if m not in table.columns]
    if missing:
        raise ValueError(
            f"The table lacks column(s) {missing}: pass the table jl.evaluate returns (it has {list(table.columns)})."
        )
    if table.empty:
        return (
            alt.Chart(pd.DataFrame({"text": ["No prompts evaluated"]}))
            .mark_text(size=14)
            .encode(text="text:N")
            .properties(title="Prompts", width=300, height=60)
        )
    names = [str(name) for name in table.index]
    wide = table.assign(prompt=names)
    long = wide.melt(id_vars="prompt", value_vars=metrics, var_name="metric", value_name="value")
    long["metric"] = long["metric"].map(
        {
            "accuracy": "accuracy",
            "macro_f1": "macro-F1",
            "coverage": "coverage at target",
            "ece": "ECE (lower is better)",
        }
    )
    prompt = alt.X("prompt:N", sort=names, title=None)
    bars = (
        alt.Chart(long)
        .mark_bar()
        .encode(
            x=prompt,
            y=alt.Y("value:Q", scale=alt.Scale(domain=[0, 1]), title=None),
            color=alt.Color("prompt:N", sort=names, legend=None),
            tooltip=["prompt:N", "metric:N", alt.Tooltip("value:Q", format=".3f")],
        )
        .properties(width=140, height=160)
        .facet(column=alt.Column("metric:N", title=None, sort=list(long["metric"].unique())))
    )
    f1_columns = [c for c in table.columns if c.startswith("f1[") and c.endswith("]")]
    per_label = wide.melt(id_vars="prompt", value_vars=f1_columns, var_name="label", value_name="f1")
    per_label["label"] = per_label["label"].str.slice(3, -1)
    base = alt.Chart(per_label).encode(
        x=alt.X("label:N", sort=[c[3:-1] for c in f1_columns], title="label"),
        y=alt.Y("prompt:N", sort=names, title=None),
    )
    heat = base.mark_rect().encode(
        color=alt.Color("f1:Q", scale=alt.Scale(domain=[0, 1], scheme="blues"), title="F1"),
        tooltip=["prompt:N", "label:N", alt.Tooltip("f1:Q", format=".3f")],
    )
    numbers = base.mark_text(fontSize=11).encode(
        text=alt.Text("f1:Q", format=".2f"),
        color=alt.condition(alt.datum.f1 > 0.6, alt.value("white"), alt.value("black")),
    )
    heatmap = (heat + numbers).properties(title="F1 per label", width=max(160, 70 * len(f1_columns)))
    return alt.vconcat(bars, heatmap).properties(title="Prompts compared on the gold sample")


# -- inputs -------------------------------------------------------------------------------


def _check_prompts(prompts, task: Task) -> dict[str, Prompt]:
    if not isinstance(task, Task):
        raise TypeError(f"task must be a jl.Task, got {type(task).__name__}: build one with jl.Task([...]).")
    if task.kind == "spans":
        raise ValueError(
            "jl.evaluate scores single- and multi-label tasks; for spans compare the model with people "
            "through jl.agreement (span F1)."
        )
    if prompts is None:
        return {"default": default_prompt(task)}
    if not isinstance(prompts, Mapping):
        raise TypeError(
            f"prompts must be a dict {{name: template, jl.Task or Prompt}}, got {type(prompts).__name__}: "
            f"e.g. prompts={{'v1': task, 'v2': other_task}}."
        )
    if not prompts:
        raise ValueError("prompts is empty: give at least one {name: template, jl.Task or Prompt}.")
    out = {}
    for name, prompt in prompts.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"Prompt names must be non-empty strings, got {name!r}.")
        if isinstance(prompt, str):
            try:
                prompt = default_prompt(task, template=prompt)
            except ValueError as error:
                raise ValueError(f"Prompt {name!r}: {error}") from None
        elif isinstance(prompt, Task):
            prompt = default_prompt(prompt)
        elif not isinstance(prompt, Prompt):
            raise TypeError(
                f"Prompt {name!r} must be a template string with {{text}}, a jl.Task or a jlabel.prompts.Prompt, "
                f"got {type(prompt).__name__}."
            )
        other = prompt.task
        if other.labels != task.labels or other.kind != task.kind:
            raise ValueError(
                f"Prompt {name!r} is for labels {list(other.labels)} ({other.kind}); it must have the evaluated "
                f"task's labels {list(task.labels)} ({task.kind}) in the same order: change only the "
                f"instructions, label descriptions, text or examples."
            )
        out[name] = prompt
    return out


def _gold(gold, task: Task, label: str) -> tuple[pd.DataFrame, np.ndarray]:
    keys = record_keys(gold)
    if label not in gold.columns:
        raise KeyError(f"The gold frame has no column {label!r} with the correct labels; it has {list(gold.columns)}.")
    if len(gold) == 0:
        raise ValueError("The gold frame is empty: evaluate needs labeled records.")
    values = gold[label]
    missing = values.isna().to_numpy() if task.kind == "single" else values.map(cell_missing).to_numpy(dtype=bool)
    if missing.any():
        shown = ", ".join(map(repr, keys[missing][:5].tolist()))
        raise ValueError(
            f"{int(missing.sum())} gold record(s) have no label (e.g. {shown}): every gold record needs its "
            f"correct label; drop the others with gold.dropna(subset=[{label!r}])."
        )
    k = len(task.labels)
    if task.kind == "single":
        codes = pd.Index(task.labels, dtype=object).get_indexer(values.astype(object))
        unknown = codes < 0
        if unknown.any():
            bad = sorted(set(values[unknown].astype(str)))[:10]
            raise ValueError(
                f"Gold labels {bad} are not in the task's labels {list(task.labels)} (e.g. record "
                f"{keys[unknown][0]!r}): fix the gold labels or the task."
            )
        truth = codes.astype(np.int64)
    else:
        exploded = values.reset_index(drop=True).explode()  # a string stays one label; [] becomes NaN
        rows = exploded.index.to_numpy()
        codes = pd.Index(task.labels, dtype=object).get_indexer(exploded.astype(object))
        present = exploded.notna().to_numpy()
        unknown = present & (codes < 0)
        if unknown.any():
            bad = sorted(set(exploded[unknown].astype(str)))[:10]
            raise ValueError(f"Gold labels {bad} are not in the task's labels {list(task.labels)}.")
        truth = np.zeros((len(values), k), dtype=bool)
        truth[rows[present], codes[present]] = True
    frame = gold.drop(columns=[c for c in (*LABEL_COLUMNS, *LLM_COLUMNS, label) if c in gold.columns])
    return frame, truth


def _suggest(frame: pd.DataFrame, llm: Any, prompt: Prompt, calibrate) -> pd.DataFrame:
    """Pre-annotate the gold records with one prompt, computing every suggestion afresh."""
    from .preannotate import preannotate

    # no cache and no resume: every suggestion is computed now, so records/s is the model's speed
    return preannotate(
        frame,
        prompt.task,
        llm,
        prompt=prompt,
        examples=None,
        calibrate=calibrate,
        cache=None,
        resume=False,
        progress=False,
    )


def _interval(correct: np.ndarray, seed: int, resamples: int = BOOTSTRAP) -> tuple[float, float]:
    """A 95% percentile-bootstrap interval of the accuracy, resampling records."""
    rng = np.random.default_rng(seed)
    draws = correct[rng.integers(0, len(correct), size=(resamples, len(correct)))].mean(axis=1)
    low, high = np.quantile(draws, [0.025, 0.975])
    return float(low), float(high)


def _single_value(column: pd.Series | None, default):
    if column is None:
        return default
    values = column.dropna().unique()
    if len(values) == 0:
        return default
    return values[0] if len(values) == 1 else "|".join(sorted(map(str, values)))


# -- the `jlabel evaluate` command ----------------------------------------------------------


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``jlabel evaluate`` options to ``parser``: gold data, task, prompts, model, output."""
    parser.add_argument("gold", help="the gold records with their correct labels (.csv, .parquet or .jsonl)")
    parser.add_argument("--labels", nargs="+", required=True, help="the task's labels, in order")
    parser.add_argument("--text", default="text", help="the text column, or a template such as '{title}. {body}'")
    parser.add_argument("--instructions", default="", help="the task's instructions (the default prompt)")
    parser.add_argument("--kind", choices=("single", "multi"), default="single", help="the task kind")
    parser.add_argument(
        "--label-column", default="label", help="the column holding the gold labels (multi: 'a|b' in a CSV)"
    )
    parser.add_argument("--id", help="the column holding the record keys (default: the row number)")
    parser.add_argument(
        "--prompt",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="a prompt template read from FILE, scored under NAME (repeat for several; default: the task's prompt)",
    )
    parser.add_argument(
        "--calibrate",
        choices=("auto", "batch", "content_free", "none"),
        default="auto",
        help="label-bias correction (see jl.preannotate)",
    )
    parser.add_argument(
        "--model", default=None, help="model spec: 'llamacpp:/path.gguf', 'ollama:NAME' (default: embedded)"
    )
    parser.add_argument("--host", default=None, help="Ollama host (ollama: models only)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for llama.cpp")
    parser.add_argument("--seed", type=int, default=0, help="the seed of the accuracy's bootstrap interval")
    parser.add_argument("--out", help="write the table here (.csv or .parquet); printed either way")
    return parser


def _label_set(value: Any) -> Any:
    """A multi-label gold value from a file: a CSV holds ``"a|b"``, and an empty cell is the empty set."""
    if isinstance(value, str):
        return [part for part in value.split("|") if part]
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    return value


def evaluate_command(args: argparse.Namespace) -> int:
    """Run ``jlabel evaluate``: score prompts on a gold file, print the table. Returns 0."""
    from pathlib import Path

    from .cli import _model, read_table, task_of

    path = Path(args.gold)
    gold = read_table(path, id=args.id)
    task = task_of(args)
    if args.kind == "multi" and args.label_column in gold.columns:
        gold[args.label_column] = gold[args.label_column].map(_label_set)
    prompts: dict[str, str] = {}
    for item in args.prompt:
        name, sep, file = item.partition("=")
        if not sep or not name or not file:
            raise SystemExit(f"jlabel evaluate: --prompt takes NAME=FILE, got {item!r}.")
        if not Path(file).is_file():
            raise SystemExit(f"jlabel evaluate: prompt {name!r}: no file at {file!r}.")
        prompts[name] = Path(file).read_text(encoding="utf-8")
    model = _model(args)
    table = evaluate(
        gold,
        task,
        model,
        prompts or None,
        seed=args.seed,
        label=args.label_column,
        calibrate=None if args.calibrate == "none" else args.calibrate,
    )
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.drop(columns=["model", "prompt_hash"]).round(3).to_string())
    print(f"model: {_single_value(table['model'], '')}")
    if args.out:
        out = Path(args.out)
        if out.suffix == ".parquet":
            table.to_parquet(out)
        else:
            table.to_csv(out)
        print(f"wrote {out}")
    return 0
