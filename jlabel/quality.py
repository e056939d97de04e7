"""Label checks, annotator patterns, calibration and auto-accept thresholds.

- :func:`check`: human labels that are likely wrong (confident learning over the model's
  probabilities, and near-identical texts with different labels);
- :func:`annotator_report`: per annotator speed, acceptance, agreement, fatigue, weak labels;
- :func:`reliability_table`, :func:`expected_calibration_error`, :func:`fit_temperature`,
  :func:`apply_temperature`: is the model's confidence a probability, and make it one;
- :func:`auto_accept_threshold`: the confidence above which suggestions can be accepted
  unseen at a target accuracy, with a bootstrap interval.

Single-label tasks only for the probability-based parts.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from . import calibration
from .dashboard import SESSION_GAP, disagreement, prepare
from .frame import STRING_DTYPE, key_strings, record_keys, set_suggestions, texts
from .frame import probs as probs_matrix
from .task import Task

BANDS = (0.0, 0.5, 0.8, 1.0)
BAND_NAMES = ("low", "mid", "high")

#: the keys of a suspect's check event ``meta``, in the order the report shows them
CHECK_DETAILS = ["label", "score", "reason", "explanation"]


# --- shared -------------------------------------------------------------------------------------


def _single(task: Task, what: str) -> None:
    if not isinstance(task, Task):
        raise TypeError(f"task must be a jl.Task, got {type(task).__name__}.")
    if task.kind != "single":
        raise ValueError(f"{what} works on single-label tasks; this task is kind={task.kind!r}.")


def _label_codes(df: pd.DataFrame, task: Task) -> np.ndarray:
    """Each record's human label as its position in the task's labels; -1 where unlabeled."""
    if "label" not in df.columns:
        return np.full(len(df), -1)
    label = df["label"]
    codes = pd.Index(list(task.labels), dtype=object).get_indexer(label.to_numpy(dtype=object, na_value=None))
    unknown = (codes < 0) & label.notna().to_numpy()
    if unknown.any():
        raise ValueError(
            f"labels {sorted(set(map(str, label[unknown].unique())))[:5]} are not in the task's labels "
            f"{list(task.labels)}; fix the labels or use the task they were made with."
        )
    return np.asarray(codes, dtype=np.int64)


def _labeled(df: pd.DataFrame, task: Task, column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mask of labeled records with probabilities, their probabilities and label codes."""
    matrix = probs_matrix(df, task, column)
    y = _label_codes(df, task)
    use = (y >= 0) & ~np.isnan(matrix).any(axis=1)
    return use, matrix[use], y[use]


# --- label checks -------------------------------------------------------------------------------

#: jl.check learns (jl.Assistant) by default up to this many records
LEARN_MAX_ROWS = 50_000


def _normalised(text: pd.Series) -> pd.Series:
    return text.str.lower().str.replace(r"[\W_]+", " ", regex=True).str.strip()


