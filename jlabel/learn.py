"""Suggestions that learn from every human label: the LLM's zero-shot probabilities combined with a small head.

:class:`Assistant` is bound to one frame. It computes a TF-IDF vector of every record once, and on each
:meth:`Assistant.fit` it reads the human labels so far and learns:

- the *head*: a ridge-regression classifier on the TF-IDF vectors (one-hot targets, solved in closed form
  in the space of the labeled records; its leave-one-out scores come exactly out of the same solve), next
  to a second TF-IDF ridge fitted to the LLM's own probabilities on every record it scored (no human label:
  it carries what the LLM knows to records it has not scored). With ``vectors`` (the LLM's record vectors:
  the mean hidden state of the record's tokens, read in the pass that scores it) the head reads them next
  to the words; a record without one (not scored) is suggested by a twin that learns from words alone,
  and trains the head (when labeled) with a vector imputed from its latent topics;
- the *combination*: a multinomial logistic regression over the LLM's log-probabilities and the head's
  scores (one non-negative weight per source, one bias per label), trained on the head's leave-one-out
  scores: stacking, so a record's own label never shapes the head scores the combination learns from.

Why ridge and not logistic regression for the head: on the news-topic set, with 50-200 labels, the ridge
head was more accurate than scikit-learn's logistic regression on the same features (0.58/0.78 against
0.35/0.77 held-out at 50/200 labels), it is solved in closed form (deterministic: a refit on 1,000 labels
takes about 80 ms in ``benchmarks/bench_learn.py``) and its leave-one-out predictions are exact and free. The logistic regression is the layer on top.

Three candidates compete by cross-validation on the labels so far: ``zero-shot`` (the LLM alone,
temperature-scaled: its labels are exactly the LLM's), ``head`` and ``combined``. A candidate replaces the
zero-shot LLM only when its cross-validated accuracy is not lower and its log loss or accuracy beats the
LLM's by at least ``margin`` paired standard errors, so the suggestions do not get worse than the LLM's.
The comparison runs on the labeled records the LLM scored (and needs ``min_labels`` of them); when it
scored none of them, or the labels it did not score reach ``min_labels`` on their own, the head learns from
every label. The winner is calibrated by temperature scaling on its
out-of-fold predictions. A label nobody has given yet keeps the LLM's probability: the labels teach how
the labels they contain share the rest.

Model selection (the cross-validation) runs on the first fit, at every fit while the LLM alone is chosen
(and the labels changed), and then whenever the labels new, changed or taken back since the last selection
reach ``reselect - 1`` of its labels (default 25 %) or 25, or labels taken back leave fewer than ``min_labels``
or no record of some label (about 0.15 s for 1,000 labels in
``benchmarks/bench_learn.py``, in the panel's background thread); the fits in between only re-solve the
head with every label and re-use the chosen candidate, its weights and temperature. That refit is one
dense solve of the size of the number of labels (about 80 ms for 1,000 labels, the same benchmark).
Out-of-fold predictions (:meth:`Assistant.oof`) and suggestions (:meth:`Assistant.probs`) always come from a
selection on the labels as they are.

Self-training (single-label tasks, from ``SELF_TRAIN_MIN`` labels on): at each model selection the
unlabeled records the suggestion is sure of join the labels with its own guess and a *student* learns from
both; it suggests for the unlabeled records only if, cross-fitted (each fold's guesses made by a model that
never saw the fold), it is right on the human labels at least as often as the human labels alone, and that
cross-fitted prediction sets its temperature. Labeled records keep their human-only out-of-fold suggestions.

Multi-label tasks: one binary problem per label (P(yes)), each with its own selection. Span tasks keep
the LLM alone (an :class:`Assistant` refuses them; ``preannotate(learn=True)`` leaves them as they are).
"""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.sparse

from .calibration import newton_multinomial
from .calibration import softmax as _softmax
from .calibration import temperature as fit_temperature
from .frame import STRING_DTYPE, _parse_label_lists, record_keys, set_suggestions, texts
from .frame import probs as probs_of
from .task import Task

ZERO_SHOT, HEAD, COMBINED, CASCADE = "zero-shot", "head", "combined", "cascade"
#: the values of the ``llm_source`` column: ``cascade`` is the head's suggestion on a record the LLM never saw
SOURCES = (ZERO_SHOT, HEAD, COMBINED, CASCADE)
_CANDIDATES = (ZERO_SHOT, HEAD, COMBINED)
_EPS = 1e-12
#: the LLM-distilled ridge learns from at most this many scored records, cross-fitted in this many folds
DISTIL_MAX, DISTIL_FOLDS = 20_000, 5
#: temperatures are shrunk towards 1 as if this many records had said so (few labels, noisy fit); on the
#: news set 200 kept ECE at 0.043-0.062 from 50 to 400 labels, where 25 let it reach 0.09 at 50
TEMPERATURE_PRIOR = 200.0
#: records up to which the text features include character n-grams (about 10x the memory of words alone)
CHAR_NGRAMS_MAX = 100_000
#: the cascade skips nothing before this many labels (its threshold would rest on too little)
CASCADE_MIN_LABELS = 200
#: records a missing vector's imputation is fitted on, at most
IMPUTE_FIT_MAX = 20_000
#: the head learns from at most this many labels (a seeded sample that stays put as labels arrive): its
#: solve is dense in the number of labels (about 1 s and 130 MB at 4,000); the other labeled records are
#: predicted by it, out of sample
TRAIN_MAX = 4_000
#: self-training: from this many labels on, the unlabeled records the learned suggestion is at least
#: SELF_TRAIN_CONFIDENCE sure of join the labels with its own guess, up to SELF_TRAIN_MAX records in all
#: (human and guessed: a student refit then costs no more than a refit on that many human labels; from
#: there on the human labels alone are used). Not from 100 labels: on the news set it added 1.3 points there
#: but its temperature, fitted on 100 cross-fitted predictions, left ECE at 0.068 (words only: 0.101)
SELF_TRAIN_MIN, SELF_TRAIN_CONFIDENCE, SELF_TRAIN_MAX = 200, 0.8, 1_000


# --- features -----------------------------------------------------------------------------------------


def text_features(text: pd.Series | Sequence[str], *, max_features: int = 50_000) -> scipy.sparse.csr_matrix:
    """TF-IDF vectors (sublinear term frequency, rows of unit length) of every text.

    Words, and up to ``CHAR_NGRAMS_MAX`` records also character 3-5-grams within words (word forms and
    rare words share pieces: on the news-topic set they added 1.5-2 points of accuracy at 50-400 labels).
    Fitted on the texts themselves (no labels are used), so it can run once on the whole frame.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

    values = list(text)
    min_df = 2 if len(values) >= 50 else 1
    analyzers = [{"analyzer": "word"}]
    if len(values) <= CHAR_NGRAMS_MAX:
        analyzers.append({"analyzer": "char_wb", "ngram_range": (3, 5)})
    parts = []
    for options in analyzers:
        vectorizer = TfidfVectorizer(
            sublinear_tf=True, min_df=min_df, max_features=max_features, dtype=np.float64, **options
        )
        try:
            parts.append(vectorizer.fit_transform(values))
        except ValueError:  # nothing to count in any text (all empty)
            pass
    if not parts:  # one constant column
        return scipy.sparse.csr_matrix(np.zeros((len(values), 1)))
    return normalize(scipy.sparse.hstack(parts).tocsr())


def vector_features(vectors: np.ndarray) -> np.ndarray | None:
    """Record vectors as unit-length rows of standardised dimensions (float32); rows without one are zero.

    A row without one holds NaN, or any value that is not finite (an overflowed hidden state).

    ``None`` when fewer than two records have a vector.
    """
    V = np.asarray(vectors, dtype=np.float32)
    if V.ndim != 2:
        raise ValueError(f"vectors must be a 2-d array (one row per record), got shape {V.shape}.")
    ok = np.isfinite(V).all(axis=1)
    if ok.sum() < 2:
        return None
    mean = V[ok].mean(axis=0)
    scale = V[ok].std(axis=0)
    scale[scale == 0] = 1
    out = np.zeros_like(V)
    out[ok] = (V[ok] - mean) / scale
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms > 0, norms, 1)


def impute_vectors(features: np.ndarray, topics: np.ndarray, missing: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """``features`` with the ``missing`` rows filled in from their latent topics (unit-length rows).

    A ridge regression from topic vectors to record vectors, fitted on the records that have one (no
    labels used). A labeled record without a vector then trains the head with a plausible vector instead
    of zeros: on the news set with half of 200 labels lacking one, held-out accuracy went from 0.832 to
    0.844 (0.851 with every vector); with self-training, 0.850 to 0.856. Records without a vector are
    still suggested for by words alone (the imputed vector is a function of the words).
    """
    have = np.flatnonzero(~missing)
    if not missing.any() or len(have) < 2:
        return features
    if len(have) > IMPUTE_FIT_MAX:  # a regression of a few hundred dimensions learns no more from more
        have = np.sort(np.random.default_rng(0).choice(have, IMPUTE_FIT_MAX, replace=False))
    T = topics[have].astype(np.float64)
    W = np.linalg.solve(T.T @ T + alpha * np.eye(T.shape[1]), T.T @ features[have].astype(np.float64))
    guess = topics[missing] @ W.astype(topics.dtype)
    norms = np.linalg.norm(guess, axis=1, keepdims=True)
    out = features.copy()
    out[missing] = guess / np.where(norms > 0, norms, 1)
    return out


def topic_features(X: scipy.sparse.csr_matrix, dimensions: int, seed: int = 0) -> np.ndarray | None:
    """Latent-topic vectors of unit length: a truncated SVD of the TF-IDF matrix (float32)."""
    from sklearn.decomposition import TruncatedSVD

    rank = min(dimensions, X.shape[1] - 1, X.shape[0] - 1)
    if rank < 2:
        return None
    Z = TruncatedSVD(rank, random_state=seed).fit_transform(X).astype(np.float32)
    norms = np.linalg.norm(Z, axis=1, keepdims=True)
    return Z / np.where(norms > 0, norms, 1)


_CONTROLLER = None
_CONTROLLER_LOCK = threading.Lock()


def blas_controller():
    """The process's BLAS libraries, found once (threadpoolctl scans loaded libraries; not from many threads).

    Call it from the main thread before refitting in a background thread (the panel does).
    """
    global _CONTROLLER
    with _CONTROLLER_LOCK:
        if _CONTROLLER is None:
            from threadpoolctl import ThreadpoolController

            _CONTROLLER = ThreadpoolController()
        return _CONTROLLER


# --- the two learners -------------------------------------------------------------------------------------


class _Ridge:
    """Ridge regression of one-hot targets on TF-IDF rows, solved in the dual (n labeled x n labeled).

    A constant feature gives the intercept. ``loo`` holds the exact leave-one-out scores of the labeled
    rows: ``t_i - alpha_i / [(K + aI)^-1]_ii``.
    """

    def __init__(
        self,
        X: scipy.sparse.csr_matrix,
        rows: np.ndarray,
        targets: np.ndarray,
        alpha: float,
        Z: np.ndarray | None = None,
    ) -> None:
        Xl = X[rows]
        gram = (Xl @ Xl.T).toarray() + 1.0
        if Z is not None:
            Zl = Z[rows]
            gram += Zl @ Zl.T
        gram[np.diag_indices_from(gram)] += alpha
        # one BLAS thread: on a busy machine more threads make these small factorisations several times slower
        with blas_controller().limit(limits=1, user_api="blas"):
            factor = scipy.linalg.cholesky(gram, lower=True, check_finite=False)
            dual = scipy.linalg.cho_solve((factor, True), targets, check_finite=False)
            inverse_factor, info = scipy.linalg.lapack.dtrtri(factor, lower=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"ridge factorisation failed (dtrtri info={info})")
        inverse_diag = np.einsum("ij,ij->j", inverse_factor, inverse_factor)  # diag of (L L^T)^-1
        self.loo = targets - dual / inverse_diag[:, None]
        self.weights = np.asarray(Xl.T @ dual)  # (d, q)
        self.dense_weights = None if Z is None else Zl.T @ dual
        self.intercept = dual.sum(axis=0)
        self._X, self._Z = X, Z

    def scores(self, rows: np.ndarray | slice) -> np.ndarray:
        out = np.asarray(self._X[rows] @ self.weights) + self.intercept
        if self._Z is not None:
            out += self._Z[rows] @ self.dense_weights
        return out


@dataclass(frozen=True)
class _Fusion:
    """``softmax(F @ weights + bias)`` over the sources' features ``F`` (n, classes, sources)."""

    weights: np.ndarray
    bias: np.ndarray

    def logits(self, F: np.ndarray) -> np.ndarray:
        return F @ self.weights + self.bias


