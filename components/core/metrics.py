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

    An undefined ratio (no predictions of a class, or no examples of it) counts as 0: a
    class of support 0 has no recall to judge (the blessing's floor skips it).
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
        accuracy, top_k_accuracy (or None), log_loss, macro_f1 (the mean F1 of the classes
        the test split has or the model predicted: one with neither has no F1 to average),
        per_class, confusion (rows: true class, columns: predicted), examples.
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
        "macro_f1": macro_f1(matrix, per_class),
        "per_class": per_class,
        "confusion": matrix.tolist(),
    }


def macro_f1(matrix: np.ndarray, per_class: dict[str, dict[str, float]]) -> float:
    """The mean F1 of the classes that are in the test split or predicted (as scikit-learn).

    A class with no test image that the model never predicts has no F1: counting it as 0
    put a perfect model's macro F1 at 2/3 when one of three classes missed the test split.
    """
    present = (matrix.sum(axis=0) + matrix.sum(axis=1)) > 0
    scores = [s["f1"] for s, seen in zip(per_class.values(), present, strict=True) if seen]
    return float(np.mean(scores)) if scores else 0.0


def most_confused_pairs(matrix: np.ndarray, most: int) -> list[tuple[int, int]]:
    """The (true, predicted) class ids of the `most` largest non-zero cells off the diagonal.

    Largest first; ties in row-major order.
    """
    off_diagonal = np.array(matrix, copy=True)
    np.fill_diagonal(off_diagonal, 0)
    order = np.argsort(-off_diagonal, axis=None, kind="stable")[:most]
    rows, columns = np.unravel_index(order, off_diagonal.shape)
    return [(int(i), int(j)) for i, j in zip(rows, columns, strict=True) if off_diagonal[i, j]]


def confusion_of_most_confused(
    matrix: np.ndarray, labels: list[str], most: int
) -> tuple[list[str], np.ndarray]:
    """The confusion matrix cut to `most` rows and columns, the other classes summed in one.

    With at most `most` classes, the matrix as it is. Else the classes of the largest cells
    off the diagonal, up to `most - 1` in `labels` order, and a last class named
    `(other N classes)` holding the rest: each row still sums to its true class's images,
    and every cell among the classes kept is the full matrix's.
    """
    matrix = np.asarray(matrix)
    if len(labels) <= most:
        return list(labels), matrix
    kept: list[int] = []
    for pair in most_confused_pairs(matrix, matrix.size):
        for index in pair:
            if index not in kept and len(kept) < most - 1:
                kept.append(index)
        if len(kept) == most - 1:
            break
    kept.sort()
    group = np.full(len(labels), len(kept))
    group[kept] = np.arange(len(kept))
    cut = np.zeros((len(kept) + 1, len(kept) + 1), dtype=matrix.dtype)
    np.add.at(cut, (group[:, None], group[None, :]), matrix)
    other = f"(other {len(labels) - len(kept)} classes)"
    return [labels[i] for i in kept] + [other], cut