def check(
    df: pd.DataFrame,
    task: Task,
    llm=None,
    *,
    explain: bool | int = False,
    probs: str = "llm_probs",
    similar: bool = True,
    id: str | None = None,
    learn: bool | None = None,
    cache: str | os.PathLike | bool = True,
    store=None,
) -> pd.DataFrame:
    """Human labels that are likely wrong, most suspicious first, each with a reason.

    Two checks:

    - *model disagrees* (confident learning): a per-label threshold is the model's mean
      probability of that label over the records people gave that label; a record is
      suspect when the model's probability of another label reaches that label's threshold
      and is above the probability of the human label (the most probable such label is the
      model's label). Score: that probability minus the probability of the human label.
    - *similar text, different label*: records whose text is the same after lower-casing
      and dropping punctuation, where this record's label is not the group's only majority.
      Score: the share of the group that gave another label.

    Parameters
    ----------
    df
        A labeled frame; the first check needs ``llm_probs`` (:func:`jlabel.preannotate`).
    task
        The single-label task.
    llm
        The local model, for ``explain=True``.
    explain
        Ask ``llm`` for a one-line reason per suspect, in an ``explanation`` column: ``True``
        for every suspect, a number ``n`` for the ``n`` most suspicious (one generation each).
    probs
        The probability column.
    similar
        Also run the similar-text check.
    id
        A column holding the record keys (default: the index).
    learn
        Check against a :class:`jlabel.Assistant` learned from the frame's labels instead of the
        model's probabilities alone: each labeled record gets out-of-fold probabilities (a head that
        never saw its label, a combination fitted on other folds), so its own label never vouches for
        itself. Without ``probs`` in the frame, the head alone. Default: learn when the frame
        has ``probs``, the task reads text and the frame has at most ``LEARN_MAX_ROWS`` records
        (learning reads every record's text: pass ``learn=True`` for larger frames). On the news-topic set with 10% of 1,000 labels
        flipped (``benchmarks/check_news.py``, three seeds), learning raised the precision of the
        flagged set from 0.15-0.19 to 0.52-0.54, at a recall of 0.58-0.68.
    cache
        The score cache the record vectors are read from when learning (as in ``preannotate``).
    store
        A :class:`jlabel.Store` (or its path): one ``check`` event per suspect, for the audit trail
        and ``jlabel report`` (value ``"suspect"``, the model's label and confidence, and the human
        label, score, reason and explanation in ``meta``).

    Returns
    -------
    pandas.DataFrame
        Indexed by record key: ``label`` (the human label), ``model_label``,
        ``model_confidence`` (the model's probability of ``model_label``), ``score`` (0..1)
        and ``reason``; one row per suspect (reasons joined with ``"; "``), sorted by score.

    Examples
    --------
    >>> task = Task(["pos", "neg"], text="text")
    >>> df = pd.DataFrame({"text": ["good", "bad", "fine", "awful"], "label": ["pos", "neg", "pos", "pos"]})
    >>> df = set_suggestions(df, task, np.array([[0.9, 0.1], [0.2, 0.8], [0.8, 0.2], [0.1, 0.9]]), model="m")
    >>> suspects = check(df, task, learn=False)  # the model's probabilities as they are
    >>> suspects.index.tolist(), suspects["model_label"].tolist(), suspects["score"].round(2).tolist()
    (['3'], ['neg'], [0.8])
    """
    _single(task, "jl.check")
    if explain and not callable(getattr(llm, "generate", None)):
        raise ValueError("explain=True asks the model for each reason: pass llm=jl.llm() (or your model) as well.")
    if store is None:
        return _check(df, task, llm, explain, probs, similar, id, learn, cache, None)
    from .store import opened_for

    # opened (and a store of another task refused) before any work, and once
    with opened_for(store, task, what="the check events") as journal:
        return _check(df, task, llm, explain, probs, similar, id, learn, cache, journal)


