"""Label-bias correction and the measures that tell whether it helped.

Small models favour some labels whatever the text. Three corrections, all on the ``(n, k)``
probability matrix of a single-label task:

- contextual calibration without labels: divide each row by the model's distribution for
  content-free inputs (:func:`content_free_prior`) or by the batch mean (:func:`batch_prior`),
  then renormalise (:func:`rescale`);
- a bias and temperature fitted on human labels (:func:`fit`), once people have labeled some
  records: ``softmax(log(p) / T + b)``.

Measures: :func:`accuracy`, :func:`macro_f1`, :func:`ece`, :func:`auroc` (numpy only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CONTENT_FREE = ("", "N/A", "[MASK]")


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``(n, k)`` logits."""
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def rescale(probs: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Divide each row by ``prior`` and renormalise (rows of NaN stay NaN).

    Examples
    --------
    >>> rescale(np.array([[0.6, 0.4], [0.8, 0.2]]), np.array([0.7, 0.3])).round(3)
    array([[0.391, 0.609],
           [0.632, 0.368]])
    """
    probs = np.asarray(probs, dtype=np.float64)
    prior = np.asarray(prior, dtype=np.float64)
    if prior.shape != probs.shape[1:] or not (prior > 0).all():
        raise ValueError(f"prior must hold {probs.shape[1]} positive probabilities, got {prior!r}.")
    scaled = probs / prior
    return scaled / scaled.sum(axis=1, keepdims=True)


def batch_prior(probs: np.ndarray) -> np.ndarray:
    """The model's mean distribution over the records scored (no labels used)."""
    probs = np.asarray(probs, dtype=np.float64)
    scored = probs[~np.isnan(probs).any(axis=1)]
    if not len(scored):
        raise ValueError("batch calibration needs at least one scored record.")
    return np.clip(scored.mean(axis=0), 1e-12, None)


def content_free_prior(llm, task, prompt=None, inputs: Sequence[str] = CONTENT_FREE) -> np.ndarray:
    """The model's mean distribution for content-free inputs (``""``, ``"N/A"``, ``"[MASK]"``)."""
    return np.clip(llm.score(task, list(inputs), prompt=prompt).mean(axis=0), 1e-12, None)


@dataclass(frozen=True)
class Fitted:
    """A bias and temperature fitted on human labels: ``softmax(log(p) / temperature + bias)``."""

    bias: np.ndarray
    temperature: float

    def apply(self, probs: np.ndarray) -> np.ndarray:
        """The corrected probabilities."""
        logits = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, None)) / self.temperature + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        out = np.exp(logits)
        return out / out.sum(axis=1, keepdims=True)


def newton_multinomial(
    jac: np.ndarray, labels: np.ndarray, penalty: np.ndarray, theta: np.ndarray, *, steps: int = 50, tol: float = 1e-10
) -> np.ndarray:
    """``theta`` minimising the mean multinomial log loss of the logits ``jac @ theta`` plus ``theta @ penalty @ theta / 2``.

    ``jac`` is ``(n, k, p)``: every record's ``k`` logits are linear in the ``p`` parameters, so the loss is
    convex. Damped Newton steps from ``theta`` (deterministic), at most ``steps``.
    """
    n, k, p = jac.shape
    onehot = np.eye(k)[labels]

    def loss(t):
        z = jac @ t
        z = z - z.max(axis=1, keepdims=True)
        return float(-(z * onehot).sum() / n + np.log(np.exp(z).sum(axis=1)).mean() + 0.5 * t @ penalty @ t)

    theta = np.asarray(theta, dtype=np.float64).copy()
    for _ in range(steps):
        z = jac @ theta
        q = np.exp(z - z.max(axis=1, keepdims=True))
        q /= q.sum(axis=1, keepdims=True)
        grad = np.einsum("ncp,nc->p", jac, q - onehot) / n + penalty @ theta
        weighted = q[:, :, None] * jac  # (n, k, p)
        mean = weighted.sum(axis=1)  # (n, p): E_q[jac]
        hess = np.einsum("ncp,ncq->pq", weighted, jac) / n - mean.T @ mean / n + penalty + 1e-9 * np.eye(p)
        step = np.linalg.solve(hess, grad)
        size, before = 1.0, loss(theta)
        while size > 1e-4 and loss(theta - size * step) > before:
            size /= 2
        theta = theta - size * step
        if np.abs(size * step).max() < tol:
            break
    return theta


