"""The model card shows every class name as written, whatever it holds."""

import re

import numpy as np

from kftransfer.components.core.metrics import classification_metrics
from kftransfer.components.core.model_card import model_card

LABELS = ["pipe | cell", "new\nline", "<img src=x onerror=alert(1)>", "comma, label", "$5 or $10"]


def test_class_names_are_shown_as_written_in_the_card():
    # Before: a pipe added a table column, a newline cut a row, the tag rendered as HTML,
    # "comma, label" read as two classes in the list, `$5 or $10` as math on GitHub.
    y_true = np.arange(len(LABELS))
    metrics = classification_metrics(y_true, np.eye(len(LABELS)), LABELS)
    evaluation = {
        "labels": LABELS,
        "head": metrics,
        "fine_tuned": metrics,
        "verdict": {"blessed": True, "reasons": ["PASS: recall of '<b>' 1.0000 | ok"]},
    }
    manifest = {"image_size": 96, "backbone": "mobilenet_v2", "weights": "none",
                "weights_fingerprint": "0" * 16, "preprocessing": "tf", "pooling": "avg",
                "dim": 1280}  # fmt: skip
    stats = {"counts": {label: {"train": 3, "validation": 1, "test": 1} for label in LABELS}}
    card = model_card(evaluation, manifest, stats, {}, "1")
    assert (
        r'classes: "pipe \| cell", "new\\nline", "\<img src=x onerror=alert(1)\>", '
        r'"comma, label", "\$5 or \$10".'
    ) in card
    rows = [line for line in card.splitlines() if line.startswith("| pipe")]
    assert rows == [
        r"| pipe \| cell | 3 | 1 | 1 |",
        r"| pipe \| cell | 1.0000 | 1.0000 | 1.0000 | 1 |",
    ]
    assert re.search(r"(?<!\\)<", card) is None  # every < escaped: no HTML
    assert r"- PASS: recall of '\<b\>' 1.0000 \| ok" in card