def _check(df, task, llm, explain, probs, similar, id, learn, cache, store) -> pd.DataFrame:
    """:func:`check` with its arguments checked; ``store`` is an open Store or None."""
    keys = key_strings(record_keys(df, id))
    codes = _label_codes(df, task)
    labels = np.array(task.labels, dtype=object)
    parts = []

    matrix = probs_matrix(df, task, probs) if probs in df.columns else np.full((len(df), len(labels)), np.nan)
    if learn is None:
        learn = probs in df.columns and bool(task.text_columns) and len(df) <= LEARN_MAX_ROWS
    if learn:
        from .learn import Assistant

        # out-of-fold suggestions of labeled records only: no self-training (it teaches unlabeled ones)
        assistant = Assistant(df, task, probs=matrix, vectors="cache", cache=cache, self_train=False, id=id)
        learned_rows, learned, _ = assistant.fit(select=True).oof()
        matrix = matrix.copy()
        matrix[learned_rows] = learned
    use = (codes >= 0) & ~np.isnan(matrix).any(axis=1)
    if use.any():
        p, y = matrix[use], codes[use]
        per_label = np.bincount(y, minlength=len(labels))
        sums = np.stack([np.bincount(y, weights=p[:, j], minlength=len(labels))[j] for j in range(len(labels))])
        thresholds = np.where(per_label > 0, sums / np.maximum(per_label, 1), np.inf)  # unseen label: never
        above = np.where(p >= thresholds, p, -1.0)
        best = above.argmax(axis=1)
        p_label = p[np.arange(len(y)), y]
        suspect = above.max(axis=1) > p_label  # the model prefers a label that reaches its threshold
        rows = np.flatnonzero(use)[suspect]
        p_best, p_human = p[suspect, best[suspect]], p_label[suspect]
        best_labels = labels[best[suspect]]
        reason = (
            "model says "
            + pd.Series(best_labels, dtype=object)
            + " with p="
            + pd.Series(p_best).round(2).astype(str)
            + " (its threshold "
            + pd.Series(thresholds[best[suspect]]).round(2).astype(str)
            + "), "
            + pd.Series(labels[y[suspect]], dtype=object)
            + " p="
            + pd.Series(p_human).round(2).astype(str)
        )
        parts.append(
            pd.DataFrame(
                {
                    "row": rows,
                    "model_label": best_labels,
                    "model_confidence": p_best,
                    "score": p_best - p_human,
                    "reason": reason.to_numpy(dtype=object),
                }
            )
        )

    if similar and task.text_columns and (codes >= 0).sum() > 1:
        rows = np.flatnonzero(codes >= 0)
        text = _normalised(texts(df.iloc[rows], task).astype(str)).to_numpy(dtype=object)
        group = pd.factorize(text)[0]
        frame = pd.DataFrame({"group": group, "label": codes[rows]})
        counts = frame.groupby(["group", "label"]).size().rename("same")
        top = counts.groupby(level=0).transform("max")
        n_top = (counts == top).groupby(level=0).transform("sum")
        size_of = counts.groupby(level=0).transform("sum")
        flagged = (counts < size_of) & ((counts < top) | (n_top > 1))
        table = pd.DataFrame({"same": counts, "size": size_of, "flagged": flagged})
        joined = frame.join(table, on=["group", "label"])
        same, size = joined["same"].to_numpy(), joined["size"].to_numpy()
        suspect = joined["flagged"].to_numpy(dtype=bool) & (text != "")
        if suspect.any():
            others = size[suspect] - same[suspect]
            theirs = matrix[rows[suspect]]
            scored = ~np.isnan(theirs).any(axis=1)
            model_label = np.where(scored, labels[np.nan_to_num(theirs, nan=-1.0).argmax(axis=1)], None)
            parts.append(
                pd.DataFrame(
                    {
                        "row": rows[suspect],
                        "model_label": model_label,
                        "model_confidence": np.where(scored, np.nan_to_num(theirs, nan=-1.0).max(axis=1), np.nan),
                        "score": others / size[suspect],
                        "reason": (
                            pd.Series(others).astype(str)
                            + " of "
                            + pd.Series(size[suspect] - 1).astype(str)
                            + " records with the same text have another label"
                        ).to_numpy(dtype=object),
                    }
                )
            )

    columns = ["label", "model_label", "model_confidence", "score", "reason"]
    if not parts:
        empty = pd.DataFrame(
            {c: pd.Series(dtype=object if c in ("label", "model_label", "reason") else float) for c in columns}
        )
        empty.index = pd.Index([], name="record", dtype=object)
        if store is not None:
            _check_events(store, df, keys, codes, empty)
        return empty
    found = pd.concat(parts, ignore_index=True).sort_values("score", ascending=False, kind="stable")
    reasons = found.groupby("row", sort=False)["reason"].agg("; ".join)
    found = found.drop_duplicates("row").set_index("row")
    found["reason"] = reasons
    out = pd.DataFrame(
        {
            "label": labels[codes[found.index.to_numpy()]],
            "model_label": found["model_label"].to_numpy(dtype=object),
            "model_confidence": found["model_confidence"].to_numpy(dtype=np.float64),
            "score": found["score"].to_numpy(dtype=np.float64),
            "reason": found["reason"].to_numpy(dtype=object),
        },
        index=pd.Index(keys.to_numpy()[found.index.to_numpy()], name="record"),
    )
    out = out.sort_values("score", ascending=False, kind="stable")
    if explain:
        out["explanation"] = _explanations(df, task, llm, out, keys, n=len(out) if explain is True else int(explain))
    if store is not None:
        _check_events(store, df, keys, codes, out)
    return out


