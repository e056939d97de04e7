"""Agreement between raters: percent agreement, Cohen's and Fleiss' kappa, Krippendorff's alpha, span F1.

Every metric is a ratio of sums over records. Records are first grouped into their distinct
*rating patterns* (which rater gave which label), so a bootstrap resample of records is a
multinomial draw of pattern counts: exact, and independent of the number of records.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .frame import key_strings, record_keys
from .store import DECISIONS, Store
from .task import Task

COLUMNS = ["metric", "raters", "label", "value", "ci_low", "ci_high", "n"]
MODEL_RATER = "model"
_SCALAR = ("string", "empty", "integer", "mixed-integer", "boolean")  # infer_dtype of single-label columns


def agreement(
    data,
    *,
    annotators: Sequence[str] | str | None = None,
    include_llm: bool = False,
    task: Task | None = None,
    per_label: bool = True,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Agreement between annotators (and the model), with bootstrap confidence intervals.

    Parameters
    ----------
    data
        A long table with columns ``record``, ``annotator``, ``label`` (one row per rating),
        a :class:`~jlabel.Store` (each annotator's current label per record), or a labeled
        frame (its ``annotator`` and ``label`` columns; with ``include_llm=True`` the
        model's ``llm_label`` is one more rater).
    annotators
        Only these raters (a name or a list of names; ``"model"`` names the model). Default: all.
    include_llm
        Add the model's suggestion as the rater ``"model"``.
    task
        For span tasks (``kind="spans"``), the labels are span lists and the metric is
        ``span_f1`` (``label="exact"`` and ``label="overlap"``). Default: the store's task,
        else inferred from the values.
    per_label
        Also report each metric per label (the label against all others, as yes/no ratings;
        for multi-label ratings, whether the rater's label set holds the label).
    n_boot, ci, seed
        Bootstrap resamples of records, interval coverage and the random seed.

    Returns
    -------
    pandas.DataFrame
        Columns ``metric`` (``percent``, ``cohen_kappa``, ``fleiss_kappa``,
        ``krippendorff_alpha``, ``span_f1``), ``raters`` (``"a|b"`` or ``"all"``), ``label``
        (``"all"`` or a label), ``value``, ``ci_low``, ``ci_high`` and ``n`` (records rated by
        both raters of a pair; for ``fleiss_kappa`` records rated by every rater; for
        ``percent``/``krippendorff_alpha`` over ``"all"``, records with at least two ratings).
        Undefined values (e.g. kappa when every rating is the same label) are NaN.

    Raises
    ------
    ValueError
        No ratings, fewer than two raters, or ratings with no annotator or no record key.

    Examples
    --------
    >>> long = pd.DataFrame(
    ...     {"record": [1, 1, 2, 2, 3, 3], "annotator": ["a", "b"] * 3, "label": ["x", "x", "y", "y", "x", "y"]}
    ... )
    >>> out = agreement(long, per_label=False, n_boot=0)
    >>> out.set_index(["metric", "raters"])["value"].round(3).to_dict()
    {('percent', 'a|b'): 0.667, ('percent', 'all'): 0.667, ('cohen_kappa', 'a|b'): 0.4, ('fleiss_kappa', 'all'): 0.333, ('krippendorff_alpha', 'all'): 0.444}
    """
    if n_boot < 0 or not 0 < ci < 1:
        raise ValueError(f"n_boot must be >= 0 and ci in (0, 1), got n_boot={n_boot!r}, ci={ci!r}.")
    long, task = _long_table(data, include_llm=include_llm, task=task)
    if annotators is not None:
        if isinstance(annotators, str):
            annotators = [annotators]
        unknown = sorted(set(annotators) - set(long["annotator"]))
        if unknown:
            raise ValueError(f"annotators {unknown} have no ratings; raters present: {sorted(set(long['annotator']))}.")
        long = long[long["annotator"].isin(list(annotators))]
    long = long[long["label"].notna()]
    if long.empty:
        raise ValueError("agreement needs ratings, but every label is missing: label some records first.")
    raters = pd.unique(long["annotator"])
    if len(raters) < 2:
        raise ValueError(
            f"agreement needs at least two raters, got only {list(raters)}; "
            "pass a table with more annotators, or include_llm=True to compare with the model."
        )
    if not long.groupby("record")["annotator"].nunique().gt(1).any():
        where = (
            " A frame holds one label per record: pass the store (jl.agreement(store)), which keeps every annotator's."
            if isinstance(data, pd.DataFrame) and "annotator" in data.columns and "record" not in data.columns
            else ""
        )
        warnings.warn(f"No record has ratings from two raters, so agreement cannot be measured.{where}", stacklevel=2)
    rng = np.random.default_rng(seed)
    if task is not None and task.kind == "spans":
        return _span_agreement(long, rng=rng, n_boot=n_boot, ci=ci)
    return _nominal_agreement(long, per_label=per_label, rng=rng, n_boot=n_boot, ci=ci)