class _NotFinite(ValueError):
    """A combination whose fitted weights are not finite (its sources' scores are not)."""


def _fit_fusion(F: np.ndarray, y: np.ndarray, *, bias: bool = True, l2: float = 1e-3, steps: int = 50) -> _Fusion:
    """Multinomial logistic regression with one weight per source (shared by all classes) and a bias per class.

    Convex; damped Newton steps (deterministic). A source whose weight comes out negative is dropped and
    the rest refitted: a source counts for its own label or not at all.

    A label absent from ``y`` (nobody has given it yet) gets no bias of its own: the fit runs on the labels
    seen (their probabilities given that the label is one of them) and the others keep a bias of 0, the
    mean of the biases learned, so the sources keep their say on them. Fitted on all labels, an absent
    label's bias would fall as far as the penalty lets it and the suggestion would never propose it.
    """
    m, c = F.shape[2], F.shape[1]
    if not bias:  # a temperature: positive, within [1/20, 20], so the labels stay the source's own
        return _Fusion(np.array([1.0 / fit_temperature(F[:, :, 0], y, prior=TEMPERATURE_PRIOR)]), np.zeros(c))
    seen = np.unique(y)
    if len(seen) < c:
        fusion = _fit_fusion(F[:, seen], np.searchsorted(seen, y), bias=True, l2=l2, steps=steps)
        full = np.zeros(c)
        full[seen] = fusion.bias
        return _Fusion(fusion.weights, full)
    active = np.ones(m, dtype=bool)
    while True:
        fusion = _newton(F[:, :, active], y, bias=bias, l2=l2, steps=steps)
        if not (np.isfinite(fusion.weights).all() and np.isfinite(fusion.bias).all()):
            raise _NotFinite(
                "The combination's fitted weights are not finite: its sources' scores hold values that are not "
                "finite (check the LLM's probabilities and record vectors for inf or NaN)."
            )
        if (fusion.weights >= 0).all() or not active.any():
            weights = np.zeros(m)
            weights[active] = fusion.weights
            return _Fusion(weights, fusion.bias)
        drop = np.flatnonzero(active)[fusion.weights < 0]
        active[drop] = False
        if not active.any():
            return _Fusion(np.zeros(m), _newton(F[:, :, :0], y, bias=True, l2=l2, steps=steps).bias)


def _newton(F: np.ndarray, y: np.ndarray, *, bias: bool, l2: float, steps: int) -> _Fusion:
    n, c, m = F.shape
    parts = [F]
    if bias:
        parts.append(np.broadcast_to(np.eye(c), (n, c, c)))
    jac = np.concatenate(parts, axis=2)  # (n, c, p)
    p = jac.shape[2]
    if p == 0:
        return _Fusion(np.zeros(0), np.zeros(c))
    penalty = np.diag(np.r_[np.full(m, 1e-6), np.full(p - m, l2)])
    theta = newton_multinomial(jac, y, penalty, np.r_[np.ones(m), np.zeros(p - m)], steps=steps, tol=1e-9)
    b = theta[m:] if bias else np.zeros(c)
    return _Fusion(theta[:m].copy(), b - b.mean() if len(b) else b)