def _check_events(store, df: pd.DataFrame, keys: pd.Index, codes, suspects: pd.DataFrame) -> None:
    """One ``check`` event per labeled record checked: ``"suspect"`` (with why) or ``"ok"``."""
    checked = keys[codes >= 0]
    flagged = suspects.reindex(checked)
    models = (
        pd.Series(df["llm_model"].to_numpy(dtype=object), index=keys)[codes >= 0]
        if "llm_model" in df.columns
        else pd.Series(None, index=checked, dtype=object)
    )
    # why, for the suspects only (an "ok" event carries none)
    details = suspects[[c for c in CHECK_DETAILS if c in suspects]]
    why = [
        {k: v for k, v in row.items() if v is not None and not (isinstance(v, float) and np.isnan(v))}
        for row in details.astype(object).to_dict("records")
    ]
    meta = np.full(len(checked), None, dtype=object)
    reasons = np.empty(len(why), dtype=object)
    reasons[:] = why
    meta[checked.get_indexer(suspects.index)] = reasons
    store.record_many(
        pd.DataFrame(
            {
                "record": checked.to_numpy(dtype=object),
                "action": "check",
                "value": np.where(checked.isin(suspects.index), "suspect", "ok"),
                "suggestion": flagged["model_label"].astype(object).to_numpy(dtype=object),
                "confidence": flagged["model_confidence"].to_numpy(dtype=np.float64),
                "model": models.astype(object).where(models.notna(), None).to_numpy(dtype=object),
                "meta": meta,
            }
        )
    )


EXPLAIN_SYSTEM = (
    "You review labels that people gave to texts. In one short sentence, say which label fits the text better and why."
)


def _explanations(df: pd.DataFrame, task: Task, llm, suspects: pd.DataFrame, keys: pd.Index, n: int) -> pd.Series:
    """One model-written sentence per suspect (the first ``n``; NA for the rest)."""
    from tqdm.auto import tqdm

    rows = keys.get_indexer(suspects.index[:n])
    record_text = texts(df.iloc[rows], task).astype(str).str.slice(0, 1500).tolist()
    out = pd.Series(pd.NA, index=suspects.index, dtype=STRING_DTYPE)
    pairs = zip(record_text, suspects["label"].iloc[:n], suspects["model_label"].iloc[:n])
    for i, (text, human, model) in enumerate(tqdm(list(pairs), desc="explaining", disable=n < 5, leave=False)):
        question = f"Text: {text}\n\nLabel given by a person: {human}"
        if isinstance(model, str) and model != human:
            question += f"\nLabel the model prefers: {model}"
        messages = [{"role": "system", "content": EXPLAIN_SYSTEM}, {"role": "user", "content": question}]
        out.iloc[i] = llm.generate(messages, max_tokens=60).split("\n")[0].strip()
    return out


# --- annotator patterns ---------------------------------------------------------------------------


