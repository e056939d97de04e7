"""Label-bias correction and measures, checked against known answers and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from jlabel import calibration as C


@pytest.fixture
def biased():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(4000, 3)) * 2.0
    labels = np.array([rng.choice(3, p=np.exp(row) / np.exp(row).sum()) for row in truth])
    # a model that sees the truth through a bias towards label 0 and a temperature of 2
    logits = truth / 2.0 + np.array([1.5, 0.0, -0.5])
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return probs, labels


def test_fit_recovers_bias_and_temperature(biased):
    probs, labels = biased
    fitted = C.fit(probs, labels)
    assert fitted.temperature == pytest.approx(0.5, rel=0.1)
    expected = -2 * np.array([1.5, 0.0, -0.5])  # undo the bias, times the fitted 1 / temperature
    np.testing.assert_allclose(fitted.bias, expected - expected.mean(), atol=0.25)
    assert C.ece(fitted.apply(probs), labels) < C.ece(probs, labels)


def test_batch_mean_corrects_a_bias_without_labels(biased):
    probs, labels = biased
    corrected = C.rescale(probs, C.batch_prior(probs))
    assert C.accuracy(corrected, labels) > C.accuracy(probs, labels) + 0.02
    np.testing.assert_allclose(corrected.sum(axis=1), 1.0)


def test_measures_match_scikit_learn(biased):
    probs, labels = biased
    pred = probs.argmax(axis=1)
    assert C.macro_f1(probs, labels) == pytest.approx(f1_score(labels, pred, average="macro"))
    right = pred == labels
    assert C.auroc(probs.max(axis=1), right) == pytest.approx(roc_auc_score(right, probs.max(axis=1)))
    assert C.auroc(np.ones(4), np.array([True, False, True, False])) == 0.5
    assert np.isnan(C.auroc(np.ones(3), np.ones(3, dtype=bool)))


def test_bad_inputs():
    with pytest.raises(ValueError, match="prior must hold 2 positive"):
        C.rescale(np.array([[0.5, 0.5]]), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"labels must be positions 0\.\.1"):
        C.fit(np.array([[0.5, 0.5]]), np.array([2]))
    with pytest.raises(ValueError, match="at least one scored record"):
        C.batch_prior(np.full((2, 2), np.nan))
