"""Calibrated confidences: temperature scaling, calibration error, abstention thresholds.

Fine-tuned networks are overconfident: a prediction made with probability 0.99 is right
far less than 99% of the time. Temperature scaling (Guo et al. 2017) divides the log
probabilities by one scalar T > 0 fitted on validation data; it never changes the
argmax, so accuracy is untouched, while the confidences become usable for abstaining
("answer only above confidence t"). Everything works from probabilities, the output of
every kftransfer model (a sigmoid model's column is expanded to two by the caller, see
`classifier.as_probabilities`). Plain NumPy, except the Keras layer at the end.
"""

import math
from typing import NamedTuple

import keras
import numpy as np
from keras import ops

from kftransfer.components.core.layers import PACKAGE

PROBABILITY_FLOOR = 1e-12  # log(0) would be -inf; a class never gets less than this
LOG_TEMPERATURE_RANGE = (math.log(0.05), math.log(20.0))
GOLDEN_STEPS = 60  # shrinks the log-T bracket 0.618^60 ~ 3e-13 times: exact to float error
GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def _log_probabilities(probabilities: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(probabilities, dtype=np.float64), PROBABILITY_FLOOR, 1.0))


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _tempered_nll(log_p: np.ndarray, labels: np.ndarray, log_temperature: float) -> float:
    scaled = log_p / math.exp(log_temperature)
    top = scaled.max(axis=1)
    log_normaliser = top + np.log(np.exp(scaled - top[:, None]).sum(axis=1))
    return float(np.mean(log_normaliser - scaled[np.arange(len(labels)), labels]))


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising the negative log-likelihood of `softmax(log(p) / T)`.

    The NLL is convex in 1/T, hence unimodal in log T, so a golden-section search over
    log T in [log 0.05, log 20] finds the minimum deterministically and without
    derivatives. A minimum outside the range returns the nearest end (e.g. a validation
    set classified perfectly keeps asking for a colder T).

    Args:
        probabilities: `[N, classes]` predicted probabilities of validation data
            (clipped at 1e-12 before the log).
        labels: true class ids `[N]`.

    Returns:
        T > 0: above 1 softens overconfident predictions, below 1 sharpens.
    """
    labels = np.asarray(labels)
    if len(labels) == 0:
        raise ValueError("cannot fit a temperature on no examples")
    log_p = _log_probabilities(probabilities)
    low, high = LOG_TEMPERATURE_RANGE
    left, right = high - GOLDEN * (high - low), low + GOLDEN * (high - low)
    f_left, f_right = (_tempered_nll(log_p, labels, s) for s in (left, right))
    for _ in range(GOLDEN_STEPS):
        if f_left <= f_right:  # the minimum is left of `right`
            high, right, f_right = right, left, f_left
            left = high - GOLDEN * (high - low)
            f_left = _tempered_nll(log_p, labels, left)
        else:
            low, left, f_left = left, right, f_right
            right = low + GOLDEN * (high - low)
            f_right = _tempered_nll(log_p, labels, right)
    return math.exp((low + high) / 2.0)


def temperature_from_validation(probabilities: np.ndarray, labels: np.ndarray) -> tuple[float, str]:
    """`fit_temperature`, or T = 1 when validation has no mistake to fit it on.

    On a validation split the model classifies perfectly (small, or an easy task) the
    likelihood keeps rising as T falls, and the fit stops at the range's cold end, 0.05:
    every exported probability near 1, wrong answers included, worse calibrated than the
    model's own probabilities. Without a mistake there is no evidence of over- or
    under-confidence, so the model's probabilities are kept.

    Returns:
        T and how it was chosen, e.g. "fitted on 89 validation images (10 wrong)".
    """
    labels = np.asarray(labels)
    wrong = int(np.count_nonzero(np.asarray(probabilities).argmax(axis=1) != labels))
    if wrong == 0:
        return 1.0, f"not fitted: no mistake on the {len(labels)} validation images to fit it on"
    return (
        fit_temperature(probabilities, labels),
        f"fitted on {len(labels)} validation images ({wrong} wrong)",
    )


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """`softmax(log(p) / T)` row by row (float64; rows sum to 1; T = 1 is the identity)."""
    if not temperature > 0.0 or not math.isfinite(temperature):
        raise ValueError(f"the temperature must be a positive number, got {temperature}")
    return _softmax(_log_probabilities(probabilities) / temperature)


class Reliability(NamedTuple):
    """Per confidence bin: mean confidence and accuracy (NaN when empty), and row count."""

    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray


def reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> Reliability:
    """The reliability diagram: predictions binned by confidence into equal-width bins.

    A prediction's confidence is its largest probability; bin b holds confidences in
    `(b / bins, (b + 1) / bins]` (the first bin also holds 0).
    """
    probabilities, labels = np.asarray(probabilities), np.asarray(labels)
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype(np.float64)
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, confidence, minlength=bins) / count
        accuracy = np.bincount(index, correct, minlength=bins) / count
    return Reliability(mean_confidence, accuracy, count)


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = 15
) -> float:
    """ECE: the count-weighted mean gap |accuracy - mean confidence| over confidence bins."""
    diagram = reliability(probabilities, labels, bins)
    filled = diagram.count > 0
    if not filled.any():
        return 0.0
    gaps = np.abs(diagram.accuracy[filled] - diagram.confidence[filled])
    return float(np.sum(gaps * diagram.count[filled]) / diagram.count.sum())


def _accuracy_above_each_confidence(probabilities, labels) -> tuple[np.ndarray, np.ndarray]:
    """Distinct confidences t (descending) and the accuracy of rows with confidence >= t."""
    probabilities, labels = np.asarray(probabilities), np.asarray(labels)
    confidence = probabilities.max(axis=1)
    order = np.argsort(-confidence, kind="stable")
    confidence = confidence[order]
    correct = (probabilities.argmax(axis=1) == labels)[order]
    hits = np.cumsum(correct)
    # the last row of each run of equal confidences: a threshold covers every tie or none
    last = np.r_[confidence[1:] != confidence[:-1], True]
    return confidence[last], hits[last] / (np.flatnonzero(last) + 1)


def confidence_for_precision(
    probabilities: np.ndarray, labels: np.ndarray, target: float
) -> float | None:
    """The smallest confidence threshold whose answered predictions reach `target` accuracy.

    The smallest such threshold answers the most images. It is a confidence seen in the
    (validation) data, so the rows with confidence >= it are exactly those counted.

    Args:
        probabilities: `[N, classes]` (calibrated) probabilities of validation data.
        labels: true class ids `[N]`.
        target: the accuracy wanted on the predictions answered, e.g. 0.95.

    Returns:
        The threshold, or None when no threshold reaches the target.
    """
    if len(labels) == 0:
        return None
    thresholds, accuracy = _accuracy_above_each_confidence(probabilities, labels)
    reached = np.flatnonzero(accuracy >= target)
    return float(thresholds[reached[-1]]) if reached.size else None


def coverage_curve(
    probabilities: np.ndarray, labels: np.ndarray, thresholds
) -> list[tuple[float, float, float | None]]:
    """For each threshold: (threshold, fraction of rows answered, their accuracy).

    The accuracy is None when a threshold answers no row.
    """
    probabilities, labels = np.asarray(probabilities), np.asarray(labels)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    curve = []
    for threshold in thresholds:
        answered = confidence >= threshold
        coverage = float(answered.mean()) if len(labels) else 0.0
        accuracy = float(correct[answered].mean()) if answered.any() else None
        curve.append((float(threshold), coverage, accuracy))
    return curve


@keras.saving.register_keras_serializable(package=PACKAGE)
class TemperatureScaling(keras.layers.Layer):
    """Probabilities `[B, classes]` to `softmax(log(p) / T)` with a fixed temperature.

    Append it to a classifier whose output is `[B, classes]` probabilities; a sigmoid
    output `[B, 1]` is taken as `p(class 1)` and becomes `[B, 2]`. The temperature is a
    constant of the config, not a weight, so a saved model carries it and
    `safe_mode=True` loading restores it.

    Args:
        temperature: T > 0, e.g. from `fit_temperature`.
    """

    def __init__(self, temperature: float, **kwargs):
        super().__init__(**kwargs)
        temperature = float(temperature)
        if not temperature > 0.0 or not math.isfinite(temperature):
            raise ValueError(f"the temperature must be a positive number, got {temperature}")
        self.temperature = temperature

    def call(self, probabilities):
        """Clips, takes logs, divides by T and applies the softmax, in the compute dtype."""
        probabilities = ops.cast(probabilities, self.compute_dtype)
        if probabilities.shape[-1] == 1:  # a sigmoid: p(class 1)
            probabilities = ops.concatenate([1 - probabilities, probabilities], axis=-1)
        # 1e-12 underflows to 0 in float16; its smallest normal number keeps the log finite
        floor = 6.2e-5 if self.compute_dtype == "float16" else PROBABILITY_FLOOR
        logits = ops.log(ops.maximum(probabilities, floor)) / self.temperature
        return ops.softmax(logits, axis=-1)

    def compute_output_shape(self, input_shape):
        """Same shape as the input (two columns for a sigmoid's one)."""
        return (*input_shape[:-1], 2) if input_shape[-1] == 1 else tuple(input_shape)

    def get_config(self):
        """The layer's config, for saving."""
        return {**super().get_config(), "temperature": self.temperature}