def annotator_report(data, *, task: Task | None = None) -> pd.DataFrame:
    """Per annotator: speed, acceptance of suggestions, agreement, fatigue and weak labels.

    Parameters
    ----------
    data
        A labeled frame, a :class:`~jlabel.Store` or its ``events()``.
    task
        The task (default: the store's, else inferred).

    Returns
    -------
    pandas.DataFrame
        Indexed by annotator: ``labels``; ``labels_per_hour`` (the labels after the first of
        each session over the time from its first label to its last, a session ending at a
        30-minute gap; sessions of one label count for neither; NaN without time); ``accept_low``,
        ``accept_mid``, ``accept_high`` (share of labels equal to the suggestion when its
        confidence was below 0.5, 0.5-0.8, at least 0.8); ``model_agreement``,
        ``model_agreement_blind``, ``model_agreement_shown`` (same share, overall and by
        whether the suggestion was hidden); ``agreement_with_others`` (share of other
        annotators' labels on the same records that match); ``disagree_early``,
        ``disagree_late`` and ``fatigue`` (disagreement rate in the first and second half
        of positions in each session, split at the session's median position, and late
        minus early); ``weakest_label`` and
        ``weakest_label_disagree`` (the label with the highest disagreement rate).
        Disagreement: with the majority of other annotators, else with the model.
    """
    table = prepare(data, task=task).table
    if table.empty:
        raise ValueError("annotator_report needs labeled records; none found.")
    annotator = table["annotator"].astype(str).to_numpy()
    frame = pd.DataFrame({"annotator": annotator})

    # speed: the labels after each session's first over the session's span
    position = table["position"].to_numpy()
    ts = pd.to_datetime(table["ts"], utc=True)
    nanoseconds = ts.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    order = np.lexsort((nanoseconds, annotator))
    session = np.empty(len(table), dtype=np.int64)
    # a session starts where the annotator changes, positions start again, or a gap is over SESSION_GAP
    # (positions count skips and undone decisions too: a session need not have a label at position 1)
    ordered = ts.iloc[order]
    restart = (position[order][1:] <= position[order][:-1]) | (ordered.diff().iloc[1:] > SESSION_GAP).to_numpy()
    session[order] = np.cumsum(np.r_[True, (annotator[order][1:] != annotator[order][:-1]) | restart])
    seconds = nanoseconds / 1e9 if ts.notna().all() else np.full(len(table), np.nan)
    spans = pd.DataFrame({"annotator": annotator, "session": session, "t": seconds}).groupby(["annotator", "session"])
    intervals = (spans["t"].size() - 1).groupby(level=0).sum()
    hours = (spans["t"].max() - spans["t"].min()).groupby(level=0).sum() / 3600

    has = table["suggested_key"].notna().to_numpy()
    correct = table["correct"].to_numpy(dtype=bool)
    confidence = table["confidence"].to_numpy(dtype=np.float64)
    band = np.clip(np.searchsorted(BANDS, confidence, side="right") - 1, 0, len(BAND_NAMES) - 1)
    mode = table["mode"].to_numpy(dtype=object)
    for name, mask in (
        ("model_agreement", has),
        ("model_agreement_blind", has & (mode == "blind")),
        ("model_agreement_shown", has & (mode == "shown")),
        *((f"accept_{b}", has & (band == i) & ~np.isnan(confidence)) for i, b in enumerate(BAND_NAMES)),
    ):
        frame[name] = np.where(mask, correct, np.nan)

    # agreement with others: matching labels among other annotators' labels on the same records
    record = table["record_code"].to_numpy()
    key = pd.factorize(table["key"])[0]
    pair = pd.factorize(record.astype(np.int64) * (key.max() + 2) + key)[0]
    frame["same"] = np.bincount(pair)[pair] - 1
    frame["others"] = np.bincount(record)[record] - 1

    wrong = disagreement(table).astype("float64").to_numpy()
    half = pd.Series(position).groupby(session).transform("median").to_numpy()
    frame["early"] = np.where(position <= half, wrong, np.nan)
    frame["late"] = np.where(position > half, wrong, np.nan)
    frame["wrong"] = wrong

    grouped = frame.groupby("annotator")
    out = grouped.agg(
        labels=("annotator", "size"),
        accept_low=("accept_low", "mean"),
        accept_mid=("accept_mid", "mean"),
        accept_high=("accept_high", "mean"),
        model_agreement=("model_agreement", "mean"),
        model_agreement_blind=("model_agreement_blind", "mean"),
        model_agreement_shown=("model_agreement_shown", "mean"),
        same=("same", "sum"),
        others=("others", "sum"),
        disagree_early=("early", "mean"),
        disagree_late=("late", "mean"),
    )
    out.insert(1, "labels_per_hour", intervals.reindex(out.index) / hours.reindex(out.index).where(lambda h: h > 0))
    out["agreement_with_others"] = out.pop("same") / out.pop("others").where(lambda n: n > 0)
    out["fatigue"] = out["disagree_late"] - out["disagree_early"]
    by_label = pd.DataFrame({"annotator": annotator, "label": table["key"].to_numpy(dtype=object), "wrong": wrong})
    rates = by_label.groupby(["annotator", "label"])["wrong"].mean().dropna()
    worst = rates.sort_values(ascending=False, kind="stable").groupby(level=0).head(1)
    out["weakest_label"] = pd.Series(worst.index.get_level_values(1), index=worst.index.get_level_values(0))
    out["weakest_label_disagree"] = pd.Series(worst.to_numpy(), index=worst.index.get_level_values(0))
    out.index.name = "annotator"
    return out


# --- calibration ----------------------------------------------------------------------------------