# --- input ---------------------------------------------------------------------------------------


def _long_table(data, *, include_llm: bool, task: Task | None) -> tuple[pd.DataFrame, Task | None]:
    if isinstance(data, Store):
        task = task or data.task
        state = data.state(per_annotator=True).reset_index()
        long = pd.DataFrame({"record": state["record"], "annotator": state["annotator"], "label": state["label"]})
        if include_llm:
            events = data.events()
            # the model's own suggestions: a check event's suggestion is what the model said on review
            said = events["action"].isin(["suggest", *DECISIONS]) & events["suggestion"].notna()
            suggested = events[said].drop_duplicates("record", keep="last")
            model = pd.DataFrame(
                {"record": suggested["record"], "annotator": MODEL_RATER, "label": suggested["suggestion"]}
            )
            long = pd.concat([long, model], ignore_index=True)
    elif isinstance(data, pd.DataFrame):
        if {"record", "annotator", "label"} <= set(data.columns):
            long = data[["record", "annotator", "label"]]
            if include_llm:
                raise ValueError(
                    "include_llm=True needs a frame with an llm_label column; a long table "
                    "(record, annotator, label) can hold the model as rows with annotator='model'."
                )
        elif "label" in data.columns:
            keys = key_strings(record_keys(data)).to_numpy()
            who = data["annotator"] if "annotator" in data.columns else pd.Series("unknown", index=data.index)
            long = pd.DataFrame({"record": keys, "annotator": who.fillna("unknown").to_numpy(), "label": data["label"]})
            if include_llm:
                if "llm_label" not in data.columns:
                    raise ValueError("include_llm=True needs an llm_label column: run jl.preannotate first.")
                model = pd.DataFrame({"record": keys, "annotator": MODEL_RATER, "label": data["llm_label"].to_numpy()})
                long = pd.concat([long, model], ignore_index=True)
        else:
            raise ValueError(
                f"agreement takes a long table with columns record, annotator, label or a frame with a "
                f"label column; got columns {list(data.columns)}."
            )
    else:
        raise TypeError(f"agreement takes a DataFrame or a jl.Store, got {type(data).__name__}.")
    long = long.reset_index(drop=True)
    _check_keys(long)
    if pd.api.types.infer_dtype(long["label"], skipna=True) not in _SCALAR:
        # list columns read from Parquet hold numpy arrays
        long = long.assign(label=long["label"].map(lambda v: v.tolist() if isinstance(v, np.ndarray) else v))
    if task is None:
        values = long["label"].dropna()
        if len(values) and isinstance(values.iloc[0], list) and any(isinstance(v, dict) for v in values.explode()):
            task = Task(["span"], kind="spans")
    return long, task


def _check_keys(long: pd.DataFrame) -> None:
    """Every rating needs its rater and its record: a missing one cannot be placed in the table."""
    rated = long["label"].notna()
    no_rater = int((rated & long["annotator"].isna()).sum())
    no_record = int((rated & long["record"].isna()).sum())
    if no_rater or no_record:
        missing = [
            f"{n} {'has' if n == 1 else 'have'} no {what}"
            for n, what in ((no_rater, "annotator"), (no_record, "record key"))
            if n
        ]
        fill = " or fill in a name (table['annotator'].fillna('unknown'))" if no_rater else ""
        raise ValueError(
            f"every rating needs an annotator and a record key, but of {int(rated.sum())} ratings "
            f"{' and '.join(missing)}: drop those rows (table.dropna(subset=['record', 'annotator'])){fill}."
        )


