"""Classification metrics from labels and predicted probabilities (plain NumPy)."""

import numpy as np

LOG_LOSS_EPSILON = 1e-15


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts `[true class, predicted class]`."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return matrix


def top_k_accuracy(y_true: np.ndarray, probabilities: np.ndarray, k: int) -> float:
    """Fraction of rows whose true class is among the k most probable."""
    top = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == np.asarray(y_true)[:, None], axis=1)))


def log_loss(y_true: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean negative log-probability of the true class (clipped at 1e-15)."""
    picked = probabilities[np.arange(len(y_true)), np.asarray(y_true)]
    return float(-np.mean(np.log(np.clip(picked, LOG_LOSS_EPSILON, 1.0))))


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def per_class_scores(matrix: np.ndarray, labels: list[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support of each class from a confusion matrix.

    An undefined ratio (no predictions of a class, or no examples of it) counts as 0.
    """
    scores = {}
    for i, label in enumerate(labels):
        hits, predicted, actual = matrix[i, i], matrix[:, i].sum(), matrix[i, :].sum()
        precision, recall = _ratio(hits, predicted), _ratio(hits, actual)
        f1 = _ratio(2 * precision * recall, precision + recall)
        scores[label] = {"precision": precision, "recall": recall, "f1": f1, "support": int(actual)}
    return scores


def classification_metrics(
    y_true: np.ndarray, probabilities: np.ndarray, labels: list[str], top_k: int = 3
) -> dict:
    """Every metric of the report for one model.

    Args:
        y_true: true class ids `[N]`.
        probabilities: `[N, classes]` predicted probabilities.
        labels: class names in id order.
        top_k: k of the top-k accuracy (reported only when k < the number of classes).

    Returns:
        accuracy, top_k_accuracy (or None), log_loss, macro_f1, per_class, confusion
        (rows: true class, columns: predicted), examples.
    """
    y_true = np.asarray(y_true)
    predicted = np.argmax(probabilities, axis=1)
    matrix = confusion_matrix(y_true, predicted, len(labels))
    per_class = per_class_scores(matrix, labels)
    return {
        "examples": int(len(y_true)),
        "accuracy": float(np.mean(predicted == y_true)) if len(y_true) else 0.0,
        "top_k": top_k,
        "top_k_accuracy": top_k_accuracy(y_true, probabilities, top_k)
        if top_k < len(labels)
        else None,
        "log_loss": log_loss(y_true, probabilities) if len(y_true) else 0.0,
        "macro_f1": float(np.mean([s["f1"] for s in per_class.values()])),
        "per_class": per_class,
        "confusion": matrix.tolist(),
    }