def reliability_table(df: pd.DataFrame, task: Task, *, bins: int = 10, probs: str = "llm_probs") -> pd.DataFrame:
    """The model's confidence against the accuracy of its suggestions on labeled records.

    Returns
    -------
    pandas.DataFrame
        One row per equal-width confidence bin: ``low``, ``high``, ``n``, ``confidence``
        (mean top probability), ``accuracy`` (share where the suggestion equals the human
        label) and ``gap`` (confidence minus accuracy); NaN in empty bins.

    Examples
    --------
    >>> task = Task(["a", "b"])
    >>> df = set_suggestions(pd.DataFrame({"label": ["a", "b"]}), task, np.array([[0.9, 0.1], [0.7, 0.3]]), model="m")
    >>> reliability_table(df, task, bins=2)[["n", "confidence", "accuracy"]]
       n  confidence  accuracy
    0  0         NaN       NaN
    1  2         0.8       0.5
    """
    _single(task, "reliability_table")
    if bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}.")
    _, p, y = _labeled(df, task, probs)
    confidence, correct = p.max(axis=1), p.argmax(axis=1) == y
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    n = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, confidence, bins) / n
        accuracy = np.bincount(which, correct.astype(float), bins) / n
    edges = np.linspace(0, 1, bins + 1)
    return pd.DataFrame(
        {
            "low": edges[:-1],
            "high": edges[1:],
            "n": n,
            "confidence": mean_conf,
            "accuracy": accuracy,
            "gap": mean_conf - accuracy,
        }
    )


def expected_calibration_error(df: pd.DataFrame, task: Task, *, bins: int = 10, probs: str = "llm_probs") -> float:
    """Expected calibration error of the model's top-label confidence on labeled records.

    The bin-weighted mean of ``|confidence - accuracy|`` (:func:`jlabel.calibration.ece`).
    NaN when no labeled record has probabilities.
    """
    _single(task, "expected_calibration_error")
    _, p, y = _labeled(df, task, probs)
    return calibration.ece(p, y, bins=bins) if len(y) else float("nan")


def fit_temperature(df: pd.DataFrame, task: Task, *, probs: str = "llm_probs") -> float:
    """The temperature ``T`` that minimises the log loss of ``softmax(log(p) / T)`` on labeled records.

    ``T > 1`` softens an over-confident model, ``T < 1`` sharpens an under-confident one;
    the suggested label never changes. ``T`` is kept within [1/20, 20].

    Raises
    ------
    ValueError
        No labeled record has probabilities.

    Examples
    --------
    >>> task = Task(["a", "b"])
    >>> p = np.array([[0.99, 0.01]] * 6 + [[0.01, 0.99]] * 4)  # sure, and right 6 times in 10
    >>> df = set_suggestions(pd.DataFrame({"label": ["a"] * 6 + ["a"] * 4}), task, p, model="m")
    >>> fit_temperature(df, task) > 1
    True
    """
    _single(task, "fit_temperature")
    _, p, y = _labeled(df, task, probs)
    if not len(y):
        raise ValueError("fit_temperature needs labeled records with model probabilities: label some records first.")
    return calibration.temperature(np.log(np.clip(p, 1e-12, None)), y)


def apply_temperature(df: pd.DataFrame, task: Task, temperature: float, *, probs: str = "llm_probs") -> pd.DataFrame:
    """A copy of ``df`` with the model's probabilities scaled by ``temperature`` (llm_* columns rewritten).

    ``llm_model``, ``llm_prompt`` and ``llm_source`` are kept; records without probabilities stay without.
    """
    _single(task, "apply_temperature")
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a positive number, got {temperature!r}.")
    matrix = probs_matrix(df, task, probs)
    scored = ~np.isnan(matrix).any(axis=1)
    scaled = np.full_like(matrix, np.nan)
    scaled[scored] = calibration.softmax(np.log(np.clip(matrix[scored], 1e-12, None)) / temperature)
    out = set_suggestions(df, task, scaled, model="")
    for column in ("llm_model", "llm_prompt", "llm_source"):
        if column in df.columns:
            out[column] = df[column]
    return out


# --- auto-accept ----------------------------------------------------------------------------------


