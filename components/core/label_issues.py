"""Likely mislabelled images, found from cached features by confident learning (plain NumPy).

Confident learning (Northcutt, Jiang and Chuang, JAIR 2021) needs out-of-sample predicted
probabilities for every row: here K-fold cross-validated probabilities of a multinomial
logistic regression on the cached bottleneck features, trained full-batch in NumPy in a
second or two. Per class j the threshold `t_j` is the mean probability of j over the rows
labelled j; a row counts as "confidently class j" when `p_j >= t_j` (the most probable
such j when several). The counts of (given label, confident class) form the confident
joint; its off-diagonal counts estimate how many labels are wrong, and "prune by noise
rate" flags, for each off-diagonal cell (given i, confident j), that many rows labelled i
with the largest margin `p_j - p_i`. The flagged rows are ranked by normalized margin.

This is the part of `cleanlab.filter.find_label_issues` (its default, "prune_by_noise_rate")
that kftransfer needs, without cleanlab's scikit-learn and pandas dependencies.
"""

from dataclasses import dataclass

import numpy as np

# Defaults of the cross-validated logistic regression, tuned on MobileNet features
# (1,024 dims, 10 classes, a few thousand rows): converged enough for ranking, and
# regularised enough that held-out probabilities are not overconfident.
STEPS = 150
LEARNING_RATE = 0.05
L2 = 1e-2
VARIANCE_FLOOR = 1e-6  # standardising a constant feature must not divide by zero
ADAM_BETAS = (0.9, 0.999)