def _label_keys(labels: pd.Series, scalar: bool) -> pd.Series:
    """Hashable labels: strings as they are, lists (multi-label) as a sorted, joined key.

    ``scalar``: the column holds single labels only (its ``infer_dtype`` is one of ``_SCALAR``).
    """
    if scalar:
        return labels.astype(object)
    return labels.map(lambda v: "|".join(sorted(map(str, v))) if isinstance(v, list | tuple) else v)


def _label_sets(labels: pd.Series, label: np.ndarray) -> list[frozenset] | None:
    """Per label code (``label``: each rating's), the set of label names it stands for; None if not multi-label."""
    first = np.unique(label, return_index=True)[1]  # one rating per code, in code order
    values = labels.to_numpy(dtype=object)[first]
    if not any(isinstance(v, list | tuple) for v in values):
        return None
    return [frozenset(map(str, v)) if isinstance(v, list | tuple) else frozenset([str(v)]) for v in values]


# --- nominal metrics over rating patterns ---------------------------------------------------------


def _patterns(long: pd.DataFrame, label: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, ...]:
    """The distinct rating patterns ``(P, R)`` (label codes, -1 missing), their counts, raters and labels."""
    record, _ = pd.factorize(long["record"])
    rater, raters = pd.factorize(long["annotator"], sort=True)
    wide = np.full((record.max() + 1, len(raters)), -1, dtype=np.int64)
    wide[record, rater] = label  # a repeated (record, rater) keeps its last rating
    base = len(labels) + 1
    if base ** len(raters) < 2**62:
        code = (wide + 1) @ (base ** np.arange(len(raters), dtype=np.int64))
        _, first, counts = np.unique(code, return_index=True, return_counts=True)
        return wide[first], counts, np.asarray(raters, dtype=object), np.asarray(labels, dtype=object)
    patterns, counts = np.unique(wide, axis=0, return_counts=True)
    return patterns, counts, np.asarray(raters, dtype=object), np.asarray(labels, dtype=object)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)


