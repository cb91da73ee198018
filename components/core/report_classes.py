"""The report's class-level sections, readable from 2 classes to thousands.

Drawn as they were for a few classes, a confusion heatmap with a count in every cell
grows with the square of the classes: 300 classes took 70 CPU s and 6.5 GB to draw
(`bench.report_classes`), and 1,000 would not fit in the evaluation step's memory. Past
a few dozen classes the cells are pixels anyway, so the figures keep a bounded size: the
heatmap shows each true class's shares without numbers, a table names the most confused
pairs, and the per-class bars show the classes that need attention (every number stays in
`evaluation.json`).
"""

import html

import numpy as np
from matplotlib.colors import PowerNorm

from kftransfer.components.core.metrics import most_confused_pairs
from kftransfer.components.core.plots import figure_png, img_tag, literal, plt

ANNOTATED_CLASSES = 30  # up to this many, the heatmap writes every count in its cell
NAMED_CLASSES = 60  # up to this many, the heatmap names every class on its axes
BAR_CLASSES = 40  # the per-class bars show at most this many classes, the lowest first
CONFUSED_PAIRS = 20  # rows of the most-confused-pairs table
LARGEST_FIGURE = 14.0  # inches, either side


def class_sections(models: dict[str, dict], labels: list[str]) -> str:
    """The confusion matrix of the fine-tuned model and the per-class recall and F1."""
    matrix = np.asarray(models["fine-tuned"]["confusion"])
    bars = ""
    for score, name in (("recall", "recall"), ("f1", "F1")):
        shown = lowest_classes(models["fine-tuned"], labels, score, BAR_CLASSES)
        if len(shown) < len(labels):
            bars += (
                f"<p>The {len(shown)} classes of lowest fine-tuned {name} of {len(labels)}, "
                "lowest first (every class in evaluation.json).</p>"
            )
        bars += img_tag(per_class_bars(models, shown, score), f"per-class {name}")
    return (
        "<h2>Confusion matrix (fine-tuned)</h2>"
        + img_tag(confusion_heatmap(matrix, labels, "fine-tuned"), "confusion matrix")
        + confused_pairs_table(matrix, labels, CONFUSED_PAIRS)
        + "<h2>Per-class recall and F1</h2>"
        + bars
    )


def confusion_heatmap(matrix: np.ndarray, labels: list[str], title: str) -> bytes:
    """The confusion matrix as a heatmap (rows: true, columns: predicted).

    Up to `ANNOTATED_CLASSES` classes: counts, each in its cell. More: each row's shares
    of its true class, on a square-root scale so that small confusions show, in a figure
    of bounded size; classes are named up to `NAMED_CLASSES`, else numbered.
    """
    count = len(labels)
    annotated, named = count <= ANNOTATED_CLASSES, count <= NAMED_CLASSES
    size = min(max(4.0, 0.5 * count + 2), LARGEST_FIGURE)
    figure, axis = plt.subplots(figsize=(size + 1, size))
    if annotated:
        image = axis.imshow(matrix, cmap="Blues")
        threshold = matrix.max() / 2 if matrix.size else 0
        for (i, j), value in np.ndenumerate(matrix):
            color = "white" if value > threshold else "black"
            axis.text(j, i, str(value), ha="center", va="center", color=color, fontsize=8)
    else:
        shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
        image = axis.imshow(shares, cmap="Blues", norm=PowerNorm(0.5, 0, 1), interpolation="none")
        title += ": share of each true class"
    if named:
        axis.set_xticks(range(count), literal(labels), rotation=45, ha="right")
        axis.set_yticks(range(count), literal(labels))
    numbered = "" if named else " (index in labels.json)"
    axis.set_xlabel("predicted" + numbered)
    axis.set_ylabel("true" + numbered)
    figure.colorbar(image, ax=axis, fraction=0.046)
    axis.set_title(title)
    return figure_png(figure)


def confused_pairs_table(matrix: np.ndarray, labels: list[str], shown: int) -> str:
    """The `shown` largest off-diagonal cells: true class, predicted class, images, share."""
    pairs = most_confused_pairs(matrix, shown)
    if not pairs:
        return "<p>No test image was confused with another class.</p>"
    table = "".join(
        f"<tr><td>{html.escape(labels[i])}</td><td>{html.escape(labels[j])}</td>"
        f"<td>{matrix[i, j]:d}</td><td>{matrix[i, j] / matrix[i].sum():.1%}</td></tr>"
        for i, j in pairs
    )
    return (
        f"<p>Most confused pairs (the {len(pairs)} largest cells off the diagonal):</p><table>"
        "<tr><th>true</th><th>predicted as</th><th>test images</th>"
        f"<th>share of the true class</th></tr>{table}</table>"
    )


def lowest_classes(metrics: dict, labels: list[str], score: str, most: int) -> list[str]:
    """Every class in `labels` order if there are at most `most`; else the `most` lowest."""
    if len(labels) <= most:
        return list(labels)
    return sorted(labels, key=lambda label: metrics["per_class"][label][score])[:most]


def per_class_bars(models: dict[str, dict], labels: list[str], score: str) -> bytes:
    """Grouped bars of one per-class score (precision, recall or f1) for each model."""
    figure, axis = plt.subplots(figsize=(max(6.0, 0.8 * len(labels) + 2), 3.2))
    width = 0.8 / len(models)
    for i, (name, metrics) in enumerate(models.items()):
        values = [metrics["per_class"][label][score] for label in labels]
        axis.bar(np.arange(len(labels)) + i * width, values, width, label=name)
    axis.set_xticks(
        np.arange(len(labels)) + width * (len(models) - 1) / 2,
        literal(labels),
        rotation=45,
        ha="right",
    )
    axis.set_ylim(0, 1.05)
    axis.set_ylabel(score)
    axis.legend(loc="lower right")
    axis.grid(axis="y", alpha=0.3)
    return figure_png(figure)