def stratified_folds(labels: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """A fold id in `[0, folds)` for every row, each class spread evenly over the folds."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), dtype=np.int64)
    offset = 0  # continue the round robin across classes, so the fold sizes stay even
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        fold_of[rows] = (offset + np.arange(len(rows))) % folds
        offset += len(rows)
    return fold_of


@dataclass
class SoftmaxRegression:
    """A fitted multinomial logistic regression on standardised features."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: np.ndarray

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities `[N, classes]` (float32)."""
        standardised = (np.asarray(features, np.float32) - self.mean) / self.scale
        return _softmax(standardised @ self.weights + self.bias)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def fit_softmax_regression(
    features: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    steps: int = STEPS,
    learning_rate: float = LEARNING_RATE,
    l2: float = L2,
) -> SoftmaxRegression:
    """Full-batch Adam on the mean cross-entropy + `l2 / 2 * |W|^2`, from zero weights.

    Float32 throughout; deterministic (no random initialisation, no mini-batches).
    """
    x = np.asarray(features, np.float32)
    mean = x.mean(axis=0)
    scale = np.sqrt(np.maximum(x.var(axis=0), VARIANCE_FLOOR)).astype(np.float32)
    x = (x - mean) / scale
    targets = np.eye(num_classes, dtype=np.float32)[np.asarray(labels)]
    params = [np.zeros((x.shape[1], num_classes), np.float32), np.zeros(num_classes, np.float32)]
    moments = [[np.zeros_like(p), np.zeros_like(p)] for p in params]
    beta1, beta2 = ADAM_BETAS
    for step in range(1, steps + 1):
        error = (_softmax(x @ params[0] + params[1]) - targets) / len(x)
        gradients = (x.T @ error + l2 * params[0], error.sum(axis=0))
        correction = np.sqrt(1 - beta2**step) / (1 - beta1**step)
        for param, gradient, (m, v) in zip(params, gradients, moments, strict=True):
            m += (1 - beta1) * (gradient - m)
            v += (1 - beta2) * (gradient * gradient - v)
            param -= learning_rate * correction * m / (np.sqrt(v) + 1e-8)
    return SoftmaxRegression(mean, scale, params[0], params[1])


def out_of_sample_probabilities(
    features: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    folds: int = 5,
    seed: int = 0,
    steps: int = STEPS,
    learning_rate: float = LEARNING_RATE,
    l2: float = L2,
) -> np.ndarray:
    """K-fold cross-validated probabilities: each row's from a model that never saw it.

    Args:
        features: `[N, dim]` cached bottleneck features.
        labels: the given class ids `[N]` (possibly wrong: that is what is looked for).
        num_classes: the number of classes.
        folds: K; the folds are stratified by label and drawn with `seed`.
        seed: the fold assignment's seed (the training itself is deterministic).
        steps: full-batch Adam steps per fold.
        learning_rate: Adam's learning rate.
        l2: the L2 penalty on the weights (standardised features).

    Returns:
        `[N, num_classes]` float32 probabilities.
    """
    labels = np.asarray(labels)
    if folds < 2:
        raise ValueError(f"need at least 2 folds, got {folds}")
    fold_of = stratified_folds(labels, folds, seed)
    probabilities = np.zeros((len(labels), num_classes), np.float32)
    for fold in range(folds):
        held_out = fold_of == fold
        model = fit_softmax_regression(
            features[~held_out], labels[~held_out], num_classes, steps, learning_rate, l2
        )
        probabilities[held_out] = model.probabilities(features[held_out])
    return probabilities


def per_class_thresholds(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """`t_j`: the mean predicted probability of class j over the rows labelled j.

    A class without rows gets threshold 1 (nothing is confidently it on that evidence).
    """
    probabilities, labels = np.asarray(probabilities), np.asarray(labels)
    classes = probabilities.shape[1]
    counts = np.bincount(labels, minlength=classes)
    sums = np.bincount(labels, probabilities[np.arange(len(labels)), labels], minlength=classes)
    return np.where(counts > 0, sums / np.maximum(counts, 1), 1.0)


def confident_classes(probabilities: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Per row, the most probable class j with `p_j >= t_j`, or -1 when there is none."""
    # cleanlab's tolerance: a row at exactly the threshold counts despite float rounding
    above = probabilities >= thresholds - 1e-6
    masked = np.where(above, probabilities, -np.inf)
    return np.where(above.any(axis=1), masked.argmax(axis=1), -1)


def confident_joint(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Counts `[given label, confident class]`, calibrated so row i sums to the rows labelled i.

    Rows confidently of no class are left out of the raw counts; the calibration scales
    each row of counts back up to the number of rows with that given label.
    """
    probabilities, labels = np.asarray(probabilities), np.asarray(labels)
    classes = probabilities.shape[1]
    confident = confident_classes(probabilities, per_class_thresholds(probabilities, labels))
    counted = confident >= 0
    joint = np.zeros((classes, classes))
    np.add.at(joint, (labels[counted], confident[counted]), 1)
    label_counts = np.bincount(labels, minlength=classes)
    row_sums = joint.sum(axis=1, keepdims=True)
    calibrated = joint / np.maximum(row_sums, 1) * label_counts[:, None]
    return np.round(calibrated).astype(np.int64)


def normalized_margin(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """`p[given] - max over other classes p[other]`, in [-1, 1]: low is suspicious."""
    probabilities, labels = np.asarray(probabilities), np.asarray(labels)
    rows = np.arange(len(labels))
    given = probabilities[rows, labels]
    others = probabilities.copy()
    others[rows, labels] = -np.inf
    return given - others.max(axis=1)


def rank_by_self_confidence(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Every row index, the lowest probability of the given label first."""
    probabilities, labels = np.asarray(probabilities), np.asarray(labels)
    return np.argsort(probabilities[np.arange(len(labels)), labels], kind="stable")


@dataclass
class LabelIssues:
    """Rows whose given label is likely wrong, the most likely wrong first.

    Attributes:
        indices: the flagged row indices, ranked by `scores` (lowest first).
        scores: their scores (see `find_label_issues`'s `rank_by`), the lowest first.
        suggested_labels: the most probable class other than the given one, per flagged row.
        estimated_count: the wrong labels the confident joint estimates (its off-diagonal sum).
        joint: the calibrated confident joint `[given, confident]`.
    """

    indices: np.ndarray
    scores: np.ndarray
    suggested_labels: np.ndarray
    estimated_count: int
    joint: np.ndarray


def _prune_by_noise_rate(probabilities, labels, joint) -> np.ndarray:
    """For each off-diagonal cell (i, j): flag `joint[i, j]` rows labelled i, largest p_j - p_i."""
    flagged = np.zeros(len(labels), dtype=bool)
    for given in range(joint.shape[0]):
        rows = np.flatnonzero(labels == given)
        for other in np.flatnonzero(joint[given]):
            if other == given or len(rows) == 0:
                continue
            margin = probabilities[rows, other] - probabilities[rows, given]
            count = min(int(joint[given, other]), len(rows))
            flagged[rows[np.argsort(-margin, kind="stable")[:count]]] = True
    return flagged


def find_label_issues(
    probabilities: np.ndarray, labels: np.ndarray, rank_by: str = "normalized_margin"
) -> LabelIssues:
    """Confident learning's likely label errors (cleanlab's "prune_by_noise_rate").

    Args:
        probabilities: `[N, classes]` out-of-sample probabilities (e.g. from
            `out_of_sample_probabilities`): in-sample ones have memorised the wrong labels.
        labels: the given class ids `[N]`.
        rank_by: the score ranking the flagged rows, lowest first: "normalized_margin"
            (`p[given] - max p[other]`) or "self_confidence" (`p[given]`). Which rows are
            flagged does not depend on it.

    Returns:
        The `LabelIssues`.
    """
    if rank_by not in ("normalized_margin", "self_confidence"):
        raise ValueError(f"unknown rank_by {rank_by!r}: normalized_margin or self_confidence")
    probabilities = np.asarray(probabilities, np.float64)
    labels = np.asarray(labels)
    joint = confident_joint(probabilities, labels)
    flagged = _prune_by_noise_rate(probabilities, labels, joint)
    # As cleanlab does: a row whose given label is also the model's prediction is kept.
    flagged &= probabilities.argmax(axis=1) != labels
    indices = np.flatnonzero(flagged)
    rows = np.arange(len(indices))
    if rank_by == "normalized_margin":
        scores = normalized_margin(probabilities[indices], labels[indices])
    else:
        scores = probabilities[indices, labels[indices]]
    order = np.argsort(scores, kind="stable")
    others = probabilities[indices].copy()
    others[rows, labels[indices]] = -np.inf
    return LabelIssues(
        indices=indices[order],
        scores=scores[order],
        suggested_labels=others.argmax(axis=1)[order],
        estimated_count=int(joint.sum() - np.trace(joint)),
        joint=joint,
    )