def pair_agreement(
    a: np.ndarray, b: np.ndarray, k: int, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Percent agreement, Cohen's kappa and n of two raters' label codes (``-1``: no label), per weight row.

    ``weights`` is ``(B, len(a))``: how much each record counts in each of ``B`` resamples (a row of
    ones: the data itself).
    """
    both = (a >= 0) & (b >= 0)
    n = weights @ both
    po = _ratio(weights @ (both & (a == b)), n)
    onehot_a = both[:, None] & (a[:, None] == np.arange(k))
    onehot_b = both[:, None] & (b[:, None] == np.arange(k))
    pe = (_ratio(weights @ onehot_a, n[:, None]) * _ratio(weights @ onehot_b, n[:, None])).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = np.where(np.isclose(pe, 1.0), np.nan, (po - pe) / (1 - pe))
    return po, kappa, n


def _group(wide: np.ndarray, k: int, weights: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Percent agreement (all pairs), Fleiss' kappa and Krippendorff's alpha (nominal), per weight row."""
    counts = (wide[:, :, None] == np.arange(k)).sum(axis=1).astype(np.float64)  # (P, k)
    m = counts.sum(axis=1)
    pairable = m >= 2
    same_pairs = (counts * (counts - 1)).sum(axis=1)  # ordered agreeing pairs
    n_pairable = weights @ pairable
    percent = _ratio(weights @ np.where(pairable, same_pairs, 0), weights @ np.where(pairable, m * (m - 1), 0))

    raters = wide.shape[1]
    complete = m == raters
    n_complete = weights @ complete
    p_record = _ratio(same_pairs, np.full_like(m, raters * (raters - 1.0)))
    p_bar = _ratio(weights @ np.where(complete, p_record, 0), n_complete)
    p_label = _ratio(weights @ (counts * complete[:, None]), (n_complete * raters)[:, None])
    p_e = (p_label**2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        fleiss = np.where(np.isclose(p_e, 1.0), np.nan, (p_bar - p_e) / (1 - p_e))

    # Krippendorff: disagreeing pairable values over those expected by chance
    disagree = np.where(pairable, _ratio(m**2 - (counts**2).sum(axis=1), m - 1), 0)
    n_c = weights @ (counts * pairable[:, None])
    n_values = n_c.sum(axis=1)
    expected = n_values**2 - (n_c**2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.where(expected > 0, 1 - (n_values - 1) * (weights @ disagree) / expected, np.nan)
    return {
        "percent": (percent, n_pairable),
        "fleiss_kappa": (fleiss, n_complete),
        "krippendorff_alpha": (alpha, n_pairable),
    }


def _metric_rows(wide: np.ndarray, k: int, weights: np.ndarray, raters: np.ndarray, label: str) -> list[tuple]:
    """Rows ``(metric, raters, label, values-per-weight-row, n)``; weight row 0 is the data itself."""
    rows = []
    pair_percent = []
    for i in range(len(raters)):
        for j in range(i + 1, len(raters)):
            po, kappa, n = pair_agreement(wide[:, i], wide[:, j], k, weights)
            name = f"{raters[i]}|{raters[j]}"
            pair_percent.append(("percent", name, label, po, n[0]))
            rows.append(("cohen_kappa", name, label, kappa, n[0]))
    group = _group(wide, k, weights)
    return [
        *pair_percent,
        ("percent", "all", label, group["percent"][0], group["percent"][1][0]),
        *rows,
        ("fleiss_kappa", "all", label, group["fleiss_kappa"][0], group["fleiss_kappa"][1][0]),
        ("krippendorff_alpha", "all", label, group["krippendorff_alpha"][0], group["krippendorff_alpha"][1][0]),
    ]


def _weights(counts: np.ndarray, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """Row 0: the pattern counts; rows 1..n_boot: bootstrap resamples of records (multinomial)."""
    total = int(counts.sum())
    draws = rng.multinomial(total, counts / total, size=n_boot) if n_boot else np.zeros((0, len(counts)))
    return np.vstack([counts[None, :], draws]).astype(np.float64)


def _frame(rows: list[tuple], ci: float) -> pd.DataFrame:
    values = np.array([r[3] for r in rows])  # (rows, 1 + n_boot)
    if values.shape[1] > 1:
        with np.errstate(all="ignore"):
            boot = values[:, 1:]
            enough = np.isfinite(boot).sum(axis=1) > 0
            tails = (1 - ci) / 2 * 100
            low = np.full(len(rows), np.nan)
            high = np.full(len(rows), np.nan)
            if enough.any():
                low[enough], high[enough] = np.nanpercentile(boot[enough], [tails, 100 - tails], axis=1)
    else:
        low = high = np.full(len(rows), np.nan)
    return pd.DataFrame(
        {
            "metric": [r[0] for r in rows],
            "raters": [r[1] for r in rows],
            "label": [r[2] for r in rows],
            "value": values[:, 0],
            "ci_low": low,
            "ci_high": high,
            "n": np.array([r[4] for r in rows], dtype=np.int64),
        },
        columns=COLUMNS,
    )


def _nominal_agreement(long: pd.DataFrame, *, per_label: bool, rng, n_boot: int, ci: float) -> pd.DataFrame:
    scalar = pd.api.types.infer_dtype(long["label"], skipna=True) in _SCALAR
    label, labels = pd.factorize(_label_keys(long["label"], scalar))
    wide, counts, raters, labels = _patterns(long, label, labels)
    weights = _weights(counts, rng, n_boot)
    rows = _metric_rows(wide, len(labels), weights, raters, "all")
    if not per_label:
        return _frame(rows, ci)
    sets = None if scalar else _label_sets(long["label"], label)
    if sets is None:  # single-label: each label against all others
        members = [(str(name), np.arange(len(labels)) == code) for code, name in enumerate(labels)]
    else:  # multi-label: whether the rater's label set holds the label
        members = [(name, np.array([name in s for s in sets])) for name in sorted(set().union(*sets))]
    if len(members) > 1:
        for name, member in members:
            binary = np.where(wide < 0, -1, member.astype(np.int64)[np.maximum(wide, 0)])
            rows += _metric_rows(binary, 2, weights, raters, name)
    return _frame(rows, ci)


# --- spans ---------------------------------------------------------------------------------------


def _spans(long: pd.DataFrame) -> pd.DataFrame:
    """One row per span: record code, rater, start, end, label."""
    record, _ = pd.factorize(long["record"])
    flat = pd.DataFrame({"record": record, "rater": long["annotator"].to_numpy(), "span": long["label"].to_numpy()})
    flat = flat.explode("span").dropna(subset=["span"])
    spans = pd.json_normalize(flat["span"].tolist())
    if len(flat) and not {"start", "end", "label"} <= set(spans.columns):
        raise ValueError(f"span labels need start, end and label keys, got {sorted(spans.columns)}.")
    table = pd.DataFrame(
        {
            "record": flat["record"].to_numpy(),
            "rater": flat["rater"].to_numpy(),
            "start": spans["start"].to_numpy(dtype=np.int64) if len(flat) else [],
            "end": spans["end"].to_numpy(dtype=np.int64) if len(flat) else [],
            "label": spans["label"].to_numpy(dtype=object) if len(flat) else [],
        }
    )
    # a span a rater gave twice on a record is one span (else exact F1 could exceed 1)
    return table.drop_duplicates(["record", "rater", "start", "end", "label"]).reset_index(drop=True)


def _span_agreement(long: pd.DataFrame, *, rng, n_boot: int, ci: float) -> pd.DataFrame:
    # rater names as text once, here: the pair names, the span table and the masks below compare them
    long = long.reset_index(drop=True).assign(annotator=lambda t: t["annotator"].astype(str))
    record_code, records = pd.factorize(long["record"])
    spans = _spans(long)
    raters = np.sort(pd.unique(long["annotator"]))
    weights = rng.multinomial(len(records), np.full(len(records), 1 / len(records)), size=n_boot) if n_boot else None
    weights = np.vstack([np.ones((1, len(records))), weights]) if weights is not None else np.ones((1, len(records)))
    rows = []
    for i in range(len(raters)):
        for j in range(i + 1, len(raters)):
            rated_a = np.zeros(len(records), bool)
            rated_a[record_code[long["annotator"].to_numpy() == raters[i]]] = True
            rated_b = np.zeros(len(records), bool)
            rated_b[record_code[long["annotator"].to_numpy() == raters[j]]] = True
            both = rated_a & rated_b
            a = spans[(spans["rater"] == raters[i]) & both[spans["record"]]]
            b = spans[(spans["rater"] == raters[j]) & both[spans["record"]]]
            size_a = np.bincount(a["record"], minlength=len(records))
            size_b = np.bincount(b["record"], minlength=len(records))
            exact = a.merge(b, on=["record", "start", "end", "label"])
            exact_count = np.bincount(exact["record"], minlength=len(records))
            joined = a.reset_index().merge(b.reset_index(), on=["record", "label"], suffixes=("_a", "_b"))
            hit = joined[(joined["start_a"] < joined["end_b"]) & (joined["start_b"] < joined["end_a"])]
            matched_a = np.bincount(hit.drop_duplicates("index_a")["record"], minlength=len(records))
            matched_b = np.bincount(hit.drop_duplicates("index_b")["record"], minlength=len(records))
            w = weights * both
            total = w @ (size_a + size_b)
            f1_exact = _ratio(2 * (w @ exact_count), total)
            precision, recall = _ratio(w @ matched_a, w @ size_a), _ratio(w @ matched_b, w @ size_b)
            f1_overlap = _ratio(2 * precision * recall, precision + recall)
            both_empty = total == 0  # both raters found no spans on the common records: full agreement
            f1_exact = np.where(both_empty & (w.sum(axis=1) > 0), 1.0, f1_exact)
            f1_overlap = np.where(both_empty & (w.sum(axis=1) > 0), 1.0, f1_overlap)
            # spans on one side and none (or none overlapping) on the other: precision or recall is 0 (or 0/0)
            f1_overlap = np.where((total > 0) & np.isnan(f1_overlap), 0.0, f1_overlap)
            name = f"{raters[i]}|{raters[j]}"
            n = int(both.sum())
            rows += [("span_f1", name, "exact", f1_exact, n), ("span_f1", name, "overlap", f1_overlap, n)]
    return _frame(rows, ci)
