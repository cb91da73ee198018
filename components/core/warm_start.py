"""Warm start: begin fine-tuning from the production model instead of ImageNet + a new head.

A scheduled retrain on a growing folder otherwise relearns every night what the model in
production already knows. The production model (the export destination's `latest`) is
used only when it is the same network: the same classes in the same order, and weights of
the same shapes in the same order (same backbone, input size, pooling and head). Anything
else is a cold start, with the reason logged and recorded in the stage summary.
"""

import keras

from kftransfer.components.core import storage
from kftransfer.components.core.export import load_exported
from kftransfer.components.core.progress import LOGGER
from kftransfer.components.core.versions import latest_version


def warm_start(model: keras.Model, labels: list[str], export_uri: str) -> tuple[str, str]:
    """Loads the production model's weights into `model` when it is the same network.

    Args:
        model: the fine-tuning model (backbone + head), built and compiled.
        labels: its class names in output order.
        export_uri: the export destination whose latest version is in production.

    Returns:
        the version started from ('' for a cold start), and one line saying what happened.
    """
    version = latest_version(export_uri) if export_uri else None
    if version is None:
        note = "cold start: no production model" + (f" at {export_uri}" if export_uri else "")
        return _said("", note)
    production, production_labels = load_exported(storage.join(export_uri, version))
    if production_labels != labels:
        return _said("", f"cold start: production version {version} has other classes")
    ours, theirs = model.get_weights(), production.get_weights()
    if [w.shape for w in ours] != [w.shape for w in theirs]:
        return _said("", f"cold start: production version {version} is another architecture")
    model.set_weights(theirs)
    return _said(version, f"warm start from production version {version}")


def _said(version: str, note: str) -> tuple[str, str]:
    LOGGER.info("fine-tune: %s", note)
    return version, note
