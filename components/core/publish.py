"""Publishing a step's results to its KFP output artifacts, without importing kfp.

Artifacts are duck-typed: anything with `.path` and `.metadata` (every KFP artifact), and
`log_metric` (Metrics) or `log_confusion_matrix` (ClassificationMetrics). Each published
artifact also gets a JSON file at its path: KFP stores what is there, and kfp.local's step
cache skips an output artifact with nothing at its path.
"""

import math
from collections.abc import Mapping
from typing import Any

from kftransfer.components.core import storage
from kftransfer.components.core.metrics import confusion_of_most_confused
from kftransfer.components.core.progress import LOGGER

# The KFP UI draws a confusion matrix 700 px wide with cells of at least 15 px and a count in
# each (frontend ConfusionMatrix.tsx:46-55), and MLMD stores it in one MySQL MEDIUMTEXT of
# 16 MiB, which ~1,070 classes overflow, failing the step (docs/kfp-backend.md,
# `metadata-size`). Past this many classes the UI gets the most confused ones.
KFP_UI_CLASSES = 40


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _json_safe(value: Any) -> Any:
    """`value` with NaN and infinities as the strings "NaN", "Infinity", "-Infinity".

    The launcher parses the step's output as strict JSON, which has no such numbers, and
    fails the step on one (rule `metadata-values`, docs/kfp-backend.md).
    """
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Mapping):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


def publish(artifact: Any, summary: Mapping[str, Any], write_file: bool = True) -> None:
    """Records `summary` on `artifact`: numbers as metrics of a Metrics artifact, else metadata.

    A metric that is NaN or infinite is left out with a warning, and in metadata and the
    file such a number becomes a string (`_json_safe`): KFP could not store the step's
    outputs.

    Args:
        artifact: a KFP output artifact.
        summary: JSON-able values by name.
        write_file: also write `summary` as JSON at the artifact's path (leave False when
            the step has written the artifact's content itself).
    """
    if hasattr(artifact, "log_metric"):
        for name, value in summary.items():
            if _is_number(value) and not math.isfinite(value):
                LOGGER.warning("metric %s is %s: left out of the KFP metrics", name, value)
            elif _is_number(value):
                artifact.log_metric(name, value)
    else:
        artifact.metadata.update(_json_safe(dict(summary)))
    if write_file:  # strict JSON too: a bare NaN is no JSON a strict reader accepts
        storage.write_json(artifact.path, _json_safe(dict(summary)))


def publish_confusion(artifact: Any, labels: list[str], matrix: list[list[int]]) -> None:
    """A confusion matrix for the KFP UI (ClassificationMetrics), and whole as JSON at its path.

    The UI gets at most `KFP_UI_CLASSES` classes: the most confused, the others summed in
    one (`metrics.confusion_of_most_confused`); its metadata `classes_shown` says so.
    """
    shown_labels, shown = confusion_of_most_confused(matrix, labels, KFP_UI_CLASSES)
    artifact.log_confusion_matrix(shown_labels, shown.tolist())
    if len(shown_labels) < len(labels):
        artifact.metadata["classes_shown"] = (
            f"the {len(shown_labels) - 1} most confused of {len(labels)} classes, the "
            "others summed in the last row and column (every class in the JSON file)"
        )
    storage.write_json(artifact.path, {"labels": labels, "matrix": matrix})
