"""The report's class-level figures and tables, from a few classes to a thousand."""

import struct

import numpy as np

from kftransfer.components.core.report_classes import (
    LARGEST_FIGURE,
    class_sections,
    confused_pairs_table,
    confusion_heatmap,
    lowest_classes,
)


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", png[16:24])


def many_classes(count: int, seed: int = 0):
    """A diagonal-heavy confusion matrix and the metrics the report reads."""
    rng = np.random.default_rng(seed)
    labels = [f"species {i:04d}" for i in range(count)]
    matrix = np.diag(rng.integers(5, 20, count)) + (rng.random((count, count)) < 3 / count)
    recall = np.diag(matrix) / matrix.sum(axis=1)
    per_class = {label: {"recall": r, "f1": r} for label, r in zip(labels, recall, strict=True)}
    models = {
        "head only": {"per_class": per_class},
        "fine-tuned": {"per_class": per_class, "confusion": matrix.tolist()},
    }
    return matrix, labels, models


def test_most_confused_pairs_are_the_largest_cells_off_the_diagonal():
    matrix = np.array([[8, 2, 0], [5, 5, 0], [0, 1, 9]])
    table = confused_pairs_table(matrix, ["cat", "dog", "fox & hen"], shown=2)
    assert table.count("<tr><td>") == 2
    assert "<tr><td>dog</td><td>cat</td><td>5</td><td>50.0%</td></tr>" in table
    assert "<tr><td>cat</td><td>dog</td><td>2</td><td>20.0%</td></tr>" in table
    assert table.index("<td>dog</td><td>cat</td>") < table.index("<td>cat</td><td>dog</td>")
    everything = confused_pairs_table(matrix, ["cat", "dog", "fox & hen"], shown=20)
    assert everything.count("<tr><td>") == 3  # only cells with images
    assert "<tr><td>fox &amp; hen</td><td>dog</td><td>1</td><td>10.0%</td></tr>" in everything
    perfect = confused_pairs_table(np.diag([3, 4]), ["a", "b"], shown=20)
    assert perfect == "<p>No test image was confused with another class.</p>"


def test_lowest_classes_are_all_classes_in_order_until_there_are_too_many():
    _, labels, models = many_classes(50)
    per_class = models["fine-tuned"]
    assert lowest_classes(per_class, labels[:40], "recall", 40) == labels[:40]
    lowest = lowest_classes(per_class, labels, "recall", 40)
    recalls = [per_class["per_class"][label]["recall"] for label in lowest]
    assert len(lowest) == 40 and recalls == sorted(recalls)
    rest = set(labels) - set(lowest)
    assert min(per_class["per_class"][label]["recall"] for label in rest) >= recalls[-1]


def test_a_thousand_classes_draw_in_a_bounded_figure():
    """Drawn with a count per cell, 300 classes took 70 s and 6.5 GB; 1,000 would not fit."""
    matrix, labels, models = many_classes(1000)
    width, height = png_size(confusion_heatmap(matrix, labels, "fine-tuned"))
    assert width <= (LARGEST_FIGURE + 1) * 110 and height <= LARGEST_FIGURE * 110
    html = class_sections(models, labels)
    assert html.count("<img ") == 3  # the heatmap, recall and F1
    assert "The 40 classes of lowest fine-tuned recall of 1000, lowest first" in html
    assert html.count("<tr><td>species ") == 20  # the most confused pairs


def test_a_few_classes_show_every_class():
    matrix, labels, models = many_classes(12)
    html = class_sections(models, labels)
    assert "classes of lowest" not in html
    small = png_size(confusion_heatmap(matrix, labels, "fine-tuned"))
    assert small[0] < png_size(confusion_heatmap(*many_classes(25)[:2], "fine-tuned"))[0]


def test_class_names_with_dollar_signs_are_drawn_as_written():
    # Before: matplotlib read `$$` as math and the evaluation step failed (ValueError).
    labels = ["$", "$$", "$$$", "$5 or $10"]
    matrix = np.array([[3, 1, 0, 0], [0, 4, 0, 0], [1, 0, 2, 0], [0, 0, 0, 5]])
    per_class = {label: {"recall": 0.5, "f1": 0.5} for label in labels}
    models = {"head only": {"per_class": per_class},
              "fine-tuned": {"per_class": per_class, "confusion": matrix.tolist()}}  # fmt: skip
    assert class_sections(models, labels).count("<img") == 3