def auto_accept_threshold(
    df: pd.DataFrame,
    task: Task,
    *,
    target_accuracy: float = 0.95,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    probs: str = "llm_probs",
) -> dict:
    """The lowest confidence above which the model's suggestions reach ``target_accuracy``.

    Measured on labeled records: the suggestions with confidence at or above the threshold
    are right at least ``target_accuracy`` of the time, and no lower threshold does so.

    Parameters
    ----------
    df
        A frame with ``llm_probs`` and some human labels.
    task
        The single-label task.
    target_accuracy
        Accuracy wanted among auto-accepted suggestions (0..1).
    n_boot, ci, seed
        Bootstrap resamples of the labeled records, interval coverage, random seed.

    Returns
    -------
    dict
        ``threshold`` (NaN when no threshold reaches the target), ``coverage`` (share of
        records with a suggestion at or above it), ``accuracy`` and ``n`` (labeled records
        at or above it), ``accuracy_ci`` and ``threshold_ci`` (bootstrap intervals; a resample
        in which no threshold reaches the target counts as ``inf``, nothing auto-accepted).

    Examples
    --------
    >>> task = Task(["a", "b"])
    >>> p = np.array([[0.95, 0.05], [0.9, 0.1], [0.8, 0.2], [0.6, 0.4]])
    >>> df = set_suggestions(pd.DataFrame({"label": ["a", "a", "b", "b"]}), task, p, model="m")
    >>> auto_accept_threshold(df, task, n_boot=0)["threshold"]
    0.9
    """
    _single(task, "auto_accept_threshold")
    if not 0 < target_accuracy <= 1:
        raise ValueError(f"target_accuracy must be in (0, 1], got {target_accuracy!r}.")
    if n_boot < 0 or not 0 < ci < 1:
        raise ValueError(f"n_boot must be >= 0 and ci in (0, 1), got n_boot={n_boot!r}, ci={ci!r}.")
    matrix = probs_matrix(df, task, probs)
    _, p, y = _labeled(df, task, probs)
    if not len(y):
        raise ValueError("auto_accept_threshold needs labeled records with model probabilities.")
    confidence, correct = p.max(axis=1), (p.argmax(axis=1) == y).astype(np.float64)
    order = np.argsort(-confidence, kind="stable")
    confidence, correct = confidence[order], correct[order]
    cut_ok = np.r_[confidence[1:] != confidence[:-1], True]  # cut only between distinct confidences

    def choose(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        count = np.cumsum(weights, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            accuracy = np.cumsum(weights * correct, axis=1) / count
        good = (accuracy >= target_accuracy - 1e-12) & cut_ok & (count > 0)
        last = np.where(good.any(axis=1), good.shape[1] - 1 - good[:, ::-1].argmax(axis=1), -1)
        rows = np.arange(len(weights))
        return np.where(last >= 0, confidence[last], np.nan), np.where(last >= 0, accuracy[rows, last], np.nan)

    threshold, accuracy = (float(v[0]) for v in choose(np.ones((1, len(y)))))
    all_confidence = np.nanmax(np.where(np.isnan(matrix), -np.inf, matrix), axis=1)
    scored = np.isfinite(all_confidence)
    coverage = float((all_confidence[scored] >= threshold).mean()) if np.isfinite(threshold) else 0.0
    above = confidence >= threshold
    accuracy_ci = threshold_ci = (np.nan, np.nan)
    if n_boot:
        rng = np.random.default_rng(seed)
        chunk = max(1, 2_000_000 // len(y))
        boot_t, boot_acc = [], []
        for start in range(0, n_boot, chunk):  # a few chunks of resamples, each fully vectorised
            w = rng.multinomial(len(y), np.full(len(y), 1 / len(y)), size=min(chunk, n_boot - start)).astype(float)
            t, _ = choose(w)
            boot_t.append(t)
            with np.errstate(invalid="ignore", divide="ignore"):
                boot_acc.append((w[:, above] @ correct[above]) / w[:, above].sum(axis=1))
        tails = [(1 - ci) / 2 * 100, (1 + ci) / 2 * 100]
        t_all, acc_all = np.concatenate(boot_t), np.concatenate(boot_acc)
        if np.isfinite(t_all).any():  # "no threshold" is the strictest one, not a resample left out
            threshold_ci = tuple(
                float(v) for v in np.percentile(np.nan_to_num(t_all, nan=np.inf), tails, method="nearest")
            )
        if above.any() and np.isfinite(acc_all).any():
            accuracy_ci = tuple(float(v) for v in np.nanpercentile(acc_all, tails))
    return {
        "threshold": threshold,
        "coverage": coverage,
        "accuracy": accuracy,
        "n": int(above.sum()),
        "accuracy_ci": accuracy_ci,
        "threshold_ci": threshold_ci,
        "target_accuracy": target_accuracy,
    }