def temperature(logits: np.ndarray, y: np.ndarray, *, prior: float = 0.0) -> float:
    """The temperature ``T`` minimising the log loss of ``softmax(logits / T)`` for labels ``y``.

    Newton steps on ``w = 1/T`` (the loss is convex in ``w``; deterministic), ``T`` kept within [1/20, 20].
    ``prior`` shrinks ``T`` towards 1 as if that many records had said so (a penalty
    ``prior / n * (w - 1)^2 / 2``): with few labels the fit stays near the source's own scale.

    Examples
    --------
    >>> logits = np.log(np.array([[0.99, 0.01]] * 6 + [[0.01, 0.99]] * 4))  # sure, right 6 times in 10
    >>> temperature(logits, np.zeros(10, dtype=int)) > 1
    True
    """
    n = len(y)
    if n == 0:
        return 1.0
    z = logits - logits.max(axis=1, keepdims=True)
    strength = prior / n
    rows = np.arange(n)

    def loss(w):
        s = w * z
        return float(
            (np.log(np.exp(s - s.max(axis=1, keepdims=True)).sum(axis=1)) + s.max(axis=1) - s[rows, y]).mean()
            + 0.5 * strength * (w - 1) ** 2
        )

    w = 1.0
    for _ in range(50):
        q = np.exp(w * z - (w * z).max(axis=1, keepdims=True))
        q /= q.sum(axis=1, keepdims=True)
        mean = (q * z).sum(axis=1)
        grad = float((mean - z[rows, y]).mean()) + strength * (w - 1)
        hess = float(((q * z * z).sum(axis=1) - mean**2).mean()) + strength + 1e-9
        step, size, before = grad / hess, 1.0, loss(w)
        while size > 1e-4 and loss(w - size * step) > before:
            size /= 2
        w = float(np.clip(w - size * step, 0.05, 20.0))
        if abs(size * step) < 1e-9:
            break
    return 1.0 / w


def fit(probs: np.ndarray, labels: np.ndarray, *, steps: int = 50, l2: float = 1e-3) -> Fitted:
    """Fit a per-label bias and one temperature by minimising the log loss on labeled records.

    Parameters
    ----------
    probs
        ``(n, k)`` model probabilities of labeled records.
    labels
        ``(n,)`` the human label's position in the label set.
    steps
        At most this many Newton steps (the loss is convex; deterministic).
    l2
        A small penalty on the bias, so that labels never seen keep a finite bias.

    Examples
    --------
    >>> p = np.array([[0.7, 0.3]] * 6 + [[0.8, 0.2]] * 4)
    >>> y = np.array([1] * 6 + [0] * 4)
    >>> (fit(p, y).apply(p).argmax(axis=1) == y).mean()
    np.float64(1.0)
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if probs.ndim != 2 or len(labels) != len(probs) or len(probs) == 0:
        raise ValueError(f"fit needs an (n, k) matrix and n labels, got {probs.shape} and {labels.shape}.")
    k = probs.shape[1]
    if labels.min() < 0 or labels.max() >= k:
        raise ValueError(f"labels must be positions 0..{k - 1} in the label set, got values {np.unique(labels)}.")
    logp = np.log(np.clip(probs, 1e-12, None))
    logp -= logp.max(axis=1, keepdims=True)
    n = len(probs)
    # z = a * log p + b is linear in theta = (b_1..b_k, a): the log loss is convex
    jac = np.concatenate([np.broadcast_to(np.eye(k), (n, k, k)), logp[:, :, None]], axis=2)  # (n, k, k+1)
    penalty = np.diag(np.r_[np.full(k, l2), 0.0])
    theta = newton_multinomial(jac, labels, penalty, np.r_[np.zeros(k), 1.0], steps=steps)
    bias, inv_t = theta[:k], float(np.clip(theta[k], 0.05, 20.0))
    return Fitted(bias - bias.mean(), 1.0 / inv_t)


# --- measures ---------------------------------------------------------------------------------


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Share of records whose argmax is the label."""
    return float((np.asarray(probs).argmax(axis=1) == np.asarray(labels)).mean())


def macro_f1(probs: np.ndarray, labels: np.ndarray) -> float:
    """Macro-averaged F1 of the argmax over the labels present in ``labels`` or predicted."""
    pred, labels = np.asarray(probs).argmax(axis=1), np.asarray(labels)
    classes = np.union1d(pred, labels)
    tp = (pred[:, None] == classes) & (labels[:, None] == classes)
    p_count, l_count = (pred[:, None] == classes).sum(0), (labels[:, None] == classes).sum(0)
    f1 = np.where(p_count + l_count > 0, 2 * tp.sum(0) / np.maximum(p_count + l_count, 1), 0.0)
    return float(f1.mean())


def ece(probs: np.ndarray, labels: np.ndarray, *, bins: int = 10) -> float:
    """Expected calibration error of the top label's confidence (equal-width bins).

    Examples
    --------
    >>> ece(np.array([[0.9, 0.1], [0.9, 0.1]]), np.array([0, 1]))
    0.4
    """
    probs = np.asarray(probs, dtype=np.float64)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(labels)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    count = np.bincount(which, minlength=bins)
    gap = np.abs(np.bincount(which, confidence, bins) - np.bincount(which, correct.astype(float), bins))
    return round(float(gap.sum() / len(probs)), 12) if count.sum() else float("nan")


def auroc(score: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``score`` for telling ``positive`` from the rest (ties count half).

    Examples
    --------
    >>> auroc(np.array([0.9, 0.8, 0.3, 0.1]), np.array([True, False, True, False]))
    0.75
    """
    score, positive = np.asarray(score, dtype=np.float64), np.asarray(positive, dtype=bool)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="stable")
    ranks = np.empty(len(score))
    sorted_scores = score[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