def _folds(y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """A fold number per labeled record, stratified by label, shuffled with ``seed``."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    order = order[np.argsort(y[order], kind="stable")]
    fold = np.empty(len(y), dtype=np.int64)
    fold[order] = np.arange(len(y)) % k
    return fold


def _log(p: np.ndarray) -> np.ndarray:
    return np.log(np.clip(p, _EPS, None))


# --- one classification problem (single-label, or one label of a multi-label task) ------------------------


@dataclass
class _Choice:
    source: str
    fusion: dict  # candidate -> _Fusion fitted on every labeled record
    temperature: float
    table: pd.DataFrame


@dataclass
class _Student:
    """An assistant fitted on the human labels and the teacher's sure guesses (single-label tasks)."""

    assistant: Assistant
    pseudo: np.ndarray  # frame rows labeled by the teacher's guess
    guesses: np.ndarray  # their label codes
    temperature: float  # fitted on the cross-fitted out-of-fold predictions
    rows: np.ndarray  # the human-labeled rows it was cross-fitted on
    oof: np.ndarray  # their cross-fitted probabilities


class _Problem:
    """``c`` classes; base log-probabilities ``L`` (n, c) with NaN rows where the LLM has not scored."""

    def __init__(self, c: int, folds: int, seed: int, margin: float, min_labels: int, *, prior: bool = False) -> None:
        self.c, self.folds, self.seed, self.margin, self.min_labels = c, folds, seed, margin, min_labels
        #: one label of a multi-label task: with one class in its labels and no LLM, it predicts their smoothed
        #: frequency (a NaN would drop the record's whole suggestion, the other labels' with it)
        self.prior = prior
        self.choice: _Choice | None = None
        self.oof: dict[str, np.ndarray] = {}  # candidate -> out-of-fold probabilities of the compared records
        self.y = np.zeros(0, dtype=np.int64)  # the compared records' labels
        self.compared = np.zeros(0, dtype=np.int64)  # their positions among the assistant's labeled rows

    # features of the candidates: (rows, c, 3) = [llm log-probs, head scores, distilled scores]
    @staticmethod
    def features(L: np.ndarray, S: np.ndarray, D: np.ndarray) -> np.ndarray:
        return np.stack([np.nan_to_num(L, nan=0.0), S, D], axis=2)

    def select(
        self,
        L: np.ndarray,
        S_loo: np.ndarray,
        D: np.ndarray,
        y: np.ndarray,
        weights: np.ndarray | None = None,
    ) -> _Choice:
        """Cross-validate the candidates on the labeled records; fit the winner on all of them.

        ``weights`` (per labeled record) make the comparison stand for the whole frame (see
        :func:`representative_weights`); default: every record counts once.
        """
        n = len(y)
        self.y = y
        has_llm = ~np.isnan(L).any(axis=1)
        classes = len(np.unique(y))
        F = self.features(L, S_loo, D)
        k = max(2, min(self.folds, n))
        fold = _folds(y, k, self.seed)
        oof = {name: np.full((n, self.c), np.nan) for name in _CANDIDATES}
        zero_shot = bool(has_llm.all() and n > 0)
        # with the LLM's probabilities of the compared records, learning starts at min_labels; without, at once
        learned = classes >= 2 and (n >= self.min_labels or not zero_shot)
        usable = {ZERO_SHOT: zero_shot, HEAD: learned, COMBINED: learned and zero_shot}
        if self.prior and classes == 1 and not zero_shot:
            return self._constant(y)
        specs = {ZERO_SHOT: ([0], False), HEAD: ([1, 2], True), COMBINED: ([0, 1, 2], True)}
        fitted = {}  # candidate -> _Fusion fitted on every compared record
        for name, (sources, bias) in specs.items():
            if not usable[name]:
                continue
            try:
                for f in range(k):
                    train, test = fold != f, fold == f
                    if not test.any():
                        continue
                    if name == ZERO_SHOT and not train.any():  # nothing to scale it on: the LLM as it is
                        oof[name][test] = _softmax(F[test][:, :, 0])
                        continue
                    if len(np.unique(y[train])) < (1 if name == ZERO_SHOT else 2):
                        oof[name][test] = np.full(self.c, 1 / self.c)
                        continue
                    fusion = _fit_fusion(F[train][:, :, sources], y[train], bias=bias)
                    p = _softmax(fusion.logits(F[test][:, :, sources]))
                    oof[name][test] = p if name == ZERO_SHOT else _keep_unseen(p, L[test], y[train])
                fitted[name] = _fit_fusion(F[:, :, sources], y, bias=bias)
            except _NotFinite:  # scores it cannot be fitted on: it takes no part (the others still can)
                usable[name] = False
        rows = []
        for name in _CANDIDATES:
            if not usable[name]:
                continue
            correct = oof[name].argmax(axis=1) == y
            rows.append(
                {
                    "candidate": name,
                    "accuracy": float(correct.mean()),
                    "log_loss": float(-_log(oof[name][np.arange(n), y]).mean()),
                    "n": n,
                    "correct": correct,
                    "losses": -_log(oof[name][np.arange(n), y]),
                }
            )
        if not rows:  # one label seen and the LLM scored none of the labeled records: the LLM as it is
            fusion = {ZERO_SHOT: _Fusion(np.array([1.0, 0.0, 0.0]), np.zeros(self.c))}
            self.choice, self.oof = _Choice(ZERO_SHOT, fusion, 1.0, pd.DataFrame()), {}
            return self.choice
        table = pd.DataFrame(rows)
        chosen = self._choose(table, np.ones(n) if weights is None else weights)
        fusion = {}
        for name, (sources, _) in specs.items():
            if usable[name]:
                weights = np.zeros(3)
                weights[sources] = fitted[name].weights
                fusion[name] = _Fusion(weights, fitted[name].bias)
        # temperature scaling of the winner on its out-of-fold logits
        temperature = fit_temperature(_log(oof[chosen]), y, prior=TEMPERATURE_PRIOR)
        table = table.drop(columns=["correct", "losses"]).assign(chosen=lambda t: t["candidate"] == chosen)
        self.choice = _Choice(chosen, fusion, temperature, table)
        self.oof = {name: oof[name] for name in oof if usable[name]}
        return self.choice

    def _constant(self, y: np.ndarray) -> _Choice:
        """The head of a one-class problem without the LLM: the labels' frequencies, smoothed (add one).

        Out of fold, each record's comes from the other records' labels.
        """
        n, counts = len(y), np.bincount(y, minlength=self.c)
        prior = (counts + 1) / (n + self.c)
        oof = (counts - np.eye(self.c)[y] + 1) / (n - 1 + self.c)
        fusion = {HEAD: _Fusion(np.zeros(3), np.log(prior))}
        table = pd.DataFrame(
            [
                {
                    "candidate": HEAD,
                    "accuracy": float((oof.argmax(axis=1) == y).mean()),
                    "log_loss": float(-_log(oof[np.arange(n), y]).mean()),
                    "n": n,
                    "chosen": True,
                }
            ]
        )
        self.choice, self.oof = _Choice(HEAD, fusion, 1.0, table), {HEAD: oof}
        return self.choice

    def _choose(self, table: pd.DataFrame, weights: np.ndarray) -> str:
        """The candidate with the lowest cross-validated log loss, if it beats the zero-shot LLM.

        A learned candidate replaces the LLM only when its accuracy is not lower and its log loss or its
        accuracy is better by at least ``margin`` paired standard errors: log loss tells sources apart with
        fewer labels than accuracy does, the accuracy guard keeps the suggestions from getting worse than
        the LLM's. Gains are weighted means over the labeled records (``weights``).
        """
        by_name = table.set_index("candidate")
        if ZERO_SHOT not in by_name.index:
            return str(by_name["log_loss"].idxmin())
        base = by_name.loc[ZERO_SHOT]
        eligible = []
        for name in (HEAD, COMBINED):
            if name not in by_name.index:
                continue
            row = by_name.loc[name]
            accuracy_gain = row["correct"].astype(float) - base["correct"]
            if float(weights @ accuracy_gain) >= 0 and (
                _ahead(base["losses"] - row["losses"], self.margin, weights)
                or _ahead(accuracy_gain, self.margin, weights)
            ):
                eligible.append(name)
        return min(eligible, key=lambda name: by_name.loc[name, "log_loss"]) if eligible else ZERO_SHOT

    def predict(
        self, L: np.ndarray, S: np.ndarray, D: np.ndarray, source: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities (rows, c) and the source used per row (the chosen one where its inputs exist)."""
        choice = self.choice
        F = self.features(L, S, D)
        has_llm = ~np.isnan(L).any(axis=1)
        wanted = source or choice.source
        out = np.full((len(L), self.c), np.nan)
        used = np.full(len(L), None, dtype=object)
        order = [wanted] + [s for s in (HEAD, ZERO_SHOT) if s != wanted]
        for name in order:
            if name not in choice.fusion:
                continue
            todo = np.isnan(out).any(axis=1) & (has_llm if name != HEAD else True)
            if not todo.any():
                continue
            z = choice.fusion[name].logits(F[todo])
            if name == choice.source:
                z = z / choice.temperature
            out[todo] = _softmax(z) if name == ZERO_SHOT else _keep_unseen(_softmax(z), L[todo], self.y)
            used[todo] = name
        return out, used


def _keep_unseen(p: np.ndarray, L: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Learned probabilities ``p`` where the labels absent from ``y`` (nobody gave them) keep the LLM's say.

    The labels teach which of the labels they contain a record has, not how likely the others are: a record
    the LLM scored (log-probabilities ``L``) keeps the LLM's probability of each absent label, and the
    learned ones share the rest in their own proportions. Unchanged when every label is in ``y``.
    """
    unseen = np.bincount(y, minlength=p.shape[1]) == 0
    if not unseen.any() or unseen.all():
        return p
    out = p.copy()
    scored = ~np.isnan(L).any(axis=1)
    llm = np.exp(L[scored][:, unseen])
    seen = p[scored][:, ~unseen]
    out[np.ix_(scored, ~unseen)] = seen / seen.sum(axis=1, keepdims=True) * (1 - llm.sum(axis=1, keepdims=True))
    out[np.ix_(scored, unseen)] = llm
    return out


def _ahead(gain: np.ndarray, margin: float, weights: np.ndarray | None = None) -> bool:
    """Whether paired per-record gains are positive by ``margin`` standard errors of their (weighted) mean.

    ``weights`` may sum to less than 1 (see :func:`representative_weights`): the missing mass counts as
    records with no gain, which only makes the test harder to pass.
    """
    if len(gain) < 2:
        return False
    w = np.full(len(gain), 1 / len(gain)) if weights is None else np.asarray(weights, dtype=np.float64)
    covered = w.sum()
    if covered <= 0:
        return False
    mean = float(w @ gain)  # the missing mass adds zeros
    centred = gain - mean / covered
    se = float(np.sqrt((w**2 @ centred**2) * len(gain) / max(len(gain) - 1, 1)))
    return bool(mean > 0 and mean > margin * se)


def representative_weights(confidence: np.ndarray, labeled: np.ndarray, *, per_bin: int = 10) -> np.ndarray:
    """Weights that make the labeled records stand for the whole frame (post-stratification).

    Queues pick records by the LLM's confidence, so the labeled records are rarely a fair sample:
    after ``jl.queue(strategy="least_confidence")`` the LLM is wrong on them far more often than on
    the rest, and a comparison on them alone would let a head replace a good LLM. The frame's
    confidences are cut into quantile bins (about ``per_bin`` labels each, at most 5); a labeled record
    weighs its bin's share of the frame divided by the bin's number of labels. A bin without labels
    keeps its share out of the sum (weights then add up to less than 1), so it counts as no gain.

    ``confidence`` is the LLM's top probability of every scored record, ``labeled`` that of the labeled
    records compared (in their order).
    """
    n = len(labeled)
    bins = int(min(5, max(1, n // per_bin)))
    if n == 0 or bins == 1 or len(confidence) == 0:
        return np.full(n, 1 / max(n, 1))
    edges = np.quantile(confidence, np.linspace(0, 1, bins + 1)[1:-1])
    share = np.bincount(np.searchsorted(edges, confidence, side="right"), minlength=bins) / len(confidence)
    where = np.searchsorted(edges, labeled, side="right")
    count = np.bincount(where, minlength=bins)
    return share[where] / count[where]


def _cascade_threshold(head: np.ndarray, chosen: np.ndarray, y: np.ndarray, minimum: int) -> float:
    """The lowest head confidence above which the head is right at least as often as the chosen suggestion.

    On out-of-fold predictions, records sorted by the head's confidence: at a cut, ``gain`` counts the
    records above it where only the head is right minus those where only the chosen suggestion is, ``d``
    all records where they differ. The cut is the lowest one where ``gain >= 2 sqrt(d)`` (the head is ahead
    by two standard deviations of that count: the lowest of many noisy cuts would otherwise lose accuracy;
    with one, on the news set after 200 labels, the cut fell from 0.90 to 0.55 on a larger frame and the
    skipped records lost 2 points), between distinct confidences, with at least ``minimum`` records above
    it; none with fewer than ``CASCADE_MIN_LABELS`` labels.
    """
    if len(y) < CASCADE_MIN_LABELS:
        return np.inf
    confidence = head.max(axis=1)
    order = np.argsort(-confidence, kind="stable")
    head_right = (head.argmax(axis=1) == y)[order]
    chosen_right = (chosen.argmax(axis=1) == y)[order]
    gain = np.cumsum(head_right.astype(int) - chosen_right)
    differ = np.cumsum(head_right != chosen_right)
    sorted_conf = confidence[order]
    cut_ok = np.r_[sorted_conf[1:] != sorted_conf[:-1], True]
    good = np.flatnonzero((gain >= 2 * np.sqrt(differ)) & cut_ok & (np.arange(len(y)) + 1 >= minimum))
    if not len(good):
        return np.inf
    return float(sorted_conf[good[-1]])


# --- the public learner ---------------------------------------------------------------------------------------


class Assistant:
    """A suggestion model that learns from the human labels of one frame.

    Parameters
    ----------
    df
        The records (the frame being labeled). Its text is turned into TF-IDF features once; the frame
        is read again by :meth:`fit` for the labels so far (the panel writes them in place).
    task
        A single- or multi-label :class:`jlabel.Task` (span tasks keep the LLM alone).
    probs
        The LLM's zero-shot probabilities: a column of ``df`` (default ``"llm_probs"``; absent means
        none), an ``(n, k)`` array, or ``None``. Rows of NaN: not scored yet (see :meth:`set_base`).
    alpha
        Ridge penalty of the head.
    folds
        Cross-validation folds for model selection.
    seed
        Seed of the fold assignment: the same labels give the same model.
    margin
        Paired standard errors by which a learned candidate must beat the zero-shot LLM in
        cross-validated log loss or accuracy (with an accuracy not lower) to replace it.
    min_labels
        Labels of records the LLM scored needed (with at least two distinct labels) before anything is
        learned when the LLM scored some labeled records; below, the suggestions are the LLM's (with
        none scored, the head learns at once). With 20 labels picked by a
        least-confidence queue on a 120-record news demo, cross-validation chose a head that was
        right on 0.53 of held-out records against the LLM's 0.85: so few labels, picked where the
        LLM is weakest, cannot tell a better source from a lucky one. From 50 on it chose well.
    reselect
        Model selection runs again once the labels new or changed since the last selection number
        ``reselect - 1`` times the labels it had (or 25), and at every fit that sees other labels while
        the LLM alone is chosen (``1.0``: at every fit).
    cascade_min
        The cascade's threshold leaves at least this many labeled records above it.
    vectors
        The LLM's record vectors, ``(n, d)`` (rows of NaN: none), from the scoring pass
        (``jl.preannotate(learn=True)`` passes them; :func:`jlabel.preannotate.scores_and_vectors` gives
        them): the head reads them next to the words. On the news set they lifted held-out accuracy at
        50 / 200 labels from 0.67 / 0.78 to 0.81 / 0.84. ``"cache"``: those a ``preannotate(learn=True)``
        run left in the score cache ``cache`` for the frame's suggestions
        (:func:`jlabel.preannotate.cached_vectors`; the panel, queue and check use this). ``None``: words only.
    cache
        With ``vectors="cache"``: the score cache the vectors are read from (``None`` or ``True``: the
        default; a path, as given to ``preannotate``; ``False``: none).
    self_train
        Single-label tasks, from ``SELF_TRAIN_MIN`` labels on (and while fewer than ``SELF_TRAIN_MAX``): the
        unlabeled records the suggestion is at least ``SELF_TRAIN_CONFIDENCE`` sure of are added to the
        labels with its own guess, and a *student* fitted on both suggests for the unlabeled records. It is
        kept only when it is right at least as often as the human labels alone in cross-fitting (for each
        fold of the human labels, the guesses come from a model that never saw that fold; those honest
        predictions also set its temperature). Labeled records keep their human-only out-of-fold
        suggestions, so ``jl.check`` is not fooled by guesses. On the news set it lifted held-out accuracy
        at 200 / 400 labels from 0.839 / 0.865 to 0.859 / 0.873 (ECE 0.037 / 0.034). It costs about ten
        more fits per model selection. See :attr:`self_training`.
    lsa
        Dimensions of the latent-topic vectors (truncated SVD of the TF-IDF matrix of every record, no
        labels used) the head sees next to the words: they let few labels reach records that share
        topics but not words, and a labeled record without a record vector trains with one imputed from them.
        ``0``: words only (and zeros for a missing vector). Memory: ``4 * lsa`` bytes per record.
    id
        A column holding the record keys (default: the index).

    Examples
    --------
    >>> import jlabel as jl
    >>> task = jl.Task(["pos", "neg"])
    >>> words = ["good fine great", "bad awful poor"] * 10
    >>> df = pd.DataFrame({"text": words, "label": ["pos", "neg"] * 10})
    >>> df.loc[[0, 1], "label"] = None
    >>> a = jl.Assistant(df, task, probs=None).fit()
    >>> a.source, a.probs()[0].argmax(axis=1)[:2].tolist()
    ('head', [0, 1])
    """

    def __init__(
        self,
        df: pd.DataFrame,
        task: Task,
        *,
        probs: str | np.ndarray | None = "llm_probs",
        alpha: float = 1.0,
        folds: int = 5,
        seed: int = 0,
        margin: float = 1.0,
        min_labels: int = 50,
        reselect: float = 1.25,
        cascade_min: int = 20,
        lsa: int = 100,
        vectors: np.ndarray | str | None = None,
        cache: str | os.PathLike | bool | None = None,
        self_train: bool = True,
        id: str | None = None,
    ) -> None:
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"Assistant takes a pandas DataFrame, got {type(df).__name__}.")
        if not isinstance(task, Task):
            raise TypeError(f"task must be a jl.Task, got {type(task).__name__}.")
        if task.kind == "spans":
            raise ValueError(
                "Span tasks keep the LLM alone: an Assistant learns label probabilities (single or multi-label)."
            )
        for name, value, low in (("alpha", alpha, 0.0), ("margin", margin, -np.inf)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > low:
                raise ValueError(f"{name} must be a number above {low}, got {value!r}.")
        integers = (
            ("folds", folds, 2),
            ("min_labels", min_labels, 2),
            ("cascade_min", cascade_min, 1),
            ("lsa", lsa, 0),
        )
        for name, value, low in integers:
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an integer of at least {low}, got {value!r}.")
        if isinstance(reselect, bool) or not isinstance(reselect, (int, float)) or reselect < 1:
            raise ValueError(f"reselect is a growth factor of the number of labels, at least 1.0; got {reselect!r}.")
        self.df, self.task = df, task
        self.keys = record_keys(df, id)
        self.alpha, self.folds, self.seed, self.margin = float(alpha), int(folds), int(seed), float(margin)
        self.min_labels, self.reselect, self.cascade_min = int(min_labels), float(reselect), int(cascade_min)
        self.self_train = bool(self_train) and task.kind == "single"
        self._student: _Student | None = None
        self._self_training: dict | None = None
        k = len(task.labels)
        if probs is None:
            base = np.full((len(df), k), np.nan)
        elif isinstance(probs, str):
            base = probs_of(df, task, probs) if probs in df.columns else np.full((len(df), k), np.nan)
        else:
            base = np.array(probs, dtype=np.float64)
            if base.shape != (len(df), k):
                raise ValueError(
                    f"probs has shape {base.shape}, expected ({len(df)}, {k}): one row per record, one column per "
                    f"label in the task's order {list(task.labels)}."
                )
        self._base = _checked_probs(base, task)
        blas_controller()
        self.X = text_features(texts(df, task))
        self._topics = topic_features(self.X, lsa, seed) if lsa else None
        self.Z = self._topics
        self._vectors: np.ndarray | None = None
        self._raw_vectors: np.ndarray | None = None
        self._vectors_changed = False
        self._no_vector: np.ndarray | None = None  # records the vectors in use do not cover
        self._words: Assistant | None = None  # words only: suggests for those records
        self._fallback = True
        if isinstance(vectors, str):
            if vectors != "cache":
                raise ValueError(f"vectors must be an (n, d) array, 'cache' or None, got {vectors!r}.")
            from .preannotate import cached_vectors

            vectors = cached_vectors(df, task, cache)
        if vectors is not None:
            self.set_vectors(vectors)
        self._problems = [_Problem(k if task.kind == "single" else 2, folds, seed, margin, min_labels)]
        if task.kind == "multi":
            self._problems = [_Problem(2, folds, seed, margin, min_labels, prior=True) for _ in task.labels]
        self._ridge: _Ridge | None = None
        self._rows = np.zeros(0, dtype=np.int64)
        self._y = np.zeros((0, len(self._problems)), dtype=np.int64)
        # the labeled rows and labels of the last model selection (none yet)
        self._selected_rows, self._selected_y = self._rows[:0], self._y[:0]
        self._vectored_at = 0  # labeled records with a vector at the last model selection
        self._held = np.zeros(0, dtype=np.int64)  # labeled rows beyond TRAIN_MAX, not trained on
        self._priority = np.random.default_rng(seed).permutation(len(df))  # which labels TRAIN_MAX keeps
        self._lock = threading.RLock()
        self._distilled_on = -1
        self._distilled = np.zeros((len(df), sum(p.c for p in self._problems)))
        self.selections = 0

    # -- inputs ------------------------------------------------------------------

    def set_base(self, rows: Sequence[int] | np.ndarray, probs: np.ndarray) -> None:
        """The LLM's probabilities for some rows (frame positions), e.g. live suggestions as they arrive."""
        rows = np.asarray(rows, dtype=np.int64)
        probs = np.asarray(probs, dtype=np.float64).reshape(len(rows), -1)
        if probs.shape[1] != len(self.task.labels):
            raise ValueError(f"probs has {probs.shape[1]} columns, expected {len(self.task.labels)}.")
        self._base[rows] = _checked_probs(probs, self.task, rows)

    def set_vectors(self, vectors: np.ndarray | None) -> None:
        """The LLM's record vectors, ``(n, d)``, for the head to read next to the words (``None``: words only).

        Takes effect at the next :meth:`fit`.
        """
        if vectors is not None and len(vectors) != len(self.df):
            raise ValueError(f"vectors has {len(vectors)} rows, the assistant was built on {len(self.df)} records.")
        self._raw_vectors = None if vectors is None else np.array(vectors, dtype=np.float32)
        self._vectors_changed = False
        dense = None if vectors is None else vector_features(self._raw_vectors)
        self._vectors, self._distilled_on = dense, -1
        self._no_vector = None if dense is None else ~np.isfinite(self._raw_vectors).all(axis=1)
        if dense is not None and self._topics is not None:  # the head trains on labeled records lacking one too
            dense = self._vectors = impute_vectors(dense, self._topics, self._no_vector)
        parts = [z for z in (self._topics, dense) if z is not None]
        self.Z = np.hstack(parts) if len(parts) > 1 else (parts[0] if parts else None)

    def set_vector_rows(self, rows: Sequence[int] | np.ndarray, vectors: np.ndarray) -> bool:
        """Record vectors for some rows (frame positions), e.g. from live model calls; used from the next :meth:`fit`.

        Returns False (and keeps nothing) when their width differs from the vectors the assistant has.
        """
        rows = np.asarray(rows, dtype=np.int64)
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(rows), -1)
        with self._lock:
            if self._raw_vectors is None:
                self._raw_vectors = np.full((len(self.df), vectors.shape[1]), np.nan, dtype=np.float32)
            elif self._raw_vectors.shape[1] != vectors.shape[1]:
                return False
            self._raw_vectors[rows] = vectors
            self._vectors_changed = True
        return True

    def with_vectors(self, vectors: np.ndarray | None, *, self_train: bool | None = None) -> Assistant:
        """A new, unfitted assistant on the same frame and text features (not computed again) that reads ``vectors``.

        ``self_train``: default this one's. When this assistant reads words only, it is the new one's
        fallback for records without a vector (see :meth:`fit`), refitted by it when the labels change.
        """
        twin = self._twin(
            self_train=self.self_train if self_train is None else bool(self_train) and self.task.kind == "single",
            fallback=True,
        )
        twin._base, twin._distilled = self._base.copy(), self._distilled.copy()
        twin.set_vectors(vectors)
        twin._words = self if self._vectors is None else None
        return twin

    def _twin(self, *, self_train: bool = False, fallback: bool = False) -> Assistant:
        """An unfitted assistant sharing this one's frame, features, LLM probabilities and distilled scores.

        ``fallback``: whether it keeps its own words-only twin for records without a vector; the helpers
        and students of self-training do not (their caller suggests for those records).
        """
        twin = copy.copy(self)
        twin._problems = [
            _Problem(p.c, self.folds, self.seed, self.margin, self.min_labels, prior=p.prior) for p in self._problems
        ]
        twin._ridge, twin._vectored_at, twin.selections = None, 0, 0
        twin._rows, twin._y, twin._held = self._rows[:0], self._y[:0], self._held[:0]
        twin._selected_rows, twin._selected_y = twin._rows[:0], twin._y[:0]
        twin.self_train, twin._student, twin._self_training = self_train, None, None
        twin._words, twin._fallback = None, fallback
        twin._lock = threading.RLock()
        return twin

    def threshold_against(self, other: Assistant) -> np.ndarray | float:
        """The cascade's threshold on this head's confidence, so that it is right as often as ``other``'s suggestion.

        Both must be fitted on the same labels: :attr:`threshold` compares the head with this assistant's
        own choice; this compares it with another's (one that reads record vectors the skipped records
        would not have).
        """
        self._need_fit()
        other._need_fit()
        if not np.array_equal(self._rows, other._rows):
            raise ValueError("threshold_against needs two assistants fitted on the same labels.")
        values = []
        for j, (mine, theirs) in enumerate(zip(self._problems, other._problems)):
            if HEAD not in mine.oof or theirs.choice.source not in theirs.oof:
                values.append(np.inf)
                continue
            values.append(_cascade_threshold(mine.oof[HEAD], other._suggestion_oof(j), mine.y, self.cascade_min))
        values = np.array(values)
        return float(values[0]) if self.task.kind == "single" else values

    @property
    def base(self) -> np.ndarray:
        """The LLM's (zero-shot) probabilities the assistant combines, ``(n, k)``."""
        return self._base

    def labeled_without_vector(self) -> np.ndarray:
        """Frame positions of the labeled records (as of the last :meth:`fit`) that have no record vector."""
        with self._lock:
            if self._raw_vectors is None:
                return self._rows.copy()
            return self._rows[~np.isfinite(self._raw_vectors[self._rows]).all(axis=1)]

    def _labels(self, column: pd.Series | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Frame positions of the labeled records and their targets, one column per problem."""
        if column is None and "label" not in self.df.columns:
            return np.zeros(0, dtype=np.int64), np.zeros((0, len(self._problems)), dtype=np.int64)
        column = self.df["label"] if column is None else column
        if len(column) != len(self.df):
            raise ValueError(f"labels has {len(column)} values, the assistant was built on {len(self.df)} records.")
        if self.task.kind == "single":
            values = column.to_numpy(dtype=object, na_value=None)
            present = column.notna().to_numpy()
            codes = pd.Index(list(self.task.labels), dtype=object).get_indexer(values)
            unknown = present & (codes < 0)
            if unknown.any():
                raise ValueError(
                    f"labels {sorted(set(map(str, values[unknown])))[:5]} are not in the task's labels "
                    f"{list(self.task.labels)}; fix the labels or use the task they were made with."
                )
            rows = np.flatnonzero(present)
            return rows, codes[rows][:, None].astype(np.int64)
        values = column.to_numpy(dtype=object).copy()
        text = np.array([isinstance(v, str) for v in values], dtype=bool)
        if text.any():  # lists written as text (a CSV file): read as the frame does
            values[text] = _parse_label_lists(pd.Series(values[text], dtype=object, name="label")).to_numpy()
        present = np.array([isinstance(v, (list, tuple, np.ndarray)) for v in values], dtype=bool)
        other = [v for v, listed in zip(values, present) if not listed and not pd.isna(v)]
        if other:
            raise ValueError(
                f"The label column holds {other[0]!r}, and a multi-label task keeps lists there (such as "
                "['a', 'b'], or the text '[\"a\", \"b\"]' a CSV file holds); fix that cell."
            )
        rows = np.flatnonzero(present)
        exploded = pd.Series(values[rows], dtype=object).explode()
        positions = pd.Index(list(self.task.labels), dtype=object).get_indexer(exploded.to_numpy(dtype=object))
        given = exploded.notna().to_numpy()
        unknown = given & (positions < 0)
        if unknown.any():
            raise ValueError(
                f"labels {sorted(set(map(str, exploded[unknown])))[:5]} are not in the task's labels "
                f"{list(self.task.labels)}; fix the labels or use the task they were made with."
            )
        y = np.zeros((len(rows), len(self.task.labels)), dtype=np.int64)
        y[exploded.index.to_numpy()[given], positions[given]] = 1
        return rows, y

    # -- learning ----------------------------------------------------------------

    def fit(self, *, select: bool | None = None, labels: pd.Series | None = None) -> Assistant:
        """Learn from the labels the frame holds now (or ``labels``, a snapshot of its ``label`` column).

        Re-solves the head with every label (fast); runs model selection by cross-validation when
        ``select`` is True, or (``None``) when the labels have grown by ``reselect`` since the last one.
        """
        if self._vectors_changed:
            with self._lock:
                self.set_vectors(self._raw_vectors)
                if self._student is not None:  # it reads them too (refitted below)
                    self._student.assistant.set_vectors(self._raw_vectors)
        rows, y = self._labels(labels)
        held = np.zeros(0, dtype=np.int64)
        if len(rows) > TRAIN_MAX:
            keep = np.zeros(len(rows), dtype=bool)
            keep[np.argsort(self._priority[rows], kind="stable")[:TRAIN_MAX]] = True
            rows, y, held = rows[keep], y[keep], rows[~keep]
        ridge = None
        if len(rows) >= 2:
            targets = np.concatenate([np.eye(p.c)[y[:, j]] for j, p in enumerate(self._problems)], axis=1)
            ridge = _Ridge(self.X, rows, targets, self.alpha, self.Z)
        with self._lock:  # predictions from another thread see the old model or the new one, never a mix
            self._rows, self._y, self._ridge, self._held = rows, y, ridge, held
            if select is None:
                # labels new, changed or taken back since the last selection (only new ones while labels only arrive)
                new = self._changed_since_selection()
                had = len(self._selected_rows)
                grown = had + new >= self.reselect * max(had, 1) or new >= 25
                # while the LLM alone is chosen, every new label may be the one that lets the head in
                waiting = self.selections and self.source == ZERO_SHOT and not self._selection_current()
                # vectors that arrived for labeled records (asked for after their labels) change what the head
                # learns as much as new labels do: for a quarter of the labels (or 25), choose again
                arrived = self._labeled_with_vector() - self._vectored_at
                arrived = arrived > 0 and arrived >= min(25, (self.reselect - 1) * len(rows))
                select = self.selections == 0 or grown or waiting or arrived or self._lost_ground()
            selected = bool(select or not self.fitted)
            if selected:
                self._select()
            student = self._student
        if selected:  # outside the lock: predictions go on with the previous student while this one is cross-fitted
            student = self._self_train()
        elif student is not None:  # the new human labels join the student's, replacing guesses on those rows
            student.assistant.fit(select=False, labels=self._series(*self._student_labels(student)))
        with self._lock:
            self._student = student
        self._fit_words(labels, selected)
        return self

    def _fit_words(self, labels: pd.Series | None, selected: bool) -> None:
        """Fit the words-only assistant that suggests for records without a vector, when some have none.

        Reading their zero vector instead, a head that learned to lean on the vectors was right on 0.68 of
        held-out news records where words alone were right on 0.84.
        """
        if not self._fallback or self._no_vector is None or not self._no_vector.any():
            self._words = None
            return
        words = self._words
        if words is None:
            words = self._twin(self_train=self.self_train)
            words.set_vectors(None)
        if not (words.fitted and np.array_equal(words._rows, self._rows) and np.array_equal(words._y, self._y)):
            words.fit(select=selected or not words.fitted, labels=labels)
        with self._lock:
            self._words = words

    def _series(self, rows: np.ndarray, codes: np.ndarray) -> pd.Series:
        """A ``label`` column with the task's labels ``codes`` at frame positions ``rows`` (single-label)."""
        column = pd.Series(pd.NA, index=self.df.index, dtype=object)
        column.iloc[rows] = np.asarray(self.task.labels, dtype=object)[codes]
        return column

    def _guesses(self, rows: np.ndarray, probs: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray]:
        """The rows (at most ``budget``, in the seeded priority order) whose top probability is sure enough, and their guesses."""
        sure = np.flatnonzero(probs.max(axis=1) >= SELF_TRAIN_CONFIDENCE)
        sure = sure[np.argsort(self._priority[rows[sure]], kind="stable")][: max(budget, 0)]
        return rows[sure], probs[sure].argmax(axis=1)

    def _student_labels(self, student: _Student) -> tuple[np.ndarray, np.ndarray]:
        """The human labels now and the student's guesses on the rows still unlabeled."""
        guessed = ~np.isin(student.pseudo, self._rows)
        return np.r_[self._rows, student.pseudo[guessed]], np.r_[self._y[:, 0], student.guesses[guessed]]

    def _self_train(self) -> _Student | None:
        """A student fitted on the human labels and the suggestion's sure guesses, if cross-fitting says it helps."""
        n = len(self._rows)
        self._self_training = None
        if (
            not self.self_train
            or not SELF_TRAIN_MIN <= n < SELF_TRAIN_MAX
            or (self.folds - 1) * n < self.folds * self.min_labels  # each fold's teacher must be able to learn
            or self._problems[0].choice.source == ZERO_SHOT
            or len(self._held)
        ):
            return None
        unlabeled = np.setdiff1d(np.arange(len(self.df)), self._rows)
        if self._no_vector is not None:  # the guesses are read with vectors; the words-only fallback has its own
            unlabeled = unlabeled[~self._no_vector[unlabeled]]
        if not len(unlabeled):
            return None
        rows, y = self._rows, self._y[:, 0]
        budget = SELF_TRAIN_MAX - n
        fold = _folds(y, min(self.folds, n), self.seed)
        helper = self._twin()
        oof = np.zeros((n, self._problems[0].c))
        for f in range(fold.max() + 1):
            keep, test = fold != f, fold == f
            helper.fit(select=True, labels=self._series(rows[keep], y[keep]))
            guessed, guesses = self._guesses(unlabeled, helper._predict(unlabeled, None)[0], budget + int(test.sum()))
            helper.fit(select=True, labels=self._series(np.r_[rows[keep], guessed], np.r_[y[keep], guesses]))
            oof[test] = helper._predict(rows[test], None)[0]
        human = self._oof()[1]
        accuracy, baseline = float((oof.argmax(axis=1) == y).mean()), float((human.argmax(axis=1) == y).mean())
        pseudo, guesses = self._guesses(unlabeled, self._predict(unlabeled, None, student=False)[0], budget)
        # no pull towards 1: a student learned from its own sure guesses is overconfident by construction
        temperature = fit_temperature(_log(oof), y)
        self._self_training = {
            "guesses": len(pseudo),
            "accuracy": accuracy,
            "human_only_accuracy": baseline,
            "temperature": temperature,
            "used": accuracy >= baseline and len(pseudo) > 0,
        }
        if not self._self_training["used"]:
            return None
        student = self._twin()
        student.fit(select=True, labels=self._series(np.r_[rows, pseudo], np.r_[y, guesses]))
        return _Student(student, pseudo, guesses, temperature, rows.copy(), oof)

    @property
    def self_training(self) -> dict | None:
        """The last self-training trial (see ``self_train``): ``None`` when none ran, else a dict.

        ``guesses`` (unlabeled records added with the suggestion's guess), ``accuracy`` (cross-fitted, on the
        human labels), ``human_only_accuracy`` (out of fold, the human labels alone), ``temperature``
        and ``used`` (whether the student now suggests for the unlabeled records).
        """
        return None if self._self_training is None else dict(self._self_training)

    def _base_log(self, rows: np.ndarray | slice, j: int) -> np.ndarray:
        base = self._base[rows]
        if self.task.kind == "single":
            return _log(base)
        p = base[:, j]
        return np.stack([_log(1 - p), _log(p)], axis=1)

    def _head(self, rows, j: int, loo: bool = False) -> np.ndarray:
        start = sum(p.c for p in self._problems[:j])
        c = self._problems[j].c
        if self._ridge is None:
            n = len(self._rows) if loo else len(np.arange(len(self.df))[rows])
            return np.zeros((n, c))
        scores = self._ridge.loo if loo else self._ridge.scores(rows)
        scores = scores[:, start : start + c]
        unseen = np.bincount(self._y[:, j], minlength=c) == 0
        if unseen.any() and not unseen.all():
            # a label no one has given yet: the head learned nothing of it (its target column is all zeros, so
            # it would always say "not this one"); it scores it as the mean of the labels it saw, no opinion
            scores = scores.copy()
            scores[:, unseen] = scores[:, ~unseen].mean(axis=1, keepdims=True)
        return scores

    def _distil(self) -> None:
        """A TF-IDF ridge fitted to the LLM's own probabilities on the scored records (no human label).

        Cross-fitted: a scored record's value comes from the folds it is not in, so it says what the text
        tells about the LLM's answer, never the answer itself; unscored records get the mean of the fold
        models. At most ``DISTIL_MAX`` scored records (a seeded sample) take part.
        """
        scored = np.flatnonzero(~np.isnan(self._base).any(axis=1))
        if len(scored) == self._distilled_on:
            return
        self._distilled_on = len(scored)
        total = sum(p.c for p in self._problems)
        self._distilled = np.zeros((len(self.df), total))
        if len(scored) < 10:
            return
        from scipy.sparse.linalg import lsqr

        rng = np.random.default_rng(self.seed)
        if len(scored) > DISTIL_MAX:
            scored = np.sort(rng.choice(scored, DISTIL_MAX, replace=False))
        targets = np.concatenate([np.exp(self._base_log(scored, j)) for j in range(len(self._problems))], axis=1)
        fold = rng.permutation(len(scored)) % DISTIL_FOLDS
        others = np.ones(len(self.df), dtype=bool)
        others[scored] = False
        others = np.flatnonzero(others)
        words, dense = self.X.shape[1], self._vectors

        def design(rows: np.ndarray) -> scipy.sparse.csr_matrix:  # words, vectors, intercept
            parts = [self.X[rows]] + ([dense[rows]] if dense is not None else []) + [np.ones((len(rows), 1))]
            return scipy.sparse.hstack(parts).tocsr()

        def apply(rows: np.ndarray, coef: np.ndarray) -> np.ndarray:  # design(rows) @ coef, without building it
            out = np.asarray(self.X[rows] @ coef[:words]) + coef[-1]
            return out + dense[rows] @ coef[words:-1] if dense is not None else out

        for f in range(DISTIL_FOLDS):
            train = design(scored[fold != f])
            coef = np.column_stack([lsqr(train, targets[fold != f, q], damp=1.0)[0] for q in range(total)])
            self._distilled[scored[fold == f]] = apply(scored[fold == f], coef)
            if len(others):
                self._distilled[others] += apply(others, coef) / DISTIL_FOLDS

    def _distilled_of(self, rows, j: int) -> np.ndarray:
        start = sum(p.c for p in self._problems[:j])
        return self._distilled[rows][:, start : start + self._problems[j].c]

    def _select(self) -> None:
        self._distil()
        rows, y = self._rows, self._y
        for j, problem in enumerate(self._problems):
            L = self._base_log(rows, j)
            scored = ~np.isnan(L).any(axis=1)
            # the LLM is compared with the head on the labeled records it scored (below min_labels of them: the
            # LLM alone); only where the labels it did not score reach min_labels on their own, or it scored
            # none, does the head learn from every label without that comparison
            enough = scored.any() and (scored.sum() >= self.min_labels or (~scored).sum() < self.min_labels)
            problem.compared = np.flatnonzero(scored) if enough else np.arange(len(rows))
            L, yj = L[problem.compared], y[problem.compared, j]
            S, D = self._head(rows, j, loo=True)[problem.compared], self._distilled_of(rows, j)[problem.compared]
            if len(yj) == 0:
                fusion = {ZERO_SHOT: _Fusion(np.array([1.0, 0.0, 0.0]), np.zeros(problem.c))}
                problem.choice = _Choice(ZERO_SHOT, fusion, 1.0, pd.DataFrame())
                problem.oof, problem.y = {}, yj
                continue
            everyone = np.exp(self._base_log(slice(None), j)).max(axis=1)
            weights = None
            if not np.isnan(L).any():
                weights = representative_weights(everyone[~np.isnan(everyone)], np.exp(L).max(axis=1))
            problem.select(L, S, D, yj, weights)
        self._selected_rows, self._selected_y = rows, y
        self._vectored_at = self._labeled_with_vector()
        self.selections += 1

    def _selection_current(self) -> bool:
        """Whether the last model selection ran on the labeled rows and labels the assistant holds now."""
        return np.array_equal(self._selected_rows, self._rows) and np.array_equal(self._selected_y, self._y)

    def _changed_since_selection(self) -> int:
        """How many labeled rows are new, carry another label or were taken back since the last model selection."""
        if not len(self._selected_rows):
            return len(self._rows)
        if not len(self._rows):
            return len(self._selected_rows)
        position = np.minimum(np.searchsorted(self._selected_rows, self._rows), len(self._selected_rows) - 1)
        same = (self._selected_rows[position] == self._rows) & (self._selected_y[position] == self._y).all(axis=1)
        removed = ~np.isin(self._selected_rows, self._rows)
        return int((~same).sum() + removed.sum())

    def _lost_ground(self) -> bool:
        """Whether labels taken back since the last selection left fewer than ``min_labels`` or lost a label.

        Fewer than ``min_labels`` labeled records (or scored labeled records) where the selection had enough,
        or a label of a problem that no labeled record carries any more: the choice rested on labels gone.
        """
        if not len(self._selected_rows):
            return False

        def counts(rows: np.ndarray) -> tuple[int, int]:
            return len(rows), int((~np.isnan(self._base[rows]).any(axis=1)).sum())

        before, now = counts(self._selected_rows), counts(self._rows)
        if any(b >= self.min_labels > a for b, a in zip(before, now)):
            return True
        for j, problem in enumerate(self._problems):
            had = np.bincount(self._selected_y[:, j], minlength=problem.c) > 0
            has = np.bincount(self._y[:, j], minlength=problem.c) > 0 if len(self._y) else np.zeros_like(had)
            if (had & ~has).any():
                return True
        return False

    def _labeled_with_vector(self) -> int:
        """How many of the labeled records trained on have a record vector."""
        return len(self._rows) - len(self.labeled_without_vector())

    # -- outputs -----------------------------------------------------------------

    @property
    def source(self) -> str:
        """The chosen candidate: ``zero-shot``, ``head`` or ``combined`` (multi-label: ``combined`` when the labels differ)."""
        self._need_fit()
        chosen = {p.choice.source for p in self._problems}
        return chosen.pop() if len(chosen) == 1 else COMBINED

    @property
    def scores(self) -> pd.DataFrame:
        """The last model selection: cross-validated ``accuracy`` and ``log_loss`` per candidate (and label)."""
        self._need_fit()
        tables = []
        for j, p in enumerate(self._problems):
            table = p.choice.table.copy()
            if self.task.kind == "multi":
                table.insert(0, "label", self.task.labels[j])
            tables.append(table)
        return pd.concat(tables, ignore_index=True)

    @property
    def threshold(self) -> np.ndarray | float:
        """The cascade's threshold on the head's calibrated confidence (``inf``: the cascade skips nothing).

        Multi-label: one per label; a record is skipped when every label's head confidence reaches its own.
        """
        return self.threshold_against(self)

    def _student_current(self) -> bool:
        """Whether a student is used and was cross-fitted on the labels the assistant holds now."""
        return self._student is not None and np.array_equal(self._student.rows, self._rows)

    def _suggestion_oof(self, j: int) -> np.ndarray:
        """Out-of-fold probabilities of the suggestion for unlabeled records (the student's when it is used)."""
        problem = self._problems[j]
        if self._student_current():
            return self._student.oof[problem.compared]
        return problem.oof[problem.choice.source]

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` has run (predictions need it)."""
        return self._problems[0].choice is not None

    def _need_fit(self) -> None:
        if not self.fitted:
            raise RuntimeError("The assistant has not learned yet: call .fit() first.")

    def _rows_of(self, rows) -> np.ndarray:
        return np.arange(len(self.df)) if rows is None else np.asarray(rows, dtype=np.int64)

    def predict(self, rows: Sequence[int] | np.ndarray | None = None, *, source: str | None = None):
        """Probabilities ``(len(rows), k)`` for frame positions ``rows`` (default all), and the source of each row.

        The model fitted on every label: for a labeled record this has seen its own label; use
        :meth:`probs` for suggestions (out of fold on labeled records). ``source="head"`` asks for the head
        alone (the cascade), ``"zero-shot"`` for the calibrated LLM.
        """
        self._need_fit()
        if source is not None and source not in _CANDIDATES:
            raise ValueError(f"source must be one of {list(_CANDIDATES)} or None, got {source!r}.")
        with self._lock:
            return self._predict(self._rows_of(rows), source)

    def _predict(self, rows: np.ndarray, source: str | None, *, student: bool = True):
        out, used = self._predict_read(rows, source, student)
        lacking = self._lacking(rows)
        if lacking is not None:
            with self._words._lock:
                out[lacking], used[lacking] = self._words._predict(rows[lacking], source)
        return out, used

    def _lacking(self, rows: np.ndarray) -> np.ndarray | None:
        """Which of ``rows`` have no vector and are suggested by the words-only twin (``None``: none)."""
        if self._words is None or not self._words.fitted or self._no_vector is None:
            return None
        lacking = self._no_vector[rows]
        return lacking if lacking.any() else None

    def _predict_read(self, rows: np.ndarray, source: str | None, student: bool):
        """:meth:`_predict` as this assistant reads every record (a record without a vector as a zero one)."""
        student = self._student if student else None
        if source is None and student is not None:
            p, used = student.assistant._predict(rows, None)
            return _softmax(_log(p) / student.temperature), used
        k = len(self.task.labels)
        out = np.full((len(rows), k), np.nan)
        used = np.full((len(rows), len(self._problems)), None, dtype=object)
        for j, problem in enumerate(self._problems):
            L, S, D = self._base_log(rows, j), self._head(rows, j), self._distilled_of(rows, j)
            p, used[:, j] = problem.predict(L, S, D, source)
            if self.task.kind == "single":
                out = p
            else:
                out[:, j] = p[:, 1]
        return out, _row_source(used)

    def oof(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Out-of-fold probabilities of the labeled records: ``(rows, probs, source)``.

        Runs a model selection first when labels arrived since the last one. A record's probabilities
        come from a head that never saw its label (exact leave-one-out) and a combination fitted on the
        other folds: its own label never vouches for itself.
        """
        self._need_fit()
        with self._lock:
            if not self._selection_current():  # labels arrived, were taken back or changed since the last one
                self._select()
            rows, out, used = self._oof()
            lacking = self._lacking(rows)
            if lacking is not None:  # the words-only twin's out-of-fold suggestions
                theirs = [part[: len(rows)] for part in self._words.oof()]
                if np.array_equal(theirs[0], rows):
                    out[lacking], used[lacking] = theirs[1][lacking], theirs[2][lacking]
            if len(self._held):  # labeled beyond TRAIN_MAX: the model never saw them
                p, u = self._predict(self._held, None)
                rows, out, used = np.concatenate([rows, self._held]), np.vstack([out, p]), np.concatenate([used, u])
            return rows, out, used

    def _oof(self):
        rows = self._rows
        k = len(self.task.labels)
        out = np.full((len(rows), k), np.nan)
        used = np.full((len(rows), len(self._problems)), None, dtype=object)
        for j, problem in enumerate(self._problems):
            name = problem.choice.source
            p = np.full((len(rows), problem.c), np.nan)
            if name in problem.oof:
                p[problem.compared] = problem.oof[name]
                used[problem.compared, j] = name
            missing = np.isnan(p).any(axis=1)
            if missing.any() and HEAD in problem.choice.fusion:
                # labeled rows without LLM scores took no part in the comparison: head leave-one-out for them
                S = self._head(rows, j, loo=True)
                F = _Problem.features(self._base_log(rows, j), S, self._distilled_of(rows, j))
                p[missing] = _softmax(problem.choice.fusion[HEAD].logits(F[missing]))
                used[missing, j] = HEAD
            calibrated = used[:, j] == name
            p[calibrated] = _softmax(_log(p[calibrated]) / problem.choice.temperature)
            if self.task.kind == "single":
                out = p
            else:
                out[:, j] = p[:, 1]
        return rows, out, _row_source(used)

    def probs(self) -> tuple[np.ndarray, np.ndarray]:
        """Suggestion probabilities for every record ``(n, k)`` and their source: out of fold on labeled records.

        Like :meth:`oof`, runs a model selection first when the labels changed since the last one, so that
        every record's suggestion comes from the same selection (and two calls in a row agree).
        """
        self._need_fit()
        with self._lock:
            for assistant in (self, self._words):
                if assistant is not None and assistant.fitted and not assistant._selection_current():
                    with assistant._lock:
                        assistant._select()
            out, used = self.predict()
            rows, oof, oof_used = self.oof()
        out[rows], used[rows] = oof, oof_used
        return out, used

    def suggest(self, df: pd.DataFrame | None = None, *, model: str | None = None) -> pd.DataFrame:
        """A copy of the frame with the llm_* columns and ``llm_source`` filled from :meth:`probs`.

        ``llm_model`` keeps the frame's model (the LLM's id with its digest) where it names one, else ``model``.
        """
        frame = self.df if df is None else df
        if len(frame) != len(self.df):
            raise ValueError(f"df has {len(frame)} rows, the assistant was built on {len(self.df)}.")
        matrix, used = self.probs()
        return write_suggestions(frame, self.task, matrix, used, model=model)


def _checked_probs(matrix: np.ndarray, task: Task, rows: np.ndarray | None = None) -> np.ndarray:
    """The LLM's probabilities checked (finite, non-negative; multi-label: at most 1) and, single-label, rows normalised.

    A row holding a NaN is not scored and is kept as it is. ``rows``: the frame positions of the rows, for
    the error messages (default: the row numbers).
    """
    matrix = np.array(matrix, dtype=np.float64)
    where = np.arange(len(matrix)) if rows is None else np.asarray(rows)
    scored = ~np.isnan(matrix).any(axis=1)
    for bad, what in (
        (~np.isfinite(matrix), "a value that is not finite"),
        (matrix < 0, "a negative value"),
        (matrix > 1 if task.kind == "multi" else np.zeros_like(matrix, dtype=bool), "a value above 1"),
    ):
        bad = scored & bad.any(axis=1)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"probs row {int(where[first])} holds {what} ({matrix[first].tolist()}): the LLM's probabilities "
                "must be finite and non-negative (at most 1 for a multi-label task); a row of NaN marks a record "
                "the LLM has not scored."
            )
    if task.kind == "single" and scored.any():
        sums = matrix[scored].sum(axis=1, keepdims=True)
        if (sums <= 0).any():
            first = int(np.flatnonzero(scored)[np.flatnonzero(sums[:, 0] <= 0)[0]])
            raise ValueError(
                f"probs row {int(where[first])} is all zeros: every row of a single-label task's probabilities "
                "needs a positive sum (a row of NaN marks a record the LLM has not scored)."
            )
        off = np.flatnonzero(scored)[np.abs(sums[:, 0] - 1) > 1e-9]  # rows that sum to 1 stay bit for bit
        matrix[off] = matrix[off] / matrix[off].sum(axis=1, keepdims=True)
    return matrix


def _row_source(used: np.ndarray) -> np.ndarray:
    """One source per row from one per problem: the common one, else ``combined``."""
    if used.shape[1] == 1:
        return used[:, 0]
    first = used[:, 0]
    same = (used == first[:, None]).all(axis=1)
    return np.where(same, first, np.where(pd.isna(used).all(axis=1), None, COMBINED))


def write_suggestions(
    frame: pd.DataFrame, task: Task, matrix: np.ndarray, source: np.ndarray, *, model: str | None = None, prompt=None
) -> pd.DataFrame:
    """``set_suggestions`` with a source per row, keeping the frame's ``llm_model``/``llm_prompt`` where not given."""
    out = set_suggestions(frame, task, matrix, model=model or "", prompt=prompt, source=source)
    valid = ~np.isnan(matrix).any(axis=1)
    for column, given in (("llm_model", model), ("llm_prompt", prompt)):
        if given is None:  # the frame's, on the rows with a suggestion (NA where it names none)
            old = frame[column] if column in frame.columns else pd.Series(pd.NA, index=frame.index)
            out[column] = old.astype(STRING_DTYPE).where(valid, pd.NA)
    return out


# --- learning curve -------------------------------------------------------------------------------------------


def learning_curve(
    df: pd.DataFrame,
    task: Task,
    llm: Any = None,
    *,
    sizes: Sequence[int] | None = None,
    repeats: int = 3,
    seed: int = 0,
    probs: str = "llm_probs",
    id: str | None = None,
    cache: str | os.PathLike | bool = True,
):
    """Accuracy of the suggestions against the number of human labels, cross-validated, as an Altair chart.

    For each size ``n`` and each of ``repeats`` draws, an :class:`Assistant` learns from ``n`` labeled
    records drawn at random and is scored on the other labeled records: the LLM alone, the head alone,
    the combination (each once it may learn: see ``min_labels``) and the suggestion it chose. The data is
    in ``chart.data`` (``labels``, ``source``, mean ``accuracy`` and its ``std`` over the draws).

    Parameters
    ----------
    df
        A frame with human labels (single-label task).
    task
        The task.
    llm
        The model, used for labeled records without LLM probabilities (scored through ``jl.preannotate``
        and its cache); ``None`` uses the frame's ``probs`` column as it is.
    sizes
        Numbers of labels (default: 10, 20, 50, 100, 200, ... up to 80 % of the labels; with fewer than 13
        labels, 80 % of them).
    cache
        The score cache that ``llm``'s scores go to and the record vectors come from (``True``: the
        default; a path, as given to ``preannotate``; ``False``: none).
    """
    import altair as alt

    if not isinstance(task, Task) or task.kind != "single":
        raise ValueError("learning_curve works on single-label tasks (pass a jl.Task with kind='single').")
    record_keys(df, id)
    if "label" not in df.columns or df["label"].notna().sum() < 10:
        raise ValueError("learning_curve needs at least 10 human labels in the frame's 'label' column.")
    labeled = df[df["label"].notna().to_numpy()].copy()
    base = (
        probs_of(labeled, task, probs)
        if probs in labeled.columns
        else np.full((len(labeled), len(task.labels)), np.nan)
    )
    missing = np.isnan(base).any(axis=1)
    if missing.any():
        if llm is None:
            raise ValueError(
                f"{int(missing.sum())} labeled record(s) have no {probs!r}: run jl.preannotate first or pass llm=."
            )
        from .preannotate import preannotate

        scored = preannotate(
            labeled.iloc[np.flatnonzero(missing)], task, llm, examples=None, progress=False, cache=cache
        )
        base[missing] = probs_of(scored, task)
    n = len(labeled)
    if sizes is None:
        sizes = [s for s in (10, 20, 50, 100, 200, 400, 800, 1600, 3200) if s <= 0.8 * n] or [int(0.8 * n)]
    sizes = sorted({int(s) for s in sizes})
    if not sizes or sizes[0] < 2 or sizes[-1] >= n:
        raise ValueError(f"sizes must be between 2 and {n - 1} (the labeled records minus one), got {sizes!r}.")
    truth = pd.Index(list(task.labels), dtype=object).get_indexer(labeled["label"].to_numpy(dtype=object))
    rng = np.random.default_rng(seed)
    records = []
    frame = labeled.copy()
    assistant = None
    for repeat in range(repeats):
        order = rng.permutation(n)
        for size in sizes:
            train, test = order[:size], order[size:]
            frame["label"] = pd.Series(pd.NA, index=frame.index, dtype=object)
            frame.iloc[train, frame.columns.get_loc("label")] = labeled["label"].to_numpy(dtype=object)[train]
            if assistant is None:
                assistant = Assistant(frame, task, probs=base, vectors="cache", cache=cache, seed=seed)
            assistant.df = frame
            assistant.fit(select=True)
            chosen, _ = assistant.predict(test)
            fitted = assistant._problems[0].choice.fusion
            nothing = np.full((len(test), len(task.labels)), np.nan)
            for name, p in (
                ("LLM alone", base[test]),
                ("head alone", assistant.predict(test, source=HEAD)[0] if HEAD in fitted else nothing),
                ("combined", assistant.predict(test, source=COMBINED)[0] if COMBINED in fitted else nothing),
                ("suggestion", chosen),
            ):
                ok = ~np.isnan(p).any(axis=1)
                accuracy = float((p[ok].argmax(axis=1) == truth[test][ok]).mean()) if ok.any() else np.nan
                records.append({"labels": size, "source": name, "repeat": repeat, "accuracy": accuracy})
    table = pd.DataFrame(records).dropna(subset=["accuracy"])
    table = table.groupby(["labels", "source"], as_index=False)["accuracy"].agg(["mean", "std"])
    table = table.rename(columns={"mean": "accuracy"})
    line = (
        alt.Chart(table)
        .mark_line(point=True)
        .encode(
            x=alt.X("labels:Q", title="human labels", scale=alt.Scale(type="log")),
            y=alt.Y("accuracy:Q", title="held-out accuracy", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("source:N", title=None),
            tooltip=["labels", "source", alt.Tooltip("accuracy:Q", format=".3f"), alt.Tooltip("std:Q", format=".3f")],
        )
        .properties(title="Suggestions vs number of labels (cross-validated)", width=360, height=220)
    )
    return line
