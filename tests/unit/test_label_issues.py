"""Confident learning finds planted label flips, and leaves clean labels alone."""

import numpy as np
import pytest

from kftransfer.components.core.label_issues import (
    confident_joint,
    find_label_issues,
    fit_softmax_regression,
    normalized_margin,
    out_of_sample_probabilities,
    per_class_thresholds,
    rank_by_self_confidence,
    stratified_folds,
)

CLASSES = 5


def clusters(n=1500, dim=32, spread=0.4, seed=0):
    """Gaussian clusters that overlap a little: a linear model gets ~98% right."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CLASSES, dim)) * spread * 2
    labels = np.arange(n) % CLASSES
    return (centres[labels] + rng.normal(size=(n, dim))).astype(np.float32), labels


def flip_labels(labels, fraction, seed):
    rng = np.random.default_rng(seed)
    flipped = rng.choice(len(labels), int(fraction * len(labels)), replace=False)
    noisy = labels.copy()
    noisy[flipped] = (labels[flipped] + rng.integers(1, CLASSES, len(flipped))) % CLASSES
    return noisy, flipped


@pytest.mark.parametrize("seed", [0, 1])
def test_planted_flips_are_found(seed):
    features, labels = clusters(seed=seed)
    noisy, flipped = flip_labels(labels, 0.05, seed=100 + seed)
    probabilities = out_of_sample_probabilities(features, noisy, CLASSES, seed=seed)
    issues = find_label_issues(probabilities, noisy)
    found = np.isin(issues.indices, flipped)
    assert found.sum() / len(flipped) >= 0.8  # recall
    assert found.mean() >= 0.7  # precision
    assert abs(issues.estimated_count - len(flipped)) <= 0.3 * len(flipped)
    # the suggestion for a found flip is mostly its true label
    assert np.mean(issues.suggested_labels[found] == labels[issues.indices[found]]) >= 0.9
    assert np.all(np.diff(issues.scores) >= 0)  # most likely wrong first


def test_clean_labels_are_rarely_flagged():
    features, labels = clusters(seed=2)
    probabilities = out_of_sample_probabilities(features, labels, CLASSES)
    assert np.mean(probabilities.argmax(axis=1) != labels) > 0.005  # the model does err
    assert len(find_label_issues(probabilities, labels).indices) < 0.01 * len(labels)


def test_probabilities_are_out_of_sample():
    # 200 rows of pure noise in 400 dims with random labels: a model that saw a row
    # memorises its label, one that did not is at chance
    rng = np.random.default_rng(3)
    features = rng.normal(size=(200, 400)).astype(np.float32)
    labels = rng.integers(0, CLASSES, 200)
    in_sample = fit_softmax_regression(features, labels, CLASSES).probabilities(features)
    held_out = out_of_sample_probabilities(features, labels, CLASSES)
    rows = np.arange(200)
    assert in_sample[rows, labels].mean() > 0.8
    assert held_out[rows, labels].mean() < 0.3
    np.testing.assert_allclose(held_out.sum(axis=1), 1.0, rtol=1e-5)


def test_out_of_sample_probabilities_are_deterministic_by_seed():
    features, labels = clusters(n=300, seed=4)
    first = out_of_sample_probabilities(features, labels, CLASSES, folds=3, seed=7)
    again = out_of_sample_probabilities(features, labels, CLASSES, folds=3, seed=7)
    other = out_of_sample_probabilities(features, labels, CLASSES, folds=3, seed=8)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_folds_are_stratified_and_balanced():
    labels = np.repeat(np.arange(3), [50, 31, 19])
    folds = stratified_folds(labels, 5, seed=0)
    for label in range(3):
        per_fold = np.bincount(folds[labels == label], minlength=5)
        assert per_fold.max() - per_fold.min() <= 1
    assert np.bincount(folds).max() - np.bincount(folds).min() <= 1
    assert not np.array_equal(folds, stratified_folds(labels, 5, seed=1))


def test_confident_joint_by_hand():
    probabilities = np.array([
        [0.9, 0.1],  # labelled 0, confidently 0
        [0.7, 0.3],  # labelled 0, confidently 0 (0.7 >= t0 = 0.6)
        [0.2, 0.8],  # labelled 0, confidently 1 (0.8 >= t1 = 0.7)
        [0.3, 0.7],  # labelled 1, confidently 1
        [0.4, 0.6],  # labelled 1, below both thresholds: not counted
    ])  # fmt: skip
    labels = np.array([0, 0, 0, 1, 1])
    np.testing.assert_allclose(per_class_thresholds(probabilities, labels), [0.6, 0.65])
    # t1 = mean(0.7, 0.6) = 0.65: row 3 counts; row 4 (0.6) does not. Row 1 of counts,
    # [0, 1], is scaled to the 2 rows labelled 1: [0, 2].
    np.testing.assert_array_equal(confident_joint(probabilities, labels), [[2, 1], [0, 2]])
    issues = find_label_issues(probabilities, labels)
    assert issues.indices.tolist() == [2] and issues.suggested_labels.tolist() == [1]
    assert issues.estimated_count == 1
    assert issues.scores[0] == pytest.approx(0.2 - 0.8)


def test_rankings():
    probabilities = np.array([[0.5, 0.4, 0.1], [0.2, 0.1, 0.7], [0.3, 0.35, 0.35]])
    labels = np.array([0, 0, 0])
    np.testing.assert_allclose(normalized_margin(probabilities, labels), [0.1, -0.5, -0.05])
    assert rank_by_self_confidence(probabilities, labels).tolist() == [1, 2, 0]


def test_self_confidence_ranking_flags_the_same_rows():
    features, labels = clusters(seed=5)
    noisy, _ = flip_labels(labels, 0.05, seed=105)
    probabilities = out_of_sample_probabilities(features, noisy, CLASSES)
    by_margin = find_label_issues(probabilities, noisy)
    by_confidence = find_label_issues(probabilities, noisy, rank_by="self_confidence")
    assert set(by_margin.indices) == set(by_confidence.indices)
    rows = by_confidence.indices
    np.testing.assert_allclose(by_confidence.scores, probabilities[rows, noisy[rows]], rtol=1e-6)
    assert np.all(np.diff(by_confidence.scores) >= 0)
    with pytest.raises(ValueError):
        find_label_issues(probabilities, noisy, rank_by="entropy")
